//! Remote execution, whatever the transport: a worker placed somewhere else (a child
//! process today; threads of this process for the loopback transport; a cluster node
//! later), reached by messages.
//!
//! - [`transport`]: what a transport provides: [`Transport`] places a worker from its
//!   constructor arguments (bytes) and hands back a [`Peer`] (send an envelope, kill, id)
//!   and its [`Inbound`] stream.
//! - [`supervisor`]: one supervised worker, on bytes only: the table of calls in flight,
//!   deadlines, the up / respawning / dead state machine with its restart limit and backoff.
//! - [`handle`]: the typed side: encodes `W::Request`, decodes `W::Response`.
//! - [`registry`]: [`RemoteWorker`] and the registry of remote worker types; [`task`]
//!   likewise for `#[task(remote)]` functions.
//! - [`serve`]: the serving side's loop (decode, dispatch, encode), shared by a child process
//!   and any other host of workers.
//! - [`encode`]: encoding requests, large ones off the caller's thread.
//! - `loopback` (tests): a transport of threads in this process, proving the interface;
//!   `loopback_pool` (tests): a whole pool on it.
//!
//! Nothing here names a transport: `mode/process/` implements [`Transport`] for child
//! processes (an import check test keeps it so).

pub(crate) mod encode;
pub(crate) mod handle;
#[cfg(test)]
pub(crate) mod loopback;
#[cfg(test)]
mod loopback_pool;
pub(crate) mod registry;
pub(crate) mod serve;
pub(crate) mod supervisor;
pub(crate) mod task;
pub(crate) mod transport;

pub(crate) use encode::{Lane, LanePlace, LaneRoom, encode_in_lane, encode_request, encode_small};
pub(crate) use handle::{Handle, Reply};
pub(crate) use registry::lookup;
pub use registry::{REMOTE_WORKERS, RemoteEntry, RemoteWorker};
pub(crate) use supervisor::Supervision;
pub use task::{REMOTE_TASKS, RemoteTask, TaskEntry, TaskHost, TaskOutput};
#[allow(unused_imports)]
pub(crate) use transport::{
    Ending, Hosts, Inbound, LimitHost, NextAsync, Peer, PlaceError, Placed, Transport,
};
