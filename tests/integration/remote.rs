//! `#[worker(remote)]`: the same type runs in child processes (`Mode::Process`) and in
//! process (`Mode::Thread`); a child that dies fails its call with `Error::WorkerLost` and
//! is replaced.

use std::time::Duration;

use concurry::__private::serde::{Deserialize, Serialize};
use concurry::prelude::*;

/// Bounds every wait, so a broken test fails instead of hanging.
const HANG: Duration = Duration::from_secs(60);

/// A constructor argument that crosses the process boundary.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(crate = "concurry::__private::serde")]
pub struct Setup {
    pub base: u64,
    pub label: String,
}

#[derive(Debug)]
pub struct Calc {
    total: u64,
    label: String,
}

#[concurry::worker(remote)]
impl Calc {
    pub fn new(setup: Setup) -> Result<Self, String> {
        if setup.label.is_empty() {
            return Err("no label".into());
        }
        Ok(Calc {
            total: setup.base,
            label: setup.label,
        })
    }

    /// `&mut self` state: each worker keeps its own total.
    pub fn add(&mut self, k: u64) -> u64 {
        self.total += k;
        self.total
    }

    pub fn describe(&self, setup: Setup) -> String {
        format!("{}:{}+{}", self.label, setup.label, setup.base)
    }

    pub fn checked_div(&self, d: u64) -> Result<u64, String> {
        self.total
            .checked_div(d)
            .ok_or_else(|| format!("{} / 0", self.total))
    }

    pub async fn later(&self, x: u64) -> u64 {
        x * 2 + self.total
    }

    pub fn pid(&self) -> u32 {
        std::process::id()
    }

    pub fn crash(&self) {
        std::process::abort();
    }
}

fn setup(base: u64) -> Setup {
    Setup {
        base,
        label: "calc".into(),
    }
}

fn exercise(mode: Mode) -> CalcHandle {
    let calc = Calc::options()
        .mode(mode)
        .max_workers(1)
        .init(setup(10))
        .unwrap();
    assert_eq!(calc.add(5).result_timeout(HANG).unwrap(), 15, "{mode}");
    assert_eq!(calc.add(1).result_timeout(HANG).unwrap(), 16, "{mode}");
    assert_eq!(
        calc.describe(setup(3)).result_timeout(HANG).unwrap(),
        "calc:calc+3",
        "{mode}"
    );
    assert_eq!(
        calc.checked_div(4).result_timeout(HANG).unwrap(),
        4,
        "{mode}"
    );
    match calc.checked_div(0).result_timeout(HANG) {
        Err(Error::Method(e)) => assert_eq!(e, "16 / 0", "{mode}"),
        other => panic!("{mode}: {other:?}"),
    }
    assert_eq!(calc.later(2).result_timeout(HANG).unwrap(), 20, "{mode}");
    // A promise as an argument takes the slow path, then the same remote call.
    let chained = calc.add(calc.add(0));
    assert_eq!(chained.result_timeout(HANG).unwrap(), 32, "{mode}");
    assert_eq!(calc.blocking().add(0).unwrap(), 32, "{mode}");
    calc
}

#[test]
fn a_remote_worker_runs_in_a_child_process() {
    let calc = exercise(Mode::Process);
    assert_eq!(calc.stats().mode, Mode::Process);
    let child = calc.pid().result_timeout(HANG).unwrap();
    assert_ne!(child, std::process::id(), "the worker is a child process");
    calc.stop().unwrap();
    assert!(matches!(
        calc.add(1).result_timeout(HANG),
        Err(Error::Stopped)
    ));
}

#[test]
fn a_remote_worker_runs_in_process_in_thread_mode() {
    let calc = exercise(Mode::Thread);
    assert_eq!(calc.stats().mode, Mode::Thread);
    assert_eq!(calc.pid().result_timeout(HANG).unwrap(), std::process::id());
    calc.stop().unwrap();
}

#[test]
fn constructor_errors_come_back_from_the_child() {
    let failed = Calc::options()
        .mode(Mode::Process)
        .max_workers(1)
        .init(Setup {
            base: 0,
            label: String::new(),
        });
    match failed {
        Err(Error::Init { message }) => assert_eq!(message, "no label"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_crashed_child_is_worker_lost_and_the_pool_keeps_serving() {
    let calc = Calc::options()
        .mode(Mode::Process)
        .max_workers(1)
        .init(setup(1))
        .unwrap();
    let first = calc.pid().result_timeout(HANG).unwrap();
    match calc.crash().result_timeout(HANG) {
        Err(Error::WorkerLost { .. }) => {}
        other => panic!("expected WorkerLost, got {other:?}"),
    }
    // The replacement child starts from the constructor's state.
    assert_eq!(calc.add(1).result_timeout(HANG).unwrap(), 2);
    assert_ne!(calc.pid().result_timeout(HANG).unwrap(), first);
    calc.stop().unwrap();
}
