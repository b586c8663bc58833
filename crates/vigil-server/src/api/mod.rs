//! The HTTP API: device ingest (`/api/v1/devices/{id}/obs`), the FHIR R4 API (`/fhir`), and the
//! operator's endpoints (`/healthz`, `/readyz`, `/metrics`). Handlers are thin: parse, call one
//! store or pipeline function, map the result.

mod access;
pub mod audit;
mod devices;
mod fhir;
mod problem;
mod refusals;
mod registry;
mod surveillance;
mod templates;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use vigil_store::Store;

use crate::auth::TokenKeys;
use crate::pipeline::Ingest;

pub use access::Caller;

/// What every handler may use.
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub ingest: Ingest,
    pub limits: vigil_codecs::DecodeLimits,
    pub tokens: TokenKeys,
    pub surveillance: crate::surveillance::SurveillanceHandle,
    /// The cohort rule sets patients can be assigned to.
    pub cohorts: Arc<vigil_rules::cohort::Cohorts>,
    /// The embedded MQTT broker, when it runs: revoking a device closes its connections.
    pub broker: Option<Arc<crate::sources::mqtt::BrokerContext>>,
    /// Cancelled when the server stops; long-lived responses (the live stream) end with it.
    pub shutdown: tokio_util::sync::CancellationToken,
    pub metrics: PrometheusHandle,
    /// Public base URL of the FHIR API (for `fullUrl` and paging links), e.g. `http://host:8080/fhir`.
    pub fhir_base: String,
    /// The audit trail: every access to health data and every security event is recorded here.
    pub audit: crate::audit::Auditor,
}

/// Builds the router; tests call it in-process, `serve` runs it on a listener.
pub fn app(state: Arc<AppState>) -> Router {
    let body_limit = state.limits.max_bytes;
    Router::new()
        .route(
            "/api/v1/devices/{device_id}/obs",
            post(devices::post_readings),
        )
        .route("/api/v1/gateways/{device_id}/ble", post(devices::post_ble))
        .route(
            "/api/v1/devices/{device_id}/events",
            post(devices::post_event),
        )
        .route("/api/v1/patients/{id}/news2", get(surveillance::news2))
        .route("/api/v1/patients/{id}/disclosures", get(audit::disclosures))
        .route("/fhir/AuditEvent", get(audit::search_audit_events))
        .route("/fhir/AuditEvent/{id}", get(audit::read_audit_event))
        .route(
            "/api/v1/patients/{id}/settings",
            get(surveillance::get_settings).put(surveillance::put_settings),
        )
        .route("/api/v1/cohorts", get(surveillance::list_cohorts))
        .route("/api/v1/refused", get(refusals::list_refused))
        .route("/api/v1/ingest/{template}", post(devices::post_vendor))
        .route("/api/v1/templates", get(templates::list))
        .route(
            "/api/v1/templates/{name}",
            get(templates::read).put(templates::upload),
        )
        .route("/api/v1/templates/{name}/dry-run", post(templates::dry_run))
        .route("/api/v1/devices", post(registry::register))
        .route(
            "/api/v1/devices/{device_id}/secret",
            post(registry::rotate_secret),
        )
        .route("/api/v1/devices/{device_id}/revoke", post(registry::revoke))
        .route(
            "/api/v1/devices/{device_id}/calibration",
            axum::routing::put(registry::set_calibration),
        )
        .route(
            "/api/v1/devices/{device_id}/commands",
            post(registry::queue_command),
        )
        .route(
            "/api/v1/devices/{device_id}/commands/{correlation_id}",
            get(registry::get_command),
        )
        .route(
            "/api/v1/devices/{device_id}/binding",
            axum::routing::put(registry::bind).delete(registry::unbind),
        )
        .route("/api/v1/alerts", get(surveillance::list_alerts))
        .route("/api/v1/alerts/{id}", get(surveillance::get_alert))
        .route("/api/v1/alerts/{id}/ack", post(surveillance::acknowledge))
        .route("/api/v1/alerts/{id}/silence", post(surveillance::silence))
        .route("/api/v1/stream", get(surveillance::stream))
        .merge(fhir::routes())
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        // One byte more than the decoder's limit, so the decoder reports the exact size problem.
        .layer(DefaultBodyLimit::max(body_limit + 1))
        .with_state(state)
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// Ready when the store answers.
async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let store = state.store.clone();
    match tokio::task::spawn_blocking(move || store.stats()).await {
        Ok(Ok(_)) => (StatusCode::OK, "ready\n").into_response(),
        Ok(Err(e)) => {
            // The detail goes to the operator's log, not to whoever asks the endpoint.
            tracing::warn!(error = %e, "readiness check: the store does not answer");
            (StatusCode::SERVICE_UNAVAILABLE, "store unavailable\n").into_response()
        }
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "store check failed\n").into_response(),
    }
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

async fn not_found() -> Response {
    problem::Problem::new(StatusCode::NOT_FOUND, "not-found", "No such endpoint.").into_response()
}
