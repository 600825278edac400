//! The owner's side: [`LimitHost`] grants one served worker's requests from the pool's set
//! and keeps its leases.

use std::collections::HashMap;
use std::time::Duration;

use super::link::{HostedStats, LimitMsg, LimitReply, LimitRequest};
use crate::limit::{Acquisition, LimitError, LimitSet, WaitError};
use crate::sync::os::{Arc, AtomicBool, Mutex, Ordering, lock};

/// Where a host sends its answers (back over the served worker's link).
pub(crate) trait LimitReplier: Send + Sync + 'static {
    /// Sends `reply`, the answer to the message with `id`.
    fn reply(&self, id: u64, reply: LimitReply);
}

/// The owner's end of one served worker's link: grants its requests from the pool's set
/// and keeps its leases until it gives them back or is gone ([`close`](LimitHost::close)).
pub(crate) struct LimitHost {
    set: LimitSet,
    leases: Mutex<HashMap<u64, Acquisition>>,
    /// Blocking acquisitions wait on their own thread, started on first use.
    acquirer: Mutex<Option<crossbeam_channel::Sender<Job>>>,
    closed: AtomicBool,
}

struct Job {
    lease: u64,
    request: LimitRequest,
    out: Arc<dyn LimitReplier>,
}

impl LimitHost {
    /// A host for one served worker of a pool with `set` (or without limits: then every key
    /// is refused, as `limits()` refuses them in a local pool without limits). A request
    /// names only the keys it wants: the call's own units are the pool's business, as with
    /// `limits()` inside a method.
    pub(crate) fn new(set: Option<&LimitSet>) -> Arc<Self> {
        Arc::new(LimitHost {
            set: set.map_or_else(LimitSet::empty, LimitSet::for_call),
            leases: Mutex::new(HashMap::new()),
            acquirer: Mutex::new(None),
            closed: AtomicBool::new(false),
        })
    }

    /// Handles one message from the worker; answers (if the message wants one) through
    /// `out`, now or, for a request that must wait, once it is granted or has timed out.
    pub(crate) fn on_message(self: &Arc<Self>, msg: LimitMsg, out: Arc<dyn LimitReplier>) {
        match msg {
            LimitMsg::Acquire { lease, request } => {
                if request.timeout_ms == Some(0) {
                    // `try_acquire`: answered at once, not queued behind blocking requests.
                    let r = self
                        .set
                        .try_acquire(&amounts(&request))
                        .map(|acq| self.file(lease, acq));
                    out.reply(lease, LimitReply::Done(r));
                } else {
                    self.enqueue(Job {
                        lease,
                        request,
                        out,
                    });
                }
            }
            LimitMsg::Update { lease, usage } => {
                let usage: Vec<(&str, u64)> = usage.iter().map(|(k, n)| (k.as_str(), *n)).collect();
                let r = match lock(&self.leases).get_mut(&lease) {
                    Some(acq) => acq.update(&usage),
                    None => Err(LimitError::NotUpdatable {
                        key: usage
                            .first()
                            .map_or_else(String::new, |(k, _)| (*k).to_string()),
                        reason: "this acquisition was already given back".into(),
                    }),
                };
                out.reply(lease, LimitReply::Done(r));
            }
            LimitMsg::Release { lease } => {
                let acq = lock(&self.leases).remove(&lease);
                drop(acq);
            }
            LimitMsg::Stats { id } => {
                let stats = HostedStats {
                    name: self.set.name().map(str::to_string),
                    stats: self.set.stats(),
                };
                out.reply(id, LimitReply::Stats(stats));
            }
        }
    }

    /// Keeps a granted acquisition until the worker gives it back (or is gone: then at once).
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
                let r = Err(LimitError::Timeout {
                    keys: "(no thread to wait for limits)".into(),
                });
                job.out.reply(job.lease, LimitReply::Done(r));
                return;
            }
            *acquirer = Some(tx);
        }
        if let Some(tx) = acquirer.as_ref() {
            let _ = tx.send(job);
        }
    }

    /// Waits for the units of one request and files the lease (on the acquirer thread).
    /// The wait keeps its place in the set's queue until granted, timed out, or the worker
    /// is gone (`close` wakes it).
    fn grant(&self, job: Job) {
        let amounts = amounts(&job.request);
        let timeout = job.request.timeout_ms.map(Duration::from_millis);
        let closed = || self.closed.load(Ordering::Acquire);
        let r = match self.set.acquire_cancellable(&amounts, timeout, &closed) {
            Ok(acq) => {
                self.file(job.lease, acq);
                if closed() {
                    return;
                }
                Ok(())
            }
            Err(WaitError::Cancelled) => return,
            Err(WaitError::Limit(e)) => Err(e),
        };
        job.out.reply(job.lease, LimitReply::Done(r));
    }

    /// The worker is gone: its leases go back to the set, pending requests are dropped.
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
