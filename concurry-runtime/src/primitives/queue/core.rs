//! The one core behind every queue: the buffer and two fair grant lines (free slots for
//! putters, items for getters) in one mutex, plus the `task_done` count and `close`.

use std::future::poll_fn;
use std::task::Poll;

use super::buffer::Buffer;
use super::{Closed, TaskDoneError, TryGetError, TryPutError};
use crate::primitives::waiters::{Armed, Deadline, Registration, Tickets, Wakers, wait};
use crate::sync::{Condvar, Mutex, MutexGuard, lock};

pub(super) struct State<B> {
    pub(super) buf: B,
    /// `None`: unbounded.
    pub(super) cap: Option<usize>,
    /// Free slots granted to putters that have not put yet.
    slots_granted: usize,
    /// Items granted to getters that have not taken them yet.
    items_granted: usize,
    putters: Tickets,
    getters: Tickets,
    /// Items put and not yet marked done with `task_done`.
    unfinished: usize,
    joiners: Wakers,
    pub(super) closed: bool,
}

impl<B: Buffer> State<B> {
    pub(super) fn free_slots(&self) -> usize {
        match self.cap {
            None => usize::MAX,
            Some(c) => c.saturating_sub(self.buf.len() + self.slots_granted),
        }
    }

    fn free_items(&self) -> usize {
        self.buf.len() - self.items_granted
    }

    fn push(&mut self, x: B::In) -> bool {
        self.buf.push(x);
        self.unfinished += 1;
        self.grant_items()
    }

    fn pop(&mut self) -> (B::Out, bool) {
        let x = self
            .buf
            .pop()
            .expect("a granted or free item is in the buffer");
        (x, self.grant_slots())
    }

    fn grant_items(&mut self) -> bool {
        let mut any = false;
        while self.free_items() > 0 && self.getters.grant_one().is_some() {
            self.items_granted += 1;
            any = true;
        }
        any
    }

    fn grant_slots(&mut self) -> bool {
        let mut any = false;
        while !self.closed && self.free_slots() > 0 && self.putters.grant_one().is_some() {
            self.slots_granted += 1;
            any = true;
        }
        any
    }
}

pub(super) struct Core<B> {
    pub(super) state: Mutex<State<B>>,
    /// Every blocked thread (putter, getter, joiner) waits here and re-checks its condition.
    cv: Condvar,
}

impl<B: Buffer> Core<B> {
    pub(super) fn new(cap: Option<usize>) -> Self {
        Core {
            state: Mutex::new(State {
                buf: B::default(),
                cap,
                slots_granted: 0,
                items_granted: 0,
                putters: Tickets::default(),
                getters: Tickets::default(),
                unfinished: 0,
                joiners: Wakers::default(),
                closed: false,
            }),
            cv: Condvar::new(),
        }
    }

    fn notify(&self, s: MutexGuard<'_, State<B>>, woke: bool) {
        drop(s);
        if woke {
            self.cv.notify_all();
        }
    }

    pub(super) fn try_put(&self, x: B::In) -> Result<(), TryPutError<B::In>> {
        let mut s = lock(&self.state);
        if s.closed {
            return Err(TryPutError::Closed(x));
        }
        if s.free_slots() == 0 {
            return Err(TryPutError::Full(x));
        }
        let woke = s.push(x);
        self.notify(s, woke);
        Ok(())
    }

    pub(super) async fn put(&self, x: B::In) -> Result<(), Closed<B::In>> {
        let id = {
            let mut s = lock(&self.state);
            if s.closed {
                return Err(Closed(x));
            }
            if s.free_slots() > 0 {
                let woke = s.push(x);
                self.notify(s, woke);
                return Ok(());
            }
            s.putters.push(None)
        };
        let cleanup = Armed::new(|| self.abandon_put(id));
        let mut item = Some(x);
        let done = poll_fn(|cx| {
            let mut s = lock(&self.state);
            let granted = s.putters.take_grant(id);
            if granted {
                // The slot reserved for us is ours to fill, now, under the same lock.
                s.slots_granted -= 1;
            }
            if s.closed {
                if !granted {
                    s.putters.cancel(id);
                }
                return Poll::Ready(Err(()));
            }
            if granted {
                let x = item.take().expect("a put completes once");
                let woke = s.push(x);
                self.notify(s, woke);
                return Poll::Ready(Ok(()));
            }
            s.putters.set_waker(id, cx.waker());
            Poll::Pending
        })
        .await;
        cleanup.disarm();
        done.map_err(|()| Closed(item.take().expect("a closed put keeps its item")))
    }

    fn abandon_put(&self, id: u64) {
        let mut s = lock(&self.state);
        let woke = if s.putters.cancel(id) {
            s.slots_granted -= 1;
            s.grant_slots()
        } else {
            false
        };
        self.notify(s, woke);
    }

    pub(super) fn put_blocking(
        &self,
        x: B::In,
        deadline: Option<&Deadline>,
    ) -> Result<(), TryPutError<B::In>> {
        crate::runtime::blocking(|| {
            let mut s = lock(&self.state);
            if s.closed {
                return Err(TryPutError::Closed(x));
            }
            if s.free_slots() > 0 {
                let woke = s.push(x);
                self.notify(s, woke);
                return Ok(());
            }
            let id = s.putters.push(None);
            loop {
                if s.putters.take_grant(id) {
                    s.slots_granted -= 1;
                    if s.closed {
                        return Err(TryPutError::Closed(x));
                    }
                    let woke = s.push(x);
                    self.notify(s, woke);
                    return Ok(());
                }
                if s.closed {
                    s.putters.cancel(id);
                    return Err(TryPutError::Closed(x));
                }
                s = match deadline {
                    None => wait(&self.cv, s),
                    Some(d) if d.left().is_none() => {
                        s.putters.cancel(id);
                        return Err(TryPutError::Full(x));
                    }
                    Some(d) => d.wait(&self.cv, s),
                };
            }
        })
    }

    pub(super) fn try_get(&self) -> Result<B::Out, TryGetError> {
        let mut s = lock(&self.state);
        if s.free_items() == 0 {
            return Err(if s.closed {
                TryGetError::Closed
            } else {
                TryGetError::Empty
            });
        }
        let (x, woke) = s.pop();
        self.notify(s, woke);
        Ok(x)
    }

    pub(super) async fn get(&self) -> Option<B::Out> {
        let id = {
            let mut s = lock(&self.state);
            if s.free_items() > 0 {
                let (x, woke) = s.pop();
                self.notify(s, woke);
                return Some(x);
            }
            if s.closed {
                return None;
            }
            s.getters.push(None)
        };
        let cleanup = Armed::new(|| self.abandon_get(id));
        let got = poll_fn(|cx| {
            let mut s = lock(&self.state);
            if s.getters.take_grant(id) {
                s.items_granted -= 1;
                let (x, woke) = s.pop();
                self.notify(s, woke);
                Poll::Ready(Some(x))
            } else if s.closed {
                s.getters.cancel(id);
                Poll::Ready(None)
            } else {
                s.getters.set_waker(id, cx.waker());
                Poll::Pending
            }
        })
        .await;
        cleanup.disarm();
        got
    }

    fn abandon_get(&self, id: u64) {
        let mut s = lock(&self.state);
        let woke = if s.getters.cancel(id) {
            s.items_granted -= 1;
            s.grant_items()
        } else {
            false
        };
        self.notify(s, woke);
    }

    pub(super) fn get_blocking(&self, deadline: Option<&Deadline>) -> Result<B::Out, TryGetError> {
        crate::runtime::blocking(|| {
            let mut s = lock(&self.state);
            if s.free_items() > 0 {
                let (x, woke) = s.pop();
                self.notify(s, woke);
                return Ok(x);
            }
            if s.closed {
                return Err(TryGetError::Closed);
            }
            let id = s.getters.push(None);
            loop {
                if s.getters.take_grant(id) {
                    s.items_granted -= 1;
                    let (x, woke) = s.pop();
                    self.notify(s, woke);
                    return Ok(x);
                }
                if s.closed {
                    s.getters.cancel(id);
                    return Err(TryGetError::Closed);
                }
                s = match deadline {
                    None => wait(&self.cv, s),
                    Some(d) if d.left().is_none() => {
                        s.getters.cancel(id);
                        return Err(TryGetError::Empty);
                    }
                    Some(d) => d.wait(&self.cv, s),
                };
            }
        })
    }

    pub(super) fn task_done(&self) -> Result<(), TaskDoneError> {
        let mut s = lock(&self.state);
        if s.unfinished == 0 {
            return Err(TaskDoneError);
        }
        s.unfinished -= 1;
        let woke = s.unfinished == 0;
        if woke {
            s.joiners.wake_all();
        }
        self.notify(s, woke);
        Ok(())
    }

    pub(super) async fn join(&self) {
        let mut reg = Registration::new(&self.state, |s: &mut State<B>| &mut s.joiners);
        poll_fn(|cx| {
            let mut s = lock(&self.state);
            if s.unfinished == 0 {
                reg.done();
                Poll::Ready(())
            } else {
                reg.register(&mut s, cx.waker());
                Poll::Pending
            }
        })
        .await;
    }

    pub(super) fn join_blocking(&self) {
        crate::runtime::blocking(|| {
            let mut s = lock(&self.state);
            while s.unfinished > 0 {
                s = wait(&self.cv, s);
            }
        });
    }

    pub(super) fn close(&self) {
        let mut s = lock(&self.state);
        if s.closed {
            return;
        }
        s.closed = true;
        s.putters.wake_all();
        s.getters.wake_all();
        self.notify(s, true);
    }
}
