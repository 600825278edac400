//! `concurry dlq list|replay <id>|purge`: the dead letters (tasks whose attempts ran out).

use std::io::Write;

use concurry::cluster::DeadLetter;
use serde::Serialize;

use crate::cli::Global;
use crate::cmd::{fail, json, task_queue};
use crate::exit::Failure;
use crate::table::Table;
use crate::time::{ago, now_ms};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    pub(crate) command: Dlq,
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum Dlq {
    /// List the dead letters, oldest first: id, task, attempts, node, when, reason and last error
    #[command(after_help = "Example:\n  concurry dlq list")]
    List,
    /// Run a dead letter again from its first attempt, under the same id (exit code 1 if there is none)
    #[command(after_help = "Example:\n  concurry dlq replay invoice-42")]
    Replay {
        /// The dead letter's task id
        id: String,
    },
    /// Remove every dead letter (their results stay until they expire)
    #[command(after_help = "Example:\n  concurry dlq purge")]
    Purge,
}

/// One dead letter in JSON.
#[derive(Serialize)]
struct LetterJson<'a> {
    id: &'a str,
    task: &'a str,
    reason: &'a str,
    attempts: u32,
    last_error: &'a str,
    node: &'a str,
    at_ms: u64,
}

impl<'a> From<&'a DeadLetter> for LetterJson<'a> {
    fn from(d: &'a DeadLetter) -> Self {
        LetterJson {
            id: &d.id,
            task: &d.task,
            reason: &d.reason,
            attempts: d.attempts,
            last_error: &d.last_error,
            node: &d.node,
            at_ms: d
                .at
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        }
    }
}

#[derive(Serialize)]
struct ListDoc<'a> {
    dead_letters: Vec<LetterJson<'a>>,
}

pub(crate) fn run(g: &Global, args: &Args, out: &mut dyn Write) -> Result<(), Failure> {
    let (cluster, q) = task_queue(g, None)?;
    match &args.command {
        Dlq::List => {
            let letters = q.dead_letters().map_err(fail)?;
            if g.json {
                return json(
                    out,
                    &ListDoc {
                        dead_letters: letters.iter().map(LetterJson::from).collect(),
                    },
                );
            }
            if letters.is_empty() {
                writeln!(
                    out,
                    "no dead letters in namespace `{}`",
                    cluster.namespace()
                )?;
                return Ok(());
            }
            let now = now_ms();
            let mut t = Table::new(vec![
                "ID",
                "TASK",
                "ATTEMPTS",
                "NODE",
                "WHEN",
                "REASON",
                "LAST ERROR",
            ]);
            for d in &letters {
                let j = LetterJson::from(d);
                t.row(vec![
                    d.id.clone(),
                    d.task.clone(),
                    d.attempts.to_string(),
                    d.node.clone(),
                    ago(j.at_ms, now),
                    d.reason.clone(),
                    d.last_error.clone(),
                ]);
            }
            t.write(out)?;
        }
        Dlq::Replay { id } => {
            let letters = q.dead_letters().map_err(fail)?;
            if !letters.iter().any(|d| &d.id == id) {
                return Err(Failure::NotFound(format!(
                    "no dead letter `{id}` in namespace `{}` (`concurry dlq list` lists them)",
                    cluster.namespace()
                )));
            }
            q.replay(id).map_err(fail)?;
            if g.json {
                return json(out, &serde_json::json!({ "replayed": id }));
            }
            writeln!(out, "replayed {id}")?;
        }
        Dlq::Purge => {
            let n = q.purge_dead_letters().map_err(fail)?;
            if g.json {
                return json(out, &serde_json::json!({ "purged": n }));
            }
            writeln!(out, "purged {n} dead letter(s)")?;
        }
    }
    Ok(())
}
