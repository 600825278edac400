//! The node side: fetch tasks by priority, run them by name under a lease, store the first
//! result, retry, dead-letter, honour cancels and delays.
//!
//! One fetch loop per node: it waits for a free slot, picks a level ([`Levels`]), fetches
//! without waiting (`no_wait`) as many tasks as there are free slots, and runs each on a
//! blocking thread. Every fetch is given up after [`FETCH_BOUND`] if the server has not
//! ended it: it may never answer one. A level found empty is skipped until its doorbell
//! ([`Doorbells`]: subscribed when the level is found empty, dropped while the level stays
//! busy) rings at a publish, or the periodic
//! recheck (redeliveries and delays ring nothing); one found empty although it rang is
//! waited on at the server for the task on its way (the core message can arrive first).
//!
//! Per task the hot path is one write and one ack: revokes are a set in memory (the cancel
//! bucket read whole at start, then watched), a first delivery reads no records, `Running`
//! is recorded only for a task that runs longer than [`RUNNING_AFTER`], and acks are not
//! awaited.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use async_nats::jetstream::consumer::PullConsumer;
use async_nats::jetstream::kv::{CreateErrorKind, Operation};
use async_nats::jetstream::{AckKind, Message};
use futures_util::StreamExt;
use tokio::sync::{Semaphore, watch};

use super::bell::Doorbells;
use super::config::TaskConfig;
use super::record::{Dead, Failure, Outcome, State, Stored, TaskMsg, decode, encode};
use super::schedule::Levels;
use super::setup::Store;
use super::submit::Priority;
use super::{NOT_BEFORE, REPLY, TASK_ID, now_ms};
use crate::cancel::Token;
use crate::cluster::{Cluster, run};
use crate::error::Error;
use crate::remote::task::REMOTE_TASKS;
use crate::sync::os::{Mutex, lock};

/// How often every level is fetched from again even without a doorbell.
const RECHECK: Duration = Duration::from_millis(250);

/// How long a task runs before its status says `Running` (with its node and attempt).
/// A shorter one is never marked: its result follows at once. A node that dies sooner
/// leaves no mark, so the run after it counts as the same attempt.
const RUNNING_AFTER: Duration = Duration::from_millis(20);

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
    /// Every revoke in the cancel bucket (id -> when, ms), kept current by its watch: a
    /// task is checked against it instead of reading the bucket per task.
    revoked: Mutex<HashMap<String, u64>>,
    /// How long a revoke lasts (the cancel bucket's `max_age`; zero: for ever).
    revoke_ttl: Duration,
    /// Where the task functions run.
    lane: Arc<super::lane::Lane>,
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
    /// Whether `id` was revoked (a mark younger than the bucket's `max_age`).
    fn is_revoked(&self, id: &str) -> bool {
        lock(&self.revoked).get(id).is_some_and(|&at| {
            self.revoke_ttl.is_zero() || now_ms().saturating_sub(at) < ms(self.revoke_ttl)
        })
    }

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
    /// The node's scheduler of periodic tasks (`periodic.rs`).
    scheduler: tokio::task::AbortHandle,
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
    let bell = Doorbells::new(
        client.clone(),
        Priority::ALL.map(|p| store.names.level_filter(&store.config.queue, p)),
    );
    let total = u32::try_from(slots).unwrap_or(u32::MAX);
    let sem = Arc::new(Semaphore::new(total as usize));
    let (stop, stopped) = watch::channel(false);
    let (revoked, marks, revoke_ttl) = revokes(&store, &url).await?;
    let scheduler = super::periodic::start(store.clone()).await?;
    let ctx = Arc::new(Ctx {
        store,
        node,
        lease,
        running: Mutex::new(HashMap::new()),
        revoked: Mutex::new(marks),
        revoke_ttl,
        lane: super::lane::Lane::new(crate::runtime::runtime().handle().clone()),
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
        scheduler,
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
        self.scheduler.abort();
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
        self.scheduler.abort();
    }
}

/// How long a node waits at start for the cancel bucket's revokes.
const REVOKES_SYNC: Duration = Duration::from_secs(30);

/// How often revokes older than the bucket's `max_age` are forgotten.
const REVOKES_PRUNE: Duration = Duration::from_secs(600);

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Reads every revoke in the cancel bucket (a watch from its first entry, up to its last)
/// and returns the watch, which then brings the new ones.
async fn revokes(
    store: &Store,
    url: &str,
) -> Result<
    (
        async_nats::jetstream::kv::Watch,
        HashMap<String, u64>,
        Duration,
    ),
    Error,
> {
    let err = |e: &dyn std::fmt::Display| super::server_error("read the cancel bucket", url, e);
    let mut bucket = store.cancel.stream.clone();
    let info = bucket.info().await.map_err(|e| err(&e))?.clone();
    let mut watch = store
        .cancel
        .watch_all_from_revision(1)
        .await
        .map_err(|e| err(&e))?;
    let mut marks = HashMap::new();
    if info.state.messages > 0 {
        let sync = async {
            while let Some(entry) = watch.next().await {
                let e = entry.map_err(|e| err(&e))?;
                let current = e.delta == 0 || e.seen_current;
                mark(&mut marks, e);
                if current {
                    break;
                }
            }
            Ok::<(), Error>(())
        };
        tokio::time::timeout(REVOKES_SYNC, sync)
            .await
            .map_err(|_| err(&"no answer"))??;
    }
    Ok((watch, marks, info.config.max_age))
}

/// Files one entry of the cancel bucket.
fn mark(marks: &mut HashMap<String, u64>, e: async_nats::jetstream::kv::Entry) {
    if e.operation == Operation::Put {
        let at = std::str::from_utf8(&e.value)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(now_ms);
        marks.insert(e.key, at);
    } else {
        marks.remove(&e.key);
    }
}

/// Files each new revoke, and sets the cancel flag of a task revoked while this node runs
/// it.
async fn revoke_loop(ctx: Arc<Ctx>, mut revoked: async_nats::jetstream::kv::Watch) {
    let mut prune = tokio::time::interval(REVOKES_PRUNE);
    prune.tick().await;
    let mut last = 0;
    loop {
        tokio::select! {
            entry = revoked.next() => match entry {
                Some(Ok(e)) => {
                    last = e.revision;
                    if e.operation == Operation::Put
                        && let Some(t) = lock(&ctx.running).get(&e.key)
                    {
                        t.cancel();
                    }
                    mark(&mut lock(&ctx.revoked), e);
                }
                Some(Err(e)) => tracing::warn!("concurry node: cancel watch: {e}"),
                None => {
                    // The watch ended: start again after the last revoke seen.
                    tokio::time::sleep(ERROR_PAUSE).await;
                    match ctx.store.cancel.watch_all_from_revision(last + 1).await {
                        Ok(w) => revoked = w,
                        Err(e) => tracing::warn!("concurry node: cancel watch: {e}"),
                    }
                }
            },
            _ = prune.tick() => {
                if !ctx.revoke_ttl.is_zero() {
                    let (now, ttl) = (now_ms(), ms(ctx.revoke_ttl));
                    lock(&ctx.revoked).retain(|_, at| now.saturating_sub(*at) < ttl);
                }
            }
        }
    }
}

/// How long a fetch waits on the server for a task whose doorbell rang but which the
/// consumer does not have yet (the core message can arrive first).
const BELL_GRACE: Duration = Duration::from_millis(50);

/// Doorbells per level not yet matched by a fetched task: a level found empty while it has
/// some is waited on (server side, for the task on its way) instead of polled.
type Bells = [u64; 4];

fn ring(levels: &mut Levels, bells: &mut Bells, bell: &mut Doorbells, level: usize) {
    bell.rang(level, levels.is_empty(level));
    levels.ring(level);
    bells[level] += 1;
}

async fn fetch_loop(
    ctx: Arc<Ctx>,
    consumers: Vec<PullConsumer>,
    mut bell: Doorbells,
    sem: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
) {
    let mut levels = Levels::default();
    let mut bells: Bells = [0; 4];
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
        while let Some(level) = bell.rung_now() {
            ring(&mut levels, &mut bells, &mut bell, level);
        }
        if checked.elapsed() >= RECHECK {
            levels.ring_all();
            checked = Instant::now();
        }
        let Some(level) = levels.next() else {
            drop(first);
            tokio::select! {
                level = bell.rung() => ring(&mut levels, &mut bells, &mut bell, level),
                () = tokio::time::sleep(RECHECK) => {
                    levels.ring_all();
                    checked = Instant::now();
                }
                _ = stop.changed() => return,
            }
            continue;
        };
        let mut first = Some(first);
        let want = sem.available_permits() + 1;
        let consumer = &consumers[level];
        let fetched = pull(
            consumer.fetch().max_messages(want).messages(),
            tokio::time::Instant::now() + FETCH_BOUND,
        )
        .await;
        let mut got = match take(&ctx, &sem, &mut first, fetched).await {
            Taken::Got(n) => n,
            Taken::Failed => {
                drop(first);
                tokio::select! {
                    () = tokio::time::sleep(ERROR_PAUSE) => {}
                    _ = stop.changed() => return,
                }
                continue;
            }
            Taken::Closed => return,
        };
        if got == 0 && bells[level] > 0 {
            // Rung, but not in the consumer yet: the task is on its way; the server hands
            // it over the moment it has it.
            let wait = pull(
                consumer
                    .batch()
                    .max_messages(1)
                    .expires(BELL_GRACE)
                    .messages(),
                tokio::time::Instant::now() + BELL_GRACE + FETCH_BOUND,
            )
            .await;
            match take(&ctx, &sem, &mut first, wait).await {
                Taken::Got(n) => got = n,
                Taken::Failed => {}
                Taken::Closed => return,
            }
        }
        if got == 0 {
            bells[level] = 0;
            levels.found_empty(level);
            if bell.found_empty(level).await {
                // Subscribed just now: a task published before that rang nothing.
                levels.ring(level);
            }
        } else {
            bells[level] = bells[level].saturating_sub(got as u64);
            levels.served(level);
        }
    }
}

/// The longest a fetch waits for the server to end it (with its messages, or a status
/// saying there are no more).
///
/// async-nats gives a no-wait fetch no timer of its own (it sets one only from `expires`,
/// which a no-wait fetch must not have: with one the server waits for messages instead of
/// answering "no messages" at once), and the server does not always answer one: a no-wait
/// request that finds messages pending but is handed none of them (another node's request
/// took the last one first; `max_ack_pending` reached) is parked until a message comes,
/// which may be never; an answer lost in a reconnect is not sent again. Unbounded, such a
/// fetch stalled the node's fetch loop (every level, and a slot) until a message came on
/// its level. Past the bound the fetch is
/// dropped, and with its subscription the request: a message the server hands to it just
/// then is delivered again after its lease.
const FETCH_BOUND: Duration = Duration::from_secs(1);

/// The messages of one pull request (`request` sends it), ended at `deadline` if the server
/// has not ended them by then; an error if the request fails or cannot be sent by then.
async fn pull(
    request: impl Future<
        Output = Result<
            async_nats::jetstream::consumer::pull::Batch,
            async_nats::jetstream::consumer::pull::BatchError,
        >,
    >,
    deadline: tokio::time::Instant,
) -> Result<Bounded, String> {
    match tokio::time::timeout_at(deadline, request).await {
        Ok(Ok(batch)) => Ok(batch.take_until(Box::pin(tokio::time::sleep_until(deadline)))),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {FETCH_BOUND:?}")),
    }
}

/// A fetch's messages, ended at its deadline.
type Bounded = futures_util::stream::TakeUntil<
    async_nats::jetstream::consumer::pull::Batch,
    std::pin::Pin<Box<tokio::time::Sleep>>,
>;

enum Taken {
    Got(usize),
    Failed,
    Closed,
}

/// Hands each task of a fetch to a handler under a slot (`first` for the first one).
async fn take(
    ctx: &Arc<Ctx>,
    sem: &Arc<Semaphore>,
    first: &mut Option<tokio::sync::OwnedSemaphorePermit>,
    batch: Result<Bounded, String>,
) -> Taken {
    let mut batch = match batch {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!("concurry node: task fetch failed: {e}");
            return Taken::Failed;
        }
    };
    let mut got = 0usize;
    while let Some(m) = batch.next().await {
        match m {
            Ok(msg) => {
                got += 1;
                let permit = match first.take() {
                    Some(p) => p,
                    None => match sem.clone().acquire_owned().await {
                        Ok(p) => p,
                        Err(_) => return Taken::Closed,
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
    if batch.is_stopped() {
        tracing::debug!(
            got,
            "concurry node: a task fetch not ended by the server within {FETCH_BOUND:?}; given up"
        );
    }
    Taken::Got(got)
}

fn header(headers: Option<&HeaderMap>, name: &str) -> Option<String> {
    headers
        .and_then(|h| h.get(name))
        .map(|v| v.as_str().to_string())
}

/// Acks `msg` without waiting for the server's confirmation: an ack that is lost only
/// means a redelivery after the lease, which finds the stored result and is acked then.
async fn ack(msg: &Message, kind: AckKind) {
    let done = msg.ack_with(kind).await;
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
    if ctx.is_revoked(&id) {
        if let Err(e) = Box::pin(super::cancel::cancelled_result(store, &id)).await {
            tracing::warn!(task = %id, "concurry node: {e}");
        }
        ack(&msg, AckKind::Ack).await;
        return;
    }
    // A first delivery needs no reads: a re-submit of a finished task is not published
    // again (`submit::record`), and its state is what the submit recorded. A redelivery
    // (a delay or retry given back, a node that died, an ack lost) reads the result and the
    // state.
    let first = msg.info().is_ok_and(|i| i.delivered <= 1);
    let (existing, state) = if first {
        (Ok(None), Ok(None))
    } else {
        // Boxed, as the other paths off the first delivery's: the handler's future (one
        // allocation per task) stays the size of the hot path's.
        Box::pin(async { tokio::join!(super::status::stored(store, &id), store.status.get(&id)) })
            .await
    };
    let (existing, state) = match (existing, state) {
        (Ok(e), Ok(s)) => (e, s),
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
                "",
                1,
                0,
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
        finish(ctx, &msg, &id, &task.task, attempt, 0, Outcome::Failed(f)).await;
        return;
    };
    if entry.schema != task.schema {
        let f = Failure::Schema {
            task: task.task.clone(),
            node: ctx.node.clone(),
        };
        finish(ctx, &msg, &id, &task.task, attempt, 0, Outcome::Failed(f)).await;
        return;
    }
    let durable = entry.durable;
    let args = task.args;
    let token = registered.token.clone();
    // The task's `limits()`: its pool's, hosted by the pool's process (`limits.rs`).
    let (limits, run_limits) = super::limits::for_run(
        &store.js.client(),
        &store.names.stream,
        &task.task,
        &ctx.node,
    );
    let started_ms = now_ms();
    let job = ctx.lane.run(move || {
        crate::limit::context::with_hosted(&limits, || {
            crate::cancel::context::in_token(&token, || durable(&args, attempt))
        })
    });
    // A hard `call_timeout` (`retrying.rs`): past it the task's token is signalled and the
    // attempt failed at once; a function that ignores the token runs on, detached.
    let timeout = super::retrying::call_timeout(&task.retry);
    let mark = || async {
        let running = encode(&State::Running {
            node: ctx.node.clone(),
            attempt,
        });
        if let Err(e) = store.status.put(&id, running.into()).await {
            tracing::warn!(task = %id, "concurry node: status not recorded: {e}");
        }
    };
    let renew = || ack(&msg, AckKind::Progress);
    let ran = match supervise(job, ctx.lease, timeout, mark, renew).await {
        Ended::Done(r) => {
            // Its units back in the pool's set before its result is stored (boxed: off
            // the hot path, as a run without limits sends nothing).
            if run_limits.used() {
                Box::pin(run_limits.end()).await;
            }
            r.unwrap_or_else(|message| super::retrying::Ran {
                judged: super::retrying::Judged::Panicked {
                    message,
                    retry_on: true,
                },
                own: None,
            })
        }
        Ended::TimedOut => {
            registered.token.cancel();
            tracing::warn!(task = %id, "concurry node: task ran past its call_timeout");
            super::retrying::Ran {
                judged: super::retrying::Judged::TimedOut {
                    after: timeout.unwrap_or_default(),
                },
                own: (entry.retry)(),
            }
        }
    };
    let next = super::retrying::judge(
        &task.retry,
        ran.own.as_ref(),
        attempt,
        ran.judged,
        store.max_payload,
    );
    match next {
        super::retrying::Next::Finish(outcome) => {
            super::metrics::ended(&task.task, super::metrics::label(&outcome), started_ms);
            finish(ctx, &msg, &id, &task.task, attempt, started_ms, outcome).await;
        }
        super::retrying::Next::Retry { wait, error } => {
            super::metrics::retrying(&task.task, started_ms);
            let retrying = encode(&State::Retrying {
                attempt,
                at_ms: now_ms() + u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                error,
            });
            if let Err(e) = Box::pin(store.status.put(&id, retrying.into())).await {
                tracing::warn!(task = %id, "concurry node: status not recorded: {e}");
            }
            give_back(ctx, &msg, wait).await;
        }
        super::retrying::Next::DeadLetter { reason, last } => {
            super::metrics::ended(&task.task, "dead_lettered", started_ms);
            Box::pin(dead_letter(
                ctx, &msg, &id, &task.task, attempt, reason, last,
            ))
            .await;
        }
    }
}

/// How a run ended under [`supervise`].
#[derive(Debug, PartialEq)]
enum Ended<R> {
    Done(R),
    /// Past its `call_timeout`.
    TimedOut,
}

/// Waits for `job` while it runs: renews the lease (`renew`) every third of `lease`, runs
/// `mark()` (records `Running`) once the job has run [`RUNNING_AFTER`], and gives up past
/// `timeout`. One timer, set to the next of those; none is due at the start, so a job that
/// has finished by its first poll is seen at once (a tokio `interval`'s immediate first
/// tick still waits for the timer's next millisecond, which every short task paid). The
/// mark's future is made (and boxed) only when due: a short task carries none.
async fn supervise<R, M, P>(
    job: impl Future<Output = R>,
    lease: Duration,
    timeout: Option<Duration>,
    mark: impl FnOnce() -> M,
    mut renew: impl FnMut() -> P,
) -> Ended<R>
where
    M: Future<Output = ()>,
    P: Future<Output = ()>,
{
    let start = tokio::time::Instant::now();
    let every = (lease / 3).max(Duration::from_millis(1));
    let deadline = timeout.map(|t| start + t);
    let mut next_renew = start + every;
    let mut mark_at = Some(start + RUNNING_AFTER);
    let mut mark = Some(mark);
    let mut marking: Option<std::pin::Pin<Box<M>>> = None;
    let next = |mark_at: Option<tokio::time::Instant>, next_renew| {
        [mark_at, Some(next_renew), deadline]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(next_renew)
    };
    let timer = tokio::time::sleep_until(next(mark_at, next_renew));
    tokio::pin!(job, timer);
    loop {
        tokio::select! {
            biased;
            r = &mut job => return Ended::Done(r),
            Some(()) = futures_util::future::OptionFuture::from(marking.as_mut()), if marking.is_some() => {
                marking = None;
            }
            () = &mut timer => {
                let now = tokio::time::Instant::now();
                if deadline.is_some_and(|d| d <= now) {
                    return Ended::TimedOut;
                }
                if mark_at.is_some_and(|m| m <= now) {
                    mark_at = None;
                    marking = mark.take().map(|m| Box::pin(m()));
                }
                if next_renew <= now {
                    renew().await;
                    next_renew += every;
                }
                timer.as_mut().reset(next(mark_at, next_renew));
            }
        }
    }
}

/// Stores the result (the first one wins; a later one is dropped) and removes the task.
/// `task`: its name (empty if unknown); `started_ms`: when the attempt began (0 if it
/// never ran).
async fn finish(
    ctx: &Ctx,
    msg: &Message,
    id: &str,
    task: &str,
    attempt: u32,
    started_ms: u64,
    outcome: Outcome,
) {
    let stored = encode(&Stored {
        outcome,
        attempt,
        node: ctx.node.clone(),
        started_ms,
        task: task.to_string(),
        subject: msg.subject.to_string(),
        submitted_ms: msg
            .info()
            .map(|i| super::to_ms(i.published.into()))
            .unwrap_or(0),
        finished_ms: now_ms(),
    });
    // The submitter's queue handle gets it at once once it is stored (a lost one is read
    // from the bucket by its wait).
    let reply = header(msg.headers.as_ref(), REPLY).map(|to| (to, stored.clone()));
    match ctx.store.results.create(id, stored.into()).await {
        Ok(_) => {
            if let Some((to, stored)) = reply {
                let to = format!("{to}.{id}");
                if let Err(e) = ctx.store.js.client().publish(to, stored.into()).await {
                    tracing::debug!(task = id, "concurry node: result not sent back: {e}");
                }
            }
        }
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
    finish(ctx, msg, id, task, attempts, 0, Outcome::Failed(f)).await;
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A no-wait fetch that the server parks (a message is pending but may not be handed
    /// over: here `max_ack_pending` is reached; another node's request taking it first does
    /// the same) is never answered, and async-nats gives it no timer: bounded, it ends, empty,
    /// at its deadline.
    #[test]
    fn a_fetch_the_server_never_answers_ends_at_its_bound() {
        let Some(server) = crate::cluster::LocalServer::for_tests() else {
            return;
        };
        let url = server.url();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let _ = tx.send(rt.block_on(parked_fetch(url)));
        });
        let waited = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the bounded fetch never ended");
        assert!(waited >= FETCH_BOUND, "ended before its bound: {waited:?}");
        drop(server);
    }

    /// How long a bounded fetch the server parks waits (after checking that an unbounded
    /// one is not answered).
    async fn parked_fetch(url: String) -> Duration {
        use async_nats::jetstream::{consumer, stream};
        let js = async_nats::jetstream::new(async_nats::connect(url).await.unwrap());
        let stream = js
            .create_stream(stream::Config {
                name: "PARK".into(),
                subjects: vec!["park".into()],
                retention: stream::RetentionPolicy::WorkQueue,
                ..Default::default()
            })
            .await
            .unwrap();
        for _ in 0..2 {
            js.publish("park", "task".into())
                .await
                .unwrap()
                .await
                .unwrap();
        }
        let c: PullConsumer = stream
            .create_consumer(consumer::pull::Config {
                durable_name: Some("park".into()),
                ack_policy: consumer::AckPolicy::Explicit,
                max_ack_pending: 1,
                ..Default::default()
            })
            .await
            .unwrap();
        // The first message is taken and kept: the second is pending, and held back.
        let mut taken = c.fetch().max_messages(1).messages().await.unwrap();
        let _held = taken.next().await.unwrap().unwrap();
        let mut raw = c.fetch().max_messages(1).messages().await.unwrap();
        assert!(
            tokio::time::timeout(FETCH_BOUND * 2, raw.next())
                .await
                .is_err(),
            "the server answered a no-wait fetch it was expected to park"
        );
        let start = tokio::time::Instant::now();
        let mut bounded = pull(c.fetch().max_messages(1).messages(), start + FETCH_BOUND)
            .await
            .unwrap();
        assert!(bounded.next().await.is_none());
        assert!(bounded.is_stopped(), "ended by the server, not the bound");
        start.elapsed()
    }

    const LEASE: Duration = Duration::from_secs(30);

    /// Off a millisecond boundary, where a timer due "now" would wait for the next one.
    async fn mid_millisecond() -> tokio::time::Instant {
        tokio::time::advance(Duration::from_micros(500)).await;
        tokio::time::Instant::now()
    }

    /// `d` is `at` on the timer's millisecond grain.
    fn about(d: Duration, at: Duration) -> bool {
        d >= at && d <= at + Duration::from_millis(1)
    }

    #[tokio::test(start_paused = true)]
    async fn a_job_done_at_once_is_seen_without_any_timer() {
        let t0 = mid_millisecond().await;
        let renewals = AtomicUsize::new(0);
        let ended = supervise(
            async { 7 },
            LEASE,
            None,
            || async { panic!("a job done at once is never marked running") },
            || async {
                renewals.fetch_add(1, Ordering::SeqCst);
            },
        )
        .await;
        assert_eq!(ended, Ended::Done(7));
        assert_eq!(tokio::time::Instant::now(), t0, "it waited on a timer");
        assert_eq!(renewals.load(Ordering::SeqCst), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_job_is_marked_once_and_renewed_every_third_of_the_lease() {
        let t0 = mid_millisecond().await;
        let marks = AtomicUsize::new(0);
        let renewals = std::sync::Mutex::new(Vec::new());
        let ended = supervise(
            async {
                tokio::time::sleep(Duration::from_secs(25)).await;
                "done"
            },
            LEASE,
            None,
            || async {
                assert!(about(t0.elapsed(), RUNNING_AFTER), "{:?}", t0.elapsed());
                marks.fetch_add(1, Ordering::SeqCst);
            },
            || {
                renewals.lock().unwrap().push(t0.elapsed());
                async {}
            },
        )
        .await;
        assert_eq!(ended, Ended::Done("done"));
        assert_eq!(marks.load(Ordering::SeqCst), 1);
        let renewals = renewals.lock().unwrap();
        assert_eq!(renewals.len(), 2, "{renewals:?}");
        assert!(about(renewals[0], LEASE / 3), "{renewals:?}");
        assert!(about(renewals[1], LEASE * 2 / 3), "{renewals:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_job_past_its_timeout_is_given_up_at_the_timeout() {
        let t0 = mid_millisecond().await;
        let ended = supervise(
            std::future::pending::<()>(),
            LEASE,
            Some(Duration::from_secs(12)),
            || async {},
            || async {},
        )
        .await;
        assert_eq!(ended, Ended::TimedOut);
        assert!(
            about(t0.elapsed(), Duration::from_secs(12)),
            "{:?}",
            t0.elapsed()
        );
    }
}
