//! Feature `prometheus`: a node serves Prometheus text at `/metrics` (its gauges and the
//! pool metrics of its process).

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use concurry::cluster::{Cluster, LocalServer, Node};

use crate::support::{HANG, within};

/// A free loopback port (the exporter takes an address, not a listener; another process
/// could take the port between here and the node's start, which would fail the test
/// loudly, not silently).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET /metrics` over plain HTTP/1.0; the body.
fn scrape(port: u16) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect to /metrics");
    s.set_read_timeout(Some(HANG)).unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    assert!(
        text.starts_with("HTTP/1.0 200") || text.starts_with("HTTP/1.1 200"),
        "{text}"
    );
    text.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}

struct Adder;

#[concurry::worker]
impl Adder {
    pub(crate) fn new() -> Self {
        Adder
    }

    pub(crate) fn add(&self, a: u32, b: u32) -> u32 {
        a + b
    }
}

/// The only test of this binary that installs a process-wide recorder (one per process).
#[test]
fn a_node_serves_its_gauges_and_its_pools_metrics_at_slash_metrics() {
    let Some(s) = LocalServer::for_tests() else {
        return;
    };
    let port = free_port();
    let url = s.url();
    // A delayed task, so the node's queue-depth gauge has something to count.
    let queued = Cluster::connect(url.clone()).unwrap().tasks().unwrap();
    queued
        .submit_with::<crate::inspect::Double>(
            (1,),
            concurry::cluster::Submit::new()
                .priority(concurry::cluster::Priority::High)
                .delay(Duration::from_secs(3600)),
        )
        .unwrap();
    let node = within("start", move || {
        Node::new(Cluster::connect(url).unwrap())
            .name("scraped")
            .capacity(3)
            .heartbeat(Duration::from_millis(50))
            .metrics_listen(([127, 0, 0, 1], port))
            .start()
    })
    .expect("node starts");
    // A task the node runs is counted by outcome, and its run timed.
    queued
        .submit::<crate::inspect::Double>((2,))
        .unwrap()
        .result_timeout(HANG)
        .unwrap();
    // A pool of this process reports there too (its recorder is the exporter now).
    let adder = Adder::options().name("adder").init().unwrap();
    assert_eq!(adder.add(1, 2).result().unwrap(), 3);
    let deadline = Instant::now() + HANG;
    let body = loop {
        let body = within("scrape", move || scrape(port));
        if body.contains(r#"concurry_calls_total{pool="adder",method="add",outcome="ok"} 1"#)
            && body.contains(r#"concurry_node_capacity{node="scraped"} 3"#)
            && body.contains(r#"concurry_task_queue_depth{queue="default",priority="high"} 1"#)
            && body.lines().any(|l| {
                l.starts_with("concurry_tasks_total{")
                    && l.contains(r#"outcome="ok""#)
                    && l.ends_with(" 1")
            })
        {
            break body;
        }
        assert!(Instant::now() < deadline, "not served in time:\n{body}");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        body.contains(r#"concurry_node_free{node="scraped"} 3"#),
        "{body}"
    );
    assert!(
        body.contains(r#"concurry_node_instances{node="scraped"} 0"#),
        "{body}"
    );
    assert!(
        body.contains(r#"concurry_node_draining{node="scraped"} 0"#),
        "{body}"
    );
    assert!(
        body.contains("# TYPE concurry_call_duration_seconds summary"),
        "{body}"
    );
    assert!(
        body.contains("# TYPE concurry_task_duration_seconds summary"),
        "{body}"
    );

    // A second node of the same process cannot serve metrics: a recorder is installed.
    let url = s.url();
    let second = within("start", move || {
        Node::new(Cluster::connect(url).unwrap())
            .name("second")
            .metrics_listen(([127, 0, 0, 1], free_port()))
            .start()
    });
    let err = second.expect_err("one recorder per process").to_string();
    assert!(
        err.contains("metrics_listen") && err.contains("already has a `metrics` recorder"),
        "{err}"
    );

    // Draining stops the listener.
    node.drain().unwrap();
    let deadline = Instant::now() + HANG;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
        assert!(
            Instant::now() < deadline,
            "/metrics still served after the drain"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    adder.stop().unwrap();
}
