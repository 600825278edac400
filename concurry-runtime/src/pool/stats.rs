//! Counters a pool keeps per worker, and the [`PoolStats`] snapshot users read.

use crossbeam_utils::CachePadded;

use crate::options::{LoadBalancing, Mode};
use crate::sync::{AtomicBool, AtomicU64, Ordering};

/// Per-worker counters. `dispatched` is written by submitters, `completed` by the worker, each
/// on its own cache line so the hot path does not bounce one line between the two sides.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    dispatched: CachePadded<AtomicU64>,
    completed: CachePadded<AtomicU64>,
    /// Bounded pools: places held here by retried calls between two attempts (each such call
    /// keeps its place, so it counts against `max_queued_tasks` until it resolves for good).
    held: AtomicU64,
    /// Bounded pools: async submitters waiting for a place on this worker.
    pub(crate) room: tokio::sync::Notify,
    /// Async mode: the worker is running a sync method on the blocking pool.
    blocking: AtomicBool,
    /// The worker's calls in flight, as a gauge (feature `metrics`; nothing without it).
    gauge: crate::report::WorkerGauge,
}

impl Counters {
    /// The counters of a worker whose calls in flight `gauge` reports.
    pub(crate) fn reported(gauge: crate::report::WorkerGauge) -> Self {
        Counters {
            gauge,
            ..Counters::default()
        }
    }

    pub(crate) fn dispatched(&self) -> u64 {
        self.dispatched.load(Ordering::Relaxed)
    }

    pub(crate) fn in_flight(&self) -> u64 {
        // Read `completed` first: it never exceeds `dispatched`, so the difference stays >= 0.
        let done = self.completed.load(Ordering::Acquire);
        self.dispatched.load(Ordering::Acquire).saturating_sub(done)
    }

    pub(crate) fn on_dispatch(&self) {
        self.dispatched.fetch_add(1, Ordering::AcqRel);
        self.gauge.up();
    }

    /// Counts a dispatch if fewer than `limit` places are taken (calls in flight plus places
    /// held by retried calls); false if the worker is full. One compare-and-swap decides, so
    /// many submitters woken at once cannot all get in.
    pub(crate) fn try_dispatch(&self, limit: u64) -> bool {
        let mut dispatched = self.dispatched.load(Ordering::Acquire);
        loop {
            let done = self.completed.load(Ordering::Acquire);
            let taken = dispatched.saturating_sub(done) + self.held.load(Ordering::Acquire);
            if taken >= limit {
                return false;
            }
            match self.dispatched.compare_exchange_weak(
                dispatched,
                dispatched + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    self.gauge.up();
                    return true;
                }
                Err(now) => dispatched = now,
            }
        }
    }

    pub(crate) fn set_blocking(&self, on: bool) {
        self.blocking.store(on, Ordering::Release);
    }

    pub(crate) fn is_blocking(&self) -> bool {
        self.blocking.load(Ordering::Acquire)
    }

    /// A retried call takes (`true`) or gives back (`false`) its place between attempts.
    pub(crate) fn hold(&self, take: bool) {
        if take {
            self.held.fetch_add(1, Ordering::AcqRel);
        } else {
            self.held.fetch_sub(1, Ordering::AcqRel);
        }
    }

    pub(crate) fn on_complete(&self) {
        self.completed.fetch_add(1, Ordering::AcqRel);
        self.gauge.down();
    }
}

/// A snapshot of a pool, from a handle's `stats()`.
///
/// ```
/// # struct Echo;
/// # #[concurry::worker]
/// # impl Echo { pub fn new() -> Self { Echo } pub fn ping(&self) -> u8 { 1 } }
/// let pool = Echo::options().max_workers(2).init()?;
/// pool.ping().result()?;
/// let stats = pool.stats();
/// assert_eq!(stats.workers, 2);
/// assert_eq!(stats.per_worker.iter().map(|w| w.dispatched).sum::<u64>(), 1);
/// pool.stop()?;
/// assert!(pool.stats().stopped);
/// # Ok::<(), concurry::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolStats {
    /// The pool's name (the `name` option, or the worker type's name).
    pub name: String,
    /// Where the workers run.
    pub mode: Mode,
    /// Workers that exist now (for on-demand pools: alive at this moment).
    pub workers: usize,
    /// The `max_workers` the pool was built with.
    pub max_workers: usize,
    /// Whether workers are created per call.
    pub on_demand: bool,
    /// On-demand workers alive now (0 for fixed pools).
    pub on_demand_alive: usize,
    /// How calls are spread.
    pub load_balancing: LoadBalancing,
    /// Whether `stop()` was called (calls now fail with `Error::Stopped`).
    pub stopped: bool,
    /// One entry per fixed worker (empty for on-demand pools).
    pub per_worker: Vec<WorkerStats>,
}

/// Counters of one worker in [`PoolStats`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerStats {
    /// The worker's index in the pool.
    pub index: usize,
    /// Calls given to this worker and not finished yet (queued or running). A call counts as
    /// finished just after its promise resolves, so right after a `result()` this may still
    /// include that call for a moment.
    pub in_flight: u64,
    /// Calls given to this worker since the pool started.
    pub dispatched: u64,
    /// `Mode::Cluster`: the name of the node hosting this worker's instance now (`None`
    /// while it is being placed again, and in the other modes).
    pub node: Option<String>,
}
