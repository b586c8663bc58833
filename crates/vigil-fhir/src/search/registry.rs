//! `GET /Patient?…` and `GET /Device?…`: searches of the registry, paged by offset.

use vigil_model::{DeviceId, PatientId};

use super::{
    Common, DEVICE_PARAMETERS, PATIENT_PARAMETERS, Param, escape, reference_id, split_token,
    split_unescaped,
};
use crate::FhirError;
use crate::common::{SYSTEM_DEVICE, SYSTEM_MRN, SYSTEM_PATIENT};

/// Identifier systems `Patient?identifier=` accepts.
pub const PATIENT_IDENTIFIER_SYSTEMS: &[&str] = &[SYSTEM_PATIENT, SYSTEM_MRN];
/// Identifier systems `Device?identifier=` accepts (`|value` is a serial number, which has none).
pub const DEVICE_IDENTIFIER_SYSTEMS: &[&str] = &[SYSTEM_DEVICE];

/// What `Patient?identifier=` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatientIdentifier {
    /// A bare value: the Vigil id or the MRN.
    Any(String),
    /// `urn:vigil:patient|{id}`.
    Id(PatientId),
    /// `urn:vigil:mrn|{mrn}`.
    Mrn(String),
}

/// A parsed Patient search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatientSearch {
    pub identifier: Option<PatientIdentifier>,
    /// Text to find in the name, the family name or a given name (case-insensitive).
    pub name: Option<String>,
    pub count: usize,
    /// Matches to skip (`_offset`, as next links carry it).
    pub offset: usize,
    pub pretty: bool,
}

/// What `Device?identifier=` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceIdentifier {
    /// A bare value: the Vigil id or the serial number.
    Any(String),
    /// `urn:vigil:device|{id}`.
    Id(DeviceId),
    /// `|{serial}`: the serial-number identifier, which has no system.
    Serial(String),
}

/// A parsed Device search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceSearch {
    /// Devices currently bound to this patient.
    pub patient: Option<PatientId>,
    pub identifier: Option<DeviceIdentifier>,
    pub count: usize,
    pub offset: usize,
    pub pretty: bool,
}

/// A single token value (no OR lists: the store matches one identifier).
fn single_token(p: &Param) -> Result<(Option<String>, String), FhirError> {
    let tokens = split_unescaped(p.value, ',');
    if tokens.len() > 1 {
        return Err(
            p.unsupported("a list of identifiers (OR) is not supported; search for one at a time")
        );
    }
    let (system, value) = split_token(p.value);
    if value.is_empty() {
        return Err(p.unsupported(
            "a system without a value (every identifier of a system) is not supported",
        ));
    }
    Ok((system, value))
}

fn unknown_system(p: &Param, system: String, supported: &'static [&'static str]) -> FhirError {
    FhirError::UnknownSystem {
        name: p.name.to_owned(),
        system,
        supported,
    }
}

/// Parses the decoded query pairs of `GET /Patient`.
///
/// - `identifier`: `urn:vigil:patient|{id}`, `urn:vigil:mrn|{mrn}`, or a bare value matching
///   either. Vigil's patient identifiers all have a system, so `|value` is refused; so are other
///   systems and OR lists.
/// - `name` (and `name:contains`): text found anywhere in the name, family or given names,
///   ignoring case. FHIR's plain `name` matches the start of a name part; Vigil's is wider, as
///   the CapabilityStatement says. `name:exact` is not supported.
/// - `_count`, `_offset`, `_format`, `_pretty`: see [`super`].
pub fn parse_patient_search(params: &[(String, String)]) -> Result<PatientSearch, FhirError> {
    let mut common = Common::new("Patient", PATIENT_PARAMETERS);
    let mut identifier = None;
    let mut name = None;
    for p in common.params(params, &[])? {
        match p.name {
            "identifier" => {
                p.modifier_in(&[])?;
                identifier = Some(match single_token(&p)? {
                    (None, value) => PatientIdentifier::Any(value),
                    (Some(system), value) if system == SYSTEM_PATIENT => PatientIdentifier::Id(
                        PatientId::new(value).map_err(|e| p.invalid(e.to_string()))?,
                    ),
                    (Some(system), value) if system == SYSTEM_MRN => PatientIdentifier::Mrn(value),
                    (Some(system), _) if system.is_empty() => {
                        return Err(p.invalid(format!(
                            "Vigil's patient identifiers all have a system; use {SYSTEM_PATIENT}|…, \
                             {SYSTEM_MRN}|… or a bare value"
                        )));
                    }
                    (Some(system), _) => {
                        return Err(unknown_system(&p, system, PATIENT_IDENTIFIER_SYSTEMS));
                    }
                });
            }
            "name" => {
                p.modifier_in(&["contains"])?;
                if split_unescaped(p.value, ',').len() > 1 {
                    return Err(p.unsupported("a list of names (OR) is not supported"));
                }
                let text = super::unescape(p.value).trim().to_owned();
                if text.is_empty() {
                    return Err(p.invalid("the name is blank"));
                }
                name = Some(text);
            }
            _ => {
                common.handle(&p)?;
            }
        }
    }
    Ok(PatientSearch {
        identifier,
        name,
        count: common.count,
        offset: common.offset,
        pretty: common.pretty,
    })
}

impl PatientSearch {
    /// The search in canonical form, for self and next links (set `offset` for the next page).
    pub fn to_params(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        match &self.identifier {
            Some(PatientIdentifier::Any(v)) => out.push(("identifier".to_owned(), escape(v))),
            Some(PatientIdentifier::Id(id)) => {
                out.push((
                    "identifier".to_owned(),
                    format!("{SYSTEM_PATIENT}|{}", escape(id.as_str())),
                ));
            }
            Some(PatientIdentifier::Mrn(v)) => {
                out.push((
                    "identifier".to_owned(),
                    format!("{SYSTEM_MRN}|{}", escape(v)),
                ));
            }
            None => {}
        }
        if let Some(name) = &self.name {
            out.push(("name".to_owned(), escape(name)));
        }
        let common = Common {
            count: self.count,
            offset: self.offset,
            pretty: self.pretty,
            ..Common::new("Patient", &[])
        };
        out.extend(common.to_params());
        out
    }
}

/// Parses the decoded query pairs of `GET /Device`.
///
/// - `patient`: `{id}` or `Patient/{id}`: devices bound to that patient now.
/// - `identifier`: `urn:vigil:device|{id}`, `|{serial}` (the serial-number identifier has no
///   system), or a bare value matching the id or the serial number.
/// - `_count`, `_offset`, `_format`, `_pretty`: see [`super`].
pub fn parse_device_search(params: &[(String, String)]) -> Result<DeviceSearch, FhirError> {
    let mut common = Common::new("Device", DEVICE_PARAMETERS);
    let mut patient = None;
    let mut identifier = None;
    for p in common.params(params, &[])? {
        match p.name {
            "patient" => {
                p.modifier_in(&["Patient"])?;
                patient = Some(reference_id(&p, "Patient")?);
            }
            "identifier" => {
                p.modifier_in(&[])?;
                identifier = Some(match single_token(&p)? {
                    (None, value) => DeviceIdentifier::Any(value),
                    (Some(system), value) if system.is_empty() => DeviceIdentifier::Serial(value),
                    (Some(system), value) if system == SYSTEM_DEVICE => DeviceIdentifier::Id(
                        DeviceId::new(value).map_err(|e| p.invalid(e.to_string()))?,
                    ),
                    (Some(system), _) => {
                        return Err(unknown_system(&p, system, DEVICE_IDENTIFIER_SYSTEMS));
                    }
                });
            }
            _ => {
                common.handle(&p)?;
            }
        }
    }
    Ok(DeviceSearch {
        patient,
        identifier,
        count: common.count,
        offset: common.offset,
        pretty: common.pretty,
    })
}

/// A parsed Flag (alarm) search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagSearch {
    pub patient: Option<PatientId>,
    /// `Some(true)` for `status=active` (not resolved), `Some(false)` for `inactive`.
    pub active: Option<bool>,
    pub count: usize,
    pub offset: usize,
    pub pretty: bool,
}

/// `Flag?patient=…&status=active|inactive&_count=…&_offset=…`
pub fn parse_flag_search(params: &[(String, String)]) -> Result<FlagSearch, FhirError> {
    let mut common = Common::new("Flag", super::FLAG_PARAMETERS);
    let mut patient = None;
    let mut active = None;
    for p in common.params(params, &[])? {
        match p.name {
            "patient" => {
                p.modifier_in(&["Patient"])?;
                patient = Some(reference_id(&p, "Patient")?);
            }
            "status" => {
                p.modifier_in(&[])?;
                active = Some(match p.value {
                    "active" => true,
                    "inactive" => false,
                    _ => return Err(p.invalid("use active or inactive")),
                });
            }
            _ => {
                common.handle(&p)?;
            }
        }
    }
    Ok(FlagSearch {
        patient,
        active,
        count: common.count,
        offset: common.offset,
        pretty: common.pretty,
    })
}

impl DeviceSearch {
    /// The search in canonical form, for self and next links (set `offset` for the next page).
    pub fn to_params(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if let Some(patient) = &self.patient {
            out.push(("patient".to_owned(), patient.to_string()));
        }
        match &self.identifier {
            Some(DeviceIdentifier::Any(v)) => out.push(("identifier".to_owned(), escape(v))),
            Some(DeviceIdentifier::Id(id)) => {
                out.push((
                    "identifier".to_owned(),
                    format!("{SYSTEM_DEVICE}|{}", escape(id.as_str())),
                ));
            }
            Some(DeviceIdentifier::Serial(v)) => {
                out.push(("identifier".to_owned(), format!("|{}", escape(v))))
            }
            None => {}
        }
        let common = Common {
            count: self.count,
            offset: self.offset,
            pretty: self.pretty,
            ..Common::new("Device", &[])
        };
        out.extend(common.to_params());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::{DEFAULT_COUNT, MAX_OFFSET};

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn patients(pairs: &[(&str, &str)]) -> Result<PatientSearch, FhirError> {
        parse_patient_search(&q(pairs))
    }

    fn devices(pairs: &[(&str, &str)]) -> Result<DeviceSearch, FhirError> {
        parse_device_search(&q(pairs))
    }

    #[test]
    fn patient_defaults() {
        let s = patients(&[]).unwrap();
        assert_eq!(
            s,
            PatientSearch {
                identifier: None,
                name: None,
                count: DEFAULT_COUNT,
                offset: 0,
                pretty: false
            }
        );
    }

    #[test]
    fn patient_identifiers() {
        let id = |pairs| patients(pairs).unwrap().identifier.unwrap();
        assert_eq!(
            id(&[("identifier", "bed-12")]),
            PatientIdentifier::Any("bed-12".into())
        );
        assert_eq!(
            id(&[("identifier", "urn:vigil:patient|bed-12")]),
            PatientIdentifier::Id(PatientId::new("bed-12").unwrap())
        );
        assert_eq!(
            id(&[("identifier", "urn:vigil:mrn|MRN 7")]),
            PatientIdentifier::Mrn("MRN 7".into())
        );
        assert_eq!(
            id(&[("identifier", "urn:vigil:mrn|A\\,B")]),
            PatientIdentifier::Mrn("A,B".into())
        );
        assert_eq!(
            patients(&[("identifier", "http://hospital|1")]).unwrap_err(),
            FhirError::UnknownSystem {
                name: "identifier".into(),
                system: "http://hospital".into(),
                supported: PATIENT_IDENTIFIER_SYSTEMS,
            }
        );
        assert!(matches!(
            patients(&[("identifier", "|1")]),
            Err(FhirError::InvalidParameter { .. })
        ));
        assert!(matches!(
            patients(&[("identifier", "urn:vigil:patient|a b")]),
            Err(FhirError::InvalidParameter { .. })
        ));
        assert!(matches!(
            patients(&[("identifier", "a,b")]),
            Err(FhirError::UnsupportedParameter { .. })
        ));
        assert!(matches!(
            patients(&[("identifier", "urn:vigil:mrn|")]),
            Err(FhirError::UnsupportedParameter { .. })
        ));
        assert!(matches!(
            patients(&[("identifier:of-type", "x")]),
            Err(FhirError::UnsupportedModifier { .. })
        ));
        assert_eq!(
            patients(&[("identifier", "a"), ("identifier", "b")]).unwrap_err(),
            FhirError::RepeatedParameter {
                name: "identifier".into()
            }
        );
    }

    #[test]
    fn patient_names_and_paging() {
        let s = patients(&[
            ("name", " Havel "),
            ("_count", "10"),
            ("_offset", "20"),
            ("_pretty", "true"),
        ])
        .unwrap();
        assert_eq!(s.name.as_deref(), Some("Havel"));
        assert_eq!((s.count, s.offset, s.pretty), (10, 20, true));
        assert_eq!(
            patients(&[("name:contains", "av")])
                .unwrap()
                .name
                .as_deref(),
            Some("av")
        );
        assert!(matches!(
            patients(&[("name:exact", "Havel")]),
            Err(FhirError::UnsupportedModifier { .. })
        ));
        assert!(matches!(
            patients(&[("name", "a,b")]),
            Err(FhirError::UnsupportedParameter { .. })
        ));
        assert!(matches!(
            patients(&[("name", "  ")]),
            Err(FhirError::InvalidParameter { .. })
        ));
        assert!(matches!(
            patients(&[("_offset", "-1")]),
            Err(FhirError::InvalidParameter { .. })
        ));
        let too_deep = (MAX_OFFSET + 1).to_string();
        assert!(matches!(
            patients(&[("_offset", &too_deep)]),
            Err(FhirError::InvalidParameter { .. })
        ));
        assert_eq!(
            patients(&[("gender", "male")]).unwrap_err().to_string(),
            "unknown search parameter \"gender\" for Patient; supported: identifier, name, _count, _offset, _format, _pretty"
        );
        assert!(matches!(
            patients(&[("_format", "xml")]),
            Err(FhirError::UnsupportedFormat { .. })
        ));
    }

    #[test]
    fn device_parameters() {
        let s = devices(&[
            ("patient", "Patient/bed-12"),
            ("identifier", "urn:vigil:device|mon-1"),
        ])
        .unwrap();
        assert_eq!(s.patient, Some(PatientId::new("bed-12").unwrap()));
        assert_eq!(
            s.identifier,
            Some(DeviceIdentifier::Id(DeviceId::new("mon-1").unwrap()))
        );
        assert_eq!(
            devices(&[("identifier", "SN1")]).unwrap().identifier,
            Some(DeviceIdentifier::Any("SN1".into()))
        );
        assert_eq!(
            devices(&[("identifier", "|SN1")]).unwrap().identifier,
            Some(DeviceIdentifier::Serial("SN1".into()))
        );
        assert!(matches!(
            devices(&[("identifier", "urn:x|SN1")]),
            Err(FhirError::UnknownSystem { .. })
        ));
        assert!(matches!(
            devices(&[("patient", "Device/x")]),
            Err(FhirError::InvalidParameter { .. })
        ));
        assert_eq!(
            devices(&[("patient", "bed-12")]).unwrap().patient,
            Some(PatientId::new("bed-12").unwrap())
        );
        assert!(matches!(
            devices(&[("type", "x")]),
            Err(FhirError::UnknownParameter { .. })
        ));
        assert!(matches!(
            devices(&[("_count", "0")]),
            Err(FhirError::UnsupportedParameter { .. })
        ));
    }

    #[test]
    fn canonical_params_parse_back() {
        let searches = [
            patients(&[
                ("identifier", "urn:vigil:mrn|A\\|B"),
                ("name", "Jan"),
                ("_count", "5"),
                ("_offset", "5"),
            ])
            .unwrap(),
            patients(&[("identifier", "x,y".replace(',', "\\,").as_str())]).unwrap(),
            patients(&[("identifier", "urn:vigil:patient|p1"), ("_pretty", "true")]).unwrap(),
        ];
        for s in searches {
            assert_eq!(parse_patient_search(&s.to_params()).unwrap(), s);
        }
        let searches = [
            devices(&[("patient", "p"), ("identifier", "|S\\,N")]).unwrap(),
            devices(&[("identifier", "urn:vigil:device|d1"), ("_offset", "100")]).unwrap(),
            devices(&[("identifier", "d1")]).unwrap(),
        ];
        for s in searches {
            assert_eq!(parse_device_search(&s.to_params()).unwrap(), s);
        }
    }
}
