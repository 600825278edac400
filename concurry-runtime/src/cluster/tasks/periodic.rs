//! Periodic schedules: a task submitted on every tick of an interval or a cron expression,
//! once per tick across all nodes.
//!
//! A schedule is a record in the namespace's `schedules` bucket (durable: it survives node
//! and server restarts) holding the task's message, ready to publish. Every node serving
//! tasks runs a scheduler ([`start`]): it watches the bucket and, at each tick, submits the
//! task under the id `<schedule>=<tick in ms>`. Every scheduler computes the same ticks from
//! the same record, so their submits of one tick carry one message id: JetStream's duplicate
//! window keeps one, and a node that finds the tick's result already stored drops a late
//! copy. No leader, no lock: any number of schedulers fire each tick once.

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, SystemTime};

use async_nats::jetstream::kv::{self, Operation};
use async_nats::jetstream::stream::DiscardPolicy;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use super::cron::Cron;
use super::record::{decode, encode};
use super::setup::{Store, bucket};
use super::submit::{Extra, Submit, TaskQueue, record, send};
use super::{from_ms, now_ms, server_error};
use crate::cluster::run;
use crate::error::{ConfigError, Error};
use crate::remote::RemoteTask;

/// When a periodic task runs: every interval, or on a cron expression's ticks (UTC).
///
/// ```
/// use std::time::Duration;
/// use concurry::cluster::Schedule;
///
/// let every_minute = Schedule::every(Duration::from_secs(60));
/// let every_5_minutes = Schedule::cron("0 */5 * * * *")?; // seconds first: 6 fields
/// let nightly = Schedule::cron("30 2 * * *")?;           // 02:30 UTC: 5 fields
/// assert_eq!(every_5_minutes.to_string(), "cron \"0 */5 * * * *\"");
/// assert!(Schedule::cron("every day").is_err());
/// # let _ = (every_minute, nightly);
/// # Ok::<(), concurry::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    spec: Spec,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Spec {
    Every(Duration),
    Cron(Cron),
}

/// The shortest interval: ticks are computed to the second.
const MIN_INTERVAL: Duration = Duration::from_secs(1);

impl Schedule {
    /// A tick every `interval` (at least 1 s), the first one `interval` after the schedule is
    /// stored.
    pub fn every(interval: Duration) -> Schedule {
        Schedule {
            spec: Spec::Every(interval),
        }
    }

    /// The ticks of a cron expression, in UTC: 5 fields (minute hour day-of-month month
    /// day-of-week) or 6 with seconds first. Each field is `*`, a value, a range `a-b`, a
    /// step `*/n` or `a-b/n`, or a list `a,b`; months may be `JAN`-`DEC`, days `SUN`-`SAT`
    /// (0 or 7 is Sunday), and `?` stands for `*` in the day fields. When both day fields
    /// are restricted, a day matching either fires (as in Vixie cron).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the expression, what is wrong with it and the expected
    /// format (also for one that matches no date, like `0 0 30 2 *`).
    pub fn cron(expr: &str) -> Result<Schedule, Error> {
        Ok(Schedule {
            spec: Spec::Cron(Cron::parse(expr)?),
        })
    }

    fn check(&self) -> Result<(), ConfigError> {
        match &self.spec {
            Spec::Every(d) if *d < MIN_INTERVAL => Err(ConfigError::new(
                "schedule interval",
                format!("{d:?}"),
                "use at least 1 s (ticks are computed to the second)",
            )),
            _ => Ok(()),
        }
    }

    /// The first tick strictly after `after_ms` of a schedule stored at `created_ms`.
    fn next_after(&self, created_ms: u64, after_ms: u64) -> Option<u64> {
        let after = after_ms.max(created_ms);
        match &self.spec {
            Spec::Every(d) => {
                let d = u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1);
                let k = (after - created_ms) / d + 1;
                created_ms.checked_add(k.checked_mul(d)?)
            }
            Spec::Cron(c) => c.next_after(after / 1000)?.checked_mul(1000),
        }
    }

    fn to_record(&self) -> SpecRecord {
        match &self.spec {
            Spec::Every(d) => SpecRecord::EveryMs(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            Spec::Cron(c) => SpecRecord::Cron(c.source().to_string()),
        }
    }

    fn from_record(r: &SpecRecord) -> Result<Schedule, String> {
        match r {
            SpecRecord::EveryMs(ms) => Ok(Schedule::every(Duration::from_millis(*ms))),
            SpecRecord::Cron(expr) => Cron::parse(expr)
                .map(|c| Schedule {
                    spec: Spec::Cron(c),
                })
                .map_err(|e| e.to_string()),
        }
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.spec {
            Spec::Every(d) => write!(f, "every {d:?}"),
            Spec::Cron(c) => write!(f, "cron {:?}", c.source()),
        }
    }
}

/// A stored schedule, as [`TaskQueue::schedules`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleInfo {
    /// The schedule's name.
    pub name: String,
    /// The task it submits (`RemoteTask::NAME`).
    pub task: String,
    /// When it fires.
    pub schedule: Schedule,
    /// When it was stored (intervals count from here).
    pub created: SystemTime,
    /// Its next tick after now, if any.
    pub next: Option<SystemTime>,
}

/// The record of a schedule (the schedules bucket).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Periodic {
    task: String,
    /// The level's subject; each tick's id is appended.
    subject: String,
    /// The task message, as `submit` publishes it.
    payload: Vec<u8>,
    spec: SpecRecord,
    created_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum SpecRecord {
    EveryMs(u64),
    Cron(String),
}

/// Checks a schedule name: 1 to 64 ASCII letters, digits, `-` or `_` (a KV key, and the
/// first part of its ticks' task ids).
fn check_name(name: &str) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(ConfigError::new(
            "schedule name",
            format!("{name:?}"),
            "use 1 to 64 ASCII letters, digits, `-` or `_`",
        ))
    }
}

/// The task id of the schedule `name`'s tick at `tick_ms`: the same on every scheduler.
pub(crate) fn tick_id(name: &str, tick_ms: u64) -> String {
    format!("{name}={tick_ms}")
}

/// The schedules bucket (get or create; no expiry).
async fn schedules_bucket(store: &Store) -> Result<kv::Store, Error> {
    bucket(
        &store.js,
        &store.url,
        &store.names.schedules,
        Duration::ZERO,
        -1,
        DiscardPolicy::New,
    )
    .await
}

impl TaskQueue {
    /// Stores the periodic schedule `name`: task `T` with `args` is submitted on each tick
    /// of `schedule` (at `Normal` priority, one attempt), once per tick across all nodes.
    /// Storing a name again replaces its schedule. See
    /// [`schedule_with`](TaskQueue::schedule_with).
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use concurry::RemoteTask;
    /// use concurry::cluster::{Cluster, Schedule};
    ///
    /// struct Report;
    /// impl RemoteTask for Report {
    ///     const NAME: &'static str = "docs::Report";
    ///     type Args = (String,);
    ///     type Output = ();
    ///     fn run((_to,): (String,)) {}
    /// }
    /// concurry::register_remote_task!(Report);
    ///
    /// # fn main() -> Result<(), concurry::Error> {
    /// let q = Cluster::connect("nats://127.0.0.1:4222")?.tasks()?;
    /// q.schedule::<Report>("nightly-report", Schedule::cron("0 2 * * *")?, ("ops".into(),))?;
    /// q.schedule::<Report>("heartbeat", Schedule::every(Duration::from_secs(60)), ("ops".into(),))?;
    /// for s in q.schedules()? {
    ///     println!("{} runs {} {}, next at {:?}", s.name, s.task, s.schedule, s.next);
    /// }
    /// assert!(q.unschedule("heartbeat")?);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`schedule_with`](TaskQueue::schedule_with).
    pub fn schedule<T: RemoteTask>(
        &self,
        name: &str,
        schedule: Schedule,
        args: T::Args,
    ) -> Result<(), Error> {
        self.schedule_with::<T>(name, schedule, args, Submit::new())
    }

    /// As [`schedule`](TaskQueue::schedule), each tick's task submitted with `submit`'s
    /// priority and retries. Schedules are durable (stored in the namespace's `schedules`
    /// bucket) and served by every node of the namespace: each node runs a scheduler, and
    /// the schedulers' submits of one tick collapse into one task whose id is
    /// `<name>=<tick in ms since the epoch>`.
    ///
    /// Ticks: an interval's come every `interval` after the schedule is stored; a cron
    /// expression's are its matching seconds in UTC. A tick that every node missed (none
    /// was up) is submitted late by the first scheduler that starts within half the
    /// stream's duplicate window (5 min by default); older missed ticks are skipped, and
    /// at most one missed tick per schedule is made up.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a bad name, an interval under 1 s, a `submit` with an id or a
    /// delay (ticks have their own), arguments too large, or a server that cannot store the
    /// schedule; [`Error::Transport`] if the arguments cannot be encoded.
    pub fn schedule_with<T: RemoteTask>(
        &self,
        name: &str,
        schedule: Schedule,
        args: T::Args,
        submit: Submit,
    ) -> Result<(), Error> {
        check_name(name)?;
        schedule.check()?;
        if let Some(id) = submit.given_id() {
            return Err(ConfigError::new(
                "schedule submit id",
                format!("{id:?}"),
                "leave the id out: each tick's task gets the id `<name>=<tick ms>`",
            )
            .into());
        }
        let prepared = self.prepare::<T>(args, submit)?;
        if prepared.not_before.is_some() {
            return Err(ConfigError::new(
                "schedule submit delay",
                "a delay or ETA",
                "leave it out: a schedule's ticks say when its tasks run",
            )
            .into());
        }
        let rec = encode(&Periodic {
            task: T::NAME.to_string(),
            subject: prepared.level,
            payload: prepared.payload,
            spec: schedule.to_record(),
            created_ms: now_ms(),
        });
        let inner = self.inner.clone();
        let name = name.to_string();
        run(async move {
            let kv = schedules_bucket(&inner.store).await?;
            kv.put(&name, rec.into())
                .await
                .map(|_| ())
                .map_err(|e| server_error("store the schedule", &inner.store.url, e))
        })
    }

    /// The stored schedules, by name.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if the server cannot be asked.
    pub fn schedules(&self) -> Result<Vec<ScheduleInfo>, Error> {
        let inner = self.inner.clone();
        run(async move {
            let store = &inner.store;
            let err = |e: &dyn fmt::Display| server_error("list the schedules", &store.url, e);
            let kv = schedules_bucket(store).await?;
            let mut keys = kv.keys().await.map_err(|e| err(&e))?;
            let mut names = Vec::new();
            while let Some(k) = keys.next().await {
                names.push(k.map_err(|e| err(&e))?);
            }
            let now = now_ms();
            let mut out = Vec::with_capacity(names.len());
            for name in names {
                let Some(bytes) = kv.get(&name).await.map_err(|e| err(&e))? else {
                    continue;
                };
                match decode::<Periodic>(&bytes, "a schedule")
                    .and_then(|p| Ok((Schedule::from_record(&p.spec)?, p)))
                {
                    Ok((schedule, p)) => out.push(ScheduleInfo {
                        next: schedule.next_after(p.created_ms, now).map(from_ms),
                        name,
                        task: p.task,
                        schedule,
                        created: from_ms(p.created_ms),
                    }),
                    Err(e) => tracing::warn!(schedule = %name, "concurry tasks: {e}"),
                }
            }
            out.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(out)
        })
    }

    /// Removes the schedule `name`: no tick after this is submitted (a tick's task already
    /// submitted still runs). True if there was one.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a bad name, or if the server cannot be asked.
    pub fn unschedule(&self, name: &str) -> Result<bool, Error> {
        check_name(name)?;
        let inner = self.inner.clone();
        let name = name.to_string();
        run(async move {
            let store = &inner.store;
            let err = |e: &dyn fmt::Display| server_error("remove the schedule", &store.url, e);
            let kv = schedules_bucket(store).await?;
            let existed = kv.get(&name).await.map_err(|e| err(&e))?.is_some();
            if existed {
                kv.delete(&name).await.map_err(|e| err(&e))?;
            }
            Ok(existed)
        })
    }
}

// ---------------------------------------------------------------- the nodes' scheduler

/// The longest the scheduler sleeps without looking at the clock again (wall-clock jumps).
const MAX_SLEEP: Duration = Duration::from_secs(5);

/// The pause after the server refused a submit or the watch failed.
const ERROR_PAUSE: Duration = Duration::from_secs(1);

/// One schedule as a scheduler follows it.
struct Followed {
    rec: Periodic,
    schedule: Schedule,
    /// The next tick to submit.
    next: Option<u64>,
}

/// Starts this node's scheduler over the namespace's schedules; it runs until aborted.
pub(crate) async fn start(store: Store) -> Result<tokio::task::AbortHandle, Error> {
    let kv = schedules_bucket(&store).await?;
    let window = store.stream.cached_info().config.duplicate_window;
    let catch_up = u64::try_from((window / 2).as_millis()).unwrap_or(u64::MAX);
    Ok(crate::runtime::runtime()
        .spawn(scheduler(store, kv, catch_up))
        .abort_handle())
}

async fn scheduler(store: Store, kv: kv::Store, catch_up_ms: u64) {
    loop {
        match kv.watch_with_history(">").await {
            Ok(watch) => follow(&store, watch, catch_up_ms).await,
            Err(e) => tracing::warn!("concurry node: cannot watch the schedules: {e}"),
        }
        tokio::time::sleep(ERROR_PAUSE).await;
    }
}

/// Follows the schedules of `watch` (each key's latest value first, then changes) and
/// submits their ticks; returns when the watch ends.
async fn follow(store: &Store, mut watch: kv::Watch, catch_up_ms: u64) {
    let mut followed: HashMap<String, Followed> = HashMap::new();
    loop {
        let failed = fire_due(store, &mut followed).await;
        let now = now_ms();
        let sleep = if failed {
            ERROR_PAUSE
        } else {
            followed
                .values()
                .filter_map(|f| f.next)
                .min()
                .map_or(MAX_SLEEP, |t| Duration::from_millis(t.saturating_sub(now)))
                .min(MAX_SLEEP)
        };
        tokio::select! {
            entry = watch.next() => match entry {
                Some(Ok(e)) => apply(&mut followed, e, catch_up_ms),
                Some(Err(e)) => {
                    tracing::warn!("concurry node: schedules watch: {e}");
                    return;
                }
                None => return,
            },
            () = tokio::time::sleep(sleep) => {}
        }
    }
}

fn apply(followed: &mut HashMap<String, Followed>, e: kv::Entry, catch_up_ms: u64) {
    if e.operation != Operation::Put {
        followed.remove(&e.key);
        return;
    }
    let parsed = decode::<Periodic>(&e.value, "a schedule")
        .and_then(|rec| Ok((Schedule::from_record(&rec.spec)?, rec)));
    match parsed {
        Ok((schedule, rec)) => {
            // The first tick inside the catch-up window: at most one missed tick is made up.
            let from = now_ms().saturating_sub(catch_up_ms);
            let next = schedule.next_after(rec.created_ms, from);
            followed.insert(
                e.key,
                Followed {
                    rec,
                    schedule,
                    next,
                },
            );
        }
        Err(err) => {
            tracing::warn!(schedule = %e.key, "concurry node: schedule ignored: {err}");
            followed.remove(&e.key);
        }
    }
}

/// Submits each schedule's latest due tick (older due ticks are skipped); true if a submit
/// failed (that tick is tried again after a pause).
async fn fire_due(store: &Store, followed: &mut HashMap<String, Followed>) -> bool {
    let now = now_ms();
    for (name, f) in followed.iter_mut() {
        while let Some(tick) = f.next.filter(|t| *t <= now) {
            let following = f.schedule.next_after(f.rec.created_ms, tick);
            if following.is_some_and(|t| t <= now) {
                f.next = following;
                continue;
            }
            if let Err(e) = fire(store, name, &f.rec, tick).await {
                tracing::warn!(schedule = %name, "concurry node: tick not submitted: {e}");
                return true;
            }
            f.next = following;
        }
    }
    false
}

async fn fire(store: &Store, name: &str, rec: &Periodic, tick_ms: u64) -> Result<(), Error> {
    let id = tick_id(name, tick_ms);
    record(store, &id, None, false).await?;
    send(
        store,
        &rec.task,
        &id,
        &id,
        &rec.subject,
        rec.payload.clone(),
        Extra::default(),
    )
    .await?
    .await
    .map_err(|e| server_error("submit a scheduled task", &store.url, e))?;
    tracing::debug!(schedule = name, task = %id, "concurry node: tick submitted");
    Ok(())
}

/// When a tick's task id says it was due (for logs and tests).
#[cfg(test)]
fn tick_time(id: &str) -> Option<SystemTime> {
    id.rsplit_once('=')
        .and_then(|(_, ms)| ms.parse().ok())
        .map(from_ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::tasks::to_ms;

    #[test]
    fn interval_ticks_count_from_the_schedule_creation() {
        let s = Schedule::every(Duration::from_secs(60));
        let created = 1_000_000;
        assert_eq!(s.next_after(created, 0), Some(created + 60_000));
        assert_eq!(s.next_after(created, created), Some(created + 60_000));
        assert_eq!(
            s.next_after(created, created + 59_999),
            Some(created + 60_000)
        );
        assert_eq!(
            s.next_after(created, created + 60_000),
            Some(created + 120_000)
        );
        let c = Schedule::cron("0 */5 * * * *").unwrap();
        // 1970-01-01 00:03:20 -> 00:05:00.
        assert_eq!(c.next_after(0, 200_500), Some(300_000));
        assert_eq!(
            c.next_after(400_000, 0),
            Some(600_000),
            "never before creation"
        );
        assert_eq!(
            to_ms(tick_time(&tick_id("a-b_1", 300_000)).unwrap()),
            300_000
        );
    }

    #[test]
    fn bad_names_intervals_and_records_are_refused_by_name() {
        let e = check_name("no spaces").unwrap_err();
        assert!(e.to_string().contains("\"no spaces\""), "{e}");
        assert!(check_name(&"x".repeat(65)).is_err());
        check_name("nightly-report_2").unwrap();
        let e = Schedule::every(Duration::from_millis(10))
            .check()
            .unwrap_err();
        assert!(e.to_string().contains("10ms"), "{e}");
        let e = Schedule::cron("0 */5 * *").unwrap_err();
        assert!(
            matches!(&e, Error::Config(c) if c.option() == "cron expression"),
            "{e}"
        );
        assert!(e.to_string().contains("\"0 */5 * *\""), "{e}");
        // A record round-trips; the stored cron text is parsed again.
        for s in [
            Schedule::every(Duration::from_secs(5)),
            Schedule::cron("0 0 * * MON").unwrap(),
        ] {
            assert_eq!(Schedule::from_record(&s.to_record()).unwrap(), s);
        }
    }

    /// Several schedulers computing ticks from one record fire the same ids: the property
    /// the one-run-per-tick guarantee rests on, whatever the clock each sees.
    #[test]
    fn schedulers_that_wake_at_different_times_pick_the_same_tick_ids() {
        let s = Schedule::every(Duration::from_secs(2));
        let created = 10_000;
        let latest_due = |now: u64| {
            let mut next = s.next_after(created, now.saturating_sub(5_000));
            let mut fired = None;
            while let Some(t) = next.filter(|t| *t <= now) {
                next = s.next_after(created, t);
                if next.is_none_or(|n| n > now) {
                    fired = Some(tick_id("x", t));
                }
            }
            fired
        };
        assert_eq!(latest_due(14_000), Some("x=14000".into()));
        assert_eq!(latest_due(15_999), Some("x=14000".into()));
        assert_eq!(latest_due(16_000), Some("x=16000".into()));
        assert_eq!(latest_due(11_000), None);
    }
}
