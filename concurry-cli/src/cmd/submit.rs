//! `concurry submit <task> '<json args>'`: a durable task by name, its arguments as JSON
//! (a node decodes them into the task's own types: a type error names the argument).

use std::io::Write;
use std::time::Duration;

use concurry::cluster::{Priority, Submit};
use serde::Serialize;

use crate::cli::{Global, duration};
use crate::cmd::{fail, json, result, task_queue};
use crate::exit::Failure;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The task's registered name (`module::path::function`)
    pub(crate) task: String,
    /// Its arguments: a JSON array, one element per parameter (a single one may be bare)
    #[arg(default_value = "[]", value_name = "JSON")]
    pub(crate) args: String,
    /// critical, high, normal or low
    #[arg(long, value_name = "PRIORITY", default_value = "normal", value_parser = priority)]
    pub(crate) priority: Priority,
    /// Run it no sooner than this after the submit
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub(crate) delay: Option<Duration>,
    /// Its id (a second submit of an id is the same task); random by default
    #[arg(long, value_name = "ID")]
    pub(crate) id: Option<String>,
    /// The queue to submit to
    #[arg(long, value_name = "QUEUE", default_value = "default")]
    pub(crate) queue: String,
    /// Wait for its result and print it
    #[arg(long)]
    pub(crate) wait: bool,
    /// How long --wait waits
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = duration, requires = "wait")]
    pub(crate) timeout: Duration,
}

fn priority(s: &str) -> Result<Priority, String> {
    s.parse::<Priority>().map_err(|e| e.fix().to_string())
}

#[derive(Serialize)]
struct Doc<'a> {
    id: &'a str,
    task: &'a str,
    queue: &'a str,
    priority: Priority,
    #[serde(skip_serializing_if = "Option::is_none")]
    output: Option<serde_json::Value>,
}

pub(crate) fn run(g: &Global, args: &Args, out: &mut dyn Write) -> Result<(), Failure> {
    let (_, q) = task_queue(g, Some(&args.queue))?;
    let mut submit = Submit::new().priority(args.priority);
    if let Some(d) = args.delay {
        submit = submit.delay(d);
    }
    if let Some(id) = &args.id {
        submit = submit.id(id.clone());
    }
    let id = q
        .submit_json(&args.task, &args.args, submit)
        .map_err(fail)?;
    let output = if args.wait {
        Some(result::output(
            &q,
            &id,
            Some(&args.task),
            Some(args.timeout),
        )?)
    } else {
        None
    };
    if g.json {
        return json(
            out,
            &Doc {
                id: &id,
                task: &args.task,
                queue: &args.queue,
                priority: args.priority,
                output,
            },
        );
    }
    writeln!(
        out,
        "submitted {} as {id} (queue {}, priority {})",
        args.task, args.queue, args.priority
    )?;
    if let Some(output) = output {
        json(out, &output)?;
    }
    Ok(())
}
