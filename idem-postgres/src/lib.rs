//! A PostgreSQL store for idem (docs to come).

mod names;
mod reaper;
mod schema;
mod sql;
mod store;
mod transactional;

pub use names::InvalidName;
pub use reaper::Reaper;
pub use store::{Builder, PostgresStore};
pub use transactional::{Claim, TxClaim};
