//! A promise left unused: the call still runs, and the warning says so and how to keep
//! its outcome.
#![deny(unused_must_use)]

pub struct Echo;

#[concurry::worker]
impl Echo {
    pub fn new() -> Self {
        Echo
    }

    pub fn ping(&self, x: u64) -> u64 {
        x
    }
}

fn main() {
    let echo = Echo::options().init().unwrap();
    echo.ping(1);
}
