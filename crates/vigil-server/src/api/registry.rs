//! The device registry over HTTP, for administrators and integration systems: register a device
//! (its secret is shown once), rotate or revoke its credentials (its open connections are closed
//! at once), and bind or unbind it to a patient. The same as `vigil device …` on the command line.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use vigil_model::audit::{AuditAction, AuditEntity, AuditOutcome};
use vigil_model::{Device, DeviceId, DeviceKind, Instant, PatientId};
use vigil_store::{Store, StoreError};

use super::AppState;
use super::access::{Caller, Unauthenticated};
use super::audit::{self, Origin};
use super::problem::Problem;
use crate::auth;

fn problem(status: StatusCode, kind: &str, detail: impl Into<String>) -> Response {
    Problem::new(status, kind, detail).into_response()
}

/// Only administrators and integration systems manage devices: the refusal, if any.
fn refuse(caller: Result<Caller, Unauthenticated>) -> Option<Response> {
    admit(caller).err().map(|r| *r)
}

/// The caller if they may manage devices, else the refusal.
fn admit(caller: Result<Caller, Unauthenticated>) -> Result<Caller, Box<Response>> {
    match caller {
        Err(u) => Err(Box::new(u.into_response())),
        Ok(c) if !c.may_manage_devices() => Err(Box::new(problem(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Only administrators and integration systems manage devices.",
        ))),
        Ok(c) => Ok(c),
    }
}

/// Audits a change of `device`'s credentials (`what`: registered, rotated, revoked) that ended
/// with `status`.
async fn audit_credentials(
    state: &AppState,
    caller: &Caller,
    origin: Origin,
    device: &DeviceId,
    what: &str,
    patient: Option<PatientId>,
    status: StatusCode,
) {
    let entry = audit::entry(
        caller,
        origin,
        AuditAction::CredentialChange,
        AuditEntity::resource("Device", device.as_str()),
    )
    .patients(patient)
    .outcome(AuditOutcome::from_http_status(status.as_u16()))
    .detail(what);
    state.audit.record_done(entry).await;
}

fn store_problem(e: StoreError) -> Response {
    match &e {
        StoreError::NotFound { what, id } => problem(
            StatusCode::NOT_FOUND,
            "not-found",
            format!("No {what} {id}."),
        ),
        StoreError::AlreadyExists { what, id } => problem(
            StatusCode::CONFLICT,
            "already-exists",
            format!("A {what} {id} already exists."),
        ),
        StoreError::Conflict(why) => problem(StatusCode::CONFLICT, "conflict", why),
        // The backend's own words go to the operator's log, never to the caller.
        StoreError::Corrupt(_) | StoreError::Backend(_) => {
            tracing::warn!(error = %e, "registry: the store failed");
            problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "The store is unavailable; retry later.",
            )
        }
    }
}

async fn blocking<T: Send + 'static>(
    state: &Arc<AppState>,
    f: impl FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, Response> {
    let store = state.store.clone();
    match tokio::task::spawn_blocking(move || f(store.as_ref())).await {
        Ok(result) => result.map_err(store_problem),
        Err(_) => Err(problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "The store is unavailable; retry later.",
        )),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewDevice {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    manufacturer: Option<String>,
    model: Option<String>,
    serial: Option<String>,
    ble_address: Option<String>,
    /// Bind to this patient from `since` (default now).
    patient: Option<String>,
    since: Option<Instant>,
}

/// `POST /api/v1/devices`: registers a device; answers 201 with its secret, shown this once.
pub async fn register(
    State(state): State<Arc<AppState>>,
    caller: Result<Caller, Unauthenticated>,
    origin: Origin,
    body: Result<Json<NewDevice>, JsonRejection>,
) -> Response {
    let caller = match admit(caller) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let Json(new) = match body {
        Ok(b) => b,
        Err(e) => return problem(StatusCode::BAD_REQUEST, "invalid-body", e.body_text()),
    };
    let Ok(id) = DeviceId::new(new.id.clone()) else {
        return problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            "id: 1–64 letters, digits, '.' and '-'.",
        );
    };
    if vigil_model::is_reserved_device_id(id.as_str()) {
        return problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            "Device ids starting with \"vigil-\" are reserved for Vigil's own software.",
        );
    }
    if new.kind.trim().is_empty() {
        return problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            "type is required.",
        );
    }
    let ble_address = match new
        .ble_address
        .as_deref()
        .map(str::parse::<vigil_codecs::ble::BleAddress>)
    {
        None => None,
        Some(Ok(a)) => Some(a.to_string()),
        Some(Err(e)) => {
            return problem(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
                format!("ble_address: {e}"),
            );
        }
    };
    let patient = match new.patient.map(PatientId::new) {
        None => None,
        Some(Ok(p)) => Some(p),
        Some(Err(_)) => {
            return problem(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
                "patient: not a valid patient id.",
            );
        }
    };
    let mut device = Device::new(id.clone(), DeviceKind::new(new.kind));
    device.manufacturer = new.manufacturer;
    device.model = new.model;
    device.serial = new.serial;
    device.ble_address = ble_address;
    let secret = auth::new_device_secret();
    let hash = auth::hash_device_secret(&secret);
    let since = new.since.unwrap_or_else(chrono::Utc::now);
    let bound = patient.clone();
    let stored = blocking(&state, move |s| {
        if let Some(p) = &bound
            && s.patient(p)?.is_none()
        {
            return Err(StoreError::NotFound {
                what: "patient",
                id: p.to_string(),
            });
        }
        s.create_device(&device, &hash)?;
        if let Some(p) = &bound {
            s.bind(&device.id, p, since)?;
        }
        Ok(device)
    })
    .await;
    let audited = (id.clone(), patient.clone());
    let response = match stored {
        Ok(device) => {
            tracing::info!("device registered through the API");
            (
                StatusCode::CREATED,
                Json(json!({
                    "device": vigil_fhir::device_to_fhir(&device, patient.as_ref()),
                    "secret": secret,
                    "note": "The secret is shown once; Vigil keeps only its hash.",
                })),
            )
                .into_response()
        }
        Err(r) => r,
    };
    let (device, bound) = audited;
    audit_credentials(
        &state,
        &caller,
        origin,
        &device,
        "registered",
        bound,
        response.status(),
    )
    .await;
    response
}

/// `POST /api/v1/devices/{id}/secret`: a new secret (shown once); the old one stops working and
/// the device's open connections are closed.
pub async fn rotate_secret(
    State(state): State<Arc<AppState>>,
    caller: Result<Caller, Unauthenticated>,
    origin: Origin,
    Path(id): Path<String>,
) -> Response {
    let caller = match admit(caller) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let Ok(id) = DeviceId::new(id) else {
        return problem(StatusCode::NOT_FOUND, "not-found", "No such device.");
    };
    let secret = auth::new_device_secret();
    let hash = auth::hash_device_secret(&secret);
    let target = id.clone();
    if let Err(r) = blocking(&state, move |s| s.set_device_secret(&target, &hash)).await {
        audit_credentials(
            &state,
            &caller,
            origin,
            &id,
            "secret rotated",
            None,
            r.status(),
        )
        .await;
        return r;
    }
    let closed = state
        .broker
        .as_ref()
        .map_or(0, |b| b.sessions.disconnect_device(&id));
    tracing::info!(closed_connections = closed, "device secret rotated");
    let response = Json(json!({ "device": id, "secret": secret, "closed_connections": closed }))
        .into_response();
    audit_credentials(
        &state,
        &caller,
        origin,
        &id,
        "secret rotated",
        None,
        response.status(),
    )
    .await;
    response
}

/// `POST /api/v1/devices/{id}/revoke`: the device can no longer sign in (MQTT and HTTP refuse
/// it, counted as `revoked`), and its open connections are closed. Rotating gives it a new secret.
pub async fn revoke(
    State(state): State<Arc<AppState>>,
    caller: Result<Caller, Unauthenticated>,
    origin: Origin,
    Path(id): Path<String>,
) -> Response {
    let caller = match admit(caller) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let Ok(id) = DeviceId::new(id) else {
        return problem(StatusCode::NOT_FOUND, "not-found", "No such device.");
    };
    let target = id.clone();
    if let Err(r) = blocking(&state, move |s| {
        s.set_device_secret(&target, &vigil_store::REVOKED)
    })
    .await
    {
        audit_credentials(&state, &caller, origin, &id, "revoked", None, r.status()).await;
        return r;
    }
    let closed = state
        .broker
        .as_ref()
        .map_or(0, |b| b.sessions.disconnect_device(&id));
    tracing::info!(closed_connections = closed, "device credentials revoked");
    let response = Json(json!({ "device": id, "revoked": true, "closed_connections": closed }))
        .into_response();
    audit_credentials(
        &state,
        &caller,
        origin,
        &id,
        "revoked",
        None,
        response.status(),
    )
    .await;
    response
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewBinding {
    patient: String,
    /// Start of the binding; default now. It may not precede the device's latest binding.
    from: Option<Instant>,
}

/// `PUT /api/v1/devices/{id}/binding`: the device measures this patient from `from` on (its
/// current binding ends then).
pub async fn bind(
    State(state): State<Arc<AppState>>,
    caller: Result<Caller, Unauthenticated>,
    Path(id): Path<String>,
    body: Result<Json<NewBinding>, JsonRejection>,
) -> Response {
    if let Some(r) = refuse(caller) {
        return r;
    }
    let Json(new) = match body {
        Ok(b) => b,
        Err(e) => return problem(StatusCode::BAD_REQUEST, "invalid-body", e.body_text()),
    };
    let (Ok(device), Ok(patient)) = (DeviceId::new(id), PatientId::new(new.patient)) else {
        return problem(
            StatusCode::NOT_FOUND,
            "not-found",
            "No such device or patient.",
        );
    };
    let from = new.from.unwrap_or_else(chrono::Utc::now);
    match blocking(&state, move |s| s.bind(&device, &patient, from)).await {
        Ok(binding) => Json(json!({
            "device": binding.device, "patient": binding.patient, "from": binding.from, "to": binding.to,
        }))
        .into_response(),
        Err(r) => r,
    }
}

/// `DELETE /api/v1/devices/{id}/binding`: the device measures nobody from now on; its readings
/// are refused as `unbound_device` until it is bound again.
pub async fn unbind(
    State(state): State<Arc<AppState>>,
    caller: Result<Caller, Unauthenticated>,
    Path(id): Path<String>,
) -> Response {
    if let Some(r) = refuse(caller) {
        return r;
    }
    let Ok(device) = DeviceId::new(id) else {
        return problem(StatusCode::NOT_FOUND, "not-found", "No such device.");
    };
    let now = chrono::Utc::now();
    match blocking(&state, move |s| s.unbind(&device, now)).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(r) => r,
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewCommand {
    /// What the device should do: a JSON object, passed to it as is.
    command: serde_json::Map<String, serde_json::Value>,
    /// Default: a new random id.
    correlation_id: Option<String>,
    /// Seconds the command stays deliverable (default one day, at most seven).
    expires_in_s: Option<u32>,
}

/// Longest a command may wait for its device.
const MAX_COMMAND_WAIT_S: u32 = 7 * 24 * 3600;

fn command_json(c: &vigil_store::DeviceCommand) -> serde_json::Value {
    let now = chrono::Utc::now();
    json!({
        "device": c.device,
        "correlation_id": c.correlation_id,
        "command": serde_json::from_str::<serde_json::Value>(&c.body).unwrap_or_default(),
        "state": c.state(now),
        "created": c.created,
        "expires": c.expires,
        "sent": c.sent,
        "confirmed": c.confirmed,
        "outcome": c.outcome,
        "detail": c.detail,
    })
}

/// `POST /api/v1/devices/{id}/commands`: queues a command (durably) and delivers it at once if
/// the device is connected; 202 with its state (`queued` or `sent`).
pub async fn queue_command(
    State(state): State<Arc<AppState>>,
    caller: Result<Caller, Unauthenticated>,
    Path(id): Path<String>,
    body: Result<Json<NewCommand>, JsonRejection>,
) -> Response {
    if let Some(r) = refuse(caller) {
        return r;
    }
    let Json(new) = match body {
        Ok(b) => b,
        Err(e) => return problem(StatusCode::BAD_REQUEST, "invalid-body", e.body_text()),
    };
    let Ok(device) = DeviceId::new(id) else {
        return problem(StatusCode::NOT_FOUND, "not-found", "No such device.");
    };
    let correlation_id = new.correlation_id.unwrap_or_else(|| {
        let mut bytes = [0u8; 8];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
        format!("cmd-{}", hex::encode(bytes))
    });
    if correlation_id.is_empty() || correlation_id.len() > 64 {
        return problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            "correlation_id: 1 to 64 characters.",
        );
    }
    let wait = new.expires_in_s.unwrap_or(24 * 3600);
    if wait == 0 || wait > MAX_COMMAND_WAIT_S {
        return problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            format!("expires_in_s: 1 to {MAX_COMMAND_WAIT_S}."),
        );
    }
    let expires = chrono::Utc::now() + chrono::Duration::seconds(i64::from(wait));
    let body = serde_json::Value::Object(new.command).to_string();
    let (store, who, cid) = (state.store.clone(), device.clone(), correlation_id.clone());
    let queued = match tokio::task::spawn_blocking(move || {
        store.queue_command(&who, &cid, &body, chrono::Utc::now(), expires)
    })
    .await
    {
        Ok(r) => r,
        Err(_) => Err(StoreError::Backend("the store task ended".into())),
    };
    // Stored first; then handed to the device at once if it is listening.
    if let (Ok(command), Some(broker)) = (&queued, &state.broker) {
        crate::sources::mqtt::commands::deliver(broker, command).await;
    }
    if let Err(e) = queued {
        return store_problem(e);
    }
    let lookup = device.clone();
    match blocking(&state, move |s| s.command(&lookup, &correlation_id)).await {
        Ok(Some(c)) => (StatusCode::ACCEPTED, Json(command_json(&c))).into_response(),
        Ok(None) => problem(StatusCode::NOT_FOUND, "not-found", "No such command."),
        Err(r) => r,
    }
}

/// `GET /api/v1/devices/{id}/commands/{correlation_id}`: the command and its delivery state.
pub async fn get_command(
    State(state): State<Arc<AppState>>,
    caller: Result<Caller, Unauthenticated>,
    Path((id, correlation_id)): Path<(String, String)>,
) -> Response {
    if let Some(r) = refuse(caller) {
        return r;
    }
    let Ok(device) = DeviceId::new(id) else {
        return problem(StatusCode::NOT_FOUND, "not-found", "No such device.");
    };
    match blocking(&state, move |s| s.command(&device, &correlation_id)).await {
        Ok(Some(c)) => Json(command_json(&c)).into_response(),
        Ok(None) => problem(StatusCode::NOT_FOUND, "not-found", "No such command."),
        Err(r) => r,
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Calibration {
    /// When the device was calibrated.
    calibrated_at: Option<Instant>,
    /// By when it must be calibrated again; once passed, a technical alarm is raised.
    due: Option<Instant>,
}

/// `PUT /api/v1/devices/{id}/calibration`: records the device's calibration; an overdue one
/// raises `technical:calibration-due`, a new date in the future clears it.
pub async fn set_calibration(
    State(state): State<Arc<AppState>>,
    caller: Result<Caller, Unauthenticated>,
    Path(id): Path<String>,
    body: Result<Json<Calibration>, JsonRejection>,
) -> Response {
    if let Some(r) = refuse(caller) {
        return r;
    }
    let Json(c) = match body {
        Ok(b) => b,
        Err(e) => return problem(StatusCode::BAD_REQUEST, "invalid-body", e.body_text()),
    };
    if let (Some(done), Some(due)) = (c.calibrated_at, c.due)
        && due < done
    {
        return problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            "due: the next calibration cannot be due before the last one was done.",
        );
    }
    let Ok(device) = DeviceId::new(id) else {
        return problem(StatusCode::NOT_FOUND, "not-found", "No such device.");
    };
    let target = device.clone();
    let (done, due) = (c.calibrated_at, c.due);
    if let Err(r) = blocking(&state, move |s| s.set_calibration(&target, done, due)).await {
        return r;
    }
    if state
        .surveillance
        .calibration_changed(device.clone(), due)
        .await
        .is_err()
    {
        tracing::warn!("the calibration due date reaches surveillance at its next start");
    }
    Json(json!({ "device": device, "calibrated_at": done, "due": due })).into_response()
}
