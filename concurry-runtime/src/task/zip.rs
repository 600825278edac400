//! [`zip`]: several iterables as one iterator of tuples, shortest wins.

/// Tuples of iterables that [`zip`] can combine: `(A, B)` up to `(A, B, C, D, E, F)`.
pub trait IntoZip {
    /// The tuple of iterators.
    type Iters;
    /// Turns each iterable into its iterator.
    fn into_zip(self) -> Zip<Self::Iters>;
}

/// The iterator [`zip`] returns: one tuple per step, until the shortest input ends.
#[derive(Debug, Clone)]
pub struct Zip<I> {
    iters: I,
}

/// Zips several iterables into one iterator of tuples, stopping at the shortest: what `map`
/// takes to call a function of several arguments (Python's `map(f, xs, ys)`).
///
/// ```
/// let pool = concurry::TaskWorker::options().init()?;
/// let names = ["a", "b", "c"];
/// let sums: Vec<String> = pool
///     .map(|(n, i): (&str, u32)| format!("{n}{i}"), concurry::zip((names, 1..)))
///     .collect::<Result<_, _>>()?;
/// assert_eq!(sums, ["a1", "b2", "c3"]);
/// # Ok::<(), concurry::Error>(())
/// ```
pub fn zip<Z: IntoZip>(iterables: Z) -> Zip<Z::Iters> {
    iterables.into_zip()
}

macro_rules! zip_tuple {
    ($($name:ident),+) => {
        impl<$($name: IntoIterator),+> IntoZip for ($($name,)+) {
            type Iters = ($($name::IntoIter,)+);
            #[allow(non_snake_case)]
            fn into_zip(self) -> Zip<Self::Iters> {
                let ($($name,)+) = self;
                Zip { iters: ($($name.into_iter(),)+) }
            }
        }

        impl<$($name: Iterator),+> Iterator for Zip<($($name,)+)> {
            type Item = ($($name::Item,)+);
            #[allow(non_snake_case)]
            fn next(&mut self) -> Option<Self::Item> {
                let ($($name,)+) = &mut self.iters;
                Some(($($name.next()?,)+))
            }

            #[allow(non_snake_case)]
            fn size_hint(&self) -> (usize, Option<usize>) {
                let ($($name,)+) = &self.iters;
                let mut lo = usize::MAX;
                let mut hi: Option<usize> = None;
                $(
                    let (l, h) = $name.size_hint();
                    lo = lo.min(l);
                    hi = match (hi, h) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                )+
                (lo, hi)
            }
        }
    };
}

zip_tuple!(A, B);
zip_tuple!(A, B, C);
zip_tuple!(A, B, C, D);
zip_tuple!(A, B, C, D, E);
zip_tuple!(A, B, C, D, E, F);
