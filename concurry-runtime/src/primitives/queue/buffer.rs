//! How each queue orders its items: [`Fifo`], [`Lifo`], [`Prio`] (lowest priority first,
//! FIFO within a level).

use std::collections::{BinaryHeap, VecDeque};

/// How a queue orders its items.
pub(super) trait Buffer: Default {
    type In;
    type Out;
    fn push(&mut self, x: Self::In);
    fn pop(&mut self) -> Option<Self::Out>;
    fn len(&self) -> usize;
}

/// First in, first out.
#[derive(Debug)]
pub(super) struct Fifo<T>(VecDeque<T>);

impl<T> Default for Fifo<T> {
    fn default() -> Self {
        Fifo(VecDeque::new())
    }
}

impl<T> Buffer for Fifo<T> {
    type In = T;
    type Out = T;
    fn push(&mut self, x: T) {
        self.0.push_back(x);
    }
    fn pop(&mut self) -> Option<T> {
        self.0.pop_front()
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}

/// Last in, first out.
#[derive(Debug)]
pub(super) struct Lifo<T>(Vec<T>);

impl<T> Default for Lifo<T> {
    fn default() -> Self {
        Lifo(Vec::new())
    }
}

impl<T> Buffer for Lifo<T> {
    type In = T;
    type Out = T;
    fn push(&mut self, x: T) {
        self.0.push(x);
    }
    fn pop(&mut self) -> Option<T> {
        self.0.pop()
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}

/// Lowest priority first; within a priority, in order of arrival.
pub(super) struct Prio<T, P> {
    heap: BinaryHeap<Entry<T, P>>,
    seq: u64,
}

impl<T, P: Ord> Default for Prio<T, P> {
    fn default() -> Self {
        Prio {
            heap: BinaryHeap::new(),
            seq: 0,
        }
    }
}

struct Entry<T, P> {
    priority: P,
    seq: u64,
    item: T,
}

impl<T, P: Ord> PartialEq for Entry<T, P> {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == std::cmp::Ordering::Equal
    }
}
impl<T, P: Ord> Eq for Entry<T, P> {}
impl<T, P: Ord> PartialOrd for Entry<T, P> {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl<T, P: Ord> Ord for Entry<T, P> {
    /// `BinaryHeap` pops the greatest: the lowest priority, then the oldest, is greatest.
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        o.priority.cmp(&self.priority).then(o.seq.cmp(&self.seq))
    }
}

impl<T, P: Ord> Buffer for Prio<T, P> {
    type In = (T, P);
    type Out = T;
    fn push(&mut self, (item, priority): (T, P)) {
        let seq = self.seq;
        self.seq += 1;
        self.heap.push(Entry {
            priority,
            seq,
            item,
        });
    }
    fn pop(&mut self) -> Option<T> {
        self.heap.pop().map(|e| e.item)
    }
    fn len(&self) -> usize {
        self.heap.len()
    }
}
