//! Retried calls: the pool's [`RetryConfig`] adjusted by a method's `#[retry(..)]`, and the
//! submissions that run each attempt as a fresh call (so limits are released and re-acquired
//! between attempts, and the backoff never occupies a worker).

use std::any::Any;
use std::sync::Arc;

use super::Pool;
use super::submit::MethodFuture;
use crate::error::Error;
use crate::future::Promise;
use crate::retry::RetryConfig;
use crate::retry::run::{RetryCtx, run};
use crate::worker::Worker;

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
    pub(crate) fn submit_once<T, E>(
        &self,
        method: &'static str,
        retry: &MethodRetry<T, E>,
        submit: impl FnOnce(&Pool<W>) -> Promise<T, E> + Send + 'static,
    ) -> Promise<T, E>
    where
        T: Send + 'static,
        E: Send + 'static,
    {
        let config = match self.retry_for(retry) {
            Some(config) if config.validates::<T>() => config,
            _ => return submit(self),
        };
        let config = Arc::new((*config).clone().with_attempts(1));
        let submit = std::sync::Mutex::new(Some(submit));
        self.attempts(config, method, (), move |pool, _, ()| {
            let submit = submit
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take()
                .expect("a call whose arguments cannot be re-sent has one attempt");
            submit(pool)
        })
    }

    /// Runs `attempt` per `config` until the call succeeds or gives up. The loop holds only a
    /// weak reference, so dropping the last handle still stops the pool (and ends the loop).
    pub(crate) fn attempts<A, T, E>(
        &self,
        config: Arc<RetryConfig>,
        method: &'static str,
        args: A,
        attempt: impl Fn(&Pool<W>, u32, A) -> Promise<T, E> + Send + 'static,
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
        };
        let pool = self.downgrade();
        run(ctx, move |n| match pool.upgrade() {
            Some(pool) => attempt(&pool, n, args.clone()),
            None => Promise::ready(Err(Error::Stopped)),
        })
    }

    /// Submits a sync method whose arguments can be sent again: retried per the pool's
    /// config and the method's `#[retry(..)]`.
    pub fn submit_blocking_retrying<A, T, E, F>(
        &self,
        method: &'static str,
        retry: &MethodRetry<T, E>,
        args: A,
        f: F,
    ) -> Promise<T, E>
    where
        A: Clone + Send + 'static,
        T: Send + 'static,
        E: Send + 'static,
        F: Fn(&mut W, A) -> Result<T, Error<E>> + Send + Sync + 'static,
    {
        let Some(config) = self.retry_for(retry) else {
            return self.submit_blocking(method, move |w| f(w, args));
        };
        let f = Arc::new(f);
        self.attempts(config, method, args, move |pool, n, args| {
            let f = f.clone();
            pool.blocking_attempt(method, n, move |w| f(w, args))
        })
    }

    /// Submits an `async fn` method taking `&mut self`, retried as
    /// [`submit_blocking_retrying`](Pool::submit_blocking_retrying) is.
    pub fn submit_exclusive_retrying<A, T, E, F>(
        &self,
        method: &'static str,
        retry: &MethodRetry<T, E>,
        args: A,
        f: F,
    ) -> Promise<T, E>
    where
        A: Clone + Send + 'static,
        T: Send + 'static,
        E: Send + 'static,
        F: for<'a> Fn(&'a mut W, A) -> MethodFuture<'a, T, E> + Send + Sync + 'static,
    {
        let Some(config) = self.retry_for(retry) else {
            return self.submit_exclusive(method, move |w| f(w, args));
        };
        let f = Arc::new(f);
        self.attempts(config, method, args, move |pool, n, args| {
            let f = f.clone();
            pool.exclusive_attempt(method, n, move |w| f(w, args))
        })
    }

    /// Submits an `async fn` method taking `&self`, retried as
    /// [`submit_blocking_retrying`](Pool::submit_blocking_retrying) is.
    pub fn submit_shared_retrying<A, T, E, F>(
        &self,
        method: &'static str,
        retry: &MethodRetry<T, E>,
        args: A,
        f: F,
    ) -> Promise<T, E>
    where
        A: Clone + Send + 'static,
        T: Send + 'static,
        E: Send + 'static,
        F: for<'a> Fn(&'a W, A) -> MethodFuture<'a, T, E> + Send + Sync + 'static,
    {
        let Some(config) = self.retry_for(retry) else {
            return self.submit_shared(method, move |w| f(w, args));
        };
        let f = Arc::new(f);
        self.attempts(config, method, args, move |pool, n, args| {
            let f = f.clone();
            pool.shared_attempt(method, n, move |w| f(w, args))
        })
    }
}
