//! Injectable time, so every limit is testable without sleeping.
//!
//! - [`Clock`]: where limits read the time, and how long to really wait before looking again.
//! - [`SystemClock`]: the monotonic wall clock (the default).
//! - [`FakeClock`]: time that moves only when a test calls [`FakeClock::advance`].

use std::fmt;
use std::time::Duration;

use crate::sync::{Arc, AtomicU64, Ordering};

/// A source of monotonic time for limits.
///
/// `now` is the time elapsed since the clock's own origin; only differences matter. A clock
/// also says how long a waiter should really block before reading the time again
/// ([`Clock::real_wait`]): the full duration for a real clock, a short poll for a fake one
/// (whose time moves when a test advances it).
///
/// ```
/// use std::time::Duration;
/// use concurry::{Clock, FakeClock};
///
/// let clock = FakeClock::new();
/// clock.advance(Duration::from_secs(2));
/// assert_eq!(clock.now(), Duration::from_secs(2));
/// ```
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The time since this clock's origin. Never decreases.
    fn now(&self) -> Duration;

    /// [`now`](Clock::now) in nanoseconds (saturating), the unit limits count in. Override it
    /// when the clock can answer without building a `Duration`.
    fn now_nanos(&self) -> u64 {
        u64::try_from(self.now().as_nanos()).unwrap_or(u64::MAX)
    }

    /// How long to block on the wall clock when `needed` of this clock's time must pass.
    fn real_wait(&self, needed: Duration) -> Duration {
        needed
    }
}

/// The monotonic wall clock, counted from when the clock was made.
///
/// Read through `quanta` (the CPU's invariant time-stamp counter where the OS vouches for it,
/// else the OS monotonic clock), as governor does: a read costs a few nanoseconds instead of
/// a system call's twenty or more, which matters on the hot path of every limit.
///
/// ```
/// use concurry::{Clock, SystemClock};
///
/// let clock = SystemClock::new();
/// let a = clock.now();
/// assert!(clock.now() >= a);
/// ```
#[derive(Debug, Clone)]
pub struct SystemClock {
    clock: quanta::Clock,
    /// The raw counter at the origin.
    origin: u64,
}

impl SystemClock {
    /// A clock whose origin is now.
    pub fn new() -> Self {
        let clock = quanta::Clock::new();
        let origin = clock.raw();
        SystemClock { clock, origin }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock::new()
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        Duration::from_nanos(self.now_nanos())
    }

    #[inline]
    fn now_nanos(&self) -> u64 {
        self.clock.delta_as_nanos(self.origin, self.clock.raw())
    }
}

/// A clock for tests: it starts at zero and moves only by [`advance`](FakeClock::advance).
///
/// Clones share the same time, so a test keeps one clone and gives another to a
/// [`LimitSet`](crate::LimitSet). Waiters blocked on a fake clock re-read it every
/// millisecond of real time, so an `advance` from another thread releases them promptly.
///
/// ```
/// use std::time::Duration;
/// use concurry::{FakeClock, LimitSet, RateLimit};
///
/// let clock = FakeClock::new();
/// let set = LimitSet::builder()
///     .limit(RateLimit::per_second("req", 1))
///     .clock(clock.clone())
///     .build()
///     .unwrap();
/// let first = set.try_acquire(&[("req", 1)]).unwrap();
/// drop(first);
/// assert!(set.try_acquire(&[("req", 1)]).is_err()); // the second must wait a second
/// clock.advance(Duration::from_secs(1));
/// assert!(set.try_acquire(&[("req", 1)]).is_ok());
/// ```
#[derive(Debug, Clone, Default)]
pub struct FakeClock {
    nanos: Arc<AtomicU64>,
}

impl FakeClock {
    /// A fake clock at time zero.
    pub fn new() -> Self {
        FakeClock::default()
    }

    /// Moves the time forward by `d` (saturating at about 584 years).
    ///
    /// ```
    /// use std::time::Duration;
    /// use concurry::{Clock, FakeClock};
    /// let clock = FakeClock::new();
    /// let shared = clock.clone();
    /// clock.advance(Duration::from_millis(1500));
    /// assert_eq!(shared.now(), Duration::from_millis(1500));
    /// ```
    pub fn advance(&self, d: Duration) {
        let add = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let mut cur = self.nanos.load(Ordering::Acquire);
        loop {
            let next = cur.saturating_add(add);
            match self
                .nanos
                .compare_exchange(cur, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return,
                Err(now) => cur = now,
            }
        }
    }
}

impl Clock for FakeClock {
    fn now(&self) -> Duration {
        Duration::from_nanos(self.now_nanos())
    }

    fn now_nanos(&self) -> u64 {
        self.nanos.load(Ordering::Acquire)
    }

    fn real_wait(&self, needed: Duration) -> Duration {
        needed.min(Duration::from_millis(1))
    }
}

/// The clock as `u64` nanoseconds, the unit every algorithm counts in.
#[inline]
pub(crate) fn nanos(clock: &dyn Clock) -> u64 {
    clock.now_nanos()
}
