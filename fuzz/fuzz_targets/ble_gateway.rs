//! Arbitrary bytes into the BLE gateway message decoder: it must never panic, and whatever it
//! accepts must name a canonical peripheral address and a supported characteristic, and carry
//! plausible values in canonical units timed no later than the allowed clock skew.

#![no_main]

use chrono::{TimeZone, Utc};
use libfuzzer_sys::fuzz_target;
use vigil_codecs::ble::{BleAddress, GatewayLimits, decode_gateway_message};
use vigil_model::{ObservationCode, ObservationValue};

fuzz_target!(|bytes: &[u8]| {
    let received = Utc.with_ymd_and_hms(2026, 11, 21, 10, 15, 30).unwrap();
    let limits = GatewayLimits::default();
    let msg = match decode_gateway_message(bytes, received, &limits) {
        Ok(msg) => msg,
        Err(e) => {
            assert!(!e.kind().is_empty());
            let _ = e.to_string();
            return;
        }
    };
    let written = msg.peripheral.to_string();
    assert_eq!(BleAddress::parse(&written), Some(msg.peripheral));
    assert_eq!(written, written.to_ascii_uppercase());
    assert_eq!(msg.value.characteristic(), msg.characteristic);
    assert!(!msg.readings.is_empty());
    for r in &msg.readings {
        let parts: Vec<_> = match (&r.code, &r.value) {
            (ObservationCode::Single(m), ObservationValue::Quantity(q)) => vec![(*m, q)],
            (ObservationCode::BloodPressure, ObservationValue::Components(c)) => {
                assert!(!c.is_empty());
                c.iter().map(|c| (c.measurand, &c.value)).collect()
            }
            (ObservationCode::Single(_) | ObservationCode::BloodPressure, ObservationValue::Absent(_)) => {
                vec![]
            }
            other => panic!("code and value disagree: {other:?}"),
        };
        for (m, q) in parts {
            let range = m.plausible();
            assert!(q.value >= range.min && q.value <= range.max, "{m:?} {}", q.value);
            assert_eq!(q.unit, m.canonical_unit());
        }
        assert!(r.effective >= chrono::DateTime::UNIX_EPOCH);
        assert!(r.effective.signed_duration_since(received) <= limits.max_future_skew);
    }
});
