//! The limits of a `#[task(remote)]` pool in `Mode::Cluster`: global across nodes, hosted
//! by the pool's process.
//!
//! Who hosts them: the process whose pool has the limits (the submitter), as the owner of a
//! cluster worker pool hosts its pool's. A limit set is code (rate algorithms, clocks), not
//! data, so it cannot travel with the task; the submitter has it. The host serves the task
//! *name*, on `cc.<ns>.tlim.<task name>`: every run of that task on any node takes its
//! `concurry::limits()` units from that one set, whoever submitted the run, so the limits are
//! global across nodes and submitters. One process hosts a task's limits: a second pool with
//! limits for the same task is refused while the first is up.
//!
//! A node runs every task with hosted limits on that subject (nothing is sent unless the
//! task calls `limits()`). Each run is one client: its leases live in a `LimitHost` of its
//! own on the host, given back when the run ends (an `End` message, confirmed before the
//! run's result is stored: [`RunLimits::end`]), or when its node is lost or leaves. If no process hosts the task's limits (the submitter exited and no pool
//! with them runs), `limits()` inside the task fails with a `LimitError` saying the host is
//! gone, at once (NATS "no responders"): start a pool with the limits again to host them.
//! A request unanswered for [`ASK_CEILING`] (a host that died mid-wait) fails the same way.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use crate::cluster::{Cluster, ClusterEvent, run};
use crate::error::{ConfigError, Error};
use crate::limit::LimitSet;
use crate::limit::hosted::{
    Closed, HostedLimits, LimitHost, LimitLink, LimitMsg, LimitReplier, LimitReply,
};

/// The longest a node waits for the host's answer to one limit request.
pub(crate) const ASK_CEILING: Duration = Duration::from_secs(600);

/// One message to the host: the run it is from (`<node>/<random>`) and the request, or
/// `None` when the run ended.
#[derive(Debug, Serialize, Deserialize)]
struct Envelope {
    client: String,
    msg: Option<LimitMsg>,
}

/// The host's subject for the limits of task `task` in the namespace of stream `stream`
/// (`CC_<ns>_TASKS`).
pub(crate) fn subject(stream: &str, task: &str) -> String {
    let ns = stream
        .strip_prefix("CC_")
        .and_then(|s| s.strip_suffix("_TASKS"))
        .unwrap_or(stream);
    format!("cc.{ns}.tlim.{task}")
}

// ------------------------------------------------------------------ the node's side

/// A run's link to the host of its task's limits.
struct NatsLink {
    client: async_nats::Client,
    subject: String,
    id: String,
    used: std::sync::atomic::AtomicBool,
    /// The run's end was sent ([`RunLimits::end`]).
    ended: std::sync::atomic::AtomicBool,
}

/// The longest a node waits for the host to confirm a run's end before storing its result.
const END_CEILING: Duration = Duration::from_secs(5);

/// The hosted limits a run of `task` on `node` sees as `limits()`, and the run's end.
pub(crate) fn for_run(
    client: &async_nats::Client,
    stream: &str,
    task: &str,
    node: &str,
) -> (HostedLimits, RunLimits) {
    let link = Arc::new(NatsLink {
        client: client.clone(),
        subject: subject(stream, task),
        id: format!("{node}/{:016x}", crate::rand::id()),
        used: std::sync::atomic::AtomicBool::new(false),
        ended: std::sync::atomic::AtomicBool::new(false),
    });
    (HostedLimits::new(link.clone()), RunLimits { link })
}

/// The node's hold on a run's limits, to end the run once its function returned.
pub(crate) struct RunLimits {
    link: Arc<NatsLink>,
}

impl RunLimits {
    /// Whether [`end`](RunLimits::end) has anything to do: the run used `limits()`.
    pub(crate) fn used(&self) -> bool {
        self.link.used.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Ends the run at the host (every lease it still holds goes back) and waits until the
    /// host has handled that, and so every release before it: the run's units are back in
    /// the pool's set before its result is stored, so whoever reads the set after the
    /// result sees them back. (A release is a plain publish, and the result reaches the
    /// pool's process another way, through the results bucket.) The wait is a request the
    /// host answers at once (as a second host's probe), after what this connection sent
    /// before it. Nothing is sent for a run that never used `limits()`.
    pub(crate) async fn end(&self) {
        use std::sync::atomic::Ordering;
        let link = &self.link;
        if !link.used.load(Ordering::Acquire) || link.ended.swap(true, Ordering::AcqRel) {
            return;
        }
        let (client, subject) = (&link.client, &link.subject);
        let _ = client
            .publish(subject.clone(), link.envelope(None).into())
            .await;
        let probe = async_nats::Request::new()
            .payload(link.envelope(None).into())
            .timeout(Some(END_CEILING));
        // (No host, or none answering: nothing to wait for.)
        let _ = client.send_request(subject.clone(), probe).await;
    }
}

impl NatsLink {
    fn envelope(&self, msg: Option<LimitMsg>) -> Vec<u8> {
        postcard::to_allocvec(&Envelope {
            client: self.id.clone(),
            msg,
        })
        .unwrap_or_default()
    }
}

impl LimitLink for NatsLink {
    fn send(&self, msg: LimitMsg) -> Result<(), Closed> {
        self.used.store(true, std::sync::atomic::Ordering::Release);
        let (client, subject, bytes) = (
            self.client.clone(),
            self.subject.clone(),
            self.envelope(Some(msg)),
        );
        run(async move { client.publish(subject, bytes.into()).await }).map_err(|_| Closed)
    }

    fn ask(&self, msg: LimitMsg) -> Option<LimitReply> {
        self.used.store(true, std::sync::atomic::Ordering::Release);
        let (client, subject, bytes) = (
            self.client.clone(),
            self.subject.clone(),
            self.envelope(Some(msg)),
        );
        let reply = run(async move {
            let request = async_nats::Request::new()
                .payload(bytes.into())
                .timeout(Some(ASK_CEILING));
            client.send_request(subject, request).await
        });
        match reply {
            Ok(m) => postcard::from_bytes::<LimitReply>(&m.payload).ok(),
            // No host (NATS "no responders"), a timeout, a closed connection: gone.
            Err(_) => None,
        }
    }
}

impl Drop for NatsLink {
    fn drop(&mut self) {
        if !self.used.load(std::sync::atomic::Ordering::Acquire)
            || self.ended.load(std::sync::atomic::Ordering::Acquire)
        {
            return;
        }
        let (client, subject, bytes) = (
            self.client.clone(),
            self.subject.clone(),
            self.envelope(None),
        );
        crate::runtime::runtime().spawn(async move {
            let _ = client.publish(subject, bytes.into()).await;
        });
    }
}

// ------------------------------------------------------------------ the pool's side

/// The host of a task's limits, in the pool's process: serves until dropped.
pub(crate) struct Host {
    serve: tokio::task::JoinHandle<()>,
    stop_watch: Arc<std::sync::atomic::AtomicBool>,
}

impl Drop for Host {
    fn drop(&mut self) {
        self.serve.abort();
        self.stop_watch
            .store(true, std::sync::atomic::Ordering::Release);
    }
}

/// The runs being served, by client id.
type Runs = Arc<Mutex<HashMap<String, Arc<LimitHost>>>>;

/// Answers one request by publishing to its reply subject.
struct Replier {
    client: async_nats::Client,
    to: async_nats::Subject,
}

impl LimitReplier for Replier {
    fn reply(&self, _id: u64, reply: LimitReply) {
        let bytes = postcard::to_allocvec(&reply).unwrap_or_default();
        let (client, to) = (self.client.clone(), self.to.clone());
        crate::runtime::runtime().spawn(async move {
            let _ = client.publish(to, bytes.into()).await;
        });
    }
}

/// Starts hosting `set` for the runs of task `task` on the nodes of `cluster`.
///
/// # Errors
///
/// [`Error::Config`] if another process hosts that task's limits already, or the
/// subscription cannot be made.
pub(crate) fn host(
    cluster: &Cluster,
    stream: &str,
    task: &str,
    set: LimitSet,
) -> Result<Host, Error> {
    let client = cluster.client().clone();
    let subject = subject(stream, task);
    let url = cluster.url().to_string();
    let task_name = task.to_string();
    let sub = run({
        let (client, subject) = (client.clone(), subject.clone());
        async move {
            // Someone answers already: a second host would split the limits.
            let probe = postcard::to_allocvec(&Envelope {
                client: String::new(),
                msg: None,
            })
            .unwrap_or_default();
            let request = async_nats::Request::new()
                .payload(probe.into())
                .timeout(Some(Duration::from_millis(500)));
            if client.send_request(subject.clone(), request).await.is_ok() {
                return Err(Error::Config(ConfigError::new(
                    "limits",
                    task_name,
                    "another process hosts this task's limits already (its pool in \
                     `Mode::Cluster` with `.limits(..)`): one process hosts them, the others \
                     start their pool without `limits`",
                )));
            }
            client
                .subscribe(subject)
                .await
                .map_err(|e| super::server_error("host the task's limits", &url, e))
        }
    })?;
    let runs: Runs = Arc::new(Mutex::new(HashMap::new()));
    let serve = crate::runtime::runtime().spawn(serve(client, sub, set, runs.clone()));
    // A run on a node that is lost or leaves gives its leases back.
    let stop_watch = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let events = cluster.events();
    let stop = stop_watch.clone();
    std::thread::Builder::new()
        .name("concurry-task-limits".into())
        .spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Acquire) {
                let Some(ev) = events.recv_timeout(Duration::from_millis(500)) else {
                    continue;
                };
                if let ClusterEvent::Lost(n) | ClusterEvent::Left(n) = &ev {
                    let prefix = format!("{}/", n.name());
                    let mut runs = runs
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    runs.retain(|client, host| {
                        let keep = !client.starts_with(&prefix);
                        if !keep {
                            host.close();
                        }
                        keep
                    });
                }
            }
        })
        .map_err(|e| {
            Error::Config(ConfigError::new(
                "limits",
                "a thread",
                format!("could not start the limits host's watcher ({e})"),
            ))
        })?;
    Ok(Host { serve, stop_watch })
}

async fn serve(
    client: async_nats::Client,
    mut sub: async_nats::Subscriber,
    set: LimitSet,
    runs: Runs,
) {
    while let Some(msg) = sub.next().await {
        let Ok(env) = postcard::from_bytes::<Envelope>(&msg.payload) else {
            tracing::warn!("concurry tasks: a limit request that does not decode");
            continue;
        };
        let Some(to) = msg.reply.clone() else {
            // A release or a run's end.
            let mut runs = runs
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match env.msg {
                None => {
                    if let Some(h) = runs.remove(&env.client) {
                        h.close();
                    }
                }
                Some(m) => {
                    if let Some(h) = runs.get(&env.client) {
                        h.on_message(
                            m,
                            Arc::new(Replier {
                                client: client.clone(),
                                to: "".into(),
                            }),
                        );
                    }
                }
            }
            continue;
        };
        let Some(m) = env.msg else {
            // The probe of a pool that would host the same limits.
            let _ = client.publish(to, "".into()).await;
            continue;
        };
        let host = {
            let mut runs = runs
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            runs.entry(env.client)
                .or_insert_with(|| LimitHost::new(Some(&set)))
                .clone()
        };
        host.on_message(
            m,
            Arc::new(Replier {
                client: client.clone(),
                to,
            }),
        );
    }
}
