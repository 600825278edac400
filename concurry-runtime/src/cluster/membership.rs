//! What a client knows of the nodes: the table fed by heartbeats, and its events.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use super::MISSED_BEATS;
use super::protocol::{Beat, NodeMsg};

/// One node as a client last heard of it.
///
/// ```
/// use concurry::cluster::NodeView;
///
/// // Views come from `Cluster::nodes()`; `new` makes one by hand, to ask `plan` "what if".
/// let node = NodeView::new("gpu-1", 8).with_types(["app::Embedder"]).with_free(6);
/// assert_eq!((node.name(), node.capacity(), node.free()), ("gpu-1", 8, 6));
/// assert!(node.can_host("app::Embedder") && !node.is_draining());
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct NodeView {
    beat: Beat,
    /// How long ago its last heartbeat arrived, when this view was taken.
    age: Duration,
    taken: Instant,
}

impl NodeView {
    pub(crate) fn from_beat(beat: Beat, age: Duration) -> Self {
        NodeView {
            beat,
            age,
            taken: Instant::now(),
        }
    }

    /// A view of a node named `name` with room for `capacity` instances, all free, hosting no
    /// type yet (add them with [`with_types`](NodeView::with_types)); heard from just now.
    pub fn new(name: impl Into<String>, capacity: u32) -> Self {
        let name = name.into();
        Self::from_beat(
            Beat {
                id: name.clone(),
                name,
                types: Vec::new(),
                capacity,
                free: capacity,
                draining: false,
                interval_ms: u32::try_from(super::DEFAULT_HEARTBEAT.as_millis())
                    .unwrap_or(u32::MAX),
                seq: 0,
                pid: 0,
                host: String::new(),
            },
            Duration::ZERO,
        )
    }

    /// The same view, able to host these worker types (their `RemoteWorker::NAME`s).
    pub fn with_types<S: Into<String>>(mut self, types: impl IntoIterator<Item = S>) -> Self {
        self.beat.types = types.into_iter().map(Into::into).collect();
        self
    }

    /// The same view with `free` slots free (at most its capacity).
    pub fn with_free(mut self, free: u32) -> Self {
        self.beat.free = free.min(self.beat.capacity);
        self
    }

    /// The same view, draining (or not).
    pub fn with_draining(mut self, draining: bool) -> Self {
        self.beat.draining = draining;
        self
    }

    /// The node's name, unique in its namespace (`Node::name`).
    pub fn name(&self) -> &str {
        &self.beat.name
    }

    /// The node process's id: its name and random bits; a restarted node has a new one.
    pub fn id(&self) -> &str {
        &self.beat.id
    }

    /// The worker types it can host (`RemoteWorker::NAME`s, sorted).
    pub fn types(&self) -> &[String] {
        &self.beat.types
    }

    /// True if it can host the worker type named `worker_type`.
    pub fn can_host(&self, worker_type: &str) -> bool {
        self.beat.types.iter().any(|t| t == worker_type)
    }

    /// How many instances it hosts at most (`Node::capacity`).
    pub fn capacity(&self) -> u32 {
        self.beat.capacity
    }

    /// How many more instances it would take now.
    pub fn free(&self) -> u32 {
        self.beat.free
    }

    /// True once it is draining (SIGTERM): it takes no new instances.
    pub fn is_draining(&self) -> bool {
        self.beat.draining
    }

    /// Its heartbeat interval (`Node::heartbeat`).
    pub fn heartbeat_interval(&self) -> Duration {
        Duration::from_millis(u64::from(self.beat.interval_ms))
    }

    /// When its last heartbeat arrived here (by this process's clock).
    pub fn last_heartbeat(&self) -> Instant {
        self.taken.checked_sub(self.age).unwrap_or(self.taken)
    }

    /// How long before this view was taken its last heartbeat arrived.
    pub fn since_heartbeat(&self) -> Duration {
        self.age
    }

    /// The sequence number of its last heartbeat.
    pub(crate) fn seq(&self) -> u64 {
        self.beat.seq
    }

    /// The host name and process id it runs as.
    pub fn process(&self) -> (&str, u32) {
        (&self.beat.host, self.beat.pid)
    }
}

impl fmt::Debug for NodeView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeView")
            .field("name", &self.beat.name)
            .field("id", &self.beat.id)
            .field("types", &self.beat.types)
            .field("capacity", &self.beat.capacity)
            .field("free", &self.beat.free)
            .field("draining", &self.beat.draining)
            .field("since_heartbeat", &self.age)
            .finish()
    }
}

/// A change in the set of live nodes, from [`Cluster::events`](super::Cluster::events).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClusterEvent {
    /// A node announced itself (first heartbeat seen, or again after it was lost).
    Joined(NodeView),
    /// A node drained and deregistered.
    Left(NodeView),
    /// A node's heartbeats lapsed: it died, or cannot reach the server.
    Lost(NodeView),
}

impl ClusterEvent {
    /// The node the event is about.
    pub fn node(&self) -> &NodeView {
        match self {
            ClusterEvent::Joined(n) | ClusterEvent::Left(n) | ClusterEvent::Lost(n) => n,
        }
    }
}

/// The events of one [`Cluster`](super::Cluster), from when [`events`](super::Cluster::events)
/// was called. Iterating blocks until the next one (and ends when the cluster is dropped).
pub struct ClusterEvents {
    pub(crate) rx: crossbeam_channel::Receiver<ClusterEvent>,
}

impl ClusterEvents {
    /// The next event, waiting at most `timeout`; `None` if none came.
    pub fn recv_timeout(&self, timeout: Duration) -> Option<ClusterEvent> {
        crate::runtime::blocking(|| self.rx.recv_timeout(timeout).ok())
    }

    /// The next event if one is waiting.
    pub fn try_recv(&self) -> Option<ClusterEvent> {
        self.rx.try_recv().ok()
    }
}

impl Iterator for ClusterEvents {
    type Item = ClusterEvent;
    fn next(&mut self) -> Option<ClusterEvent> {
        crate::runtime::blocking(|| self.rx.recv().ok())
    }
}

impl fmt::Debug for ClusterEvents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterEvents")
            .field("waiting", &self.rx.len())
            .finish()
    }
}

struct Entry {
    beat: Beat,
    /// When its last message arrived (the table's clock).
    seen: Duration,
}

impl Entry {
    /// 2.5 of the node's intervals, the interval taken within what `Node::heartbeat`
    /// accepts (a message claiming 0 or weeks cannot make a node lost at once or never).
    fn grace(&self) -> Duration {
        let (lo, hi) = super::node::HEARTBEAT_RANGE;
        Duration::from_millis(u64::from(self.beat.interval_ms))
            .clamp(lo, hi)
            .mul_f64(MISSED_BEATS)
    }

    fn view(&self, now: Duration) -> NodeView {
        NodeView::from_beat(self.beat.clone(), now.saturating_sub(self.seen))
    }
}

/// How many departed node ids are remembered (so a heartbeat that overtook nothing but
/// arrives after its node's goodbye does not bring it back).
const DEPARTED: usize = 1024;

/// The live nodes, keyed by node id; pure (time is passed in), so the liveness bound is
/// tested with a fake clock.
#[derive(Default)]
pub(crate) struct Members {
    nodes: HashMap<String, Entry>,
    departed: VecDeque<String>,
    subscribers: Vec<crossbeam_channel::Sender<ClusterEvent>>,
    /// Counts every message observed and every sweep that lost a node, so a waiter that let
    /// go of the lock can tell whether anything changed meanwhile.
    generation: u64,
}

impl Members {
    /// Records a message heard at `now`; returns the event it makes, if any.
    pub(crate) fn observe(&mut self, msg: NodeMsg, now: Duration) -> Option<ClusterEvent> {
        self.generation += 1;
        let event = match msg {
            NodeMsg::Beat(beat) => {
                if self.departed.contains(&beat.id) {
                    return None;
                }
                match self.nodes.get_mut(&beat.id) {
                    Some(e) => {
                        // Beats can be reordered only across reconnects; keep the newest.
                        if beat.seq >= e.beat.seq {
                            e.beat = beat;
                        }
                        e.seen = now;
                        None
                    }
                    None => {
                        let e = Entry { beat, seen: now };
                        let ev = ClusterEvent::Joined(e.view(now));
                        self.nodes.insert(e.beat.id.clone(), e);
                        Some(ev)
                    }
                }
            }
            NodeMsg::Bye { id, .. } => {
                if !self.departed.contains(&id) {
                    if self.departed.len() == DEPARTED {
                        self.departed.pop_front();
                    }
                    self.departed.push_back(id.clone());
                }
                let mut e = self.nodes.remove(&id)?;
                e.beat.draining = true;
                Some(ClusterEvent::Left(e.view(now)))
            }
        };
        if let Some(ev) = &event {
            self.publish(ev);
        }
        event
    }

    /// Removes the nodes whose heartbeats lapsed by `now`; returns their `Lost` events.
    pub(crate) fn sweep(&mut self, now: Duration) -> Vec<ClusterEvent> {
        let lost: Vec<String> = self
            .nodes
            .iter()
            .filter(|(_, e)| now.saturating_sub(e.seen) > e.grace())
            .map(|(id, _)| id.clone())
            .collect();
        if !lost.is_empty() {
            self.generation += 1;
        }
        let mut events = Vec::with_capacity(lost.len());
        for id in lost {
            if let Some(e) = self.nodes.remove(&id) {
                let ev = ClusterEvent::Lost(e.view(now));
                self.publish(&ev);
                events.push(ev);
            }
        }
        events
    }

    /// Gives every node a fresh grace period (the client was disconnected, so silence meant
    /// nothing).
    pub(crate) fn refresh(&mut self, now: Duration) {
        for e in self.nodes.values_mut() {
            e.seen = now;
        }
    }

    /// The nodes alive at `now`, by name.
    pub(crate) fn live(&self, now: Duration) -> Vec<NodeView> {
        let mut v: Vec<NodeView> = self
            .nodes
            .values()
            .filter(|e| now.saturating_sub(e.seen) <= e.grace())
            .map(|e| e.view(now))
            .collect();
        v.sort_by(|a, b| (a.name(), a.id()).cmp(&(b.name(), b.id())));
        v
    }

    /// Changes with every message observed and every node lost.
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    pub(crate) fn subscribe(&mut self) -> ClusterEvents {
        let (tx, rx) = crossbeam_channel::unbounded();
        self.subscribers.push(tx);
        ClusterEvents { rx }
    }

    fn publish(&mut self, ev: &ClusterEvent) {
        self.subscribers.retain(|tx| tx.send(ev.clone()).is_ok());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, FakeClock};

    fn beat(id: &str, seq: u64) -> NodeMsg {
        NodeMsg::Beat(Beat {
            id: id.into(),
            name: id.into(),
            types: vec![],
            capacity: 2,
            free: 2,
            draining: false,
            interval_ms: 1000,
            seq,
            pid: 1,
            host: "h".into(),
        })
    }

    /// The documented bound, on a fake clock: alive through 2.5 intervals of silence, lost
    /// at the first sweep after.
    #[test]
    fn a_node_is_lost_after_two_and_a_half_silent_intervals() {
        let clock = FakeClock::new();
        let mut m = Members::default();
        let events = m.subscribe();
        assert!(matches!(
            m.observe(beat("a", 0), clock.now()),
            Some(ClusterEvent::Joined(_))
        ));
        clock.advance(Duration::from_millis(2500));
        assert!(m.sweep(clock.now()).is_empty());
        assert_eq!(m.live(clock.now()).len(), 1);
        clock.advance(super::super::SWEEP);
        let lost = m.sweep(clock.now());
        assert_eq!(lost.len(), 1);
        assert!(
            matches!(&lost[0], ClusterEvent::Lost(v) if v.since_heartbeat() == Duration::from_millis(2600))
        );
        assert!(m.live(clock.now()).is_empty());
        let seen: Vec<_> = events.rx.try_iter().collect();
        assert!(matches!(
            seen.as_slice(),
            [ClusterEvent::Joined(_), ClusterEvent::Lost(_)]
        ));
    }

    #[test]
    fn heartbeats_keep_a_node_alive_and_a_lost_node_can_rejoin() {
        let clock = FakeClock::new();
        let mut m = Members::default();
        m.observe(beat("a", 0), clock.now());
        for seq in 1..10 {
            clock.advance(Duration::from_millis(1000));
            assert!(m.observe(beat("a", seq), clock.now()).is_none());
            assert!(m.sweep(clock.now()).is_empty());
        }
        clock.advance(Duration::from_secs(3));
        assert_eq!(m.sweep(clock.now()).len(), 1);
        assert!(matches!(
            m.observe(beat("a", 12), clock.now()),
            Some(ClusterEvent::Joined(_))
        ));
    }

    #[test]
    fn a_goodbye_removes_the_node_for_good() {
        let mut m = Members::default();
        m.observe(beat("a", 0), Duration::ZERO);
        let bye = NodeMsg::Bye {
            id: "a".into(),
            name: "a".into(),
        };
        assert!(
            matches!(m.observe(bye, Duration::ZERO), Some(ClusterEvent::Left(v)) if v.is_draining())
        );
        // A late heartbeat does not resurrect it.
        assert!(m.observe(beat("a", 1), Duration::ZERO).is_none());
        assert!(m.live(Duration::ZERO).is_empty());
    }

    #[test]
    fn an_absurd_interval_is_taken_within_the_accepted_range() {
        let mut m = Members::default();
        for (id, ms) in [("zero", 0), ("weeks", u32::MAX)] {
            let NodeMsg::Beat(mut b) = beat(id, 0) else {
                unreachable!()
            };
            b.interval_ms = ms;
            m.observe(NodeMsg::Beat(b), Duration::ZERO);
        }
        // 0 counts as 10 ms: alive through 25 ms.
        assert!(m.sweep(Duration::from_millis(25)).is_empty());
        // Weeks count as 60 s: lost after 150 s.
        let lost = m.sweep(Duration::from_secs(151));
        assert_eq!(lost.len(), 2);
    }

    #[test]
    fn refresh_gives_a_fresh_grace_period() {
        let mut m = Members::default();
        m.observe(beat("a", 0), Duration::ZERO);
        m.refresh(Duration::from_secs(10));
        assert!(m.sweep(Duration::from_secs(12)).is_empty());
        assert_eq!(m.sweep(Duration::from_secs(13)).len(), 1);
    }
}
