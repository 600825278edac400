pub struct Echo;

pub struct Item;

#[concurry::worker]
impl Echo {
    pub fn new() -> Self {
        Echo
    }

    pub fn by_str(&self, _s: &str) {}

    pub fn by_slice(&self, _bytes: &[u8]) {}

    pub fn by_ref(&mut self, _item: &Item) {}

    pub fn by_mut_ref(&mut self, _out: &mut Vec<u8>) {}

    pub fn nested(&self, _items: Vec<&str>) {}

    pub fn by_impl(&self, _f: impl Fn() + Send + 'static) {}

    pub fn returns_impl(&self) -> impl Iterator<Item = u8> {
        0..1
    }

    pub fn returns_ref(&self) -> &str {
        "x"
    }

    // Fine: `&'static` crosses, and references inside `fn`/`Fn` signatures are higher-ranked.
    pub fn statics(&self, s: &'static str, _f: fn(&str) -> usize) -> &'static str {
        s
    }
}

pub struct Ctor;

#[concurry::worker]
impl Ctor {
    pub fn new(_name: &str) -> Self {
        Ctor
    }
}

fn main() {}
