//! The served worker's side: [`HostedLimits`] asks the host over its [`LimitLink`] and holds
//! what it grants as [`HostedAcquisition`]s.
//!
//! In a served call, [`limits()`](crate::limits) is a [`LimitSet`](crate::LimitSet) backed
//! by the call's `HostedLimits`, and what it grants is an
//! [`Acquisition`](crate::Acquisition) holding a `HostedAcquisition`.

use std::fmt;
use std::time::Duration;

use super::link::{HostedStats, LimitLink, LimitMsg, LimitReply, LimitRequest};
use crate::limit::set::{Meta, POLL, Wait, WaitError, Want};
use crate::limit::{Acquisition, LimitError, LimitKind, LimitStats};
use crate::sync::os::{Arc, AtomicU64, OnceLock, Ordering};

/// The pool's limits as one served worker reaches them: each request goes to the host over
/// the worker's link. Shared by every clone (every call of that worker).
#[derive(Clone)]
pub(crate) struct HostedLimits {
    shared: Arc<Shared>,
}

struct Shared {
    link: Arc<dyn LimitLink>,
    /// The host set's name and limits, asked for once (they never change).
    desc: OnceLock<Desc>,
    /// The next lease or stats id (ids of one link never repeat).
    ids: AtomicU64,
}

/// What a client knows of its host's set without asking again.
struct Desc {
    name: Option<String>,
    keys: Vec<String>,
    /// The keys of call and resource limits: one unit each per call.
    auto: Vec<String>,
}

impl fmt::Debug for HostedLimits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HostedLimits")
    }
}

/// Units granted by the host; given back when dropped.
pub(crate) struct HostedAcquisition {
    link: Arc<dyn LimitLink>,
    lease: u64,
    /// What the lease holds, as the host counts it: keys with their summed, non-zero
    /// amounts, corrected by updates.
    charged: Vec<(String, u64)>,
}

impl fmt::Debug for HostedAcquisition {
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

/// A hosted acquire with a timeout: a zero timeout is answered like `try_acquire` (with
/// [`LimitError::WouldBlock`]); report it as the timeout it was.
fn timed_out(e: LimitError) -> LimitError {
    match e {
        LimitError::WouldBlock { keys } => LimitError::Timeout { keys },
        e => e,
    }
}

/// Why a request to the host got no units.
enum Failure {
    /// The host answered with this error.
    Refused(LimitError),
    /// The link to the host is closed.
    Gone,
}

fn borrowed(request: &[(String, u64)]) -> Vec<(&str, u64)> {
    request.iter().map(|(k, n)| (k.as_str(), *n)).collect()
}

impl HostedLimits {
    /// The limits a host serves over `link`: one per served worker.
    pub(crate) fn new(link: Arc<dyn LimitLink>) -> Self {
        HostedLimits {
            shared: Arc::new(Shared {
                link,
                desc: OnceLock::new(),
                ids: AtomicU64::new(1),
            }),
        }
    }

    /// True if both are the same worker's handle.
    pub(crate) fn same_as(&self, other: &HostedLimits) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }

    fn next_id(&self) -> u64 {
        self.shared.ids.fetch_add(1, Ordering::Relaxed)
    }

    /// A fresh snapshot of the host's set; `None` if the host is gone.
    fn fetch(&self) -> Option<HostedStats> {
        match self
            .shared
            .link
            .ask(LimitMsg::Stats { id: self.next_id() })?
        {
            LimitReply::Stats(s) => Some(s),
            LimitReply::Done(_) => None,
        }
    }

    /// The set's name and keys, asked for on first use; `None` if the host is gone.
    fn desc(&self) -> Option<&Desc> {
        if let Some(d) = self.shared.desc.get() {
            return Some(d);
        }
        let HostedStats { name, stats } = self.fetch()?;
        let auto = stats
            .iter()
            .filter(|s| !matches!(s.kind, LimitKind::Rate(_)))
            .map(|s| s.key.clone())
            .collect();
        let desc = Desc {
            keys: stats.into_iter().map(|s| s.key).collect(),
            name,
            auto,
        };
        Some(self.shared.desc.get_or_init(|| desc))
    }

    /// What the set is: asked once. If the host is gone, nothing is known: no name, no
    /// keys, not empty (unknown), and call units to take (so `acquire_call` says it is gone).
    pub(crate) fn meta(&self) -> Meta<'_> {
        match self.desc() {
            Some(d) => Meta {
                name: d.name.as_deref(),
                keys: &d.keys,
                empty: d.keys.is_empty(),
                call_units: !d.auto.is_empty(),
            },
            None => Meta {
                name: None,
                keys: &[],
                empty: false,
                call_units: true,
            },
        }
    }

    /// The host set's stats now (empty if the host is gone).
    pub(crate) fn stats(&self) -> Vec<LimitStats> {
        self.fetch().map_or_else(Vec::new, |s| s.stats)
    }

    /// One unit of each call and resource limit of the host's set, as a pool takes per call.
    fn call_request(&self) -> Result<Vec<(String, u64)>, LimitError> {
        match self.desc() {
            Some(d) => Ok(d.auto.iter().map(|k| (k.clone(), 1)).collect()),
            None => Err(owner_gone(["call and resource limits"])),
        }
    }

    /// `LimitSet`'s blocking acquisitions, answered by the host:
    /// - `Keys` now: as `try_acquire` ([`LimitError::WouldBlock`] if they do not fit);
    /// - `Keys` for a timeout: one request, waited for in the host, in the set's FIFO order
    ///   (`cancel` is not consulted: the host's wait cannot be interrupted from here);
    /// - `Call`: the call units, in slices of [`POLL`] so `cancel` is seen between them.
    ///
    /// If the host is gone: [`LimitError::Timeout`] saying so.
    pub(crate) fn acquire(
        &self,
        want: Want<'_>,
        wait: Wait,
        cancel: &dyn Fn() -> bool,
    ) -> Result<Option<Acquisition>, WaitError> {
        match want {
            Want::Keys(request) => {
                let r = match wait {
                    Wait::Now => self.acquire_keys(request, Some(Duration::ZERO)),
                    Wait::For(timeout) => self.acquire_keys(request, timeout).map_err(timed_out),
                };
                r.map(|a| Some(Acquisition::hosted(a)))
                    .map_err(WaitError::Limit)
            }
            Want::Call => {
                let request = self.call_request().map_err(WaitError::Limit)?;
                if request.is_empty() {
                    return Ok(None);
                }
                let request = borrowed(&request);
                loop {
                    if cancel() {
                        return Err(WaitError::Cancelled);
                    }
                    let slice = self.acquire_slice(&request, POLL);
                    if let Some(a) = slice.map_err(WaitError::Limit)? {
                        return Ok(Some(Acquisition::hosted(a)));
                    }
                }
            }
        }
    }

    /// As [`acquire`](HostedLimits::acquire) for a timeout, with each round trip on tokio's
    /// blocking pool so an async caller's thread stays free. Dropping the future gives the
    /// units back once the host has granted them.
    pub(crate) async fn acquire_async(
        &self,
        want: Want<'_>,
        timeout: Option<Duration>,
        cancel: impl Fn() -> bool + Unpin,
    ) -> Result<Option<Acquisition>, WaitError> {
        match want {
            Want::Keys(request) => {
                let owned = request.iter().map(|&(k, n)| (k.to_string(), n)).collect();
                self.off_thread(owned, move |this, request| {
                    this.acquire_keys(request, timeout)
                })
                .await
                .and_then(|r| r)
                .map(|a| Some(Acquisition::hosted(a)))
                .map_err(|e| WaitError::Limit(timed_out(e)))
            }
            Want::Call => {
                let request = self.call_request().map_err(WaitError::Limit)?;
                if request.is_empty() {
                    return Ok(None);
                }
                loop {
                    if cancel() {
                        return Err(WaitError::Cancelled);
                    }
                    let slice = self
                        .off_thread(request.clone(), move |this, request| {
                            this.acquire_slice(request, POLL)
                        })
                        .await
                        .and_then(|r| r);
                    if let Some(a) = slice.map_err(WaitError::Limit)? {
                        return Ok(Some(Acquisition::hosted(a)));
                    }
                }
            }
        }
    }

    /// Blocks until the host grants every key (`timeout: None`: as long as it takes;
    /// `Some(ZERO)`: only if they fit now, else [`LimitError::WouldBlock`]).
    fn acquire_keys(
        &self,
        request: &[(&str, u64)],
        timeout: Option<Duration>,
    ) -> Result<HostedAcquisition, LimitError> {
        self.request(request, timeout).map_err(|f| match f {
            Failure::Refused(e) => e,
            Failure::Gone => owner_gone(request.iter().map(|(k, _)| *k)),
        })
    }

    /// One slice of a longer wait: `Ok(None)` if the host could not grant the request
    /// within `slice` (a caller between slices checks whether it should still wait).
    pub(crate) fn acquire_slice(
        &self,
        request: &[(&str, u64)],
        slice: Duration,
    ) -> Result<Option<HostedAcquisition>, LimitError> {
        match self.request(request, Some(slice)) {
            Ok(a) => Ok(Some(a)),
            Err(Failure::Refused(LimitError::Timeout { .. })) => Ok(None),
            Err(Failure::Refused(e)) => Err(e),
            Err(Failure::Gone) => Err(owner_gone(request.iter().map(|(k, _)| *k))),
        }
    }

    /// Runs `f` on tokio's blocking pool; an error if it could not run to the end.
    async fn off_thread<T: Send + 'static>(
        &self,
        request: Vec<(String, u64)>,
        f: impl FnOnce(&HostedLimits, &[(&str, u64)]) -> T + Send + 'static,
    ) -> Result<T, LimitError> {
        let this = self.clone();
        let keys: Vec<String> = request.iter().map(|(k, _)| k.clone()).collect();
        crate::runtime::runtime()
            .spawn_blocking(move || f(&this, &borrowed(&request)))
            .await
            .map_err(|_| owner_gone(keys))
    }

    fn request(
        &self,
        request: &[(&str, u64)],
        timeout: Option<Duration>,
    ) -> Result<HostedAcquisition, Failure> {
        let link = &self.shared.link;
        let lease = self.next_id();
        let amounts: Vec<(String, u64)> = request
            .iter()
            .map(|(k, n)| ((*k).to_string(), *n))
            .collect();
        let msg = LimitMsg::Acquire {
            lease,
            request: LimitRequest {
                amounts: amounts.clone(),
                // Rounded up, so only a zero timeout means "now or never".
                timeout_ms: timeout
                    .map(|t| u64::try_from(t.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX)),
            },
        };
        match link.ask(msg) {
            Some(LimitReply::Done(Ok(()))) => {
                // As the host's set counts it: amounts summed per key, zeros dropped.
                let mut charged: Vec<(String, u64)> = Vec::with_capacity(amounts.len());
                for (key, n) in amounts {
                    match charged.iter_mut().find(|(k, _)| *k == key) {
                        Some((_, m)) => *m = m.saturating_add(n),
                        None => charged.push((key, n)),
                    }
                }
                charged.retain(|&(_, n)| n > 0);
                Ok(HostedAcquisition {
                    link: link.clone(),
                    lease,
                    charged,
                })
            }
            Some(LimitReply::Done(Err(e))) => Err(Failure::Refused(e)),
            Some(LimitReply::Stats(_)) | None => Err(Failure::Gone),
        }
    }
}

impl HostedAcquisition {
    /// Every key this lease holds, with its units.
    pub(crate) fn charged_all(&self) -> impl Iterator<Item = (&str, u64)> {
        self.charged.iter().map(|(k, n)| (k.as_str(), *n))
    }

    /// The units this lease holds for `key`.
    pub(crate) fn charged(&self, key: &str) -> Option<u64> {
        self.charged.iter().find(|(k, _)| k == key).map(|&(_, n)| n)
    }

    /// Corrects the charges in the host (as `Acquisition::update`, which the host runs on
    /// its lease: whole or not at all).
    ///
    /// # Errors
    ///
    /// As `Acquisition::update`; [`LimitError::Timeout`] if the host is gone.
    pub(crate) fn update(&mut self, usage: &[(&str, u64)]) -> Result<(), LimitError> {
        let gone = || owner_gone(usage.iter().map(|(k, _)| *k));
        let msg = LimitMsg::Update {
            lease: self.lease,
            usage: usage.iter().map(|(k, n)| ((*k).to_string(), *n)).collect(),
        };
        match self.link.ask(msg) {
            Some(LimitReply::Done(r)) => r?,
            Some(LimitReply::Stats(_)) | None => return Err(gone()),
        }
        // The host applied the whole update: mirror it.
        for &(key, used) in usage {
            if let Some(slot) = self.charged.iter_mut().find(|(k, _)| k == key) {
                slot.1 = used;
            }
        }
        Ok(())
    }

    /// A lease on `link` said to hold `charged` (tests make one whose host is gone).
    #[cfg(test)]
    pub(crate) fn for_tests(
        link: Arc<dyn LimitLink>,
        lease: u64,
        charged: Vec<(String, u64)>,
    ) -> Self {
        HostedAcquisition {
            link,
            lease,
            charged,
        }
    }
}

impl Drop for HostedAcquisition {
    fn drop(&mut self) {
        let _ = self.link.send(LimitMsg::Release { lease: self.lease });
    }
}
