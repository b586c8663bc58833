//! The `CapabilityStatement` served at `GET /metadata` (<http://hl7.org/fhir/R4/capabilitystatement.html>).
//!
//! It must stay true: every interaction and search parameter listed here is one the parsers in
//! [`crate::search`] accept and the server implements, and nothing else. A test checks that the
//! parameter lists match the parsers' own.

use serde_json::{Value, json};

use crate::observation::PROFILE_VITAL_SIGNS;

/// When this statement last changed (`CapabilityStatement.date`, required by R4). Change it with
/// the statement.
pub const CAPABILITY_DATE: &str = "2026-11-21";

const SP: &str = "http://hl7.org/fhir/SearchParameter/";

fn param(name: &str, kind: &str, definition: Option<&str>, documentation: &str) -> Value {
    let mut p = json!({ "name": name, "type": kind, "documentation": documentation });
    if let Some(definition) = definition {
        p["definition"] = Value::from(format!("{SP}{definition}"));
    }
    p
}

fn count_param() -> Value {
    param(
        "_count",
        "number",
        None,
        "Page size: 1 to 1000, default 50; larger values are served as 1000. _count=0 is not \
         supported. Further pages are reached through the Bundle's next link.",
    )
}

fn offset_param() -> Value {
    param(
        "_offset",
        "number",
        None,
        "Skips this many matches (used by next links); at most 1000000.",
    )
}

fn interactions(codes: &[&str]) -> Value {
    codes.iter().map(|code| json!({ "code": code })).collect()
}

fn resource(kind: &str, codes: &[&str], search_params: Vec<Value>) -> Value {
    // A PUT to an id that does not exist yet creates the resource (FHIR update-as-create).
    let update_create = codes.contains(&"update");
    json!({
        "type": kind,
        "profile": format!("http://hl7.org/fhir/StructureDefinition/{kind}"),
        "interaction": interactions(codes),
        "versioning": "no-version",
        "readHistory": false,
        "updateCreate": update_create,
        "conditionalCreate": false,
        "conditionalRead": "not-supported",
        "conditionalUpdate": false,
        "conditionalDelete": "not-supported",
        "searchParam": search_params,
    })
}

/// Vigil's `CapabilityStatement`: a server (`kind` instance) of FHIR 4.0.1 in JSON, with
/// bearer-token security, Patient read/create/update/search, Device read/search and Observation
/// read/search with the parameters the search parsers accept.
pub fn capability_statement(base_url: &str, version: &str) -> Value {
    let patient = resource(
        "Patient",
        &["read", "create", "update", "search-type"],
        vec![
            param(
                "identifier",
                "token",
                Some("Patient-identifier"),
                "urn:vigil:patient|{id}, urn:vigil:mrn|{mrn}, or a bare value matching either.",
            ),
            param(
                "name",
                "string",
                Some("Patient-name"),
                "Case-insensitive; matches any part of the name, the family name or a given name \
                 (wider than FHIR's starts-with). name:contains is accepted with the same meaning.",
            ),
            count_param(),
            offset_param(),
        ],
    );
    let device = resource(
        "Device",
        &["read", "search-type"],
        vec![
            param(
                "patient",
                "reference",
                Some("Device-patient"),
                "Devices currently bound to the patient: {id} or Patient/{id}.",
            ),
            param(
                "identifier",
                "token",
                Some("Device-identifier"),
                "urn:vigil:device|{id}; |{serial} for a serial number; a bare value matches either.",
            ),
            count_param(),
            offset_param(),
        ],
    );
    let mut observation = resource(
        "Observation",
        &["read", "create", "search-type"],
        vec![
            param(
                "patient",
                "reference",
                Some("clinical-patient"),
                "{id} or Patient/{id}.",
            ),
            param(
                "subject",
                "reference",
                Some("Observation-subject"),
                "Patient/{id} (or {id}).",
            ),
            param(
                "code",
                "token",
                Some("clinical-code"),
                "Comma-separated OR list of system|code, |code or code, in http://loinc.org, \
                 urn:iso:std:iso:11073:10101 (numeric codes) or urn:vigil:code (Vigil short names). \
                 Blood-pressure component codes (8480-6, 8462-4, 8478-0 and their MDC codes) find \
                 the blood-pressure panels (85354-9) that hold them.",
            ),
            param(
                "date",
                "date",
                Some("clinical-date"),
                "effective time; prefixes eq (default), gt, ge, lt, le; any dateTime precision; \
                 a value without an offset is UTC. Repeat to give a range.",
            ),
            param(
                "device",
                "reference",
                Some("Observation-device"),
                "{id} or Device/{id}.",
            ),
            count_param(),
            param(
                "_sort",
                "string",
                None,
                "date (oldest first, the default) or -date (newest first); ties in id order.",
            ),
        ],
    );
    let flag = resource(
        "Flag",
        &["read", "search-type"],
        vec![
            param(
                "patient",
                "reference",
                Some("clinical-patient"),
                "{id} or Patient/{id}.",
            ),
            param(
                "status",
                "token",
                Some("Flag-status"),
                "active (alarms not yet resolved) or inactive (resolved).",
            ),
            count_param(),
        ],
    );
    let device_metric = resource(
        "DeviceMetric",
        &["read", "search-type"],
        vec![param(
            "source",
            "reference",
            Some("DeviceMetric-source"),
            "Device/{id} (or {id}): the device's calibration metric, `{id}.calibration`.",
        )],
    );
    let consent = resource(
        "Consent",
        &["read", "search-type", "create", "update", "delete"],
        vec![param(
            "patient",
            "reference",
            Some("clinical-patient"),
            "Patient/{id} (or {id}): the patient's consents to share. A patient's own search needs none.",
        )],
    );
    let audit_event = resource(
        "AuditEvent",
        &["read", "search-type"],
        vec![
            param(
                "patient",
                "reference",
                Some("AuditEvent-patient"),
                "{id} or Patient/{id}: events concerning this patient.",
            ),
            param(
                "agent",
                "reference",
                Some("AuditEvent-agent"),
                "The agent's id (a user's token subject, a device id) or Device/{id}.",
            ),
            param(
                "action",
                "token",
                None,
                "A Vigil action code (urn:vigil:audit-action: read, search, login-failed, \
                 credential-change, alarm-acknowledge, …), not the C/R/U/D/E code.",
            ),
            param(
                "subtype",
                "token",
                Some("AuditEvent-subtype"),
                "The same Vigil action code, optionally as urn:vigil:audit-action|{code}.",
            ),
            param(
                "date",
                "date",
                Some("AuditEvent-date"),
                "ge, gt, le, lt or eq with an RFC 3339 time or a day; repeatable.",
            ),
            count_param(),
        ],
    );
    let profiles: Vec<String> = std::iter::once(PROFILE_VITAL_SIGNS.to_owned())
        .chain(
            [
                "heartrate",
                "resprate",
                "oxygensat",
                "bp",
                "bodytemp",
                "bodyweight",
                "bodyheight",
            ]
            .iter()
            .map(|p| format!("http://hl7.org/fhir/StructureDefinition/{p}")),
        )
        .collect();
    observation["supportedProfile"] = json!(profiles);

    let mut software = json!({ "name": "Vigil" });
    if !version.is_empty() {
        software["version"] = Value::from(version);
    }
    let mut implementation = json!({ "description": "Vigil IoMT hub FHIR API" });
    if !base_url.is_empty() {
        implementation["url"] = Value::from(base_url);
    }
    json!({
        "resourceType": "CapabilityStatement",
        "name": "Vigil",
        "title": "Vigil FHIR R4 API",
        "status": "active",
        "experimental": false,
        "date": CAPABILITY_DATE,
        "publisher": "Vigil",
        "description": "Patients, devices, the observations Vigil received from them, and its alarms as Flags.",
        "kind": "instance",
        "software": software,
        "implementation": implementation,
        "fhirVersion": "4.0.1",
        "format": ["json", "application/fhir+json"],
        "rest": [{
            "mode": "server",
            "documentation": "Search parameters outside this statement are refused with an \
                OperationOutcome naming them (strict handling); _format accepts JSON only; \
                _pretty is honoured.",
            "security": {
                "description": "Every request except GET /metadata needs an 'Authorization: Bearer <token>' \
                    header (a token from `vigil token issue`, or an OpenID Connect access token from the \
                    configured identity provider) or a browser session (POST /api/v1/login; changes carry \
                    X-CSRF-Token). SMART on FHIR v2 scopes in a token (patient/Observation.rs, \
                    user/*.cruds, system/Observation.r, ...) narrow what its role may do; Vigil does not \
                    host the authorization endpoints of a SMART launch.",
            },
            "resource": [patient, device, device_metric, observation, flag, consent, audit_event],
            // POST /fhir with a Bundle of Observation creates.
            "interaction": [
                { "code": "batch" },
                { "code": "transaction" },
            ],
        }],
    })
}

/// The search parameter names a resource entry of the statement lists.
#[cfg(test)]
fn listed(statement: &Value, kind: &str) -> Vec<String> {
    let resources = statement["rest"][0]["resource"].as_array().unwrap();
    let entry = resources.iter().find(|r| r["type"] == kind).unwrap();
    entry["searchParam"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::{DEVICE_PARAMETERS, OBSERVATION_PARAMETERS, PATIENT_PARAMETERS};

    #[test]
    fn statement_shape() {
        let c = capability_statement("https://vigil.example/fhir", "0.1.0");
        assert_eq!(c["resourceType"], "CapabilityStatement");
        assert_eq!(c["status"], "active");
        assert_eq!(c["kind"], "instance");
        assert_eq!(c["fhirVersion"], "4.0.1");
        assert_eq!(c["date"], CAPABILITY_DATE);
        assert_eq!(c["format"], json!(["json", "application/fhir+json"]));
        assert_eq!(c["software"]["version"], "0.1.0");
        assert_eq!(c["implementation"]["url"], "https://vigil.example/fhir");
        assert_eq!(c["rest"][0]["mode"], "server");
        assert!(
            c["rest"][0]["security"]["description"]
                .as_str()
                .unwrap()
                .contains("Bearer")
        );
        assert!(
            c["rest"][0]["security"].get("service").is_none(),
            "no SMART claim"
        );
        let kinds: Vec<&str> = c["rest"][0]["resource"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["type"].as_str().unwrap())
            .collect();
        assert_eq!(
            kinds,
            [
                "Patient",
                "Device",
                "DeviceMetric",
                "Observation",
                "Flag",
                "Consent",
                "AuditEvent"
            ]
        );
        let interactions = |i: usize| -> Vec<String> {
            c["rest"][0]["resource"][i]["interaction"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x["code"].as_str().unwrap().to_owned())
                .collect()
        };
        assert_eq!(interactions(0), ["read", "create", "update", "search-type"]);
        assert_eq!(interactions(1), ["read", "search-type"]);
        assert_eq!(interactions(2), ["read", "search-type"]);
        assert_eq!(interactions(3), ["read", "create", "search-type"]);
        assert!(
            c["rest"][0]["resource"][3]["supportedProfile"]
                .as_array()
                .unwrap()
                .contains(&json!("http://hl7.org/fhir/StructureDefinition/bp"))
        );
    }

    #[test]
    fn the_statement_lists_exactly_what_the_parsers_accept() {
        let c = capability_statement("", "");
        let accepted = |names: &[&str]| -> Vec<String> {
            let mut v: Vec<String> = names
                .iter()
                .filter(|n| !["_format", "_pretty", "_cursor"].contains(n))
                .map(|n| n.to_string())
                .collect();
            v.sort();
            v
        };
        let sorted = |mut v: Vec<String>| {
            v.sort();
            v
        };
        assert_eq!(sorted(listed(&c, "Patient")), accepted(PATIENT_PARAMETERS));
        assert_eq!(sorted(listed(&c, "Device")), accepted(DEVICE_PARAMETERS));
        assert_eq!(
            sorted(listed(&c, "Observation")),
            accepted(OBSERVATION_PARAMETERS)
        );
        assert!(c.get("software").unwrap().get("version").is_none());
        assert!(c["implementation"].get("url").is_none());
    }
}
