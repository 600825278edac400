//! Cluster groundwork against a real `nats-server` (feature `cluster`): the local-server
//! harness, connecting (auth, bad addresses, reconnects), membership (nodes as child
//! processes of this binary: advertisement, SIGKILL detected by heartbeat, SIGTERM drain),
//! placement (unit cases and properties), and `Mode::Cluster` pools (calls, spread, node
//! loss, drain, limits across nodes, server restart).
//!
//! Without a server installed every server test prints "skipped: install nats-server: ..."
//! and passes, except under `CI=true`, where it fails.

mod connect;
mod harness;
mod inspect;
mod leases;
mod membership;
mod named;
mod placement;
mod pools;
#[cfg(feature = "prometheus")]
mod prometheus;
mod support;
mod tasks;
