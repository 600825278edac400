#![no_implicit_prelude]

// `#[task(remote)]` with a renamed facade, no prelude and decoy names in scope, run in child
// processes and in this process.
extern crate concurry as renamed;
extern crate core;
extern crate std;

#[allow(dead_code)]
struct Result;
#[allow(dead_code)]
struct Option;
#[allow(dead_code)]
struct Box;
#[allow(dead_code)]
struct RemoteTask;
#[allow(dead_code)]
mod concurry {}
#[allow(dead_code)]
mod serde {}

#[renamed::task(crate = ::renamed, remote)]
fn add(a: u64, b: u64) -> u64 {
    a + b
}

#[renamed::task(crate = ::renamed, remote)]
async fn checked(ok: bool) -> ::core::result::Result<u32, ::std::string::String> {
    if ok {
        ::core::result::Result::Ok(::std::process::id())
    } else {
        ::core::result::Result::Err(::std::string::String::new())
    }
}

#[renamed::task(crate = ::renamed, remote)]
fn nothing() {}

fn main() {
    for mode in [renamed::Mode::Thread, renamed::Mode::Process] {
        let adder = add::options().mode(mode).max_workers(1).init().unwrap();
        ::std::assert_eq!(adder.submit(2, 3).result().unwrap(), 5);
        ::std::assert_eq!(::core::iter::Iterator::count(adder.map([(1, 2), (3, 4)])), 2);
        let checker = checked::options().mode(mode).max_workers(1).init().unwrap();
        let pid = checker.submit(true).result().unwrap();
        ::std::assert_eq!(pid == ::std::process::id(), mode == renamed::Mode::Thread);
        ::std::assert!(checker.submit(false).result().is_err());
        let nop = nothing::options().mode(mode).max_workers(1).init().unwrap();
        nop.submit().result().unwrap();
        adder.stop().unwrap();
        checker.stop().unwrap();
        nop.stop().unwrap();
    }
}
