//! Sync/async bridges: [`run_sync`] (a future from sync code) and [`to_thread`] (a blocking
//! closure from async code).

use std::future::Future;

use crate::error::{Error, panic_message};
use crate::runtime::{block_on, runtime};
use crate::sync::os;

/// Runs `fut` to completion from sync code and returns its output; safe anywhere:
///
/// - outside any runtime: polled on this thread; tokio resources (timers, I/O) it creates are
///   driven by concurry's own runtime;
/// - on a thread of a multi-thread tokio runtime (inside a task, or its `block_on`): the
///   runtime first hands this thread's other tasks to another thread
///   ([`block_in_place`](tokio::task::block_in_place)), so the rest of the program goes on;
/// - inside a current-thread runtime (whose one thread is the one waiting here, so nothing it
///   drives can progress meanwhile): polled on a helper thread, outside that runtime, so the
///   timers and I/O the future creates are driven by concurry's runtime instead, and a
///   `run_sync` or blocking wait nested inside it is safe too.
///
/// Never panics (unless `fut` does: its panic comes back here), where tokio's
/// `Runtime::block_on` panics inside a runtime. What cannot work in the current-thread case,
/// and would wait forever, is a future that needs that very runtime: one made *before* the
/// call that already holds its timer (a `tokio::time::sleep` created outside the `async`
/// block), or one waiting for a task spawned on it. Create resources inside the future, as
/// below, or call from a multi-thread runtime.
///
/// ```
/// use std::time::Duration;
///
/// // From plain sync code.
/// let v = concurry::run_sync(async {
///     tokio::time::sleep(Duration::from_millis(1)).await;
///     7
/// });
/// assert_eq!(v, 7);
///
/// // From inside a current-thread runtime: no "cannot start a runtime" panic, no deadlock.
/// let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
/// rt.block_on(async {
///     let v = concurry::run_sync(async {
///         tokio::time::sleep(Duration::from_millis(1)).await;
///         concurry::run_sync(async { 8 }) // nested
///     });
///     assert_eq!(v, 8);
/// });
/// ```
pub fn run_sync<F>(fut: F) -> F::Output
where
    F: Future + Send,
    F::Output: Send,
{
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Err(_) => block_on(fut),
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(|| block_on(fut))
        }
        // A current-thread runtime: this thread may be inside its `block_on`, where tokio
        // forbids `block_in_place` (so a nested `run_sync` or blocking wait would panic) and
        // where nothing it drives can run. A helper thread is outside it.
        Ok(_) => {
            let cell = os::Mutex::new(Some(fut));
            let helper_ran = os::thread::scope(|s| {
                os::thread::Builder::new()
                    .name("concurry-run-sync".into())
                    .spawn_scoped(s, || {
                        let fut = os::lock(&cell).take();
                        fut.map(block_on)
                    })
                    .ok()
                    .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            });
            match helper_ran.flatten() {
                Some(v) => v,
                // No thread could be had: wait here, with the timers on concurry's runtime.
                None => {
                    let fut = os::lock(&cell).take().expect("the helper never started");
                    let _ctx = runtime().enter();
                    block_on(fut)
                }
            }
        }
    }
}

/// Runs the blocking closure `f` on tokio's blocking thread pool and awaits its result, so an
/// async task never blocks its runtime thread (the seeds' `to_thread` / `run_in_thread`).
/// Uses the current runtime, or concurry's own when awaited outside any.
///
/// # Errors
/// [`Error::Panicked`] if `f` panicked; [`Error::Stopped`] if the runtime shut down first.
///
/// ```
/// # #[tokio::main] async fn main() {
/// let n = concurry::to_thread(|| std::fs::read_dir(".").map(|d| d.count()).unwrap_or(0))
///     .await
///     .unwrap();
/// assert!(n > 0);
/// let e = concurry::to_thread(|| -> u8 { panic!("boom") }).await.unwrap_err();
/// assert_eq!(e.to_string(), "the worker method panicked: boom");
/// # }
/// ```
pub async fn to_thread<T, F>(f: F) -> Result<T, Error>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let handle = match tokio::runtime::Handle::try_current() {
        Ok(h) => h,
        Err(_) => runtime().handle().clone(),
    };
    match handle.spawn_blocking(f).await {
        Ok(v) => Ok(v),
        Err(e) if e.is_panic() => Err(Error::Panicked {
            message: panic_message(&*e.into_panic()),
        }),
        Err(_) => Err(Error::Stopped),
    }
}
