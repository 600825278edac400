//! [`limits()`]: the limit set of the pool whose method is running on this thread or task.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::hosted::HostedLimits;
use super::set::LimitSet;

/// What the method running on this thread sees.
enum Current {
    /// No worker method: the empty set.
    Outside,
    /// A method of a pool with limits: its set.
    Set(LimitSet),
    /// A method of a pool built without limits (no set to clone per call).
    NoLimits,
    /// A method of a served worker (in a worker child): its pool's set, hosted by the
    /// pool's owner.
    Hosted(HostedLimits),
}

thread_local! {
    static CURRENT: RefCell<Current> = const { RefCell::new(Current::Outside) };
    /// What `limits()` gives outside a worker, made once per thread.
    static EMPTY: LimitSet = LimitSet::empty();
    /// What `limits()` gives inside a pool built without limits, made once per thread.
    static NONE: LimitSet = LimitSet::pool_without_limits();
}

/// The [`LimitSet`] of the pool whose worker method is running here; outside a worker
/// method, an empty set (which admits everything, so a method calling this also works when
/// called directly, as plain Rust).
///
/// Inside a pool built without `.limits(..)`, the set is empty too but knows no key: a
/// request naming one fails with [`LimitError::UnknownKey`](crate::LimitError::UnknownKey),
/// saying the pool has no limits and how to add them (a typo such as `"tokenz"` is never
/// taken for a limit).
///
/// The call already holds its call and resource units, so a request here names only rate
/// limits (an empty request on a set with rate limits is refused with
/// [`LimitError::MissingAmount`](crate::LimitError::MissingAmount)). It works in every
/// mode, in sync methods and across `.await`s of async ones.
///
/// In a worker child (`Mode::Process`), this is the pool's set as the parent hosts it: each
/// acquisition, [`update`](crate::Acquisition::update) and release is a message to the
/// parent (a round trip, a release is not waited for), so a child's usage shows in the
/// parent's [`stats`](LimitSet::stats) and every worker shares one budget. A pool without
/// limits gives the same key-refusing empty set in the child. If the parent is gone,
/// requests fail with
/// [`LimitError::Timeout`](crate::LimitError::Timeout) instead of waiting.
///
/// ```
/// use concurry::RateLimit;
///
/// struct Api;
///
/// #[concurry::worker]
/// impl Api {
///     pub fn new() -> Self { Api }
///     pub fn call(&self, tokens: u64) -> Result<u64, concurry::LimitError> {
///         let mut acq = concurry::limits().acquire(&[("tokens", tokens)])?;
///         acq.update(&[("tokens", tokens / 2)])?;   // the reply said we used half
///         Ok(tokens / 2)
///     }
/// }
///
/// let api = Api::options().limits([RateLimit::per_minute("tokens", 1000)]).init()?;
/// assert_eq!(api.call(100).result()?, 50);
/// assert!(concurry::limits().is_empty()); // not inside a worker here
/// api.stop()?;
///
/// let unlimited = Api::options().init()?;
/// let e = unlimited.call(100).result().unwrap_err();
/// assert!(e.to_string().contains("the pool was built without them"), "{e}");
/// unlimited.stop()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn limits() -> LimitSet {
    let hosted = CURRENT.with(|c| match &*c.borrow() {
        Current::Set(set) => Err(set.clone()),
        Current::NoLimits => Err(NONE.with(LimitSet::clone)),
        Current::Outside => Err(EMPTY.with(LimitSet::clone)),
        Current::Hosted(h) => Ok(h.clone()),
    });
    match hosted {
        Err(set) => set,
        // A pool without limits: a local set that refuses every key (it answers as the
        // host would, without asking it each time).
        Ok(h) if h.meta().empty => NONE.with(LimitSet::clone),
        Ok(h) => LimitSet::hosted_by(h),
    }
}

/// Restores the previous current set when dropped (also on unwind).
struct Restore(Option<Current>);

impl Drop for Restore {
    fn drop(&mut self) {
        if let Some(prev) = self.0.take() {
            CURRENT.with(|c| *c.borrow_mut() = prev);
        }
    }
}

fn replace(now: Current) -> Restore {
    Restore(Some(
        CURRENT.with(|c| std::mem::replace(&mut *c.borrow_mut(), now)),
    ))
}

fn enter(set: &LimitSet) -> Restore {
    replace(Current::Set(set.clone()))
}

/// Runs `f` with `set` as the current limit set.
pub(crate) fn with_limits<R>(set: &LimitSet, f: impl FnOnce() -> R) -> R {
    let _restore = enter(set);
    f()
}

/// Runs `f` (a method of a pool without limits) with the set that refuses every key as
/// the current one.
#[inline]
pub(crate) fn without_limits<R>(f: impl FnOnce() -> R) -> R {
    let _restore = replace(Current::NoLimits);
    f()
}

/// Runs `f` (a call of a served worker) with `hosted`, its pool's set as the host serves
/// it, as the current limit set: each served worker passes its own, so one process may
/// serve the workers of many pools.
pub(crate) fn with_hosted<R>(hosted: &HostedLimits, f: impl FnOnce() -> R) -> R {
    let _restore = replace(Current::Hosted(hosted.clone()));
    f()
}

/// A future polled with `set` as the current limit set (each poll sets it around itself, so
/// it follows the task across threads).
pub(crate) struct WithLimits<F> {
    pub(crate) set: LimitSet,
    pub(crate) fut: F,
}

impl<F: Future + Unpin> Future for WithLimits<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        let _restore = enter(&this.set);
        Pin::new(&mut this.fut).poll(cx)
    }
}
