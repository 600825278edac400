//! `concurry queues`: the depth of every task queue per priority, and the tasks by state.

use std::io::Write;

use concurry::cluster::{Priority, QueuesSnapshot};
use serde::Serialize;

use crate::cli::Global;
use crate::cmd::{fail, json, task_queue};
use crate::exit::Failure;
use crate::table::Table;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {}

/// The JSON document `queues --json` prints: the library's snapshot, where it was taken.
#[derive(Serialize)]
struct Doc<'a> {
    server: &'a str,
    namespace: &'a str,
    #[serde(flatten)]
    snapshot: &'a QueuesSnapshot,
}

pub(crate) fn run(g: &Global, _args: &Args, out: &mut dyn Write) -> Result<(), Failure> {
    let (cluster, q) = task_queue(g, None)?;
    let snap = q.queues().map_err(fail)?;
    if g.json {
        return json(
            out,
            &Doc {
                server: cluster.url(),
                namespace: cluster.namespace(),
                snapshot: &snap,
            },
        );
    }
    let queues = snap.queues();
    if queues.is_empty() {
        writeln!(
            out,
            "no task queues in namespace `{}` on {}",
            cluster.namespace(),
            cluster.url()
        )?;
    } else {
        table(&snap).write(out)?;
    }
    let t = &snap.tasks;
    writeln!(
        out,
        "\ntasks: {} pending, {} delayed, {} running, {} retrying, {} succeeded, {} failed, {} \
         cancelled, {} dead-lettered",
        t.pending,
        t.scheduled,
        t.running,
        t.retrying,
        t.succeeded,
        t.failed,
        t.cancelled,
        t.dead_lettered
    )?;
    Ok(())
}

/// The columns of the human-readable listing (scripts: use `--json`).
pub(crate) const COLUMNS: [&str; 8] = [
    "QUEUE", "CRITICAL", "HIGH", "NORMAL", "LOW", "WAITING", "HELD", "DEAD",
];

/// One row per queue: its depth per priority, never delivered, held by nodes (running, or
/// given back until due), dead letters kept.
pub(crate) fn table(snap: &QueuesSnapshot) -> Table {
    let mut t = Table::new(COLUMNS.to_vec());
    for queue in snap.queues() {
        let levels = snap.levels.iter().filter(|l| l.queue == queue);
        let (waiting, held) = levels.fold((0, 0), |(w, h), l| (w + l.waiting, h + l.held));
        let mut row = vec![queue.to_string()];
        for p in [
            Priority::Critical,
            Priority::High,
            Priority::Normal,
            Priority::Low,
        ] {
            row.push(snap.depth(queue, p).to_string());
        }
        row.push(waiting.to_string());
        row.push(held.to_string());
        row.push(
            snap.dead_letters
                .get(queue)
                .copied()
                .unwrap_or(0)
                .to_string(),
        );
        t.row(row);
    }
    t
}
