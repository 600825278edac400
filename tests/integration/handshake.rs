//! Process mode's handshake: the worker socket admits only the child it was opened for. A
//! connection from any other process is refused before it is read, and logged; the real
//! child still connects and serves. The socket's name, public to every local user, holds
//! nothing of the secret the child proves.

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use concurry::__private::serde::{Deserialize, Serialize};
use concurry::{Error, ProcessConfig, ProcessWorker, RemoteWorker};
use tracing::field::{Field, Visit};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context, SubscriberExt};

/// Bounds every wait, so a broken test fails instead of hanging.
const HANG: Duration = Duration::from_secs(30);

/// Doubles numbers; one type per test, so each test's socket hook sees only its own starts.
macro_rules! doubler {
    ($ty:ident, $name:literal) => {
        struct $ty;

        impl RemoteWorker for $ty {
            const NAME: &'static str = $name;
            type Args = ();
            type Request = Double;
            type Response = (u64, u32);
            type InitError = concurry::wire::Never;
            fn construct((): ()) -> Result<Self, Self::InitError> {
                Ok($ty)
            }
            fn dispatch(&mut self, Double(n): Double) -> (u64, u32) {
                (2 * n, std::process::id())
            }
        }
        concurry::register_remote!($ty);
    };
}

#[derive(Serialize, Deserialize)]
#[serde(crate = "concurry::__private::serde")]
struct Double(u64);

doubler!(Guarded, "integration::handshake::Guarded");
doubler!(Besieged, "integration::handshake::Besieged");

/// The warnings logged on this thread while it captures.
#[derive(Clone, Default)]
struct Warnings(Arc<Mutex<Vec<String>>>);

struct Line<'a>(&'a mut String);

impl Visit for Line<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!("{}={value:?} ", field.name()));
    }
}

impl<S: tracing::Subscriber> Layer<S> for Warnings {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        if *event.metadata().level() == tracing::Level::WARN {
            let mut line = String::new();
            event.record(&mut Line(&mut line));
            self.0.lock().unwrap().push(line);
        }
    }
}

impl Warnings {
    /// Runs `f` (the first start of a `ProcessWorker` runs on the caller's thread).
    fn capture<T>(&self, f: impl FnOnce() -> T) -> T {
        keep_interest_per_dispatcher();
        let subscriber = tracing_subscriber::registry().with(self.clone());
        tracing::subscriber::with_default(subscriber, f)
    }

    fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

/// With at most one dispatcher registered, `tracing` caches a callsite's interest from the
/// default of whichever thread reaches it first: a test without a subscriber, running beside
/// ours, would silence the warnings we capture. A second, lasting dispatcher makes it ask
/// every dispatcher instead.
fn keep_interest_per_dispatcher() {
    static SECOND: std::sync::OnceLock<tracing::Dispatch> = std::sync::OnceLock::new();
    SECOND.get_or_init(|| tracing::Dispatch::new(tracing_subscriber::registry()));
}

/// True once the other end closed `s`: the end of the stream, or a reset where it closed
/// with our bytes unread.
fn closed_by_parent(mut s: &UnixStream) -> bool {
    s.set_read_timeout(Some(HANG)).unwrap();
    match s.read(&mut [0u8; 64]) {
        Ok(n) => n == 0,
        Err(e) => e.kind() == ErrorKind::ConnectionReset,
    }
}

/// The secret in the environment of the child `pid` (readable by its own user only).
fn secret_of(pid: u32) -> u64 {
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    environ
        .split(|&b| b == 0)
        .find_map(|kv| kv.strip_prefix(b"CONCURRY_TOKEN="))
        .map(|v| std::str::from_utf8(v).unwrap().parse().unwrap())
        .expect("the child has its secret in its environment")
}

#[test]
fn a_foreign_connection_is_refused_and_logged_and_the_child_still_serves() {
    let sockets = Arc::new(Mutex::new(Vec::<String>::new()));
    let foreign = Arc::new(Mutex::new(Vec::<UnixStream>::new()));
    let (s, f) = (sockets.clone(), foreign.clone());
    // Runs before the child starts: our connection is first in the socket's queue.
    concurry::__private::process_on_listen(Guarded::NAME, move |name| {
        s.lock().unwrap().push(name.to_owned());
        let mut c = concurry::__private::process_connect(name).unwrap();
        // Whatever it sends (here: no valid hello), it is refused on who it is.
        c.write_all(b"let me in").unwrap();
        f.lock().unwrap().push(c);
    });
    let warnings = Warnings::default();
    let worker = warnings
        .capture(|| ProcessWorker::<Guarded>::spawn(()))
        .expect("the real child connects after the refused one");
    let (doubled, served_by) = worker.call(Double(21)).result_timeout(HANG).unwrap();
    assert_eq!(doubled, 42);
    let child = worker.pid().unwrap();
    assert_eq!(served_by, child);
    assert_ne!(child, std::process::id());

    let me = std::process::id();
    let lines = warnings.lines();
    assert!(
        lines.iter().any(|l| l.contains("refused a connection")
            && l.contains(&format!("from pid {me}, uid"))
            && l.contains(&format!("not from worker process {child}"))),
        "no warning naming the foreign peer in {lines:#?}"
    );
    assert!(
        foreign.lock().unwrap().iter().all(closed_by_parent),
        "the foreign connection is still open"
    );

    // The name is public (`/proc/net/unix`); the secret must not be in it, in any part.
    let secret = secret_of(child);
    let name = sockets.lock().unwrap()[0].clone();
    for part in [
        format!("{:08x}", secret >> 32),
        format!("{:08x}", secret & 0xffff_ffff),
        secret.to_string(),
    ] {
        assert!(
            !name.contains(&part),
            "socket `{name}` shows `{part}` of the secret"
        );
    }
    worker.stop().unwrap();
}

#[test]
fn too_many_foreign_connections_end_the_start_with_a_clear_error() {
    let foreign = Arc::new(Mutex::new(Vec::<UnixStream>::new()));
    let f = foreign.clone();
    concurry::__private::process_on_listen(Besieged::NAME, move |name| {
        for _ in 0..8 {
            let c = concurry::__private::process_connect(name).unwrap();
            f.lock().unwrap().push(c);
        }
    });
    let config = ProcessConfig::default().start_timeout(HANG);
    let message = match ProcessWorker::<Besieged>::with_config((), config) {
        Err(Error::Init { message }) => message,
        Err(other) => panic!("expected a start error, got {other:?}"),
        Ok(_) => panic!("the start went on after eight refused connections"),
    };
    assert!(
        message.contains("8 connections to its socket were refused")
            && message.contains(&format!("comes from process {}", std::process::id())),
        "{message}"
    );
}
