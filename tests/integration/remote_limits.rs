//! `concurry::limits()` inside a `#[worker(remote)]` method. In `Mode::Process` the child's
//! requests go over its channel to the pool's set, hosted by the parent: what a child
//! charges, refunds and holds shows in the parent's `stats()`, and errors come back typed.
//! The same worker in `Mode::Thread` behaves the same, which each test checks by running
//! in both modes.

use std::time::Duration;

use concurry::__private::serde::{Deserialize, Serialize};
use concurry::prelude::*;
use concurry::{FakeClock, LimitError};

/// Bounds every wait, so a broken test fails instead of hanging.
const HANG: Duration = Duration::from_secs(60);

/// Where the worker runs: a child process per worker, or a thread.
const BOTH: [Mode; 2] = [Mode::Process, Mode::Thread];

/// A limit request's outcome as the method saw it: the `LimitError` variant the method got,
/// carried back as a variant (a `LimitError` itself is not serde).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(crate = "concurry::__private::serde")]
pub enum Got {
    /// Granted; the units charged for the key in the end.
    Charged(u64),
    UnknownKey(String),
    ExceedsCapacity {
        key: String,
        requested: u64,
        capacity: u64,
    },
    WouldBlock,
    NotUpdatable(String),
    /// The rate limits an empty request named no amount for.
    MissingAmount(Vec<String>),
    Other(String),
}

impl From<LimitError> for Got {
    fn from(e: LimitError) -> Self {
        match e {
            LimitError::UnknownKey { key, .. } => Got::UnknownKey(key),
            LimitError::ExceedsCapacity {
                key,
                requested,
                capacity,
            } => Got::ExceedsCapacity {
                key,
                requested,
                capacity,
            },
            LimitError::WouldBlock { .. } => Got::WouldBlock,
            LimitError::NotUpdatable { key, .. } => Got::NotUpdatable(key),
            LimitError::MissingAmount { keys } => Got::MissingAmount(keys),
            other => Got::Other(other.to_string()),
        }
    }
}

/// The set as a method sees it through `concurry::limits()`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(crate = "concurry::__private::serde")]
pub struct View {
    pub empty: bool,
    pub name: Option<String>,
    pub keys: Vec<String>,
    /// `(key, used, available)` of each limit.
    pub stats: Vec<(String, u64, u64)>,
}

/// One call holding the pool's only `gpu` unit, observed from inside.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(crate = "concurry::__private::serde")]
pub struct Turn {
    pub pid: u32,
    /// `gpu` units in use, as the pool's set counts them during the call.
    pub gpu_used: u64,
    /// What asking for one more `gpu` unit gave during the call.
    pub gpu_again: Got,
    /// `tokens` used before and after this call charged one.
    pub before: u64,
    pub after: u64,
}

#[derive(Debug)]
pub struct Metered {
    /// What `limits()` gave in the constructor: nothing, as outside a pool.
    empty_at_new: bool,
}

fn used_of(key: &str) -> u64 {
    concurry::limits()
        .stats()
        .into_iter()
        .find(|s| s.key == key)
        .map_or(u64::MAX, |s| s.used)
}

#[concurry::worker(remote)]
impl Metered {
    pub fn new() -> Self {
        Metered {
            empty_at_new: concurry::limits().is_empty(),
        }
    }

    pub fn empty_at_new(&self) -> bool {
        self.empty_at_new
    }

    /// Takes `want` tokens, then reports `used` of them.
    pub fn spend(&self, want: u64, used: u64) -> Got {
        match concurry::limits().acquire(&[("tokens", want)]) {
            Ok(mut acq) => match acq.update(&[("tokens", used)]) {
                Ok(()) => Got::Charged(acq.charged("tokens").unwrap_or(0)),
                Err(e) => e.into(),
            },
            Err(e) => e.into(),
        }
    }

    /// `spend`, waiting without blocking the method's thread.
    pub async fn spend_async(&self, want: u64, used: u64) -> Got {
        match concurry::limits().acquire_async(&[("tokens", want)]).await {
            Ok(mut acq) => match acq.update(&[("tokens", used)]) {
                Ok(()) => Got::Charged(acq.charged("tokens").unwrap_or(0)),
                Err(e) => e.into(),
            },
            Err(e) => e.into(),
        }
    }

    /// Waits for `n` of `key`, gives them back at once.
    pub fn take(&self, key: String, n: u64) -> Got {
        match concurry::limits().acquire(&[(&key, n)]) {
            Ok(acq) => Got::Charged(acq.charged(&key).unwrap_or(0)),
            Err(e) => e.into(),
        }
    }

    /// `take` if the units are free now.
    pub fn try_take(&self, key: String, n: u64) -> Got {
        match concurry::limits().try_acquire(&[(&key, n)]) {
            Ok(acq) => Got::Charged(acq.charged(&key).unwrap_or(0)),
            Err(e) => e.into(),
        }
    }

    /// An empty request: names no amount for any rate limit.
    pub fn take_nothing(&self) -> Got {
        match concurry::limits().acquire(&[]) {
            Ok(acq) => Got::Charged(acq.charged("tokens").unwrap_or(0)),
            Err(e) => e.into(),
        }
    }

    /// Takes `n` of `key`, then corrects `fix` (which may not be correctable).
    pub fn correct(&self, key: String, n: u64, fix: String) -> Got {
        match concurry::limits().acquire(&[(&key, n)]) {
            Ok(mut acq) => match acq.update(&[(&fix, 0)]) {
                Ok(()) => Got::Charged(acq.charged(&key).unwrap_or(0)),
                Err(e) => e.into(),
            },
            Err(e) => e.into(),
        }
    }

    pub fn view(&self) -> View {
        let set = concurry::limits();
        View {
            empty: set.is_empty(),
            name: set.name().map(str::to_string),
            keys: set.keys().map(str::to_string).collect(),
            stats: set
                .stats()
                .into_iter()
                .map(|s| (s.key, s.used, s.available))
                .collect(),
        }
    }

    /// One token, with the counts around it read from the pool's set.
    pub fn turn(&self) -> Turn {
        let gpu_used = used_of("gpu");
        let gpu_again = match concurry::limits().try_acquire(&[("gpu", 1)]) {
            Ok(_) => Got::Charged(1),
            Err(e) => e.into(),
        };
        let before = used_of("tokens");
        let charged = concurry::limits().acquire(&[("tokens", 1)]);
        let after = used_of("tokens");
        drop(charged);
        Turn {
            pid: std::process::id(),
            gpu_used,
            gpu_again,
            before,
            after,
        }
    }
}

/// The pool's limits: a token budget (on a clock that never moves, so counts only change
/// when someone charges) and one `gpu`, which every call holds while it runs.
fn metered_set() -> LimitSet {
    LimitSet::builder()
        .name("metered")
        .limit(RateLimit::per_minute("tokens", 1000))
        .limit(ResourceLimit::new("gpu", 1))
        .clock(FakeClock::new())
        .build()
        .unwrap()
}

fn pool(mode: Mode, set: &LimitSet) -> MeteredHandle {
    Metered::options()
        .mode(mode)
        .max_workers(2)
        .load_balancing(LoadBalancing::RoundRobin)
        .limits(set)
        .init()
        .unwrap()
}

fn stat(set: &LimitSet, key: &str) -> concurry::LimitStats {
    set.stats().into_iter().find(|s| s.key == key).unwrap()
}

fn get<T>(p: Promise<T>) -> T {
    p.result_timeout(HANG).unwrap()
}

#[test]
fn what_a_child_charges_and_refunds_shows_in_the_pools_set() {
    for mode in BOTH {
        let set = metered_set();
        let metered = pool(mode, &set);
        // Reserved 400, used 100: the other 300 come back.
        assert_eq!(get(metered.spend(400, 100)), Got::Charged(100), "{mode}");
        assert_eq!(stat(&set, "tokens").used, 100, "{mode}");
        // Used more than reserved: the extra is charged.
        assert_eq!(get(metered.spend(40, 55)), Got::Charged(55), "{mode}");
        assert_eq!(stat(&set, "tokens").used, 155, "{mode}");
        assert_eq!(
            get(metered.spend_async(200, 45)),
            Got::Charged(45),
            "{mode}"
        );
        assert_eq!(stat(&set, "tokens").used, 200, "{mode}");
        // Every call gave its `gpu` unit back.
        assert_eq!(stat(&set, "gpu").used, 0, "{mode}");
        metered.stop().unwrap();
    }
}

#[test]
fn limit_errors_come_back_typed_inside_the_method() {
    for mode in BOTH {
        let set = metered_set();
        let metered = pool(mode, &set);
        assert_eq!(
            get(metered.take("nope", 1)),
            Got::UnknownKey("nope".into()),
            "{mode}"
        );
        assert_eq!(
            get(metered.try_take("nope", 1)),
            Got::UnknownKey("nope".into()),
            "{mode}"
        );
        assert_eq!(
            get(metered.take("tokens", 5000)),
            Got::ExceedsCapacity {
                key: "tokens".into(),
                requested: 5000,
                capacity: 1000
            },
            "{mode}"
        );
        // A resource limit's units come back on drop; they are not corrected.
        assert_eq!(
            get(metered.correct("tokens", 10, "gpu")),
            Got::NotUpdatable("gpu".into()),
            "{mode}"
        );
        assert_eq!(
            get(metered.correct("tokens", 10, "tokens")),
            Got::Charged(0),
            "{mode}"
        );
        // A key the acquisition does not hold (a typo): an error, not a warning.
        assert_eq!(
            get(metered.correct("tokens", 7, "tokenz")),
            Got::NotUpdatable("tokenz".into()),
            "{mode}"
        );
        // An empty request would charge no tokens: refused, naming the key.
        assert_eq!(
            get(metered.take_nothing()),
            Got::MissingAmount(vec!["tokens".into()]),
            "{mode}"
        );
        // The call holds the only `gpu` unit: one more is not available.
        assert_eq!(get(metered.try_take("gpu", 1)), Got::WouldBlock, "{mode}");
        // Only the granted requests charged anything; the one corrected to 0 holds none,
        // and the two whose correction was refused keep their charge (10 + 7).
        assert_eq!(stat(&set, "tokens").used, 17, "{mode}");
        metered.stop().unwrap();
    }
}

#[test]
fn a_method_sees_the_pools_set_by_name_keys_and_stats() {
    for mode in BOTH {
        let set = metered_set();
        let metered = pool(mode, &set);
        // The constructor ran before any call, with no pool limits (and did not upset the
        // child's start-up by asking the parent).
        assert!(get(metered.empty_at_new()), "{mode}");
        get(metered.spend(30, 30));
        let view = get(metered.view());
        assert_eq!(
            view,
            View {
                empty: false,
                name: Some("metered".into()),
                keys: vec!["tokens".into(), "gpu".into()],
                // The call looking holds the `gpu` unit.
                stats: vec![("tokens".into(), 30, 970), ("gpu".into(), 1, 0)],
            },
            "{mode}"
        );

        // A pool without limits: an empty set that knows no key, so a typo is not taken
        // for a limit.
        let free = Metered::options().mode(mode).max_workers(1).init().unwrap();
        let view = get(free.view());
        assert!(
            view.empty && view.keys.is_empty() && view.name.is_none(),
            "{mode}"
        );
        assert_eq!(
            get(free.take("tokenz", 5)),
            Got::UnknownKey("tokenz".into()),
            "{mode}"
        );
        assert_eq!(
            get(free.try_take("tokenz", 5)),
            Got::UnknownKey("tokenz".into()),
            "{mode}"
        );
        // Asking for nothing is still fine.
        assert_eq!(get(free.take_nothing()), Got::Charged(0), "{mode}");
        free.stop().unwrap();
        metered.stop().unwrap();
    }
}

#[test]
fn a_capacity_one_resource_is_never_held_by_two_workers_at_once() {
    for mode in BOTH {
        let set = metered_set();
        let metered = pool(mode, &set);
        // Both workers are up before the parent takes the unit.
        get(metered.view());

        // While the parent holds the only unit, no call runs: calls wait in the pool's set.
        let held = set.acquire(&[("gpu", 1)]).unwrap();
        assert_eq!(held.charged("gpu"), Some(1));
        let turns: Vec<_> = (0..6).map(|_| metered.turn()).collect();
        let start = std::time::Instant::now();
        while stat(&set, "gpu").waiters == 0 {
            assert!(start.elapsed() < HANG, "{mode}: no call waits for `gpu`");
            std::thread::yield_now();
        }
        assert_eq!(
            stat(&set, "tokens").used,
            0,
            "{mode}: a call ran without `gpu`"
        );
        drop(held);

        let mut turns: Vec<Turn> = turns.into_iter().map(get).collect();
        turns.sort_by_key(|t| t.before);
        for (i, t) in turns.iter().enumerate() {
            // Each call saw the unit held (by itself) and none left for anyone else...
            assert_eq!(t.gpu_used, 1, "{mode}: {t:?}");
            assert_eq!(t.gpu_again, Got::WouldBlock, "{mode}: {t:?}");
            // ...and no other call charged a token between its two reads: the calls ran
            // one after another, each seeing every earlier one's token.
            assert_eq!(
                (t.before, t.after),
                (i as u64, i as u64 + 1),
                "{mode}: {turns:?}"
            );
        }
        let pids: std::collections::BTreeSet<u32> = turns.iter().map(|t| t.pid).collect();
        match mode {
            Mode::Process => {
                assert_eq!(pids.len(), 2, "two children took turns: {turns:?}");
                assert!(!pids.contains(&std::process::id()));
            }
            _ => assert_eq!(pids.into_iter().collect::<Vec<_>>(), [std::process::id()]),
        }
        assert_eq!(stat(&set, "gpu").used, 0, "{mode}");
        assert_eq!(stat(&set, "tokens").used, 6, "{mode}");
        metered.stop().unwrap();
    }
}

/// A unit given back inside a call, and the call's own, are back in the pool's set by the
/// time its promise resolves: in `Mode::Process` the child's release travels before its
/// reply on the one socket, and the parent handles both in that order.
#[test]
fn units_given_back_in_a_call_are_back_when_its_promise_resolves() {
    for mode in BOTH {
        let set = LimitSet::builder()
            .limit(ResourceLimit::new("slot", 2))
            .build()
            .unwrap();
        let metered = pool(mode, &set);
        for i in 0..200 {
            assert_eq!(
                get(metered.take("slot", 1)),
                Got::Charged(1),
                "{mode}: call {i}"
            );
            assert_eq!(stat(&set, "slot").used, 0, "{mode}: call {i}");
        }
        metered.stop().unwrap();
    }
}
