//! Hosted limits: a [`LimitSet`](crate::LimitSet) used from another place than the one that
//! holds it (a worker child, later a cluster node), over a [`LimitLink`].
//!
//! - [`link`]: the messages ([`LimitMsg`] out, [`LimitReply`] back, all serde types) and the
//!   [`LimitLink`] trait a transport implements: send a message, await its reply.
//! - [`client`]: [`HostedLimits`], the served worker's side: what
//!   [`limits()`](crate::limits) gives while a hosted call runs, and the
//!   [`HostedAcquisition`]s (leases) it is granted.
//! - [`host`]: [`LimitHost`], the owner's side: grants one served worker's requests from the
//!   pool's set and keeps its leases until they are given back or the worker is gone.
//!
//! Each served worker has its own client, link and host: nothing here is process-wide, so
//! one process may serve many workers of many pools. A served call reaches its client
//! through the limits context ([`with_hosted`](super::context::with_hosted)), as a local
//! call reaches its pool's set. Transports live elsewhere (process mode implements the link
//! over a child's socket); nothing here knows them.

pub(crate) mod client;
pub(crate) mod host;
pub(crate) mod link;

#[cfg(test)]
mod tests;

pub(crate) use client::{HostedAcquisition, HostedLimits};
pub(crate) use host::{LimitHost, LimitReplier};
pub(crate) use link::{Closed, LimitLink, LimitMsg, LimitReply, LimitRequest};
