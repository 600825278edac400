// `#[worker(remote)]`: constructor arguments, method arguments and returns cross a process
// boundary, so each must be a serde type; the error points at the one that is not.

pub struct NotSerde;

pub struct Remote;

#[concurry::worker(remote)]
impl Remote {
    pub fn new(seed: u64) -> Self {
        let _ = seed;
        Remote
    }

    pub fn take(&self, value: NotSerde) -> u64 {
        let _ = value;
        1
    }
}

fn main() {}
