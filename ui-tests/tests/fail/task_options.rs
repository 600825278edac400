// Every misuse of `#[task(..)]` options.

#[concurry::task(workers = 4)]
fn unknown(x: u8) -> u8 {
    x
}

#[concurry::task(mode = "thread", mode = "async")]
fn duplicate(x: u8) -> u8 {
    x
}

#[concurry::task(mode = "fibers")]
fn bad_mode(x: u8) -> u8 {
    x
}

#[concurry::task(max_workers = 0)]
fn zero_workers(x: u8) -> u8 {
    x
}

#[concurry::task(mode = "sync", max_workers = 4)]
fn sync_with_workers(x: u8) -> u8 {
    x
}

#[concurry::task(load_balancing = "fastest")]
fn bad_balancing(x: u8) -> u8 {
    x
}

#[concurry::task(mode)]
fn no_value(x: u8) -> u8 {
    x
}

#[concurry::task(mode = "thread" max_workers = 2)]
fn syntax(x: u8) -> u8 {
    x
}

// Process mode needs `remote`: the fix is named.
#[concurry::task(mode = "process")]
fn in_children(x: u8) -> u8 {
    x
}

fn main() {
    // The functions stay callable even when the options are wrong.
    let _ = unknown(1) + duplicate(1) + bad_mode(1) + zero_workers(1);
    let _ = sync_with_workers(1) + bad_balancing(1) + no_value(1) + syntax(1);
    let _ = in_children(1);
}
