//! The result slot shared by a [`Promise`](super::Promise) and its [`Completer`]: the one
//! hand-written synchronisation core between a worker and its caller (loom-modelled).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::task::Waker;

use crate::sync::{AtomicBool, Mutex, MutexGuard, Ordering, lock, thread};

type Callback<V> = Box<dyn FnOnce(&V) + Send>;

/// How a slot keeps its value.
///
/// A call's slot shares one allocation with the call, which the caller copies into place and
/// both sides then read across cores, so its size is paid on every call: a `Result` keeps its
/// error boxed, which keeps a successful result (the common case) small.
pub(crate) trait Stash: Sized {
    type Stored;
    fn stash(self) -> Self::Stored;
    fn unstash(stored: Self::Stored) -> Self;
}

impl<T, E> Stash for Result<T, E> {
    type Stored = Result<T, Box<E>>;

    fn stash(self) -> Self::Stored {
        self.map_err(Box::new)
    }

    fn unstash(stored: Self::Stored) -> Self {
        stored.map_err(|e| *e)
    }
}

/// A write-once cell with three ways to wait: a waker, a parked thread, callbacks.
pub(crate) struct Slot<V: Stash> {
    /// Set (release) once `value` holds the result; read (acquire) by `is_done`.
    ready: AtomicBool,
    /// Mirrors `State::claimed` for lock-free checks (a runner skipping a cancelled call).
    claimed: AtomicBool,
    /// Claimed by a cancel (not a result): what a running method's checkpoint reads. Set
    /// before the callbacks run, so a waiter they wake sees it.
    cancelled: AtomicBool,
    state: Mutex<State<V>>,
}

struct State<V: Stash> {
    /// A completer (or `cancel`) has claimed the slot; the value follows.
    claimed: bool,
    value: Value<V::Stored>,
    /// The task awaiting the value (kept inline: the common way to wait).
    waker: Option<Waker>,
    /// Blocked threads and callbacks, boxed: rare, and the slot stays small without them.
    waiters: Option<Box<Waiters<V>>>,
}

enum Value<S> {
    Empty,
    Full(S),
    /// Moved out to a consumer.
    Taken,
}

struct Waiters<V> {
    parked: Vec<thread::Thread>,
    callbacks: Vec<Callback<V>>,
}

impl<V: Stash> State<V> {
    fn waiters(&mut self) -> &mut Waiters<V> {
        self.waiters.get_or_insert_with(|| {
            Box::new(Waiters {
                parked: Vec::new(),
                callbacks: Vec::new(),
            })
        })
    }

    /// The callbacks registered so far, if any.
    fn take_callbacks(&mut self) -> Option<Vec<Callback<V>>> {
        let w = self.waiters.as_mut()?;
        (!w.callbacks.is_empty()).then(|| std::mem::take(&mut w.callbacks))
    }
}

impl<V: Stash> Slot<V> {
    pub(crate) fn new() -> Self {
        Slot {
            ready: AtomicBool::new(false),
            claimed: AtomicBool::new(false),
            cancelled: AtomicBool::new(false),
            state: Mutex::new(State {
                claimed: false,
                value: Value::Empty,
                waker: None,
                waiters: None,
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
        self.try_complete(value).is_ok()
    }

    /// True if the slot was claimed by [`cancel`](Slot::cancel).
    pub(crate) fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }

    /// As [`complete`](Slot::complete), marking the slot cancelled.
    pub(crate) fn cancel(&self, value: V) -> bool {
        self.claim(value, true).is_ok()
    }

    /// Stores `value` unless the slot was already claimed, else gives it back.
    pub(crate) fn try_complete(&self, value: V) -> Result<(), V> {
        self.claim(value, false)
    }

    fn claim(&self, value: V, cancel: bool) -> Result<(), V> {
        let mut st = lock(&self.state);
        if st.claimed {
            return Err(value);
        }
        st.claimed = true;
        if cancel {
            self.cancelled.store(true, Ordering::Release);
        }
        self.claimed.store(true, Ordering::Release);
        match st.take_callbacks() {
            // The common case: one critical section claims and stores.
            None => self.store(st, value),
            Some(callbacks) => {
                drop(st);
                self.run_then_store(callbacks, value);
            }
        }
        Ok(())
    }

    /// Runs the callbacks outside the lock (they may take long or touch other promises),
    /// then stores the value.
    fn run_then_store(&self, mut callbacks: Vec<Callback<V>>, value: V) {
        loop {
            for cb in callbacks.drain(..) {
                run_callback(cb, &value);
            }
            let mut st = lock(&self.state);
            match st.take_callbacks() {
                None => return self.store(st, value),
                // Registered while we ran the others: run them too.
                Some(more) => callbacks = more,
            }
        }
    }

    fn store(&self, mut st: MutexGuard<'_, State<V>>, value: V) {
        st.value = Value::Full(value.stash());
        self.ready.store(true, Ordering::Release);
        let waker = st.waker.take();
        // Only parked threads are left: callbacks ran before the value was stored.
        let waiters = st.waiters.take();
        drop(st);
        if let Some(w) = waker {
            w.wake();
        }
        for t in waiters.into_iter().flat_map(|w| w.parked) {
            t.unpark();
        }
    }

    /// Runs `cb` with the value once it is there (at once if it already is).
    ///
    /// Returns `false` (and drops `cb`) if the value was already moved to a consumer.
    pub(crate) fn on_done(&self, cb: Callback<V>) -> bool {
        let mut st = lock(&self.state);
        match std::mem::replace(&mut st.value, Value::Empty) {
            Value::Taken => {
                st.value = Value::Taken;
                false
            }
            Value::Full(stored) => {
                // Runs under the lock: the callback must not register on the same slot.
                let v = V::unstash(stored);
                run_callback(cb, &v);
                st.value = Value::Full(v.stash());
                true
            }
            Value::Empty => {
                st.waiters().callbacks.push(cb);
                true
            }
        }
    }

    /// Takes the value if it is there, else registers `waker`.
    pub(crate) fn poll_take(&self, waker: &Waker) -> Option<V> {
        let mut st = lock(&self.state);
        match std::mem::replace(&mut st.value, Value::Taken) {
            Value::Full(stored) => return Some(V::unstash(stored)),
            Value::Taken => {
                panic!("a concurry Promise was polled again after it returned its result")
            }
            Value::Empty => st.value = Value::Empty,
        }
        match &st.waker {
            Some(w) if w.will_wake(waker) => {}
            _ => st.waker = Some(waker.clone()),
        }
        None
    }

    /// True once a consumer moved the value out.
    pub(crate) fn is_taken(&self) -> bool {
        self.is_ready() && matches!(lock(&self.state).value, Value::Taken)
    }

    /// Takes the value if it is there.
    pub(crate) fn try_take(&self) -> Option<V> {
        if !self.is_ready() {
            return None;
        }
        let mut st = lock(&self.state);
        match std::mem::replace(&mut st.value, Value::Taken) {
            Value::Full(stored) => Some(V::unstash(stored)),
            other => {
                st.value = other;
                None
            }
        }
    }

    /// Blocks the current thread until the value is there or `deadline` passes.
    pub(crate) fn wait(&self, deadline: Option<std::time::Instant>) -> bool {
        // A short spin first: a worker on another core usually answers within microseconds,
        // and parking costs a system call on both sides; how long is adaptive (see `spin`).
        #[cfg(not(concurry_loom))]
        if spin::until(|| self.is_ready()) {
            return true;
        }
        loop {
            {
                let mut st = lock(&self.state);
                if !matches!(st.value, Value::Empty) {
                    return true;
                }
                let me = thread::current();
                let parked = &mut st.waiters().parked;
                if !parked.iter().any(|t| t.id() == me.id()) {
                    parked.push(me);
                }
            }
            match deadline {
                None => thread::park(),
                #[cfg(not(concurry_loom))]
                Some(d) => {
                    let now = std::time::Instant::now();
                    if now >= d {
                        let me = thread::current().id();
                        if let Some(w) = lock(&self.state).waiters.as_mut() {
                            w.parked.retain(|t| t.id() != me);
                        }
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

/// Spinning before parking, adaptive per thread: spinning pays only while the answer comes
/// within the spin, and costs the waiting thread's CPU (and, on a loaded machine, the CPU
/// the answering thread needs) when it does not.
#[cfg(not(concurry_loom))]
mod spin {
    use std::cell::Cell;
    use std::time::{Duration, Instant};

    /// The longest spin: a worker that is awake answers well within it; one that parked
    /// takes longer to wake than parking here costs.
    const MAX: Duration = Duration::from_micros(4);
    /// Below this a spin is not worth starting: spinning turns off.
    const MIN: Duration = Duration::from_nanos(250);
    /// With spinning off, every this-many-th wait spins again (at `MIN`), to notice when
    /// answers come fast again.
    const PROBE_EVERY: u32 = 32;

    thread_local! {
        /// How long this thread's next spin may last (zero: off).
        static BUDGET: Cell<Duration> = const { Cell::new(MAX) };
        /// Waits without a spin since spinning turned off.
        static SKIPPED: Cell<u32> = const { Cell::new(0) };
    }

    /// Spins until `ready` or this thread's budget runs out; true if `ready`. A spin that
    /// caught the answer doubles the budget (up to `MAX`), one that did not halves it (below
    /// `MIN`: off, with a probe every `PROBE_EVERY` waits).
    pub(super) fn until(ready: impl Fn() -> bool) -> bool {
        let mut budget = BUDGET.get();
        if budget.is_zero() {
            let skipped = SKIPPED.get() + 1;
            if skipped < PROBE_EVERY {
                SKIPPED.set(skipped);
                return false;
            }
            SKIPPED.set(0);
            budget = MIN;
        }
        let start = Instant::now();
        loop {
            for _ in 0..32 {
                if ready() {
                    BUDGET.set((budget * 2).min(MAX));
                    return true;
                }
                std::hint::spin_loop();
            }
            if start.elapsed() >= budget {
                break;
            }
        }
        let half = budget / 2;
        BUDGET.set(if half < MIN { Duration::ZERO } else { half });
        false
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn long_waits_turn_spinning_off_and_a_fast_answer_turns_it_back_on() {
            std::thread::spawn(|| {
                assert_eq!(BUDGET.get(), MAX, "a new thread spins");
                // Answers that never come within the spin: the budget halves each time,
                // then spinning is off.
                let mut spins = 0;
                while !BUDGET.get().is_zero() {
                    assert!(!until(|| false));
                    spins += 1;
                    assert!(spins < 10, "still spinning after {spins} missed answers");
                }
                // Off: the next waits return at once without calling `ready` ...
                for _ in 1..PROBE_EVERY {
                    assert!(!until(|| panic!("spun while spinning is off")));
                }
                // ... until a probe, which catches a fast answer and turns spinning back on.
                assert!(until(|| true));
                assert_eq!(BUDGET.get(), MIN * 2);
                while BUDGET.get() < MAX {
                    assert!(until(|| true));
                }
                assert_eq!(BUDGET.get(), MAX, "capped");
            })
            .join()
            .unwrap();
        }
    }
}

/// Runs one callback, containing its panic: a callback runs on whatever thread completes the
/// promise (a worker, the runtime), which must go on storing the value and serving calls.
/// The panic is reported through `tracing` and the other callbacks still run.
fn run_callback<V>(cb: Callback<V>, value: &V) {
    if let Err(panic) = catch_unwind(AssertUnwindSafe(|| cb(value))) {
        tracing::error!(
            panic = %crate::error::panic_message(&*panic),
            "a promise's on_done callback panicked; the panic was contained and the promise \
             keeps its result"
        );
    }
}

/// Loom models use plain numbers.
#[cfg(all(test, concurry_loom))]
impl Stash for u32 {
    type Stored = u32;

    fn stash(self) -> u32 {
        self
    }

    fn unstash(stored: u32) -> u32 {
        stored
    }
}
