//! One module per command; [`run`] dispatches. The helpers here are what several commands
//! share: the task queue, the runtime's errors as exit codes, JSON output.

pub(crate) mod cancel;
pub(crate) mod dlq;
pub(crate) mod drain;
pub(crate) mod limits;
pub(crate) mod node;
pub(crate) mod nodes;
pub(crate) mod pools;
pub(crate) mod queues;
pub(crate) mod result;
pub(crate) mod submit;
pub(crate) mod task;
pub(crate) mod tasks;

use std::io::Write;

use concurry::Error;
use concurry::cluster::{Cluster, TaskConfig, TaskQueue};
use serde::Serialize;

use crate::cli::{Cli, Command, Global};
use crate::connect::connect;
use crate::exit::Failure;

/// Runs the command `cli` names, writing its output to `out`.
pub(crate) fn run(cli: &Cli, out: &mut dyn Write) -> Result<(), Failure> {
    let g = &cli.global;
    match &cli.command {
        Command::Nodes(args) => nodes::run(g, args, out),
        Command::Node(args) => node::run(g, args, out),
        Command::Queues(args) => queues::run(g, args, out),
        Command::Tasks(args) => tasks::run(g, args, out),
        Command::Task(args) => task::run(g, args, out),
        Command::Result(args) => result::run(g, args, out),
        Command::Submit(args) => submit::run(g, args, out),
        Command::Cancel(args) => cancel::run(g, args, out),
        Command::Dlq(args) => dlq::run(g, args, out),
        Command::Drain(args) => drain::run(g, args, out),
        Command::Pools(args) => pools::run(g, args, out),
        Command::Limits(args) => limits::run(g, args, out),
        Command::Dashboard(args) => crate::dashboard::run(g, args, out),
    }
}

/// The connection and the namespace's task queue (`queue`: the one tasks are submitted to;
/// lookups by id and listings cover every queue).
pub(crate) fn task_queue(g: &Global, queue: Option<&str>) -> Result<(Cluster, TaskQueue), Failure> {
    let cluster = connect(g)?;
    let config = match queue {
        Some(q) => TaskConfig::new().queue(q),
        None => TaskConfig::new(),
    };
    let q = cluster.tasks_with(config).map_err(fail)?;
    Ok((cluster, q))
}

/// A runtime error as the exit code a script can act on.
pub(crate) fn fail(e: Error) -> Failure {
    match e {
        Error::Config(c) => {
            let text = format!("{}: {}", c.value(), c.fix());
            match c.option() {
                // The server: unreachable, no JetStream, or refusing to store.
                "cluster" => Failure::Connection(text),
                // Nothing of that name.
                "task" | "nodes" | "node" => Failure::NotFound(text),
                // Their values say what they are (an argument, not a flag).
                "task arguments" | "task id" => Failure::Usage(text),
                flag => Failure::Usage(format!("--{} {text}", flag.replace('_', "-"))),
            }
        }
        other => Failure::Other(other.to_string()),
    }
}

/// Writes `doc` as pretty JSON and a newline.
pub(crate) fn json(out: &mut dyn Write, doc: &impl Serialize) -> Result<(), Failure> {
    serde_json::to_writer_pretty(&mut *out, doc)?;
    writeln!(out)?;
    Ok(())
}
