//! [`Acquisition`]: the RAII guard of what a [`LimitSet`](crate::LimitSet) granted.

use std::fmt;

use super::error::LimitError;
use super::rate::CALL_COUNT;
use super::set::SetInner;
use crate::mode::process::limits::RemoteAcquisition;
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

/// Units granted by a [`LimitSet`](crate::LimitSet), held until this guard drops.
///
/// On drop, resource units are given back (also when unwinding from a panic); rate-limit
/// charges stay spent, at the amount requested unless [`update`](Acquisition::update)
/// corrected it. Not updating is a choice, not a mistake: the request is then taken as the
/// real usage (the conservative reading, which never lets a limit be exceeded).
///
/// In a worker child, the units are a lease the parent holds for the child: `update` and
/// `try_update` are corrected there (one round trip each), and a drop sends the release
/// without waiting for it. A child that dies gives its leases back.
///
/// ```
/// use concurry::{LimitSet, RateLimit};
///
/// let set = LimitSet::new([RateLimit::per_minute("tokens", 1000)]).unwrap();
/// let mut acq = set.acquire(&[("tokens", 800)]).unwrap();
/// acq.update(&[("tokens", 300)]);                  // used less: 500 come back
/// assert_eq!(acq.charged("tokens"), Some(300));
/// drop(acq);
/// assert!(set.try_acquire(&[("tokens", 700)]).is_ok());
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
        items: Items,
    },
    /// Granted by the parent to this worker child: a lease the parent keeps until this
    /// drops (which tells it to give the units back).
    Remote(RemoteAcquisition),
}

impl fmt::Debug for Acquisition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m = f.debug_map();
        match &self.held {
            Held::CallOnly => {
                m.entry(&CALL_COUNT, &1u64);
            }
            Held::Set { set, items, .. } => {
                for &(i, n) in items.slice(set).0 {
                    m.entry(&set.key(i), &n);
                }
            }
            Held::Remote(r) => {
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
            },
        };
        Acquisition { held }
    }

    /// Units the parent granted to this worker child.
    pub(crate) fn remote(acquisition: RemoteAcquisition) -> Self {
        Acquisition {
            held: Held::Remote(acquisition),
        }
    }

    /// The units currently charged for `key` by this acquisition, if it holds that key.
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
            Held::Set { set, items, .. } => {
                let idx = set.index(key)?;
                let (items, _) = items.slice(set);
                items.iter().find(|(i, _)| *i == idx).map(|&(_, n)| n)
            }
            Held::Remote(r) => r.charged(key),
        }
    }

    /// Corrects rate-limit charges to what was really used: less is refunded (as far as the
    /// algorithm still counts the charge), more is charged on top (with a warning, since it
    /// may push the limit past its capacity until the window moves on). Each call sets the
    /// total for its keys; calling it again corrects again.
    ///
    /// Keys this acquisition does not hold, and resource limits (whose units come back on
    /// drop), are ignored with a `tracing` warning; use
    /// [`try_update`](Acquisition::try_update) to get the error instead.
    ///
    /// ```
    /// use concurry::{LimitSet, RateLimit};
    /// let set = LimitSet::new([RateLimit::per_minute("tokens", 100)]).unwrap();
    /// let mut acq = set.acquire(&[("tokens", 40)]).unwrap();
    /// acq.update(&[("tokens", 55)]); // more than reserved: the extra 15 are charged (with a warning)
    /// assert_eq!(set.stats()[0].used, 55);
    /// ```
    pub fn update(&mut self, usage: &[(&str, u64)]) {
        if let Err(e) = self.try_update(usage) {
            tracing::warn!(error = %e, "concurry: limit update ignored");
        }
    }

    /// As [`update`](Acquisition::update), failing on the first key it cannot correct (the
    /// keys before it are corrected).
    ///
    /// # Errors
    ///
    /// [`LimitError::NotUpdatable`] for a key not held by this acquisition or a resource
    /// limit.
    ///
    /// ```
    /// use concurry::{LimitError, LimitSet, RateLimit};
    ///
    /// let set = LimitSet::new([RateLimit::per_minute("tokens", 1000)]).unwrap();
    /// let mut acq = set.acquire(&[("tokens", 10)]).unwrap();
    /// let e = acq.try_update(&[("images", 1)]).unwrap_err();
    /// assert!(matches!(e, LimitError::NotUpdatable { .. }));
    /// ```
    pub fn try_update(&mut self, usage: &[(&str, u64)]) -> Result<(), LimitError> {
        if let Held::Remote(r) = &mut self.held {
            return r.try_update(usage);
        }
        for &(key, used) in usage {
            let not = |reason: &str| LimitError::NotUpdatable {
                key: key.to_string(),
                reason: reason.to_string(),
            };
            // Not a set's units: one implicit call unit (remote ones returned above).
            let Held::Set { set, at, items } = &mut self.held else {
                return Err(not(if key == CALL_COUNT {
                    "an implicit call-limit unit is always one call; request `call_count` \
                     explicitly to charge a batch and correct it"
                } else {
                    "this acquisition holds only one implicit `call_count` unit"
                }));
            };
            let Some(idx) = set.index(key) else {
                return Err(not("the set has no limit with this key"));
            };
            if set.is_resource(idx) {
                return Err(not(
                    "it is a resource limit; its units come back when the acquisition drops",
                ));
            }
            if let Items::Auto = items {
                *items = Items::List(set.auto.to_vec());
            }
            let Items::List(list) = items else {
                unreachable!("made a list above")
            };
            let Some(slot) = list.iter_mut().find(|(i, _)| *i == idx) else {
                return Err(not(
                    "this acquisition did not request it; name it in `acquire` first",
                ));
            };
            let old = slot.1;
            if used > old {
                tracing::warn!(
                    key,
                    requested = old,
                    used,
                    "concurry: used more than was acquired; the difference is charged now"
                );
            }
            set.recharge(idx, *at, old, used);
            slot.1 = used;
        }
        Ok(())
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
