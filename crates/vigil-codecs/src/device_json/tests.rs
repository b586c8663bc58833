//! Tests of the device JSON contract, one group per clause of the module documentation.

use chrono::{Duration, TimeZone, Utc};
use vigil_model::{
    Acvpu, Measurand, ObservationCode, ObservationStatus, ObservationValue, QualityFlags, ValueKind,
};

use super::*;

/// When the test messages arrive: 30 s after the contract example's `ts`.
fn received() -> Instant {
    Utc.with_ymd_and_hms(2026, 11, 21, 10, 15, 30).unwrap()
}

fn at(h: u32, m: u32, s: u32, ms: i64) -> Instant {
    Utc.with_ymd_and_hms(2026, 11, 21, h, m, s).unwrap() + Duration::milliseconds(ms)
}

fn decode(json: &str) -> Result<DecodedMessage, PayloadError> {
    decode_device_message(json.as_bytes(), received(), &DecodeLimits::default())
}

fn ok(json: &str) -> DecodedMessage {
    decode(json).unwrap_or_else(|e| panic!("{e}"))
}

fn err(json: &str) -> PayloadError {
    decode(json).expect_err("the message should be refused")
}

/// Decodes a message with one reading and returns it, asserting nothing was refused.
fn single(reading: &str) -> Reading {
    let msg = ok(&format!(r#"{{"obs": [{reading}]}}"#));
    assert!(msg.rejected.is_empty(), "{:?}", msg.rejected);
    assert_eq!(msg.readings.len(), 1, "{:?}", msg.readings);
    msg.readings.into_iter().next().unwrap()
}

/// Decodes a message with one reading and returns why it was refused.
fn refused(reading: &str) -> RejectedItem {
    refused_in(&format!(r#"{{"obs": [{reading}]}}"#))
}

/// Decodes a message that must be accepted with nothing in it but one refusal.
fn refused_in(message: &str) -> RejectedItem {
    let msg = ok(message);
    assert!(msg.readings.is_empty(), "{:?}", msg.readings);
    assert!(msg.waveforms.is_empty(), "{:?}", msg.waveforms);
    assert_eq!(msg.rejected.len(), 1, "{:?}", msg.rejected);
    msg.rejected.into_iter().next().unwrap()
}

fn segment(item: &str) -> WaveformSegment {
    let msg = ok(&format!(
        r#"{{"ts": "2026-11-21T10:15:00Z", "waveform": [{item}]}}"#
    ));
    assert!(msg.rejected.is_empty(), "{:?}", msg.rejected);
    assert_eq!(msg.waveforms.len(), 1);
    msg.waveforms.into_iter().next().unwrap()
}

fn segment_refused(item: &str) -> RejectedItem {
    let r = refused_in(&format!(
        r#"{{"ts": "2026-11-21T10:15:00Z", "waveform": [{item}]}}"#
    ));
    assert_eq!(r.pointer, "/waveform/0");
    r
}

fn value(r: &Reading) -> f64 {
    match &r.value {
        ObservationValue::Quantity(q) => q.value,
        other => panic!("not a single quantity: {other:?}"),
    }
}

fn unit(r: &Reading) -> &str {
    match &r.value {
        ObservationValue::Quantity(q) => &q.unit,
        other => panic!("not a single quantity: {other:?}"),
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

fn assert_contains(text: impl std::fmt::Display, parts: &[&str]) {
    let text = text.to_string();
    for part in parts {
        assert!(text.contains(part), "{text:?} lacks {part:?}");
    }
}

const CONTRACT_EXAMPLE: &str = r#"{"ts": "2026-11-21T10:15:00.250Z",
 "obs": [{"code": "heart_rate", "value": 72, "unit": "/min"},
         {"code": "8480-6", "value": 128, "unit": "mm[Hg]"}],
 "waveform": [{"code": "ecg_lead_ii", "start": "2026-11-21T10:15:00Z", "period_ms": 4, "factor": 0.005, "origin": 0, "samples": [1, 2, 3]}],
 "battery": 87}"#;

// ---------------------------------------------------------------- the message as a whole

#[test]
fn the_contract_example_decodes() {
    let msg = ok(CONTRACT_EXAMPLE);
    assert!(msg.rejected.is_empty(), "{:?}", msg.rejected);
    assert_eq!(msg.battery_pct, Some(87));
    assert_eq!(msg.readings.len(), 2);

    let hr = &msg.readings[0];
    assert_eq!(hr.code, ObservationCode::Single(Measurand::HeartRate));
    assert_eq!(value(hr), 72.0);
    assert_eq!(unit(hr), "/min");
    assert_eq!(hr.effective, at(10, 15, 0, 250));
    assert_eq!(hr.status, ObservationStatus::Final);
    assert!(hr.quality.is_empty(), "{:?}", hr.quality);

    let bp = &msg.readings[1];
    assert_eq!(bp.code, ObservationCode::BloodPressure);
    let ObservationValue::Components(parts) = &bp.value else {
        panic!("{bp:?}")
    };
    assert_eq!(parts.len(), 1);
    assert_eq!(parts[0].measurand, Measurand::SystolicBp);
    assert_eq!(parts[0].value.value, 128.0);

    let wave = &msg.waveforms[0];
    assert_eq!(wave.code, WaveformCode::EcgLeadIi);
    assert_eq!(wave.start, at(10, 15, 0, 0));
    assert_eq!(wave.period_ms, 4.0);
    assert_eq!(wave.factor, 0.005);
    assert_eq!(wave.origin, 0.0);
    assert_eq!(wave.samples, [1, 2, 3]);
}

#[test]
fn systolic_and_diastolic_at_one_time_become_one_blood_pressure_panel() {
    let msg = ok(r#"{"ts": 1795256100250, "obs": [
        {"code": "diastolic_bp", "value": 80},
        {"code": "heart_rate", "value": 64},
        {"code": "MDC_PRESS_BLD_NONINV_SYS", "value": 16, "unit": "kPa"},
        {"code": "150023", "value": 96}]}"#);
    assert!(msg.rejected.is_empty(), "{:?}", msg.rejected);
    assert_eq!(msg.readings.len(), 2);
    let bp = &msg.readings[0];
    assert_eq!(bp.code, ObservationCode::BloodPressure);
    assert_eq!(bp.effective, at(10, 15, 0, 250));
    let ObservationValue::Components(parts) = &bp.value else {
        panic!("{bp:?}")
    };
    let got: Vec<_> = parts
        .iter()
        .map(|c| (c.measurand, c.value.unit.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (Measurand::SystolicBp, "mm[Hg]"),
            (Measurand::DiastolicBp, "mm[Hg]"),
            (Measurand::MeanBp, "mm[Hg]")
        ]
    );
    assert!(close(parts[0].value.value, 120.009_852_135_305));
    assert!(
        bp.quality.contains(QualityFlags::CONVERTED_UNIT),
        "the panel carries its converted part's flag"
    );
    assert_eq!(
        msg.readings[1].code,
        ObservationCode::Single(Measurand::HeartRate)
    );
}

#[test]
fn blood_pressure_parts_at_different_times_stay_apart() {
    let msg = ok(r#"{"obs": [
        {"code": "systolic_bp", "value": 120, "ts": "2026-11-21T10:00:00Z"},
        {"code": "diastolic_bp", "value": 80, "ts": "2026-11-21T10:00:01Z"}]}"#);
    assert_eq!(msg.readings.len(), 2);
    assert!(
        msg.readings
            .iter()
            .all(|r| r.code == ObservationCode::BloodPressure)
    );
}

#[test]
fn valid_readings_are_kept_when_others_are_refused() {
    let msg = ok(r#"{"ts": "2026-11-21T10:15:00Z", "obs": [
        {"code": "heart_rate", "value": 72},
        {"code": "no_such_thing", "value": 1},
        {"code": "spo2", "value": 97},
        {"code": "resp_rate", "value": null},
        {"code": "temperature", "value": 37.2}]}"#);
    let codes: Vec<_> = msg.readings.iter().map(|r| r.code.short_name()).collect();
    assert_eq!(codes, ["heart_rate", "spo2", "temperature"]);
    let refusals: Vec<_> = msg
        .rejected
        .iter()
        .map(|r| (r.pointer.as_str(), r.code.as_deref(), r.reason.kind()))
        .collect();
    assert_eq!(
        refusals,
        [
            ("/obs/1", Some("no_such_thing"), "unknown_code"),
            ("/obs/3", Some("resp_rate"), "missing_value")
        ]
    );
    assert_eq!(
        msg.rejected[1].to_string(),
        "/obs/3: value is null; a reading without a value is refused, never taken as normal"
    );
}

#[test]
fn readings_refusals_come_before_waveform_and_battery_refusals() {
    let msg = ok(r#"{"battery": 101, "waveform": [{"code": "x"}], "obs": [{"code": "y"}]}"#);
    let pointers: Vec<_> = msg.rejected.iter().map(|r| r.pointer.as_str()).collect();
    assert_eq!(pointers, ["/obs/0", "/waveform/0", "/battery"]);
}

#[test]
fn null_members_count_as_absent() {
    let msg = ok(r#"{"ts": null, "waveform": null, "battery": null,
        "obs": [{"code": "heart_rate", "value": 70, "unit": null, "ts": null, "status": null, "quality": null}]}"#);
    assert_eq!(msg.battery_pct, None);
    assert!(msg.rejected.is_empty());
    let r = &msg.readings[0];
    assert_eq!(r.effective, received());
    assert_eq!(r.quality, QualityFlags::TIME_FROM_RECEIPT);
    assert_eq!(r.status, ObservationStatus::Final);
}

#[test]
fn whitespace_and_member_order_do_not_matter() {
    let msg = ok(
        "\n\t{ \"obs\" : [ { \"value\" : 72 , \"code\" : \"heart_rate\" } ] ,\r\n \"ts\" : 0 }\n ",
    );
    assert_eq!(msg.readings[0].effective, DateTime::UNIX_EPOCH);
}

// ---------------------------------------------------------------- whole-message errors

#[test]
fn a_message_over_max_bytes_is_refused_before_parsing() {
    let limits = DecodeLimits {
        max_bytes: 64,
        ..DecodeLimits::default()
    };
    let exactly = format!(
        r#"{{"obs": [{{"code": "heart_rate", "value": 72}}]}}{}"#,
        " ".repeat(18)
    );
    assert_eq!(exactly.len(), 64);
    assert!(decode_device_message(exactly.as_bytes(), received(), &limits).is_ok());
    let over = format!("{exactly} ");
    let e = decode_device_message(over.as_bytes(), received(), &limits).unwrap_err();
    assert_eq!(e, PayloadError::TooLarge { size: 65, max: 64 });
    assert_eq!(e.kind(), "too_large");
    assert_eq!(
        e.to_string(),
        "message is 65 bytes, more than the limit of 64 bytes"
    );
    // Not even valid JSON: the size is checked first.
    let garbage = vec![0xff; 65];
    let e = decode_device_message(&garbage, received(), &limits).unwrap_err();
    assert_eq!(e.kind(), "too_large");
}

#[test]
fn the_default_limits_are_the_documented_ones() {
    let d = DecodeLimits::default();
    assert_eq!(d.max_bytes, 262_144);
    assert_eq!(d.max_readings, 1000);
    assert_eq!(d.max_waveforms, 16);
    assert_eq!(d.max_future_skew, Duration::minutes(5));
}

#[test]
fn bytes_that_are_not_utf8_are_refused_with_their_position() {
    let mut bytes = b"{\"obs\": [\n  {\"code\": \"".to_vec();
    bytes.push(0xc3); // a lead byte without its continuation
    bytes.extend_from_slice(b"\"}]}");
    let e = decode_device_message(&bytes, received(), &DecodeLimits::default()).unwrap_err();
    assert_eq!(
        e,
        PayloadError::NotUtf8 {
            offset: 22,
            line: 2,
            column: 13
        }
    );
    assert_eq!(e.kind(), "not_utf8");
    assert_eq!(
        e.to_string(),
        "message is not UTF-8: invalid byte at offset 22 (line 2, column 13)"
    );
}

#[test]
fn text_that_is_not_json_is_refused_with_line_and_column() {
    let e = err("{\"obs\": [\n  {\"code\": heart_rate}]}");
    let PayloadError::NotJson {
        line,
        column,
        message,
    } = &e
    else {
        panic!("{e:?}")
    };
    assert_eq!((*line, *column), (2, 12));
    assert_eq!(message, "expected value");
    assert_eq!(e.kind(), "not_json");
    assert_eq!(
        e.to_string(),
        "message is not valid JSON: expected value at line 2, column 12"
    );

    for bad in [
        "",
        "   ",
        "{",
        r#"{"obs": []"#,
        r#"{"obs": [],}"#,
        "{} {}",
        "{}x",
        "NaN",
        r#"{"obs": [{"value": 1e999}]}"#,
    ] {
        assert_eq!(err(bad).kind(), "not_json", "{bad:?}");
    }
    assert_contains(err("{} x"), &["trailing characters", "line 1, column 4"]);
    assert_contains(err(""), &["EOF while parsing a value"]);
}

#[test]
fn a_message_that_is_not_an_object_is_refused() {
    for (json, found) in [
        (r#"[{"code": "heart_rate", "value": 72}]"#, "an array"),
        ("72", "an integer"),
        ("null", "null"),
        (r#""obs""#, "a string"),
    ] {
        let e = err(json);
        assert_eq!(
            e,
            PayloadError::WrongShape {
                pointer: "",
                expected: "a JSON object",
                found
            }
        );
        assert_eq!(e.kind(), "wrong_shape");
    }
    assert_eq!(
        err("[]").to_string(),
        "the message must be a JSON object, but an array was sent"
    );
}

#[test]
fn obs_or_waveform_that_is_not_an_array_is_refused() {
    let e = err(r#"{"obs": {"code": "heart_rate", "value": 72}}"#);
    assert_eq!(e.kind(), "wrong_shape");
    assert_eq!(
        e.to_string(),
        "/obs must be an array of readings, but an object was sent"
    );
    let e = err(r#"{"obs": [], "waveform": "ecg"}"#);
    assert_eq!(
        e.to_string(),
        "/waveform must be an array of waveform segments, but a string was sent"
    );
}

#[test]
fn a_message_without_readings_is_refused() {
    for json in [
        "{}",
        r#"{"obs": []}"#,
        r#"{"obs": [], "waveform": []}"#,
        r#"{"obs": null}"#,
        r#"{"battery": 50, "ts": "2026-11-21T10:15:00Z"}"#,
    ] {
        let e = err(json);
        assert_eq!(e, PayloadError::NoReadings, "{json}");
        assert_eq!(e.kind(), "no_readings");
    }
    assert_eq!(
        PayloadError::NoReadings.to_string(),
        "message has no readings: obs and waveform are both absent or empty"
    );
}

#[test]
fn an_unknown_top_level_field_refuses_the_message_and_names_it() {
    let e = err(r#"{"obs": [{"code": "heart_rate", "value": 72}], "device": "abc"}"#);
    assert_eq!(e.kind(), "unknown_field");
    assert_eq!(
        e.to_string(),
        "unknown top-level field \"device\"; the accepted fields are ts, obs, waveform, battery, signal"
    );
    let e = err(r#"{"obss": [{"code": "heart_rate", "value": 72}]}"#);
    assert_eq!(
        e.to_string(),
        "unknown top-level field \"obss\" (did you mean \"obs\"?); the accepted fields are ts, obs, waveform, battery, signal"
    );
    let e = err(r#"{"TS": 0, "obs": []}"#);
    assert_contains(e, &["(did you mean \"ts\"?)"]);
}

#[test]
fn a_repeated_top_level_field_refuses_the_message() {
    let e = err(r#"{"obs": [{"code": "heart_rate", "value": 72}], "obs": []}"#);
    assert_eq!(e, PayloadError::DuplicateField { field: "obs" });
    assert_eq!(e.kind(), "duplicate_field");
    assert_eq!(
        e.to_string(),
        "top-level field \"obs\" appears more than once"
    );
}

#[test]
fn too_many_readings_or_segments_refuse_the_message() {
    let limits = DecodeLimits {
        max_readings: 3,
        max_waveforms: 2,
        ..DecodeLimits::default()
    };
    let obs = |n: usize| {
        let items: Vec<String> = (0..n)
            .map(|i| format!(r#"{{"code": "heart_rate", "value": 70, "ts": {i}}}"#))
            .collect();
        format!(r#"{{"obs": [{}]}}"#, items.join(","))
    };
    let msg = decode_device_message(obs(3).as_bytes(), received(), &limits).unwrap();
    assert_eq!(msg.readings.len(), 3);
    let e = decode_device_message(obs(4).as_bytes(), received(), &limits).unwrap_err();
    assert_eq!(e, PayloadError::TooManyReadings { count: 4, max: 3 });
    assert_eq!(e.kind(), "too_many_readings");
    assert_eq!(
        e.to_string(),
        "obs has 4 readings, more than the limit of 3"
    );

    let waves = |n: usize| {
        let items = vec![r#"{"code": "pleth", "rate_hz": 100, "samples": [1]}"#; n];
        format!(r#"{{"waveform": [{}]}}"#, items.join(","))
    };
    let msg = decode_device_message(waves(2).as_bytes(), received(), &limits).unwrap();
    assert_eq!(msg.waveforms.len(), 2);
    let e = decode_device_message(waves(3).as_bytes(), received(), &limits).unwrap_err();
    assert_eq!(e, PayloadError::TooManyWaveforms { count: 3, max: 2 });
    assert_eq!(e.kind(), "too_many_waveforms");
    assert_eq!(
        e.to_string(),
        "waveform has 3 segments, more than the limit of 2"
    );
}

#[test]
fn a_bad_message_level_ts_refuses_the_message() {
    let cases = [
        (
            r#""yesterday""#,
            "message-level ts is not a valid time: \"yesterday\" is not an RFC 3339 date-time such as 2026-11-21T10:15:00.250Z (premature end of input)",
        ),
        (
            r#""2026-13-01T00:00:00Z""#,
            "message-level ts is not a valid time: \"2026-13-01T00:00:00Z\" is not an RFC 3339 date-time such as 2026-11-21T10:15:00.250Z (input is out of range)",
        ),
        (
            r#""2026-11-21""#,
            "message-level ts is not a valid time: \"2026-11-21\" is not an RFC 3339 date-time such as 2026-11-21T10:15:00.250Z (premature end of input)",
        ),
        (
            "-1",
            "message-level ts is not a valid time: epoch milliseconds -1 is negative, before 1970-01-01T00:00:00Z",
        ),
        (
            "1795256100250.5",
            "message-level ts is not a valid time: epoch milliseconds must be an integer, but 1795256100250.5 was sent",
        ),
        (
            "253402300800000",
            "message-level ts is not a valid time: epoch milliseconds 253402300800000 is after 9999-12-31T23:59:59.999Z",
        ),
        (
            "18446744073709551615",
            "message-level ts is not a valid time: epoch milliseconds 18446744073709551615 is after 9999-12-31T23:59:59.999Z",
        ),
        (
            r#""1969-12-31T23:59:59.999Z""#,
            "message-level ts is not a valid time: 1969-12-31T23:59:59.999Z is before 1970-01-01T00:00:00Z",
        ),
        (
            r#""9999-12-31T23:59:59-01:00""#,
            "message-level ts is not a valid time: +10000-01-01T00:59:59Z is after 9999-12-31T23:59:59.999Z",
        ),
        (
            "true",
            "message-level ts is not a valid time: expected an RFC 3339 date-time string or integer epoch milliseconds, but a boolean was sent",
        ),
        (
            "[]",
            "message-level ts is not a valid time: expected an RFC 3339 date-time string or integer epoch milliseconds, but an array was sent",
        ),
    ];
    for (ts, expected) in cases {
        let e = err(&format!(
            r#"{{"ts": {ts}, "obs": [{{"code": "heart_rate", "value": 72}}]}}"#
        ));
        assert_eq!(e.kind(), "bad_timestamp", "{ts}");
        assert_eq!(e.to_string(), expected, "{ts}");
    }
}

#[test]
fn a_future_message_ts_refuses_each_reading_not_the_message() {
    let msg = ok(r#"{"ts": "2026-11-21T11:00:00Z", "obs": [
        {"code": "heart_rate", "value": 72},
        {"code": "spo2", "value": 97, "ts": "2026-11-21T10:15:00Z"}]}"#);
    assert_eq!(
        msg.readings.len(),
        1,
        "the reading with its own time is kept"
    );
    let r = &msg.rejected[0];
    assert_eq!(r.pointer, "/obs/0");
    assert_eq!(r.reason.kind(), "future_timestamp");
    assert_eq!(
        r.reason.to_string(),
        "message-level ts 2026-11-21T11:00:00Z is 2670 s after the time of receipt \
         2026-11-21T10:15:30Z; at most 300 s ahead is accepted"
    );
}

#[test]
fn every_payload_error_kind_is_a_stable_label() {
    let kinds = [
        (PayloadError::TooLarge { size: 2, max: 1 }, "too_large"),
        (
            PayloadError::NotUtf8 {
                offset: 0,
                line: 1,
                column: 1,
            },
            "not_utf8",
        ),
        (
            PayloadError::NotJson {
                message: String::new(),
                line: 1,
                column: 1,
            },
            "not_json",
        ),
        (
            PayloadError::WrongShape {
                pointer: "/obs",
                expected: "",
                found: "",
            },
            "wrong_shape",
        ),
        (
            PayloadError::UnknownField {
                field: String::new(),
                suggestion: None,
            },
            "unknown_field",
        ),
        (
            PayloadError::DuplicateField { field: "ts" },
            "duplicate_field",
        ),
        (
            PayloadError::TooManyReadings { count: 2, max: 1 },
            "too_many_readings",
        ),
        (
            PayloadError::TooManyWaveforms { count: 2, max: 1 },
            "too_many_waveforms",
        ),
        (
            PayloadError::BadTimestamp {
                error: TimestampError::NegativeEpoch { ms: -1 },
            },
            "bad_timestamp",
        ),
        (PayloadError::NoReadings, "no_readings"),
    ];
    for (e, kind) in kinds {
        assert_eq!(e.kind(), kind);
    }
}

// ---------------------------------------------------------------- codes

#[test]
fn codes_resolve_by_short_name_loinc_and_mdc() {
    for code in [
        "heart_rate",
        "8867-4",
        "MDC_ECG_HEART_RATE",
        "147842",
        "8889-8",
    ] {
        let r = single(&format!(r#"{{"code": "{code}", "value": 60}}"#));
        assert_eq!(
            r.code,
            ObservationCode::Single(Measurand::HeartRate),
            "{code}"
        );
    }
}

#[test]
fn an_unknown_code_refuses_the_reading_and_is_echoed() {
    let r = refused(r#"{"code": "heart-rate", "value": 72}"#);
    assert_eq!(r.pointer, "/obs/0");
    assert_eq!(r.code.as_deref(), Some("heart-rate"));
    assert_eq!(
        r.reason,
        RejectReason::UnknownCode {
            code: "heart-rate".into()
        }
    );
    assert_eq!(r.reason.kind(), "unknown_code");
    assert_eq!(
        r.reason.to_string(),
        "unknown measurand code \"heart-rate\"; expected a short name such as \"heart_rate\", a \
         LOINC code, an IEEE 11073-10101 reference id or a numeric MDC code"
    );
    // The blood-pressure panel code is not a measurand a device reports a value for.
    assert_eq!(
        refused(r#"{"code": "85354-9", "value": 120}"#)
            .reason
            .kind(),
        "unknown_code"
    );
}

#[test]
fn a_missing_or_non_string_code_refuses_the_reading() {
    let r = refused(r#"{"value": 72}"#);
    assert_eq!(r.reason, RejectReason::MissingField { field: "code" });
    assert_eq!(r.reason.kind(), "missing_field");
    assert_eq!(r.reason.to_string(), "required field \"code\" is missing");
    assert_eq!(r.code, None);
    let r = refused(r#"{"code": null, "value": 72}"#);
    assert_eq!(r.reason.kind(), "missing_field");
    let r = refused(r#"{"code": 147842, "value": 72}"#);
    assert_eq!(r.reason.kind(), "wrong_type");
    assert_eq!(
        r.reason.to_string(),
        "code must be a string, but an integer was sent"
    );
    assert_eq!(r.code, None);
}

#[test]
fn long_echoed_strings_are_cut() {
    let long = format!("{}é{}", "a".repeat(63), "b".repeat(1000));
    let r = refused(&format!(r#"{{"code": "{long}", "value": 1}}"#));
    let code = r.code.unwrap();
    // 63 ASCII bytes, then "é" (2 bytes) would cross the 64-byte limit: cut before it.
    assert_eq!(code, format!("{}…", "a".repeat(63)));
    assert_contains(&r.reason, &[&code]);
    assert!(r.reason.to_string().len() < 300);
    let exact = "c".repeat(MAX_ECHO_BYTES);
    let r = refused(&format!(r#"{{"code": "{exact}", "value": 1}}"#));
    assert_eq!(r.code.as_deref(), Some(exact.as_str()));
}

// ---------------------------------------------------------------- values

#[test]
fn a_missing_value_is_never_taken_as_normal() {
    let r = refused(r#"{"code": "heart_rate"}"#);
    assert_eq!(r.reason, RejectReason::MissingValue { sent_null: false });
    assert_eq!(r.reason.kind(), "missing_value");
    assert_eq!(
        r.reason.to_string(),
        "value is missing; a reading without a value is refused, never taken as normal"
    );
    let r = refused(r#"{"code": "heart_rate", "value": null}"#);
    assert_eq!(r.reason, RejectReason::MissingValue { sent_null: true });
    assert_contains(&r.reason, &["value is null"]);
}

#[test]
fn a_value_that_is_not_a_number_is_refused_naming_its_type() {
    for (v, found) in [
        (r#""72""#, "a string"),
        ("true", "a boolean"),
        ("[72]", "an array"),
        (r#"{"v": 72}"#, "an object"),
    ] {
        let r = refused(&format!(r#"{{"code": "heart_rate", "value": {v}}}"#));
        assert_eq!(
            r.reason,
            RejectReason::WrongType {
                field: "value",
                expected: "a number",
                found
            }
        );
        assert_eq!(r.reason.kind(), "wrong_type");
        assert_eq!(
            r.reason.to_string(),
            format!("value must be a number, but {found} was sent")
        );
    }
}

#[test]
fn numbers_in_any_json_form_are_accepted() {
    for (v, expected) in [
        ("72", 72.0),
        ("72.0", 72.0),
        ("7.2e1", 72.0),
        ("0", 0.0),
        ("-0", 0.0),
    ] {
        let r = single(&format!(r#"{{"code": "heart_rate", "value": {v}}}"#));
        assert_eq!(value(&r), expected, "{v}");
    }
}

#[test]
fn plausible_bounds_are_inclusive() {
    for m in Measurand::ALL
        .into_iter()
        .filter(|m| m.value_kind() != ValueKind::Acvpu)
    {
        let range = m.plausible();
        let code = m.short_name();
        for ok_value in [range.min, range.max] {
            let r = single(&format!(r#"{{"code": "{code}", "value": {ok_value:?}}}"#));
            let got = match &r.value {
                ObservationValue::Quantity(q) => q.value,
                ObservationValue::Components(c) => c[0].value.value,
                other => panic!("{code}: a number was sent, {other:?} came back"),
            };
            assert_eq!(got, ok_value, "{code}");
        }
        for bad in [range.min - 0.001, range.max + 0.001] {
            let r = refused(&format!(r#"{{"code": "{code}", "value": {bad:?}}}"#));
            assert_eq!(r.reason.kind(), "implausible_value", "{code} {bad}");
        }
    }
}

#[test]
fn an_implausible_value_names_value_unit_and_range() {
    let r = refused(r#"{"code": "heart_rate", "value": 351}"#);
    assert_eq!(
        r.reason,
        RejectReason::ImplausibleValue {
            measurand: Measurand::HeartRate,
            value: 351.0,
            sent: None
        }
    );
    assert_eq!(
        r.reason.to_string(),
        "heart_rate 351 /min is outside the plausible range 0 to 350 /min"
    );
    let r = refused(r#"{"code": "temperature", "value": 212, "unit": "[degF]"}"#);
    assert_eq!(
        r.reason.to_string(),
        "temperature 100 Cel (sent as 212 [degF]) is outside the plausible range 10 to 46 Cel"
    );
    // A synonym of the canonical unit is not a conversion, so it is not repeated.
    let r = refused(r#"{"code": "heart_rate", "value": -1, "unit": "{beats}/min"}"#);
    assert_eq!(
        r.reason.to_string(),
        "heart_rate -1 /min is outside the plausible range 0 to 350 /min"
    );
}

#[test]
fn a_conversion_that_overflows_is_implausible_not_a_panic() {
    let r = refused(r#"{"code": "systolic_bp", "value": 1.7e308, "unit": "kPa"}"#);
    assert_eq!(r.reason.kind(), "implausible_value");
    assert_contains(&r.reason, &["inf mm[Hg]", "sent as"]);
}

// ---------------------------------------------------------------- units

#[test]
fn an_omitted_unit_means_the_canonical_one() {
    let r = single(r#"{"code": "glucose", "value": 99}"#);
    assert_eq!(unit(&r), "mg/dL");
    assert!(!r.quality.contains(QualityFlags::CONVERTED_UNIT));
}

#[test]
fn fahrenheit_becomes_celsius() {
    let r = single(r#"{"code": "temperature", "value": 98.6, "unit": "[degF]"}"#);
    assert!(close(value(&r), 37.0), "{}", value(&r));
    assert_eq!(unit(&r), "Cel");
    assert!(r.quality.contains(QualityFlags::CONVERTED_UNIT));
    // 50 °F is exactly 10 °C, the plausible minimum.
    let r = single(r#"{"code": "temperature", "value": 50, "unit": "[degF]"}"#);
    assert_eq!(value(&r), 10.0);
}

#[test]
fn kilopascal_becomes_millimetres_of_mercury() {
    let msg = ok(r#"{"obs": [{"code": "systolic_bp", "value": 16, "unit": "kPa"}]}"#);
    let ObservationValue::Components(parts) = &msg.readings[0].value else {
        panic!()
    };
    assert!(close(parts[0].value.value, 120.009_852_135_305));
    assert_eq!(parts[0].value.unit, "mm[Hg]");
    assert!(
        msg.readings[0]
            .quality
            .contains(QualityFlags::CONVERTED_UNIT)
    );
}

#[test]
fn glucose_in_mmol_per_litre_becomes_mg_per_decilitre() {
    let r = single(r#"{"code": "15074-8", "value": 5.5, "unit": "mmol/L"}"#);
    assert_eq!(r.code, ObservationCode::Single(Measurand::Glucose));
    assert!(close(value(&r), 99.0858), "{}", value(&r));
    assert_eq!(unit(&r), "mg/dL");
    assert!(r.quality.contains(QualityFlags::CONVERTED_UNIT));
}

#[test]
fn pounds_become_kilograms_exactly() {
    let r = single(r#"{"code": "weight", "value": 154, "unit": "[lb_av]"}"#);
    assert!(close(value(&r), 69.853_224_98), "{}", value(&r));
    assert_eq!(unit(&r), "kg");
    assert!(r.quality.contains(QualityFlags::CONVERTED_UNIT));
}

#[test]
fn a_synonym_of_the_canonical_unit_is_not_flagged_as_converted() {
    let r = single(r#"{"code": "heart_rate", "value": 72, "unit": "{beats}/min"}"#);
    assert_eq!(value(&r), 72.0);
    assert!(!r.quality.contains(QualityFlags::CONVERTED_UNIT));
}

#[test]
fn a_unit_that_does_not_fit_refuses_the_reading() {
    let r = refused(r#"{"code": "heart_rate", "value": 72, "unit": "mm[Hg]"}"#);
    assert_eq!(r.reason.kind(), "unit_mismatch");
    let expected = units::to_canonical(Measurand::HeartRate, 72.0, "mm[Hg]").unwrap_err();
    assert_eq!(r.reason, RejectReason::UnitMismatch(expected.clone()));
    assert_eq!(r.reason.to_string(), expected.to_string());
    assert_eq!(
        r.reason.to_string(),
        "unit \"mm[Hg]\" does not fit heart_rate; expected /min, {beats}/min, {beat}/min, 1/min"
    );
    assert_eq!(
        refused(r#"{"code": "temperature", "value": 37, "unit": "cel"}"#)
            .reason
            .kind(),
        "unit_mismatch",
        "UCUM is case-sensitive"
    );
    assert_eq!(
        refused(r#"{"code": "spo2", "value": 97, "unit": ""}"#)
            .reason
            .kind(),
        "unit_mismatch"
    );
    let r = refused(r#"{"code": "spo2", "value": 97, "unit": 1}"#);
    assert_eq!(
        r.reason.to_string(),
        "unit must be a UCUM unit string, but an integer was sent"
    );
}

// ---------------------------------------------------------------- status and quality

#[test]
fn status_defaults_to_final_and_accepts_every_fhir_status() {
    assert_eq!(
        single(r#"{"code": "spo2", "value": 97}"#).status,
        ObservationStatus::Final
    );
    for status in ObservationStatus::ALL {
        let r = single(&format!(
            r#"{{"code": "spo2", "value": 97, "status": "{}"}}"#,
            status.as_str()
        ));
        assert_eq!(r.status, status);
    }
}

#[test]
fn an_unknown_status_refuses_the_reading() {
    let r = refused(r#"{"code": "spo2", "value": 97, "status": "Final"}"#);
    assert_eq!(
        r.reason,
        RejectReason::UnknownStatus {
            status: "Final".into()
        }
    );
    assert_eq!(r.reason.kind(), "unknown_status");
    assert_contains(
        &r.reason,
        &[
            "unknown status \"Final\"",
            "entered-in-error",
            "FHIR ObservationStatus",
        ],
    );
    let r = refused(r#"{"code": "spo2", "value": 97, "status": 1}"#);
    assert_eq!(
        r.reason.to_string(),
        "status must be a string, but an integer was sent"
    );
}

#[test]
fn quality_flags_are_read_by_name() {
    let r = single(
        r#"{"code": "spo2", "value": 88, "quality": ["questionable", "artifact"], "ts": 1795256100250}"#,
    );
    assert_eq!(
        r.quality,
        QualityFlags::QUESTIONABLE | QualityFlags::ARTIFACT
    );
    let r = single(r#"{"code": "spo2", "value": 88, "quality": [], "ts": 0}"#);
    assert!(r.quality.is_empty());
}

#[test]
fn an_unknown_quality_flag_refuses_the_reading() {
    let r = refused(r#"{"code": "spo2", "value": 88, "quality": ["questionable", "shiny"]}"#);
    assert_eq!(
        r.reason,
        RejectReason::UnknownQualityFlag {
            flag: "shiny".into()
        }
    );
    assert_eq!(r.reason.kind(), "unknown_quality_flag");
    assert_contains(
        &r.reason,
        &["unknown quality flag \"shiny\"", "questionable, artifact"],
    );
    for quality in [r#""artifact""#, r#"[1]"#, r#"{"artifact": true}"#] {
        let r = refused(&format!(
            r#"{{"code": "spo2", "value": 88, "quality": {quality}}}"#
        ));
        assert_eq!(r.reason.kind(), "wrong_type", "{quality}");
        assert_contains(
            &r.reason,
            &["quality must be an array of flag names (strings)"],
        );
    }
}

// ---------------------------------------------------------------- times

#[test]
fn epoch_milliseconds_and_rfc3339_give_the_same_instant() {
    let by_text = single(r#"{"code": "spo2", "value": 97, "ts": "2026-11-21T10:15:00.250Z"}"#);
    let by_epoch = single(r#"{"code": "spo2", "value": 97, "ts": 1795256100250}"#);
    let by_offset =
        single(r#"{"code": "spo2", "value": 97, "ts": "2026-11-21T11:45:00.250+01:30"}"#);
    assert_eq!(by_text.effective, at(10, 15, 0, 250));
    assert_eq!(by_epoch.effective, by_text.effective);
    assert_eq!(by_offset.effective, by_text.effective);
    assert!(!by_epoch.quality.contains(QualityFlags::TIME_FROM_RECEIPT));
}

#[test]
fn sub_millisecond_precision_is_kept() {
    let r = single(r#"{"code": "spo2", "value": 97, "ts": "2026-11-21T10:15:00.123456789Z"}"#);
    assert_eq!(r.effective.timestamp_subsec_nanos(), 123_456_789);
}

#[test]
fn the_epoch_itself_and_the_last_rfc3339_instant_are_valid_times() {
    let r = single(r#"{"code": "spo2", "value": 97, "ts": 0}"#);
    assert_eq!(r.effective, DateTime::UNIX_EPOCH);
    let r = single(r#"{"code": "spo2", "value": 97, "ts": "1970-01-01T00:00:00Z"}"#);
    assert_eq!(r.effective, DateTime::UNIX_EPOCH);
    // Far in the future, so only accepted with a generous skew.
    let limits = DecodeLimits {
        max_future_skew: Duration::days(3_000_000),
        ..DecodeLimits::default()
    };
    let msg = decode_device_message(
        br#"{"obs": [{"code": "spo2", "value": 97, "ts": 253402300799999}]}"#,
        received(),
        &limits,
    )
    .unwrap();
    assert_eq!(msg.readings[0].effective.timestamp_millis(), MAX_EPOCH_MS);
}

#[test]
fn a_reading_ts_overrides_the_message_ts() {
    let msg = ok(r#"{"ts": "2026-11-21T10:00:00Z", "obs": [
        {"code": "heart_rate", "value": 72, "ts": "2026-11-21T10:05:00Z"},
        {"code": "spo2", "value": 97}]}"#);
    assert_eq!(msg.readings[0].effective, at(10, 5, 0, 0));
    assert_eq!(msg.readings[1].effective, at(10, 0, 0, 0));
    assert!(msg.readings.iter().all(|r| r.quality.is_empty()));
}

#[test]
fn without_any_ts_the_time_of_receipt_is_used_and_flagged() {
    let r = single(r#"{"code": "heart_rate", "value": 72}"#);
    assert_eq!(r.effective, received());
    assert_eq!(r.quality, QualityFlags::TIME_FROM_RECEIPT);
}

#[test]
fn a_bad_reading_ts_refuses_that_reading() {
    let cases = [
        (
            r#""10:15""#,
            "ts is not a valid time: \"10:15\" is not an RFC 3339 date-time such as 2026-11-21T10:15:00.250Z (premature end of input)",
        ),
        (
            r#""2026-11-21T10:15:00""#,
            "ts is not a valid time: \"2026-11-21T10:15:00\" is not an RFC 3339 date-time such as 2026-11-21T10:15:00.250Z (premature end of input)",
        ),
        (
            r#""2026-11-21T10:15:00Zulu""#,
            "ts is not a valid time: \"2026-11-21T10:15:00Zulu\" is not an RFC 3339 date-time such as 2026-11-21T10:15:00.250Z (trailing input)",
        ),
        (
            r#""2026/11/21T10:15:00Z""#,
            "ts is not a valid time: \"2026/11/21T10:15:00Z\" is not an RFC 3339 date-time such as 2026-11-21T10:15:00.250Z (input contains invalid characters)",
        ),
        (
            "-1795256100250",
            "ts is not a valid time: epoch milliseconds -1795256100250 is negative, before 1970-01-01T00:00:00Z",
        ),
        (
            r#""1969-07-20T20:17:40Z""#,
            "ts is not a valid time: 1969-07-20T20:17:40Z is before 1970-01-01T00:00:00Z",
        ),
        (
            "1.5",
            "ts is not a valid time: epoch milliseconds must be an integer, but 1.5 was sent",
        ),
        (
            "1e3",
            "ts is not a valid time: epoch milliseconds must be an integer, but 1000 was sent",
        ),
        (
            "99999999999999999",
            "ts is not a valid time: epoch milliseconds 99999999999999999 is after 9999-12-31T23:59:59.999Z",
        ),
        (
            "false",
            "ts is not a valid time: expected an RFC 3339 date-time string or integer epoch milliseconds, but a boolean was sent",
        ),
    ];
    for (ts, expected) in cases {
        let r = refused(&format!(
            r#"{{"code": "heart_rate", "value": 72, "ts": {ts}}}"#
        ));
        assert_eq!(r.reason.kind(), "bad_timestamp", "{ts}");
        assert_eq!(r.reason.to_string(), expected, "{ts}");
    }
}

#[test]
fn a_reading_exactly_max_future_skew_ahead_is_accepted_and_one_millisecond_more_is_not() {
    // received() is 10:15:30; the default skew is 5 minutes.
    let r = single(r#"{"code": "heart_rate", "value": 72, "ts": "2026-11-21T10:20:30Z"}"#);
    assert_eq!(r.effective, at(10, 20, 30, 0));
    let r = refused(r#"{"code": "heart_rate", "value": 72, "ts": "2026-11-21T10:20:30.001Z"}"#);
    assert_eq!(
        r.reason,
        RejectReason::FutureTimestamp {
            field: "ts",
            time: at(10, 20, 30, 1),
            received: received(),
            max_skew: Duration::minutes(5)
        }
    );
    assert_eq!(r.reason.kind(), "future_timestamp");
    assert_eq!(
        r.reason.to_string(),
        "ts 2026-11-21T10:20:30.001Z is 300.001 s after the time of receipt 2026-11-21T10:15:30Z; \
         at most 300 s ahead is accepted"
    );
    // Times in the past are fine however old.
    single(r#"{"code": "heart_rate", "value": 72, "ts": "2001-01-01T00:00:00Z"}"#);
}

#[test]
fn the_future_skew_is_configurable() {
    let limits = DecodeLimits {
        max_future_skew: Duration::zero(),
        ..DecodeLimits::default()
    };
    let decode = |ts: &str| {
        decode_device_message(
            format!(r#"{{"obs": [{{"code": "spo2", "value": 97, "ts": "{ts}"}}]}}"#).as_bytes(),
            received(),
            &limits,
        )
        .unwrap()
    };
    assert_eq!(decode("2026-11-21T10:15:30Z").readings.len(), 1);
    assert_eq!(decode("2026-11-21T10:15:30.000000001Z").rejected.len(), 1);
}

// ---------------------------------------------------------------- duplicates

#[test]
fn the_same_measurand_at_the_same_time_twice_keeps_the_first() {
    let msg = ok(r#"{"ts": "2026-11-21T10:15:00Z", "obs": [
        {"code": "heart_rate", "value": 72},
        {"code": "spo2", "value": 97},
        {"code": "8867-4", "value": 75}]}"#);
    assert_eq!(msg.readings.len(), 2);
    assert_eq!(value(&msg.readings[0]), 72.0);
    let r = &msg.rejected[0];
    assert_eq!(r.pointer, "/obs/2");
    assert_eq!(r.code.as_deref(), Some("8867-4"));
    assert_eq!(
        r.reason,
        RejectReason::Duplicate {
            measurand: Measurand::HeartRate,
            effective: at(10, 15, 0, 0),
            first_index: 0
        }
    );
    assert_eq!(r.reason.kind(), "duplicate");
    assert_eq!(
        r.reason.to_string(),
        "heart_rate at 2026-11-21T10:15:00Z already appears in this message at /obs/0; only the first is kept"
    );
}

#[test]
fn duplicates_are_judged_by_effective_time() {
    // Different text, same instant: a duplicate.
    let msg = ok(r#"{"obs": [
        {"code": "heart_rate", "value": 72, "ts": "2026-11-21T10:15:00Z"},
        {"code": "heart_rate", "value": 73, "ts": 1795256100000}]}"#);
    assert_eq!(msg.rejected[0].reason.kind(), "duplicate");
    // Different instants: two readings.
    let msg = ok(r#"{"obs": [
        {"code": "heart_rate", "value": 72, "ts": "2026-11-21T10:15:00Z"},
        {"code": "heart_rate", "value": 73, "ts": "2026-11-21T10:15:00.001Z"}]}"#);
    assert_eq!(msg.readings.len(), 2);
    // Two readings that both fall back to the time of receipt collide too.
    let msg = ok(r#"{"obs": [{"code": "spo2", "value": 97}, {"code": "spo2", "value": 96}]}"#);
    assert_eq!(msg.rejected[0].reason.kind(), "duplicate");
}

#[test]
fn a_reading_repeating_a_refused_one_is_not_a_duplicate() {
    let msg = ok(r#"{"ts": 1795256100000, "obs": [
        {"code": "heart_rate", "value": 900},
        {"code": "heart_rate", "value": 72}]}"#);
    assert_eq!(msg.readings.len(), 1);
    assert_eq!(value(&msg.readings[0]), 72.0);
    assert_eq!(msg.rejected[0].reason.kind(), "implausible_value");
}

#[test]
fn a_duplicate_names_the_index_of_the_first_in_obs() {
    let msg = ok(
        r#"{"ts": 0, "obs": [{"code": "x"}, {"code": "spo2", "value": 97}, {"code": "spo2", "value": 97}]}"#,
    );
    assert_contains(&msg.rejected[1], &["/obs/2: ", "at /obs/1;"]);
}

// ---------------------------------------------------------------- item structure

#[test]
fn an_unknown_field_in_a_reading_refuses_it_and_names_the_field() {
    let r = refused(r#"{"code": "heart_rate", "vlaue": 72}"#);
    assert_eq!(r.code.as_deref(), Some("heart_rate"));
    assert_eq!(r.reason.kind(), "unknown_field");
    assert_eq!(
        r.reason.to_string(),
        "unknown field \"vlaue\" (did you mean \"value\"?); the accepted fields are code, value, \
         unit, ts, status, quality"
    );
    let r = refused(r#"{"code": "heart_rate", "value": 72, "patient": "p1"}"#);
    assert_eq!(
        r.reason.to_string(),
        "unknown field \"patient\"; the accepted fields are code, value, unit, ts, status, quality"
    );
    let r = refused(r#"{"code": "heart_rate", "Value": 72}"#);
    assert_contains(&r.reason, &["(did you mean \"value\"?)"]);
}

#[test]
fn a_repeated_field_in_a_reading_refuses_it() {
    let r = refused(r#"{"code": "heart_rate", "value": 72, "value": 80}"#);
    assert_eq!(r.reason, RejectReason::DuplicateField { field: "value" });
    assert_eq!(r.reason.kind(), "duplicate_field");
    assert_eq!(
        r.reason.to_string(),
        "field \"value\" appears more than once"
    );
}

#[test]
fn a_reading_that_is_not_an_object_is_refused() {
    let msg = ok(r#"{"obs": [72, "heart_rate", null, [], {"code": "spo2", "value": 97}]}"#);
    assert_eq!(msg.readings.len(), 1);
    let found: Vec<_> = msg
        .rejected
        .iter()
        .map(|r| match &r.reason {
            RejectReason::NotAnObject { found } => (r.pointer.as_str(), *found),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        found,
        [
            ("/obs/0", "an integer"),
            ("/obs/1", "a string"),
            ("/obs/2", "null"),
            ("/obs/3", "an array")
        ]
    );
    assert_eq!(msg.rejected[0].reason.kind(), "not_an_object");
    assert_eq!(
        msg.rejected[0].to_string(),
        "/obs/0: an item must be a JSON object, but an integer was sent"
    );
}

#[test]
fn escaped_member_names_and_codes_are_understood() {
    let r = single(r#"{"c\u006fde": "heart\u005frate", "value": 72}"#);
    assert_eq!(r.code, ObservationCode::Single(Measurand::HeartRate));
}

// ---------------------------------------------------------------- waveforms

#[test]
fn a_waveform_by_rate_gets_its_period_and_defaults() {
    let w = segment(r#"{"code": "MDC_PULS_OXIM_PLETH", "rate_hz": 250, "samples": [-5, 0, 5]}"#);
    assert_eq!(w.code, WaveformCode::Pleth);
    assert_eq!(w.period_ms, 4.0);
    assert_eq!(w.factor, 1.0);
    assert_eq!(w.origin, 0.0);
    assert_eq!(
        w.start,
        at(10, 15, 0, 0),
        "start defaults to the message ts"
    );
    assert_eq!(w.samples, [-5, 0, 5]);
}

#[test]
fn a_waveform_start_defaults_to_the_time_of_receipt() {
    let msg = ok(r#"{"waveform": [{"code": "151780", "period_ms": 40, "samples": [1]}]}"#);
    assert_eq!(msg.waveforms[0].code, WaveformCode::Respiration);
    assert_eq!(msg.waveforms[0].start, received());
}

#[test]
fn a_waveform_start_overrides_the_message_ts() {
    let w = segment(
        r#"{"code": "ecg_lead_i", "start": 1795256100250, "period_ms": 2, "factor": -0.5, "origin": 1.5, "samples": [7]}"#,
    );
    assert_eq!(w.start, at(10, 15, 0, 250));
    assert_eq!((w.factor, w.origin), (-0.5, 1.5));
}

#[test]
fn waveform_timing_bounds_are_inclusive() {
    for (timing, period) in [
        (r#""period_ms": 0.1"#, 0.1),
        (r#""period_ms": 1000"#, 1000.0),
        (r#""rate_hz": 10000"#, 0.1),
        (r#""rate_hz": 1"#, 1000.0),
    ] {
        let w = segment(&format!(r#"{{"code": "pleth", {timing}, "samples": [1]}}"#));
        assert_eq!(w.period_ms, period, "{timing}");
    }
    for (timing, expected) in [
        (
            r#""period_ms": 0"#,
            "period_ms 0 is outside the accepted range 0.1 to 1000 ms",
        ),
        (
            r#""period_ms": -4"#,
            "period_ms -4 is outside the accepted range 0.1 to 1000 ms",
        ),
        (
            r#""period_ms": 0.09"#,
            "period_ms 0.09 is outside the accepted range 0.1 to 1000 ms",
        ),
        (
            r#""period_ms": 1000.5"#,
            "period_ms 1000.5 is outside the accepted range 0.1 to 1000 ms",
        ),
        (
            r#""rate_hz": 10001"#,
            "rate_hz 10001 is outside the accepted range 1 to 10000 Hz",
        ),
        (
            r#""rate_hz": 0"#,
            "rate_hz 0 is outside the accepted range 1 to 10000 Hz",
        ),
        (
            r#""rate_hz": 0.5"#,
            "rate_hz 0.5 is outside the accepted range 1 to 10000 Hz",
        ),
        (
            r#""rate_hz": -250"#,
            "rate_hz -250 is outside the accepted range 1 to 10000 Hz",
        ),
        (
            r#""period_ms": 4, "rate_hz": 250"#,
            "both period_ms and rate_hz are given; send exactly one of them",
        ),
        (
            r#""period_ms": null, "rate_hz": null"#,
            "neither period_ms nor rate_hz is given; exactly one of them is required",
        ),
        (
            r#""period_ms": "4""#,
            "period_ms must be a number of milliseconds, but a string was sent",
        ),
        (
            r#""rate_hz": true"#,
            "rate_hz must be a number of samples per second, but a boolean was sent",
        ),
    ] {
        let r = segment_refused(&format!(r#"{{"code": "pleth", {timing}, "samples": [1]}}"#));
        assert_eq!(r.reason.to_string(), expected, "{timing}");
        assert_eq!(r.code.as_deref(), Some("pleth"));
    }
    let r = segment_refused(r#"{"code": "pleth", "samples": [1]}"#);
    assert_eq!(
        r.reason,
        RejectReason::BadWaveform(WaveformProblem::NoSampleTiming)
    );
    assert_eq!(r.reason.kind(), "bad_waveform");
}

#[test]
fn a_waveform_factor_must_not_be_zero() {
    for factor in ["0", "0.0", "-0"] {
        let r = segment_refused(&format!(
            r#"{{"code": "pleth", "period_ms": 4, "factor": {factor}, "samples": [1]}}"#
        ));
        assert_eq!(
            r.reason,
            RejectReason::BadWaveform(WaveformProblem::ZeroFactor)
        );
        assert_eq!(r.reason.to_string(), "factor must not be zero");
    }
    let r = segment_refused(r#"{"code": "pleth", "period_ms": 4, "origin": "0", "samples": [1]}"#);
    assert_eq!(
        r.reason.to_string(),
        "origin must be a number, but a string was sent"
    );
}

#[test]
fn an_unknown_waveform_code_refuses_the_segment() {
    let r = segment_refused(r#"{"code": "ecg", "period_ms": 4, "samples": [1]}"#);
    assert_eq!(r.code.as_deref(), Some("ecg"));
    assert_eq!(r.reason.kind(), "bad_waveform");
    assert_contains(&r.reason, &["unknown waveform code \"ecg\"", "ecg_lead_ii"]);
    let r = segment_refused(r#"{"period_ms": 4, "samples": [1]}"#);
    assert_eq!(r.reason, RejectReason::MissingField { field: "code" });
    // A measurand is not a waveform.
    let r = segment_refused(r#"{"code": "heart_rate", "period_ms": 4, "samples": [1]}"#);
    assert_eq!(r.reason.kind(), "bad_waveform");
}

#[test]
fn waveform_sample_counts_are_bounded() {
    let w = segment(&format!(
        r#"{{"code": "ecg_lead_ii", "period_ms": 2, "samples": [{}]}}"#,
        vec!["1"; MAX_SAMPLES_PER_SEGMENT].join(",")
    ));
    assert_eq!(w.samples.len(), MAX_SAMPLES_PER_SEGMENT);
    let r = segment_refused(&format!(
        r#"{{"code": "ecg_lead_ii", "period_ms": 2, "samples": [{}]}}"#,
        vec!["1"; MAX_SAMPLES_PER_SEGMENT + 1].join(",")
    ));
    assert_eq!(
        r.reason,
        RejectReason::BadWaveform(WaveformProblem::TooManySamples {
            count: 30_001,
            max: 30_000
        })
    );
    assert_eq!(
        r.reason.to_string(),
        "samples has 30001 values, more than the 30000 one segment may carry"
    );
    let r = segment_refused(r#"{"code": "pleth", "period_ms": 4, "samples": []}"#);
    assert_eq!(
        r.reason.to_string(),
        "samples is empty; a segment needs at least one sample"
    );
    let r = segment_refused(r#"{"code": "pleth", "period_ms": 4}"#);
    assert_eq!(
        r.reason.to_string(),
        "required field \"samples\" is missing"
    );
    let r = segment_refused(r#"{"code": "pleth", "period_ms": 4, "samples": "AAEC"}"#);
    assert_eq!(
        r.reason.to_string(),
        "samples must be an array of integers, but a string was sent"
    );
}

#[test]
fn waveform_samples_must_be_32_bit_integers() {
    let w = segment(r#"{"code": "pleth", "period_ms": 4, "samples": [-2147483648, 2147483647]}"#);
    assert_eq!(w.samples, [i32::MIN, i32::MAX]);
    for (samples, expected) in [
        (
            "[1, 2147483648]",
            "samples[1] is 2147483648, which does not fit a 32-bit signed integer",
        ),
        (
            "[-2147483649]",
            "samples[0] is -2147483649, which does not fit a 32-bit signed integer",
        ),
        (
            "[1, 2, 3.5]",
            "samples[2] must be an integer, but a number with a fraction or exponent was sent",
        ),
        (
            "[1.0]",
            "samples[0] must be an integer, but a number with a fraction or exponent was sent",
        ),
        ("[null]", "samples[0] must be an integer, but null was sent"),
        (
            r#"[1, "2"]"#,
            "samples[1] must be an integer, but a string was sent",
        ),
    ] {
        let r = segment_refused(&format!(
            r#"{{"code": "pleth", "period_ms": 4, "samples": {samples}}}"#
        ));
        assert_eq!(r.reason.kind(), "bad_waveform", "{samples}");
        assert_eq!(r.reason.to_string(), expected, "{samples}");
    }
}

#[test]
fn a_waveform_with_a_bad_or_future_start_is_refused() {
    let r = segment_refused(r#"{"code": "pleth", "period_ms": 4, "start": "now", "samples": [1]}"#);
    assert_eq!(r.reason.kind(), "bad_timestamp");
    assert_contains(&r.reason, &["start is not a valid time: \"now\""]);
    let r = segment_refused(
        r#"{"code": "pleth", "period_ms": 4, "start": "2026-11-21T10:30:00Z", "samples": [1]}"#,
    );
    assert_eq!(r.reason.kind(), "future_timestamp");
    assert_contains(&r.reason, &["start 2026-11-21T10:30:00Z is 870 s after"]);
}

#[test]
fn an_unknown_or_repeated_field_in_a_waveform_refuses_it() {
    let r = segment_refused(r#"{"code": "pleth", "period_ms": 4, "sample": [1]}"#);
    assert_eq!(
        r.reason.to_string(),
        "unknown field \"sample\" (did you mean \"samples\"?); the accepted fields are code, \
         start, period_ms, rate_hz, factor, origin, samples"
    );
    let r =
        segment_refused(r#"{"code": "pleth", "period_ms": 4, "samples": [1], "code": "pleth"}"#);
    assert_eq!(r.reason, RejectReason::DuplicateField { field: "code" });
    let r = segment_refused("[1, 2, 3]");
    assert_eq!(r.reason.kind(), "not_an_object");
}

#[test]
fn one_bad_segment_does_not_spoil_the_others_or_the_readings() {
    let msg = ok(r#"{"obs": [{"code": "spo2", "value": 97}], "waveform": [
        {"code": "pleth", "period_ms": 4, "samples": [1]},
        {"code": "pleth", "period_ms": 4, "samples": []},
        {"code": "ecg_lead_i", "period_ms": 4, "samples": [2]}]}"#);
    assert_eq!(msg.readings.len(), 1);
    assert_eq!(msg.waveforms.len(), 2);
    assert_eq!(msg.rejected.len(), 1);
    assert_eq!(msg.rejected[0].pointer, "/waveform/1");
}

// ---------------------------------------------------------------- battery

#[test]
fn battery_from_0_to_100_is_read() {
    for pct in [0u8, 1, 87, 100] {
        let msg = ok(&format!(
            r#"{{"battery": {pct}, "obs": [{{"code": "spo2", "value": 97}}]}}"#
        ));
        assert_eq!(msg.battery_pct, Some(pct));
        assert!(msg.rejected.is_empty());
    }
}

#[test]
fn signal_strength_from_minus_150_to_0_dbm_is_read_and_a_bad_one_ignored() {
    for dbm in [-150i16, -67, 0] {
        let msg = ok(&format!(
            r#"{{"signal": {dbm}, "obs": [{{"code": "spo2", "value": 97}}]}}"#
        ));
        assert_eq!(msg.signal_dbm, Some(dbm));
        assert!(msg.rejected.is_empty());
    }
    for (signal, kind) in [
        ("-151", "signal_out_of_range"),
        ("1", "signal_out_of_range"),
        ("-67.5", "wrong_type"),
        (r#""-67""#, "wrong_type"),
    ] {
        let msg = ok(&format!(
            r#"{{"signal": {signal}, "obs": [{{"code": "spo2", "value": 97}}]}}"#
        ));
        assert_eq!(msg.readings.len(), 1, "{signal}");
        assert_eq!(msg.signal_dbm, None, "{signal}");
        assert_eq!(msg.rejected[0].pointer, "/signal");
        assert_eq!(msg.rejected[0].reason.kind(), kind, "{signal}");
    }
}

#[test]
fn a_bad_battery_is_ignored_and_reported_without_refusing_the_message() {
    for (battery, kind, text) in [
        (
            "101",
            "battery_out_of_range",
            "battery 101 is outside 0 to 100 %; it is ignored",
        ),
        (
            "-1",
            "battery_out_of_range",
            "battery -1 is outside 0 to 100 %; it is ignored",
        ),
        (
            "18446744073709551615",
            "battery_out_of_range",
            "battery 18446744073709551615 is outside 0 to 100 %; it is ignored",
        ),
        (
            "87.5",
            "wrong_type",
            "battery must be an integer from 0 to 100, but a number with a fraction or exponent was sent",
        ),
        (
            r#""87""#,
            "wrong_type",
            "battery must be an integer from 0 to 100, but a string was sent",
        ),
    ] {
        let msg = ok(&format!(
            r#"{{"battery": {battery}, "obs": [{{"code": "spo2", "value": 97}}]}}"#
        ));
        assert_eq!(msg.readings.len(), 1, "{battery}");
        assert_eq!(msg.battery_pct, None, "{battery}");
        let r = &msg.rejected[0];
        assert_eq!((r.pointer.as_str(), r.code.as_deref()), ("/battery", None));
        assert_eq!(r.reason.kind(), kind, "{battery}");
        assert_eq!(r.reason.to_string(), text, "{battery}");
    }
}

// ---------------------------------------------------------------- labels

#[test]
fn every_reject_reason_kind_is_a_stable_label() {
    let t = at(10, 0, 0, 0);
    let kinds = [
        (RejectReason::NotAnObject { found: "" }, "not_an_object"),
        (
            RejectReason::UnknownField {
                field: String::new(),
                suggestion: None,
                allowed: &READING_FIELDS,
            },
            "unknown_field",
        ),
        (
            RejectReason::DuplicateField { field: "" },
            "duplicate_field",
        ),
        (RejectReason::MissingField { field: "" }, "missing_field"),
        (
            RejectReason::WrongType {
                field: "",
                expected: "",
                found: "",
            },
            "wrong_type",
        ),
        (
            RejectReason::UnknownCode {
                code: String::new(),
            },
            "unknown_code",
        ),
        (
            RejectReason::MissingValue { sent_null: true },
            "missing_value",
        ),
        (
            RejectReason::UnitMismatch(
                units::to_canonical(Measurand::Spo2, 1.0, "kg").unwrap_err(),
            ),
            "unit_mismatch",
        ),
        (
            RejectReason::ImplausibleValue {
                measurand: Measurand::Spo2,
                value: 101.0,
                sent: None,
            },
            "implausible_value",
        ),
        (
            RejectReason::UnknownStatus {
                status: String::new(),
            },
            "unknown_status",
        ),
        (
            RejectReason::UnknownQualityFlag {
                flag: String::new(),
            },
            "unknown_quality_flag",
        ),
        (
            RejectReason::BadTimestamp {
                field: "ts",
                error: TimestampError::NegativeEpoch { ms: -1 },
            },
            "bad_timestamp",
        ),
        (
            RejectReason::FutureTimestamp {
                field: "ts",
                time: t,
                received: t,
                max_skew: Duration::zero(),
            },
            "future_timestamp",
        ),
        (
            RejectReason::Duplicate {
                measurand: Measurand::Spo2,
                effective: t,
                first_index: 0,
            },
            "duplicate",
        ),
        (
            RejectReason::BadWaveform(WaveformProblem::ZeroFactor),
            "bad_waveform",
        ),
        (
            RejectReason::BatteryOutOfRange { value: 101 },
            "battery_out_of_range",
        ),
    ];
    for (reason, kind) in kinds {
        assert_eq!(reason.kind(), kind);
        assert!(!reason.to_string().is_empty());
    }
}

#[test]
fn the_field_lists_match_the_suggestions() {
    assert_eq!(suggest("valeu", &READING_FIELDS), Some("value"));
    assert_eq!(suggest("unt", &READING_FIELDS), Some("unit"));
    assert_eq!(suggest("period", &WAVEFORM_FIELDS), None);
    assert_eq!(suggest("rate", &WAVEFORM_FIELDS), None);
    assert_eq!(suggest("x", &READING_FIELDS), None, "too short to guess");
    assert_eq!(suggest("", &READING_FIELDS), None);
    assert_eq!(suggest(&"v".repeat(100), &READING_FIELDS), None);
    assert_eq!(edit_distance(b"kitten", b"sitting"), 3);
    assert_eq!(edit_distance(b"", b"abc"), 3);
}

// ---------------------------------------------------------------- robustness

/// A small deterministic generator (xorshift64*), so the test needs no dependency and every run
/// explores the same inputs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const SEEDS: [&str; 5] = [
    CONTRACT_EXAMPLE,
    r#"{"obs": [{"code": "temperature", "value": 98.6, "unit": "[degF]", "ts": 1795256100250, "status": "preliminary", "quality": ["questionable"]}]}"#,
    r#"{"waveform": [{"code": "pleth", "rate_hz": 125, "factor": 1e-3, "origin": -1, "samples": [-2147483648, 0, 2147483647]}], "battery": 100}"#,
    r#"{"ts": "2026-11-21T10:15:00+14:00", "obs": [{"code": "systolic_bp", "value": 16, "unit": "kPa"}, {"code": "diastolic_bp", "value": 80}]}"#,
    r#"{"obs": [{"code": "glucose", "value": 5.5, "unit": "mmol/L", "ts": "1970-01-01T00:00:00Z"}]}"#,
];

/// Tokens that steer mutations towards interesting JSON rather than mere garbage.
const TOKENS: [&str; 20] = [
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"",
    "null",
    "true",
    "-",
    "0",
    "1e308",
    "-1",
    "2147483648",
    "18446744073709551616",
    "\"ts\"",
    "\"value\"",
    "\\u0000",
    "é",
    "\u{10ffff}",
];

fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(out.len() + 1);
        match rng.below(5) {
            0 if !out.is_empty() => {
                let at = at.min(out.len() - 1);
                out[at] = rng.next() as u8;
            }
            1 if at < out.len() => {
                let end = (at + rng.below(8)).min(out.len());
                out.drain(at..end);
            }
            2 => {
                let token = TOKENS[rng.below(TOKENS.len())].as_bytes();
                out.splice(at..at, token.iter().copied());
            }
            3 if at < out.len() => {
                // Duplicate a slice, e.g. a whole member or array item.
                let end = (at + rng.below(40)).min(out.len());
                let copy = out[at..end].to_vec();
                out.splice(at..at, copy);
            }
            _ => out.insert(at, rng.next() as u8),
        }
    }
    out
}

/// What every successful decode must satisfy whatever the input.
fn check_invariants(msg: &DecodedMessage, limits: &DecodeLimits) {
    for r in &msg.readings {
        let values: Vec<(Measurand, f64, &str)> = match (&r.code, &r.value) {
            (ObservationCode::Single(m), ObservationValue::Quantity(q)) => {
                vec![(*m, q.value, &q.unit)]
            }
            (ObservationCode::BloodPressure, ObservationValue::Components(c)) => c
                .iter()
                .map(|c| (c.measurand, c.value.value, c.value.unit.as_str()))
                .collect(),
            other => panic!("code and value disagree: {other:?}"),
        };
        for (m, v, unit) in values {
            let range = m.plausible();
            assert!(v >= range.min && v <= range.max, "{m:?} {v}");
            assert_eq!(unit, m.canonical_unit());
        }
        assert!(r.effective >= DateTime::UNIX_EPOCH);
        assert!(r.effective.signed_duration_since(received()) <= limits.max_future_skew);
    }
    for w in &msg.waveforms {
        assert!((1..=MAX_SAMPLES_PER_SEGMENT).contains(&w.samples.len()));
        assert!(w.period_ms >= MIN_PERIOD_MS && w.period_ms <= MAX_PERIOD_MS);
        assert!(w.factor != 0.0 && w.factor.is_finite() && w.origin.is_finite());
        let _ = w.end();
    }
    assert!(msg.battery_pct.is_none_or(|b| b <= 100));
    for r in &msg.rejected {
        assert!(r.pointer.starts_with('/'));
        assert!(
            r.code
                .as_ref()
                .is_none_or(|c| c.len() <= MAX_ECHO_BYTES + '…'.len_utf8())
        );
        assert!(!r.reason.kind().is_empty());
        let _ = r.to_string();
    }
}

#[test]
fn mutated_and_random_inputs_never_panic() {
    let limits = DecodeLimits::default();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut accepted = 0;
    for i in 0..50_000 {
        let input = if i % 10 == 0 {
            (0..rng.below(64)).map(|_| rng.next() as u8).collect()
        } else {
            let seed = SEEDS[rng.below(SEEDS.len())].as_bytes();
            mutate(&mut rng, seed)
        };
        match decode_device_message(&input, received(), &limits) {
            Ok(msg) => {
                accepted += 1;
                check_invariants(&msg, &limits);
            }
            Err(e) => {
                assert!(!e.kind().is_empty());
                let _ = e.to_string();
            }
        }
    }
    assert!(
        accepted > 1000,
        "mutations should often stay valid JSON ({accepted})"
    );
}

#[test]
fn extreme_inputs_are_refused_cleanly() {
    let limits = DecodeLimits::default();
    // Nesting far beyond the parser's recursion limit.
    let deep = format!(
        r#"{{"obs": [{{"code": "spo2", "value": {}}}]}}"#,
        "[".repeat(100_000)
    );
    assert_eq!(
        decode_device_message(
            deep.as_bytes(),
            received(),
            &DecodeLimits {
                max_bytes: 1 << 20,
                ..limits.clone()
            }
        )
        .unwrap_err()
        .kind(),
        "not_json"
    );
    // The largest message of only numbers.
    let mut big = String::from(r#"{"waveform": [{"code": "pleth", "period_ms": 4, "samples": ["#);
    while big.len() < limits.max_bytes - 10 {
        big.push_str("1,");
    }
    big.push_str("1]}]}");
    let msg = decode_device_message(big.as_bytes(), received(), &limits).unwrap();
    assert_eq!(msg.rejected[0].reason.kind(), "bad_waveform");
    // NUL bytes and control characters inside strings must be escaped in JSON.
    assert_eq!(
        err("{\"obs\": [{\"code\": \"a\u{0}b\"}]}").kind(),
        "not_json"
    );
    let r = refused(r#"{"code": "a\u0000b", "value": 1}"#);
    assert_eq!(r.code.as_deref(), Some("a\u{0}b"));
    assert_contains(&r.reason, &[r#""a\0b""#]);
}

#[test]
fn consciousness_takes_the_acvpu_letters() {
    for a in Acvpu::ALL {
        let r = single(&format!(r#"{{"code": "acvpu", "value": "{}"}}"#, a.code()));
        assert_eq!(r.value, ObservationValue::Acvpu(a));
        assert_eq!(r.code, ObservationCode::Single(Measurand::Consciousness));
    }
    let r = refused(r#"{"code": "acvpu", "value": "X"}"#);
    assert_eq!(r.reason.kind(), "invalid_coded_value");
    assert!(
        r.reason.to_string().contains("new confusion"),
        "{}",
        r.reason
    );
    let r = refused(r#"{"code": "acvpu", "value": "a"}"#);
    assert_eq!(
        r.reason.kind(),
        "invalid_coded_value",
        "letters are upper case"
    );
    let r = refused(r#"{"code": "acvpu", "value": 1}"#);
    assert_eq!(r.reason.kind(), "wrong_type");
    let r = refused(r#"{"code": "acvpu", "value": null}"#);
    assert_eq!(r.reason.kind(), "missing_value");
    let r = refused(r#"{"code": "acvpu", "value": "A", "unit": "1"}"#);
    assert_eq!(r.reason.kind(), "unit_not_allowed");
}

#[test]
fn supplemental_oxygen_is_yes_no_or_a_flow() {
    let r = single(r#"{"code": "o2_supplemental", "value": true}"#);
    assert_eq!(r.value, ObservationValue::OnOxygen(true));
    let r = single(r#"{"code": "o2_supplemental", "value": false}"#);
    assert_eq!(r.value, ObservationValue::OnOxygen(false));
    let r = single(r#"{"code": "o2_supplemental", "value": 2}"#);
    assert_eq!(
        r.value,
        ObservationValue::Quantity(Quantity::new(2.0, "L/min"))
    );
    let r = single(r#"{"code": "o2_supplemental", "value": 1500, "unit": "mL/min"}"#);
    assert_eq!(
        r.value,
        ObservationValue::Quantity(Quantity::new(1.5, "L/min"))
    );
    assert!(r.quality.contains(QualityFlags::CONVERTED_UNIT));
    assert_eq!(
        refused(r#"{"code": "o2_supplemental", "value": 81}"#)
            .reason
            .kind(),
        "implausible_value"
    );
    assert_eq!(
        refused(r#"{"code": "o2_supplemental", "value": -1}"#)
            .reason
            .kind(),
        "implausible_value"
    );
    assert_eq!(
        refused(r#"{"code": "o2_supplemental", "value": true, "unit": "L/min"}"#)
            .reason
            .kind(),
        "unit_not_allowed"
    );
    assert_eq!(
        refused(r#"{"code": "o2_supplemental", "value": "yes"}"#)
            .reason
            .kind(),
        "wrong_type"
    );
}
