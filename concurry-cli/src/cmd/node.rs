//! `concurry node <name>`: one live node (exit code 1 if there is none).

use std::io::Write;
use std::time::Duration;

use crate::cli::{Global, Listen};
use crate::cmd::nodes::{NodeJson, table};
use crate::connect::connect;
use crate::exit::Failure;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The node's name (as `concurry nodes` lists it)
    pub(crate) name: String,
    #[command(flatten)]
    pub(crate) listen: Listen,
}

pub(crate) fn run(g: &Global, args: &Args, out: &mut dyn Write) -> Result<(), Failure> {
    let cluster = connect(g)?;
    // Done as soon as it answers; `settle` bounds the wait for one that does not.
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
    if g.json {
        serde_json::to_writer_pretty(&mut *out, &NodeJson::from(&node))?;
        writeln!(out)?;
    } else {
        table(std::slice::from_ref(&node)).write(out)?;
    }
    Ok(())
}
