//! Behaviour tests of pools through the public facade, one binary (fast to link on 2 cores).
#![allow(unreachable_pub, missing_docs, missing_debug_implementations)]

mod balancing;
mod common;
mod every_mode;
mod lifecycle;
mod limits;
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
