//! What pools report through the `metrics` facade (names and labels: `crate::metrics`).
//!
//! With the feature, each pool registers its handles once (per method at its first call),
//! so a call costs one lock-free lookup in a short list and a clock read when submitted; its
//! [`CallTimer`] then rides in the call's promise cell and is read once, by whoever resolves
//! it (`future/promise.rs`'s `Completer`, `job/cell.rs`'s `fail`), with no callback. A call
//! whose final promise is not its one attempt's cell (retried, validated, remote) is watched
//! by a callback on that promise instead ([`CallTimer::watch`]). Without the feature every
//! type here is empty and every method does nothing, so the hot path is what it was.

pub(crate) use imp::{CallTimer, LimitWait, Outcome, PoolMetrics, WorkerGauge};

#[cfg(feature = "metrics")]
mod imp {
    use ::metrics::{
        Counter, Gauge, Histogram, SharedString, Unit, counter, describe_counter, describe_gauge,
        describe_histogram, gauge, histogram,
    };

    use crate::error::Error;
    use crate::future::Promise;
    use crate::metrics::{
        CALL_DURATION, CALLS, IN_FLIGHT, LIMIT_WAIT, OUTCOMES, RETRIES, WORKER_IN_FLIGHT,
    };
    use crate::sync::os::{Arc, AtomicBool, Mutex, OnceLock, Ordering, lock};

    /// Methods whose handles are found without a lock; a pool's further ones are in a list
    /// behind a mutex.
    const FAST_METHODS: usize = 32;

    /// A pool's handles.
    pub(crate) struct PoolMetrics {
        pool: SharedString,
        in_flight: Gauge,
        limit_wait: Histogram,
        /// By method name, in the order first called (a pool has a handful: a list beats a
        /// map); read with one load each, written once.
        fast: [OnceLock<(&'static str, Arc<MethodMetrics>)>; FAST_METHODS],
        /// Every method, for registering one and for those past [`FAST_METHODS`].
        methods: Mutex<Vec<(&'static str, Arc<MethodMetrics>)>>,
    }

    struct MethodMetrics {
        /// By [`outcome`]'s index into `OUTCOMES`.
        outcomes: [Counter; OUTCOMES.len()],
        duration: Histogram,
        retries: Counter,
        in_flight: Gauge,
    }

    impl PoolMetrics {
        pub(crate) fn new(pool: &str) -> Self {
            describe();
            let pool = SharedString::from(pool.to_string());
            PoolMetrics {
                in_flight: gauge!(IN_FLIGHT, "pool" => pool.clone()),
                limit_wait: histogram!(LIMIT_WAIT, "pool" => pool.clone()),
                pool,
                fast: std::array::from_fn(|_| OnceLock::new()),
                methods: Mutex::new(Vec::new()),
            }
        }

        #[inline]
        fn method(&self, name: &'static str) -> Arc<MethodMetrics> {
            let same = |n: &'static str| std::ptr::eq(n, name) || n == name;
            for slot in &self.fast {
                match slot.get() {
                    Some((n, m)) if same(n) => return m.clone(),
                    Some(_) => {}
                    None => break,
                }
            }
            self.register(name)
        }

        #[cold]
        fn register(&self, name: &'static str) -> Arc<MethodMetrics> {
            let same = |n: &'static str| std::ptr::eq(n, name) || n == name;
            let mut methods = lock(&self.methods);
            if let Some((_, m)) = methods.iter().find(|(n, _)| same(n)) {
                return m.clone();
            }
            let pool = &self.pool;
            let m = Arc::new(MethodMetrics {
                outcomes: OUTCOMES.map(|outcome| {
                    counter!(CALLS, "pool" => pool.clone(), "method" => name, "outcome" => outcome)
                }),
                duration: histogram!(CALL_DURATION, "pool" => pool.clone(), "method" => name),
                retries: counter!(RETRIES, "pool" => pool.clone(), "method" => name),
                in_flight: self.in_flight.clone(),
            });
            if let Some(slot) = self.fast.get(methods.len()) {
                // Only here, under the lock: slot `len` is still empty.
                let _ = slot.set((name, m.clone()));
            }
            methods.push((name, m.clone()));
            m
        }

        /// A call of `method` was submitted.
        #[inline]
        pub(crate) fn start(&self, method: &'static str) -> CallTimer {
            let m = self.method(method);
            m.in_flight.increment(1.0);
            CallTimer(Some(Timing {
                m,
                started: quanta::Instant::now(),
                reported: AtomicBool::new(false),
            }))
        }

        /// An attempt after the first of a call of `method`.
        pub(crate) fn retry(&self, method: &'static str) {
            self.method(method).retries.increment(1);
        }

        /// Times the waits for this pool's limits.
        pub(crate) fn limit_wait(&self) -> LimitWait {
            LimitWait(self.limit_wait.clone())
        }

        /// The gauge of worker `index`'s calls in flight.
        pub(crate) fn worker(&self, index: usize) -> WorkerGauge {
            WorkerGauge(gauge!(
                WORKER_IN_FLIGHT,
                "pool" => self.pool.clone(),
                "worker" => index.to_string()
            ))
        }
    }

    /// A worker's calls in flight (dispatched to it and not finished).
    #[derive(Debug)]
    pub(crate) struct WorkerGauge(Gauge);

    impl Default for WorkerGauge {
        /// Reports nowhere (the counters of a balancer's tests).
        fn default() -> Self {
            WorkerGauge(Gauge::noop())
        }
    }

    impl WorkerGauge {
        #[inline]
        pub(crate) fn up(&self) {
            self.0.increment(1.0);
        }

        #[inline]
        pub(crate) fn down(&self) {
            self.0.decrement(1.0);
        }
    }

    impl std::fmt::Debug for PoolMetrics {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("PoolMetrics")
                .field("pool", &self.pool)
                .finish_non_exhaustive()
        }
    }

    /// Descriptions for the recorder (Prometheus shows them as `# HELP`).
    fn describe() {
        describe_counter!(CALLS, Unit::Count, "calls that resolved, by outcome");
        describe_histogram!(
            CALL_DURATION,
            Unit::Seconds,
            "calls from submission to resolution, retries included"
        );
        describe_counter!(RETRIES, Unit::Count, "attempts after a call's first");
        describe_gauge!(
            IN_FLIGHT,
            Unit::Count,
            "calls submitted and not resolved yet"
        );
        describe_gauge!(
            WORKER_IN_FLIGHT,
            Unit::Count,
            "calls dispatched to a worker and not finished yet"
        );
        describe_histogram!(
            LIMIT_WAIT,
            Unit::Seconds,
            "how long an attempt waited for the pool's limits"
        );
    }

    /// One submitted call, until its promise resolves: `None` for a promise whose call is
    /// reported elsewhere (an attempt of a retried call), or that is no call.
    pub(crate) struct CallTimer(Option<Timing>);

    struct Timing {
        m: Arc<MethodMetrics>,
        started: quanta::Instant,
        /// Set by the first report: a call is counted once, however its cell is resolved.
        reported: AtomicBool,
    }

    /// How a call ended: an index into `OUTCOMES`.
    #[derive(Clone, Copy)]
    pub(crate) struct Outcome(usize);

    impl Outcome {
        /// The promise was resolved by a cancel first.
        pub(crate) const CANCELLED: Outcome = Outcome(3);

        /// How a call that resolves with `r` ended.
        #[inline]
        pub(crate) fn of<T, E>(r: &Result<T, Error<E>>) -> Outcome {
            Outcome(outcome(r))
        }
    }

    impl CallTimer {
        /// Nothing to report.
        #[inline]
        pub(crate) const fn none() -> Self {
            CallTimer(None)
        }

        /// True if there is a call to report (then [`Outcome::of`] is worth computing).
        #[inline]
        pub(crate) fn is_some(&self) -> bool {
            self.0.is_some()
        }

        /// Reports the call as ended `how`, now; later reports of the same call are ignored.
        #[inline]
        pub(crate) fn done(&self, how: Outcome) {
            if let Some(t) = &self.0 {
                t.done(how.0);
            }
        }

        /// Reports the call when `promise` resolves (a promise that is not the call's cell).
        #[inline]
        pub(crate) fn watch<T, E>(self, promise: &Promise<T, E>)
        where
            T: Send + 'static,
            E: Send + 'static,
        {
            if let Some(t) = self.0 {
                promise.on_done(move |r| t.done(outcome(r)));
            }
        }
    }

    impl Timing {
        fn done(&self, outcome: usize) {
            if self.reported.swap(true, Ordering::AcqRel) {
                return;
            }
            let m = &self.m;
            m.duration.record(self.started.elapsed());
            m.outcomes[outcome].increment(1);
            m.in_flight.decrement(1.0);
        }
    }

    /// The index in `OUTCOMES` of how a call ended.
    fn outcome<T, E>(r: &Result<T, Error<E>>) -> usize {
        fn of<E>(e: &Error<E>) -> usize {
            match e {
                Error::Method(_) => 1,
                Error::Panicked { .. } => 2,
                Error::Cancelled => 3,
                Error::Timeout => 4,
                Error::Stopped => 5,
                Error::WorkerLost { .. } => 6,
                Error::Limit(_) => 7,
                Error::Validation { .. } => 8,
                Error::Upstream { .. } => 9,
                Error::Transport(_) => 10,
                Error::RetriesExhausted { last, .. } => of(last),
                _ => 11,
            }
        }
        match r {
            Ok(_) => 0,
            Err(e) => of(e),
        }
    }

    /// Times a call's wait for its limits.
    #[derive(Clone)]
    pub(crate) struct LimitWait(Histogram);

    impl LimitWait {
        #[inline]
        pub(crate) fn start(&self) -> quanta::Instant {
            quanta::Instant::now()
        }

        #[inline]
        pub(crate) fn done(&self, started: quanta::Instant) {
            self.0.record(started.elapsed());
        }
    }
}

#[cfg(not(feature = "metrics"))]
mod imp {
    use crate::future::Promise;

    /// Nothing: the `metrics` feature is off.
    #[derive(Debug)]
    pub(crate) struct PoolMetrics;

    impl PoolMetrics {
        #[inline(always)]
        pub(crate) fn new(_pool: &str) -> Self {
            PoolMetrics
        }

        #[inline(always)]
        pub(crate) fn start(&self, _method: &'static str) -> CallTimer {
            CallTimer
        }

        #[inline(always)]
        pub(crate) fn retry(&self, _method: &'static str) {}

        #[inline(always)]
        pub(crate) fn limit_wait(&self) -> LimitWait {
            LimitWait
        }

        #[inline(always)]
        pub(crate) fn worker(&self, _index: usize) -> WorkerGauge {
            WorkerGauge
        }
    }

    #[derive(Debug, Default)]
    pub(crate) struct WorkerGauge;

    impl WorkerGauge {
        #[inline(always)]
        pub(crate) fn up(&self) {}

        #[inline(always)]
        pub(crate) fn down(&self) {}
    }

    pub(crate) struct CallTimer;

    /// Nothing: how a call ended is not looked at.
    #[derive(Clone, Copy)]
    pub(crate) struct Outcome;

    impl Outcome {
        pub(crate) const CANCELLED: Outcome = Outcome;

        #[inline(always)]
        pub(crate) fn of<T, E>(_r: &Result<T, crate::error::Error<E>>) -> Outcome {
            Outcome
        }
    }

    impl CallTimer {
        #[inline(always)]
        pub(crate) const fn none() -> Self {
            CallTimer
        }

        #[inline(always)]
        pub(crate) fn is_some(&self) -> bool {
            false
        }

        #[inline(always)]
        pub(crate) fn done(&self, _how: Outcome) {}

        #[inline(always)]
        pub(crate) fn watch<T, E>(self, _promise: &Promise<T, E>) {}
    }

    #[derive(Clone)]
    pub(crate) struct LimitWait;

    /// No clock read.
    pub(crate) struct Started;

    impl LimitWait {
        #[inline(always)]
        pub(crate) fn start(&self) -> Started {
            Started
        }

        #[inline(always)]
        pub(crate) fn done(&self, _started: Started) {}
    }
}
