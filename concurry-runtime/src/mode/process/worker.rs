//! [`ProcessWorker`]: one supervised child process, the [`Handle`] of a remote worker on the
//! [`Processes`] transport.

use std::fmt;
use std::time::Duration;

use super::ProcessConfig;
use super::transport::Processes;
use crate::error::Error;
use crate::future::Promise;
use crate::remote::registry::check_registered;
use crate::remote::task::{REMOTE_TASKS, task_output};
use crate::remote::{Handle, RemoteTask, RemoteWorker, Reply, TaskHost, encode_request};
use crate::sync::os::Arc;
use crate::wire::{Fault, encode};

/// One worker instance in a child process, supervised: calls are sent over one socket (many
/// in flight at once), a child that dies is respawned with its constructor arguments, and a
/// call may carry a hard timeout that kills a stuck child.
///
/// Every promise it returns resolves:
/// - with the method's response;
/// - [`Error::Panicked`] if the method panicked (the child goes on serving);
/// - [`Error::Timeout`] if the call outlived its [`call_timeout`](ProcessWorker::call_timeout)
///   (the child is killed and respawned);
/// - [`Error::WorkerLost`] if the child died (crash, `abort`, a kill, another call's timeout,
///   garbage on the channel) while the call was in flight, or the restart limit ran out;
/// - [`Error::Transport`] if this call's request or reply could not cross the channel (it
///   does not encode, is too large, or came back garbled; for a garbled reply the child is
///   also respawned);
/// - [`Error::Stopped`] if [`stop`](ProcessWorker::stop) came first.
///
/// Cloning shares the worker; it stops when `stop()` is called or the last clone is dropped.
/// See the [module docs](crate::RemoteWorker) for an example.
pub struct ProcessWorker<W: RemoteWorker>(pub(crate) Handle<W>);

impl<W: RemoteWorker> Clone for ProcessWorker<W> {
    fn clone(&self) -> Self {
        ProcessWorker(self.0.clone())
    }
}

impl<W: RemoteWorker> fmt::Debug for ProcessWorker<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessWorker")
            .field("worker", &W::NAME)
            .field("pid", &self.pid())
            .field("restarts", &self.restarts())
            .finish()
    }
}

impl<W: RemoteWorker> ProcessWorker<W> {
    /// Starts a child serving `W`, built from `args`, with the default [`ProcessConfig`].
    ///
    /// # Errors
    ///
    /// [`Error::Method`] with the constructor's own error (typed, as in every mode);
    /// [`Error::Config`] if `W` is not registered in this binary; [`Error::Init`] if the
    /// constructor panicked or the child could not be started.
    pub fn spawn(args: W::Args) -> Result<Self, Error<W::InitError>> {
        Self::with_config(args, ProcessConfig::default())
    }

    /// As [`spawn`](ProcessWorker::spawn), supervised as `config` says.
    ///
    /// ```
    /// # use concurry::{ProcessConfig, ProcessWorker, RemoteWorker};
    /// # struct Nop;
    /// # impl RemoteWorker for Nop {
    /// #     const NAME: &'static str = "docs::with_config::Nop";
    /// #     type Args = (); type Request = (); type Response = (); type InitError = String;
    /// #     fn construct((): ()) -> Result<Self, String> { Ok(Nop) }
    /// #     fn dispatch(&mut self, (): ()) {}
    /// # }
    /// # concurry::register_remote!(Nop);
    /// let w = ProcessWorker::<Nop>::with_config((), ProcessConfig::default().max_restarts(1)).unwrap();
    /// w.call(()).result().unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// As [`spawn`](ProcessWorker::spawn).
    pub fn with_config(args: W::Args, config: ProcessConfig) -> Result<Self, Error<W::InitError>> {
        Self::start(&args, config).map(ProcessWorker)
    }

    /// The handle of a child serving `W`, built from `args`, supervised as `config` says.
    pub(crate) fn start(
        args: &W::Args,
        config: ProcessConfig,
    ) -> Result<Handle<W>, Error<W::InitError>> {
        // The child looks `W` up in this binary's registry: check it is there, once.
        check_registered::<W>().map_err(Error::widen)?;
        let supervision = config.supervision();
        Handle::start(Arc::new(Processes { config }), args, supervision)
    }

    /// Sends one call; its promise resolves with the response (or why there is none).
    pub fn call(&self, request: W::Request) -> Promise<W::Response> {
        self.0.submit(request, None)
    }

    /// Sends one call with a hard timeout: if no response came within `timeout` (counted from
    /// now, so the encoding of large arguments counts), the call
    /// fails with [`Error::Timeout`], the child is killed (other calls in flight on it fail
    /// with [`Error::WorkerLost`]) and respawned.
    ///
    /// ```
    /// # use concurry::{ProcessWorker, RemoteWorker};
    /// # use std::time::Duration;
    /// # struct Nop;
    /// # impl RemoteWorker for Nop {
    /// #     const NAME: &'static str = "docs::call_timeout::Nop";
    /// #     type Args = (); type Request = (); type Response = (); type InitError = String;
    /// #     fn construct((): ()) -> Result<Self, String> { Ok(Nop) }
    /// #     fn dispatch(&mut self, (): ()) {}
    /// # }
    /// # concurry::register_remote!(Nop);
    /// let w = ProcessWorker::<Nop>::spawn(()).unwrap();
    /// w.call_timeout((), Duration::from_secs(60)).result().unwrap();
    /// ```
    pub fn call_timeout(&self, request: W::Request, timeout: Duration) -> Promise<W::Response> {
        self.0.submit(request, Some(timeout))
    }

    /// The child's process id, while one is serving.
    pub fn pid(&self) -> Option<u32> {
        self.0.peer_id()
    }

    /// How many times the child was respawned.
    pub fn restarts(&self) -> u64 {
        self.0.restarts()
    }

    /// Stops the worker: new calls fail with [`Error::Stopped`]; the child finishes the calls
    /// it has and exits, and is reaped (no zombie). Past the config's `stop_timeout` the child
    /// is killed, its calls fail with [`Error::Stopped`], and this returns [`Error::Timeout`].
    /// Calling it again is a no-op.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] if the child had to be killed.
    pub fn stop(&self) -> Result<(), Error> {
        self.0.stop()
    }
}

impl ProcessWorker<TaskHost> {
    /// Runs task `T` with `args` in the child.
    ///
    /// The promise fails with [`Error::Panicked`] if the task panicked, and with
    /// [`Error::Config`] at once if `T` is not registered.
    pub fn run_task<T: RemoteTask>(&self, args: T::Args) -> Promise<T::Output> {
        let (promise, completer) = Promise::pending();
        if !REMOTE_TASKS.iter().any(|t| t.name == T::NAME) {
            completer.complete(Err(Error::Config(crate::error::ConfigError::new(
                "mode",
                "process",
                format!(
                    "task `{}` is not registered for process mode; mark it `#[task(remote)]` \
                     (or add `concurry::register_remote_task!(..)`)",
                    T::NAME
                ),
            ))));
            return promise;
        }
        let request = encode(&args, "task arguments")
            .map_err(Error::Transport)
            .and_then(|args| {
                encode_request(&(T::NAME.to_string(), args), self.0.max_message_size())
            });
        let reply = Reply::new(move |r: Result<Result<Vec<u8>, Fault>, Error>| {
            completer.complete(r.and_then(task_output));
        });
        match request {
            Ok(payload) => self
                .0
                .send_encoded(payload, (1, crate::rand::id()), None, reply),
            Err(e) => reply.complete(Err(e)),
        }
        promise
    }
}
