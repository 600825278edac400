//! The parent side of one child: spawning the current executable in the worker role, the
//! handshake (`Hello`, `Init`, `Ready`), and reaping.

use std::hash::{BuildHasher, Hasher};
use std::io::{BufReader, ErrorKind};
use std::os::unix::net::{UnixListener, UnixStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

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
#[derive(Debug)]
pub(crate) enum SpawnError {
    /// The worker's constructor panicked: restarting will not help.
    Init(String),
    /// The worker's constructor returned its error (`error`, encoded): nor will it here.
    Constructor { message: String, error: Vec<u8> },
    /// Anything else: the process, the socket, the handshake.
    Other(String),
    /// `stop()` was called while the child started.
    Stopped,
}

/// Starts the current executable as a child serving `worker`, built from `args` (encoded).
/// `stopped` is polled while waiting, so `stop()` interrupts a slow start.
pub(crate) fn spawn(
    worker: &'static str,
    args: &[u8],
    config: &ProcessConfig,
    stopped: &dyn Fn() -> bool,
) -> Result<Spawned, SpawnError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let other = |what: &str, e: &dyn std::fmt::Display| SpawnError::Other(format!("{what}: {e}"));
    let token = secret();
    let socket = format!(
        "concurry-{}-{}-{:08x}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        token >> 32
    );
    let listener = listen(&socket)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .map_err(|e| other("could not open the worker socket", &e))?;
    let _unlisten = Unlisten(&socket);
    let exe =
        std::env::current_exe().map_err(|e| other("could not find the current executable", &e))?;
    let mut child = Command::new(&exe)
        .env(env::WORKER, worker)
        .env(env::SOCKET, &socket)
        .env(env::TOKEN, token.to_string())
        .env(env::MAX_MESSAGE, config.max_message_size.to_string())
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| other(&format!("could not start {}", exe.display()), &e))?;
    let pid = child.id();
    let deadline = Instant::now() + config.start_timeout;
    let stream = loop {
        match listener.accept() {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                abandon(child);
                return Err(other("could not accept the worker's connection", &e));
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(SpawnError::Other(format!(
                "worker process {pid} ended before connecting ({status}); \
                 is `{worker}` built into {}?",
                exe.display()
            )));
        }
        if stopped() {
            abandon(child);
            return Err(SpawnError::Stopped);
        }
        if Instant::now() >= deadline {
            abandon(child);
            return Err(SpawnError::Other(format!(
                "worker process {pid} did not connect within {:?}",
                config.start_timeout
            )));
        }
        crate::sync::os::sleep(ACCEPT_POLL);
    };
    match handshake(stream, worker, token, args, deadline) {
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

/// Listens on the socket named `name`: in Linux's abstract namespace (nothing on disk to
/// clean up), elsewhere a file in the temporary directory, unlinked once the child connected.
#[cfg(target_os = "linux")]
fn listen(name: &str) -> std::io::Result<UnixListener> {
    use std::os::linux::net::SocketAddrExt;
    UnixListener::bind_addr(&std::os::unix::net::SocketAddr::from_abstract_name(
        name.as_bytes(),
    )?)
}

#[cfg(not(target_os = "linux"))]
fn listen(name: &str) -> std::io::Result<UnixListener> {
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

fn handshake(
    stream: UnixStream,
    worker: &str,
    token: u64,
    args: &[u8],
    deadline: Instant,
) -> Result<Halves, SpawnError> {
    let fail =
        |e: WireError| SpawnError::Other(format!("handshake with the worker process failed: {e}"));
    stream.set_nonblocking(false).map_err(|e| fail(e.into()))?;
    let remaining = deadline
        .saturating_duration_since(Instant::now())
        .max(ACCEPT_POLL);
    stream
        .set_read_timeout(Some(remaining))
        .map_err(|e| fail(e.into()))?;
    let write_half = stream.try_clone().map_err(|e| fail(e.into()))?;
    let mut reader = FrameReader::new(BufReader::with_capacity(64 << 10, stream));
    let mut writer = FrameWriter::new(write_half);

    let hello = expect(&mut reader, Kind::Hello).map_err(fail_or_fault)?;
    let hello: Hello = decode(&hello, "hello").map_err(fail)?;
    if hello.token != token || hello.worker != worker {
        return Err(SpawnError::Other(format!(
            "a process that is not our child connected (it says it serves `{}`)",
            hello.worker
        )));
    }
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

/// A secret for the handshake: unpredictable to other processes on the machine.
fn secret() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}
