//! What the audit trail records: one [`AuditEntry`] per access to health data (read, search,
//! write, export) and per security event (sign-in, refused credentials, permission denied,
//! consent change, alarm acknowledgement, device credential change). HIPAA §164.312(b) asks for
//! exactly this: who did what to whose record, when, from where, and with what outcome.
//!
//! Pure data. The store chains the entries with SHA-256 over [`AuditEntry::canonical_json`], the
//! FHIR layer renders them as R4 `AuditEvent`s, and the server decides when to record one.
//!
//! Entries carry identifiers (patient ids, user subjects, device ids), never names or clinical
//! values: the audit trail is read by administrators who need to know *that* a record was
//! accessed, not what it holds.

use serde::{Deserialize, Serialize};

use crate::{Instant, PatientId};

/// The longest free-text `detail` kept; longer text is cut at a character boundary.
pub const MAX_DETAIL_CHARS: usize = 256;
/// The longest search query kept in [`AuditEntity::query`]; longer queries are cut.
pub const MAX_QUERY_CHARS: usize = 2048;
/// The longest agent id, role, name or address kept.
pub const MAX_LABEL_CHARS: usize = 128;

/// One audited event. Field order is the canonical order: [`AuditEntry::canonical_json`] writes
/// the fields in declaration order, so it must not change (entries already chained would no
/// longer re-serialise to the bytes that were hashed; verification hashes the stored bytes, so
/// this matters only for new code that re-serialises old entries).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditEntry {
    /// When it happened (recorded by Vigil, UTC, microsecond precision).
    pub recorded: Instant,
    pub agent: AuditAgent,
    pub action: AuditAction,
    /// What was acted on.
    pub entity: AuditEntity,
    /// Whose record it concerns; several for a search, none for e.g. a failed sign-in.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub patients: Vec<PatientId>,
    pub source: AuditSource,
    pub outcome: AuditOutcome,
    /// A short reason or note ("bad_secret", "state=acknowledged"); never health data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Who acted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditAgent {
    pub kind: AgentKind,
    /// The user's token subject, the device id, the system's name; `"anonymous"` when unknown.
    pub id: String,
    /// The role the agent acted in ("admin", "clinician", "patient", "integration", "device").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// A display name, when the caller has one; patients' names are never put here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentKind {
    /// A person with a user token.
    Person,
    /// A system: an integration with a token, Vigil itself, the operator's command line.
    System,
    /// A medical device with device credentials.
    Device,
    /// Someone who did not (successfully) identify themselves.
    Anonymous,
}

/// What was done. A closed set, each with a stable code (the JSON form, also used in searches
/// and metrics); add variants, never rename a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuditAction {
    Read,
    Search,
    Create,
    Update,
    Delete,
    /// Data leaves Vigil in bulk (a download, a `$export`).
    Export,
    /// An operation that is neither of the above (a device command, a dry run).
    Execute,
    Login,
    Logout,
    LoginFailed,
    /// Authenticated, but not allowed to do this.
    PermissionDenied,
    ConsentChange,
    AlarmAcknowledge,
    AlarmSilence,
    /// A device registered, its secret rotated or revoked; a user's credentials changed.
    CredentialChange,
    /// A bearer token presented and accepted.
    TokenUse,
    /// Something that looks like an attack (intrusion detection, tampering found).
    SecurityAlert,
}

impl AuditAction {
    pub const ALL: [AuditAction; 17] = [
        AuditAction::Read,
        AuditAction::Search,
        AuditAction::Create,
        AuditAction::Update,
        AuditAction::Delete,
        AuditAction::Export,
        AuditAction::Execute,
        AuditAction::Login,
        AuditAction::Logout,
        AuditAction::LoginFailed,
        AuditAction::PermissionDenied,
        AuditAction::ConsentChange,
        AuditAction::AlarmAcknowledge,
        AuditAction::AlarmSilence,
        AuditAction::CredentialChange,
        AuditAction::TokenUse,
        AuditAction::SecurityAlert,
    ];

    /// The stable code (as in the JSON).
    pub fn code(self) -> &'static str {
        match self {
            AuditAction::Read => "read",
            AuditAction::Search => "search",
            AuditAction::Create => "create",
            AuditAction::Update => "update",
            AuditAction::Delete => "delete",
            AuditAction::Export => "export",
            AuditAction::Execute => "execute",
            AuditAction::Login => "login",
            AuditAction::Logout => "logout",
            AuditAction::LoginFailed => "login-failed",
            AuditAction::PermissionDenied => "permission-denied",
            AuditAction::ConsentChange => "consent-change",
            AuditAction::AlarmAcknowledge => "alarm-acknowledge",
            AuditAction::AlarmSilence => "alarm-silence",
            AuditAction::CredentialChange => "credential-change",
            AuditAction::TokenUse => "token-use",
            AuditAction::SecurityAlert => "security-alert",
        }
    }

    pub fn from_code(code: &str) -> Option<AuditAction> {
        AuditAction::ALL.into_iter().find(|a| a.code() == code)
    }

    /// Whether this is an access to health data (as opposed to a security event).
    pub fn is_data_access(self) -> bool {
        matches!(
            self,
            AuditAction::Read
                | AuditAction::Search
                | AuditAction::Create
                | AuditAction::Update
                | AuditAction::Delete
                | AuditAction::Export
                | AuditAction::Execute
        )
    }
}

impl std::fmt::Display for AuditAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

/// What was acted on: a resource (FHIR type and id) or, for a search, the type and the query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditEntity {
    /// A FHIR resource type ("Patient", "Observation", "Device", "Flag", "AuditEvent") or one of
    /// Vigil's own ("Alarm", "Session").
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The search's query string, as received.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
}

impl AuditEntity {
    /// One resource: `AuditEntity::resource("Device", "mon-1")`.
    pub fn resource(kind: impl Into<String>, id: impl Into<String>) -> AuditEntity {
        AuditEntity {
            kind: kind.into(),
            id: Some(clip(id.into(), MAX_LABEL_CHARS)),
            query: None,
        }
    }

    /// A search over a type: `AuditEntity::search("Observation", "patient=p1&code=…")`.
    pub fn search(kind: impl Into<String>, query: impl Into<String>) -> AuditEntity {
        AuditEntity {
            kind: kind.into(),
            id: None,
            query: Some(clip(query.into(), MAX_QUERY_CHARS)),
        }
    }

    /// A type with no particular instance (a sign-in: "Session").
    pub fn kind(kind: impl Into<String>) -> AuditEntity {
        AuditEntity {
            kind: kind.into(),
            id: None,
            query: None,
        }
    }
}

/// Where the request came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditSource {
    pub channel: Channel,
    /// The peer's network address ("192.0.2.7:51234"), when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

impl AuditSource {
    pub fn new(channel: Channel, address: Option<String>) -> AuditSource {
        AuditSource {
            channel,
            address: address.map(|a| clip(a, MAX_LABEL_CHARS)),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Http,
    Mqtt,
    Mllp,
    /// The operator's command line on the server's host.
    Cli,
    /// Vigil itself (the rules engine, retention).
    Internal,
}

impl Channel {
    pub fn code(self) -> &'static str {
        match self {
            Channel::Http => "http",
            Channel::Mqtt => "mqtt",
            Channel::Mllp => "mllp",
            Channel::Cli => "cli",
            Channel::Internal => "internal",
        }
    }
}

/// How it ended, in the FHIR `AuditEvent.outcome` grades.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuditOutcome {
    Success,
    /// Refused or invalid: the caller's problem (an HTTP 4xx).
    MinorFailure,
    /// Vigil failed (an HTTP 5xx).
    SeriousFailure,
}

impl AuditOutcome {
    /// The grade of an HTTP status: 2xx/3xx success, 4xx minor, 5xx serious.
    pub fn from_http_status(status: u16) -> AuditOutcome {
        match status {
            500.. => AuditOutcome::SeriousFailure,
            400..=499 => AuditOutcome::MinorFailure,
            _ => AuditOutcome::Success,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            AuditOutcome::Success => "success",
            AuditOutcome::MinorFailure => "minor-failure",
            AuditOutcome::SeriousFailure => "serious-failure",
        }
    }
}

impl AuditAgent {
    pub fn person(id: impl Into<String>, role: impl Into<String>) -> AuditAgent {
        AuditAgent::of(AgentKind::Person, id, Some(role.into()))
    }
    pub fn system(id: impl Into<String>, role: Option<String>) -> AuditAgent {
        AuditAgent::of(AgentKind::System, id, role)
    }
    pub fn device(id: impl Into<String>) -> AuditAgent {
        AuditAgent::of(AgentKind::Device, id, Some("device".to_owned()))
    }
    /// Who did not identify themselves, or whose claimed identity was refused.
    pub fn anonymous() -> AuditAgent {
        AuditAgent::of(AgentKind::Anonymous, "anonymous", None)
    }

    fn of(kind: AgentKind, id: impl Into<String>, role: Option<String>) -> AuditAgent {
        AuditAgent {
            kind,
            id: clip(id.into(), MAX_LABEL_CHARS),
            role: role.map(|r| clip(r, MAX_LABEL_CHARS)),
            name: None,
        }
    }
}

impl AuditEntry {
    /// A successful `action` by `agent` on `entity` at `recorded`, over HTTP from an unknown
    /// address, concerning no patient; refine with the chained setters:
    ///
    /// ```
    /// # use vigil_model::audit::*;
    /// # let now = chrono::Utc::now();
    /// let entry = AuditEntry::new(now, AuditAction::Read, AuditAgent::person("nadia", "clinician"),
    ///         AuditEntity::resource("Patient", "p1"))
    ///     .patient("p1".parse().unwrap())
    ///     .source(AuditSource::new(Channel::Http, Some("192.0.2.7:51234".into())))
    ///     .outcome(AuditOutcome::Success);
    /// assert_eq!(entry.patients.len(), 1);
    /// ```
    pub fn new(
        recorded: Instant,
        action: AuditAction,
        agent: AuditAgent,
        entity: AuditEntity,
    ) -> AuditEntry {
        AuditEntry {
            recorded: truncate_to_micros(recorded),
            agent,
            action,
            entity,
            patients: Vec::new(),
            source: AuditSource::new(Channel::Http, None),
            outcome: AuditOutcome::Success,
            detail: None,
        }
    }

    /// Adds a patient the event concerns (once).
    pub fn patient(mut self, patient: PatientId) -> AuditEntry {
        if !self.patients.contains(&patient) {
            self.patients.push(patient);
        }
        self
    }

    /// Adds the patients a search touched (each once, in order).
    pub fn patients(mut self, patients: impl IntoIterator<Item = PatientId>) -> AuditEntry {
        for p in patients {
            self = self.patient(p);
        }
        self
    }

    pub fn source(mut self, source: AuditSource) -> AuditEntry {
        self.source = source;
        self
    }

    pub fn outcome(mut self, outcome: AuditOutcome) -> AuditEntry {
        self.outcome = outcome;
        self
    }

    pub fn detail(mut self, detail: impl Into<String>) -> AuditEntry {
        self.detail = Some(clip(detail.into(), MAX_DETAIL_CHARS));
        self
    }

    /// The bytes the audit chain hashes: compact JSON with the fields in declaration order and
    /// optional fields left out when empty. The same entry always gives the same bytes.
    pub fn canonical_json(&self) -> String {
        // Serialising these types cannot fail: every map key is a string and no value is a float.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads an entry back from its canonical JSON.
    pub fn from_json(json: &str) -> Result<AuditEntry, serde_json::Error> {
        serde_json::from_str(json)
    }
}

fn truncate_to_micros(t: Instant) -> Instant {
    use chrono::SubsecRound;
    t.trunc_subsecs(6)
}

/// Cuts `s` to at most `max` characters (never inside a character).
fn clip(mut s: String, max: usize) -> String {
    if let Some((cut, _)) = s.char_indices().nth(max) {
        s.truncate(cut);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at() -> Instant {
        chrono::Utc
            .with_ymd_and_hms(2026, 11, 21, 10, 0, 0)
            .single()
            .unwrap()
            + chrono::Duration::nanoseconds(123_456_789)
    }

    fn entry() -> AuditEntry {
        AuditEntry::new(
            at(),
            AuditAction::AlarmAcknowledge,
            AuditAgent::person("nadia", "clinician"),
            AuditEntity::resource("Alarm", "42"),
        )
        .patient("p1".parse().unwrap())
        .source(AuditSource::new(
            Channel::Http,
            Some("127.0.0.1:5000".into()),
        ))
    }

    #[test]
    fn canonical_json_has_a_fixed_field_order_and_leaves_out_empty_fields() {
        assert_eq!(
            entry().canonical_json(),
            r#"{"recorded":"2026-11-21T10:00:00.123456Z","agent":{"kind":"person","id":"nadia","role":"clinician"},"action":"alarm-acknowledge","entity":{"type":"Alarm","id":"42"},"patients":["p1"],"source":{"channel":"http","address":"127.0.0.1:5000"},"outcome":"success"}"#
        );
    }

    #[test]
    fn canonical_json_round_trips_to_the_same_bytes() {
        let e = entry().detail("state=acknowledged");
        let json = e.canonical_json();
        let back = AuditEntry::from_json(&json).unwrap();
        assert_eq!(back, e);
        assert_eq!(back.canonical_json(), json);
    }

    #[test]
    fn every_action_code_is_distinct_and_parses_back() {
        for a in AuditAction::ALL {
            assert_eq!(AuditAction::from_code(a.code()), Some(a));
            assert_eq!(
                serde_json::to_value(a).unwrap(),
                serde_json::Value::String(a.code().into())
            );
        }
        let mut codes: Vec<_> = AuditAction::ALL.iter().map(|a| a.code()).collect();
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), AuditAction::ALL.len());
        assert_eq!(AuditAction::from_code("READ"), None);
    }

    #[test]
    fn long_text_is_cut_at_a_character_boundary() {
        let e = entry().detail("é".repeat(MAX_DETAIL_CHARS + 10));
        assert_eq!(e.detail.unwrap().chars().count(), MAX_DETAIL_CHARS);
        let q = AuditEntity::search("Observation", "x".repeat(5000));
        assert_eq!(q.query.unwrap().len(), MAX_QUERY_CHARS);
    }

    #[test]
    fn a_patient_is_listed_once() {
        let p: PatientId = "p1".parse().unwrap();
        let e = entry().patients([p.clone(), p.clone(), "p2".parse().unwrap()]);
        assert_eq!(e.patients.len(), 2);
    }

    #[test]
    fn http_status_grades() {
        assert_eq!(AuditOutcome::from_http_status(200), AuditOutcome::Success);
        assert_eq!(AuditOutcome::from_http_status(304), AuditOutcome::Success);
        assert_eq!(
            AuditOutcome::from_http_status(403),
            AuditOutcome::MinorFailure
        );
        assert_eq!(
            AuditOutcome::from_http_status(503),
            AuditOutcome::SeriousFailure
        );
    }

    #[test]
    fn unknown_fields_are_refused() {
        let mut v: serde_json::Value = serde_json::from_str(&entry().canonical_json()).unwrap();
        v["extra"] = serde_json::json!(1);
        assert!(AuditEntry::from_json(&v.to_string()).is_err());
    }
}
