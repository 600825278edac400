//! `TaskWorker` and `#[task]`: submit, map (ordered, unordered, lazy, bounded, spread over
//! workers), zip, typed errors per item, async closures, implicit pools and `stop()`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use concurry::prelude::*;
use concurry::{TaskWorker, TaskWorkerHandle};

use crate::common::{Gate, MODES};

/// A task pool of `workers` workers (sync mode has exactly one).
fn pool(mode: Mode, workers: usize) -> TaskWorkerHandle {
    let workers = if mode == Mode::Sync { 1 } else { workers };
    TaskWorker::options()
        .mode(mode)
        .max_workers(workers)
        .init()
        .unwrap()
}

/// An input that counts how many items were pulled from it.
fn counting(n: u64, pulled: &Arc<AtomicUsize>) -> impl Iterator<Item = u64> + Send + 'static {
    let pulled = pulled.clone();
    (0..n).inspect(move |_| {
        pulled.fetch_add(1, Ordering::SeqCst);
    })
}

#[test]
fn submit_in_every_mode() {
    for mode in MODES {
        let p = pool(mode, 2);
        assert_eq!(p.submit(|| 40 + 2).result().unwrap(), 42, "{mode}");
        assert_eq!(
            p.submit_async(|| async { 7 }).result().unwrap(),
            7,
            "{mode}"
        );
        let e = p.try_submit(|| "x".parse::<u8>()).result().unwrap_err();
        assert!(matches!(e, Error::Method(_)), "{mode}: {e:?}");
        let e = p
            .try_submit_async(|| async { Err::<(), _>(5u8) })
            .result()
            .unwrap_err();
        assert!(matches!(e, Error::Method(5)), "{mode}: {e:?}");
        let e = p.submit(|| -> u8 { panic!("boom") }).result().unwrap_err();
        assert!(e.is_panic(), "{mode}: {e:?}");
        // The pool survives the panic.
        assert_eq!(p.submit(|| 1).result().unwrap(), 1, "{mode}");
        p.stop().unwrap();
        assert!(p.submit(|| 1).result().unwrap_err().is_stopped(), "{mode}");
    }
}

#[test]
fn map_is_ordered_in_every_mode() {
    for mode in MODES {
        let p = pool(mode, 3);
        let out: Vec<u64> = p
            .map(|x: u64| x * 2, 0..100)
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(out, (0..100).map(|x| x * 2).collect::<Vec<_>>(), "{mode}");
        let out: Vec<u64> = p
            .map_async(|x: u64| async move { x + 1 }, 0..50)
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(out, (1..51).collect::<Vec<_>>(), "{mode}");
    }
}

#[test]
fn map_unordered_yields_every_item_in_every_mode() {
    for mode in MODES {
        let p = pool(mode, 3);
        let mut out: Vec<u64> = p
            .map_unordered(|x: u64| x * 3, 0..100)
            .collect::<Result<_, _>>()
            .unwrap();
        out.sort_unstable();
        assert_eq!(out, (0..100).map(|x| x * 3).collect::<Vec<_>>(), "{mode}");
    }
}

#[test]
fn map_unordered_yields_in_completion_order() {
    // Item 0 waits for a gate that only the consumer opens after item 1 came out.
    let p = pool(Mode::Thread, 2);
    let gate = Gate::default();
    let g = gate.clone();
    let mut m = p.map_unordered(
        move |x: u64| {
            if x == 0 {
                g.wait();
            }
            x
        },
        0..2,
    );
    assert_eq!(m.next().unwrap().unwrap(), 1);
    gate.open();
    assert_eq!(m.next().unwrap().unwrap(), 0);
    assert!(m.next().is_none());
}

#[test]
fn map_is_lazy_and_bounded_by_its_window() {
    for mode in MODES {
        for unordered in [false, true] {
            let p = pool(mode, 2);
            let pulled = Arc::new(AtomicUsize::new(0));
            let window = 3;
            let mut m = p
                .map(|x: u64| x, counting(1_000_000, &pulled))
                .window(window)
                .chunk_size(1);
            if unordered {
                m = m.unordered();
            }
            assert_eq!(pulled.load(Ordering::SeqCst), 0, "nothing before next()");
            for yielded in 1..=100 {
                m.next().unwrap().unwrap();
                let ahead = pulled.load(Ordering::SeqCst) - yielded;
                assert!(ahead < window, "{mode}: {ahead} items in flight");
                assert!(m.in_flight() < window);
            }
            drop(m);
            assert!(pulled.load(Ordering::SeqCst) <= 100 + window);
        }
    }
}

#[test]
fn default_window_is_twice_the_workers() {
    let p = pool(Mode::Thread, 3);
    let pulled = Arc::new(AtomicUsize::new(0));
    // One item per call, so the count of items read ahead is the count of calls in flight
    // (automatic chunks grow as soon as a first call has measured the items' cost).
    let mut m = p.map(|x: u64| x, counting(1_000, &pulled)).chunk_size(1);
    m.next().unwrap().unwrap();
    assert_eq!(pulled.load(Ordering::SeqCst), 6);
}

#[test]
fn map_spreads_items_over_every_worker() {
    for mode in [Mode::Thread, Mode::Async] {
        let p = pool(mode, 4);
        let n = p.map(|x: u64| x, 0..200).filter(Result::is_ok).count();
        assert_eq!(n, 200);
        let stats = p.stats();
        assert_eq!(stats.per_worker.len(), 4);
        for w in &stats.per_worker {
            assert!(w.dispatched > 0, "{mode}: {:?}", stats.per_worker);
        }
    }
}

#[test]
fn zip_maps_several_iterables_shortest_wins() {
    let p = pool(Mode::Thread, 2);
    let out: Vec<String> = p
        .map(
            |(a, b, c): (u32, &str, char)| format!("{a}{b}{c}"),
            concurry::zip((1.., ["x", "y", "z"], ['!', '?'])),
        )
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(out, ["1x!", "2y?"]);
    assert_eq!(concurry::zip((0..5, 0..3)).size_hint(), (3, Some(3)));
}

#[test]
fn each_item_keeps_its_typed_error() {
    for mode in MODES {
        let p = pool(mode, 2);
        let out: Vec<Result<u8, Error<std::num::ParseIntError>>> = p
            .try_map(|s: &'static str| s.parse::<u8>(), ["1", "x", "3", "300"])
            .collect();
        assert_eq!(out.len(), 4);
        assert_eq!(*out[0].as_ref().unwrap(), 1);
        assert!(matches!(&out[1], Err(Error::Method(_))), "{mode}");
        assert_eq!(*out[2].as_ref().unwrap(), 3);
        assert!(matches!(&out[3], Err(Error::Method(_))), "{mode}");

        let out: Vec<_> = p
            .map(
                |x: u8| {
                    assert!(x != 2, "two");
                    x
                },
                0..4,
            )
            .collect();
        assert!(out[2].as_ref().unwrap_err().is_panic(), "{mode}");
        assert_eq!(out.iter().filter(|r| r.is_ok()).count(), 3);
    }
}

/// Reads `yielded` results of a map over `0..items` (window 2, `chunk` items per call),
/// stops the pool, and checks every other item still yields: at most `max_ok` (those in
/// the window's calls and the chunk being read) drained, everything after failed with
/// `Stopped`.
fn stop_mid_map(items: u64, chunk: usize, yielded: u64, max_ok: usize) {
    for mode in MODES {
        let p = pool(mode, 2);
        let mut m = p.map(|x: u64| x, 0..items).window(2).chunk_size(chunk);
        for i in 0..yielded {
            assert_eq!(m.next().unwrap().unwrap(), i);
        }
        p.stop().unwrap();
        let rest: Vec<_> = m.collect();
        assert_eq!(
            rest.len() as u64,
            items - yielded,
            "{mode}: every item yields"
        );
        let ok = rest.iter().take_while(|r| r.is_ok()).count();
        assert!(ok <= max_ok, "{mode}: {ok}");
        assert!(
            rest[ok..].iter().all(|r| matches!(r, Err(Error::Stopped))),
            "{mode}"
        );
    }
}

#[test]
fn stopping_mid_map_fails_the_remaining_items() {
    stop_mid_map(20, 1, 5, 2);
}

#[test]
fn async_closures_run_concurrently_on_one_async_worker() {
    // Three futures that each wait for the other two: they can only finish if one worker
    // runs them at once.
    let p = pool(Mode::Async, 1);
    let barrier = Arc::new(tokio::sync::Barrier::new(3));
    let out: Vec<u32> = p
        .map_async(
            move |x: u32| {
                let b = barrier.clone();
                async move {
                    b.wait().await;
                    x
                }
            },
            0..3,
        )
        .window(3)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(out, [0, 1, 2]);
}

#[test]
fn chunked_maps_keep_order_and_yield_every_item_in_every_mode() {
    for mode in MODES {
        let p = pool(mode, 3);
        for chunk in [1, 7, 1000, 5000] {
            let out: Vec<u64> = p
                .map(|x: u64| x * 2, 0..1000)
                .chunk_size(chunk)
                .collect::<Result<_, _>>()
                .unwrap();
            assert_eq!(
                out,
                (0..1000).map(|x| x * 2).collect::<Vec<_>>(),
                "{mode} {chunk}"
            );
            let mut out: Vec<u64> = p
                .map_unordered(|x: u64| x + 1, 0..1000)
                .chunk_size(chunk)
                .collect::<Result<_, _>>()
                .unwrap();
            out.sort_unstable();
            assert_eq!(out, (1..1001).collect::<Vec<_>>(), "{mode} {chunk}");
        }
        // Automatic chunks, over an input of unknown length too.
        let out: Vec<u64> = p
            .map(|x: u64| x, (0..20_000).filter(|_| true))
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(out, (0..20_000).collect::<Vec<_>>(), "{mode}");
    }
}

#[test]
fn each_item_of_a_chunk_keeps_its_own_error_and_panic() {
    for mode in MODES {
        let p = pool(mode, 2);
        let out: Vec<Result<u8, Error<String>>> = p
            .try_map(
                |x: u8| match x % 4 {
                    1 => Err(format!("{x} failed")),
                    2 => panic!("{x} panicked"),
                    _ => Ok(x),
                },
                0..12,
            )
            .chunk_size(5)
            .collect();
        assert_eq!(out.len(), 12, "{mode}");
        for (x, r) in (0u8..).zip(&out) {
            match x % 4 {
                1 => assert!(
                    matches!(r, Err(Error::Method(m)) if *m == format!("{x} failed")),
                    "{mode}: {x}: {r:?}"
                ),
                2 => assert!(
                    matches!(r, Err(Error::Panicked { message }) if *message == format!("{x} panicked")),
                    "{mode}: {x}: {r:?}"
                ),
                _ => assert_eq!(*r.as_ref().unwrap(), x, "{mode}"),
            }
        }
    }
}

#[test]
fn a_chunk_size_of_zero_is_a_config_error_and_runs_nothing() {
    let p = pool(Mode::Thread, 2);
    let ran = Arc::new(AtomicUsize::new(0));
    let pulled = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    let out: Vec<_> = p
        .map(
            move |x: u64| {
                r.fetch_add(1, Ordering::SeqCst);
                x
            },
            counting(100, &pulled),
        )
        .chunk_size(0)
        .collect();
    match &out[..] {
        [Err(Error::Config(c))] => {
            assert_eq!(c.option(), "chunk_size");
            assert_eq!(c.value(), "0");
            assert!(c.to_string().contains("at least 1"), "{c}");
        }
        other => panic!("expected one config error, got {other:?}"),
    }
    assert_eq!(pulled.load(Ordering::SeqCst), 0);
    assert_eq!(ran.load(Ordering::SeqCst), 0);
}

#[test]
fn maps_that_submit_per_item_refuse_chunks_above_one() {
    let p = pool(Mode::Async, 2);
    let out: Vec<_> = p
        .map_async(|x: u64| async move { x }, 0..10)
        .chunk_size(8)
        .collect();
    assert!(
        matches!(&out[..], [Err(Error::Config(c))] if c.option() == "chunk_size" && c.value() == "8"),
        "{out:?}"
    );
    // A `#[task]` function whose calls are retried: each item is its own call.
    let out: Vec<_> = retried_echo::map(0..10).chunk_size(8).collect();
    assert!(
        matches!(&out[..], [Err(Error::Config(c))] if c.to_string().contains("#[task]")),
        "{out:?}"
    );
    let out: Vec<u32> = retried_echo::map(0..10).collect::<Result<_, _>>().unwrap();
    assert_eq!(out, (0..10).collect::<Vec<_>>());
    // One item per call is what they do anyway.
    let out: Vec<u64> = p
        .map_async(|x: u64| async move { x }, 0..10)
        .chunk_size(1)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(out, (0..10).collect::<Vec<_>>());
}

#[concurry::task(mode = "thread", max_workers = 1)]
#[retry(attempts = 2)]
fn retried_echo(x: u32) -> Result<u32, String> {
    Ok(x)
}

#[test]
fn a_task_functions_map_sends_chunks_keeping_order_and_errors() {
    let h = checked_div::options().max_workers(2).init().unwrap();
    let items: Vec<(i64, i64)> = (0..3000).map(|i| (i, i % 7)).collect();
    for chunk in [None, Some(1), Some(64)] {
        let m = h.map(items.clone());
        let m = match chunk {
            Some(c) => m.chunk_size(c),
            None => m,
        };
        let out: Vec<_> = m.collect();
        assert_eq!(out.len(), 3000);
        for ((a, b), r) in items.iter().zip(&out) {
            match r {
                Ok(q) => assert_eq!(*q, a / b, "{chunk:?}"),
                Err(Error::Method(m)) => assert!(*b == 0 && *m == format!("{a} / 0")),
                Err(e) => panic!("{chunk:?}: {e:?}"),
            }
        }
    }
    // Automatic chunks: far fewer calls than items.
    let calls: u64 = h.stats().per_worker.iter().map(|w| w.dispatched).sum();
    assert!(calls < 2 * 3000 + 1000, "{calls} calls");
    let before = calls;
    let n = h.map(items.clone()).filter(Result::is_ok).count();
    assert_eq!(n, 3000 - 3000 / 7 - 1);
    let calls: u64 = h.stats().per_worker.iter().map(|w| w.dispatched).sum();
    assert!(
        calls - before < 1000,
        "{} calls for 3000 items",
        calls - before
    );

    // A panic fails its own item only.
    let h = panicky::options().max_workers(2).init().unwrap();
    let out: Vec<_> = h.map([0u8, 1, 2, 1, 3]).chunk_size(5).collect();
    assert!(out[1].as_ref().unwrap_err().is_panic() && out[3].as_ref().unwrap_err().is_panic());
    assert_eq!(
        [&out[0], &out[2], &out[4]].map(|r| *r.as_ref().unwrap()),
        [0, 2, 3]
    );
}

#[test]
fn a_chunked_map_is_lazy_and_bounded_by_window_times_chunk() {
    for mode in MODES {
        for unordered in [false, true] {
            let p = pool(mode, 2);
            let pulled = Arc::new(AtomicUsize::new(0));
            let (window, chunk) = (3, 5);
            let mut m = p
                .map(|x: u64| x, counting(1_000_000, &pulled))
                .window(window)
                .chunk_size(chunk);
            if unordered {
                m = m.unordered();
            }
            assert_eq!(pulled.load(Ordering::SeqCst), 0, "nothing before next()");
            for yielded in 1..=100 {
                m.next().unwrap().unwrap();
                let ahead = pulled.load(Ordering::SeqCst) - yielded;
                assert!(ahead < window * chunk, "{mode}: {ahead} items ahead");
                assert!(m.in_flight() <= window);
            }
            drop(m);
            assert!(pulled.load(Ordering::SeqCst) <= 100 + window * chunk);
        }
    }
}

#[test]
fn automatic_chunks_batch_cheap_items_and_stay_bounded() {
    let p = pool(Mode::Thread, 2);
    let pulled = Arc::new(AtomicUsize::new(0));
    let mut m = p.map(|x: u64| x, counting(10_000_000, &pulled)).window(4);
    for _ in 0..200_000 {
        m.next().unwrap().unwrap();
    }
    // The read-ahead is at most a window of the largest automatic chunks (8192 items).
    assert!(pulled.load(Ordering::SeqCst) <= 200_000 + 4 * 8_192);
    drop(m);
    let calls: u64 = p.stats().per_worker.iter().map(|w| w.dispatched).sum();
    assert!(calls < 20_000, "{calls} calls for 200000 cheap items");

    // A pool with limits sends one item per call: each call takes a unit of them.
    let limited = TaskWorker::options()
        .max_workers(2)
        .limits([concurry::CallLimit::per_minute(1_000_000)])
        .init()
        .unwrap();
    let n = limited
        .map(|x: u64| x, 0..500)
        .filter(Result::is_ok)
        .count();
    assert_eq!(n, 500);
    let calls: u64 = limited
        .stats()
        .per_worker
        .iter()
        .map(|w| w.dispatched)
        .sum();
    assert_eq!(calls, 500);
}

#[test]
fn stopping_mid_chunked_map_fails_the_remaining_items() {
    stop_mid_map(100, 4, 6, 2 + 2 * 4);
}

#[test]
fn map_with_a_progress_bar() {
    let p = pool(Mode::Thread, 2);
    let log = Progress::new("squares")
        .log_every(10)
        .log_to(std::io::sink());
    let n = p.map(|x: u64| x * x, 0..100).progress(log).count();
    assert_eq!(n, 100);
}

// ---- #[task] ----

/// A type of this module, named in a task's signature (resolved through `use super::*`).
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub x: i64,
    pub y: i64,
}

#[concurry::task(mode = "thread", max_workers = 2)]
fn double(x: u64) -> u64 {
    x * 2
}

#[concurry::task(max_workers = 2)]
fn checked_div(a: i64, b: i64) -> Result<i64, String> {
    if b == 0 {
        Err(format!("{a} / 0"))
    } else {
        Ok(a / b)
    }
}

#[concurry::task(mode = "async", max_workers = 2)]
async fn shift(p: Point, by: i64) -> Point {
    Point {
        x: p.x + by,
        y: p.y + by,
    }
}

#[concurry::task(mode = "async")]
async fn parse_later(s: String) -> Result<u32, std::num::ParseIntError> {
    s.parse()
}

#[concurry::task(mode = "sync", name = "noop-pool")]
fn noop() {}

#[concurry::task(mode = "thread", max_workers = 3)]
fn lifecycle_probe(x: u32) -> u32 {
    x
}

#[concurry::task]
fn panicky(x: u8) -> u8 {
    assert!(x != 1, "one");
    x
}

#[test]
fn task_functions_stay_plain_functions() {
    assert_eq!(double(2), 4);
    assert_eq!(checked_div(6, 3), Ok(2));
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    assert_eq!(
        rt.block_on(shift(Point { x: 1, y: 2 }, 1)),
        Point { x: 2, y: 3 }
    );
    noop();
}

#[test]
fn task_submit_and_map_on_the_implicit_pool() {
    assert_eq!(double::submit(21).result().unwrap(), 42);
    let out: Vec<u64> = double::map(0..10).collect::<Result<_, _>>().unwrap();
    assert_eq!(out, (0..10).map(|x| x * 2).collect::<Vec<_>>());
    let mut out: Vec<u64> = double::map_unordered(vec![1, 2, 3])
        .collect::<Result<_, _>>()
        .unwrap();
    out.sort_unstable();
    assert_eq!(out, [2, 4, 6]);
    let stats = double::handle().unwrap().stats();
    assert_eq!(stats.name, "double");
    assert_eq!(stats.mode, Mode::Thread);
    assert_eq!(stats.max_workers, 2);
    assert!(
        stats.per_worker.iter().all(|w| w.dispatched > 0),
        "{stats:?}"
    );
}

#[test]
fn task_errors_stay_typed_per_item() {
    match checked_div::submit(1, 0).result() {
        Err(Error::Method(e)) => assert_eq!(e, "1 / 0"),
        other => panic!("{other:?}"),
    }
    let out: Vec<Result<i64, Error<String>>> =
        checked_div::map(concurry::zip(([6, 1, 9], [3, 0, 3, 99]))).collect();
    assert_eq!(out.len(), 3, "the shortest input wins");
    assert_eq!(*out[0].as_ref().unwrap(), 2);
    assert!(matches!(&out[1], Err(Error::Method(e)) if e == "1 / 0"));
    assert_eq!(*out[2].as_ref().unwrap(), 3);

    let out: Vec<_> = panicky::map([0, 1, 2]).collect();
    assert!(out[1].as_ref().unwrap_err().is_panic());
    assert_eq!(out.iter().filter(|r| r.is_ok()).count(), 2);
}

#[test]
fn async_tasks() {
    let p = shift::submit(Point { x: 0, y: 0 }, 5).result().unwrap();
    assert_eq!(p, Point { x: 5, y: 5 });
    let points = (0..4).map(|i| Point { x: i, y: -i });
    let out: Vec<Point> = shift::map(concurry::zip((points, std::iter::repeat(1))))
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(out[3], Point { x: 4, y: -2 });
    assert_eq!(shift::handle().unwrap().stats().mode, Mode::Async);

    assert_eq!(parse_later::submit("12".to_string()).result().unwrap(), 12);
    let out: Vec<_> = parse_later::map(["1".to_string(), "x".to_string()]).collect();
    assert!(matches!(out[1], Err(Error::Method(_))));
}

#[test]
fn unit_tasks_and_the_name_option() {
    noop::submit().result().unwrap();
    assert_eq!(noop::map(vec![(), ()]).count(), 2);
    let stats = noop::handle().unwrap().stats();
    assert_eq!(stats.name, "noop-pool");
    assert_eq!(stats.mode, Mode::Sync);
}

#[test]
fn implicit_pool_starts_on_first_use_and_again_after_stop() {
    let first = lifecycle_probe::handle().unwrap();
    assert_eq!(first.stats().workers, 3);
    assert_eq!(lifecycle_probe::submit(1).result().unwrap(), 1);

    // A map in progress when the pool stops: every item still yields, the rest as `Stopped`.
    let mut m = lifecycle_probe::map(0..50).window(2);
    assert_eq!(m.next().unwrap().unwrap(), 0);
    lifecycle_probe::stop().unwrap();
    assert!(first.is_stopped());
    let rest: Vec<_> = m.collect();
    assert_eq!(rest.len(), 49);
    assert!(matches!(rest.last(), Some(Err(Error::Stopped))));

    // The next use starts a fresh pool.
    assert_eq!(lifecycle_probe::submit(7).result().unwrap(), 7);
    assert!(!lifecycle_probe::handle().unwrap().is_stopped());
    lifecycle_probe::stop().unwrap();
    lifecycle_probe::stop().unwrap(); // idempotent
}

#[test]
fn explicit_task_pools() {
    for mode in MODES {
        let workers = if mode == Mode::Sync { 1 } else { 2 };
        let pool = double::options()
            .mode(mode)
            .max_workers(workers)
            .name("explicit")
            .init()
            .unwrap();
        assert_eq!(pool.submit(5).result().unwrap(), 10, "{mode}");
        let out: Vec<u64> = pool.map(0..4).collect::<Result<_, _>>().unwrap();
        assert_eq!(out, [0, 2, 4, 6]);
        assert_eq!(pool.map_unordered(0..4).count(), 4);
        assert_eq!(pool.stats().name, "explicit");
        let clone = pool.clone();
        clone.stop().unwrap();
        assert!(pool.is_stopped());
        assert!(pool.submit(1).result().unwrap_err().is_stopped());

        let pool = shift::options()
            .mode(mode)
            .max_workers(workers)
            .init()
            .unwrap();
        assert_eq!(pool.submit(Point { x: 1, y: 1 }, 1).result().unwrap().x, 2);
    }
}

/// Task pools hold no state, so their default `max_workers` stays the number of CPUs (a
/// `#[worker]` type's is 1: see `every_mode::a_stateful_worker_has_one_instance_by_default`).
#[test]
fn stateless_task_pools_default_to_one_worker_per_cpu() {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    for mode in [Mode::Thread, Mode::Async] {
        let closures = TaskWorker::options().mode(mode).init().unwrap();
        assert_eq!(closures.stats().max_workers, cpus, "{mode}");
        closures.stop().unwrap();
        let task = panicky::options().mode(mode).init().unwrap();
        assert_eq!(task.stats().max_workers, cpus, "{mode}");
        task.stop().unwrap();
    }
}

static FLAKY_CALLS: AtomicUsize = AtomicUsize::new(0);

/// Fails its first two calls per process, then succeeds.
#[concurry::task(mode = "thread", max_workers = 2)]
fn flaky(x: u32) -> Result<u32, String> {
    if FLAKY_CALLS.fetch_add(1, Ordering::SeqCst) < 2 {
        Err("transient".into())
    } else {
        Ok(x)
    }
}

#[test]
fn task_calls_are_retried_per_the_pool_option() {
    let pool = flaky::options()
        .retry(concurry::RetryConfig::attempts(4).wait(std::time::Duration::ZERO))
        .init()
        .unwrap();
    assert_eq!(pool.submit(7).result().unwrap(), 7);
    assert_eq!(FLAKY_CALLS.load(Ordering::SeqCst), 3);
    let out: Vec<u32> = pool.map(0..5).collect::<Result<_, _>>().unwrap();
    assert_eq!(out, [0, 1, 2, 3, 4]);
    pool.stop().unwrap();
}

#[test]
fn task_types_are_send_sync() {
    fn send_sync_unpin<T: Send + Sync + Unpin>() {}
    fn send_unpin<T: Send + Unpin>() {}
    send_sync_unpin::<TaskWorker>();
    send_sync_unpin::<TaskWorkerHandle>();
    send_sync_unpin::<concurry::TaskWorkerOptions>();
    send_sync_unpin::<concurry::ImplicitPool>();
    send_sync_unpin::<double::Handle>();
    send_sync_unpin::<double::Options>();
    send_sync_unpin::<concurry::Zip<(std::ops::Range<u8>, std::vec::IntoIter<u8>)>>();
    // A map owns its input iterator, which need only be `Send`: it moves into a task.
    send_unpin::<concurry::TaskMap<'static, u64>>();
    send_unpin::<concurry::TaskMap<'static, u64, String>>();
}

#[test]
fn task_arguments_may_be_promises() {
    // A promise as an argument is awaited first (off the caller's thread): calls chain.
    assert_eq!(double::submit(double::submit(1)).result().unwrap(), 4);
    assert_eq!(parse_later::submit("12").result().unwrap(), 12);
    let failed = checked_div::submit(1, 0);
    match checked_div::submit(failed, 1).result() {
        Err(Error::Upstream { message, .. }) => assert_eq!(message, "1 / 0"),
        other => panic!("{other:?}"),
    }
    let pool = double::options().init().unwrap();
    assert_eq!(pool.submit(pool.submit(2)).result().unwrap(), 8);
}

/// Whether the pool's limits are reachable inside the task, as in a worker method.
#[concurry::task(mode = "thread", max_workers = 2)]
fn sees_limits(x: u32) -> (u32, bool) {
    (x, !concurry::limits().is_empty())
}

#[test]
fn task_pools_take_limits() {
    let pool = sees_limits::options()
        .limits([concurry::CallLimit::per_minute(1_000)])
        .init()
        .unwrap();
    assert_eq!(pool.submit(1).result().unwrap(), (1, true));
    assert!(pool.map(0..10).all(|r| r.unwrap().1));
    // The implicit pool has none unless `options()` gives them.
    assert_eq!(sees_limits::submit(2).result().unwrap(), (2, false));
    sees_limits::stop().unwrap();
}

static RETRIED_CALLS: AtomicUsize = AtomicUsize::new(0);
static NEVER_CALLS: AtomicUsize = AtomicUsize::new(0);

fn is_transient(e: &String) -> bool {
    e == "transient"
}

/// Fails twice, then succeeds; `#[retry]` under `#[task]` sets its own attempts.
#[concurry::task(mode = "thread", max_workers = 1)]
#[retry(attempts = 3, on = is_transient)]
fn retried(x: u32) -> Result<u32, String> {
    if RETRIED_CALLS.fetch_add(1, Ordering::SeqCst) < 2 {
        Err("transient".into())
    } else {
        Ok(x)
    }
}

#[concurry::task(mode = "thread", max_workers = 1)]
#[retry(never)]
fn never_retried(x: u32) -> Result<u32, String> {
    NEVER_CALLS.fetch_add(1, Ordering::SeqCst);
    Err(format!("{x} failed"))
}

#[test]
fn retry_attribute_on_a_task() {
    let no_wait = |n| concurry::RetryConfig::attempts(n).wait(std::time::Duration::ZERO);
    let pool = retried::options().retry(no_wait(1)).init().unwrap();
    assert_eq!(pool.submit(5).result().unwrap(), 5);
    assert_eq!(RETRIED_CALLS.load(Ordering::SeqCst), 3);
    // The function itself is untouched by the attribute.
    assert_eq!(retried(1), Ok(1));

    let pool = never_retried::options().retry(no_wait(6)).init().unwrap();
    assert!(matches!(pool.submit(1).result(), Err(Error::Method(_))));
    assert_eq!(NEVER_CALLS.load(Ordering::SeqCst), 1);
}

/// The caller of an ordered map runs the chunk it waits for when no worker has taken it yet
/// (caller participation): a map over a pool whose only worker is busy still completes.
#[test]
fn an_ordered_map_runs_the_chunk_it_waits_for_on_the_caller() {
    for mode in [Mode::Thread, Mode::Async] {
        let p = pool(mode, 1);
        // The only worker waits until the map below is done: every chunk stays queued.
        let (release, held) = std::sync::mpsc::channel::<()>();
        let busy = p.submit(move || held.recv().is_ok());
        let q = p.clone();
        let (out, threads) = crate::common::within("a map behind a busy worker", move || {
            let me = std::thread::current().id();
            let out: Vec<_> = q
                .map(|x: u64| (x * 2, std::thread::current().id()), 0..20)
                .chunk_size(5)
                .window(2)
                .map(Result::unwrap)
                .collect();
            let here = out.iter().all(|(_, t)| *t == me);
            (out.into_iter().map(|(v, _)| v).collect::<Vec<_>>(), here)
        });
        assert_eq!(out, (0..20).map(|x| x * 2).collect::<Vec<_>>(), "{mode}");
        assert!(threads, "{mode}: every chunk ran on the waiting caller");
        release.send(()).unwrap();
        assert!(busy.result().unwrap(), "{mode}");
        p.stop().unwrap();
    }
}

/// Items of a pool with limits run on its workers only (each call takes a unit of them
/// there), and an unordered map never runs items on its caller (it waits for whichever
/// call completes first, which an item run in place could hold up).
#[test]
fn limited_and_unordered_maps_run_items_on_workers_only() {
    let limited = TaskWorker::options()
        .max_workers(2)
        .limits([concurry::CallLimit::per_minute(1_000_000)])
        .init()
        .unwrap();
    let plain = pool(Mode::Thread, 2);
    for (p, chunk, unordered) in [(&limited, 4, false), (&plain, 4, true), (&plain, 0, true)] {
        let me = std::thread::current().id();
        let m = p.map(move |x: u64| (x, std::thread::current().id()), 0..2_000);
        let m = if chunk > 0 { m.chunk_size(chunk) } else { m };
        let m = if unordered { m.unordered() } else { m };
        let out: Vec<_> = m.map(Result::unwrap).collect();
        assert_eq!(out.len(), 2_000);
        assert!(
            out.iter().all(|(_, t)| *t != me),
            "chunk {chunk}, unordered {unordered}"
        );
    }
}

/// The calls a pool has been handed so far.
fn dispatched(p: &TaskWorkerHandle) -> u64 {
    p.stats().per_worker.iter().map(|w| w.dispatched).sum()
}

/// Every cost counts as cheap: a map's automatic chunks run on its reader once the first
/// window of calls has measured them (the default line, a few ns, is for optimized builds).
const ALL_CHEAP: u64 = u64::MAX / 4;

/// Items cheaper than a hand-off to a worker run on the thread reading an ordered map, once
/// the first window of calls has measured them: no more calls, and the results in order.
#[test]
fn cheap_items_run_on_the_reading_thread_once_measured() {
    for mode in [Mode::Thread, Mode::Async] {
        let p = pool(mode, 2);
        let n = 200_000u64;
        let q = p.clone();
        let (in_order, elsewhere) = crate::common::within("a map of cheap items", move || {
            let me = std::thread::current().id();
            let out: Vec<_> = q
                .map(|x: u64| (x, std::thread::current().id()), 0..n)
                .__inline_below(ALL_CHEAP)
                .map(Result::unwrap)
                .collect();
            let in_order = out.iter().map(|(x, _)| *x).eq(0..n);
            // The first window's calls carry 1 + 4 + 16 + 64 items at most.
            (
                in_order,
                out[100..].iter().filter(|(_, t)| *t != me).count(),
            )
        });
        assert!(in_order, "{mode}");
        assert_eq!(
            elsewhere, 0,
            "{mode}: items after the first calls ran elsewhere"
        );
        // The first window (twice the workers), then none: in chunks of at most 8192
        // items, every one a call, 200k items take 25 calls.
        assert_eq!(dispatched(&p), 4, "{mode}");
    }
}

/// The default line: in an unoptimized build few items cost under it, but every result
/// still comes, in order.
#[test]
fn cheap_items_keep_order_with_the_default_line() {
    let p = pool(Mode::Thread, 2);
    let n = 1_000_000u64;
    let sum = p
        .map(|x: u64| x, 0..n)
        .map(Result::unwrap)
        .fold(0u64, u64::wrapping_add);
    assert_eq!(sum, n * (n - 1) / 2);
}

/// An item that fails or panics on the reading thread fails alone: its neighbours in the
/// same run keep their values, in order.
#[test]
fn an_item_failing_on_the_reading_thread_fails_alone() {
    crate::common::quiet_planned_panics();
    let p = pool(Mode::Thread, 2);
    let q = p.clone();
    let out = crate::common::within("a map failing on its reader", move || {
        q.try_map(
            |x: u64| match x % 10_007 {
                5_000 => panic!("planned panic {x}"),
                7_000 => Err(format!("{x} failed")),
                _ => Ok(x),
            },
            0..100_000,
        )
        .__inline_below(ALL_CHEAP)
        .collect::<Vec<_>>()
    });
    assert_eq!(out.len(), 100_000);
    for (x, r) in (0u64..).zip(&out) {
        match x % 10_007 {
            5_000 => assert!(
                matches!(r, Err(Error::Panicked { message }) if *message == format!("planned panic {x}")),
                "{x}: {r:?}"
            ),
            7_000 => assert!(
                matches!(r, Err(Error::Method(m)) if *m == format!("{x} failed")),
                "{x}: {r:?}"
            ),
            _ => assert_eq!(*r.as_ref().unwrap(), x),
        }
    }
    // `map` (a function without a `Result`) takes another path: a panic fails its item.
    let q = p.clone();
    let out = crate::common::within("a map panicking on its reader", move || {
        q.map(
            |x: u64| {
                assert!(x % 10_007 != 5_000, "planned panic {x}");
                x
            },
            0..100_000,
        )
        .__inline_below(ALL_CHEAP)
        .collect::<Vec<_>>()
    });
    assert_eq!(out.len(), 100_000);
    let failed: Vec<u64> = (0u64..)
        .zip(&out)
        .filter(|(_, r)| r.is_err())
        .map(|(x, _)| x)
        .collect();
    assert_eq!(
        failed,
        (0..10).map(|k| k * 10_007 + 5_000).collect::<Vec<_>>()
    );
    assert!(
        (0u64..)
            .zip(&out)
            .all(|(x, r)| r.as_ref().map_or(true, |v| *v == x))
    );
    assert_eq!(
        dispatched(&p),
        8,
        "both maps ran on their reader after 4 calls"
    );
}

/// A panic of the input iterator itself is the reader's, as when the items go to workers:
/// it is not an item's failure.
#[test]
fn a_panicking_input_unwinds_on_the_reading_thread() {
    crate::common::quiet_planned_panics();
    let p = pool(Mode::Thread, 2);
    let caught = crate::common::within("a map over a panicking input", move || {
        let input = (0u64..).inspect(|x| assert!(*x != 50_000, "planned panic in the input"));
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            // (Counting failures: an input panic taken for an item's would be one `Err`.)
            p.map(|x: u64| x, input)
                .__inline_below(ALL_CHEAP)
                .take(60_000)
                .filter(Result::is_err)
                .count()
        }))
    });
    let payload = caught.expect_err("the input's panic reaches the reader");
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    assert!(message.contains("planned panic in the input"), "{message}");
}

/// Stopping the pool while its map's reader runs the items fails the rest with
/// `Stopped`, as for items sent to workers: only the run being read still yields values.
#[test]
fn stopping_the_pool_fails_items_the_reader_would_run() {
    let p = pool(Mode::Thread, 2);
    let mut m = p.map(|x: u64| x, 0..1_000_000).__inline_below(ALL_CHEAP);
    for i in 0..50_000 {
        assert_eq!(m.next().unwrap().unwrap(), i);
    }
    p.stop().unwrap();
    let rest: Vec<_> = m.collect();
    assert_eq!(rest.len(), 950_000, "every item yields");
    let ok = rest.iter().take_while(|r| r.is_ok()).count();
    assert!(ok <= 8_192, "{ok} items ran after the stop");
    assert!(rest[ok..].iter().all(|r| matches!(r, Err(Error::Stopped))));
}

/// In a cancelled scope the reader runs no more items: they go to the pool as calls, which
/// a cancelled scope skips (`Cancelled`), as without the reader's help.
#[test]
fn a_cancelled_scope_stops_the_reader_running_items() {
    let p = pool(Mode::Thread, 2);
    let cs = concurry::CancelScope::new();
    let rest = cs.run(|cs| {
        let mut m = p.map(|x: u64| x, 0..1_000_000).__inline_below(ALL_CHEAP);
        for i in 0..50_000 {
            assert_eq!(m.next().unwrap().unwrap(), i);
        }
        cs.cancel();
        m.collect::<Vec<_>>()
    });
    assert_eq!(rest.len(), 950_000, "every item yields");
    let ok = rest.iter().take_while(|r| r.is_ok()).count();
    assert!(ok <= 8_192, "{ok} items ran after the cancel");
    assert!(
        rest[ok..]
            .iter()
            .all(|r| matches!(r, Err(Error::Cancelled))),
        "{:?}",
        rest[ok..]
            .iter()
            .find(|r| !matches!(r, Err(Error::Cancelled)))
    );
}

/// Polled as a `Stream` off a tokio runtime (here by hand, as a plain executor would), an
/// ordered map's reader runs cheap items too, in order.
#[test]
fn a_map_polled_as_a_stream_off_tokio_runs_cheap_items_on_its_poller() {
    use futures_util::Stream;
    use std::task::{Context, Poll, Waker};
    let p = pool(Mode::Thread, 2);
    let q = p.clone();
    let in_order = crate::common::within("a map polled by hand", move || {
        let mut m = q.map(|x: u64| x, 0..200_000).__inline_below(ALL_CHEAP);
        let mut cx = Context::from_waker(Waker::noop());
        let mut next = 0u64;
        loop {
            match std::pin::Pin::new(&mut m).poll_next(&mut cx) {
                Poll::Ready(Some(r)) => {
                    if r.unwrap() != next {
                        return false;
                    }
                    next += 1;
                }
                Poll::Ready(None) => return next == 200_000,
                Poll::Pending => std::thread::yield_now(),
            }
        }
    });
    assert!(in_order);
    assert_eq!(dispatched(&p), 4, "the first window, then none");
}
