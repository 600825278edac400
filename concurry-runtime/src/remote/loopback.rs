//! The loopback transport: each placed worker is a thread of this process, served by the
//! same loop as a child process ([`serve`]), reached over in-memory channels. It exists to
//! prove that the remote layer needs nothing of process mode; its tests run the behaviours
//! of `tests/integration/every_mode.rs` on it, a peer killed mid-call included.
//!
//! A thread cannot be killed: a killed peer's stream ends at once (its calls fail, the
//! supervisor places a new one) and its thread is abandoned, to end after its current call.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use super::registry::{RemoteEntry, RemoteWorker, lookup};
use super::serve::{Cancels, Channel, Feed, Next, Outcome, serve};
use super::transport::{Ending, Inbound, Peer, PlaceError, Placed, Transport};
use crate::sync::os::{Arc, AtomicU64, Mutex, Ordering, lock};
use crate::wire::{CallHeader, DEFAULT_MAX_FRAME, Envelope, Fault, Kind, WireError, decode};

/// Workers on threads of this process.
pub(crate) struct Loopback {
    /// Types served here beyond the binary's registry (a test's own types: this crate
    /// cannot add to the linker's registry).
    entries: Vec<RemoteEntry>,
    /// The live peers, by id, so a test can kill one from outside.
    peers: Mutex<HashMap<u32, Arc<Thread>>>,
    next: AtomicU64,
    max: usize,
    start_timeout: Duration,
}

impl Loopback {
    pub(crate) fn new() -> Self {
        Loopback {
            entries: Vec::new(),
            peers: Mutex::new(HashMap::new()),
            next: AtomicU64::new(1),
            max: DEFAULT_MAX_FRAME,
            start_timeout: Duration::from_secs(30),
        }
    }

    /// Serves `W` too.
    pub(crate) fn with<W: RemoteWorker>(mut self) -> Self {
        self.entries.push(RemoteEntry::of::<W>());
        self
    }

    /// Serves `W` under the name `as_name`: a build where another type had that name.
    pub(crate) fn with_as<W: RemoteWorker>(mut self, as_name: &'static str) -> Self {
        self.entries.push(RemoteEntry {
            name: as_name,
            ..RemoteEntry::of::<W>()
        });
        self
    }

    /// Kills peer `id` as a crash would: its stream ends now.
    pub(crate) fn kill(&self, id: u32) {
        let peer = lock(&self.peers).get(&id).cloned();
        if let Some(peer) = peer {
            peer.kill(format!("loopback peer {id} was killed"));
        }
    }

    fn entry(&self, worker: &str) -> Option<&RemoteEntry> {
        self.entries
            .iter()
            .find(|e| e.name == worker)
            .or_else(|| lookup(worker))
    }
}

impl Transport for Loopback {
    fn place(
        &self,
        worker: &'static str,
        schema: u64,
        args: &[u8],
        stopped: &dyn Fn() -> bool,
    ) -> Result<Placed, PlaceError> {
        let entry = self.entry(worker).ok_or_else(|| {
            PlaceError::Other(format!(
                "`{worker}` is not served by this loopback transport"
            ))
        })?;
        let id = u32::try_from(self.next.fetch_add(1, Ordering::Relaxed)).unwrap_or(u32::MAX);
        // The hello: the serving side's fingerprint of the type against ours.
        let theirs = (entry.schema)();
        if theirs != schema {
            return Err(PlaceError::Schema(WireError::SchemaMismatch {
                worker: worker.to_string(),
                local: schema,
                peer: theirs,
                peer_id: id,
            }));
        }
        let (construct, name, schema) = (entry.construct, entry.name, entry.schema);
        let (to_tx, to_rx) = crossbeam_channel::unbounded();
        let (from_tx, from_rx) = crossbeam_channel::unbounded();
        let (kill_tx, kill_rx) = crossbeam_channel::bounded(1);
        let (done_tx, done_rx) = crossbeam_channel::bounded(1);
        let max = self.max;
        std::thread::Builder::new()
            .name(format!("concurry-loopback-{id}"))
            .spawn(move || {
                let entry = RemoteEntry {
                    name,
                    schema,
                    construct,
                };
                // Read on a thread of its own, so a `Cancel` reaches the call running.
                let rx = match Feed::start(format!("concurry-loopback-{id}-r"), move || {
                    to_rx.recv().map_or(Next::Closed, Next::Env)
                }) {
                    Ok(feed) => feed,
                    Err(_) => {
                        let _ = done_tx.send(Outcome::Setup);
                        return;
                    }
                };
                let ch = Served {
                    rx,
                    tx: from_tx,
                    max,
                };
                let outcome = serve(&entry, &ch);
                drop(ch);
                let _ = done_tx.send(outcome);
            })
            .map_err(|e| PlaceError::Other(format!("could not start a loopback thread: {e}")))?;
        let _ = to_tx.send(Envelope::new(Kind::Init, 0, args.to_vec()));
        let deadline = Instant::now() + self.start_timeout;
        let ready = loop {
            match from_rx.recv_timeout(Duration::from_millis(5)) {
                Ok(env) => break env,
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                    return Err(PlaceError::Other(format!(
                        "loopback peer {id} ended before it was ready"
                    )));
                }
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                    if stopped() {
                        return Err(PlaceError::Stopped);
                    }
                    if Instant::now() >= deadline {
                        return Err(PlaceError::Other(format!(
                            "loopback peer {id} was not ready within {:?}",
                            self.start_timeout
                        )));
                    }
                }
            }
        };
        let fail = |e: WireError| PlaceError::Other(format!("handshake failed: {e}"));
        match ready.kind {
            Kind::Ready => {
                match decode::<Result<(), Fault>>(&ready.payload, "ready").map_err(fail)? {
                    Ok(()) => {}
                    Err(Fault::Init { message }) => return Err(PlaceError::Init(message)),
                    Err(Fault::Constructor { message, error }) => {
                        return Err(PlaceError::Constructor { message, error });
                    }
                    Err(f) => return Err(PlaceError::Other(f.to_string())),
                }
            }
            other => {
                return Err(PlaceError::Other(format!(
                    "expected `Ready`, loopback peer {id} sent `{other:?}`"
                )));
            }
        }
        let peer = Arc::new(Thread {
            id,
            to: Mutex::new(Some(to_tx)),
            kill: kill_tx,
            killed: Mutex::new(None),
            done: done_rx,
        });
        {
            let mut peers = lock(&self.peers);
            peers.retain(|_, p| lock(&p.to).is_some());
            peers.insert(id, peer.clone());
        }
        Ok(Placed {
            peer,
            inbound: Box::new(Stream {
                rx: from_rx,
                killed: kill_rx,
            }),
        })
    }
}

/// The serving thread's side.
struct Served {
    rx: Feed,
    tx: Sender<Envelope>,
    max: usize,
}

fn gone() -> WireError {
    WireError::Io(std::io::ErrorKind::BrokenPipe.into())
}

impl Channel for Served {
    fn next(&self) -> Next {
        self.rx.next()
    }

    fn send(&self, kind: Kind, id: u64, payload: &[u8]) -> Result<(), WireError> {
        self.tx
            .send(Envelope::new(kind, id, payload.to_vec()))
            .map_err(|_| gone())
    }

    fn reply(&self, id: u64, payload: &[u8], _more: bool) -> Result<(), WireError> {
        self.send(Kind::Reply, id, payload)
    }

    fn more_waiting(&self) -> bool {
        self.rx.more_waiting()
    }

    fn max(&self) -> usize {
        self.max
    }

    fn cancels(&self) -> Option<Arc<Cancels>> {
        Some(self.rx.cancels())
    }
}

/// One serving thread, as the supervisor reaches it.
struct Thread {
    id: u32,
    /// Dropped when killed: the thread sees its channel close after its current call.
    to: Mutex<Option<Sender<Envelope>>>,
    /// Ends the inbound stream at once.
    kill: Sender<()>,
    killed: Mutex<Option<String>>,
    /// The thread's outcome, once it ended.
    done: Receiver<Outcome>,
}

impl Peer for Thread {
    fn id(&self) -> u32 {
        self.id
    }

    fn send(&self, kind: Kind, id: u64, payload: Vec<u8>, _idle: bool) {
        if let Some(to) = &*lock(&self.to) {
            // A thread that ended is seen by the inbound stream.
            let _ = to.send(Envelope::new(kind, id, payload));
        }
    }

    fn call(&self, id: u64, head: CallHeader, request: Vec<u8>, idle: bool) {
        let mut payload = head.encode();
        payload.extend_from_slice(&request);
        self.send(Kind::Call, id, payload, idle);
    }

    fn shutdown(&self) {
        self.send(Kind::Shutdown, 0, Vec::new(), false);
    }

    fn kill(&self, why: String) {
        lock(&self.killed).get_or_insert(why);
        lock(&self.to).take();
        let _ = self.kill.try_send(());
    }

    fn end(&self, stopping: bool, grace: Duration) -> Ending {
        lock(&self.to).take();
        let outcome = if stopping && lock(&self.killed).is_none() {
            self.done.recv_timeout(grace).ok()
        } else {
            self.done.try_recv().ok()
        };
        if outcome.is_none() {
            let _ = self.kill.try_send(());
        }
        Ending {
            status: Some(outcome.map_or_else(
                || "abandoned in its call".to_string(),
                |o| format!("ended: {o:?}"),
            )),
            killed: lock(&self.killed).take(),
        }
    }
}

/// What a serving thread sends.
struct Stream {
    rx: Receiver<Envelope>,
    killed: Receiver<()>,
}

impl Inbound for Stream {
    fn next(&mut self) -> Result<Option<Envelope>, WireError> {
        crossbeam_channel::select! {
            recv(self.rx) -> env => Ok(env.ok()),
            recv(self.killed) -> _ => Ok(None),
        }
    }
}

/// The behaviours of `tests/integration/every_mode.rs`, on the loopback transport.
#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use serde::{Deserialize, Serialize};

    use super::*;
    use crate::error::Error;
    use crate::remote::Handle;
    use crate::remote::supervisor::Supervision;

    /// Bounds every wait, so a broken test fails instead of hanging.
    const HANG: Duration = Duration::from_secs(30);

    /// Gates a call can wait at, opened by the test (all in this process).
    static OPEN: Mutex<Option<HashSet<u64>>> = Mutex::new(None);
    static GATE_COUNT: AtomicU64 = AtomicU64::new(0);

    fn gate() -> u64 {
        GATE_COUNT.fetch_add(1, Ordering::Relaxed)
    }

    fn open(gate: u64) {
        lock(&OPEN).get_or_insert_with(HashSet::new).insert(gate);
    }

    /// `Spin` calls that started, and those that saw their cancel (by tag).
    static SPINNING: Mutex<Option<HashSet<u64>>> = Mutex::new(None);
    static SAW_CANCEL: Mutex<Option<HashSet<u64>>> = Mutex::new(None);

    fn has(set: &Mutex<Option<HashSet<u64>>>, tag: u64) -> bool {
        lock(set).as_ref().is_some_and(|s| s.contains(&tag))
    }

    /// Waits (at most [`HANG`]) until `tag` is in `set`; how long it took.
    fn wait_for(set: &Mutex<Option<HashSet<u64>>>, tag: u64) -> Duration {
        let t = Instant::now();
        while !has(set, tag) {
            assert!(t.elapsed() < HANG, "tag {tag} never showed");
            crate::sync::os::sleep(Duration::from_micros(100));
        }
        t.elapsed()
    }

    struct Echo {
        served: u64,
    }

    #[derive(Serialize, Deserialize)]
    enum Req {
        Next,
        Place,
        MaybePanic(u32),
        Check(bool),
        Twice(u64),
        Hold(u64),
        /// Spins on `check_cancelled()` (at most [`HANG`]).
        Spin(u64),
    }

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    enum Resp {
        Count(u64),
        Place(u32, String),
        Checked(Result<u8, String>),
        Held(bool),
        /// Whether the spin saw its cancel.
        Spun(bool),
    }

    impl RemoteWorker for Echo {
        const NAME: &'static str = "concurry::loopback::tests::Echo";
        const SCHEMA: u64 = 0xaaaa;
        type Args = u64;
        type Request = Req;
        type Response = Resp;
        type InitError = String;

        fn construct(start: u64) -> Result<Self, String> {
            if start == u64::MAX {
                return Err("no such start".into());
            }
            Ok(Echo { served: start })
        }

        fn dispatch(&mut self, request: Req) -> Resp {
            match request {
                Req::Next => {
                    self.served += 1;
                    Resp::Count(self.served)
                }
                Req::Place => Resp::Place(
                    std::process::id(),
                    format!("{:?}", std::thread::current().id()),
                ),
                Req::MaybePanic(i) => {
                    if i.is_multiple_of(10) {
                        std::panic::panic_any(format!("planned panic {i}"));
                    }
                    Resp::Count(u64::from(i))
                }
                Req::Check(ok) => Resp::Checked(if ok { Ok(1) } else { Err("not ok".into()) }),
                Req::Twice(x) => Resp::Count(crate::runtime::block_on(async move {
                    tokio::task::yield_now().await;
                    x * 2
                })),
                Req::Hold(gate) => {
                    let deadline = Instant::now() + HANG;
                    while !lock(&OPEN).as_ref().is_some_and(|o| o.contains(&gate)) {
                        if Instant::now() > deadline {
                            return Resp::Held(false);
                        }
                        crate::sync::os::sleep(Duration::from_millis(1));
                    }
                    Resp::Held(true)
                }
                Req::Spin(tag) => {
                    lock(&SPINNING).get_or_insert_with(HashSet::new).insert(tag);
                    let deadline = Instant::now() + HANG;
                    while crate::check_cancelled().is_ok() {
                        if Instant::now() > deadline {
                            return Resp::Spun(false);
                        }
                        std::thread::yield_now();
                    }
                    lock(&SAW_CANCEL)
                        .get_or_insert_with(HashSet::new)
                        .insert(tag);
                    Resp::Spun(true)
                }
            }
        }
    }

    fn supervision(stop_timeout: Duration, max_restarts: u32) -> Supervision {
        Supervision {
            max_restarts,
            backoff_min: Duration::from_millis(1),
            backoff_max: Duration::from_millis(10),
            stop_timeout,
            max_message_size: DEFAULT_MAX_FRAME,
            hosts: None,
        }
    }

    fn start_with(config: Supervision) -> (Arc<Loopback>, Handle<Echo>) {
        let transport = Arc::new(Loopback::new().with::<Echo>());
        let handle = Handle::<Echo>::start(transport.clone(), &0, config).unwrap();
        (transport, handle)
    }

    fn echo() -> (Arc<Loopback>, Handle<Echo>) {
        start_with(supervision(HANG, 10))
    }

    fn count(r: Result<Resp, Error>) -> u64 {
        match r {
            Ok(Resp::Count(n)) => n,
            other => panic!("expected a count, got {other:?}"),
        }
    }

    fn quiet_planned_panics() {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            let default = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                let planned = info
                    .payload()
                    .downcast_ref::<String>()
                    .is_some_and(|m| m.starts_with("planned panic"));
                if !planned {
                    default(info);
                }
            }));
        });
    }

    #[test]
    fn every_kind_of_call_crosses_the_loopback() {
        let (_t, p) = echo();
        assert_eq!(count(p.submit(Req::Next, None).result_timeout(HANG)), 1);
        assert_eq!(
            count(p.submit(Req::Twice(21), None).result_timeout(HANG)),
            42
        );
        assert_eq!(
            p.submit(Req::Check(false), None)
                .result_timeout(HANG)
                .unwrap(),
            Resp::Checked(Err("not ok".into()))
        );
        let Resp::Place(pid, thread) = p.submit(Req::Place, None).result_timeout(HANG).unwrap()
        else {
            panic!("expected a place");
        };
        // A peer on a thread of this very process, not the caller's thread.
        assert_eq!(pid, std::process::id());
        assert_ne!(thread, format!("{:?}", std::thread::current().id()));
        assert!(p.peer_id().is_some());
        p.stop().unwrap();
    }

    #[test]
    fn a_constructor_error_is_typed_and_an_unknown_type_is_an_init_error() {
        let transport = Arc::new(Loopback::new().with::<Echo>());
        match Handle::<Echo>::start(transport, &u64::MAX, supervision(HANG, 10)) {
            Err(Error::Method(e)) => assert_eq!(e, "no such start"),
            other => panic!("expected the constructor's error, got {:?}", other.err()),
        }
        match Handle::<Echo>::start(Arc::new(Loopback::new()), &0, supervision(HANG, 10)) {
            Err(Error::Init { message }) => assert!(message.contains("not served"), "{message}"),
            other => panic!("expected an init error, got {:?}", other.err()),
        }
    }

    #[test]
    fn calls_to_one_worker_run_in_submission_order() {
        let (_t, p) = echo();
        let futures: Vec<_> = (0..1000).map(|_| p.submit(Req::Next, None)).collect();
        let got: Vec<u64> = futures
            .into_iter()
            .map(|f| count(f.result_timeout(HANG)))
            .collect();
        assert_eq!(got, (1..=1000).collect::<Vec<_>>());
        p.stop().unwrap();
    }

    #[test]
    fn ten_thousand_calls_with_ten_percent_panics_lose_nothing() {
        quiet_planned_panics();
        let (_t, p) = echo();
        let futures: Vec<_> = (0..10_000)
            .map(|i| p.submit(Req::MaybePanic(i), None))
            .collect();
        let (mut ok, mut panicked) = (0, 0);
        for (i, f) in futures.into_iter().enumerate() {
            match f.result_timeout(HANG) {
                Ok(Resp::Count(v)) => {
                    assert_eq!(v as usize, i);
                    ok += 1;
                }
                Err(Error::Panicked { message }) => {
                    assert_eq!(message, format!("planned panic {i}"));
                    panicked += 1;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!((ok, panicked), (9_000, 1_000));
        p.stop().unwrap();
    }

    #[test]
    fn stop_drains_ten_thousand_queued_calls() {
        let (_t, p) = echo();
        let futures: Vec<_> = (0..10_000).map(|_| p.submit(Req::Next, None)).collect();
        p.stop().unwrap();
        for f in futures {
            assert!(f.result_timeout(HANG).is_ok());
        }
    }

    #[test]
    fn stop_fails_what_outlives_stop_timeout() {
        let (_t, p) = start_with(supervision(Duration::from_millis(50), 10));
        let g = gate();
        let held = p.submit(Req::Hold(g), None);
        let queued: Vec<_> = (0..10_000).map(|_| p.submit(Req::Next, None)).collect();
        assert!(matches!(p.stop(), Err(Error::Timeout)));
        open(g);
        for f in queued {
            assert!(matches!(f.result_timeout(HANG), Err(Error::Stopped)));
        }
        assert!(matches!(held.result_timeout(HANG), Err(Error::Stopped)));
    }

    #[test]
    fn calls_after_stop_fail_at_once() {
        let (_t, p) = echo();
        p.stop().unwrap();
        assert!(matches!(
            p.submit(Req::Next, None).result_timeout(HANG),
            Err(Error::Stopped)
        ));
        p.stop().unwrap();
    }

    #[test]
    fn dropping_the_last_handle_stops_the_worker_and_resolves_everything() {
        let (_t, p) = echo();
        let clone = p.clone();
        let futures: Vec<_> = (0..1000).map(|_| clone.submit(Req::Next, None)).collect();
        drop(p);
        drop(clone);
        for f in futures {
            assert!(f.result_timeout(HANG).is_ok());
        }
    }

    #[test]
    fn a_peer_killed_mid_call_fails_its_calls_as_lost_and_is_respawned() {
        let (t, p) = echo();
        assert_eq!(count(p.submit(Req::Next, None).result_timeout(HANG)), 1);
        let first = p.peer_id().unwrap();
        let g = gate();
        let held = p.submit(Req::Hold(g), None);
        let behind = p.submit(Req::Next, None);
        t.kill(first);
        for f in [held, behind] {
            match f.result_timeout(HANG) {
                Err(Error::WorkerLost { message }) => {
                    assert!(message.contains("was killed"), "{message}");
                }
                other => panic!("expected WorkerLost, got {other:?}"),
            }
        }
        // A new peer, built from the same arguments (so its count starts over).
        assert_eq!(count(p.submit(Req::Next, None).result_timeout(HANG)), 1);
        assert_ne!(p.peer_id(), Some(first));
        assert_eq!(p.restarts(), 1);
        open(g);
        p.stop().unwrap();
    }

    #[test]
    fn a_call_past_its_timeout_fails_and_its_peer_is_replaced() {
        let (_t, p) = echo();
        let first = p.peer_id().unwrap();
        let g = gate();
        let held = p.submit(Req::Hold(g), Some(Duration::from_millis(20)));
        assert!(matches!(held.result_timeout(HANG), Err(Error::Timeout)));
        assert_eq!(count(p.submit(Req::Next, None).result_timeout(HANG)), 1);
        assert_ne!(p.peer_id(), Some(first));
        open(g);
        p.stop().unwrap();
    }

    #[test]
    fn past_the_restart_limit_calls_fail_as_lost() {
        let (t, p) = start_with(supervision(HANG, 1));
        let mut last = None;
        for _ in 0..2 {
            // The next peer (no call answered in between: the restarts are consecutive).
            let deadline = Instant::now() + HANG;
            let id = loop {
                match p.peer_id() {
                    Some(id) if Some(id) != last => break id,
                    _ if Instant::now() > deadline => panic!("no new peer within {HANG:?}"),
                    _ => crate::sync::os::sleep(Duration::from_millis(1)),
                }
            };
            last = Some(id);
            let g = gate();
            let held = p.submit(Req::Hold(g), None);
            t.kill(id);
            assert!(matches!(
                held.result_timeout(HANG),
                Err(Error::WorkerLost { .. })
            ));
            open(g);
        }
        match p.submit(Req::Next, None).result_timeout(HANG) {
            Err(Error::WorkerLost { message }) => {
                assert!(
                    message.contains("gave up after 1 consecutive restarts"),
                    "{message}"
                );
            }
            other => panic!("expected WorkerLost, got {other:?}"),
        }
        p.stop().unwrap();
    }

    /// Another build's `Echo`: same name, another definition.
    struct EchoV2;

    impl RemoteWorker for EchoV2 {
        const NAME: &'static str = "concurry::loopback::tests::EchoV2";
        const SCHEMA: u64 = 0xbbbb;
        type Args = u64;
        type Request = Req;
        type Response = Resp;
        type InitError = String;

        fn construct(_: u64) -> Result<Self, String> {
            Ok(EchoV2)
        }

        fn dispatch(&mut self, _: Req) -> Resp {
            Resp::Count(0)
        }
    }

    #[test]
    fn a_worker_built_from_another_definition_is_refused_at_hello_naming_both_sides() {
        let transport = Arc::new(Loopback::new().with_as::<EchoV2>(Echo::NAME));
        let started = Handle::<Echo>::start(transport, &0, supervision(HANG, 10));
        match started.map(drop) {
            Err(Error::Transport(e @ WireError::SchemaMismatch { .. })) => {
                let message = e.to_string();
                assert!(
                    message.contains(&format!("{:#018x}", Echo::SCHEMA))
                        && message.contains("0x000000000000bbbb")
                        && message.contains(Echo::NAME),
                    "{message}"
                );
            }
            other => panic!("expected a schema mismatch, got {other:?}"),
        }
    }

    /// The loopback transport, with every call's header recorded on its way out.
    struct Recording {
        inner: Loopback,
        heads: Arc<Mutex<Vec<CallHeader>>>,
    }

    struct RecordingPeer {
        inner: Arc<dyn Peer>,
        heads: Arc<Mutex<Vec<CallHeader>>>,
    }

    impl Transport for Recording {
        fn place(
            &self,
            worker: &'static str,
            schema: u64,
            args: &[u8],
            stopped: &dyn Fn() -> bool,
        ) -> Result<Placed, PlaceError> {
            let Placed { peer, inbound } = self.inner.place(worker, schema, args, stopped)?;
            Ok(Placed {
                peer: Arc::new(RecordingPeer {
                    inner: peer,
                    heads: self.heads.clone(),
                }),
                inbound,
            })
        }
    }

    impl Peer for RecordingPeer {
        fn id(&self) -> u32 {
            self.inner.id()
        }
        fn send(&self, kind: Kind, id: u64, payload: Vec<u8>, idle: bool) {
            self.inner.send(kind, id, payload, idle);
        }
        fn call(&self, id: u64, head: CallHeader, request: Vec<u8>, idle: bool) {
            lock(&self.heads).push(head);
            self.inner.call(id, head, request, idle);
        }
        fn shutdown(&self) {
            self.inner.shutdown();
        }
        fn kill(&self, why: String) {
            self.inner.kill(why);
        }
        fn end(&self, stopping: bool, grace: Duration) -> Ending {
            self.inner.end(stopping, grace)
        }
    }

    #[test]
    fn each_call_carries_its_deadline_attempt_and_trace_id() {
        let heads = Arc::new(Mutex::new(Vec::new()));
        let transport = Arc::new(Recording {
            inner: Loopback::new().with::<Echo>(),
            heads: heads.clone(),
        });
        let p = Handle::<Echo>::start(transport, &0, supervision(HANG, 10)).unwrap();
        let timeout = Duration::from_secs(20);
        assert_eq!(
            count(p.submit(Req::Next, Some(timeout)).result_timeout(HANG)),
            1
        );
        assert_eq!(count(p.submit(Req::Next, None).result_timeout(HANG)), 2);
        p.stop().unwrap();
        let heads = lock(&heads).clone();
        assert_eq!(heads.len(), 2, "{heads:?}");
        // The budget is what was left when the call was sent: at most its timeout.
        let budget = heads[0].budget_us.expect("a deadline");
        assert!(budget <= 20_000_000 && budget > 0, "{budget}");
        assert_eq!(heads[1].budget_us, None);
        assert!(heads.iter().all(|h| h.attempt == 1), "{heads:?}");
        assert_ne!(heads[0].trace, heads[1].trace, "one trace id per call");
    }

    /// A call whose header is garbage fails alone; the worker serves on.
    #[test]
    fn a_call_without_a_readable_header_fails_alone() {
        let transport = Loopback::new().with::<Echo>();
        let placed = transport.place(
            Echo::NAME,
            Echo::SCHEMA,
            &crate::wire::encode(&0u64, "args").unwrap(),
            &|| false,
        );
        let Ok(Placed { peer, mut inbound }) = placed else {
            panic!("not placed");
        };
        // A header announcing an attempt as a varint that never ends.
        peer.send(Kind::Call, 1, vec![0xff; 40], false);
        let mut good = CallHeader::default().encode();
        good.extend_from_slice(&crate::wire::encode(&Req::Next, "request").unwrap());
        peer.send(Kind::Call, 2, good, false);
        let first = inbound.next().unwrap().unwrap();
        match decode::<Result<Resp, Fault>>(&first.payload, "reply").unwrap() {
            Err(Fault::Protocol { message }) => {
                assert!(message.contains("call header"), "{message}")
            }
            other => panic!("expected a protocol fault, got {other:?}"),
        }
        let second = inbound.next().unwrap().unwrap();
        assert_eq!(
            decode::<Result<Resp, Fault>>(&second.payload, "reply").unwrap(),
            Ok(Resp::Count(1))
        );
        peer.shutdown();
        assert!(inbound.next().unwrap().is_none());
        drop(peer.end(true, HANG));
    }

    /// `Promise::cancel` on a running call reaches the method through `Kind::Cancel` (the
    /// serve loop's feed files it while the call runs); the promise resolves with
    /// `Cancelled` at once, and the worker serves the next call.
    #[test]
    fn cancel_reaches_a_running_call() {
        let (_t, p) = echo();
        let tag = gate();
        let call = p.submit(Req::Spin(tag), None);
        wait_for(&SPINNING, tag);
        let at = Instant::now();
        assert!(call.cancel());
        assert!(matches!(call.result(), Err(Error::Cancelled)));
        wait_for(&SAW_CANCEL, tag);
        eprintln!(
            "loopback: the method saw its cancel {:?} after cancel()",
            at.elapsed()
        );
        assert_eq!(count(p.submit(Req::Next, None).result_timeout(HANG)), 1);
        p.stop().unwrap();
    }

    /// A call past its hard timeout fails with `Timeout`; its peer is told to cancel it
    /// before it is killed, so even a peer that cannot be killed (a thread) stops the call.
    #[test]
    fn a_timed_out_call_is_cancelled_too() {
        let (_t, p) = echo();
        let tag = gate();
        let call = p.submit(Req::Spin(tag), Some(Duration::from_millis(20)));
        assert!(matches!(call.result_timeout(HANG), Err(Error::Timeout)));
        wait_for(&SAW_CANCEL, tag);
        assert_eq!(count(p.submit(Req::Next, None).result_timeout(HANG)), 1);
        p.stop().unwrap();
    }

    /// The serve loop on raw envelopes: a `Cancel` for the running call stops it (its reply
    /// follows as usual); one for a finished or unknown call is ignored; one ahead of its
    /// call makes the call answer `Fault::Cancelled` without running.
    #[test]
    fn the_serve_loop_handles_cancel() {
        let transport = Loopback::new().with::<Echo>();
        let placed = transport.place(
            Echo::NAME,
            Echo::SCHEMA,
            &crate::wire::encode(&0u64, "args").unwrap(),
            &|| false,
        );
        let Ok(Placed { peer, mut inbound }) = placed else {
            panic!("not placed");
        };
        let call = |id: u64, req: &Req| {
            let request = crate::wire::encode(req, "request").unwrap();
            peer.call(id, CallHeader::default(), request, false);
        };
        let mut reply = |id: u64| {
            let env = inbound.next().unwrap().unwrap();
            assert_eq!((env.kind, env.id), (Kind::Reply, id));
            decode::<Result<Resp, Fault>>(&env.payload, "reply").unwrap()
        };
        let tag = gate();
        call(1, &Req::Spin(tag));
        wait_for(&SPINNING, tag);
        peer.send(Kind::Cancel, 1, Vec::new(), false);
        assert_eq!(reply(1), Ok(Resp::Spun(true)));
        // Finished, and never sent: ignored.
        peer.send(Kind::Cancel, 1, Vec::new(), false);
        peer.send(Kind::Cancel, 0, Vec::new(), false);
        call(2, &Req::Next);
        assert_eq!(reply(2), Ok(Resp::Count(1)));
        // Ahead of its call: the call does not run.
        peer.send(Kind::Cancel, 3, Vec::new(), false);
        call(3, &Req::Next);
        assert_eq!(reply(3), Err(Fault::Cancelled));
        call(4, &Req::Next);
        assert_eq!(reply(4), Ok(Resp::Count(2)));
        peer.shutdown();
        assert!(inbound.next().unwrap().is_none());
        drop(peer.end(true, HANG));
    }
}
