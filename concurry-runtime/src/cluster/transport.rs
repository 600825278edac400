//! `Mode::Cluster` as a [`Transport`] of the remote layer: placing a worker sends a spawn
//! request to a live node chosen by free capacity; its [`Peer`] publishes envelopes to the
//! instance's subject (cancels and limit replies to its side subject, which the node reads
//! while the instance runs a call); its [`Inbound`] reads the owner's inbox for that instance, and ends
//! as a disconnect when the node is lost (heartbeats lapsed or goodbye) or this client's
//! connection to the server drops. The supervisor, call table, deadlines, restarts and
//! hosted limits are the remote layer's, as in process mode.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use futures_util::StreamExt;

use super::hosting::{Ctl, CtlReply, Refusal, Spawn, decode_reply, encode_ctl, frame, unframe};
use super::{Cluster, NodeView, SWEEP, plan, run};
use crate::remote::{Ending, Inbound, NextAsync, Peer, PlaceError, Placed, Transport};
use crate::sync::os::{Arc, AtomicBool, Mutex, Ordering, lock};
use crate::wire::{CallHeader, Envelope, Fault, Kind, WireError, decode};

/// How long a node may take to answer a spawn request.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a placed instance may take to build (its constructor runs on the node).
pub(crate) const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A message for the transport's publisher task.
type Out = (String, Vec<u8>);

/// The nodes of a cluster, as one pool's transport.
pub(crate) struct Nodes {
    cluster: Cluster,
    /// This owner's id: nodes ask `owner.<id>` whether it is alive.
    owner: String,
    out: tokio::sync::mpsc::UnboundedSender<Out>,
    /// Free slots a node had right after one of our spawns, with its heartbeat count then:
    /// used until a later heartbeat counts the spawn itself.
    hints: Mutex<HashMap<String, (u32, u64)>>,
    /// Nodes that told us they are draining.
    draining: Arc<Mutex<HashSet<String>>>,
    max: usize,
    tasks: Vec<tokio::task::AbortHandle>,
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Nodes {
    /// A transport on `cluster` for frames of at most `max` bytes: answers the nodes' owner
    /// checks and starts its publisher.
    pub(crate) fn new(cluster: &Cluster, max: usize) -> Result<Nodes, String> {
        let owner = format!("{:016x}", crate::rand::id());
        let client = cluster.client().clone();
        let subject = cluster.subjects().owner(&owner);
        let (out, mut rx) = tokio::sync::mpsc::unbounded_channel::<Out>();
        let tasks = run(async move {
            let mut checks = client
                .subscribe(subject)
                .await
                .map_err(|e| format!("could not subscribe to the owner subject: {e}"))?;
            let _ = client.flush().await;
            let rt = crate::runtime::runtime();
            let answering = {
                let client = client.clone();
                rt.spawn(async move {
                    while let Some(msg) = checks.next().await {
                        if let Some(to) = msg.reply {
                            let _ = client.publish(to, Vec::new().into()).await;
                        }
                    }
                })
            };
            let publishing = rt.spawn(async move {
                while let Some((subject, bytes)) = rx.recv().await {
                    if let Err(e) = client.publish(subject, bytes.into()).await {
                        tracing::warn!("concurry cluster: a message was not sent: {e}");
                    }
                }
            });
            Ok::<_, String>(vec![answering.abort_handle(), publishing.abort_handle()])
        })?;
        Ok(Nodes {
            cluster: cluster.clone(),
            owner,
            out,
            hints: Mutex::new(HashMap::new()),
            draining: Arc::default(),
            max,
            tasks,
        })
    }

    /// The live nodes as this transport sees them: our own recent spawns counted.
    fn views(&self, skip: &HashSet<String>) -> Vec<NodeView> {
        let hints = lock(&self.hints);
        let draining = lock(&self.draining);
        self.cluster
            .nodes()
            .into_iter()
            .filter(|n| !skip.contains(n.id()))
            .map(|n| match hints.get(n.id()) {
                Some((free, seq)) if n.seq() <= *seq => n.with_free(*free),
                _ => n,
            })
            .map(|n| {
                let d = draining.contains(n.id());
                if d { n.with_draining(true) } else { n }
            })
            .collect()
    }

    /// Sends the spawn request to `node` and waits for the instance's `Ready`.
    fn spawn_on(
        &self,
        node: &NodeView,
        (worker, schema, args): (&'static str, u64, &[u8]),
        stopped: &dyn Fn() -> bool,
    ) -> Result<Placed, Try> {
        let client = self.cluster.client().clone();
        let inbox = client.new_inbox();
        let request = encode_ctl(&Ctl::Spawn(
            Spawn {
                worker: worker.to_string(),
                schema,
                owner: self.owner.clone(),
                inbox: inbox.clone(),
                max: self.max as u64,
            },
            args.to_vec(),
        ));
        let ctl = self.cluster.subjects().control(node.id());
        let asked = {
            let client = client.clone();
            run(async move {
                let sub = client.subscribe(inbox).await?;
                let reply =
                    tokio::time::timeout(CONTROL_TIMEOUT, client.request(ctl, request.into()))
                        .await
                        .map_err(|_| "it did not answer within 5 s".to_string())?
                        .map_err(|e| e.to_string())?;
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>((sub, reply))
            })
        };
        let name = node.name().to_string();
        let (sub, reply) = asked.map_err(|e| Try::Next(format!("node `{name}`: {e}")))?;
        let instance = match decode_reply(&reply.payload) {
            Ok(CtlReply::Accepted {
                instance,
                free,
                seq,
            }) => {
                lock(&self.hints).insert(node.id().to_string(), (free, seq));
                instance
            }
            Ok(CtlReply::Refused(Refusal::Schema { ours, theirs, .. })) => {
                return Err(Try::Fail(PlaceError::Schema(WireError::SchemaMismatch {
                    worker: worker.to_string(),
                    local: ours,
                    peer: theirs,
                    peer_id: 0,
                })));
            }
            Ok(CtlReply::Refused(r)) => return Err(Try::Next(r.to_string())),
            Ok(CtlReply::Stopped) => {
                return Err(Try::Next(format!("node `{name}` answered out of turn")));
            }
            Err(e) => return Err(Try::Next(format!("node `{name}`: {e}"))),
        };
        let subject = self.cluster.subjects().instance(node.id(), instance);
        let side = super::hosting::side(&subject).into();
        let killed = Arc::new(Kill::default());
        let peer = Arc::new(NodePeer {
            instance,
            node: name.clone(),
            node_id: node.id().to_string(),
            subject: subject.into(),
            side,
            control: self.cluster.subjects().control(node.id()),
            client: client.clone(),
            out: self.out.clone(),
            killed: killed.clone(),
        });
        let mut inbound = Inbox {
            sub,
            cluster: self.cluster.clone(),
            node: name.clone(),
            node_id: node.id().to_string(),
            disconnects: self.cluster.disconnects(),
            killed,
            max: self.max,
            draining: self.draining.clone(),
            tick: None,
        };
        // The serve loop's answer to `Init`.
        let deadline = Instant::now() + START_TIMEOUT;
        let ready = loop {
            match inbound.next_until(Instant::now() + SWEEP) {
                Ok(Some(env)) => break Ok(env),
                Ok(None) => break Err(format!("node `{name}` ended the instance at once")),
                Err(Waited::Nothing) if stopped() => {
                    peer.kill("the pool stopped".into());
                    return Err(Try::Fail(PlaceError::Stopped));
                }
                Err(Waited::Nothing) if Instant::now() >= deadline => {
                    peer.kill("it did not start in time".into());
                    break Err(format!(
                        "node `{name}` did not build the instance within {START_TIMEOUT:?}"
                    ));
                }
                Err(Waited::Nothing) => {}
                Err(Waited::Ended(e)) => break Err(e.to_string()),
            }
        };
        let fail = |e: PlaceError| {
            peer.kill("placement failed".into());
            Err(Try::Fail(e))
        };
        match ready {
            Ok(env) if env.kind == Kind::Ready => {
                match decode::<Result<(), Fault>>(&env.payload, "ready") {
                    Ok(Ok(())) => Ok(Placed {
                        peer,
                        inbound: Box::new(inbound),
                    }),
                    Ok(Err(Fault::Init { message })) => fail(PlaceError::Init(message)),
                    Ok(Err(Fault::Constructor { message, error })) => {
                        fail(PlaceError::Constructor { message, error })
                    }
                    Ok(Err(f)) => fail(PlaceError::Other(f.to_string())),
                    Err(e) => fail(PlaceError::Other(e.to_string())),
                }
            }
            Ok(env) if env.kind == Kind::Fault => {
                let why = decode::<Fault>(&env.payload, "fault")
                    .map_or_else(|e| e.to_string(), |f| f.to_string());
                fail(PlaceError::Other(format!("node `{name}`: {why}")))
            }
            Ok(env) => fail(PlaceError::Other(format!(
                "node `{name}` sent `{:?}` instead of `Ready`",
                env.kind
            ))),
            Err(why) => fail(PlaceError::Other(why)),
        }
    }
}

/// What one placement attempt says.
enum Try {
    /// This node did not take it; another may.
    Next(String),
    /// No node will: give up.
    Fail(PlaceError),
}

impl Transport for Nodes {
    fn place(
        &self,
        worker: &'static str,
        schema: u64,
        args: &[u8],
        stopped: &dyn Fn() -> bool,
    ) -> Result<Placed, PlaceError> {
        let mut tried = HashSet::new();
        let mut last = None;
        loop {
            if stopped() {
                return Err(PlaceError::Stopped);
            }
            let views = self.views(&tried);
            let node = match plan(worker, 1, &views) {
                Ok(p) => views.into_iter().find(|v| v.id() == p[0].node_id()),
                Err(e) => {
                    let mut why = e.to_string();
                    if let Some(last) = last {
                        why = format!("{why}; last refusal: {last}");
                    }
                    return Err(PlaceError::Other(why));
                }
            };
            let Some(node) = node else {
                return Err(PlaceError::Other("the plan named an unknown node".into()));
            };
            match self.spawn_on(&node, (worker, schema, args), stopped) {
                Ok(placed) => return Ok(placed),
                Err(Try::Fail(e)) => return Err(e),
                Err(Try::Next(why)) => {
                    tracing::debug!(node = %node.name(), "concurry cluster: not placed: {why}");
                    tried.insert(node.id().to_string());
                    last = Some(why);
                }
            }
        }
    }
}

/// Set when we kill a peer: its inbound ends at once.
#[derive(Default)]
struct Kill {
    why: Mutex<Option<String>>,
    done: AtomicBool,
    wake: tokio::sync::Notify,
}

impl Kill {
    fn set(&self, why: String) {
        lock(&self.why).get_or_insert(why);
        self.done.store(true, Ordering::Release);
        self.wake.notify_one();
    }
}

/// One instance on a node, as its supervisor sends to it.
struct NodePeer {
    instance: u64,
    node: String,
    node_id: String,
    /// The instance's subject, made once (a publish clones it).
    subject: async_nats::Subject,
    /// Its side subject ([`side`](super::hosting::side)): cancels and limit replies, which
    /// the node reads while the instance runs a call.
    side: async_nats::Subject,
    control: String,
    /// Calls are published from the caller's thread: the client only queues them for its
    /// connection (it waits only while that queue is full).
    client: async_nats::Client,
    out: tokio::sync::mpsc::UnboundedSender<Out>,
    killed: Arc<Kill>,
}

impl NodePeer {
    fn stop_remote(&self) {
        let stop = encode_ctl(&Ctl::Stop {
            instance: self.instance,
        });
        let _ = self.out.send((self.control.clone(), stop));
    }
}

impl Peer for NodePeer {
    fn id(&self) -> u32 {
        u32::try_from(self.instance).unwrap_or(u32::MAX)
    }

    fn location(&self) -> Option<String> {
        Some(self.node.clone())
    }

    fn send(&self, kind: Kind, id: u64, payload: Vec<u8>, _idle: bool) {
        let bytes = frame(kind, id, &payload);
        let to = match kind {
            Kind::Cancel | Kind::LimitReply => &self.side,
            _ => &self.subject,
        };
        let sent = crate::runtime::block_on(self.client.publish(to.clone(), bytes.into()));
        if let Err(e) = sent {
            self.kill(format!("publishing to node `{}` failed: {e}", self.node));
        }
    }

    fn call(&self, id: u64, head: CallHeader, request: Vec<u8>, _idle: bool) {
        let mut payload = Vec::with_capacity(crate::wire::CALL_HEADER_MAX + request.len());
        head.encode_into(&mut payload);
        payload.extend_from_slice(&request);
        self.send(Kind::Call, id, payload, false);
    }

    fn shutdown(&self) {
        self.send(Kind::Shutdown, 0, Vec::new(), false);
    }

    fn kill(&self, why: String) {
        self.killed.set(why);
        self.stop_remote();
    }

    fn end(&self, stopping: bool, _grace: Duration) -> Ending {
        if !stopping {
            // Lost, garbled or moved: make sure nothing of it keeps running there.
            self.stop_remote();
        }
        Ending {
            status: Some(format!(
                "instance {} on node `{}` ({})",
                self.instance, self.node, self.node_id
            )),
            killed: lock(&self.killed.why).take(),
        }
    }
}

/// Why a bounded wait on the inbox returned no envelope.
enum Waited {
    Nothing,
    Ended(WireError),
}

/// The owner's inbox of one instance.
struct Inbox {
    sub: async_nats::Subscriber,
    cluster: Cluster,
    node: String,
    node_id: String,
    /// The client's disconnect count when the instance was placed.
    disconnects: u64,
    killed: Arc<Kill>,
    max: usize,
    draining: Arc<Mutex<HashSet<String>>>,
    /// Every [`SWEEP`]: look at the node and the connection (made on first use, in the
    /// runtime's context).
    tick: Option<tokio::time::Interval>,
}

fn gone(why: String) -> WireError {
    WireError::Io(std::io::Error::new(
        std::io::ErrorKind::ConnectionAborted,
        why,
    ))
}

impl Inbox {
    /// The next envelope, waiting at most until `until`; checks the node and the
    /// connection every [`SWEEP`].
    fn next_until(&mut self, until: Instant) -> Result<Option<Envelope>, Waited> {
        crate::runtime::block_on(self.wait(Some(until)))
    }

    /// The next envelope, waiting at most until `until` (if any); checks the node and the
    /// connection every [`SWEEP`]. In the library runtime's context.
    async fn wait(&mut self, until: Option<Instant>) -> Result<Option<Envelope>, Waited> {
        let Inbox {
            sub,
            cluster,
            node,
            node_id,
            disconnects,
            killed,
            max,
            draining,
            tick,
        } = self;
        let tick = tick.get_or_insert_with(|| {
            let start = tokio::time::Instant::now() + SWEEP;
            let mut t = tokio::time::interval_at(start, SWEEP);
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            t
        });
        loop {
            if killed.done.load(Ordering::Acquire) {
                let why = lock(&killed.why).clone().unwrap_or_default();
                return Err(Waited::Ended(gone(format!("killed: {why}"))));
            }
            tokio::select! {
                msg = sub.next() => {
                    let Some(msg) = msg else {
                        return Err(Waited::Ended(gone("the inbox subscription ended".into())));
                    };
                    if msg.payload.is_empty() {
                        return Ok(None);
                    }
                    let env = unframe(&msg.payload, *max).map_err(Waited::Ended)?;
                    if env.kind == Kind::Shutdown {
                        lock(draining).insert(node_id.clone());
                    }
                    return Ok(Some(env));
                }
                () = killed.wake.notified() => {}
                _ = tick.tick() => {
                    if cluster.disconnects() != *disconnects {
                        return Err(Waited::Ended(gone(
                            "the connection to the NATS server dropped".into(),
                        )));
                    }
                    if !cluster.nodes().iter().any(|n| n.id() == node_id.as_str()) {
                        return Err(Waited::Ended(gone(format!(
                            "node `{node}` was lost (no heartbeat in time, or it left)"
                        ))));
                    }
                    if until.is_some_and(|u| Instant::now() >= u) {
                        return Err(Waited::Nothing);
                    }
                }
            }
        }
    }

    /// The next envelope, or the end of the stream.
    async fn next_env(&mut self) -> Result<Option<Envelope>, WireError> {
        loop {
            match self.wait(None).await {
                Ok(env) => return Ok(env),
                Err(Waited::Nothing) => {}
                Err(Waited::Ended(e)) => return Err(e),
            }
        }
    }
}

impl Inbound for Inbox {
    fn next(&mut self) -> Result<Option<Envelope>, WireError> {
        crate::runtime::block_on(self.next_env())
    }

    /// Read by a task: the subscription is an async-nats one, so a reply resolves its
    /// call on the runtime thread that received it.
    fn reads_async(&self) -> bool {
        true
    }

    fn next_async(&mut self) -> Option<NextAsync<'_>> {
        Some(Box::pin(self.next_env()))
    }
}

/// How long `init` waits for the cluster's view to show nodes enough for the pool (it fills
/// within a round trip of `Cluster::connect`; nodes starting at the same time need longer).
pub(crate) const NODES_WAIT: Duration = Duration::from_secs(2);

/// The transport of a `Mode::Cluster` pool of `worker`: checks the options (the cluster is
/// given, no `on_demand`), caps `max_message_size` at the server's `max_payload`, and waits
/// (at most [`NODES_WAIT`]) until the live nodes can host the pool's instances.
///
/// # Errors
///
/// [`Error::Config`](crate::Error::Config) naming the fix, or naming the type and the nodes
/// seen when they cannot host it.
pub(crate) fn for_pool(
    config: &mut crate::options::PoolConfig,
    worker: &'static str,
) -> Result<Arc<dyn Transport>, crate::error::ConfigError> {
    use crate::error::ConfigError;
    let Some(cluster) = config.cluster.clone() else {
        return Err(ConfigError::new(
            "cluster",
            "unset",
            "`Mode::Cluster` places the workers on the nodes of a cluster: give one with \
             `.cluster(concurry::cluster::Cluster::connect(\"nats://host:4222\")?)`",
        ));
    };
    if config.on_demand {
        return Err(ConfigError::new(
            "on_demand",
            "true",
            "cluster mode keeps a fixed set of instances on the nodes; drop `on_demand`",
        ));
    }
    // A message travels as one NATS message: its frame plus the 4-byte length prefix.
    let cap = cluster.max_payload().saturating_sub(4);
    if cap >= crate::options::MESSAGE_SIZE_MIN && config.max_message_size > cap {
        config.max_message_size = cap;
    }
    let n = u32::try_from(config.workers()).unwrap_or(u32::MAX);
    if cluster
        .wait_until(NODES_WAIT, |nodes| plan(worker, n, nodes).is_ok())
        .is_err()
        && let Err(e) = plan(worker, n, &cluster.nodes())
    {
        return Err(e);
    }
    let nodes = Nodes::new(&cluster, config.max_message_size)
        .map_err(|e| ConfigError::new("cluster", cluster.url().to_string(), e))?;
    Ok(Arc::new(nodes))
}
