//! Encoding a call's request: small ones on the caller's thread, large ones on a [`Lane`]
//! (off the caller's thread, in the order each thread made its calls).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::sync::os::{Arc, Condvar, Mutex, lock};
use crate::wire::{CALL_HEADER_MAX, check_size, encode, encode_capped};

/// A request's bytes for the channel: [`Error::Transport`] if it does not encode or would
/// not fit in one frame of at most `max` bytes.
pub(crate) fn encode_request<T: serde::Serialize + ?Sized>(
    request: &T,
    max: usize,
) -> Result<Vec<u8>, Error> {
    let p = encode(request, "request").map_err(Error::Transport)?;
    check_size(p.len() + CALL_HEADER_MAX, max).map_err(Error::Transport)?;
    Ok(p)
}

/// Requests whose encoding is larger than this are encoded off the caller's thread.
const INLINE_ENCODE: usize = 64 << 10;

/// A request encoded on the caller's thread (cheap: at most [`INLINE_ENCODE`] bytes of
/// work), or `None` if it is larger: then [`encode_in_lane`] does it.
pub(crate) fn encode_small<T: serde::Serialize + ?Sized>(
    request: &T,
    max: usize,
) -> Option<Result<Vec<u8>, Error>> {
    let p = match encode_capped(request, "request", INLINE_ENCODE)? {
        Ok(p) => p,
        Err(e) => return Some(Err(Error::Transport(e))),
    };
    Some(
        check_size(p.len() + CALL_HEADER_MAX, max)
            .map_err(Error::Transport)
            .map(|()| p),
    )
}

/// The calls of one worker (or pool) that leave the caller's thread, kept in the order each
/// thread made them: while a thread's large request is being encoded off its thread, the
/// calls that thread makes after it queue behind it, so a stateful worker still sees
/// `put(big)` before the `get()` that followed it. Other threads' calls do not wait. Each
/// thread's queue is drained on a blocking thread of the library's runtime (a job may wait,
/// e.g. for a bounded pool's room, which a runtime thread must not).
#[derive(Default)]
pub(crate) struct Lane {
    /// The threads with calls queued or running, each with the calls still to run.
    queues: Mutex<HashMap<std::thread::ThreadId, std::collections::VecDeque<Job>>>,
}

type Job = Box<dyn FnOnce() + Send>;

impl Lane {
    /// True if the calling thread has calls queued or running here: its next call must
    /// queue behind them.
    pub(crate) fn busy(&self) -> bool {
        let queues = lock(&self.queues);
        !queues.is_empty() && queues.contains_key(&std::thread::current().id())
    }

    /// Runs `job` off the caller's thread, after every job the calling thread queued before.
    pub(crate) fn run(self: &Arc<Self>, job: impl FnOnce() + Send + 'static) {
        use std::collections::hash_map::Entry;
        let thread = std::thread::current().id();
        let mut queues = lock(&self.queues);
        match queues.entry(thread) {
            Entry::Occupied(mut queue) => queue.get_mut().push_back(Box::new(job)),
            Entry::Vacant(slot) => {
                slot.insert(std::collections::VecDeque::from([Box::new(job) as Job]));
                drop(queues);
                let lane = self.clone();
                drop(crate::runtime::runtime().spawn_blocking(move || lane.drain(thread)));
            }
        }
    }

    /// Runs `thread`'s jobs in order until its queue is empty, then forgets the thread.
    fn drain(&self, thread: std::thread::ThreadId) {
        loop {
            let job = {
                let mut queues = lock(&self.queues);
                let Some(queue) = queues.get_mut(&thread) else {
                    return;
                };
                match queue.pop_front() {
                    Some(job) => job,
                    None => {
                        queues.remove(&thread);
                        return;
                    }
                }
            };
            job();
        }
    }
}

/// Encodes a large request in `lane` (off the caller's thread, in submission order), then
/// hands `then` the call's `target` (what resolves it), the bytes and what is left of
/// `timeout`. If the deadline passes first, `fail` resolves `target` with
/// [`Error::Timeout`] at once (the encoding's result is then dropped); any other failure
/// goes to `fail` too. Exactly one of the two runs.
pub(crate) fn encode_in_lane<T, R>(
    lane: &Arc<Lane>,
    request: T,
    max: usize,
    timeout: Option<Duration>,
    target: R,
    fail: fn(R, Error),
    then: impl FnOnce(R, Vec<u8>, Option<Duration>) + Send + 'static,
) where
    T: serde::Serialize + Send + 'static,
    R: Send + 'static,
{
    let started = Instant::now();
    let slot = Arc::new(Mutex::new(Some(target)));
    let timer = timeout.map(|t| {
        let slot = slot.clone();
        crate::runtime::runtime().spawn(async move {
            tokio::time::sleep(t).await;
            let target = lock(&slot).take();
            if let Some(target) = target {
                fail(target, Error::Timeout);
            }
        })
    });
    lane.run(move || {
        let encoded = encode_request(&request, max);
        let Some(target) = lock(&slot).take() else {
            return; // timed out meanwhile
        };
        if let Some(timer) = timer {
            timer.abort();
        }
        match encoded {
            Err(e) => fail(target, e),
            Ok(payload) => {
                let left = timeout.map(|t| t.saturating_sub(started.elapsed()));
                if left == Some(Duration::ZERO) {
                    fail(target, Error::Timeout);
                } else {
                    then(target, payload, left);
                }
            }
        }
    });
}

/// The room a bounded pool (`max_queued_tasks`) has for calls that leave the caller's
/// thread through its [`Lane`]: at most `workers × max_queued_tasks` at once, so a plain
/// thread submitting large calls waits for room before its arguments are taken, as it
/// would for a small call, instead of piling them up in memory. Async code never waits
/// here (its calls wait for their place inside their promises, as small ones do).
#[derive(Default)]
pub(crate) struct LaneRoom {
    limit: Option<usize>,
    taken: Mutex<usize>,
    freed: Condvar,
}

/// A call's place in a [`LaneRoom`], given back when dropped.
pub(crate) struct LanePlace(Arc<LaneRoom>);

impl Drop for LanePlace {
    fn drop(&mut self) {
        *lock(&self.0.taken) -= 1;
        self.0.freed.notify_one();
    }
}

impl LaneRoom {
    /// Room for `limit` calls at once; `None`: no bound.
    pub(crate) fn new(limit: Option<usize>) -> LaneRoom {
        LaneRoom {
            limit,
            ..LaneRoom::default()
        }
    }

    /// A place for one call, waiting (on a plain thread) while every place is taken:
    /// `Ok(None)` without a bound or in async code, `Err(())` if `stopped` turns true first.
    pub(crate) fn take(
        self: &Arc<Self>,
        stopped: impl Fn() -> bool,
    ) -> Result<Option<LanePlace>, ()> {
        let Some(limit) = self.limit else {
            return Ok(None);
        };
        if crate::runtime::in_async_context() {
            return Ok(None);
        }
        let mut taken = lock(&self.taken);
        while *taken >= limit.max(1) {
            if stopped() {
                return Err(());
            }
            // The timeout only lets a stop be seen; a place given back wakes this.
            taken = self
                .freed
                .wait_timeout(taken, Duration::from_millis(50))
                .map_or_else(|p| p.into_inner().0, |(g, _)| g);
        }
        *taken += 1;
        Ok(Some(LanePlace(self.clone())))
    }
}
