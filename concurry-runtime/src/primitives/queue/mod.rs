//! Bounded queues with back-pressure, async and blocking: [`Queue`] (FIFO), [`LifoQueue`] and
//! [`PriorityQueue`] (lowest priority value first, FIFO within a level), each with Python's
//! `task_done` / `join` and a `close` for consumers to see the end.
//!
//! One core serves all three; only the buffer differs. The core is two fair semaphores kept
//! inside one mutex with the buffer: free slots (for putters) and items (for getters). A freed
//! slot or a new item is *granted* to the oldest waiter, which then completes its put or get;
//! a waiter cancelled after its grant passes it on. So nothing is put twice, nothing is lost,
//! and a newcomer never overtakes a waiter.

mod buffer;
mod core;

use std::fmt;
use std::time::Duration;

use self::buffer::{Buffer, Fifo, Lifo, Prio};
use self::core::Core;
use super::waiters::Deadline;
use crate::error::ConfigError;
use crate::sync::{Arc, lock};

/// Why `try_put` did not put: the item comes back.
///
/// ```
/// use concurry::{Queue, TryPutError};
/// let q = Queue::bounded(1).unwrap();
/// q.try_put(1).unwrap();
/// assert_eq!(q.try_put(2), Err(TryPutError::Full(2)));
/// q.close();
/// assert_eq!(q.try_put(3), Err(TryPutError::Closed(3)));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TryPutError<T> {
    /// The queue is at its bound.
    #[error("the queue is full")]
    Full(T),
    /// The queue was closed.
    #[error("the queue is closed")]
    Closed(T),
}

/// Why `try_get` got nothing.
///
/// ```
/// use concurry::{Queue, TryGetError};
/// let q: Queue<u8> = Queue::unbounded();
/// assert_eq!(q.try_get(), Err(TryGetError::Empty));
/// q.close();
/// assert_eq!(q.try_get(), Err(TryGetError::Closed));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TryGetError {
    /// Nothing to get now.
    #[error("the queue is empty")]
    Empty,
    /// Closed and drained: nothing will come.
    #[error("the queue is closed and empty")]
    Closed,
}

/// A put into a closed queue: the item comes back.
///
/// ```
/// let q = concurry::Queue::unbounded();
/// q.close();
/// assert_eq!(q.put_blocking(7).unwrap_err().0, 7);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the queue is closed")]
pub struct Closed<T>(pub T);

/// `task_done` called more times than items were put.
///
/// ```
/// let q: concurry::Queue<u8> = concurry::Queue::unbounded();
/// assert_eq!(
///     q.task_done().unwrap_err().to_string(),
///     "task_done() called more times than items were put (no unfinished item left)"
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("task_done() called more times than items were put (no unfinished item left)")]
pub struct TaskDoneError;

fn check_bound(kind: &'static str, n: usize) -> Result<Option<usize>, ConfigError> {
    if n == 0 {
        return Err(ConfigError::new(
            "maxsize",
            "0",
            format!(
                "a bounded {kind} holds at least 1 item; for no bound use `{kind}::unbounded()`"
            ),
        ));
    }
    Ok(Some(n))
}

macro_rules! common_methods {
    ($name:ident, $out:ty) => {
        /// Takes the next item, waiting for one; `None` once the queue is closed and drained.
        ///
        /// ```
        /// # #[tokio::main] async fn main() {
        #[doc = concat!("let q = concurry::", stringify!($name), "::unbounded();")]
        #[doc = concat!("q.", put_one!($name, 1), ".await.unwrap();")]
        /// assert_eq!(q.get().await, Some(1));
        /// q.close();
        /// assert_eq!(q.get().await, None);
        /// # }
        /// ```
        pub async fn get(&self) -> Option<$out> {
            self.core.get().await
        }

        /// Takes the next item if there is one now.
        ///
        /// # Errors
        /// [`TryGetError::Empty`], or [`TryGetError::Closed`] once closed and drained.
        ///
        /// ```
        #[doc = concat!("let q = concurry::", stringify!($name), "::unbounded();")]
        #[doc = concat!("q.", try_put_one!($name, 1), ".unwrap();")]
        /// assert_eq!(q.try_get(), Ok(1));
        /// assert_eq!(q.try_get(), Err(concurry::TryGetError::Empty));
        /// ```
        pub fn try_get(&self) -> Result<$out, TryGetError> {
            self.core.try_get()
        }

        /// [`get`](Self::get) for plain threads: blocks until an item comes (handing a tokio
        /// worker thread's tasks over first); `None` once closed and drained.
        ///
        /// ```
        #[doc = concat!("let q = concurry::", stringify!($name), "::bounded(1).unwrap();")]
        /// let q2 = q.clone();
        #[doc = concat!("let t = std::thread::spawn(move || q2.", put_blocking_one!($name, 5), ".unwrap());")]
        /// assert_eq!(q.get_blocking(), Some(5));
        /// # t.join().unwrap();
        /// ```
        pub fn get_blocking(&self) -> Option<$out> {
            self.core.get_blocking(None).ok()
        }

        /// [`get_blocking`](Self::get_blocking) for at most `d`.
        ///
        /// # Errors
        /// [`TryGetError::Empty`] on timeout, [`TryGetError::Closed`] once closed and drained.
        ///
        /// ```
        /// use std::time::Duration;
        #[doc = concat!("let q: concurry::", stringify!($name), "<u8> = concurry::", stringify!($name), "::unbounded();")]
        /// assert_eq!(q.get_blocking_timeout(Duration::from_millis(1)), Err(concurry::TryGetError::Empty));
        /// ```
        pub fn get_blocking_timeout(&self, d: Duration) -> Result<$out, TryGetError> {
            self.core.get_blocking(Some(&Deadline::after(d)))
        }

        /// Marks one item taken with a get as processed (Python's `task_done`); when every
        /// item put so far is done, [`join`](Self::join) returns.
        ///
        /// # Errors
        /// [`TaskDoneError`] if called more times than items were put.
        ///
        /// ```
        #[doc = concat!("let q = concurry::", stringify!($name), "::unbounded();")]
        #[doc = concat!("q.", try_put_one!($name, 1), ".unwrap();")]
        /// q.try_get().unwrap();
        /// q.task_done().unwrap();
        /// assert!(q.task_done().is_err());
        /// ```
        pub fn task_done(&self) -> Result<(), TaskDoneError> {
            self.core.task_done()
        }

        /// Waits until every item put so far was marked done with
        /// [`task_done`](Self::task_done).
        ///
        /// ```
        /// # #[tokio::main] async fn main() {
        #[doc = concat!("let q = concurry::", stringify!($name), "::unbounded();")]
        #[doc = concat!("q.", try_put_one!($name, 1), ".unwrap();")]
        /// let q2 = q.clone();
        /// tokio::spawn(async move {
        ///     q2.get().await.unwrap();
        ///     q2.task_done().unwrap();
        /// });
        /// q.join().await;
        /// # }
        /// ```
        pub async fn join(&self) {
            self.core.join().await
        }

        /// [`join`](Self::join) for plain threads.
        ///
        /// ```
        #[doc = concat!("let q = concurry::", stringify!($name), "::unbounded();")]
        #[doc = concat!("q.", try_put_one!($name, 1), ".unwrap();")]
        /// let q2 = q.clone();
        /// let t = std::thread::spawn(move || {
        ///     q2.get_blocking().unwrap();
        ///     q2.task_done().unwrap();
        /// });
        /// q.join_blocking();
        /// # t.join().unwrap();
        /// ```
        pub fn join_blocking(&self) {
            self.core.join_blocking()
        }

        /// Closes the queue: puts fail from now on (waiting ones too, giving their item
        /// back), gets drain what is left and then return `None`. Idempotent.
        ///
        /// ```
        #[doc = concat!("let q = concurry::", stringify!($name), "::unbounded();")]
        #[doc = concat!("q.", try_put_one!($name, 1), ".unwrap();")]
        /// q.close();
        /// assert_eq!(q.get_blocking(), Some(1));
        /// assert_eq!(q.get_blocking(), None);
        /// ```
        pub fn close(&self) {
            self.core.close()
        }

        /// True once [`close`](Self::close) was called.
        ///
        /// ```
        #[doc = concat!("let q: concurry::", stringify!($name), "<u8> = concurry::", stringify!($name), "::unbounded();")]
        /// q.close();
        /// assert!(q.is_closed());
        /// ```
        pub fn is_closed(&self) -> bool {
            lock(&self.core.state).closed
        }

        /// Items in the queue now (Python's `qsize`).
        ///
        /// ```
        #[doc = concat!("let q = concurry::", stringify!($name), "::unbounded();")]
        #[doc = concat!("q.", try_put_one!($name, 1), ".unwrap();")]
        /// assert_eq!(q.len(), 1);
        /// assert!(!q.is_empty());
        /// ```
        pub fn len(&self) -> usize {
            lock(&self.core.state).buf.len()
        }

        /// True when no item is in the queue.
        ///
        /// ```
        #[doc = concat!("let q: concurry::", stringify!($name), "<u8> = concurry::", stringify!($name), "::unbounded();")]
        /// assert!(q.is_empty());
        /// ```
        pub fn is_empty(&self) -> bool {
            self.len() == 0
        }

        /// True when a put would wait (the bound is reached, counting slots promised to
        /// waiting putters).
        ///
        /// ```
        #[doc = concat!("let q = concurry::", stringify!($name), "::bounded(1).unwrap();")]
        #[doc = concat!("q.", try_put_one!($name, 1), ".unwrap();")]
        /// assert!(q.is_full());
        /// ```
        pub fn is_full(&self) -> bool {
            lock(&self.core.state).free_slots() == 0
        }

        /// The bound (`None`: unbounded).
        ///
        /// ```
        #[doc = concat!("assert_eq!(concurry::", stringify!($name), "::<u8>::bounded(3).unwrap().capacity(), Some(3));")]
        /// ```
        pub fn capacity(&self) -> Option<usize> {
            lock(&self.core.state).cap
        }
    };
}

macro_rules! put_one {
    (PriorityQueue, $x:literal) => {
        concat!("put(", $x, ", 0)")
    };
    ($name:ident, $x:literal) => {
        concat!("put(", $x, ")")
    };
}
macro_rules! try_put_one {
    (PriorityQueue, $x:literal) => {
        concat!("try_put(", $x, ", 0)")
    };
    ($name:ident, $x:literal) => {
        concat!("try_put(", $x, ")")
    };
}
macro_rules! put_blocking_one {
    (PriorityQueue, $x:literal) => {
        concat!("put_blocking(", $x, ", 0)")
    };
    ($name:ident, $x:literal) => {
        concat!("put_blocking(", $x, ")")
    };
}

macro_rules! plain_queue {
    ($(#[$doc:meta])* $name:ident, $buf:ident) => {
        $(#[$doc])*
        pub struct $name<T> {
            core: Arc<Core<$buf<T>>>,
        }

        impl<T> Clone for $name<T> {
            fn clone(&self) -> Self {
                $name { core: self.core.clone() }
            }
        }

        impl<T> fmt::Debug for $name<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let s = lock(&self.core.state);
                f.debug_struct(stringify!($name))
                    .field("len", &s.buf.len())
                    .field("capacity", &s.cap)
                    .field("closed", &s.closed)
                    .finish()
            }
        }

        impl<T> $name<T> {
            /// A queue holding at most `maxsize` items; a put past that waits for room.
            ///
            /// # Errors
            /// [`ConfigError`] if `maxsize` is 0.
            ///
            /// ```
            #[doc = concat!("let q = concurry::", stringify!($name), "::<u8>::bounded(8).unwrap();")]
            /// assert_eq!(q.capacity(), Some(8));
            #[doc = concat!("assert!(concurry::", stringify!($name), "::<u8>::bounded(0).is_err());")]
            /// ```
            pub fn bounded(maxsize: usize) -> Result<Self, ConfigError> {
                let cap = check_bound(stringify!($name), maxsize)?;
                Ok($name { core: Arc::new(Core::new(cap)) })
            }

            /// A queue without a bound: puts never wait.
            ///
            /// ```
            #[doc = concat!("let q = concurry::", stringify!($name), "::<u8>::unbounded();")]
            /// assert_eq!(q.capacity(), None);
            /// ```
            pub fn unbounded() -> Self {
                $name { core: Arc::new(Core::new(None)) }
            }

            /// Puts `item`, waiting for room while the queue is full (in arrival order).
            /// Cancel-safe: dropped before it finished, the put did not happen.
            ///
            /// # Errors
            /// [`Closed`] (with the item) if the queue is or gets closed.
            ///
            /// ```
            /// # #[tokio::main] async fn main() {
            #[doc = concat!("let q = concurry::", stringify!($name), "::bounded(1).unwrap();")]
            /// q.put(1).await.unwrap();
            /// let q2 = q.clone();
            /// let second = tokio::spawn(async move { q2.put(2).await }); // waits for room
            /// assert_eq!(q.get().await, Some(1));
            /// second.await.unwrap().unwrap();
            /// assert_eq!(q.get().await, Some(2));
            /// # }
            /// ```
            pub async fn put(&self, item: T) -> Result<(), Closed<T>> {
                self.core.put(item).await
            }

            /// Puts `item` if there is room now.
            ///
            /// # Errors
            /// [`TryPutError::Full`] or [`TryPutError::Closed`], with the item.
            ///
            /// ```
            #[doc = concat!("let q = concurry::", stringify!($name), "::bounded(1).unwrap();")]
            /// assert!(q.try_put(1).is_ok());
            /// assert!(q.try_put(2).is_err());
            /// ```
            pub fn try_put(&self, item: T) -> Result<(), TryPutError<T>> {
                self.core.try_put(item)
            }

            /// [`put`](Self::put) for plain threads: blocks while the queue is full.
            ///
            /// # Errors
            /// [`Closed`] (with the item) if the queue is or gets closed.
            ///
            /// ```
            #[doc = concat!("let q = concurry::", stringify!($name), "::bounded(2).unwrap();")]
            /// q.put_blocking("a").unwrap();
            /// assert_eq!(q.len(), 1);
            /// ```
            pub fn put_blocking(&self, item: T) -> Result<(), Closed<T>> {
                self.core.put_blocking(item, None).map_err(|e| match e {
                    TryPutError::Full(x) | TryPutError::Closed(x) => Closed(x),
                })
            }

            /// [`put_blocking`](Self::put_blocking) for at most `d`.
            ///
            /// # Errors
            /// [`TryPutError::Full`] on timeout, [`TryPutError::Closed`] if closed; with the item.
            ///
            /// ```
            /// use std::time::Duration;
            #[doc = concat!("let q = concurry::", stringify!($name), "::bounded(1).unwrap();")]
            /// q.put_blocking(1).unwrap();
            /// assert_eq!(
            ///     q.put_blocking_timeout(2, Duration::from_millis(1)),
            ///     Err(concurry::TryPutError::Full(2))
            /// );
            /// ```
            pub fn put_blocking_timeout(&self, item: T, d: Duration) -> Result<(), TryPutError<T>> {
                self.core.put_blocking(item, Some(&Deadline::after(d)))
            }

            common_methods!($name, T);
        }
    };
}

plain_queue!(
    /// A first-in, first-out queue with an optional bound and back-pressure, async and
    /// blocking (Python's `asyncio.Queue`, mtaio's `AsyncQueue`).
    ///
    /// - `put` / `put_blocking` wait for room, `try_put` does not; `get` / `get_blocking` wait
    ///   for an item, `try_get` does not. Waiters are served in arrival order, and a cancelled
    ///   (dropped) async put or get leaves the queue as if it never ran.
    /// - `task_done` / `join`: wait until every item put was processed.
    /// - `close`: the end of the stream for consumers (gets return `None` once drained).
    ///
    /// Clones share the queue. When one async producer side and one consumer side are all you
    /// need, `tokio::sync::mpsc` serves as well (and is faster); this queue adds multiple
    /// consumers, blocking and async use of one queue, `task_done` / `join`, and the
    /// [`LifoQueue`] / [`PriorityQueue`] orders.
    ///
    /// ```
    /// use concurry::Queue;
    ///
    /// # #[tokio::main] async fn main() {
    /// let q = Queue::bounded(2).unwrap();
    /// let producer = {
    ///     let q = q.clone();
    ///     tokio::spawn(async move {
    ///         for i in 0..10 {
    ///             q.put(i).await.unwrap(); // waits while 2 are queued
    ///         }
    ///         q.close();
    ///     })
    /// };
    /// let mut got = Vec::new();
    /// while let Some(i) = q.get().await {
    ///     got.push(i);
    ///     q.task_done().unwrap();
    /// }
    /// producer.await.unwrap();
    /// q.join().await; // every item was marked done
    /// assert_eq!(got, (0..10).collect::<Vec<_>>());
    /// # }
    /// ```
    Queue,
    Fifo
);

plain_queue!(
    /// A last-in, first-out queue (a stack) with an optional bound and back-pressure, async
    /// and blocking (Python's `asyncio.LifoQueue`, mtaio's `LIFOQueue`). Everything else is as
    /// in [`Queue`].
    ///
    /// ```
    /// let stack = concurry::LifoQueue::unbounded();
    /// stack.try_put("first").unwrap();
    /// stack.try_put("second").unwrap();
    /// assert_eq!(stack.try_get(), Ok("second"));
    /// ```
    LifoQueue,
    Lifo
);

/// A priority queue with an optional bound and back-pressure, async and blocking (Python's
/// `asyncio.PriorityQueue`, mtaio's `PriorityQueue`): the item with the lowest priority value
/// comes out first, and items of equal priority come out in the order they were put.
/// Everything else is as in [`Queue`].
///
/// ```
/// # #[tokio::main] async fn main() {
/// let q = concurry::PriorityQueue::unbounded();
/// q.put("normal", 2).await.unwrap();
/// q.put("urgent", 1).await.unwrap();
/// q.put("normal too", 2).await.unwrap();
/// assert_eq!(q.get().await, Some("urgent"));
/// assert_eq!(q.get().await, Some("normal"));
/// assert_eq!(q.get().await, Some("normal too"));
/// # }
/// ```
pub struct PriorityQueue<T, P: Ord = i64> {
    core: Arc<Core<Prio<T, P>>>,
}

impl<T, P: Ord> Clone for PriorityQueue<T, P> {
    fn clone(&self) -> Self {
        PriorityQueue {
            core: self.core.clone(),
        }
    }
}

impl<T, P: Ord> fmt::Debug for PriorityQueue<T, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = lock(&self.core.state);
        f.debug_struct("PriorityQueue")
            .field("len", &s.buf.len())
            .field("capacity", &s.cap)
            .field("closed", &s.closed)
            .finish()
    }
}

impl<T, P: Ord> PriorityQueue<T, P> {
    /// A priority queue holding at most `maxsize` items.
    ///
    /// # Errors
    /// [`ConfigError`] if `maxsize` is 0.
    ///
    /// ```
    /// let q = concurry::PriorityQueue::<&str>::bounded(8).unwrap();
    /// assert_eq!(q.capacity(), Some(8));
    /// assert!(concurry::PriorityQueue::<u8>::bounded(0).is_err());
    /// ```
    pub fn bounded(maxsize: usize) -> Result<Self, ConfigError> {
        let cap = check_bound("PriorityQueue", maxsize)?;
        Ok(PriorityQueue {
            core: Arc::new(Core::new(cap)),
        })
    }

    /// A priority queue without a bound.
    ///
    /// ```
    /// let q = concurry::PriorityQueue::<u8, u32>::unbounded();
    /// assert_eq!(q.capacity(), None);
    /// ```
    pub fn unbounded() -> Self {
        PriorityQueue {
            core: Arc::new(Core::new(None)),
        }
    }

    /// Puts `item` at `priority` (lower comes out first), waiting for room while full.
    /// Cancel-safe: dropped before it finished, the put did not happen.
    ///
    /// # Errors
    /// [`Closed`] with `(item, priority)` if the queue is or gets closed.
    ///
    /// ```
    /// # #[tokio::main] async fn main() {
    /// let q = concurry::PriorityQueue::bounded(1).unwrap();
    /// q.put("a", 5).await.unwrap();
    /// assert!(q.is_full());
    /// # }
    /// ```
    pub async fn put(&self, item: T, priority: P) -> Result<(), Closed<(T, P)>> {
        self.core.put((item, priority)).await
    }

    /// Puts `item` at `priority` if there is room now.
    ///
    /// # Errors
    /// [`TryPutError::Full`] or [`TryPutError::Closed`], with `(item, priority)`.
    ///
    /// ```
    /// let q = concurry::PriorityQueue::bounded(1).unwrap();
    /// q.try_put('x', 1).unwrap();
    /// assert_eq!(q.try_put('y', 0), Err(concurry::TryPutError::Full(('y', 0))));
    /// ```
    pub fn try_put(&self, item: T, priority: P) -> Result<(), TryPutError<(T, P)>> {
        self.core.try_put((item, priority))
    }

    /// [`put`](Self::put) for plain threads: blocks while the queue is full.
    ///
    /// # Errors
    /// [`Closed`] with `(item, priority)` if the queue is or gets closed.
    ///
    /// ```
    /// let q = concurry::PriorityQueue::unbounded();
    /// q.put_blocking("low", 9).unwrap();
    /// q.put_blocking("high", 0).unwrap();
    /// assert_eq!(q.get_blocking(), Some("high"));
    /// ```
    pub fn put_blocking(&self, item: T, priority: P) -> Result<(), Closed<(T, P)>> {
        self.core
            .put_blocking((item, priority), None)
            .map_err(|e| match e {
                TryPutError::Full(x) | TryPutError::Closed(x) => Closed(x),
            })
    }

    /// [`put_blocking`](Self::put_blocking) for at most `d`.
    ///
    /// # Errors
    /// [`TryPutError::Full`] on timeout, [`TryPutError::Closed`] if closed.
    ///
    /// ```
    /// use std::time::Duration;
    /// let q = concurry::PriorityQueue::bounded(1).unwrap();
    /// q.put_blocking(1, 1).unwrap();
    /// assert!(q.put_blocking_timeout(2, 1, Duration::from_millis(1)).is_err());
    /// ```
    pub fn put_blocking_timeout(
        &self,
        item: T,
        priority: P,
        d: Duration,
    ) -> Result<(), TryPutError<(T, P)>> {
        self.core
            .put_blocking((item, priority), Some(&Deadline::after(d)))
    }

    common_methods!(PriorityQueue, T);
}
