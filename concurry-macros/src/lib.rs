//! Procedural macros of [concurry](https://docs.rs/concurry). Use them through the `concurry`
//! crate, which re-exports them (`concurry::worker`) together with the runtime they expand to.
#![forbid(unsafe_code)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub
)]
#![doc(test(attr(deny(warnings))))]

use proc_macro::TokenStream;

mod ctxt;
mod fallback;
mod source;
mod task;
mod worker;

#[cfg(test)]
mod layering_tests;

/// Turns the inherent `impl` block of a type into a pool of workers.
///
/// The block stays ordinary Rust (`Echo::new(..)` and `echo.ping(..)` still work directly);
/// the macro only adds, next to it:
///
/// - `impl concurry::__private::Worker for Echo`, which runs `Echo::new(..)` in every worker;
/// - `Echo::options() -> EchoOptions`, a builder (`mode`, `max_workers`, `load_balancing`,
///   `on_demand`, `max_queued_tasks`, `stop_timeout`, `retry`, `limits`, `call_timeout`,
///   `max_message_size`, `max_restarts`, `restart_backoff`, `runtime`, `cluster`, `name`) finished by `init(..)`, which takes the constructor's arguments and returns an
///   `EchoHandle`;
/// - `EchoHandle` (`Clone + Send + Sync`): one method per `pub` method taking `&self` or
///   `&mut self`, with the same name and arguments, returning a `Promise<T>` (a method
///   returning `Result<T, E>` gives a `Promise<T, E>`), plus `stop()`, `stats()`,
///   `is_stopped()` and `blocking()`. Each argument `x: T` becomes `x: impl Arg<T>`: the value,
///   a `Promise` of it (awaited first, so calls chain without blocking), or `&str` for a
///   `String`;
/// - `EchoBlocking<'_>`, from `handle.blocking()`: the same methods, waiting for the result.
///
/// Methods that are not `pub`, and associated functions without `self`, are left alone.
///
/// # Example
///
/// ```
/// use concurry::prelude::*;
///
/// pub struct Echo {
///     n: u64,
/// }
///
/// #[concurry::worker]
/// impl Echo {
///     /// Called once in every worker by `init(..)`.
///     pub fn new(n: u64) -> Self {
///         Echo { n }
///     }
///
///     /// Adds the worker's `n`.
///     pub fn ping(&self, x: u64) -> u64 {
///         x + self.n
///     }
///
///     /// Fails on odd input: the error stays typed in `Error::Method`.
///     pub fn half(&mut self, x: u64) -> Result<u64, String> {
///         if x % 2 == 0 { Ok(x / 2) } else { Err(format!("{x} is odd")) }
///     }
///
///     pub async fn later(&self, x: u64) -> u64 {
///         x * 2
///     }
/// }
///
/// # fn main() -> Result<(), concurry::Error> {
/// let echo = Echo::options().mode(Mode::Thread).max_workers(2).init(1)?;
/// assert_eq!(echo.ping(41).result()?, 42);
/// assert_eq!(echo.later(4).result()?, 8);
/// assert!(matches!(echo.half(3).result(), Err(Error::Method(e)) if e == "3 is odd"));
/// assert_eq!(echo.blocking().ping(1)?, 2);
/// assert_eq!(echo.ping(echo.ping(1)).result()?, 3); // a promise as an argument
/// echo.stop()?;
///
/// // The type itself is untouched.
/// assert_eq!(Echo::new(1).ping(1), 2);
/// # Ok(())
/// # }
/// ```
///
/// # Options
///
/// `#[worker(mode = "thread", max_workers = 4, load_balancing = "round_robin", name = "echo")]`
/// sets the defaults `options()` starts from. `mode` is `"sync"`, `"thread"`, `"async"` or,
/// with `remote`, `"process"` (the names `"..".parse::<Mode>()` accepts);
/// `load_balancing` is `"round_robin"`, `"least_active"`, `"least_total"` or `"random"`.
/// A worker holds state, so a pool built without `max_workers` has one instance: every
/// call meets the same state (`put(1)` then `get(1)` finds the value). `max_workers(n)`
/// gives `n` instances, each with its own state, and spreads calls over them; with
/// `on_demand(true)` (a fresh instance per call) the bound defaults to the number of CPUs.
/// `#[worker(crate = ::my::concurry)]` re-roots the generated paths when `concurry` is
/// renamed or re-exported.
///
/// # Process mode: `#[worker(remote)]`
///
/// `#[worker(remote)]` also lets the type run in child processes (`Mode::Process`): each
/// worker is a child re-executing the current binary, and each call travels as a serde
/// message. So the constructor's arguments, every method's arguments and every return type
/// (the whole `Result<T, E>` for a fallible method, and a fallible constructor's `E`) must
/// implement `Serialize` and `Deserialize`; a type that does not is a compile error at that
/// argument. A constructor's error comes back from the child typed: `init` fails with
/// `Error::Method(E)`, as in every mode. The type must be concrete (no generic parameters).
/// `#[worker(remote, mode = "process")]` makes process mode the default of `options()`. In
/// the other modes nothing changes. In process mode a child that dies fails its call with
/// `Error::WorkerLost` and is replaced, `call_timeout` bounds each call (a child past it is
/// killed and replaced), and calls are retried per the pool's `retry` and the method's
/// `#[retry(..)]` as in the other modes (any call can be retried, whatever its argument
/// types: its encoded bytes are sent again).
///
/// ```
/// use concurry::Mode;
///
/// pub struct Doubler {
///     calls: u64,
/// }
///
/// #[concurry::worker(remote)]
/// impl Doubler {
///     pub fn new() -> Self {
///         Doubler { calls: 0 }
///     }
///
///     pub fn double(&mut self, x: u64) -> u64 {
///         self.calls += 1;
///         x * 2
///     }
///
///     pub fn pid(&self) -> u32 {
///         std::process::id()
///     }
/// }
///
/// # fn main() -> Result<(), concurry::Error> {
/// let pool = Doubler::options().mode(Mode::Process).max_workers(2).init()?;
/// assert_eq!(pool.double(21).result()?, 42);
/// assert_ne!(pool.pid().result()?, std::process::id());
/// pool.stop()?;
/// # Ok(())
/// # }
/// ```
///
/// # Retries: `#[retry(..)]`
///
/// A method of the block may carry `#[retry(attempts = 5, on = path, until = path)]` (any of
/// the three) or `#[retry(never)]`, which `#[worker]` reads and removes. It overrides the
/// pool's `retry` option for that method: `attempts` is the number of tries in all, `on` a
/// `fn(&E) -> bool` choosing which of the method's errors to retry, `until` a
/// `fn(&T) -> bool` accepting outputs (both checked against the method's types at compile
/// time); the waits between tries come from the pool's `RetryConfig`. It applies in every
/// mode, process mode included. A method whose arguments are not `Clone` cannot be sent
/// again and runs once (except in process mode).
///
/// # Rules
///
/// Exposed methods take `&self` or `&mut self`, are not generic, and take and return owned
/// values (no references but `&'static`, no `impl Trait`): each call travels to another
/// worker. The block needs a constructor `fn new(..) -> Self` (or `-> Result<Self, E>`, whose
/// error surfaces from `init` as `Error::Method(e)`); its arguments must be `Clone`, since
/// every worker gets a copy. A worker with `async fn` methods taking `&self` must be `Sync`.
/// A type has one `#[worker]` block (it generates one handle and one builder); more methods
/// can live in plain `impl` blocks, which the handle does not expose.
/// Breaking a rule is a compile error at the offending token that says the fix.
///
/// <details><summary>See expanded code</summary>
///
/// For `impl Echo { pub fn new(n: u64) -> Self; pub fn ping(&self, x: u64) -> u64;
/// pub fn half(&mut self, x: u64) -> Result<u64, String>; pub async fn later(&self, x: u64)
/// -> u64 }` (docs and `#[automatically_derived]` left out):
///
/// ```ignore
/// impl ::concurry::__private::Worker for Echo {
///     type Args = (u64,);
///     type InitError = <::concurry::__private::Infallibly<Self>
///         as ::concurry::__private::Constructed<Self>>::Error;
///     const NAME: &'static str = "Echo";
///     fn construct(args: Self::Args) -> Result<Self, Self::InitError> {
///         let (n,) = args;
///         ::concurry::__private::Constructed::into_instance(
///             ::concurry::__private::Infallibly(<Echo>::new(n)))
///     }
/// }
///
/// pub struct EchoHandle { pool: ::concurry::__private::Pool<Echo> }
/// // + Clone, Debug
///
/// impl EchoHandle {
///     pub fn ping(&self, x: impl ::concurry::Arg<u64>) -> ::concurry::Promise<u64> {
///         match (::concurry::Arg::into_arg(x),) {
///             (Ok(x),) => self.pool.submit_blocking("ping", move |worker: &mut Echo| {
///                 ::concurry::__private::value(<Echo>::ping(worker, x))
///             }),
///             (x,) => {
///                 let handle = self.clone();
///                 ::concurry::__private::chain(async move {
///                     let x = ::concurry::__private::resolve(x).await?;
///                     Ok(handle.pool.submit_blocking("ping", /* same closure */))
///                 })
///             }
///         }
///     }
///     // Below, arguments are shown as values; they take `impl Arg<T>` like `ping`.
///     pub fn half(&self, x: u64) -> ::concurry::Promise<u64, String> {
///         self.pool.submit_blocking("half", move |worker: &mut Echo| {
///             ::concurry::__private::fallible(<Echo>::half(worker, x))
///         })
///     }
///     pub fn later(&self, x: u64) -> ::concurry::Promise<u64> {
///         ::concurry::__private::async_self_methods_need_a_sync_worker::<Echo>();
///         self.pool.submit_shared("later", move |worker: &Echo| {
///             Box::pin(async move { ::concurry::__private::value(<Echo>::later(worker, x).await) })
///         })
///     }
///     pub fn stop(&self) -> Result<(), ::concurry::Error> { self.pool.stop() }
///     pub fn stats(&self) -> ::concurry::PoolStats { self.pool.stats() }
///     pub fn is_stopped(&self) -> bool { self.pool.is_stopped() }
///     pub fn blocking(&self) -> EchoBlocking<'_> { EchoBlocking { handle: self } }
/// }
///
/// pub struct EchoBlocking<'a> { handle: &'a EchoHandle }
/// // + Clone, Copy, Debug
///
/// impl<'a> EchoBlocking<'a> {
///     pub fn ping(&self, x: u64) -> Result<u64, ::concurry::Error> {
///         EchoHandle::ping(self.handle, x).result()
///     }
///     pub fn half(&self, x: u64) -> Result<u64, ::concurry::Error<String>> {
///         EchoHandle::half(self.handle, x).result()
///     }
///     pub fn later(&self, x: u64) -> Result<u64, ::concurry::Error> {
///         EchoHandle::later(self.handle, x).result()
///     }
/// }
///
/// pub struct EchoOptions(::concurry::__private::Options<Echo>);
/// // + Debug
///
/// impl EchoOptions {
///     ::concurry::__private::options_builder_methods!(); // mode, max_workers, ...
///     pub fn init(self, n: u64)
///         -> Result<EchoHandle, ::concurry::Error<::core::convert::Infallible>>
///     {
///         self.0.init_with((n,)).map(|pool| EchoHandle { pool })
///     }
/// }
///
/// impl Echo {
///     pub fn options() -> EchoOptions {
///         EchoOptions(Default::default()) // then the `#[worker(..)]` defaults, if any
///     }
/// }
/// ```
///
/// </details>
#[proc_macro_attribute]
pub fn worker(args: TokenStream, item: TokenStream) -> TokenStream {
    let source = caller_source();
    worker::expand_in(args.into(), item.into(), source.as_deref()).into()
}

/// Runs a free function on a pool: the function stays callable as written, and a module of
/// the same name runs it on workers.
///
/// For `#[task] fn fetch(url: String) -> String`, the macro adds `mod fetch` with:
///
/// - `fetch::submit(url) -> Promise<String>`: one call on a worker of the implicit pool. Each
///   argument may be a value, a `Promise` of one (awaited first, so calls chain without
///   blocking) or `&str` for a `String`, as on `#[worker]` handles;
/// - `fetch::map(items)` / `fetch::map_unordered(items)`: a lazy, bounded
///   [`TaskMap`](../concurry/struct.TaskMap.html) calling `fetch` on every item, spread over
///   every worker, one `Result` per item (in input or completion order). A function of
///   several arguments maps over tuples: `concurry::zip((xs, ys))`. Cheap items travel in
///   chunks, many per call (automatic, or `.chunk_size(n)`), unless the calls are retried, run
///   in child processes, or the function is `async`: then each item is its own call;
/// - `fetch::stop()`: stops the implicit pool (queued calls finish). The implicit pool starts
///   on first use with the `#[task(..)]` defaults, and again after a stop. A pool still
///   running when the process exits (`main` returns, or `exit`) is drained then: queued calls,
///   fire-and-forget `submit`s included, finish first, for at most its `stop_timeout` (30 s;
///   past it the rest is dropped). An `exit` from inside one of its calls does not wait;
/// - `fetch::options()...init() -> fetch::Handle`: a separate, explicitly configured pool with
///   the same `submit`, `map`, `map_unordered`, plus `stop`, `stats` and `is_stopped`;
///   `fetch::handle()` returns the implicit pool's handle.
///
/// A function returning `Result<T, E>` gives `Promise<T, E>`, its error kept typed in
/// `Error::Method`. An `async fn` runs as a future on its worker (several at once per worker
/// in async mode).
///
/// # Example
///
/// ```
/// use concurry::prelude::*;
///
/// #[concurry::task(mode = "thread", max_workers = 4)]
/// fn square(x: u64) -> u64 {
///     x * x
/// }
///
/// #[concurry::task]
/// fn parse(s: String) -> Result<u32, std::num::ParseIntError> {
///     s.parse()
/// }
///
/// #[concurry::task(mode = "async")]
/// async fn add(a: u64, b: u64) -> u64 {
///     a + b
/// }
///
/// # fn main() -> Result<(), concurry::Error> {
/// assert_eq!(square(3), 9); // still a plain function
/// assert_eq!(square::submit(4).result()?, 16); // on the implicit pool
/// let squares: Vec<u64> = square::map(0..5).collect::<Result<_, _>>()?;
/// assert_eq!(squares, [0, 1, 4, 9, 16]);
///
/// assert!(matches!(parse::submit("x").result(), Err(Error::Method(_)))); // `&str` for a `String`
/// let sums: Vec<u64> = add::map(concurry::zip((1..=3, 10..))).collect::<Result<_, _>>()?;
/// assert_eq!(sums, [11, 13, 15]);
///
/// // An explicitly configured pool of its own.
/// let pool = square::options().mode(Mode::Sync).max_workers(1).init()?;
/// assert_eq!(pool.submit(5).result()?, 25);
/// pool.stop()?;
///
/// square::stop()?;
/// parse::stop()?;
/// add::stop()?;
/// # Ok(())
/// # }
/// ```
///
/// # Process mode: `#[task(remote)]`
///
/// `#[task(remote)]` also lets the function run in child processes: with
/// `fetch::options().mode(Mode::Process)`, each worker is a child re-executing the current
/// binary, which finds the function by its path in a registry filled at link time. A call
/// travels as the function's name and its serde-encoded arguments, multiplexed over the
/// child's channel and spread over the children by the load balancer, so every argument type
/// and the return type (the whole `Result<T, E>` of a fallible function) must implement
/// `Serialize` and `Deserialize`; a type that does not is a compile error at that argument.
/// `submit`, `map` and `map_unordered` work as in the other modes, the error of a function
/// returning `Result<T, E>` stays typed in `Error::Method(E)`, and calls are retried per
/// `retry` and `#[retry]` (the encoded arguments are sent again, whatever their types). A
/// panic fails its call with `Error::Panicked` and the child serves on; a child that dies
/// fails its calls with `Error::WorkerLost` and is replaced; `stop()` ends and reaps every
/// child. In the other modes nothing changes, and the function stays a plain Rust function.
/// Without `remote`, `init` in process mode is an `Error::Config` saying to add it (and
/// `mode = "process"` in the attribute, a compile error). `#[task(remote, mode = "process")]`
/// runs the implicit pool in child processes too, so `fetch::submit(..)` and
/// `fetch::map(..)` cross to them.
///
/// ```
/// use concurry::prelude::*;
///
/// #[concurry::task(remote)]
/// fn checked_div(a: u64, b: u64) -> Result<u64, String> {
///     a.checked_div(b).ok_or_else(|| format!("{a} / 0"))
/// }
///
/// #[concurry::task(remote)]
/// fn pid() -> u32 {
///     std::process::id()
/// }
///
/// # fn main() -> Result<(), concurry::Error> {
/// let pool = checked_div::options().mode(Mode::Process).max_workers(2).init()?;
/// assert!(matches!(pool.submit(84, 2).result(), Ok(42)));
/// assert!(matches!(pool.submit(1, 0).result(), Err(Error::Method(e)) if e == "1 / 0"));
/// let quotients: Vec<_> = pool.map(concurry::zip((10..13, [1, 2, 0]))).collect();
/// assert!(matches!(quotients[..2], [Ok(10), Ok(5)]));
/// assert!(matches!(&quotients[2], Err(Error::Method(e)) if e == "12 / 0"));
/// pool.stop()?;
///
/// let pids = pid::options().mode(Mode::Process).max_workers(1).init()?;
/// assert_ne!(pids.submit().result()?, std::process::id());
/// pids.stop()?;
/// # Ok(())
/// # }
/// ```
///
/// # Cluster mode: durable tasks
///
/// With the `cluster` feature, `fetch::options().mode(Mode::Cluster).cluster(cluster).init()`
/// of a `#[task(remote)]` function gives a handle whose `submit` is a durable task on the
/// cluster's task queue (`concurry::cluster::tasks`): it returns once the task is stored,
/// the nodes run it at least once (again elsewhere if a node dies under it), and the promise
/// resolves with its stored result, as in every mode. The promise's `task_id()` is the
/// task's id, durable once `submit` returns: `cluster.task_status(id)`,
/// `cluster.cancel(id)` and `cluster.task_result::<fetch::Task>(id)?.result()` (the
/// generated `Task` alias, the function as a `RemoteTask`) work from any process.
/// `Handle::submit_with(args.., Submit)` takes the task's id (idempotent), priority, delay
/// or ETA and retries; it fails with `Error::Config` outside cluster mode. `map` submits
/// each item as a task, at most twice `max_workers` in flight; the pool's `retry` and
/// `#[retry(attempts = ..)]` become the task's retries on the nodes. The pool's `limits`
/// are what `concurry::limits()` gives inside the task on every node, one set across all
/// nodes, hosted by the pool's process (one process per task hosts them; while none does,
/// `limits()` in the task fails at once with a `LimitError`). The pool has no workers of
/// its own: `on_demand` and `max_queued_tasks` are refused with `Error::Config`, and
/// `stop()` leaves submitted tasks running. Without `remote`, and for closure pools, `init`
/// in cluster mode is an `Error::Config` saying the fix.
///
/// ```no_run
/// use concurry::prelude::*;
/// use concurry::cluster::{Cluster, Priority, Submit};
///
/// #[concurry::task(remote)]
/// fn render(page: String) -> Result<Vec<u8>, String> {
///     Ok(page.into_bytes())
/// }
///
/// # fn main() -> Result<(), concurry::Error> {
/// let cluster = Cluster::connect("nats://127.0.0.1:4222")?;
/// let q = render::options().mode(Mode::Cluster).cluster(cluster.clone()).init()?;
/// let p = q.submit("home");
/// let id = p.task_id().expect("stored").to_string();
/// let p2 = q.submit_with(
///     "invoice".to_string(),
///     Submit::new().id("invoice-42").priority(Priority::High),
/// );
/// assert_eq!(p2.task_id(), Some("invoice-42"));
/// assert!(matches!(p.result(), Ok(b) if b == b"home"));
/// // From any process, later:
/// let pdf = cluster.task_result::<render::Task>("invoice-42")?.result()?;
/// # let _ = (pdf, id);
/// # Ok(())
/// # }
/// ```
///
/// # Options and rules
///
/// `#[retry(attempts = 5, on = path, until = path)]` or `#[retry(never)]` right under
/// `#[task]` overrides the pool's retry settings for the function, as on a `#[worker]`
/// method (written below `#[task]`, which reads and removes it). With `#[task(remote)]` it
/// also applies on a cluster's nodes when the function runs as a durable task
/// (`RemoteTask::retry`), where an `Err` it returns is a failed attempt
/// (`RemoteTask::inspect`).
///
/// In `#[retry]`, `attempts = n` counts every try, the first call included (`1` = no
/// retries), as `RetryConfig::attempts(n)` does. The waits between attempts come from the
/// pool's `retry` option, or, in a pool without one, from `RetryConfig::default()`:
/// exponential from 1 s, capped at 60 s, jitter 0.3.
///
/// `#[task(..)]` takes the options of [`worker`](macro@worker): `mode`, `max_workers`,
/// `load_balancing`, `name` (default: the function's name), `remote` and `crate`. A task
/// holds no state, so `max_workers` defaults to the number of CPUs (a `#[worker]` type's to
/// 1). The other options of the runtime are set on `fetch::options()`: `on_demand`,
/// `max_queued_tasks`, `stop_timeout`, `retry`, `limits`, (async mode) `runtime` and
/// (process mode) `call_timeout`, `max_message_size`, `max_restarts` and `restart_backoff`,
/// and `cluster` (`Mode::Cluster`, feature `cluster`).
/// Limits apply to every call, and with `.retry(RetryConfig)` each call is retried when its
/// arguments are `Clone` (a call whose arguments cannot be cloned runs once, as with
/// `#[worker]`; in process mode every call can be retried).
///
/// The function must be a free function at module level (the module is a sibling of it, and
/// spells its argument types again through `use super::*`), not generic, not `unsafe`, and
/// take and return owned values (no references but `&'static`, no `impl Trait`). Argument
/// types are written as in the parent module: a path starting with `self::` or `super::`, or
/// a type named `Handle` or `Options` (or `Task` with `remote`: the module's own), is rejected with
/// the fix. `mode = "sync"` has exactly one worker. Breaking a rule is a compile error at the
/// offending token.
///
/// <details><summary>See expanded code</summary>
///
/// ```ignore
/// fn square(x: u64) -> u64 { x * x }
///
/// mod square {
///     use super::*;
///     static POOL: ::concurry::ImplicitPool = ::concurry::ImplicitPool::new();
///
///     pub struct Options(::concurry::TaskWorkerOptions); // + Debug
///     impl Options {
///         ::concurry::__private::options_builder_methods!(); // mode, max_workers, ...
///         pub fn init(self) -> Result<Handle, ::concurry::Error> {
///             // `Error::Config` in `Mode::Process` (children with `#[task(remote)]`)
///             init_task(self.0, module_path!(), false).map(|inner| Handle { inner })
///         }
///     }
///
///     pub struct Handle { inner: ::concurry::TaskWorkerHandle } // + Clone, Debug
///     impl Handle {
///         pub fn submit(&self, x: impl ::concurry::Arg<u64>) -> ::concurry::Promise<u64> {
///             // (a pending promise argument is awaited first through `chain`, as in `#[worker]`)
///             // `Args` + `MethodRetry`: retried per the pool's `retry` option
///             (&Args::new((x,))).submit_blocking(self.inner.__pool(), "square", &MethodRetry::inherit(),
///                 |_: &mut TaskWorker, (x,)| value(super::square(x)))
///         }
///         pub fn map<'a, I>(&self, items: I) -> ::concurry::TaskMap<'a, u64>
///         where I: IntoIterator<Item = u64>, I::IntoIter: Send + 'a {
///             let pool = self.inner.__pool().clone();
///             self.inner.map_with(items, move |x: u64| /* the same submission on `pool` */)
///         }
///         pub fn map_unordered<'a, I>(&self, items: I) -> ::concurry::TaskMap<'a, u64> { /* .. */ }
///         pub fn stop(&self) -> Result<(), ::concurry::Error> { /* .. */ }
///         pub fn stats(&self) -> ::concurry::PoolStats { /* .. */ }
///         pub fn is_stopped(&self) -> bool { /* .. */ }
///     }
///
///     pub fn options() -> Options {
///         Options(::concurry::TaskWorker::options()).name("square") // + the #[task(..)] defaults
///     }
///     pub fn handle() -> Result<Handle, ::concurry::Error> { /* POOL.get_or_init(..) */ }
///     pub fn submit(x: u64) -> ::concurry::Promise<u64> { /* handle()?.submit(x) */ }
///     pub fn map<'a, I>(items: I) -> ::concurry::TaskMap<'a, u64> { /* handle()?.map(items) */ }
///     pub fn map_unordered<'a, I>(items: I) -> ::concurry::TaskMap<'a, u64> { /* .. */ }
///     pub fn stop() -> Result<(), ::concurry::Error> { POOL.stop() }
///
///     // With `#[task(remote)]` only:
///     pub struct __RemoteTask; // #[doc(hidden)]
///     impl ::concurry::RemoteTask for __RemoteTask {
///         const NAME: &'static str = module_path!(); // `path::to::square`
///         type Args = (u64,);
///         type Output = u64;
///         fn run((x,): (u64,)) -> u64 { super::square(x) }
///     }
///     ::concurry::register_remote_task!(__RemoteTask);
///     /// `square` as a durable task: `cluster.task_result::<square::Task>(&id)`.
///     pub type Task = __RemoteTask;
///     // + `assert_remote_type::<u64>()` per argument and return type, at its span; and
///     //   `Handle::submit` starts with
///     //   `if is_remote(&self.inner) { submit_remote_task::<__RemoteTask, u64, Infallible>(..) }`
///     //   (process mode: to a child; cluster mode: a durable task); and
///     //   `Handle::submit_with(&self, x: u64, submit: Submit) -> Promise<u64>`
///     //   (`submit_remote_task_with`: cluster mode only).
/// }
/// ```
///
/// </details>
#[proc_macro_attribute]
pub fn task(args: TokenStream, item: TokenStream) -> TokenStream {
    let source = caller_source();
    task::expand_in(args.into(), item.into(), source.as_deref()).into()
}

/// The text of the file the macro is called in, for the rules that depend on where the item
/// sits (see `source.rs`); `None` when there is no such file on disk.
fn caller_source() -> Option<String> {
    let path = proc_macro::Span::call_site().local_file()?;
    std::fs::read_to_string(path).ok()
}
