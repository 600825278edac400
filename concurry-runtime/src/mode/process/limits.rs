//! Hosted limits over a child's socket: the child's [`Link`] is its [`LimitLink`], and the
//! parent's [`Host`] is a [`LimitHost`] fed from the child's envelopes.
//!
//! What is said and who keeps what lives in [`crate::limit::hosted`]; this file only maps
//! its messages to envelopes. Asks go as `LimitAcquire` (payload a `LimitRequest`),
//! `LimitUpdate` (the usage), `LimitRelease` and `LimitStats` (empty), each with the lease or
//! request id; every answer comes back as a `LimitReply` with that id, its payload a
//! `LimitReply`.

use super::child::Link;
use crate::limit::hosted::{Closed, LimitHost, LimitLink, LimitMsg, LimitReplier, LimitReply};
use crate::limit::{LimitSet, hosted::LimitRequest};
use crate::sync::os::Arc;
use crate::wire::{Envelope, Kind, WireError, decode, encode};

// ---------------------------------------------------------------------------------------
// Child side.

impl Link {
    fn send_limit(&self, msg: &LimitMsg) -> Result<(), WireError> {
        match msg {
            LimitMsg::Acquire { lease, request } => {
                self.send(Kind::LimitAcquire, *lease, request, "limit request")
            }
            LimitMsg::Update { lease, usage } => {
                self.send(Kind::LimitUpdate, *lease, usage, "limit update")
            }
            LimitMsg::Release { lease } => {
                self.send(Kind::LimitRelease, *lease, &(), "limit release")
            }
            LimitMsg::Stats { id } => self.send(Kind::LimitStats, *id, &(), "limit stats"),
        }
    }
}

impl LimitLink for Link {
    fn send(&self, msg: LimitMsg) -> Result<(), Closed> {
        self.send_limit(&msg).map_err(|_| Closed)
    }

    fn ask(&self, msg: LimitMsg) -> Option<LimitReply> {
        self.send_limit(&msg).ok()?;
        let bytes = self.wait_reply(msg.id())?;
        decode(&bytes, "limit reply").ok()
    }
}

// ---------------------------------------------------------------------------------------
// Parent side.

/// Where the host sends its replies (the child's connection): a `LimitReply` envelope with
/// this id and payload.
pub(crate) trait Replier: Send + Sync + 'static {
    fn reply(&self, id: u64, payload: Vec<u8>);
}

/// Encodes each reply for a [`Replier`].
struct Encoding(Arc<dyn Replier>);

impl LimitReplier for Encoding {
    fn reply(&self, id: u64, reply: LimitReply) {
        // Our own types always encode; if one did not, the child would wait for a parent
        // that is alive, so say so loudly.
        match encode(&reply, "limit reply") {
            Ok(payload) => self.0.reply(id, payload),
            Err(e) => tracing::error!(error = %e, "concurry: could not encode a limit reply"),
        }
    }
}

/// The parent's end of one child: its [`LimitHost`], fed from the child's envelopes.
pub(crate) struct Host(Arc<LimitHost>);

impl Host {
    /// A host for one child of a pool with `set` (or without limits).
    pub(crate) fn new(set: Option<&LimitSet>) -> Arc<Self> {
        Arc::new(Host(LimitHost::new(set)))
    }

    /// Handles a `LimitAcquire`, `LimitUpdate`, `LimitRelease` or `LimitStats` from the
    /// child; an undecodable payload is returned as an error (the channel is then broken).
    pub(crate) fn on_message(&self, env: Envelope, out: Arc<dyn Replier>) -> Result<(), WireError> {
        let msg = match env.kind {
            Kind::LimitAcquire => LimitMsg::Acquire {
                lease: env.id,
                request: decode::<LimitRequest>(&env.payload, "limit request")?,
            },
            Kind::LimitUpdate => LimitMsg::Update {
                lease: env.id,
                usage: decode(&env.payload, "limit update")?,
            },
            Kind::LimitRelease => LimitMsg::Release { lease: env.id },
            Kind::LimitStats => LimitMsg::Stats { id: env.id },
            _ => return Ok(()),
        };
        self.0.on_message(msg, Arc::new(Encoding(out)));
        Ok(())
    }

    /// The child is gone: its leases go back to the set, pending requests are dropped.
    pub(crate) fn close(&self) {
        self.0.close();
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixStream;
    use std::time::Duration;

    use super::{Arc, Link};
    use crate::limit::hosted::{HostedAcquisition, HostedLimits, LimitLink};
    use crate::limit::{LimitError, LimitSet};

    /// A child's handle whose parent end is already closed.
    fn orphaned() -> (HostedLimits, Arc<dyn LimitLink>) {
        let (ours, theirs) = UnixStream::pair().unwrap();
        drop(theirs);
        let write_half = ours.try_clone().unwrap();
        let link: Arc<dyn LimitLink> =
            Arc::new(Link::new(ours, write_half, crate::wire::DEFAULT_MAX_FRAME));
        (HostedLimits::new(link.clone()), link)
    }

    fn gone(e: &LimitError) -> bool {
        matches!(e, LimitError::Timeout { keys } if keys.contains("owner process is gone"))
    }

    #[test]
    fn a_gone_parent_is_a_typed_error_not_a_hang() {
        let (remote, link) = orphaned();
        let set = LimitSet::hosted_by(remote.clone());
        let err = set.acquire(&[("tokens", 1)]).unwrap_err();
        assert!(gone(&err), "{err:?}");
        assert!(gone(&set.try_acquire(&[("tokens", 1)]).unwrap_err()));
        let err = set
            .acquire_timeout(&[("tokens", 1)], Duration::from_secs(60))
            .unwrap_err();
        assert!(gone(&err), "{err:?}");
        let err = crate::runtime::block_on(set.acquire_async(&[("tokens", 1)])).unwrap_err();
        assert!(gone(&err), "{err:?}");
        assert!(gone(
            &remote
                .acquire_slice(&[("tokens", 1)], Duration::from_secs(60))
                .unwrap_err()
        ));
        // What the set is cannot be known any more: said plainly, not guessed.
        assert!(set.stats().is_empty() && set.keys().next().is_none() && set.name().is_none());
        assert!(!set.is_empty());
        assert!(set.same_as(&LimitSet::hosted_by(remote.clone())));
        // A pool's per-call units cannot be taken either.
        assert!(matches!(
            set.acquire_call(&|| false),
            Err(crate::limit::WaitError::Limit(ref e)) if gone(e)
        ));

        // A lease whose parent went away: the update fails typed, the charge stays as it was,
        // and dropping it is quiet.
        let mut lease = crate::limit::Acquisition::hosted(HostedAcquisition::for_tests(
            link,
            1,
            vec![("tokens".into(), 5)],
        ));
        assert!(gone(&lease.update(&[("tokens", 2)]).unwrap_err()));
        assert_eq!(lease.charged("tokens"), Some(5));
        drop(lease);
    }
}
