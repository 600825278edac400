//! Hosted limits over an in-process link: what a cluster node serving many workers needs.

use std::collections::HashMap;
use std::time::Duration;

use super::{Closed, HostedLimits, LimitHost, LimitLink, LimitMsg, LimitReplier, LimitReply};
use crate::limit::context::with_hosted;
use crate::limit::{LimitError, LimitSet, RateLimit, ResourceLimit, limits};
use crate::sync::os::{Arc, AtomicBool, Condvar, Mutex, Ordering, lock};

/// A link whose host is in the same process: messages go straight to it (each through the
/// wire encoding, as a real transport would send them), replies come back through a table.
struct Loopback {
    host: Arc<LimitHost>,
    replies: Arc<Replies>,
}

#[derive(Default)]
struct Replies {
    table: Mutex<HashMap<u64, LimitReply>>,
    changed: Condvar,
    closed: AtomicBool,
}

impl LimitReplier for Replies {
    fn reply(&self, id: u64, reply: LimitReply) {
        let reply = roundtrip(&reply);
        lock(&self.table).insert(id, reply);
        self.changed.notify_all();
    }
}

/// `value` after the wire's encoding and back: every limit message is a serde type.
fn roundtrip<T: serde::Serialize + serde::de::DeserializeOwned>(value: &T) -> T {
    let bytes = crate::wire::encode(value, "limit message").unwrap();
    crate::wire::decode(&bytes, "limit message").unwrap()
}

impl Loopback {
    fn new(set: Option<&LimitSet>) -> Arc<Self> {
        Arc::new(Loopback {
            host: LimitHost::new(set),
            replies: Arc::new(Replies::default()),
        })
    }

    /// The served worker is gone: the host gives its leases back, the link is closed.
    fn close(&self) {
        self.replies.closed.store(true, Ordering::Release);
        self.replies.changed.notify_all();
        self.host.close();
    }
}

impl LimitLink for Loopback {
    fn send(&self, msg: LimitMsg) -> Result<(), Closed> {
        if self.replies.closed.load(Ordering::Acquire) {
            return Err(Closed);
        }
        let out: Arc<dyn LimitReplier> = self.replies.clone();
        self.host.on_message(roundtrip(&msg), out);
        Ok(())
    }

    fn ask(&self, msg: LimitMsg) -> Option<LimitReply> {
        let id = msg.id();
        self.send(msg).ok()?;
        let mut table = lock(&self.replies.table);
        loop {
            if let Some(r) = table.remove(&id) {
                return Some(r);
            }
            if self.replies.closed.load(Ordering::Acquire) {
                return None;
            }
            table = self
                .replies
                .changed
                .wait_timeout(table, Duration::from_millis(50))
                .map_or_else(|p| p.into_inner().0, |(g, _)| g);
        }
    }
}

fn served(set: Option<&LimitSet>) -> (HostedLimits, Arc<Loopback>) {
    let link = Loopback::new(set);
    (HostedLimits::new(link.clone()), link)
}

fn used(set: &LimitSet, key: &str) -> u64 {
    set.stats().into_iter().find(|s| s.key == key).unwrap().used
}

/// Runs `f` on its own thread, failing instead of hanging if it does not finish.
fn within<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = crossbeam_channel::bounded(1);
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(30))
        .expect("a hosted limit request hung")
}

#[test]
fn two_workers_served_in_one_process_each_see_their_own_pools_limits() {
    within(two_workers);
}

fn two_workers() {
    // Two pools, each with its own set under the same keys, and one worker of each served
    // here, each over its own link to its own host.
    let a = LimitSet::builder()
        .name("pool-a")
        .limit(RateLimit::per_minute("tokens", 100))
        .limit(ResourceLimit::new("gpu", 1))
        .build()
        .unwrap();
    let b = LimitSet::builder()
        .name("pool-b")
        .limit(RateLimit::per_minute("tokens", 1000))
        .build()
        .unwrap();
    let (worker_a, link_a) = served(Some(&a));
    let (worker_b, link_b) = served(Some(&b));

    // Both serve calls at once, on their own threads; each call sees its own pool's set.
    let (wa, wb) = (worker_a.clone(), worker_b.clone());
    let call_a = std::thread::spawn(move || {
        with_hosted(&wa, || {
            let set = limits();
            let mut acq = set.acquire(&[("tokens", 80)]).unwrap();
            acq.update(&[("tokens", 30)]).unwrap();
            (
                set.name().map(str::to_string),
                set.keys().count(),
                acq.charged("tokens"),
            )
        })
    });
    let call_b = std::thread::spawn(move || {
        with_hosted(&wb, || {
            let set = limits();
            // 900 would never fit pool-a's 100: only pool-b's budget is asked.
            let acq = set.acquire(&[("tokens", 900)]).unwrap();
            (
                set.name().map(str::to_string),
                set.keys().count(),
                acq.charged("tokens"),
            )
        })
    });
    assert_eq!(call_a.join().unwrap(), (Some("pool-a".into()), 2, Some(30)));
    assert_eq!(
        call_b.join().unwrap(),
        (Some("pool-b".into()), 1, Some(900))
    );
    assert_eq!((used(&a, "tokens"), used(&b, "tokens")), (30, 900));

    // On one thread, one call after the other (and one inside the other): no leak between
    // them, and none outside a served call.
    with_hosted(&worker_a, || {
        let set = limits();
        assert_eq!(set.name(), Some("pool-a"));
        assert!(matches!(
            set.try_acquire(&[("tokens", 71)]),
            Err(LimitError::WouldBlock { .. })
        ));
        with_hosted(&worker_b, || {
            assert_eq!(limits().name(), Some("pool-b"));
            let e = limits().try_acquire(&[("gpu", 1)]).unwrap_err();
            assert!(matches!(e, LimitError::UnknownKey { ref key, .. } if key == "gpu"));
        });
        assert!(limits().same_as(&set) && !set.same_as(&LimitSet::hosted_by(worker_b.clone())));
        let gpu = set.try_acquire(&[("gpu", 1)]).unwrap();
        assert_eq!(used(&a, "gpu"), 1);
        drop(gpu);
        assert_eq!(used(&a, "gpu"), 0);
    });
    assert!(limits().is_empty() && limits().name().is_none());

    // Lease ids of the two links overlap (each counts from 1); the hosts keep them apart.
    let held_a = LimitSet::hosted_by(worker_a.clone())
        .acquire(&[("gpu", 1)])
        .unwrap();
    let held_b = LimitSet::hosted_by(worker_b.clone())
        .acquire(&[("tokens", 50)])
        .unwrap();
    drop(held_b);
    assert_eq!(used(&a, "gpu"), 1, "b's release must not free a's lease");

    // One worker gone: its leases come back, the other worker is untouched.
    link_a.close();
    assert_eq!(used(&a, "gpu"), 0);
    drop(held_a);
    assert_eq!(LimitSet::hosted_by(worker_b.clone()).stats().len(), 1);
    let e = LimitSet::hosted_by(worker_a)
        .acquire(&[("tokens", 1)])
        .unwrap_err();
    assert!(
        matches!(e, LimitError::Timeout { ref keys } if keys.contains("gone")),
        "{e:?}"
    );
    drop(link_b);
}

#[test]
fn a_hosted_wait_is_the_hosts_wait_and_a_pool_without_limits_refuses_every_key() {
    within(hosted_waits);
}

fn hosted_waits() {
    let set = LimitSet::new([ResourceLimit::new("gpu", 1)]).unwrap();
    let (worker, _link) = served(Some(&set));
    let held = set.acquire(&[]).unwrap();
    let w = worker.clone();
    let waiter = std::thread::spawn(move || {
        with_hosted(&w, || {
            limits().acquire(&[("gpu", 1)]).map(|a| a.charged("gpu"))
        })
    });
    // The served worker's request waits in the host's queue, behind the holder.
    while set.stats()[0].waiters == 0 {
        std::thread::yield_now();
    }
    drop(held);
    assert_eq!(waiter.join().unwrap(), Ok(Some(1)));

    // A call's units (as a pool takes them) come from the host too, and a timeout is one.
    let call = LimitSet::hosted_by(worker.clone());
    let units = call.acquire_call(&|| false).unwrap().unwrap();
    assert_eq!(units.charged("gpu"), Some(1));
    let e = call
        .acquire_timeout(&[("gpu", 1)], Duration::from_millis(1))
        .unwrap_err();
    assert!(matches!(e, LimitError::Timeout { .. }), "{e:?}");
    let e = crate::runtime::block_on(call.acquire_async_timeout(&[("gpu", 1)], Duration::ZERO))
        .unwrap_err();
    assert!(matches!(e, LimitError::Timeout { .. }), "{e:?}");
    drop(units);
    let async_units = crate::runtime::block_on(call.acquire_call_async(|| false)).unwrap();
    assert_eq!(async_units.unwrap().charged("gpu"), Some(1));

    // A pool without limits: the served worker's `limits()` refuses keys as a local one does.
    let (unlimited, _link) = served(None);
    let e = with_hosted(&unlimited, || limits().acquire(&[("tokens", 1)])).unwrap_err();
    assert!(
        e.to_string().contains("the pool was built without them"),
        "{e}"
    );
}
