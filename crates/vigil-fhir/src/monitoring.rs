//! A patient's monitoring settings (cohort, NEWS2 SpO2 scale, alarm limits) as an extension on
//! the FHIR `Patient`, so that an EHR sees which limits Vigil alarms on for this patient.
//!
//! FHIR R4 has no resource for per-patient alarm limits (`DeviceMetric` describes a device's
//! measurement, not a patient's limits; `Observation.referenceRange` is a normal range, not an
//! alarm limit), so they are one complex extension, read-only: they are changed through
//! `PUT /api/v1/patients/{id}/settings`, where each change is validated and audited, and an
//! extension sent back in a Patient update is ignored.
//!
//! ```json
//! {"url": "urn:vigil:monitoring", "extension": [
//!   {"url": "cohort", "valueString": "copd"},
//!   {"url": "spo2-scale", "valueInteger": 2},
//!   {"url": "alarm-limit", "extension": [
//!     {"url": "code", "valueCoding": {"system": "http://loinc.org", "code": "59408-5"}},
//!     {"url": "bound", "valueCode": "low"},
//!     {"url": "limit", "valueQuantity": {"value": 85, "unit": "%", "system": "http://unitsofmeasure.org", "code": "%"}},
//!     {"url": "priority", "valueCode": "high"},
//!     {"url": "delay", "valueDuration": {"value": 15, "unit": "s", "system": "http://unitsofmeasure.org", "code": "s"}}]}]}
//! ```

use serde_json::{Value, json};
use vigil_model::Measurand;

use crate::common::{LOINC, UCUM, coding};

/// Extension on a Patient: the monitoring settings in force.
pub const EXT_MONITORING: &str = "urn:vigil:monitoring";

/// One alarm limit: being beyond `limit` on the `bound` side for `delay_secs` raises an alarm
/// of `priority`.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmLimit {
    pub measurand: Measurand,
    /// `low` or `high`.
    pub bound: &'static str,
    /// In the measurand's canonical unit.
    pub limit: f64,
    /// `low`, `medium` or `high`.
    pub priority: &'static str,
    pub delay_secs: u32,
}

/// What the extension shows.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MonitoringSettings {
    pub cohort: Option<String>,
    pub spo2_scale: u8,
    pub limits: Vec<AlarmLimit>,
}

/// Adds the monitoring extension to a Patient resource (as built by `patient_to_fhir`).
pub fn add_monitoring_extension(patient: &mut Value, settings: &MonitoringSettings) {
    let mut parts = Vec::new();
    if let Some(cohort) = &settings.cohort {
        parts.push(json!({ "url": "cohort", "valueString": cohort }));
    }
    parts.push(json!({ "url": "spo2-scale", "valueInteger": settings.spo2_scale }));
    for l in settings.limits.iter().filter(|l| l.limit.is_finite()) {
        let unit = l.measurand.canonical_unit();
        parts.push(json!({ "url": "alarm-limit", "extension": [
            { "url": "code", "valueCoding": coding(LOINC, l.measurand.loinc(), l.measurand.display()) },
            { "url": "bound", "valueCode": l.bound },
            { "url": "limit", "valueQuantity": {
                "value": l.limit, "unit": l.measurand.unit_display(), "system": UCUM, "code": unit,
            } },
            { "url": "priority", "valueCode": l.priority },
            { "url": "delay", "valueDuration": {
                "value": l.delay_secs, "unit": "s", "system": UCUM, "code": "s",
            } },
        ] }));
    }
    let extension = json!({ "url": EXT_MONITORING, "extension": parts });
    match patient.get_mut("extension").and_then(Value::as_array_mut) {
        Some(list) => list.push(extension),
        None => patient["extension"] = json!([extension]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_become_one_complex_extension() {
        let mut p = json!({ "resourceType": "Patient", "id": "p1" });
        add_monitoring_extension(
            &mut p,
            &MonitoringSettings {
                cohort: Some("copd".into()),
                spo2_scale: 2,
                limits: vec![
                    AlarmLimit {
                        measurand: Measurand::Spo2,
                        bound: "low",
                        limit: 85.0,
                        priority: "high",
                        delay_secs: 15,
                    },
                    AlarmLimit {
                        measurand: Measurand::HeartRate,
                        bound: "high",
                        limit: f64::NAN,
                        priority: "medium",
                        delay_secs: 10,
                    },
                ],
            },
        );
        let ext = &p["extension"][0];
        assert_eq!(ext["url"], EXT_MONITORING);
        assert_eq!(ext["extension"][0]["valueString"], "copd");
        assert_eq!(ext["extension"][1]["valueInteger"], 2);
        let limit = &ext["extension"][2]["extension"];
        assert_eq!(limit[0]["valueCoding"]["code"], "59408-5");
        assert_eq!(limit[1]["valueCode"], "low");
        assert_eq!(limit[2]["valueQuantity"]["value"], 85.0);
        assert_eq!(limit[2]["valueQuantity"]["code"], "%");
        assert_eq!(limit[3]["valueCode"], "high");
        assert_eq!(limit[4]["valueDuration"]["value"], 15);
        assert_eq!(
            ext["extension"].as_array().unwrap().len(),
            3,
            "a limit JSON cannot carry is left out"
        );
    }
}
