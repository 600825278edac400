//! concurry: declarative concurrency.
#![forbid(unsafe_code)]

pub use concurry_macros::worker;
pub use concurry_runtime::*;

/// The names most programs need: `use concurry::prelude::*;`.
pub mod prelude {
    pub use concurry_runtime::{Error, LoadBalancing, Mode, Promise};
}
