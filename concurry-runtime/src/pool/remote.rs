//! Pools of `#[worker(remote)]` types: [`Pool::start_remote`] and [`Pool::remote_method`],
//! the entry points process mode gives generated code.

use super::retry::MethodRetry;
use super::{Admit, Pool, Room, Shared, WeakPool, later};
use crate::cancel::Parent;
use crate::error::Error;
use crate::future::{Completer, Promise};
use crate::limit::{Acquisition, LimitSet, WaitError};
use crate::mode::process::backend::{Remote, not_a_remote_call};
use crate::options::{Mode, PoolConfig};
use crate::remote::{Handle, RemoteWorker, Reply, encode_in_lane, encode_request, encode_small};
use crate::sync::{Arc, Ordering};
use crate::wire::WireError;
use crate::worker::Worker;

impl<W> Pool<W>
where
    W: Worker + RemoteWorker<Args = <W as Worker>::Args>,
    <W as RemoteWorker>::InitError: Into<<W as Worker>::InitError>,
{
    /// Starts a pool of a type that can also run out of process: as [`start`](Pool::start)
    /// in every mode but [`Mode::Process`], where each worker is a child process serving
    /// the type (see [`ProcessWorker`](crate::ProcessWorker)) and calls go through
    /// [`remote_method`](Pool::remote_method).
    ///
    /// # Errors
    ///
    /// As `start` (the constructor's own error is [`Error::Method`], typed, in every mode);
    /// in process mode, [`Error::Init`] if a child could not be started, and
    /// [`Error::Config`] for `on_demand`.
    pub fn start_remote(
        config: PoolConfig,
        args: <W as Worker>::Args,
    ) -> Result<Self, Error<<W as Worker>::InitError>> {
        if config.mode == Mode::Cluster {
            return Self::start_cluster(config, args);
        }
        if config.mode != Mode::Process {
            return Self::start(config, args);
        }
        Self::launch(config, |config, _| {
            let remote = crate::mode::process::pool_backend::start::<W>(config, &args)
                .map_err(|e| e.map_method(Into::into))?;
            Ok(Box::new(remote))
        })
    }

    /// [`Mode::Cluster`]: the workers are instances on the cluster's nodes, each supervised
    /// as a process-mode child is (the same `Remote` backend, on the cluster's transport).
    #[cfg(feature = "cluster")]
    fn start_cluster(
        mut config: PoolConfig,
        args: <W as Worker>::Args,
    ) -> Result<Self, Error<<W as Worker>::InitError>> {
        config.validate()?;
        // Named: refused at once if the name is taken (before anything is placed).
        let registration = super::named::register::<W>(&config).map_err(Error::widen)?;
        let transport =
            crate::cluster::transport::for_pool(&mut config, <W as RemoteWorker>::NAME)?;
        let kept = registration.clone();
        let pool = Self::launch(config, |config, _| {
            let remote =
                crate::mode::process::pool_backend::start_on::<W>(&transport, config, &args)
                    .map_err(|e| e.map_method(Into::into))?;
            if let Some(r) = kept {
                remote.on_stop(Box::new(move || r.release()));
            }
            Ok(Box::new(remote))
        })?;
        if let Some(r) = registration {
            r.serve(std::sync::Arc::new(super::named::Forward(pool.downgrade())));
        }
        Ok(pool)
    }

    #[cfg(not(feature = "cluster"))]
    fn start_cluster(
        _: PoolConfig,
        _: <W as Worker>::Args,
    ) -> Result<Self, Error<<W as Worker>::InitError>> {
        Err(crate::error::ConfigError::new(
            "mode",
            "cluster",
            "cluster mode needs the `cluster` feature of concurry \
             (`concurry = { version = \"..\", features = [\"cluster\"] }`)",
        )
        .into())
    }

    /// As [`start_remote`](Pool::start_remote) in [`Mode::Process`], with the workers
    /// placed on `transport` instead of in child processes (the loopback transport's pool
    /// tests, `remote/loopback_pool.rs`).
    #[cfg(test)]
    pub(crate) fn start_on(
        transport: crate::sync::os::Arc<dyn crate::remote::Transport>,
        config: PoolConfig,
        args: <W as Worker>::Args,
    ) -> Result<Self, Error<<W as Worker>::InitError>> {
        Self::launch(config, |config, _| {
            let remote =
                crate::mode::process::pool_backend::start_on::<W>(&transport, config, &args)
                    .map_err(|e| e.map_method(Into::into))?;
            Ok(Box::new(remote))
        })
    }

    /// In [`Mode::Process`]: one call of `method`, sent as `request` to the child the load
    /// balancer picks, and `extract`ed from the child's response. `None` in any other mode:
    /// the caller then takes the in-process path.
    ///
    /// As in process, the call first takes one unit of each call and resource limit of the
    /// pool (held here, in the parent, until the response is back), is retried per the
    /// pool's [`RetryConfig`](crate::RetryConfig) and the method's `retry` (each attempt
    /// resends the request's bytes, so the arguments need not be `Clone`), and carries the
    /// pool's hard `call_timeout`, if any.
    pub fn remote_method<T, E, X>(
        &self,
        method: &'static str,
        retry: &MethodRetry<T, E>,
        request: <W as RemoteWorker>::Request,
        extract: X,
    ) -> Option<Promise<T, E>>
    where
        T: Send + 'static,
        E: Send + 'static,
        X: Extract<W, T, E>,
    {
        let remote = self.backend_as::<Remote>()?;
        // The scope the call is submitted in: its cancel reaches the child, as in-process.
        let scope = crate::cancel::context::current_parent();
        // (A stopped pool is seen by each attempt.)
        let retry = self.retry_for(retry);
        let max = self.inner.config.max_message_size;
        let timeout = self.inner.config.call_timeout;
        let lane = &remote.lane;
        Some(match encode_small(&request, max) {
            Some(Ok(payload)) if !lane.busy() => {
                self.remote_call(method, retry, payload, extract, timeout, scope)
            }
            Some(Err(e)) => Promise::ready(Err(e.widen())),
            // Large arguments are encoded off the caller's thread (`call_timeout` counts
            // the encoding), and calls after them wait behind them, in order; in a
            // bounded pool, once there is room for them.
            encoded => {
                let Ok(place) = remote.lane_room.take(|| self.is_stopped()) else {
                    return Some(Promise::ready(Err(Error::Stopped)));
                };
                let (promise, c) = Promise::pending_in(scope.clone());
                gives_back(&promise, place);
                let pool = self.downgrade();
                let runtime = crate::runtime::for_helpers(self.inner.shared.home.get());
                let send = move |c: Completer<T, E>, payload, left| {
                    let call = (method, retry, scope, runtime);
                    Self::send_from_lane(&pool, c, call, payload, extract, left);
                };
                match encoded {
                    Some(Ok(payload)) => lane.run(move || send(c, payload, timeout)),
                    _ => {
                        let fail: fn(Completer<T, E>, Error) = |c, e| {
                            c.complete(Err(e.widen()));
                        };
                        encode_in_lane(lane, request, max, timeout, c, fail, send);
                    }
                }
                promise
            }
        })
    }

    /// As [`remote_method`](Pool::remote_method), for a request built around arguments
    /// encoded on their own (a task's: `request` wraps their bytes). Large `args` are
    /// encoded off the caller's thread too, in order with the pool's other calls, and
    /// `call_timeout` counts their encoding.
    pub(crate) fn remote_method_with_args<A, T, E, X>(
        &self,
        method: &'static str,
        retry: &MethodRetry<T, E>,
        args: A,
        request: impl FnOnce(Vec<u8>) -> <W as RemoteWorker>::Request + Send + 'static,
        extract: X,
    ) -> Option<Promise<T, E>>
    where
        A: serde::Serialize + Send + 'static,
        T: Send + 'static,
        E: Send + 'static,
        X: Extract<W, T, E>,
    {
        let remote = self.backend_as::<Remote>()?;
        let max = self.inner.config.max_message_size;
        match encode_small(&args, max) {
            Some(Ok(bytes)) => return self.remote_method(method, retry, request(bytes), extract),
            Some(Err(e)) => return Some(Promise::ready(Err(e.widen()))),
            None => {}
        }
        let Ok(place) = remote.lane_room.take(|| self.is_stopped()) else {
            return Some(Promise::ready(Err(Error::Stopped)));
        };
        let scope = crate::cancel::context::current_parent();
        let (promise, c) = Promise::pending_in(scope.clone());
        gives_back(&promise, place);
        let retry = self.retry_for(retry);
        let pool = self.downgrade();
        let runtime = crate::runtime::for_helpers(self.inner.shared.home.get());
        let fail: fn(Completer<T, E>, Error) = |c, e| {
            c.complete(Err(e.widen()));
        };
        let timeout = self.inner.config.call_timeout;
        encode_in_lane(
            &remote.lane,
            args,
            max,
            timeout,
            c,
            fail,
            move |c, bytes, left| {
                // In the lane still: the request around the bytes is encoded here too.
                let started = std::time::Instant::now();
                let payload = match encode_request(&request(bytes), max) {
                    Ok(p) => p,
                    Err(e) => return fail(c, e),
                };
                let left = left.map(|t| t.saturating_sub(started.elapsed()));
                if left == Some(std::time::Duration::ZERO) {
                    return fail(c, Error::Timeout);
                }
                let call = (method, retry, scope, runtime);
                Self::send_from_lane(&pool, c, call, payload, extract, left);
            },
        );
        Some(promise)
    }

    /// Sends a call whose request was encoded on the encoding lane, from the lane: its
    /// answer completes `c`. A pool dropped meanwhile fails it with `Stopped`; a promise
    /// cancelled meanwhile sends nothing, and one cancelled later cancels the call.
    ///
    /// The call's helper tasks (its retry loop, waits for room and for limits) and the task
    /// that hands its answer to `c` run on `runtime`, picked on the caller's thread (the
    /// caller's multi-thread runtime, so its task is woken without crossing runtimes; else
    /// the library's). If that runtime shuts down first, `c` fails with `Stopped`.
    fn send_from_lane<T, E, X>(
        pool: &WeakPool<W>,
        c: Completer<T, E>,
        (method, retry, scope, runtime): LaneCall,
        payload: Vec<u8>,
        extract: X,
        left: Option<std::time::Duration>,
    ) where
        T: Send + 'static,
        E: Send + 'static,
        X: Extract<W, T, E>,
    {
        let Some(pool) = pool.upgrade() else {
            c.complete(Err(Error::Stopped));
            return;
        };
        if c.is_cancelled() {
            return;
        }
        let call = {
            // The lane's thread is the library runtime's: helpers go where the caller is.
            let _caller = runtime.enter();
            pool.remote_call(method, retry, payload, extract, left, scope)
        };
        drop(pool);
        c.on_resolved(call.weak_canceller());
        runtime.spawn(async move {
            c.complete(call.await);
        });
    }

    /// A remote call of encoded arguments, retried per `retry`; the first attempt's hard
    /// timeout is `first_timeout`, each later one's the pool's `call_timeout`.
    fn remote_call<T, E, X>(
        &self,
        method: &'static str,
        retry: Option<std::sync::Arc<crate::retry::RetryConfig>>,
        payload: Vec<u8>,
        extract: X,
        first_timeout: Option<std::time::Duration>,
        scope: Option<Parent>,
    ) -> Promise<T, E>
    where
        T: Send + 'static,
        E: Send + 'static,
        X: Extract<W, T, E>,
    {
        let timer = self.inner.shared.metrics.start(method);
        let promise = match retry {
            // One trace id per call, the same for each of its attempts.
            None => {
                let call = (1, crate::rand::id());
                let to = (first_timeout, scope);
                self.remote_attempt(method, call, Room::Wait, payload, extract, to)
            }
            Some(config) => {
                let trace = crate::rand::id();
                self.attempts(config, method, payload, move |pool, n, room, payload| {
                    let timeout = if n == 1 {
                        first_timeout
                    } else {
                        pool.inner.config.call_timeout
                    };
                    let call = (n, trace);
                    let to = (timeout, scope.clone());
                    pool.remote_attempt(method, call, room, payload, extract.clone(), to)
                })
            }
        };
        timer.watch(&promise);
        promise
    }

    /// One attempt of a remote call: limits, then the child. It has `timeout`, and is
    /// cancelled with `scope` (the scope it was submitted in): one cancelled already is not
    /// sent.
    fn remote_attempt<T, E, X>(
        &self,
        method: &'static str,
        (attempt, trace): (u32, u64),
        room: Room,
        payload: Vec<u8>,
        extract: X,
        (timeout, scope): (Option<std::time::Duration>, Option<Parent>),
    ) -> Promise<T, E>
    where
        T: Send + 'static,
        E: Send + 'static,
        X: Extract<W, T, E>,
    {
        let inner = &*self.inner;
        let workers = self.backend_as::<Remote>().and_then(Remote::workers::<W>);
        let Some(workers) = workers else {
            return Promise::ready(Err(not_a_remote_call(&inner.shared.name, method).widen()));
        };
        if self.is_stopped() {
            return Promise::ready(Err(Error::Stopped));
        }
        let (promise, c) = Promise::pending_in(scope);
        if c.is_cancelled() {
            // Dropped, the completer resolves the promise with `Cancelled`.
            drop(c);
            return promise;
        }
        // Sends the call to child `idx`, where it is counted already.
        let send = {
            let limits = inner.limits.clone();
            let shared = inner.shared.clone();
            move |worker: Handle<W>, idx: usize| {
                remote_send(
                    RemoteCall {
                        worker,
                        limits,
                        timeout,
                        shared,
                        idx,
                        method,
                        attempt,
                        trace,
                    },
                    payload,
                    extract,
                    c,
                )
            }
        };
        match self.admit(room) {
            Admit::Now(idx) => send(workers[idx].clone(), idx),
            Admit::Stopped => drop(send),
            Admit::Later(idx, limit) => {
                let worker = workers[idx].clone();
                later(&inner.shared, idx, limit, move |_, placed| {
                    if placed {
                        send(worker, idx);
                    }
                    // Else dropping `send` (and the completer in it) fails the call with
                    // `Error::Stopped`.
                });
            }
        }
        promise
    }
}

/// A call sent from the encoding lane: its method, retries, scope and the runtime its helper
/// tasks run on.
type LaneCall = (
    &'static str,
    Option<std::sync::Arc<crate::retry::RetryConfig>>,
    Option<Parent>,
    tokio::runtime::Handle,
);

/// What sending one attempt of a remote call needs, once it has its child.
struct RemoteCall<W: RemoteWorker> {
    worker: Handle<W>,
    limits: Option<LimitSet>,
    timeout: Option<std::time::Duration>,
    shared: Arc<Shared>,
    /// The child's index, where the call is counted.
    idx: usize,
    method: &'static str,
    attempt: u32,
    /// The call's trace id, the same for all its attempts.
    trace: u64,
}

/// Sends one attempt to its child: first its limits (waited for on the runtime, never on the
/// caller), then the request; the child's answer resolves `c`.
fn remote_send<W, T, E, X>(call: RemoteCall<W>, payload: Vec<u8>, extract: X, c: Completer<T, E>)
where
    W: RemoteWorker,
    T: Send + 'static,
    E: Send + 'static,
    X: Extract<W, T, E>,
{
    let RemoteCall {
        worker,
        limits,
        timeout,
        shared,
        idx,
        method,
        attempt,
        trace,
    } = call;
    // The call's span lives, in the parent, from dispatch until the answer.
    // (The trace id last: the fields before it read as in every other mode.)
    let span = tracing::debug_span!(
        "concurry.call",
        worker = %shared.name,
        method,
        attempt,
        index = idx,
        trace,
    );
    let abort = shared.clone();
    // Runs once with the child's answer: gives the limits back and counts the call as
    // finished before anyone waiting on the promise sees it.
    // A cancel of the promise is sent on to the child running the call (`Kind::Cancel`).
    let answer = move |held: Option<Acquisition>, c: Completer<T, E>| {
        let watch = c.cancel_watch();
        Reply::new(move |r: Result<<W as RemoteWorker>::Response, Error>| {
            drop(span);
            drop(held);
            shared.finished(idx);
            if matches!(r, Err(Error::Stopped)) {
                shared.failed_by_stop.fetch_add(1, Ordering::AcqRel);
            }
            let out = match r {
                Ok(response) => extract(response).unwrap_or_else(|| {
                    Err(Error::Transport(WireError::Payload {
                        what: "reply",
                        message: format!(
                            "the worker process answered `{method}` with another method's response"
                        ),
                    }))
                }),
                Err(e) => Err(e.widen()),
            };
            // As in process: an error after the scope's cancel is `Cancelled`.
            let out = crate::cancel::context::cancelled_or(c.cancel_requested(), out);
            // Cancelled meanwhile: what the method returned anyway is reported, not lost
            // silently (as in every other mode).
            if let Err(out) = c.try_complete(out)
                && matches!(out, Ok(_) | Err(Error::Method(_)))
            {
                crate::cancel::context::report::<T, E>(&out);
            }
        })
        .watching(watch)
    };
    match limits.filter(|set| set.has_call_units()) {
        None => worker.send_encoded(payload, (attempt, trace), timeout, answer(None, c)),
        Some(set) => {
            // Waiting for units must not block the caller: it happens in a task on the
            // caller's multi-thread runtime (else the library's). If that runtime shuts down
            // first, the dropped completer fails the call with `Stopped`.
            crate::runtime::for_helpers(abort.home.get()).spawn(async move {
                let acquired = set
                    .acquire_call_async(|| c.is_cancelled() || abort.abort.load(Ordering::Acquire))
                    .await;
                let reply = |held| answer(held, c);
                match acquired {
                    Ok(held) => {
                        worker.send_encoded(payload, (attempt, trace), timeout, reply(held))
                    }
                    Err(WaitError::Limit(e)) => reply(None).complete(Err(Error::Limit(e))),
                    // Cancelled (the promise is resolved already) or the pool stopped.
                    Err(WaitError::Cancelled) => reply(None).complete(Err(Error::Stopped)),
                }
            });
        }
    }
}

/// How generated code takes one method's result out of a worker's response enum: `None` if
/// the response is another method's (a broken peer). Any `Fn` of that shape that can be
/// cloned per attempt and sent to the thread that has the answer.
pub trait Extract<W: RemoteWorker, T, E>:
    Fn(W::Response) -> Option<Result<T, Error<E>>> + Clone + Send + Sync + 'static
{
}

impl<W, T, E, X> Extract<W, T, E> for X
where
    W: RemoteWorker,
    X: Fn(W::Response) -> Option<Result<T, Error<E>>> + Clone + Send + Sync + 'static,
{
}

/// Gives a lane call's place back once its promise resolves.
fn gives_back<T, E>(promise: &Promise<T, E>, place: Option<crate::remote::LanePlace>)
where
    T: Send + 'static,
    E: Send + 'static,
{
    if let Some(place) = place {
        promise.on_done(move |_| drop(place));
    }
}
