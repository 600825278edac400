//! The async side of `TaskMap`: it is a `Stream` too.

use futures_util::StreamExt;

use crate::options::Mode;
use crate::task::TaskWorker;

#[tokio::test]
async fn a_map_is_a_stream_in_order_and_unordered() {
    for mode in [Mode::Sync, Mode::Thread, Mode::Async] {
        let pool = TaskWorker::options().mode(mode).init().unwrap();
        let ordered = pool
            .map_async(|x: u32| async move { x * 2 }, 0..20)
            .window(3);
        let out: Vec<u32> = StreamExt::collect::<Vec<_>>(ordered)
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(out, (0..20).map(|x| x * 2).collect::<Vec<_>>(), "{mode}");
        let unordered = pool.map_unordered(|x: u32| x + 1, 0..20);
        let mut out: Vec<u32> = StreamExt::collect::<Vec<_>>(unordered)
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        out.sort_unstable();
        assert_eq!(out, (1..21).collect::<Vec<_>>(), "{mode}");
    }
}
