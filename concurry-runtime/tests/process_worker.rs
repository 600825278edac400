//! Process mode with a hand-written `RemoteWorker`: round trips, pipelining, crashes
//! (panic, `abort`, SIGKILL, garbage on the channel), hard timeouts, restart limits, and a
//! `stop()` that leaves no zombie.
//!
//! Children are this very test binary, re-executed in the worker role: nothing in this file
//! sets that up beyond `register_remote!`.

use std::path::Path;
use std::time::Duration;

use concurry::{
    Error, LimitError, LimitSet, ProcessConfig, ProcessWorker, RateLimit, RemoteWorker,
    ResourceLimit,
};
use serde::{Deserialize, Serialize};

/// Generous: only catches hangs.
const HANG: Duration = Duration::from_secs(30);

/// Gates that the encoding of a [`Gated`] waits at, until the test opens them.
static GATES: [(std::sync::Mutex<bool>, std::sync::Condvar); 4] = [
    (std::sync::Mutex::new(false), std::sync::Condvar::new()),
    (std::sync::Mutex::new(false), std::sync::Condvar::new()),
    (std::sync::Mutex::new(false), std::sync::Condvar::new()),
    (std::sync::Mutex::new(false), std::sync::Condvar::new()),
];

fn open_gate(gate: usize) {
    *GATES[gate].0.lock().unwrap() = true;
    GATES[gate].1.notify_all();
}

/// `len` bytes of arguments (over 64 KiB: too large to encode on the caller's thread) whose
/// encoding, once it has written them all, waits until the test opens gate `gate`.
#[derive(Debug, Clone)]
struct Gated {
    len: usize,
    gate: usize,
}

impl Serialize for Gated {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = s.serialize_seq(Some(self.len))?;
        for _ in 0..self.len {
            seq.serialize_element(&0u8)?;
        }
        let (open, cv) = &GATES[self.gate];
        let mut open = open.lock().unwrap();
        while !*open {
            open = cv.wait(open).unwrap();
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for Gated {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Vec::<u8>::deserialize(d).map(|v| Gated {
            len: v.len(),
            gate: 0,
        })
    }
}

struct Probe {
    prefix: String,
    calls: u64,
    /// Limits held across calls.
    held: Vec<concurry::Acquisition>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum Req {
    Echo(String),
    Add(i64, i64),
    Pid,
    Count,
    Panic(String),
    Abort,
    /// Blocks forever (until the process is killed).
    Block,
    /// Burns CPU forever.
    Spin,
    /// Writes these bytes raw onto the channel, then answers.
    Garbage(Vec<u8>),
    /// Answers with a reply the parent cannot decode.
    BadReply,
    /// Acquires from the pool's limits (waiting at most `ms` if given) and keeps the units.
    Acquire(String, u64, Option<u64>),
    /// Gives back every unit held.
    Release,
    /// Acquires `n`, then corrects the charge to `used`.
    Charge(String, u64, u64),
    /// Answers with a text of this many bytes.
    Big(usize),
    /// Waits (at most 30 s) until a file exists at this path.
    WaitFor(String),
    /// Large arguments whose encoding waits at a gate (see [`Gated`]).
    Gated(Gated),
    /// Works for about 1 ms, then appends one byte to the file named by the worker's
    /// prefix (so the parent can see how many such calls the child has finished).
    Work,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum Resp {
    Text(String),
    Num(i64),
    Pid(u32),
    Count(u64),
    Unit,
    /// Serializes as a variant index no `Resp` has.
    #[serde(skip_deserializing)]
    Bogus,
}

impl RemoteWorker for Probe {
    const NAME: &'static str = "process_worker::Probe";
    type Args = (String, bool);
    type Request = Req;
    type Response = Resp;
    type InitError = String;

    fn construct((prefix, fail): (String, bool)) -> Result<Self, String> {
        if fail {
            return Err(format!("refusing to start with prefix {prefix:?}"));
        }
        Ok(Probe {
            prefix,
            calls: 0,
            held: Vec::new(),
        })
    }

    fn dispatch(&mut self, req: Req) -> Resp {
        self.calls += 1;
        match req {
            Req::Echo(s) => Resp::Text(format!("{}{s}", self.prefix)),
            Req::Add(a, b) => Resp::Num(a + b),
            Req::Pid => Resp::Pid(std::process::id()),
            Req::Count => Resp::Count(self.calls),
            Req::Panic(m) => panic!("{m}"),
            Req::Abort => std::process::abort(),
            Req::Block => loop {
                std::thread::park();
            },
            Req::Spin => loop {
                std::hint::spin_loop();
            },
            Req::Garbage(bytes) => {
                concurry::__private::process_child_write_raw(&bytes).unwrap();
                Resp::Unit
            }
            Req::BadReply => Resp::Bogus,
            Req::Acquire(key, n, ms) => {
                let limits = concurry::limits();
                let r = match ms {
                    Some(ms) => limits.acquire_timeout(&[(&key, n)], Duration::from_millis(ms)),
                    None => limits.acquire(&[(&key, n)]),
                };
                match r {
                    Ok(acq) => {
                        self.held.push(acq);
                        Resp::Unit
                    }
                    Err(e) => Resp::Text(e.to_string()),
                }
            }
            Req::Big(n) => Resp::Text("x".repeat(n)),
            Req::Gated(g) => Resp::Count(g.len as u64),
            Req::WaitFor(path) => {
                let deadline = std::time::Instant::now() + HANG;
                while !Path::new(&path).exists() && std::time::Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(1));
                }
                Resp::Unit
            }
            Req::Work => {
                std::thread::sleep(Duration::from_millis(1));
                let mut f = std::fs::OpenOptions::new()
                    .append(true)
                    .create(true)
                    .open(&self.prefix)
                    .unwrap();
                std::io::Write::write_all(&mut f, b".").unwrap();
                Resp::Unit
            }
            Req::Release => {
                self.held.clear();
                Resp::Unit
            }
            Req::Charge(key, n, used) => {
                let limits = concurry::limits();
                let mut acq = limits.acquire(&[(&key, n)]).unwrap();
                match acq.update(&[(&key, used)]) {
                    Ok(()) => Resp::Unit,
                    Err(e) => Resp::Text(e.to_string()),
                }
            }
        }
    }
}

concurry::register_remote!(Probe);

/// A worker type nobody registered.
struct Unregistered;

impl RemoteWorker for Unregistered {
    const NAME: &'static str = "process_worker::Unregistered";
    type Args = ();
    type Request = ();
    type Response = ();
    type InitError = String;
    fn construct((): ()) -> Result<Self, String> {
        Ok(Unregistered)
    }
    fn dispatch(&mut self, (): ()) {}
}

fn probe() -> ProcessWorker<Probe> {
    probe_with(
        ProcessConfig::default().backoff(Duration::from_millis(1), Duration::from_millis(50)),
    )
}

fn probe_with(config: ProcessConfig) -> ProcessWorker<Probe> {
    ProcessWorker::with_config((">".to_string(), false), config).unwrap()
}

fn get<T>(p: concurry::Promise<T>) -> Result<T, Error> {
    p.result_timeout(HANG)
}

fn pid_of(w: &ProcessWorker<Probe>) -> u32 {
    match get(w.call(Req::Pid)).unwrap() {
        Resp::Pid(p) => p,
        other => panic!("{other:?}"),
    }
}

fn lost(r: Result<Resp, Error>) -> String {
    match r {
        Err(Error::WorkerLost { message }) => message,
        other => panic!("expected WorkerLost, got {other:?}"),
    }
}

/// The channel error a call failed with, as text.
fn transport(r: Result<Resp, Error>) -> String {
    match r {
        Err(Error::Transport(e)) => e.to_string(),
        other => panic!("expected Transport, got {other:?}"),
    }
}

/// True once the process is gone and reaped: a zombie still has its `/proc` entry.
fn reaped(pid: u32) -> bool {
    !Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn round_trip_in_a_child_process() {
    let w = probe();
    assert_eq!(
        get(w.call(Req::Echo("hi".into()))).unwrap(),
        Resp::Text(">hi".into())
    );
    assert_eq!(get(w.call(Req::Add(40, 2))).unwrap(), Resp::Num(42));
    let pid = pid_of(&w);
    assert_ne!(pid, std::process::id());
    assert_eq!(w.pid(), Some(pid));
    w.stop().unwrap();
}

#[test]
fn many_calls_in_flight_resolve_in_order() {
    let w = probe();
    let promises: Vec<_> = (0..2000).map(|i| w.call(Req::Add(i, 1))).collect();
    for (i, p) in promises.into_iter().enumerate() {
        assert_eq!(get(p).unwrap(), Resp::Num(i as i64 + 1));
    }
    // From several threads at once, on one child: every call runs exactly once.
    std::thread::scope(|s| {
        for t in 0..4 {
            let w = w.clone();
            s.spawn(move || {
                let ps: Vec<_> = (0..250).map(|i| w.call(Req::Add(t, i))).collect();
                for (i, p) in ps.into_iter().enumerate() {
                    assert_eq!(get(p).unwrap(), Resp::Num(t + i as i64));
                }
            });
        }
    });
    assert_eq!(
        get(w.call(Req::Count)).unwrap(),
        Resp::Count(2000 + 1000 + 1)
    );
    w.stop().unwrap();
}

/// A result leaves the child as soon as it is ready, even while the child has a long backlog
/// of calls: it is not held until the backlog drains (or 64 KiB of replies pile up).
#[test]
fn results_arrive_while_the_child_still_has_a_backlog() {
    const CALLS: usize = 2000;
    let path = std::env::temp_dir().join(format!(
        "concurry-backlog-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_file(&path);
    // Small calls: the whole backlog fits in the child's read buffer.
    let w = ProcessWorker::<Probe>::spawn((path.display().to_string(), false)).unwrap();
    let promises: Vec<_> = (0..CALLS).map(|_| w.call(Req::Work)).collect();
    // The tenth result (not the first: a child can go idle before the second call arrives,
    // which flushes at once) is back in the parent: how far along is the child?
    assert!(
        promises[9].wait_timeout(HANG),
        "the 10th call never finished"
    );
    let finished = std::fs::metadata(&path).map_or(0, |m| m.len() as usize);
    assert!(
        finished < CALLS / 2,
        "the 10th result arrived only after the child finished {finished} of {CALLS} calls"
    );
    for p in promises {
        assert_eq!(get(p).unwrap(), Resp::Unit);
    }
    w.stop().unwrap();
    let _ = std::fs::remove_file(&path);
}

/// The replies of quick calls may share a write, but a slow call after them does not keep
/// them back: they arrive while it still runs.
#[test]
fn quick_results_are_not_held_behind_a_slow_call() {
    let path = std::env::temp_dir().join(format!("concurry-slow-{}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let w = probe();
    let quick: Vec<_> = (0..50).map(|i| w.call(Req::Add(i, 1))).collect();
    let slow = w.call(Req::WaitFor(path.display().to_string()));
    for (i, p) in quick.into_iter().enumerate() {
        // Generous: only a reply held until the slow call ends (30 s) misses it.
        let r = p.result_timeout(Duration::from_secs(10));
        assert_eq!(r.unwrap(), Resp::Num(i as i64 + 1), "quick call {i}");
    }
    assert!(!slow.is_done());
    std::fs::write(&path, b"go").unwrap();
    assert_eq!(get(slow).unwrap(), Resp::Unit);
    w.stop().unwrap();
    let _ = std::fs::remove_file(&path);
}

#[test]
fn a_panic_fails_only_its_call() {
    let w = probe();
    let pid = pid_of(&w);
    match get(w.call(Req::Panic("boom".into()))) {
        Err(Error::Panicked { message }) => assert_eq!(message, "boom"),
        other => panic!("{other:?}"),
    }
    assert_eq!(pid_of(&w), pid, "a panic does not cost the process");
    assert_eq!(w.restarts(), 0);
    w.stop().unwrap();
}

#[test]
fn abort_fails_in_flight_calls_and_the_child_is_respawned() {
    let w = probe();
    let first = pid_of(&w);
    let msg = lost(get(w.call(Req::Abort)));
    assert!(msg.contains("SIGABRT"), "{msg}");
    let second = pid_of(&w);
    assert_ne!(second, first);
    assert_eq!(w.restarts(), 1);
    assert!(reaped(first));
    // The respawned child was built from the same arguments.
    assert_eq!(
        get(w.call(Req::Echo("x".into()))).unwrap(),
        Resp::Text(">x".into())
    );
    w.stop().unwrap();
}

#[test]
fn sigkill_mid_call_fails_every_call_in_flight() {
    let w = probe();
    let pid = pid_of(&w);
    let blocked = w.call(Req::Block);
    let behind = w.call(Req::Echo("queued".into()));
    let status = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let msg = lost(get(blocked));
    assert!(msg.contains("SIGKILL"), "{msg}");
    lost(get(behind));
    assert_ne!(pid_of(&w), pid, "the pool keeps serving from a new child");
    assert!(reaped(pid));
    w.stop().unwrap();
}

#[test]
fn submitting_to_a_busy_child_never_blocks_the_caller() {
    let w = probe();
    let pid = pid_of(&w);
    let blocked = w.call(Req::Block);
    // Far more bytes than a socket buffer holds, while the child reads nothing.
    let (done, submitted) = std::sync::mpsc::channel();
    let submitter = {
        let w = w.clone();
        std::thread::spawn(move || {
            let calls: Vec<_> = (0..2000)
                .map(|_| w.call(Req::Echo("x".repeat(4096))))
                .collect();
            done.send(()).unwrap();
            calls
        })
    };
    submitted
        .recv_timeout(HANG)
        .expect("submitting blocked on a busy child");
    let calls = submitter.join().unwrap();
    let status = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    lost(get(blocked));
    for c in calls {
        lost(get(c));
    }
    assert_eq!(pid_of(&w), pid_of(&w), "a fresh child serves");
    w.stop().unwrap();
}

#[test]
fn an_infinite_loop_hits_its_hard_timeout() {
    let w = probe();
    let pid = pid_of(&w);
    let spinning = w.call_timeout(Req::Spin, Duration::from_millis(200));
    let behind = w.call(Req::Echo("behind".into()));
    assert!(matches!(get(spinning), Err(Error::Timeout)));
    // Calls made once the timeout is seen go to the next child.
    let next = w.call(Req::Add(1, 1));
    let msg = lost(get(behind));
    assert!(msg.contains("timeout"), "{msg}");
    assert_eq!(get(next).unwrap(), Resp::Num(2));
    assert_ne!(pid_of(&w), pid);
    assert!(reaped(pid));
    // A timeout that is not reached changes nothing.
    assert_eq!(
        get(w.call_timeout(Req::Add(2, 2), HANG)).unwrap(),
        Resp::Num(4)
    );
    w.stop().unwrap();
}

#[test]
fn garbage_on_the_channel_is_a_typed_error_and_a_respawn() {
    let w = probe();
    let pid = pid_of(&w);
    let msg = transport(get(w.call(Req::Garbage(
        b"\x20\x00\x00\x00HTTP/1.1 200 OK\r\n\r\n....".to_vec(),
    ))));
    assert!(msg.contains("bad magic"), "{msg}");
    assert_ne!(pid_of(&w), pid);
    assert!(reaped(pid));

    // A frame of another protocol version.
    let mut frame = Vec::new();
    concurry::wire::Frame::encode(
        &concurry::wire::Envelope::new(concurry::wire::Kind::Reply, 1, vec![]),
        &mut frame,
    );
    frame[8] = concurry::wire::VERSION + 1;
    let msg = transport(get(w.call(Req::Garbage(frame))));
    assert!(msg.contains("version mismatch"), "{msg}");

    // A length prefix announcing more than a frame may hold.
    let msg = transport(get(w.call(Req::Garbage(u32::MAX.to_le_bytes().to_vec()))));
    assert!(msg.contains("exceeds max_message_size"), "{msg}");

    // A well-framed reply whose payload is not a `Resp`.
    let msg = transport(get(w.call(Req::BadReply)));
    assert!(msg.contains("undecodable reply"), "{msg}");

    assert_eq!(get(w.call(Req::Add(3, 4))).unwrap(), Resp::Num(7));
    assert_eq!(w.restarts(), 4);
    w.stop().unwrap();
}

#[test]
fn stop_ends_the_child_and_leaves_no_zombie() {
    let w = probe();
    let pid = pid_of(&w);
    let last = w.call(Req::Echo("last".into()));
    w.stop().unwrap();
    assert_eq!(
        get(last).unwrap(),
        Resp::Text(">last".into()),
        "calls sent before stop finish"
    );
    assert!(reaped(pid));
    assert!(matches!(get(w.call(Req::Pid)), Err(Error::Stopped)));
    assert_eq!(w.pid(), None);
    w.stop().unwrap();

    // Dropping the last handle stops too.
    let w = probe();
    let pid = pid_of(&w);
    drop(w);
    assert!(reaped(pid));
}

#[test]
fn stop_kills_a_stuck_child_after_stop_timeout() {
    let w = probe_with(ProcessConfig::default().stop_timeout(Duration::from_millis(100)));
    let pid = pid_of(&w);
    let stuck = w.call(Req::Block);
    assert!(matches!(w.stop(), Err(Error::Timeout)));
    assert!(matches!(get(stuck), Err(Error::Stopped)));
    assert!(reaped(pid));
}

#[test]
fn the_restart_limit_ends_respawning() {
    let w = probe_with(
        ProcessConfig::default()
            .max_restarts(2)
            .backoff(Duration::from_millis(1), Duration::from_millis(5)),
    );
    for _ in 0..2 {
        lost(get(w.call(Req::Abort)));
    }
    // A third crash in a row is one too many.
    lost(get(w.call(Req::Abort)));
    let msg = lost(get(w.call(Req::Pid)));
    assert!(
        msg.contains("gave up after 2 consecutive restarts"),
        "{msg}"
    );
    assert_eq!(w.pid(), None);
    assert_eq!(w.restarts(), 2);
    w.stop().unwrap();
}

#[test]
fn an_answered_call_resets_the_restart_count() {
    let w = probe_with(
        ProcessConfig::default()
            .max_restarts(1)
            .backoff(Duration::from_millis(1), Duration::from_millis(5)),
    );
    for _ in 0..3 {
        lost(get(w.call(Req::Abort)));
        assert_eq!(get(w.call(Req::Add(1, 2))).unwrap(), Resp::Num(3));
    }
    assert_eq!(w.restarts(), 3);
    w.stop().unwrap();
}

#[test]
fn constructor_errors_and_unregistered_types_are_reported_at_spawn() {
    match ProcessWorker::<Probe>::spawn(("p".into(), true)) {
        Err(Error::Method(e)) => assert_eq!(e, "refusing to start with prefix \"p\""),
        other => panic!("{other:?}"),
    }
    match ProcessWorker::<Unregistered>::spawn(()) {
        Err(Error::Config(e)) => {
            assert_eq!(e.option(), "mode");
            assert!(e.to_string().contains("#[worker(remote)]"), "{e}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn limits_are_hosted_by_the_parent_and_shared_with_it() {
    let set = LimitSet::new([ResourceLimit::new("slots", 1)]).unwrap();
    let w = probe_with(ProcessConfig::default().limits(set.clone()));
    assert_eq!(
        get(w.call(Req::Acquire("slots".into(), 1, None))).unwrap(),
        Resp::Unit
    );
    // The child holds the only slot: the parent sees it taken.
    assert!(matches!(
        set.try_acquire(&[("slots", 1)]),
        Err(LimitError::WouldBlock { .. })
    ));
    assert_eq!(get(w.call(Req::Release)).unwrap(), Resp::Unit);
    // A release is not answered: a call behind it proves the parent processed it.
    get(w.call(Req::Count)).unwrap();
    drop(set.try_acquire(&[("slots", 1)]).unwrap());

    // The parent holds it now: the child waits, then gives up at its own timeout.
    let held = set.try_acquire(&[("slots", 1)]).unwrap();
    match get(w.call(Req::Acquire("slots".into(), 1, Some(20)))).unwrap() {
        Resp::Text(e) => assert!(e.contains("timed out"), "{e}"),
        other => panic!("{other:?}"),
    }
    // Released by the parent while the child waits: the child gets it.
    let waiting = w.call(Req::Acquire("slots".into(), 1, None));
    drop(held);
    assert_eq!(get(waiting).unwrap(), Resp::Unit);

    // A child that dies gives its units back.
    lost(get(w.call(Req::Abort)));
    drop(set.try_acquire(&[("slots", 1)]).unwrap());

    // Errors keep their type across the channel.
    match get(w.call(Req::Acquire("nope".into(), 1, None))).unwrap() {
        Resp::Text(e) => assert!(e.contains("unknown limit key `nope`"), "{e}"),
        other => panic!("{other:?}"),
    }
    w.stop().unwrap();
}

#[test]
fn a_child_corrects_its_rate_limit_charge_in_the_parent() {
    let set = LimitSet::new([RateLimit::per_minute("tokens", 1000)]).unwrap();
    let w = probe_with(ProcessConfig::default().limits(set.clone()));
    assert_eq!(
        get(w.call(Req::Charge("tokens".into(), 40, 55))).unwrap(),
        Resp::Unit
    );
    let stats = set.stats();
    let tokens = stats.iter().find(|s| s.key == "tokens").unwrap();
    assert_eq!(tokens.used, 55);
    w.stop().unwrap();
}

/// Run by `a_child_exits_when_its_parent_dies` in a process of its own: starts a child, gets
/// it stuck in a method, prints its pid and dies without any cleanup.
#[test]
#[ignore = "helper process of a_child_exits_when_its_parent_dies"]
fn orphan_helper() {
    if std::env::var_os("CONCURRY_TEST_ORPHAN").is_none() {
        return;
    }
    let w = probe();
    let pid = pid_of(&w);
    let _stuck = w.call(Req::Block);
    println!("CHILD_PID={pid}");
    std::process::abort();
}

#[test]
fn a_child_exits_when_its_parent_dies() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "orphan_helper",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("CONCURRY_TEST_ORPHAN", "1")
        .stderr(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success(), "the helper aborts");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let pid: u32 = stdout
        .lines()
        .find_map(|l| l.split("CHILD_PID=").nth(1))
        .unwrap_or_else(|| panic!("no pid in {stdout}"))
        .parse()
        .unwrap();
    // The orphan is re-parented, notices within its check period and exits (reaping it is
    // its new parent's business: a zombie counts as gone). Bounded wait: only a hang fails.
    let gone = || {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |stat| {
            stat.rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with('Z'))
        })
    };
    let deadline = std::time::Instant::now() + HANG;
    while !gone() {
        assert!(
            std::time::Instant::now() < deadline,
            "orphan {pid} still alive"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn stop_from_a_callback_on_the_reader_thread_does_not_hang() {
    let w = probe();
    let pid = pid_of(&w);
    let (tx, rx) = std::sync::mpsc::channel();
    let p = w.call(Req::Count);
    let handle = w.clone();
    p.on_done(move |_| tx.send(handle.stop()).unwrap());
    assert!(rx.recv_timeout(HANG).unwrap().is_ok());
    drop(w);
    let deadline = std::time::Instant::now() + HANG;
    while !reaped(pid) {
        assert!(
            std::time::Instant::now() < deadline,
            "child {pid} not reaped"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn a_reply_above_the_frame_limit_fails_only_its_call() {
    let w = probe();
    let pid = pid_of(&w);
    let limit = concurry::wire::DEFAULT_MAX_FRAME;
    let msg = transport(get(w.call(Req::Big(limit))));
    assert!(msg.contains("exceeds max_message_size"), "{msg}");
    assert_eq!(pid_of(&w), pid, "the child goes on serving");
    // Requests above the limit are refused before they are sent.
    let msg = transport(get(w.call(Req::Echo("y".repeat(limit)))));
    assert!(msg.contains("exceeds max_message_size"), "{msg}");
    assert_eq!(pid_of(&w), pid);
    w.stop().unwrap();
}

/// Submitting never waits for large arguments to encode: that happens off the caller's
/// thread (here it waits at a gate that opens only once `call` has returned).
#[test]
fn large_arguments_are_encoded_off_the_callers_thread() {
    let w = probe();
    let (tx, rx) = std::sync::mpsc::channel();
    let caller = w.clone();
    std::thread::spawn(move || {
        let p = caller.call(Req::Gated(Gated {
            len: 100_000,
            gate: 0,
        }));
        tx.send(p).unwrap();
    });
    let p = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("`call` waited for its arguments to be encoded");
    assert!(!p.is_done());
    open_gate(0);
    assert_eq!(get(p).unwrap(), Resp::Count(100_000));
    w.stop().unwrap();
}

/// A call submitted after one whose large arguments are still encoding waits behind it: the
/// child sees calls in the order they were made.
#[test]
fn calls_after_a_large_one_keep_their_order() {
    let w = probe();
    let big = w.call(Req::Gated(Gated {
        len: 100_000,
        gate: 2,
    }));
    let count = w.call(Req::Count);
    let echo = w.call(Req::Echo("after".into()));
    open_gate(2);
    assert_eq!(get(big).unwrap(), Resp::Count(100_000));
    assert_eq!(
        get(count).unwrap(),
        Resp::Count(2),
        "`Count` overtook the large call"
    );
    assert_eq!(get(echo).unwrap(), Resp::Text(">after".into()));
    w.stop().unwrap();
}

/// Only the thread that made a large call waits behind it: another thread's calls go on.
#[test]
fn a_large_call_does_not_hold_up_other_threads_calls() {
    let w = probe();
    let big = w.call_timeout(
        Req::Gated(Gated {
            len: 100_000,
            gate: 3,
        }),
        HANG,
    );
    let other = w.clone();
    let r = std::thread::spawn(move || get(other.call(Req::Add(2, 3))))
        .join()
        .unwrap();
    assert_eq!(r.unwrap(), Resp::Num(5));
    assert!(!big.is_done());
    open_gate(3);
    assert_eq!(get(big).unwrap(), Resp::Count(100_000));
    w.stop().unwrap();
}

/// `call_timeout` bounds the whole call, encoding included: arguments that never finish
/// encoding time out at the deadline.
#[test]
fn a_call_timeout_counts_the_encoding_of_the_arguments() {
    let w = probe();
    let pid = pid_of(&w);
    let stuck = Req::Gated(Gated {
        len: 100_000,
        gate: 1,
    });
    // (In a thread: were the encoding on the caller's thread, `call_timeout` would hang.)
    let (tx, rx) = std::sync::mpsc::channel();
    let caller = w.clone();
    std::thread::spawn(move || {
        let r = caller
            .call_timeout(stuck, Duration::from_millis(100))
            .result_timeout(HANG);
        tx.send(r).unwrap();
    });
    let r = rx.recv_timeout(HANG).expect("the call hung in encoding");
    assert!(matches!(r, Err(Error::Timeout)), "{r:?}");
    // Nothing of it reached the child, which serves on.
    open_gate(1);
    assert_eq!(pid_of(&w), pid);
    assert_eq!(get(w.call(Req::Count)).unwrap(), Resp::Count(3));
    w.stop().unwrap();
}

/// `max_message_size` bounds both ways, and a reply above it is the same typed error as a
/// request above it (not a peer's protocol fault), naming the option.
#[test]
fn max_message_size_bounds_requests_and_replies_with_one_typed_error() {
    let max = 64 << 10;
    let w = probe_with(ProcessConfig::default().max_message_size(max));
    let pid = pid_of(&w);
    let too_big = [
        get(w.call(Req::Big(100_000))),
        get(w.call(Req::Echo("y".repeat(100_000)))),
    ];
    for r in too_big {
        match r {
            Err(Error::Transport(e @ concurry::wire::WireError::TooLarge { .. })) => {
                let concurry::wire::WireError::TooLarge { len, max: m } = e else {
                    unreachable!()
                };
                assert!(len > 100_000, "{len}");
                assert_eq!(m, max);
                let msg = e.to_string();
                assert!(
                    msg.contains("max_message_size") && msg.contains("65536"),
                    "{msg}"
                );
            }
            other => panic!("expected TooLarge, got {other:?}"),
        }
    }
    // Below the bound (but above the default frame buffer), both ways work.
    assert_eq!(
        get(w.call(Req::Big(60_000))).unwrap(),
        Resp::Text("x".repeat(60_000))
    );
    assert_eq!(
        get(w.call(Req::Echo("y".repeat(60_000)))).unwrap(),
        Resp::Text(format!(">{}", "y".repeat(60_000)))
    );
    assert_eq!(pid_of(&w), pid, "the child goes on serving");
    w.stop().unwrap();
    // Raised above the default, a 20 MiB reply crosses.
    let w = probe_with(ProcessConfig::default().max_message_size(32 << 20));
    match get(w.call(Req::Big(20 << 20))).unwrap() {
        Resp::Text(t) => assert_eq!(t.len(), 20 << 20),
        other => panic!("{other:?}"),
    }
    w.stop().unwrap();
}

#[test]
fn handles_are_send_sync_and_unpin() {
    fn check<T: Send + Sync + Unpin>() {}
    check::<ProcessWorker<Probe>>();
    check::<ProcessConfig>();
    check::<concurry::Promise<Resp>>();
    check::<concurry::wire::Envelope>();
    check::<concurry::wire::WireError>();
}

#[test]
fn a_truncated_frame_from_a_live_child_does_not_hang_the_parent() {
    let w = probe_with(
        ProcessConfig::default()
            .stall_timeout(Duration::from_millis(100))
            .backoff(Duration::from_millis(1), Duration::from_millis(5)),
    );
    let pid = pid_of(&w);
    // A valid header announcing 1000 payload bytes, 10 of them sent; the child then stays
    // alive (its real reply is swallowed as more payload).
    let mut frame = Vec::new();
    concurry::wire::Frame::encode(
        &concurry::wire::Envelope::new(concurry::wire::Kind::Reply, 1, vec![0; 1000]),
        &mut frame,
    );
    frame.truncate(4 + concurry::wire::HEADER_LEN + 10);
    let msg = transport(get(w.call(Req::Garbage(frame))));
    assert!(msg.contains("stalled mid-frame"), "{msg}");
    assert_ne!(pid_of(&w), pid);
    assert!(reaped(pid));
    w.stop().unwrap();
}
