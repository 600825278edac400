//! Turning a method call into a [`Call`]: the job closures that run the method, catch its
//! panic, and resolve its promise whatever happens.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;

use futures_util::FutureExt;

use super::Pool;
use crate::error::{Error, panic_message};
use crate::future::{Completer, Promise};
use crate::worker::{Call, Job, JobFuture, Worker};

/// The future an `async fn` method call becomes, borrowing the instance for `'a`.
pub type MethodFuture<'a, T, E> = Pin<Box<dyn Future<Output = Result<T, Error<E>>> + Send + 'a>>;

fn panicked<T, E>(payload: Box<dyn std::any::Any + Send>) -> Result<T, Error<E>> {
    Err(Error::Panicked {
        message: panic_message(&*payload),
    })
}

async fn run_future<T, E>(c: Completer<T, E>, fut: impl Future<Output = Result<T, Error<E>>>) {
    if c.is_cancelled() {
        return;
    }
    let out = AssertUnwindSafe(fut)
        .catch_unwind()
        .await
        .unwrap_or_else(panicked);
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
    /// Submits a sync method: `f` runs on a worker with `&mut W`.
    pub fn submit_blocking<T, E, F>(&self, method: &'static str, f: F) -> Promise<T, E>
    where
        T: Send + 'static,
        E: Send + 'static,
        F: FnOnce(&mut W) -> Result<T, Error<E>> + Send + 'static,
    {
        let (promise, c) = Promise::pending();
        let job = Job::Blocking(Box::new(move |w: Result<&mut W, Error>| {
            let out = match w {
                Err(e) => Err(e.widen()),
                Ok(_) if c.is_cancelled() => return,
                Ok(w) => catch_unwind(AssertUnwindSafe(|| f(w))).unwrap_or_else(panicked),
            };
            c.complete(out);
        }));
        self.dispatch(Call { method, job });
        promise
    }

    /// Submits an `async fn` method taking `&mut self`: it runs exclusively on its worker.
    pub fn submit_exclusive<T, E, F>(&self, method: &'static str, f: F) -> Promise<T, E>
    where
        T: Send + 'static,
        E: Send + 'static,
        F: for<'a> FnOnce(&'a mut W) -> MethodFuture<'a, T, E> + Send + 'static,
    {
        let (promise, c) = Promise::pending();
        let job = exclusive(move |w: Result<&mut W, Error>| -> JobFuture<'_> {
            match w {
                Err(e) => Box::pin(async move {
                    c.complete(Err(e.widen()));
                }),
                Ok(w) => Box::pin(run_future(c, f(w))),
            }
        });
        self.dispatch(Call { method, job });
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
        let (promise, c) = Promise::pending();
        let job = shared(move |w: Result<&W, Error>| -> JobFuture<'_> {
            match w {
                Err(e) => Box::pin(async move {
                    c.complete(Err(e.widen()));
                }),
                Ok(w) => Box::pin(run_future(c, f(w))),
            }
        });
        self.dispatch(Call { method, job });
        promise
    }
}
