//! [`Node`]: a process that registers in a cluster, heartbeats and advertises what it hosts.

use std::fmt;
use std::time::Duration;

use futures_util::StreamExt;

use super::connect::Cluster;
use super::host::{DRAIN_TIMEOUT, Host};
use super::protocol::{Beat, NodeMsg, encode};
use super::{DEFAULT_HEARTBEAT, check_token, registered_types, run};
use crate::error::{ConfigError, Error};
use crate::sync::os::{Arc, Mutex, lock};

/// The shortest and longest heartbeat intervals [`Node::heartbeat`] accepts.
pub(crate) const HEARTBEAT_RANGE: (Duration, Duration) =
    (Duration::from_millis(10), Duration::from_secs(60));

/// How long a starting node waits for another node of its name to answer.
const NAME_CHECK: Duration = Duration::from_secs(1);

/// How long a drain waits for its goodbye to reach the server.
const GOODBYE: Duration = Duration::from_secs(2);

/// A node: a process of your own binary that hosts worker instances for a cluster. It
/// registers under a name unique in its namespace, heartbeats (every 1 s by default; see the
/// [module docs](crate::cluster) for how that bounds failure detection), and advertises its
/// capacity, its free slots and the worker types it can host.
///
/// Build it with [`Node::connect`] (or [`Node::new`] on a [`Cluster`] with auth, TLS or a
/// namespace), then [`serve`](Node::serve) (blocks until SIGTERM or SIGINT, then drains) or
/// [`start`](Node::start) (in the background).
///
/// The types it hosts are, unless [`types`](Node::types) narrows them, every
/// `#[worker(remote)]` type of the binary (process mode's registry, which the linker fills).
///
/// ```no_run
/// use concurry::cluster::Node;
///
/// # fn main() -> Result<(), concurry::Error> {
/// Node::connect("nats://10.0.0.5:4222")?.name("gpu-1").capacity(8).serve()?;
/// # Ok(()) }
/// ```
pub struct Node {
    cluster: Cluster,
    name: Option<String>,
    capacity: Option<u32>,
    types: Option<Vec<String>>,
    heartbeat: Duration,
    /// `metrics_listen` (feature `prometheus`, `prometheus.rs`).
    #[cfg(feature = "prometheus")]
    pub(super) metrics: Option<std::net::SocketAddr>,
    tasks: Option<super::tasks::TaskConfig>,
}

impl Node {
    /// Connects to the server at `url` (no auth, namespace `default`); configure with the
    /// other methods, then [`serve`](Node::serve) or [`start`](Node::start).
    ///
    /// # Errors
    ///
    /// As [`Cluster::connect`].
    pub fn connect(url: impl Into<String>) -> Result<Node, Error> {
        Ok(Node::new(Cluster::connect(url)?))
    }

    /// A node on an existing connection (made with [`Cluster::builder`] for auth, TLS or a
    /// namespace).
    pub fn new(cluster: Cluster) -> Node {
        Node {
            cluster,
            name: None,
            capacity: None,
            types: None,
            heartbeat: DEFAULT_HEARTBEAT,
            #[cfg(feature = "prometheus")]
            metrics: None,
            tasks: None,
        }
    }

    /// Its name: 1 to 64 ASCII letters, digits, `-` or `_`, unique in the namespace. Default:
    /// the host name and process id (`host-1234`).
    ///
    /// Checked at start: while a live node answers to the name, a second is refused with
    /// [`Error::Config`]. (Two nodes starting within the same round trip to the server can
    /// both pass the check.)
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// How many worker instances it hosts at most (at least 1). Default: the machine's
    /// available parallelism. Each instance has a connection to the server of its own (its
    /// calls are read and answered on its thread), so a node holds up to `capacity + 1`.
    pub fn capacity(mut self, instances: u32) -> Self {
        self.capacity = Some(instances);
        self
    }

    /// Hosts only these worker types (their `RemoteWorker::NAME`, which `#[worker(remote)]`
    /// makes `module::path::Type`); each must be a remote worker type of this binary.
    pub fn types<S: Into<String>>(mut self, types: impl IntoIterator<Item = S>) -> Self {
        self.types = Some(types.into_iter().map(Into::into).collect());
        self
    }

    /// How often it heartbeats (10 ms to 60 s; default 1 s). Clients count it lost after 2.5
    /// intervals of silence.
    pub fn heartbeat(mut self, interval: Duration) -> Self {
        self.heartbeat = interval;
        self
    }

    /// Serves durable tasks with these settings (queue, lease, slots); see
    /// [`TaskConfig`](super::TaskConfig). Without it a node of a binary with `#[task(remote)]`
    /// functions serves the `default` queue when the server has JetStream.
    pub fn tasks(mut self, config: super::tasks::TaskConfig) -> Self {
        self.tasks = Some(config);
        self
    }

    fn check(&self) -> Result<Beat, ConfigError> {
        let name = match &self.name {
            Some(n) => n.clone(),
            None => default_name(),
        };
        check_token("name", &name)?;
        let capacity = match self.capacity {
            Some(0) => {
                return Err(ConfigError::new(
                    "capacity",
                    "0",
                    "a node hosts at least 1 instance; give capacity(1) or more",
                ));
            }
            Some(c) => c,
            None => std::thread::available_parallelism()
                .map_or(1, |n| u32::try_from(n.get()).unwrap_or(u32::MAX)),
        };
        let (lo, hi) = HEARTBEAT_RANGE;
        if self.heartbeat < lo || self.heartbeat > hi {
            return Err(ConfigError::new(
                "heartbeat",
                format!("{:?}", self.heartbeat),
                format!("use an interval from {lo:?} to {hi:?} (default {DEFAULT_HEARTBEAT:?})"),
            ));
        }
        let registered = registered_types();
        let types = match &self.types {
            None => registered,
            Some(asked) => {
                let mut types = Vec::with_capacity(asked.len());
                for t in asked {
                    if !registered.contains(t) {
                        return Err(ConfigError::new(
                            "types",
                            format!("{t:?}"),
                            format!(
                                "not a remote worker type of this binary (registered: {}); mark \
                                 its impl `#[worker(remote)]`, or name it as its \
                                 `RemoteWorker::NAME` (`module::path::Type`)",
                                list(&registered)
                            ),
                        ));
                    }
                    types.push(t.clone());
                }
                types.sort();
                types.dedup();
                types
            }
        };
        let id = format!("{name}-{:016x}", random_bits());
        Ok(Beat {
            id,
            name,
            types,
            capacity,
            free: capacity,
            draining: false,
            interval_ms: u32::try_from(self.heartbeat.as_millis()).unwrap_or(u32::MAX),
            seq: 0,
            pid: std::process::id(),
            host: host_name(),
        })
    }

    /// Registers and starts heartbeating in the background; the node serves until
    /// [`RunningNode::drain`] or until the handle is dropped (which drains too).
    ///
    /// ```
    /// use std::time::Duration;
    /// use concurry::cluster::{Cluster, ClusterEvent, LocalServer, Node};
    ///
    /// # fn main() -> Result<(), concurry::Error> {
    /// # let Some(server) = LocalServer::for_tests() else { return Ok(()) };
    /// # let url = server.url();
    /// let cluster = Cluster::connect(url.clone())?;
    /// let events = cluster.events();
    /// let node = Node::connect(url)?.name("local").capacity(2).start()?;
    /// let seen = cluster.wait_for_nodes(1, Duration::from_secs(10))?;
    /// assert_eq!((seen[0].name(), seen[0].capacity()), ("local", 2));
    /// assert_eq!(node.instances(), 0); // `Mode::Cluster` pools place instances here
    /// node.drain()?;
    /// assert!(matches!(events.recv_timeout(Duration::from_secs(10)), Some(ClusterEvent::Joined(_))));
    /// assert!(matches!(events.recv_timeout(Duration::from_secs(10)), Some(ClusterEvent::Left(_))));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for an invalid name, capacity, heartbeat or type, or when another
    /// live node already has this name in the namespace.
    pub fn start(self) -> Result<RunningNode, Error> {
        let beat = self.check()?;
        let (name, capacity) = (beat.name.clone(), beat.capacity);
        let cluster = self.cluster;
        let state = Arc::new(Mutex::new(beat));
        let interval = self.heartbeat;
        let host = Host::new(&cluster, state.clone());
        #[cfg(feature = "prometheus")]
        let exporter = match self.metrics {
            Some(addr) => super::prometheus::start(addr, state.clone(), interval, &cluster)?,
            None => Vec::new(),
        };
        let tasks = {
            let cluster = cluster.clone();
            let state = state.clone();
            let host = host.clone();
            run(async move {
                // Hosting first: a client may place an instance as soon as it sees a beat.
                let mut tasks = host.listen().await.map_err(|e| {
                    Error::from(ConfigError::new(
                        "cluster",
                        cluster.url().to_string(),
                        format!(
                            "could not subscribe to the node's control subjects ({e}); check \
                             the user's permissions on `cc.{}.>`",
                            cluster.namespace()
                        ),
                    ))
                })?;
                match register(cluster, state, interval).await {
                    Ok(more) => tasks.extend(more),
                    Err(e) => {
                        tasks.iter().for_each(tokio::task::AbortHandle::abort);
                        return Err(e);
                    }
                }
                Ok(tasks)
            })
        };
        #[cfg(feature = "prometheus")]
        let tasks = super::prometheus::chain(tasks, exporter);
        let mut tasks = tasks?;
        let (done, _) = tokio::sync::watch::channel(false);
        let drainer = Arc::new(Drainer {
            cluster: cluster.clone(),
            state: state.clone(),
            host: host.clone(),
            tasks: Mutex::new(Vec::new()),
            task_runner: Mutex::new(None),
            drained: Mutex::new(false),
            done,
        });
        let node = RunningNode {
            cluster,
            state,
            host,
            drainer,
        };
        // From here on a failed start drops `node`, which drains what started.
        lock(&node.drainer.tasks).append(&mut tasks);
        let runner =
            super::tasks::runner::start_for_node(&node.cluster, &name, capacity, self.tasks)?;
        *lock(&node.drainer.task_runner) = runner;
        // Tasks submitted by name with JSON arguments (the CLI) are converted here.
        let json = super::tasks::json::serve(&node.cluster)?;
        lock(&node.drainer.tasks).extend(json);
        let drain_on_request = drain_requests(&node.cluster, &node.id(), &node.drainer)?;
        lock(&node.drainer.tasks).push(drain_on_request);
        Ok(node)
    }

    /// Registers, heartbeats, and blocks until SIGTERM or SIGINT (Ctrl-C); then drains:
    /// it says goodbye, so clients see it leave at once instead of waiting for its
    /// heartbeats to lapse. Returns after the drain.
    ///
    /// The signal handlers are installed before the node registers and stay installed after
    /// `serve` returns (a later SIGTERM no longer ends the process by default).
    ///
    /// # Errors
    ///
    /// As [`start`](Node::start), and [`Error::Config`] if the signal handlers cannot be
    /// installed.
    pub fn serve(self) -> Result<(), Error> {
        let signals = run(async { Signals::install() }).map_err(|e| {
            ConfigError::new(
                "serve",
                "signal handlers",
                format!("could not install the SIGTERM/SIGINT handlers ({e}); use Node::start"),
            )
        })?;
        let node = self.start()?;
        let mut done = node.drainer.done.subscribe();
        let which = run(async move {
            tokio::select! {
                which = signals.wait() => which,
                _ = done.wait_for(|d| *d) => "a drain request",
            }
        });
        tracing::info!(node = %node.name(), "concurry node: {which}, draining");
        node.drain()
    }
}

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Node")
            .field("cluster", &self.cluster)
            .field("name", &self.name)
            .field("capacity", &self.capacity)
            .field("types", &self.types)
            .field("heartbeat", &self.heartbeat)
            .finish()
    }
}

/// SIGTERM and SIGINT, listened to.
struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> std::io::Result<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Signals {
                term: signal(SignalKind::terminate())?,
                int: signal(SignalKind::interrupt())?,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(Signals {})
        }
    }

    async fn wait(mut self) -> &'static str {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.term.recv() => "SIGTERM",
                _ = self.int.recv() => "SIGINT",
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            "Ctrl-C"
        }
    }
}

/// Checks the name is free, answers pings and name checks, and heartbeats.
async fn register(
    cluster: Cluster,
    state: Arc<Mutex<Beat>>,
    interval: Duration,
) -> Result<Vec<tokio::task::AbortHandle>, Error> {
    let client = cluster.client().clone();
    let subjects = cluster.subjects().clone();
    let (name, id) = {
        let b = lock(&state);
        (b.name.clone(), b.id.clone())
    };
    let taken = |detail: String| {
        Error::from(ConfigError::new(
            "name",
            format!("{name:?}"),
            format!(
                "a node of that name already serves namespace `{}` ({detail}); give this one \
                 another name, or drain that one",
                cluster.namespace()
            ),
        ))
    };
    let name_subject = subjects.name(&name);
    match tokio::time::timeout(
        NAME_CHECK,
        client.request(name_subject.clone(), Vec::new().into()),
    )
    .await
    {
        Ok(Err(e)) if e.kind() == async_nats::client::RequestErrorKind::NoResponders => {}
        Ok(Ok(reply)) => {
            let detail = match super::protocol::decode(&reply.payload) {
                Ok(NodeMsg::Beat(b)) => format!("pid {} on host `{}`", b.pid, b.host),
                _ => "it answered its name".to_string(),
            };
            return Err(taken(detail));
        }
        Ok(Err(e)) => {
            return Err(ConfigError::new(
                "cluster",
                cluster.url().to_string(),
                format!(
                    "could not check that the node name {name:?} is free ({e}); is the server up?"
                ),
            )
            .into());
        }
        Err(_) => return Err(taken("it did not answer within 1 s".to_string())),
    }
    let sub_err = |e: async_nats::SubscribeError| {
        Error::from(ConfigError::new(
            "cluster",
            cluster.url().to_string(),
            format!(
                "could not subscribe to `{}` ({e}); check the user's permissions",
                subjects.ping()
            ),
        ))
    };
    let mut pings = client.subscribe(subjects.ping()).await.map_err(sub_err)?;
    let mut names = client.subscribe(name_subject).await.map_err(sub_err)?;
    let answer = {
        let client = client.clone();
        let state = state.clone();
        crate::runtime::runtime().spawn(async move {
            loop {
                let msg = tokio::select! {
                    Some(m) = pings.next() => m,
                    Some(m) = names.next() => m,
                    else => return,
                };
                if let Some(reply) = msg.reply {
                    let bytes = encode(&NodeMsg::Beat(lock(&state).clone()));
                    let _ = client.publish(reply, bytes.into()).await;
                }
            }
        })
    };
    let beat = {
        let client = client.clone();
        let subject = subjects.heartbeat();
        crate::runtime::runtime().spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let bytes = {
                    let mut b = lock(&state);
                    let bytes = encode(&NodeMsg::Beat(b.clone()));
                    b.seq += 1;
                    bytes
                };
                // While disconnected, async-nats buffers; a beat that cannot be sent is
                // simply late, and the next one says the same.
                let _ = client.publish(subject.clone(), bytes.into()).await;
                let _ = client.flush().await;
            }
        })
    };
    tracing::info!(node = %name, id = %id, "concurry node: registered");
    Ok(vec![answer.abort_handle(), beat.abort_handle()])
}

/// A node started with [`Node::start`], serving in the background. Dropping it drains it.
pub struct RunningNode {
    cluster: Cluster,
    state: Arc<Mutex<Beat>>,
    host: Arc<Host>,
    drainer: Arc<Drainer>,
}

/// What a drain stops: shared by the node's handle and its drain requests (`concurry drain`),
/// which drain it from a thread of their own.
struct Drainer {
    cluster: Cluster,
    state: Arc<Mutex<Beat>>,
    host: Arc<Host>,
    tasks: Mutex<Vec<tokio::task::AbortHandle>>,
    task_runner: Mutex<Option<super::tasks::runner::TaskRunner>>,
    /// Held for the whole drain: a second drain waits for the first to end.
    drained: Mutex<bool>,
    /// True once drained (`serve` returns).
    done: tokio::sync::watch::Sender<bool>,
}

/// Answers drain requests on `node.<id>.drain`: the reply says the drain started; the drain
/// itself runs on a thread of its own (as a SIGTERM's would).
fn drain_requests(
    cluster: &Cluster,
    id: &str,
    drainer: &Arc<Drainer>,
) -> Result<tokio::task::AbortHandle, Error> {
    let client = cluster.client().clone();
    let subject = cluster.subjects().drain(id);
    let url = cluster.url().to_string();
    let weak = Arc::downgrade(drainer);
    run(async move {
        let mut requests = client.subscribe(subject.clone()).await.map_err(|e| {
            Error::from(ConfigError::new(
                "cluster",
                url,
                format!("could not subscribe to `{subject}` ({e}); check the user's permissions"),
            ))
        })?;
        let task = crate::runtime::runtime().spawn(async move {
            while let Some(msg) = requests.next().await {
                let Some(drainer) = weak.upgrade() else {
                    return;
                };
                let state = lock(&drainer.state).clone();
                if let Some(to) = msg.reply {
                    let _ = client
                        .publish(to, encode(&NodeMsg::Beat(state.clone())).into())
                        .await;
                    let _ = client.flush().await;
                }
                tracing::info!(node = %state.name, "concurry node: drain requested, draining");
                std::thread::spawn(move || drainer.stop());
            }
        });
        Ok(task.abort_handle())
    })
}

impl RunningNode {
    /// Its name.
    pub fn name(&self) -> String {
        lock(&self.state).name.clone()
    }

    /// Its id (name and random bits), as clients see it in [`NodeView::id`](super::NodeView::id).
    pub fn id(&self) -> String {
        lock(&self.state).id.clone()
    }

    /// The connection it serves on.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// How many worker instances it hosts now (`Mode::Cluster` pools place them).
    pub fn instances(&self) -> usize {
        self.host.hosted()
    }

    /// Stops taking work (its heartbeats say it is draining), has the owners of its
    /// instances move them to other nodes (each owner stops sending here, lets the calls in
    /// flight finish, then places the instance elsewhere: no call fails), waits for that
    /// (at most 30 s; instances still here then are ended), stops heartbeating and says
    /// goodbye: clients see it [`Left`](super::ClusterEvent::Left) at once.
    ///
    /// # Errors
    ///
    /// None: when the goodbye cannot reach the server within 2 s it is logged, and clients
    /// see the node lost when its heartbeats lapse instead.
    pub fn drain(self) -> Result<(), Error> {
        self.drainer.stop();
        Ok(())
    }
}

impl Drainer {
    fn stop(&self) {
        let mut drained = lock(&self.drained);
        if std::mem::replace(&mut *drained, true) {
            return;
        }
        let name = lock(&self.state).name.clone();
        let left = self.host.drain(DRAIN_TIMEOUT);
        if left > 0 {
            tracing::warn!(
                node = %name,
                "concurry node: {left} instances were not moved within {DRAIN_TIMEOUT:?}; ended"
            );
        }
        let runner = lock(&self.task_runner).take();
        if let Some(runner) = runner {
            runner.drain();
        }
        for t in lock(&self.tasks).iter() {
            t.abort();
        }
        let (id, name) = {
            let mut b = lock(&self.state);
            b.draining = true;
            (b.id.clone(), b.name.clone())
        };
        let client = self.cluster.client().clone();
        let subject = self.cluster.subjects().heartbeat();
        let bytes = encode(&NodeMsg::Bye {
            id,
            name: name.clone(),
        });
        let sent = run(async move {
            tokio::time::timeout(GOODBYE, async {
                client.publish(subject, bytes.into()).await?;
                client.flush().await?;
                Ok::<_, async_nats::Error>(())
            })
            .await
        });
        match sent {
            Ok(Ok(())) => tracing::info!(node = %name, "concurry node: drained, deregistered"),
            Ok(Err(e)) => tracing::warn!(node = %name, "concurry node: goodbye not sent ({e})"),
            Err(_) => {
                tracing::warn!(node = %name, "concurry node: goodbye not sent within {GOODBYE:?}")
            }
        }
        let _ = self.done.send(true);
    }
}

impl Drop for RunningNode {
    fn drop(&mut self) {
        self.drainer.stop();
    }
}

impl fmt::Debug for RunningNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = lock(&self.state);
        f.debug_struct("RunningNode")
            .field("name", &b.name)
            .field("id", &b.id)
            .field("capacity", &b.capacity)
            .field("types", &b.types)
            .field("drained", &*self.drainer.done.borrow())
            .finish()
    }
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "none".to_string()
    } else {
        names
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The machine's host name (Linux: the kernel's), or `node`.
pub(crate) fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "node".to_string())
}

/// `host-pid`, with every character a subject token cannot hold made `-`.
fn default_name() -> String {
    let host: String = host_name()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(48)
        .collect();
    format!("{host}-{}", std::process::id())
}

/// 64 random bits for a node id (the OS random source; a clock mix if it fails).
fn random_bits() -> u64 {
    getrandom::u64().unwrap_or_else(|_| {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        (t.as_nanos() as u64) ^ u64::from(std::process::id()).rotate_left(32)
    })
}
