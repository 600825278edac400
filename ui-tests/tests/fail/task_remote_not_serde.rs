// `#[task(remote)]`: the arguments and the return type cross a process boundary, so each
// must be a serde type; the error points at the one that is not.

pub struct NotSerde;

#[concurry::task(remote)]
fn takes(count: u64, value: NotSerde) -> u64 {
    let _ = value;
    count
}

#[concurry::task(remote)]
fn gives(count: u64) -> NotSerde {
    let _ = count;
    NotSerde
}

fn main() {
    // The functions stay callable as plain Rust.
    let _ = takes(1, NotSerde);
    let _ = gives(1);
}
