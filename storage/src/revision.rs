//! Revisions (the store's logical clock) and wall-clock timestamps.

use std::fmt;

/// A committed revision: the Raft log index of the entry that carried the
/// batch. Totally ordered; `Revision(0)` is the empty store.
#[derive(
    serde::Serialize,
    serde::Deserialize,
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
)]
pub struct Revision(pub u64);

impl Revision {
    /// The revision of an empty store.
    pub const ZERO: Revision = Revision(0);

    /// The revision after this one (saturating).
    pub fn next(self) -> Revision {
        Revision(self.0.saturating_add(1))
    }
}

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Seconds since the Unix epoch (UTC), the granularity of tuple expirations.
///
/// The text form is RFC 3339 in UTC, e.g. `2300-12-01T00:00:00Z`; years
/// 0000–9999 are representable.
#[derive(
    serde::Serialize, serde::Deserialize, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash,
)]
pub struct Timestamp(pub i64);

/// Smallest representable timestamp: `0000-01-01T00:00:00Z`.
const MIN_UNIX: i64 = -62_167_219_200;
/// Largest representable timestamp: `9999-12-31T23:59:59Z`.
const MAX_UNIX: i64 = 253_402_300_799;

impl Timestamp {
    /// The current wall-clock time, truncated to seconds.
    pub fn now() -> Timestamp {
        let secs = match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => d.as_secs() as i64,
            Err(e) => -(e.duration().as_secs() as i64),
        };
        Timestamp(secs)
    }

    /// Whether the timestamp can be written in RFC 3339 (years 0000–9999).
    pub fn is_representable(self) -> bool {
        (MIN_UNIX..=MAX_UNIX).contains(&self.0)
    }

    /// Parses RFC 3339 (`YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`); fractional
    /// seconds are truncated. Returns `None` when malformed or out of range.
    pub fn parse_rfc3339(s: &str) -> Option<Timestamp> {
        let b = s.as_bytes();
        if b.len() < 20 {
            return None;
        }
        let num = |range: std::ops::Range<usize>| -> Option<i64> {
            let part = b.get(range)?;
            let mut v = 0i64;
            for &c in part {
                if !c.is_ascii_digit() {
                    return None;
                }
                v = v * 10 + i64::from(c - b'0');
            }
            Some(v)
        };
        let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let (hour, min, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
        let at = |i: usize| b.get(i).copied();
        if at(4) != Some(b'-')
            || at(7) != Some(b'-')
            || !matches!(at(10), Some(b'T' | b't'))
            || at(13) != Some(b':')
            || at(16) != Some(b':')
        {
            return None;
        }
        if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
            return None;
        }
        // Leap seconds (60) are not representable in Unix time.
        if hour > 23 || min > 59 || sec > 59 {
            return None;
        }
        let mut i = 19;
        if b.get(i) == Some(&b'.') {
            i += 1;
            let start = i;
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            if i == start {
                return None;
            }
        }
        let offset = match b.get(i..)? {
            [b'Z' | b'z'] => 0,
            [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
                let digits = [*h1, *h2, *m1, *m2];
                if !digits.iter().all(u8::is_ascii_digit) {
                    return None;
                }
                let oh = i64::from((h1 - b'0') * 10 + (h2 - b'0'));
                let om = i64::from((m1 - b'0') * 10 + (m2 - b'0'));
                if oh > 23 || om > 59 {
                    return None;
                }
                let off = oh * 3600 + om * 60;
                if *sign == b'+' {
                    off
                } else {
                    -off
                }
            }
            _ => return None,
        };
        let days = days_from_civil(year, month, day);
        let t = Timestamp(days * 86_400 + hour * 3600 + min * 60 + sec - offset);
        t.is_representable().then_some(t)
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339 in UTC (`2300-12-01T00:00:00Z`). Timestamps outside years
    /// 0000–9999 are clamped to that range.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.0.clamp(MIN_UNIX, MAX_UNIX);
        let days = t.div_euclid(86_400);
        let secs = t.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
            secs / 3600,
            (secs / 60) % 60,
            secs % 60
        )
    }
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(y) => 29,
        _ => 28,
    }
}

// Howard Hinnant's days_from_civil / civil_from_days (public domain algorithms).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_values() {
        assert_eq!(
            Timestamp::parse_rfc3339("1970-01-01T00:00:00Z"),
            Some(Timestamp(0))
        );
        assert_eq!(
            Timestamp::parse_rfc3339("2300-12-01T00:00:00Z").map(|t| t.to_string()),
            Some("2300-12-01T00:00:00Z".to_owned())
        );
        assert_eq!(
            Timestamp::parse_rfc3339("2024-02-29T12:30:45.123+01:00"),
            Some(Timestamp(1_709_206_245))
        );
        assert_eq!(Timestamp(1_709_206_245).to_string(), "2024-02-29T11:30:45Z");
        assert_eq!(Timestamp(-1).to_string(), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn rejects_bad_input() {
        for bad in [
            "",
            "2023-02-29T00:00:00Z",
            "2024-13-01T00:00:00Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01 00:00:00Z",
            "2024-01-01T00:00:00",
            "2024-01-01T00:00:00.Z",
            "2024-01-01T00:00:00+0100",
            "2024-01-01T00:00:00Zjunk",
            "+024-01-01T00:00:00Z",
        ] {
            assert_eq!(Timestamp::parse_rfc3339(bad), None, "{bad}");
        }
    }

    proptest! {
        #[test]
        fn display_parse_round_trip(secs in MIN_UNIX..=MAX_UNIX) {
            let t = Timestamp(secs);
            prop_assert_eq!(Timestamp::parse_rfc3339(&t.to_string()), Some(t));
        }
    }
}
