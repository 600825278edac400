// An async task's future must be `Send`: it runs on a worker.

use std::rc::Rc;

#[concurry::task(mode = "async")]
async fn holds_rc(x: u8) -> u8 {
    let rc = Rc::new(x);
    std::future::ready(()).await;
    *rc
}

fn main() {}
