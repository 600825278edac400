//! The command line: global options (where the cluster is and how to talk to it) and one
//! subcommand per `cmd/` module.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::cmd;

/// Look at a concurry cluster and act on it: its nodes, durable task queues and dead letters.
#[derive(Debug, Parser)]
#[command(
    name = "concurry",
    version,
    after_help = "Examples:\n  concurry --server nats://10.0.0.5:4222 nodes\n  concurry --namespace prod --json nodes | jq -r '.nodes[].name'\n  concurry submit app::resize '[\"cat.png\", 640]' --wait\n  concurry tasks --status failed\n\nExit codes: 0 ok, 1 not found, 2 usage, 3 connection (server unreachable, credentials or TLS refused, no JetStream), 4 other, 5 the task failed (result, submit --wait)."
)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: Global,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Where the cluster is and how to talk to it (every command takes these; listed after a
/// command's own options).
#[derive(Debug, Args)]
#[command(next_display_order = 100)]
pub(crate) struct Global {
    /// The NATS server (nats://host:4222, tls://host:4222)
    #[arg(
        long,
        global = true,
        env = "CONCURRY_SERVER",
        default_value = "nats://127.0.0.1:4222",
        value_name = "URL"
    )]
    pub(crate) server: String,
    /// Authenticate with this token
    #[arg(long, global = true, env = "CONCURRY_TOKEN", hide_env_values = true)]
    pub(crate) token: Option<String>,
    /// Authenticate as this user (with --password)
    #[arg(long, global = true, requires = "password")]
    pub(crate) user: Option<String>,
    /// The user's password
    #[arg(
        long,
        global = true,
        env = "CONCURRY_PASSWORD",
        hide_env_values = true,
        requires = "user"
    )]
    pub(crate) password: Option<String>,
    /// Authenticate with this nkey seed (SU...)
    #[arg(
        long,
        global = true,
        env = "CONCURRY_NKEY",
        hide_env_values = true,
        value_name = "SEED"
    )]
    pub(crate) nkey: Option<String>,
    /// Trust the certificate authorities in this PEM file (repeatable)
    #[arg(long, global = true, value_name = "PEM")]
    pub(crate) tls_ca: Vec<PathBuf>,
    /// Present this client certificate (PEM; with --tls-key)
    #[arg(long, global = true, value_name = "PEM", requires = "tls_key")]
    pub(crate) tls_cert: Option<PathBuf>,
    /// The client certificate's key (PEM)
    #[arg(long, global = true, value_name = "PEM", requires = "tls_cert")]
    pub(crate) tls_key: Option<PathBuf>,
    /// The cluster's namespace
    #[arg(
        long,
        global = true,
        env = "CONCURRY_NAMESPACE",
        default_value = "default"
    )]
    pub(crate) namespace: String,
    /// Print JSON instead of a table
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// How long to wait for the server
    #[arg(long, global = true, value_name = "DURATION", default_value = "5s", value_parser = duration)]
    pub(crate) connect_timeout: Duration,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// List the live nodes: name, id, host and pid, capacity, free slots, draining, last heartbeat, worker types
    #[command(
        after_help = "Examples:\n  concurry --server nats://10.0.0.5:4222 nodes\n  concurry --json nodes | jq '.nodes[] | {name, free}'"
    )]
    Nodes(cmd::nodes::Args),
    /// Show one live node by name (exit code 1 if there is none)
    #[command(after_help = "Example:\n  concurry --server nats://10.0.0.5:4222 node gpu-1")]
    Node(cmd::node::Args),
    /// Show the task queues: depth per priority, waiting, held by nodes, dead letters; tasks by state
    #[command(
        after_help = "Examples:\n  concurry queues\n  concurry --json queues | jq '.tasks.running'"
    )]
    Queues(cmd::queues::Args),
    /// List the newest tasks: id, state, task, queue, priority, node, attempts, last change, error
    #[command(
        after_help = "Examples:\n  concurry tasks --status failed --limit 10\n  concurry --json tasks --queue render | jq -r '.tasks[].id'"
    )]
    Tasks(cmd::tasks::Args),
    /// Show one task: state, attempts, node, timings, error (exit code 1 if there is none)
    #[command(after_help = "Example:\n  concurry task invoice-42")]
    Task(cmd::task::Args),
    /// Print a task's output as JSON (exit code 1 while it has none, 5 if it failed)
    #[command(
        after_help = "Examples:\n  concurry result invoice-42\n  concurry result invoice-42 --wait 30s\n  concurry result 5f0c... --task app::render_invoice"
    )]
    Result(cmd::result::Args),
    /// Submit a durable task by name with JSON arguments (a node checks them against the task's types)
    #[command(
        after_help = "Examples:\n  concurry submit app::resize '[\"cat.png\", 640]'\n  concurry submit app::send_report '[\"weekly\"]' --priority high --delay 10m --id report-w48\n  concurry --json submit app::add '[2, 3]' --wait | jq .output"
    )]
    Submit(cmd::submit::Args),
    /// Cancel a task: a queued or delayed one never runs, a running one's result is dropped
    #[command(after_help = "Example:\n  concurry cancel invoice-42")]
    Cancel(cmd::cancel::Args),
    /// The dead letters: list them, replay one, purge them all
    #[command(
        after_help = "Examples:\n  concurry dlq list\n  concurry dlq replay invoice-42\n  concurry dlq purge"
    )]
    Dlq(cmd::dlq::Args),
    /// Drain a node, as SIGTERM does: no new placements or tasks, its instances move once their calls finish
    #[command(
        after_help = "Examples:\n  concurry drain gpu-1\n  concurry drain gpu-1 --wait --timeout 5m"
    )]
    Drain(cmd::drain::Args),
    /// List the cluster pools (any process's): name, worker type, instances per node, calls in flight and dispatched, owner
    #[command(
        after_help = "Examples:\n  concurry pools\n  concurry --json pools | jq '.pools[] | {name, in_flight}'"
    )]
    Pools(cmd::pools::Args),
    /// List every cluster pool's limits: usage against capacity per key (global: the owner hosts them)
    #[command(
        after_help = "Examples:\n  concurry limits\n  concurry --json limits | jq '.limits[] | select(.waiters > 0)'"
    )]
    Limits(cmd::limits::Args),
    /// Serve a live web page of the cluster: nodes, queues, tasks, dead letters, limits (read-only unless --allow-actions)
    #[command(
        after_help = "Examples:\n  concurry --server nats://10.0.0.5:4222 dashboard\n  concurry dashboard --listen 127.0.0.1:9000 --allow-actions\n\nServes http://<listen>/ (the page, live over server-sent events) and /metrics (Prometheus text).\nLoopback only unless --public: the page has no login of its own."
    )]
    Dashboard(crate::dashboard::Args),
}

/// How long to listen for the nodes' answers (shared by the commands that list nodes).
#[derive(Debug, Args)]
pub(crate) struct Listen {
    /// How long to listen for nodes answering after the last one did
    #[arg(long, value_name = "DURATION", default_value = "300ms", value_parser = duration)]
    pub(crate) settle: Duration,
}

/// `500ms`, `2s`, `1m`, `1h`, `1d`.
pub(crate) fn duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((s, ""), |i| s.split_at(i));
    let n: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration; write it as 500ms, 2s, 1m or 1h"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86_400.0,
        "" => {
            return Err(format!(
                "`{s}` has no unit; write it as 500ms, 2s, 1m or 1h"
            ));
        }
        _ => {
            return Err(format!(
                "`{s}` has an unknown unit; write it as 500ms, 2s, 1m, 1h or 1d"
            ));
        }
    };
    Duration::try_from_secs_f64(secs).map_err(|_| format!("`{s}` is out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_arguments_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations_take_a_unit() {
        assert_eq!(duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(duration("3w").unwrap_err().contains("unknown unit"));
        assert!(duration("5").unwrap_err().contains("no unit"));
        assert!(duration("fast").unwrap_err().contains("not a duration"));
    }
}
