//! [`Cluster`]: the connection to a NATS server, and [`ClusterOptions`], how to make one.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use futures_util::StreamExt;

use super::membership::{ClusterEvents, Members, NodeView};
use super::placement::{Placement, plan};
use super::protocol::{Subjects, decode};
use super::{SWEEP, check_token, run};
use crate::clock::{Clock, SystemClock};
use crate::error::{ConfigError, Error};
use crate::sync::os::{Arc, AtomicU64, Condvar, Mutex, Ordering, lock};

/// The longest wait between two reconnect attempts after the server went away (async-nats
/// doubles its delay from 0 up to this).
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(1);

/// How long `connect` waits for the server unless [`ClusterOptions::connect_timeout`] says
/// otherwise.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone, Default)]
enum Auth {
    #[default]
    None,
    Token(String),
    UserPassword(String, String),
    NKey(String),
}

/// How to connect to a NATS server: auth, TLS, namespace and connection name.
/// [`Cluster::builder`] starts one; [`connect`](ClusterOptions::connect) ends it.
///
/// ```no_run
/// use std::time::Duration;
/// use concurry::cluster::Cluster;
///
/// # fn main() -> Result<(), concurry::Error> {
/// let cluster = Cluster::builder("tls://nats.internal:4222")
///     .user_password("svc", "s3cret")
///     .root_certificates("/etc/ssl/nats-ca.pem")
///     .namespace("prod")
///     .connection_name("billing-batch")
///     .connect_timeout(Duration::from_secs(2))
///     .connect()?;
/// assert_eq!(cluster.namespace(), "prod");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ClusterOptions {
    url: String,
    auth: Auth,
    require_tls: bool,
    root_certificates: Vec<PathBuf>,
    client_certificate: Option<(PathBuf, PathBuf)>,
    namespace: String,
    connection_name: Option<String>,
    connect_timeout: Duration,
}

impl ClusterOptions {
    /// Options for the server at `url` (`nats://host:4222`, `tls://host:4222`, or
    /// `host:port`), with no auth, namespace `default`, and a 5 s connect timeout.
    pub fn new(url: impl Into<String>) -> Self {
        ClusterOptions {
            url: url.into(),
            auth: Auth::None,
            require_tls: false,
            root_certificates: Vec::new(),
            client_certificate: None,
            namespace: "default".to_string(),
            connection_name: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        }
    }

    /// Authenticates with a token (the server's `--auth`, or `authorization { token }`).
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.auth = Auth::Token(token.into());
        self
    }

    /// Authenticates with a user name and password.
    pub fn user_password(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.auth = Auth::UserPassword(user.into(), password.into());
        self
    }

    /// Authenticates with an nkey: `seed` is the user's private seed (`SU...`); the server
    /// knows its public key.
    pub fn nkey(mut self, seed: impl Into<String>) -> Self {
        self.auth = Auth::NKey(seed.into());
        self
    }

    /// Refuses to talk to the server without TLS (a `tls://` URL implies it).
    pub fn require_tls(mut self, required: bool) -> Self {
        self.require_tls = required;
        self
    }

    /// Trusts the certificate authorities in this PEM file (may be given more than once).
    pub fn root_certificates(mut self, pem: impl Into<PathBuf>) -> Self {
        self.root_certificates.push(pem.into());
        self
    }

    /// Presents this client certificate and key (PEM files), for servers that verify
    /// clients (mutual TLS).
    pub fn client_certificate(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.client_certificate = Some((cert.into(), key.into()));
        self
    }

    /// Keeps this cluster's nodes and pools apart from others on the same server: 1 to 64
    /// ASCII letters, digits, `-` or `_`; `default` unless set.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// The name this connection shows in the server's monitoring (`connz`).
    pub fn connection_name(mut self, name: impl Into<String>) -> Self {
        self.connection_name = Some(name.into());
        self
    }

    /// How long `connect` waits for the server before giving up (default 5 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Connects.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the server (its password masked) and the fix when the
    /// address is not one, no server answers within the connect timeout, the server refuses
    /// the credentials, TLS fails, or the namespace is not a valid subject token. Never
    /// hangs past the connect timeout.
    pub fn connect(self) -> Result<Cluster, Error> {
        let shown = redact(&self.url);
        check_token("namespace", &self.namespace)?;
        if self.connect_timeout.is_zero() {
            return Err(ConfigError::new(
                "connect_timeout",
                "0s",
                "give the server some time to answer, e.g. Duration::from_secs(5)",
            )
            .into());
        }
        let addr = async_nats::ServerAddr::from_str(&self.url).map_err(|e| {
            ConfigError::new(
                "cluster",
                shown.clone(),
                format!("not a NATS server address ({e}); write it as nats://host:4222"),
            )
        })?;
        let timeout = self.connect_timeout;
        let tls = self.require_tls || self.url.starts_with("tls://");
        let disconnects = Arc::new(AtomicU64::new(0));
        let opts = self.nats_options(Some(disconnects.clone()));
        let again = self.clone();
        let subjects = Subjects::new(&self.namespace);
        let subjects2 = subjects.clone();
        let attempt = run(async move {
            // async-nats bounds each attempt by `connection_timeout`; this bounds the whole
            // (resolution included).
            let client =
                match tokio::time::timeout(timeout + Duration::from_secs(1), opts.connect(addr))
                    .await
                {
                    Ok(Ok(client)) => client,
                    Ok(Err(e)) => return Ok(Err(e)),
                    Err(elapsed) => return Err(elapsed),
                };
            // Subscribed before `connect` returns, so no heartbeat after it is missed.
            let listen = Listen::subscribe(&client, &subjects2).await;
            Ok(Ok((client, listen)))
        });
        let (client, listen) = match attempt {
            Ok(Ok((client, Ok(listen)))) => (client, listen),
            Ok(Ok((_, Err(e)))) => {
                return Err(ConfigError::new(
                    "cluster",
                    shown,
                    format!(
                        "connected, but could not subscribe to the node heartbeats ({e}); check \
                         the user's subscribe permissions on `cc.{}.>` and `_INBOX.>`",
                        self.namespace
                    ),
                )
                .into());
            }
            Ok(Err(e)) => return Err(connect_error(&shown, &e, timeout, tls).into()),
            Err(_) => {
                return Err(ConfigError::new(
                    "cluster",
                    shown,
                    format!(
                        "no answer from a NATS server within {timeout:?}; check the address and \
                         the firewall, or raise ClusterOptions::connect_timeout"
                    ),
                )
                .into());
            }
        };
        Ok(Cluster::start(
            client,
            listen,
            (shown, again),
            self.namespace,
            subjects,
            disconnects,
        ))
    }

    /// The async-nats options these stand for. `disconnects` counts the connection's drops
    /// and says it is the cluster's own connection (whose events are logged at `INFO` and
    /// `WARN`); an extra connection ([`Cluster::connect_another`]) logs them at `DEBUG`.
    fn nats_options(&self, disconnects: Option<Arc<AtomicU64>>) -> async_nats::ConnectOptions {
        let mut o = async_nats::ConnectOptions::new()
            .connection_timeout(self.connect_timeout)
            .reconnect_delay_callback(|attempts| {
                let exp = u32::try_from(attempts.saturating_sub(1)).unwrap_or(u32::MAX);
                if attempts <= 1 {
                    Duration::ZERO
                } else {
                    Duration::from_millis(2u64.saturating_pow(exp)).min(MAX_RECONNECT_DELAY)
                }
            })
            .event_callback(move |event| {
                let disconnects = disconnects.clone();
                async move {
                    let Some(disconnects) = disconnects else {
                        tracing::debug!("concurry cluster: an instance's connection: {event}");
                        return;
                    };
                    match event {
                        async_nats::Event::Connected => {
                            tracing::info!("concurry cluster: connected")
                        }
                        async_nats::Event::Disconnected => {
                            disconnects.fetch_add(1, Ordering::AcqRel);
                            tracing::warn!(
                                "concurry cluster: disconnected from the NATS server; reconnecting"
                            )
                        }
                        other => tracing::warn!("concurry cluster: {other}"),
                    }
                }
            });
        o = match &self.auth {
            Auth::None => o,
            Auth::Token(t) => o.token(t.clone()),
            Auth::UserPassword(u, p) => o.user_and_password(u.clone(), p.clone()),
            Auth::NKey(seed) => o.nkey(seed.clone()),
        };
        if self.require_tls {
            o = o.require_tls(true);
        }
        for pem in &self.root_certificates {
            o = o.add_root_certificates(pem.clone());
        }
        if let Some((cert, key)) = &self.client_certificate {
            o = o.add_client_certificate(cert.clone(), key.clone());
        }
        if let Some(name) = &self.connection_name {
            o = o.name(name.clone());
        }
        o
    }
}

impl fmt::Debug for ClusterOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let auth = match self.auth {
            Auth::None => "none",
            Auth::Token(_) => "token",
            Auth::UserPassword(..) => "user/password",
            Auth::NKey(_) => "nkey",
        };
        f.debug_struct("ClusterOptions")
            .field("url", &redact(&self.url))
            .field("auth", &auth)
            .field("require_tls", &self.require_tls)
            .field("namespace", &self.namespace)
            .field("connection_name", &self.connection_name)
            .field("connect_timeout", &self.connect_timeout)
            .finish_non_exhaustive()
    }
}

/// `url` with the password of its user info (if any) masked.
fn redact(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let Some((userinfo, host)) = rest.rsplit_once('@') else {
        return url.to_string();
    };
    let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
    let masked = if userinfo.contains(':') {
        format!("{user}:***")
    } else {
        "***".to_string()
    };
    if scheme.is_empty() {
        format!("{masked}@{host}")
    } else {
        format!("{scheme}://{masked}@{host}")
    }
}

/// Turns a failed connect into the `Config` error a user can act on.
fn connect_error(
    shown: &str,
    e: &async_nats::ConnectError,
    timeout: Duration,
    tls: bool,
) -> ConfigError {
    use async_nats::ConnectErrorKind as K;
    let source = std::error::Error::source(e).map_or_else(String::new, |s| format!(": {s}"));
    let fix = match e.kind() {
        K::AuthorizationViolation | K::Authentication => format!(
            "the server refused the credentials ({e}); give the token, user and password or nkey \
             it expects (ClusterOptions::token, user_password, nkey)"
        ),
        K::TimedOut => format!(
            "no answer from the NATS server within {timeout:?}; check the address and the \
             firewall, or raise ClusterOptions::connect_timeout"
        ),
        K::Dns => format!("could not resolve the server's host ({e}{source}); fix the address"),
        K::Tls => tls_fix(e, &source),
        K::Io if tls => tls_fix(e, &source),
        K::ServerParse => {
            format!("not a NATS server address ({e}{source}); write it as nats://host:4222")
        }
        K::Io | K::MaxReconnects => format!(
            "no NATS server answered ({e}{source}); start one (`nats-server -js`; \
             `apt-get install -y nats-server` installs it) or fix the address"
        ),
    };
    ConfigError::new("cluster", shown.to_string(), fix)
}

fn tls_fix(e: &async_nats::ConnectError, source: &str) -> String {
    format!(
        "TLS failed ({e}{source}); check that the server has TLS on and the certificates given \
         (ClusterOptions::root_certificates, client_certificate)"
    )
}

/// The state the background tasks of a [`Cluster`] share with it.
pub(crate) struct Shared {
    pub(crate) members: Mutex<Members>,
    /// Notified on every change of `members`.
    pub(crate) changed: Condvar,
    pub(crate) clock: SystemClock,
}

impl Shared {
    fn now(&self) -> Duration {
        self.clock.now()
    }
}

/// The subscriptions a client's view is fed from.
struct Listen {
    beats: async_nats::Subscriber,
    answers: async_nats::Subscriber,
}

impl Listen {
    /// Subscribes to the heartbeats, then pings every node (each answers with its heartbeat,
    /// so the view fills at once).
    async fn subscribe(
        client: &async_nats::Client,
        subjects: &Subjects,
    ) -> Result<Listen, async_nats::Error> {
        let beats = client.subscribe(subjects.heartbeat()).await?;
        let inbox = client.new_inbox();
        let answers = client.subscribe(inbox.clone()).await?;
        client
            .publish_with_reply(subjects.ping(), inbox, Vec::new().into())
            .await?;
        client.flush().await?;
        Ok(Listen { beats, answers })
    }

    async fn run(self, shared: Arc<Shared>) {
        let mut all = futures_util::stream::select(self.beats, self.answers);
        while let Some(msg) = all.next().await {
            match decode(&msg.payload) {
                Ok(m) => {
                    let mut members = lock(&shared.members);
                    members.observe(m, shared.now());
                    drop(members);
                    shared.changed.notify_all();
                }
                Err(e) => tracing::warn!(
                    subject = %msg.subject,
                    "concurry cluster: ignored a message: {e}"
                ),
            }
        }
    }
}

/// Every [`SWEEP`], declares lost the nodes whose heartbeats lapsed, except while this client
/// is itself disconnected (silence then means nothing; nodes get a fresh grace period once it
/// is back).
async fn sweep(client: async_nats::Client, shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(SWEEP);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut was_down = false;
    loop {
        tick.tick().await;
        if client.connection_state() != async_nats::connection::State::Connected {
            was_down = true;
            continue;
        }
        let mut members = lock(&shared.members);
        if was_down {
            was_down = false;
            members.refresh(shared.now());
        }
        let lost = members.sweep(shared.now());
        drop(members);
        if !lost.is_empty() {
            shared.changed.notify_all();
        }
    }
}

struct Inner {
    client: async_nats::Client,
    url: String,
    /// How this connection was made: [`Cluster::connect_another`] makes more the same way.
    options: ClusterOptions,
    namespace: String,
    subjects: Subjects,
    shared: Arc<Shared>,
    /// How many times the connection to the server dropped.
    disconnects: Arc<AtomicU64>,
    tasks: Vec<tokio::task::AbortHandle>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// A connection to a NATS server, and the live view of the nodes serving there.
///
/// Cheap to clone (clones share the connection). It reconnects by itself when the server goes
/// away and comes back (retrying with a delay doubling up to 1 s); see the
/// [module docs](crate::cluster) for how nodes are judged alive.
///
/// ```no_run
/// use concurry::cluster::{Cluster, ClusterEvent};
///
/// # fn main() -> Result<(), concurry::Error> {
/// let cluster = Cluster::connect("nats://127.0.0.1:4222")?;
/// let events = cluster.events();
/// for node in cluster.nodes() {
///     println!("{} ({} free)", node.name(), node.free());
/// }
/// for event in events {
///     if let ClusterEvent::Lost(node) = event {
///         eprintln!("lost {}", node.name());
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

impl Cluster {
    /// Connects to the server at `url` with the default options (no auth, namespace
    /// `default`); [`Cluster::builder`] sets others.
    ///
    /// # Errors
    ///
    /// As [`ClusterOptions::connect`].
    pub fn connect(url: impl Into<String>) -> Result<Cluster, Error> {
        ClusterOptions::new(url).connect()
    }

    /// Options for connecting to `url`.
    pub fn builder(url: impl Into<String>) -> ClusterOptions {
        ClusterOptions::new(url)
    }

    fn start(
        client: async_nats::Client,
        listen: Listen,
        (url, options): (String, ClusterOptions),
        namespace: String,
        subjects: Subjects,
        disconnects: Arc<AtomicU64>,
    ) -> Cluster {
        let shared = Arc::new(Shared {
            members: Mutex::new(Members::default()),
            changed: Condvar::new(),
            clock: SystemClock::new(),
        });
        let listen = crate::runtime::runtime().spawn(listen.run(shared.clone()));
        let sweep = crate::runtime::runtime().spawn(sweep(client.clone(), shared.clone()));
        Cluster {
            inner: Arc::new(Inner {
                client,
                url,
                options,
                namespace,
                subjects,
                shared,
                disconnects,
                tasks: vec![listen.abort_handle(), sweep.abort_handle()],
            }),
        }
    }

    /// The live nodes (by name): those heard from within their grace period.
    ///
    /// Right after `connect` the view fills as nodes answer the client's ping (a round trip
    /// to the server, a millisecond or so); [`wait_for_nodes`](Cluster::wait_for_nodes)
    /// waits for a count.
    pub fn nodes(&self) -> Vec<NodeView> {
        lock(&self.inner.shared.members).live(self.inner.shared.now())
    }

    /// The live node named `name`, if any.
    pub fn node(&self, name: &str) -> Option<NodeView> {
        self.nodes().into_iter().find(|n| n.name() == name)
    }

    /// Waits until at least `n` nodes are live, at most `timeout`; gives them back.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] if fewer than `n` were live by then.
    pub fn wait_for_nodes(&self, n: usize, timeout: Duration) -> Result<Vec<NodeView>, Error> {
        self.wait_until(timeout, |nodes| nodes.len() >= n)
    }

    /// Waits until `done` holds for the live nodes, at most `timeout`; gives them back.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] if it did not hold by then.
    pub fn wait_until(
        &self,
        timeout: Duration,
        mut done: impl FnMut(&[NodeView]) -> bool,
    ) -> Result<Vec<NodeView>, Error> {
        let deadline = std::time::Instant::now() + timeout;
        let shared = &self.inner.shared;
        crate::runtime::blocking(|| {
            loop {
                let (live, seen) = {
                    let members = lock(&shared.members);
                    (members.live(shared.now()), members.generation())
                };
                // `done` is the caller's code: it runs without the table's lock.
                if done(&live) {
                    return Ok(live);
                }
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                if left.is_zero() {
                    return Err(Error::Timeout);
                }
                let members = lock(&shared.members);
                if members.generation() == seen {
                    // Woken by every change; a sweep tick bounds the wait for a lapse (which
                    // makes a node leave the live set without any message).
                    drop(
                        shared
                            .changed
                            .wait_timeout(members, left.min(SWEEP))
                            .unwrap_or_else(std::sync::PoisonError::into_inner),
                    );
                }
            }
        })
    }

    /// The membership events from now on: nodes joining, leaving (drained) and lost
    /// (heartbeats lapsed).
    pub fn events(&self) -> ClusterEvents {
        lock(&self.inner.shared.members).subscribe()
    }

    /// Where `instances` instances of the worker type named `worker_type` would go on the
    /// live nodes now; see [`plan`](super::plan).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the type and the nodes seen, when no live node can host it or
    /// they have too few free slots.
    pub fn plan(&self, worker_type: &str, instances: u32) -> Result<Vec<Placement>, Error> {
        Ok(plan(worker_type, instances, &self.nodes())?)
    }

    /// The namespace this connection works in.
    pub fn namespace(&self) -> &str {
        &self.inner.namespace
    }

    /// The server's address as given (password masked).
    pub fn url(&self) -> &str {
        &self.inner.url
    }

    /// True while connected to the server (false while reconnecting).
    pub fn is_connected(&self) -> bool {
        self.inner.client.connection_state() == async_nats::connection::State::Connected
    }

    /// The largest message the server accepts, in bytes (its `max_payload`, 1 MiB by default).
    pub fn max_payload(&self) -> usize {
        self.inner.client.server_info().max_payload
    }

    /// Opens one more connection to the server, with the options (auth, TLS, name, connect
    /// timeout) this cluster's connection was made with; its tasks go on the runtime this is
    /// awaited in (a node gives each hosted instance one, driven by the instance's thread).
    /// Its subscriptions buffer up to 2^20 messages each (async-nats drops what a full one
    /// gets): a busy instance's calls wait there while it runs a long one.
    pub(crate) async fn connect_another(
        &self,
    ) -> Result<async_nats::Client, async_nats::ConnectError> {
        let o = &self.inner.options;
        let addr = async_nats::ServerAddr::from_str(&o.url).map_err(|e| {
            async_nats::ConnectError::with_source(async_nats::ConnectErrorKind::ServerParse, e)
        })?;
        o.nats_options(None)
            .subscription_capacity(1 << 20)
            .connect(addr)
            .await
    }

    pub(crate) fn client(&self) -> &async_nats::Client {
        &self.inner.client
    }

    pub(crate) fn subjects(&self) -> &Subjects {
        &self.inner.subjects
    }

    /// How many times the connection to the server dropped so far.
    pub(crate) fn disconnects(&self) -> u64 {
        self.inner.disconnects.load(Ordering::Acquire)
    }
}

impl fmt::Debug for Cluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cluster")
            .field("url", &self.inner.url)
            .field("namespace", &self.inner.namespace)
            .field("connected", &self.is_connected())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        assert_eq!(redact("nats://u:p@h:4222"), "nats://u:***@h:4222");
        assert_eq!(redact("nats://tok@h:4222"), "nats://***@h:4222");
        assert_eq!(redact("nats://h:4222"), "nats://h:4222");
        assert_eq!(redact("u:p@h"), "u:***@h");
        let o = ClusterOptions::new("nats://u:pw@h").token("secret-token");
        let shown = format!("{o:?}");
        assert!(
            !shown.contains("pw") && !shown.contains("secret-token"),
            "{shown}"
        );
    }
}
