//! Implicit `#[task]` pools are drained when the process exits: fire-and-forget submissions
//! still queued when `main` returns run to the end, the exit waits no longer than the pools'
//! `stop_timeout`, and a call that exits the process itself is not waited for.
//!
//! Each test re-runs this test binary as a child running one `#[ignore]`d "child program"
//! (selected with `--exact`, told what to do by an environment variable), waits for it to
//! exit (with a deadline, killing it past that), then checks what it left in a file.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use concurry::{ImplicitPool, TaskWorker};

/// The file a child program appends its lines to; set only in the child.
const FILE_VAR: &str = "CONCURRY_TEST_EXIT_FILE";

/// Bounds every wait for a child, so a hang fails the test instead of the suite.
const HANG: Duration = Duration::from_secs(25);

fn append(path: &str, line: &str) {
    let mut f = OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .expect("open the child's file");
    writeln!(f, "{line}").expect("append a line");
}

/// One worker, and each call slower than the child's exit: when the child returns, nearly
/// every call is still queued.
#[concurry::task(mode = "thread", max_workers = 1)]
fn append_slowly(path: String, i: u32) {
    std::thread::sleep(Duration::from_millis(20));
    append(&path, &i.to_string());
}

/// The same on the library's tokio runtime (async mode), which is still running at exit.
#[concurry::task(mode = "async", max_workers = 1)]
async fn append_slowly_async(path: String, i: u32) {
    tokio::time::sleep(Duration::from_millis(20)).await;
    append(&path, &i.to_string());
}

/// Ends the process from inside a call of the implicit pool (default `stop_timeout`: 30 s).
#[concurry::task(mode = "thread", max_workers = 1)]
fn exit_from_call(path: String) {
    append(&path, "exiting");
    std::process::exit(0);
}

/// The child's file, or `None` when the child program runs as a plain test.
fn child_file() -> Option<String> {
    std::env::var(FILE_VAR).ok()
}

/// Runs the `#[ignore]`d test `name` of this binary as a child appending to a fresh file;
/// returns its exit status, how long it took, and the file's lines.
fn run_child(name: &str) -> (ExitStatus, Duration, Vec<String>) {
    let file: PathBuf = std::env::temp_dir().join(format!(
        "concurry-exit-{}-{}",
        name.replace("::", "-"),
        std::process::id()
    ));
    let _ = std::fs::remove_file(&file);
    let start = Instant::now();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "--test-threads=1", "--quiet", name])
        .env(FILE_VAR, &file)
        .stdout(Stdio::null())
        .spawn()
        .expect("re-run the test binary");
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > HANG {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the child `{name}` did not exit within {HANG:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = start.elapsed();
    let lines = read_lines(&file);
    let _ = std::fs::remove_file(&file);
    (status, took, lines)
}

fn read_lines(file: &Path) -> Vec<String> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn fire_and_forget_calls_queued_when_main_returns_all_run() {
    let (status, _, lines) = run_child("task_exit::child_submits_ten_and_returns");
    assert!(status.success(), "child failed: {status}");
    let expected: Vec<String> = (0..10).map(|i| i.to_string()).collect();
    assert_eq!(lines, expected, "every queued call ran, in order");
}

#[test]
#[ignore = "the child program of fire_and_forget_calls_queued_when_main_returns_all_run"]
fn child_submits_ten_and_returns() {
    let Some(path) = child_file() else { return };
    for i in 0..10 {
        // Fire and forget: the promise is dropped, the call still runs.
        drop(append_slowly::submit(path.clone(), i));
    }
}

#[test]
fn async_mode_calls_queued_when_main_returns_all_run() {
    let (status, _, mut lines) = run_child("task_exit::child_submits_ten_async_and_returns");
    assert!(status.success(), "child failed: {status}");
    // Async calls of one worker run concurrently: any order.
    lines.sort_by_key(|l| l.parse::<u32>().unwrap());
    let expected: Vec<String> = (0..10).map(|i| i.to_string()).collect();
    assert_eq!(lines, expected, "every queued call ran");
}

#[test]
#[ignore = "the child program of async_mode_calls_queued_when_main_returns_all_run"]
fn child_submits_ten_async_and_returns() {
    let Some(path) = child_file() else { return };
    for i in 0..10 {
        drop(append_slowly_async::submit(path.clone(), i));
    }
}

#[test]
fn the_exit_waits_no_longer_than_stop_timeout() {
    let (status, took, lines) = run_child("task_exit::child_leaves_a_hung_call");
    assert!(status.success(), "child failed: {status}");
    // The call queued behind the hung one failed with `Stopped` when the timeout ran out.
    assert_eq!(lines, ["started"], "only the hung call started");
    // Gross bound only: the drain must not have waited for the hung call (forever).
    assert!(took < HANG, "took {took:?}");
}

#[test]
#[ignore = "the child program of the_exit_waits_no_longer_than_stop_timeout"]
fn child_leaves_a_hung_call() {
    static POOL: ImplicitPool = ImplicitPool::new();
    let Some(path) = child_file() else { return };
    let pool = POOL
        .get_or_init(|| {
            TaskWorker::options()
                .max_workers(1)
                .stop_timeout(Duration::from_millis(300))
                .init()
        })
        .unwrap();
    let first = path.clone();
    drop(pool.submit(move || {
        append(&first, "started");
        loop {
            std::thread::park();
        }
    }));
    drop(pool.submit(move || append(&path, "queued behind")));
}

#[test]
fn an_exit_from_inside_a_call_does_not_wait_for_its_own_pool() {
    let (status, took, lines) = run_child("task_exit::child_exits_from_a_call");
    assert!(status.success(), "child failed: {status}");
    assert_eq!(lines, ["exiting"]);
    // Waiting for its own pool would take the default `stop_timeout` (30 s), past `HANG`.
    assert!(took < HANG, "took {took:?}");
}

#[test]
#[ignore = "the child program of an_exit_from_inside_a_call_does_not_wait_for_its_own_pool"]
fn child_exits_from_a_call() {
    let Some(path) = child_file() else { return };
    // The call ends the process itself; the test thread waits for that.
    let _ = exit_from_call::submit(path).result();
    loop {
        std::thread::park();
    }
}
