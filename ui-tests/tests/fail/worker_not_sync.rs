use std::cell::Cell;

pub struct Counter {
    n: Cell<u64>,
}

#[concurry::worker]
impl Counter {
    pub fn new() -> Self {
        Counter { n: Cell::new(0) }
    }

    // Fine: `&mut self` async methods run exclusively.
    pub async fn bump(&mut self) -> u64 {
        self.n.set(self.n.get() + 1);
        self.n.get()
    }

    // Not fine: `&self` async calls share the instance concurrently in async mode.
    pub async fn get(&self) -> u64 {
        self.n.get()
    }
}

fn main() {}
