// `mode = "process"` in the attribute of a `remote` worker and a `remote` task: the pools
// (the task's implicit one included) start in child processes.

pub struct Counter {
    n: u64,
}

#[concurry::worker(remote, mode = "process")]
impl Counter {
    pub fn new(start: u64) -> Self {
        Counter { n: start }
    }

    pub fn next(&mut self) -> (u64, u32) {
        self.n += 1;
        (self.n, std::process::id())
    }
}

#[concurry::task(remote, mode = "process", max_workers = 2)]
fn pid(x: u32) -> (u32, u32) {
    (x, std::process::id())
}

fn main() {
    let me = std::process::id();
    let counter = Counter::options().init(10).unwrap();
    let (n, child) = counter.next().result().unwrap();
    assert_eq!(n, 11);
    assert_ne!(child, me);
    counter.stop().unwrap();

    let (x, child) = pid::submit(7).result().unwrap();
    assert_eq!(x, 7);
    assert_ne!(child, me);
    assert_eq!(pid::handle().unwrap().stats().mode, concurry::Mode::Process);
    pid::stop().unwrap();
}
