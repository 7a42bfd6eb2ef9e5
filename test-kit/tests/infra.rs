//! The launchers test-kit re-exports from `astroboids-infra` (whose own tests,
//! infra/tests/launch.rs, cover them) are there under the names tests use, and start in a
//! [`TempDir`]. Needs the binaries (`.ci/run` installs them); fails, with how to install them,
//! where they are missing.

use std::net::TcpStream;

use astroboids_test_kit::infra::{self, READY_TIMEOUT};
use astroboids_test_kit::{Etcd, InfraError, NatsServer, TempDir};

#[test]
fn the_reexported_launchers_start_in_a_temp_dir_and_stop_on_drop() {
    let dir = TempDir::new("kit-infra");
    let nats: NatsServer = infra::NatsServer::start(&dir).unwrap_or_else(|e| panic!("{e}"));
    let etcd: Etcd = infra::Etcd::start(&dir).unwrap_or_else(|e: InfraError| panic!("{e}"));
    assert!(nats.dir().starts_with(&*dir) && etcd.dir().starts_with(&*dir));
    let ports = [nats.port(), etcd.port()];
    for port in ports {
        TcpStream::connect(("127.0.0.1", port)).unwrap();
    }
    drop((nats, etcd));
    for port in ports {
        assert!(
            TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), READY_TIMEOUT).is_err(),
            "port {port} still open after drop"
        );
    }
}
