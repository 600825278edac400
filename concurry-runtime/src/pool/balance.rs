//! Picking a worker for each call, per [`LoadBalancing`].

use super::stats::Counters;
use crate::options::LoadBalancing;
use crate::sync::{AtomicUsize, Ordering};

/// Chooses among `counters.len()` workers.
#[derive(Debug)]
pub(crate) struct Balancer {
    algorithm: LoadBalancing,
    next: AtomicUsize,
}

impl Balancer {
    pub(crate) fn new(algorithm: LoadBalancing) -> Self {
        Balancer {
            algorithm,
            next: AtomicUsize::new(0),
        }
    }

    pub(crate) fn algorithm(&self) -> LoadBalancing {
        self.algorithm
    }

    pub(crate) fn pick(&self, counters: &[Counters]) -> usize {
        let n = counters.len();
        if n == 1 {
            return 0;
        }
        match self.algorithm {
            LoadBalancing::RoundRobin => self.next.fetch_add(1, Ordering::Relaxed) % n,
            LoadBalancing::LeastActive => self.argmin(counters, Counters::in_flight),
            LoadBalancing::LeastTotal => self.argmin(counters, Counters::dispatched),
            LoadBalancing::Random => crate::rand::below(n),
        }
    }

    /// The worker with the smallest `key`; the scan starts at a rotating offset so ties are
    /// spread round-robin instead of piling onto worker 0.
    fn argmin(&self, counters: &[Counters], key: impl Fn(&Counters) -> u64) -> usize {
        let n = counters.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let mut best = start;
        let mut best_key = key(&counters[start]);
        for offset in 1..n {
            if best_key == 0 {
                break;
            }
            let i = (start + offset) % n;
            let k = key(&counters[i]);
            if k < best_key {
                best = i;
                best_key = k;
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counters(n: usize) -> Vec<Counters> {
        (0..n).map(|_| Counters::default()).collect()
    }

    #[test]
    fn round_robin_cycles() {
        let b = Balancer::new(LoadBalancing::RoundRobin);
        let c = counters(3);
        let picks: Vec<_> = (0..6).map(|_| b.pick(&c)).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn least_active_avoids_busy_worker() {
        let b = Balancer::new(LoadBalancing::LeastActive);
        let c = counters(3);
        for _ in 0..5 {
            c[1].on_dispatch();
        }
        for _ in 0..20 {
            let i = b.pick(&c);
            assert_ne!(i, 1);
            c[i].on_dispatch();
            c[i].on_complete();
        }
    }

    #[test]
    fn least_total_evens_out() {
        let b = Balancer::new(LoadBalancing::LeastTotal);
        let c = counters(4);
        for _ in 0..40 {
            let i = b.pick(&c);
            c[i].on_dispatch();
        }
        assert!(c.iter().all(|c| c.dispatched() == 10));
    }

    #[test]
    fn random_covers_all_workers() {
        let b = Balancer::new(LoadBalancing::Random);
        let c = counters(4);
        let mut seen = [0usize; 4];
        for _ in 0..4000 {
            seen[b.pick(&c)] += 1;
        }
        // Each expected 1000; bounds only catch a broken generator.
        assert!(seen.iter().all(|&k| (700..1300).contains(&k)), "{seen:?}");
    }
}
