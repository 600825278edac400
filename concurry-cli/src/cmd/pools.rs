//! `concurry pools`: the cluster pools of the namespace, any process's.

use std::io::Write;

use concurry::cluster::PoolInfo;
use serde::Serialize;

use crate::cli::Global;
use crate::cmd::{fail, json};
use crate::connect::connect;
use crate::exit::Failure;
use crate::table::Table;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {}

#[derive(Serialize)]
struct Doc<'a> {
    server: &'a str,
    namespace: &'a str,
    pools: &'a [PoolInfo],
}

pub(crate) fn run(g: &Global, _args: &Args, out: &mut dyn Write) -> Result<(), Failure> {
    let cluster = connect(g)?;
    let pools = cluster.pools().map_err(fail)?;
    if g.json {
        return json(
            out,
            &Doc {
                server: cluster.url(),
                namespace: cluster.namespace(),
                pools: &pools,
            },
        );
    }
    if pools.is_empty() {
        writeln!(
            out,
            "no pools in namespace `{}` on {}",
            cluster.namespace(),
            cluster.url()
        )?;
        return Ok(());
    }
    table(&pools).write(out)?;
    Ok(())
}

/// The columns of the human-readable listing (scripts: use `--json`).
pub(crate) const COLUMNS: [&str; 8] = [
    "NAME",
    "TYPE",
    "WORKERS",
    "INSTANCES",
    "IN FLIGHT",
    "DISPATCHED",
    "OWNER",
    "ID",
];

pub(crate) fn table(pools: &[PoolInfo]) -> Table {
    let mut t = Table::new(COLUMNS.to_vec());
    for p in pools {
        let instances: Vec<String> = p
            .instances
            .iter()
            .map(|(node, n)| format!("{node}:{n}"))
            .collect();
        t.row(vec![
            p.name.clone().unwrap_or_else(|| "-".to_string()),
            p.worker.clone(),
            p.workers.to_string(),
            if instances.is_empty() {
                "-".to_string()
            } else {
                instances.join(", ")
            },
            p.in_flight.to_string(),
            p.dispatched.to_string(),
            format!("{} (pid {})", p.owner_host, p.owner_pid),
            p.id.clone(),
        ]);
    }
    t
}
