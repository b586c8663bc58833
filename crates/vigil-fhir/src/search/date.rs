//! Date search (<http://hl7.org/fhir/R4/search.html>, sections "date" and "Prefixes").
//!
//! A search value of any precision stands for a range of instants: `2026-11` is the whole of
//! November. R4 compares the target's range with the value's range; Vigil's target (an
//! observation's effective time) is an instant, so with the value's range `[start, end)`:
//!
//! | prefix | matches effective time t when |
//! |---|---|
//! | `eq` (default) | start ≤ t < end |
//! | `ge` | t ≥ start |
//! | `gt` | t ≥ end (after the whole range) |
//! | `le` | t < end |
//! | `lt` | t < start (before the whole range) |
//!
//! `ne`, `sa`, `eb` and `ap` are not supported. Several `date` parameters are intersected (AND).
//! A value without a UTC offset is read as UTC: FHIR leaves such values to the server's time
//! zone, and Vigil's is UTC.

use chrono::{Duration, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, TimeZone};
use vigil_model::Instant;

use super::Param;
use crate::FhirError;

/// One end of a time range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bound {
    pub at: Instant,
    pub inclusive: bool,
}

/// The instants a FHIR date or dateTime of some precision stands for: `start ≤ t < end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateRange {
    pub start: Instant,
    pub end: Instant,
}

const EXPECTED: &str = "expected YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm[:ss[.fff]] \
    followed, when there is a time, by an optional Z or ±hh:mm";

fn digits(s: &str, len: usize) -> Option<u32> {
    (s.len() == len && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// The range a FHIR search date value stands for (see the module documentation).
///
/// Accepts `YYYY`, `YYYY-MM`, `YYYY-MM-DD`, and with a time `Thh:mm`, `Thh:mm:ss` or
/// `Thh:mm:ss.f…` (1 to 9 fraction digits), each time with an optional `Z` or `±hh:mm` offset.
/// The error is the reason, for the caller to wrap with the parameter's name.
pub fn parse_date_range(raw: &str) -> Result<DateRange, String> {
    let (date, time) = match raw.split_once('T') {
        Some((date, time)) => (date, Some(time)),
        None => (raw, None),
    };
    let parts: Vec<&str> = date.split('-').collect();
    let year = parts.first().and_then(|y| digits(y, 4)).ok_or(EXPECTED)? as i32;
    if year == 0 {
        return Err("FHIR years run from 0001".into());
    }
    let month = parts
        .get(1)
        .map(|m| digits(m, 2).ok_or(EXPECTED))
        .transpose()?;
    let day = parts
        .get(2)
        .map(|d| digits(d, 2).ok_or(EXPECTED))
        .transpose()?;
    if parts.len() > 3 {
        return Err(EXPECTED.into());
    }
    let no_such_date = || format!("{date} is not a calendar date");
    let first_of = |y: i32, m: u32| NaiveDate::from_ymd_opt(y, m, 1).ok_or_else(no_such_date);
    let utc_midnight = |d: NaiveDate| d.and_time(NaiveTime::MIN).and_utc();

    let (Some(month), Some(day)) = (month, day) else {
        if time.is_some() {
            return Err("a time needs a full date before it (YYYY-MM-DDThh:mm…)".into());
        }
        let (start, end) = match month {
            None => (first_of(year, 1)?, first_of(year + 1, 1)?),
            Some(m) if (1..=12).contains(&m) => {
                let next = if m == 12 {
                    first_of(year + 1, 1)?
                } else {
                    first_of(year, m + 1)?
                };
                (first_of(year, m)?, next)
            }
            Some(_) => return Err(no_such_date()),
        };
        return Ok(DateRange {
            start: utc_midnight(start),
            end: utc_midnight(end),
        });
    };
    let day = NaiveDate::from_ymd_opt(year, month, day).ok_or_else(no_such_date)?;
    let Some(time) = time else {
        let start = utc_midnight(day);
        return Ok(DateRange {
            start,
            end: start + Duration::days(1),
        });
    };

    // The offset: Z, +hh:mm, -hh:mm, or a space where an unencoded '+' was decoded.
    let (clock, offset) = if let Some(clock) = time.strip_suffix('Z') {
        (clock, Some(0))
    } else if let Some(at) = time.rfind(['+', '-', ' ']) {
        let (clock, zone) = time.split_at(at);
        let sign = if zone.starts_with('-') { -1 } else { 1 };
        let (h, m) = zone[1..]
            .split_once(':')
            .ok_or("the offset must be ±hh:mm")?;
        let (h, m) = (
            digits(h, 2).ok_or("the offset must be ±hh:mm")?,
            digits(m, 2).ok_or("the offset must be ±hh:mm")?,
        );
        if h > 14 || m > 59 || (h == 14 && m > 0) {
            return Err(format!("offset {zone} is outside -14:00 to +14:00"));
        }
        (clock, Some(sign * (h * 3600 + m * 60) as i32))
    } else {
        (time, None)
    };

    let fields: Vec<&str> = clock.split(':').collect();
    let (hh, mm, rest) = match fields.as_slice() {
        [h, m] => (h, m, None),
        [h, m, s] => (h, m, Some(*s)),
        _ => return Err(EXPECTED.into()),
    };
    let (hour, minute) = (
        digits(hh, 2).ok_or(EXPECTED)?,
        digits(mm, 2).ok_or(EXPECTED)?,
    );
    let (second, nanos, width) = match rest {
        None => (0, 0, Duration::minutes(1)),
        Some(s) => match s.split_once('.') {
            None => (digits(s, 2).ok_or(EXPECTED)?, 0, Duration::seconds(1)),
            Some((whole, fraction)) => {
                let second = digits(whole, 2).ok_or(EXPECTED)?;
                let n = fraction.len();
                if n == 0 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(EXPECTED.into());
                }
                if n > 9 {
                    return Err("at most 9 fraction digits (nanoseconds)".into());
                }
                let scale = 10u32.pow(9 - n as u32);
                let nanos: u32 = fraction.parse::<u32>().map_err(|_| EXPECTED)? * scale;
                (second, nanos, Duration::nanoseconds(i64::from(scale)))
            }
        },
    };
    let clock = NaiveTime::from_hms_nano_opt(hour, minute, second, nanos)
        .filter(|_| second < 60)
        .ok_or_else(|| format!("{clock} is not a time of day"))?;
    let local = NaiveDateTime::new(day, clock);
    let offset = FixedOffset::east_opt(offset.unwrap_or(0)).ok_or("the offset is out of range")?;
    let start = offset
        .from_local_datetime(&local)
        .single()
        .ok_or("the time cannot be placed on the UTC time line")?
        .to_utc();
    Ok(DateRange {
        start,
        end: start + width,
    })
}

/// The date comparators Vigil implements (search.html, "Prefixes").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Comparator {
    Eq,
    Gt,
    Ge,
    Lt,
    Le,
}

/// The later of two lower bounds (at the same instant, an exclusive bound is the stricter).
fn tighter_from(current: Option<Bound>, new: Bound) -> Bound {
    match current {
        Some(c) if c.at > new.at || (c.at == new.at && !c.inclusive) => c,
        _ => new,
    }
}

/// The earlier of two upper bounds (at the same instant, an exclusive bound is the stricter).
fn tighter_to(current: Option<Bound>, new: Bound) -> Bound {
    match current {
        Some(c) if c.at < new.at || (c.at == new.at && !c.inclusive) => c,
        _ => new,
    }
}

/// Applies one `date` parameter to the bounds gathered so far.
pub(super) fn apply_date(
    p: &Param,
    from: &mut Option<Bound>,
    to: &mut Option<Bound>,
) -> Result<(), FhirError> {
    p.modifier_in(&[])?;
    // Normalise a '+' that reached us as a space back to '+' (see the module docs of `search`).
    let value = p.value.replace(' ', "+");
    if value.contains(',') {
        return Err(
            p.unsupported("a list of dates (OR) is not supported; repeat date for a range (AND)")
        );
    }
    let (comparator, rest) = match value.get(..2) {
        Some(prefix) if prefix.bytes().all(|b| b.is_ascii_alphabetic()) => {
            let comparator = match prefix {
                "eq" => Comparator::Eq,
                "gt" => Comparator::Gt,
                "ge" => Comparator::Ge,
                "lt" => Comparator::Lt,
                "le" => Comparator::Le,
                "ne" | "sa" | "eb" | "ap" => {
                    return Err(FhirError::UnsupportedPrefix {
                        name: p.name.to_owned(),
                        value: p.value.to_owned(),
                        prefix: prefix.to_owned(),
                    });
                }
                _ => {
                    return Err(p.invalid(format!(
                        "unknown prefix {prefix:?}; use eq, gt, ge, lt or le"
                    )));
                }
            };
            (comparator, &value[2..])
        }
        _ => (Comparator::Eq, value.as_str()),
    };
    let range = parse_date_range(rest).map_err(|reason| p.invalid(reason))?;
    let (lower, upper) = match comparator {
        Comparator::Eq => (Some(range.start), Some(range.end)),
        Comparator::Ge => (Some(range.start), None),
        Comparator::Gt => (Some(range.end), None),
        Comparator::Le => (None, Some(range.end)),
        Comparator::Lt => (None, Some(range.start)),
    };
    if let Some(at) = lower {
        *from = Some(tighter_from(
            *from,
            Bound {
                at,
                inclusive: true,
            },
        ));
    }
    if let Some(at) = upper {
        *to = Some(tighter_to(
            *to,
            Bound {
                at,
                inclusive: false,
            },
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> Instant {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
    }

    fn range(raw: &str) -> (Instant, Instant) {
        let r = parse_date_range(raw).unwrap_or_else(|e| panic!("{raw}: {e}"));
        (r.start, r.end)
    }

    #[test]
    fn each_precision_is_a_range() {
        assert_eq!(
            range("2026"),
            (utc(2026, 1, 1, 0, 0, 0), utc(2027, 1, 1, 0, 0, 0))
        );
        assert_eq!(
            range("2026-11"),
            (utc(2026, 11, 1, 0, 0, 0), utc(2026, 12, 1, 0, 0, 0))
        );
        assert_eq!(
            range("2026-12"),
            (utc(2026, 12, 1, 0, 0, 0), utc(2027, 1, 1, 0, 0, 0))
        );
        assert_eq!(
            range("2024-02-29"),
            (utc(2024, 2, 29, 0, 0, 0), utc(2024, 3, 1, 0, 0, 0))
        );
        assert_eq!(
            range("2026-11-21T10:00"),
            (utc(2026, 11, 21, 10, 0, 0), utc(2026, 11, 21, 10, 1, 0))
        );
        assert_eq!(
            range("2026-11-21T10:00Z"),
            (utc(2026, 11, 21, 10, 0, 0), utc(2026, 11, 21, 10, 1, 0))
        );
        assert_eq!(
            range("2026-11-21T23:59:59Z"),
            (utc(2026, 11, 21, 23, 59, 59), utc(2026, 11, 22, 0, 0, 0))
        );
        let (start, end) = range("2026-11-21T10:00:00.5Z");
        assert_eq!(
            (start, end - start),
            (
                utc(2026, 11, 21, 10, 0, 0) + Duration::milliseconds(500),
                Duration::milliseconds(100)
            )
        );
        let (start, end) = range("2026-11-21T10:00:00.500Z");
        assert_eq!(
            (start, end - start),
            (
                utc(2026, 11, 21, 10, 0, 0) + Duration::milliseconds(500),
                Duration::milliseconds(1)
            )
        );
        let (start, end) = range("2026-11-21T10:00:00.123456789Z");
        assert_eq!(
            start,
            utc(2026, 11, 21, 10, 0, 0) + Duration::nanoseconds(123_456_789)
        );
        assert_eq!(end - start, Duration::nanoseconds(1));
        assert_eq!(
            range("9999"),
            (utc(9999, 1, 1, 0, 0, 0), utc(10000, 1, 1, 0, 0, 0))
        );
    }

    #[test]
    fn offsets_are_converted_and_no_offset_means_utc() {
        assert_eq!(
            range("2026-11-21T10:00:00+01:00").0,
            utc(2026, 11, 21, 9, 0, 0)
        );
        assert_eq!(
            range("2026-11-21T10:00:00 01:00").0,
            utc(2026, 11, 21, 9, 0, 0),
            "unencoded +"
        );
        assert_eq!(
            range("2026-11-21T01:30:00-05:30").0,
            utc(2026, 11, 21, 7, 0, 0)
        );
        assert_eq!(
            range("2026-01-01T00:30+14:00").0,
            utc(2025, 12, 31, 10, 30, 0)
        );
        assert_eq!(range("2026-11-21T10:00:00").0, utc(2026, 11, 21, 10, 0, 0));
    }

    #[test]
    fn malformed_dates_are_refused_with_a_reason() {
        for bad in [
            "",
            "26",
            "2026-1",
            "2026-11-1",
            "2026-13",
            "2026-00",
            "2026-02-30",
            "0000",
            "2026/11/21",
            "2026-11-21T",
            "2026-11-21T10",
            "2026-11-21T1:00",
            "2026-11-21T24:00",
            "2026-11-21T10:60",
            "2026-11-21T10:00:60",
            "2026-11-21T10:00:00.",
            "2026-11-21T10:00:00.1234567891",
            "2026-11-21T10:00:00+1:00",
            "2026-11-21T10:00:00+15:00",
            "2026-11-21T10:00:00+01",
            "2026-11T10:00",
            "2026-11-21Z",
            "2026-11-21-05:00",
            "2026-11-21T10:00:00ZZ",
            "today",
            "2026-11-21T10:00:00.5x",
        ] {
            assert!(
                parse_date_range(bad).is_err(),
                "{bad:?} was accepted: {:?}",
                parse_date_range(bad)
            );
        }
    }

    #[test]
    fn intersections_keep_the_strictest_bound() {
        let at = utc(2026, 1, 1, 0, 0, 0);
        let incl = Bound {
            at,
            inclusive: true,
        };
        let excl = Bound {
            at,
            inclusive: false,
        };
        assert_eq!(tighter_from(Some(incl), excl), excl);
        assert_eq!(tighter_from(Some(excl), incl), excl);
        assert_eq!(tighter_to(Some(incl), excl), excl);
        let later = Bound {
            at: at + Duration::seconds(1),
            inclusive: true,
        };
        assert_eq!(tighter_from(Some(incl), later), later);
        assert_eq!(tighter_to(Some(later), incl), incl);
        assert_eq!(tighter_from(None, incl), incl);
    }
}
