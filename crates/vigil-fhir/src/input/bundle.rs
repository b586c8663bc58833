//! `batch` and `transaction` Bundles of Observation creates, and the `batch-response` /
//! `transaction-response` Bundle that answers them (<http://hl7.org/fhir/R4/bundle.html>,
//! <http://hl7.org/fhir/R4/http.html#transaction>).

use std::collections::HashMap;

use serde_json::{Value, json};
use vigil_model::ObservationId;

use super::observation::{ObservationInput, observation_from_value};
use super::types::{BundleIn, EntryIn};
use super::{InputLimits, InputNote, at, check_size, json_kind, quote, structure_error};
use crate::patient::{check_resource_type, json_object};
use crate::{FhirError, IssueType, Severity, operation_outcome};

/// `Bundle.type` of a request Vigil takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BundleKind {
    /// Each entry succeeds or fails on its own.
    Batch,
    /// All entries succeed together, or none does.
    Transaction,
}

impl BundleKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BundleKind::Batch => "batch",
            BundleKind::Transaction => "transaction",
        }
    }

    /// `Bundle.type` of the answer.
    pub fn response_type(self) -> &'static str {
        match self {
            BundleKind::Batch => "batch-response",
            BundleKind::Transaction => "transaction-response",
        }
    }
}

/// A Bundle of Observation creates, entries in request order.
#[derive(Debug, Clone, PartialEq)]
pub enum BundleInput {
    /// One result per entry: a bad entry spoils only itself. Answer each `Err` with
    /// [`EntryOutcome::invalid`].
    Batch(Vec<Result<ObservationInput, FhirError>>),
    /// Every entry is valid (otherwise [`bundle_from_fhir`] failed): store all or none.
    Transaction(Vec<ObservationInput>),
}

impl BundleInput {
    pub fn kind(&self) -> BundleKind {
        match self {
            BundleInput::Batch(_) => BundleKind::Batch,
            BundleInput::Transaction(_) => BundleKind::Transaction,
        }
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        match self {
            BundleInput::Batch(entries) => entries.len(),
            BundleInput::Transaction(entries) => entries.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Reads a `batch` or `transaction` Bundle whose entries each create an Observation
/// (`request.method` `POST`, `request.url` `Observation`, `fullUrl` optional).
///
/// `Err` is a failure of the whole Bundle: not JSON, not a Bundle, a `type` other than batch or
/// transaction, more entries than [`InputLimits::max_entries`], a `fullUrl` given twice (bdl-7),
/// or, for a transaction, any bad entry (the error's path names it:
/// `Bundle.entry[3].resource.valueQuantity.code`). For a batch, each entry's errors stay in its
/// own result.
///
/// `request.ifNoneExist` (a conditional create, as PHD gateways send) is accepted when it is
/// `identifier=[system|]value` of the Observation's own identifier: Vigil deduplicates on it.
pub fn bundle_from_fhir(body: &[u8], limits: &InputLimits) -> Result<BundleInput, FhirError> {
    check_size("Bundle", body.len(), limits)?;
    let map = json_object(body)?;
    check_resource_type(&map, "Bundle")?;
    if map.contains_key("implicitRules") {
        return Err(FhirError::UnsupportedElement {
            path: "Bundle.implicitRules".into(),
            reason: "it may change the meaning of the resource and Vigil cannot honour it".into(),
        });
    }
    let value = Value::Object(map);
    let bundle: BundleIn =
        serde_path_to_error::deserialize(&value).map_err(|e| structure_error("Bundle", &e))?;
    let kind = match bundle.type_.as_deref() {
        Some("batch") => BundleKind::Batch,
        Some("transaction") => BundleKind::Transaction,
        None => {
            return Err(FhirError::MissingElement {
                path: "Bundle.type".into(),
                detail: "Vigil takes batch and transaction Bundles",
            });
        }
        Some(
            other @ ("document"
            | "message"
            | "history"
            | "searchset"
            | "collection"
            | "batch-response"
            | "transaction-response"),
        ) => {
            return Err(FhirError::UnsupportedElement {
                path: "Bundle.type".into(),
                reason: format!("Vigil takes batch and transaction Bundles, not {other}"),
            });
        }
        Some(other) => {
            return Err(FhirError::InvalidElement {
                path: "Bundle.type".into(),
                value: quote(other),
                reason: "expected one of document, message, transaction, transaction-response, \
                         batch, batch-response, history, searchset, collection"
                    .into(),
            });
        }
    };
    let entries: &[Value] = match value.get("entry") {
        None => &[],
        Some(Value::Array(entries)) => entries,
        Some(other) => {
            return Err(FhirError::Structure {
                path: "Bundle.entry".into(),
                detail: format!("must be an array, not {}", json_kind(other)),
            });
        }
    };
    if entries.len() > limits.max_entries {
        return Err(FhirError::UnsupportedElement {
            path: "Bundle.entry".into(),
            reason: format!(
                "{} entries; Vigil takes at most {} per Bundle",
                entries.len(),
                limits.max_entries
            ),
        });
    }
    // bdl-7: "FullUrl must be unique in a bundle, or else entries with the same fullUrl must have
    // different meta.versionId" (a request's resources carry no version).
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, entry) in entries.iter().enumerate() {
        if let Some(Value::String(url)) = entry.get("fullUrl")
            && let Some(first) = seen.insert(url, i)
        {
            return Err(FhirError::InvalidElement {
                path: format!("Bundle.entry[{i}].fullUrl"),
                value: quote(url),
                reason: format!(
                    "bdl-7: fullUrl must be unique in a Bundle; entry[{first}] has it too"
                ),
            });
        }
    }
    let results = entries
        .iter()
        .enumerate()
        .map(|(i, entry)| read_entry(entry, i, limits));
    match kind {
        BundleKind::Batch => Ok(BundleInput::Batch(results.collect())),
        BundleKind::Transaction => results
            .collect::<Result<_, _>>()
            .map(BundleInput::Transaction),
    }
}

fn read_entry(
    value: &Value,
    i: usize,
    limits: &InputLimits,
) -> Result<ObservationInput, FhirError> {
    let p = format!("Bundle.entry[{i}]");
    let Value::Object(map) = value else {
        return Err(FhirError::Structure {
            path: p,
            detail: format!("an entry is an object, not {}", json_kind(value)),
        });
    };
    if map.contains_key("modifierExtension") {
        return Err(FhirError::UnsupportedElement {
            path: at(&p, "modifierExtension"),
            reason: "it may change the meaning of the entry and Vigil cannot honour it".into(),
        });
    }
    let entry: EntryIn =
        serde_path_to_error::deserialize(value).map_err(|e| structure_error(&p, &e))?;
    let rp = at(&p, "request");
    let Some(request) = entry.request else {
        return Err(FhirError::MissingElement {
            path: rp,
            detail: "bdl-3: every entry of a batch or transaction has a request (POST Observation)",
        });
    };
    if request.modifier_extension.is_some() {
        return Err(FhirError::UnsupportedElement {
            path: at(&rp, "modifierExtension"),
            reason: "it may change the meaning of the request and Vigil cannot honour it".into(),
        });
    }
    match request.method.as_deref() {
        Some("POST") => {}
        None => {
            return Err(FhirError::MissingElement {
                path: at(&rp, "method"),
                detail: "Vigil takes POST (create) entries",
            });
        }
        Some(method @ ("GET" | "HEAD" | "PUT" | "DELETE" | "PATCH")) => {
            return Err(FhirError::UnsupportedElement {
                path: at(&rp, "method"),
                reason: format!("{method}: Vigil takes only POST (create) entries in a Bundle"),
            });
        }
        Some(other) => {
            return Err(FhirError::InvalidElement {
                path: at(&rp, "method"),
                value: quote(other),
                reason: "expected one of GET, HEAD, POST, PUT, DELETE, PATCH".into(),
            });
        }
    }
    match request.url.as_deref() {
        Some("Observation") => {}
        None => {
            return Err(FhirError::MissingElement {
                path: at(&rp, "url"),
                detail: "a create names the resource type: Observation",
            });
        }
        Some(other) => {
            return Err(FhirError::UnsupportedElement {
                path: at(&rp, "url"),
                reason: format!(
                    "{:?}: Vigil takes only creates of Observations (url Observation) in a Bundle",
                    quote(other)
                ),
            });
        }
    }
    for (name, present) in [
        ("ifMatch", request.if_match.is_some()),
        ("ifNoneMatch", request.if_none_match.is_some()),
        ("ifModifiedSince", request.if_modified_since.is_some()),
    ] {
        if present {
            return Err(FhirError::UnsupportedElement {
                path: at(&rp, name),
                reason: "a version or time condition does not apply to a create".into(),
            });
        }
    }
    let Some(resource) = map.get("resource") else {
        return Err(FhirError::MissingElement {
            path: at(&p, "resource"),
            detail: "a POST entry carries the Observation to create",
        });
    };
    let input = observation_from_value(resource, &at(&p, "resource"), limits)?;
    if let Some(condition) = request.if_none_exist.as_deref() {
        check_if_none_exist(condition, &input, &at(&rp, "ifNoneExist"))?;
    }
    Ok(input)
}

/// A conditional create Vigil can honour: `identifier=[system|]value` naming the Observation's
/// own identifier, on which Vigil deduplicates anyway.
fn check_if_none_exist(
    condition: &str,
    input: &ObservationInput,
    path: &str,
) -> Result<(), FhirError> {
    let unsupported = || FhirError::UnsupportedElement {
        path: path.to_owned(),
        reason: format!(
            "{:?}: Vigil deduplicates on Observation.identifier only; ifNoneExist may only be \
             identifier=[system|]value of the entry's own identifier",
            quote(condition)
        ),
    };
    let decoded = percent_decode(condition);
    let Some(token) = decoded.strip_prefix("identifier=") else {
        return Err(unsupported());
    };
    let Some(id) = &input.identifier else {
        return Err(unsupported());
    };
    let (system, value) = split_token(token);
    let matches = match system {
        None => value == id.value,
        Some(system) if system.is_empty() => id.system.is_none() && value == id.value,
        Some(system) => id.system.as_deref() == Some(system.as_str()) && value == id.value,
    };
    if matches { Ok(()) } else { Err(unsupported()) }
}

/// `%XX` escapes of a query string, decoded; anything else kept as is.
fn percent_decode(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(Some(hi)), Some(Some(lo))) = (
                bytes.get(i + 1).map(|b| hex(*b)),
                bytes.get(i + 2).map(|b| hex(*b)),
            )
        {
            out.push((hi * 16 + lo) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A search token `[system|]code`, split at the first unescaped `|`, with FHIR's `\` escapes
/// (`\|`, `\,`, `\$`, `\\`) undone.
fn split_token(token: &str) -> (Option<String>, String) {
    let mut parts = vec![String::new()];
    let mut chars = token.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next()
                    && let Some(last) = parts.last_mut()
                {
                    last.push(next);
                }
            }
            '|' if parts.len() == 1 => parts.push(String::new()),
            c => {
                if let Some(last) = parts.last_mut() {
                    last.push(c);
                }
            }
        }
    }
    match <[String; 2]>::try_from(parts) {
        Ok([system, value]) => (Some(system), value),
        Err(mut one) => (None, one.pop().unwrap_or_default()),
    }
}

/// What became of one entry, as the server reports it in the response Bundle.
#[derive(Debug, Clone, PartialEq)]
pub enum EntryOutcome {
    /// Stored: `201 Created`, `location` `Observation/{id}`; notes, if any, as a warning
    /// `OperationOutcome` in `response.outcome`.
    Created {
        id: ObservationId,
        notes: Vec<InputNote>,
    },
    /// Already stored (same identifier): `200 OK`, `location` of the stored Observation.
    Duplicate { id: ObservationId },
    /// Refused: the HTTP status and an `OperationOutcome` saying why.
    Refused { status: u16, outcome: Value },
}

impl EntryOutcome {
    /// An entry that did not parse: `400 Bad Request` (`422 Unprocessable Entity` for what Vigil
    /// does not support), as the server answers the same error for a single resource.
    pub fn invalid(error: &FhirError) -> Self {
        let status = match error {
            FhirError::UnsupportedElement { .. } => 422,
            FhirError::UnsupportedFormat { .. } => 406,
            _ => 400,
        };
        EntryOutcome::Refused {
            status,
            outcome: error.to_operation_outcome(),
        }
    }

    /// An entry the server refused (unknown patient: 404 `not-found`; storage failure: 500
    /// `exception`), with `diagnostics` shown to the client as is.
    pub fn refused(status: u16, code: IssueType, diagnostics: &str) -> Self {
        EntryOutcome::Refused {
            status,
            outcome: operation_outcome(Severity::Error, code, diagnostics),
        }
    }
}

/// `Bundle.entry.response.status`: the status code and its reason phrase.
fn status_line(status: u16) -> String {
    let reason = match status {
        200 => "OK",
        201 => "Created",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        406 => "Not Acceptable",
        409 => "Conflict",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => return status.to_string(),
    };
    format!("{status} {reason}")
}

/// The answer to a batch or transaction: a `batch-response` / `transaction-response` Bundle with
/// one entry per request entry, in the same order, each with `response.status` and, as fits,
/// `location` and `outcome`.
///
/// A transaction that failed is not answered with this Bundle: FHIR answers it with the
/// failing entry's error alone (an `OperationOutcome`), so for [`BundleKind::Transaction`] pass
/// only `Created` and `Duplicate` outcomes.
pub fn batch_response_bundle(kind: BundleKind, outcomes: &[EntryOutcome]) -> Value {
    let entries: Vec<Value> = outcomes
        .iter()
        .map(|outcome| {
            let response = match outcome {
                EntryOutcome::Created { id, notes } => {
                    let mut r = json!({
                        "status": status_line(201),
                        "location": format!("Observation/{id}"),
                    });
                    if let Some(oo) = InputNote::operation_outcome(notes) {
                        r["outcome"] = oo;
                    }
                    r
                }
                EntryOutcome::Duplicate { id } => json!({
                    "status": status_line(200),
                    "location": format!("Observation/{id}"),
                }),
                EntryOutcome::Refused { status, outcome } => json!({
                    "status": status_line(*status),
                    "outcome": outcome,
                }),
            };
            json!({ "response": response })
        })
        .collect();
    let mut bundle = json!({ "resourceType": "Bundle", "type": kind.response_type() });
    // An empty array is not valid FHIR JSON.
    if !entries.is_empty() {
        bundle["entry"] = Value::Array(entries);
    }
    bundle
}
