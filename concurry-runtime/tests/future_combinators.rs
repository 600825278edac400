//! `wrap` and the combinators over many promises, blocking and async.
//!
//! No test sleeps to prove timing: promises are completed by hand, in a chosen order, and
//! timeouts are either tiny (the wait must give up) or generous (they only catch hangs).
#![allow(missing_docs)]

use std::time::Duration;

use concurry_runtime::{
    Completer, Error, Promise, ReturnWhen, as_completed, first_success, gather, race, wait,
    wait_async, wrap, wrap_future, wrap_try_future,
};
use futures_util::{FutureExt, StreamExt};

/// Polls `wait` once so it registers with every promise: from then on it sees completions in
/// the order they happen (promises already resolved before that come in input order).
fn prime<F: std::future::Future + Unpin>(wait: &mut F) {
    assert!(wait.now_or_never().is_none(), "nothing was resolved yet");
}

/// Long enough never to fire in a passing test; only turns a hang into a failure.
const HANG: Duration = Duration::from_secs(30);
/// Short: the wait is expected to give up.
const SHORT: Duration = Duration::from_millis(20);

fn pending<T>(n: usize) -> (Vec<Promise<T>>, Vec<Completer<T>>) {
    (0..n).map(|_| Promise::pending()).unzip()
}

/// Completes `completers` from another thread in the order of `order`.
fn complete_in_order(completers: Vec<Completer<u32>>, order: &[usize]) {
    let mut slots: Vec<_> = completers.into_iter().map(Some).collect();
    let ordered: Vec<_> = order
        .iter()
        .map(|&i| (i, slots[i].take().unwrap()))
        .collect();
    std::thread::spawn(move || {
        for (i, c) in ordered {
            c.complete(Ok(i as u32));
        }
    });
}

// ---- gather ----

#[test]
fn gather_keeps_input_order_whatever_the_completion_order() {
    let (ps, cs) = pending(4);
    complete_in_order(cs, &[3, 1, 0, 2]);
    assert_eq!(gather(ps).timeout(HANG).wait().unwrap(), vec![0, 1, 2, 3]);
}

#[test]
fn gather_of_nothing_is_empty() {
    assert_eq!(
        gather(Vec::<Promise<u8>>::new()).wait().unwrap(),
        Vec::<u8>::new()
    );
    assert!(
        gather(Vec::<Promise<u8>>::new())
            .settled()
            .wait()
            .is_empty()
    );
}

#[test]
fn gather_first_error_wins_and_leaves_the_others_running() {
    let (ps, mut cs) = pending::<u32>(3);
    let last = cs.pop().unwrap();
    let middle = cs.pop().unwrap();
    middle.complete(Err(Error::Stopped));
    let out = gather(ps).timeout(HANG).wait();
    assert!(matches!(out, Err(Error::Stopped)), "{out:?}");
    // Not cancelled: the call goes on, its result is just not wanted.
    assert!(!last.is_cancelled());
    assert!(!cs[0].is_cancelled());
}

#[tokio::test]
async fn gather_first_error_in_completion_order() {
    let (ps, mut cs) = pending::<u32>(2);
    let mut g = gather(ps);
    prime(&mut g);
    cs.pop().unwrap().complete(Err(Error::Timeout));
    cs.pop().unwrap().complete(Err(Error::Stopped));
    assert!(matches!(g.await, Err(Error::Timeout)));
}

#[test]
fn already_resolved_errors_count_in_input_order() {
    let ps = [Err(Error::Stopped), Err(Error::Timeout)].map(Promise::<u8>::ready);
    assert!(matches!(gather(ps).wait(), Err(Error::Stopped)));
}

#[test]
fn settled_keeps_every_outcome() {
    let ps = vec![
        Promise::<u32>::ready(Err(Error::Stopped)),
        Promise::ready(Ok(1)),
        Promise::ready(Err(Error::Panicked {
            message: "boom".into(),
        })),
    ];
    let out = gather(ps).settled().timeout(HANG).wait();
    assert!(matches!(
        &out[..],
        [Err(Error::Stopped), Ok(1), Err(Error::Panicked { message })] if message == "boom"
    ));
}

#[test]
fn gather_timeout_returns_promptly() {
    let (ps, _cs) = pending::<u32>(2);
    assert!(matches!(
        gather(ps).timeout(SHORT).wait(),
        Err(Error::Timeout)
    ));
}

#[test]
fn settled_timeout_marks_only_the_unfinished() {
    let (mut ps, _cs) = pending::<u32>(1);
    ps.push(Promise::ready(Ok(5)));
    let out = gather(ps).settled().timeout(SHORT).wait();
    assert!(matches!(out[..], [Err(Error::Timeout), Ok(5)]), "{out:?}");
}

#[test]
fn gather_takes_any_into_promise() {
    let handles = (0..3).map(|i| std::thread::spawn(move || i * 2));
    assert_eq!(gather(handles).timeout(HANG).wait().unwrap(), vec![0, 2, 4]);
}

#[tokio::test]
async fn gather_async_keeps_order() {
    let (ps, cs) = pending(3);
    complete_in_order(cs, &[2, 0, 1]);
    assert_eq!(gather(ps).timeout(HANG).await.unwrap(), vec![0, 1, 2]);
}

#[tokio::test]
async fn settled_async_keeps_every_error() {
    let (ps, mut cs) = pending::<u32>(2);
    cs.pop().unwrap().complete(Err(Error::Cancelled));
    drop(cs); // a dropped completer resolves with Stopped
    let out = gather(ps).settled().await;
    assert!(matches!(
        out[..],
        [Err(Error::Stopped), Err(Error::Cancelled)]
    ));
}

#[tokio::test(start_paused = true)]
async fn gather_async_timeout_on_paused_time() {
    let (ps, _cs) = pending::<u32>(2);
    let out = gather(ps).timeout(Duration::from_secs(3600)).await;
    assert!(matches!(out, Err(Error::Timeout)));
}

// ---- wait ----

#[test]
fn wait_all_completed() {
    let (ps, cs) = pending(3);
    complete_in_order(cs, &[1, 2, 0]);
    let (done, not_done) = wait(ps, ReturnWhen::AllCompleted, Some(HANG));
    assert!(not_done.is_empty());
    let mut values: Vec<u32> = done.into_iter().map(|p| p.result().unwrap()).collect();
    values.sort_unstable();
    assert_eq!(values, [0, 1, 2]);
}

#[tokio::test]
async fn wait_done_is_in_completion_order() {
    let (ps, cs) = pending::<u32>(3);
    let mut w = wait_async(ps, ReturnWhen::AllCompleted, Some(HANG));
    prime(&mut w);
    complete_in_order(cs, &[1, 2, 0]);
    let (done, _) = w.await;
    let values: Vec<u32> = done.into_iter().map(|p| p.result().unwrap()).collect();
    assert_eq!(values, [1, 2, 0]);
}

#[test]
fn wait_first_completed() {
    let (ps, mut cs) = pending::<u32>(3);
    cs.remove(1).complete(Ok(7));
    let (done, not_done) = wait(ps, ReturnWhen::FirstCompleted, Some(HANG));
    assert_eq!((done.len(), not_done.len()), (1, 2));
    assert!(done.iter().all(Promise::is_done));
    assert!(not_done.iter().all(|p| !p.is_done()));
    assert_eq!(done.into_iter().next().unwrap().result().unwrap(), 7);

    // The leftovers go into the next wait, which sees the next completion.
    cs.remove(1).complete(Ok(8));
    let (done, not_done) = wait(not_done, ReturnWhen::FirstCompleted, Some(HANG));
    assert_eq!((done.len(), not_done.len()), (1, 1));
    assert_eq!(done.into_iter().next().unwrap().result().unwrap(), 8);
    cs.remove(0).complete(Ok(9));
    assert_eq!(not_done.into_iter().next().unwrap().result().unwrap(), 9);
}

#[test]
fn wait_first_completed_reports_every_promise_already_done() {
    let ps = vec![Promise::<u32>::ready(Ok(1)), Promise::ready(Ok(2))];
    let (done, not_done) = wait(ps, ReturnWhen::FirstCompleted, None);
    assert_eq!((done.len(), not_done.len()), (2, 0));
}

#[test]
fn wait_first_error_stops_at_an_error() {
    let (mut ps, _cs) = pending::<u32>(1);
    ps.push(Promise::ready(Ok(1)));
    ps.push(Promise::ready(Err(Error::Stopped)));
    let (done, not_done) = wait(ps, ReturnWhen::FirstError, Some(HANG));
    assert_eq!((done.len(), not_done.len()), (2, 1));
}

#[test]
fn wait_first_error_without_errors_waits_for_all() {
    let (ps, cs) = pending(2);
    complete_in_order(cs, &[0, 1]);
    let (done, not_done) = wait(ps, ReturnWhen::FirstError, Some(HANG));
    assert_eq!((done.len(), not_done.len()), (2, 0));
}

#[test]
fn wait_timeout_returns_the_unfinished_in_not_done() {
    let (mut ps, cs) = pending::<u32>(2);
    ps.insert(1, Promise::ready(Ok(3)));
    let (done, not_done) = wait(ps, ReturnWhen::AllCompleted, Some(SHORT));
    assert_eq!((done.len(), not_done.len()), (1, 2));
    // The unfinished promises are untouched and still resolve.
    for (c, v) in cs.into_iter().zip([10, 11]) {
        c.complete(Ok(v));
    }
    let values: Vec<u32> = not_done.into_iter().map(|p| p.result().unwrap()).collect();
    assert_eq!(values, [10, 11], "not_done keeps input order");
}

#[test]
fn wait_with_a_zero_timeout_only_looks() {
    let (mut ps, _cs) = pending::<u32>(1);
    ps.push(Promise::ready(Ok(1)));
    let (done, not_done) = wait(ps, ReturnWhen::AllCompleted, Some(Duration::ZERO));
    assert_eq!((done.len(), not_done.len()), (1, 1));
}

#[test]
fn wait_of_nothing() {
    let (done, not_done) = wait(Vec::<Promise<u8>>::new(), ReturnWhen::FirstCompleted, None);
    assert!(done.is_empty() && not_done.is_empty());
}

#[tokio::test]
async fn wait_async_modes() {
    let (ps, mut cs) = pending::<u32>(2);
    let first = cs.remove(0);
    std::thread::spawn(move || first.complete(Ok(1)));
    let (done, not_done) = wait_async(ps, ReturnWhen::FirstCompleted, Some(HANG)).await;
    assert_eq!((done.len(), not_done.len()), (1, 1));
    cs.remove(0).complete(Err(Error::Stopped));
    let (done, not_done) = wait_async(not_done, ReturnWhen::FirstError, Some(HANG)).await;
    assert_eq!((done.len(), not_done.len()), (1, 0));
    assert!(matches!(
        done.into_iter().next().unwrap().await,
        Err(Error::Stopped)
    ));
}

#[tokio::test(start_paused = true)]
async fn wait_async_timeout_on_paused_time() {
    let (ps, _cs) = pending::<u32>(2);
    let (done, not_done) =
        wait_async(ps, ReturnWhen::AllCompleted, Some(Duration::from_secs(60))).await;
    assert_eq!((done.len(), not_done.len()), (0, 2));
}

// ---- as_completed ----

#[test]
fn as_completed_follows_completion_order() {
    let (mut ps, cs) = pending(4);
    // A resolved promise last: the first `next` registers with every other on its way to it.
    ps.push(Promise::ready(Ok(99)));
    let mut results = as_completed(ps).timeout(HANG);
    assert_eq!(results.next().unwrap().unwrap(), 99);
    complete_in_order(cs, &[2, 0, 3, 1]);
    let order: Vec<u32> = results.map(|r| r.unwrap()).collect();
    assert_eq!(order, [2, 0, 3, 1]);
}

#[test]
fn as_completed_yields_errors_in_place() {
    let (ps, mut cs) = pending::<u32>(2);
    let mut results = as_completed(ps);
    cs.remove(1).complete(Err(Error::Cancelled));
    assert!(matches!(results.next(), Some(Err(Error::Cancelled))));
    cs.remove(0).complete(Ok(4));
    assert!(matches!(results.next(), Some(Ok(4))));
    assert!(results.next().is_none());
    assert!(results.next().is_none());
}

#[test]
fn as_completed_timeout_ends_with_one_timeout() {
    let (mut ps, _cs) = pending::<u32>(1);
    ps.push(Promise::ready(Ok(1)));
    let all: Vec<_> = as_completed(ps).timeout(SHORT).collect();
    assert!(matches!(all[..], [Ok(1), Err(Error::Timeout)]), "{all:?}");
}

#[test]
fn as_completed_of_nothing_is_empty() {
    assert_eq!(as_completed(Vec::<Promise<u8>>::new()).count(), 0);
}

#[tokio::test]
async fn as_completed_stream_follows_completion_order() {
    let (ps, cs) = pending(3);
    let mut results = as_completed(ps).timeout(HANG).into_stream();
    prime(&mut results.next());
    complete_in_order(cs, &[1, 2, 0]);
    let order: Vec<u32> = results.map(|r| r.unwrap()).collect().await;
    assert_eq!(order, [1, 2, 0]);
}

#[tokio::test(start_paused = true)]
async fn as_completed_stream_timeout_on_paused_time() {
    let (ps, _cs) = pending::<u32>(1);
    let all: Vec<_> = as_completed(ps)
        .timeout(Duration::from_secs(60))
        .into_stream()
        .collect()
        .await;
    assert!(matches!(all[..], [Err(Error::Timeout)]));
}

// ---- race and first_success ----

#[test]
fn race_returns_the_first_and_cancels_the_losers() {
    let (ps, mut cs) = pending::<u32>(3);
    let winner = cs.remove(1);
    std::thread::spawn(move || winner.complete(Ok(42)));
    assert_eq!(race(ps).timeout(HANG).wait().unwrap(), 42);
    assert!(cs.iter().all(Completer::is_cancelled));
}

#[test]
fn race_an_error_can_win() {
    let (mut ps, cs) = pending::<u32>(1);
    ps.push(Promise::ready(Err(Error::Stopped)));
    assert!(matches!(race(ps).wait(), Err(Error::Stopped)));
    assert!(cs[0].is_cancelled());
}

#[test]
fn race_timeout_cancels_everyone() {
    let (ps, cs) = pending::<u32>(2);
    assert!(matches!(
        race(ps).timeout(SHORT).wait(),
        Err(Error::Timeout)
    ));
    assert!(cs.iter().all(Completer::is_cancelled));
}

#[test]
fn race_of_nothing_is_cancelled() {
    assert!(matches!(
        race(Vec::<Promise<u8>>::new()).wait(),
        Err(Error::Cancelled)
    ));
}

#[test]
fn first_success_skips_failures_and_cancels_the_rest() {
    let (ps, mut cs) = pending::<u32>(4);
    let fail_a = cs.remove(0);
    let fail_b = cs.remove(0);
    let win = cs.remove(0);
    std::thread::spawn(move || {
        fail_a.complete(Err(Error::Stopped));
        fail_b.complete(Err(Error::Panicked {
            message: "x".into(),
        }));
        win.complete(Ok(3));
    });
    assert_eq!(first_success(ps).timeout(HANG).wait().unwrap(), 3);
    assert!(cs[0].is_cancelled());
}

#[test]
fn first_success_all_failed_gives_the_last_error() {
    let (ps, mut cs) = pending::<u32>(2);
    let mut f = first_success(ps);
    prime(&mut f);
    cs.pop().unwrap().complete(Err(Error::Stopped));
    cs.pop().unwrap().complete(Err(Error::Timeout));
    assert!(matches!(f.wait(), Err(Error::Timeout)));
}

#[test]
fn first_success_of_nothing_is_cancelled() {
    assert!(matches!(
        first_success(Vec::<Promise<u8>>::new()).wait(),
        Err(Error::Cancelled)
    ));
}

#[tokio::test]
async fn race_and_first_success_async() {
    let (ps, mut cs) = pending::<u32>(2);
    let winner = cs.remove(0);
    std::thread::spawn(move || winner.complete(Ok(1)));
    assert_eq!(race(ps).timeout(HANG).await.unwrap(), 1);
    assert!(cs[0].is_cancelled());

    let (mut ps, cs) = pending::<u32>(1);
    ps.insert(0, Promise::ready(Err(Error::Stopped)));
    ps.push(wrap_future(async { 2 }));
    assert_eq!(first_success(ps).timeout(HANG).await.unwrap(), 2);
    assert!(cs[0].is_cancelled());
}

#[tokio::test(start_paused = true)]
async fn race_async_timeout_on_paused_time() {
    let (ps, cs) = pending::<u32>(1);
    let out = race(ps).timeout(Duration::from_secs(60)).await;
    assert!(matches!(out, Err(Error::Timeout)));
    assert!(cs[0].is_cancelled());
}

// ---- wrap ----

#[test]
fn wrap_future_runs_on_the_library_runtime() {
    assert_eq!(wrap_future(async { 5 }).result_timeout(HANG).unwrap(), 5);
}

#[test]
fn wrap_future_panic_is_panicked() {
    let p = wrap_future(async { panic!("in a future") });
    let r: Result<(), _> = p.result_timeout(HANG);
    assert!(matches!(r, Err(Error::Panicked { message }) if message == "in a future"));
}

#[test]
fn wrap_try_future_keeps_the_error_typed() {
    let p = wrap_try_future(async { Err::<u8, _>("nope") });
    assert!(matches!(p.result_timeout(HANG), Err(Error::Method("nope"))));
    let p = wrap_try_future(async { Ok::<_, String>(1) });
    assert_eq!(p.result_timeout(HANG).unwrap(), 1);
}

#[test]
fn wrap_cancel_drops_the_future() {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let p = wrap_future(async move {
        let _tx = tx; // dropped when the task is aborted
        std::future::pending::<()>().await
    });
    assert!(p.cancel());
    // The receiver sees the sender go away once the task is aborted.
    let closed = wrap(rx).result_timeout(HANG);
    assert!(matches!(closed, Err(Error::Stopped)));
}

#[test]
fn wrap_std_thread() {
    assert_eq!(
        wrap(std::thread::spawn(|| "done"))
            .result_timeout(HANG)
            .unwrap(),
        "done"
    );
}

#[test]
fn wrap_panicking_std_thread_is_panicked_with_its_message() {
    let h = std::thread::spawn(|| -> u8 { panic!("thread {} failed", 7) });
    let r = wrap(h).result_timeout(HANG);
    assert!(matches!(r, Err(Error::Panicked { message }) if message == "thread 7 failed"));
}

#[test]
fn wrap_oneshot() {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let p = wrap(rx);
    tx.send(9u8).unwrap();
    assert_eq!(p.result_timeout(HANG).unwrap(), 9);
}

#[test]
fn wrap_oneshot_dropped_sender_is_stopped() {
    let (tx, rx) = tokio::sync::oneshot::channel::<u8>();
    drop(tx);
    assert!(matches!(wrap(rx).result_timeout(HANG), Err(Error::Stopped)));
}

#[test]
fn wrap_promise_is_itself() {
    let (p, c) = Promise::<u8, String>::pending();
    let p: Promise<u8, String> = wrap(p);
    c.complete(Err(Error::Method("m".into())));
    assert!(matches!(p.result(), Err(Error::Method(m)) if m == "m"));
}

#[tokio::test]
async fn wrap_tokio_join_handles() {
    let ok = wrap(tokio::spawn(async { 1u8 }));
    assert_eq!(ok.await.unwrap(), 1);

    let panicked = wrap(tokio::spawn(async { panic!("task boom") }));
    let r: Result<(), _> = panicked.await;
    assert!(matches!(r, Err(Error::Panicked { message }) if message == "task boom"));

    let aborted = tokio::spawn(std::future::pending::<u8>());
    aborted.abort();
    assert!(matches!(wrap(aborted).await, Err(Error::Cancelled)));
}

#[tokio::test]
async fn cancelling_a_wrapped_tokio_handle_aborts_the_task() {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let _tx = tx;
        std::future::pending::<()>().await
    });
    let p = wrap(task);
    assert!(p.cancel());
    assert!(matches!(wrap(rx).await, Err(Error::Stopped)));
}

// ---- sanity of the types ----

#[test]
fn waits_are_send_and_unpin() {
    fn check<T: Send + Unpin>(_: &T) {}
    let (ps, _cs) = pending::<u8>(1);
    check(&gather(ps));
    check(&as_completed(Vec::<Promise<u8>>::new()));
    check(&as_completed(Vec::<Promise<u8>>::new()).into_stream());
    check(&race(Vec::<Promise<u8>>::new()));
    check(&wait_async(
        Vec::<Promise<u8>>::new(),
        ReturnWhen::FirstCompleted,
        None,
    ));
}

#[test]
fn on_done_after_an_error_sees_it_and_leaves_it_to_the_promise() {
    let p = Promise::<u32>::ready(Err(Error::Cancelled));
    let (tx, rx) = std::sync::mpsc::channel();
    p.on_done(move |r| tx.send(matches!(r, Err(Error::Cancelled))).unwrap());
    assert!(rx.recv().unwrap());
    assert!(matches!(p.result(), Err(Error::Cancelled)));
}

#[test]
fn a_panicking_on_done_after_completion_keeps_the_result() {
    // Contained as it is before completion: whether a callback's panic reaches the caller
    // must not depend on which came first, the result or the registration.
    let p = Promise::<u32>::ready(Ok(8));
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        p.on_done(|_| panic!("callback"));
    }));
    assert!(panicked.is_ok(), "the callback's panic is contained");
    assert_eq!(p.result().unwrap(), 8);
}
