//! Feature `metrics`: what pools report through the `metrics` facade, read back from
//! `metrics-util`'s in-memory recorder (installed for this thread only, so tests do not see
//! each other's calls).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use concurry::prelude::*;
use concurry_runtime::metrics::{
    CALL_DURATION, CALLS, IN_FLIGHT, LIMIT_WAIT, OUTCOMES, RETRIES, WORKER_IN_FLIGHT,
};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};

/// Generous: only catches a report that never comes.
const DEADLINE: Duration = Duration::from_secs(30);

struct Calc;

#[concurry::worker]
impl Calc {
    pub(crate) fn new() -> Self {
        Calc
    }

    pub(crate) fn add(&self, a: u32, b: u32) -> u32 {
        a + b
    }

    pub(crate) async fn add_async(&self, a: u32, b: u32) -> u32 {
        a + b
    }

    #[retry(never)]
    pub(crate) fn fail(&self) -> Result<u32, String> {
        Err("no".to_string())
    }

    /// Fails its first attempt, succeeds on the second (whichever workers run them).
    pub(crate) fn flaky(&self, tries: Arc<AtomicU32>) -> Result<u32, String> {
        if tries.fetch_add(1, Ordering::SeqCst) == 0 {
            Err("first".to_string())
        } else {
            Ok(2)
        }
    }

    /// Fails every attempt.
    pub(crate) fn never_ok(&self) -> Result<u32, String> {
        Err("never".to_string())
    }

    #[retry(never)]
    pub(crate) fn boom(&self) -> u32 {
        panic!("planned panic")
    }

    /// Returns once `go` says so (or after the deadline).
    pub(crate) fn hold(&self, go: Arc<Mutex<Receiver<()>>>) {
        let _ = go.lock().unwrap().recv_timeout(DEADLINE);
    }
}

/// Every metric seen so far by name and labels. The recorder's snapshots drain what they
/// read (counters and gauges are reset to 0, histograms emptied), so each is summed here;
/// pools only add to and take from their gauges, so the sum is the gauge's value.
#[derive(Default)]
struct Seen {
    counters: HashMap<String, u64>,
    gauges: HashMap<String, f64>,
    histograms: HashMap<String, Vec<f64>>,
}

impl Seen {
    fn take(&mut self, s: &Snapshotter) {
        for (key, _, _, value) in s.snapshot().into_vec() {
            let key = key.key();
            let mut labels: Vec<String> = key
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            labels.sort();
            let id = format!("{}{{{}}}", key.name(), labels.join(","));
            match value {
                DebugValue::Counter(n) => *self.counters.entry(id).or_default() += n,
                DebugValue::Gauge(g) => *self.gauges.entry(id).or_default() += g.into_inner(),
                DebugValue::Histogram(h) => self
                    .histograms
                    .entry(id)
                    .or_default()
                    .extend(h.into_iter().map(|v| v.into_inner())),
            }
        }
    }

    fn calls(&self, pool: &str, method: &str, outcome: &str) -> u64 {
        let id = format!("{CALLS}{{method={method},outcome={outcome},pool={pool}}}");
        self.counters.get(&id).copied().unwrap_or(0)
    }

    fn retries(&self, pool: &str, method: &str) -> u64 {
        let id = format!("{RETRIES}{{method={method},pool={pool}}}");
        self.counters.get(&id).copied().unwrap_or(0)
    }

    fn durations(&self, pool: &str, method: &str) -> &[f64] {
        let id = format!("{CALL_DURATION}{{method={method},pool={pool}}}");
        self.histograms.get(&id).map_or(&[], Vec::as_slice)
    }

    fn in_flight(&self, pool: &str) -> Option<f64> {
        self.gauges
            .get(&format!("{IN_FLIGHT}{{pool={pool}}}"))
            .copied()
    }

    fn worker_in_flight(&self, pool: &str, worker: usize) -> Option<f64> {
        let id = format!("{WORKER_IN_FLIGHT}{{pool={pool},worker={worker}}}");
        self.gauges.get(&id).copied()
    }

    /// Calls of `method` counted under any outcome.
    fn all_calls(&self, pool: &str, method: &str) -> u64 {
        OUTCOMES.iter().map(|o| self.calls(pool, method, o)).sum()
    }

    fn limit_waits(&self, pool: &str) -> usize {
        let id = format!("{LIMIT_WAIT}{{pool={pool}}}");
        self.histograms.get(&id).map_or(0, Vec::len)
    }
}

/// Snapshots until `done` holds (the report of a call may land just after its caller woke
/// up); fails after [`DEADLINE`].
fn eventually(s: &Snapshotter, seen: &mut Seen, done: impl Fn(&Seen) -> bool) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        seen.take(s);
        if done(seen) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "metrics not reported in time: {:?}",
            seen.gauges
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A few calls of each kind, then what must have been reported for them.
fn calls_are_counted_by_pool_method_and_outcome(mode: Mode) {
    let recorder = DebuggingRecorder::new();
    let snapshot = recorder.snapshotter();
    let pool = format!("calc-{mode:?}");
    metrics::with_local_recorder(&recorder, || {
        let calc = Calc::options()
            .mode(mode)
            .max_workers(2)
            .name(pool.clone())
            .retry(concurry::RetryConfig::attempts(3).wait(Duration::ZERO))
            .limits((concurry::CallLimit::per_minute(1_000_000),))
            .init()
            .expect("pool starts");
        assert_eq!(calc.add(1, 2).result().unwrap(), 3);
        assert_eq!(calc.add(2, 2).result().unwrap(), 4);
        assert_eq!(calc.add_async(2, 3).result().unwrap(), 5);
        assert!(matches!(calc.fail().result(), Err(Error::Method(e)) if e == "no"));
        assert_eq!(calc.flaky(Arc::default()).result().unwrap(), 2);
        assert!(matches!(calc.boom().result(), Err(Error::Panicked { .. })));
        assert!(matches!(
            calc.never_ok().result(),
            Err(Error::RetriesExhausted { attempts: 3, .. })
        ));
        calc.stop().unwrap();
        assert!(matches!(calc.add(1, 1).result(), Err(Error::Stopped)));
    });
    let mut seen = Seen::default();
    eventually(&snapshot, &mut seen, |s| {
        s.calls(&pool, "add", "stopped") == 1 && s.in_flight(&pool) == Some(0.0)
    });
    assert_eq!(seen.calls(&pool, "add", "ok"), 2);
    assert_eq!(seen.calls(&pool, "add_async", "ok"), 1);
    assert_eq!(seen.calls(&pool, "fail", "error"), 1);
    assert_eq!(seen.calls(&pool, "fail", "ok"), 0);
    assert_eq!(seen.calls(&pool, "boom", "panicked"), 1);
    // The retried call counts once, by its final outcome, and its retry apart.
    assert_eq!(seen.calls(&pool, "flaky", "ok"), 1);
    assert_eq!(seen.calls(&pool, "flaky", "error"), 0);
    assert_eq!(seen.retries(&pool, "flaky"), 1);
    assert_eq!(seen.retries(&pool, "add"), 0);
    // A call that ran out of retries counts under its last attempt's outcome.
    assert_eq!(seen.calls(&pool, "never_ok", "error"), 1);
    assert_eq!(seen.retries(&pool, "never_ok"), 2);
    // Every outcome is registered (a zero series) once a method is called.
    for outcome in OUTCOMES {
        let id = format!("{CALLS}{{method=add,outcome={outcome},pool={pool}}}");
        assert!(seen.counters.contains_key(&id), "{id}");
    }
    // One latency sample per call (the stopped one included), each within the deadline.
    let add = seen.durations(&pool, "add");
    assert_eq!(add.len(), 3, "{add:?}");
    assert!(
        add.iter()
            .all(|&s| (0.0..DEADLINE.as_secs_f64()).contains(&s))
    );
    assert_eq!(seen.durations(&pool, "flaky").len(), 1);
    // One wait for the pool's limits per attempt that reached a worker: 2 adds, 1 async
    // add, fail, flaky twice, boom, never_ok three times.
    assert_eq!(seen.limit_waits(&pool), 10);
}

#[test]
fn thread_mode_calls_are_counted_by_pool_method_and_outcome() {
    calls_are_counted_by_pool_method_and_outcome(Mode::Thread);
}

#[test]
fn async_mode_calls_are_counted_by_pool_method_and_outcome() {
    calls_are_counted_by_pool_method_and_outcome(Mode::Async);
}

#[test]
fn a_pool_defaults_to_its_worker_type_name_and_counts_calls_in_flight() {
    let recorder = DebuggingRecorder::new();
    let snapshot = recorder.snapshotter();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let rx = Arc::new(Mutex::new(rx));
    let mut seen = Seen::default();
    let name = "Calc";
    metrics::with_local_recorder(&recorder, || {
        let calc = Calc::options().mode(Mode::Thread).init().unwrap();
        // Held up on its worker until the channel says go.
        let slow = calc.hold(rx);
        eventually(&snapshot, &mut seen, |s| s.in_flight(name) == Some(1.0));
        tx.send(()).unwrap();
        slow.result().unwrap();
        calc.stop().unwrap();
    });
    eventually(&snapshot, &mut seen, |s| s.in_flight(name) == Some(0.0));
    assert_eq!(seen.calls(name, "hold", "ok"), 1);
}

/// Every way an in-process call resolves (its worker, a cancel before it ran, its queue
/// dropped by a stop) counts it once and gives back its place in flight.
fn every_way_a_call_resolves_counts_it_once(mode: Mode) {
    let recorder = DebuggingRecorder::new();
    let snapshot = recorder.snapshotter();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let rx = Arc::new(Mutex::new(rx));
    let mut seen = Seen::default();
    let name = format!("once-{mode:?}");
    let name = name.as_str();
    metrics::with_local_recorder(&recorder, || {
        let calc = Calc::options()
            .mode(mode)
            .name(name)
            .stop_timeout(Duration::ZERO)
            .init()
            .unwrap();
        // Held up on the one worker; the calls after it queue there.
        let slow = calc.hold(rx);
        let cancelled = calc.add(1, 1);
        assert!(cancelled.cancel());
        let dropped = calc.add(2, 2);
        eventually(&snapshot, &mut seen, |s| {
            s.worker_in_flight(name, 0) == Some(3.0) && s.in_flight(name) == Some(3.0)
        });
        // The stop gives up at once: what is still queued is dropped unrun.
        assert!(calc.stop().is_err());
        // The hold may itself have been dropped unrun (counted in flight while still queued,
        // under load), taking its receiver with it: then there is no one to tell.
        let _ = tx.send(());
        let _ = slow.result();
        assert!(matches!(cancelled.result(), Err(Error::Cancelled)));
        assert!(matches!(dropped.result(), Err(Error::Stopped)));
    });
    // (The worker's own gauge keeps the two it never ran, as `stats()` does: it counts calls
    // its worker finished.)
    eventually(&snapshot, &mut seen, |s| s.in_flight(name) == Some(0.0));
    assert_eq!(seen.all_calls(name, "hold"), 1);
    assert_eq!(seen.all_calls(name, "add"), 2);
    assert_eq!(seen.calls(name, "add", "cancelled"), 1);
    assert_eq!(seen.calls(name, "add", "stopped"), 1);
    assert_eq!(seen.durations(name, "add").len(), 2);
}

#[test]
fn thread_mode_counts_every_call_once_however_it_resolves() {
    every_way_a_call_resolves_counts_it_once(Mode::Thread);
}

#[test]
fn async_mode_counts_every_call_once_however_it_resolves() {
    every_way_a_call_resolves_counts_it_once(Mode::Async);
}

#[test]
fn each_workers_calls_in_flight_are_a_gauge_of_their_own() {
    let recorder = DebuggingRecorder::new();
    let snapshot = recorder.snapshotter();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let rx = Arc::new(Mutex::new(rx));
    let mut seen = Seen::default();
    let name = "per-worker";
    metrics::with_local_recorder(&recorder, || {
        let calc = Calc::options()
            .mode(Mode::Thread)
            .max_workers(2)
            .load_balancing(concurry::LoadBalancing::RoundRobin)
            .name(name)
            .init()
            .unwrap();
        // Round robin: both holds go to one worker, the add between them to the other.
        let first = calc.hold(rx.clone());
        assert_eq!(calc.add(1, 2).result().unwrap(), 3);
        let second = calc.hold(rx);
        eventually(&snapshot, &mut seen, |s| {
            let both = (s.worker_in_flight(name, 0), s.worker_in_flight(name, 1));
            both == (Some(2.0), Some(0.0)) || both == (Some(0.0), Some(2.0))
        });
        tx.send(()).unwrap();
        tx.send(()).unwrap();
        first.result().unwrap();
        second.result().unwrap();
        calc.stop().unwrap();
    });
    eventually(&snapshot, &mut seen, |s| {
        s.worker_in_flight(name, 0) == Some(0.0)
            && s.worker_in_flight(name, 1) == Some(0.0)
            && s.in_flight(name) == Some(0.0)
    });
    assert_eq!(seen.calls(name, "hold", "ok"), 2);
}
