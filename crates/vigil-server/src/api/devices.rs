//! `POST /api/v1/devices/{device_id}/obs` and `…/events`: the HTTP twins of the MQTT readings and
//! events topics. Devices
//! authenticate with HTTP Basic (username = device id, password = device secret), or over mutual
//! TLS with a client certificate naming the device (`docs/tls.md`); user tokens are refused here,
//! and device secrets are refused everywhere else.

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
use super::defence;
use super::problem::Problem;
use crate::pipeline::{self, DeviceMessage, IngestError, MessageError};
use crate::telemetry;
use crate::transport::PeerIdentity;
use crate::{audit, auth};

const NO_CREDENTIALS: &str = "Devices authenticate with HTTP Basic (the device id as user name and the device secret as password) or with a client certificate naming the device.";

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
    Path(device_id): Path<String>,
    origin: Origin,
    headers: HeaderMap,
    identity: PeerIdentity,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    post_message(
        state,
        device_id,
        origin,
        headers,
        identity,
        body,
        DeviceMessage::Readings,
    )
    .await
}

/// `POST /api/v1/gateways/{gateway_id}/ble`: the HTTP twin of the MQTT BLE relay topic.
pub async fn post_ble(
    State(state): State<Arc<AppState>>,
    Path(device_id): Path<String>,
    origin: Origin,
    headers: HeaderMap,
    identity: PeerIdentity,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    post_message(
        state,
        device_id,
        origin,
        headers,
        identity,
        body,
        DeviceMessage::Ble,
    )
    .await
}

/// `POST /api/v1/devices/{device_id}/events`: the HTTP twin of the MQTT events topic.
pub async fn post_event(
    State(state): State<Arc<AppState>>,
    Path(device_id): Path<String>,
    origin: Origin,
    headers: HeaderMap,
    identity: PeerIdentity,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    post_message(
        state,
        device_id,
        origin,
        headers,
        identity,
        body,
        DeviceMessage::Event,
    )
    .await
}

/// `POST /api/v1/ingest/{template}`: the HTTP twin of the MQTT vendor topic; the device signs
/// in with HTTP Basic as for its readings.
pub async fn post_vendor(
    State(state): State<Arc<AppState>>,
    Path(template): Path<String>,
    origin: Origin,
    headers: HeaderMap,
    identity: PeerIdentity,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let user = match (basic_credentials(&headers), &identity.device) {
        (Some((user, _)), _) => user,
        (None, Some(certified)) => certified.as_str().to_owned(),
        (None, None) => return unauthorized("no_credentials", NO_CREDENTIALS),
    };
    post_message(
        state,
        user,
        origin,
        headers,
        identity,
        body,
        DeviceMessage::Vendor(template),
    )
    .await
}

async fn post_message(
    state: Arc<AppState>,
    device_id: String,
    origin: Origin,
    headers: HeaderMap,
    identity: PeerIdentity,
    body: Result<Bytes, BytesRejection>,
    message: DeviceMessage,
) -> Response {
    let basic = basic_credentials(&headers);
    // Who signs in: the Basic user name, else the device the client certificate names.
    let Some(claimed) = basic
        .as_ref()
        .map(|(user, _)| user.as_str())
        .or(identity.device.as_ref().map(DeviceId::as_str))
    else {
        return unauthorized("no_credentials", NO_CREDENTIALS);
    };
    let Ok(device) = DeviceId::new(device_id) else {
        return Problem::new(StatusCode::NOT_FOUND, "unknown-device", "No such device.")
            .into_response();
    };
    // A certificate naming another device refuses the request even if a secret is also given.
    if claimed != device.as_str() || identity.device.as_ref().is_some_and(|c| c != &device) {
        telemetry::http_auth_refused("foreign_device");
        let entry =
            audit::device_login_refused(Some(claimed), Channel::Http, origin.0, "foreign_device")
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
    let intrusion = state.ingest.guard().intrusion();
    let address = origin.0.map(|a| a.ip());
    // A refused sign-in is audited before it is answered.
    let refuse = |reason: &'static str, detail: &'static str| {
        let entry =
            audit::device_login_refused(Some(device.as_str()), Channel::Http, origin.0, reason);
        let audit = state.audit.clone();
        async move {
            audit.record_done(entry).await;
            unauthorized(reason, detail)
        }
    };
    match (stored, &basic) {
        (Some(hash), _) if hash == vigil_store::REVOKED => {
            return refuse("revoked", "This device's credentials were revoked.").await;
        }
        (Some(hash), Some((_, secret))) if auth::device_secret_matches(&hash, secret) => {}
        (Some(_), Some(_)) => {
            intrusion.auth_failure(Some(device.as_str()), address);
            return refuse("bad_secret", "Wrong device id or secret.").await;
        }
        // No secret: the certificate names this device (checked above).
        (Some(_), None) if identity.device.is_some() => {}
        (Some(_), None) => return refuse("no_credentials", NO_CREDENTIALS).await,
        (None, _) => {
            intrusion.auth_failure(Some(device.as_str()), address);
            return refuse("unknown_device", "Wrong device id or secret.").await;
        }
    }
    // Signed in: a quarantined device is refused until an administrator releases it.
    let store = state.store.clone();
    let lookup = device.clone();
    match tokio::task::spawn_blocking(move || store.device_quarantine(&lookup)).await {
        Ok(Ok(None)) => {}
        Ok(Ok(Some(_))) => {
            telemetry::http_auth_refused("quarantined");
            return defence::quarantined();
        }
        Ok(Err(_)) | Err(_) => {
            return Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "The store is unavailable; retry later.",
            )
            .into_response();
        }
    }
    if let Err(wait) = state.ingest.guard().check_http_device(&device) {
        telemetry::rate_limited("http_device");
        return defence::too_many_requests(wait);
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
