//! Cancel (revoke): a mark in the cancel bucket, which every node checks before it runs a
//! task, and a `Cancelled` result, which ends every wait at once and wins over a result a
//! run still in progress may store later; the task's message is then removed from the
//! stream.

use super::record::{Failure, Outcome, Stored, encode};
use super::setup::Store;
use super::submit::TaskQueue;
use super::{check_id, now_ms, server_error};
use crate::cluster::run;
use crate::error::Error;

pub(crate) async fn cancel(store: &Store, id: &str) -> Result<bool, Error> {
    store
        .cancel
        .put(id, now_ms().to_string().into_bytes().into())
        .await
        .map_err(|e| server_error("store a task's cancel", &store.url, e))?;
    let decided = cancelled_result(store, id).await?;
    if decided {
        // Its message goes too: a queued or delayed task then no longer counts as stored
        // work before a node has seen the revoke (a node running it keeps running it;
        // its lease renewals and its ack of a message gone are ignored).
        match store.message_of(id).await {
            Ok(Some(m)) => {
                if let Err(e) = store.stream.delete_message(m.sequence).await {
                    tracing::debug!(task = id, "concurry tasks: a cancelled task's message: {e}");
                }
            }
            Ok(None) => {}
            Err(e) => tracing::debug!(task = id, "concurry tasks: {e}"),
        }
    }
    Ok(decided)
}

/// Stores the `Cancelled` result of `id` unless it has one: true if this one was stored.
pub(crate) async fn cancelled_result(store: &Store, id: &str) -> Result<bool, Error> {
    let result = encode(&Stored {
        outcome: Outcome::Failed(Failure::Cancelled),
        attempt: 0,
        node: String::new(),
        started_ms: 0,
        task: String::new(),
        subject: String::new(),
        submitted_ms: 0,
        finished_ms: now_ms(),
    });
    match store.results.create(id, result.into()).await {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == async_nats::jetstream::kv::CreateErrorKind::AlreadyExists => {
            Ok(false)
        }
        Err(e) => Err(server_error("store a task's cancel", &store.url, e)),
    }
}

impl TaskQueue {
    /// Cancels (revokes) the task `id`. A queued or delayed task never runs, also after
    /// nodes or the server restart (the revoke is stored, for `TaskConfig::revoke_ttl`); a
    /// running one runs on, but its result is dropped and its status is `Cancelled`.
    /// Cancelling an id before it is submitted revokes it in advance.
    ///
    /// True if the task had not finished (this cancel decided its outcome); false if it
    /// already had a result, which stays.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for an invalid id, or if the server cannot store the cancel.
    pub fn cancel(&self, id: &str) -> Result<bool, Error> {
        check_id(id)?;
        let inner = self.inner.clone();
        let id = id.to_string();
        run(async move { cancel(&inner.store, &id).await })
    }
}
