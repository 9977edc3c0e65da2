//! The report's own `redis-server`: a free port on 127.0.0.1, no
//! persistence, a log in a temporary directory, killed when the handle
//! drops (a panic that unwinds included). The tests' server
//! (`idem_tests::redis`), so that the report and the tests start Redis
//! the same way.

pub use idem_tests::redis::Server;
