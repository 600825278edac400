//! [`RateLimit`], [`RateAlgorithm`], and the five algorithms' state.
//!
//! Every algorithm counts time in `u64` nanoseconds from the set's [`Clock`](crate::Clock) and
//! keeps exact integer arithmetic (scaled by `capacity` where a rate is fractional), so the
//! property tests can check the bounds exactly.

use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::error::ConfigError;

/// The key of [`CallLimit`](crate::CallLimit)s.
pub(crate) const CALL_COUNT: &str = "call_count";

/// How a [`RateLimit`] decides whether a request fits.
///
/// All five allow at most `capacity` units per `window` in the long run and differ in how
/// they treat bursts and window edges:
///
/// - `SlidingWindow` (default): a log of admissions; at most `capacity` units in **any**
///   interval of length `window`. Exact up to 4096 entries per window; beyond that, charges
///   less than `window / 4096` apart share the later timestamp (memory stays bounded, units
///   expire at most `window / 4096` late, never early).
/// - `FixedWindow`: a counter reset at every multiple of `window`; at most `capacity` per
///   aligned window (so up to twice that across a boundary).
/// - `TokenBucket`: `capacity` tokens refilled continuously at `capacity / window`; bursts up
///   to `capacity`, at most `capacity + rate * t` in any interval `t`.
/// - `LeakyBucket`: a queue of at most `capacity` units drained one unit every
///   `window / capacity` (whole units only).
/// - `Gcra`: the generic cell rate algorithm (a theoretical arrival time), with burst
///   tolerance `capacity`; the same bound as `TokenBucket` from a single timestamp.
///
/// An [`update`](crate::Acquisition::update) above what was acquired is charged on top.
/// The window algorithms count it all, and it expires after one window; the bucket
/// algorithms (`TokenBucket`, `LeakyBucket`, `Gcra`) count at most one window of such debt
/// beyond a full bucket. So even an overcharge far above the capacity blocks a key for
/// about one window (plus a unit's refill), never for as many windows as it is large.
///
/// ```
/// use concurry::RateAlgorithm;
/// assert_eq!(RateAlgorithm::default(), RateAlgorithm::SlidingWindow);
/// assert_eq!("gcra".parse::<RateAlgorithm>().unwrap(), RateAlgorithm::Gcra);
/// assert_eq!("token-bucket".parse::<RateAlgorithm>().unwrap(), RateAlgorithm::TokenBucket);
/// ```
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[non_exhaustive]
pub enum RateAlgorithm {
    /// Continuous refill at `capacity / window`, bursts up to `capacity`.
    TokenBucket,
    /// A bounded queue drained at a fixed rate.
    LeakyBucket,
    /// An exact log of admissions over the last `window`.
    #[default]
    SlidingWindow,
    /// A counter per aligned window.
    FixedWindow,
    /// Generic cell rate algorithm.
    Gcra,
}

impl RateAlgorithm {
    /// The canonical name (`"token_bucket"`, `"leaky_bucket"`, `"sliding_window"`,
    /// `"fixed_window"`, `"gcra"`).
    ///
    /// ```
    /// use concurry::RateAlgorithm;
    /// assert_eq!(RateAlgorithm::FixedWindow.as_str(), "fixed_window");
    /// assert_eq!(RateAlgorithm::Gcra.to_string(), "gcra");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            RateAlgorithm::TokenBucket => "token_bucket",
            RateAlgorithm::LeakyBucket => "leaky_bucket",
            RateAlgorithm::SlidingWindow => "sliding_window",
            RateAlgorithm::FixedWindow => "fixed_window",
            RateAlgorithm::Gcra => "gcra",
        }
    }
}

impl fmt::Display for RateAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RateAlgorithm {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s
            .trim()
            .to_ascii_lowercase()
            .replace(['-', ' '], "_")
            .as_str()
        {
            "token_bucket" | "tokenbucket" | "token" => Ok(RateAlgorithm::TokenBucket),
            "leaky_bucket" | "leakybucket" | "leaky" => Ok(RateAlgorithm::LeakyBucket),
            "sliding_window" | "slidingwindow" | "sliding" => Ok(RateAlgorithm::SlidingWindow),
            "fixed_window" | "fixedwindow" | "fixed" => Ok(RateAlgorithm::FixedWindow),
            "gcra" => Ok(RateAlgorithm::Gcra),
            _ => Err(ConfigError::new(
                "algorithm",
                format!("{s:?}"),
                "expected one of \"token_bucket\", \"leaky_bucket\", \"sliding_window\", \
                 \"fixed_window\", \"gcra\"",
            )),
        }
    }
}

/// At most `capacity` units of `key` per `window`, enforced by `algorithm`.
///
/// Rate limits are charged only when a request names their key (a
/// [`CallLimit`](crate::CallLimit) is the exception: it is charged one unit per call). The
/// charge can be corrected afterwards with
/// [`Acquisition::update`](crate::Acquisition::update).
///
/// ```
/// use std::time::Duration;
/// use concurry::{RateAlgorithm, RateLimit};
///
/// let tokens = RateLimit::per_minute("tokens", 50_000).algorithm(RateAlgorithm::TokenBucket);
/// assert_eq!(tokens.key(), "tokens");
/// assert_eq!(tokens.window(), Duration::from_secs(60));
/// assert_eq!(tokens.capacity(), 50_000);
/// let same = RateLimit::new("tokens", Duration::from_secs(60), 50_000);
/// assert_eq!(same.get_algorithm(), RateAlgorithm::SlidingWindow);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimit {
    pub(crate) key: String,
    pub(crate) window: Duration,
    pub(crate) capacity: u64,
    pub(crate) algorithm: RateAlgorithm,
    /// True for a [`CallLimit`](crate::CallLimit): charged automatically for every call.
    pub(crate) per_call: bool,
}

impl RateLimit {
    /// At most `capacity` units of `key` per `window` (sliding window by default).
    ///
    /// The values are checked when the limit joins a [`LimitSet`](crate::LimitSet): a zero
    /// window or capacity is refused there with a message saying so.
    pub fn new(key: impl Into<String>, window: Duration, capacity: u64) -> Self {
        RateLimit {
            key: key.into(),
            window,
            capacity,
            algorithm: RateAlgorithm::default(),
            per_call: false,
        }
    }

    /// At most `capacity` units of `key` per second.
    ///
    /// ```
    /// use std::time::Duration;
    /// use concurry::RateLimit;
    /// assert_eq!(RateLimit::per_second("req", 10).window(), Duration::from_secs(1));
    /// assert_eq!(RateLimit::per_minute("req", 10).window(), Duration::from_secs(60));
    /// assert_eq!(RateLimit::per_hour("req", 10).window(), Duration::from_secs(3600));
    /// assert_eq!(RateLimit::per_day("req", 10).window(), Duration::from_secs(86_400));
    /// ```
    pub fn per_second(key: impl Into<String>, capacity: u64) -> Self {
        RateLimit::new(key, Duration::from_secs(1), capacity)
    }

    /// At most `capacity` units of `key` per minute.
    pub fn per_minute(key: impl Into<String>, capacity: u64) -> Self {
        RateLimit::new(key, Duration::from_secs(60), capacity)
    }

    /// At most `capacity` units of `key` per hour.
    pub fn per_hour(key: impl Into<String>, capacity: u64) -> Self {
        RateLimit::new(key, Duration::from_secs(3600), capacity)
    }

    /// At most `capacity` units of `key` per day.
    pub fn per_day(key: impl Into<String>, capacity: u64) -> Self {
        RateLimit::new(key, Duration::from_secs(86_400), capacity)
    }

    /// Uses `algorithm` instead of the default sliding window.
    ///
    /// ```
    /// use concurry::{RateAlgorithm, RateLimit};
    /// let l = RateLimit::per_second("req", 10).algorithm(RateAlgorithm::LeakyBucket);
    /// assert_eq!(l.get_algorithm(), RateAlgorithm::LeakyBucket);
    /// assert!(!l.is_call_limit());
    /// ```
    #[must_use]
    pub fn algorithm(mut self, algorithm: RateAlgorithm) -> Self {
        self.algorithm = algorithm;
        self
    }

    /// The key requests name.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The window.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// Units allowed per window.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// The algorithm.
    pub fn get_algorithm(&self) -> RateAlgorithm {
        self.algorithm
    }

    /// True for a [`CallLimit`](crate::CallLimit).
    pub fn is_call_limit(&self) -> bool {
        self.per_call
    }
}

/// How many windows of debt the bucket algorithms (`TokenBucket`, `LeakyBucket`, `Gcra`)
/// count at most beyond a full bucket: an `update` far above the capacity blocks the key for
/// about `DEBT_WINDOWS` window (plus one unit's refill) instead of for as many windows as the
/// overcharge is large. The window algorithms need no cap: their charges expire after one
/// window whatever their size.
pub(crate) const DEBT_WINDOWS: u64 = 1;

/// Entries a sliding-window log keeps exactly; past this, charges closer together than
/// `window / MAX_LOG` share an entry (so a log holds at most about `2 * MAX_LOG` entries).
const MAX_LOG: usize = 4096;

/// What one algorithm remembers. All times are clock nanoseconds.
#[derive(Debug, Clone)]
pub(crate) struct RateState {
    window: u64,
    capacity: u64,
    algo: Algo,
}

#[derive(Debug, Clone)]
enum Algo {
    /// `level` in units of token x window-nanos (so refill is `elapsed * capacity`, exact);
    /// negative after an `update` charged more than was available.
    Token { level: i128, last: u64 },
    /// `queued` whole units; `progress` is leak progress in nanos x capacity not yet turned
    /// into a whole unit.
    Leaky {
        queued: u64,
        progress: u128,
        last: u64,
    },
    /// Admissions within the last window, oldest first, merged by timestamp.
    Sliding {
        log: VecDeque<(u64, u64)>,
        total: u64,
    },
    /// Units admitted in the aligned window starting at `start`.
    Fixed { start: u64, count: u64 },
    /// Theoretical arrival time, scaled by `capacity` (nanos x capacity).
    Gcra { tat: i128 },
}

impl RateState {
    pub(crate) fn new(limit: &RateLimit) -> Self {
        let window = u64::try_from(limit.window.as_nanos())
            .unwrap_or(u64::MAX)
            .max(1);
        let capacity = limit.capacity.max(1);
        let algo = match limit.algorithm {
            RateAlgorithm::TokenBucket => Algo::Token {
                level: i128::from(capacity) * i128::from(window),
                last: 0,
            },
            RateAlgorithm::LeakyBucket => Algo::Leaky {
                queued: 0,
                progress: 0,
                last: 0,
            },
            RateAlgorithm::SlidingWindow => Algo::Sliding {
                log: VecDeque::new(),
                total: 0,
            },
            RateAlgorithm::FixedWindow => Algo::Fixed { start: 0, count: 0 },
            RateAlgorithm::Gcra => Algo::Gcra { tat: 0 },
        };
        RateState {
            window,
            capacity,
            algo,
        }
    }

    /// Brings the state up to `now` (refill, leak, expire, roll over).
    #[inline]
    fn advance(&mut self, now: u64) {
        let (w, c) = (self.window, self.capacity);
        match &mut self.algo {
            Algo::Token { level, last } => {
                if now > *last {
                    let full = i128::from(c) * i128::from(w);
                    let refill = i128::from(now - *last) * i128::from(c);
                    *level = level.saturating_add(refill).min(full);
                    *last = now;
                }
            }
            Algo::Leaky {
                queued,
                progress,
                last,
            } => {
                if now > *last {
                    if *queued == 0 {
                        *progress = 0;
                    } else {
                        *progress += u128::from(now - *last) * u128::from(c);
                        let whole = *progress / u128::from(w);
                        let leaked = u64::try_from(whole).unwrap_or(u64::MAX).min(*queued);
                        *queued -= leaked;
                        *progress -= u128::from(leaked) * u128::from(w);
                        if *queued == 0 {
                            *progress = 0;
                        }
                    }
                    *last = now;
                }
            }
            Algo::Sliding { log, total } => {
                while let Some(&(t, n)) = log.front() {
                    if t.saturating_add(w) <= now {
                        log.pop_front();
                        *total -= n;
                    } else {
                        break;
                    }
                }
            }
            Algo::Fixed { start, count } => {
                let aligned = now - now % w;
                if aligned > *start {
                    *start = aligned;
                    *count = 0;
                }
            }
            Algo::Gcra { .. } => {}
        }
    }

    /// `None` if `n` units fit at `now`; else how many nanos until they might.
    /// `n` must not exceed the capacity.
    pub(crate) fn wait_for(&mut self, now: u64, n: u64) -> Option<u64> {
        self.advance(now);
        self.wait_at(now, n)
    }

    /// Charges `n` units if they fit at `now` (the single-limit fast path: one `advance`);
    /// else how many nanos until they might.
    #[inline]
    pub(crate) fn try_charge(&mut self, now: u64, n: u64) -> Option<u64> {
        self.advance(now);
        let wait = self.wait_at(now, n);
        if wait.is_none() && n > 0 {
            self.charge_at(now, n);
        }
        wait
    }

    /// `wait_for` on a state already advanced to `now`.
    #[inline]
    fn wait_at(&self, now: u64, n: u64) -> Option<u64> {
        let (w, c) = (self.window, self.capacity);
        let wait: u128 = match &self.algo {
            Algo::Token { level, .. } => {
                let need = i128::from(n) * i128::from(w);
                if *level >= need {
                    return None;
                }
                ceil_div_i(need - *level, i128::from(c))
            }
            Algo::Leaky {
                queued, progress, ..
            } => {
                if queued.saturating_add(n) <= c {
                    return None;
                }
                let units = u128::from(queued + n - c);
                let need = units * u128::from(w);
                ceil_div(need.saturating_sub(*progress), u128::from(c)).max(1)
            }
            Algo::Sliding { log, total } => {
                if total.saturating_add(n) <= c {
                    return None;
                }
                let mut excess = total + n - c;
                let mut at = now;
                for &(t, k) in log {
                    at = t.saturating_add(w);
                    if k >= excess {
                        break;
                    }
                    excess -= k;
                }
                u128::from(at - now)
            }
            Algo::Fixed { start, count } => {
                if count.saturating_add(n) <= c {
                    return None;
                }
                u128::from(start.saturating_add(w) - now)
            }
            Algo::Gcra { tat } => {
                let now_s = i128::from(now) * i128::from(c);
                let limit = i128::from(w) * i128::from(c);
                let next = (*tat).max(now_s) + i128::from(n) * i128::from(w);
                if next - now_s <= limit {
                    return None;
                }
                ceil_div_i(next - limit - now_s, i128::from(c))
            }
        };
        Some(u64::try_from(wait).unwrap_or(u64::MAX).max(1))
    }

    /// Charges `n` units at `now` (whether or not they fit: `update` may charge extra), and
    /// returns how many the limit counts: all `n`, except where the bucket algorithms cap
    /// the debt (see [`DEBT_WINDOWS`]).
    pub(crate) fn charge(&mut self, now: u64, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        self.advance(now);
        self.charge_at(now, n)
    }

    /// `charge` on a state already advanced to `now`. An admitted request always fits, so
    /// the cap binds only on an `update` above what fits.
    #[inline]
    fn charge_at(&mut self, now: u64, n: u64) -> u64 {
        let (w, c) = (self.window, self.capacity);
        match &mut self.algo {
            Algo::Token { level, .. } => {
                let floor = -(i128::from(DEBT_WINDOWS) * i128::from(c) * i128::from(w));
                let next = *level - i128::from(n) * i128::from(w);
                if next >= floor {
                    *level = next;
                    return n;
                }
                // Whole units, so a later refund of them is exact: the level ends less
                // than one unit below the floor.
                let room = ceil_div_i(*level - floor, i128::from(w));
                let taken = u64::try_from(room).unwrap_or(n).min(n);
                *level -= i128::from(taken) * i128::from(w);
                return taken;
            }
            Algo::Leaky { queued, .. } => {
                let most = c.saturating_mul(1 + DEBT_WINDOWS);
                let taken = n.min(most.saturating_sub(*queued));
                *queued += taken;
                return taken;
            }
            Algo::Sliding { log, total } => {
                let crowded = log.len() >= MAX_LOG;
                match log.back_mut() {
                    Some((t, k)) if *t == now => *k += n,
                    // A long log merges close charges into the later timestamp: memory stays
                    // bounded, and a unit only ever expires later than it would (never early).
                    Some((t, k)) if crowded && now - *t < w / MAX_LOG as u64 => {
                        *t = now;
                        *k += n;
                    }
                    _ => log.push_back((now, n)),
                }
                *total += n;
            }
            Algo::Fixed { count, .. } => *count = count.saturating_add(n),
            Algo::Gcra { tat } => {
                let now_s = i128::from(now) * i128::from(c);
                let base = (*tat).max(now_s);
                let next = base + i128::from(n) * i128::from(w);
                let most = now_s + i128::from(1 + DEBT_WINDOWS) * i128::from(w) * i128::from(c);
                if next <= most {
                    *tat = next;
                    return n;
                }
                // Whole units, as for the token bucket.
                let room = ceil_div_i(most - base, i128::from(w));
                let taken = u64::try_from(room).unwrap_or(n).min(n);
                *tat = base + i128::from(taken) * i128::from(w);
                return taken;
            }
        }
        n
    }

    /// Gives back `n` units of a charge made at `at`, as far as the algorithm still holds them
    /// (a charge that already left the window or bucket has nothing to give back).
    pub(crate) fn refund(&mut self, now: u64, at: u64, n: u64) {
        if n == 0 {
            return;
        }
        self.advance(now);
        let (w, c) = (self.window, self.capacity);
        match &mut self.algo {
            Algo::Token { level, .. } => {
                let full = i128::from(c) * i128::from(w);
                *level = (*level + i128::from(n) * i128::from(w)).min(full);
            }
            Algo::Leaky { queued, .. } => *queued -= n.min(*queued),
            Algo::Sliding { log, total } => {
                // The charge lives in the first entry at or after `at` (merges only move
                // timestamps later), unless it already left the window.
                let i = log.partition_point(|&(t, _)| t < at);
                if at.saturating_add(w) > now && i < log.len() {
                    let k = &mut log[i].1;
                    let back = n.min(*k);
                    *k -= back;
                    *total -= back;
                    if *k == 0 {
                        log.remove(i);
                    }
                }
            }
            Algo::Fixed { start, count } => {
                if at >= *start {
                    *count -= n.min(*count);
                }
            }
            Algo::Gcra { tat } => {
                let now_s = i128::from(now) * i128::from(c);
                // Never move the arrival time before now: that would bank burst capacity.
                if *tat > now_s {
                    *tat = (*tat - i128::from(n) * i128::from(w)).max(now_s);
                }
            }
        }
    }

    /// Units currently counted against the capacity at `now` (rounded up; may exceed the
    /// capacity after an `update` that charged extra).
    pub(crate) fn used(&mut self, now: u64) -> u64 {
        self.advance(now);
        let (w, c) = (self.window, self.capacity);
        match &self.algo {
            Algo::Token { level, .. } => {
                let full = i128::from(c) * i128::from(w);
                let used = ceil_div_i(full - *level, i128::from(w));
                u64::try_from(used).unwrap_or(u64::MAX)
            }
            Algo::Leaky { queued, .. } => *queued,
            Algo::Sliding { total, .. } => *total,
            Algo::Fixed { count, .. } => *count,
            Algo::Gcra { tat } => {
                let now_s = i128::from(now) * i128::from(c);
                let ahead = (*tat - now_s).max(0);
                u64::try_from(ceil_div_i(ahead, i128::from(w))).unwrap_or(u64::MAX)
            }
        }
    }

    pub(crate) fn capacity(&self) -> u64 {
        self.capacity
    }
}

fn ceil_div(a: u128, b: u128) -> u128 {
    a.div_ceil(b)
}

fn ceil_div_i(a: i128, b: i128) -> u128 {
    if a <= 0 {
        0
    } else {
        u128::try_from(a)
            .unwrap_or(0)
            .div_ceil(u128::try_from(b).unwrap_or(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(alg: RateAlgorithm, cap: u64) -> RateState {
        RateState::new(&RateLimit::new("k", Duration::from_nanos(1000), cap).algorithm(alg))
    }

    const ALL: [RateAlgorithm; 5] = [
        RateAlgorithm::TokenBucket,
        RateAlgorithm::LeakyBucket,
        RateAlgorithm::SlidingWindow,
        RateAlgorithm::FixedWindow,
        RateAlgorithm::Gcra,
    ];

    #[test]
    fn a_full_window_then_waits() {
        for alg in ALL {
            let mut s = state(alg, 10);
            assert_eq!(s.wait_for(0, 10), None, "{alg}");
            s.charge(0, 10);
            assert_eq!(s.used(0), 10, "{alg}");
            let wait = s.wait_for(0, 1).expect("full");
            assert!(wait > 0 && wait <= 1000, "{alg}: {wait}");
            assert_eq!(s.wait_for(wait, 1), None, "{alg} after {wait}");
        }
    }

    proptest::proptest! {
        /// The wait a refused request is told is exact: the request fits after it, and (for
        /// waits longer than a nanosecond) not a nanosecond earlier: no needless delay.
        #[test]
        fn the_wait_hint_is_exact(
            alg in 0usize..5,
            cap in 1u64..12,
            ops in proptest::collection::vec((0u64..1500, 1u64..12, 0u64..100), 1..80),
        ) {
            let mut s = state(ALL[alg], cap);
            let mut now = 0;
            for (dt, n, pct) in ops {
                now += dt;
                let n = n.min(cap);
                match s.wait_for(now, n) {
                    None => {
                        s.charge(now, n);
                        s.refund(now, now, n * pct / 100 / 2);
                    }
                    Some(d) => {
                        proptest::prop_assert_eq!(s.clone().wait_for(now + d, n), None, "{} after {}", ALL[alg], d);
                        if d > 1 {
                            proptest::prop_assert!(s.clone().wait_for(now + d - 1, n).is_some(), "{}: {} too long", ALL[alg], d);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn a_sliding_log_stays_bounded() {
        let limit = RateLimit::new("k", Duration::from_secs(1), u64::MAX / 2);
        let mut s = RateState::new(&limit);
        for t in 0..50_000 {
            s.charge(t, 1);
        }
        let Algo::Sliding { log, total } = &s.algo else {
            unreachable!()
        };
        assert!(log.len() <= 2 * MAX_LOG, "{}", log.len());
        assert_eq!(*total, 50_000);
        // A refund of a merged charge still finds it.
        s.refund(50_000, 49_999, 1);
        assert_eq!(s.used(50_000), 49_999);
    }

    #[test]
    fn extreme_windows_and_capacities_do_not_overflow() {
        for alg in ALL {
            for (window, cap) in [
                (Duration::MAX, 5),
                (Duration::from_nanos(1), u64::MAX),
                (Duration::from_secs(86_400), 1 << 50),
            ] {
                let mut s = RateState::new(&RateLimit::new("k", window, cap).algorithm(alg));
                let now = 1 << 61; // 73 years of uptime
                assert_eq!(s.wait_for(now, cap), None, "{alg}");
                s.charge(now, cap);
                s.wait_for(now, 1);
                s.refund(now, now, cap / 2);
                s.used(now);
                s.used(now * 2);
            }
        }
    }

    #[test]
    fn a_refund_makes_room_again() {
        for alg in ALL {
            let mut s = state(alg, 10);
            s.charge(5, 10);
            s.refund(5, 5, 4);
            assert_eq!(s.wait_for(5, 4), None, "{alg}");
            assert!(s.wait_for(5, 5).is_some(), "{alg}");
        }
    }
}
