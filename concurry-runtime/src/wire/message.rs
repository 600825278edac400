//! The payloads of control envelopes ([`Hello`], [`Fault`], [`LimitRequest`],
//! [`LimitFault`]), shared by every transport.

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
}

/// A worker's request for units of its pool's limits, hosted by the pool's owner.
///
/// ```
/// use concurry::wire::LimitRequest;
/// let r = LimitRequest { amounts: vec![("tokens".into(), 300)], timeout_ms: Some(1000) };
/// let back: LimitRequest = concurry::wire::decode(&concurry::wire::encode(&r, "limits").unwrap(), "limits").unwrap();
/// assert_eq!(back, r);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitRequest {
    /// Keys and amounts, as given to `LimitSet::acquire`.
    pub amounts: Vec<(String, u64)>,
    /// Give up after this many milliseconds (`None`: wait as long as it takes).
    pub timeout_ms: Option<u64>,
}

/// Why a limit request failed, on the wire: each variant carries the fields of the
/// [`LimitError`](crate::LimitError) variant of the same name.
///
/// ```
/// use concurry::LimitError;
/// use concurry::wire::LimitFault;
/// let e = LimitError::WouldBlock { keys: "tokens".into() };
/// assert_eq!(LimitError::from(LimitFault::from(e.clone())), e);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
#[allow(missing_docs)]
pub enum LimitFault {
    UnknownKey {
        key: String,
        known: String,
    },
    ExceedsCapacity {
        key: String,
        requested: u64,
        capacity: u64,
    },
    Timeout {
        keys: String,
    },
    WouldBlock {
        keys: String,
    },
    Invalid {
        key: String,
        reason: String,
    },
    NotUpdatable {
        key: String,
        reason: String,
    },
    MissingAmount {
        keys: Vec<String>,
    },
}

impl From<crate::LimitError> for LimitFault {
    fn from(e: crate::LimitError) -> Self {
        use crate::LimitError as E;
        match e {
            E::UnknownKey { key, known } => LimitFault::UnknownKey { key, known },
            E::ExceedsCapacity {
                key,
                requested,
                capacity,
            } => LimitFault::ExceedsCapacity {
                key,
                requested,
                capacity,
            },
            E::Timeout { keys } => LimitFault::Timeout { keys },
            E::WouldBlock { keys } => LimitFault::WouldBlock { keys },
            E::Invalid { key, reason } => LimitFault::Invalid { key, reason },
            E::NotUpdatable { key, reason } => LimitFault::NotUpdatable { key, reason },
            E::MissingAmount { keys } => LimitFault::MissingAmount { keys },
        }
    }
}

impl From<LimitFault> for crate::LimitError {
    fn from(f: LimitFault) -> Self {
        use crate::LimitError as E;
        match f {
            LimitFault::UnknownKey { key, known } => E::UnknownKey { key, known },
            LimitFault::ExceedsCapacity {
                key,
                requested,
                capacity,
            } => E::ExceedsCapacity {
                key,
                requested,
                capacity,
            },
            LimitFault::Timeout { keys } => E::Timeout { keys },
            LimitFault::WouldBlock { keys } => E::WouldBlock { keys },
            LimitFault::Invalid { key, reason } => E::Invalid { key, reason },
            LimitFault::NotUpdatable { key, reason } => E::NotUpdatable { key, reason },
            LimitFault::MissingAmount { keys } => E::MissingAmount { keys },
        }
    }
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
