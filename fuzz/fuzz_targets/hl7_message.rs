//! Arbitrary bytes into the HL7 ORU^R01 decoder, then into the ACK builder: nothing may panic,
//! whatever is accepted must satisfy the contract (known measurands in canonical units within
//! their plausible ranges, an equipment for every row, times within the allowed clock skew, rows
//! in message order), and every ACK, for an accepted or a refused message, must be well-formed
//! HL7 that MLLP can frame, with the right MSA-1.

#![no_main]

use chrono::{DateTime, Duration, TimeZone, Utc};
use libfuzzer_sys::fuzz_target;
use vigil_codecs::hl7::{
    AckCode, Hl7Item, Hl7Limits, build_ack, build_nack, decode_oru,
};
use vigil_codecs::mllp;
use vigil_model::{MeasuredValue, ObservationCode, ObservationValue};

fuzz_target!(|bytes: &[u8]| {
    let received = Utc.with_ymd_and_hms(2025, 1, 17, 0, 0, 0).unwrap();
    let now = received + Duration::seconds(1);
    let limits = Hl7Limits::default();
    match decode_oru(bytes, received, &limits) {
        Ok(msg) => {
            assert!(!msg.header.control_id.is_empty());
            assert!(msg.items.len() <= limits.max_observations);
            assert!(msg.patient_ids.len() <= limits.max_repetitions);
            assert!(msg.items.windows(2).all(|w| w[0].obx().sequence < w[1].obx().sequence));
            for item in &msg.items {
                assert!(!item.equipment().id.is_empty());
                assert!(item.equipment().id.len() <= limits.max_identifier_bytes);
                assert!(item.effective() >= DateTime::UNIX_EPOCH);
                assert!(item.effective().signed_duration_since(received) <= limits.max_future_skew);
                if let Hl7Item::Value { measurement, .. } = item {
                    let MeasuredValue::Number(v) = measurement.value else {
                        panic!("HL7 values are numbers: {measurement:?}");
                    };
                    let range = measurement.measurand.plausible();
                    assert!(v >= range.min && v <= range.max, "{v}");
                }
            }
            let mut rows = 0;
            for device in &msg.equipment {
                for r in &device.readings {
                    let parts: Vec<_> = match (&r.code, &r.value) {
                        (ObservationCode::Single(m), ObservationValue::Quantity(q)) => vec![(*m, q)],
                        (ObservationCode::BloodPressure, ObservationValue::Components(c)) => {
                            assert!(!c.is_empty());
                            c.iter().map(|c| (c.measurand, &c.value)).collect()
                        }
                        other => panic!("code and value disagree: {other:?}"),
                    };
                    for (m, q) in parts {
                        assert_eq!(q.unit, m.canonical_unit());
                        rows += 1;
                    }
                }
                rows += device.absent.len();
            }
            assert_eq!(rows, msg.items.len(), "every item is in exactly one group");
            for s in &msg.skipped {
                assert!(!s.reason.kind().is_empty());
            }
            let ack = build_ack(&msg.ack, AckCode::Accept, None, now, "FUZZ-1");
            check_ack(&ack, "AA", Some(msg.ack.original_control_id()));
        }
        Err(e) => {
            assert!(!e.kind().is_empty());
            assert!(!e.to_string().is_empty());
            assert!(matches!(e.error_code().code(), 100..=103 | 200..=203 | 207));
            let nack = build_nack(bytes, &e, now, "FUZZ-1");
            check_ack(&nack, e.ack_code().as_str(), None);
        }
    }
});

/// A well-formed ACK: UTF-8 text of CR-terminated segments, MSH then MSA (then ERR), nothing an
/// MLLP frame cannot carry, small.
fn check_ack(ack: &[u8], code: &str, control_id: Option<&str>) {
    assert!(ack.len() < 4096, "{} bytes", ack.len());
    let text = std::str::from_utf8(ack).expect("ACK is UTF-8");
    assert!(text.starts_with("MSH") && text.ends_with('\r'), "{text:?}");
    assert!(!text.contains(['\n', '\u{0b}', '\u{1c}']), "{text:?}");
    let field = text.as_bytes()[3] as char;
    let segments: Vec<&str> = text.trim_end_matches('\r').split('\r').collect();
    assert!(segments.len() == 2 || segments.len() == 3, "{text:?}");
    let msa: Vec<&str> = segments[1].split(field).collect();
    assert_eq!(msa[0], "MSA");
    assert_eq!(msa[1], code);
    if let Some(id) = control_id {
        assert_eq!(msa[2], id);
    }
    if segments.len() == 3 {
        assert!(segments[2].starts_with("ERR"));
    }
    assert!(mllp::frame(ack, 1 << 20).is_ok());
}
