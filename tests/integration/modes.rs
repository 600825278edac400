//! What is particular to a mode (async mode's concurrency and exclusivity, blocking methods
//! off the runtime), cancellation, `init` errors and `.await` on any executor. What every
//! mode shares (method kinds, order, panics) is in `every_mode.rs`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use concurry::prelude::*;

use crate::common::{Gate, MODES, Probe, probe, quiet_planned_panics};

#[test]
fn async_mode_runs_shared_async_calls_of_one_worker_concurrently() {
    struct Meet(Arc<tokio::sync::Barrier>);
    #[concurry::worker]
    impl Meet {
        pub fn new(b: Arc<tokio::sync::Barrier>) -> Self {
            Meet(b)
        }
        pub async fn meet(&self) -> bool {
            self.0.wait().await;
            true
        }
    }
    let pool = Meet::options()
        .mode(Mode::Async)
        .max_workers(1)
        .init(Arc::new(tokio::sync::Barrier::new(3)))
        .unwrap();
    // Three calls on one worker can only pass a barrier of three if they run at once.
    let calls: Vec<_> = (0..3).map(|_| pool.meet()).collect();
    for c in calls {
        assert!(
            c.result_timeout(std::time::Duration::from_secs(10))
                .unwrap()
        );
    }
}

#[test]
fn async_mode_runs_blocking_methods_off_the_runtime_threads() {
    struct Blocker(Arc<std::sync::Barrier>);
    #[concurry::worker]
    impl Blocker {
        pub fn new(b: Arc<std::sync::Barrier>) -> Self {
            Blocker(b)
        }
        pub fn block(&self) -> bool {
            self.0.wait();
            true
        }
    }
    // More blocked calls than the runtime has threads: they all meet only if none of them
    // occupies a runtime thread.
    let n = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .max(2)
        + 2;
    let pool = Blocker::options()
        .mode(Mode::Async)
        .max_workers(n)
        .init(Arc::new(std::sync::Barrier::new(n)))
        .unwrap();
    let calls: Vec<_> = (0..n).map(|_| pool.block()).collect();
    for c in calls {
        assert!(
            c.result_timeout(std::time::Duration::from_secs(10))
                .unwrap()
        );
    }
}

#[test]
fn async_mode_mut_calls_are_exclusive() {
    struct Excl {
        inside: Arc<AtomicUsize>,
    }
    #[concurry::worker]
    impl Excl {
        pub fn new(inside: Arc<AtomicUsize>) -> Self {
            Excl { inside }
        }
        pub async fn shared(&self) -> usize {
            self.inside.fetch_add(1, Ordering::SeqCst);
            tokio::task::yield_now().await;
            self.inside.fetch_sub(1, Ordering::SeqCst)
        }
        pub async fn exclusive(&mut self) -> usize {
            let others = self.inside.load(Ordering::SeqCst);
            tokio::task::yield_now().await;
            others
        }
    }
    let inside = Arc::new(AtomicUsize::new(0));
    let pool = Excl::options()
        .mode(Mode::Async)
        .max_workers(1)
        .init(inside)
        .unwrap();
    let mut excl = Vec::new();
    for i in 0..200 {
        if i % 10 == 0 {
            excl.push(pool.exclusive());
        } else {
            drop(pool.shared());
        }
    }
    for e in excl {
        assert_eq!(
            e.result().unwrap(),
            0,
            "an exclusive call overlapped shared calls"
        );
    }
}

#[test]
fn cancelled_calls_do_not_run() {
    for mode in [Mode::Thread, Mode::Async] {
        let runs = Arc::new(AtomicUsize::new(0));
        let p = Probe::options()
            .mode(mode)
            .max_workers(1)
            .init(runs.clone())
            .unwrap();
        let gate = Gate::default();
        let held = p.hold(gate.clone());
        let queued = p.id();
        assert!(queued.cancel());
        gate.open();
        held.result().unwrap();
        assert!(matches!(queued.result(), Err(Error::Cancelled)));
        p.stop().unwrap();
        assert_eq!(
            runs.load(Ordering::SeqCst),
            0,
            "{mode}: a cancelled call ran"
        );
    }
}

#[test]
fn constructor_errors_and_panics_surface_from_init() {
    quiet_planned_panics();
    struct Picky;
    #[concurry::worker]
    impl Picky {
        pub fn new(ok: bool) -> Result<Self, String> {
            if ok { Ok(Picky) } else { Err("refused".into()) }
        }
        pub fn hi(&self) -> u8 {
            1
        }
    }
    struct Boom;
    #[concurry::worker]
    impl Boom {
        pub fn new() -> Self {
            panic!("planned panic in new")
        }
        #[allow(dead_code)]
        pub fn hi(&self) -> u8 {
            1
        }
    }
    for mode in MODES {
        match Picky::options().mode(mode).max_workers(1).init(false) {
            Err(Error::Method(e)) => assert_eq!(e, "refused"),
            other => panic!(
                "{mode}: expected the constructor's error, got {:?}",
                other.map(|_| ())
            ),
        }
        assert_eq!(
            Picky::options()
                .mode(mode)
                .init(true)
                .unwrap()
                .hi()
                .result()
                .unwrap(),
            1
        );
        match Boom::options().mode(mode).max_workers(1).init() {
            Err(Error::Init { message }) => {
                assert!(message.contains("planned panic in new"), "{message}")
            }
            other => panic!("{mode}: expected Init, got {:?}", other.map(|_| ())),
        }
    }
}

#[test]
fn invalid_options_are_config_errors_naming_the_option() {
    let cases: Vec<(Result<_, _>, &str)> = vec![
        (
            Probe::options().max_workers(0).init(Arc::default()),
            "max_workers",
        ),
        (
            Probe::options()
                .mode(Mode::Sync)
                .max_workers(4)
                .init(Arc::default()),
            "max_workers",
        ),
        (
            Probe::options().max_queued_tasks(0).init(Arc::default()),
            "max_queued_tasks",
        ),
        (Probe::options().name("  ").init(Arc::default()), "name"),
    ];
    for (result, option) in cases {
        match result {
            Err(Error::Config(e)) => {
                assert_eq!(e.option(), option);
                assert!(e.to_string().contains(option), "{e}");
            }
            other => panic!(
                "expected a ConfigError for `{option}`, got {:?}",
                other.map(|_| ())
            ),
        }
    }
    let e = "fibers".parse::<Mode>().unwrap_err();
    assert!(e.to_string().contains("\"thread\""), "{e}");
    assert_eq!(
        "least_total".parse::<LoadBalancing>().unwrap(),
        LoadBalancing::LeastTotal
    );
}

#[test]
fn await_works_on_any_executor() {
    let p = probe(Mode::Thread, 2);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let v = rt.block_on(async { p.twice(4).await.unwrap() + p.next().await.unwrap() });
    assert_eq!(v, 9);
}
