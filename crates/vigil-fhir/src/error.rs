//! What can be wrong with a FHIR request, and `OperationOutcome`, the resource FHIR reports it in
//! (<http://hl7.org/fhir/R4/operationoutcome.html>).
//!
//! Every [`FhirError`] names the element or search parameter at fault and the value it was given,
//! and knows its [`IssueType`]; the server maps each variant explicitly to an HTTP status. The
//! statuses FHIR R4 asks for (<http://hl7.org/fhir/R4/http.html>) are noted on each variant.

use serde_json::{Value, json};

/// `OperationOutcome.issue.severity` (<http://hl7.org/fhir/R4/valueset-issue-severity.html>).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Severity {
    Fatal,
    Error,
    Warning,
    Information,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Fatal => "fatal",
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Information => "information",
        }
    }
}

/// `OperationOutcome.issue.code`: every code of the R4 `IssueType` value set
/// (<http://hl7.org/fhir/R4/valueset-issue-type.html>).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IssueType {
    Invalid,
    Structure,
    Required,
    Value,
    Invariant,
    Security,
    Login,
    Unknown,
    Expired,
    Forbidden,
    Suppressed,
    Processing,
    NotSupported,
    Duplicate,
    MultipleMatches,
    NotFound,
    Deleted,
    TooLong,
    CodeInvalid,
    Extension,
    TooCostly,
    BusinessRule,
    Conflict,
    Transient,
    LockError,
    NoStore,
    Exception,
    Timeout,
    Incomplete,
    Throttled,
    Informational,
}

impl IssueType {
    pub fn as_str(self) -> &'static str {
        match self {
            IssueType::Invalid => "invalid",
            IssueType::Structure => "structure",
            IssueType::Required => "required",
            IssueType::Value => "value",
            IssueType::Invariant => "invariant",
            IssueType::Security => "security",
            IssueType::Login => "login",
            IssueType::Unknown => "unknown",
            IssueType::Expired => "expired",
            IssueType::Forbidden => "forbidden",
            IssueType::Suppressed => "suppressed",
            IssueType::Processing => "processing",
            IssueType::NotSupported => "not-supported",
            IssueType::Duplicate => "duplicate",
            IssueType::MultipleMatches => "multiple-matches",
            IssueType::NotFound => "not-found",
            IssueType::Deleted => "deleted",
            IssueType::TooLong => "too-long",
            IssueType::CodeInvalid => "code-invalid",
            IssueType::Extension => "extension",
            IssueType::TooCostly => "too-costly",
            IssueType::BusinessRule => "business-rule",
            IssueType::Conflict => "conflict",
            IssueType::Transient => "transient",
            IssueType::LockError => "lock-error",
            IssueType::NoStore => "no-store",
            IssueType::Exception => "exception",
            IssueType::Timeout => "timeout",
            IssueType::Incomplete => "incomplete",
            IssueType::Throttled => "throttled",
            IssueType::Informational => "informational",
        }
    }
}

/// An `OperationOutcome` with one issue.
///
/// `diagnostics` is shown to the integrator as is: pass only what they may see (never internals).
pub fn operation_outcome(severity: Severity, code: IssueType, diagnostics: &str) -> Value {
    json!({
        "resourceType": "OperationOutcome",
        "issue": [issue(severity, code, diagnostics)],
    })
}

fn issue(severity: Severity, code: IssueType, diagnostics: &str) -> Value {
    let mut issue = json!({ "severity": severity.as_str(), "code": code.as_str() });
    // FHIR strings may not be empty.
    if !diagnostics.is_empty() {
        issue["diagnostics"] = Value::from(diagnostics);
    }
    issue
}

/// Why a FHIR request body or search was refused.
///
/// Body errors name the element by its FHIRPath (`Patient.name[0].given[1]`); search errors name
/// the parameter as the client sent it. Every message quotes the value at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FhirError {
    // ---- Request bodies: 400 Bad Request, except where noted. ----
    /// The body is not JSON at all.
    #[error("the body is not valid JSON: {detail} (line {line}, column {column})")]
    NotJson {
        line: usize,
        column: usize,
        detail: String,
    },

    /// The body is JSON, but not an object.
    #[error("the body must be a JSON object (a FHIR resource), not {found}")]
    NotAnObject { found: &'static str },

    /// `resourceType` names another resource. (FHIR suggests 400; 422 also fits.)
    #[error("resourceType is {found:?}, but this endpoint takes a {expected}")]
    WrongResourceType {
        expected: &'static str,
        found: String,
    },

    /// An element that the resource does not define, or one of the wrong JSON type.
    #[error("{path}: {detail}")]
    Structure { path: String, detail: String },

    /// A required element is missing or empty.
    #[error("{path} is required: {detail}")]
    MissingElement { path: String, detail: &'static str },

    /// An element has a value its data type or value set does not allow. (FHIR: 400 or 422.)
    #[error("{path} = {value:?} is not valid: {reason}")]
    InvalidElement {
        path: String,
        value: String,
        reason: String,
    },

    /// A valid FHIR element Vigil cannot honour (a modifier extension, a partial birth date).
    /// (FHIR: 422 Unprocessable Entity.)
    #[error("{path} is not supported: {reason}")]
    UnsupportedElement { path: String, reason: String },

    /// `PUT /{type}/{id}` whose body carries another id. FHIR R4 http.html "update" requires 400.
    #[error("the body's id {body:?} differs from the id in the URL {url:?}")]
    IdMismatch { url: String, body: String },

    // ---- Search parameters: 400 Bad Request (search.html "Handling Errors", strict handling). ----
    /// A parameter Vigil does not know for this resource type.
    #[error("unknown search parameter {name:?} for {resource}; supported: {}", supported.join(", "))]
    UnknownParameter {
        resource: &'static str,
        name: String,
        supported: &'static [&'static str],
    },

    /// A FHIR parameter Vigil knows but does not implement (`_summary`, `_include`, `_count=0`).
    #[error("search parameter {name:?} is not supported: {reason}")]
    UnsupportedParameter { name: String, reason: String },

    /// A parameter modifier (`code:text`) Vigil does not implement.
    #[error("modifier :{modifier} on search parameter {name:?} is not supported")]
    UnsupportedModifier { name: String, modifier: String },

    /// A date comparator (`ne`, `sa`, `eb`, `ap`) Vigil does not implement.
    #[error("prefix {prefix:?} in {name}={value:?} is not supported; use eq, gt, ge, lt or le")]
    UnsupportedPrefix {
        name: String,
        value: String,
        prefix: String,
    },

    /// A parameter that may appear once appeared more than once.
    #[error("search parameter {name:?} may be given only once")]
    RepeatedParameter { name: String },

    /// A parameter's value is malformed.
    #[error("search parameter {name}={value:?} is not valid: {reason}")]
    InvalidParameter {
        name: String,
        value: String,
        reason: String,
    },

    /// A token names a code system Vigil does not code observations in.
    #[error("{name}: unknown code system {system:?}; supported: {}", supported.join(", "))]
    UnknownSystem {
        name: String,
        system: String,
        supported: &'static [&'static str],
    },

    /// A token's code is not one Vigil records anything under.
    #[error("{name}: unknown code {code:?}{}: {hint}", system_suffix(.system))]
    UnknownCode {
        name: String,
        system: Option<String>,
        code: String,
        hint: String,
    },

    /// `_format` asks for something other than JSON. (FHIR: 406 Not Acceptable.)
    #[error(
        "_format={value:?} is not supported: Vigil serves FHIR JSON only \
         (json, application/fhir+json, application/json)"
    )]
    UnsupportedFormat { value: String },
}

fn system_suffix(system: &Option<String>) -> String {
    match system {
        Some(system) => format!(" in system {system:?}"),
        None => String::new(),
    }
}

/// Where an issue lies, in the form `OperationOutcome.issue` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IssueLocation {
    /// A FHIRPath into the request body (`issue.expression`).
    Expression(String),
    /// An HTTP search parameter (`issue.location`, which R4 spells `http.` + the parameter name).
    Parameter(String),
}

impl FhirError {
    /// The `OperationOutcome.issue.code` this error is reported under.
    pub fn issue_type(&self) -> IssueType {
        match self {
            FhirError::NotJson { .. } => IssueType::Structure,
            FhirError::NotAnObject { .. } => IssueType::Structure,
            FhirError::WrongResourceType { .. } => IssueType::Invalid,
            FhirError::Structure { .. } => IssueType::Structure,
            FhirError::MissingElement { .. } => IssueType::Required,
            FhirError::InvalidElement { .. } => IssueType::Value,
            FhirError::UnsupportedElement { .. } => IssueType::NotSupported,
            FhirError::IdMismatch { .. } => IssueType::Invalid,
            FhirError::UnknownParameter { .. } => IssueType::NotSupported,
            FhirError::UnsupportedParameter { .. } => IssueType::NotSupported,
            FhirError::UnsupportedModifier { .. } => IssueType::NotSupported,
            FhirError::UnsupportedPrefix { .. } => IssueType::NotSupported,
            FhirError::RepeatedParameter { .. } => IssueType::Invalid,
            FhirError::InvalidParameter { .. } => IssueType::Value,
            FhirError::UnknownSystem { .. } => IssueType::CodeInvalid,
            FhirError::UnknownCode { .. } => IssueType::CodeInvalid,
            FhirError::UnsupportedFormat { .. } => IssueType::NotSupported,
        }
    }

    /// The element or parameter at fault, when there is one.
    pub fn location(&self) -> Option<IssueLocation> {
        let expression = |p: &str| Some(IssueLocation::Expression(p.to_owned()));
        let parameter = |n: &str| Some(IssueLocation::Parameter(n.to_owned()));
        match self {
            FhirError::NotJson { .. } | FhirError::NotAnObject { .. } => None,
            FhirError::WrongResourceType { .. } => None,
            FhirError::Structure { path, .. }
            | FhirError::MissingElement { path, .. }
            | FhirError::InvalidElement { path, .. }
            | FhirError::UnsupportedElement { path, .. } => expression(path),
            FhirError::IdMismatch { .. } => None,
            FhirError::UnknownParameter { name, .. }
            | FhirError::UnsupportedParameter { name, .. }
            | FhirError::UnsupportedModifier { name, .. }
            | FhirError::UnsupportedPrefix { name, .. }
            | FhirError::RepeatedParameter { name }
            | FhirError::InvalidParameter { name, .. }
            | FhirError::UnknownSystem { name, .. }
            | FhirError::UnknownCode { name, .. } => parameter(name),
            FhirError::UnsupportedFormat { .. } => parameter("_format"),
        }
    }

    /// This error as an `OperationOutcome` (severity `error`), with the element at fault in
    /// `issue.expression` or the parameter in `issue.location`.
    pub fn to_operation_outcome(&self) -> Value {
        let mut issue = issue(Severity::Error, self.issue_type(), &self.to_string());
        match self.location() {
            Some(IssueLocation::Expression(path)) => issue["expression"] = json!([path]),
            Some(IssueLocation::Parameter(name)) => {
                issue["location"] = json!([format!("http.{name}")])
            }
            None => {}
        }
        json!({ "resourceType": "OperationOutcome", "issue": [issue] })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_outcome_has_one_issue() {
        let oo = operation_outcome(
            Severity::Error,
            IssueType::NotFound,
            "Patient/x is not known",
        );
        assert_eq!(oo["resourceType"], "OperationOutcome");
        assert_eq!(oo["issue"][0]["severity"], "error");
        assert_eq!(oo["issue"][0]["code"], "not-found");
        assert_eq!(oo["issue"][0]["diagnostics"], "Patient/x is not known");
    }

    #[test]
    fn empty_diagnostics_are_left_out_because_fhir_strings_cannot_be_empty() {
        let oo = operation_outcome(Severity::Information, IssueType::Informational, "");
        assert!(oo["issue"][0].get("diagnostics").is_none());
    }

    #[test]
    fn codes_are_spelt_as_r4_spells_them() {
        assert_eq!(IssueType::NotSupported.as_str(), "not-supported");
        assert_eq!(IssueType::TooCostly.as_str(), "too-costly");
        assert_eq!(IssueType::CodeInvalid.as_str(), "code-invalid");
        assert_eq!(IssueType::MultipleMatches.as_str(), "multiple-matches");
        assert_eq!(IssueType::LockError.as_str(), "lock-error");
        assert_eq!(Severity::Fatal.as_str(), "fatal");
        assert_eq!(Severity::Warning.as_str(), "warning");
    }

    #[test]
    fn body_errors_point_at_the_element() {
        let err = FhirError::InvalidElement {
            path: "Patient.gender".into(),
            value: "f".into(),
            reason: "expected male, female, other or unknown".into(),
        };
        let oo = err.to_operation_outcome();
        assert_eq!(oo["issue"][0]["code"], "value");
        assert_eq!(oo["issue"][0]["expression"], json!(["Patient.gender"]));
        assert_eq!(
            oo["issue"][0]["diagnostics"],
            "Patient.gender = \"f\" is not valid: expected male, female, other or unknown"
        );
    }

    #[test]
    fn search_errors_point_at_the_parameter() {
        let err = FhirError::UnknownCode {
            name: "code".into(),
            system: Some("http://loinc.org".into()),
            code: "1234-5".into(),
            hint: "no observation is recorded under it".into(),
        };
        assert_eq!(err.issue_type(), IssueType::CodeInvalid);
        assert_eq!(
            err.to_string(),
            "code: unknown code \"1234-5\" in system \"http://loinc.org\": no observation is recorded under it"
        );
        let oo = err.to_operation_outcome();
        assert_eq!(oo["issue"][0]["location"], json!(["http.code"]));
        assert!(oo["issue"][0].get("expression").is_none());
    }
}
