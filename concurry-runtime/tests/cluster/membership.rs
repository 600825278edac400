//! Nodes (child processes of this binary) register, advertise, heartbeat; a SIGKILLed node
//! is lost within the documented bound; a SIGTERMed one drains and leaves at once.

use std::time::{Duration, Instant};

use concurry::Error;
use concurry::cluster::{Cluster, ClusterEvent, LocalServer, MISSED_BEATS, Node, SWEEP};

use crate::support::{HANG, NodeProc, echo_type, within};

fn cluster(url: &str) -> Cluster {
    let url = url.to_string();
    within("connect", move || Cluster::connect(url)).expect("connects")
}

#[test]
fn a_node_advertises_name_types_capacity_and_free_slots() {
    let Some(s) = LocalServer::for_tests() else {
        return;
    };
    let c = cluster(&s.url());
    let _node = NodeProc::start(&s.url(), "gpu-1", 3);
    let nodes = c.wait_for_nodes(1, HANG).expect("the node shows up");
    let n = &nodes[0];
    assert_eq!(n.name(), "gpu-1");
    assert_eq!((n.capacity(), n.free()), (3, 3));
    assert!(!n.is_draining());
    // Every `#[worker(remote)]` type of the binary, from the registry.
    assert!(n.can_host(&echo_type()), "{:?}", n.types());
    assert_eq!(n.heartbeat_interval(), concurry::cluster::DEFAULT_HEARTBEAT);
    assert_ne!(n.process().1, std::process::id(), "it is another process");
    assert!(n.since_heartbeat() < HANG);
    assert_eq!(
        c.node("gpu-1").map(|v| v.id().to_string()),
        Some(n.id().to_string())
    );
}

#[test]
fn a_client_connecting_later_sees_running_nodes_at_once() {
    let Some(s) = LocalServer::for_tests() else {
        return;
    };
    let first = cluster(&s.url());
    // A long heartbeat: a later client can only learn of the node by pinging it.
    let _node = NodeProc::start_with(&s.url(), "quiet", 1, Some(Duration::from_secs(30)), None);
    first.wait_for_nodes(1, HANG).unwrap();
    let later = cluster(&s.url());
    let nodes = later
        .wait_for_nodes(1, Duration::from_secs(10))
        .expect("answered the ping");
    assert_eq!(nodes[0].name(), "quiet");
}

#[test]
fn a_sigkilled_node_is_lost_within_the_documented_bound() {
    let Some(s) = LocalServer::for_tests() else {
        return;
    };
    let c = cluster(&s.url());
    let events = c.events();
    let mut node = NodeProc::start(&s.url(), "doomed", 2);
    match events.recv_timeout(HANG) {
        Some(ClusterEvent::Joined(v)) => assert_eq!(v.name(), "doomed"),
        other => panic!("expected Joined, got {other:?}"),
    }
    node.child.kill().unwrap();
    let killed = Instant::now();
    node.child.wait().unwrap();
    let lost = match events.recv_timeout(HANG) {
        Some(ClusterEvent::Lost(v)) => v,
        other => panic!("expected Lost, got {other:?}"),
    };
    let took = killed.elapsed();
    assert_eq!(lost.name(), "doomed");
    // The documented bound is 2.5 intervals of silence plus one sweep (2.6 s by default),
    // counted from the last heartbeat; this asserts only against gross errors (a loaded
    // machine may be late), the exact bound is tested on a fake clock in the unit tests.
    let bound = concurry::cluster::DEFAULT_HEARTBEAT.mul_f64(MISSED_BEATS) + SWEEP;
    assert!(took < bound + Duration::from_secs(5), "lost after {took:?}");
    eprintln!("SIGKILLed node lost after {took:?} (bound {bound:?})");
    assert!(c.nodes().is_empty());
}

#[test]
fn a_sigtermed_node_drains_and_leaves_at_once() {
    let Some(s) = LocalServer::for_tests() else {
        return;
    };
    let c = cluster(&s.url());
    let events = c.events();
    // A long heartbeat: only the goodbye can make it leave before the test's deadline.
    let mut node = NodeProc::start_with(&s.url(), "polite", 2, Some(Duration::from_secs(60)), None);
    assert!(matches!(
        events.recv_timeout(HANG),
        Some(ClusterEvent::Joined(_))
    ));
    node.terminate();
    match events.recv_timeout(HANG) {
        Some(ClusterEvent::Left(v)) => {
            assert_eq!(v.name(), "polite");
            assert!(v.is_draining());
        }
        other => panic!("expected Left, got {other:?}"),
    }
    assert_eq!(
        node.wait_exit(),
        Some(0),
        "serve() returned Ok after the drain"
    );
    assert!(c.nodes().is_empty());
}

#[test]
fn a_second_node_with_a_taken_name_is_refused() {
    let Some(s) = LocalServer::for_tests() else {
        return;
    };
    let c = cluster(&s.url());
    let _first = NodeProc::start(&s.url(), "twin", 1);
    c.wait_for_nodes(1, HANG).unwrap();
    let url = s.url();
    let e = within("second node", move || {
        Node::connect(url)?.name("twin").start()
    })
    .unwrap_err();
    let Error::Config(cfg) = &e else {
        panic!("{e:?}")
    };
    assert_eq!(cfg.option(), "name");
    assert!(
        e.to_string().contains("already serves namespace `default`"),
        "{e}"
    );
    // Another namespace is another world.
    let url = s.url();
    let other = within("other namespace", move || {
        Node::new(Cluster::builder(url).namespace("other").connect()?)
            .name("twin")
            .start()
    })
    .expect("the name is free in another namespace");
    assert_eq!(c.nodes().len(), 1, "the default namespace does not see it");
    drop(other);
}

#[test]
fn node_options_are_checked() {
    let Some(s) = LocalServer::for_tests() else {
        return;
    };
    let url = s.url();
    within("bad options", move || {
        let node = || Node::connect(url.clone()).unwrap();
        let option = |r: Result<concurry::cluster::RunningNode, Error>| match r {
            Err(Error::Config(c)) => (c.option(), c.to_string()),
            other => panic!("expected a config error, got {other:?}"),
        };
        let (o, _) = option(node().capacity(0).start());
        assert_eq!(o, "capacity");
        let (o, _) = option(node().name("a b").start());
        assert_eq!(o, "name");
        let (o, _) = option(node().heartbeat(Duration::ZERO).start());
        assert_eq!(o, "heartbeat");
        let (o, msg) = option(node().types(["no::Such"]).start());
        assert_eq!(o, "types");
        assert!(
            msg.contains(&echo_type()),
            "lists the registered types: {msg}"
        );
        // Narrowing to a registered type works.
        let n = node().types([echo_type()]).name("narrow").start().unwrap();
        n.drain().unwrap();
    });
}

#[test]
fn an_in_process_node_drains_and_garbage_on_the_subjects_is_ignored() {
    let Some(s) = LocalServer::for_tests() else {
        return;
    };
    let c = cluster(&s.url());
    let events = c.events();
    // Garbage on the heartbeat subject: logged and ignored, never a panic.
    let url = s.url();
    within("publish garbage", move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let raw = concurry::__private::async_nats::connect(url).await.unwrap();
            for junk in [
                &b""[..],
                b"CCN",
                b"CCN\x01\xff\xff\xff",
                b"CCN\x09abc",
                b"hello",
            ] {
                raw.publish("cc.default.node.hb", junk.to_vec().into())
                    .await
                    .unwrap();
            }
            raw.flush().await.unwrap();
        });
    });
    let url = s.url();
    let node = within("start", move || {
        Node::connect(url)?.name("inproc").capacity(4).start()
    })
    .unwrap();
    assert!(
        matches!(events.recv_timeout(HANG), Some(ClusterEvent::Joined(v)) if v.name() == "inproc")
    );
    node.drain().unwrap();
    assert!(
        matches!(events.recv_timeout(HANG), Some(ClusterEvent::Left(v)) if v.name() == "inproc")
    );
}

#[test]
fn waits_time_out_typed_and_events_end_with_the_cluster() {
    let Some(s) = LocalServer::for_tests() else {
        return;
    };
    let c = cluster(&s.url());
    let events = c.events();
    let e = c.wait_for_nodes(1, Duration::from_millis(200)).unwrap_err();
    assert!(matches!(e, Error::Timeout), "{e:?}");
    drop(c);
    // The events end (the channel closes) instead of blocking forever.
    let ended = within("events end", move || events.recv_timeout(HANG));
    assert!(ended.is_none());
}
