//! Where workers run: one module per [`Mode`](crate::Mode), plus on-demand workers. Each is
//! a [`Backend`] of the pool; this file picks one per the options ([`start`]).

pub(crate) mod asyncio;
pub(crate) mod on_demand;
pub(crate) mod process;
pub(crate) mod sync;
pub(crate) mod thread;

use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::error::{Error, panic_message};
use crate::job::{Call, Msg};
use crate::options::{Mode, PoolConfig};
use crate::pool::backend::{Admit, Backend, Gate, Room, Shared};
use crate::sync::Arc;
use crate::worker::Worker;

/// Starts the backend `config` asks for, its workers built from `args` (process mode has its
/// own start, for `#[worker(remote)]` types: `process::pool_backend`).
pub(crate) fn start<W: Worker>(
    config: &PoolConfig,
    args: W::Args,
    shared: &Arc<Shared>,
) -> Result<Box<dyn Backend<W>>, Error<W::InitError>> {
    let workers = config.workers();
    if config.mode == Mode::Process {
        return Err(process::not_remote(W::NAME).into());
    }
    if config.mode == Mode::Cluster {
        return Err(crate::error::ConfigError::new(
            "mode",
            "cluster",
            format!(
                "`{}` cannot run on a cluster node; mark its impl `#[worker(remote)]` (its \
                 constructor arguments, method arguments and returns must then be serde types), \
                 or use `Mode::Thread`",
                W::NAME
            ),
        )
        .into());
    }
    if config.on_demand {
        // Async: on the blocking pool of the runtime fixed workers would be tasks of.
        let runtime =
            (config.mode == Mode::Async).then(|| crate::runtime::pick(config.runtime.as_ref()));
        if let Some(h) = &runtime {
            drop(shared.home.set(h.clone()));
        }
        return Ok(Box::new(on_demand::OnDemand::new(
            config.mode,
            workers,
            args,
            shared.clone(),
            runtime,
        )));
    }
    Ok(match config.mode {
        Mode::Sync => Box::new(sync::Inline::new(args)?),
        Mode::Thread => Box::new(thread::start(workers, args, shared)?),
        Mode::Async => Box::new(asyncio::start(
            workers,
            crate::runtime::pick(config.runtime.as_ref()),
            args,
            shared,
        )?),
        Mode::Process | Mode::Cluster => unreachable!("refused above"),
    })
}

/// A worker's mailbox, in thread or async mode.
pub(crate) trait Mailbox<W>: Clone + Send + 'static {
    /// Sends `msg`; gives it back if the worker is gone.
    fn send_msg(&self, msg: Msg<W>) -> Result<(), Msg<W>>;

    /// Sends `call` (already counted on worker `idx`); fails it if the worker is gone.
    fn deliver(&self, shared: &Shared, idx: usize, call: Call<W>) {
        if let Err(msg) = self.send_msg(Msg::Call(call)) {
            shared.finished(idx);
            fail_msg(msg, Error::Stopped);
        }
    }
}

impl<W: 'static> Mailbox<W> for crossbeam_channel::Sender<Msg<W>> {
    #[inline]
    fn send_msg(&self, msg: Msg<W>) -> Result<(), Msg<W>> {
        self.send(msg).map_err(|e| e.0)
    }
}

impl<W: 'static> Mailbox<W> for tokio::sync::mpsc::UnboundedSender<Msg<W>> {
    #[inline]
    fn send_msg(&self, msg: Msg<W>) -> Result<(), Msg<W>> {
        self.send(msg).map_err(|e| e.0)
    }
}

/// Sends `call` to the mailbox of the worker `gate` admits it to.
pub(crate) fn route<W: 'static, M: Mailbox<W>>(
    gate: &Gate<'_>,
    room: Room,
    call: Call<W>,
    mailboxes: &[M],
) {
    match gate.admit(room) {
        Admit::Now(idx) => mailboxes[idx].deliver(gate.shared, idx, call),
        Admit::Stopped => call.fail(Error::Stopped),
        Admit::Later(idx, limit) => {
            let tx = mailboxes[idx].clone();
            gate.later(idx, limit, move |shared, placed| match placed {
                true => tx.deliver(shared, idx, call),
                false => call.fail(Error::Stopped),
            });
        }
    }
}

/// Fails `msg` with `error` if it is a call.
pub(crate) fn fail_msg<W>(msg: Msg<W>, error: Error) {
    if let Msg::Call(call) = msg {
        call.fail(error);
    }
}

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
