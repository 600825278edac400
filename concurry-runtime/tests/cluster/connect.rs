//! `Cluster::connect`: auth, typed errors that name the server and the fix, bounded waits,
//! and reconnecting after a server restart.

use std::time::{Duration, Instant};

use concurry::Error;
use concurry::cluster::{Cluster, ClusterOptions, LocalServer, Node};

use crate::support::within;

/// A user nkey made for these tests (seed and public key); not a secret of anything.
const NKEY_SEED: &str = "SUAHVI7NETGHHAMXE5PE4ZHLZIM6P6V3FT7MEUWH4SZK4IEEVNKAUSERTQ";
const NKEY_PUBLIC: &str = "UAKT25UZEFSZTJBGK7ELOTERRPPDKNIF73PKPBV4RCOHP42QEN3RHGFR";

fn connect(o: ClusterOptions) -> Result<Cluster, Error> {
    within("connect", move || o.connect())
}

/// The error is `Config`, names the server, and says what to do.
fn refused(e: Error, url: &str) {
    let Error::Config(c) = &e else {
        panic!("not a config error: {e:?}")
    };
    assert_eq!(c.option(), "cluster");
    assert_eq!(c.value(), url);
    let text = e.to_string();
    assert!(text.contains("refused the credentials"), "{text}");
    assert!(text.contains("ClusterOptions::token"), "{text}");
}

#[test]
fn token_auth_right_wrong_and_missing() {
    let Some(s) = LocalServer::builder().token("s3cret").for_tests() else {
        return;
    };
    let c = connect(Cluster::builder(s.url()).token("s3cret")).expect("right token");
    assert!(c.is_connected());
    refused(
        connect(Cluster::builder(s.url()).token("wrong")).unwrap_err(),
        &s.url(),
    );
    refused(connect(Cluster::builder(s.url())).unwrap_err(), &s.url());
}

#[test]
fn user_password_auth_right_and_wrong() {
    let Some(s) = LocalServer::builder()
        .user_password("svc", "pw")
        .for_tests()
    else {
        return;
    };
    connect(Cluster::builder(s.url()).user_password("svc", "pw")).expect("right password");
    let e = connect(Cluster::builder(s.url()).user_password("svc", "nope")).unwrap_err();
    refused(e, &s.url());
    // The password never shows in an error, even when written in the URL.
    let in_url = s.url().replace("nats://", "nats://svc:nope@");
    let e = connect(Cluster::builder(in_url)).unwrap_err();
    assert!(!e.to_string().contains("nope"), "{e}");
    assert!(e.to_string().contains("svc:***@127.0.0.1"), "{e}");
}

#[test]
fn nkey_auth_right_and_wrong() {
    let Some(s) = LocalServer::builder().nkey(NKEY_PUBLIC).for_tests() else {
        return;
    };
    connect(Cluster::builder(s.url()).nkey(NKEY_SEED)).expect("right nkey");
    refused(connect(Cluster::builder(s.url())).unwrap_err(), &s.url());
    // A seed that is not one: typed, not a panic.
    let e = connect(Cluster::builder(s.url()).nkey("not-a-seed")).unwrap_err();
    assert!(matches!(e, Error::Config(_)), "{e:?}");
}

#[test]
fn no_server_is_a_prompt_config_error_naming_the_address() {
    // A port nothing listens on: bind one, note it, free it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("nats://127.0.0.1:{port}");
    let e =
        connect(Cluster::builder(url.clone()).connect_timeout(Duration::from_secs(2))).unwrap_err();
    let Error::Config(c) = &e else {
        panic!("{e:?}")
    };
    assert_eq!(c.value(), url);
    assert!(e.to_string().contains("nats-server"), "{e}");
}

#[test]
fn a_silent_server_times_out_within_the_bound() {
    // Accepts TCP but never speaks NATS.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("nats://{}", listener.local_addr().unwrap());
    let started = Instant::now();
    let e = connect(Cluster::builder(url).connect_timeout(Duration::from_millis(300))).unwrap_err();
    assert!(matches!(e, Error::Config(_)), "{e:?}");
    assert!(e.to_string().contains("connect_timeout"), "{e}");
    // Gross bound only: the timeout plus the outer second of slack, far from a hang.
    assert!(started.elapsed() < Duration::from_secs(10));
    drop(listener);
}

#[test]
fn bad_options_are_config_errors_naming_them() {
    let e = Cluster::builder("nats://127.0.0.1:4222")
        .namespace("has.dots")
        .connect()
        .unwrap_err();
    let Error::Config(c) = &e else {
        panic!("{e:?}")
    };
    assert_eq!(c.option(), "namespace");
    assert!(e.to_string().contains("\"has.dots\""), "{e}");
    let e = Cluster::builder("nats://127.0.0.1:4222")
        .connect_timeout(Duration::ZERO)
        .connect()
        .unwrap_err();
    assert!(e.to_string().contains("connect_timeout"), "{e}");
    let e = connect(Cluster::builder("nats://[::1")).unwrap_err();
    assert!(e.to_string().contains("not a NATS server address"), "{e}");
}

#[test]
fn client_and_node_reconnect_after_a_server_restart() {
    let Some(mut s) = LocalServer::for_tests() else {
        return;
    };
    let url = s.url();
    let cluster = connect(Cluster::builder(url.clone())).unwrap();
    let node = within("start node", {
        let url = url.clone();
        move || {
            Node::connect(url)?
                .name("steady")
                .capacity(1)
                .heartbeat(Duration::from_millis(100))
                .start()
        }
    })
    .unwrap();
    cluster.wait_for_nodes(1, crate::support::HANG).unwrap();
    s.restart().unwrap();
    let restarted = Instant::now();
    // A heartbeat sent after the restart arrived: the node and the client both reconnected
    // (and the client re-subscribed).
    let c = cluster.clone();
    let seen = within("heartbeat after restart", move || {
        c.wait_until(crate::support::HANG, |nodes| {
            nodes
                .iter()
                .any(|n| n.name() == "steady" && n.last_heartbeat() > restarted)
        })
    })
    .expect("the node is heard from again");
    assert_eq!(seen.len(), 1);
    assert!(cluster.is_connected());
    drop(node);
}

/// The test certificates in `tls/` (a CA, a server certificate for 127.0.0.1 and a client
/// certificate, valid until 2126; made with openssl for these tests only).
fn tls(file: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/cluster/tls")
        .join(file)
}

#[test]
fn tls_with_the_right_authority_connects_and_without_it_is_a_typed_error() {
    let Some(s) = LocalServer::builder()
        .tls(tls("server.pem"), tls("server-key.pem"))
        .for_tests()
    else {
        return;
    };
    let c = connect(
        Cluster::builder(s.tls_url())
            .require_tls(true)
            .root_certificates(tls("ca.pem")),
    )
    .expect("TLS with the test CA");
    assert!(c.is_connected());
    // The server's certificate is not trusted without its authority.
    let e = connect(Cluster::builder(s.tls_url()).require_tls(true)).unwrap_err();
    let Error::Config(cfg) = &e else {
        panic!("{e:?}")
    };
    assert_eq!(cfg.value(), s.tls_url());
    assert!(e.to_string().contains("TLS failed"), "{e}");
}

#[test]
fn mutual_tls_needs_the_client_certificate() {
    let Some(s) = LocalServer::builder()
        .tls(tls("server.pem"), tls("server-key.pem"))
        .verify_clients(tls("ca.pem"))
        .for_tests()
    else {
        return;
    };
    let base = || {
        Cluster::builder(s.tls_url())
            .require_tls(true)
            .root_certificates(tls("ca.pem"))
            .connect_timeout(Duration::from_secs(3))
    };
    connect(base().client_certificate(tls("client.pem"), tls("client-key.pem")))
        .expect("mutual TLS");
    let e = connect(base()).unwrap_err();
    assert!(matches!(e, Error::Config(_)), "{e:?}");
}

#[test]
fn requiring_tls_of_a_plain_server_is_a_typed_error() {
    let Some(s) = LocalServer::for_tests() else {
        return;
    };
    let e = connect(Cluster::builder(s.url()).require_tls(true)).unwrap_err();
    assert!(e.to_string().contains("TLS"), "{e}");
}

#[test]
fn connecting_from_inside_a_current_thread_runtime_does_not_deadlock() {
    let Some(s) = LocalServer::for_tests() else {
        return;
    };
    let url = s.url();
    let nodes = within("connect inside a runtime", move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        // The sync API called from async code: its work runs on the library's runtime, not
        // on this runtime's only thread (which it blocks).
        rt.block_on(async move {
            let node = Node::connect(url.clone())?.name("inner").start()?;
            let c = Cluster::connect(url)?;
            let nodes = c.wait_for_nodes(1, crate::support::HANG)?;
            node.drain()?;
            Ok::<_, Error>(nodes)
        })
    })
    .unwrap();
    assert_eq!(nodes[0].name(), "inner");
}
