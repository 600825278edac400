//! The foundation's behaviour in every mode, process mode included: one `#[worker(remote)]`
//! type, the same tests over `Sync`, `Thread`, `Async` and `Process` (and `Cluster`, on two
//! in-process nodes, with the `cluster` feature).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use concurry::prelude::*;

use crate::common::quiet_planned_panics;

/// Every mode, the child-process one included; with the `cluster` feature, cluster mode too
/// (on two in-process nodes of a nats-server of its own, started per test by [`env`]; skipped
/// with one line when none is installed, except under `CI=true`).
fn all_modes() -> Vec<Mode> {
    let mut modes = vec![Mode::Sync, Mode::Thread, Mode::Async, Mode::Process];
    if cfg!(feature = "cluster") {
        modes.push(Mode::Cluster);
    }
    modes
}

#[cfg(feature = "cluster")]
mod cluster_env {
    use std::cell::RefCell;

    use concurry::cluster::{Cluster, LocalServer, Node, RunningNode};

    /// A server and two nodes, alive while a test uses `Mode::Cluster`.
    pub(super) struct Env {
        _nodes: Vec<RunningNode>,
        _server: LocalServer,
    }

    thread_local! {
        static CLUSTER: RefCell<Option<Cluster>> = const { RefCell::new(None) };
    }

    impl Drop for Env {
        fn drop(&mut self) {
            CLUSTER.with(|c| c.borrow_mut().take());
        }
    }

    /// For `Mode::Cluster`: a server and two nodes (capacity 8 each); `options` then gives
    /// pools this thread makes their cluster.
    pub(super) fn start() -> Option<Env> {
        let server = LocalServer::for_tests()?;
        let cluster = Cluster::connect(server.url()).expect("connects");
        let nodes: Vec<RunningNode> = ["n1", "n2"]
            .iter()
            .map(|n| {
                Node::new(cluster.clone())
                    .name(*n)
                    .capacity(8)
                    .start()
                    .unwrap()
            })
            .collect();
        cluster
            .wait_for_nodes(2, super::HANG)
            .expect("the nodes show up");
        CLUSTER.with(|c| *c.borrow_mut() = Some(cluster));
        Some(Env {
            _nodes: nodes,
            _server: server,
        })
    }

    pub(super) fn cluster() -> Option<Cluster> {
        CLUSTER.with(|c| c.borrow().clone())
    }
}

/// What a test keeps alive while it uses `mode` (cluster mode: a server and two nodes).
#[cfg(feature = "cluster")]
fn env(mode: Mode) -> Option<cluster_env::Env> {
    if mode == Mode::Cluster {
        cluster_env::start()
    } else {
        None
    }
}

#[cfg(not(feature = "cluster"))]
fn env(_: Mode) -> Option<()> {
    None
}

/// The options of a pool of `Echo` in `mode` (in cluster mode, on this test's cluster).
fn options(mode: Mode) -> EchoOptions {
    let o = Echo::options().mode(mode);
    #[cfg(feature = "cluster")]
    if let Some(c) = cluster_env::cluster() {
        return o.cluster(c);
    }
    o
}

/// True for `Mode::Cluster` without its server (no nats-server installed, or no `cluster`
/// feature): the test skips that mode.
fn skipped<T>(mode: Mode, env: &Option<T>) -> bool {
    mode == Mode::Cluster && env.is_none()
}

/// Bounds every wait, so a broken test fails instead of hanging.
const HANG: Duration = Duration::from_secs(60);

/// A gate that works across processes: a file the test creates to open it.
struct FileGate(PathBuf);

impl FileGate {
    fn new() -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "concurry-gate-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        FileGate(std::env::temp_dir().join(name))
    }

    fn path(&self) -> String {
        self.0.to_string_lossy().into_owned()
    }

    fn open(&self) {
        std::fs::write(&self.0, b"open").unwrap();
    }
}

impl Drop for FileGate {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

pub struct Echo {
    served: u64,
}

#[concurry::worker(remote)]
impl Echo {
    pub fn new(start: u64) -> Self {
        // Also in a worker process, whose panic hook is its own.
        quiet_planned_panics();
        Echo { served: start }
    }

    /// Counts calls served by this instance, in order.
    pub fn next(&mut self) -> u64 {
        self.served += 1;
        self.served
    }

    /// Where the instance lives: its process and thread.
    pub fn place(&self) -> (u32, String) {
        (
            std::process::id(),
            format!("{:?}", std::thread::current().id()),
        )
    }

    pub fn maybe_panic(&self, i: u32) -> u32 {
        if i.is_multiple_of(10) {
            panic!("planned panic {i}");
        }
        i
    }

    pub fn check(&self, ok: bool) -> Result<u8, String> {
        if ok { Ok(1) } else { Err("not ok".to_string()) }
    }

    pub async fn twice(&self, x: u64) -> u64 {
        tokio::task::yield_now().await;
        x * 2
    }

    pub async fn add(&mut self, x: u64) -> u64 {
        tokio::task::yield_now().await;
        self.served += x;
        self.served
    }

    /// Blocks until the gate's file exists (at most a minute).
    pub fn hold(&self, gate: String) -> bool {
        let deadline = Instant::now() + HANG;
        while !std::path::Path::new(&gate).exists() {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        true
    }
}

fn echo(mode: Mode, workers: usize) -> EchoHandle {
    let workers = if mode == Mode::Sync { 1 } else { workers };
    options(mode)
        .max_workers(workers)
        .init(0)
        .expect("valid options")
}

#[test]
fn every_kind_of_method_in_every_mode() {
    for mode in all_modes() {
        let env = env(mode);
        if skipped(mode, &env) {
            continue;
        }
        let p = echo(mode, 1);
        assert_eq!(p.next().result_timeout(HANG).unwrap(), 1, "{mode}");
        assert_eq!(p.twice(21).result_timeout(HANG).unwrap(), 42, "{mode}");
        assert_eq!(p.add(10).result_timeout(HANG).unwrap(), 11, "{mode}");
        assert_eq!(p.check(true).result_timeout(HANG).unwrap(), 1, "{mode}");
        match p.check(false).result_timeout(HANG) {
            Err(Error::Method(e)) => assert_eq!(e, "not ok"),
            other => panic!("{mode}: expected the method's error, got {other:?}"),
        }
        assert_eq!(p.blocking().next().unwrap(), 12, "{mode}");
        let (pid, _) = p.place().result_timeout(HANG).unwrap();
        // (Cluster mode's two nodes run in this process here.)
        assert_eq!(pid == std::process::id(), mode != Mode::Process, "{mode}");
        assert_eq!(p.stats().mode, mode);
        p.stop().unwrap();
    }
}

/// A worker holds state, so with default options a pool has one instance: calls that
/// change it and calls that read it meet the same state (issue 10, item 8).
#[test]
fn a_stateful_worker_has_one_instance_by_default() {
    for mode in all_modes() {
        let env = env(mode);
        if skipped(mode, &env) {
            continue;
        }
        let p = options(mode).init(0).unwrap();
        let served: Vec<_> = (0..8).map(|_| p.next()).collect();
        let served: Vec<u64> = served
            .into_iter()
            .map(|f| f.result_timeout(HANG).unwrap())
            .collect();
        assert_eq!(served, (1..=8).collect::<Vec<_>>(), "{mode}");
        let stats = p.stats();
        assert_eq!((stats.max_workers, stats.workers), (1, 1), "{mode}");
        p.stop().unwrap();
    }
}

#[test]
fn calls_to_one_worker_run_in_submission_order() {
    for mode in all_modes() {
        let env = env(mode);
        if skipped(mode, &env) {
            continue;
        }
        let p = echo(mode, 1);
        let futures: Vec<_> = (0..1000).map(|_| p.next()).collect();
        let got: Vec<u64> = futures
            .into_iter()
            .map(|f| f.result_timeout(HANG).unwrap())
            .collect();
        assert_eq!(got, (1..=1000).collect::<Vec<_>>(), "{mode}");
        p.stop().unwrap();
    }
}

#[test]
fn ten_thousand_calls_with_ten_percent_panics_lose_nothing() {
    quiet_planned_panics();
    for mode in all_modes() {
        let env = env(mode);
        if skipped(mode, &env) {
            continue;
        }
        let p = echo(mode, 4);
        let futures: Vec<_> = (0..10_000).map(|i| p.maybe_panic(i)).collect();
        let (mut ok, mut panicked) = (0, 0);
        for (i, f) in futures.into_iter().enumerate() {
            match f.result_timeout(HANG) {
                Ok(v) => {
                    assert_eq!(v as usize, i);
                    ok += 1;
                }
                Err(Error::Panicked { message }) => {
                    assert_eq!(message, format!("planned panic {i}"));
                    panicked += 1;
                }
                Err(e) => panic!("{mode}: unexpected {e}"),
            }
        }
        assert_eq!((ok, panicked), (9_000, 1_000), "{mode}");
        assert_eq!(p.check(true).result_timeout(HANG).unwrap(), 1, "{mode}");
        p.stop().unwrap();
    }
}

#[test]
fn round_robin_spreads_calls_evenly_over_workers() {
    for mode in [Mode::Thread, Mode::Async, Mode::Process, Mode::Cluster] {
        let env = env(mode);
        if skipped(mode, &env) {
            continue;
        }
        let p = options(mode)
            .max_workers(3)
            .load_balancing(LoadBalancing::RoundRobin)
            .init(0)
            .unwrap();
        let places: Vec<_> = (0..6).map(|_| p.place()).collect();
        let mut places: Vec<_> = places
            .into_iter()
            .map(|f| f.result_timeout(HANG).unwrap())
            .collect();
        // Calls i and i + 3 went to the same worker, and the three workers are distinct
        // (in async mode, tasks of one runtime may share threads, so compare processes and
        // dispatch counts there).
        let stats = p.stats();
        assert_eq!(
            stats
                .per_worker
                .iter()
                .map(|w| w.dispatched)
                .collect::<Vec<_>>(),
            [2, 2, 2],
            "{mode}"
        );
        if mode != Mode::Async {
            assert_eq!(places[0], places[3], "{mode}");
            places.sort();
            places.dedup();
            assert_eq!(places.len(), 3, "{mode}: {places:?}");
        }
        p.stop().unwrap();
    }
}

#[test]
fn stop_drains_ten_thousand_queued_calls() {
    for mode in all_modes() {
        let env = env(mode);
        if skipped(mode, &env) {
            continue;
        }
        let p = echo(mode, 2);
        let futures: Vec<_> = (0..10_000).map(|_| p.next()).collect();
        p.stop().unwrap();
        for f in futures {
            let r = f.result_timeout(HANG);
            assert!(r.is_ok(), "{mode}: {r:?}");
        }
    }
}

#[test]
fn stop_fails_what_outlives_stop_timeout_and_leaves_no_process() {
    for mode in [Mode::Thread, Mode::Process] {
        let p = options(mode)
            .max_workers(1)
            .stop_timeout(Duration::from_millis(50))
            .init(0)
            .unwrap();
        let (pid, _) = p.place().result_timeout(HANG).unwrap();
        let gate = FileGate::new();
        let held = p.hold(gate.path());
        // More calls than a busy child's socket buffer holds: submitting never blocks.
        let queued: Vec<_> = (0..10_000).map(|_| p.next()).collect();
        match (mode, p.stop()) {
            // The thread is left in its call; the child is killed, so its call failed too.
            (Mode::Thread, Err(Error::StopTimeout { failed, running })) => {
                assert_eq!((failed, running), (10_000, 1));
            }
            (_, Err(Error::StopTimeout { failed, running })) => {
                assert_eq!((failed, running), (10_001, 0));
            }
            (_, other) => panic!("{mode}: {other:?}"),
        }
        gate.open();
        for f in queued {
            assert!(
                matches!(f.result_timeout(HANG), Err(Error::Stopped)),
                "{mode}"
            );
        }
        match (mode, held.result_timeout(HANG)) {
            // A thread cannot be killed: the running call finishes once the gate opens.
            (Mode::Thread, r) => assert!(r.unwrap(), "{mode}"),
            // A process can: the call is failed and the child is gone, reaped.
            (_, r) => {
                assert!(matches!(r, Err(Error::Stopped)), "{r:?}");
                assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
            }
        }
    }
}

#[test]
fn calls_after_stop_fail_at_once() {
    for mode in all_modes() {
        let env = env(mode);
        if skipped(mode, &env) {
            continue;
        }
        let p = echo(mode, 2);
        p.stop().unwrap();
        assert!(p.is_stopped());
        assert!(
            matches!(p.next().result_timeout(HANG), Err(Error::Stopped)),
            "{mode}"
        );
        assert!(
            matches!(p.twice(1).result_timeout(HANG), Err(Error::Stopped)),
            "{mode}"
        );
        assert!(p.stats().stopped);
        p.stop().unwrap();
    }
}

#[test]
fn dropping_the_last_handle_stops_the_pool_and_resolves_everything() {
    for mode in all_modes() {
        let env = env(mode);
        if skipped(mode, &env) {
            continue;
        }
        let p = echo(mode, 2);
        let clone = p.clone();
        let futures: Vec<_> = (0..1000).map(|_| clone.next()).collect();
        drop(p);
        drop(clone);
        for f in futures {
            let r = f.result_timeout(HANG);
            assert!(r.is_ok(), "{mode}: {r:?}");
        }
    }
}

#[test]
fn submitting_beyond_max_queued_tasks_waits() {
    for mode in [Mode::Thread, Mode::Process, Mode::Cluster] {
        let env = env(mode);
        if skipped(mode, &env) {
            continue;
        }
        let p = options(mode)
            .max_workers(1)
            .max_queued_tasks(2)
            .init(0)
            .unwrap();
        let gate = FileGate::new();
        let held = p.hold(gate.path());
        let second = p.next();
        let submitted = Arc::new(AtomicBool::new(false));
        let submitter = {
            let (p, submitted) = (p.clone(), submitted.clone());
            std::thread::spawn(move || {
                let third = p.next();
                submitted.store(true, Ordering::SeqCst);
                third.result_timeout(HANG).unwrap()
            })
        };
        // Generous: the submitter cannot get past a full worker before the gate opens.
        std::thread::sleep(Duration::from_millis(50));
        assert!(
            !submitted.load(Ordering::SeqCst),
            "{mode}: a third call got in while two were in flight"
        );
        assert_eq!(p.stats().per_worker[0].in_flight, 2, "{mode}");
        gate.open();
        assert!(held.result_timeout(HANG).unwrap());
        assert_eq!(second.result_timeout(HANG).unwrap(), 1, "{mode}");
        assert_eq!(submitter.join().unwrap(), 2, "{mode}");
        p.stop().unwrap();
    }
}

#[test]
fn promises_as_arguments_chain_across_modes() {
    for mode in all_modes() {
        let env = env(mode);
        if skipped(mode, &env) {
            continue;
        }
        let p = echo(mode, 2);
        let chained = p.twice(p.twice(p.add(5)));
        assert_eq!(chained.result_timeout(HANG).unwrap(), 20, "{mode}");
        p.stop().unwrap();
    }
}
