//! Dead letters: tasks whose attempts ran out (or that panicked without retries), kept with
//! their reason, attempts and last error in the dlq bucket (`TaskConfig::dead_letter_ttl`);
//! listed, replayed (run again under the same id) and purged.

use std::time::SystemTime;

use futures_util::StreamExt;

use super::record::{Dead, decode};
use super::setup::Store;
use super::submit::{Extra, TaskQueue, record, send};
use super::{check_id, from_ms, server_error};
use crate::cluster::run;
use crate::error::{ConfigError, Error};

/// A task in the dead-letter store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The task's id.
    pub id: String,
    /// The task's name (`RemoteTask::NAME`).
    pub task: String,
    /// Why it was dead-lettered.
    pub reason: String,
    /// How many attempts ran.
    pub attempts: u32,
    /// The last attempt's failure, as text.
    pub last_error: String,
    /// The node that gave up on it.
    pub node: String,
    /// When.
    pub at: SystemTime,
}

async fn list(store: &Store) -> Result<Vec<DeadLetter>, Error> {
    let err = |e: &dyn std::fmt::Display| server_error("list the dead letters", &store.url, e);
    let mut keys = store.dlq.keys().await.map_err(|e| err(&e))?;
    let mut ids = Vec::new();
    while let Some(k) = keys.next().await {
        ids.push(k.map_err(|e| err(&e))?);
    }
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let Some(bytes) = store.dlq.get(&id).await.map_err(|e| err(&e))? else {
            continue;
        };
        match decode::<Dead>(&bytes, "a dead letter") {
            Ok(d) => out.push(DeadLetter {
                id,
                task: d.task,
                reason: d.reason,
                attempts: d.attempts,
                last_error: d.last_error,
                node: d.node,
                at: from_ms(d.at_ms),
            }),
            Err(e) => tracing::warn!(task = %id, "concurry tasks: {e}"),
        }
    }
    out.sort_by_key(|d| d.at);
    Ok(out)
}

async fn replay(store: &Store, id: &str) -> Result<(), Error> {
    let err = |e: &dyn std::fmt::Display| server_error("replay a dead letter", &store.url, e);
    let entry = store.dlq.entry(id).await.map_err(|e| err(&e))?;
    // A purged letter leaves a marker entry behind.
    let Some(entry) = entry.filter(|e| e.operation == async_nats::jetstream::kv::Operation::Put)
    else {
        return Err(ConfigError::new(
            "task id",
            format!("{id:?}"),
            "no dead letter has this id (see TaskQueue::dead_letters)",
        )
        .into());
    };
    let dead: Dead = decode(&entry.value, "a dead letter").map_err(|e| err(&e))?;
    // The dead-letter result goes, so the replay can store its own; the new message id
    // keeps the stream's dedup window from swallowing it.
    store.results.purge(id).await.map_err(|e| err(&e))?;
    let msg_id = format!("{id}.replay.{}", entry.revision);
    let level = super::setup::parse_subject(&dead.subject)
        .map(|(queue, priority)| store.names.level(&queue, priority))
        .ok_or_else(|| {
            err(&format!(
                "a dead letter of an unknown subject {:?}",
                dead.subject
            ))
        })?;
    record(store, id, None, true).await?;
    send(
        store,
        &dead.task,
        id,
        &msg_id,
        &level,
        dead.payload,
        Extra::default(),
    )
    .await?
    .await
    .map_err(|e| err(&e))?;
    // Only the letter replayed goes: a node may already have run the replay and
    // dead-lettered it again (a new revision), and that letter stays.
    if let Err(e) = store
        .dlq
        .purge_expect_revision(id, Some(entry.revision))
        .await
    {
        let now = store.dlq.entry(id).await.map_err(|e| err(&e))?;
        if now.is_some_and(|n| n.revision == entry.revision) {
            return Err(err(&e));
        }
    }
    Ok(())
}

impl TaskQueue {
    /// The dead letters, oldest first.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if the server cannot be asked.
    pub fn dead_letters(&self) -> Result<Vec<DeadLetter>, Error> {
        let inner = self.inner.clone();
        run(async move { list(&inner.store).await })
    }

    /// Runs the dead letter `id` again, from its first attempt, under the same id: its
    /// dead-letter result is removed, so handles and `task_result` wait for the new one.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when no dead letter has this id, or the server cannot be asked.
    pub fn replay(&self, id: &str) -> Result<(), Error> {
        check_id(id)?;
        let inner = self.inner.clone();
        let id = id.to_string();
        run(async move { replay(&inner.store, &id).await })
    }

    /// Removes every dead letter (their results stay until they expire); how many.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if the server cannot be asked.
    pub fn purge_dead_letters(&self) -> Result<usize, Error> {
        let inner = self.inner.clone();
        run(async move {
            let store = &inner.store;
            let dead = list(store).await?;
            for d in &dead {
                store
                    .dlq
                    .purge(&d.id)
                    .await
                    .map_err(|e| server_error("purge a dead letter", &store.url, e))?;
            }
            Ok(dead.len())
        })
    }
}
