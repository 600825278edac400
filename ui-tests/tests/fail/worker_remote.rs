// Misuses of `#[worker(remote)]`.

pub struct Generic<T>(T);

#[concurry::worker(remote)]
impl<T: Clone + Send + 'static> Generic<T> {
    pub fn new(t: T) -> Self {
        Generic(t)
    }
}

pub struct Valued;

#[concurry::worker(remote = true)]
impl Valued {
    pub fn new() -> Self {
        Valued
    }
}

pub struct Twice;

#[concurry::worker(remote, remote)]
impl Twice {
    pub fn new() -> Self {
        Twice
    }
}

fn main() {}
