//! Limits through `#[concurry::worker]`: shared by every worker of a pool in every mode,
//! charged before each call, reachable inside methods with `concurry::limits()`, released
//! on stop and cancel.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use concurry::prelude::*;
use concurry::{FakeClock, LimitError};

use crate::common::{Gate, MODES};

#[derive(Clone, Default)]
pub struct Log {
    starts: Arc<Mutex<Vec<Instant>>>,
    active: Arc<AtomicUsize>,
    max_active: Arc<AtomicUsize>,
}

pub struct Limited {
    log: Log,
}

#[concurry::worker]
impl Limited {
    pub fn new(log: Log) -> Self {
        Limited { log }
    }

    /// Records when it ran.
    pub fn tick(&self) -> usize {
        let mut starts = self.log.starts.lock().unwrap();
        starts.push(Instant::now());
        starts.len()
    }

    /// The async flavour of `tick`.
    pub async fn tick_async(&self) -> usize {
        tokio::task::yield_now().await;
        self.tick()
    }

    /// Holds the call open until `gate` opens, tracking how many run at once.
    pub fn busy(&self, gate: Gate) -> usize {
        let now = self.log.active.fetch_add(1, Ordering::SeqCst) + 1;
        self.log.max_active.fetch_max(now, Ordering::SeqCst);
        gate.wait();
        self.log.active.fetch_sub(1, Ordering::SeqCst);
        now
    }

    /// Takes `want` tokens from the pool's limits, reports `used`, returns the charge.
    pub fn tokens(&self, want: u64, used: u64) -> Result<u64, LimitError> {
        let mut acq = concurry::limits().acquire(&[("tokens", want)])?;
        acq.update(&[("tokens", used)])?;
        Ok(acq.charged("tokens").unwrap_or(0))
    }

    /// The async flavour; the set is still there after an `.await`.
    pub async fn tokens_async(&self, want: u64) -> Result<u64, LimitError> {
        let acq = concurry::limits()
            .acquire_async(&[("tokens", want)])
            .await?;
        tokio::task::yield_now().await;
        assert!(
            !concurry::limits().is_empty(),
            "limits() lost across an await"
        );
        Ok(acq.charged("tokens").unwrap_or(0))
    }

    /// An empty request to the pool's limits.
    pub fn nothing(&self) -> Result<(), LimitError> {
        concurry::limits().acquire(&[]).map(drop)
    }

    /// Whether the method sees the pool's limits.
    pub fn sees_limits(&self) -> bool {
        !concurry::limits().is_empty()
    }

    pub async fn sees_limits_async(&self) -> bool {
        tokio::task::yield_now().await;
        !concurry::limits().is_empty()
    }
}

fn used(set: &LimitSet, key: &str) -> u64 {
    set.stats().into_iter().find(|s| s.key == key).unwrap().used
}

fn waiters(set: &LimitSet, key: &str) -> usize {
    set.stats()
        .into_iter()
        .find(|s| s.key == key)
        .unwrap()
        .waiters
}

/// Spins on real time (bounded) until `cond` holds.
fn eventually(what: &str, cond: impl Fn() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out until {what}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn a_call_limit_is_shared_by_every_worker_in_every_mode() {
    for mode in [Mode::Thread, Mode::Async] {
        let clock = FakeClock::new();
        let set = LimitSet::builder()
            .limit(CallLimit::per_second(5))
            .clock(clock.clone())
            .build()
            .unwrap();
        let log = Log::default();
        let pool = Limited::options()
            .mode(mode)
            .max_workers(4)
            .limits(&set)
            .init(log.clone())
            .unwrap();
        let futures: Vec<_> = (0..12).map(|_| pool.tick()).collect();
        eventually("five calls ran", || log.starts.lock().unwrap().len() == 5);
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(
            log.starts.lock().unwrap().len(),
            5,
            "{mode}: over the limit"
        );
        // Workers with calls left wait for the limit (at most one waiter per worker).
        eventually("a worker waits", || waiters(&set, "call_count") >= 1);
        assert!(waiters(&set, "call_count") <= 4, "{mode}");
        clock.advance(Duration::from_secs(1));
        eventually("ten calls ran", || log.starts.lock().unwrap().len() == 10);
        clock.advance(Duration::from_secs(1));
        for f in futures {
            f.result().unwrap();
        }
        assert_eq!(used(&set, "call_count"), 2, "{mode}");
        pool.stop().unwrap();
    }
}

#[test]
fn sync_mode_charges_every_call_too() {
    let set = LimitSet::new([CallLimit::per_hour(3)]).unwrap();
    let pool = Limited::options()
        .mode(Mode::Sync)
        .limits(&set)
        .init(Log::default())
        .unwrap();
    for _ in 0..3 {
        pool.tick().result().unwrap();
    }
    assert_eq!(used(&set, "call_count"), 3);
    pool.stop().unwrap();
}

#[test]
fn eight_thread_workers_never_exceed_twenty_calls_in_any_second() {
    let log = Log::default();
    let pool = Limited::options()
        .mode(Mode::Thread)
        .max_workers(8)
        .limits([CallLimit::per_second(20)])
        .init(log.clone())
        .unwrap();
    let start = Instant::now();
    let futures: Vec<_> = (0..100).map(|_| pool.tick()).collect();
    for f in futures {
        f.result().unwrap();
    }
    let elapsed = start.elapsed();
    let mut starts = log.starts.lock().unwrap().clone();
    starts.sort();
    for w in starts.windows(21) {
        // The method starts a moment after its admission: allow a little slack.
        let span = w[20] - w[0];
        assert!(
            span >= Duration::from_millis(950),
            "21 calls within {span:?}"
        );
    }
    // 100 calls at 20 per second: 20 at once, then four more windows.
    assert!(elapsed >= Duration::from_millis(3_990), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(8), "{elapsed:?}");
    pool.stop().unwrap();
}

#[test]
fn limits_inside_methods_are_the_pools_in_every_mode() {
    for mode in MODES {
        let set = LimitSet::new([
            CallLimit::per_minute(1000),
            RateLimit::per_minute("tokens", 1000),
        ])
        .unwrap();
        let pool = Limited::options()
            .mode(mode)
            .limits(&set)
            .init(Log::default())
            .unwrap();
        assert!(pool.sees_limits().result().unwrap(), "{mode}");
        assert!(pool.sees_limits_async().result().unwrap(), "{mode}");
        assert_eq!(pool.tokens(100, 30).result().unwrap(), 30, "{mode}");
        assert_eq!(pool.tokens_async(50).result().unwrap(), 50, "{mode}");
        assert_eq!(used(&set, "tokens"), 80, "{mode}");
        assert_eq!(used(&set, "call_count"), 4, "{mode}");
        match pool.tokens(5000, 1).result() {
            Err(Error::Method(LimitError::ExceedsCapacity { key, .. })) => {
                assert_eq!(key, "tokens")
            }
            other => panic!("{mode}: expected ExceedsCapacity, got {other:?}"),
        }
        pool.stop().unwrap();
    }
    // Outside a worker: an empty set, and the method still works as plain Rust.
    assert!(concurry::limits().is_empty());
    let plain = Limited::new(Log::default());
    assert_eq!(plain.tokens(10, 10).unwrap(), 0);
    assert!(!plain.sees_limits());
}

#[test]
fn a_pool_without_limits_refuses_every_key_in_every_mode() {
    for mode in MODES {
        let pool = Limited::options().mode(mode).init(Log::default()).unwrap();
        let unknown = |r: Result<u64, Error<LimitError>>| match r {
            Err(Error::Method(e @ LimitError::UnknownKey { .. })) => e.to_string(),
            other => panic!("{mode}: expected UnknownKey, got {other:?}"),
        };
        let msg = unknown(pool.tokens(10, 10).result());
        assert!(msg.contains("`tokens`"), "{mode}: {msg}");
        assert!(
            msg.contains("the pool was built without them") && msg.contains(".limits(..)"),
            "{mode}: {msg}"
        );
        unknown(pool.tokens_async(10).result());
        assert!(!pool.sees_limits().result().unwrap(), "{mode}");
        // Asking for nothing is fine: there is nothing to charge.
        pool.nothing().result().unwrap();
        pool.stop().unwrap();
    }
}

#[test]
fn an_empty_request_inside_a_method_names_the_rate_limits_in_every_mode() {
    for mode in MODES {
        let set = LimitSet::new([
            CallLimit::per_minute(1000),
            RateLimit::per_minute("tokens", 1000),
        ])
        .unwrap();
        let pool = Limited::options()
            .mode(mode)
            .limits(&set)
            .init(Log::default())
            .unwrap();
        match pool.nothing().result() {
            Err(Error::Method(LimitError::MissingAmount { keys })) => {
                assert_eq!(keys, ["tokens"], "{mode}")
            }
            other => panic!("{mode}: expected MissingAmount, got {other:?}"),
        }
        assert_eq!(used(&set, "tokens"), 0, "{mode}");
        pool.stop().unwrap();
    }
}

#[test]
fn a_resource_limit_bounds_concurrent_calls_across_the_pool() {
    for mode in [Mode::Thread, Mode::Async] {
        let log = Log::default();
        let pool = Limited::options()
            .mode(mode)
            .max_workers(4)
            .limits([ResourceLimit::new("slots", 2)])
            .init(log.clone())
            .unwrap();
        let gate = Gate::default();
        let futures: Vec<_> = (0..8).map(|_| pool.busy(gate.clone())).collect();
        eventually("two calls run", || log.active.load(Ordering::SeqCst) == 2);
        std::thread::sleep(Duration::from_millis(30));
        gate.open();
        for f in futures {
            assert!(f.result().unwrap() <= 2, "{mode}");
        }
        assert_eq!(log.max_active.load(Ordering::SeqCst), 2, "{mode}");
        pool.stop().unwrap();
    }
}

#[test]
fn one_limit_set_is_shared_by_two_pools() {
    let set = LimitSet::new([CallLimit::per_hour(100)]).unwrap();
    let a = Limited::options()
        .limits(&set)
        .init(Log::default())
        .unwrap();
    let b = Limited::options()
        .mode(Mode::Async)
        .limits(set.clone())
        .init(Log::default())
        .unwrap();
    a.tick().result().unwrap();
    b.tick().result().unwrap();
    assert_eq!(used(&set, "call_count"), 2);
    a.stop().unwrap();
    b.stop().unwrap();
}

#[test]
fn calls_waiting_for_a_limit_fail_with_stopped_when_the_pool_gives_up() {
    for mode in [Mode::Thread, Mode::Async] {
        let pool = Limited::options()
            .mode(mode)
            .max_workers(1)
            .limits([CallLimit::per_day(1)])
            .stop_timeout(Duration::from_millis(100))
            .init(Log::default())
            .unwrap();
        pool.tick().result().unwrap();
        let waiting = pool.tick();
        let _ = pool.stop();
        match waiting.result_timeout(Duration::from_secs(5)) {
            Err(Error::Stopped) => {}
            other => panic!("{mode}: expected Stopped, got {other:?}"),
        }
    }
}

#[test]
fn a_cancelled_call_does_not_consume_a_token() {
    for mode in [Mode::Thread, Mode::Async] {
        let clock = FakeClock::new();
        let set = LimitSet::builder()
            .limit(CallLimit::per_second(1))
            .clock(clock.clone())
            .build()
            .unwrap();
        let log = Log::default();
        let pool = Limited::options()
            .mode(mode)
            .max_workers(1)
            .limits(&set)
            .init(log.clone())
            .unwrap();
        pool.tick().result().unwrap();
        let cancelled = pool.tick();
        eventually("the call waits", || waiters(&set, "call_count") == 1);
        assert!(cancelled.cancel());
        eventually("the cancelled call leaves", || {
            waiters(&set, "call_count") == 0
        });
        clock.advance(Duration::from_secs(1));
        assert_eq!(used(&set, "call_count"), 0, "{mode}");
        pool.tick().result().unwrap();
        assert_eq!(used(&set, "call_count"), 1, "{mode}");
        assert_eq!(log.starts.lock().unwrap().len(), 2, "{mode}");
        pool.stop().unwrap();
    }
}

#[test]
fn invalid_limits_fail_init_with_a_config_error() {
    match Limited::options()
        .limits([RateLimit::per_second("tokens", 0)])
        .init(Log::default())
    {
        Err(Error::Config(e)) => {
            assert_eq!(e.option(), "limits");
            assert!(e.to_string().contains("`tokens`"), "{e}");
        }
        other => panic!("expected a config error, got {:?}", other.map(|_| ())),
    }
}

#[test]
fn async_calls_wait_for_limits_without_blocking_runtime_threads() {
    let clock = FakeClock::new();
    let set = LimitSet::builder()
        .limit(CallLimit::per_second(1))
        .clock(clock.clone())
        .build()
        .unwrap();
    let log = Log::default();
    let pool = Limited::options()
        .mode(Mode::Async)
        .max_workers(1)
        .limits(&set)
        .init(log.clone())
        .unwrap();
    // Shared async calls run concurrently on the one worker: one is admitted, the rest wait
    // (more waiters than the runtime has threads).
    let futures: Vec<_> = (0..6).map(|_| pool.tick_async()).collect();
    eventually("five calls wait", || waiters(&set, "call_count") == 5);
    eventually("one call ran", || log.starts.lock().unwrap().len() == 1);
    // The runtime threads are free: another async pool still answers at once.
    let other = Limited::options()
        .mode(Mode::Async)
        .init(Log::default())
        .unwrap();
    assert_eq!(
        other
            .tick_async()
            .result_timeout(Duration::from_secs(5))
            .unwrap(),
        1
    );
    // One call per second of the fake clock.
    for ran in 2..=6 {
        clock.advance(Duration::from_secs(1));
        eventually("the next call runs", || {
            log.starts.lock().unwrap().len() == ran
        });
    }
    for f in futures {
        f.result_timeout(Duration::from_secs(10)).unwrap();
    }
    pool.stop().unwrap();
    other.stop().unwrap();
}

#[test]
fn on_demand_workers_share_the_pools_limits() {
    let set = LimitSet::builder()
        .limit(CallLimit::per_hour(10))
        .limit(ResourceLimit::new("slots", 1))
        .build()
        .unwrap();
    let log = Log::default();
    let pool = Limited::options()
        .on_demand(true)
        .max_workers(4)
        .limits(&set)
        .init(log.clone())
        .unwrap();
    let gate = Gate::default();
    let futures: Vec<_> = (0..4).map(|_| pool.busy(gate.clone())).collect();
    eventually("one call runs", || log.active.load(Ordering::SeqCst) == 1);
    gate.open();
    for f in futures {
        assert_eq!(f.result().unwrap(), 1);
    }
    assert_eq!(used(&set, "call_count"), 4);
    assert_eq!(log.max_active.load(Ordering::SeqCst), 1);
    pool.stop().unwrap();
}
