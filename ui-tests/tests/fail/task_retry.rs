// Misuses of `#[retry(..)]` under `#[task]`.

fn takes_u8(_e: &u8) -> bool {
    true
}

#[concurry::task]
#[retry(attempts = 0)]
fn zero(x: u8) -> Result<u8, String> {
    Ok(x)
}

#[concurry::task]
#[retry(retries = 3)]
fn counts_retries(x: u8) -> Result<u8, String> {
    Ok(x)
}

#[concurry::task]
#[concurry::retry(attempts = 2)]
fn with_path(x: u8) -> Result<u8, String> {
    Ok(x)
}

#[concurry::task]
#[retry(never, attempts = 2)]
fn never_and_attempts(x: u8) -> Result<u8, String> {
    Ok(x)
}

#[concurry::task]
#[retry(on = takes_u8)]
fn wrong_error_type(x: u8) -> Result<u8, String> {
    Ok(x)
}

fn main() {}
