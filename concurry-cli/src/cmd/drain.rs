//! `concurry drain <node>`: ask a node to drain, as SIGTERM does.

use std::io::Write;
use std::time::Duration;

use serde::Serialize;

use crate::cli::{Global, Listen, duration};
use crate::cmd::{fail, json};
use crate::connect::connect;
use crate::exit::Failure;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The node's name (as `concurry nodes` lists it)
    pub(crate) name: String,
    /// Wait until it has drained and left
    #[arg(long)]
    pub(crate) wait: bool,
    /// How long --wait waits
    #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = duration, requires = "wait")]
    pub(crate) timeout: Duration,
    #[command(flatten)]
    pub(crate) listen: Listen,
}

#[derive(Serialize)]
struct Doc<'a> {
    node: &'a str,
    id: &'a str,
    /// With `--wait`: whether it left in time.
    #[serde(skip_serializing_if = "Option::is_none")]
    left: Option<bool>,
}

pub(crate) fn run(g: &Global, args: &Args, out: &mut dyn Write) -> Result<(), Failure> {
    let cluster = connect(g)?;
    let found = cluster
        .wait_until(args.listen.settle + Duration::from_secs(1), |nodes| {
            nodes.iter().any(|n| n.name() == args.name)
        })
        .ok()
        .and_then(|nodes| nodes.into_iter().find(|n| n.name() == args.name));
    let Some(node) = found else {
        return Err(Failure::NotFound(format!(
            "no live node named `{}` in namespace `{}` on {} (`concurry nodes` lists them)",
            args.name,
            cluster.namespace(),
            cluster.url()
        )));
    };
    let id = node.id().to_string();
    cluster.drain(&id).map_err(fail)?;
    let left = args.wait.then(|| {
        cluster
            .wait_until(args.timeout, |nodes| !nodes.iter().any(|n| n.id() == id))
            .is_ok()
    });
    if g.json {
        json(
            out,
            &Doc {
                node: &args.name,
                id: &id,
                left,
            },
        )?;
    } else {
        match left {
            None => writeln!(out, "draining {} ({id})", args.name)?,
            Some(true) => writeln!(out, "{} drained and left", args.name)?,
            Some(false) => {}
        }
    }
    if left == Some(false) {
        return Err(Failure::Other(format!(
            "{} is still draining after {:?}",
            args.name, args.timeout
        )));
    }
    Ok(())
}
