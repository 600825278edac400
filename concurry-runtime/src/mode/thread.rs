//! Thread mode: one OS thread per worker, owning its instance, fed by a crossbeam mailbox.

use crossbeam_channel::{Receiver, Sender};

use super::{ExitGuard, InitFailure, construct};
use crate::error::Error;
use crate::pool::{Lifecycle, Shared, mark_worker_thread};
use crate::sync::Arc;
use crate::worker::{Job, Msg, Worker, run_exclusive, run_shared};

/// Starts `n` worker threads and waits until each has built its instance.
pub(crate) fn start<W: Worker>(
    n: usize,
    args: W::Args,
    shared: &Arc<Shared>,
    exits: Sender<usize>,
    lifecycle: &mut Lifecycle<W>,
) -> Result<Vec<Sender<Msg<W>>>, Error<W::InitError>> {
    let (ready_tx, ready_rx) = crossbeam_channel::unbounded::<super::Ready<W::InitError>>();
    let mut mailboxes = Vec::with_capacity(n);
    let mut failure = None;
    for index in 0..n {
        let (tx, rx) = crossbeam_channel::unbounded();
        let (args, shared, ready) = (args.clone(), shared.clone(), ready_tx.clone());
        let guard = ExitGuard {
            index,
            exits: exits.clone(),
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
                lifecycle.threads.push(handle);
                lifecycle.drains.push(rx);
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
        None => Ok(mailboxes),
        Some(f) => {
            // Stop the workers that did start, and wait for them.
            mailboxes.iter().for_each(|m| drop(m.send(Msg::Stop)));
            drop(mailboxes);
            for t in lifecycle.threads.drain(..) {
                let _ = t.join();
            }
            Err(f.into_error())
        }
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
