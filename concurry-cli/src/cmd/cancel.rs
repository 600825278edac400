//! `concurry cancel <id>`: revoke a task (a queued or delayed one never runs).

use std::io::Write;

use concurry::cluster::TaskState;
use serde::Serialize;

use crate::cli::Global;
use crate::cmd::{fail, json, task_queue};
use crate::exit::Failure;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The task's id
    pub(crate) id: String,
}

#[derive(Serialize)]
struct Doc<'a> {
    id: &'a str,
    /// True if this cancel decided the outcome; false if the task had finished already.
    cancelled: bool,
    /// Its state after the cancel.
    status: TaskState,
}

pub(crate) fn run(g: &Global, args: &Args, out: &mut dyn Write) -> Result<(), Failure> {
    let (cluster, q) = task_queue(g, None)?;
    if q.info(&args.id).map_err(fail)?.status == TaskState::Unknown {
        return Err(Failure::NotFound(format!(
            "no task `{}` in namespace `{}` on {}: nothing cancelled",
            args.id,
            cluster.namespace(),
            cluster.url()
        )));
    }
    let cancelled = q.cancel(&args.id).map_err(fail)?;
    let status = q.info(&args.id).map_err(fail)?.status;
    if g.json {
        return json(
            out,
            &Doc {
                id: &args.id,
                cancelled,
                status,
            },
        );
    }
    if cancelled {
        writeln!(out, "cancelled {}", args.id)?;
    } else {
        writeln!(
            out,
            "{} had finished already ({status}); nothing changed",
            args.id
        )?;
    }
    Ok(())
}
