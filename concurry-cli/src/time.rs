//! Times for humans: ages (`3.2s ago`) and UTC timestamps (`2026-12-01 18:04:05.120Z`),
//! without a date library.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, now.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// `12ms`, `4.2s`, `3m05s`, `2h07m`, `3d04h`.
pub(crate) fn span(d: Duration) -> String {
    let s = d.as_secs();
    if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else if d < Duration::from_secs(60) {
        format!("{:.1}s", d.as_secs_f64())
    } else if s < 3600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else if s < 86_400 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else {
        format!("{}d{:02}h", s / 86_400, (s % 86_400) / 3600)
    }
}

/// How long before now `ms` was: `3.2s ago`, or `in 5m00s` for a time to come.
pub(crate) fn ago(ms: u64, now: u64) -> String {
    if ms > now {
        format!("in {}", span(Duration::from_millis(ms - now)))
    } else {
        format!("{} ago", span(Duration::from_millis(now - ms)))
    }
}

/// `2026-12-01 18:04:05.120Z` (UTC).
pub(crate) fn stamp(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        ms % 1000
    )
}

/// Days since 1970-01-01 as a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_are_utc_dates() {
        assert_eq!(stamp(0), "1970-01-01 00:00:00.000Z");
        assert_eq!(stamp(951_782_400_000), "2000-02-29 00:00:00.000Z");
        assert_eq!(stamp(1_796_148_245_120), "2026-12-01 18:04:05.120Z");
    }

    #[test]
    fn spans_grow_units() {
        assert_eq!(span(Duration::from_millis(420)), "420ms");
        assert_eq!(span(Duration::from_millis(4200)), "4.2s");
        assert_eq!(span(Duration::from_secs(185)), "3m05s");
        assert_eq!(span(Duration::from_secs(7620)), "2h07m");
        assert_eq!(ago(1_000, 4_200), "3.2s ago");
        assert_eq!(ago(10_000, 4_000), "in 6.0s");
    }
}
