//! [`CancelScope`]: a cancel flag with an optional deadline that everything started inside
//! sees, and the shorthands [`move_on_after`], [`fail_after`], [`timeout`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use super::context::{InToken, current_parent, in_token};
use super::token::{Token, WakeCell};
use crate::error::Error;
use crate::sync::WakerArc;

/// A cancel scope (Trio's `CancelScope`, AnyIO's `CancelScope`): code run inside it
/// ([`run`](CancelScope::run), [`run_async`](CancelScope::run_async)), the calls submitted
/// there on any pool in any mode, and the scopes and groups opened there, see its cancel at
/// their checkpoints ([`check_cancelled`](crate::check_cancelled),
/// [`cancelled`](crate::cancelled)), until it ends. The cancel is level-triggered: once
/// cancelled, every later checkpoint inside fails too.
///
/// It is cancelled by [`cancel`](CancelScope::cancel), by its timeout (counted from when
/// it starts running), or by the scope it was made in (a new scope hangs from the scope or
/// call running where it is made; [`shielded`](CancelScope::shielded) cuts that link).
/// Nested scopes: the earliest deadline wins. [`cancel_called`](CancelScope::cancel_called)
/// tells whether this scope itself was cancelled (by `cancel` or its deadline).
///
/// A blocking body is cooperative: it runs to its end, and sees the cancel at checkpoints.
/// An async body ([`run_async`](CancelScope::run_async)) is dropped at the cancel, unless
/// it is inside [`shield_async`](crate::shield_async), which the scope waits for first.
///
/// ```
/// use std::time::Duration;
/// use concurry::CancelScope;
///
/// let cs = CancelScope::with_timeout(Duration::from_millis(20));
/// let laps = cs.run(|cs| {
///     let mut laps = 0;
///     while concurry::check_cancelled().is_ok() {
///         laps += 1;
///         std::thread::sleep(Duration::from_millis(1));
///     }
///     assert!(cs.cancel_called());
///     laps
/// });
/// assert!(laps > 0);
/// ```
#[derive(Clone)]
pub struct CancelScope {
    token: Token,
    timeout: Option<Duration>,
}

impl CancelScope {
    /// A scope with no deadline, below the scope or call running here.
    ///
    /// ```
    /// let cs = concurry::CancelScope::new();
    /// cs.cancel();
    /// assert!(cs.run(|_| concurry::is_cancelled()));
    /// ```
    pub fn new() -> Self {
        CancelScope {
            token: Token::with_parent(current_parent()),
            timeout: None,
        }
    }

    /// A scope cancelled `timeout` after it starts running (a zero timeout: at once).
    ///
    /// ```
    /// use std::time::Duration;
    /// let cs = concurry::CancelScope::with_timeout(Duration::ZERO);
    /// assert!(cs.run(|cs| cs.cancel_called()));
    /// ```
    pub fn with_timeout(timeout: Duration) -> Self {
        CancelScope {
            timeout: Some(timeout),
            ..CancelScope::new()
        }
    }

    /// This scope, no longer reached by the cancel of the scope or call it was made in (its
    /// own timeout and [`cancel`](CancelScope::cancel) still work): [`shield`](crate::shield)
    /// as a scope.
    ///
    /// ```
    /// let outer = concurry::CancelScope::new();
    /// outer.cancel();
    /// outer.run(|_| {
    ///     let inner = concurry::CancelScope::new().shielded();
    ///     assert!(!inner.run(|_| concurry::is_cancelled()));
    /// });
    /// ```
    pub fn shielded(self) -> Self {
        CancelScope {
            token: Token::root(),
            timeout: self.timeout,
        }
    }

    /// Cancels the scope: everything inside sees it at its next checkpoint. Works from any
    /// thread, before, during or after the scope runs.
    ///
    /// ```
    /// let cs = concurry::CancelScope::new();
    /// assert!(!cs.cancel_called());
    /// cs.cancel();
    /// assert!(cs.cancel_called());
    /// ```
    pub fn cancel(&self) {
        self.token.cancel();
    }

    /// True if this scope was cancelled (by [`cancel`](CancelScope::cancel) or its
    /// timeout); a cancel from an outer scope does not count.
    pub fn cancel_called(&self) -> bool {
        self.token.cancel_called()
    }

    /// True if code inside sees a cancel: this scope's or an outer one's.
    ///
    /// ```
    /// let outer = concurry::CancelScope::new();
    /// let inner = outer.run(|_| concurry::CancelScope::new());
    /// outer.cancel();
    /// assert!(inner.is_cancelled() && !inner.cancel_called());
    /// ```
    pub fn is_cancelled(&self) -> bool {
        self.token.is_cancelled()
    }

    /// A scope over an existing token (a group's, or a child's).
    pub(crate) fn from_token(token: Token) -> Self {
        CancelScope {
            token,
            timeout: None,
        }
    }

    /// The timeout the scope was made with.
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// Runs the blocking `body` inside the scope and returns what it returns (it runs to its
    /// end; a cancel shows at its checkpoints). The timeout, if any, starts now.
    ///
    /// ```
    /// let cs = concurry::CancelScope::new();
    /// assert_eq!(cs.run(|_| 7), 7);
    /// ```
    pub fn run<R>(&self, body: impl FnOnce(&CancelScope) -> R) -> R {
        let _timer = self.timeout.map(|d| Timer::start(&self.token, d));
        in_token(&self.token, || body(self))
    }

    /// Runs the async `body` inside the scope: `Some(output)` if it finished, `None` if a
    /// cancel (this scope's or an outer one's) dropped it first. A body inside
    /// [`shield_async`](crate::shield_async) is polled on until the shield ends. The timeout
    /// starts at the first poll, on tokio's clock (so paused time works).
    ///
    /// ```
    /// use std::time::Duration;
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let cs = concurry::CancelScope::with_timeout(Duration::from_secs(1));
    /// let out = cs.run_async(tokio::time::sleep(Duration::from_secs(5))).await;
    /// assert!(out.is_none() && cs.cancel_called());
    /// # }
    /// ```
    pub fn run_async<F: Future>(&self, body: F) -> RunAsync<F> {
        RunAsync {
            token: self.token.clone(),
            timeout: self.timeout,
            sleep: None,
            body: Some(InToken {
                token: self.token.clone(),
                fut: Box::pin(body),
            }),
            cell: None,
        }
    }
}

impl Default for CancelScope {
    fn default() -> Self {
        CancelScope::new()
    }
}

impl fmt::Debug for CancelScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancelScope")
            .field("timeout", &self.timeout)
            .field("cancel_called", &self.cancel_called())
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

/// Cancels a token after a delay, on the library runtime's timer; stopped when dropped.
struct Timer(Option<tokio::task::AbortHandle>);

impl Timer {
    fn start(token: &Token, after: Duration) -> Timer {
        if after.is_zero() {
            token.cancel();
            return Timer(None);
        }
        let token = token.clone();
        let task = crate::runtime::runtime().spawn(async move {
            tokio::time::sleep(after).await;
            token.cancel();
        });
        Timer(Some(task.abort_handle()))
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        if let Some(t) = self.0.take() {
            t.abort();
        }
    }
}

/// The future [`CancelScope::run_async`] returns.
#[must_use = "a future does nothing unless awaited"]
pub struct RunAsync<F> {
    token: Token,
    timeout: Option<Duration>,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    body: Option<InToken<Pin<Box<F>>>>,
    cell: Option<WakerArc<WakeCell>>,
}

impl<F: Future> Future for RunAsync<F> {
    type Output = Option<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        if let Some(d) = this.timeout.take() {
            if d.is_zero() {
                this.token.cancel();
            } else {
                this.sleep = Some(Box::pin(new_sleep(d)));
            }
        }
        if let Some(s) = &mut this.sleep
            && s.as_mut().poll(cx).is_ready()
        {
            this.sleep = None;
            this.token.cancel();
        }
        let Some(body) = &mut this.body else {
            panic!("a concurry CancelScope future was polled after it finished");
        };
        if let Poll::Ready(out) = Pin::new(body).poll(cx) {
            this.body = None;
            return Poll::Ready(Some(out));
        }
        if this.token.is_cancelled() && this.token.shields() == 0 {
            this.body = None;
            return Poll::Ready(None);
        }
        match &this.cell {
            Some(c) => c.set(cx.waker()),
            None => {
                let c = WakeCell::new();
                c.set(cx.waker());
                this.token.register(&c);
                this.cell = Some(c);
            }
        }
        // A cancel between the check above and the registration woke nobody: look again.
        if this.token.is_cancelled() && this.token.shields() == 0 {
            this.body = None;
            return Poll::Ready(None);
        }
        Poll::Pending
    }
}

/// A tokio sleep on the runtime polling us, else on the library's (whose driver then runs
/// its timer).
fn new_sleep(d: Duration) -> tokio::time::Sleep {
    if tokio::runtime::Handle::try_current().is_ok() {
        tokio::time::sleep(d)
    } else {
        let _enter = crate::runtime::runtime().enter();
        tokio::time::sleep(d)
    }
}

impl<F> fmt::Debug for RunAsync<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunAsync")
            .field("cancelled", &self.token.is_cancelled())
            .finish_non_exhaustive()
    }
}

/// Runs the blocking `body` in a scope cancelled after `timeout`: `Some(output)`, or `None`
/// if the timeout passed (or [`CancelScope::cancel`] was called) before the body ended
/// (whose output is then dropped; [`CancelScope::run`] keeps it).
///
/// The body runs to its end; calls it submits see the cancel, and those that then fail
/// resolve with [`Error::Cancelled`](crate::Error::Cancelled).
///
/// ```
/// use std::time::Duration;
///
/// let out = concurry::move_on_after(Duration::from_millis(10), |_| {
///     while concurry::check_cancelled().is_ok() {
///         std::thread::sleep(Duration::from_millis(1));
///     }
/// });
/// assert!(out.is_none());
/// assert_eq!(concurry::move_on_after(Duration::from_secs(60), |_| 3), Some(3));
/// ```
pub fn move_on_after<R>(timeout: Duration, body: impl FnOnce(&CancelScope) -> R) -> Option<R> {
    let cs = CancelScope::with_timeout(timeout);
    let out = cs.run(body);
    (!cs.cancel_called()).then_some(out)
}

/// Like [`move_on_after`] for an async body, which is dropped at the timeout (unless in
/// [`shield_async`](crate::shield_async)): `None` if the scope was cancelled before the body
/// ended.
///
/// ```
/// use std::time::Duration;
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let out = concurry::move_on_after_async(Duration::from_secs(1), async {
///     tokio::time::sleep(Duration::from_secs(3600)).await;
/// })
/// .await;
/// assert!(out.is_none());
/// # }
/// ```
pub async fn move_on_after_async<F: Future>(timeout: Duration, body: F) -> Option<F::Output> {
    let cs = CancelScope::with_timeout(timeout);
    let out = cs.run_async(body).await;
    out.filter(|_| !cs.cancel_called())
}

/// Runs the blocking `body` in a scope cancelled after `timeout`, and fails with
/// [`Error::Timeout`] if the timeout passed before the body ended (Trio's `fail_after`).
///
/// ```
/// use std::time::Duration;
/// use concurry::Error;
///
/// let r = concurry::fail_after(Duration::ZERO, |_| concurry::check_cancelled());
/// assert!(matches!(r, Err(Error::Timeout)));
/// assert_eq!(concurry::fail_after(Duration::from_secs(60), |_| 1).unwrap(), 1);
/// ```
pub fn fail_after<R>(timeout: Duration, body: impl FnOnce(&CancelScope) -> R) -> Result<R, Error> {
    let cs = CancelScope::with_timeout(timeout);
    let out = cs.run(body);
    if cs.cancel_called() {
        Err(Error::Timeout)
    } else {
        Ok(out)
    }
}

/// Like [`fail_after`] for an async body, which is dropped at the timeout (unless in
/// [`shield_async`](crate::shield_async)).
///
/// ```
/// use std::time::Duration;
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let r = concurry::fail_after_async(Duration::from_secs(1), std::future::pending::<()>()).await;
/// assert!(matches!(r, Err(concurry::Error::Timeout)));
/// # }
/// ```
pub async fn fail_after_async<F: Future>(timeout: Duration, body: F) -> Result<F::Output, Error> {
    let cs = CancelScope::with_timeout(timeout);
    match cs.run_async(body).await {
        Some(out) if !cs.cancel_called() => Ok(out),
        _ => Err(Error::Timeout),
    }
}

/// [`fail_after`] by the name of tokio's `timeout` (and toolcase's `CancelScope(timeout=..)`):
/// unlike `tokio::time::timeout`, calls the body submits on pools see the cancel too.
///
/// ```
/// use std::time::Duration;
/// assert_eq!(concurry::timeout(Duration::from_secs(60), |_| "done").unwrap(), "done");
/// ```
pub fn timeout<R>(timeout: Duration, body: impl FnOnce(&CancelScope) -> R) -> Result<R, Error> {
    fail_after(timeout, body)
}

/// [`fail_after_async`] by the name of tokio's `timeout`.
///
/// ```
/// use std::time::Duration;
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// assert_eq!(concurry::timeout_async(Duration::from_secs(1), async { 5 }).await.unwrap(), 5);
/// # }
/// ```
pub async fn timeout_async<F: Future>(timeout: Duration, body: F) -> Result<F::Output, Error> {
    fail_after_async(timeout, body).await
}
