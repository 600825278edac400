//! What the stream and the buckets hold: postcard records behind a 4-byte header (`CCT` and
//! a version), so a foreign value is refused by name instead of misread.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{ConfigError, Error};
use crate::wire::WireError;

const MAGIC: &[u8; 3] = b"CCT";
const VERSION: u8 = 2;

pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    // Only our own records, all serde-derived: postcard cannot fail on them.
    postcard::to_io(value, &mut out).expect("a task record encodes");
    out
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, String> {
    match bytes {
        [a, b, c, v, rest @ ..] if [*a, *b, *c] == *MAGIC => {
            if *v != VERSION {
                return Err(format!(
                    "{what} has record version {v}, this build reads {VERSION}; run one version \
                     of concurry across nodes and submitters"
                ));
            }
            postcard::from_bytes(rest).map_err(|e| format!("{what} is malformed ({e})"))
        }
        _ => Err(format!("{what} is not a concurry task record")),
    }
}

/// The payload of a task message.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TaskMsg {
    /// The task's registered name (`RemoteTask::NAME`).
    pub(crate) task: String,
    /// Its schema fingerprint in the submitter's build.
    pub(crate) schema: u64,
    /// Its arguments, postcard.
    pub(crate) args: Vec<u8>,
    pub(crate) retry: Policy,
}

/// The retries of a task, as a node applies them: the jitter is drawn at submit.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Policy {
    /// Attempts in all (at least 1).
    pub(crate) attempts: u32,
    /// The wait before retry `n` is `waits_ms[n - 1]`.
    pub(crate) waits_ms: Vec<u64>,
    /// Whether a panic may be retried.
    pub(crate) on_panic: bool,
    /// The attempt's hard time limit (`Submit::call_timeout`), 0 for none.
    pub(crate) timeout_ms: u64,
}

/// A task's state while it has no result (the status bucket).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum State {
    Pending,
    Scheduled {
        at_ms: u64,
    },
    Running {
        node: String,
        attempt: u32,
    },
    Retrying {
        attempt: u32,
        at_ms: u64,
        error: String,
    },
}

/// A stored result (the results bucket).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Stored {
    pub(crate) outcome: Outcome,
    /// The attempt that produced it (0 for a cancel).
    pub(crate) attempt: u32,
    /// The node that stored it (empty for a cancel).
    pub(crate) node: String,
    /// When the attempt that produced it started (0: it never ran, e.g. a cancel).
    pub(crate) started_ms: u64,
    /// The task's name, its message's subject (queue and priority) and when that message
    /// was stored (empty and 0 when not known, e.g. a cancel): what an operator's listing
    /// shows of a task once its message has left the stream.
    pub(crate) task: String,
    pub(crate) subject: String,
    pub(crate) submitted_ms: u64,
    pub(crate) finished_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Outcome {
    /// The task's output, postcard.
    Ok(Vec<u8>),
    Failed(Failure),
}

/// Why a task has no output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Failure {
    Panicked {
        message: String,
    },
    UnknownTask {
        task: String,
        node: String,
    },
    Schema {
        task: String,
        node: String,
    },
    BadMessage {
        message: String,
    },
    TooLarge {
        len: u64,
        max: u64,
    },
    Cancelled,
    DeadLettered {
        reason: String,
        attempts: u32,
        last: Box<Failure>,
    },
    /// The task returned an error (`RemoteTask::inspect`); `output` is the whole output,
    /// encoded, so a typed handle gives it back.
    Returned {
        message: String,
        output: Vec<u8>,
    },
    /// A `retry_until` validator rejected the output.
    Rejected {
        reason: String,
        output: Vec<u8>,
    },
    /// The attempt ran past the task's `call_timeout`.
    TimedOut {
        after_ms: u64,
    },
}

impl Failure {
    /// The error a typed handle of task `method` gives for it.
    pub(crate) fn into_error(self, method: &'static str) -> Error {
        match self {
            Failure::Panicked { message } => Error::Panicked { message },
            Failure::Cancelled => Error::Cancelled,
            Failure::UnknownTask { task, node } => Error::Config(ConfigError::new(
                "task",
                task,
                format!(
                    "node `{node}` has no task of that name; run nodes built from the binary \
                     that defines it (`#[task(remote)]` or `register_remote_task!`)"
                ),
            )),
            Failure::Schema { task, node } => Error::Config(ConfigError::new(
                "task",
                task,
                format!(
                    "node `{node}` was built from another definition of this task (its schema \
                     fingerprint differs); deploy the same build to the nodes and submitters"
                ),
            )),
            Failure::BadMessage { message } => Error::Transport(WireError::Peer { message }),
            Failure::TooLarge { len, max } => Error::Transport(WireError::TooLarge {
                len,
                max: usize::try_from(max).unwrap_or(usize::MAX),
            }),
            Failure::DeadLettered { attempts, last, .. } if attempts > 1 => {
                Error::RetriesExhausted {
                    method,
                    attempts,
                    last: Box::new(last.into_error(method)),
                }
            }
            Failure::DeadLettered { last, .. } => last.into_error(method),
            // Typed handles give the output back (`retrying::typed_failure`).
            Failure::Returned { message, .. } => Error::Transport(WireError::Peer {
                message: format!("the task returned an error: {message}"),
            }),
            Failure::Rejected { reason, .. } => Error::Transport(WireError::Peer {
                message: format!("the task's output was rejected by {reason}"),
            }),
            Failure::TimedOut { .. } => Error::Timeout,
        }
    }

    /// One line for statuses and dead letters.
    pub(crate) fn describe(&self) -> String {
        match self {
            Failure::Panicked { message } => format!("panicked: {message}"),
            Failure::UnknownTask { task, node } => {
                format!("node `{node}` has no task `{task}`")
            }
            Failure::Schema { task, node } => {
                format!("node `{node}` has another definition of task `{task}`")
            }
            Failure::BadMessage { message } => message.clone(),
            Failure::TooLarge { len, max } => {
                format!("the result of {len} bytes exceeds the server's max_payload ({max})")
            }
            Failure::Cancelled => "cancelled".to_string(),
            Failure::DeadLettered {
                reason,
                attempts,
                last,
            } => format!(
                "dead-lettered after {attempts} attempt(s): {reason}; last error: {}",
                last.describe()
            ),
            Failure::Returned { message, .. } => format!("returned an error: {message}"),
            Failure::Rejected { reason, .. } => format!("its output was rejected by {reason}"),
            Failure::TimedOut { after_ms } => {
                format!("ran past its call_timeout ({after_ms} ms)")
            }
        }
    }
}

/// A dead letter (the dlq bucket): enough to list it and to replay it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Dead {
    pub(crate) task: String,
    pub(crate) subject: String,
    pub(crate) payload: Vec<u8>,
    pub(crate) reason: String,
    pub(crate) attempts: u32,
    pub(crate) last_error: String,
    pub(crate) node: String,
    pub(crate) at_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_foreign_bytes_are_refused() {
        let s = Stored {
            outcome: Outcome::Failed(Failure::Cancelled),
            attempt: 0,
            node: String::new(),
            started_ms: 0,
            task: String::new(),
            subject: String::new(),
            submitted_ms: 0,
            finished_ms: 5,
        };
        let back: Stored = decode(&encode(&s), "a result").unwrap();
        assert!(matches!(back.outcome, Outcome::Failed(Failure::Cancelled)));
        let e = decode::<Stored>(b"hello", "a result").unwrap_err();
        assert!(e.contains("not a concurry task record"), "{e}");
        let mut future = encode(&s);
        future[3] = 9;
        let e = decode::<Stored>(&future, "a result").unwrap_err();
        assert!(e.contains("version 9"), "{e}");
    }

    #[test]
    fn a_dead_letter_after_retries_is_retries_exhausted_with_the_last_error() {
        let f = Failure::DeadLettered {
            reason: "attempts ran out".into(),
            attempts: 3,
            last: Box::new(Failure::Panicked {
                message: "boom".into(),
            }),
        };
        match f.into_error("t") {
            Error::RetriesExhausted {
                attempts: 3, last, ..
            } => assert!(matches!(*last, Error::Panicked { .. })),
            other => panic!("{other:?}"),
        }
    }
}
