//! The HTTP API: device ingest (`/api/v1/devices/{id}/obs`), the FHIR R4 API (`/fhir`), and the
//! operator's endpoints (`/healthz`, `/readyz`, `/metrics`). Handlers are thin: parse, call one
//! store or pipeline function, map the result.

mod access;
mod accounts;
pub mod audit;
mod defence;
mod devices;
mod fhir;
mod problem;
mod refusals;
mod registry;
mod security;
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

use std::sync::atomic::{AtomicU64, Ordering};

/// What every handler may use.
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub ingest: Ingest,
    pub limits: vigil_codecs::DecodeLimits,
    pub tokens: TokenKeys,
    /// The external identity provider's token verifier, when one is configured.
    pub oidc: Option<Arc<crate::auth::oidc::OidcVerifier>>,
    /// Session cookies carry `Secure` (Vigil serves TLS).
    pub secure_cookies: bool,
    /// Pseudonyms for the research (de-identified) view.
    pub pseudonyms: crate::auth::Pseudonyms,
    /// Bumped whenever care teams or consents change through the API, so open live streams look
    /// up again what their subscribers may see.
    pub access_generation: Arc<AtomicU64>,
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
    /// Origins allowed cross-origin access (exact); empty: none.
    pub cors_origins: Vec<String>,
    /// The audit trail: every access to health data and every security event is recorded here.
    pub audit: crate::audit::Auditor,
}

impl AppState {
    pub fn access_generation(&self) -> u64 {
        self.access_generation.load(Ordering::Acquire)
    }

    /// Announces that who may see whom changed (a consent, a care team).
    pub fn access_changed(&self) {
        self.access_generation.fetch_add(1, Ordering::AcqRel);
    }

    /// A rendered resource as the caller may see it.
    pub fn shown(
        &self,
        mut resource: serde_json::Value,
        view: vigil_access::View,
    ) -> serde_json::Value {
        if view == vigil_access::View::Deidentified {
            vigil_fhir::deidentify(&mut resource, &|kind, id| self.pseudonyms.of(kind, id));
        }
        resource
    }

    /// A search entry (full URL and resource) as the caller may see it.
    pub fn shown_entry(
        &self,
        url: String,
        resource: serde_json::Value,
        view: vigil_access::View,
    ) -> (String, serde_json::Value) {
        let resource = self.shown(resource, view);
        if view == vigil_access::View::Deidentified
            && let (Some(kind), Some(id)) =
                (resource["resourceType"].as_str(), resource["id"].as_str())
        {
            return (format!("{}/{kind}/{id}", self.fhir_base), resource);
        }
        (url, resource)
    }
}

/// Builds the router; tests call it in-process, `serve` runs it on a listener.
pub fn app(state: Arc<AppState>) -> Router {
    let body_limit = state.limits.max_bytes;
    let router = Router::new()
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
        .route("/api/v1/patients/{id}/series", get(surveillance::series))
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
            "/api/v1/devices/{device_id}/release",
            post(security::release),
        )
        .route("/api/v1/security/alerts", get(security::list_alerts))
        .route(
            "/api/v1/security/alerts/{id}/ack",
            post(security::acknowledge),
        )
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
        .route("/api/v1/login", post(accounts::login))
        .route("/api/v1/logout", post(accounts::logout))
        .route("/api/v1/session", get(accounts::whoami))
        .route("/api/v1/care-teams", get(accounts::list_care_teams))
        .route(
            "/api/v1/care-teams/{id}",
            axum::routing::put(accounts::put_care_team),
        )
        .route(
            "/api/v1/patients/{id}/ward",
            axum::routing::put(accounts::put_ward),
        )
        .route(
            "/api/v1/patients/{id}/emergency-access",
            post(accounts::emergency_access),
        )
        .route(
            "/api/v1/emergency-access",
            get(accounts::review_emergency_access),
        )
        .merge(fhir::routes())
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        // One byte more than the decoder's limit, so the decoder reports the exact size problem.
        .layer(DefaultBodyLimit::max(body_limit + 1))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            defence::limit_clients,
        ));
    // CORS outside the rate limit (a preflight is answered before it), the security headers
    // outermost so every response carries them, 429s and preflights included.
    let router = match defence::cors(&state.cors_origins) {
        Some(cors) => router.layer(cors),
        None => router,
    };
    router
        .layer(axum::middleware::map_response(defence::security_headers))
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
