//! Static Send/Sync/Unpin guarantees of every public type (as tokio's `async_send_sync.rs`).

use concurry::prelude::*;
use concurry::{Completer, ConfigError, PoolStats, WorkerStats};

use crate::common::{ProbeBlocking, ProbeHandle, ProbeOptions};

fn send_sync_unpin<T: Send + Sync + Unpin>() {}
fn send_sync<T: Send + Sync>() {}
fn clone<T: Clone>() {}

#[test]
fn public_types_are_send_sync_unpin() {
    send_sync_unpin::<Promise<u8>>();
    send_sync_unpin::<Promise<String, std::io::Error>>();
    send_sync_unpin::<Completer<u8>>();
    send_sync_unpin::<Error>();
    send_sync_unpin::<Error<std::io::Error>>();
    send_sync_unpin::<ConfigError>();
    send_sync_unpin::<Mode>();
    send_sync_unpin::<LoadBalancing>();
    send_sync_unpin::<PoolStats>();
    send_sync_unpin::<WorkerStats>();
    send_sync_unpin::<ProbeHandle>();
    send_sync_unpin::<ProbeOptions>();
    send_sync::<ProbeBlocking<'static>>();
    clone::<ProbeHandle>();
}
