// Signatures `#[task]` cannot run on a pool.

#[concurry::task]
fn generic<T: Send + 'static>(t: T) -> T {
    t
}

#[concurry::task]
fn with_where(x: u8) -> u8
where
    u8: Copy,
{
    x
}

#[concurry::task]
unsafe fn not_safe(x: u8) -> u8 {
    x
}

#[concurry::task]
extern "C" fn foreign(x: u8) -> u8 {
    x
}

#[concurry::task]
fn borrowed(name: &str, bytes: &[u8]) -> usize {
    name.len() + bytes.len()
}

#[concurry::task]
fn leaks(v: &Vec<u8>) -> &u8 {
    &v[0]
}

#[concurry::task]
fn opaque(it: impl Iterator<Item = u8>) -> u8 {
    it.sum()
}

#[concurry::task]
fn future_by_hand(x: u8) -> impl std::future::Future<Output = u8> {
    async move { x }
}

pub struct Handle;
pub mod shapes {
    pub struct Circle;
}

#[concurry::task]
fn module_types(h: Handle, c: self::shapes::Circle) {
    let _ = (h, c);
}

fn main() {}
