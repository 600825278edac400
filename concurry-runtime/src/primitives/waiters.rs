//! The waiting core shared by the hand-written primitives: FIFO [`Tickets`] (a waiter is
//! granted its turn by whoever frees what it waits for), a [`Wakers`] set (wake everyone when a
//! condition becomes true), and the glue for blocked threads (one condvar per primitive).
//!
//! Everything here lives inside the primitive's one mutex, so a grant and the state it
//! reflects change together. A task waits with its `Waker` stored in the ticket; a thread
//! waits on the primitive's condvar (`None` waker) and re-checks its ticket when woken.

use std::collections::BTreeMap;
use std::task::Waker;
use std::time::Duration;

use crate::clock::{Clock, SystemClock};
use crate::sync::{Condvar, Mutex, MutexGuard, lock};

/// Waiters in arrival order; [`grant_one`](Tickets::grant_one) gives the oldest its turn.
#[derive(Debug, Default)]
pub(crate) struct Tickets {
    next: u64,
    /// Ticket → the task to wake (`None`: a blocked thread, woken by the condvar). Ordered by
    /// ticket, which is arrival order.
    waiting: BTreeMap<u64, Option<Waker>>,
    /// Tickets granted but not yet collected by their waiter.
    granted: Vec<u64>,
}

impl Tickets {
    /// Queues a waiter and returns its ticket.
    pub(crate) fn push(&mut self, waker: Option<Waker>) -> u64 {
        let id = self.next;
        self.next += 1;
        self.waiting.insert(id, waker);
        id
    }

    /// Waiters not yet granted.
    pub(crate) fn len(&self) -> usize {
        self.waiting.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// Grants the oldest waiter (waking its task) and returns its ticket; `None` when nobody
    /// waits.
    pub(crate) fn grant_one(&mut self) -> Option<u64> {
        let (id, waker) = self.waiting.pop_first()?;
        self.granted.push(id);
        if let Some(w) = waker {
            w.wake();
        }
        Some(id)
    }

    /// Collects `id`'s grant: true (and forgets the ticket) if it was granted.
    pub(crate) fn take_grant(&mut self, id: u64) -> bool {
        match self.granted.iter().position(|&g| g == id) {
            Some(i) => {
                self.granted.swap_remove(i);
                true
            }
            None => false,
        }
    }

    /// Stores the task to wake for a still-waiting `id`.
    pub(crate) fn set_waker(&mut self, id: u64, waker: &Waker) {
        if let Some(slot) = self.waiting.get_mut(&id) {
            match slot {
                Some(w) if w.will_wake(waker) => {}
                _ => *slot = Some(waker.clone()),
            }
        }
    }

    /// `id` gives up. Returns true if it had already been granted: the caller must hand what
    /// was granted to someone else, or nothing is lost but a turn.
    pub(crate) fn cancel(&mut self, id: u64) -> bool {
        if self.waiting.remove(&id).is_some() {
            return false;
        }
        self.take_grant(id)
    }

    /// Wakes every waiter without granting anything (they re-check the state: closed queue).
    pub(crate) fn wake_all(&mut self) {
        for w in self.waiting.values_mut() {
            if let Some(w) = w.take() {
                w.wake();
            }
        }
    }
}

/// Tasks to wake all at once when a condition becomes true (a latch opened, a queue joined).
#[derive(Debug, Default)]
pub(crate) struct Wakers {
    next: u64,
    map: BTreeMap<u64, Waker>,
}

impl Wakers {
    /// Registers (or, with `Some(id)`, refreshes) a task; returns its key.
    pub(crate) fn register(&mut self, id: Option<u64>, waker: &Waker) -> u64 {
        let id = id.unwrap_or_else(|| {
            self.next += 1;
            self.next
        });
        match self.map.get(&id) {
            Some(w) if w.will_wake(waker) => {}
            _ => {
                self.map.insert(id, waker.clone());
            }
        }
        id
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    pub(crate) fn remove(&mut self, id: u64) {
        self.map.remove(&id);
    }

    pub(crate) fn wake_all(&mut self) {
        for (_, w) in std::mem::take(&mut self.map) {
            w.wake();
        }
    }
}

/// An async waiter's place in a [`Wakers`] set inside the primitive's state `S`; leaves the
/// set when dropped (a cancelled wait leaves nothing behind).
pub(crate) struct Registration<'a, S, F: Fn(&mut S) -> &mut Wakers> {
    state: &'a Mutex<S>,
    field: F,
    key: Option<u64>,
}

impl<'a, S, F: Fn(&mut S) -> &mut Wakers> Registration<'a, S, F> {
    pub(crate) fn new(state: &'a Mutex<S>, field: F) -> Self {
        Registration {
            state,
            field,
            key: None,
        }
    }

    /// Registers (or refreshes) `waker`, under the lock the caller holds.
    pub(crate) fn register(&mut self, s: &mut S, waker: &Waker) {
        self.key = Some((self.field)(s).register(self.key, waker));
    }

    /// The wait is over: nothing to clean up.
    pub(crate) fn done(&mut self) {
        self.key = None;
    }
}

impl<S, F: Fn(&mut S) -> &mut Wakers> Drop for Registration<'_, S, F> {
    fn drop(&mut self) {
        if let Some(k) = self.key {
            (self.field)(&mut lock(self.state)).remove(k);
        }
    }
}

/// Runs its closure on drop unless disarmed: the cleanup of an async wait whose future is
/// dropped (cancelled) before it finished.
pub(crate) struct Armed<F: FnOnce()>(Option<F>);

impl<F: FnOnce()> Armed<F> {
    pub(crate) fn new(f: F) -> Self {
        Armed(Some(f))
    }

    pub(crate) fn disarm(mut self) {
        self.0 = None;
    }
}

impl<F: FnOnce()> Drop for Armed<F> {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f();
        }
    }
}

/// Blocks on `cv` (ignoring poisoning, as `sync::lock` does).
pub(crate) fn wait<'a, T>(cv: &Condvar, g: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
    cv.wait(g)
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A deadline on the monotonic clock, for blocking waits with a timeout.
#[derive(Debug)]
pub(crate) struct Deadline {
    clock: SystemClock,
    end: Duration,
}

impl Deadline {
    pub(crate) fn after(d: Duration) -> Self {
        let clock = SystemClock::new();
        let end = clock.now().saturating_add(d);
        Deadline { clock, end }
    }

    /// Time left, `None` once it passed.
    pub(crate) fn left(&self) -> Option<Duration> {
        let now = self.clock.now();
        (now < self.end).then(|| self.end - now)
    }

    /// Blocks on `cv` for at most the time left; the caller re-checks its condition and
    /// [`left`](Deadline::left).
    pub(crate) fn wait<'a, T>(&self, cv: &Condvar, g: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        match self.left() {
            None => g,
            Some(left) => match cv.wait_timeout(g, left) {
                Ok((g, _)) => g,
                Err(e) => e.into_inner().0,
            },
        }
    }
}

/// A future's timeout on tokio's clock (paused time in tests moves it), made inside the
/// library runtime when the caller is in none, so it fires under any executor.
pub(crate) async fn timeout<F: std::future::Future>(d: Duration, fut: F) -> Option<F::Output> {
    let sleep = {
        let _ctx = match tokio::runtime::Handle::try_current() {
            Ok(_) => None,
            Err(_) => Some(crate::runtime::runtime().enter()),
        };
        tokio::time::sleep(d)
    };
    let fut = std::pin::pin!(fut);
    let sleep = std::pin::pin!(sleep);
    match futures_util::future::select(fut, sleep).await {
        futures_util::future::Either::Left((v, _)) => Some(v),
        futures_util::future::Either::Right(_) => None,
    }
}
