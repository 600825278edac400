//! Property tests of the five rate-limit algorithms on a fake clock: for random request
//! sequences, clock advances, refunds and overcharges far above the capacity (corrected
//! back down, or left standing), admissions never exceed what the algorithm allows (no
//! over-admission), a refused request really did not fit (no under-admission), and an
//! overcharge blocks a key for about one window at most.
#![allow(missing_docs)]

use std::time::Duration;

use concurry::{FakeClock, LimitError, LimitSet, RateAlgorithm, RateLimit};
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence};

/// Window of every generated limit, in nanos (small numbers keep the arithmetic readable).
const W: u64 = 1_000;

/// One step: advance the clock by `dt`, request `n`, and if admitted report `used` (<= n),
/// after first reporting `n * spike` if `spike` is set (an overcharge, then its correction).
#[derive(Debug, Clone)]
struct Step {
    dt: u64,
    n: u64,
    used_pct: u8,
    spike: Option<u64>,
}

fn steps(cap: u64) -> impl Strategy<Value = Vec<Step>> {
    let step = (
        prop_oneof![Just(0u64), 0..W / 4, 0..2 * W],
        1..=cap,
        prop_oneof![Just(100u8), 0..=100u8],
        prop_oneof![4 => Just(None), 1 => (2u64..5000).prop_map(Some)],
    )
        .prop_map(|(dt, n, used_pct, spike)| Step {
            dt,
            n,
            used_pct,
            spike,
        });
    prop::collection::vec(step, 1..120)
}

fn cases() -> impl Strategy<Value = (u64, Vec<Step>)> {
    (1u64..20).prop_flat_map(|cap| (Just(cap), steps(cap)))
}

/// Admissions `(time, net units)` and refusals `(time, units)`.
struct Run {
    admitted: Vec<(u64, u64)>,
    refused: Vec<(u64, u64, usize)>,
}

fn run(alg: RateAlgorithm, cap: u64, steps: &[Step]) -> Run {
    let clock = FakeClock::new();
    let set = LimitSet::builder()
        .limit(RateLimit::new("k", Duration::from_nanos(W), cap).algorithm(alg))
        .clock(clock.clone())
        .build()
        .unwrap();
    let mut now = 0;
    let mut out = Run {
        admitted: Vec::new(),
        refused: Vec::new(),
    };
    for s in steps {
        clock.advance(Duration::from_nanos(s.dt));
        now += s.dt;
        match set.try_acquire(&[("k", s.n)]) {
            Ok(mut acq) => {
                if let Some(spike) = s.spike {
                    acq.update(&[("k", s.n * spike)]).unwrap();
                }
                let used = s.n * u64::from(s.used_pct) / 100;
                acq.update(&[("k", used)]).unwrap();
                out.admitted.push((now, used));
            }
            Err(LimitError::WouldBlock { .. }) => {
                // Refused before admission index `len`: the reference replays up to there.
                out.refused.push((now, s.n, out.admitted.len()));
            }
            Err(e) => panic!("unexpected {e}"),
        }
    }
    out
}

const ALGORITHMS: [RateAlgorithm; 5] = [
    RateAlgorithm::TokenBucket,
    RateAlgorithm::LeakyBucket,
    RateAlgorithm::SlidingWindow,
    RateAlgorithm::FixedWindow,
    RateAlgorithm::Gcra,
];

fn config() -> Config {
    Config {
        cases: 300,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..Config::default()
    }
}

/// Continuous-drain reference (token bucket / GCRA): the fill level, in units x W, after the
/// admissions `adm`, at time `t`.
fn bucket_used(cap: u64, adm: &[(u64, u64)], t: u64) -> u128 {
    let (cap, w) = (u128::from(cap), u128::from(W));
    let mut used: u128 = 0; // units x W
    let mut last = 0;
    for &(at, n) in adm {
        used = used.saturating_sub(u128::from(at - last) * cap);
        used += u128::from(n) * w;
        last = at;
    }
    used.saturating_sub(u128::from(t - last) * cap)
}

/// At most `cap + cap * span / W` units in any span between two admissions.
fn check_bucket_bound(cap: u64, adm: &[(u64, u64)]) -> Result<(), TestCaseError> {
    for i in 0..adm.len() {
        let mut sum: u128 = 0;
        for j in i..adm.len() {
            sum += u128::from(adm[j].1);
            let span = u128::from(adm[j].0 - adm[i].0);
            prop_assert!(
                sum * u128::from(W) <= u128::from(cap) * u128::from(W) + u128::from(cap) * span,
                "{sum} units in {span} ns (cap {cap})"
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn sliding_window_never_over_any_window((cap, s) in cases()) {
        let r = run(RateAlgorithm::SlidingWindow, cap, &s);
        for &(t, _) in &r.admitted {
            let sum: u64 = r.admitted.iter().filter(|(u, _)| *u >= t && *u < t + W).map(|x| x.1).sum();
            prop_assert!(sum <= cap, "{sum} > {cap} in [{t}, {})", t + W);
        }
        for &(t, n, k) in &r.refused {
            let sum: u64 = r.admitted[..k].iter().filter(|(u, _)| u + W > t).map(|x| x.1).sum();
            prop_assert!(sum + n > cap, "refused {n} at {t} with only {sum} of {cap} used");
        }
    }

    #[test]
    fn fixed_window_never_over_an_aligned_window((cap, s) in cases()) {
        let r = run(RateAlgorithm::FixedWindow, cap, &s);
        for &(t, _) in &r.admitted {
            let sum: u64 = r.admitted.iter().filter(|(u, _)| u / W == t / W).map(|x| x.1).sum();
            prop_assert!(sum <= cap);
        }
        for &(t, n, k) in &r.refused {
            let sum: u64 = r.admitted[..k].iter().filter(|(u, _)| u / W == t / W).map(|x| x.1).sum();
            prop_assert!(sum + n > cap, "refused {n} at {t} with only {sum} of {cap} used");
        }
    }

    #[test]
    fn token_bucket_bursts_at_most_capacity((cap, s) in cases()) {
        let r = run(RateAlgorithm::TokenBucket, cap, &s);
        check_bucket_bound(cap, &r.admitted)?;
        for &(t, n, k) in &r.refused {
            let used = bucket_used(cap, &r.admitted[..k], t);
            prop_assert!(used + u128::from(n) * u128::from(W) > u128::from(cap) * u128::from(W),
                "refused {n} at {t} with level {used}");
        }
    }

    #[test]
    fn gcra_bursts_at_most_capacity((cap, s) in cases()) {
        let r = run(RateAlgorithm::Gcra, cap, &s);
        check_bucket_bound(cap, &r.admitted)?;
        for &(t, n, k) in &r.refused {
            let used = bucket_used(cap, &r.admitted[..k], t);
            prop_assert!(used + u128::from(n) * u128::from(W) > u128::from(cap) * u128::from(W),
                "refused {n} at {t} with level {used}");
        }
    }

    #[test]
    fn leaky_bucket_drains_whole_units((cap, s) in cases()) {
        let r = run(RateAlgorithm::LeakyBucket, cap, &s);
        check_bucket_bound(cap, &r.admitted)?;
        // Whole-unit draining lags the continuous bucket by less than one unit.
        for &(t, n, k) in &r.refused {
            let used = bucket_used(cap, &r.admitted[..k], t);
            prop_assert!(used + u128::from(n + 1) * u128::from(W) > u128::from(cap) * u128::from(W),
                "refused {n} at {t} with level {used}");
        }
    }

    /// An overcharge left standing (the reply said far more was used than the capacity)
    /// blocks the key for about one window, never for as many windows as it is large: one
    /// unit fits again a window and two units' refill after the last charge, and the whole
    /// capacity a window later.
    #[test]
    fn an_overcharge_blocks_a_key_for_about_one_window(
        alg in 0usize..5,
        (cap, s) in cases(),
        overs in prop::collection::vec((0usize..120, 2u64..100_000), 1..6),
    ) {
        let alg = ALGORITHMS[alg];
        let clock = FakeClock::new();
        let set = LimitSet::builder()
            .limit(RateLimit::new("k", Duration::from_nanos(W), cap).algorithm(alg))
            .clock(clock.clone())
            .build()
            .unwrap();
        for (i, step) in s.iter().enumerate() {
            clock.advance(Duration::from_nanos(step.dt));
            if let Ok(mut acq) = set.try_acquire(&[("k", step.n)])
                && let Some(&(_, times)) = overs.iter().find(|(at, _)| *at == i)
            {
                acq.update(&[("k", cap * times)]).unwrap();
            }
        }
        let unit = W.div_ceil(cap);
        let later = clock.clone();
        later.advance(Duration::from_nanos(W + 2 * unit));
        prop_assert!(set.try_acquire(&[("k", 1)]).is_ok(), "{alg}: {:?}", set.stats());
        later.advance(Duration::from_nanos(W));
        prop_assert!(set.try_acquire(&[("k", cap)]).is_ok(), "{alg}: {:?}", set.stats());
    }

    /// Several keys at once: an admission charges every key or none.
    #[test]
    fn multi_key_requests_are_all_or_nothing(
        reqs in prop::collection::vec((0u64..6, 0u64..6, 0..W), 1..60)
    ) {
        let clock = FakeClock::new();
        let set = LimitSet::builder()
            .limit(RateLimit::new("a", Duration::from_nanos(W), 5))
            .limit(RateLimit::new("b", Duration::from_nanos(W), 5).algorithm(RateAlgorithm::TokenBucket))
            .clock(clock.clone())
            .build()
            .unwrap();
        for (a, b, dt) in reqs {
            clock.advance(Duration::from_nanos(dt));
            let before: Vec<u64> = set.stats().iter().map(|s| s.used).collect();
            let got = set.try_acquire(&[("a", a), ("b", b)]);
            let after: Vec<u64> = set.stats().iter().map(|s| s.used).collect();
            match got {
                Ok(_) => prop_assert_eq!(after, vec![before[0] + a, before[1] + b]),
                Err(_) => prop_assert_eq!(after, before),
            }
        }
    }
}
