//! The expansion is clean under strict lints.
#![deny(
    missing_docs,
    missing_debug_implementations,
    unused_qualifications,
    unreachable_pub,
    rust_2018_idioms,
    warnings
)]

use concurry::prelude::*;

/// A worker.
#[derive(Debug)]
pub struct Echo {
    n: u64,
}

/// The constructor's error.
#[derive(Debug)]
pub struct Nope;

impl std::fmt::Display for Nope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("nope")
    }
}

#[concurry::worker(
    mode = "sync",
    max_workers = 1,
    load_balancing = "least_total",
    name = "echo"
)]
impl Echo {
    /// Builds one.
    pub fn new(n: u64) -> Result<Self, Nope> {
        if n == 0 { Err(Nope) } else { Ok(Echo { n }) }
    }

    /// Adds `n`.
    pub fn ping(&self, x: u64) -> u64 {
        x + self.n
    }

    /// Bumps `n`.
    pub fn bump(&mut self) -> Result<u64, String> {
        self.n += 1;
        Ok(self.n)
    }

    /// Resets `n`.
    pub fn reset(&mut self) {
        self.n = self.helper();
    }

    /// Takes `Self` by value as an argument and returns one.
    pub fn merge(&self, other: Self) -> Self {
        Echo {
            n: self.n + other.n,
        }
    }

    fn helper(&self) -> u64 {
        1
    }
}

fn main() -> Result<(), Error<Nope>> {
    let echo: EchoHandle = Echo::options().init(1)?;
    let _: Promise<u64> = echo.ping(1);
    let _: Promise<u64, String> = echo.bump();
    let _: Promise<()> = echo.reset();
    let _: Result<Echo, Error> = echo.blocking().merge(Echo { n: 1 });
    let _: Result<u64, Error> = echo.blocking().ping(1);
    let _: Result<u64, Error<String>> = echo.blocking().bump();
    let _: EchoBlocking<'_> = echo.blocking();
    let _: concurry::PoolStats = echo.stats();
    assert!(!echo.is_stopped());
    assert!(matches!(Echo::options().init(0), Err(Error::Method(Nope))));
    echo.stop().map_err(|_| Error::Stopped)?;
    Ok(())
}
