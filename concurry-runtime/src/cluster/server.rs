//! [`LocalServer`]: a `nats-server` child process on a free loopback port.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{ConfigError, Error};

/// The line printed when a test skips for want of a server (and the fix CI gets).
const INSTALL: &str = "install nats-server: apt-get install -y nats-server";

/// How long a server may take to write its ports file (it takes ~10 ms).
const READY: Duration = Duration::from_secs(10);

/// Where Debian's package puts the binary (often not on a non-root `PATH`).
const DEBIAN_BINARY: &str = "/usr/sbin/nats-server";

/// A `nats-server` process of its own, on a free port of 127.0.0.1, with JetStream storing in
/// a fresh temporary directory: for tests, examples and trying a cluster on one machine.
/// Dropping it kills the server and deletes the directory.
///
/// The binary is `$NATS_SERVER` if set, else `nats-server` on `PATH`, else
/// `/usr/sbin/nats-server` (Debian's `apt-get install -y nats-server`).
///
/// ```
/// use concurry::cluster::{Cluster, LocalServer};
///
/// # fn main() -> Result<(), concurry::Error> {
/// // `None` (and one line saying how to install it) when no nats-server is installed.
/// let Some(server) = LocalServer::builder().token("s3cret").for_tests() else { return Ok(()) };
/// let cluster = Cluster::builder(server.url()).token("s3cret").connect()?;
/// assert!(cluster.is_connected());
/// assert!(Cluster::connect(server.url()).is_err()); // no token: refused
/// # Ok(()) }
/// ```
pub struct LocalServer {
    config: LocalServerBuilder,
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

/// How to start a [`LocalServer`]: its auth. [`LocalServer::builder`] makes one.
#[derive(Clone, Default)]
pub struct LocalServerBuilder {
    token: Option<String>,
    user: Option<(String, String)>,
    nkey: Option<String>,
    tls: Option<(PathBuf, PathBuf)>,
    verify_clients: Option<PathBuf>,
    jetstream: bool,
}

impl fmt::Debug for LocalServerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Secrets stay out of logs.
        f.debug_struct("LocalServerBuilder")
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("user", &self.user.as_ref().map(|(u, _)| u))
            .field("nkey", &self.nkey)
            .field("tls", &self.tls)
            .field("verify_clients", &self.verify_clients)
            .field("jetstream", &self.jetstream)
            .finish()
    }
}

impl LocalServerBuilder {
    /// Clients must give this token ([`ClusterOptions::token`](super::ClusterOptions::token)).
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Clients must give this user and password.
    pub fn user_password(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.user = Some((user.into(), password.into()));
        self
    }

    /// Clients must sign in with the nkey whose public key (`U...`) this is.
    pub fn nkey(mut self, public_key: impl Into<String>) -> Self {
        self.nkey = Some(public_key.into());
        self
    }

    /// Serves TLS only, with this certificate and key (PEM files); clients connect to
    /// `tls://127.0.0.1:<port>` ([`LocalServer::tls_url`]) and trust the certificate's
    /// authority ([`ClusterOptions::root_certificates`](super::ClusterOptions::root_certificates)).
    pub fn tls(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.tls = Some((cert.into(), key.into()));
        self
    }

    /// With [`tls`](LocalServerBuilder::tls): clients must present a certificate signed by
    /// the authority in this PEM file (mutual TLS).
    pub fn verify_clients(mut self, ca: impl Into<PathBuf>) -> Self {
        self.verify_clients = Some(ca.into());
        self
    }

    /// Turns JetStream off (on by default).
    pub fn without_jetstream(mut self) -> Self {
        self.jetstream = false;
        self
    }

    /// Starts the server and waits until it listens.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when no `nats-server` binary is found (saying how to install one),
    /// or when it exits or does not listen within 10 s (with the end of its output).
    pub fn start(self) -> Result<LocalServer, Error> {
        let dir = fresh_dir().map_err(|e| {
            ConfigError::new(
                "LocalServer",
                std::env::temp_dir().display().to_string(),
                format!("could not create a directory for the server ({e})"),
            )
        })?;
        let mut server = LocalServer {
            config: self,
            dir,
            port: 0,
            child: None,
        };
        server.spawn()?;
        Ok(server)
    }

    /// For tests: [`start`](LocalServerBuilder::start), or `None` with one line on stderr
    /// ("install nats-server: apt-get install -y nats-server") when no binary is installed,
    /// so the test can return early.
    ///
    /// # Panics
    ///
    /// When no binary is installed and `CI=true` (CI must run the cluster tests), and when
    /// an installed server fails to start.
    pub fn for_tests(self) -> Option<LocalServer> {
        if binary().is_none() {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{INSTALL} (CI=true: the cluster tests must run, not skip)");
            }
            eprintln!("skipped: {INSTALL}");
            return None;
        }
        match self.start() {
            Ok(s) => Some(s),
            Err(e) => panic!("nats-server would not start: {e}"),
        }
    }
}

impl LocalServer {
    /// Options: auth, JetStream.
    pub fn builder() -> LocalServerBuilder {
        LocalServerBuilder {
            jetstream: true,
            ..LocalServerBuilder::default()
        }
    }

    /// A server with no auth.
    ///
    /// # Errors
    ///
    /// As [`LocalServerBuilder::start`].
    pub fn start() -> Result<LocalServer, Error> {
        Self::builder().start()
    }

    /// For tests: a server with no auth, or `None` when none is installed; see
    /// [`LocalServerBuilder::for_tests`].
    pub fn for_tests() -> Option<LocalServer> {
        Self::builder().for_tests()
    }

    /// True if a `nats-server` binary can be found.
    pub fn is_installed() -> bool {
        binary().is_some()
    }

    /// Its address, `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Its address for TLS clients, `tls://127.0.0.1:<port>`.
    pub fn tls_url(&self) -> String {
        format!("tls://127.0.0.1:{}", self.port)
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server process's id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the server (SIGKILL), as a crash would; [`restart`](LocalServer::restart)
    /// brings it back.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Kills the server if it runs, and starts it again on the same port and JetStream store.
    ///
    /// # Errors
    ///
    /// As [`LocalServerBuilder::start`] (for instance when another process took the port).
    pub fn restart(&mut self) -> Result<(), Error> {
        self.kill();
        self.spawn()
    }

    fn spawn(&mut self) -> Result<(), Error> {
        let fail =
            |fix: String| -> Error { ConfigError::new("LocalServer", "nats-server", fix).into() };
        let bin = binary().ok_or_else(|| {
            fail(format!(
                "no nats-server binary ($NATS_SERVER unset, none on PATH, none at {DEBIAN_BINARY}); {INSTALL}"
            ))
        })?;
        let ports = self.dir.join("ports");
        let _ = std::fs::remove_dir_all(&ports);
        std::fs::create_dir_all(&ports)
            .map_err(|e| fail(format!("could not create {} ({e})", ports.display())))?;
        let log = self.dir.join("server.log");
        let mut cmd = Command::new(&bin);
        cmd.arg("-a").arg("127.0.0.1");
        cmd.arg("-p").arg(if self.port == 0 {
            "-1".to_string()
        } else {
            self.port.to_string()
        });
        cmd.arg("--ports_file_dir").arg(&ports);
        cmd.arg("-l").arg(&log);
        if self.config.jetstream {
            cmd.arg("-js").arg("-sd").arg(self.dir.join("jetstream"));
        }
        if let Some(t) = &self.config.token {
            cmd.arg("--auth").arg(t);
        }
        if let Some((u, p)) = &self.config.user {
            cmd.arg("--user").arg(u).arg("--pass").arg(p);
        }
        if let Some((cert, key)) = &self.config.tls {
            cmd.arg("--tls")
                .arg("--tlscert")
                .arg(cert)
                .arg("--tlskey")
                .arg(key);
            if let Some(ca) = &self.config.verify_clients {
                cmd.arg("--tlsverify").arg("--tlscacert").arg(ca);
            }
        }
        if let Some(key) = &self.config.nkey {
            let conf = self.dir.join("nkey.conf");
            std::fs::write(
                &conf,
                format!("authorization {{ users = [ {{ nkey: \"{key}\" }} ] }}\n"),
            )
            .map_err(|e| fail(format!("could not write {} ({e})", conf.display())))?;
            cmd.arg("-c").arg(&conf);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = cmd
            .spawn()
            .map_err(|e| fail(format!("could not run {} ({e}); {INSTALL}", bin.display())))?;
        let deadline = Instant::now() + READY;
        let port = loop {
            if let Some(port) = read_port(&ports) {
                break port;
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(fail(format!(
                    "{} exited at start ({status}); its log ends: {}",
                    bin.display(),
                    tail(&log)
                )));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(fail(format!(
                    "{} did not listen within {READY:?}; its log ends: {}",
                    bin.display(),
                    tail(&log)
                )));
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        self.port = port;
        self.child = Some(child);
        Ok(())
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl fmt::Debug for LocalServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalServer")
            .field("url", &self.url())
            .field("pid", &self.pid())
            .field("dir", &self.dir)
            .finish()
    }
}

/// The `nats-server` binary to run, if one exists.
fn binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("NATS_SERVER").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p)).filter(|p| p.is_file());
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("nats-server"))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| Some(PathBuf::from(DEBIAN_BINARY)).filter(|p| p.is_file()))
}

/// The port in the ports file the server wrote (`{"nats":["nats://127.0.0.1:PORT"],...}`).
fn read_port(dir: &Path) -> Option<u16> {
    let entry = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .find(|e| e.file_name().to_string_lossy().ends_with(".ports"))?;
    let text = std::fs::read_to_string(entry.path()).ok()?;
    // The first listen URL (`nats://` or, with TLS, `tls://`).
    let start = text.find("://")? + "://".len();
    let rest = &text[start..];
    let end = rest.find('"')?;
    let port = rest[..end].rsplit(':').next()?;
    port.parse().ok()
}

/// The last lines of the server's log.
fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(5);
    let t = lines[from..].join(" | ");
    if t.is_empty() {
        "(empty)".to_string()
    } else {
        t
    }
}

fn fresh_dir() -> std::io::Result<PathBuf> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let d = std::env::temp_dir().join(format!(
        "concurry-nats-{}-{}-{:08x}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        getrandom::u32().unwrap_or(0)
    ));
    std::fs::create_dir_all(&d)?;
    Ok(d)
}
