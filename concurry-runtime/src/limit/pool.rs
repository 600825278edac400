//! [`LimitPool`]: several [`LimitSet`]s (say, one per API key) behind one `acquire`.

use std::ops::{Deref, DerefMut};
use std::time::Duration;

use super::acquisition::Acquisition;
use super::error::LimitError;
use super::set::{LimitSet, LimitStats};
use crate::sync::{Arc, AtomicUsize, Ordering};

/// How a [`LimitPool`] picks the set for each acquisition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum LimitPoolStrategy {
    /// Each set in turn; the acquisition waits on the set whose turn it is (FIFO there).
    #[default]
    RoundRobin,
    /// The first set (starting after the previous pick) that can admit the request now;
    /// if none can, tries them all again every 5 ms (of the sets' clock; no FIFO order
    /// across the pool).
    FirstAvailable,
}

/// Several [`LimitSet`]s behind one `acquire`: each acquisition comes from one of them and
/// says which, so the caller can use that set's configuration (its API key, say).
///
/// ```
/// use concurry::{LimitPool, LimitPoolStrategy, LimitSet, RateLimit};
///
/// let key = |name: &str| {
///     LimitSet::builder().name(name).limit(RateLimit::per_minute("req", 1)).build().unwrap()
/// };
/// let pool = LimitPool::new([key("key-a"), key("key-b")])
///     .unwrap()
///     .strategy(LimitPoolStrategy::FirstAvailable);
/// let a = pool.acquire(&[("req", 1)]).unwrap();
/// let b = pool.acquire(&[("req", 1)]).unwrap();
/// assert_ne!(a.index(), b.index());
/// assert_eq!(a.set().name(), Some("key-a"));
/// assert!(pool.try_acquire(&[("req", 1)]).is_err()); // both keys spent for this minute
/// ```
#[derive(Debug, Clone)]
pub struct LimitPool {
    sets: Arc<Vec<LimitSet>>,
    strategy: LimitPoolStrategy,
    next: Arc<AtomicUsize>,
}

/// An [`Acquisition`] from a [`LimitPool`], telling which set granted it.
///
/// Dereferences to the [`Acquisition`] (`update`, `charged`).
#[derive(Debug)]
pub struct PoolAcquisition {
    acquisition: Acquisition,
    index: usize,
    set: LimitSet,
}

impl PoolAcquisition {
    /// The position of the granting set in the pool.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The granting set.
    pub fn set(&self) -> &LimitSet {
        &self.set
    }

    /// The inner acquisition.
    pub fn into_inner(self) -> Acquisition {
        self.acquisition
    }
}

impl Deref for PoolAcquisition {
    type Target = Acquisition;
    fn deref(&self) -> &Acquisition {
        &self.acquisition
    }
}

impl DerefMut for PoolAcquisition {
    fn deref_mut(&mut self) -> &mut Acquisition {
        &mut self.acquisition
    }
}

/// How often `FirstAvailable` re-tries when no set can admit (of the sets' clock time).
const RETRY: Duration = Duration::from_millis(5);

impl LimitPool {
    /// A pool of `sets`, round-robin by default.
    ///
    /// # Errors
    ///
    /// [`LimitError::Invalid`] if `sets` is empty.
    pub fn new(sets: impl IntoIterator<Item = LimitSet>) -> Result<Self, LimitError> {
        let sets: Vec<LimitSet> = sets.into_iter().collect();
        if sets.is_empty() {
            return Err(LimitError::Invalid {
                key: "LimitPool".into(),
                reason: "a limit pool needs at least one LimitSet".into(),
            });
        }
        Ok(LimitPool {
            sets: Arc::new(sets),
            strategy: LimitPoolStrategy::default(),
            next: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// Picks sets by `strategy`.
    #[must_use]
    pub fn strategy(mut self, strategy: LimitPoolStrategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// The sets, in order.
    pub fn sets(&self) -> &[LimitSet] {
        &self.sets
    }

    fn start(&self) -> usize {
        self.next.fetch_add(1, Ordering::Relaxed) % self.sets.len()
    }

    fn granted(&self, index: usize, acquisition: Acquisition) -> PoolAcquisition {
        PoolAcquisition {
            acquisition,
            index,
            set: self.sets[index].clone(),
        }
    }

    /// Tries every set once from `start`: the first that admits wins; `Ok(None)` if all
    /// would block; the last hard error if no set could ever admit.
    fn sweep(
        &self,
        start: usize,
        request: &[(&str, u64)],
    ) -> Result<Option<PoolAcquisition>, LimitError> {
        let n = self.sets.len();
        let mut hard = None;
        let mut blocked = false;
        for k in 0..n {
            let i = (start + k) % n;
            match self.sets[i].try_acquire(request) {
                Ok(a) => return Ok(Some(self.granted(i, a))),
                Err(LimitError::WouldBlock { .. }) => blocked = true,
                Err(e) => hard = Some(e),
            }
        }
        match (blocked, hard) {
            (false, Some(e)) => Err(e),
            _ => Ok(None),
        }
    }

    /// Takes `request` from one set, waiting as long as needed.
    ///
    /// # Errors
    ///
    /// As [`LimitSet::acquire`] (for `FirstAvailable`: only if no set could ever admit).
    ///
    /// ```
    /// use concurry::{LimitPool, LimitSet, RateLimit};
    /// let sets = (0..3).map(|_| LimitSet::new([RateLimit::per_minute("req", 10)]).unwrap());
    /// let pool = LimitPool::new(sets).unwrap(); // round-robin
    /// let picks: Vec<usize> = (0..4).map(|_| pool.acquire(&[("req", 1)]).unwrap().index()).collect();
    /// assert_eq!(picks, [0, 1, 2, 0]);
    /// assert_eq!(pool.stats()[0][0].used, 2);
    /// assert_eq!(pool.sets().len(), 3);
    /// ```
    pub fn acquire(&self, request: &[(&str, u64)]) -> Result<PoolAcquisition, LimitError> {
        self.acquire_inner(request, None)
    }

    /// As [`acquire`](LimitPool::acquire), giving up after `timeout`.
    ///
    /// # Errors
    ///
    /// As `acquire`, plus [`LimitError::Timeout`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use concurry::{LimitPool, LimitSet, ResourceLimit};
    /// let pool = LimitPool::new([LimitSet::new([ResourceLimit::new("gpu", 1)]).unwrap()]).unwrap();
    /// let held = pool.acquire(&[]).unwrap();
    /// assert!(pool.acquire_timeout(&[], Duration::from_millis(5)).is_err());
    /// let set = held.set().clone();
    /// drop(held.into_inner());
    /// assert_eq!(set.stats()[0].used, 0);
    /// ```
    pub fn acquire_timeout(
        &self,
        request: &[(&str, u64)],
        timeout: Duration,
    ) -> Result<PoolAcquisition, LimitError> {
        self.acquire_inner(request, Some(timeout))
    }

    fn acquire_inner(
        &self,
        request: &[(&str, u64)],
        timeout: Option<Duration>,
    ) -> Result<PoolAcquisition, LimitError> {
        let start = self.start();
        if self.strategy == LimitPoolStrategy::RoundRobin {
            let set = &self.sets[start];
            let a = match timeout {
                Some(t) => set.acquire_timeout(request, t)?,
                None => set.acquire(request)?,
            };
            return Ok(self.granted(start, a));
        }
        let clock = &self.sets[start];
        let began = clock.now();
        loop {
            if let Some(a) = self.sweep(start, request)? {
                return Ok(a);
            }
            if let Some(t) = timeout
                && u128::from(clock.now() - began) >= t.as_nanos()
            {
                return Err(timeout_error(request));
            }
            crate::sync::sleep(clock.real_wait(RETRY));
        }
    }

    /// Takes `request` from a set that admits it now, never waiting.
    ///
    /// # Errors
    ///
    /// [`LimitError::WouldBlock`] if no set admits it now; the hard errors of
    /// [`LimitSet::try_acquire`] if no set could ever admit it.
    pub fn try_acquire(&self, request: &[(&str, u64)]) -> Result<PoolAcquisition, LimitError> {
        let start = self.start();
        if self.strategy == LimitPoolStrategy::RoundRobin {
            let a = self.sets[start].try_acquire(request)?;
            return Ok(self.granted(start, a));
        }
        self.sweep(start, request)?
            .ok_or_else(|| LimitError::WouldBlock {
                keys: describe(request),
            })
    }

    /// As [`acquire`](LimitPool::acquire), waiting without blocking the thread.
    ///
    /// # Errors
    ///
    /// As `acquire`.
    ///
    /// ```
    /// use concurry::{LimitPool, LimitSet, RateLimit};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let set = LimitSet::new([RateLimit::per_second("req", 5)]).unwrap();
    /// let pool = LimitPool::new([set]).unwrap();
    /// assert_eq!(pool.acquire_async(&[("req", 1)]).await.unwrap().index(), 0);
    /// # }
    /// ```
    pub async fn acquire_async(
        &self,
        request: &[(&str, u64)],
    ) -> Result<PoolAcquisition, LimitError> {
        let start = self.start();
        if self.strategy == LimitPoolStrategy::RoundRobin {
            let a = self.sets[start].acquire_async(request).await?;
            return Ok(self.granted(start, a));
        }
        let clock = &self.sets[start];
        loop {
            if let Some(a) = self.sweep(start, request)? {
                return Ok(a);
            }
            let wait = clock.real_wait(RETRY);
            match tokio::runtime::Handle::try_current() {
                Ok(_) => tokio::time::sleep(wait).await,
                Err(_) => {
                    let sleep = {
                        let _ctx = crate::runtime::runtime().enter();
                        tokio::time::sleep(wait)
                    };
                    sleep.await;
                }
            }
        }
    }

    /// Stats of every set, in order.
    pub fn stats(&self) -> Vec<Vec<LimitStats>> {
        self.sets.iter().map(LimitSet::stats).collect()
    }
}

fn describe(request: &[(&str, u64)]) -> String {
    let keys: Vec<String> = request.iter().map(|(k, n)| format!("`{k}` x{n}")).collect();
    keys.join(", ")
}

fn timeout_error(request: &[(&str, u64)]) -> LimitError {
    LimitError::Timeout {
        keys: describe(request),
    }
}
