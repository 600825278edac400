//! `concurry result <id>`: a task's output as JSON (rendered by a node of its binary).

use std::io::Write;
use std::time::Duration;

use concurry::Error;
use concurry::cluster::{TaskQueue, TaskState};
use serde::Serialize;

use crate::cli::{Global, duration};
use crate::cmd::{fail, json, task_queue};
use crate::exit::Failure;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The task's id
    pub(crate) id: String,
    /// The task's name, for a task submitted from Rust (a CLI submit records it)
    #[arg(long, value_name = "NAME")]
    pub(crate) task: Option<String>,
    /// Wait for the result (at most this long; 5m if no duration is given)
    #[arg(long, value_name = "DURATION", num_args = 0..=1, default_missing_value = "5m", value_parser = duration)]
    pub(crate) wait: Option<Duration>,
}

#[derive(Serialize)]
struct Doc<'a> {
    id: &'a str,
    status: TaskState,
    output: serde_json::Value,
}

pub(crate) fn run(g: &Global, args: &Args, out: &mut dyn Write) -> Result<(), Failure> {
    let (_, q) = task_queue(g, None)?;
    let output = output(&q, &args.id, args.task.as_deref(), args.wait)?;
    print(g, &args.id, &output, out)
}

/// The output of `id` as JSON, or why there is none as the exit code it stands for.
pub(crate) fn output(
    q: &TaskQueue,
    id: &str,
    task: Option<&str>,
    wait: Option<Duration>,
) -> Result<serde_json::Value, Failure> {
    match q.result_json(id, task, wait) {
        Ok(Some(text)) => serde_json::from_str(&text).map_err(|e| {
            Failure::Other(format!("a node rendered the output as invalid JSON ({e})"))
        }),
        Ok(None) => {
            let status = q.info(id).map_err(fail)?.status;
            Err(Failure::NotFound(match (status, wait) {
                (TaskState::Unknown, _) => format!(
                    "no task `{id}` in this namespace: never submitted, or its records expired"
                ),
                (s, Some(w)) => format!("task `{id}` has no result after {w:?} (status: {s})"),
                (s, None) => {
                    format!("task `{id}` has no result yet (status: {s}); `--wait` waits for it")
                }
            }))
        }
        Err(e @ Error::Config(_)) => Err(fail(e)),
        Err(e @ Error::Transport(_)) => Err(fail(e)),
        Err(e) => Err(Failure::TaskFailed(format!("task `{id}` failed: {e}"))),
    }
}

pub(crate) fn print(
    g: &Global,
    id: &str,
    output: &serde_json::Value,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    if g.json {
        json(
            out,
            &Doc {
                id,
                status: TaskState::Succeeded,
                output: output.clone(),
            },
        )
    } else {
        json(out, output)
    }
}
