//! [`map_async`] and [`gather_limited`]: many plain futures, at most `limit` at a time, results
//! in input order (toolcase's `map_async`, mtaio's `TaskExecutor.gather(.., limit=)`).
//!
//! Thin over `futures`' [`buffered`](futures_util::StreamExt::buffered): the futures run
//! concurrently inside the awaiting task (no spawning, so they may borrow). For parallelism
//! across threads, make each future a call on a pool (its `Promise`) or a `tokio::spawn`.

use std::future::Future;

use futures_util::StreamExt;

use crate::error::ConfigError;

fn check_limit(limit: usize) -> Result<(), ConfigError> {
    if limit == 0 {
        return Err(ConfigError::new(
            "limit",
            "0",
            "run at least 1 future at a time (0 would never start any)",
        ));
    }
    Ok(())
}

/// Applies the async function `f` to every item, with at most `limit` calls in flight, and
/// returns the outputs in the order of `items`.
///
/// # Errors
/// [`ConfigError`] if `limit` is 0 (checked before anything runs).
///
/// ```
/// # #[tokio::main] async fn main() {
/// use std::sync::atomic::{AtomicUsize, Ordering};
///
/// let running = AtomicUsize::new(0);
/// let peak = AtomicUsize::new(0);
/// let out = concurry::map_async(
///     |x: u64| {
///         let (running, peak) = (&running, &peak);
///         async move {
///             let now = running.fetch_add(1, Ordering::SeqCst) + 1;
///             peak.fetch_max(now, Ordering::SeqCst);
///             tokio::task::yield_now().await;
///             running.fetch_sub(1, Ordering::SeqCst);
///             x * 10
///         }
///     },
///     1..=20,
///     3,
/// )
/// .await
/// .unwrap();
/// assert_eq!(out, (1..=20).map(|x| x * 10).collect::<Vec<_>>());
/// assert!(peak.load(Ordering::SeqCst) <= 3);
/// # }
/// ```
pub async fn map_async<I, F, Fut>(
    f: F,
    items: I,
    limit: usize,
) -> Result<Vec<Fut::Output>, ConfigError>
where
    I: IntoIterator,
    F: FnMut(I::Item) -> Fut,
    Fut: Future,
{
    check_limit(limit)?;
    Ok(futures_util::stream::iter(items)
        .map(f)
        .buffered(limit)
        .collect()
        .await)
}

/// Awaits every future, with at most `limit` polled at a time, and returns their outputs in
/// input order (a gather with a concurrency limit over plain futures; for [`Promise`]s of pool
/// calls, which already run on their workers, see [`gather`](crate::gather)). A future is
/// started only when one of the running ones finished.
///
/// # Errors
/// [`ConfigError`] if `limit` is 0 (checked before anything runs).
///
/// ```
/// # #[tokio::main] async fn main() {
/// let futures = (0..5).map(|i| async move { i * i });
/// assert_eq!(
///     concurry::gather_limited(futures, 2).await.unwrap(),
///     vec![0, 1, 4, 9, 16]
/// );
/// assert!(concurry::gather_limited(Vec::<std::future::Ready<u8>>::new(), 0).await.is_err());
/// # }
/// ```
///
/// [`Promise`]: crate::Promise
pub async fn gather_limited<I>(
    futures: I,
    limit: usize,
) -> Result<Vec<<I::Item as Future>::Output>, ConfigError>
where
    I: IntoIterator,
    I::Item: Future,
{
    check_limit(limit)?;
    Ok(futures_util::stream::iter(futures)
        .buffered(limit)
        .collect()
        .await)
}
