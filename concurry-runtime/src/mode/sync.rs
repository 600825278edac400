//! Sync mode: the instance lives in the pool and each call runs at submit time on the
//! caller's thread.

use super::construct;
use crate::error::Error;
use crate::job::{Call, Job, run_exclusive, run_shared};
use crate::pool::backend::{Backend, Gate, Room, Shared, Stopping};
use crate::runtime::block_on;
use crate::sync::{Mutex, lock};
use crate::worker::Worker;

/// The one in-line worker of a sync-mode pool.
pub(crate) struct Inline<W> {
    instance: Mutex<Option<W>>,
}

impl<W: Worker> Inline<W> {
    pub(crate) fn new(args: W::Args) -> Result<Self, Error<W::InitError>> {
        let w = construct::<W>(args).map_err(super::InitFailure::into_error)?;
        Ok(Inline {
            instance: Mutex::new(Some(w)),
        })
    }

    /// Runs `call` now, on this thread.
    fn run(&self, call: Call<W>, shared: &Shared) {
        shared.counters[0].on_dispatch();
        let mut guard = lock(&self.instance);
        match guard.as_mut() {
            None => call.fail(Error::Stopped),
            Some(w) => run_call(call, w, shared, 0),
        }
        drop(guard);
        shared.finished(0);
    }
}

impl<W: Worker> Backend<W> for Inline<W> {
    fn dispatch(&self, gate: &Gate<'_>, call: Call<W>, _: Room) {
        self.run(call, gate.shared);
    }

    fn stop(&self, _: Stopping<'_>) -> Result<(), Error> {
        drop(lock(&self.instance).take());
        Ok(())
    }

    fn queues(&self) -> bool {
        false
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// Runs one call on `w` on the current thread (async methods are driven to completion here).
pub(crate) fn run_call<W>(call: Call<W>, w: &mut W, shared: &Shared, index: usize) {
    let span = tracing::debug_span!("concurry.call", worker = %shared.name, method = call.method, attempt = call.attempt, index);
    let _entered = span.enter();
    match call.job {
        Job::Blocking(j) => j.take().run(w),
        Job::SharedBlocking(j) => j.take().run(w),
        Job::Exclusive(j) => block_on(run_exclusive(j.take(), w)),
        Job::Shared(j) => block_on(run_shared(j.take(), &*w)),
    }
}
