pub struct Echo;

#[concurry::worker]
impl Echo {
    pub fn new() -> Self {
        Echo
    }

    pub fn consume(self) -> u8 {
        1
    }

    pub fn consume_mut(mut self, x: u8) -> u8 {
        let _ = &mut self;
        x
    }

    pub fn boxed(self: Box<Self>) {}

    // Fine: not `pub`, and associated functions without `self` are left alone.
    fn private(self) {}
    pub fn helper(x: u8) -> u8 {
        x
    }
}

fn main() {}
