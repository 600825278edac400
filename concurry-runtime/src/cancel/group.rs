//! [`TaskGroup`] and [`scope`]: structured concurrency. A group's children (pool calls,
//! futures, blocking closures) are all waited for before it returns; the first failure
//! cancels the others (fail-fast), or `.settled()` lets every one finish.

use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll, Wake, Waker};

use futures_util::FutureExt;

use super::context::{cancelled_or, current_parent, in_token};
use super::scope::CancelScope;
use super::token::{Parent, Token, WakeCell};
use crate::error::{Error, panic_message};
use crate::future::{Completer, Promise};
use crate::sync::{AtomicU64, Condvar, Mutex, Ordering, WakerArc, lock};

/// How a [`TaskGroup`] reacts to a child's failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Policy {
    FailFast,
    Settled,
}

/// A task group (Trio's nursery, AnyIO's and toolcase's `TaskGroup`): run a body that
/// spawns children on a [`Scope`]; the group returns only once every child has finished.
///
/// Fail-fast (the default): the first child that fails cancels the group, so its other
/// children (and the body, and everything submitted inside) see the cancel; the group then
/// returns [`Error::ChildFailed`] naming it. [`settled`](TaskGroup::settled): every child
/// runs to its own end, and each outcome is in its [`ChildHandle`].
///
/// ```
/// use concurry::{Error, TaskGroup};
///
/// let (ok, bad) = TaskGroup::new().settled().run(|s| {
///     let ok = s.spawn_blocking(|| 1);
///     let bad = s.spawn_try_blocking(|| "x".parse::<u8>());
///     (ok, bad)
/// })?;
/// assert_eq!(ok.wait()?, 1);
/// assert!(matches!(bad.wait(), Err(Error::Method(_))));
/// # Ok::<(), concurry::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct TaskGroup {
    policy: Policy,
}

impl TaskGroup {
    /// A fail-fast group.
    pub fn new() -> Self {
        TaskGroup {
            policy: Policy::FailFast,
        }
    }

    /// This group, collecting every child's outcome instead of cancelling at the first
    /// failure.
    pub fn settled(self) -> Self {
        TaskGroup {
            policy: Policy::Settled,
        }
    }

    /// Runs the blocking `body` with the group's [`Scope`], then waits for every child.
    /// `Ok` with the body's output, or (fail-fast) [`Error::ChildFailed`] for the first
    /// child that failed. A panic in the body cancels the children, waits for them, and goes
    /// on unwinding.
    ///
    /// Waiting blocks this thread (inside a tokio runtime, as
    /// [`Promise::result`](crate::Promise::result) does); in async code use
    /// [`run_async`](TaskGroup::run_async).
    ///
    /// ```
    /// use concurry::{Error, TaskGroup};
    ///
    /// let r = TaskGroup::new().run(|s| {
    ///     s.spawn_try_blocking(|| Err::<(), _>("boom"));
    ///     // The sibling sees the group's cancel and stops.
    ///     s.spawn_try_blocking(|| -> Result<(), concurry::Cancelled> {
    ///         loop {
    ///             concurry::check_cancelled()?;
    ///             std::thread::yield_now();
    ///         }
    ///     });
    /// });
    /// assert!(matches!(r, Err(Error::ChildFailed { child: 0, .. })));
    /// ```
    pub fn run<R>(self, body: impl FnOnce(&Scope) -> R) -> Result<R, Error> {
        let scope = Scope::open(self.policy, true);
        let guard = CloseOnUnwind(&scope);
        let out = in_token(&scope.inner.token, || body(&scope));
        std::mem::forget(guard);
        scope.close_blocking();
        scope.outcome().map(|()| out)
    }

    /// Runs the async `body` with the group's [`Scope`], then waits (without blocking) for
    /// every child. A fail-fast cancel (or an outer scope's) drops the body at its next
    /// `.await`, unless it is inside [`shield_async`](crate::shield_async); the group
    /// then returns the first failure, or [`Error::Cancelled`].
    ///
    /// ```
    /// use std::time::Duration;
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), concurry::Error> {
    /// let sum = concurry::TaskGroup::new()
    ///     .run_async(|s| async move {
    ///         let a = s.spawn_future(async { 1 });
    ///         let b = s.spawn_future(async {
    ///             tokio::time::sleep(Duration::from_secs(1)).await;
    ///             2
    ///         });
    ///         Ok::<u32, concurry::Error>(a.await? + b.await?)
    ///     })
    ///     .await??;
    /// assert_eq!(sum, 3);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn run_async<R, Fut>(self, body: impl FnOnce(Scope) -> Fut) -> Result<R, Error>
    where
        Fut: Future<Output = R>,
    {
        let scope = Scope::open(self.policy, false);
        let cs = CancelScope::from_token(scope.inner.token.clone());
        let out = cs.run_async(body(scope.clone())).await;
        scope.close_async().await;
        scope.outcome()?;
        out.ok_or(Error::Cancelled)
    }
}

impl Default for TaskGroup {
    fn default() -> Self {
        TaskGroup::new()
    }
}

/// Runs a fail-fast [`TaskGroup`]: `concurry::scope(|s| ..)`.
///
/// ```
/// struct Sq;
/// #[concurry::worker]
/// impl Sq {
///     pub fn new() -> Self { Sq }
///     pub fn sq(&self, x: u64) -> u64 { x * x }
/// }
///
/// let pool = Sq::options().mode(concurry::Mode::Thread).max_workers(2).init()?;
/// let total = concurry::scope(|s| {
///     let calls: Vec<_> = (1..=3).map(|x| s.spawn(pool.sq(x))).collect();
///     let from_closure = s.spawn_blocking(|| 100);
///     calls.into_iter().map(|c| c.wait().unwrap()).sum::<u64>() + from_closure.wait().unwrap()
/// })?;
/// assert_eq!(total, 114);
/// pool.stop()?;
/// # Ok::<(), concurry::Error>(())
/// ```
pub fn scope<R>(body: impl FnOnce(&Scope) -> R) -> Result<R, Error> {
    TaskGroup::new().run(body)
}

/// Runs a fail-fast [`TaskGroup`] with an async body: `concurry::scope_async(|s| async move { .. })`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), concurry::Error> {
/// let n = concurry::scope_async(|s| async move { s.spawn_future(async { 3 }).await }).await??;
/// assert_eq!(n, 3);
/// # Ok(())
/// # }
/// ```
pub async fn scope_async<R, Fut>(body: impl FnOnce(Scope) -> Fut) -> Result<R, Error>
where
    Fut: Future<Output = R>,
{
    TaskGroup::new().run_async(body).await
}

/// Cancels and waits for the children if the body unwinds.
struct CloseOnUnwind<'a>(&'a Scope);

impl Drop for CloseOnUnwind<'_> {
    fn drop(&mut self) {
        self.0.inner.token.cancel();
        self.0.close_blocking();
    }
}

/// What a child has come to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChildState {
    /// Queued or running.
    Running,
    /// Finished with a value.
    Completed,
    /// Finished with an error (a method error, a panic, ...).
    Failed,
    /// Ended by a cancel.
    Cancelled,
}

const RUNNING: u64 = 0;
const COMPLETED: u64 = 1;
const FAILED: u64 = 2;
const CANCELLED: u64 = 3;

/// The spawning side of a [`TaskGroup`] (Trio's nursery). Cheap to clone; a child spawned
/// after its group ended is cancelled at once (nothing outlives the group).
#[derive(Clone)]
pub struct Scope {
    inner: WakerArc<Inner>,
}

struct Inner {
    token: Token,
    policy: Policy,
    /// Waited for by blocking the thread (`run`), not by `.await` (`run_async`).
    blocking: bool,
    state: Mutex<State>,
    /// Signalled when the last child finishes.
    done: Condvar,
}

struct State {
    spawned: usize,
    finished: usize,
    closed: bool,
    first_failure: Option<Error>,
    /// Async waiters for the last child.
    wakers: Vec<Waker>,
    /// Kept alive while the group runs: they hard-cancel children not submitted inside it.
    watchers: Vec<WakerArc<WakeCell>>,
}

impl Scope {
    fn open(policy: Policy, blocking: bool) -> Scope {
        Scope {
            inner: WakerArc::new(Inner {
                token: Token::with_parent(current_parent()),
                policy,
                blocking,
                state: Mutex::new(State {
                    spawned: 0,
                    finished: 0,
                    closed: false,
                    first_failure: None,
                    wakers: Vec::new(),
                    watchers: Vec::new(),
                }),
                done: Condvar::new(),
            }),
        }
    }

    /// Cancels the group: its children, its body and everything submitted inside see it.
    ///
    /// ```
    /// let r = concurry::scope(|s| {
    ///     s.cancel();
    ///     assert!(s.cancel_called() && concurry::is_cancelled());
    /// });
    /// assert!(r.is_ok()); // a cancel is not a failure
    /// ```
    pub fn cancel(&self) {
        self.inner.token.cancel();
    }

    /// True if the group itself was cancelled ([`cancel`](Scope::cancel), or a fail-fast).
    pub fn cancel_called(&self) -> bool {
        self.inner.token.cancel_called()
    }

    /// True if the group sees a cancel: its own or an outer scope's.
    pub fn is_cancelled(&self) -> bool {
        self.inner.token.is_cancelled()
    }

    /// Adds a pool call (or any promise) to the group.
    ///
    /// A call submitted inside the group (in its body or a child) inherits its cancel: the
    /// method sees it, and if it then returns an error the promise resolves with
    /// [`Error::Cancelled`] (a value it returns anyway stands). A promise made outside is cancelled with [`Promise::cancel`] instead, which
    /// resolves it at once. [`ChildHandle::cancel`] always uses `Promise::cancel`.
    ///
    /// ```
    /// let p = concurry::wrap_future(async { 2 });
    /// let h = concurry::scope(|s| s.spawn(p))?;
    /// assert_eq!(h.wait()?, 2);
    /// # Ok::<(), concurry::Error>(())
    /// ```
    pub fn spawn<T, E>(&self, promise: Promise<T, E>) -> ChildHandle<T, E>
    where
        T: Send + 'static,
        E: fmt::Display + Send + 'static,
    {
        let inherited = matches!(
            promise.cancel_parent(),
            Some(Parent::Token(t)) if t.is_below(&self.inner.token)
        );
        let state = WakerArc::new(AtomicU64::new(RUNNING));
        let Some(index) = self.enter() else {
            promise.cancel();
            return ChildHandle::new(promise, state, None);
        };
        if !inherited {
            let watcher = WakeCell::new();
            let weak = promise.weak_canceller();
            watcher.set(&Waker::from(WakerArc::new(OnWake(Box::new(move || {
                weak()
            })))));
            self.inner.token.register(&watcher);
            lock(&self.inner.state).watchers.push(watcher);
        }
        self.watch(&promise, index, &state);
        ChildHandle::new(promise, state, None)
    }

    /// Spawns `future` as a child (on the tokio runtime running here, else the library's;
    /// a blocking group on a current-thread runtime uses the library's, since it blocks
    /// that runtime's only thread while it waits),
    /// inside the group: a cancel drops it at its next `.await` (unless it is in
    /// [`shield_async`](crate::shield_async)) and its handle gives [`Error::Cancelled`].
    ///
    /// ```
    /// let h = concurry::scope(|s| s.spawn_future(async { "hi" }))?;
    /// assert_eq!(h.wait()?, "hi");
    /// # Ok::<(), concurry::Error>(())
    /// ```
    pub fn spawn_future<F>(&self, future: F) -> ChildHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.spawn_try_future(future.map(Ok::<_, std::convert::Infallible>))
    }

    /// Like [`spawn_future`](Scope::spawn_future) for a future returning `Result<T, E>`: an
    /// `Err` is the child's failure.
    ///
    /// ```
    /// let r = concurry::scope(|s| { s.spawn_try_future(async { "x".parse::<u8>() }); });
    /// assert!(matches!(r, Err(concurry::Error::ChildFailed { child: 0, .. })));
    /// ```
    pub fn spawn_try_future<F, T, E>(&self, future: F) -> ChildHandle<T, E>
    where
        F: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: fmt::Display + Send + 'static,
    {
        self.start_child(|completer, token| {
            let cs = CancelScope::from_token(token);
            let run = async move {
                let out = AssertUnwindSafe(cs.run_async(future)).catch_unwind().await;
                let out = match out {
                    Ok(Some(r)) => r.map_err(Error::Method),
                    Ok(None) => Err(Error::Cancelled),
                    Err(payload) => Err(Error::Panicked {
                        message: panic_message(&*payload),
                    }),
                };
                completer.complete(cancelled_or(cs.is_cancelled(), out));
            };
            // A blocking group waiting on a current-thread runtime's only thread would starve a
            // child spawned there: it goes to the library runtime instead.
            match tokio::runtime::Handle::try_current() {
                Ok(h)
                    if !self.inner.blocking
                        || h.runtime_flavor() != tokio::runtime::RuntimeFlavor::CurrentThread =>
                {
                    drop(h.spawn(run))
                }
                _ => drop(crate::runtime::runtime().spawn(run)),
            }
        })
    }

    /// Runs the blocking closure `f` as a child on a blocking thread, inside the group: it
    /// sees a cancel at its checkpoints. The thread is from the blocking pool of the
    /// multi-thread tokio runtime the caller is inside, else of the library's runtime; if
    /// that runtime shuts down before the closure starts, its handle fails with
    /// [`Error::Stopped`].
    ///
    /// ```
    /// let h = concurry::scope(|s| s.spawn_blocking(|| 6 * 7))?;
    /// assert_eq!(h.wait()?, 42);
    /// # Ok::<(), concurry::Error>(())
    /// ```
    pub fn spawn_blocking<F, T>(&self, f: F) -> ChildHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.spawn_try_blocking(move || Ok::<_, std::convert::Infallible>(f()))
    }

    /// Like [`spawn_blocking`](Scope::spawn_blocking) for a closure returning `Result<T, E>`:
    /// an `Err` is the child's failure. A closure that returns an error after its cancel
    /// (such as `check_cancelled()?`'s) resolves its handle with [`Error::Cancelled`], which
    /// is not a failure.
    ///
    /// ```
    /// let r = concurry::scope(|s| { s.spawn_try_blocking(|| Err::<(), _>("no")); });
    /// assert!(r.unwrap_err().to_string().contains("no"));
    /// ```
    pub fn spawn_try_blocking<F, T, E>(&self, f: F) -> ChildHandle<T, E>
    where
        F: FnOnce() -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: fmt::Display + Send + 'static,
    {
        self.start_child(|completer, tok| {
            drop(crate::runtime::for_helpers(None).spawn_blocking(move || {
                let out = match catch_unwind(AssertUnwindSafe(|| in_token(&tok, f))) {
                    Ok(r) => r.map_err(Error::Method),
                    Err(payload) => Err(Error::Panicked {
                        message: panic_message(&*payload),
                    }),
                };
                completer.complete(cancelled_or(tok.is_cancelled(), out));
            }));
        })
    }

    /// Adds a child to the group: `start` gets its completer and its token (a child of the
    /// group's) and starts it. Once the group has ended, the child is cancelled at once and
    /// `start` is not called.
    fn start_child<T, E>(&self, start: impl FnOnce(Completer<T, E>, Token)) -> ChildHandle<T, E>
    where
        T: Send + 'static,
        E: fmt::Display + Send + 'static,
    {
        let (promise, completer) = Promise::pending();
        let state = WakerArc::new(AtomicU64::new(RUNNING));
        let token = self.inner.token.child();
        let Some(index) = self.enter() else {
            token.cancel();
            let _ = completer.complete(Err(Error::Cancelled));
            return ChildHandle::new(promise, state, Some(token));
        };
        self.watch(&promise, index, &state);
        start(completer, token.clone());
        ChildHandle::new(promise, state, Some(token))
    }

    /// Counts a new child; `None` once the group has ended.
    fn enter(&self) -> Option<usize> {
        let mut st = lock(&self.inner.state);
        if st.closed {
            return None;
        }
        st.spawned += 1;
        Some(st.spawned - 1)
    }

    /// Records the child's outcome when it ends: its state, the group's first failure (and
    /// the fail-fast cancel), the count the group waits on.
    fn watch<T, E>(&self, promise: &Promise<T, E>, index: usize, state: &WakerArc<AtomicU64>)
    where
        T: Send + 'static,
        E: fmt::Display + Send + 'static,
    {
        let inner = self.inner.clone();
        let state = state.clone();
        promise.on_done(move |r| {
            let s = match r {
                Ok(_) => COMPLETED,
                Err(Error::Cancelled) => CANCELLED,
                Err(_) => FAILED,
            };
            state.store(s, Ordering::Release);
            let mut st = lock(&inner.state);
            if let Err(e) = r
                && s == FAILED
                && st.first_failure.is_none()
            {
                st.first_failure = Some(Error::ChildFailed {
                    child: index,
                    message: e.to_string(),
                });
                if inner.policy == Policy::FailFast {
                    drop(st);
                    inner.token.cancel();
                    st = lock(&inner.state);
                }
            }
            st.finished += 1;
            if st.finished == st.spawned {
                let wakers = std::mem::take(&mut st.wakers);
                drop(st);
                inner.done.notify_all();
                wakers.into_iter().for_each(Waker::wake);
            }
        });
    }

    /// Closes the group once every child has finished (blocking).
    fn close_blocking(&self) {
        let wait = || {
            let mut st = lock(&self.inner.state);
            while st.finished < st.spawned {
                st = self
                    .inner
                    .done
                    .wait(st)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
            }
            st.closed = true;
            st.watchers.clear();
        };
        if crate::runtime::in_async_context() {
            crate::runtime::blocking(wait);
        } else {
            wait();
        }
    }

    /// Closes the group once every child has finished (async).
    async fn close_async(&self) {
        std::future::poll_fn(|cx| {
            let mut st = lock(&self.inner.state);
            if st.finished < st.spawned {
                st.wakers.push(cx.waker().clone());
                return Poll::Pending;
            }
            st.closed = true;
            st.watchers.clear();
            Poll::Ready(())
        })
        .await;
    }

    fn outcome(&self) -> Result<(), Error> {
        match lock(&self.inner.state).first_failure.take() {
            Some(e) if self.inner.policy == Policy::FailFast => Err(e),
            _ => Ok(()),
        }
    }
}

impl fmt::Debug for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = lock(&self.inner.state);
        f.debug_struct("Scope")
            .field("policy", &self.inner.policy)
            .field("spawned", &st.spawned)
            .field("finished", &st.finished)
            .field("cancelled", &self.inner.token.is_cancelled())
            .finish()
    }
}

/// A waker that runs a closure: how a token's cancel reaches a promise made outside.
struct OnWake(Box<dyn Fn() + Send + Sync>);

impl Wake for OnWake {
    fn wake(self: WakerArc<Self>) {
        (self.0)();
    }

    fn wake_by_ref(self: &WakerArc<Self>) {
        (self.0)();
    }
}

/// A child of a [`TaskGroup`]: its [`state`](ChildHandle::state), its outcome
/// ([`wait`](ChildHandle::wait) or `.await`), and [`cancel`](ChildHandle::cancel). The
/// outcome stays available after the group ended.
///
/// ```
/// use concurry::ChildState;
///
/// let h = concurry::scope(|s| s.spawn_blocking(|| 1))?;
/// assert_eq!(h.state(), ChildState::Completed);
/// assert!(h.is_done());
/// # Ok::<(), concurry::Error>(())
/// ```
pub struct ChildHandle<T, E = std::convert::Infallible> {
    promise: Promise<T, E>,
    state: WakerArc<AtomicU64>,
    /// A future's or closure's own cancel flag (a pool call has its promise).
    token: Option<Token>,
}

impl<T, E> ChildHandle<T, E> {
    fn new(promise: Promise<T, E>, state: WakerArc<AtomicU64>, token: Option<Token>) -> Self {
        ChildHandle {
            promise,
            state,
            token,
        }
    }

    /// What the child has come to.
    pub fn state(&self) -> ChildState {
        match self.state.load(Ordering::Acquire) {
            COMPLETED => ChildState::Completed,
            FAILED => ChildState::Failed,
            CANCELLED => ChildState::Cancelled,
            _ if self.promise.is_done() => ChildState::Cancelled,
            _ => ChildState::Running,
        }
    }

    /// True once the child has finished (always, once its group has returned).
    pub fn is_done(&self) -> bool {
        // The state is set before the group counts the child as finished, so this holds
        // as soon as the group returns (the promise's value lands a moment later).
        self.state() != ChildState::Running
    }

    /// Cancels this child only. A future is dropped at its next `.await` and a closure sees
    /// it at its checkpoints (their handles resolve once they end); a pool call is cancelled
    /// with [`Promise::cancel`] (its handle resolves at once, the method sees it at its next
    /// checkpoint). A cancelled child is not a failure: the group goes on.
    ///
    /// ```
    /// let r = concurry::scope(|s| {
    ///     let h = s.spawn_future(std::future::pending::<()>());
    ///     h.cancel();
    ///     h
    /// })?;
    /// assert!(matches!(r.wait(), Err(concurry::Error::Cancelled)));
    /// # Ok::<(), concurry::Error>(())
    /// ```
    pub fn cancel(&self) {
        match &self.token {
            Some(t) => {
                t.cancel();
            }
            None => {
                self.promise.cancel();
            }
        }
    }

    /// Blocks until the child has finished and returns its outcome (as
    /// [`Promise::result`]).
    pub fn wait(self) -> Result<T, Error<E>> {
        self.promise.result()
    }

    /// The child's promise.
    pub fn into_promise(self) -> Promise<T, E> {
        self.promise
    }
}

impl<T, E> Future for ChildHandle<T, E> {
    type Output = Result<T, Error<E>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.promise).poll(cx)
    }
}

impl<T, E> fmt::Debug for ChildHandle<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildHandle")
            .field("state", &self.state())
            .finish()
    }
}
