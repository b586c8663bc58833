//! People signing in and who cares for whom: login and logout (browser sessions), the signed-in
//! account, care teams and patients' wards.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use vigil_access::Role;
use vigil_model::{CareTeam, CareTeamId, PatientId, UserId};
use vigil_store::{Store, StoreError, UserAccount};

use super::AppState;
use super::access::{Caller, Unauthenticated};
use super::audit::Origin;
use super::problem::Problem;
use super::surveillance::unauthenticated;
use crate::auth::{password, session};
use vigil_model::audit::{AuditAction, AuditEntity, AuditOutcome};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    username: String,
    password: String,
}

enum LoginOutcome {
    SignedIn {
        token: String,
        csrf: String,
        user: Box<UserAccount>,
    },
    /// Wrong name or password, disabled, or no local password: the caller is not told which.
    Refused,
    Locked(vigil_model::Instant),
}

fn unavailable() -> Response {
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "The store is unavailable; retry later.",
    )
    .into_response()
}

fn attempt_login(store: &dyn Store, req: &LoginRequest) -> Result<LoginOutcome, StoreError> {
    let now = chrono::Utc::now();
    let account = match UserId::new(req.username.clone()) {
        Ok(id) => store.user(&id)?,
        Err(_) => None,
    };
    let Some(user) = account.filter(|u| !u.disabled) else {
        password::verify_nothing(&req.password);
        return Ok(LoginOutcome::Refused);
    };
    if let Some(until) = user.locked_until.filter(|until| *until > now) {
        return Ok(LoginOutcome::Locked(until));
    }
    let Some(hash) = &user.password_hash else {
        password::verify_nothing(&req.password);
        return Ok(LoginOutcome::Refused);
    };
    if !password::verify(hash, &req.password) {
        let failed = user.failed_logins.saturating_add(1);
        store.set_login_state(&user.id, failed, password::locked_until(failed, now))?;
        return Ok(LoginOutcome::Refused);
    }
    if user.failed_logins > 0 || user.locked_until.is_some() {
        store.set_login_state(&user.id, 0, None)?;
    }
    let (token, record) = session::start(user.id.clone(), now);
    store.create_session(&record)?;
    Ok(LoginOutcome::SignedIn {
        token,
        csrf: record.csrf,
        user: Box::new(user),
    })
}

fn account_json(user: &UserAccount, csrf: &str) -> serde_json::Value {
    json!({
        "account": user.id,
        "display_name": user.display_name,
        "role": user.role,
        "patient": user.patient,
        "csrf_token": csrf,
    })
}

/// `POST /api/v1/login` with `{"username": …, "password": …}`: a session cookie and the anti-CSRF
/// token on success; 401 without saying whether the account exists; 429 with `Retry-After` while
/// the account is locked after repeated failures.
pub async fn login(
    State(state): State<Arc<AppState>>,
    origin: Origin,
    body: Result<Json<LoginRequest>, JsonRejection>,
) -> Response {
    let Json(req) = match body {
        Ok(b) => b,
        Err(e) => {
            return Problem::new(StatusCode::BAD_REQUEST, "invalid-login", e.body_text())
                .into_response();
        }
    };
    let store = state.store.clone();
    let account = req.username.clone();
    let outcome = tokio::task::spawn_blocking(move || attempt_login(store.as_ref(), &req)).await;
    // Every attempt is audited before it is answered; a sign-in that cannot be recorded fails.
    let (action, result, detail) = match &outcome {
        Ok(Ok(LoginOutcome::SignedIn { .. })) => {
            (AuditAction::Login, AuditOutcome::Success, "password")
        }
        Ok(Ok(LoginOutcome::Refused)) => (
            AuditAction::LoginFailed,
            AuditOutcome::MinorFailure,
            "wrong_account_or_password",
        ),
        Ok(Ok(LoginOutcome::Locked(_))) => (
            AuditAction::LoginFailed,
            AuditOutcome::MinorFailure,
            "locked",
        ),
        _ => (
            AuditAction::LoginFailed,
            AuditOutcome::SeriousFailure,
            "store_unavailable",
        ),
    };
    let entry = crate::audit::password_login(&account, origin.0, action, result, detail);
    if let Err(e) = state.audit.record(entry).await {
        return super::audit::audit_unavailable(&e);
    }
    match outcome {
        Ok(Ok(LoginOutcome::SignedIn { token, csrf, user })) => {
            metrics::counter!("vigil_logins_total", "outcome" => "success").increment(1);
            let mut response = Json(account_json(&user, &csrf)).into_response();
            if let Ok(cookie) =
                header::HeaderValue::from_str(&session::cookie(&token, state.secure_cookies))
            {
                response.headers_mut().insert(header::SET_COOKIE, cookie);
            }
            response
        }
        Ok(Ok(LoginOutcome::Refused)) => {
            metrics::counter!("vigil_logins_total", "outcome" => "refused").increment(1);
            Problem::new(
                StatusCode::UNAUTHORIZED,
                "login-refused",
                "Wrong account name or password.",
            )
            .into_response()
        }
        Ok(Ok(LoginOutcome::Locked(until))) => {
            metrics::counter!("vigil_logins_total", "outcome" => "locked").increment(1);
            let wait = (until - chrono::Utc::now()).num_seconds().max(1);
            let mut response = Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "account-locked",
                format!("Too many failed logins; try again in {wait} seconds."),
            )
            .into_response();
            if let Ok(v) = header::HeaderValue::from_str(&wait.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
            response
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "login could not be checked");
            unavailable()
        }
        Err(_) => unavailable(),
    }
}

/// `POST /api/v1/logout`: ends the session (its cookie and its stored record).
pub async fn logout(
    State(state): State<Arc<AppState>>,
    caller: Result<Caller, Unauthenticated>,
    headers: axum::http::HeaderMap,
) -> Response {
    let caller = match caller {
        Ok(c) => c,
        Err(u) => return unauthenticated(u),
    };
    state
        .audit
        .record_done(caller.audit(AuditAction::Logout, AuditEntity::kind("Session")))
        .await;
    let token = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(session::from_cookie_header)
        .map(session::hash_token);
    if let Some(hash) = token {
        let store = state.store.clone();
        if !matches!(
            tokio::task::spawn_blocking(move || store.end_session(&hash)).await,
            Ok(Ok(()))
        ) {
            return unavailable();
        }
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    if let Ok(cookie) =
        header::HeaderValue::from_str(&session::clearing_cookie(state.secure_cookies))
    {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

/// `GET /api/v1/session`: who is signed in, with what role and scopes.
pub async fn whoami(caller: Result<Caller, Unauthenticated>) -> Response {
    match caller {
        Ok(Caller(p, _)) => Json(json!({
            "subject": p.subject,
            "role": p.role.as_str(),
            "scopes": p.scopes.to_string(),
            "patient": p.patient,
        }))
        .into_response(),
        Err(u) => unauthenticated(u),
    }
}

fn admin_only(caller: Result<Caller, Unauthenticated>) -> Result<Caller, Box<Response>> {
    let caller = caller.map_err(|u| Box::new(unauthenticated(u)))?;
    if !caller.is_admin() {
        return Err(Box::new(
            Problem::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "Only administrators may do this.",
            )
            .into_response(),
        ));
    }
    Ok(caller)
}

/// `GET /api/v1/care-teams` (administrators).
pub async fn list_care_teams(
    State(state): State<Arc<AppState>>,
    caller: Result<Caller, Unauthenticated>,
) -> Response {
    if let Err(r) = admin_only(caller) {
        return *r;
    }
    let store = state.store.clone();
    match tokio::task::spawn_blocking(move || store.care_teams()).await {
        Ok(Ok(teams)) => Json(json!({ "care_teams": teams })).into_response(),
        _ => unavailable(),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CareTeamBody {
    name: String,
    #[serde(default)]
    members: Vec<UserId>,
    #[serde(default)]
    patients: Vec<PatientId>,
    #[serde(default)]
    wards: Vec<String>,
    #[serde(default)]
    every_patient: bool,
}

/// `PUT /api/v1/care-teams/{id}` (administrators): creates or replaces a care team; open live
/// streams see the change at once.
pub async fn put_care_team(
    State(state): State<Arc<AppState>>,
    caller: Result<Caller, Unauthenticated>,
    Path(id): Path<String>,
    body: Result<Json<CareTeamBody>, JsonRejection>,
) -> Response {
    let caller = match admin_only(caller) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let Ok(id) = CareTeamId::new(id) else {
        return Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid-care-team",
            "A care team id has 1-64 letters, digits, '-' or '.'.",
        )
        .into_response();
    };
    let Json(body) = match body {
        Ok(b) => b,
        Err(e) => {
            return Problem::new(StatusCode::BAD_REQUEST, "invalid-care-team", e.body_text())
                .into_response();
        }
    };
    if body
        .wards
        .iter()
        .any(|w| w.trim().is_empty() || w.len() > 64)
    {
        return Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid-care-team",
            "A ward name is 1-64 characters.",
        )
        .into_response();
    }
    let team = CareTeam {
        id,
        name: body.name,
        members: body.members,
        patients: body.patients,
        wards: body.wards,
        every_patient: body.every_patient,
    };
    let store = state.store.clone();
    let saved = team.clone();
    match tokio::task::spawn_blocking(move || store.put_care_team(&saved)).await {
        Ok(Ok(())) => {
            state.access_changed();
            let entry = caller
                .audit(
                    AuditAction::Update,
                    AuditEntity::resource("CareTeam", team.id.as_str()),
                )
                .patients(team.patients.clone());
            if let Err(e) = state.audit.record(entry).await {
                return super::audit::audit_unavailable(&e);
            }
            Json(team).into_response()
        }
        Ok(Err(StoreError::NotFound { what, id })) => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-care-team",
            format!("No {what} {id}."),
        )
        .into_response(),
        _ => unavailable(),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WardBody {
    /// The ward, or `null` to take the patient off every ward (discharge).
    ward: Option<String>,
}

/// `PUT /api/v1/patients/{id}/ward` with `{"ward": "4B"}`: admission and transfer (an
/// administrator, or an integration system feeding ADT events).
pub async fn put_ward(
    State(state): State<Arc<AppState>>,
    caller: Result<Caller, Unauthenticated>,
    Path(id): Path<String>,
    body: Result<Json<WardBody>, JsonRejection>,
) -> Response {
    let caller = match caller {
        Ok(c) => c,
        Err(u) => return unauthenticated(u),
    };
    if !matches!(caller.0.role, Role::Admin | Role::Integration) {
        return Problem::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Only administrators and integration systems place patients on wards.",
        )
        .into_response();
    }
    let Json(body) = match body {
        Ok(b) => b,
        Err(e) => {
            return Problem::new(StatusCode::BAD_REQUEST, "invalid-ward", e.body_text())
                .into_response();
        }
    };
    let Ok(patient) = PatientId::new(id) else {
        return Problem::new(StatusCode::NOT_FOUND, "not-found", "No such patient.")
            .into_response();
    };
    let store = state.store.clone();
    let ward = body.ward.clone();
    let moved = patient.clone();
    match tokio::task::spawn_blocking(move || store.set_patient_ward(&patient, ward.as_deref()))
        .await
    {
        Ok(Ok(())) => {
            state.access_changed();
            let entry = caller
                .audit(
                    AuditAction::Update,
                    AuditEntity::resource("PatientWard", moved.as_str()),
                )
                .patient(moved);
            if let Err(e) = state.audit.record(entry).await {
                return super::audit::audit_unavailable(&e);
            }
            Json(json!({ "ward": body.ward })).into_response()
        }
        Ok(Err(StoreError::NotFound { .. })) => {
            Problem::new(StatusCode::NOT_FOUND, "not-found", "No such patient.").into_response()
        }
        _ => unavailable(),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmergencyRequest {
    /// Why the clinician needs this record now (10–500 characters).
    reason: String,
}

/// `POST /api/v1/patients/{id}/emergency-access` with `{"reason": …}`: a clinician outside the
/// patient's care teams opens the record at once for four hours ("break the glass"). The grant
/// and its reason are audited and listed for review; nothing waits for an approval, because an
/// emergency cannot.
pub async fn emergency_access(
    State(state): State<Arc<AppState>>,
    caller: Result<Caller, Unauthenticated>,
    Path(id): Path<String>,
    body: Result<Json<EmergencyRequest>, JsonRejection>,
) -> Response {
    let caller = match caller {
        Ok(c) => c,
        Err(u) => return unauthenticated(u),
    };
    if caller.0.role != Role::Clinician {
        return Problem::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Only clinicians use emergency access.",
        )
        .into_response();
    }
    let Ok(clinician) = UserId::new(caller.0.subject.clone()) else {
        return Problem::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Emergency access needs a Vigil account.",
        )
        .into_response();
    };
    let Json(body) = match body {
        Ok(b) => b,
        Err(e) => {
            return Problem::new(StatusCode::BAD_REQUEST, "invalid-request", e.body_text())
                .into_response();
        }
    };
    let reason = body.reason.trim().to_owned();
    if !(10..=500).contains(&reason.chars().count()) {
        return Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "reason-required",
            "Say why, in 10 to 500 characters: the reason is reviewed.",
        )
        .into_response();
    }
    let Ok(patient) = PatientId::new(id) else {
        return Problem::new(StatusCode::NOT_FOUND, "not-found", "No such patient.")
            .into_response();
    };
    let now = chrono::Utc::now();
    let access = vigil_model::EmergencyAccess {
        patient: patient.clone(),
        clinician,
        reason: reason.clone(),
        start: now,
        end: now + vigil_model::EmergencyAccess::DURATION,
    };
    let store = state.store.clone();
    let granted = access.clone();
    match tokio::task::spawn_blocking(move || store.grant_emergency_access(&granted)).await {
        Ok(Ok(())) => {}
        Ok(Err(StoreError::NotFound { .. })) => {
            return Problem::new(StatusCode::NOT_FOUND, "not-found", "No such patient.")
                .into_response();
        }
        _ => return unavailable(),
    }
    state.access_changed();
    let entry = caller
        .audit(
            AuditAction::Execute,
            AuditEntity::resource("EmergencyAccess", patient.as_str()),
        )
        .patient(patient)
        .detail(format!("emergency access: {reason}"));
    if let Err(e) = state.audit.record(entry).await {
        return super::audit::audit_unavailable(&e);
    }
    (StatusCode::CREATED, Json(access)).into_response()
}

#[derive(Debug, Deserialize)]
pub struct ReviewQuery {
    /// Start of the review period (RFC 3339); default 30 days ago.
    since: Option<chrono::DateTime<chrono::FixedOffset>>,
}

/// `GET /api/v1/emergency-access?since=…` (administrators): every emergency access in the
/// period, newest first, with its reason, for review.
pub async fn review_emergency_access(
    State(state): State<Arc<AppState>>,
    caller: Result<Caller, Unauthenticated>,
    query: Result<axum::extract::Query<ReviewQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let caller = match admin_only(caller) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let since = match query {
        Ok(q) => q
            .since
            .map(|t| t.to_utc())
            .unwrap_or_else(|| chrono::Utc::now() - chrono::Duration::days(30)),
        Err(e) => {
            return Problem::new(StatusCode::BAD_REQUEST, "invalid-parameter", e.body_text())
                .into_response();
        }
    };
    let store = state.store.clone();
    let Ok(Ok(found)) =
        tokio::task::spawn_blocking(move || store.emergency_accesses_since(since)).await
    else {
        return unavailable();
    };
    let patients = super::access::distinct_patients(found.iter().map(|e| &e.patient));
    let entry = caller
        .audit(
            AuditAction::Search,
            AuditEntity::search("EmergencyAccess", format!("since={}", since.to_rfc3339())),
        )
        .patients(patients);
    if let Err(e) = state.audit.record(entry).await {
        return super::audit::audit_unavailable(&e);
    }
    Json(json!({ "emergency_access": found })).into_response()
}
