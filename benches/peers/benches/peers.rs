//! concurry against the actor frameworks users would pick, and against hand-written tokio
//! actors, in one process: one actor (or one worker), `u64` in and `u64` out, a no-op handler.
//!
//! Two groups, each with the same rows:
//! - `peers/pipelined`: [`N`] calls submitted, then all awaited (throughput per call);
//! - `peers/round_trip`: one call submitted and awaited, repeated (latency).
//!
//! Rows (each framework used as its docs show, every mailbox unbounded):
//! - `concurry_thread`: `Mode::Thread`, the caller a plain thread, `.result()`;
//! - `concurry_async_fn`: `Mode::Async` with an `async fn` method, the caller a task on the
//!   tokio multi-thread runtime `caller`, `.await`;
//! - `concurry_async_plain_fn`: the same with a plain `fn` method;
//! - `kameo_ask`: kameo `ask` (pipelined: `ask(..).enqueue()` then the pending replies), actor
//!   spawned on `caller`, the caller a task there;
//! - `ractor_call`: ractor `call!` (pipelined: `cast` of the message with its
//!   `RpcReplyPort`, the two halves of `call!`), actor spawned on `caller`;
//! - `actix_send`: actix `Addr::send`, the actor on its own `System` on its own thread, the
//!   caller a task on `caller`;
//! - `tokio_actor_same_rt`: an mpsc + oneshot actor spawned on `caller`, the caller a task
//!   there;
//! - `tokio_actor_plain_thread`: that actor on a second runtime, the caller a plain thread
//!   (`blocking_recv`), like-for-like with `concurry_thread`;
//! - `tokio_actor_cross_rt`: that actor on a second runtime, the caller a task on `caller`:
//!   how concurry's async mode runs when it uses its own runtime.
//!
//! Run by hand: `cd benches/peers && cargo bench`.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tokio::runtime::Runtime;

use concurry::prelude::*;

/// Calls per iteration of the pipelined group.
const N: u64 = 10_000;

// ---------------------------------------------------------------------------------- concurry

struct SyncNop;

#[concurry::worker]
impl SyncNop {
    pub fn new() -> Self {
        SyncNop
    }
    pub fn nop(&self, x: u64) -> u64 {
        x
    }
}

struct AsyncNop;

#[concurry::worker]
impl AsyncNop {
    pub fn new() -> Self {
        AsyncNop
    }
    pub async fn nop(&self, x: u64) -> u64 {
        x
    }
}

// ------------------------------------------------------------------------------------- kameo

#[derive(kameo::Actor)]
struct KameoNop;

impl kameo::message::Message<u64> for KameoNop {
    type Reply = u64;
    async fn handle(
        &mut self,
        x: u64,
        _ctx: &mut kameo::message::Context<Self, Self::Reply>,
    ) -> Self::Reply {
        x
    }
}

fn kameo_actor(rt: &Runtime) -> kameo::actor::ActorRef<KameoNop> {
    use kameo::actor::Spawn;
    let _in_rt = rt.enter();
    KameoNop::spawn_with_mailbox(KameoNop, kameo::mailbox::unbounded())
}

// ------------------------------------------------------------------------------------ ractor

struct RactorNop;

enum RactorMsg {
    Nop(u64, ractor::RpcReplyPort<u64>),
}

impl ractor::Actor for RactorNop {
    type Msg = RactorMsg;
    type State = ();
    type Arguments = ();

    async fn pre_start(
        &self,
        _myself: ractor::ActorRef<Self::Msg>,
        _args: (),
    ) -> Result<(), ractor::ActorProcessingErr> {
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ractor::ActorRef<Self::Msg>,
        msg: Self::Msg,
        _state: &mut (),
    ) -> Result<(), ractor::ActorProcessingErr> {
        match msg {
            RactorMsg::Nop(x, reply) => {
                let _ = reply.send(x);
            }
        }
        Ok(())
    }
}

/// A ractor actor (its mailbox is unbounded) spawned on `rt`.
fn ractor_actor(rt: &Runtime) -> ractor::ActorRef<RactorMsg> {
    let (actor, _join) = rt
        .block_on(ractor::Actor::spawn(None, RactorNop, ()))
        .unwrap();
    actor
}

// ------------------------------------------------------------------------------------- actix

struct ActixNop;

impl actix::Actor for ActixNop {
    type Context = actix::Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // 0 is actix's "unbounded" (the default is 16 messages).
        ctx.set_mailbox_capacity(0);
    }
}

struct ActixMsg(u64);

impl actix::Message for ActixMsg {
    type Result = u64;
}

impl actix::Handler<ActixMsg> for ActixNop {
    type Result = u64;
    fn handle(&mut self, msg: ActixMsg, _ctx: &mut Self::Context) -> u64 {
        msg.0
    }
}

/// An actix actor on its own `System`, running on its own thread for the rest of the process.
fn actix_actor() -> actix::Addr<ActixNop> {
    use actix::Actor;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let system = actix::System::new();
        system.block_on(async { tx.send(ActixNop.start()).unwrap() });
        system.run().unwrap();
    });
    rx.recv().unwrap()
}

// ------------------------------------------------------------------------------------- tokio

type Reply = tokio::sync::oneshot::Sender<u64>;
type TokioActor = tokio::sync::mpsc::UnboundedSender<(u64, Reply)>;

/// The hand-written tokio actor: an unbounded mpsc mailbox and a oneshot reply per call.
fn tokio_actor(rt: &Runtime) -> TokioActor {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(u64, Reply)>();
    rt.spawn(async move {
        while let Some((x, reply)) = rx.recv().await {
            let _ = reply.send(x);
        }
    });
    tx
}

fn tokio_call(actor: &TokioActor, x: u64) -> tokio::sync::oneshot::Receiver<u64> {
    let (reply, rx) = tokio::sync::oneshot::channel();
    actor.send((x, reply)).unwrap();
    rx
}

// ------------------------------------------------------------------------------------ set-up

/// A multi-thread runtime with tokio's default worker count (one per core).
fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Everything the rows call, started once.
struct Peers {
    /// The runtime whose tasks are the callers, and that the same-runtime actors run on.
    caller: Runtime,
    /// A second runtime, for the cross-runtime and plain-thread tokio rows.
    _other: Runtime,
    thread: SyncNopHandle,
    async_fn: AsyncNopHandle,
    async_plain_fn: SyncNopHandle,
    kameo: kameo::actor::ActorRef<KameoNop>,
    ractor: ractor::ActorRef<RactorMsg>,
    actix: actix::Addr<ActixNop>,
    tokio_same: TokioActor,
    tokio_other: TokioActor,
}

impl Peers {
    fn start() -> Self {
        let caller = runtime();
        let other = runtime();
        let thread = SyncNop::options()
            .mode(Mode::Thread)
            .max_workers(1)
            .init()
            .unwrap();
        let (async_fn, async_plain_fn) = {
            // Built inside `caller`'s context, as a tokio app builds them.
            let _in_rt = caller.enter();
            let a = AsyncNop::options()
                .mode(Mode::Async)
                .max_workers(1)
                .init()
                .unwrap();
            let s = SyncNop::options()
                .mode(Mode::Async)
                .max_workers(1)
                .init()
                .unwrap();
            (a, s)
        };
        Peers {
            kameo: kameo_actor(&caller),
            ractor: ractor_actor(&caller),
            actix: actix_actor(),
            tokio_same: tokio_actor(&caller),
            tokio_other: tokio_actor(&other),
            thread,
            async_fn,
            async_plain_fn,
            caller,
            _other: other,
        }
    }

    fn stop(self) {
        self.thread.stop().unwrap();
        self.async_fn.stop().unwrap();
        self.async_plain_fn.stop().unwrap();
        self.ractor.stop(None);
    }
}

/// Times `iters` runs of `$body` on a task spawned on `$rt` (so the caller is a task of that
/// runtime, not the thread blocking on it), with `$state` moved into the task.
macro_rules! on_task {
    ($rt:expr, $iters:expr, $state:ident = $init:expr, $body:block) => {{
        let $state = $init;
        let iters = $iters;
        $rt.block_on($rt.spawn(async move {
            let start = Instant::now();
            for _ in 0..iters {
                $body
            }
            start.elapsed()
        }))
        .unwrap()
    }};
}

// -------------------------------------------------------------------------------- the groups

fn pipelined(c: &mut Criterion, p: &Peers) {
    let rt = &p.caller;
    let mut g = c.benchmark_group("peers/pipelined");
    g.throughput(Throughput::Elements(N));

    g.bench_function("concurry_thread", |b| {
        b.iter(|| {
            let v: Vec<_> = (0..N).map(|i| p.thread.nop(i)).collect();
            for r in v {
                black_box(r.result().unwrap());
            }
        })
    });
    g.bench_function("concurry_async_fn", |b| {
        b.iter_custom(|iters| {
            on_task!(rt, iters, h = p.async_fn.clone(), {
                let v: Vec<_> = (0..N).map(|i| h.nop(i)).collect();
                for r in v {
                    black_box(r.await.unwrap());
                }
            })
        })
    });
    g.bench_function("concurry_async_plain_fn", |b| {
        b.iter_custom(|iters| {
            on_task!(rt, iters, h = p.async_plain_fn.clone(), {
                let v: Vec<_> = (0..N).map(|i| h.nop(i)).collect();
                for r in v {
                    black_box(r.await.unwrap());
                }
            })
        })
    });
    g.bench_function("kameo_ask", |b| {
        b.iter_custom(|iters| {
            on_task!(rt, iters, a = p.kameo.clone(), {
                let mut v = Vec::with_capacity(N as usize);
                for i in 0..N {
                    v.push(a.ask(i).enqueue().await.unwrap());
                }
                for r in v {
                    black_box(r.await.unwrap());
                }
            })
        })
    });
    g.bench_function("ractor_call", |b| {
        b.iter_custom(|iters| {
            on_task!(rt, iters, a = p.ractor.clone(), {
                let v: Vec<_> = (0..N)
                    .map(|i| {
                        let (tx, rx) = ractor::concurrency::oneshot();
                        a.cast(RactorMsg::Nop(i, tx.into())).unwrap();
                        rx
                    })
                    .collect();
                for r in v {
                    black_box(r.await.unwrap());
                }
            })
        })
    });
    g.bench_function("actix_send", |b| {
        b.iter_custom(|iters| {
            on_task!(rt, iters, a = p.actix.clone(), {
                let v: Vec<_> = (0..N).map(|i| a.send(ActixMsg(i))).collect();
                for r in v {
                    black_box(r.await.unwrap());
                }
            })
        })
    });
    g.bench_function("tokio_actor_same_rt", |b| {
        b.iter_custom(|iters| {
            on_task!(rt, iters, a = p.tokio_same.clone(), {
                let v: Vec<_> = (0..N).map(|i| tokio_call(&a, i)).collect();
                for r in v {
                    black_box(r.await.unwrap());
                }
            })
        })
    });
    g.bench_function("tokio_actor_plain_thread", |b| {
        b.iter(|| {
            let v: Vec<_> = (0..N).map(|i| tokio_call(&p.tokio_other, i)).collect();
            for r in v {
                black_box(r.blocking_recv().unwrap());
            }
        })
    });
    g.bench_function("tokio_actor_cross_rt", |b| {
        b.iter_custom(|iters| {
            on_task!(rt, iters, a = p.tokio_other.clone(), {
                let v: Vec<_> = (0..N).map(|i| tokio_call(&a, i)).collect();
                for r in v {
                    black_box(r.await.unwrap());
                }
            })
        })
    });
    g.finish();
}

fn round_trip(c: &mut Criterion, p: &Peers) {
    let rt = &p.caller;
    let mut g = c.benchmark_group("peers/round_trip");
    g.throughput(Throughput::Elements(1));

    g.bench_function("concurry_thread", |b| {
        b.iter(|| p.thread.nop(black_box(1)).result().unwrap())
    });
    g.bench_function("concurry_async_fn", |b| {
        b.iter_custom(|iters| {
            on_task!(rt, iters, h = p.async_fn.clone(), {
                black_box(h.nop(black_box(1)).await.unwrap());
            })
        })
    });
    g.bench_function("concurry_async_plain_fn", |b| {
        b.iter_custom(|iters| {
            on_task!(rt, iters, h = p.async_plain_fn.clone(), {
                black_box(h.nop(black_box(1)).await.unwrap());
            })
        })
    });
    g.bench_function("kameo_ask", |b| {
        b.iter_custom(|iters| {
            on_task!(rt, iters, a = p.kameo.clone(), {
                black_box(a.ask(black_box(1)).await.unwrap());
            })
        })
    });
    g.bench_function("ractor_call", |b| {
        b.iter_custom(|iters| {
            on_task!(rt, iters, a = p.ractor.clone(), {
                black_box(ractor::call!(a, RactorMsg::Nop, black_box(1)).unwrap());
            })
        })
    });
    g.bench_function("actix_send", |b| {
        b.iter_custom(|iters| {
            on_task!(rt, iters, a = p.actix.clone(), {
                black_box(a.send(ActixMsg(black_box(1))).await.unwrap());
            })
        })
    });
    g.bench_function("tokio_actor_same_rt", |b| {
        b.iter_custom(|iters| {
            on_task!(rt, iters, a = p.tokio_same.clone(), {
                black_box(tokio_call(&a, black_box(1)).await.unwrap());
            })
        })
    });
    g.bench_function("tokio_actor_plain_thread", |b| {
        b.iter(|| {
            tokio_call(&p.tokio_other, black_box(1))
                .blocking_recv()
                .unwrap()
        })
    });
    g.bench_function("tokio_actor_cross_rt", |b| {
        b.iter_custom(|iters| {
            on_task!(rt, iters, a = p.tokio_other.clone(), {
                black_box(tokio_call(&a, black_box(1)).await.unwrap());
            })
        })
    });
    g.finish();
}

fn peers(c: &mut Criterion) {
    let p = Peers::start();
    pipelined(c, &p);
    round_trip(c, &p);
    p.stop();
}

criterion_group! {
    name = benches;
    // Short, so a full run takes a few minutes on a small machine.
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = peers
}
criterion_main!(benches);
