//! [`TaskMap`]: a lazy map over a pool with a bounded window of calls in flight, each call
//! carrying one item or a chunk of items.

use std::cell::Cell;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use futures_util::Stream;

use super::task_worker::TaskWorkerHandle;
use crate::error::{ConfigError, Error, panic_message};
use crate::future::Promise;
use crate::progress::{Progress, ProgressBar};
use crate::sync::os::{self, AtomicU64};
use crate::sync::{Arc, Condvar, DynArc, Mutex, Ordering, lock};

/// What an automatic chunk aims to cost on its worker: far above a call's overhead (a few
/// microseconds), short enough to keep the window's read-ahead and the tail small.
const CHUNK_TARGET: Duration = Duration::from_micros(100);

/// The largest automatic chunk: 64 KiB of `u64`s, small enough for the allocator to reuse
/// its buffers instead of mapping fresh pages for each (items this cheap cost the caller
/// about as much as the workers anyway).
const MAX_AUTO_CHUNK: usize = 8_192;

/// How much an automatic chunk may grow from one call to the next: a first measurement
/// that is off (one item) cannot send a huge chunk to a single worker.
const GROWTH: usize = 4;

/// Items that cost less than this each are cheaper to run on the map's caller than to hand
/// to a worker, so an ordered map's caller runs them itself as it iterates. The hand-off
/// costs the caller about 0.6 ns per `u64` item (filling the chunk, reading the results
/// another core wrote) and the worker as much again in cache misses, so that below a few
/// ns an item two cores gain little over one; measured cost is rounded down to whole ns.
const INLINE_BELOW_NS: u64 = 5;

/// The results of a chunk the map's caller runs itself take at most this much room, so that
/// they are still in the L1 cache when it reads them back.
const INLINE_RESULTS: usize = 16 * 1024;

/// One call in flight: one item, or a chunk of `len` items.
enum Call<T, E> {
    One(Promise<T, E>),
    /// The promise resolves to `None` if the map's caller ran the chunk itself.
    Chunk(
        Promise<Option<ChunkOut<T, E>>>,
        usize,
        DynArc<dyn RunHere<T, E>>,
    ),
    /// A chunk the map's caller ran itself while waiting, its results at hand.
    RanHere(ChunkOut<T, E>, usize),
}

impl<T, E> Call<T, E> {
    fn items(&self) -> usize {
        match self {
            Call::One(_) => 1,
            Call::Chunk(_, len, _) | Call::RanHere(_, len) => *len,
        }
    }

    fn cancel(&self) {
        match self {
            Call::One(p) => drop(p.cancel()),
            Call::Chunk(p, _, _) => drop(p.cancel()),
            Call::RanHere(..) => {}
        }
    }

    /// Runs this chunk on the caller's thread unless its worker has taken it (or it is done).
    fn run_here(&mut self) {
        if let Call::Chunk(p, len, work) = self
            && !p.is_done()
            && let Some(out) = work.run_here()
        {
            *self = Call::RanHere(out, *len);
        }
    }
}

/// A completed call, as the map yields it.
enum Done<T, E> {
    One(Result<T, Error<E>>),
    Chunk(Result<Option<ChunkOut<T, E>>, Error>, usize),
}

impl<T, E> Call<T, E>
where
    T: Send + 'static,
    E: Send + 'static,
{
    fn on_done(&self, f: impl FnOnce() + Send + 'static) {
        match self {
            Call::One(p) => p.on_done(move |_| f()),
            Call::Chunk(p, _, _) => p.on_done(move |_| f()),
            Call::RanHere(..) => f(),
        }
    }

    fn wait(self) -> Done<T, E> {
        match self {
            Call::One(p) => Done::One(p.result()),
            Call::Chunk(p, len, _) => Done::Chunk(p.result(), len),
            Call::RanHere(out, len) => Done::Chunk(Ok(Some(out)), len),
        }
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Done<T, E>> {
        match self {
            Call::One(p) => Pin::new(p).poll(cx).map(Done::One),
            Call::Chunk(p, len, _) => Pin::new(p).poll(cx).map(|r| Done::Chunk(r, *len)),
            Call::RanHere(out, len) => {
                // Leaves an empty husk, popped by the caller with the result.
                let out = std::mem::replace(out, ChunkOut::empty());
                Poll::Ready(Done::Chunk(Ok(Some(out)), *len))
            }
        }
    }
}

/// What a chunk call returns: the values of the items that succeeded, in input order, and
/// each failure with its item's position in the chunk.
pub(crate) struct ChunkOut<T, E> {
    values: Vec<T>,
    failures: VecDeque<(usize, Error<E>)>,
}

impl<T, E> ChunkOut<T, E> {
    fn empty() -> Self {
        Self::with_capacity(0)
    }

    fn with_capacity(n: usize) -> Self {
        ChunkOut {
            values: Vec::with_capacity(n),
            failures: VecDeque::new(),
        }
    }

    /// The items run so far (each left one value or one failure).
    fn done(&self) -> usize {
        self.values.len() + self.failures.len()
    }

    /// The next item's failure.
    fn fail(&mut self, e: Error<E>) {
        self.failures.push_back((self.done(), e));
    }

    /// The running item's panic.
    fn panicked(&mut self, payload: &(dyn std::any::Any + Send)) {
        self.fail(Error::Panicked {
            message: panic_message(payload),
        });
    }
}

/// How each item of a chunk runs (on a worker, or on the map's caller).
pub(crate) trait RunItems<X, T, E>: Send + Sync + 'static {
    /// Runs the next `n` items of `items` (fewer if it ends) into `out`: a failure or a
    /// panic of the function is that item's, and the chunk goes on with the next item; a
    /// panic of `items` itself (the map's input, pulled on the caller) goes on up.
    fn run_items(&self, items: &mut impl Iterator<Item = X>, n: usize, out: &mut ChunkOut<T, E>);
}

/// Items whose function returns the value: only a panic fails an item.
pub(crate) struct Values<F>(pub(crate) F);

/// Items whose function returns a `Result`: an `Err` or a panic fails the item.
pub(crate) struct Results<F>(pub(crate) F);

impl<X, T, E, F> RunItems<X, T, E> for Values<F>
where
    F: Fn(X) -> T + Send + Sync + 'static,
{
    fn run_items(&self, items: &mut impl Iterator<Item = X>, n: usize, out: &mut ChunkOut<T, E>) {
        // One `catch_unwind` per chunk, not per item, and one `extend` of `take`: a tight
        // loop that writes in place (vectorized where the function allows). A panic leaves
        // the values so far in place; the loop resumes with the next item.
        let running = Cell::new(false);
        let end = out.done() + n;
        while out.done() < end {
            let left = end - out.done();
            match catch_unwind(AssertUnwindSafe(|| {
                out.values.extend(items.take(left).map(|x| {
                    running.set(true);
                    let v = (self.0)(x);
                    running.set(false);
                    v
                }));
            })) {
                Ok(()) => return,
                Err(payload) => item_panicked(&running, payload, out),
            }
        }
    }
}

impl<X, T, E, F> RunItems<X, T, E> for Results<F>
where
    F: Fn(X) -> Result<T, Error<E>> + Send + Sync + 'static,
{
    fn run_items(&self, items: &mut impl Iterator<Item = X>, n: usize, out: &mut ChunkOut<T, E>) {
        let running = Cell::new(false);
        let end = out.done() + n;
        while out.done() < end {
            let left = end - out.done();
            // Values in one `extend` while items succeed (a tight loop), a failure apart.
            let mut failed = None;
            match catch_unwind(AssertUnwindSafe(|| {
                out.values.extend(items.take(left).map_while(|x| {
                    running.set(true);
                    let r = (self.0)(x);
                    running.set(false);
                    r.map_err(|e| failed = Some(e)).ok()
                }));
            })) {
                Ok(()) => match failed {
                    Some(e) => out.fail(e),
                    None => return,
                },
                Err(payload) => item_panicked(&running, payload, out),
            }
        }
    }
}

/// A panic caught while running items: the running item's failure if it came from the
/// function (`running`), or else the input's, which is not an item's and goes on up.
fn item_panicked<T, E>(
    running: &Cell<bool>,
    payload: Box<dyn std::any::Any + Send>,
    out: &mut ChunkOut<T, E>,
) {
    if !running.replace(false) {
        std::panic::resume_unwind(payload);
    }
    out.panicked(&*payload);
}

/// Runs the items of a chunk (on a worker, or on the map's caller), emptying `items`, and
/// records their cost per item in `per_item_ns`.
fn run_chunk<X, T, E>(
    run: &impl RunItems<X, T, E>,
    items: &mut Vec<X>,
    per_item_ns: &AtomicU64,
) -> ChunkOut<T, E> {
    let start = Instant::now();
    let mut out = ChunkOut::with_capacity(items.len());
    // Drained in place, so the emptied buffer can carry the next chunk.
    let n = items.len();
    run.run_items(&mut items.drain(..), n, &mut out);
    record_cost(per_item_ns, start, out.done());
    out
}

/// Records the cost per item of `items` items run since `start`.
fn record_cost(per_item_ns: &AtomicU64, start: Instant, items: usize) {
    let ns = u64::try_from(start.elapsed().as_nanos() / items.max(1) as u128).unwrap_or(u64::MAX);
    per_item_ns.store(ns.max(1), Ordering::Relaxed);
}

/// A copy of a chunk call's failure for each of its items. Chunk calls run no user code
/// outside `run_chunk` and are never retried, so their failures are the pool's own.
///
/// Not `Error::cast_runtime`: that moves one error (keeping an `Upstream`'s type-erased
/// error, a `Validation`'s outputs, a `Transport` error, none of which can be cloned), while
/// here several items share one failure by reference, and only the pool's own failures can
/// occur.
fn copy_failure<E>(e: &Error) -> Error<E> {
    match e {
        Error::Stopped => Error::Stopped,
        Error::Timeout => Error::Timeout,
        Error::Cancelled => Error::Cancelled,
        Error::Panicked { message } => Error::Panicked {
            message: message.clone(),
        },
        Error::WorkerLost { message } => Error::WorkerLost {
            message: message.clone(),
        },
        Error::Init { message } => Error::Init {
            message: message.clone(),
        },
        // The argument's own error cannot be copied; its message is.
        Error::Upstream { message, .. } => Error::Upstream {
            message: message.clone(),
            error: None,
        },
        Error::Limit(l) => Error::Limit(l.clone()),
        Error::Config(c) => Error::Config(c.clone()),
        other => Error::WorkerLost {
            message: format!("the call carrying this item failed: {other}"),
        },
    }
}

/// The results of a completed chunk, yielded one by one.
struct Buffered<T, E> {
    values: std::vec::IntoIter<T>,
    failures: VecDeque<(usize, Error<E>)>,
    next: usize,
    len: usize,
    /// The whole call failed: every item gets a copy.
    failed: Option<Error>,
    /// Every item succeeded: each result is the next value (the fast path).
    clean: bool,
}

impl<T, E> Buffered<T, E> {
    fn new(result: Result<Option<ChunkOut<T, E>>, Error>, len: usize) -> Self {
        let (values, failures, failed) = match result {
            Ok(Some(out)) => (out.values, out.failures, None),
            Ok(None) => (
                Vec::new(),
                VecDeque::new(),
                Some(Error::WorkerLost {
                    message: "a chunk's items were taken by no one".into(),
                }),
            ),
            Err(e) => (Vec::new(), VecDeque::new(), Some(e)),
        };
        let clean = failed.is_none() && failures.is_empty() && values.len() == len;
        Buffered {
            values: values.into_iter(),
            failures,
            next: 0,
            len,
            failed,
            clean,
        }
    }

    fn remaining(&self) -> usize {
        if self.clean {
            self.values.len()
        } else {
            self.len - self.next
        }
    }

    #[inline]
    fn pop(&mut self) -> Option<Result<T, Error<E>>> {
        if self.clean {
            return self.values.next().map(Ok);
        }
        if self.next == self.len {
            return None;
        }
        let i = self.next;
        self.next += 1;
        if let Some(e) = &self.failed {
            return Some(Err(copy_failure(e)));
        }
        if self.failures.front().is_some_and(|(k, _)| *k == i) {
            return self.failures.pop_front().map(|(_, e)| Err(e));
        }
        Some(self.values.next().map_or_else(
            || {
                Err(Error::WorkerLost {
                    message: "a chunk returned fewer results than items".into(),
                })
            },
            Ok,
        ))
    }
}

/// Where a map's calls come from.
trait Source<T, E>: Send {
    /// Submits the next call, carrying up to `n` input items (a source that submits per item
    /// carries one); `None` once the input is exhausted.
    fn submit(&mut self, n: usize) -> Option<Call<T, E>>;
    /// The input items not submitted yet.
    fn size_hint(&self) -> (usize, Option<usize>);
    /// Whether one call can carry several items.
    fn chunks(&self) -> bool;
    /// The size of the next automatic chunk, with `window` calls in flight at most.
    fn auto_chunk(&mut self, window: usize) -> usize;
    /// Whether the items measured cheaper than handing them to a worker (`below` ns each),
    /// so that the map's caller runs the next ones itself (automatic chunks only), once
    /// `window` calls have measured them.
    fn cheap(&mut self, window: usize, below: u64) -> bool;
    /// Runs the next items (an automatic chunk's worth) on this thread: their results and
    /// count, `None` once the input is exhausted.
    fn run_inline(&mut self) -> Option<(ChunkOut<T, E>, usize)>;
}

/// Input buffers kept for reuse: a window's worth is plenty.
const SPARE_BUFFERS: usize = 16;

/// Submissions made one per item, by an iterator of promises.
struct PerItem<I>(I);

impl<I, T, E> Source<T, E> for PerItem<I>
where
    I: Iterator<Item = Promise<T, E>> + Send,
{
    fn submit(&mut self, _: usize) -> Option<Call<T, E>> {
        self.0.next().map(Call::One)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }

    fn chunks(&self) -> bool {
        false
    }

    fn auto_chunk(&mut self, _: usize) -> usize {
        1
    }

    fn cheap(&mut self, _: usize, _: u64) -> bool {
        false
    }

    fn run_inline(&mut self) -> Option<(ChunkOut<T, E>, usize)> {
        None
    }
}

/// Items sent to the pool in chunks, each chunk one call running `run` on its items.
pub(crate) struct Chunked<It: Iterator, R> {
    items: It,
    pool: TaskWorkerHandle,
    shared: std::sync::Arc<ChunkShared<It::Item, R>>,
    /// The size of the last automatic chunk (chunks grow at most [`GROWTH`]-fold per call).
    last: usize,
    /// Whether automatic chunks may carry several items: not in a pool with limits, whose
    /// every call takes a unit of them.
    auto: bool,
    /// Calls submitted so far.
    calls: usize,
    /// Whether the map's caller runs the items itself, as they measured cheap.
    here: bool,
}

/// What every chunk of a map shares.
struct ChunkShared<X, R> {
    run: R,
    /// The cost per item the last chunk measured (0: none ran yet).
    per_item_ns: AtomicU64,
    /// Emptied input buffers, given back by whoever ran a chunk (reused, so that a long map
    /// does not allocate and fault in fresh pages for every chunk).
    spare_items: os::Mutex<Vec<Vec<X>>>,
    /// Whether the map's caller may run a chunk itself: not in a pool with limits, whose
    /// calls must each take a unit of them on a worker.
    caller_may_run: bool,
}

/// One chunk's items, taken by whoever runs them first: the worker its call went to, or the
/// map's caller while it waits for results (so a caller is not idle while chunks are queued,
/// as in rayon, where the thread waiting for a join runs work too).
struct ChunkWork<X, R> {
    items: os::Mutex<Option<Vec<X>>>,
    shared: std::sync::Arc<ChunkShared<X, R>>,
}

/// A chunk the map's caller may run in place of its worker.
trait RunHere<T, E>: Send + Sync {
    /// Runs the chunk on this thread, unless someone took its items first.
    fn run_here(&self) -> Option<ChunkOut<T, E>>;
}

impl<X, R> ChunkWork<X, R> {
    /// Runs the chunk unless someone took its items first.
    fn run<T, E>(&self) -> Option<ChunkOut<T, E>>
    where
        R: RunItems<X, T, E>,
    {
        let mut items = os::lock(&self.items).take()?;
        let out = run_chunk(&self.shared.run, &mut items, &self.shared.per_item_ns);
        let mut spare = os::lock(&self.shared.spare_items);
        if spare.len() < SPARE_BUFFERS {
            spare.push(items);
        }
        Some(out)
    }
}

impl<X, R, T, E> RunHere<T, E> for ChunkWork<X, R>
where
    X: Send,
    R: RunItems<X, T, E>,
{
    fn run_here(&self) -> Option<ChunkOut<T, E>> {
        // In a cancelled scope, the call is left to its worker, which skips it.
        if !self.shared.caller_may_run || crate::cancel::is_cancelled() {
            return None;
        }
        self.run()
    }
}

impl<It: Iterator, R> Chunked<It, R> {
    /// `run` is what each item of a chunk runs.
    pub(crate) fn new(items: It, pool: TaskWorkerHandle, run: R) -> Self {
        let limited = pool.pool.has_limits();
        Chunked {
            items,
            pool,
            shared: std::sync::Arc::new(ChunkShared {
                run,
                per_item_ns: AtomicU64::new(0),
                spare_items: os::Mutex::default(),
                caller_may_run: !limited,
            }),
            last: 0,
            auto: !limited,
            calls: 0,
            here: false,
        }
    }
}

impl<It, R, T, E> Source<T, E> for Chunked<It, R>
where
    It: Iterator + Send,
    It::Item: Send + 'static,
    R: RunItems<It::Item, T, E>,
    T: Send + 'static,
    E: Send + 'static,
{
    fn submit(&mut self, n: usize) -> Option<Call<T, E>> {
        let mut chunk = os::lock(&self.shared.spare_items).pop().unwrap_or_default();
        chunk.extend(self.items.by_ref().take(n));
        if chunk.is_empty() {
            return None;
        }
        let len = chunk.len();
        let work = DynArc::new(ChunkWork {
            items: os::Mutex::new(Some(chunk)),
            shared: self.shared.clone(),
        });
        let on_worker = work.clone();
        let promise = self.pool.submit(move || on_worker.run());
        self.calls += 1;
        Some(Call::Chunk(promise, len, work))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.items.size_hint()
    }

    fn chunks(&self) -> bool {
        true
    }

    fn auto_chunk(&mut self, window: usize) -> usize {
        let ns = self.shared.per_item_ns.load(Ordering::Relaxed);
        if !self.auto || ns == 0 {
            return 1;
        }
        let target = usize::try_from(CHUNK_TARGET.as_nanos() as u64 / ns).unwrap_or(usize::MAX);
        let mut n = target
            .clamp(1, MAX_AUTO_CHUNK)
            .min(self.last.saturating_mul(GROWTH).max(1));
        // Leave a call for every slot of the window, so the tail spreads over the workers.
        if let (_, Some(left)) = self.items.size_hint() {
            n = n.min((left / window).max(1));
        }
        self.last = n;
        n
    }

    fn cheap(&mut self, window: usize, below: u64) -> bool {
        if !self.auto || !self.shared.caller_may_run || self.calls < window {
            return false;
        }
        let ns = self.shared.per_item_ns.load(Ordering::Relaxed);
        // Apart by twice, so that a cost near the line does not flip at every chunk.
        self.here = if self.here {
            ns <= below.saturating_mul(2)
        } else {
            ns < below
        };
        // A stopped pool, or a cancelled scope, fails the items: through a call, as always.
        self.here && !self.pool.is_stopped() && !crate::cancel::is_cancelled()
    }

    fn run_inline(&mut self) -> Option<(ChunkOut<T, E>, usize)> {
        let ns = self.shared.per_item_ns.load(Ordering::Relaxed).max(1);
        let target = usize::try_from(CHUNK_TARGET.as_nanos() as u64 / ns).unwrap_or(usize::MAX);
        let cap = (INLINE_RESULTS / std::mem::size_of::<T>().max(1)).clamp(64, MAX_AUTO_CHUNK);
        let mut n = target
            .clamp(1, cap)
            .min(self.last.saturating_mul(GROWTH).max(1));
        if let (_, Some(left)) = self.items.size_hint() {
            n = n.min(left.max(1));
        }
        self.last = n;
        let start = Instant::now();
        let mut out = ChunkOut::with_capacity(n);
        // Straight from the input, in one pass: a panic of the input itself is the caller's
        // (it goes on up, as when the caller pulls a call's items), only the function's are
        // the items'.
        self.shared.run.run_items(&mut self.items, n, &mut out);
        let len = out.done();
        record_cost(&self.shared.per_item_ns, start, len);
        (len > 0).then_some((out, len))
    }
}

/// The results of `map` / `map_unordered` on a pool: an [`Iterator`] (blocking) and a
/// [`Stream`] (async) of one `Result` per input item.
///
/// It is lazy and bounded: nothing is submitted before the first `next()`, and it never has
/// more than [`window`](TaskMap::window) calls in flight, pulling the next items from the
/// input only when one of them is consumed. So mapping over a million items never holds a
/// million promises. The calls are spread over every worker by the pool's load balancer.
///
/// A call carries one item, or with [`TaskWorkerHandle::map`] and
/// [`try_map`](TaskWorkerHandle::try_map) a chunk of items (see
/// [`chunk_size`](TaskMap::chunk_size)): cheap items are batched automatically, so the cost
/// of a call is shared by many. Iterating an ordered chunked map, the waiting thread runs
/// the chunk it waits for itself when no worker has started it yet (as rayon's waiting
/// threads do), instead of idling. Items that measure cheaper than handing them to a worker
/// (under 5 ns each, once the first window of calls has measured them) are not sent at all:
/// the reading thread runs them in automatic chunks as it iterates, because writing an item
/// where another core reads it, and its result back, costs more than running it. Neither
/// happens in a pool with limits (whose calls each take a unit of them on a worker), in an
/// unordered map, on a tokio runtime's thread, or in a cancelled scope; once the pool is
/// stopped, cheap items fail with [`Error::Stopped`] as calls would.
///
/// Every item yields exactly one result: a failure (the function's own error, a panic, the
/// pool stopped mid-map) is that item's `Err`. Dropping the map cancels the calls it still
/// has in flight that have not started.
///
/// ```
/// use concurry::prelude::*;
///
/// let pool = concurry::TaskWorker::options().mode(Mode::Thread).max_workers(4).init()?;
/// let results = pool.map(|x: u64| x.pow(2), 0..1_000_000).window(16).chunk_size(1);
/// let sum: u64 = results.take(10).map(Result::unwrap).sum();
/// assert_eq!(sum, 285); // only the first 10 (plus a window ahead) were computed
/// # Ok::<(), concurry::Error>(())
/// ```
#[must_use = "a map does nothing until it is iterated"]
pub struct TaskMap<'a, T, E = Infallible> {
    source: Option<Box<dyn Source<T, E> + 'a>>,
    window: usize,
    unordered: bool,
    /// Items per call: `None` automatic, `Some(0)` refused when iterating.
    chunk_size: Option<usize>,
    /// Items measured cheaper than this (ns) run on the map's caller.
    inline_below: u64,
    /// A bad option, yielded once instead of any result.
    invalid: Option<ConfigError>,
    /// In order: the calls in flight, oldest first.
    queue: VecDeque<Call<T, E>>,
    /// Out of order: the calls in flight by slot, and which slots completed.
    slots: Vec<Option<Call<T, E>>>,
    free: Vec<usize>,
    ready: Arc<Ready>,
    /// Calls in flight.
    in_flight: usize,
    /// Items those calls carry.
    items_in_flight: usize,
    /// The completed chunk being yielded.
    buffered: Option<Buffered<T, E>>,
    progress: Option<Progress>,
    bar: Option<ProgressBar>,
}

/// The slots of an unordered map whose call completed, in completion order.
#[derive(Debug, Default)]
struct Ready {
    state: Mutex<ReadyState>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct ReadyState {
    done: VecDeque<usize>,
    waker: Option<Waker>,
}

impl Ready {
    fn push(&self, slot: usize) {
        let waker = {
            let mut st = lock(&self.state);
            st.done.push_back(slot);
            st.waker.take()
        };
        self.changed.notify_one();
        if let Some(w) = waker {
            w.wake();
        }
    }

    fn pop_blocking(&self) -> usize {
        let mut st = lock(&self.state);
        loop {
            if let Some(slot) = st.done.pop_front() {
                return slot;
            }
            st = self
                .changed
                .wait(st)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }

    fn poll_pop(&self, waker: &Waker) -> Option<usize> {
        let mut st = lock(&self.state);
        let slot = st.done.pop_front();
        if slot.is_none() {
            st.waker = Some(waker.clone());
        }
        slot
    }
}

impl<'a, T, E> TaskMap<'a, T, E>
where
    T: Send + 'static,
    E: Send + 'static,
{
    /// A map over `submissions`, an iterator that submits one call per `next()`, keeping at
    /// most `window` of them in flight.
    ///
    /// ```
    /// use concurry::{Promise, TaskMap};
    /// let calls = (1..=3).map(|x| Promise::<u32>::ready(Ok(x)));
    /// let out: Vec<u32> = TaskMap::new(calls, 2).map(Result::unwrap).collect();
    /// assert_eq!(out, [1, 2, 3]);
    /// ```
    pub fn new(
        submissions: impl Iterator<Item = Promise<T, E>> + Send + 'a,
        window: usize,
    ) -> Self {
        Self::from_source(Box::new(PerItem(submissions)), window)
    }

    /// A map over items sent in chunks.
    pub(crate) fn chunked<It, R>(source: Chunked<It, R>, window: usize) -> Self
    where
        It: Iterator + Send + 'a,
        It::Item: Send + 'static,
        R: RunItems<It::Item, T, E>,
    {
        Self::from_source(Box::new(source), window)
    }

    fn from_source(source: Box<dyn Source<T, E> + 'a>, window: usize) -> Self {
        TaskMap {
            source: Some(source),
            window: window.max(1),
            unordered: false,
            chunk_size: None,
            inline_below: INLINE_BELOW_NS,
            invalid: None,
            queue: VecDeque::new(),
            slots: Vec::new(),
            free: Vec::new(),
            ready: Arc::default(),
            in_flight: 0,
            items_in_flight: 0,
            buffered: None,
            progress: None,
            bar: None,
        }
    }

    /// The most calls in flight at once (at least 1). Set it before iterating; it takes effect
    /// on the next refill.
    ///
    /// ```
    /// let pool = concurry::TaskWorker::options().init()?;
    /// let out: Vec<_> = pool.map(|x: u8| x, [1, 2]).window(1).collect();
    /// assert_eq!(out.len(), 2);
    /// # Ok::<(), concurry::Error>(())
    /// ```
    pub fn window(mut self, window: usize) -> Self {
        self.window = window.max(1);
        self
    }

    /// How many items each call carries (the last call may carry fewer). Results keep their
    /// order, and each item still gets its own result: a failure or a panic fails only its
    /// item, the rest of the chunk runs on.
    ///
    /// Unset, [`TaskWorkerHandle::map`] and [`try_map`](TaskWorkerHandle::try_map) choose
    /// automatically: the first call carries one item and measures what an item costs on the
    /// worker; later calls carry as many as fit in about 100 µs (growing at most fourfold per
    /// call, at most 8192 items, and leaving a call for every slot of the window), so items
    /// costing 100 µs or more still go one per call, and an ordered map's items costing under
    /// 5 ns run on its reading thread (see [`TaskMap`]). A pool with limits gets one item per
    /// call (every call takes a unit of its limits), unless `chunk_size` says otherwise.
    /// `chunk_size(1)` turns chunks off.
    ///
    /// A `#[task]` function's `map` chunks the same way, unless its calls are retried (a
    /// `#[retry]` or the pool's `retry` option), run in child processes, or the function is
    /// `async`: then, as with `map_async` and `map_with`, each item is its own call, and a
    /// chunk size above 1 is an error. The window counts calls, so up to
    /// `window × chunk_size` items are read ahead.
    ///
    /// A size of 0, or above 1 on a map that submits per item, is refused: the map yields one
    /// `Err(Error::Config)` naming `chunk_size`, and runs nothing.
    ///
    /// ```
    /// use concurry::Error;
    /// let pool = concurry::TaskWorker::options().max_workers(2).init()?;
    /// let out: Vec<u64> = pool.map(|x: u64| x + 1, 0..1_000).chunk_size(100).collect::<Result<_, _>>()?;
    /// assert_eq!(out, (1..=1_000).collect::<Vec<_>>());
    ///
    /// let zero: Vec<_> = pool.map(|x: u64| x, 0..10).chunk_size(0).collect();
    /// assert!(matches!(&zero[..], [Err(Error::Config(c))] if c.option() == "chunk_size"));
    /// # Ok::<(), concurry::Error>(())
    /// ```
    pub fn chunk_size(mut self, n: usize) -> Self {
        self.chunk_size = Some(n);
        self
    }

    /// Below which cost per item (ns) automatic chunks run on the map's caller: for tests,
    /// whose unoptimized builds cost far more per item than the default assumes.
    #[doc(hidden)]
    pub fn __inline_below(mut self, ns: u64) -> Self {
        self.inline_below = ns;
        self
    }

    /// Yields results as the calls complete instead of in input order (the items of one
    /// chunk come together, in their order).
    ///
    /// ```
    /// let pool = concurry::TaskWorker::options().init()?;
    /// let n = pool.map(|x: u8| x, 0..10).unordered().count();
    /// assert_eq!(n, 10);
    /// # Ok::<(), concurry::Error>(())
    /// ```
    pub fn unordered(mut self) -> Self {
        self.unordered = true;
        self
    }

    /// Shows a progress bar (one tick per result, failures counted apart) while iterating,
    /// from a message or a [`Progress`]. Its total is the input's length when the input knows
    /// it exactly (a range, a `Vec`), else a spinner; [`Progress::total`] overrides it.
    ///
    /// ```
    /// use concurry::Progress;
    /// let pool = concurry::TaskWorker::options().init()?;
    /// let quiet = Progress::new("squares").log_every(50).log_to(std::io::sink());
    /// let n = pool.map(|x: u32| x * x, 0..100).progress(quiet).count();
    /// assert_eq!(n, 100);
    /// # Ok::<(), concurry::Error>(())
    /// ```
    pub fn progress(mut self, progress: impl Into<Progress>) -> Self {
        self.progress = Some(progress.into());
        self
    }

    /// Calls submitted and not yet yielded (a chunk counts once).
    ///
    /// ```
    /// let pool = concurry::TaskWorker::options().init()?;
    /// let mut m = pool.map(|x: u8| x, 0..100).window(4);
    /// assert_eq!(m.in_flight(), 0); // lazy
    /// m.next();
    /// assert!(m.in_flight() <= 4);
    /// # Ok::<(), concurry::Error>(())
    /// ```
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Starts the bar and checks the options, on first use.
    fn start(&mut self) {
        if let Some(source) = &self.source {
            let refused = match self.chunk_size {
                Some(0) => Some(ConfigError::new(
                    "chunk_size",
                    "0",
                    "a call carries at least 1 item: pass 1 or more, or leave it unset for an \
                     automatic size",
                )),
                Some(n) if n > 1 && !source.chunks() => Some(ConfigError::new(
                    "chunk_size",
                    n.to_string(),
                    "this map submits each item as its own call (map_async, map_with, and the \
                     map of an async #[task] function or of one whose calls are retried or run \
                     in child processes): use chunk_size(1)",
                )),
                _ => None,
            };
            if let Some(e) = refused {
                self.invalid = Some(e);
                self.source = None;
                return;
            }
        }
        if self.bar.is_some() {
            return;
        }
        let Some(progress) = self.progress.take() else {
            return;
        };
        let total = self.source.as_ref().and_then(|s| match s.size_hint() {
            (lo, Some(hi)) if lo == hi => Some(lo as u64),
            _ => None,
        });
        self.bar = Some(match total {
            Some(t) => ProgressBar::new(t, progress),
            None => ProgressBar::without_total(progress),
        });
    }

    /// Submits calls until the window is full or the input is exhausted.
    fn refill(&mut self) {
        if self.in_flight == 0 && self.bar.is_none() {
            self.start();
        }
        while self.in_flight < self.window {
            let Some(source) = self.source.as_mut() else {
                return;
            };
            // Items cheaper than a hand-off run here as the map is read, once the calls in
            // flight are drained (in order): not for an unordered map, whose items run on
            // workers only, nor on a tokio runtime's thread.
            if self.chunk_size.is_none()
                && !self.unordered
                && source.cheap(self.window, self.inline_below)
                && !crate::runtime::in_async_context()
            {
                if self.in_flight == 0 {
                    match source.run_inline() {
                        Some((out, len)) => self.buffered = Some(Buffered::new(Ok(Some(out)), len)),
                        None => self.source = None,
                    }
                }
                return;
            }
            let n = match self.chunk_size {
                Some(n) => n,
                None => source.auto_chunk(self.window),
            };
            let Some(call) = source.submit(n) else {
                self.source = None;
                return;
            };
            self.in_flight += 1;
            self.items_in_flight += call.items();
            if self.unordered {
                let slot = match self.free.pop() {
                    Some(s) => s,
                    None => {
                        self.slots.push(None);
                        self.slots.len() - 1
                    }
                };
                let ready = self.ready.clone();
                call.on_done(move || ready.push(slot));
                self.slots[slot] = Some(call);
            } else {
                self.queue.push_back(call);
            }
        }
    }

    /// Takes the call of a completed unordered slot.
    fn take_slot(&mut self, slot: usize) -> Option<Call<T, E>> {
        self.free.push(slot);
        self.slots[slot].take()
    }

    /// A call left the window: its first result (a chunk keeps the rest in `buffered`).
    fn finish(&mut self, done: Done<T, E>) -> Result<T, Error<E>> {
        self.in_flight -= 1;
        match done {
            Done::One(r) => {
                self.items_in_flight -= 1;
                r
            }
            Done::Chunk(r, len) => {
                self.items_in_flight -= len;
                let mut buffered = Buffered::new(r, len);
                // The chunk's call left the window: the next refill replaces it once the
                // chunk is drained, so at most `window × chunk_size` items are ahead.
                let first = buffered.pop();
                self.buffered = Some(buffered);
                first.unwrap_or_else(|| {
                    Err(Error::WorkerLost {
                        message: "an empty chunk".into(),
                    })
                })
            }
        }
    }

    /// A result already at hand: from the chunk being drained, or the refused option.
    #[inline]
    fn at_hand(&mut self) -> Option<Result<T, Error<E>>> {
        if let Some(b) = &mut self.buffered {
            match b.pop() {
                Some(r) => return Some(r),
                None => self.buffered = None,
            }
        }
        self.invalid.take().map(|e| Err(Error::Config(e)))
    }

    /// Before blocking for the next result in order: if its chunk still waits in a worker's
    /// queue, runs it on this thread instead of idling until a worker gets to it.
    ///
    /// Only the chunk waited for: this thread would block on it anyway, so running it here
    /// cannot hold up a result that a later chunk's items wait for (a later chunk run here
    /// could, as could any chunk of an unordered map, which waits for whichever is first).
    /// Not inside a tokio runtime, whose threads must not run user code this long.
    fn run_next_here(&mut self) {
        if self.unordered || crate::runtime::in_async_context() {
            return;
        }
        if let Some(front) = self.queue.front_mut() {
            front.run_here();
        }
    }

    fn tick(&mut self, item: Option<Result<T, Error<E>>>) -> Option<Result<T, Error<E>>> {
        if let Some(bar) = &self.bar {
            match &item {
                Some(r) => bar.inc(r.is_ok()),
                None => bar.finish(),
            }
        }
        item
    }
}

impl<T, E> Iterator for TaskMap<'_, T, E>
where
    T: Send + 'static,
    E: Send + 'static,
{
    type Item = Result<T, Error<E>>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(r) = self.at_hand() {
            return self.tick(Some(r));
        }
        self.refill();
        if let Some(r) = self.at_hand() {
            return self.tick(Some(r));
        }
        if self.in_flight > 0 {
            self.run_next_here();
        }
        let call = if self.in_flight == 0 {
            None
        } else if self.unordered {
            let slot = self.ready.pop_blocking();
            self.take_slot(slot)
        } else {
            self.queue.pop_front()
        };
        let item = call.map(|c| {
            // Completed (unordered: its callback ran), or waited for here.
            let done = c.wait();
            self.finish(done)
        });
        self.tick(item)
    }

    /// Drains each completed chunk in a tight loop (`sum`, `for_each`, `fold` ...).
    fn fold<B, G>(mut self, init: B, mut g: G) -> B
    where
        G: FnMut(B, Self::Item) -> B,
    {
        let mut acc = init;
        loop {
            if let Some(b) = &mut self.buffered
                && b.clean
            {
                match &self.bar {
                    None => acc = b.values.by_ref().fold(acc, |a, v| g(a, Ok(v))),
                    Some(bar) => {
                        for v in b.values.by_ref() {
                            bar.inc(true);
                            acc = g(acc, Ok(v));
                        }
                    }
                }
            }
            match self.next() {
                Some(r) => acc = g(acc, r),
                None => return acc,
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let (lo, hi) = self.source.as_ref().map_or((0, Some(0)), |s| s.size_hint());
        let held = self.items_in_flight
            + self.buffered.as_ref().map_or(0, Buffered::remaining)
            + usize::from(self.invalid.is_some());
        (
            lo.saturating_add(held),
            hi.and_then(|h| h.checked_add(held)),
        )
    }
}

// Nothing of a map is pinned (its promises are handles; results are moved out whole).
impl<T, E> Unpin for TaskMap<'_, T, E> {}

impl<T, E> Stream for TaskMap<'_, T, E>
where
    T: Send + 'static,
    E: Send + 'static,
{
    type Item = Result<T, Error<E>>;

    /// Polled inside a tokio runtime this never blocks for back-pressure
    /// (`max_queued_tasks`): a call waits for its place inside its promise; on another
    /// executor submitting may block briefly. In sync mode each call runs when it is
    /// submitted.
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if let Some(r) = this.at_hand() {
            return Poll::Ready(this.tick(Some(r)));
        }
        this.refill();
        if let Some(r) = this.at_hand() {
            return Poll::Ready(this.tick(Some(r)));
        }
        if this.in_flight == 0 {
            return Poll::Ready(this.tick(None));
        }
        let done = if this.unordered {
            match this.ready.poll_pop(cx.waker()) {
                Some(slot) => match this.take_slot(slot) {
                    Some(call) => call.wait(),
                    None => return Poll::Ready(this.tick(None)),
                },
                None => return Poll::Pending,
            }
        } else {
            let Some(front) = this.queue.front_mut() else {
                return Poll::Ready(this.tick(None));
            };
            match front.poll(cx) {
                Poll::Ready(done) => {
                    this.queue.pop_front();
                    done
                }
                Poll::Pending => return Poll::Pending,
            }
        };
        let item = this.finish(done);
        Poll::Ready(this.tick(Some(item)))
    }
}

impl<T, E> Drop for TaskMap<'_, T, E> {
    fn drop(&mut self) {
        self.queue.iter().for_each(Call::cancel);
        self.slots.iter().flatten().for_each(Call::cancel);
        if let Some(bar) = &self.bar {
            bar.finish();
        }
    }
}

impl<T, E> fmt::Debug for TaskMap<'_, T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskMap")
            .field("window", &self.window)
            .field("chunk_size", &self.chunk_size)
            .field("unordered", &self.unordered)
            .field("in_flight", &self.in_flight)
            .field("exhausted", &self.source.is_none())
            .finish()
    }
}
