//! The one submission path: a call of any kind ([`Method`]) becomes one cell (promise slot
//! + job, see `job/cell.rs`) per attempt, sent to a worker by [`Pool::dispatch`].

use std::borrow::Borrow;

use super::retry::MethodRetry;
use super::{Pool, Room};
use crate::error::Error;
use crate::future::Promise;
use crate::job::Call;
use crate::job::cell::{CallLimits, MethodFuture};
use crate::job::kind::{self, Limits, Method};
use crate::report::CallTimer;
use crate::worker::Worker;

impl<W: Worker> Pool<W> {
    /// One attempt of a call: `method` with `args`, sent where `room` says.
    pub(crate) fn attempt<A, M, P>(
        &self,
        name: &'static str,
        attempt: u32,
        room: Room,
        method: P,
        args: A,
    ) -> Promise<M::Output, M::Error>
    where
        M: Method<W, A>,
        P: Borrow<M> + Send + 'static,
    {
        self.attempt_timed(name, attempt, room, method, args, CallTimer::none())
    }

    /// As [`attempt`](Pool::attempt), for a call whose only attempt this is: `timer` rides in
    /// its cell and reports it when resolved (no callback on the promise).
    fn attempt_timed<A, M, P>(
        &self,
        name: &'static str,
        attempt: u32,
        room: Room,
        method: P,
        args: A,
        timer: CallTimer,
    ) -> Promise<M::Output, M::Error>
    where
        M: Method<W, A>,
        P: Borrow<M> + Send + 'static,
    {
        let inner = &*self.inner;
        let call_limits = inner.limits.as_ref().map(|set| {
            CallLimits::new(set, &inner.shared.abort, inner.shared.metrics.limit_wait())
        });
        let limits = Limits(call_limits, timer);
        let bound = M::call(method, args, limits);
        let job = bound.job;
        self.dispatch(
            Call {
                method: name,
                attempt,
                job,
            },
            room,
        );
        bound.promise
    }

    /// Submits a call of `method` with arguments that can be sent again: retried per the
    /// pool's config and the method's `#[retry(..)]`, each attempt a fresh call.
    pub fn submit_call<A, M>(
        &self,
        name: &'static str,
        retry: &MethodRetry<M::Output, M::Error>,
        args: A,
        method: M,
    ) -> Promise<M::Output, M::Error>
    where
        A: Clone + Send + 'static,
        M: Method<W, A>,
    {
        let timer = self.inner.shared.metrics.start(name);
        match self.retry_for(retry) {
            None => self.attempt_timed::<A, M, M>(name, 1, Room::Wait, method, args, timer),
            Some(config) => {
                let method = std::sync::Arc::new(method);
                let promise = self.attempts(config, name, args, move |pool, n, room, args| {
                    pool.attempt::<A, M, _>(name, n, room, method.clone(), args)
                });
                timer.watch(&promise);
                promise
            }
        }
    }

    /// Submits a call of `method` with arguments that cannot be sent again: it runs once
    /// (its output still checked by the validators that apply).
    pub fn submit_call_once<A, M>(
        &self,
        name: &'static str,
        retry: &MethodRetry<M::Output, M::Error>,
        args: A,
        method: M,
    ) -> Promise<M::Output, M::Error>
    where
        A: Send + 'static,
        M: Method<W, A>,
    {
        let timer = self.inner.shared.metrics.start(name);
        let promise = self.run_once(name, retry, move |pool, room| {
            pool.attempt::<A, M, M>(name, 1, room, method, args)
        });
        timer.watch(&promise);
        promise
    }

    /// Submits a sync method: `f` runs on a worker with `&mut W`.
    pub fn submit_blocking<T, E, F>(&self, name: &'static str, f: F) -> Promise<T, E>
    where
        T: Send + 'static,
        E: Send + 'static,
        F: FnOnce(&mut W) -> Result<T, Error<E>> + Send + 'static,
    {
        let timer = self.inner.shared.metrics.start(name);
        let method = kind::blocking(|w: &mut W, f: F| f(w));
        self.attempt_timed(name, 1, Room::Wait, method, f, timer)
    }

    /// Submits an `async fn` method taking `&mut self`: it runs exclusively on its worker.
    pub fn submit_exclusive<T, E, F>(&self, name: &'static str, f: F) -> Promise<T, E>
    where
        T: Send + 'static,
        E: Send + 'static,
        F: for<'a> FnOnce(&'a mut W) -> MethodFuture<'a, T, E> + Send + 'static,
    {
        let timer = self.inner.shared.metrics.start(name);
        let method = kind::exclusive(|w: &mut W, f: F| f(w));
        self.attempt_timed(name, 1, Room::Wait, method, f, timer)
    }

    /// Submits an `async fn` method taking `&self`: in async mode it may run concurrently with
    /// the worker's other `&self` async calls.
    pub fn submit_shared<T, E, F>(&self, name: &'static str, f: F) -> Promise<T, E>
    where
        T: Send + 'static,
        E: Send + 'static,
        F: for<'a> FnOnce(&'a W) -> MethodFuture<'a, T, E> + Send + 'static,
    {
        let timer = self.inner.shared.metrics.start(name);
        let method = kind::shared(|w: &W, f: F| f(w));
        self.attempt_timed(name, 1, Room::Wait, method, f, timer)
    }
}
