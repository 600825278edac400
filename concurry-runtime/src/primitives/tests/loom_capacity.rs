//! Loom models of the capacity limiter's core: a release handing its token to a blocked
//! waiter, two borrowers contending for one token, and an async acquire cancelled while its
//! token is being granted (the token must not be lost).

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Waker};

use crate::primitives::CapacityLimiter;
use crate::sync::thread;

#[test]
fn loom_capacity_release_wakes_the_blocked_waiter() {
    loom::model(|| {
        let l = CapacityLimiter::new(1).unwrap();
        let held = l.try_acquire_on_behalf_of("a").unwrap();
        let l2 = l.clone();
        let t = thread::spawn(move || {
            let p = l2.acquire_blocking_on_behalf_of("b").unwrap();
            assert_eq!(l2.borrowed(), 1);
            drop(p);
        });
        drop(held);
        t.join().unwrap();
        assert_eq!((l.borrowed(), l.waiting()), (0, 0));
    });
}

#[test]
fn loom_capacity_one_token_two_borrowers() {
    loom::model(|| {
        let l = CapacityLimiter::new(1).unwrap();
        let ts: Vec<_> = [1u64, 2]
            .into_iter()
            .map(|who| {
                let l = l.clone();
                thread::spawn(move || {
                    let p = l.acquire_blocking_on_behalf_of(who).unwrap();
                    assert_eq!(l.borrowers(), vec![crate::primitives::Borrower::from(who)]);
                    drop(p);
                })
            })
            .collect();
        for t in ts {
            t.join().unwrap();
        }
        assert_eq!(l.available(), 1);
    });
}

#[test]
fn loom_capacity_cancelled_acquire_loses_no_token() {
    loom::model(|| {
        let l = CapacityLimiter::new(1).unwrap();
        let held = l.try_acquire_on_behalf_of("a").unwrap();
        let l2 = l.clone();
        let t = thread::spawn(move || {
            let mut f = pin!(l2.acquire_on_behalf_of("b"));
            // Polled once, then dropped: granted or not, nothing may stay behind.
            let _ = f.as_mut().poll(&mut Context::from_waker(Waker::noop()));
        });
        drop(held);
        t.join().unwrap();
        assert_eq!((l.borrowed(), l.waiting()), (0, 0));
        assert!(l.try_acquire_on_behalf_of("c").is_ok());
    });
}
