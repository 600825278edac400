//! A node's doorbells: one per priority level, a core subscription on the level's subjects
//! that rings at each publish. A bell is subscribed when its level is found empty (an idle
//! level learns of its next task at once) and dropped once it has rung [`WASTED`] times
//! while its level was known to have work: a busy level costs no bell traffic (a
//! subscription on every task's subject brings each task's message to every node a second
//! time), and a level that empties now and then keeps its bell.
//!
//! Subscribing races a task published between the empty fetch and the subscription: the
//! level is therefore fetched once more after its bell is subscribed
//! ([`Doorbells::found_empty`]).

use std::task::{Context, Poll};

use futures_util::{FutureExt, StreamExt};

/// Rings in a row while the level had work, after which its bell is dropped.
const WASTED: u32 = 64;

/// One node's doorbells.
pub(crate) struct Doorbells {
    client: async_nats::Client,
    /// Each level's subjects (every task of the level).
    subjects: [String; 4],
    bells: [Option<async_nats::Subscriber>; 4],
    /// Rings in a row that found the level with work already.
    wasted: [u32; 4],
}

impl Doorbells {
    pub(crate) fn new(client: async_nats::Client, subjects: [String; 4]) -> Doorbells {
        Doorbells {
            client,
            subjects,
            bells: [None, None, None, None],
            wasted: [0; 4],
        }
    }

    /// A fetch found `level` empty: subscribes its bell unless it has one. True if it was
    /// subscribed now, so the level must be fetched once more (a task published before that
    /// rang nothing).
    pub(crate) async fn found_empty(&mut self, level: usize) -> bool {
        self.wasted[level] = 0;
        if self.bells[level].is_some() {
            return false;
        }
        match self.client.subscribe(self.subjects[level].clone()).await {
            Ok(sub) => {
                self.bells[level] = Some(sub);
                true
            }
            Err(e) => {
                tracing::warn!("concurry node: task doorbell: {e}");
                false
            }
        }
    }

    /// `level` rang; `useful` if the level was taken for empty. A bell that keeps ringing
    /// for a level with work is dropped.
    pub(crate) fn rang(&mut self, level: usize, useful: bool) {
        if useful {
            self.wasted[level] = 0;
            return;
        }
        self.wasted[level] += 1;
        if self.wasted[level] >= WASTED {
            self.bells[level] = None;
            self.wasted[level] = 0;
        }
    }

    /// The next level whose bell rings, waiting for one (forever if there is none).
    pub(crate) async fn rung(&mut self) -> usize {
        std::future::poll_fn(|cx| self.poll_rung(cx)).await
    }

    /// A level whose bell has rung already, if any (without waiting).
    pub(crate) fn rung_now(&mut self) -> Option<usize> {
        self.rung().now_or_never()
    }

    fn poll_rung(&mut self, cx: &mut Context<'_>) -> Poll<usize> {
        for level in 0..4 {
            if let Some(bell) = self.bells[level].as_mut() {
                match bell.poll_next_unpin(cx) {
                    Poll::Ready(Some(_)) => return Poll::Ready(level),
                    // The connection closed: subscribed again when the level is next found
                    // empty.
                    Poll::Ready(None) => self.bells[level] = None,
                    Poll::Pending => {}
                }
            }
        }
        Poll::Pending
    }
}
