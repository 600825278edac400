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
    /// Submitted from here while the watch ran, or naming the replies inbox (`replied`):
    /// its result comes through one of them.
    Expected { at: Instant, replied: bool },
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
    /// The watch of the results bucket runs.
    running: bool,
    /// The replies inbox is read: results of tasks submitted here come through it.
    replying: bool,
    last_use: Option<Instant>,
}

impl Shared {
    fn unpark(&mut self, slot: &Slot) {
        if let Slot::Parked { len, .. } = slot {
            self.parked_bytes -= len;
        }
    }
}

/// The shared results watch of one [`Store`](super::setup::Store), and its replies inbox.
#[derive(Default)]
pub(crate) struct Watcher {
    shared: Arc<Mutex<Shared>>,
    starting: tokio::sync::Mutex<()>,
    task: Mutex<Option<tokio::task::AbortHandle>>,
    replies: Mutex<Option<Replies>>,
}

/// The inbox nodes send the results of tasks submitted here to, and its reader.
struct Replies {
    inbox: Arc<str>,
    task: tokio::task::AbortHandle,
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
    /// Whether the result comes through the replies inbox: no watch needed.
    pub(crate) replied: bool,
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

    /// The inbox for the results of tasks submitted here (`<inbox>.<task id>`, each
    /// message a stored result), read from now on: a node sends a result there once it is
    /// stored, so waits on these tasks need no watch of the bucket (a consumer delivery per
    /// result, for every result of the namespace). Lost replies (a reconnect) are covered by
    /// the waits' direct reads.
    pub(crate) async fn replies(
        &self,
        client: &async_nats::Client,
    ) -> Result<Arc<str>, async_nats::SubscribeError> {
        if let Some(r) = lock(&self.replies).as_ref() {
            return Ok(r.inbox.clone());
        }
        let _one = self.starting.lock().await;
        if let Some(r) = lock(&self.replies).as_ref() {
            return Ok(r.inbox.clone());
        }
        let inbox: Arc<str> = client.new_inbox().into();
        let sub = client.subscribe(format!("{inbox}.*")).await?;
        lock(&self.shared).replying = true;
        let task = crate::runtime::runtime()
            .spawn(reply_loop(sub, self.shared.clone(), inbox.len() + 1))
            .abort_handle();
        *lock(&self.replies) = Some(Replies {
            inbox: inbox.clone(),
            task,
        });
        Ok(inbox)
    }

    /// Marks the task `id`, about to be published from here, as expected, if its result
    /// will come through the watch, or through the replies inbox (`replied`: its message
    /// names the inbox).
    pub(crate) fn expect(&self, id: &str, replied: bool) {
        let mut shared = lock(&self.shared);
        let replied = replied && shared.replying;
        if shared.running || replied {
            shared
                .slots
                .entry(id.to_string())
                .or_insert_with(|| Slot::Expected {
                    at: Instant::now(),
                    replied,
                });
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
            replied: false,
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
            Some(Slot::Expected { replied, .. }) => {
                waiter.expected = true;
                waiter.replied = replied;
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
        if let Some(r) = lock(&self.replies).take() {
            r.task.abort();
        }
    }
}

/// Reads the replies inbox: each message a task's stored result, its id the subject's last
/// token (after `prefix` bytes).
async fn reply_loop(mut sub: async_nats::Subscriber, shared: Arc<Mutex<Shared>>, prefix: usize) {
    let mut prune = tokio::time::interval(PRUNE);
    prune.tick().await;
    loop {
        tokio::select! {
            m = sub.next() => match m {
                Some(m) => {
                    if let Some(id) = m.subject.get(prefix..) {
                        deliver(&shared, id.to_string(), &m.payload);
                    }
                }
                None => break,
            },
            _ = prune.tick() => prune_parked(&mut lock(&shared)),
        }
    }
    // The connection closed: waits go on with their direct reads.
    lock(&shared).replying = false;
}

/// Forgets parked results and expected tasks nobody waited for within [`PARK_FOR`].
fn prune_parked(s: &mut Shared) {
    let now = Instant::now();
    let mut freed = 0;
    s.slots.retain(|_, slot| match slot {
        Slot::Expected { at, .. } => now.duration_since(*at) < PARK_FOR,
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
}

async fn watch_loop(mut watch: kv::Watch, shared: Arc<Mutex<Shared>>) {
    let mut prune = tokio::time::interval(PRUNE);
    prune.tick().await;
    loop {
        tokio::select! {
            entry = watch.next() => match entry {
                Some(Ok(e)) if e.operation == Operation::Put => deliver(&shared, e.key, &e.value),
                Some(Ok(_)) => {}
                Some(Err(e)) => tracing::warn!("concurry tasks: result watch: {e}"),
                None => break,
            },
            _ = prune.tick() => {
                let mut s = lock(&shared);
                prune_parked(&mut s);
                let now = Instant::now();
                let idle = s.last_use.is_none_or(|t| now.duration_since(t) >= IDLE);
                if s.slots.is_empty() && idle {
                    s.running = false;
                    return;
                }
            }
        }
    }
    // The watch ended: what it was expected to bring must now be read (unless the replies
    // inbox brings it).
    let mut s = lock(&shared);
    s.running = false;
    let mut freed = 0;
    s.slots.retain(|_, slot| match slot {
        Slot::Waiting(_) => true,
        Slot::Expected { replied, .. } => *replied,
        Slot::Parked { len, .. } => {
            freed += *len;
            false
        }
    });
    s.parked_bytes -= freed;
}

/// Hands the stored result `value` of the task `key` to its waits, or parks it.
fn deliver(shared: &Mutex<Shared>, key: String, value: &[u8]) {
    let mut s = lock(shared);
    let Some(slot) = s.slots.remove(&key) else {
        return;
    };
    let stored = match decode::<Stored>(value, "a task result") {
        Ok(stored) => stored,
        Err(m) => {
            tracing::warn!(task = %key, "concurry tasks: {m}");
            // Left to the waits' direct reads.
            if matches!(slot, Slot::Waiting(_) | Slot::Parked { .. }) {
                s.slots.insert(key, slot);
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
        Slot::Expected { .. } => {
            let len = value.len();
            if s.parked_bytes + len <= PARK_BYTES {
                s.parked_bytes += len;
                let at = Instant::now();
                s.slots.insert(key, Slot::Parked { stored, len, at });
            }
        }
        // The first result stays.
        parked @ Slot::Parked { .. } => {
            s.slots.insert(key, parked);
        }
    }
}
