//! [`Handle`]: the typed side of one supervised remote worker. It encodes `W::Request`,
//! hands bytes to the [`Supervisor`], and decodes `W::Response` when the reply comes back;
//! the supervisor itself never sees a type.

use std::marker::PhantomData;
use std::time::Duration;

use serde::de::DeserializeOwned;

use super::encode::{Lane, encode_in_lane, encode_small};
use super::registry::RemoteWorker;
use super::supervisor::{Completion, Supervision, Supervisor};
use super::transport::{PlaceError, Transport};
use crate::error::Error;
use crate::future::{CancelWatch, Promise};
use crate::sync::os::Arc;
use crate::wire::{Fault, WireError, decode, encode};

/// One supervised instance of `W`, on any transport. Cloning shares it; it stops when
/// `stop()` is called or the last clone is dropped.
pub(crate) struct Handle<W: RemoteWorker> {
    owner: Arc<Owner>,
    _worker: PhantomData<fn() -> W>,
}

impl<W: RemoteWorker> Clone for Handle<W> {
    fn clone(&self) -> Self {
        Handle {
            owner: self.owner.clone(),
            _worker: PhantomData,
        }
    }
}

/// Stops the supervisor when the last user handle goes (its threads hold the supervisor,
/// never this).
struct Owner {
    sup: Arc<Supervisor>,
    /// Calls that left the caller's thread (large ones, and those behind them), in order.
    lane: Arc<Lane>,
}

impl Drop for Owner {
    fn drop(&mut self) {
        let _ = self.sup.stop();
    }
}

impl<W: RemoteWorker> Handle<W> {
    /// Places an instance of `W` built from `args` on `transport`, supervised per `config`.
    ///
    /// # Errors
    ///
    /// [`Error::Method`] with the constructor's own error (typed); [`Error::Init`] if the
    /// constructor panicked or the worker could not be placed (the transport does not know
    /// `W`, among others).
    pub(crate) fn start(
        transport: Arc<dyn Transport>,
        args: &W::Args,
        config: Supervision,
    ) -> Result<Self, Error<W::InitError>> {
        let args = encode(args, "constructor arguments").map_err(|e| Error::Init {
            message: e.to_string(),
        })?;
        Self::start_encoded(transport, args, config)
    }

    /// As [`start`](Handle::start), with the constructor's arguments encoded already (a
    /// looked-up cluster pool's: none, its transport reaches the owner's instances).
    pub(crate) fn start_encoded(
        transport: Arc<dyn Transport>,
        args: Vec<u8>,
        config: Supervision,
    ) -> Result<Self, Error<W::InitError>> {
        let sup = Supervisor::start((W::NAME, W::schema()), transport, args, config).map_err(
            |e| match e {
                PlaceError::Init(message) | PlaceError::Other(message) => Error::Init { message },
                PlaceError::Constructor { error, .. } => {
                    match decode::<W::InitError>(&error, "constructor error") {
                        Ok(e) => Error::Method(e),
                        Err(e) => Error::Transport(e),
                    }
                }
                PlaceError::Schema(e) => Error::Transport(e),
                PlaceError::Stopped => Error::Stopped,
            },
        )?;
        Ok(Handle {
            owner: Arc::new(Owner {
                sup,
                lane: Arc::default(),
            }),
            _worker: PhantomData,
        })
    }

    /// Sends one call, with a hard timeout if given (counted from now, so the encoding of
    /// large arguments counts).
    pub(crate) fn submit(
        &self,
        request: W::Request,
        timeout: Option<Duration>,
    ) -> Promise<W::Response> {
        let (promise, completer) = Promise::pending();
        let watch = completer.cancel_watch();
        let reply = Reply::new(move |r| {
            completer.complete(r);
        })
        .watching(watch);
        let max = self.max_message_size();
        let lane = &self.owner.lane;
        let call = (1, crate::rand::id());
        match encode_small(&request, max) {
            Some(Ok(payload)) if !lane.busy() => self.send_encoded(payload, call, timeout, reply),
            Some(Ok(payload)) => {
                // Behind a large call still encoding: keep the order.
                let worker = self.clone();
                lane.run(move || worker.send_encoded(payload, call, timeout, reply));
            }
            Some(Err(e)) => reply.complete(Err(e)),
            None => {
                let worker = self.clone();
                let fail: fn(Reply<W::Response>, Error) = |reply, e| reply.complete(Err(e));
                encode_in_lane(
                    lane,
                    request,
                    max,
                    timeout,
                    reply,
                    fail,
                    move |reply, payload, left| {
                        worker.send_encoded(payload, call, left, reply);
                    },
                );
            }
        }
        promise
    }

    /// Sends a request already encoded with [`encode_request`](super::encode_request) (a
    /// retried call sends the same bytes again) as `call`, its attempt and trace id;
    /// `reply` runs once with the outcome, on whichever thread has it.
    pub(crate) fn send_encoded(
        &self,
        payload: Vec<u8>,
        call: (u32, u64),
        timeout: Option<Duration>,
        reply: Reply<W::Response>,
    ) {
        self.owner.sup.send(payload, call, timeout, Box::new(reply));
    }

    /// As [`send_encoded`](Handle::send_encoded), with the reply's bytes handed to
    /// `reply` undecoded (a cluster pool's owner passes them on to a looked-up handle).
    #[cfg(feature = "cluster")]
    pub(crate) fn send_raw(
        &self,
        payload: Vec<u8>,
        call: (u32, u64),
        timeout: Option<Duration>,
        reply: super::supervisor::Reply,
    ) {
        self.owner.sup.send(payload, call, timeout, reply);
    }

    /// The largest request or reply on the channel, in bytes.
    pub(crate) fn max_message_size(&self) -> usize {
        self.owner.sup.config.max_message_size
    }

    /// The serving peer's id (a child's pid), while one is serving.
    pub(crate) fn peer_id(&self) -> Option<u32> {
        self.owner.sup.peer_id()
    }

    /// Where the serving peer runs (a cluster node's name), while one is serving.
    pub(crate) fn location(&self) -> Option<String> {
        self.owner.sup.peer_location()
    }

    /// How many times the peer was replaced.
    pub(crate) fn restarts(&self) -> u64 {
        self.owner.sup.restarts()
    }

    /// Stops the worker (see [`Supervisor::stop`]).
    pub(crate) fn stop(&self) -> Result<(), Error> {
        self.owner.sup.stop()
    }
}

/// What a call's outcome is handed to: the promise's completer, or a caller's own mapping
/// of the response (a pool's typed method promise); and the watch on that promise's cancel,
/// which sends the cancel on to the worker running the call.
pub(crate) struct Reply<R> {
    done: Box<dyn FnOnce(Result<R, Error>) + Send>,
    watch: Option<CancelWatch>,
}

impl<R> Reply<R> {
    pub(crate) fn new(f: impl FnOnce(Result<R, Error>) + Send + 'static) -> Self {
        Reply {
            done: Box::new(f),
            watch: None,
        }
    }

    /// The call is cancelled when `watch`'s promise is: the worker is told.
    pub(crate) fn watching(mut self, watch: Option<CancelWatch>) -> Self {
        self.watch = watch;
        self
    }

    pub(crate) fn complete(self, outcome: Result<R, Error>) {
        (self.done)(outcome);
    }
}

impl<R: DeserializeOwned + Send + 'static> Completion for Reply<R> {
    fn reply(
        self: Box<Self>,
        bytes: &[u8],
        decoded: &mut dyn FnMut(bool),
    ) -> Result<(), WireError> {
        match decode::<Result<R, Fault>>(bytes, "reply") {
            Ok(r) => {
                decoded(true);
                self.complete(r.map_err(fault_error));
                Ok(())
            }
            Err(e) => {
                decoded(false);
                self.complete(Err(Error::Transport(e.duplicate())));
                Err(e)
            }
        }
    }

    fn fail(self: Box<Self>, error: Error) {
        self.complete(Err(error));
    }

    fn cancel_watch(&mut self) -> Option<CancelWatch> {
        self.watch.take()
    }
}

/// What the worker's fault means for the call.
pub(crate) fn fault_error(fault: Fault) -> Error {
    match fault {
        Fault::Panicked { message } => Error::Panicked { message },
        Fault::Protocol { message } => Error::Transport(WireError::Peer { message }),
        Fault::Cancelled => Error::Cancelled,
        Fault::Expired { .. } => Error::Timeout,
        Fault::TooLarge { len, max } => Error::Transport(WireError::TooLarge {
            len,
            max: usize::try_from(max).unwrap_or(usize::MAX),
        }),
        Fault::Lost { message } => Error::WorkerLost { message },
        other => Error::WorkerLost {
            message: other.to_string(),
        },
    }
}
