//! PLX Spot-check Measurement (0x2A5E) and PLX Continuous Measurement (0x2A5F), Pulse Oximeter
//! Service 0x1822. The GSS snapshot the reference read has no PLX entries: the layouts are the
//! 2015 SIG characteristic definitions (`shared/reference/ble_gatt.md` §4–5).

use vigil_model::{AbsentReason, Measurand, ObservationCode, ObservationStatus, QualityFlags};

use super::datetime::BleDateTime;
use super::mapping::{AbsentCause, Builder, MappedMeasurements, Timing, WireUnit};
use super::medfloat::Medfloat;
use super::reader::Reader;
use super::{BleError, Characteristic};

/// PLX Measurement Status (16 bits). Bits 0–4 are reserved and ignored: a status bit changes no
/// layout, and an unknown one cannot be acted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PlxMeasurementStatus(pub u16);

impl PlxMeasurementStatus {
    pub const MEASUREMENT_ONGOING: u16 = 1 << 5;
    pub const EARLY_ESTIMATED_DATA: u16 = 1 << 6;
    pub const VALIDATED_DATA: u16 = 1 << 7;
    pub const FULLY_QUALIFIED_DATA: u16 = 1 << 8;
    pub const DATA_FROM_MEASUREMENT_STORAGE: u16 = 1 << 9;
    pub const DATA_FOR_DEMONSTRATION: u16 = 1 << 10;
    pub const DATA_FOR_TESTING: u16 = 1 << 11;
    pub const CALIBRATION_ONGOING: u16 = 1 << 12;
    pub const MEASUREMENT_UNAVAILABLE: u16 = 1 << 13;
    pub const QUESTIONABLE_MEASUREMENT_DETECTED: u16 = 1 << 14;
    pub const INVALID_MEASUREMENT_DETECTED: u16 = 1 << 15;

    pub fn has(self, bit: u16) -> bool {
        self.0 & bit != 0
    }
}

/// PLX Device and Sensor Status (24 bits). Bits 16–23 are reserved and ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PlxDeviceSensorStatus(pub u32);

impl PlxDeviceSensorStatus {
    pub const EXTENDED_DISPLAY_UPDATE_ONGOING: u32 = 1 << 0;
    pub const EQUIPMENT_MALFUNCTION: u32 = 1 << 1;
    pub const SIGNAL_PROCESSING_IRREGULARITY: u32 = 1 << 2;
    pub const INADEQUATE_SIGNAL: u32 = 1 << 3;
    pub const POOR_SIGNAL: u32 = 1 << 4;
    pub const LOW_PERFUSION: u32 = 1 << 5;
    pub const ERRATIC_SIGNAL: u32 = 1 << 6;
    pub const NONPULSATILE_SIGNAL: u32 = 1 << 7;
    pub const QUESTIONABLE_PULSE: u32 = 1 << 8;
    pub const SIGNAL_ANALYSIS_ONGOING: u32 = 1 << 9;
    pub const SENSOR_INTERFERENCE: u32 = 1 << 10;
    pub const SENSOR_UNCONNECTED_TO_USER: u32 = 1 << 11;
    pub const UNKNOWN_SENSOR_CONNECTED: u32 = 1 << 12;
    pub const SENSOR_DISPLACED: u32 = 1 << 13;
    pub const SENSOR_MALFUNCTIONING: u32 = 1 << 14;
    pub const SENSOR_DISCONNECTED: u32 = 1 << 15;

    pub fn has(self, bit: u32) -> bool {
        self.0 & bit != 0
    }
}

/// SpO2 and pulse rate as one pair (SpO2PR-Normal, -Fast, -Slow).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Spo2Pr {
    /// Percent.
    pub spo2: Medfloat,
    /// Beats per minute.
    pub pulse_rate: Medfloat,
}

/// One PLX Spot-check Measurement value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlxSpotCheck {
    pub reading: Spo2Pr,
    pub time_stamp: Option<BleDateTime>,
    pub measurement_status: Option<PlxMeasurementStatus>,
    pub device_sensor_status: Option<PlxDeviceSensorStatus>,
    /// Pulse Amplitude Index, percent.
    pub pulse_amplitude_index: Option<Medfloat>,
    /// Flags bit 4: the device's clock is not set, so its time stamp is not a time.
    pub device_clock_not_set: bool,
}

/// One PLX Continuous Measurement value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlxContinuous {
    pub normal: Spo2Pr,
    pub fast: Option<Spo2Pr>,
    pub slow: Option<Spo2Pr>,
    pub measurement_status: Option<PlxMeasurementStatus>,
    pub device_sensor_status: Option<PlxDeviceSensorStatus>,
    /// Pulse Amplitude Index, percent.
    pub pulse_amplitude_index: Option<Medfloat>,
}

mod spot {
    pub const TIME_STAMP: u8 = 1 << 0;
    pub const MEASUREMENT_STATUS: u8 = 1 << 1;
    pub const DEVICE_SENSOR_STATUS: u8 = 1 << 2;
    pub const PULSE_AMPLITUDE_INDEX: u8 = 1 << 3;
    pub const CLOCK_NOT_SET: u8 = 1 << 4;
    pub const DEFINED: u8 = 0x1f;
}

mod continuous {
    pub const FAST: u8 = 1 << 0;
    pub const SLOW: u8 = 1 << 1;
    pub const MEASUREMENT_STATUS: u8 = 1 << 2;
    pub const DEVICE_SENSOR_STATUS: u8 = 1 << 3;
    pub const PULSE_AMPLITUDE_INDEX: u8 = 1 << 4;
    pub const DEFINED: u8 = 0x1f;
}

fn pair(r: &mut Reader<'_>, spo2: &'static str, pr: &'static str) -> Result<Spo2Pr, BleError> {
    Ok(Spo2Pr {
        spo2: r.sfloat(spo2)?,
        pulse_rate: r.sfloat(pr)?,
    })
}

/// The fields both PLX characteristics end with: Measurement Status, Device and Sensor Status,
/// Pulse Amplitude Index.
type Statuses = (
    Option<PlxMeasurementStatus>,
    Option<PlxDeviceSensorStatus>,
    Option<Medfloat>,
);

fn statuses(r: &mut Reader<'_>, ms: bool, dss: bool, pai: bool) -> Result<Statuses, BleError> {
    let ms = ms
        .then(|| r.u16("Measurement Status").map(PlxMeasurementStatus))
        .transpose()?;
    let dss = dss
        .then(|| r.u24("Device and Sensor Status").map(PlxDeviceSensorStatus))
        .transpose()?;
    let pai = pai.then(|| r.sfloat("Pulse Amplitude Index")).transpose()?;
    Ok((ms, dss, pai))
}

pub(crate) fn decode_spot_check(value: &[u8]) -> Result<PlxSpotCheck, BleError> {
    use spot::*;
    let mut r = Reader::new(Characteristic::PlxSpotCheckMeasurement, value)?;
    let flags = r.flags(DEFINED)?;
    let reading = pair(&mut r, "SpO2PR-Spot-Check - SpO2", "SpO2PR-Spot-Check - PR")?;
    let time_stamp = (flags & TIME_STAMP != 0)
        .then(|| r.date_time("Timestamp"))
        .transpose()?;
    let (measurement_status, device_sensor_status, pulse_amplitude_index) = statuses(
        &mut r,
        flags & MEASUREMENT_STATUS != 0,
        flags & DEVICE_SENSOR_STATUS != 0,
        flags & PULSE_AMPLITUDE_INDEX != 0,
    )?;
    r.finish()?;
    Ok(PlxSpotCheck {
        reading,
        time_stamp,
        measurement_status,
        device_sensor_status,
        pulse_amplitude_index,
        device_clock_not_set: flags & CLOCK_NOT_SET != 0,
    })
}

pub(crate) fn decode_continuous(value: &[u8]) -> Result<PlxContinuous, BleError> {
    use continuous::*;
    let mut r = Reader::new(Characteristic::PlxContinuousMeasurement, value)?;
    let flags = r.flags(DEFINED)?;
    let normal = pair(&mut r, "SpO2PR-Normal - SpO2", "SpO2PR-Normal - PR")?;
    let fast = (flags & FAST != 0)
        .then(|| pair(&mut r, "SpO2PR-Fast - SpO2", "SpO2PR-Fast - PR"))
        .transpose()?;
    let slow = (flags & SLOW != 0)
        .then(|| pair(&mut r, "SpO2PR-Slow - SpO2", "SpO2PR-Slow - PR"))
        .transpose()?;
    let (measurement_status, device_sensor_status, pulse_amplitude_index) = statuses(
        &mut r,
        flags & MEASUREMENT_STATUS != 0,
        flags & DEVICE_SENSOR_STATUS != 0,
        flags & PULSE_AMPLITUDE_INDEX != 0,
    )?;
    r.finish()?;
    Ok(PlxContinuous {
        normal,
        fast,
        slow,
        measurement_status,
        device_sensor_status,
        pulse_amplitude_index,
    })
}

impl PlxSpotCheck {
    pub(crate) fn measurements(&self, timing: &Timing) -> Result<MappedMeasurements, BleError> {
        let c = Characteristic::PlxSpotCheckMeasurement;
        // A clock that is not set gives a time stamp that is not a time: the value is timed by
        // the gateway or its receipt instead.
        let device_time = self
            .time_stamp
            .filter(|_| !self.device_clock_not_set)
            .and_then(|t| t.to_naive());
        let mut b = Builder::new(c, timing.resolve(c, device_time)?);
        map_pair(
            c,
            &mut b,
            self.reading,
            self.measurement_status,
            self.device_sensor_status,
        )?;
        Ok(b.finish())
    }
}

impl PlxContinuous {
    /// Only SpO2PR-Normal becomes measurements: Fast and Slow are the same quantities at the
    /// same time averaged differently, and two values of one measurand at one time would be
    /// duplicates. They stay in the decoded value.
    pub(crate) fn measurements(&self, timing: &Timing) -> Result<MappedMeasurements, BleError> {
        let c = Characteristic::PlxContinuousMeasurement;
        let mut b = Builder::new(c, timing.resolve(c, None)?);
        map_pair(
            c,
            &mut b,
            self.normal,
            self.measurement_status,
            self.device_sensor_status,
        )?;
        Ok(b.finish())
    }
}

/// Status bits, most decisive first: not the patient's data (refused); sensor off the patient
/// (absent, `SensorOff`); no valid measurement (absent, `NotObtained`); otherwise the values,
/// `QUESTIONABLE` on a doubtful signal and `Preliminary` while the measurement settles.
fn map_pair(
    c: Characteristic,
    b: &mut Builder,
    reading: Spo2Pr,
    ms: Option<PlxMeasurementStatus>,
    dss: Option<PlxDeviceSensorStatus>,
) -> Result<(), BleError> {
    type Ms = PlxMeasurementStatus;
    type Dss = PlxDeviceSensorStatus;
    let ms = ms.unwrap_or(PlxMeasurementStatus(0));
    let dss = dss.unwrap_or(PlxDeviceSensorStatus(0));
    if ms.has(Ms::DATA_FOR_DEMONSTRATION) {
        return Err(BleError::NotPatientData {
            characteristic: c,
            why: "Measurement Status says the data is for demonstration",
        });
    }
    if ms.has(Ms::DATA_FOR_TESTING) {
        return Err(BleError::NotPatientData {
            characteristic: c,
            why: "Measurement Status says the data is for testing",
        });
    }
    let off = [
        (Dss::SENSOR_DISCONNECTED, AbsentCause::SensorDisconnected),
        (
            Dss::SENSOR_UNCONNECTED_TO_USER,
            AbsentCause::SensorUnconnectedToUser,
        ),
        // A displaced probe reads something other than the patient's arterial blood.
        (Dss::SENSOR_DISPLACED, AbsentCause::SensorDisplaced),
    ]
    .into_iter()
    .find(|(bit, _)| dss.has(*bit))
    .map(|(_, cause)| (AbsentReason::SensorOff, cause));
    let not_obtained = || {
        if dss.has(Dss::EQUIPMENT_MALFUNCTION) {
            Some(AbsentCause::EquipmentMalfunction)
        } else if dss.has(Dss::SENSOR_MALFUNCTIONING) {
            Some(AbsentCause::SensorMalfunctioning)
        } else if ms.has(Ms::INVALID_MEASUREMENT_DETECTED) {
            Some(AbsentCause::InvalidMeasurement)
        } else if ms.has(Ms::MEASUREMENT_UNAVAILABLE) {
            Some(AbsentCause::MeasurementUnavailable)
        } else {
            None
        }
    };
    if let Some((reason, cause)) =
        off.or_else(|| not_obtained().map(|cause| (AbsentReason::NotObtained, cause)))
    {
        for m in [Measurand::Spo2, Measurand::HeartRate] {
            b.absent(
                ObservationCode::Single(m),
                reason,
                cause,
                QualityFlags::empty(),
            );
        }
        return Ok(());
    }

    let doubtful_signal = Dss::SIGNAL_PROCESSING_IRREGULARITY
        | Dss::INADEQUATE_SIGNAL
        | Dss::POOR_SIGNAL
        | Dss::LOW_PERFUSION
        | Dss::ERRATIC_SIGNAL
        | Dss::NONPULSATILE_SIGNAL
        | Dss::QUESTIONABLE_PULSE
        | Dss::SENSOR_INTERFERENCE
        | Dss::UNKNOWN_SENSOR_CONNECTED;
    let mut quality = QualityFlags::empty();
    if dss.0 & doubtful_signal != 0
        || ms.has(Ms::QUESTIONABLE_MEASUREMENT_DETECTED)
        || ms.has(Ms::CALIBRATION_ONGOING)
    {
        quality.insert(QualityFlags::QUESTIONABLE);
    }
    if ms.has(Ms::MEASUREMENT_ONGOING)
        || ms.has(Ms::EARLY_ESTIMATED_DATA)
        || dss.has(Dss::SIGNAL_ANALYSIS_ONGOING)
    {
        b.set_status(ObservationStatus::Preliminary);
    }
    b.medfloat(Measurand::Spo2, reading.spo2, WireUnit::Percent, quality)?;
    b.medfloat(
        Measurand::HeartRate,
        reading.pulse_rate,
        WireUnit::PerMin,
        quality,
    )?;
    Ok(())
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

    fn v(mantissa: i32, exponent: i8) -> Medfloat {
        Medfloat::Value { mantissa, exponent }
    }

    const SPO2_97_PR_72: [u8; 4] = [0x61, 0x00, 0x48, 0x00];

    fn spot_value(flags: u8, ms: u16, dss: u32) -> Vec<u8> {
        let mut v = vec![flags];
        v.extend(SPO2_97_PR_72);
        if flags & spot::TIME_STAMP != 0 {
            v.extend([0xe8, 0x07, 0x03, 0x0f, 0x08, 0x1e, 0x00]);
        }
        if flags & spot::MEASUREMENT_STATUS != 0 {
            v.extend(ms.to_le_bytes());
        }
        if flags & spot::DEVICE_SENSOR_STATUS != 0 {
            v.extend(&dss.to_le_bytes()[..3]);
        }
        if flags & spot::PULSE_AMPLITUDE_INDEX != 0 {
            v.extend([0x4b, 0xf0]); // 7.5 %
        }
        v
    }

    fn continuous_value(flags: u8, ms: u16, dss: u32) -> Vec<u8> {
        let mut v = vec![flags];
        v.extend(SPO2_97_PR_72);
        if flags & continuous::FAST != 0 {
            v.extend([0x60, 0x00, 0x4a, 0x00]); // 96 %, 74
        }
        if flags & continuous::SLOW != 0 {
            v.extend([0x62, 0x00, 0x46, 0x00]); // 98 %, 70
        }
        if flags & continuous::MEASUREMENT_STATUS != 0 {
            v.extend(ms.to_le_bytes());
        }
        if flags & continuous::DEVICE_SENSOR_STATUS != 0 {
            v.extend(&dss.to_le_bytes()[..3]);
        }
        if flags & continuous::PULSE_AMPLITUDE_INDEX != 0 {
            v.extend([0x4b, 0xf0]);
        }
        v
    }

    #[test]
    fn spot_check_every_flag_combination() {
        for flags in 0..=spot::DEFINED {
            let value = spot_value(flags, 0x0080, 0);
            let m = decode_spot_check(&value).unwrap_or_else(|e| panic!("{flags:#04x}: {e}"));
            assert_eq!(m.reading.spo2, v(97, 0));
            assert_eq!(m.reading.pulse_rate, v(72, 0));
            assert_eq!(m.time_stamp.is_some(), flags & spot::TIME_STAMP != 0);
            assert_eq!(
                m.measurement_status,
                (flags & spot::MEASUREMENT_STATUS != 0).then_some(PlxMeasurementStatus(0x0080))
            );
            assert_eq!(
                m.device_sensor_status.is_some(),
                flags & spot::DEVICE_SENSOR_STATUS != 0
            );
            assert_eq!(
                m.pulse_amplitude_index,
                (flags & spot::PULSE_AMPLITUDE_INDEX != 0).then_some(v(75, -1))
            );
            assert_eq!(m.device_clock_not_set, flags & spot::CLOCK_NOT_SET != 0);
            for cut in 0..value.len() {
                assert_eq!(
                    decode_spot_check(&value[..cut]).unwrap_err().kind(),
                    "truncated"
                );
            }
            let mut longer = value.clone();
            longer.push(0);
            assert_eq!(
                decode_spot_check(&longer).unwrap_err().kind(),
                "trailing_bytes"
            );
            let mapped = m.measurements(&Timing::at_receipt(received())).unwrap();
            assert_eq!(mapped.measurements.len(), 2);
            // The time stamp is used only when present and the clock is set.
            let timed = flags & spot::TIME_STAMP != 0 && flags & spot::CLOCK_NOT_SET == 0;
            let expected = if timed {
                Utc.with_ymd_and_hms(2024, 3, 15, 8, 30, 0).unwrap()
            } else {
                received()
            };
            assert_eq!(mapped.measurements[0].effective, expected, "{flags:#04x}");
            assert_eq!(
                mapped.measurements[0]
                    .quality
                    .contains(QualityFlags::TIME_FROM_RECEIPT),
                !timed
            );
        }
        for bit in 5..8 {
            assert_eq!(
                decode_spot_check(&spot_value(1 << bit, 0, 0))
                    .unwrap_err()
                    .kind(),
                "reserved_flags"
            );
        }
    }

    #[test]
    fn continuous_every_flag_combination() {
        for flags in 0..=continuous::DEFINED {
            let value = continuous_value(flags, 0, 0x00_0000);
            let m = decode_continuous(&value).unwrap_or_else(|e| panic!("{flags:#04x}: {e}"));
            assert_eq!(m.normal.spo2, v(97, 0));
            assert_eq!(
                m.fast,
                (flags & continuous::FAST != 0).then_some(Spo2Pr {
                    spo2: v(96, 0),
                    pulse_rate: v(74, 0)
                })
            );
            assert_eq!(
                m.slow,
                (flags & continuous::SLOW != 0).then_some(Spo2Pr {
                    spo2: v(98, 0),
                    pulse_rate: v(70, 0)
                })
            );
            assert_eq!(
                m.measurement_status.is_some(),
                flags & continuous::MEASUREMENT_STATUS != 0
            );
            assert_eq!(
                m.device_sensor_status.is_some(),
                flags & continuous::DEVICE_SENSOR_STATUS != 0
            );
            assert_eq!(
                m.pulse_amplitude_index.is_some(),
                flags & continuous::PULSE_AMPLITUDE_INDEX != 0
            );
            for cut in 0..value.len() {
                assert_eq!(
                    decode_continuous(&value[..cut]).unwrap_err().kind(),
                    "truncated"
                );
            }
            let mut longer = value.clone();
            longer.push(0);
            assert_eq!(
                decode_continuous(&longer).unwrap_err().kind(),
                "trailing_bytes"
            );
            // Only the Normal pair becomes measurements.
            let mapped = m.measurements(&Timing::at_receipt(received())).unwrap();
            let values: Vec<_> = mapped
                .measurements
                .iter()
                .map(|m| (m.measurand, m.value))
                .collect();
            assert_eq!(
                values,
                [
                    (Measurand::Spo2, MeasuredValue::Number(97.0)),
                    (Measurand::HeartRate, MeasuredValue::Number(72.0))
                ]
            );
        }
        for bit in 5..8 {
            assert_eq!(
                decode_continuous(&continuous_value(1 << bit, 0, 0))
                    .unwrap_err()
                    .kind(),
                "reserved_flags"
            );
        }
    }

    #[test]
    fn the_continuous_bit_0_is_fast_not_a_time_stamp() {
        // Spot-check bit 0 = time stamp (7 bytes); continuous bit 0 = Fast (4 bytes).
        let value = [0x01, 0x61, 0x00, 0x48, 0x00, 0x60, 0x00, 0x4a, 0x00];
        assert!(decode_continuous(&value).unwrap().fast.is_some());
        assert_eq!(decode_spot_check(&value).unwrap_err().kind(), "truncated");
    }

    #[test]
    fn device_and_sensor_status_is_three_octets() {
        let value = continuous_value(continuous::DEVICE_SENSOR_STATUS, 0, 0x12_8001);
        assert_eq!(value.len(), 8);
        let m = decode_continuous(&value).unwrap();
        assert_eq!(
            m.device_sensor_status,
            Some(PlxDeviceSensorStatus(0x12_8001))
        );
    }

    /// Maps a continuous measurement with the given statuses.
    fn mapped(ms: u16, dss: u32) -> Result<MappedMeasurements, BleError> {
        let flags = continuous::MEASUREMENT_STATUS | continuous::DEVICE_SENSOR_STATUS;
        decode_continuous(&continuous_value(flags, ms, dss))
            .unwrap()
            .measurements(&Timing::at_receipt(received()))
    }

    #[test]
    fn sensor_off_is_never_a_value() {
        type D = PlxDeviceSensorStatus;
        for (bit, cause) in [
            (D::SENSOR_DISCONNECTED, AbsentCause::SensorDisconnected),
            (
                D::SENSOR_UNCONNECTED_TO_USER,
                AbsentCause::SensorUnconnectedToUser,
            ),
            (D::SENSOR_DISPLACED, AbsentCause::SensorDisplaced),
        ] {
            // Even with other bits and with validated data, the values are not kept.
            let m = mapped(PlxMeasurementStatus::VALIDATED_DATA, bit | D::LOW_PERFUSION).unwrap();
            assert!(m.measurements.is_empty(), "{bit:#x}");
            let absent: Vec<_> = m
                .absent
                .iter()
                .map(|a| (a.code, a.reason, a.cause))
                .collect();
            assert_eq!(
                absent,
                [
                    (
                        ObservationCode::Single(Measurand::Spo2),
                        AbsentReason::SensorOff,
                        cause
                    ),
                    (
                        ObservationCode::Single(Measurand::HeartRate),
                        AbsentReason::SensorOff,
                        cause
                    ),
                ]
            );
        }
        // Sensor off wins over a malfunction.
        let m = mapped(0, D::SENSOR_DISCONNECTED | D::EQUIPMENT_MALFUNCTION).unwrap();
        assert_eq!(m.absent[0].reason, AbsentReason::SensorOff);
    }

    #[test]
    fn no_valid_measurement_is_not_obtained() {
        type D = PlxDeviceSensorStatus;
        type M = PlxMeasurementStatus;
        for (ms, dss, cause) in [
            (
                0,
                D::EQUIPMENT_MALFUNCTION,
                AbsentCause::EquipmentMalfunction,
            ),
            (
                0,
                D::SENSOR_MALFUNCTIONING,
                AbsentCause::SensorMalfunctioning,
            ),
            (
                M::INVALID_MEASUREMENT_DETECTED,
                0,
                AbsentCause::InvalidMeasurement,
            ),
            (
                M::MEASUREMENT_UNAVAILABLE,
                0,
                AbsentCause::MeasurementUnavailable,
            ),
        ] {
            let m = mapped(ms, dss).unwrap();
            assert!(m.measurements.is_empty());
            assert_eq!(m.absent.len(), 2);
            assert!(
                m.absent
                    .iter()
                    .all(|a| a.reason == AbsentReason::NotObtained && a.cause == cause)
            );
        }
    }

    #[test]
    fn demonstration_and_test_data_are_refused() {
        for bit in [
            PlxMeasurementStatus::DATA_FOR_DEMONSTRATION,
            PlxMeasurementStatus::DATA_FOR_TESTING,
        ] {
            let e = mapped(bit, 0).unwrap_err();
            assert_eq!(e.kind(), "not_patient_data");
        }
    }

    #[test]
    fn doubtful_signals_are_questionable_and_settling_values_preliminary() {
        type D = PlxDeviceSensorStatus;
        type M = PlxMeasurementStatus;
        let quality = |ms, dss| {
            let m = mapped(ms, dss).unwrap();
            assert_eq!(m.measurements.len(), 2);
            (
                m.measurements[0]
                    .quality
                    .contains(QualityFlags::QUESTIONABLE),
                m.measurements[1]
                    .quality
                    .contains(QualityFlags::QUESTIONABLE),
                m.measurements[0].status,
            )
        };
        let fin = ObservationStatus::Final;
        let pre = ObservationStatus::Preliminary;
        assert_eq!(quality(0, 0), (false, false, fin));
        for dss in [
            D::SIGNAL_PROCESSING_IRREGULARITY,
            D::INADEQUATE_SIGNAL,
            D::POOR_SIGNAL,
            D::LOW_PERFUSION,
            D::ERRATIC_SIGNAL,
            D::NONPULSATILE_SIGNAL,
            D::QUESTIONABLE_PULSE,
            D::SENSOR_INTERFERENCE,
            D::UNKNOWN_SENSOR_CONNECTED,
        ] {
            assert_eq!(quality(0, dss), (true, true, fin), "{dss:#x}");
        }
        for ms in [M::QUESTIONABLE_MEASUREMENT_DETECTED, M::CALIBRATION_ONGOING] {
            assert_eq!(quality(ms, 0), (true, true, fin), "{ms:#x}");
        }
        for ms in [M::MEASUREMENT_ONGOING, M::EARLY_ESTIMATED_DATA] {
            assert_eq!(quality(ms, 0), (false, false, pre), "{ms:#x}");
        }
        assert_eq!(quality(0, D::SIGNAL_ANALYSIS_ONGOING), (false, false, pre));
        // Informational and reserved bits change nothing.
        for ms in [
            M::VALIDATED_DATA,
            M::FULLY_QUALIFIED_DATA,
            M::DATA_FROM_MEASUREMENT_STORAGE,
            0x001f,
        ] {
            assert_eq!(quality(ms, 0), (false, false, fin), "{ms:#x}");
        }
        assert_eq!(
            quality(0, D::EXTENDED_DISPLAY_UPDATE_ONGOING),
            (false, false, fin)
        );
        assert_eq!(quality(0, 0xff_0000), (false, false, fin));
    }

    #[test]
    fn special_values_are_absent_one_by_one() {
        // SpO2 NaN, pulse 72.
        let value = [0x00, 0xff, 0x07, 0x48, 0x00];
        let m = decode_continuous(&value)
            .unwrap()
            .measurements(&Timing::at_receipt(received()))
            .unwrap();
        assert_eq!(m.measurements.len(), 1);
        assert_eq!(m.measurements[0].measurand, Measurand::HeartRate);
        assert_eq!(m.absent.len(), 1);
        assert_eq!(m.absent[0].code, ObservationCode::Single(Measurand::Spo2));
        assert_eq!(m.absent[0].cause, AbsentCause::SpecialValue(Special::Nan));
    }

    #[test]
    fn implausible_spo2_is_refused() {
        // 101 %.
        let e = decode_spot_check(&[0x00, 0x65, 0x00, 0x48, 0x00])
            .unwrap()
            .measurements(&Timing::at_receipt(received()))
            .unwrap_err();
        assert_eq!(e.kind(), "implausible_value");
        assert!(
            e.to_string()
                .starts_with("PLX Spot-check Measurement (0x2A5E): spo2 101 %"),
            "{e}"
        );
    }
}
