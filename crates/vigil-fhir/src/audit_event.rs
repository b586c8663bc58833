//! The audit trail as FHIR R4 `AuditEvent`s (<http://hl7.org/fhir/R4/auditevent.html>), shaped
//! after IHE Basic Audit Log Patterns (BALP).
//!
//! **type and subtype, per action:**
//!
//! | action | `type` | `subtype` | `action` |
//! |---|---|---|---|
//! | read, search, create, update, delete | `audit-event-type#rest` (RESTful Operation) | `restful-interaction#read` / `search-type` / `create` / `update` / `delete` | R / E / C / U / D |
//! | execute | `audit-event-type#rest` | `restful-interaction#operation` | E |
//! | export | DICOM `DCM#110106` Export | | R |
//! | login, logout, login-failed, token-use | DICOM `DCM#110114` User Authentication | `DCM#110122` Login / `DCM#110123` Logout (login-failed: Login with a failure outcome) | E |
//! | consent-change, alarm-acknowledge, alarm-silence | DICOM `DCM#110110` Patient Record | | U |
//! | permission-denied, credential-change, security-alert | DICOM `DCM#110113` Security Alert | | E (credential-change: U) |
//!
//! Every event also carries Vigil's own action code as a subtype in `urn:vigil:audit-action`, so
//! nothing is lost in the mapping. `outcome`: 0 success, 4 minor failure, 8 serious failure.
//!
//! The agent is the requestor (`requestor: true`): a device as `Device/{id}`, a person or system
//! by identifier (`urn:vigil:user`, `urn:vigil:system`), its role as text and its network address
//! (IP, `network.type` 2). `source.observer` is the Vigil instance (type 4, Application Server).
//! Each patient concerned is an entity with role 1 (Patient); the thing acted on is an entity of
//! type 2 (System Object), with the search's query in `entity.query` (base64) for searches.

use base64::Engine;
use serde_json::{Value, json};
use vigil_model::audit::{AgentKind, AuditAction, AuditEntry, AuditOutcome};

/// Vigil's own code system for [`AuditAction`] codes.
pub const SYSTEM_AUDIT_ACTION: &str = "urn:vigil:audit-action";
const DCM: &str = "http://dicom.nema.org/resources/ontology/DCM";
const EVENT_TYPE: &str = "http://terminology.hl7.org/CodeSystem/audit-event-type";
const RESTFUL: &str = "http://hl7.org/fhir/restful-interaction";
const ENTITY_TYPE: &str = "http://terminology.hl7.org/CodeSystem/audit-entity-type";
const OBJECT_ROLE: &str = "http://terminology.hl7.org/CodeSystem/object-role";
const SOURCE_TYPE: &str = "http://terminology.hl7.org/CodeSystem/security-source-type";

/// Resource types Vigil serves over FHIR: an entity of one of these is a `Type/id` reference.
const FHIR_TYPES: [&str; 7] = [
    "Patient",
    "Device",
    "DeviceMetric",
    "Observation",
    "Flag",
    "AuditEvent",
    "Bundle",
];

fn coding(system: &str, code: &str, display: &str) -> Value {
    json!({ "system": system, "code": code, "display": display })
}

/// `type`, the DICOM/REST subtype (if any) and the `action` code.
fn classify(action: AuditAction) -> (Value, Option<Value>, &'static str) {
    let rest = || coding(EVENT_TYPE, "rest", "RESTful Operation");
    let interaction = |code: &str| Some(coding(RESTFUL, code, code));
    let auth = || coding(DCM, "110114", "User Authentication");
    let record = || coding(DCM, "110110", "Patient Record");
    let alert = || coding(DCM, "110113", "Security Alert");
    match action {
        AuditAction::Read => (rest(), interaction("read"), "R"),
        AuditAction::Search => (rest(), interaction("search-type"), "E"),
        AuditAction::Create => (rest(), interaction("create"), "C"),
        AuditAction::Update => (rest(), interaction("update"), "U"),
        AuditAction::Delete => (rest(), interaction("delete"), "D"),
        AuditAction::Execute => (rest(), interaction("operation"), "E"),
        AuditAction::Export => (coding(DCM, "110106", "Export"), None, "R"),
        AuditAction::Login | AuditAction::LoginFailed | AuditAction::TokenUse => {
            (auth(), Some(coding(DCM, "110122", "Login")), "E")
        }
        AuditAction::Logout => (auth(), Some(coding(DCM, "110123", "Logout")), "E"),
        AuditAction::ConsentChange | AuditAction::AlarmAcknowledge | AuditAction::AlarmSilence => {
            (record(), None, "U")
        }
        AuditAction::CredentialChange => (alert(), None, "U"),
        AuditAction::PermissionDenied | AuditAction::SecurityAlert => (alert(), None, "E"),
    }
}

fn outcome_code(outcome: AuditOutcome) -> &'static str {
    match outcome {
        AuditOutcome::Success => "0",
        AuditOutcome::MinorFailure => "4",
        AuditOutcome::SeriousFailure => "8",
    }
}

/// The IP part of `"ip:port"` / `"[v6]:port"`; anything else as given.
fn network_address(address: &str) -> String {
    address
        .parse::<std::net::SocketAddr>()
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|_| address.to_owned())
}

fn agent(entry: &AuditEntry) -> Value {
    let a = &entry.agent;
    let who = match a.kind {
        AgentKind::Device => json!({ "reference": format!("Device/{}", a.id) }),
        AgentKind::Person => json!({ "identifier": { "system": "urn:vigil:user", "value": a.id } }),
        AgentKind::System => {
            json!({ "identifier": { "system": "urn:vigil:system", "value": a.id } })
        }
        AgentKind::Anonymous => json!({ "display": "anonymous" }),
    };
    let mut agent = json!({ "who": who, "requestor": true });
    if let Some(name) = &a.name {
        agent["who"]["display"] = json!(name);
    }
    if let Some(role) = &a.role {
        agent["role"] = json!([{ "text": role }]);
    }
    if let Some(address) = &entry.source.address {
        agent["network"] = json!({ "address": network_address(address), "type": "2" });
    }
    agent
}

fn entities(entry: &AuditEntry) -> Vec<Value> {
    let mut out: Vec<Value> = entry
        .patients
        .iter()
        .map(|p| {
            json!({
                "what": { "reference": format!("Patient/{p}") },
                "type": coding(ENTITY_TYPE, "1", "Person"),
                "role": coding(OBJECT_ROLE, "1", "Patient"),
            })
        })
        .collect();
    let e = &entry.entity;
    let is_listed_patient = e.kind == "Patient"
        && e.id
            .as_deref()
            .is_some_and(|id| entry.patients.iter().any(|p| p.as_str() == id));
    if is_listed_patient {
        return out;
    }
    let mut thing = json!({ "type": coding(ENTITY_TYPE, "2", "System Object") });
    match (&e.id, FHIR_TYPES.contains(&e.kind.as_str())) {
        (Some(id), true) => thing["what"] = json!({ "reference": format!("{}/{id}", e.kind) }),
        (Some(id), false) => thing["what"] = json!({ "display": format!("{} {id}", e.kind) }),
        (None, _) => thing["what"] = json!({ "display": e.kind }),
    }
    if let Some(query) = &e.query {
        thing["role"] = coding(OBJECT_ROLE, "24", "Query");
        if !query.is_empty() {
            thing["query"] = json!(base64::engine::general_purpose::STANDARD.encode(query));
        }
    }
    out.push(thing);
    out
}

/// The `AuditEvent` for the entry stored at `seq` (its id). `observer` names this Vigil instance
/// (e.g. its public URL or site name).
pub fn audit_event_to_fhir(seq: u64, entry: &AuditEntry, observer: &str) -> Value {
    let (event_type, subtype, action) = classify(entry.action);
    let mut subtypes: Vec<Value> = subtype.into_iter().collect();
    subtypes.push(coding(
        SYSTEM_AUDIT_ACTION,
        entry.action.code(),
        entry.action.code(),
    ));
    let mut event = json!({
        "resourceType": "AuditEvent",
        "id": seq.to_string(),
        "type": event_type,
        "subtype": subtypes,
        "action": action,
        "recorded": entry.recorded.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        "outcome": outcome_code(entry.outcome),
        "agent": [agent(entry)],
        "source": {
            "site": entry.source.channel.code(),
            "observer": { "display": observer },
            "type": [coding(SOURCE_TYPE, "4", "Application Server")],
        },
    });
    if let Some(detail) = entry.detail.as_deref().filter(|d| !d.is_empty()) {
        event["outcomeDesc"] = json!(detail);
    }
    let entities = entities(entry);
    if !entities.is_empty() {
        event["entity"] = Value::Array(entities);
    }
    event
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use vigil_model::audit::{AuditAgent, AuditEntity, AuditSource, Channel};

    fn at() -> vigil_model::Instant {
        chrono::Utc
            .with_ymd_and_hms(2026, 11, 21, 10, 0, 0)
            .single()
            .unwrap()
    }

    #[test]
    fn a_search_by_a_clinician_names_the_query_and_every_patient() {
        let e = AuditEntry::new(
            at(),
            AuditAction::Search,
            AuditAgent::person("nadia", "clinician"),
            AuditEntity::search("Observation", "patient=p1&code=8867-4"),
        )
        .patients(["p1".parse().unwrap(), "p2".parse().unwrap()])
        .source(AuditSource::new(
            Channel::Http,
            Some("192.0.2.7:51234".into()),
        ));
        let v = audit_event_to_fhir(12, &e, "Vigil");
        assert_eq!(v["id"], "12");
        assert_eq!(v["type"]["code"], "rest");
        assert_eq!(v["subtype"][0]["code"], "search-type");
        assert_eq!(v["subtype"][1]["code"], "search");
        assert_eq!(v["action"], "E");
        assert_eq!(v["outcome"], "0");
        assert_eq!(v["recorded"], "2026-11-21T10:00:00Z");
        assert_eq!(v["agent"][0]["who"]["identifier"]["value"], "nadia");
        assert_eq!(v["agent"][0]["requestor"], true);
        assert_eq!(v["agent"][0]["network"]["address"], "192.0.2.7");
        assert_eq!(v["entity"][0]["what"]["reference"], "Patient/p1");
        assert_eq!(v["entity"][1]["role"]["code"], "1");
        assert_eq!(v["entity"][2]["role"]["code"], "24");
        let query = base64::engine::general_purpose::STANDARD
            .decode(v["entity"][2]["query"].as_str().unwrap())
            .unwrap();
        assert_eq!(query, b"patient=p1&code=8867-4");
    }

    #[test]
    fn a_refused_device_is_a_failed_login() {
        let e = AuditEntry::new(
            at(),
            AuditAction::LoginFailed,
            AuditAgent::device("mon-1"),
            AuditEntity::kind("Session"),
        )
        .source(AuditSource::new(Channel::Mqtt, Some("[::1]:9".into())))
        .outcome(AuditOutcome::MinorFailure)
        .detail("bad_secret");
        let v = audit_event_to_fhir(1, &e, "Vigil");
        assert_eq!(v["type"]["code"], "110114");
        assert_eq!(v["subtype"][0]["code"], "110122");
        assert_eq!(v["outcome"], "4");
        assert_eq!(v["outcomeDesc"], "bad_secret");
        assert_eq!(v["agent"][0]["who"]["reference"], "Device/mon-1");
        assert_eq!(v["agent"][0]["network"]["address"], "::1");
        assert_eq!(v["source"]["site"], "mqtt");
        assert_eq!(v["entity"][0]["what"]["display"], "Session");
    }

    #[test]
    fn reading_a_patient_lists_the_patient_once() {
        let e = AuditEntry::new(
            at(),
            AuditAction::Read,
            AuditAgent::person("nadia", "clinician"),
            AuditEntity::resource("Patient", "p1"),
        )
        .patient("p1".parse().unwrap());
        let v = audit_event_to_fhir(3, &e, "Vigil");
        assert_eq!(v["entity"].as_array().unwrap().len(), 1);
        assert_eq!(v["action"], "R");
        assert!(v["agent"][0].get("network").is_none());
    }

    #[test]
    fn every_action_has_a_type_and_a_crude_action_code() {
        for a in AuditAction::ALL {
            let (t, _, action) = classify(a);
            assert!(t["code"].is_string());
            assert!(["C", "R", "U", "D", "E"].contains(&action), "{a}");
        }
    }
}
