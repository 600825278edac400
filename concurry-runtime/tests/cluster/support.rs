//! Nodes as child processes of this test binary, and a deadline guard.
//!
//! A child is this binary re-executed with `CONCURRY_TEST_NODE=<url>` in its environment: the
//! constructor function below (run before libtest's `main`, as process mode's child hook
//! is) sees it, serves a `Node` until SIGTERM, and exits; so `main` never runs in a child.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use concurry::cluster::{Cluster, Node};

/// Generous: only catches hangs.
pub(crate) const HANG: Duration = Duration::from_secs(30);

/// A remote worker type, so nodes of this binary have something to host.
pub(crate) struct Echo;

#[concurry::worker(remote)]
impl Echo {
    pub(crate) fn new() -> Self {
        Echo
    }

    pub(crate) fn echo(&self, x: u64) -> u64 {
        x
    }
}

/// A stateful worker for the pool tests: a counter, a slow call, a call holding a limit.
pub(crate) struct Tally {
    n: u64,
}

#[concurry::worker(remote)]
impl Tally {
    pub(crate) fn new(start: u64) -> Self {
        Tally { n: start }
    }

    /// Adds `by`; the new total.
    pub(crate) fn add(&mut self, by: u64) -> u64 {
        self.n += by;
        self.n
    }

    /// The process this instance runs in.
    pub(crate) fn pid(&self) -> u32 {
        std::process::id()
    }

    /// Sleeps `ms` milliseconds, then answers `x`.
    pub(crate) fn slow(&self, x: u64, ms: u64) -> u64 {
        std::thread::sleep(Duration::from_millis(ms));
        x
    }

    /// Takes one `tokens` unit of the pool's limits if there is one now (the pool's owner
    /// hosts them): whether it got it.
    pub(crate) fn take(&self) -> bool {
        concurry::limits().try_acquire(&[("tokens", 1)]).is_ok()
    }

    /// Echoes a byte buffer's length.
    pub(crate) fn len(&self, bytes: Vec<u8>) -> usize {
        bytes.len()
    }

    /// Creates the file `started`, then loops on `check_cancelled()` for at most 120 s:
    /// whether it saw its cancel.
    pub(crate) fn spin(&self, started: String) -> bool {
        let _ = std::fs::write(&started, b"started");
        let until = std::time::Instant::now() + Duration::from_secs(120);
        while std::time::Instant::now() < until {
            if concurry::check_cancelled().is_err() {
                return true;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        false
    }
}

/// `Echo`'s registered name (`RemoteWorker::NAME`).
pub(crate) fn echo_type() -> String {
    <Echo as concurry::RemoteWorker>::NAME.to_string()
}

const URL: &str = "CONCURRY_TEST_NODE";
const NAME: &str = "CONCURRY_TEST_NODE_NAME";
const CAPACITY: &str = "CONCURRY_TEST_NODE_CAPACITY";
const HEARTBEAT_MS: &str = "CONCURRY_TEST_NODE_HEARTBEAT_MS";
const NAMESPACE: &str = "CONCURRY_TEST_NODE_NAMESPACE";

/// Set in a child that owns a pool: the server's URL.
const OWNER: &str = "CONCURRY_TEST_OWNER";

/// A pool owner in a child process: places one `Tally` on the cluster, says so on stdout,
/// and waits to be killed.
#[ctor::ctor]
fn enter_owner_role() {
    let Ok(url) = std::env::var(OWNER) else {
        return;
    };
    let run = || -> Result<(), concurry::Error> {
        let cluster = Cluster::connect(url)?;
        cluster.wait_for_nodes(1, HANG)?;
        let pool = Tally::options()
            .mode(concurry::Mode::Cluster)
            .cluster(cluster)
            .init(0)?;
        pool.add(1).result_timeout(HANG)?;
        println!("placed");
        loop {
            std::thread::sleep(Duration::from_secs(60));
        }
    };
    if let Err(e) = run() {
        eprintln!("test owner: {e}");
    }
    std::process::exit(3);
}

/// Starts a pool owner child on the server at `url`; returns once its instance is placed.
pub(crate) fn start_owner(url: &str) -> NodeProc {
    use std::io::BufRead;
    let mut child = Command::new(std::env::current_exe().expect("current exe"))
        .env(OWNER, url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn an owner child");
    let out = child.stdout.take().expect("piped");
    let line = within("the owner's pool", move || {
        let mut line = String::new();
        let _ = std::io::BufReader::new(out).read_line(&mut line);
        line
    });
    assert_eq!(
        line.trim(),
        "placed",
        "the owner child could not place its pool"
    );
    NodeProc {
        child,
        name: "owner".into(),
    }
}

#[ctor::ctor]
fn enter_node_role() {
    let Ok(url) = std::env::var(URL) else { return };
    let var = |k: &str| std::env::var(k).ok();
    let mut cluster = Cluster::builder(url);
    if let Some(ns) = var(NAMESPACE) {
        cluster = cluster.namespace(ns);
    }
    let run = || -> Result<(), concurry::Error> {
        let mut node = Node::new(cluster.connect()?);
        if let Some(n) = var(NAME) {
            node = node.name(n);
        }
        if let Some(c) = var(CAPACITY) {
            node = node.capacity(c.parse().expect("capacity"));
        }
        if let Some(ms) = var(HEARTBEAT_MS) {
            node = node.heartbeat(Duration::from_millis(ms.parse().expect("heartbeat")));
        }
        node.serve()
    };
    std::process::exit(match run() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("test node: {e}");
            3
        }
    });
}

/// A node child process; killed (SIGKILL) if still running when dropped.
pub(crate) struct NodeProc {
    pub(crate) child: Child,
    pub(crate) name: String,
}

impl NodeProc {
    /// Starts a node named `name` with `capacity` slots on the server at `url`.
    pub(crate) fn start(url: &str, name: &str, capacity: u32) -> NodeProc {
        Self::start_with(url, name, capacity, None, None)
    }

    pub(crate) fn start_with(
        url: &str,
        name: &str,
        capacity: u32,
        heartbeat: Option<Duration>,
        namespace: Option<&str>,
    ) -> NodeProc {
        let mut cmd = Command::new(std::env::current_exe().expect("current exe"));
        cmd.env(URL, url)
            .env(NAME, name)
            .env(CAPACITY, capacity.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        if let Some(h) = heartbeat {
            cmd.env(HEARTBEAT_MS, h.as_millis().to_string());
        }
        if let Some(ns) = namespace {
            cmd.env(NAMESPACE, ns);
        }
        NodeProc {
            child: cmd.spawn().expect("spawn a node child"),
            name: name.to_string(),
        }
    }

    /// SIGKILL, and waits for it to be gone.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM: the node drains and exits by itself.
    pub(crate) fn terminate(&self) {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success());
    }

    /// Waits for the child to exit, at most [`HANG`]; its exit code.
    pub(crate) fn wait_exit(&mut self) -> Option<i32> {
        let deadline = std::time::Instant::now() + HANG;
        loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                return s.code();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "node {} still running after {HANG:?}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `f` on its own thread and fails the test if it does not return within [`HANG`].
pub(crate) fn within<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(HANG)
        .unwrap_or_else(|_| panic!("{what}: still not done after {HANG:?}"))
}

/// Waits until `f` holds, failing the test if it does not within [`HANG`].
/// A client of `url` that sees `nodes` nodes, and a set with one limit `slot` of `units`:
/// the set-up of the tests that count a pool's units.
pub(crate) fn slots_over_nodes(
    url: &str,
    nodes: usize,
    units: u64,
) -> (concurry::cluster::Cluster, concurry::LimitSet) {
    let c = {
        let url = url.to_string();
        within("connect", move || concurry::cluster::Cluster::connect(url)).unwrap()
    };
    c.wait_for_nodes(nodes, HANG).unwrap();
    let set = concurry::LimitSet::builder()
        .limit(concurry::ResourceLimit::new("slot", units))
        .build()
        .unwrap();
    (c, set)
}

pub(crate) fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + HANG;
    while !f() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not after {HANG:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
