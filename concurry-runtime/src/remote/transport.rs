//! What the supervisor needs of a transport: [`Transport`] places a worker and hands back a
//! [`Peer`] (the way out) and an [`Inbound`] stream (the way in). Process mode is one
//! transport (a child process over a socket); the loopback transport, threads of this
//! process over channels, is another.

use std::time::Duration;

use crate::sync::os::Arc;
use crate::wire::{CallHeader, Envelope, Kind, WireError};

/// Where workers are placed: a child process, a thread (loopback), later a cluster node.
pub(crate) trait Transport: Send + Sync + 'static {
    /// Starts a worker of the registered type `worker` (of schema fingerprint `schema`:
    /// a worker built with another is refused, [`PlaceError::Schema`]), built from `args`
    /// (its constructor's arguments, encoded), and waits until it is built. `stopped` is
    /// polled while waiting, so a stop interrupts a slow start.
    fn place(
        &self,
        worker: &'static str,
        schema: u64,
        args: &[u8],
        stopped: &dyn Fn() -> bool,
    ) -> Result<Placed, PlaceError>;
}

/// A placed worker: the way to it, and the stream of what it sends.
pub(crate) struct Placed {
    pub(crate) peer: Arc<dyn Peer>,
    pub(crate) inbound: Box<dyn Inbound>,
}

/// The way to one placed worker.
pub(crate) trait Peer: Send + Sync + 'static {
    /// What names the peer in messages (a process id, a thread number).
    fn id(&self) -> u32;

    /// Where the peer runs, when that is worth saying (a cluster node's name); `None` for
    /// a peer on this machine.
    fn location(&self) -> Option<String> {
        None
    }

    /// Sends one envelope; never blocks on a busy peer. `idle` says that no call is in
    /// flight on it (the peer is waiting to read), so the bytes may be written at once. A
    /// send that fails kills the peer: its inbound stream then ends.
    fn send(&self, kind: Kind, id: u64, payload: Vec<u8>, idle: bool);

    /// Sends one call: its header, then its request. As [`send`](Peer::send) otherwise.
    fn call(&self, id: u64, head: CallHeader, request: Vec<u8>, idle: bool);

    /// Asks the worker to finish the calls it has and end (its inbound stream ends then).
    fn shutdown(&self);

    /// Ends the worker now (a timeout, a protocol error): its inbound stream ends. `why` is
    /// kept for [`end`](Peer::end).
    fn kill(&self, why: String);

    /// Once its inbound stream ended: waits for the worker to be gone (at most `grace` when
    /// `stopping`, else it is killed at once), and says how it ended.
    fn end(&self, stopping: bool, grace: Duration) -> Ending;
}

/// How a peer ended.
pub(crate) struct Ending {
    /// Its status (an exit status), if known.
    pub(crate) status: Option<String>,
    /// Why we killed it, if we did.
    pub(crate) killed: Option<String>,
}

/// What a placed worker sends, one envelope at a time.
pub(crate) trait Inbound: Send + 'static {
    /// The next envelope; `Ok(None)` once the peer closed the stream.
    ///
    /// # Errors
    ///
    /// The stream broke ([`WireError::is_disconnect`]) or carried garbage.
    fn next(&mut self) -> Result<Option<Envelope>, WireError>;

    /// True if the stream is better read by a task of the library runtime, through
    /// [`next_async`](Inbound::next_async), than by a thread of its own (an async client's
    /// subscription: a reply then resolves its call where it was received, with no hop).
    fn reads_async(&self) -> bool {
        false
    }

    /// The next envelope, as [`next`](Inbound::next) without blocking; `None` if the stream
    /// cannot be read so ([`reads_async`](Inbound::reads_async) is false).
    fn next_async(&mut self) -> Option<NextAsync<'_>> {
        None
    }
}

/// What [`Inbound::next_async`] waits for.
pub(crate) type NextAsync<'a> = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<Option<Envelope>, WireError>> + Send + 'a>,
>;

/// Why a worker could not be placed.
#[derive(Debug)]
pub(crate) enum PlaceError {
    /// The worker's constructor panicked: restarting will not help.
    Init(String),
    /// The worker's constructor returned its error (`error`, encoded): nor will it here.
    Constructor { message: String, error: Vec<u8> },
    /// The worker was built from another definition of the type
    /// ([`WireError::SchemaMismatch`]): nor will a restart help.
    Schema(WireError),
    /// Anything else: the process, the socket, the handshake.
    Other(String),
    /// A stop came while the worker started.
    Stopped,
}

/// The pool's limits as one placed worker reaches them: the supervisor hands it the limit
/// messages its peer sends.
pub(crate) trait LimitHost: Send + Sync + 'static {
    /// Answers (now or later) one limit message, replying through `peer`.
    ///
    /// # Errors
    ///
    /// The message was garbage: the peer is then treated as broken.
    fn on_message(&self, env: Envelope, peer: &Arc<dyn Peer>) -> Result<(), WireError>;

    /// The peer is gone: its leases are given back, its waits end.
    fn close(&self);
}

/// Makes one [`LimitHost`] per placed worker.
pub(crate) type Hosts = Arc<dyn Fn() -> Arc<dyn LimitHost> + Send + Sync>;
