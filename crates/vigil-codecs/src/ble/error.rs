//! Why a characteristic value or a gateway message was refused.

use vigil_model::{Instant, Measurand, Quantity};

use super::Characteristic;
use super::datetime::DateTimeProblem;
use crate::device_json::{PayloadError, TimestampError, did_you_mean, duration, rfc3339};

/// Why a characteristic value or a gateway message was refused; nothing of it is kept (never a
/// partial result).
///
/// `Display` is a sentence for the sender (the gateway) and may quote what it sent, a measured
/// value included; logs and metrics take [`BleError::kind`] only (house rule 7). No variant quotes
/// the characteristic value's bytes.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BleError {
    // ---- the characteristic value ----
    #[error(
        "{characteristic}: the value is {len} bytes, more than the {max} an attribute value can \
         have"
    )]
    ValueTooLong {
        characteristic: Characteristic,
        len: usize,
        max: usize,
    },
    #[error(
        "{characteristic}: the value ends after {available} bytes, but {field} needs {needed} \
         bytes from offset {offset}"
    )]
    Truncated {
        characteristic: Characteristic,
        /// The field the value ended in, as the GATT Specification Supplement names it.
        field: &'static str,
        offset: usize,
        needed: usize,
        available: usize,
    },
    #[error(
        "{characteristic}: {extra} bytes follow the last field the flags announce (which ends at \
         {expected} bytes); a value must end with its last field"
    )]
    TrailingBytes {
        characteristic: Characteristic,
        expected: usize,
        extra: usize,
    },
    #[error(
        "{characteristic}: flags {flags:#04x} set bits {reserved:#04x}, which are reserved for \
         future use; a value whose layout or meaning this version cannot know is refused"
    )]
    ReservedFlags {
        characteristic: Characteristic,
        flags: u8,
        reserved: u8,
    },
    #[error("{characteristic}: {why}")]
    InconsistentFlags {
        characteristic: Characteristic,
        why: &'static str,
    },
    #[error(
        "{characteristic}: the RR-Interval list is {len} bytes, an odd number; each interval is \
         2 bytes"
    )]
    OddRrIntervals {
        characteristic: Characteristic,
        len: usize,
    },
    #[error("{characteristic}: {field} is not a valid Date Time (0x2A08): {problem}")]
    BadDateTime {
        characteristic: Characteristic,
        field: &'static str,
        problem: DateTimeProblem,
    },

    // ---- from values to measurements ----
    #[error(
        "{characteristic}: {} {} {}{} is outside the plausible range {} to {} {}; the device is \
         faulty",
        .measurand.short_name(), .value, .measurand.canonical_unit(), sent_as(.sent),
        .measurand.plausible().min, .measurand.plausible().max, .measurand.canonical_unit()
    )]
    ImplausibleValue {
        characteristic: Characteristic,
        measurand: Measurand,
        /// In the canonical unit.
        value: f64,
        /// The value and unit as sent, when they were converted.
        sent: Option<Quantity>,
    },
    #[error("{characteristic}: {why}; it is not a measurement of the patient")]
    NotPatientData {
        characteristic: Characteristic,
        why: &'static str,
    },
    #[error(
        "{characteristic}: {what} {} is outside 1970-01-01T00:00:00Z to \
         9999-12-31T23:59:59.999Z", show_time(.time)
    )]
    TimeOutOfRange {
        characteristic: Characteristic,
        what: &'static str,
        /// The time as read, when it is a valid instant at all.
        time: Option<Instant>,
    },
    #[error(
        "{characteristic}: {what} {} is {} after the time of receipt {}; at most {} ahead is \
         accepted",
        rfc3339(.time), duration(.time.signed_duration_since(*.received)), rfc3339(.received),
        duration(*.max_skew)
    )]
    FutureTimestamp {
        characteristic: Characteristic,
        /// `the device's time stamp` or `ts`.
        what: &'static str,
        time: Instant,
        received: Instant,
        max_skew: chrono::Duration,
    },

    // ---- the gateway message ----
    /// Too large, not UTF-8, not JSON, or not a JSON object.
    #[error(transparent)]
    Envelope(PayloadError),
    #[error("unknown field {field:?}{}; the accepted fields are {}", did_you_mean(.suggestion), super::gateway::GATEWAY_FIELDS.join(", "))]
    UnknownField {
        field: String,
        suggestion: Option<&'static str>,
    },
    #[error("field {field:?} appears more than once")]
    DuplicateField { field: &'static str },
    #[error("required field {field:?} is missing")]
    MissingField { field: &'static str },
    #[error("{field} must be {expected}, but {found} was sent")]
    WrongType {
        field: &'static str,
        expected: &'static str,
        found: &'static str,
    },
    #[error("ts is not a valid time: {error}")]
    BadTimestamp { error: TimestampError },
    #[error(
        "peripheral {text:?} is not a Bluetooth device address; expected six two-digit hex \
         octets separated by colons, such as C4:7C:8D:6A:11:02"
    )]
    BadAddress { text: String },
    #[error(
        "characteristic {text:?} is not a 16-bit Bluetooth UUID; expected 4 hex digits (2a35, \
         0x2A35) or the 128-bit form on the Bluetooth base UUID \
         (00002a35-0000-1000-8000-00805f9b34fb)"
    )]
    BadCharacteristic { text: String },
    #[error(
        "characteristic {uuid:#06X} is not supported; the supported ones are {}",
        super::Characteristic::supported_list()
    )]
    UnsupportedCharacteristic { uuid: u16 },
    #[error("data must be hex digits, two per byte: {problem}")]
    BadHex { problem: HexProblem },
}

/// What is wrong with the `data` hex string. Never quotes it: it is the patient's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HexProblem {
    #[error("it has {len} digits, an odd number")]
    OddLength { len: usize },
    #[error("the character at index {index} is not a hex digit")]
    NotHex { index: usize },
}

impl BleError {
    /// A stable snake_case label for metrics (never carries data from the message).
    pub fn kind(&self) -> &'static str {
        match self {
            BleError::ValueTooLong { .. } => "value_too_long",
            BleError::Truncated { .. } => "truncated",
            BleError::TrailingBytes { .. } => "trailing_bytes",
            BleError::ReservedFlags { .. } => "reserved_flags",
            BleError::InconsistentFlags { .. } => "inconsistent_flags",
            BleError::OddRrIntervals { .. } => "odd_rr_intervals",
            BleError::BadDateTime { .. } => "bad_date_time",
            BleError::ImplausibleValue { .. } => "implausible_value",
            BleError::NotPatientData { .. } => "not_patient_data",
            BleError::TimeOutOfRange { .. } => "time_out_of_range",
            BleError::FutureTimestamp { .. } => "future_timestamp",
            BleError::Envelope(e) => e.kind(),
            BleError::UnknownField { .. } => "unknown_field",
            BleError::DuplicateField { .. } => "duplicate_field",
            BleError::MissingField { .. } => "missing_field",
            BleError::WrongType { .. } => "wrong_type",
            BleError::BadTimestamp { .. } => "bad_timestamp",
            BleError::BadAddress { .. } => "bad_address",
            BleError::BadCharacteristic { .. } => "bad_characteristic",
            BleError::UnsupportedCharacteristic { .. } => "unsupported_characteristic",
            BleError::BadHex { .. } => "bad_hex",
        }
    }
}

fn sent_as(sent: &Option<Quantity>) -> String {
    sent.as_ref().map_or_else(String::new, |q| {
        format!(" (sent as {} {})", q.value, q.unit)
    })
}

fn show_time(time: &Option<Instant>) -> String {
    time.as_ref()
        .map_or_else(|| "(not representable)".to_owned(), rfc3339)
}
