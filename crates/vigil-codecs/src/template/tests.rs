use chrono::{Duration, TimeZone, Utc};
use vigil_model::{
    Acvpu, DeviceId, IdError, Instant, Measurand, ObservationCode, ObservationComponent,
    ObservationStatus, ObservationValue, QualityFlags, Quantity, Reading,
};

use super::*;
use crate::device_json::DecodeLimits;

const ACME: &str = include_str!("../../../../examples/templates/acme-band.yaml");
const ACME_SAMPLE: &str = include_str!("../../../../examples/templates/acme-band.sample.json");
const ACME_SAMPLE_2: &str = include_str!("../../../../examples/templates/acme-band.sample-2.json");
const HOMEHUB: &str = include_str!("../../../../examples/templates/homehub.json");
const HOMEHUB_SAMPLE: &str = include_str!("../../../../examples/templates/homehub.sample.json");
const HOMEHUB_SAMPLE_2: &str = include_str!("../../../../examples/templates/homehub.sample-2.json");

const MMHG_PER_KPA: f64 = 1000.0 / 133.322_387_415;

fn at(h: u32, m: u32, s: u32) -> Instant {
    Utc.with_ymd_and_hms(2026, 11, 22, h, m, s).unwrap()
}

/// When the tests' messages arrive (the acme samples are from 08:00:00Z).
fn received() -> Instant {
    at(8, 0, 30)
}

fn yaml(text: &str) -> Result<Template, TemplateError> {
    Template::parse(text, TemplateFormat::Yaml)
}

fn json(text: &str) -> Result<Template, TemplateError> {
    Template::parse(text, TemplateFormat::Json)
}

/// A template with one reading rule, written as a YAML flow mapping, and `extra` top-level lines.
fn rule_with(rule: &str, extra: &str) -> Result<Template, TemplateError> {
    yaml(&format!(
        "name: t\nversion: 1\ndevice: \"$.id\"\n{extra}readings:\n  - {rule}\n"
    ))
}

fn rule(rule: &str) -> Result<Template, TemplateError> {
    rule_with(rule, "")
}

/// The field and kind of a refused template.
fn refused(result: Result<Template, TemplateError>) -> (String, &'static str) {
    let e = result.unwrap_err();
    (e.field().to_owned(), e.kind())
}

fn apply(t: &Template, message: &str) -> Result<Mapped, TemplateApplyError> {
    t.apply(message.as_bytes(), received(), &DecodeLimits::default())
}

fn quantity(code: Measurand, value: f64, effective: Instant, quality: QualityFlags) -> Reading {
    Reading {
        code: ObservationCode::Single(code),
        value: ObservationValue::Quantity(Quantity::new(value, code.canonical_unit())),
        effective,
        status: ObservationStatus::Final,
        quality,
    }
}

fn none() -> QualityFlags {
    QualityFlags::empty()
}

fn bp(parts: &[(Measurand, f64)], effective: Instant, quality: QualityFlags) -> Reading {
    Reading {
        code: ObservationCode::BloodPressure,
        value: ObservationValue::Components(
            parts
                .iter()
                .map(|&(measurand, v)| ObservationComponent {
                    measurand,
                    value: Quantity::new(v, measurand.canonical_unit()),
                })
                .collect(),
        ),
        effective,
        status: ObservationStatus::Final,
        quality,
    }
}

/// The one value a single-reading message yields.
fn only_value(mapped: &Mapped) -> f64 {
    assert_eq!(mapped.readings.len(), 1, "{mapped:?}");
    match &mapped.readings[0].value {
        ObservationValue::Quantity(q) => q.value,
        other => panic!("{other:?}"),
    }
}

/// The one rejection of a message and its reason.
fn only_rejection(mapped: &Mapped) -> &Rejection {
    assert_eq!(mapped.rejected.len(), 1, "{mapped:?}");
    &mapped.rejected[0]
}

// ---------------------------------------------------------------------------------------------
// The shipped examples.

#[test]
fn acme_band_maps_its_sample_exactly() {
    let t = yaml(ACME).unwrap();
    assert_eq!((t.name(), t.version(), t.rule_count()), ("acme-band", 3, 6));
    let m = apply(&t, ACME_SAMPLE).unwrap();
    assert_eq!(m.device, DeviceId::new("acme-AB2-00417").unwrap());
    let t0 = at(8, 0, 0);
    assert_eq!(
        m.readings,
        vec![
            quantity(Measurand::HeartRate, 72.0, t0, none()),
            quantity(Measurand::Spo2, 97.0, t0, none()),
            // 368 × 0.1, exactly 36.8 (f64 multiplication would give 36.800000000000004).
            quantity(Measurand::Temperature, 36.8, t0, none()),
            quantity(Measurand::RespRate, 14.0, t0, none()),
            quantity(Measurand::Steps, 4521.0, t0, none()),
            quantity(Measurand::Spo2, 95.0, at(7, 0, 0), none()),
            quantity(Measurand::Spo2, 94.0, at(7, 30, 0), none()),
        ]
    );
    assert_eq!(m.battery_pct, Some(81));
    assert!(m.rejected.is_empty() && m.skipped.is_empty(), "{m:?}");
}

#[test]
fn acme_band_second_sample_rejects_skips_and_keeps_the_rest() {
    let t = yaml(ACME).unwrap();
    let m = apply(&t, ACME_SAMPLE_2).unwrap();
    let t0 = at(8, 1, 0);
    assert_eq!(
        m.readings,
        vec![
            quantity(Measurand::HeartRate, 74.0, t0, none()),
            quantity(Measurand::Steps, 4600.0, t0, none()),
        ]
    );
    assert_eq!(m.battery_pct, Some(80));
    let r = only_rejection(&m);
    assert_eq!(
        (
            r.rule,
            r.item,
            r.path.as_str(),
            r.pointer.as_deref(),
            r.code
        ),
        (
            RuleRef::Reading(1),
            None,
            "$.spo2",
            Some("/spo2"),
            Some("spo2")
        )
    );
    assert_eq!(
        r.reason,
        RejectionReason::ImplausibleValue {
            measurand: Measurand::Spo2,
            value: 101.0,
            sent: None
        }
    );
    let skipped: Vec<_> = m
        .skipped
        .iter()
        .map(|s| (s.rule, s.pointer.as_deref(), s.kind()))
        .collect();
    assert_eq!(
        skipped,
        vec![
            // body_temp_c10 is null, rr is absent: both rules are optional.
            (RuleRef::Reading(2), Some("/body_temp_c10"), "missing_value"),
            (RuleRef::Reading(3), None, "missing_value"),
            // An empty backlog has no items.
            (RuleRef::Reading(5), None, "no_items"),
        ]
    );
    assert_eq!(
        m.skipped[0].reason,
        RejectionReason::Missing {
            field: "value",
            sent_null: true
        }
    );
}

#[test]
fn homehub_maps_its_sample_exactly() {
    let t = json(HOMEHUB).unwrap();
    assert_eq!((t.name(), t.version()), ("homehub", 1));
    let m = apply(&t, HOMEHUB_SAMPLE).unwrap();
    assert_eq!(m.device.as_str(), "homehub-HH-7731");
    // 07:58:10+01:00 is 06:58:10Z.
    assert_eq!(
        m.readings,
        vec![
            bp(
                &[
                    (Measurand::SystolicBp, 128.0),
                    (Measurand::DiastolicBp, 82.0)
                ],
                at(6, 58, 10),
                none()
            ),
            quantity(Measurand::HeartRate, 71.0, at(6, 58, 10), none()),
            // 165.4 [lb_av] at exactly 0.45359237 kg each.
            quantity(
                Measurand::Weight,
                165.4 * 0.453_592_37,
                at(7, 2, 0),
                QualityFlags::CONVERTED_UNIT
            ),
        ]
    );
    assert_eq!(m.battery_pct, Some(100));
    assert!(m.rejected.is_empty() && m.skipped.is_empty(), "{m:?}");
}

#[test]
fn homehub_second_sample_converts_kilopascals_and_refuses_an_unmapped_unit() {
    let t = json(HOMEHUB).unwrap();
    let m = t
        .apply(
            HOMEHUB_SAMPLE_2.as_bytes(),
            at(19, 10, 0),
            &DecodeLimits::default(),
        )
        .unwrap();
    let converted = QualityFlags::CONVERTED_UNIT;
    assert_eq!(
        m.readings,
        vec![
            bp(
                &[
                    (Measurand::SystolicBp, 16.4 * MMHG_PER_KPA),
                    (Measurand::DiastolicBp, 10.6 * MMHG_PER_KPA)
                ],
                at(19, 2, 0),
                converted
            ),
            // The second cuff reading's systolic was refused; its diastolic stands alone.
            bp(
                &[(Measurand::DiastolicBp, 11.0 * MMHG_PER_KPA)],
                at(19, 5, 0),
                converted
            ),
            quantity(Measurand::HeartRate, 66.0, at(19, 5, 0), none()),
            // Epoch seconds keep their fraction to the millisecond.
            quantity(
                Measurand::Weight,
                74.3,
                at(19, 0, 0) + Duration::milliseconds(250),
                none()
            ),
        ]
    );
    let r = only_rejection(&m);
    assert_eq!(
        (r.rule, r.item, r.path.as_str(), r.pointer.as_deref()),
        (
            RuleRef::Reading(0),
            Some(1),
            "$.sys.u",
            Some("/measurements/1/sys/u")
        )
    );
    assert_eq!(
        r.reason,
        RejectionReason::UnitNotInMap {
            unit: "psi".into(),
            known: "\"mmHg\", \"kPa\"".into()
        }
    );
    assert_eq!(
        r.to_string(),
        "readings[0] item 1 ($.sys.u at \"/measurements/1/sys/u\"): unit \"psi\" is not in the \
         template's unit map; it maps \"mmHg\", \"kPa\""
    );
    let skipped: Vec<_> = m
        .skipped
        .iter()
        .map(|s| (s.rule, s.item, s.pointer.as_deref()))
        .collect();
    assert_eq!(
        skipped,
        vec![
            // The first cuff reading had no pulse (optional), and the hub sent no battery.
            (RuleRef::Reading(2), Some(0), Some("/measurements/0")),
            (RuleRef::Battery, None, None),
        ]
    );
}

#[test]
fn json_is_yaml_so_both_parsers_give_the_same_template() {
    assert_eq!(yaml(HOMEHUB).unwrap(), json(HOMEHUB).unwrap());
}

#[test]
fn media_types_name_the_format() {
    assert_eq!(
        TemplateFormat::from_media_type("application/json; charset=utf-8"),
        Some(TemplateFormat::Json)
    );
    assert_eq!(
        TemplateFormat::from_media_type("Application/YAML"),
        Some(TemplateFormat::Yaml)
    );
    assert_eq!(
        TemplateFormat::from_media_type("text/yaml"),
        Some(TemplateFormat::Yaml)
    );
    assert_eq!(TemplateFormat::from_media_type("text/plain"), None);
}

// ---------------------------------------------------------------------------------------------
// Refused templates: structure.

#[test]
fn a_template_over_the_size_limit_is_refused_before_parsing() {
    let limits = TemplateLimits {
        max_bytes: 100,
        ..TemplateLimits::default()
    };
    let e = Template::parse_with_limits(ACME, TemplateFormat::Yaml, &limits).unwrap_err();
    assert_eq!(
        e,
        TemplateError::TooLarge {
            size: ACME.len(),
            max: 100
        }
    );
}

#[test]
fn unknown_members_are_refused_naming_the_field_and_line() {
    let e = rule(r#"{code: heart_rate, vlaue: "$.hr", unit: /min}"#).unwrap_err();
    let TemplateError::Document {
        path,
        message,
        line,
        ..
    } = &e
    else {
        panic!("{e:?}")
    };
    assert_eq!(path, "readings[0].vlaue");
    assert!(message.starts_with("unknown field `vlaue`"), "{message}");
    assert_eq!(*line, Some(5));
    assert_eq!(e.kind(), "invalid_document");
    assert!(
        e.to_string()
            .starts_with("readings[0].vlaue: unknown field `vlaue`, expected one of `code`"),
        "{e}"
    );

    let e = json(r#"{"name": "t", "version": 1, "device": "$.id", "readingz": []}"#).unwrap_err();
    let TemplateError::Document {
        path,
        message,
        line,
        column,
    } = &e
    else {
        panic!("{e:?}")
    };
    assert_eq!(path, "readingz");
    assert!(message.starts_with("unknown field `readingz`"), "{message}");
    assert_eq!((*line, *column), (Some(1), Some(56)));

    let (field, _) = refused(yaml(
        "name: t\nversion: 1\ndevice: {path: \"$.id\", prefx: a}\nreadings: []\n",
    ));
    assert_eq!(field, "device.prefx");
}

#[test]
fn repeated_members_are_refused() {
    let e = rule(r#"{code: heart_rate, code: spo2, value: "$.hr", unit: /min}"#).unwrap_err();
    assert!(e.to_string().contains("duplicate field `code`"), "{e}");
    let e = json(r#"{"name": "t", "name": "u", "version": 1, "device": "$.id", "readings": []}"#)
        .unwrap_err();
    assert!(e.to_string().contains("duplicate field `name`"), "{e}");
    // In a unit map too, where a plain map would silently keep one of them.
    let e = rule(
        r#"{code: heart_rate, value: "$.hr", unit_path: "$.u", units: {bpm: /min, bpm: "1/min"}}"#,
    )
    .unwrap_err();
    assert_eq!(e.field(), "readings[0].units");
    assert!(e.to_string().contains("unit \"bpm\" appears twice"), "{e}");
}

#[test]
fn missing_members_wrong_types_and_bad_syntax_are_refused() {
    let e = yaml("name: t\nversion: 1\nreadings: []\n").unwrap_err();
    assert!(e.to_string().contains("missing field `device`"), "{e}");
    let e = yaml("name: t\nversion: three\ndevice: \"$.id\"\nreadings: []\n").unwrap_err();
    assert_eq!(e.field(), "version");
    let e = yaml("name: t\nversion: -1\ndevice: \"$.id\"\nreadings: []\n").unwrap_err();
    assert_eq!(e.field(), "version");
    let (field, _) = refused(rule(r#"{code: heart_rate, value: 7, unit: /min}"#));
    assert_eq!(field, "readings[0].value");
    let (field, _) = refused(rule_with(
        r#"{code: heart_rate, value: "$.hr", unit: /min}"#,
        "time: {path: \"$.t\", format: epoch_us}\n",
    ));
    assert_eq!(field, "time.format");
    // Not YAML at all, and not JSON at all: the line is named.
    let e = yaml("name: t\nversion: 1\n  device: [\n").unwrap_err();
    assert!(
        matches!(e, TemplateError::Document { line: Some(_), .. }),
        "{e:?}"
    );
    let e = json("{\"name\": \"t\",\n \"version\": 1,,}").unwrap_err();
    assert!(
        matches!(e, TemplateError::Document { line: Some(2), .. }),
        "{e:?}"
    );
    let e = json(r#"{"name": "t"} trailing"#).unwrap_err();
    assert_eq!(e.kind(), "invalid_document");
    // Two YAML documents are one too many.
    assert!(yaml(&format!("{ACME}\n---\n{ACME}")).is_err());
    assert_eq!(yaml("").unwrap_err().kind(), "invalid_document");
}

// ---------------------------------------------------------------------------------------------
// Refused templates: rules.

#[test]
fn names_and_versions() {
    for bad in ["Acme", "", "a_b", "a b", "é"] {
        let e = yaml(&format!(
            "name: \"{bad}\"\nversion: 1\ndevice: \"$.id\"\nreadings: [{{code: spo2, value: \"$.s\", unit: \"%\"}}]\n"
        ))
        .unwrap_err();
        assert_eq!((e.field(), e.kind()), ("name", "bad_name"), "{bad}");
    }
    let long = "a".repeat(65);
    let base = |name: &str, version: &str| {
        yaml(&format!(
            "name: {name}\nversion: {version}\ndevice: \"$.id\"\nreadings: [{{code: spo2, value: \"$.s\", unit: \"%\"}}]\n"
        ))
    };
    assert_eq!(refused(base(&long, "1")), ("name".into(), "bad_name"));
    assert!(base(&"a".repeat(64), "1").is_ok());
    assert!(base("0-9-a", "4294967295").is_ok());
    assert_eq!(refused(base("t", "0")), ("version".into(), "bad_version"));
    let e = yaml(&format!(
        "name: t\nversion: 1\ndescription: {}\ndevice: \"$.id\"\nreadings: [{{code: spo2, value: \"$.s\", unit: \"%\"}}]\n",
        "x".repeat(513)
    ))
    .unwrap_err();
    assert_eq!((e.field(), e.kind()), ("description", "too_long"));
}

#[test]
fn bad_paths_are_refused_with_the_position() {
    let e = rule(r#"{code: heart_rate, value: "$.hr[", unit: /min}"#).unwrap_err();
    assert_eq!((e.field(), e.kind()), ("readings[0].value", "bad_path"));
    assert!(matches!(
        e,
        TemplateError::Invalid {
            problem: TemplateProblem::BadPath { position: 4, .. },
            ..
        }
    ));
    assert!(
        e.to_string()
            .starts_with("readings[0].value: \"$.hr[\" is not a valid JSONPath"),
        "{e}"
    );
    let (field, kind) = refused(rule_with(
        r#"{code: heart_rate, value: "$.hr", unit: /min}"#,
        "match: {path: \"model\", equals: x}\n",
    ));
    assert_eq!((field.as_str(), kind), ("match[0].path", "bad_path"));
    let (field, kind) = refused(yaml(
        "name: t\nversion: 1\ndevice: \"$.devices[*]\"\nreadings: [{code: spo2, value: \"$.s\", unit: \"%\"}]\n",
    ));
    assert_eq!((field.as_str(), kind), ("device.path", "path_not_singular"));
}

#[test]
fn one_value_paths_must_be_singular_and_each_is_bounded() {
    let (field, kind) = refused(rule(
        r#"{code: spo2, value: "$.samples[*].spo2", unit: "%"}"#,
    ));
    assert_eq!(
        (field.as_str(), kind),
        ("readings[0].value", "path_not_singular")
    );
    let (field, kind) = refused(rule(
        r#"{code: spo2, each: "$.s[*]", value: "$.spo2", unit: "%", time: {path: "$..t", format: epoch_ms}}"#,
    ));
    assert_eq!(
        (field.as_str(), kind),
        ("readings[0].time.path", "path_not_singular")
    );
    let (field, kind) = refused(rule(
        r#"{code: spo2, each: "$.s[?count($..x) > 0]", value: "$.spo2", unit: "%"}"#,
    ));
    assert_eq!(
        (field.as_str(), kind),
        ("readings[0].each", "path_not_allowed")
    );
    let (field, kind) = refused(rule(
        r#"{code: spo2, each: "$.s[?match(@.k, 'a.*')]", value: "$.spo2", unit: "%"}"#,
    ));
    assert_eq!((field.as_str(), kind), ("readings[0].each", "bad_path"));
    let long = format!("$.{}", "a".repeat(600));
    let (field, kind) = refused(rule(&format!(
        r#"{{code: spo2, value: "{long}", unit: "%"}}"#
    )));
    assert_eq!(
        (field.as_str(), kind),
        ("readings[0].value", "path_too_long")
    );
    // A filter in each is what each is for.
    assert!(
        rule(r#"{code: spo2, each: "$.s[?@.kind == 'ox' && @.q > 1]", value: "$.v", unit: "%"}"#)
            .is_ok()
    );
}

#[test]
fn codes_and_units_are_checked_against_the_catalogue() {
    assert_eq!(
        refused(rule(r#"{code: pulse_rate, value: "$.hr", unit: /min}"#)),
        ("readings[0].code".into(), "unknown_code")
    );
    // Every form of code the device JSON payload accepts.
    for code in ["heart_rate", "8867-4", "MDC_ECG_HEART_RATE", "147842"] {
        assert!(
            rule(&format!(r#"{{code: "{code}", value: "$.hr", unit: /min}}"#)).is_ok(),
            "{code}"
        );
    }
    let e = rule(r#"{code: heart_rate, value: "$.hr", unit: "mm[Hg]"}"#).unwrap_err();
    assert_eq!((e.field(), e.kind()), ("readings[0].unit", "unit_mismatch"));
    assert!(e.to_string().contains("expected /min"), "{e}");
    let (field, kind) = refused(rule(
        r#"{code: heart_rate, value: "$.hr", unit_path: "$.u", units: {bpm: /min, mmHg: "mm[Hg]"}}"#,
    ));
    assert_eq!(
        (field.as_str(), kind),
        ("readings[0].units.mmHg", "unit_mismatch")
    );
    assert_eq!(
        refused(rule(r#"{code: heart_rate, value: "$.hr"}"#)),
        ("readings[0]".into(), "missing_unit")
    );
    assert_eq!(
        refused(rule(
            r#"{code: heart_rate, value: "$.hr", unit: /min, unit_path: "$.u"}"#
        )),
        ("readings[0]".into(), "conflicting_units")
    );
    assert_eq!(
        refused(rule(
            r#"{code: heart_rate, value: "$.hr", unit: /min, units: {bpm: /min}}"#
        )),
        ("readings[0].units".into(), "unit_map_without_path")
    );
    assert_eq!(
        refused(rule(
            r#"{code: heart_rate, value: "$.hr", unit_path: "$.u", units: {}}"#
        )),
        ("readings[0].units".into(), "empty_unit_map")
    );
    let many: Vec<String> = (0..33).map(|i| format!("u{i}: /min")).collect();
    assert_eq!(
        refused(rule(&format!(
            r#"{{code: heart_rate, value: "$.hr", unit_path: "$.u", units: {{{}}}}}"#,
            many.join(", ")
        ))),
        ("readings[0].units".into(), "too_many")
    );
    // A coded value has no unit, scale or offset.
    assert_eq!(
        refused(rule(r#"{code: acvpu, value: "$.avpu", unit: "1"}"#)),
        ("readings[0].unit".into(), "not_for_coded_value")
    );
    assert_eq!(
        refused(rule(r#"{code: acvpu, value: "$.avpu", scale: 2}"#)),
        ("readings[0].scale".into(), "not_for_coded_value")
    );
    assert!(rule(r#"{code: acvpu, value: "$.avpu"}"#).is_ok());
}

#[test]
fn scale_and_offset_must_be_finite_and_scale_not_zero() {
    for scale in ["0", "0.0", "-0.0", ".inf", "-.inf", ".nan"] {
        let (field, kind) = refused(rule(&format!(
            r#"{{code: temperature, value: "$.t", unit: Cel, scale: {scale}}}"#
        )));
        assert_eq!(
            (field.as_str(), kind),
            ("readings[0].scale", "bad_scale"),
            "{scale}"
        );
    }
    for offset in [".inf", ".nan"] {
        let (field, kind) = refused(rule(&format!(
            r#"{{code: temperature, value: "$.t", unit: Cel, offset: {offset}}}"#
        )));
        assert_eq!((field.as_str(), kind), ("readings[0].offset", "bad_offset"));
    }
    assert!(
        rule(r#"{code: temperature, value: "$.t", unit: Cel, scale: -0.5, offset: 0}"#).is_ok()
    );
}

#[test]
fn repeated_rules_and_rule_counts() {
    let e = yaml(
        "name: t\nversion: 1\ndevice: \"$.id\"\nreadings:\n  - {code: heart_rate, value: \"$.hr\", unit: /min}\n  - {code: spo2, value: \"$.s\", unit: \"%\"}\n  - {code: \"8867-4\", value: \"$.hr\", unit: \"{beats}/min\"}\n",
    )
    .unwrap_err();
    assert_eq!((e.field(), e.kind()), ("readings[2]", "duplicate_rule"));
    assert!(e.to_string().contains("repeats readings[0]"), "{e}");
    // The same value read per item and for the whole message is two rules.
    assert!(
        yaml("name: t\nversion: 1\ndevice: \"$.id\"\nreadings:\n  - {code: spo2, value: \"$.s\", unit: \"%\"}\n  - {code: spo2, each: \"$.b[*]\", value: \"$.s\", unit: \"%\"}\n")
            .is_ok()
    );
    assert_eq!(
        refused(yaml(
            "name: t\nversion: 1\ndevice: \"$.id\"\nreadings: []\n"
        )),
        ("readings".into(), "empty")
    );
    let limits = TemplateLimits {
        max_rules: 1,
        ..TemplateLimits::default()
    };
    let e = Template::parse_with_limits(ACME, TemplateFormat::Yaml, &limits).unwrap_err();
    assert_eq!((e.field(), e.kind()), ("readings", "too_many"));
    assert!(
        e.to_string()
            .contains("has 6 entries, more than the limit of 1"),
        "{e}"
    );
}

#[test]
fn match_rules_are_checked() {
    let hr = r#"{code: heart_rate, value: "$.hr", unit: /min}"#;
    assert_eq!(
        refused(rule_with(
            hr,
            "match: {path: \"$.m\", equals: a, one_of: [b]}\n"
        )),
        ("match[0]".into(), "bad_match_rule")
    );
    assert_eq!(
        refused(rule_with(hr, "match: {path: \"$.m\"}\n")),
        ("match[0]".into(), "bad_match_rule")
    );
    assert_eq!(
        refused(rule_with(
            hr,
            "match: [{path: \"$.m\", equals: a}, {path: \"$.n\", equals: {x: 1}}]\n"
        )),
        ("match[1].equals".into(), "bad_match_value")
    );
    assert_eq!(
        refused(rule_with(hr, "match: {path: \"$.m\", one_of: [a, [b]]}\n")),
        ("match[0].one_of[1]".into(), "bad_match_value")
    );
    assert_eq!(
        refused(rule_with(hr, "match: {path: \"$.m\", one_of: []}\n")),
        ("match[0].one_of".into(), "empty")
    );
    let many: Vec<String> = (0..33).map(|i| i.to_string()).collect();
    assert_eq!(
        refused(rule_with(
            hr,
            &format!("match: {{path: \"$.m\", one_of: [{}]}}\n", many.join(","))
        )),
        ("match[0].one_of".into(), "too_many")
    );
    let nine: Vec<String> = (0..9)
        .map(|i| format!("{{path: \"$.m{i}\", equals: 1}}"))
        .collect();
    assert_eq!(
        refused(rule_with(hr, &format!("match: [{}]\n", nine.join(", ")))),
        ("match".into(), "too_many")
    );
}

#[test]
fn device_prefixes_are_checked() {
    let with_prefix = |prefix: &str| {
        yaml(&format!(
            "name: t\nversion: 1\ndevice: {{path: \"$.id\", prefix: \"{prefix}\"}}\nreadings: [{{code: spo2, value: \"$.s\", unit: \"%\"}}]\n"
        ))
    };
    assert!(with_prefix("acme-").is_ok());
    assert_eq!(
        refused(with_prefix("ac me-")),
        ("device.prefix".into(), "bad_prefix")
    );
    assert_eq!(
        refused(with_prefix("vigil-x-")),
        ("device.prefix".into(), "reserved_prefix")
    );
    assert_eq!(
        refused(with_prefix(&"a".repeat(33))),
        ("device.prefix".into(), "too_long")
    );
}

// ---------------------------------------------------------------------------------------------
// Applying: readings.

fn hr_template() -> Template {
    rule_with(
        r#"{code: heart_rate, value: "$.hr", unit: /min}"#,
        "time: {path: \"$.t\", format: rfc3339}\n",
    )
    .unwrap()
}

#[test]
fn a_value_that_is_not_there_is_rejected_never_read_as_normal() {
    let t = hr_template();
    let m = apply(&t, r#"{"id": "d1", "t": "2026-11-22T08:00:00Z"}"#).unwrap();
    assert!(m.readings.is_empty());
    let r = only_rejection(&m);
    assert_eq!(
        r.reason,
        RejectionReason::Missing {
            field: "value",
            sent_null: false
        }
    );
    assert_eq!((r.kind(), r.pointer.as_deref()), ("missing_value", None));
    let m = apply(
        &t,
        r#"{"id": "d1", "t": "2026-11-22T08:00:00Z", "hr": null}"#,
    )
    .unwrap();
    let r = only_rejection(&m);
    assert_eq!(
        (r.pointer.as_deref(), &r.reason),
        (
            Some("/hr"),
            &RejectionReason::Missing {
                field: "value",
                sent_null: true
            }
        )
    );
    assert_eq!(
        r.to_string(),
        "readings[0] ($.hr at \"/hr\"): value is null; a reading without a value is never taken \
         as normal"
    );
}

#[test]
fn wrong_json_types_at_the_value_are_rejected() {
    let t = hr_template();
    for (sent, found) in [
        ("\"72\"", "a string"),
        ("[72]", "an array"),
        ("{\"v\": 72}", "an object"),
        ("true", "a boolean"),
    ] {
        let m = apply(
            &t,
            &format!(r#"{{"id": "d1", "t": "2026-11-22T08:00:00Z", "hr": {sent}}}"#),
        )
        .unwrap();
        assert_eq!(
            only_rejection(&m).reason,
            RejectionReason::WrongType {
                field: "value",
                expected: "a number",
                found
            }
        );
    }
}

#[test]
fn implausible_values_are_rejected_after_scaling_and_conversion() {
    let t = hr_template();
    let m = apply(
        &t,
        r#"{"id": "d1", "t": "2026-11-22T08:00:00Z", "hr": 351}"#,
    )
    .unwrap();
    assert_eq!(only_rejection(&m).kind(), "implausible_value");
    let m = apply(
        &t,
        r#"{"id": "d1", "t": "2026-11-22T08:00:00Z", "hr": 350}"#,
    )
    .unwrap();
    assert_eq!(only_value(&m), 350.0, "the range is inclusive");
    let m = apply(&t, r#"{"id": "d1", "t": "2026-11-22T08:00:00Z", "hr": -1}"#).unwrap();
    assert_eq!(only_rejection(&m).kind(), "implausible_value");

    // 1040 tenths of a degree Fahrenheit is 104 [degF], 40 Cel: plausible. 1200 is not.
    let f = rule(r#"{code: temperature, value: "$.t10", scale: 0.1, unit: "[degF]"}"#).unwrap();
    let m = apply(&f, r#"{"id": "d1", "t10": 1040}"#).unwrap();
    assert_eq!(only_value(&m), 40.0);
    assert_eq!(
        m.readings[0].quality,
        QualityFlags::CONVERTED_UNIT | QualityFlags::TIME_FROM_RECEIPT
    );
    let m = apply(&f, r#"{"id": "d1", "t10": 1200}"#).unwrap();
    let r = only_rejection(&m);
    let RejectionReason::ImplausibleValue { sent, value, .. } = &r.reason else {
        panic!("{r:?}")
    };
    assert_eq!(sent, &Some(Quantity::new(1200.0, "[degF]")));
    assert!((value - 48.888_888_888_888_89).abs() < 1e-9, "{value}");
}

#[test]
fn scale_and_offset_are_exact_decimals() {
    let t = rule(r#"{code: temperature, value: "$.t", scale: 0.1, unit: Cel}"#).unwrap();
    let m = apply(&t, r#"{"id": "d1", "t": 338}"#).unwrap();
    assert_eq!(only_value(&m), 33.8);
    // A vendor that sends hundredths above 30 Cel.
    let t =
        rule(r#"{code: temperature, value: "$.t", scale: 0.01, offset: 30, unit: Cel}"#).unwrap();
    let m = apply(&t, r#"{"id": "d1", "t": 683}"#).unwrap();
    assert_eq!(only_value(&m), 36.83);
    // Scaling alone is not a unit conversion.
    assert_eq!(m.readings[0].quality, QualityFlags::TIME_FROM_RECEIPT);
}

#[test]
fn units_from_the_message() {
    let mapped = rule(
        r#"{code: glucose, value: "$.g", unit_path: "$.u", units: {"mg/dl": "mg/dL", "mmol/l": "mmol/L"}}"#,
    )
    .unwrap();
    let m = apply(&mapped, r#"{"id": "d1", "g": 5.5, "u": "mmol/l"}"#).unwrap();
    assert_eq!(only_value(&m), 5.5 * 18.0156);
    assert_eq!(
        m.readings[0].quality,
        QualityFlags::CONVERTED_UNIT | QualityFlags::TIME_FROM_RECEIPT
    );
    // The map is exact: case matters.
    let m = apply(&mapped, r#"{"id": "d1", "g": 5.5, "u": "MMOL/L"}"#).unwrap();
    assert_eq!(only_rejection(&m).kind(), "unit_not_in_map");
    let m = apply(&mapped, r#"{"id": "d1", "g": 5.5}"#).unwrap();
    let r = only_rejection(&m);
    assert_eq!(
        (r.kind(), r.path.as_str(), &r.reason),
        (
            "missing_field",
            "$.u",
            &RejectionReason::Missing {
                field: "unit",
                sent_null: false
            }
        )
    );
    assert_eq!(
        only_rejection(&m).reason.to_string(),
        "unit is not in the message; a value is never read without its unit"
    );
    let m = apply(&mapped, r#"{"id": "d1", "g": 5.5, "u": 2}"#).unwrap();
    assert_eq!(
        only_rejection(&m).reason,
        RejectionReason::WrongType {
            field: "unit",
            expected: "a unit string",
            found: "an integer"
        }
    );
    // Without a map the string must be a UCUM unit for the measurand.
    let ucum = rule(r#"{code: glucose, value: "$.g", unit_path: "$.u"}"#).unwrap();
    let m = apply(&ucum, r#"{"id": "d1", "g": 99, "u": "mg/dL"}"#).unwrap();
    assert_eq!(only_value(&m), 99.0);
    let m = apply(&ucum, r#"{"id": "d1", "g": 99, "u": "mg/dl"}"#).unwrap();
    let r = only_rejection(&m);
    assert_eq!(
        (r.kind(), r.pointer.as_deref()),
        ("unit_mismatch", Some("/g"))
    );
}

#[test]
fn coded_values() {
    let t = rule(r#"{code: acvpu, value: "$.avpu"}"#).unwrap();
    let m = apply(&t, r#"{"id": "d1", "avpu": "C"}"#).unwrap();
    assert_eq!(
        m.readings[0].value,
        ObservationValue::Acvpu(Acvpu::NewConfusion)
    );
    let m = apply(&t, r#"{"id": "d1", "avpu": "c"}"#).unwrap();
    assert_eq!(only_rejection(&m).kind(), "invalid_coded_value");
    let m = apply(&t, r#"{"id": "d1", "avpu": 1}"#).unwrap();
    assert_eq!(only_rejection(&m).kind(), "wrong_type");

    let o2 = rule(r#"{code: o2_supplemental, value: "$.o2", unit: "mL/min"}"#).unwrap();
    let m = apply(&o2, r#"{"id": "d1", "o2": true}"#).unwrap();
    assert_eq!(m.readings[0].value, ObservationValue::OnOxygen(true));
    let m = apply(&o2, r#"{"id": "d1", "o2": 2000}"#).unwrap();
    assert_eq!(only_value(&m), 2.0);
    let m = apply(&o2, r#"{"id": "d1", "o2": "on"}"#).unwrap();
    assert_eq!(only_rejection(&m).kind(), "wrong_type");
}

#[test]
fn each_reads_items_with_their_own_times_and_pointers() {
    let t = rule(
        r#"{code: spo2, each: "$.s[*]", value: "$.v", unit: "%", time: {path: "$.t", format: epoch_s}}"#,
    )
    .unwrap();
    let m = apply(
        &t,
        r#"{"id": "d1", "s": [{"t": 1795334400, "v": 97}, {"v": 96}, {"t": 1795334460.5, "v": null}, {"t": "x", "v": 95}, {"t": 1795334520, "v": 94}]}"#,
    )
    .unwrap();
    assert_eq!(
        m.readings,
        vec![
            quantity(Measurand::Spo2, 97.0, at(8, 0, 0), none()),
            quantity(Measurand::Spo2, 94.0, at(8, 2, 0), none()),
        ]
    );
    let rejected: Vec<_> = m
        .rejected
        .iter()
        .map(|r| (r.item, r.path.as_str(), r.pointer.as_deref(), r.kind()))
        .collect();
    assert_eq!(
        rejected,
        vec![
            // The item without a time is rejected, not given another item's time.
            (Some(1), "$.t", Some("/s/1"), "missing_field"),
            (Some(2), "$.v", Some("/s/2/v"), "missing_value"),
            (Some(3), "$.t", Some("/s/3/t"), "bad_timestamp"),
        ]
    );
    // Items need not be objects: `$` is the item itself.
    let bare = rule_with(
        r#"{code: steps, each: "$.steps[-1:]", value: "$", unit: "{steps}"}"#,
        "time: {path: \"$.t\", format: epoch_ms}\n",
    )
    .unwrap();
    let m = apply(
        &bare,
        r#"{"id": "d1", "t": 1795334400000, "steps": [10, 20, 30]}"#,
    )
    .unwrap();
    assert_eq!(only_value(&m), 30.0);
    assert_eq!(m.readings[0].effective, at(8, 0, 0));
}

#[test]
fn a_second_reading_of_a_measurand_at_one_time_is_a_duplicate() {
    let t = yaml(
        "name: t\nversion: 1\ndevice: \"$.id\"\ntime: {path: \"$.t\", format: epoch_ms}\nreadings:\n  - {code: heart_rate, value: \"$.hr\", unit: /min}\n  - {code: heart_rate, value: \"$.pulse\", unit: /min}\n",
    )
    .unwrap();
    let m = apply(
        &t,
        r#"{"id": "d1", "t": 1795334400000, "hr": 72, "pulse": 70}"#,
    )
    .unwrap();
    assert_eq!(only_value(&m), 72.0);
    let r = only_rejection(&m);
    assert_eq!(
        r.reason,
        RejectionReason::Duplicate {
            measurand: Measurand::HeartRate,
            effective: at(8, 0, 0),
            first: "readings[0]".into()
        }
    );
    assert_eq!(r.rule, RuleRef::Reading(1));
}

#[test]
fn battery() {
    let t = rule_with(
        r#"{code: heart_rate, value: "$.hr", unit: /min}"#,
        "battery: {path: \"$.b\"}\n",
    )
    .unwrap();
    let battery = |b: &str| {
        let m = apply(&t, &format!(r#"{{"id": "d1", "hr": 60{b}}}"#)).unwrap();
        assert_eq!(m.readings.len(), 1, "a bad battery never costs a reading");
        (
            m.battery_pct,
            m.rejected.first().map(Rejection::kind),
            m.skipped.first().map(Rejection::kind),
        )
    };
    assert_eq!(battery(r#", "b": 87"#), (Some(87), None, None));
    assert_eq!(battery(r#", "b": 87.0"#), (Some(87), None, None));
    assert_eq!(battery(r#", "b": 0"#), (Some(0), None, None));
    assert_eq!(battery(r#", "b": 100"#), (Some(100), None, None));
    assert_eq!(
        battery(r#", "b": 87.5"#),
        (None, Some("battery_out_of_range"), None)
    );
    assert_eq!(
        battery(r#", "b": 101"#),
        (None, Some("battery_out_of_range"), None)
    );
    assert_eq!(
        battery(r#", "b": -1"#),
        (None, Some("battery_out_of_range"), None)
    );
    assert_eq!(battery(r#", "b": "87""#), (None, Some("wrong_type"), None));
    assert_eq!(
        battery(r#", "b": null"#),
        (None, None, Some("missing_field"))
    );
    assert_eq!(battery(""), (None, None, Some("missing_field")));
}

// ---------------------------------------------------------------------------------------------
// Applying: times.

#[test]
fn without_a_time_readings_take_the_time_of_receipt_flagged() {
    let t = rule(r#"{code: heart_rate, value: "$.hr", unit: /min}"#).unwrap();
    let m = apply(&t, r#"{"id": "d1", "hr": 72}"#).unwrap();
    assert_eq!(m.readings[0].effective, received());
    assert_eq!(m.readings[0].quality, QualityFlags::TIME_FROM_RECEIPT);
}

#[test]
fn each_time_format() {
    let fmt = |format: &str, raw: &str| {
        let t = rule_with(
            r#"{code: heart_rate, value: "$.hr", unit: /min}"#,
            &format!("time: {{path: \"$.t\", format: {format}}}\n"),
        )
        .unwrap();
        apply(&t, &format!(r#"{{"id": "d1", "hr": 72, "t": {raw}}}"#))
            .map(|m| m.readings[0].effective)
    };
    let t0 = at(8, 0, 0);
    assert_eq!(fmt("rfc3339", "\"2026-11-22T09:00:00+01:00\""), Ok(t0));
    assert_eq!(
        fmt("rfc3339", "\"2026-11-22T08:00:00.123456Z\""),
        Ok(t0 + Duration::microseconds(123_456))
    );
    assert_eq!(fmt("epoch_ms", "1795334400000"), Ok(t0));
    assert_eq!(fmt("epoch_s", "1795334400"), Ok(t0));
    assert_eq!(fmt("epoch_s", "1795334399.9996"), Ok(t0));
    assert_eq!(fmt("epoch_s", "1.7953344e9"), Ok(t0));

    let bad = |format: &str, raw: &str| match fmt(format, raw) {
        Err(TemplateApplyError::BadTime { error, path }) => {
            assert_eq!(path, "$.t");
            error
        }
        other => panic!("{format} {raw}: {other:?}"),
    };
    assert!(matches!(
        bad("rfc3339", "\"yesterday\""),
        TimeError::NotRfc3339 { .. }
    ));
    assert!(matches!(
        bad("rfc3339", "\"2026-11-22 08:00:00\""),
        TimeError::NotRfc3339 { .. }
    ));
    assert_eq!(
        bad("rfc3339", "1795334400000"),
        TimeError::WrongType {
            format: TimeFormat::Rfc3339,
            found: "an integer"
        }
    );
    assert_eq!(
        bad("epoch_ms", "1795334400000.5"),
        TimeError::WrongType {
            format: TimeFormat::EpochMs,
            found: "a number with a fraction or exponent"
        }
    );
    assert_eq!(
        bad("epoch_ms", "\"1795334400000\""),
        TimeError::WrongType {
            format: TimeFormat::EpochMs,
            found: "a string"
        }
    );
    assert!(matches!(
        bad("epoch_ms", "-1"),
        TimeError::OutOfRange { .. }
    ));
    assert!(matches!(
        bad("epoch_ms", "253402300800000"),
        TimeError::OutOfRange { .. }
    ));
    assert!(matches!(
        bad("epoch_ms", "18446744073709551615"),
        TimeError::OutOfRange { .. }
    ));
    assert!(matches!(
        bad("epoch_s", "-0.5"),
        TimeError::OutOfRange { .. }
    ));
    assert!(matches!(
        bad("epoch_s", "1e300"),
        TimeError::OutOfRange { .. }
    ));
    assert!(matches!(
        bad("rfc3339", "\"1969-12-31T23:59:59Z\""),
        TimeError::OutOfRange { .. }
    ));
    assert_eq!(
        bad("epoch_s", "true").to_string(),
        "format epoch_s expects a number of seconds since 1970-01-01T00:00:00Z, but a boolean was \
         sent"
    );
}

#[test]
fn the_template_time_must_be_there_when_named() {
    let t = hr_template();
    let e = apply(&t, r#"{"id": "d1", "hr": 72}"#).unwrap_err();
    assert_eq!(
        e,
        TemplateApplyError::MissingTime {
            path: "$.t".into(),
            sent_null: false
        }
    );
    assert_eq!(e.kind(), "missing_timestamp");
    let e = apply(&t, r#"{"id": "d1", "hr": 72, "t": null}"#).unwrap_err();
    assert_eq!(e.kind(), "missing_timestamp");
}

#[test]
fn times_too_far_ahead_of_receipt_are_rejected_one_by_one() {
    let t = rule_with(
        r#"{code: spo2, each: "$.s[*]", value: "$.v", unit: "%", time: {path: "$.t", format: rfc3339}}"#,
        "time: {path: \"$.t\", format: rfc3339}\n",
    )
    .unwrap();
    // Received 08:00:30Z; five minutes ahead is accepted, a millisecond more is not.
    let m = apply(
        &t,
        r#"{"id": "d1", "t": "2026-11-22T08:00:00Z", "s": [{"t": "2026-11-22T08:05:30Z", "v": 97}, {"t": "2026-11-22T08:05:30.001Z", "v": 96}]}"#,
    )
    .unwrap();
    assert_eq!(only_value(&m), 97.0);
    let r = only_rejection(&m);
    assert_eq!(
        (r.kind(), r.item, r.path.as_str(), r.pointer.as_deref()),
        ("future_timestamp", Some(1), "$.t", Some("/s/1/v"))
    );
    assert!(
        r.to_string()
            .contains("is 300.001 s after the time of receipt"),
        "{r}"
    );
    // A message-level time ahead rejects each reading that takes it.
    let hr = hr_template();
    let m = apply(
        &hr,
        r#"{"id": "d1", "t": "2026-11-22T09:00:00Z", "hr": 72}"#,
    )
    .unwrap();
    assert_eq!(only_rejection(&m).kind(), "future_timestamp");
    assert!(m.readings.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Applying: whole-message refusals.

#[test]
fn the_device_id_must_be_there_and_valid() {
    let t = rule(r#"{code: heart_rate, value: "$.hr", unit: /min}"#).unwrap();
    let kind = |msg: &str| apply(&t, msg).unwrap_err().kind();
    assert_eq!(kind(r#"{"hr": 72}"#), "missing_device");
    assert_eq!(kind(r#"{"id": null, "hr": 72}"#), "missing_device");
    assert_eq!(kind(r#"{"id": true, "hr": 72}"#), "device_wrong_type");
    assert_eq!(kind(r#"{"id": -3, "hr": 72}"#), "device_wrong_type");
    assert_eq!(kind(r#"{"id": 1.5, "hr": 72}"#), "device_wrong_type");
    assert_eq!(
        kind(r#"{"id": "vigil-news2", "hr": 72}"#),
        "reserved_device"
    );
    let e = apply(&t, r#"{"id": "AB 12", "hr": 72}"#).unwrap_err();
    assert_eq!(
        e,
        TemplateApplyError::InvalidDevice {
            id: "AB 12".into(),
            error: IdError::BadCharacter(' ')
        }
    );
    assert_eq!(e.kind(), "invalid_device");
    assert_eq!(
        apply(&t, r#"{"id": 123456, "hr": 72}"#)
            .unwrap()
            .device
            .as_str(),
        "123456"
    );
    // The prefix counts towards the 64 characters.
    let prefixed = yaml(
        "name: t\nversion: 1\ndevice: {path: \"$.id\", prefix: abc-}\nreadings: [{code: spo2, value: \"$.s\", unit: \"%\"}]\n",
    )
    .unwrap();
    let e = apply(
        &prefixed,
        &format!(r#"{{"id": "{}", "s": 97}}"#, "x".repeat(61)),
    )
    .unwrap_err();
    assert_eq!(
        e,
        TemplateApplyError::InvalidDevice {
            // Cut to 64 bytes when quoted back.
            id: format!("abc-{}…", "x".repeat(60)),
            error: IdError::TooLong(65)
        }
    );
}

#[test]
fn a_message_that_fails_a_match_rule_is_refused() {
    let t = rule_with(
        r#"{code: heart_rate, value: "$.hr", unit: /min}"#,
        "match: [{path: \"$.type\", equals: vitals}, {path: \"$.schema\", one_of: [2, 3]}]\n",
    )
    .unwrap();
    assert!(apply(&t, r#"{"type": "vitals", "schema": 2, "id": "d", "hr": 1}"#).is_ok());
    // Numbers compare by value.
    assert!(
        apply(
            &t,
            r#"{"type": "vitals", "schema": 3.0, "id": "d", "hr": 1}"#
        )
        .is_ok()
    );
    let e = apply(&t, r#"{"type": "status", "schema": 2, "id": "d", "hr": 1}"#).unwrap_err();
    assert_eq!(
        e,
        TemplateApplyError::NotMatched {
            rule: 0,
            path: "$.type".into(),
            found: Some("\"status\"".into()),
            expected: "\"vitals\"".into()
        }
    );
    assert_eq!(e.kind(), "not_matched");
    let e = apply(&t, r#"{"type": "vitals", "id": "d", "hr": 1}"#).unwrap_err();
    assert_eq!(
        e.to_string(),
        "the message does not match the template: match[1] ($.schema) found nothing; expected \
         one of 2, 3"
    );
    // YAML scalars follow the 1.2 core schema: `no` and `on` are strings, not booleans.
    let yes_no = rule_with(
        r#"{code: heart_rate, value: "$.hr", unit: /min}"#,
        "match: [{path: \"$.a\", equals: no}, {path: \"$.b\", equals: on}]\n",
    )
    .unwrap();
    assert!(apply(&yes_no, r#"{"a": "no", "b": "on", "id": "d", "hr": 1}"#).is_ok());
    assert!(apply(&yes_no, r#"{"a": false, "b": "on", "id": "d", "hr": 1}"#).is_err());
    // Strings never equal numbers.
    let e = apply(
        &t,
        r#"{"type": "vitals", "schema": "2", "id": "d", "hr": 1}"#,
    )
    .unwrap_err();
    assert_eq!(e.kind(), "not_matched");
}

#[test]
fn messages_that_are_not_json_or_too_large_are_refused() {
    let t = hr_template();
    let kind = |bytes: &[u8]| {
        t.apply(bytes, received(), &DecodeLimits::default())
            .unwrap_err()
            .kind()
    };
    assert_eq!(kind(b"{\"id\": \"d1\""), "not_json");
    assert_eq!(kind(b""), "not_json");
    assert_eq!(kind(b"{\"id\": \"d1\"} {}"), "not_json");
    assert_eq!(kind(b"\xff{}"), "not_utf8");
    assert_eq!(kind("[".repeat(500).as_bytes()), "not_json");
    let e = t
        .apply(
            br#"{"id": "d1", "hr": 72, "hr": 73}"#,
            received(),
            &DecodeLimits::default(),
        )
        .unwrap_err();
    assert_eq!(
        e,
        TemplateApplyError::DuplicateMember {
            name: "hr".into(),
            line: 1,
            column: 27
        }
    );
    let small = DecodeLimits {
        max_bytes: 10,
        ..DecodeLimits::default()
    };
    let e = t
        .apply(br#"{"id": "d1", "hr": 72}"#, received(), &small)
        .unwrap_err();
    assert_eq!(e.kind(), "too_large");
    // A message that is not an object is JSON; the paths just find nothing in it.
    assert_eq!(kind(b"[1, 2]"), "missing_device");
}

#[test]
fn items_are_counted_before_any_reading_is_made() {
    let t = rule(r#"{code: spo2, each: "$.s[*]", value: "$", unit: "%"}"#).unwrap();
    let limits = DecodeLimits {
        max_readings: 3,
        ..DecodeLimits::default()
    };
    let ok = t.apply(br#"{"id": "d", "s": [97, 96, 95]}"#, received(), &limits);
    // Three items at one time: the first is kept, the rest are duplicates.
    assert_eq!(ok.unwrap().rejected.len(), 2);
    let e = t
        .apply(
            br#"{"id": "d", "s": [97, 96, 95, 94]}"#,
            received(),
            &limits,
        )
        .unwrap_err();
    assert_eq!(e, TemplateApplyError::TooManyItems { count: 4, max: 3 });
}

// ---------------------------------------------------------------------------------------------
// The dry run.

#[test]
fn a_dry_run_explains_every_value() {
    let t = json(HOMEHUB).unwrap();
    let d = t.dry_run(
        HOMEHUB_SAMPLE_2.as_bytes(),
        at(19, 10, 0),
        &DecodeLimits::default(),
    );
    assert!(d.matched && d.refused.is_none());
    assert_eq!(d.device.as_deref(), Some("homehub-HH-7731"));
    assert_eq!(d.readings.len(), 5);
    assert_eq!(d.observations, 4);
    let sys = &d.readings[0];
    assert_eq!(
        (
            sys.rule.as_str(),
            sys.item,
            sys.code,
            sys.loinc,
            sys.pointer.as_str(),
            sys.sent_unit.as_deref(),
            sys.unit,
            sys.time.as_str(),
            sys.time_from,
            sys.quality.as_slice()
        ),
        (
            "readings[0]",
            Some(0),
            "systolic_bp",
            "8480-6",
            "/measurements/0/sys/v",
            Some("kPa"),
            Some("mm[Hg]"),
            "2026-11-22T19:02:00Z",
            "reading",
            ["converted-unit"].as_slice()
        )
    );
    assert_eq!(sys.sent, serde_json::json!(16.4));
    assert_eq!(sys.value, serde_json::json!(16.4 * MMHG_PER_KPA));
    assert_eq!(d.rejected.len(), 1);
    assert_eq!(d.rejected[0].kind, "unit_not_in_map");
    assert!(
        d.notes.iter().any(|n| n
            == "systolic_bp, diastolic_bp at 2026-11-22T19:02:00Z form one blood_pressure panel"),
        "{:?}",
        d.notes
    );
    assert_eq!(
        d.notes.last().map(String::as_str),
        Some("5 value(s) accepted as 4 observation(s), 1 rejected, 2 skipped")
    );

    let v = serde_json::to_value(&d).unwrap();
    assert_eq!(v["template"], "homehub");
    assert_eq!(v["readings"][4]["code"], "weight");
    assert_eq!(v["readings"][4]["time"], "2026-11-22T19:00:00.250Z");
    assert_eq!(v["rejected"][0]["pointer"], "/measurements/1/sys/u");
    assert_eq!(v["skipped"][1]["rule"], "battery");
    assert!(v.get("refused").is_none());
}

#[test]
fn a_dry_run_shows_scaled_values_and_refusals() {
    let t = yaml(ACME).unwrap();
    let d = t.dry_run(ACME_SAMPLE.as_bytes(), received(), &DecodeLimits::default());
    let temp = &d.readings[2];
    assert_eq!(
        (temp.code, &temp.sent, temp.computed, &temp.value),
        (
            "temperature",
            &serde_json::json!(368),
            Some(36.8),
            &serde_json::json!(36.8)
        )
    );
    assert_eq!(d.message_time.as_deref(), Some("2026-11-22T08:00:00Z"));
    assert_eq!(d.battery_pct, Some(81));

    let d = t.dry_run(
        br#"{"model": "AcmeBand-3", "serial": "x"}"#,
        received(),
        &DecodeLimits::default(),
    );
    assert!(!d.matched);
    assert_eq!(d.refused.as_ref().map(|r| r.kind), Some("not_matched"));
    assert!(d.readings.is_empty() && d.device.is_none());
    let d = t.dry_run(b"not json", received(), &DecodeLimits::default());
    assert_eq!(
        (d.matched, d.refused.as_ref().map(|r| r.kind)),
        (false, Some("not_json"))
    );
    // Recognised, but refused for its device id.
    let d = t.dry_run(
        br#"{"model": "AcmeBand-2", "serial": "a/b", "ts": 0}"#,
        received(),
        &DecodeLimits::default(),
    );
    assert_eq!(
        (d.matched, d.refused.as_ref().map(|r| r.kind)),
        (true, Some("invalid_device"))
    );
    let v = serde_json::to_value(&d).unwrap();
    assert_eq!(v["refused"]["kind"], "invalid_device");
}

#[test]
fn every_kind_is_a_stable_label() {
    let labels = [
        TemplateApplyError::TooManyItems { count: 1, max: 0 }.kind(),
        RejectionReason::NoItems.kind(),
        TemplateProblem::Empty.kind(),
    ];
    for label in labels {
        assert!(
            label.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "{label}"
        );
    }
}

#[test]
fn templates_and_results_can_cross_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Template>();
    send_sync::<Mapped>();
    send_sync::<DryRun>();
    send_sync::<TemplateError>();
    send_sync::<TemplateApplyError>();
}
