//! Arbitrary bytes into the BLE characteristic decoders: the first byte selects the
//! characteristic (and, in its high bit, whether a gateway time with a UTC offset is known), the
//! rest is the value. Decoding must never panic; whatever is accepted must map to plausible values
//! in canonical units, absent items that are never values, and times within the allowed skew.

#![no_main]

use chrono::{FixedOffset, TimeZone, Utc};
use libfuzzer_sys::fuzz_target;
use vigil_codecs::ble::{
    Characteristic, MAX_VALUE_LEN, Medfloat, Timing, decode_characteristic, decode_float,
    decode_sfloat, encode_float, encode_sfloat,
};
use vigil_model::{MeasuredValue, ObservationCode, ObservationValue};

fuzz_target!(|bytes: &[u8]| {
    let Some((&selector, value)) = bytes.split_first() else {
        return;
    };
    // SFLOAT/FLOAT: every word decodes, and a number encodes back to its word.
    if let Some(pair) = value.first_chunk::<2>() {
        let raw = u16::from_le_bytes(*pair);
        let m = decode_sfloat(raw);
        assert_eq!(encode_sfloat(m), Some(raw));
        assert_eq!(m.to_f64().is_some(), matches!(m, Medfloat::Value { .. }));
    }
    if let Some(quad) = value.first_chunk::<4>() {
        let raw = u32::from_le_bytes(*quad);
        assert_eq!(encode_float(decode_float(raw)), Some(raw));
    }

    let characteristic = Characteristic::ALL[usize::from(selector & 0x7f) % Characteristic::ALL.len()];
    let decoded = match decode_characteristic(characteristic, value) {
        Ok(decoded) => decoded,
        Err(e) => {
            assert!(!e.kind().is_empty());
            let _ = e.to_string();
            return;
        }
    };
    assert!(value.len() <= MAX_VALUE_LEN);
    assert_eq!(decoded.characteristic(), characteristic);

    let received = Utc.with_ymd_and_hms(2026, 11, 21, 10, 15, 30).unwrap();
    let mut timing = Timing::at_receipt(received);
    if selector & 0x80 != 0 {
        timing.gateway_time = Some(received - chrono::Duration::seconds(2));
        timing.device_offset = FixedOffset::east_opt(-5 * 3600);
    }
    let mapped = match decoded.measurements(&timing) {
        Ok(mapped) => mapped,
        Err(e) => {
            assert!(!e.kind().is_empty());
            let _ = e.to_string();
            return;
        }
    };
    for m in &mapped.measurements {
        let MeasuredValue::Number(n) = m.value else {
            panic!("a BLE value that is not a number: {m:?}");
        };
        let range = m.measurand.plausible();
        assert!(n >= range.min && n <= range.max, "{:?} {n}", m.measurand);
        assert!(m.effective >= chrono::DateTime::UNIX_EPOCH);
        assert!(m.effective.signed_duration_since(received) <= timing.max_future_skew);
    }
    for a in &mapped.absent {
        assert!(matches!(a.code, ObservationCode::Single(_) | ObservationCode::BloodPressure));
        assert!(!a.cause.name().is_empty());
    }
    for r in mapped.clone().into_readings() {
        match (&r.code, &r.value) {
            (ObservationCode::Single(m), ObservationValue::Quantity(q)) => {
                assert_eq!(q.unit, m.canonical_unit());
            }
            (ObservationCode::BloodPressure, ObservationValue::Components(c)) => {
                assert!(!c.is_empty());
                for c in c {
                    assert!(c.measurand.is_bp_component());
                    assert_eq!(c.value.unit, c.measurand.canonical_unit());
                }
            }
            (_, ObservationValue::Absent(_)) => {}
            other => panic!("code and value disagree: {other:?}"),
        }
    }
});
