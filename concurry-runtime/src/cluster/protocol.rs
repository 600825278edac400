//! The membership messages nodes and clients exchange, and their subjects.

use serde::{Deserialize, Serialize};

/// The first bytes of every membership message.
pub(crate) const MAGIC: [u8; 3] = *b"CCN";
/// The version of the membership messages; a message of another version is refused.
pub(crate) const VERSION: u8 = 1;

/// What a node says about itself, in every heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Beat {
    /// Unique per node process: its name plus random bits (a restarted node is a new id).
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) types: Vec<String>,
    pub(crate) capacity: u32,
    pub(crate) free: u32,
    pub(crate) draining: bool,
    /// The node's heartbeat interval, in milliseconds: a client's grace period is a multiple.
    pub(crate) interval_ms: u32,
    /// Counts this node's heartbeats from 0.
    pub(crate) seq: u64,
    pub(crate) pid: u32,
    pub(crate) host: String,
}

/// A message on `node.hb` (or the reply to a ping or a name check).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum NodeMsg {
    /// "I am here" (every interval, and in answer to a ping).
    Beat(Beat),
    /// "I am leaving": the node drained and deregistered.
    Bye { id: String, name: String },
}

/// Why a message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BadMessage {
    #[error("not a concurry membership message (no `CCN` header)")]
    Foreign,
    #[error("membership message version {0}, this build speaks {VERSION}")]
    Version(u8),
    #[error("malformed membership message: {0}")]
    Malformed(String),
}

pub(crate) fn encode(msg: &NodeMsg) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    // A `Vec` sink cannot fail, and every field is a plain serde type.
    postcard::to_io(msg, &mut out).expect("membership messages always encode");
    out
}

pub(crate) fn decode(bytes: &[u8]) -> Result<NodeMsg, BadMessage> {
    if bytes.len() < 4 || bytes[..3] != MAGIC {
        return Err(BadMessage::Foreign);
    }
    if bytes[3] != VERSION {
        return Err(BadMessage::Version(bytes[3]));
    }
    postcard::from_bytes(&bytes[4..]).map_err(|e| BadMessage::Malformed(e.to_string()))
}

/// The subjects of one namespace.
#[derive(Debug, Clone)]
pub(crate) struct Subjects {
    prefix: String,
}

impl Subjects {
    pub(crate) fn new(namespace: &str) -> Self {
        Subjects {
            prefix: format!("cc.{namespace}"),
        }
    }

    /// Heartbeats and goodbyes.
    pub(crate) fn heartbeat(&self) -> String {
        format!("{}.node.hb", self.prefix)
    }

    /// A client asks every node to announce itself (each replies with a beat).
    pub(crate) fn ping(&self) -> String {
        format!("{}.node.ping", self.prefix)
    }

    /// Served by the node named `name`, so a second node of that name can see it is taken.
    pub(crate) fn name(&self, name: &str) -> String {
        format!("{}.node.name.{name}", self.prefix)
    }

    /// A node's control subject (request/reply): spawn and stop instances (`hosting.rs`).
    pub(crate) fn control(&self, node_id: &str) -> String {
        format!("{}.node.{node_id}.ctl", self.prefix)
    }

    /// Drain requests to the node `node_id` (`concurry drain`): it drains as on SIGTERM.
    pub(crate) fn drain(&self, node_id: &str) -> String {
        format!("{}.node.{node_id}.drain", self.prefix)
    }

    /// The calls of instance `n` on the node `node_id`.
    pub(crate) fn instance(&self, node_id: &str, n: u64) -> String {
        format!("{}.inst.{node_id}.{n}", self.prefix)
    }

    /// Every instance subject of the node `node_id` (what the node subscribes to).
    pub(crate) fn instances(&self, node_id: &str) -> String {
        format!("{}.inst.{node_id}.*", self.prefix)
    }

    /// Answered by a pool owner while it is alive (nodes ask, to end orphaned instances).
    pub(crate) fn owner(&self, owner: &str) -> String {
        format!("{}.owner.{owner}", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn beat() -> Beat {
        Beat {
            id: "n-1".into(),
            name: "n".into(),
            types: vec!["a::B".into()],
            capacity: 4,
            free: 3,
            draining: false,
            interval_ms: 1000,
            seq: 7,
            pid: 42,
            host: "h".into(),
        }
    }

    #[test]
    fn messages_round_trip() {
        for m in [
            NodeMsg::Beat(beat()),
            NodeMsg::Bye {
                id: "n-1".into(),
                name: "n".into(),
            },
        ] {
            assert_eq!(decode(&encode(&m)).unwrap(), m);
        }
    }

    #[test]
    fn garbage_is_refused_typed() {
        assert_eq!(decode(b""), Err(BadMessage::Foreign));
        assert_eq!(decode(b"hello world"), Err(BadMessage::Foreign));
        let mut other = encode(&NodeMsg::Beat(beat()));
        other[3] = 9;
        assert_eq!(decode(&other), Err(BadMessage::Version(9)));
        let mut cut = encode(&NodeMsg::Beat(beat()));
        cut.truncate(10);
        assert!(matches!(decode(&cut), Err(BadMessage::Malformed(_))));
        // Every prefix of a valid message decodes or is refused, never panics.
        let full = encode(&NodeMsg::Beat(beat()));
        for n in 0..full.len() {
            let _ = decode(&full[..n]);
        }
    }
}
