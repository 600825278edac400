//! Loom models of the latch: concurrent count-downs release a blocked thread and an async
//! waiter exactly when the count reaches zero.

use crate::primitives::Latch;
use crate::sync::thread;

#[test]
fn loom_latch_count_downs_release_the_blocked_waiter() {
    loom::model(|| {
        let latch = Latch::new(2);
        let ts: Vec<_> = (0..2)
            .map(|_| {
                let l = latch.clone();
                thread::spawn(move || l.count_down())
            })
            .collect();
        latch.wait_blocking();
        assert_eq!(latch.count(), 0);
        for t in ts {
            t.join().unwrap();
        }
    });
}

#[test]
fn loom_latch_async_waiter_is_woken() {
    loom::model(|| {
        let latch = Latch::new(1);
        let l2 = latch.clone();
        let waiter = thread::spawn(move || {
            loom::future::block_on(l2.wait());
            assert!(l2.is_open());
        });
        latch.count_down();
        waiter.join().unwrap();
    });
}
