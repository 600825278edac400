//! `Mode::Process` on pools: a type with a remote twin (what `#[worker(remote)]` will
//! generate, written by hand here) runs its workers in child processes; any other type is
//! refused at `init` with the fix.

#![allow(missing_docs)]

use std::time::Duration;

use concurry::__private as p;
use concurry::{Error, LoadBalancing, Mode, RemoteWorker};
use serde::{Deserialize, Serialize};

#[derive(Debug, Default)]
pub struct Local;

#[concurry::worker]
impl Local {
    pub fn new() -> Self {
        Local
    }

    pub fn ping(&self) -> u8 {
        1
    }
}

#[test]
fn process_mode_parses_by_name() {
    assert_eq!("process".parse::<Mode>().unwrap(), Mode::Process);
    assert_eq!(Mode::Process.to_string(), "process");
    assert!(
        "fibers"
            .parse::<Mode>()
            .unwrap_err()
            .to_string()
            .contains("\"process\"")
    );
}

#[test]
fn a_worker_that_did_not_opt_in_is_a_config_error_in_process_mode() {
    match Local::options().mode(Mode::Process).init() {
        Err(Error::Config(e)) => {
            assert_eq!(e.option(), "mode");
            assert_eq!(e.value(), "process");
            assert!(e.to_string().contains("`#[worker(remote)]`"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    // Also for on-demand pools.
    assert!(matches!(
        Local::options().mode(Mode::Process).on_demand(true).init(),
        Err(Error::Config(_))
    ));
}

/// A type with both faces, as `#[worker(remote)]` will generate.
#[derive(Debug)]
pub struct Counter {
    n: u64,
}

// As generated: serde reached through the facade, so the user's crate needs no serde.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(crate = "::concurry::__private::serde")]
pub enum CounterReq {
    Bump(u64),
    Pid,
    Spin,
    Later(u64),
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(crate = "::concurry::__private::serde")]
pub enum CounterResp {
    Bump(u64),
    Pid(u32),
    Later(u64),
}

impl Counter {
    pub async fn later(&self, x: u64) -> u64 {
        tokio::task::yield_now().await;
        x * 2 + self.n
    }
}

/// As generated: one check per argument and return type, spanned at it.
#[allow(dead_code)]
fn remote_types_are_serde() {
    p::assert_remote_type::<(u64,)>();
    p::assert_remote_type::<u64>();
    p::assert_remote_type::<u32>();
}

impl p::Worker for Counter {
    type Args = (u64,);
    type InitError = String;
    const NAME: &'static str = "Counter";
    fn construct((n,): (u64,)) -> Result<Self, String> {
        if n == u64::MAX {
            return Err("too big".into());
        }
        Ok(Counter { n })
    }
}

impl RemoteWorker for Counter {
    const NAME: &'static str = "process_pool::Counter";
    type Args = (u64,);
    type Request = CounterReq;
    type Response = CounterResp;
    type InitError = String;
    fn construct(args: (u64,)) -> Result<Self, String> {
        <Self as p::Worker>::construct(args)
    }
    fn dispatch(&mut self, req: CounterReq) -> CounterResp {
        match req {
            CounterReq::Bump(k) => {
                self.n += k;
                CounterResp::Bump(self.n)
            }
            CounterReq::Pid => CounterResp::Pid(std::process::id()),
            CounterReq::Spin => loop {
                std::hint::spin_loop();
            },
            CounterReq::Later(x) => CounterResp::Later(p::block_on(self.later(x))),
        }
    }
}

concurry::register_remote!(Counter);

const HANG: Duration = Duration::from_secs(30);

fn start(mode: Mode, workers: usize, n: u64) -> Result<p::Pool<Counter>, Error<String>> {
    p::Options::<Counter>::default()
        .mode(mode)
        .max_workers(workers)
        .load_balancing(LoadBalancing::RoundRobin)
        .init_remote_with((n,))
}

/// One call, as generated code makes it (here the whole response is the result).
fn call(pool: &p::Pool<Counter>, req: CounterReq) -> Option<concurry::Promise<CounterResp>> {
    pool.remote_method("call", &p::MethodRetry::inherit(), req, |r| Some(Ok(r)))
}

fn pid(pool: &p::Pool<Counter>) -> u32 {
    match call(pool, CounterReq::Pid)
        .unwrap()
        .result_timeout(HANG)
        .unwrap()
    {
        CounterResp::Pid(p) => p,
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_remote_type_runs_each_worker_in_a_child() {
    let pool = start(Mode::Process, 2, 10).unwrap();
    let pids = [pid(&pool), pid(&pool)];
    assert_ne!(pids[0], pids[1], "round robin over two children");
    assert!(!pids.contains(&std::process::id()));
    let bumps: Vec<_> = (0..10)
        .map(|_| call(&pool, CounterReq::Bump(1)).unwrap())
        .collect();
    let mut last: Vec<u64> = bumps
        .into_iter()
        .map(|p| match p.result_timeout(HANG).unwrap() {
            CounterResp::Bump(n) => n,
            other => panic!("{other:?}"),
        })
        .collect();
    last.sort_unstable();
    assert_eq!(
        last,
        [11, 11, 12, 12, 13, 13, 14, 14, 15, 15],
        "each child has its own state"
    );
    let stats = pool.stats();
    assert_eq!(stats.mode, Mode::Process);
    assert_eq!(
        stats.per_worker.iter().map(|w| w.dispatched).sum::<u64>(),
        12
    );

    // An `async fn` method runs to completion in the child: 2 * 4 + the child's state.
    let later = call(&pool, CounterReq::Later(4))
        .unwrap()
        .result_timeout(HANG)
        .unwrap();
    assert!(matches!(later, CounterResp::Later(23)), "{later:?}");

    let live = [pid(&pool), pid(&pool)];
    pool.stop().unwrap();
    for pid in live {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "{pid} reaped"
        );
    }
    assert!(matches!(
        call(&pool, CounterReq::Pid).unwrap().result_timeout(HANG),
        Err(Error::Stopped)
    ));
}

#[test]
fn a_hard_call_timeout_kills_the_stuck_child_and_the_pool_keeps_serving() {
    let pool = p::Options::<Counter>::default()
        .mode(Mode::Process)
        .max_workers(2)
        .call_timeout(Duration::from_millis(200))
        .init_remote_with((10,))
        .unwrap();
    let before = [pid(&pool), pid(&pool)];
    let stuck = call(&pool, CounterReq::Spin).unwrap();
    assert!(matches!(stuck.result_timeout(HANG), Err(Error::Timeout)));
    let after = [pid(&pool), pid(&pool)];
    assert_eq!(
        before.iter().filter(|p| after.contains(p)).count(),
        1,
        "exactly the stuck child was replaced: {before:?} -> {after:?}"
    );
    pool.stop().unwrap();
}

#[test]
fn a_call_timeout_outside_process_mode_is_a_config_error() {
    let started = p::Options::<Counter>::default()
        .mode(Mode::Thread)
        .call_timeout(Duration::from_secs(1))
        .init_remote_with((10,));
    match started {
        Err(Error::Config(e)) => {
            assert_eq!(e.option(), "call_timeout");
            assert!(e.to_string().contains("Mode::Process"), "{e}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn start_remote_in_other_modes_is_the_in_process_pool() {
    let pool = start(Mode::Thread, 1, 1).unwrap();
    assert!(call(&pool, CounterReq::Pid).is_none());
    pool.stop().unwrap();
}

#[test]
fn process_pools_report_constructor_errors_and_refuse_on_demand() {
    match start(Mode::Process, 1, u64::MAX) {
        Err(Error::Method(e)) => assert_eq!(e, "too big"),
        other => panic!("{other:?}"),
    }
    let on_demand = p::Options::<Counter>::default()
        .mode(Mode::Process)
        .on_demand(true)
        .init_remote_with((1,));
    match on_demand {
        Err(Error::Config(e)) => assert_eq!(e.option(), "on_demand"),
        other => panic!("{other:?}"),
    }
}

/// `ProcessConfig`'s restart limit and backoff are pool options: with `max_restarts(0)` a
/// child killed by its call's timeout is not respawned, and the pool says why.
#[test]
fn max_restarts_is_a_pool_option() {
    let pool = p::Options::<Counter>::default()
        .mode(Mode::Process)
        .max_workers(1)
        .call_timeout(Duration::from_millis(200))
        .max_restarts(0)
        .restart_backoff(Duration::from_millis(1), Duration::from_millis(5))
        .init_remote_with((10,))
        .unwrap();
    let stuck = call(&pool, CounterReq::Spin).unwrap();
    assert!(matches!(stuck.result_timeout(HANG), Err(Error::Timeout)));
    match call(&pool, CounterReq::Pid).unwrap().result_timeout(HANG) {
        Err(Error::WorkerLost { message }) => {
            assert!(
                message.contains("gave up after 0 consecutive restarts"),
                "{message}"
            );
        }
        other => panic!("expected WorkerLost, got {other:?}"),
    }
    pool.stop().unwrap();
}

#[test]
fn a_restart_backoff_whose_first_wait_exceeds_its_cap_is_a_config_error() {
    let started = p::Options::<Counter>::default()
        .mode(Mode::Process)
        .restart_backoff(Duration::from_secs(3), Duration::from_secs(1))
        .init_remote_with((10,));
    match started {
        Err(Error::Config(e)) => {
            assert_eq!(e.option(), "restart_backoff");
            assert!(e.to_string().contains("3s..1s"), "{e}");
        }
        other => panic!("{other:?}"),
    }
}
