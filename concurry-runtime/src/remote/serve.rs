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

    /// When the envelope [`next`](Channel::next) returned last reached this side, if the
    /// channel knows (a call's budget counts from then; else from when `next` returned it).
    fn arrived(&self) -> Option<Instant> {
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
                let arrived = ch.arrived().unwrap_or(started);
                let payload = match CallHeader::split(&env.payload) {
                    // Its deadline passed while it waited its turn: it does not run.
                    Ok((head, _)) if expired(&head, arrived, started).is_some() => {
                        let late = expired(&head, arrived, started).unwrap_or_default();
                        encode(
                            &Err::<(), _>(Fault::Expired {
                                late_us: u64::try_from(late.as_micros()).unwrap_or(u64::MAX),
                            }),
                            "reply",
                        )
                    }
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

/// How long past its deadline a call that arrived at `arrived` is at `now`, if it is.
fn expired(head: &CallHeader, arrived: Instant, now: Instant) -> Option<Duration> {
    let budget = Duration::from_micros(head.budget_us?);
    let waited = now.saturating_duration_since(arrived);
    waited.checked_sub(budget).filter(|late| !late.is_zero())
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

#[cfg(test)]
mod tests {
    use std::cell::{Cell, RefCell};
    use std::collections::VecDeque;

    use super::*;
    use crate::remote::registry::RemoteEntry;
    use crate::wire::Never;

    /// Counts its calls, so a test sees whether a call ran.
    struct Counter(u32);

    impl RemoteWorker for Counter {
        const NAME: &'static str = "concurry::remote::serve::tests::Counter";
        type Args = ();
        type Request = ();
        type Response = u32;
        type InitError = Never;

        fn construct((): ()) -> Result<Self, Never> {
            Ok(Counter(0))
        }

        fn dispatch(&mut self, (): ()) -> u32 {
            self.0 += 1;
            self.0
        }
    }

    /// Hands out scripted envelopes, each arrived at a given instant; keeps the replies.
    struct Script {
        queue: RefCell<VecDeque<(Envelope, Instant)>>,
        arrived: Cell<Option<Instant>>,
        replies: RefCell<Vec<(u64, Vec<u8>)>>,
    }

    impl Channel for Script {
        fn next(&self) -> Next {
            match self.queue.borrow_mut().pop_front() {
                Some((env, at)) => {
                    self.arrived.set(Some(at));
                    Next::Env(env)
                }
                None => Next::Closed,
            }
        }

        fn send(&self, _: Kind, _: u64, _: &[u8]) -> Result<(), WireError> {
            Ok(())
        }

        fn reply(&self, id: u64, payload: &[u8], _: bool) -> Result<(), WireError> {
            self.replies.borrow_mut().push((id, payload.to_vec()));
            Ok(())
        }

        fn more_waiting(&self) -> bool {
            !self.queue.borrow().is_empty()
        }

        fn arrived(&self) -> Option<Instant> {
            self.arrived.get()
        }

        fn max(&self) -> usize {
            crate::wire::DEFAULT_MAX_FRAME
        }
    }

    fn call(budget: Option<Duration>) -> Vec<u8> {
        let head = CallHeader {
            budget_us: budget.map(|b| b.as_micros() as u64),
            attempt: 1,
            trace: 7,
        };
        let mut payload = head.encode();
        payload.extend_from_slice(&encode(&(), "request").unwrap());
        payload
    }

    #[test]
    fn a_call_whose_deadline_passed_while_it_waited_fails_typed_without_running() {
        let now = Instant::now();
        let long_ago = now.checked_sub(Duration::from_secs(5)).unwrap_or(now);
        let ch = Script {
            queue: RefCell::new(VecDeque::from([
                (
                    Envelope::new(Kind::Init, 0, encode(&(), "args").unwrap()),
                    now,
                ),
                // Waited 5 s for a budget of 10 ms: expired.
                (
                    Envelope::new(Kind::Call, 1, call(Some(Duration::from_millis(10)))),
                    long_ago,
                ),
                // Same wait, no deadline: runs.
                (Envelope::new(Kind::Call, 2, call(None)), long_ago),
                // A budget of an hour: runs.
                (
                    Envelope::new(Kind::Call, 3, call(Some(Duration::from_secs(3600)))),
                    long_ago,
                ),
            ])),
            arrived: Cell::new(None),
            replies: RefCell::new(Vec::new()),
        };
        assert_eq!(serve(&RemoteEntry::of::<Counter>(), &ch), Outcome::Done);
        let replies = ch.replies.into_inner();
        let got: Vec<(u64, Result<u32, Fault>)> = replies
            .iter()
            .map(|(id, p)| (*id, decode(p, "reply").unwrap()))
            .collect();
        assert!(
            matches!(got[0], (1, Err(Fault::Expired { late_us })) if late_us >= 4_000_000),
            "{got:?}"
        );
        // The expired call did not run: the next one is the instance's first.
        assert_eq!(got[1], (2, Ok(1)));
        assert_eq!(got[2], (3, Ok(2)));
        assert!(matches!(
            crate::remote::handle::fault_error(Fault::Expired { late_us: 1 }),
            crate::Error::Timeout
        ));
    }
}
