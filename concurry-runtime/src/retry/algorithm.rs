//! [`RetryAlgorithm`]: how the wait between attempts grows, and the jitter formula.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::error::ConfigError;

/// How the wait before each retry grows with the retry number `n` (1 for the first retry).
///
/// With base wait `w` the wait before jitter is `w * n` (linear), `w * 2^(n-1)` (exponential)
/// or `w * fib(n)` with `fib = 1, 1, 2, 3, 5, ...` (Fibonacci), capped at `max_wait`.
///
/// ```
/// use concurry::RetryAlgorithm;
/// assert_eq!("fibonacci".parse::<RetryAlgorithm>().unwrap(), RetryAlgorithm::Fibonacci);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum RetryAlgorithm {
    /// `w * 2^(n-1)`: 1, 2, 4, 8, ... times the base wait.
    #[default]
    Exponential,
    /// `w * n`: 1, 2, 3, 4, ... times the base wait.
    Linear,
    /// `w * fib(n)`: 1, 1, 2, 3, 5, ... times the base wait.
    Fibonacci,
}

impl RetryAlgorithm {
    /// The multiplier of the base wait before retry `n` (1-based), saturating.
    pub fn factor(self, n: u32) -> u64 {
        let n = n.max(1);
        match self {
            RetryAlgorithm::Linear => u64::from(n),
            RetryAlgorithm::Exponential => 1u64.checked_shl(n - 1).unwrap_or(u64::MAX),
            RetryAlgorithm::Fibonacci => {
                let (mut a, mut b) = (1u64, 1u64);
                for _ in 2..n {
                    (a, b) = (b, a.saturating_add(b));
                }
                b
            }
        }
    }

    /// The canonical name (`"exponential"`, `"linear"`, `"fibonacci"`).
    pub fn as_str(self) -> &'static str {
        match self {
            RetryAlgorithm::Exponential => "exponential",
            RetryAlgorithm::Linear => "linear",
            RetryAlgorithm::Fibonacci => "fibonacci",
        }
    }
}

impl fmt::Display for RetryAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RetryAlgorithm {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "exponential" | "exp" => Ok(RetryAlgorithm::Exponential),
            "linear" | "lin" => Ok(RetryAlgorithm::Linear),
            "fibonacci" | "fib" => Ok(RetryAlgorithm::Fibonacci),
            _ => Err(ConfigError::new(
                "retry_algorithm",
                format!("{s:?}"),
                "expected one of \"exponential\", \"linear\", \"fibonacci\"",
            )),
        }
    }
}

/// The wait before retry `n`: the algorithm's wait capped at `max_wait`, then jittered.
///
/// Jitter `j` in `[0, 1]` draws the wait uniformly from `[(1 - j) * d, d]` where `d` is the
/// capped wait and `unit` is a uniform sample from `[0, 1)`: `j = 0` gives exactly `d`, and
/// `j = 1` is AWS-style *full jitter*, uniform in `[0, d]`.
pub(crate) fn backoff(
    algorithm: RetryAlgorithm,
    base: Duration,
    max_wait: Duration,
    jitter: f64,
    n: u32,
    unit: f64,
) -> Duration {
    let factor = u32::try_from(algorithm.factor(n)).unwrap_or(u32::MAX);
    let capped = base
        .checked_mul(factor)
        .unwrap_or(Duration::MAX)
        .min(max_wait);
    let keep = 1.0 - jitter.clamp(0.0, 1.0) * unit.clamp(0.0, 1.0);
    capped.mul_f64(keep)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn seq(a: RetryAlgorithm) -> Vec<u64> {
        (1..=7)
            .map(|n| backoff(a, S, Duration::from_secs(100), 0.0, n, 0.5).as_secs())
            .collect()
    }

    #[test]
    fn wait_sequences_without_jitter() {
        assert_eq!(seq(RetryAlgorithm::Exponential), [1, 2, 4, 8, 16, 32, 64]);
        assert_eq!(seq(RetryAlgorithm::Linear), [1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(seq(RetryAlgorithm::Fibonacci), [1, 1, 2, 3, 5, 8, 13]);
    }

    #[test]
    fn max_wait_caps_and_huge_retry_numbers_saturate() {
        let d = backoff(
            RetryAlgorithm::Exponential,
            S,
            Duration::from_secs(30),
            0.0,
            10,
            0.0,
        );
        assert_eq!(d, Duration::from_secs(30));
        let d = backoff(
            RetryAlgorithm::Exponential,
            S,
            Duration::from_secs(30),
            0.0,
            500,
            0.0,
        );
        assert_eq!(d, Duration::from_secs(30));
        let d = backoff(
            RetryAlgorithm::Fibonacci,
            S,
            Duration::from_secs(30),
            0.0,
            500,
            0.0,
        );
        assert_eq!(d, Duration::from_secs(30));
    }

    #[test]
    fn jitter_spans_the_documented_range() {
        let d = |j, u| backoff(RetryAlgorithm::Linear, S, Duration::from_secs(100), j, 4, u);
        assert_eq!(d(1.0, 0.0), Duration::from_secs(4));
        assert_eq!(d(1.0, 1.0), Duration::ZERO);
        assert_eq!(d(0.25, 1.0), Duration::from_secs(3));
        assert_eq!(d(0.0, 0.9), Duration::from_secs(4));
    }
}

#[cfg(test)]
mod props {
    use proptest::prelude::*;

    use super::*;

    fn algorithm() -> impl Strategy<Value = RetryAlgorithm> {
        prop_oneof![
            Just(RetryAlgorithm::Exponential),
            Just(RetryAlgorithm::Linear),
            Just(RetryAlgorithm::Fibonacci)
        ]
    }

    proptest! {
        /// Whatever the sample, a jittered wait lies in `[(1 - j) * d, d]`, and `d` never
        /// exceeds `max_wait`.
        #[test]
        fn jittered_wait_stays_within_its_bounds(
            a in algorithm(),
            base_ms in 0u64..10_000,
            max_ms in 0u64..100_000,
            jitter in 0.0f64..=1.0,
            n in 1u32..200,
            unit in 0.0f64..1.0,
        ) {
            let base = Duration::from_millis(base_ms);
            let max = Duration::from_millis(max_ms);
            let d = backoff(a, base, max, 0.0, n, 0.0);
            prop_assert!(d <= max);
            let w = backoff(a, base, max, jitter, n, unit);
            prop_assert!(w <= d);
            // One nanosecond of slack for float rounding.
            prop_assert!(w + Duration::from_nanos(1) >= d.mul_f64(1.0 - jitter));
        }

        /// Waits never shrink from one retry to the next (before jitter).
        #[test]
        fn waits_grow_monotonically(a in algorithm(), base_ms in 0u64..1_000, n in 1u32..100) {
            let (base, max) = (Duration::from_millis(base_ms), Duration::from_secs(3600));
            prop_assert!(backoff(a, base, max, 0.0, n, 0.0) <= backoff(a, base, max, 0.0, n + 1, 0.0));
        }
    }
}
