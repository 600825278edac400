//! Process mode: each worker is a child process running the current executable.
//!
//! - [`RemoteWorker`]: a worker type that can run out of process (its arguments, requests and
//!   responses are serde types).
//! - [`ProcessWorker`]: one supervised child serving one instance: calls multiplexed over a
//!   Unix socket, crash detection, respawn with a restart limit, hard per-call timeouts.
//! - [`ProcessConfig`]: restart limit, backoff, start-up and stop timeouts, limits.
//! - [`RemoteTask`], [`TaskHost`]: free functions (`#[task]`) run by name in a child.
//! - [`register_remote!`](crate::register_remote): adds a type to the registry the child looks
//!   it up in (`#[worker(remote)]` emits it).
//!
//! See [`RemoteWorker`] for how a child starts and an example.
//!
//! # Security model
//!
//! The boundary is the user: processes of the same uid can already read and trace both the
//! parent and its children, so nothing here defends against them beyond refusing stray
//! connections. Against other local users:
//!
//! - The socket (Linux: in the abstract namespace, where every local user can list names in
//!   `/proc/net/unix` and connect, as no file permissions apply) is named
//!   `concurry-<parent pid>-<counter>-<64 random bits>`. The random bits only keep others
//!   from predicting the name and binding it first; they are not the secret.
//! - The parent checks each connection before it reads a byte of it: the kernel's record of
//!   the connecting process (`SO_PEERCRED`, which a process cannot forge) must show the pid of
//!   the child it just spawned and the parent's own uid (`parent::Gate`, `peer::verify`).
//! - Then the child's `Hello` must carry the secret: 64 bits from the OS random source
//!   (`getrandom`), passed in the child's environment (`CONCURRY_TOKEN`; `/proc/<pid>/environ`
//!   is readable only by the same user) and never in the socket's name.
//! - The child checks its side too, before it sends the secret: the socket must be held by
//!   its parent process, running as its own uid.
//! - A refused connection is closed and logged (`tracing` warning naming its pid and uid).
//!   After [`parent::MAX_REFUSED`] (8) refusals the start gives up with an error naming the
//!   last reason (the supervisor may respawn, on a new name): another user can make a start
//!   fail, never get into a child.
//!
//! Outside Linux the socket is a file in the temporary directory, and there is no peer
//! credentials check: the secret alone guards it.

pub(crate) mod backend;
pub(crate) mod child;
pub(crate) mod limits;
pub(crate) mod parent;
pub(crate) mod peer;
pub(crate) mod pool_backend;
pub(crate) mod supervisor;
pub(crate) mod task;

use std::fmt;
use std::time::Duration;

use crate::sync::os::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use supervisor::ProcessWorker;
pub use task::{REMOTE_TASKS, RemoteTask, TaskEntry, TaskHost};

/// A worker type that can run in a child process: the serde-capable counterpart of the
/// in-process worker trait.
///
/// `#[worker(remote)]` implements it (with a `Request` enum holding one variant per method
/// and a `Response` enum likewise); implement it by hand only for a protocol of your own.
///
/// # How a child starts
///
/// The parent re-executes [`std::env::current_exe`] with `CONCURRY_WORKER=<type name>` and the
/// name of a socket in its environment. A constructor function of this crate (the `ctor`
/// crate's `.init_array` hook) runs before `main` in every binary that links concurry: when it
/// sees `CONCURRY_WORKER`, it connects back, serves the worker and exits, so `main` never runs
/// in the child. No user code is needed: `cargo test` binaries (whose `main` is libtest's),
/// examples and user binaries all work as they are. The registry is a `linkme` distributed
/// slice, which the linker fills: it is complete before any code runs, including this hook.
///
/// What runs in the child before the hook: other constructor functions of the binary (rare),
/// and nothing of `main`. So state set up by `main` (a logger, a global runtime) does not
/// exist in the child; a worker must build what it needs in its constructor.
///
/// # Who may connect
///
/// On Linux the parent accepts only the child it spawned on the socket: the kernel's record of
/// the connecting process must show that child's pid and the parent's own uid, and the child
/// must then prove a random secret it got in its environment (never in the socket's name,
/// which every local user can see). Any other connection is closed before it is read and
/// logged as a `tracing` warning with its pid and uid; after 8 of them the start fails. The
/// child likewise talks only to its parent. Processes of the same user are trusted.
///
/// ```
/// use concurry::{ProcessWorker, RemoteWorker};
/// use serde::{Deserialize, Serialize};
///
/// struct Doubler;
///
/// #[derive(Serialize, Deserialize)]
/// struct Double(u64);
///
/// impl RemoteWorker for Doubler {
///     const NAME: &'static str = "docs::Doubler";
///     type Args = ();
///     type Request = Double;
///     type Response = u64;
///     type InitError = concurry::wire::Never; // a constructor that cannot fail
///     fn construct((): ()) -> Result<Self, Self::InitError> { Ok(Doubler) }
///     fn dispatch(&mut self, Double(n): Double) -> u64 { 2 * n }
/// }
/// concurry::register_remote!(Doubler);
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let worker = ProcessWorker::<Doubler>::spawn(())?;
/// assert_eq!(worker.call(Double(21)).result()?, 42);
/// assert_ne!(worker.pid(), Some(std::process::id()));
/// worker.stop()?;
/// # Ok(()) }
/// ```
pub trait RemoteWorker: Sized + 'static {
    /// The name the child looks the type up by. Stable across builds of the same source
    /// (`#[worker(remote)]` uses `module_path!()::Type`) and unique in the binary.
    const NAME: &'static str;
    /// The constructor's arguments, sent to the child at each (re)start.
    type Args: Serialize + DeserializeOwned + Clone + Send + Sync + 'static;
    /// One call: which method, with its arguments.
    type Request: Serialize + DeserializeOwned + Send + 'static;
    /// One call's outcome (a method's own error is part of it).
    type Response: Serialize + DeserializeOwned + Send + 'static;
    /// The constructor's error, a serde type: the parent gets it typed, as
    /// [`Error::Method`](crate::Error::Method) (as in every other mode).
    /// [`wire::Never`](crate::wire::Never) for a constructor that cannot fail.
    type InitError: Serialize + DeserializeOwned + fmt::Display + Send + 'static;

    /// Builds the instance, in the child.
    ///
    /// # Errors
    ///
    /// The constructor's own error.
    fn construct(args: Self::Args) -> Result<Self, Self::InitError>;

    /// Runs one call, in the child. A panic here fails only this call
    /// ([`Error::Panicked`](crate::Error::Panicked)); the child goes on serving.
    fn dispatch(&mut self, request: Self::Request) -> Self::Response;
}

/// How a [`ProcessWorker`] supervises its child.
///
/// ```
/// use std::time::Duration;
/// let config = concurry::ProcessConfig::default()
///     .max_restarts(3)
///     .backoff(Duration::from_millis(5), Duration::from_millis(200));
/// assert_eq!(config.get_max_restarts(), 3);
/// ```
#[derive(Debug, Clone)]
pub struct ProcessConfig {
    pub(crate) max_restarts: u32,
    pub(crate) backoff_min: Duration,
    pub(crate) backoff_max: Duration,
    pub(crate) start_timeout: Duration,
    pub(crate) stop_timeout: Duration,
    pub(crate) limits: Option<crate::limit::LimitSet>,
    pub(crate) stall_timeout: Duration,
    pub(crate) max_message_size: usize,
}

impl Default for ProcessConfig {
    fn default() -> Self {
        ProcessConfig {
            max_restarts: 10,
            backoff_min: Duration::from_millis(10),
            backoff_max: Duration::from_secs(2),
            start_timeout: Duration::from_secs(30),
            stop_timeout: Duration::from_secs(30),
            limits: None,
            stall_timeout: Duration::from_secs(10),
            max_message_size: crate::wire::DEFAULT_MAX_FRAME,
        }
    }
}

impl ProcessConfig {
    /// How many times in a row the child may die and be respawned (a call answered by the
    /// child resets the count). Past it, calls fail with
    /// [`Error::WorkerLost`](crate::Error::WorkerLost) and no child is started. Default 10.
    pub fn max_restarts(mut self, n: u32) -> Self {
        self.max_restarts = n;
        self
    }

    /// The restart limit.
    pub fn get_max_restarts(&self) -> u32 {
        self.max_restarts
    }

    /// The wait before the `n`-th consecutive respawn: `min · 2^(n-1)`, at most `max`. The
    /// first respawn after a healthy run waits `min`. Defaults 10 ms and 2 s.
    pub fn backoff(mut self, min: Duration, max: Duration) -> Self {
        self.backoff_min = min;
        self.backoff_max = max.max(min);
        self
    }

    /// How long a child may take to connect and build its instance. Default 30 s.
    pub fn start_timeout(mut self, d: Duration) -> Self {
        self.start_timeout = d;
        self
    }

    /// How long the parent waits for the rest of a frame the child began to send; past it
    /// the channel counts as broken (a truncated frame), and the child is killed and
    /// respawned. Default 10 s.
    pub fn stall_timeout(mut self, d: Duration) -> Self {
        self.stall_timeout = d;
        self
    }

    /// The largest request or reply, in bytes, on the channel to the child (its frame:
    /// payload plus a 14-byte header). Default 16 MiB
    /// ([`DEFAULT_MAX_FRAME`](crate::wire::DEFAULT_MAX_FRAME)); clamped to 1 KiB ..= 4 GiB - 1
    /// (a pool's `max_message_size` option reports a value outside as `Error::Config`).
    /// A larger call or reply fails only its call, with
    /// [`WireError::TooLarge`](crate::wire::WireError::TooLarge).
    ///
    /// ```
    /// let config = concurry::ProcessConfig::default().max_message_size(64 << 20);
    /// assert_eq!(config.get_max_message_size(), 64 << 20);
    /// ```
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes.clamp(
            crate::options::MESSAGE_SIZE_MIN,
            crate::options::MESSAGE_SIZE_MAX,
        );
        self
    }

    /// The largest request or reply, in bytes.
    pub fn get_max_message_size(&self) -> usize {
        self.max_message_size
    }

    /// How long `stop()` lets the child finish its calls before killing it. Default 30 s.
    pub fn stop_timeout(mut self, d: Duration) -> Self {
        self.stop_timeout = d;
        self
    }

    /// The limits the child's methods acquire from (hosted here, in the parent): shared with
    /// every other user of the set, in this process or in other children. In the child,
    /// [`limits()`](crate::limits) reaches them.
    ///
    /// ```
    /// use concurry::{LimitSet, ProcessConfig, RateLimit};
    /// let set = LimitSet::new([RateLimit::per_minute("tokens", 1000)]).unwrap();
    /// let config = ProcessConfig::default().limits(set);
    /// # let _ = config;
    /// ```
    pub fn limits(mut self, set: crate::limit::LimitSet) -> Self {
        self.limits = Some(set);
        self
    }

    pub(crate) fn backoff_for(&self, consecutive: u32) -> Duration {
        let factor = 1u32 << consecutive.saturating_sub(1).min(20);
        self.backoff_min
            .saturating_mul(factor)
            .min(self.backoff_max)
    }
}

/// One entry of the registry of remote worker types. Built by
/// [`register_remote!`](crate::register_remote); not a public API.
#[doc(hidden)]
pub struct RemoteEntry {
    pub(crate) name: &'static str,
    pub(crate) serve: fn(&Arc<child::Link>) -> i32,
}

impl RemoteEntry {
    /// The entry of `W`.
    pub const fn of<W: RemoteWorker>() -> Self {
        RemoteEntry {
            name: W::NAME,
            serve: child::serve::<W>,
        }
    }
}

impl fmt::Debug for RemoteEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteEntry")
            .field("name", &self.name)
            .finish()
    }
}

/// The registry: every [`RemoteWorker`] type of the binary, collected by the linker.
#[doc(hidden)]
#[linkme::distributed_slice]
pub static REMOTE_WORKERS: [RemoteEntry];

/// Remote workers of the runtime itself: [`TaskHost`], and the children of `#[task(remote)]`
/// pools. (They cannot go into the linker's registry: `#![forbid(unsafe_code)]` rejects the
/// `link_section` a registration needs when it is expanded in this crate.)
static BUILTIN: [RemoteEntry; 2] = [
    RemoteEntry::of::<TaskHost>(),
    RemoteEntry::of::<crate::task::TaskWorker>(),
];

/// Every registered remote worker type: the runtime's own, then the binary's.
pub(crate) fn entries() -> impl Iterator<Item = &'static RemoteEntry> {
    BUILTIN.iter().chain(REMOTE_WORKERS.iter())
}

/// The registry entry named `name`.
pub(crate) fn lookup(name: &str) -> Option<&'static RemoteEntry> {
    entries().find(|e| e.name == name)
}

/// Adds a [`RemoteWorker`] type to the registry, so a child process can serve it.
///
/// `#[worker(remote)]` emits this; write it yourself only next to a hand-written
/// [`RemoteWorker`] impl. Any module of the binary will do; it runs no code.
///
/// ```
/// # use concurry::RemoteWorker;
/// # struct Nop;
/// # impl RemoteWorker for Nop {
/// #     const NAME: &'static str = "docs::Nop";
/// #     type Args = (); type Request = (); type Response = (); type InitError = String;
/// #     fn construct((): ()) -> Result<Self, String> { Ok(Nop) }
/// #     fn dispatch(&mut self, (): ()) {}
/// # }
/// concurry::register_remote!(Nop);
/// ```
#[macro_export]
macro_rules! register_remote {
    ($ty:ty) => {
        const _: () = {
            #[$crate::__private::linkme::distributed_slice($crate::__private::REMOTE_WORKERS)]
            #[linkme(crate = $crate::__private::linkme)]
            static ENTRY: $crate::__private::RemoteEntry =
                $crate::__private::RemoteEntry::of::<$ty>();
        };
    };
}

/// The `init` error for `Mode::Process` on a worker type that did not opt in.
pub(crate) fn not_remote(worker: &str) -> crate::error::ConfigError {
    crate::error::ConfigError::new(
        "mode",
        "process",
        format!(
            "`{worker}` cannot run in a child process; mark its impl `#[worker(remote)]` \
             (its constructor arguments, method arguments and returns must then be serde types), \
             or use `Mode::Thread`"
        ),
    )
}

/// Environment variables of the child role.
pub(crate) mod env {
    /// The registered name of the worker type to serve.
    pub(crate) const WORKER: &str = "CONCURRY_WORKER";
    /// The abstract Unix socket to connect to.
    pub(crate) const SOCKET: &str = "CONCURRY_SOCKET";
    /// The secret to prove the connection comes from the parent's own child.
    pub(crate) const TOKEN: &str = "CONCURRY_TOKEN";
    /// The largest message on the channel, in bytes (the pool's `max_message_size`).
    pub(crate) const MAX_MESSAGE: &str = "CONCURRY_MAX_MESSAGE";
}
