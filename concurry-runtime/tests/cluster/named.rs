//! Named pools: `.name(..)` in `Mode::Cluster`, `Type::lookup(&cluster, name)` from another
//! process, names unique per namespace and freed when the owner stops or dies, and the
//! registry `Cluster::pools()`. The owners are child processes of this binary (the ctor
//! hook below), the nodes too.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::Duration;

use concurry::cluster::{Cluster, LocalServer};
use concurry::{Error, Mode};

use crate::support::{HANG, NodeProc, Tally, TallyHandle, within};

/// Set in a child that owns a named pool: the server's URL, and the pool's name.
const OWNER_URL: &str = "CONCURRY_TEST_NAMED_OWNER";
const OWNER_NAME: &str = "CONCURRY_TEST_NAMED_OWNER_NAME";

/// An owner child: starts a `Tally` pool (one instance, starting at 0) named per its
/// environment, calls `add(1)` on it, prints `placed`, then obeys stdin: `stop` stops the
/// pool (then prints `stopped`); end of input exits.
#[ctor::ctor]
fn enter_named_owner_role() {
    let (Ok(url), Ok(name)) = (std::env::var(OWNER_URL), std::env::var(OWNER_NAME)) else {
        return;
    };
    let run = || -> Result<(), Error> {
        let cluster = Cluster::connect(url)?;
        cluster.wait_for_nodes(1, HANG)?;
        let pool = Tally::options()
            .mode(Mode::Cluster)
            .cluster(cluster)
            .name(name)
            .init(0)?;
        pool.add(1).result_timeout(HANG)?;
        println!("placed");
        for line in std::io::stdin().lines() {
            if line.map_err(|e| Error::Init {
                message: e.to_string(),
            })? == "stop"
            {
                pool.stop()?;
                println!("stopped");
            }
        }
        Ok(())
    };
    let code = match run() {
        Ok(()) => 0,
        Err(e) => {
            println!("error: {e}");
            3
        }
    };
    std::process::exit(code);
}

/// An owner child process; killed if still running when dropped.
struct Owner {
    child: Child,
    stdin: Option<ChildStdin>,
    /// Its stdout, line by line (read on a thread of its own).
    lines: Receiver<String>,
}

impl Owner {
    /// Starts an owner of the pool `name` on the server at `url`; returns once its pool is
    /// placed.
    fn start(url: &str, name: &str) -> Owner {
        let mut child = Command::new(std::env::current_exe().expect("current exe"))
            .env(OWNER_URL, url)
            .env(OWNER_NAME, name)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn an owner child");
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("piped"));
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut owner = Owner {
            child,
            stdin,
            lines,
        };
        assert_eq!(
            owner.line(),
            "placed",
            "the owner child could not place its pool"
        );
        owner
    }

    /// The next line the owner prints (bounded by [`HANG`]).
    fn line(&mut self) -> String {
        self.lines
            .recv_timeout(HANG)
            .unwrap_or_else(|_| panic!("the owner child said nothing for {HANG:?}"))
            .trim()
            .to_string()
    }

    /// Stops the owner's pool; returns once it is stopped.
    fn stop_pool(&mut self) {
        let stdin = self.stdin.as_mut().expect("stdin");
        writeln!(stdin, "stop").expect("write to the owner");
        stdin.flush().expect("flush");
        assert_eq!(self.line(), "stopped");
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, and waits for it to be gone.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        self.kill();
    }
}

fn cluster(url: &str) -> Cluster {
    let url = url.to_string();
    within("connect", move || Cluster::connect(url)).expect("connects")
}

fn lookup(c: &Cluster, name: &str) -> Result<TallyHandle, Error> {
    let (c, name) = (c.clone(), name.to_string());
    within("lookup", move || Tally::lookup(&c, &name))
}

fn init_named(c: &Cluster, name: &str) -> Result<TallyHandle, Error> {
    let (c, name) = (c.clone(), name.to_string());
    within("init", move || {
        Tally::options()
            .mode(Mode::Cluster)
            .cluster(c)
            .name(name)
            .init(100)
    })
}

fn get<T>(p: concurry::Promise<T>) -> Result<T, Error> {
    p.result_timeout(HANG)
}

#[test]
fn a_named_pool_looked_up_from_another_process_calls_the_same_instances() {
    let Some(s) = LocalServer::for_tests() else {
        return;
    };
    let node = NodeProc::start(&s.url(), "a", 2);
    let c = cluster(&s.url());
    c.wait_for_nodes(1, HANG).unwrap();
    let owner = Owner::start(&s.url(), "cache");
    // The owner's `add(1)` made its instance 1: a handle here sees (and changes) that state.
    let h1 = lookup(&c, "cache").expect("found");
    assert_eq!(get(h1.add(5)).unwrap(), 6);
    let h2 = lookup(&c, "cache").expect("found again");
    assert_eq!(get(h2.add(1)).unwrap(), 7);
    assert_eq!(get(h1.add(1)).unwrap(), 8);
    // It runs on the node, not in the owner or here.
    assert_eq!(get(h1.pid()).unwrap(), node.child.id());
    // Many in flight at once, each with its own answer.
    let many: Vec<_> = (0..32).map(|i| h2.slow(i, 0)).collect();
    for (i, f) in many.into_iter().enumerate() {
        assert_eq!(get(f).unwrap(), i as u64);
    }
    // The registry lists it, with where its instance is now.
    let pools = c.pools().unwrap();
    let cache = pools
        .iter()
        .find(|p| p.name.as_deref() == Some("cache"))
        .unwrap_or_else(|| panic!("`cache` is listed: {pools:?}"));
    assert_eq!(cache.worker, <Tally as concurry::RemoteWorker>::NAME);
    assert_eq!(cache.workers, 1);
    assert_eq!(cache.owner_pid, owner.pid());
    assert_eq!(cache.instances.get("a"), Some(&1), "{cache:?}");
    // Stopping a looked-up handle detaches it; the owner's pool serves on.
    h1.stop().unwrap();
    assert!(matches!(get(h1.add(1)), Err(Error::Stopped)));
    assert_eq!(get(h2.add(1)).unwrap(), 9);
    drop(h2);
    assert_eq!(get(lookup(&c, "cache").unwrap().add(1)).unwrap(), 10);
}

#[test]
fn a_taken_name_is_refused_at_once_and_is_free_again_once_its_owner_stops() {
    let Some(s) = LocalServer::for_tests() else {
        return;
    };
    let _node = NodeProc::start(&s.url(), "a", 2);
    let c = cluster(&s.url());
    c.wait_for_nodes(1, HANG).unwrap();
    let mut owner = Owner::start(&s.url(), "cache");
    let e = init_named(&c, "cache").unwrap_err();
    let text = e.to_string();
    match &e {
        Error::Config(cfg) => assert_eq!(cfg.option(), "name"),
        other => panic!("expected Config, got {other:?}"),
    }
    assert!(
        text.contains("cache") && text.contains("taken") && text.contains(&owner.pid().to_string()),
        "{text}"
    );
    // An unknown name: typed, naming it and the pools seen.
    let e = lookup(&c, "nope").unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, Error::Config(_)), "{e:?}");
    assert!(text.contains("nope") && text.contains("`cache`"), "{text}");
    // A name that cannot be a subject token.
    assert!(matches!(init_named(&c, "a b"), Err(Error::Config(_))));
    owner.stop_pool();
    // Free at once: the owner released it in `stop()`.
    let mine = init_named(&c, "cache").expect("the name is free again");
    assert_eq!(get(mine.add(1)).unwrap(), 101);
    // And it is now this process's: a lookup reaches this pool.
    assert_eq!(get(lookup(&c, "cache").unwrap().add(1)).unwrap(), 102);
    drop(mine);
    // Dropped: released too.
    assert!(lookup(&c, "cache").is_err());
}

#[test]
fn the_owners_death_fails_looked_up_calls_typed_and_frees_the_name() {
    let Some(s) = LocalServer::for_tests() else {
        return;
    };
    let _node = NodeProc::start(&s.url(), "a", 2);
    let c = cluster(&s.url());
    c.wait_for_nodes(1, HANG).unwrap();
    let mut owner = Owner::start(&s.url(), "cache");
    let h = lookup(&c, "cache").unwrap();
    assert_eq!(get(h.add(1)).unwrap(), 2);
    let in_flight = h.slow(1, 20_000);
    owner.kill();
    // In flight: lost, within the owner check (about a second), not after the call's 20 s.
    let started = std::time::Instant::now();
    match get(in_flight) {
        Err(Error::WorkerLost { message }) => assert!(message.contains("gone"), "{message}"),
        other => panic!("expected WorkerLost, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(15));
    // Later calls too, at once.
    assert!(matches!(get(h.add(1)), Err(Error::WorkerLost { .. })));
    // The dead owner's name is free: a new pool takes it over.
    let mine = init_named(&c, "cache").expect("the dead owner's name is free");
    assert_eq!(get(mine.add(1)).unwrap(), 101);
    assert!(
        c.pools()
            .unwrap()
            .iter()
            .all(|p| p.owner_pid != owner.pid()),
        "the dead owner's pool is not listed"
    );
}

#[test]
fn unnamed_pools_are_listed_by_id_and_leave_the_list_when_stopped() {
    let Some(s) = LocalServer::for_tests() else {
        return;
    };
    let _node = NodeProc::start(&s.url(), "a", 2);
    let c = cluster(&s.url());
    c.wait_for_nodes(1, HANG).unwrap();
    let p = {
        let c = c.clone();
        within("init", move || {
            Tally::options().mode(Mode::Cluster).cluster(c).init(0)
        })
        .unwrap()
    };
    let pools = c.pools().unwrap();
    assert_eq!(pools.len(), 1, "{pools:?}");
    assert_eq!(pools[0].name, None);
    assert_eq!(pools[0].id.len(), 16);
    assert_eq!(pools[0].owner_pid, std::process::id());
    assert_eq!(pools[0].instances.get("a"), Some(&1));
    p.stop().unwrap();
    assert!(c.pools().unwrap().is_empty());
}
