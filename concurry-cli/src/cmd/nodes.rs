//! `concurry nodes`: the live nodes, as a table or JSON.

use std::io::Write;
use std::time::{Duration, Instant};

use concurry::cluster::{Cluster, NodeView};
use serde::Serialize;

use crate::cli::{Global, Listen};
use crate::connect::connect;
use crate::exit::Failure;
use crate::table::Table;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    pub(crate) listen: Listen,
}

pub(crate) fn run(g: &Global, args: &Args, out: &mut dyn Write) -> Result<(), Failure> {
    let cluster = connect(g)?;
    let nodes = live_nodes(&cluster, args.listen.settle);
    if g.json {
        let doc = Listing {
            server: cluster.url(),
            namespace: cluster.namespace(),
            nodes: nodes.iter().map(NodeJson::from).collect(),
        };
        serde_json::to_writer_pretty(&mut *out, &doc)?;
        writeln!(out)?;
    } else if nodes.is_empty() {
        writeln!(
            out,
            "no live nodes in namespace `{}` on {}",
            cluster.namespace(),
            cluster.url()
        )?;
    } else {
        table(&nodes).write(out)?;
    }
    Ok(())
}

/// The nodes live once none has newly answered for `settle` (a connecting client pings every
/// node, and each answers within a round trip or so); at most `settle` + 2 s in all.
pub(crate) fn live_nodes(cluster: &Cluster, settle: Duration) -> Vec<NodeView> {
    let mut count = usize::MAX;
    let mut since = Instant::now();
    let done = |nodes: &[NodeView]| {
        if nodes.len() != count {
            count = nodes.len();
            since = Instant::now();
        }
        since.elapsed() >= settle
    };
    cluster
        .wait_until(settle + Duration::from_secs(2), done)
        .unwrap_or_else(|_| cluster.nodes())
}

/// The JSON document `nodes --json` prints.
#[derive(Serialize)]
struct Listing<'a> {
    server: &'a str,
    namespace: &'a str,
    nodes: Vec<NodeJson<'a>>,
}

/// One node in JSON.
#[derive(Serialize)]
pub(crate) struct NodeJson<'a> {
    name: &'a str,
    id: &'a str,
    host: &'a str,
    pid: u32,
    capacity: u32,
    free: u32,
    draining: bool,
    heartbeat_interval_ms: u128,
    /// How long ago its last heartbeat arrived.
    last_heartbeat_ms: u128,
    types: &'a [String],
}

impl<'a> From<&'a NodeView> for NodeJson<'a> {
    fn from(n: &'a NodeView) -> Self {
        let (host, pid) = n.process();
        NodeJson {
            name: n.name(),
            id: n.id(),
            host,
            pid,
            capacity: n.capacity(),
            free: n.free(),
            draining: n.is_draining(),
            heartbeat_interval_ms: n.heartbeat_interval().as_millis(),
            last_heartbeat_ms: n.since_heartbeat().as_millis(),
            types: n.types(),
        }
    }
}

/// The columns of the human-readable listing (scripts: use `--json`).
pub(crate) const COLUMNS: [&str; 9] = [
    "NAME",
    "ID",
    "HOST",
    "PID",
    "CAPACITY",
    "FREE",
    "DRAINING",
    "LAST HEARTBEAT",
    "TYPES",
];

pub(crate) fn table(nodes: &[NodeView]) -> Table {
    let mut t = Table::new(COLUMNS.to_vec());
    for n in nodes {
        let (host, pid) = n.process();
        t.row(vec![
            n.name().to_string(),
            n.id().to_string(),
            host.to_string(),
            pid.to_string(),
            n.capacity().to_string(),
            n.free().to_string(),
            if n.is_draining() { "yes" } else { "no" }.to_string(),
            ago(n.since_heartbeat()),
            n.types().join(", "),
        ]);
    }
    t
}

/// `0.4s ago`, `3m05s ago`.
fn ago(d: Duration) -> String {
    if d < Duration::from_secs(60) {
        format!("{:.1}s ago", d.as_secs_f64())
    } else {
        let s = d.as_secs();
        format!("{}m{:02}s ago", s / 60, s % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_has_the_documented_columns() {
        let nodes = [NodeView::new("gpu-1", 8)
            .with_types(["app::Embedder", "app::Ranker"])
            .with_free(6)];
        let mut out = Vec::new();
        table(&nodes).write(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let mut lines = text.lines();
        assert_eq!(
            lines.next().unwrap(),
            "NAME   ID     HOST  PID  CAPACITY  FREE  DRAINING  LAST HEARTBEAT  TYPES"
        );
        assert_eq!(
            lines.next().unwrap(),
            "gpu-1  gpu-1        0    8         6     no        0.0s ago        app::Embedder, app::Ranker"
        );
    }

    #[test]
    fn ages_read_as_seconds_then_minutes() {
        assert_eq!(ago(Duration::from_millis(420)), "0.4s ago");
        assert_eq!(ago(Duration::from_secs(185)), "3m05s ago");
    }
}
