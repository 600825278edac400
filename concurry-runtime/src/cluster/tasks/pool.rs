//! `#[task(remote)]` pools in [`Mode::Cluster`](crate::Mode::Cluster): every `submit` is a
//! durable task on the cluster's task queue, and its promise resolves with the task's stored
//! result (see the module docs of [`tasks`](super)).
//!
//! The pool has no workers of its own: the nodes run the tasks. Its `call_timeout` is each
//! task's (unless a `Submit` sets one), and cancelling a promise cancels its task. Its backend ([`Durable`])
//! holds the queue; `task::remote::submit_remote_task` finds it there (`Pool::backend_as`),
//! so the generated code is the same as for process mode.

use super::handle::{typed, wait};
use super::submit::{Submit, TaskQueue};
use crate::error::{ConfigError, Error};
use crate::future::Promise;
use crate::job::Call;
use crate::options::PoolConfig;
use crate::pool::backend::{Backend, Gate, Room, Shared, Stopping, WorkerStats};
use crate::pool::{MethodRetry, Pool};
use crate::remote::RemoteTask;
use crate::task::TaskWorker;
use crate::worker::Worker;

/// The backend of a task pool in cluster mode: the queue its tasks go to.
pub(crate) struct Durable {
    queue: TaskQueue,
    /// The pool's `call_timeout`: each task's, unless its `Submit` sets one.
    call_timeout: Option<std::time::Duration>,
    /// The pool's limits, hosted here for every run of the task on the nodes.
    _limits: Option<super::limits::Host>,
}

impl<W: Worker> Backend<W> for Durable {
    /// A closure cannot cross to a node: only a `#[task(remote)]` function's name and
    /// arguments can (generated code never sends one here).
    fn dispatch(&self, _: &Gate<'_>, call: Call<W>, _: Room) {
        call.fail(crate::task::remote::closures_stay_on_this_side().into());
    }

    /// Nothing to end here: tasks already submitted stay stored and run on the nodes, and
    /// their promises still resolve.
    fn stop(&self, mut stop: Stopping<'_>) -> Result<(), Error> {
        stop.release();
        Ok(())
    }

    fn queues(&self) -> bool {
        false
    }

    fn workers(&self, _: &Shared, _: bool) -> (usize, Vec<WorkerStats>) {
        (0, Vec::new())
    }

    fn is_remote(&self) -> bool {
        true
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// Starts the pool of a `#[task(remote)]` function in cluster mode: on the queue given as
/// `.cluster(queue)`, else the cluster's default one ([`Cluster::tasks`](super::Cluster::tasks));
/// refuses the options that cannot apply.
pub(crate) fn start(config: PoolConfig, task: &'static str) -> Result<Pool<TaskWorker>, Error> {
    config.validate()?;
    let Some(cluster) = config.cluster.clone() else {
        return Err(ConfigError::new(
            "cluster",
            "unset",
            "`Mode::Cluster` submits the function's calls as durable tasks to a cluster: give \
             one with `.cluster(concurry::cluster::Cluster::connect(\"nats://host:4222\")?)`",
        )
        .into());
    };
    if config.on_demand {
        return Err(refused("on_demand", "true", "drop `on_demand`").into());
    }
    if let Some(n) = config.max_queued_tasks {
        return Err(refused(
            "max_queued_tasks",
            &n.to_string(),
            "drop it: the queue is the server's stream (`TaskConfig`), and `max_workers` bounds \
             a `map`'s tasks in flight",
        )
        .into());
    }
    let queue = match config.task_queue.clone() {
        Some(q) => q,
        None => cluster.tasks()?,
    };
    // The limits are this process's to host (see `limits.rs`); `validate` reported a set
    // that failed to build.
    let limits = match &config.limits {
        Some(Ok(set)) if !set.is_empty() => Some(super::limits::host(
            &cluster,
            &queue.inner.store.names.stream,
            task,
            set.clone(),
        )?),
        _ => None,
    };
    let call_timeout = config.call_timeout;
    Pool::launch(config, move |_, _| {
        Ok(Box::new(Durable {
            queue,
            call_timeout,
            _limits: limits,
        }) as Box<dyn Backend<TaskWorker>>)
    })
}

fn refused(option: &'static str, value: &str, fix: &str) -> ConfigError {
    ConfigError::new(
        option,
        value.to_string(),
        format!(
            "a `#[task(remote)]` pool in `Mode::Cluster` has no workers of its own (the \
             cluster's nodes run its tasks): {fix}"
        ),
    )
}

/// The durable backend of `pool`, if it is a cluster-mode task pool.
pub(crate) fn durable(pool: &Pool<TaskWorker>) -> Option<&Durable> {
    pool.backend_as::<Durable>()
}

impl Durable {
    /// One call of task `T` as a durable task: stored before this returns (the promise's
    /// [`task_id`](Promise::task_id) is its id), retried on the nodes per `submit`'s retry
    /// config, else the pool's `retry` and the function's `#[retry(..)]`, and held to
    /// `submit`'s `call_timeout`, else the pool's. `wrap` turns the task's output into the
    /// promise's result. Cancelling the promise cancels (revokes) the task.
    pub(crate) fn submit<T, O, E>(
        &self,
        pool: &Pool<TaskWorker>,
        retry: &MethodRetry<O, E>,
        args: T::Args,
        wrap: fn(T::Output) -> Result<O, Error<E>>,
        submit: Option<Submit>,
    ) -> Promise<O, E>
    where
        T: RemoteTask,
        O: Send + 'static,
        E: Send + 'static,
    {
        if pool.is_stopped() {
            return Promise::ready(Err(Error::Stopped));
        }
        let mut submit = submit.unwrap_or_default();
        if submit.retry.is_none()
            && let Some(config) = pool.retry_for(retry)
        {
            submit = submit.retry((*config).clone());
        }
        if submit.call_timeout.is_none()
            && let Some(timeout) = self.call_timeout
        {
            submit = submit.call_timeout(timeout);
        }
        let handle = match self.queue.submit_with::<T>(args, submit) {
            Ok(h) => h,
            Err(e) => return Promise::ready(Err(e.widen())),
        };
        let (promise, completer) = Promise::pending_task(handle.task_id());
        let inner = self.queue.inner.clone();
        let id = handle.task_id().to_string();
        if let Some(watch) = completer.cancel_watch() {
            let (store, id) = (inner.store.clone(), id.clone());
            watch.then(move || {
                crate::runtime::runtime().spawn(async move {
                    if let Err(e) = super::cancel::cancel(&store, &id).await {
                        tracing::warn!(task = %id, "concurry: a cancelled promise's task was not cancelled: {e}");
                    }
                });
            });
        }
        crate::runtime::runtime().spawn(async move {
            let result = wait(&inner.store, &id).await.and_then(typed::<T>);
            completer.complete(result.map_err(Error::widen).and_then(wrap));
        });
        promise
    }
}
