//! The serve loop: the side that runs a worker, shared by every transport (a child process,
//! a loopback thread, later a cluster node). It builds the instance from `Init`, answers
//! `Ready`, then decodes each call, dispatches it and encodes its reply, until `Shutdown`
//! or the channel ends.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use super::registry::{RemoteEntry, RemoteWorker};
use crate::error::panic_message;
use crate::limit::context::with_hosted;
use crate::limit::hosted::HostedLimits;
use crate::wire::{
    CallHeader, Envelope, Fault, HEADER_LEN, Kind, WireError, check_size, decode, encode,
};

/// Only the replies of calls quicker than this may be held back to share a write (see
/// [`Channel::reply`]): for a slower call, one write per reply costs little next to the call.
const HOLD_QUICKER_THAN: Duration = Duration::from_micros(50);

/// One built instance, serving calls as bytes.
pub(crate) trait Served {
    /// Runs one call: decodes `request`, dispatches it (a panic fails only this call) and
    /// encodes its outcome, `Result<Response, Fault>`, at most `max` bytes in a frame.
    fn call(&mut self, request: &[u8], max: usize) -> Result<Vec<u8>, WireError>;
}

struct Instance<W>(W);

impl<W: RemoteWorker> Served for Instance<W> {
    fn call(&mut self, request: &[u8], max: usize) -> Result<Vec<u8>, WireError> {
        let reply: Result<W::Response, Fault> = match decode::<W::Request>(request, "request") {
            Ok(req) => catch_unwind(AssertUnwindSafe(|| self.0.dispatch(req))).map_err(|p| {
                Fault::Panicked {
                    message: panic_message(&*p),
                }
            }),
            Err(e) => Err(Fault::Protocol {
                message: e.to_string(),
            }),
        };
        let failed = |f: Fault| encode(&Err::<W::Response, _>(f), "reply");
        match encode(&reply, "reply") {
            Ok(p) => match check_size(p.len(), max) {
                Ok(()) => Ok(p),
                // Only this call fails, with the error the caller's side would give.
                Err(_) => failed(Fault::TooLarge {
                    len: (p.len() + HEADER_LEN) as u64,
                    max: max as u64,
                }),
            },
            Err(e) => failed(Fault::Protocol {
                message: e.to_string(),
            }),
        }
    }
}

/// Why an instance was not built.
pub(crate) enum Unbuilt {
    /// The arguments did not decode: the other side broke the protocol.
    Args(WireError),
    /// The constructor failed (its error, or its panic): the answer to `Init`.
    Fault(Fault),
}

/// Builds `W` from its encoded constructor arguments.
pub(crate) fn construct<W: RemoteWorker>(args: &[u8]) -> Result<Box<dyn Served>, Unbuilt> {
    let args = decode::<W::Args>(args, "constructor arguments").map_err(Unbuilt::Args)?;
    match catch_unwind(AssertUnwindSafe(|| W::construct(args))) {
        Ok(Ok(w)) => Ok(Box::new(Instance(w))),
        // The constructor's error crosses typed, as a method's error does.
        Ok(Err(e)) => Err(Unbuilt::Fault(match encode(&e, "constructor error") {
            Ok(error) => Fault::Constructor {
                message: e.to_string(),
                error,
            },
            Err(why) => Fault::Init {
                message: format!("{e} (and its error could not be sent typed: {why})"),
            },
        })),
        Err(p) => Err(Unbuilt::Fault(Fault::Init {
            message: format!("the constructor panicked: {}", panic_message(&*p)),
        })),
    }
}

/// What the serve loop gets next from its channel.
pub(crate) enum Next {
    Env(Envelope),
    /// The other side closed the channel.
    Closed,
    /// The channel is unusable: say why and end.
    Broken(String),
}

/// The serving side's channel to whoever placed the worker.
pub(crate) trait Channel {
    /// The next call or control message.
    fn next(&self) -> Next;

    /// Sends one control message at once.
    ///
    /// # Errors
    ///
    /// The channel is gone.
    fn send(&self, kind: Kind, id: u64, payload: &[u8]) -> Result<(), WireError>;

    /// Sends a call's reply. `more` says more calls are waiting and this one was quick: the
    /// reply may then wait briefly to share one write with the next ones.
    ///
    /// # Errors
    ///
    /// The channel is gone.
    fn reply(&self, id: u64, payload: &[u8], more: bool) -> Result<(), WireError>;

    /// True if more calls are known to be waiting.
    fn more_waiting(&self) -> bool;

    /// The instance is built and `Ready` sent: calls follow. An error ends the serving.
    ///
    /// # Errors
    ///
    /// What the channel could not set up, as text.
    fn serving(&self) -> Result<(), String> {
        Ok(())
    }

    /// The pool's limits as this worker's calls see them through `limits()`, when the
    /// placing side hosts them over this channel. Asked once, after [`Channel::serving`]:
    /// the constructor sees no pool limits (as in thread mode).
    fn limits(&self) -> Option<HostedLimits> {
        None
    }

    /// Sends whatever replies are held back.
    fn flush(&self) {}

    /// The largest frame the channel carries.
    fn max(&self) -> usize;

    /// Tells the other side why we give up, best effort.
    fn refuse(&self, message: String) {
        if let Ok(p) = encode(&Fault::Protocol { message }, "fault") {
            let _ = self.send(Kind::Fault, 0, &p);
        }
    }
}

/// How serving ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Served until told to stop, or the other side went away.
    Done,
    /// The other side broke the protocol.
    Protocol,
    /// The constructor failed.
    Init,
    /// The channel could not be set up for serving.
    Setup,
}

/// Builds the worker of `entry` from the `Init` message, then answers calls until
/// `Shutdown` or the channel ends.
pub(crate) fn serve(entry: &RemoteEntry, ch: &dyn Channel) -> Outcome {
    let mut worker = match build(entry, ch) {
        Ok(w) => w,
        Err(outcome) => return outcome,
    };
    if let Err(why) = ch.serving() {
        ch.refuse(why);
        return Outcome::Setup;
    }
    let max = ch.max();
    let limits = ch.limits();
    loop {
        let env = match ch.next() {
            Next::Env(env) => env,
            // The other side closed the channel (or died): nothing left to serve.
            Next::Closed => return Outcome::Done,
            Next::Broken(why) => {
                ch.refuse(why);
                return Outcome::Protocol;
            }
        };
        match env.kind {
            Kind::Call => {
                let started = Instant::now();
                let payload = match CallHeader::split(&env.payload) {
                    Ok((head, request)) => {
                        let _span = tracing::trace_span!(
                            "concurry.serve",
                            attempt = head.attempt,
                            trace = head.trace,
                            budget_us = head.budget_us,
                        )
                        .entered();
                        match &limits {
                            Some(hosted) => with_hosted(hosted, || worker.call(request, max)),
                            None => worker.call(request, max),
                        }
                    }
                    // Only this call fails, as for a request that does not decode.
                    Err(e) => encode(
                        &Err::<(), _>(Fault::Protocol {
                            message: e.to_string(),
                        }),
                        "reply",
                    ),
                };
                // The replies of quick calls are batched (briefly) while more calls are
                // already buffered.
                let more = started.elapsed() < HOLD_QUICKER_THAN && ch.more_waiting();
                if payload.and_then(|p| ch.reply(env.id, &p, more)).is_err() {
                    return Outcome::Done;
                }
            }
            Kind::Shutdown => {
                ch.flush();
                return Outcome::Done;
            }
            other => {
                ch.refuse(format!(
                    "unexpected `{other:?}` message while serving calls"
                ));
                return Outcome::Protocol;
            }
        }
    }
}

fn build(entry: &RemoteEntry, ch: &dyn Channel) -> Result<Box<dyn Served>, Outcome> {
    let env = match ch.next() {
        Next::Env(env) if env.kind == Kind::Init => env,
        Next::Closed => return Err(Outcome::Done),
        Next::Env(env) => {
            ch.refuse(format!("expected `Init`, got `{:?}`", env.kind));
            return Err(Outcome::Protocol);
        }
        Next::Broken(why) => {
            ch.refuse(why);
            return Err(Outcome::Protocol);
        }
    };
    let built = match (entry.construct)(&env.payload) {
        Err(Unbuilt::Args(e)) => {
            ch.refuse(e.to_string());
            return Err(Outcome::Protocol);
        }
        Ok(w) => Ok(w),
        Err(Unbuilt::Fault(f)) => Err(f),
    };
    let ready: Result<(), Fault> = built.as_ref().map(|_| ()).map_err(Clone::clone);
    let sent = encode(&ready, "ready").and_then(|p| ch.send(Kind::Ready, 0, &p));
    match (built, sent) {
        (Ok(w), Ok(())) => Ok(w),
        (Ok(_), Err(_)) => Err(Outcome::Done),
        (Err(_), _) => Err(Outcome::Init),
    }
}
