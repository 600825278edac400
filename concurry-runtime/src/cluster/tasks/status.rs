//! [`TaskStatus`]: where a task is, from its result if it has one, else its state record.

use std::time::SystemTime;

use super::inspect::InStream;
use super::record::{Failure, Outcome, State, Stored, decode};
use super::setup::Store;
use super::submit::TaskQueue;
use super::{check_id, from_ms, server_error};
use crate::cluster::run;
use crate::error::Error;

/// Where a durable task is.
///
/// ```no_run
/// use concurry::cluster::{Cluster, TaskStatus};
///
/// # fn main() -> Result<(), concurry::Error> {
/// let cluster = Cluster::connect("nats://127.0.0.1:4222")?;
/// match cluster.task_status("invoice-42")? {
///     TaskStatus::Running { node, attempt } => println!("attempt {attempt} on {node}"),
///     TaskStatus::Succeeded { .. } => println!("done"),
///     other => println!("{other:?}"),
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TaskStatus {
    /// Stored, waiting for a node.
    Pending,
    /// Stored, not to run before `at`.
    Scheduled {
        /// Its ETA.
        at: SystemTime,
    },
    /// A node runs it (shown once it has run for 20 ms; a shorter run goes from `Pending`
    /// straight to its result).
    Running {
        /// The node's name.
        node: String,
        /// Which attempt (1 for the first run; a run after a node died or a retry counts).
        attempt: u32,
    },
    /// Attempt `attempt` failed; it runs again at `at`.
    Retrying {
        /// The attempt that failed.
        attempt: u32,
        /// When the next attempt may start.
        at: SystemTime,
        /// The failure, as text.
        error: String,
    },
    /// It returned (its output is the result; a function returning `Result` may have
    /// returned its `Err`).
    Succeeded {
        /// The node that ran it.
        node: String,
        /// The attempt that stored the result.
        attempt: u32,
    },
    /// It cannot run: unknown on the node, another schema, malformed, or a result too large.
    Failed {
        /// Why, as text.
        error: String,
    },
    /// It was cancelled before it finished.
    Cancelled,
    /// Its attempts ran out, or it panicked without retries: see
    /// [`TaskQueue::dead_letters`].
    DeadLettered {
        /// Why.
        reason: String,
        /// How many attempts ran.
        attempts: u32,
    },
    /// Never submitted in this namespace, or its records expired (`TaskConfig::result_ttl`).
    Unknown,
}

impl TaskStatus {
    /// True for the states that do not change any more (a result exists).
    pub fn is_finished(&self) -> bool {
        matches!(
            self,
            TaskStatus::Succeeded { .. }
                | TaskStatus::Failed { .. }
                | TaskStatus::Cancelled
                | TaskStatus::DeadLettered { .. }
        )
    }
}

pub(crate) fn from_stored(stored: &Stored) -> TaskStatus {
    match &stored.outcome {
        Outcome::Ok(_) => TaskStatus::Succeeded {
            node: stored.node.clone(),
            attempt: stored.attempt,
        },
        Outcome::Failed(Failure::Cancelled) => TaskStatus::Cancelled,
        Outcome::Failed(Failure::DeadLettered {
            reason, attempts, ..
        }) => TaskStatus::DeadLettered {
            reason: reason.clone(),
            attempts: *attempts,
        },
        Outcome::Failed(f) => TaskStatus::Failed {
            error: f.describe(),
        },
    }
}

fn from_state(state: State) -> TaskStatus {
    match state {
        State::Pending => TaskStatus::Pending,
        State::Scheduled { at_ms } => TaskStatus::Scheduled { at: from_ms(at_ms) },
        State::Running { node, attempt } => TaskStatus::Running { node, attempt },
        State::Retrying {
            attempt,
            at_ms,
            error,
        } => TaskStatus::Retrying {
            attempt,
            at: from_ms(at_ms),
            error,
        },
    }
}

/// The stored result of `id`, if any (a record this build cannot read counts as none, with
/// a warning).
pub(crate) async fn stored(store: &Store, id: &str) -> Result<Option<Stored>, Error> {
    let bytes = store
        .results
        .get(id)
        .await
        .map_err(|e| server_error("read a task result", &store.url, e))?;
    Ok(
        bytes.and_then(|b| match decode::<Stored>(&b, "a task result") {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(task = id, "concurry tasks: {e}");
                None
            }
        }),
    )
}

pub(crate) async fn lookup(store: &Store, id: &str) -> Result<TaskStatus, Error> {
    if let Some(s) = stored(store, id).await? {
        return Ok(from_stored(&s));
    }
    let state = store
        .status
        .get(id)
        .await
        .map_err(|e| server_error("read a task status", &store.url, e))?;
    match state.map(|b| decode::<State>(&b, "a task status")) {
        Some(Ok(s)) => return Ok(from_state(s)),
        Some(Err(e)) => return Ok(TaskStatus::Failed { error: e }),
        None => {}
    }
    // A task with a fresh id has no record until a node runs it: its message is it.
    if let Some(m) = store.message_of(id).await? {
        return Ok(match InStream::read(&m).and_then(|(_, s)| s.eta()) {
            Some(at) => TaskStatus::Scheduled { at: from_ms(at) },
            None => TaskStatus::Pending,
        });
    }
    // Its message leaves the stream only after its result is stored: read after the
    // message was not found, a result that was not there before is there now.
    Ok(match stored(store, id).await? {
        Some(s) => from_stored(&s),
        None => TaskStatus::Unknown,
    })
}

impl TaskQueue {
    /// The status of the task `id`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for an invalid id, or if the server cannot be asked.
    pub fn status(&self, id: &str) -> Result<TaskStatus, Error> {
        check_id(id)?;
        let inner = self.inner.clone();
        let id = id.to_string();
        run(async move { lookup(&inner.store, &id).await })
    }
}
