//! Where a node runs its task functions: a queue of jobs drained by runners on tokio's
//! blocking pool. A runner takes the next job as soon as it finishes one, so a flood of
//! short tasks runs on a few threads that need no wake per task (a `spawn_blocking` per
//! task woke an idle pool thread each time: a futex wake and a context switch per task,
//! the node's largest cost on a 2-vCPU VM).
//!
//! A job never waits behind a running one: while jobs are queued, one runner is always
//! starting or between jobs (a push with every runner busy starts one; a runner that takes
//! a job and leaves others queued with every runner busy starts the next before it runs
//! its own).

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};

use tokio::sync::oneshot;

use crate::error::panic_message;
use crate::sync::os::{Arc, Mutex, lock};

type Job = Box<dyn FnOnce() + Send>;

#[derive(Default)]
struct State {
    queue: VecDeque<Job>,
    /// Runners started and not yet ended.
    alive: usize,
    /// Runners inside a job.
    busy: usize,
    /// Runners ever started.
    started: u64,
}

impl State {
    /// Counts a runner to start if jobs are queued and every runner is busy.
    fn needs_runner(&mut self) -> bool {
        let start = !self.queue.is_empty() && self.alive == self.busy;
        if start {
            self.alive += 1;
            self.started += 1;
        }
        start
    }
}

/// One node's runners.
pub(crate) struct Lane {
    state: Mutex<State>,
    handle: tokio::runtime::Handle,
}

impl Lane {
    /// Runners are started on `handle`'s blocking pool.
    pub(crate) fn new(handle: tokio::runtime::Handle) -> Arc<Lane> {
        Arc::new(Lane {
            state: Mutex::new(State::default()),
            handle,
        })
    }

    /// Runs `f` on a runner; resolves with its value, or with the message of its panic.
    pub(crate) fn run<R, F>(
        self: &Arc<Self>,
        f: F,
    ) -> impl Future<Output = Result<R, String>> + use<R, F>
    where
        R: Send + 'static,
        F: FnOnce() -> R + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move || {
            let r = catch_unwind(AssertUnwindSafe(f)).map_err(|p| panic_message(&*p));
            let _ = tx.send(r);
        });
        let start = {
            let mut s = lock(&self.state);
            s.queue.push_back(job);
            s.needs_runner()
        };
        if start {
            self.start_runner();
        }
        async move {
            rx.await
                .unwrap_or_else(|_| Err("the node's runtime stopped under the task".to_string()))
        }
    }

    fn start_runner(self: &Arc<Self>) {
        let lane = self.clone();
        self.handle.spawn_blocking(move || lane.runner());
    }

    fn runner(self: Arc<Self>) {
        let mut s = lock(&self.state);
        loop {
            let Some(job) = s.queue.pop_front() else {
                s.alive -= 1;
                return;
            };
            s.busy += 1;
            let next = s.needs_runner();
            drop(s);
            if next {
                self.start_runner();
            }
            job();
            s = lock(&self.state);
            s.busy -= 1;
        }
    }

    /// Runners ever started (tests).
    #[cfg(test)]
    fn started(&self) -> u64 {
        lock(&self.state).started
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;

    const LONG: Duration = Duration::from_secs(20);

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_time()
            .build()
            .unwrap()
    }

    #[test]
    fn a_value_and_a_panic_come_back() {
        let rt = rt();
        let lane = Lane::new(rt.handle().clone());
        assert_eq!(rt.block_on(lane.run(|| 7)), Ok(7));
        let p = rt.block_on(lane.run(|| -> u32 { panic!("boom") }));
        assert!(p.unwrap_err().contains("boom"));
    }

    #[test]
    fn a_job_never_waits_behind_a_running_one() {
        let rt = rt();
        let lane = Lane::new(rt.handle().clone());
        let (release, held) = mpsc::channel::<()>();
        let first = lane.run(move || held.recv_timeout(LONG).is_ok());
        // The first job holds its runner; the second must get a runner of its own.
        let second = lane.run(|| 2);
        let got = rt.block_on(async { tokio::time::timeout(LONG, second).await });
        assert_eq!(got.expect("the second job waited behind the first"), Ok(2));
        release.send(()).unwrap();
        assert_eq!(rt.block_on(first), Ok(true));
    }

    #[test]
    fn queued_jobs_are_taken_by_a_running_runner_not_one_runner_each() {
        let rt = rt();
        let lane = Lane::new(rt.handle().clone());
        let (release, held) = mpsc::channel::<()>();
        let (started, running) = mpsc::channel::<()>();
        // One runner held inside its first job while 99 more are queued: they all run, on
        // runners that take one job after another (not one runner each).
        let first = lane.run(move || {
            started.send(()).unwrap();
            held.recv_timeout(LONG).is_ok()
        });
        running.recv_timeout(LONG).unwrap();
        let rest: Vec<_> = (0..99).map(|i| lane.run(move || i)).collect();
        let got = rt.block_on(async {
            let mut got = Vec::new();
            for r in rest {
                got.push(tokio::time::timeout(LONG, r).await.unwrap().unwrap());
            }
            got
        });
        assert_eq!(got, (0..99).collect::<Vec<_>>());
        release.send(()).unwrap();
        assert_eq!(rt.block_on(first), Ok(true));
        assert!(
            lane.started() <= 50,
            "{} runners for 100 jobs",
            lane.started()
        );
    }
}
