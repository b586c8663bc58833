//! Arbitrary bytes into the device JSON decoder: it must never panic, and whatever it accepts
//! must satisfy the contract (plausible values in canonical units, bounded segments, no time
//! beyond the allowed clock skew).

#![no_main]

use chrono::{TimeZone, Utc};
use libfuzzer_sys::fuzz_target;
use vigil_codecs::device_json::{MAX_PERIOD_MS, MIN_PERIOD_MS};
use vigil_codecs::{DecodeLimits, decode_device_message};
use vigil_model::waveform::MAX_SAMPLES_PER_SEGMENT;
use vigil_model::{Measurand, ObservationCode, ObservationValue};

fuzz_target!(|bytes: &[u8]| {
    let received = Utc.with_ymd_and_hms(2026, 11, 21, 10, 15, 30).unwrap();
    let limits = DecodeLimits::default();
    let msg = match decode_device_message(bytes, received, &limits) {
        Ok(msg) => msg,
        Err(e) => {
            assert!(!e.kind().is_empty());
            let _ = e.to_string();
            return;
        }
    };
    for r in &msg.readings {
        let parts: Vec<_> = match (&r.code, &r.value) {
            (ObservationCode::Single(m), ObservationValue::Quantity(q)) => vec![(*m, q)],
            (ObservationCode::BloodPressure, ObservationValue::Components(c)) => {
                assert!(!c.is_empty());
                c.iter().map(|c| (c.measurand, &c.value)).collect()
            }
            (ObservationCode::Single(Measurand::Consciousness), ObservationValue::Acvpu(_))
            | (ObservationCode::Single(Measurand::SupplementalOxygen), ObservationValue::OnOxygen(_)) => {
                vec![]
            }
            other => panic!("code and value disagree: {other:?}"),
        };
        for (m, q) in parts {
            let range = m.plausible();
            assert!(
                q.value >= range.min && q.value <= range.max,
                "{m:?} {}",
                q.value
            );
            assert_eq!(q.unit, m.canonical_unit());
        }
        assert!(r.effective >= chrono::DateTime::UNIX_EPOCH);
        assert!(r.effective.signed_duration_since(received) <= limits.max_future_skew);
    }
    assert!(msg.readings.len() <= limits.max_readings);
    assert!(msg.waveforms.len() <= limits.max_waveforms);
    for w in &msg.waveforms {
        assert!((1..=MAX_SAMPLES_PER_SEGMENT).contains(&w.samples.len()));
        assert!((MIN_PERIOD_MS..=MAX_PERIOD_MS).contains(&w.period_ms));
        assert!(w.factor != 0.0 && w.factor.is_finite() && w.origin.is_finite());
        assert!(w.end() >= w.start);
    }
    assert!(msg.battery_pct.is_none_or(|b| b <= 100));
    assert!(msg.signal_dbm.is_none_or(|s| (-150..=0).contains(&s)));
    for r in &msg.rejected {
        assert!(r.pointer.starts_with('/'));
        assert!(!r.reason.kind().is_empty());
        let _ = r.to_string();
    }
});
