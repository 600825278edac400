//! [`ProcessWorker`]: one supervised child. Calls are multiplexed over its socket by
//! correlation id; a reader thread resolves their promises, detects the child's death, fails
//! what was in flight and respawns it; a watchdog thread enforces per-call hard timeouts.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fmt;
use std::io::BufReader;
use std::os::unix::net::UnixStream;
use std::process::Child;
use std::time::{Duration, Instant};

use super::limits::{Host, Replier};
use super::parent::{SpawnError, Spawned, abandon, reap, spawn};
use super::{ProcessConfig, RemoteWorker, entries, lookup};
use crate::error::{ConfigError, Error};
use crate::future::Promise;
use crate::sync::os::{Arc, AtomicBool, AtomicU64, Condvar, Mutex, Ordering, lock};
use crate::wire::{
    Fault, FrameReader, FrameWriter, Kind, WireError, check_size, decode, encode, encode_capped,
};

/// One worker instance in a child process, supervised: calls are sent over one socket (many
/// in flight at once), a child that dies is respawned with its constructor arguments, and a
/// call may carry a hard timeout that kills a stuck child.
///
/// Every promise it returns resolves:
/// - with the method's response;
/// - [`Error::Panicked`] if the method panicked (the child goes on serving);
/// - [`Error::Timeout`] if the call outlived its [`call_timeout`](ProcessWorker::call_timeout)
///   (the child is killed and respawned);
/// - [`Error::WorkerLost`] if the child died (crash, `abort`, a kill, another call's timeout,
///   garbage on the channel) while the call was in flight, or the restart limit ran out;
/// - [`Error::Transport`] if this call's request or reply could not cross the channel (it
///   does not encode, is too large, or came back garbled; for a garbled reply the child is
///   also respawned);
/// - [`Error::Stopped`] if [`stop`](ProcessWorker::stop) came first.
///
/// Cloning shares the worker; it stops when `stop()` is called or the last clone is dropped.
/// See the [module docs](crate::RemoteWorker) for an example.
pub struct ProcessWorker<W: RemoteWorker> {
    handle: Arc<Handle<W>>,
}

impl<W: RemoteWorker> Clone for ProcessWorker<W> {
    fn clone(&self) -> Self {
        ProcessWorker {
            handle: self.handle.clone(),
        }
    }
}

impl<W: RemoteWorker> fmt::Debug for ProcessWorker<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessWorker")
            .field("worker", &W::NAME)
            .field("pid", &self.pid())
            .field("restarts", &self.restarts())
            .finish()
    }
}

thread_local! {
    /// The supervisor whose reader thread this is (0 elsewhere).
    static READER_OF: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Stops the supervisor when the last user handle goes (the threads hold the supervisor,
/// never this).
struct Handle<W: RemoteWorker> {
    sup: Arc<Supervisor<W>>,
}

impl<W: RemoteWorker> Drop for Handle<W> {
    fn drop(&mut self) {
        let _ = self.sup.stop();
    }
}

struct Supervisor<W: RemoteWorker> {
    /// The constructor's arguments, encoded once.
    args: Vec<u8>,
    config: ProcessConfig,
    next_id: AtomicU64,
    state: Mutex<State<W>>,
    /// Respawns so far, and respawns since the child last answered a call.
    restarts: AtomicU64,
    consecutive: AtomicU64,
    /// Reader threads still running: each owns a child until it has reaped it.
    readers: Mutex<usize>,
    readers_done: Condvar,
    /// The reader threads, joined by `stop()` (finished ones are dropped at each respawn).
    reader_threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
    /// Per-call deadlines, and the stop flag that wakes the watchdog and a respawn backoff.
    timers: Mutex<Timers>,
    timers_changed: Condvar,
    watchdog: Mutex<Option<std::thread::JoinHandle<()>>>,
    stopped: AtomicBool,
    /// Calls that left the caller's thread (large ones, and those behind them), in order.
    lane: Arc<Lane>,
}

enum State<W: RemoteWorker> {
    /// A child is serving.
    Up(Arc<Conn<W>>),
    /// The child died; calls wait here for the next one.
    Respawning(Vec<Queued<W>>),
    /// The restart limit ran out (the message says why).
    Dead(String),
    Stopped,
}

struct Queued<W: RemoteWorker> {
    id: u64,
    payload: Vec<u8>,
    completer: Reply<W::Response>,
}

#[derive(Default)]
struct Timers {
    /// `(deadline, call id, timeout)`, earliest first.
    heap: BinaryHeap<Reverse<(Instant, u64, Duration)>>,
    stop: bool,
}

/// A frame for the child, queued for the connection's writer thread.
enum Outgoing {
    Frame(Kind, u64, Vec<u8>),
    /// Flush and end the writer thread.
    Close,
}

/// One connected child.
struct Conn<W: RemoteWorker> {
    pid: u32,
    /// The socket's write half: the writer thread's, and a caller's when the child is idle.
    io: Mutex<FrameWriter<UnixStream>>,
    /// Frames for the writer thread: sending never blocks the caller, even when the child
    /// is busy and its socket buffer is full.
    outbox: crossbeam_channel::Sender<Outgoing>,
    /// The writer thread, joined once the child is gone.
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Taken by the reader thread when it reaps the child; until then, kills go through here.
    child: Mutex<Option<Child>>,
    calls: Mutex<Calls<W>>,
    /// Set by `stop()`: the child was asked to exit, its end is not a loss.
    stopping: AtomicBool,
    /// Why we killed the child, if we did.
    killed: Mutex<Option<String>>,
    /// The pool's limits, as this child reaches them.
    host: Arc<Host>,
}

impl<W: RemoteWorker> Replier for Conn<W> {
    fn reply(&self, lease: u64, payload: Vec<u8>) {
        self.enqueue(Outgoing::Frame(Kind::LimitReply, lease, payload));
    }
}

struct Calls<W: RemoteWorker> {
    open: bool,
    map: HashMap<u64, Reply<W::Response>>,
}

impl<W: RemoteWorker> Conn<W> {
    /// Registers the call and sends it; gives it back if the connection is closed.
    ///
    /// A call to an idle child (no call in flight: it is waiting to read) is written at
    /// once, saving the writer thread's wake-up on a round trip. Any other goes through the
    /// writer thread, since a busy child reads nothing and the write could block.
    fn send(
        &self,
        id: u64,
        payload: Vec<u8>,
        completer: Reply<W::Response>,
    ) -> Result<(), (Vec<u8>, Reply<W::Response>)> {
        let idle = {
            let mut calls = lock(&self.calls);
            if !calls.open {
                return Err((payload, completer));
            }
            let idle = calls.map.is_empty();
            calls.map.insert(id, completer);
            idle
        };
        if idle
            && self.outbox.is_empty()
            && let Ok(mut io) = self.io.try_lock()
        {
            if let Err(e) = io.write(Kind::Call, id, &payload).and_then(|()| io.flush()) {
                drop(io);
                // The reader sees the channel close and fails this call with the others.
                self.kill(format!("writing to the worker process failed: {e}"));
            }
            return Ok(());
        }
        self.enqueue(Outgoing::Frame(Kind::Call, id, payload));
        Ok(())
    }

    /// Queues a frame for the writer thread. If the thread is gone, the connection is
    /// ending: its reader fails what was in flight.
    fn enqueue(&self, frame: Outgoing) {
        let _ = self.outbox.send(frame);
    }

    /// The writer thread: writes queued frames, as many as are waiting per flush, until
    /// `Close` or a failed write (which kills the child: its reader then fails the calls).
    fn write_loop(&self, outbox: &crossbeam_channel::Receiver<Outgoing>) {
        while let Ok(first) = outbox.recv() {
            let mut writer = lock(&self.io);
            let mut next = Some(first);
            while let Some(frame) = next.take() {
                let written = match frame {
                    Outgoing::Frame(kind, id, payload) => writer.write(kind, id, &payload),
                    Outgoing::Close => {
                        let _ = writer.flush();
                        return;
                    }
                };
                if let Err(e) = written {
                    drop(writer);
                    return self.kill(format!("writing to the worker process failed: {e}"));
                }
                next = outbox.try_recv().ok();
            }
            if let Err(e) = writer.flush() {
                drop(writer);
                return self.kill(format!("writing to the worker process failed: {e}"));
            }
        }
    }

    /// Ends the writer thread once the child is gone (its writes then fail at once).
    fn close_writer(&self) {
        self.enqueue(Outgoing::Close);
        if let Some(h) = lock(&self.writer).take() {
            let _ = h.join();
        }
    }

    fn kill(&self, why: String) {
        lock(&self.killed).get_or_insert(why);
        if let Some(child) = lock(&self.child).as_mut() {
            let _ = child.kill();
        }
    }

    /// Asks the child to finish its calls and exit.
    fn shutdown(&self) {
        self.stopping.store(true, Ordering::Release);
        let queued = self
            .outbox
            .send(Outgoing::Frame(Kind::Shutdown, 0, Vec::new()));
        if queued.is_err()
            && let Some(child) = lock(&self.child).as_mut()
        {
            let _ = child.kill();
        }
    }
}

impl<W: RemoteWorker> ProcessWorker<W> {
    /// Starts a child serving `W`, built from `args`, with the default [`ProcessConfig`].
    ///
    /// # Errors
    ///
    /// [`Error::Method`] with the constructor's own error (typed, as in every mode);
    /// [`Error::Config`] if `W` is not registered in this binary; [`Error::Init`] if the
    /// constructor panicked or the child could not be started.
    pub fn spawn(args: W::Args) -> Result<Self, Error<W::InitError>> {
        Self::with_config(args, ProcessConfig::default())
    }

    /// As [`spawn`](ProcessWorker::spawn), supervised as `config` says.
    ///
    /// ```
    /// # use concurry::{ProcessConfig, ProcessWorker, RemoteWorker};
    /// # struct Nop;
    /// # impl RemoteWorker for Nop {
    /// #     const NAME: &'static str = "docs::with_config::Nop";
    /// #     type Args = (); type Request = (); type Response = (); type InitError = String;
    /// #     fn construct((): ()) -> Result<Self, String> { Ok(Nop) }
    /// #     fn dispatch(&mut self, (): ()) {}
    /// # }
    /// # concurry::register_remote!(Nop);
    /// let w = ProcessWorker::<Nop>::with_config((), ProcessConfig::default().max_restarts(1)).unwrap();
    /// w.call(()).result().unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// As [`spawn`](ProcessWorker::spawn).
    pub fn with_config(args: W::Args, config: ProcessConfig) -> Result<Self, Error<W::InitError>> {
        check_registered::<W>().map_err(Error::widen)?;
        let args = encode(&args, "constructor arguments").map_err(|e| Error::Init {
            message: e.to_string(),
        })?;
        let sup = Arc::new(Supervisor::<W> {
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
            lane: Arc::default(),
        });
        let spawned = match spawn(W::NAME, &sup.args, &sup.config, &|| false) {
            Ok(s) => s,
            Err(SpawnError::Init(message)) => return Err(Error::Init { message }),
            Err(SpawnError::Constructor { error, .. }) => {
                return Err(match decode::<W::InitError>(&error, "constructor error") {
                    Ok(e) => Error::Method(e),
                    Err(e) => Error::Transport(e),
                });
            }
            Err(SpawnError::Other(message)) => return Err(Error::Init { message }),
            Err(SpawnError::Stopped) => return Err(Error::Stopped),
        };
        let conn = sup.connect(spawned);
        *lock(&sup.state) = State::Up(conn);
        let watched = sup.clone();
        let watchdog = std::thread::Builder::new()
            .name(format!("concurry-watchdog-{}", W::NAME))
            .spawn(move || watched.watchdog());
        match watchdog {
            Ok(h) => *lock(&sup.watchdog) = Some(h),
            Err(e) => {
                let _ = sup.stop();
                return Err(Error::Init {
                    message: format!("could not start the watchdog thread: {e}"),
                });
            }
        }
        Ok(ProcessWorker {
            handle: Arc::new(Handle { sup }),
        })
    }

    /// Sends one call; its promise resolves with the response (or why there is none).
    pub fn call(&self, request: W::Request) -> Promise<W::Response> {
        self.submit(request, None)
    }

    /// Sends one call with a hard timeout: if no response came within `timeout` (counted from
    /// now, so the encoding of large arguments counts), the call
    /// fails with [`Error::Timeout`], the child is killed (other calls in flight on it fail
    /// with [`Error::WorkerLost`]) and respawned.
    ///
    /// ```
    /// # use concurry::{ProcessWorker, RemoteWorker};
    /// # use std::time::Duration;
    /// # struct Nop;
    /// # impl RemoteWorker for Nop {
    /// #     const NAME: &'static str = "docs::call_timeout::Nop";
    /// #     type Args = (); type Request = (); type Response = (); type InitError = String;
    /// #     fn construct((): ()) -> Result<Self, String> { Ok(Nop) }
    /// #     fn dispatch(&mut self, (): ()) {}
    /// # }
    /// # concurry::register_remote!(Nop);
    /// let w = ProcessWorker::<Nop>::spawn(()).unwrap();
    /// w.call_timeout((), Duration::from_secs(60)).result().unwrap();
    /// ```
    pub fn call_timeout(&self, request: W::Request, timeout: Duration) -> Promise<W::Response> {
        self.submit(request, Some(timeout))
    }

    fn submit(&self, request: W::Request, timeout: Option<Duration>) -> Promise<W::Response> {
        let (promise, completer) = Promise::pending();
        let reply = Reply::new(move |r| {
            completer.complete(r);
        });
        let max = self.max_message_size();
        let lane = &self.handle.sup.lane;
        match encode_small(&request, max) {
            Some(Ok(payload)) if !lane.busy() => self.send_encoded(payload, timeout, reply),
            Some(Ok(payload)) => {
                // Behind a large call still encoding: keep the order.
                let worker = self.clone();
                lane.run(move || worker.send_encoded(payload, timeout, reply));
            }
            Some(Err(e)) => reply.complete(Err(e)),
            None => {
                let worker = self.clone();
                let fail: fn(Reply<W::Response>, Error) = |reply, e| reply.complete(Err(e));
                encode_in_lane(
                    lane,
                    request,
                    max,
                    timeout,
                    reply,
                    fail,
                    move |reply, payload, left| {
                        worker.send_encoded(payload, left, reply);
                    },
                );
            }
        }
        promise
    }

    /// Sends a request already encoded with [`encode_request`] (a retried call sends the
    /// same bytes again); `reply` runs once with the outcome, on whichever thread has it.
    pub(crate) fn send_encoded(
        &self,
        payload: Vec<u8>,
        timeout: Option<Duration>,
        reply: Reply<W::Response>,
    ) {
        let sup = &self.handle.sup;
        let id = sup.next_id.fetch_add(1, Ordering::Relaxed);
        if let Some(t) = timeout {
            sup.add_timer(id, t);
        }
        sup.submit(id, payload, reply);
    }

    /// The largest request or reply on the channel, in bytes.
    pub(crate) fn max_message_size(&self) -> usize {
        self.handle.sup.config.max_message_size
    }

    /// The child's process id, while one is serving.
    pub fn pid(&self) -> Option<u32> {
        match &*lock(&self.handle.sup.state) {
            State::Up(conn) => Some(conn.pid),
            _ => None,
        }
    }

    /// How many times the child was respawned.
    pub fn restarts(&self) -> u64 {
        self.handle.sup.restarts.load(Ordering::Relaxed)
    }

    /// Stops the worker: new calls fail with [`Error::Stopped`]; the child finishes the calls
    /// it has and exits, and is reaped (no zombie). Past the config's `stop_timeout` the child
    /// is killed, its calls fail with [`Error::Stopped`], and this returns [`Error::Timeout`].
    /// Calling it again is a no-op.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] if the child had to be killed.
    pub fn stop(&self) -> Result<(), Error> {
        self.handle.sup.stop()
    }
}

/// What a call's outcome is handed to: the promise's completer, or a caller's own mapping
/// of the response (a pool's typed method promise).
pub(crate) struct Reply<R>(Box<dyn FnOnce(Result<R, Error>) + Send>);

impl<R> Reply<R> {
    pub(crate) fn new(f: impl FnOnce(Result<R, Error>) + Send + 'static) -> Self {
        Reply(Box::new(f))
    }

    pub(crate) fn complete(self, outcome: Result<R, Error>) {
        (self.0)(outcome);
    }
}

/// A request's bytes for the channel: [`Error::Transport`] if it does not encode or would
/// not fit in one frame of at most `max` bytes.
pub(crate) fn encode_request<T: serde::Serialize + ?Sized>(
    request: &T,
    max: usize,
) -> Result<Vec<u8>, Error> {
    let p = encode(request, "request").map_err(Error::Transport)?;
    check_size(p.len(), max).map_err(Error::Transport)?;
    Ok(p)
}

/// Requests whose encoding is larger than this are encoded off the caller's thread.
const INLINE_ENCODE: usize = 64 << 10;

/// A request encoded on the caller's thread (cheap: at most [`INLINE_ENCODE`] bytes of
/// work), or `None` if it is larger: then [`encode_in_lane`] does it.
pub(crate) fn encode_small<T: serde::Serialize + ?Sized>(
    request: &T,
    max: usize,
) -> Option<Result<Vec<u8>, Error>> {
    let p = match encode_capped(request, "request", INLINE_ENCODE)? {
        Ok(p) => p,
        Err(e) => return Some(Err(Error::Transport(e))),
    };
    Some(
        check_size(p.len(), max)
            .map_err(Error::Transport)
            .map(|()| p),
    )
}

/// The calls of one worker (or pool) that leave the caller's thread, kept in the order each
/// thread made them: while a thread's large request is being encoded off its thread, the
/// calls that thread makes after it queue behind it, so a stateful worker still sees
/// `put(big)` before the `get()` that followed it. Other threads' calls do not wait. Each
/// thread's queue is drained on a blocking thread of the library's runtime (a job may wait,
/// e.g. for a bounded pool's room, which a runtime thread must not).
#[derive(Default)]
pub(crate) struct Lane {
    /// The threads with calls queued or running, each with the calls still to run.
    queues: Mutex<HashMap<std::thread::ThreadId, std::collections::VecDeque<Job>>>,
}

type Job = Box<dyn FnOnce() + Send>;

impl Lane {
    /// True if the calling thread has calls queued or running here: its next call must
    /// queue behind them.
    pub(crate) fn busy(&self) -> bool {
        let queues = lock(&self.queues);
        !queues.is_empty() && queues.contains_key(&std::thread::current().id())
    }

    /// Runs `job` off the caller's thread, after every job the calling thread queued before.
    pub(crate) fn run(self: &Arc<Self>, job: impl FnOnce() + Send + 'static) {
        use std::collections::hash_map::Entry;
        let thread = std::thread::current().id();
        let mut queues = lock(&self.queues);
        match queues.entry(thread) {
            Entry::Occupied(mut queue) => queue.get_mut().push_back(Box::new(job)),
            Entry::Vacant(slot) => {
                slot.insert(std::collections::VecDeque::from([Box::new(job) as Job]));
                drop(queues);
                let lane = self.clone();
                drop(crate::runtime::runtime().spawn_blocking(move || lane.drain(thread)));
            }
        }
    }

    /// Runs `thread`'s jobs in order until its queue is empty, then forgets the thread.
    fn drain(&self, thread: std::thread::ThreadId) {
        loop {
            let job = {
                let mut queues = lock(&self.queues);
                let Some(queue) = queues.get_mut(&thread) else {
                    return;
                };
                match queue.pop_front() {
                    Some(job) => job,
                    None => {
                        queues.remove(&thread);
                        return;
                    }
                }
            };
            job();
        }
    }
}

/// Encodes a large request in `lane` (off the caller's thread, in submission order), then
/// hands `then` the call's `target` (what resolves it), the bytes and what is left of
/// `timeout`. If the deadline passes first, `fail` resolves `target` with
/// [`Error::Timeout`] at once (the encoding's result is then dropped); any other failure
/// goes to `fail` too. Exactly one of the two runs.
pub(crate) fn encode_in_lane<T, R>(
    lane: &Arc<Lane>,
    request: T,
    max: usize,
    timeout: Option<Duration>,
    target: R,
    fail: fn(R, Error),
    then: impl FnOnce(R, Vec<u8>, Option<Duration>) + Send + 'static,
) where
    T: serde::Serialize + Send + 'static,
    R: Send + 'static,
{
    let started = Instant::now();
    let slot = Arc::new(Mutex::new(Some(target)));
    let timer = timeout.map(|t| {
        let slot = slot.clone();
        crate::runtime::runtime().spawn(async move {
            tokio::time::sleep(t).await;
            let target = lock(&slot).take();
            if let Some(target) = target {
                fail(target, Error::Timeout);
            }
        })
    });
    lane.run(move || {
        let encoded = encode_request(&request, max);
        let Some(target) = lock(&slot).take() else {
            return; // timed out meanwhile
        };
        if let Some(timer) = timer {
            timer.abort();
        }
        match encoded {
            Err(e) => fail(target, e),
            Ok(payload) => {
                let left = timeout.map(|t| t.saturating_sub(started.elapsed()));
                if left == Some(Duration::ZERO) {
                    fail(target, Error::Timeout);
                } else {
                    then(target, payload, left);
                }
            }
        }
    });
}

/// Why a reader stopped reading its child's channel.
enum Ended {
    /// The child went away (or gave up): its calls in flight are lost.
    Lost(String),
    /// The child sent something that is not this protocol: its calls in flight get the
    /// typed error.
    Garbled(WireError),
}

/// What the child's fault means for the call.
pub(crate) fn fault_error(fault: Fault) -> Error {
    match fault {
        Fault::Panicked { message } => Error::Panicked { message },
        Fault::Protocol { message } => Error::Transport(WireError::Peer { message }),
        Fault::TooLarge { len, max } => Error::Transport(WireError::TooLarge {
            len,
            max: usize::try_from(max).unwrap_or(usize::MAX),
        }),
        other => Error::WorkerLost {
            message: other.to_string(),
        },
    }
}

fn check_registered<W: RemoteWorker>() -> Result<(), Error> {
    let found = entries().filter(|e| e.name == W::NAME).count();
    if lookup(W::NAME).is_none() {
        return Err(Error::Config(ConfigError::new(
            "mode",
            "process",
            format!(
                "`{}` is not registered for process mode; mark it `#[worker(remote)]` \
                 (or add `concurry::register_remote!(..)` next to a hand-written `RemoteWorker`)",
                W::NAME
            ),
        )));
    }
    if found > 1 {
        return Err(Error::Config(ConfigError::new(
            "mode",
            "process",
            format!(
                "{found} remote worker types are registered as `{}`; give each a unique `NAME`",
                W::NAME
            ),
        )));
    }
    Ok(())
}

impl<W: RemoteWorker> Supervisor<W> {
    fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    /// Wraps a started child and starts its reader thread.
    fn connect(self: &Arc<Self>, spawned: Spawned) -> Arc<Conn<W>> {
        let Spawned {
            child,
            pid,
            mut reader,
            mut writer,
        } = spawned;
        reader.set_max(self.config.max_message_size);
        writer.set_max(self.config.max_message_size);
        let (outbox, outgoing) = crossbeam_channel::unbounded();
        let conn = Arc::new(Conn {
            pid,
            io: Mutex::new(writer),
            outbox,
            writer: Mutex::new(None),
            child: Mutex::new(Some(child)),
            calls: Mutex::new(Calls {
                open: true,
                map: HashMap::new(),
            }),
            stopping: AtomicBool::new(false),
            killed: Mutex::new(None),
            host: Host::new(self.config.limits.as_ref()),
        });
        *lock(&self.readers) += 1;
        let c = conn.clone();
        let started = std::thread::Builder::new()
            .name(format!("concurry-proc-{pid}-w"))
            .spawn(move || c.write_loop(&outgoing))
            .and_then(|w| {
                *lock(&conn.writer) = Some(w);
                let (sup, c) = (self.clone(), conn.clone());
                std::thread::Builder::new()
                    .name(format!("concurry-proc-{pid}"))
                    .spawn(move || {
                        READER_OF.with(|r| r.set(Arc::as_ptr(&sup) as usize));
                        sup.read_loop(&c, reader);
                        sup.reader_done();
                    })
            });
        let started = started.map(|reader| {
            let mut threads = lock(&self.reader_threads);
            threads.retain(|t| !t.is_finished());
            threads.push(reader);
        });
        if let Err(e) = started {
            // No reader: the connection is unusable. Kill and reap the child here.
            let mut calls = lock(&conn.calls);
            calls.open = false;
            drop(calls);
            if let Some(child) = lock(&conn.child).take() {
                abandon(child);
            }
            conn.close_writer();
            *lock(&conn.killed) = Some(format!("could not start a reader thread: {e}"));
            self.reader_done();
        }
        conn
    }

    fn reader_done(&self) {
        let mut n = lock(&self.readers);
        *n -= 1;
        self.readers_done.notify_all();
    }

    fn submit(&self, id: u64, mut payload: Vec<u8>, mut completer: Reply<W::Response>) {
        loop {
            let mut st = lock(&self.state);
            match &mut *st {
                State::Up(conn) => {
                    let conn = conn.clone();
                    drop(st);
                    match conn.send(id, payload, completer) {
                        Ok(()) => return,
                        // The connection closed under us; the state has moved on already.
                        Err(back) => (payload, completer) = back,
                    }
                }
                State::Respawning(queue) => {
                    queue.push(Queued {
                        id,
                        payload,
                        completer,
                    });
                    return;
                }
                State::Dead(message) => {
                    let message = message.clone();
                    drop(st);
                    completer.complete(Err(Error::WorkerLost { message }));
                    return;
                }
                State::Stopped => {
                    drop(st);
                    completer.complete(Err(Error::Stopped));
                    return;
                }
            }
        }
    }

    /// Resolves replies until the channel ends; then reaps the child, fails what was in
    /// flight and, unless stopping, respawns.
    fn read_loop(
        self: &Arc<Self>,
        conn: &Arc<Conn<W>>,
        mut reader: FrameReader<BufReader<UnixStream>>,
    ) {
        let ended = loop {
            let env = match reader.read_stall_bounded(self.config.stall_timeout) {
                Ok(Some(env)) => env,
                Ok(None) => break Ended::Lost("it closed the channel".to_string()),
                Err(e) if e.is_disconnect() => {
                    break Ended::Lost(format!("the channel broke: {e}"));
                }
                Err(e) => break Ended::Garbled(e),
            };
            match env.kind {
                Kind::Reply => {
                    let completer = lock(&conn.calls).map.remove(&env.id);
                    let reply = decode::<Result<W::Response, Fault>>(&env.payload, "reply");
                    let reply = match reply {
                        Ok(r) => r,
                        Err(e) => {
                            // Calls from now on go to the next child, then this one fails.
                            self.detach(conn);
                            if let Some(c) = completer {
                                c.complete(Err(Error::Transport(e.duplicate())));
                            }
                            break Ended::Garbled(e);
                        }
                    };
                    if let Some(c) = completer {
                        self.consecutive.store(0, Ordering::Relaxed);
                        c.complete(reply.map_err(fault_error));
                    }
                }
                Kind::LimitAcquire | Kind::LimitUpdate | Kind::LimitRelease | Kind::LimitStats => {
                    let out: Arc<dyn Replier> = conn.clone();
                    if let Err(e) = conn.host.on_message(env, out) {
                        break Ended::Garbled(e);
                    }
                }
                Kind::Fault => {
                    break match decode::<Fault>(&env.payload, "fault") {
                        Ok(f) => Ended::Lost(format!("it gave up: {f}")),
                        Err(e) => Ended::Garbled(e),
                    };
                }
                other => {
                    break Ended::Garbled(WireError::Payload {
                        what: "message kind",
                        message: format!("a worker process does not send `{other:?}` messages"),
                    });
                }
            }
        };
        self.finish(conn, ended);
    }

    /// Sends calls submitted from now on to the respawn queue instead of `conn`.
    fn detach(&self, conn: &Arc<Conn<W>>) {
        let mut st = lock(&self.state);
        if matches!(&*st, State::Up(c) if Arc::ptr_eq(c, conn)) {
            *st = State::Respawning(Vec::new());
        }
    }

    fn finish(self: &Arc<Self>, conn: &Arc<Conn<W>>, ended: Ended) {
        let stopping = conn.stopping.load(Ordering::Acquire);
        // Calls submitted from now on queue for the next child (or fail if stopped).
        if !stopping {
            self.detach(conn);
        }
        conn.host.close();
        let in_flight = {
            let mut calls = lock(&conn.calls);
            calls.open = false;
            std::mem::take(&mut calls.map)
        };
        let child = lock(&conn.child).take();
        let status = child.and_then(|c| {
            if stopping {
                reap(c, self.config.stop_timeout)
            } else {
                abandon(c)
            }
        });
        // The child is gone, so a write still blocked on its socket fails now.
        conn.close_writer();
        // A kill of ours (a timeout, a failed write) explains the end better than what the
        // reader saw afterwards.
        let (why, garbled) = match (lock(&conn.killed).take(), ended) {
            (Some(killed), _) => (killed, None),
            (None, Ended::Lost(why)) => (why, None),
            (None, Ended::Garbled(e)) => (format!("protocol error on the channel: {e}"), Some(e)),
        };
        let status = status.map_or_else(|| "status unknown".to_string(), |s| s.to_string());
        let message = format!("worker process {} ended ({status}): {why}", conn.pid);
        for (_, c) in in_flight {
            c.complete(Err(match &garbled {
                _ if stopping => Error::Stopped,
                Some(e) => Error::Transport(e.duplicate()),
                None => Error::WorkerLost {
                    message: message.clone(),
                },
            }));
        }
        if !stopping && !self.is_stopped() {
            tracing::warn!(worker = W::NAME, "{message}; respawning");
            self.respawn(message);
        }
    }

    /// Starts a new child after a backoff; calls queued meanwhile are sent to it.
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
            match spawn(W::NAME, &self.args, &self.config, &|| self.is_stopped()) {
                Ok(spawned) => {
                    self.restarts.fetch_add(1, Ordering::Relaxed);
                    let conn = self.connect(spawned);
                    let mut st = lock(&self.state);
                    match std::mem::replace(&mut *st, State::Up(conn.clone())) {
                        State::Respawning(queue) => {
                            drop(st);
                            for q in queue {
                                if let Err((_, c)) = conn.send(q.id, q.payload, q.completer) {
                                    c.complete(Err(Error::WorkerLost {
                                        message: "the respawned worker process died at once".into(),
                                    }));
                                }
                            }
                        }
                        other => {
                            // Stopped (or dead) meanwhile: the new child is not wanted.
                            *st = other;
                            drop(st);
                            conn.shutdown();
                        }
                    }
                    return;
                }
                Err(SpawnError::Stopped) => return,
                Err(SpawnError::Init(m) | SpawnError::Constructor { message: m, .. }) => {
                    // The constructor fails every time: restarting would only spin.
                    return self.set_dead(format!("the worker could not be re-created: {m}"));
                }
                Err(SpawnError::Other(m)) => last = m,
            }
        }
    }

    fn set_dead(&self, message: String) {
        let mut st = lock(&self.state);
        if let State::Respawning(queue) = std::mem::replace(&mut *st, State::Dead(message.clone()))
        {
            drop(st);
            for q in queue {
                q.completer.complete(Err(Error::WorkerLost {
                    message: message.clone(),
                }));
            }
        } else if matches!(&*st, State::Dead(_)) {
            // Stopped meanwhile: keep it stopped.
        }
        tracing::error!(worker = W::NAME, "{message}");
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

    /// The watchdog thread: fails calls past their deadline and kills their child.
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
                    // Calls after this one's failure go to the next child.
                    self.detach(&conn);
                    c.complete(Err(Error::Timeout));
                    conn.kill(format!(
                        "killed because call {id} outlived its {timeout:?} timeout"
                    ));
                }
            }
            State::Respawning(queue) => {
                if let Some(i) = queue.iter().position(|q| q.id == id) {
                    let q = queue.swap_remove(i);
                    drop(st);
                    q.completer.complete(Err(Error::Timeout));
                }
            }
            State::Dead(_) | State::Stopped => {}
        }
    }

    fn stop(&self) -> Result<(), Error> {
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
                    q.completer.complete(Err(Error::Stopped));
                }
                None
            }
            State::Dead(_) | State::Stopped => None,
        };
        let mut timed_out = false;
        // Stopped from a promise callback on one of our own reader threads: that reader ends
        // (and reaps its child) once this returns, so do not wait for it.
        let own = usize::from(READER_OF.with(|r| r.get()) == std::ptr::from_ref(self) as usize);
        if !self.wait_readers(self.config.stop_timeout, own) {
            timed_out = true;
            if let Some(conn) = &conn {
                conn.kill("killed because `stop_timeout` ran out".into());
            }
            // Killed children close their channels at once; their readers reap them.
            self.wait_readers(Duration::from_secs(3600), own);
        }
        // Every reader has reaped its child; join the threads too, so none outlives `stop()`.
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

    /// Waits until every reader thread but `own` has reaped its child; false on timeout.
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
