use concurry::prelude::*;

#[derive(Debug)]
pub struct ApiError;

pub struct Api;

#[concurry::worker]
impl Api {
    pub fn new() -> Self {
        Api
    }

    #[retry(tries = 3)]
    pub fn unknown_key(&self) {}

    #[retry(num_retries = 3)]
    pub fn retries_not_attempts(&self) {}

    #[retry(attempts = 0)]
    pub fn zero_attempts(&self) {}

    #[retry(never, attempts = 2)]
    pub fn never_and_more(&self) {}

    #[retry(attempts = 2)]
    #[retry(attempts = 3)]
    pub fn twice(&self) {}

    #[retry(attempts = 2, attempts = 3)]
    pub fn duplicate_key(&self) {}

    #[retry()]
    pub fn empty(&self) {}

    #[concurry::retry(attempts = 2)]
    pub fn with_path(&self) {}

    #[retry(attempts = 2)]
    fn private_helper(&self) {}
}

fn main() {
    let _ = Mode::Thread;
}
