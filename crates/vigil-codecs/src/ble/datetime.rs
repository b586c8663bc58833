//! Date Time (0x2A08), the 7-octet time stamp of every measurement characteristic here (GATT
//! Specification Supplement, "Date Time").

use std::fmt;

use chrono::{NaiveDate, NaiveDateTime};

/// A device's time stamp as sent: local wall-clock time with no time zone (the characteristic
/// carries none). Year, month and day 0 mean "not known".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BleDateTime {
    /// 1582–9999, or 0 when not known.
    pub year: u16,
    /// 1–12, or 0 when not known.
    pub month: u8,
    /// 1–31, or 0 when not known.
    pub day: u8,
    /// 0–23.
    pub hours: u8,
    /// 0–59.
    pub minutes: u8,
    /// 0–59.
    pub seconds: u8,
}

/// Why 7 octets are not a Date Time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DateTimeProblem {
    #[error("{field} {value} is outside {allowed}")]
    FieldOutOfRange {
        field: &'static str,
        value: u16,
        allowed: &'static str,
    },
    #[error("{year:04}-{month:02}-{day:02} is not a day of the calendar")]
    NoSuchDay { year: u16, month: u8, day: u8 },
}

impl BleDateTime {
    /// Reads the 7 octets, refusing any field outside the range the characteristic defines.
    pub(crate) fn decode(b: [u8; 7]) -> Result<BleDateTime, DateTimeProblem> {
        let t = BleDateTime {
            year: u16::from_le_bytes([b[0], b[1]]),
            month: b[2],
            day: b[3],
            hours: b[4],
            minutes: b[5],
            seconds: b[6],
        };
        let check = |field, value: u16, ok: bool, allowed| {
            if ok {
                Ok(())
            } else {
                Err(DateTimeProblem::FieldOutOfRange {
                    field,
                    value,
                    allowed,
                })
            }
        };
        check(
            "year",
            t.year,
            t.year == 0 || (1582..=9999).contains(&t.year),
            "0 (not known) or 1582 to 9999",
        )?;
        check(
            "month",
            t.month.into(),
            t.month <= 12,
            "0 (not known) or 1 to 12",
        )?;
        check("day", t.day.into(), t.day <= 31, "0 (not known) or 1 to 31")?;
        check("hours", t.hours.into(), t.hours <= 23, "0 to 23")?;
        check("minutes", t.minutes.into(), t.minutes <= 59, "0 to 59")?;
        // Date Time has no leap second: 0–59 only.
        check("seconds", t.seconds.into(), t.seconds <= 59, "0 to 59")?;
        if t.is_known() && t.date().is_none() {
            return Err(DateTimeProblem::NoSuchDay {
                year: t.year,
                month: t.month,
                day: t.day,
            });
        }
        Ok(t)
    }

    /// True when year, month and day are all given (none is 0): only then is it a time at all.
    pub fn is_known(&self) -> bool {
        self.year != 0 && self.month != 0 && self.day != 0
    }

    fn date(&self) -> Option<NaiveDate> {
        NaiveDate::from_ymd_opt(self.year.into(), self.month.into(), self.day.into())
    }

    /// The local wall-clock time, or `None` when the date is not known.
    pub fn to_naive(&self) -> Option<NaiveDateTime> {
        if !self.is_known() {
            return None;
        }
        self.date()?
            .and_hms_opt(self.hours.into(), self.minutes.into(), self.seconds.into())
    }
}

impl fmt::Display for BleDateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            self.year, self.month, self.day, self.hours, self.minutes, self.seconds
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(b: [u8; 7]) -> Result<BleDateTime, DateTimeProblem> {
        BleDateTime::decode(b)
    }

    #[test]
    fn reference_example() {
        // 2024-03-15 08:30:00 → e8 07 03 0f 08 1e 00 (ble_gatt.md, Date Time).
        let t = decode([0xe8, 0x07, 0x03, 0x0f, 0x08, 0x1e, 0x00]).unwrap();
        assert_eq!(
            t,
            BleDateTime {
                year: 2024,
                month: 3,
                day: 15,
                hours: 8,
                minutes: 30,
                seconds: 0
            }
        );
        assert_eq!(
            t.to_naive(),
            NaiveDate::from_ymd_opt(2024, 3, 15)
                .unwrap()
                .and_hms_opt(8, 30, 0)
        );
        assert_eq!(t.to_string(), "2024-03-15T08:30:00");
    }

    #[test]
    fn boundaries_of_each_field() {
        let at = |year: u16, month, day, h, m, s| {
            let y = year.to_le_bytes();
            decode([y[0], y[1], month, day, h, m, s])
        };
        assert!(at(1582, 1, 1, 0, 0, 0).is_ok());
        assert!(at(9999, 12, 31, 23, 59, 59).is_ok());
        let field = |r: Result<BleDateTime, DateTimeProblem>| match r {
            Err(DateTimeProblem::FieldOutOfRange { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field(at(1581, 1, 1, 0, 0, 0)), "year");
        assert_eq!(field(at(1, 1, 1, 0, 0, 0)), "year");
        assert_eq!(field(at(10000, 1, 1, 0, 0, 0)), "year");
        assert_eq!(field(at(u16::MAX, 1, 1, 0, 0, 0)), "year");
        assert_eq!(field(at(2024, 13, 1, 0, 0, 0)), "month");
        assert_eq!(field(at(2024, 1, 32, 0, 0, 0)), "day");
        assert_eq!(field(at(2024, 1, 1, 24, 0, 0)), "hours");
        assert_eq!(field(at(2024, 1, 1, 0, 60, 0)), "minutes");
        assert_eq!(field(at(2024, 1, 1, 0, 0, 60)), "seconds");
        assert_eq!(
            at(2023, 2, 29, 0, 0, 0),
            Err(DateTimeProblem::NoSuchDay {
                year: 2023,
                month: 2,
                day: 29
            })
        );
        assert!(at(2024, 2, 29, 0, 0, 0).is_ok(), "a leap day");
        assert!(at(2024, 4, 31, 0, 0, 0).is_err());
    }

    #[test]
    fn zero_year_month_or_day_is_not_known() {
        for b in [
            [0, 0, 3, 15, 8, 30, 0],
            [0xe8, 0x07, 0, 15, 8, 30, 0],
            [0xe8, 0x07, 3, 0, 8, 30, 0],
            [0, 0, 0, 0, 0, 0, 0],
        ] {
            let t = decode(b).unwrap();
            assert!(!t.is_known());
            assert_eq!(t.to_naive(), None);
        }
        // An unknown year cannot make 29 February impossible.
        assert!(decode([0, 0, 2, 29, 0, 0, 0]).is_ok());
        // The time fields are checked even when the date is not known.
        assert!(decode([0, 0, 0, 0, 24, 0, 0]).is_err());
    }
}
