#![no_implicit_prelude]

// `#[worker(remote)]` with a renamed facade, no prelude and decoy names in scope.
extern crate concurry as renamed;
extern crate core;
extern crate std;

#[allow(dead_code)]
struct Result;
#[allow(dead_code)]
struct Option;
#[allow(dead_code)]
struct Box;
#[allow(dead_code)]
mod concurry {}
#[allow(dead_code)]
mod serde {}

pub struct Counter {
    n: u64,
}

#[renamed::worker(crate = ::renamed, remote)]
impl Counter {
    pub fn new(n: u64) -> Self {
        Counter { n }
    }

    pub fn add(&mut self, k: u64) -> u64 {
        self.n += k;
        self.n
    }

    pub fn checked(&self, ok: bool) -> ::core::result::Result<u64, ::std::string::String> {
        if ok {
            ::core::result::Result::Ok(self.n)
        } else {
            ::core::result::Result::Err(::std::string::String::new())
        }
    }

    pub async fn later(&self) -> u64 {
        self.n
    }
}

fn main() {
    for mode in [renamed::Mode::Thread, renamed::Mode::Process] {
        let c = Counter::options().mode(mode).max_workers(1).init(1).unwrap();
        ::std::assert_eq!(c.add(2).result().unwrap(), 3);
        ::std::assert_eq!(c.checked(true).result().unwrap(), 3);
        ::std::assert!(c.checked(false).result().is_err());
        ::std::assert_eq!(c.later().result().unwrap(), 3);
        c.stop().unwrap();
    }
}
