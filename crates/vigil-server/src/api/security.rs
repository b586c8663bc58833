//! Device intrusion detection for administrators: `GET /api/v1/security/alerts`,
//! `POST /api/v1/security/alerts/{id}/ack`, and `POST /api/v1/devices/{id}/release` (ends a
//! device's quarantine). Administrators only.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use vigil_model::DeviceId;
use vigil_store::{SecurityAlert, SecurityAlertQuery, StoreError};

use super::AppState;
use super::access::{Caller, Unauthenticated};
use super::problem::Problem;

/// The caller, if an administrator; otherwise the refusal to answer with (boxed: a response is
/// large and this is the cold path).
fn admin_only(caller: Result<Caller, Unauthenticated>) -> Result<Caller, Box<Response>> {
    let caller = caller.map_err(|u| Box::new(u.into_response()))?;
    if !caller.is_admin() {
        return Err(Box::new(
            Problem::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "Only administrators see and handle security alerts.",
            )
            .into_response(),
        ));
    }
    Ok(caller)
}

/// Store failures: the detail goes to the log, the caller gets a generic answer.
fn store_problem(e: StoreError) -> Response {
    match e {
        StoreError::NotFound { what, id } => Problem::new(
            StatusCode::NOT_FOUND,
            "not-found",
            format!("No {what} {id}."),
        )
        .into_response(),
        StoreError::AlreadyExists { .. } | StoreError::Conflict(_) => {
            tracing::error!(error = %e, "security store call refused unexpectedly");
            unavailable()
        }
        StoreError::Corrupt(_) | StoreError::Backend(_) => {
            tracing::warn!(error = %e, "security store call failed");
            unavailable()
        }
    }
}

fn unavailable() -> Response {
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "The store is unavailable; retry later.",
    )
    .into_response()
}

async fn blocking<T: Send + 'static>(
    state: &Arc<AppState>,
    f: impl FnOnce(&dyn vigil_store::Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, Response> {
    let store = state.store.clone();
    match tokio::task::spawn_blocking(move || f(store.as_ref())).await {
        Ok(result) => result.map_err(store_problem),
        Err(_) => Err(unavailable()),
    }
}

pub fn alert_json(a: &SecurityAlert) -> Value {
    json!({
        "id": a.id,
        "device": a.device,
        "peer": a.peer,
        "kind": a.kind,
        "count": a.count,
        "first_seen": a.first_seen,
        "last_seen": a.last_seen,
        "detail": a.detail,
        "quarantined": a.quarantined,
        "status": a.status,
        "acknowledged_by": a.acknowledged_by,
        "acknowledged_at": a.acknowledged_at,
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsQuery {
    /// `open` for the alerts not yet acknowledged; default all.
    status: Option<String>,
    /// Alerts older than this id (the next page).
    before: Option<u64>,
    /// At most this many, newest first (default 100, at most 1000).
    limit: Option<usize>,
}

/// `GET /api/v1/security/alerts?status=open&before=&limit=`
pub async fn list_alerts(
    State(state): State<Arc<AppState>>,
    caller: Result<Caller, Unauthenticated>,
    query: Result<Query<AlertsQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    if let Err(r) = admin_only(caller) {
        return *r;
    }
    let Ok(Query(q)) = query else {
        return Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid-parameter",
            "Parameters: status=open, before=ID, limit=N.",
        )
        .into_response();
    };
    let open_only = match q.status.as_deref() {
        None | Some("all") => false,
        Some("open") => true,
        Some(_) => {
            return Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid-parameter",
                "status: `open` or `all`.",
            )
            .into_response();
        }
    };
    let query = SecurityAlertQuery {
        open_only,
        before: q.before,
        limit: q.limit.unwrap_or(100).min(1000),
    };
    match blocking(&state, move |s| s.security_alerts(&query)).await {
        Ok(alerts) => Json(json!({ "alerts": alerts.iter().map(alert_json).collect::<Vec<_>>() }))
            .into_response(),
        Err(r) => r,
    }
}

/// `POST /api/v1/security/alerts/{id}/ack`
pub async fn acknowledge(
    State(state): State<Arc<AppState>>,
    caller: Result<Caller, Unauthenticated>,
    Path(id): Path<String>,
) -> Response {
    let caller = match admin_only(caller) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let Ok(id) = id.parse::<u64>() else {
        return Problem::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "No such security alert.",
        )
        .into_response();
    };
    let by = caller.0.subject.clone();
    match blocking(&state, move |s| {
        s.acknowledge_security_alert(id, &by, chrono::Utc::now())
    })
    .await
    {
        Ok(alert) => {
            tracing::info!(alert = alert.id, "security alert acknowledged");
            Json(alert_json(&alert)).into_response()
        }
        Err(r) => r,
    }
}

/// `POST /api/v1/devices/{id}/release`: ends a device's quarantine; it may sign in again.
pub async fn release(
    State(state): State<Arc<AppState>>,
    caller: Result<Caller, Unauthenticated>,
    Path(id): Path<String>,
) -> Response {
    if let Err(r) = admin_only(caller) {
        return *r;
    }
    let Ok(device) = DeviceId::new(id) else {
        return Problem::new(StatusCode::NOT_FOUND, "not-found", "No such device.").into_response();
    };
    let target = device.clone();
    let was = match blocking(&state, move |s| {
        let was = s.device_quarantine(&target)?;
        s.set_device_quarantine(&target, None)?;
        Ok(was)
    })
    .await
    {
        Ok(was) => was,
        Err(r) => return r,
    };
    tracing::info!(device = %device, "device released from quarantine");
    Json(json!({ "device": device, "released": true, "was_quarantined_since": was }))
        .into_response()
}
