//! Progress bars over indicatif, counting successes and failures separately.
//!
//! - [`ProgressBar`]: a bar (`✓ 95 ✗ 5`), drawn on stderr only when it is a terminal,
//!   stacked with the other bars alive at the same time; [`ProgressBar::wrap`] counts the
//!   items of an iterator ([`ProgressIter`]).
//! - [`Progress`]: how a bar is shown (message, total, plain [`LogEvery`] lines, draw target);
//!   what `gather(..).progress(..)` and the other combinators take.

mod bar;
mod config;
mod iter;
mod log;
mod multi;

pub use bar::ProgressBar;
pub use config::{LogEvery, Progress};
pub use iter::ProgressIter;
