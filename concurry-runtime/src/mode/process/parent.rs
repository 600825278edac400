//! The parent side of one child: spawning the current executable in the worker role, the
//! handshake (`Hello`, `Init`, `Ready`), and reaping.
//!
//! Who may connect (the security model is in the process mode docs): each connection to the
//! worker socket is checked before a byte of it is read. The kernel's record of the connecting
//! process (`SO_PEERCRED`) must be the child we spawned, running as our user; then its `Hello`
//! must carry the secret we gave that child. Anything else is closed, logged (`warn`) and
//! counted; after [`MAX_REFUSED`] refusals the start fails.

use std::io::{BufReader, ErrorKind};
use std::os::unix::net::{UnixListener, UnixStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::peer::{self, Refusal};
use super::{ProcessConfig, env};
use crate::sync::os::{AtomicU64, Ordering};
use crate::wire::{Fault, FrameReader, FrameWriter, Hello, Kind, WireError, decode};

/// How often the parent looks for its child's connection while it starts.
const ACCEPT_POLL: Duration = Duration::from_millis(1);

/// A started child, connected and constructed.
#[derive(Debug)]
pub(crate) struct Spawned {
    pub(crate) child: Child,
    pub(crate) pid: u32,
    pub(crate) reader: FrameReader<BufReader<UnixStream>>,
    pub(crate) writer: FrameWriter<UnixStream>,
}

/// Why a child could not be started.
pub(crate) use crate::remote::PlaceError as SpawnError;

/// How many connections to a worker socket may be refused before the start gives up: enough
/// for a stray client or two, few enough that a flood of them cannot keep the parent busy.
pub(crate) const MAX_REFUSED: usize = 8;

/// Starts the current executable as a child serving `worker`, built from `args` (encoded).
/// `stopped` is polled while waiting, so `stop()` interrupts a slow start.
pub(crate) fn spawn(
    worker: &'static str,
    schema: u64,
    args: &[u8],
    config: &ProcessConfig,
    stopped: &dyn Fn() -> bool,
) -> Result<Spawned, SpawnError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let other = |what: &str, e: &dyn std::fmt::Display| SpawnError::Other(format!("{what}: {e}"));
    // Every local user can read an abstract socket's name (`/proc/net/unix`), so the name
    // holds nothing of the secret: its own random bits only keep others from predicting it
    // (and binding it first).
    let (secret, nonce) = random()
        .and_then(|s| random().map(|n| (s, n)))
        .map_err(|e| other("could not draw a secret from the OS random source", &e))?;
    let socket = format!(
        "concurry-{}-{}-{nonce:016x}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
    );
    let listener = listen(&socket)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .map_err(|e| other("could not open the worker socket", &e))?;
    let _unlisten = Unlisten(&socket);
    hooks::listening(worker, &socket);
    let exe =
        std::env::current_exe().map_err(|e| other("could not find the current executable", &e))?;
    let mut child = Command::new(&exe)
        .env(env::WORKER, worker)
        .env(env::SOCKET, &socket)
        .env(env::TOKEN, secret.to_string())
        .env(env::MAX_MESSAGE, config.max_message_size.to_string())
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| other(&format!("could not start {}", exe.display()), &e))?;
    let pid = child.id();
    let deadline = Instant::now() + config.start_timeout;
    let gate = Gate {
        worker,
        pid,
        secret,
        schema,
    };
    let mut poll = || {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(SpawnError::Other(format!(
                "worker process {pid} ended before connecting ({status}); \
                 is `{worker}` built into {}?",
                exe.display()
            )));
        }
        if stopped() {
            return Err(SpawnError::Stopped);
        }
        if Instant::now() >= deadline {
            return Err(SpawnError::Other(format!(
                "worker process {pid} did not connect within {:?}",
                config.start_timeout
            )));
        }
        Ok(())
    };
    match admit(&listener, &gate, deadline, &mut poll).and_then(|h| construct(h, args)) {
        Ok((reader, writer)) => Ok(Spawned {
            child,
            pid,
            reader,
            writer,
        }),
        Err(e) => {
            abandon(child);
            Err(e)
        }
    }
}

/// Who may connect to a worker socket: the child we spawned, running as our user, proving
/// the secret we gave it.
#[derive(Debug)]
struct Gate<'a> {
    worker: &'a str,
    pid: u32,
    secret: u64,
    /// The worker type's schema fingerprint in this build.
    schema: u64,
}

/// Accepts connections on `listener` until one passes `gate`; refuses (and logs) the others,
/// at most [`MAX_REFUSED`] of them. Between attempts, `poll` says whether to go on waiting.
fn admit(
    listener: &UnixListener,
    gate: &Gate<'_>,
    deadline: Instant,
    poll: &mut dyn FnMut() -> Result<(), SpawnError>,
) -> Result<Halves, SpawnError> {
    let mut refused = 0;
    let mut last = String::new();
    loop {
        match listener.accept() {
            Ok((stream, _)) => match gate.greet(stream, deadline) {
                // Our own child, built from another definition of the type: refusing it
                // again would not help.
                Ok((_, schema)) if schema != gate.schema => {
                    return Err(SpawnError::Schema(WireError::SchemaMismatch {
                        worker: gate.worker.to_string(),
                        local: gate.schema,
                        peer: schema,
                        peer_id: gate.pid,
                    }));
                }
                Ok((halves, _)) => return Ok(halves),
                Err(r) => {
                    refused += 1;
                    let (peer_pid, peer_uid) = r.who();
                    tracing::warn!(
                        worker = gate.worker,
                        worker_pid = gate.pid,
                        %peer_pid,
                        %peer_uid,
                        "concurry: refused a connection to the socket of worker process {} \
                         from pid {peer_pid}, uid {peer_uid}: {}",
                        gate.pid,
                        r.why
                    );
                    if refused >= MAX_REFUSED {
                        return Err(SpawnError::Other(format!(
                            "gave up starting worker process {}: {refused} connections to its \
                             socket were refused (the last because {}), and it did not connect \
                             first",
                            gate.pid, r.why
                        )));
                    }
                    last = r.why;
                    continue;
                }
            },
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(SpawnError::Other(format!(
                    "could not accept the worker's connection: {e}"
                )));
            }
        }
        if let Err(e) = poll() {
            return Err(match e {
                SpawnError::Other(m) if refused > 0 => SpawnError::Other(format!(
                    "{m}; {refused} connection(s) to its socket were refused meanwhile \
                     (the last because {last})"
                )),
                e => e,
            });
        }
        crate::sync::os::sleep(ACCEPT_POLL);
    }
}

/// Listens on the socket named `name`: in Linux's abstract namespace (nothing on disk to
/// clean up), elsewhere a file in the temporary directory, unlinked once the child connected.
#[cfg(target_os = "linux")]
pub(crate) fn listen(name: &str) -> std::io::Result<UnixListener> {
    use std::os::linux::net::SocketAddrExt;
    UnixListener::bind_addr(&std::os::unix::net::SocketAddr::from_abstract_name(
        name.as_bytes(),
    )?)
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn listen(name: &str) -> std::io::Result<UnixListener> {
    UnixListener::bind(socket_path(name))
}

/// Where a socket named `name` lives outside Linux.
#[cfg(not(target_os = "linux"))]
pub(crate) fn socket_path(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("{name}.sock"))
}

/// Removes what `listen` left on disk, if anything, when dropped.
struct Unlisten<'a>(&'a str);

impl Drop for Unlisten<'_> {
    fn drop(&mut self) {
        #[cfg(not(target_os = "linux"))]
        let _ = std::fs::remove_file(socket_path(self.0));
        #[cfg(target_os = "linux")]
        let _ = self.0;
    }
}

type Halves = (FrameReader<BufReader<UnixStream>>, FrameWriter<UnixStream>);

impl Gate<'_> {
    /// Checks who connected (before reading a byte), then their `Hello`.
    /// Returns the connection and the schema fingerprint the child's `Hello` carries.
    fn greet(&self, stream: UnixStream, deadline: Instant) -> Result<(Halves, u64), Refusal> {
        let peer = peer::verify(&stream, self.pid, "worker process")?;
        let refuse = |why: String| Refusal { peer, why };
        let io = |e: std::io::Error| refuse(format!("its socket failed: {e}"));
        // Only our child gets this far; its `Hello` may take until the start deadline.
        stream.set_nonblocking(false).map_err(io)?;
        let remaining = deadline
            .saturating_duration_since(Instant::now())
            .max(ACCEPT_POLL);
        stream.set_read_timeout(Some(remaining)).map_err(io)?;
        let write_half = stream.try_clone().map_err(io)?;
        let mut reader = FrameReader::new(BufReader::with_capacity(64 << 10, stream));
        let writer = FrameWriter::new(write_half);
        let hello = expect(&mut reader, Kind::Hello)
            .map_err(|u| refuse(format!("it sent no hello: {}", u.describe())))?;
        let hello: Hello = decode(&hello, "hello")
            .map_err(|e| refuse(format!("its hello was unreadable: {e}")))?;
        if hello.token != self.secret {
            return Err(refuse("it did not prove the worker's secret".into()));
        }
        if hello.worker != self.worker || hello.pid != self.pid {
            return Err(refuse(format!(
                "it says it is process {} serving `{}`, not process {} serving `{}`",
                hello.pid, hello.worker, self.pid, self.worker
            )));
        }
        Ok(((reader, writer), hello.schema))
    }
}

/// The rest of the handshake with an admitted child: its constructor's arguments, and its
/// answer.
fn construct((mut reader, mut writer): Halves, args: &[u8]) -> Result<Halves, SpawnError> {
    let fail =
        |e: WireError| SpawnError::Other(format!("handshake with the worker process failed: {e}"));
    writer.write(Kind::Init, 0, args).map_err(fail)?;
    writer.flush().map_err(fail)?;
    let ready = expect(&mut reader, Kind::Ready).map_err(fail_or_fault)?;
    match decode::<Result<(), Fault>>(&ready, "ready").map_err(fail)? {
        Ok(()) => {}
        Err(Fault::Init { message }) => return Err(SpawnError::Init(message)),
        Err(Fault::Constructor { message, error }) => {
            return Err(SpawnError::Constructor { message, error });
        }
        Err(f) => return Err(SpawnError::Other(f.to_string())),
    }
    reader
        .get_ref()
        .get_ref()
        .set_read_timeout(None)
        .map_err(|e| fail(e.into()))?;
    Ok((reader, writer))
}

/// What the child said instead of the expected message.
enum Unexpected {
    Wire(WireError),
    Fault(String),
}

impl Unexpected {
    fn describe(self) -> String {
        match self {
            Unexpected::Wire(e) => e.to_string(),
            Unexpected::Fault(m) => m,
        }
    }
}

fn fail_or_fault(u: Unexpected) -> SpawnError {
    match u {
        Unexpected::Wire(e) => {
            SpawnError::Other(format!("handshake with the worker process failed: {e}"))
        }
        Unexpected::Fault(m) => SpawnError::Other(m),
    }
}

fn expect(
    reader: &mut FrameReader<BufReader<UnixStream>>,
    kind: Kind,
) -> Result<Vec<u8>, Unexpected> {
    match reader.read() {
        Ok(Some(env)) if env.kind == kind => Ok(env.payload),
        Ok(Some(env)) if env.kind == Kind::Fault => Err(Unexpected::Fault(
            decode::<Fault>(&env.payload, "fault")
                .map_or_else(|e| e.to_string(), |f| f.to_string()),
        )),
        Ok(Some(env)) => Err(Unexpected::Fault(format!(
            "protocol error: expected `{kind:?}`, the worker process sent `{:?}`",
            env.kind
        ))),
        Ok(None) => Err(Unexpected::Wire(WireError::Io(
            ErrorKind::UnexpectedEof.into(),
        ))),
        Err(e) => Err(Unexpected::Wire(e)),
    }
}

/// Kills and reaps a child we give up on.
pub(crate) fn abandon(mut child: Child) -> Option<ExitStatus> {
    let _ = child.kill();
    child.wait().ok()
}

/// Reaps a child that is ending by itself; kills it if it is not gone within `grace`.
pub(crate) fn reap(mut child: Child, grace: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + grace;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => crate::sync::os::sleep(ACCEPT_POLL),
            _ => return abandon(child),
        }
    }
}

/// 64 bits from the OS random source.
fn random() -> Result<u64, getrandom::Error> {
    getrandom::u64()
}

/// Test support: code to run when `spawn` opens a worker socket, before the child starts.
pub(crate) mod hooks {
    use crate::sync::os::{Arc, Mutex, lock};

    type Hook = Arc<dyn Fn(&str) + Send + Sync>;

    static HOOKS: Mutex<Vec<(&'static str, Hook)>> = Mutex::new(Vec::new());

    /// Runs `hook` with the socket's name each time a child serving `worker` is started.
    pub(crate) fn add(worker: &'static str, hook: Hook) {
        lock(&HOOKS).push((worker, hook));
    }

    pub(super) fn listening(worker: &str, socket: &str) {
        let hooks: Vec<Hook> = lock(&HOOKS)
            .iter()
            .filter(|(w, _)| *w == worker)
            .map(|(_, h)| h.clone())
            .collect();
        for hook in hooks {
            hook(socket);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::os::{Arc, Mutex, OnceLock, lock};
    use crate::wire::encode;
    use std::io::Read;

    /// Bounds every wait, so a broken test fails instead of hanging.
    const HANG: Duration = Duration::from_secs(30);

    /// Collects the messages of the events logged while it is the thread's subscriber.
    #[derive(Clone, Default)]
    struct Logs(Arc<Mutex<Vec<String>>>);

    struct Message<'a>(&'a mut String);

    impl tracing::field::Visit for Message<'_> {
        fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
            self.0.push_str(&format!("{}={value:?} ", field.name()));
        }
    }

    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Logs {
        fn on_event(
            &self,
            event: &tracing::Event<'_>,
            _: tracing_subscriber::layer::Context<'_, S>,
        ) {
            let mut line = format!("{} ", event.metadata().level());
            event.record(&mut Message(&mut line));
            lock(&self.0).push(line);
        }
    }

    impl Logs {
        fn capture<T>(&self, f: impl FnOnce() -> T) -> T {
            use tracing_subscriber::layer::SubscriberExt;
            // With at most one dispatcher registered, `tracing` caches a callsite's interest
            // from the default of whichever thread reaches it first: a test without a
            // subscriber, running beside ours, would silence what we capture. A second,
            // lasting dispatcher makes it ask every dispatcher instead.
            static SECOND: OnceLock<tracing::Dispatch> = OnceLock::new();
            SECOND.get_or_init(|| tracing::Dispatch::new(tracing_subscriber::registry()));
            let subscriber = tracing_subscriber::registry().with(self.clone());
            tracing::subscriber::with_default(subscriber, f)
        }

        fn lines(&self) -> Vec<String> {
            lock(&self.0).clone()
        }
    }

    /// The gate of a pretend child `w` of pid `pid` with secret 7 and schema `schema`.
    fn gate_for(pid: u32, schema: u64) -> Gate<'static> {
        Gate {
            worker: "w",
            pid,
            secret: 7,
            schema,
        }
    }

    /// A worker socket on a fresh name, as `spawn` opens it.
    fn bind() -> (UnixListener, String) {
        let name = format!(
            "concurry-test-{}-{:016x}",
            std::process::id(),
            random().unwrap()
        );
        let listener = listen(&name).unwrap();
        listener.set_nonblocking(true).unwrap();
        (listener, name)
    }

    /// Connects to `name` from this process and says hello as a child would.
    fn say_hello(name: &str, worker: &str, token: u64) -> UnixStream {
        say_hello_as(name, worker, token, 0)
    }

    /// As [`say_hello`], from a build whose fingerprint of the type is `schema`.
    fn say_hello_as(name: &str, worker: &str, token: u64, schema: u64) -> UnixStream {
        let stream = super::super::child::connect_for_tests(name).unwrap();
        stream.set_read_timeout(Some(HANG)).unwrap();
        let hello = Hello {
            worker: worker.into(),
            pid: std::process::id(),
            token,
            schema,
        };
        let mut w = FrameWriter::new(stream.try_clone().unwrap());
        w.write(Kind::Hello, 0, &encode(&hello, "hello").unwrap())
            .unwrap();
        w.flush().unwrap();
        stream
    }

    /// Gives up past `HANG`, so a regression fails instead of hanging.
    fn bounded() -> impl FnMut() -> Result<(), SpawnError> {
        let give_up = Instant::now() + HANG;
        move || {
            if Instant::now() < give_up {
                Ok(())
            } else {
                Err(SpawnError::Other("the test's child did not connect".into()))
            }
        }
    }

    /// True once the parent closed its end of `s`: a read sees the end of the stream, or a
    /// reset where the parent closed it with our hello unread.
    fn closed_by_parent(mut s: &UnixStream) -> bool {
        let mut buf = [0u8; 64];
        match s.read(&mut buf) {
            Ok(n) => n == 0,
            Err(e) => e.kind() == ErrorKind::ConnectionReset,
        }
    }

    #[test]
    fn a_wrong_secret_from_the_right_process_and_user_is_refused_and_logged() {
        let (listener, name) = bind();
        // This process plays the child: the credentials check passes, only the secret differs.
        let gate = gate_for(std::process::id(), 0);
        let wrong = say_hello(&name, "w", 8);
        let right = say_hello(&name, "w", 7);
        let logs = Logs::default();
        let (_reader, mut writer) = logs
            .capture(|| admit(&listener, &gate, Instant::now() + HANG, &mut bounded()))
            .unwrap_or_else(|e| panic!("the child with the secret was not admitted: {e:?}"));
        // The admitted connection is the one that knew the secret.
        writer.write(Kind::Init, 0, b"args").unwrap();
        writer.flush().unwrap();
        let mut from_parent = FrameReader::new(BufReader::new(right));
        let init = from_parent.read().unwrap().expect("the parent's `Init`");
        assert_eq!(
            (init.kind, init.payload.as_slice()),
            (Kind::Init, &b"args"[..])
        );
        assert!(
            closed_by_parent(&wrong),
            "the wrong secret's connection is still open"
        );
        let lines = logs.lines();
        let me = std::process::id();
        assert!(
            lines.iter().any(|l| l.starts_with("WARN")
                && l.contains("did not prove the worker's secret")
                && l.contains(&format!("from pid {me}, uid"))),
            "no warning naming the refused peer in {lines:#?}"
        );
        assert_eq!(lines.len(), 1, "{lines:#?}");
    }

    /// The credentials check is Linux only.
    #[cfg(target_os = "linux")]
    #[test]
    fn another_process_is_refused_before_it_is_read_and_the_refusals_are_bounded() {
        let (listener, name) = bind();
        // Our connections come from this process, not from the (pretend) child.
        let gate = gate_for(std::process::id() + 1, 0);
        let foreign: Vec<UnixStream> = (0..=MAX_REFUSED)
            .map(|_| say_hello(&name, "w", 7))
            .collect();
        let logs = Logs::default();
        let err = logs.capture(|| admit(&listener, &gate, Instant::now() + HANG, &mut bounded()));
        let Err(SpawnError::Other(message)) = err else {
            panic!("expected the start to give up, got {err:?}");
        };
        assert!(
            message.contains(&format!(
                "{MAX_REFUSED} connections to its socket were refused"
            )) && message.contains(&format!("comes from process {}", std::process::id())),
            "{message}"
        );
        assert_eq!(logs.lines().len(), MAX_REFUSED, "{:#?}", logs.lines());
        // Even with the right secret: refused on its credentials alone.
        assert!(foreign[..MAX_REFUSED].iter().all(closed_by_parent));
        // The one past the bound was never accepted.
        assert!(
            listener.accept().is_ok(),
            "admit accepted more than {MAX_REFUSED}"
        );
    }

    /// The credentials check is Linux only.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_start_that_fails_later_says_what_was_refused_meanwhile() {
        let (listener, name) = bind();
        let gate = gate_for(std::process::id() + 1, 0);
        let _foreign = say_hello(&name, "w", 7);
        let mut polls = 0;
        let err = admit(&listener, &gate, Instant::now() + HANG, &mut || {
            polls += 1;
            Err(SpawnError::Other(
                "worker process 1 ended before connecting".into(),
            ))
        });
        let Err(SpawnError::Other(message)) = err else {
            panic!("expected the start to fail, got {err:?}");
        };
        assert_eq!(polls, 1);
        assert!(
            message.starts_with("worker process 1 ended before connecting; 1 connection(s)")
                && message.contains("not from worker process"),
            "{message}"
        );
    }

    #[test]
    fn a_child_built_from_another_definition_is_a_schema_mismatch_naming_both_sides() {
        let (listener, name) = bind();
        let gate = gate_for(std::process::id(), 0xaaaa);
        let _child = say_hello_as(&name, "w", 7, 0xbbbb);
        let err = admit(&listener, &gate, Instant::now() + HANG, &mut bounded());
        let Err(SpawnError::Schema(e)) = err else {
            panic!("expected a schema mismatch, got {err:?}");
        };
        let message = e.to_string();
        assert!(
            matches!(
                e,
                WireError::SchemaMismatch {
                    local: 0xaaaa,
                    peer: 0xbbbb,
                    ..
                }
            ) && message.contains("0x000000000000aaaa")
                && message.contains("0x000000000000bbbb")
                && message.contains("`w`"),
            "{message}"
        );
    }
}
