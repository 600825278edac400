//! Loom models of the queue's handoff at its bound: blocked putters and getters are served
//! without loss or duplication, an async put cancelled around its grant either happened or
//! left no trace, and `close` releases a blocked putter with its item.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use crate::primitives::{Closed, Queue};
use crate::sync::thread;

#[test]
fn loom_queue_producer_and_consumer_at_bound_one() {
    loom::model(|| {
        let q = Queue::bounded(1).unwrap();
        let q2 = q.clone();
        let producer = thread::spawn(move || {
            q2.put_blocking(1).unwrap();
            q2.put_blocking(2).unwrap();
        });
        let got = [q.get_blocking(), q.get_blocking()];
        producer.join().unwrap();
        assert_eq!(got, [Some(1), Some(2)]);
        assert!(q.is_empty());
    });
}

#[test]
fn loom_queue_two_producers_nothing_lost_or_duplicated() {
    loom::model(|| {
        let q = Queue::bounded(1).unwrap();
        let ts: Vec<_> = [1, 2]
            .into_iter()
            .map(|i| {
                let q = q.clone();
                thread::spawn(move || q.put_blocking(i).unwrap())
            })
            .collect();
        let mut got = vec![q.get_blocking().unwrap(), q.get_blocking().unwrap()];
        for t in ts {
            t.join().unwrap();
        }
        got.sort();
        assert_eq!(got, vec![1, 2]);
        assert_eq!(q.try_get(), Err(crate::primitives::TryGetError::Empty));
    });
}

#[test]
fn loom_queue_cancelled_put_happened_or_left_no_trace() {
    loom::model(|| {
        let q = Queue::bounded(1).unwrap();
        q.try_put(0).unwrap();
        let q2 = q.clone();
        let t = thread::spawn(move || {
            let mut f = pin!(q2.put(1));
            let r = f.as_mut().poll(&mut Context::from_waker(Waker::noop()));
            matches!(r, Poll::Ready(Ok(())))
        });
        assert_eq!(q.get_blocking(), Some(0));
        let put = t.join().unwrap();
        // The put counts only if it said so; either way the slot is not lost.
        assert_eq!(q.len(), usize::from(put));
        if put {
            assert_eq!(q.try_get(), Ok(1));
        }
        assert!(q.try_put(2).is_ok());
    });
}

#[test]
fn loom_queue_close_releases_a_blocked_putter() {
    loom::model(|| {
        let q = Queue::bounded(1).unwrap();
        q.try_put(0).unwrap();
        let q2 = q.clone();
        let t = thread::spawn(move || q2.put_blocking(1));
        q.close();
        assert_eq!(t.join().unwrap(), Err(Closed(1)));
        assert_eq!(q.get_blocking(), Some(0));
        assert_eq!(q.get_blocking(), None);
    });
}
