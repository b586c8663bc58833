//! `GET /Observation?…` (<http://hl7.org/fhir/R4/observation.html#search>).

use chrono::{DateTime, SecondsFormat};
use vigil_model::{
    DeviceId, Instant, Measurand, ObservationCode, ObservationId, PatientId, WaveformCode,
};

use super::date::{Bound, apply_date};
use super::{
    Common, OBSERVATION_PARAMETERS, Param, escape, reference_id, split_token, split_unescaped,
};
use crate::FhirError;
use crate::common::{LOINC, MDC, SNOMED, SYSTEM_CODE};
use vigil_model::catalogue::{BLOOD_PRESSURE_LOINC, NEWS2_SNOMED};

/// Code systems `code` accepts.
pub const CODE_SYSTEMS: &[&str] = &[LOINC, MDC, SNOMED, SYSTEM_CODE];

/// Order of results by effective time; ties are broken by id in the same direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DateSort {
    /// `_sort=date`, and the default.
    #[default]
    OldestFirst,
    /// `_sort=-date`.
    NewestFirst,
}

/// Keyset paging position: the last observation of the previous page, in the search's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObservationCursor {
    pub effective: Instant,
    pub id: ObservationId,
}

/// A parsed Observation search.
#[derive(Debug, Clone, PartialEq)]
pub struct ObservationSearch {
    /// `patient={id}`, `patient=Patient/{id}` or `subject=Patient/{id}` (also `subject={id}`).
    pub patient: Option<PatientId>,
    /// `device={id}` or `device=Device/{id}`.
    pub device: Option<DeviceId>,
    /// Any of these codes (OR); empty means every code. No duplicates, in the order given.
    pub codes: Vec<ObservationCode>,
    /// Lower bound on the effective time (from `date`).
    pub from: Option<Bound>,
    /// Upper bound on the effective time (from `date`).
    pub to: Option<Bound>,
    pub sort: DateSort,
    /// Continue after this observation (`_cursor`, as a next link carries it).
    pub cursor: Option<ObservationCursor>,
    /// Page size (`_count`).
    pub count: usize,
    /// `_pretty=true`.
    pub pretty: bool,
}

impl Default for ObservationSearch {
    fn default() -> Self {
        ObservationSearch {
            patient: None,
            device: None,
            codes: Vec::new(),
            from: None,
            to: None,
            sort: DateSort::default(),
            cursor: None,
            count: super::DEFAULT_COUNT,
            pretty: false,
        }
    }
}

impl ObservationSearch {
    /// True when the date bounds exclude every instant (`date=lt2026&date=gt2027`): the result is
    /// empty without asking the store.
    pub fn matches_nothing(&self) -> bool {
        match (self.from, self.to) {
            (Some(from), Some(to)) => {
                from.at > to.at || (from.at == to.at && !(from.inclusive && to.inclusive))
            }
            _ => false,
        }
    }

    /// The search in canonical form, for the Bundle's self and next links (set `cursor` for the
    /// next page). Parsing these parameters gives back the same search. Values are not
    /// percent-encoded: the caller encodes them into the URL.
    pub fn to_params(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if let Some(patient) = &self.patient {
            out.push(("patient".to_owned(), patient.to_string()));
        }
        if let Some(device) = &self.device {
            out.push(("device".to_owned(), device.to_string()));
        }
        if !self.codes.is_empty() {
            let tokens: Vec<String> = self
                .codes
                .iter()
                .map(|c| format!("{SYSTEM_CODE}|{}", escape(c.short_name())))
                .collect();
            out.push(("code".to_owned(), tokens.join(",")));
        }
        let full = |at: Instant| at.to_rfc3339_opts(SecondsFormat::Nanos, true);
        if let Some(from) = self.from {
            let prefix = if from.inclusive { "ge" } else { "gt" };
            out.push(("date".to_owned(), format!("{prefix}{}", full(from.at))));
        }
        if let Some(to) = self.to {
            let prefix = if to.inclusive { "le" } else { "lt" };
            out.push(("date".to_owned(), format!("{prefix}{}", full(to.at))));
        }
        let sort = match self.sort {
            DateSort::OldestFirst => "date",
            DateSort::NewestFirst => "-date",
        };
        out.push(("_sort".to_owned(), sort.to_owned()));
        out.push(("_count".to_owned(), self.count.to_string()));
        if let Some(cursor) = self.cursor {
            out.push((
                "_cursor".to_owned(),
                encode_cursor(cursor.effective, cursor.id),
            ));
        }
        if self.pretty {
            out.push(("_pretty".to_owned(), "true".to_owned()));
        }
        out
    }
}

/// The paging token of a next link: `{seconds}.{nanoseconds}.{id}` of the last observation of
/// the page (Unix time). Opaque to clients; only [`decode_cursor`] reads it.
pub fn encode_cursor(effective: Instant, id: ObservationId) -> String {
    format!(
        "{}.{}.{}",
        effective.timestamp(),
        effective.timestamp_subsec_nanos(),
        id.0
    )
}

/// Reads a `_cursor` made by [`encode_cursor`].
pub fn decode_cursor(raw: &str) -> Result<ObservationCursor, FhirError> {
    let invalid = || FhirError::InvalidParameter {
        name: "_cursor".into(),
        value: raw.to_owned(),
        reason: "not a paging cursor this server issued; follow the Bundle's next link as given"
            .into(),
    };
    let mut parts = raw.split('.');
    let (Some(secs), Some(nanos), Some(id), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid());
    };
    let secs: i64 = secs.parse().map_err(|_| invalid())?;
    let nanos: u32 = nanos.parse().map_err(|_| invalid())?;
    let id: i64 = id.parse().map_err(|_| invalid())?;
    if nanos >= 1_000_000_000 {
        return Err(invalid());
    }
    let effective = DateTime::from_timestamp(secs, nanos).ok_or_else(invalid)?;
    Ok(ObservationCursor {
        effective,
        id: ObservationId(id),
    })
}

/// Which code system a code itself belongs to, by its shape: LOINC codes are `digits-digit`,
/// MDC codes are numeric (or a `MDC_` reference id), Vigil short names are lower-case words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum System {
    Loinc,
    Mdc,
    Snomed,
    Vigil,
}

impl System {
    fn uri(self) -> &'static str {
        match self {
            System::Loinc => LOINC,
            System::Mdc => MDC,
            System::Snomed => SNOMED,
            System::Vigil => SYSTEM_CODE,
        }
    }
}

/// Every (system, code) an Observation from Vigil carries, and what it is stored under. Blood
/// pressure component codes lead to the panel that holds them.
fn served_codes() -> Vec<(System, String, ObservationCode)> {
    let mut out = Vec::new();
    let add_measurand = |m: Measurand, to: ObservationCode, out: &mut Vec<_>| {
        out.push((System::Loinc, m.loinc().to_owned(), to));
        for extra in m.extra_loinc() {
            out.push((System::Loinc, (*extra).to_owned(), to));
        }
        if let Some(mdc) = m.mdc() {
            out.push((System::Mdc, mdc.code.to_string(), to));
            out.push((System::Mdc, mdc.refid.to_owned(), to));
        }
        out.push((System::Vigil, m.short_name().to_owned(), to));
    };
    for code in ObservationCode::all() {
        match code {
            ObservationCode::Single(m) => add_measurand(m, code, &mut out),
            ObservationCode::News2 => {
                out.push((System::Snomed, NEWS2_SNOMED.0.to_owned(), code));
                out.push((System::Vigil, code.short_name().to_owned(), code));
            }
            ObservationCode::Event(event) => {
                if let Some((snomed, _)) = event.snomed() {
                    out.push((System::Snomed, snomed.to_owned(), code));
                }
                out.push((System::Vigil, code.short_name().to_owned(), code));
            }
            ObservationCode::BloodPressure => {
                out.push((System::Loinc, BLOOD_PRESSURE_LOINC.to_owned(), code));
                if let Some(mdc) = code.mdc() {
                    out.push((System::Mdc, mdc.code.to_string(), code));
                    out.push((System::Mdc, mdc.refid.to_owned(), code));
                }
                out.push((System::Vigil, code.short_name().to_owned(), code));
            }
        }
    }
    for m in Measurand::ALL.into_iter().filter(|m| m.is_bp_component()) {
        add_measurand(m, ObservationCode::BloodPressure, &mut out);
    }
    out
}

fn known_codes_hint() -> String {
    let list: Vec<String> = ObservationCode::all()
        .map(|c| match c.loinc() {
            Some(loinc) => format!("{loinc} ({})", c.short_name()),
            None => c.short_name().to_owned(),
        })
        .collect();
    format!("Vigil records observations under {}", list.join(", "))
}

/// Resolves one token of `code` (see [`parse_observation_search`]).
fn resolve_code(name: &str, token: &str) -> Result<ObservationCode, FhirError> {
    let (system, code) = split_token(token);
    let system = match system.as_deref() {
        None | Some("") => None,
        Some(uri) => Some(
            [System::Loinc, System::Mdc, System::Snomed, System::Vigil]
                .into_iter()
                .find(|s| s.uri() == uri)
                .ok_or_else(|| FhirError::UnknownSystem {
                    name: name.to_owned(),
                    system: uri.to_owned(),
                    supported: CODE_SYSTEMS,
                })?,
        ),
    };
    if code.is_empty() {
        return Err(FhirError::UnsupportedParameter {
            name: name.to_owned(),
            reason: format!(
                "{token:?}: a system without a code (every code of a system) is not supported"
            ),
        });
    }
    let found = served_codes()
        .into_iter()
        .find(|(s, c, _)| *c == code && system.is_none_or(|wanted| wanted == *s))
        .map(|(_, _, oc)| oc);
    if let Some(found) = found {
        return Ok(found);
    }
    let hint = if let Some(m) = Measurand::from_code(&code) {
        format!(
            "Vigil records {} under LOINC {} (urn:vigil:code|{}); search for that",
            m.display(),
            m.loinc(),
            m.short_name()
        )
    } else if WaveformCode::from_code(&code).is_some() {
        "it names a waveform; waveform segments are not found by Observation search".to_owned()
    } else {
        known_codes_hint()
    };
    Err(FhirError::UnknownCode {
        name: name.to_owned(),
        system: system.map(|s| s.uri().to_owned()),
        code,
        hint,
    })
}

/// Parses the decoded query pairs of `GET /Observation`.
///
/// - `patient` (`{id}` or `Patient/{id}`) and `subject` (`Patient/{id}` or `{id}`) name the
///   same thing; given both, they must agree. `subject:Patient`/`patient:Patient` are accepted.
/// - `device`: `{id}` or `Device/{id}` (`device:Device` accepted).
/// - `code`: a comma-separated OR list of tokens `system|code`, `|code` or `code`. Systems:
///   `http://loinc.org`, `urn:iso:std:iso:11073:10101` (numeric codes; reference ids such as
///   `MDC_PULS_OXIM_SAT_O2` are accepted too) and `urn:vigil:code` (Vigil short names). A code
///   without a system may be from any of them. Vigil's codings always carry a system, so `|code`
///   is read like `code`. **A blood-pressure component code (LOINC 8480-6, 8462-4, 8478-0, MDC
///   150021–150023, `systolic_bp`…) resolves to the blood-pressure panel (85354-9)**, which is
///   where Vigil keeps those values (strictly, FHIR searches components with `component-code`).
///   An unknown system or code is an error naming it; a code Vigil accepts from devices but
///   records under another (8889-8, 15074-8, MDC 149530…) is an error pointing to that one.
///   `code` may appear once.
/// - `date`: see [`super::date`]; may repeat (AND).
/// - `_sort`: `date` (oldest first, the default) or `-date`.
/// - `_cursor`: the paging token of a next link ([`encode_cursor`]).
/// - `_count`, `_format`, `_pretty`: see [`super`].
pub fn parse_observation_search(
    params: &[(String, String)],
) -> Result<ObservationSearch, FhirError> {
    let mut common = Common::new("Observation", OBSERVATION_PARAMETERS);
    let mut search = ObservationSearch::default();
    let mut patient_from: Option<&Param> = None;
    let params = common.params(params, &["date"])?;
    for p in &params {
        match p.name {
            "patient" | "subject" => {
                p.modifier_in(&["Patient"])?;
                let id: PatientId = reference_id(p, "Patient")?;
                match (&search.patient, patient_from) {
                    (Some(earlier), Some(first)) if *earlier != id => {
                        return Err(
                            p.invalid(format!("conflicts with {}={:?}", first.name, first.value))
                        );
                    }
                    _ => {
                        search.patient = Some(id);
                        patient_from = Some(p);
                    }
                }
            }
            "device" => {
                p.modifier_in(&["Device"])?;
                search.device = Some(reference_id(p, "Device")?);
            }
            "code" => {
                p.modifier_in(&[])?;
                for token in split_unescaped(p.value, ',') {
                    if token.is_empty() {
                        return Err(p.invalid("the list holds an empty code"));
                    }
                    let code = resolve_code(p.name, &token)?;
                    if !search.codes.contains(&code) {
                        search.codes.push(code);
                    }
                }
            }
            "date" => apply_date(p, &mut search.from, &mut search.to)?,
            "_sort" => {
                p.modifier_in(&[])?;
                search.sort = match p.value {
                    "date" => DateSort::OldestFirst,
                    "-date" => DateSort::NewestFirst,
                    _ => return Err(p.invalid("Observations sort by date only: use date or -date")),
                };
            }
            "_cursor" => {
                p.modifier_in(&[])?;
                search.cursor = Some(decode_cursor(p.value)?);
            }
            _ => {
                common.handle(p)?;
            }
        }
    }
    search.count = common.count;
    search.pretty = common.pretty;
    Ok(search)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone, Utc};

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn parse(pairs: &[(&str, &str)]) -> Result<ObservationSearch, FhirError> {
        parse_observation_search(&q(pairs))
    }

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> Instant {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
    }

    fn incl(at: Instant) -> Option<Bound> {
        Some(Bound {
            at,
            inclusive: true,
        })
    }

    fn excl(at: Instant) -> Option<Bound> {
        Some(Bound {
            at,
            inclusive: false,
        })
    }

    fn dates(values: &[&str]) -> (Option<Bound>, Option<Bound>) {
        let pairs: Vec<(&str, &str)> = values.iter().map(|v| ("date", *v)).collect();
        let s = parse(&pairs).unwrap_or_else(|e| panic!("{values:?}: {e}"));
        (s.from, s.to)
    }

    #[test]
    fn no_parameters_is_every_observation_oldest_first() {
        let s = parse(&[]).unwrap();
        assert_eq!(s, ObservationSearch::default());
        assert_eq!(s.count, 50);
        assert_eq!(s.sort, DateSort::OldestFirst);
    }

    #[test]
    fn patient_in_every_spelling() {
        let want = Some(PatientId::new("bed-12").unwrap());
        for (k, v) in [
            ("patient", "bed-12"),
            ("patient", "Patient/bed-12"),
            ("subject", "Patient/bed-12"),
            ("subject", "bed-12"),
            ("subject:Patient", "bed-12"),
        ] {
            assert_eq!(parse(&[(k, v)]).unwrap().patient, want, "{k}={v}");
        }
        assert_eq!(
            parse(&[("patient", "bed-12"), ("subject", "Patient/bed-12")])
                .unwrap()
                .patient,
            want
        );
    }

    #[test]
    fn bad_patient_references_are_refused() {
        let err = parse(&[("patient", "bed-12"), ("subject", "Patient/bed-13")]).unwrap_err();
        assert_eq!(
            err,
            FhirError::InvalidParameter {
                name: "subject".into(),
                value: "Patient/bed-13".into(),
                reason: "conflicts with patient=\"bed-12\"".into(),
            }
        );
        let err = parse(&[("subject", "Group/g1")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "search parameter subject=\"Group/g1\" is not valid: must reference a Patient, not a Group"
        );
        assert!(matches!(
            parse(&[("patient", "http://x/fhir/Patient/a")]),
            Err(FhirError::InvalidParameter { .. })
        ));
        assert!(matches!(
            parse(&[("patient", "Patient/a/_history/2")]),
            Err(FhirError::InvalidParameter { .. })
        ));
        assert_eq!(
            parse(&[("patient", "a b")]).unwrap_err().to_string(),
            "search parameter patient=\"a b\" is not valid: identifier contains ' '; only ASCII letters, digits, '-' and '.' are allowed"
        );
        assert_eq!(
            parse(&[("patient:Group", "a")]).unwrap_err(),
            FhirError::UnsupportedModifier {
                name: "patient".into(),
                modifier: "Group".into()
            }
        );
        assert_eq!(
            parse(&[("patient", "a"), ("patient", "a")]).unwrap_err(),
            FhirError::RepeatedParameter {
                name: "patient".into()
            }
        );
    }

    #[test]
    fn device_reference() {
        let want = Some(DeviceId::new("mon-1").unwrap());
        assert_eq!(parse(&[("device", "mon-1")]).unwrap().device, want);
        assert_eq!(parse(&[("device", "Device/mon-1")]).unwrap().device, want);
        assert!(matches!(
            parse(&[("device", "Patient/mon-1")]),
            Err(FhirError::InvalidParameter { .. })
        ));
    }

    fn codes(value: &str) -> Result<Vec<ObservationCode>, FhirError> {
        parse(&[("code", value)]).map(|s| s.codes)
    }

    const HR: ObservationCode = ObservationCode::Single(Measurand::HeartRate);
    const SPO2: ObservationCode = ObservationCode::Single(Measurand::Spo2);
    const BP: ObservationCode = ObservationCode::BloodPressure;

    #[test]
    fn code_tokens_in_every_form() {
        for token in [
            "http://loinc.org|8867-4",
            "|8867-4",
            "8867-4",
            "urn:iso:std:iso:11073:10101|147842",
            "urn:iso:std:iso:11073:10101|MDC_ECG_HEART_RATE",
            "147842",
            "urn:vigil:code|heart_rate",
            "heart_rate",
        ] {
            assert_eq!(codes(token).unwrap(), [HR], "{token}");
        }
        assert_eq!(
            codes("http://loinc.org|2708-6").unwrap(),
            [SPO2],
            "the second SpO2 LOINC code"
        );
        assert_eq!(codes("59408-5").unwrap(), [SPO2]);
        assert_eq!(
            codes("8867-4,59408-5,2708-6").unwrap(),
            [HR, SPO2],
            "OR list without duplicates"
        );
        assert_eq!(
            codes("urn:vigil:code|glucose").unwrap(),
            [ObservationCode::Single(Measurand::Glucose)]
        );
    }

    #[test]
    fn blood_pressure_components_resolve_to_the_panel() {
        for token in [
            "85354-9",
            "http://loinc.org|8480-6",
            "8462-4",
            "8478-0",
            "urn:iso:std:iso:11073:10101|150021",
            "150022",
            "150020",
            "urn:vigil:code|systolic_bp",
            "blood_pressure",
        ] {
            assert_eq!(codes(token).unwrap(), [BP], "{token}");
        }
        assert_eq!(codes("8480-6,8462-4").unwrap(), [BP]);
    }

    #[test]
    fn unknown_codes_and_systems_are_named() {
        assert_eq!(
            codes("http://acme.example/codes|364075005").unwrap_err(),
            FhirError::UnknownSystem {
                name: "code".into(),
                system: "http://acme.example/codes".into(),
                supported: CODE_SYSTEMS,
            }
        );
        // SNOMED CT is served for the codes Vigil writes in it, and only those.
        assert!(matches!(
            codes("http://snomed.info/sct|364075005"),
            Err(FhirError::UnknownCode { .. })
        ));
        assert_eq!(
            codes("http://snomed.info/sct|1912002").unwrap(),
            [ObservationCode::Event(vigil_model::DeviceEvent::Fall)]
        );
        assert_eq!(
            codes("http://snomed.info/sct|1104051000000101,urn:vigil:code|panic").unwrap(),
            [
                ObservationCode::News2,
                ObservationCode::Event(vigil_model::DeviceEvent::Panic)
            ]
        );
        let err = codes("http://loinc.org|1234-5").unwrap_err();
        let FhirError::UnknownCode {
            system, code, hint, ..
        } = &err
        else {
            panic!("{err:?}")
        };
        assert_eq!((system.as_deref(), code.as_str()), (Some(LOINC), "1234-5"));
        assert!(hint.contains("8867-4 (heart_rate)"), "{hint}");
        assert_eq!(err.issue_type(), crate::IssueType::CodeInvalid);
        // A code of the wrong system for its shape.
        assert!(matches!(
            codes("http://loinc.org|heart_rate"),
            Err(FhirError::UnknownCode { .. })
        ));
        assert!(matches!(
            codes("urn:vigil:code|8867-4"),
            Err(FhirError::UnknownCode { .. })
        ));
        // Codes Vigil accepts from devices but records under another.
        let err = codes("8889-8").unwrap_err();
        assert!(
            err.to_string()
                .contains("under LOINC 8867-4 (urn:vigil:code|heart_rate)"),
            "{err}"
        );
        let err = codes("urn:iso:std:iso:11073:10101|149530").unwrap_err();
        assert!(err.to_string().contains("under LOINC 8867-4"), "{err}");
        assert!(
            codes("15074-8")
                .unwrap_err()
                .to_string()
                .contains("under LOINC 2339-0")
        );
        // Waveforms.
        let err = codes("ecg_lead_ii").unwrap_err();
        assert!(err.to_string().contains("waveform"), "{err}");
        // One bad token spoils the list.
        assert!(
            matches!(codes("8867-4,nonsense"), Err(FhirError::UnknownCode { code, .. }) if code == "nonsense")
        );
        assert!(matches!(
            codes("http://loinc.org|"),
            Err(FhirError::UnsupportedParameter { .. })
        ));
        assert!(matches!(
            codes("8867-4,"),
            Err(FhirError::InvalidParameter { .. })
        ));
        assert_eq!(
            parse(&[("code:text", "heart")]).unwrap_err(),
            FhirError::UnsupportedModifier {
                name: "code".into(),
                modifier: "text".into()
            }
        );
        assert_eq!(
            parse(&[("code", "8867-4"), ("code", "59408-5")]).unwrap_err(),
            FhirError::RepeatedParameter {
                name: "code".into()
            }
        );
    }

    #[test]
    fn date_prefixes_at_day_precision() {
        let day = utc(2026, 11, 21, 0, 0, 0);
        let next = utc(2026, 11, 22, 0, 0, 0);
        assert_eq!(dates(&["2026-11-21"]), (incl(day), excl(next)));
        assert_eq!(dates(&["eq2026-11-21"]), (incl(day), excl(next)));
        assert_eq!(dates(&["ge2026-11-21"]), (incl(day), None));
        assert_eq!(dates(&["gt2026-11-21"]), (incl(next), None));
        assert_eq!(dates(&["le2026-11-21"]), (None, excl(next)));
        assert_eq!(dates(&["lt2026-11-21"]), (None, excl(day)));
    }

    #[test]
    fn date_prefixes_at_every_precision() {
        assert_eq!(
            dates(&["le2026-11"]),
            (None, excl(utc(2026, 12, 1, 0, 0, 0)))
        );
        assert_eq!(dates(&["gt2026"]), (incl(utc(2027, 1, 1, 0, 0, 0)), None));
        assert_eq!(
            dates(&["lt2026-11-21T10:00"]),
            (None, excl(utc(2026, 11, 21, 10, 0, 0)))
        );
        assert_eq!(
            dates(&["le2026-11-21T10:00"]),
            (None, excl(utc(2026, 11, 21, 10, 1, 0)))
        );
        assert_eq!(
            dates(&["gt2026-11-21T10:00:05Z"]),
            (incl(utc(2026, 11, 21, 10, 0, 6)), None)
        );
        let half = utc(2026, 11, 21, 10, 0, 0) + Duration::milliseconds(500);
        assert_eq!(dates(&["lt2026-11-21T10:00:00.500Z"]), (None, excl(half)));
        assert_eq!(
            dates(&["le2026-11-21T10:00:00.500Z"]),
            (None, excl(half + Duration::milliseconds(1)))
        );
        assert_eq!(dates(&["ge2026-11-21T10:00:00.500Z"]), (incl(half), None));
        assert_eq!(
            dates(&["gt2026-11-21T10:00:00.5Z"]),
            (incl(half + Duration::milliseconds(100)), None)
        );
    }

    #[test]
    fn date_offsets_are_converted_to_utc() {
        assert_eq!(
            dates(&["ge2026-11-21T10:00:00+01:00"]),
            (incl(utc(2026, 11, 21, 9, 0, 0)), None)
        );
        assert_eq!(
            dates(&["ge2026-11-21T10:00:00 01:00"]),
            (incl(utc(2026, 11, 21, 9, 0, 0)), None)
        );
        assert_eq!(
            dates(&["lt2026-11-21T10:00:00-02:00"]),
            (None, excl(utc(2026, 11, 21, 12, 0, 0)))
        );
        assert_eq!(
            dates(&["ge2026-11-21T10:00"]),
            (incl(utc(2026, 11, 21, 10, 0, 0)), None),
            "no offset is UTC"
        );
    }

    #[test]
    fn several_dates_intersect() {
        assert_eq!(
            dates(&["ge2026-11-21", "lt2026-11-22T06:00Z"]),
            (
                incl(utc(2026, 11, 21, 0, 0, 0)),
                excl(utc(2026, 11, 22, 6, 0, 0))
            )
        );
        assert_eq!(
            dates(&["ge2026-11", "ge2026-11-15", "le2026-11-20", "le2026-12"]),
            (
                incl(utc(2026, 11, 15, 0, 0, 0)),
                excl(utc(2026, 11, 21, 0, 0, 0))
            )
        );
        let s = parse(&[("date", "lt2026"), ("date", "gt2027")]).unwrap();
        assert!(s.matches_nothing());
        let s = parse(&[("date", "2026-11-21")]).unwrap();
        assert!(!s.matches_nothing());
        let s = parse(&[("date", "ge2026-11-21"), ("date", "lt2026-11-21")]).unwrap();
        assert!(s.matches_nothing(), "[t, t) is empty");
    }

    #[test]
    fn unsupported_and_malformed_dates() {
        for prefix in ["ne", "sa", "eb", "ap"] {
            let value = format!("{prefix}2026-11-21");
            assert_eq!(
                parse(&[("date", &value)]).unwrap_err(),
                FhirError::UnsupportedPrefix {
                    name: "date".into(),
                    value: value.clone(),
                    prefix: prefix.into()
                }
            );
        }
        let err = parse(&[("date", "xx2026")]).unwrap_err();
        assert!(
            matches!(&err, FhirError::InvalidParameter { reason, .. } if reason.contains("unknown prefix")),
            "{err}"
        );
        let err = parse(&[("date", "ge2026-02-30")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "search parameter date=\"ge2026-02-30\" is not valid: 2026-02-30 is not a calendar date"
        );
        assert!(matches!(
            parse(&[("date", "2026-11-21,2026-11-22")]),
            Err(FhirError::UnsupportedParameter { .. })
        ));
        assert!(matches!(
            parse(&[("date:missing", "true")]),
            Err(FhirError::UnsupportedModifier { .. })
        ));
        assert!(matches!(
            parse(&[("date", "yesterday")]),
            Err(FhirError::InvalidParameter { .. })
        ));
    }

    #[test]
    fn sort_count_and_format() {
        assert_eq!(
            parse(&[("_sort", "-date")]).unwrap().sort,
            DateSort::NewestFirst
        );
        assert_eq!(
            parse(&[("_sort", "date")]).unwrap().sort,
            DateSort::OldestFirst
        );
        for bad in ["_lastUpdated", "date,-date", "-code"] {
            assert!(
                matches!(
                    parse(&[("_sort", bad)]),
                    Err(FhirError::InvalidParameter { .. })
                ),
                "{bad}"
            );
        }
        assert_eq!(parse(&[("_count", "10")]).unwrap().count, 10);
        assert_eq!(parse(&[("_count", "1000")]).unwrap().count, 1000);
        assert_eq!(
            parse(&[("_count", "5000")]).unwrap().count,
            1000,
            "served as the largest page"
        );
        assert_eq!(
            parse(&[("_count", "99999999999999999999999")])
                .unwrap_err()
                .issue_type(),
            crate::IssueType::Value
        );
        assert!(matches!(
            parse(&[("_count", "0")]),
            Err(FhirError::UnsupportedParameter { .. })
        ));
        for bad in ["-1", "ten", "1.5", " 5"] {
            assert!(
                matches!(
                    parse(&[("_count", bad)]),
                    Err(FhirError::InvalidParameter { .. })
                ),
                "{bad}"
            );
        }
        assert!(parse(&[("_format", "application/fhir+json")]).is_ok());
        assert_eq!(
            parse(&[("_format", "xml")]).unwrap_err(),
            FhirError::UnsupportedFormat {
                value: "xml".into()
            }
        );
        assert!(parse(&[("_pretty", "true")]).unwrap().pretty);
        assert!(matches!(
            parse(&[("_pretty", "yes")]),
            Err(FhirError::InvalidParameter { .. })
        ));
    }

    #[test]
    fn other_parameters_are_refused_by_name() {
        assert_eq!(
            parse(&[("category", "vital-signs")]).unwrap_err(),
            FhirError::UnknownParameter {
                resource: "Observation",
                name: "category".into(),
                supported: OBSERVATION_PARAMETERS,
            }
        );
        assert_eq!(
            parse(&[("category", "vital-signs")])
                .unwrap_err()
                .to_string(),
            "unknown search parameter \"category\" for Observation; supported: patient, subject, code, date, \
             device, _count, _sort, _cursor, _format, _pretty"
        );
        for known in [
            "_summary",
            "_elements",
            "_include",
            "_revinclude",
            "_total",
            "_id",
            "_lastUpdated",
        ] {
            let err = parse(&[(known, "x")]).unwrap_err();
            assert!(
                matches!(&err, FhirError::UnsupportedParameter { name, .. } if name == known),
                "{err}"
            );
            assert_eq!(err.issue_type(), crate::IssueType::NotSupported);
        }
        assert!(matches!(
            parse(&[("patient", "")]),
            Err(FhirError::InvalidParameter { .. })
        ));
    }

    #[test]
    fn cursors_round_trip() {
        let at = utc(2026, 11, 21, 10, 0, 0) + Duration::nanoseconds(123_456_789);
        let raw = encode_cursor(at, ObservationId(42));
        assert_eq!(raw, "1795255200.123456789.42");
        assert_eq!(
            decode_cursor(&raw).unwrap(),
            ObservationCursor {
                effective: at,
                id: ObservationId(42)
            }
        );
        let before_1970 = utc(1969, 12, 31, 23, 59, 59) + Duration::milliseconds(250);
        assert_eq!(
            decode_cursor(&encode_cursor(before_1970, ObservationId(1)))
                .unwrap()
                .effective,
            before_1970
        );
        assert_eq!(
            parse(&[("_cursor", &raw)]).unwrap().cursor.unwrap().id,
            ObservationId(42)
        );
        for bad in [
            "",
            "1.2",
            "1.2.3.4",
            "a.b.c",
            "1.1000000000.3",
            "99999999999999999.0.1",
            "1.-1.2",
        ] {
            assert!(
                matches!(decode_cursor(bad), Err(FhirError::InvalidParameter { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn canonical_params_parse_back_to_the_same_search() {
        let s = parse(&[
            ("subject", "Patient/bed-12"),
            ("device", "Device/mon-1"),
            ("code", "http://loinc.org|8480-6,2708-6,heart_rate"),
            ("date", "ge2026-11-21T10:00:00.5+01:00"),
            ("date", "le2026-11"),
            ("_sort", "-date"),
            ("_count", "20"),
            ("_pretty", "true"),
        ])
        .unwrap();
        let mut next = s.clone();
        next.cursor = Some(ObservationCursor {
            effective: utc(2026, 11, 21, 11, 0, 0),
            id: ObservationId(9),
        });
        for search in [s, next] {
            let params = search.to_params();
            assert_eq!(
                parse_observation_search(&params).unwrap(),
                search,
                "{params:?}"
            );
        }
        assert_eq!(
            parse(&[]).unwrap().to_params(),
            q(&[("_sort", "date"), ("_count", "50")])
        );
    }
}
