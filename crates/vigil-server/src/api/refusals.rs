//! `GET /api/v1/refused`: the messages Vigil refused, whole or in part, with their reasons and
//! payloads, so an administrator can see why a device's data did not arrive. Administrators only:
//! a payload may hold patient data.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::Deserialize;
use serde_json::{Value, json};
use vigil_model::DeviceId;
use vigil_store::{RefusalQuery, StoredRefusal};

use super::AppState;
use super::access::{Caller, Unauthenticated};
use super::problem::Problem;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefusedQuery {
    /// `mqtt`, `http` or `mllp`.
    source: Option<String>,
    device: Option<String>,
    /// Entries older than this id (the next page).
    before: Option<u64>,
    /// At most this many, newest first (default 100, at most 1000).
    limit: Option<usize>,
}

fn refusal_json(r: &StoredRefusal) -> Value {
    let m = &r.message;
    let mut out = json!({
        "id": r.id,
        "at": m.at,
        "source": m.source,
        "device": m.device,
        "kind": m.kind,
        "reason": m.reason,
        "whole": m.whole,
    });
    // Text as text; anything else (a binary MQTT payload) as base64.
    match std::str::from_utf8(&m.payload) {
        Ok(text) => out["payload"] = Value::from(text),
        Err(_) => {
            out["payload_base64"] =
                Value::from(base64::engine::general_purpose::STANDARD.encode(&m.payload))
        }
    }
    out
}

pub async fn list_refused(
    State(state): State<Arc<AppState>>,
    caller: Result<Caller, Unauthenticated>,
    query: Result<Query<RefusedQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let caller = match caller {
        Ok(c) => c,
        Err(u) => return u.into_response(),
    };
    if !caller.is_admin() {
        return Problem::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Only administrators see refused messages: their payloads may hold patient data.",
        )
        .into_response();
    }
    let Query(q) = match query {
        Ok(q) => q,
        Err(e) => {
            return Problem::new(StatusCode::BAD_REQUEST, "invalid-parameter", e.body_text())
                .into_response();
        }
    };
    let device = match q.device.map(DeviceId::new) {
        None => None,
        Some(Ok(d)) => Some(d),
        Some(Err(_)) => return Json(json!({ "refused": [] })).into_response(),
    };
    let query = RefusalQuery {
        source: q.source,
        device,
        before: q.before,
        limit: q.limit.unwrap_or(100).min(1000),
    };
    let store = state.store.clone();
    match tokio::task::spawn_blocking(move || store.refusals(&query)).await {
        Ok(Ok(found)) => {
            // Refused payloads may hold patient data: reading them is recorded like any read.
            let entry = caller.audit(
                vigil_model::audit::AuditAction::Search,
                vigil_model::audit::AuditEntity::search(
                    "RefusedMessage",
                    format!("returned={}", found.len()),
                ),
            );
            if let Err(e) = state.audit.record(entry).await {
                return super::audit::audit_unavailable(&e);
            }
            Json(json!({ "refused": found.iter().map(refusal_json).collect::<Vec<_>>() }))
                .into_response()
        }
        _ => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "The store is unavailable; retry later.",
        )
        .into_response(),
    }
}
