//! Cron expressions for periodic schedules: the standard 5-field syntax (minute hour
//! day-of-month month day-of-week) or 6 fields with seconds first, evaluated in UTC.
//!
//! Each field is `*` (or `?` in the day fields), a value, a range `a-b`, a step `*/n`,
//! `a/n` or `a-b/n`, or a comma list of those; months take `JAN`-`DEC`, days of the week
//! `SUN`-`SAT` (0 or 7 is Sunday). As in Vixie cron, when both day fields are restricted
//! (neither starts with `*`/`?`) a day matches if either does; otherwise both must.
//! Pure: no clock, no I/O (`next_after` takes the time).

use std::fmt;

use crate::error::ConfigError;

/// The syntax, for error messages.
const EXPECTED: &str = "use 5 fields (minute hour day-of-month month day-of-week) or 6 (second \
     first), each `*`, a value, a range `a-b`, a step `*/n` or `a-b/n`, or a list `a,b`, \
     e.g. \"0 */5 * * * *\" (every 5 minutes; times are UTC)";

/// A parsed cron expression.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Cron {
    source: String,
    seconds: u64,
    minutes: u64,
    hours: u64,
    /// Bits 1..=31.
    days: u64,
    /// Bits 1..=12.
    months: u64,
    /// Bits 0..=6, Sunday 0.
    weekdays: u64,
    /// Whether the day-of-month / day-of-week field starts with `*` or `?`.
    days_star: bool,
    weekdays_star: bool,
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
    /// The first name's value (JAN = 1, SUN = 0).
    names_from: u32,
}

const SECOND: Field = Field {
    name: "second",
    min: 0,
    max: 59,
    names: &[],
    names_from: 0,
};
const MINUTE: Field = Field {
    name: "minute",
    ..SECOND
};
const HOUR: Field = Field {
    name: "hour",
    min: 0,
    max: 23,
    names: &[],
    names_from: 0,
};
const DAY: Field = Field {
    name: "day-of-month",
    min: 1,
    max: 31,
    names: &[],
    names_from: 0,
};
const MONTH: Field = Field {
    name: "month",
    min: 1,
    max: 12,
    names: &MONTHS,
    names_from: 1,
};
// 7 is Sunday too, folded onto 0 after parsing.
const WEEKDAY: Field = Field {
    name: "day-of-week",
    min: 0,
    max: 7,
    names: &WEEKDAYS,
    names_from: 0,
};

impl Field {
    fn value(&self, s: &str) -> Result<u32, String> {
        let v = if let Some(i) = self.names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
            self.names_from + i as u32
        } else {
            s.parse::<u32>()
                .map_err(|_| format!("{} field: `{s}` is not a number", self.name))?
        };
        if v < self.min || v > self.max {
            return Err(format!(
                "{} field: {v} is out of range {}-{}",
                self.name, self.min, self.max
            ));
        }
        Ok(v)
    }

    /// The bit set of one field's text.
    fn parse(&self, text: &str) -> Result<u64, String> {
        let mut bits = 0u64;
        for item in text.split(',') {
            let (range, step) = match item.split_once('/') {
                Some((r, s)) => {
                    let step = s.parse::<u32>().ok().filter(|n| *n > 0).ok_or_else(|| {
                        format!("{} field: step `{s}` is not 1 or more", self.name)
                    })?;
                    (r, Some(step))
                }
                None => (item, None),
            };
            let (lo, hi) = if range == "*" || range == "?" {
                (self.min, self.max)
            } else if let Some((a, b)) = range.split_once('-') {
                let (a, b) = (self.value(a)?, self.value(b)?);
                if a > b {
                    return Err(format!(
                        "{} field: range `{range}` runs backwards",
                        self.name
                    ));
                }
                (a, b)
            } else {
                let a = self.value(range)?;
                // `a/n`: from a to the field's end.
                (a, if step.is_some() { self.max } else { a })
            };
            let step = step.unwrap_or(1);
            let mut v = lo;
            while v <= hi {
                bits |= 1 << v;
                v += step;
            }
        }
        Ok(bits)
    }
}

impl Cron {
    /// Parses `expr`; the error names it and the expected syntax.
    pub(crate) fn parse(expr: &str) -> Result<Cron, ConfigError> {
        Self::parse_fields(expr).map_err(|problem| {
            ConfigError::new(
                "cron expression",
                format!("{expr:?}"),
                format!("{problem}; {EXPECTED}"),
            )
        })
    }

    fn parse_fields(expr: &str) -> Result<Cron, String> {
        let fields: Vec<&str> = expr.split_whitespace().collect();
        let (sec, rest) = match fields.len() {
            5 => ("0", &fields[..]),
            6 => (fields[0], &fields[1..]),
            n => return Err(format!("it has {n} fields")),
        };
        for (f, text) in [
            (&SECOND, sec),
            (&MINUTE, rest[0]),
            (&HOUR, rest[1]),
            (&MONTH, rest[3]),
        ] {
            if text.contains('?') {
                return Err(format!(
                    "{} field: `?` only stands in the day fields",
                    f.name
                ));
            }
        }
        let mut weekdays = WEEKDAY.parse(rest[4])?;
        if weekdays & (1 << 7) != 0 {
            weekdays = (weekdays & !(1 << 7)) | 1;
        }
        let starred = |t: &str| t.starts_with('*') || t.starts_with('?');
        let cron = Cron {
            source: expr.split_whitespace().collect::<Vec<_>>().join(" "),
            seconds: SECOND.parse(sec)?,
            minutes: MINUTE.parse(rest[0])?,
            hours: HOUR.parse(rest[1])?,
            days: DAY.parse(rest[2])?,
            months: MONTH.parse(rest[3])?,
            weekdays,
            days_star: starred(rest[2]),
            weekdays_star: starred(rest[4]),
        };
        // Day 31 of months that have 30 days, say: the search would find nothing.
        if cron.next_after(0).is_none() {
            return Err("it matches no date".to_string());
        }
        Ok(cron)
    }

    /// The expression as written (whitespace normalised).
    pub(crate) fn source(&self) -> &str {
        &self.source
    }

    fn day_matches(&self, y: i64, m: u32, d: u32) -> bool {
        let dom = self.days & (1 << d) != 0;
        let dow = self.weekdays & (1 << weekday(days_from_civil(y, m, d))) != 0;
        if self.days_star || self.weekdays_star {
            dom && dow
        } else {
            dom || dow
        }
    }

    /// Whether the second `t` (since the Unix epoch, UTC) matches.
    #[cfg(test)]
    fn matches(&self, t: u64) -> bool {
        let days = (t / 86_400) as i64;
        let (y, m, d) = civil_from_days(days);
        let s = t % 86_400;
        let bit = |set: u64, v: u64| set & (1 << v) != 0;
        bit(self.months, u64::from(m))
            && self.day_matches(y, m, d)
            && bit(self.hours, s / 3600)
            && bit(self.minutes, s / 60 % 60)
            && bit(self.seconds, s % 60)
    }

    /// The first matching second strictly after `t` (seconds since the Unix epoch, UTC);
    /// `None` if nothing matches within 8 years (a date that never comes).
    pub(crate) fn next_after(&self, t: u64) -> Option<u64> {
        let start = t.checked_add(1)?;
        let (y0, m0, d0) = civil_from_days((start / 86_400) as i64);
        let sod = start % 86_400;
        let (mut y, mut m, mut d) = (y0, m0, d0);
        let (mut hh, mut mm, mut ss) = (
            (sod / 3600) as u32,
            (sod / 60 % 60) as u32,
            (sod % 60) as u32,
        );
        let limit = y0 + 8;
        loop {
            // Carry overflowing fields upwards.
            if ss > 59 {
                ss = 0;
                mm += 1;
            }
            if mm > 59 {
                mm = 0;
                hh += 1;
            }
            if hh > 23 {
                hh = 0;
                d += 1;
            }
            if d > days_in_month(y, m) {
                d = 1;
                m += 1;
            }
            if m > 12 {
                m = 1;
                y += 1;
            }
            if y > limit {
                return None;
            }
            if self.months & (1 << m) == 0 {
                (m, d, hh, mm, ss) = (m + 1, 1, 0, 0, 0);
                if m > 12 {
                    (y, m) = (y + 1, 1);
                }
                continue;
            }
            if !self.day_matches(y, m, d) {
                (d, hh, mm, ss) = (d + 1, 0, 0, 0);
                continue;
            }
            if self.hours & (1 << hh) == 0 {
                (hh, mm, ss) = (hh + 1, 0, 0);
                continue;
            }
            if self.minutes & (1 << mm) == 0 {
                (mm, ss) = (mm + 1, 0);
                continue;
            }
            if self.seconds & (1 << ss) == 0 {
                ss += 1;
                continue;
            }
            let days = u64::try_from(days_from_civil(y, m, d)).ok()?;
            return Some(days * 86_400 + u64::from(hh) * 3600 + u64::from(mm) * 60 + u64::from(ss));
        }
    }
}

impl fmt::Debug for Cron {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cron({:?})", self.source)
    }
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(y) => 29,
        2 => 28,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// 0 for Sunday.
fn weekday(days: i64) -> u32 {
    // 1970-01-01 was a Thursday.
    (days + 4).rem_euclid(7) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Seconds of a UTC date and time.
    fn at(y: i64, m: u32, d: u32, hh: u64, mm: u64, ss: u64) -> u64 {
        days_from_civil(y, m, d) as u64 * 86_400 + hh * 3600 + mm * 60 + ss
    }

    #[test]
    fn dates_and_weekdays_are_right() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(civil_from_days(11_017), (2000, 3, 1));
        // 2026-12-01 is a Tuesday; 2024-02-29 a Thursday.
        assert_eq!(weekday(days_from_civil(2026, 12, 1)), 2);
        assert_eq!(weekday(days_from_civil(2024, 2, 29)), 4);
    }

    #[test]
    fn common_expressions_fire_when_expected() {
        let t = at(2026, 12, 1, 17, 3, 20);
        let every5 = Cron::parse("0 */5 * * * *").unwrap();
        assert_eq!(every5.next_after(t), Some(at(2026, 12, 1, 17, 5, 0)));
        // Five fields: seconds are 0.
        let hourly = Cron::parse("30 * * * *").unwrap();
        assert_eq!(hourly.next_after(t), Some(at(2026, 12, 1, 17, 30, 0)));
        let nightly = Cron::parse("0 2 * * *").unwrap();
        assert_eq!(nightly.next_after(t), Some(at(2026, 12, 2, 2, 0, 0)));
        // Mondays and Fridays at 09:00, by name.
        let weekdays = Cron::parse("0 9 * * MON,fri").unwrap();
        assert_eq!(weekdays.next_after(t), Some(at(2026, 12, 4, 9, 0, 0)));
        // 7 is Sunday.
        let sunday = Cron::parse("0 0 * * 7").unwrap();
        assert_eq!(sunday.next_after(t), Some(at(2026, 12, 6, 0, 0, 0)));
        // Both day fields restricted: either matches (the 1st, or a Wednesday).
        let either = Cron::parse("0 0 1 * WED").unwrap();
        assert_eq!(either.next_after(t), Some(at(2026, 12, 2, 0, 0, 0)));
        // Leap days.
        let leap = Cron::parse("0 0 29 FEB *").unwrap();
        assert_eq!(leap.next_after(t), Some(at(2028, 2, 29, 0, 0, 0)));
        // Ranges with steps, lists, a year end.
        let odd = Cron::parse("*/20 10-20/5 23 31 12 ?").unwrap();
        assert_eq!(odd.next_after(t), Some(at(2026, 12, 31, 23, 10, 0)));
        assert_eq!(
            odd.next_after(at(2026, 12, 31, 23, 20, 40)),
            Some(at(2027, 12, 31, 23, 10, 0))
        );
        assert_eq!(every5.source(), "0 */5 * * * *");
    }

    #[test]
    fn bad_expressions_name_themselves_and_the_syntax() {
        for (expr, problem) in [
            ("* * * *", "4 fields"),
            ("61 * * * * *", "second field: 61 is out of range 0-59"),
            ("* 24 * * *", "hour field: 24 is out of range"),
            ("* * * * * * *", "7 fields"),
            ("*/0 * * * *", "step `0`"),
            ("5-1 * * * *", "runs backwards"),
            ("x * * * *", "`x` is not a number"),
            ("0 0 30 2 *", "matches no date"),
            ("? * * * *", "`?` only stands in the day fields"),
            ("0 0 * FOO *", "`FOO` is not a number"),
        ] {
            let e = Cron::parse(expr).unwrap_err();
            let text = e.to_string();
            assert_eq!(e.option(), "cron expression");
            assert!(text.contains(&format!("{expr:?}")), "{text}");
            assert!(text.contains(problem), "{expr}: {text}");
            assert!(text.contains("5 fields"), "{text}");
        }
    }

    /// The first match after `t` by stepping second by second, within `window` seconds.
    fn naive_next(c: &Cron, t: u64, window: u64) -> Option<u64> {
        (t + 1..=t + window).find(|&s| c.matches(s))
    }

    fn field(max: u32) -> impl Strategy<Value = String> {
        prop_oneof![
            Just("*".to_string()),
            (0..=max).prop_map(|v| v.to_string()),
            (1..=max.max(1)).prop_map(|n| format!("*/{n}")),
            (0..=max, 0..=max).prop_map(|(a, b)| format!("{}-{}", a.min(b), a.max(b))),
            (0..=max, 0..=max).prop_map(|(a, b)| format!("{a},{b}")),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn days_round_trip(z in -1_000_000i64..1_000_000) {
            let (y, m, d) = civil_from_days(z);
            prop_assert!((1..=12).contains(&m) && d >= 1 && d <= days_in_month(y, m));
            prop_assert_eq!(days_from_civil(y, m, d), z);
        }

        /// `next_after` is the first matching second after `t`: it matches, and stepping
        /// second by second finds nothing earlier (dense expressions, within two days).
        #[test]
        fn next_is_the_first_match(
            s in field(59), m in field(59), h in field(23),
            dow in prop_oneof![Just("*".to_string()), (0u32..=7).prop_map(|v| v.to_string())],
            t in 0u64..4_000_000_000,
        ) {
            let expr = format!("{s} {m} {h} * * {dow}");
            let c = Cron::parse(&expr).unwrap();
            let next = c.next_after(t).unwrap();
            prop_assert!(next > t);
            prop_assert!(c.matches(next), "{} does not match {}", expr, next);
            let window = 2 * 86_400;
            match naive_next(&c, t, window) {
                Some(n) => prop_assert_eq!(n, next, "{}", expr),
                None => prop_assert!(next > t + window),
            }
        }
    }
}
