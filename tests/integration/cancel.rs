//! Cancellation that reaches running methods (`check_cancelled`, `cancelled`), task groups
//! (`scope`, fail-fast and settled) and cancel scopes with deadlines (`move_on_after`,
//! `fail_after`, `shield`), in Thread and Async modes; deadlines of async scopes on tokio's
//! paused time. Latencies are printed, and asserted only against gross errors.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Sender, channel};
use std::time::{Duration, Instant};

use concurry::prelude::*;
use concurry::{CancelScope, ChildState, TaskGroup};

use crate::common::{HANG, within};

/// Loops until cancelled; tells the test when it started and when it returned.
pub struct Spinner {
    started: Arc<AtomicUsize>,
    exits: Sender<Instant>,
}

#[concurry::worker]
impl Spinner {
    pub fn new(started: Arc<AtomicUsize>, exits: Sender<Instant>) -> Self {
        Spinner { started, exits }
    }

    /// Spins on `check_cancelled()` until the call is cancelled.
    pub fn spin(&self) -> Result<u64, concurry::Error> {
        self.started.fetch_add(1, Ordering::SeqCst);
        let mut laps = 0u64;
        let out = loop {
            if let Err(c) = concurry::check_cancelled() {
                break Err(c.into());
            }
            laps += 1;
            std::thread::sleep(Duration::from_micros(200));
            if laps > 200_000 {
                break Ok(laps); // ~40 s: never cancelled
            }
        };
        let _ = self.exits.send(Instant::now());
        out
    }

    /// Waits on `cancelled()` (an async method).
    pub async fn wait_cancel(&self) -> &'static str {
        self.started.fetch_add(1, Ordering::SeqCst);
        let out = tokio::select! {
            _ = concurry::cancelled() => "cancelled",
            _ = tokio::time::sleep(Duration::from_secs(40)) => "slept",
        };
        let _ = self.exits.send(Instant::now());
        out
    }

    /// Waits a little, then tells whether it sees a cancel.
    pub fn late_check(&self) -> bool {
        std::thread::sleep(Duration::from_millis(20));
        concurry::is_cancelled()
    }

    /// Returns at once, with a value.
    pub fn quick(&self, x: u64) -> u64 {
        x
    }

    /// Fails at once.
    pub fn fail(&self) -> Result<u64, String> {
        Err("boom".to_string())
    }
}

fn spinner(
    mode: Mode,
    workers: usize,
) -> (
    SpinnerHandle,
    Arc<AtomicUsize>,
    std::sync::mpsc::Receiver<Instant>,
) {
    let started = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = channel();
    let options = Spinner::options().mode(mode);
    let options = if workers > 1 {
        options.max_workers(workers)
    } else {
        options
    };
    let pool = options.init(started.clone(), tx).unwrap();
    (pool, started, rx)
}

fn wait_started(started: &AtomicUsize, n: usize) {
    let t = Instant::now();
    while started.load(Ordering::SeqCst) < n {
        assert!(t.elapsed() < HANG, "the calls never started");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// `Promise::cancel` on a running call: the method sees it at its next checkpoint and
/// returns, in Thread and Async modes, sync and async methods.
#[test]
fn a_running_method_stops_soon_after_cancel() {
    within("cancel a running method", || {
        for mode in [Mode::Thread, Mode::Async] {
            let (pool, started, exits) = spinner(mode, 1);
            let p = pool.spin();
            wait_started(&started, 1);
            let at = Instant::now();
            assert!(p.cancel());
            let exit = exits.recv_timeout(HANG).expect("the method never returned");
            let latency = exit.saturating_duration_since(at);
            eprintln!("{mode}: sync method returned {latency:?} after cancel()");
            assert!(latency < Duration::from_secs(5), "{mode}: {latency:?}");
            assert!(matches!(p.result(), Err(Error::Cancelled)));

            let p = pool.wait_cancel();
            wait_started(&started, 2);
            let at = Instant::now();
            p.cancel();
            let exit = exits
                .recv_timeout(HANG)
                .expect("the async method never returned");
            let latency = exit.saturating_duration_since(at);
            eprintln!("{mode}: async method returned {latency:?} after cancel()");
            assert!(latency < Duration::from_secs(5), "{mode}: {latency:?}");
            // The worker serves the next call.
            assert_eq!(pool.quick(3).result().unwrap(), 3);
            pool.stop().unwrap();
        }
    });
}

/// Calls submitted inside a scope inherit its deadline: the method sees the cancel and the
/// promise resolves with `Error::Cancelled` once it returned.
#[test]
fn calls_submitted_in_a_scope_see_its_deadline() {
    within("scope deadline reaches calls", || {
        for mode in [Mode::Thread, Mode::Async, Mode::Sync] {
            let (pool, _started, exits) = spinner(mode, 1);
            let at = Instant::now();
            let out = concurry::move_on_after(Duration::from_millis(30), |_| pool.spin().result());
            assert!(out.is_none(), "{mode}: the scope's deadline passed");
            let exit = exits.recv_timeout(HANG).unwrap();
            eprintln!(
                "{mode}: method returned {:?} after the scope opened (deadline 30ms)",
                exit - at
            );
            // A call inside a scope whose deadline passed, awaited after it: Cancelled.
            let cs = CancelScope::with_timeout(Duration::from_millis(10));
            let r = cs.run(|_| pool.spin().result());
            assert!(matches!(r, Err(Error::Cancelled)), "{mode}: {r:?}");
            assert!(cs.cancel_called());
            // Outside the scope, calls are not cancelled.
            assert_eq!(pool.quick(1).result().unwrap(), 1);
            pool.stop().unwrap();
        }
    });
}

/// A call submitted in a scope already cancelled is skipped: `Cancelled`. One that fails
/// after the cancel is `Cancelled` too (whatever its error type); one that returns a value
/// anyway keeps it.
#[test]
fn a_call_in_a_cancelled_scope_resolves_cancelled() {
    for mode in [Mode::Thread, Mode::Async, Mode::Sync] {
        let (pool, started, _e) = spinner(mode, 1);
        let cs = CancelScope::new();
        cs.cancel();
        let r = cs.run(|_| pool.quick(5).result());
        assert!(matches!(r, Err(Error::Cancelled)), "{mode}: {r:?}");
        // Cancelled while running: the async method returns a value, which stands.
        // (Sync mode runs the call in-line: nobody could cancel it meanwhile.)
        if mode != Mode::Sync {
            let cs = CancelScope::new();
            let p = cs.run(|_| pool.wait_cancel());
            wait_started(&started, 1);
            cs.cancel();
            assert_eq!(p.result().unwrap(), "cancelled", "{mode}");
        }
        pool.stop().unwrap();
    }
}

/// Fail-fast: the first failure cancels the siblings (a call spinning on
/// `check_cancelled`, a future, a closure), and the group names it.
#[test]
fn fail_fast_cancels_the_siblings() {
    within("fail-fast", || {
        for mode in [Mode::Thread, Mode::Async] {
            let (pool, started, _exits) = spinner(mode, 2);
            let at = Instant::now();
            let closure_saw = Arc::new(AtomicBool::new(false));
            let saw = closure_saw.clone();
            let r = concurry::scope(|s| {
                let spin = s.spawn(pool.spin());
                let fut = s.spawn_future(std::future::pending::<()>());
                let closure = s.spawn_try_blocking(move || -> Result<(), concurry::Cancelled> {
                    loop {
                        if concurry::check_cancelled().is_err() {
                            saw.store(true, Ordering::SeqCst);
                            return Err(concurry::Cancelled);
                        }
                        std::thread::sleep(Duration::from_millis(1));
                    }
                });
                wait_started(&started, 1);
                let bad = s.spawn(pool.fail());
                (spin, fut, closure, bad)
            });
            let Err(Error::ChildFailed { child, message }) = &r else {
                panic!("{mode}: expected ChildFailed, got {r:?}")
            };
            assert_eq!((*child, message.as_str()), (3, "boom"));
            eprintln!("{mode}: fail-fast group returned after {:?}", at.elapsed());
            assert!(closure_saw.load(Ordering::SeqCst));
            pool.stop().unwrap();
        }
    });
}

#[test]
fn fail_fast_handles_tell_what_happened() {
    within("fail-fast handles", || {
        let (pool, started, _exits) = spinner(Mode::Thread, 2);
        let mut handles = None;
        let r = TaskGroup::new().run(|s| {
            let spin = s.spawn(pool.spin());
            wait_started(&started, 1);
            let bad = s.spawn(pool.fail());
            handles = Some((spin, bad));
        });
        assert!(r.is_err());
        let (spin, bad) = handles.unwrap();
        assert_eq!(spin.state(), ChildState::Cancelled);
        assert_eq!(bad.state(), ChildState::Failed);
        assert!(matches!(spin.wait(), Err(Error::Cancelled)));
        assert_eq!(
            bad.wait().unwrap_err().method_error().map(String::as_str),
            Some("boom")
        );
        pool.stop().unwrap();
    });
}

/// Settled: every child runs to its end; each outcome is in its handle.
#[test]
fn settled_collects_every_outcome() {
    within("settled", || {
        let (pool, _s, _e) = spinner(Mode::Thread, 2);
        let (a, b, c) = TaskGroup::new()
            .settled()
            .run(|s| {
                let a = s.spawn(pool.fail());
                let b = s.spawn(pool.quick(7));
                let c = s.spawn_blocking(|| {
                    std::thread::sleep(Duration::from_millis(20));
                    concurry::is_cancelled()
                });
                (a, b, c)
            })
            .unwrap();
        assert_eq!(a.state(), ChildState::Failed);
        assert_eq!(b.wait().unwrap(), 7);
        assert!(!c.wait().unwrap(), "settled: the failure cancelled nobody");
        pool.stop().unwrap();
    });
}

/// Nothing outlives the group: every handle is done when it returns, and a child spawned
/// on an escaped scope is cancelled at once.
#[test]
fn nothing_outlives_the_group() {
    within("group end", || {
        let mut escaped = None;
        let h = concurry::scope(|s| {
            escaped = Some(s.clone());
            s.spawn_blocking(|| std::thread::sleep(Duration::from_millis(20)))
        })
        .unwrap();
        assert!(h.is_done());
        let late = escaped.unwrap().spawn_blocking(|| 1);
        assert!(matches!(late.wait(), Err(Error::Cancelled)));
    });
}

/// A promise made outside the group is cancelled with `Promise::cancel` at the fail-fast.
#[test]
fn a_promise_from_outside_is_cancelled_at_once() {
    within("outside promise", || {
        let (pool, started, exits) = spinner(Mode::Thread, 2);
        let outside = pool.spin();
        wait_started(&started, 1);
        let r = concurry::scope(|s| {
            let h = s.spawn(outside);
            s.spawn(pool.fail());
            h
        });
        assert!(r.is_err());
        exits.recv_timeout(HANG).expect("the method saw the cancel");
        pool.stop().unwrap();
    });
}

/// `stop()` past its `stop_timeout` cancels the methods still running.
#[test]
fn stop_past_its_deadline_cancels_running_methods() {
    within("stop cancels", || {
        let started = Arc::new(AtomicUsize::new(0));
        let (tx, exits) = channel();
        let pool = Spinner::options()
            .mode(Mode::Thread)
            .stop_timeout(Duration::from_millis(20))
            .init(started.clone(), tx)
            .unwrap();
        let p = pool.spin();
        wait_started(&started, 1);
        let r = pool.stop();
        assert!(matches!(r, Err(Error::StopTimeout { .. })), "{r:?}");
        exits
            .recv_timeout(HANG)
            .expect("the running method saw stop's cancel");
        assert!(matches!(p.result(), Err(Error::Cancelled)));
    });
}

/// Blocking scopes nest: the earliest deadline wins, and `cancel_called` tells which fired.
#[test]
fn nested_blocking_scopes_earliest_deadline_wins() {
    within("nested", || {
        let outer = CancelScope::with_timeout(Duration::from_millis(20));
        let inner = outer.run(|_| {
            let inner = CancelScope::with_timeout(Duration::from_secs(3600));
            inner.run(|_| {
                while concurry::check_cancelled().is_ok() {
                    std::thread::sleep(Duration::from_millis(1));
                }
            });
            inner
        });
        assert!(outer.cancel_called());
        assert!(inner.is_cancelled() && !inner.cancel_called());
        let r = concurry::fail_after(Duration::from_secs(3600), |_| {
            concurry::fail_after(Duration::from_millis(5), |_| {
                while !concurry::is_cancelled() {
                    std::thread::sleep(Duration::from_millis(1));
                }
            })
        });
        assert!(matches!(r, Ok(Err(Error::Timeout))), "{r:?}");
    });
}

/// `shield`: a call submitted inside it does not inherit the cancelled scope.
#[test]
fn shielded_calls_are_not_cancelled() {
    let (pool, _s, _e) = spinner(Mode::Thread, 1);
    let cs = CancelScope::new();
    cs.cancel();
    let r = cs.run(|_| concurry::shield(|| pool.quick(4).result()));
    assert_eq!(r.unwrap(), 4);
    pool.stop().unwrap();
}

/// A blocking group inside a current-thread runtime does not starve its future children.
#[test]
fn a_blocking_group_on_a_current_thread_runtime_runs_its_futures() {
    within("blocking group in current-thread runtime", || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let h = concurry::scope(|s| s.spawn_future(async { 9 })).unwrap();
            assert_eq!(h.await.unwrap(), 9);
        });
    });
}

mod paused {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn nested_async_deadlines_earliest_wins() {
        let t0 = tokio::time::Instant::now();
        let outer = CancelScope::with_timeout(Duration::from_secs(1));
        let seen = Arc::new(std::sync::Mutex::new(None));
        let seen2 = seen.clone();
        let out = outer
            .run_async(async move {
                let inner = CancelScope::with_timeout(Duration::from_secs(3600));
                let out = inner
                    .run_async(tokio::time::sleep(Duration::from_secs(7200)))
                    .await;
                *seen2.lock().unwrap() = Some((out.is_none(), inner.clone()));
                // Level-triggered: the outer cancel is still there at the next await.
                tokio::time::sleep(Duration::from_secs(7200)).await;
            })
            .await;
        assert!(out.is_none());
        assert_eq!(t0.elapsed(), Duration::from_secs(1));
        let (dropped, inner) = seen.lock().unwrap().take().unwrap();
        assert!(dropped, "the outer deadline dropped the inner body");
        assert!(inner.is_cancelled() && !inner.cancel_called());
        assert!(outer.cancel_called());

        let t0 = tokio::time::Instant::now();
        let outer = CancelScope::with_timeout(Duration::from_secs(3600));
        let got = outer
            .run_async(async {
                concurry::move_on_after_async(Duration::from_secs(2), std::future::pending::<()>())
                    .await
            })
            .await;
        assert_eq!(
            got,
            Some(None),
            "the inner deadline fired; the outer body finished"
        );
        assert_eq!(t0.elapsed(), Duration::from_secs(2));
        assert!(!outer.cancel_called());
    }

    #[tokio::test(start_paused = true)]
    async fn shield_finishes_its_cleanup_past_the_deadline() {
        let t0 = tokio::time::Instant::now();
        let cs = CancelScope::with_timeout(Duration::from_secs(1));
        let out = cs
            .run_async(async {
                concurry::shield_async(async {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    assert!(!concurry::is_cancelled(), "no cancel reaches a shield");
                })
                .await;
                // Back outside the shield: the scope drops the body at its next await.
                tokio::time::sleep(Duration::from_secs(100)).await;
                "not reached"
            })
            .await;
        assert_eq!(out, None);
        assert_eq!(t0.elapsed(), Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn async_group_fail_fast_drops_sleeping_siblings() {
        let t0 = tokio::time::Instant::now();
        let r = concurry::scope_async(|s| async move {
            let sleeper = s.spawn_future(async {
                tokio::time::sleep(Duration::from_secs(3600)).await;
            });
            s.spawn_try_future(async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                Err::<(), _>("late failure")
            });
            sleeper.await
        })
        .await;
        assert!(
            matches!(r, Err(Error::ChildFailed { child: 1, .. })),
            "{r:?}"
        );
        assert_eq!(t0.elapsed(), Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn cancelled_future_fires_at_the_scope_deadline() {
        let t0 = tokio::time::Instant::now();
        let cs = CancelScope::with_timeout(Duration::from_secs(10));
        let out = cs
            .run_async(async {
                // A future that only waits for the cancel: it is woken by it, and the scope
                // then drops the body.
                concurry::cancelled().await;
                "woken"
            })
            .await;
        assert!(out == Some("woken") || out.is_none());
        assert_eq!(t0.elapsed(), Duration::from_secs(10));
    }
}

#[test]
fn cancel_types_are_send_sync_unpin() {
    fn send_sync_unpin<T: Send + Sync + Unpin>() {}
    send_sync_unpin::<concurry::CancelledFuture>();
    send_sync_unpin::<concurry::Cancelled>();
    send_sync_unpin::<CancelScope>();
    send_sync_unpin::<concurry::Scope>();
    send_sync_unpin::<concurry::ChildHandle<u8, String>>();
    send_sync_unpin::<concurry::Shield<std::future::Ready<u8>>>();
    send_sync_unpin::<concurry::RunAsync<std::future::Ready<u8>>>();
    send_sync_unpin::<TaskGroup>();
}

/// Calls on another pool from inside a method.
pub struct Relay {
    inner: SpinnerHandle,
}

#[concurry::worker]
impl Relay {
    pub fn new(inner: SpinnerHandle) -> Self {
        Relay { inner }
    }

    /// Submits a call and returns without waiting for it.
    pub fn fire(&self) -> Vec<Promise<bool>> {
        vec![self.inner.late_check()]
    }

    /// Submits a call and waits for it.
    pub fn cascade(&self) -> Result<u64, String> {
        self.inner.spin().result().map_err(|e| e.to_string())
    }
}

/// A call a method submits and leaves running is not cancelled by the method's return; one
/// it waits for is cancelled with it.
#[test]
fn calls_from_a_method_follow_its_cancel_not_its_return() {
    within("nested calls", || {
        let (inner, started, exits) = spinner(Mode::Thread, 2);
        let relay = Relay::options()
            .mode(Mode::Thread)
            .init(inner.clone())
            .unwrap();
        // The caller keeps the promise of the call that returned (its cell stays alive).
        let mut outer = relay.fire();
        assert!(outer.wait_timeout(HANG));
        let fired = outer.try_result().unwrap().unwrap();
        for p in fired {
            assert!(!p.result().unwrap(), "the sub-call saw no cancel");
        }
        drop(outer);
        let p = relay.cascade();
        wait_started(&started, 1);
        p.cancel();
        exits
            .recv_timeout(HANG)
            .expect("the nested call saw its caller's cancel");
        relay.stop().unwrap();
        inner.stop().unwrap();
    });
}

/// Loops on `check_cancelled()` in a child process (`Mode::Process`): the cancel has to
/// cross the socket. It leaves a file when it starts, and remembers how it ended.
pub struct ChildSpinner {
    last: String,
}

#[concurry::worker(remote)]
impl ChildSpinner {
    pub fn new() -> Self {
        ChildSpinner {
            last: "nothing ran".into(),
        }
    }

    /// Creates `started`, then spins until cancelled (or 10 s, never in these tests).
    pub fn spin(&mut self, started: String) -> Result<u64, String> {
        std::fs::write(&started, b"").unwrap();
        let t = Instant::now();
        let mut laps = 0u64;
        loop {
            if concurry::check_cancelled().is_err() {
                self.last = format!("cancelled at {}", unix_micros());
                return Err("cancelled".into());
            }
            laps += 1;
            if t.elapsed() > Duration::from_secs(10) {
                self.last = "ran 10 s: never cancelled".into();
                return Ok(laps);
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// Creates `started`, then waits on `cancelled()` (an async method).
    pub async fn wait_cancel(&mut self, started: String) -> String {
        std::fs::write(&started, b"").unwrap();
        self.last = tokio::select! {
            _ = concurry::cancelled() => format!("cancelled at {}", unix_micros()),
            _ = tokio::time::sleep(Duration::from_secs(10)) => "slept 10 s".into(),
        };
        self.last.clone()
    }

    /// How the last spin ended.
    pub fn last(&self) -> String {
        self.last.clone()
    }

    pub fn quick(&self, x: u64) -> u64 {
        x
    }
}

/// The wall clock in µs since the epoch: comparable between the parent and its child.
fn unix_micros() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros()
}

/// A fresh path for a call's `started` file.
fn marker(what: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    let path =
        std::env::temp_dir().join(format!("concurry-cancel-{}-{what}-{n}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path.to_string_lossy().into_owned()
}

fn wait_for_file(path: &str) {
    let t = Instant::now();
    while !std::path::Path::new(path).exists() {
        assert!(t.elapsed() < HANG, "the call never started");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// How long after `at` (µs since the epoch) the child says it saw the cancel.
fn seen_after(last: &str, at: u128) -> Duration {
    let when: u128 = last
        .strip_prefix("cancelled at ")
        .unwrap_or_else(|| panic!("the method did not see its cancel: {last}"))
        .parse()
        .unwrap();
    Duration::from_micros(u64::try_from(when.saturating_sub(at)).unwrap())
}

/// In a child process too: `Promise::cancel` on a running call resolves the promise with
/// `Cancelled` at once, the method sees the cancel at its next checkpoint (sync and async
/// methods), and the worker serves the next calls.
#[test]
fn a_running_method_in_a_child_process_stops_soon_after_cancel() {
    within("cancel a method in a child", || {
        let pool = ChildSpinner::options()
            .mode(Mode::Process)
            .max_workers(1)
            .init()
            .unwrap();
        let started = marker("spin");
        let p = pool.spin(started.clone());
        wait_for_file(&started);
        let (at, wall) = (Instant::now(), unix_micros());
        assert!(p.cancel());
        assert!(matches!(p.result(), Err(Error::Cancelled)));
        // Served once the spin returned.
        let last = pool.last().result_timeout(HANG).unwrap();
        let served = at.elapsed();
        let seen = seen_after(&last, wall);
        eprintln!(
            "process: sync method saw its cancel {seen:?} after cancel(); the next call was \
             answered after {served:?}"
        );
        assert!(served < Duration::from_secs(5), "{served:?}: {last}");

        // A call that has run for a while: the child reads around it already. (The sleep
        // only lets it run past the child's ~2 ms threshold; nothing is timed against it.)
        let started = marker("long");
        let p = pool.spin(started.clone());
        wait_for_file(&started);
        std::thread::sleep(Duration::from_millis(20));
        let wall = unix_micros();
        assert!(p.cancel());
        let last = pool.last().result_timeout(HANG).unwrap();
        eprintln!(
            "process: a sync method running for 20 ms saw its cancel {:?} after cancel()",
            seen_after(&last, wall)
        );

        let started = marker("wait");
        let p = pool.wait_cancel(started.clone());
        wait_for_file(&started);
        let (at, wall) = (Instant::now(), unix_micros());
        assert!(p.cancel());
        assert!(matches!(p.result(), Err(Error::Cancelled)));
        let last = pool.last().result_timeout(HANG).unwrap();
        let served = at.elapsed();
        let seen = seen_after(&last, wall);
        eprintln!(
            "process: async method saw its cancel {seen:?} after cancel(); the next call was \
             answered after {served:?}"
        );
        assert!(served < Duration::from_secs(5), "{served:?}: {last}");

        // A cancel of a call that finished is harmless: its value stands.
        let done = pool.quick(7);
        assert!(done.wait_timeout(HANG));
        assert!(!done.cancel());
        assert_eq!(done.result().unwrap(), 7);
        assert_eq!(pool.quick(8).result_timeout(HANG).unwrap(), 8);
        pool.stop().unwrap();
    });
}

/// A call cancelled while it waits in the child behind a running one never runs; the
/// running one still sees its own cancel.
#[test]
fn a_call_cancelled_before_it_starts_in_the_child_never_runs() {
    within("cancel a queued call in a child", || {
        let pool = ChildSpinner::options()
            .mode(Mode::Process)
            .max_workers(1)
            .init()
            .unwrap();
        let (first, second) = (marker("first"), marker("second"));
        let running = pool.spin(first.clone());
        wait_for_file(&first);
        let queued = pool.spin(second.clone());
        assert!(queued.cancel());
        assert!(running.cancel());
        let last = pool.last().result_timeout(HANG).unwrap();
        assert!(last.starts_with("cancelled at "), "{last}");
        assert!(
            !std::path::Path::new(&second).exists(),
            "the call cancelled before it started ran"
        );
        assert!(matches!(queued.result(), Err(Error::Cancelled)));
        assert_eq!(pool.quick(1).result_timeout(HANG).unwrap(), 1);
        pool.stop().unwrap();
        let _ = std::fs::remove_file(first);
    });
}

/// Calls submitted in a scope on a process-mode pool inherit it, as in process: its
/// deadline reaches the method in the child, an error it returns then is `Cancelled`, and a
/// call submitted in a scope cancelled already never runs.
#[test]
fn calls_in_a_scope_see_its_deadline_in_a_child_process() {
    within("scope deadline reaches a child", || {
        let pool = ChildSpinner::options()
            .mode(Mode::Process)
            .max_workers(1)
            .init()
            .unwrap();
        let at = Instant::now();
        let started = marker("deadline");
        let out =
            concurry::move_on_after(Duration::from_millis(30), |_| pool.spin(started).result());
        assert!(out.is_none(), "the scope's deadline passed");
        let last = pool.last().result_timeout(HANG).unwrap();
        assert!(last.starts_with("cancelled at "), "{last}");
        eprintln!(
            "process: a call in a scope with a 30ms deadline returned {:?} after the scope opened",
            at.elapsed()
        );
        assert!(at.elapsed() < Duration::from_secs(5));

        let cs = CancelScope::with_timeout(Duration::from_millis(10));
        let r = cs.run(|_| pool.spin(marker("awaited")).result());
        assert!(matches!(r, Err(Error::Cancelled)), "{r:?}");
        assert!(cs.cancel_called());

        let cs = CancelScope::new();
        cs.cancel();
        let skipped = marker("skipped");
        let r = cs.run(|_| pool.spin(skipped.clone()).result());
        assert!(matches!(r, Err(Error::Cancelled)), "{r:?}");
        assert!(!std::path::Path::new(&skipped).exists());
        // Outside the scope, calls are not cancelled.
        assert_eq!(pool.quick(4).result_timeout(HANG).unwrap(), 4);
        pool.stop().unwrap();
    });
}

/// Fail-fast reaches a sibling running in a child process.
#[test]
fn fail_fast_cancels_a_sibling_in_a_child_process() {
    within("fail-fast reaches a child", || {
        let pool = ChildSpinner::options()
            .mode(Mode::Process)
            .max_workers(1)
            .init()
            .unwrap();
        let started = marker("sibling");
        let seen = started.clone();
        let r = concurry::scope(|s| {
            s.spawn(pool.spin(started));
            s.spawn_try_blocking(move || -> Result<(), String> {
                wait_for_file(&seen);
                Err("boom".into())
            });
        });
        assert!(matches!(r, Err(Error::ChildFailed { .. })), "{r:?}");
        let last = pool.last().result_timeout(HANG).unwrap();
        assert!(last.starts_with("cancelled at "), "{last}");
        pool.stop().unwrap();
    });
}
