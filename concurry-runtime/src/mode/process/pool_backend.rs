//! Process mode as a pool [`Backend`]: a thin adapter over the pool's children
//! ([`Remote`]). Calls reach them as encoded requests through `Pool::remote_method`
//! (`pool/remote.rs`), never as closures.

use super::RemoteWorker;
use super::backend::{Remote, not_a_remote_call};
use crate::error::{ConfigError, Error};
use crate::job::Call;
use crate::options::PoolConfig;
use crate::pool::backend::{Backend, Gate, Room, Shared, Stopping, WorkerStats};
use crate::sync::Ordering;
use crate::worker::Worker;

/// Starts the children of a pool of `W` in process mode.
pub(crate) fn start<W: RemoteWorker>(
    config: &PoolConfig,
    args: &W::Args,
) -> Result<Remote, Error<W::InitError>> {
    fixed(config)?;
    Remote::start::<W>(config.workers(), args, config)
}

/// As [`start`], with the workers placed on `transport` (cluster mode; the loopback
/// transport's pool tests).
#[cfg(any(test, feature = "cluster"))]
pub(crate) fn start_on<W: RemoteWorker>(
    transport: &crate::sync::os::Arc<dyn crate::remote::Transport>,
    config: &PoolConfig,
    args: &W::Args,
) -> Result<Remote, Error<W::InitError>> {
    fixed(config)?;
    Remote::start_on::<W>(transport, config.workers(), args, config)
}

/// Refuses `on_demand`: the workers are a fixed set.
fn fixed(config: &PoolConfig) -> Result<(), ConfigError> {
    if config.on_demand {
        return Err(ConfigError::new(
            "on_demand",
            "true",
            "process mode keeps a fixed set of child processes; drop `on_demand`, or use \
             `Mode::Thread` for on-demand workers",
        ));
    }
    Ok(())
}

impl<W: Worker> Backend<W> for Remote {
    /// A closure cannot cross to a child: only the worker's requests can.
    fn dispatch(&self, _: &Gate<'_>, call: Call<W>, _: Room) {
        let method = call.method;
        call.fail(not_a_remote_call(W::NAME, method));
    }

    fn stop(&self, mut stop: Stopping<'_>) -> Result<(), Error> {
        stop.release();
        // Calls still waiting here for their limits are not in a child yet: they fail with
        // `Error::Stopped`; the children finish the calls they have.
        stop.abort();
        stop.wake_limits();
        Remote::stop(self).map_err(|e| match e {
            // A child had to be killed: every call it had failed.
            Error::Timeout => Error::StopTimeout {
                failed: stop.shared.failed_by_stop.load(Ordering::Acquire),
                running: 0,
            },
            other => other,
        })
    }

    fn is_remote(&self) -> bool {
        true
    }

    /// As every backend's, with the node each worker runs on (cluster mode).
    fn workers(&self, shared: &Shared, stopped: bool) -> (usize, Vec<WorkerStats>) {
        let (alive, mut per_worker) = crate::pool::backend::count_workers(shared, stopped);
        for (w, node) in per_worker.iter_mut().zip(self.locations()) {
            w.node = node;
        }
        (alive, per_worker)
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
