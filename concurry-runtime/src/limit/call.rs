//! [`CallLimit`]: a rate limit on calls, charged one unit per worker method call.

use std::time::Duration;

use super::rate::{CALL_COUNT, RateLimit};

/// Builds the [`RateLimit`] keyed `call_count` that a pool charges one unit for every method
/// call, before the method runs.
///
/// The constructors return a plain [`RateLimit`] (marked as a call limit), so a call limit
/// and other rate limits fit in one array: `[CallLimit::per_minute(500),
/// RateLimit::per_minute("tokens", 50_000)]`. Outside a pool, a standalone
/// [`LimitSet`](crate::LimitSet) adds one `call_count` unit to every request.
///
/// ```
/// use concurry::{CallLimit, RateAlgorithm};
///
/// let calls = CallLimit::per_second(20).algorithm(RateAlgorithm::Gcra);
/// assert_eq!(calls.key(), "call_count");
/// assert!(calls.is_call_limit());
/// assert_eq!(calls.capacity(), 20);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct CallLimit {
    _private: (),
}

impl CallLimit {
    /// The key of every call limit.
    pub const KEY: &'static str = CALL_COUNT;

    /// At most `capacity` calls per `window`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use concurry::CallLimit;
    /// assert_eq!(CallLimit::new(Duration::from_secs(10), 5).window(), Duration::from_secs(10));
    /// ```
    #[allow(clippy::new_ret_no_self)]
    pub fn new(window: Duration, capacity: u64) -> RateLimit {
        RateLimit {
            per_call: true,
            ..RateLimit::new(CALL_COUNT, window, capacity)
        }
    }

    /// At most `capacity` calls per second.
    ///
    /// ```
    /// use std::time::Duration;
    /// use concurry::CallLimit;
    /// assert_eq!(CallLimit::per_minute(500).window(), Duration::from_secs(60));
    /// assert_eq!(CallLimit::per_day(10_000).key(), CallLimit::KEY);
    /// ```
    pub fn per_second(capacity: u64) -> RateLimit {
        CallLimit::new(Duration::from_secs(1), capacity)
    }

    /// At most `capacity` calls per minute.
    pub fn per_minute(capacity: u64) -> RateLimit {
        CallLimit::new(Duration::from_secs(60), capacity)
    }

    /// At most `capacity` calls per hour.
    pub fn per_hour(capacity: u64) -> RateLimit {
        CallLimit::new(Duration::from_secs(3600), capacity)
    }

    /// At most `capacity` calls per day.
    pub fn per_day(capacity: u64) -> RateLimit {
        CallLimit::new(Duration::from_secs(86_400), capacity)
    }
}
