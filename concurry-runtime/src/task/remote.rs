//! `#[task(remote)]` in process mode: a [`TaskWorker`] pool whose workers are child
//! processes, each running any registered [`RemoteTask`] by name.
//!
//! [`TaskWorker`] is also a [`RemoteWorker`]: in [`Mode::Process`] its pool (from
//! [`Pool::start_remote`], as for `#[worker(remote)]` types) keeps `max_workers` children,
//! and a call goes to the one the load balancer picks as the task's name and its encoded
//! arguments. The arguments are encoded once, so a call can be retried per the pool's
//! `retry` option whatever their types.

use super::task_worker::{TaskWorker, TaskWorkerHandle, TaskWorkerOptions};
use crate::error::{ConfigError, Error};
use crate::future::Promise;
use crate::options::Mode;
use crate::pool::MethodRetry;
use crate::remote::task::{run_registered, task_output};
use crate::remote::{RemoteTask, RemoteWorker};
use crate::wire::Fault;

/// A task pool's child serves every registered [`RemoteTask`] by name, as
/// [`TaskHost`](crate::TaskHost) does.
impl RemoteWorker for TaskWorker {
    const NAME: &'static str = "concurry::TaskWorker";
    type Args = ();
    /// The task's name and its encoded arguments.
    type Request = (String, Vec<u8>);
    /// The task's encoded output, or why there is none.
    type Response = Result<Vec<u8>, Fault>;
    type InitError = crate::wire::Never;

    fn construct((): ()) -> Result<Self, crate::wire::Never> {
        Ok(TaskWorker)
    }

    fn dispatch(&mut self, (name, args): (String, Vec<u8>)) -> Result<Vec<u8>, Fault> {
        run_registered(&name, &args)
    }

    fn schema() -> u64 {
        crate::remote::task::tasks_schema(<Self as RemoteWorker>::NAME)
    }
}

/// The `init` error of a closure pool in process mode.
pub(super) fn closures_stay_in_process() -> ConfigError {
    ConfigError::new(
        "mode",
        "process",
        "a `TaskWorker` pool runs closures, which cannot cross to a child process; put \
         `#[concurry::task(remote)]` on a function and start its pool with \
         `my_fn::options().mode(Mode::Process)`, or use `Mode::Thread`",
    )
}

/// The `init` error of a closure pool in cluster mode.
pub(crate) fn closures_stay_on_this_side() -> ConfigError {
    ConfigError::new(
        "mode",
        "cluster",
        "a `TaskWorker` pool runs closures, which cannot cross to a cluster node; put \
         `#[concurry::task(remote)]` on a function and start its pool with \
         `my_fn::options().mode(Mode::Cluster).cluster(cluster)`, or use `Mode::Thread`",
    )
}

/// The `init` error of a `#[task]` function without `remote` in process mode.
fn not_remote(task: &str) -> ConfigError {
    ConfigError::new(
        "mode",
        "process",
        format!(
            "`{task}` cannot run in a child process; mark it `#[task(remote)]` (its arguments \
             and return type must then be serde types), or use `Mode::Thread`"
        ),
    )
}

/// Starts the pool of the `#[task]` function `task` (its path, for messages): as
/// [`TaskWorkerOptions::init`], and in [`Mode::Process`] with child processes when the
/// function is `remote` (else a [`ConfigError`] that says how to get there).
///
/// # Errors
///
/// [`Error::Config`] for invalid options (and process mode without `remote`);
/// [`Error::Init`] if a child could not be started.
pub fn init_task(
    options: TaskWorkerOptions,
    task: &'static str,
    remote: bool,
) -> Result<TaskWorkerHandle, Error> {
    match options.0.get_mode() {
        Mode::Process if remote => options.0.init_remote_with(()).map(TaskWorkerHandle::new),
        Mode::Process => Err(not_remote(task).into()),
        Mode::Cluster if remote => init_durable(options, task),
        Mode::Cluster => Err(not_remote_cluster(task).into()),
        _ => options.init(),
    }
}

/// `Mode::Cluster`: a pool whose calls are durable tasks on the cluster's queue.
#[cfg(feature = "cluster")]
fn init_durable(options: TaskWorkerOptions, task: &'static str) -> Result<TaskWorkerHandle, Error> {
    crate::cluster::tasks::pool::start(options.0.into_config(), task).map(TaskWorkerHandle::new)
}

#[cfg(not(feature = "cluster"))]
fn init_durable(_: TaskWorkerOptions, _: &'static str) -> Result<TaskWorkerHandle, Error> {
    Err(ConfigError::new(
        "mode",
        "cluster",
        "cluster mode needs the `cluster` feature of concurry \
         (`concurry = { version = \"..\", features = [\"cluster\"] }`)",
    )
    .into())
}

/// The `init` error of a `#[task]` function without `remote` in cluster mode.
fn not_remote_cluster(task: &str) -> ConfigError {
    ConfigError::new(
        "mode",
        "cluster",
        format!(
            "`{task}` cannot run on a cluster node; mark it `#[task(remote)]` (its arguments \
             and return type must then be serde types), or use `Mode::Thread`"
        ),
    )
}

/// Whether calls of `handle` go to child processes: the pool of a `#[task(remote)]`
/// function in process mode.
#[inline]
pub fn is_remote(handle: &TaskWorkerHandle) -> bool {
    handle.process
}

/// One call of task `T` with `args` on a child of the pool, retried per the pool's `retry`
/// option and the function's `#[retry(..)]`. `wrap` turns the function's output into the
/// promise's result (`Result<T, E>` keeps `E` in [`Error::Method`]); a panic in the child is
/// [`Error::Panicked`], a child that dies is [`Error::WorkerLost`].
pub fn submit_remote_task<T, O, E>(
    handle: &TaskWorkerHandle,
    method: &'static str,
    retry: &MethodRetry<O, E>,
    args: T::Args,
    wrap: fn(T::Output) -> Result<O, Error<E>>,
) -> Promise<O, E>
where
    T: RemoteTask,
    O: Send + 'static,
    E: Send + 'static,
{
    #[cfg(feature = "cluster")]
    if let Some(durable) = crate::cluster::tasks::pool::durable(&handle.pool) {
        return durable.submit::<T, O, E>(&handle.pool, retry, args, wrap, None);
    }
    let extract = move |response: Result<Vec<u8>, Fault>| {
        Some(
            task_output::<T::Output>(response)
                .map_err(Error::widen)
                .and_then(wrap),
        )
    };
    let pool = &handle.pool;
    // Large arguments are encoded off the caller's thread.
    let request = |args: Vec<u8>| (T::NAME.to_string(), args);
    pool.remote_method_with_args(method, retry, args, request, extract)
        .unwrap_or_else(|| {
            // Generated code checks `is_remote` first.
            Promise::ready(Err(Error::Config(ConfigError::new(
                "mode",
                pool.stats().mode.to_string(),
                "a call of a remote task reached a pool that is not in process mode",
            ))))
        })
}

/// The options of a durable task's submit, for `#[task(remote)]`'s `submit_with`:
/// [`Submit`](crate::cluster::Submit).
#[cfg(feature = "cluster")]
pub type TaskSubmit = crate::cluster::Submit;

/// Without the `cluster` feature no value exists: `submit_with` cannot be called.
#[cfg(not(feature = "cluster"))]
#[derive(Debug)]
pub enum TaskSubmit {}

/// [`submit_remote_task`] with a durable task's options, in a cluster-mode pool (any other
/// pool fails the promise with [`Error::Config`]: the options mean nothing there).
pub fn submit_remote_task_with<T, O, E>(
    handle: &TaskWorkerHandle,
    method: &'static str,
    retry: &MethodRetry<O, E>,
    args: T::Args,
    wrap: fn(T::Output) -> Result<O, Error<E>>,
    submit: TaskSubmit,
) -> Promise<O, E>
where
    T: RemoteTask,
    O: Send + 'static,
    E: Send + 'static,
{
    #[cfg(feature = "cluster")]
    {
        if let Some(durable) = crate::cluster::tasks::pool::durable(&handle.pool) {
            return durable.submit::<T, O, E>(&handle.pool, retry, args, wrap, Some(submit));
        }
        let _ = (method, args, wrap);
        Promise::ready(Err(Error::Config(ConfigError::new(
            "mode",
            handle.pool.stats().mode.to_string(),
            "`submit_with`'s options (id, priority, delay, retries) are those of a durable \
             task: start the pool with `.mode(Mode::Cluster).cluster(cluster)`, or call \
             `submit`",
        ))))
    }
    #[cfg(not(feature = "cluster"))]
    {
        let _ = (handle, method, retry, args, wrap);
        match submit {}
    }
}
