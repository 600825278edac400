//! The result slot shared by a [`Promise`](super::Promise) and its [`Completer`]: the one
//! hand-written synchronisation core between a worker and its caller (loom-modelled).

use std::task::Waker;

use crate::sync::{AtomicBool, Mutex, MutexGuard, Ordering, lock, thread};

type Callback<V> = Box<dyn FnOnce(&V) + Send>;

/// A write-once cell with three ways to wait: a waker, a parked thread, callbacks.
pub(crate) struct Slot<V> {
    /// Set (release) once `value` holds the result; read (acquire) by `is_done`.
    ready: AtomicBool,
    /// Mirrors `State::claimed` for lock-free checks (a runner skipping a cancelled call).
    claimed: AtomicBool,
    state: Mutex<State<V>>,
}

struct State<V> {
    /// A completer (or `cancel`) has claimed the slot; the value follows.
    claimed: bool,
    value: Option<V>,
    /// The value was moved out to a consumer.
    taken: bool,
    /// The task awaiting the value (the common case gets no allocation).
    waker: Option<Waker>,
    /// Blocked threads and callbacks, in one list to keep the slot small: a call's slot
    /// shares its allocation with the call, and every byte is copied and crosses cores.
    waiters: Vec<Waiter<V>>,
}

enum Waiter<V> {
    Parked(thread::Thread),
    Callback(Callback<V>),
}

impl<V> State<V> {
    fn has_callbacks(&self) -> bool {
        self.waiters
            .iter()
            .any(|w| matches!(w, Waiter::Callback(_)))
    }

    /// Moves the callbacks out, leaving the parked threads.
    fn take_callbacks(&mut self) -> Vec<Callback<V>> {
        let mut callbacks = Vec::new();
        for w in std::mem::take(&mut self.waiters) {
            match w {
                Waiter::Callback(cb) => callbacks.push(cb),
                parked => self.waiters.push(parked),
            }
        }
        callbacks
    }

    fn is_parked(&self, me: &thread::Thread) -> bool {
        self.waiters
            .iter()
            .any(|w| matches!(w, Waiter::Parked(t) if t.id() == me.id()))
    }
}

impl<V> Slot<V> {
    pub(crate) fn new() -> Self {
        Slot {
            ready: AtomicBool::new(false),
            claimed: AtomicBool::new(false),
            state: Mutex::new(State {
                claimed: false,
                value: None,
                taken: false,
                waker: None,
                waiters: Vec::new(),
            }),
        }
    }

    pub(crate) fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// True once someone has claimed the slot (a result or a cancellation is on its way).
    pub(crate) fn is_claimed(&self) -> bool {
        self.claimed.load(Ordering::Acquire)
    }

    /// Stores `value` unless the slot was already claimed; returns whether it was stored.
    pub(crate) fn complete(&self, value: V) -> bool {
        let mut st = lock(&self.state);
        if st.claimed {
            return false;
        }
        st.claimed = true;
        self.claimed.store(true, Ordering::Release);
        if !st.has_callbacks() {
            // The common case: one critical section claims and stores.
            self.store(st, value);
        } else {
            let callbacks = st.take_callbacks();
            drop(st);
            self.run_then_store(callbacks, value);
        }
        true
    }

    /// Runs the callbacks outside the lock (they may take long or touch other promises),
    /// then stores the value.
    fn run_then_store(&self, mut callbacks: Vec<Callback<V>>, value: V) {
        loop {
            for cb in callbacks.drain(..) {
                cb(&value);
            }
            let mut st = lock(&self.state);
            if !st.has_callbacks() {
                return self.store(st, value);
            }
            // Registered while we ran the others: run them too.
            callbacks = st.take_callbacks();
        }
    }

    fn store(&self, mut st: MutexGuard<'_, State<V>>, value: V) {
        st.value = Some(value);
        self.ready.store(true, Ordering::Release);
        let waker = st.waker.take();
        // Only parked threads are left: callbacks ran before the value was stored.
        let parked = std::mem::take(&mut st.waiters);
        drop(st);
        if let Some(w) = waker {
            w.wake();
        }
        for w in parked {
            if let Waiter::Parked(t) = w {
                t.unpark();
            }
        }
    }

    /// Runs `cb` with the value once it is there (at once if it already is).
    ///
    /// Returns `false` (and drops `cb`) if the value was already moved to a consumer.
    pub(crate) fn on_done(&self, cb: Callback<V>) -> bool {
        let st = lock(&self.state);
        if st.taken {
            return false;
        }
        match &st.value {
            Some(v) => {
                // Runs under the lock: the callback must not register on the same slot.
                cb(v);
                true
            }
            None => {
                let mut st = st;
                st.waiters.push(Waiter::Callback(cb));
                true
            }
        }
    }

    /// Takes the value if it is there, else registers `waker`.
    pub(crate) fn poll_take(&self, waker: &Waker) -> Option<V> {
        let mut st = lock(&self.state);
        if let Some(v) = st.value.take() {
            st.taken = true;
            return Some(v);
        }
        assert!(
            !st.taken,
            "a concurry Promise was polled again after it returned its result"
        );
        match &st.waker {
            Some(w) if w.will_wake(waker) => {}
            _ => st.waker = Some(waker.clone()),
        }
        None
    }

    /// True once a consumer moved the value out.
    pub(crate) fn is_taken(&self) -> bool {
        self.is_ready() && lock(&self.state).taken
    }

    /// Takes the value if it is there.
    pub(crate) fn try_take(&self) -> Option<V> {
        if !self.is_ready() {
            return None;
        }
        let mut st = lock(&self.state);
        let v = st.value.take();
        if v.is_some() {
            st.taken = true;
        }
        v
    }

    /// Blocks the current thread until the value is there or `deadline` passes.
    pub(crate) fn wait(&self, deadline: Option<std::time::Instant>) -> bool {
        // Short spin first: a worker on another core usually answers within microseconds,
        // and parking costs a system call on both sides.
        #[cfg(not(concurry_loom))]
        {
            let backoff = crossbeam_utils::Backoff::new();
            while !backoff.is_completed() {
                if self.is_ready() {
                    return true;
                }
                backoff.snooze();
            }
        }
        loop {
            {
                let mut st = lock(&self.state);
                if st.value.is_some() || st.taken {
                    return true;
                }
                let me = thread::current();
                if !st.is_parked(&me) {
                    st.waiters.push(Waiter::Parked(me));
                }
            }
            match deadline {
                None => thread::park(),
                #[cfg(not(concurry_loom))]
                Some(d) => {
                    let now = std::time::Instant::now();
                    if now >= d {
                        let me = thread::current();
                        lock(&self.state)
                            .waiters
                            .retain(|w| !matches!(w, Waiter::Parked(t) if t.id() == me.id()));
                        return self.is_ready();
                    }
                    std::thread::park_timeout(d - now);
                }
                #[cfg(concurry_loom)]
                Some(_) => thread::park(),
            }
        }
    }
}
