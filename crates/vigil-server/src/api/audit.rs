//! Reading the audit trail: `GET /fhir/AuditEvent` for administrators (a FHIR searchset of
//! AuditEvents) and `GET /api/v1/patients/{id}/disclosures` (the accounting of disclosures: who
//! accessed this patient's record, when, what, from where) for the patient and administrators.
//! Every read of the audit, and every refused attempt, is itself audited.
//!
//! Also the small helpers other handlers use to audit: [`Origin`] (the peer's address) and
//! [`entry`].

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::extract::{ConnectInfo, FromRequestParts, Path, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{NaiveDate, TimeZone, Utc};
use serde_json::{Value, json};
use vigil_fhir::{IssueType, Severity};
use vigil_model::audit::{AuditAction, AuditEntity, AuditEntry, AuditOutcome};
use vigil_model::{Instant, PatientId};
use vigil_store::audit::{AuditQuery, AuditRecord};

use super::AppState;
use super::access::{Caller, Unauthenticated};
use super::problem::Problem;
use crate::audit::{self, AuditUnavailable};

/// Entries per page unless `_count` says otherwise.
const DEFAULT_COUNT: usize = 50;
/// The most entries one page returns.
const MAX_COUNT: usize = 1000;
const FHIR_JSON: &str = "application/fhir+json; charset=utf-8";
/// How the observer (this Vigil) is named in `AuditEvent.source.observer`.
const OBSERVER: &str = "Vigil";

/// Where the request came from: the peer's socket address, when the server was started with
/// connection info (it always is; in-process tests may not be).
#[derive(Debug, Clone, Copy, Default)]
pub struct Origin(pub Option<SocketAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Origin {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Origin(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0),
        ))
    }
}

/// `action` on `entity` by `caller` from `origin`, now; successful unless changed with
/// `.outcome(…)`. Add the patients concerned with `.patient(…)` / `.patients(…)`.
pub fn entry(
    caller: &Caller,
    origin: Origin,
    action: AuditAction,
    entity: AuditEntity,
) -> AuditEntry {
    audit::by(&caller.0, origin.0, action, entity)
}

/// An alarm acknowledged or silenced (or the attempt): the alarm, its patient, how it went.
pub fn alarm_action(
    caller: &Caller,
    origin: Origin,
    action: AuditAction,
    alarm: u64,
    done: &Result<Value, crate::surveillance::CommandError>,
) -> AuditEntry {
    use crate::surveillance::CommandError;
    let e = entry(
        caller,
        origin,
        action,
        AuditEntity::resource("Alarm", alarm.to_string()),
    );
    match done {
        Ok(alarm) => e.patients(
            alarm["patient"]
                .as_str()
                .and_then(|p| PatientId::new(p).ok()),
        ),
        Err(CommandError::NoSuchAlarm(_) | CommandError::Refused(_)) => {
            e.outcome(AuditOutcome::MinorFailure)
        }
        Err(CommandError::Store(_) | CommandError::Stopped) => {
            e.outcome(AuditOutcome::SeriousFailure)
        }
    }
}

/// The problem+json answer when the audit cannot be written: nothing is disclosed unrecorded.
pub fn audit_unavailable(e: &AuditUnavailable) -> Response {
    tracing::error!(error = %e, "request refused: the audit trail is unavailable");
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "audit-unavailable",
        "The audit trail cannot be written; nothing is disclosed until it can. Retry later.",
    )
    .into_response()
}

fn fhir(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, FHIR_JSON)],
        serde_json::to_vec(body).unwrap_or_default(),
    )
        .into_response()
}

fn outcome(status: StatusCode, code: IssueType, diagnostics: &str) -> Response {
    fhir(
        status,
        &vigil_fhir::operation_outcome(Severity::Error, code, diagnostics),
    )
}

/// A search or read of the audit, parsed.
#[derive(Debug, Default)]
struct Search {
    query: AuditQuery,
    /// The parameters to repeat in the next page's link (all but `_cursor`).
    kept: Vec<(String, String)>,
}

fn parse_time(raw: &str, end_of: bool) -> Option<Instant> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(raw) {
        let t = t.with_timezone(&Utc);
        return Some(if end_of {
            t + chrono::Duration::microseconds(1)
        } else {
            t
        });
    }
    let day = NaiveDate::parse_from_str(raw, "%Y-%m-%d").ok()?;
    let start = Utc.from_utc_datetime(&day.and_hms_opt(0, 0, 0)?);
    Some(if end_of {
        start + chrono::Duration::days(1)
    } else {
        start
    })
}

/// Parses `patient`, `agent`, `action`/`subtype`, `date` (ge/gt/le/lt/eq, RFC 3339 or a day),
/// `_count` and `_cursor`. `Err` names the parameter at fault.
fn parse_search(raw: Option<&str>, allow_patient: bool) -> Result<Search, String> {
    let mut s = Search {
        query: AuditQuery {
            limit: DEFAULT_COUNT,
            ..Default::default()
        },
        kept: Vec::new(),
    };
    let pairs = url::form_urlencoded::parse(raw.unwrap_or("").as_bytes());
    for (key, value) in pairs {
        let (key, value) = (key.into_owned(), value.into_owned());
        let q = &mut s.query;
        match key.as_str() {
            "patient" if allow_patient => {
                let id = value.strip_prefix("Patient/").unwrap_or(&value);
                q.patient = Some(
                    PatientId::new(id).map_err(|e| format!("patient: not a patient id ({e})"))?,
                );
            }
            "agent" => {
                let id = value.rsplit('/').next().unwrap_or(&value);
                if id.is_empty() {
                    return Err("agent: empty".into());
                }
                q.agent = Some(id.to_owned());
            }
            "action" | "subtype" => {
                let code = value
                    .strip_prefix(vigil_fhir::SYSTEM_AUDIT_ACTION)
                    .and_then(|c| c.strip_prefix('|'))
                    .unwrap_or(&value);
                q.action = Some(AuditAction::from_code(code).ok_or_else(|| {
                    let known: Vec<&str> = AuditAction::ALL.iter().map(|a| a.code()).collect();
                    format!("{key}: {code:?} is not one of {}", known.join(", "))
                })?);
            }
            "date" => {
                let (prefix, rest) = match value.get(..2) {
                    Some(p @ ("ge" | "gt" | "le" | "lt" | "eq")) => (p, &value[2..]),
                    _ => ("eq", value.as_str()),
                };
                let bad = || format!("date: {value:?} is not [ge|gt|le|lt]<RFC 3339 time or day>");
                match prefix {
                    "ge" => q.from = Some(parse_time(rest, false).ok_or_else(bad)?),
                    "gt" => q.from = Some(parse_time(rest, true).ok_or_else(bad)?),
                    "le" => q.to = Some(parse_time(rest, true).ok_or_else(bad)?),
                    "lt" => q.to = Some(parse_time(rest, false).ok_or_else(bad)?),
                    _ => {
                        q.from = Some(parse_time(rest, false).ok_or_else(bad)?);
                        q.to = Some(parse_time(rest, true).ok_or_else(bad)?);
                    }
                }
            }
            "_count" => {
                let n: usize = value
                    .parse()
                    .map_err(|_| format!("_count: {value:?} is not a number"))?;
                if n == 0 {
                    return Err("_count: 0 is not supported; ask for at least 1".into());
                }
                q.limit = n.min(MAX_COUNT);
            }
            "_cursor" => {
                q.before_seq = Some(
                    value
                        .parse()
                        .map_err(|_| format!("_cursor: {value:?} is not a cursor"))?,
                );
                continue;
            }
            other => return Err(format!("{other}: not a supported parameter")),
        }
        s.kept.push((key, value));
    }
    Ok(s)
}

fn next_link(base: &str, search: &Search, page: &[AuditRecord]) -> Option<String> {
    if page.len() < search.query.limit || search.query.limit == 0 {
        return None;
    }
    let last = page.last()?.seq;
    let mut url = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in &search.kept {
        url.append_pair(k, v);
    }
    url.append_pair("_cursor", &last.to_string());
    Some(format!("{base}?{}", url.finish()))
}

async fn run_search(state: &Arc<AppState>, query: AuditQuery) -> Result<Vec<AuditRecord>, ()> {
    let log = state.audit.log().clone();
    match tokio::task::spawn_blocking(move || log.search(&query)).await {
        Ok(Ok(records)) => Ok(records),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "the audit log could not be searched");
            Err(())
        }
        Err(_) => Err(()),
    }
}

/// `GET /fhir/AuditEvent?patient=&agent=&action=&date=&_count=&_cursor=`: administrators only.
pub async fn search_audit_events(
    State(state): State<Arc<AppState>>,
    caller: Result<Caller, Unauthenticated>,
    origin: Origin,
    RawQuery(raw): RawQuery,
) -> Response {
    let caller = match caller {
        Ok(c) => c,
        Err(u) => return u.into_response(),
    };
    let what = AuditEntity::search("AuditEvent", raw.clone().unwrap_or_default());
    let record = |action, outcome, patient: Option<PatientId>| {
        entry(&caller, origin, action, what.clone())
            .patients(patient)
            .outcome(outcome)
    };
    if !caller.is_admin() {
        let denied = record(
            AuditAction::PermissionDenied,
            AuditOutcome::MinorFailure,
            None,
        );
        state.audit.record_done(denied).await;
        return outcome(
            StatusCode::FORBIDDEN,
            IssueType::Forbidden,
            "only administrators search the audit trail",
        );
    }
    let search = match parse_search(raw.as_deref(), true) {
        Ok(s) => s,
        Err(why) => return outcome(StatusCode::BAD_REQUEST, IssueType::Invalid, &why),
    };
    let patient = search.query.patient.clone();
    let Ok(page) = run_search(&state, search.query.clone()).await else {
        let failed = record(
            AuditAction::Search,
            AuditOutcome::SeriousFailure,
            patient.clone(),
        );
        state.audit.record_done(failed).await;
        return outcome(
            StatusCode::SERVICE_UNAVAILABLE,
            IssueType::Transient,
            "the audit trail cannot be read now; retry later",
        );
    };
    let done = record(AuditAction::Search, AuditOutcome::Success, patient);
    if let Err(e) = state.audit.record(done).await {
        return audit_unavailable(&e);
    }
    let base = format!("{}/AuditEvent", state.fhir_base);
    let self_link = match &raw {
        Some(q) if !q.is_empty() => format!("{base}?{q}"),
        _ => base.clone(),
    };
    let next = next_link(&base, &search, &page);
    let entries = page
        .iter()
        .map(|r| {
            (
                format!("{base}/{}", r.seq),
                vigil_fhir::audit_event_to_fhir(r.seq, &r.entry, OBSERVER),
            )
        })
        .collect();
    fhir(
        StatusCode::OK,
        &vigil_fhir::searchset_bundle(&self_link, next.as_deref(), entries),
    )
}

/// `GET /fhir/AuditEvent/{seq}`: one entry, administrators only.
pub async fn read_audit_event(
    State(state): State<Arc<AppState>>,
    caller: Result<Caller, Unauthenticated>,
    origin: Origin,
    Path(id): Path<String>,
) -> Response {
    let caller = match caller {
        Ok(c) => c,
        Err(u) => return u.into_response(),
    };
    let what = AuditEntity::resource("AuditEvent", id.clone());
    if !caller.is_admin() {
        let denied = entry(&caller, origin, AuditAction::PermissionDenied, what)
            .outcome(AuditOutcome::MinorFailure);
        state.audit.record_done(denied).await;
        return outcome(
            StatusCode::FORBIDDEN,
            IssueType::Forbidden,
            "only administrators read the audit trail",
        );
    }
    let not_found = || {
        outcome(
            StatusCode::NOT_FOUND,
            IssueType::NotFound,
            &format!("AuditEvent/{id} is not known"),
        )
    };
    let Some(seq) = id.parse::<u64>().ok().filter(|s| *s > 0) else {
        return not_found();
    };
    let query = AuditQuery {
        before_seq: seq.checked_add(1),
        limit: 1,
        ..Default::default()
    };
    let Ok(found) = run_search(&state, query).await else {
        return outcome(
            StatusCode::SERVICE_UNAVAILABLE,
            IssueType::Transient,
            "the audit trail cannot be read now; retry later",
        );
    };
    let record = found.into_iter().find(|r| r.seq == seq);
    let done = entry(&caller, origin, AuditAction::Read, what).outcome(if record.is_some() {
        AuditOutcome::Success
    } else {
        AuditOutcome::MinorFailure
    });
    if let Err(e) = state.audit.record(done).await {
        return audit_unavailable(&e);
    }
    match record {
        Some(r) => fhir(
            StatusCode::OK,
            &vigil_fhir::audit_event_to_fhir(r.seq, &r.entry, OBSERVER),
        ),
        None => not_found(),
    }
}

/// `GET /api/v1/patients/{id}/disclosures?agent=&action=&date=&_count=&_cursor=`: who accessed
/// this patient's record, newest first. For the patient themself and administrators.
pub async fn disclosures(
    State(state): State<Arc<AppState>>,
    caller: Result<Caller, Unauthenticated>,
    origin: Origin,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let caller = match caller {
        Ok(c) => c,
        Err(u) => return u.into_response(),
    };
    let Ok(patient) = PatientId::new(id) else {
        return Problem::new(StatusCode::NOT_FOUND, "not-found", "No such patient.")
            .into_response();
    };
    let what = AuditEntity::search(
        "AuditEvent",
        format!("patient={patient}&{}", raw.as_deref().unwrap_or("")),
    );
    let record = |action, outcome| {
        entry(&caller, origin, action, what.clone())
            .patient(patient.clone())
            .outcome(outcome)
    };
    // The accounting of disclosures is the patient's own (and the administrators'): the one
    // access decision says so (patients may read AuditEvents about themselves only), and records
    // a refusal itself.
    if caller
        .check(
            &state,
            "AuditEvent",
            vigil_access::Interaction::Read,
            Some(&patient),
        )
        .await
        .is_err()
    {
        return Problem::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Only the patient and administrators see who accessed a patient's record.",
        )
        .into_response();
    }
    let mut search = match parse_search(raw.as_deref(), false) {
        Ok(s) => s,
        Err(why) => {
            return Problem::new(StatusCode::BAD_REQUEST, "invalid-request", why).into_response();
        }
    };
    search.query.patient = Some(patient.clone());
    let Ok(page) = run_search(&state, search.query.clone()).await else {
        let failed = record(AuditAction::Read, AuditOutcome::SeriousFailure);
        state.audit.record_done(failed).await;
        return Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "The audit trail cannot be read now; retry later.",
        )
        .into_response();
    };
    if let Err(e) = state
        .audit
        .record(record(AuditAction::Read, AuditOutcome::Success))
        .await
    {
        return audit_unavailable(&e);
    }
    let base = format!(
        "{}/api/v1/patients/{patient}/disclosures",
        state.fhir_base.trim_end_matches("/fhir")
    );
    let next = next_link(&base, &search, &page);
    let list: Vec<Value> = page
        .iter()
        .map(|r| {
            let e = &r.entry;
            json!({
                "seq": r.seq,
                "when": e.recorded,
                "who": e.agent,
                "action": e.action,
                "what": e.entity,
                "from": e.source,
                "outcome": e.outcome,
                "detail": e.detail,
            })
        })
        .collect();
    let mut body = json!({ "patient": patient, "disclosures": list });
    if let Some(next) = next {
        body["next"] = json!(next);
    }
    Json(body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_parameters_are_parsed_and_kept_for_the_next_page() {
        let s = parse_search(
            Some("patient=Patient/p1&agent=Device/mon-1&action=alarm-acknowledge&date=ge2026-11-21&date=lt2026-11-22T10:00:00Z&_count=5&_cursor=99"),
            true,
        )
        .unwrap();
        let q = &s.query;
        assert_eq!(q.patient.as_ref().unwrap().as_str(), "p1");
        assert_eq!(q.agent.as_deref(), Some("mon-1"));
        assert_eq!(q.action, Some(AuditAction::AlarmAcknowledge));
        assert_eq!(q.from.unwrap().to_rfc3339(), "2026-11-21T00:00:00+00:00");
        assert_eq!(q.to.unwrap().to_rfc3339(), "2026-11-22T10:00:00+00:00");
        assert_eq!((q.limit, q.before_seq), (5, Some(99)));
        assert!(s.kept.iter().all(|(k, _)| k != "_cursor"));
        let page: Vec<AuditRecord> = Vec::new();
        assert_eq!(next_link("b", &s, &page), None);
    }

    #[test]
    fn a_day_without_prefix_is_that_whole_day_and_le_includes_it() {
        let q = parse_search(Some("date=2026-11-21"), true).unwrap().query;
        assert_eq!(q.to.unwrap() - q.from.unwrap(), chrono::Duration::days(1));
        let q = parse_search(Some("date=le2026-11-21T10:00:00Z"), true)
            .unwrap()
            .query;
        assert_eq!(
            q.to.unwrap()
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            "2026-11-21T10:00:00.000001Z"
        );
    }

    #[test]
    fn bad_parameters_name_themselves() {
        for (raw, what) in [
            ("action=R", "action"),
            ("subtype=urn:vigil:audit-action|nope", "subtype"),
            ("date=ge21/11/2026", "date"),
            ("_count=x", "_count"),
            ("patient=a/b", "patient"),
            ("name=x", "name"),
        ] {
            let err = parse_search(Some(raw), true).unwrap_err();
            assert!(err.starts_with(what), "{raw}: {err}");
        }
        // The disclosures endpoint takes its patient from the path only.
        assert!(parse_search(Some("patient=p2"), false).is_err());
        assert_eq!(
            parse_search(Some("_count=100000"), true)
                .unwrap()
                .query
                .limit,
            MAX_COUNT
        );
    }
}
