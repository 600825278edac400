//! Limits across the process boundary: a worker child asks its parent, which hosts the
//! pool's [`LimitSet`], and holds the granted acquisitions as leases until the child gives
//! them back or dies.

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};

use super::child::{Link, link};
use crate::limit::{Acquisition, LimitError, LimitSet};
use crate::sync::os::{Arc, AtomicBool, AtomicU64, Mutex, Ordering, lock};
use crate::wire::{Envelope, Kind, LimitFault, LimitRequest, decode};

/// How long one blocking wait of the parent's acquirer lasts before it checks whether the
/// child is still there.
const SLICE: Duration = Duration::from_millis(50);

// ---------------------------------------------------------------------------------------
// Child side.

/// The pool's limits as a worker child reaches them: each request goes to the parent, which
/// holds the pool's [`LimitSet`]. Internal: `concurry::limits()` will route through it in a
/// child.
#[doc(hidden)]
#[derive(Clone)]
pub struct RemoteLimits {
    link: Arc<Link>,
}

impl fmt::Debug for RemoteLimits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RemoteLimits")
    }
}

/// Units granted by the parent; given back when dropped.
#[doc(hidden)]
pub struct RemoteAcquisition {
    link: Arc<Link>,
    lease: u64,
}

impl fmt::Debug for RemoteAcquisition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteAcquisition")
            .field("lease", &self.lease)
            .finish()
    }
}

fn owner_gone(request: &[(&str, u64)]) -> LimitError {
    let keys: Vec<&str> = request.iter().map(|(k, _)| *k).collect();
    LimitError::Timeout {
        keys: format!("{} (the pool's owner process is gone)", keys.join(", ")),
    }
}

impl RemoteLimits {
    /// The limits of this worker child's pool; `None` outside a worker child.
    pub fn current() -> Option<Self> {
        link().map(|l| RemoteLimits { link: l.clone() })
    }

    /// Blocks until the parent grants every key (as `LimitSet::acquire`).
    ///
    /// # Errors
    ///
    /// As `LimitSet::acquire`; [`LimitError::Timeout`] if the parent is gone.
    pub fn acquire(&self, request: &[(&str, u64)]) -> Result<RemoteAcquisition, LimitError> {
        self.request(request, None)
    }

    /// As [`acquire`](RemoteLimits::acquire), giving up after `timeout`.
    ///
    /// # Errors
    ///
    /// As `acquire`.
    pub fn acquire_timeout(
        &self,
        request: &[(&str, u64)],
        timeout: Duration,
    ) -> Result<RemoteAcquisition, LimitError> {
        self.request(request, Some(timeout))
    }

    fn request(
        &self,
        request: &[(&str, u64)],
        timeout: Option<Duration>,
    ) -> Result<RemoteAcquisition, LimitError> {
        static LEASES: AtomicU64 = AtomicU64::new(1);
        let lease = LEASES.fetch_add(1, Ordering::Relaxed);
        let msg = LimitRequest {
            amounts: request
                .iter()
                .map(|(k, n)| ((*k).to_string(), *n))
                .collect(),
            timeout_ms: timeout.map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
        };
        if self
            .link
            .send(Kind::LimitAcquire, lease, &msg, "limit request")
            .is_err()
        {
            return Err(owner_gone(request));
        }
        match self.reply(lease) {
            Some(Ok(())) => Ok(RemoteAcquisition {
                link: self.link.clone(),
                lease,
            }),
            Some(Err(e)) => Err(e),
            None => Err(owner_gone(request)),
        }
    }

    fn reply(&self, lease: u64) -> Option<Result<(), LimitError>> {
        reply(&self.link, lease)
    }
}

fn reply(link: &Link, lease: u64) -> Option<Result<(), LimitError>> {
    let bytes = link.wait_reply(lease)?;
    match decode::<Result<(), LimitFault>>(&bytes, "limit reply") {
        Ok(r) => Some(r.map_err(LimitError::from)),
        Err(_) => None,
    }
}

impl RemoteAcquisition {
    /// Corrects the charges to what was really used (as `Acquisition::update`); problems
    /// are logged.
    pub fn update(&mut self, usage: &[(&str, u64)]) {
        if let Err(e) = self.try_update(usage) {
            tracing::warn!(error = %e, "concurry: limit update ignored");
        }
    }

    /// As [`update`](RemoteAcquisition::update), returning the parent's error.
    ///
    /// # Errors
    ///
    /// As `Acquisition::try_update`; [`LimitError::Timeout`] if the parent is gone.
    pub fn try_update(&mut self, usage: &[(&str, u64)]) -> Result<(), LimitError> {
        let msg: Vec<(String, u64)> = usage.iter().map(|(k, n)| ((*k).to_string(), *n)).collect();
        if self
            .link
            .send(Kind::LimitUpdate, self.lease, &msg, "limit update")
            .is_err()
        {
            return Err(owner_gone(usage));
        }
        reply(&self.link, self.lease).unwrap_or_else(|| Err(owner_gone(usage)))
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

/// Where the host sends its replies (the child's connection).
pub(crate) trait Replier: Send + Sync + 'static {
    fn reply(&self, lease: u64, result: Result<(), LimitFault>);
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

    /// Handles a `LimitAcquire`, `LimitUpdate` or `LimitRelease` from the child; an
    /// undecodable payload is returned as an error (the channel is then broken).
    pub(crate) fn on_message(
        self: &Arc<Self>,
        env: Envelope,
        out: Arc<dyn Replier>,
    ) -> Result<(), crate::wire::WireError> {
        match env.kind {
            Kind::LimitAcquire => {
                let request: LimitRequest = decode(&env.payload, "limit request")?;
                self.enqueue(Job {
                    lease: env.id,
                    request,
                    out,
                });
            }
            Kind::LimitUpdate => {
                let usage: Vec<(String, u64)> = decode(&env.payload, "limit update")?;
                let usage: Vec<(&str, u64)> = usage.iter().map(|(k, n)| (k.as_str(), *n)).collect();
                let r = match lock(&self.leases).get_mut(&env.id) {
                    Some(acq) => acq.try_update(&usage).map_err(LimitFault::from),
                    None => Err(LimitFault::NotUpdatable {
                        key: usage
                            .first()
                            .map_or_else(String::new, |(k, _)| (*k).to_string()),
                        reason: "this acquisition was already given back".into(),
                    }),
                };
                out.reply(env.id, r);
            }
            Kind::LimitRelease => {
                let acq = lock(&self.leases).remove(&env.id);
                drop(acq);
            }
            _ => {}
        }
        Ok(())
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
                job.out.reply(
                    job.lease,
                    Err(LimitFault::Timeout {
                        keys: "(no thread to wait for limits)".into(),
                    }),
                );
                return;
            }
            *acquirer = Some(tx);
        }
        if let Some(tx) = acquirer.as_ref() {
            let _ = tx.send(job);
        }
    }

    /// Waits for the units of one request and files the lease (on the acquirer thread).
    fn grant(&self, job: Job) {
        let amounts: Vec<(&str, u64)> = job
            .request
            .amounts
            .iter()
            .map(|(k, n)| (k.as_str(), *n))
            .collect();
        let deadline = job
            .request
            .timeout_ms
            .and_then(|ms| Instant::now().checked_add(Duration::from_millis(ms)));
        loop {
            if self.closed.load(Ordering::Acquire) {
                return;
            }
            let slice = deadline.map_or(SLICE, |d| {
                d.saturating_duration_since(Instant::now()).min(SLICE)
            });
            match self.set.acquire_timeout(&amounts, slice) {
                Ok(acq) => {
                    lock(&self.leases).insert(job.lease, acq);
                    if self.closed.load(Ordering::Acquire) {
                        lock(&self.leases).clear();
                        return;
                    }
                    return job.out.reply(job.lease, Ok(()));
                }
                Err(LimitError::Timeout { .. }) if deadline.is_none_or(|d| Instant::now() < d) => {}
                Err(e) => return job.out.reply(job.lease, Err(e.into())),
            }
        }
    }

    /// The child is gone: its leases go back to the set, pending requests are dropped.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        lock(&self.acquirer).take();
        let leases = std::mem::take(&mut *lock(&self.leases));
        drop(leases);
    }
}
