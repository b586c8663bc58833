//! Observation and Bundle input: round trips with `observation_to_fhir`, PHD-gateway examples,
//! every refusal with the element it names, and batch vs transaction semantics.

use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;
use serde_json::{Value, json};
use vigil_model::{
    AbsentReason, Acvpu, DeviceEvent, DeviceId, Instant, Measurand, Observation, ObservationCode,
    ObservationComponent, ObservationId, ObservationStatus, ObservationValue, PatientId,
    QualityFlags, Quantity, Reading,
};

use super::*;
use crate::common::{LOINC, MDC, OBSERVATION_CATEGORY, SYSTEM_CODE, UCUM};
use crate::{IssueLocation, IssueType, observation_to_fhir};

// ---------------------------------------------------------------- helpers

fn t0() -> Instant {
    Utc.with_ymd_and_hms(2026, 11, 21, 10, 0, 0).unwrap()
}

fn stored(code: ObservationCode, value: ObservationValue) -> Observation {
    Observation {
        id: ObservationId(42),
        patient: PatientId::new("p-1").unwrap(),
        device: DeviceId::new("mon-1").unwrap(),
        code,
        value,
        effective: t0() + Duration::milliseconds(123),
        received: t0() + Duration::seconds(2),
        status: ObservationStatus::Final,
        quality: QualityFlags::empty(),
    }
}

fn single(m: Measurand, v: f64) -> Observation {
    stored(
        ObservationCode::Single(m),
        ObservationValue::Quantity(Quantity::new(v, m.canonical_unit())),
    )
}

fn panel(parts: &[(Measurand, f64)]) -> Observation {
    stored(
        ObservationCode::BloodPressure,
        ObservationValue::Components(
            parts
                .iter()
                .map(|(m, v)| ObservationComponent {
                    measurand: *m,
                    value: Quantity::new(*v, "mm[Hg]"),
                })
                .collect(),
        ),
    )
}

fn reading_of(o: &Observation) -> Reading {
    Reading {
        code: o.code,
        value: o.value.clone(),
        effective: o.effective,
        status: o.status,
        quality: o.quality,
    }
}

fn bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

fn parse(v: &Value) -> Result<ObservationInput, FhirError> {
    observation_from_fhir(&bytes(v), &InputLimits::default())
}

/// Writes the observation as FHIR, reads it back through bytes, and checks it is the same.
fn assert_round_trip(o: &Observation) {
    let fhir = observation_to_fhir(o);
    let input = parse(&fhir).unwrap_or_else(|e| panic!("{e}\n{fhir:#}"));
    assert_eq!(input.reading, reading_of(o), "{fhir:#}");
    assert_eq!(input.subject, o.patient);
    assert_eq!(input.device.as_ref(), Some(&o.device));
    assert_eq!(input.identifier, None);
    assert!(
        input.notes.is_empty(),
        "Vigil's own output meets what it claims: {:?}",
        input.notes
    );
}

fn vs_category() -> Value {
    json!([{ "coding": [{ "system": OBSERVATION_CATEGORY, "code": "vital-signs" }] }])
}

/// A heart rate as a minimal valid vital sign.
fn base() -> Value {
    json!({
        "resourceType": "Observation",
        "status": "final",
        "category": vs_category(),
        "code": { "coding": [{ "system": LOINC, "code": "8867-4" }] },
        "subject": { "reference": "Patient/p-1" },
        "effectiveDateTime": "2026-11-21T10:00:00Z",
        "valueQuantity": { "value": 72, "unit": "beats/minute", "system": UCUM, "code": "/min" },
    })
}

fn bp_base() -> Value {
    let part = |loinc: &str, v: f64| {
        json!({
            "code": { "coding": [{ "system": LOINC, "code": loinc }] },
            "valueQuantity": { "value": v, "unit": "mmHg", "system": UCUM, "code": "mm[Hg]" },
        })
    };
    let mut v = base();
    v.as_object_mut().unwrap().remove("valueQuantity");
    v["code"] = json!({ "coding": [{ "system": LOINC, "code": "85354-9" }] });
    v["component"] = json!([part("8480-6", 128.0), part("8462-4", 80.0)]);
    v
}

fn with(mut v: Value, edit: impl FnOnce(&mut Value)) -> Value {
    edit(&mut v);
    v
}

fn without(mut v: Value, key: &str) -> Value {
    v.as_object_mut().unwrap().remove(key);
    v
}

fn path_of(e: &FhirError) -> String {
    match e.location() {
        Some(IssueLocation::Expression(p)) => p,
        other => panic!("no expression for {e:?}: {other:?}"),
    }
}

fn refused(v: &Value) -> FhirError {
    match parse(v) {
        Ok(input) => panic!("accepted {v:#}\n→ {input:?}"),
        Err(e) => e,
    }
}

// ---------------------------------------------------------------- round trips

#[test]
fn every_quantity_reading_round_trips() {
    for m in Measurand::ALL {
        if m.is_bp_component() || m == Measurand::Consciousness {
            continue;
        }
        let range = m.plausible();
        for v in [range.min, (range.min + range.max) / 3.0, range.max] {
            assert_round_trip(&single(m, v));
        }
    }
}

#[test]
fn blood_pressure_panels_round_trip_in_any_order_and_at_full_precision() {
    assert_round_trip(&panel(&[
        (Measurand::SystolicBp, 128.0),
        (Measurand::DiastolicBp, 80.0),
        (Measurand::MeanBp, 96.0),
    ]));
    assert_round_trip(&panel(&[(Measurand::SystolicBp, 128.0)]));
    assert_round_trip(&panel(&[
        (Measurand::MeanBp, 96.5),
        (Measurand::DiastolicBp, 80.0),
    ]));
    // A value converted from kPa keeps all its digits through JSON.
    let mut converted = panel(&[
        (Measurand::SystolicBp, 16_000.0 / 133.322_387_415),
        (Measurand::DiastolicBp, 10_700.0 / 133.322_387_415),
    ]);
    converted.quality = QualityFlags::CONVERTED_UNIT;
    assert_round_trip(&converted);
}

#[test]
fn coded_boolean_event_and_absent_readings_round_trip() {
    for level in Acvpu::ALL {
        assert_round_trip(&stored(
            ObservationCode::Single(Measurand::Consciousness),
            ObservationValue::Acvpu(level),
        ));
    }
    for on in [true, false] {
        assert_round_trip(&stored(
            ObservationCode::Single(Measurand::SupplementalOxygen),
            ObservationValue::OnOxygen(on),
        ));
    }
    for event in DeviceEvent::ALL {
        assert_round_trip(&stored(
            ObservationCode::Event(event),
            ObservationValue::Detected,
        ));
    }
    for reason in [AbsentReason::SensorOff, AbsentReason::NotObtained] {
        for code in [
            ObservationCode::Single(Measurand::Spo2),
            ObservationCode::BloodPressure,
            ObservationCode::Single(Measurand::Glucose),
        ] {
            assert_round_trip(&stored(code, ObservationValue::Absent(reason)));
        }
    }
}

#[test]
fn statuses_and_quality_flags_round_trip() {
    for status in [
        ObservationStatus::Preliminary,
        ObservationStatus::Final,
        ObservationStatus::Amended,
        ObservationStatus::Corrected,
        ObservationStatus::Unknown,
    ] {
        let mut o = single(Measurand::Temperature, 37.2);
        o.status = status;
        o.quality = QualityFlags::from_bits_truncate(0b1111);
        assert_round_trip(&o);
    }
}

#[test]
fn round_trip_finds_a_changed_reading() {
    // The round-trip check itself can fail: a different reading does not compare equal.
    let o = single(Measurand::HeartRate, 72.0);
    let mut fhir = observation_to_fhir(&o);
    fhir["valueQuantity"]["value"] = json!(73);
    assert_ne!(parse(&fhir).unwrap().reading, reading_of(&o));
}

fn result_status() -> impl Strategy<Value = ObservationStatus> {
    prop::sample::select(vec![
        ObservationStatus::Preliminary,
        ObservationStatus::Final,
        ObservationStatus::Amended,
        ObservationStatus::Corrected,
        ObservationStatus::Unknown,
    ])
}

fn device_reading() -> impl Strategy<Value = (ObservationCode, ObservationValue)> {
    let quantity_measurands: Vec<Measurand> = Measurand::ALL
        .into_iter()
        .filter(|m| !m.is_bp_component() && *m != Measurand::Consciousness)
        .collect();
    let quantity = prop::sample::select(quantity_measurands)
        .prop_flat_map(|m| {
            let r = m.plausible();
            (Just(m), r.min..=r.max)
        })
        .prop_map(|(m, v)| {
            (
                ObservationCode::Single(m),
                ObservationValue::Quantity(Quantity::new(v, m.canonical_unit())),
            )
        });
    let bp = prop::sample::subsequence(
        vec![
            Measurand::SystolicBp,
            Measurand::DiastolicBp,
            Measurand::MeanBp,
        ],
        1..=3,
    )
    .prop_shuffle()
    .prop_flat_map(|parts| {
        let values: Vec<_> = parts
            .iter()
            .map(|m| m.plausible().min..=m.plausible().max)
            .collect();
        (Just(parts), values)
    })
    .prop_map(|(parts, values)| {
        let components = parts
            .into_iter()
            .zip(values)
            .map(|(measurand, v)| ObservationComponent {
                measurand,
                value: Quantity::new(v, "mm[Hg]"),
            })
            .collect();
        (
            ObservationCode::BloodPressure,
            ObservationValue::Components(components),
        )
    });
    let acvpu = prop::sample::select(Acvpu::ALL.to_vec()).prop_map(|a| {
        (
            ObservationCode::Single(Measurand::Consciousness),
            ObservationValue::Acvpu(a),
        )
    });
    let oxygen = any::<bool>().prop_map(|on| {
        (
            ObservationCode::Single(Measurand::SupplementalOxygen),
            ObservationValue::OnOxygen(on),
        )
    });
    let absent = (
        prop::sample::select(ObservationCode::all().collect::<Vec<_>>()),
        prop::sample::select(vec![AbsentReason::SensorOff, AbsentReason::NotObtained]),
    )
        .prop_filter("NEWS2 is Vigil's own", |(c, _)| {
            *c != ObservationCode::News2
        })
        .prop_map(|(c, r)| (c, ObservationValue::Absent(r)));
    prop_oneof![4 => quantity, 2 => bp, 1 => acvpu, 1 => oxygen, 1 => absent]
}

proptest! {
    /// Every device reading Vigil writes reads back as the same reading (effective times at the
    /// millisecond precision Vigil writes).
    #[test]
    fn any_device_reading_round_trips(
        (code, value) in device_reading(),
        status in result_status(),
        bits in 0u16..16,
        millis in 0i64..4_102_444_800_000,
    ) {
        let mut o = stored(code, value);
        o.status = status;
        o.quality = QualityFlags::from_bits_truncate(bits);
        o.effective = DateTime::from_timestamp_millis(millis).unwrap();
        let fhir = observation_to_fhir(&o);
        let input = parse(&fhir).map_err(|e| TestCaseError::fail(format!("{e}\n{fhir}")))?;
        prop_assert_eq!(input.reading, reading_of(&o));
    }

    /// Arbitrary JSON-ish edits of a valid Observation never panic, and whatever is accepted is
    /// canonical and plausible.
    #[test]
    fn accepted_values_are_canonical_and_plausible(
        value in -1e6f64..1e6,
        unit in prop::sample::select(vec!["/min", "%", "Cel", "[degF]", "K", "kg", "[lb_av]", "g",
            "cm", "m", "[in_i]", "mg/dL", "mmol/L", "mm[Hg]", "kPa", "{steps}", "L/min", "x"]),
        code in prop::sample::select(vec!["8867-4", "9279-1", "59408-5", "2708-6", "8310-5",
            "29463-7", "8302-2", "2339-0", "15074-8", "55423-8", "8480-6", "3151-8"]),
    ) {
        let v = with(base(), |v| {
            v["code"]["coding"][0]["code"] = json!(code);
            v["valueQuantity"] = json!({ "value": value, "system": UCUM, "code": unit });
        });
        if let Ok(input) = parse(&v) {
            assert_canonical(&input.reading);
        }
    }
}

/// What every accepted reading satisfies: canonical units, plausible values.
fn assert_canonical(r: &Reading) {
    let parts: Vec<(Measurand, &Quantity)> = match (&r.code, &r.value) {
        (ObservationCode::Single(m), ObservationValue::Quantity(q)) => vec![(*m, q)],
        (ObservationCode::BloodPressure, ObservationValue::Components(c)) => {
            assert!(!c.is_empty());
            c.iter().map(|c| (c.measurand, &c.value)).collect()
        }
        (_, ObservationValue::Quantity(_) | ObservationValue::Components(_)) => {
            panic!("code and value disagree: {r:?}")
        }
        _ => Vec::new(),
    };
    for (m, q) in parts {
        assert_eq!(q.unit, m.canonical_unit());
        let range = m.plausible();
        assert!(q.value >= range.min && q.value <= range.max, "{r:?}");
    }
}

// ---------------------------------------------------------------- what is accepted

#[test]
fn a_minimal_vital_sign_is_read() {
    let input = parse(&base()).unwrap();
    assert_eq!(input.subject, PatientId::new("p-1").unwrap());
    assert_eq!(input.device, None);
    assert_eq!(
        input.reading,
        Reading {
            code: ObservationCode::Single(Measurand::HeartRate),
            value: ObservationValue::Quantity(Quantity::new(72.0, "/min")),
            effective: t0(),
            status: ObservationStatus::Final,
            quality: QualityFlags::empty(),
        }
    );
    assert!(input.notes.is_empty());
}

#[test]
fn units_are_converted_exactly_and_flagged() {
    let v = with(base(), |v| {
        v["code"]["coding"][0]["code"] = json!("8310-5");
        v["valueQuantity"] =
            json!({ "value": 98.6, "unit": "°F", "system": UCUM, "code": "[degF]" });
    });
    let r = parse(&v).unwrap().reading;
    let ObservationValue::Quantity(q) = &r.value else {
        panic!("{r:?}")
    };
    assert!((q.value - 37.0).abs() < 1e-9, "{}", q.value);
    assert_eq!(q.unit, "Cel");
    assert_eq!(r.quality, QualityFlags::CONVERTED_UNIT);

    let kpa = with(bp_base(), |v| {
        v["component"][0]["valueQuantity"] = json!({ "value": 16, "system": UCUM, "code": "kPa" });
    });
    let r = parse(&kpa).unwrap().reading;
    let ObservationValue::Components(parts) = &r.value else {
        panic!("{r:?}")
    };
    assert!((parts[0].value.value - 120.009_852_135_3).abs() < 1e-9);
    assert_eq!(parts[0].value.unit, "mm[Hg]");
    assert!(r.quality.contains(QualityFlags::CONVERTED_UNIT));

    // A synonym of the canonical unit is not a conversion.
    let beats = with(base(), |v| {
        v["valueQuantity"]["code"] = json!("{beats}/min")
    });
    assert_eq!(
        parse(&beats).unwrap().reading.quality,
        QualityFlags::empty()
    );
}

#[test]
fn both_spo2_loinc_codes_and_the_mdc_code_are_spo2() {
    for (system, code) in [
        (LOINC, "59408-5"),
        (LOINC, "2708-6"),
        (MDC, "150456"),
        (SYSTEM_CODE, "spo2"),
    ] {
        let v = with(base(), |v| {
            v["code"] = json!({ "coding": [{ "system": system, "code": code }] });
            v["valueQuantity"] = json!({ "value": 97, "system": UCUM, "code": "%" });
        });
        let input = parse(&v).unwrap();
        assert_eq!(
            input.reading.code,
            ObservationCode::Single(Measurand::Spo2),
            "{code}"
        );
        assert_eq!(input.notes.len(), usize::from(system != LOINC), "{code}");
    }
}

#[test]
fn every_single_measurand_is_accepted_under_its_loinc_code() {
    let cases = [
        ("8867-4", "/min", 72.0, Measurand::HeartRate),
        ("9279-1", "/min", 16.0, Measurand::RespRate),
        ("8310-5", "Cel", 37.0, Measurand::Temperature),
        ("2339-0", "mg/dL", 99.0, Measurand::Glucose),
        ("15074-8", "mmol/L", 5.5, Measurand::Glucose),
        ("29463-7", "kg", 70.0, Measurand::Weight),
        ("8302-2", "cm", 175.0, Measurand::Height),
        ("55423-8", "{steps}", 1200.0, Measurand::Steps),
        ("3151-8", "L/min", 2.0, Measurand::SupplementalOxygen),
    ];
    for (loinc, unit, value, m) in cases {
        let v = with(base(), |v| {
            v["code"]["coding"][0]["code"] = json!(loinc);
            v["valueQuantity"] = json!({ "value": value, "system": UCUM, "code": unit });
        });
        let r = parse(&v).unwrap().reading;
        assert_eq!(r.code, ObservationCode::Single(m), "{loinc}");
        let ObservationValue::Quantity(q) = &r.value else {
            panic!("{r:?}")
        };
        assert_eq!(q.unit, m.canonical_unit(), "{loinc}");
    }
}

#[test]
fn acvpu_and_on_oxygen_are_read() {
    let v = with(without(base(), "valueQuantity"), |v| {
        v["category"] = json!([{ "coding": [{ "system": OBSERVATION_CATEGORY, "code": "exam" }] }]);
        v["code"] = json!({ "coding": [{ "system": LOINC, "code": "67775-7" }] });
        v["valueCodeableConcept"] =
            json!({ "coding": [{ "system": "urn:vigil:acvpu", "code": "C" }] });
    });
    assert_eq!(
        parse(&v).unwrap().reading.value,
        ObservationValue::Acvpu(Acvpu::NewConfusion)
    );
    let v = with(without(base(), "valueQuantity"), |v| {
        v["code"] = json!({ "coding": [{ "system": SYSTEM_CODE, "code": "o2_supplemental" }] });
        v["valueBoolean"] = json!(true);
    });
    let input = parse(&v).unwrap();
    assert_eq!(input.reading.value, ObservationValue::OnOxygen(true));
    assert!(input.notes.is_empty(), "LOINC has no code for it");
}

#[test]
fn data_absent_reason_is_never_a_number() {
    let v = with(without(base(), "valueQuantity"), |v| {
        v["dataAbsentReason"] = json!({ "coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/data-absent-reason",
            "code": "not-a-number",
        }] });
    });
    assert_eq!(
        parse(&v).unwrap().reading.value,
        ObservationValue::Absent(AbsentReason::NotObtained)
    );
    // A panel whose every part is absent (vs-3) is absent.
    let v = with(bp_base(), |v| {
        for i in 0..2 {
            let part = v["component"][i].as_object_mut().unwrap();
            part.remove("valueQuantity");
            part.insert("dataAbsentReason".into(), json!({ "text": "cuff error" }));
        }
    });
    let r = parse(&v).unwrap().reading;
    assert_eq!(r.code, ObservationCode::BloodPressure);
    assert_eq!(r.value, ObservationValue::Absent(AbsentReason::NotObtained));
    // One absent part is left out.
    let v = with(bp_base(), |v| {
        let part = v["component"][1].as_object_mut().unwrap();
        part.remove("valueQuantity");
        part.insert("dataAbsentReason".into(), json!({ "text": "cuff error" }));
    });
    assert_eq!(
        parse(&v).unwrap().reading.value,
        ObservationValue::Components(vec![ObservationComponent {
            measurand: Measurand::SystolicBp,
            value: Quantity::new(128.0, "mm[Hg]"),
        }])
    );
}

#[test]
fn a_lone_blood_pressure_part_becomes_a_panel_of_one() {
    let v = with(base(), |v| {
        v["code"]["coding"][0]["code"] = json!("8480-6");
        v["valueQuantity"] = json!({ "value": 120, "system": UCUM, "code": "mm[Hg]" });
    });
    let r = parse(&v).unwrap().reading;
    assert_eq!(r.code, ObservationCode::BloodPressure);
    assert_eq!(
        r.value,
        ObservationValue::Components(vec![ObservationComponent {
            measurand: Measurand::SystolicBp,
            value: Quantity::new(120.0, "mm[Hg]"),
        }])
    );
}

#[test]
fn times_are_read_as_instants() {
    let at = |raw: &str| {
        parse(&with(base(), |v| v["effectiveDateTime"] = json!(raw))).map(|i| i.reading.effective)
    };
    assert_eq!(
        at("2026-11-21T11:00:00+01:00").unwrap(),
        t0(),
        "offset applied"
    );
    assert_eq!(
        at("2026-11-21T10:00:00.123456789123Z").unwrap(),
        t0() + Duration::nanoseconds(123_456_789),
        "digits beyond nanoseconds are dropped"
    );
    let instant = with(without(base(), "effectiveDateTime"), |v| {
        v["effectiveInstant"] = json!("2026-11-21T10:00:00Z")
    });
    assert_eq!(parse(&instant).unwrap().reading.effective, t0());
    let period =
        with(
            without(base(), "effectiveDateTime"),
            |v| {
                v["effectivePeriod"] =
                    json!({ "start": "2026-11-21T10:00:00Z", "end": "2026-11-21T10:00:30Z" })
            },
        );
    assert_eq!(parse(&period).unwrap().reading.effective, t0());

    let limits = InputLimits::received_at(t0());
    let ahead = |secs: i64| {
        let raw = (t0() + Duration::seconds(secs)).to_rfc3339();
        observation_from_fhir(
            &bytes(&with(base(), |v| v["effectiveDateTime"] = json!(raw))),
            &limits,
        )
    };
    assert!(ahead(300).is_ok(), "within the allowed skew");
    let err = ahead(301).unwrap_err();
    assert_eq!(path_of(&err), "Observation.effectiveDateTime");
    assert!(err.to_string().contains("301 s after"), "{err}");
}

#[test]
fn identifier_and_device_are_kept() {
    let v = with(base(), |v| {
        v["device"] = json!({ "reference": "Device/mon-1", "display": "Bedside monitor" });
        v["identifier"] = json!([
            { "system": "urn:x", "use": "official" },
            { "system": "urn:oid:1.2.3", "value": "m-77" },
        ]);
    });
    let input = parse(&v).unwrap();
    assert_eq!(input.device, Some(DeviceId::new("mon-1").unwrap()));
    assert_eq!(
        input.identifier,
        Some(ObservationIdentifier {
            system: Some("urn:oid:1.2.3".into()),
            value: "m-77".into()
        })
    );
}

#[test]
fn elements_vigil_does_not_keep_are_ignored() {
    let v = with(base(), |v| {
        let extra = json!({
            "id": "client-id",
            "meta": { "versionId": "1", "profile": ["http://hl7.org/fhir/StructureDefinition/heartrate"] },
            "text": { "status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>" },
            "_status": { "extension": [] },
            "issued": "2026-11-21T10:00:01Z",
            "performer": [{ "reference": "Patient/p-1" }],
            "interpretation": [{ "coding": [{ "code": "N" }] }],
            "note": [{ "text": "after exercise" }],
            "bodySite": { "text": "left arm" },
            "method": { "text": "auscultation" },
            "referenceRange": [{ "low": { "value": 50 } }],
            "derivedFrom": [{ "reference": "Observation/coin-1" }],
            "extension": [{ "url": "http://example.org/x", "valueString": "y" }],
        });
        for (k, val) in extra.as_object().unwrap() {
            v[k] = val.clone();
        }
    });
    assert_eq!(
        parse(&v).unwrap().reading.code,
        ObservationCode::Single(Measurand::HeartRate)
    );
}

#[test]
fn vital_signs_category_and_loinc_are_noted_unless_the_profile_is_claimed() {
    let mdc_only = with(without(base(), "category"), |v| {
        v["code"] = json!({ "coding": [{ "system": MDC, "code": "147842" }] });
    });
    let input = parse(&mdc_only).unwrap();
    let paths: Vec<&str> = input.notes.iter().map(|n| n.path.as_str()).collect();
    assert_eq!(paths, ["Observation.category", "Observation.code.coding"]);
    let oo = InputNote::operation_outcome(&input.notes).unwrap();
    assert_eq!(oo["issue"][0]["severity"], "warning");
    assert_eq!(oo["issue"][1]["expression"][0], "Observation.code.coding");
    assert!(InputNote::operation_outcome(&[]).is_none());

    // Glucose and steps are not vital signs: nothing to note.
    let glucose = with(without(base(), "category"), |v| {
        v["code"]["coding"][0]["code"] = json!("2339-0");
        v["valueQuantity"] = json!({ "value": 99, "system": UCUM, "code": "mg/dL" });
    });
    assert!(parse(&glucose).unwrap().notes.is_empty());

    let claimed = |v: Value| {
        with(
            v,
            |v| {
                v["meta"] = json!({ "profile": ["http://hl7.org/fhir/StructureDefinition/vitalsigns|4.0.1"] })
            },
        )
    };
    let err = refused(&claimed(without(base(), "category")));
    assert!(matches!(err, FhirError::MissingElement { .. }), "{err:?}");
    assert_eq!(path_of(&err), "Observation.category");
    let err = refused(&claimed(with(base(), |v| {
        v["code"] = json!({ "coding": [{ "system": MDC, "code": "147842" }] })
    })));
    assert_eq!(path_of(&err), "Observation.code.coding");
}

// ---------------------------------------------------------------- PHD gateway examples

/// The PHD IG's `numeric-spotnumeric` example, as a gateway sends it: MDC pulse rate with
/// LOINC, display-only unit, a supplemental-types component, gateway extensions, an identifier
/// without a system.
fn phd_pulse_rate() -> Value {
    json!({
        "resourceType": "Observation",
        "id": "numeric-spotnumeric",
        "meta": { "profile": ["http://hl7.org/fhir/uv/phd/StructureDefinition/PhdNumericObservation"] },
        "extension": [
            { "url": "http://hl7.org/fhir/StructureDefinition/observation-gatewayDevice",
              "valueReference": { "reference": "Device/phg-ecde3d4e58532d31.000000000000" } },
            { "url": "http://hl7.org/fhir/uv/phd/StructureDefinition/CoincidentTimeStampReference",
              "valueReference": { "reference": "Observation/coin-20181119202022" } },
            { "url": "http://hl7.org/fhir/uv/phd/StructureDefinition/Accuracy",
              "valueQuantity": { "value": 0.1, "system": UCUM, "code": "/min" } },
        ],
        "identifier": [{ "value": "74E8FFFEFF051C00-sisansarahId-urn:oid:1.2.3.4.5.6.7.8.10-149530-20181113175902.00-150588" }],
        "status": "final",
        "category": [
            { "coding": [{ "system": OBSERVATION_CATEGORY, "code": "vital-signs" }], "text": "Vital Signs" },
            { "coding": [{ "system": "http://hl7.org/fhir/uv/phd/CodeSystem/PhdObservationCategories", "code": "phd-observation" }] },
        ],
        "code": { "coding": [
            { "system": MDC, "code": "149530", "display": "MDC_PULS_OXIM_PULS_RATE" },
            { "system": LOINC, "code": "8867-4", "display": "Heart rate" },
        ] },
        "subject": { "reference": "Patient/patientExample-1" },
        "performer": [{ "reference": "Patient/patientExample-1" }],
        "effectiveDateTime": "2018-11-13T17:59:02-05:00",
        "valueQuantity": { "value": 48.0, "unit": "{beat}/min}", "system": UCUM, "code": "/min" },
        "device": { "reference": "Device/phd-74E8FFFEFF051C00.001C05FFE874" },
        "derivedFrom": [{ "reference": "Observation/coin-20181119202022" }],
        "component": [{
            "code": { "coding": [{ "system": MDC, "code": "68193", "display": "MDC_ATTR_SUPPLEMENTAL_TYPES" }] },
            "valueCodeableConcept": { "coding": [{ "system": MDC, "code": "150588", "display": "MDC_MODALITY_SPOT" }] },
        }],
    })
}

#[test]
fn a_phd_numeric_observation_is_read() {
    let input = parse(&phd_pulse_rate()).unwrap();
    assert_eq!(input.subject.as_str(), "patientExample-1");
    assert_eq!(
        input.device.as_ref().map(DeviceId::as_str),
        Some("phd-74E8FFFEFF051C00.001C05FFE874")
    );
    assert_eq!(
        input.reading.code,
        ObservationCode::Single(Measurand::HeartRate)
    );
    assert_eq!(
        input.reading.value,
        ObservationValue::Quantity(Quantity::new(48.0, "/min"))
    );
    assert_eq!(
        input.reading.effective,
        Utc.with_ymd_and_hms(2018, 11, 13, 22, 59, 2).unwrap()
    );
    let id = input.identifier.unwrap();
    assert_eq!(id.system, None);
    assert!(id.value.starts_with("74E8FFFEFF051C00-"));
    assert!(input.notes.is_empty());
}

#[test]
fn a_phd_compound_blood_pressure_is_read() {
    let part = |codings: Value, v: f64| {
        json!({
            "code": { "coding": codings },
            "valueQuantity": { "value": v, "unit": "mm[Hg]", "system": UCUM, "code": "mm[Hg]" },
        })
    };
    let v = json!({
        "resourceType": "Observation",
        "meta": { "profile": [
            "http://hl7.org/fhir/uv/phd/StructureDefinition/PhdCompoundNumericObservation",
            "http://hl7.org/fhir/StructureDefinition/bp",
        ] },
        "extension": [{
            "url": "http://hl7.org/fhir/StructureDefinition/device-gateway",
            "valueCodeableReference": { "reference": { "reference": "Device/phg-1" } },
        }],
        "status": "final",
        "category": [
            { "coding": [{ "system": OBSERVATION_CATEGORY, "code": "vital-signs" }] },
            { "coding": [{ "system": "http://hl7.org/fhir/uv/phd/CodeSystem/PhdObservationCategories", "code": "phd" }] },
            { "coding": [{ "system": LOINC, "code": "85354-9" }] },
        ],
        "code": { "coding": [
            { "system": MDC, "code": "150020", "display": "MDC_PRESS_BLD_NONINV" },
            { "system": LOINC, "code": "85354-9" },
        ], "text": "Blood pressure" },
        "subject": { "reference": "Patient/patientExample-1" },
        "effectiveDateTime": "2018-11-11T11:38:15-05:00",
        "device": { "reference": "Device/phd-711000FEFF5F49B0.B0495F001071" },
        "component": [
            part(json!([{ "system": LOINC, "code": "8480-6" }, { "system": MDC, "code": "150021" }]), 116.0),
            part(json!([{ "system": LOINC, "code": "8462-4" }, { "system": MDC, "code": "150022" }]), 71.0),
            part(json!([{ "system": MDC, "code": "150023", "display": "MDC_PRESS_BLD_NONINV_MEAN" }]), 86.0),
        ],
    });
    let r = parse(&v).unwrap().reading;
    assert_eq!(r.code, ObservationCode::BloodPressure);
    let ObservationValue::Components(parts) = &r.value else {
        panic!("{r:?}")
    };
    let got: Vec<(Measurand, f64)> = parts.iter().map(|c| (c.measurand, c.value.value)).collect();
    assert_eq!(
        got,
        [
            (Measurand::SystolicBp, 116.0),
            (Measurand::DiastolicBp, 71.0),
            (Measurand::MeanBp, 86.0)
        ]
    );
}

#[test]
fn a_phd_not_a_number_is_absent_and_noted() {
    let v = json!({
        "resourceType": "Observation",
        "category": [{ "coding": [{ "system": "http://hl7.org/fhir/uv/phd/CodeSystem/PhdObservationCategories", "code": "phd" }] }],
        "status": "final",
        "code": { "coding": [{ "system": MDC, "code": "150456", "display": "MDC_PULS_OXIM_SAT_O2" }] },
        "subject": { "reference": "Patient/patientExample-1" },
        "effectiveDateTime": "2018-11-11T19:07:48-05:00",
        "dataAbsentReason": { "coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/data-absent-reason",
            "code": "not-a-number", "display": "Not a Number (NaN)",
        }] },
        "device": { "reference": "Device/phd-74E8FFFEFF051C00.001C05FFE874" },
    });
    let input = parse(&v).unwrap();
    assert_eq!(
        input.reading.value,
        ObservationValue::Absent(AbsentReason::NotObtained)
    );
    assert_eq!(input.notes.len(), 2, "{:?}", input.notes);
}

#[test]
fn a_phd_temperature_with_confidence_and_accuracy_extensions_is_read() {
    let v = with(phd_pulse_rate(), |v| {
        v["code"] = json!({ "coding": [
            { "system": MDC, "code": "150364", "display": "MDC_TEMP_BODY" },
            { "system": LOINC, "code": "8310-5" },
        ] });
        v["valueQuantity"] = json!({ "value": 36.5, "unit": "C", "system": UCUM, "code": "Cel" });
        v["extension"] = json!([{
            "url": "http://hl7.org/fhir/uv/phd/StructureDefinition/Confidence95",
            "valueRange": {
                "low": { "value": 36.3, "unit": "C", "system": UCUM, "code": "Cel" },
                "high": { "value": 36.7, "unit": "C", "system": UCUM, "code": "Cel" },
            },
        }]);
        v.as_object_mut().unwrap().remove("component");
    });
    assert_eq!(
        parse(&v).unwrap().reading.value,
        ObservationValue::Quantity(Quantity::new(36.5, "Cel"))
    );
}

// ---------------------------------------------------------------- refusals

/// Each case: what is wrong, the element the error must name, and the issue type.
#[test]
fn refusals_name_the_element_at_fault() {
    let no_value = || without(base(), "valueQuantity");
    let cases: Vec<(&str, Value, &str, IssueType)> = vec![
        (
            "missing status",
            without(base(), "status"),
            "Observation.status",
            IssueType::Required,
        ),
        (
            "registered",
            with(base(), |v| v["status"] = json!("registered")),
            "Observation.status",
            IssueType::Value,
        ),
        (
            "cancelled",
            with(base(), |v| v["status"] = json!("cancelled")),
            "Observation.status",
            IssueType::Value,
        ),
        (
            "entered-in-error",
            with(base(), |v| v["status"] = json!("entered-in-error")),
            "Observation.status",
            IssueType::Value,
        ),
        (
            "status not a code",
            with(base(), |v| v["status"] = json!("done")),
            "Observation.status",
            IssueType::Value,
        ),
        (
            "missing code",
            without(base(), "code"),
            "Observation.code",
            IssueType::Required,
        ),
        (
            "code without codings",
            with(base(), |v| v["code"] = json!({ "text": "pulse" })),
            "Observation.code.coding",
            IssueType::Required,
        ),
        (
            "unknown LOINC",
            with(base(), |v| v["code"]["coding"][0]["code"] = json!("8331-1")),
            "Observation.code",
            IssueType::Value,
        ),
        (
            "LOINC code in the MDC system",
            with(base(), |v| v["code"]["coding"][0]["system"] = json!(MDC)),
            "Observation.code",
            IssueType::Value,
        ),
        (
            "conflicting codings",
            with(base(), |v| {
                v["code"]["coding"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({ "system": MDC, "code": "150456" }))
            }),
            "Observation.code.coding[1]",
            IssueType::Value,
        ),
        (
            "NEWS2",
            with(
                base(),
                |v| v["code"] = json!({ "coding": [{ "system": SYSTEM_CODE, "code": "news2" }] }),
            ),
            "Observation.code",
            IssueType::NotSupported,
        ),
        (
            "missing subject",
            without(base(), "subject"),
            "Observation.subject",
            IssueType::Required,
        ),
        (
            "subject by identifier",
            with(base(), |v| {
                v["subject"] = json!({ "identifier": { "value": "MRN-1" } })
            }),
            "Observation.subject.reference",
            IssueType::Required,
        ),
        (
            "subject urn:uuid",
            with(base(), |v| {
                v["subject"]["reference"] = json!("urn:uuid:5b7842fe-978d-4182-a41f-0d07a8617bc2")
            }),
            "Observation.subject.reference",
            IssueType::Value,
        ),
        (
            "subject absolute URL",
            with(base(), |v| {
                v["subject"]["reference"] = json!("http://ehr.example/fhir/Patient/p-1")
            }),
            "Observation.subject.reference",
            IssueType::Value,
        ),
        (
            "subject a Group",
            with(base(), |v| {
                v["subject"]["reference"] = json!("Group/ward-3")
            }),
            "Observation.subject.reference",
            IssueType::Value,
        ),
        (
            "subject versioned",
            with(base(), |v| {
                v["subject"]["reference"] = json!("Patient/p-1/_history/2")
            }),
            "Observation.subject.reference",
            IssueType::Value,
        ),
        (
            "subject type",
            with(base(), |v| v["subject"]["type"] = json!("Device")),
            "Observation.subject.type",
            IssueType::Value,
        ),
        (
            "device a Patient",
            with(base(), |v| {
                v["device"] = json!({ "reference": "Patient/p-1" })
            }),
            "Observation.device.reference",
            IssueType::Value,
        ),
        (
            "missing effective",
            without(base(), "effectiveDateTime"),
            "Observation.effective[x]",
            IssueType::Required,
        ),
        (
            "date only",
            with(base(), |v| v["effectiveDateTime"] = json!("2026-11-21")),
            "Observation.effectiveDateTime",
            IssueType::NotSupported,
        ),
        (
            "year only (vs-1)",
            with(base(), |v| v["effectiveDateTime"] = json!("2026")),
            "Observation.effectiveDateTime",
            IssueType::Value,
        ),
        (
            "no offset",
            with(base(), |v| {
                v["effectiveDateTime"] = json!("2026-11-21T10:00:00")
            }),
            "Observation.effectiveDateTime",
            IssueType::Value,
        ),
        (
            "lower-case t",
            with(base(), |v| {
                v["effectiveDateTime"] = json!("2026-11-21t10:00:00Z")
            }),
            "Observation.effectiveDateTime",
            IssueType::Value,
        ),
        (
            "space for T",
            with(base(), |v| {
                v["effectiveDateTime"] = json!("2026-11-21 10:00:00Z")
            }),
            "Observation.effectiveDateTime",
            IssueType::Value,
        ),
        (
            "no seconds",
            with(base(), |v| {
                v["effectiveDateTime"] = json!("2026-11-21T10:00Z")
            }),
            "Observation.effectiveDateTime",
            IssueType::Value,
        ),
        (
            "no such day",
            with(base(), |v| {
                v["effectiveDateTime"] = json!("2026-02-30T10:00:00Z")
            }),
            "Observation.effectiveDateTime",
            IssueType::Value,
        ),
        (
            "leap second",
            with(base(), |v| {
                v["effectiveDateTime"] = json!("2016-12-31T23:59:60Z")
            }),
            "Observation.effectiveDateTime",
            IssueType::Value,
        ),
        (
            "before 1970",
            with(base(), |v| {
                v["effectiveDateTime"] = json!("1969-12-31T23:59:59Z")
            }),
            "Observation.effectiveDateTime",
            IssueType::Value,
        ),
        (
            "two effective[x]",
            with(base(), |v| {
                v["effectiveInstant"] = json!("2026-11-21T10:00:00Z")
            }),
            "Observation.effectiveInstant",
            IssueType::Structure,
        ),
        (
            "timing",
            with(without(base(), "effectiveDateTime"), |v| {
                v["effectiveTiming"] = json!({ "event": ["2026-11-21T10:00:00Z"] })
            }),
            "Observation.effectiveTiming",
            IssueType::NotSupported,
        ),
        (
            "period without start",
            with(without(base(), "effectiveDateTime"), |v| {
                v["effectivePeriod"] = json!({ "end": "2026-11-21T10:00:00Z" })
            }),
            "Observation.effectivePeriod.start",
            IssueType::Required,
        ),
        (
            "period ends before it starts",
            with(
                without(base(), "effectiveDateTime"),
                |v| {
                    v["effectivePeriod"] =
                        json!({ "start": "2026-11-21T10:00:00Z", "end": "2026-11-21T09:00:00Z" })
                },
            ),
            "Observation.effectivePeriod.end",
            IssueType::Value,
        ),
        (
            "no value (vs-2)",
            no_value(),
            "Observation.value[x]",
            IssueType::Required,
        ),
        (
            "value and dataAbsentReason (obs-6)",
            with(base(), |v| v["dataAbsentReason"] = json!({ "text": "x" })),
            "Observation.dataAbsentReason",
            IssueType::Structure,
        ),
        (
            "two values",
            with(base(), |v| v["valueBoolean"] = json!(true)),
            "Observation.valueBoolean",
            IssueType::Structure,
        ),
        (
            "wrong value type",
            with(no_value(), |v| v["valueString"] = json!("72")),
            "Observation.valueString",
            IssueType::NotSupported,
        ),
        (
            "sampled data",
            with(no_value(), |v| {
                v["valueSampledData"] = json!({ "period": 4 })
            }),
            "Observation.valueSampledData",
            IssueType::NotSupported,
        ),
        (
            "missing unit code",
            with(base(), |v| {
                v["valueQuantity"].as_object_mut().unwrap().remove("code");
            }),
            "Observation.valueQuantity.code",
            IssueType::Required,
        ),
        (
            "missing unit system",
            with(base(), |v| {
                v["valueQuantity"].as_object_mut().unwrap().remove("system");
            }),
            "Observation.valueQuantity.system",
            IssueType::Required,
        ),
        (
            "non-UCUM system",
            with(base(), |v| {
                v["valueQuantity"]["system"] = json!("urn:iso:std:iso:11073:10101")
            }),
            "Observation.valueQuantity.system",
            IssueType::Value,
        ),
        (
            "unit not convertible",
            with(base(), |v| v["valueQuantity"]["code"] = json!("mm[Hg]")),
            "Observation.valueQuantity.code",
            IssueType::Value,
        ),
        (
            "UCUM is case-sensitive",
            with(base(), |v| v["valueQuantity"]["code"] = json!("/MIN")),
            "Observation.valueQuantity.code",
            IssueType::Value,
        ),
        (
            "missing value",
            with(base(), |v| {
                v["valueQuantity"].as_object_mut().unwrap().remove("value");
            }),
            "Observation.valueQuantity.value",
            IssueType::Required,
        ),
        (
            "implausible",
            with(base(), |v| v["valueQuantity"]["value"] = json!(400)),
            "Observation.valueQuantity.value",
            IssueType::Value,
        ),
        (
            "implausible after conversion",
            with(base(), |v| {
                v["code"]["coding"][0]["code"] = json!("8310-5");
                v["valueQuantity"] = json!({ "value": 37, "system": UCUM, "code": "K" });
            }),
            "Observation.valueQuantity.value",
            IssueType::Value,
        ),
        (
            "comparator",
            with(base(), |v| v["valueQuantity"]["comparator"] = json!(">")),
            "Observation.valueQuantity.comparator",
            IssueType::NotSupported,
        ),
        (
            "value as a string",
            with(base(), |v| v["valueQuantity"]["value"] = json!("72")),
            "Observation.valueQuantity.value",
            IssueType::Structure,
        ),
        (
            "component on a non-panel",
            with(base(), |v| v["component"] = bp_base()["component"].clone()),
            "Observation.component[0]",
            IssueType::NotSupported,
        ),
        (
            "panel with a value",
            with(bp_base(), |v| {
                v["valueQuantity"] = json!({ "value": 1, "system": UCUM, "code": "mm[Hg]" })
            }),
            "Observation.valueQuantity",
            IssueType::NotSupported,
        ),
        (
            "panel without components",
            without(bp_base(), "component"),
            "Observation.component",
            IssueType::Required,
        ),
        (
            "panel component not a pressure",
            with(bp_base(), |v| {
                v["component"][1]["code"]["coding"][0]["code"] = json!("8867-4")
            }),
            "Observation.component[1].code",
            IssueType::Value,
        ),
        (
            "panel component twice",
            with(bp_base(), |v| v["component"][1] = v["component"][0].clone()),
            "Observation.component[1].code",
            IssueType::Value,
        ),
        (
            "panel component without value (vs-3)",
            with(bp_base(), |v| {
                v["component"][1]
                    .as_object_mut()
                    .unwrap()
                    .remove("valueQuantity");
            }),
            "Observation.component[1].value[x]",
            IssueType::Required,
        ),
        (
            "panel component implausible",
            with(bp_base(), |v| {
                v["component"][0]["valueQuantity"]["value"] = json!(1000)
            }),
            "Observation.component[0].valueQuantity.value",
            IssueType::Value,
        ),
        (
            "panel component unit",
            with(bp_base(), |v| {
                v["component"][0]["valueQuantity"]["code"] = json!("%")
            }),
            "Observation.component[0].valueQuantity.code",
            IssueType::Value,
        ),
        (
            "panel component modifier",
            with(bp_base(), |v| {
                v["component"][0]["modifierExtension"] = json!([])
            }),
            "Observation.component[0].modifierExtension",
            IssueType::NotSupported,
        ),
        (
            "ACVPU wrong system",
            with(no_value(), |v| {
                v["code"]["coding"][0]["code"] = json!("67775-7");
                v["valueCodeableConcept"] =
                    json!({ "coding": [{ "system": "http://loinc.org", "code": "LA9340-6" }] });
            }),
            "Observation.valueCodeableConcept.coding",
            IssueType::Value,
        ),
        (
            "ACVPU unknown level",
            with(no_value(), |v| {
                v["code"]["coding"][0]["code"] = json!("67775-7");
                v["valueCodeableConcept"] =
                    json!({ "coding": [{ "system": "urn:vigil:acvpu", "code": "X" }] });
            }),
            "Observation.valueCodeableConcept.coding[0].code",
            IssueType::Value,
        ),
        (
            "ACVPU as a number",
            with(base(), |v| {
                v["code"]["coding"][0]["code"] = json!("67775-7")
            }),
            "Observation.valueQuantity",
            IssueType::NotSupported,
        ),
        (
            "event not detected",
            with(no_value(), |v| {
                v["code"] = json!({ "coding": [{ "system": "http://snomed.info/sct", "code": "1912002" }] });
                v["valueBoolean"] = json!(false);
            }),
            "Observation.valueBoolean",
            IssueType::Value,
        ),
        (
            "unknown element",
            with(base(), |v| v["pulse"] = json!(72)),
            "Observation.pulse",
            IssueType::Structure,
        ),
        (
            "unknown nested element",
            with(base(), |v| v["valueQuantity"]["precision"] = json!(1)),
            "Observation.valueQuantity.precision",
            IssueType::Structure,
        ),
        (
            "unknown element in a coding",
            with(base(), |v| v["code"]["coding"][0]["weight"] = json!(1)),
            "Observation.code.coding[0].weight",
            IssueType::Structure,
        ),
        (
            "R5 element",
            with(base(), |v| v["triggeredBy"] = json!([])),
            "Observation.triggeredBy",
            IssueType::Structure,
        ),
        (
            "modifierExtension",
            with(base(), |v| v["modifierExtension"] = json!([])),
            "Observation.modifierExtension",
            IssueType::NotSupported,
        ),
        (
            "implicitRules",
            with(base(), |v| v["implicitRules"] = json!("http://x")),
            "Observation.implicitRules",
            IssueType::NotSupported,
        ),
        (
            "focus",
            with(base(), |v| {
                v["focus"] = json!([{ "reference": "Patient/fetus" }])
            }),
            "Observation.focus",
            IssueType::NotSupported,
        ),
        (
            "unknown quality flag",
            with(base(), |v| {
                v["extension"] = json!([{ "url": "urn:vigil:quality", "valueCode": "shiny" }])
            }),
            "Observation.extension[0].valueCode",
            IssueType::Value,
        ),
        (
            "extension without url",
            with(base(), |v| v["extension"] = json!([{ "valueCode": "x" }])),
            "Observation.extension[0].url",
            IssueType::Required,
        ),
        (
            "blank identifier",
            with(base(), |v| v["identifier"] = json!([{ "value": " " }])),
            "Observation.identifier[0].value",
            IssueType::Value,
        ),
        (
            "huge identifier",
            with(base(), |v| {
                v["identifier"] = json!([{ "system": "urn:x", "value": "x".repeat(300) }])
            }),
            "Observation.identifier[0].value",
            IssueType::Value,
        ),
        (
            "too many components",
            with(bp_base(), |v| {
                v["component"] = json!(vec![v["component"][0].clone(); 17])
            }),
            "Observation.component",
            IssueType::NotSupported,
        ),
        (
            "resourceType of another element type",
            with(base(), |v| v["resourceType"] = json!(7)),
            "resourceType",
            IssueType::Structure,
        ),
    ];
    let mut seen = std::collections::HashSet::new();
    for (what, body, path, issue) in cases {
        assert!(seen.insert(what), "duplicate case {what}");
        let err = refused(&body);
        assert_eq!(path_of(&err), path, "{what}: {err}");
        assert_eq!(err.issue_type(), issue, "{what}: {err}");
        let oo = err.to_operation_outcome();
        assert_eq!(oo["issue"][0]["expression"][0], path, "{what}");
    }
}

#[test]
fn an_unknown_code_lists_what_vigil_records() {
    let err = refused(&with(base(), |v| {
        v["code"]["coding"][0]["code"] = json!("8331-1")
    }));
    let FhirError::InvalidElement { value, reason, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(value, "http://loinc.org|8331-1");
    for supported in [
        "8867-4 (heart_rate)",
        "85354-9 (blood_pressure)",
        "59408-5 (spo2)",
        "urn:vigil:code|panic",
    ] {
        assert!(reason.contains(supported), "{reason}");
    }
    assert!(!reason.contains("news2"), "{reason}");
    let misplaced = refused(&with(base(), |v| {
        v["code"]["coding"][0]["system"] = json!(MDC)
    }));
    assert!(
        misplaced
            .to_string()
            .contains("a code Vigil knows, but not in system"),
        "{misplaced}"
    );
}

#[test]
fn bodies_that_are_not_observations_are_refused() {
    let limits = InputLimits::default();
    let err = observation_from_fhir(b"\xff\xfe{}", &limits).unwrap_err();
    assert!(matches!(err, FhirError::NotJson { .. }), "{err:?}");
    let err = observation_from_fhir(b"{\"resourceType\":", &limits).unwrap_err();
    assert!(matches!(err, FhirError::NotJson { .. }), "{err:?}");
    assert_eq!(
        observation_from_fhir(b"[]", &limits).unwrap_err(),
        FhirError::NotAnObject { found: "an array" }
    );
    assert_eq!(
        observation_from_fhir(br#"{"resourceType":"Patient"}"#, &limits).unwrap_err(),
        FhirError::WrongResourceType {
            expected: "Observation",
            found: "Patient".into()
        }
    );
    let small = InputLimits {
        max_bytes: 100,
        ..InputLimits::default()
    };
    let err = observation_from_fhir(&bytes(&base()), &small).unwrap_err();
    assert_eq!(path_of(&err), "Observation");
    assert_eq!(err.issue_type(), IssueType::NotSupported);
    // The same resource inside a Bundle entry is named by its place.
    let err = observation_from_value(
        &json!({ "resourceType": "Patient" }),
        "Bundle.entry[2].resource",
        &limits,
    )
    .unwrap_err();
    assert_eq!(path_of(&err), "Bundle.entry[2].resource.resourceType");
    let err = observation_from_value(&json!("x"), "Bundle.entry[2].resource", &limits).unwrap_err();
    assert_eq!(path_of(&err), "Bundle.entry[2].resource");
}

#[test]
fn errors_never_quote_what_may_be_a_name() {
    let name = "Jan Novak";
    for body in [
        with(base(), |v| v["subject"] = json!(name)),
        with(base(), |v| v["code"] = json!(name)),
        with(base(), |v| v["valueQuantity"]["value"] = json!(name)),
        with(base(), |v| v["category"] = json!(name)),
        with(base(), |v| v["identifier"] = json!([name])),
        with(base(), |v| {
            v["subject"] = json!({ "display": name });
        }),
        with(base(), |v| {
            v["subject"] = json!({ "reference": "urn:uuid:1", "display": name });
        }),
    ] {
        let err = refused(&body);
        let text = format!("{err} {}", err.to_operation_outcome());
        assert!(!text.contains("Jan"), "{text}");
    }
    let err = refused(&with(base(), |v| v["subject"] = json!(name)));
    assert_eq!(
        err,
        FhirError::Structure {
            path: "Observation.subject".into(),
            detail: "expected an object, found a string".into()
        }
    );
}

#[test]
fn long_values_are_quoted_short() {
    let long = format!("Patient/{}", "a".repeat(500));
    let err = refused(&with(base(), |v| v["subject"]["reference"] = json!(long)));
    let FhirError::InvalidElement { value, .. } = &err else {
        panic!("{err:?}")
    };
    assert!(value.chars().count() <= 65, "{value}");
}

// ---------------------------------------------------------------- bundles

fn entry(resource: Value) -> Value {
    json!({ "resource": resource, "request": { "method": "POST", "url": "Observation" } })
}

fn bundle(kind: &str, entries: Vec<Value>) -> Vec<u8> {
    bytes(&json!({ "resourceType": "Bundle", "type": kind, "entry": entries }))
}

fn bad_unit() -> Value {
    with(base(), |v| v["valueQuantity"]["code"] = json!("mmHg"))
}

#[test]
fn a_batch_keeps_each_entrys_result() {
    let body = bundle(
        "batch",
        vec![
            entry(base()),
            entry(bad_unit()),
            json!({ "request": { "method": "PUT", "url": "Observation/1" }, "resource": base() }),
            entry(bp_base()),
        ],
    );
    let input = bundle_from_fhir(&body, &InputLimits::default()).unwrap();
    assert_eq!(input.kind(), BundleKind::Batch);
    assert_eq!(input.len(), 4);
    let BundleInput::Batch(results) = input else {
        panic!()
    };
    assert_eq!(
        results[0].as_ref().unwrap().reading.code,
        ObservationCode::Single(Measurand::HeartRate)
    );
    let err = results[1].as_ref().unwrap_err();
    assert_eq!(path_of(err), "Bundle.entry[1].resource.valueQuantity.code");
    let err = results[2].as_ref().unwrap_err();
    assert_eq!(path_of(err), "Bundle.entry[2].request.method");
    assert_eq!(err.issue_type(), IssueType::NotSupported);
    assert_eq!(
        results[3].as_ref().unwrap().reading.code,
        ObservationCode::BloodPressure
    );
}

#[test]
fn a_transaction_fails_whole_on_any_bad_entry() {
    let limits = InputLimits::default();
    let good = bundle("transaction", vec![entry(base()), entry(bp_base())]);
    let BundleInput::Transaction(all) = bundle_from_fhir(&good, &limits).unwrap() else {
        panic!("a transaction")
    };
    assert_eq!(all.len(), 2);

    let bad = bundle(
        "transaction",
        vec![entry(base()), entry(base()), entry(bad_unit())],
    );
    let err = bundle_from_fhir(&bad, &limits).unwrap_err();
    assert_eq!(path_of(&err), "Bundle.entry[2].resource.valueQuantity.code");
    let patient = bundle(
        "transaction",
        vec![
            entry(base()),
            json!({ "resource": { "resourceType": "Patient" }, "request": { "method": "POST", "url": "Patient" } }),
        ],
    );
    let err = bundle_from_fhir(&patient, &limits).unwrap_err();
    assert_eq!(path_of(&err), "Bundle.entry[1].request.url");
}

#[test]
fn entry_refusals_name_the_entry() {
    let cases: Vec<(Value, &str)> = vec![
        (json!({ "resource": base() }), "Bundle.entry[0].request"),
        (
            json!({ "resource": base(), "request": { "url": "Observation" } }),
            "Bundle.entry[0].request.method",
        ),
        (
            json!({ "resource": base(), "request": { "method": "post", "url": "Observation" } }),
            "Bundle.entry[0].request.method",
        ),
        (
            json!({ "resource": base(), "request": { "method": "POST" } }),
            "Bundle.entry[0].request.url",
        ),
        (
            json!({ "resource": base(), "request": { "method": "POST", "url": "Observation?code=x" } }),
            "Bundle.entry[0].request.url",
        ),
        (
            json!({ "request": { "method": "POST", "url": "Observation" } }),
            "Bundle.entry[0].resource",
        ),
        (
            json!({ "resource": { "resourceType": "Patient" }, "request": { "method": "POST", "url": "Observation" } }),
            "Bundle.entry[0].resource.resourceType",
        ),
        (
            json!({ "resource": base(), "request": { "method": "POST", "url": "Observation", "ifMatch": "W/\"1\"" } }),
            "Bundle.entry[0].request.ifMatch",
        ),
        (
            json!({ "resource": base(), "request": { "method": "POST", "url": "Observation", "ifNoneExist": "code=8867-4" } }),
            "Bundle.entry[0].request.ifNoneExist",
        ),
        (
            json!({ "resource": base(), "request": { "method": "POST", "url": "Observation", "verb": "x" } }),
            "Bundle.entry[0].request.verb",
        ),
        (
            json!({ "resource": base(), "request": { "method": "POST", "url": "Observation" }, "modifierExtension": [] }),
            "Bundle.entry[0].modifierExtension",
        ),
        (json!("Observation"), "Bundle.entry[0]"),
    ];
    for (e, path) in cases {
        let body = bundle("batch", vec![e.clone()]);
        let BundleInput::Batch(results) = bundle_from_fhir(&body, &InputLimits::default()).unwrap()
        else {
            panic!()
        };
        let err = results[0].as_ref().unwrap_err();
        assert_eq!(path_of(err), path, "{e}: {err}");
    }
}

#[test]
fn bundle_level_refusals() {
    let limits = InputLimits::default();
    let whole = |v: Value| bundle_from_fhir(&bytes(&v), &limits).unwrap_err();
    let err = whole(json!({ "resourceType": "Bundle", "type": "collection" }));
    assert_eq!(path_of(&err), "Bundle.type");
    assert_eq!(err.issue_type(), IssueType::NotSupported);
    let err = whole(json!({ "resourceType": "Bundle", "type": "bunch" }));
    assert_eq!(err.issue_type(), IssueType::Value);
    let err = whole(json!({ "resourceType": "Bundle" }));
    assert_eq!(path_of(&err), "Bundle.type");
    assert_eq!(
        whole(json!({ "resourceType": "Observation" })),
        FhirError::WrongResourceType {
            expected: "Bundle",
            found: "Observation".into()
        }
    );
    let err = whole(json!({ "resourceType": "Bundle", "type": "batch", "entry": {} }));
    assert_eq!(path_of(&err), "Bundle.entry");
    // A Bundle is a Resource, not a DomainResource: it has no extension.
    let err = whole(json!({ "resourceType": "Bundle", "type": "batch", "extension": [] }));
    assert_eq!(path_of(&err), "Bundle.extension");
    let err = whole(json!({ "resourceType": "Bundle", "type": "batch", "implicitRules": "x" }));
    assert_eq!(path_of(&err), "Bundle.implicitRules");
    let twice = |kind: &str| {
        let e = with(entry(base()), |e| e["fullUrl"] = json!("urn:uuid:1"));
        json!({ "resourceType": "Bundle", "type": kind, "entry": [e.clone(), entry(base()), e] })
    };
    for kind in ["batch", "transaction"] {
        let err = whole(twice(kind));
        assert_eq!(path_of(&err), "Bundle.entry[2].fullUrl", "{kind}");
    }
    let few = InputLimits {
        max_entries: 2,
        ..InputLimits::default()
    };
    let body = bundle("batch", vec![entry(base()); 3]);
    let err = bundle_from_fhir(&body, &few).unwrap_err();
    assert_eq!(path_of(&err), "Bundle.entry");
    assert!(bundle_from_fhir(&bundle("batch", vec![entry(base()); 2]), &few).is_ok());
    let err = bundle_from_fhir(
        &body,
        &InputLimits {
            max_bytes: 10,
            ..InputLimits::default()
        },
    )
    .unwrap_err();
    assert_eq!(path_of(&err), "Bundle");
}

#[test]
fn an_empty_bundle_is_an_empty_input() {
    let body = bytes(&json!({ "resourceType": "Bundle", "type": "transaction" }));
    let input = bundle_from_fhir(&body, &InputLimits::default()).unwrap();
    assert!(input.is_empty());
    assert_eq!(input.kind(), BundleKind::Transaction);
}

#[test]
fn if_none_exist_must_name_the_entrys_own_identifier() {
    let observed = with(base(), |v| {
        v["identifier"] = json!([{ "system": "urn:oid:1.2.3", "value": "m|77" }])
    });
    let request = |condition: &str| {
        json!({
            "resource": observed,
            "request": { "method": "POST", "url": "Observation", "ifNoneExist": condition },
        })
    };
    let outcome = |condition: &str| {
        let body = bundle("batch", vec![request(condition)]);
        let BundleInput::Batch(mut results) =
            bundle_from_fhir(&body, &InputLimits::default()).unwrap()
        else {
            panic!()
        };
        results.remove(0)
    };
    for ok in [
        "identifier=urn:oid:1.2.3|m\\|77",
        "identifier=urn%3Aoid%3A1.2.3%7Cm%5C%7C77",
        "identifier=m\\|77",
    ] {
        assert!(outcome(ok).is_ok(), "{ok}: {:?}", outcome(ok));
    }
    for bad in [
        "identifier=urn:oid:9|m\\|77",
        "identifier=|m\\|77",
        "identifier=m",
        "code=8867-4",
    ] {
        let err = outcome(bad).unwrap_err();
        assert_eq!(
            path_of(&err),
            "Bundle.entry[0].request.ifNoneExist",
            "{bad}"
        );
    }
}

#[test]
fn a_phd_transaction_with_patient_and_device_entries_is_refused_naming_the_first() {
    let body = bytes(&json!({
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:5b7842fe-978d-4182-a41f-0d07a8617bc2",
                "resource": { "resourceType": "Patient", "name": [{ "family": "Gyannea" }] },
                "request": { "method": "POST", "url": "Patient", "ifNoneExist": "identifier=urn:oid:1.2|x" },
            },
            { "fullUrl": "urn:uuid:1", "resource": phd_pulse_rate(), "request": { "method": "POST", "url": "Observation" } },
        ],
    }));
    let err = bundle_from_fhir(&body, &InputLimits::default()).unwrap_err();
    assert_eq!(path_of(&err), "Bundle.entry[0].request.url");
    assert!(!err.to_string().contains("Gyannea"));
}

#[test]
fn a_phd_batch_of_observations_is_read() {
    let with_condition = json!({
        "fullUrl": "urn:uuid:323f0631-6bca-47aa-8adf-69fdaf910108",
        "resource": phd_pulse_rate(),
        "request": {
            "method": "POST", "url": "Observation",
            "ifNoneExist": "identifier=74E8FFFEFF051C00-sisansarahId-urn:oid:1.2.3.4.5.6.7.8.10-149530-20181113175902.00-150588",
        },
    });
    let gateway_subject = with(phd_pulse_rate(), |v| {
        v["subject"]["reference"] = json!("urn:uuid:5b7842fe-978d-4182-a41f-0d07a8617bc2")
    });
    let body = bundle("batch", vec![with_condition, entry(gateway_subject)]);
    let BundleInput::Batch(results) = bundle_from_fhir(&body, &InputLimits::default()).unwrap()
    else {
        panic!()
    };
    assert_eq!(
        results[0].as_ref().unwrap().reading.code,
        ObservationCode::Single(Measurand::HeartRate)
    );
    assert_eq!(
        path_of(results[1].as_ref().unwrap_err()),
        "Bundle.entry[1].resource.subject.reference"
    );
}

// ---------------------------------------------------------------- response bundles

#[test]
fn the_response_bundle_has_one_entry_per_request_entry() {
    let body = bundle(
        "batch",
        vec![
            entry(base()),
            entry(bad_unit()),
            entry(with(without(base(), "category"), |v| {
                v["code"] = json!({ "coding": [{ "system": MDC, "code": "147842" }] })
            })),
            entry(base()),
        ],
    );
    let BundleInput::Batch(results) = bundle_from_fhir(&body, &InputLimits::default()).unwrap()
    else {
        panic!()
    };
    // What the server does: store the good ones, one of them a duplicate, and one patient unknown.
    let outcomes: Vec<EntryOutcome> = results
        .iter()
        .enumerate()
        .map(|(i, r)| match r {
            Err(e) => EntryOutcome::invalid(e),
            Ok(_) if i == 3 => EntryOutcome::Duplicate {
                id: ObservationId(7),
            },
            Ok(input) => EntryOutcome::Created {
                id: ObservationId(100 + i as i64),
                notes: input.notes.clone(),
            },
        })
        .collect();
    let b = batch_response_bundle(BundleKind::Batch, &outcomes);
    assert_eq!(b["resourceType"], "Bundle");
    assert_eq!(b["type"], "batch-response");
    let entries = b["entry"].as_array().unwrap();
    assert_eq!(entries.len(), 4);
    assert_eq!(
        entries[0],
        json!({ "response": { "status": "201 Created", "location": "Observation/100" } })
    );
    assert_eq!(entries[1]["response"]["status"], "400 Bad Request");
    let outcome = &entries[1]["response"]["outcome"];
    assert_eq!(outcome["resourceType"], "OperationOutcome");
    assert_eq!(outcome["issue"][0]["severity"], "error");
    assert_eq!(
        outcome["issue"][0]["expression"][0],
        "Bundle.entry[1].resource.valueQuantity.code"
    );
    assert!(entries[1]["response"].get("location").is_none());
    assert_eq!(entries[2]["response"]["location"], "Observation/102");
    assert_eq!(
        entries[2]["response"]["outcome"]["issue"][0]["severity"],
        "warning"
    );
    assert_eq!(
        entries[3]["response"],
        json!({ "status": "200 OK", "location": "Observation/7" })
    );
}

#[test]
fn response_statuses_and_kinds() {
    let unknown = EntryOutcome::refused(404, IssueType::NotFound, "Patient/p-9 is not known");
    let unsupported = EntryOutcome::invalid(&FhirError::UnsupportedElement {
        path: "Bundle.entry[0].request.method".into(),
        reason: "PUT".into(),
    });
    let b = batch_response_bundle(BundleKind::Batch, &[unknown, unsupported]);
    assert_eq!(b["entry"][0]["response"]["status"], "404 Not Found");
    assert_eq!(
        b["entry"][0]["response"]["outcome"]["issue"][0]["code"],
        "not-found"
    );
    assert_eq!(
        b["entry"][1]["response"]["status"],
        "422 Unprocessable Entity"
    );
    let t = batch_response_bundle(
        BundleKind::Transaction,
        &[EntryOutcome::Created {
            id: ObservationId(1),
            notes: Vec::new(),
        }],
    );
    assert_eq!(t["type"], "transaction-response");
    assert!(t["entry"][0]["response"].get("outcome").is_none());
    let empty = batch_response_bundle(BundleKind::Batch, &[]);
    assert!(empty.get("entry").is_none(), "no empty array");
    let odd = batch_response_bundle(
        BundleKind::Batch,
        &[EntryOutcome::Refused {
            status: 418,
            outcome: json!({}),
        }],
    );
    assert_eq!(odd["entry"][0]["response"]["status"], "418");
}
