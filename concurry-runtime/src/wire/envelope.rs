//! [`Envelope`]: one message on a channel, with its [`Kind`] and correlation id.

use super::error::WireError;

/// The first four bytes of every envelope: `CNCY`.
pub const MAGIC: [u8; 4] = *b"CNCY";

/// The version of the wire protocol this build speaks. Peers of another version are refused
/// with [`WireError::VersionMismatch`] at the first frame.
///
/// Version 2: `Fault` gained `Constructor` (a constructor's error, typed) and `TooLarge`.
/// Version 3: `Hello` carries the worker type's schema fingerprint; a `Call`'s payload
/// starts with its [`CallHeader`](super::CallHeader).
/// Version 4: `Cancel` (a call's cancel reaches the worker running it) and
/// `Fault::Cancelled` (a call cancelled before it started).
pub const VERSION: u8 = 4;

/// What an envelope carries. The payload's type follows from the kind (see each variant).
///
/// ```
/// use concurry::wire::Kind;
/// assert_eq!(Kind::from_byte(Kind::Call as u8).unwrap(), Kind::Call);
/// assert!(Kind::from_byte(200).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
#[non_exhaustive]
pub enum Kind {
    /// Child → parent, first message: a [`Hello`](super::Hello).
    Hello = 1,
    /// Parent → child: the worker's constructor arguments (the worker type's `Args`).
    Init = 2,
    /// Child → parent: the constructor ran; payload `Result<(), Fault>`.
    Ready = 3,
    /// Parent → child: one call, its [`CallHeader`](super::CallHeader) then its request (the
    /// worker type's `Request`); the id correlates the reply.
    Call = 4,
    /// Child → parent: a call's outcome, `Result<Response, Fault>`, with the call's id.
    Reply = 5,
    /// Parent → child: finish the calls received so far, then exit. Empty payload.
    Shutdown = 6,
    /// Either way: the peer refuses the channel; payload a [`Fault`](super::Fault). The
    /// sender closes the channel after it.
    Fault = 7,
    /// Worker → pool owner: acquire limits of the pool's set (the keys and amounts, and a
    /// timeout); the id names the lease.
    LimitAcquire = 8,
    /// Worker → pool owner: correct a lease's charges, `Vec<(String, u64)>`.
    LimitUpdate = 9,
    /// Worker → pool owner: give a lease back. Empty payload, no reply.
    LimitRelease = 10,
    /// Pool owner → worker: the answer to `LimitAcquire`, `LimitUpdate` or `LimitStats`,
    /// with its id; the payload is the limit layer's reply (an outcome carrying a typed
    /// `LimitError`, or the set's stats).
    LimitReply = 11,
    /// Worker → pool owner: a snapshot of the pool's limits (their name, keys and stats, as
    /// `concurry::limits()` shows them in a child). Empty payload; the answer is a
    /// `LimitReply` with the same id.
    LimitStats = 12,
    /// Parent → worker: the call with this id was cancelled (its promise, the scope it was
    /// submitted in, or its deadline).
    /// Empty payload, no reply of its own: a running call sees it at its next checkpoint
    /// (`check_cancelled`, `cancelled`) and its reply follows as usual; a call not started
    /// yet is answered `Fault::Cancelled` without running; a finished or unknown id is
    /// ignored.
    Cancel = 13,
}

impl Kind {
    /// Every kind, in byte order.
    pub const ALL: [Kind; 13] = [
        Kind::Hello,
        Kind::Init,
        Kind::Ready,
        Kind::Call,
        Kind::Reply,
        Kind::Shutdown,
        Kind::Fault,
        Kind::LimitAcquire,
        Kind::LimitUpdate,
        Kind::LimitRelease,
        Kind::LimitReply,
        Kind::LimitStats,
        Kind::Cancel,
    ];

    /// The kind encoded by `byte`.
    ///
    /// # Errors
    ///
    /// [`WireError::UnknownKind`] for a byte no kind of this version uses.
    pub fn from_byte(byte: u8) -> Result<Kind, WireError> {
        Kind::ALL
            .into_iter()
            .find(|k| *k as u8 == byte)
            .ok_or(WireError::UnknownKind { found: byte })
    }
}

/// One message: a [`Kind`], a correlation id and an encoded payload.
///
/// The id ties a reply to its call, so many calls can be in flight on one channel and their
/// replies may arrive in any order. Control messages use id 0.
///
/// ```
/// use concurry::wire::{Envelope, Kind};
/// let env = Envelope::new(Kind::Call, 7, vec![1, 2, 3]);
/// assert_eq!((env.kind, env.id, env.payload.len()), (Kind::Call, 7, 3));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// What the payload is.
    pub kind: Kind,
    /// The correlation id.
    pub id: u64,
    /// The payload, encoded with [`encode`](super::encode).
    pub payload: Vec<u8>,
}

impl Envelope {
    /// An envelope.
    pub fn new(kind: Kind, id: u64, payload: Vec<u8>) -> Self {
        Envelope { kind, id, payload }
    }
}
