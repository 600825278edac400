//! [`Acquisition`]: the RAII guard of what a [`LimitSet`](crate::LimitSet) granted.

use std::fmt;

use super::error::LimitError;
use super::hosted::HostedAcquisition;
use super::rate::CALL_COUNT;
use super::set::SetInner;
use crate::sync::Arc;

/// What an acquisition holds: the set's automatic units (no allocation), or a list.
pub(crate) enum Items {
    /// One unit of each call and resource limit of the set.
    Auto,
    /// `(limit index, units)` pairs.
    List(Vec<(u8, u64)>),
}

impl Items {
    /// The pairs and their key mask.
    pub(crate) fn slice<'a>(&'a self, inner: &'a SetInner) -> (&'a [(u8, u64)], u64) {
        match self {
            Items::Auto => (&inner.auto, inner.auto_mask),
            Items::List(list) => (list, list.iter().fold(0, |m, &(i, _)| m | (1u64 << i))),
        }
    }
}

/// The units last reported for limit `idx`, whose set counts `counted`.
fn reported(over: &[(u8, u64)], idx: u8, counted: u64) -> u64 {
    over.iter()
        .find(|&&(i, _)| i == idx)
        .map_or(counted, |&(_, n)| n)
}

/// Units granted by a [`LimitSet`](crate::LimitSet), held until this guard drops.
///
/// On drop, resource units are given back (also when unwinding from a panic); rate-limit
/// charges stay spent, at the amount requested unless [`update`](Acquisition::update)
/// corrected it. Not updating is a choice, not a mistake: the request is then taken as the
/// real usage (the conservative reading, which never lets a limit be exceeded).
///
/// In a worker child, the units are a lease the parent holds for the child: an `update` is
/// corrected there (one round trip), and a drop sends the release without waiting for it.
/// A child that dies gives its leases back.
///
/// ```
/// use concurry::{LimitSet, RateLimit};
///
/// let set = LimitSet::new([RateLimit::per_minute("tokens", 1000)]).unwrap();
/// let mut acq = set.acquire(&[("tokens", 800)]).unwrap();
/// acq.update(&[("tokens", 300)])?;                 // used less: 500 come back
/// assert_eq!(acq.charged("tokens"), Some(300));
/// drop(acq);
/// assert!(set.try_acquire(&[("tokens", 700)]).is_ok());
/// # Ok::<(), concurry::LimitError>(())
/// ```
pub struct Acquisition {
    held: Held,
}

enum Held {
    /// One implicit unit of the set's call limit, and nothing else: nothing to give back.
    CallOnly,
    /// Anything else: the set, to give back resource units and apply updates.
    Set {
        set: Arc<SetInner>,
        /// Clock time of the charge.
        at: u64,
        /// The units as the set counts them.
        items: Items,
        /// `(limit index, units)` an `update` reported where the set counts fewer (a bucket
        /// caps its debt): what `charged` tells.
        over: Vec<(u8, u64)>,
    },
    /// Granted by the host to this served worker (a worker child): a lease the host keeps
    /// until this drops (which tells it to give the units back).
    Hosted(HostedAcquisition),
}

impl fmt::Debug for Acquisition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m = f.debug_map();
        match &self.held {
            Held::CallOnly => {
                m.entry(&CALL_COUNT, &1u64);
            }
            Held::Set {
                set, items, over, ..
            } => {
                for &(i, n) in items.slice(set).0 {
                    m.entry(&set.key(i), &reported(over, i, n));
                }
            }
            Held::Hosted(r) => {
                m.entries(r.charged_all());
            }
        }
        m.finish()
    }
}

impl Acquisition {
    #[inline]
    pub(crate) fn new(set: &Arc<SetInner>, at: u64, items: Items) -> Self {
        let held = match items {
            Items::Auto if set.auto_call_only => Held::CallOnly,
            items => Held::Set {
                set: set.clone(),
                at,
                items,
                over: Vec::new(),
            },
        };
        Acquisition { held }
    }

    /// Units the host granted to this served worker.
    pub(crate) fn hosted(acquisition: HostedAcquisition) -> Self {
        Acquisition {
            held: Held::Hosted(acquisition),
        }
    }

    /// The units charged for `key` by this acquisition, if it holds that key: what was
    /// requested, or what the last [`update`](Acquisition::update) reported.
    ///
    /// ```
    /// use concurry::{LimitSet, RateLimit};
    /// let set = LimitSet::new([RateLimit::per_minute("tokens", 100)]).unwrap();
    /// let acq = set.acquire(&[("tokens", 40)]).unwrap();
    /// assert_eq!(acq.charged("tokens"), Some(40));
    /// assert_eq!(acq.charged("images"), None);
    /// ```
    pub fn charged(&self, key: &str) -> Option<u64> {
        match &self.held {
            Held::CallOnly => (key == CALL_COUNT).then_some(1),
            Held::Set {
                set, items, over, ..
            } => {
                let idx = set.index(key)?;
                let (items, _) = items.slice(set);
                let &(_, n) = items.iter().find(|(i, _)| *i == idx)?;
                Some(reported(over, idx, n))
            }
            Held::Hosted(r) => r.charged(key),
        }
    }

    /// Corrects rate-limit charges to what was really used: less is refunded (as far as the
    /// algorithm still counts the charge), more is charged on top (with a `tracing`
    /// warning, since it may push the limit past its capacity until the window moves on).
    /// Each call sets the total for its keys; calling it again corrects again.
    ///
    /// An update applies whole or not at all: every key is checked first.
    ///
    /// How far above the capacity a charge counts: the window algorithms (`SlidingWindow`,
    /// `FixedWindow`) count it all, and it expires after one window; the bucket algorithms
    /// (`TokenBucket`, `LeakyBucket`, `Gcra`) count at most one window of debt beyond a full
    /// bucket, so even an update far above the capacity blocks the key for at most about
    /// one window (plus one unit's refill), never for as many windows as the overcharge is
    /// large. [`charged`](Acquisition::charged) still reports the number given here.
    ///
    /// # Errors
    ///
    /// [`LimitError::NotUpdatable`] (nothing is changed) for a key this acquisition does
    /// not hold (not in the set, or not requested), or a resource limit (whose units come
    /// back when the acquisition drops). In a worker child, [`LimitError::Timeout`] if the
    /// parent is gone.
    ///
    /// ```
    /// use concurry::{LimitError, LimitSet, RateLimit};
    ///
    /// let set = LimitSet::new([RateLimit::per_minute("tokens", 100)]).unwrap();
    /// let mut acq = set.acquire(&[("tokens", 40)]).unwrap();
    /// acq.update(&[("tokens", 55)])?; // more than reserved: the extra 15 are charged (with a warning)
    /// assert_eq!(set.stats()[0].used, 55);
    /// let e = acq.update(&[("tokens", 10), ("tokenz", 1)]).unwrap_err();
    /// assert!(matches!(e, LimitError::NotUpdatable { ref key, .. } if key == "tokenz"));
    /// assert_eq!(set.stats()[0].used, 55); // nothing was changed
    /// # Ok::<(), LimitError>(())
    /// ```
    pub fn update(&mut self, usage: &[(&str, u64)]) -> Result<(), LimitError> {
        let (set, at, items, over) = match &mut self.held {
            Held::Hosted(r) => return r.update(usage),
            Held::CallOnly => {
                return match usage.first() {
                    None => Ok(()),
                    Some(&(key, _)) => Err(not_updatable(
                        key,
                        if key == CALL_COUNT {
                            "an implicit call-limit unit is always one call; request \
                             `call_count` explicitly to charge a batch and correct it"
                        } else {
                            "this acquisition holds only one implicit `call_count` unit"
                        },
                    )),
                };
            }
            Held::Set {
                set,
                at,
                items,
                over,
            } => (set, *at, items, over),
        };
        if set.admits_all() {
            // An empty set admits any key, so a method also runs as plain Rust outside a
            // pool: there is nothing to correct.
            return Ok(());
        }
        // Check every key before changing anything.
        let mut targets: Vec<(u8, u64)> = Vec::with_capacity(usage.len());
        for &(key, used) in usage {
            let Some(idx) = set.index(key) else {
                let known: Vec<&str> = items
                    .slice(set)
                    .0
                    .iter()
                    .map(|&(i, _)| set.key(i))
                    .collect();
                return Err(not_updatable(
                    key,
                    &format!(
                        "the set has no limit with this key; this acquisition holds: {}",
                        known.join(", ")
                    ),
                ));
            };
            if set.is_resource(idx) {
                return Err(not_updatable(
                    key,
                    "it is a resource limit; its units come back when the acquisition drops",
                ));
            }
            if !items.slice(set).0.iter().any(|&(i, _)| i == idx) {
                return Err(not_updatable(
                    key,
                    "this acquisition did not request it; name it in `acquire` first",
                ));
            }
            targets.push((idx, used));
        }
        if targets.is_empty() {
            return Ok(());
        }
        if let Items::Auto = items {
            *items = Items::List(set.auto.to_vec());
        }
        let Items::List(list) = items else {
            unreachable!("made a list above")
        };
        for (idx, used) in targets {
            let Some(slot) = list.iter_mut().find(|(i, _)| *i == idx) else {
                continue; // checked above
            };
            let pos = over.iter().position(|&(i, _)| i == idx);
            let reported = pos.map_or(slot.1, |p| over[p].1);
            if used > reported {
                tracing::warn!(
                    key = set.key(idx),
                    requested = reported,
                    used,
                    "concurry: used more than was acquired; the difference is charged now"
                );
            }
            slot.1 = set.recharge(idx, at, slot.1, used);
            match (pos, slot.1 == used) {
                (Some(p), true) => {
                    over.swap_remove(p);
                }
                (Some(p), false) => over[p].1 = used,
                (None, false) => over.push((idx, used)),
                (None, true) => {}
            }
        }
        Ok(())
    }
}

fn not_updatable(key: &str, reason: &str) -> LimitError {
    LimitError::NotUpdatable {
        key: key.to_string(),
        reason: reason.to_string(),
    }
}

impl Drop for Acquisition {
    #[inline]
    fn drop(&mut self) {
        if let Held::Set { set, items, .. } = &self.held {
            set.release(items.slice(set).0);
        }
    }
}
