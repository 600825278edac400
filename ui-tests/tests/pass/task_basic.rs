// What `#[task]` accepts: sync and async, typed errors (also through an alias), no
// arguments, several arguments, patterns, argument names that generated code also uses,
// types of the parent module, `cfg`, visibility.

use concurry::prelude::*;

#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub x: i64,
    pub y: i64,
}

#[concurry::task(
    mode = "thread",
    max_workers = 2,
    load_balancing = "least_active",
    name = "adder"
)]
pub fn add(a: u64, b: u64) -> u64 {
    a + b
}

#[concurry::task]
fn read(path: String) -> std::io::Result<usize> {
    Ok(path.len())
}

#[concurry::task(mode = "async")]
pub(crate) async fn norm(Point { x, y }: Point) -> Result<i64, String> {
    Ok(x.abs() + y.abs())
}

#[concurry::task]
fn tick() {}

#[concurry::task]
fn collisions(items: Vec<u8>, inner: u8, handle: u8, error: u8) -> usize {
    items.len() + usize::from(inner + handle + error)
}

#[concurry::task]
fn statics(s: &'static str, f: fn(&str) -> usize) -> usize {
    f(s)
}

#[cfg(any())]
#[concurry::task]
fn compiled_out(x: NoSuchType) {}

fn main() -> Result<(), concurry::Error> {
    assert_eq!(add::submit(1, 2).result()?, 3);
    let sums: Vec<u64> = add::map(concurry::zip((0..3, 10..13))).collect::<Result<_, _>>()?;
    assert_eq!(sums, [10, 12, 14]);
    let n: Result<usize, concurry::Error<std::io::Error>> = read::submit("abc").result();
    assert_eq!(n.unwrap(), 3);
    let n: Promise<i64, String> = norm::submit(Point { x: -1, y: 2 });
    assert_eq!(n.result().unwrap(), 3);
    tick::submit().result()?;
    assert_eq!(tick::map([(), (), ()]).count(), 3);
    assert_eq!(collisions::submit(vec![1], 1, 1, 1).result()?, 4);
    assert_eq!(
        statics::submit("four", str::len as fn(&str) -> usize).result()?,
        4
    );
    let pool: add::Handle = add::options().max_workers(1).init()?;
    assert_eq!(pool.map_unordered([(1, 1)]).count(), 1);
    let _: add::Options = add::options();
    pool.stop()?;
    for stop in [
        add::stop,
        read::stop,
        norm::stop,
        tick::stop,
        collisions::stop,
        statics::stop,
    ] {
        stop()?;
    }
    Ok(())
}
