//! A small per-thread xorshift generator: load balancing and retry jitter need uniform
//! numbers, not cryptography, and no shared state on the hot path.

use std::cell::Cell;
use std::hash::{BuildHasher, Hasher};

fn next_u64() -> u64 {
    thread_local! {
        static STATE: Cell<u64> = Cell::new({
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u8(0);
            h.finish() | 1
        });
    }
    STATE.with(|s| {
        let mut x = s.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        x
    })
}

/// A uniform index in `0..n` (multiply-shift: no modulo bias worth measuring).
pub(crate) fn below(n: usize) -> usize {
    ((u128::from(next_u64()) * n as u128) >> 64) as usize
}

/// A uniform sample of `[0, 1)`.
pub(crate) fn unit() -> f64 {
    (next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// A random 64-bit id (a call's trace id).
pub(crate) fn id() -> u64 {
    next_u64()
}
