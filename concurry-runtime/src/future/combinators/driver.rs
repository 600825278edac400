//! [`Driver`]: runs a [`Collect`] policy over a [`PromiseSet`], blocking or as a future, with
//! an optional timeout. Every combinator is a policy; the waiting lives here once.

use std::future::Future as _;
use std::ops::ControlFlow;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use super::set::{Next, PromiseSet};
use crate::error::Error;
use crate::progress::{Progress, ProgressBar};

/// What a combinator does with each result and how it ends.
pub(crate) trait Collect<T, E> {
    type Output;

    /// Takes the result of promise `index`; `Break` ends the wait.
    fn feed(&mut self, index: usize, result: Result<T, Error<E>>) -> ControlFlow<()>;

    /// Builds the output once the wait ends: after a `Break`, when every promise resolved, or
    /// (`timed_out`) when the deadline passed. `set` still holds the unresolved promises.
    fn finish(self, set: PromiseSet<T, E>, timed_out: bool) -> Self::Output;
}

/// How a wait is run.
#[derive(Debug, Default)]
pub(crate) struct WaitOptions {
    pub(crate) timeout: Option<Duration>,
    /// A bar counting each result as it is fed; created when the wait starts.
    pub(crate) progress: Option<Progress>,
}

/// The bar for a wait over `len` promises, unless it would neither draw nor log.
pub(crate) fn start_bar(progress: Option<Progress>, len: usize) -> Option<ProgressBar> {
    let bar = ProgressBar::start(progress?, u64::try_from(len).ok());
    (!bar.is_hidden()).then_some(bar)
}

/// A policy over a set, run to completion by [`Driver::run`] or by polling.
pub(crate) struct Driver<T, E, C> {
    state: Option<(PromiseSet<T, E>, C)>,
    pub(crate) options: WaitOptions,
    /// Started on the first poll that finds nothing ready, when a timeout is set.
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Created on the first poll, from `options.progress`.
    bar: Option<ProgressBar>,
}

impl<T, E, C> Driver<T, E, C> {
    /// The set, unless the wait has completed.
    pub(crate) fn set(&self) -> Option<&PromiseSet<T, E>> {
        self.state.as_ref().map(|(s, _)| s)
    }
}

impl<T, E, C: Collect<T, E>> Driver<T, E, C> {
    pub(crate) fn new(set: PromiseSet<T, E>, collect: C) -> Self {
        Driver {
            state: Some((set, collect)),
            options: WaitOptions::default(),
            timer: None,
            bar: None,
        }
    }

    /// Swaps the policy, keeping the set and the options.
    pub(crate) fn with_collect<D: Collect<T, E>>(
        mut self,
        f: impl FnOnce(&PromiseSet<T, E>) -> D,
    ) -> Driver<T, E, D> {
        let (set, _) = self.take_state();
        let collect = f(&set);
        Driver {
            state: Some((set, collect)),
            options: std::mem::take(&mut self.options),
            timer: None,
            bar: None,
        }
    }

    fn take_state(&mut self) -> (PromiseSet<T, E>, C) {
        self.state
            .take()
            .expect("a concurry wait was polled again after it completed")
    }

    /// Blocks the calling thread until the policy is done; the timeout starts now.
    pub(crate) fn run(self) -> C::Output {
        // Blocks: inside a multi-thread runtime, hand its other tasks over first.
        crate::runtime::blocking(|| self.run_here())
    }

    fn run_here(mut self) -> C::Output {
        let deadline = self
            .options
            .timeout
            .and_then(|d| Instant::now().checked_add(d));
        let (mut set, mut collect) = self.take_state();
        let bar = start_bar(self.options.progress.take(), set.len());
        let timed_out = loop {
            match set.next_blocking(deadline) {
                Next::Ready(i, r) => {
                    if let Some(bar) = &bar {
                        bar.inc(r.is_ok());
                    }
                    if collect.feed(i, r).is_break() {
                        break false;
                    }
                }
                Next::Exhausted => break false,
                Next::TimedOut => break true,
            }
        };
        if let Some(bar) = bar {
            bar.finish();
        }
        collect.finish(set, timed_out)
    }

    /// Polls towards the output; the timeout starts on the first poll that has to wait.
    pub(crate) fn poll_run(&mut self, cx: &mut Context<'_>) -> Poll<C::Output> {
        let (set, collect) = self
            .state
            .as_mut()
            .expect("a concurry wait was polled again after it completed");
        if let Some(progress) = self.options.progress.take() {
            self.bar = start_bar(Some(progress), set.len());
        }
        let timed_out = loop {
            match set.poll_next(cx) {
                Poll::Ready(Some((i, r))) => {
                    if let Some(bar) = &self.bar {
                        bar.inc(r.is_ok());
                    }
                    if collect.feed(i, r).is_break() {
                        break false;
                    }
                }
                Poll::Ready(None) => break false,
                Poll::Pending => {
                    if poll_timer(self.options.timeout, &mut self.timer, cx) {
                        break true;
                    }
                    return Poll::Pending;
                }
            }
        };
        if let Some(bar) = self.bar.take() {
            bar.finish();
        }
        let (set, collect) = self.take_state();
        Poll::Ready(collect.finish(set, timed_out))
    }
}

/// Polls the timer for `timeout`, creating it on first use; true once it has fired.
pub(crate) fn poll_timer(
    timeout: Option<Duration>,
    timer: &mut Option<Pin<Box<tokio::time::Sleep>>>,
    cx: &mut Context<'_>,
) -> bool {
    let Some(timeout) = timeout else {
        return false;
    };
    timer
        .get_or_insert_with(|| Box::pin(sleep(timeout)))
        .as_mut()
        .poll(cx)
        .is_ready()
}

/// A tokio sleep on the current runtime (so paused test time applies), or on the library
/// runtime when awaited on another executor.
fn sleep(timeout: Duration) -> tokio::time::Sleep {
    match tokio::runtime::Handle::try_current() {
        Ok(_) => tokio::time::sleep(timeout),
        Err(_) => {
            let _runtime = crate::runtime::runtime().enter();
            tokio::time::sleep(timeout)
        }
    }
}

// The driver is never pinned structurally: its timer is boxed, everything else moves freely.
impl<T, E, C> Unpin for Driver<T, E, C> {}
