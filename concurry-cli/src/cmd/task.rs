//! `concurry task <id>`: one task's state, attempts, node, timings and error.

use std::io::Write;
use std::time::Duration;

use concurry::cluster::{TaskInfo, TaskState};

use crate::cli::Global;
use crate::cmd::{fail, json, task_queue};
use crate::exit::Failure;
use crate::time::{ago, now_ms, span, stamp};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The task's id
    pub(crate) id: String,
}

pub(crate) fn run(g: &Global, args: &Args, out: &mut dyn Write) -> Result<(), Failure> {
    let (cluster, q) = task_queue(g, None)?;
    let t = q.info(&args.id).map_err(fail)?;
    if t.status == TaskState::Unknown {
        return Err(Failure::NotFound(format!(
            "no task `{}` in namespace `{}` on {}: never submitted, or its records expired",
            args.id,
            cluster.namespace(),
            cluster.url()
        )));
    }
    if g.json {
        return json(out, &t);
    }
    describe(&t, now_ms(), out)
}

/// `field: value` lines.
pub(crate) fn describe(t: &TaskInfo, now: u64, out: &mut dyn Write) -> Result<(), Failure> {
    let when = |ms: Option<u64>| {
        ms.map_or_else(
            || "-".to_string(),
            |ms| format!("{} ({})", stamp(ms), ago(ms, now)),
        )
    };
    let queue = match (&t.queue, t.priority) {
        (Some(q), Some(p)) => format!("{q} ({p})"),
        (Some(q), None) => q.clone(),
        _ => "-".to_string(),
    };
    let took = match (t.started_ms, t.finished_ms) {
        (Some(s), Some(f)) if f >= s => format!(", took {}", span(Duration::from_millis(f - s))),
        _ => String::new(),
    };
    let lines = [
        ("id", t.id.clone()),
        ("status", t.status.to_string()),
        ("task", t.task.clone().unwrap_or_else(|| "-".into())),
        ("queue", queue),
        ("node", t.node.clone().unwrap_or_else(|| "-".into())),
        ("attempts", t.attempts.to_string()),
        ("submitted", when(t.submitted_ms)),
        ("runs at", when(t.run_at_ms)),
        ("started", when(t.started_ms)),
        ("finished", format!("{}{took}", when(t.finished_ms))),
        ("error", t.error.clone().unwrap_or_else(|| "-".into())),
    ];
    for (k, v) in lines {
        writeln!(out, "{:<10} {v}", format!("{k}:"))?;
    }
    Ok(())
}
