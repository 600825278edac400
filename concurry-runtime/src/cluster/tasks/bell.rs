//! A node's doorbells: one per priority level, each a core subscription on the level's
//! subjects that ends after one message. A bell is armed only when its level is found
//! empty, so a level with work costs no bell traffic (a subscription on every task's
//! subject would bring each task's message to every node a second time), and an idle level
//! learns of its next task at once.
//!
//! Arming races a task published between the empty fetch and the subscription: the level is
//! therefore fetched once more after its bell is armed ([`Doorbells::found_empty`]).

use futures_util::stream::{BoxStream, SelectAll};
use futures_util::{FutureExt, StreamExt};

/// One node's doorbells.
pub(crate) struct Doorbells {
    client: async_nats::Client,
    /// Each level's subjects (every task of the level).
    subjects: [String; 4],
    armed: [bool; 4],
    /// The armed bells, each one item: `(level, true)` when it rings, `(level, false)`
    /// when it ends without ringing (the connection closed).
    bells: SelectAll<BoxStream<'static, (usize, bool)>>,
}

impl Doorbells {
    pub(crate) fn new(client: async_nats::Client, subjects: [String; 4]) -> Doorbells {
        Doorbells {
            client,
            subjects,
            armed: [false; 4],
            bells: SelectAll::new(),
        }
    }

    /// A fetch found `level` empty: arms its bell unless armed. True if it was armed now,
    /// so the level must be fetched once more (a task published before the bell was armed
    /// rang nothing).
    pub(crate) async fn found_empty(&mut self, level: usize) -> bool {
        if self.armed[level] {
            return false;
        }
        let mut sub = match self.client.subscribe(self.subjects[level].clone()).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("concurry node: task doorbell: {e}");
                return false;
            }
        };
        if let Err(e) = sub.unsubscribe_after(1).await {
            tracing::warn!("concurry node: task doorbell: {e}");
            return false;
        }
        self.armed[level] = true;
        let rung = futures_util::stream::once(async move { (level, sub.next().await.is_some()) });
        self.bells.push(rung.boxed());
        true
    }

    /// The next level whose bell rang, waiting for one (forever if none is armed).
    pub(crate) async fn rung(&mut self) -> usize {
        loop {
            match self.bells.next().await {
                Some((level, rang)) => {
                    self.armed[level] = false;
                    if rang {
                        return level;
                    }
                }
                None => std::future::pending::<()>().await,
            }
        }
    }

    /// A level whose bell has rung already, if any (without waiting).
    pub(crate) fn rung_now(&mut self) -> Option<usize> {
        loop {
            match self.bells.next().now_or_never() {
                Some(Some((level, rang))) => {
                    self.armed[level] = false;
                    if rang {
                        return Some(level);
                    }
                }
                _ => return None,
            }
        }
    }
}
