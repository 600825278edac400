//! [`Supervisor`]: one supervised worker on any [`Transport`], on bytes only. Calls are
//! multiplexed over its peer by correlation id; a reader thread (or, for a stream an async
//! client reads, a task of the library runtime: no thread hop per reply) hands their replies
//! to the typed layer, detects the peer's end, fails what was in flight and places a new
//! peer; a watchdog thread enforces per-call hard timeouts.
//!
//! States: `Up` (a peer serves) → `Respawning` (it ended; calls queue) → `Up` again, or
//! `Dead` once `max_restarts` respawns in a row failed; `Stopped` at `stop()`.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::{Duration, Instant};

use super::transport::{Hosts, Inbound, LimitHost, Peer, PlaceError, Placed, Transport};
use crate::error::Error;
use crate::future::CancelWatch;
use crate::sync::os::{Arc, AtomicBool, AtomicU64, Condvar, Mutex, Ordering, lock};
use crate::wire::{CallHeader, Fault, Kind, WireError, decode};

/// How a supervisor keeps its worker: restarts, backoff, stop, sizes, limits.
#[derive(Clone)]
pub(crate) struct Supervision {
    pub(crate) max_restarts: u32,
    pub(crate) backoff_min: Duration,
    pub(crate) backoff_max: Duration,
    pub(crate) stop_timeout: Duration,
    pub(crate) max_message_size: usize,
    /// One host of the pool's limits per placed worker, if the pool has limits.
    pub(crate) hosts: Option<Hosts>,
}

impl Supervision {
    /// The wait before the `n`-th consecutive respawn: `min · 2^(n-1)`, at most `max`.
    pub(crate) fn backoff_for(&self, consecutive: u32) -> Duration {
        let factor = 1u32 << consecutive.saturating_sub(1).min(20);
        self.backoff_min
            .saturating_mul(factor)
            .min(self.backoff_max)
    }
}

/// What a call's reply is handed to: the typed layer decodes it and resolves the call.
pub(crate) trait Completion: Send + 'static {
    /// The reply's bytes arrived. Decodes them; before resolving the call, tells `decoded`
    /// whether they were readable. Returns the decoding error, if any (the peer then counts
    /// as broken).
    fn reply(self: Box<Self>, bytes: &[u8], decoded: &mut dyn FnMut(bool))
    -> Result<(), WireError>;

    /// The call failed before any reply.
    fn fail(self: Box<Self>, error: Error);

    /// The watch on the call's promise, taken once: its cancel is sent to the worker.
    fn cancel_watch(&mut self) -> Option<CancelWatch> {
        None
    }
}

/// A call's completion, boxed.
pub(crate) type Reply = Box<dyn Completion>;

thread_local! {
    /// The supervisor whose reader thread this is (0 elsewhere).
    static READER_OF: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Marks this thread as the reader of a supervisor while it handles what its peer sent (a
/// task's thread is one only meanwhile): a `stop()` from a promise callback then does not
/// wait for the reader it runs on.
struct ReaderMark(usize);

impl ReaderMark {
    fn of(sup: &Arc<Supervisor>) -> ReaderMark {
        ReaderMark(READER_OF.with(|r| r.replace(Arc::as_ptr(sup) as usize)))
    }
}

impl Drop for ReaderMark {
    fn drop(&mut self) {
        READER_OF.with(|r| r.set(self.0));
    }
}

pub(crate) struct Supervisor {
    /// The registered name of the worker type, and its schema fingerprint.
    name: &'static str,
    schema: u64,
    transport: Arc<dyn Transport>,
    /// The constructor's arguments, encoded once.
    args: Vec<u8>,
    pub(crate) config: Supervision,
    next_id: AtomicU64,
    state: Mutex<State>,
    /// Respawns so far, and respawns since the peer last answered a call.
    restarts: AtomicU64,
    consecutive: AtomicU64,
    /// Reader threads still running: each owns a peer until it has ended it.
    readers: Mutex<usize>,
    readers_done: Condvar,
    /// The reader threads, joined by `stop()` (finished ones are dropped at each respawn).
    reader_threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
    /// Per-call deadlines, and the stop flag that wakes the watchdog and a respawn backoff.
    timers: Mutex<Timers>,
    timers_changed: Condvar,
    watchdog: Mutex<Option<std::thread::JoinHandle<()>>>,
    stopped: AtomicBool,
}

enum State {
    /// A peer is serving.
    Up(Arc<Conn>),
    /// The peer ended; calls wait here for the next one.
    Respawning(Vec<Queued>),
    /// The restart limit ran out (the message says why).
    Dead(String),
    Stopped,
}

struct Queued {
    id: u64,
    head: CallHeader,
    payload: Vec<u8>,
    completer: Reply,
}

#[derive(Default)]
struct Timers {
    /// `(deadline, call id, timeout)`, earliest first.
    heap: BinaryHeap<Reverse<(Instant, u64, Duration)>>,
    stop: bool,
}

/// One placed peer and its calls in flight.
struct Conn {
    peer: Arc<dyn Peer>,
    calls: Mutex<Calls>,
    /// Notified when the last send in progress on this peer is done (see [`Conn::close`]).
    sent: Condvar,
    /// Set by `stop()`: the peer was asked to end, its end is not a loss.
    stopping: AtomicBool,
    /// The pool's limits, as this peer reaches them.
    host: Option<Arc<dyn LimitHost>>,
}

struct Calls {
    open: bool,
    map: HashMap<u64, Reply>,
    /// Calls registered in `map` whose bytes are still on their way to the peer.
    sending: u32,
}

impl Conn {
    /// Registers the call and sends it; gives it back if the connection is closed.
    fn send(
        &self,
        id: u64,
        head: CallHeader,
        payload: Vec<u8>,
        completer: Reply,
    ) -> Result<(), (Vec<u8>, Reply)> {
        let idle = {
            let mut calls = lock(&self.calls);
            if !calls.open {
                return Err((payload, completer));
            }
            let idle = calls.map.is_empty();
            calls.map.insert(id, completer);
            calls.sending += 1;
            idle
        };
        self.peer.call(id, head, payload, idle);
        let mut calls = lock(&self.calls);
        calls.sending -= 1;
        if calls.sending == 0 && !calls.open {
            self.sent.notify_all();
        }
        Ok(())
    }

    /// Takes no more calls (a sender that comes later gets its call back), and waits until
    /// every call registered so far has been handed to the peer: a message sent after this
    /// (a `Shutdown`) reaches the peer after all of them.
    fn close(&self) {
        let mut calls = lock(&self.calls);
        calls.open = false;
        while calls.sending > 0 {
            calls = self
                .sent
                .wait(calls)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }

    /// Asks the peer to finish its calls and end.
    fn shutdown(&self) {
        self.stopping.store(true, Ordering::Release);
        self.peer.shutdown();
    }
}

/// Why a reader stopped reading its peer's stream.
enum Ended {
    /// The peer went away (or gave up): its calls in flight are lost.
    Lost(String),
    /// The peer sent something that is not this protocol: its calls in flight get the
    /// typed error.
    Garbled(WireError),
}

impl Supervisor {
    /// Places the first peer and starts the watchdog.
    pub(crate) fn start(
        (name, schema): (&'static str, u64),
        transport: Arc<dyn Transport>,
        args: Vec<u8>,
        config: Supervision,
    ) -> Result<Arc<Self>, PlaceError> {
        let sup = Arc::new(Supervisor {
            name,
            schema,
            transport,
            args,
            config,
            next_id: AtomicU64::new(1),
            state: Mutex::new(State::Stopped),
            restarts: AtomicU64::new(0),
            consecutive: AtomicU64::new(0),
            readers: Mutex::new(0),
            readers_done: Condvar::new(),
            reader_threads: Mutex::new(Vec::new()),
            timers: Mutex::new(Timers::default()),
            timers_changed: Condvar::new(),
            watchdog: Mutex::new(None),
            stopped: AtomicBool::new(false),
        });
        let placed = sup.transport.place(name, schema, &sup.args, &|| false)?;
        let conn = sup.connect(placed);
        *lock(&sup.state) = State::Up(conn);
        let watched = sup.clone();
        let watchdog = std::thread::Builder::new()
            .name(format!("concurry-watchdog-{name}"))
            .spawn(move || watched.watchdog());
        match watchdog {
            Ok(h) => *lock(&sup.watchdog) = Some(h),
            Err(e) => {
                let _ = sup.stop();
                return Err(PlaceError::Init(format!(
                    "could not start the watchdog thread: {e}"
                )));
            }
        }
        Ok(sup)
    }

    /// Sends one encoded call, attempt `attempt` of the call traced as `trace`; `reply`
    /// gets its outcome, on whichever thread has it. The timeout is the call's budget: the
    /// watchdog enforces it here, and its header tells the far side.
    ///
    /// A cancel of the call's promise (see [`Completion::cancel_watch`]) is sent on to the
    /// worker as `Kind::Cancel` while the call is in flight; a call still queued for a
    /// respawn is dropped instead.
    pub(crate) fn send(
        self: &Arc<Self>,
        payload: Vec<u8>,
        (attempt, trace): (u32, u64),
        timeout: Option<Duration>,
        mut reply: Reply,
    ) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        if let Some(t) = timeout {
            self.add_timer(id, t);
        }
        let head = CallHeader {
            budget_us: timeout.map(|t| u64::try_from(t.as_micros()).unwrap_or(u64::MAX)),
            attempt,
            trace,
        };
        let watch = reply.cancel_watch();
        self.submit(id, head, payload, reply);
        // Watched once the call is in the table (or queue): a cancel before this runs the
        // callback at once, so none is missed.
        if let Some(watch) = watch {
            let sup = Arc::downgrade(self);
            watch.then(move || {
                if let Some(sup) = sup.upgrade() {
                    sup.cancel(id);
                }
            });
        }
    }

    /// The call `id` was cancelled: a peer running it is told (`Kind::Cancel`); a call
    /// queued for a respawn is failed with [`Error::Cancelled`] and never sent. A call that
    /// finished (or failed) already is not in flight: nothing is sent.
    fn cancel(&self, id: u64) {
        let mut st = lock(&self.state);
        match &mut *st {
            State::Up(conn) => {
                let conn = conn.clone();
                drop(st);
                if lock(&conn.calls).map.contains_key(&id) {
                    conn.peer.send(Kind::Cancel, id, Vec::new(), false);
                }
            }
            State::Respawning(queue) => {
                if let Some(i) = queue.iter().position(|q| q.id == id) {
                    let q = queue.remove(i);
                    drop(st);
                    q.completer.fail(Error::Cancelled);
                }
            }
            State::Dead(_) | State::Stopped => {}
        }
    }

    /// The serving peer's id, while one is serving.
    pub(crate) fn peer_id(&self) -> Option<u32> {
        match &*lock(&self.state) {
            State::Up(conn) => Some(conn.peer.id()),
            _ => None,
        }
    }

    /// Where the serving peer runs ([`Peer::location`]), while one is serving.
    pub(crate) fn peer_location(&self) -> Option<String> {
        match &*lock(&self.state) {
            State::Up(conn) => conn.peer.location(),
            _ => None,
        }
    }

    /// How many times the peer was replaced.
    pub(crate) fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
    }

    fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    /// Wraps a placed peer and starts its reader thread.
    fn connect(self: &Arc<Self>, placed: Placed) -> Arc<Conn> {
        let Placed { peer, inbound } = placed;
        let id = peer.id();
        let conn = Arc::new(Conn {
            peer,
            calls: Mutex::new(Calls {
                open: true,
                map: HashMap::new(),
                sending: 0,
            }),
            sent: Condvar::new(),
            stopping: AtomicBool::new(false),
            host: self.config.hosts.as_ref().map(|h| h()),
        });
        *lock(&self.readers) += 1;
        if inbound.reads_async() {
            self.clone().read_task(conn.clone(), inbound);
            return conn;
        }
        let (sup, c) = (self.clone(), conn.clone());
        let started = std::thread::Builder::new()
            .name(format!("concurry-peer-{id}"))
            .spawn(move || {
                READER_OF.with(|r| r.set(Arc::as_ptr(&sup) as usize));
                sup.read_loop(&c, inbound);
                sup.reader_done();
            });
        match started {
            Ok(reader) => {
                let mut threads = lock(&self.reader_threads);
                threads.retain(|t| !t.is_finished());
                threads.push(reader);
            }
            Err(e) => {
                // No reader: the connection is unusable. End the peer here.
                lock(&conn.calls).open = false;
                conn.peer
                    .kill(format!("could not start a reader thread: {e}"));
                drop(conn.peer.end(false, Duration::ZERO));
                self.reader_done();
            }
        }
        conn
    }

    fn reader_done(&self) {
        let mut n = lock(&self.readers);
        *n -= 1;
        self.readers_done.notify_all();
    }

    fn submit(&self, id: u64, head: CallHeader, mut payload: Vec<u8>, mut completer: Reply) {
        loop {
            let mut st = lock(&self.state);
            match &mut *st {
                State::Up(conn) => {
                    let conn = conn.clone();
                    drop(st);
                    match conn.send(id, head, payload, completer) {
                        Ok(()) => return,
                        // The connection closed under us; the state has moved on already.
                        Err(back) => (payload, completer) = back,
                    }
                }
                State::Respawning(queue) => {
                    queue.push(Queued {
                        id,
                        head,
                        payload,
                        completer,
                    });
                    return;
                }
                State::Dead(message) => {
                    let message = message.clone();
                    drop(st);
                    completer.fail(Error::WorkerLost { message });
                    return;
                }
                State::Stopped => {
                    drop(st);
                    completer.fail(Error::Stopped);
                    return;
                }
            }
        }
    }

    /// Resolves replies until the stream ends; then ends the peer, fails what was in
    /// flight and, unless stopping, respawns.
    fn read_loop(self: &Arc<Self>, conn: &Arc<Conn>, mut inbound: Box<dyn Inbound>) {
        let ended = loop {
            if let Some(ended) = self.on_next(conn, inbound.next()) {
                break ended;
            }
        };
        self.finish(conn, ended);
    }

    /// As [`read_loop`](Self::read_loop), as a task of the library runtime for a stream
    /// read by one ([`Inbound::reads_async`]): each reply resolves its call on the thread
    /// that received it, with no hop to a reader thread. The end (which blocks: the peer's
    /// end, a respawn's backoff and placement) runs on the runtime's blocking pool.
    fn read_task(self: Arc<Self>, conn: Arc<Conn>, mut inbound: Box<dyn Inbound>) {
        crate::runtime::runtime().spawn(async move {
            let ended = loop {
                let next = match inbound.next_async() {
                    Some(next) => next.await,
                    None => Err(WireError::Io(std::io::Error::new(
                        std::io::ErrorKind::Unsupported,
                        "the stream cannot be read by a task",
                    ))),
                };
                let _reader = ReaderMark::of(&self);
                if let Some(ended) = self.on_next(&conn, next) {
                    break ended;
                }
            };
            drop(inbound);
            tokio::task::spawn_blocking(move || {
                let _reader = ReaderMark::of(&self);
                self.finish(&conn, ended);
                self.reader_done();
            });
        });
    }

    /// What the reader does with the next item of its stream; `Some` once the stream ended.
    fn on_next(
        self: &Arc<Self>,
        conn: &Arc<Conn>,
        next: Result<Option<crate::wire::Envelope>, WireError>,
    ) -> Option<Ended> {
        let env = match next {
            Ok(Some(env)) => env,
            Ok(None) => return Some(Ended::Lost("it closed the channel".to_string())),
            Err(e) if e.is_disconnect() => {
                return Some(Ended::Lost(format!("the channel broke: {e}")));
            }
            Err(e) => return Some(Ended::Garbled(e)),
        };
        match env.kind {
            Kind::Reply => {
                let completer = lock(&conn.calls).map.remove(&env.id);
                let c = completer?;
                let mut decoded = |ok: bool| {
                    if ok {
                        self.consecutive.store(0, Ordering::Relaxed);
                    } else {
                        // Calls from now on go to the next peer, then this one fails.
                        self.detach(conn);
                    }
                };
                if let Err(e) = c.reply(&env.payload, &mut decoded) {
                    return Some(Ended::Garbled(e));
                }
            }
            Kind::LimitAcquire | Kind::LimitUpdate | Kind::LimitRelease | Kind::LimitStats => {
                let handled = match &conn.host {
                    Some(host) => host.on_message(env, &conn.peer),
                    None => Err(WireError::Payload {
                        what: "message kind",
                        message: "a limit request reached a worker without a limit host".into(),
                    }),
                };
                if let Err(e) = handled {
                    return Some(Ended::Garbled(e));
                }
            }
            Kind::Shutdown => {
                // The peer is moving (its host drains): calls from now on queue for the
                // next peer; the ones in flight finish here, then it is asked to end,
                // and its end (with nothing in flight) places it anew. The `Shutdown`
                // goes out only after every call already registered here: one sent after
                // it would find the instance gone (the wait is brief, and blocking: off a
                // runtime thread if this is one).
                self.detach(conn);
                crate::runtime::blocking(|| conn.close());
                conn.peer.shutdown();
            }
            Kind::Fault => {
                return Some(match decode::<Fault>(&env.payload, "fault") {
                    Ok(f) => Ended::Lost(format!("it gave up: {f}")),
                    Err(e) => Ended::Garbled(e),
                });
            }
            other => {
                return Some(Ended::Garbled(WireError::Payload {
                    what: "message kind",
                    message: format!("a worker process does not send `{other:?}` messages"),
                }));
            }
        }
        None
    }

    /// Sends calls submitted from now on to the respawn queue instead of `conn`.
    fn detach(&self, conn: &Arc<Conn>) {
        let mut st = lock(&self.state);
        if matches!(&*st, State::Up(c) if Arc::ptr_eq(c, conn)) {
            *st = State::Respawning(Vec::new());
        }
    }

    fn finish(self: &Arc<Self>, conn: &Arc<Conn>, ended: Ended) {
        let stopping = conn.stopping.load(Ordering::Acquire);
        // Calls submitted from now on queue for the next peer (or fail if stopped).
        if !stopping {
            self.detach(conn);
        }
        if let Some(host) = &conn.host {
            host.close();
        }
        let in_flight = {
            let mut calls = lock(&conn.calls);
            calls.open = false;
            std::mem::take(&mut calls.map)
        };
        let ending = conn.peer.end(stopping, self.config.stop_timeout);
        // A kill of ours (a timeout, a failed write) explains the end better than what the
        // reader saw afterwards.
        let (why, garbled) = match (ending.killed, ended) {
            (Some(killed), _) => (killed, None),
            (None, Ended::Lost(why)) => (why, None),
            (None, Ended::Garbled(e)) => (format!("protocol error on the channel: {e}"), Some(e)),
        };
        let status = ending
            .status
            .unwrap_or_else(|| "status unknown".to_string());
        let message = format!("worker process {} ended ({status}): {why}", conn.peer.id());
        for (_, c) in in_flight {
            c.fail(match &garbled {
                _ if stopping => Error::Stopped,
                Some(e) => Error::Transport(e.duplicate()),
                None => Error::WorkerLost {
                    message: message.clone(),
                },
            });
        }
        if !stopping && !self.is_stopped() {
            tracing::warn!(worker = self.name, "{message}; respawning");
            self.respawn(message);
        }
    }

    /// Places a new peer after a backoff; calls queued meanwhile are sent to it.
    fn respawn(self: &Arc<Self>, mut last: String) {
        loop {
            let n = self.consecutive.fetch_add(1, Ordering::Relaxed) + 1;
            if n > u64::from(self.config.max_restarts) {
                let message = format!(
                    "gave up after {} consecutive restarts; last: {last}",
                    self.config.max_restarts
                );
                return self.set_dead(message);
            }
            if self.sleep_unless_stopped(self.config.backoff_for(n as u32)) {
                return;
            }
            match self
                .transport
                .place(self.name, self.schema, &self.args, &|| self.is_stopped())
            {
                Ok(placed) => {
                    self.restarts.fetch_add(1, Ordering::Relaxed);
                    let conn = self.connect(placed);
                    let mut st = lock(&self.state);
                    match std::mem::replace(&mut *st, State::Up(conn.clone())) {
                        State::Respawning(queue) => {
                            drop(st);
                            for q in queue {
                                if let Err((_, c)) = conn.send(q.id, q.head, q.payload, q.completer)
                                {
                                    c.fail(Error::WorkerLost {
                                        message: "the respawned worker process died at once".into(),
                                    });
                                }
                            }
                        }
                        other => {
                            // Stopped (or dead) meanwhile: the new peer is not wanted.
                            *st = other;
                            drop(st);
                            conn.shutdown();
                        }
                    }
                    return;
                }
                Err(PlaceError::Stopped) => return,
                Err(PlaceError::Init(m) | PlaceError::Constructor { message: m, .. }) => {
                    // The constructor fails every time: restarting would only spin.
                    return self.set_dead(format!("the worker could not be re-created: {m}"));
                }
                Err(PlaceError::Schema(e)) => {
                    return self.set_dead(format!("the worker could not be re-created: {e}"));
                }
                Err(PlaceError::Other(m)) => last = m,
            }
        }
    }

    fn set_dead(&self, message: String) {
        let mut st = lock(&self.state);
        if let State::Respawning(queue) = std::mem::replace(&mut *st, State::Dead(message.clone()))
        {
            drop(st);
            for q in queue {
                q.completer.fail(Error::WorkerLost {
                    message: message.clone(),
                });
            }
        }
        tracing::error!(worker = self.name, "{message}");
    }

    /// Waits `d`; true if `stop()` came first.
    fn sleep_unless_stopped(&self, d: Duration) -> bool {
        let deadline = Instant::now() + d;
        let mut t = lock(&self.timers);
        while !t.stop {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            t = match self.timers_changed.wait_timeout(t, deadline - now) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
        true
    }

    fn add_timer(&self, id: u64, timeout: Duration) {
        let deadline = Instant::now()
            .checked_add(timeout)
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600));
        let mut t = lock(&self.timers);
        let earliest = t.heap.peek().is_none_or(|Reverse((d, ..))| deadline < *d);
        t.heap.push(Reverse((deadline, id, timeout)));
        drop(t);
        if earliest {
            self.timers_changed.notify_all();
        }
    }

    /// The watchdog thread: fails calls past their deadline and kills their peer.
    fn watchdog(&self) {
        let mut t = lock(&self.timers);
        loop {
            if t.stop {
                return;
            }
            let now = Instant::now();
            match t.heap.peek() {
                Some(Reverse((deadline, id, timeout))) if *deadline <= now => {
                    let (id, timeout) = (*id, *timeout);
                    t.heap.pop();
                    drop(t);
                    self.expire(id, timeout);
                    t = lock(&self.timers);
                }
                next => {
                    let wait = next.map(|Reverse((d, ..))| *d - now);
                    t = match wait {
                        Some(w) => match self.timers_changed.wait_timeout(t, w) {
                            Ok((g, _)) => g,
                            Err(p) => p.into_inner().0,
                        },
                        None => match self.timers_changed.wait(t) {
                            Ok(g) => g,
                            Err(p) => p.into_inner(),
                        },
                    };
                }
            }
        }
    }

    fn expire(&self, id: u64, timeout: Duration) {
        let mut st = lock(&self.state);
        match &mut *st {
            State::Up(conn) => {
                let conn = conn.clone();
                drop(st);
                let c = lock(&conn.calls).map.remove(&id);
                if let Some(c) = c {
                    // Calls after this one's failure go to the next peer.
                    self.detach(&conn);
                    c.fail(Error::Timeout);
                    // The kill ends a child process at once; a peer that cannot be killed
                    // (a loopback thread, abandoned) stops the call at its next checkpoint.
                    conn.peer.send(Kind::Cancel, id, Vec::new(), false);
                    conn.peer.kill(format!(
                        "killed because call {id} outlived its {timeout:?} timeout"
                    ));
                }
            }
            State::Respawning(queue) => {
                if let Some(i) = queue.iter().position(|q| q.id == id) {
                    let q = queue.swap_remove(i);
                    drop(st);
                    q.completer.fail(Error::Timeout);
                }
            }
            State::Dead(_) | State::Stopped => {}
        }
    }

    /// Stops the worker: new calls fail with [`Error::Stopped`]; the peer finishes the calls
    /// it has and ends. Past `stop_timeout` it is killed and this returns [`Error::Timeout`].
    pub(crate) fn stop(&self) -> Result<(), Error> {
        if self.stopped.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let previous = std::mem::replace(&mut *lock(&self.state), State::Stopped);
        {
            let mut t = lock(&self.timers);
            t.stop = true;
            t.heap.clear();
        }
        self.timers_changed.notify_all();
        let conn = match previous {
            State::Up(conn) => {
                conn.shutdown();
                Some(conn)
            }
            State::Respawning(queue) => {
                for q in queue {
                    q.completer.fail(Error::Stopped);
                }
                None
            }
            State::Dead(_) | State::Stopped => None,
        };
        let mut timed_out = false;
        // Stopped from a promise callback on one of our own reader threads: that reader ends
        // (and ends its peer) once this returns, so do not wait for it.
        let own = usize::from(READER_OF.with(|r| r.get()) == std::ptr::from_ref(self) as usize);
        if !self.wait_readers(self.config.stop_timeout, own) {
            timed_out = true;
            if let Some(conn) = &conn {
                conn.peer
                    .kill("killed because `stop_timeout` ran out".into());
            }
            // Killed peers close their streams at once; their readers end them.
            self.wait_readers(Duration::from_secs(3600), own);
        }
        // Every reader has ended its peer; join the threads too, so none outlives `stop()`.
        let me = std::thread::current().id();
        let readers = std::mem::take(&mut *lock(&self.reader_threads));
        let watchdog = lock(&self.watchdog).take();
        for h in readers.into_iter().chain(watchdog) {
            if h.thread().id() != me {
                let _ = h.join();
            }
        }
        if timed_out {
            Err(Error::Timeout)
        } else {
            Ok(())
        }
    }

    /// Waits until every reader thread but `own` has ended its peer; false on timeout.
    fn wait_readers(&self, timeout: Duration, own: usize) -> bool {
        let deadline = Instant::now().checked_add(timeout);
        let mut n = lock(&self.readers);
        while *n > own {
            let now = Instant::now();
            let left = match deadline {
                Some(d) if d <= now => return false,
                Some(d) => d - now,
                None => Duration::from_secs(3600),
            };
            n = match self.readers_done.wait_timeout(n, left) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
        true
    }
}
