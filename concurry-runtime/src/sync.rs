//! The one place that imports threads, locks and atomics, so loom can replace them.
//!
//! Under `--cfg loom` the types come from loom and the model tests in `future/tests` explore
//! every interleaving of the small synchronisation core (the result slot of a future).

#[cfg(not(concurry_loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
#[cfg(not(concurry_loom))]
pub(crate) use std::sync::{Arc, Condvar, Mutex, MutexGuard};
#[cfg(not(concurry_loom))]
pub(crate) use std::thread;

/// std's `Arc`, even under loom: [`std::task::Waker::from`] takes only this one (wakers that
/// report which promise of a set became ready, in `future::combinators`).
pub(crate) use std::sync::Arc as WakerArc;
/// The weak side of [`WakerArc`].
pub(crate) use std::sync::Weak as WakerWeak;
/// The weak side of [`DynArc`].
pub(crate) use std::sync::Weak as DynWeak;

/// std's `Arc`, even under loom, for a promise's cell: one allocation seen through two trait
/// objects (the promise's view and the worker's), made by unsized coercion, which loom's `Arc`
/// cannot do. The slot inside keeps its loom-modelled lock and atomics.
pub(crate) use std::sync::Arc as DynArc;

/// std's `OnceLock`, even under loom (which has none): process-wide state created once, such
/// as the shared progress display in `progress`.
pub(crate) use std::sync::OnceLock;

#[cfg(concurry_loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
#[cfg(concurry_loom)]
pub(crate) use loom::sync::{Arc, Condvar, Mutex, MutexGuard};
#[cfg(concurry_loom)]
pub(crate) use loom::thread;

/// Locks a mutex, ignoring poisoning: every critical section in this crate leaves the data
/// consistent before anything that could panic runs (user code never runs under our locks).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    #[cfg(not(concurry_loom))]
    {
        m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
    #[cfg(concurry_loom)]
    {
        m.lock().unwrap()
    }
}

/// Sleeps the current thread (under loom: yields, since loom has no time).
pub(crate) fn sleep(d: std::time::Duration) {
    #[cfg(not(concurry_loom))]
    {
        std::thread::sleep(d);
    }
    #[cfg(concurry_loom)]
    {
        let _ = d;
        loom::thread::yield_now();
    }
}

/// std's primitives even under loom, for code no loom model can cover: process mode, whose
/// other side is an OS process behind a socket.
pub(crate) mod os {
    pub(crate) use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    pub(crate) use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
    /// Threads loom cannot model either (`run_sync`'s helper: a scoped OS thread).
    pub(crate) use std::thread;

    /// Locks a mutex, ignoring poisoning (as [`lock`](super::lock)).
    pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
        m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Sleeps the current thread, even under loom.
    pub(crate) fn sleep(d: std::time::Duration) {
        std::thread::sleep(d);
    }
}
