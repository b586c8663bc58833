//! # The device JSON payload, version 1
//!
//! What a device, or a gateway on its behalf, sends over MQTT or HTTP. This comment is the public
//! contract; the tests beside it pin each clause.
//!
//! ```json
//! {"ts": "2026-11-21T10:15:00.250Z",
//!  "obs": [{"code": "heart_rate", "value": 72, "unit": "/min"},
//!          {"code": "8480-6", "value": 128, "unit": "mm[Hg]"}],
//!  "waveform": [{"code": "ecg_lead_ii", "start": "2026-11-21T10:15:00Z", "period_ms": 4,
//!                "factor": 0.005, "origin": 0, "samples": [1, 2, 3]}],
//!  "battery": 87}
//! ```
//!
//! ## The message
//! One JSON object (RFC 8259) in UTF-8, at most [`DecodeLimits::max_bytes`] long. Its members:
//!
//! | member     | type                        | meaning                                                     |
//! |------------|-----------------------------|-------------------------------------------------------------|
//! | `ts`       | time (below), optional      | when the readings were taken, unless a reading says otherwise |
//! | `obs`      | array of readings, optional | at most [`DecodeLimits::max_readings`]                       |
//! | `waveform` | array of segments, optional | at most [`DecodeLimits::max_waveforms`]                      |
//! | `battery`  | integer 0–100, optional     | battery charge in percent                                    |
//! | `signal`   | integer −150–0, optional    | received signal strength of the device's radio link in dBm (Wi-Fi, BLE, cellular RSSI) |
//!
//! `obs` and `waveform` must not both be absent or empty. A member that is `null` counts as
//! absent (except a reading's `value`, see below). Any other member name, a name given twice, a
//! `ts` that is not a valid time, or an `obs`/`waveform` that is not an array rejects the whole
//! message ([`PayloadError`]).
//!
//! **Times** are either an RFC 3339 §5.6 `date-time` string with any offset (converted to UTC;
//! fractional seconds kept), or an integer number of milliseconds since 1970-01-01T00:00:00Z.
//! Times before 1970 or after 9999-12-31T23:59:59.999Z are refused. A time more than
//! [`DecodeLimits::max_future_skew`] after the moment Vigil received the message is refused too
//! (a device clock that far ahead is wrong; exactly `max_future_skew` ahead is accepted).
//!
//! ## A reading (`obs` item)
//!
//! | member    | type                           | meaning                                                  |
//! |-----------|--------------------------------|----------------------------------------------------------|
//! | `code`    | string, required               | short name (`heart_rate`), LOINC (`8867-4`), MDC reference id (`MDC_ECG_HEART_RATE`) or numeric MDC code (`147842`) |
//! | `value`   | number, required               | the measured value; `null` or absent is refused (a missing value is never taken as normal) |
//! | `unit`    | UCUM string, optional          | default: the measurand's canonical unit; others are converted exactly |
//! | `ts`      | time, optional                 | overrides the message `ts`; without either, the time of receipt is used and flagged `time-from-receipt` |
//! | `status`  | string, optional               | FHIR R4 `ObservationStatus` code, default `final`         |
//! | `quality` | array of strings, optional     | `questionable`, `artifact`, `converted-unit`, `time-from-receipt` |
//!
//! Two measurands take other values: `acvpu` (level of consciousness, NEWS2) takes one of the
//! strings `"A"`, `"C"`, `"V"`, `"P"`, `"U"`; `o2_supplemental` takes `true`/`false` (on oxygen
//! or on air) or a number, the oxygen flow in L/min. Neither takes a unit with a string or boolean.
//!
//! After conversion the value must lie within the measurand's plausible range (inclusive);
//! outside it the value cannot come from a living patient and is refused as a device fault. A
//! second reading of the same measurand at the same time as an accepted one is refused as a
//! duplicate (the first is kept). Accepted readings are grouped with
//! [`vigil_model::assemble_readings`], so a systolic and a diastolic pressure at one time become
//! one blood-pressure panel.
//!
//! ## A waveform segment (`waveform` item), after FHIR R4 `SampledData`
//!
//! | member      | type                        | meaning                                                |
//! |-------------|-----------------------------|--------------------------------------------------------|
//! | `code`      | string, required            | `ecg_lead_i`, `ecg_lead_ii`, `ecg_lead_iii`, `pleth`, `respiration`, or the IEEE 11073-10101 reference id or numeric code |
//! | `start`     | time, optional              | time of the first sample; default the message `ts`, else the time of receipt |
//! | `period_ms` | number, 0.1–1000            | milliseconds between samples; exactly one of `period_ms` and `rate_hz` |
//! | `rate_hz`   | number, 1–10000             | samples per second (period = 1000 / rate)               |
//! | `factor`    | non-zero number, default 1  | physical value = `origin` + `factor` × sample           |
//! | `origin`    | number, default 0           |                                                        |
//! | `samples`   | array of integers, required | 1 to [`vigil_model::waveform::MAX_SAMPLES_PER_SEGMENT`] values, each fitting a 32-bit signed integer |
//!
//! ## Partial acceptance
//! A bad reading or segment, or a bad `battery` or `signal`, is refused alone: it is listed in
//! [`DecodedMessage::rejected`] with its JSON Pointer (RFC 6901: `/obs/2`, `/waveform/0`,
//! `/battery`) and the reason, and the rest of the message is kept. Any member of a reading or
//! segment not named above (a typo such as `vlaue` too) refuses that item, naming the member.

use std::fmt;

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use vigil_model::waveform::MAX_SAMPLES_PER_SEGMENT;
use vigil_model::{
    Acvpu, Instant, Measurand, MeasuredValue, Measurement, ObservationStatus, QualityFlags,
    Quantity, Reading, UnitError, ValueKind, WaveformCode, WaveformSegment, assemble_readings,
    units,
};

use crate::json::Json;

pub mod event;

/// Bounds applied to one message (house rule 1: bounded everything). A message over any of them
/// is refused whole, before any of its items is looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest accepted message, in bytes, checked before parsing. Default 256 KiB.
    pub max_bytes: usize,
    /// Most items in `obs`. Default 1000.
    pub max_readings: usize,
    /// Most items in `waveform`. Default 16.
    pub max_waveforms: usize,
    /// How far after the time of receipt a reading's time may lie (device clock skew).
    /// Default 5 minutes.
    pub max_future_skew: chrono::Duration,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            max_bytes: 256 * 1024,
            max_readings: 1000,
            max_waveforms: 16,
            max_future_skew: chrono::Duration::minutes(5),
        }
    }
}

/// What one message yielded: its valid content and what was refused item by item.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DecodedMessage {
    /// Accepted readings, blood-pressure parts grouped into panels, in the order sent.
    pub readings: Vec<Reading>,
    /// Accepted waveform segments, in the order sent.
    pub waveforms: Vec<WaveformSegment>,
    /// Refused items: readings first, then segments, then `battery`, each in the order sent.
    pub rejected: Vec<RejectedItem>,
    /// Battery charge in percent, when the device sent a valid one.
    pub battery_pct: Option<u8>,
    /// Received signal strength in dBm, when the device sent a valid one.
    pub signal_dbm: Option<i16>,
}

/// One refused part of a message.
#[derive(Debug, Clone, PartialEq)]
pub struct RejectedItem {
    /// JSON Pointer (RFC 6901) to the refused item: `/obs/2`, `/waveform/0` or `/battery`.
    pub pointer: String,
    /// The item's `code` as sent, when it was a string (cut to [`MAX_ECHO_BYTES`]).
    pub code: Option<String>,
    pub reason: RejectReason,
}

impl fmt::Display for RejectedItem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.pointer, self.reason)
    }
}

/// Strings from the message quoted back in errors (codes, unknown names) are cut to this many
/// bytes, so an error never grows with a hostile payload.
pub const MAX_ECHO_BYTES: usize = 64;

/// The members a reading may have.
pub const READING_FIELDS: [&str; 6] = ["code", "value", "unit", "ts", "status", "quality"];
/// The members a waveform segment may have.
pub const WAVEFORM_FIELDS: [&str; 7] = [
    "code",
    "start",
    "period_ms",
    "rate_hz",
    "factor",
    "origin",
    "samples",
];
/// The members a message may have.
pub const MESSAGE_FIELDS: [&str; 5] = ["ts", "obs", "waveform", "battery", "signal"];

/// Bounds of a waveform's sample timing. The period and rate bounds are the same bounds:
/// 0.1 ms ⇔ 10 kHz, 1000 ms ⇔ 1 Hz.
pub const MIN_PERIOD_MS: f64 = 0.1;
pub const MAX_PERIOD_MS: f64 = 1000.0;
pub const MIN_RATE_HZ: f64 = 1.0;
pub const MAX_RATE_HZ: f64 = 10_000.0;

/// The latest accepted time, 9999-12-31T23:59:59.999Z, the last instant RFC 3339 can write.
pub(crate) const MAX_EPOCH_MS: i64 = 253_402_300_799_999;

/// Why a time (`ts`, `start`) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimestampError {
    #[error(
        "expected an RFC 3339 date-time string or integer epoch milliseconds, but {found} was sent"
    )]
    WrongType { found: &'static str },
    #[error("epoch milliseconds must be an integer, but {value} was sent")]
    NotAnInteger { value: String },
    #[error("{text:?} is not an RFC 3339 date-time such as 2026-11-21T10:15:00.250Z ({error})")]
    NotRfc3339 {
        text: String,
        error: chrono::format::ParseError,
    },
    #[error("epoch milliseconds {ms} is negative, before 1970-01-01T00:00:00Z")]
    NegativeEpoch { ms: i64 },
    #[error("epoch milliseconds {ms} is after 9999-12-31T23:59:59.999Z")]
    EpochTooLarge { ms: u64 },
    #[error("{} is before 1970-01-01T00:00:00Z", rfc3339(.time))]
    BeforeEpoch { time: Instant },
    #[error("{} is after 9999-12-31T23:59:59.999Z", rfc3339(.time))]
    AfterMaximum { time: Instant },
}

/// Why one waveform segment was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WaveformProblem {
    #[error(
        "unknown waveform code {code:?}; expected ecg_lead_i, ecg_lead_ii, ecg_lead_iii, pleth or \
         respiration, or their IEEE 11073-10101 reference id or numeric code"
    )]
    UnknownCode { code: String },
    #[error("neither period_ms nor rate_hz is given; exactly one of them is required")]
    NoSampleTiming,
    #[error("both period_ms and rate_hz are given; send exactly one of them")]
    BothSampleTimings,
    #[error(
        "period_ms {period_ms} is outside the accepted range {MIN_PERIOD_MS} to {MAX_PERIOD_MS} ms"
    )]
    PeriodOutOfRange { period_ms: f64 },
    #[error("rate_hz {rate_hz} is outside the accepted range {MIN_RATE_HZ} to {MAX_RATE_HZ} Hz")]
    RateOutOfRange { rate_hz: f64 },
    #[error("factor must not be zero")]
    ZeroFactor,
    #[error("samples is empty; a segment needs at least one sample")]
    NoSamples,
    #[error("samples has {count} values, more than the {max} one segment may carry")]
    TooManySamples { count: usize, max: usize },
    #[error("samples[{index}] must be an integer, but {found} was sent")]
    SampleNotAnInteger { index: usize, found: &'static str },
    #[error("samples[{index}] is {value}, which does not fit a 32-bit signed integer")]
    SampleOutOfRange { index: usize, value: i128 },
}

/// Why one item of a message (a reading, a waveform segment, `battery`) was refused.
///
/// `Display` is a sentence for the sender (an HTTP problem document, an MQTT error topic) and may
/// quote what the message said, values included; logs and metrics take [`RejectReason::kind`]
/// only (house rule 7).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RejectReason {
    #[error("an item must be a JSON object, but {found} was sent")]
    NotAnObject { found: &'static str },
    #[error("unknown field {field:?}{}; the accepted fields are {}", did_you_mean(.suggestion), .allowed.join(", "))]
    UnknownField {
        field: String,
        suggestion: Option<&'static str>,
        allowed: &'static [&'static str],
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
    #[error(
        "unknown measurand code {code:?}; expected a short name such as \"heart_rate\", a LOINC \
         code, an IEEE 11073-10101 reference id or a numeric MDC code"
    )]
    UnknownCode { code: String },
    #[error("value is {}; a reading without a value is refused, never taken as normal", null_or_missing(*.sent_null))]
    MissingValue { sent_null: bool },
    #[error("{0}")]
    UnitMismatch(UnitError),
    #[error("value {value:?} is not valid; expected {expected}")]
    InvalidCodedValue {
        value: String,
        expected: &'static str,
    },
    #[error("unit {unit:?} was sent with a coded or yes/no value, which has no unit")]
    UnitNotAllowed { unit: String },
    #[error(
        "{} {} {}{} is outside the plausible range {} to {} {}",
        .measurand.short_name(), .value, .measurand.canonical_unit(), sent_as(.sent),
        .measurand.plausible().min, .measurand.plausible().max, .measurand.canonical_unit()
    )]
    ImplausibleValue {
        measurand: Measurand,
        /// In the canonical unit.
        value: f64,
        /// The value and unit as sent, when they were converted.
        sent: Option<Quantity>,
    },
    #[error(
        "unknown status {status:?}; expected a FHIR ObservationStatus: registered, preliminary, \
         final, amended, corrected, cancelled, entered-in-error or unknown"
    )]
    UnknownStatus { status: String },
    #[error(
        "unknown quality flag {flag:?}; expected questionable, artifact, converted-unit or \
         time-from-receipt"
    )]
    UnknownQualityFlag { flag: String },
    #[error("{field} is not a valid time: {error}")]
    BadTimestamp {
        field: &'static str,
        error: TimestampError,
    },
    #[error(
        "{field} {} is {} after the time of receipt {}; at most {} ahead is accepted",
        rfc3339(.time), duration(.time.signed_duration_since(*.received)), rfc3339(.received),
        duration(*.max_skew)
    )]
    FutureTimestamp {
        /// `ts`, `start`, or `message-level ts` when the item inherited the message's time.
        field: &'static str,
        time: Instant,
        received: Instant,
        max_skew: chrono::Duration,
    },
    #[error(
        "{} at {} already appears in this message at /obs/{first_index}; only the first is kept",
        .measurand.short_name(), rfc3339(.effective)
    )]
    Duplicate {
        measurand: Measurand,
        effective: Instant,
        /// Index in `obs` of the accepted reading this one repeats.
        first_index: usize,
    },
    #[error("{0}")]
    BadWaveform(WaveformProblem),
    #[error("signal {value} is outside -150 to 0 dBm; it is ignored")]
    SignalOutOfRange { value: i128 },
    #[error("battery {value} is outside 0 to 100 %; it is ignored")]
    BatteryOutOfRange { value: i128 },
}

impl RejectReason {
    /// A stable snake_case label for metrics (never carries data from the message).
    pub fn kind(&self) -> &'static str {
        match self {
            RejectReason::NotAnObject { .. } => "not_an_object",
            RejectReason::UnknownField { .. } => "unknown_field",
            RejectReason::DuplicateField { .. } => "duplicate_field",
            RejectReason::MissingField { .. } => "missing_field",
            RejectReason::WrongType { .. } => "wrong_type",
            RejectReason::UnknownCode { .. } => "unknown_code",
            RejectReason::MissingValue { .. } => "missing_value",
            RejectReason::UnitMismatch(_) => "unit_mismatch",
            RejectReason::InvalidCodedValue { .. } => "invalid_coded_value",
            RejectReason::UnitNotAllowed { .. } => "unit_not_allowed",
            RejectReason::ImplausibleValue { .. } => "implausible_value",
            RejectReason::UnknownStatus { .. } => "unknown_status",
            RejectReason::UnknownQualityFlag { .. } => "unknown_quality_flag",
            RejectReason::BadTimestamp { .. } => "bad_timestamp",
            RejectReason::FutureTimestamp { .. } => "future_timestamp",
            RejectReason::Duplicate { .. } => "duplicate",
            RejectReason::BadWaveform(_) => "bad_waveform",
            RejectReason::BatteryOutOfRange { .. } => "battery_out_of_range",
            RejectReason::SignalOutOfRange { .. } => "signal_out_of_range",
        }
    }
}

/// Why a whole message was refused; nothing of it is kept.
///
/// As with [`RejectReason`], `Display` is for the sender and `kind` for logs and metrics.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PayloadError {
    #[error("message is {size} bytes, more than the limit of {max} bytes")]
    TooLarge { size: usize, max: usize },
    #[error("message is not UTF-8: invalid byte at offset {offset} (line {line}, column {column})")]
    NotUtf8 {
        offset: usize,
        line: usize,
        column: usize,
    },
    #[error("message is not valid JSON: {message} at line {line}, column {column}")]
    NotJson {
        message: String,
        line: usize,
        column: usize,
    },
    #[error("{} must be {expected}, but {found} was sent", describe_pointer(.pointer))]
    WrongShape {
        /// JSON Pointer of the offending member: "" (the message itself), "/obs" or "/waveform".
        pointer: &'static str,
        expected: &'static str,
        found: &'static str,
    },
    #[error("unknown top-level field {field:?}{}; the accepted fields are {}", did_you_mean(.suggestion), MESSAGE_FIELDS.join(", "))]
    UnknownField {
        field: String,
        suggestion: Option<&'static str>,
    },
    #[error("top-level field {field:?} appears more than once")]
    DuplicateField { field: &'static str },
    #[error("obs has {count} readings, more than the limit of {max}")]
    TooManyReadings { count: usize, max: usize },
    #[error("waveform has {count} segments, more than the limit of {max}")]
    TooManyWaveforms { count: usize, max: usize },
    #[error("message-level ts is not a valid time: {error}")]
    BadTimestamp { error: TimestampError },
    #[error("message has no readings: obs and waveform are both absent or empty")]
    NoReadings,
}

impl PayloadError {
    /// A stable snake_case label for metrics (never carries data from the message).
    pub fn kind(&self) -> &'static str {
        match self {
            PayloadError::TooLarge { .. } => "too_large",
            PayloadError::NotUtf8 { .. } => "not_utf8",
            PayloadError::NotJson { .. } => "not_json",
            PayloadError::WrongShape { .. } => "wrong_shape",
            PayloadError::UnknownField { .. } => "unknown_field",
            PayloadError::DuplicateField { .. } => "duplicate_field",
            PayloadError::TooManyReadings { .. } => "too_many_readings",
            PayloadError::TooManyWaveforms { .. } => "too_many_waveforms",
            PayloadError::BadTimestamp { .. } => "bad_timestamp",
            PayloadError::NoReadings => "no_readings",
        }
    }
}

/// Decodes one device message (see the module documentation for the contract).
///
/// `received` is when Vigil received the message: the time of readings that carry none, and the
/// reference for [`DecodeLimits::max_future_skew`]. Pure and deterministic; never panics.
pub fn decode_device_message(
    bytes: &[u8],
    received: Instant,
    limits: &DecodeLimits,
) -> Result<DecodedMessage, PayloadError> {
    if bytes.len() > limits.max_bytes {
        return Err(PayloadError::TooLarge {
            size: bytes.len(),
            max: limits.max_bytes,
        });
    }
    let text = std::str::from_utf8(bytes).map_err(|e| utf8_error(bytes, e.valid_up_to()))?;
    let root = Json::parse(text).map_err(json_error)?;
    let Json::Object(members) = &root else {
        return Err(PayloadError::WrongShape {
            pointer: "",
            expected: "a JSON object",
            found: root.describe(),
        });
    };
    let [ts, obs, waveform, battery, signal] =
        collect_fields(members, &MESSAGE_FIELDS).map_err(|e| match e {
            FieldError::Unknown { field, suggestion } => {
                PayloadError::UnknownField { field, suggestion }
            }
            FieldError::Duplicate(field) => PayloadError::DuplicateField { field },
        })?;
    let obs = array_member(obs, "/obs", "an array of readings")?;
    let waveform = array_member(waveform, "/waveform", "an array of waveform segments")?;
    if obs.len() > limits.max_readings {
        return Err(PayloadError::TooManyReadings {
            count: obs.len(),
            max: limits.max_readings,
        });
    }
    if waveform.len() > limits.max_waveforms {
        return Err(PayloadError::TooManyWaveforms {
            count: waveform.len(),
            max: limits.max_waveforms,
        });
    }
    let message_ts = present(ts)
        .map(parse_time)
        .transpose()
        .map_err(|error| PayloadError::BadTimestamp { error })?;
    if obs.is_empty() && waveform.is_empty() {
        return Err(PayloadError::NoReadings);
    }

    let cx = Context {
        message_ts,
        received,
        limits,
    };
    let mut rejected = Vec::new();
    let mut measurements: Vec<Measurement> = Vec::with_capacity(obs.len());
    // Index in `obs` of each accepted measurement, to name the first of a duplicate pair.
    let mut origins: Vec<usize> = Vec::with_capacity(obs.len());
    for (index, item) in obs.iter().enumerate() {
        let outcome = decode_reading(item, &cx).and_then(|m| {
            let first = measurements
                .iter()
                .zip(&origins)
                .find(|(seen, _)| seen.measurand == m.measurand && seen.effective == m.effective);
            match first {
                Some((_, &first_index)) => Err(RejectReason::Duplicate {
                    measurand: m.measurand,
                    effective: m.effective,
                    first_index,
                }),
                None => Ok(m),
            }
        });
        match outcome {
            Ok(m) => {
                measurements.push(m);
                origins.push(index);
            }
            Err(reason) => rejected.push(RejectedItem {
                pointer: format!("/obs/{index}"),
                code: sent_code(item),
                reason,
            }),
        }
    }

    let mut waveforms = Vec::with_capacity(waveform.len());
    for (index, item) in waveform.iter().enumerate() {
        match decode_waveform(item, &cx) {
            Ok(segment) => waveforms.push(segment),
            Err(reason) => rejected.push(RejectedItem {
                pointer: format!("/waveform/{index}"),
                code: sent_code(item),
                reason,
            }),
        }
    }

    let battery_pct = match present(battery).map(decode_battery) {
        None => None,
        Some(Ok(pct)) => Some(pct),
        Some(Err(reason)) => {
            rejected.push(RejectedItem {
                pointer: "/battery".to_owned(),
                code: None,
                reason,
            });
            None
        }
    };

    let signal_dbm = match present(signal).map(decode_signal) {
        None => None,
        Some(Ok(dbm)) => Some(dbm),
        Some(Err(reason)) => {
            rejected.push(RejectedItem {
                pointer: "/signal".to_owned(),
                code: None,
                reason,
            });
            None
        }
    };

    Ok(DecodedMessage {
        readings: assemble_readings(measurements),
        waveforms,
        rejected,
        battery_pct,
        signal_dbm,
    })
}

/// What every item of one message shares.
struct Context<'l> {
    message_ts: Option<Instant>,
    received: Instant,
    limits: &'l DecodeLimits,
}

impl Context<'_> {
    /// The item's own time if it has one, else the message's, else the time of receipt (with
    /// `true`: the time is the receipt's). Refuses bad and future times.
    fn time(
        &self,
        own: Option<&Json<'_>>,
        field: &'static str,
    ) -> Result<(Instant, bool), RejectReason> {
        let (time, field, from_receipt) = match (own, self.message_ts) {
            (Some(raw), _) => (
                parse_time(raw).map_err(|error| RejectReason::BadTimestamp { field, error })?,
                field,
                false,
            ),
            (None, Some(ts)) => (ts, "message-level ts", false),
            (None, None) => (self.received, field, true),
        };
        if time.signed_duration_since(self.received) > self.limits.max_future_skew {
            return Err(RejectReason::FutureTimestamp {
                field,
                time,
                received: self.received,
                max_skew: self.limits.max_future_skew,
            });
        }
        Ok((time, from_receipt))
    }
}

fn decode_reading(item: &Json<'_>, cx: &Context<'_>) -> Result<Measurement, RejectReason> {
    let members = object_members(item)?;
    let [code, value, unit, ts, status, quality] =
        collect_fields(members, &READING_FIELDS).map_err(|e| e.into_reason(&READING_FIELDS))?;

    let measurand = match present(code) {
        None => return Err(RejectReason::MissingField { field: "code" }),
        Some(Json::String(code)) => Measurand::from_code(code)
            .ok_or_else(|| RejectReason::UnknownCode { code: echo(code) })?,
        Some(other) => return Err(wrong_type("code", "a string", other)),
    };
    let (value, converted) = match measurand.value_kind() {
        ValueKind::Quantity => decode_quantity(measurand, value, unit)?,
        ValueKind::Acvpu => (MeasuredValue::Acvpu(decode_acvpu(value, unit)?), false),
        ValueKind::OxygenSupport => match value {
            // Yes/no: on supplemental oxygen or on air.
            Some(Json::Bool(on)) => {
                no_unit(unit)?;
                (MeasuredValue::OnOxygen(*on), false)
            }
            // Otherwise a flow in L/min (or a convertible unit).
            _ => decode_quantity(measurand, value, unit)?,
        },
    };
    let status = match present(status) {
        None => ObservationStatus::Final,
        Some(Json::String(s)) => ObservationStatus::parse(s)
            .ok_or_else(|| RejectReason::UnknownStatus { status: echo(s) })?,
        Some(other) => return Err(wrong_type("status", "a string", other)),
    };
    let mut flags = QualityFlags::empty();
    match present(quality) {
        None => {}
        Some(Json::Array(names)) => {
            for name in names {
                let Json::String(name) = name else {
                    return Err(wrong_type(
                        "quality",
                        "an array of flag names (strings)",
                        name,
                    ));
                };
                let flag = QualityFlags::parse(name)
                    .ok_or_else(|| RejectReason::UnknownQualityFlag { flag: echo(name) })?;
                flags.insert(flag);
            }
        }
        Some(other) => {
            return Err(wrong_type(
                "quality",
                "an array of flag names (strings)",
                other,
            ));
        }
    }
    if converted {
        flags.insert(QualityFlags::CONVERTED_UNIT);
    }
    let (effective, from_receipt) = cx.time(present(ts), "ts")?;
    if from_receipt {
        flags.insert(QualityFlags::TIME_FROM_RECEIPT);
    }
    Ok(Measurement {
        measurand,
        value,
        effective,
        status,
        quality: flags,
    })
}

/// A numeric value: converted to the canonical unit, then checked against the plausible range.
fn decode_quantity(
    measurand: Measurand,
    value: Option<&Json<'_>>,
    unit: Option<&Json<'_>>,
) -> Result<(MeasuredValue, bool), RejectReason> {
    let sent_value = match value {
        None => return Err(RejectReason::MissingValue { sent_null: false }),
        Some(Json::Null) => return Err(RejectReason::MissingValue { sent_null: true }),
        Some(v) => v
            .as_f64()
            .ok_or_else(|| wrong_type("value", "a number", v))?,
    };
    let (value, converted, sent_unit) = match present(unit) {
        None => (sent_value, false, None),
        Some(Json::String(unit)) => {
            let (value, converted) = units::to_canonical(measurand, sent_value, unit)
                .map_err(RejectReason::UnitMismatch)?;
            (value, converted, Some(unit))
        }
        Some(other) => return Err(wrong_type("unit", "a UCUM unit string", other)),
    };
    let range = measurand.plausible();
    // `contains` is false for NaN, and ±inf is outside every range.
    if !(range.min..=range.max).contains(&value) {
        return Err(RejectReason::ImplausibleValue {
            measurand,
            value,
            sent: match sent_unit {
                Some(unit) if converted => Some(Quantity::new(sent_value, echo(unit))),
                _ => None,
            },
        });
    }
    Ok((MeasuredValue::Number(value), converted))
}

/// A level of consciousness: one of the letters A, C, V, P, U, with no unit.
fn decode_acvpu(value: Option<&Json<'_>>, unit: Option<&Json<'_>>) -> Result<Acvpu, RejectReason> {
    no_unit(unit)?;
    match value {
        None => Err(RejectReason::MissingValue { sent_null: false }),
        Some(Json::Null) => Err(RejectReason::MissingValue { sent_null: true }),
        Some(Json::String(letter)) => {
            Acvpu::parse(letter).ok_or_else(|| RejectReason::InvalidCodedValue {
                value: echo(letter),
                expected: "A (alert), C (new confusion), V (voice), P (pain) or U (unresponsive)",
            })
        }
        Some(other) => Err(wrong_type(
            "value",
            "one of the strings \"A\", \"C\", \"V\", \"P\", \"U\"",
            other,
        )),
    }
}

/// Coded and yes/no values carry no unit; a unit there is a mistake worth naming.
fn no_unit(unit: Option<&Json<'_>>) -> Result<(), RejectReason> {
    match present(unit) {
        None => Ok(()),
        Some(Json::String(unit)) => Err(RejectReason::UnitNotAllowed { unit: echo(unit) }),
        Some(other) => Err(wrong_type("unit", "absent for a coded value", other)),
    }
}

fn decode_waveform(item: &Json<'_>, cx: &Context<'_>) -> Result<WaveformSegment, RejectReason> {
    let members = object_members(item)?;
    let [code, start, period_ms, rate_hz, factor, origin, samples] =
        collect_fields(members, &WAVEFORM_FIELDS).map_err(|e| e.into_reason(&WAVEFORM_FIELDS))?;
    let bad = RejectReason::BadWaveform;

    let code = match present(code) {
        None => return Err(RejectReason::MissingField { field: "code" }),
        Some(Json::String(code)) => WaveformCode::from_code(code)
            .ok_or_else(|| bad(WaveformProblem::UnknownCode { code: echo(code) }))?,
        Some(other) => return Err(wrong_type("code", "a string", other)),
    };
    let (start, _) = cx.time(present(start), "start")?;
    let period_ms = match (present(period_ms), present(rate_hz)) {
        (None, None) => return Err(bad(WaveformProblem::NoSampleTiming)),
        (Some(_), Some(_)) => return Err(bad(WaveformProblem::BothSampleTimings)),
        (Some(period), None) => {
            let period_ms = number(period, "period_ms", "a number of milliseconds")?;
            if !(MIN_PERIOD_MS..=MAX_PERIOD_MS).contains(&period_ms) {
                return Err(bad(WaveformProblem::PeriodOutOfRange { period_ms }));
            }
            period_ms
        }
        (None, Some(rate)) => {
            let rate_hz = number(rate, "rate_hz", "a number of samples per second")?;
            if !(MIN_RATE_HZ..=MAX_RATE_HZ).contains(&rate_hz) {
                return Err(bad(WaveformProblem::RateOutOfRange { rate_hz }));
            }
            1000.0 / rate_hz
        }
    };
    let factor = match present(factor) {
        None => 1.0,
        Some(v) => number(v, "factor", "a non-zero number")?,
    };
    if factor == 0.0 {
        return Err(bad(WaveformProblem::ZeroFactor));
    }
    let origin = match present(origin) {
        None => 0.0,
        Some(v) => number(v, "origin", "a number")?,
    };
    let raw = match present(samples) {
        None => return Err(RejectReason::MissingField { field: "samples" }),
        Some(Json::Array(raw)) => raw,
        Some(other) => return Err(wrong_type("samples", "an array of integers", other)),
    };
    if raw.is_empty() {
        return Err(bad(WaveformProblem::NoSamples));
    }
    if raw.len() > MAX_SAMPLES_PER_SEGMENT {
        return Err(bad(WaveformProblem::TooManySamples {
            count: raw.len(),
            max: MAX_SAMPLES_PER_SEGMENT,
        }));
    }
    let mut samples = Vec::with_capacity(raw.len());
    for (index, sample) in raw.iter().enumerate() {
        let wide = match *sample {
            Json::PosInt(n) => i128::from(n),
            Json::NegInt(n) => i128::from(n),
            ref other => {
                return Err(bad(WaveformProblem::SampleNotAnInteger {
                    index,
                    found: other.describe(),
                }));
            }
        };
        let narrow = i32::try_from(wide)
            .map_err(|_| bad(WaveformProblem::SampleOutOfRange { index, value: wide }))?;
        samples.push(narrow);
    }
    Ok(WaveformSegment {
        code,
        start,
        period_ms,
        factor,
        origin,
        samples,
    })
}

fn decode_signal(raw: &Json<'_>) -> Result<i16, RejectReason> {
    let value = match *raw {
        Json::PosInt(n) => i128::from(n),
        Json::NegInt(n) => i128::from(n),
        ref other => return Err(wrong_type("signal", "an integer from -150 to 0", other)),
    };
    match i16::try_from(value) {
        Ok(dbm) if (-150..=0).contains(&dbm) => Ok(dbm),
        _ => Err(RejectReason::SignalOutOfRange { value }),
    }
}

fn decode_battery(raw: &Json<'_>) -> Result<u8, RejectReason> {
    let value = match *raw {
        Json::PosInt(n) => i128::from(n),
        Json::NegInt(n) => i128::from(n),
        ref other => return Err(wrong_type("battery", "an integer from 0 to 100", other)),
    };
    match u8::try_from(value) {
        Ok(pct) if pct <= 100 => Ok(pct),
        _ => Err(RejectReason::BatteryOutOfRange { value }),
    }
}

/// Parses a time in either accepted form (see the module documentation).
pub(crate) fn parse_time(raw: &Json<'_>) -> Result<Instant, TimestampError> {
    match raw {
        Json::String(text) => {
            let time = DateTime::parse_from_rfc3339(text)
                .map_err(|error| TimestampError::NotRfc3339 {
                    text: echo(text),
                    error,
                })?
                .with_timezone(&Utc);
            if time < DateTime::UNIX_EPOCH {
                return Err(TimestampError::BeforeEpoch { time });
            }
            if time.timestamp_millis() > MAX_EPOCH_MS {
                return Err(TimestampError::AfterMaximum { time });
            }
            Ok(time)
        }
        &Json::PosInt(ms) => match i64::try_from(ms) {
            Ok(ms_i64) if ms_i64 <= MAX_EPOCH_MS => Utc
                .timestamp_millis_opt(ms_i64)
                .single()
                .ok_or(TimestampError::EpochTooLarge { ms }),
            _ => Err(TimestampError::EpochTooLarge { ms }),
        },
        &Json::NegInt(ms) => Err(TimestampError::NegativeEpoch { ms }),
        &Json::Float(value) => Err(TimestampError::NotAnInteger {
            value: value.to_string(),
        }),
        other => Err(TimestampError::WrongType {
            found: other.describe(),
        }),
    }
}

/// Why an object's members do not fit the expected set.
pub(crate) enum FieldError {
    Unknown {
        field: String,
        suggestion: Option<&'static str>,
    },
    Duplicate(&'static str),
}

impl FieldError {
    fn into_reason(self, allowed: &'static [&'static str]) -> RejectReason {
        match self {
            FieldError::Unknown { field, suggestion } => RejectReason::UnknownField {
                field,
                suggestion,
                allowed,
            },
            FieldError::Duplicate(field) => RejectReason::DuplicateField { field },
        }
    }
}

/// Sorts an object's members into the slots named by `names` (same order), refusing unknown and
/// repeated names.
pub(crate) fn collect_fields<'j, 'a, const N: usize>(
    members: &'j [(std::borrow::Cow<'a, str>, Json<'a>)],
    names: &[&'static str; N],
) -> Result<[Option<&'j Json<'a>>; N], FieldError> {
    let mut slots = [None; N];
    for (name, value) in members {
        let Some(slot) = names.iter().position(|n| n == name) else {
            return Err(FieldError::Unknown {
                field: echo(name),
                suggestion: suggest(name, names),
            });
        };
        if slots[slot].is_some() {
            return Err(FieldError::Duplicate(names[slot]));
        }
        slots[slot] = Some(value);
    }
    Ok(slots)
}

/// A member that is `null` counts as absent.
pub(crate) fn present<'j, 'a>(member: Option<&'j Json<'a>>) -> Option<&'j Json<'a>> {
    member.filter(|v| !v.is_null())
}

fn array_member<'j, 'a>(
    member: Option<&'j Json<'a>>,
    pointer: &'static str,
    expected: &'static str,
) -> Result<&'j [Json<'a>], PayloadError> {
    match present(member) {
        None => Ok(&[]),
        Some(Json::Array(items)) => Ok(items),
        Some(other) => Err(PayloadError::WrongShape {
            pointer,
            expected,
            found: other.describe(),
        }),
    }
}

fn object_members<'j, 'a>(
    item: &'j Json<'a>,
) -> Result<&'j [(std::borrow::Cow<'a, str>, Json<'a>)], RejectReason> {
    match item {
        Json::Object(members) => Ok(members),
        other => Err(RejectReason::NotAnObject {
            found: other.describe(),
        }),
    }
}

fn number(
    raw: &Json<'_>,
    field: &'static str,
    expected: &'static str,
) -> Result<f64, RejectReason> {
    raw.as_f64().ok_or_else(|| wrong_type(field, expected, raw))
}

fn wrong_type(field: &'static str, expected: &'static str, found: &Json<'_>) -> RejectReason {
    RejectReason::WrongType {
        field,
        expected,
        found: found.describe(),
    }
}

/// The `code` of an item as sent, for [`RejectedItem::code`].
fn sent_code(item: &Json<'_>) -> Option<String> {
    item.member("code").and_then(Json::as_str).map(echo)
}

/// A copy of a string from the message, cut to [`MAX_ECHO_BYTES`] at a character boundary.
pub(crate) fn echo(s: &str) -> String {
    if s.len() <= MAX_ECHO_BYTES {
        return s.to_owned();
    }
    let mut end = MAX_ECHO_BYTES;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// The accepted name an unknown one was probably meant to be: the same ignoring case, or at most
/// two single-character edits away (Levenshtein distance).
fn suggest(name: &str, names: &[&'static str]) -> Option<&'static str> {
    const MAX_LEN: usize = 32;
    if name.is_empty() || name.len() > MAX_LEN {
        return None;
    }
    if let Some(n) = names.iter().find(|n| n.eq_ignore_ascii_case(name)) {
        return Some(n);
    }
    names
        .iter()
        .map(|n| (edit_distance(name.as_bytes(), n.as_bytes()), *n))
        .filter(|&(d, n)| d <= 2 && d < n.len())
        .min_by_key(|&(d, _)| d)
        .map(|(_, n)| n)
}

/// Levenshtein distance of two short byte strings (both at most 32 bytes).
fn edit_distance(a: &[u8], b: &[u8]) -> usize {
    let mut row: [usize; 33] = std::array::from_fn(|i| i);
    for (i, &ca) in a.iter().enumerate().take(32) {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate().take(32) {
            let above = row[j + 1];
            row[j + 1] = (diagonal + usize::from(ca != cb))
                .min(above + 1)
                .min(row[j] + 1);
            diagonal = above;
        }
    }
    row[b.len().min(32)]
}

pub(crate) fn utf8_error(bytes: &[u8], offset: usize) -> PayloadError {
    let before = &bytes[..offset];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    PayloadError::NotUtf8 {
        offset,
        line,
        column: offset - line_start + 1,
    }
}

pub(crate) fn json_error(error: serde_json::Error) -> PayloadError {
    let (line, column) = (error.line(), error.column());
    let full = error.to_string();
    let suffix = format!(" at line {line} column {column}");
    let message = full.strip_suffix(&suffix).unwrap_or(&full).to_owned();
    PayloadError::NotJson {
        message,
        line,
        column,
    }
}

pub(crate) fn rfc3339(time: &Instant) -> String {
    time.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// A duration as seconds with milliseconds when they are not zero: "300 s", "300.001 s".
pub(crate) fn duration(d: chrono::Duration) -> String {
    let ms = i128::from(d.num_milliseconds());
    let sign = if ms < 0 { "-" } else { "" };
    let (secs, millis) = (ms.abs() / 1000, ms.abs() % 1000);
    if millis == 0 {
        format!("{sign}{secs} s")
    } else {
        format!("{sign}{secs}.{millis:03} s")
    }
}

fn null_or_missing(sent_null: bool) -> &'static str {
    if sent_null { "null" } else { "missing" }
}

pub(crate) fn did_you_mean(suggestion: &Option<&'static str>) -> String {
    suggestion.map_or_else(String::new, |s| format!(" (did you mean {s:?}?)"))
}

fn sent_as(sent: &Option<Quantity>) -> String {
    sent.as_ref().map_or_else(String::new, |q| {
        format!(" (sent as {} {})", q.value, q.unit)
    })
}

fn describe_pointer(pointer: &str) -> String {
    if pointer.is_empty() {
        "the message".to_owned()
    } else {
        pointer.to_owned()
    }
}

#[cfg(test)]
mod tests;
