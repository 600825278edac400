//! [`ResourceLimit`]: at most `capacity` units of a resource held at once (a semaphore).

/// At most `capacity` units of `key` held at once, e.g. open connections.
///
/// A pool holds one unit for every call while the method runs; a standalone
/// [`LimitSet`](crate::LimitSet) adds one unit to every request. The units come back when
/// the [`Acquisition`](crate::Acquisition) drops, even if the method panicked.
///
/// ```
/// use concurry::{LimitSet, ResourceLimit};
///
/// let set = LimitSet::new([ResourceLimit::new("connections", 2)]).unwrap();
/// let a = set.try_acquire(&[]).unwrap();
/// let b = set.try_acquire(&[]).unwrap();
/// assert!(set.try_acquire(&[]).is_err()); // both connections are taken
/// drop(a);
/// assert!(set.try_acquire(&[]).is_ok());
/// # drop(b);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceLimit {
    pub(crate) key: String,
    pub(crate) capacity: u64,
}

impl ResourceLimit {
    /// At most `capacity` units of `key` held at once (checked when it joins a
    /// [`LimitSet`](crate::LimitSet): zero is refused).
    pub fn new(key: impl Into<String>, capacity: u64) -> Self {
        ResourceLimit {
            key: key.into(),
            capacity,
        }
    }

    /// The key requests name.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Units available when none is held.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }
}
