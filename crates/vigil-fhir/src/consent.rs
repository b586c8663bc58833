//! A patient's consent to share, as FHIR R4 `Consent` (<http://hl7.org/fhir/R4/consent.html>):
//! scope `patient-privacy`, category LOINC 59284-0 (patient consent), policy rule `OPTIN`, and
//! one `permit` provision with the grantee as an actor in the role `IRCP` (information
//! recipient), the action `access`, the period and the shared resource types as `class`.
//!
//! The grantee is a Vigil account (a family member, a physician) or an organisation. Input names
//! it by reference (`RelatedPerson/{account}`, `Practitioner/{account}`, `Person/{account}`,
//! `Organization/{id}`) or by identifier (`urn:vigil:account` / `urn:vigil:organization`); output
//! uses the identifier form, since Vigil serves no Practitioner or Organization resources to
//! resolve a literal reference to.

use chrono::SubsecRound;
use serde_json::{Map, Value, json};
use vigil_model::{Consent, ConsentId, ConsentStatus, Grantee, GranteeKind, Instant, PatientId};

use crate::FhirError;
use crate::common::{instant, reference};
use crate::patient::{check_resource_type, json_object};

pub const SYSTEM_ACCOUNT: &str = "urn:vigil:account";
pub const SYSTEM_ORGANIZATION: &str = "urn:vigil:organization";
const SYSTEM_SCOPE: &str = "http://terminology.hl7.org/CodeSystem/consentscope";
const SYSTEM_ACTION: &str = "http://terminology.hl7.org/CodeSystem/consentaction";
const SYSTEM_ACT_CODE: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode";
const SYSTEM_PARTICIPATION: &str = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType";
const SYSTEM_RESOURCE_TYPES: &str = "http://hl7.org/fhir/resource-types";

/// The FHIR resource types a consent may share (what Vigil holds about a patient).
pub const SHAREABLE: &[&str] = &["Patient", "Observation", "Flag", "Device", "DeviceMetric"];

/// What a Consent sent to Vigil says.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsentInput {
    pub id: Option<ConsentId>,
    pub patient: PatientId,
    pub grantee: Grantee,
    pub resource_types: Vec<String>,
    pub start: Option<Instant>,
    pub end: Option<Instant>,
    pub status: ConsentStatus,
}

pub fn consent_to_fhir(c: &Consent) -> Value {
    let (kind, system) = match c.grantee.kind {
        GranteeKind::Person => (None, SYSTEM_ACCOUNT),
        GranteeKind::Organization => (Some("Organization"), SYSTEM_ORGANIZATION),
    };
    let mut actor_ref = json!({ "identifier": { "system": system, "value": c.grantee.id } });
    if let Some(kind) = kind {
        actor_ref["type"] = json!(kind);
    }
    let mut period = json!({ "start": instant(c.start) });
    if let Some(end) = c.end {
        period["end"] = json!(instant(end));
    }
    let mut provision = json!({
        "type": "permit",
        "period": period,
        "actor": [{
            "role": { "coding": [{ "system": SYSTEM_PARTICIPATION, "code": "IRCP", "display": "information recipient" }] },
            "reference": actor_ref,
        }],
        "action": [{ "coding": [{ "system": SYSTEM_ACTION, "code": "access", "display": "Access" }] }],
    });
    if !c.resource_types.is_empty() {
        provision["class"] = c
            .resource_types
            .iter()
            .map(|t| json!({ "system": SYSTEM_RESOURCE_TYPES, "code": t }))
            .collect();
    }
    json!({
        "resourceType": "Consent",
        "id": c.id.as_str(),
        "status": match c.status {
            ConsentStatus::Active => "active",
            ConsentStatus::Inactive => "inactive",
        },
        "scope": { "coding": [{ "system": SYSTEM_SCOPE, "code": "patient-privacy", "display": "Privacy Consent" }] },
        "category": [{ "coding": [{ "system": "http://loinc.org", "code": "59284-0", "display": "Patient Consent" }] }],
        "patient": reference("Patient", c.patient.as_str()),
        "dateTime": instant(c.recorded_at),
        "policyRule": { "coding": [{ "system": SYSTEM_ACT_CODE, "code": "OPTIN" }] },
        "provision": provision,
    })
}

fn invalid(path: &str, value: &Value, reason: impl Into<String>) -> FhirError {
    FhirError::InvalidElement {
        path: path.to_owned(),
        value: value.to_string(),
        reason: reason.into(),
    }
}

fn missing(path: &str, detail: &'static str) -> FhirError {
    FhirError::MissingElement {
        path: path.to_owned(),
        detail,
    }
}

fn time(value: &Value, path: &str) -> Result<Instant, FhirError> {
    let raw = value
        .as_str()
        .ok_or_else(|| invalid(path, value, "a dateTime is a string"))?;
    // To the millisecond, as Vigil writes it back: a period of two instants within the same
    // millisecond would otherwise be accepted and then refused when sent back unchanged.
    chrono::DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&chrono::Utc).trunc_subsecs(3))
        .map_err(|_| {
            invalid(
                path,
                value,
                "a dateTime with a time zone, e.g. 2026-01-01T00:00:00Z",
            )
        })
}

fn grantee(actor: &Map<String, Value>, path: &str) -> Result<Grantee, FhirError> {
    let reference = actor
        .get("reference")
        .and_then(Value::as_object)
        .ok_or_else(|| missing(&format!("{path}.reference"), "who is granted access"))?;
    if let Some(raw) = reference.get("reference") {
        let text = raw.as_str().unwrap_or_default();
        let (kind, id) = text
            .split_once('/')
            .ok_or_else(|| invalid(&format!("{path}.reference.reference"), raw, "Type/id"))?;
        let kind = match kind {
            "RelatedPerson" | "Practitioner" | "Person" => GranteeKind::Person,
            "Organization" => GranteeKind::Organization,
            _ => {
                return Err(invalid(
                    &format!("{path}.reference.reference"),
                    raw,
                    "the grantee is a RelatedPerson, Practitioner, Person or Organization",
                ));
            }
        };
        return grantee_id(kind, id, raw, &format!("{path}.reference.reference"));
    }
    let identifier = reference
        .get("identifier")
        .and_then(Value::as_object)
        .ok_or_else(|| {
            missing(
                &format!("{path}.reference"),
                "a reference (RelatedPerson/{account}) or an identifier naming the grantee",
            )
        })?;
    let system = identifier.get("system").cloned().unwrap_or(Value::Null);
    let kind = match system.as_str() {
        Some(SYSTEM_ACCOUNT) => GranteeKind::Person,
        Some(SYSTEM_ORGANIZATION) => GranteeKind::Organization,
        _ => {
            return Err(invalid(
                &format!("{path}.reference.identifier.system"),
                &system,
                format!("the identifier system is {SYSTEM_ACCOUNT} or {SYSTEM_ORGANIZATION}"),
            ));
        }
    };
    let value = identifier.get("value").cloned().unwrap_or(Value::Null);
    grantee_id(
        kind,
        value.as_str().unwrap_or_default(),
        &value,
        &format!("{path}.reference.identifier.value"),
    )
}

fn grantee_id(kind: GranteeKind, id: &str, raw: &Value, path: &str) -> Result<Grantee, FhirError> {
    // Accounts and organisations use the id alphabet (letters, digits, '-', '.').
    vigil_model::UserId::new(id).map_err(|e| invalid(path, raw, e.to_string()))?;
    Ok(Grantee {
        kind,
        id: id.to_owned(),
    })
}

/// Reads a Consent a patient (or their proxy) sends. `url_id` is the id of a PUT's URL.
pub fn consent_from_fhir(
    body: &[u8],
    url_id: Option<&ConsentId>,
) -> Result<ConsentInput, FhirError> {
    let map = json_object(body)?;
    check_resource_type(&map, "Consent")?;
    for refused in [
        "modifierExtension",
        "implicitRules",
        "policy",
        "verification",
        "sourceAttachment",
        "sourceReference",
    ] {
        if map.contains_key(refused) {
            return Err(FhirError::UnsupportedElement {
                path: format!("Consent.{refused}"),
                reason: "Vigil records consents to share (a permit provision for one grantee) and cannot honour this element".into(),
            });
        }
    }
    let id = map
        .get("id")
        .map(|raw| {
            raw.as_str()
                .and_then(|s| ConsentId::new(s).ok())
                .ok_or_else(|| invalid("Consent.id", raw, "1-64 letters, digits, '-' or '.'"))
        })
        .transpose()?;
    if let Some(url_id) = url_id {
        match &id {
            None => {
                return Err(missing(
                    "Consent.id",
                    "an update (PUT) must carry the id of its URL",
                ));
            }
            Some(id) if id != url_id => {
                return Err(FhirError::IdMismatch {
                    url: url_id.to_string(),
                    body: id.to_string(),
                });
            }
            Some(_) => {}
        }
    }
    let status_raw = map
        .get("status")
        .ok_or_else(|| missing("Consent.status", "active, or inactive to revoke"))?;
    let status = match status_raw.as_str() {
        Some("active") => ConsentStatus::Active,
        Some("inactive") => ConsentStatus::Inactive,
        _ => {
            return Err(invalid(
                "Consent.status",
                status_raw,
                "Vigil records active consents and their revocation (inactive)",
            ));
        }
    };
    let scope = map.get("scope").cloned().unwrap_or(Value::Null);
    let privacy = scope["coding"].as_array().is_some_and(|c| {
        c.iter()
            .any(|c| c["system"] == SYSTEM_SCOPE && c["code"] == "patient-privacy")
    });
    if !privacy {
        return Err(invalid(
            "Consent.scope",
            &scope,
            "Vigil records privacy consents (consentscope#patient-privacy)",
        ));
    }
    let patient_raw = map
        .get("patient")
        .ok_or_else(|| missing("Consent.patient", "whose consent it is"))?;
    let patient = patient_raw["reference"]
        .as_str()
        .and_then(|r| r.strip_prefix("Patient/"))
        .and_then(|id| PatientId::new(id).ok())
        .ok_or_else(|| invalid("Consent.patient", patient_raw, "a reference Patient/{id}"))?;
    let provisions = map
        .get("provision")
        .and_then(Value::as_object)
        .ok_or_else(|| {
            missing(
                "Consent.provision",
                "what is permitted, to whom, for how long",
            )
        })?;
    if let Some(kind) = provisions.get("type")
        && kind != "permit"
    {
        return Err(invalid(
            "Consent.provision.type",
            kind,
            "Vigil records permits",
        ));
    }
    if provisions.contains_key("provision") {
        return Err(FhirError::UnsupportedElement {
            path: "Consent.provision.provision".into(),
            reason: "nested provisions (exceptions) are not supported".into(),
        });
    }
    let actors = provisions
        .get("actor")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty())
        .ok_or_else(|| {
            missing(
                "Consent.provision.actor",
                "the person or organisation granted access",
            )
        })?;
    if actors.len() > 1 {
        return Err(FhirError::UnsupportedElement {
            path: "Consent.provision.actor".into(),
            reason: "one grantee per consent: record one Consent per person".into(),
        });
    }
    let actor = actors[0]
        .as_object()
        .ok_or_else(|| invalid("Consent.provision.actor[0]", &actors[0], "an object"))?;
    let grantee = grantee(actor, "Consent.provision.actor[0]")?;
    let mut resource_types = Vec::new();
    if let Some(classes) = provisions.get("class") {
        let list = classes
            .as_array()
            .ok_or_else(|| invalid("Consent.provision.class", classes, "a list of Codings"))?;
        for (i, class) in list.iter().enumerate() {
            let code = class["code"].as_str().unwrap_or_default();
            if !SHAREABLE.contains(&code) {
                return Err(invalid(
                    &format!("Consent.provision.class[{i}]"),
                    class,
                    format!("the shareable resource types are {}", SHAREABLE.join(", ")),
                ));
            }
            if !resource_types.iter().any(|t| t == code) {
                resource_types.push(code.to_owned());
            }
        }
    }
    let (mut start, mut end) = (None, None);
    if let Some(period) = provisions.get("period") {
        if let Some(s) = period.get("start") {
            start = Some(time(s, "Consent.provision.period.start")?);
        }
        if let Some(e) = period.get("end") {
            end = Some(time(e, "Consent.provision.period.end")?);
        }
        if let (Some(s), Some(e)) = (start, end)
            && e <= s
        {
            return Err(invalid(
                "Consent.provision.period",
                period,
                "the end must be after the start",
            ));
        }
    }
    Ok(ConsentInput {
        id,
        patient,
        grantee,
        resource_types,
        start,
        end,
        status,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn body() -> Value {
        json!({
            "resourceType": "Consent",
            "status": "active",
            "scope": {"coding": [{"system": SYSTEM_SCOPE, "code": "patient-privacy"}]},
            "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
            "patient": {"reference": "Patient/pat-001"},
            "policyRule": {"coding": [{"system": SYSTEM_ACT_CODE, "code": "OPTIN"}]},
            "provision": {
                "type": "permit",
                "period": {"start": "2026-11-01T00:00:00Z", "end": "2027-11-01T00:00:00Z"},
                "actor": [{"role": {"coding": [{"system": SYSTEM_PARTICIPATION, "code": "IRCP"}]},
                           "reference": {"reference": "RelatedPerson/daughter.eva"}}],
                "action": [{"coding": [{"system": SYSTEM_ACTION, "code": "access"}]}],
                "class": [{"system": SYSTEM_RESOURCE_TYPES, "code": "Observation"}]
            }
        })
    }

    fn parse(v: &Value) -> Result<ConsentInput, FhirError> {
        consent_from_fhir(v.to_string().as_bytes(), None)
    }

    #[test]
    fn a_consent_to_share_with_a_family_member_is_read() {
        let input = parse(&body()).unwrap();
        assert_eq!(input.patient.as_str(), "pat-001");
        assert_eq!(
            input.grantee,
            Grantee {
                kind: GranteeKind::Person,
                id: "daughter.eva".into()
            }
        );
        assert_eq!(input.resource_types, ["Observation"]);
        assert_eq!(input.status, ConsentStatus::Active);
        assert_eq!(
            input.start,
            Some(chrono::Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap())
        );
        let mut org = body();
        org["provision"]["actor"][0]["reference"] =
            json!({"identifier": {"system": SYSTEM_ORGANIZATION, "value": "acme-insurance"}});
        assert_eq!(parse(&org).unwrap().grantee.kind, GranteeKind::Organization);
    }

    #[test]
    fn what_vigil_renders_it_reads_back() {
        let input = parse(&body()).unwrap();
        let consent = Consent {
            id: ConsentId::new("c1").unwrap(),
            patient: input.patient.clone(),
            grantee: input.grantee.clone(),
            resource_types: input.resource_types.clone(),
            start: input.start.unwrap(),
            end: input.end,
            status: input.status,
            recorded_by: vigil_model::UserId::new("pat-001").unwrap(),
            recorded_at: input.start.unwrap(),
        };
        let rendered = consent_to_fhir(&consent);
        let back = parse(&rendered).unwrap();
        assert_eq!(back.grantee, consent.grantee);
        assert_eq!(back.resource_types, consent.resource_types);
        assert_eq!((back.start, back.end), (Some(consent.start), consent.end));
        assert_eq!(back.id, Some(consent.id));
    }

    #[test]
    fn a_period_within_one_millisecond_is_refused_like_its_rendering() {
        // Regression: 0.0005 and 0.0009 s apart were accepted, then written to the millisecond
        // as equal instants that Vigil refused when the consent came back unchanged.
        let mut v = body();
        v["provision"]["period"] =
            json!({"start": "2026-11-01T00:00:00.0005Z", "end": "2026-11-01T00:00:00.0009Z"});
        assert!(matches!(
            parse(&v),
            Err(FhirError::InvalidElement { path, .. }) if path == "Consent.provision.period"
        ));
        v["provision"]["period"] =
            json!({"start": "2026-11-01T00:00:00.0005Z", "end": "2026-11-01T00:00:00.0015Z"});
        let input = parse(&v).unwrap();
        assert_eq!(input.start.unwrap().timestamp_subsec_micros(), 0);
        assert_eq!(input.end.unwrap().timestamp_subsec_micros(), 1000);
    }

    #[test]
    fn bad_consents_are_refused_naming_the_element() {
        let path_of = |e: FhirError| match e {
            FhirError::InvalidElement { path, .. }
            | FhirError::MissingElement { path, .. }
            | FhirError::UnsupportedElement { path, .. } => path,
            other => format!("{other:?}"),
        };
        type Mutation = Box<dyn Fn(&mut Value)>;
        let cases: Vec<(Mutation, &str)> = vec![
            (
                Box::new(|v| v["status"] = json!("proposed")),
                "Consent.status",
            ),
            (
                Box::new(|v| {
                    v.as_object_mut().unwrap().remove("status");
                }),
                "Consent.status",
            ),
            (
                Box::new(|v| v["scope"]["coding"][0]["code"] = json!("research")),
                "Consent.scope",
            ),
            (
                Box::new(|v| v["patient"] = json!({"reference": "Group/1"})),
                "Consent.patient",
            ),
            (
                Box::new(|v| {
                    v.as_object_mut().unwrap().remove("provision");
                }),
                "Consent.provision",
            ),
            (
                Box::new(|v| v["provision"]["type"] = json!("deny")),
                "Consent.provision.type",
            ),
            (
                Box::new(|v| v["provision"]["actor"] = json!([])),
                "Consent.provision.actor",
            ),
            (
                Box::new(|v| {
                    v["provision"]["actor"][0]["reference"] = json!({"reference": "Device/x"})
                }),
                "Consent.provision.actor[0].reference.reference",
            ),
            (
                Box::new(|v| {
                    v["provision"]["actor"][0]["reference"] =
                        json!({"reference": "RelatedPerson/a b"})
                }),
                "Consent.provision.actor[0].reference.reference",
            ),
            (
                Box::new(|v| {
                    v["provision"]["actor"][0]["reference"] =
                        json!({"identifier": {"system": "urn:other", "value": "x"}})
                }),
                "Consent.provision.actor[0].reference.identifier.system",
            ),
            (
                Box::new(|v| v["provision"]["class"] = json!([{"code": "MedicationRequest"}])),
                "Consent.provision.class[0]",
            ),
            (
                Box::new(|v| v["provision"]["period"]["end"] = json!("2026-10-01T00:00:00Z")),
                "Consent.provision.period",
            ),
            (
                Box::new(|v| v["provision"]["period"]["start"] = json!("yesterday")),
                "Consent.provision.period.start",
            ),
            (
                Box::new(|v| v["provision"]["provision"] = json!([{}])),
                "Consent.provision.provision",
            ),
            (
                Box::new(|v| v["modifierExtension"] = json!([])),
                "Consent.modifierExtension",
            ),
            (Box::new(|v| v["id"] = json!("a/b")), "Consent.id"),
        ];
        for (mutate, want) in cases {
            let mut v = body();
            mutate(&mut v);
            assert_eq!(path_of(parse(&v).unwrap_err()), want, "{v}");
        }
        assert!(matches!(
            consent_from_fhir(b"[]", None),
            Err(FhirError::NotAnObject { .. })
        ));
        assert!(matches!(
            consent_from_fhir(b"{", None),
            Err(FhirError::NotJson { .. })
        ));
        let mut other = body();
        other["id"] = json!("c2");
        assert!(matches!(
            consent_from_fhir(
                other.to_string().as_bytes(),
                Some(&ConsentId::new("c1").unwrap())
            ),
            Err(FhirError::IdMismatch { .. })
        ));
    }
}
