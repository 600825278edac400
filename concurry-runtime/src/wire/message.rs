//! The payloads of control envelopes ([`Hello`], [`Fault`]), shared by every transport.

use serde::{Deserialize, Serialize};

/// The first message a worker child sends: who it is, so the parent can check it spawned the
/// right binary and is talking to its own child.
///
/// ```
/// use concurry::wire::Hello;
/// let h = Hello { worker: "Echo".into(), pid: 42, token: 7 };
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
    /// The constructor returned an error.
    #[error("the worker could not be created: {message}")]
    Init {
        /// The constructor's error, as text.
        message: String,
    },
    /// The peer could not decode what it was sent, or refused the channel.
    #[error("protocol error: {message}")]
    Protocol {
        /// What was wrong.
        message: String,
    },
}
