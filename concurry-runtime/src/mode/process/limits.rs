//! Limits across the process boundary: a worker child asks its parent, which hosts the
//! pool's [`LimitSet`], and holds the granted acquisitions as leases until the child gives
//! them back or dies.
//!
//! In a child, [`limits()`](crate::limits) is a [`LimitSet`] backed by [`RemoteLimits`], and
//! what it grants is an [`Acquisition`] holding a [`RemoteAcquisition`].

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::child::{Link, link};
use crate::limit::{
    Acquisition, LimitError, LimitKind, LimitSet, LimitStats, RateAlgorithm, WaitError,
};
use crate::sync::os::{Arc, AtomicBool, AtomicU64, Mutex, OnceLock, Ordering, lock};
use crate::wire::{Envelope, Kind, LimitFault, LimitRequest, decode, encode};

// ---------------------------------------------------------------------------------------
// Child side.

/// The pool's limits as a worker child reaches them: each request goes to the parent, which
/// holds the pool's [`LimitSet`]. One per child process, shared by every clone; reached
/// through [`limits()`](crate::limits), which wraps it in a `LimitSet`.
#[derive(Clone)]
pub(crate) struct RemoteLimits {
    shared: Arc<Shared>,
}

struct Shared {
    link: Arc<Link>,
    /// The parent set's name and limits, asked for once (they never change).
    desc: OnceLock<Desc>,
}

/// What a child knows of its pool's set without asking again.
struct Desc {
    name: Option<String>,
    keys: Vec<String>,
    /// The keys of call and resource limits: one unit each per call.
    auto: Vec<String>,
}

impl fmt::Debug for RemoteLimits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RemoteLimits")
    }
}

/// Units granted by the parent; given back when dropped.
pub(crate) struct RemoteAcquisition {
    link: Arc<Link>,
    lease: u64,
    /// What the lease holds, as the parent counts it: keys with their summed, non-zero
    /// amounts, corrected by updates.
    charged: Vec<(String, u64)>,
}

impl fmt::Debug for RemoteAcquisition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.charged.iter().map(|(k, n)| (k, n)))
            .finish()
    }
}

fn owner_gone<K: AsRef<str>>(keys: impl IntoIterator<Item = K>) -> LimitError {
    let keys: Vec<String> = keys.into_iter().map(|k| k.as_ref().to_string()).collect();
    LimitError::Timeout {
        keys: format!("{} (the pool's owner process is gone)", keys.join(", ")),
    }
}

/// Every rate algorithm, to read one back from its name on the wire.
const ALGORITHMS: [RateAlgorithm; 5] = [
    RateAlgorithm::TokenBucket,
    RateAlgorithm::LeakyBucket,
    RateAlgorithm::SlidingWindow,
    RateAlgorithm::FixedWindow,
    RateAlgorithm::Gcra,
];

/// The reply to `LimitStats`: the set's name and a snapshot of every limit.
#[derive(Debug, Serialize, Deserialize)]
struct WireStats {
    name: Option<String>,
    rows: Vec<WireRow>,
}

/// One [`LimitStats`] on the wire (`kind`: 0 rate, 1 call, 2 resource; `algorithm` by
/// name), so the public types need no serde.
#[derive(Debug, Serialize, Deserialize)]
struct WireRow {
    key: String,
    kind: u8,
    algorithm: String,
    capacity: u64,
    used: u64,
    available: u64,
    waiters: u64,
}

impl WireStats {
    fn of(set: &LimitSet) -> Self {
        let rows = set
            .stats()
            .into_iter()
            .map(|s| {
                let (kind, algorithm) = match s.kind {
                    LimitKind::Rate(a) => (0, a.as_str()),
                    LimitKind::Call(a) => (1, a.as_str()),
                    LimitKind::Resource => (2, ""),
                };
                WireRow {
                    key: s.key,
                    kind,
                    algorithm: algorithm.to_string(),
                    capacity: s.capacity,
                    used: s.used,
                    available: s.available,
                    waiters: u64::try_from(s.waiters).unwrap_or(u64::MAX),
                }
            })
            .collect();
        WireStats {
            name: set.name().map(str::to_string),
            rows,
        }
    }

    fn stats(self) -> Vec<LimitStats> {
        self.rows
            .into_iter()
            .map(|r| {
                let algorithm = ALGORITHMS
                    .into_iter()
                    .find(|a| a.as_str() == r.algorithm)
                    .unwrap_or_default();
                LimitStats {
                    key: r.key,
                    kind: match r.kind {
                        0 => LimitKind::Rate(algorithm),
                        1 => LimitKind::Call(algorithm),
                        _ => LimitKind::Resource,
                    },
                    capacity: r.capacity,
                    used: r.used,
                    available: r.available,
                    waiters: usize::try_from(r.waiters).unwrap_or(usize::MAX),
                }
            })
            .collect()
    }
}

/// A fresh id for a lease or a stats request (ids of one child never repeat).
fn next_id() -> u64 {
    static IDS: AtomicU64 = AtomicU64::new(1);
    IDS.fetch_add(1, Ordering::Relaxed)
}

impl RemoteLimits {
    /// The limits of this worker child's pool; `None` outside a worker child.
    pub(crate) fn current() -> Option<Self> {
        static CURRENT: OnceLock<RemoteLimits> = OnceLock::new();
        let link = link()?;
        Some(
            CURRENT
                .get_or_init(|| RemoteLimits {
                    shared: Arc::new(Shared {
                        link: link.clone(),
                        desc: OnceLock::new(),
                    }),
                })
                .clone(),
        )
    }

    /// True if both are the same child's handle.
    pub(crate) fn same_as(&self, other: &RemoteLimits) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }

    /// A fresh snapshot of the parent's set; `None` if the parent is gone.
    fn fetch(&self) -> Option<WireStats> {
        let link = &self.shared.link;
        let id = next_id();
        link.send(Kind::LimitStats, id, &(), "limit stats").ok()?;
        decode::<WireStats>(&link.wait_reply(id)?, "limit stats").ok()
    }

    /// The set's name and keys, asked for on first use; `None` if the parent is gone.
    fn desc(&self) -> Option<&Desc> {
        if let Some(d) = self.shared.desc.get() {
            return Some(d);
        }
        let stats = self.fetch()?;
        let auto = stats
            .rows
            .iter()
            .filter(|r| r.kind != 0)
            .map(|r| r.key.clone())
            .collect();
        let desc = Desc {
            keys: stats.rows.into_iter().map(|r| r.key).collect(),
            name: stats.name,
            auto,
        };
        Some(self.shared.desc.get_or_init(|| desc))
    }

    /// The parent set's name (`None` also if the parent is gone).
    pub(crate) fn name(&self) -> Option<&str> {
        self.desc()?.name.as_deref()
    }

    /// The parent set's keys (none if the parent is gone).
    pub(crate) fn keys(&self) -> &[String] {
        self.desc().map_or(&[][..], |d| &d.keys[..])
    }

    /// True if the parent's set has no limits (false if the parent is gone: unknown).
    pub(crate) fn is_empty(&self) -> bool {
        self.desc().is_some_and(|d| d.keys.is_empty())
    }

    /// The parent set's stats now (empty if the parent is gone).
    pub(crate) fn stats(&self) -> Vec<LimitStats> {
        self.fetch().map_or_else(Vec::new, WireStats::stats)
    }

    /// One unit of each call and resource limit of the parent's set, as a pool takes per
    /// call.
    pub(crate) fn auto_request(&self) -> Result<Vec<(String, u64)>, LimitError> {
        match self.desc() {
            Some(d) => Ok(d.auto.iter().map(|k| (k.clone(), 1)).collect()),
            None => Err(owner_gone(["call and resource limits"])),
        }
    }

    /// Blocks until the parent grants every key (`timeout: None`: as long as it takes;
    /// `Some(ZERO)`: only if they fit now, else [`LimitError::WouldBlock`]).
    ///
    /// # Errors
    ///
    /// As `LimitSet::acquire`; [`LimitError::Timeout`] if the parent is gone.
    pub(crate) fn acquire(
        &self,
        request: &[(&str, u64)],
        timeout: Option<Duration>,
    ) -> Result<RemoteAcquisition, LimitError> {
        self.request(request, timeout).map_err(|f| match f {
            Failure::Refused(e) => e,
            Failure::Gone => owner_gone(request.iter().map(|(k, _)| *k)),
        })
    }

    /// One slice of a longer wait: `Ok(None)` if the parent could not grant the request
    /// within `slice` (a caller between slices checks whether it should still wait).
    ///
    /// # Errors
    ///
    /// As [`acquire`](RemoteLimits::acquire), without the timeout.
    pub(crate) fn acquire_slice(
        &self,
        request: &[(&str, u64)],
        slice: Duration,
    ) -> Result<Option<RemoteAcquisition>, LimitError> {
        match self.request(request, Some(slice)) {
            Ok(a) => Ok(Some(a)),
            Err(Failure::Refused(LimitError::Timeout { .. })) => Ok(None),
            Err(Failure::Refused(e)) => Err(e),
            Err(Failure::Gone) => Err(owner_gone(request.iter().map(|(k, _)| *k))),
        }
    }

    /// As [`acquire`](RemoteLimits::acquire) with owned keys, on tokio's blocking pool so an
    /// async caller's thread stays free. Dropping the future gives the units back once the
    /// parent has granted them.
    pub(crate) async fn acquire_async(
        &self,
        request: Vec<(String, u64)>,
        timeout: Option<Duration>,
    ) -> Result<RemoteAcquisition, LimitError> {
        self.off_thread(request, move |this, request| this.acquire(request, timeout))
            .await
            .and_then(|r| r)
    }

    /// As [`acquire_slice`](RemoteLimits::acquire_slice), on tokio's blocking pool.
    pub(crate) async fn acquire_slice_async(
        &self,
        request: Vec<(String, u64)>,
        slice: Duration,
    ) -> Result<Option<RemoteAcquisition>, LimitError> {
        self.off_thread(request, move |this, request| {
            this.acquire_slice(request, slice)
        })
        .await
        .and_then(|r| r)
    }

    /// Runs `f` on tokio's blocking pool; an error if it could not run to the end.
    async fn off_thread<T: Send + 'static>(
        &self,
        request: Vec<(String, u64)>,
        f: impl FnOnce(&RemoteLimits, &[(&str, u64)]) -> T + Send + 'static,
    ) -> Result<T, LimitError> {
        let this = self.clone();
        let keys: Vec<String> = request.iter().map(|(k, _)| k.clone()).collect();
        crate::runtime::runtime()
            .spawn_blocking(move || {
                let request: Vec<(&str, u64)> =
                    request.iter().map(|(k, n)| (k.as_str(), *n)).collect();
                f(&this, &request)
            })
            .await
            .map_err(|_| owner_gone(keys))
    }

    fn request(
        &self,
        request: &[(&str, u64)],
        timeout: Option<Duration>,
    ) -> Result<RemoteAcquisition, Failure> {
        let link = &self.shared.link;
        let lease = next_id();
        let msg = LimitRequest {
            amounts: request
                .iter()
                .map(|(k, n)| ((*k).to_string(), *n))
                .collect(),
            // Rounded up, so only a zero timeout means "now or never".
            timeout_ms: timeout
                .map(|t| u64::try_from(t.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX)),
        };
        link.send(Kind::LimitAcquire, lease, &msg, "limit request")
            .map_err(|_| Failure::Gone)?;
        match reply(link, lease) {
            Some(Ok(())) => {
                // As the parent's set counts it: amounts summed per key, zeros dropped.
                let mut charged: Vec<(String, u64)> = Vec::with_capacity(msg.amounts.len());
                for (key, n) in msg.amounts {
                    match charged.iter_mut().find(|(k, _)| *k == key) {
                        Some((_, m)) => *m = m.saturating_add(n),
                        None => charged.push((key, n)),
                    }
                }
                charged.retain(|&(_, n)| n > 0);
                Ok(RemoteAcquisition {
                    link: link.clone(),
                    lease,
                    charged,
                })
            }
            Some(Err(e)) => Err(Failure::Refused(e)),
            None => Err(Failure::Gone),
        }
    }
}

/// Why a request to the parent got no units.
enum Failure {
    /// The parent answered with this error.
    Refused(LimitError),
    /// The channel to the parent is closed.
    Gone,
}

fn reply(link: &Link, id: u64) -> Option<Result<(), LimitError>> {
    let bytes = link.wait_reply(id)?;
    match decode::<Result<(), LimitFault>>(&bytes, "limit reply") {
        Ok(r) => Some(r.map_err(LimitError::from)),
        Err(_) => None,
    }
}

impl RemoteAcquisition {
    /// Every key this lease holds, with its units.
    pub(crate) fn charged_all(&self) -> impl Iterator<Item = (&str, u64)> {
        self.charged.iter().map(|(k, n)| (k.as_str(), *n))
    }

    /// The units this lease holds for `key`.
    pub(crate) fn charged(&self, key: &str) -> Option<u64> {
        self.charged.iter().find(|(k, _)| k == key).map(|&(_, n)| n)
    }

    /// Corrects the charges in the parent (as `Acquisition::update`, which the parent runs
    /// on its lease: whole or not at all).
    ///
    /// # Errors
    ///
    /// As `Acquisition::update`; [`LimitError::Timeout`] if the parent is gone.
    pub(crate) fn update(&mut self, usage: &[(&str, u64)]) -> Result<(), LimitError> {
        let msg: Vec<(String, u64)> = usage.iter().map(|(k, n)| ((*k).to_string(), *n)).collect();
        if self
            .link
            .send(Kind::LimitUpdate, self.lease, &msg, "limit update")
            .is_err()
        {
            return Err(owner_gone(usage.iter().map(|(k, _)| *k)));
        }
        reply(&self.link, self.lease)
            .unwrap_or_else(|| Err(owner_gone(usage.iter().map(|(k, _)| *k))))?;
        // The parent applied the whole update: mirror it.
        for &(key, used) in usage {
            if let Some(slot) = self.charged.iter_mut().find(|(k, _)| k == key) {
                slot.1 = used;
            }
        }
        Ok(())
    }
}

impl Drop for RemoteAcquisition {
    fn drop(&mut self) {
        let _ = self
            .link
            .send(Kind::LimitRelease, self.lease, &(), "limit release");
    }
}

// ---------------------------------------------------------------------------------------
// Parent side.

/// Where the host sends its replies (the child's connection): a `LimitReply` envelope with
/// this id and payload.
pub(crate) trait Replier: Send + Sync + 'static {
    fn reply(&self, id: u64, payload: Vec<u8>);
}

/// Encodes `value` and sends it as the reply to `id`.
fn answer<T: Serialize>(out: &dyn Replier, id: u64, value: &T) {
    // Our own types always encode; if one did not, the child would wait for a parent that
    // is alive, so say so loudly.
    match encode(value, "limit reply") {
        Ok(payload) => out.reply(id, payload),
        Err(e) => tracing::error!(error = %e, "concurry: could not encode a limit reply"),
    }
}

/// The parent's end: grants a child's requests from the pool's set and keeps its leases.
pub(crate) struct Host {
    set: LimitSet,
    leases: Mutex<HashMap<u64, Acquisition>>,
    /// Blocking acquisitions wait on their own thread, started on first use.
    acquirer: Mutex<Option<crossbeam_channel::Sender<Job>>>,
    closed: AtomicBool,
}

struct Job {
    lease: u64,
    request: LimitRequest,
    out: Arc<dyn Replier>,
}

impl Host {
    /// A host for one child. A request names only the keys it wants: the call's own units
    /// are the pool's business, as with `limits()` inside a method.
    pub(crate) fn new(set: Option<&LimitSet>) -> Arc<Self> {
        Arc::new(Host {
            set: set.map_or_else(LimitSet::empty, LimitSet::for_call),
            leases: Mutex::new(HashMap::new()),
            acquirer: Mutex::new(None),
            closed: AtomicBool::new(false),
        })
    }

    /// Handles a `LimitAcquire`, `LimitUpdate`, `LimitRelease` or `LimitStats` from the
    /// child; an undecodable payload is returned as an error (the channel is then broken).
    pub(crate) fn on_message(
        self: &Arc<Self>,
        env: Envelope,
        out: Arc<dyn Replier>,
    ) -> Result<(), crate::wire::WireError> {
        match env.kind {
            Kind::LimitAcquire => {
                let request: LimitRequest = decode(&env.payload, "limit request")?;
                if request.timeout_ms == Some(0) {
                    // `try_acquire`: answered at once, not queued behind blocking requests.
                    let amounts = amounts(&request);
                    let r = match self.set.try_acquire(&amounts) {
                        Ok(acq) => {
                            self.file(env.id, acq);
                            Ok(())
                        }
                        Err(e) => Err(LimitFault::from(e)),
                    };
                    answer(&*out, env.id, &r);
                } else {
                    self.enqueue(Job {
                        lease: env.id,
                        request,
                        out,
                    });
                }
            }
            Kind::LimitUpdate => {
                let usage: Vec<(String, u64)> = decode(&env.payload, "limit update")?;
                let usage: Vec<(&str, u64)> = usage.iter().map(|(k, n)| (k.as_str(), *n)).collect();
                let r = match lock(&self.leases).get_mut(&env.id) {
                    Some(acq) => acq.update(&usage).map_err(LimitFault::from),
                    None => Err(LimitFault::NotUpdatable {
                        key: usage
                            .first()
                            .map_or_else(String::new, |(k, _)| (*k).to_string()),
                        reason: "this acquisition was already given back".into(),
                    }),
                };
                answer(&*out, env.id, &r);
            }
            Kind::LimitRelease => {
                let acq = lock(&self.leases).remove(&env.id);
                drop(acq);
            }
            Kind::LimitStats => answer(&*out, env.id, &WireStats::of(&self.set)),
            _ => {}
        }
        Ok(())
    }

    /// Keeps a granted acquisition until the child gives it back (or dies: then at once).
    fn file(&self, lease: u64, acq: Acquisition) {
        lock(&self.leases).insert(lease, acq);
        if self.closed.load(Ordering::Acquire) {
            let leases = std::mem::take(&mut *lock(&self.leases));
            drop(leases);
        }
    }

    fn enqueue(self: &Arc<Self>, job: Job) {
        let mut acquirer = lock(&self.acquirer);
        if acquirer.is_none() {
            let (tx, rx) = crossbeam_channel::unbounded::<Job>();
            let host = self.clone();
            let started = std::thread::Builder::new()
                .name("concurry-limits".into())
                .spawn(move || rx.iter().for_each(|job| host.grant(job)));
            if started.is_err() {
                let r: Result<(), LimitFault> = Err(LimitFault::Timeout {
                    keys: "(no thread to wait for limits)".into(),
                });
                answer(&*job.out, job.lease, &r);
                return;
            }
            *acquirer = Some(tx);
        }
        if let Some(tx) = acquirer.as_ref() {
            let _ = tx.send(job);
        }
    }

    /// Waits for the units of one request and files the lease (on the acquirer thread).
    /// The wait keeps its place in the set's queue until granted, timed out, or the child
    /// is gone (`close` wakes it).
    fn grant(&self, job: Job) {
        let amounts = amounts(&job.request);
        let timeout = job.request.timeout_ms.map(Duration::from_millis);
        let closed = || self.closed.load(Ordering::Acquire);
        let r: Result<(), LimitFault> =
            match self.set.acquire_cancellable(&amounts, timeout, &closed) {
                Ok(acq) => {
                    self.file(job.lease, acq);
                    if closed() {
                        return;
                    }
                    Ok(())
                }
                Err(WaitError::Cancelled) => return,
                Err(WaitError::Limit(e)) => Err(e.into()),
            };
        answer(&*job.out, job.lease, &r);
    }

    /// The child is gone: its leases go back to the set, pending requests are dropped.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        // A request waiting for units gives up now.
        self.set.wake_all();
        lock(&self.acquirer).take();
        let leases = std::mem::take(&mut *lock(&self.leases));
        drop(leases);
    }
}

fn amounts(request: &LimitRequest) -> Vec<(&str, u64)> {
    request
        .amounts
        .iter()
        .map(|(k, n)| (k.as_str(), *n))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixStream;
    use std::time::Duration;

    use super::{Arc, Link, OnceLock, RemoteAcquisition, RemoteLimits, Shared};
    use crate::limit::{LimitError, LimitSet};

    /// A child's handle whose parent end is already closed.
    fn orphaned() -> RemoteLimits {
        let (ours, theirs) = UnixStream::pair().unwrap();
        drop(theirs);
        let write_half = ours.try_clone().unwrap();
        RemoteLimits {
            shared: Arc::new(Shared {
                link: Arc::new(Link::new(ours, write_half, crate::wire::DEFAULT_MAX_FRAME)),
                desc: OnceLock::new(),
            }),
        }
    }

    fn gone(e: &LimitError) -> bool {
        matches!(e, LimitError::Timeout { keys } if keys.contains("owner process is gone"))
    }

    #[test]
    fn a_gone_parent_is_a_typed_error_not_a_hang() {
        let remote = orphaned();
        let set = LimitSet::hosted_by(remote.clone());
        let err = set.acquire(&[("tokens", 1)]).unwrap_err();
        assert!(gone(&err), "{err:?}");
        assert!(gone(&set.try_acquire(&[("tokens", 1)]).unwrap_err()));
        let err = set
            .acquire_timeout(&[("tokens", 1)], Duration::from_secs(60))
            .unwrap_err();
        assert!(gone(&err), "{err:?}");
        let err = crate::runtime::block_on(set.acquire_async(&[("tokens", 1)])).unwrap_err();
        assert!(gone(&err), "{err:?}");
        assert!(gone(
            &remote
                .acquire_slice(&[("tokens", 1)], Duration::from_secs(60))
                .unwrap_err()
        ));
        // What the set is cannot be known any more: said plainly, not guessed.
        assert!(set.stats().is_empty() && set.keys().next().is_none() && set.name().is_none());
        assert!(!set.is_empty());
        assert!(set.same_as(&LimitSet::hosted_by(remote.clone())));
        // A pool's per-call units cannot be taken either.
        assert!(matches!(
            set.acquire_call(&|| false),
            Err(crate::limit::WaitError::Limit(ref e)) if gone(e)
        ));

        // A lease whose parent went away: the update fails typed, the charge stays as it was,
        // and dropping it is quiet.
        let mut lease = crate::limit::Acquisition::remote(RemoteAcquisition {
            link: remote.shared.link.clone(),
            lease: 1,
            charged: vec![("tokens".into(), 5)],
        });
        assert!(gone(&lease.update(&[("tokens", 2)]).unwrap_err()));
        assert_eq!(lease.charged("tokens"), Some(5));
        drop(lease);
    }
}
