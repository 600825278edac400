//! The tokio runtime the library manages for async mode, and a minimal `block_on`.

use std::future::Future;
use std::pin::pin;
use std::sync::OnceLock;
use std::task::{Context, Poll, Wake, Waker};

/// The shared multi-thread runtime that async-mode workers run on, created on first use.
pub(crate) fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        let threads = std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .max(2);
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("concurry-async")
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("concurry could not start its tokio runtime: {e}"))
    })
}

/// The runtime async-mode workers of a new pool run on: `explicit` (the `runtime` option,
/// already checked to be a multi-thread one), else the runtime this thread is inside if it is
/// a multi-thread one, else the library's own. A current-thread runtime is never adopted: its
/// one thread is the caller's, and a caller blocking in `stop()` or `blocking()` would stall
/// the workers it waits for.
pub(crate) fn pick(explicit: Option<&tokio::runtime::Handle>) -> tokio::runtime::Handle {
    if let Some(h) = explicit {
        return h.clone();
    }
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => h,
        _ => runtime().handle().clone(),
    }
}

/// The runtime a call's helper task goes on (its wait for a place under `max_queued_tasks`,
/// its retry loop): the multi-thread runtime this thread is inside, so the caller's task is
/// woken without crossing runtimes and no runtime of the library's is started for it; else
/// `home`, the runtime the pool's workers run on (async mode); else the library's own.
///
/// A current-thread runtime is never picked: a caller blocking in `result()` there would stall
/// the task its call waits for.
pub(crate) fn for_helpers(home: Option<&tokio::runtime::Handle>) -> tokio::runtime::Handle {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => h,
        _ => home.cloned().unwrap_or_else(|| runtime().handle().clone()),
    }
}

/// True on a thread inside a tokio runtime (a runtime's worker or blocking thread, or one that
/// entered a runtime's context): code there must not block waiting for other async work.
pub(crate) fn in_async_context() -> bool {
    tokio::runtime::Handle::try_current().is_ok()
}

/// Runs `wait`, which blocks this thread, without starving the tokio runtime the thread works
/// for: on a worker thread of a multi-thread runtime (the library's, or the user's own) the
/// runtime first hands this thread's other tasks to another thread
/// ([`block_in_place`](tokio::task::block_in_place)), so the async work `wait` waits for goes
/// on. Elsewhere (a plain thread, a blocking-pool thread, a current-thread runtime, whose
/// thread cannot be handed over) `wait` just runs.
pub(crate) fn blocking<R>(wait: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(wait)
        }
        _ => wait(),
    }
}

/// A current-thread runtime for running `async fn` methods on a worker thread.
pub(crate) fn local_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

struct ThreadWaker(std::thread::Thread);

impl Wake for ThreadWaker {
    fn wake(self: std::sync::Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &std::sync::Arc<Self>) {
        self.0.unpark();
    }
}

/// Polls `fut` to completion on the current thread, parking between polls.
///
/// Unlike tokio's `block_on` this works inside a runtime context too; tokio resources the
/// future uses are driven by the library runtime, whose context is entered here.
pub(crate) fn block_on<F: Future>(fut: F) -> F::Output {
    thread_local! {
        // Made once per thread: a publish per call waits here.
        static WAKER: Waker = Waker::from(std::sync::Arc::new(ThreadWaker(std::thread::current())));
    }
    let waker = WAKER.with(Waker::clone);
    let mut cx = Context::from_waker(&waker);
    let mut fut = pin!(fut);
    let _ctx = match tokio::runtime::Handle::try_current() {
        Ok(_) => None,
        Err(_) => Some(runtime().enter()),
    };
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn multi() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn helper_tasks_go_to_the_callers_multi_thread_runtime_else_home_else_the_librarys() {
        let (caller, home) = (multi(), multi());
        let inside = caller.block_on(async { for_helpers(Some(home.handle())).id() });
        assert_eq!(inside, caller.handle().id());
        // A current-thread runtime is never picked: its one thread may be the one waiting.
        let one = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let on_one = one.block_on(async { for_helpers(Some(home.handle())).id() });
        assert_eq!(on_one, home.handle().id());
        let on_one = one.block_on(async { for_helpers(None).id() });
        assert_eq!(on_one, runtime().handle().id());
        assert_eq!(for_helpers(Some(home.handle())).id(), home.handle().id());
        assert_eq!(for_helpers(None).id(), runtime().handle().id());
    }
}
