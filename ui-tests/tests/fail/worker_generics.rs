pub struct Echo;

#[concurry::worker]
impl Echo {
    pub fn new() -> Self {
        Echo
    }

    pub fn typed<T: Send + 'static>(&self, t: T) -> T {
        t
    }

    pub fn with_lifetime<'a>(&self, _s: &'a str) {}

    pub fn with_where(&self, x: u8) -> u8
    where
        u8: Copy,
    {
        x
    }
}

fn main() {}
