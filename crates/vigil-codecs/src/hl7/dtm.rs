//! The DTM data type (HL7 v2.6 chapter 2A, "DTM - date/time"):
//! `YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ]`.
//!
//! In v2.5 the same fields are TS (chapter 2A, "TS - time stamp"), whose first component is this DTM; callers pass that
//! component, so both versions read alike.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, TimeZone, Utc};

use crate::hl7::Hl7Limits;
use vigil_model::Instant;

/// How much of a DTM was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Precision {
    Year,
    Month,
    Day,
    Hour,
    Minute,
    Second,
}

/// A syntactically valid DTM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Dtm {
    pub local: NaiveDateTime,
    pub precision: Precision,
    pub offset: Option<FixedOffset>,
}

/// Why a time was refused. Never carries the time itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TimeProblem {
    #[error(
        "not an HL7 DTM (YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ], digits only, e.g. \
         20250114103000+0100)"
    )]
    Syntax,
    #[error("not a calendar date and time (month, day, hour, minute or second out of range)")]
    OutOfRange,
    #[error("an observation time needs at least minute precision (YYYYMMDDHHMM)")]
    TooImprecise,
    #[error(
        "the time has no UTC offset (+/-ZZZZ); without it the instant is unknown (the PCD-01 \
         form is e.g. 20250114103000+0100)"
    )]
    NoOffset,
    #[error("the UTC offset is not between -1400 and +1400 with minutes below 60")]
    OffsetOutOfRange,
    #[error("the time is before 1970-01-01T00:00:00Z")]
    BeforeEpoch,
}

fn digits(s: &str) -> Option<u32> {
    if s.bytes().all(|b| b.is_ascii_digit()) && !s.is_empty() {
        s.parse().ok()
    } else {
        None
    }
}

/// Parses a DTM. Seconds may carry one to four fractional digits; the offset, when present, is a
/// sign and exactly four digits.
pub(crate) fn parse(text: &str) -> Result<Dtm, TimeProblem> {
    let (stamp, offset) = match text.find(['+', '-']) {
        Some(i) => (&text[..i], Some(&text[i..])),
        None => (text, None),
    };
    let (whole, fraction) = match stamp.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (stamp, None),
    };
    let precision = match whole.len() {
        4 => Precision::Year,
        6 => Precision::Month,
        8 => Precision::Day,
        10 => Precision::Hour,
        12 => Precision::Minute,
        14 => Precision::Second,
        _ => return Err(TimeProblem::Syntax),
    };
    if !whole.bytes().all(|b| b.is_ascii_digit()) {
        return Err(TimeProblem::Syntax);
    }
    // Every slice below is within `whole`, whose length was checked above, and is ASCII digits.
    let part = |from: usize, to: usize, default: u32| -> u32 {
        whole.get(from..to).and_then(digits).unwrap_or(default)
    };
    let (year, month, day) = (part(0, 4, 0) as i32, part(4, 6, 1), part(6, 8, 1));
    let (hour, minute, second) = (part(8, 10, 0), part(10, 12, 0), part(12, 14, 0));
    let nanos = match fraction {
        None => 0,
        Some(f) if precision == Precision::Second && (1..=4).contains(&f.len()) => {
            let value = digits(f).ok_or(TimeProblem::Syntax)?;
            value * 10u32.pow(9 - f.len() as u32)
        }
        Some(_) => return Err(TimeProblem::Syntax),
    };
    let local = NaiveDate::from_ymd_opt(year, month, day)
        .and_then(|d| d.and_hms_nano_opt(hour, minute, second, nanos))
        // chrono reads second 60 with nanoseconds as a leap second; HL7 has none.
        .filter(|_| second < 60)
        .ok_or(TimeProblem::OutOfRange)?;
    let offset = offset.map(parse_offset).transpose()?;
    Ok(Dtm {
        local,
        precision,
        offset,
    })
}

/// `+HHMM` / `-HHMM`, within the offsets in use on Earth (UTC−12 to UTC+14).
fn parse_offset(text: &str) -> Result<FixedOffset, TimeProblem> {
    let (sign, rest) = text.split_at(1);
    // Digits first: slicing by byte position is only safe on ASCII.
    if rest.len() != 4 || !rest.bytes().all(|b| b.is_ascii_digit()) {
        return Err(TimeProblem::Syntax);
    }
    let hours = digits(&rest[..2]).ok_or(TimeProblem::Syntax)?;
    let minutes = digits(&rest[2..]).ok_or(TimeProblem::Syntax)?;
    if minutes >= 60 || hours * 60 + minutes > 14 * 60 {
        return Err(TimeProblem::OffsetOutOfRange);
    }
    let seconds = ((hours * 60 + minutes) * 60) as i32;
    let seconds = if sign == "-" { -seconds } else { seconds };
    FixedOffset::east_opt(seconds).ok_or(TimeProblem::OffsetOutOfRange)
}

impl Dtm {
    /// The instant of an observation time: at least minute precision and a known offset (its own,
    /// else [`Hl7Limits::assume_offset`]), not before 1970.
    pub fn observation_instant(&self, limits: &Hl7Limits) -> Result<Instant, TimeProblem> {
        if self.precision < Precision::Minute {
            return Err(TimeProblem::TooImprecise);
        }
        let offset = self
            .offset
            .or(limits.assume_offset)
            .ok_or(TimeProblem::NoOffset)?;
        let instant = to_utc(self.local, offset)?;
        if instant < DateTime::UNIX_EPOCH {
            return Err(TimeProblem::BeforeEpoch);
        }
        Ok(instant)
    }
}

fn to_utc(local: NaiveDateTime, offset: FixedOffset) -> Result<Instant, TimeProblem> {
    offset
        .from_local_datetime(&local)
        .single()
        .map(|t| t.with_timezone(&Utc))
        .ok_or(TimeProblem::OutOfRange)
}

/// Writes an instant as a DTM with seconds and the given offset, e.g. `20250114103001+0100`.
pub(crate) fn format(instant: Instant, offset: FixedOffset) -> String {
    let local = instant.with_timezone(&offset);
    let total = offset.local_minus_utc();
    let sign = if total < 0 { '-' } else { '+' };
    let minutes = total.unsigned_abs() / 60;
    format!(
        "{}{sign}{:02}{:02}",
        local.format("%Y%m%d%H%M%S"),
        minutes / 60,
        minutes % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> Result<Instant, TimeProblem> {
        parse(text)?.observation_instant(&Hl7Limits::default())
    }

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> Instant {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
    }

    #[test]
    fn offsets_are_applied_exactly() {
        assert_eq!(utc("20250114103000+0100"), Ok(at(2025, 1, 14, 9, 30, 0)));
        assert_eq!(utc("20250114103000-0530"), Ok(at(2025, 1, 14, 16, 0, 0)));
        assert_eq!(utc("20250114103000+0000"), Ok(at(2025, 1, 14, 10, 30, 0)));
        assert_eq!(utc("20250114103000-0000"), Ok(at(2025, 1, 14, 10, 30, 0)));
        // Across midnight and a year boundary.
        assert_eq!(utc("20250101003000+0100"), Ok(at(2024, 12, 31, 23, 30, 0)));
        assert_eq!(utc("20241231233000-1200"), Ok(at(2025, 1, 1, 11, 30, 0)));
        assert_eq!(utc("20250114103000+1400"), Ok(at(2025, 1, 13, 20, 30, 0)));
        assert_eq!(utc("20250114103000+0545"), Ok(at(2025, 1, 14, 4, 45, 0)));
    }

    #[test]
    fn minute_precision_and_fractions() {
        assert_eq!(utc("202501141030+0100"), Ok(at(2025, 1, 14, 9, 30, 0)));
        let t = utc("20250114103000.1234+0100").unwrap();
        assert_eq!(t.timestamp_subsec_micros(), 123_400);
        assert_eq!(
            utc("20250114103000.5+0100")
                .unwrap()
                .timestamp_subsec_millis(),
            500
        );
        assert_eq!(utc("2025011410+0100"), Err(TimeProblem::TooImprecise));
        assert_eq!(utc("20250114+0100"), Err(TimeProblem::TooImprecise));
        assert_eq!(utc("2025"), Err(TimeProblem::TooImprecise));
        // Syntactically fine at lower precision (MSH-7 may be), only too imprecise to observe at.
        assert_eq!(parse("20250114").unwrap().precision, Precision::Day);
    }

    #[test]
    fn an_offset_is_required_unless_one_is_configured() {
        assert_eq!(utc("20250114103000"), Err(TimeProblem::NoOffset));
        let limits = Hl7Limits {
            assume_offset: FixedOffset::east_opt(3600),
            ..Hl7Limits::default()
        };
        let dtm = parse("20250114103000").unwrap();
        assert_eq!(
            dtm.observation_instant(&limits),
            Ok(at(2025, 1, 14, 9, 30, 0))
        );
        // A time's own offset wins over the configured one.
        let own = parse("20250114103000-0200").unwrap();
        assert_eq!(
            own.observation_instant(&limits),
            Ok(at(2025, 1, 14, 12, 30, 0))
        );
    }

    #[test]
    fn refuses_malformed_times() {
        for bad in [
            "",
            "2025011410300",
            "202501141030000",
            "20250114 103000",
            "2025-01-14T10:30:00Z",
            "20250114103000+01",
            "20250114103000+01000",
            "20250114103000+01:00",
            "20250114103000++0100",
            "20250114103000.+0100",
            "20250114103000.12345+0100",
            "202501141030.5+0100",
            "20250114103000Z",
            "+0100",
            "２０２５01141030+0100",
        ] {
            assert_eq!(parse(bad).err(), Some(TimeProblem::Syntax), "{bad:?}");
        }
        for bad in [
            "20251314103000+0100",
            "20250230103000+0100",
            "20250114243000+0100",
            "20250114106000+0100",
            "20250114103060+0100",
            "20250014103000+0100",
            "20250100103000+0100",
        ] {
            assert_eq!(parse(bad).err(), Some(TimeProblem::OutOfRange), "{bad:?}");
        }
        assert_eq!(
            utc("20250114103000+1401"),
            Err(TimeProblem::OffsetOutOfRange)
        );
        assert_eq!(
            utc("20250114103000+0160"),
            Err(TimeProblem::OffsetOutOfRange)
        );
        assert_eq!(utc("19691231235959+0000"), Err(TimeProblem::BeforeEpoch));
        assert_eq!(utc("19700101000000+0000"), Ok(DateTime::UNIX_EPOCH));
        assert_eq!(utc("20240229120000+0000"), Ok(at(2024, 2, 29, 12, 0, 0)));
    }

    /// Regression: an offset of four bytes that are not four ASCII digits was sliced at byte 2,
    /// inside the `é`, and panicked.
    #[test]
    fn multibyte_characters_in_an_offset_are_a_syntax_error_not_a_panic() {
        for bad in [
            "20250114103000+1é1",
            "20250114103000+é12",
            "20250114103000-12é",
        ] {
            assert_eq!(parse(bad), Err(TimeProblem::Syntax), "{bad:?}");
        }
    }

    #[test]
    fn formats_with_the_given_offset() {
        let t = at(2025, 1, 14, 9, 30, 1);
        let plus_one = FixedOffset::east_opt(3600).unwrap();
        assert_eq!(format(t, plus_one), "20250114103001+0100");
        let minus = FixedOffset::west_opt(5 * 3600 + 30 * 60).unwrap();
        assert_eq!(format(t, minus), "20250114040001-0530");
        assert_eq!(
            format(t, FixedOffset::east_opt(0).unwrap()),
            "20250114093001+0000"
        );
    }
}
