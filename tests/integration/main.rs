//! Behaviour tests of pools through the public facade, one binary (fast to link on 2 cores).
#![allow(unreachable_pub, missing_docs, missing_debug_implementations)]

mod ambient_runtime;
mod async_sync;
mod balancing;
mod blocking;
mod callbacks;
mod cancel;
mod common;
mod docs;
mod every_mode;
#[cfg(target_os = "linux")]
mod handshake;
mod lifecycle;
mod limits;
mod load;
mod modes;
mod remote;
mod remote_limits;
mod retry;
mod send_sync;
mod spans;
mod task;
mod task_exit;
mod task_remote;
mod worker_macro;
