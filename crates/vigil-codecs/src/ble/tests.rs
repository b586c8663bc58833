//! Tests of the gateway message contract, one group per clause of the module documentation.

use chrono::{Duration, TimeZone, Utc};
use vigil_model::{
    AbsentReason, Instant, Measurand, ObservationCode, ObservationValue, QualityFlags, Reading,
};

use super::*;

/// When the test messages arrive.
fn received() -> Instant {
    Utc.with_ymd_and_hms(2026, 11, 21, 10, 15, 30).unwrap()
}

fn decode(json: &str) -> Result<GatewayMessage, BleError> {
    decode_gateway_message(json.as_bytes(), received(), &GatewayLimits::default())
}

fn ok(json: &str) -> GatewayMessage {
    decode(json).unwrap_or_else(|e| panic!("{e}"))
}

fn kind(json: &str) -> &'static str {
    decode(json)
        .expect_err("the message should be refused")
        .kind()
}

/// A message for the heart rate 72 bpm (`0048`), with the given members replacing the defaults.
fn hr_message(peripheral: &str, characteristic: &str, data: &str) -> String {
    format!(
        r#"{{"peripheral": "{peripheral}", "characteristic": "{characteristic}", "data": "{data}"}}"#
    )
}

fn quantity(r: &Reading) -> f64 {
    match &r.value {
        ObservationValue::Quantity(q) => q.value,
        other => panic!("not a quantity: {other:?}"),
    }
}

#[test]
fn the_documented_example() {
    let m = ok(r#"{"ts": "2026-11-21T10:15:00.250+01:00",
        "peripheral": "C4:7C:8D:6A:11:02",
        "characteristic": "2a35",
        "data": "1e780050005d00ea070b150a0e004800010000"}"#);
    assert_eq!(m.peripheral.to_string(), "C4:7C:8D:6A:11:02");
    assert_eq!(m.characteristic, Characteristic::BloodPressureMeasurement);
    assert_eq!(
        m.gateway_time,
        Some(Utc.with_ymd_and_hms(2026, 11, 21, 9, 15, 0).unwrap() + Duration::milliseconds(250))
    );
    assert_eq!(m.user_id(), Some(UserId(1)));
    assert_eq!(m.readings.len(), 2);
    // 10:14 on the cuff's clock, read in the gateway's +01:00.
    let at = Utc.with_ymd_and_hms(2026, 11, 21, 9, 14, 0).unwrap();
    assert!(m.readings.iter().all(|r| r.effective == at));
    assert!(m.readings.iter().all(|r| r.quality.is_empty()));
    assert_eq!(m.readings[0].code, ObservationCode::BloodPressure);
    let ObservationValue::Components(parts) = &m.readings[0].value else {
        panic!("{:?}", m.readings[0].value)
    };
    let parts: Vec<_> = parts
        .iter()
        .map(|c| (c.measurand, c.value.value, c.value.unit.as_str()))
        .collect();
    assert_eq!(
        parts,
        [
            (Measurand::SystolicBp, 120.0, "mm[Hg]"),
            (Measurand::DiastolicBp, 80.0, "mm[Hg]"),
            (Measurand::MeanBp, 93.0, "mm[Hg]"),
        ]
    );
    assert_eq!(
        m.readings[1].code,
        ObservationCode::Single(Measurand::HeartRate)
    );
    assert_eq!(quantity(&m.readings[1]), 72.0);
}

#[test]
fn the_peripheral_address_is_normalised_or_refused() {
    for sent in [
        "C4:7C:8D:6A:11:02",
        "c4:7c:8d:6a:11:02",
        "c4:7C:8d:6A:11:02",
    ] {
        let m = ok(&hr_message(sent, "2a37", "0048"));
        assert_eq!(
            m.peripheral,
            BleAddress([0xC4, 0x7C, 0x8D, 0x6A, 0x11, 0x02])
        );
        assert_eq!(m.peripheral.to_string(), "C4:7C:8D:6A:11:02");
    }
    for bad in [
        "",
        "C4:7C:8D:6A:11",
        "C4:7C:8D:6A:11:02:03",
        "C4-7C-8D-6A-11-02",
        "C47C8D6A1102",
        "C4:7C:8D:6A:11:0G",
        "C4:7C:8D:6A:1:102",
        " C4:7C:8D:6A:11:02",
        "C4:7C:8D:6A:11:02 ",
        "C4:7C:8D:6A:11:é2",
    ] {
        assert_eq!(
            kind(&hr_message(bad, "2a37", "0048")),
            "bad_address",
            "{bad:?}"
        );
    }
    let e = decode(&hr_message("nope", "2a37", "0048")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "peripheral \"nope\" is not a Bluetooth device address; expected six two-digit hex octets \
         separated by colons, such as C4:7C:8D:6A:11:02"
    );
    assert_eq!(
        "c4:7c:8d:6a:11:02"
            .parse::<BleAddress>()
            .unwrap()
            .to_string(),
        "C4:7C:8D:6A:11:02"
    );
}

#[test]
fn the_characteristic_in_every_accepted_form() {
    for sent in [
        "2a37",
        "2A37",
        "0x2A37",
        "0x2a37",
        "0X2a37",
        "00002a37-0000-1000-8000-00805f9b34fb",
        "00002A37-0000-1000-8000-00805F9B34FB",
    ] {
        let m = ok(&hr_message("C4:7C:8D:6A:11:02", sent, "0048"));
        assert_eq!(
            m.characteristic,
            Characteristic::HeartRateMeasurement,
            "{sent}"
        );
    }
    for bad in [
        "",
        "2a3",
        "02a37",
        "0x02a37",
        "x2a37",
        "2a3g",
        "heart rate",
        "00012a37-0000-1000-8000-00805f9b34fb",
        "00002a37-0000-1000-8000-00805f9b34fc",
        "00002a37",
        "+2a3",
    ] {
        assert_eq!(
            kind(&hr_message("C4:7C:8D:6A:11:02", bad, "0048")),
            "bad_characteristic",
            "{bad:?}"
        );
    }
}

#[test]
fn unknown_characteristics_are_refused_with_the_supported_list() {
    for unsupported in ["2a36", "2a1e", "2a19", "2a34", "0000"] {
        assert_eq!(
            kind(&hr_message("C4:7C:8D:6A:11:02", unsupported, "0048")),
            "unsupported_characteristic"
        );
    }
    let e = decode(&hr_message("C4:7C:8D:6A:11:02", "2a36", "00")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "characteristic 0x2A36 is not supported; the supported ones are 0x2A37 (Heart Rate \
         Measurement), 0x2A35 (Blood Pressure Measurement), 0x2A1C (Temperature Measurement), \
         0x2A5E (PLX Spot-check Measurement), 0x2A5F (PLX Continuous Measurement), 0x2A18 \
         (Glucose Measurement), 0x2A9D (Weight Measurement)"
    );
    for c in Characteristic::ALL {
        assert_eq!(Characteristic::from_uuid16(c.uuid16()), Some(c));
        assert_eq!(
            parse_uuid16(&format!("{:04x}", c.uuid16())),
            Some(c.uuid16())
        );
    }
}

#[test]
fn data_is_hex_bounded_and_never_quoted() {
    assert_eq!(
        ok(&hr_message("C4:7C:8D:6A:11:02", "2a37", "0048"))
            .readings
            .len(),
        1
    );
    let upper = ok(&hr_message("C4:7C:8D:6A:11:02", "2a37", "104800040002"));
    let CharacteristicValue::HeartRate(hr) = &upper.value else {
        panic!()
    };
    assert_eq!(hr.rr_intervals, [1024, 512]);
    let e = decode(&hr_message("C4:7C:8D:6A:11:02", "2a37", "00481")).unwrap_err();
    assert_eq!(e.kind(), "bad_hex");
    assert_eq!(
        e.to_string(),
        "data must be hex digits, two per byte: it has 5 digits, an odd number"
    );
    let e = decode(&hr_message("C4:7C:8D:6A:11:02", "2a37", "00 48")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "data must be hex digits, two per byte: the character at index 2 is not a hex digit"
    );
    assert_eq!(
        kind(&hr_message("C4:7C:8D:6A:11:02", "2a37", "0x0048")),
        "bad_hex"
    );
    assert_eq!(
        kind(&hr_message("C4:7C:8D:6A:11:02", "2a37", "é0048")),
        "bad_hex"
    );
    // Empty data is an empty value: its Flags octet is missing.
    assert_eq!(
        kind(&hr_message("C4:7C:8D:6A:11:02", "2a37", "")),
        "truncated"
    );
    // 512 bytes is the longest value (an RR-interval list runs to the end); 513 is refused
    // before any hex is decoded.
    let longest = format!("1048{}", "0004".repeat(255));
    assert_eq!(longest.len(), 1024);
    let m = ok(&hr_message("C4:7C:8D:6A:11:02", "2a37", &longest));
    let CharacteristicValue::HeartRate(hr) = &m.value else {
        panic!()
    };
    assert_eq!(hr.rr_intervals.len(), 255);
    let limits = GatewayLimits {
        max_bytes: 1 << 20,
        ..GatewayLimits::default()
    };
    let e = decode_gateway_message(
        hr_message("C4:7C:8D:6A:11:02", "2a37", &format!("{longest}00")).as_bytes(),
        received(),
        &limits,
    )
    .unwrap_err();
    assert_eq!(e.kind(), "value_too_long");
    // No error quotes the value's bytes.
    for data in ["0049ff", "ff48", "00481"] {
        let e = decode(&hr_message("C4:7C:8D:6A:11:02", "2a37", data)).unwrap_err();
        assert!(!e.to_string().contains(data), "{e}");
    }
}

#[test]
fn members_are_checked() {
    assert_eq!(
        kind(r#"{"characteristic": "2a37", "data": "0048"}"#),
        "missing_field"
    );
    assert_eq!(
        kind(r#"{"peripheral": "C4:7C:8D:6A:11:02", "data": "0048"}"#),
        "missing_field"
    );
    assert_eq!(
        kind(r#"{"peripheral": "C4:7C:8D:6A:11:02", "characteristic": "2a37"}"#),
        "missing_field"
    );
    assert_eq!(
        kind(r#"{"peripheral": "C4:7C:8D:6A:11:02", "characteristic": "2a37", "data": null}"#),
        "missing_field"
    );
    assert_eq!(
        kind(r#"{"peripheral": "C4:7C:8D:6A:11:02", "characteristic": 10807, "data": "0048"}"#),
        "wrong_type"
    );
    assert_eq!(
        kind(r#"{"peripheral": "C4:7C:8D:6A:11:02", "characteristic": "2a37", "data": [0, 72]}"#),
        "wrong_type"
    );
    let e = decode(
        r#"{"peripheral": "C4:7C:8D:6A:11:02", "characteristic": "2a37", "data": "0048", "dta": 1}"#,
    )
    .unwrap_err();
    assert_eq!(e.kind(), "unknown_field");
    assert_eq!(
        e.to_string(),
        "unknown field \"dta\" (did you mean \"data\"?); the accepted fields are ts, peripheral, \
         characteristic, data"
    );
    assert_eq!(
        kind(
            r#"{"peripheral": "C4:7C:8D:6A:11:02", "characteristic": "2a37", "data": "0048", "data": "0049"}"#
        ),
        "duplicate_field"
    );
    assert_eq!(kind("[]"), "wrong_shape");
    assert_eq!(kind("{"), "not_json");
    assert_eq!(
        decode_gateway_message(b"\xff", received(), &GatewayLimits::default())
            .unwrap_err()
            .kind(),
        "not_utf8"
    );
    let small = GatewayLimits {
        max_bytes: 10,
        ..GatewayLimits::default()
    };
    assert_eq!(
        decode_gateway_message(
            hr_message("C4:7C:8D:6A:11:02", "2a37", "0048").as_bytes(),
            received(),
            &small
        )
        .unwrap_err()
        .kind(),
        "too_large"
    );
}

/// A heart-rate message (no time stamp of its own) with the given `ts` member.
fn hr_with_ts(ts: &str) -> Result<GatewayMessage, BleError> {
    decode(&format!(
        r#"{{"ts": {ts}, "peripheral": "C4:7C:8D:6A:11:02", "characteristic": "2a37", "data": "0048"}}"#
    ))
}

#[test]
fn without_a_time_stamp_ts_is_used_else_the_receipt() {
    let r = &hr_with_ts(r#""2026-11-21T10:15:00Z""#).unwrap().readings[0];
    assert_eq!(
        r.effective,
        Utc.with_ymd_and_hms(2026, 11, 21, 10, 15, 0).unwrap()
    );
    assert!(r.quality.is_empty());
    let r = &hr_with_ts("1795256100000").unwrap().readings[0];
    assert_eq!(r.effective.timestamp_millis(), 1_795_256_100_000);
    let r = &hr_with_ts("null").unwrap().readings[0];
    assert_eq!(r.effective, received());
    assert_eq!(r.quality, QualityFlags::TIME_FROM_RECEIPT);
    let r = &ok(&hr_message("C4:7C:8D:6A:11:02", "2a37", "0048")).readings[0];
    assert_eq!(r.effective, received());
    assert_eq!(r.quality, QualityFlags::TIME_FROM_RECEIPT);
}

#[test]
fn ts_is_checked() {
    assert_eq!(
        hr_with_ts(r#""yesterday""#).unwrap_err().kind(),
        "bad_timestamp"
    );
    assert_eq!(hr_with_ts("-1").unwrap_err().kind(), "bad_timestamp");
    assert_eq!(hr_with_ts("1.5").unwrap_err().kind(), "bad_timestamp");
    assert_eq!(hr_with_ts("true").unwrap_err().kind(), "bad_timestamp");
    // Exactly five minutes ahead is accepted; a millisecond more is not, even when a time stamp
    // of the value's own would make `ts` unused.
    assert!(hr_with_ts(r#""2026-11-21T10:20:30Z""#).is_ok());
    assert_eq!(
        hr_with_ts(r#""2026-11-21T10:20:30.001Z""#)
            .unwrap_err()
            .kind(),
        "future_timestamp"
    );
    let e = decode(
        r#"{"ts": "2026-11-21T11:00:00Z", "peripheral": "C4:7C:8D:6A:11:02",
            "characteristic": "2a1c", "data": "026f0100ffea070b150a0000"}"#,
    )
    .unwrap_err();
    assert_eq!(e.kind(), "future_timestamp");
}

/// A temperature of 36.7 °C with the time stamp 2026-11-21 `hh`:00:00 and the given `ts`.
fn temperature_at(hour: u8, ts: &str) -> Result<GatewayMessage, BleError> {
    decode(&format!(
        r#"{{"ts": {ts}, "peripheral": "C4:7C:8D:6A:11:02", "characteristic": "2A1C",
            "data": "026f0100ffea070b15{hour:02x}0000"}}"#
    ))
}

#[test]
fn the_time_stamp_is_local_time_in_the_gateway_offset() {
    let at = |h| Utc.with_ymd_and_hms(2026, 11, 21, h, 0, 0).unwrap();
    // +01:00: 10:00 local is 09:00Z.
    let m = temperature_at(10, r#""2026-11-21T11:15:00+01:00""#).unwrap();
    assert_eq!(m.readings[0].effective, at(9));
    assert!(m.readings[0].quality.is_empty());
    // −05:00: 05:00 local is 10:00Z.
    let m = temperature_at(5, r#""2026-11-21T05:15:00-05:00""#).unwrap();
    assert_eq!(m.readings[0].effective, at(10));
    // Z, epoch milliseconds or no ts: read as UTC.
    assert_eq!(
        temperature_at(9, r#""2026-11-21T10:15:00Z""#)
            .unwrap()
            .readings[0]
            .effective,
        at(9)
    );
    assert_eq!(
        temperature_at(9, "1795256100000").unwrap().readings[0].effective,
        at(9)
    );
    assert_eq!(
        temperature_at(9, "null").unwrap().readings[0].effective,
        at(9)
    );
    // A device clock an hour ahead of receipt is refused.
    assert_eq!(
        temperature_at(11, "null").unwrap_err().kind(),
        "future_timestamp"
    );
}

#[test]
fn an_unknown_device_date_falls_back_to_ts() {
    // Year 0: the time stamp is not known.
    let m = decode(
        r#"{"ts": "2026-11-21T10:00:00Z", "peripheral": "C4:7C:8D:6A:11:02",
            "characteristic": "2a1c", "data": "026f0100ff00000b150a0000"}"#,
    )
    .unwrap();
    assert_eq!(
        m.readings[0].effective,
        Utc.with_ymd_and_hms(2026, 11, 21, 10, 0, 0).unwrap()
    );
    assert!(m.readings[0].quality.is_empty());
    // A device time before 1970 is refused.
    let e = decode(
        r#"{"peripheral": "C4:7C:8D:6A:11:02", "characteristic": "2a1c",
            "data": "026f0100ffb0070101000000"}"#,
    )
    .unwrap_err();
    assert_eq!(e.kind(), "time_out_of_range");
}

#[test]
fn absent_items_follow_the_measurements() {
    // PLX continuous, SpO2 NaN, pulse 72: the pulse, then SpO2 absent.
    let m = ok(&hr_message("C4:7C:8D:6A:11:02", "2a5f", "00ff074800"));
    assert_eq!(m.readings.len(), 2);
    assert_eq!(
        m.readings[0].code,
        ObservationCode::Single(Measurand::HeartRate)
    );
    assert_eq!(m.readings[1].code, ObservationCode::Single(Measurand::Spo2));
    assert_eq!(
        m.readings[1].value,
        ObservationValue::Absent(AbsentReason::NotObtained)
    );
    // Sensor disconnected (Device and Sensor Status bit 15): both absent, sensor off.
    let m = ok(&hr_message(
        "C4:7C:8D:6A:11:02",
        "2a5f",
        "08610048000080 00".replace(' ', "").as_str(),
    ));
    assert_eq!(m.readings.len(), 2);
    assert!(
        m.readings
            .iter()
            .all(|r| r.value == ObservationValue::Absent(AbsentReason::SensorOff))
    );
}

#[test]
fn characteristic_errors_pass_through_whole() {
    // Truncated, reserved flags, implausible: each refuses the message.
    assert_eq!(
        kind(&hr_message("C4:7C:8D:6A:11:02", "2a37", "01")),
        "truncated"
    );
    assert_eq!(
        kind(&hr_message("C4:7C:8D:6A:11:02", "2a37", "2048")),
        "reserved_flags"
    );
    assert_eq!(
        kind(&hr_message("C4:7C:8D:6A:11:02", "2a37", "00ff00")),
        "trailing_bytes"
    );
    assert_eq!(
        kind(&hr_message("C4:7C:8D:6A:11:02", "2a5e", "006500480000")),
        "trailing_bytes"
    );
    assert_eq!(
        kind(&hr_message("C4:7C:8D:6A:11:02", "2a5e", "0065004800")),
        "implausible_value"
    );
    assert_eq!(
        kind(&hr_message("C4:7C:8D:6A:11:02", "2a5f", "04610048000004")),
        "not_patient_data"
    );
}

#[test]
fn every_reference_example_through_the_gateway() {
    let one = |c: &str, data: &str| {
        let m = ok(&hr_message("C4:7C:8D:6A:11:02", c, data));
        assert_eq!(m.readings.len(), 1, "{c} {data}");
        quantity(&m.readings[0])
    };
    // 36.7 °C: 6f 01 00 ff.
    assert_eq!(one("2a1c", "006f0100ff"), 36.7);
    // 70.000 kg: b0 36.
    assert_eq!(one("2a9d", "00b036"), 70.0);
    // 0.00110 kg/L = 110 mg/dL (0xB06E), type-location 0x12.
    assert_eq!(one("2a18", "020700e807030f081e006eb012"), 110.0);
    // 0.00118 kg/L (0xB076) = 118 mg/dL.
    assert_eq!(one("2a18", "020700e807030f081e0076b012"), 118.0);
    // 0.0061 mol/L (0xC03D) = 6.1 mmol/L.
    assert!((one("2a18", "060700e807030f081e003dc012") - 6.1 * 18.0156).abs() < 1e-9);
    // 114 mmHg systolic (0x0072).
    let m = ok(&hr_message("C4:7C:8D:6A:11:02", "2a35", "00720050005d00"));
    let ObservationValue::Components(parts) = &m.readings[0].value else {
        panic!()
    };
    assert_eq!(parts[0].value.value, 114.0);
}
