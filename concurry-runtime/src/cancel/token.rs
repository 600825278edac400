//! [`Token`]: the level-triggered cancel flag of a scope, with its parent, and the wakers of
//! whoever waits for it. The one hand-written synchronisation core of `cancel` (loom-modelled
//! in `tests/loom_token.rs`).

use std::task::Waker;

use crate::sync::{AtomicBool, AtomicUsize, Mutex, Ordering, WakerArc, WakerWeak as Weak, lock};

/// What a cancel flag hangs from: cancelling the parent cancels everything below it.
#[derive(Clone)]
pub(crate) enum Parent {
    /// A scope (or group, or a group's child).
    Token(Token),
    /// The pool call whose method opened the scope (or submitted the call): the call's own
    /// cancel reaches it. Weak: a call's value may hold the promise of one it submitted.
    Call(crate::sync::DynWeak<dyn super::context::CallView>),
}

impl Parent {
    pub(crate) fn is_cancelled(&self) -> bool {
        match self {
            Parent::Token(t) => t.is_cancelled(),
            Parent::Call(c) => c.upgrade().is_some_and(|c| c.is_cancelled()),
        }
    }

    /// Makes `cell` woken when this parent (or one above it) is cancelled.
    pub(crate) fn register(&self, cell: &WakerArc<WakeCell>) {
        match self {
            Parent::Token(t) => t.register(cell),
            Parent::Call(c) => {
                if let Some(c) = c.upgrade() {
                    c.register(cell);
                }
            }
        }
    }
}

/// Where a waiter keeps its latest waker; cancel sources hold it weakly, so a waiter that
/// went away costs them nothing but a failed upgrade.
pub(crate) struct WakeCell {
    waker: Mutex<Option<Waker>>,
}

impl WakeCell {
    pub(crate) fn new() -> WakerArc<Self> {
        WakerArc::new(WakeCell {
            waker: Mutex::new(None),
        })
    }

    /// Keeps `waker` as the one to wake (replacing an older one).
    pub(crate) fn set(&self, waker: &Waker) {
        let mut w = lock(&self.waker);
        match &*w {
            Some(old) if old.will_wake(waker) => {}
            _ => *w = Some(waker.clone()),
        }
    }

    pub(crate) fn wake(&self) {
        let w = lock(&self.waker).take();
        if let Some(w) = w {
            w.wake();
        }
    }
}

/// A cancel flag: cancelled when [`cancel`](Token::cancel) is called on it or on a parent.
/// Cloning shares the flag.
#[derive(Clone)]
pub(crate) struct Token(crate::sync::Arc<Node>);

struct Node {
    /// Set (release) once; read (acquire) by every checkpoint.
    cancelled: AtomicBool,
    /// `None` for a root or a shielded scope: nothing above reaches it.
    parent: Option<Parent>,
    /// Shields running below this token (async scopes wait for them before dropping their
    /// body at a cancel).
    shields: AtomicUsize,
    /// Waiters to wake at the cancel; taken (and emptied) by it.
    waiters: Mutex<Vec<Weak<WakeCell>>>,
}

impl Token {
    /// A flag that only [`cancel`](Token::cancel) on itself sets.
    pub(crate) fn root() -> Self {
        Token::with_parent(None)
    }

    /// A flag also set when `parent` is cancelled.
    pub(crate) fn with_parent(parent: Option<Parent>) -> Self {
        Token(crate::sync::Arc::new(Node {
            cancelled: AtomicBool::new(false),
            parent,
            shields: AtomicUsize::new(0),
            waiters: Mutex::new(Vec::new()),
        }))
    }

    /// A flag below this one.
    pub(crate) fn child(&self) -> Self {
        Token::with_parent(Some(Parent::Token(self.clone())))
    }

    /// True if this flag itself was set (not a parent).
    pub(crate) fn cancel_called(&self) -> bool {
        self.0.cancelled.load(Ordering::Acquire)
    }

    /// True if this flag or one above it is set: level-triggered, it stays true.
    pub(crate) fn is_cancelled(&self) -> bool {
        self.cancel_called() || self.0.parent.as_ref().is_some_and(Parent::is_cancelled)
    }

    /// Sets the flag and wakes its waiters (and, through theirs, its children's). Returns
    /// whether this call set it.
    pub(crate) fn cancel(&self) -> bool {
        // Set under the lock, so a waiter registering concurrently either sees the flag or
        // is in the list taken here.
        let mut waiters = lock(&self.0.waiters);
        if self.0.cancelled.swap(true, Ordering::AcqRel) {
            return false;
        }
        let taken = std::mem::take(&mut *waiters);
        drop(waiters);
        for w in taken.iter().filter_map(Weak::upgrade) {
            w.wake();
        }
        true
    }

    /// Makes `cell` woken when this flag or one above it is set (at once if it already is).
    pub(crate) fn register(&self, cell: &WakerArc<WakeCell>) {
        {
            let mut waiters = lock(&self.0.waiters);
            if !self.0.cancelled.load(Ordering::Acquire) {
                // Waiters that went away are dropped as the list grows.
                if waiters.len() >= 8 && waiters.len().is_power_of_two() {
                    waiters.retain(|w| w.strong_count() > 0);
                }
                waiters.push(WakerArc::downgrade(cell));
            } else {
                drop(waiters);
                cell.wake();
                return;
            }
        }
        if let Some(p) = &self.0.parent {
            p.register(cell);
        }
    }

    /// True if both are the same flag, or `ancestor` is above this one.
    pub(crate) fn is_below(&self, ancestor: &Token) -> bool {
        let mut t = self;
        loop {
            if crate::sync::Arc::ptr_eq(&t.0, &ancestor.0) {
                return true;
            }
            match &t.0.parent {
                Some(Parent::Token(p)) => t = p,
                _ => return false,
            }
        }
    }

    /// Counts a shield running below every token from here up.
    pub(crate) fn enter_shield(&self) {
        let mut t = Some(self);
        while let Some(tok) = t {
            tok.0.shields.fetch_add(1, Ordering::AcqRel);
            t = match &tok.0.parent {
                Some(Parent::Token(p)) => Some(p),
                _ => None,
            };
        }
    }

    /// Undoes one [`enter_shield`](Token::enter_shield). (An async scope waiting for its
    /// shields polls its body, which holds the shield, so it sees the count drop.)
    pub(crate) fn leave_shield(&self) {
        let mut t = Some(self);
        while let Some(tok) = t {
            tok.0.shields.fetch_sub(1, Ordering::AcqRel);
            t = match &tok.0.parent {
                Some(Parent::Token(p)) => Some(p),
                _ => None,
            };
        }
    }

    /// Waiters registered (live or not yet pruned).
    #[cfg(all(test, not(concurry_loom)))]
    pub(crate) fn waiter_count(&self) -> usize {
        lock(&self.0.waiters).len()
    }

    /// Shields running below this token.
    pub(crate) fn shields(&self) -> usize {
        self.0.shields.load(Ordering::Acquire)
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("cancel_called", &self.cancel_called())
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}
