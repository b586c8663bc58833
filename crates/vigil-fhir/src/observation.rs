//! Observations and waveform segments as FHIR R4 `Observation`s.
//!
//! Vital signs follow the R4 vital-signs profiles (<http://hl7.org/fhir/R4/observation-vitalsigns.html>):
//! category `vital-signs`, LOINC code, `subject`, `effectiveDateTime`, a UCUM `valueQuantity`,
//! and for blood pressure a 85354-9 panel with systolic and diastolic `component`s and no
//! top-level value. A profile is claimed in `meta.profile` only when the resource meets it (for
//! example a panel lacking its diastolic part does not claim the `bp` profile).

use serde_json::{Map, Value, json};
use vigil_model::catalogue::{BLOOD_PRESSURE_LOINC, NEWS2_SNOMED};
use vigil_model::{
    AbsentReason, Category, Measurand, Observation, ObservationCode, ObservationComponent,
    ObservationValue, Quantity, StoredWaveform,
};

use crate::common::{
    DATA_ABSENT_REASON, EXT_QUALITY, LOINC, MDC, SNOMED, SYSTEM_CODE, SYSTEM_NEWS2_BAND, UCUM,
    absent_because_error, category, coding, decimal, instant, mdc_coding, quantity, reference,
};

/// The base vital-signs profile.
pub const PROFILE_VITAL_SIGNS: &str = "http://hl7.org/fhir/StructureDefinition/vitalsigns";
const PROFILE_BASE: &str = "http://hl7.org/fhir/StructureDefinition/";

/// Displays of the LOINC codes written besides a measurand's own (see `Measurand::extra_loinc`).
fn extra_loinc_display(code: &str) -> Option<&'static str> {
    match code {
        "2708-6" => Some("Oxygen saturation in Arterial blood"),
        _ => None,
    }
}

/// The specific R4 vital-signs profile of a single measurand, by the profile's id.
fn measurand_profile(m: Measurand) -> Option<&'static str> {
    match m {
        Measurand::HeartRate => Some("heartrate"),
        Measurand::RespRate => Some("resprate"),
        Measurand::Spo2 => Some("oxygensat"),
        Measurand::Temperature => Some("bodytemp"),
        Measurand::Weight => Some("bodyweight"),
        Measurand::Height => Some("bodyheight"),
        // Components of the bp profile, not profiles of their own; glucose is a laboratory
        // result and steps an activity: no vital-signs profile.
        Measurand::SystolicBp
        | Measurand::DiastolicBp
        | Measurand::MeanBp
        | Measurand::Glucose
        | Measurand::Steps
        // Coded or boolean values: the vital-signs profiles take quantities only.
        | Measurand::Consciousness
        | Measurand::SupplementalOxygen => None,
    }
}

/// `Observation.code` (and `component.code`) of a measurand: its LOINC codings, then its MDC
/// coding where one is established.
fn measurand_codings(m: Measurand) -> Vec<Value> {
    let mut codings = vec![coding(LOINC, m.loinc(), m.display())];
    for extra in m.extra_loinc() {
        let mut c = json!({ "system": LOINC, "code": extra });
        if let Some(display) = extra_loinc_display(extra) {
            c["display"] = Value::from(display);
        }
        codings.push(c);
    }
    codings.extend(m.mdc().map(mdc_coding));
    codings
}

/// `Observation.code`: LOINC codings, the MDC coding, the Vigil short name, and text.
pub fn observation_code(code: ObservationCode) -> Value {
    let mut codings = match code {
        ObservationCode::Single(m) => measurand_codings(m),
        ObservationCode::BloodPressure => {
            let mut c = vec![coding(LOINC, BLOOD_PRESSURE_LOINC, code.display())];
            c.extend(code.mdc().map(mdc_coding));
            c
        }
        ObservationCode::Event(event) => event
            .snomed()
            .map(|(code, display)| coding(SNOMED, code, display))
            .into_iter()
            .collect(),
        ObservationCode::News2 => vec![coding(SNOMED, NEWS2_SNOMED.0, NEWS2_SNOMED.1)],
    };
    codings.push(json!({ "system": SYSTEM_CODE, "code": code.short_name() }));
    json!({ "coding": codings, "text": code.display() })
}

/// A quantity in a measurand's unit, with the unit's human-readable form when it is the
/// canonical one (it always is for stored observations).
fn measurand_quantity(m: Option<Measurand>, q: &Quantity) -> Option<Value> {
    let display = match m {
        Some(m) if q.unit == m.canonical_unit() => m.unit_display(),
        _ => q.unit.as_str(),
    };
    quantity(q.value, display, &q.unit)
}

fn component(c: &ObservationComponent) -> Value {
    let mut out = json!({
        "code": { "coding": measurand_codings(c.measurand), "text": c.measurand.display() },
    });
    match measurand_quantity(Some(c.measurand), &c.value) {
        Some(q) => out["valueQuantity"] = q,
        None => out["dataAbsentReason"] = absent_because_error(),
    }
    out
}

/// The profiles the observation meets, base profile first.
fn profiles(o: &Observation) -> Vec<String> {
    if o.code.category() != Some(Category::VitalSigns)
        || !matches!(
            o.value,
            ObservationValue::Quantity(_) | ObservationValue::Components(_)
        )
    {
        return Vec::new();
    }
    let specific = match (o.code, &o.value) {
        (ObservationCode::Single(m), ObservationValue::Quantity(q)) => {
            // The specific profiles fix the UCUM unit; canonical units are the ones they fix.
            measurand_profile(m).filter(|_| q.unit == m.canonical_unit() && q.value.is_finite())
        }
        (ObservationCode::BloodPressure, ObservationValue::Components(parts)) => {
            // The bp profile requires one systolic and one diastolic component, in mm[Hg].
            let has = |wanted: Measurand| {
                parts.iter().filter(|c| c.measurand == wanted).count() == 1
                    && parts
                        .iter()
                        .all(|c| c.value.unit == "mm[Hg]" && c.value.value.is_finite())
            };
            (has(Measurand::SystolicBp) && has(Measurand::DiastolicBp)).then_some("bp")
        }
        _ => None,
    };
    std::iter::once(PROFILE_VITAL_SIGNS.to_owned())
        .chain(specific.map(|id| format!("{PROFILE_BASE}{id}")))
        .collect()
}

/// A score as a FHIR `Quantity` in UCUM's `{score}` (a unity annotated as a score).
fn score_quantity(points: u8) -> Value {
    json!({ "value": points, "unit": "score", "system": UCUM, "code": "{score}" })
}

/// A NEWS2 record's parts as components, in Vigil's own codes (`urn:vigil:code|news2-…`): each
/// parameter's sub-score (`dataAbsentReason` `unknown` when it was missing or stale, so an
/// incomplete score never reads as a normal one), the band, the SpO2 scale and completeness.
fn news2_components(score: &vigil_model::News2Value) -> Value {
    let part = |name: &str, display: &str| json!({ "coding": [coding(SYSTEM_CODE, &format!("news2-{name}"), display)], "text": display });
    let mut parts: Vec<Value> = score
        .scores
        .iter()
        .map(|(name, points)| {
            let mut c =
                json!({ "code": part(name, &format!("NEWS2 {} score", name.replace('_', " "))) });
            match points {
                Some(p) => c["valueQuantity"] = score_quantity(*p),
                None => {
                    c["dataAbsentReason"] =
                        json!({ "coding": [coding(DATA_ABSENT_REASON, "unknown", "Unknown")] })
                }
            }
            c
        })
        .collect();
    parts.push(json!({
        "code": part("band", "NEWS2 clinical risk band"),
        "valueCodeableConcept": {
            "coding": [{ "system": SYSTEM_NEWS2_BAND, "code": score.band }],
            "text": score.band,
        },
    }));
    parts.push(json!({
        "code": part("spo2_scale", "NEWS2 SpO2 scale used"),
        "valueInteger": score.spo2_scale,
    }));
    parts.push(json!({
        "code": part("complete", "All seven NEWS2 parameters were scored"),
        "valueBoolean": score.complete,
    }));
    Value::Array(parts)
}

/// An observation as a FHIR R4 `Observation`.
///
/// - `id` is the storage id; `subject` is `Patient/{id}`, `device` is `Device/{id}`.
/// - `effectiveDateTime` is when it was measured; `issued` when Vigil received it. Both are
///   written in UTC to the millisecond; a `date` search at millisecond precision still finds an
///   observation whose stored time has finer digits (the search value is a range).
/// - Quality flags are extensions `urn:vigil:quality` with `valueCode` = the flag's name; they are
///   not `interpretation` (which is clinical) nor `dataAbsentReason` (the value is present).
/// - A value JSON cannot carry (not finite) is left out with `dataAbsentReason` = `error`.
pub fn observation_to_fhir(o: &Observation) -> Value {
    let mut out = json!({
        "resourceType": "Observation",
        "id": o.id.to_string(),
        "status": o.status.as_str(),
        "code": observation_code(o.code),
        "subject": reference("Patient", o.patient.as_str()),
        "effectiveDateTime": instant(o.effective),
        "issued": instant(o.received),
        "device": reference("Device", o.device.as_str()),
    });
    if let Some(c) = o.code.category() {
        out["category"] = json!([category(c)]);
    }
    let profiles = profiles(o);
    if !profiles.is_empty() {
        out["meta"] = json!({ "profile": profiles });
    }
    let quality: Vec<Value> = o
        .quality
        .names()
        .map(|name| json!({ "url": EXT_QUALITY, "valueCode": name }))
        .collect();
    if !quality.is_empty() {
        out["extension"] = Value::Array(quality);
    }
    match &o.value {
        ObservationValue::Quantity(q) => {
            let measurand = match o.code {
                ObservationCode::Single(m) => Some(m),
                ObservationCode::BloodPressure
                | ObservationCode::Event(_)
                | ObservationCode::News2 => None,
            };
            match measurand_quantity(measurand, q) {
                Some(q) => out["valueQuantity"] = q,
                None => out["dataAbsentReason"] = absent_because_error(),
            }
        }
        ObservationValue::Components(parts) => {
            out["component"] = parts.iter().map(component).collect();
        }
        ObservationValue::Acvpu(level) => {
            out["valueCodeableConcept"] = json!({
                "coding": [coding(SYSTEM_ACVPU, level.code(), level.display())],
                "text": level.display(),
            });
        }
        ObservationValue::OnOxygen(on) => {
            // LOINC 3151-8 is a flow rate; a yes/no is not one, so only Vigil's own code is claimed.
            out["code"] = json!({
                "coding": [coding(SYSTEM_CODE, "o2_supplemental", "On supplemental oxygen")],
                "text": "On supplemental oxygen",
            });
            out["valueBoolean"] = Value::Bool(*on);
        }
        // "Fall: detected", as SNOMED CT event concepts are recorded as observations.
        ObservationValue::Detected => out["valueBoolean"] = Value::Bool(true),
        // The device said it has no value: `dataAbsentReason` says so in FHIR's words ("error":
        // the system could not provide it), and the text says why.
        ObservationValue::News2(score) => {
            out["valueQuantity"] = score_quantity(score.total);
            out["component"] = news2_components(score);
        }
        ObservationValue::Absent(reason) => {
            let text = match reason {
                AbsentReason::SensorOff => "Sensor off the patient or disconnected",
                AbsentReason::NotObtained => "The device could not obtain a value",
            };
            out["dataAbsentReason"] = json!({
                "coding": [coding(DATA_ABSENT_REASON, "error", "Error")],
                "text": text,
            });
        }
    }
    out
}

/// Vigil's code system for the ACVPU scale: LOINC's level-of-responsiveness answers (AVPU) have
/// no "new confusion", which NEWS2 scores.
pub const SYSTEM_ACVPU: &str = "urn:vigil:acvpu";

/// Prefix of waveform Observation ids, so they never collide with stored observations' ids.
pub const WAVEFORM_ID_PREFIX: &str = "w-";

/// The FHIR id of a stored waveform segment: `w-{id}`.
pub fn waveform_fhir_id(id: i64) -> String {
    format!("{WAVEFORM_ID_PREFIX}{id}")
}

/// A stored waveform segment as a FHIR R4 `Observation` with `valueSampledData`
/// (<http://hl7.org/fhir/R4/datatypes.html#SampledData>): value = origin + factor × sample, one
/// sample every `period` milliseconds, `data` the samples as space-separated integers.
///
/// Coded in MDC only (LOINC has no codes for these signals), category `procedure` as the R4 ECG
/// example has it, `effectivePeriod` from the first sample to the end of the last sample period.
pub fn waveform_to_fhir(w: &StoredWaveform) -> Value {
    let seg = &w.segment;
    let (mdc_code, refid) = seg.code.mdc();
    let unit = seg.code.unit();
    let mut sampled = Map::new();
    sampled.insert(
        "origin".into(),
        json!({
            "value": decimal(finite_or_zero(seg.origin)),
            "unit": unit,
            "system": crate::common::UCUM,
            "code": unit,
        }),
    );
    sampled.insert("period".into(), decimal(finite_or_zero(seg.period_ms)));
    sampled.insert("factor".into(), decimal(finite_or_zero(seg.factor)));
    sampled.insert("dimensions".into(), Value::from(1));
    // FHIR strings cannot be empty: a segment with no samples has no `data`.
    if !seg.samples.is_empty() {
        let data: Vec<String> = seg.samples.iter().map(i32::to_string).collect();
        sampled.insert("data".into(), Value::from(data.join(" ")));
    }
    json!({
        "resourceType": "Observation",
        "id": waveform_fhir_id(w.id),
        "status": "final",
        "category": [{ "coding": [coding(
            crate::common::OBSERVATION_CATEGORY, "procedure", "Procedure"
        )] }],
        "code": {
            "coding": [
                coding(MDC, &mdc_code.to_string(), refid),
                { "system": SYSTEM_CODE, "code": seg.code.short_name() },
            ],
            "text": seg.code.display(),
        },
        "subject": reference("Patient", w.patient.as_str()),
        "effectivePeriod": { "start": instant(seg.start), "end": instant(seg.end()) },
        "issued": instant(w.received),
        "device": reference("Device", w.device.as_str()),
        "valueSampledData": Value::Object(sampled),
    })
}

/// Segments are validated before they are stored; this keeps `null` out of the JSON regardless.
fn finite_or_zero(v: f64) -> f64 {
    if v.is_finite() { v } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use vigil_model::{
        DeviceId, Instant, ObservationId, ObservationStatus, PatientId, QualityFlags, WaveformCode,
        WaveformSegment,
    };

    fn t(sec: u32) -> Instant {
        Utc.with_ymd_and_hms(2026, 11, 21, 10, 0, sec).unwrap()
    }

    fn obs(code: ObservationCode, value: ObservationValue) -> Observation {
        Observation {
            id: ObservationId(42),
            patient: PatientId::new("p-1").unwrap(),
            device: DeviceId::new("mon-1").unwrap(),
            code,
            value,
            effective: t(0) + chrono::Duration::microseconds(123_456),
            received: t(2),
            status: ObservationStatus::Final,
            quality: QualityFlags::empty(),
        }
    }

    fn single(m: Measurand, value: f64) -> Observation {
        obs(
            ObservationCode::Single(m),
            ObservationValue::Quantity(Quantity::new(value, m.canonical_unit())),
        )
    }

    fn bp(parts: &[(Measurand, f64)]) -> Observation {
        obs(
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

    fn profiles_of(v: &Value) -> Vec<&str> {
        v["meta"]["profile"]
            .as_array()
            .map(|a| a.iter().map(|p| p.as_str().unwrap()).collect())
            .unwrap_or_default()
    }

    fn codings_of(v: &Value) -> Vec<(&str, &str)> {
        v["coding"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["system"].as_str().unwrap(), c["code"].as_str().unwrap()))
            .collect()
    }

    #[test]
    fn heart_rate_meets_the_heartrate_profile() {
        let v = observation_to_fhir(&single(Measurand::HeartRate, 72.0));
        assert_eq!(v["resourceType"], "Observation");
        assert_eq!(v["id"], "42");
        assert_eq!(v["status"], "final");
        assert_eq!(
            profiles_of(&v),
            [
                PROFILE_VITAL_SIGNS,
                "http://hl7.org/fhir/StructureDefinition/heartrate"
            ]
        );
        assert_eq!(
            v["category"][0]["coding"][0]["system"],
            crate::common::OBSERVATION_CATEGORY
        );
        assert_eq!(v["category"][0]["coding"][0]["code"], "vital-signs");
        assert_eq!(
            codings_of(&v["code"]),
            [
                (LOINC, "8867-4"),
                (MDC, "147842"),
                (SYSTEM_CODE, "heart_rate")
            ]
        );
        assert_eq!(v["code"]["coding"][0]["display"], "Heart rate");
        assert_eq!(v["code"]["coding"][1]["display"], "MDC_ECG_HEART_RATE");
        assert_eq!(v["code"]["text"], "Heart rate");
        assert_eq!(v["subject"]["reference"], "Patient/p-1");
        assert_eq!(v["device"]["reference"], "Device/mon-1");
        assert_eq!(v["effectiveDateTime"], "2026-11-21T10:00:00.123Z");
        assert_eq!(v["issued"], "2026-11-21T10:00:02.000Z");
        assert_eq!(
            v["valueQuantity"],
            json!({ "value": 72, "unit": "beats/minute", "system": crate::common::UCUM, "code": "/min" })
        );
        assert!(v.get("component").is_none());
        assert!(v.get("extension").is_none());
    }

    #[test]
    fn every_vital_sign_claims_its_own_profile_and_unit() {
        let cases = [
            (Measurand::RespRate, "resprate", "9279-1", "/min"),
            (Measurand::Spo2, "oxygensat", "59408-5", "%"),
            (Measurand::Temperature, "bodytemp", "8310-5", "Cel"),
            (Measurand::Weight, "bodyweight", "29463-7", "kg"),
            (Measurand::Height, "bodyheight", "8302-2", "cm"),
        ];
        for (m, profile, loinc, ucum) in cases {
            let v = observation_to_fhir(&single(m, 50.0));
            assert_eq!(
                profiles_of(&v),
                [
                    PROFILE_VITAL_SIGNS.to_owned(),
                    format!("{PROFILE_BASE}{profile}")
                ],
                "{m:?}"
            );
            assert_eq!(v["code"]["coding"][0]["code"], loinc, "{m:?}");
            assert_eq!(v["valueQuantity"]["code"], ucum, "{m:?}");
            assert_eq!(v["valueQuantity"]["system"], crate::common::UCUM, "{m:?}");
            assert_eq!(
                v["category"][0]["coding"][0]["code"], "vital-signs",
                "{m:?}"
            );
        }
    }

    #[test]
    fn spo2_carries_both_loinc_codes_and_mdc() {
        let v = observation_to_fhir(&single(Measurand::Spo2, 97.0));
        assert_eq!(
            codings_of(&v["code"]),
            [
                (LOINC, "59408-5"),
                (LOINC, "2708-6"),
                (MDC, "150456"),
                (SYSTEM_CODE, "spo2")
            ]
        );
        assert_eq!(
            v["code"]["coding"][1]["display"],
            "Oxygen saturation in Arterial blood"
        );
        assert_eq!(v["code"]["coding"][2]["display"], "MDC_PULS_OXIM_SAT_O2");
        assert_eq!(v["valueQuantity"]["unit"], "%");
    }

    #[test]
    fn glucose_is_laboratory_and_steps_activity_without_vital_signs_profiles() {
        let g = observation_to_fhir(&single(Measurand::Glucose, 99.0));
        assert_eq!(g["category"][0]["coding"][0]["code"], "laboratory");
        assert!(g.get("meta").is_none());
        assert_eq!(g["valueQuantity"]["code"], "mg/dL");
        let s = observation_to_fhir(&single(Measurand::Steps, 1200.0));
        assert_eq!(s["category"][0]["coding"][0]["code"], "activity");
        assert!(s.get("meta").is_none());
        assert_eq!(s["valueQuantity"]["code"], "{steps}");
        assert_eq!(
            codings_of(&s["code"]),
            [(LOINC, "55423-8"), (SYSTEM_CODE, "steps")],
            "steps have no MDC code"
        );
    }

    #[test]
    fn blood_pressure_is_a_panel_of_components_without_a_value() {
        let v = observation_to_fhir(&bp(&[
            (Measurand::SystolicBp, 128.0),
            (Measurand::DiastolicBp, 80.0),
            (Measurand::MeanBp, 96.0),
        ]));
        assert_eq!(
            profiles_of(&v),
            [
                PROFILE_VITAL_SIGNS,
                "http://hl7.org/fhir/StructureDefinition/bp"
            ]
        );
        assert_eq!(
            codings_of(&v["code"]),
            [
                (LOINC, "85354-9"),
                (MDC, "150020"),
                (SYSTEM_CODE, "blood_pressure")
            ]
        );
        assert!(v.get("valueQuantity").is_none());
        let parts = v["component"].as_array().unwrap();
        assert_eq!(parts.len(), 3);
        let expected = [
            ("8480-6", "150021", 128),
            ("8462-4", "150022", 80),
            ("8478-0", "150023", 96),
        ];
        for (part, (loinc, mdc, value)) in parts.iter().zip(expected) {
            assert_eq!(codings_of(&part["code"]), [(LOINC, loinc), (MDC, mdc)]);
            assert_eq!(part["valueQuantity"]["value"], value);
            assert_eq!(part["valueQuantity"]["code"], "mm[Hg]");
            assert_eq!(part["valueQuantity"]["unit"], "mmHg");
            assert_eq!(part["valueQuantity"]["system"], crate::common::UCUM);
        }
        assert_eq!(parts[0]["code"]["text"], "Systolic blood pressure");
    }

    #[test]
    fn a_panel_without_its_diastolic_part_does_not_claim_the_bp_profile() {
        let v = observation_to_fhir(&bp(&[(Measurand::SystolicBp, 128.0)]));
        assert_eq!(profiles_of(&v), [PROFILE_VITAL_SIGNS]);
        assert_eq!(v["component"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn converted_values_keep_their_full_precision() {
        let kpa = 16_000.0 / 133.322_387_415;
        let v = observation_to_fhir(&bp(&[
            (Measurand::SystolicBp, kpa),
            (Measurand::DiastolicBp, 80.0),
        ]));
        let written = &v["component"][0]["valueQuantity"]["value"];
        assert_eq!(written.as_f64().unwrap(), kpa);
        let t = observation_to_fhir(&single(Measurand::Temperature, 37.0));
        assert_eq!(
            serde_json::to_string(&t["valueQuantity"]["value"]).unwrap(),
            "37"
        );
    }

    #[test]
    fn quality_flags_become_extensions() {
        let mut o = single(Measurand::Temperature, 37.0);
        o.quality = QualityFlags::CONVERTED_UNIT | QualityFlags::ARTIFACT;
        let v = observation_to_fhir(&o);
        assert_eq!(
            v["extension"],
            json!([
                { "url": EXT_QUALITY, "valueCode": "converted-unit" },
                { "url": EXT_QUALITY, "valueCode": "artifact" },
            ])
        );
        assert!(v.get("interpretation").is_none());
    }

    #[test]
    fn status_is_written_as_fhir_spells_it() {
        let mut o = single(Measurand::HeartRate, 72.0);
        o.status = ObservationStatus::EnteredInError;
        assert_eq!(observation_to_fhir(&o)["status"], "entered-in-error");
    }

    #[test]
    fn a_value_json_cannot_carry_is_reported_absent() {
        let v = observation_to_fhir(&single(Measurand::HeartRate, f64::NAN));
        assert!(v.get("valueQuantity").is_none());
        assert_eq!(v["dataAbsentReason"]["coding"][0]["code"], "error");
        assert_eq!(
            profiles_of(&v),
            [PROFILE_VITAL_SIGNS],
            "heartrate needs a value"
        );
    }

    fn waveform(samples: Vec<i32>) -> StoredWaveform {
        StoredWaveform {
            id: 7,
            patient: PatientId::new("p-1").unwrap(),
            device: DeviceId::new("mon-1").unwrap(),
            segment: WaveformSegment {
                code: WaveformCode::EcgLeadIi,
                start: t(0),
                period_ms: 4.0,
                factor: 0.005,
                origin: 0.0,
                samples,
            },
            received: t(3),
        }
    }

    #[test]
    fn waveform_is_sampled_data() {
        let v = waveform_to_fhir(&waveform(vec![0, 12, -7, 250]));
        assert_eq!(v["resourceType"], "Observation");
        assert_eq!(v["id"], "w-7");
        let (mdc, refid) = WaveformCode::EcgLeadIi.mdc();
        assert_eq!(
            codings_of(&v["code"]),
            [
                (MDC, mdc.to_string().as_str()),
                (SYSTEM_CODE, "ecg_lead_ii")
            ]
        );
        assert_eq!(v["code"]["coding"][0]["display"], refid);
        assert_eq!(v["code"]["text"], "ECG lead II");
        let sd = &v["valueSampledData"];
        assert_eq!(
            sd["origin"],
            json!({ "value": 0, "unit": "mV", "system": crate::common::UCUM, "code": "mV" })
        );
        assert_eq!(sd["period"], 4);
        assert_eq!(sd["factor"], 0.005);
        assert_eq!(sd["dimensions"], 1);
        assert_eq!(sd["data"], "0 12 -7 250");
        assert_eq!(v["effectivePeriod"]["start"], "2026-11-21T10:00:00.000Z");
        assert_eq!(
            v["effectivePeriod"]["end"], "2026-11-21T10:00:00.016Z",
            "4 samples × 4 ms"
        );
        assert_eq!(v["issued"], "2026-11-21T10:00:03.000Z");
        assert_eq!(v["subject"]["reference"], "Patient/p-1");
        assert_eq!(v["device"]["reference"], "Device/mon-1");
        assert!(
            v.get("meta").is_none(),
            "no vital-signs profile for a waveform"
        );
    }

    #[test]
    fn an_empty_segment_has_no_data_string() {
        let v = waveform_to_fhir(&waveform(Vec::new()));
        assert!(v["valueSampledData"].get("data").is_none());
    }

    #[test]
    fn consciousness_is_a_coded_exam_finding_without_a_vital_signs_profile() {
        let mut o = single(Measurand::Consciousness, 0.0);
        o.value = ObservationValue::Acvpu(vigil_model::Acvpu::Voice);
        let v = observation_to_fhir(&o);
        assert_eq!(v["category"][0]["coding"][0]["code"], "exam");
        assert_eq!(v["code"]["coding"][0]["code"], "67775-7");
        assert_eq!(
            v["valueCodeableConcept"]["coding"][0]["system"],
            SYSTEM_ACVPU
        );
        assert_eq!(v["valueCodeableConcept"]["coding"][0]["code"], "V");
        assert!(v.get("meta").is_none(), "no profile claimed: {v}");
        assert!(v.get("valueQuantity").is_none());
    }

    #[test]
    fn on_oxygen_yes_no_is_a_boolean_under_vigils_own_code() {
        let mut o = single(Measurand::SupplementalOxygen, 0.0);
        o.value = ObservationValue::OnOxygen(true);
        let v = observation_to_fhir(&o);
        assert_eq!(v["valueBoolean"], true);
        assert_eq!(codings_of(&v["code"]), [(SYSTEM_CODE, "o2_supplemental")]);
        assert!(v.get("meta").is_none());
        // A flow is a quantity under LOINC 3151-8.
        let v = observation_to_fhir(&single(Measurand::SupplementalOxygen, 2.0));
        assert_eq!(v["code"]["coding"][0]["code"], "3151-8");
        assert_eq!(v["valueQuantity"]["code"], "L/min");
    }
}
