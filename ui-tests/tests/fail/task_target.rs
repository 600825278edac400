// `#[task]` goes on a free function only.

#[concurry::task]
pub struct Fetcher;

pub struct Echo;

#[concurry::task]
impl Echo {
    pub fn new() -> Self {
        Echo
    }
}

impl Echo {
    #[concurry::task]
    pub fn ping(&self, x: u8) -> u8 {
        x
    }
}

#[concurry::task]
mod fetchers {}

fn main() {}
