//! `POST /api/v1/devices/{device_id}/obs` and `…/events`: the HTTP twins of the MQTT readings and
//! events topics. Devices
//! authenticate with HTTP Basic (username = device id, password = device secret); user tokens are
//! refused here, and device secrets are refused everywhere else.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::json;
use vigil_model::DeviceId;
use vigil_model::audit::Channel;

use super::AppState;
use super::audit::Origin;
use super::problem::Problem;
use crate::pipeline::{self, DeviceMessage, IngestError, MessageError};
use crate::telemetry;
use crate::{audit, auth};

const CHALLENGE: &str = "Basic realm=\"vigil-devices\", charset=\"UTF-8\"";

fn unauthorized(reason: &'static str, detail: &str) -> Response {
    telemetry::http_auth_refused(reason);
    let mut p = Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", detail);
    p.www_authenticate = Some(CHALLENGE);
    p.into_response()
}

/// The device id and secret from a Basic `Authorization` header.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, pass) = text.split_once(':')?;
    Some((user.to_owned(), pass.to_owned()))
}

/// A body that could not be read (over the size limit, cut off) as problem+json.
fn body_problem(rejection: &BytesRejection, max: usize) -> Response {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        telemetry::message_rejected("http", "too_large");
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("The body is larger than the limit of {max} bytes."),
        )
        .into_response()
    } else {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "unreadable-body",
            "The request body could not be read.",
        )
        .into_response()
    }
}

pub async fn post_readings(
    State(state): State<Arc<AppState>>,
    origin: Origin,
    Path(device_id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    post_message(
        state,
        origin,
        device_id,
        headers,
        body,
        DeviceMessage::Readings,
    )
    .await
}

/// `POST /api/v1/gateways/{gateway_id}/ble`: the HTTP twin of the MQTT BLE relay topic.
pub async fn post_ble(
    State(state): State<Arc<AppState>>,
    origin: Origin,
    Path(device_id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    post_message(state, origin, device_id, headers, body, DeviceMessage::Ble).await
}

/// `POST /api/v1/devices/{device_id}/events`: the HTTP twin of the MQTT events topic.
pub async fn post_event(
    State(state): State<Arc<AppState>>,
    origin: Origin,
    Path(device_id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    post_message(
        state,
        origin,
        device_id,
        headers,
        body,
        DeviceMessage::Event,
    )
    .await
}

/// `POST /api/v1/ingest/{template}`: the HTTP twin of the MQTT vendor topic; the device signs
/// in with HTTP Basic as for its readings.
pub async fn post_vendor(
    State(state): State<Arc<AppState>>,
    origin: Origin,
    Path(template): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let Some((user, _)) = basic_credentials(&headers) else {
        return unauthorized(
            "no_credentials",
            "Devices authenticate with HTTP Basic: the device id as user name and the device secret as password.",
        );
    };
    post_message(
        state,
        origin,
        user,
        headers,
        body,
        DeviceMessage::Vendor(template),
    )
    .await
}

async fn post_message(
    state: Arc<AppState>,
    origin: Origin,
    device_id: String,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
    message: DeviceMessage,
) -> Response {
    let Some((user, secret)) = basic_credentials(&headers) else {
        return unauthorized(
            "no_credentials",
            "Devices authenticate with HTTP Basic: the device id as user name and the device secret as password.",
        );
    };
    let Ok(device) = DeviceId::new(device_id) else {
        return Problem::new(StatusCode::NOT_FOUND, "unknown-device", "No such device.")
            .into_response();
    };
    if user != device.as_str() {
        telemetry::http_auth_refused("foreign_device");
        let entry =
            audit::device_login_refused(Some(&user), Channel::Http, origin.0, "foreign_device")
                .detail(format!("foreign_device: posted to the URL of {device}"));
        state.audit.record_done(entry).await;
        return Problem::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "A device may post only to its own URLs.",
        )
        .into_response();
    }
    let store = state.store.clone();
    let lookup = device.clone();
    let stored = match tokio::task::spawn_blocking(move || store.device_secret(&lookup)).await {
        Ok(Ok(stored)) => stored,
        Ok(Err(_)) | Err(_) => {
            return Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "The store is unavailable; retry later.",
            )
            .into_response();
        }
    };
    let refused = match stored {
        Some(hash) if hash == vigil_store::REVOKED => Some("revoked"),
        Some(hash) if auth::device_secret_matches(&hash, &secret) => None,
        Some(_) => Some("bad_secret"),
        None => Some("unknown_device"),
    };
    if let Some(reason) = refused {
        let entry =
            audit::device_login_refused(Some(device.as_str()), Channel::Http, origin.0, reason);
        state.audit.record_done(entry).await;
        return match reason {
            "revoked" => unauthorized(reason, "This device's credentials were revoked."),
            _ => unauthorized(reason, "Wrong device id or secret."),
        };
    }

    let body = match body {
        Ok(body) => body,
        Err(rejection) => return body_problem(&rejection, state.limits.max_bytes),
    };
    match pipeline::ingest_device_message(
        &state.ingest,
        &state.store,
        &state.limits,
        "http",
        &device,
        message,
        &body,
    )
    .await
    {
        Ok(report) if report.accepted == 0 && report.duplicates == 0 => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "readings-rejected",
            format!(
                "None of the {} item(s) in the message could be accepted.",
                report.rejected.len()
            ),
        )
        .with(json!({ "accepted": 0, "duplicates": 0, "rejected": report.rejected }))
        .into_response(),
        Ok(report) => (StatusCode::ACCEPTED, axum::Json(report)).into_response(),
        Err(MessageError::Payload(refusal)) => {
            let status = if refusal.too_large {
                StatusCode::PAYLOAD_TOO_LARGE
            } else {
                StatusCode::BAD_REQUEST
            };
            Problem::new(status, refusal.kind, refusal.reason).into_response()
        }
        Err(MessageError::Ingest(IngestError::Store(_))) => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not-stored",
            "The readings could not be stored and were not accepted; send them again.",
        )
        .into_response(),
        Err(MessageError::Ingest(IngestError::Stopped)) => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting-down",
            "Vigil is shutting down; the readings were not accepted; send them again.",
        )
        .into_response(),
    }
}
