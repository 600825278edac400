//! Named cluster pools, the pool side: the owner passes the calls of looked-up handles
//! through its own admission, call limits and supervisors ([`Forward`]); [`lookup`] makes
//! a pool whose one worker is another process's pool (`cluster/lookup.rs`).

use std::collections::BTreeMap;
use std::time::Duration;

use super::{Admit, Pool, Room, Shared, WeakPool, later};
use crate::cluster::Cluster;
use crate::cluster::names::{Answer, Registration, Served, find};
use crate::error::Error;
use crate::limit::{Acquisition, LimitSet, WaitError};
use crate::mode::process::backend::Remote;
use crate::options::{Mode, PoolConfig};
use crate::remote::supervisor::Completion;
use crate::remote::{Handle, RemoteWorker};
use crate::sync::{Arc, Ordering};
use crate::wire::{CallHeader, Fault, WireError};
use crate::worker::Worker;

/// What a call that failed on the owner's side says to the looked-up handle.
fn fault_of(error: Error) -> Fault {
    match error {
        Error::WorkerLost { message } => Fault::Lost { message },
        Error::Stopped => Fault::Lost {
            message: "the pool was stopped by its owner".into(),
        },
        Error::Timeout => Fault::Expired { late_us: 0 },
        Error::Cancelled => Fault::Cancelled,
        Error::Panicked { message } => Fault::Panicked { message },
        Error::Transport(WireError::TooLarge { len, max }) => Fault::TooLarge {
            len,
            max: max as u64,
        },
        other => Fault::Lost {
            message: format!("the pool's owner could not run the call: {other}"),
        },
    }
}

/// The owner's side of a named pool: calls of looked-up handles into its pool.
pub(crate) struct Forward<W: Worker>(pub(crate) WeakPool<W>);

impl<W> Served for Forward<W>
where
    W: Worker + RemoteWorker,
{
    fn instances(&self) -> BTreeMap<String, u32> {
        let mut out = BTreeMap::new();
        let Some(pool) = self.0.upgrade() else {
            return out;
        };
        if let Some(remote) = pool.backend_as::<Remote>() {
            for node in remote.locations().into_iter().flatten() {
                *out.entry(node).or_insert(0) += 1;
            }
        }
        out
    }

    fn usage(&self) -> (u64, u64, Vec<crate::limit::LimitStats>) {
        let Some(pool) = self.0.upgrade() else {
            return (0, 0, Vec::new());
        };
        let stats = pool.stats();
        let in_flight = stats.per_worker.iter().map(|w| w.in_flight).sum();
        let dispatched = stats.per_worker.iter().map(|w| w.dispatched).sum();
        let limits = pool
            .inner
            .limits
            .as_ref()
            .map_or_else(Vec::new, LimitSet::stats);
        (in_flight, dispatched, limits)
    }

    fn call(&self, head: CallHeader, request: Vec<u8>, reply: Answer) {
        match self.0.upgrade() {
            Some(pool) => pool.forward(head, request, reply),
            None => reply.fault(&Fault::Lost {
                message: "the pool was dropped by its owner".into(),
            }),
        }
    }
}

impl<W: Worker + RemoteWorker> Pool<W> {
    /// One call of a looked-up handle: admitted as this pool's own calls are (balancer,
    /// `max_queued_tasks`, call limits), sent to the instance, its reply's bytes passed on.
    fn forward(&self, head: CallHeader, payload: Vec<u8>, reply: Answer) {
        let inner = &*self.inner;
        let Some(workers) = self.backend_as::<Remote>().and_then(Remote::workers::<W>) else {
            return reply.fault(&Fault::Lost {
                message: "the pool is not a cluster pool".into(),
            });
        };
        if self.is_stopped() {
            return reply.fault(&fault_of(Error::Stopped));
        }
        let timeout = head.budget_us.map(Duration::from_micros);
        let call = (head.attempt.max(1), head.trace);
        let send = {
            let limits = inner.limits.clone();
            let shared = inner.shared.clone();
            move |worker: Handle<W>, idx: usize| {
                forward_send(worker, (limits, shared, idx), call, timeout, payload, reply);
            }
        };
        match self.admit(Room::Wait) {
            Admit::Now(idx) => send(workers[idx].clone(), idx),
            // Dropped, the answer says the pool stopped.
            Admit::Stopped => drop(send),
            Admit::Later(idx, limit) => {
                let worker = workers[idx].clone();
                later(&inner.shared, idx, limit, move |_, placed| {
                    if placed {
                        send(worker, idx);
                    }
                });
            }
        }
    }
}

/// Sends one forwarded call to instance `idx` (where it is counted): first the pool's call
/// limits, waited for on the runtime.
fn forward_send<W: RemoteWorker>(
    worker: Handle<W>,
    (limits, shared, idx): (Option<LimitSet>, Arc<Shared>, usize),
    call: (u32, u64),
    timeout: Option<Duration>,
    payload: Vec<u8>,
    answer: Answer,
) {
    let done = move |held: Option<Acquisition>| Forwarded {
        answer: Some(answer),
        shared,
        idx,
        held,
    };
    match limits.filter(LimitSet::has_call_units) {
        None => worker.send_raw(payload, call, timeout, Box::new(done(None))),
        Some(set) => {
            crate::runtime::runtime().spawn(async move {
                let acquired = set.acquire_call_async(|| false).await;
                match acquired {
                    Ok(held) => worker.send_raw(payload, call, timeout, Box::new(done(held))),
                    Err(WaitError::Limit(e)) => {
                        Box::new(done(None)).fail(Error::Limit(e));
                    }
                    Err(WaitError::Cancelled) => Box::new(done(None)).fail(Error::Stopped),
                }
            });
        }
    }
}

/// A forwarded call in the instance's supervisor: its reply's bytes go back as they are.
struct Forwarded {
    answer: Option<Answer>,
    shared: Arc<Shared>,
    idx: usize,
    held: Option<Acquisition>,
}

impl Forwarded {
    fn finish(&mut self, bytes: Vec<u8>) {
        drop(self.held.take());
        self.shared.finished(self.idx);
        if let Some(a) = self.answer.take() {
            a.send(bytes);
        }
    }
}

impl Completion for Forwarded {
    fn reply(
        mut self: Box<Self>,
        bytes: &[u8],
        decoded: &mut dyn FnMut(bool),
    ) -> Result<(), WireError> {
        decoded(true);
        self.finish(bytes.to_vec());
        Ok(())
    }

    fn fail(mut self: Box<Self>, error: Error) {
        if matches!(error, Error::Stopped) {
            self.shared.failed_by_stop.fetch_add(1, Ordering::AcqRel);
        }
        self.finish(crate::cluster::names::fault_reply(&fault_of(error)));
    }
}

/// The owner's side at `init`: records the pool (under its name, if it has one: refused if
/// taken) before its instances are placed.
pub(crate) fn register<W: RemoteWorker>(
    config: &PoolConfig,
) -> Result<Option<std::sync::Arc<Registration>>, Error> {
    let Some(cluster) = &config.cluster else {
        // `for_pool` says what is missing.
        return Ok(None);
    };
    let workers = u32::try_from(config.workers()).unwrap_or(u32::MAX);
    Registration::claim(
        cluster,
        config.name.as_deref(),
        <W as RemoteWorker>::NAME,
        W::schema(),
        workers,
    )
    .map(Some)
}

/// A handle on the running cluster pool named `name` (another process's, or this one's).
///
/// # Errors
///
/// [`Error::Config`] naming the name and the pools seen if no live pool has it, or naming
/// both types if it runs another worker type; [`Error::Transport`] with
/// [`WireError::SchemaMismatch`] if its owner was built from another definition of `W`.
pub(crate) fn lookup<W>(cluster: &Cluster, name: &str) -> Result<Pool<W>, Error>
where
    W: Worker + RemoteWorker,
{
    let record = find(cluster, name)?;
    if record.info.worker != <W as RemoteWorker>::NAME {
        return Err(crate::error::ConfigError::new(
            "name",
            format!("{name:?}"),
            format!(
                "the pool of that name runs `{}`, not `{}`: look it up with `{}::lookup`",
                record.info.worker,
                <W as RemoteWorker>::NAME,
                record.info.worker.rsplit("::").next().unwrap_or_default()
            ),
        )
        .into());
    }
    let mut config = PoolConfig {
        mode: Mode::Cluster,
        max_workers: Some(1),
        name: Some(name.to_string()),
        cluster: Some(cluster.clone()),
        ..PoolConfig::default()
    };
    let cap = cluster.max_payload().saturating_sub(4);
    if cap >= crate::options::MESSAGE_SIZE_MIN && config.max_message_size > cap {
        config.max_message_size = cap;
    }
    let transport: crate::sync::os::Arc<dyn crate::remote::Transport> =
        crate::sync::os::Arc::new(crate::cluster::lookup::ViaOwner {
            cluster: cluster.clone(),
            record,
            max: config.max_message_size,
        });
    Pool::launch(config, |config, _| {
        let remote = Remote::attach::<W>(&transport, config).map_err(|e| {
            e.cast_runtime().unwrap_or_else(|_| Error::Init {
                message: "the owner refused the handle".into(),
            })
        })?;
        Ok(Box::new(remote))
    })
}
