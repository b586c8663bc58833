//! Defence in depth on the HTTP API: security headers on every response, strict CORS, and the
//! per-client rate limit. The per-device limits and intrusion signals live in
//! [`crate::guard::Guard`], shared with the MQTT broker. See `docs/defence.md`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::AppState;
use super::problem::Problem;
use crate::telemetry;

/// The headers every response carries unless its handler set its own.
///
/// `Strict-Transport-Security` is sent always: browsers ignore it on plain HTTP (RFC 6797 §8.1),
/// and behind TLS (Vigil's own, or a terminating proxy) it pins the browser to HTTPS.
/// `Cache-Control: no-store` because nearly every answer carries health data or credentials; an
/// endpoint that may be cached says so itself.
const SECURITY_HEADERS: &[(&str, &str)] = &[
    ("strict-transport-security", "max-age=31536000"),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    (
        "content-security-policy",
        "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'",
    ),
    ("referrer-policy", "no-referrer"),
    ("cache-control", "no-store"),
    (
        "permissions-policy",
        "camera=(), microphone=(), geolocation=(), payment=(), usb=(), interest-cohort=()",
    ),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
];

/// Adds [`SECURITY_HEADERS`] to a response (those it does not set itself).
pub async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in SECURITY_HEADERS {
        let name = HeaderName::from_static(name);
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
    response
}

/// Cross-origin access: none unless origins are configured (then no layer at all, so a preflight
/// gets no `Access-Control-Allow-Origin`); otherwise exactly those origins, with credentials.
/// Origins that are not valid header values are skipped (the configuration validated them).
pub fn cors(origins: &[String]) -> Option<CorsLayer> {
    let allowed: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    if allowed.is_empty() {
        return None;
    }
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(allowed))
            .allow_credentials(true)
            .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::ACCEPT,
                HeaderName::from_static("last-event-id"),
                HeaderName::from_static("x-csrf-token"),
            ])
            .expose_headers([header::LOCATION, header::RETRY_AFTER])
            .max_age(Duration::from_secs(600)),
    )
}

/// The per-client rate limit, by remote address. Health probes are exempt (a load balancer asks
/// often and they touch no data). Without a known remote address (the router called in-process)
/// nothing is limited.
pub async fn limit_clients(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    if path == "/healthz" || path == "/readyz" {
        return next.run(request).await;
    }
    if let Some(ConnectInfo(peer)) = request.extensions().get::<ConnectInfo<SocketAddr>>()
        && let Err(wait) = state.ingest.guard().check_http_client(peer.ip())
    {
        telemetry::rate_limited("http_client");
        return too_many_requests(wait);
    }
    next.run(request).await
}

/// 403 for a quarantined device (HTTP twin of the MQTT CONNACK refusal).
pub fn quarantined() -> Response {
    Problem::new(
        StatusCode::FORBIDDEN,
        "device-quarantined",
        "device quarantined: this device was quarantined after a security alert; an administrator must release it.",
    )
    .into_response()
}

/// 429 with `Retry-After` (whole seconds, at least 1) and a problem+json body.
pub fn too_many_requests(wait: Duration) -> Response {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let seconds = seconds.max(1);
    let mut response = Problem::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate-limited",
        format!("Too many requests; retry in {seconds} s."),
    )
    .into_response();
    if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_header_is_added_and_a_handlers_own_is_kept() {
        let mut response = StatusCode::OK.into_response();
        response.headers_mut().insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("max-age=60"),
        );
        let response = security_headers(response).await;
        for (name, value) in SECURITY_HEADERS {
            let expected = if *name == "cache-control" {
                "max-age=60"
            } else {
                value
            };
            assert_eq!(response.headers()[*name], expected, "{name}");
        }
    }

    #[test]
    fn no_configured_origin_means_no_cors_layer() {
        assert!(cors(&[]).is_none());
        assert!(cors(&["bad\norigin".into()]).is_none());
        assert!(cors(&["https://ward.example.org".into()]).is_some());
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        let r = too_many_requests(Duration::from_millis(1));
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
        let r = too_many_requests(Duration::from_millis(2_001));
        assert_eq!(r.headers()[header::RETRY_AFTER], "3");
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            r.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
    }
}
