//! Limit leases across nodes: a lease taken by a method on a node is held for that node's
//! instance by the pool's owner, and a node that dies (SIGKILL, found by heartbeat) gives
//! its leases back, so calls on other nodes proceed.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use concurry::cluster::LocalServer;
use concurry::{Error, LimitSet, LoadBalancing, Mode};

use crate::support::{HANG, NodeProc, within};

/// Holds a unit of the pool's `slot` for a while.
pub(crate) struct Keeper;

#[concurry::worker(remote)]
impl Keeper {
    pub(crate) fn new() -> Self {
        Keeper
    }

    /// Takes a unit of the pool's `slot` if one is free now and holds it for `ms` milliseconds:
    /// whether it got it.
    pub(crate) fn hold(&self, ms: u64) -> bool {
        match concurry::limits().try_acquire(&[("slot", 1)]) {
            Ok(lease) => {
                std::thread::sleep(Duration::from_millis(ms));
                drop(lease);
                true
            }
            Err(_) => false,
        }
    }
}

fn used(set: &LimitSet) -> u64 {
    set.stats()
        .into_iter()
        .find(|s| s.key == "slot")
        .map_or(0, |s| s.used)
}

#[test]
fn a_killed_nodes_leases_are_given_back_and_other_calls_proceed() {
    let Some(s) = LocalServer::for_tests() else {
        return;
    };
    let mut nodes: HashMap<String, NodeProc> = ["h1", "h2"]
        .iter()
        .map(|n| (n.to_string(), NodeProc::start(&s.url(), n, 1)))
        .collect();
    let (c, set) = crate::support::slots_over_nodes(&s.url(), 2, 2);
    let p = {
        let (c, set) = (c.clone(), set.clone());
        within("init", move || {
            Keeper::options()
                .mode(Mode::Cluster)
                .cluster(c)
                .max_workers(2)
                .load_balancing(LoadBalancing::LeastActive)
                .limits(set)
                .init()
        })
        .unwrap()
    };
    // One instance per node (capacity 1 each). A call holds one unit of the resource limit
    // (in the owner, while it runs); the method takes the other one and keeps it.
    let mut held = p.hold(120_000);
    let deadline = Instant::now() + HANG;
    while used(&set) < 2 {
        assert!(
            Instant::now() < deadline,
            "the lease was never taken: {:?} {:?}",
            set.stats(),
            held.try_result()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let stats = p.stats();
    let busy = stats.per_worker.iter().find(|w| w.in_flight == 1).unwrap();
    let home = busy.node.clone().unwrap();
    nodes.get_mut(&home).unwrap().kill();
    let lost = held.result_timeout(HANG);
    assert!(matches!(lost, Err(Error::WorkerLost { .. })), "{lost:?}");
    // Given back when the node was found dead: a call on the live node gets it (were it
    // still held, that call's own unit would fill the limit and its take would fail).
    let deadline = Instant::now() + HANG;
    loop {
        match p.hold(0).result_timeout(HANG) {
            Ok(true) => break,
            // Not yet; or the call went to the dead node's instance, which has nowhere to go.
            Ok(false) | Err(Error::WorkerLost { .. }) => {}
            Err(e) => panic!("{e:?}"),
        }
        assert!(
            Instant::now() < deadline,
            "the dead node's lease was never given back"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // That call's lease and its own unit are back by the time its promise resolved.
    assert_eq!(used(&set), 0, "units still held: {:?}", set.stats());
}

/// A lease a method takes and gives back is back in the pool's set when the call's promise
/// resolves (and so is the call's own unit): the node's release reaches the owner before
/// the call's reply does, though the two leave on different connections.
#[test]
fn a_lease_given_back_in_a_call_is_back_when_its_promise_resolves() {
    let Some(s) = LocalServer::for_tests() else {
        return;
    };
    let _node = NodeProc::start(&s.url(), "r1", 1);
    let (c, set) = crate::support::slots_over_nodes(&s.url(), 1, 2);
    let p = {
        let (c, set) = (c.clone(), set.clone());
        within("init", move || {
            Keeper::options()
                .mode(Mode::Cluster)
                .cluster(c)
                .limits(set)
                .init()
        })
        .unwrap()
    };
    for i in 0..200 {
        assert!(p.hold(0).result_timeout(HANG).unwrap(), "call {i}: no unit");
        assert_eq!(
            used(&set),
            0,
            "call {i}: units still held: {:?}",
            set.stats()
        );
    }
}
