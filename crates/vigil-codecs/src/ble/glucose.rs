//! Glucose Measurement (0x2A18), Glucose Service 0x1808 (GATT Specification Supplement,
//! "Glucose Measurement"; Sensor Status Annunciation as the Glucose Service defines it).

use vigil_model::{AbsentReason, Measurand, ObservationCode, QualityFlags};

use super::datetime::BleDateTime;
use super::mapping::{AbsentCause, Builder, MappedMeasurements, Timing, WireUnit};
use super::medfloat::Medfloat;
use super::reader::Reader;
use super::{BleError, Characteristic};

const C: Characteristic = Characteristic::GlucoseMeasurement;

const TIME_OFFSET: u8 = 1 << 0;
const CONCENTRATION: u8 = 1 << 1;
const UNITS_MOL_PER_L: u8 = 1 << 2;
const SENSOR_STATUS: u8 = 1 << 3;
const CONTEXT_FOLLOWS: u8 = 1 << 4;
const DEFINED: u8 = TIME_OFFSET | CONCENTRATION | UNITS_MOL_PER_L | SENSOR_STATUS | CONTEXT_FOLLOWS;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GlucoseUnit {
    KgPerL,
    MolPerL,
}

/// Type, the low nibble of the Type-Sample Location octet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GlucoseType {
    CapillaryWholeBlood,
    CapillaryPlasma,
    VenousWholeBlood,
    VenousPlasma,
    ArterialWholeBlood,
    ArterialPlasma,
    UndeterminedWholeBlood,
    UndeterminedPlasma,
    InterstitialFluid,
    ControlSolution,
    /// 0 or 11–15, reserved for future use.
    Reserved(u8),
}

impl GlucoseType {
    pub fn from_nibble(n: u8) -> GlucoseType {
        match n & 0x0f {
            1 => GlucoseType::CapillaryWholeBlood,
            2 => GlucoseType::CapillaryPlasma,
            3 => GlucoseType::VenousWholeBlood,
            4 => GlucoseType::VenousPlasma,
            5 => GlucoseType::ArterialWholeBlood,
            6 => GlucoseType::ArterialPlasma,
            7 => GlucoseType::UndeterminedWholeBlood,
            8 => GlucoseType::UndeterminedPlasma,
            9 => GlucoseType::InterstitialFluid,
            10 => GlucoseType::ControlSolution,
            other => GlucoseType::Reserved(other),
        }
    }
}

/// Sample Location, the high nibble of the Type-Sample Location octet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SampleLocation {
    Finger,
    AlternateSiteTest,
    Earlobe,
    ControlSolution,
    /// 15: value not available.
    NotAvailable,
    /// 0 or 5–14, reserved for future use.
    Reserved(u8),
}

impl SampleLocation {
    pub fn from_nibble(n: u8) -> SampleLocation {
        match n & 0x0f {
            1 => SampleLocation::Finger,
            2 => SampleLocation::AlternateSiteTest,
            3 => SampleLocation::Earlobe,
            4 => SampleLocation::ControlSolution,
            15 => SampleLocation::NotAvailable,
            other => SampleLocation::Reserved(other),
        }
    }
}

/// Glucose Concentration with its unit, Type and Sample Location (present together, flags bit 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GlucoseConcentration {
    pub value: Medfloat,
    pub unit: GlucoseUnit,
    pub fluid_type: GlucoseType,
    pub sample_location: SampleLocation,
}

/// Sensor Status Annunciation (16 bits). Bits 12–15 are reserved and ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GlucoseSensorStatus(pub u16);

impl GlucoseSensorStatus {
    pub const DEVICE_BATTERY_LOW: u16 = 1 << 0;
    pub const SENSOR_MALFUNCTION: u16 = 1 << 1;
    pub const SAMPLE_SIZE_INSUFFICIENT: u16 = 1 << 2;
    pub const STRIP_INSERTION_ERROR: u16 = 1 << 3;
    pub const STRIP_TYPE_INCORRECT: u16 = 1 << 4;
    pub const RESULT_TOO_HIGH: u16 = 1 << 5;
    pub const RESULT_TOO_LOW: u16 = 1 << 6;
    pub const SENSOR_TEMPERATURE_TOO_HIGH: u16 = 1 << 7;
    pub const SENSOR_TEMPERATURE_TOO_LOW: u16 = 1 << 8;
    pub const SENSOR_READ_INTERRUPTED: u16 = 1 << 9;
    pub const GENERAL_DEVICE_FAULT: u16 = 1 << 10;
    pub const TIME_FAULT: u16 = 1 << 11;

    pub fn has(self, bit: u16) -> bool {
        self.0 & bit != 0
    }
}

/// One Glucose Measurement value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlucoseMeasurement {
    /// Identifies the record in the meter's store: a resent record has the same number.
    pub sequence_number: u16,
    pub base_time: BleDateTime,
    /// Minutes to add to `base_time` (flags bit 0).
    pub time_offset_min: Option<i16>,
    pub concentration: Option<GlucoseConcentration>,
    pub sensor_status: Option<GlucoseSensorStatus>,
    /// Flags bit 4: a Glucose Measurement Context (0x2A34) with the same sequence number follows.
    pub context_follows: bool,
}

impl GlucoseMeasurement {
    /// Base Time plus Time Offset, as local wall-clock time; `None` when the base time is not
    /// known or the meter reports a time fault (its clock is not to be believed).
    pub fn measurement_time(&self) -> Option<chrono::NaiveDateTime> {
        let status = self.sensor_status.unwrap_or(GlucoseSensorStatus(0));
        if status.has(GlucoseSensorStatus::TIME_FAULT) {
            return None;
        }
        let base = self.base_time.to_naive()?;
        let offset = chrono::Duration::minutes(self.time_offset_min.unwrap_or(0).into());
        base.checked_add_signed(offset)
    }

    pub(crate) fn measurements(&self, timing: &Timing) -> Result<MappedMeasurements, BleError> {
        let mut b = Builder::new(C, timing.resolve(C, self.measurement_time())?);
        if let Some(c) = &self.concentration
            && (c.fluid_type == GlucoseType::ControlSolution
                || c.sample_location == SampleLocation::ControlSolution)
        {
            return Err(BleError::NotPatientData {
                characteristic: C,
                why: "the sample is control solution (a check of the meter)",
            });
        }
        type S = GlucoseSensorStatus;
        let status = self.sensor_status.unwrap_or(GlucoseSensorStatus(0));
        // A failed strip or sensor gives a number that is not the patient's glucose: an artifact,
        // shown as a technical notice and kept from the physiological alarms. A sensor outside
        // its temperature range measures, but less surely. "Result higher/lower than the device
        // can process" flags nothing: the number is the meter's limit and the true value lies
        // beyond it, so it must reach the glucose alarms (the model has no "greater than").
        let artifact = S::SENSOR_MALFUNCTION
            | S::SAMPLE_SIZE_INSUFFICIENT
            | S::STRIP_INSERTION_ERROR
            | S::STRIP_TYPE_INCORRECT
            | S::SENSOR_READ_INTERRUPTED
            | S::GENERAL_DEVICE_FAULT;
        let questionable = S::SENSOR_TEMPERATURE_TOO_HIGH | S::SENSOR_TEMPERATURE_TOO_LOW;
        let mut quality = QualityFlags::empty();
        if status.0 & artifact != 0 {
            quality.insert(QualityFlags::ARTIFACT);
        }
        if status.0 & questionable != 0 {
            quality.insert(QualityFlags::QUESTIONABLE);
        }
        match &self.concentration {
            None => b.absent(
                ObservationCode::Single(Measurand::Glucose),
                AbsentReason::NotObtained,
                AbsentCause::NoConcentration,
                quality,
            ),
            Some(c) => {
                let unit = match c.unit {
                    GlucoseUnit::KgPerL => WireUnit::KgPerL,
                    GlucoseUnit::MolPerL => WireUnit::MolPerL,
                };
                b.medfloat(Measurand::Glucose, c.value, unit, quality)?;
            }
        }
        Ok(b.finish())
    }
}

pub(crate) fn decode(value: &[u8]) -> Result<GlucoseMeasurement, BleError> {
    let mut r = Reader::new(C, value)?;
    let flags = r.flags(DEFINED)?;
    let sequence_number = r.u16("Sequence Number")?;
    let base_time = r.date_time("Base Time")?;
    let time_offset_min = (flags & TIME_OFFSET != 0)
        .then(|| r.i16("Time Offset"))
        .transpose()?;
    // The units bit describes a field the flags may leave out; alone it changes no layout and
    // no value, so it is accepted without the concentration.
    let concentration = if flags & CONCENTRATION != 0 {
        let value = r.sfloat("Glucose Concentration")?;
        let type_location = r.u8("Type-Sample Location")?;
        Some(GlucoseConcentration {
            value,
            unit: if flags & UNITS_MOL_PER_L != 0 {
                GlucoseUnit::MolPerL
            } else {
                GlucoseUnit::KgPerL
            },
            // Type is the low nibble, Sample Location the high one.
            fluid_type: GlucoseType::from_nibble(type_location & 0x0f),
            sample_location: SampleLocation::from_nibble(type_location >> 4),
        })
    } else {
        None
    };
    let sensor_status = (flags & SENSOR_STATUS != 0)
        .then(|| r.u16("Sensor Status Annunciation").map(GlucoseSensorStatus))
        .transpose()?;
    r.finish()?;
    Ok(GlucoseMeasurement {
        sequence_number,
        base_time,
        time_offset_min,
        concentration,
        sensor_status,
        context_follows: flags & CONTEXT_FOLLOWS != 0,
    })
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use vigil_model::{Instant, MeasuredValue};

    use super::*;
    use crate::ble::medfloat::Special;

    fn received() -> Instant {
        Utc.with_ymd_and_hms(2026, 11, 21, 10, 15, 30).unwrap()
    }

    const BASE_TIME: [u8; 7] = [0xe8, 0x07, 0x03, 0x0f, 0x08, 0x1e, 0x00];

    /// A value with the fields `flags` announces: sequence 7, 2024-03-15 08:30:00, offset −30
    /// min, 110 mg/dL as 0.00110 kg/L (0xB06E) or 6.1 mmol/L as 0.0061 mol/L (0xC03D), type-
    /// location `0x12`, sensor status `status`.
    fn value_for(flags: u8, status: u16) -> Vec<u8> {
        let mut v = vec![flags, 0x07, 0x00];
        v.extend(BASE_TIME);
        if flags & TIME_OFFSET != 0 {
            v.extend((-30i16).to_le_bytes());
        }
        if flags & CONCENTRATION != 0 {
            if flags & UNITS_MOL_PER_L != 0 {
                v.extend([0x3d, 0xc0]);
            } else {
                v.extend([0x6e, 0xb0]);
            }
            v.push(0x12);
        }
        if flags & SENSOR_STATUS != 0 {
            v.extend(status.to_le_bytes());
        }
        v
    }

    fn mapped(flags: u8, status: u16) -> Result<MappedMeasurements, BleError> {
        decode(&value_for(flags, status))
            .unwrap()
            .measurements(&Timing::at_receipt(received()))
    }

    fn glucose(m: &MappedMeasurements) -> f64 {
        match m.measurements[0].value {
            MeasuredValue::Number(n) => n,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn reference_examples_kg_per_l_and_mol_per_l() {
        // 110 mg/dL = 0.00110 kg/L = 0xB06E.
        let g = decode(&value_for(CONCENTRATION, 0)).unwrap();
        let c = g.concentration.unwrap();
        assert_eq!(
            c.value,
            Medfloat::Value {
                mantissa: 110,
                exponent: -5
            }
        );
        assert_eq!(c.unit, GlucoseUnit::KgPerL);
        let m = mapped(CONCENTRATION, 0).unwrap();
        assert_eq!(glucose(&m), 110.0);
        assert!(
            m.measurements[0]
                .quality
                .contains(QualityFlags::CONVERTED_UNIT)
        );
        // 6.1 mmol/L = 0.0061 mol/L = 0xC03D; 6.1 × 18.0156 mg/dL.
        let m = mapped(CONCENTRATION | UNITS_MOL_PER_L, 0).unwrap();
        assert!((glucose(&m) - 109.895_16).abs() < 1e-9, "{}", glucose(&m));
        // The reference's 0.00118 kg/L (0xB076) is 118 mg/dL.
        let mut v = value_for(CONCENTRATION, 0);
        v[10..12].copy_from_slice(&[0x76, 0xb0]);
        let m = decode(&v)
            .unwrap()
            .measurements(&Timing::at_receipt(received()))
            .unwrap();
        assert_eq!(glucose(&m), 118.0);
    }

    #[test]
    fn type_is_the_low_nibble_and_location_the_high_one() {
        // 0x12: type 2 (capillary plasma), location 1 (finger).
        let c = decode(&value_for(CONCENTRATION, 0))
            .unwrap()
            .concentration
            .unwrap();
        assert_eq!(c.fluid_type, GlucoseType::CapillaryPlasma);
        assert_eq!(c.sample_location, SampleLocation::Finger);
        let types: Vec<_> = (0..16).map(GlucoseType::from_nibble).collect();
        assert_eq!(types[1], GlucoseType::CapillaryWholeBlood);
        assert_eq!(types[9], GlucoseType::InterstitialFluid);
        assert_eq!(types[10], GlucoseType::ControlSolution);
        assert_eq!(types[0], GlucoseType::Reserved(0));
        assert_eq!(types[11], GlucoseType::Reserved(11));
        let locations: Vec<_> = (0..16).map(SampleLocation::from_nibble).collect();
        assert_eq!(locations[2], SampleLocation::AlternateSiteTest);
        assert_eq!(locations[3], SampleLocation::Earlobe);
        assert_eq!(locations[4], SampleLocation::ControlSolution);
        assert_eq!(locations[15], SampleLocation::NotAvailable);
        assert_eq!(locations[5], SampleLocation::Reserved(5));
    }

    #[test]
    fn every_flag_combination() {
        for flags in 0..=DEFINED {
            let value = value_for(flags, 0);
            let g = decode(&value).unwrap_or_else(|e| panic!("{flags:#04x}: {e}"));
            assert_eq!(g.sequence_number, 7);
            assert_eq!(g.base_time.to_string(), "2024-03-15T08:30:00");
            assert_eq!(g.time_offset_min, (flags & TIME_OFFSET != 0).then_some(-30));
            assert_eq!(g.concentration.is_some(), flags & CONCENTRATION != 0);
            assert_eq!(g.sensor_status.is_some(), flags & SENSOR_STATUS != 0);
            assert_eq!(g.context_follows, flags & CONTEXT_FOLLOWS != 0);
            for cut in 0..value.len() {
                assert_eq!(decode(&value[..cut]).unwrap_err().kind(), "truncated");
            }
            let mut longer = value.clone();
            longer.push(0);
            assert_eq!(decode(&longer).unwrap_err().kind(), "trailing_bytes");

            let m = g.measurements(&Timing::at_receipt(received())).unwrap();
            let minutes = if flags & TIME_OFFSET != 0 { 0 } else { 30 };
            let expected = Utc.with_ymd_and_hms(2024, 3, 15, 8, minutes, 0).unwrap();
            if flags & CONCENTRATION != 0 {
                assert_eq!(m.measurements.len(), 1);
                assert_eq!(m.measurements[0].effective, expected, "{flags:#04x}");
            } else {
                assert!(m.measurements.is_empty());
                assert_eq!(m.absent.len(), 1);
                assert_eq!(m.absent[0].cause, AbsentCause::NoConcentration);
                assert_eq!(m.absent[0].effective, expected, "{flags:#04x}");
            }
        }
        for bit in 5..8 {
            let mut v = value_for(0, 0);
            v[0] = 1 << bit;
            assert_eq!(decode(&v).unwrap_err().kind(), "reserved_flags");
        }
    }

    #[test]
    fn base_time_is_checked_and_an_unknown_one_is_not_used() {
        let mut v = value_for(CONCENTRATION, 0);
        v[7] = 24; // hours
        assert_eq!(decode(&v).unwrap_err().kind(), "bad_date_time");
        let mut v = value_for(CONCENTRATION | TIME_OFFSET, 0);
        v[3..10].copy_from_slice(&[0, 0, 0, 0, 8, 30, 0]);
        let m = decode(&v)
            .unwrap()
            .measurements(&Timing::at_receipt(received()))
            .unwrap();
        assert_eq!(m.measurements[0].effective, received());
        assert!(
            m.measurements[0]
                .quality
                .contains(QualityFlags::TIME_FROM_RECEIPT)
        );
    }

    #[test]
    fn a_time_fault_discards_the_meter_time() {
        let m = mapped(
            CONCENTRATION | SENSOR_STATUS,
            GlucoseSensorStatus::TIME_FAULT,
        )
        .unwrap();
        assert_eq!(m.measurements[0].effective, received());
        assert_eq!(
            m.measurements[0].quality,
            QualityFlags::CONVERTED_UNIT | QualityFlags::TIME_FROM_RECEIPT
        );
    }

    #[test]
    fn sensor_status_to_quality() {
        type S = GlucoseSensorStatus;
        let flags = CONCENTRATION | SENSOR_STATUS;
        let quality = |status| {
            let q = mapped(flags, status).unwrap().measurements[0].quality;
            (
                q.contains(QualityFlags::ARTIFACT),
                q.contains(QualityFlags::QUESTIONABLE),
            )
        };
        for bit in [
            S::SENSOR_MALFUNCTION,
            S::SAMPLE_SIZE_INSUFFICIENT,
            S::STRIP_INSERTION_ERROR,
            S::STRIP_TYPE_INCORRECT,
            S::SENSOR_READ_INTERRUPTED,
            S::GENERAL_DEVICE_FAULT,
        ] {
            assert_eq!(quality(bit), (true, false), "{bit:#x}");
        }
        for bit in [
            S::SENSOR_TEMPERATURE_TOO_HIGH,
            S::SENSOR_TEMPERATURE_TOO_LOW,
        ] {
            assert_eq!(quality(bit), (false, true), "{bit:#x}");
        }
        for bit in [
            S::DEVICE_BATTERY_LOW,
            S::RESULT_TOO_HIGH,
            S::RESULT_TOO_LOW,
            S::TIME_FAULT,
            0xf000,
        ] {
            assert_eq!(quality(bit), (false, false), "{bit:#x}");
        }
    }

    #[test]
    fn control_solution_is_not_the_patient() {
        for type_location in [0x1a, 0x42, 0x4a] {
            let mut v = value_for(CONCENTRATION, 0);
            v[12] = type_location;
            let e = decode(&v)
                .unwrap()
                .measurements(&Timing::at_receipt(received()))
                .unwrap_err();
            assert_eq!(e.kind(), "not_patient_data", "{type_location:#x}");
        }
    }

    #[test]
    fn special_concentration_is_absent() {
        let mut v = value_for(CONCENTRATION, 0);
        v[10..12].copy_from_slice(&Special::PositiveInfinity.sfloat_raw().to_le_bytes());
        let m = decode(&v)
            .unwrap()
            .measurements(&Timing::at_receipt(received()))
            .unwrap();
        assert!(m.measurements.is_empty());
        assert_eq!(m.absent[0].reason, AbsentReason::NotObtained);
        assert_eq!(
            m.absent[0].cause,
            AbsentCause::SpecialValue(Special::PositiveInfinity)
        );
    }

    #[test]
    fn implausible_concentration_is_refused() {
        // 0.0400 kg/L = 4000 mg/dL, beyond the 3000 mg/dL plausible maximum.
        let mut v = value_for(CONCENTRATION, 0);
        v[10..12].copy_from_slice(&[0x90, 0xc1]); // mantissa 400, exponent −4
        let e = decode(&v)
            .unwrap()
            .measurements(&Timing::at_receipt(received()))
            .unwrap_err();
        assert_eq!(e.kind(), "implausible_value");
        assert!(e.to_string().contains("(sent as 0.04 kg/L)"), "{e}");
    }
}
