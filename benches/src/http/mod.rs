//! Issue 9: idem-http's layer under load.
//!
//! * [`app`]: the service of `idem-http/examples/payments.rs`, which
//!   `src/bin/http_server.rs` serves bare or behind a layer for
//!   `benches/http_load.sh` (wrk on loopback);
//! * [`layers`]: the layers idem's server puts in front of it;
//! * [`inproc`]: the same service called in process, and the layer's
//!   steps reproduced with idem's public API, for the bench `http_layer`
//!   (time) and the binary `http_allocs` (allocations).

pub mod app;
pub mod inproc;
pub mod layers;
