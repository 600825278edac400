//! `concurry tasks`: the newest tasks, filtered by state and queue.

use std::io::Write;

use concurry::cluster::{TaskFilter, TaskInfo, TaskState};
use serde::Serialize;

use crate::cli::Global;
use crate::cmd::{fail, json, task_queue};
use crate::exit::Failure;
use crate::table::Table;
use crate::time::{ago, now_ms};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Only tasks in this state: pending, scheduled, running, retrying, succeeded, failed, cancelled, dead_lettered
    #[arg(long, value_name = "STATE", value_parser = state)]
    pub(crate) status: Option<TaskState>,
    /// Only tasks of this queue (those still queued, delayed or running there, and its dead letters)
    #[arg(long, value_name = "QUEUE")]
    pub(crate) queue: Option<String>,
    /// At most this many, newest first
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub(crate) limit: usize,
}

fn state(s: &str) -> Result<TaskState, String> {
    s.parse::<TaskState>().map_err(|e| e.fix().to_string())
}

#[derive(Serialize)]
struct Doc<'a> {
    server: &'a str,
    namespace: &'a str,
    tasks: &'a [TaskInfo],
}

pub(crate) fn run(g: &Global, args: &Args, out: &mut dyn Write) -> Result<(), Failure> {
    let (cluster, q) = task_queue(g, None)?;
    let mut filter = TaskFilter::new().limit(args.limit);
    if let Some(s) = args.status {
        filter = filter.status(s);
    }
    if let Some(queue) = &args.queue {
        filter = filter.queue(queue.clone());
    }
    let tasks = q.list(&filter).map_err(fail)?;
    if g.json {
        return json(
            out,
            &Doc {
                server: cluster.url(),
                namespace: cluster.namespace(),
                tasks: &tasks,
            },
        );
    }
    if tasks.is_empty() {
        writeln!(
            out,
            "no tasks{} in namespace `{}` on {}",
            match (&args.status, &args.queue) {
                (None, None) => String::new(),
                (Some(s), None) => format!(" {s}"),
                (None, Some(q)) => format!(" in queue `{q}`"),
                (Some(s), Some(q)) => format!(" {s} in queue `{q}`"),
            },
            cluster.namespace(),
            cluster.url()
        )?;
        return Ok(());
    }
    table(&tasks, now_ms()).write(out)?;
    Ok(())
}

/// The columns of the human-readable listing (scripts: use `--json`).
pub(crate) const COLUMNS: [&str; 9] = [
    "ID", "STATUS", "TASK", "QUEUE", "PRIORITY", "NODE", "ATTEMPTS", "UPDATED", "ERROR",
];

fn or_dash(s: Option<&str>) -> String {
    s.unwrap_or("-").to_string()
}

pub(crate) fn table(tasks: &[TaskInfo], now: u64) -> Table {
    let mut t = Table::new(COLUMNS.to_vec());
    for task in tasks {
        t.row(vec![
            task.id.clone(),
            task.status.to_string(),
            or_dash(task.task.as_deref()),
            or_dash(task.queue.as_deref()),
            task.priority
                .map_or_else(|| "-".to_string(), |p| p.to_string()),
            or_dash(task.node.as_deref()),
            task.attempts.to_string(),
            ago(task.updated_ms, now),
            task.error.as_deref().map_or_else(String::new, one_line),
        ]);
    }
    t
}

/// An error's first line, at most 80 characters (the JSON has all of it).
fn one_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or("");
    if line.chars().count() > 80 {
        format!("{}...", line.chars().take(77).collect::<String>())
    } else {
        line.to_string()
    }
}
