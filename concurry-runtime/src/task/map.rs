//! [`TaskMap`]: a lazy map over a pool with a bounded window of calls in flight.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use futures_util::Stream;

use crate::error::Error;
use crate::future::Promise;
use crate::progress::{Progress, ProgressBar};
use crate::sync::{Arc, Condvar, Mutex, lock};

/// The submissions a map has not pulled yet: each `next()` of this iterator submits one item.
type Source<'a, T, E> = Box<dyn Iterator<Item = Promise<T, E>> + Send + 'a>;

/// The results of `map` / `map_unordered` on a pool: an [`Iterator`] (blocking) and a
/// [`Stream`] (async) of one `Result` per input item.
///
/// It is lazy and bounded: nothing is submitted before the first `next()`, and it never has
/// more than [`window`](TaskMap::window) calls in flight, pulling the next item from the input
/// only when one of them is consumed. So mapping over a million items never holds a million
/// promises. Each item is a separate call, so the pool's load balancer spreads the items over
/// every worker.
///
/// Every item yields exactly one result: a failure (the function's own error, a panic, the
/// pool stopped mid-map) is that item's `Err`. Dropping the map cancels the calls it still
/// has in flight that have not started.
///
/// ```
/// use concurry::prelude::*;
///
/// let pool = concurry::TaskWorker::options().mode(Mode::Thread).max_workers(4).init()?;
/// let results = pool.map(|x: u64| x.pow(2), 0..1_000_000).window(16);
/// let sum: u64 = results.take(10).map(Result::unwrap).sum();
/// assert_eq!(sum, 285); // only the first 10 (plus a window ahead) were computed
/// # Ok::<(), concurry::Error>(())
/// ```
#[must_use = "a map does nothing until it is iterated"]
pub struct TaskMap<'a, T, E = Infallible> {
    source: Option<Source<'a, T, E>>,
    window: usize,
    unordered: bool,
    /// In order: the calls in flight, oldest first.
    queue: VecDeque<Promise<T, E>>,
    /// Out of order: the calls in flight by slot, and which slots completed.
    slots: Vec<Option<Promise<T, E>>>,
    free: Vec<usize>,
    ready: Arc<Ready>,
    in_flight: usize,
    progress: Option<Progress>,
    bar: Option<ProgressBar>,
}

/// The slots of an unordered map whose call completed, in completion order.
#[derive(Debug, Default)]
struct Ready {
    state: Mutex<ReadyState>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct ReadyState {
    done: VecDeque<usize>,
    waker: Option<Waker>,
}

impl Ready {
    fn push(&self, slot: usize) {
        let waker = {
            let mut st = lock(&self.state);
            st.done.push_back(slot);
            st.waker.take()
        };
        self.changed.notify_one();
        if let Some(w) = waker {
            w.wake();
        }
    }

    fn pop_blocking(&self) -> usize {
        let mut st = lock(&self.state);
        loop {
            if let Some(slot) = st.done.pop_front() {
                return slot;
            }
            st = self
                .changed
                .wait(st)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }

    fn poll_pop(&self, waker: &Waker) -> Option<usize> {
        let mut st = lock(&self.state);
        let slot = st.done.pop_front();
        if slot.is_none() {
            st.waker = Some(waker.clone());
        }
        slot
    }
}

impl<'a, T, E> TaskMap<'a, T, E>
where
    T: Send + 'static,
    E: Send + 'static,
{
    /// A map over `submissions`, an iterator that submits one call per `next()`, keeping at
    /// most `window` of them in flight.
    ///
    /// ```
    /// use concurry::{Promise, TaskMap};
    /// let calls = (1..=3).map(|x| Promise::<u32>::ready(Ok(x)));
    /// let out: Vec<u32> = TaskMap::new(calls, 2).map(Result::unwrap).collect();
    /// assert_eq!(out, [1, 2, 3]);
    /// ```
    pub fn new(
        submissions: impl Iterator<Item = Promise<T, E>> + Send + 'a,
        window: usize,
    ) -> Self {
        TaskMap {
            source: Some(Box::new(submissions)),
            window: window.max(1),
            unordered: false,
            queue: VecDeque::new(),
            slots: Vec::new(),
            free: Vec::new(),
            ready: Arc::default(),
            in_flight: 0,
            progress: None,
            bar: None,
        }
    }

    /// The most calls in flight at once (at least 1). Set it before iterating; it takes effect
    /// on the next refill.
    ///
    /// ```
    /// let pool = concurry::TaskWorker::options().init()?;
    /// let out: Vec<_> = pool.map(|x: u8| x, [1, 2]).window(1).collect();
    /// assert_eq!(out.len(), 2);
    /// # Ok::<(), concurry::Error>(())
    /// ```
    pub fn window(mut self, window: usize) -> Self {
        self.window = window.max(1);
        self
    }

    /// Yields results as the calls complete instead of in input order.
    ///
    /// ```
    /// let pool = concurry::TaskWorker::options().init()?;
    /// let n = pool.map(|x: u8| x, 0..10).unordered().count();
    /// assert_eq!(n, 10);
    /// # Ok::<(), concurry::Error>(())
    /// ```
    pub fn unordered(mut self) -> Self {
        self.unordered = true;
        self
    }

    /// Shows a progress bar (one tick per result, failures counted apart) while iterating,
    /// from a message or a [`Progress`]. Its total is the input's length when the input knows
    /// it exactly (a range, a `Vec`), else a spinner; [`Progress::total`] overrides it.
    ///
    /// ```
    /// use concurry::Progress;
    /// let pool = concurry::TaskWorker::options().init()?;
    /// let quiet = Progress::new("squares").log_every(50).log_to(std::io::sink());
    /// let n = pool.map(|x: u32| x * x, 0..100).progress(quiet).count();
    /// assert_eq!(n, 100);
    /// # Ok::<(), concurry::Error>(())
    /// ```
    pub fn progress(mut self, progress: impl Into<Progress>) -> Self {
        self.progress = Some(progress.into());
        self
    }

    /// Calls submitted and not yet yielded.
    ///
    /// ```
    /// let pool = concurry::TaskWorker::options().init()?;
    /// let mut m = pool.map(|x: u8| x, 0..100).window(4);
    /// assert_eq!(m.in_flight(), 0); // lazy
    /// m.next();
    /// assert!(m.in_flight() <= 4);
    /// # Ok::<(), concurry::Error>(())
    /// ```
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Starts the bar on first use.
    fn start_bar(&mut self) {
        if self.bar.is_some() {
            return;
        }
        let Some(progress) = self.progress.take() else {
            return;
        };
        let total = self.source.as_ref().and_then(|s| match s.size_hint() {
            (lo, Some(hi)) if lo == hi => Some(lo as u64),
            _ => None,
        });
        self.bar = Some(match total {
            Some(t) => ProgressBar::new(t, progress),
            None => ProgressBar::without_total(progress),
        });
    }

    /// Submits items until the window is full or the input is exhausted.
    fn refill(&mut self) {
        self.start_bar();
        while self.in_flight < self.window {
            let Some(source) = self.source.as_mut() else {
                return;
            };
            let Some(promise) = source.next() else {
                self.source = None;
                return;
            };
            self.in_flight += 1;
            if self.unordered {
                let slot = match self.free.pop() {
                    Some(s) => s,
                    None => {
                        self.slots.push(None);
                        self.slots.len() - 1
                    }
                };
                let ready = self.ready.clone();
                promise.on_done(move |_| ready.push(slot));
                self.slots[slot] = Some(promise);
            } else {
                self.queue.push_back(promise);
            }
        }
    }

    /// Takes the result of a completed unordered slot.
    fn take_slot(&mut self, slot: usize) -> Result<T, Error<E>> {
        self.free.push(slot);
        self.in_flight -= 1;
        match self.slots[slot].take() {
            // Completed (its callback ran), so this does not block.
            Some(p) => p.result(),
            None => Err(Error::WorkerLost {
                message: "a map slot completed twice".into(),
            }),
        }
    }

    fn tick(&mut self, item: Option<Result<T, Error<E>>>) -> Option<Result<T, Error<E>>> {
        if let Some(bar) = &self.bar {
            match &item {
                Some(r) => bar.inc(r.is_ok()),
                None => bar.finish(),
            }
        }
        item
    }
}

impl<T, E> Iterator for TaskMap<'_, T, E>
where
    T: Send + 'static,
    E: Send + 'static,
{
    type Item = Result<T, Error<E>>;

    fn next(&mut self) -> Option<Self::Item> {
        self.refill();
        let item = if self.in_flight == 0 {
            None
        } else if self.unordered {
            let slot = self.ready.pop_blocking();
            Some(self.take_slot(slot))
        } else {
            self.queue.pop_front().map(|p| {
                self.in_flight -= 1;
                p.result()
            })
        };
        self.tick(item)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let (lo, hi) = self.source.as_ref().map_or((0, Some(0)), |s| s.size_hint());
        (
            lo.saturating_add(self.in_flight),
            hi.and_then(|h| h.checked_add(self.in_flight)),
        )
    }
}

impl<T, E> Stream for TaskMap<'_, T, E>
where
    T: Send + 'static,
    E: Send + 'static,
{
    type Item = Result<T, Error<E>>;

    /// Polled inside a tokio runtime this never blocks for back-pressure
    /// (`max_queued_tasks`): a call waits for its place inside its promise; on another
    /// executor submitting may block briefly. In sync mode each call runs when it is
    /// submitted.
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        this.refill();
        if this.in_flight == 0 {
            return Poll::Ready(this.tick(None));
        }
        let item = if this.unordered {
            match this.ready.poll_pop(cx.waker()) {
                Some(slot) => this.take_slot(slot),
                None => return Poll::Pending,
            }
        } else {
            let Some(front) = this.queue.front_mut() else {
                return Poll::Ready(this.tick(None));
            };
            match Pin::new(front).poll(cx) {
                Poll::Ready(r) => {
                    this.queue.pop_front();
                    this.in_flight -= 1;
                    r
                }
                Poll::Pending => return Poll::Pending,
            }
        };
        Poll::Ready(this.tick(Some(item)))
    }
}

impl<T, E> Drop for TaskMap<'_, T, E> {
    fn drop(&mut self) {
        self.queue.iter().for_each(|p| {
            p.cancel();
        });
        self.slots.iter().flatten().for_each(|p| {
            p.cancel();
        });
        if let Some(bar) = &self.bar {
            bar.finish();
        }
    }
}

impl<T, E> fmt::Debug for TaskMap<'_, T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskMap")
            .field("window", &self.window)
            .field("unordered", &self.unordered)
            .field("in_flight", &self.in_flight)
            .field("exhausted", &self.source.is_none())
            .finish()
    }
}
