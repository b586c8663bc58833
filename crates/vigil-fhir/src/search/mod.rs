//! FHIR R4 search parameters (<http://hl7.org/fhir/R4/search.html>), parsed from the decoded
//! query pairs of a request into typed searches. Pure: no HTTP.
//!
//! Vigil handles searches strictly (search.html "Handling Errors", `handling=strict`): a parameter it does not
//! implement is an error naming it and listing the supported ones, never silently ignored, so an
//! integrator never mistakes a wider result for the one asked for.
//!
//! Common to every search:
//! - `_count`: page size, 1 to [`MAX_COUNT`], default [`DEFAULT_COUNT`]; larger values are served
//!   as [`MAX_COUNT`] (search.html "Paging" lets a server return fewer). `_count=0` (count only) is not
//!   supported.
//! - `_format`: JSON only (`json`, `application/fhir+json`, `application/json`); anything else is
//!   [`FhirError::UnsupportedFormat`].
//! - `_pretty`: `true` or `false`.
//! - A parameter given twice that cannot repeat is an error, and so is an empty value.
//! - Values are unescaped as search.html "Escaping Search Parameters" defines: `\,` `\|` `\$` `\\`.
//! - A `+` a client forgot to percent-encode reaches us as a space; where a space cannot otherwise
//!   occur (`_format=application/fhir+json`, a date's `+01:00` offset) it is read as `+`.

pub mod date;
mod observation;
mod registry;

pub use date::{Bound, DateRange, parse_date_range};
pub use observation::{
    DateSort, ObservationCursor, ObservationSearch, decode_cursor, encode_cursor,
    parse_observation_search,
};
pub use registry::{
    DeviceIdentifier, DeviceSearch, FlagSearch, PatientIdentifier, PatientSearch,
    parse_device_search, parse_flag_search, parse_patient_search,
};

use std::collections::HashSet;

use crate::FhirError;

/// Page size when `_count` is not given.
pub const DEFAULT_COUNT: usize = 50;
/// Largest page served.
pub const MAX_COUNT: usize = 1000;
/// Largest `_offset` accepted (paging deeper by offset is too costly; narrow the search instead).
pub const MAX_OFFSET: usize = 1_000_000;

/// Parameters `parse_observation_search` accepts.
pub const OBSERVATION_PARAMETERS: &[&str] = &[
    "patient", "subject", "code", "date", "device", "_count", "_sort", "_cursor", "_format",
    "_pretty",
];
/// Parameters `parse_patient_search` accepts.
pub const PATIENT_PARAMETERS: &[&str] = &[
    "identifier",
    "name",
    "_count",
    "_offset",
    "_format",
    "_pretty",
];
/// Parameters `parse_device_search` accepts.
pub const DEVICE_PARAMETERS: &[&str] = &[
    "patient",
    "identifier",
    "_count",
    "_offset",
    "_format",
    "_pretty",
];

/// Parameters `parse_flag_search` accepts.
pub const FLAG_PARAMETERS: &[&str] = &[
    "patient", "status", "_count", "_offset", "_format", "_pretty",
];

/// FHIR's own search and result parameters that Vigil does not implement, with why.
fn unsupported_fhir_parameter(name: &str) -> Option<&'static str> {
    Some(match name {
        "_summary" | "_elements" => "Vigil always returns whole resources",
        "_include" | "_revinclude" => {
            "Vigil does not include referenced resources; read them separately"
        }
        "_total" => "Vigil pages by keyset and does not count matches",
        "_contained" | "_containedType" => "Vigil's resources contain no resources",
        "_id" | "_lastUpdated" | "_tag" | "_profile" | "_security" | "_source" | "_has"
        | "_list" | "_query" | "_filter" | "_text" | "_content" | "_type" | "_score" => {
            "Vigil does not implement this parameter"
        }
        _ => return None,
    })
}

/// One decoded query pair, its name split from its modifier (`code:text` → `code`, `text`).
pub(crate) struct Param<'a> {
    pub name: &'a str,
    pub modifier: Option<&'a str>,
    pub value: &'a str,
}

impl<'a> Param<'a> {
    fn new(raw_name: &'a str, value: &'a str) -> Self {
        match raw_name.split_once(':') {
            Some((name, modifier)) => Param {
                name,
                modifier: Some(modifier),
                value,
            },
            None => Param {
                name: raw_name,
                modifier: None,
                value,
            },
        }
    }

    pub fn invalid(&self, reason: impl Into<String>) -> FhirError {
        FhirError::InvalidParameter {
            name: self.name.to_owned(),
            value: self.value.to_owned(),
            reason: reason.into(),
        }
    }

    pub fn unsupported(&self, reason: impl Into<String>) -> FhirError {
        FhirError::UnsupportedParameter {
            name: self.name.to_owned(),
            reason: reason.into(),
        }
    }

    /// Refuses any modifier but the `allowed` ones.
    pub fn modifier_in(&self, allowed: &[&str]) -> Result<Option<&'a str>, FhirError> {
        match self.modifier {
            Some(m) if !allowed.contains(&m) => Err(FhirError::UnsupportedModifier {
                name: self.name.to_owned(),
                modifier: m.to_owned(),
            }),
            m => Ok(m),
        }
    }
}

/// What every search shares: paging, format, and the once-only bookkeeping.
pub(crate) struct Common {
    resource: &'static str,
    supported: &'static [&'static str],
    seen: HashSet<String>,
    pub count: usize,
    pub offset: usize,
    pub pretty: bool,
}

impl Common {
    fn new(resource: &'static str, supported: &'static [&'static str]) -> Self {
        Common {
            resource,
            supported,
            seen: HashSet::new(),
            count: DEFAULT_COUNT,
            offset: 0,
            pretty: false,
        }
    }

    /// Splits and checks each pair: empty values are refused, and so is a second occurrence of
    /// a parameter not in `repeatable`.
    fn params<'a>(
        &mut self,
        pairs: &'a [(String, String)],
        repeatable: &[&str],
    ) -> Result<Vec<Param<'a>>, FhirError> {
        let mut out = Vec::with_capacity(pairs.len());
        for (raw_name, value) in pairs {
            let p = Param::new(raw_name, value);
            if !self.supported.contains(&p.name) {
                return Err(match unsupported_fhir_parameter(p.name) {
                    Some(reason) => p.unsupported(reason),
                    None => FhirError::UnknownParameter {
                        resource: self.resource,
                        name: raw_name.clone(),
                        supported: self.supported,
                    },
                });
            }
            if value.is_empty() {
                return Err(p.invalid("the value is empty"));
            }
            if !repeatable.contains(&p.name) && !self.seen.insert(p.name.to_owned()) {
                return Err(FhirError::RepeatedParameter {
                    name: p.name.to_owned(),
                });
            }
            out.push(p);
        }
        Ok(out)
    }

    /// Handles `_count`, `_offset`, `_format` and `_pretty`; `false` for any other parameter.
    fn handle(&mut self, p: &Param) -> Result<bool, FhirError> {
        match p.name {
            "_count" => {
                p.modifier_in(&[])?;
                self.count = parse_count(p)?;
            }
            "_offset" => {
                p.modifier_in(&[])?;
                let offset: usize = p
                    .value
                    .parse()
                    .map_err(|_| p.invalid("expected a whole number ≥ 0"))?;
                if offset > MAX_OFFSET {
                    return Err(
                        p.invalid(format!("at most {MAX_OFFSET}; narrow the search instead"))
                    );
                }
                self.offset = offset;
            }
            "_format" => {
                p.modifier_in(&[])?;
                check_format(p.value)?;
            }
            "_pretty" => {
                p.modifier_in(&[])?;
                self.pretty = match p.value {
                    "true" => true,
                    "false" => false,
                    _ => return Err(p.invalid("expected true or false")),
                };
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The shared parameters of a search in canonical form, for self and next links.
    fn to_params(&self) -> Vec<(String, String)> {
        let mut out = vec![("_count".to_owned(), self.count.to_string())];
        if self.offset > 0 {
            out.push(("_offset".to_owned(), self.offset.to_string()));
        }
        if self.pretty {
            out.push(("_pretty".to_owned(), "true".to_owned()));
        }
        out
    }
}

fn parse_count(p: &Param) -> Result<usize, FhirError> {
    let count: u64 = p
        .value
        .parse()
        .map_err(|_| p.invalid("expected a whole number from 1 to 1000"))?;
    if count == 0 {
        return Err(p.unsupported("_count=0 (a count without resources) is not supported"));
    }
    Ok(usize::try_from(count).unwrap_or(MAX_COUNT).min(MAX_COUNT))
}

/// `_format` names a MIME type or `json`/`xml`/`ttl` (<http://hl7.org/fhir/R4/http.html>,
/// "Content Types and encodings").
fn check_format(value: &str) -> Result<(), FhirError> {
    let mime = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match mime.as_str() {
        "json"
        | "application/fhir+json"
        | "application/fhir json"
        | "application/json"
        | "application/json+fhir"
        | "application/json fhir" => Ok(()),
        _ => Err(FhirError::UnsupportedFormat {
            value: value.to_owned(),
        }),
    }
}

/// Splits a value at each `sep` not escaped by `\\` ("Escaping Search Parameters"). Escapes are kept, for
/// [`unescape`] to remove once the value is fully split.
pub(crate) fn split_unescaped(value: &str, sep: char) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            current.push(c);
            if let Some(next) = chars.next() {
                current.push(next);
            }
        } else if c == sep {
            parts.push(std::mem::take(&mut current));
        } else {
            current.push(c);
        }
    }
    parts.push(current);
    parts
}

/// Removes the escapes of "Escaping Search Parameters" from a value already split at its separators.
pub(crate) fn unescape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match (c, chars.clone().next()) {
            ('\\', Some(next @ (',' | '|' | '$' | '\\'))) => {
                out.push(next);
                chars.next();
            }
            _ => out.push(c),
        }
    }
    out
}

/// Escapes a value for a query string parameter (the inverse of [`unescape`]).
pub(crate) fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, ',' | '|' | '$' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A token `system|code`, `|code` or `code`: (`None` = no system given, `Some("")` = explicitly
/// no system, `Some(system)`), and the code, both unescaped.
pub(crate) fn split_token(value: &str) -> (Option<String>, String) {
    let parts = split_unescaped(value, '|');
    match parts.as_slice() {
        [code] => (None, unescape(code)),
        [system, code] => (Some(unescape(system)), unescape(code)),
        // More than one unescaped '|': keep everything after the first as the code.
        [system, rest @ ..] => (Some(unescape(system)), unescape(&rest.join("|"))),
        [] => (None, String::new()),
    }
}

/// Reads a reference parameter as an id of `target`: `{id}` or `{target}/{id}`.
pub(crate) fn reference_id<T>(p: &Param, target: &str) -> Result<T, FhirError>
where
    T: std::str::FromStr<Err = vigil_model::IdError>,
{
    let value = p.value;
    if value.contains("://") {
        return Err(p.invalid(format!(
            "absolute references are not supported; use {target}/{{id}} or {{id}}"
        )));
    }
    let id = match value.split_once('/') {
        None => value,
        Some((kind, id)) if kind == target && !id.contains('/') => id,
        Some((kind, _)) if kind == target => {
            return Err(p.invalid(format!(
                "versioned references are not supported; use {target}/{{id}}"
            )));
        }
        Some((kind, _)) => {
            return Err(p.invalid(format!("must reference a {target}, not a {kind}")));
        }
    };
    id.parse()
        .map_err(|e: vigil_model::IdError| p.invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_follow_the_search_spec() {
        assert_eq!(
            split_unescaped("a,b\\,c", ','),
            ["a", "b\\,c"],
            "escapes survive the split"
        );
        assert_eq!(split_unescaped("a\\|b,c", ','), ["a\\|b", "c"]);
        assert_eq!(split_unescaped("", ','), [""]);
        assert_eq!(
            split_token("http://loinc.org|8867-4"),
            (Some("http://loinc.org".into()), "8867-4".into())
        );
        assert_eq!(
            split_token("|8867-4"),
            (Some(String::new()), "8867-4".into())
        );
        assert_eq!(split_token("8867-4"), (None, "8867-4".into()));
        assert_eq!(
            split_token("urn:vigil:mrn|A\\|B"),
            (Some("urn:vigil:mrn".into()), "A|B".into())
        );
        assert_eq!(unescape("a\\,b\\\\c\\$"), "a,b\\c$");
        for raw in ["plain", "a,b", "x|y", "back\\slash", "$dollar"] {
            assert_eq!(unescape(&escape(raw)), raw);
            assert_eq!(split_unescaped(&escape(raw), ','), [escape(raw)]);
        }
    }

    #[test]
    fn formats() {
        for ok in [
            "json",
            "application/fhir+json",
            "application/fhir json",
            "application/json",
            "JSON",
            "application/fhir+json; fhirVersion=4.0",
        ] {
            assert!(check_format(ok).is_ok(), "{ok}");
        }
        for bad in ["xml", "application/fhir+xml", "text/html", "ttl"] {
            assert_eq!(
                check_format(bad),
                Err(FhirError::UnsupportedFormat { value: bad.into() })
            );
        }
    }
}
