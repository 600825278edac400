//! Workers and helpers shared by the behaviour tests.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use concurry::prelude::*;

/// How long a test waits for something that must not hang before it fails.
pub const HANG: Duration = Duration::from_secs(30);

/// Runs `f` on its own thread and fails the test if it does not return within [`HANG`]:
/// a regression that hangs fails the suite instead of wedging it.
pub fn within<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(HANG)
        .unwrap_or_else(|_| panic!("{what}: still not done after {HANG:?}"))
}

/// Every mode the in-process pools support.
pub const MODES: [Mode; 3] = [Mode::Sync, Mode::Thread, Mode::Async];

/// A latch tests open by hand: calls block on it until the test releases them.
#[derive(Clone, Default)]
pub struct Gate(Arc<(Mutex<bool>, Condvar)>);

impl Gate {
    pub fn open(&self) {
        *self.0.0.lock().unwrap() = true;
        self.0.1.notify_all();
    }

    /// Waits until opened; gives up after 10 s so a broken test fails instead of hanging.
    pub fn wait(&self) -> bool {
        let guard = self.0.0.lock().unwrap();
        let (guard, _) = self
            .0
            .1
            .wait_timeout_while(guard, Duration::from_secs(10), |open| !*open)
            .unwrap();
        *guard
    }
}

static NEXT_ID: AtomicUsize = AtomicUsize::new(0);

/// A worker that knows its identity and counts what it ran.
pub struct Probe {
    id: usize,
    runs: Arc<AtomicUsize>,
    served: u64,
}

#[concurry::worker]
impl Probe {
    pub fn new(runs: Arc<AtomicUsize>) -> Self {
        Probe {
            id: NEXT_ID.fetch_add(1, Ordering::SeqCst),
            runs,
            served: 0,
        }
    }

    /// The instance's identity.
    pub fn id(&self) -> usize {
        self.runs.fetch_add(1, Ordering::SeqCst);
        self.id
    }

    /// Counts calls served by this instance, in order.
    pub fn next(&mut self) -> u64 {
        self.served += 1;
        self.served
    }

    /// Blocks until `gate` opens; returns the instance's identity.
    pub fn hold(&self, gate: Gate) -> usize {
        gate.wait();
        self.id
    }

    /// An async method taking `&self`.
    pub async fn twice(&self, x: u64) -> u64 {
        tokio::task::yield_now().await;
        x * 2
    }
}

/// Keeps the test output readable: planned panics are not printed.
pub fn quiet_planned_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let planned = info
                .payload()
                .downcast_ref::<String>()
                .is_some_and(|s| s.starts_with("planned panic"))
                || info
                    .payload()
                    .downcast_ref::<&str>()
                    .is_some_and(|s| s.starts_with("planned panic"));
            if !planned {
                default(info);
            }
        }));
    });
}

/// A pool of `workers` probes (sync mode always has exactly one worker).
pub fn probe(mode: Mode, workers: usize) -> ProbeHandle {
    let workers = if mode == Mode::Sync { 1 } else { workers };
    Probe::options()
        .mode(mode)
        .max_workers(workers)
        .init(Arc::default())
        .expect("valid options")
}
