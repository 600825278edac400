//! `concurry limits`: every cluster pool's limits, usage against capacity per key.

use std::io::Write;

use concurry::cluster::LimitUsage;
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
    limits: &'a [LimitUsage],
}

pub(crate) fn run(g: &Global, _args: &Args, out: &mut dyn Write) -> Result<(), Failure> {
    let cluster = connect(g)?;
    let limits = cluster.limits().map_err(fail)?;
    if g.json {
        return json(
            out,
            &Doc {
                server: cluster.url(),
                namespace: cluster.namespace(),
                limits: &limits,
            },
        );
    }
    if limits.is_empty() {
        writeln!(
            out,
            "no pool limits in namespace `{}` on {}",
            cluster.namespace(),
            cluster.url()
        )?;
        return Ok(());
    }
    table(&limits).write(out)?;
    Ok(())
}

/// The columns of the human-readable listing (scripts: use `--json`).
pub(crate) const COLUMNS: [&str; 7] = [
    "POOL", "KEY", "KIND", "USED", "CAPACITY", "USAGE", "WAITERS",
];

pub(crate) fn table(limits: &[LimitUsage]) -> Table {
    let mut t = Table::new(COLUMNS.to_vec());
    for l in limits {
        let usage = if l.capacity == 0 {
            "-".to_string()
        } else {
            format!("{:.0}%", 100.0 * l.used as f64 / l.capacity as f64)
        };
        t.row(vec![
            l.pool.clone(),
            l.key.clone(),
            l.kind.clone(),
            l.used.to_string(),
            l.capacity.to_string(),
            usage,
            l.waiters.to_string(),
        ]);
    }
    t
}
