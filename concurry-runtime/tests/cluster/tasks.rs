//! Durable tasks (issue 14) against a real nats-server with JetStream on file storage: the
//! stores created once, submit and run by name, the same id twice, unknown tasks and foreign
//! schemas, a node killed mid-task, retries and dead letters, cancels that survive restarts,
//! priorities under a flood, delays longer than the lease, a server restart, a result
//! collected by another process, and result expiry.
//!
//! Tasks run in this process (an in-process `Node`) where the test counts runs, and in node
//! child processes (this binary re-executed, see `enter_task_role`) where one is killed.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use concurry::cluster::{
    Cluster, LocalServer, Node, Priority, RunningNode, Submit, TaskConfig, TaskQueue, TaskStatus,
};
use concurry::{Error, RemoteTask, RetryConfig};

use crate::support::{HANG, eventually, within};

// ---------------------------------------------------------------- tasks of this binary

#[concurry::task(remote)]
fn add(a: u64, b: u64) -> u64 {
    a + b
}

/// Runs per key, in this process.
static RUNS: Mutex<Option<HashMap<String, u32>>> = Mutex::new(None);

fn runs(key: &str) -> u32 {
    RUNS.lock()
        .unwrap()
        .as_ref()
        .and_then(|m| m.get(key).copied())
        .unwrap_or(0)
}

#[concurry::task(remote)]
fn count(key: String) -> u32 {
    let mut m = RUNS.lock().unwrap();
    let n = m.get_or_insert_with(HashMap::new).entry(key).or_insert(0);
    *n += 1;
    *n
}

/// The order tasks ran in, per test.
static ORDER: Mutex<Vec<String>> = Mutex::new(Vec::new());

#[concurry::task(remote)]
fn record(label: String) {
    ORDER.lock().unwrap().push(label);
}

#[concurry::task(remote)]
fn nap(ms: u64) -> u32 {
    std::thread::sleep(Duration::from_millis(ms));
    std::process::id()
}

#[concurry::task(remote)]
fn poison(why: String) -> u32 {
    panic!("poison: {why}")
}

/// Keys for which `flaky` panics.
static BROKEN: Mutex<Vec<String>> = Mutex::new(Vec::new());

#[concurry::task(remote)]
fn flaky(key: String) -> String {
    if BROKEN.lock().unwrap().contains(&key) {
        panic!("{key} is broken");
    }
    key
}

/// Keys whose `spin` saw its cancel.
static SAW_CANCEL: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Spins until cancelled (at most [`HANG`]).
#[concurry::task(remote)]
fn spin(key: String) -> bool {
    let deadline = Instant::now() + HANG;
    while Instant::now() < deadline {
        if concurry::check_cancelled().is_err() {
            SAW_CANCEL.lock().unwrap().push(key);
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

/// A task no node has (not registered).
struct Unregistered;
impl RemoteTask for Unregistered {
    const NAME: &'static str = "tests::tasks::Unregistered";
    type Args = ();
    type Output = ();
    fn run((): ()) {}
}

/// `add` as another build defines it: same name, another schema (not registered).
struct OtherAdd;
impl RemoteTask for OtherAdd {
    const NAME: &'static str = <add::Task as RemoteTask>::NAME;
    const SCHEMA: u64 = <add::Task as RemoteTask>::SCHEMA ^ 1;
    type Args = (u64, u64, u64);
    type Output = u64;
    fn run((a, b, c): (u64, u64, u64)) -> u64 {
        a + b + c
    }
}

type Add = add::Task;
type Count = count::Task;
type Record = record::Task;
type Nap = nap::Task;
type Poison = poison::Task;
type Flaky = flaky::Task;
type Spin = spin::Task;

// ---------------------------------------------------------------- helpers

fn connect(url: &str) -> Cluster {
    let url = url.to_string();
    within("connect", move || Cluster::connect(url)).expect("connects")
}

fn queue(c: &Cluster, config: TaskConfig) -> TaskQueue {
    let c = c.clone();
    within("open the task queue", move || c.tasks_with(config)).expect("opens")
}

/// A node in this process serving tasks.
fn node(c: &Cluster, name: &str, config: TaskConfig) -> RunningNode {
    let c = c.clone();
    let name = name.to_string();
    within("start a node", move || {
        Node::new(c).name(name).capacity(2).tasks(config).start()
    })
    .expect("node starts")
}

fn short() -> TaskConfig {
    TaskConfig::new().lease(Duration::from_secs(1))
}

// ---------------------------------------------------------------- child roles

const NODE_URL: &str = "CONCURRY_TEST_TASK_NODE";
const NODE_NAME: &str = "CONCURRY_TEST_TASK_NODE_NAME";
const NODE_LEASE_MS: &str = "CONCURRY_TEST_TASK_NODE_LEASE_MS";
const SUBMIT_URL: &str = "CONCURRY_TEST_TASK_SUBMIT";

/// In a child: serve tasks as a node until SIGTERM, or submit one task, print its id and
/// exit.
#[ctor::ctor]
fn enter_task_role() {
    if let Ok(url) = std::env::var(NODE_URL) {
        let run = || -> Result<(), Error> {
            let lease = std::env::var(NODE_LEASE_MS)
                .expect("lease")
                .parse()
                .expect("ms");
            Node::connect(url)?
                .name(std::env::var(NODE_NAME).expect("name"))
                .capacity(2)
                .tasks(TaskConfig::new().lease(Duration::from_millis(lease)))
                .serve()
        };
        std::process::exit(match run() {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("task node: {e}");
                3
            }
        });
    }
    if let Ok(url) = std::env::var(SUBMIT_URL) {
        let run = || -> Result<String, Error> {
            let q = Cluster::connect(url)?.tasks()?;
            Ok(q.submit::<Add>((40, 2))?.task_id().to_string())
        };
        match run() {
            Ok(id) => {
                println!("{id}");
                std::process::exit(0);
            }
            Err(e) => {
                eprintln!("submitter: {e}");
                std::process::exit(3);
            }
        }
    }
}

/// A task node child process; SIGKILLed when dropped.
struct TaskNode {
    child: Child,
}

impl TaskNode {
    fn start(url: &str, name: &str, lease: Duration) -> TaskNode {
        let child = Command::new(std::env::current_exe().unwrap())
            .env(NODE_URL, url)
            .env(NODE_NAME, name)
            .env(NODE_LEASE_MS, lease.as_millis().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn a task node");
        TaskNode { child }
    }
}

impl Drop for TaskNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------- 1. stores

#[test]
fn the_stream_and_buckets_are_created_once_with_their_limits() {
    let Some(s) = LocalServer::for_tests() else {
        return;
    };
    let c = connect(&s.url());
    let config = TaskConfig::new()
        .result_ttl(Duration::from_secs(3600))
        .result_max_bytes(8 << 20);
    let _a = queue(&c, config.clone());
    let _b = queue(&c, config); // idempotent: the second open finds them
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let js = async_nats::jetstream::new(async_nats::connect(s.url()).await.unwrap());
        let mut tasks = js.get_stream("CC_default_TASKS").await.unwrap();
        let info = tasks.info().await.unwrap().config.clone();
        assert_eq!(
            info.retention,
            async_nats::jetstream::stream::RetentionPolicy::WorkQueue
        );
        assert_eq!(
            info.storage,
            async_nats::jetstream::stream::StorageType::File
        );
        assert_eq!(info.duplicate_window, Duration::from_secs(600));
        let mut results = js.get_stream("KV_CC_default_results").await.unwrap();
        let r = results.info().await.unwrap().config.clone();
        assert_eq!(r.max_age, Duration::from_secs(3600));
        assert_eq!(r.max_bytes, 8 << 20);
        assert_eq!(r.max_messages_per_subject, 1);
        for b in ["CC_default_status", "CC_default_cancel", "CC_default_dlq"] {
            js.get_key_value(b).await.unwrap();
        }
    });
    let c2 = c.clone();
    let e = within("bad config", move || {
        c2.tasks_with(TaskConfig::new().lease(Duration::from_millis(1)))
    })
    .unwrap_err();
    assert!(
        matches!(&e, Error::Config(cfg) if cfg.option() == "lease"),
        "{e}"
    );
    let q = queue(&c, TaskConfig::new());
    let e = q
        .submit_with::<Add>((1, 2), Submit::new().id("no spaces"))
        .unwrap_err();
    assert!(e.to_string().contains("\"no spaces\""), "{e}");
}

// ---------------------------------------------------------------- 2. run by name

#[test]
fn a_task_runs_on_a_node_by_name_and_its_result_is_typed() {
    let Some(s) = LocalServer::for_tests() else {
        return;
    };
    let c = connect(&s.url());
    let q = queue(&c, short());
    let t = q.submit::<Add>((2, 3)).unwrap();
    assert!(
        matches!(t.status().unwrap(), TaskStatus::Pending),
        "no node yet"
    );
    let _n = node(&c, "n1", short());
    assert_eq!(t.result_timeout(HANG).unwrap(), 5);
    assert_eq!(
        t.status().unwrap(),
        TaskStatus::Succeeded {
            node: "n1".into(),
            attempt: 1
        }
    );
    // From the cluster by id, and as a promise.
    let again = c.task_result::<Add>(t.task_id()).unwrap();
    assert_eq!(again.try_result().unwrap(), Some(5));
    assert_eq!(
        q.submit::<Add>((4, 4))
            .unwrap()
            .promise()
            .result_timeout(HANG)
            .unwrap(),
        8
    );
    eventually("the stream empties", || q.queued().unwrap() == 0);
}

#[test]
fn the_same_id_twice_is_one_run() {
    let Some(s) = LocalServer::for_tests() else {
        return;
    };
    let c = connect(&s.url());
    let q = queue(&c, short());
    let key = "dedup".to_string();
    let a = q
        .submit_with::<Count>((key.clone(),), Submit::new().id("invoice-42"))
        .unwrap();
    let b = q
        .submit_with::<Count>((key.clone(),), Submit::new().id("invoice-42"))
        .unwrap();
    assert_eq!(a.task_id(), b.task_id());
    assert_eq!(q.queued().unwrap(), 1, "the stream deduplicated the second");
    let _n = node(&c, "n1", short());
    assert_eq!(b.result_timeout(HANG).unwrap(), 1);
    // After its result, a third submit of the id is still the same task.
    q.submit_with::<Count>((key.clone(),), Submit::new().id("invoice-42"))
        .unwrap();
    eventually("the stream empties", || q.queued().unwrap() == 0);
    assert_eq!(runs(&key), 1);
    assert_eq!(a.result().unwrap(), 1);
}

#[test]
fn an_unknown_task_or_a_foreign_schema_fails_typed() {
    let Some(s) = LocalServer::for_tests() else {
        return;
    };
    let c = connect(&s.url());
    let q = queue(&c, short());
    let _n = node(&c, "n1", short());
    let e = q
        .submit::<Unregistered>(())
        .unwrap()
        .result_timeout(HANG)
        .unwrap_err();
    let Error::Config(cfg) = &e else {
        panic!("{e:?}")
    };
    assert_eq!(cfg.value(), Unregistered::NAME);
    assert!(e.to_string().contains("node `n1` has no task"), "{e}");
    let t = q.submit::<OtherAdd>((1, 2, 3)).unwrap();
    let e = t.result_timeout(HANG).unwrap_err();
    assert!(e.to_string().contains("schema fingerprint differs"), "{e}");
    assert!(matches!(t.status().unwrap(), TaskStatus::Failed { .. }));
}

// ---------------------------------------------------------------- 3. node death

#[test]
fn a_node_killed_mid_task_loses_it_to_another_with_attempt_2_and_one_result() {
    let Some(s) = LocalServer::for_tests() else {
        return;
    };
    let c = connect(&s.url());
    let lease = Duration::from_secs(1);
    let q = queue(&c, TaskConfig::new().lease(lease));
    let mut a = Some(TaskNode::start(&s.url(), "node-a", lease));
    let mut b = Some(TaskNode::start(&s.url(), "node-b", lease));
    c.wait_for_nodes(2, HANG).expect("both nodes up");
    let t = q.submit::<Nap>((1500,)).unwrap();
    let mut first = String::new();
    eventually("the task runs", || match t.status().unwrap() {
        TaskStatus::Running { node, attempt: 1 } => {
            first = node;
            true
        }
        _ => false,
    });
    let (victim, survivor) = if first == "node-a" {
        (a.take(), b.take())
    } else {
        (b.take(), a.take())
    };
    let survivor_pid = survivor.as_ref().unwrap().child.id();
    drop(victim); // SIGKILL mid-task
    let pid = t.result_timeout(HANG).expect("ran again elsewhere");
    assert_eq!(pid, survivor_pid, "the survivor stored the result");
    match t.status().unwrap() {
        TaskStatus::Succeeded { node, attempt } => {
            assert_ne!(node, first);
            assert_eq!(attempt, 2);
        }
        other => panic!("{other:?}"),
    }
    eventually("the stream empties", || q.queued().unwrap() == 0);
    drop(survivor);
}

// ---------------------------------------------------------------- 4. retries, dead letters

#[test]
fn a_poison_task_is_dead_lettered_after_its_attempts_then_listed_replayed_purged() {
    let Some(s) = LocalServer::for_tests() else {
        return;
    };
    let c = connect(&s.url());
    let q = queue(&c, short());
    let _n = node(&c, "n1", short());
    let retry = RetryConfig::attempts(3)
        .wait(Duration::from_millis(50))
        .retry_on_panic(true);
    let t = q
        .submit_with::<Poison>(
            ("bad input".into(),),
            Submit::new().id("poison-1").retry(retry),
        )
        .unwrap();
    match t.result_timeout(HANG).unwrap_err() {
        Error::RetriesExhausted { attempts, last, .. } => {
            assert_eq!(attempts, 3);
            assert!(matches!(&*last, Error::Panicked { message } if message.contains("bad input")));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        t.status().unwrap(),
        TaskStatus::DeadLettered { attempts: 3, .. }
    ));
    // A panic without retries is judged fatal at once.
    BROKEN.lock().unwrap().push("k1".into());
    let f = q
        .submit_with::<Flaky>(("k1".into(),), Submit::new().id("flaky-1"))
        .unwrap();
    assert!(matches!(
        f.result_timeout(HANG).unwrap_err(),
        Error::Panicked { .. }
    ));
    let dead = q.dead_letters().unwrap();
    assert_eq!(dead.len(), 2, "{dead:?}");
    let p = dead.iter().find(|d| d.id == "poison-1").unwrap();
    assert_eq!(p.attempts, 3);
    assert_eq!(p.task, Poison::NAME);
    assert!(p.reason.contains("3 attempts ran out"), "{}", p.reason);
    assert!(
        p.last_error.contains("poison: bad input"),
        "{}",
        p.last_error
    );
    let k = dead.iter().find(|d| d.id == "flaky-1").unwrap();
    assert_eq!(k.attempts, 1);
    assert!(k.reason.contains("not retried"), "{}", k.reason);
    // Fixed: the replay runs it again under its id.
    BROKEN.lock().unwrap().clear();
    q.replay("flaky-1").unwrap();
    assert_eq!(f.result_timeout(HANG).unwrap(), "k1");
    assert_eq!(q.dead_letters().unwrap().len(), 1);
    assert!(
        q.replay("flaky-1")
            .unwrap_err()
            .to_string()
            .contains("no dead letter")
    );
    assert_eq!(q.purge_dead_letters().unwrap(), 1);
    assert!(q.dead_letters().unwrap().is_empty());
    // A replay that fails again is dead-lettered again, also when the node runs it before
    // the replay has finished: removing the old letter must not remove the new one.
    BROKEN.lock().unwrap().push("k2".into());
    let g = q
        .submit_with::<Flaky>(("k2".into(),), Submit::new().id("flaky-2"))
        .unwrap();
    assert!(g.result_timeout(HANG).is_err());
    for round in 0..10 {
        q.replay("flaky-2").unwrap();
        assert!(g.result_timeout(HANG).is_err());
        // (The result is stored after the letter, so the letter is there by now.)
        let dead = q.dead_letters().unwrap();
        assert!(
            dead.iter().any(|d| d.id == "flaky-2"),
            "round {round}: {dead:?}"
        );
    }
}

// ---------------------------------------------------------------- 5. cancel

#[test]
fn a_cancelled_task_never_runs_also_after_a_server_and_node_restart() {
    let Some(mut s) = LocalServer::for_tests() else {
        return;
    };
    let c = connect(&s.url());
    let q = queue(&c, short());
    let key = "revoked".to_string();
    let queued = q.submit::<Count>((key.clone(),)).unwrap();
    let delayed = q
        .submit_with::<Count>((key.clone(),), Submit::new().delay(Duration::from_secs(1)))
        .unwrap();
    assert!(matches!(
        delayed.status().unwrap(),
        TaskStatus::Scheduled { .. }
    ));
    assert!(queued.cancel().unwrap());
    assert!(c.cancel(delayed.task_id()).unwrap());
    assert_eq!(delayed.status().unwrap(), TaskStatus::Cancelled);
    assert!(matches!(queued.result().unwrap_err(), Error::Cancelled));
    assert_eq!(
        q.queued().unwrap(),
        0,
        "a cancel removes the task's message"
    );
    // A revoke in advance: the id is submitted only after the server restarted.
    assert!(q.cancel("revoked-ahead").unwrap());
    drop((q, c));
    s.restart().expect("server restarts on the same store");
    let c = connect(&s.url());
    let q = queue(&c, short());
    let ahead = q
        .submit_with::<Count>((key.clone(),), Submit::new().id("revoked-ahead"))
        .unwrap();
    assert_eq!(q.queued().unwrap(), 1, "stored, revoked");
    let n = node(&c, "n1", short());
    eventually("the node drops it", || q.queued().unwrap() == 0);
    assert!(matches!(ahead.result().unwrap_err(), Error::Cancelled));
    drop(n);
    let _n = node(&c, "n2", short());
    // A task that did run, for contrast, and a cancel after it: false, the result stays.
    let done = q.submit::<Add>((1, 1)).unwrap();
    assert_eq!(done.result_timeout(HANG).unwrap(), 2);
    assert!(!done.cancel().unwrap());
    assert_eq!(done.result().unwrap(), 2);
    assert_eq!(runs(&key), 0, "a revoked task never ran");
}

#[test]
fn a_running_task_sees_its_cancel_and_its_result_is_dropped() {
    let Some(s) = LocalServer::for_tests() else {
        return;
    };
    let c = connect(&s.url());
    let q = queue(&c, short());
    let _n = node(&c, "n1", short());
    let t = q.submit::<Spin>(("spun".into(),)).unwrap();
    eventually("it runs", || {
        matches!(t.status().unwrap(), TaskStatus::Running { .. })
    });
    assert!(t.cancel().unwrap());
    assert!(matches!(
        t.result_timeout(HANG).unwrap_err(),
        Error::Cancelled
    ));
    eventually("the function saw the cancel", || {
        SAW_CANCEL.lock().unwrap().contains(&"spun".to_string())
    });
    eventually("the stream empties", || q.queued().unwrap() == 0);
    assert_eq!(
        t.status().unwrap(),
        TaskStatus::Cancelled,
        "its own result was dropped"
    );
}

// ---------------------------------------------------------------- 6. priorities, delays

#[test]
fn a_flood_of_high_tasks_does_not_starve_low_ones() {
    let Some(s) = LocalServer::for_tests() else {
        return;
    };
    let c = connect(&s.url());
    let q = queue(&c, short());
    let mut all = Vec::new();
    for i in 0..60 {
        let s = Submit::new().priority(Priority::High);
        all.push(q.submit_with::<Record>((format!("prio:H{i}"),), s).unwrap());
    }
    for i in 0..5 {
        let s = Submit::new().priority(Priority::Low);
        all.push(q.submit_with::<Record>((format!("prio:L{i}"),), s).unwrap());
    }
    let _n = node(&c, "n1", short().slots(1));
    for t in &all {
        t.result_timeout(HANG).unwrap();
    }
    let order: Vec<String> = ORDER
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.starts_with("prio:"))
        .cloned()
        .collect();
    assert_eq!(order.len(), 65);
    let last_low = order.iter().rposition(|l| l.starts_with("prio:L")).unwrap();
    assert!(last_low < 45, "the last Low ran at {last_low}: {order:?}");
    let high_first = order[..20]
        .iter()
        .filter(|l| l.starts_with("prio:H"))
        .count();
    assert!(high_first >= 12, "High first: {order:?}");
}

#[test]
fn a_delay_longer_than_the_lease_runs_once_and_not_before_its_time() {
    let Some(s) = LocalServer::for_tests() else {
        return;
    };
    let c = connect(&s.url());
    let lease = TaskConfig::new().lease(Duration::from_millis(500));
    let q = queue(&c, lease.clone());
    let _n = node(&c, "n1", lease);
    let key = "delayed".to_string();
    let delay = Duration::from_secs(2);
    let submitted = Instant::now();
    let t = q
        .submit_with::<Count>((key.clone(),), Submit::new().delay(delay))
        .unwrap();
    assert!(matches!(t.status().unwrap(), TaskStatus::Scheduled { .. }));
    assert_eq!(t.result_timeout(HANG).unwrap(), 1);
    assert!(
        submitted.elapsed() >= delay,
        "ran after {:?}",
        submitted.elapsed()
    );
    eventually("the stream empties", || q.queued().unwrap() == 0);
    assert_eq!(runs(&key), 1, "four lease periods of delay, one run");
    assert!(matches!(
        t.status().unwrap(),
        TaskStatus::Succeeded { attempt: 1, .. }
    ));
}

// ---------------------------------------------------------------- 7. durability, other processes

#[test]
fn queued_tasks_and_results_survive_a_server_restart() {
    let Some(mut s) = LocalServer::for_tests() else {
        return;
    };
    let c = connect(&s.url());
    let q = queue(&c, short());
    let n = node(&c, "n1", short());
    let done = q.submit::<Add>((20, 1)).unwrap();
    assert_eq!(done.result_timeout(HANG).unwrap(), 21);
    drop(n);
    let later: Vec<String> = (0..3)
        .map(|i| q.submit::<Add>((i, 100)).unwrap().task_id().to_string())
        .collect();
    let delayed = q
        .submit_with::<Add>((7, 7), Submit::new().delay(Duration::from_millis(500)))
        .unwrap()
        .task_id()
        .to_string();
    drop((q, c));
    s.restart().expect("server restarts on the same store");
    let c = connect(&s.url());
    assert_eq!(
        c.task_result::<Add>(done.task_id())
            .unwrap()
            .result()
            .unwrap(),
        21
    );
    let _n = node(&c, "n2", short());
    for (i, id) in later.iter().enumerate() {
        let r = c
            .task_result::<Add>(id)
            .unwrap()
            .result_timeout(HANG)
            .unwrap();
        assert_eq!(r, i as u64 + 100);
    }
    assert_eq!(
        c.task_result::<Add>(&delayed)
            .unwrap()
            .result_timeout(HANG)
            .unwrap(),
        14
    );
}

#[test]
fn a_submitter_that_exited_leaves_a_result_another_process_collects_by_id() {
    let Some(s) = LocalServer::for_tests() else {
        return;
    };
    let out = Command::new(std::env::current_exe().unwrap())
        .env(SUBMIT_URL, s.url())
        .output()
        .expect("run the submitter");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let c = connect(&s.url());
    assert_eq!(c.task_status(&id).unwrap(), TaskStatus::Pending);
    let _n = node(&c, "n1", short());
    assert_eq!(
        c.task_result::<Add>(&id)
            .unwrap()
            .result_timeout(HANG)
            .unwrap(),
        42
    );
}

#[test]
fn results_expire_after_their_ttl() {
    let Some(s) = LocalServer::for_tests() else {
        return;
    };
    let c = connect(&s.url());
    let config = short().result_ttl(Duration::from_secs(1));
    let q = queue(&c, config.clone());
    let _n = node(&c, "n1", config);
    let t = q.submit::<Add>((1, 2)).unwrap();
    assert_eq!(t.result_timeout(HANG).unwrap(), 3);
    eventually("the result expires", || {
        t.status().unwrap() == TaskStatus::Unknown
    });
    assert_eq!(t.try_result().unwrap(), None);
    // A wait on an expired task ends with an error naming the id, not a hang.
    let e = t.result_timeout(HANG).unwrap_err();
    assert!(e.to_string().contains("result_ttl"), "{e}");
}

// ---------------------------------------------------------------- batches

#[test]
fn a_batch_is_submitted_pipelined_and_collected_on_one_watch() {
    let Some(s) = LocalServer::for_tests() else {
        return;
    };
    let c = connect(&s.url());
    let q = queue(&c, short());
    let n = node(&c, "n1", short());
    let early = q.submit::<Add>((1000, 0)).unwrap();
    assert_eq!(early.result_timeout(HANG).unwrap(), 1000);
    drop(n);
    let mut batch = q.submit_batch::<Add>((0..200).map(|i| (i, 1))).unwrap();
    assert_eq!(q.queued().unwrap(), 200);
    batch.push(early); // already finished: read directly
    batch.push(q.handle::<Add>("never-submitted").unwrap());
    let _n = node(&c, "n2", short());
    let results = q.results(&batch, HANG).unwrap();
    for (i, r) in results[..200].iter().enumerate() {
        assert_eq!(*r.as_ref().unwrap(), i as u64 + 1);
    }
    assert_eq!(*results[200].as_ref().unwrap(), 1000);
    let e = results[201].as_ref().unwrap_err();
    assert!(e.to_string().contains("never submitted"), "{e}");
}

/// More tasks in one batch than the JetStream context lets publishes await their acks at
/// once (5,000 by default): a batch that held every ack until all were sent stalled there.
const BIG: usize = 10_000;

#[test]
fn a_batch_larger_than_the_publish_ack_window_completes_each_task_once() {
    let Some(s) = LocalServer::for_tests() else {
        return;
    };
    let c = connect(&s.url());
    let config = TaskConfig::new().slots(64);
    let q = queue(&c, config.clone());
    let _n = node(&c, "n1", config);
    let (tx, rx) = std::sync::mpsc::channel();
    let submitter = q.clone();
    std::thread::spawn(move || {
        let keys: Vec<String> = (0..BIG).map(|i| format!("big-{i}")).collect();
        let batch = submitter
            .submit_batch::<Count>(keys.iter().cloned().map(|k| (k,)))
            .unwrap();
        let results = submitter.results(&batch, Duration::from_secs(60)).unwrap();
        let _ = tx.send((keys, batch, results));
    });
    let (keys, batch, results) = rx
        .recv_timeout(Duration::from_secs(90))
        .unwrap_or_else(|_| panic!("{BIG} tasks: not submitted and collected after 90 s"));
    assert_eq!(results.len(), BIG);
    for ((key, r), t) in keys.iter().zip(&results).zip(&batch) {
        assert_eq!(*r.as_ref().unwrap(), 1, "{key} ({})", t.task_id());
        assert_eq!(runs(key), 1, "{key} ran more than once");
    }
    let ids: std::collections::HashSet<&str> = batch.iter().map(|t| t.task_id()).collect();
    assert_eq!(ids.len(), BIG, "every task has its own id");
    eventually("the queue empties", || q.queued().unwrap() == 0);
}

#[test]
fn a_finished_task_submitted_again_after_the_dedup_window_is_not_queued_again() {
    let Some(s) = LocalServer::for_tests() else {
        return;
    };
    let c = connect(&s.url());
    let config = short().dedup_window(Duration::from_secs(1));
    let q = queue(&c, config.clone());
    let n = node(&c, "n1", config.clone());
    let key = "again".to_string();
    let t = q
        .submit_with::<Count>((key.clone(),), Submit::new().id("again-1"))
        .unwrap();
    assert_eq!(t.result_timeout(HANG).unwrap(), 1);
    eventually("the stream empties", || q.queued().unwrap() == 0);
    drop(n);
    // Past the stream's dedup window only the stored result tells it is the same task (a
    // node runs a first delivery without reading it).
    std::thread::sleep(Duration::from_millis(1500));
    q.submit_with::<Count>((key.clone(),), Submit::new().id("again-1"))
        .unwrap();
    assert_eq!(
        q.queued().unwrap(),
        0,
        "a finished task is not queued again"
    );
    let _n = node(&c, "n2", config);
    assert_eq!(t.result_timeout(HANG).unwrap(), 1);
    assert_eq!(runs(&key), 1);
}

#[test]
fn many_waits_share_one_consumer_of_the_results_bucket_and_a_batchs_own_need_none() {
    let Some(s) = LocalServer::for_tests() else {
        return;
    };
    let c = connect(&s.url());
    let q = queue(&c, short());
    let handles = q.submit_batch::<Add>((0..20).map(|i| (i, 1))).unwrap();
    let promises: Vec<_> = handles.iter().map(|t| t.promise()).collect();
    let url = s.url();
    let consumers = move || {
        let url = url.clone();
        within("read the results stream", move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let js = async_nats::jetstream::new(async_nats::connect(url).await?);
                let mut stream = js.get_stream("KV_CC_default_results").await?;
                Ok::<_, async_nats::Error>(stream.info().await?.state.consumer_count)
            })
        })
        .expect("stream info")
    };
    // A batch submitted here: its results come to this queue handle's inbox.
    let deadline = Instant::now() + Duration::from_secs(1);
    while Instant::now() < deadline {
        assert_eq!(consumers(), 0, "no watch for a queue handle's own tasks");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The same tasks waited on from another connection, by id: one shared watch.
    let other = connect(&s.url());
    let q2 = queue(&other, short());
    let by_id: Vec<_> = handles
        .iter()
        .map(|t| q2.handle::<Add>(t.task_id()).unwrap().promise())
        .collect();
    eventually("the waits watch the results", || consumers() >= 1);
    // A wait of its own each (as before) showed up as 20 consumers within milliseconds.
    let deadline = Instant::now() + Duration::from_secs(1);
    while Instant::now() < deadline {
        assert_eq!(consumers(), 1, "one shared watch for every wait");
        std::thread::sleep(Duration::from_millis(50));
    }
    let _n = node(&c, "n1", short());
    for (i, p) in by_id.into_iter().enumerate() {
        assert_eq!(p.result_timeout(HANG).unwrap(), i as u64 + 1);
    }
    for (i, p) in promises.into_iter().enumerate() {
        assert_eq!(p.result_timeout(HANG).unwrap(), i as u64 + 1);
    }
}

/// Two processes opening the same namespace's task queue at once (a node and a pool
/// starting together) both get it: the one whose create loses the race to the other's
/// takes the stream just made (the server refused its create: subjects overlap).
#[test]
fn two_handles_opening_a_fresh_namespace_at_once_both_get_it() {
    let Some(s) = LocalServer::for_tests() else {
        return;
    };
    for round in 0..6 {
        let ns = format!("race{round}");
        let opened: Vec<_> = (0..3)
            .map(|_| {
                let (url, ns) = (s.url(), ns.clone());
                std::thread::spawn(move || {
                    let c = Cluster::builder(url).namespace(ns).connect()?;
                    c.tasks().map(|_| ())
                })
            })
            .collect();
        for t in opened {
            t.join().unwrap().unwrap_or_else(|e| panic!("{ns}: {e}"));
        }
    }
}
