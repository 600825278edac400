//! `#[task(remote)]`: the same function runs in child processes (`Mode::Process`, children
//! running it by name) and in this process (every other mode); submit, map and
//! map_unordered work alike, errors stay typed, a panic is `Error::Panicked`, a child that
//! dies is `Error::WorkerLost` and is replaced, and `stop()` reaps every child.

use std::path::Path;
use std::time::Duration;

use concurry::__private::serde::{Deserialize, Serialize};
use concurry::prelude::*;

/// Bounds every wait, so a broken test fails instead of hanging.
const HANG: Duration = Duration::from_secs(60);

/// A return type and an error type that cross the process boundary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(crate = "concurry::__private::serde")]
pub struct Parsed {
    pub value: u64,
    pub pid: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(crate = "concurry::__private::serde")]
pub enum ParseFailure {
    Empty,
    NotANumber(String),
}

#[concurry::task(remote)]
pub fn pid() -> u32 {
    std::process::id()
}

#[concurry::task(remote)]
pub fn square(x: u64) -> u64 {
    x * x
}

#[concurry::task(remote)]
pub fn parse(text: String, offset: u64) -> Result<Parsed, ParseFailure> {
    if text.is_empty() {
        return Err(ParseFailure::Empty);
    }
    let value: u64 = text
        .parse()
        .map_err(|_| ParseFailure::NotANumber(text.clone()))?;
    Ok(Parsed {
        value: value + offset,
        pid: std::process::id(),
    })
}

#[concurry::task(remote)]
pub async fn label(x: u64, prefix: String) -> String {
    format!("{prefix}{x}")
}

/// What `crash` does.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(crate = "concurry::__private::serde")]
pub enum Fate {
    Live,
    Panic,
    Abort,
    Spin,
}

#[concurry::task(remote)]
pub fn crash(fate: Fate) -> u32 {
    match fate {
        Fate::Live => std::process::id(),
        Fate::Panic => panic!("task panicked"),
        Fate::Abort => std::process::abort(),
        Fate::Spin => loop {
            std::hint::spin_loop();
        },
    }
}

/// Fails until the marker file exists, creating it: the second attempt succeeds, in
/// whichever child it runs.
#[concurry::task(remote)]
#[retry(attempts = 2)]
pub fn second_time(marker: String) -> Result<u32, String> {
    if Path::new(&marker).exists() {
        Ok(std::process::id())
    } else {
        std::fs::write(&marker, b"").map_err(|e| e.to_string())?;
        Err("first attempt".into())
    }
}

/// Process mode from the attribute: the implicit pool runs in child processes.
#[concurry::task(remote, mode = "process", max_workers = 2)]
pub fn child_pid() -> u32 {
    std::process::id()
}

/// Without `remote`: process mode is refused at `init`.
#[concurry::task]
pub fn local_only(x: u8) -> u8 {
    x
}

/// True once the process is gone and reaped: a zombie still has its `/proc` entry.
fn reaped(pid: u32) -> bool {
    !Path::new(&format!("/proc/{pid}")).exists()
}

/// Opened by the test once `submit` has returned: the encoding of a [`Gated`] waits for it.
static GATE: (std::sync::Mutex<bool>, std::sync::Condvar) =
    (std::sync::Mutex::new(false), std::sync::Condvar::new());

/// `.0` bytes of arguments (over 64 KiB: too large to encode on the caller's thread) whose
/// encoding, once it has written them all, waits at [`GATE`].
#[derive(Debug, Clone)]
pub struct Gated(pub usize);

impl Serialize for Gated {
    fn serialize<S: concurry::__private::serde::Serializer>(
        &self,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        use concurry::__private::serde::ser::SerializeSeq;
        let mut seq = s.serialize_seq(Some(self.0))?;
        for _ in 0..self.0 {
            seq.serialize_element(&0u8)?;
        }
        let mut open = GATE.0.lock().unwrap();
        while !*open {
            open = GATE.1.wait(open).unwrap();
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for Gated {
    fn deserialize<D: concurry::__private::serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Self, D::Error> {
        Vec::<u8>::deserialize(d).map(|v| Gated(v.len()))
    }
}

#[concurry::task(remote)]
pub fn gated_len(data: Gated) -> usize {
    data.0
}

/// A task's large arguments are encoded off the caller's thread: `submit` returns while
/// their encoding still waits at a gate.
#[test]
fn large_task_arguments_are_encoded_off_the_callers_thread() {
    let pool = gated_len::options()
        .mode(Mode::Process)
        .max_workers(1)
        .init()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let submitter = pool.clone();
    std::thread::spawn(move || tx.send(submitter.submit(Gated(100_000))).unwrap());
    let p = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("`submit` waited for its arguments to be encoded");
    assert!(!p.is_done());
    *GATE.0.lock().unwrap() = true;
    GATE.1.notify_all();
    assert_eq!(p.result_timeout(HANG).unwrap(), 100_000);
    pool.stop().unwrap();
}

#[test]
fn a_remote_task_runs_in_a_child_process() {
    let pool = pid::options()
        .mode(Mode::Process)
        .max_workers(1)
        .init()
        .unwrap();
    assert_eq!(pool.stats().mode, Mode::Process);
    let child = pool.submit().result_timeout(HANG).unwrap();
    assert_ne!(
        child,
        std::process::id(),
        "the task runs in a child process"
    );
    // The function stays plain Rust, and the implicit pool (thread mode) runs it here.
    assert_eq!(self::pid(), std::process::id());
    assert_eq!(
        pid::submit().result_timeout(HANG).unwrap(),
        std::process::id()
    );
    pid::stop().unwrap();
    pool.stop().unwrap();
}

#[test]
fn mode_process_in_the_attribute_runs_the_implicit_pool_in_children() {
    let pids: Vec<u32> = child_pid::map_unordered((0..4).map(|_| ()))
        .map(|p| p.unwrap())
        .collect();
    assert_eq!(pids.len(), 4);
    assert!(
        pids.iter().all(|&p| p != std::process::id()),
        "every call ran in a child: {pids:?}"
    );
    let handle = child_pid::handle().unwrap();
    assert_eq!(handle.stats().mode, Mode::Process);
    assert_eq!(handle.stats().max_workers, 2);
    // `submit` runs there too; `stop` ends and reaps the children.
    let child = child_pid::submit().result_timeout(HANG).unwrap();
    assert_ne!(child, std::process::id());
    child_pid::stop().unwrap();
    assert!(reaped(child), "child {child} is gone and reaped");
    // The function stays plain Rust.
    assert_eq!(child_pid(), std::process::id());
}

#[test]
fn map_in_process_mode_equals_map_in_thread_mode() {
    let results = |mode: Mode| {
        let pool = square::options().mode(mode).max_workers(2).init().unwrap();
        let quiet = Progress::new("squares").log_to(std::io::sink());
        let ordered: Vec<u64> = pool
            .map(0..200)
            .window(8)
            .progress(quiet)
            .collect::<Result<_, _>>()
            .unwrap();
        let mut unordered: Vec<u64> = pool
            .map_unordered(0..200)
            .collect::<Result<_, _>>()
            .unwrap();
        unordered.sort_unstable();
        // Load-balanced: every child (or thread) got calls.
        let stats = pool.stats();
        assert_eq!(stats.per_worker.len(), 2, "{mode}");
        assert!(
            stats.per_worker.iter().all(|w| w.dispatched > 0),
            "{mode}: {stats:?}"
        );
        pool.stop().unwrap();
        (ordered, unordered)
    };
    let (process, process_unordered) = results(Mode::Process);
    let (thread, thread_unordered) = results(Mode::Thread);
    assert_eq!(process, (0..200).map(|x| x * x).collect::<Vec<_>>());
    assert_eq!(process, thread);
    assert_eq!(process_unordered, thread_unordered);
    assert_eq!(process_unordered, process);
}

#[test]
fn a_map_is_lazy_and_bounded_in_process_mode() {
    let pool = square::options()
        .mode(Mode::Process)
        .max_workers(1)
        .init()
        .unwrap();
    let mut map = pool.map(0..1_000_000).window(4);
    assert_eq!(map.in_flight(), 0, "nothing runs before the first next()");
    assert_eq!(map.next().unwrap().unwrap(), 0);
    assert!(map.in_flight() <= 4);
    drop(map);
    // Calls from many submitters at once share the one child.
    let many: Vec<_> = (0..100u64).map(|x| pool.submit(x)).collect();
    for (x, p) in many.into_iter().enumerate() {
        let x = x as u64;
        assert_eq!(p.result_timeout(HANG).unwrap(), x * x);
    }
    pool.stop().unwrap();
}

#[test]
fn errors_stay_typed_across_the_process_boundary() {
    let pool = parse::options()
        .mode(Mode::Process)
        .max_workers(1)
        .init()
        .unwrap();
    let ok = pool.submit("40", 2).result_timeout(HANG).unwrap();
    assert_eq!(ok.value, 42);
    assert_ne!(ok.pid, std::process::id());
    match pool.submit("", 0).result_timeout(HANG) {
        Err(Error::Method(ParseFailure::Empty)) => {}
        other => panic!("{other:?}"),
    }
    let items = concurry::zip((["1", "x"].map(String::from), [10, 10]));
    let out: Vec<_> = pool.map(items).collect();
    assert_eq!(out[0].as_ref().unwrap().value, 11);
    match &out[1] {
        Err(Error::Method(ParseFailure::NotANumber(t))) => assert_eq!(t, "x"),
        other => panic!("{other:?}"),
    }
    pool.stop().unwrap();
}

#[test]
fn async_tasks_and_promise_arguments_work_in_process_mode() {
    let pool = label::options()
        .mode(Mode::Process)
        .max_workers(1)
        .init()
        .unwrap();
    assert_eq!(pool.submit(7, "n=").result_timeout(HANG).unwrap(), "n=7");
    let squares = square::options()
        .mode(Mode::Process)
        .max_workers(1)
        .init()
        .unwrap();
    // A promise as an argument is awaited first, then sent to the child.
    let chained = squares.submit(squares.submit(3));
    assert_eq!(chained.result_timeout(HANG).unwrap(), 81);
    let labelled = pool.submit(squares.submit(2), "sq=");
    assert_eq!(labelled.result_timeout(HANG).unwrap(), "sq=4");
    pool.stop().unwrap();
    squares.stop().unwrap();
}

#[test]
fn a_panic_is_panicked_and_an_abort_is_worker_lost_then_the_pool_serves_on() {
    let pool = crash::options()
        .mode(Mode::Process)
        .max_workers(1)
        .init()
        .unwrap();
    let first = pool.submit(Fate::Live).result_timeout(HANG).unwrap();
    match pool.submit(Fate::Panic).result_timeout(HANG) {
        Err(Error::Panicked { message }) => assert_eq!(message, "task panicked"),
        other => panic!("{other:?}"),
    }
    // A panic fails only its call: the same child serves on.
    assert_eq!(pool.submit(Fate::Live).result_timeout(HANG).unwrap(), first);
    match pool.submit(Fate::Abort).result_timeout(HANG) {
        Err(Error::WorkerLost { .. }) => {}
        other => panic!("expected WorkerLost, got {other:?}"),
    }
    // A fresh child serves the next calls.
    let second = pool.submit(Fate::Live).result_timeout(HANG).unwrap();
    assert_ne!(second, first);
    assert_ne!(second, std::process::id());
    let calls: Vec<_> = (0..10).map(|_| pool.submit(Fate::Live)).collect();
    for p in calls {
        assert_eq!(p.result_timeout(HANG).unwrap(), second);
    }
    pool.stop().unwrap();
    assert!(reaped(first) && reaped(second), "no zombies");
}

#[test]
fn a_task_past_its_call_timeout_is_timeout_and_its_child_is_replaced() {
    let pool = crash::options()
        .mode(Mode::Process)
        .max_workers(1)
        .call_timeout(Duration::from_millis(200))
        .init()
        .unwrap();
    let first = pool.submit(Fate::Live).result_timeout(HANG).unwrap();
    assert!(matches!(
        pool.submit(Fate::Spin).result_timeout(HANG),
        Err(Error::Timeout)
    ));
    let second = pool.submit(Fate::Live).result_timeout(HANG).unwrap();
    assert_ne!(second, first);
    pool.stop().unwrap();
    assert!(reaped(first) && reaped(second), "no zombies");
}

#[test]
fn calls_are_retried_in_process_mode() {
    let marker =
        std::env::temp_dir().join(format!("concurry-task-remote-retry-{}", std::process::id()));
    let _ = std::fs::remove_file(&marker);
    let pool = second_time::options()
        .mode(Mode::Process)
        .max_workers(2)
        .retry(RetryConfig::attempts(1).wait(Duration::ZERO).jitter(0.0))
        .init()
        .unwrap();
    let marker_str = marker.to_string_lossy().into_owned();
    let child = pool.submit(marker_str).result_timeout(HANG).unwrap();
    assert_ne!(child, std::process::id());
    let _ = std::fs::remove_file(&marker);
    pool.stop().unwrap();
}

#[test]
fn stop_ends_every_child() {
    let pool = pid::options()
        .mode(Mode::Process)
        .max_workers(2)
        .init()
        .unwrap();
    let mut children: Vec<u32> = (0..2)
        .map(|_| pool.submit().result_timeout(HANG).unwrap())
        .collect();
    children.sort_unstable();
    children.dedup();
    assert_eq!(children.len(), 2, "round robin reaches both children");
    pool.stop().unwrap();
    for child in children {
        assert!(reaped(child), "child {child} is gone and reaped");
    }
    assert!(matches!(
        pool.submit().result_timeout(HANG),
        Err(Error::Stopped)
    ));
}

#[test]
fn process_mode_without_remote_is_a_config_error_naming_the_fix() {
    assert_eq!(local_only(3), 3);
    match local_only::options().mode(Mode::Process).init() {
        Err(Error::Config(e)) => {
            let text = e.to_string();
            assert!(text.contains("local_only"), "{text}");
            assert!(text.contains("#[task(remote)]"), "{text}");
        }
        other => panic!("expected a ConfigError, got {other:?}"),
    }
    match concurry::TaskWorker::options().mode(Mode::Process).init() {
        Err(Error::Config(e)) => assert!(e.to_string().contains("task(remote)"), "{e}"),
        other => panic!("expected a ConfigError, got {other:?}"),
    }
}
