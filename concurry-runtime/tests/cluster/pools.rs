//! `Mode::Cluster` pools: `#[worker(remote)]` instances placed on nodes (child processes of
//! this binary, or a `RunningNode` in this process where said) and called over NATS.

use std::collections::HashMap;
use std::time::Duration;

use concurry::cluster::{Cluster, LocalServer, Node};
use concurry::{Error, FakeClock, LimitSet, Mode, RateLimit, RetryConfig};

use crate::support::{HANG, NodeProc, Tally, TallyHandle, echo_type, start_owner, within};

fn cluster(url: &str) -> Cluster {
    let url = url.to_string();
    within("connect", move || Cluster::connect(url)).expect("connects")
}

/// A pool of `n` `Tally` instances (each starting at 10) on the cluster.
fn pool(c: &Cluster, n: usize) -> TallyHandle {
    let c = c.clone();
    within("init", move || {
        Tally::options()
            .mode(Mode::Cluster)
            .cluster(c)
            .max_workers(n)
            .init(10)
    })
    .expect("placed")
}

/// How many of the pool's workers each node hosts.
fn spread(p: &TallyHandle) -> HashMap<String, usize> {
    let mut by_node = HashMap::new();
    for w in p.stats().per_worker {
        *by_node
            .entry(w.node.expect("every worker is placed"))
            .or_default() += 1;
    }
    by_node
}

/// Node processes named `names`, each with `capacity` slots, on the server at `url`.
fn nodes(url: &str, names: &[&str], capacity: u32) -> Vec<NodeProc> {
    names
        .iter()
        .map(|n| NodeProc::start(url, n, capacity))
        .collect()
}

fn get<T>(p: concurry::Promise<T>) -> Result<T, Error> {
    p.result_timeout(HANG)
}

#[test]
fn calls_round_trip_and_stats_name_the_nodes() {
    let Some(s) = LocalServer::for_tests() else {
        return;
    };
    let c = cluster(&s.url());
    let _a = NodeProc::start(&s.url(), "a", 2);
    let _b = NodeProc::start(&s.url(), "b", 2);
    c.wait_for_nodes(2, HANG).unwrap();
    let p = pool(&c, 2);
    // Round robin: each instance has its own state, built from the constructor's arguments.
    assert_eq!(get(p.add(1)).unwrap(), 11);
    assert_eq!(get(p.add(1)).unwrap(), 11);
    assert_eq!(get(p.add(5)).unwrap(), 16);
    let pid = get(p.pid()).unwrap();
    assert_ne!(
        pid,
        std::process::id(),
        "the instance runs in a node process"
    );
    // Many calls in flight at once resolve, each with its own answer.
    let many: Vec<_> = (0..64).map(|i| p.slow(i, 0)).collect();
    for (i, f) in many.into_iter().enumerate() {
        assert_eq!(get(f).unwrap(), i as u64);
    }
    let stats = p.stats();
    assert_eq!(stats.mode, Mode::Cluster);
    assert_eq!(
        spread(&p),
        HashMap::from([("a".to_string(), 1), ("b".to_string(), 1)])
    );
    // The nodes count what they host in their heartbeats.
    c.wait_until(HANG, |nodes| {
        nodes.len() == 2 && nodes.iter().all(|n| n.free() == 1)
    })
    .expect("each node advertises one slot taken");
    p.stop().unwrap();
    assert!(matches!(get(p.add(1)), Err(Error::Stopped)));
    // Stopped instances end on the nodes: their slots are free again.
    c.wait_until(HANG, |nodes| {
        nodes.len() == 2 && nodes.iter().all(|n| n.free() == 2)
    })
    .expect("the slots are given back");
}

#[test]
fn twelve_instances_spread_four_by_four_over_three_equal_nodes() {
    let Some(s) = LocalServer::for_tests() else {
        return;
    };
    let c = cluster(&s.url());
    let _nodes = nodes(&s.url(), &["n1", "n2", "n3"], 8);
    c.wait_for_nodes(3, HANG).unwrap();
    let p = pool(&c, 12);
    assert_eq!(
        spread(&p),
        HashMap::from([
            ("n1".to_string(), 4),
            ("n2".to_string(), 4),
            ("n3".to_string(), 4)
        ])
    );
    let all: Vec<_> = (0..12).map(|_| p.add(1)).collect();
    for f in all {
        assert_eq!(get(f).unwrap(), 11);
    }
}

#[test]
fn a_type_no_node_hosts_and_a_missing_cluster_are_config_errors() {
    let Some(s) = LocalServer::for_tests() else {
        return;
    };
    let c = cluster(&s.url());
    // In this process: a node that hosts only `Echo`.
    let node = Node::new(c.clone())
        .name("echo-only")
        .types([echo_type()])
        .capacity(2)
        .start()
        .unwrap();
    c.wait_for_nodes(1, HANG).unwrap();
    let c2 = c.clone();
    let e = within("init", move || {
        Tally::options().mode(Mode::Cluster).cluster(c2).init(0)
    })
    .unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, Error::Config(_)), "{e:?}");
    assert!(
        text.contains("Tally") && text.contains("echo-only"),
        "{text}"
    );
    let e = within("init", || Tally::options().mode(Mode::Cluster).init(0)).unwrap_err();
    assert!(matches!(e, Error::Config(_)), "{e:?}");
    assert!(e.to_string().contains(".cluster("), "{e}");
    // More instances than free slots: named too.
    drop(node);
}

#[test]
fn a_sigkilled_node_fails_its_calls_worker_lost_and_its_instance_moves() {
    let Some(s) = LocalServer::for_tests() else {
        return;
    };
    let c = cluster(&s.url());
    let mut nodes: HashMap<String, NodeProc> = ["k1", "k2"]
        .iter()
        .map(|n| (n.to_string(), NodeProc::start(&s.url(), n, 1)))
        .collect();
    c.wait_for_nodes(2, HANG).unwrap();
    let p = pool(&c, 1);
    let retried = {
        let c = c.clone();
        within("init", move || {
            Tally::options()
                .mode(Mode::Cluster)
                .cluster(c)
                .retry(RetryConfig::attempts(3).retry_on_worker_lost(true))
                .init(10)
        })
        .unwrap()
    };
    assert_eq!(get(p.add(1)).unwrap(), 11);
    let home = p.stats().per_worker[0].node.clone().unwrap();
    let other = if home == "k1" { "k2" } else { "k1" };
    assert_eq!(
        retried.stats().per_worker[0].node.as_deref(),
        Some(other),
        "one instance per node (capacity 1 each)"
    );
    let in_flight = p.slow(7, 10_000);
    nodes.get_mut(&home).unwrap().kill();
    match get(in_flight) {
        Err(Error::WorkerLost { message }) => {
            assert!(message.contains(&home), "{message}")
        }
        other => panic!("expected WorkerLost, got {other:?}"),
    }
    // Re-placed on a live node, from the constructor's arguments: its state starts anew.
    // (Capacity: `other` hosts `retried`'s instance too, so give it room first.)
    drop(retried);
    assert_eq!(get(p.add(1)).unwrap(), 11);
    assert_eq!(p.stats().per_worker[0].node.as_deref(), Some(other));
}

#[test]
fn a_retried_call_survives_its_node_being_killed() {
    let Some(s) = LocalServer::for_tests() else {
        return;
    };
    let c = cluster(&s.url());
    let mut nodes: HashMap<String, NodeProc> = ["r1", "r2"]
        .iter()
        .map(|n| (n.to_string(), NodeProc::start(&s.url(), n, 1)))
        .collect();
    c.wait_for_nodes(2, HANG).unwrap();
    let p = {
        let c = c.clone();
        within("init", move || {
            Tally::options()
                .mode(Mode::Cluster)
                .cluster(c)
                .retry(RetryConfig::attempts(3).retry_on_worker_lost(true))
                .init(10)
        })
        .unwrap()
    };
    let home = p.stats().per_worker[0].node.clone().unwrap();
    let call = p.slow(7, 1_000);
    nodes.get_mut(&home).unwrap().kill();
    assert_eq!(get(call).unwrap(), 7, "re-sent to the re-placed instance");
    assert_ne!(p.stats().per_worker[0].node.as_deref(), Some(home.as_str()));
}

#[test]
fn a_sigtermed_node_drains_and_nothing_fails() {
    let Some(s) = LocalServer::for_tests() else {
        return;
    };
    let c = cluster(&s.url());
    let mut a = NodeProc::start(&s.url(), "d1", 2);
    let _b = NodeProc::start(&s.url(), "d2", 2);
    c.wait_for_nodes(2, HANG).unwrap();
    let p = pool(&c, 2);
    assert_eq!(spread(&p).len(), 2, "one instance on each node");
    // Calls in flight all the time while the node drains.
    let caller = {
        let p = p.clone();
        std::thread::spawn(move || {
            let mut outcomes = Vec::new();
            for i in 0..300u64 {
                let batch: Vec<_> = (0..4).map(|_| p.slow(i, 2)).collect();
                outcomes.extend(batch.into_iter().map(get));
            }
            outcomes
        })
    };
    std::thread::sleep(Duration::from_millis(100));
    a.terminate();
    assert_eq!(a.wait_exit(), Some(0), "the node drained and exited");
    let outcomes = within("the calls", move || caller.join().unwrap());
    let failed: Vec<_> = outcomes.iter().filter(|o| o.is_err()).collect();
    assert!(
        failed.is_empty(),
        "{} failed: {:?}",
        failed.len(),
        failed.first()
    );
    assert_eq!(spread(&p), HashMap::from([("d2".to_string(), 2)]));
    assert_eq!(get(p.add(1)).unwrap(), 11);
}

#[test]
fn limits_shared_by_three_nodes_never_over_admit() {
    let Some(s) = LocalServer::for_tests() else {
        return;
    };
    let c = cluster(&s.url());
    let _nodes = nodes(&s.url(), &["l1", "l2", "l3"], 1);
    c.wait_for_nodes(3, HANG).unwrap();
    // Five tokens a minute, on a clock that never moves: five takes succeed, in all.
    let set = LimitSet::builder()
        .limit(RateLimit::per_minute("tokens", 5))
        .clock(FakeClock::new())
        .build()
        .unwrap();
    let p = {
        let (c, set) = (c.clone(), set.clone());
        within("init", move || {
            Tally::options()
                .mode(Mode::Cluster)
                .cluster(c)
                .max_workers(3)
                .limits(set)
                .init(0)
        })
        .unwrap()
    };
    assert_eq!(spread(&p).len(), 3, "one instance per node");
    let takes: Vec<_> = (0..30).map(|_| p.take()).collect();
    let granted = takes
        .into_iter()
        .filter_map(|t| get(t).unwrap().then_some(()))
        .count();
    assert_eq!(granted, 5);
}

#[test]
fn calls_work_again_after_a_server_restart() {
    let Some(mut s) = LocalServer::for_tests() else {
        return;
    };
    let c = cluster(&s.url());
    let _n = NodeProc::start(&s.url(), "steady", 2);
    c.wait_for_nodes(1, HANG).unwrap();
    let p = pool(&c, 1);
    assert_eq!(get(p.add(1)).unwrap(), 11);
    s.restart().unwrap();
    // Calls during the outage fail typed (or succeed); later ones work.
    let deadline = std::time::Instant::now() + HANG;
    loop {
        match get(p.add(0)) {
            Ok(_) => break,
            Err(Error::WorkerLost { .. } | Error::Timeout) => {}
            Err(e) => panic!("untyped failure after a restart: {e:?}"),
        }
        assert!(std::time::Instant::now() < deadline, "no call worked again");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn call_timeout_fails_a_slow_call_and_the_instance_is_replaced() {
    let Some(s) = LocalServer::for_tests() else {
        return;
    };
    let c = cluster(&s.url());
    let _n = NodeProc::start(&s.url(), "t1", 2);
    c.wait_for_nodes(1, HANG).unwrap();
    let p = {
        let c = c.clone();
        within("init", move || {
            Tally::options()
                .mode(Mode::Cluster)
                .cluster(c)
                .call_timeout(Duration::from_millis(300))
                .init(10)
        })
        .unwrap()
    };
    assert!(matches!(get(p.slow(1, 20_000)), Err(Error::Timeout)));
    assert_eq!(get(p.add(1)).unwrap(), 11, "a fresh instance serves");
}

#[test]
fn a_message_over_the_servers_max_payload_fails_typed() {
    let Some(s) = LocalServer::for_tests() else {
        return;
    };
    let c = cluster(&s.url());
    let max = c.max_payload();
    let _n = NodeProc::start(&s.url(), "p1", 1);
    c.wait_for_nodes(1, HANG).unwrap();
    let p = pool(&c, 1);
    let e = get(p.len(vec![0; max + 1])).unwrap_err();
    assert!(
        matches!(e, Error::Transport(concurry::wire::WireError::TooLarge { max: m, .. }) if m < max),
        "{e:?}"
    );
    assert_eq!(
        get(p.len(vec![0; 1000])).unwrap(),
        1000,
        "the pool serves on"
    );
}

#[test]
fn a_node_ends_the_instances_of_an_owner_that_vanished() {
    let Some(s) = LocalServer::for_tests() else {
        return;
    };
    let c = cluster(&s.url());
    let _n = NodeProc::start(&s.url(), "o1", 2);
    c.wait_for_nodes(1, HANG).unwrap();
    let mut owner = start_owner(&s.url());
    c.wait_until(HANG, |nodes| nodes.iter().any(|n| n.free() == 1))
        .expect("the owner's instance is hosted");
    // SIGKILL: the owner cannot stop its pool; the node sees it gone and frees the slot
    // (documented: about 1 s once the server has closed the owner's connection).
    owner.kill();
    c.wait_until(HANG, |nodes| nodes.iter().any(|n| n.free() == 2))
        .expect("the orphaned instance ended");
}

#[test]
fn a_node_refuses_garbage_typed_and_serves_on() {
    let Some(s) = LocalServer::for_tests() else {
        return;
    };
    let c = cluster(&s.url());
    let node = Node::new(c.clone()).name("g1").capacity(2).start().unwrap();
    c.wait_for_nodes(1, HANG).unwrap();
    let p = pool(&c, 1);
    assert_eq!(get(p.add(1)).unwrap(), 11);
    // Raw bytes on the node's control subject and on its instances' subjects.
    let client = async_nats::ConnectOptions::new();
    let url = s.url();
    let id = node.id();
    let answers = within("garbage", move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            let client = client.connect(url).await.unwrap();
            let mut answers = Vec::new();
            for bytes in [&b""[..], b"hello", b"CCH\x09xx", b"CCH\x01\xff\xff\xff"] {
                let r = client
                    .request(format!("cc.default.node.{id}.ctl"), bytes.to_vec().into())
                    .await
                    .unwrap();
                answers.push(r.payload.to_vec());
            }
            for n in 0..4u64 {
                client
                    .publish(
                        format!("cc.default.inst.{id}.{n}"),
                        b"garbage".to_vec().into(),
                    )
                    .await
                    .unwrap();
            }
            client.flush().await.unwrap();
            answers
        })
    });
    // Each is a typed refusal (a control reply the node could encode), never silence.
    assert_eq!(answers.len(), 4);
    assert!(answers.iter().all(|a| a.starts_with(b"CCH")), "{answers:?}");
    // The instance that got garbage gave up typed; the pool re-placed it and serves on.
    let deadline = std::time::Instant::now() + HANG;
    loop {
        match get(p.add(1)) {
            Ok(_) => break,
            Err(Error::WorkerLost { .. } | Error::Transport(_)) => {}
            Err(e) => panic!("{e:?}"),
        }
        assert!(std::time::Instant::now() < deadline);
    }
    assert!(node.instances() >= 1);
    drop(p);
    node.drain().unwrap();
}

#[test]
fn a_cancel_reaches_a_method_running_on_a_node() {
    let Some(s) = LocalServer::for_tests() else {
        return;
    };
    let c = cluster(&s.url());
    let _a = NodeProc::start(&s.url(), "a", 1);
    c.wait_for_nodes(1, HANG).unwrap();
    let p = pool(&c, 1);
    let started = std::env::temp_dir().join(format!(
        "concurry-cluster-spin-{}-{}",
        std::process::id(),
        concurry::cluster::Cluster::namespace(&c)
    ));
    let _ = std::fs::remove_file(&started);
    let call = p.spin(started.to_string_lossy().into_owned());
    let deadline = std::time::Instant::now() + HANG;
    while !started.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the spin never started"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    let at = std::time::Instant::now();
    assert!(call.cancel());
    assert!(matches!(call.result(), Err(Error::Cancelled)));
    // The one instance answers the next call only once the spin returned (it would spin for
    // 120 s, past HANG, had the cancel not reached it on the node).
    assert_eq!(get(p.add(0)).unwrap(), 10);
    eprintln!(
        "cluster: the next call was answered {:?} after cancel()",
        at.elapsed()
    );
    let _ = std::fs::remove_file(&started);
}

#[test]
fn a_reply_resolves_its_call_on_the_runtime_thread_that_read_it() {
    let Some(s) = LocalServer::for_tests() else {
        return;
    };
    let c = cluster(&s.url());
    let _a = NodeProc::start(&s.url(), "a", 1);
    c.wait_for_nodes(1, HANG).unwrap();
    let p = pool(&c, 1);
    // No reader thread between the subscription and the promise (a thread hop per call).
    let (tx, rx) = std::sync::mpsc::channel();
    let f = p.slow(1, 300);
    f.on_done(move |_| {
        let _ = tx.send(std::thread::current().name().map(str::to_string));
    });
    assert_eq!(get(f).unwrap(), 1);
    let on = rx.recv_timeout(HANG).expect("the callback ran");
    assert!(
        on.as_deref()
            .is_some_and(|n| n.starts_with("concurry-async")),
        "resolved on thread {on:?}, not on the runtime thread that received the reply"
    );
    p.stop().unwrap();
    assert!(matches!(get(p.add(1)), Err(Error::Stopped)));
}

/// A nats-server with a configuration of the test's own.
struct ConfServer {
    child: std::process::Child,
    port: u16,
    conf: std::path::PathBuf,
}

impl ConfServer {
    fn start(config: &str) -> ConfServer {
        let bin = std::env::var_os("NATS_SERVER")
            .map(std::path::PathBuf::from)
            .or_else(|| {
                let debian = std::path::Path::new("/usr/sbin/nats-server");
                debian.exists().then(|| debian.to_path_buf())
            })
            .unwrap_or_else(|| "nats-server".into());
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let conf = std::env::temp_dir().join(format!("concurry-conf-{port}.conf"));
        std::fs::write(&conf, config).unwrap();
        let child = std::process::Command::new(bin)
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-c"])
            .arg(&conf)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("nats-server runs");
        within("nats-server listens", move || {
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        ConfServer { child, port, conf }
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for ConfServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.conf);
    }
}

#[test]
fn a_call_outlasting_the_servers_ping_limit_keeps_the_instances_connection() {
    // (`for_tests` skips without a server installed, or fails under CI=true.)
    let Some(_installed) = LocalServer::for_tests() else {
        return;
    };
    // Pings each client every 100 ms and drops one that leaves a ping unanswered (the
    // default is every 2 minutes, two unanswered).
    let s = ConfServer::start("ping_interval: \"100ms\"\nping_max: 1\n");
    let c = cluster(&s.url());
    let _a = NodeProc::start(&s.url(), "a", 1);
    c.wait_for_nodes(1, HANG).unwrap();
    let p = pool(&c, 1);
    // The instance's thread runs this call for 3 s, far past the server's ping limit: its
    // connection must still answer the server meanwhile, or the server drops it and the
    // call sent below (after the drop would have happened) reaches nobody.
    let long = p.slow(1, 3000);
    std::thread::sleep(Duration::from_millis(1500));
    let next = p.add(1);
    assert_eq!(get(long).unwrap(), 1);
    assert_eq!(get(next).unwrap(), 11);
    p.stop().unwrap();
}

#[test]
fn an_instance_refused_a_connection_of_its_own_serves_on_the_nodes() {
    let Some(_installed) = LocalServer::for_tests() else {
        return;
    };
    // Three connections: this test's, the node's, and one instance's own; the second
    // instance's is refused, and it serves on the node's connection instead.
    let s = ConfServer::start("max_connections: 3\n");
    let c = cluster(&s.url());
    let _a = NodeProc::start(&s.url(), "a", 2);
    c.wait_for_nodes(1, HANG).unwrap();
    let p = pool(&c, 2);
    assert_eq!(p.stats().per_worker.len(), 2);
    // Calls at once spread over both instances; every one is answered.
    let calls: Vec<_> = (0..8).map(|i| p.slow(i, 50)).collect();
    for (i, f) in calls.into_iter().enumerate() {
        assert_eq!(get(f).unwrap(), i as u64);
    }
    let served: Vec<u64> = p.stats().per_worker.iter().map(|w| w.dispatched).collect();
    assert!(served.iter().all(|&n| n > 0), "{served:?}");
    p.stop().unwrap();
}
