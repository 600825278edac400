//! `#[worker(remote)]`: the same type runs in child processes (`Mode::Process`) and in
//! process (`Mode::Thread`); a child that dies fails its call with `Error::WorkerLost` and
//! is replaced.

use std::time::Duration;

use concurry::__private::serde::{Deserialize, Serialize};
use concurry::Limit;
use concurry::prelude::*;

/// Bounds every wait, so a broken test fails instead of hanging.
const HANG: Duration = Duration::from_secs(60);

/// A constructor argument that crosses the process boundary.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(crate = "concurry::__private::serde")]
pub struct Setup {
    pub base: u64,
    pub label: String,
}

#[derive(Debug)]
pub struct Calc {
    total: u64,
    label: String,
}

#[concurry::worker(remote)]
impl Calc {
    pub fn new(setup: Setup) -> Result<Self, String> {
        if setup.label.is_empty() {
            return Err("no label".into());
        }
        Ok(Calc {
            total: setup.base,
            label: setup.label,
        })
    }

    /// `&mut self` state: each worker keeps its own total.
    pub fn add(&mut self, k: u64) -> u64 {
        self.total += k;
        self.total
    }

    pub fn describe(&self, setup: Setup) -> String {
        format!("{}:{}+{}", self.label, setup.label, setup.base)
    }

    pub fn checked_div(&self, d: u64) -> Result<u64, String> {
        self.total
            .checked_div(d)
            .ok_or_else(|| format!("{} / 0", self.total))
    }

    pub async fn later(&self, x: u64) -> u64 {
        x * 2 + self.total
    }

    pub fn pid(&self) -> u32 {
        std::process::id()
    }

    pub fn crash(&self) {
        std::process::abort();
    }

    /// Fails until its `ok_from`-th call on this worker.
    pub fn flaky(&mut self, ok_from: u64) -> Result<u64, String> {
        self.total += 1;
        if self.total < ok_from {
            Err(format!("attempt {}", self.total))
        } else {
            Ok(self.total)
        }
    }

    /// As `flaky`, but must never repeat.
    #[retry(never)]
    pub fn once(&mut self, ok_from: u64) -> Result<u64, String> {
        self.flaky(ok_from)
    }

    /// Kills its process the first time (leaving `marker` behind), answers the next.
    pub fn crash_once(&self, marker: String) -> u32 {
        if std::fs::File::create_new(&marker).is_ok() {
            std::process::abort();
        }
        std::process::id()
    }

    /// Waits (at most `HANG`) until a file exists at `path`: a gate a test opens.
    pub fn hold(&self, path: String) -> bool {
        let deadline = std::time::Instant::now() + HANG;
        while std::time::Instant::now() < deadline {
            if std::path::Path::new(&path).exists() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        false
    }

    pub fn spin(&self) {
        loop {
            std::hint::spin_loop();
        }
    }
}

fn setup(base: u64) -> Setup {
    Setup {
        base,
        label: "calc".into(),
    }
}

fn exercise(mode: Mode) -> CalcHandle {
    let calc = Calc::options()
        .mode(mode)
        .max_workers(1)
        .init(setup(10))
        .unwrap();
    assert_eq!(calc.add(5).result_timeout(HANG).unwrap(), 15, "{mode}");
    assert_eq!(calc.add(1).result_timeout(HANG).unwrap(), 16, "{mode}");
    assert_eq!(
        calc.describe(setup(3)).result_timeout(HANG).unwrap(),
        "calc:calc+3",
        "{mode}"
    );
    assert_eq!(
        calc.checked_div(4).result_timeout(HANG).unwrap(),
        4,
        "{mode}"
    );
    match calc.checked_div(0).result_timeout(HANG) {
        Err(Error::Method(e)) => assert_eq!(e, "16 / 0", "{mode}"),
        other => panic!("{mode}: {other:?}"),
    }
    assert_eq!(calc.later(2).result_timeout(HANG).unwrap(), 20, "{mode}");
    // A promise as an argument takes the slow path, then the same remote call.
    let chained = calc.add(calc.add(0));
    assert_eq!(chained.result_timeout(HANG).unwrap(), 32, "{mode}");
    assert_eq!(calc.blocking().add(0).unwrap(), 32, "{mode}");
    calc
}

#[test]
fn a_remote_worker_runs_in_a_child_process() {
    let calc = exercise(Mode::Process);
    assert_eq!(calc.stats().mode, Mode::Process);
    let child = calc.pid().result_timeout(HANG).unwrap();
    assert_ne!(child, std::process::id(), "the worker is a child process");
    calc.stop().unwrap();
    assert!(matches!(
        calc.add(1).result_timeout(HANG),
        Err(Error::Stopped)
    ));
}

/// `mode = "process"` in the attribute: `options()` starts in child processes.
pub struct Tally {
    n: u64,
}

#[concurry::worker(remote, mode = "process")]
impl Tally {
    pub fn new() -> Self {
        Tally { n: 0 }
    }

    /// Adds one; returns the count and the process holding it.
    pub fn bump(&mut self) -> (u64, u32) {
        self.n += 1;
        (self.n, std::process::id())
    }
}

#[test]
fn mode_process_in_the_attribute_starts_children() {
    let tally = Tally::options().init().unwrap();
    assert_eq!(tally.stats().mode, Mode::Process);
    let (n, pid) = tally.bump().result_timeout(HANG).unwrap();
    assert_ne!(pid, std::process::id());
    // One instance by default: its state stays whole.
    assert_eq!(tally.bump().result_timeout(HANG).unwrap(), (n + 1, pid));
    tally.stop().unwrap();
    // Another mode is still one option away.
    let here = Tally::options().mode(Mode::Thread).init().unwrap();
    assert_eq!(
        here.bump().result_timeout(HANG).unwrap(),
        (1, std::process::id())
    );
    here.stop().unwrap();
}

#[test]
fn a_remote_worker_runs_in_process_in_thread_mode() {
    let calc = exercise(Mode::Thread);
    assert_eq!(calc.stats().mode, Mode::Thread);
    assert_eq!(calc.pid().result_timeout(HANG).unwrap(), std::process::id());
    calc.stop().unwrap();
}

/// `max_message_size` is a pool option: a call above it fails alone with a typed error that
/// names the option, and a value out of range is refused by `init`.
#[test]
fn max_message_size_is_a_pool_option() {
    let calc = Calc::options()
        .mode(Mode::Process)
        .max_workers(1)
        .max_message_size(4 << 10)
        .init(setup(1))
        .unwrap();
    let big = Setup {
        base: 0,
        label: "x".repeat(10_000),
    };
    match calc.describe(big).result_timeout(HANG) {
        Err(Error::Transport(e)) => {
            let msg = e.to_string();
            assert!(
                msg.contains("exceeds max_message_size (4096 bytes)"),
                "{msg}"
            );
        }
        other => panic!("expected Transport, got {other:?}"),
    }
    assert_eq!(calc.add(1).result_timeout(HANG).unwrap(), 2);
    calc.stop().unwrap();
    // Large arguments (encoded off the caller's thread) cross under a raised bound, with a
    // `call_timeout` that counts their encoding.
    let calc = Calc::options()
        .mode(Mode::Process)
        .max_workers(1)
        .max_message_size(1 << 20)
        .call_timeout(HANG)
        .retry(RetryConfig::attempts(2).retry_on_worker_lost(true))
        .init(setup(1))
        .unwrap();
    let big = Setup {
        base: 2,
        label: "y".repeat(200_000),
    };
    let described = calc.describe(big).result_timeout(HANG).unwrap();
    assert_eq!(described, format!("calc:{}+2", "y".repeat(200_000)));
    calc.stop().unwrap();
    match Calc::options().max_message_size(10).init(setup(1)) {
        Err(Error::Config(e)) => {
            assert_eq!(e.option(), "max_message_size");
            assert!(e.to_string().contains("10"), "{e}");
        }
        other => panic!("expected Config, got {:?}", other.map(|_| ())),
    }
}

/// A constructor's own error has one shape in every mode: `Error::Method`, typed (from a
/// child, it crosses the channel like a method's error).
#[test]
fn constructor_errors_are_typed_method_errors_in_every_mode() {
    for mode in [Mode::Sync, Mode::Thread, Mode::Async, Mode::Process] {
        let failed = Calc::options().mode(mode).max_workers(1).init(Setup {
            base: 0,
            label: String::new(),
        });
        match failed {
            Err(Error::Method(e)) => assert_eq!(e, "no label", "{mode}"),
            other => panic!("{mode}: expected Method, got {:?}", other.map(|_| ())),
        }
    }
}

#[test]
fn a_crashed_child_is_worker_lost_and_the_pool_keeps_serving() {
    let calc = Calc::options()
        .mode(Mode::Process)
        .max_workers(1)
        .init(setup(1))
        .unwrap();
    let first = calc.pid().result_timeout(HANG).unwrap();
    match calc.crash().result_timeout(HANG) {
        Err(Error::WorkerLost { .. }) => {}
        other => panic!("expected WorkerLost, got {other:?}"),
    }
    // The replacement child starts from the constructor's state.
    assert_eq!(calc.add(1).result_timeout(HANG).unwrap(), 2);
    assert_ne!(calc.pid().result_timeout(HANG).unwrap(), first);
    calc.stop().unwrap();
}

fn process_pool() -> CalcOptions {
    Calc::options().mode(Mode::Process).max_workers(1)
}

#[test]
fn remote_calls_are_retried_per_the_pool_and_the_method() {
    let retry = RetryConfig::attempts(4).wait(Duration::from_millis(1));
    let calc = process_pool().retry(retry).init(setup(0)).unwrap();
    // Attempts 1 and 2 fail in the child, the third succeeds.
    assert_eq!(calc.flaky(3).result_timeout(HANG).unwrap(), 3);
    // `#[retry(never)]` holds across the process boundary.
    match calc.once(100).result_timeout(HANG) {
        Err(Error::Method(e)) => assert_eq!(e, "attempt 4"),
        other => panic!("{other:?}"),
    }
    match calc.flaky(100).result_timeout(HANG) {
        Err(Error::RetriesExhausted {
            attempts: 4, last, ..
        }) => {
            assert!(matches!(*last, Error::Method(ref m) if m == "attempt 8"));
        }
        other => panic!("{other:?}"),
    }
    calc.stop().unwrap();
}

#[test]
fn a_call_whose_child_died_is_retried_only_when_the_policy_says_so() {
    let marker = |n: u32| {
        std::env::temp_dir()
            .join(format!("concurry-crash-once-{}-{n}", std::process::id()))
            .to_string_lossy()
            .into_owned()
    };
    let retry = RetryConfig::attempts(3).wait(Duration::from_millis(1));
    let calc = process_pool().retry(retry.clone()).init(setup(0)).unwrap();
    assert!(matches!(
        calc.crash_once(marker(1)).result_timeout(HANG),
        Err(Error::WorkerLost { .. })
    ));
    calc.stop().unwrap();

    let calc = process_pool()
        .retry(retry.retry_on_worker_lost(true))
        .init(setup(0))
        .unwrap();
    let first = calc.pid().result_timeout(HANG).unwrap();
    let answered_by = calc.crash_once(marker(2)).result_timeout(HANG).unwrap();
    assert_ne!(answered_by, first, "the retry ran on the respawned child");
    calc.stop().unwrap();
    for n in [1, 2] {
        std::fs::remove_file(marker(n)).unwrap();
    }
}

#[test]
fn a_hard_call_timeout_fails_the_call_and_replaces_the_child() {
    let calc = process_pool()
        .call_timeout(Duration::from_millis(200))
        .init(setup(5))
        .unwrap();
    let first = calc.pid().result_timeout(HANG).unwrap();
    assert!(matches!(
        calc.spin().result_timeout(HANG),
        Err(Error::Timeout)
    ));
    // A fresh child, built from the constructor's arguments, serves the next call.
    assert_eq!(calc.add(1).result_timeout(HANG).unwrap(), 6);
    assert_ne!(calc.pid().result_timeout(HANG).unwrap(), first);
    calc.stop().unwrap();

    match Calc::options()
        .mode(Mode::Thread)
        .call_timeout(Duration::from_millis(200))
        .init(setup(5))
    {
        Err(Error::Config(e)) => assert_eq!(e.option(), "call_timeout"),
        other => panic!("{other:?}"),
    }
}

/// Waits (bounded) until `set` has `n` calls waiting on it.
fn wait_for_waiters(set: &LimitSet, n: usize) {
    let deadline = std::time::Instant::now() + HANG;
    while set.stats().iter().map(|s| s.waiters).max() != Some(n) {
        assert!(std::time::Instant::now() < deadline, "{:?}", set.stats());
        std::thread::yield_now();
    }
}

#[test]
fn remote_calls_take_the_pools_call_and_resource_units_in_the_parent() {
    let set = LimitSet::new([
        Limit::from(ResourceLimit::new("children", 1)),
        Limit::from(CallLimit::per_minute(1000)),
    ])
    .unwrap();
    let calc = process_pool().limits(set.clone()).init(setup(0)).unwrap();
    assert_eq!(calc.add(1).result_timeout(HANG).unwrap(), 1);
    let used = |key: &str| set.stats().into_iter().find(|s| s.key == key).unwrap().used;
    assert_eq!(used("children"), 0, "given back when the answer came");

    // While someone else holds the only unit, the call waits in the parent.
    let held = set.acquire(&[]).unwrap();
    let waiting = calc.add(1);
    wait_for_waiters(&set, 1);
    assert!(!waiting.is_done());
    drop(held);
    assert_eq!(waiting.result_timeout(HANG).unwrap(), 2);
    assert_eq!(used("call_count"), 3, "one call unit per call, plus ours");

    // A call still waiting for its units when the pool stops fails with `Stopped`.
    let held = set.acquire(&[]).unwrap();
    let waiting = calc.add(1);
    wait_for_waiters(&set, 1);
    calc.stop().unwrap();
    assert!(matches!(waiting.result_timeout(HANG), Err(Error::Stopped)));
    drop(held);
}

#[test]
fn process_calls_are_validated_without_retries_and_a_panicking_predicate_is_a_panic() {
    crate::common::quiet_planned_panics();
    let calc = process_pool()
        .retry(RetryConfig::attempts(1).retry_until(|n: &u64| *n > 100))
        .init(setup(5))
        .unwrap();
    match calc.add(1).result_timeout(HANG) {
        Err(Error::Validation {
            method,
            attempts,
            outputs,
            ..
        }) => {
            assert_eq!((method, attempts), ("add", 1));
            assert_eq!(outputs.into_vec::<u64>().unwrap(), [6]);
        }
        other => panic!("{other:?}"),
    }
    calc.stop().unwrap();

    let retry = RetryConfig::attempts(3)
        .wait(Duration::from_millis(1))
        .retry_on(|_| panic!("planned panic: in retry_on"));
    let calc = process_pool().retry(retry).init(setup(0)).unwrap();
    match calc.flaky(100).result_timeout(HANG) {
        Err(Error::Panicked { message }) => {
            assert!(message.contains("planned panic: in retry_on"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // The pool runs on: the one attempt of `flaky` counted 1.
    assert_eq!(calc.add(1).result_timeout(HANG).unwrap(), 2);
    calc.stop().unwrap();
}

#[test]
fn a_process_calls_waits_run_on_the_callers_runtime_and_fail_when_it_shuts_down() {
    let set = LimitSet::new([ResourceLimit::new("children", 1)]).unwrap();
    let calc = process_pool().limits(set.clone()).init(setup(0)).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    // Submitted from the caller's runtime, while someone else holds the only unit: the small
    // call waits for it there, and so does a large one (encoded off the caller's thread, then
    // sent from the encoding lane, whose answer is handed on there too).
    let held = set.acquire(&[]).unwrap();
    let big = Setup {
        base: 1,
        label: "x".repeat(200 << 10),
    };
    let (small, large) = rt.block_on(async { (calc.add(1), calc.describe(big)) });
    wait_for_waiters(&set, 2);
    // That runtime shuts down: both waits are dropped with it and their calls fail with
    // `Stopped`, even though the unit is free again right after.
    drop(rt);
    drop(held);
    assert!(matches!(small.result_timeout(HANG), Err(Error::Stopped)));
    assert!(matches!(large.result_timeout(HANG), Err(Error::Stopped)));
    // Neither ran; the pool serves calls from anywhere still.
    assert_eq!(calc.add(1).result_timeout(HANG).unwrap(), 1);
    calc.stop().unwrap();
}

/// A bounded pool's back-pressure holds for large calls too: their arguments leave the
/// caller's thread to be encoded, but a plain thread waits for room before they do, instead
/// of piling them up (they used to be taken at once, each waiting for its place in a task).
#[test]
fn a_plain_thread_waits_for_room_before_a_large_call_leaves_it() {
    let calc = process_pool().max_queued_tasks(1).init(setup(0)).unwrap();
    let gate = std::env::temp_dir().join(format!("concurry-room-{}", std::process::id()));
    let _ = std::fs::remove_file(&gate);
    let held = calc.hold(gate.display().to_string());
    let (tx, rx) = std::sync::mpsc::channel();
    let caller = calc.clone();
    let submitter = std::thread::spawn(move || {
        (0..3u64)
            .map(|i| {
                let big = Setup {
                    base: i,
                    label: "x".repeat(100 << 10),
                };
                let p = caller.describe(big);
                tx.send(i).unwrap();
                p
            })
            .collect::<Vec<_>>()
    });
    // The worker's one place is held: the first large call is taken (its room is the
    // pool's one), the second waits on the caller's thread.
    assert_eq!(rx.recv_timeout(HANG), Ok(0));
    assert!(
        rx.recv_timeout(Duration::from_millis(300)).is_err(),
        "a second large call was taken while the pool was full"
    );
    std::fs::write(&gate, b"open").unwrap();
    assert!(held.result_timeout(HANG).unwrap());
    for p in submitter.join().unwrap() {
        assert!(p.result_timeout(HANG).unwrap().len() > 100 << 10);
    }
    assert_eq!(rx.try_iter().collect::<Vec<_>>(), [1, 2]);
    let _ = std::fs::remove_file(&gate);
    calc.stop().unwrap();
}
