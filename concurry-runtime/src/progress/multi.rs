//! The process-wide stack of bars on stderr.

use std::io::IsTerminal;

use crate::sync::OnceLock;

/// Whether stderr is a terminal, checked once: bars are drawn only then.
pub(crate) fn stderr_is_terminal() -> bool {
    static IS_TERMINAL: OnceLock<bool> = OnceLock::new();
    *IS_TERMINAL.get_or_init(|| std::io::stderr().is_terminal())
}

/// Every bar drawn on stderr joins this group, so bars alive at the same time stack instead of
/// overwriting each other.
pub(crate) fn global() -> &'static indicatif::MultiProgress {
    static MULTI: OnceLock<indicatif::MultiProgress> = OnceLock::new();
    MULTI.get_or_init(indicatif::MultiProgress::new)
}
