//! `LocalServer`: a server per test on a free port, restartable, with auth, cleaned up.

use concurry::cluster::{Cluster, LocalServer};

use crate::support::within;

#[test]
fn each_server_gets_its_own_port_and_is_gone_after_drop() {
    let Some(a) = LocalServer::for_tests() else {
        return;
    };
    let Some(b) = LocalServer::for_tests() else {
        return;
    };
    assert_ne!(a.port(), b.port());
    assert!(a.url().starts_with("nats://127.0.0.1:"));
    let pid = a.pid().expect("running");
    let url = a.url();
    let c = within("connect", move || Cluster::connect(url)).expect("connects");
    assert!(c.is_connected());
    assert_eq!(c.max_payload(), 1024 * 1024);
    drop(c);
    drop(a);
    // The process is gone (reaped: no zombie left).
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    drop(b);
}

#[test]
fn restart_keeps_the_port_and_the_jetstream_store() {
    let Some(mut s) = LocalServer::for_tests() else {
        return;
    };
    let port = s.port();
    let first = s.pid();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let stored = |url: String| {
        rt.block_on(async move {
            let js = async_nats::jetstream::new(async_nats::connect(url).await.unwrap());
            let mut stream = js
                .get_or_create_stream(async_nats::jetstream::stream::Config {
                    name: "KEEP".into(),
                    subjects: vec!["keep".into()],
                    ..Default::default()
                })
                .await
                .unwrap();
            stream.info().await.unwrap().state.messages
        })
    };
    rt.block_on(async {
        let js = async_nats::jetstream::new(async_nats::connect(s.url()).await.unwrap());
        js.get_or_create_stream(async_nats::jetstream::stream::Config {
            name: "KEEP".into(),
            subjects: vec!["keep".into()],
            ..Default::default()
        })
        .await
        .unwrap();
        js.publish("keep", "kept".into())
            .await
            .unwrap()
            .await
            .unwrap();
    });
    s.restart().expect("restarts");
    assert_eq!(s.port(), port);
    assert_ne!(s.pid(), first);
    assert_eq!(
        stored(s.url()),
        1,
        "the stream and its message survived the restart"
    );
    let url = s.url();
    within("connect", move || Cluster::connect(url)).expect("connects after restart");
}

#[test]
fn a_missing_binary_skips_locally_fails_under_ci_and_says_how_to_install() {
    // Runs in a child so the variables do not leak into other tests of this binary.
    const ME: &str =
        "harness::a_missing_binary_skips_locally_fails_under_ci_and_says_how_to_install";
    if std::env::var_os("CONCURRY_TEST_MISSING_BINARY").is_none() {
        let run = |ci: &str| {
            std::process::Command::new(std::env::current_exe().unwrap())
                .args([ME, "--exact", "--nocapture"])
                .env("CONCURRY_TEST_MISSING_BINARY", "1")
                .env("NATS_SERVER", "/nonexistent/nats-server")
                .env("CI", ci)
                .output()
                .unwrap()
        };
        let local = run("false");
        let stderr = String::from_utf8_lossy(&local.stderr);
        assert!(local.status.success(), "{stderr}");
        assert!(
            stderr.contains("skipped: install nats-server: apt-get install -y nats-server"),
            "{stderr}"
        );
        let ci = run("true");
        let out =
            String::from_utf8_lossy(&ci.stdout).into_owned() + &String::from_utf8_lossy(&ci.stderr);
        assert!(
            !ci.status.success(),
            "under CI=true a missing server fails: {out}"
        );
        assert!(out.contains("CI=true: the cluster tests must run"), "{out}");
        return;
    }
    assert!(!LocalServer::is_installed());
    let e = LocalServer::start().unwrap_err();
    assert!(
        e.to_string().contains("apt-get install -y nats-server"),
        "{e}"
    );
    // Skips (prints the line) locally; panics under CI=true.
    assert!(LocalServer::for_tests().is_none());
}
