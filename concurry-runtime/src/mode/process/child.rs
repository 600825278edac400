//! The child side: the hook that enters the child role before `main`, and the serve loop.

use std::collections::{HashMap, VecDeque};
use std::io::{BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use super::env;
use crate::limit::hosted::HostedLimits;
use crate::remote::lookup;
use crate::remote::serve::{Cancels, Channel, Next, Outcome, serve};
use crate::sync::os::{Arc, Condvar, Mutex, MutexGuard, OnceLock, lock};
use crate::wire::{
    DEFAULT_MAX_FRAME, Envelope, FrameReader, FrameWriter, Hello, Kind, WireError, encode,
};

/// Exit codes of a child (seen by the parent when the child fails to start).
pub(crate) mod exit {
    /// Served until told to stop, or the parent went away.
    pub(crate) const OK: i32 = 0;
    /// The environment or the socket was unusable.
    pub(crate) const SETUP: i32 = 70;
    /// The worker type is not in this binary's registry.
    pub(crate) const UNKNOWN_WORKER: i32 = 71;
    /// The parent broke the protocol.
    pub(crate) const PROTOCOL: i32 = 72;
    /// The constructor failed.
    pub(crate) const INIT: i32 = 73;
    /// The parent died (the child was re-parented).
    pub(crate) const ORPHANED: i32 = 74;
}

/// How often a child checks that its parent is alive.
const PARENT_CHECK: Duration = Duration::from_millis(100);

/// While more calls wait to be read, replies are batched into one write, but a reply is held
/// back at most this long (a flusher thread sends it if no later reply does)...
const HOLD: Duration = Duration::from_millis(1);

/// ... and at most this many replies are held: the next one sends them all.
const HOLD_REPLIES: usize = 64;

/// A call that has run this long (to twice this) gets the channel read while it runs, so
/// its `Cancel` reaches it; a quicker call is read around by the serve loop itself.
const WATCH_TICK: Duration = Duration::from_millis(2);

/// Exits the child once its parent is gone, even if a method is stuck and nobody reads the
/// channel (which would otherwise show the parent's death). Without `prctl` (unsafe), this
/// polls the parent pid: a re-parented process sees another one.
fn exit_with_parent() {
    let parent = std::os::unix::process::parent_id();
    let _ = std::thread::Builder::new()
        .name("concurry-parent-watch".into())
        .spawn(move || {
            loop {
                crate::sync::os::sleep(PARENT_CHECK);
                if std::os::unix::process::parent_id() != parent {
                    std::process::exit(exit::ORPHANED);
                }
            }
        });
}

/// Before `main`: if this process was started as a worker child, serve and exit.
///
/// Soundness: this runs from `.init_array`, after the C runtime and Rust's std are usable on
/// Linux (std needs no initialisation for what we use: environment, sockets, threads, panics
/// caught by `catch_unwind`), and before `main`. It reads the registry, which the linker
/// filled, and never returns in a child (`process::exit`). In any other process it only reads
/// one environment variable.
#[ctor::ctor]
fn enter_child_role() {
    if std::env::var_os(env::WORKER).is_some() {
        std::process::exit(child_main());
    }
}

/// The child's connection to its parent, shared by the serve loop and by limit requests
/// made from inside a method.
///
/// Whoever needs the next frame reads it, unless another thread is reading (then it waits
/// for that one to file its frame), and files what it reads: calls go to `backlog` for the
/// serve loop, limit replies to `replies` for the thread that waits for them, a `Cancel` to
/// the cancel table at once. So the serve loop reads the socket itself (no thread hop on the
/// call path), a method blocked on a limit reads on while it waits, and a watcher thread
/// reads while a call runs long (its cancel then reaches it; see [`Cancels`]).
#[derive(Debug)]
pub(crate) struct Link {
    reader: Mutex<FrameReader<BufReader<UnixStream>>>,
    /// Whether a thread is reading a frame now, and how many wait for it to file one.
    reading: Mutex<Reading>,
    /// Notified when the reading thread filed its frame and stopped reading.
    filed: Condvar,
    /// The calls served here, as `Cancel` messages reach them.
    cancels: Arc<Cancels>,
    writer: Mutex<Out>,
    /// Wakes the flusher thread when a reply is held back (see [`HOLD`]).
    held_changed: Condvar,
    backlog: Mutex<VecDeque<Envelope>>,
    pub(crate) replies: Mutex<HashMap<u64, Vec<u8>>>,
    /// Set once the channel ended: how.
    closed: Mutex<Option<Ended>>,
    /// The largest frame either way (the pool's `max_message_size`).
    max: usize,
}

#[derive(Debug, Default)]
struct Reading {
    busy: bool,
    waiting: usize,
}

/// How the channel ended.
#[derive(Debug, Clone)]
struct Ended {
    /// The parent closed it (or went away), rather than sending garbage.
    clean: bool,
    why: String,
}

/// The socket's write half, with the replies written but not yet sent.
#[derive(Debug)]
struct Out {
    frames: FrameWriter<UnixStream>,
    /// When the oldest held reply was written, if one is held.
    held_since: Option<Instant>,
    /// How many replies are held.
    held: usize,
    /// The flusher thread waits without a timeout: a held reply must wake it. (While calls
    /// keep coming, it checks every [`HOLD`] instead, so that replies need no wake-up.)
    flusher_parked: bool,
}

impl Out {
    fn flush(&mut self) -> Result<(), WireError> {
        self.held_since = None;
        self.held = 0;
        self.frames.flush()
    }
}

impl Link {
    pub(crate) fn new(stream: UnixStream, write_half: UnixStream, max: usize) -> Self {
        let mut frames = FrameWriter::new(write_half);
        frames.set_max(max);
        Link {
            max,
            reader: Mutex::new(FrameReader::with_max(
                BufReader::with_capacity(64 << 10, stream),
                max,
            )),
            writer: Mutex::new(Out {
                frames,
                held_since: None,
                held: 0,
                flusher_parked: false,
            }),
            held_changed: Condvar::new(),
            reading: Mutex::new(Reading::default()),
            filed: Condvar::new(),
            cancels: Arc::default(),
            backlog: Mutex::new(VecDeque::new()),
            replies: Mutex::new(HashMap::new()),
            closed: Mutex::new(None),
        }
    }

    pub(crate) fn send<T: serde::Serialize>(
        &self,
        kind: Kind,
        id: u64,
        value: &T,
        what: &'static str,
    ) -> Result<(), WireError> {
        let payload = encode(value, what)?;
        let mut w = lock(&self.writer);
        w.frames.write(kind, id, &payload)?;
        w.flush()
    }

    /// Writes a call's reply. It is sent at once when `more` is false (no other call is known
    /// to be waiting, or the call was slow); otherwise it may wait for the replies of the next calls, to share one
    /// write with them, but never longer than [`HOLD`] nor behind more than [`HOLD_REPLIES`].
    fn reply(&self, id: u64, payload: &[u8], more: bool) -> Result<(), WireError> {
        let mut w = lock(&self.writer);
        w.frames.write(Kind::Reply, id, payload)?;
        if !w.frames.has_pending() {
            // The writer sent its full buffer itself.
            w.held_since = None;
            w.held = 0;
            return Ok(());
        }
        let now = Instant::now();
        let due = w.held_since.is_some_and(|since| now >= since + HOLD);
        if !more || due || w.held + 1 >= HOLD_REPLIES {
            return w.flush();
        }
        w.held += 1;
        if w.held_since.is_none() {
            w.held_since = Some(now);
            if w.flusher_parked {
                w.flusher_parked = false;
                self.held_changed.notify_one();
            }
        }
        Ok(())
    }

    /// The flusher thread: sends held replies once they have waited [`HOLD`], so a reply
    /// never waits for a slow next call. Runs until the process exits.
    fn flush_held(&self) {
        let mut w = lock(&self.writer);
        // Checks in a row that found nothing held.
        let mut quiet = 0;
        loop {
            let wait = match w.held_since {
                // After a quiet while, wait to be woken.
                None if quiet >= 3 => {
                    w.flusher_parked = true;
                    None
                }
                None => {
                    quiet += 1;
                    Some(HOLD)
                }
                Some(since) => {
                    quiet = 0;
                    let now = Instant::now();
                    let due = since + HOLD;
                    if now >= due {
                        // A failed write shows in the serve loop's next write too.
                        let _ = w.flush();
                        continue;
                    }
                    Some(due - now)
                }
            };
            w = wait_on(&self.held_changed, w, wait);
        }
    }

    /// The next call or control message for the serve loop.
    fn next(&self) -> Next {
        self.read_until(|| {
            if let Some(env) = lock(&self.backlog).pop_front() {
                return Some(Next::Env(env));
            }
            lock(&self.closed).as_ref().map(|e| {
                if e.clean {
                    Next::Closed
                } else {
                    Next::Broken(e.why.clone())
                }
            })
        })
    }

    /// Waits for the reply to limit request `id` (reading the channel meanwhile if no other
    /// thread does); `None` if the channel ended first.
    pub(crate) fn wait_reply(&self, id: u64) -> Option<Vec<u8>> {
        self.read_until(|| match lock(&self.replies).remove(&id) {
            Some(r) => Some(Some(r)),
            None => lock(&self.closed).is_some().then_some(None),
        })
    }

    /// The watcher thread: while a call runs long, reads the channel (filing each frame as
    /// any reader does), so a `Cancel` for the call is filed while it runs. Ends with the
    /// channel.
    fn watch(&self) {
        loop {
            let Some(call) = self.cancels.wait_long_call(WATCH_TICK) else {
                return;
            };
            let closed = self.read_until(|| {
                let closed = lock(&self.closed).is_some();
                (closed || !self.cancels.is_running(call)).then_some(closed)
            });
            if closed {
                return;
            }
        }
    }

    /// Waits until `found` finds something: reads one frame at a time meanwhile if no other
    /// thread is reading, else waits for the one that is to file its frame.
    fn read_until<T>(&self, found: impl Fn() -> Option<T>) -> T {
        loop {
            if let Some(t) = found() {
                return t;
            }
            {
                let mut r = lock(&self.reading);
                if r.busy {
                    r.waiting += 1;
                    let mut r = wait_on(&self.filed, r, None);
                    r.waiting -= 1;
                    continue;
                }
                r.busy = true;
            }
            // Filed by the thread that read before us, between our look and now?
            let got = found();
            if got.is_none() {
                let mut reader = lock(&self.reader);
                self.read_one(&mut reader);
            }
            let mut r = lock(&self.reading);
            r.busy = false;
            if r.waiting > 0 {
                self.filed.notify_all();
            }
            drop(r);
            if let Some(t) = got {
                return t;
            }
        }
    }

    /// Reads one frame and files it: a limit reply for its waiter, a `Cancel` in the cancel
    /// table, anything else in the backlog; the channel's end in `closed`.
    fn read_one(&self, reader: &mut FrameReader<BufReader<UnixStream>>) {
        let end = |clean: bool, why: String| {
            lock(&self.closed).get_or_insert(Ended { clean, why });
        };
        match reader.read() {
            Ok(Some(env)) if env.kind == Kind::LimitReply => {
                lock(&self.replies).insert(env.id, env.payload);
            }
            Ok(Some(env)) if env.kind == Kind::Cancel => self.cancels.cancel(env.id),
            Ok(Some(env)) => lock(&self.backlog).push_back(env),
            Ok(None) => end(true, "the parent closed the channel".into()),
            Err(e) if e.is_disconnect() => end(true, e.to_string()),
            Err(e) => end(false, e.to_string()),
        }
    }

    /// True if nothing more is known to be waiting: time to flush replies.
    fn idle(&self) -> bool {
        lock(&self.backlog).is_empty()
            && self
                .reader
                .try_lock()
                .is_ok_and(|r| r.get_ref().buffer().is_empty())
    }
}

/// Waits on `cv` (at most `timeout`, if given), ignoring poisoning.
fn wait_on<'a, T>(
    cv: &Condvar,
    g: MutexGuard<'a, T>,
    timeout: Option<Duration>,
) -> MutexGuard<'a, T> {
    match timeout {
        Some(t) => cv
            .wait_timeout(g, t)
            .map_or_else(|p| p.into_inner().0, |(g, _)| g),
        None => cv
            .wait(g)
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    }
}

/// Connects to the parent's socket named `name` (see `parent::listen`).
#[cfg(target_os = "linux")]
fn connect(name: &str) -> std::io::Result<UnixStream> {
    use std::os::linux::net::SocketAddrExt;
    UnixStream::connect_addr(&std::os::unix::net::SocketAddr::from_abstract_name(
        name.as_bytes(),
    )?)
}

#[cfg(not(target_os = "linux"))]
fn connect(name: &str) -> std::io::Result<UnixStream> {
    UnixStream::connect(super::parent::socket_path(name))
}

/// Connects to a worker socket named `name` as a child would, from this process: tests use
/// it to prove the parent refuses a connection that is not its child's.
#[doc(hidden)]
pub fn connect_for_tests(name: &str) -> std::io::Result<UnixStream> {
    connect(name)
}

/// The child's socket, for [`write_raw_for_tests`] only.
static RAW: OnceLock<UnixStream> = OnceLock::new();

/// Writes `bytes` as they are onto this child's channel to its parent, bypassing the
/// framing: tests use it to prove the parent survives garbage. Fails outside a worker child.
#[doc(hidden)]
pub fn write_raw_for_tests(bytes: &[u8]) -> std::io::Result<()> {
    let mut s = RAW.get().ok_or(std::io::ErrorKind::NotConnected)?;
    s.write_all(bytes)?;
    s.flush()
}

/// Connects to the parent, says hello and serves the worker named in the environment.
fn child_main() -> i32 {
    let (Some(worker), Some(socket), Some(token)) = (
        std::env::var(env::WORKER).ok(),
        std::env::var(env::SOCKET).ok(),
        std::env::var(env::TOKEN)
            .ok()
            .and_then(|t| t.parse::<u64>().ok()),
    ) else {
        eprintln!(
            "concurry: {} is set but {} or {} is missing or invalid",
            env::WORKER,
            env::SOCKET,
            env::TOKEN
        );
        return exit::SETUP;
    };
    // Set by the parent from the pool's `max_message_size`.
    let max = std::env::var(env::MAX_MESSAGE)
        .ok()
        .and_then(|m| m.parse::<usize>().ok())
        .unwrap_or(DEFAULT_MAX_FRAME);
    let stream = match connect(&socket) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("concurry: worker child could not connect to its parent: {e}");
            return exit::SETUP;
        }
    };
    // The secret goes only to the process that started us (the one listening on the socket).
    let parent = std::os::unix::process::parent_id();
    if let Err(r) = super::peer::verify(&stream, parent, "the parent process") {
        eprintln!(
            "concurry: worker child will not talk to the owner of socket `{socket}`: {}",
            r.why
        );
        return exit::SETUP;
    }
    if let Ok(raw) = stream.try_clone() {
        let _ = RAW.set(raw);
    }
    let link = match stream.try_clone() {
        Ok(w) => Arc::new(Link::new(stream, w, max)),
        Err(e) => {
            eprintln!("concurry: worker child could not use its socket: {e}");
            return exit::SETUP;
        }
    };
    exit_with_parent();
    let hello = Hello {
        worker: worker.clone(),
        pid: std::process::id(),
        token,
        // 0 for a type this binary does not have: the parent hears why next.
        schema: lookup(&worker).map_or(0, |e| (e.schema)()),
    };
    if Link::send(&link, Kind::Hello, 0, &hello, "hello").is_err() {
        return exit::SETUP;
    }
    match lookup(&worker) {
        Some(entry) => match serve(entry, &link) {
            Outcome::Done => exit::OK,
            Outcome::Protocol => exit::PROTOCOL,
            Outcome::Init => exit::INIT,
            Outcome::Setup => exit::SETUP,
        },
        None => {
            link.refuse(format!(
                "worker type `{worker}` is not registered in this binary ({}); \
                 it needs `#[worker(remote)]` or `concurry::register_remote!`",
                std::env::current_exe()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            ));
            exit::UNKNOWN_WORKER
        }
    }
}

/// The serve loop's side of the link.
impl Channel for Arc<Link> {
    fn next(&self) -> Next {
        Link::next(self)
    }

    fn send(&self, kind: Kind, id: u64, payload: &[u8]) -> Result<(), WireError> {
        let mut w = lock(&self.writer);
        w.frames.write(kind, id, payload)?;
        w.flush()
    }

    fn reply(&self, id: u64, payload: &[u8], more: bool) -> Result<(), WireError> {
        Link::reply(self, id, payload, more)
    }

    fn more_waiting(&self) -> bool {
        !self.idle()
    }

    /// Calls follow: a flusher thread sends held replies, a watcher thread reads while a
    /// call runs long (so its `Cancel` reaches it).
    fn serving(&self) -> Result<(), String> {
        let flusher = Arc::clone(self);
        std::thread::Builder::new()
            .name("concurry-flush".into())
            .spawn(move || flusher.flush_held())
            .map(drop)
            .map_err(|e| format!("the worker process could not start its flusher thread: {e}"))?;
        let watcher = Arc::clone(self);
        std::thread::Builder::new()
            .name("concurry-watch".into())
            .spawn(move || watcher.watch())
            .map(drop)
            .map_err(|e| format!("the worker process could not start its watcher thread: {e}"))
    }

    fn cancels(&self) -> Option<Arc<Cancels>> {
        Some(self.cancels.clone())
    }

    /// The pool's limits, hosted by the parent over this link (asked for only once `Ready`
    /// is sent: during the handshake the parent expects nothing else).
    fn limits(&self) -> Option<HostedLimits> {
        Some(HostedLimits::new(Arc::clone(self) as _))
    }

    fn flush(&self) {
        let _ = lock(&self.writer).flush();
    }

    fn max(&self) -> usize {
        self.max
    }
}
