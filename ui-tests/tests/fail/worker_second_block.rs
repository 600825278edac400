// A second `#[worker]` block for one type: the message says a type has one, and what to do
// with these methods. Blocks of same-named types in other scopes are fine.

pub struct Echo;

#[concurry::worker]
impl Echo {
    pub fn new() -> Self {
        Echo
    }

    pub fn ping(&self) -> u64 {
        1
    }
}

#[concurry::worker]
impl Echo {
    pub fn pong(&self) -> u64 {
        2
    }
}

mod other {
    pub struct Echo;

    #[concurry::worker]
    impl Echo {
        pub fn new() -> Self {
            Echo
        }
    }
}

fn main() {
    // The first block's handle is whole.
    let echo = Echo::options().init().unwrap();
    let _ = echo.ping();
    let _ = other::Echo::options().init().unwrap();
}
