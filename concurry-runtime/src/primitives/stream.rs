//! Stream helpers, thin over `futures` and `tokio-stream`: [`merge_streams`] (futures'
//! `select_all`), [`throttle_stream`] (tokio-stream's `throttle`), [`batch_stream`]
//! (tokio-stream's `chunks_timeout`) and [`buffer_stream`] (a task prefetching into a bounded
//! tokio channel). They check their arguments (a [`ConfigError`] instead of tokio-stream's
//! panic on a zero size) and name the seeds' functions.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::{Stream, StreamExt};

use crate::error::ConfigError;
use crate::runtime::runtime;

/// Merges streams into one that yields each item as soon as any stream has one, and ends when
/// all have ended (futures' [`select_all`](futures_util::stream::select_all())).
///
/// ```
/// # #[tokio::main] async fn main() {
/// use futures_util::{StreamExt, stream};
/// let merged = concurry::merge_streams([stream::iter(vec![1, 3]), stream::iter(vec![2, 4])]);
/// let mut got: Vec<i32> = merged.collect().await;
/// got.sort();
/// assert_eq!(got, vec![1, 2, 3, 4]);
/// # }
/// ```
pub fn merge_streams<I>(streams: I) -> futures_util::stream::SelectAll<I::Item>
where
    I: IntoIterator,
    I::Item: Stream + Unpin,
{
    futures_util::stream::select_all(streams)
}

/// At most `per_second` items a second: each item waits until `1 / per_second` after the one
/// before (tokio-stream's [`throttle`](tokio_stream::StreamExt::throttle); tokio's clock, so
/// paused time in tests moves it). Made or polled outside any runtime, its timer is
/// concurry's runtime's.
///
/// # Errors
/// [`ConfigError`] if `per_second` is not a finite number above 0.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// use futures_util::{StreamExt, stream};
/// let start = tokio::time::Instant::now();
/// let items: Vec<u8> = concurry::throttle_stream(stream::iter(0..5), 10.0).unwrap().collect().await;
/// assert_eq!(items, vec![0, 1, 2, 3, 4]);
/// assert!(start.elapsed() >= std::time::Duration::from_millis(400));
/// assert!(concurry::throttle_stream(stream::iter(0..5), 0.0).is_err());
/// # }
/// ```
pub fn throttle_stream<S: Stream>(
    stream: S,
    per_second: f64,
) -> Result<impl Stream<Item = S::Item>, ConfigError> {
    if !(per_second.is_finite() && per_second > 0.0) {
        return Err(ConfigError::new(
            "per_second",
            per_second.to_string(),
            "give a finite rate above 0 items per second",
        ));
    }
    let gap = Duration::from_secs_f64(1.0 / per_second);
    let _ctx = match tokio::runtime::Handle::try_current() {
        Ok(_) => None,
        Err(_) => Some(runtime().enter()),
    };
    Ok(InRuntime(Box::pin(tokio_stream::StreamExt::throttle(
        stream, gap,
    ))))
}

/// Groups items into batches of `size`, or fewer once `timeout` passed since a batch's first
/// item, or at the end of the stream; never an empty batch (tokio-stream's
/// [`chunks_timeout`](tokio_stream::StreamExt::chunks_timeout)). Its timer is tokio's (paused
/// time in tests moves it); polled outside any runtime, it uses concurry's.
///
/// # Errors
/// [`ConfigError`] if `size` is 0.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// use std::time::Duration;
/// use futures_util::{StreamExt, stream};
/// let batches: Vec<Vec<u8>> = concurry::batch_stream(stream::iter(0..7), 3, Duration::from_secs(5))
///     .unwrap()
///     .collect()
///     .await;
/// assert_eq!(batches, vec![vec![0, 1, 2], vec![3, 4, 5], vec![6]]);
/// assert!(concurry::batch_stream(stream::iter(0..7), 0, Duration::from_secs(5)).is_err());
/// # }
/// ```
pub fn batch_stream<S: Stream>(
    stream: S,
    size: usize,
    timeout: Duration,
) -> Result<impl Stream<Item = Vec<S::Item>>, ConfigError> {
    if size == 0 {
        return Err(ConfigError::new(
            "size",
            "0",
            "a batch holds at least 1 item",
        ));
    }
    Ok(tokio_stream::StreamExt::chunks_timeout(
        stream, size, timeout,
    ))
}

/// Prefetches up to `maxsize` items of `stream` ahead of the consumer: a task (on the current
/// runtime, or concurry's outside any) pulls from `stream` into a bounded channel while the
/// consumer works on earlier items. Dropping the returned stream stops the task.
///
/// # Errors
/// [`ConfigError`] if `maxsize` is 0.
///
/// ```
/// # #[tokio::main] async fn main() {
/// use futures_util::{StreamExt, stream};
/// let buffered = concurry::buffer_stream(stream::iter(0..100), 16).unwrap();
/// assert_eq!(buffered.collect::<Vec<_>>().await, (0..100).collect::<Vec<_>>());
/// # }
/// ```
pub fn buffer_stream<S>(
    stream: S,
    maxsize: usize,
) -> Result<tokio_stream::wrappers::ReceiverStream<S::Item>, ConfigError>
where
    S: Stream + Send + 'static,
    S::Item: Send + 'static,
{
    if maxsize == 0 {
        return Err(ConfigError::new(
            "maxsize",
            "0",
            "buffer at least 1 item (without a buffer, consume the stream directly)",
        ));
    }
    let (tx, rx) = tokio::sync::mpsc::channel(maxsize);
    let pump = async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(x) = stream.next().await {
            if tx.send(x).await.is_err() {
                break; // the consumer is gone
            }
        }
    };
    match tokio::runtime::Handle::try_current() {
        Ok(h) => drop(h.spawn(pump)),
        Err(_) => drop(runtime().spawn(pump)),
    }
    Ok(tokio_stream::wrappers::ReceiverStream::new(rx))
}

/// Polls a timed stream inside concurry's runtime when the caller is in none, so tokio's
/// timers it creates while polled (a batch's deadline) do not panic under another executor.
struct InRuntime<S>(Pin<Box<S>>);

impl<S: Stream> Stream for InRuntime<S> {
    type Item = S::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let _ctx = match tokio::runtime::Handle::try_current() {
            Ok(_) => None,
            Err(_) => Some(runtime().enter()),
        };
        self.0.as_mut().poll_next(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}
