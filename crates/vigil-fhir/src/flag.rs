//! Alarms as FHIR R4 `Flag`s: a prospective warning shown to the people caring for the patient,
//! active while the alarm is open and inactive once it is resolved.
//!
//! Why Flag: of R4's candidates it is the one whose purpose is "an alert to staff about a patient
//! that is current for a period" with an active/inactive status, a period and (through the core
//! `flag-priority` extension) a priority. `DetectedIssue` is for problems found in a set of
//! clinical actions (drug interactions) and `Communication` for a message sent: notifications
//! (issue 7) will use Communication for delivery; the alarm itself is a Flag.

use serde_json::{Value, json};
use vigil_model::{Instant, PatientId};

use crate::common::{instant, reference};

/// Vigil's code system for alarm conditions (`news2:band`, `threshold:spo2:low`, …).
pub const SYSTEM_ALARM_CONDITION: &str = "urn:vigil:alarm-condition";
const EXT_FLAG_PRIORITY: &str = "http://hl7.org/fhir/StructureDefinition/flag-priority";
const SYSTEM_FLAG_PRIORITY: &str = "http://hl7.org/fhir/flag-priority-code";
const SYSTEM_FLAG_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/flag-category";

/// What the Flag view needs of an alarm (the alarm types live in the rules crate; this crate
/// knows only the model).
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmFlag<'a> {
    pub id: u64,
    pub patient: &'a PatientId,
    /// Stable condition id, e.g. `news2:band`.
    pub condition: &'a str,
    pub message: &'a str,
    /// `low`, `medium` or `high`.
    pub priority: &'a str,
    /// Physiological (about the patient) or technical (about the equipment).
    pub physiological: bool,
    /// Not yet resolved.
    pub open: bool,
    pub raised_at: Instant,
    pub resolved_at: Option<Instant>,
}

/// An alarm as a `Flag`.
pub fn alarm_to_flag(a: &AlarmFlag<'_>) -> Value {
    let (priority_code, priority_display) = match a.priority {
        "high" => ("PH", "High priority"),
        "medium" => ("PM", "Medium priority"),
        "low" => ("PL", "Low priority"),
        _ => ("PN", "No alarm"),
    };
    let (category, category_display) = if a.physiological {
        ("clinical", "Clinical")
    } else {
        ("safety", "Safety")
    };
    let mut period = json!({ "start": instant(a.raised_at) });
    if let Some(end) = a.resolved_at {
        period["end"] = Value::from(instant(end));
    }
    json!({
        "resourceType": "Flag",
        "id": a.id.to_string(),
        "extension": [{
            "url": EXT_FLAG_PRIORITY,
            "valueCodeableConcept": {
                "coding": [{ "system": SYSTEM_FLAG_PRIORITY, "code": priority_code, "display": priority_display }]
            }
        }],
        "status": if a.open { "active" } else { "inactive" },
        "category": [{
            "coding": [{ "system": SYSTEM_FLAG_CATEGORY, "code": category, "display": category_display }]
        }],
        "code": {
            "coding": [{ "system": SYSTEM_ALARM_CONDITION, "code": a.condition }],
            "text": a.message,
        },
        "subject": reference("Patient", a.patient.as_str()),
        "period": period,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn flag(open: bool) -> Value {
        let patient = PatientId::new("p1").unwrap();
        alarm_to_flag(&AlarmFlag {
            id: 7,
            patient: &patient,
            condition: "news2:band",
            message: "NEWS2 7, high clinical risk",
            priority: "high",
            physiological: true,
            open,
            raised_at: Utc.with_ymd_and_hms(2026, 11, 21, 10, 0, 0).unwrap(),
            resolved_at: (!open).then(|| Utc.with_ymd_and_hms(2026, 11, 21, 10, 30, 0).unwrap()),
        })
    }

    #[test]
    fn an_open_alarm_is_an_active_flag_with_its_priority() {
        let v = flag(true);
        assert_eq!(v["resourceType"], "Flag");
        assert_eq!(v["status"], "active");
        assert_eq!(v["extension"][0]["url"], EXT_FLAG_PRIORITY);
        assert_eq!(
            v["extension"][0]["valueCodeableConcept"]["coding"][0]["code"],
            "PH"
        );
        assert_eq!(v["code"]["coding"][0]["code"], "news2:band");
        assert_eq!(v["subject"]["reference"], "Patient/p1");
        assert!(v["period"].get("end").is_none());
    }

    #[test]
    fn a_resolved_alarm_is_inactive_with_an_end() {
        let v = flag(false);
        assert_eq!(v["status"], "inactive");
        assert_eq!(v["period"]["end"], "2026-11-21T10:30:00.000Z");
    }
}
