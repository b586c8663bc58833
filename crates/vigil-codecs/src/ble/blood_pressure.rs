//! Blood Pressure Measurement (0x2A35), Blood Pressure Service 0x1810 (GATT Specification
//! Supplement, "Blood Pressure Measurement"; status bits "Blood Pressure Measurement Status").

use vigil_model::{AbsentReason, Measurand, ObservationCode, QualityFlags};

use super::datetime::BleDateTime;
use super::mapping::{AbsentCause, Builder, MappedMeasurements, Timing, WireUnit};
use super::medfloat::Medfloat;
use super::reader::Reader;
use super::{BleError, Characteristic, UserId};

const C: Characteristic = Characteristic::BloodPressureMeasurement;

const UNITS_KPA: u8 = 1 << 0;
const TIME_STAMP: u8 = 1 << 1;
const PULSE_RATE: u8 = 1 << 2;
const USER_ID: u8 = 1 << 3;
const MEASUREMENT_STATUS: u8 = 1 << 4;
const DEFINED: u8 = UNITS_KPA | TIME_STAMP | PULSE_RATE | USER_ID | MEASUREMENT_STATUS;

/// The unit of systolic, diastolic and mean arterial pressure (flags bit 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PressureUnit {
    MmHg,
    KPa,
}

/// One Blood Pressure Measurement value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BloodPressureMeasurement {
    pub unit: PressureUnit,
    pub systolic: Medfloat,
    pub diastolic: Medfloat,
    /// Often NaN when the device does not compute it.
    pub mean_arterial_pressure: Medfloat,
    pub time_stamp: Option<BleDateTime>,
    /// Beats per minute.
    pub pulse_rate: Option<Medfloat>,
    pub user_id: Option<UserId>,
    pub status: Option<BpStatus>,
}

/// Measurement Status, 16 bits; bits 6–15 are reserved and ignored (they change no layout).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BpStatus(pub u16);

/// Measurement Status bits 3–4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PulseRateRange {
    WithinRange,
    ExceedsUpperLimit,
    BelowLowerLimit,
    /// 3, reserved for future use.
    Reserved,
}

impl BpStatus {
    pub fn body_movement(self) -> bool {
        self.0 & (1 << 0) != 0
    }
    pub fn cuff_too_loose(self) -> bool {
        self.0 & (1 << 1) != 0
    }
    pub fn irregular_pulse(self) -> bool {
        self.0 & (1 << 2) != 0
    }
    pub fn pulse_rate_range(self) -> PulseRateRange {
        match (self.0 >> 3) & 0b11 {
            0 => PulseRateRange::WithinRange,
            1 => PulseRateRange::ExceedsUpperLimit,
            2 => PulseRateRange::BelowLowerLimit,
            _ => PulseRateRange::Reserved,
        }
    }
    pub fn improper_measurement_position(self) -> bool {
        self.0 & (1 << 5) != 0
    }
}

impl BloodPressureMeasurement {
    pub(crate) fn measurements(&self, timing: &Timing) -> Result<MappedMeasurements, BleError> {
        let device_time = self.time_stamp.and_then(|t| t.to_naive());
        let mut b = Builder::new(C, timing.resolve(C, device_time)?);
        // Quality of the whole determination. Body movement and a wrong position make the
        // oscillometric value doubtful (the model's QUESTIONABLE: "motion"); a loose cuff is a
        // cuff error (ARTIFACT). An irregular pulse is a finding about the patient, not about the
        // value: flagging it would hide every reading of a patient in atrial fibrillation from
        // the physiological alarms, so it only stays in `status`.
        let mut quality = QualityFlags::empty();
        let mut pulse_quality = QualityFlags::empty();
        if let Some(status) = self.status {
            if status.body_movement() || status.improper_measurement_position() {
                quality.insert(QualityFlags::QUESTIONABLE);
            }
            if status.cuff_too_loose() {
                quality.insert(QualityFlags::ARTIFACT);
            }
            if matches!(
                status.pulse_rate_range(),
                PulseRateRange::ExceedsUpperLimit | PulseRateRange::BelowLowerLimit
            ) {
                // Outside the range the device measures pulse in: its number is a guess.
                pulse_quality.insert(QualityFlags::QUESTIONABLE);
            }
        }
        let unit = match self.unit {
            PressureUnit::MmHg => WireUnit::MmHg,
            PressureUnit::KPa => WireUnit::KPa,
        };
        let parts = [
            (Measurand::SystolicBp, self.systolic),
            (Measurand::DiastolicBp, self.diastolic),
            (Measurand::MeanBp, self.mean_arterial_pressure),
        ];
        // A special value leaves its component out of the panel (the model's panel has no
        // per-component absence, and a mean the cuff did not compute is routine); only when
        // no component has a value is the panel reported absent.
        let mut first_special = None;
        let mut any_value = false;
        for (measurand, value) in parts {
            match value {
                Medfloat::Value { mantissa, exponent } => {
                    b.number(measurand, (mantissa.into(), exponent.into()), unit, quality)?;
                    any_value = true;
                }
                Medfloat::Special(s) => {
                    first_special.get_or_insert(s);
                }
            }
        }
        if let (false, Some(special)) = (any_value, first_special) {
            b.absent(
                ObservationCode::BloodPressure,
                AbsentReason::NotObtained,
                AbsentCause::SpecialValue(special),
                quality,
            );
        }
        if let Some(pulse) = self.pulse_rate {
            b.medfloat(
                Measurand::HeartRate,
                pulse,
                WireUnit::PerMin,
                quality | pulse_quality,
            )?;
        }
        Ok(b.finish())
    }
}

pub(crate) fn decode(value: &[u8]) -> Result<BloodPressureMeasurement, BleError> {
    let mut r = Reader::new(C, value)?;
    let flags = r.flags(DEFINED)?;
    let unit = if flags & UNITS_KPA != 0 {
        PressureUnit::KPa
    } else {
        PressureUnit::MmHg
    };
    let systolic = r.sfloat("Systolic")?;
    let diastolic = r.sfloat("Diastolic")?;
    let mean_arterial_pressure = r.sfloat("Mean Arterial Pressure")?;
    let time_stamp = (flags & TIME_STAMP != 0)
        .then(|| r.date_time("Time Stamp"))
        .transpose()?;
    let pulse_rate = (flags & PULSE_RATE != 0)
        .then(|| r.sfloat("Pulse Rate"))
        .transpose()?;
    let user_id = (flags & USER_ID != 0)
        .then(|| r.u8("User ID").map(UserId))
        .transpose()?;
    let status = (flags & MEASUREMENT_STATUS != 0)
        .then(|| r.u16("Measurement Status").map(BpStatus))
        .transpose()?;
    r.finish()?;
    Ok(BloodPressureMeasurement {
        unit,
        systolic,
        diastolic,
        mean_arterial_pressure,
        time_stamp,
        pulse_rate,
        user_id,
        status,
    })
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use vigil_model::{Instant, MeasuredValue, Measurement};

    use super::*;
    use crate::ble::medfloat::Special;

    fn received() -> Instant {
        Utc.with_ymd_and_hms(2026, 11, 21, 10, 15, 30).unwrap()
    }

    fn v(mantissa: i32, exponent: i8) -> Medfloat {
        Medfloat::Value { mantissa, exponent }
    }

    fn kind(value: &[u8]) -> &'static str {
        decode(value).unwrap_err().kind()
    }

    fn number(m: &Measurement) -> f64 {
        match m.value {
            MeasuredValue::Number(n) => n,
            other => panic!("{other:?}"),
        }
    }

    /// 120/80 mmHg, MAP 93, at 2024-03-15 08:30:00, pulse 72, user 1, status body movement.
    const FULL: [u8; 22] = [
        0x1e, 0x78, 0x00, 0x50, 0x00, 0x5d, 0x00, // flags, 120, 80, 93
        0xe8, 0x07, 0x03, 0x0f, 0x08, 0x1e, 0x00, // 2024-03-15 08:30:00
        0x48, 0x00, // pulse 72
        0x01, // user 1
        0x01, 0x00, // body movement
        0x00, 0x00, 0x00,
    ];

    #[test]
    fn all_fields() {
        let m = decode(&FULL[..19]).unwrap();
        assert_eq!(m.unit, PressureUnit::MmHg);
        assert_eq!(m.systolic, v(120, 0));
        // 114 mmHg = 0x0072, the reference's example, little-endian.
        assert_eq!(
            decode(&[0x00, 0x72, 0x00, 0x50, 0x00, 0x5d, 0x00])
                .unwrap()
                .systolic,
            v(114, 0)
        );
        assert_eq!(m.diastolic, v(80, 0));
        assert_eq!(m.mean_arterial_pressure, v(93, 0));
        assert_eq!(m.time_stamp.unwrap().to_string(), "2024-03-15T08:30:00");
        assert_eq!(m.pulse_rate, Some(v(72, 0)));
        assert_eq!(m.user_id, Some(UserId(1)));
        assert!(m.status.unwrap().body_movement());
        assert_eq!(
            m.status.unwrap().pulse_rate_range(),
            PulseRateRange::WithinRange
        );
        assert_eq!(kind(&FULL[..20]), "trailing_bytes");
    }

    /// Builds a value with the fields `flags` announces.
    fn value_for(flags: u8) -> Vec<u8> {
        let mut v = vec![flags, 0x78, 0x00, 0x50, 0x00, 0x5d, 0x00];
        if flags & TIME_STAMP != 0 {
            v.extend([0xe8, 0x07, 0x03, 0x0f, 0x08, 0x1e, 0x00]);
        }
        if flags & PULSE_RATE != 0 {
            v.extend([0x48, 0x00]);
        }
        if flags & USER_ID != 0 {
            v.push(0xff);
        }
        if flags & MEASUREMENT_STATUS != 0 {
            v.extend([0x00, 0x00]);
        }
        v
    }

    #[test]
    fn every_flag_combination() {
        for flags in 0..=DEFINED {
            let value = value_for(flags);
            let m = decode(&value).unwrap_or_else(|e| panic!("{flags:#04x}: {e}"));
            assert_eq!(m.unit == PressureUnit::KPa, flags & UNITS_KPA != 0);
            assert_eq!(m.time_stamp.is_some(), flags & TIME_STAMP != 0);
            assert_eq!(m.pulse_rate.is_some(), flags & PULSE_RATE != 0);
            assert_eq!(m.user_id.is_some(), flags & USER_ID != 0);
            assert_eq!(m.status.is_some(), flags & MEASUREMENT_STATUS != 0);
            if flags & USER_ID != 0 {
                assert!(m.user_id.unwrap().is_unknown());
            }
            for cut in 0..value.len() {
                assert_eq!(
                    kind(&value[..cut]),
                    "truncated",
                    "{flags:#04x} cut at {cut}"
                );
            }
            let mut longer = value.clone();
            longer.push(0);
            assert_eq!(kind(&longer), "trailing_bytes", "{flags:#04x}");
            // The mapping accepts every combination (kPa values of 120/80/93 are implausible
            // as mmHg: 900 mmHg; those are checked separately).
            if flags & UNITS_KPA == 0 {
                let timing = Timing::at_receipt(received());
                let mapped = m.measurements(&timing).unwrap();
                let expected = 3 + usize::from(flags & PULSE_RATE != 0);
                assert_eq!(mapped.measurements.len(), expected, "{flags:#04x}");
            }
        }
    }

    #[test]
    fn reserved_flags_and_bad_time_stamps_are_refused() {
        for bit in 5..8 {
            let mut value = value_for(0);
            value[0] = 1 << bit;
            assert_eq!(kind(&value), "reserved_flags");
        }
        let mut value = value_for(TIME_STAMP);
        value[9] = 13; // month
        assert_eq!(kind(&value), "bad_date_time");
        let e = decode(&value).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Blood Pressure Measurement (0x2A35): Time Stamp is not a valid Date Time (0x2A08): \
             month 13 is outside 0 (not known) or 1 to 12"
        );
    }

    #[test]
    fn mapping_mmhg_with_time_stamp_pulse_and_status() {
        let timing = Timing::at_receipt(received());
        let m = decode(&FULL[..19]).unwrap().measurements(&timing).unwrap();
        assert!(m.absent.is_empty());
        let got: Vec<_> = m
            .measurements
            .iter()
            .map(|m| (m.measurand, number(m), m.quality))
            .collect();
        let q = QualityFlags::QUESTIONABLE;
        assert_eq!(
            got,
            [
                (Measurand::SystolicBp, 120.0, q),
                (Measurand::DiastolicBp, 80.0, q),
                (Measurand::MeanBp, 93.0, q),
                (Measurand::HeartRate, 72.0, q),
            ]
        );
        // The time stamp, read as UTC (no gateway offset given).
        let at = Utc.with_ymd_and_hms(2024, 3, 15, 8, 30, 0).unwrap();
        assert!(m.measurements.iter().all(|m| m.effective == at));
        let readings = m.into_readings();
        assert_eq!(readings.len(), 2, "one panel and the pulse");
        assert_eq!(readings[0].code, ObservationCode::BloodPressure);
    }

    #[test]
    fn mapping_kpa_is_converted_to_mmhg() {
        // 16.0 kPa / 10.7 kPa / 12.4 kPa: exponent −1 each (0xF0A0, 0xF06B, 0xF07C).
        let value = [0x01, 0xa0, 0xf0, 0x6b, 0xf0, 0x7c, 0xf0];
        let bp = decode(&value).unwrap();
        assert_eq!(bp.unit, PressureUnit::KPa);
        assert_eq!(bp.systolic, v(160, -1));
        let m = bp.measurements(&Timing::at_receipt(received())).unwrap();
        let sys = &m.measurements[0];
        assert!(
            (number(sys) - 120.009_852_135_3).abs() < 1e-9,
            "{}",
            number(sys)
        );
        assert!(sys.quality.contains(QualityFlags::CONVERTED_UNIT));
        assert!(sys.quality.contains(QualityFlags::TIME_FROM_RECEIPT));
    }

    #[test]
    fn mapping_special_values() {
        let timing = Timing::at_receipt(received());
        // MAP NaN (not computed): left out of the panel, nothing absent.
        let m = decode(&[0x00, 0x78, 0x00, 0x50, 0x00, 0xff, 0x07])
            .unwrap()
            .measurements(&timing)
            .unwrap();
        assert_eq!(m.measurements.len(), 2);
        assert!(m.absent.is_empty());
        // All three special: the panel is absent, not obtained.
        let m = decode(&[0x00, 0x00, 0x08, 0xff, 0x07, 0xff, 0x07])
            .unwrap()
            .measurements(&timing)
            .unwrap();
        assert!(m.measurements.is_empty());
        assert_eq!(m.absent.len(), 1);
        assert_eq!(m.absent[0].code, ObservationCode::BloodPressure);
        assert_eq!(m.absent[0].reason, AbsentReason::NotObtained);
        assert_eq!(m.absent[0].cause, AbsentCause::SpecialValue(Special::NRes));
        // A special pulse rate is an absent heart rate beside a valid panel.
        let m = decode(&[0x04, 0x78, 0x00, 0x50, 0x00, 0x5d, 0x00, 0xfe, 0x07])
            .unwrap()
            .measurements(&timing)
            .unwrap();
        assert_eq!(m.measurements.len(), 3);
        assert_eq!(
            m.absent[0].code,
            ObservationCode::Single(Measurand::HeartRate)
        );
        assert_eq!(
            m.absent[0].cause,
            AbsentCause::SpecialValue(Special::PositiveInfinity)
        );
    }

    #[test]
    fn mapping_status_bits_to_quality() {
        let timing = Timing::at_receipt(received());
        let flags_for = |status: u16| {
            let mut value = value_for(PULSE_RATE | MEASUREMENT_STATUS);
            let n = value.len();
            value[n - 2..].copy_from_slice(&status.to_le_bytes());
            let m = decode(&value).unwrap().measurements(&timing).unwrap();
            let strip = |q: QualityFlags| {
                QualityFlags::from_bits_truncate(q.bits() & !QualityFlags::TIME_FROM_RECEIPT.bits())
            };
            (
                strip(m.measurements[0].quality),
                strip(m.measurements[3].quality),
            )
        };
        let none = QualityFlags::empty();
        let q = QualityFlags::QUESTIONABLE;
        let a = QualityFlags::ARTIFACT;
        assert_eq!(flags_for(0), (none, none));
        assert_eq!(flags_for(1 << 0), (q, q), "body movement");
        assert_eq!(flags_for(1 << 1), (a, a), "cuff too loose");
        assert_eq!(
            flags_for(1 << 2),
            (none, none),
            "irregular pulse is a finding"
        );
        assert_eq!(flags_for(1 << 3), (none, q), "pulse above range");
        assert_eq!(flags_for(2 << 3), (none, q), "pulse below range");
        assert_eq!(flags_for(3 << 3), (none, none), "reserved range value");
        assert_eq!(flags_for(1 << 5), (q, q), "improper position");
        assert_eq!(flags_for(0xffc0), (none, none), "reserved status bits");
        assert_eq!(flags_for(0b10_0011), (q | a, q | a));
    }

    #[test]
    fn mapping_refuses_implausible_values_whole() {
        let timing = Timing::at_receipt(received());
        // Systolic 400 mmHg.
        let e = decode(&[0x00, 0x90, 0x01, 0x50, 0x00, 0x5d, 0x00])
            .unwrap()
            .measurements(&timing)
            .unwrap_err();
        assert_eq!(e.kind(), "implausible_value");
        // 120 kPa is 900 mmHg; the message shows what was sent.
        let e = decode(&[0x01, 0x78, 0x00, 0x50, 0x00, 0x5d, 0x00])
            .unwrap()
            .measurements(&timing)
            .unwrap_err();
        assert!(e.to_string().contains("(sent as 120 kPa)"), "{e}");
    }
}
