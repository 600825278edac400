use std::collections::HashMap;
use std::hash::Hash;

pub struct Cache<K, V> {
    map: HashMap<K, V>,
}

#[concurry::worker]
impl<K: Hash + Eq + Clone + Send + Sync + 'static, V> Cache<K, V>
where
    V: Clone + Send + Sync + 'static,
{
    pub fn new(seed: Vec<(K, V)>) -> Self {
        Cache {
            map: seed.into_iter().collect(),
        }
    }

    pub fn get(&self, k: K) -> Option<V> {
        self.map.get(&k).cloned()
    }

    pub fn put(&mut self, k: K, v: V) {
        self.map.insert(k, v);
    }

    pub async fn keys(&self) -> Vec<K> {
        self.map.keys().cloned().collect()
    }
}

pub struct Wrapper<const N: usize>;

#[concurry::worker]
impl<const N: usize> Wrapper<N> {
    pub fn new() -> Self {
        Wrapper
    }

    pub fn n(&self) -> usize {
        N
    }
}

fn main() {
    let cache: CacheHandle<u8, String> = Cache::options()
        .max_workers(1)
        .init(vec![(1, "a".into())])
        .unwrap();
    let _: CacheOptions<u8, String> = Cache::options();
    cache.put(2, "b").result().unwrap();
    assert_eq!(cache.get(2).result().unwrap().as_deref(), Some("b"));
    assert_eq!(cache.blocking().keys().unwrap().len(), 2);
    let _: CacheBlocking<'_, u8, String> = cache.blocking();
    cache.stop().unwrap();

    let w: WrapperHandle<3> = Wrapper::<3>::options().init().unwrap();
    assert_eq!(w.blocking().n().unwrap(), 3);
}
