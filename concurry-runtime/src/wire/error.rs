//! [`WireError`]: everything that can be wrong with bytes read from a channel.

/// Why a frame could not be read, written or decoded.
///
/// Every variant names what was wrong, so a log line is enough to tell a crashed peer
/// (`Truncated`, `Io`) from a stray writer (`BadMagic`) or a stale binary
/// (`VersionMismatch`). Decoding never panics: any byte string yields a frame or one of these.
///
/// ```
/// use concurry::wire::{Frame, WireError};
///
/// let err = Frame::decode(b"\x20\x00\x00\x00CNCY").unwrap_err(); // 32 bytes announced, 4 sent
/// assert!(matches!(err, WireError::Truncated { .. }), "{err}");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The bytes ended inside a frame.
    #[error("truncated frame: the {what} needs {needed} bytes but only {got} arrived")]
    Truncated {
        /// The part that was cut short (`"length prefix"`, `"header"`, `"payload"`).
        what: &'static str,
        /// How many bytes that part needs.
        needed: usize,
        /// How many were there.
        got: usize,
    },
    /// A message (a request, a reply, a frame read) is larger than the channel's maximum,
    /// the pool's `max_message_size`.
    #[error(
        "message of {len} bytes exceeds max_message_size ({max} bytes); raise it with \
         `.max_message_size(..)` on the pool's options (or `ProcessConfig::max_message_size`); \
         in `Mode::Cluster` it is capped at the NATS server's `max_payload`: raise that in the \
         server's configuration, or send less per call"
    )]
    TooLarge {
        /// The message's length (its frame: payload plus the envelope header).
        len: u64,
        /// The channel's maximum.
        max: usize,
    },
    /// A frame announced a length too short to hold the envelope header.
    #[error("frame of {len} bytes is shorter than the {min}-byte envelope header")]
    TooShort {
        /// The announced length.
        len: usize,
        /// The header's size.
        min: usize,
    },
    /// The frame does not start with the envelope's magic bytes: the peer is not speaking
    /// this protocol (or the stream lost its framing).
    #[error(
        "bad magic {found:02x?}: expected {expected:02x?} (not a concurry peer, or framing lost)"
    )]
    BadMagic {
        /// The bytes found.
        found: [u8; 4],
        /// The magic of this protocol.
        expected: [u8; 4],
    },
    /// The peer speaks another version of the protocol (a different build of the binary).
    #[error(
        "wire protocol version mismatch: the peer speaks version {found}, this build speaks {expected}"
    )]
    VersionMismatch {
        /// The peer's version.
        found: u8,
        /// This build's version.
        expected: u8,
    },
    /// The two sides of a channel were built from different definitions of a remote type
    /// (its schema fingerprint, from `#[worker(remote)]` / `#[task(remote)]`, differs): found
    /// at hello, before any call.
    #[error(
        "schema mismatch for `{worker}`: this side has fingerprint {local:#018x}, the worker \
         {peer_id} has {peer:#018x}; both sides must be built from the same source"
    )]
    SchemaMismatch {
        /// The remote type's registered name.
        worker: String,
        /// This side's fingerprint.
        local: u64,
        /// The far side's fingerprint.
        peer: u64,
        /// The far side (a process id, for process mode).
        peer_id: u32,
    },
    /// The envelope's kind byte is not one this version knows.
    #[error("unknown envelope kind {found}")]
    UnknownKind {
        /// The kind byte found.
        found: u8,
    },
    /// The payload is not a valid encoding of the expected type.
    #[error("undecodable {what} payload: {message}")]
    Payload {
        /// What the payload should have been (a type name or a message name).
        what: &'static str,
        /// The decoder's complaint.
        message: String,
    },
    /// A payload could not be encoded (a serde `Serialize` impl failed).
    #[error("could not encode {what}: {message}")]
    Encode {
        /// What was being encoded.
        what: &'static str,
        /// The encoder's complaint.
        message: String,
    },
    /// A frame began but its remaining bytes did not arrive in time: the peer stalled
    /// mid-frame (or sent a truncated frame and went quiet).
    #[error("the peer stalled mid-frame: no byte for {timeout:?}")]
    Stalled {
        /// How long the reader waited for the rest of the frame.
        timeout: std::time::Duration,
    },
    /// The peer reported a protocol fault: it could not decode what it was sent, or could
    /// not send its answer (say, a reply above the frame limit).
    #[error("the peer reported a protocol fault: {message}")]
    Peer {
        /// The peer's complaint.
        message: String,
    },
    /// The channel itself failed.
    #[error("channel i/o failed: {0}")]
    Io(#[from] std::io::Error),
}

impl WireError {
    /// A copy, for failing several calls with one error (`io::Error` is not `Clone`, so
    /// an I/O failure is copied as its kind and message).
    pub(crate) fn duplicate(&self) -> WireError {
        match self {
            WireError::Truncated { what, needed, got } => WireError::Truncated {
                what,
                needed: *needed,
                got: *got,
            },
            WireError::TooLarge { len, max } => WireError::TooLarge {
                len: *len,
                max: *max,
            },
            WireError::TooShort { len, min } => WireError::TooShort {
                len: *len,
                min: *min,
            },
            WireError::BadMagic { found, expected } => WireError::BadMagic {
                found: *found,
                expected: *expected,
            },
            WireError::VersionMismatch { found, expected } => WireError::VersionMismatch {
                found: *found,
                expected: *expected,
            },
            WireError::SchemaMismatch {
                worker,
                local,
                peer,
                peer_id,
            } => WireError::SchemaMismatch {
                worker: worker.clone(),
                local: *local,
                peer: *peer,
                peer_id: *peer_id,
            },
            WireError::UnknownKind { found } => WireError::UnknownKind { found: *found },
            WireError::Payload { what, message } => WireError::Payload {
                what,
                message: message.clone(),
            },
            WireError::Encode { what, message } => WireError::Encode {
                what,
                message: message.clone(),
            },
            WireError::Stalled { timeout } => WireError::Stalled { timeout: *timeout },
            WireError::Peer { message } => WireError::Peer {
                message: message.clone(),
            },
            WireError::Io(e) => WireError::Io(std::io::Error::new(e.kind(), e.to_string())),
        }
    }

    /// True if the error says the peer went away (end of stream, broken pipe, reset), as
    /// opposed to the peer sending something wrong.
    ///
    /// ```
    /// use concurry::wire::WireError;
    /// let gone = WireError::Io(std::io::ErrorKind::BrokenPipe.into());
    /// assert!(gone.is_disconnect());
    /// assert!(!WireError::UnknownKind { found: 9 }.is_disconnect());
    /// ```
    pub fn is_disconnect(&self) -> bool {
        use std::io::ErrorKind::*;
        match self {
            WireError::Io(e) => matches!(
                e.kind(),
                UnexpectedEof | BrokenPipe | ConnectionReset | ConnectionAborted | NotConnected
            ),
            WireError::Truncated { .. } => true,
            _ => false,
        }
    }
}
