//! The research view: resources with the patient's direct identifiers removed.
//!
//! Follows the HIPAA Privacy Rule's de-identification of a *limited data set* (45 CFR
//! 164.514(e)): names, identifiers (MRN, device serials), contact details and narrative text are
//! removed; the patient and device ids are replaced by stable pseudonyms (so a researcher can
//! follow one patient's series without learning who they are); a birth date keeps only its year.
//! Observation times are kept: vital-sign research needs them, and the limited data set allows
//! dates under a data-use agreement. Full Safe Harbor de-identification (§164.514(b)(2)) would
//! also remove the dates; see docs/security.md.

use serde_json::Value;

/// Elements dropped from every resource: narrative, identifiers, contact and free text.
const DROPPED: &[&str] = &[
    "text",
    "identifier",
    "name",
    "telecom",
    "address",
    "contact",
    "photo",
    "performer",
    "note",
];

/// De-identifies a rendered Patient, Observation or Device in place. `pseudonym(type, id)`
/// gives the stable replacement for a real id.
pub fn deidentify(resource: &mut Value, pseudonym: &dyn Fn(&str, &str) -> String) {
    let Some(object) = resource.as_object_mut() else {
        return;
    };
    let resource_type = object
        .get("resourceType")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    for name in DROPPED {
        object.remove(*name);
    }
    if let Some(Value::String(id)) = object.get_mut("id")
        && matches!(resource_type.as_str(), "Patient" | "Device")
    {
        *id = pseudonym(&resource_type, id);
    }
    if let Some(Value::String(born)) = object.get_mut("birthDate") {
        born.truncate(4);
    }
    for (name, value) in object.iter_mut() {
        if matches!(name.as_str(), "subject" | "device" | "patient" | "source") {
            pseudonymise_reference(value, pseudonym);
        }
    }
    // Components and contained parts carry no identifiers beyond the references handled above.
    if let Some(Value::Array(components)) = object.get_mut("component") {
        for c in components {
            if let Some(c) = c.as_object_mut() {
                c.remove("text");
            }
        }
    }
}

fn pseudonymise_reference(value: &mut Value, pseudonym: &dyn Fn(&str, &str) -> String) {
    let Some(reference) = value.as_object_mut() else {
        return;
    };
    reference.remove("display");
    reference.remove("identifier");
    if let Some(Value::String(r)) = reference.get_mut("reference")
        && let Some((kind, id)) = r.split_once('/')
    {
        *r = format!("{kind}/{}", pseudonym(kind, id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fake(kind: &str, id: &str) -> String {
        format!("anon-{}-{}", kind.len(), id.len())
    }

    #[test]
    fn a_patient_loses_names_identifiers_and_all_but_the_birth_year() {
        let mut p = json!({
            "resourceType": "Patient", "id": "pat-001",
            "text": {"div": "<div>Jan Novak</div>"},
            "identifier": [{"value": "MRN-1"}],
            "name": [{"text": "Jan Novak"}],
            "telecom": [{"value": "+420"}],
            "birthDate": "1950-03-14", "gender": "male"
        });
        deidentify(&mut p, &fake);
        assert_eq!(
            p,
            json!({"resourceType": "Patient", "id": "anon-7-7", "birthDate": "1950", "gender": "male"})
        );
    }

    #[test]
    fn an_observation_keeps_its_values_and_times_under_pseudonymous_references() {
        let mut o = json!({
            "resourceType": "Observation", "id": "42",
            "subject": {"reference": "Patient/pat-001", "display": "Jan Novak"},
            "device": {"reference": "Device/mon-1"},
            "effectiveDateTime": "2026-11-22T04:00:00Z",
            "valueQuantity": {"value": 72}
        });
        deidentify(&mut o, &fake);
        assert_eq!(o["subject"], json!({"reference": "Patient/anon-7-7"}));
        assert_eq!(o["device"], json!({"reference": "Device/anon-6-5"}));
        assert_eq!(o["id"], "42", "observation ids identify nobody");
        assert_eq!(o["effectiveDateTime"], "2026-11-22T04:00:00Z");
        assert_eq!(o["valueQuantity"]["value"], 72);
    }
}
