#[concurry::worker]
pub struct OnStruct;

#[concurry::worker]
pub fn on_fn() {}

pub trait Greet {
    fn hi(&self);
}

pub struct Echo;

#[concurry::worker]
impl Greet for Echo {
    fn hi(&self) {}
}

#[concurry::worker]
impl Echo {
    pub fn new() -> Self {
        Echo
    }

    #[concurry::worker]
    pub fn nested(&self) {}
}

pub struct Tuple;

#[concurry::worker]
impl (Tuple, Tuple) {
    pub fn new() -> Self {
        (Tuple, Tuple)
    }
}

fn main() {}
