//! `#[worker]` through the public facade: every kind of method in every mode.
use std::collections::HashMap;
use std::hash::Hash;

use concurry::prelude::*;

#[derive(Debug, PartialEq, Eq)]
pub struct Boom(pub &'static str);

impl std::fmt::Display for Boom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

pub struct Echo {
    n: u64,
    prefix: String,
}

#[concurry::worker]
impl Echo {
    pub fn new(n: u64, prefix: String) -> Self {
        Echo { n, prefix }
    }

    /// Adds `n`.
    pub fn ping(&self, x: u64) -> u64 {
        x + self.n
    }

    pub fn greet(&self, who: String) -> String {
        format!("{}{who}", self.prefix)
    }

    pub fn bump(&mut self) -> Result<u64, Boom> {
        self.n += 1;
        if self.n == 3 {
            Err(Boom("three"))
        } else {
            Ok(self.n)
        }
    }

    pub fn set(&mut self, n: u64) {
        self.n = n;
    }

    pub fn io(&self, fail: bool) -> std::io::Result<u8> {
        if fail {
            Err(std::io::Error::other("io"))
        } else {
            Ok(7)
        }
    }

    pub fn swap((a, b): (u8, u8), _: ()) -> (u8, u8) {
        (b, a)
    }

    pub fn pair(&self, (a, b): (u64, u64)) -> u64 {
        a + b + self.n
    }

    pub fn name(&self) -> &'static str {
        "echo"
    }

    pub async fn later(&self, x: u64) -> u64 {
        x * 2
    }

    pub async fn later_mut(&mut self) -> u64 {
        self.n += 10;
        self.helper()
    }

    pub async fn reset(&mut self) {
        self.n = 0;
    }

    fn helper(&self) -> u64 {
        self.n
    }
}

#[test]
fn every_mode_runs_every_kind_of_method() {
    for mode in [Mode::Sync, Mode::Thread, Mode::Async] {
        let h = Echo::options()
            .mode(mode)
            .max_workers(1)
            .init(1, "hi ".into())
            .unwrap();
        assert_eq!(h.ping(41).result().unwrap(), 42, "{mode}");
        assert_eq!(h.greet("bob").result().unwrap(), "hi bob");
        assert_eq!(h.bump().result().unwrap(), 2);
        assert!(matches!(
            h.bump().result(),
            Err(Error::Method(Boom("three")))
        ));
        assert_eq!(h.later(4).result().unwrap(), 8);
        assert_eq!(h.later_mut().result().unwrap(), 13);
        h.set(5).result().unwrap();
        assert_eq!(h.pair((1, 2)).result().unwrap(), 8);
        assert_eq!(h.io(false).result().unwrap(), 7);
        assert!(matches!(h.io(true).result(), Err(Error::Method(e)) if e.to_string() == "io"));
        assert_eq!(h.name().result().unwrap(), "echo");
        h.reset().result().unwrap();
        assert_eq!(h.ping(1).result().unwrap(), 1);
        assert!(!h.is_stopped());
        h.stop().unwrap();
        assert!(h.is_stopped());
        assert!(matches!(h.ping(1).result(), Err(Error::Stopped)));
    }
}

#[test]
fn the_type_still_works_directly() {
    let mut e = Echo::new(1, String::new());
    assert_eq!(e.ping(1), 2);
    assert_eq!(e.bump(), Ok(2));
    assert_eq!(Echo::swap((1, 2), ()), (2, 1));
}

#[test]
fn blocking_view_waits_for_results() {
    let h = Echo::options().init(1, String::new()).unwrap();
    let b = h.blocking();
    assert_eq!(b.ping(1).unwrap(), 2);
    assert_eq!(b.later(3).unwrap(), 6);
    let _: Result<u64, Error<Boom>> = b.bump();
    h.stop().unwrap();
}

#[test]
fn handle_clones_share_the_pool() {
    let h = Echo::options()
        .max_workers(2)
        .init(0, String::new())
        .unwrap();
    let h2 = h.clone();
    assert_eq!(h2.ping(3).result().unwrap(), 3);
    assert!(format!("{h:?}").starts_with("EchoHandle"));
    assert!(format!("{:?}", Echo::options()).starts_with("EchoOptions"));
    assert_eq!(h.stats().max_workers, 2);
    h.stop().unwrap();
    assert!(h2.is_stopped());
}

const _: () = {
    const fn assert_send_sync_clone<T: Send + Sync + Clone + 'static>() {}
    assert_send_sync_clone::<EchoHandle>();
    assert_send_sync_clone::<CacheHandle<String, u32>>();
};

pub struct Fussy;

#[concurry::worker]
impl Fussy {
    pub fn new(ok: bool) -> Result<Self, Boom> {
        if ok { Ok(Fussy) } else { Err(Boom("no")) }
    }

    pub fn hello(&self) -> &'static str {
        "hello"
    }
}

#[test]
fn constructor_errors_surface_from_init() {
    for mode in [Mode::Sync, Mode::Thread, Mode::Async] {
        let err = Fussy::options().mode(mode).init(false).unwrap_err();
        assert!(matches!(err, Error::Method(Boom("no"))), "{mode}: {err:?}");
        let h = Fussy::options().mode(mode).init(true).unwrap();
        assert_eq!(h.hello().result().unwrap(), "hello");
        h.stop().unwrap();
    }
}

pub struct Cache<K, V> {
    map: HashMap<K, V>,
}

#[concurry::worker(max_workers = 1, mode = "sync")]
impl<K: Hash + Eq + Send + Sync + 'static, V> Cache<K, V>
where
    V: Clone + Send + Sync + 'static,
{
    pub fn new() -> Self {
        Cache {
            map: HashMap::new(),
        }
    }

    pub fn put(&mut self, k: K, v: V) -> Option<V> {
        self.map.insert(k, v)
    }

    pub fn get(&self, k: K) -> Option<V> {
        self.map.get(&k).cloned()
    }

    pub async fn len(&self) -> usize {
        self.map.len()
    }
}

#[test]
fn generic_workers_carry_their_generics() {
    let h: CacheHandle<String, u32> = Cache::options().init().unwrap();
    assert_eq!(h.put(String::from("a"), 1).result().unwrap(), None);
    assert_eq!(h.put(String::from("a"), 2).result().unwrap(), Some(1));
    assert_eq!(h.get(String::from("a")).result().unwrap(), Some(2));
    assert_eq!(h.blocking().len().unwrap(), 1);
    assert_eq!(h.stats().max_workers, 1);
    assert_eq!(h.stats().mode, Mode::Sync);
    h.stop().unwrap();
}

pub struct Named;

#[concurry::worker(
    mode = "async",
    max_workers = 3,
    load_balancing = "least_active",
    name = "named-pool"
)]
impl Named {
    pub fn new() -> Self {
        Named
    }

    pub async fn id(&self) -> u8 {
        1
    }
}

#[test]
fn macro_defaults_apply_to_options() {
    let h = Named::options().init().unwrap();
    let stats = h.stats();
    assert_eq!(stats.max_workers, 3);
    assert_eq!(stats.mode, Mode::Async);
    assert_eq!(stats.load_balancing, LoadBalancing::LeastActive);
    assert_eq!(stats.name, "named-pool");
    assert_eq!(h.id().result().unwrap(), 1);
    h.stop().unwrap();
}

#[test]
fn promises_chain_as_arguments() {
    for mode in [Mode::Sync, Mode::Thread, Mode::Async] {
        let h = Echo::options()
            .mode(mode)
            .max_workers(1)
            .init(1, String::new())
            .unwrap();
        let two = h.ping(1);
        let three = h.ping(two);
        assert_eq!(h.ping(three).result().unwrap(), 4, "{mode}");
        assert_eq!(h.blocking().later(h.ping(1)).unwrap(), 4);
        assert_eq!(h.greet(h.greet("a")).result().unwrap(), "a");
        let s = String::from("b");
        assert_eq!(h.greet(&s).result().unwrap(), "b");
        h.stop().unwrap();
    }
}

#[test]
fn a_failed_promise_argument_fails_the_call_as_upstream() {
    for mode in [Mode::Sync, Mode::Thread, Mode::Async] {
        let h = Echo::options()
            .mode(mode)
            .max_workers(1)
            .init(1, String::new())
            .unwrap();
        let failed = h.bump(); // 2
        let _ = failed.result();
        let err = h.bump(); // 3: fails
        let upstream = h.ping(err);
        let out = upstream.result();
        assert!(
            matches!(out, Err(Error::Upstream { .. })),
            "{mode}: {out:?}"
        );
        h.stop().unwrap();
    }
}
