//! `concurry dashboard`: one live page of the cluster, served by this binary.
//!
//! - `snapshot.rs`: what the page shows ([`snapshot::Snapshot`], one serde document a
//!   tick: counts and the newest rows, never every task) and the throughput history.
//! - `server.rs`: the HTTP side (axum): the page and its assets (embedded with
//!   `include_str!`: no CDN, no build step), the live feed as server-sent events
//!   (`/events`), `/api/snapshot`, Prometheus text at `/metrics`, and the actions (`POST`,
//!   refused with 403 unless `--allow-actions`).
//! - `assets/`: the page (`index.html`, `app.css`, `app.js`: hand-written, the chart on a
//!   canvas).
//!
//! One thread reads the cluster every `--interval` (the library's calls block) and hands
//! the snapshot to the server, which sends the same serialized document to every open page.

mod gauges;
mod server;
pub(crate) mod snapshot;

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use crate::cli::{Global, duration};
use crate::connect::connect;
use crate::exit::Failure;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Where to serve the page (port 0: any free port; the address is printed)
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub(crate) listen: SocketAddr,
    /// Allow serving on an address other than loopback (the page has no login: put it
    /// behind an authenticating proxy)
    #[arg(long)]
    pub(crate) public: bool,
    /// Enable the actions (cancel a task, replay a dead letter, drain a node); without it the page is read-only and
    /// their endpoints answer 403
    #[arg(long)]
    pub(crate) allow_actions: bool,
    /// How often the page is brought up to date
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = duration)]
    pub(crate) interval: Duration,
    /// How many of the newest tasks and dead letters the page lists (counts cover all)
    #[arg(long, value_name = "N", default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=5000))]
    pub(crate) recent: u32,
}

/// Checks the arguments, connects, and serves until SIGINT or SIGTERM.
pub(crate) fn run(g: &Global, args: &Args, out: &mut dyn Write) -> Result<(), Failure> {
    check_listen(args.listen, args.public)?;
    if args.interval < Duration::from_millis(100) {
        return Err(Failure::Usage(format!(
            "--interval {:?}: too short a refresh for the cluster's server; use 100ms or more",
            args.interval
        )));
    }
    let cluster = connect(g)?;
    server::serve(cluster, args, out)
}

/// Loopback only, unless `--public` says otherwise (then with a warning on stderr).
fn check_listen(addr: SocketAddr, public: bool) -> Result<(), Failure> {
    if addr.ip().is_loopback() {
        return Ok(());
    }
    if public {
        eprintln!(
            "concurry: warning: serving the dashboard on {addr}, beyond this machine; it has no \
             login of its own"
        );
        return Ok(());
    }
    Err(Failure::Usage(format!(
        "--listen {addr}: not a loopback address, and the dashboard has no login; serve it on \
         127.0.0.1 (behind a proxy that authenticates), or add --public to serve it there anyway"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_without_public() {
        assert!(check_listen("127.0.0.1:8080".parse().unwrap(), false).is_ok());
        assert!(check_listen("[::1]:8080".parse().unwrap(), false).is_ok());
        let err = check_listen("0.0.0.0:8080".parse().unwrap(), false).unwrap_err();
        assert!(matches!(err, Failure::Usage(_)));
        let msg = err.to_string();
        assert!(
            msg.contains("--listen 0.0.0.0:8080") && msg.contains("--public"),
            "{msg}"
        );
        assert!(check_listen("0.0.0.0:8080".parse().unwrap(), true).is_ok());
    }
}
