//! The node side: fetch tasks by priority, run them by name under a lease, store the first
//! result, retry, dead-letter, honour cancels and delays.
//!
//! One fetch loop per node: it waits for a free slot, picks a level ([`Levels`]), fetches
//! without waiting (`no_wait`) as many tasks as there are free slots, and runs each on a
//! blocking thread. A level found empty is skipped until a doorbell (a core subscription on
//! the queue's subjects: every publish rings it) or the periodic recheck (redeliveries and
//! delays ring nothing).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use async_nats::jetstream::consumer::PullConsumer;
use async_nats::jetstream::kv::{CreateErrorKind, Operation};
use async_nats::jetstream::{AckKind, Message};
use futures_util::{FutureExt, StreamExt};
use tokio::sync::{Semaphore, watch};

use super::config::TaskConfig;
use super::record::{Dead, Failure, Outcome, State, Stored, TaskMsg, decode, encode};
use super::schedule::Levels;
use super::setup::Store;
use super::submit::Priority;
use super::{NOT_BEFORE, TASK_ID, now_ms};
use crate::cancel::Token;
use crate::cluster::{Cluster, run};
use crate::error::Error;
use crate::remote::task::REMOTE_TASKS;
use crate::sync::os::{Mutex, lock};
use crate::wire::Fault;

/// How often every level is fetched from again even without a doorbell.
const RECHECK: Duration = Duration::from_millis(250);

/// The pause after a failed fetch (the server is away, say).
const ERROR_PAUSE: Duration = Duration::from_millis(250);

/// What every task handler of a node shares.
struct Ctx {
    store: Store,
    node: String,
    /// The consumers' `ack_wait`, as the server has it.
    lease: Duration,
    /// The cancel flags of the tasks this node handles now, by id: a revoke stored while one
    /// runs sets its flag, which the function sees through `concurry::check_cancelled()`.
    running: Mutex<HashMap<String, Token>>,
}

/// Keeps a task's cancel flag registered while the node handles it.
struct Registered<'a> {
    ctx: &'a Ctx,
    id: String,
    token: Token,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        let mut running = lock(&self.ctx.running);
        if running
            .get(&self.id)
            .is_some_and(|t| t.is_below(&self.token))
        {
            running.remove(&self.id);
        }
    }
}

impl Ctx {
    /// The longest a message is given back for: below the lease, so a delayed task never
    /// sits with a node past its lease.
    fn cap(&self) -> Duration {
        self.lease.mul_f64(0.75)
    }
}

/// A node's task consumers, running in the background.
pub(crate) struct TaskRunner {
    stop: watch::Sender<bool>,
    fetch: tokio::task::JoinHandle<()>,
    revokes: tokio::task::AbortHandle,
    slots: Arc<Semaphore>,
    total: u32,
    lease: Duration,
}

/// Starts the task consumers of the node `node`: with `explicit` settings if given (an
/// error then fails the node's start), else with the defaults when the binary has any
/// remote task (an error is then a warning: the node serves without tasks).
pub(crate) fn start_for_node(
    cluster: &Cluster,
    node: &str,
    capacity: u32,
    explicit: Option<TaskConfig>,
) -> Result<Option<TaskRunner>, Error> {
    let required = explicit.is_some();
    if !required && REMOTE_TASKS.is_empty() {
        return Ok(None);
    }
    let config = explicit.unwrap_or_default();
    config.validate()?;
    let slots = config
        .slots
        .unwrap_or_else(|| usize::try_from(capacity).unwrap_or(1));
    let client = cluster.client().clone();
    let ns = cluster.namespace().to_string();
    let url = cluster.url().to_string();
    let node = node.to_string();
    match run(async move { start(client, ns, url, node, config, slots).await }) {
        Ok(r) => Ok(Some(r)),
        Err(e) if !required => {
            tracing::warn!("concurry node: serving without durable tasks: {e}");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

async fn start(
    client: async_nats::Client,
    ns: String,
    url: String,
    node: String,
    config: TaskConfig,
    slots: usize,
) -> Result<TaskRunner, Error> {
    let store = Store::open(client.clone(), &ns, &url, config).await?;
    let mut consumers = Vec::with_capacity(4);
    for p in Priority::ALL {
        consumers.push(store.consumer(p).await?);
    }
    let lease = consumers[0].cached_info().config.ack_wait;
    let bell = client
        .subscribe(store.names.queue_wildcard(&store.config.queue))
        .await
        .map_err(|e| super::server_error("subscribe to the task queue", &url, e))?;
    let total = u32::try_from(slots).unwrap_or(u32::MAX);
    let sem = Arc::new(Semaphore::new(total as usize));
    let (stop, stopped) = watch::channel(false);
    let last = store
        .cancel
        .stream
        .clone()
        .info()
        .await
        .map_err(|e| super::server_error("read the cancel bucket", &url, e))?
        .state
        .last_sequence;
    let revoked = store
        .cancel
        .watch_all_from_revision(last + 1)
        .await
        .map_err(|e| super::server_error("watch the cancel bucket", &url, e))?;
    let ctx = Arc::new(Ctx {
        store,
        node,
        lease,
        running: Mutex::new(HashMap::new()),
    });
    let revokes = crate::runtime::runtime()
        .spawn(revoke_loop(ctx.clone(), revoked))
        .abort_handle();
    tracing::info!(
        node = %ctx.node,
        queue = %ctx.store.config.queue,
        slots,
        "concurry node: serving durable tasks"
    );
    let fetch =
        crate::runtime::runtime().spawn(fetch_loop(ctx, consumers, bell, sem.clone(), stopped));
    Ok(TaskRunner {
        stop,
        fetch,
        revokes,
        slots: sem,
        total,
        lease,
    })
}

impl TaskRunner {
    /// Stops fetching and waits (at most a lease) for the running tasks to store their
    /// results; a task still running after that is redelivered elsewhere once its lease
    /// lapses.
    pub(crate) fn drain(&self) {
        let _ = self.stop.send(true);
        let fetch = self.fetch.abort_handle();
        let revokes = self.revokes.clone();
        let slots = self.slots.clone();
        let (total, lease) = (self.total, self.lease);
        run(async move {
            let finished =
                tokio::time::timeout(lease, slots.acquire_many_owned(total.max(1))).await;
            fetch.abort();
            revokes.abort();
            if finished.is_err() {
                tracing::warn!(
                    "concurry node: drained with tasks still running; they run again elsewhere"
                );
            }
        });
    }
}

impl Drop for TaskRunner {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        self.fetch.abort();
        self.revokes.abort();
    }
}

/// Sets the cancel flag of each task revoked while this node runs it.
async fn revoke_loop(ctx: Arc<Ctx>, mut revoked: async_nats::jetstream::kv::Watch) {
    while let Some(entry) = revoked.next().await {
        match entry {
            Ok(e) if e.operation == Operation::Put => {
                if let Some(t) = lock(&ctx.running).get(&e.key) {
                    t.cancel();
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("concurry node: cancel watch: {e}"),
        }
    }
}

/// How long after a doorbell an empty fetch is tried again instead of taken as "empty":
/// the core message can arrive before the stream's consumer has the task.
const BELL_GRACE: Duration = Duration::from_millis(50);

fn ring(levels: &mut Levels, rung: &mut [Option<Instant>; 4], subject: &str) {
    if let Some(p) = subject.rsplit('.').next().and_then(Priority::from_token) {
        levels.ring(p.level());
        rung[p.level()] = Some(Instant::now());
    }
}

async fn fetch_loop(
    ctx: Arc<Ctx>,
    consumers: Vec<PullConsumer>,
    mut bell: async_nats::Subscriber,
    sem: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
) {
    let mut levels = Levels::default();
    let mut rung: [Option<Instant>; 4] = [None; 4];
    let mut checked = Instant::now();
    loop {
        if *stop.borrow() {
            return;
        }
        let first = tokio::select! {
            p = sem.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
            _ = stop.changed() => return,
        };
        while let Some(Some(m)) = bell.next().now_or_never() {
            ring(&mut levels, &mut rung, &m.subject);
        }
        if checked.elapsed() >= RECHECK {
            levels.ring_all();
            checked = Instant::now();
        }
        let Some(level) = levels.next() else {
            drop(first);
            tokio::select! {
                m = bell.next() => if let Some(m) = m { ring(&mut levels, &mut rung, &m.subject) },
                () = tokio::time::sleep(RECHECK) => {
                    levels.ring_all();
                    checked = Instant::now();
                }
                _ = stop.changed() => return,
            }
            continue;
        };
        let want = sem.available_permits() + 1;
        let batch = consumers[level].fetch().max_messages(want).messages().await;
        let mut batch = match batch {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!("concurry node: task fetch failed: {e}");
                drop(first);
                tokio::select! {
                    () = tokio::time::sleep(ERROR_PAUSE) => {}
                    _ = stop.changed() => return,
                }
                continue;
            }
        };
        let mut first = Some(first);
        let mut got = 0usize;
        while let Some(m) = batch.next().await {
            match m {
                Ok(msg) => {
                    got += 1;
                    let permit = match first.take() {
                        Some(p) => p,
                        None => match sem.clone().acquire_owned().await {
                            Ok(p) => p,
                            Err(_) => return,
                        },
                    };
                    let ctx = ctx.clone();
                    tokio::spawn(async move {
                        handle(&ctx, msg).await;
                        drop(permit);
                    });
                }
                Err(e) => {
                    tracing::warn!("concurry node: task fetch: {e}");
                    break;
                }
            }
        }
        if got == 0 {
            if rung[level].is_some_and(|t| t.elapsed() < BELL_GRACE) {
                // Rung just now: the task is on its way into the consumer.
                tokio::time::sleep(Duration::from_millis(1)).await;
            } else {
                levels.found_empty(level);
            }
        } else {
            levels.served(level);
        }
    }
}

fn header(headers: Option<&HeaderMap>, name: &str) -> Option<String> {
    headers
        .and_then(|h| h.get(name))
        .map(|v| v.as_str().to_string())
}

async fn ack(msg: &Message, kind: AckKind) {
    let done = match kind {
        AckKind::Ack => msg.double_ack().await,
        other => msg.ack_with(other).await,
    };
    if let Err(e) = done {
        tracing::warn!("concurry node: task ack failed: {e}");
    }
}

/// Gives `msg` back to be delivered again after `after` (capped below the lease).
async fn give_back(ctx: &Ctx, msg: &Message, after: Duration) {
    ack(msg, AckKind::Nak(Some(after.min(ctx.cap())))).await;
}

async fn handle(ctx: &Ctx, msg: Message) {
    let store = &ctx.store;
    let headers = msg.headers.as_ref();
    let Some(id) = header(headers, TASK_ID) else {
        tracing::warn!(subject = %msg.subject, "concurry node: a task message without id; dropped");
        ack(&msg, AckKind::Term).await;
        return;
    };
    let not_before = header(headers, NOT_BEFORE).and_then(|v| v.parse::<u64>().ok());
    // Registered before the cancel is read: a revoke after the read still reaches the run.
    let registered = Registered {
        ctx,
        id: id.clone(),
        token: Token::root(),
    };
    lock(&ctx.running).insert(id.clone(), registered.token.clone());
    let (cancelled, existing, state) = tokio::join!(
        store.cancel.get(&id),
        super::status::stored(store, &id),
        store.status.get(&id)
    );
    let (cancelled, existing, state) = match (cancelled, existing, state) {
        (Ok(c), Ok(e), Ok(s)) => (c, e, s),
        _ => {
            tracing::warn!(task = %id, "concurry node: cannot read the task's records; later");
            give_back(ctx, &msg, ERROR_PAUSE * 4).await;
            return;
        }
    };
    if existing.is_some() {
        // A duplicate (a re-submit after the dedup window, a run whose ack was lost).
        ack(&msg, AckKind::Ack).await;
        return;
    }
    if cancelled.is_some() {
        if let Err(e) = super::cancel::cancel(store, &id).await {
            tracing::warn!(task = %id, "concurry node: {e}");
        }
        ack(&msg, AckKind::Ack).await;
        return;
    }
    let state = state.and_then(|b| decode::<State>(&b, "a task status").ok());
    let mut due = not_before.unwrap_or(0);
    if let Some(State::Retrying { at_ms, .. }) = &state {
        due = due.max(*at_ms);
    }
    let now = now_ms();
    if due > now {
        give_back(ctx, &msg, Duration::from_millis(due - now)).await;
        return;
    }
    let task = match decode::<TaskMsg>(&msg.payload, "a task message") {
        Ok(t) => t,
        Err(message) => {
            finish(
                ctx,
                &msg,
                &id,
                1,
                Outcome::Failed(Failure::BadMessage { message }),
            )
            .await;
            return;
        }
    };
    let attempt = match &state {
        Some(State::Running { attempt, .. } | State::Retrying { attempt, .. }) => attempt + 1,
        _ => 1,
    };
    let Some(entry) = REMOTE_TASKS.iter().find(|t| t.name == task.task) else {
        let f = Failure::UnknownTask {
            task: task.task.clone(),
            node: ctx.node.clone(),
        };
        finish(ctx, &msg, &id, attempt, Outcome::Failed(f)).await;
        return;
    };
    if entry.schema != task.schema {
        let f = Failure::Schema {
            task: task.task.clone(),
            node: ctx.node.clone(),
        };
        finish(ctx, &msg, &id, attempt, Outcome::Failed(f)).await;
        return;
    }
    let running = encode(&State::Running {
        node: ctx.node.clone(),
        attempt,
    });
    if let Err(e) = store.status.put(&id, running.into()).await {
        tracing::warn!(task = %id, "concurry node: status not recorded: {e}");
    }
    let run_fn = entry.run;
    let args = task.args;
    let token = registered.token.clone();
    // The task's `limits()`: its pool's, hosted by the pool's process (`limits.rs`).
    let limits = super::limits::for_run(
        &store.js.client(),
        &store.names.stream,
        &task.task,
        &ctx.node,
    );
    let mut job = tokio::task::spawn_blocking(move || {
        crate::limit::context::with_hosted(&limits, || {
            crate::cancel::context::in_token(&token, || run_fn(&args))
        })
    });
    // Renews the lease every third of it while the task runs.
    let mut tick = tokio::time::interval(ctx.lease / 3);
    tick.tick().await;
    let out = loop {
        tokio::select! {
            r = &mut job => break r,
            _ = tick.tick() => ack(&msg, AckKind::Progress).await,
        }
    };
    let out = out.unwrap_or_else(|e| {
        Err(Fault::Panicked {
            message: e.to_string(),
        })
    });
    match out {
        Ok(bytes) if bytes.len() + 1024 > store.max_payload => {
            let f = Failure::TooLarge {
                len: bytes.len() as u64,
                max: store.max_payload as u64,
            };
            finish(ctx, &msg, &id, attempt, Outcome::Failed(f)).await;
        }
        Ok(bytes) => finish(ctx, &msg, &id, attempt, Outcome::Ok(bytes)).await,
        Err(Fault::Panicked { message }) => {
            let f = Failure::Panicked { message };
            let policy = &task.retry;
            if policy.on_panic && attempt < policy.attempts {
                let idx = usize::try_from(attempt - 1).unwrap_or(usize::MAX);
                let wait = policy.waits_ms.get(idx).copied().unwrap_or(0);
                let retrying = encode(&State::Retrying {
                    attempt,
                    at_ms: now_ms() + wait,
                    error: f.describe(),
                });
                if let Err(e) = store.status.put(&id, retrying.into()).await {
                    tracing::warn!(task = %id, "concurry node: status not recorded: {e}");
                }
                give_back(ctx, &msg, Duration::from_millis(wait)).await;
            } else {
                let reason = if policy.on_panic {
                    format!("its {} attempts ran out", policy.attempts)
                } else {
                    "it panicked and panics are not retried (Submit::retry with \
                     RetryConfig::retry_on_panic(true) retries them)"
                        .to_string()
                };
                dead_letter(ctx, &msg, &id, &task.task, attempt, reason, f).await;
            }
        }
        Err(fault) => {
            let f = Failure::BadMessage {
                message: fault.to_string(),
            };
            finish(ctx, &msg, &id, attempt, Outcome::Failed(f)).await;
        }
    }
}

/// Stores the result (the first one wins; a later one is dropped) and removes the task.
async fn finish(ctx: &Ctx, msg: &Message, id: &str, attempt: u32, outcome: Outcome) {
    let stored = encode(&Stored {
        outcome,
        attempt,
        node: ctx.node.clone(),
        finished_ms: now_ms(),
    });
    match ctx.store.results.create(id, stored.into()).await {
        Ok(_) => {}
        Err(e) if e.kind() == CreateErrorKind::AlreadyExists => {
            tracing::debug!(
                task = id,
                "concurry node: a result exists already; this one dropped"
            );
        }
        Err(e) => {
            // Run again later rather than lose the outcome.
            tracing::warn!(
                task = id,
                "concurry node: result not stored ({e}); retrying"
            );
            give_back(ctx, msg, ERROR_PAUSE * 4).await;
            return;
        }
    }
    ack(msg, AckKind::Ack).await;
}

async fn dead_letter(
    ctx: &Ctx,
    msg: &Message,
    id: &str,
    task: &str,
    attempts: u32,
    reason: String,
    last: Failure,
) {
    let dead = encode(&Dead {
        task: task.to_string(),
        subject: msg.subject.to_string(),
        payload: msg.payload.to_vec(),
        reason: reason.clone(),
        attempts,
        last_error: last.describe(),
        node: ctx.node.clone(),
        at_ms: now_ms(),
    });
    if let Err(e) = ctx.store.dlq.put(id, dead.into()).await {
        tracing::warn!(
            task = id,
            "concurry node: dead letter not stored ({e}); retrying"
        );
        give_back(ctx, msg, ERROR_PAUSE * 4).await;
        return;
    }
    tracing::warn!(task = id, "concurry node: task dead-lettered: {reason}");
    let f = Failure::DeadLettered {
        reason,
        attempts,
        last: Box::new(last),
    };
    finish(ctx, msg, id, attempts, Outcome::Failed(f)).await;
}
