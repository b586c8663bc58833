//! # Bluetooth SIG health characteristics relayed by a gateway, version 1
//!
//! A phone or a hub (the *gateway*) subscribes to a Bluetooth LE health device (the
//! *peripheral*) and relays each characteristic value it is notified or indicated, unchanged, to
//! MQTT `vigil/v1/gateways/{gateway_id}/ble` or over HTTP. This comment is the public contract;
//! the tests beside each clause pin it. Byte layouts follow `shared/reference/ble_gatt.md`
//! (GATT Specification Supplement, the 2015 SIG characteristic definitions for PLX, IEEE
//! 11073-20601 for SFLOAT/FLOAT).
//!
//! ```json
//! {"ts": "2026-11-21T10:15:00.250+01:00",
//!  "peripheral": "C4:7C:8D:6A:11:02",
//!  "characteristic": "2a35",
//!  "data": "1e780050005d00ea070b150a0e004800010000"}
//! ```
//!
//! (120/80 mmHg, mean 93, measured at 10:14:00 on the cuff's clock, pulse 72, user 1: a blood
//! pressure panel and a heart rate at 2026-11-21T09:14:00Z.)
//!
//! ## The message
//! One JSON object (RFC 8259) in UTF-8, at most [`GatewayLimits::max_bytes`] long:
//!
//! | member           | type                   | meaning                                                 |
//! |------------------|------------------------|---------------------------------------------------------|
//! | `peripheral`     | string, required       | the device's Bluetooth address, six hex octets with colons (`C4:7C:8D:6A:11:02`), either case; [`BleAddress`] writes it upper case, the form to look the device up by |
//! | `characteristic` | string, required       | its 16-bit UUID as `2a35`, `2A35`, `0x2A35`, or the 128-bit form on the Bluetooth base UUID `00002a35-0000-1000-8000-00805f9b34fb` (any case) |
//! | `data`           | string, required       | the characteristic value (the ATT value only: no opcode, no handle) in hex, two digits per byte, either case, at most 512 bytes (ATT's longest attribute value) |
//! | `ts`             | time, optional         | when the gateway received the value: RFC 3339 or epoch milliseconds, as in the device JSON payload; `null` counts as absent |
//!
//! Any other member, a member given twice, a malformed address, UUID or hex string, or a
//! characteristic other than those below refuses the message ([`BleError`], whose
//! [`kind`](BleError::kind) is stable for metrics). So does any problem of the value: there is
//! never a partial result. A gateway should relay the *identity* address of a peripheral that
//! uses resolvable private addresses, or the device will not be found.
//!
//! ## Supported characteristics
//!
//! | UUID   | characteristic                | becomes                                                 |
//! |--------|-------------------------------|---------------------------------------------------------|
//! | 0x2A37 | Heart Rate Measurement        | `heart_rate`                                            |
//! | 0x2A35 | Blood Pressure Measurement    | a blood-pressure panel (systolic, diastolic, mean) and `heart_rate` from the pulse rate |
//! | 0x2A1C | Temperature Measurement       | `temperature`                                           |
//! | 0x2A5E | PLX Spot-check Measurement    | `spo2` and `heart_rate`                                 |
//! | 0x2A5F | PLX Continuous Measurement    | `spo2` and `heart_rate` (SpO2PR-Normal only)            |
//! | 0x2A18 | Glucose Measurement           | `glucose`                                               |
//! | 0x2A9D | Weight Measurement            | `weight`, and `height` when sent                        |
//!
//! Intermediate Cuff Pressure (0x2A36) and Intermediate Temperature (0x2A1E) share their
//! measurement's layout but are not measurements (a cuff still inflating): they are refused as
//! unsupported. [`decode_characteristic`] decodes a value alone, for other transports.
//!
//! ## Reading a value
//! Fields follow the Flags octet in the specified order, little-endian, each present only if its
//! flag says so. A value is refused when it is longer than 512 bytes, ends inside an announced
//! field (`truncated`), goes on after the last announced field (`trailing_bytes`: the
//! specifications do not settle this; a value longer than its flags say comes from a sender that
//! disagrees with us about its layout), sets a reserved Flags bit (`reserved_flags`: a future
//! flag may add a field or change a unit, and a value read with the wrong layout or unit is
//! worse than none), announces fields its other content rules out (`inconsistent_flags`: RR-
//! intervals announced but none sent; a weight of 0xFFFF "Measurement Unsuccessful" with BMI and
//! height), has an odd-length RR-interval list, or has a Date Time field outside its range
//! (year 1582–9999 or 0, month 0–12, day 0–31 and a real day of that month, hours 0–23, minutes
//! and seconds 0–59). Reserved bits of status fields and reserved values of enumerations (a
//! temperature type, a glucose sample location) are kept as sent and act on nothing: they change
//! no layout.
//!
//! SFLOAT and FLOAT values keep their mantissa and exponent ([`Medfloat`]). Exactly the five raw
//! words IEEE 11073-20601 defines are special (NaN, NRes, ±INFINITY, reserved); a word with a
//! special mantissa and a non-zero exponent (0xF7FF) is the number it spells.
//!
//! ## Times
//! A characteristic's time stamp (Date Time, 0x2A08) is the device's wall-clock time with no
//! zone; the reference says local time is implied. It is read in the UTC offset of the
//! gateway's `ts` when `ts` is an RFC 3339 string (the gateway is within radio range, so shares
//! the device's local time; a record stored across a daylight-saving change is an hour off), and
//! as UTC when `ts` is absent or epoch milliseconds: gateways should send `ts` in RFC 3339 with
//! their offset. A time stamp is not used when its year, month or day is 0 (not known), when a
//! PLX spot-check says its clock is not set (Flags bit 4), or when a glucose meter reports a time
//! fault (Sensor Status bit 11). A value with no usable time stamp takes `ts`, else the time of
//! receipt, flagged `time-from-receipt`. The time used must lie in 1970–9999 and at most
//! [`GatewayLimits::max_future_skew`] after receipt; `ts` itself is held to the same skew even
//! when unused.
//!
//! ## From values to readings
//! Values become [`vigil_model::Measurement`]s in the measurand's canonical unit: kPa → `mm[Hg]`,
//! °F → Cel, lb → kg and in → cm with the model's exact factors (`converted-unit`); kg/L →
//! mg/dL (× 10⁵), mol/L → mmol/L (× 10³, then the model's molar mass) and m → cm (× 10²) by
//! moving the decimal exponent, also `converted-unit`. A value outside its measurand's plausible
//! range refuses the whole characteristic value (`implausible_value`): one measurement record
//! holding an impossible number comes from a device that is faulty for that record. Measurements
//! are grouped with [`vigil_model::assemble_readings`]; then come the measurands the device
//! reported without a value, as `ObservationValue::Absent` readings ([`AbsentItem`], whose
//! [`AbsentCause`] keeps the detail):
//!
//! * A special SFLOAT/FLOAT value is absent, `not_obtained` (never a number). A blood-pressure
//!   component with a special value is left out of the panel (the panel has no per-component
//!   absence, and a mean the cuff did not compute is routine); only when systolic, diastolic
//!   and mean are all special is the panel absent.
//! * Heart Rate: sensor contact supported and not detected (Flags bits 1–2 = 2) is absent,
//!   `sensor_off`: a strap off the skin is not measuring, so the patient is unmonitored, a
//!   technical condition, never a heart rate. RR-intervals and energy expended stay in the value.
//! * Blood Pressure Measurement Status: body movement or improper measurement position →
//!   `questionable`; cuff too loose → `artifact`; pulse rate out of the device's range →
//!   `questionable` on the pulse rate only. An irregular pulse flags nothing: it is a finding
//!   about the patient, not a fault of the value, and flagging it would keep every reading of a
//!   patient in atrial fibrillation from the physiological alarms.
//! * PLX (both): "data for demonstration" or "for testing" refuses the value
//!   (`not_patient_data`). Sensor disconnected, unconnected to user or displaced → SpO2 and
//!   pulse rate absent, `sensor_off`, whatever the values say. Equipment malfunction, sensor
//!   malfunctioning, invalid measurement or measurement unavailable → both absent,
//!   `not_obtained`. Otherwise the values, `questionable` on a signal-quality bit (processing
//!   irregularity, inadequate, poor, erratic or nonpulsatile signal, low perfusion, questionable
//!   pulse, interference, unknown sensor), questionable measurement or calibration ongoing; status
//!   `preliminary` while the measurement is ongoing, early-estimated or under signal analysis.
//!   Continuous: only SpO2PR-Normal is stored (Fast and Slow are the same quantities at the same
//!   time, averaged differently).
//! * Temperature: the type (body site) stays in the value.
//! * Glucose: control solution (type 10 or sample location 4) refuses the value
//!   (`not_patient_data`: it is a check of the meter). No concentration field → absent,
//!   `not_obtained`. Sensor Status: malfunction, sample size insufficient, strip insertion error,
//!   strip type incorrect, read interrupted or general device fault → `artifact`; sensor
//!   temperature too high or low → `questionable`. "Result higher/lower than the device can
//!   process" flags nothing: the number is the meter's limit and the truth lies beyond it, so it
//!   must reach the glucose alarms. The sequence number stays in the value (a resent record has
//!   the same one).
//! * Weight: 0xFFFF is absent, `not_obtained`; BMI stays in the value.
//!
//! User IDs (blood pressure, weight) are in the value ([`GatewayMessage::user_id`]): a
//! multi-user device measures more than one person.

mod datetime;
mod error;
mod gateway;
mod mapping;
mod medfloat;
mod reader;

pub mod blood_pressure;
pub mod glucose;
pub mod heart_rate;
pub mod plx;
pub mod temperature;
pub mod weight;

use std::fmt;

pub use datetime::{BleDateTime, DateTimeProblem};
pub use error::{BleError, HexProblem};
pub use gateway::{
    BleAddress, GATEWAY_FIELDS, GatewayLimits, GatewayMessage, decode_gateway_message, parse_uuid16,
};
pub use mapping::{AbsentCause, AbsentItem, MappedMeasurements, Timing};
pub use medfloat::{Medfloat, Special, decode_float, decode_sfloat, encode_float, encode_sfloat};
pub use reader::MAX_VALUE_LEN;

pub use blood_pressure::BloodPressureMeasurement;
pub use glucose::GlucoseMeasurement;
pub use heart_rate::HeartRateMeasurement;
pub use plx::{PlxContinuous, PlxSpotCheck};
pub use temperature::TemperatureMeasurement;
pub use weight::WeightMeasurement;

/// The characteristics Vigil decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Characteristic {
    HeartRateMeasurement,
    BloodPressureMeasurement,
    TemperatureMeasurement,
    PlxSpotCheckMeasurement,
    PlxContinuousMeasurement,
    GlucoseMeasurement,
    WeightMeasurement,
}

impl Characteristic {
    pub const ALL: [Characteristic; 7] = [
        Characteristic::HeartRateMeasurement,
        Characteristic::BloodPressureMeasurement,
        Characteristic::TemperatureMeasurement,
        Characteristic::PlxSpotCheckMeasurement,
        Characteristic::PlxContinuousMeasurement,
        Characteristic::GlucoseMeasurement,
        Characteristic::WeightMeasurement,
    ];

    /// The assigned 16-bit UUID.
    pub fn uuid16(self) -> u16 {
        match self {
            Characteristic::HeartRateMeasurement => 0x2A37,
            Characteristic::BloodPressureMeasurement => 0x2A35,
            Characteristic::TemperatureMeasurement => 0x2A1C,
            Characteristic::PlxSpotCheckMeasurement => 0x2A5E,
            Characteristic::PlxContinuousMeasurement => 0x2A5F,
            Characteristic::GlucoseMeasurement => 0x2A18,
            Characteristic::WeightMeasurement => 0x2A9D,
        }
    }

    /// The name the GATT Specification Supplement gives it.
    pub fn name(self) -> &'static str {
        match self {
            Characteristic::HeartRateMeasurement => "Heart Rate Measurement",
            Characteristic::BloodPressureMeasurement => "Blood Pressure Measurement",
            Characteristic::TemperatureMeasurement => "Temperature Measurement",
            Characteristic::PlxSpotCheckMeasurement => "PLX Spot-check Measurement",
            Characteristic::PlxContinuousMeasurement => "PLX Continuous Measurement",
            Characteristic::GlucoseMeasurement => "Glucose Measurement",
            Characteristic::WeightMeasurement => "Weight Measurement",
        }
    }

    pub fn from_uuid16(uuid: u16) -> Option<Characteristic> {
        Self::ALL.into_iter().find(|c| c.uuid16() == uuid)
    }

    /// "0x2A37 (Heart Rate Measurement), …" for error messages.
    pub(crate) fn supported_list() -> String {
        Self::ALL
            .iter()
            .map(|c| format!("0x{:04X} ({})", c.uuid16(), c.name()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for Characteristic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (0x{:04X})", self.name(), self.uuid16())
    }
}

/// A User ID field (Blood Pressure, Weight): which user of a multi-user device was measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(pub u8);

impl UserId {
    /// 0xFF: the device does not know who was measured.
    pub const UNKNOWN: UserId = UserId(0xFF);

    pub fn is_unknown(self) -> bool {
        self == Self::UNKNOWN
    }
}

/// One decoded characteristic value, field by field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CharacteristicValue {
    HeartRate(HeartRateMeasurement),
    BloodPressure(BloodPressureMeasurement),
    Temperature(TemperatureMeasurement),
    PlxSpotCheck(PlxSpotCheck),
    PlxContinuous(PlxContinuous),
    Glucose(GlucoseMeasurement),
    Weight(WeightMeasurement),
}

/// Decodes one characteristic value (the ATT value bytes). Pure; never panics; refuses every
/// malformed value whole (see the module documentation).
pub fn decode_characteristic(
    characteristic: Characteristic,
    value: &[u8],
) -> Result<CharacteristicValue, BleError> {
    Ok(match characteristic {
        Characteristic::HeartRateMeasurement => {
            CharacteristicValue::HeartRate(heart_rate::decode(value)?)
        }
        Characteristic::BloodPressureMeasurement => {
            CharacteristicValue::BloodPressure(blood_pressure::decode(value)?)
        }
        Characteristic::TemperatureMeasurement => {
            CharacteristicValue::Temperature(temperature::decode(value)?)
        }
        Characteristic::PlxSpotCheckMeasurement => {
            CharacteristicValue::PlxSpotCheck(plx::decode_spot_check(value)?)
        }
        Characteristic::PlxContinuousMeasurement => {
            CharacteristicValue::PlxContinuous(plx::decode_continuous(value)?)
        }
        Characteristic::GlucoseMeasurement => CharacteristicValue::Glucose(glucose::decode(value)?),
        Characteristic::WeightMeasurement => CharacteristicValue::Weight(weight::decode(value)?),
    })
}

impl CharacteristicValue {
    pub fn characteristic(&self) -> Characteristic {
        match self {
            CharacteristicValue::HeartRate(_) => Characteristic::HeartRateMeasurement,
            CharacteristicValue::BloodPressure(_) => Characteristic::BloodPressureMeasurement,
            CharacteristicValue::Temperature(_) => Characteristic::TemperatureMeasurement,
            CharacteristicValue::PlxSpotCheck(_) => Characteristic::PlxSpotCheckMeasurement,
            CharacteristicValue::PlxContinuous(_) => Characteristic::PlxContinuousMeasurement,
            CharacteristicValue::Glucose(_) => Characteristic::GlucoseMeasurement,
            CharacteristicValue::Weight(_) => Characteristic::WeightMeasurement,
        }
    }

    /// The model's view of the value (see "From values to readings" in the module
    /// documentation), timed by `timing`. Refuses the whole value for an implausible number,
    /// data that is not the patient's, or a time out of range.
    pub fn measurements(&self, timing: &Timing) -> Result<MappedMeasurements, BleError> {
        match self {
            CharacteristicValue::HeartRate(v) => v.measurements(timing),
            CharacteristicValue::BloodPressure(v) => v.measurements(timing),
            CharacteristicValue::Temperature(v) => v.measurements(timing),
            CharacteristicValue::PlxSpotCheck(v) => v.measurements(timing),
            CharacteristicValue::PlxContinuous(v) => v.measurements(timing),
            CharacteristicValue::Glucose(v) => v.measurements(timing),
            CharacteristicValue::Weight(v) => v.measurements(timing),
        }
    }

    /// The User ID field, for the characteristics that have one and a value that sent it.
    pub fn user_id(&self) -> Option<UserId> {
        match self {
            CharacteristicValue::BloodPressure(v) => v.user_id,
            CharacteristicValue::Weight(v) => v.user_id,
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests;
