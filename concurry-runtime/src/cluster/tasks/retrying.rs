//! Retries of durable tasks, judged on the node that ran the attempt.
//!
//! An attempt ([`run_durable`], generic over the task) runs the function and judges its
//! output with the task's own [`RetryConfig`] ([`RemoteTask::retry`], from the node's build:
//! closures do not travel): an error ([`RemoteTask::inspect`]) or a panic is a failed
//! attempt that its `retry_on` predicates may decline; a value its `retry_until`
//! validators reject is a failed attempt too. [`judge`] then decides, with the attempts and
//! waits of the submit's policy (or the task's own when the submit gave none): store the
//! result, retry after a wait (the runner records `Retrying` and gives the message back), or
//! dead-letter with the reason, the attempts and the last failure. An attempt past its
//! `call_timeout` is judged as [`Judged::TimedOut`].

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use super::record::{Failure, Outcome, Policy};
use crate::error::{Error, ValidationOutputs, panic_message};
use crate::remote::{RemoteTask, TaskOutput};
use crate::retry::{Failure as Attempted, RetryConfig};
use crate::wire::Fault;

/// One attempt of a task: its encoded arguments and the attempt number.
pub(crate) type RunDurable = fn(&[u8], u32) -> Ran;

/// What one attempt gave, judged by the task's own retry settings.
pub(crate) struct Ran {
    pub(crate) judged: Judged,
    /// The task's [`RemoteTask::retry`] attempts, waits and `retry_on_panic`, for a submit
    /// that gave none.
    pub(crate) own: Option<RetryConfig>,
}

/// An attempt's outcome, before the attempts and waits are applied.
pub(crate) enum Judged {
    /// An accepted output, encoded.
    Done(Vec<u8>),
    /// The task returned an error; `retry_on` lets it be retried if `retry_on`.
    Returned {
        message: String,
        output: Vec<u8>,
        retry_on: bool,
    },
    /// A `retry_until` validator rejected the value.
    Rejected { reason: String, output: Vec<u8> },
    /// The task panicked; `retry_on` lets it be retried if `retry_on`.
    Panicked { message: String, retry_on: bool },
    /// The attempt ran past its `call_timeout`.
    TimedOut { after: Duration },
    /// The arguments or the output could not be decoded or encoded.
    Fault(Fault),
}

/// Runs task `T` once on `args` and judges the output (the registry's `durable` entry).
pub(crate) fn run_durable<T: RemoteTask>(args: &[u8], attempt: u32) -> Ran {
    let protocol = |e: crate::wire::WireError| Fault::Protocol {
        message: e.to_string(),
    };
    let own = T::retry();
    let judged = match crate::wire::decode::<T::Args>(args, "task arguments") {
        Err(e) => Judged::Fault(protocol(e)),
        Ok(args) => match catch_unwind(AssertUnwindSafe(|| T::run(args))) {
            Err(p) => {
                let message = panic_message(&*p);
                let failure = Attempted::panic(&message, attempt, T::NAME);
                let retry_on = own.as_ref().is_none_or(|c| c.accepts(&failure));
                Judged::Panicked { message, retry_on }
            }
            Ok(out) => judge_output::<T>(&out, own.as_ref(), attempt, || {
                crate::wire::encode(&out, "task output").map_err(protocol)
            }),
        },
    };
    Ran { judged, own }
}

fn judge_output<T: RemoteTask>(
    out: &T::Output,
    own: Option<&RetryConfig>,
    attempt: u32,
    encode: impl FnOnce() -> Result<Vec<u8>, Fault>,
) -> Judged {
    enum Verdict {
        Value(Option<String>),
        Error(String, bool),
    }
    let verdict = match T::inspect(out) {
        TaskOutput::Value(v) => Verdict::Value(
            own.and_then(|c| c.rejects_any(v))
                .map(std::borrow::Cow::into_owned),
        ),
        TaskOutput::Error { error, message } => {
            let failure = Attempted::method_dyn(error, attempt, T::NAME);
            Verdict::Error(message, own.is_none_or(|c| c.accepts(&failure)))
        }
    };
    let output = match encode() {
        Ok(b) => b,
        Err(f) => return Judged::Fault(f),
    };
    match verdict {
        Verdict::Value(None) => Judged::Done(output),
        Verdict::Value(Some(reason)) => Judged::Rejected { reason, output },
        Verdict::Error(message, retry_on) => Judged::Returned {
            message,
            output,
            retry_on,
        },
    }
}

/// What the runner does with an attempt.
pub(crate) enum Next {
    /// Store this result (the first one wins) and ack.
    Finish(Outcome),
    /// Record `Retrying` with `error` and give the message back for `wait`.
    Retry { wait: Duration, error: String },
    /// Dead-letter the task.
    DeadLetter { reason: String, last: Failure },
}

/// The attempts, wait and panic rule that apply to attempt `attempt`.
struct Plan {
    attempts: u32,
    on_panic: bool,
    wait: Duration,
    /// Whether any retry settings were given (for the reason of a dead letter).
    given: bool,
}

impl Plan {
    fn new(policy: &Policy, own: Option<&RetryConfig>, attempt: u32) -> Plan {
        if policy.attempts > 0 {
            let idx = usize::try_from(attempt.saturating_sub(1)).unwrap_or(usize::MAX);
            Plan {
                attempts: policy.attempts,
                on_panic: policy.on_panic,
                wait: Duration::from_millis(policy.waits_ms.get(idx).copied().unwrap_or(0)),
                given: true,
            }
        } else if let Some(c) = own {
            Plan {
                attempts: c.max_attempts(),
                on_panic: c.on_panic(),
                wait: c.wait_before(attempt, crate::rand::unit()),
                given: true,
            }
        } else {
            Plan {
                attempts: 1,
                on_panic: false,
                wait: Duration::ZERO,
                given: false,
            }
        }
    }
}

/// The task's `call_timeout`, if the submit set one.
pub(crate) fn call_timeout(policy: &Policy) -> Option<Duration> {
    (policy.timeout_ms > 0).then(|| Duration::from_millis(policy.timeout_ms))
}

/// Decides what follows attempt `attempt` of a task submitted with `policy`.
pub(crate) fn judge(
    policy: &Policy,
    own: Option<&RetryConfig>,
    attempt: u32,
    judged: Judged,
    max_payload: usize,
) -> Next {
    let plan = Plan::new(policy, own, attempt);
    let fits = |output: Vec<u8>| {
        // Kept for the typed handle only if the result record still fits a message.
        if output.len() + 2048 > max_payload {
            Vec::new()
        } else {
            output
        }
    };
    let (last, allowed, declined) = match judged {
        Judged::Done(bytes) if bytes.len() + 1024 > max_payload => {
            return Next::Finish(Outcome::Failed(Failure::TooLarge {
                len: bytes.len() as u64,
                max: max_payload as u64,
            }));
        }
        Judged::Done(bytes) => return Next::Finish(Outcome::Ok(bytes)),
        Judged::Fault(fault) => {
            return Next::Finish(Outcome::Failed(Failure::BadMessage {
                message: fault.to_string(),
            }));
        }
        Judged::Panicked { message, retry_on } => {
            let declined = if plan.on_panic {
                "its retry_on declined the panic"
            } else {
                "it panicked and panics are not retried (Submit::retry with \
                 RetryConfig::retry_on_panic(true) retries them)"
            };
            (
                Failure::Panicked { message },
                plan.on_panic && retry_on,
                declined,
            )
        }
        Judged::Returned {
            message,
            output,
            retry_on,
        } => (
            Failure::Returned {
                message,
                output: fits(output),
            },
            retry_on,
            "its retry_on declined the error",
        ),
        Judged::Rejected { reason, output } => (
            Failure::Rejected {
                reason,
                output: fits(output),
            },
            true,
            "",
        ),
        Judged::TimedOut { after } => (
            Failure::TimedOut {
                after_ms: u64::try_from(after.as_millis()).unwrap_or(u64::MAX),
            },
            true,
            "",
        ),
    };
    if allowed && attempt < plan.attempts {
        return Next::Retry {
            wait: plan.wait,
            error: last.describe(),
        };
    }
    let reason = if !allowed {
        declined.to_string()
    } else if plan.given {
        format!("its {} attempts ran out", plan.attempts)
    } else {
        "it failed and has no retries (Submit::retry or RemoteTask::retry give it some)".to_string()
    };
    Next::DeadLetter { reason, last }
}

/// The typed outcome of a stored failure: a dead-lettered task that returned an error gives
/// its output back (the `Err` the function returned); one whose values were rejected is
/// [`Error::Validation`] with the last value; the rest map as [`Failure::into_error`].
pub(crate) fn typed_failure<T: RemoteTask>(f: Failure) -> Result<T::Output, Error> {
    let Failure::DeadLettered {
        reason,
        attempts,
        last,
    } = f
    else {
        return Err(f.into_error(T::NAME));
    };
    match *last {
        Failure::Returned { output, .. } if !output.is_empty() => {
            crate::wire::decode::<T::Output>(&output, "task output").map_err(Error::Transport)
        }
        Failure::Rejected {
            reason: rejected,
            output,
        } => {
            let outputs: Vec<Box<dyn Any + Send>> =
                crate::wire::decode::<T::Output>(&output, "task output")
                    .ok()
                    .map(|o| vec![Box::new(o) as Box<dyn Any + Send>])
                    .unwrap_or_default();
            Err(Error::Validation {
                method: T::NAME,
                attempts,
                reason: rejected,
                outputs: ValidationOutputs::new(outputs),
            })
        }
        last => Err(Failure::DeadLettered {
            reason,
            attempts,
            last: Box::new(last),
        }
        .into_error(T::NAME)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(attempts: u32) -> Policy {
        Policy {
            attempts,
            waits_ms: vec![7; attempts.saturating_sub(1) as usize],
            on_panic: false,
            timeout_ms: 0,
        }
    }

    fn returned(retry_on: bool) -> Judged {
        Judged::Returned {
            message: "Down".into(),
            output: vec![1, 2],
            retry_on,
        }
    }

    #[test]
    fn an_error_is_retried_while_attempts_last_then_dead_lettered() {
        let p = policy(3);
        assert!(matches!(
            judge(&p, None, 1, returned(true), 1 << 20),
            Next::Retry { wait, .. } if wait == Duration::from_millis(7)
        ));
        match judge(&p, None, 3, returned(true), 1 << 20) {
            Next::DeadLetter { reason, last } => {
                assert!(reason.contains("3 attempts ran out"), "{reason}");
                assert!(matches!(last, Failure::Returned { .. }));
            }
            _ => panic!("not dead-lettered"),
        }
        // retry_on declined: dead at once, whatever the attempts.
        assert!(matches!(
            judge(&p, None, 1, returned(false), 1 << 20),
            Next::DeadLetter { reason, .. } if reason.contains("declined the error")
        ));
        // No retry settings anywhere: one attempt, then the dead letter says how to get more.
        assert!(matches!(
            judge(&policy(0), None, 1, returned(true), 1 << 20),
            Next::DeadLetter { reason, .. } if reason.contains("no retries")
        ));
    }

    #[test]
    fn the_tasks_own_config_applies_when_the_submit_gave_none() {
        let own = RetryConfig::attempts(2)
            .wait(Duration::from_millis(10))
            .jitter(0.0)
            .retry_on_panic(true);
        let panicked = || Judged::Panicked {
            message: "boom".into(),
            retry_on: true,
        };
        assert!(matches!(
            judge(&policy(0), Some(&own), 1, panicked(), 1 << 20),
            Next::Retry { wait, .. } if wait == Duration::from_millis(10)
        ));
        // The submit's policy wins: no panics retried there.
        assert!(matches!(
            judge(&policy(3), Some(&own), 1, panicked(), 1 << 20),
            Next::DeadLetter { reason, .. } if reason.contains("panics are not retried")
        ));
        // A timeout is retried per the attempts.
        let t = || Judged::TimedOut {
            after: Duration::from_millis(50),
        };
        assert!(matches!(
            judge(&policy(0), Some(&own), 1, t(), 1 << 20),
            Next::Retry { .. }
        ));
        assert!(matches!(
            judge(&policy(0), Some(&own), 2, t(), 1 << 20),
            Next::DeadLetter {
                last: Failure::TimedOut { after_ms: 50 },
                ..
            }
        ));
    }
}
