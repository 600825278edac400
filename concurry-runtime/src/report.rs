//! What pools report through the `metrics` facade (names and labels: `crate::metrics`).
//!
//! With the feature, each pool registers its handles once (per method at its first call),
//! so a call costs one lookup in a short list, a clock read and a callback on its promise.
//! Without it every type here is empty and every method does nothing, so the hot path is
//! what it was.

pub(crate) use imp::{LimitWait, PoolMetrics};

#[cfg(feature = "metrics")]
mod imp {
    use ::metrics::{
        Counter, Gauge, Histogram, SharedString, Unit, counter, describe_counter, describe_gauge,
        describe_histogram, gauge, histogram,
    };

    use crate::error::Error;
    use crate::future::Promise;
    use crate::metrics::{CALL_DURATION, CALLS, IN_FLIGHT, LIMIT_WAIT, OUTCOMES, RETRIES};
    use crate::sync::os::{Arc, RwLock};

    /// A pool's handles.
    pub(crate) struct PoolMetrics {
        pool: SharedString,
        in_flight: Gauge,
        limit_wait: Histogram,
        /// By method name (a pool has a handful: a list beats a map).
        methods: RwLock<Vec<(&'static str, Arc<MethodMetrics>)>>,
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
                methods: RwLock::new(Vec::new()),
            }
        }

        fn method(&self, name: &'static str) -> Arc<MethodMetrics> {
            let same = |n: &&'static str| std::ptr::eq(*n, name) || *n == name;
            {
                let methods = self.methods.read().unwrap_or_else(|p| p.into_inner());
                if let Some((_, m)) = methods.iter().find(|(n, _)| same(n)) {
                    return m.clone();
                }
            }
            let mut methods = self.methods.write().unwrap_or_else(|p| p.into_inner());
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
            methods.push((name, m.clone()));
            m
        }

        /// A call of `method` was submitted.
        #[inline]
        pub(crate) fn start(&self, method: &'static str) -> CallTimer {
            let m = self.method(method);
            m.in_flight.increment(1.0);
            CallTimer {
                m,
                started: quanta::Instant::now(),
            }
        }

        /// An attempt after the first of a call of `method`.
        pub(crate) fn retry(&self, method: &'static str) {
            self.method(method).retries.increment(1);
        }

        /// Times the waits for this pool's limits.
        pub(crate) fn limit_wait(&self) -> LimitWait {
            LimitWait(self.limit_wait.clone())
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
        describe_histogram!(
            LIMIT_WAIT,
            Unit::Seconds,
            "how long an attempt waited for the pool's limits"
        );
    }

    /// One submitted call, until its promise resolves.
    pub(crate) struct CallTimer {
        m: Arc<MethodMetrics>,
        started: quanta::Instant,
    }

    impl CallTimer {
        /// Reports the call when `promise` resolves.
        #[inline]
        pub(crate) fn watch<T, E>(self, promise: &Promise<T, E>)
        where
            T: Send + 'static,
            E: Send + 'static,
        {
            promise.on_done(move |r| {
                let m = &self.m;
                m.duration.record(self.started.elapsed());
                m.outcomes[outcome(r)].increment(1);
                m.in_flight.decrement(1.0);
            });
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
    }

    pub(crate) struct CallTimer;

    impl CallTimer {
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
