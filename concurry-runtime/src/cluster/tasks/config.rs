//! [`TaskConfig`]: the queue a process submits to or serves, and the limits of the stream and
//! buckets it creates.

use std::time::Duration;

use crate::error::ConfigError;

/// Settings of a durable task queue: its name, the lease a node holds while it runs a task,
/// and the limits of the stores. The submitters and the nodes of a queue should agree; the
/// first process that creates the stream, consumers and buckets sets their limits, later
/// ones use them as they are (a node reads the lease from its consumer).
///
/// ```
/// use std::time::Duration;
/// use concurry::cluster::TaskConfig;
///
/// let config = TaskConfig::new()
///     .queue("render")
///     .lease(Duration::from_secs(10))
///     .result_ttl(Duration::from_secs(3600))
///     .result_max_bytes(256 << 20);
/// assert_eq!(config.get_lease(), Duration::from_secs(10));
/// ```
#[derive(Debug, Clone)]
pub struct TaskConfig {
    pub(crate) queue: String,
    pub(crate) lease: Duration,
    pub(crate) result_ttl: Duration,
    pub(crate) result_max_bytes: i64,
    pub(crate) dedup_window: Duration,
    pub(crate) dead_letter_ttl: Duration,
    pub(crate) revoke_ttl: Duration,
    pub(crate) slots: Option<usize>,
}

impl Default for TaskConfig {
    fn default() -> Self {
        TaskConfig::new()
    }
}

const DAY: Duration = Duration::from_secs(24 * 3600);

impl TaskConfig {
    /// Queue `default`, a 30 s lease, results kept one day within 1 GiB, a 10 min duplicate
    /// window, dead letters kept 7 days and revokes 30 days; a node runs as many tasks at once
    /// as its capacity.
    pub fn new() -> Self {
        TaskConfig {
            queue: "default".to_string(),
            lease: Duration::from_secs(30),
            result_ttl: DAY,
            result_max_bytes: 1 << 30,
            dedup_window: Duration::from_secs(600),
            dead_letter_ttl: 7 * DAY,
            revoke_ttl: 30 * DAY,
            slots: None,
        }
    }

    /// The queue's name (1 to 64 ASCII letters, digits, `-` or `_`).
    #[must_use]
    pub fn queue(mut self, name: impl Into<String>) -> Self {
        self.queue = name.into();
        self
    }

    /// How long a node may go silent on a task it runs before the task is given to another
    /// node (the consumer's `ack_wait`; renewed every third of it while the task runs).
    /// 100 ms to 12 h; default 30 s.
    #[must_use]
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// How long results (and task statuses) are kept: at least 1 s; default one day.
    #[must_use]
    pub fn result_ttl(mut self, ttl: Duration) -> Self {
        self.result_ttl = ttl;
        self
    }

    /// The most bytes the results bucket holds; past it the oldest results are dropped.
    /// At least 1 MiB; default 1 GiB.
    #[must_use]
    pub fn result_max_bytes(mut self, bytes: u64) -> Self {
        self.result_max_bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
        self
    }

    /// Within this window a second submit of the same task id is recognised by the stream
    /// itself (after it, by the stored result). 1 s to 1 day; default 10 min.
    #[must_use]
    pub fn dedup_window(mut self, window: Duration) -> Self {
        self.dedup_window = window;
        self
    }

    /// How long dead letters are kept (default 7 days).
    #[must_use]
    pub fn dead_letter_ttl(mut self, ttl: Duration) -> Self {
        self.dead_letter_ttl = ttl;
        self
    }

    /// How long a cancel (revoke) is remembered (default 30 days): a task delayed beyond it
    /// and cancelled would run.
    #[must_use]
    pub fn revoke_ttl(mut self, ttl: Duration) -> Self {
        self.revoke_ttl = ttl;
        self
    }

    /// How many tasks a node runs at once (default: the node's capacity).
    #[must_use]
    pub fn slots(mut self, slots: usize) -> Self {
        self.slots = Some(slots);
        self
    }

    /// The lease set.
    pub fn get_lease(&self) -> Duration {
        self.lease
    }

    /// The queue's name.
    pub fn get_queue(&self) -> &str {
        &self.queue
    }

    /// Checks the values; the first problem, naming the value and the fix.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        super::super::check_token("queue", &self.queue)?;
        let range = |option: &'static str, v: Duration, lo: Duration, hi: Duration| {
            if v < lo || v > hi {
                Err(ConfigError::new(
                    option,
                    format!("{v:?}"),
                    format!("use a duration from {lo:?} to {hi:?}"),
                ))
            } else {
                Ok(())
            }
        };
        range(
            "lease",
            self.lease,
            Duration::from_millis(100),
            Duration::from_secs(12 * 3600),
        )?;
        range(
            "result_ttl",
            self.result_ttl,
            Duration::from_secs(1),
            Duration::from_secs(10 * 365 * 24 * 3600),
        )?;
        range(
            "dedup_window",
            self.dedup_window,
            Duration::from_secs(1),
            DAY,
        )?;
        range(
            "dead_letter_ttl",
            self.dead_letter_ttl,
            Duration::from_secs(1),
            Duration::from_secs(10 * 365 * 24 * 3600),
        )?;
        range(
            "revoke_ttl",
            self.revoke_ttl,
            Duration::from_secs(1),
            Duration::from_secs(10 * 365 * 24 * 3600),
        )?;
        if self.result_max_bytes < 1 << 20 {
            return Err(ConfigError::new(
                "result_max_bytes",
                self.result_max_bytes.to_string(),
                "give the results bucket at least 1 MiB (one result may be that large)",
            ));
        }
        if self.slots == Some(0) {
            return Err(ConfigError::new(
                "slots",
                "0",
                "a node runs at least 1 task at once",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_values_name_themselves() {
        assert!(TaskConfig::new().validate().is_ok());
        let e = TaskConfig::new()
            .lease(Duration::from_millis(1))
            .validate()
            .unwrap_err();
        assert_eq!(e.option(), "lease");
        let e = TaskConfig::new().queue("a.b").validate().unwrap_err();
        assert_eq!(e.option(), "queue");
        let e = TaskConfig::new().slots(0).validate().unwrap_err();
        assert_eq!(e.option(), "slots");
        let e = TaskConfig::new()
            .result_max_bytes(10)
            .validate()
            .unwrap_err();
        assert_eq!(e.option(), "result_max_bytes");
    }
}
