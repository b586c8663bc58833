//! Vendor mapping templates (`vigil_codecs::template`). The first byte picks the mode:
//! - `0`/`1` (mod 4): the rest is a vendor message, mapped by the shipped `acme-band` (YAML) or
//!   `homehub` (JSON) template from `examples/templates/`;
//! - `2`/`3` (mod 4): the rest is a template, in JSON or YAML; one that parses is then applied to
//!   both shipped sample messages and to its own text.
//!
//! Nothing may panic, and whatever is accepted must satisfy the contract: readings plausible and
//! in canonical units, no time before 1970 or beyond the allowed clock skew, at most
//! `max_readings` readings, a battery of 0–100 %, and a dry run that agrees with `apply`.

#![no_main]

use std::sync::LazyLock;

use chrono::{TimeZone, Utc};
use libfuzzer_sys::fuzz_target;
use vigil_codecs::{DecodeLimits, Template, TemplateFormat};
use vigil_model::{Instant, Measurand, ObservationCode, ObservationValue, Quantity};

const ACME: &str = include_str!("../../examples/templates/acme-band.yaml");
const ACME_SAMPLE: &str = include_str!("../../examples/templates/acme-band.sample.json");
const HOMEHUB: &str = include_str!("../../examples/templates/homehub.json");
const HOMEHUB_SAMPLE: &str = include_str!("../../examples/templates/homehub.sample.json");

static SHIPPED: LazyLock<[Template; 2]> = LazyLock::new(|| {
    [
        Template::parse(ACME, TemplateFormat::Yaml).expect("the shipped acme-band template"),
        Template::parse(HOMEHUB, TemplateFormat::Json).expect("the shipped homehub template"),
    ]
});

fuzz_target!(|bytes: &[u8]| {
    let Some((&selector, rest)) = bytes.split_first() else {
        return;
    };
    let received = Utc.with_ymd_and_hms(2026, 11, 22, 8, 0, 30).unwrap();
    let limits = DecodeLimits {
        max_readings: 64,
        ..DecodeLimits::default()
    };
    match selector % 4 {
        mode @ (0 | 1) => check(&SHIPPED[usize::from(mode)], rest, received, &limits),
        mode => {
            let Ok(text) = std::str::from_utf8(rest) else {
                return;
            };
            let format = if mode == 2 {
                TemplateFormat::Json
            } else {
                TemplateFormat::Yaml
            };
            match Template::parse(text, format) {
                Ok(t) => {
                    assert!(t.rule_count() >= 1);
                    assert!(!t.name().is_empty() && t.version() >= 1);
                    for message in [ACME_SAMPLE.as_bytes(), HOMEHUB_SAMPLE.as_bytes(), rest] {
                        check(&t, message, received, &limits);
                    }
                }
                Err(e) => {
                    assert!(!e.kind().is_empty());
                    let _ = e.to_string();
                }
            }
        }
    }
});

fn check(template: &Template, message: &[u8], received: Instant, limits: &DecodeLimits) {
    let dry = template.dry_run(message, received, limits);
    serde_json::to_string(&dry).expect("a dry run serialises");
    let mapped = match template.apply(message, received, limits) {
        Ok(mapped) => mapped,
        Err(e) => {
            assert_eq!(dry.refused.as_ref().map(|r| r.kind), Some(e.kind()));
            let _ = e.to_string();
            return;
        }
    };
    assert!(dry.refused.is_none());
    assert_eq!(dry.observations, mapped.readings.len());
    assert_eq!(dry.rejected.len(), mapped.rejected.len());
    assert_eq!(dry.skipped.len(), mapped.skipped.len());
    assert_eq!(dry.device.as_deref(), Some(mapped.device.as_str()));
    assert!(!mapped.device.as_str().starts_with("vigil-"));
    assert!(dry.readings.len() <= limits.max_readings);
    assert!(mapped.battery_pct.is_none_or(|b| b <= 100));
    for r in mapped.rejected.iter().chain(&mapped.skipped) {
        assert!(!r.kind().is_empty());
        let _ = r.to_string();
    }
    for r in &mapped.readings {
        assert!(r.effective >= chrono::DateTime::UNIX_EPOCH);
        assert!(r.effective.signed_duration_since(received) <= limits.max_future_skew);
        match (&r.code, &r.value) {
            (ObservationCode::Single(m), ObservationValue::Quantity(q)) => canonical(*m, q),
            (ObservationCode::BloodPressure, ObservationValue::Components(parts)) => {
                assert!(!parts.is_empty());
                for p in parts {
                    assert!(p.measurand.is_bp_component());
                    canonical(p.measurand, &p.value);
                }
            }
            (ObservationCode::Single(Measurand::Consciousness), ObservationValue::Acvpu(_)) => {}
            (
                ObservationCode::Single(Measurand::SupplementalOxygen),
                ObservationValue::OnOxygen(_),
            ) => {}
            other => panic!("code and value disagree: {other:?}"),
        }
    }
}

fn canonical(m: Measurand, q: &Quantity) {
    assert_eq!(q.unit, m.canonical_unit());
    let range = m.plausible();
    assert!(q.value >= range.min && q.value <= range.max, "{m:?} {}", q.value);
}
