//! [`TaskQueue`]: submitting durable tasks; [`Submit`], their options; [`Priority`].

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_nats::jetstream::message::PublishMessage as Publish;

use super::config::TaskConfig;
use super::handle::TaskHandle;
use super::record::{Policy, State, TaskMsg, encode};
use super::setup::{Names, Store};
use super::{NOT_BEFORE, REPLY, TASK_ID, TASK_NAME, check_id, new_id, server_error, to_ms};
use crate::cluster::{Cluster, run};
use crate::error::{ConfigError, Error};
use crate::remote::RemoteTask;
use crate::retry::RetryConfig;

/// How urgent a task is. Nodes serve the four levels weighted 8:4:2:1 among those with
/// work: higher levels first, lower ones never starved.
///
/// ```
/// use concurry::cluster::Priority;
/// assert!(Priority::Critical > Priority::Low);
/// assert_eq!(Priority::default(), Priority::Normal);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Priority {
    /// Lowest: served at least once every 15 turns while others have work.
    Low,
    /// The default.
    #[default]
    Normal,
    /// Before `Normal` and `Low`.
    High,
    /// First.
    Critical,
}

impl Priority {
    /// Every level, most urgent first (the order of the node's consumers).
    pub(crate) const ALL: [Priority; 4] = [
        Priority::Critical,
        Priority::High,
        Priority::Normal,
        Priority::Low,
    ];

    /// The subject token of the level.
    pub(crate) fn token(self) -> &'static str {
        match self {
            Priority::Critical => "critical",
            Priority::High => "high",
            Priority::Normal => "normal",
            Priority::Low => "low",
        }
    }

    /// Its index in [`Priority::ALL`].
    pub(crate) fn level(self) -> usize {
        match self {
            Priority::Critical => 0,
            Priority::High => 1,
            Priority::Normal => 2,
            Priority::Low => 3,
        }
    }

    pub(crate) fn from_token(token: &str) -> Option<Priority> {
        Priority::ALL.into_iter().find(|p| p.token() == token)
    }
}

/// Options of one submit: the task's id (idempotent: the same id is one task), its priority,
/// a delay or a time before which it must not run, and its retries.
///
/// ```
/// use std::time::Duration;
/// use concurry::RetryConfig;
/// use concurry::cluster::{Priority, Submit};
///
/// let s = Submit::new()
///     .id("invoice-42")
///     .priority(Priority::High)
///     .delay(Duration::from_secs(30))
///     .retry(RetryConfig::attempts(5).wait(Duration::from_secs(2)).retry_on_panic(true));
/// # let _ = s;
/// ```
#[derive(Debug, Clone, Default)]
pub struct Submit {
    id: Option<String>,
    priority: Priority,
    not_before: Option<NotBefore>,
    pub(crate) retry: Option<RetryConfig>,
    pub(crate) call_timeout: Option<Duration>,
}

#[derive(Debug, Clone, Copy)]
enum NotBefore {
    Delay(Duration),
    At(SystemTime),
}

impl Submit {
    /// A random id, `Normal` priority, no delay, one attempt.
    pub fn new() -> Self {
        Submit::default()
    }

    /// The task's id (1 to 128 ASCII letters, digits, `-`, `_` or `=`). A second submit
    /// of the same id is the same task: it does not run again.
    #[must_use]
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Its priority (default `Normal`).
    #[must_use]
    pub fn priority(mut self, priority: Priority) -> Self {
        self.priority = priority;
        self
    }

    /// Runs it no sooner than `delay` after the submit.
    #[must_use]
    pub fn delay(mut self, delay: Duration) -> Self {
        self.not_before = Some(NotBefore::Delay(delay));
        self
    }

    /// Runs it no sooner than `eta` (an ETA in the past runs at once).
    #[must_use]
    pub fn at(mut self, eta: SystemTime) -> Self {
        self.not_before = Some(NotBefore::At(eta));
        self
    }

    /// Its retries: `attempts`, backoff and `retry_on_panic` of the config apply on the
    /// nodes, between deliveries (the waits are drawn at submit), in place of the task's own
    /// ([`RemoteTask::retry`]). `retry_on` predicates and `retry_until` validators do not
    /// travel: the nodes apply the task's own (`RemoteTask::retry`, from their build). A
    /// node that dies under a task never counts as a failed attempt: the task always runs
    /// again.
    #[must_use]
    pub fn retry(mut self, retry: RetryConfig) -> Self {
        self.retry = Some(retry);
        self
    }

    /// A hard limit on each attempt's run time: past it the node signals the task's
    /// cancellation token (`concurry::check_cancelled()` fails inside it) and fails the
    /// attempt as a timeout at once, retried per the retries (a timeout counts as a failed
    /// attempt), else dead-lettered; the result handle then gives [`Error::Timeout`]. The
    /// node frees the task's slot and gives the message back (or acks it), so the lease is
    /// not held. A function that ignores its token keeps its thread until it returns by
    /// itself; whatever it returns then is dropped. At least 1 ms; default none.
    ///
    /// ```
    /// use std::time::Duration;
    /// let s = concurry::cluster::Submit::new().call_timeout(Duration::from_secs(30));
    /// # let _ = s;
    /// ```
    #[must_use]
    pub fn call_timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout = Some(timeout);
        self
    }

    /// The id given with [`id`](Submit::id), if any (a schedule refuses one).
    pub(crate) fn given_id(&self) -> Option<&str> {
        self.id.as_deref()
    }
}

pub(crate) struct QueueInner {
    pub(crate) store: Store,
    pub(crate) cluster: Cluster,
}

/// The durable task queue of a namespace: submit tasks, look them up by id, cancel them,
/// and handle dead letters. From [`Cluster::tasks`]; cheap to clone.
///
/// ```no_run
/// use concurry::RemoteTask;
/// use concurry::cluster::Cluster;
///
/// struct Double;
/// impl RemoteTask for Double {
///     const NAME: &'static str = "docs::Double";
///     type Args = (u64,);
///     type Output = u64;
///     fn run((x,): (u64,)) -> u64 { 2 * x }
/// }
/// concurry::register_remote_task!(Double);
///
/// # fn main() -> Result<(), concurry::Error> {
/// let q = Cluster::connect("nats://127.0.0.1:4222")?.tasks()?;
/// let t = q.submit::<Double>((21,))?; // stored durably once this returns
/// assert_eq!(t.result()?, 42);        // once a node ran it
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct TaskQueue {
    pub(crate) inner: Arc<QueueInner>,
}

impl TaskQueue {
    pub(crate) fn open(cluster: &Cluster, config: TaskConfig) -> Result<TaskQueue, Error> {
        config.validate()?;
        let client = cluster.client().clone();
        let ns = cluster.namespace().to_string();
        let url = cluster.url().to_string();
        let store = run(async move { Store::open(client, &ns, &url, config).await })?;
        Ok(TaskQueue {
            inner: Arc::new(QueueInner {
                store,
                cluster: cluster.clone(),
            }),
        })
    }

    /// Submits task `T` with `args` and the default options; see
    /// [`submit_with`](TaskQueue::submit_with).
    ///
    /// # Errors
    ///
    /// As [`submit_with`](TaskQueue::submit_with).
    pub fn submit<T: RemoteTask>(&self, args: T::Args) -> Result<TaskHandle<T>, Error> {
        self.submit_with::<T>(args, Submit::new())
    }

    /// Submits task `T` with `args`: returns once the task is stored (durable), with its
    /// handle. A second submit of an id already submitted is the same task (the first
    /// submit's arguments and options stand).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for an invalid id or retry config, arguments larger than the
    /// server's `max_payload`, or a server that could not store the task;
    /// [`Error::Transport`] if the arguments cannot be encoded.
    pub fn submit_with<T: RemoteTask>(
        &self,
        args: T::Args,
        submit: Submit,
    ) -> Result<TaskHandle<T>, Error> {
        let task = self.prepare::<T>(args, submit)?;
        let inner = self.inner.clone();
        let id = task.id.clone();
        let scheduled = task.scheduled();
        super::here(async move {
            let store = &inner.store;
            let publish = async {
                send(
                    store,
                    T::NAME,
                    &task.id,
                    &task.id,
                    &task.level,
                    task.payload,
                    // Its result comes through the results watch: sooner than a reply,
                    // which the node sends only once the store has confirmed the result.
                    Extra {
                        not_before: task.not_before,
                        reply: None,
                    },
                )
                .await?
                .await
                .map(|_| ())
                .map_err(|e| server_error("store the task", &store.url, e))
            };
            if task.fresh {
                store.watcher.expect(&task.id, false);
                if scheduled {
                    // Its `Scheduled` record and its message go out together (one round
                    // trip, not two).
                    let (recorded, published) =
                        tokio::join!(record(store, &task.id, task.not_before, false), publish);
                    recorded.and(published)
                } else {
                    // Its message is its only record until a node runs it (`Pending`).
                    publish.await
                }
            } else {
                match record(store, &task.id, task.not_before, false).await? {
                    Recorded::Finished => Ok(()),
                    Recorded::New => {
                        store.watcher.expect(&task.id, false);
                        publish.await
                    }
                    Recorded::Again => publish.await,
                }
            }
        })?;
        Ok(TaskHandle::new(self.clone(), id))
    }

    /// The message of one submit, checked.
    pub(crate) fn prepare<T: RemoteTask>(
        &self,
        args: T::Args,
        submit: Submit,
    ) -> Result<Prepared, Error> {
        let args = crate::wire::encode(&args, "task arguments").map_err(Error::Transport)?;
        self.prepare_encoded(T::NAME, T::SCHEMA, args, submit)
    }

    /// The message of one submit of the task `name` (schema `schema`) with its arguments
    /// already encoded, checked.
    pub(crate) fn prepare_encoded(
        &self,
        name: &str,
        schema: u64,
        args: Vec<u8>,
        submit: Submit,
    ) -> Result<Prepared, Error> {
        let fresh = submit.id.is_none();
        let id = match submit.id {
            Some(id) => {
                check_id(&id)?;
                id
            }
            None => new_id(),
        };
        let retry = match &submit.retry {
            Some(r) => {
                r.validate()?;
                Policy {
                    attempts: r.max_attempts(),
                    waits_ms: (1..r.max_attempts())
                        .map(|n| {
                            let w = r.wait_before(n, crate::rand::unit());
                            u64::try_from(w.as_millis()).unwrap_or(u64::MAX)
                        })
                        .collect(),
                    on_panic: r.on_panic(),
                    timeout_ms: 0,
                }
            }
            // Attempts 0: the task's own retries (`RemoteTask::retry`) on the node, if any.
            None => Policy::default(),
        };
        let retry = match submit.call_timeout {
            Some(t) if t < Duration::from_millis(1) => {
                return Err(ConfigError::new(
                    "call_timeout",
                    format!("{t:?}"),
                    "use at least 1 ms, or leave it out for no limit",
                )
                .into());
            }
            Some(t) => Policy {
                timeout_ms: u64::try_from(t.as_millis()).unwrap_or(u64::MAX),
                ..retry
            },
            None => retry,
        };
        let payload = encode(&TaskMsg {
            task: name.to_string(),
            schema,
            args,
            retry,
        });
        let store = &self.inner.store;
        if payload.len() + 1024 > store.max_payload {
            return Err(ConfigError::new(
                "task arguments",
                format!("{} bytes", payload.len()),
                format!(
                    "a task message must fit the server's max_payload ({} bytes); pass a \
                     reference (a path, a key) instead of the data",
                    store.max_payload
                ),
            )
            .into());
        }
        let not_before = submit.not_before.map(|nb| match nb {
            NotBefore::Delay(d) => SystemTime::now() + d,
            NotBefore::At(t) => t,
        });
        let level = store.names.level(&store.config.queue, submit.priority);
        Ok(Prepared {
            id,
            fresh,
            level,
            payload,
            not_before,
        })
    }

    /// A handle on the task `id`, submitted from here or elsewhere.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for an id that cannot be one.
    pub fn handle<T: RemoteTask>(&self, id: &str) -> Result<TaskHandle<T>, Error> {
        check_id(id)?;
        Ok(TaskHandle::new(self.clone(), id.to_string()))
    }

    /// How many tasks the stream holds: queued, delayed, retrying or running (a task leaves
    /// it once its result is stored).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if the server cannot be asked.
    pub fn queued(&self) -> Result<u64, Error> {
        let inner = self.inner.clone();
        run(async move { inner.store.queued().await })
    }

    /// The queue's settings.
    pub fn config(&self) -> &TaskConfig {
        &self.inner.store.config
    }

    /// The connection it works on.
    pub fn cluster(&self) -> &Cluster {
        &self.inner.cluster
    }
}

impl fmt::Debug for TaskQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskQueue")
            .field("queue", &self.inner.store.config.queue)
            .field("namespace", &self.inner.cluster.namespace())
            .finish_non_exhaustive()
    }
}

/// One task message, ready to publish.
pub(crate) struct Prepared {
    pub(crate) id: String,
    /// A random id of this submit: it cannot have been submitted before, so it needs no
    /// status record to stay one task (one with a delay gets its `Scheduled` record beside
    /// its message).
    pub(crate) fresh: bool,
    /// The subject of its queue and priority ([`Names::level`](super::setup::Names::level)).
    pub(crate) level: String,
    pub(crate) payload: Vec<u8>,
    pub(crate) not_before: Option<SystemTime>,
}

impl Prepared {
    /// True if it must not run yet: its status is recorded as `Scheduled`, even for a
    /// fresh id (the operators' counts take unrecorded tasks in the stream for `Pending`).
    pub(crate) fn scheduled(&self) -> bool {
        self.not_before.is_some_and(|t| t > SystemTime::now())
    }
}

/// What [`record`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Recorded {
    /// A new task (or a replay): publish it.
    New,
    /// Submitted before, without a result yet: publish again (the stream deduplicates it
    /// within its window).
    Again,
    /// Submitted before and finished: nothing to publish, it does not run again.
    Finished,
}

/// Records the task's state before it is published: only if it has none (a re-submit must
/// not reset a running or finished task), unless `reset` (a replay).
pub(crate) async fn record(
    store: &Store,
    id: &str,
    not_before: Option<SystemTime>,
    reset: bool,
) -> Result<Recorded, Error> {
    let state = match not_before {
        Some(t) if t > SystemTime::now() => State::Scheduled { at_ms: to_ms(t) },
        _ => State::Pending,
    };
    let bytes = encode(&state);
    let recorded = if reset {
        store
            .status
            .put(id, bytes.into())
            .await
            .map(|_| Recorded::New)
            .map_err(|e| e.to_string())
    } else {
        match store.status.create(id, bytes.into()).await {
            Err(e) if e.kind() == async_nats::jetstream::kv::CreateErrorKind::AlreadyExists => {
                // A re-submit: nodes run a task's first delivery without looking for a
                // result, so one that finished is not published again.
                return match super::status::stored(store, id).await? {
                    Some(_) => Ok(Recorded::Finished),
                    None => Ok(Recorded::Again),
                };
            }
            other => other.map(|_| Recorded::New).map_err(|e| e.to_string()),
        }
    };
    recorded.map_err(|e| server_error("record the task's status", &store.url, e))
}

/// What a task message says besides its name, id and arguments.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Extra<'a> {
    /// Not to run before this.
    pub(crate) not_before: Option<SystemTime>,
    /// Where the node sends the result as well as storing it: the inbox of the queue handle
    /// that submitted it ([`Watcher::replies`](super::watch::Watcher::replies)).
    pub(crate) reply: Option<&'a str>,
}

/// Publishes the task on its `level`'s subject for `id` with `msg_id` as the stream's dedup
/// id (the task id, or a replay's); the future resolves with the server's ack (stored on
/// disk).
pub(crate) async fn send(
    store: &Store,
    task: &str,
    id: &str,
    msg_id: &str,
    level: &str,
    payload: Vec<u8>,
    extra: Extra<'_>,
) -> Result<async_nats::jetstream::context::PublishAckFuture, Error> {
    let mut publish = Publish::build()
        .payload(payload.into())
        .message_id(msg_id)
        .header(TASK_ID, id)
        .header(TASK_NAME, task);
    if let Some(t) = extra.not_before {
        publish = publish.header(NOT_BEFORE, to_ms(t).to_string().as_str());
    }
    if let Some(reply) = extra.reply {
        publish = publish.header(REPLY, reply);
    }
    store
        .js
        .send_publish(Names::subject(level, id), publish)
        .await
        .map_err(|e| server_error("store the task", &store.url, e))
}
