//! LimitSet and LimitPool behaviour with threads on a fake clock: atomic multi-key acquire,
//! FIFO fairness, timeouts, refunds, errors, async waits and stats.
#![allow(missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use concurry::{
    CallLimit, FakeClock, LimitError, LimitKind, LimitPool, LimitPoolStrategy, LimitSet,
    RateAlgorithm, RateLimit, ResourceLimit,
};

fn fake(limits: Vec<concurry::Limit>) -> (LimitSet, FakeClock) {
    let clock = FakeClock::new();
    let set = LimitSet::builder()
        .limits(limits)
        .clock(clock.clone())
        .build()
        .unwrap();
    (set, clock)
}

/// Spins (on real time, bounded) until `cond` holds: for waiting on other threads to queue.
fn eventually(what: &str, cond: impl Fn() -> bool) {
    for _ in 0..5_000 {
        if cond() {
            return;
        }
        thread::sleep(Duration::from_millis(1));
    }
    panic!("timed out waiting until {what}");
}

fn waiters(set: &LimitSet, key: &str) -> usize {
    set.stats()
        .into_iter()
        .find(|s| s.key == key)
        .unwrap()
        .waiters
}

#[test]
fn many_threads_on_two_keys_never_hold_one_without_the_other() {
    let (set, _clock) = fake(vec![
        ResourceLimit::new("a", 2).into(),
        ResourceLimit::new("b", 2).into(),
    ]);
    let a_held = Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = (0..6)
        .map(|i| {
            let (set, a_held) = (set.clone(), a_held.clone());
            thread::spawn(move || {
                for _ in 0..300 {
                    // Half the threads name the keys in the other order.
                    let req: &[(&str, u64)] = if i % 2 == 0 {
                        &[("a", 1), ("b", 1)]
                    } else {
                        &[("b", 1), ("a", 1)]
                    };
                    let g = set.acquire(req).unwrap();
                    let held = a_held.fetch_add(1, Ordering::SeqCst) + 1;
                    assert!(held <= 2, "{held} holders of a capacity-2 key");
                    let stats = set.stats();
                    assert_eq!(stats[0].used, stats[1].used, "a and b taken apart");
                    a_held.fetch_sub(1, Ordering::SeqCst);
                    drop(g);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert!(set.stats().iter().all(|s| s.used == 0 && s.waiters == 0));
}

#[test]
fn a_waiter_for_two_keys_holds_neither_while_waiting() {
    let (set, _clock) = fake(vec![
        ResourceLimit::new("a", 1).into(),
        ResourceLimit::new("b", 1).into(),
    ]);
    // A standalone set adds one unit of every resource limit unless the request names it:
    // naming `a` with 0 holds `b` alone.
    let hold_b = set.acquire(&[("b", 1), ("a", 0)]).unwrap();
    assert_eq!(hold_b.charged("a"), None);
    let s2 = set.clone();
    let t = thread::spawn(move || s2.acquire(&[("a", 1), ("b", 1)]).unwrap());
    eventually("the waiter queues", || waiters(&set, "a") == 1);
    // The waiter for {a, b} does not hold a.
    assert_eq!(set.stats()[0].used, 0);
    drop(hold_b);
    let got = t.join().unwrap();
    assert_eq!((got.charged("a"), got.charged("b")), (Some(1), Some(1)));
}

#[test]
fn waiters_are_served_first_come_first_served() {
    let (set, clock) = fake(vec![RateLimit::per_second("tokens", 10).into()]);
    set.acquire(&[("tokens", 10)]).unwrap();
    let (tx, rx) = mpsc::channel();
    // A big request queues first, then a stream of small ones.
    let big = {
        let (set, tx) = (set.clone(), tx.clone());
        thread::spawn(move || {
            set.acquire(&[("tokens", 10)]).unwrap();
            tx.send("big").unwrap();
        })
    };
    eventually("the big request waits", || waiters(&set, "tokens") == 1);
    let small: Vec<_> = (0..3)
        .map(|i| {
            let (s2, tx) = (set.clone(), tx.clone());
            let t = thread::spawn(move || {
                s2.acquire(&[("tokens", 1)]).unwrap();
                tx.send("small").unwrap();
            });
            eventually("a small request waits", || waiters(&set, "tokens") == i + 2);
            t
        })
        .collect();
    // Half the window refills 5 tokens: enough for every small request, not for the big one;
    // the small ones still wait behind it.
    clock.advance(Duration::from_millis(500));
    thread::sleep(Duration::from_millis(20));
    assert!(
        rx.try_recv().is_err(),
        "a small request overtook the big one"
    );
    clock.advance(Duration::from_millis(500));
    assert_eq!(rx.recv().unwrap(), "big");
    clock.advance(Duration::from_secs(1));
    for _ in 0..3 {
        assert_eq!(rx.recv().unwrap(), "small");
    }
    big.join().unwrap();
    small.into_iter().for_each(|t| t.join().unwrap());
}

#[test]
fn a_timeout_counts_on_the_sets_clock() {
    let (set, clock) = fake(vec![ResourceLimit::new("gpu", 1).into()]);
    let held = set.acquire(&[]).unwrap();
    let s2 = set.clone();
    let t = thread::spawn(move || s2.acquire_timeout(&[], Duration::from_secs(30)));
    eventually("the waiter queues", || waiters(&set, "gpu") == 1);
    clock.advance(Duration::from_secs(31));
    match t.join().unwrap() {
        Err(LimitError::Timeout { keys }) => assert!(keys.contains("`gpu`")),
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert_eq!(
        waiters(&set, "gpu"),
        0,
        "a timed-out waiter leaves the queue"
    );
    drop(held);
}

#[test]
fn impossible_and_unknown_requests_fail_at_once() {
    let (set, _clock) = fake(vec![RateLimit::per_minute("tokens", 100).into()]);
    let e = set.acquire(&[("tokens", 101)]).unwrap_err();
    assert_eq!(
        e,
        LimitError::ExceedsCapacity {
            key: "tokens".into(),
            requested: 101,
            capacity: 100
        }
    );
    let e = set.acquire(&[("tokenz", 1)]).unwrap_err();
    assert!(e.to_string().contains("`tokenz`") && e.to_string().contains("tokens"));
    // An empty set admits everything, so methods using `limits()` also run outside a pool.
    assert!(LimitSet::empty().acquire(&[("anything", 1)]).is_ok());
}

#[test]
fn invalid_limits_are_refused_with_the_key() {
    let e = LimitSet::new([RateLimit::per_second("x", 0)]).unwrap_err();
    assert!(e.to_string().contains("`x`") && e.to_string().contains("capacity is 0"));
    let e =
        LimitSet::new([RateLimit::per_second("x", 1), RateLimit::per_hour("x", 5)]).unwrap_err();
    assert!(e.to_string().contains("used twice"));
    let e = LimitSet::new([RateLimit::new("w", Duration::ZERO, 5)]).unwrap_err();
    assert!(e.to_string().contains("window is 0"));
    let e = LimitSet::new([RateLimit::per_day("huge", u64::MAX)]).unwrap_err();
    assert!(e.to_string().contains("too large"), "{e}");
}

#[test]
fn call_and_resource_limits_join_every_request_rate_limits_only_when_named() {
    let (set, _clock) = fake(vec![
        CallLimit::per_minute(10).into(),
        RateLimit::per_minute("tokens", 100).into(),
        ResourceLimit::new("conn", 3).into(),
    ]);
    let a = set.acquire(&[("tokens", 5)]).unwrap();
    assert_eq!(
        (
            a.charged("call_count"),
            a.charged("tokens"),
            a.charged("conn")
        ),
        (Some(1), Some(5), Some(1))
    );
    // Zero tokens, said explicitly (`&[]` is refused: it names no amount for `tokens`).
    let b = set.acquire(&[("tokens", 0)]).unwrap();
    assert_eq!(
        (b.charged("call_count"), b.charged("tokens")),
        (Some(1), None)
    );
    let stats = set.stats();
    assert_eq!(stats[0].kind, LimitKind::Call(RateAlgorithm::SlidingWindow));
    assert_eq!((stats[0].used, stats[1].used, stats[2].used), (2, 5, 2));
    drop((a, b));
    let stats = set.stats();
    // Rate charges stay spent; resource units come back.
    assert_eq!((stats[0].used, stats[1].used, stats[2].used), (2, 5, 0));
}

#[test]
fn update_refunds_less_and_charges_more() {
    for alg in [
        RateAlgorithm::TokenBucket,
        RateAlgorithm::LeakyBucket,
        RateAlgorithm::SlidingWindow,
        RateAlgorithm::FixedWindow,
        RateAlgorithm::Gcra,
    ] {
        let (set, _clock) = fake(vec![RateLimit::per_minute("t", 100).algorithm(alg).into()]);
        let mut acq = set.acquire(&[("t", 50)]).unwrap();
        acq.update(&[("t", 20)]).unwrap();
        assert_eq!(set.stats()[0].used, 20, "{alg}");
        acq.update(&[("t", 130)]).unwrap(); // more than requested (and than the capacity): charged
        assert_eq!(set.stats()[0].used, 130, "{alg}");
        assert_eq!(acq.charged("t"), Some(130));
        assert!(acq.update(&[("nope", 1)]).is_err());
        drop(acq);
        // Not updated: the requested amount stays charged.
        let (set, _clock) = fake(vec![RateLimit::per_minute("t", 100).algorithm(alg).into()]);
        drop(set.acquire(&[("t", 40)]).unwrap());
        assert_eq!(set.stats()[0].used, 40, "{alg}");
    }
}

#[test]
fn a_refund_wakes_a_waiter() {
    let (set, _clock) = fake(vec![RateLimit::per_hour("t", 10).into()]);
    let mut first = set.acquire(&[("t", 10)]).unwrap();
    let s2 = set.clone();
    let t = thread::spawn(move || s2.acquire(&[("t", 5)]).unwrap().charged("t"));
    eventually("the waiter queues", || waiters(&set, "t") == 1);
    first.update(&[("t", 5)]).unwrap();
    assert_eq!(t.join().unwrap(), Some(5));
}

#[test]
fn resource_units_come_back_after_a_panic() {
    let (set, _clock) = fake(vec![ResourceLimit::new("r", 1).into()]);
    let s2 = set.clone();
    let r = thread::spawn(move || {
        let _g = s2.acquire(&[]).unwrap();
        panic!("planned");
    })
    .join();
    assert!(r.is_err());
    assert!(set.try_acquire(&[]).is_ok());
}

#[test]
fn async_waiters_share_the_fifo_queue_and_leave_it_when_dropped() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        let (set, clock) = fake(vec![RateLimit::per_second("t", 2).into()]);
        set.acquire_async(&[("t", 2)]).await.unwrap();
        // A dropped waiter gives up its place.
        let dropped =
            tokio::time::timeout(Duration::from_millis(5), set.acquire_async(&[("t", 1)]));
        assert!(dropped.await.is_err());
        assert_eq!(waiters(&set, "t"), 0);
        let s2 = set.clone();
        let waiting =
            tokio::spawn(
                async move { s2.acquire_async(&[("t", 2)]).await.map(|a| a.charged("t")) },
            );
        for _ in 0..100 {
            if waiters(&set, "t") == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        clock.advance(Duration::from_secs(1));
        assert_eq!(waiting.await.unwrap().unwrap(), Some(2));
    });
}

#[test]
fn limit_pool_round_robin_and_first_available() {
    let clock = FakeClock::new();
    let key = |name: &str| {
        LimitSet::builder()
            .name(name)
            .limit(RateLimit::per_second("req", 2))
            .clock(clock.clone())
            .build()
            .unwrap()
    };
    let pool = LimitPool::new([key("a"), key("b")]).unwrap();
    let picks: Vec<usize> = (0..4)
        .map(|_| pool.acquire(&[("req", 1)]).unwrap().index())
        .collect();
    assert_eq!(picks, [0, 1, 0, 1]);
    assert!(pool.try_acquire(&[("req", 1)]).is_err());
    let stats = pool.stats();
    assert_eq!((stats[0][0].used, stats[1][0].used), (2, 2));

    let pool = LimitPool::new([key("a"), key("b")])
        .unwrap()
        .strategy(LimitPoolStrategy::FirstAvailable);
    let a = pool.try_acquire(&[("req", 2)]).unwrap();
    let b = pool.try_acquire(&[("req", 2)]).unwrap();
    assert_ne!(a.set().name(), b.set().name());
    let p2 = pool.clone();
    let t = thread::spawn(move || p2.acquire(&[("req", 1)]).unwrap().index());
    thread::sleep(Duration::from_millis(10));
    clock.advance(Duration::from_secs(1));
    assert!(t.join().unwrap() < 2);
    assert!(matches!(
        pool.acquire(&[("req", 3)]),
        Err(LimitError::ExceedsCapacity { .. })
    ));
}

#[test]
fn a_set_is_shared_by_its_clones() {
    let (set, _clock) = fake(vec![CallLimit::per_hour(3).into()]);
    let other = set.clone();
    assert!(other.same_as(&set));
    let _a = set.acquire(&[]).unwrap();
    let _b = other.acquire(&[]).unwrap();
    assert_eq!(set.stats()[0].used, 2);
    assert_eq!(set.stats()[0].available, 1);
}

#[test]
fn handles_guards_and_futures_are_send_and_sync() {
    fn send_sync<T: Send + Sync>(_: &T) {}
    fn send<T: Send>(_: &T) {}
    let (set, clock) = fake(vec![CallLimit::per_second(5).into()]);
    send_sync(&set);
    send_sync(&clock);
    send_sync(&set.try_acquire(&[]).unwrap());
    let pool = LimitPool::new([set.clone()]).unwrap();
    send_sync(&pool);
    send_sync(&pool.try_acquire(&[]).unwrap());
    let fut = set.acquire_async(&[]);
    send(&fut);
    drop(fut);
    let fut = pool.acquire_async(&[]);
    send(&fut);
}

const ALGORITHMS: [RateAlgorithm; 5] = [
    RateAlgorithm::TokenBucket,
    RateAlgorithm::LeakyBucket,
    RateAlgorithm::SlidingWindow,
    RateAlgorithm::FixedWindow,
    RateAlgorithm::Gcra,
];

#[test]
fn an_empty_request_names_the_rate_limits_that_need_an_amount() {
    let (set, _clock) = fake(vec![
        CallLimit::per_minute(10).into(),
        RateLimit::per_minute("tokens", 100).into(),
        ResourceLimit::new("db", 2).into(),
        RateLimit::per_minute("images", 5).into(),
    ]);
    let missing = |r: Result<concurry::Acquisition, LimitError>| match r {
        Err(e @ LimitError::MissingAmount { .. }) => e,
        other => panic!("expected MissingAmount, got {other:?}"),
    };
    let e = missing(set.acquire(&[]));
    assert_eq!(
        e,
        LimitError::MissingAmount {
            keys: vec!["tokens".into(), "images".into()]
        }
    );
    assert_eq!(
        e.to_string(),
        "acquire(&[]) names no amount for rate limits `tokens`, `images`; pass \
         (\"tokens\", n), (\"images\", n) (or only the keys this request uses)"
    );
    missing(set.try_acquire(&[]));
    missing(set.acquire_timeout(&[], Duration::from_secs(1)));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    missing(rt.block_on(set.acquire_async(&[])));
    // A pool of such sets says the same.
    let pool = LimitPool::new([set.clone()]).unwrap();
    assert!(matches!(
        pool.try_acquire(&[]),
        Err(LimitError::MissingAmount { .. })
    ));
    assert!(matches!(
        pool.acquire(&[]),
        Err(LimitError::MissingAmount { .. })
    ));
    // Nothing was taken, not even the call and resource units.
    assert!(set.stats().iter().all(|s| s.used == 0), "{:?}", set.stats());

    // One rate limit: the message says exactly what to pass.
    let (one, _clock) = fake(vec![RateLimit::per_minute("tokens", 100).into()]);
    assert_eq!(
        one.try_acquire(&[]).unwrap_err().to_string(),
        "acquire(&[]) names no amount for rate limit `tokens`; pass (\"tokens\", n)"
    );

    // Naming only some keys is a choice, not a mistake: the others are not charged, and
    // call and resource limits still take one unit each.
    let acq = set.try_acquire(&[("images", 1)]).unwrap();
    assert_eq!(
        (
            acq.charged("images"),
            acq.charged("tokens"),
            acq.charged("call_count"),
            acq.charged("db")
        ),
        (Some(1), None, Some(1), Some(1))
    );
    // Call and resource limits need no amount: `&[]` takes one unit of each.
    let (auto, _clock) = fake(vec![
        CallLimit::per_minute(10).into(),
        ResourceLimit::new("db", 2).into(),
    ]);
    let acq = auto.try_acquire(&[]).unwrap();
    assert_eq!(
        (acq.charged("call_count"), acq.charged("db")),
        (Some(1), Some(1))
    );
}

#[test]
fn an_update_naming_a_key_not_held_is_an_error_and_changes_nothing() {
    let (set, _clock) = fake(vec![
        RateLimit::per_minute("t", 100).into(),
        RateLimit::per_minute("u", 100).into(),
        ResourceLimit::new("db", 2).into(),
    ]);
    let mut acq = set.acquire(&[("t", 10)]).unwrap();
    let not = |r: Result<(), LimitError>| match r {
        Err(LimitError::NotUpdatable { key, reason }) => (key, reason),
        other => panic!("expected NotUpdatable, got {other:?}"),
    };
    // A typo: named with what the acquisition holds.
    let (key, reason) = not(acq.update(&[("t", 5), ("tokenz", 1)]));
    assert_eq!(key, "tokenz");
    assert!(reason.contains("holds: t, db"), "{reason}");
    // In the set but not requested; a resource limit.
    assert_eq!(not(acq.update(&[("t", 5), ("u", 1)])).0, "u");
    assert_eq!(not(acq.update(&[("t", 5), ("db", 0)])).0, "db");
    // Each refused update changed nothing, not even the keys named before the bad one.
    assert_eq!(acq.charged("t"), Some(10));
    assert_eq!(set.stats()[0].used, 10);
    acq.update(&[("t", 5)]).unwrap();
    assert_eq!(set.stats()[0].used, 5);
    // An acquisition of one implicit call unit cannot be corrected either.
    let (calls, _clock) = fake(vec![CallLimit::per_minute(10).into()]);
    let mut one = calls.acquire(&[]).unwrap();
    assert_eq!(not(one.update(&[("call_count", 3)])).0, "call_count");
    one.update(&[]).unwrap();
}

#[test]
fn an_update_far_above_capacity_blocks_a_key_for_about_one_window() {
    for alg in ALGORITHMS {
        let (set, clock) = fake(vec![RateLimit::per_second("t", 10).algorithm(alg).into()]);
        let mut acq = set.acquire(&[("t", 10)]).unwrap();
        // The reply says 1000x the capacity was used.
        acq.update(&[("t", 10_000)]).unwrap();
        assert_eq!(acq.charged("t"), Some(10_000), "{alg}");
        assert!(set.try_acquire(&[("t", 1)]).is_err(), "{alg}");
        // One window and one unit's refill later, the key admits again (before the cap,
        // a token bucket stayed blocked for 1000 windows).
        clock.advance(Duration::from_millis(1100));
        assert!(
            set.try_acquire(&[("t", 1)]).is_ok(),
            "{alg}: {:?}",
            set.stats()
        );
        // Two windows after the overcharge the whole capacity is back.
        let (set, clock) = fake(vec![RateLimit::per_second("t", 10).algorithm(alg).into()]);
        set.acquire(&[("t", 1)])
            .unwrap()
            .update(&[("t", 1_000_000)])
            .unwrap();
        clock.advance(Duration::from_secs(2));
        assert!(
            set.try_acquire(&[("t", 10)]).is_ok(),
            "{alg}: {:?}",
            set.stats()
        );
    }
}

#[test]
fn a_capped_overcharge_corrected_down_gives_back_only_what_was_counted() {
    for alg in ALGORITHMS {
        let (set, _clock) = fake(vec![RateLimit::per_second("t", 10).algorithm(alg).into()]);
        let mut acq = set.acquire(&[("t", 10)]).unwrap();
        acq.update(&[("t", 10_000)]).unwrap();
        // Corrected back to what was acquired: the bucket is as full as after the
        // acquisition, not emptied by a refund of units it never counted.
        acq.update(&[("t", 10)]).unwrap();
        assert_eq!(acq.charged("t"), Some(10), "{alg}");
        assert_eq!(set.stats()[0].used, 10, "{alg}");
        assert!(set.try_acquire(&[("t", 1)]).is_err(), "{alg}");
    }
}
