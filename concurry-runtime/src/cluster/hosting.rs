//! What a pool owner and a node say to place and end instances (`Mode::Cluster`), and how
//! envelopes travel as NATS messages.
//!
//! - Control, request/reply on `node.<node-id>.ctl`: [`Ctl::Spawn`] (type, schema
//!   fingerprint, owner, reply inbox, largest message, then the constructor's arguments as
//!   raw bytes) is answered [`CtlReply::Accepted`] (the instance's number; the serve loop's
//!   `Ready` follows on the inbox) or [`CtlReply::Refused`] with a typed [`Refusal`];
//!   [`Ctl::Stop`] ends an instance. `CCH` plus a version byte heads each, then postcard.
//! - Calls and their replies: one wire frame per NATS message (`CNCY`, the wire `VERSION`,
//!   kind, id, payload), pool owner → `inst.<node-id>.<n>`, node → the owner's inbox. An
//!   empty message on the inbox says the instance ended. Garbage is a typed `WireError`.
//!   What must reach a call while it runs (`Cancel`, a limit reply) goes to
//!   `inst.<node-id>.<n>.side` instead (see [`side`]): the node's shared connection reads
//!   those, the instance's own connection the rest.

use serde::{Deserialize, Serialize};

use crate::wire::{Envelope, Frame, Kind, WireError};

/// The first bytes of every control message.
const MAGIC: [u8; 3] = *b"CCH";
/// The version of the control messages; another is refused. 2: cancels and limit replies
/// travel on the instance's [`side`] subject.
pub(crate) const VERSION: u8 = 2;

/// The subject of the messages for instance subject `instance` that must reach a call while
/// it runs (`Kind::Cancel`, `Kind::LimitReply`): the node's shared connection reads them for
/// all of its instances (`inst.<node-id>.*.side`) while each instance's thread reads its own.
pub(crate) fn side(instance: &str) -> String {
    format!("{instance}.side")
}

/// A spawn request's fixed part (the constructor's arguments follow it as raw bytes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Spawn {
    /// The registered name of the worker type.
    pub(crate) worker: String,
    /// Its schema fingerprint in the owner's build.
    pub(crate) schema: u64,
    /// The owner's id: the node asks `owner.<id>` whether it is still there.
    pub(crate) owner: String,
    /// Where the instance's replies and control messages go.
    pub(crate) inbox: String,
    /// The largest frame either way.
    pub(crate) max: u64,
}

/// Owner → node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ctl {
    /// Build an instance from these constructor arguments.
    Spawn(Spawn, Vec<u8>),
    /// End instance `n` now (its calls are the owner's business already).
    Stop { instance: u64 },
}

#[derive(Serialize, Deserialize)]
enum CtlHead {
    Spawn(Spawn),
    Stop { instance: u64 },
}

/// Node → owner: the answer to a [`Ctl`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum CtlReply {
    /// The instance is being built; its `Ready` comes on the inbox.
    Accepted {
        /// The instance's number on the node (its subject's last token).
        instance: u64,
        /// The node's free slots now.
        free: u32,
        /// The node's heartbeat count now: beats numbered above it count this instance.
        seq: u64,
    },
    /// Not placed, and why.
    Refused(Refusal),
    /// The answer to `Stop`.
    Stopped,
}

/// Why a node does not take an instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub(crate) enum Refusal {
    #[error("node `{node}` does not host `{worker}` (it hosts: {hosts})")]
    UnknownType {
        node: String,
        worker: String,
        hosts: String,
    },
    #[error(
        "node `{node}` has another definition of `{worker}` (schema {theirs:#018x}, the pool's \
         is {ours:#018x}): build the node and the pool from the same source"
    )]
    Schema {
        node: String,
        worker: String,
        ours: u64,
        theirs: u64,
    },
    #[error("node `{node}` is full ({capacity} instances)")]
    Full { node: String, capacity: u32 },
    #[error("node `{node}` is draining")]
    Draining { node: String },
    #[error("node `{node}` could not read the request: {message}")]
    Malformed { node: String, message: String },
}

fn head() -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out
}

fn check_head(bytes: &[u8]) -> Result<&[u8], String> {
    if bytes.len() < 4 || bytes[..3] != MAGIC {
        return Err("not a concurry control message (no `CCH` header)".into());
    }
    if bytes[3] != VERSION {
        return Err(format!(
            "control message version {}, this build speaks {VERSION}",
            bytes[3]
        ));
    }
    Ok(&bytes[4..])
}

pub(crate) fn encode_ctl(ctl: &Ctl) -> Vec<u8> {
    let mut out = head();
    let (h, args) = match ctl {
        Ctl::Spawn(s, args) => (CtlHead::Spawn(s.clone()), Some(args)),
        Ctl::Stop { instance } => (
            CtlHead::Stop {
                instance: *instance,
            },
            None,
        ),
    };
    // A `Vec` sink cannot fail, and every field is a plain serde type.
    postcard::to_io(&h, &mut out).expect("control messages always encode");
    if let Some(args) = args {
        out.extend_from_slice(args);
    }
    out
}

pub(crate) fn decode_ctl(bytes: &[u8]) -> Result<Ctl, String> {
    let body = check_head(bytes)?;
    let (h, rest) = postcard::take_from_bytes::<CtlHead>(body)
        .map_err(|e| format!("malformed control message: {e}"))?;
    Ok(match h {
        CtlHead::Spawn(s) => Ctl::Spawn(s, rest.to_vec()),
        CtlHead::Stop { instance } => Ctl::Stop { instance },
    })
}

pub(crate) fn encode_reply(reply: &CtlReply) -> Vec<u8> {
    let mut out = head();
    postcard::to_io(reply, &mut out).expect("control replies always encode");
    out
}

pub(crate) fn decode_reply(bytes: &[u8]) -> Result<CtlReply, String> {
    postcard::from_bytes(check_head(bytes)?).map_err(|e| format!("malformed control reply: {e}"))
}

/// One envelope as one NATS message: its wire frame.
pub(crate) fn frame(kind: Kind, id: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + crate::wire::HEADER_LEN + payload.len());
    Frame::encode_parts(kind, id, payload, &mut out);
    out
}

/// The envelope a NATS message carries: exactly one frame of at most `max` bytes.
pub(crate) fn unframe(bytes: &[u8], max: usize) -> Result<Envelope, WireError> {
    let (env, used) = Frame::decode_with_max(bytes, max)?;
    if used != bytes.len() {
        return Err(WireError::Payload {
            what: "cluster message",
            message: format!(
                "{} bytes after the frame (one frame per message)",
                bytes.len() - used
            ),
        });
    }
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spawn() -> Ctl {
        Ctl::Spawn(
            Spawn {
                worker: "a::B".into(),
                schema: 7,
                owner: "o1".into(),
                inbox: "_INBOX.x".into(),
                max: 1 << 20,
            },
            vec![1, 2, 3],
        )
    }

    #[test]
    fn control_messages_round_trip() {
        for c in [spawn(), Ctl::Stop { instance: 9 }] {
            assert_eq!(decode_ctl(&encode_ctl(&c)).unwrap(), c);
        }
        for r in [
            CtlReply::Accepted {
                instance: 3,
                free: 1,
                seq: 2,
            },
            CtlReply::Refused(Refusal::Draining { node: "n".into() }),
            CtlReply::Stopped,
        ] {
            assert_eq!(decode_reply(&encode_reply(&r)).unwrap(), r);
        }
    }

    #[test]
    fn garbage_is_refused_typed() {
        assert!(decode_ctl(b"").unwrap_err().contains("CCH"));
        assert!(decode_ctl(b"hello").unwrap_err().contains("CCH"));
        let mut other = encode_ctl(&spawn());
        other[3] = 9;
        assert!(decode_ctl(&other).unwrap_err().contains("version 9"));
        let full = encode_ctl(&spawn());
        for n in 0..full.len() {
            let _ = decode_ctl(&full[..n]);
            let _ = decode_reply(&full[..n]);
        }
        let f = frame(Kind::Call, 4, b"abc");
        assert_eq!(unframe(&f, 1 << 20).unwrap().id, 4);
        for n in 0..f.len() {
            assert!(unframe(&f[..n], 1 << 20).is_err());
        }
        let mut two = f.clone();
        two.extend_from_slice(&f);
        assert!(unframe(&two, 1 << 20).is_err());
        assert!(matches!(
            unframe(&f, 8),
            Err(WireError::TooLarge { .. } | WireError::TooShort { .. })
        ));
    }
}
