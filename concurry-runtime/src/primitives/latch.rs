//! [`Latch`]: a count-down latch that opens once for good.

use std::fmt;
use std::future::poll_fn;
use std::task::Poll;
use std::time::Duration;

use super::waiters::{Deadline, Registration, Wakers, timeout, wait};
use crate::sync::{Arc, Condvar, Mutex, lock};

/// A count-down latch (Java's `CountDownLatch`, mtaio's `Latch`): it starts at a count, each
/// [`count_down`](Self::count_down) takes one off, and when the count reaches zero every waiter,
/// present and future, is released. It never closes again.
///
/// Wait async ([`wait`](Self::wait), [`wait_timeout`](Self::wait_timeout)) or blocking
/// ([`wait_blocking`](Self::wait_blocking), [`wait_blocking_timeout`](Self::wait_blocking_timeout)).
/// Clones share the count. A latch made with 0 is open from the start; counting down an open
/// latch does nothing.
///
/// ```
/// use concurry::Latch;
///
/// let latch = Latch::new(3);
/// let workers: Vec<_> = (0..3)
///     .map(|_| {
///         let latch = latch.clone();
///         std::thread::spawn(move || latch.count_down())
///     })
///     .collect();
/// latch.wait_blocking(); // returns once all three counted down
/// assert_eq!(latch.count(), 0);
/// # for w in workers { w.join().unwrap(); }
/// ```
#[derive(Clone)]
pub struct Latch {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    cv: Condvar,
}

struct State {
    count: usize,
    wakers: Wakers,
}

impl Latch {
    /// A latch that opens after `count` count-downs (0: open already).
    ///
    /// ```
    /// assert!(concurry::Latch::new(0).is_open());
    /// ```
    pub fn new(count: usize) -> Self {
        Latch {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    count,
                    wakers: Wakers::default(),
                }),
                cv: Condvar::new(),
            }),
        }
    }

    /// Takes one off the count; the count-down that reaches zero releases every waiter.
    ///
    /// ```
    /// let latch = concurry::Latch::new(2);
    /// latch.count_down();
    /// assert_eq!(latch.count(), 1);
    /// latch.count_down();
    /// latch.count_down(); // already open: nothing happens
    /// assert!(latch.is_open());
    /// ```
    pub fn count_down(&self) {
        let mut s = lock(&self.inner.state);
        if s.count == 0 {
            return;
        }
        s.count -= 1;
        if s.count == 0 {
            s.wakers.wake_all();
            drop(s);
            self.inner.cv.notify_all();
        }
    }

    /// The count left.
    ///
    /// ```
    /// assert_eq!(concurry::Latch::new(5).count(), 5);
    /// ```
    pub fn count(&self) -> usize {
        lock(&self.inner.state).count
    }

    /// True once the count reached zero.
    ///
    /// ```
    /// assert!(!concurry::Latch::new(1).is_open());
    /// ```
    pub fn is_open(&self) -> bool {
        self.count() == 0
    }

    /// Waits until the count reaches zero.
    ///
    /// ```
    /// # #[tokio::main] async fn main() {
    /// let latch = concurry::Latch::new(1);
    /// let l2 = latch.clone();
    /// tokio::spawn(async move { l2.count_down() });
    /// latch.wait().await;
    /// # }
    /// ```
    pub async fn wait(&self) {
        let mut reg = Registration::new(&self.inner.state, |s: &mut State| &mut s.wakers);
        poll_fn(|cx| {
            let mut s = lock(&self.inner.state);
            if s.count == 0 {
                reg.done();
                Poll::Ready(())
            } else {
                reg.register(&mut s, cx.waker());
                Poll::Pending
            }
        })
        .await;
    }

    /// [`wait`](Self::wait) for at most `d` (on tokio's clock, so paused time moves it): true
    /// if the latch opened, false on timeout.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// use std::time::Duration;
    /// let latch = concurry::Latch::new(1);
    /// assert!(!latch.wait_timeout(Duration::from_secs(5)).await);
    /// latch.count_down();
    /// assert!(latch.wait_timeout(Duration::from_secs(5)).await);
    /// # }
    /// ```
    pub async fn wait_timeout(&self, d: Duration) -> bool {
        timeout(d, self.wait()).await.is_some()
    }

    /// Blocks until the count reaches zero. On a tokio worker thread it hands the thread's
    /// other tasks over first ([`block_in_place`](tokio::task::block_in_place)).
    ///
    /// ```
    /// let latch = concurry::Latch::new(1);
    /// let l2 = latch.clone();
    /// let t = std::thread::spawn(move || l2.count_down());
    /// latch.wait_blocking();
    /// # t.join().unwrap();
    /// ```
    pub fn wait_blocking(&self) {
        crate::runtime::blocking(|| {
            let mut s = lock(&self.inner.state);
            while s.count > 0 {
                s = wait(&self.inner.cv, s);
            }
        });
    }

    /// [`wait_blocking`](Self::wait_blocking) for at most `d`: true if the latch opened,
    /// false on timeout.
    ///
    /// ```
    /// use std::time::Duration;
    /// let latch = concurry::Latch::new(1);
    /// assert!(!latch.wait_blocking_timeout(Duration::from_millis(1)));
    /// latch.count_down();
    /// assert!(latch.wait_blocking_timeout(Duration::ZERO));
    /// ```
    pub fn wait_blocking_timeout(&self, d: Duration) -> bool {
        crate::runtime::blocking(|| {
            let deadline = Deadline::after(d);
            let mut s = lock(&self.inner.state);
            while s.count > 0 {
                if deadline.left().is_none() {
                    return false;
                }
                s = deadline.wait(&self.inner.cv, s);
            }
            true
        })
    }
}

#[cfg(test)]
impl Latch {
    /// Async waiters registered now (a cancelled wait must leave none behind).
    pub(crate) fn registered_wakers(&self) -> usize {
        lock(&self.inner.state).wakers.len()
    }
}

impl fmt::Debug for Latch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Latch")
            .field("count", &self.count())
            .finish()
    }
}
