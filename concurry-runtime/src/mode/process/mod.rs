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
pub(crate) mod transport;
pub(crate) mod worker;

use std::time::Duration;

pub use crate::remote::{RemoteTask, RemoteWorker, TaskHost, TaskOutput};
pub use worker::ProcessWorker;

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

    /// What the supervisor keeps of it (the rest is the transport's).
    pub(crate) fn supervision(&self) -> crate::remote::Supervision {
        crate::remote::Supervision {
            max_restarts: self.max_restarts,
            backoff_min: self.backoff_min,
            backoff_max: self.backoff_max,
            stop_timeout: self.stop_timeout,
            max_message_size: self.max_message_size,
            hosts: transport::hosts(self.limits.as_ref()),
        }
    }
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
