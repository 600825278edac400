//! Thread mode: one OS thread per worker, owning its instance, fed by a crossbeam mailbox.

use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};

use super::{ExitGuard, InitFailure, construct, fail_msg};
use crate::error::Error;
use crate::job::{Call, Job, Msg, run_exclusive, run_shared};
use crate::pool::backend::{Backend, Gate, Room, Shared, Stopping, mark_worker_thread};
use crate::sync::{Arc, Mutex, lock};
use crate::worker::Worker;

/// A pool's worker threads.
pub(crate) struct Threads<W> {
    mailboxes: Vec<Sender<Msg<W>>>,
    /// Each thread sends its index here when it ends (even by panic).
    exits: Receiver<usize>,
    /// Joined by `stop()`.
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// A receiver per mailbox, to fail what is queued when `stop_timeout` runs out.
    drains: Mutex<Vec<Receiver<Msg<W>>>>,
}

/// Starts `n` worker threads and waits until each has built its instance.
pub(crate) fn start<W: Worker>(
    n: usize,
    args: W::Args,
    shared: &Arc<Shared>,
) -> Result<Threads<W>, Error<W::InitError>> {
    let (exits_tx, exits) = crossbeam_channel::unbounded();
    let (ready_tx, ready_rx) = crossbeam_channel::unbounded::<super::Ready<W::InitError>>();
    let mut mailboxes = Vec::with_capacity(n);
    let (mut threads, mut drains) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let mut failure = None;
    for index in 0..n {
        let (tx, rx) = crossbeam_channel::unbounded();
        let (args, shared, ready) = (args.clone(), shared.clone(), ready_tx.clone());
        let guard = ExitGuard {
            index,
            exits: exits_tx.clone(),
        };
        let worker_rx = rx.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("{}-{index}", shared.name))
            .spawn(move || {
                let _exit = guard;
                mark_worker_thread(&shared);
                match construct::<W>(args) {
                    Ok(w) => {
                        let _ = ready.send(Ok(()));
                        drop(ready);
                        serve(index, w, worker_rx, &shared);
                    }
                    Err(e) => drop(ready.send(Err(e))),
                }
            });
        match spawned {
            Ok(handle) => {
                threads.push(handle);
                drains.push(rx);
                mailboxes.push(tx);
            }
            Err(e) => {
                failure = Some(InitFailure::Other(format!(
                    "could not spawn worker thread {index}: {e}"
                )));
                break;
            }
        }
    }
    drop(ready_tx);
    if let Some(f) = super::await_ready(&ready_rx, mailboxes.len(), "thread") {
        failure.get_or_insert(f);
    }
    match failure {
        None => Ok(Threads {
            mailboxes,
            exits,
            threads: Mutex::new(threads),
            drains: Mutex::new(drains),
        }),
        Some(f) => {
            // Stop the workers that did start, and wait for them.
            mailboxes.iter().for_each(|m| drop(m.send(Msg::Stop)));
            drop(mailboxes);
            for t in threads {
                let _ = t.join();
            }
            Err(f.into_error())
        }
    }
}

impl<W: Worker> Backend<W> for Threads<W> {
    fn dispatch(&self, gate: &Gate<'_>, call: Call<W>, room: Room) {
        super::route(gate, room, call, &self.mailboxes);
    }

    fn stop(&self, stop: Stopping<'_>) -> Result<(), Error> {
        self.mailboxes.iter().for_each(|m| drop(m.send(Msg::Stop)));
        let timed_out = stop.await_exits(&self.exits, self.mailboxes.len());
        // Calls queued or running when the time ran out.
        let mut unfinished = 0;
        if timed_out {
            stop.abort();
            unfinished = stop.unfinished();
            stop.wake_limits();
        }
        // Whatever is still queued (queued after the stop, or left by an abort) fails now;
        // a long queue left by the timeout is failed on a thread of its own, so `stop`
        // returns on time.
        let drains = std::mem::take(&mut *lock(&self.drains));
        drain(&stop.shared.name, drains, timed_out && unfinished > 0);
        let me = std::thread::current().id();
        let mut left = 0;
        for t in std::mem::take(&mut *lock(&self.threads)) {
            if t.thread().id() != me && (!timed_out || t.is_finished()) {
                let _ = t.join();
            } else {
                left += 1;
            }
        }
        if !timed_out {
            return Ok(());
        }
        // A thread not finished is still in its call.
        Err(Error::StopTimeout {
            failed: unfinished.saturating_sub(left),
            running: left,
        })
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// Fails every call still in `drains` with [`Error::Stopped`]; on a thread of its own if
/// `elsewhere` (and a thread can be had), so a long queue does not hold up `stop()`.
fn drain<W: Worker>(name: &str, drains: Vec<Receiver<Msg<W>>>, elsewhere: bool) {
    let elsewhere = elsewhere && !drains.is_empty();
    let fail_all = move || {
        for rx in &drains {
            rx.try_iter().for_each(|m| fail_msg(m, Error::Stopped));
        }
    };
    if !elsewhere {
        return fail_all();
    }
    let fail_all = std::sync::Arc::new(Mutex::new(Some(fail_all)));
    let mine = fail_all.clone();
    let spawned = std::thread::Builder::new()
        .name(format!("{name}-drain"))
        .spawn(move || {
            if let Some(f) = lock(&mine).take() {
                f();
            }
        });
    if spawned.is_err()
        && let Some(f) = lock(&fail_all).take()
    {
        f();
    }
}

/// The worker loop: one call at a time, in mailbox order, until `Stop` or an abort.
fn serve<W: Worker>(index: usize, mut w: W, rx: Receiver<Msg<W>>, shared: &Shared) {
    // Built on the first `async fn` call only, so sync-only workers pay nothing.
    let mut local: Option<tokio::runtime::Runtime> = None;
    for msg in rx.iter() {
        let Msg::Call(call) = msg else { break };
        if shared.abort.load(crate::sync::Ordering::Acquire) {
            call.fail(Error::Stopped);
            break;
        }
        let span = tracing::debug_span!("concurry.call", worker = %shared.name, method = call.method, attempt = call.attempt, index);
        let _entered = span.enter();
        match call.job {
            Job::Blocking(j) => j.take().run(&mut w),
            Job::SharedBlocking(j) => j.take().run(&w),
            Job::Exclusive(j) => match runtime(&mut local) {
                Ok(rt) => rt.block_on(run_exclusive(j.take(), &mut w)),
                Err(e) => j.fail(e),
            },
            Job::Shared(j) => match runtime(&mut local) {
                Ok(rt) => rt.block_on(run_shared(j.take(), &w)),
                Err(e) => j.fail(e),
            },
        }
        shared.finished(index);
    }
}

fn runtime(local: &mut Option<tokio::runtime::Runtime>) -> Result<&tokio::runtime::Runtime, Error> {
    if local.is_none() {
        let rt = crate::runtime::local_runtime().map_err(|e| Error::WorkerLost {
            message: format!("could not start a tokio runtime: {e}"),
        })?;
        *local = Some(rt);
    }
    Ok(local.as_ref().expect("set above"))
}
