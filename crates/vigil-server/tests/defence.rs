//! Defence in depth, end to end in-process: security headers, strict CORS, rate limits with 429,
//! and device intrusion detection (alerts, quarantine, release) over real HTTP and MQTT.

mod common;

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use rumqttc::mqttbytes::v4;
use rumqttc::v5::mqttbytes::v5;
use serde_json::Value;
use vigil_server::auth::{Role, TokenKeys};
use vigil_server::guard::RateLimit;
use vigil_store::Store;

struct Ward {
    _dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    server: vigil_server::RunningServer,
    admin: String,
    clinician: String,
    http: reqwest::Client,
}

impl Ward {
    async fn start(tweak: impl FnOnce(&mut vigil_server::ServerConfig)) -> Ward {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(vigil_store::sqlite::SqliteStore::open(dir.path()).unwrap());
        let server = start(dir.path(), store.clone(), tweak).await;
        let keys = TokenKeys::load_or_create(dir.path()).unwrap();
        let admin = keys
            .issue(Role::Admin, "sam", chrono::Duration::hours(1))
            .unwrap();
        let clinician = keys
            .issue(Role::Clinician, "nadia", chrono::Duration::hours(1))
            .unwrap();
        Ward {
            _dir: dir,
            store,
            server,
            admin,
            clinician,
            http: reqwest::Client::new(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.server.http_addr)
    }

    fn mqtt(&self) -> std::net::SocketAddr {
        self.server.mqtt_addr.unwrap()
    }

    async fn alerts(&self) -> Vec<Value> {
        let body: Value = self
            .http
            .get(self.url("/api/v1/security/alerts"))
            .bearer_auth(&self.admin)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["alerts"].as_array().unwrap().clone()
    }

    /// Waits until an alert of `kind` is listed and returns it.
    async fn alert(&self, kind: &str) -> Value {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            if let Some(a) = self.alerts().await.into_iter().find(|a| a["kind"] == kind) {
                return a;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no {kind} alert appeared"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

const SECURITY_HEADERS: &[&str] = &[
    "strict-transport-security",
    "x-content-type-options",
    "x-frame-options",
    "content-security-policy",
    "referrer-policy",
    "cache-control",
    "permissions-policy",
];

fn assert_security_headers(response: &reqwest::Response, what: &str) {
    for name in SECURITY_HEADERS {
        assert!(
            response.headers().contains_key(*name),
            "{what}: no {name} header"
        );
    }
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    assert_eq!(response.headers()["x-frame-options"], "DENY");
    assert_eq!(response.headers()["cache-control"], "no-store");
    let csp = response.headers()["content-security-policy"]
        .to_str()
        .unwrap();
    assert!(csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"));
}

#[tokio::test]
async fn security_headers_are_on_fhir_answers_and_on_errors() {
    let ward = Ward::start(|_| {}).await;
    let fhir = ward
        .http
        .get(ward.url("/fhir/Patient"))
        .bearer_auth(&ward.clinician)
        .send()
        .await
        .unwrap();
    assert_eq!(fhir.status(), 200);
    assert_security_headers(&fhir, "FHIR search");

    let unauthenticated = ward
        .http
        .get(ward.url("/fhir/Patient"))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401);
    assert_security_headers(&unauthenticated, "401");

    let missing = ward
        .http
        .get(ward.url("/no/such/thing"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert_security_headers(&missing, "404");
    let body = missing.text().await.unwrap();
    assert!(
        !body.contains("panicked") && !body.contains("src/"),
        "{body}"
    );
    ward.server.shutdown().await;
}

#[tokio::test]
async fn a_preflight_from_an_unknown_origin_gets_no_cross_origin_permission() {
    let ward = Ward::start(|c| {
        c.defence.cors_origins = vec!["https://ward.example.org".into()];
    })
    .await;
    let preflight = |origin: &'static str| {
        ward.http
            .request(reqwest::Method::OPTIONS, ward.url("/fhir/Patient"))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "GET")
            .header("Access-Control-Request-Headers", "authorization")
            .send()
    };
    let unknown = preflight("https://evil.example.com").await.unwrap();
    assert!(
        !unknown
            .headers()
            .contains_key("access-control-allow-origin"),
        "an unknown origin is not allowed"
    );
    let known = preflight("https://ward.example.org").await.unwrap();
    assert_eq!(
        known.headers()["access-control-allow-origin"],
        "https://ward.example.org"
    );
    assert_eq!(known.headers()["access-control-allow-credentials"], "true");
    ward.server.shutdown().await;

    // No origins configured: nobody gets cross-origin access.
    let closed = Ward::start(|_| {}).await;
    let response = closed
        .http
        .request(reqwest::Method::OPTIONS, closed.url("/fhir/Patient"))
        .header("Origin", "https://ward.example.org")
        .header("Access-Control-Request-Method", "GET")
        .send()
        .await
        .unwrap();
    assert!(
        !response
            .headers()
            .contains_key("access-control-allow-origin")
    );
    closed.server.shutdown().await;
}

fn one_per_hour(burst: u32) -> Option<RateLimit> {
    Some(RateLimit {
        requests: NonZeroU32::new(1).unwrap(),
        per: Duration::from_secs(3600),
        burst: NonZeroU32::new(burst).unwrap(),
    })
}

#[tokio::test]
async fn over_the_client_limit_the_answer_is_429_with_retry_after() {
    let ward = Ward::start(|c| c.defence.http_per_client = one_per_hour(3)).await;
    for _ in 0..3 {
        let ok = ward
            .http
            .get(ward.url("/fhir/metadata"))
            .send()
            .await
            .unwrap();
        assert_ne!(ok.status(), 429);
    }
    let limited = ward
        .http
        .get(ward.url("/fhir/metadata"))
        .send()
        .await
        .unwrap();
    assert_eq!(limited.status(), 429);
    assert_security_headers(&limited, "429");
    let retry: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((3000..=3600).contains(&retry), "Retry-After {retry}");
    assert_eq!(
        limited.headers()["content-type"],
        "application/problem+json"
    );
    let body: Value = limited.json().await.unwrap();
    assert_eq!(body["status"], 429);
    // Health probes are not limited.
    let health = ward.http.get(ward.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    ward.server.shutdown().await;
}

#[tokio::test]
async fn over_the_device_limit_http_ingest_is_429_and_nothing_is_stored() {
    let ward = Ward::start(|c| c.defence.http_per_device = one_per_hour(2)).await;
    let secret = register(ward.store.as_ref(), "p1", "mon-1");
    let post = |ts: i64| {
        ward.http
            .post(ward.url("/api/v1/devices/mon-1/obs"))
            .basic_auth("mon-1", Some(&secret))
            .body(heart_rate(BASE_MS + ts, 70))
            .send()
    };
    assert_eq!(post(0).await.unwrap().status(), 202);
    assert_eq!(post(1000).await.unwrap().status(), 202);
    let limited = post(2000).await.unwrap();
    assert_eq!(limited.status(), 429);
    assert!(limited.headers().contains_key("retry-after"));
    assert_eq!(stored(ward.store.as_ref(), "mon-1").len(), 2);
    ward.server.shutdown().await;
}

#[tokio::test]
async fn a_device_publishing_to_another_devices_topic_is_quarantined_until_released() {
    let ward = Ward::start(|_| {}).await;
    let secret = register(ward.store.as_ref(), "p1", "mon-1");
    register(ward.store.as_ref(), "p2", "mon-2");

    let (mut rogue, ack) = RawMqtt::connect_v5(ward.mqtt(), "rogue", "mon-1", &secret, 30).await;
    assert_eq!(ack.code, v5::ConnectReturnCode::Success);
    rogue
        .send_v5(publish_v5(
            &obs_topic("mon-2"),
            1,
            1,
            None,
            &heart_rate(BASE_MS, 180),
        ))
        .await;

    // The alert is visible to administrators, says the device is quarantined.
    let alert = ward.alert("topic_violation").await;
    assert_eq!(alert["device"], "mon-1");
    assert_eq!(alert["quarantined"], true);
    assert_eq!(alert["status"], "open");
    assert!(
        ward.store
            .device_quarantine(&did("mon-1"))
            .unwrap()
            .is_some()
    );
    assert!(stored(ward.store.as_ref(), "mon-2").is_empty());

    // Its connection is closed, and it cannot sign in again: MQTT 5 0x8A, 3.1.1 code 5.
    let closed = within("the rogue connection to close", rogue.v5_until_closed()).await;
    assert!(
        !closed
            .iter()
            .any(|p| matches!(p, v5::Packet::PubAck(a) if a.reason == v5::PubAckReason::Success)),
        "{closed:?}"
    );
    let (_, again) = RawMqtt::connect_v5(ward.mqtt(), "rogue", "mon-1", &secret, 30).await;
    assert_eq!(again.code, v5::ConnectReturnCode::Banned);
    let (_, again_v4) = RawMqtt::connect_v4(ward.mqtt(), "rogue", "mon-1", &secret, 30).await;
    assert_eq!(again_v4.code, v4::ConnectReturnCode::NotAuthorized);
    // HTTP too: 403 problem+json "device quarantined".
    let http = ward
        .http
        .post(ward.url("/api/v1/devices/mon-1/obs"))
        .basic_auth("mon-1", Some(&secret))
        .body(heart_rate(BASE_MS, 70))
        .send()
        .await
        .unwrap();
    assert_eq!(http.status(), 403);
    let body: Value = http.json().await.unwrap();
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("device quarantined")
    );

    // Only an administrator releases it and acknowledges the alert.
    let by_clinician = ward
        .http
        .post(ward.url("/api/v1/devices/mon-1/release"))
        .bearer_auth(&ward.clinician)
        .send()
        .await
        .unwrap();
    assert_eq!(by_clinician.status(), 403);
    let seen_by_clinician = ward
        .http
        .get(ward.url("/api/v1/security/alerts"))
        .bearer_auth(&ward.clinician)
        .send()
        .await
        .unwrap();
    assert_eq!(seen_by_clinician.status(), 403);
    let released = ward
        .http
        .post(ward.url("/api/v1/devices/mon-1/release"))
        .bearer_auth(&ward.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(released.status(), 200);
    let acked: Value = ward
        .http
        .post(ward.url(&format!("/api/v1/security/alerts/{}/ack", alert["id"])))
        .bearer_auth(&ward.admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(acked["status"], "acknowledged");
    assert_eq!(acked["acknowledged_by"], "sam");

    // After release it connects and its own readings are stored again.
    let (mut device, ack) = RawMqtt::connect_v5(ward.mqtt(), "mon-1", "mon-1", &secret, 30).await;
    assert_eq!(ack.code, v5::ConnectReturnCode::Success);
    device
        .send_v5(publish_v5(
            &obs_topic("mon-1"),
            1,
            7,
            None,
            &heart_rate(BASE_MS + 5_000, 72),
        ))
        .await;
    match within("the PUBACK", device.recv_v5()).await {
        Some(v5::Packet::PubAck(a)) => {
            assert_eq!((a.pkid, a.reason), (7, v5::PubAckReason::Success))
        }
        other => panic!("expected PUBACK, got {other:?}"),
    }
    assert_eq!(stored(ward.store.as_ref(), "mon-1").len(), 1);
    ward.server.shutdown().await;
}

#[tokio::test]
async fn repeated_bad_secrets_raise_an_alert_without_quarantine() {
    let ward = Ward::start(|_| {}).await;
    let secret = register(ward.store.as_ref(), "p1", "mon-1");
    for _ in 0..5 {
        let (_, ack) = RawMqtt::connect_v4(ward.mqtt(), "guess", "mon-1", "wrong", 30).await;
        assert_eq!(ack.code, v4::ConnectReturnCode::BadUserNamePassword);
    }
    let alert = ward.alert("auth_failures").await;
    assert_eq!(alert["device"], "mon-1");
    assert_eq!(alert["count"], 5);
    assert_eq!(alert["quarantined"], false);
    // Someone guessing must not be able to lock the real device out.
    let (_, ack) = RawMqtt::connect_v4(ward.mqtt(), "mon-1", "mon-1", &secret, 30).await;
    assert_eq!(ack.code, v4::ConnectReturnCode::Success);
    // Not over HTTP either; and the detail names no secret.
    assert!(!alert["detail"].as_str().unwrap().contains("wrong"));
    // The alert is in the audit trail too, with Vigil's intrusion detection as the agent.
    let mut audited = Value::Null;
    for _ in 0..100 {
        let bundle: Value = ward
            .http
            .get(ward.url("/fhir/AuditEvent?action=security-alert"))
            .bearer_auth(&ward.admin)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if let Some(entry) = bundle["entry"].as_array().and_then(|e| e.first()) {
            audited = entry["resource"].clone();
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        audited["entity"][0]["what"]["reference"], "Device/mon-1",
        "{audited}"
    );
    assert!(!audited.to_string().contains("wrong"), "{audited}");
    ward.server.shutdown().await;
}

#[tokio::test]
async fn bad_device_secrets_over_http_count_too() {
    let ward = Ward::start(|c| {
        c.defence.intrusion.auth_failures_per_device.count = 3;
    })
    .await;
    register(ward.store.as_ref(), "p1", "mon-1");
    for _ in 0..3 {
        let r = ward
            .http
            .post(ward.url("/api/v1/devices/mon-1/obs"))
            .basic_auth("mon-1", Some("guess"))
            .body(heart_rate(BASE_MS, 70))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
    let alert = ward.alert("auth_failures").await;
    assert_eq!(alert["count"], 3);
    ward.server.shutdown().await;
}

#[tokio::test]
async fn a_burst_of_implausible_values_raises_an_alert() {
    let ward = Ward::start(|c| {
        c.defence.intrusion.implausible_values.count = 2;
    })
    .await;
    let secret = register(ward.store.as_ref(), "p1", "mon-1");
    let body = format!(
        r#"{{"ts":{BASE_MS},"obs":[{{"code":"heart_rate","value":9000}},{{"code":"spo2","value":400}}]}}"#
    );
    let r = ward
        .http
        .post(ward.url("/api/v1/devices/mon-1/obs"))
        .basic_auth("mon-1", Some(&secret))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let alert = ward.alert("implausible_values").await;
    assert_eq!(alert["device"], "mon-1");
    assert_eq!(alert["quarantined"], false);
    ward.server.shutdown().await;
}
