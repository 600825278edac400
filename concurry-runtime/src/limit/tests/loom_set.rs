//! Loom models of the limit set's core: atomic multi-key acquire, release waking a waiter,
//! and a refund by `update`, with 2-3 threads on a fake clock (time never moves, so only
//! releases and refunds can admit a waiter).

use crate::clock::FakeClock;
use crate::limit::{LimitSet, RateLimit, ResourceLimit};
use crate::sync::thread;

fn set(limits: Vec<crate::limit::Limit>) -> LimitSet {
    LimitSet::builder()
        .limits(limits)
        .clock(FakeClock::new())
        .build()
        .unwrap()
}

#[test]
fn loom_release_wakes_the_waiter() {
    loom::model(|| {
        let s = set(vec![ResourceLimit::new("r", 1).into()]);
        let held = s.acquire(&[]).unwrap();
        let s2 = s.clone();
        let t = thread::spawn(move || {
            let got = s2.acquire(&[]).unwrap();
            assert_eq!(got.charged("r"), Some(1));
        });
        drop(held);
        t.join().unwrap();
        assert_eq!(s.stats()[0].used, 0);
    });
}

#[test]
fn loom_two_keys_all_or_nothing() {
    loom::model(|| {
        let s = set(vec![
            ResourceLimit::new("a", 1).into(),
            ResourceLimit::new("b", 1).into(),
        ]);
        let (s1, s2) = (s.clone(), s.clone());
        // Both want {a, b}, in opposite key order: no deadlock, never both at once.
        let t1 = thread::spawn(move || {
            let g = s1.acquire(&[("a", 1), ("b", 1)]).unwrap();
            let used: u64 = s1.stats().iter().map(|x| x.used).sum();
            assert_eq!(used, 2);
            drop(g);
        });
        let t2 = thread::spawn(move || {
            let g = s2.acquire(&[("b", 1), ("a", 1)]).unwrap();
            let used: u64 = s2.stats().iter().map(|x| x.used).sum();
            assert_eq!(used, 2);
            drop(g);
        });
        t1.join().unwrap();
        t2.join().unwrap();
        assert!(s.stats().iter().all(|x| x.used == 0));
    });
}

#[test]
fn loom_refund_admits_the_waiter() {
    loom::model(|| {
        let s = set(vec![RateLimit::per_second("tokens", 10).into()]);
        let mut first = s.acquire(&[("tokens", 10)]).unwrap();
        let s2 = s.clone();
        let t = thread::spawn(move || {
            let got = s2.acquire(&[("tokens", 4)]).unwrap();
            assert_eq!(got.charged("tokens"), Some(4));
        });
        first.update(&[("tokens", 6)]).unwrap();
        t.join().unwrap();
        assert_eq!(s.stats()[0].used, 10);
    });
}
