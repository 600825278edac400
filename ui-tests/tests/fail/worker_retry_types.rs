use concurry::prelude::*;

#[derive(Debug)]
pub struct ApiError;

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("api error")
    }
}

fn takes_string(_e: &String) -> bool {
    true
}

fn bad_validator(_out: &u8) -> bool {
    true
}

pub struct Api;

#[concurry::worker]
impl Api {
    pub fn new() -> Self {
        Api
    }

    #[retry(on = takes_string)]
    pub fn wrong_on_signature(&self) -> Result<u8, ApiError> {
        Ok(1)
    }

    #[retry(until = bad_validator)]
    pub fn wrong_until_signature(&self) -> String {
        String::new()
    }
}

fn main() {
    let _ = Mode::Thread;
}
