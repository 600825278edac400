#![no_implicit_prelude]

extern crate concurry as renamed;
extern crate core;
extern crate std;

// Names a careless expansion would pick up instead of the real ones.
#[allow(dead_code)]
struct Result;
#[allow(dead_code)]
struct Option;
#[allow(dead_code)]
struct Box;
#[allow(dead_code)]
struct Send;
#[allow(dead_code)]
struct Clone;
#[allow(dead_code)]
struct IntoIterator;
#[allow(dead_code)]
mod concurry {}

#[renamed::task(crate = ::renamed, mode = "thread", max_workers = 2)]
fn square(x: u64) -> u64 {
    x * x
}

#[renamed::task(crate = ::renamed)]
async fn fallible(x: u64) -> ::core::result::Result<u64, ::std::string::String> {
    ::core::result::Result::Ok(x)
}

fn main() {
    ::core::assert_eq!(square::submit(3).result().unwrap(), 9);
    ::core::assert_eq!(fallible::submit(3).result().unwrap(), 3);
    ::core::assert_eq!(::core::iter::Iterator::count(square::map(0..4)), 4);
    square::stop().unwrap();
    fallible::stop().unwrap();
}
