//! Retries through `#[worker]`: pool-wide `RetryConfig`, per-method `#[retry(..)]`, output
//! validation, and backoffs that never occupy the worker.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use concurry::RetryConfig;
use concurry::prelude::*;

#[derive(Debug, Clone, PartialEq)]
pub enum ApiError {
    Transient,
    Fatal,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

fn is_transient(e: &ApiError) -> bool {
    *e == ApiError::Transient
}

fn non_empty(s: &str) -> bool {
    !s.is_empty()
}

/// Not `Clone`: a method taking it cannot be re-sent, so it runs once.
pub struct Ticket(u32);

pub struct Flaky {
    calls: Arc<AtomicU32>,
}

#[concurry::worker]
impl Flaky {
    pub fn new(calls: Arc<AtomicU32>) -> Self {
        Flaky { calls }
    }

    fn count(&self) -> u32 {
        self.calls.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Fails with a transient error until the `ok_from`-th call.
    pub fn get(&self, ok_from: u32) -> Result<u32, ApiError> {
        let n = self.count();
        if n < ok_from {
            Err(ApiError::Transient)
        } else {
            Ok(n)
        }
    }

    /// Must never repeat.
    #[retry(never)]
    pub fn charge(&self) -> Result<u32, ApiError> {
        self.count();
        Err(ApiError::Transient)
    }

    /// Retries only transient errors, at most 4 attempts, until the answer is non-empty.
    #[retry(attempts = 4, on = is_transient, until = non_empty)]
    pub fn answer(&self, script: Vec<Result<&'static str, ApiError>>) -> Result<String, ApiError> {
        let n = self.count() as usize;
        script[(n - 1).min(script.len() - 1)]
            .clone()
            .map(str::to_string)
    }

    /// An async method is retried the same way.
    pub async fn get_async(&self, ok_from: u32) -> Result<u32, ApiError> {
        self.get(ok_from)
    }

    pub fn panics_once(&self) -> u32 {
        if self.count() == 1 {
            panic!("planned panic: first attempt");
        }
        7
    }

    pub fn take(&self, t: Ticket) -> Result<u32, ApiError> {
        self.count();
        let _ = t.0;
        Err(ApiError::Transient)
    }

    pub fn ping(&self) -> u8 {
        1
    }

    /// A single validated attempt.
    #[retry(attempts = 1, until = non_empty)]
    pub fn answer_once(&self, answer: &'static str) -> String {
        self.count();
        answer.to_string()
    }

    /// Arguments that cannot be re-sent: one attempt, still validated.
    #[retry(until = is_big)]
    pub fn take_checked(&self, t: Ticket) -> u32 {
        self.count();
        t.0
    }
}

fn is_big(n: &u32) -> bool {
    *n >= 100
}

/// Generous: only catches a call that never resolves.
const DEADLINE: Duration = Duration::from_secs(30);

fn pool(mode: Mode, retry: RetryConfig) -> (FlakyHandle, Arc<AtomicU32>) {
    let calls = Arc::new(AtomicU32::new(0));
    let workers = if mode == Mode::Sync { 1 } else { 2 };
    let h = Flaky::options()
        .mode(mode)
        .max_workers(workers)
        .retry(retry)
        .init(calls.clone())
        .unwrap();
    (h, calls)
}

fn fast(attempts: u32) -> RetryConfig {
    RetryConfig::attempts(attempts)
        .wait(Duration::from_millis(1))
        .max_wait(Duration::from_millis(5))
}

#[test]
fn failing_twice_then_succeeding_takes_three_attempts_in_every_mode() {
    for mode in [Mode::Sync, Mode::Thread, Mode::Async] {
        let (h, calls) = pool(mode, fast(6));
        assert_eq!(h.get(3).result().unwrap(), 3, "{mode}");
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        calls.store(0, Ordering::SeqCst);
        assert_eq!(h.get_async(2).result().unwrap(), 2, "{mode}");
        h.stop().unwrap();
    }
}

#[test]
fn exhaustion_keeps_the_last_error_typed_and_counts_attempts() {
    let (h, calls) = pool(Mode::Thread, fast(3));
    match h.get(100).result() {
        Err(Error::RetriesExhausted {
            method,
            attempts,
            last,
        }) => {
            assert_eq!(method, "get");
            assert_eq!(attempts, 3);
            assert!(matches!(*last, Error::Method(ApiError::Transient)));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[test]
fn retry_never_runs_once() {
    let (h, calls) = pool(Mode::Thread, fast(6));
    assert!(matches!(
        h.charge().result(),
        Err(Error::Method(ApiError::Transient))
    ));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn method_attribute_filters_errors_and_validates_output() {
    // No pool-wide retries: the attribute alone turns them on for `answer`.
    let (h, calls) = pool(
        Mode::Thread,
        RetryConfig::attempts(1).wait(Duration::from_millis(1)),
    );
    let script = vec![Err(ApiError::Transient), Ok(""), Ok("42")];
    assert_eq!(h.answer(script).result().unwrap(), "42");
    assert_eq!(calls.load(Ordering::SeqCst), 3);

    calls.store(0, Ordering::SeqCst);
    let script = vec![Err(ApiError::Fatal)];
    assert!(
        matches!(
            h.answer(script).result(),
            Err(Error::Method(ApiError::Fatal))
        ),
        "`on` rejects Fatal"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    calls.store(0, Ordering::SeqCst);
    match h.answer(vec![Ok("")]).result() {
        Err(Error::Validation {
            method,
            attempts,
            reason,
            outputs,
        }) => {
            assert_eq!(method, "answer");
            assert_eq!(attempts, 4);
            assert_eq!(reason, "non_empty");
            assert_eq!(outputs.into_vec::<String>().unwrap(), ["", "", "", ""]);
        }
        other => panic!("{other:?}"),
    }
    // Other methods keep the pool's (absent) retries.
    calls.store(0, Ordering::SeqCst);
    assert!(h.get(2).result().is_err());
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn pool_wide_validators_apply_by_output_type() {
    let (h, _) = pool(Mode::Thread, fast(4).retry_until(|n: &u32| *n >= 2));
    assert_eq!(
        h.get(1).result().unwrap(),
        2,
        "the first output (1) is rejected"
    );
    assert_eq!(h.ping().result().unwrap(), 1, "u8 outputs are not checked");
}

#[test]
fn panics_are_retried_only_when_asked() {
    crate::common::quiet_planned_panics();
    let (h, _) = pool(Mode::Thread, fast(4));
    assert!(matches!(
        h.panics_once().result(),
        Err(Error::Panicked { .. })
    ));
    let (h, _) = pool(Mode::Thread, fast(4).retry_on_panic(true));
    assert_eq!(h.panics_once().result().unwrap(), 7);
}

#[test]
fn arguments_that_cannot_be_cloned_run_once() {
    let (h, calls) = pool(Mode::Thread, fast(6));
    assert!(matches!(
        h.take(Ticket(1)).result(),
        Err(Error::Method(ApiError::Transient))
    ));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

/// Retries that wait an hour between attempts: a call still pending after its first attempt
/// is in its backoff for the rest of the test.
fn hour_long_backoff() -> RetryConfig {
    RetryConfig::attempts(4)
        .wait(Duration::from_secs(3600))
        .max_wait(Duration::from_secs(3600))
}

/// Waits until the worker ran `n` attempts in all.
fn wait_for_attempts(calls: &AtomicU32, n: u32) {
    while calls.load(Ordering::SeqCst) < n {
        std::thread::yield_now();
    }
}

#[test]
fn a_backoff_does_not_occupy_the_worker_and_cancel_ends_it() {
    let long = hour_long_backoff();
    let calls = Arc::new(AtomicU32::new(0));
    let h = Flaky::options()
        .max_workers(1)
        .retry(long)
        .init(calls.clone())
        .unwrap();
    let waiting = h.get(100);
    wait_for_attempts(&calls, 1);
    // The only worker is free while `waiting` sits out its hour-long backoff.
    assert_eq!(h.ping().result().unwrap(), 1);
    assert!(!waiting.is_done());
    assert!(waiting.cancel());
    assert!(matches!(waiting.result(), Err(Error::Cancelled)));
    // Stop during a backoff resolves the call at once.
    let waiting = h.get(100);
    wait_for_attempts(&calls, 2);
    h.stop().unwrap();
    assert!(matches!(
        waiting.result_timeout(Duration::from_secs(30)),
        Err(Error::Stopped)
    ));
}

#[test]
fn invalid_retry_options_are_config_errors() {
    let calls = Arc::new(AtomicU32::new(0));
    match Flaky::options()
        .retry(RetryConfig::attempts(2).jitter(1.5))
        .init(calls)
    {
        Err(Error::Config(e)) => assert!(e.to_string().contains("jitter"), "{e}"),
        other => panic!("{:?}", other.map(|_| ())),
    }
}

#[test]
fn dropping_the_last_handle_stops_a_pool_with_a_call_in_backoff() {
    let long = hour_long_backoff();
    let calls = Arc::new(AtomicU32::new(0));
    let h = Flaky::options()
        .max_workers(1)
        .retry(long)
        .init(calls.clone())
        .unwrap();
    let waiting = h.get(100);
    wait_for_attempts(&calls, 1);
    // The retry loop does not keep the pool alive: dropping the handle stops it, and the call
    // waiting out its backoff resolves at once.
    drop(h);
    assert!(matches!(
        waiting.result_timeout(Duration::from_secs(30)),
        Err(Error::Stopped)
    ));
}

#[test]
fn limits_are_released_between_attempts() {
    use concurry::ResourceLimit;
    let long = hour_long_backoff();
    let calls = Arc::new(AtomicU32::new(0));
    // One connection for the whole pool: every call holds it while its method runs.
    let h = Flaky::options()
        .max_workers(2)
        .limits([ResourceLimit::new("connections", 1)])
        .retry(long)
        .init(calls.clone())
        .unwrap();
    let waiting = h.get(100);
    wait_for_attempts(&calls, 1);
    // While `waiting` sits out its backoff it holds no connection, so this call gets one.
    assert_eq!(h.ping().result_timeout(Duration::from_secs(30)).unwrap(), 1);
    assert!(waiting.cancel());
}

#[test]
fn a_panicking_predicate_or_validator_fails_the_call_as_a_panic() {
    crate::common::quiet_planned_panics();
    for mode in [Mode::Thread, Mode::Async] {
        let (h, _) = pool(
            mode,
            fast(4).retry_on(|_| panic!("planned panic: in retry_on")),
        );
        match h.get(100).result_timeout(DEADLINE) {
            Err(Error::Panicked { message }) => {
                assert!(message.contains("planned panic: in retry_on"), "{message}");
                assert!(message.contains("retry_on"), "{message}");
                assert!(message.contains("`get`"), "{message}");
            }
            other => panic!("{mode}: {other:?}"),
        }
        assert_eq!(h.ping().result_timeout(DEADLINE).unwrap(), 1, "{mode}");
        let (h, _) = pool(
            mode,
            fast(4).retry_until(|_: &u32| -> bool { panic!("planned panic: in retry_until") }),
        );
        match h.get(1).result_timeout(DEADLINE) {
            Err(Error::Panicked { message }) => {
                assert!(
                    message.contains("planned panic: in retry_until"),
                    "{message}"
                );
                assert!(message.contains("retry_until"), "{message}");
                assert!(message.contains("`get`"), "{message}");
            }
            other => panic!("{mode}: {other:?}"),
        }
        // The pool runs on, and its loop still serves retried calls.
        assert_eq!(h.ping().result_timeout(DEADLINE).unwrap(), 1, "{mode}");
        h.stop().unwrap();
    }
}

#[test]
fn validators_run_even_without_retries() {
    let (h, calls) = pool(
        Mode::Thread,
        RetryConfig::attempts(1).retry_until(|n: &u32| *n >= 100),
    );
    match h.get(1).result_timeout(DEADLINE) {
        Err(Error::Validation {
            attempts, outputs, ..
        }) => {
            assert_eq!(attempts, 1);
            assert_eq!(outputs.into_vec::<u32>().unwrap(), [1]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // `#[retry(attempts = 1, until = ..)]`.
    match h.answer_once("").result_timeout(DEADLINE) {
        Err(Error::Validation { attempts, .. }) => assert_eq!(attempts, 1),
        other => panic!("{other:?}"),
    }
    assert_eq!(h.answer_once("x").result_timeout(DEADLINE).unwrap(), "x");
    // Arguments that cannot be cloned: one attempt, validated all the same.
    match h.take_checked(Ticket(1)).result_timeout(DEADLINE) {
        Err(Error::Validation { attempts, .. }) => assert_eq!(attempts, 1),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        h.take_checked(Ticket(100))
            .result_timeout(DEADLINE)
            .unwrap(),
        100
    );
}

#[test]
fn a_validated_call_that_runs_once_takes_one_place_in_a_bounded_pool() {
    // The retry loop takes the call's place; its one attempt must use that place, not wait
    // for a second one (with room for one call per worker, that wait would never end).
    for mode in [Mode::Thread, Mode::Async] {
        let h = Flaky::options()
            .mode(mode)
            .max_workers(1)
            .max_queued_tasks(1)
            .init(Arc::new(AtomicU32::new(0)))
            .unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let h2 = h.clone();
        std::thread::spawn(move || {
            let r = (0..20)
                .map(|i| h2.take_checked(Ticket(100 + i)).result())
                .collect::<Vec<_>>();
            tx.send(r).ok();
        });
        let results = rx
            .recv_timeout(DEADLINE)
            .expect("calls with one place hung");
        assert!(results.iter().all(Result::is_ok), "{mode}: {results:?}");
        h.stop().unwrap();
    }
}

#[test]
fn exhaustion_and_validation_errors_name_the_method() {
    let (h, _) = pool(Mode::Thread, fast(2));
    let e = h.get(100).result_timeout(DEADLINE).unwrap_err();
    assert!(matches!(e, Error::RetriesExhausted { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        "`get` gave up after 2 attempts; the last one failed: Transient"
    );
    let e = h.answer(vec![Ok("")]).result_timeout(DEADLINE).unwrap_err();
    assert!(matches!(e, Error::Validation { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        "all 4 attempts of `answer` returned an output rejected by non_empty"
    );
}

#[test]
fn method_error_finds_the_typed_error_wherever_it_sits() {
    let (h, _) = pool(Mode::Thread, fast(3));
    let e = h.charge().result_timeout(DEADLINE).unwrap_err();
    assert!(matches!(e, Error::Method(_)), "{e:?}");
    assert_eq!(e.method_error(), Some(&ApiError::Transient));
    let e = h.get(100).result_timeout(DEADLINE).unwrap_err();
    assert!(matches!(e, Error::RetriesExhausted { .. }), "{e:?}");
    assert_eq!(e.method_error(), Some(&ApiError::Transient));
    // A failed promise given as an argument.
    let e = h.get(h.charge()).result_timeout(DEADLINE).unwrap_err();
    assert!(matches!(e, Error::Upstream { .. }), "{e:?}");
    assert_eq!(e.method_error(), Some(&ApiError::Transient));
    assert_eq!(e.into_method_error(), Some(ApiError::Transient));
    let e = h.get(100).result_timeout(DEADLINE).unwrap_err();
    assert_eq!(e.into_method_error(), Some(ApiError::Transient));
    // Runtime failures hold none.
    h.stop().unwrap();
    let e = h.get(1).result_timeout(DEADLINE).unwrap_err();
    assert!(e.is_stopped());
    assert_eq!(e.method_error(), None);
}

#[test]
fn attempts_count_every_try_in_the_config_and_the_attribute_alike() {
    // `RetryConfig::attempts(3)`: 3 tries in all, as `#[retry(attempts = 3)]`.
    let (h, calls) = pool(Mode::Thread, fast(3));
    match h.get(100).result_timeout(DEADLINE) {
        Err(Error::RetriesExhausted { attempts, .. }) => assert_eq!(attempts, 3),
        other => panic!("{other:?}"),
    }
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    // `answer` says `attempts = 4`: 4 tries, whatever the pool's count.
    calls.store(0, Ordering::SeqCst);
    assert!(h.answer(vec![Err(ApiError::Transient)]).result().is_err());
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    // `attempts(1)` runs once.
    let (h, calls) = pool(Mode::Thread, fast(1));
    assert!(matches!(
        h.get(100).result_timeout(DEADLINE),
        Err(Error::Method(ApiError::Transient))
    ));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // `attempts(0)` is a mistake, reported at `init` with the fix.
    match Flaky::options()
        .retry(RetryConfig::attempts(0))
        .init(Arc::default())
    {
        Err(Error::Config(e)) => {
            assert_eq!(e.option(), "retry attempts");
            assert!(e.to_string().contains("at least 1"), "{e}");
        }
        other => panic!("{:?}", other.map(|_| ())),
    }
}
