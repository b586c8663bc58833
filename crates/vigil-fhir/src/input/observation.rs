//! An `Observation` from a device or a gateway, as Vigil takes it in
//! (<http://hl7.org/fhir/R4/observation.html>, vital-signs profiles
//! <http://hl7.org/fhir/R4/observation-vitalsigns.html>). See the module documentation of
//! `input` for the decisions where FHIR leaves room.

use serde_json::Value;
use vigil_model::catalogue::{Category, NEWS2_SNOMED};
use vigil_model::units::{accepted_units, to_canonical};
use vigil_model::{
    AbsentReason, Acvpu, DeviceEvent, DeviceId, Instant, Measurand, ObservationCode,
    ObservationComponent, ObservationStatus, ObservationValue, PatientId, QualityFlags, Quantity,
    Reading, ValueKind,
};

use super::types::{
    CodeableConceptIn, ComponentIn, IdentifierIn, MetaIn, ObservationIn, QuantityIn, ReferenceIn,
    Values,
};
use super::{
    InputLimits, InputNote, at, check_size, json_kind, parse_instant, quote, structure_error,
};
use crate::FhirError;
use crate::common::{
    DATA_ABSENT_REASON, EXT_QUALITY, LOINC, MDC, OBSERVATION_CATEGORY, SNOMED, SYSTEM_CODE, UCUM,
};
use crate::observation::SYSTEM_ACVPU;
use crate::patient::{check_resource_type, json_object};

/// The text `observation_to_fhir` writes with `dataAbsentReason` `error` for
/// [`AbsentReason::SensorOff`]; FHIR's data-absent-reason codes have no "sensor off".
const SENSOR_OFF_TEXT: &str = "Sensor off the patient or disconnected";

/// MDC_ATTR_SUPPLEMENTAL_TYPES: the PHD IG's component saying how a value was measured (spot,
/// continuous). Metadata, not a value: ignored wherever it appears.
const MDC_SUPPLEMENTAL_TYPES: &str = "68193";

/// Ids of the R4 vital-signs profiles (<http://hl7.org/fhir/R4/observation-vitalsigns.html>).
const VITAL_SIGNS_PROFILES: [&str; 11] = [
    "vitalsigns",
    "vitalspanel",
    "resprate",
    "heartrate",
    "oxygensat",
    "bodytemp",
    "bodyheight",
    "headcircum",
    "bodyweight",
    "bmi",
    "bp",
];

/// A validated Observation: who it is about, which device made it, and the reading in Vigil's
/// model (code resolved, value in the canonical unit and plausible, status a result).
#[derive(Debug, Clone, PartialEq)]
pub struct ObservationInput {
    /// From `subject.reference` `Patient/{id}`. Whether the patient exists is the server's to check.
    pub subject: PatientId,
    /// From `device.reference` `Device/{id}`, when given.
    pub device: Option<DeviceId>,
    pub reading: Reading,
    /// `Observation.identifier` (the first with a value), for idempotent creates.
    pub identifier: Option<ObservationIdentifier>,
    /// What the resource lacks for the profile it would meet; the server may return them as a
    /// warning ([`InputNote::operation_outcome`]).
    pub notes: Vec<InputNote>,
}

/// `Observation.identifier`: the sender's id of the measurement. `system` is optional (the PHD
/// IG's identifiers have none).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObservationIdentifier {
    pub system: Option<String>,
    pub value: String,
}

/// Reads a `POST /Observation` body.
///
/// Checks the size, that the body is a JSON object with `resourceType` `Observation`, then
/// everything [`observation_from_value`] checks. Errors name the element by its FHIRPath
/// (`Observation.valueQuantity.code`).
pub fn observation_from_fhir(
    body: &[u8],
    limits: &InputLimits,
) -> Result<ObservationInput, FhirError> {
    check_size("Observation", body.len(), limits)?;
    let map = json_object(body)?;
    check_resource_type(&map, "Observation")?;
    observation_from_value(&Value::Object(map), "Observation", limits)
}

/// Reads an Observation already parsed as JSON, such as a Bundle entry's `resource`. Errors name
/// the element under `path` (`Bundle.entry[3].resource.valueQuantity.code`); for a resource on
/// its own, `path` is `Observation`.
pub fn observation_from_value(
    value: &Value,
    path: &str,
    limits: &InputLimits,
) -> Result<ObservationInput, FhirError> {
    let Value::Object(map) = value else {
        return Err(FhirError::Structure {
            path: path.to_owned(),
            detail: format!(
                "must be a JSON object (an Observation), not {}",
                json_kind(value)
            ),
        });
    };
    match map.get("resourceType") {
        None => {
            return Err(FhirError::MissingElement {
                path: at(path, "resourceType"),
                detail: "every FHIR resource names its type",
            });
        }
        Some(Value::String(found)) if found == "Observation" => {}
        Some(Value::String(found)) => {
            return Err(FhirError::InvalidElement {
                path: at(path, "resourceType"),
                value: quote(found),
                reason: "Vigil takes only Observation resources here".into(),
            });
        }
        Some(other) => {
            return Err(FhirError::Structure {
                path: at(path, "resourceType"),
                detail: format!("must be a string, not {}", json_kind(other)),
            });
        }
    }
    // Modifiers: FHIR forbids ignoring them, and Vigil cannot honour them.
    for refused in ["modifierExtension", "implicitRules"] {
        if map.contains_key(refused) {
            return Err(FhirError::UnsupportedElement {
                path: at(path, refused),
                reason: "it may change the meaning of the resource and Vigil cannot honour it"
                    .into(),
            });
        }
    }
    let obs: ObservationIn =
        serde_path_to_error::deserialize(value).map_err(|e| structure_error(path, &e))?;
    read(&obs, path, limits)
}

fn read(
    obs: &ObservationIn,
    path: &str,
    limits: &InputLimits,
) -> Result<ObservationInput, FhirError> {
    if obs.focus.is_some() {
        return Err(FhirError::UnsupportedElement {
            path: at(path, "focus"),
            reason: "an observation about something other than its subject is not supported".into(),
        });
    }
    let status = status(obs.status.as_deref(), path)?;
    let code_path = at(path, "code");
    let resolved = match &obs.code {
        Some(code) => resolve_code(code, &code_path)?,
        None => {
            return Err(FhirError::MissingElement {
                path: code_path,
                detail: "every Observation says what it is (a LOINC, MDC or urn:vigil:code coding)",
            });
        }
    };
    let subject = match &obs.subject {
        Some(r) => reference(r, &at(path, "subject"), "Patient", PatientId::new)?,
        None => {
            return Err(FhirError::MissingElement {
                path: at(path, "subject"),
                detail: "Vigil needs the patient: subject.reference Patient/{id}",
            });
        }
    };
    let device = obs
        .device
        .as_ref()
        .map(|r| reference(r, &at(path, "device"), "Device", DeviceId::new))
        .transpose()?;
    let effective = effective(obs, path, limits)?;
    let identifier = identifier(&obs.identifier, path, limits)?;
    let mut quality = quality(obs.extension.as_deref().unwrap_or_default(), path)?;
    if obs.component.len() > limits.max_components {
        return Err(FhirError::UnsupportedElement {
            path: at(path, "component"),
            reason: format!(
                "{} components; Vigil takes at most {}",
                obs.component.len(),
                limits.max_components
            ),
        });
    }
    let (code, value) = value(obs, resolved.code, path, &mut quality)?;

    let mut notes = Vec::new();
    if code.category() == Some(Category::VitalSigns) {
        let claimed = claims_vital_signs(obs.meta.as_ref());
        let has_category = obs.category.iter().any(|c| {
            c.coding.iter().any(|c| {
                c.system.as_deref() == Some(OBSERVATION_CATEGORY)
                    && c.code.as_deref() == Some("vital-signs")
            })
        });
        if !has_category {
            let p = at(path, "category");
            if claimed {
                return Err(FhirError::MissingElement {
                    path: p,
                    detail: "the vital-signs profile claimed in meta.profile requires category \
                             vital-signs (http://terminology.hl7.org/CodeSystem/observation-category)",
                });
            }
            notes.push(InputNote {
                path: p,
                message: "no category vital-signs: accepted, but the resource does not meet the \
                          FHIR vital-signs profile"
                    .into(),
            });
        }
        // LOINC has no code for "on supplemental oxygen: yes/no"; Vigil writes its own code only.
        if !resolved.loinc && !matches!(value, ObservationValue::OnOxygen(_)) {
            let p = at(path, "code.coding");
            if claimed {
                return Err(FhirError::MissingElement {
                    path: p,
                    detail: "the vital-signs profile claimed in meta.profile requires a LOINC coding",
                });
            }
            let loinc = code.loinc().unwrap_or_default();
            notes.push(InputNote {
                path: p,
                message: format!(
                    "no LOINC coding: accepted as {loinc} ({}), but the resource does not meet \
                     the FHIR vital-signs profile",
                    code.short_name()
                ),
            });
        }
    }
    Ok(ObservationInput {
        subject,
        device,
        reading: Reading {
            code,
            value,
            effective,
            status,
            quality,
        },
        identifier,
        notes,
    })
}

/// `Observation.status`: required, and a result. `registered` (no result yet), `cancelled` and
/// `entered-in-error` are not measurements to record.
fn status(raw: Option<&str>, path: &str) -> Result<ObservationStatus, FhirError> {
    let p = at(path, "status");
    let Some(raw) = raw else {
        return Err(FhirError::MissingElement {
            path: p,
            detail: "every Observation has a status (final, preliminary, amended, corrected)",
        });
    };
    let invalid = |reason: &str| FhirError::InvalidElement {
        path: p.clone(),
        value: quote(raw),
        reason: reason.to_owned(),
    };
    match ObservationStatus::parse(raw) {
        None => Err(invalid(
            "expected one of registered, preliminary, final, amended, corrected, cancelled, \
             entered-in-error, unknown",
        )),
        Some(
            ObservationStatus::Registered
            | ObservationStatus::Cancelled
            | ObservationStatus::EnteredInError,
        ) => Err(invalid(
            "not a result: Vigil records preliminary, final, amended, corrected or unknown \
             observations",
        )),
        Some(status) => Ok(status),
    }
}

/// What `Observation.code` (or a component's) names, and whether one of the codings saying so is
/// LOINC.
struct Resolved {
    code: ObservationCode,
    loinc: bool,
}

/// LOINC codes are up to seven digits, a hyphen and a check digit.
fn is_loinc(code: &str) -> bool {
    match code.split_once('-') {
        Some((number, check)) => {
            (1..=7).contains(&number.len())
                && number.bytes().all(|b| b.is_ascii_digit())
                && check.len() == 1
                && check.bytes().all(|b| b.is_ascii_digit())
        }
        None => false,
    }
}

/// What one coding names, when its system is one Vigil codes in and the code belongs to it.
fn coding_names(system: &str, code: &str) -> Option<ObservationCode> {
    match system {
        LOINC if is_loinc(code) => ObservationCode::from_code(code),
        // R4 codes MDC terms by their numeric code; the reference id (`MDC_…`) is also accepted.
        MDC if (!code.is_empty() && code.bytes().all(|b| b.is_ascii_digit()))
            || code.starts_with("MDC_") =>
        {
            ObservationCode::from_code(code)
        }
        SYSTEM_CODE => ObservationCode::from_code(code).filter(|c| c.short_name() == code),
        SNOMED if code == NEWS2_SNOMED.0 => Some(ObservationCode::News2),
        SNOMED => DeviceEvent::ALL
            .into_iter()
            .find(|e| e.snomed().is_some_and(|(s, _)| s == code))
            .map(ObservationCode::Event),
        _ => None,
    }
}

/// Resolves a CodeableConcept: every coding in a system Vigil codes in must name the same thing;
/// codings in other systems (and unknown codes beside a known one) are ignored (the bindings are
/// extensible).
fn resolve_code(cc: &CodeableConceptIn, path: &str) -> Result<Resolved, FhirError> {
    if cc.coding.is_empty() {
        return Err(FhirError::MissingElement {
            path: at(path, "coding"),
            detail: "Vigil needs a coding: LOINC, IEEE 11073 MDC or urn:vigil:code",
        });
    }
    let mut found: Option<(usize, ObservationCode)> = None;
    let mut loinc = false;
    for (i, c) in cc.coding.iter().enumerate() {
        let (Some(system), Some(code)) = (c.system.as_deref(), c.code.as_deref()) else {
            continue;
        };
        let Some(names) = coding_names(system, code) else {
            continue;
        };
        loinc |= system == LOINC;
        match found {
            None => found = Some((i, names)),
            Some((first, earlier)) if earlier != names => {
                return Err(FhirError::InvalidElement {
                    path: format!("{path}.coding[{i}]"),
                    value: quote(&format!("{system}|{code}")),
                    reason: format!(
                        "it names {} ({}), but coding[{first}] names {} ({})",
                        names.display(),
                        names.short_name(),
                        earlier.display(),
                        earlier.short_name()
                    ),
                });
            }
            Some(_) => {}
        }
    }
    match found {
        Some((_, code)) => Ok(Resolved { code, loinc }),
        None => Err(unknown_code(cc, path)),
    }
}

/// The error for a code Vigil does not record, with what it does record.
fn unknown_code(cc: &CodeableConceptIn, path: &str) -> FhirError {
    let sent: Vec<String> = cc
        .coding
        .iter()
        .take(4)
        .map(|c| {
            format!(
                "{}|{}",
                c.system.as_deref().unwrap_or("(no system)"),
                c.code.as_deref().unwrap_or("(no code)")
            )
        })
        .collect();
    let misplaced = cc.coding.iter().find_map(|c| {
        let code = c.code.as_deref()?;
        ObservationCode::from_code(code).map(|_| {
            format!(
                "{code:?} is a code Vigil knows, but not in system {:?}; ",
                c.system.as_deref().unwrap_or("(none)")
            )
        })
    });
    let supported: Vec<String> = ObservationCode::all()
        .filter(|c| *c != ObservationCode::News2)
        .map(|c| match c.loinc() {
            Some(loinc) => format!("{loinc} ({})", c.short_name()),
            None => format!("{SYSTEM_CODE}|{}", c.short_name()),
        })
        .collect();
    FhirError::InvalidElement {
        path: path.to_owned(),
        value: quote(&sent.join(", ")),
        reason: format!(
            "{}Vigil records none of these codes; it records (LOINC, or the same in MDC or \
             {SYSTEM_CODE}): {}",
            misplaced.unwrap_or_default(),
            supported.join(", ")
        ),
    }
}

/// A literal reference `{resource}/{id}` to something Vigil knows.
fn reference<T, E: std::fmt::Display>(
    r: &ReferenceIn,
    path: &str,
    resource: &'static str,
    make: fn(String) -> Result<T, E>,
) -> Result<T, FhirError> {
    if let Some(t) = r.type_.as_deref().filter(|t| *t != resource) {
        return Err(FhirError::InvalidElement {
            path: at(path, "type"),
            value: quote(t),
            reason: format!("Vigil takes a {resource} here"),
        });
    }
    let p = at(path, "reference");
    let Some(raw) = r.reference.as_deref() else {
        return Err(FhirError::MissingElement {
            path: p,
            detail: "Vigil needs a literal reference ({Patient|Device}/{id}); references by \
                     identifier are not resolved",
        });
    };
    let Some(id) = raw
        .strip_prefix(resource)
        .and_then(|rest| rest.strip_prefix('/'))
    else {
        return Err(FhirError::InvalidElement {
            path: p,
            value: quote(raw),
            reason: format!(
                "Vigil takes only {resource}/{{id}} references to a {resource} it knows; \
                 absolute URLs, urn:uuid: references to other entries and contained (#) \
                 references are not resolved"
            ),
        });
    };
    make(id.to_owned()).map_err(|e| FhirError::InvalidElement {
        path: p,
        value: quote(raw),
        reason: format!("not a Vigil {resource} id: {e}"),
    })
}

/// `effective[x]`: exactly one of dateTime, instant or Period (its start).
fn effective(obs: &ObservationIn, path: &str, limits: &InputLimits) -> Result<Instant, FhirError> {
    let given: Vec<&str> = [
        ("effectiveDateTime", obs.effective_date_time.is_some()),
        ("effectivePeriod", obs.effective_period.is_some()),
        ("effectiveTiming", obs.effective_timing.is_some()),
        ("effectiveInstant", obs.effective_instant.is_some()),
    ]
    .into_iter()
    .filter(|(_, present)| *present)
    .map(|(name, _)| name)
    .collect();
    if let [first, second, ..] = given.as_slice() {
        return Err(FhirError::Structure {
            path: at(path, second),
            detail: format!("only one effective[x] may be given; found {first} and {second}"),
        });
    }
    if let Some(raw) = &obs.effective_date_time {
        return parse_instant(raw, &at(path, "effectiveDateTime"), limits);
    }
    if let Some(raw) = &obs.effective_instant {
        return parse_instant(raw, &at(path, "effectiveInstant"), limits);
    }
    if obs.effective_timing.is_some() {
        return Err(FhirError::UnsupportedElement {
            path: at(path, "effectiveTiming"),
            reason: "Vigil records when a measurement was made: give effectiveDateTime".into(),
        });
    }
    let Some(period) = &obs.effective_period else {
        return Err(FhirError::MissingElement {
            path: at(path, "effective[x]"),
            detail: "Vigil needs the time of the measurement: effectiveDateTime, \
                     effectiveInstant or effectivePeriod.start",
        });
    };
    let p = at(path, "effectivePeriod");
    let Some(start) = &period.start else {
        return Err(FhirError::MissingElement {
            path: at(&p, "start"),
            detail: "Vigil records when the measurement began",
        });
    };
    let start = parse_instant(start, &at(&p, "start"), limits)?;
    if let Some(raw) = &period.end {
        // The end may lie beyond the clock-skew bound (a planned period); it is only checked.
        let end_limits = InputLimits {
            received: None,
            ..limits.clone()
        };
        let end = parse_instant(raw, &at(&p, "end"), &end_limits)?;
        // per-1: "If present, start SHALL have a lower value than end".
        if end < start {
            return Err(FhirError::InvalidElement {
                path: at(&p, "end"),
                value: quote(raw),
                reason: "per-1: a period's end may not come before its start".into(),
            });
        }
    }
    Ok(start)
}

/// The first identifier with a value.
fn identifier(
    ids: &[IdentifierIn],
    path: &str,
    limits: &InputLimits,
) -> Result<Option<ObservationIdentifier>, FhirError> {
    let Some((i, id, value)) = ids
        .iter()
        .enumerate()
        .find_map(|(i, id)| id.value.as_deref().map(|v| (i, id, v)))
    else {
        return Ok(None);
    };
    let p = format!("{path}.identifier[{i}]");
    let check = |element: &str, raw: &str| {
        let reason = if raw.trim().is_empty() {
            "may not be blank".to_owned()
        } else if raw.len() > limits.max_identifier_bytes {
            format!(
                "{} bytes; Vigil keeps identifiers of at most {} bytes",
                raw.len(),
                limits.max_identifier_bytes
            )
        } else {
            return Ok(());
        };
        Err(FhirError::InvalidElement {
            path: at(&p, element),
            value: quote(raw),
            reason,
        })
    };
    check("value", value)?;
    if let Some(system) = id.system.as_deref() {
        check("system", system)?;
    }
    Ok(Some(ObservationIdentifier {
        system: id.system.clone(),
        value: value.to_owned(),
    }))
}

/// Quality flags from Vigil's `urn:vigil:quality` extensions (`valueCode` = a flag's name).
/// Other extensions are ignored, once they are well-formed enough to have a `url`.
fn quality(extensions: &[Value], path: &str) -> Result<QualityFlags, FhirError> {
    let mut flags = QualityFlags::empty();
    for (i, ext) in extensions.iter().enumerate() {
        let p = format!("{path}.extension[{i}]");
        let Value::Object(ext) = ext else {
            return Err(FhirError::Structure {
                path: p,
                detail: format!("an extension is an object, not {}", json_kind(ext)),
            });
        };
        let url = match ext.get("url") {
            Some(Value::String(url)) => url,
            Some(other) => {
                return Err(FhirError::Structure {
                    path: at(&p, "url"),
                    detail: format!("must be a string, not {}", json_kind(other)),
                });
            }
            None => {
                return Err(FhirError::MissingElement {
                    path: at(&p, "url"),
                    detail: "every extension names itself by its url",
                });
            }
        };
        if url != EXT_QUALITY {
            continue;
        }
        if let Some(other) = ext
            .keys()
            .find(|k| !matches!(k.as_str(), "id" | "url" | "valueCode"))
        {
            return Err(FhirError::Structure {
                path: at(&p, other),
                detail: format!("the {EXT_QUALITY} extension has only url and valueCode"),
            });
        }
        match ext.get("valueCode") {
            Some(Value::String(name)) => match QualityFlags::parse(name) {
                Some(flag) => flags.insert(flag),
                None => {
                    return Err(FhirError::InvalidElement {
                        path: at(&p, "valueCode"),
                        value: quote(name),
                        reason: "expected one of converted-unit, questionable, artifact, \
                                 time-from-receipt"
                            .into(),
                    });
                }
            },
            Some(other) => {
                return Err(FhirError::Structure {
                    path: at(&p, "valueCode"),
                    detail: format!("must be a string, not {}", json_kind(other)),
                });
            }
            None => {
                return Err(FhirError::MissingElement {
                    path: at(&p, "valueCode"),
                    detail: "the urn:vigil:quality extension names the flag in valueCode",
                });
            }
        }
    }
    Ok(flags)
}

/// True when `meta.profile` claims one of the R4 vital-signs profiles (with or without a
/// `|version`).
fn claims_vital_signs(meta: Option<&MetaIn>) -> bool {
    meta.is_some_and(|m| {
        m.profile.iter().any(|p| {
            let canonical = p.split('|').next().unwrap_or_default();
            canonical
                .strip_prefix("http://hl7.org/fhir/StructureDefinition/")
                .is_some_and(|id| VITAL_SIGNS_PROFILES.contains(&id))
        })
    })
}

/// True for the PHD IG's supplemental-types component (ignored wherever it appears).
fn is_phd_supplemental(c: &ComponentIn) -> bool {
    c.code.as_ref().is_some_and(|cc| {
        cc.coding.iter().any(|c| {
            c.system.as_deref() == Some(MDC) && c.code.as_deref() == Some(MDC_SUPPLEMENTAL_TYPES)
        })
    })
}

/// At most one `value[x]`, and not together with `dataAbsentReason` (obs-6).
fn one_value<'a>(
    values: &Values<'a>,
    absent: Option<&CodeableConceptIn>,
    path: &str,
) -> Result<Option<&'static str>, FhirError> {
    if let [first, second, ..] = values.present.as_slice() {
        return Err(FhirError::Structure {
            path: at(path, second),
            detail: format!("only one value[x] may be given; found {first} and {second}"),
        });
    }
    let value = values.present.first().copied();
    if value.is_some() && absent.is_some() {
        // obs-6: "dataAbsentReason SHALL only be present if Observation.value[x] is not present".
        return Err(FhirError::Structure {
            path: at(path, "dataAbsentReason"),
            detail: "obs-6: dataAbsentReason may only be given when there is no value[x]".into(),
        });
    }
    Ok(value)
}

fn wrong_value_type(path: &str, name: &str, what: &str, expected: &str) -> FhirError {
    let reason = if name == "valueSampledData" {
        "waveforms (SampledData) are not taken as Observations".to_owned()
    } else {
        format!("Vigil records {what} from {expected}, not {name}")
    };
    FhirError::UnsupportedElement {
        path: at(path, name),
        reason,
    }
}

fn missing_value(path: &str) -> FhirError {
    FhirError::MissingElement {
        path: at(path, "value[x]"),
        detail: "vs-2: an observation without components needs a value[x] or a dataAbsentReason",
    }
}

/// Why the value is absent. Every reason is "no value"; Vigil's own sensor-off text is kept.
fn absent_reason(dar: &CodeableConceptIn) -> AbsentReason {
    let error = dar.coding.iter().any(|c| {
        c.system.as_deref() == Some(DATA_ABSENT_REASON) && c.code.as_deref() == Some("error")
    });
    if error && dar.text.as_deref() == Some(SENSOR_OFF_TEXT) {
        AbsentReason::SensorOff
    } else {
        AbsentReason::NotObtained
    }
}

/// The reading's code and value. A blood-pressure part sent alone becomes a panel of one.
fn value(
    obs: &ObservationIn,
    code: ObservationCode,
    path: &str,
    quality: &mut QualityFlags,
) -> Result<(ObservationCode, ObservationValue), FhirError> {
    let values = obs.values();
    let absent = obs.data_absent_reason.as_ref();
    let name = one_value(&values, absent, path)?;
    let refuse_components = || match obs.component.iter().position(|c| !is_phd_supplemental(c)) {
        Some(i) => Err(FhirError::UnsupportedElement {
            path: format!("{path}.component[{i}]"),
            reason: format!(
                "components belong to a blood-pressure panel (85354-9); {} carries its \
                     value in value[x]",
                code.short_name()
            ),
        }),
        None => Ok(()),
    };
    let measurand = match code {
        ObservationCode::News2 => {
            return Err(FhirError::UnsupportedElement {
                path: at(path, "code"),
                reason: "NEWS2 is computed by Vigil from the observations it receives; it is not \
                         taken in"
                    .into(),
            });
        }
        ObservationCode::BloodPressure => {
            if let Some(name) = name {
                // bp profile: the panel's values are its components; obs-7 forbids a value for
                // the code a component repeats.
                return Err(FhirError::UnsupportedElement {
                    path: at(path, name),
                    reason: "a blood-pressure panel (85354-9) carries its values in component, \
                             not value[x]"
                        .into(),
                });
            }
            let parts = bp_components(&obs.component, path, quality)?;
            let value = if !parts.is_empty() {
                ObservationValue::Components(parts)
            } else if let Some(dar) = absent {
                ObservationValue::Absent(absent_reason(dar))
            } else if obs.component.iter().any(|c| !is_phd_supplemental(c)) {
                // Every component is there without a value, each with its reason (vs-3).
                ObservationValue::Absent(AbsentReason::NotObtained)
            } else {
                return Err(FhirError::MissingElement {
                    path: at(path, "component"),
                    detail: "vs-2: a blood-pressure panel needs its components (systolic, \
                             diastolic, mean) or a dataAbsentReason",
                });
            };
            return Ok((code, value));
        }
        ObservationCode::Event(event) => {
            refuse_components()?;
            let value = match (name, values.boolean, absent) {
                (Some("valueBoolean"), Some(true), _) => ObservationValue::Detected,
                (Some("valueBoolean"), _, _) => {
                    return Err(FhirError::InvalidElement {
                        path: at(path, "valueBoolean"),
                        value: "false".into(),
                        reason: format!(
                            "an event observation records that {} happened: valueBoolean true",
                            event.code()
                        ),
                    });
                }
                (Some(other), _, _) => {
                    return Err(wrong_value_type(
                        path,
                        other,
                        event.display(),
                        "valueBoolean",
                    ));
                }
                (None, _, Some(dar)) => ObservationValue::Absent(absent_reason(dar)),
                (None, _, None) => return Err(missing_value(path)),
            };
            return Ok((code, value));
        }
        ObservationCode::Single(m) => m,
    };
    refuse_components()?;
    let value_path = |name: &str| at(path, name);
    if let Some(dar) = absent {
        let code = if measurand.is_bp_component() {
            ObservationCode::BloodPressure
        } else {
            code
        };
        return Ok((code, ObservationValue::Absent(absent_reason(dar))));
    }
    let Some(name) = name else {
        return Err(missing_value(path));
    };
    match (measurand.value_kind(), name) {
        (ValueKind::Quantity | ValueKind::OxygenSupport, "valueQuantity") => {
            let q = values.quantity.ok_or_else(|| missing_value(path))?;
            let canonical = quantity(q, measurand, &value_path("valueQuantity"), quality)?;
            if measurand.is_bp_component() {
                let part = ObservationComponent {
                    measurand,
                    value: canonical,
                };
                return Ok((
                    ObservationCode::BloodPressure,
                    ObservationValue::Components(vec![part]),
                ));
            }
            Ok((code, ObservationValue::Quantity(canonical)))
        }
        (ValueKind::OxygenSupport, "valueBoolean") => {
            let on = values.boolean.ok_or_else(|| missing_value(path))?;
            Ok((code, ObservationValue::OnOxygen(on)))
        }
        (ValueKind::Acvpu, "valueCodeableConcept") => {
            let cc = values.codeable_concept.ok_or_else(|| missing_value(path))?;
            let level = acvpu(cc, &value_path("valueCodeableConcept"))?;
            Ok((code, ObservationValue::Acvpu(level)))
        }
        (kind, other) => {
            let expected = match kind {
                ValueKind::Quantity => "valueQuantity",
                ValueKind::Acvpu => "valueCodeableConcept (urn:vigil:acvpu)",
                ValueKind::OxygenSupport => "valueBoolean (on oxygen) or valueQuantity (L/min)",
            };
            Err(wrong_value_type(path, other, measurand.display(), expected))
        }
    }
}

/// The components of a blood-pressure panel, in the order sent.
fn bp_components(
    components: &[ComponentIn],
    path: &str,
    quality: &mut QualityFlags,
) -> Result<Vec<ObservationComponent>, FhirError> {
    let mut parts: Vec<ObservationComponent> = Vec::new();
    for (i, c) in components.iter().enumerate() {
        let p = format!("{path}.component[{i}]");
        if c.modifier_extension.is_some() {
            return Err(FhirError::UnsupportedElement {
                path: at(&p, "modifierExtension"),
                reason: "it may change the meaning of the component and Vigil cannot honour it"
                    .into(),
            });
        }
        if is_phd_supplemental(c) {
            continue;
        }
        let code_path = at(&p, "code");
        let Some(cc) = &c.code else {
            return Err(FhirError::MissingElement {
                path: code_path,
                detail: "every component says what it is",
            });
        };
        let measurand = match resolve_code(cc, &code_path)?.code {
            ObservationCode::Single(m) if m.is_bp_component() => m,
            other => {
                return Err(FhirError::InvalidElement {
                    path: code_path,
                    value: other.short_name().to_owned(),
                    reason: "a blood-pressure panel's components are systolic (8480-6), \
                             diastolic (8462-4) and mean (8478-0) pressure"
                        .into(),
                });
            }
        };
        if parts.iter().any(|part| part.measurand == measurand) {
            return Err(FhirError::InvalidElement {
                path: code_path,
                value: measurand.short_name().to_owned(),
                reason: "a panel has one component of each kind".into(),
            });
        }
        let values = c.values();
        let name = one_value(&values, c.data_absent_reason.as_ref(), &p)?;
        match (name, values.quantity) {
            (Some("valueQuantity"), Some(q)) => {
                let value = quantity(q, measurand, &at(&p, "valueQuantity"), quality)?;
                parts.push(ObservationComponent { measurand, value });
            }
            (Some(other), _) => {
                return Err(wrong_value_type(
                    &p,
                    other,
                    measurand.display(),
                    "valueQuantity",
                ));
            }
            // vs-3: no value, and a reason why: the part is left out.
            (None, _) if c.data_absent_reason.is_some() => {}
            (None, _) => {
                return Err(FhirError::MissingElement {
                    path: at(&p, "value[x]"),
                    detail: "vs-3: a component without a value needs a dataAbsentReason",
                });
            }
        }
    }
    Ok(parts)
}

/// A UCUM quantity, converted exactly to the measurand's canonical unit and checked against its
/// plausible range. A conversion adds `converted-unit` to the quality flags.
fn quantity(
    q: &QuantityIn,
    m: Measurand,
    path: &str,
    quality: &mut QualityFlags,
) -> Result<Quantity, FhirError> {
    if q.comparator.is_some() {
        return Err(FhirError::UnsupportedElement {
            path: at(path, "comparator"),
            reason: "a bound (<, <=, >=, >) is not a measurement Vigil can record".into(),
        });
    }
    let Some(value) = q.value else {
        return Err(FhirError::MissingElement {
            path: at(path, "value"),
            detail: "a quantity needs its value",
        });
    };
    let Some(unit) = q.code.as_deref() else {
        return Err(FhirError::MissingElement {
            path: at(path, "code"),
            detail: "Vigil needs the UCUM unit code (unit is display text only)",
        });
    };
    match q.system.as_deref() {
        Some(UCUM) => {}
        None => {
            return Err(FhirError::MissingElement {
                path: at(path, "system"),
                detail: "qty-3: a unit code needs its system, http://unitsofmeasure.org",
            });
        }
        Some(other) => {
            return Err(FhirError::InvalidElement {
                path: at(path, "system"),
                value: quote(other),
                reason: format!("Vigil reads units in UCUM only ({UCUM})"),
            });
        }
    }
    let (canonical, converted) =
        to_canonical(m, value, unit).map_err(|_| FhirError::InvalidElement {
            path: at(path, "code"),
            value: quote(unit),
            reason: format!(
                "not a unit of {}; expected one of {} (UCUM, case-sensitive)",
                m.short_name(),
                accepted_units(m).join(", ")
            ),
        })?;
    let range = m.plausible();
    let target = m.canonical_unit();
    if !(canonical.is_finite() && canonical >= range.min && canonical <= range.max) {
        return Err(FhirError::InvalidElement {
            path: at(path, "value"),
            value: format!("{value} {}", quote(unit)),
            reason: format!(
                "{canonical} {target} is outside the plausible range {}–{} {target} for {}: a \
                 device fault, not a measurement",
                range.min,
                range.max,
                m.short_name()
            ),
        });
    }
    if converted {
        quality.insert(QualityFlags::CONVERTED_UNIT);
    }
    Ok(Quantity::new(canonical, target))
}

/// The level of consciousness from a coding in Vigil's ACVPU code system.
fn acvpu(cc: &CodeableConceptIn, path: &str) -> Result<Acvpu, FhirError> {
    let Some((i, coding)) = cc
        .coding
        .iter()
        .enumerate()
        .find(|(_, c)| c.system.as_deref() == Some(SYSTEM_ACVPU))
    else {
        return Err(FhirError::InvalidElement {
            path: at(path, "coding"),
            value: quote(
                &cc.coding
                    .iter()
                    .map(|c| c.code.as_deref().unwrap_or("(no code)"))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            reason: format!(
                "Vigil reads the level of consciousness as a coding in {SYSTEM_ACVPU}: A, C, V, \
                 P or U"
            ),
        });
    };
    let raw = coding.code.as_deref().unwrap_or_default();
    Acvpu::parse(raw).ok_or_else(|| FhirError::InvalidElement {
        path: format!("{path}.coding[{i}].code"),
        value: quote(raw),
        reason: "expected A, C, V, P or U".into(),
    })
}
