//! Loom models of the cancel token: a cancel racing a waiter's registration is never
//! missed (the waiter either sees the flag or is woken), and exactly one cancel wins.

use std::task::{Wake, Waker};

use crate::cancel::token::{Token, WakeCell};
use crate::sync::{Arc, AtomicBool, Ordering, WakerArc, thread};

struct Flag(Arc<AtomicBool>);

impl Wake for Flag {
    fn wake(self: WakerArc<Self>) {
        self.0.store(true, Ordering::Release);
    }
}

#[test]
fn loom_cancel_racing_register_is_never_missed() {
    loom::model(|| {
        let parent = Token::root();
        let child = parent.child();
        let woken = Arc::new(AtomicBool::new(false));
        let p2 = parent.clone();
        let t = thread::spawn(move || assert!(p2.cancel()));
        let cell = WakeCell::new();
        cell.set(&Waker::from(WakerArc::new(Flag(woken.clone()))));
        child.register(&cell);
        let seen = child.is_cancelled();
        t.join().unwrap();
        assert!(child.is_cancelled(), "level-triggered: the cancel stays");
        assert!(
            seen || woken.load(Ordering::Acquire),
            "a waiter that missed the flag must have been woken"
        );
    });
}

#[test]
fn loom_concurrent_cancels_one_wins() {
    loom::model(|| {
        let t = Token::root();
        let (a, b) = (t.clone(), t.clone());
        let t1 = thread::spawn(move || a.cancel());
        let t2 = thread::spawn(move || b.cancel());
        let (w1, w2) = (t1.join().unwrap(), t2.join().unwrap());
        assert!(w1 ^ w2, "exactly one cancel must set the flag");
        assert!(t.cancel_called());
    });
}
