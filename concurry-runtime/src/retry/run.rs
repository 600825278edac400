//! The retry loop: runs attempts of one call until it succeeds, fails for good, or runs out
//! of attempts, waiting between attempts in a task (never on a worker): on the caller's
//! multi-thread runtime, else the pool's workers' runtime, else the library's.

use std::any::Any;
use std::sync::Arc;

use super::config::RetryConfig;
use crate::error::{Error, ValidationOutputs};
use crate::future::Promise;
use crate::signal::Signal;

/// What a retried call needs from its pool.
pub(crate) struct RetryCtx {
    pub(crate) config: Arc<RetryConfig>,
    pub(crate) method: &'static str,
    /// Fired by `stop()`: a call waiting out a backoff then fails at once with `Stopped`.
    pub(crate) stop: Arc<Signal>,
    /// Where the loop runs ([`crate::runtime::for_helpers`], picked on the caller's thread).
    /// If it shuts down first, the call fails with `Error::Stopped`.
    pub(crate) runtime: tokio::runtime::Handle,
}

/// Runs `attempt(n)` for n = 1, 2, ... per `ctx.config` and resolves the returned promise with
/// the final outcome. Cancelling the returned promise stops the loop (and cancels the attempt
/// in flight).
pub(crate) fn run<T, E, A>(ctx: RetryCtx, attempt: A) -> Promise<T, E>
where
    T: Any + Send + 'static,
    E: Any + Send + 'static,
    A: Fn(u32) -> Promise<T, E> + Send + 'static,
{
    let (promise, completer) = Promise::pending();
    let cancelled = Arc::new(Signal::default());
    {
        let cancelled = cancelled.clone();
        completer.on_resolved(move || cancelled.fire());
    }
    let runtime = ctx.runtime.clone();
    runtime.spawn(async move {
        let outcome = attempts(&ctx, &cancelled, attempt).await;
        if let Some(outcome) = outcome {
            completer.complete(outcome);
        }
    });
    promise
}

/// The loop itself; `None` when the caller cancelled (the promise is already resolved).
async fn attempts<T, E, A>(
    ctx: &RetryCtx,
    cancelled: &Signal,
    attempt: A,
) -> Option<Result<T, Error<E>>>
where
    T: Any + Send + 'static,
    E: Any + Send + 'static,
    A: Fn(u32) -> Promise<T, E>,
{
    let config = &*ctx.config;
    let max = config.max_attempts();
    let validating = config.validates::<T>();
    let mut rejected: Vec<Box<dyn Any + Send>> = Vec::new();
    let mut reason = None;
    let mut n = 1;
    loop {
        let mut call = attempt(n);
        let outcome = tokio::select! {
            biased;
            () = cancelled.wait() => None,
            outcome = &mut call => Some(outcome),
        };
        let Some(outcome) = outcome else {
            call.cancel();
            return None;
        };
        let retry = match outcome {
            Ok(v) if validating => match guarded(ctx.method, "a `retry_until` validator", || {
                config.rejects(&v)
            }) {
                Err(panicked) => return Some(Err(panicked)),
                Ok(None) => return Some(Ok(v)),
                Ok(Some(why)) => {
                    rejected.push(Box::new(v));
                    reason = Some(why);
                    true
                }
            },
            Ok(v) => return Some(Ok(v)),
            // The only attempt failed: nothing to decide.
            Err(e) if max == 1 => return Some(Err(e)),
            Err(e) => {
                let retryable = match guarded(ctx.method, "a `retry_on` predicate", || {
                    config.should_retry(&e, n, ctx.method)
                }) {
                    Ok(retryable) => retryable,
                    Err(panicked) => return Some(Err(panicked)),
                };
                match (retryable, n < max) {
                    (true, true) => {
                        tracing::debug!(
                            method = ctx.method,
                            attempt = n,
                            error = "method error",
                            "attempt failed"
                        );
                        true
                    }
                    (true, false) if n > 1 => {
                        return Some(Err(Error::RetriesExhausted {
                            method: ctx.method,
                            attempts: n,
                            last: Box::new(e),
                        }));
                    }
                    _ => return Some(Err(e)),
                }
            }
        };
        debug_assert!(retry);
        if n >= max {
            let reason = reason.map_or_else(String::new, |r| r.into_owned());
            return Some(Err(Error::Validation {
                method: ctx.method,
                attempts: n,
                reason,
                outputs: ValidationOutputs::new(rejected),
            }));
        }
        let wait = config.wait_before(n, crate::rand::unit());
        tracing::debug!(
            method = ctx.method,
            attempt = n,
            wait_ms = wait.as_millis() as u64,
            "retrying after backoff"
        );
        tokio::select! {
            biased;
            () = cancelled.wait() => return None,
            () = ctx.stop.wait() => return Some(Err(Error::Stopped)),
            () = tokio::time::sleep(wait) => {}
        }
        n += 1;
    }
}

/// Runs user code of the retry loop (a predicate, a validator), turning its panic into
/// [`Error::Panicked`] naming `what` and the method: the loop runs in a task, where an
/// unwinding panic would drop the call's completer (`Stopped`) instead.
fn guarded<R, E>(method: &str, what: &str, f: impl FnOnce() -> R) -> Result<R, Error<E>> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|panic| Error::Panicked {
        message: format!(
            "{what} of `{method}` panicked: {}",
            crate::error::panic_message(&*panic)
        ),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    use super::*;

    fn make_ctx(config: RetryConfig) -> (RetryCtx, Arc<Signal>) {
        let stop = Arc::new(Signal::default());
        (
            RetryCtx {
                config: Arc::new(config),
                method: "m",
                stop: stop.clone(),
                runtime: crate::runtime::for_helpers(None),
            },
            stop,
        )
    }

    /// `attempts` tries with a 1 ms base wait: no test depends on how long it really waits.
    fn fast(attempts: u32) -> RetryConfig {
        RetryConfig::attempts(attempts).wait(Duration::from_millis(1))
    }

    /// An attempt function resolving attempt `n` with `outcome(n)`, counting calls.
    fn flaky(
        calls: &Arc<AtomicU32>,
        outcome: impl Fn(u32) -> Result<u32, Error<String>> + Send + 'static,
    ) -> impl Fn(u32) -> Promise<u32, String> + Send + 'static {
        let calls = calls.clone();
        move |n| {
            assert_eq!(
                calls.fetch_add(1, Ordering::SeqCst) + 1,
                n,
                "attempts are numbered 1, 2, ..."
            );
            Promise::ready(outcome(n))
        }
    }

    #[test]
    fn fails_twice_then_succeeds_with_three_attempts() {
        let calls = Arc::new(AtomicU32::new(0));
        let (ctx, _) = make_ctx(fast(6));
        let p = run(
            ctx,
            flaky(&calls, |n| {
                if n < 3 {
                    Err(Error::Method("busy".into()))
                } else {
                    Ok(n)
                }
            }),
        );
        assert_eq!(p.result().unwrap(), 3);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn exhaustion_keeps_the_last_error_typed() {
        let calls = Arc::new(AtomicU32::new(0));
        let (ctx, _) = make_ctx(fast(3));
        let p = run(
            ctx,
            flaky(&calls, |n| Err(Error::Method(format!("fail {n}")))),
        );
        match p.result() {
            Err(Error::RetriesExhausted {
                method: "m",
                attempts: 3,
                last,
            }) => {
                assert!(matches!(*last, Error::Method(ref m) if m == "fail 3"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn retry_on_filters_and_runtime_failures_are_never_retried() {
        let calls = Arc::new(AtomicU32::new(0));
        let (ctx, _) =
            make_ctx(fast(6).retry_on(|f| f.downcast_ref::<String>().is_some_and(|s| s == "busy")));
        let p = run(ctx, flaky(&calls, |_| Err(Error::Method("fatal".into()))));
        assert!(matches!(p.result(), Err(Error::Method(m)) if m == "fatal"));
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        for (error, retry_panics) in [
            (Error::Stopped, true),
            (Error::Cancelled, true),
            (Error::Timeout, true),
        ] {
            let calls = Arc::new(AtomicU32::new(0));
            let (ctx, _) = make_ctx(fast(6).retry_on_panic(retry_panics));
            let e = std::sync::Mutex::new(Some(error));
            let p = run(
                ctx,
                flaky(&calls, move |_| Err(e.lock().unwrap().take().unwrap())),
            );
            assert!(p.result().is_err());
            assert_eq!(calls.load(Ordering::SeqCst), 1);
        }
    }

    #[test]
    fn panics_are_retried_only_when_asked() {
        let panicking = |_| {
            Err(Error::Panicked {
                message: "boom".into(),
            })
        };
        let calls = Arc::new(AtomicU32::new(0));
        let (ctx, _) = make_ctx(fast(3));
        assert!(matches!(
            run(ctx, flaky(&calls, panicking)).result(),
            Err(Error::Panicked { .. })
        ));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let calls = Arc::new(AtomicU32::new(0));
        let (ctx, _) = make_ctx(fast(3).retry_on_panic(true));
        assert!(matches!(
            run(ctx, flaky(&calls, panicking)).result(),
            Err(Error::RetriesExhausted { attempts: 3, .. })
        ));
    }

    #[test]
    fn lost_workers_are_retried_only_when_asked() {
        let lost = |n| {
            if n < 2 {
                Err(Error::WorkerLost {
                    message: "killed".into(),
                })
            } else {
                Ok(n)
            }
        };
        let calls = Arc::new(AtomicU32::new(0));
        let (ctx, _) = make_ctx(fast(3).retry_on_panic(true));
        assert!(matches!(
            run(ctx, flaky(&calls, lost)).result(),
            Err(Error::WorkerLost { .. })
        ));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let calls = Arc::new(AtomicU32::new(0));
        let (ctx, _) = make_ctx(fast(3).retry_on_worker_lost(true));
        assert_eq!(run(ctx, flaky(&calls, lost)).result().unwrap(), 2);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        // `retry_on` predicates see the loss too.
        let calls = Arc::new(AtomicU32::new(0));
        let (ctx, _) = make_ctx(
            fast(3)
                .retry_on_worker_lost(true)
                .retry_on(|f| f.downcast_ref::<String>().is_some()),
        );
        assert!(run(ctx, flaky(&calls, lost)).result().is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let calls = Arc::new(AtomicU32::new(0));
        let (ctx, _) = make_ctx(
            fast(3)
                .retry_on_worker_lost(true)
                .retry_on(|f| f.is_worker_lost()),
        );
        assert_eq!(run(ctx, flaky(&calls, lost)).result().unwrap(), 2);
    }

    #[test]
    fn retry_until_exhaustion_yields_every_output() {
        let calls = Arc::new(AtomicU32::new(0));
        let (ctx, _) =
            make_ctx(fast(4).retry_until_named("an even answer", |v: &u32| v.is_multiple_of(2)));
        match run(ctx, flaky(&calls, |n| Ok(2 * n + 1))).result() {
            Err(Error::Validation {
                method,
                attempts,
                reason,
                outputs,
            }) => {
                assert_eq!(method, "m");
                assert_eq!(attempts, 4);
                assert_eq!(reason, "an even answer");
                assert_eq!(outputs.into_vec::<u32>().unwrap(), [3, 5, 7, 9]);
            }
            other => panic!("{other:?}"),
        }
        let calls = Arc::new(AtomicU32::new(0));
        let (ctx, _) = make_ctx(fast(4).retry_until(|v: &u32| *v >= 3));
        assert_eq!(run(ctx, flaky(&calls, Ok)).result().unwrap(), 3);
    }

    #[test]
    fn a_panicking_predicate_or_validator_is_a_panic_of_the_call() {
        let calls = Arc::new(AtomicU32::new(0));
        let (ctx, _) = make_ctx(fast(3).retry_on(|_| panic!("planned panic: predicate")));
        match run(ctx, flaky(&calls, |_| Err(Error::Method("busy".into())))).result() {
            Err(Error::Panicked { message }) => assert_eq!(
                message,
                "a `retry_on` predicate of `m` panicked: planned panic: predicate"
            ),
            other => panic!("{other:?}"),
        }
        let (ctx, _) =
            make_ctx(fast(3).retry_until(|_: &u32| -> bool { panic!("planned panic: validator") }));
        match run(ctx, flaky(&Arc::default(), Ok)).result() {
            Err(Error::Panicked { message }) => assert_eq!(
                message,
                "a `retry_until` validator of `m` panicked: planned panic: validator"
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn cancel_during_a_long_backoff_returns_promptly_and_runs_no_more_attempts() {
        let calls = Arc::new(AtomicU32::new(0));
        let (ctx, _) = make_ctx(
            RetryConfig::attempts(4)
                .wait(Duration::from_secs(3600))
                .max_wait(Duration::from_secs(3600)),
        );
        let p = run(ctx, flaky(&calls, |_| Err(Error::Method("busy".into()))));
        while calls.load(Ordering::SeqCst) == 0 {
            std::thread::yield_now();
        }
        assert!(p.cancel());
        assert!(matches!(p.result(), Err(Error::Cancelled)));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn stop_during_a_long_backoff_fails_the_call_promptly() {
        let calls = Arc::new(AtomicU32::new(0));
        let (ctx, stop) = make_ctx(
            RetryConfig::attempts(4)
                .wait(Duration::from_secs(3600))
                .max_wait(Duration::from_secs(3600)),
        );
        let p = run(ctx, flaky(&calls, |_| Err(Error::Method("busy".into()))));
        while calls.load(Ordering::SeqCst) == 0 {
            std::thread::yield_now();
        }
        stop.fire();
        // Generous bound: only catches a loop that waits out its hour.
        assert!(matches!(
            p.result_timeout(Duration::from_secs(30)),
            Err(Error::Stopped)
        ));
    }
}
