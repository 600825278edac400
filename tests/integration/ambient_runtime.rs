//! Async mode on the caller's tokio runtime: workers adopt the multi-thread runtime `init` runs
//! inside, `options().runtime(handle)` picks one, the library's runtime is the fallback, and
//! stop, drop, `blocking()` and a runtime shutting down under the pool never hang. On-demand
//! async workers and the helper tasks of calls (retry loops) follow the same choice.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use concurry::prelude::*;
use concurry::{Promise, RetryConfig};
use tokio::runtime::{Builder, Handle, Runtime};

use crate::common::within;

/// A multi-thread runtime with `threads` worker threads.
fn multi(threads: usize) -> Runtime {
    Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .unwrap()
}

pub struct Where;

#[concurry::worker]
impl Where {
    pub fn new() -> Self {
        Where
    }

    /// The id of the runtime this `async fn` runs on.
    pub async fn runtime_id(&self) -> String {
        Handle::current().id().to_string()
    }

    /// The id of the runtime whose blocking pool this sync method runs on.
    pub fn sync_runtime_id(&self) -> String {
        Handle::try_current()
            .map(|h| h.id().to_string())
            .unwrap_or_default()
    }

    /// The name of the thread this `async fn` runs on.
    pub async fn thread_name(&self) -> String {
        std::thread::current().name().unwrap_or("").to_string()
    }

    pub async fn echo(&self, x: u64) -> u64 {
        tokio::task::yield_now().await;
        x
    }

    /// Never finishes.
    pub async fn hang(&self) -> u64 {
        std::future::pending().await
    }

    /// Never finishes, and holds back every later call (exclusive).
    pub async fn hang_mut(&mut self) -> u64 {
        std::future::pending().await
    }
}

#[test]
fn init_inside_a_multi_thread_runtime_runs_the_workers_there() {
    within("a pool on the ambient runtime", || {
        let rt = multi(2);
        let (caller, on_worker, sync_on_worker) = rt.block_on(async {
            let pool = Where::options().mode(Mode::Async).init().unwrap();
            let ids = (
                Handle::current().id().to_string(),
                pool.runtime_id().await.unwrap(),
                pool.sync_runtime_id().await.unwrap(),
            );
            pool.stop().unwrap();
            ids
        });
        assert_eq!(on_worker, caller);
        assert_eq!(sync_on_worker, caller);
    });
}

#[test]
fn init_stop_and_drop_from_a_task_on_a_one_thread_runtime_do_not_deadlock() {
    within("init, stop and drop inside a task", || {
        // One worker thread: the caller's task and the pool's worker tasks share it, so any
        // wait that kept the thread would hang.
        let rt = multi(1);
        let outcome = rt.block_on(async {
            tokio::spawn(async {
                let pool = Where::options().mode(Mode::Async).init().unwrap();
                assert_eq!(
                    pool.runtime_id().await.unwrap(),
                    Handle::current().id().to_string()
                );
                // `stop()` drains what is queued first, while this task waits in it.
                let queued: Vec<_> = (0..100).map(|i| pool.echo(i)).collect();
                pool.stop().unwrap();
                for (i, p) in queued.into_iter().enumerate() {
                    assert_eq!(p.await.unwrap(), i as u64);
                }

                // Dropping the last handle in the task: the queued calls still run.
                let pool = Where::options().mode(Mode::Async).init().unwrap();
                let queued: Vec<_> = (0..100).map(|i| pool.echo(i)).collect();
                drop(pool);
                let mut sum = 0;
                for p in queued {
                    sum += p.await.unwrap();
                }
                sum
            })
            .await
            .unwrap()
        });
        assert_eq!(outcome, (0..100).sum::<u64>());
    });
}

#[test]
fn an_explicit_handle_picks_the_runtime_and_blocking_works_from_a_plain_thread() {
    within("a pool on an explicit runtime", || {
        let rt = multi(2);
        let pool = Where::options()
            .mode(Mode::Async)
            .runtime(rt.handle().clone())
            .init()
            .unwrap();
        let id = rt.handle().id().to_string();
        assert_eq!(pool.blocking().runtime_id().unwrap(), id);
        assert_eq!(pool.blocking().sync_runtime_id().unwrap(), id);
        assert_eq!(pool.echo(7).result().unwrap(), 7);
        // The explicit handle wins over the runtime `init` runs inside.
        let other = multi(1);
        let pool2 = other.block_on(async {
            Where::options()
                .mode(Mode::Async)
                .runtime(rt.handle().clone())
                .init()
                .unwrap()
        });
        assert_eq!(pool2.blocking().runtime_id().unwrap(), id);
        pool2.stop().unwrap();
        pool.stop().unwrap();
    });
}

#[test]
fn outside_any_runtime_or_inside_a_current_thread_one_the_library_runtime_is_used() {
    within("pools on the library runtime", || {
        let pool = Where::options().mode(Mode::Async).init().unwrap();
        assert_eq!(pool.blocking().thread_name().unwrap(), "concurry-async");
        pool.stop().unwrap();

        // A current-thread runtime is not adopted: its one thread is the caller's.
        let rt = Builder::new_current_thread().enable_all().build().unwrap();
        let (caller, on_worker) = rt.block_on(async {
            let pool = Where::options().mode(Mode::Async).init().unwrap();
            let ids = (
                Handle::current().id().to_string(),
                pool.runtime_id().await.unwrap(),
            );
            pool.stop().unwrap();
            ids
        });
        assert_ne!(on_worker, caller);
    });
}

#[test]
fn a_current_thread_handle_or_a_non_async_pool_is_a_config_error() {
    let rt = Builder::new_current_thread().enable_all().build().unwrap();
    let err = Where::options()
        .mode(Mode::Async)
        .runtime(rt.handle().clone())
        .init()
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, concurry::Error::Config(_)), "{err:?}");
    assert!(
        msg.contains("runtime") && msg.contains("new_multi_thread"),
        "{msg}"
    );

    let multi = multi(1);
    let err = Where::options()
        .mode(Mode::Thread)
        .runtime(multi.handle().clone())
        .init()
        .unwrap_err();
    assert!(err.to_string().contains("Mode::Async"), "{err}");
}

#[test]
fn a_runtime_shutting_down_under_a_pool_fails_its_calls_and_stop_returns() {
    within("a runtime shut down under a pool", || {
        let rt = multi(2);
        let pool = Where::options()
            .mode(Mode::Async)
            .runtime(rt.handle().clone())
            .init()
            .unwrap();
        // `hang` is in flight once a call sent after it came back; the exclusive `hang_mut`
        // then waits for it, and the calls behind stay queued.
        let running = pool.hang();
        assert_eq!(pool.blocking().echo(0).unwrap(), 0);
        let blocker = pool.hang_mut();
        let queued: Vec<_> = (0..10).map(|i| pool.echo(i)).collect();
        drop(rt);
        assert!(running.result().unwrap_err().is_stopped());
        assert!(blocker.result().unwrap_err().is_stopped());
        for p in queued {
            assert!(p.result().unwrap_err().is_stopped());
        }
        // Later calls fail at once; stop() returns.
        assert!(pool.echo(1).result().unwrap_err().is_stopped());
        assert!(pool.blocking().runtime_id().unwrap_err().is_stopped());
        pool.stop().unwrap();
    });
}

#[test]
fn a_runtime_shutting_down_drops_a_task_holding_the_last_handle_without_waiting() {
    within(
        "a runtime dropping the last handle as it shuts down",
        || {
            let rt = multi(1);
            // Holders spawned before and after the pool's worker task, so the runtime drops one
            // holding the last handle while the worker task is still alive, whatever its order.
            let (early_tx, early_rx) = tokio::sync::oneshot::channel::<WhereHandle>();
            rt.spawn(async move {
                let _last = early_rx.await;
                std::future::pending::<()>().await
            });
            let pool = rt.block_on(async {
                Where::options()
                    .mode(Mode::Async)
                    // Far above the guard: a drop that waited for the workers would be caught.
                    .stop_timeout(Duration::from_secs(300))
                    .init()
                    .unwrap()
            });
            let running = pool.hang();
            assert_eq!(pool.blocking().echo(1).unwrap(), 1);
            let late = pool.clone();
            rt.spawn(async move {
                let _last = late;
                std::future::pending::<()>().await
            });
            early_tx
                .send(pool)
                .unwrap_or_else(|_| panic!("the early holder is gone"));
            // Shutting down drops the holders (and with the last, the pool) and the worker task,
            // on the runtime's own thread.
            drop(rt);
            assert!(running.result().unwrap_err().is_stopped());
        },
    );
}

#[test]
fn init_on_a_runtime_already_shut_down_fails_with_a_message() {
    within("init on a dead runtime", || {
        let rt = multi(1);
        let handle = rt.handle().clone();
        drop(rt);
        let err = Where::options()
            .mode(Mode::Async)
            .runtime(handle)
            .init()
            .unwrap_err();
        assert!(matches!(err, concurry::Error::Init { .. }), "{err:?}");
        assert!(
            err.to_string()
                .contains("runtime it was spawned on is shut down"),
            "{err}"
        );
    });
}

#[test]
fn on_demand_async_workers_run_on_the_callers_runtime_or_the_given_one() {
    within("on-demand async workers on the caller's runtime", || {
        let rt = multi(2);
        let (caller, sync_on_worker, on_worker) = rt.block_on(async {
            let pool = Where::options()
                .mode(Mode::Async)
                .on_demand(true)
                .max_workers(2)
                .init()
                .unwrap();
            let ids = (
                Handle::current().id().to_string(),
                pool.sync_runtime_id().await.unwrap(),
                pool.runtime_id().await.unwrap(),
            );
            pool.stop().unwrap();
            ids
        });
        assert_eq!(sync_on_worker, caller);
        assert_eq!(on_worker, caller);
        // An explicit handle, from a plain thread.
        let other = multi(1);
        let pool = Where::options()
            .mode(Mode::Async)
            .on_demand(true)
            .runtime(other.handle().clone())
            .init()
            .unwrap();
        let want = other.handle().id().to_string();
        assert_eq!(pool.sync_runtime_id().result().unwrap(), want);
        assert_eq!(pool.runtime_id().result().unwrap(), want);
        pool.stop().unwrap();
    });
}

#[test]
fn on_demand_workers_of_a_runtime_shut_down_fail_their_calls_and_stop_returns() {
    within("on-demand workers of a dead runtime", || {
        let rt = multi(1);
        let pool = Where::options()
            .mode(Mode::Async)
            .on_demand(true)
            .runtime(rt.handle().clone())
            .init()
            .unwrap();
        assert_eq!(pool.echo(1).result().unwrap(), 1);
        // The worker retires once its queue is empty (bounded by `within`).
        while pool.stats().on_demand_alive > 0 {
            std::thread::yield_now();
        }
        rt.shutdown_background();
        // No worker can start on that runtime any more: the call fails instead of waiting.
        assert!(pool.echo(2).result().unwrap_err().is_stopped());
        pool.stop().unwrap();
    });
}

/// Fails its first call, then succeeds: one retry.
pub struct FailsOnce {
    calls: u32,
}

#[concurry::worker]
impl FailsOnce {
    pub fn new() -> Self {
        FailsOnce { calls: 0 }
    }

    pub fn once(&mut self) -> Result<u32, String> {
        self.calls += 1;
        match self.calls {
            1 => Err("the first call fails".into()),
            n => Ok(n),
        }
    }

    /// As `once`, plus `x`: a method that can take a pending promise as its argument.
    pub fn once_plus(&mut self, x: u32) -> Result<u32, String> {
        self.once().map(|n| n + x)
    }
}

/// Retries with a 1 ms wait, noting the runtime the retry loop runs on at each decision.
fn noting_runtime(seen: &Arc<Mutex<Vec<String>>>) -> RetryConfig {
    let seen = seen.clone();
    RetryConfig::attempts(3)
        .wait(Duration::from_millis(1))
        .retry_on(move |_| {
            let id = Handle::try_current().map_or_else(|_| "none".into(), |h| h.id().to_string());
            seen.lock().unwrap().push(id);
            true
        })
}

#[test]
fn retry_loops_run_on_the_callers_runtime_else_on_the_pools() {
    within("retry loops on the caller's runtime", || {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let rt = multi(2);
        // A thread-mode pool, called from the caller's runtime: the loop runs there.
        let pool = FailsOnce::options()
            .mode(Mode::Thread)
            .retry(noting_runtime(&seen))
            .init()
            .unwrap();
        let (caller, got) = rt.block_on(async {
            (
                Handle::current().id().to_string(),
                pool.once().await.unwrap(),
            )
        });
        assert_eq!(got, 2);
        assert_eq!(*seen.lock().unwrap(), [caller]);
        pool.stop().unwrap();
        // An async-mode pool on a given runtime, called from a plain thread: on that runtime.
        seen.lock().unwrap().clear();
        let other = multi(1);
        let pool = FailsOnce::options()
            .mode(Mode::Async)
            .runtime(other.handle().clone())
            .retry(noting_runtime(&seen))
            .init()
            .unwrap();
        assert_eq!(pool.once().result().unwrap(), 2);
        assert_eq!(*seen.lock().unwrap(), [other.handle().id().to_string()]);
        pool.stop().unwrap();
    });
}

#[test]
fn a_call_waiting_for_a_pending_argument_waits_on_the_callers_runtime_else_on_the_pools() {
    within("chained calls on the caller's runtime", || {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let rt = multi(2);
        // A thread-mode pool, called from the caller's runtime with a promise still pending:
        // the task that waits for it (and the retry loop it submits) runs there.
        let pool = FailsOnce::options()
            .mode(Mode::Thread)
            .retry(noting_runtime(&seen))
            .init()
            .unwrap();
        let (caller, got) = rt.block_on(async {
            let (arg, c) = Promise::<u32>::pending();
            let call = pool.once_plus(arg);
            c.complete(Ok(10));
            (Handle::current().id().to_string(), call.await.unwrap())
        });
        assert_eq!(got, 12);
        assert_eq!(*seen.lock().unwrap(), [caller]);
        pool.stop().unwrap();
        // An async-mode pool on a given runtime, called from a plain thread: on that runtime.
        seen.lock().unwrap().clear();
        let other = multi(1);
        let pool = FailsOnce::options()
            .mode(Mode::Async)
            .runtime(other.handle().clone())
            .retry(noting_runtime(&seen))
            .init()
            .unwrap();
        let (arg, c) = Promise::<u32>::pending();
        let call = pool.once_plus(arg);
        c.complete(Ok(10));
        assert_eq!(call.result().unwrap(), 12);
        assert_eq!(*seen.lock().unwrap(), [other.handle().id().to_string()]);
        pool.stop().unwrap();
    });
}

#[test]
fn a_runtime_shutting_down_under_a_call_waiting_for_its_argument_fails_it_with_stopped() {
    within("a chained call whose runtime shut down", || {
        let rt = multi(1);
        let pool = FailsOnce::options().mode(Mode::Thread).init().unwrap();
        let (arg, c) = Promise::<u32>::pending();
        let call = {
            let _inside = rt.enter();
            pool.once_plus(arg)
        };
        drop(rt);
        // The argument arrives after the runtime that waited for it is gone: the call was
        // dropped with it and says so; the pool still serves calls.
        c.complete(Ok(1));
        assert!(call.result().unwrap_err().is_stopped());
        assert_eq!(
            pool.once_plus(5).result().unwrap_err().to_string(),
            "the first call fails"
        );
        assert_eq!(pool.once_plus(5).result().unwrap(), 7);
        pool.stop().unwrap();
    });
}

#[test]
fn a_scopes_blocking_children_run_on_the_callers_runtime_else_on_the_librarys() {
    within("blocking scope children on the caller's runtime", || {
        let id = || Handle::try_current().map_or_else(|_| "none".into(), |h| h.id().to_string());
        let rt = multi(1);
        let (caller, child) = rt.block_on(async move {
            let child = concurry::scope(|s| s.spawn_blocking(id)).unwrap();
            (id(), child.wait().unwrap())
        });
        assert_eq!(child, caller);
        // Outside any runtime, the library's blocking pool runs it (some runtime, not none).
        let child = concurry::scope(|s| s.spawn_blocking(id)).unwrap();
        let child = child.wait().unwrap();
        assert!(child != "none" && child != caller, "{child}");
    });
}
