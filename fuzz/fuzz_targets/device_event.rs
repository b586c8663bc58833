//! Arbitrary bytes into the device event decoder: it must never panic, and whatever it accepts is
//! exactly one reading that is either a detected event or a measurand with no value, timed no
//! later than the allowed clock skew.

#![no_main]

use chrono::{TimeZone, Utc};
use libfuzzer_sys::fuzz_target;
use vigil_codecs::{DecodeLimits, decode_device_event};
use vigil_model::{AbsentReason, ObservationCode, ObservationValue};

fuzz_target!(|bytes: &[u8]| {
    let received = Utc.with_ymd_and_hms(2026, 11, 22, 3, 12, 10).unwrap();
    let limits = DecodeLimits::default();
    let msg = match decode_device_event(bytes, received, &limits) {
        Ok(msg) => msg,
        Err(e) => {
            assert!(!e.kind().is_empty());
            let _ = e.to_string();
            return;
        }
    };
    assert_eq!(msg.readings.len(), 1);
    assert!(msg.waveforms.is_empty());
    let r = &msg.readings[0];
    match (&r.code, &r.value) {
        (ObservationCode::Event(_), ObservationValue::Detected) => {}
        (
            ObservationCode::Single(_) | ObservationCode::BloodPressure,
            ObservationValue::Absent(AbsentReason::SensorOff),
        ) => {}
        other => panic!("an event decoded to {other:?}"),
    }
    assert!(r.effective >= chrono::DateTime::UNIX_EPOCH);
    assert!(r.effective.signed_duration_since(received) <= limits.max_future_skew);
    assert!(msg.battery_pct.is_none_or(|b| b <= 100));
});
