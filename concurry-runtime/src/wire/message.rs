//! The payloads of control envelopes ([`Hello`], [`Fault`]), shared by every transport.
//! (Limit messages are the limit layer's own serde types.)

use serde::{Deserialize, Serialize};

/// The first message a worker child sends: who it is, so the parent can check it spawned the
/// right binary and is talking to its own child.
///
/// ```
/// use concurry::wire::Hello;
/// let h = Hello { worker: "Echo".into(), pid: 42, token: 7, schema: 0x5eed };
/// let back: Hello = concurry::wire::decode(&concurry::wire::encode(&h, "hello").unwrap(), "hello").unwrap();
/// assert_eq!(back, h);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The registered name of the worker type the child serves.
    pub worker: String,
    /// The child's process id.
    pub pid: u32,
    /// The secret the parent gave the child, proving the connection comes from it.
    pub token: u64,
    /// The worker type's schema fingerprint in the child's build (`RemoteWorker::SCHEMA`):
    /// the parent refuses a child whose fingerprint differs from its own.
    pub schema: u64,
}

/// Why the far side could not produce a value: carried by `Ready`, `Reply` and `Fault`
/// envelopes.
///
/// ```
/// use concurry::wire::Fault;
/// let f = Fault::Panicked { message: "boom".into() };
/// assert_eq!(f.to_string(), "the worker method panicked: boom");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum Fault {
    /// The method (or constructor) panicked.
    #[error("the worker method panicked: {message}")]
    Panicked {
        /// The panic message.
        message: String,
    },
    /// The constructor panicked (or its error could not be encoded).
    #[error("the worker could not be created: {message}")]
    Init {
        /// What happened, as text.
        message: String,
    },
    /// The constructor returned its error: `error` is its encoding (the worker type's
    /// `InitError`), which the parent decodes into `Error::Method`.
    #[error("the worker could not be created: {message}")]
    Constructor {
        /// The constructor's error, as text (for logs, and a respawn that fails).
        message: String,
        /// The constructor's error, encoded.
        error: Vec<u8>,
    },
    /// The reply is larger than the channel's `max_message_size`: the call fails with
    /// [`WireError::TooLarge`](crate::wire::WireError::TooLarge), the child serves on.
    #[error("the reply of {len} bytes exceeds max_message_size ({max} bytes)")]
    TooLarge {
        /// The reply's frame length.
        len: u64,
        /// The channel's maximum.
        max: u64,
    },
    /// The peer could not decode what it was sent, or refused the channel.
    #[error("protocol error: {message}")]
    Protocol {
        /// What was wrong.
        message: String,
    },
    /// The call was cancelled (a `Cancel` came) before it started: it did not run.
    #[error("the call was cancelled before it started")]
    Cancelled,
    /// The call's deadline (its header's budget) had passed when its turn came: it did not
    /// run. The caller sees [`Error::Timeout`](crate::Error::Timeout).
    #[error("the call's deadline passed {late_us} us before it could run; it did not run")]
    Expired {
        /// How late it was, in microseconds.
        late_us: u64,
    },
    /// The call reached the pool's owner (a looked-up cluster pool), which could not run it:
    /// the instance was lost, the pool stopped. The caller sees
    /// [`Error::WorkerLost`](crate::Error::WorkerLost) with `message`.
    #[error("{message}")]
    Lost {
        /// What happened, as text.
        message: String,
    },
}

/// The constructor error of a [`RemoteWorker`](crate::RemoteWorker) whose constructor cannot
/// fail: a type with no value, like [`std::convert::Infallible`], that can cross the wire
/// (std's `Infallible` is not a serde type). `#[worker(remote)]` uses it for a constructor
/// returning `Self`; it converts into `Infallible`, the in-process worker's error.
///
/// ```
/// use concurry::{ProcessWorker, RemoteWorker};
/// use concurry::wire::Never;
///
/// struct Nop;
/// impl RemoteWorker for Nop {
///     const NAME: &'static str = "docs::Never::Nop";
///     type Args = (); type Request = (); type Response = ();
///     type InitError = Never;
///     fn construct((): ()) -> Result<Self, Never> { Ok(Nop) }
///     fn dispatch(&mut self, (): ()) {}
/// }
/// concurry::register_remote!(Nop);
///
/// let w = ProcessWorker::<Nop>::spawn(()).unwrap();
/// w.call(()).result().unwrap();
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Never {}

impl std::fmt::Display for Never {
    fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {}
    }
}

impl std::error::Error for Never {}

impl From<Never> for std::convert::Infallible {
    fn from(never: Never) -> Self {
        match never {}
    }
}

impl From<std::convert::Infallible> for Never {
    fn from(never: std::convert::Infallible) -> Self {
        match never {}
    }
}
