//! Surveillance over HTTP: NEWS2 and settings per patient, the alarm list and operator actions,
//! and the live stream (server-sent events, resumable with `Last-Event-ID`).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;
use vigil_model::audit::AuditAction;
use vigil_model::{ObservationId, PatientId};
use vigil_rules::cohort::{LimitChange, apply_limit_changes};
use vigil_rules::news2::Spo2Scale;
use vigil_rules::surveillance::PatientSettings;
use vigil_store::{AlarmQuery, Store};

use super::AppState;
use super::access::{Caller, Refused, Unauthenticated, distinct_patients, within};
use super::audit;
use super::problem::Problem;
use crate::surveillance::{CommandError, LiveEvent, news2_json, observation_event};
use vigil_access::{Interaction, Reach, View};
use vigil_model::audit::AuditEntity;

pub(super) fn unauthenticated(u: Unauthenticated) -> Response {
    let detail = match u {
        Unauthenticated::Missing => "A bearer token or a session is required.",
        Unauthenticated::Invalid => "The bearer token or session is not valid.",
        Unauthenticated::Csrf => {
            "A change made with a session needs the session's X-CSRF-Token header."
        }
        Unauthenticated::Unavailable => {
            return Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "The store is unavailable; retry later.",
            )
            .into_response();
        }
    };
    let mut p = Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", detail);
    p.www_authenticate = Some("Bearer realm=\"vigil\"");
    p.into_response()
}

/// Records an access before its answer goes out; `Err` is the answer when the audit trail
/// cannot be written (nothing is disclosed unrecorded).
async fn audited(
    state: &Arc<AppState>,
    caller: &Caller,
    action: AuditAction,
    entity: AuditEntity,
    patients: impl IntoIterator<Item = PatientId>,
) -> Result<(), Response> {
    let entry = caller.audit(action, entity).patients(patients);
    state
        .audit
        .record(entry)
        .await
        .map_err(|e| audit::audit_unavailable(&e))
}

fn forbidden(detail: &str) -> Response {
    Problem::new(StatusCode::FORBIDDEN, "forbidden", detail).into_response()
}

/// An access decision that went against the caller, as a problem+json response.
pub(super) fn refused(r: Refused) -> Response {
    match r {
        Refused::Denied(denial) => forbidden(&format!("{}.", capitalised(&denial.to_string()))),
        Refused::Store(_) => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "The store is unavailable; retry later.",
        )
        .into_response(),
        Refused::Internal => Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error.",
        )
        .into_response(),
    }
}

fn capitalised(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn command_error(e: CommandError) -> Response {
    match e {
        CommandError::NoSuchAlarm(id) => Problem::new(
            StatusCode::NOT_FOUND,
            "not-found",
            format!("No open alarm {id}."),
        )
        .into_response(),
        CommandError::Refused(why) => {
            Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "refused", why).into_response()
        }
        CommandError::Store(_) => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "The store is unavailable; retry later.",
        )
        .into_response(),
        CommandError::Stopped => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Surveillance is not running.",
        )
        .into_response(),
    }
}

fn no_such_patient() -> Response {
    Problem::new(StatusCode::NOT_FOUND, "not-found", "No such patient.").into_response()
}

/// `None` when the patient exists; otherwise the response to give.
async fn unknown_patient(state: &Arc<AppState>, id: &PatientId) -> Option<Response> {
    let store = state.store.clone();
    let lookup = id.clone();
    match tokio::task::spawn_blocking(move || store.patient(&lookup)).await {
        Ok(Ok(Some(_))) => None,
        Ok(Ok(None)) => Some(no_such_patient()),
        _ => Some(
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "The store is unavailable.",
            )
            .into_response(),
        ),
    }
}

/// Why a request about one patient is refused, before any work is done.
enum Refusal {
    Unauthenticated(Unauthenticated),
    NoSuchPatient,
    Refused(Refused),
    Response(Response),
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::Unauthenticated(u) => unauthenticated(u),
            Refusal::NoSuchPatient => no_such_patient(),
            Refusal::Refused(r) => refused(r),
            Refusal::Response(r) => r,
        }
    }
}

/// The one access check of the per-patient endpoints: authenticated, allowed to do
/// `interaction` on this patient's `resource_type` data, and the patient exists.
async fn patient_for(
    state: &Arc<AppState>,
    caller: Result<Caller, Unauthenticated>,
    raw_id: String,
    resource_type: &'static str,
    interaction: Interaction,
) -> Result<(Caller, PatientId), Box<Refusal>> {
    let caller = caller.map_err(|u| Box::new(Refusal::Unauthenticated(u)))?;
    let id = PatientId::new(raw_id).map_err(|_| Box::new(Refusal::NoSuchPatient))?;
    let view = caller
        .check(state, resource_type, interaction, Some(&id))
        .await
        .map_err(|r| Box::new(Refusal::Refused(r)))?;
    // These endpoints name the patient by their real id: not for the de-identified view.
    if view == View::Deidentified {
        return Err(Box::new(Refusal::Response(forbidden(
            "The de-identified research view has no per-patient endpoints; use the FHIR search.",
        ))));
    }
    if let Some(r) = unknown_patient(state, &id).await {
        return Err(Box::new(Refusal::Response(r)));
    }
    Ok((caller, id))
}

/// `GET /api/v1/patients/{id}/news2`
pub async fn news2(
    State(state): State<Arc<AppState>>,
    caller: Result<Caller, Unauthenticated>,
    Path(id): Path<String>,
) -> Response {
    let (caller, id) = match patient_for(&state, caller, id, "Observation", Interaction::Read).await
    {
        Ok(ok) => ok,
        Err(refusal) => return refusal.into_response(),
    };
    match state.surveillance.news2(id.clone()).await {
        Ok(assessment) => {
            let entity = AuditEntity::resource("NEWS2", id.as_str());
            if let Err(r) = audited(&state, &caller, AuditAction::Read, entity, [id.clone()]).await
            {
                return r;
            }
            Json(news2_json(&id, &assessment)).into_response()
        }
        Err(e) => command_error(e),
    }
}

#[derive(Debug, Deserialize)]
pub struct SeriesParams {
    /// A measurand: short name (`heart_rate`), LOINC or MDC code.
    code: String,
    /// Start (RFC 3339, inclusive); default 24 h before `to`.
    from: Option<chrono::DateTime<chrono::FixedOffset>>,
    /// End (RFC 3339, exclusive); default now.
    to: Option<chrono::DateTime<chrono::FixedOffset>>,
    /// How many buckets at most (the chart's width in points): 1–5000, default 800.
    points: Option<usize>,
}

/// `GET /api/v1/patients/{id}/series?code=heart_rate&from=…&to=…&points=800`: one vital sign
/// summarised server-side into equal time buckets (min, max, mean, count), so a chart of 30 days
/// of 1 Hz data loads as at most `points` buckets instead of millions of readings.
pub async fn series(
    State(state): State<Arc<AppState>>,
    caller: Result<Caller, Unauthenticated>,
    Path(id): Path<String>,
    params: Result<Query<SeriesParams>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let (caller, id) =
        match patient_for(&state, caller, id, "Observation", Interaction::Search).await {
            Ok(ok) => ok,
            Err(refusal) => return refusal.into_response(),
        };
    let invalid = |detail: String| {
        Problem::new(StatusCode::BAD_REQUEST, "invalid-parameter", detail).into_response()
    };
    let Query(params) = match params {
        Ok(p) => p,
        Err(e) => return invalid(e.body_text()),
    };
    let Some(measurand) = vigil_model::Measurand::from_code(&params.code) else {
        return invalid(format!(
            "code={:?} is not a vital sign Vigil knows.",
            params.code
        ));
    };
    let to = params.to.map_or_else(chrono::Utc::now, |t| t.to_utc());
    let from = params
        .from
        .map_or(to - chrono::Duration::hours(24), |t| t.to_utc());
    if from >= to {
        return invalid("from must be before to.".into());
    }
    let points = params.points.unwrap_or(800);
    if !(1..=5000).contains(&points) {
        return invalid("points must be between 1 and 5000.".into());
    }
    let query = vigil_store::SeriesQuery {
        patient: id.clone(),
        measurand,
        from,
        to,
        buckets: points,
    };
    let bucket_us = query.bucket_us();
    let store = state.store.clone();
    let Ok(Ok(buckets)) = tokio::task::spawn_blocking(move || store.series(&query)).await else {
        return Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "The store is unavailable.",
        )
        .into_response();
    };
    let entity = AuditEntity::search(
        "Series",
        format!(
            "code={}&from={}&to={}",
            measurand.short_name(),
            from.to_rfc3339(),
            to.to_rfc3339()
        ),
    );
    if let Err(r) = audited(&state, &caller, AuditAction::Search, entity, [id.clone()]).await {
        return r;
    }
    Json(json!({
        "patient": id,
        "code": measurand.short_name(),
        "unit": measurand.canonical_unit(),
        "from": from,
        "to": to,
        "bucket_seconds": bucket_us as f64 / 1e6,
        "buckets": buckets.iter().map(|b| json!({
            "start": b.start,
            "min": b.min,
            "max": b.max,
            "mean": b.mean,
            "count": b.count,
        })).collect::<Vec<_>>(),
    }))
    .into_response()
}

/// The settings a clinician may change through the API.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsChange {
    /// A cohort rule set (`GET /api/v1/cohorts`): the settings start again from the adult
    /// defaults with the cohort's changes; the other fields of the request apply on top.
    cohort: Option<String>,
    /// 1 or 2 (scale 2 only for confirmed hypercapnic respiratory failure).
    spo2_scale: Option<u8>,
    /// Per measurand (short name or LOINC), a new low and/or high alarm limit in the canonical
    /// unit, e.g. `{"spo2": {"low": 88}}`. Delay, hysteresis and priority stay as they are.
    limits: Option<std::collections::BTreeMap<String, LimitChange>>,
}

/// A patient's settings as the API shows them.
fn settings_json(settings: &PatientSettings) -> Value {
    json!({
        "cohort": settings.cohort,
        "spo2_scale": settings.spo2_scale.number(),
        "limits": settings.limits,
        "trends": settings.trends,
    })
}

/// `GET /api/v1/cohorts`: the cohort rule sets a patient can be assigned to.
pub async fn list_cohorts(
    State(state): State<Arc<AppState>>,
    caller: Result<Caller, Unauthenticated>,
) -> Response {
    if let Err(refusal) = caller {
        return refusal.into_response();
    }
    let cohorts: Vec<Value> = state
        .cohorts
        .iter()
        .filter_map(|(name, cohort)| {
            let settings = cohort.settings(name).ok()?;
            Some(json!({
                "name": name,
                "description": cohort.description,
                "changes": cohort,
                "settings": settings_json(&settings),
            }))
        })
        .collect();
    Json(json!({ "cohorts": cohorts })).into_response()
}

/// `GET /api/v1/patients/{id}/settings`
pub async fn get_settings(
    State(state): State<Arc<AppState>>,
    caller: Result<Caller, Unauthenticated>,
    Path(id): Path<String>,
) -> Response {
    let (caller, id) = match patient_for(&state, caller, id, "Patient", Interaction::Read).await {
        Ok(ok) => ok,
        Err(refusal) => return refusal.into_response(),
    };
    match state.surveillance.settings(id.clone()).await {
        Ok(settings) => {
            let entity = AuditEntity::resource("MonitoringSettings", id.as_str());
            if let Err(r) = audited(&state, &caller, AuditAction::Read, entity, [id]).await {
                return r;
            }
            Json(settings_json(&settings)).into_response()
        }
        Err(e) => command_error(e),
    }
}

/// `PUT /api/v1/patients/{id}/settings` with `{"spo2_scale": 2}`
pub async fn put_settings(
    State(state): State<Arc<AppState>>,
    caller: Result<Caller, Unauthenticated>,
    Path(id): Path<String>,
    body: Result<Json<SettingsChange>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let (caller, id) = match patient_for(&state, caller, id, "Patient", Interaction::Update).await {
        Ok(ok) => ok,
        Err(refusal) => return refusal.into_response(),
    };
    let Json(change) = match body {
        Ok(b) => b,
        Err(e) => {
            return Problem::new(StatusCode::BAD_REQUEST, "invalid-settings", e.body_text())
                .into_response();
        }
    };
    let mut settings = match &change.cohort {
        Some(name) => match state.cohorts.get(name).map(|c| c.settings(name)) {
            Some(Ok(settings)) => settings,
            Some(Err(why)) => {
                return Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-settings", why)
                    .into_response();
            }
            None => {
                return Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid-settings",
                    format!(
                        "cohort {name:?} is not defined; the cohorts are: {}",
                        state.cohorts.names().join(", ")
                    ),
                )
                .into_response();
            }
        },
        None => match state.surveillance.settings(id.clone()).await {
            Ok(s) => s,
            Err(e) => return command_error(e),
        },
    };
    if let Some(scale) = change.spo2_scale {
        match Spo2Scale::from_number(scale) {
            Some(s) => settings.spo2_scale = s,
            None => {
                return Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid-settings",
                    "spo2_scale must be 1 or 2.",
                )
                .into_response();
            }
        }
    }
    if let Some(changes) = change.limits
        && let Err(why) = apply_limit_changes(&mut settings.limits, &changes)
    {
        return Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-settings", why)
            .into_response();
    }
    let shown = settings_json(&settings);
    tracing::info!(
        by_role = caller.0.role.as_str(),
        "patient monitoring settings changed"
    );
    match state.surveillance.set_settings(id.clone(), settings).await {
        Ok(()) => {
            let entity = AuditEntity::resource("MonitoringSettings", id.as_str());
            if let Err(r) = audited(&state, &caller, AuditAction::Update, entity, [id]).await {
                return r;
            }
            Json(shown).into_response()
        }
        Err(e) => command_error(e),
    }
}

#[derive(Debug, Deserialize)]
pub struct AlertsQuery {
    /// `active` (not resolved; the default), or `all`.
    status: Option<String>,
    patient: Option<String>,
    limit: Option<usize>,
    before: Option<u64>,
}

/// `GET /api/v1/alerts?status=active&patient=…`
pub async fn list_alerts(
    State(state): State<Arc<AppState>>,
    caller: Result<Caller, Unauthenticated>,
    Query(q): Query<AlertsQuery>,
) -> Response {
    let caller = match caller {
        Ok(c) => c,
        Err(u) => return unauthenticated(u),
    };
    let open_only = match q.status.as_deref() {
        None | Some("active") | Some("open") => true,
        Some("all") => false,
        Some(other) => {
            return Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid-parameter",
                format!("status={other:?}: use active or all."),
            )
            .into_response();
        }
    };
    let patient = match q.patient.map(PatientId::new) {
        None => None,
        Some(Ok(p)) => Some(p),
        Some(Err(_)) => return Json(json!({ "alerts": [] })).into_response(),
    };
    let scoped = match caller.reach(&state, "Flag", Interaction::Search).await {
        Ok(s) => s,
        Err(r) => return refused(r),
    };
    if patient.as_ref().is_some_and(|p| !scoped.reach.includes(p)) {
        return refused(Refused::Denied(vigil_access::Denial::NotYourPatient));
    }
    let query_text = format!(
        "status={}{}",
        if open_only { "active" } else { "all" },
        patient
            .as_ref()
            .map(|p| format!("&patient={p}"))
            .unwrap_or_default()
    );
    let query = AlarmQuery {
        patient,
        open_only,
        before: q.before,
        limit: q.limit.unwrap_or(100).clamp(1, 1000),
        within: within(&scoped),
    };
    let store = state.store.clone();
    match tokio::task::spawn_blocking(move || store.alarms(&query)).await {
        Ok(Ok(records)) => {
            let alerts: Vec<Value> = records
                .iter()
                .map(|r| {
                    let mut v: Value = serde_json::from_str(&r.snapshot).unwrap_or(Value::Null);
                    match serde_json::from_value::<vigil_rules::alarm::Alarm>(v.clone()) {
                        Ok(alarm) => v = crate::surveillance::alarm_json(&alarm, r.patient.as_ref()),
                        Err(_) => v = json!({"id": r.id, "state": r.state, "priority": r.priority, "condition": r.condition}),
                    }
                    v
                })
                .collect();
            let patients = distinct_patients(records.iter().filter_map(|r| r.patient.as_ref()));
            let entity = AuditEntity::search("Alarm", query_text);
            if let Err(r) = audited(&state, &caller, AuditAction::Search, entity, patients).await {
                return r;
            }
            Json(json!({ "alerts": alerts })).into_response()
        }
        _ => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "The store is unavailable.",
        )
        .into_response(),
    }
}

/// `GET /api/v1/alerts/{id}`: the alarm with its history.
pub async fn get_alert(
    State(state): State<Arc<AppState>>,
    caller: Result<Caller, Unauthenticated>,
    Path(id): Path<u64>,
) -> Response {
    let caller = match caller {
        Ok(c) => c,
        Err(u) => return unauthenticated(u),
    };
    let store = state.store.clone();
    let found = tokio::task::spawn_blocking(move || -> Result<_, vigil_store::StoreError> {
        let Some(record) = store.alarm(id)? else {
            return Ok(None);
        };
        Ok(Some((record, store.alarm_events(id)?)))
    })
    .await;
    let Ok(Ok(found)) = found else {
        return Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "The store is unavailable.",
        )
        .into_response();
    };
    let Some((record, events)) = found else {
        return Problem::new(
            StatusCode::NOT_FOUND,
            "not-found",
            format!("No alarm {id}."),
        )
        .into_response();
    };
    if let Err(r) = caller
        .check(&state, "Flag", Interaction::Read, record.patient.as_ref())
        .await
    {
        return refused(r);
    }
    let mut body = match serde_json::from_str::<vigil_rules::alarm::Alarm>(&record.snapshot) {
        Ok(alarm) => crate::surveillance::alarm_json(&alarm, record.patient.as_ref()),
        Err(_) => json!({"id": record.id}),
    };
    body["history"] = events
        .iter()
        .map(|e| json!({"at": e.at, "kind": e.kind, "by": e.by, "detail": e.detail}))
        .collect();
    let entity = AuditEntity::resource("Alarm", id.to_string());
    if let Err(r) = audited(&state, &caller, AuditAction::Read, entity, record.patient).await {
        return r;
    }
    Json(body).into_response()
}

/// `POST /api/v1/alerts/{id}/ack`
pub async fn acknowledge(
    State(state): State<Arc<AppState>>,
    caller: Result<Caller, Unauthenticated>,
    origin: audit::Origin,
    Path(id): Path<u64>,
) -> Response {
    let caller = match caller {
        Ok(c) => c,
        Err(u) => return unauthenticated(u),
    };
    if let Err(r) = may_act_on_alarm(&state, &caller, id).await {
        return r;
    }
    let done = state
        .surveillance
        .acknowledge(id, caller.0.subject.clone())
        .await;
    let entry = audit::alarm_action(&caller, origin, AuditAction::AlarmAcknowledge, id, &done);
    state.audit.record_done(entry).await;
    match done {
        Ok(alarm) => Json(alarm).into_response(),
        Err(e) => command_error(e),
    }
}

/// Acknowledging or silencing changes the alarm (a FHIR Flag update) of its patient. An alarm
/// that does not exist is left for the surveillance engine to refuse (and the audit to record).
async fn may_act_on_alarm(state: &Arc<AppState>, caller: &Caller, id: u64) -> Result<(), Response> {
    let store = state.store.clone();
    let record = match tokio::task::spawn_blocking(move || store.alarm(id)).await {
        Ok(Ok(Some(record))) => record,
        Ok(Ok(None)) => return Ok(()),
        _ => {
            return Err(Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "The store is unavailable.",
            )
            .into_response());
        }
    };
    caller
        .check(state, "Flag", Interaction::Update, record.patient.as_ref())
        .await
        .map(|_| ())
        .map_err(refused)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SilenceRequest {
    /// How long to pause the audio, 1–15 minutes.
    minutes: u32,
}

/// `POST /api/v1/alerts/{id}/silence` with `{"minutes": 2}`
pub async fn silence(
    State(state): State<Arc<AppState>>,
    caller: Result<Caller, Unauthenticated>,
    origin: audit::Origin,
    Path(id): Path<u64>,
    body: Result<Json<SilenceRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let caller = match caller {
        Ok(c) => c,
        Err(u) => return unauthenticated(u),
    };
    if let Err(r) = may_act_on_alarm(&state, &caller, id).await {
        return r;
    }
    let Json(req) = match body {
        Ok(b) => b,
        Err(e) => {
            return Problem::new(StatusCode::BAD_REQUEST, "invalid-request", e.body_text())
                .into_response();
        }
    };
    let until = chrono::Utc::now() + chrono::Duration::minutes(i64::from(req.minutes));
    let done = state
        .surveillance
        .silence(id, caller.0.subject.clone(), until)
        .await;
    let entry = audit::alarm_action(&caller, origin, AuditAction::AlarmSilence, id, &done);
    state
        .audit
        .record_done(entry.detail(format!("minutes={}", req.minutes)))
        .await;
    match done {
        Ok(alarm) => Json(alarm).into_response(),
        Err(e) => command_error(e),
    }
}

#[derive(Debug, Deserialize)]
pub struct StreamQuery {
    patient: Option<String>,
    /// Alternative to the `Last-Event-ID` header, for clients that cannot set headers.
    last_event_id: Option<String>,
}

/// Where a client is in both logs: `"{observation id}.{stream seq}"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Position {
    observation: i64,
    seq: u64,
}

impl Position {
    fn parse(raw: &str) -> Option<Position> {
        let (o, s) = raw.trim().split_once('.')?;
        Some(Position {
            observation: o.parse().ok()?,
            seq: s.parse().ok()?,
        })
    }
    fn id(&self) -> String {
        format!("{}.{}", self.observation, self.seq)
    }
    /// Advances past `event`; false if the client already has it.
    fn advance(&mut self, event: &LiveEvent) -> bool {
        if event.observation > 0 {
            if event.observation <= self.observation {
                return false;
            }
            self.observation = event.observation;
        }
        if event.seq > 0 {
            if event.seq <= self.seq {
                return false;
            }
            self.seq = event.seq;
        }
        true
    }
}

/// Most stored events replayed to a reconnecting client before it is told to reload instead.
const REPLAY_LIMIT: usize = 10_000;

/// `GET /api/v1/stream?patient=…`: new observations (as FHIR), NEWS2 changes and alarm changes as
/// server-sent events. Each event id is the client's position; a client reconnecting with
/// `Last-Event-ID` first gets everything it missed from the stored logs, then live events.
pub async fn stream(
    State(state): State<Arc<AppState>>,
    caller: Result<Caller, Unauthenticated>,
    headers: HeaderMap,
    Query(q): Query<StreamQuery>,
) -> Response {
    let caller = match caller {
        Ok(c) => c,
        Err(u) => return unauthenticated(u),
    };
    let patient = match q.patient.map(PatientId::new) {
        None => None,
        Some(Ok(p)) => Some(p),
        Some(Err(_)) => {
            return Problem::new(StatusCode::NOT_FOUND, "not-found", "No such patient.")
                .into_response();
        }
    };
    let subscriber = caller.clone();
    let gate = match StreamGate::open(state.clone(), caller, patient.clone()).await {
        Ok(gate) => gate,
        Err(r) => return r,
    };
    // Following the live stream is recorded once, when it opens; what it may carry is then
    // limited by the same access decision, looked up again as consents and care teams change.
    let entity = AuditEntity::search(
        "Stream",
        patient
            .as_ref()
            .map(|p| format!("patient={p}"))
            .unwrap_or_default(),
    );
    if let Err(r) = audited(
        &state,
        &subscriber,
        AuditAction::Search,
        entity,
        patient.clone(),
    )
    .await
    {
        return r;
    }
    // Subscribe before reading the logs, so nothing falls between the replay and the live feed.
    let live = state.surveillance.subscribe();
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or(q.last_event_id)
        .and_then(|raw| Position::parse(&raw));
    let store = state.store.clone();
    let (start, replay) = match resume {
        Some(position) => {
            let filter = patient.clone();
            match tokio::task::spawn_blocking(move || {
                replay_from(store.as_ref(), position, filter.as_ref())
            })
            .await
            {
                Ok(Ok(r)) => r,
                _ => {
                    return Problem::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "unavailable",
                        "The store is unavailable.",
                    )
                    .into_response();
                }
            }
        }
        None => {
            let position = tokio::task::spawn_blocking(
                move || -> Result<Position, vigil_store::StoreError> {
                    Ok(Position {
                        observation: store.last_observation_id()?.0,
                        seq: store.last_stream_seq()?,
                    })
                },
            )
            .await;
            match position {
                Ok(Ok(p)) => (p, Vec::new()),
                _ => {
                    return Problem::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "unavailable",
                        "The store is unavailable.",
                    )
                    .into_response();
                }
            }
        }
    };
    let events =
        live_events(start, replay, live, gate).take_until(state.shutdown.clone().cancelled_owned());
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

fn replay_from(
    store: &dyn Store,
    from: Position,
    patient: Option<&PatientId>,
) -> Result<(Position, Vec<LiveEvent>), vigil_store::StoreError> {
    let mut out = Vec::new();
    let mut after = ObservationId(from.observation);
    let mut scanned = 0;
    // Bounded in what is sent and in what is read for it.
    while out.len() < REPLAY_LIMIT && scanned < 20 * REPLAY_LIMIT {
        let batch = store.observations_after(after, 1024)?;
        let Some(last) = batch.last() else { break };
        after = last.id;
        scanned += batch.len();
        out.extend(
            batch
                .iter()
                .filter(|o| patient.is_none_or(|p| &o.patient == p))
                .map(observation_event),
        );
    }
    for e in store.stream_events_after(from.seq, patient, REPLAY_LIMIT)? {
        let kind = match e.kind.as_str() {
            "news2" => "news2",
            "alarm" => "alarm",
            _ => "event",
        };
        out.push(LiveEvent {
            observation: 0,
            seq: e.seq,
            patient: e.patient,
            kind,
            data: Arc::new(serde_json::from_str(&e.data).unwrap_or(Value::Null)),
        });
    }
    Ok((from, out))
}

/// How often an open stream looks up what its subscriber may see even when no change was
/// announced (care teams and consents changed by the operator's CLI in another process).
const RECHECK: Duration = Duration::from_secs(5);

/// What one live-stream subscriber may see, kept current while the stream is open: a revoked
/// consent or a patient moved off a ward takes effect on the next event. The reach is looked up
/// again whenever an access change is announced (`AppState::access_changed`) and at least every
/// [`RECHECK`].
struct StreamGate {
    state: Arc<AppState>,
    caller: Caller,
    /// The one patient the subscriber asked to follow, if any.
    patient: Option<PatientId>,
    observations: Reach,
    alarms: Reach,
    generation: u64,
    checked: std::time::Instant,
}

enum Admit {
    Yes,
    No,
    /// The followed patient is no longer shared with the subscriber, or access could not be
    /// checked: the stream ends.
    End,
}

impl StreamGate {
    async fn open(
        state: Arc<AppState>,
        caller: Caller,
        patient: Option<PatientId>,
    ) -> Result<StreamGate, Response> {
        let view = caller
            .reach(&state, "Observation", Interaction::Search)
            .await
            .map(|s| s.view);
        if let Ok(View::Deidentified) = view {
            return Err(forbidden(
                "The live stream carries identified data; use the de-identified FHIR search.",
            ));
        }
        let mut gate = StreamGate {
            state,
            caller,
            patient,
            observations: Reach::Only(Default::default()),
            alarms: Reach::Only(Default::default()),
            generation: 0,
            checked: std::time::Instant::now(),
        };
        gate.refresh().await.map_err(refused)?;
        if let Some(p) = &gate.patient
            && !gate.observations.includes(p)
            && !gate.alarms.includes(p)
        {
            return Err(refused(Refused::Denied(
                vigil_access::Denial::NotYourPatient,
            )));
        }
        Ok(gate)
    }

    async fn refresh(&mut self) -> Result<(), Refused> {
        self.generation = self.state.access_generation();
        self.checked = std::time::Instant::now();
        let reach = |r: Result<vigil_access::Scoped, Refused>| match r {
            Ok(scoped) => Ok(scoped.reach),
            // Not allowed this kind of data at all: none of it is streamed.
            Err(Refused::Denied(_)) => Ok(Reach::Only(Default::default())),
            Err(e) => Err(e),
        };
        self.observations = reach(
            self.caller
                .reach(&self.state, "Observation", Interaction::Search)
                .await,
        )?;
        self.alarms = reach(
            self.caller
                .reach(&self.state, "Flag", Interaction::Search)
                .await,
        )?;
        Ok(())
    }

    /// With the reach as last looked up.
    fn admits_now(&self, event: &LiveEvent) -> bool {
        if self
            .patient
            .as_ref()
            .is_some_and(|p| event.patient.as_ref() != Some(p))
        {
            return false;
        }
        let reach = if event.kind == "alarm" {
            &self.alarms
        } else {
            &self.observations
        };
        match &event.patient {
            Some(p) => reach.includes(p),
            None => *reach == Reach::Everyone,
        }
    }

    async fn admits(&mut self, event: &LiveEvent) -> Admit {
        let stale =
            self.generation != self.state.access_generation() || self.checked.elapsed() >= RECHECK;
        if stale {
            if self.refresh().await.is_err() {
                return Admit::End;
            }
            if let Some(p) = &self.patient
                && !self.observations.includes(p)
                && !self.alarms.includes(p)
            {
                return Admit::End;
            }
        }
        if self.admits_now(event) {
            Admit::Yes
        } else {
            Admit::No
        }
    }
}

fn to_sse(position: &Position, event: &LiveEvent) -> Event {
    Event::default()
        .id(position.id())
        .event(event.kind)
        .data(event.data.to_string())
}

fn live_events(
    start: Position,
    replay: Vec<LiveEvent>,
    live: tokio::sync::broadcast::Receiver<LiveEvent>,
    gate: StreamGate,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let mut position = start;
    // The ready event carries the starting position: a client that drops before the replay ends
    // resumes from there and gets it all again.
    let ready = Event::default().id(start.id()).event("ready").data("{}");
    let mut replayed: Vec<Result<Event, Infallible>> = Vec::with_capacity(replay.len());
    for e in &replay {
        if gate.admits_now(e) && position.advance(e) {
            replayed.push(Ok(to_sse(&position, e)));
        }
    }
    let head = stream::iter(std::iter::once(Ok(ready)).chain(replayed));
    let tail = stream::unfold(
        (live, position, gate, false),
        |(mut live, mut position, mut gate, done)| async move {
            if done {
                return None;
            }
            loop {
                match live.recv().await {
                    Ok(event) => {
                        match gate.admits(&event).await {
                            Admit::Yes => {}
                            Admit::No => continue,
                            Admit::End => {
                                let bye = Event::default()
                                    .event("access-ended")
                                    .data("{\"reconnect\":false}");
                                return Some((Ok(bye), (live, position, gate, true)));
                            }
                        }
                        if !position.advance(&event) {
                            continue;
                        }
                        let sse = to_sse(&position, &event);
                        return Some((Ok(sse), (live, position, gate, false)));
                    }
                    // Too far behind: end the stream; the client reconnects with its Last-Event-ID
                    // and gets what it missed from the stored logs.
                    Err(RecvError::Lagged(_)) => {
                        let bye = Event::default()
                            .event("lagged")
                            .data("{\"reconnect\":true}");
                        return Some((Ok(bye), (live, position, gate, true)));
                    }
                    Err(RecvError::Closed) => return None,
                }
            }
        },
    );
    head.chain(tail).boxed()
}
