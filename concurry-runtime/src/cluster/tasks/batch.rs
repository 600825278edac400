//! Many tasks at once: a batch submit that pipelines the status records and the publishes
//! (one round trip's worth of waiting for the lot instead of two per task), and a batch
//! wait on one watch of the results bucket instead of one per task.

use std::collections::HashMap;
use std::future::IntoFuture;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use futures_util::stream::{FuturesOrdered, FuturesUnordered};
use futures_util::{StreamExt, TryStreamExt};

use super::handle::{TaskHandle, typed};
use super::record::Stored;
use super::server_error;
use super::setup::Store;
use super::status::{TaskStatus, lookup, stored};
use super::submit::{Extra, Prepared, Recorded, Submit, TaskQueue, record, send};
use crate::error::{ConfigError, Error};
use crate::remote::RemoteTask;

/// Requests in flight at once on the connection during a batch.
const IN_FLIGHT: usize = 256;

/// Publish acks awaited at once during a batch submit: well below the JetStream
/// context's bound on unawaited acks (5,000 by default), past which a publish waits for a
/// permit that only an awaited ack gives back.
const ACKS: usize = 1024;

/// How often a batch wait reads the missing results directly.
const RECHECK: Duration = Duration::from_secs(1);

impl TaskQueue {
    /// Submits one task `T` per item of `args`, with the default options; see
    /// [`submit_batch_with`](TaskQueue::submit_batch_with).
    ///
    /// # Errors
    ///
    /// As [`submit_batch_with`](TaskQueue::submit_batch_with).
    pub fn submit_batch<T: RemoteTask>(
        &self,
        args: impl IntoIterator<Item = T::Args>,
    ) -> Result<Vec<TaskHandle<T>>, Error> {
        self.submit_batch_with::<T>(args.into_iter().map(|a| (a, Submit::new())))
    }

    /// Submits one task `T` per item (arguments and options), pipelined: returns once every
    /// task is stored, with their handles in order. Each task is as durable and idempotent
    /// as with [`submit_with`](TaskQueue::submit_with).
    ///
    /// # Errors
    ///
    /// As [`submit_with`](TaskQueue::submit_with), for the first item that fails (items
    /// before it may be stored; submitting again with the same ids is safe).
    pub fn submit_batch_with<T: RemoteTask>(
        &self,
        items: impl IntoIterator<Item = (T::Args, Submit)>,
    ) -> Result<Vec<TaskHandle<T>>, Error> {
        let prepared = items
            .into_iter()
            .map(|(a, s)| self.prepare::<T>(a, s))
            .collect::<Result<Vec<Prepared>, Error>>()?;
        let ids: Vec<String> = prepared.iter().map(|p| p.id.clone()).collect();
        let inner = self.inner.clone();
        super::here(async move {
            let store = &inner.store;
            // The results come back to this handle's inbox: a message per task from the
            // node that stored it, cheaper than a delivery of the results watch.
            let reply = store.replies().await;
            // Tasks with ids of the caller's are recorded first (a re-submit of a finished
            // one is not published again); those with fresh ids need no record, unless
            // delayed (recorded `Scheduled` as they are published).
            let mut recorded: Vec<Option<Recorded>> = Vec::with_capacity(prepared.len());
            let mut records = FuturesOrdered::new();
            for p in &prepared {
                if records.len() >= IN_FLIGHT
                    && let Some(r) = records.next().await
                {
                    recorded.push(r?);
                }
                records.push_back(async move {
                    if p.fresh {
                        Ok(None)
                    } else {
                        record(store, &p.id, p.not_before, false).await.map(Some)
                    }
                });
            }
            while let Some(r) = records.next().await {
                recorded.push(r?);
            }
            drop(records);
            // Published in order, with at most `ACKS` acks awaited at once: each
            // unawaited ack holds one of the context's ack permits (5,000 by default), so
            // holding them all until every task is sent stalls a batch larger than that.
            let mut acks: FuturesUnordered<BoxFuture<'_, Result<(), Error>>> =
                FuturesUnordered::new();
            for (p, recorded) in prepared.into_iter().zip(recorded) {
                match recorded {
                    // Finished before: it does not run again.
                    Some(Recorded::Finished) => continue,
                    Some(Recorded::New) | None => store.watcher.expect(&p.id, reply.is_some()),
                    Some(Recorded::Again) => {}
                }
                while acks.len() >= ACKS {
                    settle(&mut acks).await?;
                }
                let scheduled = p.scheduled();
                let ack = send(
                    store,
                    T::NAME,
                    &p.id,
                    &p.id,
                    &p.level,
                    p.payload,
                    Extra {
                        not_before: p.not_before,
                        reply: reply.as_deref(),
                    },
                )
                .await?
                .into_future();
                let stored = async move {
                    ack.await
                        .map(|_| ())
                        .map_err(|e| server_error("store the task", &store.url, e))
                };
                if recorded.is_some() || !scheduled {
                    // Recorded before, or fresh and due: its message is its record.
                    acks.push(Box::pin(stored));
                } else {
                    let (id, not_before) = (p.id, p.not_before);
                    acks.push(Box::pin(async move {
                        let (r, a) = tokio::join!(record(store, &id, not_before, false), stored);
                        r.and(a)
                    }));
                }
            }
            while !acks.is_empty() {
                settle(&mut acks).await?;
            }
            Ok::<(), Error>(())
        })?;
        Ok(ids
            .into_iter()
            .map(|id| TaskHandle::new(self.clone(), id))
            .collect())
    }

    /// Waits for the results of `tasks` (at most `timeout` in all) on one watch of the
    /// results bucket; each in order, as [`TaskHandle::result`] gives it. A task still
    /// without a result at the deadline gets [`Error::Timeout`].
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if the server cannot be asked.
    pub fn results<T: RemoteTask>(
        &self,
        tasks: &[TaskHandle<T>],
        timeout: Duration,
    ) -> Result<Vec<Result<T::Output, Error>>, Error> {
        let ids: Vec<String> = tasks.iter().map(|t| t.task_id().to_string()).collect();
        let inner = self.inner.clone();
        let found = super::here(async move { wait_many(&inner.store, ids, timeout).await })?;
        Ok(found.into_iter().map(|r| r.and_then(typed::<T>)).collect())
    }
}

/// Awaits the next of the publish acks in flight.
async fn settle(
    acks: &mut FuturesUnordered<BoxFuture<'_, Result<(), Error>>>,
) -> Result<(), Error> {
    acks.next().await.unwrap_or(Ok(()))
}

/// The results of `ids`: each id registered first; those of a batch submitted from here
/// come through the queue handle's replies inbox, the others through its shared results
/// watch, after one direct read unless submitted from here while the watch ran (the watch
/// brings any stored after that); and every [`RECHECK`] without news
/// the missing ones are read directly.
async fn wait_many(
    store: &Store,
    ids: Vec<String>,
    timeout: Duration,
) -> Result<Vec<Result<Stored, Error>>, Error> {
    let deadline = Instant::now() + timeout;
    let err = |e: &dyn std::fmt::Display| server_error("wait for task results", &store.url, e);
    let mut out: Vec<Option<Result<Stored, Error>>> = (0..ids.len()).map(|_| None).collect();
    let mut missing: Slots = HashMap::new();
    for (i, id) in ids.iter().enumerate() {
        missing.entry(id.clone()).or_default().push(i);
    }
    // Registered (and kept registered) until its result is in.
    let mut waiters = HashMap::with_capacity(missing.len());
    let mut delivered = FuturesUnordered::new();
    let mut unseen = Vec::new();
    let mut watched = false;
    let mut ready = Vec::new();
    for id in missing.keys() {
        let mut w = store.watcher.register(id);
        if let Some(s) = w.ready.take() {
            ready.push((id.clone(), s));
            continue;
        }
        if !w.expected {
            unseen.push(id.clone());
        }
        watched |= !w.replied;
        if let Some(rx) = w.rx.take() {
            let id = id.clone();
            delivered.push(async move { (id, rx.await.ok()) });
        }
        waiters.insert(id.clone(), w);
    }
    for (id, s) in ready {
        fill(&mut missing, &mut out, &id, Ok(s));
    }
    // Tasks of a batch submitted from here come through the replies inbox; the others
    // through the watch, started before the unseen ones are read once.
    if watched {
        store
            .watcher
            .start(&store.results)
            .await
            .map_err(|e| err(&e))?;
    }
    // Those that may have been stored before the registration.
    let read: Vec<(String, Option<Stored>)> = futures_util::stream::iter(unseen)
        .map(|id| async move {
            let s = stored(store, &id).await;
            s.map(|s| (id, s))
        })
        .buffer_unordered(IN_FLIGHT)
        .try_collect()
        .await?;
    for (id, s) in read {
        if let Some(s) = s {
            fill(&mut missing, &mut out, &id, Ok(s));
        }
    }
    let mut next_check = Instant::now() + RECHECK;
    // One timer for the whole wait, moved on only when it fires (not one per result).
    let timer = tokio::time::sleep_until(deadline.min(next_check).into());
    tokio::pin!(timer);
    while !missing.is_empty() {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        tokio::select! {
            Some((id, s)) = delivered.next() => {
                next_check = Instant::now() + RECHECK;
                waiters.remove(&id);
                if let Some(s) = s {
                    fill(&mut missing, &mut out, &id, Ok(s));
                }
                continue;
            },
            () = &mut timer => {}
        }
        // The timer fired: a recheck is due unless results came in since it was set.
        timer.as_mut().reset(deadline.min(next_check).into());
        if Instant::now() >= next_check {
            next_check = Instant::now() + RECHECK;
            timer.as_mut().reset(deadline.min(next_check).into());
            // No news for a while: read the missing ones directly.
            let pending: Vec<String> = missing.keys().cloned().collect();
            let read: Vec<(String, Option<Stored>, TaskStatus)> =
                futures_util::stream::iter(pending)
                    .map(|id| async move {
                        let s = stored(store, &id).await?;
                        let status = match s {
                            Some(_) => TaskStatus::Pending,
                            None => lookup(store, &id).await?,
                        };
                        Ok::<_, Error>((id, s, status))
                    })
                    .buffer_unordered(IN_FLIGHT)
                    .try_collect()
                    .await?;
            for (id, s, status) in read {
                if let Some(s) = s {
                    fill(&mut missing, &mut out, &id, Ok(s));
                } else if status == TaskStatus::Unknown {
                    let e = ConfigError::new(
                        "task id",
                        format!("{id:?}"),
                        "no such task in this namespace: never submitted, or its result \
                         expired (TaskConfig::result_ttl)",
                    );
                    fill(&mut missing, &mut out, &id, Err(e));
                }
            }
            // A watch that ended (idle, or the server went away) starts again.
            if watched {
                let _ = store.watcher.start(&store.results).await;
            }
        }
    }
    Ok(out
        .into_iter()
        .map(|r| r.unwrap_or(Err(Error::Timeout)))
        .collect())
}

type Slots = HashMap<String, Vec<usize>>;

/// Gives `id`'s outcome to every position that asked for it.
fn fill(
    missing: &mut Slots,
    out: &mut [Option<Result<Stored, Error>>],
    id: &str,
    outcome: Result<Stored, ConfigError>,
) {
    if let Some(slots) = missing.remove(id) {
        for i in slots {
            out[i] = Some(outcome.clone().map_err(Error::Config));
        }
    }
}
