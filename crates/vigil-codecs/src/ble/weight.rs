//! Weight Measurement (0x2A9D), Weight Scale Service 0x181D (GATT Specification Supplement,
//! "Weight Measurement"; "Measurement Unsuccessful" from the Weight Scale Service).

use vigil_model::{AbsentReason, Measurand, ObservationCode, QualityFlags};

use super::datetime::BleDateTime;
use super::mapping::{AbsentCause, Builder, MappedMeasurements, Timing, WireUnit};
use super::reader::Reader;
use super::{BleError, Characteristic, UserId};

const C: Characteristic = Characteristic::WeightMeasurement;

const IMPERIAL: u8 = 1 << 0;
const TIME_STAMP: u8 = 1 << 1;
const USER_ID: u8 = 1 << 2;
const BMI_AND_HEIGHT: u8 = 1 << 3;
const DEFINED: u8 = IMPERIAL | TIME_STAMP | USER_ID | BMI_AND_HEIGHT;

/// The raw weight that means "Measurement Unsuccessful".
pub const WEIGHT_UNSUCCESSFUL: u16 = 0xFFFF;

/// Flags bit 0: SI (kg, m) or imperial (lb, in).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WeightUnits {
    Si,
    Imperial,
}

/// One Weight Measurement value. Raw fields keep the device's resolution; the methods give
/// the numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightMeasurement {
    pub units: WeightUnits,
    /// In 0.005 kg (SI) or 0.01 lb (imperial); `None` when the scale sent 0xFFFF,
    /// "Measurement Unsuccessful".
    pub weight: Option<u16>,
    pub time_stamp: Option<BleDateTime>,
    pub user_id: Option<UserId>,
    /// In 0.1 kg/m² in both unit systems (flags bit 3, with height).
    pub bmi: Option<u16>,
    /// In 0.001 m (SI) or 0.1 in (imperial) (flags bit 3, with BMI).
    pub height: Option<u16>,
}

impl WeightMeasurement {
    /// The weight as a decimal (mantissa, exponent) in kg or lb.
    fn weight_decimal(&self) -> Option<(i64, i32)> {
        self.weight.map(|raw| match self.units {
            WeightUnits::Si => (i64::from(raw) * 5, -3),
            WeightUnits::Imperial => (raw.into(), -2),
        })
    }

    /// The height as a decimal (mantissa, exponent) in m or in.
    fn height_decimal(&self) -> Option<(i64, i32)> {
        self.height.map(|raw| match self.units {
            WeightUnits::Si => (raw.into(), -3),
            WeightUnits::Imperial => (raw.into(), -1),
        })
    }

    /// The weight in kg (SI) or lb (imperial).
    pub fn weight_value(&self) -> Option<f64> {
        self.weight_decimal()
            .map(|(m, e)| super::medfloat::decimal_to_f64(m, e))
    }

    /// The height in m (SI) or in (imperial).
    pub fn height_value(&self) -> Option<f64> {
        self.height_decimal()
            .map(|(m, e)| super::medfloat::decimal_to_f64(m, e))
    }

    /// BMI in kg/m².
    pub fn bmi_value(&self) -> Option<f64> {
        self.bmi.map(|raw| f64::from(raw) / 10.0)
    }

    /// Weight becomes `Weight`, height `Height`; BMI has no measurand and stays in the value.
    pub(crate) fn measurements(&self, timing: &Timing) -> Result<MappedMeasurements, BleError> {
        let device_time = self.time_stamp.and_then(|t| t.to_naive());
        let mut b = Builder::new(C, timing.resolve(C, device_time)?);
        let (weight_unit, height_unit) = match self.units {
            WeightUnits::Si => (WireUnit::Kg, WireUnit::Metre),
            WeightUnits::Imperial => (WireUnit::Pound, WireUnit::Inch),
        };
        match self.weight_decimal() {
            Some(weight) => {
                b.number(
                    Measurand::Weight,
                    weight,
                    weight_unit,
                    QualityFlags::empty(),
                )?;
            }
            None => b.absent(
                ObservationCode::Single(Measurand::Weight),
                AbsentReason::NotObtained,
                AbsentCause::MeasurementUnsuccessful,
                QualityFlags::empty(),
            ),
        }
        if let Some(height) = self.height_decimal() {
            b.number(
                Measurand::Height,
                height,
                height_unit,
                QualityFlags::empty(),
            )?;
        }
        Ok(b.finish())
    }
}

pub(crate) fn decode(value: &[u8]) -> Result<WeightMeasurement, BleError> {
    let mut r = Reader::new(C, value)?;
    let flags = r.flags(DEFINED)?;
    let units = if flags & IMPERIAL != 0 {
        WeightUnits::Imperial
    } else {
        WeightUnits::Si
    };
    let raw_weight = r.u16("Weight")?;
    let time_stamp = (flags & TIME_STAMP != 0)
        .then(|| r.date_time("Time Stamp"))
        .transpose()?;
    let user_id = (flags & USER_ID != 0)
        .then(|| r.u8("User ID").map(UserId))
        .transpose()?;
    let (bmi, height) = if flags & BMI_AND_HEIGHT != 0 {
        if raw_weight == WEIGHT_UNSUCCESSFUL {
            return Err(BleError::InconsistentFlags {
                characteristic: r.characteristic(),
                why: "the weight is 0xFFFF (Measurement Unsuccessful), with which the Weight \
                      Scale Service disables every optional field but Time Stamp and User ID, \
                      yet flags bit 3 announces BMI and Height",
            });
        }
        (Some(r.u16("BMI")?), Some(r.u16("Height")?))
    } else {
        (None, None)
    };
    r.finish()?;
    Ok(WeightMeasurement {
        units,
        weight: (raw_weight != WEIGHT_UNSUCCESSFUL).then_some(raw_weight),
        time_stamp,
        user_id,
        bmi,
        height,
    })
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use vigil_model::{Instant, MeasuredValue, Measurement};

    use super::*;

    fn received() -> Instant {
        Utc.with_ymd_and_hms(2026, 11, 21, 10, 15, 30).unwrap()
    }

    fn number(m: &Measurement) -> f64 {
        match m.value {
            MeasuredValue::Number(n) => n,
            other => panic!("{other:?}"),
        }
    }

    fn mapped(value: &[u8]) -> Result<MappedMeasurements, BleError> {
        decode(value)
            .unwrap()
            .measurements(&Timing::at_receipt(received()))
    }

    #[test]
    fn reference_example_70_kg() {
        // 70.000 kg = 14000 raw = b0 36.
        let w = decode(&[0x00, 0xb0, 0x36]).unwrap();
        assert_eq!(w.weight, Some(14000));
        assert_eq!(w.weight_value(), Some(70.0));
        let m = mapped(&[0x00, 0xb0, 0x36]).unwrap();
        assert_eq!(m.measurements.len(), 1);
        assert_eq!(m.measurements[0].measurand, Measurand::Weight);
        assert_eq!(number(&m.measurements[0]), 70.0);
        assert_eq!(m.measurements[0].quality, QualityFlags::TIME_FROM_RECEIPT);
    }

    #[test]
    fn the_heaviest_si_weight_is_327_67_kg() {
        // 0xFFFE × 0.005 kg = 327.67 kg.
        let w = decode(&[0x00, 0xfe, 0xff]).unwrap();
        assert_eq!(w.weight_value(), Some(327.67));
        assert_eq!(
            number(&mapped(&[0x00, 0xfe, 0xff]).unwrap().measurements[0]),
            327.67
        );
    }

    #[test]
    fn measurement_unsuccessful_is_absent() {
        let m = mapped(&[0x00, 0xff, 0xff]).unwrap();
        assert!(m.measurements.is_empty());
        assert_eq!(m.absent.len(), 1);
        assert_eq!(m.absent[0].code, ObservationCode::Single(Measurand::Weight));
        assert_eq!(m.absent[0].reason, AbsentReason::NotObtained);
        assert_eq!(m.absent[0].cause, AbsentCause::MeasurementUnsuccessful);
        // With a time stamp and a user id it is still allowed…
        let mut v = vec![0x06, 0xff, 0xff];
        v.extend([0xe8, 0x07, 0x03, 0x0f, 0x08, 0x1e, 0x00, 0x02]);
        let w = decode(&v).unwrap();
        assert_eq!(w.weight, None);
        assert_eq!(w.user_id, Some(UserId(2)));
        // …but not with BMI and height.
        let e = decode(&[0x08, 0xff, 0xff, 0xf4, 0x00, 0xd9, 0x06]).unwrap_err();
        assert_eq!(e.kind(), "inconsistent_flags");
    }

    #[test]
    fn imperial_units_and_bmi_height() {
        // 154.32 lb (15432 = 0x3C48), BMI 22.6 (226), height 69.0 in (690 = 0x02B2).
        let w = decode(&[0x09, 0x48, 0x3c, 0xe2, 0x00, 0xb2, 0x02]).unwrap();
        assert_eq!(w.units, WeightUnits::Imperial);
        assert_eq!(w.weight_value(), Some(154.32));
        assert_eq!(w.bmi_value(), Some(22.6));
        assert_eq!(w.height_value(), Some(69.0));
        let m = mapped(&[0x09, 0x48, 0x3c, 0xe2, 0x00, 0xb2, 0x02]).unwrap();
        assert_eq!(m.measurements.len(), 2);
        assert!((number(&m.measurements[0]) - 154.32 * 0.453_592_37).abs() < 1e-9);
        assert!((number(&m.measurements[1]) - 175.26).abs() < 1e-9);
        assert!(
            m.measurements
                .iter()
                .all(|m| m.quality.contains(QualityFlags::CONVERTED_UNIT))
        );
        // SI: 70 kg, BMI 22.9, height 1.750 m (1750 = 0x06D6) is 175 cm.
        let m = mapped(&[0x08, 0xb0, 0x36, 0xe5, 0x00, 0xd6, 0x06]).unwrap();
        assert_eq!(m.measurements[1].measurand, Measurand::Height);
        assert_eq!(number(&m.measurements[1]), 175.0);
        assert!(
            m.measurements[1]
                .quality
                .contains(QualityFlags::CONVERTED_UNIT)
        );
        assert!(
            !m.measurements[0]
                .quality
                .contains(QualityFlags::CONVERTED_UNIT)
        );
    }

    #[test]
    fn every_flag_combination() {
        for flags in 0..=DEFINED {
            let mut value = vec![flags, 0xb0, 0x36];
            if flags & TIME_STAMP != 0 {
                value.extend([0xe8, 0x07, 0x03, 0x0f, 0x08, 0x1e, 0x00]);
            }
            if flags & USER_ID != 0 {
                value.push(0xff);
            }
            if flags & BMI_AND_HEIGHT != 0 {
                // Height 1000: 1.000 m or 100.0 in, plausible either way.
                value.extend([0xe5, 0x00, 0xe8, 0x03]);
            }
            let w = decode(&value).unwrap_or_else(|e| panic!("{flags:#04x}: {e}"));
            assert_eq!(w.units == WeightUnits::Imperial, flags & IMPERIAL != 0);
            assert_eq!(w.time_stamp.is_some(), flags & TIME_STAMP != 0);
            assert_eq!(w.user_id.is_some(), flags & USER_ID != 0);
            assert_eq!(w.bmi.is_some(), flags & BMI_AND_HEIGHT != 0);
            assert_eq!(w.height.is_some(), flags & BMI_AND_HEIGHT != 0);
            for cut in 0..value.len() {
                assert_eq!(decode(&value[..cut]).unwrap_err().kind(), "truncated");
            }
            let mut longer = value.clone();
            longer.push(0);
            assert_eq!(decode(&longer).unwrap_err().kind(), "trailing_bytes");
            let m = w.measurements(&Timing::at_receipt(received())).unwrap();
            assert_eq!(
                m.measurements.len(),
                1 + usize::from(flags & BMI_AND_HEIGHT != 0)
            );
        }
        for bit in 4..8 {
            assert_eq!(
                decode(&[1 << bit, 0xb0, 0x36]).unwrap_err().kind(),
                "reserved_flags"
            );
        }
    }

    #[test]
    fn implausible_weight_or_height_refuses_the_value() {
        assert_eq!(
            mapped(&[0x00, 0x00, 0x00]).unwrap_err().kind(),
            "implausible_value"
        );
        // Height 0.010 m.
        assert_eq!(
            mapped(&[0x08, 0xb0, 0x36, 0xe5, 0x00, 0x0a, 0x00])
                .unwrap_err()
                .kind(),
            "implausible_value"
        );
    }
}
