//! Durable tasks, issue 14's second half: periodic schedules (one run per tick with several
//! schedulers, removal, listing, a server restart), retries judged on the nodes, and the
//! hard `call_timeout` of a running task.
//!
//! Scheduler processes are node children of this binary (`enter_scheduler_role`); a task's
//! runs are counted as lines appended to a file, which works across processes.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use concurry::Error;
use concurry::cluster::{Cluster, LocalServer, Node, RunningNode, Schedule, Submit, TaskConfig};

use crate::support::{HANG, eventually, within};

// ---------------------------------------------------------------- tasks of this binary

/// Appends one line (this process's id) to the file `path`: one line per run.
#[concurry::task(remote)]
fn beat(path: String) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open the runs file");
    writeln!(f, "{}", std::process::id()).expect("append a run");
}

type Beat = beat::Task;

// ---------------------------------------------------------------- helpers

fn connect(url: &str) -> Cluster {
    let url = url.to_string();
    within("connect", move || Cluster::connect(url)).expect("connects")
}

/// A node in this process serving tasks (and running a scheduler).
fn node(c: &Cluster, name: &str) -> RunningNode {
    let c = c.clone();
    let name = name.to_string();
    within("start a node", move || {
        Node::new(c)
            .name(name)
            .capacity(2)
            .tasks(TaskConfig::new())
            .start()
    })
    .expect("node starts")
}

/// A fresh file path for one test's runs.
fn runs_file(test: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    std::env::temp_dir().join(format!(
        "concurry-{test}-{}-{nanos}.runs",
        std::process::id()
    ))
}

/// How many runs the file records.
fn runs(path: &PathBuf) -> usize {
    std::fs::read_to_string(path).map_or(0, |s| s.lines().count())
}

/// The keys of the results bucket (task ids) that start with `prefix`.
fn result_ids(url: &str, prefix: &str) -> Vec<String> {
    use futures_util::StreamExt;
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let js = async_nats::jetstream::new(async_nats::connect(url).await.unwrap());
        let kv = js.get_key_value("CC_default_results").await.unwrap();
        let mut keys = kv.keys().await.unwrap();
        let mut out = Vec::new();
        while let Some(k) = keys.next().await {
            let k = k.unwrap();
            if k.starts_with(prefix) {
                out.push(k);
            }
        }
        out
    })
}

// ---------------------------------------------------------------- scheduler children

const SCHED_URL: &str = "CONCURRY_TEST_SCHED_NODE";
const SCHED_NAME: &str = "CONCURRY_TEST_SCHED_NODE_NAME";

/// In a child: serve tasks (and schedules) as a node until SIGTERM.
#[ctor::ctor]
fn enter_scheduler_role() {
    let Ok(url) = std::env::var(SCHED_URL) else {
        return;
    };
    let run = || -> Result<(), Error> {
        Node::connect(url)?
            .name(std::env::var(SCHED_NAME).expect("name"))
            .capacity(2)
            .tasks(TaskConfig::new())
            .serve()
    };
    std::process::exit(match run() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("scheduler node: {e}");
            3
        }
    });
}

/// A node child process; SIGKILLed when dropped.
struct SchedulerNode {
    child: Child,
}

impl SchedulerNode {
    fn start(url: &str, name: &str) -> SchedulerNode {
        let child = Command::new(std::env::current_exe().unwrap())
            .env(SCHED_URL, url)
            .env(SCHED_NAME, name)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn a scheduler node");
        SchedulerNode { child }
    }
}

impl Drop for SchedulerNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------- 1. schedules

#[test]
fn a_schedule_with_two_schedulers_runs_once_per_tick_and_stops_when_removed() {
    let Some(s) = LocalServer::for_tests() else {
        return;
    };
    let url = s.url();
    let c = connect(&url);
    let q = within("open the queue", {
        let c = c.clone();
        move || c.tasks()
    })
    .unwrap();
    let _a = SchedulerNode::start(&url, "sched-a");
    let _b = SchedulerNode::start(&url, "sched-b");
    let c2 = c.clone();
    within("two nodes", move || c2.wait_for_nodes(2, HANG)).unwrap();
    let path = runs_file("ticks");
    let arg = path.to_string_lossy().into_owned();
    q.schedule::<Beat>("ticker", Schedule::every(Duration::from_secs(1)), (arg,))
        .unwrap();
    let created = q.schedules().unwrap()[0].created;
    // Several ticks, each submitted by both schedulers.
    eventually("four ticks ran", || runs(&path) >= 4);
    assert!(q.unschedule("ticker").unwrap());
    let removed = std::time::SystemTime::now();
    // A tick the schedulers were submitting as it was removed still runs: let them see
    // the removal, then let the queue drain.
    std::thread::sleep(Duration::from_millis(1500));
    eventually("the queue drains", || q.queued().unwrap() == 0);
    let ticks = result_ids(&url, "ticker=");
    let ran = runs(&path);
    assert!(ticks.len() >= 4, "{ticks:?}");
    // Each id is `ticker=<tick ms>`, a whole number of intervals after the creation, and
    // there were no more ticks than whole seconds passed (plus the one in flight).
    let created_ms = created
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let mut at: Vec<u128> = ticks
        .iter()
        .map(|t| t["ticker=".len()..].parse().expect("a tick's ms"))
        .collect();
    at.sort_unstable();
    at.dedup();
    assert_eq!(at.len(), ticks.len(), "{ticks:?}");
    assert!(
        at.iter()
            .all(|t| *t > created_ms && (t - created_ms) % 1000 == 0),
        "ticks {at:?} for a schedule created at {created_ms}"
    );
    let seconds = removed.duration_since(created).unwrap().as_secs() as usize;
    assert!(ran <= seconds + 1, "{ran} runs in {seconds} s of 1 s ticks");
    assert_eq!(
        ran,
        ticks.len(),
        "one run per tick: {ran} runs for the ticks {ticks:?}"
    );
    // Removed: three more intervals pass without a tick.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(runs(&path), ran, "a removed schedule fired again");
    assert_eq!(result_ids(&url, "ticker=").len(), ticks.len());
    assert!(!q.unschedule("ticker").unwrap(), "already removed");
    let _ = std::fs::remove_file(&path);
}

#[test]
fn schedules_are_listed_survive_a_server_restart_and_bad_ones_are_refused() {
    let Some(mut s) = LocalServer::for_tests() else {
        return;
    };
    let c = connect(&s.url());
    let q = within("open the queue", {
        let c = c.clone();
        move || c.tasks()
    })
    .unwrap();
    let path = runs_file("restart");
    let arg = path.to_string_lossy().into_owned();
    q.schedule::<Beat>(
        "beat",
        Schedule::every(Duration::from_secs(1)),
        (arg.clone(),),
    )
    .unwrap();
    let five = Schedule::cron("0 */5 * * * *").unwrap();
    q.schedule::<Beat>("every-5-min", five.clone(), (arg.clone(),))
        .unwrap();
    let listed = q.schedules().unwrap();
    let names: Vec<&str> = listed.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["beat", "every-5-min"]);
    assert_eq!(listed[1].schedule, five);
    assert_eq!(listed[1].task, <Beat as concurry::RemoteTask>::NAME);
    assert!(listed.iter().all(|s| s.next.is_some_and(|n| n > s.created)));

    // Bad input: named, with the fix.
    let e = Schedule::cron("*/5 * * *").unwrap_err();
    assert!(
        matches!(&e, Error::Config(cfg) if cfg.option() == "cron expression"),
        "{e}"
    );
    assert!(e.to_string().contains("\"*/5 * * *\"") && e.to_string().contains("5 fields"));
    let bad = |name: &str, sched: Schedule, submit: Submit| {
        q.schedule_with::<Beat>(name, sched, (arg.clone(),), submit)
            .unwrap_err()
            .to_string()
    };
    let sec = || Schedule::every(Duration::from_secs(1));
    assert!(bad("no spaces", sec(), Submit::new()).contains("\"no spaces\""));
    assert!(
        bad(
            "x",
            Schedule::every(Duration::from_millis(5)),
            Submit::new()
        )
        .contains("5ms")
    );
    assert!(bad("x", sec(), Submit::new().id("fixed")).contains("\"fixed\""));
    assert!(bad("x", sec(), Submit::new().delay(Duration::from_secs(1))).contains("delay"));
    assert_eq!(
        q.schedules().unwrap().len(),
        2,
        "nothing stored by a refusal"
    );

    // Durable: the schedules outlive the server's restart, and a node that starts after it
    // serves them.
    drop((q, c));
    s.restart().expect("server restarts on the same store");
    let c = connect(&s.url());
    let q = c.tasks().unwrap();
    assert_eq!(q.schedules().unwrap().len(), 2);
    let _n = node(&c, "n1");
    eventually("the schedule fires after the restart", || runs(&path) >= 2);
    assert!(q.unschedule("beat").unwrap());
    assert!(q.unschedule("every-5-min").unwrap());
    assert!(q.schedules().unwrap().is_empty());
    let _ = std::fs::remove_file(&path);
}

// ---------------------------------------------------------------- 2. retries on the nodes

use std::collections::HashMap;
use std::sync::Mutex;

use concurry::cluster::TaskStatus;
use concurry::{RemoteTask, RetryConfig, TaskOutput};

/// Calls per key, in this process.
static CALLS: Mutex<Option<HashMap<String, u32>>> = Mutex::new(None);

fn call(key: &str) -> u32 {
    let mut m = CALLS.lock().unwrap();
    let n = m
        .get_or_insert_with(HashMap::new)
        .entry(key.to_string())
        .or_insert(0);
    *n += 1;
    *n
}

fn calls(key: &str) -> u32 {
    CALLS
        .lock()
        .unwrap()
        .as_ref()
        .and_then(|m| m.get(key).copied())
        .unwrap_or(0)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
enum Trouble {
    Transient,
    Fatal,
}

/// Fails with `Transient` on its first call per key, then returns the call count; fails
/// with `Fatal` whenever asked to. Its own retries: 3 attempts, only `Transient` retried.
struct Fetch;
impl RemoteTask for Fetch {
    const NAME: &'static str = "tests::periodic::Fetch";
    type Args = (String, bool);
    type Output = Result<u32, Trouble>;
    fn run((key, fatal): (String, bool)) -> Result<u32, Trouble> {
        let n = call(&key);
        if fatal {
            Err(Trouble::Fatal)
        } else if n == 1 {
            Err(Trouble::Transient)
        } else {
            Ok(n)
        }
    }
    fn retry() -> Option<RetryConfig> {
        Some(
            RetryConfig::attempts(3)
                .wait(Duration::from_millis(20))
                .retry_on(|f| f.downcast_ref::<Trouble>() == Some(&Trouble::Transient)),
        )
    }
    fn inspect(output: &Self::Output) -> TaskOutput<'_> {
        TaskOutput::of_result(output)
    }
}
concurry::register_remote_task!(Fetch);

/// Returns `(its call count for the key, the count it must reach)`; its own retries accept
/// an output only once the count is reached, in up to 4 attempts.
struct Roll;
impl RemoteTask for Roll {
    const NAME: &'static str = "tests::periodic::Roll";
    type Args = (String, u32);
    type Output = (u32, u32);
    fn run((key, good_from): (String, u32)) -> (u32, u32) {
        (call(&key), good_from)
    }
    fn retry() -> Option<RetryConfig> {
        Some(
            RetryConfig::attempts(4)
                .wait(Duration::from_millis(20))
                .retry_until_named("count reached", |(n, from): &(u32, u32)| n >= from),
        )
    }
}
concurry::register_remote_task!(Roll);

#[test]
fn an_error_output_is_retried_on_the_node_then_succeeds_at_attempt_2() {
    let Some(s) = LocalServer::for_tests() else {
        return;
    };
    let c = connect(&s.url());
    let q = c.tasks().unwrap();
    let _n = node(&c, "n1");
    let t = q.submit::<Fetch>(("fetch-ok".into(), false)).unwrap();
    assert_eq!(t.result_timeout(HANG).unwrap(), Ok(2));
    assert_eq!(calls("fetch-ok"), 2);
    assert_eq!(
        t.status().unwrap(),
        TaskStatus::Succeeded {
            node: "n1".into(),
            attempt: 2
        }
    );
}

#[test]
fn retry_until_rejects_values_until_a_good_one_and_exhausted_is_a_validation_error() {
    let Some(s) = LocalServer::for_tests() else {
        return;
    };
    let c = connect(&s.url());
    let q = c.tasks().unwrap();
    let _n = node(&c, "n1");
    let t = q.submit::<Roll>(("roll-3".into(), 3)).unwrap();
    assert_eq!(t.result_timeout(HANG).unwrap(), (3, 3));
    assert!(matches!(
        t.status().unwrap(),
        TaskStatus::Succeeded { attempt: 3, .. }
    ));
    // Never good enough: four attempts, then the last value in a validation error.
    let t = q.submit::<Roll>(("roll-never".into(), 100)).unwrap();
    match t.result_timeout(HANG).unwrap_err() {
        Error::Validation {
            attempts,
            reason,
            outputs,
            ..
        } => {
            assert_eq!(attempts, 4);
            assert_eq!(reason, "count reached");
            assert_eq!(outputs.into_vec::<(u32, u32)>().unwrap(), [(4, 100)]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(calls("roll-never"), 4);
    assert!(matches!(
        t.status().unwrap(),
        TaskStatus::DeadLettered { attempts: 4, .. }
    ));
}

#[test]
fn an_error_retry_on_declines_is_dead_lettered_after_one_attempt() {
    let Some(s) = LocalServer::for_tests() else {
        return;
    };
    let c = connect(&s.url());
    let q = c.tasks().unwrap();
    let _n = node(&c, "n1");
    let t = q
        .submit_with::<Fetch>(("fetch-fatal".into(), true), Submit::new().id("fatal-1"))
        .unwrap();
    // The typed handle gives the task's own error back.
    assert_eq!(t.result_timeout(HANG).unwrap(), Err(Trouble::Fatal));
    assert_eq!(calls("fetch-fatal"), 1);
    assert!(matches!(
        t.status().unwrap(),
        TaskStatus::DeadLettered { attempts: 1, .. }
    ));
    let dead = q.dead_letters().unwrap();
    let d = dead
        .iter()
        .find(|d| d.id == "fatal-1")
        .expect("dead letter");
    assert_eq!(d.attempts, 1);
    assert!(d.reason.contains("retry_on declined"), "{}", d.reason);
    assert!(d.last_error.contains("Fatal"), "{}", d.last_error);
}

// ---------------------------------------------------------------- 3. call_timeout

/// Sleeps `ms` ignoring its cancellation token, then records that it returned.
#[concurry::task(remote)]
fn stubborn(key: String, ms: u64) -> u32 {
    std::thread::sleep(Duration::from_millis(ms));
    call(&key)
}

/// Loops until its token is signalled (at most [`HANG`]); records the key when it saw it.
#[concurry::task(remote)]
fn patient(key: String) -> bool {
    let deadline = Instant::now() + HANG;
    while Instant::now() < deadline {
        if concurry::check_cancelled().is_err() {
            call(&key);
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

type Stubborn = stubborn::Task;
type Patient = patient::Task;

#[test]
fn a_task_past_its_call_timeout_is_failed_retried_then_dead_lettered_and_frees_its_slot() {
    let Some(s) = LocalServer::for_tests() else {
        return;
    };
    let c = connect(&s.url());
    let q = c.tasks().unwrap();
    // Two slots: both attempts' threads outlive their timeouts.
    let _n = node(&c, "n1");
    let submit = Submit::new()
        .id("stubborn-1")
        .call_timeout(Duration::from_millis(300))
        .retry(RetryConfig::attempts(2).wait(Duration::from_millis(20)));
    let t = q
        .submit_with::<Stubborn>(("stubborn".into(), 120_000), submit)
        .unwrap();
    match t.result_timeout(HANG).unwrap_err() {
        Error::RetriesExhausted { attempts, last, .. } => {
            assert_eq!(attempts, 2);
            assert!(matches!(*last, Error::Timeout), "{last:?}");
        }
        other => panic!("{other:?}"),
    }
    let dead = q.dead_letters().unwrap();
    let d = dead
        .iter()
        .find(|d| d.id == "stubborn-1")
        .expect("dead letter");
    assert!(d.last_error.contains("call_timeout"), "{}", d.last_error);
    assert_eq!(
        calls("stubborn"),
        0,
        "the sleeping threads have not returned"
    );
    // Their slots are free again: another task runs while they still sleep.
    let quick = q.submit::<Stubborn>(("quick".into(), 0)).unwrap();
    assert_eq!(quick.result_timeout(HANG).unwrap(), 1);
    // A task that watches its token sees the signal at the timeout.
    let p = q
        .submit_with::<Patient>(
            ("patient".into(),),
            Submit::new().call_timeout(Duration::from_millis(100)),
        )
        .unwrap();
    assert!(matches!(
        p.result_timeout(HANG).unwrap_err(),
        Error::Timeout
    ));
    eventually("the task saw its cancel", || calls("patient") == 1);
    let e = q
        .submit_with::<Patient>(("x".into(),), Submit::new().call_timeout(Duration::ZERO))
        .unwrap_err();
    assert!(e.to_string().contains("call_timeout"), "{e}");
}

fn transient(e: &String) -> bool {
    e == "transient"
}

/// As [`Fetch`], written with `#[task(remote)]` and `#[retry]`.
#[concurry::task(remote)]
#[retry(attempts = 3, on = transient)]
fn fetch_fn(key: String, fatal: bool) -> Result<u32, String> {
    let n = call(&key);
    if fatal {
        Err("fatal".into())
    } else if n == 1 {
        Err("transient".into())
    } else {
        Ok(n)
    }
}

#[test]
fn a_task_functions_retry_attribute_is_honoured_on_the_node() {
    let Some(s) = LocalServer::for_tests() else {
        return;
    };
    let c = connect(&s.url());
    let q = c.tasks().unwrap();
    let _n = node(&c, "n1");
    let t = q
        .submit::<fetch_fn::Task>(("fetch-fn-ok".into(), false))
        .unwrap();
    assert_eq!(t.result_timeout(HANG).unwrap(), Ok(2));
    assert!(matches!(
        t.status().unwrap(),
        TaskStatus::Succeeded { attempt: 2, .. }
    ));
    let f = q
        .submit_with::<fetch_fn::Task>(
            ("fetch-fn-fatal".into(), true),
            Submit::new().id("fetch-fn-fatal"),
        )
        .unwrap();
    assert_eq!(f.result_timeout(HANG).unwrap(), Err("fatal".to_string()));
    assert_eq!(calls("fetch-fn-fatal"), 1);
    let dead = q.dead_letters().unwrap();
    let d = dead.iter().find(|d| d.id == "fetch-fn-fatal").unwrap();
    assert!(d.last_error.contains("\"fatal\""), "{}", d.last_error);
}
