//! Temperature Measurement (0x2A1C), Health Thermometer Service 0x1809, with Temperature Type
//! (0x2A1D) (GATT Specification Supplement, "Temperature Measurement", "Temperature Type").

use vigil_model::{Measurand, QualityFlags};

use super::datetime::BleDateTime;
use super::mapping::{Builder, MappedMeasurements, Timing, WireUnit};
use super::medfloat::Medfloat;
use super::reader::Reader;
use super::{BleError, Characteristic};

const C: Characteristic = Characteristic::TemperatureMeasurement;

const FAHRENHEIT: u8 = 1 << 0;
const TIME_STAMP: u8 = 1 << 1;
const TEMPERATURE_TYPE: u8 = 1 << 2;
const DEFINED: u8 = FAHRENHEIT | TIME_STAMP | TEMPERATURE_TYPE;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TemperatureUnit {
    Celsius,
    Fahrenheit,
}

/// Where the temperature was taken (0x2A1D, after IEEE 11073-10408).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TemperatureType {
    Armpit,
    Body,
    Ear,
    Finger,
    GastroIntestinalTract,
    Mouth,
    Rectum,
    Toe,
    Tympanum,
    /// 0 or 10–255, reserved for future use. Kept, not refused: it says where, not what or how
    /// much, so it cannot make the value wrong.
    Reserved(u8),
}

impl TemperatureType {
    pub fn from_raw(raw: u8) -> TemperatureType {
        match raw {
            1 => TemperatureType::Armpit,
            2 => TemperatureType::Body,
            3 => TemperatureType::Ear,
            4 => TemperatureType::Finger,
            5 => TemperatureType::GastroIntestinalTract,
            6 => TemperatureType::Mouth,
            7 => TemperatureType::Rectum,
            8 => TemperatureType::Toe,
            9 => TemperatureType::Tympanum,
            other => TemperatureType::Reserved(other),
        }
    }
}

/// One Temperature Measurement value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemperatureMeasurement {
    pub unit: TemperatureUnit,
    /// A FLOAT (32-bit), not an SFLOAT.
    pub temperature: Medfloat,
    pub time_stamp: Option<BleDateTime>,
    pub temperature_type: Option<TemperatureType>,
}

impl TemperatureMeasurement {
    pub(crate) fn measurements(&self, timing: &Timing) -> Result<MappedMeasurements, BleError> {
        let device_time = self.time_stamp.and_then(|t| t.to_naive());
        let mut b = Builder::new(C, timing.resolve(C, device_time)?);
        let unit = match self.unit {
            TemperatureUnit::Celsius => WireUnit::Celsius,
            TemperatureUnit::Fahrenheit => WireUnit::Fahrenheit,
        };
        b.medfloat(
            Measurand::Temperature,
            self.temperature,
            unit,
            QualityFlags::empty(),
        )?;
        Ok(b.finish())
    }
}

pub(crate) fn decode(value: &[u8]) -> Result<TemperatureMeasurement, BleError> {
    let mut r = Reader::new(C, value)?;
    let flags = r.flags(DEFINED)?;
    let unit = if flags & FAHRENHEIT != 0 {
        TemperatureUnit::Fahrenheit
    } else {
        TemperatureUnit::Celsius
    };
    let temperature = r.float("Temperature Measurement Value")?;
    let time_stamp = (flags & TIME_STAMP != 0)
        .then(|| r.date_time("Time Stamp"))
        .transpose()?;
    let temperature_type = (flags & TEMPERATURE_TYPE != 0)
        .then(|| r.u8("Temperature Type").map(TemperatureType::from_raw))
        .transpose()?;
    r.finish()?;
    Ok(TemperatureMeasurement {
        unit,
        temperature,
        time_stamp,
        temperature_type,
    })
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use vigil_model::{AbsentReason, Instant, MeasuredValue, ObservationCode};

    use super::*;
    use crate::ble::mapping::AbsentCause;
    use crate::ble::medfloat::Special;

    fn received() -> Instant {
        Utc.with_ymd_and_hms(2026, 11, 21, 10, 15, 30).unwrap()
    }

    fn kind(value: &[u8]) -> &'static str {
        decode(value).unwrap_err().kind()
    }

    fn mapped(value: &[u8]) -> MappedMeasurements {
        decode(value)
            .unwrap()
            .measurements(&Timing::at_receipt(received()))
            .unwrap()
    }

    #[test]
    fn reference_example_36_7_celsius() {
        // 36.7 °C = FLOAT 0xFF00016F, bytes 6f 01 00 ff.
        let t = decode(&[0x00, 0x6f, 0x01, 0x00, 0xff]).unwrap();
        assert_eq!(t.unit, TemperatureUnit::Celsius);
        assert_eq!(
            t.temperature,
            Medfloat::Value {
                mantissa: 367,
                exponent: -1
            }
        );
        let m = mapped(&[0x00, 0x6f, 0x01, 0x00, 0xff]);
        assert_eq!(m.measurements[0].measurand, Measurand::Temperature);
        assert_eq!(m.measurements[0].value, MeasuredValue::Number(36.7));
        assert_eq!(m.measurements[0].quality, QualityFlags::TIME_FROM_RECEIPT);
    }

    #[test]
    fn fahrenheit_is_converted() {
        // 98.6 °F: mantissa 986 = 0x0003DA, exponent −1.
        let m = mapped(&[0x01, 0xda, 0x03, 0x00, 0xff]);
        let MeasuredValue::Number(c) = m.measurements[0].value else {
            panic!()
        };
        assert!((c - 37.0).abs() < 1e-9, "{c}");
        assert!(
            m.measurements[0]
                .quality
                .contains(QualityFlags::CONVERTED_UNIT)
        );
    }

    #[test]
    fn every_flag_combination() {
        for flags in 0..=DEFINED {
            let mut value = vec![flags, 0x6f, 0x01, 0x00, 0xff];
            if flags & TIME_STAMP != 0 {
                value.extend([0xe8, 0x07, 0x03, 0x0f, 0x08, 0x1e, 0x00]);
            }
            if flags & TEMPERATURE_TYPE != 0 {
                value.push(6);
            }
            let t = decode(&value).unwrap_or_else(|e| panic!("{flags:#04x}: {e}"));
            assert_eq!(
                t.unit == TemperatureUnit::Fahrenheit,
                flags & FAHRENHEIT != 0
            );
            assert_eq!(t.time_stamp.is_some(), flags & TIME_STAMP != 0);
            assert_eq!(
                t.temperature_type,
                (flags & TEMPERATURE_TYPE != 0).then_some(TemperatureType::Mouth)
            );
            for cut in 0..value.len() {
                assert_eq!(kind(&value[..cut]), "truncated", "{flags:#04x} {cut}");
            }
            let mut longer = value.clone();
            longer.push(0);
            assert_eq!(kind(&longer), "trailing_bytes");
            if flags & FAHRENHEIT == 0 {
                let m = t.measurements(&Timing::at_receipt(received())).unwrap();
                let expected = if flags & TIME_STAMP != 0 {
                    Utc.with_ymd_and_hms(2024, 3, 15, 8, 30, 0).unwrap()
                } else {
                    received()
                };
                assert_eq!(m.measurements[0].effective, expected);
            }
        }
        for bit in 3..8 {
            assert_eq!(kind(&[1 << bit, 0x6f, 0x01, 0x00, 0xff]), "reserved_flags");
        }
    }

    #[test]
    fn temperature_types() {
        let types: Vec<_> = (0..=10).map(TemperatureType::from_raw).collect();
        assert_eq!(
            types,
            [
                TemperatureType::Reserved(0),
                TemperatureType::Armpit,
                TemperatureType::Body,
                TemperatureType::Ear,
                TemperatureType::Finger,
                TemperatureType::GastroIntestinalTract,
                TemperatureType::Mouth,
                TemperatureType::Rectum,
                TemperatureType::Toe,
                TemperatureType::Tympanum,
                TemperatureType::Reserved(10),
            ]
        );
    }

    #[test]
    fn special_values_are_absent_never_numbers() {
        for special in Special::ALL {
            let raw = special.float_raw().to_le_bytes();
            let m = mapped(&[0x00, raw[0], raw[1], raw[2], raw[3]]);
            assert!(m.measurements.is_empty());
            assert_eq!(m.absent.len(), 1);
            assert_eq!(
                m.absent[0].code,
                ObservationCode::Single(Measurand::Temperature)
            );
            assert_eq!(m.absent[0].reason, AbsentReason::NotObtained);
            assert_eq!(m.absent[0].cause, AbsentCause::SpecialValue(special));
        }
    }

    #[test]
    fn implausible_temperatures_are_refused() {
        let timing = Timing::at_receipt(received());
        // −5.5 °C, the reference's negative FLOAT example (c9 ff ff ff).
        let t = decode(&[0x00, 0xc9, 0xff, 0xff, 0xff]).unwrap();
        assert_eq!(t.temperature.to_f64(), Some(-5.5));
        assert_eq!(
            t.measurements(&timing).unwrap_err().kind(),
            "implausible_value"
        );
        // 46.0 is the plausible maximum, 46.1 is not.
        assert!(
            decode(&[0x00, 0xcc, 0x01, 0x00, 0xff])
                .unwrap()
                .measurements(&timing)
                .is_ok()
        );
        assert!(
            decode(&[0x00, 0xcd, 0x01, 0x00, 0xff])
                .unwrap()
                .measurements(&timing)
                .is_err()
        );
    }
}
