//! [`PromiseSet`]: many promises and a queue of the ones that became ready, in the order they
//! did, waited on by a blocked thread or by a task.
//!
//! Each promise is polled with its own waker, which records the promise's index in a shared
//! queue, signals a condvar (blocking waiter) and wakes the consumer's task (async waiter). A
//! promise wakes its waker only after its value is stored, so the next poll always finds it.
//! The waker runs on the completing thread: it only takes a short lock and signals.
//!
//! Polling replaces the waker a promise holds, so putting the leftovers of one wait into the
//! next (`wait(not_done, ..)` in a loop) costs nothing per round, unlike `on_done` callbacks,
//! which would pile up.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Instant;

use crate::error::Error;
use crate::future::{IntoPromise, Promise};
use crate::sync::{Arc, Condvar, Mutex, WakerArc, lock};

/// The indices of promises that may be ready, and who to tell when one is added.
struct Ready {
    queue: VecDeque<usize>,
    /// The task waiting on the set, if it is waited on asynchronously.
    consumer: Option<Waker>,
}

struct Shared {
    ready: Mutex<Ready>,
    /// Signalled for a thread blocked in `next_blocking`.
    added: Condvar,
}

/// The waker given to promise `index`.
struct IndexWaker {
    shared: Arc<Shared>,
    index: usize,
}

impl Wake for IndexWaker {
    fn wake(self: WakerArc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &WakerArc<Self>) {
        let consumer = {
            let mut ready = lock(&self.shared.ready);
            ready.queue.push_back(self.index);
            ready.consumer.take()
        };
        self.shared.added.notify_one();
        if let Some(w) = consumer {
            w.wake();
        }
    }
}

struct Entry<T, E> {
    /// `None` once its result was taken.
    promise: Option<Promise<T, E>>,
    waker: Waker,
}

/// A result and the index of the promise it came from.
pub(crate) type Indexed<T, E> = (usize, Result<T, Error<E>>);

/// What [`PromiseSet::next_blocking`] found.
pub(crate) enum Next<T, E> {
    /// Promise `index` resolved with this result.
    Ready(usize, Result<T, Error<E>>),
    /// Every promise has given its result.
    Exhausted,
    /// The deadline passed first.
    TimedOut,
}

/// Owns a list of promises and hands out their results in completion order.
pub(crate) struct PromiseSet<T, E> {
    entries: Vec<Entry<T, E>>,
    shared: Arc<Shared>,
    /// Promises whose result has not been taken.
    pending: usize,
}

impl<T, E> PromiseSet<T, E> {
    pub(crate) fn new<I>(promises: I) -> Self
    where
        I: IntoIterator,
        I::Item: IntoPromise<Output = T, Error = E>,
    {
        let shared = Arc::new(Shared {
            ready: Mutex::new(Ready {
                queue: VecDeque::new(),
                consumer: None,
            }),
            added: Condvar::new(),
        });
        let entries: Vec<_> = promises
            .into_iter()
            .enumerate()
            .map(|(index, p)| Entry {
                promise: Some(p.into_promise()),
                waker: Waker::from(WakerArc::new(IndexWaker {
                    shared: shared.clone(),
                    index,
                })),
            })
            .collect();
        // Every promise starts as "may be ready": the first poll of each registers its waker.
        lock(&shared.ready).queue.extend(0..entries.len());
        PromiseSet {
            pending: entries.len(),
            entries,
            shared,
        }
    }

    /// How many promises the set was made of.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// How many results have not been taken yet.
    pub(crate) fn pending(&self) -> usize {
        self.pending
    }

    /// Polls promise `index` with its own waker; its result if it has one.
    fn poll_index(&mut self, index: usize) -> Option<Result<T, Error<E>>> {
        let entry = &mut self.entries[index];
        let promise = entry.promise.as_mut()?;
        match Pin::new(promise).poll(&mut Context::from_waker(&entry.waker)) {
            Poll::Ready(result) => {
                entry.promise = None;
                self.pending -= 1;
                Some(result)
            }
            Poll::Pending => None,
        }
    }

    /// Blocks until the next promise resolves, every result was taken, or `deadline` passes.
    pub(crate) fn next_blocking(&mut self, deadline: Option<Instant>) -> Next<T, E> {
        loop {
            if self.pending == 0 {
                return Next::Exhausted;
            }
            let index = {
                let mut ready = lock(&self.shared.ready);
                loop {
                    if let Some(i) = ready.queue.pop_front() {
                        break i;
                    }
                    ready = match deadline {
                        None => self
                            .shared
                            .added
                            .wait(ready)
                            .unwrap_or_else(|e| e.into_inner()),
                        Some(d) => {
                            let now = Instant::now();
                            if now >= d {
                                return Next::TimedOut;
                            }
                            self.shared
                                .added
                                .wait_timeout(ready, d - now)
                                .unwrap_or_else(|e| e.into_inner())
                                .0
                        }
                    };
                }
            };
            if let Some(result) = self.poll_index(index) {
                return Next::Ready(index, result);
            }
        }
    }

    /// The next result in completion order, `Ready(None)` once every result was taken, or
    /// `Pending` with the task's waker registered.
    pub(crate) fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Indexed<T, E>>> {
        loop {
            if self.pending == 0 {
                return Poll::Ready(None);
            }
            let index = {
                let mut ready = lock(&self.shared.ready);
                match ready.queue.pop_front() {
                    Some(i) => i,
                    None => {
                        match &ready.consumer {
                            Some(w) if w.will_wake(cx.waker()) => {}
                            _ => ready.consumer = Some(cx.waker().clone()),
                        }
                        return Poll::Pending;
                    }
                }
            };
            if let Some(result) = self.poll_index(index) {
                return Poll::Ready(Some((index, result)));
            }
        }
    }

    /// Cancels every promise whose result was not taken.
    pub(crate) fn cancel_pending(&self) {
        for p in self.entries.iter().filter_map(|e| e.promise.as_ref()) {
            p.cancel();
        }
    }

    /// The promises whose result was not taken, with their indices, in input order.
    pub(crate) fn into_pending(self) -> impl Iterator<Item = (usize, Promise<T, E>)> {
        self.entries
            .into_iter()
            .enumerate()
            .filter_map(|(i, e)| e.promise.map(|p| (i, p)))
    }
}
