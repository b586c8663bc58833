//! FHIR R4 input for device data: an `Observation` (vital signs and the other device readings
//! Vigil records) and a `batch` or `transaction` `Bundle` of them. Pure: bytes or JSON in,
//! validated [`ObservationInput`]s or a [`FhirError`] naming the element at fault out. Storage,
//! patient lookup and HTTP are the server's.
//!
//! # What the server calls
//!
//! - `POST /Observation`: [`observation_from_fhir`] with the body; on `Ok`, store
//!   `input.reading` for `input.subject` (and `input.device`), deduplicating on
//!   `input.identifier` when present; answer `201 Created` (or `200 OK` for a duplicate). On `Err`,
//!   answer the error's status with [`FhirError::to_operation_outcome`]. `input.notes` are
//!   warnings worth returning (an `OperationOutcome` of [`InputNote::operation_outcome`]).
//! - `POST /` with a Bundle: [`bundle_from_fhir`]. An `Err` is a whole-bundle failure (answer it as
//!   above). [`BundleInput::Batch`] holds one result per entry, in entry order: process each `Ok`,
//!   keep each `Err` as [`EntryOutcome::invalid`]. [`BundleInput::Transaction`] holds only valid
//!   entries: store them all in one database transaction, or none. Then answer `200 OK` with
//!   [`batch_response_bundle`], one [`EntryOutcome`] per entry in entry order.
//!
//! # Decisions where FHIR leaves room
//!
//! - `subject` must be `Patient/{id}` naming a Vigil patient id; `device`, when present,
//!   `Device/{id}`. Absolute URLs, `urn:uuid:` references to other entries, contained
//!   (`#…`) and logical (identifier-only) references are refused: Vigil creates neither patients
//!   nor devices from Observations.
//! - The time must name an instant: `effectiveDateTime` or `effectiveInstant` with a time and a
//!   UTC offset, or `effectivePeriod.start` (Vigil records when the measurement began). A date
//!   alone, allowed by FHIR and by vs-1, is refused as not supported. Not before 1970, and not
//!   more than [`InputLimits::max_future_skew`] after [`InputLimits::received`].
//! - Vital-signs category and LOINC coding (both required by the vital-signs profile): when the
//!   resource claims a vital-signs profile in `meta.profile`, they are required and their absence
//!   refused; otherwise (a PHD gateway sending MDC codes only) the observation is accepted and an
//!   [`InputNote`] says what is missing. Vigil knows the category from the code either way.
//! - `dataAbsentReason` (any code) without a value is [`AbsentReason::NotObtained`], never a
//!   number; Vigil's own "sensor off" text (what `observation_to_fhir` writes for
//!   [`AbsentReason::SensorOff`]) reads back as `SensorOff`.
//! - A blood-pressure part sent alone (LOINC 8480-6 with a `valueQuantity`) becomes a panel of
//!   one component, as device feeds are grouped (`assemble_readings`). Panel components keep
//!   the order they were sent in; a component with `dataAbsentReason` is left out (vs-3), and a
//!   panel left without any value is absent.
//! - PHD supplemental-type components (MDC 68193, `MDC_ATTR_SUPPLEMENTAL_TYPES`: spot or
//!   continuous) are accepted and ignored on any observation; any other component outside a
//!   blood-pressure panel is refused.
//! - Quality flags come back from Vigil's `urn:vigil:quality` extensions; a conversion to the
//!   canonical unit adds `converted-unit`. Other extensions are ignored; `modifierExtension`,
//!   `implicitRules` and `focus` are refused (they change what the resource means).
//! - `Observation.identifier`: the first identifier with a value, for idempotency (the PHD IG's
//!   conditional create). Its `system` may be absent (PHD gateways send none).
//! - Elements of R4 Observation that Vigil does not keep (`performer`, `note`, `interpretation`,
//!   `referenceRange`, `derivedFrom`, …) are accepted and ignored; an element R4 does not define
//!   is refused, naming it.

mod bundle;
mod observation;
mod types;

#[cfg(test)]
mod tests;

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};
use vigil_model::Instant;

pub use bundle::{BundleInput, BundleKind, EntryOutcome, batch_response_bundle, bundle_from_fhir};
pub use observation::{
    ObservationIdentifier, ObservationInput, observation_from_fhir, observation_from_value,
};

use crate::FhirError;

/// Bounds on what one request may carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputLimits {
    /// Largest body, in bytes, checked before parsing. Default 4 MiB (a Bundle of 1000
    /// Observations is about 2 MiB). The HTTP layer should refuse larger bodies earlier (413).
    pub max_bytes: usize,
    /// Most entries in a Bundle. Default 1000.
    pub max_entries: usize,
    /// Most components in one Observation. Default 16 (a blood-pressure panel has three).
    pub max_components: usize,
    /// Longest `Observation.identifier` value (and system), in bytes. Default 256.
    pub max_identifier_bytes: usize,
    /// How far after [`InputLimits::received`] an effective time may lie (device clock skew).
    /// Default 5 minutes, as for the device feeds.
    pub max_future_skew: Duration,
    /// When the request was received, the reference for `max_future_skew`. `None` (the default)
    /// checks no upper bound: the server should set it, with [`InputLimits::received_at`].
    pub received: Option<Instant>,
}

impl Default for InputLimits {
    fn default() -> Self {
        InputLimits {
            max_bytes: 4 * 1024 * 1024,
            max_entries: 1000,
            max_components: 16,
            max_identifier_bytes: 256,
            max_future_skew: Duration::minutes(5),
            received: None,
        }
    }
}

impl InputLimits {
    /// The default limits, with future times checked against `received`.
    pub fn received_at(received: Instant) -> Self {
        InputLimits {
            received: Some(received),
            ..InputLimits::default()
        }
    }
}

/// Something about an accepted resource the sender should know (what it lacks for the profile
/// it would meet), reported as an `OperationOutcome` issue of severity `warning`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputNote {
    /// FHIRPath of the element concerned (`Observation.category`).
    pub path: String,
    pub message: String,
}

impl InputNote {
    /// The notes as one `OperationOutcome` with a `warning` issue each; `None` when there are none.
    pub fn operation_outcome(notes: &[InputNote]) -> Option<Value> {
        if notes.is_empty() {
            return None;
        }
        let issues: Vec<Value> = notes
            .iter()
            .map(|n| {
                json!({
                    "severity": "warning",
                    "code": "informational",
                    "diagnostics": n.message,
                    "expression": [n.path],
                })
            })
            .collect();
        Some(json!({ "resourceType": "OperationOutcome", "issue": issues }))
    }
}

/// `{prefix}.{element}`.
fn at(prefix: &str, element: &str) -> String {
    format!("{prefix}.{element}")
}

/// Refuses a body over the limit before it is parsed.
fn check_size(resource: &str, len: usize, limits: &InputLimits) -> Result<(), FhirError> {
    if len > limits.max_bytes {
        return Err(FhirError::UnsupportedElement {
            path: resource.to_owned(),
            reason: format!(
                "the body is {len} bytes; Vigil takes at most {} bytes per request",
                limits.max_bytes
            ),
        });
    }
    Ok(())
}

/// A typed-deserialisation failure as [`FhirError::Structure`], naming the element under
/// `prefix` (`Observation.component[0].code`).
fn structure_error(prefix: &str, e: &serde_path_to_error::Error<serde_json::Error>) -> FhirError {
    let path = e.path().to_string();
    let path = if path == "." || path.is_empty() {
        prefix.to_owned()
    } else {
        at(prefix, &path)
    };
    FhirError::Structure {
        path,
        detail: serde_detail(&e.inner().to_string()),
    }
}

/// serde's message in FHIR's words, without the offending string: a string where an object was
/// expected may be anything (a patient's name), and messages must not quote it.
fn serde_detail(inner: &str) -> String {
    if inner.starts_with("unknown field") {
        return "FHIR R4 defines no such element here".to_owned();
    }
    for kind in ["invalid type: ", "invalid value: "] {
        let Some(rest) = inner.strip_prefix(kind) else {
            continue;
        };
        let (found, expected) = match rest.rfind(", expected ") {
            Some(i) => (&rest[..i], &rest[i + ", expected ".len()..]),
            None => (rest, ""),
        };
        let found = match found {
            f if f.starts_with("string ") => "a string",
            "map" => "an object",
            "sequence" => "an array",
            "null" => "null",
            f if f.starts_with("integer ") || f.starts_with("floating point ") => "a number",
            f if f.starts_with("boolean ") => "a boolean",
            _ => "something else",
        };
        let expected = match expected {
            e if e.starts_with("struct ") => "an object",
            "f64" | "a number" => "a number",
            "a sequence" => "an array",
            "a string" => "a string",
            "a boolean" => "a boolean",
            _ => "another JSON type",
        };
        return format!("expected {expected}, found {found}");
    }
    inner.to_owned()
}

/// A value from the request as quoted in an error: at most 64 characters.
fn quote(raw: &str) -> String {
    const MAX: usize = 64;
    match raw.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &raw[..cut]),
        None => raw.to_owned(),
    }
}

/// JSON's name for the kind of a value, for messages.
fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Reads a FHIR `dateTime` or `instant` that must name an instant: `YYYY-MM-DDThh:mm:ss`, an
/// optional fraction, and `Z` or `±hh:mm` (<http://hl7.org/fhir/R4/datatypes.html#dateTime>).
/// Then checks it against the limits: not before 1970, not beyond the allowed clock skew.
fn parse_instant(raw: &str, path: &str, limits: &InputLimits) -> Result<Instant, FhirError> {
    let invalid = |reason: &str| FhirError::InvalidElement {
        path: path.to_owned(),
        value: quote(raw),
        reason: reason.to_owned(),
    };
    let b = raw.as_bytes();
    let digits = |range: std::ops::Range<usize>| {
        b.get(range)
            .is_some_and(|s| !s.is_empty() && s.iter().all(u8::is_ascii_digit))
    };
    let date_shape = digits(0..4)
        && (b.len() == 4
            || (b.get(4) == Some(&b'-')
                && digits(5..7)
                && (b.len() == 7 || (b.get(7) == Some(&b'-') && digits(8..10)))));
    if !date_shape {
        return Err(invalid(
            "not a FHIR dateTime (YYYY-MM-DDThh:mm:ss with Z or a ±hh:mm offset)",
        ));
    }
    match b.len() {
        // vs-1: "if Observation.effective[x] is dateTime and has a value then that value shall
        // be precise to the day".
        4 | 7 => {
            return Err(invalid(
                "vs-1: a vital sign's time must be precise to at least the day; Vigil needs the \
                 time and its UTC offset",
            ));
        }
        10 => {
            return Err(FhirError::UnsupportedElement {
                path: path.to_owned(),
                reason: format!(
                    "{:?} is a date without a time; Vigil stores instants: give the time and its \
                     UTC offset",
                    quote(raw)
                ),
            });
        }
        _ => {}
    }
    let time_shape = b.get(10) == Some(&b'T')
        && digits(11..13)
        && b.get(13) == Some(&b':')
        && digits(14..16)
        && b.get(16) == Some(&b':')
        && digits(17..19);
    if !time_shape {
        return Err(invalid(
            "not a FHIR dateTime (YYYY-MM-DDThh:mm:ss with Z or a ±hh:mm offset)",
        ));
    }
    let mut rest = &raw[19..];
    let mut fraction = "";
    if let Some(after_dot) = rest.strip_prefix('.') {
        let len = after_dot.bytes().take_while(u8::is_ascii_digit).count();
        if len == 0 {
            return Err(invalid("a decimal point must be followed by digits"));
        }
        // FHIR allows any number of digits; nanoseconds are plenty.
        fraction = &after_dot[..len.min(9)];
        rest = &after_dot[len..];
    }
    let offset_shape = rest == "Z"
        || (rest.len() == 6
            && (rest.starts_with('+') || rest.starts_with('-'))
            && rest.as_bytes()[3] == b':'
            && rest
                .bytes()
                .enumerate()
                .all(|(i, c)| i == 0 || i == 3 || c.is_ascii_digit()));
    if rest.is_empty() {
        return Err(invalid(
            "a time without a UTC offset names no instant; FHIR requires Z or ±hh:mm with a time",
        ));
    }
    if !offset_shape {
        return Err(invalid("the UTC offset must be Z or ±hh:mm"));
    }
    if &raw[17..19] == "60" {
        return Err(invalid("leap seconds are not supported"));
    }
    let normalised = if fraction.is_empty() {
        format!("{}{rest}", &raw[..19])
    } else {
        format!("{}.{fraction}{rest}", &raw[..19])
    };
    let at = DateTime::parse_from_rfc3339(&normalised)
        .map_err(|e| invalid(&format!("no such date or time ({e})")))?
        .with_timezone(&Utc);
    if at < DateTime::UNIX_EPOCH {
        return Err(invalid("before 1970-01-01T00:00:00Z"));
    }
    if let Some(received) = limits.received
        && at.signed_duration_since(received) > limits.max_future_skew
    {
        return Err(invalid(&format!(
            "it is {} s after the request was received; a device clock may be at most {} s ahead",
            at.signed_duration_since(received).num_seconds(),
            limits.max_future_skew.num_seconds()
        )));
    }
    Ok(at)
}
