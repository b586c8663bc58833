//! From a decoded characteristic value to the model: canonical units, plausibility, quality
//! flags, the absent items, and the time each value is taken at.

use chrono::{DateTime, FixedOffset, NaiveDateTime, Offset, TimeZone, Utc};
use vigil_model::{
    AbsentReason, Instant, Measurand, MeasuredValue, Measurement, ObservationCode,
    ObservationStatus, ObservationValue, QualityFlags, Quantity, Reading, assemble_readings, units,
};

use super::medfloat::{Medfloat, Special, decimal_to_f64};
use super::{BleError, Characteristic};

/// The latest accepted time, 9999-12-31T23:59:59.999Z, as for the device JSON payload.
const MAX_EPOCH_MS: i64 = 253_402_300_799_999;

/// What the time of a value is taken from, besides the characteristic's own time stamp.
#[derive(Debug, Clone, PartialEq)]
pub struct Timing {
    /// When Vigil received the value: the time of a value that has no other, and the reference
    /// for `max_future_skew`.
    pub received: Instant,
    /// The gateway's `ts`, the time of a value whose characteristic has no usable time stamp.
    pub gateway_time: Option<Instant>,
    /// The UTC offset a characteristic's time stamp (local wall-clock time, no zone) is read in:
    /// the offset of the gateway's RFC 3339 `ts`. `None`: read as UTC.
    pub device_offset: Option<FixedOffset>,
    /// How far after `received` a value's time may lie.
    pub max_future_skew: chrono::Duration,
}

impl Timing {
    /// No gateway time, time stamps read as UTC, 5 minutes of clock skew allowed.
    pub fn at_receipt(received: Instant) -> Timing {
        Timing {
            received,
            gateway_time: None,
            device_offset: None,
            max_future_skew: chrono::Duration::minutes(5),
        }
    }

    /// The time of the values: the device's time stamp when it gave a usable one (`device`),
    /// else the gateway's `ts`, else the time of receipt (flagged `TIME_FROM_RECEIPT`).
    pub(crate) fn resolve(
        &self,
        characteristic: Characteristic,
        device: Option<NaiveDateTime>,
    ) -> Result<(Instant, QualityFlags), BleError> {
        let (time, what, flags) = match (device, self.gateway_time) {
            (Some(local), _) => {
                let offset = self.device_offset.unwrap_or(Utc.fix());
                // A FixedOffset maps every wall-clock time to exactly one instant.
                let time = offset
                    .from_local_datetime(&local)
                    .single()
                    .map(|t| t.with_timezone(&Utc));
                let Some(time) = time else {
                    return Err(BleError::TimeOutOfRange {
                        characteristic,
                        what: "the device's time stamp",
                        time: None,
                    });
                };
                (time, "the device's time stamp", QualityFlags::empty())
            }
            (None, Some(ts)) => (ts, "ts", QualityFlags::empty()),
            (None, None) => (self.received, "", QualityFlags::TIME_FROM_RECEIPT),
        };
        if flags.contains(QualityFlags::TIME_FROM_RECEIPT) {
            return Ok((time, flags));
        }
        if time < DateTime::UNIX_EPOCH || time.timestamp_millis() > MAX_EPOCH_MS {
            return Err(BleError::TimeOutOfRange {
                characteristic,
                what,
                time: Some(time),
            });
        }
        if time.signed_duration_since(self.received) > self.max_future_skew {
            return Err(BleError::FutureTimestamp {
                characteristic,
                what,
                time,
                received: self.received,
                max_skew: self.max_future_skew,
            });
        }
        Ok((time, flags))
    }
}

/// What one characteristic value says in the model's terms.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MappedMeasurements {
    /// Values, each plausible and in its measurand's canonical unit, in the order of the
    /// characteristic's fields.
    pub measurements: Vec<Measurement>,
    /// Measurands the device reported without a value, in the order of the fields.
    pub absent: Vec<AbsentItem>,
}

impl MappedMeasurements {
    /// The readings to store: the measurements grouped with [`assemble_readings`] (systolic,
    /// diastolic and mean become one blood-pressure panel), then the absent items.
    pub fn into_readings(self) -> Vec<Reading> {
        let mut readings = assemble_readings(self.measurements);
        readings.extend(self.absent.iter().map(AbsentItem::to_reading));
        readings
    }
}

/// A measurand the device reported without a value. Never read as a normal value.
#[derive(Debug, Clone, PartialEq)]
pub struct AbsentItem {
    /// `Single(measurand)`, or `BloodPressure` when none of systolic, diastolic and mean has a
    /// value.
    pub code: ObservationCode,
    pub reason: AbsentReason,
    /// Why, in the characteristic's own terms (finer than the model's reason).
    pub cause: AbsentCause,
    pub effective: Instant,
    pub status: ObservationStatus,
    pub quality: QualityFlags,
}

impl AbsentItem {
    pub fn to_reading(&self) -> Reading {
        Reading {
            code: self.code,
            value: ObservationValue::Absent(self.reason),
            effective: self.effective,
            status: self.status,
            quality: self.quality,
        }
    }
}

/// Why a characteristic value has no value for a measurand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AbsentCause {
    /// The field holds an SFLOAT/FLOAT special value (IEEE 11073-20601).
    SpecialValue(Special),
    /// Heart Rate Measurement: sensor contact is supported and not detected.
    NoSensorContact,
    /// PLX Device and Sensor Status bit 15.
    SensorDisconnected,
    /// PLX Device and Sensor Status bit 11.
    SensorUnconnectedToUser,
    /// PLX Device and Sensor Status bit 13.
    SensorDisplaced,
    /// PLX Device and Sensor Status bit 1.
    EquipmentMalfunction,
    /// PLX Device and Sensor Status bit 14.
    SensorMalfunctioning,
    /// PLX Measurement Status bit 13.
    MeasurementUnavailable,
    /// PLX Measurement Status bit 15.
    InvalidMeasurement,
    /// Weight Measurement: weight 0xFFFF, "Measurement Unsuccessful" (Weight Scale Service).
    MeasurementUnsuccessful,
    /// Glucose Measurement without the concentration field (flags bit 1 clear).
    NoConcentration,
}

impl AbsentCause {
    /// A stable snake_case name.
    pub fn name(self) -> &'static str {
        match self {
            AbsentCause::SpecialValue(s) => s.name(),
            AbsentCause::NoSensorContact => "no_sensor_contact",
            AbsentCause::SensorDisconnected => "sensor_disconnected",
            AbsentCause::SensorUnconnectedToUser => "sensor_unconnected_to_user",
            AbsentCause::SensorDisplaced => "sensor_displaced",
            AbsentCause::EquipmentMalfunction => "equipment_malfunction",
            AbsentCause::SensorMalfunctioning => "sensor_malfunctioning",
            AbsentCause::MeasurementUnavailable => "measurement_unavailable",
            AbsentCause::InvalidMeasurement => "invalid_measurement",
            AbsentCause::MeasurementUnsuccessful => "measurement_unsuccessful",
            AbsentCause::NoConcentration => "no_concentration",
        }
    }
}

/// The unit a field is sent in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WireUnit {
    MmHg,
    KPa,
    Celsius,
    Fahrenheit,
    Percent,
    PerMin,
    KgPerL,
    MolPerL,
    Kg,
    Pound,
    Metre,
    Inch,
}

impl WireUnit {
    pub(crate) fn ucum(self) -> &'static str {
        match self {
            WireUnit::MmHg => "mm[Hg]",
            WireUnit::KPa => "kPa",
            WireUnit::Celsius => "Cel",
            WireUnit::Fahrenheit => "[degF]",
            WireUnit::Percent => "%",
            WireUnit::PerMin => "/min",
            WireUnit::KgPerL => "kg/L",
            WireUnit::MolPerL => "mol/L",
            WireUnit::Kg => "kg",
            WireUnit::Pound => "[lb_av]",
            WireUnit::Metre => "m",
            WireUnit::Inch => "[in_i]",
        }
    }
}

/// `mantissa × 10^exponent` in `unit` as the measurand's canonical value, and whether the unit
/// was converted. Changes of SI prefix (kg/L → mg/dL is × 10⁵, mol/L → mmol/L × 10³, m → cm
/// × 10²) move the decimal exponent, so they stay exact; every other factor is
/// [`vigil_model::units::to_canonical`]'s.
pub(crate) fn to_canonical(
    measurand: Measurand,
    mantissa: i64,
    exponent: i32,
    unit: WireUnit,
) -> (f64, bool) {
    let (value, ucum) = match unit {
        WireUnit::KgPerL => return (decimal_to_f64(mantissa, exponent + 5), true),
        WireUnit::Metre => return (decimal_to_f64(mantissa, exponent + 2), true),
        WireUnit::MolPerL => (decimal_to_f64(mantissa, exponent + 3), "mmol/L"),
        other => (decimal_to_f64(mantissa, exponent), other.ucum()),
    };
    match units::to_canonical(measurand, value, ucum) {
        Ok((canonical, converted)) => (canonical, converted || ucum != unit.ucum()),
        // Unreachable: every (measurand, unit) pair used here is in the model's table (tested
        // below). Should one go missing, NaN is refused as implausible instead of panicking.
        Err(_) => (f64::NAN, true),
    }
}

/// Collects the measurements and absent items of one characteristic value, all at one time.
pub(crate) struct Builder {
    characteristic: Characteristic,
    effective: Instant,
    status: ObservationStatus,
    /// Flags every item gets (`TIME_FROM_RECEIPT`).
    quality: QualityFlags,
    out: MappedMeasurements,
}

impl Builder {
    pub(crate) fn new(
        characteristic: Characteristic,
        (effective, quality): (Instant, QualityFlags),
    ) -> Builder {
        Builder {
            characteristic,
            effective,
            status: ObservationStatus::Final,
            quality,
            out: MappedMeasurements::default(),
        }
    }

    pub(crate) fn set_status(&mut self, status: ObservationStatus) {
        self.status = status;
    }

    /// A value in `unit`: converted, checked against the plausible range, added. An implausible
    /// value refuses the whole characteristic value: one measurement record that holds an
    /// impossible number comes from a device that is faulty for that record.
    pub(crate) fn number(
        &mut self,
        measurand: Measurand,
        (mantissa, exponent): (i64, i32),
        unit: WireUnit,
        quality: QualityFlags,
    ) -> Result<(), BleError> {
        let (value, converted) = to_canonical(measurand, mantissa, exponent, unit);
        let range = measurand.plausible();
        // `contains` is false for NaN.
        if !(range.min..=range.max).contains(&value) {
            return Err(BleError::ImplausibleValue {
                characteristic: self.characteristic,
                measurand,
                value,
                sent: converted
                    .then(|| Quantity::new(decimal_to_f64(mantissa, exponent), unit.ucum())),
            });
        }
        let mut quality = quality | self.quality;
        if converted {
            quality.insert(QualityFlags::CONVERTED_UNIT);
        }
        self.out.measurements.push(Measurement {
            measurand,
            value: MeasuredValue::Number(value),
            effective: self.effective,
            status: self.status,
            quality,
        });
        Ok(())
    }

    /// A medfloat field: a number as [`Builder::number`], a special value as an absent item
    /// (`NotObtained`). Returns whether it was a number.
    pub(crate) fn medfloat(
        &mut self,
        measurand: Measurand,
        value: Medfloat,
        unit: WireUnit,
        quality: QualityFlags,
    ) -> Result<bool, BleError> {
        match value {
            Medfloat::Value { mantissa, exponent } => {
                self.number(measurand, (mantissa.into(), exponent.into()), unit, quality)?;
                Ok(true)
            }
            Medfloat::Special(special) => {
                self.absent(
                    ObservationCode::Single(measurand),
                    AbsentReason::NotObtained,
                    AbsentCause::SpecialValue(special),
                    quality,
                );
                Ok(false)
            }
        }
    }

    pub(crate) fn absent(
        &mut self,
        code: ObservationCode,
        reason: AbsentReason,
        cause: AbsentCause,
        quality: QualityFlags,
    ) {
        self.out.absent.push(AbsentItem {
            code,
            reason,
            cause,
            effective: self.effective,
            status: self.status,
            quality: quality | self.quality,
        });
    }

    pub(crate) fn finish(self) -> MappedMeasurements {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;

    #[test]
    fn every_wire_unit_converts_for_the_measurands_it_is_used_with() {
        use Measurand::*;
        use WireUnit::*;
        let pairs = [
            (SystolicBp, MmHg, false),
            (SystolicBp, KPa, true),
            (Temperature, Celsius, false),
            (Temperature, Fahrenheit, true),
            (Spo2, Percent, false),
            (HeartRate, PerMin, false),
            (Glucose, KgPerL, true),
            (Glucose, MolPerL, true),
            (Weight, Kg, false),
            (Weight, Pound, true),
            (Height, Metre, true),
            (Height, Inch, true),
        ];
        for (measurand, unit, expect_converted) in pairs {
            let (value, converted) = to_canonical(measurand, 1, 0, unit);
            assert!(value.is_finite(), "{measurand:?} {unit:?}");
            assert_eq!(converted, expect_converted, "{measurand:?} {unit:?}");
        }
    }

    #[test]
    fn prefix_changes_are_exact_decimals() {
        // 0.00110 kg/L is 110 mg/dL, exactly.
        assert_eq!(
            to_canonical(Measurand::Glucose, 110, -5, WireUnit::KgPerL),
            (110.0, true)
        );
        // 1.753 m is 175.3 cm (× 100.0 in binary would give 175.29999999999998).
        assert_eq!(
            to_canonical(Measurand::Height, 1753, -3, WireUnit::Metre),
            (175.3, true)
        );
        // 0.0061 mol/L = 6.1 mmol/L = 6.1 × 18.0156 mg/dL.
        let (v, converted) = to_canonical(Measurand::Glucose, 61, -4, WireUnit::MolPerL);
        assert!(converted);
        assert!((v - 109.895_16).abs() < 1e-9, "{v}");
    }

    #[test]
    fn a_unit_the_model_does_not_know_is_never_a_value() {
        // A pair outside the table yields NaN, which the plausibility check refuses.
        let (v, _) = to_canonical(Measurand::HeartRate, 1, 0, WireUnit::Kg);
        assert!(v.is_nan());
    }

    fn received() -> Instant {
        Utc.with_ymd_and_hms(2026, 11, 21, 10, 15, 30).unwrap()
    }

    fn local(h: u32, m: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(2026, 11, 21)
            .unwrap()
            .and_hms_opt(h, m, 0)
            .unwrap()
    }

    const C: Characteristic = Characteristic::BloodPressureMeasurement;

    #[test]
    fn the_device_time_comes_first_then_ts_then_receipt() {
        let mut timing = Timing::at_receipt(received());
        assert_eq!(
            timing.resolve(C, None).unwrap(),
            (received(), QualityFlags::TIME_FROM_RECEIPT)
        );
        let ts = Utc.with_ymd_and_hms(2026, 11, 21, 10, 0, 0).unwrap();
        timing.gateway_time = Some(ts);
        assert_eq!(
            timing.resolve(C, None).unwrap(),
            (ts, QualityFlags::empty())
        );
        assert_eq!(
            timing.resolve(C, Some(local(9, 0))).unwrap(),
            (
                Utc.with_ymd_and_hms(2026, 11, 21, 9, 0, 0).unwrap(),
                QualityFlags::empty()
            )
        );
    }

    #[test]
    fn the_device_time_is_read_in_the_gateway_offset() {
        let mut timing = Timing::at_receipt(received());
        timing.device_offset = FixedOffset::east_opt(3600);
        // 11:00 local at UTC+01:00 is 10:00Z.
        assert_eq!(
            timing.resolve(C, Some(local(11, 0))).unwrap().0,
            Utc.with_ymd_and_hms(2026, 11, 21, 10, 0, 0).unwrap()
        );
        timing.device_offset = FixedOffset::west_opt(5 * 3600);
        assert_eq!(
            timing.resolve(C, Some(local(5, 0))).unwrap().0,
            Utc.with_ymd_and_hms(2026, 11, 21, 10, 0, 0).unwrap()
        );
    }

    #[test]
    fn future_and_pre_epoch_times_are_refused() {
        let timing = Timing::at_receipt(received());
        // Exactly 5 minutes ahead is accepted, a second more is not.
        let at = |h, m, s| {
            NaiveDate::from_ymd_opt(2026, 11, 21)
                .unwrap()
                .and_hms_opt(h, m, s)
                .unwrap()
        };
        assert!(timing.resolve(C, Some(at(10, 20, 30))).is_ok());
        assert_eq!(
            timing.resolve(C, Some(at(10, 20, 31))).unwrap_err().kind(),
            "future_timestamp"
        );
        let old = NaiveDate::from_ymd_opt(1969, 12, 31)
            .unwrap()
            .and_hms_opt(23, 59, 59)
            .unwrap();
        assert_eq!(
            timing.resolve(C, Some(old)).unwrap_err().kind(),
            "time_out_of_range"
        );
        let mut with_ts = timing.clone();
        with_ts.gateway_time = Some(received() + chrono::Duration::minutes(6));
        let e = with_ts.resolve(C, None).unwrap_err();
        assert_eq!(e.kind(), "future_timestamp");
        assert!(e.to_string().contains("ts 2026-11-21T10:21:30Z"), "{e}");
    }
}
