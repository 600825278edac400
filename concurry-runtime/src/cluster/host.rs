//! The node's side of `Mode::Cluster`: [`Host`] answers spawn and stop requests on the
//! node's control subject and runs each instance under the shared serve loop
//! (`remote::serve`) on a thread of its own, over a NATS-backed [`Channel`].
//!
//! - Each instance has a NATS connection of its own (so a node holds one connection per
//!   instance, plus its shared one), made with the node's connect options and driven by a
//!   current-thread runtime on the instance's thread: a call is read, run and answered on
//!   that one thread, with no hand-off. It reads the calls on `inst.<node-id>.<n>` there
//!   and publishes the replies, `Ready` and faults to the owner's inbox. If that connection
//!   cannot be made, the instance subscribes on the node's shared connection instead.
//! - While a call runs longer than [`WATCH_TICK`], a watcher thread drives the instance's
//!   connection (it answers the server's pings and takes in the calls sent meanwhile), so
//!   a long call does not get the connection dropped.
//! - What must reach a running call travels on the side subject `inst.<node-id>.<n>.side`,
//!   read by the node's shared connection for all instances (one subscription, routed by
//!   `n`): a `Cancel` is filed in the instance's cancel table at once, a limit reply handed
//!   to the method waiting for it. Limit requests go out on the shared connection too (the
//!   instance's own is not driven while its call runs); a reply after a lease was given
//!   back waits until the owner has the release (`Hosted::settle`), so a unit given back
//!   in a call is back in the pool's set when the call's promise resolves.
//! - An empty message on the owner's inbox says the instance ended. It goes out on the
//!   connection the instance's replies went on, after them, so it never overtakes them: the
//!   server keeps one connection's messages in order, but not two connections' (a flush
//!   only hands the bytes to the socket). Only if that connection is down does it go out on
//!   the node's shared one.
//! - The instance's `limits()` are the pool's, hosted by the owner: limit requests travel as
//!   envelopes to its inbox and its supervisor's `LimitHost` answers, so a pool's limits are
//!   global across nodes.
//! - Owner liveness: every [`OWNER_CHECK`] the node asks each owner's `owner.<id>` subject.
//!   The server answers "no responders" at once once the owner's connection is gone, so an
//!   orphaned instance ends within about [`OWNER_CHECK`] plus a round trip; an owner that
//!   stops answering (a vanished machine the server has not noticed yet) is given up after
//!   [`OWNER_MISSES`] unanswered checks (about 6 s).
//! - Drain: the node says "moving" (a `Shutdown` envelope) to each owner, whose supervisor
//!   stops sending there, lets the calls in flight finish, asks the instance to end and
//!   places it elsewhere; the node waits (at most [`DRAIN_TIMEOUT`]) for every instance to end.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use futures_util::StreamExt;

use super::hosting::{Ctl, CtlReply, Refusal, Spawn, decode_ctl, encode_reply, frame, unframe};
use super::protocol::{Beat, NodeMsg, Subjects, encode};
use crate::limit::hosted::{Closed, HostedLimits, LimitLink, LimitMsg, LimitReply};
use crate::remote::lookup;
use crate::remote::serve::{Cancels, Channel, Next, serve};
use crate::sync::os::{Arc, AtomicBool, AtomicU64, Condvar, Mutex, Ordering, lock};
use crate::wire::{Envelope, Kind, WireError, decode, encode as encode_payload};

/// How often a node checks that the owners of its instances are alive.
pub(crate) const OWNER_CHECK: Duration = Duration::from_secs(1);
/// Unanswered owner checks in a row after which an owner counts as gone.
pub(crate) const OWNER_MISSES: u32 = 3;
/// How long a drain waits for the owners to move their instances.
pub(crate) const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a call runs before the instance's watcher drives its connection meanwhile.
pub(crate) const WATCH_TICK: Duration = Duration::from_millis(20);
/// How long an instance that ends waits for its connection to send its last messages.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest a reply waits for the owner to have the leases given back before it.
const SETTLE_CEILING: Duration = Duration::from_secs(5);

/// A message for the node's publisher task.
type Out = (String, Vec<u8>);

/// The instances a node hosts.
pub(crate) struct Host {
    /// The node's shared connection (control, side subjects, limit requests, the ends).
    client: async_nats::Client,
    /// Makes each instance's own connection.
    cluster: super::Cluster,
    subjects: Subjects,
    id: String,
    name: String,
    state: Arc<Mutex<Beat>>,
    instances: Mutex<HashMap<u64, Arc<Hosted>>>,
    /// Notified whenever an instance ends.
    ended: Condvar,
    next: AtomicU64,
    out: tokio::sync::mpsc::UnboundedSender<Out>,
    outgoing: Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<Out>>>,
}

/// One hosted instance.
struct Hosted {
    n: u64,
    owner: String,
    inbox: String,
    /// `inbox`, made once (a reply's publish clones it).
    reply_to: async_nats::Subject,
    max: usize,
    /// The instance subject its calls come on.
    subject: String,
    /// Wakes the serve loop waiting for a call once `closed` is set.
    wake: tokio::sync::Notify,
    /// Its calls as `Kind::Cancel` reaches them: the router files each cancel here at once,
    /// so it reaches the call running meanwhile.
    cancels: Arc<Cancels>,
    /// Limit replies, by request id, for the method threads waiting for them.
    replies: Mutex<HashMap<u64, Vec<u8>>>,
    replied: Condvar,
    closed: AtomicBool,
    /// The end message went out on the instance's own connection (after its replies).
    end_sent: AtomicBool,
    /// A lease was given back (on the shared connection) since the last reply: the next
    /// reply waits until the owner has it ([`Hosted::settle`]).
    released: AtomicBool,
    /// Ids of the asks `settle` makes (from the top of the id space: a client's ids count
    /// up from 1, so they never meet).
    settles: AtomicU64,
    client: async_nats::Client,
    out: tokio::sync::mpsc::UnboundedSender<Out>,
}

impl Hosted {
    fn publish(&self, kind: Kind, id: u64, payload: &[u8]) -> Result<(), WireError> {
        if self.closed.load(Ordering::Acquire) && kind != Kind::Reply {
            return Err(WireError::Io(std::io::ErrorKind::BrokenPipe.into()));
        }
        // From the serve loop's thread: the client only queues it for its connection.
        let bytes = frame(kind, id, payload);
        crate::runtime::block_on(self.client.publish(self.reply_to.clone(), bytes.into()))
            .map_err(|e| WireError::Io(std::io::Error::new(std::io::ErrorKind::BrokenPipe, e)))
    }

    /// Returns once the owner has every lease given back so far, so a call's reply never
    /// overtakes a release sent during the call: the release went out on the node's shared
    /// connection, the reply goes on the instance's own, and the server keeps order within
    /// one connection only. An ask on the shared connection, answered once the owner has
    /// read what came before it (the release among them), orders them. Only after a
    /// release: other calls pay nothing. The wait is bounded by [`SETTLE_CEILING`]: an
    /// answer lost (a reconnect) only lets the reply go unordered, never holds it.
    fn settle(&self) {
        if !self.released.swap(false, Ordering::AcqRel) {
            return;
        }
        let id = u64::MAX - self.settles.fetch_add(1, Ordering::Relaxed);
        if send_limit(self, &LimitMsg::Stats { id }).is_err() {
            return;
        }
        let deadline = Instant::now() + SETTLE_CEILING;
        let mut replies = lock(&self.replies);
        while replies.remove(&id).is_none() && !self.closed.load(Ordering::Acquire) {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                tracing::debug!(
                    instance = self.n,
                    "concurry node: the owner did not answer a settle; the reply goes anyway"
                );
                return;
            };
            replies = self
                .replied
                .wait_timeout(replies, left)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
    }

    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.wake.notify_one();
        let _g = lock(&self.replies);
        self.replied.notify_all();
    }
}

/// The limit requests of one instance's calls, to its owner.
impl LimitLink for Hosted {
    fn send(&self, msg: LimitMsg) -> Result<(), Closed> {
        send_limit(self, &msg).map_err(|_| Closed)?;
        if matches!(msg, LimitMsg::Release { .. }) {
            // After the publish: a `settle` that sees this follows the release out.
            self.released.store(true, Ordering::Release);
        }
        Ok(())
    }

    fn ask(&self, msg: LimitMsg) -> Option<LimitReply> {
        send_limit(self, &msg).ok()?;
        let id = msg.id();
        let mut replies = lock(&self.replies);
        loop {
            if let Some(bytes) = replies.remove(&id) {
                return decode(&bytes, "limit reply").ok();
            }
            if self.closed.load(Ordering::Acquire) {
                return None;
            }
            replies = self
                .replied
                .wait(replies)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }
}

fn send_limit(h: &Hosted, msg: &LimitMsg) -> Result<(), WireError> {
    let (kind, id, payload) = match msg {
        LimitMsg::Acquire { lease, request } => (
            Kind::LimitAcquire,
            *lease,
            encode_payload(request, "limit request")?,
        ),
        LimitMsg::Update { lease, usage } => (
            Kind::LimitUpdate,
            *lease,
            encode_payload(usage, "limit update")?,
        ),
        LimitMsg::Release { lease } => (Kind::LimitRelease, *lease, encode_payload(&(), "")?),
        LimitMsg::Stats { id } => (Kind::LimitStats, *id, encode_payload(&(), "")?),
    };
    h.publish(kind, id, &payload)
}

/// The instance's connection: its calls' subscription and where its answers go.
struct Link {
    /// Drives a connection of the instance's own on its thread (and the watcher's, during
    /// a long call); `None`: the subscription is on the node's shared connection, driven
    /// by the library runtime.
    rt: Option<Arc<tokio::runtime::Runtime>>,
    client: async_nats::Client,
    sub: async_nats::Subscriber,
}

impl Link {
    /// Runs `fut` to its end on this thread, driving the connection meanwhile if it is the
    /// instance's own.
    fn drive<F: std::future::Future>(&self, fut: F) -> F::Output {
        match &self.rt {
            Some(rt) => rt.block_on(fut),
            None => crate::runtime::block_on(fut),
        }
    }
}

/// The serve loop's channel: calls read from the instance's subscription, answers published
/// to the owner.
struct Chan {
    hosted: Arc<Hosted>,
    node: String,
    /// The `Init` the node got with the spawn request, until `next` hands it out.
    init: std::cell::RefCell<Option<Envelope>>,
    link: std::cell::RefCell<Link>,
    /// When the envelope `next` returned last arrived.
    arrived: std::cell::Cell<Option<Instant>>,
    watcher: Option<std::thread::JoinHandle<()>>,
}

impl Chan {
    /// The channel of `hosted`, on a connection of its own if one can be made (with a
    /// watcher thread for its long calls), else on the node's shared one. In the
    /// instance's thread.
    fn open(host: &Host, hosted: Arc<Hosted>, init: Envelope) -> Result<Chan, String> {
        let link = match Self::own(host, &hosted) {
            Ok(link) => link,
            Err(why) => {
                tracing::warn!(node = %host.name, instance = hosted.n, "concurry node: the instance could not have a connection of its own ({why}); it uses the node's");
                let sub =
                    crate::runtime::block_on(host.client.subscribe(hosted.subject.clone()))
                        .map_err(|e| format!("could not subscribe to `{}`: {e}", hosted.subject))?;
                Link {
                    rt: None,
                    client: host.client.clone(),
                    sub,
                }
            }
        };
        let watcher = match &link.rt {
            Some(rt) => {
                let (rt, cancels) = (rt.clone(), hosted.cancels.clone());
                let started = std::thread::Builder::new()
                    .name(format!("concurry-watch-{}", hosted.n))
                    .spawn(move || watch(&rt, &cancels));
                Some(started.map_err(|e| format!("could not start a thread: {e}"))?)
            }
            None => None,
        };
        Ok(Chan {
            hosted,
            node: host.name.clone(),
            init: std::cell::RefCell::new(Some(init)),
            link: std::cell::RefCell::new(link),
            arrived: std::cell::Cell::new(None),
            watcher,
        })
    }

    /// A connection of the instance's own, subscribed to its calls.
    fn own(host: &Host, hosted: &Hosted) -> Result<Link, String> {
        let rt = crate::runtime::local_runtime().map_err(|e| e.to_string())?;
        let (client, sub) = rt.block_on(async {
            let client = host
                .cluster
                .connect_another()
                .await
                .map_err(|e| e.to_string())?;
            let sub = client
                .subscribe(hosted.subject.clone())
                .await
                .map_err(|e| e.to_string())?;
            Ok::<_, String>((client, sub))
        })?;
        Ok(Link {
            rt: Some(Arc::new(rt)),
            client,
            sub,
        })
    }

    /// Publishes to the owner's inbox on the instance's connection.
    fn publish(&self, kind: Kind, id: u64, payload: &[u8]) -> Result<(), WireError> {
        if self.hosted.closed.load(Ordering::Acquire) && kind != Kind::Reply {
            return Err(WireError::Io(std::io::ErrorKind::BrokenPipe.into()));
        }
        let bytes = frame(kind, id, payload);
        let link = self.link.borrow();
        let to = self.hosted.reply_to.clone();
        // The client only queues it: it is written when the connection is driven next (at
        // once if the node's; in `next` if the instance's own).
        link.drive(link.client.publish(to, bytes.into()))
            .map_err(|e| WireError::Io(std::io::Error::new(std::io::ErrorKind::BrokenPipe, e)))
    }

    /// The serving ended: the watcher is stopped, and on the instance's own connection the
    /// end message follows its last answers and both are written out (else [`Host::end`]
    /// sends it on the node's shared connection).
    fn finish(&mut self) {
        self.hosted.cancels.close();
        if let Some(w) = self.watcher.take() {
            let _ = w.join();
        }
        let link = self.link.get_mut();
        // (Disconnected, nothing more would reach the owner: no wait.)
        let connected = link.client.connection_state() == async_nats::connection::State::Connected;
        if link.rt.is_some() && connected {
            let client = link.client.clone();
            let inbox = self.hosted.reply_to.clone();
            // The end message after the last replies, on their connection (see the module
            // docs), written out before the connection is dropped.
            let flushed = link.drive(async {
                tokio::time::timeout(FLUSH_TIMEOUT, async {
                    client.publish(inbox, Vec::new().into()).await?;
                    client.flush().await?;
                    Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
                })
                .await
            });
            if matches!(flushed, Ok(Ok(()))) {
                self.hosted.end_sent.store(true, Ordering::Release);
            } else {
                tracing::warn!(node = %self.node, instance = self.hosted.n, "concurry node: the instance's last messages may not have been sent");
            }
        }
    }
}

/// The watcher of an instance on a connection of its own: while a call runs longer than
/// [`WATCH_TICK`], drives the connection (server pings, calls sent meanwhile).
fn watch(rt: &tokio::runtime::Runtime, cancels: &Cancels) {
    while let Some(call) = cancels.wait_long_call(WATCH_TICK) {
        rt.block_on(async {
            while cancels.is_running(call) {
                tokio::time::sleep(WATCH_TICK).await;
            }
        });
    }
}

impl Channel for Chan {
    fn next(&self) -> Next {
        if let Some(init) = self.init.borrow_mut().take() {
            self.arrived.set(Some(Instant::now()));
            return Next::Env(init);
        }
        let hosted = &self.hosted;
        let mut link = self.link.borrow_mut();
        let Link { rt, sub, .. } = &mut *link;
        let read = async {
            loop {
                if hosted.closed.load(Ordering::Acquire) {
                    return None;
                }
                tokio::select! {
                    msg = sub.next() => return Some(msg),
                    () = hosted.wake.notified() => {}
                }
            }
        };
        let msg = match rt {
            Some(rt) => rt.block_on(read),
            None => crate::runtime::block_on(read),
        };
        match msg {
            None => Next::Closed,
            Some(None) => Next::Broken(format!(
                "node `{}`: the instance's subscription ended",
                self.node
            )),
            Some(Some(msg)) => {
                self.arrived.set(Some(Instant::now()));
                match unframe(&msg.payload, hosted.max) {
                    Ok(env) => Next::Env(env),
                    Err(e) => Next::Broken(format!("node `{}`: {e}", self.node)),
                }
            }
        }
    }

    fn send(&self, kind: Kind, id: u64, payload: &[u8]) -> Result<(), WireError> {
        self.publish(kind, id, payload)
    }

    fn reply(&self, id: u64, payload: &[u8], _more: bool) -> Result<(), WireError> {
        // On the node's shared connection, releases and replies keep their order anyway.
        if self.link.borrow().rt.is_some() {
            self.hosted.settle();
        }
        self.publish(Kind::Reply, id, payload)
    }

    fn more_waiting(&self) -> bool {
        // Replies are not held back here (`reply` ignores `more`).
        false
    }

    fn limits(&self) -> Option<HostedLimits> {
        Some(HostedLimits::new(self.hosted.clone() as Arc<dyn LimitLink>))
    }

    fn arrived(&self) -> Option<Instant> {
        self.arrived.get()
    }

    fn cancels(&self) -> Option<Arc<Cancels>> {
        Some(self.hosted.cancels.clone())
    }

    fn max(&self) -> usize {
        self.hosted.max
    }
}

impl Host {
    pub(crate) fn new(cluster: &super::Cluster, state: Arc<Mutex<Beat>>) -> Arc<Host> {
        let (id, name) = {
            let b = lock(&state);
            (b.id.clone(), b.name.clone())
        };
        let (out, outgoing) = tokio::sync::mpsc::unbounded_channel();
        Arc::new(Host {
            client: cluster.client().clone(),
            cluster: cluster.clone(),
            subjects: cluster.subjects().clone(),
            id,
            name,
            state,
            instances: Mutex::new(HashMap::new()),
            ended: Condvar::new(),
            next: AtomicU64::new(1),
            out,
            outgoing: Mutex::new(Some(outgoing)),
        })
    }

    /// Subscribes to the control and instance subjects and starts the tasks that serve them
    /// (on the library runtime); their abort handles.
    pub(crate) async fn listen(
        self: Arc<Self>,
    ) -> Result<Vec<tokio::task::AbortHandle>, async_nats::SubscribeError> {
        let rt = crate::runtime::runtime();
        let mut ctl = self
            .client
            .subscribe(self.subjects.control(&self.id))
            .await?;
        let mut calls = self
            .client
            .subscribe(super::hosting::side(&self.subjects.instances(&self.id)))
            .await?;
        let _ = self.client.flush().await;
        let mut tasks = Vec::new();
        let host = self.clone();
        tasks.push(
            rt.spawn(async move {
                while let Some(msg) = ctl.next().await {
                    let reply = host.on_control(&msg.payload);
                    if let (Some(to), Some(r)) = (msg.reply, reply) {
                        let _ = host.client.publish(to, encode_reply(&r).into()).await;
                    }
                }
            })
            .abort_handle(),
        );
        let host = self.clone();
        tasks.push(
            rt.spawn(async move {
                while let Some(msg) = calls.next().await {
                    host.route(&msg.subject, &msg.payload);
                }
            })
            .abort_handle(),
        );
        if let Some(mut rx) = lock(&self.outgoing).take() {
            let client = self.client.clone();
            tasks.push(
                rt.spawn(async move {
                    while let Some((subject, bytes)) = rx.recv().await {
                        if let Err(e) = client.publish(subject, bytes.into()).await {
                            tracing::warn!("concurry node: a message was not sent: {e}");
                        }
                    }
                })
                .abort_handle(),
            );
        }
        let host = self.clone();
        tasks.push(rt.spawn(host.watch_owners()).abort_handle());
        Ok(tasks)
    }

    /// Hands a side message (a cancel, a limit reply) to its instance.
    fn route(&self, subject: &str, payload: &[u8]) {
        let Some(n) = subject
            .rsplit('.')
            .nth(1)
            .and_then(|t| t.parse::<u64>().ok())
        else {
            return;
        };
        let Some(h) = lock(&self.instances).get(&n).cloned() else {
            // Ended already: the owner hears of it from the end message.
            return;
        };
        match unframe(payload, h.max) {
            Ok(env) if env.kind == Kind::LimitReply => {
                lock(&h.replies).insert(env.id, env.payload);
                h.replied.notify_all();
            }
            Ok(env) if env.kind == Kind::Cancel => h.cancels.cancel(env.id),
            Ok(env) => {
                tracing::warn!(node = %self.name, instance = n, "concurry node: ignored a `{:?}` message on the side subject", env.kind);
            }
            Err(e) => {
                tracing::warn!(node = %self.name, instance = n, "concurry node: ignored a message on the side subject: {e}");
            }
        }
    }

    fn on_control(self: &Arc<Self>, bytes: &[u8]) -> Option<CtlReply> {
        match decode_ctl(bytes) {
            Ok(Ctl::Spawn(spawn, args)) => Some(self.spawn(spawn, args)),
            Ok(Ctl::Stop { instance }) => {
                if let Some(h) = lock(&self.instances).get(&instance) {
                    h.close();
                }
                Some(CtlReply::Stopped)
            }
            Err(message) => {
                tracing::warn!(node = %self.name, "concurry node: refused a control message: {message}");
                Some(CtlReply::Refused(Refusal::Malformed {
                    node: self.name.clone(),
                    message,
                }))
            }
        }
    }

    fn spawn(self: &Arc<Self>, spawn: Spawn, args: Vec<u8>) -> CtlReply {
        let node = self.name.clone();
        let refused = |r| CtlReply::Refused(r);
        let mut beat = lock(&self.state);
        if beat.draining {
            return refused(Refusal::Draining { node });
        }
        let entry = match lookup(&spawn.worker) {
            Some(e) if beat.types.contains(&spawn.worker) => e,
            _ => {
                return refused(Refusal::UnknownType {
                    node,
                    worker: spawn.worker,
                    hosts: beat.types.join(", "),
                });
            }
        };
        let theirs = (entry.schema)();
        if theirs != spawn.schema {
            return refused(Refusal::Schema {
                node,
                worker: spawn.worker,
                ours: spawn.schema,
                theirs,
            });
        }
        if beat.free == 0 {
            return refused(Refusal::Full {
                node,
                capacity: beat.capacity,
            });
        }
        beat.free -= 1;
        let free = beat.free;
        let seq = beat.seq;
        drop(beat);
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let hosted = Arc::new(Hosted {
            n,
            owner: spawn.owner,
            reply_to: spawn.inbox.clone().into(),
            inbox: spawn.inbox,
            max: usize::try_from(spawn.max).unwrap_or(usize::MAX),
            subject: self.subjects.instance(&self.id, n),
            wake: tokio::sync::Notify::new(),
            cancels: Arc::new(Cancels::default()),
            replies: Mutex::new(HashMap::new()),
            replied: Condvar::new(),
            closed: AtomicBool::new(false),
            end_sent: AtomicBool::new(false),
            released: AtomicBool::new(false),
            settles: AtomicU64::new(0),
            client: self.client.clone(),
            out: self.out.clone(),
        });
        lock(&self.instances).insert(n, hosted.clone());
        let host = self.clone();
        let h = hosted.clone();
        let started = std::thread::Builder::new()
            .name(format!("concurry-node-{n}"))
            .spawn(move || {
                // The serve loop builds the instance from `Init` and answers `Ready` to the
                // owner (on the instance's connection, subscribed by then).
                let init = Envelope::new(Kind::Init, 0, args);
                match Chan::open(&host, h.clone(), init) {
                    Ok(mut chan) => {
                        let outcome = serve(entry, &chan);
                        tracing::debug!(instance = n, ?outcome, "concurry node: instance ended");
                        chan.finish();
                    }
                    Err(why) => {
                        let why = format!("node `{}`: {why}", host.name);
                        if let Ok(p) =
                            encode_payload(&crate::wire::Fault::Protocol { message: why }, "fault")
                        {
                            let _ = h.publish(Kind::Fault, 0, &p);
                        }
                    }
                }
                host.end(&h);
            });
        if let Err(e) = started {
            let why = format!("node `{}` could not start a thread: {e}", self.name);
            if let Ok(p) = encode_payload(&crate::wire::Fault::Protocol { message: why }, "fault") {
                let _ = hosted.publish(Kind::Fault, 0, &p);
            }
            self.end(&hosted);
        }
        CtlReply::Accepted {
            instance: n,
            free,
            seq,
        }
    }

    /// An instance ended: its slot is free again and its owner hears of it.
    fn end(&self, h: &Hosted) {
        h.closed.store(true, Ordering::Release);
        {
            let _g = lock(&h.replies);
            h.replied.notify_all();
        }
        if !h.end_sent.load(Ordering::Acquire) {
            let _ = h.out.send((h.inbox.clone(), Vec::new()));
        }
        let removed = lock(&self.instances).remove(&h.n).is_some();
        if removed {
            let mut beat = lock(&self.state);
            beat.free = (beat.free + 1).min(beat.capacity);
        }
        self.ended.notify_all();
    }

    /// Every [`OWNER_CHECK`]: ends the instances whose owner is gone.
    async fn watch_owners(self: Arc<Self>) {
        let mut misses: HashMap<String, u32> = HashMap::new();
        let mut tick = tokio::time::interval(OWNER_CHECK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if self.client.connection_state() != async_nats::connection::State::Connected {
                continue;
            }
            let owners: HashSet<String> = lock(&self.instances)
                .values()
                .map(|h| h.owner.clone())
                .collect();
            misses.retain(|o, _| owners.contains(o));
            for owner in owners {
                let asked = tokio::time::timeout(
                    OWNER_CHECK,
                    self.client
                        .request(self.subjects.owner(&owner), Vec::new().into()),
                )
                .await;
                let gone = match asked {
                    Ok(Ok(_)) => {
                        misses.remove(&owner);
                        false
                    }
                    Ok(Err(e))
                        if e.kind() == async_nats::client::RequestErrorKind::NoResponders =>
                    {
                        true
                    }
                    _ => {
                        let m = misses.entry(owner.clone()).or_default();
                        *m += 1;
                        *m >= OWNER_MISSES
                    }
                };
                if gone {
                    tracing::info!(node = %self.name, owner = %owner, "concurry node: the owner is gone; ending its instances");
                    let orphans: Vec<Arc<Hosted>> = lock(&self.instances)
                        .values()
                        .filter(|h| h.owner == owner)
                        .cloned()
                        .collect();
                    orphans.iter().for_each(|h| h.close());
                }
            }
        }
    }

    /// How many instances are hosted now.
    pub(crate) fn hosted(&self) -> usize {
        lock(&self.instances).len()
    }

    /// Drains: the node is marked draining (and says so in a heartbeat at once), each owner
    /// is told its instance is moving, and this waits (at most `timeout`) until the owners
    /// moved them all; whatever is left is ended then. Returns how many were left.
    pub(crate) fn drain(&self, timeout: Duration) -> usize {
        let beat = {
            let mut b = lock(&self.state);
            b.draining = true;
            encode(&NodeMsg::Beat(b.clone()))
        };
        let _ = self.out.send((self.subjects.heartbeat(), beat));
        let all: Vec<Arc<Hosted>> = lock(&self.instances).values().cloned().collect();
        for h in &all {
            // "Moving": the owner stops sending here, waits for its calls, then ends us.
            let _ = h.out.send((h.inbox.clone(), frame(Kind::Shutdown, 0, &[])));
        }
        let deadline = Instant::now() + timeout;
        let left: Vec<Arc<Hosted>> = crate::runtime::blocking(|| {
            let mut instances = lock(&self.instances);
            while !instances.is_empty() {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                instances = self
                    .ended
                    .wait_timeout(instances, left)
                    .map_or_else(|p| p.into_inner().0, |(g, _)| g);
            }
            instances.values().cloned().collect()
        });
        for h in &left {
            h.close();
        }
        left.len()
    }
}
