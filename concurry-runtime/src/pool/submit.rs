//! Turning a method call into a [`Call`]: the job closures that run the method, catch its
//! panic, and resolve its promise whatever happens.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;

use futures_util::FutureExt;

use super::{Pool, Shared};
use crate::error::{Error, panic_message};
use crate::future::{Completer, Promise};
use crate::limit::context::{WithLimits, with_limits};
use crate::limit::{Acquisition, LimitSet, WaitError};
use crate::sync::{Arc, Ordering};
use crate::worker::{Call, Job, JobFuture, Worker};

/// The future an `async fn` method call becomes, borrowing the instance for `'a`.
pub type MethodFuture<'a, T, E> = Pin<Box<dyn Future<Output = Result<T, Error<E>>> + Send + 'a>>;

fn panicked<T, E>(payload: Box<dyn std::any::Any + Send>) -> Result<T, Error<E>> {
    Err(Error::Panicked {
        message: panic_message(&*payload),
    })
}

/// The limits a call takes on its worker just before its method runs: one unit of each call
/// and resource limit of the pool's set, held until the method returns.
struct CallLimits {
    /// The pool's set, as the running call sees it (its automatic units already held).
    set: LimitSet,
    shared: Arc<Shared>,
}

/// What ends a call's wait for its limits early.
enum NotAcquired<E> {
    /// The call was cancelled: its promise is resolved already.
    Cancelled,
    /// Resolve the promise with this.
    Fail(Error<E>),
}

impl CallLimits {
    fn stopping(&self) -> bool {
        self.shared.abort.load(Ordering::Acquire)
    }

    fn outcome<E>(
        &self,
        r: Result<Option<Acquisition>, WaitError>,
        cancelled: bool,
    ) -> Result<Option<Acquisition>, NotAcquired<E>> {
        match r {
            Ok(held) => Ok(held),
            Err(WaitError::Cancelled) if cancelled => Err(NotAcquired::Cancelled),
            Err(WaitError::Cancelled) => Err(NotAcquired::Fail(Error::Stopped)),
            Err(WaitError::Limit(e)) => Err(NotAcquired::Fail(Error::Limit(e))),
        }
    }

    /// Waits (blocking this thread) for the call's units; gives up if the call is cancelled
    /// or the pool aborts its queue.
    fn acquire<T, E>(&self, c: &Completer<T, E>) -> Result<Option<Acquisition>, NotAcquired<E>> {
        let r = self
            .set
            .acquire_call(&|| c.is_cancelled() || self.stopping());
        self.outcome(r, c.is_cancelled())
    }

    /// As `acquire`, without blocking the thread.
    async fn acquire_async<T, E>(
        &self,
        c: &Completer<T, E>,
    ) -> Result<Option<Acquisition>, NotAcquired<E>> {
        let r = self
            .set
            .acquire_call_async(|| c.is_cancelled() || self.stopping())
            .await;
        self.outcome(r, c.is_cancelled())
    }
}

async fn run_future<T, E>(
    c: Completer<T, E>,
    limits: Option<CallLimits>,
    fut: MethodFuture<'_, T, E>,
) {
    if c.is_cancelled() {
        return;
    }
    let Some(limits) = limits else {
        let out = AssertUnwindSafe(fut)
            .catch_unwind()
            .await
            .unwrap_or_else(panicked);
        c.complete(out);
        return;
    };
    let held = match limits.acquire_async(&c).await {
        Ok(held) => held,
        Err(NotAcquired::Cancelled) => return,
        Err(NotAcquired::Fail(e)) => {
            c.complete(Err(e));
            return;
        }
    };
    let fut = WithLimits {
        set: limits.set.clone(),
        fut,
    };
    let out = AssertUnwindSafe(fut)
        .catch_unwind()
        .await
        .unwrap_or_else(panicked);
    drop(held);
    c.complete(out);
}

fn exclusive<W, F>(f: F) -> Job<W>
where
    F: for<'a> FnOnce(Result<&'a mut W, Error>) -> JobFuture<'a> + Send + 'static,
{
    Job::Exclusive(Box::new(f))
}

fn shared<W, F>(f: F) -> Job<W>
where
    F: for<'a> FnOnce(Result<&'a W, Error>) -> JobFuture<'a> + Send + 'static,
{
    Job::Shared(Box::new(f))
}

impl<W: Worker> Pool<W> {
    fn call_limits(&self) -> Option<CallLimits> {
        let inner = &*self.inner;
        inner.limits.as_ref().map(|set| CallLimits {
            set: set.for_call(),
            shared: inner.shared.clone(),
        })
    }

    /// Submits a sync method: `f` runs on a worker with `&mut W`.
    pub fn submit_blocking<T, E, F>(&self, method: &'static str, f: F) -> Promise<T, E>
    where
        T: Send + 'static,
        E: Send + 'static,
        F: FnOnce(&mut W) -> Result<T, Error<E>> + Send + 'static,
    {
        self.blocking_attempt(method, 1, f)
    }

    pub(crate) fn blocking_attempt<T, E, F>(
        &self,
        method: &'static str,
        attempt: u32,
        f: F,
    ) -> Promise<T, E>
    where
        T: Send + 'static,
        E: Send + 'static,
        F: FnOnce(&mut W) -> Result<T, Error<E>> + Send + 'static,
    {
        let (promise, c) = Promise::pending();
        let limits = self.call_limits();
        let job = Job::Blocking(Box::new(move |w: Result<&mut W, Error>| {
            let out = match w {
                Err(e) => Err(e.widen()),
                Ok(_) if c.is_cancelled() => return,
                Ok(w) => match &limits {
                    None => catch_unwind(AssertUnwindSafe(|| f(w))).unwrap_or_else(panicked),
                    Some(limits) => {
                        let held = match limits.acquire(&c) {
                            Ok(held) => held,
                            Err(NotAcquired::Cancelled) => return,
                            Err(NotAcquired::Fail(e)) => {
                                c.complete(Err(e));
                                return;
                            }
                        };
                        let out =
                            catch_unwind(AssertUnwindSafe(|| with_limits(&limits.set, || f(w))))
                                .unwrap_or_else(panicked);
                        drop(held);
                        out
                    }
                },
            };
            c.complete(out);
        }));
        self.dispatch(Call {
            method,
            attempt,
            job,
        });
        promise
    }

    /// Submits an `async fn` method taking `&mut self`: it runs exclusively on its worker.
    pub fn submit_exclusive<T, E, F>(&self, method: &'static str, f: F) -> Promise<T, E>
    where
        T: Send + 'static,
        E: Send + 'static,
        F: for<'a> FnOnce(&'a mut W) -> MethodFuture<'a, T, E> + Send + 'static,
    {
        self.exclusive_attempt(method, 1, f)
    }

    pub(crate) fn exclusive_attempt<T, E, F>(
        &self,
        method: &'static str,
        attempt: u32,
        f: F,
    ) -> Promise<T, E>
    where
        T: Send + 'static,
        E: Send + 'static,
        F: for<'a> FnOnce(&'a mut W) -> MethodFuture<'a, T, E> + Send + 'static,
    {
        let (promise, c) = Promise::pending();
        let limits = self.call_limits();
        let job = exclusive(move |w: Result<&mut W, Error>| -> JobFuture<'_> {
            match w {
                Err(e) => Box::pin(async move {
                    c.complete(Err(e.widen()));
                }),
                Ok(w) => Box::pin(run_future(c, limits, f(w))),
            }
        });
        self.dispatch(Call {
            method,
            attempt,
            job,
        });
        promise
    }

    /// Submits an `async fn` method taking `&self`: in async mode it may run concurrently with
    /// the worker's other `&self` async calls.
    pub fn submit_shared<T, E, F>(&self, method: &'static str, f: F) -> Promise<T, E>
    where
        T: Send + 'static,
        E: Send + 'static,
        F: for<'a> FnOnce(&'a W) -> MethodFuture<'a, T, E> + Send + 'static,
    {
        self.shared_attempt(method, 1, f)
    }

    pub(crate) fn shared_attempt<T, E, F>(
        &self,
        method: &'static str,
        attempt: u32,
        f: F,
    ) -> Promise<T, E>
    where
        T: Send + 'static,
        E: Send + 'static,
        F: for<'a> FnOnce(&'a W) -> MethodFuture<'a, T, E> + Send + 'static,
    {
        let (promise, c) = Promise::pending();
        let limits = self.call_limits();
        let job = shared(move |w: Result<&W, Error>| -> JobFuture<'_> {
            match w {
                Err(e) => Box::pin(async move {
                    c.complete(Err(e.widen()));
                }),
                Ok(w) => Box::pin(run_future(c, limits, f(w))),
            }
        });
        self.dispatch(Call {
            method,
            attempt,
            job,
        });
        promise
    }
}
