//! Async mode: one tokio task per worker on the library's runtime.
//!
//! `async fn` methods taking `&self` run concurrently on their worker; anything needing the
//! instance exclusively (`&mut self` async methods, and sync methods, which run on tokio's
//! blocking pool so they never stall the runtime) waits until the shared calls in flight are
//! done, and holds back later calls until it finishes.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use crossbeam_channel::Sender;
use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use super::{ExitGuard, InitFailure, construct};
use crate::error::Error;
use crate::pool::{Lifecycle, Shared};
use crate::runtime::runtime;
use crate::sync::Arc;
use crate::worker::{Call, Job, Msg, Worker};

/// Starts `n` worker tasks and waits until each has built its instance.
pub(crate) fn start<W: Worker>(
    n: usize,
    args: W::Args,
    shared: &Arc<Shared>,
    exits: Sender<usize>,
    lifecycle: &mut Lifecycle<W>,
) -> Result<Vec<UnboundedSender<Msg<W>>>, Error<W::InitError>> {
    let (ready_tx, ready_rx) = crossbeam_channel::unbounded::<super::Ready<W::InitError>>();
    let mut mailboxes = Vec::with_capacity(n);
    for index in 0..n {
        let (tx, rx) = unbounded_channel();
        let (args, shared, ready) = (args.clone(), shared.clone(), ready_tx.clone());
        let guard = ExitGuard {
            index,
            exits: exits.clone(),
        };
        let task = runtime().spawn(async move {
            let _exit = guard;
            // The constructor is sync user code: keep it off the async worker threads.
            let built = tokio::task::spawn_blocking(move || construct::<W>(args)).await;
            match built {
                Ok(Ok(w)) => {
                    let _ = ready.send(Ok(()));
                    drop(ready);
                    serve(index, w, rx, &shared).await;
                }
                Ok(Err(e)) => drop(ready.send(Err(e))),
                Err(e) => drop(ready.send(Err(InitFailure::Other(format!(
                    "the constructor task failed: {e}"
                ))))),
            }
        });
        lifecycle.tasks.push(task.abort_handle());
        mailboxes.push(tx);
    }
    drop(ready_tx);
    let failure = super::await_ready(&ready_rx, n, "task");
    match failure {
        None => Ok(mailboxes),
        Some(f) => {
            lifecycle.tasks.drain(..).for_each(|t| t.abort());
            Err(f.into_error())
        }
    }
}

/// The worker task. Shared calls go into a set polled concurrently; an exclusive call waits
/// for the set to drain (later messages wait behind it, preserving order).
async fn serve<W: Worker>(
    index: usize,
    mut w: W,
    mut rx: UnboundedReceiver<Msg<W>>,
    shared: &Shared,
) {
    let mut held: Option<Msg<W>> = None;
    loop {
        let msg = match held.take() {
            Some(m) => m,
            None => match rx.recv().await {
                Some(m) => m,
                None => return,
            },
        };
        let Msg::Call(call) = msg else { return };
        let Call {
            method,
            attempt,
            job,
        } = call;
        let span =
            tracing::debug_span!("concurry.call", worker = %shared.name, method, attempt, index);
        match job {
            Job::Blocking(f) => {
                let moved = tokio::task::spawn_blocking(move || {
                    let _entered = span.enter();
                    f(Ok(&mut w));
                    w
                })
                .await;
                shared.finished(index);
                match moved {
                    Ok(back) => w = back,
                    // The job catches the method's panics, so this is a runtime shutdown: the
                    // instance is gone, and with it the worker.
                    Err(_) => return,
                }
            }
            Job::Exclusive(f) => {
                tracing::Instrument::instrument(f(Ok(&mut w)), span).await;
                shared.finished(index);
            }
            Job::Shared(f) => {
                // Created only when a call does not finish at its first poll (most do).
                let mut running = None;
                let first = tracing::Instrument::instrument(f(Ok(&w)), span);
                start_shared(first, &mut running, shared, index).await;
                while let Some(set) = running.as_mut().filter(|r| !r.is_empty()) {
                    tokio::select! {
                        biased;
                        Some(()) = set.next() => shared.finished(index),
                        m = rx.recv(), if held.is_none() => match m {
                            Some(Msg::Call(Call { method, attempt, job: Job::Shared(f) })) => {
                                let span = tracing::debug_span!("concurry.call", worker = %shared.name, method, attempt, index);
                                let fut = tracing::Instrument::instrument(f(Ok(&w)), span);
                                start_shared(fut, &mut running, shared, index).await;
                            }
                            Some(other) => held = Some(other),
                            None => held = Some(Msg::Stop),
                        },
                    }
                }
            }
        }
    }
}

/// Polls a new shared call once right here: most finish at once (no await inside, or a
/// ready resource), and only those still pending join the set polled concurrently.
async fn start_shared<F: Future<Output = ()> + Unpin>(
    mut fut: F,
    running: &mut Option<FuturesUnordered<F>>,
    shared: &Shared,
    index: usize,
) {
    let ready =
        std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut fut).poll(cx).is_ready())).await;
    if ready {
        shared.finished(index);
    } else {
        running.get_or_insert_with(FuturesUnordered::new).push(fut);
    }
}
