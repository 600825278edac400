//! The serve loop: the side that runs a worker, shared by every transport (a child process,
//! a loopback thread, later a cluster node). It builds the instance from `Init`, answers
//! `Ready`, then decodes each call, dispatches it and encodes its reply, until `Shutdown`
//! or the channel ends.
//!
//! # Cancellation
//!
//! Each call runs inside a cancel context of its own (a [`Token`] filed in [`Cancels`] under
//! the call's id), so `concurry::check_cancelled()` / `cancelled()` in the method see a
//! `Kind::Cancel` with that id as soon as the channel has read it. The loop itself is busy
//! while a call runs, so a channel must read on meanwhile and file each `Cancel` it reads
//! with [`Cancels::cancel`] at once (from any thread). A channel has two ways to do it:
//!
//! - read on a thread of its own and feed the loop: [`Feed`] does exactly that (the
//!   loopback transport uses it; so can a cluster node's subscription);
//! - read in the loop's thread while idle and only let a watcher read during a call that
//!   runs long: [`Cancels::wait_long_call`] says when (the child process does this, so a
//!   call costs no thread hop).
//!
//! Either way it hands the table to the loop through [`Channel::cancels`]. A channel that
//! does neither still works: the `Cancel` messages its `next` returns are filed by the loop,
//! reaching only calls not started yet. A `Cancel` ahead of its call makes the call answer
//! [`Fault::Cancelled`] without running; one for a finished or unknown call is ignored.

use std::collections::BTreeSet;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use super::registry::{RemoteEntry, RemoteWorker};
use crate::cancel::Token;
use crate::cancel::context::in_token;
use crate::error::panic_message;
use crate::limit::context::with_hosted;
use crate::limit::hosted::HostedLimits;
use crate::sync::os::{Arc, Condvar, Mutex, lock};
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

    /// The table this channel files each `Kind::Cancel` in as soon as it reads one, while a
    /// call runs too (see the module docs: [`Feed`], or a watcher on
    /// [`Cancels::wait_long_call`]). Asked once, before the first call. `None` (the
    /// default): the loop files the `Cancel` messages `next` returns, which then reach only
    /// calls not started yet.
    fn cancels(&self) -> Option<Arc<Cancels>> {
        None
    }

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
    let cancels = ch.cancels().unwrap_or_default();
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
                        match cancels.start(env.id) {
                            // A `Cancel` came ahead of the call: it does not run.
                            None => encode(&Err::<(), _>(Fault::Cancelled), "reply"),
                            Some(token) => {
                                let out = in_token(&token, || match &limits {
                                    Some(hosted) => {
                                        with_hosted(hosted, || worker.call(request, max))
                                    }
                                    None => worker.call(request, max),
                                });
                                cancels.end(env.id);
                                out
                            }
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
            // Read by the loop (the channel did not file it): the call has not started yet,
            // or has finished.
            Kind::Cancel => cancels.cancel(env.id),
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

/// How many cancels ahead of their calls are kept at most (the oldest go first): a `Cancel`
/// for an id never sent would otherwise be kept for ever.
const EARLY_MAX: usize = 1024;

/// The calls of one serving loop as `Kind::Cancel` messages reach them, by call id: the one
/// running now (its cancel flag), and cancels that came ahead of their call. Shared by the
/// loop and whoever reads the channel; see the module docs.
#[derive(Default)]
pub(crate) struct Cancels {
    state: Mutex<CancelState>,
    /// Wakes a watcher parked in [`Cancels::wait_long_call`] when a call starts.
    started: Condvar,
}

#[derive(Default)]
struct CancelState {
    /// The call running now, and its flag.
    running: Option<(u64, Token)>,
    /// The highest call id started so far: a `Cancel` above it is ahead of its call.
    highest: u64,
    /// Calls started so far: names a run of a call for watchers.
    count: u64,
    /// Cancels that came before their call started.
    early: BTreeSet<u64>,
    /// A watcher waits for the next call to start (it must be woken).
    parked: bool,
    /// No more calls: a watcher returns (see [`Cancels::close`]).
    closed: bool,
}

impl std::fmt::Debug for Cancels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = lock(&self.state);
        f.debug_struct("Cancels")
            .field("running", &st.running.as_ref().map(|(id, _)| *id))
            .field("early", &st.early.len())
            .finish()
    }
}

impl Cancels {
    /// Call `id` was cancelled: a running call sees it at its next checkpoint; a call not
    /// started yet will not run; a finished or unknown one is ignored. Any thread.
    pub(crate) fn cancel(&self, id: u64) {
        let mut st = lock(&self.state);
        match &st.running {
            Some((running, token)) if *running == id => {
                let token = token.clone();
                drop(st);
                token.cancel();
            }
            _ if id > st.highest => {
                if st.early.len() >= EARLY_MAX {
                    st.early.pop_first();
                }
                st.early.insert(id);
            }
            // Finished, or never sent: nothing to cancel.
            _ => {}
        }
    }

    /// Call `id` starts: its flag, or `None` if its cancel came first.
    pub(crate) fn start(&self, id: u64) -> Option<Token> {
        let mut st = lock(&self.state);
        st.highest = st.highest.max(id);
        if st.early.remove(&id) {
            return None;
        }
        let token = Token::root();
        st.running = Some((id, token.clone()));
        st.count += 1;
        if st.parked {
            st.parked = false;
            self.started.notify_one();
        }
        Some(token)
    }

    /// Call `id` returned: a `Cancel` for it from now on is ignored.
    pub(crate) fn end(&self, id: u64) {
        let mut st = lock(&self.state);
        if st.running.as_ref().is_some_and(|(r, _)| *r == id) {
            st.running = None;
        }
    }

    /// True while the run `call` (as [`wait_long_call`](Cancels::wait_long_call) named it)
    /// goes on.
    pub(crate) fn is_running(&self, call: u64) -> bool {
        let st = lock(&self.state);
        st.running.is_some() && st.count == call
    }

    /// No more calls will start: a watcher in [`wait_long_call`](Cancels::wait_long_call)
    /// returns `None` (now, or at its next look).
    #[cfg_attr(not(any(test, feature = "cluster")), allow(dead_code))]
    pub(crate) fn close(&self) {
        let mut st = lock(&self.state);
        st.closed = true;
        self.started.notify_all();
    }

    /// For a channel that reads only while a call runs long: blocks until a call has run
    /// for at least `tick` (between one and two), and names that run (see
    /// [`is_running`](Cancels::is_running)); `None` once the table is
    /// [closed](Cancels::close). Checks every `tick` while calls come; once none ran for a
    /// few ticks, it parks until the next one starts (which costs the loop one wake-up then,
    /// and nothing per call otherwise).
    pub(crate) fn wait_long_call(&self, tick: Duration) -> Option<u64> {
        let mut st = lock(&self.state);
        let mut seen: Option<u64> = None;
        let mut quiet = 0;
        loop {
            if st.closed {
                return None;
            }
            let wait = match &st.running {
                Some(_) if seen == Some(st.count) => return Some(st.count),
                Some(_) => {
                    seen = Some(st.count);
                    quiet = 0;
                    Some(tick)
                }
                None if quiet >= 3 => {
                    st.parked = true;
                    seen = None;
                    // Once woken by the next call, a few ticks of looking before parking
                    // again: parking at once would cost a wake-up per call.
                    quiet = 0;
                    None
                }
                None => {
                    quiet += 1;
                    seen = None;
                    Some(tick)
                }
            };
            st = match wait {
                Some(t) => match self.started.wait_timeout(st, t) {
                    Ok((g, _)) => g,
                    Err(p) => p.into_inner().0,
                },
                None => match self.started.wait(st) {
                    Ok(g) => g,
                    Err(p) => p.into_inner(),
                },
            };
        }
    }
}

/// A channel's reading side on a thread of its own, feeding the serve loop: what the
/// thread reads comes out of [`next`](Feed::next), but each `Kind::Cancel` is filed in the
/// table at once instead (so it reaches the call running meanwhile). For a channel whose
/// reads may block (the loopback's, a cluster node's subscription).
// (Used by the loopback transport, in tests; a cluster node's router files the cancels itself: cluster/host.rs.)
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) struct Feed {
    rx: crossbeam_channel::Receiver<Next>,
    cancels: Arc<Cancels>,
}

#[cfg_attr(not(test), allow(dead_code))]
impl Feed {
    /// Starts the thread, named `name`: it calls `read` until it returns something other
    /// than an envelope, or the feed is dropped.
    ///
    /// # Errors
    ///
    /// The thread could not be started.
    pub(crate) fn start(
        name: String,
        mut read: impl FnMut() -> Next + Send + 'static,
    ) -> std::io::Result<Self> {
        let cancels = Arc::new(Cancels::default());
        let (tx, rx) = crossbeam_channel::unbounded();
        let table = cancels.clone();
        std::thread::Builder::new().name(name).spawn(move || {
            loop {
                let next = read();
                let more = matches!(next, Next::Env(_));
                match next {
                    Next::Env(env) if env.kind == Kind::Cancel => table.cancel(env.id),
                    next => {
                        if tx.send(next).is_err() {
                            return;
                        }
                    }
                }
                if !more {
                    return;
                }
            }
        })?;
        Ok(Feed { rx, cancels })
    }

    /// What the thread read next (`Closed` once it ended).
    pub(crate) fn next(&self) -> Next {
        self.rx.recv().unwrap_or(Next::Closed)
    }

    /// True if something read is waiting.
    pub(crate) fn more_waiting(&self) -> bool {
        !self.rx.is_empty()
    }

    /// The table the thread files cancels in, for [`Channel::cancels`].
    pub(crate) fn cancels(&self) -> Arc<Cancels> {
        self.cancels.clone()
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
    fn a_closed_cancel_table_ends_the_watcher_waiting_for_a_long_call() {
        let cancels = Arc::new(Cancels::default());
        let (tx, rx) = std::sync::mpsc::channel();
        let watched = cancels.clone();
        std::thread::spawn(move || {
            let _ = tx.send(watched.wait_long_call(Duration::from_millis(1)));
        });
        // A call that runs long is named; then the table closes and the watcher returns.
        let token = cancels.start(1);
        assert!(token.is_some());
        let call = rx.recv_timeout(Duration::from_secs(20)).expect("named");
        assert!(call.is_some_and(|c| cancels.is_running(c)));
        cancels.end(1);
        let watched = cancels.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(watched.wait_long_call(Duration::from_millis(1)));
        });
        cancels.close();
        assert_eq!(rx.recv_timeout(Duration::from_secs(20)), Ok(None));
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
