//! Patients as FHIR R4 `Patient` resources (<http://hl7.org/fhir/R4/patient.html>), both ways.

use chrono::NaiveDate;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Value, json};
use vigil_model::{Gender, Patient, PatientId};

use crate::FhirError;
use crate::common::{SYSTEM_MRN, SYSTEM_PATIENT, V2_0203};

/// A patient as FHIR R4 `Patient`.
///
/// `identifier` holds the Vigil id (system `urn:vigil:patient`) and, when known, the MRN (system
/// `urn:vigil:mrn`, type `MR` of HL7 v2 table 0203). `name` is one `HumanName` with `text` and,
/// when known, `family` and `given`.
pub fn patient_to_fhir(p: &Patient) -> Value {
    let mut identifiers = vec![json!({ "system": SYSTEM_PATIENT, "value": p.id.as_str() })];
    if let Some(mrn) = p.mrn.as_deref().filter(|m| !m.trim().is_empty()) {
        identifiers.push(json!({
            "type": { "coding": [{ "system": V2_0203, "code": "MR", "display": "Medical record number" }] },
            "system": SYSTEM_MRN,
            "value": mrn,
        }));
    }
    // FHIR strings cannot be empty: a blank name part is left out, and a name with no part at
    // all (the model always has one) would leave out `name`.
    let mut name = serde_json::Map::new();
    if !p.name.trim().is_empty() {
        name.insert("text".into(), Value::from(p.name.as_str()));
    }
    if let Some(family) = p.family.as_deref().filter(|f| !f.trim().is_empty()) {
        name.insert("family".into(), Value::from(family));
    }
    let given: Vec<&str> = p
        .given
        .iter()
        .map(String::as_str)
        .filter(|g| !g.trim().is_empty())
        .collect();
    if !given.is_empty() {
        name.insert("given".into(), json!(given));
    }
    let mut out = json!({
        "resourceType": "Patient",
        "id": p.id.as_str(),
        "identifier": identifiers,
        "active": p.active,
    });
    if !name.is_empty() {
        out["name"] = json!([name]);
    }
    if let Some(gender) = p.gender {
        out["gender"] = Value::from(gender.as_str());
    }
    if let Some(birth) = p.birth_date {
        out["birthDate"] = Value::from(birth.format("%Y-%m-%d").to_string());
    }
    out
}

/// A `Patient` body as Vigil takes it in: everything a [`Patient`] holds, with the id optional
/// because a create (`POST /Patient`) may leave the choice of id to the server.
#[derive(Debug, Clone, PartialEq)]
pub struct PatientInput {
    /// For an update, the id of the URL. For a create, the `urn:vigil:patient` identifier or else
    /// `Patient.id`; `None` when the body has neither.
    pub id: Option<PatientId>,
    pub name: String,
    pub family: Option<String>,
    pub given: Vec<String>,
    pub mrn: Option<String>,
    pub birth_date: Option<NaiveDate>,
    pub gender: Option<Gender>,
    /// `Patient.active`; `true` when absent.
    pub active: bool,
}

impl PatientInput {
    /// The patient, with the body's id or, when it has none, the one `new_id` makes.
    pub fn into_patient(self, new_id: impl FnOnce() -> PatientId) -> Patient {
        Patient {
            id: self.id.unwrap_or_else(new_id),
            name: self.name,
            family: self.family,
            given: self.given,
            mrn: self.mrn,
            birth_date: self.birth_date,
            gender: self.gender,
            active: self.active,
        }
    }
}

/// Every element of an R4 `Patient`. Those Vigil does not keep (telecom, address, …) are accepted
/// and ignored; anything else is refused, naming it. Primitive elements may carry their `_x`
/// companion (id and extensions of the primitive).
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)] // Fields that are only accepted are never read.
struct PatientIn {
    resource_type: String,
    id: Option<String>,
    #[serde(rename = "_id")]
    id_ext: Option<IgnoredAny>,
    meta: Option<IgnoredAny>,
    implicit_rules: Option<IgnoredAny>,
    #[serde(rename = "_implicitRules")]
    implicit_rules_ext: Option<IgnoredAny>,
    language: Option<IgnoredAny>,
    #[serde(rename = "_language")]
    language_ext: Option<IgnoredAny>,
    text: Option<IgnoredAny>,
    contained: Option<IgnoredAny>,
    extension: Option<IgnoredAny>,
    modifier_extension: Option<IgnoredAny>,
    #[serde(default)]
    identifier: Vec<IdentifierIn>,
    active: Option<bool>,
    #[serde(rename = "_active")]
    active_ext: Option<IgnoredAny>,
    #[serde(default)]
    name: Vec<HumanNameIn>,
    telecom: Option<IgnoredAny>,
    gender: Option<String>,
    #[serde(rename = "_gender")]
    gender_ext: Option<IgnoredAny>,
    birth_date: Option<String>,
    #[serde(rename = "_birthDate")]
    birth_date_ext: Option<IgnoredAny>,
    deceased_boolean: Option<IgnoredAny>,
    #[serde(rename = "_deceasedBoolean")]
    deceased_boolean_ext: Option<IgnoredAny>,
    deceased_date_time: Option<IgnoredAny>,
    #[serde(rename = "_deceasedDateTime")]
    deceased_date_time_ext: Option<IgnoredAny>,
    address: Option<IgnoredAny>,
    marital_status: Option<IgnoredAny>,
    multiple_birth_boolean: Option<IgnoredAny>,
    #[serde(rename = "_multipleBirthBoolean")]
    multiple_birth_boolean_ext: Option<IgnoredAny>,
    multiple_birth_integer: Option<IgnoredAny>,
    #[serde(rename = "_multipleBirthInteger")]
    multiple_birth_integer_ext: Option<IgnoredAny>,
    photo: Option<IgnoredAny>,
    contact: Option<IgnoredAny>,
    communication: Option<IgnoredAny>,
    general_practitioner: Option<IgnoredAny>,
    managing_organization: Option<IgnoredAny>,
    link: Option<IgnoredAny>,
}

/// R4 `Identifier`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct IdentifierIn {
    id: Option<IgnoredAny>,
    extension: Option<IgnoredAny>,
    #[serde(rename = "use")]
    use_: Option<IgnoredAny>,
    #[serde(rename = "_use")]
    use_ext: Option<IgnoredAny>,
    #[serde(rename = "type")]
    type_: Option<CodeableConceptIn>,
    system: Option<String>,
    #[serde(rename = "_system")]
    system_ext: Option<IgnoredAny>,
    value: Option<String>,
    #[serde(rename = "_value")]
    value_ext: Option<IgnoredAny>,
    period: Option<IgnoredAny>,
    assigner: Option<IgnoredAny>,
}

/// R4 `CodeableConcept`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct CodeableConceptIn {
    id: Option<IgnoredAny>,
    extension: Option<IgnoredAny>,
    #[serde(default)]
    coding: Vec<CodingIn>,
    text: Option<IgnoredAny>,
    #[serde(rename = "_text")]
    text_ext: Option<IgnoredAny>,
}

/// R4 `Coding`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
struct CodingIn {
    id: Option<IgnoredAny>,
    extension: Option<IgnoredAny>,
    system: Option<String>,
    #[serde(rename = "_system")]
    system_ext: Option<IgnoredAny>,
    version: Option<IgnoredAny>,
    #[serde(rename = "_version")]
    version_ext: Option<IgnoredAny>,
    code: Option<String>,
    #[serde(rename = "_code")]
    code_ext: Option<IgnoredAny>,
    display: Option<IgnoredAny>,
    #[serde(rename = "_display")]
    display_ext: Option<IgnoredAny>,
    user_selected: Option<IgnoredAny>,
    #[serde(rename = "_userSelected")]
    user_selected_ext: Option<IgnoredAny>,
}

/// R4 `HumanName`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct HumanNameIn {
    id: Option<IgnoredAny>,
    extension: Option<IgnoredAny>,
    #[serde(rename = "use")]
    use_: Option<String>,
    #[serde(rename = "_use")]
    use_ext: Option<IgnoredAny>,
    text: Option<String>,
    #[serde(rename = "_text")]
    text_ext: Option<IgnoredAny>,
    family: Option<String>,
    #[serde(rename = "_family")]
    family_ext: Option<IgnoredAny>,
    #[serde(default)]
    given: Vec<String>,
    #[serde(rename = "_given")]
    given_ext: Option<IgnoredAny>,
    prefix: Option<IgnoredAny>,
    #[serde(rename = "_prefix")]
    prefix_ext: Option<IgnoredAny>,
    suffix: Option<IgnoredAny>,
    #[serde(rename = "_suffix")]
    suffix_ext: Option<IgnoredAny>,
    period: Option<IgnoredAny>,
}

/// Reads a JSON body into a JSON object, telling apart "not JSON" and "not an object".
pub(crate) fn json_object(body: &[u8]) -> Result<serde_json::Map<String, Value>, FhirError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| FhirError::NotJson {
        line: e.line(),
        column: e.column(),
        detail: json_error_detail(&e),
    })?;
    match value {
        Value::Object(map) => Ok(map),
        Value::Null => Err(FhirError::NotAnObject { found: "null" }),
        Value::Bool(_) => Err(FhirError::NotAnObject { found: "a boolean" }),
        Value::Number(_) => Err(FhirError::NotAnObject { found: "a number" }),
        Value::String(_) => Err(FhirError::NotAnObject { found: "a string" }),
        Value::Array(_) => Err(FhirError::NotAnObject { found: "an array" }),
    }
}

/// serde_json's message without its own " at line … column …" suffix (reported separately).
fn json_error_detail(e: &serde_json::Error) -> String {
    let message = e.to_string();
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message,
    }
}

/// Checks `resourceType` before anything else, so a wrong resource is named as such.
pub(crate) fn check_resource_type(
    map: &serde_json::Map<String, Value>,
    expected: &'static str,
) -> Result<(), FhirError> {
    match map.get("resourceType") {
        None => Err(FhirError::MissingElement {
            path: "resourceType".into(),
            detail: "every FHIR resource names its type",
        }),
        Some(Value::String(found)) if found == expected => Ok(()),
        Some(Value::String(found)) => Err(FhirError::WrongResourceType {
            expected,
            found: found.clone(),
        }),
        Some(other) => Err(FhirError::Structure {
            path: "resourceType".into(),
            detail: format!("must be a string, not {other}"),
        }),
    }
}

/// Turns `name[0].given[1]` into the FHIRPath `Patient.name[0].given[1]`.
fn fhir_path(resource: &str, path: &serde_path_to_error::Path) -> String {
    let path = path.to_string();
    if path == "." || path.is_empty() {
        resource.to_owned()
    } else {
        format!("{resource}.{path}")
    }
}

/// A typed-deserialisation failure as [`FhirError::Structure`], naming the element.
fn structure_error(resource: &str, e: &serde_path_to_error::Error<serde_json::Error>) -> FhirError {
    let inner = e.inner().to_string();
    let detail = if inner.starts_with("unknown field") {
        "FHIR R4 defines no such element here".to_owned()
    } else {
        inner
    };
    FhirError::Structure {
        path: fhir_path(resource, e.path()),
        detail,
    }
}

/// Reads a `Patient` body for a create or an update.
///
/// - `url_id` is `None` for a create (`POST /Patient`): the id is the `urn:vigil:patient`
///   identifier's value or else `Patient.id` (they must agree when both are given), and `None`
///   when there is neither, for the server to choose one. (FHIR R4 lets a server ignore `id` on
///   create; Vigil honours it because ward staff choose patient ids.)
/// - `url_id` is `Some` for an update (`PUT /Patient/{id}`): the body must carry the same `id`
///   (<http://hl7.org/fhir/R4/http.html>, "update": a missing or different id is a 400), and a `urn:vigil:patient`
///   identifier, if present, must agree.
///
/// A name is required (`text`, or `family`/`given`): the `official` name is taken, else the
///   `usual` one, else the first. `gender` must be an `AdministrativeGender` code; `birthDate` a
///   full `YYYY-MM-DD` date (FHIR allows `YYYY` and `YYYY-MM`, which Vigil cannot store and
///   refuses as not supported). The MRN is the identifier with system `urn:vigil:mrn`, or else
///   one typed `MR`. Elements of R4 Patient that Vigil does not keep (telecom, address, …) are
///   ignored; an element R4 Patient does not define is refused, and so are `modifierExtension`
///   and `implicitRules`, which FHIR forbids ignoring.
pub fn patient_from_fhir(
    body: &[u8],
    url_id: Option<&PatientId>,
) -> Result<PatientInput, FhirError> {
    let map = json_object(body)?;
    check_resource_type(&map, "Patient")?;
    for refused in ["modifierExtension", "implicitRules"] {
        if map.contains_key(refused) {
            return Err(FhirError::UnsupportedElement {
                path: format!("Patient.{refused}"),
                reason: "it may change the meaning of the resource and Vigil cannot honour it"
                    .into(),
            });
        }
    }
    let input: PatientIn = serde_path_to_error::deserialize(Value::Object(map))
        .map_err(|e| structure_error("Patient", &e))?;

    let body_id = input
        .id
        .as_deref()
        .map(|raw| {
            PatientId::new(raw).map_err(|e| FhirError::InvalidElement {
                path: "Patient.id".into(),
                value: raw.to_owned(),
                reason: e.to_string(),
            })
        })
        .transpose()?;
    let identifier_id = vigil_identifier(&input.identifier)?;
    let id = match url_id {
        Some(url_id) => {
            match &body_id {
                None => {
                    return Err(FhirError::MissingElement {
                        path: "Patient.id".into(),
                        detail: "an update (PUT) must carry the id of its URL",
                    });
                }
                Some(body_id) if body_id != url_id => {
                    return Err(FhirError::IdMismatch {
                        url: url_id.to_string(),
                        body: body_id.to_string(),
                    });
                }
                Some(_) => {}
            }
            if let Some((index, other)) = identifier_id.filter(|(_, i)| i != url_id) {
                return Err(FhirError::InvalidElement {
                    path: format!("Patient.identifier[{index}].value"),
                    value: other.to_string(),
                    reason: format!("the {SYSTEM_PATIENT} identifier must equal the id {url_id:?}"),
                });
            }
            Some(url_id.clone())
        }
        None => match (identifier_id, body_id) {
            (Some((index, from_identifier)), Some(body_id)) if from_identifier != body_id => {
                return Err(FhirError::InvalidElement {
                    path: format!("Patient.identifier[{index}].value"),
                    value: from_identifier.to_string(),
                    reason: format!(
                        "the {SYSTEM_PATIENT} identifier must equal Patient.id {:?}",
                        body_id.as_str()
                    ),
                });
            }
            (Some((_, id)), _) => Some(id),
            (None, body_id) => body_id,
        },
    };

    let (name, family, given) = name(&input.name)?;
    let gender = input
        .gender
        .map(|raw| {
            Gender::parse(&raw).ok_or(FhirError::InvalidElement {
                path: "Patient.gender".into(),
                value: raw,
                reason: "expected one of male, female, other, unknown".into(),
            })
        })
        .transpose()?;
    let birth_date = input.birth_date.map(|raw| birth_date(&raw)).transpose()?;
    Ok(PatientInput {
        id,
        name,
        family,
        given,
        mrn: mrn(&input.identifier)?,
        birth_date,
        gender,
        active: input.active.unwrap_or(true),
    })
}

/// The `urn:vigil:patient` identifier, with its index.
fn vigil_identifier(identifiers: &[IdentifierIn]) -> Result<Option<(usize, PatientId)>, FhirError> {
    let mut found: Option<(usize, PatientId)> = None;
    for (index, identifier) in identifiers.iter().enumerate() {
        if identifier.system.as_deref() != Some(SYSTEM_PATIENT) {
            continue;
        }
        let path = format!("Patient.identifier[{index}].value");
        let raw = identifier
            .value
            .as_deref()
            .ok_or_else(|| FhirError::MissingElement {
                path: path.clone(),
                detail: "an identifier needs a value",
            })?;
        let id = PatientId::new(raw).map_err(|e| FhirError::InvalidElement {
            path: path.clone(),
            value: raw.to_owned(),
            reason: e.to_string(),
        })?;
        match &found {
            Some((_, first)) if *first != id => {
                return Err(FhirError::InvalidElement {
                    path,
                    value: raw.to_owned(),
                    reason: format!(
                        "a second {SYSTEM_PATIENT} identifier differing from {:?}",
                        first.as_str()
                    ),
                });
            }
            Some(_) => {}
            None => found = Some((index, id)),
        }
    }
    Ok(found)
}

fn is_mr_typed(identifier: &IdentifierIn) -> bool {
    identifier.type_.as_ref().is_some_and(|t| {
        t.coding
            .iter()
            .any(|c| c.system.as_deref() == Some(V2_0203) && c.code.as_deref() == Some("MR"))
    })
}

/// The medical record number: the `urn:vigil:mrn` identifier, or else the first typed `MR`.
fn mrn(identifiers: &[IdentifierIn]) -> Result<Option<String>, FhirError> {
    let chosen = identifiers
        .iter()
        .position(|i| i.system.as_deref() == Some(SYSTEM_MRN))
        .or_else(|| {
            identifiers
                .iter()
                .position(|i| i.system.as_deref() != Some(SYSTEM_PATIENT) && is_mr_typed(i))
        });
    let Some(index) = chosen else { return Ok(None) };
    match identifiers[index].value.as_deref().map(str::trim) {
        Some(value) if !value.is_empty() => Ok(Some(value.to_owned())),
        _ => Err(FhirError::MissingElement {
            path: format!("Patient.identifier[{index}].value"),
            detail: "the medical record number identifier needs a value",
        }),
    }
}

type NameParts = (String, Option<String>, Vec<String>);

fn name(names: &[HumanNameIn]) -> Result<NameParts, FhirError> {
    let by_use = |wanted: &str| names.iter().position(|n| n.use_.as_deref() == Some(wanted));
    let Some(index) = by_use("official")
        .or_else(|| by_use("usual"))
        .or((!names.is_empty()).then_some(0))
    else {
        return Err(FhirError::MissingElement {
            path: "Patient.name".into(),
            detail: "Vigil needs a name (text, or family and/or given) for every patient",
        });
    };
    let chosen = &names[index];
    let clean = |s: &str| {
        let s = s.trim();
        (!s.is_empty()).then(|| s.to_owned())
    };
    let family = chosen.family.as_deref().and_then(clean);
    let given: Vec<String> = chosen.given.iter().filter_map(|g| clean(g)).collect();
    let text = chosen.text.as_deref().and_then(clean).or_else(|| {
        let parts: Vec<&str> = given
            .iter()
            .map(String::as_str)
            .chain(family.as_deref())
            .collect();
        (!parts.is_empty()).then(|| parts.join(" "))
    });
    match text {
        Some(text) => Ok((text, family, given)),
        None => Err(FhirError::MissingElement {
            path: format!("Patient.name[{index}]"),
            detail: "a name needs text, family or given",
        }),
    }
}

/// FHIR `date` (<http://hl7.org/fhir/R4/datatypes.html#date>): `YYYY`, `YYYY-MM` or `YYYY-MM-DD`.
/// Only the full form fits the model.
fn birth_date(raw: &str) -> Result<NaiveDate, FhirError> {
    let path = || "Patient.birthDate".to_owned();
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let parts: Vec<&str> = raw.split('-').collect();
    let shape_ok = match parts.as_slice() {
        [y] => y.len() == 4 && digits(y),
        [y, m] => y.len() == 4 && digits(y) && m.len() == 2 && digits(m),
        [y, m, d] => {
            y.len() == 4 && digits(y) && m.len() == 2 && digits(m) && d.len() == 2 && digits(d)
        }
        _ => false,
    };
    if !shape_ok {
        return Err(FhirError::InvalidElement {
            path: path(),
            value: raw.to_owned(),
            reason: "expected a date as YYYY-MM-DD".into(),
        });
    }
    if parts.len() < 3 {
        return Err(FhirError::UnsupportedElement {
            path: path(),
            reason: format!(
                "{raw:?} is a partial date; Vigil stores birth dates as full YYYY-MM-DD dates"
            ),
        });
    }
    NaiveDate::parse_from_str(raw, "%Y-%m-%d").map_err(|_| FhirError::InvalidElement {
        path: path(),
        value: raw.to_owned(),
        reason: "no such calendar date".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pid(s: &str) -> PatientId {
        PatientId::new(s).unwrap()
    }

    fn full_patient() -> Patient {
        Patient {
            id: pid("bed-12"),
            name: "Jan Havel".into(),
            family: Some("Havel".into()),
            given: vec!["Jan".into()],
            mrn: Some("MRN-001".into()),
            birth_date: NaiveDate::from_ymd_opt(1950, 3, 7),
            gender: Some(Gender::Male),
            active: true,
        }
    }

    #[test]
    fn patient_shape() {
        let v = patient_to_fhir(&full_patient());
        assert_eq!(v["resourceType"], "Patient");
        assert_eq!(v["id"], "bed-12");
        assert_eq!(
            v["identifier"][0],
            json!({ "system": "urn:vigil:patient", "value": "bed-12" })
        );
        assert_eq!(v["identifier"][1]["system"], "urn:vigil:mrn");
        assert_eq!(v["identifier"][1]["value"], "MRN-001");
        assert_eq!(v["identifier"][1]["type"]["coding"][0]["system"], V2_0203);
        assert_eq!(v["identifier"][1]["type"]["coding"][0]["code"], "MR");
        assert_eq!(v["active"], true);
        assert_eq!(
            v["name"],
            json!([{ "text": "Jan Havel", "family": "Havel", "given": ["Jan"] }])
        );
        assert_eq!(v["gender"], "male");
        assert_eq!(v["birthDate"], "1950-03-07");
    }

    #[test]
    fn a_minimal_patient_has_no_empty_elements() {
        let v = patient_to_fhir(&Patient::new(pid("p"), "Anon"));
        assert_eq!(v["identifier"].as_array().unwrap().len(), 1);
        assert_eq!(v["name"], json!([{ "text": "Anon" }]));
        assert!(v.get("gender").is_none());
        assert!(v.get("birthDate").is_none());
        let mut blank = Patient::new(pid("p"), " ");
        blank.given = vec![String::new(), "Eva".into()];
        blank.mrn = Some(String::new());
        let v = patient_to_fhir(&blank);
        assert_eq!(v["name"], json!([{ "given": ["Eva"] }]), "no empty strings");
        assert_eq!(v["identifier"].as_array().unwrap().len(), 1, "no empty MRN");
        assert!(
            patient_to_fhir(&Patient::new(pid("p"), ""))
                .get("name")
                .is_none()
        );
    }

    #[test]
    fn round_trips() {
        let p = full_patient();
        let body = serde_json::to_vec(&patient_to_fhir(&p)).unwrap();
        let back = patient_from_fhir(&body, None).unwrap();
        assert_eq!(back.id, Some(pid("bed-12")));
        assert_eq!(back.into_patient(|| unreachable!()), p);
        let again = patient_from_fhir(&body, Some(&pid("bed-12"))).unwrap();
        assert_eq!(again.into_patient(|| unreachable!()), p);
    }

    fn parse(body: Value) -> Result<PatientInput, FhirError> {
        patient_from_fhir(&serde_json::to_vec(&body).unwrap(), None)
    }

    #[test]
    fn create_without_any_id_leaves_the_choice_to_the_server() {
        let input = parse(json!({ "resourceType": "Patient", "name": [{ "family": "Novak", "given": ["Eva", "Marie"] }] }))
            .unwrap();
        assert_eq!(input.id, None);
        assert_eq!(input.name, "Eva Marie Novak");
        assert!(input.active);
        assert_eq!(input.into_patient(|| pid("generated")).id, pid("generated"));
    }

    #[test]
    fn create_takes_the_id_from_the_vigil_identifier_or_the_id() {
        let from_identifier = parse(json!({
            "resourceType": "Patient",
            "identifier": [{ "system": "urn:vigil:patient", "value": "bed-3" }],
            "name": [{ "text": "A" }],
        }))
        .unwrap();
        assert_eq!(from_identifier.id, Some(pid("bed-3")));
        let from_id =
            parse(json!({ "resourceType": "Patient", "id": "bed-4", "name": [{ "text": "A" }] }))
                .unwrap();
        assert_eq!(from_id.id, Some(pid("bed-4")));
        let err = parse(json!({
            "resourceType": "Patient",
            "id": "bed-4",
            "identifier": [{ "system": "urn:vigil:patient", "value": "bed-3" }],
            "name": [{ "text": "A" }],
        }))
        .unwrap_err();
        assert!(
            matches!(&err, FhirError::InvalidElement { path, .. } if path == "Patient.identifier[0].value"),
            "{err}"
        );
    }

    #[test]
    fn update_needs_the_url_id_in_the_body() {
        let body = |id: Option<&str>| {
            let mut b = json!({ "resourceType": "Patient", "name": [{ "text": "A" }] });
            if let Some(id) = id {
                b["id"] = Value::from(id);
            }
            serde_json::to_vec(&b).unwrap()
        };
        let url = pid("bed-1");
        assert_eq!(
            patient_from_fhir(&body(Some("bed-1")), Some(&url))
                .unwrap()
                .id,
            Some(url.clone())
        );
        assert_eq!(
            patient_from_fhir(&body(Some("bed-2")), Some(&url)).unwrap_err(),
            FhirError::IdMismatch {
                url: "bed-1".into(),
                body: "bed-2".into()
            }
        );
        let missing = patient_from_fhir(&body(None), Some(&url)).unwrap_err();
        assert!(matches!(&missing, FhirError::MissingElement { path, .. } if path == "Patient.id"));
        assert_eq!(missing.issue_type(), crate::IssueType::Required);
        let conflicting = json!({
            "resourceType": "Patient", "id": "bed-1", "name": [{ "text": "A" }],
            "identifier": [{ "system": "urn:vigil:patient", "value": "bed-9" }],
        });
        let err =
            patient_from_fhir(&serde_json::to_vec(&conflicting).unwrap(), Some(&url)).unwrap_err();
        assert!(matches!(err, FhirError::InvalidElement { .. }), "{err}");
    }

    #[test]
    fn mrn_is_taken_by_system_or_by_type() {
        let by_type = parse(json!({
            "resourceType": "Patient", "name": [{ "text": "A" }],
            "identifier": [{
                "type": { "coding": [{ "system": V2_0203, "code": "MR" }] },
                "system": "http://hospital.example/mrn", "value": "H-77",
            }],
        }))
        .unwrap();
        assert_eq!(by_type.mrn.as_deref(), Some("H-77"));
        let empty = parse(json!({
            "resourceType": "Patient", "name": [{ "text": "A" }],
            "identifier": [{ "system": "urn:vigil:mrn", "value": " " }],
        }))
        .unwrap_err();
        assert!(
            matches!(&empty, FhirError::MissingElement { path, .. } if path == "Patient.identifier[0].value")
        );
    }

    #[test]
    fn the_official_name_wins() {
        let input = parse(json!({
            "resourceType": "Patient",
            "name": [{ "use": "nickname", "text": "Honza" }, { "use": "official", "family": "Havel", "given": ["Jan"] }],
        }))
        .unwrap();
        assert_eq!(input.name, "Jan Havel");
        assert_eq!(input.family.as_deref(), Some("Havel"));
        assert_eq!(input.given, ["Jan"]);
    }

    #[test]
    fn valid_elements_vigil_does_not_keep_are_ignored() {
        let input = parse(json!({
            "resourceType": "Patient",
            "meta": { "versionId": "3" },
            "text": { "status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>" },
            "name": [{ "text": "A", "prefix": ["Mr"], "period": { "start": "2000" } }],
            "_gender": { "extension": [] },
            "gender": "other",
            "telecom": [{ "system": "phone", "value": "123" }],
            "address": [{ "city": "Brno" }],
            "deceasedBoolean": false,
            "multipleBirthInteger": 2,
            "communication": [],
            "extension": [{ "url": "http://example.org/x", "valueString": "y" }],
        }))
        .unwrap();
        assert_eq!(input.gender, Some(Gender::Other));
    }

    #[test]
    fn body_errors_name_what_is_wrong() {
        let cases: Vec<(&[u8], FhirError)> = vec![
            (
                b"{\"resourceType\": ",
                FhirError::NotJson { line: 1, column: 17, detail: "EOF while parsing a value".into() },
            ),
            (b"[1]", FhirError::NotAnObject { found: "an array" }),
            (b"null", FhirError::NotAnObject { found: "null" }),
            (
                br#"{"resourceType":"Observation"}"#,
                FhirError::WrongResourceType { expected: "Patient", found: "Observation".into() },
            ),
            (
                br#"{"name":[{"text":"A"}]}"#,
                FhirError::MissingElement { path: "resourceType".into(), detail: "every FHIR resource names its type" },
            ),
            (
                br#"{"resourceType":"Patient"}"#,
                FhirError::MissingElement {
                    path: "Patient.name".into(),
                    detail: "Vigil needs a name (text, or family and/or given) for every patient",
                },
            ),
            (
                br#"{"resourceType":"Patient","name":[{"text":"  "}]}"#,
                FhirError::MissingElement { path: "Patient.name[0]".into(), detail: "a name needs text, family or given" },
            ),
            (
                br#"{"resourceType":"Patient","name":[{"text":"A"}],"gender":"f"}"#,
                FhirError::InvalidElement {
                    path: "Patient.gender".into(),
                    value: "f".into(),
                    reason: "expected one of male, female, other, unknown".into(),
                },
            ),
            (
                br#"{"resourceType":"Patient","name":[{"text":"A"}],"birthDate":"1950"}"#,
                FhirError::UnsupportedElement {
                    path: "Patient.birthDate".into(),
                    reason: "\"1950\" is a partial date; Vigil stores birth dates as full YYYY-MM-DD dates".into(),
                },
            ),
            (
                br#"{"resourceType":"Patient","name":[{"text":"A"}],"birthDate":"1950-02-30"}"#,
                FhirError::InvalidElement {
                    path: "Patient.birthDate".into(),
                    value: "1950-02-30".into(),
                    reason: "no such calendar date".into(),
                },
            ),
            (
                br#"{"resourceType":"Patient","name":[{"text":"A"}],"id":"a/b"}"#,
                FhirError::InvalidElement {
                    path: "Patient.id".into(),
                    value: "a/b".into(),
                    reason: "identifier contains '/'; only ASCII letters, digits, '-' and '.' are allowed".into(),
                },
            ),
            (
                br#"{"resourceType":"Patient","name":[{"text":"A"}],"modifierExtension":[]}"#,
                FhirError::UnsupportedElement {
                    path: "Patient.modifierExtension".into(),
                    reason: "it may change the meaning of the resource and Vigil cannot honour it".into(),
                },
            ),
        ];
        for (body, expected) in cases {
            assert_eq!(
                patient_from_fhir(body, None).unwrap_err(),
                expected,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn partial_and_malformed_birth_dates_are_told_apart() {
        for partial in ["1950", "1950-03"] {
            assert!(
                matches!(
                    birth_date(partial),
                    Err(FhirError::UnsupportedElement { .. })
                ),
                "{partial}"
            );
        }
        for bad in [
            "50-03-07",
            "1950-3-7",
            "1950-03-07T00:00:00Z",
            "",
            "1950-13-01",
            "tomorrow",
        ] {
            assert!(
                matches!(birth_date(bad), Err(FhirError::InvalidElement { .. })),
                "{bad}: {:?}",
                birth_date(bad)
            );
        }
        assert_eq!(
            birth_date("2024-02-29").unwrap(),
            NaiveDate::from_ymd_opt(2024, 2, 29).unwrap()
        );
    }

    #[test]
    fn unknown_and_mistyped_elements_are_named_by_path() {
        let err =
            parse(json!({ "resourceType": "Patient", "name": [{ "text": "A" }], "nickname": "x" }))
                .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Patient.nickname: FHIR R4 defines no such element here"
        );
        assert_eq!(err.issue_type(), crate::IssueType::Structure);

        let err = parse(json!({ "resourceType": "Patient", "name": [{ "given": ["A", 5] }] }))
            .unwrap_err();
        let FhirError::Structure { path, detail } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(path, "Patient.name[0].given[1]");
        assert!(detail.contains("expected a string"), "{detail}");

        let err =
            parse(json!({ "resourceType": "Patient", "name": [{ "text": "A" }], "active": "yes" }))
                .unwrap_err();
        let FhirError::Structure { path, .. } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(path, "Patient.active");

        let err = parse(json!({ "resourceType": "Patient", "name": { "text": "A" } })).unwrap_err();
        let FhirError::Structure { path, .. } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(path, "Patient.name", "name must be an array");

        let err = parse(
            json!({ "resourceType": "Patient", "name": [{ "text": "A" }],
            "identifier": [{ "system": "urn:vigil:mrn", "value": "1", "kind": "x" }] }),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Patient.identifier[0].kind: FHIR R4 defines no such element here"
        );

        let err = parse(json!({ "resourceType": 5 })).unwrap_err();
        assert!(
            matches!(&err, FhirError::Structure { path, .. } if path == "resourceType"),
            "{err:?}"
        );
    }

    #[test]
    fn a_vigil_identifier_without_a_valid_value_is_refused() {
        let err = parse(
            json!({ "resourceType": "Patient", "name": [{ "text": "A" }],
            "identifier": [{ "system": "urn:vigil:patient" }] }),
        )
        .unwrap_err();
        assert!(
            matches!(&err, FhirError::MissingElement { path, .. } if path == "Patient.identifier[0].value")
        );
        let err = parse(
            json!({ "resourceType": "Patient", "name": [{ "text": "A" }],
            "identifier": [{ "system": "urn:vigil:patient", "value": "a b" }] }),
        )
        .unwrap_err();
        assert!(matches!(&err, FhirError::InvalidElement { value, .. } if value == "a b"));
    }
}
