//! What code running here is cancelled by: the call whose method runs on this thread or task,
//! or the scope whose body (or child) runs here. Read by [`check_cancelled`], [`cancelled`],
//! [`is_cancelled`]; captured by calls submitted here, so they inherit the scope.

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::token::{Parent, Token, WakeCell};
use crate::error::Error;
use crate::future::{Completer, PromiseCell, Tail};
use crate::sync::{DynArc, WakerArc};

/// The error a cancelled checkpoint returns: [`check_cancelled`] found the running call or
/// scope cancelled.
///
/// It converts into [`concurry::Error`](crate::Error) (as [`Error::Cancelled`]), so
/// `check_cancelled()?` works in a method returning `Result<T, concurry::Error>` or
/// `Result<T, Cancelled>`; for your own error type add `impl From<Cancelled> for MyError`.
/// A call that returns an error after its cancel (from a checkpoint or not) resolves with
/// [`Error::Cancelled`], whatever its error type; a value it returns anyway stands (Trio's
/// rule: work that completed is not thrown away).
///
/// ```
/// #[derive(Debug)]
/// enum MyError { Cancelled, Bad }
/// impl From<concurry::Cancelled> for MyError {
///     fn from(_: concurry::Cancelled) -> Self { MyError::Cancelled }
/// }
///
/// fn work() -> Result<u32, MyError> {
///     concurry::check_cancelled()?; // not cancelled here: Ok
///     Ok(1)
/// }
/// assert_eq!(work().unwrap(), 1);
/// let e: concurry::Error = concurry::Cancelled.into();
/// assert!(matches!(e, concurry::Error::Cancelled));
/// # let _ = MyError::Bad;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cancelled;

impl fmt::Display for Cancelled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("cancelled")
    }
}

impl std::error::Error for Cancelled {}

impl<E> From<Cancelled> for Error<E> {
    fn from(_: Cancelled) -> Self {
        Error::Cancelled
    }
}

/// A pool call's cancellation as its method sees it: its promise cancelled, or the scope it
/// was submitted in cancelled.
pub(crate) trait CallView: Send + Sync {
    fn is_cancelled(&self) -> bool;
    /// Makes `cell` woken at the call's cancel.
    fn register(&self, cell: &WakerArc<WakeCell>);
}

impl<T, E, J> CallView for PromiseCell<Result<T, Error<E>>, J>
where
    T: Send,
    E: Send,
    J: Tail + ?Sized,
{
    fn is_cancelled(&self) -> bool {
        // `Promise::cancel`, not the call's own result: calls a method submits and leaves
        // running are not cancelled by its return.
        self.slot.is_cancelled() || self.cancel.as_ref().is_some_and(Parent::is_cancelled)
    }

    fn register(&self, cell: &WakerArc<WakeCell>) {
        let weak = WakerArc::downgrade(cell);
        self.slot.on_done(Box::new(move |_| {
            if let Some(c) = weak.upgrade() {
                c.wake();
            }
        }));
        if let Some(p) = &self.cancel {
            p.register(cell);
        }
    }
}

/// What the code running on this thread is inside.
enum Current {
    Outside,
    /// A scope's body, or a child of a group.
    Token(Token),
    /// A pool call's method.
    Call(DynArc<dyn CallView>),
    /// A [`shield`]: nothing outside reaches in.
    Shielded,
}

thread_local! {
    static CURRENT: RefCell<Current> = const { RefCell::new(Current::Outside) };
    /// On a worker thread: the pool's own token, cancelled when `stop()` runs out of time.
    static WORKER: RefCell<Option<Token>> = const { RefCell::new(None) };
}

/// Marks this thread as a worker of the pool whose `stop()` cancels `token`.
pub(crate) fn set_worker_token(token: Token) {
    WORKER.with(|w| *w.borrow_mut() = Some(token));
}

/// Runs `f` (a worker's calls on a thread it borrows, such as tokio's blocking pool) with
/// `token` as the worker token, restoring the thread's own afterwards.
pub(crate) fn with_worker_token<R>(token: &Token, f: impl FnOnce() -> R) -> R {
    struct Back(Option<Token>);
    impl Drop for Back {
        fn drop(&mut self) {
            let prev = self.0.take();
            WORKER.with(|w| *w.borrow_mut() = prev);
        }
    }
    let _back = Back(WORKER.with(|w| w.borrow_mut().replace(token.clone())));
    f()
}

fn worker_cancelled() -> bool {
    WORKER.with(|w| w.borrow().as_ref().is_some_and(Token::is_cancelled))
}

/// What a scope opened here hangs from (`None` outside any scope or call, or in a shield).
pub(crate) fn current_parent() -> Option<Parent> {
    CURRENT.with(|c| match &*c.borrow() {
        Current::Outside | Current::Shielded => None,
        Current::Token(t) => Some(Parent::Token(t.clone())),
        Current::Call(v) => Some(Parent::Call(DynArc::downgrade(v))),
    })
}

/// True if the call or scope running here is cancelled (false outside any, and in a
/// [`shield`]). A checkpoint that does not fail: see [`check_cancelled`].
///
/// ```
/// assert!(!concurry::is_cancelled());
/// concurry::move_on_after(std::time::Duration::ZERO, |cs| {
///     while !concurry::is_cancelled() { std::thread::yield_now(); }
///     assert!(cs.cancel_called());
/// });
/// ```
pub fn is_cancelled() -> bool {
    CURRENT.with(|c| match &*c.borrow() {
        Current::Outside | Current::Shielded => false,
        Current::Token(t) => t.is_cancelled(),
        Current::Call(v) => v.is_cancelled() || worker_cancelled(),
    })
}

/// A checkpoint: `Err(Cancelled)` if the call or scope running here is cancelled, else
/// `Ok(())`. Call it in loops of long methods, so `Promise::cancel`, a group's fail-fast, a
/// scope's deadline or `stop()` past its `stop_timeout` end them early.
///
/// Outside any call or scope (and inside a [`shield`]) it always returns `Ok(())`, so the
/// method also works when called directly, as plain Rust. See [`Cancelled`] for using `?`
/// with your own error type.
///
/// ```
/// use std::time::Duration;
///
/// struct Crunch;
/// #[concurry::worker]
/// impl Crunch {
///     pub fn new() -> Self { Crunch }
///     pub fn forever(&self) -> Result<u64, concurry::Error> {
///         let mut n = 0u64;
///         loop {
///             concurry::check_cancelled()?;
///             n += 1;
///             if n == u64::MAX {
///                 return Ok(n);
///             }
///             std::thread::yield_now();
///         }
///     }
/// }
///
/// let pool = Crunch::options().mode(concurry::Mode::Thread).init()?;
/// let p = pool.forever();
/// std::thread::sleep(Duration::from_millis(5));
/// p.cancel(); // resolves the promise now; the method stops at its next checkpoint
/// pool.stop()?; // returns: the method saw the cancel
/// # Ok::<(), concurry::Error>(())
/// ```
pub fn check_cancelled() -> Result<(), Cancelled> {
    if is_cancelled() {
        Err(Cancelled)
    } else {
        Ok(())
    }
}

/// A future that resolves once the call or scope running here is cancelled. Outside any call
/// or scope, and inside a [`shield`], it never resolves.
///
/// The source is taken when `cancelled()` is called, so the future may be polled elsewhere
/// (a spawned task, a `select!`).
///
/// ```
/// use std::time::Duration;
///
/// struct Waiter;
/// #[concurry::worker]
/// impl Waiter {
///     pub fn new() -> Self { Waiter }
///     pub async fn wait(&self) -> &'static str {
///         tokio::select! {
///             _ = concurry::cancelled() => "cancelled",
///             _ = tokio::time::sleep(Duration::from_secs(60)) => "slept",
///         }
///     }
/// }
///
/// let pool = Waiter::options().mode(concurry::Mode::Async).init()?;
/// let out = concurry::move_on_after(Duration::from_millis(10), |_| pool.wait().result());
/// assert!(out.is_none()); // the deadline passed; the method returned at once
/// pool.stop()?;
/// # Ok::<(), concurry::Error>(())
/// ```
pub fn cancelled() -> CancelledFuture {
    let (source, worker) = CURRENT.with(|c| match &*c.borrow() {
        Current::Outside | Current::Shielded => (None, None),
        Current::Token(t) => (Some(Parent::Token(t.clone())), None),
        Current::Call(v) => (
            Some(Parent::Call(DynArc::downgrade(v))),
            WORKER.with(|w| w.borrow().clone()),
        ),
    });
    CancelledFuture {
        source,
        worker,
        cell: None,
    }
}

/// The future [`cancelled`] returns.
#[must_use = "a future does nothing unless awaited"]
pub struct CancelledFuture {
    source: Option<Parent>,
    worker: Option<Token>,
    cell: Option<WakerArc<WakeCell>>,
}

impl CancelledFuture {
    fn fired(&self) -> bool {
        self.source.as_ref().is_some_and(Parent::is_cancelled)
            || self.worker.as_ref().is_some_and(Token::is_cancelled)
    }
}

impl Future for CancelledFuture {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.fired() {
            return Poll::Ready(());
        }
        let Some(source) = self.source.clone() else {
            return Poll::Pending;
        };
        match &self.cell {
            Some(cell) => cell.set(cx.waker()),
            None => {
                let cell = WakeCell::new();
                cell.set(cx.waker());
                source.register(&cell);
                if let Some(w) = &self.worker {
                    w.register(&cell);
                }
                self.cell = Some(cell);
            }
        }
        // Registered before this check, so a cancel in between is not missed.
        if self.fired() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl fmt::Debug for CancelledFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancelledFuture")
            .field("cancelled", &self.fired())
            .finish()
    }
}

/// Puts `now` in place for as long as it lives; restores the previous one when dropped.
struct Restore(Option<Current>);

impl Drop for Restore {
    fn drop(&mut self) {
        if let Some(prev) = self.0.take() {
            CURRENT.with(|c| *c.borrow_mut() = prev);
        }
    }
}

fn enter(now: Current) -> Restore {
    Restore(Some(
        CURRENT.with(|c| std::mem::replace(&mut *c.borrow_mut(), now)),
    ))
}

/// Runs `f` inside the scope (or group child) of `token`.
pub(crate) fn in_token<R>(token: &Token, f: impl FnOnce() -> R) -> R {
    let _restore = enter(Current::Token(token.clone()));
    f()
}

/// Runs `f` as the method of the call `view`.
pub(crate) fn in_call<R>(view: DynArc<dyn CallView>, f: impl FnOnce() -> R) -> R {
    let _restore = enter(Current::Call(view));
    f()
}

/// A future polled inside the scope of `token` (each poll sets it around itself, so it
/// follows the task across threads).
pub(crate) struct InToken<F> {
    pub(crate) token: Token,
    pub(crate) fut: F,
}

impl<F: Future + Unpin> Future for InToken<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        let _restore = enter(Current::Token(this.token.clone()));
        Pin::new(&mut this.fut).poll(cx)
    }
}

/// A method's future polled as the call `view`.
pub(crate) struct InCall<F> {
    pub(crate) view: DynArc<dyn CallView>,
    pub(crate) fut: F,
}

impl<F: Future + Unpin> Future for InCall<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        let _restore = enter(Current::Call(this.view.clone()));
        Pin::new(&mut this.fut).poll(cx)
    }
}

/// Runs `f` shielded: no cancel from outside reaches the code in it ([`check_cancelled`]
/// returns `Ok`, calls submitted in it do not inherit the scope), for cleanup that must
/// finish. A scope opened inside still has its own deadline.
///
/// ```
/// use std::time::Duration;
///
/// concurry::move_on_after(Duration::ZERO, |cs| {
///     while !cs.cancel_called() { std::thread::yield_now(); }
///     assert!(concurry::is_cancelled());
///     concurry::shield(|| assert!(concurry::check_cancelled().is_ok()));
/// });
/// ```
pub fn shield<R>(f: impl FnOnce() -> R) -> R {
    let outer = current_token();
    if let Some(t) = &outer {
        t.enter_shield();
    }
    let _leave = LeaveShield(outer);
    let _restore = enter(Current::Shielded);
    f()
}

/// The token of the scope running here, if any (a call's own cancel has none: it never
/// drops a body, so shields need not be counted there).
fn current_token() -> Option<Token> {
    CURRENT.with(|c| match &*c.borrow() {
        Current::Token(t) => Some(t.clone()),
        _ => None,
    })
}

struct LeaveShield(Option<Token>);

impl Drop for LeaveShield {
    fn drop(&mut self) {
        if let Some(t) = self.0.take() {
            t.leave_shield();
        }
    }
}

/// The async [`shield`]: `fut` runs shielded, and an async scope cancelled meanwhile (a
/// deadline, a group's fail-fast) waits for it to finish before it drops its body.
///
/// ```
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let cs = concurry::CancelScope::with_timeout(Duration::from_secs(1));
/// let cleaned = cs.run_async(async {
///     concurry::shield_async(async {
///         tokio::time::sleep(Duration::from_secs(5)).await; // past the deadline
///         "cleaned up"
///     })
///     .await
/// })
/// .await;
/// assert_eq!(cleaned, Some("cleaned up"));
/// assert!(cs.cancel_called());
/// # }
/// ```
pub fn shield_async<F: Future>(fut: F) -> Shield<F> {
    Shield {
        fut: Box::pin(fut),
        outer: None,
        entered: false,
    }
}

/// The future [`shield_async`] returns.
#[must_use = "a future does nothing unless awaited"]
pub struct Shield<F> {
    fut: Pin<Box<F>>,
    /// The scope it shields from, counted from the first poll until it ends.
    outer: Option<LeaveShield>,
    entered: bool,
}

impl<F: Future> Future for Shield<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        if !this.entered {
            this.entered = true;
            let outer = current_token();
            if let Some(t) = &outer {
                t.enter_shield();
            }
            this.outer = Some(LeaveShield(outer));
        }
        let poll = {
            let _restore = enter(Current::Shielded);
            this.fut.as_mut().poll(cx)
        };
        if poll.is_ready() {
            this.outer = None;
        }
        poll
    }
}

impl<F> fmt::Debug for Shield<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shield").finish_non_exhaustive()
    }
}

/// Resolves a call's promise with what its method returned. A call cancelled meanwhile (by
/// its scope, or `stop()` past its `stop_timeout`) that returned an error resolves with
/// [`Error::Cancelled`]; a value it returned anyway stands. Whatever is not handed out (the
/// error replaced, or any output of a promise `Promise::cancel` already resolved) is
/// reported, never dropped silently.
pub(crate) fn finish<T, E>(c: Completer<T, E>, out: Result<T, Error<E>>) {
    let out = cancelled_or(c.cancel_requested() || worker_cancelled(), out);
    if let Err(out) = c.try_complete(out) {
        report::<T, E>(&out);
    }
}

/// `out`, with an error replaced by [`Error::Cancelled`] (and reported) if `cancelled`.
pub(crate) fn cancelled_or<T, E>(cancelled: bool, out: Result<T, Error<E>>) -> Result<T, Error<E>> {
    match out {
        Err(e) if cancelled && !matches!(e, Error::Cancelled) => {
            report::<T, E>(&Err(e));
            Err(Error::Cancelled)
        }
        other => other,
    }
}

pub(crate) fn report<T, E>(out: &Result<T, Error<E>>) {
    tracing::info!(
        target: "concurry::cancel",
        output = std::any::type_name::<T>(),
        returned = if out.is_ok() { "Ok" } else { "Err" },
        "a cancelled call returned after its cancel; its promise resolved with \
         Error::Cancelled and what it returned was dropped"
    );
}
