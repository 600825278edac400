pub struct A;
#[concurry::worker(workers = 4)]
impl A {
    pub fn new() -> Self {
        A
    }
}

pub struct B;
#[concurry::worker(foo = 1, num_workers = 2)]
impl B {
    pub fn new() -> Self {
        B
    }
}

pub struct C;
#[concurry::worker(max_workers = 2, max_workers = 3, mode = "thread", mode = "async")]
impl C {
    pub fn new() -> Self {
        C
    }
}

pub struct D;
#[concurry::worker(mode = "fiber", max_workers = 0, load_balancing = "fastest", name = 3)]
impl D {
    pub fn new() -> Self {
        D
    }
}

pub struct E;
#[concurry::worker(mode = thread, max_workers = "4", crate = 1, load_balancing)]
impl E {
    pub fn new() -> Self {
        E
    }
}

pub struct F;
#[concurry::worker(mode "thread")]
impl F {
    pub fn new() -> Self {
        F
    }
}

pub struct G;
// Process mode needs `remote`: the fix is named.
#[concurry::worker(mode = "process")]
impl G {
    pub fn new() -> Self {
        G
    }
}

fn main() {
    // Bad options don't stop the expansion: the handle still exists.
    let _ = A::options();
}
