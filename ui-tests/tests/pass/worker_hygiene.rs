#![no_implicit_prelude]

extern crate concurry as renamed;
extern crate core;
extern crate std;

// Names a careless expansion would pick up instead of the real ones.
#[allow(dead_code)]
struct Result;
#[allow(dead_code)]
struct Option;
#[allow(dead_code)]
struct Box;
#[allow(dead_code)]
struct Send;
#[allow(dead_code)]
mod concurry {}

pub struct Echo {
    n: u64,
}

#[renamed::worker(crate = ::renamed, mode = "thread", max_workers = 2)]
impl Echo {
    pub fn new(n: u64) -> Self {
        Echo { n }
    }

    pub fn ping(&self, x: u64) -> u64 {
        x + self.n
    }

    pub fn fail(&mut self) -> core::result::Result<u64, std::string::String> {
        core::result::Result::Err(std::string::String::new())
    }

    pub async fn later(&self, worker: u64, args: u64, pool: u64) -> u64 {
        worker + args + pool
    }

    pub async fn reset(&mut self) {
        self.n = 0;
    }
}

fn main() {
    let echo = Echo::options().init(1).unwrap();
    ::std::assert_eq!(echo.ping(1).result().unwrap(), 2);
    ::std::assert_eq!(echo.later(1, 2, 3).result().unwrap(), 6);
    ::std::assert!(echo.fail().result().is_err());
    echo.reset().result().unwrap();
    echo.stop().unwrap();
}
