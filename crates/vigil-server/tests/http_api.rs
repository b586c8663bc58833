//! The HTTP API in-process (`api::app` and `tower::ServiceExt::oneshot`): authentication, the
//! FHIR Patient and Observation endpoints with their paging, access for patient-role tokens, and
//! the operator's endpoints.

mod common;

use std::collections::HashSet;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use base64::Engine;
use common::*;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;
use vigil_model::Patient;
use vigil_server::api::{AppState, app};
use vigil_server::auth::{Role, TokenKeys};
use vigil_server::pipeline::{Ingest, IngestWriter, PipelineConfig};
use vigil_store::Store;
use vigil_store::audit::AuditLog;
use vigil_store::sqlite::{SqliteAuditLog, SqliteStore};

const BASE: &str = "http://vigil.test";

struct Api {
    _dir: tempfile::TempDir,
    store: Arc<SqliteStore>,
    app: Router,
    tokens: TokenKeys,
    _writer: IngestWriter,
    _surveillance: vigil_server::surveillance::SurveillanceThread,
    audit_log: Arc<SqliteAuditLog>,
    _audit_writer: vigil_server::audit::AuditWriter,
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Api {
    fn new() -> Api {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
        let (surveillance, surveillance_thread) =
            vigil_server::surveillance::start(store.clone(), Default::default()).unwrap();
        let notify = surveillance.clone();
        let (ingest, writer) = Ingest::start_with_commit_hook(
            store.clone(),
            PipelineConfig::default(),
            Some(Box::new(move || notify.notify_committed())),
        )
        .unwrap();
        let tokens = TokenKeys::load_or_create(dir.path()).unwrap();
        let audit_log = Arc::new(SqliteAuditLog::open(dir.path()).unwrap());
        let (audit, audit_writer) = vigil_server::audit::Auditor::start(audit_log.clone()).unwrap();
        let state = Arc::new(AppState {
            store: store.clone(),
            ingest,
            limits: vigil_codecs::DecodeLimits::default(),
            tokens: tokens.clone(),
            metrics: vigil_server::telemetry::install(),
            fhir_base: format!("{BASE}/fhir"),
            surveillance,
            cohorts: Default::default(),
            broker: None,
            shutdown: Default::default(),
            oidc: None,
            secure_cookies: false,
            pseudonyms: vigil_server::auth::Pseudonyms::load_or_create(dir.path()).unwrap(),
            access_generation: Default::default(),
            cors_origins: Vec::new(),
            audit,
        });
        // The clinician these tests sign in as works at the central station: every patient.
        store
            .put_care_team(&vigil_model::CareTeam {
                id: vigil_model::CareTeamId::new("central").unwrap(),
                name: "Central monitoring".into(),
                members: vec![vigil_model::UserId::new("nadia").unwrap()],
                patients: vec![],
                wards: vec![],
                every_patient: true,
            })
            .unwrap();
        Api {
            _dir: dir,
            store,
            app: app(state),
            tokens,
            _surveillance: surveillance_thread,
            _writer: writer,
            audit_log,
            _audit_writer: audit_writer,
        }
    }

    fn token(&self, role: Role, subject: &str) -> String {
        self.tokens
            .issue(role, subject, chrono::Duration::hours(1))
            .unwrap()
    }

    fn clinician(&self) -> String {
        self.token(Role::Clinician, "nadia")
    }

    async fn call(
        &self,
        method: &str,
        uri: &str,
        authorization: Option<&str>,
        body: Option<String>,
    ) -> Reply {
        let uri = uri.strip_prefix(BASE).unwrap_or(uri);
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(auth) = authorization {
            request = request.header(header::AUTHORIZATION, auth);
        }
        let body = match body {
            Some(b) => {
                request = request.header(header::CONTENT_TYPE, "application/fhir+json");
                Body::from(b)
            }
            None => Body::empty(),
        };
        let response = self
            .app
            .clone()
            .oneshot(request.body(body).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Reply {
            status,
            headers,
            body,
        }
    }

    async fn get(&self, uri: &str, token: &str) -> Reply {
        self.call("GET", uri, Some(&format!("Bearer {token}")), None)
            .await
    }

    /// Sends device messages through the HTTP ingest endpoint, as the device would.
    async fn ingest(&self, device: &str, secret: &str, message: String) {
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{device}:{secret}"));
        let reply = self
            .call(
                "POST",
                &format!("/api/v1/devices/{device}/obs"),
                Some(&format!("Basic {basic}")),
                Some(message),
            )
            .await;
        assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
    }

    /// Follows `next` links from `uri` to the end; returns every resource in order and the
    /// number of pages.
    async fn all_pages(&self, uri: &str, token: &str) -> (Vec<Value>, usize) {
        let (mut resources, mut pages) = (Vec::new(), 0);
        let mut next = Some(uri.to_owned());
        while let Some(uri) = next.take() {
            let reply = self.get(&uri, token).await;
            assert_eq!(reply.status, StatusCode::OK, "{uri}: {}", reply.body);
            assert_eq!(reply.body["type"], "searchset");
            pages += 1;
            assert!(pages < 100, "paging does not end");
            resources.extend(entries(&reply.body));
            next = link(&reply.body, "next");
        }
        (resources, pages)
    }
}

fn entries(bundle: &Value) -> Vec<Value> {
    bundle["entry"]
        .as_array()
        .map(|e| e.iter().map(|e| e["resource"].clone()).collect())
        .unwrap_or_default()
}

fn link(bundle: &Value, relation: &str) -> Option<String> {
    bundle["link"]
        .as_array()?
        .iter()
        .find(|l| l["relation"] == relation)
        .map(|l| l["url"].as_str().unwrap().to_owned())
}

fn ids(resources: &[Value]) -> Vec<String> {
    resources
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

/// A message with a heart rate and an SpO2 taken at the same instant: two observations that tie
/// on time, so paging must order them by id.
fn two_readings(minute: i64) -> String {
    let ts = BASE_MS + minute * 60_000;
    format!(
        r#"{{"ts":{ts},"obs":[{{"code":"heart_rate","value":{}}},{{"code":"spo2","value":{}}}]}}"#,
        60 + minute % 30,
        90 + minute % 10
    )
}

/// p1 wears mon-1 (60 messages, 120 observations 2025-06-01T00:00 to 00:59); p2 wears mon-2 (5
/// messages, 10 observations).
async fn ward_with_readings() -> Api {
    let api = Api::new();
    let s1 = register(api.store.as_ref(), "p1", "mon-1");
    let s2 = register(api.store.as_ref(), "p2", "mon-2");
    for minute in 0..60 {
        api.ingest("mon-1", &s1, two_readings(minute)).await;
    }
    for minute in 0..5 {
        api.ingest("mon-2", &s2, two_readings(minute)).await;
    }
    api
}

fn effective(o: &Value) -> chrono::DateTime<chrono::FixedOffset> {
    chrono::DateTime::parse_from_rfc3339(o["effectiveDateTime"].as_str().unwrap()).unwrap()
}

fn numeric_id(o: &Value) -> i64 {
    o["id"].as_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn without_a_token_the_api_answers_401_with_an_operation_outcome_and_a_challenge() {
    let api = Api::new();
    let other_keys = TokenKeys::from_secret(&[9u8; 32]);
    let foreign = other_keys
        .issue(Role::Admin, "mallory", chrono::Duration::hours(1))
        .unwrap();
    let expired = api
        .tokens
        .issue(Role::Admin, "sam", chrono::Duration::hours(-2))
        .unwrap();
    for (authorization, invalid) in [
        (None, false),
        (Some("Basic bW9uLTE6c2VjcmV0".to_owned()), false),
        (Some("Bearer not-a-token".to_owned()), true),
        (Some(format!("Bearer {foreign}")), true),
        (Some(format!("Bearer {expired}")), true),
    ] {
        for uri in [
            "/fhir/Observation?patient=p1",
            "/fhir/Patient/p1",
            "/fhir/Device",
        ] {
            let reply = api.call("GET", uri, authorization.as_deref(), None).await;
            assert_eq!(
                reply.status,
                StatusCode::UNAUTHORIZED,
                "{uri} {authorization:?}"
            );
            assert_eq!(reply.body["resourceType"], "OperationOutcome");
            assert_eq!(reply.body["issue"][0]["code"], "login");
            let challenge = reply.headers[header::WWW_AUTHENTICATE].to_str().unwrap();
            assert!(challenge.starts_with("Bearer"), "{challenge}");
            assert_eq!(challenge.contains("invalid_token"), invalid, "{challenge}");
            assert!(
                reply.headers[header::CONTENT_TYPE]
                    .to_str()
                    .unwrap()
                    .starts_with("application/fhir+json")
            );
        }
    }
    let reply = api
        .call(
            "POST",
            "/fhir/Patient",
            None,
            Some(json!({"resourceType": "Patient"}).to_string()),
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);

    // The capability statement is public.
    let reply = api.call("GET", "/fhir/metadata", None, None).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["resourceType"], "CapabilityStatement");
    assert_eq!(reply.body["fhirVersion"], "4.0.1");
}

#[tokio::test]
async fn patients_are_created_read_updated_and_created_by_update() {
    let api = Api::new();
    let token = api.clinician();

    let created = api
        .call(
            "POST",
            "/fhir/Patient",
            Some(&format!("Bearer {token}")),
            Some(
                json!({"resourceType": "Patient", "name": [{"family": "Osei", "given": ["Kofi"]}],
                       "gender": "male", "birthDate": "1950-02-03"})
                .to_string(),
            ),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        created.headers[header::LOCATION],
        format!("{BASE}/fhir/Patient/{id}").as_str()
    );
    let read = api.get(&format!("/fhir/Patient/{id}"), &token).await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.body, created.body);
    assert_eq!(read.body["name"][0]["family"], "Osei");

    // Creating the same id again conflicts.
    let again = api
        .call(
            "POST",
            "/fhir/Patient",
            Some(&format!("Bearer {token}")),
            Some(json!({"resourceType": "Patient", "id": id, "name": [{"text": "X"}]}).to_string()),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.body);
    assert_eq!(again.body["resourceType"], "OperationOutcome");

    // Update.
    let mut changed = read.body.clone();
    changed["birthDate"] = json!("1951-03-04");
    let updated = api
        .call(
            "PUT",
            &format!("/fhir/Patient/{id}"),
            Some(&format!("Bearer {token}")),
            Some(changed.to_string()),
        )
        .await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.body);
    assert!(updated.headers.get(header::LOCATION).is_none());
    let read = api.get(&format!("/fhir/Patient/{id}"), &token).await;
    assert_eq!(read.body["birthDate"], "1951-03-04");

    // Update as create.
    let put_new = api
        .call(
            "PUT",
            "/fhir/Patient/new-1",
            Some(&format!("Bearer {token}")),
            Some(
                json!({"resourceType": "Patient", "id": "new-1", "name": [{"text": "Ada Novak"}]})
                    .to_string(),
            ),
        )
        .await;
    assert_eq!(put_new.status, StatusCode::CREATED, "{}", put_new.body);
    assert_eq!(
        put_new.headers[header::LOCATION],
        format!("{BASE}/fhir/Patient/new-1").as_str()
    );
    assert_eq!(
        api.get("/fhir/Patient/new-1", &token).await.status,
        StatusCode::OK
    );

    // A body whose id differs from the URL's is refused.
    let mismatch = api
        .call(
            "PUT",
            "/fhir/Patient/new-1",
            Some(&format!("Bearer {token}")),
            Some(
                json!({"resourceType": "Patient", "id": "new-2", "name": [{"text": "X"}]})
                    .to_string(),
            ),
        )
        .await;
    assert_eq!(mismatch.status, StatusCode::BAD_REQUEST);
    assert_eq!(mismatch.body["resourceType"], "OperationOutcome");

    assert_eq!(
        api.get("/fhir/Patient/nobody", &token).await.status,
        StatusCode::NOT_FOUND
    );
    // Patients may not write patients.
    let own = api.token(Role::Patient, "new-1");
    let refused = api
        .call(
            "PUT",
            "/fhir/Patient/new-1",
            Some(&format!("Bearer {own}")),
            Some(
                json!({"resourceType": "Patient", "id": "new-1", "name": [{"text": "Me"}]})
                    .to_string(),
            ),
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn patient_search_pages_by_offset_without_gaps_or_repeats() {
    let api = Api::new();
    let token = api.clinician();
    for i in 0..25 {
        api.store
            .create_patient(&Patient::new(
                pid(&format!("q-{i:02}")),
                format!("Quinn {i}"),
            ))
            .unwrap();
    }
    api.store
        .create_patient(&Patient::new(pid("other"), "Someone Else"))
        .unwrap();

    let first = api.get("/fhir/Patient?name=quinn&_count=10", &token).await;
    assert_eq!(first.status, StatusCode::OK);
    let next = link(&first.body, "next").expect("a next link");
    assert!(next.starts_with(&format!("{BASE}/fhir/Patient?")), "{next}");
    assert!(
        next.contains("_offset=10") && next.contains("name=quinn"),
        "{next}"
    );

    let (found, pages) = api
        .all_pages("/fhir/Patient?name=quinn&_count=10", &token)
        .await;
    assert_eq!(pages, 3);
    let expected: Vec<String> = (0..25).map(|i| format!("q-{i:02}")).collect();
    assert_eq!(ids(&found), expected, "ordered by id, each once");

    let (all, _) = api.all_pages("/fhir/Patient?_count=7", &token).await;
    assert_eq!(all.len(), 26);
}

#[tokio::test]
async fn observation_search_pages_through_everything_in_both_orders() {
    let api = ward_with_readings().await;
    let token = api.clinician();

    let (oldest_first, pages) = api
        .all_pages(
            "/fhir/Observation?patient=p1&device=mon-1&_count=50",
            &token,
        )
        .await;
    assert_eq!(pages, 3, "50 + 50 + 20");
    assert_eq!(oldest_first.len(), 120);
    assert_eq!(
        ids(&oldest_first).into_iter().collect::<HashSet<_>>().len(),
        120,
        "no repeats"
    );
    for pair in oldest_first.windows(2) {
        let key = |o: &Value| (effective(o), numeric_id(o));
        assert!(
            key(&pair[0]) < key(&pair[1]),
            "{} then {}",
            pair[0]["id"],
            pair[1]["id"]
        );
    }
    assert!(
        oldest_first
            .iter()
            .all(|o| o["subject"]["reference"] == "Patient/p1")
    );

    let (newest_first, pages) = api
        .all_pages(
            "/fhir/Observation?patient=p1&device=mon-1&_count=50&_sort=-date",
            &token,
        )
        .await;
    assert_eq!(pages, 3);
    let mut reversed = ids(&newest_first);
    reversed.reverse();
    assert_eq!(reversed, ids(&oldest_first), "the exact reverse order");

    // Pages that split the observations sharing an instant lose and repeat nothing either.
    for sort in ["date", "-date"] {
        let (small, pages) = api
            .all_pages(
                &format!("/fhir/Observation?patient=p1&device=mon-1&_count=7&_sort={sort}"),
                &token,
            )
            .await;
        assert_eq!(pages, 18);
        let expected = if sort == "date" {
            &oldest_first
        } else {
            &newest_first
        };
        assert_eq!(ids(&small), ids(expected), "{sort}");
    }

    // The next link keeps the search: a code filter stays applied on every page.
    let (heart, _) = api
        .all_pages(
            "/fhir/Observation?patient=p1&code=http://loinc.org|8867-4&_count=25",
            &token,
        )
        .await;
    assert_eq!(heart.len(), 60);
    assert!(
        heart
            .iter()
            .all(|o| o["code"]["coding"][0]["code"] == "8867-4")
    );
}

#[tokio::test]
async fn observation_search_by_date_honours_each_prefix() {
    let api = ward_with_readings().await;
    let token = api.clinician();
    // Two observations a minute from 2025-06-01T00:00:00Z to 00:59:00Z.
    for (date, expected) in [
        ("ge2025-06-01T00:30:00Z", 60),
        ("gt2025-06-01T00:30:00Z", 58),
        ("le2025-06-01T00:10:00Z", 22),
        ("lt2025-06-01T00:10:00Z", 20),
        ("eq2025-06-01T00:10:00Z", 2),
        ("2025-06-01T00:10", 2),
        ("2025-06-01", 120),
        ("2025-06", 120),
        ("2025-06-02", 0),
        ("lt2025-06-01", 0),
        ("gt2025-05-31", 120),
        // An offset: 01:10 at +01:00 is 00:10 UTC.
        ("ge2025-06-01T01:10:00%2B01:00", 100),
    ] {
        let reply = api
            .get(
                &format!("/fhir/Observation?patient=p1&device=mon-1&date={date}&_count=1000"),
                &token,
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{date}: {}", reply.body);
        assert_eq!(entries(&reply.body).len(), expected, "date={date}");
    }
    // Two bounds intersect.
    let reply = api
        .get(
            "/fhir/Observation?patient=p1&device=mon-1&date=ge2025-06-01T00:10:00Z&date=lt2025-06-01T00:20:00Z&_count=1000",
            &token,
        )
        .await;
    assert_eq!(entries(&reply.body).len(), 20);
    // Prefixes Vigil does not implement, and a malformed date, are refused.
    for date in ["sa2025-06-01", "ap2025-06-01", "xx2025", "2025-13-01"] {
        let reply = api
            .get(&format!("/fhir/Observation?patient=p1&date={date}"), &token)
            .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{date}");
        assert_eq!(reply.body["resourceType"], "OperationOutcome");
    }
}

#[tokio::test]
async fn an_unknown_search_parameter_is_refused_naming_the_supported_ones() {
    let api = Api::new();
    let token = api.clinician();
    let reply = api
        .get("/fhir/Observation?patient=p1&colour=red", &token)
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.body["resourceType"], "OperationOutcome");
    assert_eq!(reply.body["issue"][0]["code"], "not-supported");
    let diagnostics = reply.body["issue"][0]["diagnostics"].as_str().unwrap();
    assert!(diagnostics.contains("colour"), "{diagnostics}");
    for supported in vigil_fhir::search::OBSERVATION_PARAMETERS {
        assert!(
            diagnostics.contains(supported),
            "{supported} missing: {diagnostics}"
        );
    }
    let reply = api.get("/fhir/Patient?colour=red", &token).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let diagnostics = reply.body["issue"][0]["diagnostics"].as_str().unwrap();
    for supported in vigil_fhir::search::PATIENT_PARAMETERS {
        assert!(
            diagnostics.contains(supported),
            "{supported} missing: {diagnostics}"
        );
    }
}

#[tokio::test]
async fn a_patient_token_sees_only_its_own_data() {
    let api = ward_with_readings().await;
    // Enough other patients that p1 is not on the first page of an unfiltered search.
    for i in 0..60 {
        api.store
            .create_patient(&Patient::new(
                pid(&format!("a-{i:02}")),
                format!("Ahead {i}"),
            ))
            .unwrap();
    }
    let own = api.token(Role::Patient, "p1");

    // Searches without a patient are filtered to the caller, not refused.
    let (observations, _) = api
        .all_pages("/fhir/Observation?device=mon-1&_count=50", &own)
        .await;
    assert_eq!(observations.len(), 120);
    assert!(
        observations
            .iter()
            .all(|o| o["subject"]["reference"] == "Patient/p1")
    );
    let (patients, _) = api.all_pages("/fhir/Patient", &own).await;
    assert_eq!(ids(&patients), ["p1"]);
    let (devices, _) = api.all_pages("/fhir/Device", &own).await;
    assert_eq!(ids(&devices), ["mon-1"]);

    // Their own data by name is fine.
    assert_eq!(
        api.get("/fhir/Patient/p1", &own).await.status,
        StatusCode::OK
    );
    assert_eq!(
        api.get("/fhir/Device/mon-1", &own).await.status,
        StatusCode::OK
    );
    let (mine, _) = api
        .all_pages("/fhir/Observation?patient=p1&device=mon-1", &own)
        .await;
    assert_eq!(mine.len(), 120);
    let my_observation = api
        .get(
            &format!("/fhir/Observation/{}", mine[0]["id"].as_str().unwrap()),
            &own,
        )
        .await;
    assert_eq!(my_observation.status, StatusCode::OK);

    // Anyone else's is forbidden.
    let clinician = api.clinician();
    let (theirs, _) = api
        .all_pages("/fhir/Observation?patient=p2&device=mon-2", &clinician)
        .await;
    assert_eq!(theirs.len(), 10);
    for uri in [
        "/fhir/Patient/p2".to_owned(),
        "/fhir/Device/mon-2".to_owned(),
        "/fhir/Observation?patient=p2".to_owned(),
        "/fhir/Device?patient=p2".to_owned(),
        format!("/fhir/Observation/{}", theirs[0]["id"].as_str().unwrap()),
    ] {
        let reply = api.get(&uri, &own).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{uri}");
        assert_eq!(reply.body["resourceType"], "OperationOutcome");
    }
    // Searching another patient by identifier finds nothing rather than leaking.
    let reply = api.get("/fhir/Patient?identifier=p2", &own).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(entries(&reply.body).is_empty());
}

#[tokio::test]
async fn operator_endpoints_answer() {
    let api = ward_with_readings().await;
    let ready = api.call("GET", "/readyz", None, None).await;
    assert_eq!(ready.status, StatusCode::OK);
    let health = api.call("GET", "/healthz", None, None).await;
    assert_eq!(health.status, StatusCode::OK);
    let metrics = api.call("GET", "/metrics", None, None).await;
    assert_eq!(metrics.status, StatusCode::OK);
    let text = metrics.body.as_str().unwrap();
    assert!(
        text.contains("vigil_readings_accepted_total{source=\"http\"}"),
        "{text}"
    );
    // No identifiers in metrics (house rule 7).
    for id in ["p1", "p2", "mon-1", "mon-2"] {
        assert!(!text.contains(id), "{id} leaked into metrics");
    }
    let missing = api.call("GET", "/nowhere", None, None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(
        missing.headers[header::CONTENT_TYPE],
        "application/problem+json"
    );
}

#[tokio::test]
async fn refused_messages_are_kept_with_their_reason_for_administrators_only() {
    let api = Api::new();
    let secret = register(api.store.as_ref(), "p1", "mon-1");
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("mon-1:{secret}"));
    // Refused whole (not JSON), and in part (one implausible reading beside a good one).
    for body in [
        "{not json".to_owned(),
        r#"{"ts":1748736000000,"obs":[{"code":"heart_rate","value":70},{"code":"spo2","value":140}]}"#
            .to_owned(),
    ] {
        api.call(
            "POST",
            "/api/v1/devices/mon-1/obs",
            Some(&format!("Basic {basic}")),
            Some(body),
        )
        .await;
    }
    eventually("two refusals in the log", || {
        let n = api
            .store
            .refusals(&vigil_store::RefusalQuery {
                limit: 10,
                ..Default::default()
            })
            .unwrap()
            .len();
        (n == 2).then_some(())
    })
    .await;
    let admin = api.token(Role::Admin, "ops");
    let reply = api.get("/api/v1/refused?device=mon-1", &admin).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let refused = reply.body["refused"].as_array().unwrap();
    assert_eq!(refused.len(), 2);
    // Newest first: the partly refused message.
    assert_eq!(refused[0]["kind"], "implausible_value");
    assert_eq!(refused[0]["whole"], false);
    assert!(
        refused[0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("/obs/1: ")
    );
    assert_eq!(refused[0]["source"], "http");
    assert_eq!(refused[1]["kind"], "not_json");
    assert_eq!(refused[1]["whole"], true);
    assert_eq!(refused[1]["payload"], "{not json");
    let only_http = api.get("/api/v1/refused?source=mqtt", &admin).await;
    assert!(only_http.body["refused"].as_array().unwrap().is_empty());
    let reply = api.get("/api/v1/refused", &api.clinician()).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
}

/// The AuditEvents a FHIR search of the audit finds.
async fn audit_events(api: &Api, admin: &str, query: &str) -> Vec<Value> {
    let reply = api.get(&format!("/fhir/AuditEvent?{query}"), admin).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["type"], "searchset");
    entries(&reply.body)
}

fn vigil_action(event: &Value) -> String {
    event["subtype"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["system"] == "urn:vigil:audit-action")
        .map(|c| c["code"].as_str().unwrap().to_owned())
        .unwrap()
}

#[tokio::test]
async fn credential_changes_refused_devices_and_alarm_actions_are_audited_for_admins_and_patients()
{
    use vigil_store::audit::{AuditLog, Verification, verify};

    let api = Api::new();
    api.store
        .create_patient(&Patient::new(pid("p1"), "Jan Havel"))
        .unwrap();
    let admin = api.token(Role::Admin, "root");
    let bearer = |t: &str| format!("Bearer {t}");

    let registered = api
        .call(
            "POST",
            "/api/v1/devices",
            Some(&bearer(&admin)),
            Some(
                json!({"id": "mon-1", "type": "multiparameter-monitor", "patient": "p1"})
                    .to_string(),
            ),
        )
        .await;
    assert_eq!(
        registered.status,
        StatusCode::CREATED,
        "{}",
        registered.body
    );
    let old_secret = registered.body["secret"].as_str().unwrap().to_owned();
    let rotated = api
        .call(
            "POST",
            "/api/v1/devices/mon-1/secret",
            Some(&bearer(&admin)),
            None,
        )
        .await;
    assert_eq!(rotated.status, StatusCode::OK);
    // The old secret no longer works, and the refusal is audited.
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("mon-1:{old_secret}"));
    let refused = api
        .call(
            "POST",
            "/api/v1/devices/mon-1/obs",
            Some(&format!("Basic {basic}")),
            Some(two_readings(0)),
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    // Acknowledging an alarm that does not exist is audited as a failed acknowledgement.
    let ack = api
        .call(
            "POST",
            "/api/v1/alerts/999/ack",
            Some(&bearer(&api.clinician())),
            None,
        )
        .await;
    assert_eq!(ack.status, StatusCode::NOT_FOUND);

    // Only administrators search the audit; the refusal is itself audited.
    let denied = api.get("/fhir/AuditEvent", &api.clinician()).await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    assert_eq!(denied.body["resourceType"], "OperationOutcome");

    let all = audit_events(&api, &admin, "_count=100").await;
    let actions: Vec<String> = all.iter().map(vigil_action).collect();
    assert_eq!(
        actions,
        [
            "permission-denied",
            "alarm-acknowledge",
            // The clinician's token, first used for the acknowledgement.
            "token-use",
            "login-failed",
            "credential-change",
            "credential-change",
            // The administrator's token, first used to register the device.
            "token-use",
        ],
        "newest first"
    );
    let failed_login = &all[3];
    assert_eq!(failed_login["agent"][0]["who"]["reference"], "Device/mon-1");
    assert_eq!(failed_login["outcome"], "4");
    assert_eq!(failed_login["outcomeDesc"], "bad_secret");
    let ack_event = &all[1];
    assert_eq!(ack_event["outcome"], "4");
    assert_eq!(ack_event["agent"][0]["who"]["identifier"]["value"], "nadia");
    assert_eq!(ack_event["entity"][0]["what"]["display"], "Alarm 999");

    // Filters and paging: the two credential changes, one per page, registration last.
    let first = api
        .get("/fhir/AuditEvent?action=credential-change&_count=1", &admin)
        .await;
    assert_eq!(entries(&first.body)[0]["outcomeDesc"], "secret rotated");
    let next = link(&first.body, "next").expect("a second page");
    let second = api.get(&next, &admin).await;
    let registration = &entries(&second.body)[0];
    assert_eq!(registration["outcomeDesc"], "registered");
    assert_eq!(registration["entity"][0]["what"]["reference"], "Patient/p1");
    assert_eq!(
        registration["entity"][1]["what"]["reference"],
        "Device/mon-1"
    );
    let by_patient = audit_events(&api, &admin, "patient=p1").await;
    assert_eq!(
        by_patient.len(),
        1,
        "only the registration bound a device to p1"
    );
    let id = registration["id"].as_str().unwrap();
    let read = api.get(&format!("/fhir/AuditEvent/{id}"), &admin).await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(&read.body, registration);
    let missing = api.get("/fhir/AuditEvent/99999", &admin).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let bad = api.get("/fhir/AuditEvent?action=R", &admin).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);

    // The patient sees who touched their record; another patient may not look.
    let own = api
        .get(
            "/api/v1/patients/p1/disclosures",
            &api.token(Role::Patient, "p1"),
        )
        .await;
    assert_eq!(own.status, StatusCode::OK, "{}", own.body);
    let list = own.body["disclosures"].as_array().unwrap();
    // The newest is the admin's audit search for p1 above; reading the audit is audited.
    assert_eq!(list[0]["who"]["id"], "root");
    assert_eq!(list[0]["action"], "search");
    assert_eq!(list[1]["action"], "credential-change");
    assert_eq!(list[1]["who"]["role"], "admin");
    let other = api
        .get(
            "/api/v1/patients/p1/disclosures",
            &api.token(Role::Patient, "p2"),
        )
        .await;
    assert_eq!(other.status, StatusCode::FORBIDDEN);

    // The patient's own look was recorded too, and the chain holds.
    let latest = api
        .audit_log
        .search(&vigil_store::audit::AuditQuery {
            limit: 3,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(latest[0].entry.action.code(), "permission-denied");
    assert_eq!(latest[1].entry.action.code(), "token-use");
    assert_eq!(latest[1].entry.agent.id, "p2");
    assert_eq!(latest[2].entry.agent.id, "p1");
    assert!(matches!(
        verify(api.audit_log.as_ref()).unwrap(),
        Verification::Intact { .. }
    ));
}

/// Reads the SSE body until an event of `kind` arrives (or the stream ends: `None`).
async fn next_event(body: &mut Body, kind: &str) -> Option<String> {
    let mut text = String::new();
    loop {
        let frame = tokio::time::timeout(std::time::Duration::from_secs(10), body.frame())
            .await
            .expect("an event within 10 s")?
            .ok()?;
        if let Some(data) = frame.data_ref() {
            text.push_str(&String::from_utf8_lossy(data));
        }
        while let Some(end) = text.find("\n\n") {
            let event: String = text.drain(..end + 2).collect();
            if event.lines().any(|l| l == format!("event: {kind}")) {
                return Some(event);
            }
        }
    }
}

#[tokio::test]
async fn revoking_a_consent_ends_what_an_open_stream_shows_at_once() {
    let api = Api::new();
    let secret = register(api.store.as_ref(), "p1", "mon-1");
    let own = api.token(Role::Patient, "p1");
    let consent = api
        .call(
            "POST",
            "/fhir/Consent",
            Some(&format!("Bearer {own}")),
            Some(
                json!({
                    "resourceType": "Consent",
                    "status": "active",
                    "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
                    "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
                    "patient": {"reference": "Patient/p1"},
                    "provision": {"type": "permit", "actor": [{"reference": {"reference": "RelatedPerson/eva"}}]}
                })
                .to_string(),
            ),
        )
        .await;
    assert_eq!(consent.status, StatusCode::CREATED, "{}", consent.body);
    let consent_id = consent.body["id"].as_str().unwrap().to_owned();

    // Eva follows p1's live stream.
    let eva = api.token(Role::Caregiver, "eva");
    let request = Request::builder()
        .uri("/api/v1/stream?patient=p1")
        .header(header::AUTHORIZATION, format!("Bearer {eva}"))
        .body(Body::empty())
        .unwrap();
    let response = api.app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    assert!(next_event(&mut body, "ready").await.is_some());
    api.ingest("mon-1", &secret, two_readings(1)).await;
    assert!(
        next_event(&mut body, "observation").await.is_some(),
        "shared: eva sees p1's readings live"
    );

    // p1 revokes; the next event ends eva's stream instead of reaching her.
    let revoked = api
        .call(
            "DELETE",
            &format!("/fhir/Consent/{consent_id}"),
            Some(&format!("Bearer {own}")),
            None,
        )
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT, "{}", revoked.body);
    api.ingest("mon-1", &secret, two_readings(2)).await;
    let ended = next_event(&mut body, "access-ended").await;
    assert!(ended.is_some(), "the stream says access ended");
    assert!(
        next_event(&mut body, "observation").await.is_none(),
        "and carries nothing more"
    );
    // A new stream is refused outright.
    assert_eq!(
        api.get("/api/v1/stream?patient=p1", &eva).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        api.get("/fhir/Observation?patient=p1", &eva).await.status,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn every_health_data_endpoint_writes_an_audit_entry_naming_the_patient() {
    let api = ward_with_readings().await;
    let nurse = api.clinician();
    // The token's first use is recorded once; each request below then adds exactly one entry.
    assert_eq!(
        api.get("/fhir/metadata", &nurse).await.status,
        StatusCode::OK
    );
    let observation = entries(
        &api.get("/fhir/Observation?patient=p1&_count=1", &nurse)
            .await
            .body,
    )[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for (uri, action) in [
        ("/fhir/Patient/p1".to_owned(), "read"),
        ("/fhir/Patient?name=Patient".to_owned(), "search"),
        ("/fhir/Observation?patient=p1".to_owned(), "search"),
        (format!("/fhir/Observation/{observation}"), "read"),
        ("/fhir/Device/mon-1".to_owned(), "read"),
        ("/fhir/Device?patient=p1".to_owned(), "search"),
        ("/fhir/Flag?patient=p1".to_owned(), "search"),
        ("/fhir/Consent?patient=p1".to_owned(), "search"),
        ("/api/v1/patients/p1/news2".to_owned(), "read"),
        ("/api/v1/patients/p1/settings".to_owned(), "read"),
        ("/api/v1/alerts?patient=p1".to_owned(), "search"),
    ] {
        let before = api
            .audit_log
            .search(&vigil_store::audit::AuditQuery {
                limit: 1,
                ..Default::default()
            })
            .unwrap()[0]
            .seq;
        let reply = api.get(&uri, &nurse).await;
        assert_eq!(reply.status, StatusCode::OK, "{uri}: {}", reply.body);
        let newest = api
            .audit_log
            .search(&vigil_store::audit::AuditQuery {
                limit: 2,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(newest[0].seq, before + 1, "{uri}: exactly one entry");
        let entry = &newest[0].entry;
        assert_eq!(entry.action.code(), action, "{uri}");
        assert_eq!(entry.agent.id, "nadia", "{uri}");
        assert!(
            entry.patients.iter().any(|p| p.as_str() == "p1"),
            "{uri}: names the patient ({:?})",
            entry.patients
        );
    }
}

#[tokio::test]
async fn a_clinician_breaks_the_glass_with_a_reason_and_it_is_reviewed() {
    let api = ward_with_readings().await;
    let er = api.token(Role::Clinician, "dr.er");
    assert_eq!(
        api.get("/fhir/Patient/p1", &er).await.status,
        StatusCode::FORBIDDEN,
        "not on p1's care teams"
    );
    let ask = |reason: &str| {
        let body = json!({ "reason": reason }).to_string();
        let er = er.clone();
        let api = &api;
        async move {
            api.call(
                "POST",
                "/api/v1/patients/p1/emergency-access",
                Some(&format!("Bearer {er}")),
                Some(body),
            )
            .await
        }
    };
    assert_eq!(
        ask("because").await.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a reason is required"
    );
    let granted = ask("collapsed in the corridor, no team reachable").await;
    assert_eq!(granted.status, StatusCode::CREATED, "{}", granted.body);
    let hours = (chrono::DateTime::parse_from_rfc3339(granted.body["end"].as_str().unwrap())
        .unwrap()
        - chrono::DateTime::parse_from_rfc3339(granted.body["start"].as_str().unwrap()).unwrap())
    .num_hours();
    assert_eq!(hours, 4);
    assert_eq!(
        api.get("/fhir/Patient/p1", &er).await.status,
        StatusCode::OK
    );
    assert_eq!(
        api.get("/fhir/Observation?patient=p1", &er).await.status,
        StatusCode::OK
    );
    assert_eq!(
        api.get("/fhir/Patient/p2", &er).await.status,
        StatusCode::FORBIDDEN,
        "only the patient named"
    );
    // Only clinicians break the glass.
    let family = api.token(Role::Caregiver, "eva");
    let refused = api
        .call(
            "POST",
            "/api/v1/patients/p1/emergency-access",
            Some(&format!("Bearer {family}")),
            Some(json!({"reason": "I am worried about my mother"}).to_string()),
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    // Administrators review every use, with its reason; the audit trail has it too.
    let admin = api.token(Role::Admin, "root");
    let review = api.get("/api/v1/emergency-access", &admin).await;
    assert_eq!(review.status, StatusCode::OK);
    let list = review.body["emergency_access"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["clinician"], "dr.er");
    assert_eq!(
        list[0]["reason"],
        "collapsed in the corridor, no team reachable"
    );
    assert_eq!(
        api.get("/api/v1/emergency-access", &er).await.status,
        StatusCode::FORBIDDEN
    );
    let events = audit_events(&api, &admin, "action=execute").await;
    assert!(
        events.iter().any(|e| e["outcomeDesc"]
            .as_str()
            .is_some_and(|d| d.contains("collapsed in the corridor"))),
        "{events:?}"
    );
}

#[tokio::test]
async fn a_series_is_summarised_into_at_most_the_points_asked_for() {
    // p1: heart rates 60..89 and SpO2s, one pair a minute for an hour from BASE_MS.
    let api = ward_with_readings().await;
    let nurse = api.clinician();
    let from = chrono::DateTime::from_timestamp_millis(BASE_MS).unwrap();
    let to = from + chrono::Duration::hours(1);
    let uri = |points: u32| {
        format!(
            "/api/v1/patients/p1/series?code=heart_rate&from={}&to={}&points={points}",
            url::form_urlencoded::byte_serialize(from.to_rfc3339().as_bytes()).collect::<String>(),
            url::form_urlencoded::byte_serialize(to.to_rfc3339().as_bytes()).collect::<String>()
        )
    };
    let reply = api.get(&uri(6), &nurse).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["unit"], "/min");
    assert_eq!(reply.body["bucket_seconds"], 600.0);
    let buckets = reply.body["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 6);
    let counts: u64 = buckets.iter().map(|b| b["count"].as_u64().unwrap()).sum();
    assert_eq!(counts, 60, "every reading in exactly one bucket");
    // Minutes 0-9 carry 60..69.
    assert_eq!(
        (buckets[0]["min"].as_f64(), buckets[0]["max"].as_f64()),
        (Some(60.0), Some(69.0))
    );
    // Bad parameters are refused, not guessed; a patient's record needs access like any read.
    assert_eq!(
        api.get(&uri(0), &nurse).await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        api.get("/api/v1/patients/p1/series?code=colour", &nurse)
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    let other = api.token(Role::Patient, "p2");
    assert_eq!(api.get(&uri(6), &other).await.status, StatusCode::FORBIDDEN);
}
