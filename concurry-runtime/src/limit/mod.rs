//! Limits: rate limits, call limits and resource limits, acquired atomically.
//!
//! - [`RateLimit`]: at most `capacity` units of a key per `window`, by a [`RateAlgorithm`].
//! - [`CallLimit`]: the rate limit keyed `call_count`, charged one unit per method call.
//! - [`ResourceLimit`]: at most `capacity` units held at once (a semaphore).
//! - [`Limit`]: any of them, as a set holds it.
//! - [`LimitSet`]: several limits acquired all-or-nothing, FIFO, blocking or async.
//! - [`Acquisition`]: the guard of what a set granted; `update` corrects the charge (and
//!   fails, changing nothing, on a key the acquisition does not hold).
//! - [`LimitPool`]: several sets (one per API key, say) behind one `acquire`.
//! - [`LimitStats`]: capacity, used, available and waiters of one limit.
//! - [`LimitError`]: why an acquisition failed.
//! - [`limits()`]: the set of the pool whose method is running.
//!
//! A request names each rate limit it charges with an amount; call and resource limits are
//! taken one unit each without being named. A rate limit a request does not name is not
//! charged, so an empty request (`&[]`) on a set with rate limits is refused with
//! [`LimitError::MissingAmount`] instead of charging none of them (name a rate limit with
//! `0` to take only the automatic units).
//!
//! Limits given to a pool with `options().limits(..)` are shared by every worker of that
//! pool. Each call takes one unit of every call and resource limit on its worker just before
//! the method runs and holds the resource units until it returns; a call cancelled or a pool
//! stopped while the call waits for its units resolves without consuming any. A sync method
//! in thread mode waits on its worker's thread (as in the Python original), and in sync mode
//! on the caller's thread (calls run at submit time there); async methods wait without
//! blocking a thread, and sync methods in async mode wait on tokio's blocking pool. In
//! process mode the parent hosts the set: it takes each call's units before sending the call,
//! and [`limits()`] in a child asks it over the child's channel.
//!
//! ```
//! use std::time::Duration;
//! use concurry::{CallLimit, FakeClock, LimitError, LimitSet, RateLimit};
//!
//! let clock = FakeClock::new();
//! let set = LimitSet::builder()
//!     .limit(CallLimit::per_second(2))
//!     .limit(RateLimit::per_second("tokens", 100))
//!     .clock(clock.clone())
//!     .build()
//!     .unwrap();
//! let a = set.try_acquire(&[("tokens", 60)]).unwrap();
//! assert!(set.try_acquire(&[("tokens", 60)]).is_err()); // only 40 tokens left
//! let b = set.try_acquire(&[("tokens", 40)]).unwrap();
//! let no_call = set.try_acquire(&[("tokens", 0)]);       // and no call left
//! assert!(matches!(no_call, Err(LimitError::WouldBlock { .. })));
//! let e = set.try_acquire(&[]).unwrap_err();              // names no amount of tokens
//! assert!(matches!(e, LimitError::MissingAmount { .. }));
//! clock.advance(Duration::from_secs(1));
//! assert!(set.try_acquire(&[("tokens", 100)]).is_ok());
//! # drop((a, b));
//! ```

mod acquisition;
mod call;
pub(crate) mod context;
mod error;
pub(crate) mod hosted;
mod pool;
mod rate;
mod resource;
mod set;

#[cfg(all(test, concurry_loom))]
mod tests {
    mod loom_set;
}

pub use acquisition::Acquisition;
pub use call::CallLimit;
pub use context::limits;
pub use error::LimitError;
pub use pool::{LimitPool, LimitPoolStrategy, PoolAcquisition};
pub use rate::{RateAlgorithm, RateLimit};
pub use resource::ResourceLimit;
pub use set::{Limit, LimitKind, LimitSet, LimitSetBuilder, LimitStats};

pub(crate) use set::WaitError;

/// What `options().limits(..)` accepts: a ready [`LimitSet`] (shared with whoever else holds
/// it), or limits for a new set of this pool: an array or `Vec` of one kind, or a tuple
/// mixing kinds.
///
/// ```
/// use concurry::{CallLimit, IntoLimitSet, LimitSet, RateLimit, ResourceLimit};
///
/// let shared = LimitSet::new([CallLimit::per_second(10)]).unwrap();
/// assert!(shared.clone().into_limit_set().unwrap().same_as(&shared));
/// let fresh = [CallLimit::per_second(10), RateLimit::per_second("tokens", 500)];
/// assert_eq!(fresh.into_limit_set().unwrap().keys().count(), 2);
/// let mixed = (CallLimit::per_second(10), ResourceLimit::new("db", 5));
/// assert_eq!(mixed.into_limit_set().unwrap().keys().collect::<Vec<_>>(), ["call_count", "db"]);
/// ```
pub trait IntoLimitSet {
    /// Builds (or shares) the set.
    ///
    /// # Errors
    ///
    /// As [`LimitSetBuilder::build`].
    fn into_limit_set(self) -> Result<LimitSet, LimitError>;
}

impl IntoLimitSet for LimitSet {
    fn into_limit_set(self) -> Result<LimitSet, LimitError> {
        Ok(self)
    }
}

impl IntoLimitSet for &LimitSet {
    fn into_limit_set(self) -> Result<LimitSet, LimitError> {
        Ok(self.clone())
    }
}

impl<L: Into<Limit>, const N: usize> IntoLimitSet for [L; N] {
    fn into_limit_set(self) -> Result<LimitSet, LimitError> {
        LimitSet::new(self)
    }
}

impl<L: Into<Limit>> IntoLimitSet for Vec<L> {
    fn into_limit_set(self) -> Result<LimitSet, LimitError> {
        LimitSet::new(self)
    }
}

/// Tuples mix kinds of limits, which an array cannot:
/// `(CallLimit::per_minute(500), ResourceLimit::new("db", 5))`.
macro_rules! tuple_into_limit_set {
    ($($name:ident),+) => {
        impl<$($name: Into<Limit>),+> IntoLimitSet for ($($name,)+) {
            #[allow(non_snake_case)]
            fn into_limit_set(self) -> Result<LimitSet, LimitError> {
                let ($($name,)+) = self;
                LimitSet::builder()$(.limit($name))+.build()
            }
        }
    };
}

tuple_into_limit_set!(A);
tuple_into_limit_set!(A, B);
tuple_into_limit_set!(A, B, C);
tuple_into_limit_set!(A, B, C, D);
tuple_into_limit_set!(A, B, C, D, E);
tuple_into_limit_set!(A, B, C, D, E, F);
