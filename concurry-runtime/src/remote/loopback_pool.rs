//! A whole [`Pool`] on the loopback transport: the pool-level behaviours of a pool whose
//! workers are remote (round robin over the instances, `max_queued_tasks`, stop draining,
//! drop resolving everything, a peer killed mid-call, retries, stats), with every instance
//! a thread of this process instead of a child process.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::RemoteWorker;
use super::loopback::Loopback;
use crate::error::Error;
use crate::future::Promise;
use crate::options::{LoadBalancing, Mode, PoolConfig};
use crate::pool::{MethodRetry, Pool};
use crate::retry::RetryConfig;
use crate::sync::os::{Arc, AtomicU64, Mutex, Ordering, lock};
use crate::worker::Worker;

/// Bounds every wait, so a broken test fails instead of hanging.
const HANG: Duration = Duration::from_secs(30);

/// Gates a call can wait at, opened by the test; and how many calls entered each.
static OPEN: Mutex<Option<HashSet<u64>>> = Mutex::new(None);
static ENTERED: Mutex<Option<HashMap<u64, u32>>> = Mutex::new(None);
static GATE_COUNT: AtomicU64 = AtomicU64::new(0);

fn gate() -> u64 {
    GATE_COUNT.fetch_add(1, Ordering::Relaxed)
}

fn open(gate: u64) {
    lock(&OPEN).get_or_insert_with(HashSet::new).insert(gate);
}

fn entered(gate: u64) -> u32 {
    lock(&ENTERED)
        .as_ref()
        .and_then(|e| e.get(&gate).copied())
        .unwrap_or(0)
}

/// Waits (at most [`HANG`]) until `n` calls entered `gate`.
fn wait_entered(gate: u64, n: u32) {
    let deadline = Instant::now() + HANG;
    while entered(gate) < n {
        assert!(
            Instant::now() < deadline,
            "gate {gate}: no call {n} within {HANG:?}"
        );
        crate::sync::os::sleep(Duration::from_millis(1));
    }
}

/// The loopback peer serving the current thread (its id, from the thread's name).
fn me() -> u32 {
    std::thread::current()
        .name()
        .and_then(|n| n.strip_prefix("concurry-loopback-"))
        .and_then(|id| id.parse().ok())
        .expect("a call served on a loopback thread")
}

/// A worker type with both faces, written by hand as `#[worker(remote)]` generates it.
struct Tally {
    served: u64,
}

#[derive(Serialize, Deserialize)]
enum Req {
    /// Counts a call on this instance.
    Next,
    /// Which peer serves it.
    Where,
    /// Waits until the gate opens (or [`HANG`] passes).
    Hold(u64),
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
enum Resp {
    /// The instance's count so far, and its peer.
    Count(u64, u32),
    Peer(u32),
    /// Whether the gate opened, and the peer that waited.
    Held(bool, u32),
}

impl Worker for Tally {
    type Args = u64;
    type InitError = String;
    const NAME: &'static str = "Tally";

    fn construct(start: u64) -> Result<Self, String> {
        <Self as RemoteWorker>::construct(start)
    }
}

impl RemoteWorker for Tally {
    const NAME: &'static str = "concurry::loopback_pool::tests::Tally";
    type Args = u64;
    type Request = Req;
    type Response = Resp;
    type InitError = String;

    fn construct(start: u64) -> Result<Self, String> {
        Ok(Tally { served: start })
    }

    fn dispatch(&mut self, request: Req) -> Resp {
        match request {
            Req::Next => {
                self.served += 1;
                Resp::Count(self.served, me())
            }
            Req::Where => Resp::Peer(me()),
            Req::Hold(gate) => {
                *lock(&ENTERED)
                    .get_or_insert_with(HashMap::new)
                    .entry(gate)
                    .or_default() += 1;
                let deadline = Instant::now() + HANG;
                while !lock(&OPEN).as_ref().is_some_and(|o| o.contains(&gate)) {
                    if Instant::now() > deadline {
                        return Resp::Held(false, me());
                    }
                    crate::sync::os::sleep(Duration::from_millis(1));
                }
                Resp::Held(true, me())
            }
        }
    }
}

fn config(workers: usize) -> PoolConfig {
    PoolConfig {
        mode: Mode::Process,
        max_workers: Some(workers),
        load_balancing: LoadBalancing::RoundRobin,
        restart_backoff: (Duration::from_millis(1), Duration::from_millis(10)),
        ..PoolConfig::default()
    }
}

fn start(config: PoolConfig) -> (Arc<Loopback>, Pool<Tally>) {
    let transport = Arc::new(Loopback::new().with::<Tally>());
    let pool = Pool::<Tally>::start_on(transport.clone(), config, 0).unwrap();
    (transport, pool)
}

/// One call, as generated code makes it (the whole response is the result).
fn call(pool: &Pool<Tally>, req: Req) -> Promise<Resp> {
    pool.remote_method("call", &MethodRetry::inherit(), req, |r| Some(Ok(r)))
        .expect("a pool on a transport takes remote calls")
}

fn peer(pool: &Pool<Tally>) -> u32 {
    match call(pool, Req::Where).result_timeout(HANG) {
        Ok(Resp::Peer(id)) => id,
        other => panic!("expected a peer, got {other:?}"),
    }
}

/// Runs `f` on its own thread, failing if it takes more than [`HANG`] (a stop or drop
/// that hangs).
fn within<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = crossbeam_channel::bounded(1);
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(HANG)
        .unwrap_or_else(|e| panic!("not done within {HANG:?}: {e}"))
}

#[test]
fn calls_go_round_robin_over_the_instances_each_with_its_state_and_stats() {
    let (_t, pool) = start(config(3));
    let peers: Vec<u32> = (0..6).map(|_| peer(&pool)).collect();
    assert_eq!(peers[..3], peers[3..], "round robin: {peers:?}");
    let distinct: HashSet<_> = peers.iter().collect();
    assert_eq!(distinct.len(), 3, "three instances: {peers:?}");
    // Each instance counts its own calls.
    let counts: Vec<_> = (0..6).map(|_| call(&pool, Req::Next)).collect();
    let mut got: Vec<(u64, u32)> = counts
        .into_iter()
        .map(|p| match p.result_timeout(HANG) {
            Ok(Resp::Count(n, id)) => (n, id),
            other => panic!("{other:?}"),
        })
        .collect();
    got.sort_unstable_by_key(|&(n, id)| (id, n));
    for pair in got.chunks(2) {
        assert_eq!((pair[0].0, pair[1].0), (1, 2), "{got:?}");
        assert_eq!(pair[0].1, pair[1].1, "{got:?}");
    }
    let stats = pool.stats();
    assert_eq!(stats.mode, Mode::Process);
    assert_eq!((stats.workers, stats.max_workers), (3, 3));
    let dispatched: Vec<u64> = stats.per_worker.iter().map(|w| w.dispatched).collect();
    assert_eq!(dispatched, [4, 4, 4]);
    // A held call counts as in flight on its instance (round robin: the first).
    let g = gate();
    let held = call(&pool, Req::Hold(g));
    wait_entered(g, 1);
    assert!(pool.stats().per_worker[0].in_flight >= 1);
    open(g);
    assert!(matches!(
        held.result_timeout(HANG),
        Ok(Resp::Held(true, id)) if id == peers[0]
    ));
    within(move || pool.stop()).unwrap();
}

#[test]
fn max_queued_tasks_holds_the_caller_until_an_instance_has_room() {
    let (_t, pool) = start(PoolConfig {
        max_queued_tasks: Some(1),
        ..config(2)
    });
    let (g0, g1) = (gate(), gate());
    let held = [call(&pool, Req::Hold(g0)), call(&pool, Req::Hold(g1))];
    wait_entered(g0, 1);
    wait_entered(g1, 1);
    // Both instances are full: a third call waits in its caller for room.
    let (tx, rx) = crossbeam_channel::bounded(1);
    let submitter = {
        let pool = pool.clone();
        std::thread::spawn(move || {
            let p = call(&pool, Req::Next);
            let _ = tx.send(());
            p.result_timeout(HANG)
        })
    };
    // Cannot fail on a correct pool (the caller stays held); gives a broken one a moment.
    assert!(rx.recv_timeout(Duration::from_millis(50)).is_err());
    let stats = pool.stats();
    assert!(
        stats.per_worker.iter().all(|w| w.in_flight <= 1),
        "{stats:?}"
    );
    open(g0);
    rx.recv_timeout(HANG).expect("room on the first instance");
    let third = submitter.join().unwrap();
    assert!(matches!(third, Ok(Resp::Count(1, _))), "{third:?}");
    open(g1);
    for h in held {
        assert!(matches!(h.result_timeout(HANG), Ok(Resp::Held(true, _))));
    }
    within(move || pool.stop()).unwrap();
}

#[test]
fn stop_drains_the_queued_calls_then_refuses_new_ones() {
    let (_t, pool) = start(config(2));
    let queued: Vec<_> = (0..2000).map(|_| call(&pool, Req::Next)).collect();
    let pool = within(move || {
        let stopped = pool.stop();
        (pool, stopped)
    });
    pool.1.unwrap();
    let mut per_peer: HashMap<u32, u64> = HashMap::new();
    for p in queued {
        match p.result_timeout(HANG) {
            Ok(Resp::Count(n, id)) => {
                let last = per_peer.entry(id).or_default();
                assert_eq!(n, *last + 1, "in order on peer {id}");
                *last = n;
            }
            other => panic!("expected a count, got {other:?}"),
        }
    }
    assert_eq!(per_peer.values().sum::<u64>(), 2000);
    assert!(matches!(
        call(&pool.0, Req::Next).result_timeout(HANG),
        Err(Error::Stopped)
    ));
}

#[test]
fn dropping_the_pool_resolves_every_promise() {
    let (_t, pool) = start(config(3));
    let queued: Vec<_> = (0..1000).map(|_| call(&pool, Req::Next)).collect();
    within(move || drop(pool));
    for p in queued {
        assert!(
            matches!(p.result_timeout(HANG), Ok(Resp::Count(..))),
            "a queued call is finished by the stop that dropping the pool makes"
        );
    }
}

#[test]
fn a_peer_killed_mid_call_fails_its_call_as_lost_and_the_pool_serves_on() {
    let (t, pool) = start(config(2));
    let first = [peer(&pool), peer(&pool)];
    let g = gate();
    // Round robin: the third call goes to the first instance.
    let held = call(&pool, Req::Hold(g));
    wait_entered(g, 1);
    t.kill(first[0]);
    match held.result_timeout(HANG) {
        Err(Error::WorkerLost { message }) => assert!(message.contains("was killed"), "{message}"),
        other => panic!("expected WorkerLost, got {other:?}"),
    }
    open(g);
    // The instance was respawned (a new peer, its state built again); the other one
    // served on untouched.
    let now: HashSet<u32> = (0..4).map(|_| peer(&pool)).collect();
    assert!(now.contains(&first[1]), "{now:?} {first:?}");
    assert!(!now.contains(&first[0]), "{now:?} {first:?}");
    assert_eq!(now.len(), 2, "{now:?}");
    let counts: Vec<u64> = (0..2)
        .map(|_| match call(&pool, Req::Next).result_timeout(HANG) {
            Ok(Resp::Count(n, _)) => n,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(counts, [1, 1]);
    let stats = pool.stats();
    assert_eq!(stats.workers, 2);
    assert_eq!(
        stats.per_worker.iter().map(|w| w.dispatched).sum::<u64>(),
        2 + 1 + 4 + 2
    );
    within(move || pool.stop()).unwrap();
}

#[test]
fn a_call_retried_on_worker_lost_succeeds_on_the_respawned_peer() {
    let retry = RetryConfig::attempts(3)
        .retry_on_worker_lost(true)
        .wait(Duration::from_millis(1));
    let (t, pool) = start(PoolConfig {
        retry: Some(std::sync::Arc::new(retry)),
        ..config(1)
    });
    let first = peer(&pool);
    let g = gate();
    let held = call(&pool, Req::Hold(g));
    wait_entered(g, 1);
    t.kill(first);
    // The second attempt reaches the respawned peer, and waits at the same gate.
    wait_entered(g, 2);
    open(g);
    match held.result_timeout(HANG) {
        Ok(Resp::Held(true, id)) => assert_ne!(id, first, "answered by the new peer"),
        other => panic!("expected the retried call's answer, got {other:?}"),
    }
    assert_eq!(entered(g), 2, "two attempts");
    within(move || pool.stop()).unwrap();
}
