//! Primitives: DOCS_PLACEHOLDER_REPLACED_BELOW

mod bridge;
mod capacity;
mod gather;
mod latch;
mod queue;
mod stream;
mod waiters;

#[cfg(all(test, concurry_loom))]
mod tests {
    mod loom_capacity;
    mod loom_latch;
    mod loom_queue;
}

#[cfg(test)]
mod unit_tests;

pub use bridge::{run_sync, to_thread};
pub use capacity::{Borrower, CapacityError, CapacityLimiter, CapacityPermit};
pub use gather::{gather_limited, map_async};
pub use latch::Latch;
pub use queue::{Closed, LifoQueue, PriorityQueue, Queue, TaskDoneError, TryGetError, TryPutError};
pub use stream::{batch_stream, buffer_stream, merge_streams, throttle_stream};
