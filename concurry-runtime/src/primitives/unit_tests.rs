//! Behaviour of the hand-written primitives: fairness, cancellation after a grant, bounds,
//! close, timeouts on paused time, and the sync/async bridges on every kind of thread. Every
//! wait that could hang on a regression runs under [`within`].

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use super::*;

/// Runs `f` on its own thread and fails the test if it does not finish in 30 s (a hang
/// becomes a failure instead of a stuck suite).
fn within<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(30))
        .expect("hung: did not finish within 30 s")
}

/// Polls once with a no-op waker.
fn poll_once<F: Future>(f: std::pin::Pin<&mut F>) -> Poll<F::Output> {
    f.poll(&mut Context::from_waker(Waker::noop()))
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap()
}

// ---- CapacityLimiter ----

#[test]
fn capacity_freed_token_goes_to_the_oldest_waiter_not_a_newcomer() {
    let l = CapacityLimiter::new(1).unwrap();
    let held = l.try_acquire_on_behalf_of("a").unwrap();
    let mut waiter = pin!(l.acquire_on_behalf_of("b"));
    assert!(poll_once(waiter.as_mut()).is_pending());
    assert_eq!(l.waiting(), 1);
    drop(held);
    // The token is already "b"'s: a newcomer cannot take it.
    assert_eq!(
        l.try_acquire_on_behalf_of("c").unwrap_err(),
        CapacityError::WouldBlock
    );
    assert_eq!(l.borrowers(), vec![Borrower::from("b")]);
    let Poll::Ready(Ok(p)) = poll_once(waiter.as_mut()) else {
        panic!("the waiter was granted the token")
    };
    assert_eq!(p.borrower(), &Borrower::from("b"));
}

#[test]
fn capacity_cancelled_waiter_passes_its_granted_token_on() {
    let l = CapacityLimiter::new(1).unwrap();
    let held = l.try_acquire_on_behalf_of("a").unwrap();
    let mut first = Box::pin(l.acquire_on_behalf_of("b"));
    let mut second = pin!(l.acquire_on_behalf_of("c"));
    assert!(poll_once(first.as_mut()).is_pending());
    assert!(poll_once(second.as_mut()).is_pending());
    drop(held); // granted to "b"
    drop(first); // "b" gives up without collecting: the token must reach "c"
    let Poll::Ready(Ok(p)) = poll_once(second.as_mut()) else {
        panic!("the token was lost with the cancelled waiter")
    };
    assert_eq!(p.borrower(), &Borrower::from("c"));
    assert_eq!(l.borrowed(), 1);
    drop(p);
    assert_eq!((l.borrowed(), l.waiting()), (0, 0));
}

#[test]
fn capacity_cancelled_waiter_leaves_the_line() {
    let l = CapacityLimiter::new(1).unwrap();
    let held = l.try_acquire_on_behalf_of("a").unwrap();
    let mut w = Box::pin(l.acquire_on_behalf_of("b"));
    assert!(poll_once(w.as_mut()).is_pending());
    drop(w);
    assert_eq!(l.waiting(), 0);
    drop(held);
    assert_eq!(l.available(), 1);
    // "b" may acquire again: its abandoned wait left nothing behind.
    assert!(l.try_acquire_on_behalf_of("b").is_ok());
}

#[test]
fn capacity_double_acquire_and_foreign_release_are_errors() {
    let l = CapacityLimiter::new(2).unwrap();
    let _a = l.try_acquire_on_behalf_of("a").unwrap();
    assert_eq!(
        l.try_acquire_on_behalf_of("a").unwrap_err(),
        CapacityError::AlreadyBorrowing("a".into())
    );
    assert_eq!(
        l.acquire_blocking_on_behalf_of("a").unwrap_err(),
        CapacityError::AlreadyBorrowing("a".into())
    );
    assert_eq!(
        l.release_on_behalf_of("nobody").unwrap_err(),
        CapacityError::NotBorrowing("nobody".into())
    );
    // Same thread, default borrower, twice.
    let _mine = l.try_acquire().unwrap();
    assert!(matches!(
        l.try_acquire(),
        Err(CapacityError::AlreadyBorrowing(_))
    ));
}

#[test]
fn capacity_a_waiting_borrower_cannot_queue_twice() {
    let l = CapacityLimiter::new(1).unwrap();
    let _held = l.try_acquire_on_behalf_of("a").unwrap();
    let mut w = pin!(l.acquire_on_behalf_of("b"));
    assert!(poll_once(w.as_mut()).is_pending());
    let mut again = pin!(l.acquire_on_behalf_of("b"));
    assert!(matches!(
        poll_once(again.as_mut()),
        Poll::Ready(Err(CapacityError::AlreadyBorrowing(_)))
    ));
}

#[test]
fn capacity_total_changes_at_run_time() {
    let l = CapacityLimiter::new(1).unwrap();
    let a = l.try_acquire_on_behalf_of(1u64).unwrap();
    let mut w2 = pin!(l.acquire_on_behalf_of(2u64));
    let mut w3 = pin!(l.acquire_on_behalf_of(3u64));
    assert!(poll_once(w2.as_mut()).is_pending());
    assert!(poll_once(w3.as_mut()).is_pending());
    l.set_total(3).unwrap(); // both waiters admitted at once
    let (Poll::Ready(Ok(p2)), Poll::Ready(Ok(p3))) =
        (poll_once(w2.as_mut()), poll_once(w3.as_mut()))
    else {
        panic!("raising the total admits both waiters")
    };
    assert_eq!((l.borrowed(), l.available()), (3, 0));
    drop(a);
    l.set_total(1).unwrap();
    assert_eq!(l.available(), 0); // 2 borrowed, total 1
    drop(p2);
    assert_eq!(l.available(), 0); // 1 borrowed, total 1
    drop(p3);
    assert_eq!(l.available(), 1);
    assert_eq!(
        l.set_total(0).unwrap_err().to_string(),
        "invalid option `total` = 0: a CapacityLimiter needs at least 1 token (a limiter of 0 \
         would block every acquire forever)"
    );
}

#[test]
fn capacity_blocking_waiter_is_woken_by_release() {
    let l = CapacityLimiter::new(1).unwrap();
    let held = l.try_acquire_on_behalf_of("a").unwrap();
    let l2 = l.clone();
    let t = std::thread::spawn(move || l2.acquire_blocking_on_behalf_of("b").map(|p| p.forget()));
    while l.waiting() == 0 {
        std::thread::yield_now();
    }
    drop(held);
    let who = within(move || t.join().unwrap().unwrap());
    assert_eq!(who, Borrower::from("b"));
    l.release_on_behalf_of(who).unwrap();
}

#[test]
fn capacity_blocking_acquire_on_a_runtime_worker_does_not_stall_it() {
    within(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .unwrap();
        rt.block_on(async {
            let l = CapacityLimiter::new(1).unwrap();
            let held = l.try_acquire_on_behalf_of("a").unwrap();
            let releaser = tokio::spawn(async move {
                tokio::task::yield_now().await;
                drop(held);
            });
            // The only worker thread blocks here; the releaser must still run.
            let l2 = l.clone();
            tokio::spawn(async move { l2.acquire_blocking_on_behalf_of("b").map(|_| ()) })
                .await
                .unwrap()
                .unwrap();
            releaser.await.unwrap();
        });
    });
}

#[test]
fn capacity_current_task_is_the_default_borrower() {
    rt().block_on(async {
        let l = CapacityLimiter::new(2).unwrap();
        let l2 = l.clone();
        let p = l.acquire().await.unwrap();
        // Another task is another borrower.
        let other = tokio::spawn(async move { l2.acquire().await.map(|p| p.forget()) })
            .await
            .unwrap()
            .unwrap();
        assert_ne!(&other, p.borrower());
        assert!(l.acquire().await.is_err());
    });
}

// ---- Latch ----

#[test]
fn latch_releases_async_and_blocking_waiters() {
    let latch = Latch::new(2);
    let l2 = latch.clone();
    let blocked = std::thread::spawn(move || l2.wait_blocking());
    let mut w = pin!(latch.wait());
    assert!(poll_once(w.as_mut()).is_pending());
    latch.count_down();
    assert!(poll_once(w.as_mut()).is_pending());
    latch.count_down();
    assert!(poll_once(w.as_mut()).is_ready());
    within(move || blocked.join().unwrap());
    latch.count_down(); // saturates
    assert_eq!(latch.count(), 0);
}

#[test]
fn latch_cancelled_wait_leaves_no_waker() {
    let latch = Latch::new(1);
    let mut w = Box::pin(latch.wait());
    assert!(poll_once(w.as_mut()).is_pending());
    drop(w);
    assert_eq!(latch.registered_wakers(), 0);
}

#[test]
fn latch_wait_timeout_on_paused_time() {
    rt().block_on(async {
        let latch = Latch::new(1);
        let start = tokio::time::Instant::now();
        assert!(!latch.wait_timeout(Duration::from_secs(60)).await);
        assert!(start.elapsed() >= Duration::from_secs(60));
        let l2 = latch.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            l2.count_down();
        });
        assert!(latch.wait_timeout(Duration::from_secs(60)).await);
    });
}

#[test]
fn latch_blocking_timeout_is_bounded() {
    let latch = Latch::new(1);
    // Generous bounds: only a gross error (returning at once, or never) fails.
    assert!(within(
        move || !latch.wait_blocking_timeout(Duration::from_millis(20))
    ));
}

// ---- Queues ----

#[test]
fn queue_orders() {
    let q = Queue::unbounded();
    let l = LifoQueue::unbounded();
    for i in 0..4 {
        q.try_put(i).unwrap();
        l.try_put(i).unwrap();
    }
    let fifo: Vec<_> = std::iter::from_fn(|| q.try_get().ok()).collect();
    let lifo: Vec<_> = std::iter::from_fn(|| l.try_get().ok()).collect();
    assert_eq!((fifo, lifo), (vec![0, 1, 2, 3], vec![3, 2, 1, 0]));

    let p = PriorityQueue::unbounded();
    for (item, prio) in [
        ("b1", 2),
        ("a1", 1),
        ("b2", 2),
        ("c", 3),
        ("a2", 1),
        ("b3", 2),
    ] {
        p.try_put(item, prio).unwrap();
    }
    let got: Vec<_> = std::iter::from_fn(|| p.try_get().ok()).collect();
    assert_eq!(got, vec!["a1", "a2", "b1", "b2", "b3", "c"]);
}

#[test]
fn queue_freed_slot_goes_to_the_waiting_putter() {
    let q = Queue::bounded(1).unwrap();
    q.try_put(0).unwrap();
    let mut waiting = pin!(q.put(1));
    assert!(poll_once(waiting.as_mut()).is_pending());
    assert_eq!(q.try_get(), Ok(0));
    // The freed slot is promised to the waiting putter.
    assert_eq!(q.try_put(2), Err(TryPutError::Full(2)));
    assert!(matches!(poll_once(waiting.as_mut()), Poll::Ready(Ok(()))));
    assert_eq!(q.try_get(), Ok(1));
}

#[test]
fn queue_cancelled_put_after_grant_does_not_put_and_passes_the_slot_on() {
    let q = Queue::bounded(1).unwrap();
    q.try_put(0).unwrap();
    let mut a = Box::pin(q.put(1));
    let mut b = pin!(q.put(2));
    assert!(poll_once(a.as_mut()).is_pending());
    assert!(poll_once(b.as_mut()).is_pending());
    assert_eq!(q.try_get(), Ok(0)); // slot granted to `a`
    drop(a); // cancelled: 1 is not put, and the slot goes to `b`
    assert!(matches!(poll_once(b.as_mut()), Poll::Ready(Ok(()))));
    assert_eq!(q.try_get(), Ok(2));
    assert_eq!(q.try_get(), Err(TryGetError::Empty));
}

#[test]
fn queue_cancelled_get_after_grant_leaves_the_item_for_the_next_getter() {
    let q: Queue<u8> = Queue::bounded(4).unwrap();
    let mut a = Box::pin(q.get());
    let mut b = pin!(q.get());
    assert!(poll_once(a.as_mut()).is_pending());
    assert!(poll_once(b.as_mut()).is_pending());
    q.try_put(7).unwrap(); // granted to `a`
    drop(a);
    assert_eq!(poll_once(b.as_mut()), Poll::Ready(Some(7)));
}

#[test]
fn queue_close_fails_waiting_putters_with_their_item_and_ends_getters() {
    let q = Queue::bounded(1).unwrap();
    q.try_put(1).unwrap();
    let mut put = pin!(q.put(2));
    assert!(poll_once(put.as_mut()).is_pending());
    let q2 = q.clone();
    let blocked_put = std::thread::spawn(move || q2.put_blocking(3));
    q.close();
    assert_eq!(poll_once(put.as_mut()), Poll::Ready(Err(Closed(2))));
    assert_eq!(within(move || blocked_put.join().unwrap()), Err(Closed(3)));
    assert_eq!(q.get_blocking(), Some(1)); // drained first
    assert_eq!(q.get_blocking(), None);
    let e: Queue<u8> = Queue::unbounded();
    let e2 = e.clone();
    let blocked_get = std::thread::spawn(move || e2.get_blocking());
    e.close();
    assert_eq!(within(move || blocked_get.join().unwrap()), None);
}

#[test]
fn queue_task_done_and_join() {
    let q = PriorityQueue::bounded(2).unwrap();
    q.try_put('a', 0).unwrap();
    q.try_put('b', 0).unwrap();
    let mut join = pin!(q.join());
    assert!(poll_once(join.as_mut()).is_pending());
    q.try_get().unwrap();
    q.task_done().unwrap();
    assert!(poll_once(join.as_mut()).is_pending());
    let q2 = q.clone();
    let joiner = std::thread::spawn(move || q2.join_blocking());
    q.try_get().unwrap();
    q.task_done().unwrap();
    assert!(poll_once(join.as_mut()).is_ready());
    within(move || joiner.join().unwrap());
    assert_eq!(q.task_done(), Err(TaskDoneError));
}

#[test]
fn queue_blocking_timeouts_are_bounded() {
    let q = LifoQueue::bounded(1).unwrap();
    q.put_blocking(1).unwrap();
    let q2 = q.clone();
    assert_eq!(
        within(move || q2.put_blocking_timeout(2, Duration::from_millis(20))),
        Err(TryPutError::Full(2))
    );
    assert_eq!(q.get_blocking_timeout(Duration::from_millis(20)), Ok(1));
    assert_eq!(
        within(move || q.get_blocking_timeout(Duration::from_millis(20))),
        Err(TryGetError::Empty)
    );
}

#[test]
fn queue_bad_bound_is_a_config_error() {
    assert_eq!(
        Queue::<u8>::bounded(0).unwrap_err().to_string(),
        "invalid option `maxsize` = 0: a bounded Queue holds at least 1 item; for no bound use \
         `Queue::unbounded()`"
    );
}

// ---- map_async / gather_limited ----

#[test]
fn gather_limit_zero_is_an_error_not_a_hang() {
    let r = within(|| crate::runtime::block_on(map_async(|x: u8| async move { x }, [1, 2], 0)));
    assert_eq!(r.unwrap_err().option(), "limit");
}

#[test]
fn gather_limited_runs_at_most_limit_at_once() {
    rt().block_on(async {
        let latch = Latch::new(1);
        let started = std::sync::atomic::AtomicUsize::new(0);
        let fut = gather_limited(
            (0..6).map(|i| {
                let (latch, started) = (&latch, &started);
                async move {
                    started.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    latch.wait().await;
                    i
                }
            }),
            2,
        );
        let mut fut = pin!(fut);
        assert!(
            std::future::poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx)))
                .await
                .is_pending()
        );
        assert_eq!(started.load(std::sync::atomic::Ordering::SeqCst), 2);
        latch.count_down();
        assert_eq!(fut.await.unwrap(), vec![0, 1, 2, 3, 4, 5]);
    });
}

// ---- run_sync / to_thread ----

#[test]
fn run_sync_works_on_every_kind_of_thread() {
    within(|| {
        let job = || async {
            tokio::time::sleep(Duration::from_millis(1)).await;
            to_thread(|| 5).await.unwrap()
        };
        assert_eq!(run_sync(job()), 5);
        // On the one worker of a multi-thread runtime, inside a task.
        let mt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let v =
            mt.block_on(async move { tokio::spawn(async move { run_sync(job()) }).await.unwrap() });
        assert_eq!(v, 5);
        // Inside a current-thread runtime's `block_on` and one of its tasks.
        let ct = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        assert_eq!(ct.block_on(async move { run_sync(job()) }), 5);
        let v = ct.block_on(async move { tokio::spawn(async move { run_sync(job()) }).await });
        assert_eq!(v.unwrap(), 5);
        // Nested inside a current-thread runtime, with a blocking wait inside (tokio forbids
        // `block_in_place` there: this must not panic).
        let v = ct.block_on(async move {
            run_sync(async move {
                let latch = Latch::new(1);
                latch.count_down();
                latch.wait_blocking();
                run_sync(job()) + 1
            })
        });
        assert_eq!(v, 6);
        // Nested.
        assert_eq!(run_sync(async move { run_sync(job()) + 1 }), 6);
    });
}

#[test]
fn to_thread_outside_any_runtime_and_its_panic() {
    let v = within(|| crate::runtime::block_on(to_thread(|| 3)));
    assert_eq!(v.unwrap(), 3);
    let e = within(|| crate::runtime::block_on(to_thread(|| -> u8 { panic!("bad") })));
    assert!(matches!(e, Err(crate::Error::Panicked { message }) if message == "bad"));
}

// ---- streams ----

#[test]
fn throttle_spaces_items_on_paused_time() {
    use futures_util::StreamExt;
    rt().block_on(async {
        let s = throttle_stream(futures_util::stream::iter(0..11), 5.0).unwrap();
        let mut s = pin!(s);
        let start = tokio::time::Instant::now();
        let mut stamps = Vec::new();
        while s.next().await.is_some() {
            stamps.push(start.elapsed());
        }
        // 11 items at 5 a second: 10 gaps of 200 ms.
        assert_eq!(stamps.len(), 11);
        assert!(stamps[10] >= Duration::from_secs(2));
        assert!(
            stamps
                .windows(2)
                .all(|w| w[1] - w[0] >= Duration::from_millis(199))
        );
        assert!(throttle_stream(futures_util::stream::iter(0..1), f64::NAN).is_err());
    });
}

#[test]
fn batch_cuts_on_time_too() {
    use futures_util::StreamExt;
    rt().block_on(async {
        let slow = futures_util::stream::iter(0..5).then(|i| async move {
            if i == 2 {
                tokio::time::sleep(Duration::from_secs(10)).await;
            }
            i
        });
        let batches: Vec<Vec<i32>> = batch_stream(slow, 4, Duration::from_secs(1))
            .unwrap()
            .collect()
            .await;
        assert_eq!(batches, vec![vec![0, 1], vec![2, 3, 4]]);
    });
}

#[test]
fn timed_streams_polled_outside_any_runtime_do_not_panic() {
    use futures_util::{Stream, StreamExt};
    let batches = within(|| {
        // Polled by hand, from a thread in no runtime (as another executor would).
        let slow = futures_util::stream::iter(0..3).then(|i| async move { i });
        let s = batch_stream(slow, 2, Duration::from_millis(1)).unwrap();
        let t = throttle_stream(s, 1000.0).unwrap();
        let mut t = pin!(t);
        let mut out = Vec::new();
        loop {
            match t
                .as_mut()
                .poll_next(&mut Context::from_waker(Waker::noop()))
            {
                Poll::Ready(Some(b)) => out.push(b),
                Poll::Ready(None) => break out,
                Poll::Pending => std::thread::yield_now(),
            }
        }
    });
    assert_eq!(batches, vec![vec![0, 1], vec![2]]);
}

#[test]
fn buffer_prefetches_ahead_of_the_consumer() {
    use futures_util::StreamExt;
    rt().block_on(async {
        let pulled = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let p2 = pulled.clone();
        let src = futures_util::stream::iter(0..100).inspect(move |_| {
            p2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        });
        let mut b = buffer_stream(src, 8).unwrap();
        assert_eq!(b.next().await, Some(0));
        // While the consumer did nothing, the pump filled the buffer.
        tokio::time::sleep(Duration::from_millis(10)).await;
        let n = pulled.load(std::sync::atomic::Ordering::SeqCst);
        assert!((8..=10).contains(&n), "pulled {n}");
        let rest: Vec<_> = b.collect().await;
        assert_eq!(rest, (1..100).collect::<Vec<_>>());
    });
}

// ---- Send + Sync ----

fn is_send<T: Send>(_: &T) {}
fn is_sync<T: Sync>(_: &T) {}

#[test]
fn handles_and_futures_are_send_and_sync() {
    let l = CapacityLimiter::new(1).unwrap();
    let latch = Latch::new(1);
    let q = Queue::<String>::unbounded();
    let lq = LifoQueue::<String>::unbounded();
    let pq = PriorityQueue::<String>::unbounded();
    is_sync(&l);
    is_sync(&latch);
    is_sync(&q);
    is_sync(&lq);
    is_sync(&pq);
    is_send(&l.acquire());
    is_send(&l.try_acquire().unwrap());
    is_send(&latch.wait());
    is_send(&latch.wait_timeout(Duration::from_secs(1)));
    is_send(&q.put(String::new()));
    is_send(&q.get());
    is_send(&q.join());
    is_send(&pq.put(String::new(), 1));
    is_send(&map_async(|x: u8| async move { x }, [1u8], 1));
    is_send(&to_thread(|| 1));
}
