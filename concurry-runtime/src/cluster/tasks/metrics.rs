//! What a node reports of the durable tasks it runs (feature `metrics`; nothing without it):
//!
//! | name | kind | labels | what |
//! |---|---|---|---|
//! | `concurry_tasks_total` | counter | `task`, `outcome` | attempts that ended here: `ok`, `retrying` (failed, to run again), `dead_lettered`, `timeout`, `cancelled`, `failed` (a typed failure: unknown task, schema, malformed, too large) |
//! | `concurry_task_duration_seconds` | histogram | `task` | how long each attempt ran on this node |
//! | `concurry_task_retries_total` | counter | `task` | attempts handed back to run again |

use super::record::{Failure, Outcome};

/// Counter `concurry_tasks_total{task, outcome}`.
#[cfg(feature = "metrics")]
pub(crate) const TASKS: &str = "concurry_tasks_total";
/// Histogram `concurry_task_duration_seconds{task}`.
#[cfg(feature = "metrics")]
pub(crate) const TASK_DURATION: &str = "concurry_task_duration_seconds";
/// Counter `concurry_task_retries_total{task}`.
#[cfg(feature = "metrics")]
pub(crate) const TASK_RETRIES: &str = "concurry_task_retries_total";

/// The `outcome` label of an attempt that stored `outcome`.
pub(crate) fn label(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Ok(_) => "ok",
        Outcome::Failed(Failure::Cancelled) => "cancelled",
        Outcome::Failed(Failure::TimedOut { .. }) => "timeout",
        Outcome::Failed(Failure::DeadLettered { .. }) => "dead_lettered",
        Outcome::Failed(_) => "failed",
    }
}

/// An attempt of `task` that ran from `started_ms` (0: it never ran) ended as `outcome`.
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub(crate) fn ended(task: &str, outcome: &'static str, started_ms: u64) {
    #[cfg(feature = "metrics")]
    {
        metrics::counter!(TASKS, "task" => task.to_string(), "outcome" => outcome).increment(1);
        if started_ms != 0 {
            let ran = super::now_ms().saturating_sub(started_ms);
            metrics::histogram!(TASK_DURATION, "task" => task.to_string())
                .record(ran as f64 / 1000.0);
        }
    }
}

/// An attempt of `task` that ran from `started_ms` failed and goes back to run again.
pub(crate) fn retrying(task: &str, started_ms: u64) {
    ended(task, "retrying", started_ms);
    #[cfg(feature = "metrics")]
    metrics::counter!(TASK_RETRIES, "task" => task.to_string()).increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_are_labelled_by_kind() {
        assert_eq!(label(&Outcome::Ok(vec![])), "ok");
        assert_eq!(label(&Outcome::Failed(Failure::Cancelled)), "cancelled");
        assert_eq!(
            label(&Outcome::Failed(Failure::BadMessage {
                message: "x".into()
            })),
            "failed"
        );
    }
}
