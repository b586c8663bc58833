//! # The device event payload, version 1
//!
//! What a device sends when something happens rather than when it measures: a fall detector's
//! fall, a press of the panic button, a sensor that came off the patient. Sent on MQTT
//! `vigil/v1/devices/{id}/events` or HTTP `POST /api/v1/devices/{id}/events`. This comment is the
//! public contract; the tests beside it pin each clause.
//!
//! ```json
//! {"event": "fall", "ts": "2026-11-22T03:12:07.500Z", "battery": 64}
//! {"event": "sensor_off", "code": "spo2", "ts": 1795316400000}
//! ```
//!
//! | member    | type                    | meaning                                                  |
//! |-----------|-------------------------|----------------------------------------------------------|
//! | `event`   | string, required        | `fall`, `panic` or `sensor_off`                          |
//! | `ts`      | time, required          | when it happened: RFC 3339 or epoch milliseconds, as in the device JSON payload |
//! | `code`    | string                  | `sensor_off` only, and required there: the measurand whose sensor is off (`spo2`, `heart_rate` for ECG leads, …), in any form a reading's `code` takes |
//! | `battery` | integer 0–100, optional | battery charge in percent                                |
//!
//! **`ts` is required**, unlike in the readings payload: an event has no value that tells a resent
//! message from a new one, so its time is its identity. A device that resends an event it had no
//! acknowledgement for (MQTT QoS 1 after a reconnect) sends the same `ts`, and Vigil stores it
//! once; a new fall has a new time.
//!
//! `fall` and `panic` become event alarms (high priority, latching until acknowledged) and
//! Observations (`fall` coded SNOMED CT 1912002). `sensor_off` becomes an Observation of the
//! measurand with no value and a technical alarm that clears at the next clean reading of that
//! measurand; it is never read as a value, normal or not. Clinician-entered measurands
//! (`acvpu`, `o2_supplemental`) have no sensor and are refused.
//!
//! The whole message is refused ([`EventError`]) for any problem but a bad `battery`, which is
//! listed in [`DecodedMessage::rejected`] and ignored, as in the readings payload.

use vigil_model::{
    AbsentReason, DeviceEvent, Instant, Measurand, ObservationCode, ObservationStatus,
    ObservationValue, QualityFlags, Reading, ValueKind,
};

use super::{
    DecodeLimits, DecodedMessage, FieldError, PayloadError, RejectedItem, TimestampError,
    collect_fields, decode_battery, duration, echo, json_error, parse_time, present, rfc3339,
    utf8_error,
};
use crate::json::Json;

/// The members an event message may have.
pub const EVENT_FIELDS: [&str; 4] = ["event", "ts", "code", "battery"];

/// The event names the payload accepts.
pub const EVENT_NAMES: &str = "fall, panic or sensor_off";

/// Why an event message was refused; nothing of it is kept.
///
/// `Display` is a sentence for the sender; logs and metrics take [`EventError::kind`] only.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EventError {
    /// Too large, not UTF-8, not JSON, or not a JSON object.
    #[error(transparent)]
    Envelope(PayloadError),
    #[error("unknown field {field:?}{}; the accepted fields are {}", super::did_you_mean(.suggestion), EVENT_FIELDS.join(", "))]
    UnknownField {
        field: String,
        suggestion: Option<&'static str>,
    },
    #[error("field {field:?} appears more than once")]
    DuplicateField { field: &'static str },
    #[error("required field {field:?} is missing{}", .why)]
    MissingField {
        field: &'static str,
        why: &'static str,
    },
    #[error("{field} must be {expected}, but {found} was sent")]
    WrongType {
        field: &'static str,
        expected: &'static str,
        found: &'static str,
    },
    #[error("unknown event {event:?}; expected {EVENT_NAMES}")]
    UnknownEvent { event: String },
    #[error(
        "unknown measurand code {code:?}; expected a short name such as \"spo2\", a LOINC code, \
         an IEEE 11073-10101 reference id or a numeric MDC code"
    )]
    UnknownCode { code: String },
    #[error("code is only accepted with sensor_off, not with {event}")]
    CodeNotAllowed { event: &'static str },
    #[error("{code} is entered by a clinician, not measured by a sensor that can come off")]
    NotASensor { code: &'static str },
    #[error("ts is not a valid time: {error}")]
    BadTimestamp { error: TimestampError },
    #[error(
        "ts {} is {} after the time of receipt {}; at most {} ahead is accepted",
        rfc3339(.time), duration(.time.signed_duration_since(*.received)), rfc3339(.received),
        duration(*.max_skew)
    )]
    FutureTimestamp {
        time: Instant,
        received: Instant,
        max_skew: chrono::Duration,
    },
}

impl EventError {
    /// A stable snake_case label for metrics (never carries data from the message).
    pub fn kind(&self) -> &'static str {
        match self {
            EventError::Envelope(e) => e.kind(),
            EventError::UnknownField { .. } => "unknown_field",
            EventError::DuplicateField { .. } => "duplicate_field",
            EventError::MissingField { .. } => "missing_field",
            EventError::WrongType { .. } => "wrong_type",
            EventError::UnknownEvent { .. } => "unknown_event",
            EventError::UnknownCode { .. } => "unknown_code",
            EventError::CodeNotAllowed { .. } => "code_not_allowed",
            EventError::NotASensor { .. } => "not_a_sensor",
            EventError::BadTimestamp { .. } => "bad_timestamp",
            EventError::FutureTimestamp { .. } => "future_timestamp",
        }
    }
}

/// What the `event` member names.
enum Happening {
    Event(DeviceEvent),
    SensorOff,
}

/// Decodes one device event message (see the module documentation for the contract) into the
/// one reading it stands for.
///
/// `received` is when Vigil received it, the reference for [`DecodeLimits::max_future_skew`].
/// Pure and deterministic; never panics.
pub fn decode_device_event(
    bytes: &[u8],
    received: Instant,
    limits: &DecodeLimits,
) -> Result<DecodedMessage, EventError> {
    if bytes.len() > limits.max_bytes {
        return Err(EventError::Envelope(PayloadError::TooLarge {
            size: bytes.len(),
            max: limits.max_bytes,
        }));
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|e| EventError::Envelope(utf8_error(bytes, e.valid_up_to())))?;
    let root = Json::parse(text).map_err(|e| EventError::Envelope(json_error(e)))?;
    let Json::Object(members) = &root else {
        return Err(EventError::Envelope(PayloadError::WrongShape {
            pointer: "",
            expected: "a JSON object",
            found: root.describe(),
        }));
    };
    let [event, ts, code, battery] =
        collect_fields(members, &EVENT_FIELDS).map_err(|e| match e {
            FieldError::Unknown { field, suggestion } => {
                EventError::UnknownField { field, suggestion }
            }
            FieldError::Duplicate(field) => EventError::DuplicateField { field },
        })?;

    let happening = match present(event) {
        None => {
            return Err(EventError::MissingField {
                field: "event",
                why: "",
            });
        }
        Some(Json::String(name)) if name == "sensor_off" => Happening::SensorOff,
        Some(Json::String(name)) => DeviceEvent::from_code(name)
            .map(Happening::Event)
            .ok_or_else(|| EventError::UnknownEvent { event: echo(name) })?,
        Some(other) => return Err(wrong_type("event", "a string", other)),
    };

    let effective = match present(ts) {
        None => {
            return Err(EventError::MissingField {
                field: "ts",
                why: ": an event's time tells a resent event from a new one",
            });
        }
        Some(raw) => parse_time(raw).map_err(|error| EventError::BadTimestamp { error })?,
    };
    if effective.signed_duration_since(received) > limits.max_future_skew {
        return Err(EventError::FutureTimestamp {
            time: effective,
            received,
            max_skew: limits.max_future_skew,
        });
    }

    let (code, value) = match happening {
        Happening::Event(event) => {
            if present(code).is_some() {
                return Err(EventError::CodeNotAllowed {
                    event: event.code(),
                });
            }
            (ObservationCode::Event(event), ObservationValue::Detected)
        }
        Happening::SensorOff => {
            let measurand = match present(code) {
                None => {
                    return Err(EventError::MissingField {
                        field: "code",
                        why: ": sensor_off names the measurand whose sensor is off",
                    });
                }
                Some(Json::String(code)) => Measurand::from_code(code)
                    .ok_or_else(|| EventError::UnknownCode { code: echo(code) })?,
                Some(other) => return Err(wrong_type("code", "a string", other)),
            };
            if measurand.value_kind() != ValueKind::Quantity {
                return Err(EventError::NotASensor {
                    code: measurand.short_name(),
                });
            }
            let code = if measurand.is_bp_component() {
                ObservationCode::BloodPressure
            } else {
                ObservationCode::Single(measurand)
            };
            (code, ObservationValue::Absent(AbsentReason::SensorOff))
        }
    };

    let mut rejected = Vec::new();
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
    Ok(DecodedMessage {
        readings: vec![Reading {
            code,
            value,
            effective,
            status: ObservationStatus::Final,
            quality: QualityFlags::empty(),
        }],
        waveforms: Vec::new(),
        rejected,
        battery_pct,
        signal_dbm: None,
    })
}

fn wrong_type(field: &'static str, expected: &'static str, found: &Json<'_>) -> EventError {
    EventError::WrongType {
        field,
        expected,
        found: found.describe(),
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;

    fn received() -> Instant {
        Utc.with_ymd_and_hms(2026, 11, 22, 3, 12, 10).unwrap()
    }

    fn decode(text: &str) -> Result<DecodedMessage, EventError> {
        decode_device_event(text.as_bytes(), received(), &DecodeLimits::default())
    }

    fn kind(text: &str) -> &'static str {
        decode(text).unwrap_err().kind()
    }

    #[test]
    fn a_fall_becomes_one_detected_event_at_its_own_time() {
        let d =
            decode(r#"{"event":"fall","ts":"2026-11-22T04:12:07.5+01:00","battery":64}"#).unwrap();
        assert_eq!(d.readings.len(), 1);
        let r = &d.readings[0];
        assert_eq!(r.code, ObservationCode::Event(DeviceEvent::Fall));
        assert_eq!(r.value, ObservationValue::Detected);
        assert_eq!(
            r.effective,
            Utc.with_ymd_and_hms(2026, 11, 22, 3, 12, 7).unwrap()
                + chrono::Duration::milliseconds(500)
        );
        assert_eq!(d.battery_pct, Some(64));
        assert!(d.rejected.is_empty() && d.waveforms.is_empty());
    }

    #[test]
    fn panic_and_epoch_milliseconds() {
        let d = decode(r#"{"event":"panic","ts":1795316400000}"#).unwrap();
        assert_eq!(
            d.readings[0].code,
            ObservationCode::Event(DeviceEvent::Panic)
        );
        assert_eq!(
            d.readings[0].effective.timestamp_millis(),
            1_795_316_400_000
        );
    }

    #[test]
    fn sensor_off_names_its_measurand_in_any_accepted_form() {
        for code in ["spo2", "59408-5", "MDC_PULS_OXIM_SAT_O2", "150456"] {
            let d = decode(&format!(
                r#"{{"event":"sensor_off","code":"{code}","ts":"2026-11-22T03:12:00Z"}}"#
            ))
            .unwrap();
            assert_eq!(d.readings[0].code, ObservationCode::Single(Measurand::Spo2));
            assert_eq!(
                d.readings[0].value,
                ObservationValue::Absent(AbsentReason::SensorOff)
            );
        }
        // A blood-pressure cuff's sensor is the panel's.
        let d = decode(r#"{"event":"sensor_off","code":"systolic_bp","ts":0}"#).unwrap();
        assert_eq!(d.readings[0].code, ObservationCode::BloodPressure);
    }

    #[test]
    fn the_time_is_required_and_checked() {
        assert_eq!(kind(r#"{"event":"fall"}"#), "missing_field");
        assert!(
            decode(r#"{"event":"fall"}"#)
                .unwrap_err()
                .to_string()
                .contains("resent event")
        );
        assert_eq!(kind(r#"{"event":"fall","ts":null}"#), "missing_field");
        assert_eq!(
            kind(r#"{"event":"fall","ts":"yesterday"}"#),
            "bad_timestamp"
        );
        assert_eq!(kind(r#"{"event":"fall","ts":-1}"#), "bad_timestamp");
        assert_eq!(kind(r#"{"event":"fall","ts":1.5}"#), "bad_timestamp");
        // At most five minutes ahead of receipt: exactly five is accepted, a millisecond more not.
        assert!(decode(r#"{"event":"fall","ts":"2026-11-22T03:17:10Z"}"#).is_ok());
        assert_eq!(
            kind(r#"{"event":"fall","ts":"2026-11-22T03:17:10.001Z"}"#),
            "future_timestamp"
        );
    }

    #[test]
    fn bad_events_are_refused_whole() {
        assert_eq!(kind(r#"{"ts":0}"#), "missing_field");
        assert_eq!(kind(r#"{"event":"Fall","ts":0}"#), "unknown_event");
        assert_eq!(kind(r#"{"event":"explosion","ts":0}"#), "unknown_event");
        assert_eq!(kind(r#"{"event":7,"ts":0}"#), "wrong_type");
        assert_eq!(
            kind(r#"{"event":"fall","ts":0,"code":"spo2"}"#),
            "code_not_allowed"
        );
        assert_eq!(kind(r#"{"event":"sensor_off","ts":0}"#), "missing_field");
        assert_eq!(
            kind(r#"{"event":"sensor_off","ts":0,"code":"vibes"}"#),
            "unknown_code"
        );
        assert_eq!(
            kind(r#"{"event":"sensor_off","ts":0,"code":42}"#),
            "wrong_type"
        );
        assert_eq!(
            kind(r#"{"event":"sensor_off","ts":0,"code":"acvpu"}"#),
            "not_a_sensor"
        );
        assert_eq!(
            kind(r#"{"event":"fall","ts":0,"evnt":"x"}"#),
            "unknown_field"
        );
        assert!(
            decode(r#"{"event":"fall","ts":0,"evnt":"x"}"#)
                .unwrap_err()
                .to_string()
                .contains("accepted fields are event, ts, code, battery")
        );
        assert_eq!(
            kind(r#"{"event":"fall","event":"panic","ts":0}"#),
            "duplicate_field"
        );
        assert_eq!(kind(r#"["fall"]"#), "wrong_shape");
        assert_eq!(kind(r#"{"event":"fall""#), "not_json");
        assert_eq!(kind(""), "not_json");
        assert_eq!(
            decode_device_event(b"\xff", received(), &DecodeLimits::default())
                .unwrap_err()
                .kind(),
            "not_utf8"
        );
        let small = DecodeLimits {
            max_bytes: 8,
            ..DecodeLimits::default()
        };
        assert_eq!(
            decode_device_event(br#"{"event":"fall","ts":0}"#, received(), &small)
                .unwrap_err()
                .kind(),
            "too_large"
        );
    }

    #[test]
    fn a_bad_battery_is_ignored_not_the_event() {
        let d = decode(r#"{"event":"panic","ts":0,"battery":101}"#).unwrap();
        assert_eq!(d.readings.len(), 1);
        assert_eq!(d.battery_pct, None);
        assert_eq!(d.rejected[0].pointer, "/battery");
    }
}
