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
mod worker;

/// Turns the inherent `impl` block of a type into a pool of workers.
///
/// The block stays ordinary Rust (`Echo::new(..)` and `echo.ping(..)` still work directly);
/// the macro only adds, next to it:
///
/// - `impl concurry::__private::Worker for Echo`, which runs `Echo::new(..)` in every worker;
/// - `Echo::options() -> EchoOptions`, a builder (`mode`, `max_workers`, `load_balancing`,
///   `on_demand`, `max_queued_tasks`, `stop_timeout`, `name`) finished by
///   `init(..)`, which takes the constructor's arguments and returns an `EchoHandle`;
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
/// sets the defaults `options()` starts from. `mode` is `"sync"`, `"thread"` or `"async"`;
/// `load_balancing` is `"round_robin"`, `"least_active"`, `"least_total"` or `"random"`.
/// `#[worker(crate = ::my::concurry)]` re-roots the generated paths when `concurry` is
/// renamed or re-exported.
///
/// # Rules
///
/// Exposed methods take `&self` or `&mut self`, are not generic, and take and return owned
/// values (no references but `&'static`, no `impl Trait`): each call travels to another
/// worker. The block needs a constructor `fn new(..) -> Self` (or `-> Result<Self, E>`, whose
/// error surfaces from `init` as `Error::Method(e)`); its arguments must be `Clone`, since
/// every worker gets a copy. A worker with `async fn` methods taking `&self` must be `Sync`.
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
    worker::expand(args.into(), item.into()).into()
}
