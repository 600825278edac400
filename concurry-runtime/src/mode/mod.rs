//! Where workers run: one module per [`Mode`](crate::Mode), plus on-demand workers.

pub(crate) mod asyncio;
pub(crate) mod on_demand;
pub(crate) mod process;
pub(crate) mod sync;
pub(crate) mod thread;

use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::error::{Error, panic_message};
use crate::worker::Worker;

/// Why a worker has no instance.
pub(crate) enum InitFailure<E> {
    /// The constructor returned its error.
    Error(E),
    /// The constructor panicked, or the worker could not be started.
    Other(String),
}

impl<E: std::fmt::Display> InitFailure<E> {
    /// For `init`: the constructor's own error stays typed.
    pub(crate) fn into_error(self) -> Error<E> {
        match self {
            InitFailure::Error(e) => Error::Method(e),
            InitFailure::Other(message) => Error::Init { message },
        }
    }

    /// For a call whose on-demand worker could not be built.
    pub(crate) fn into_call_error(self) -> Error {
        match self {
            InitFailure::Error(e) => Error::Init {
                message: e.to_string(),
            },
            InitFailure::Other(message) => Error::Init { message },
        }
    }
}

/// Runs the user's constructor, catching a panic.
pub(crate) fn construct<W: Worker>(args: W::Args) -> Result<W, InitFailure<W::InitError>> {
    match catch_unwind(AssertUnwindSafe(|| W::construct(args))) {
        Ok(Ok(w)) => Ok(w),
        Ok(Err(e)) => Err(InitFailure::Error(e)),
        Err(payload) => Err(InitFailure::Other(format!(
            "the constructor panicked: {}",
            panic_message(&*payload)
        ))),
    }
}

/// What each starting worker reports: its instance is built, or why not.
pub(crate) type Ready<E> = Result<(), InitFailure<E>>;

/// Waits for `n` start-up reports; the first failure wins (`what` names the worker kind for
/// the message when one ends without reporting).
pub(crate) fn await_ready<E>(
    ready: &crossbeam_channel::Receiver<Ready<E>>,
    n: usize,
    what: &str,
) -> Option<InitFailure<E>> {
    let mut failure = None;
    for _ in 0..n {
        match ready.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                failure.get_or_insert(e);
            }
            Err(_) => {
                failure.get_or_insert(InitFailure::Other(format!(
                    "a worker {what} ended during start-up"
                )));
                break;
            }
        }
    }
    failure
}

/// Sends the worker's index on `exits` when dropped, however the worker ends.
pub(crate) struct ExitGuard {
    pub(crate) index: usize,
    pub(crate) exits: crossbeam_channel::Sender<usize>,
}

impl Drop for ExitGuard {
    fn drop(&mut self) {
        let _ = self.exits.send(self.index);
    }
}
