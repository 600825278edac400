//! Unit tests of the cancel token and the context (plain threads, no loom).

use std::task::{Wake, Waker};
use std::time::Duration;

use crate::cancel::context::{current_parent, in_token};
use crate::cancel::token::{Parent, Token, WakeCell};
use crate::sync::{AtomicBool, Ordering, WakerArc};

struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: WakerArc<Self>) {
        self.0.store(true, Ordering::Release);
    }
}

#[test]
fn a_parent_cancel_reaches_grandchildren_and_wakes_them() {
    let root = Token::root();
    let grandchild = root.child().child();
    let flag = WakerArc::new(Flag(AtomicBool::new(false)));
    let cell = WakeCell::new();
    cell.set(&Waker::from(flag.clone()));
    grandchild.register(&cell);
    assert!(!grandchild.is_cancelled());
    root.cancel();
    assert!(grandchild.is_cancelled() && !grandchild.cancel_called());
    assert!(flag.0.load(Ordering::Acquire), "the waiter was woken");
    assert!(grandchild.is_below(&root) && !root.is_below(&grandchild));
}

#[test]
fn a_child_cancel_does_not_reach_the_parent() {
    let root = Token::root();
    let child = root.child();
    child.cancel();
    assert!(!root.is_cancelled());
}

#[test]
fn registering_on_a_cancelled_token_wakes_at_once() {
    let t = Token::root();
    t.cancel();
    let flag = WakerArc::new(Flag(AtomicBool::new(false)));
    let cell = WakeCell::new();
    cell.set(&Waker::from(flag.clone()));
    t.register(&cell);
    assert!(flag.0.load(Ordering::Acquire));
}

#[test]
fn dead_waiters_are_pruned() {
    let t = Token::root();
    for _ in 0..1000 {
        let cell = WakeCell::new();
        t.register(&cell);
    }
    // Not a leak of 1000 entries: at most about twice the live ones (none) plus slack.
    assert!(t.waiter_count() <= 16, "{}", t.waiter_count());
}

#[test]
fn the_context_nests_and_restores() {
    assert!(current_parent().is_none());
    let outer = Token::root();
    in_token(&outer, || {
        let Some(Parent::Token(p)) = current_parent() else {
            panic!("inside a token")
        };
        assert!(p.is_below(&outer));
        crate::cancel::shield(|| assert!(current_parent().is_none()));
        outer.cancel();
        assert!(crate::cancel::is_cancelled());
        assert!(crate::cancel::shield(|| !crate::cancel::is_cancelled()));
    });
    assert!(current_parent().is_none() && !crate::cancel::is_cancelled());
}

#[test]
fn shields_are_counted_up_the_chain() {
    let outer = Token::root();
    let inner = outer.child();
    in_token(&inner, || {
        crate::cancel::shield(|| {
            assert_eq!((outer.shields(), inner.shields()), (1, 1));
        });
    });
    assert_eq!((outer.shields(), inner.shields()), (0, 0));
}

#[test]
fn a_blocking_timer_cancels_its_scope() {
    let cs = crate::CancelScope::with_timeout(Duration::from_millis(5));
    let seen = cs.run(|_| {
        let start = std::time::Instant::now();
        while !crate::cancel::is_cancelled() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "the deadline never fired"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        true
    });
    assert!(seen && cs.cancel_called());
}
