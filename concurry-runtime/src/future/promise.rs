//! [`Promise`]: the single future type every call returns.

use std::convert::Infallible;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use super::slot::{Slot, Stash};
use crate::error::Error;
use crate::sync::DynArc;

/// The result of a worker call (or of anything passed to [`wrap`](crate::wrap)), available
/// later.
///
/// Wait for it by blocking ([`result`](Promise::result),
/// [`result_timeout`](Promise::result_timeout)) or with `.await` on any executor. Every
/// promise resolves: with the value, or with an [`Error`] if the call failed, panicked, was
/// cancelled or its pool stopped.
///
/// ```
/// use concurry::Promise;
///
/// let (promise, completer) = Promise::<u32>::pending();
/// std::thread::spawn(move || completer.complete(Ok(42)));
/// assert_eq!(promise.result().unwrap(), 42);
/// ```
#[must_use = "the call runs even if its promise is dropped, but its value and any error are lost; wait for it (`result()`, `.await`), or write `let _ = ..` to drop it on purpose"]
pub struct Promise<T, E = Infallible> {
    cell: DynArc<ResultCell<T, E>>,
}

/// The one allocation a promise shares with whoever resolves it: the result slot, then
/// whatever the resolving side keeps beside it (a pool call keeps its job there, so a call
/// costs one allocation, made and usually freed by the caller's thread).
pub(crate) struct PromiseCell<V: Stash, J: ?Sized = dyn Tail> {
    pub(crate) slot: Slot<V>,
    /// The scope (or call) the call was submitted in: its cancel reaches the method.
    pub(crate) cancel: Option<crate::cancel::Parent>,
    /// The call's metrics, reported once by whoever resolves the slot (feature `metrics`;
    /// empty without it, and for a promise that is not a call's).
    pub(crate) report: crate::report::CallTimer,
    pub(crate) tail: J,
}

/// What a [`PromiseCell`] may keep beside its slot: anything shareable across threads.
pub(crate) trait Tail: Send + Sync {
    /// The durable task the promise stands for (cluster mode's task pools), if any.
    fn task_id(&self) -> Option<&str> {
        None
    }
}

impl Tail for () {}

/// The tail of a durable task's promise: its id.
pub(crate) struct TaskTail(pub(crate) Box<str>);

impl Tail for TaskTail {
    fn task_id(&self) -> Option<&str> {
        Some(&self.0)
    }
}

impl<V: Stash> PromiseCell<V, ()> {
    /// A cell with nothing beside its slot.
    fn bare() -> DynArc<PromiseCell<V>> {
        Self::in_scope(None)
    }

    /// A cell with nothing beside its slot, for a call submitted in `cancel`.
    fn in_scope(cancel: Option<crate::cancel::Parent>) -> DynArc<PromiseCell<V>> {
        DynArc::new(PromiseCell {
            slot: Slot::new(),
            cancel,
            report: crate::report::CallTimer::none(),
            tail: (),
        })
    }
}

type ResultCell<T, E> = PromiseCell<Result<T, Error<E>>>;

/// The writing side of a [`Promise`]: whoever runs the call completes it.
///
/// Dropping a completer without completing it resolves the promise with [`Error::Stopped`], so
/// a call thrown away with its queue never leaves its caller waiting.
pub struct Completer<T, E = Infallible> {
    cell: Option<DynArc<ResultCell<T, E>>>,
}

impl<T, E> Promise<T, E> {
    /// The promise of `cell`'s slot.
    pub(crate) fn from_cell(cell: DynArc<ResultCell<T, E>>) -> Self {
        Promise { cell }
    }

    fn slot(&self) -> &Slot<Result<T, Error<E>>> {
        &self.cell.slot
    }

    /// Cancels the promise (as [`cancel`](Promise::cancel)) when called, without keeping it
    /// alive.
    pub(crate) fn weak_canceller(&self) -> impl Fn() + Send + Sync + 'static
    where
        T: Send + 'static,
        E: Send + 'static,
    {
        let weak = DynArc::downgrade(&self.cell);
        move || {
            if let Some(cell) = weak.upgrade() {
                cell.slot.cancel(Err(Error::Cancelled));
            }
        }
    }

    /// The scope (or call) this promise's call was submitted in.
    pub(crate) fn cancel_parent(&self) -> Option<&crate::cancel::Parent> {
        self.cell.cancel.as_ref()
    }
}

impl<T, E> Promise<T, E> {
    /// A promise and the completer that resolves it.
    ///
    /// ```
    /// let (p, c) = concurry::Promise::<&str>::pending();
    /// assert!(!p.is_done());
    /// c.complete(Ok("hi"));
    /// assert!(p.is_done());
    /// ```
    pub fn pending() -> (Self, Completer<T, E>) {
        let cell = PromiseCell::bare();
        (Promise { cell: cell.clone() }, Completer::from_cell(cell))
    }

    /// As [`pending`](Promise::pending), for a call submitted in the scope (or call)
    /// `cancel`: its cancel is the call's too ([`Completer::cancel_requested`],
    /// [`Completer::cancel_watch`]).
    pub(crate) fn pending_in(cancel: Option<crate::cancel::Parent>) -> (Self, Completer<T, E>) {
        let cell = PromiseCell::in_scope(cancel);
        (Promise { cell: cell.clone() }, Completer::from_cell(cell))
    }

    /// As [`pending`](Promise::pending), for the durable task `id` (its
    /// [`task_id`](Promise::task_id)).
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    pub(crate) fn pending_task(id: &str) -> (Self, Completer<T, E>) {
        let cell: DynArc<ResultCell<T, E>> = DynArc::new(PromiseCell {
            slot: Slot::new(),
            cancel: None,
            report: crate::report::CallTimer::none(),
            tail: TaskTail(id.into()),
        });
        (Promise { cell: cell.clone() }, Completer::from_cell(cell))
    }

    /// The id of the durable task this promise stands for: `Some` for a promise from
    /// `submit` on a `#[task(remote)]` pool in `Mode::Cluster` (the task is stored once
    /// `submit` returns, so the id can be looked up from any process, e.g.
    /// `cluster.task_status(id)`), `None` for every other promise.
    ///
    /// ```
    /// let p = concurry::Promise::<u8>::ready(Ok(3));
    /// assert_eq!(p.task_id(), None);
    /// ```
    pub fn task_id(&self) -> Option<&str> {
        self.cell.tail.task_id()
    }

    /// A promise that is already resolved with `result`.
    ///
    /// ```
    /// let p = concurry::Promise::<u8>::ready(Ok(3));
    /// assert_eq!(p.result().unwrap(), 3);
    /// ```
    pub fn ready(result: Result<T, Error<E>>) -> Self {
        let (p, c) = Self::pending();
        c.complete(result);
        p
    }

    /// True once the result is available (without blocking).
    pub fn is_done(&self) -> bool {
        self.slot().is_ready()
    }

    /// Blocks the calling thread until the result is available and returns it.
    ///
    /// In async code, prefer `.await`: it never blocks a thread. Blocking works there too:
    /// on a worker thread of a multi-thread tokio runtime (the one async-mode workers run on,
    /// or your own `#[tokio::main]`) the runtime first hands the thread's other tasks to
    /// another thread ([`tokio::task::block_in_place`]), so an `async fn` worker method may
    /// call `.result()` (or a handle's `.blocking()` methods) on another pool's promise and
    /// the call it waits for still runs. On a current-thread runtime `result` blocks its only
    /// thread: a pool's call still finishes (its worker runs elsewhere), but a promise whose
    /// work needs that runtime (such as [`wrap`](crate::wrap) of a task spawned on it) would
    /// never resolve: `.await` it there. A call waiting on a call queued behind it on the
    /// same worker waits for good, as in any mode.
    ///
    /// ```
    /// use concurry::Mode;
    ///
    /// struct Inner;
    /// #[concurry::worker]
    /// impl Inner {
    ///     pub fn new() -> Self { Inner }
    ///     pub async fn get(&self) -> u8 { 20 }
    /// }
    ///
    /// struct Outer { inner: InnerHandle }
    /// #[concurry::worker]
    /// impl Outer {
    ///     pub fn new(inner: InnerHandle) -> Self { Outer { inner } }
    ///     // Blocks inside an async method of an async-mode pool: works, `.await` is better.
    ///     pub async fn get(&self) -> u8 { self.inner.blocking().get().unwrap() + 1 }
    /// }
    ///
    /// let inner = Inner::options().mode(Mode::Async).init()?;
    /// let outer = Outer::options().mode(Mode::Async).init(inner)?;
    /// assert_eq!(outer.get().result()?, 21);
    /// # Ok::<(), concurry::Error>(())
    /// ```
    ///
    /// # Panics
    ///
    /// If the value was already taken with [`try_result`](Promise::try_result).
    pub fn result(self) -> Result<T, Error<E>> {
        loop {
            if let Some(v) = self.slot().try_take() {
                return v;
            }
            assert!(
                !self.slot().is_taken(),
                "Promise::result called after try_result took the value"
            );
            self.block_until(None);
        }
    }

    /// Blocks until the result is there or `deadline` passes (see [`result`](Promise::result)
    /// for blocking inside a runtime).
    fn block_until(&self, deadline: Option<Instant>) -> bool {
        if !crate::runtime::in_async_context() {
            return self.slot().wait(deadline);
        }
        // A short spin first (a deadline of now): most calls answer within microseconds,
        // and handing a runtime thread over costs more.
        if self.slot().wait(Some(Instant::now())) && self.slot().is_ready() {
            return true;
        }
        crate::runtime::blocking(|| self.slot().wait(deadline))
    }

    /// Like [`result`](Promise::result), but gives up after `timeout` with [`Error::Timeout`].
    ///
    /// The call itself goes on; use [`wait_timeout`](Promise::wait_timeout) to keep the promise.
    ///
    /// ```
    /// use std::time::Duration;
    /// let (p, _c) = concurry::Promise::<u8>::pending();
    /// assert!(matches!(p.result_timeout(Duration::from_millis(1)), Err(concurry::Error::Timeout)));
    /// ```
    pub fn result_timeout(self, timeout: Duration) -> Result<T, Error<E>> {
        if self.wait_timeout(timeout) {
            self.result()
        } else {
            Err(Error::Timeout)
        }
    }

    /// Blocks until the result is available or `timeout` passes; true if it is available.
    /// Inside a tokio runtime it blocks as [`result`](Promise::result) does.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        let deadline = Instant::now().checked_add(timeout);
        self.block_until(deadline) && self.slot().is_ready()
    }

    /// Resolves the promise with [`Error::Cancelled`] unless it already has a result.
    ///
    /// The promise resolves at once. A call that has not started yet is then skipped by its
    /// worker; one that is running sees the cancel at its next checkpoint
    /// ([`check_cancelled`](crate::check_cancelled), [`cancelled`](crate::cancelled)), and
    /// what it returns is reported through `tracing` (target `concurry::cancel`) and dropped.
    /// In process mode the child is told: its method sees the cancel at its next checkpoint
    /// too, and a call still waiting in the child does not run (a method that never checks
    /// runs on, bounded by `call_timeout`). The promise of a durable task (a
    /// `#[task(remote)]` pool in `Mode::Cluster`) cancels the task on the cluster too, as
    /// `Cluster::cancel` does. Returns whether this cancelled the promise.
    ///
    /// ```
    /// let (p, c) = concurry::Promise::<u8>::pending();
    /// assert!(p.cancel());
    /// assert!(c.is_cancelled());
    /// assert!(matches!(p.result(), Err(concurry::Error::Cancelled)));
    /// ```
    pub fn cancel(&self) -> bool {
        self.slot().cancel(Err(Error::Cancelled))
    }

    /// Runs `callback` with the result once it is available (at once if it already is), on the
    /// thread that completes the promise.
    ///
    /// The callback must be quick and must not register another callback on this promise.
    /// A panic in it is caught and reported through `tracing` (at `ERROR` level): it never
    /// reaches the worker or the code completing the promise, the promise keeps its result,
    /// and the other callbacks still run.
    ///
    /// ```
    /// use std::sync::mpsc;
    /// let (p, c) = concurry::Promise::<u8>::pending();
    /// let (tx, rx) = mpsc::channel();
    /// p.on_done(move |r| tx.send(*r.as_ref().unwrap()).unwrap());
    /// c.complete(Ok(9));
    /// assert_eq!(rx.recv().unwrap(), 9);
    /// ```
    pub fn on_done(&self, callback: impl FnOnce(&Result<T, Error<E>>) + Send + 'static) {
        self.slot().on_done(Box::new(callback));
    }

    /// Takes the result if it is available, without blocking. Once it returned `Some`, the
    /// promise is spent: do not wait on it again.
    pub fn try_result(&mut self) -> Option<Result<T, Error<E>>> {
        self.slot().try_take()
    }
}

impl<T, E> Completer<T, E> {
    /// The completer of `cell`'s slot.
    pub(crate) fn from_cell(cell: DynArc<ResultCell<T, E>>) -> Self {
        Completer { cell: Some(cell) }
    }

    /// Resolves the promise; returns false if it was already resolved (e.g. cancelled).
    pub fn complete(self, result: Result<T, Error<E>>) -> bool {
        self.try_complete(result).is_ok()
    }

    /// Resolves the promise, or gives `result` back if it was already resolved.
    pub(crate) fn try_complete(
        mut self,
        result: Result<T, Error<E>>,
    ) -> Result<(), Result<T, Error<E>>> {
        let Some(cell) = self.cell.take() else {
            return Err(result);
        };
        if !cell.report.is_some() {
            return cell.slot.try_complete(result);
        }
        let how = crate::report::Outcome::of(&result);
        let done = cell.slot.try_complete(result);
        cell.report.done(match done {
            Ok(()) => how,
            Err(_) => crate::report::Outcome::CANCELLED,
        });
        done
    }

    /// True if the promise was cancelled (or resolved some other way) before the call ran,
    /// or the scope it was submitted in is cancelled; the runner then skips the call.
    pub fn is_cancelled(&self) -> bool {
        self.cell.as_ref().is_none_or(|c| c.slot.is_claimed()) || self.cancel_requested()
    }

    /// True if the scope the call was submitted in is cancelled.
    pub(crate) fn cancel_requested(&self) -> bool {
        self.cell
            .as_ref()
            .and_then(|c| c.cancel.as_ref())
            .is_some_and(crate::cancel::Parent::is_cancelled)
    }
}

/// What runs a callback once a promise is cancelled, without keeping the promise alive:
/// [`Completer::cancel_watch`].
pub(crate) struct CancelWatch(Box<dyn FnOnce(OnCancel) + Send>);

/// What a [`CancelWatch`] runs.
type OnCancel = Box<dyn FnOnce() + Send>;

impl CancelWatch {
    /// Runs `f` once the promise is cancelled ([`Promise::cancel`]; at once if it already
    /// is); never if it resolves otherwise or is gone.
    pub(crate) fn then(self, f: impl FnOnce() + Send + 'static) {
        (self.0)(Box::new(f));
    }
}

impl<T: Send + 'static, E: Send + 'static> Completer<T, E> {
    /// A watch on this promise's cancel (and on the scope it was submitted in, if any), to
    /// hand on with the call (a remote call sends its cancel to the worker running it).
    pub(crate) fn cancel_watch(&self) -> Option<CancelWatch> {
        let weak = DynArc::downgrade(self.cell.as_ref()?);
        Some(CancelWatch(Box::new(move |f| {
            let Some(cell) = weak.upgrade() else { return };
            // Shared by the ways it may run: the slot's callback, the scope's waker, and
            // here (the value was taken already: cancelled, then waited for).
            let f = std::sync::Arc::new(crate::sync::os::Mutex::new(Some(f)));
            // The scope's cancel wakes `scope`, which the slot's callback keeps alive until
            // the call is resolved.
            let scope = cell.cancel.as_ref().map(|parent| {
                let scope = crate::cancel::WakeCell::new();
                let wake = RunOnWake(parent.clone(), f.clone());
                scope.set(&std::task::Waker::from(std::sync::Arc::new(wake)));
                parent.register(&scope);
                scope
            });
            let (on, mine) = (weak.clone(), f.clone());
            let registered = cell.slot.on_done(Box::new(move |_| {
                drop(scope);
                if on.upgrade().is_some_and(|c| c.slot.is_cancelled()) {
                    run_once(&mine);
                }
            }));
            if !registered && cell.slot.is_cancelled() {
                run_once(&f);
            }
        })))
    }
}

/// Runs what a [`CancelWatch`] was given, the first time only.
fn run_once(f: &crate::sync::os::Mutex<Option<OnCancel>>) {
    let f = crate::sync::os::lock(f).take();
    if let Some(f) = f {
        f();
    }
}

/// A waker that runs a [`CancelWatch`]'s callback if its scope is cancelled. (A call's
/// method as the scope wakes it at its return too: calls it leaves running are not
/// cancelled by that.)
struct RunOnWake(
    crate::cancel::Parent,
    std::sync::Arc<crate::sync::os::Mutex<Option<OnCancel>>>,
);

impl std::task::Wake for RunOnWake {
    fn wake(self: std::sync::Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &std::sync::Arc<Self>) {
        if self.0.is_cancelled() {
            run_once(&self.1);
        }
    }
}

impl<T, E> Completer<T, E> {
    /// Runs `f` once the promise is resolved, by this completer or by a cancel.
    pub(crate) fn on_resolved(&self, f: impl FnOnce() + Send + 'static) {
        if let Some(cell) = &self.cell {
            cell.slot.on_done(Box::new(move |_| f()));
        }
    }
}

impl<T, E> Drop for Completer<T, E> {
    fn drop(&mut self) {
        // A call skipped because its scope was cancelled ends as cancelled.
        let error = if self.cancel_requested() {
            Error::Cancelled
        } else {
            Error::Stopped
        };
        if let Some(cell) = self.cell.take() {
            let error = Err(error);
            let how = crate::report::Outcome::of(&error);
            let done = cell.slot.complete(error);
            cell.report.done(if done {
                how
            } else {
                crate::report::Outcome::CANCELLED
            });
        }
    }
}

impl<T, E> std::future::Future for Promise<T, E> {
    type Output = Result<T, Error<E>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.slot().poll_take(cx.waker()) {
            Some(v) => Poll::Ready(v),
            None => Poll::Pending,
        }
    }
}

impl<T, E> Unpin for Promise<T, E> {}

impl<T, E> fmt::Debug for Promise<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Promise")
            .field("done", &self.is_done())
            .finish()
    }
}

impl<T, E> fmt::Debug for Completer<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Completer")
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}
