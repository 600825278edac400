//! One submission path for the three kinds of call (issue 12): a sync method, an `async fn`
//! taking `&mut self` and one taking `&self` are the same `Method` to the pool, so retries,
//! the run-once rule for arguments that cannot be cloned, and validation apply alike.
#![allow(missing_docs, missing_debug_implementations)]
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use concurry_runtime::__private as p;
use concurry_runtime::{Error, Mode, Promise, RetryConfig};

pub struct Flaky {
    calls: Arc<AtomicU32>,
}

impl Flaky {
    fn get(&self, fail_times: u32) -> Result<u32, String> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if n <= fail_times {
            Err(format!("transient {n}"))
        } else {
            Ok(n)
        }
    }
}

impl p::Worker for Flaky {
    type Args = (Arc<AtomicU32>,);
    type InitError = std::convert::Infallible;
    const NAME: &'static str = "Flaky";
    fn construct(args: Self::Args) -> Result<Self, Self::InitError> {
        Ok(Flaky { calls: args.0 })
    }
}

/// Not `Clone`: a call taking it runs once.
pub struct Token(u32);

#[derive(Clone, Copy, Debug)]
enum Kind {
    Blocking,
    Exclusive,
    Shared,
}

/// A call of `Flaky::get(fail_times)` as `kind`, through the probe generated code uses.
#[allow(clippy::needless_borrow)] // the `&` lets method resolution pick `SubmitRetrying`
fn get(pool: &p::Pool<Flaky>, kind: Kind, fail_times: u32) -> Promise<u32, String> {
    #[allow(unused_imports)]
    use p::{SubmitOnce as _, SubmitRetrying as _};
    let retry = p::MethodRetry::inherit();
    let args = p::Args::new((fail_times,));
    match kind {
        Kind::Blocking => (&args).submit_blocking(pool, "get", &retry, |w: &mut Flaky, (n,)| {
            p::fallible(w.get(n))
        }),
        Kind::Exclusive => (&args).submit_exclusive(pool, "get", &retry, |w: &mut Flaky, (n,)| {
            Box::pin(async move { p::fallible(w.get(n)) })
        }),
        Kind::Shared => (&args).submit_shared(pool, "get", &retry, |w: &Flaky, (n,)| {
            Box::pin(async move { p::fallible(w.get(n)) })
        }),
    }
}

/// A call taking a `Token` as `kind`: its arguments cannot be sent twice.
#[allow(clippy::needless_borrow)]
fn take(pool: &p::Pool<Flaky>, kind: Kind, t: Token) -> Promise<u32, String> {
    #[allow(unused_imports)]
    use p::{SubmitOnce as _, SubmitRetrying as _};
    let retry = p::MethodRetry::inherit();
    let args = p::Args::new((t,));
    let fail = |w: &Flaky, t: Token| -> Result<u32, Error<String>> {
        w.calls.fetch_add(1, Ordering::SeqCst);
        Err(Error::Method(format!("token {}", t.0)))
    };
    match kind {
        Kind::Blocking => {
            (&args).submit_blocking(pool, "take", &retry, move |w: &mut Flaky, (t,)| fail(w, t))
        }
        Kind::Exclusive => {
            (&args).submit_exclusive(pool, "take", &retry, move |w: &mut Flaky, (t,)| {
                Box::pin(async move { fail(w, t) })
            })
        }
        Kind::Shared => (&args).submit_shared(pool, "take", &retry, move |w: &Flaky, (t,)| {
            Box::pin(async move { fail(w, t) })
        }),
    }
}

#[test]
fn every_kind_of_call_is_retried_and_run_once_alike() {
    for mode in [Mode::Sync, Mode::Thread, Mode::Async] {
        let calls = Arc::new(AtomicU32::new(0));
        let pool = p::Options::<Flaky>::default()
            .mode(mode)
            .retry(RetryConfig::attempts(4).wait(Duration::from_millis(1)))
            .init_with((calls.clone(),))
            .unwrap();
        for kind in [Kind::Blocking, Kind::Exclusive, Kind::Shared] {
            calls.store(0, Ordering::SeqCst);
            let got = get(&pool, kind, 2).result();
            assert_eq!(
                got.unwrap(),
                3,
                "{mode:?} {kind:?}: two failures, then success"
            );

            calls.store(0, Ordering::SeqCst);
            let once = take(&pool, kind, Token(7)).result();
            assert!(
                matches!(&once, Err(Error::Method(m)) if m == "token 7"),
                "{mode:?} {kind:?}: {once:?}"
            );
            assert_eq!(
                calls.load(Ordering::SeqCst),
                1,
                "{mode:?} {kind:?}: runs once"
            );
        }
        pool.stop().unwrap();
        for kind in [Kind::Blocking, Kind::Exclusive, Kind::Shared] {
            let late = get(&pool, kind, 0).result();
            assert!(
                matches!(late, Err(Error::Stopped)),
                "{mode:?} {kind:?}: {late:?}"
            );
        }
    }
}

#[test]
fn a_method_value_is_one_type_for_the_pool() {
    // The pool's entry points take any kind as one `Method`, with or without retries.
    let calls = Arc::new(AtomicU32::new(0));
    let pool = p::Options::<Flaky>::default()
        .mode(Mode::Thread)
        .retry(RetryConfig::attempts(3).wait(Duration::from_millis(1)))
        .init_with((calls.clone(),))
        .unwrap();
    fn submit<M: p::Method<Flaky, (u32,), Output = u32, Error = String>>(
        pool: &p::Pool<Flaky>,
        m: M,
    ) -> Promise<u32, String> {
        pool.submit_call("get", &p::MethodRetry::inherit(), (1,), m)
    }
    let kinds: [Promise<u32, String>; 3] = [
        submit(
            &pool,
            p::blocking(|w: &mut Flaky, (n,)| p::fallible(w.get(n))),
        ),
        submit(
            &pool,
            p::exclusive(|w: &mut Flaky, (n,): (u32,)| {
                Box::pin(async move { p::fallible(w.get(n)) })
            }),
        ),
        submit(
            &pool,
            p::shared(|w: &Flaky, (n,): (u32,)| Box::pin(async move { p::fallible(w.get(n)) })),
        ),
    ];
    for (i, promise) in kinds.into_iter().enumerate() {
        assert!(promise.result().is_ok(), "kind {i}");
    }
    pool.stop().unwrap();
}
