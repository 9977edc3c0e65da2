//! The test harness itself: a missing Redis fails loudly, never skips.

mod support;

#[test]
#[should_panic = "apt-get install redis-server"]
fn a_missing_redis_server_fails_with_how_to_install_it() {
    support::Server::start_program("idem-test-no-such-redis-server");
}

#[test]
fn a_server_is_gone_with_its_directory_after_drop() {
    let server = support::Server::start();
    let (port, dir) = (server.port(), server.dir().to_path_buf());
    assert!(dir.is_dir());
    drop(server);
    assert!(!dir.exists(), "{} was left behind", dir.display());
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the server on {port} still answers"
    );
}
