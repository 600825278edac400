//! [`LimitSet`]: several limits acquired atomically, with FIFO waiters.
//!
//! The whole set lives behind one mutex: an acquisition checks every requested key and charges
//! them all, or none, in one critical section, so no waiter ever holds part of a request (and
//! no key order can deadlock). Waiters queue in arrival order; a waiter may take its keys only
//! when no earlier waiter still waits for any of them, so a large request is never starved by
//! a stream of small ones.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use super::acquisition::{Acquisition, Items};
use super::error::LimitError;
use super::hosted::HostedLimits;
use super::rate::{RateAlgorithm, RateLimit, RateState};
use super::resource::ResourceLimit;
use crate::clock::{Clock, SystemClock, nanos};
use crate::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, lock};

/// The most limits one set holds (a request's keys are a 64-bit mask).
const MAX_LIMITS: usize = 64;

/// How often a waiter re-checks whether its call was cancelled or its pool stopped.
pub(crate) const POLL: Duration = Duration::from_millis(50);

/// One limit of a [`LimitSet`]: a rate limit (including call limits) or a resource limit.
///
/// Built with `.into()` from [`RateLimit`] or [`ResourceLimit`], so mixed lists read well:
///
/// ```
/// use concurry::{CallLimit, Limit, RateLimit, ResourceLimit};
///
/// let limits: Vec<Limit> = vec![
///     CallLimit::per_minute(500).into(),
///     RateLimit::per_minute("tokens", 50_000).into(),
///     ResourceLimit::new("connections", 10).into(),
/// ];
/// assert_eq!(limits[2].key(), "connections");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Limit {
    /// A rate limit (a [`CallLimit`](crate::CallLimit) is one too).
    Rate(RateLimit),
    /// A resource limit.
    Resource(ResourceLimit),
}

impl Limit {
    /// The key requests name.
    pub fn key(&self) -> &str {
        match self {
            Limit::Rate(r) => &r.key,
            Limit::Resource(r) => &r.key,
        }
    }
}

impl From<RateLimit> for Limit {
    fn from(r: RateLimit) -> Self {
        Limit::Rate(r)
    }
}

impl From<ResourceLimit> for Limit {
    fn from(r: ResourceLimit) -> Self {
        Limit::Resource(r)
    }
}

/// What kind of limit a [`LimitStats`] row describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum LimitKind {
    /// A rate limit requested explicitly by key.
    Rate(RateAlgorithm),
    /// A call limit, charged one unit per call.
    Call(RateAlgorithm),
    /// A resource limit, held for the call.
    Resource,
}

/// A snapshot of one limit of a set.
///
/// ```
/// use concurry::{LimitSet, ResourceLimit};
///
/// let set = LimitSet::new([ResourceLimit::new("db", 3)]).unwrap();
/// let _held = set.acquire(&[]).unwrap();
/// let stats = &set.stats()[0];
/// assert_eq!((stats.key.as_str(), stats.capacity, stats.used, stats.available), ("db", 3, 1, 2));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct LimitStats {
    /// The limit's key.
    pub key: String,
    /// Rate, call or resource.
    pub kind: LimitKind,
    /// Units per window (rate) or held at once (resource).
    pub capacity: u64,
    /// Units counted against the capacity now (may exceed it after an `update` that charged
    /// more than was requested).
    pub used: u64,
    /// Units a request could take now.
    pub available: u64,
    /// Requests waiting for this key.
    pub waiters: usize,
}

/// Builds a [`LimitSet`] with a name or a clock of its own.
///
/// ```
/// use concurry::{CallLimit, FakeClock, LimitSet};
///
/// let set = LimitSet::builder()
///     .name("account-1")
///     .limit(CallLimit::per_second(10))
///     .clock(FakeClock::new())
///     .build()
///     .unwrap();
/// assert_eq!(set.name(), Some("account-1"));
/// ```
#[derive(Debug, Default)]
pub struct LimitSetBuilder {
    limits: Vec<Limit>,
    clock: Option<Box<dyn Clock>>,
    name: Option<String>,
    /// Builds what `limits()` gives inside a pool without limits.
    pool_without_limits: bool,
}

impl LimitSetBuilder {
    /// Adds one limit.
    #[must_use]
    pub fn limit(mut self, limit: impl Into<Limit>) -> Self {
        self.limits.push(limit.into());
        self
    }

    /// Adds several limits.
    #[must_use]
    pub fn limits<L: Into<Limit>>(mut self, limits: impl IntoIterator<Item = L>) -> Self {
        self.limits.extend(limits.into_iter().map(Into::into));
        self
    }

    /// Reads time from `clock` instead of the system clock (a [`FakeClock`](crate::FakeClock)
    /// in tests).
    #[must_use]
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Some(Box::new(clock));
        self
    }

    /// Names the set (shown in stats and by [`LimitPool`](crate::LimitPool) acquisitions).
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Checks the limits and builds the set.
    ///
    /// # Errors
    ///
    /// [`LimitError::Invalid`] for a zero capacity or window, a key used twice, an empty key,
    /// or more than 64 limits.
    pub fn build(self) -> Result<LimitSet, LimitError> {
        let mut keys = Vec::with_capacity(self.limits.len());
        let mut kinds = Vec::with_capacity(self.limits.len());
        let mut slots = Vec::with_capacity(self.limits.len());
        let mut auto = Vec::new();
        let mut caps = Vec::with_capacity(self.limits.len());
        if self.limits.len() > MAX_LIMITS {
            return Err(LimitError::Invalid {
                key: self.limits[MAX_LIMITS].key().to_string(),
                reason: format!("a set holds at most {MAX_LIMITS} limits; split it in two"),
            });
        }
        for (i, limit) in self.limits.iter().enumerate() {
            let key = limit.key();
            let invalid = |reason: &str| LimitError::Invalid {
                key: key.to_string(),
                reason: reason.to_string(),
            };
            if key.is_empty() {
                return Err(invalid("the key is empty; give every limit a name"));
            }
            if keys.iter().any(|k: &String| k == key) {
                return Err(invalid(
                    "the key is used twice in one set; give each limit its own key",
                ));
            }
            let idx = u8::try_from(i).unwrap_or(u8::MAX);
            match limit {
                Limit::Rate(r) => {
                    if r.capacity == 0 {
                        return Err(invalid("the capacity is 0; allow at least 1 unit"));
                    }
                    if r.window.is_zero() {
                        return Err(invalid("the window is 0; use a positive duration"));
                    }
                    // Keeps every algorithm's integer arithmetic far from overflow.
                    if u128::from(r.capacity).saturating_mul(r.window.as_nanos()) > 1 << 100 {
                        return Err(invalid(
                            "capacity x window is too large (above 2^100 unit-nanoseconds); \
                             use a shorter window or a smaller capacity",
                        ));
                    }
                    if r.per_call {
                        auto.push((idx, 1));
                        kinds.push(LimitKind::Call(r.algorithm));
                    } else {
                        kinds.push(LimitKind::Rate(r.algorithm));
                    }
                    slots.push(Slot::Rate(RateState::new(r)));
                }
                Limit::Resource(r) => {
                    if r.capacity == 0 {
                        return Err(invalid("the capacity is 0; allow at least 1 unit"));
                    }
                    auto.push((idx, 1));
                    kinds.push(LimitKind::Resource);
                    slots.push(Slot::Resource {
                        held: 0,
                        capacity: r.capacity,
                    });
                }
            }
            keys.push(key.to_string());
            caps.push(match limit {
                Limit::Rate(r) => r.capacity,
                Limit::Resource(r) => r.capacity,
            });
        }
        let auto_mask = auto.iter().fold(0, |m, &(i, _)| m | bit(i));
        let need_amount = (0..kinds.len())
            .filter(|&i| matches!(kinds[i], LimitKind::Rate(_)))
            .map(|i| u8::try_from(i).unwrap_or(u8::MAX))
            .collect();
        let auto_call_only =
            matches!(*auto, [(i, _)] if matches!(kinds[usize::from(i)], LimitKind::Call(_)));
        Ok(LimitSet {
            backing: Backing::Local(Arc::new(SetInner {
                name: self.name,
                keys: keys.into_boxed_slice(),
                kinds: kinds.into_boxed_slice(),
                caps: caps.into_boxed_slice(),
                auto: auto.into_boxed_slice(),
                auto_mask,
                auto_call_only,
                need_amount,
                pool_without_limits: self.pool_without_limits,
                clock: self.clock.unwrap_or_else(|| Box::new(SystemClock::new())),
                state: Mutex::new(State {
                    slots,
                    waiters: VecDeque::new(),
                    next_ticket: 0,
                }),
                changed: Condvar::new(),
            })),
            in_call: false,
        })
    }
}

/// Several limits acquired together, atomically, shared by clones (and by every worker of a
/// pool whose `options().limits(..)` got it).
///
/// A request names rate limits by key with an amount; call and resource limits are added to
/// every request automatically (one unit each; name one to take more). A rate limit the
/// request does not name is not charged, and an empty request on a set with rate limits is
/// refused with [`LimitError::MissingAmount`] (it would charge none of them). Inside a
/// worker method, [`limits()`] gives the pool's set, whose call and resource units the call
/// already holds, so a request there adds nothing automatically (and `&[]` there charges
/// nothing, or is refused the same way if the set has rate limits).
///
/// - all or nothing: a request waits until every key fits at once, holding nothing meanwhile;
/// - first come, first served: a request waits behind earlier waiters that want any of its
///   keys;
/// - a request above a limit's capacity fails at once with [`LimitError::ExceedsCapacity`],
///   an unknown key with [`LimitError::UnknownKey`] (an empty set admits everything, so
///   methods using [`limits()`] also run outside a pool; inside a pool built without
///   limits, [`limits()`] refuses every key).
///
/// # In a worker child
///
/// In `Mode::Process`, [`limits()`] in a child is a handle on the pool's set, which the
/// parent hosts. Every method asks the parent, over the child's channel:
///
/// - `acquire`, `acquire_timeout` and `try_acquire` are one round trip each (a blocking
///   wait happens in the parent, in the set's FIFO order; a timeout is counted on the
///   set's clock, to the millisecond), and
///   grant an [`Acquisition`] the parent keeps as a lease until it drops or the child dies;
/// - `acquire_async` and `acquire_async_timeout` make that round trip on tokio's blocking
///   pool; dropping the future before the grant gives the units back once they are granted;
/// - [`name`](LimitSet::name), [`keys`](LimitSet::keys) and
///   [`is_empty`](LimitSet::is_empty) are asked once per child (they never change), and
///   [`stats`](LimitSet::stats) each time (a fresh snapshot of the parent's set);
/// - [`same_as`](LimitSet::same_as) is true between the child's handles.
///
/// If the parent is gone, requests fail with [`LimitError::Timeout`] (naming the keys and
/// saying the owner is gone), `stats` and `keys` are empty and `name` is `None`.
///
/// ```
/// use concurry::{CallLimit, LimitSet, RateLimit};
///
/// let set = LimitSet::new([CallLimit::per_minute(500), RateLimit::per_minute("tokens", 50_000)])?;
/// let mut acq = set.acquire(&[("tokens", 1000)])?;   // also takes one `call_count`
/// // ... call the API, which reports 420 tokens used ...
/// acq.update(&[("tokens", 420)])?;                     // refunds the other 580
/// drop(acq);
/// let tokens = set.stats().into_iter().find(|s| s.key == "tokens").unwrap();
/// assert_eq!(tokens.used, 420);
/// # Ok::<(), concurry::LimitError>(())
/// ```
///
/// [`limits()`]: crate::limits
#[derive(Clone)]
pub struct LimitSet {
    backing: Backing,
    /// True for the set a running call sees: its call and resource units are already held.
    in_call: bool,
}

/// Where the limits are. Every operation picks one of the two in one place: the metadata
/// in [`meta`](LimitSet::meta), the clock in [`clock`](LimitSet::clock), blocking
/// acquisitions in [`acquire_blocking`](LimitSet::acquire_blocking), async ones in
/// [`acquire_waiting`](LimitSet::acquire_waiting), plus `stats`, `same_as`, `wake_all`
/// and `Debug`.
#[derive(Clone)]
enum Backing {
    /// The limits themselves, in this process.
    Local(Arc<SetInner>),
    /// In a served worker (a worker child): the pool's set, hosted by the pool's owner and
    /// asked over the worker's link (see [`limits()`](crate::limits)).
    Hosted(HostedLimits),
}

/// What a set is, as [`LimitSet::meta`] reads it from either backing.
pub(crate) struct Meta<'a> {
    pub(crate) name: Option<&'a str>,
    pub(crate) keys: &'a [String],
    pub(crate) empty: bool,
    /// Each call takes units of the set (it has call or resource limits).
    pub(crate) call_units: bool,
}

/// What an acquisition asks for.
#[derive(Clone, Copy)]
pub(crate) enum Want<'a> {
    /// These keys and amounts (plus the call units outside a call).
    Keys(&'a [(&'a str, u64)]),
    /// The pool's per-call units: one of each call and resource limit.
    Call,
}

/// How long a blocking acquisition waits.
#[derive(Clone, Copy)]
pub(crate) enum Wait {
    /// Not at all: [`LimitError::WouldBlock`] if the units are not free now.
    Now,
    /// Up to the timeout of the set's clock (`None`: as long as it takes).
    For(Option<Duration>),
}

pub(crate) struct SetInner {
    name: Option<String>,
    keys: Box<[String]>,
    kinds: Box<[LimitKind]>,
    caps: Box<[u64]>,
    /// Call and resource limits: one unit each per request.
    pub(crate) auto: Box<[(u8, u64)]>,
    pub(crate) auto_mask: u64,
    /// The automatic units are one call-limit unit and nothing else: such an acquisition
    /// has nothing to give back and cannot be updated, so it needs no handle on the set.
    pub(crate) auto_call_only: bool,
    /// The rate limits that are not call limits: a request must name them to charge them,
    /// so an empty request is refused (it would silently charge none of them).
    need_amount: Box<[u8]>,
    /// The set `limits()` gives inside a pool built without limits: no key is known.
    pool_without_limits: bool,
    clock: Box<dyn Clock>,
    state: Mutex<State>,
    /// Notified whenever units come back or a waiter leaves the queue.
    changed: Condvar,
}

struct State {
    slots: Vec<Slot>,
    waiters: VecDeque<Waiter>,
    next_ticket: u64,
}

enum Slot {
    Rate(RateState),
    Resource { held: u64, capacity: u64 },
}

struct Waiter {
    ticket: u64,
    mask: u64,
    waker: Option<Waker>,
}

/// Why a wait ended without an acquisition.
#[derive(Debug)]
pub(crate) enum WaitError {
    Limit(LimitError),
    /// The caller's cancel predicate became true.
    Cancelled,
}

fn bit(i: u8) -> u64 {
    1u64 << i
}

impl fmt::Debug for LimitSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("LimitSet");
        match &self.backing {
            Backing::Local(inner) => d.field("name", &inner.name).field("keys", &inner.keys),
            // Without asking the host: formatting never blocks.
            Backing::Hosted(_) => d.field("hosted_by", &"the pool's owner process"),
        };
        d.field("in_call", &self.in_call).finish()
    }
}

impl Default for LimitSet {
    fn default() -> Self {
        LimitSet::empty()
    }
}

impl LimitSet {
    /// A set of `limits` on the system clock.
    ///
    /// # Errors
    ///
    /// As [`LimitSetBuilder::build`].
    ///
    /// ```
    /// use concurry::{CallLimit, LimitSet, RateLimit};
    /// let set = LimitSet::new([CallLimit::per_second(5), RateLimit::per_second("tokens", 100)])?;
    /// assert_eq!(set.keys().collect::<Vec<_>>(), ["call_count", "tokens"]);
    /// assert!(!set.is_empty() && set.name().is_none());
    /// assert!(set.same_as(&set.clone()));
    /// # Ok::<(), concurry::LimitError>(())
    /// ```
    pub fn new<L: Into<Limit>>(limits: impl IntoIterator<Item = L>) -> Result<Self, LimitError> {
        LimitSet::builder().limits(limits).build()
    }

    /// A builder, for a name or a clock.
    pub fn builder() -> LimitSetBuilder {
        LimitSetBuilder::default()
    }

    /// A set with no limits: every request is admitted at once, and every
    /// [`update`](Acquisition::update) of what it granted is accepted (there is nothing to
    /// correct). It is what [`limits()`](crate::limits) gives outside a worker, so a method
    /// also runs as plain Rust; inside a pool built without limits, `limits()` refuses
    /// every key instead.
    ///
    /// ```
    /// use concurry::LimitSet;
    /// let set = LimitSet::empty();
    /// assert!(set.is_empty());
    /// let mut acq = set.try_acquire(&[("tokens", 10)]).unwrap();
    /// assert!(acq.update(&[("tokens", 7)]).is_ok());
    /// assert_eq!(acq.charged("tokens"), None);
    /// ```
    pub fn empty() -> Self {
        LimitSet::builder()
            .build()
            .unwrap_or_else(|_| unreachable!("an empty set is valid"))
    }

    /// What [`limits()`](crate::limits) gives inside a pool built without limits: empty,
    /// but refusing every key (a typo must not pass for a limit that does not exist).
    pub(crate) fn pool_without_limits() -> Self {
        let builder = LimitSetBuilder {
            pool_without_limits: true,
            ..LimitSetBuilder::default()
        };
        builder
            .build()
            .unwrap_or_else(|_| unreachable!("an empty set is valid"))
            .for_call()
    }

    /// The set's name, if it was given one.
    pub fn name(&self) -> Option<&str> {
        self.meta().name
    }

    /// The keys of the set's limits, in the order they were given.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.meta().keys.iter().map(String::as_str)
    }

    /// True if the set has no limits.
    pub fn is_empty(&self) -> bool {
        self.meta().empty
    }

    /// What the set is (a hosted set asks its host once).
    fn meta(&self) -> Meta<'_> {
        match &self.backing {
            Backing::Local(inner) => Meta {
                name: inner.name.as_deref(),
                keys: &inner.keys,
                empty: inner.keys.is_empty(),
                call_units: !inner.auto.is_empty(),
            },
            Backing::Hosted(h) => h.meta(),
        }
    }

    /// True if both handles share the same limits.
    pub fn same_as(&self, other: &LimitSet) -> bool {
        match (&self.backing, &other.backing) {
            (Backing::Local(a), Backing::Local(b)) => Arc::ptr_eq(a, b),
            (Backing::Hosted(a), Backing::Hosted(b)) => a.same_as(b),
            _ => false,
        }
    }

    /// The set `hosted` reaches, as a running call sees it.
    pub(crate) fn hosted_by(hosted: HostedLimits) -> LimitSet {
        LimitSet {
            backing: Backing::Hosted(hosted),
            in_call: true,
        }
    }

    /// The set as seen by a running call (whose call and resource units are held already).
    pub(crate) fn for_call(&self) -> LimitSet {
        LimitSet {
            backing: self.backing.clone(),
            in_call: true,
        }
    }

    /// Blocks until every requested key fits, then charges them all.
    ///
    /// `request` pairs keys with amounts; call and resource limits are added (one unit each)
    /// outside a worker call. Waiting happens on the calling thread: inside a thread-mode
    /// worker it occupies that worker (as in the Python original), in async code use
    /// [`acquire_async`](LimitSet::acquire_async).
    ///
    /// # Errors
    ///
    /// [`LimitError::UnknownKey`], [`LimitError::ExceedsCapacity`] and
    /// [`LimitError::MissingAmount`] (for `&[]` on a set with rate limits) at once.
    ///
    /// ```
    /// use concurry::{CallLimit, LimitSet, RateLimit};
    /// let set = LimitSet::new([CallLimit::per_minute(60), RateLimit::per_minute("tokens", 1000)])?;
    /// let acq = set.acquire(&[("tokens", 300)])?;
    /// assert_eq!((acq.charged("tokens"), acq.charged("call_count")), (Some(300), Some(1)));
    /// # Ok::<(), concurry::LimitError>(())
    /// ```
    pub fn acquire(&self, request: &[(&str, u64)]) -> Result<Acquisition, LimitError> {
        self.acquire_inner(request, None)
    }

    /// As [`acquire`](LimitSet::acquire), giving up with [`LimitError::Timeout`] after
    /// `timeout` of the set's clock.
    ///
    /// # Errors
    ///
    /// As `acquire`, plus [`LimitError::Timeout`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use concurry::{LimitError, LimitSet, ResourceLimit};
    ///
    /// let set = LimitSet::new([ResourceLimit::new("gpu", 1)]).unwrap();
    /// let held = set.acquire(&[]).unwrap();
    /// let e = set.acquire_timeout(&[], Duration::from_millis(10)).unwrap_err();
    /// assert!(matches!(e, LimitError::Timeout { .. }));
    /// # drop(held);
    /// ```
    pub fn acquire_timeout(
        &self,
        request: &[(&str, u64)],
        timeout: Duration,
    ) -> Result<Acquisition, LimitError> {
        self.acquire_inner(request, Some(timeout))
    }

    fn acquire_inner(
        &self,
        request: &[(&str, u64)],
        timeout: Option<Duration>,
    ) -> Result<Acquisition, LimitError> {
        match self.acquire_cancellable(request, timeout, &|| false) {
            Ok(acq) => Ok(acq),
            Err(WaitError::Limit(e)) => Err(e),
            Err(WaitError::Cancelled) => unreachable!("never cancelled"),
        }
    }

    /// As [`acquire_timeout`](LimitSet::acquire_timeout) (no timeout for `None`), also
    /// giving up with [`WaitError::Cancelled`] once `cancel` is true: whoever makes it true
    /// then calls [`wake_all`](LimitSet::wake_all). The wait keeps its place in the queue
    /// throughout (the host's wait for a served worker's request uses it).
    pub(crate) fn acquire_cancellable(
        &self,
        request: &[(&str, u64)],
        timeout: Option<Duration>,
        cancel: &dyn Fn() -> bool,
    ) -> Result<Acquisition, WaitError> {
        some(self.acquire_blocking(Want::Keys(request), Wait::For(timeout), cancel))
    }

    /// Takes the keys if they all fit now; never waits.
    ///
    /// Fails with [`LimitError::WouldBlock`] if they do not fit, or if an earlier waiter wants
    /// one of them (waiters are served first).
    ///
    /// # Errors
    ///
    /// [`LimitError::WouldBlock`], [`LimitError::UnknownKey`],
    /// [`LimitError::ExceedsCapacity`], [`LimitError::MissingAmount`].
    ///
    /// ```
    /// use concurry::{LimitError, LimitSet, RateLimit};
    ///
    /// let set = LimitSet::new([RateLimit::per_hour("emails", 2)]).unwrap();
    /// set.try_acquire(&[("emails", 2)]).unwrap();
    /// assert!(matches!(set.try_acquire(&[("emails", 1)]), Err(LimitError::WouldBlock { .. })));
    /// ```
    #[inline]
    pub fn try_acquire(&self, request: &[(&str, u64)]) -> Result<Acquisition, LimitError> {
        match some(self.acquire_blocking(Want::Keys(request), Wait::Now, &|| false)) {
            Ok(acq) => Ok(acq),
            Err(WaitError::Limit(e)) => Err(e),
            Err(WaitError::Cancelled) => unreachable!("never cancelled"),
        }
    }

    /// Every blocking acquisition: `want` within `wait`, giving up once `cancel` is true.
    /// `Ok(None)` only for [`Want::Call`] on a set without call or resource limits.
    #[inline]
    fn acquire_blocking(
        &self,
        want: Want<'_>,
        wait: Wait,
        cancel: &dyn Fn() -> bool,
    ) -> Result<Option<Acquisition>, WaitError> {
        let inner = match &self.backing {
            Backing::Local(inner) => inner,
            Backing::Hosted(h) => return h.acquire(want, wait, cancel),
        };
        let items = match want {
            Want::Keys(request) => self.resolve(inner, request).map_err(WaitError::Limit)?,
            Want::Call if inner.auto.is_empty() => return Ok(None),
            Want::Call => Items::Auto,
        };
        match wait {
            Wait::Now => {
                let now = nanos(&*inner.clock);
                let mut st = lock(&inner.state);
                let (slice, mask) = items.slice(inner);
                match admit(&mut st, slice, mask, None, now) {
                    Ok(()) => {
                        drop(st);
                        Ok(Some(Acquisition::new(inner, now, items)))
                    }
                    Err(_) => Err(WaitError::Limit(LimitError::WouldBlock {
                        keys: inner.describe(slice),
                    })),
                }
            }
            Wait::For(timeout) => {
                let deadline = inner.deadline(timeout);
                let at = inner.wait_blocking(items.slice(inner), deadline, cancel)?;
                Ok(Some(Acquisition::new(inner, at, items)))
            }
        }
    }

    /// As [`acquire`](LimitSet::acquire), waiting without blocking the thread. Dropping the
    /// future gives up the place in the queue.
    ///
    /// # Errors
    ///
    /// As `acquire`.
    ///
    /// ```
    /// use concurry::{LimitSet, RateLimit};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let set = LimitSet::new([RateLimit::per_second("req", 5)]).unwrap();
    /// let acq = set.acquire_async(&[("req", 2)]).await.unwrap();
    /// assert_eq!(acq.charged("req"), Some(2));
    /// # }
    /// ```
    pub async fn acquire_async(&self, request: &[(&str, u64)]) -> Result<Acquisition, LimitError> {
        self.acquire_async_inner(request, None).await
    }

    /// As [`acquire_async`](LimitSet::acquire_async), giving up with
    /// [`LimitError::Timeout`] after `timeout` of the set's clock.
    ///
    /// # Errors
    ///
    /// As `acquire_async`, plus [`LimitError::Timeout`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use concurry::{LimitSet, ResourceLimit};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let set = LimitSet::new([ResourceLimit::new("gpu", 1)]).unwrap();
    /// let _held = set.acquire_async(&[]).await.unwrap();
    /// assert!(set.acquire_async_timeout(&[], Duration::from_millis(5)).await.is_err());
    /// # }
    /// ```
    pub async fn acquire_async_timeout(
        &self,
        request: &[(&str, u64)],
        timeout: Duration,
    ) -> Result<Acquisition, LimitError> {
        self.acquire_async_inner(request, Some(timeout)).await
    }

    async fn acquire_async_inner(
        &self,
        request: &[(&str, u64)],
        timeout: Option<Duration>,
    ) -> Result<Acquisition, LimitError> {
        match some(
            self.acquire_waiting(Want::Keys(request), timeout, || false)
                .await,
        ) {
            Ok(acq) => Ok(acq),
            Err(WaitError::Limit(e)) => Err(e),
            Err(WaitError::Cancelled) => unreachable!("never cancelled"),
        }
    }

    /// Every async acquisition: `want` within `timeout` of the set's clock, giving up once
    /// `cancel` is true. `Ok(None)` only for [`Want::Call`] on a set without call or
    /// resource limits.
    async fn acquire_waiting(
        &self,
        want: Want<'_>,
        timeout: Option<Duration>,
        cancel: impl Fn() -> bool + Unpin,
    ) -> Result<Option<Acquisition>, WaitError> {
        let inner = match &self.backing {
            Backing::Local(inner) => inner,
            Backing::Hosted(h) => return h.acquire_async(want, timeout, cancel).await,
        };
        let items = match want {
            Want::Keys(request) => self.resolve(inner, request).map_err(WaitError::Limit)?,
            Want::Call if inner.auto.is_empty() => return Ok(None),
            Want::Call => Items::Auto,
        };
        let at = Waiting {
            inner,
            items: items.slice(inner),
            deadline: inner.deadline(timeout),
            cancel,
            ticket: None,
            sleep: None,
        }
        .await?;
        Ok(Some(Acquisition::new(inner, at, items)))
    }

    /// A snapshot of every limit: capacity, used, available, waiters.
    ///
    /// ```
    /// use concurry::{LimitSet, RateLimit};
    /// let set = LimitSet::new([RateLimit::per_minute("tokens", 1000)]).unwrap();
    /// let _acq = set.acquire(&[("tokens", 250)]).unwrap();
    /// let s = &set.stats()[0];
    /// assert_eq!((s.capacity, s.used, s.available, s.waiters), (1000, 250, 750, 0));
    /// ```
    pub fn stats(&self) -> Vec<LimitStats> {
        let inner = match &self.backing {
            Backing::Local(inner) => inner,
            Backing::Hosted(h) => return h.stats(),
        };
        let now = nanos(&*inner.clock);
        let mut st = lock(&inner.state);
        let State { slots, waiters, .. } = &mut *st;
        slots
            .iter_mut()
            .enumerate()
            .map(|(i, slot)| {
                let (capacity, used) = match slot {
                    Slot::Rate(r) => (r.capacity(), r.used(now)),
                    Slot::Resource { held, capacity } => (*capacity, *held),
                };
                let b = bit(u8::try_from(i).unwrap_or(u8::MAX));
                LimitStats {
                    key: inner.keys[i].clone(),
                    kind: inner.kinds[i],
                    capacity,
                    used,
                    available: capacity.saturating_sub(used),
                    waiters: waiters.iter().filter(|w| w.mask & b != 0).count(),
                }
            })
            .collect()
    }

    /// Wakes every waiter so it re-checks its cancel predicate (a pool stopping).
    pub(crate) fn wake_all(&self) {
        // A hosted set's waits re-check their cancel predicate every `POLL` on their own.
        if let Backing::Local(inner) = &self.backing {
            let mut st = lock(&inner.state);
            notify(inner, &mut st);
        }
    }

    /// The set's clock (a hosted set's: the system clock; waits there are the host's, this
    /// one only paces pollers such as [`LimitPool`](crate::LimitPool)).
    fn clock(&self) -> &dyn Clock {
        match &self.backing {
            Backing::Local(inner) => &*inner.clock,
            Backing::Hosted(_) => system_clock(),
        }
    }

    /// The clock's time in nanoseconds.
    pub(crate) fn now(&self) -> u64 {
        nanos(self.clock())
    }

    /// How long to really block for `d` of the set's clock.
    pub(crate) fn real_wait(&self, d: Duration) -> Duration {
        self.clock().real_wait(d)
    }

    /// True if each call takes units of this set (it has call or resource limits; for a
    /// hosted set whose host is gone, true: `acquire_call` then says so).
    pub(crate) fn has_call_units(&self) -> bool {
        self.meta().call_units
    }

    /// The pool's per-call acquisition (call and resource limits), blocking. `None` if the
    /// set has neither.
    #[inline]
    pub(crate) fn acquire_call(
        &self,
        cancel: &dyn Fn() -> bool,
    ) -> Result<Option<Acquisition>, WaitError> {
        self.acquire_blocking(Want::Call, Wait::For(None), cancel)
    }

    /// The pool's per-call acquisition, without blocking the thread.
    pub(crate) async fn acquire_call_async(
        &self,
        cancel: impl Fn() -> bool + Unpin,
    ) -> Result<Option<Acquisition>, WaitError> {
        self.acquire_waiting(Want::Call, None, cancel).await
    }

    /// Turns a request into limit indices: unknown keys and impossible amounts are refused;
    /// call and resource limits are added outside a call.
    #[inline]
    fn resolve(&self, inner: &SetInner, request: &[(&str, u64)]) -> Result<Items, LimitError> {
        if request.is_empty() {
            if !inner.need_amount.is_empty() {
                return Err(LimitError::MissingAmount {
                    keys: inner
                        .need_amount
                        .iter()
                        .map(|&i| inner.key(i).to_string())
                        .collect(),
                });
            }
            return Ok(if self.in_call || inner.keys.is_empty() {
                Items::List(Vec::new())
            } else {
                Items::Auto
            });
        }
        self.resolve_list(inner, request)
    }

    fn resolve_list(&self, inner: &SetInner, request: &[(&str, u64)]) -> Result<Items, LimitError> {
        if inner.keys.is_empty() {
            if let (true, Some(&(key, _))) = (inner.pool_without_limits, request.first()) {
                return Err(LimitError::UnknownKey {
                    key: key.to_string(),
                    known: "no limits (the pool was built without them; add them with \
                            `options().limits(..)`)"
                        .to_string(),
                });
            }
            return Ok(Items::List(Vec::new()));
        }
        let mut list: Vec<(u8, u64)> = Vec::with_capacity(request.len() + inner.auto.len());
        for &(key, n) in request {
            let Some(i) = inner.keys.iter().position(|k| k == key) else {
                return Err(LimitError::UnknownKey {
                    key: key.to_string(),
                    known: inner.keys.join(", "),
                });
            };
            let idx = u8::try_from(i).unwrap_or(u8::MAX);
            match list.iter_mut().find(|(j, _)| *j == idx) {
                Some((_, m)) => *m = m.saturating_add(n),
                None => list.push((idx, n)),
            }
        }
        if !self.in_call {
            for &(idx, n) in inner.auto.iter() {
                if !list.iter().any(|(j, _)| *j == idx) {
                    list.push((idx, n));
                }
            }
        }
        for &(idx, n) in &list {
            let capacity = inner.caps[usize::from(idx)];
            if n > capacity {
                return Err(LimitError::ExceedsCapacity {
                    key: inner.keys[usize::from(idx)].clone(),
                    requested: n,
                    capacity,
                });
            }
        }
        list.retain(|&(_, n)| n > 0);
        Ok(Items::List(list))
    }
}

impl SetInner {
    fn deadline(&self, timeout: Option<Duration>) -> Option<u64> {
        timeout.map(|t| {
            nanos(&*self.clock).saturating_add(u64::try_from(t.as_nanos()).unwrap_or(u64::MAX))
        })
    }

    /// Waits on the condition variable until `items` fit, the deadline passes or `cancel`.
    /// Returns the clock time of the charge.
    fn wait_blocking(
        &self,
        (items, mask): (&[(u8, u64)], u64),
        deadline: Option<u64>,
        cancel: &dyn Fn() -> bool,
    ) -> Result<u64, WaitError> {
        let inner = self;
        let mut st = lock(&inner.state);
        let now = nanos(&*inner.clock);
        let mut hint = match admit(&mut st, items, mask, None, now) {
            Ok(()) => return Ok(now),
            Err(hint) => hint,
        };
        let ticket = st.next_ticket;
        st.next_ticket += 1;
        st.waiters.push_back(Waiter {
            ticket,
            mask,
            waker: None,
        });
        let mut now = now;
        loop {
            if let Some(err) = give_up(inner, items, deadline, now, cancel) {
                leave(inner, &mut st, ticket);
                return Err(err);
            }
            let wait = next_wait(inner, hint, deadline, now);
            st = match inner.changed.wait_timeout(st, wait) {
                Ok((g, _)) => g,
                Err(poisoned) => poisoned.into_inner().0,
            };
            now = nanos(&*inner.clock);
            // A cancelled waiter must not take units, even if they just became free.
            if cancel() {
                leave(inner, &mut st, ticket);
                return Err(WaitError::Cancelled);
            }
            match admit(&mut st, items, mask, Some(ticket), now) {
                Ok(()) => {
                    leave(inner, &mut st, ticket);
                    return Ok(now);
                }
                Err(h) => hint = h,
            }
        }
    }
}

/// A `Want::Keys` acquisition's result: always an acquisition (only `Want::Call` may find
/// nothing to take).
#[inline]
fn some(r: Result<Option<Acquisition>, WaitError>) -> Result<Acquisition, WaitError> {
    match r {
        Ok(Some(acq)) => Ok(acq),
        Ok(None) => unreachable!("a request for keys always gives an acquisition"),
        Err(e) => Err(e),
    }
}

/// The clock of hosted sets: waits there are the host's; this one only paces pollers
/// such as [`LimitPool`](crate::LimitPool).
fn system_clock() -> &'static SystemClock {
    static CLOCK: OnceLock<SystemClock> = OnceLock::new();
    CLOCK.get_or_init(SystemClock::new)
}

impl SetInner {
    pub(crate) fn key(&self, idx: u8) -> &str {
        &self.keys[usize::from(idx)]
    }

    pub(crate) fn index(&self, key: &str) -> Option<u8> {
        self.keys
            .iter()
            .position(|k| k == key)
            .and_then(|i| u8::try_from(i).ok())
    }

    /// True for an empty set outside a pool, which admits (and corrects) any key.
    pub(crate) fn admits_all(&self) -> bool {
        self.keys.is_empty() && !self.pool_without_limits
    }

    pub(crate) fn is_resource(&self, idx: u8) -> bool {
        self.kinds[usize::from(idx)] == LimitKind::Resource
    }

    pub(crate) fn now(&self) -> u64 {
        nanos(&*self.clock)
    }

    fn describe(&self, items: &[(u8, u64)]) -> String {
        let keys: Vec<String> = items
            .iter()
            .map(|&(i, n)| format!("`{}` x{n}", self.key(i)))
            .collect();
        keys.join(", ")
    }

    /// Gives back what an acquisition holds: resource units (rate charges stay spent).
    pub(crate) fn release(&self, items: &[(u8, u64)]) {
        if !items.iter().any(|&(i, _)| self.is_resource(i)) {
            return;
        }
        let mut st = lock(&self.state);
        let mut freed = false;
        for &(i, n) in items {
            if let Slot::Resource { held, .. } = &mut st.slots[usize::from(i)] {
                *held -= n.min(*held);
                freed = true;
            }
        }
        if freed && !st.waiters.is_empty() {
            notify(self, &mut st);
        }
    }

    /// Corrects the charge of rate limit `idx` (made at `at`) from `old` counted units to
    /// `new`; returns the units now counted (`new`, or less where a bucket caps its debt).
    pub(crate) fn recharge(&self, idx: u8, at: u64, old: u64, new: u64) -> u64 {
        let now = self.now();
        let mut st = lock(&self.state);
        let Slot::Rate(r) = &mut st.slots[usize::from(idx)] else {
            return old;
        };
        if new < old {
            r.refund(now, at, old - new);
            if !st.waiters.is_empty() {
                notify(self, &mut st);
            }
            new
        } else {
            old + r.charge(now, new - old)
        }
    }
}

/// Charges `items` if they all fit at `now` and no earlier waiter wants any of their keys.
/// Otherwise `Err(hint)`: nanos until a rate limit may admit, or `None` to wait for a release.
#[inline]
fn admit(
    st: &mut State,
    items: &[(u8, u64)],
    mask: u64,
    ticket: Option<u64>,
    now: u64,
) -> Result<(), Option<u64>> {
    for w in &st.waiters {
        if Some(w.ticket) == ticket {
            break;
        }
        if w.mask & mask != 0 {
            return Err(None);
        }
    }
    if let [(i, n)] = *items {
        // One limit (a call limit on its own): check and charge in one step.
        return match &mut st.slots[usize::from(i)] {
            Slot::Rate(r) => match r.try_charge(now, n) {
                None => Ok(()),
                Some(d) => Err(Some(d)),
            },
            Slot::Resource { held, capacity } => {
                if *held + n > *capacity {
                    Err(None)
                } else {
                    *held += n;
                    Ok(())
                }
            }
        };
    }
    let mut blocked = false;
    let mut hint: Option<u64> = None;
    for &(i, n) in items {
        match &mut st.slots[usize::from(i)] {
            Slot::Rate(r) => {
                if let Some(d) = r.wait_for(now, n) {
                    blocked = true;
                    hint = Some(hint.map_or(d, |h| h.max(d)));
                }
            }
            Slot::Resource { held, capacity } => {
                if *held + n > *capacity {
                    blocked = true;
                }
            }
        }
    }
    if blocked {
        return Err(hint);
    }
    for &(i, n) in items {
        match &mut st.slots[usize::from(i)] {
            Slot::Rate(r) => {
                r.charge(now, n);
            }
            Slot::Resource { held, .. } => *held += n,
        }
    }
    Ok(())
}

/// Removes waiter `ticket` and lets the others re-check (they may have waited behind it).
fn leave(inner: &SetInner, st: &mut MutexGuard<'_, State>, ticket: u64) {
    if let Some(pos) = st.waiters.iter().position(|w| w.ticket == ticket) {
        st.waiters.remove(pos);
    }
    if !st.waiters.is_empty() {
        notify(inner, st);
    }
}

fn notify(inner: &SetInner, st: &mut State) {
    inner.changed.notify_all();
    for w in st.waiters.iter_mut() {
        if let Some(waker) = w.waker.take() {
            waker.wake();
        }
    }
}

fn give_up(
    inner: &SetInner,
    items: &[(u8, u64)],
    deadline: Option<u64>,
    now: u64,
    cancel: &dyn Fn() -> bool,
) -> Option<WaitError> {
    if cancel() {
        return Some(WaitError::Cancelled);
    }
    match deadline {
        Some(d) if now >= d => Some(WaitError::Limit(LimitError::Timeout {
            keys: inner.describe(items),
        })),
        _ => None,
    }
}

/// How long to really block: until a rate limit may admit or the deadline, at most [`POLL`].
fn next_wait(inner: &SetInner, hint: Option<u64>, deadline: Option<u64>, now: u64) -> Duration {
    let mut clock_ns = hint.unwrap_or(u64::MAX);
    if let Some(d) = deadline {
        clock_ns = clock_ns.min(d.saturating_sub(now));
    }
    inner
        .clock
        .real_wait(Duration::from_nanos(clock_ns))
        .min(POLL)
        .max(Duration::from_micros(1))
}

/// The async wait: a place in the same FIFO queue, a waker for releases, and a tokio timer for
/// rate limits and the deadline. Dropping it leaves the queue.
struct Waiting<'a, C: Fn() -> bool + Unpin> {
    inner: &'a SetInner,
    items: (&'a [(u8, u64)], u64),
    deadline: Option<u64>,
    cancel: C,
    ticket: Option<u64>,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<C: Fn() -> bool + Unpin> Future for Waiting<'_, C> {
    type Output = Result<u64, WaitError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let inner = this.inner;
        let (items, mask) = this.items;
        let mut st = lock(&inner.state);
        let now = nanos(&*inner.clock);
        if this.ticket.is_some() && (this.cancel)() {
            if let Some(t) = this.ticket.take() {
                leave(inner, &mut st, t);
            }
            return Poll::Ready(Err(WaitError::Cancelled));
        }
        let hint = match admit(&mut st, items, mask, this.ticket, now) {
            Ok(()) => {
                if let Some(t) = this.ticket.take() {
                    leave(inner, &mut st, t);
                }
                return Poll::Ready(Ok(now));
            }
            Err(hint) => hint,
        };
        if let Some(err) = give_up(inner, items, this.deadline, now, &this.cancel) {
            if let Some(t) = this.ticket.take() {
                leave(inner, &mut st, t);
            }
            return Poll::Ready(Err(err));
        }
        let ticket = match this.ticket {
            Some(t) => t,
            None => {
                let t = st.next_ticket;
                st.next_ticket += 1;
                st.waiters.push_back(Waiter {
                    ticket: t,
                    mask,
                    waker: None,
                });
                this.ticket = Some(t);
                t
            }
        };
        if let Some(w) = st.waiters.iter_mut().find(|w| w.ticket == ticket) {
            match &w.waker {
                Some(old) if old.will_wake(cx.waker()) => {}
                _ => w.waker = Some(cx.waker().clone()),
            }
        }
        drop(st);
        let wait = next_wait(inner, hint, this.deadline, now);
        let at = tokio::time::Instant::now() + wait;
        match &mut this.sleep {
            Some(s) => s.as_mut().reset(at),
            None => this.sleep = Some(new_sleep(at)),
        }
        if let Some(s) = &mut this.sleep
            && s.as_mut().poll(cx).is_ready()
        {
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }
}

impl<C: Fn() -> bool + Unpin> Drop for Waiting<'_, C> {
    fn drop(&mut self) {
        if let Some(t) = self.ticket.take() {
            let mut st = lock(&self.inner.state);
            leave(self.inner, &mut st, t);
        }
    }
}

/// A tokio timer, made inside the library runtime when the caller has no tokio context.
fn new_sleep(at: tokio::time::Instant) -> Pin<Box<tokio::time::Sleep>> {
    match tokio::runtime::Handle::try_current() {
        Ok(_) => Box::pin(tokio::time::sleep_until(at)),
        Err(_) => {
            let _ctx = crate::runtime::runtime().enter();
            Box::pin(tokio::time::sleep_until(at))
        }
    }
}
