//! Retried calls: the pool's [`RetryConfig`] adjusted by a method's `#[retry(..)]`, and the
//! submissions that run each attempt as a fresh call (so limits are released and re-acquired
//! between attempts, and the backoff never occupies a worker).
//!
//! In a bounded pool (`max_queued_tasks`) a retried call takes one place when it is submitted
//! (its caller waits for it, as for any call) and keeps it until it resolves for good: between
//! attempts the place stays taken, and a later attempt goes where it can without waiting (to
//! a worker with room, else back to the one whose place it holds). So retries cannot grow the
//! queue past its bound, and no attempt ever waits for room, which could deadlock a pool whose
//! places are all held by calls waiting to retry.

use std::any::Any;
use std::sync::Arc;

use super::balance::Balancer;
use super::stats::Counters;
use super::{Admit, Pool, Room, Shared};
use crate::error::Error;
use crate::future::Promise;
use crate::retry::RetryConfig;
use crate::retry::run::{RetryCtx, run};
use crate::sync::{Mutex, lock};
use crate::worker::Worker;

/// The place a retried call of a bounded pool keeps in its worker's queue, from its first
/// attempt until it resolves for good (see the module docs).
pub(crate) struct Place {
    shared: crate::sync::Arc<Shared>,
    state: Mutex<PlaceState>,
}

#[derive(Default)]
struct PlaceState {
    /// The worker the place is on, once the first attempt was admitted.
    home: Option<usize>,
    /// The place was taken on the caller's thread (counted as a dispatch on `home`) and the
    /// first attempt, which uses it, is not sent yet.
    reserved: bool,
    /// Between attempts: the place is held on `home`.
    held: bool,
}

impl Place {
    fn new(shared: crate::sync::Arc<Shared>) -> Self {
        Place {
            shared,
            state: Mutex::new(PlaceState::default()),
        }
    }

    fn counters(&self) -> &[Counters] {
        &self.shared.counters
    }

    /// The first attempt goes to worker `idx` (its place taken there by the caller, if
    /// `reserved`, else by the attempt itself).
    pub(crate) fn home(&self, idx: usize, reserved: bool) {
        let mut st = lock(&self.state);
        st.home = Some(idx);
        st.reserved = reserved;
    }

    /// Where the next attempt goes, counted there; `None` for a first attempt that has yet
    /// to take a place. Never waits: an attempt goes to the balancer's pick if that worker
    /// has room, else to the worker whose place the call holds.
    pub(crate) fn next_attempt(
        &self,
        balancer: &Balancer,
        counters: &[Counters],
        limit: u64,
    ) -> Option<usize> {
        let mut st = lock(&self.state);
        let home = st.home?;
        if std::mem::take(&mut st.reserved) {
            return Some(home);
        }
        let pick = balancer.pick(counters);
        let idx = if pick != home && counters[pick].try_dispatch(limit) {
            pick
        } else {
            // Counted before the held place is given back: the call never leaves a gap.
            counters[home].on_dispatch();
            home
        };
        if std::mem::take(&mut st.held) {
            counters[home].hold(false);
            if idx != home {
                self.shared.room_freed(home);
            }
        }
        st.home = Some(idx);
        Some(idx)
    }

    /// An attempt resolved: the call keeps its place until its next attempt (or its end).
    fn hold(&self) {
        let mut st = lock(&self.state);
        if let Some(home) = st.home
            && !st.held
            && !st.reserved
        {
            st.held = true;
            self.counters()[home].hold(true);
        }
    }
}

impl Drop for Place {
    /// The call resolved for good (or never got to run): its place is free.
    fn drop(&mut self) {
        let st = std::mem::take(&mut *lock(&self.state));
        let Some(home) = st.home else { return };
        if st.held {
            self.counters()[home].hold(false);
        }
        if st.reserved {
            // Taken for a first attempt that was never sent.
            self.counters()[home].on_complete();
        }
        if st.held || st.reserved {
            self.shared.room_freed(home);
        }
    }
}

/// A `retry_until` check of a method's output.
pub type Validate<T> = fn(&T) -> bool;

/// A method's own retry settings, from `#[retry(..)]` (generated code builds these).
pub struct MethodRetry<T, E> {
    /// `#[retry(never)]`: the method runs once whatever the pool says.
    pub never: bool,
    /// `attempts = n`: at most `n` attempts in all.
    pub attempts: Option<u32>,
    /// `on = f`: retry only errors `f` accepts (replaces the pool's `retry_on`).
    pub on: Option<fn(&E) -> bool>,
    /// `until = f`: accept only outputs `f` accepts (added to the pool's validators).
    pub until: Option<(&'static str, Validate<T>)>,
}

impl<T, E> MethodRetry<T, E> {
    /// No per-method settings: the pool's config applies.
    pub const fn inherit() -> Self {
        MethodRetry {
            never: false,
            attempts: None,
            on: None,
            until: None,
        }
    }

    fn is_inherit(&self) -> bool {
        !self.never && self.attempts.is_none() && self.on.is_none() && self.until.is_none()
    }

    /// The retry settings of a `#[task(remote)]` function's `#[retry(..)]` on a cluster's
    /// nodes (`RemoteTask::retry`), where no pool config applies: from
    /// `RetryConfig::default()`'s waits. `None` without `#[retry]`.
    pub fn durable_config(&self) -> Option<RetryConfig>
    where
        T: Any,
        E: Any,
    {
        if self.is_inherit() {
            return None;
        }
        if self.never {
            return Some(RetryConfig::attempts(1).retry_on(|_| false));
        }
        let mut c = RetryConfig::default();
        if let Some(n) = self.attempts {
            c = c.with_attempts(n);
        }
        if let Some(on) = self.on {
            c = c.retry_on(move |f| f.downcast_ref::<E>().is_some_and(on));
        }
        if let Some((name, until)) = self.until {
            c = c.retry_until_named::<T>(name, until);
        }
        Some(c)
    }
}

impl<T, E> std::fmt::Debug for MethodRetry<T, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MethodRetry")
            .field("never", &self.never)
            .field("attempts", &self.attempts)
            .field("on", &self.on.is_some())
            .field("until", &self.until.map(|(name, _)| name))
            .finish()
    }
}

impl<W: Worker> Pool<W> {
    /// The config a call of a method with `method` settings uses; `None` when it runs once.
    pub(crate) fn retry_for<T: Any, E: Any>(
        &self,
        method: &MethodRetry<T, E>,
    ) -> Option<Arc<RetryConfig>> {
        if method.never {
            return None;
        }
        let pool = self.inner.config.retry.as_ref();
        let config = if method.is_inherit() {
            pool?.clone()
        } else {
            // Without a pool config, `#[retry(..)]` waits as `RetryConfig::default()` does.
            let mut c = pool.map_or_else(RetryConfig::default, |c| (**c).clone());
            if let Some(n) = method.attempts {
                c = c.with_attempts(n);
            }
            if let Some(on) = method.on {
                c = c
                    .clear_retry_on()
                    .retry_on(move |f| f.downcast_ref::<E>().is_some_and(on));
            }
            if let Some((name, until)) = method.until {
                c = c.retry_until_named::<T>(name, until);
            }
            Arc::new(c)
        };
        // Validators run even when no retry is left: a rejection is `Error::Validation`.
        (config.retries() || config.validates::<T>()).then_some(config)
    }

    /// Submits a call whose arguments cannot be sent again: it runs once, through the retry
    /// loop (for its one attempt) only when a validator checks its output.
    pub(crate) fn run_once<T, E>(
        &self,
        method: &'static str,
        retry: &MethodRetry<T, E>,
        submit: impl FnOnce(&Pool<W>, Room) -> Promise<T, E> + Send + 'static,
    ) -> Promise<T, E>
    where
        T: Send + 'static,
        E: Send + 'static,
    {
        let config = match self.retry_for(retry) {
            Some(config) if config.validates::<T>() => config,
            _ => return submit(self, Room::Wait),
        };
        let config = Arc::new((*config).clone().with_attempts(1));
        let submit = std::sync::Mutex::new(Some(submit));
        self.attempts(config, method, (), move |pool, _, room, ()| {
            let submit = submit
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take()
                .expect("a call whose arguments cannot be re-sent has one attempt");
            submit(pool, room)
        })
    }

    /// Runs `attempt` per `config` until the call succeeds or gives up. The loop holds only a
    /// weak reference, so dropping the last handle still stops the pool (and ends the loop).
    ///
    /// In a bounded pool the call's place is taken first, here: a plain thread waits for it
    /// now, as for a call without retries; async code never blocks, and the first attempt
    /// waits for its place inside the loop instead.
    pub(crate) fn attempts<A, T, E>(
        &self,
        config: Arc<RetryConfig>,
        method: &'static str,
        args: A,
        attempt: impl Fn(&Pool<W>, u32, Room, A) -> Promise<T, E> + Send + 'static,
    ) -> Promise<T, E>
    where
        A: Clone + Send + 'static,
        T: Send + 'static,
        E: Send + 'static,
    {
        let ctx = RetryCtx {
            config,
            method,
            stop: self.inner.shared.stopped.clone(),
            runtime: crate::runtime::for_helpers(self.inner.shared.home.get()),
        };
        let place = self.place_for_retries();
        if let Some(place) = &place
            && !crate::runtime::in_async_context()
        {
            match self.admit(Room::Wait) {
                Admit::Now(idx) => place.home(idx, true),
                Admit::Stopped => return Promise::ready(Err(Error::Stopped)),
                // Only async code is told to wait later; then the first attempt waits.
                Admit::Later(..) => {}
            }
        }
        let pool = self.downgrade();
        run(ctx, move |n| match pool.upgrade() {
            Some(pool) => {
                if n > 1 {
                    pool.inner.shared.metrics.retry(method);
                }
                let room = place
                    .as_ref()
                    .map_or(Room::Wait, |p| Room::Retry(p.clone()));
                let promise = attempt(&pool, n, room, args.clone());
                if let Some(place) = &place {
                    let place = place.clone();
                    promise.on_done(move |_| place.hold());
                }
                promise
            }
            None => Promise::ready(Err(Error::Stopped)),
        })
    }

    /// A place for a retried call, in a pool whose queue is bounded.
    fn place_for_retries(&self) -> Option<Arc<Place>> {
        let inner = &*self.inner;
        (inner.backend.queues() && inner.config.max_queued_tasks.is_some())
            .then(|| Arc::new(Place::new(inner.shared.clone())))
    }
}
