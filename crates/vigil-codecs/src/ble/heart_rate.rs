//! Heart Rate Measurement (0x2A37), Heart Rate Service 0x180D (GATT Specification Supplement,
//! "Heart Rate Measurement").

use vigil_model::{AbsentReason, Measurand, ObservationCode, QualityFlags};

use super::mapping::{AbsentCause, Builder, MappedMeasurements, Timing, WireUnit};
use super::reader::Reader;
use super::{BleError, Characteristic};

const C: Characteristic = Characteristic::HeartRateMeasurement;

const FORMAT_UINT16: u8 = 1 << 0;
const CONTACT_MASK: u8 = 0b11 << 1;
const ENERGY_EXPENDED: u8 = 1 << 3;
const RR_INTERVALS: u8 = 1 << 4;
const DEFINED: u8 = FORMAT_UINT16 | CONTACT_MASK | ENERGY_EXPENDED | RR_INTERVALS;

/// Sensor Contact Status, flags bits 1–2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SensorContact {
    /// 0 or 1: the sensor cannot tell (bit 1 means nothing unless bit 2 is set).
    NotSupported,
    /// 2: supported, and the sensor is not touching the skin.
    NotDetected,
    /// 3: supported and detected.
    Detected,
}

/// One Heart Rate Measurement value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartRateMeasurement {
    /// Beats per minute, from the uint8 or the uint16 field (flags bit 0).
    pub heart_rate: u16,
    /// Whether the device used the uint16 field (flags bit 0).
    pub uint16_format: bool,
    pub sensor_contact: SensorContact,
    /// Energy expended since the last reset, in kilojoules (saturates at 0xFFFF).
    pub energy_expended_kj: Option<u16>,
    /// RR-intervals in units of 1/1024 s, oldest first; empty when flags bit 4 is clear.
    pub rr_intervals: Vec<u16>,
}

impl HeartRateMeasurement {
    /// The RR-intervals in seconds (1/1024 s per unit).
    pub fn rr_intervals_s(&self) -> impl Iterator<Item = f64> + '_ {
        self.rr_intervals.iter().map(|&rr| f64::from(rr) / 1024.0)
    }

    pub(crate) fn measurements(&self, timing: &Timing) -> Result<MappedMeasurements, BleError> {
        let mut b = Builder::new(C, timing.resolve(C, None)?);
        if self.sensor_contact == SensorContact::NotDetected {
            // A strap off the skin counts noise or nothing; its number is never a heart rate.
            // Sensor off (not an artifact-flagged value): the device itself says it is not
            // measuring, so the patient is unmonitored, a technical condition.
            b.absent(
                ObservationCode::Single(Measurand::HeartRate),
                AbsentReason::SensorOff,
                AbsentCause::NoSensorContact,
                QualityFlags::empty(),
            );
        } else {
            b.number(
                Measurand::HeartRate,
                (self.heart_rate.into(), 0),
                WireUnit::PerMin,
                QualityFlags::empty(),
            )?;
        }
        Ok(b.finish())
    }
}

pub(crate) fn decode(value: &[u8]) -> Result<HeartRateMeasurement, BleError> {
    let mut r = Reader::new(C, value)?;
    let flags = r.flags(DEFINED)?;
    let uint16_format = flags & FORMAT_UINT16 != 0;
    let heart_rate = if uint16_format {
        r.u16("Heart Rate Measurement Value (uint16)")?
    } else {
        r.u8("Heart Rate Measurement Value (uint8)")?.into()
    };
    let sensor_contact = match (flags & CONTACT_MASK) >> 1 {
        2 => SensorContact::NotDetected,
        3 => SensorContact::Detected,
        _ => SensorContact::NotSupported,
    };
    let energy_expended_kj = if flags & ENERGY_EXPENDED != 0 {
        Some(r.u16("Energy Expended")?)
    } else {
        None
    };
    let mut rr_intervals = Vec::new();
    if flags & RR_INTERVALS != 0 {
        // No count field: the list runs to the end of the value.
        let rest = r.rest();
        if rest.is_empty() {
            return Err(BleError::InconsistentFlags {
                characteristic: C,
                why: "flags bit 4 announces RR-Intervals, but none follow",
            });
        }
        if !rest.len().is_multiple_of(2) {
            return Err(BleError::OddRrIntervals {
                characteristic: C,
                len: rest.len(),
            });
        }
        rr_intervals = rest
            .chunks_exact(2)
            .map(|pair| u16::from_le_bytes([pair[0], pair[1]]))
            .collect();
    }
    r.finish()?;
    Ok(HeartRateMeasurement {
        heart_rate,
        uint16_format,
        sensor_contact,
        energy_expended_kj,
        rr_intervals,
    })
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use vigil_model::{Instant, MeasuredValue};

    use super::*;

    fn received() -> Instant {
        Utc.with_ymd_and_hms(2026, 11, 21, 10, 15, 30).unwrap()
    }

    fn kind(value: &[u8]) -> &'static str {
        decode(value).unwrap_err().kind()
    }

    #[test]
    fn uint8_and_uint16_formats() {
        let m = decode(&[0x00, 72]).unwrap();
        assert_eq!(m.heart_rate, 72);
        assert!(!m.uint16_format);
        assert_eq!(m.sensor_contact, SensorContact::NotSupported);
        assert_eq!(m.energy_expended_kj, None);
        assert!(m.rr_intervals.is_empty());

        let m = decode(&[0x01, 0x2c, 0x01]).unwrap();
        assert_eq!(m.heart_rate, 300);
        assert!(m.uint16_format);
        // A uint16 value above 255 is read whole, little-endian.
        assert_eq!(decode(&[0x01, 0x48, 0x00]).unwrap().heart_rate, 72);
    }

    #[test]
    fn sensor_contact_status_values() {
        let contact = |flags: u8| decode(&[flags, 60]).unwrap().sensor_contact;
        assert_eq!(contact(0b000), SensorContact::NotSupported);
        assert_eq!(contact(0b010), SensorContact::NotSupported, "bit 1 alone");
        assert_eq!(contact(0b100), SensorContact::NotDetected);
        assert_eq!(contact(0b110), SensorContact::Detected);
    }

    #[test]
    fn energy_expended_and_rr_intervals() {
        // Flags: uint16, contact detected, energy, RR. HR 75, 1000 kJ, RR 1024 (1 s) and 512.
        let m = decode(&[0x1f, 75, 0, 0xe8, 0x03, 0x00, 0x04, 0x00, 0x02]).unwrap();
        assert_eq!(m.heart_rate, 75);
        assert_eq!(m.sensor_contact, SensorContact::Detected);
        assert_eq!(m.energy_expended_kj, Some(1000));
        assert_eq!(m.rr_intervals, [1024, 512]);
        assert_eq!(m.rr_intervals_s().collect::<Vec<_>>(), [1.0, 0.5]);
        // RR without energy: the list starts right after the value.
        let m = decode(&[0x10, 60, 0x00, 0x04]).unwrap();
        assert_eq!(m.energy_expended_kj, None);
        assert_eq!(m.rr_intervals, [1024]);
        // Energy without RR.
        let m = decode(&[0x08, 60, 0x10, 0x00]).unwrap();
        assert_eq!(m.energy_expended_kj, Some(16));
        assert!(m.rr_intervals.is_empty());
    }

    #[test]
    fn every_flag_combination_decodes_with_its_fields() {
        for flags in 0u8..=0x1f {
            let mut value = vec![flags, 80];
            if flags & FORMAT_UINT16 != 0 {
                value.push(0);
            }
            if flags & ENERGY_EXPENDED != 0 {
                value.extend([5, 0]);
            }
            if flags & RR_INTERVALS != 0 {
                value.extend([0, 3]);
            }
            let m = decode(&value).unwrap_or_else(|e| panic!("{flags:#04x}: {e}"));
            assert_eq!(m.heart_rate, 80);
            assert_eq!(m.energy_expended_kj.is_some(), flags & ENERGY_EXPENDED != 0);
            assert_eq!(m.rr_intervals.len(), usize::from(flags & RR_INTERVALS != 0));
            // One byte short of any combination is refused: a list of RR-intervals has no
            // count, so it ends odd; any other field is truncated.
            let expected = if flags & RR_INTERVALS != 0 {
                "odd_rr_intervals"
            } else {
                "truncated"
            };
            assert_eq!(kind(&value[..value.len() - 1]), expected, "{flags:#04x}");
            // One byte more is refused too, except after RR-intervals, where two more bytes
            // are one more interval and one more byte is an odd list.
            let mut longer = value.clone();
            longer.push(0);
            let expected = if flags & RR_INTERVALS != 0 {
                "odd_rr_intervals"
            } else {
                "trailing_bytes"
            };
            assert_eq!(kind(&longer), expected, "{flags:#04x}");
        }
    }

    #[test]
    fn bad_values_are_refused() {
        assert_eq!(kind(&[]), "truncated");
        assert_eq!(kind(&[0x00]), "truncated");
        assert_eq!(kind(&[0x01, 72]), "truncated");
        assert_eq!(kind(&[0x08, 72, 1]), "truncated");
        for reserved in [0x20, 0x40, 0x80] {
            assert_eq!(kind(&[reserved, 72]), "reserved_flags");
        }
        assert_eq!(kind(&[0x00, 72, 0]), "trailing_bytes");
        assert_eq!(kind(&[0x08, 72, 1, 0, 9]), "trailing_bytes");
        assert_eq!(kind(&[0x10, 72]), "inconsistent_flags");
        assert_eq!(kind(&[0x10, 72, 0, 4, 1]), "odd_rr_intervals");
        let e = decode(&[0x00, 72, 0]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Heart Rate Measurement (0x2A37): 1 bytes follow the last field the flags announce \
             (which ends at 2 bytes); a value must end with its last field"
        );
        // The longest value ATT allows: 3 + 254 intervals, plus one byte too many.
        let mut long = vec![0x10, 60];
        long.extend(std::iter::repeat_n(0u8, 510));
        assert_eq!(decode(&long).unwrap().rr_intervals.len(), 255);
        long.push(0);
        assert_eq!(kind(&long), "value_too_long");
    }

    #[test]
    fn mapping_contact_not_detected_is_sensor_off() {
        let timing = Timing::at_receipt(received());
        let m = decode(&[0x04, 72]).unwrap().measurements(&timing).unwrap();
        assert!(m.measurements.is_empty(), "never a value");
        assert_eq!(m.absent.len(), 1);
        assert_eq!(m.absent[0].reason, AbsentReason::SensorOff);
        assert_eq!(m.absent[0].cause, AbsentCause::NoSensorContact);
        assert_eq!(
            m.absent[0].code,
            ObservationCode::Single(Measurand::HeartRate)
        );
        assert!(
            m.absent[0]
                .quality
                .contains(QualityFlags::TIME_FROM_RECEIPT)
        );

        for flags in [0x00, 0x02, 0x06] {
            let m = decode(&[flags, 72]).unwrap().measurements(&timing).unwrap();
            assert!(m.absent.is_empty());
            assert_eq!(m.measurements.len(), 1);
            let hr = &m.measurements[0];
            assert_eq!(hr.measurand, Measurand::HeartRate);
            assert_eq!(hr.value, MeasuredValue::Number(72.0));
            assert_eq!(hr.effective, received());
            assert_eq!(hr.quality, QualityFlags::TIME_FROM_RECEIPT);
        }
    }

    #[test]
    fn mapping_refuses_an_implausible_rate() {
        let timing = Timing::at_receipt(received());
        assert!(
            decode(&[0x01, 94, 1])
                .unwrap()
                .measurements(&timing)
                .is_ok()
        ); // 350
        let e = decode(&[0x01, 95, 1])
            .unwrap()
            .measurements(&timing)
            .unwrap_err();
        assert_eq!(e.kind(), "implausible_value");
        assert!(e.to_string().contains("heart_rate 351 /min"), "{e}");
    }
}
