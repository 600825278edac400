//! Loom models of the result slot: every interleaving of completing, waiting, cancelling and
//! registering callbacks, with 2-3 threads.

use crate::future::slot::Slot;
use crate::sync::{Arc, AtomicUsize, Ordering, thread};

#[test]
fn loom_complete_wakes_blocking_waiter() {
    loom::model(|| {
        let slot = Arc::new(Slot::<u32>::new());
        let s2 = slot.clone();
        let t = thread::spawn(move || {
            assert!(s2.complete(7));
        });
        slot.wait(None);
        assert_eq!(slot.try_take(), Some(7));
        t.join().unwrap();
    });
}

#[test]
fn loom_cancel_races_complete_exactly_one_wins() {
    loom::model(|| {
        let slot = Arc::new(Slot::<u32>::new());
        let (a, b) = (slot.clone(), slot.clone());
        let t1 = thread::spawn(move || a.complete(1));
        let t2 = thread::spawn(move || b.complete(2));
        let (w1, w2) = (t1.join().unwrap(), t2.join().unwrap());
        assert!(w1 ^ w2, "exactly one completion must win");
        let v = slot.try_take().unwrap();
        assert_eq!(v, if w1 { 1 } else { 2 });
    });
}

#[test]
fn loom_callback_runs_exactly_once() {
    loom::model(|| {
        let slot = Arc::new(Slot::<u32>::new());
        let runs = Arc::new(AtomicUsize::new(0));
        let s2 = slot.clone();
        let t = thread::spawn(move || {
            s2.complete(5);
        });
        let r = runs.clone();
        slot.on_done(Box::new(move |v| {
            assert_eq!(*v, 5);
            r.fetch_add(1, Ordering::SeqCst);
        }));
        t.join().unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(slot.try_take(), Some(5));
    });
}

#[test]
fn loom_callback_and_blocked_thread_both_served() {
    // Callbacks and parked threads share one waiter list: completing must run the one and
    // unpark the other, whichever registered first.
    loom::model(|| {
        let slot = Arc::new(Slot::<u32>::new());
        let runs = Arc::new(AtomicUsize::new(0));
        let (s2, r2) = (slot.clone(), runs.clone());
        let t = thread::spawn(move || {
            s2.on_done(Box::new(move |v| {
                assert_eq!(*v, 4);
                r2.fetch_add(1, Ordering::SeqCst);
            }));
        });
        let s3 = slot.clone();
        let c = thread::spawn(move || {
            s3.complete(4);
        });
        slot.wait(None);
        t.join().unwrap();
        c.join().unwrap();
        // Taken only now: a callback registered after the value was taken does not run.
        assert_eq!(slot.try_take(), Some(4));
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    });
}

#[test]
fn loom_panicking_callback_still_stores_the_value_and_wakes_the_waiter() {
    // A callback that panics on the completing thread must not keep the value from the
    // waiter, nor stop later callbacks.
    loom::model(|| {
        let slot = Arc::new(Slot::<u32>::new());
        let runs = Arc::new(AtomicUsize::new(0));
        slot.on_done(Box::new(|_| panic!("planned panic: a callback")));
        let r = runs.clone();
        slot.on_done(Box::new(move |_| {
            r.fetch_add(1, Ordering::SeqCst);
        }));
        let s2 = slot.clone();
        let t = thread::spawn(move || {
            assert!(s2.complete(3));
        });
        slot.wait(None);
        t.join().unwrap();
        assert_eq!(slot.try_take(), Some(3));
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    });
}
