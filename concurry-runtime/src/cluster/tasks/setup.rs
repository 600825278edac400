//! The stream, consumers and buckets of a namespace's tasks, created idempotently (get or
//! create) and by hand, so they work on nats-server 2.9 (whose `$JS.API.INFO` lacks fields
//! async-nats' `create_key_value` requires).

use std::time::Duration;

use async_nats::jetstream::consumer::{self, PullConsumer};
use async_nats::jetstream::kv;
use async_nats::jetstream::stream::{self, DiscardPolicy, RetentionPolicy, StorageType};

use super::config::TaskConfig;
use super::server_error;
use super::submit::Priority;
use crate::error::Error;

/// The names of a namespace's task stores.
#[derive(Debug, Clone)]
pub(crate) struct Names {
    pub(crate) stream: String,
    /// `cc.<ns>.task.`
    prefix: String,
    pub(crate) results: String,
    pub(crate) status: String,
    pub(crate) cancel: String,
    pub(crate) dlq: String,
    pub(crate) schedules: String,
}

impl Names {
    pub(crate) fn new(namespace: &str) -> Names {
        Names {
            stream: format!("CC_{namespace}_TASKS"),
            prefix: format!("cc.{namespace}.task."),
            results: format!("CC_{namespace}_results"),
            status: format!("CC_{namespace}_status"),
            cancel: format!("CC_{namespace}_cancel"),
            dlq: format!("CC_{namespace}_dlq"),
            schedules: format!("CC_{namespace}_schedules"),
        }
    }

    /// The level of `queue`'s tasks at `priority`: `cc.<ns>.task.<queue>.<priority>`, the
    /// subject of each of its tasks without the task's id.
    pub(crate) fn level(&self, queue: &str, priority: Priority) -> String {
        format!("{}{queue}.{}", self.prefix, priority.token())
    }

    /// The subject of one task, `<level>.<id>`: with the id in it, the stream's last
    /// message on `cc.<ns>.task.*.*.<id>` is the task's own, so a queued task needs no record
    /// besides its message.
    pub(crate) fn subject(level: &str, id: &str) -> String {
        format!("{level}.{id}")
    }

    /// Every task of `queue` at `priority` (a level's consumer and doorbell).
    pub(crate) fn level_filter(&self, queue: &str, priority: Priority) -> String {
        format!("{}.*", self.level(queue, priority))
    }

    /// The stream's subjects of the task `id`, whatever its queue and level.
    pub(crate) fn of_task(&self, id: &str) -> String {
        format!("{}*.*.{id}", self.prefix)
    }

    pub(crate) fn all(&self) -> String {
        format!("{}>", self.prefix)
    }
}

/// The queue and priority of a task's subject: `cc.<ns>.task.<queue>.<priority>.<id>`, or a
/// level without the id (an older build's task, a schedule's record).
pub(crate) fn parse_subject(subject: &str) -> Option<(String, Priority)> {
    let tokens: Vec<&str> = subject.split('.').collect();
    match tokens[..] {
        ["cc", _, "task", queue, priority] | ["cc", _, "task", queue, priority, _] => {
            Some((queue.to_string(), Priority::from_token(priority)?))
        }
        _ => None,
    }
}

/// The durable consumer of `queue` at `priority`.
pub(crate) fn consumer_name(queue: &str, priority: Priority) -> String {
    format!("{queue}_{}", priority.token())
}

/// Handles on the stores, opened once per [`TaskQueue`](super::TaskQueue) or node.
#[derive(Clone)]
pub(crate) struct Store {
    pub(crate) js: async_nats::jetstream::Context,
    pub(crate) stream: stream::Stream,
    pub(crate) results: kv::Store,
    pub(crate) status: kv::Store,
    pub(crate) cancel: kv::Store,
    pub(crate) dlq: kv::Store,
    pub(crate) names: Names,
    pub(crate) config: TaskConfig,
    pub(crate) url: String,
    pub(crate) max_payload: usize,
    /// The results watch shared by this handle's waits (and its clones', e.g. the scheduler's).
    pub(crate) watcher: std::sync::Arc<super::watch::Watcher>,
}

impl Store {
    /// Gets or creates the stream and the buckets.
    pub(crate) async fn open(
        client: async_nats::Client,
        namespace: &str,
        url: &str,
        config: TaskConfig,
    ) -> Result<Store, Error> {
        let names = Names::new(namespace);
        let max_payload = client.server_info().max_payload;
        if !client.server_info().jetstream {
            return Err(server_error(
                "open the task queue",
                url,
                "the server has no JetStream",
            ));
        }
        let js = async_nats::jetstream::new(client);
        let stream = stream_once(
            &js,
            stream::Config {
                name: names.stream.clone(),
                subjects: vec![names.all()],
                retention: RetentionPolicy::WorkQueue,
                storage: StorageType::File,
                duplicate_window: config.dedup_window,
                // Never drop a queued task to make room: a full stream refuses submits.
                discard: DiscardPolicy::New,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| server_error("create the task stream", url, e))?;
        // Results: oldest first out when the byte bound is reached.
        let results = bucket(
            &js,
            url,
            &names.results,
            config.result_ttl,
            config.result_max_bytes,
            DiscardPolicy::Old,
        )
        .await?;
        let status = bucket(
            &js,
            url,
            &names.status,
            config.result_ttl,
            config.result_max_bytes,
            DiscardPolicy::Old,
        )
        .await?;
        let cancel = bucket(
            &js,
            url,
            &names.cancel,
            config.revoke_ttl,
            -1,
            DiscardPolicy::New,
        )
        .await?;
        let dlq = bucket(
            &js,
            url,
            &names.dlq,
            config.dead_letter_ttl,
            -1,
            DiscardPolicy::New,
        )
        .await?;
        Ok(Store {
            js,
            stream,
            results,
            status,
            cancel,
            dlq,
            names,
            config,
            url: url.to_string(),
            max_payload,
            watcher: std::sync::Arc::default(),
        })
    }

    /// The durable pull consumer of `priority` in this queue (get or create). One left by
    /// an older build with another filter (level subjects without the task id) would never
    /// see a task: it is made again.
    pub(crate) async fn consumer(&self, priority: Priority) -> Result<PullConsumer, Error> {
        let queue = &self.config.queue;
        let name = consumer_name(queue, priority);
        let filter = self.names.level_filter(queue, priority);
        let config = consumer::pull::Config {
            durable_name: Some(name.clone()),
            filter_subject: filter.clone(),
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait: self.config.lease,
            // Attempts are counted by the status bucket (a delay's give-backs are
            // deliveries too), so the server never gives up on a task by itself.
            max_deliver: -1,
            max_ack_pending: 100_000,
            ..Default::default()
        };
        let err =
            |e: &dyn std::fmt::Display| server_error("create the task consumer", &self.url, e);
        let mut found: PullConsumer = self
            .stream
            .get_or_create_consumer(&name, config.clone())
            .await
            .map_err(|e| err(&e))?;
        if found.cached_info().config.filter_subject != filter {
            self.stream
                .delete_consumer(&name)
                .await
                .map_err(|e| err(&e))?;
            found = self
                .stream
                .create_consumer(config)
                .await
                .map_err(|e| err(&e))?;
        }
        Ok(found)
    }

    /// The inbox for the results of the tasks this handle submits (see
    /// [`Watcher::replies`](super::watch::Watcher::replies)); `None` if it cannot be read,
    /// and those tasks' waits use the watch.
    pub(crate) async fn replies(&self) -> Option<std::sync::Arc<str>> {
        match self.watcher.replies(&self.js.client()).await {
            Ok(inbox) => Some(inbox),
            Err(e) => {
                tracing::warn!("concurry tasks: no replies inbox ({e}); results are watched");
                None
            }
        }
    }

    /// The message of the task `id` while it is in the stream (queued, delayed, retrying
    /// or running: it leaves once its outcome is stored).
    pub(crate) async fn message_of(
        &self,
        id: &str,
    ) -> Result<Option<async_nats::jetstream::message::StreamMessage>, Error> {
        match self
            .stream
            .get_last_raw_message_by_subject(&self.names.of_task(id))
            .await
        {
            Ok(m) => Ok(Some(m)),
            Err(e) if e.kind() == stream::LastRawMessageErrorKind::NoMessageFound => Ok(None),
            Err(e) => Err(server_error("read the task stream", &self.url, e)),
        }
    }

    /// How many tasks are stored in the stream (queued, delayed, or running unacked).
    pub(crate) async fn queued(&self) -> Result<u64, Error> {
        let mut stream = self.stream.clone();
        let info = stream
            .info()
            .await
            .map_err(|e| server_error("read the task stream", &self.url, e))?;
        Ok(info.state.messages)
    }
}

/// Gets or creates the KV bucket `bucket` (its stream `KV_<bucket>`, as `create_key_value`
/// would make it), then opens it.
pub(crate) async fn bucket(
    js: &async_nats::jetstream::Context,
    url: &str,
    bucket: &str,
    max_age: Duration,
    max_bytes: i64,
    discard: DiscardPolicy,
) -> Result<kv::Store, Error> {
    stream_once(
        js,
        stream::Config {
            name: format!("KV_{bucket}"),
            subjects: vec![format!("$KV.{bucket}.>")],
            max_messages_per_subject: 1,
            max_bytes,
            max_age,
            storage: StorageType::File,
            allow_rollup: true,
            deny_delete: true,
            allow_direct: true,
            num_replicas: 1,
            discard,
            ..Default::default()
        },
    )
    .await
    .map_err(|e| server_error(&format!("create the KV bucket `{bucket}`"), url, e))?;
    js.get_key_value(bucket)
        .await
        .map_err(|e| server_error(&format!("open the KV bucket `{bucket}`"), url, e))
}

/// Gets or creates the stream of `config`. Another process (a node and a pool starting
/// together) may create it between the get and the create, which the server then refuses
/// (its subjects overlap the stream just made): the stream it made is taken.
pub(crate) async fn stream_once(
    js: &async_nats::jetstream::Context,
    config: stream::Config,
) -> Result<stream::Stream, async_nats::jetstream::context::CreateStreamError> {
    let name = config.name.clone();
    match js.get_or_create_stream(config).await {
        Ok(s) => Ok(s),
        Err(e) => match js.get_stream(&name).await {
            Ok(s) => Ok(s),
            Err(_) => Err(e),
        },
    }
}
