//! [`ProgressIter`]: an iterator that ticks a bar per item.

use std::iter::FusedIterator;

use super::bar::ProgressBar;
use super::config::Progress;

impl ProgressBar {
    /// Wraps an iterator so that every item it yields counts as one success; the bar finishes
    /// when the iterator ends (`✔ done`), or as `■ stopped` when it is dropped before.
    ///
    /// The total is the iterator's exact size when it knows it (`size_hint`), else the bar is a
    /// spinner. [`wrap_with`](ProgressBar::wrap_with) takes a message or a [`Progress`].
    ///
    /// ```
    /// use concurry::ProgressBar;
    ///
    /// let squares: Vec<u64> = ProgressBar::wrap(0..100_u64).map(|i| i * i).collect();
    /// assert_eq!(squares.len(), 100);
    /// ```
    pub fn wrap<I: IntoIterator>(iter: I) -> ProgressIter<I::IntoIter> {
        Self::wrap_with(iter, Progress::default())
    }

    /// [`wrap`](ProgressBar::wrap) with a message or a full [`Progress`].
    ///
    /// ```
    /// use concurry::ProgressBar;
    ///
    /// let total: u32 = ProgressBar::wrap_with(vec![1, 2, 3], "summing").sum();
    /// assert_eq!(total, 6);
    /// ```
    pub fn wrap_with<I: IntoIterator>(
        iter: I,
        progress: impl Into<Progress>,
    ) -> ProgressIter<I::IntoIter> {
        let iter = iter.into_iter();
        let exact = match iter.size_hint() {
            (lo, Some(hi)) if lo == hi => u64::try_from(lo).ok(),
            _ => None,
        };
        ProgressIter {
            bar: ProgressBar::start(progress.into(), exact),
            iter,
        }
    }
}

/// An iterator counting each item on a [`ProgressBar`]; made by [`ProgressBar::wrap`].
///
/// ```
/// let mut it = concurry::ProgressBar::wrap(["a", "b"]);
/// assert_eq!(it.next(), Some("a"));
/// assert_eq!(it.next(), Some("b"));
/// assert_eq!(it.next(), None); // the bar finishes here
/// ```
#[derive(Debug)]
#[must_use = "iterators are lazy and do nothing unless consumed"]
pub struct ProgressIter<I> {
    bar: ProgressBar,
    iter: I,
}

impl<I> ProgressIter<I> {
    /// The bar, for instance to give it a total the iterator does not know.
    ///
    /// ```
    /// let it = concurry::ProgressBar::wrap_with("a b c".split(' '), "words");
    /// it.bar().set_total(3);
    /// assert_eq!(it.count(), 3);
    /// ```
    pub fn bar(&self) -> &ProgressBar {
        &self.bar
    }

    /// The wrapped iterator.
    ///
    /// ```
    /// let it = concurry::ProgressBar::wrap(0..3);
    /// assert_eq!(it.into_inner().count(), 3);
    /// ```
    pub fn into_inner(self) -> I {
        self.iter
    }
}

impl<I: Iterator> Iterator for ProgressIter<I> {
    type Item = I::Item;

    fn next(&mut self) -> Option<I::Item> {
        let item = self.iter.next();
        match item {
            Some(_) => self.bar.inc_ok(),
            None => self.bar.finish(),
        }
        item
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.iter.size_hint()
    }
}

impl<I: ExactSizeIterator> ExactSizeIterator for ProgressIter<I> {}

impl<I: FusedIterator> FusedIterator for ProgressIter<I> {}
