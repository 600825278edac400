//! One watch of the results bucket per queue handle, shared by every wait on it and
//! demultiplexed by key: a wait costs no consumer of its own (creating one is a round trip
//! per call, and a per-key watch started after the result was stored sees nothing).
//!
//! The watch starts on the first wait and ends after [`IDLE`] without waits. While it runs,
//! a task submitted from here is *expected*: its result, if it comes before anyone waits,
//! is parked (for [`PARK_FOR`], at most [`PARK_BYTES`] in all), so a later wait needs no
//! read. A wait on any other id reads the result once after registering (the watch started
//! before, so a result stored after that read reaches the wait through it). Waits still
//! read directly every second ([`super::handle`]), which covers a watch that lost entries
//! while it restarted.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::kv::{self, Operation};
use futures_util::StreamExt;
use tokio::sync::oneshot;

use super::record::{Stored, decode};
use crate::sync::os::{Mutex, lock};

/// How long a result nobody waited for yet stays parked.
const PARK_FOR: Duration = Duration::from_secs(60);

/// The most bytes of results parked at once; past it a result is not parked (a later wait
/// reads it).
const PARK_BYTES: usize = 64 << 20;

/// The watch ends after this long without any wait or expected task.
const IDLE: Duration = Duration::from_secs(30);

/// How often parked and expected entries are pruned.
const PRUNE: Duration = Duration::from_secs(5);

enum Slot {
    /// Submitted from here while the watch ran: its result comes through it.
    Expected(Instant),
    /// Its result came before anyone waited.
    Parked {
        stored: Stored,
        len: usize,
        at: Instant,
    },
    /// Waits for its result.
    Waiting(Vec<oneshot::Sender<Stored>>),
}

#[derive(Default)]
struct Shared {
    slots: HashMap<String, Slot>,
    parked_bytes: usize,
    running: bool,
    last_use: Option<Instant>,
}

impl Shared {
    fn unpark(&mut self, slot: &Slot) {
        if let Slot::Parked { len, .. } = slot {
            self.parked_bytes -= len;
        }
    }
}

/// The shared results watch of one [`Store`](super::setup::Store).
#[derive(Default)]
pub(crate) struct Watcher {
    shared: Arc<Mutex<Shared>>,
    starting: tokio::sync::Mutex<()>,
    task: Mutex<Option<tokio::task::AbortHandle>>,
}

/// One wait's registration; dropping it unregisters.
pub(crate) struct Waiter {
    shared: Arc<Mutex<Shared>>,
    id: String,
    /// The result, if it was parked.
    pub(crate) ready: Option<Stored>,
    /// The watch delivers the result here.
    pub(crate) rx: Option<oneshot::Receiver<Stored>>,
    /// Whether the result cannot have been stored unseen (an expected task): no read needed.
    pub(crate) expected: bool,
}

impl Drop for Waiter {
    fn drop(&mut self) {
        drop(self.rx.take());
        let mut shared = lock(&self.shared);
        if let Some(Slot::Waiting(txs)) = shared.slots.get_mut(&self.id) {
            txs.retain(|tx| !tx.is_closed());
            if txs.is_empty() {
                shared.slots.remove(&self.id);
            }
        }
    }
}

impl Watcher {
    /// Starts the watch unless it runs.
    pub(crate) async fn start(&self, results: &kv::Store) -> Result<(), kv::WatchError> {
        if lock(&self.shared).running {
            return Ok(());
        }
        let _one = self.starting.lock().await;
        if lock(&self.shared).running {
            return Ok(());
        }
        let watch = results.watch_all().await?;
        {
            let mut shared = lock(&self.shared);
            shared.running = true;
            shared.last_use = Some(Instant::now());
        }
        let task = crate::runtime::runtime()
            .spawn(watch_loop(watch, self.shared.clone()))
            .abort_handle();
        if let Some(old) = lock(&self.task).replace(task) {
            old.abort();
        }
        Ok(())
    }

    /// Marks the task `id`, about to be published from here, as expected, if the watch runs.
    pub(crate) fn expect(&self, id: &str) {
        let mut shared = lock(&self.shared);
        if shared.running {
            shared
                .slots
                .entry(id.to_string())
                .or_insert_with(|| Slot::Expected(Instant::now()));
        }
    }

    /// Registers a wait for `id`'s result (after [`start`](Watcher::start)).
    pub(crate) fn register(&self, id: &str) -> Waiter {
        let mut shared = lock(&self.shared);
        shared.last_use = Some(Instant::now());
        let mut waiter = Waiter {
            shared: self.shared.clone(),
            id: id.to_string(),
            ready: None,
            rx: None,
            expected: false,
        };
        let (tx, rx) = oneshot::channel();
        match shared.slots.remove(id) {
            Some(slot @ Slot::Parked { .. }) => {
                shared.unpark(&slot);
                if let Slot::Parked { stored, .. } = slot {
                    waiter.ready = Some(stored);
                }
                return waiter;
            }
            Some(Slot::Expected(_)) => {
                waiter.expected = true;
                shared.slots.insert(id.to_string(), Slot::Waiting(vec![tx]));
            }
            Some(Slot::Waiting(mut txs)) => {
                txs.push(tx);
                shared.slots.insert(id.to_string(), Slot::Waiting(txs));
            }
            None => {
                shared.slots.insert(id.to_string(), Slot::Waiting(vec![tx]));
            }
        }
        waiter.rx = Some(rx);
        waiter
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        if let Some(task) = lock(&self.task).take() {
            task.abort();
        }
    }
}

async fn watch_loop(mut watch: kv::Watch, shared: Arc<Mutex<Shared>>) {
    let mut prune = tokio::time::interval(PRUNE);
    prune.tick().await;
    loop {
        tokio::select! {
            entry = watch.next() => match entry {
                Some(Ok(e)) if e.operation == Operation::Put => deliver(&shared, e),
                Some(Ok(_)) => {}
                Some(Err(e)) => tracing::warn!("concurry tasks: result watch: {e}"),
                None => break,
            },
            _ = prune.tick() => {
                let mut s = lock(&shared);
                let now = Instant::now();
                let mut freed = 0;
                s.slots.retain(|_, slot| match slot {
                    Slot::Expected(at) => now.duration_since(*at) < PARK_FOR,
                    Slot::Parked { len, at, .. } => {
                        let keep = now.duration_since(*at) < PARK_FOR;
                        if !keep {
                            freed += *len;
                        }
                        keep
                    }
                    Slot::Waiting(_) => true,
                });
                s.parked_bytes -= freed;
                let idle = s.last_use.is_none_or(|t| now.duration_since(t) >= IDLE);
                if s.slots.is_empty() && idle {
                    s.running = false;
                    return;
                }
            }
        }
    }
    // The watch ended: what it was expected to bring must now be read.
    let mut s = lock(&shared);
    s.running = false;
    s.slots.retain(|_, slot| matches!(slot, Slot::Waiting(_)));
    s.parked_bytes = 0;
}

fn deliver(shared: &Mutex<Shared>, e: kv::Entry) {
    let mut s = lock(shared);
    let Some(slot) = s.slots.remove(&e.key) else {
        return;
    };
    let stored = match decode::<Stored>(&e.value, "a task result") {
        Ok(stored) => stored,
        Err(m) => {
            tracing::warn!(task = %e.key, "concurry tasks: {m}");
            // Left to the waits' direct reads.
            if matches!(slot, Slot::Waiting(_) | Slot::Parked { .. }) {
                s.slots.insert(e.key, slot);
            }
            return;
        }
    };
    match slot {
        Slot::Waiting(txs) => {
            for tx in txs {
                let _ = tx.send(stored.clone());
            }
        }
        Slot::Expected(_) => {
            let len = e.value.len();
            if s.parked_bytes + len <= PARK_BYTES {
                s.parked_bytes += len;
                let at = Instant::now();
                s.slots.insert(e.key, Slot::Parked { stored, len, at });
            }
        }
        // The first result stays.
        parked @ Slot::Parked { .. } => {
            s.slots.insert(e.key, parked);
        }
    }
}
