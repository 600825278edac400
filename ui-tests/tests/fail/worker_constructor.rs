pub struct Missing;

#[concurry::worker]
impl Missing {
    pub fn create() -> Self {
        Missing
    }
}

pub struct WithSelf;

#[concurry::worker]
impl WithSelf {
    pub fn new(&self) -> Self {
        WithSelf
    }
}

pub struct WrongReturn;

#[concurry::worker]
impl WrongReturn {
    pub fn new() -> u8 {
        1
    }
}

pub struct NoReturn;

#[concurry::worker]
impl NoReturn {
    pub fn new() {}
}

pub struct Async;

#[concurry::worker]
impl Async {
    pub async fn new() -> Self {
        Async
    }
}

pub struct Generic;

#[concurry::worker]
impl Generic {
    pub fn new<T>(_t: T) -> Self {
        Generic
    }
}

pub struct BadError;

#[concurry::worker]
impl BadError {
    // The constructor's error must be `Display` (it is reported when `init` fails).
    pub fn new() -> Result<Self, NotDisplay> {
        Ok(BadError)
    }
}

pub struct NotDisplay;

fn main() {
    // The user's impl block is still emitted.
    let _ = Missing::create();
}
