pub struct Echo;

#[concurry::worker]
impl Echo {
    pub fn new() -> Self {
        Echo
    }

    pub fn stop(&self) {}

    pub fn blocking(&mut self) -> u8 {
        1
    }

    pub fn clone(&self) -> Echo {
        Echo
    }

    pub fn options() -> u8 {
        1
    }

    pub fn ping(&self) -> u8 {
        1
    }
}

fn main() {
    // Methods without errors are still generated.
    let _ = Echo::options;
}
