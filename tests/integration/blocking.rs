//! Blocking on a promise from inside a tokio runtime (issue 10.2): an `async fn` worker
//! method of an async-mode pool that calls `.result()` / `.blocking()` on another async
//! pool's promise used to hang every time. It works now, on any multi-thread runtime, and on
//! a current-thread one for pool calls.

use concurry::prelude::*;

use crate::common::{HANG, within};

/// Bounds every wait, so a regression fails instead of hanging the suite.
pub struct Inner;

#[concurry::worker]
impl Inner {
    pub fn new() -> Self {
        Inner
    }

    pub async fn get(&self, x: u64) -> u64 {
        tokio::task::yield_now().await;
        x + 1
    }

    pub fn get_sync(&self, x: u64) -> u64 {
        x + 1
    }
}

pub struct Outer {
    inner: InnerHandle,
}

#[concurry::worker]
impl Outer {
    pub fn new(inner: InnerHandle) -> Self {
        Outer { inner }
    }

    /// Blocks on the inner pool's promise from an `async fn`.
    pub async fn via_result(&self, x: u64) -> u64 {
        tokio::task::yield_now().await;
        self.inner.get(x).result().unwrap() + self.inner.get_sync(x).result().unwrap()
    }

    /// The same through the generated blocking view.
    pub async fn via_blocking(&mut self, x: u64) -> u64 {
        self.inner.blocking().get(x).unwrap()
    }

    /// A blocking wait on several promises, and one with a timeout.
    pub async fn via_gather(&self, n: u64) -> u64 {
        let all = concurry::gather((0..n).map(|i| self.inner.get(i)))
            .wait()
            .unwrap();
        let p = self.inner.get(0);
        assert!(p.wait_timeout(HANG));
        all.into_iter().sum::<u64>() + p.result().unwrap()
    }
}

fn nested() -> (OuterHandle, InnerHandle) {
    let inner = Inner::options()
        .mode(Mode::Async)
        .max_workers(2)
        .init()
        .unwrap();
    let outer = Outer::options()
        .mode(Mode::Async)
        .max_workers(4)
        .init(inner.clone())
        .unwrap();
    (outer, inner)
}

#[test]
fn an_async_method_blocking_on_another_async_pool_gets_its_result() {
    within("async methods blocking on another async pool", || {
        let (outer, inner) = nested();
        // More blocked methods at once than the runtime has threads.
        let calls: Vec<_> = (0..40)
            .map(|i| (i, outer.via_result(i), outer.via_blocking(i)))
            .collect();
        for (i, a, b) in calls {
            assert_eq!(a.result().unwrap(), 2 * (i + 1));
            assert_eq!(b.result().unwrap(), i + 1);
        }
        let gathers: Vec<_> = (0..8).map(|_| outer.via_gather(10)).collect();
        for g in gathers {
            assert_eq!(g.result().unwrap(), (1..=10).sum::<u64>() + 1);
        }
        outer.stop().unwrap();
        inner.stop().unwrap();
    });
}

#[test]
fn blocking_inside_the_users_own_runtimes_gets_the_result() {
    within("blocking on promises inside user runtimes", || {
        let inner = Inner::options()
            .mode(Mode::Async)
            .max_workers(1)
            .init()
            .unwrap();
        // A multi-thread runtime with one worker thread: its task blocks in `result`.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let i = inner.clone();
        let got = rt.block_on(async move {
            tokio::spawn(async move { i.get(1).result().unwrap() + i.blocking().get(2).unwrap() })
                .await
                .unwrap()
        });
        assert_eq!(got, 5);
        // A current-thread runtime: its only thread blocks, and the pool's call still runs.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let got = rt.block_on(async { inner.get(3).result().unwrap() });
        assert_eq!(got, 4);
        inner.stop().unwrap();
    });
}
