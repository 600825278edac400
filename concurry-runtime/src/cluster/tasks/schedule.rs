//! Which priority level a node fetches from next: stride scheduling, weights 8:4:2:1 among
//! the levels that have work. A level found empty is skipped until its doorbell rings (a
//! task was published to it) or the periodic recheck; a level coming back gets no credit
//! for the time it was empty, so it cannot burst ahead of the others.

/// The weights of Critical, High, Normal, Low.
pub(crate) const WEIGHTS: [u64; 4] = [8, 4, 2, 1];
const SCALE: u64 = 840;

#[derive(Debug, Clone, Default)]
pub(crate) struct Levels {
    pass: [u64; 4],
    empty: [bool; 4],
}

impl Levels {
    /// The level to fetch from next (lowest pass; ties to the higher priority), or `None`
    /// when every level was found empty.
    pub(crate) fn next(&self) -> Option<usize> {
        (0..4)
            .filter(|&l| !self.empty[l])
            .min_by_key(|&l| (self.pass[l], l))
    }

    /// A fetch from `level` brought tasks.
    pub(crate) fn served(&mut self, level: usize) {
        self.pass[level] += SCALE / WEIGHTS[level];
    }

    /// True while `level` is taken for empty (skipped until rung).
    pub(crate) fn is_empty(&self, level: usize) -> bool {
        self.empty[level]
    }

    /// A fetch from `level` found nothing.
    pub(crate) fn found_empty(&mut self, level: usize) {
        self.empty[level] = true;
    }

    /// `level` may have tasks again.
    pub(crate) fn ring(&mut self, level: usize) {
        if !self.empty[level] {
            return;
        }
        let floor = (0..4)
            .filter(|&l| !self.empty[l])
            .map(|l| self.pass[l])
            .min();
        self.empty[level] = false;
        if let Some(floor) = floor {
            self.pass[level] = self.pass[level].max(floor);
        }
    }

    /// Every level may have tasks again (the periodic recheck: redeliveries and delays).
    pub(crate) fn ring_all(&mut self) {
        for l in 0..4 {
            self.ring(l);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Serves `queued` tasks per level, one per turn, and gives the order of levels served.
    fn simulate(mut queued: [u32; 4]) -> Vec<usize> {
        let mut levels = Levels::default();
        let mut order = Vec::new();
        while let Some(l) = levels.next() {
            if queued[l] == 0 {
                levels.found_empty(l);
                continue;
            }
            queued[l] -= 1;
            levels.served(l);
            order.push(l);
        }
        order
    }

    #[test]
    fn a_flood_of_high_does_not_starve_low() {
        let order = simulate([0, 1000, 0, 5]);
        let last_low = order.iter().rposition(|&l| l == 3).unwrap();
        // Weights 4:1: a Low task every 5 turns.
        assert!(last_low < 30, "last low served at turn {last_low}");
    }

    #[test]
    fn shares_follow_the_weights_while_every_level_has_work() {
        let order = simulate([1000; 4]);
        let first = &order[..150];
        let count = |l| first.iter().filter(|&&x| x == l).count();
        assert_eq!(
            [count(0), count(1), count(2), count(3)],
            [80, 40, 20, 10],
            "{first:?}"
        );
    }

    #[test]
    fn a_level_coming_back_gets_no_credit_for_its_idle_time() {
        let mut levels = Levels::default();
        levels.found_empty(0);
        levels.found_empty(1);
        levels.found_empty(2);
        for _ in 0..100 {
            levels.served(3);
        }
        levels.ring(0);
        // Critical starts at Low's pass: it does not get 100 turns in a row.
        let mut crit = 0;
        for _ in 0..20 {
            let l = levels.next().unwrap();
            levels.served(l);
            if l == 0 {
                crit += 1;
            }
        }
        assert!((15..20).contains(&crit), "{crit}");
    }

    #[test]
    fn all_empty_is_none_until_rung() {
        let mut levels = Levels::default();
        for l in 0..4 {
            levels.found_empty(l);
        }
        assert_eq!(levels.next(), None);
        levels.ring(2);
        assert_eq!(levels.next(), Some(2));
        levels.ring_all();
        assert_eq!(levels.next(), Some(0));
    }
}
