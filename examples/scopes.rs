//! Structured concurrency: task groups that wait for every child and cancel the rest at the
//! first failure, cancel scopes with deadlines that reach calls running on pools, and
//! `shield` for cleanup that must finish.
//!
//! ```text
//! cargo run --example scopes
//! ```

use std::time::{Duration, Instant};

use concurry::prelude::*;
use concurry::{CancelScope, ChildState, TaskGroup};

/// A (simulated) crawler: `fetch` takes a while, checking for cancellation as it goes.
#[derive(Debug, Default)]
pub struct Crawler;

#[concurry::worker]
impl Crawler {
    /// A crawler (no state).
    pub fn new() -> Self {
        Crawler
    }

    /// Downloads `pages` pages, 5 ms each; stops early when cancelled.
    pub fn fetch(&self, url: String, pages: u32) -> Result<String, concurry::Error> {
        for _ in 0..pages {
            concurry::check_cancelled()?;
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(format!("{url}: {pages} pages"))
    }

    /// Fails at once, for the fail-fast demo.
    pub fn broken(&self, url: String) -> Result<String, String> {
        Err(format!("{url}: 404"))
    }

    /// An async method waiting for its cancel instead of polling for it.
    pub async fn watch(&self) -> &'static str {
        tokio::select! {
            _ = concurry::cancelled() => "stopped watching",
            _ = tokio::time::sleep(Duration::from_secs(60)) => "watched for a minute",
        }
    }
}

fn main() -> Result<(), concurry::Error> {
    let pool = Crawler::options()
        .mode(Mode::Thread)
        .max_workers(4)
        .init()?;

    // 1. A group: every child is waited for; all succeed.
    let pages = concurry::scope(|s| {
        let a = s.spawn(pool.fetch("a.example", 3));
        let b = s.spawn(pool.fetch("b.example", 2));
        let local = s.spawn_blocking(|| "computed here".to_string());
        [a.wait(), b.wait()]
            .into_iter()
            .map(|r| r.unwrap())
            .chain([local.wait().unwrap()])
            .collect::<Vec<_>>()
    })?;
    println!("all done: {pages:?}");

    // 2. Fail-fast: the broken call cancels its slow sibling, which stops at its next
    //    checkpoint instead of fetching 1000 pages (5 s).
    let t = Instant::now();
    let mut slow = None;
    let r = concurry::scope(|s| {
        slow = Some(s.spawn(pool.fetch("slow.example", 1000)));
        s.spawn(pool.broken("bad.example"));
    });
    let slow = slow.expect("spawned");
    println!(
        "fail-fast: {} after {:?}; the slow sibling ended {:?}",
        r.unwrap_err(),
        t.elapsed(),
        slow.state()
    );
    assert_eq!(slow.state(), ChildState::Cancelled);

    // 3. Settled: every child runs to its end, each outcome is kept.
    let (good, bad) = TaskGroup::new().settled().run(|s| {
        (
            s.spawn(pool.fetch("c.example", 1)),
            s.spawn(pool.broken("d.example")),
        )
    })?;
    println!(
        "settled: {:?} / {:?}",
        good.wait(),
        bad.wait().map_err(|e| e.to_string())
    );

    // 4. A deadline: calls submitted inside the scope see it, however deep.
    let t = Instant::now();
    let out = concurry::move_on_after(Duration::from_millis(30), |_| {
        pool.fetch("huge.example", 1000).result()
    });
    println!("move_on_after(30ms): {out:?} after {:?}", t.elapsed());
    let r = concurry::fail_after(Duration::from_millis(30), |_| pool.watch().result());
    println!("fail_after(30ms) on an async method: {r:?}");

    // 5. Nested scopes: the earliest deadline wins; shield lets cleanup finish.
    let outer = CancelScope::with_timeout(Duration::from_millis(20));
    outer.run(|_| {
        let inner = CancelScope::with_timeout(Duration::from_secs(3600));
        inner.run(|_| {
            while concurry::check_cancelled().is_ok() {
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        let saved = concurry::shield(|| pool.fetch("cleanup.example", 2).result());
        println!(
            "inner cancelled by the outer deadline (inner.cancel_called = {}); \
             the shielded cleanup still ran: {saved:?}",
            inner.cancel_called()
        );
    });
    println!("outer.cancel_called = {}", outer.cancel_called());

    // 6. The async forms.
    let rt = tokio::runtime::Runtime::new().expect("a tokio runtime");
    rt.block_on(async {
        let pool = &pool;
        let r = concurry::scope_async(|s| async move {
            let a = s.spawn_future(async { 20 });
            let b = s.spawn(pool.fetch("e.example", 1));
            (a.await.unwrap(), b.await.unwrap())
        })
        .await;
        println!("scope_async: {r:?}");
        let out = concurry::move_on_after_async(
            Duration::from_millis(10),
            tokio::time::sleep(Duration::from_secs(60)),
        )
        .await;
        println!("move_on_after_async(10ms) over a 60 s sleep: {out:?}");
        pool.stop()
    })
}
