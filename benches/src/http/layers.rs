//! The layers idem's server puts in front of the routes: the example's
//! (keys required, scoped by user, a day's retention), on any store.
//!

use std::time::Duration;

use axum::Router;
use idem::store::Store;
use idem_http::{Concurrent, IdempotencyLayer};

use super::app::User;

/// Concurrent duplicates wait for the running request's response (the
/// storm route's mode).
pub const WAIT: Concurrent = Concurrent::Wait {
    timeout: Duration::from_secs(60),
};

/// The example's layer on `store`, in `concurrent` mode (the example's:
/// [`Concurrent::Reject`]), under `namespace`, as a function that puts it
/// in front of a router's routes.
pub fn protect<S: Store>(
    store: S,
    namespace: &str,
    concurrent: Concurrent,
) -> impl FnOnce(Router) -> Router {
    let layer = IdempotencyLayer::builder(store)
        .namespace(namespace)
        .scope(|req| req.extensions.get::<User>().map(|u| u.0.clone()))
        .require_key(true)
        .retain(Duration::from_secs(24 * 3600))
        .concurrent(concurrent)
        .build()
        .expect("valid settings");
    move |r: Router| r.layer(layer)
}
