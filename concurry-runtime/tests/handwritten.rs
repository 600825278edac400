//! A worker implemented by hand exactly as `#[worker]` expands, to pin the runtime contract.
#![allow(missing_docs, missing_debug_implementations)]
use concurry_runtime::__private as p;
use concurry_runtime::{Error, Mode, Promise};

pub struct Echo {
    n: u64,
}

impl Echo {
    pub fn new(start: u64) -> Self {
        Echo { n: start }
    }
    pub fn ping(&self, x: u64) -> u64 {
        x + self.n
    }
    pub fn bump(&mut self) -> Result<u64, String> {
        self.n += 1;
        if self.n == 3 {
            Err("three".into())
        } else {
            Ok(self.n)
        }
    }
    pub async fn later(&self, x: u64) -> u64 {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        x * 2
    }
    pub async fn later_mut(&mut self) -> u64 {
        self.n += 10;
        self.n
    }
}

impl p::Worker for Echo {
    type Args = (u64,);
    type InitError = <p::Infallibly<Self> as p::Constructed<Self>>::Error;
    const NAME: &'static str = "Echo";
    fn construct(args: Self::Args) -> Result<Self, Self::InitError> {
        let (start,) = args;
        p::Constructed::into_instance(p::Infallibly(Echo::new(start)))
    }
}

#[derive(Clone)]
pub struct EchoHandle {
    pool: p::Pool<Echo>,
}

pub struct EchoOptions(p::Options<Echo>);

impl EchoOptions {
    p::options_builder_methods!();
    pub fn init(self, start: u64) -> Result<EchoHandle, Error<<Echo as p::Worker>::InitError>> {
        self.0.init_with((start,)).map(|pool| EchoHandle { pool })
    }
}

impl Echo {
    pub fn options() -> EchoOptions {
        EchoOptions(Default::default())
    }
}

impl EchoHandle {
    pub fn ping(&self, x: u64) -> Promise<u64> {
        self.pool
            .submit_blocking("ping", move |w: &mut Echo| p::value(Echo::ping(w, x)))
    }
    pub fn bump(&self) -> Promise<u64, String> {
        self.pool
            .submit_blocking("bump", move |w: &mut Echo| p::fallible(Echo::bump(w)))
    }
    pub fn later(&self, x: u64) -> Promise<u64> {
        self.pool.submit_shared("later", move |w: &Echo| {
            Box::pin(async move { p::value(w.later(x).await) })
        })
    }
    pub fn later_mut(&self) -> Promise<u64> {
        self.pool
            .submit_exclusive("later_mut", move |w: &mut Echo| {
                Box::pin(async move { p::value(w.later_mut().await) })
            })
    }
    pub fn stop(&self) -> Result<(), Error> {
        self.pool.stop()
    }
}

#[test]
fn every_mode_runs_every_kind_of_method() {
    for mode in [Mode::Sync, Mode::Thread, Mode::Async] {
        let h = Echo::options().mode(mode).max_workers(1).init(1).unwrap();
        assert_eq!(h.ping(41).result().unwrap(), 42, "{mode}");
        assert_eq!(h.bump().result().unwrap(), 2);
        assert!(matches!(h.bump().result(), Err(Error::Method(s)) if s == "three"));
        assert_eq!(h.later(4).result().unwrap(), 8);
        assert_eq!(h.later_mut().result().unwrap(), 13);
        h.stop().unwrap();
        assert!(matches!(h.ping(1).result(), Err(Error::Stopped)));
    }
}

/// Not `Clone`: calls taking it cannot be retried, and run once.
pub struct Token(u32);

pub struct Flaky {
    calls: std::sync::Arc<std::sync::atomic::AtomicU32>,
}

impl Flaky {
    pub fn new(calls: std::sync::Arc<std::sync::atomic::AtomicU32>) -> Self {
        Flaky { calls }
    }
    pub fn get(&self, fail_times: u32) -> Result<u32, String> {
        let n = self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        if n <= fail_times {
            Err(format!("transient {n}"))
        } else {
            Ok(n)
        }
    }
    pub fn take(&self, t: Token) -> Result<u32, String> {
        self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Err(format!("token {}", t.0))
    }
}

impl p::Worker for Flaky {
    type Args = (std::sync::Arc<std::sync::atomic::AtomicU32>,);
    type InitError = std::convert::Infallible;
    const NAME: &'static str = "Flaky";
    fn construct(args: Self::Args) -> Result<Self, Self::InitError> {
        Ok(Flaky::new(args.0))
    }
}

#[test]
// The explicit `&` is what lets method resolution pick `SubmitRetrying` over `SubmitOnce`.
#[allow(clippy::needless_borrow)]
fn retries_go_through_the_args_probe() {
    use p::{SubmitOnce as _, SubmitRetrying as _};
    use std::sync::atomic::{AtomicU32, Ordering};
    let calls = std::sync::Arc::new(AtomicU32::new(0));
    let retry =
        concurry_runtime::RetryConfig::attempts(4).wait(std::time::Duration::from_millis(1));
    let pool = p::Options::<Flaky>::default()
        .retry(retry)
        .init_with((calls.clone(),))
        .unwrap();
    let plain = p::MethodRetry::inherit();
    let got: Promise<u32, String> =
        (&p::Args::new((2u32,))).submit_blocking(&pool, "get", &plain, |w: &mut Flaky, (n,)| {
            p::fallible(w.get(n))
        });
    assert_eq!(
        got.result().unwrap(),
        3,
        "two failures, then the third attempt succeeds"
    );

    calls.store(0, Ordering::SeqCst);
    let once: Promise<u32, String> = (&p::Args::new((Token(7),))).submit_blocking(
        &pool,
        "take",
        &plain,
        |w: &mut Flaky, (t,)| p::fallible(w.take(t)),
    );
    assert!(matches!(once.result(), Err(Error::Method(m)) if m == "token 7"));
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "non-Clone arguments run once"
    );

    calls.store(0, Ordering::SeqCst);
    let never = p::MethodRetry {
        never: true,
        ..p::MethodRetry::inherit()
    };
    let got: Promise<u32, String> =
        (&p::Args::new((5u32,))).submit_blocking(&pool, "get", &never, |w: &mut Flaky, (n,)| {
            p::fallible(w.get(n))
        });
    assert!(got.result().is_err());
    assert_eq!(calls.load(Ordering::SeqCst), 1, "#[retry(never)] runs once");

    calls.store(0, Ordering::SeqCst);
    #[allow(clippy::ptr_arg)] // must be `fn(&E) -> bool` with `E = String`
    fn only_transient(e: &String) -> bool {
        e.starts_with("transient 1")
    }
    let narrow = p::MethodRetry {
        attempts: Some(10),
        on: Some(only_transient),
        ..p::MethodRetry::inherit()
    };
    let got: Promise<u32, String> =
        (&p::Args::new((5u32,))).submit_blocking(&pool, "get", &narrow, |w: &mut Flaky, (n,)| {
            p::fallible(w.get(n))
        });
    assert!(
        matches!(got.result(), Err(Error::Method(m)) if m == "transient 2"),
        "`on` stops at the first other error"
    );
    pool.stop().unwrap();
}
