//! What a hosted client and its host say to each other, and the [`LimitLink`] that carries it.

use serde::{Deserialize, Serialize};

use crate::limit::{LimitError, LimitStats};

/// A served worker's request for units of its pool's limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LimitRequest {
    /// Keys and amounts, as given to `LimitSet::acquire`.
    pub(crate) amounts: Vec<(String, u64)>,
    /// Give up after this many milliseconds (`None`: wait as long as it takes; `Some(0)`:
    /// only if they fit now).
    pub(crate) timeout_ms: Option<u64>,
}

/// Client → host. Each names a lease (or, for `Stats`, a request) by an id the client
/// chose; ids of one client never repeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum LimitMsg {
    /// Take units; answered with [`LimitReply::Done`].
    Acquire {
        /// The lease the units are held under.
        lease: u64,
        /// What to take.
        request: LimitRequest,
    },
    /// Correct a lease's charges (as `Acquisition::update`); answered with
    /// [`LimitReply::Done`].
    Update {
        /// The lease.
        lease: u64,
        /// Keys and the units really used.
        usage: Vec<(String, u64)>,
    },
    /// Give a lease back; no answer.
    Release {
        /// The lease.
        lease: u64,
    },
    /// The set's name and a snapshot of its limits; answered with [`LimitReply::Stats`].
    Stats {
        /// The request's id.
        id: u64,
    },
}

impl LimitMsg {
    /// The id the reply carries.
    pub(crate) fn id(&self) -> u64 {
        match self {
            LimitMsg::Acquire { lease, .. }
            | LimitMsg::Update { lease, .. }
            | LimitMsg::Release { lease } => *lease,
            LimitMsg::Stats { id } => *id,
        }
    }
}

/// Host → client: the answer to one [`LimitMsg`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum LimitReply {
    /// The outcome of `Acquire` or `Update`.
    Done(Result<(), LimitError>),
    /// The answer to `Stats`.
    Stats(HostedStats),
}

/// The host's set as a client sees it: its name and every limit's stats.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct HostedStats {
    /// The set's name.
    pub(crate) name: Option<String>,
    /// One row per limit, in the set's order.
    pub(crate) stats: Vec<LimitStats>,
}

/// The link is closed: the host is gone (or was never reached).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Closed;

/// How a hosted client reaches its host. One link serves one client (one served worker);
/// it may be used from several threads at once (a method's threads, a blocking-pool task).
pub(crate) trait LimitLink: Send + Sync + 'static {
    /// Sends `msg` to the host without waiting for anything (a release).
    ///
    /// # Errors
    ///
    /// [`Closed`] if the host is gone.
    fn send(&self, msg: LimitMsg) -> Result<(), Closed>;

    /// Sends `msg` and waits for its reply; `None` if the link closed first (or the reply
    /// could not be read: the link is then as good as closed).
    fn ask(&self, msg: LimitMsg) -> Option<LimitReply>;
}
