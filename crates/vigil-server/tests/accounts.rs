//! Who may sign in and what they then see, in-process (`api::app` and `tower`'s `oneshot`):
//! browser sessions (login, the cookie, CSRF, lockout, logout, timeouts, disabled accounts),
//! OpenID Connect bearer tokens checked against a JWKS file, SMART scopes on Vigil's own tokens,
//! patients' consents to caregivers, and the researcher's de-identified view.

mod common;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;
use http_body_util::BodyExt;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tower::ServiceExt;
use vigil_model::{Patient, UserId};
use vigil_server::api::{AppState, app};
use vigil_server::auth::oidc::{JwksSource, OidcConfig, OidcVerifier};
use vigil_server::auth::{Role, Scopes, TokenGrant, TokenKeys, password, session};
use vigil_store::sqlite::{SqliteAuditLog, SqliteStore};
use vigil_store::{Store, UserAccount};

const ISSUER: &str = "https://idp.test/realms/ward";
const AUDIENCE: &str = "vigil";
const KID: &str = "ward-key-1";
const PASSWORD: &str = "correct horse battery staple";

struct Api {
    _dir: tempfile::TempDir,
    store: Arc<SqliteStore>,
    app: Router,
    tokens: TokenKeys,
    _writer: vigil_server::pipeline::IngestWriter,
    _surveillance: vigil_server::surveillance::SurveillanceThread,
    _audit_writer: vigil_server::audit::AuditWriter,
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

/// What a request carries besides its method and path.
#[derive(Default)]
struct Sent<'a> {
    bearer: Option<&'a str>,
    cookie: Option<&'a str>,
    csrf: Option<&'a str>,
    body: Option<Value>,
}

impl Api {
    fn new(secure_cookies: bool, oidc: Option<Arc<OidcVerifier>>) -> Api {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
        let (surveillance, surveillance_thread) =
            vigil_server::surveillance::start(store.clone(), Default::default()).unwrap();
        let notify = surveillance.clone();
        let (ingest, writer) = vigil_server::pipeline::Ingest::start_with_commit_hook(
            store.clone(),
            Default::default(),
            Some(Box::new(move || notify.notify_committed())),
        )
        .unwrap();
        let tokens = TokenKeys::load_or_create(dir.path()).unwrap();
        let audit_log = Arc::new(SqliteAuditLog::open(dir.path()).unwrap());
        let (audit, audit_writer) = vigil_server::audit::Auditor::start(audit_log).unwrap();
        let state = Arc::new(AppState {
            store: store.clone(),
            ingest,
            limits: vigil_codecs::DecodeLimits::default(),
            tokens: tokens.clone(),
            metrics: vigil_server::telemetry::install(),
            fhir_base: "http://vigil.test/fhir".into(),
            surveillance,
            cohorts: Default::default(),
            broker: None,
            shutdown: Default::default(),
            oidc,
            secure_cookies,
            pseudonyms: vigil_server::auth::Pseudonyms::load_or_create(dir.path()).unwrap(),
            access_generation: Default::default(),
            cors_origins: Vec::new(),
            audit,
        });
        // Nadia works at the central station: every patient.
        store
            .put_care_team(&vigil_model::CareTeam {
                id: vigil_model::CareTeamId::new("central").unwrap(),
                name: "Central monitoring".into(),
                members: vec![UserId::new("nadia").unwrap()],
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
            _writer: writer,
            _surveillance: surveillance_thread,
            _audit_writer: audit_writer,
        }
    }

    /// p1 (born 1948-03-14, MRN 100001) wears mon-1 and p2 (MRN 100002) wears mon-2; three heart
    /// rates each.
    async fn ward(secure_cookies: bool, oidc: Option<Arc<OidcVerifier>>) -> Api {
        let api = Api::new(secure_cookies, oidc);
        for (id, name, mrn, born) in [
            ("p1", "Jan Havel", "100001", "1948-03-14"),
            ("p2", "Eva Novak", "100002", "1952-11-30"),
        ] {
            let mut p = Patient::new(pid(id), name);
            p.family = name.split(' ').nth(1).map(str::to_owned);
            p.given = vec![name.split(' ').next().unwrap().to_owned()];
            p.mrn = Some(mrn.into());
            p.birth_date = Some(born.parse().unwrap());
            api.store.create_patient(&p).unwrap();
        }
        for (patient, device) in [("p1", "mon-1"), ("p2", "mon-2")] {
            let secret = register(api.store.as_ref(), patient, device);
            for minute in 0..3 {
                api.ingest(device, &secret, heart_rate(BASE_MS + minute * 60_000, 70))
                    .await;
            }
        }
        api
    }

    fn account(&self, id: &str, role: &str, patient: Option<&str>) {
        self.store
            .create_user(&UserAccount {
                id: UserId::new(id).unwrap(),
                display_name: id.into(),
                role: role.into(),
                password_hash: Some(password::hash(PASSWORD).unwrap()),
                patient: patient.map(pid),
                organization: None,
                failed_logins: 0,
                locked_until: None,
                disabled: false,
                created_at: chrono::Utc::now(),
            })
            .unwrap();
    }

    fn token(&self, role: Role, subject: &str) -> String {
        self.tokens
            .issue(role, subject, chrono::Duration::hours(1))
            .unwrap()
    }

    async fn send(&self, method: &str, uri: &str, sent: Sent<'_>) -> Reply {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(token) = sent.bearer {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        if let Some(cookie) = sent.cookie {
            request = request.header(header::COOKIE, format!("{}={cookie}", session::COOKIE));
        }
        if let Some(csrf) = sent.csrf {
            request = request.header(session::CSRF_HEADER, csrf);
        }
        let body = match sent.body {
            Some(b) => {
                let kind = if uri.starts_with("/fhir") {
                    "application/fhir+json"
                } else {
                    "application/json"
                };
                request = request.header(header::CONTENT_TYPE, kind);
                Body::from(b.to_string())
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

    async fn get(&self, uri: &str, bearer: &str) -> Reply {
        self.send(
            "GET",
            uri,
            Sent {
                bearer: Some(bearer),
                ..Sent::default()
            },
        )
        .await
    }

    async fn post(&self, uri: &str, bearer: &str, body: Value) -> Reply {
        self.send(
            "POST",
            uri,
            Sent {
                bearer: Some(bearer),
                body: Some(body),
                ..Sent::default()
            },
        )
        .await
    }

    async fn login(&self, username: &str, password: &str) -> Reply {
        self.send(
            "POST",
            "/api/v1/login",
            Sent {
                body: Some(json!({"username": username, "password": password})),
                ..Sent::default()
            },
        )
        .await
    }

    async fn with_cookie(
        &self,
        method: &str,
        uri: &str,
        cookie: &str,
        csrf: Option<&str>,
    ) -> Reply {
        let body = (method == "POST" && uri == "/fhir/Patient")
            .then(|| json!({"resourceType": "Patient", "name": [{"text": "Ida Kral"}]}));
        self.send(
            method,
            uri,
            Sent {
                cookie: Some(cookie),
                csrf,
                body,
                ..Sent::default()
            },
        )
        .await
    }

    async fn ingest(&self, device: &str, secret: &str, message: String) {
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{device}:{secret}"));
        let response = self
            .app
            .clone()
            .oneshot(
                Request::builder()
                    .method("POST")
                    .uri(format!("/api/v1/devices/{device}/obs"))
                    .header(header::AUTHORIZATION, format!("Basic {basic}"))
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Body::from(message))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::ACCEPTED);
    }
}

fn entries(bundle: &Value) -> Vec<Value> {
    bundle["entry"]
        .as_array()
        .map(|e| e.iter().map(|e| e["resource"].clone()).collect())
        .unwrap_or_default()
}

/// The heart rates among a search's results (the ward's devices sent three per patient; Vigil
/// adds derived observations such as scores beside them).
fn heart_rates(bundle: &Value) -> usize {
    entries(bundle)
        .iter()
        .filter(|o| o["code"]["coding"][0]["code"] == "8867-4")
        .count()
}

/// The session cookie's value in a login's `Set-Cookie`.
fn session_cookie(reply: &Reply) -> String {
    let set = reply.headers[header::SET_COOKIE].to_str().unwrap();
    let (pair, _) = set.split_once(';').unwrap();
    let (name, value) = pair.split_once('=').unwrap();
    assert_eq!(name, session::COOKIE);
    value.to_owned()
}

fn heart_rate_observation(patient: &str) -> Value {
    json!({
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": {"reference": format!("Patient/{patient}")},
        "effectiveDateTime": "2025-06-01T01:00:00Z",
        "device": {"reference": "Device/mon-1"},
        "valueQuantity": {"value": 72, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"}
    })
}

// ---- Browser sessions ----

#[tokio::test]
async fn a_login_starts_a_strict_http_only_session_whose_changes_need_the_csrf_token() {
    let api = Api::ward(false, None).await;
    api.account("nadia", "clinician", None);

    let login = api.login("nadia", PASSWORD).await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
    let set = login.headers[header::SET_COOKIE].to_str().unwrap();
    for part in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.split("; ").any(|p| p == part), "{part} in {set}");
    }
    assert!(!set.contains("Secure"), "plain HTTP: no Secure ({set})");
    assert_eq!(login.body["account"], "nadia");
    assert_eq!(login.body["role"], "clinician");
    let csrf = login.body["csrf_token"].as_str().unwrap().to_owned();
    let cookie = session_cookie(&login);
    assert!(cookie.len() >= 32 && csrf.len() >= 32);
    assert_ne!(cookie, csrf);
    assert!(
        !login.body.to_string().contains(&cookie),
        "the session token is only in the HttpOnly cookie"
    );

    let me = api
        .with_cookie("GET", "/api/v1/session", &cookie, None)
        .await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.body);
    assert_eq!(me.body["subject"], "nadia");
    assert_eq!(me.body["role"], "clinician");
    // Reading needs no CSRF token.
    let read = api
        .with_cookie("GET", "/fhir/Observation?patient=p1", &cookie, None)
        .await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.body);
    assert_eq!(heart_rates(&read.body), 3);

    // A change without the token, or with another one, is refused as unauthenticated.
    for presented in [None, Some("0".repeat(64)), Some(format!("{csrf}x"))] {
        let refused = api
            .with_cookie("POST", "/fhir/Patient", &cookie, presented.as_deref())
            .await;
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{presented:?}");
        assert_eq!(refused.body["issue"][0]["code"], "login");
        assert!(
            refused.body["issue"][0]["diagnostics"]
                .as_str()
                .unwrap()
                .contains("X-CSRF-Token"),
            "{}",
            refused.body
        );
        let logout = api
            .with_cookie("POST", "/api/v1/logout", &cookie, presented.as_deref())
            .await;
        assert_eq!(logout.status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        api.store
            .search_patients(&vigil_store::PatientQuery {
                limit: 100,
                ..Default::default()
            })
            .unwrap()
            .len(),
        2,
        "nothing was created"
    );
    let created = api
        .with_cookie("POST", "/fhir/Patient", &cookie, Some(&csrf))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);

    // Logout ends the session: the cookie is cleared and no longer signs anyone in.
    let logout = api
        .with_cookie("POST", "/api/v1/logout", &cookie, Some(&csrf))
        .await;
    assert_eq!(logout.status, StatusCode::NO_CONTENT);
    let cleared = logout.headers[header::SET_COOKIE].to_str().unwrap();
    assert!(cleared.starts_with("vigil_session=;") && cleared.contains("Max-Age=0"));
    assert!(
        api.store
            .session(&session::hash_token(&cookie))
            .unwrap()
            .is_none()
    );
    for uri in ["/api/v1/session", "/fhir/Observation?patient=p1"] {
        let after = api.with_cookie("GET", uri, &cookie, None).await;
        assert_eq!(after.status, StatusCode::UNAUTHORIZED, "{uri}");
    }
}

#[tokio::test]
async fn over_tls_the_session_cookie_is_secure() {
    let api = Api::new(true, None);
    api.account("nadia", "clinician", None);
    let login = api.login("nadia", PASSWORD).await;
    assert_eq!(login.status, StatusCode::OK);
    let set = login.headers[header::SET_COOKIE].to_str().unwrap();
    assert!(set.split("; ").any(|p| p == "Secure"), "{set}");
    let cookie = session_cookie(&login);
    let csrf = login.body["csrf_token"].as_str().unwrap();
    let logout = api
        .with_cookie("POST", "/api/v1/logout", &cookie, Some(csrf))
        .await;
    assert!(
        logout.headers[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .ends_with("; Secure")
    );
}

#[tokio::test]
async fn a_wrong_password_reads_like_an_unknown_account_and_five_lock_the_account() {
    let api = Api::new(false, None);
    api.account("ana", "clinician", None);
    let ana = UserId::new("ana").unwrap();

    let unknown = api.login("nobody", PASSWORD).await;
    let invalid_name = api.login("not a valid id!", PASSWORD).await;
    let wrong = api.login("ana", "not the password at all").await;
    for reply in [&unknown, &invalid_name, &wrong] {
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
        assert!(!reply.headers.contains_key(header::SET_COOKIE));
        assert!(!reply.headers.contains_key(header::RETRY_AFTER));
    }
    assert_eq!(unknown.body, wrong.body, "no account enumeration");
    assert_eq!(invalid_name.body, wrong.body);
    assert_eq!(api.store.user(&ana).unwrap().unwrap().failed_logins, 1);

    for attempt in 2..=password::LOCKOUT_THRESHOLD {
        let reply = api
            .login("ana", &format!("wrong guess number {attempt}"))
            .await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "attempt {attempt}");
    }
    let stored = api.store.user(&ana).unwrap().unwrap();
    assert_eq!(stored.failed_logins, password::LOCKOUT_THRESHOLD);
    let until = stored.locked_until.expect("locked after five failures");
    let lock = (until - chrono::Utc::now()).num_seconds();
    assert!((1..=30).contains(&lock), "{lock}");

    // Locked: even the right password is turned away, with when to come back.
    let locked = api.login("ana", PASSWORD).await;
    assert_eq!(
        locked.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        locked.body
    );
    let retry: i64 = locked.headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=30).contains(&retry), "{retry}");
    assert!(!locked.headers.contains_key(header::SET_COOKIE));
    assert_eq!(
        api.store.user(&ana).unwrap().unwrap().failed_logins,
        password::LOCKOUT_THRESHOLD,
        "attempts while locked are not checked"
    );

    // A password reset unlocks.
    api.store
        .set_password(&ana, &password::hash("a brand new passphrase").unwrap())
        .unwrap();
    let after_reset = api.store.user(&ana).unwrap().unwrap();
    assert_eq!(
        (after_reset.failed_logins, after_reset.locked_until),
        (0, None)
    );
    assert_eq!(
        api.login("ana", PASSWORD).await.status,
        StatusCode::UNAUTHORIZED,
        "the old password is gone"
    );
    let ok = api.login("ana", "a brand new passphrase").await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    assert_eq!(api.store.user(&ana).unwrap().unwrap().failed_logins, 0);
}

#[tokio::test]
async fn a_disabled_account_cannot_log_in_and_its_sessions_stop_working() {
    let api = Api::new(false, None);
    api.account("ana", "clinician", None);
    api.account("ben", "clinician", None);
    let login = api.login("ana", PASSWORD).await;
    assert_eq!(login.status, StatusCode::OK);
    let cookie = session_cookie(&login);
    assert_eq!(
        api.with_cookie("GET", "/api/v1/session", &cookie, None)
            .await
            .status,
        StatusCode::OK
    );

    api.store
        .set_user_disabled(&UserId::new("ana").unwrap(), true)
        .unwrap();
    let me = api
        .with_cookie("GET", "/api/v1/session", &cookie, None)
        .await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED);
    let again = api.login("ana", PASSWORD).await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        again.body,
        api.login("nobody", PASSWORD).await.body,
        "a disabled account reads like an unknown one"
    );
    assert_eq!(
        api.store
            .user(&UserId::new("ana").unwrap())
            .unwrap()
            .unwrap()
            .failed_logins,
        0,
        "a disabled account's password is not even checked"
    );
    // Others are unaffected.
    assert_eq!(api.login("ben", PASSWORD).await.status, StatusCode::OK);
}

#[tokio::test]
async fn sessions_idle_too_long_or_past_their_absolute_end_are_refused_and_removed() {
    let api = Api::new(false, None);
    api.account("ana", "clinician", None);
    let ana = UserId::new("ana").unwrap();
    let now = chrono::Utc::now();

    let (idle, idle_record) = session::start(
        ana.clone(),
        now - session::IDLE_TIMEOUT - chrono::Duration::minutes(1),
    );
    api.store.create_session(&idle_record).unwrap();

    let (shift_over, mut record) = session::start(ana.clone(), now - chrono::Duration::hours(13));
    record.last_seen = now - chrono::Duration::minutes(1);
    api.store.create_session(&record).unwrap();

    let (fresh, mut recent) = session::start(ana.clone(), now - chrono::Duration::hours(2));
    recent.last_seen = now - chrono::Duration::minutes(29);
    api.store.create_session(&recent).unwrap();

    for token in [&idle, &shift_over] {
        let reply = api.with_cookie("GET", "/api/v1/session", token, None).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
        assert!(
            api.store
                .session(&session::hash_token(token))
                .unwrap()
                .is_none(),
            "an expired session is deleted"
        );
    }
    let reply = api
        .with_cookie("GET", "/api/v1/session", &fresh, None)
        .await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "29 minutes idle is still live"
    );
    let touched = api
        .store
        .session(&session::hash_token(&fresh))
        .unwrap()
        .unwrap();
    assert!(touched.last_seen > recent.last_seen, "use keeps it alive");
}

// ---- OpenID Connect ----

/// An identity provider's signing key, and the JWKS file publishing it.
struct Provider {
    encoding: EncodingKey,
    public_raw: Vec<u8>,
}

impl Provider {
    fn new() -> Provider {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        Provider {
            encoding: EncodingKey::from_ec_der(&key.serialize_der()),
            public_raw: key.public_key_raw().to_vec(),
        }
    }

    fn jwks(&self) -> Value {
        // The raw public key is the uncompressed point: 0x04, x, y (SEC 1 §2.3.3).
        assert_eq!(self.public_raw.len(), 65);
        assert_eq!(self.public_raw[0], 4);
        json!({"keys": [{
            "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": KID,
            "x": URL_SAFE_NO_PAD.encode(&self.public_raw[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&self.public_raw[33..]),
        }]})
    }

    fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(KID.into());
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }
}

fn claims(sub: &str, role: Option<&str>, scope: Option<&str>) -> Value {
    let now = chrono::Utc::now().timestamp();
    let mut c = json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": sub, "iat": now, "exp": now + 600,
    });
    if let Some(role) = role {
        c["vigil_role"] = json!(role);
    }
    if let Some(scope) = scope {
        c["scope"] = json!(scope);
    }
    c
}

async fn with_provider() -> (Api, Provider) {
    let provider = Provider::new();
    let jwks_dir = tempfile::tempdir().unwrap();
    let path = jwks_dir.path().join("jwks.json");
    std::fs::write(&path, provider.jwks().to_string()).unwrap();
    let verifier = OidcVerifier::start(OidcConfig {
        issuer: ISSUER.into(),
        audience: AUDIENCE.into(),
        jwks: JwksSource::File(path),
        role_claim: "vigil_role".into(),
        subject_claim: "sub".into(),
        default_role: None,
    })
    .await
    .unwrap();
    let api = Api::ward(false, Some(Arc::new(verifier))).await;
    (api, provider)
}

#[tokio::test]
async fn identity_provider_tokens_are_accepted_only_when_signature_issuer_audience_and_time_hold() {
    let (api, provider) = with_provider().await;
    let search = "/fhir/Observation?patient=p1";
    let good = provider.sign(&claims(
        "nadia",
        Some("clinician"),
        Some("openid user/Observation.rs"),
    ));
    let reply = api.get(search, &good).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let mut started = claims("nadia", Some("clinician"), None);
    started["nbf"] = json!(chrono::Utc::now().timestamp() - 60);
    assert_eq!(
        api.get(search, &provider.sign(&started)).await.status,
        StatusCode::OK
    );
    assert_eq!(heart_rates(&reply.body), 3);
    // A clinician whose care teams do not cover p1 is signed in but refused.
    let stranger = provider.sign(&claims("olga", Some("clinician"), None));
    assert_eq!(
        api.get(search, &stranger).await.status,
        StatusCode::FORBIDDEN
    );

    let now = chrono::Utc::now().timestamp();
    let mut expired = claims("nadia", Some("clinician"), None);
    expired["exp"] = json!(now - 120);
    let mut audience = claims("nadia", Some("clinician"), None);
    audience["aud"] = json!("another-api");
    let mut issuer = claims("nadia", Some("clinician"), None);
    issuer["iss"] = json!("https://evil.test/realms/ward");
    let mut not_yet = claims("nadia", Some("clinician"), None);
    not_yet["nbf"] = json!(now + 600);
    let mut no_exp = claims("nadia", Some("clinician"), None);
    no_exp.as_object_mut().unwrap().remove("exp");

    let impostor = Provider::new();
    let same_kid = impostor.sign(&claims("nadia", Some("clinician"), None));
    // Algorithm confusion: HS256 "signed" with the provider's public key as the shared secret.
    let mut hs = Header::new(Algorithm::HS256);
    hs.kid = Some(KID.into());
    let confused = jsonwebtoken::encode(
        &hs,
        &claims("nadia", Some("clinician"), None),
        &EncodingKey::from_secret(&provider.public_raw),
    )
    .unwrap();
    let jwks_text = provider.jwks().to_string();
    let confused_jwks = jsonwebtoken::encode(
        &hs,
        &claims("nadia", Some("clinician"), None),
        &EncodingKey::from_secret(jwks_text.as_bytes()),
    )
    .unwrap();
    let no_role = provider.sign(&claims("nadia", None, None));
    let device = provider.sign(&claims("mon-1", Some("device"), None));
    let mut unknown_kid_header = Header::new(Algorithm::ES256);
    unknown_kid_header.kid = Some("rotated-away".into());
    let unknown_kid = jsonwebtoken::encode(
        &unknown_kid_header,
        &claims("nadia", Some("clinician"), None),
        &provider.encoding,
    )
    .unwrap();
    let mut tampered = good.clone();
    // Flip the last signature character (still base64url) so the signature no longer matches.
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });

    for (name, token) in [
        ("expired", provider.sign(&expired)),
        ("wrong audience", provider.sign(&audience)),
        ("wrong issuer", provider.sign(&issuer)),
        ("no exp", provider.sign(&no_exp)),
        ("not yet valid", provider.sign(&not_yet)),
        ("another key, same kid", same_kid),
        ("HS256 with the public key", confused),
        ("HS256 with the JWKS", confused_jwks),
        ("no role and no default", no_role),
        ("device role", device),
        ("unknown kid", unknown_kid),
        ("tampered signature", tampered),
    ] {
        let reply = api.get(search, &token).await;
        assert_eq!(
            reply.status,
            StatusCode::UNAUTHORIZED,
            "{name}: {}",
            reply.body
        );
        assert_eq!(reply.body["issue"][0]["code"], "login", "{name}");
        let me = api.get("/api/v1/session", &token).await;
        assert_eq!(me.status, StatusCode::UNAUTHORIZED, "{name}");
    }
}

#[tokio::test]
async fn a_patient_scoped_identity_provider_token_reaches_only_its_patient_and_resource() {
    let (api, provider) = with_provider().await;
    let mut c = claims(
        "nadia",
        Some("clinician"),
        Some("launch/patient patient/Observation.rs"),
    );
    c["patient"] = json!("p1");
    let token = provider.sign(&c);

    let me = api.get("/api/v1/session", &token).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.body);
    assert_eq!(me.body["scopes"], "patient/Observation.rs");
    assert_eq!(me.body["patient"], "p1");

    let own = api.get("/fhir/Observation?patient=p1", &token).await;
    assert_eq!(own.status, StatusCode::OK, "{}", own.body);
    let found = entries(&own.body);
    assert_eq!(heart_rates(&own.body), 3);
    assert!(
        found
            .iter()
            .all(|o| o["subject"]["reference"] == "Patient/p1")
    );
    // Read one of them by id too.
    let id = found[0]["id"].as_str().unwrap();
    assert_eq!(
        api.get(&format!("/fhir/Observation/{id}"), &token)
            .await
            .status,
        StatusCode::OK
    );

    // Nadia reaches every patient, but the token is about p1 only, and about Observations only.
    let other = api.get("/fhir/Observation?patient=p2", &token).await;
    assert_eq!(other.status, StatusCode::FORBIDDEN, "{}", other.body);
    let everyone = api.get("/fhir/Observation", &token).await;
    if everyone.status == StatusCode::OK {
        assert!(
            entries(&everyone.body)
                .iter()
                .all(|o| o["subject"]["reference"] == "Patient/p1"),
            "{}",
            everyone.body
        );
    }
    for uri in ["/fhir/Patient/p1", "/fhir/Patient", "/fhir/Flag?patient=p1"] {
        let reply = api.get(uri, &token).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{uri}: {}", reply.body);
    }
    let write = api
        .post("/fhir/Observation", &token, heart_rate_observation("p1"))
        .await;
    assert_eq!(write.status, StatusCode::FORBIDDEN, "rs does not create");
}

// ---- SMART scopes on Vigil's own tokens ----

#[tokio::test]
async fn a_read_search_scope_lets_a_clinician_search_observations_but_not_write_them() {
    let api = Api::ward(false, None).await;
    let scoped = api
        .tokens
        .issue_grant(
            &TokenGrant {
                subject: "nadia".into(),
                role: Role::Clinician,
                scopes: Some(Scopes::parse("user/Observation.rs").unwrap()),
                patient: None,
            },
            chrono::Duration::hours(1),
        )
        .unwrap();
    for patient in ["p1", "p2"] {
        let reply = api
            .get(&format!("/fhir/Observation?patient={patient}"), &scoped)
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        assert_eq!(heart_rates(&reply.body), 3);
    }
    let write = api
        .post("/fhir/Observation", &scoped, heart_rate_observation("p1"))
        .await;
    assert_eq!(write.status, StatusCode::FORBIDDEN, "{}", write.body);
    assert_eq!(
        api.get("/fhir/Patient/p1", &scoped).await.status,
        StatusCode::FORBIDDEN
    );

    // The same clinician with the role's default scopes may write.
    let full = api.token(Role::Clinician, "nadia");
    let write = api
        .post("/fhir/Observation", &full, heart_rate_observation("p1"))
        .await;
    assert_eq!(write.status, StatusCode::CREATED, "{}", write.body);
}

// ---- Consent ----

fn consent_for(patient: &str, grantee: &str, classes: &[&str]) -> Value {
    json!({
        "resourceType": "Consent",
        "status": "active",
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": format!("Patient/{patient}")},
        "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]},
        "provision": {
            "type": "permit",
            "period": {"start": "2025-01-01T00:00:00Z", "end": "2099-01-01T00:00:00Z"},
            "actor": [{
                "role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP"}]},
                "reference": {"reference": format!("RelatedPerson/{grantee}")}
            }],
            "action": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentaction", "code": "access"}]}],
            "class": classes.iter().map(|c| json!({"system": "http://hl7.org/fhir/resource-types", "code": c})).collect::<Vec<_>>()
        }
    })
}

#[tokio::test]
async fn a_patients_consent_shares_exactly_what_it_names_until_revoked() {
    let api = Api::ward(false, None).await;
    let p1 = api.token(Role::Patient, "p1");
    let eva = api.token(Role::Caregiver, "eva");

    // Before any consent the caregiver sees nothing.
    assert_eq!(
        api.get("/fhir/Observation?patient=p1", &eva).await.status,
        StatusCode::FORBIDDEN
    );

    // A patient cannot consent on another patient's behalf.
    let foreign = api
        .post(
            "/fhir/Consent",
            &p1,
            consent_for("p2", "eva", &["Observation"]),
        )
        .await;
    assert_eq!(foreign.status, StatusCode::FORBIDDEN, "{}", foreign.body);
    assert!(api.store.consents_of(&pid("p2")).unwrap().is_empty());

    let created = api
        .post(
            "/fhir/Consent",
            &p1,
            consent_for("p1", "eva", &["Observation"]),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    let location = created.headers[header::LOCATION].to_str().unwrap();
    assert!(location.ends_with(&format!("/Consent/{id}")), "{location}");

    // The stored consent reads back as it was written.
    let read = api.get(&format!("/fhir/Consent/{id}"), &p1).await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.body);
    assert_eq!(read.body, created.body);
    assert_eq!(read.body["status"], "active");
    assert_eq!(read.body["patient"]["reference"], "Patient/p1");
    let provision = &read.body["provision"];
    assert_eq!(
        provision["actor"][0]["reference"]["identifier"]["value"],
        "eva"
    );
    assert_eq!(provision["class"][0]["code"], "Observation");
    assert_eq!(provision["class"].as_array().unwrap().len(), 1);
    let start =
        chrono::DateTime::parse_from_rfc3339(provision["period"]["start"].as_str().unwrap())
            .unwrap();
    assert_eq!(start.to_rfc3339(), "2025-01-01T00:00:00+00:00");
    let back = vigil_fhir::consent_from_fhir(read.body.to_string().as_bytes(), None).unwrap();
    assert_eq!(back.grantee.id, "eva");
    assert_eq!(back.resource_types, ["Observation"]);
    let listed = api.get("/fhir/Consent", &p1).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    assert_eq!(entries(&listed.body), vec![read.body.clone()]);
    // Another patient may not read it.
    let p2 = api.token(Role::Patient, "p2");
    assert_eq!(
        api.get(&format!("/fhir/Consent/{id}"), &p2).await.status,
        StatusCode::FORBIDDEN
    );

    // The caregiver now sees p1's observations, and only those.
    let shared = api.get("/fhir/Observation?patient=p1", &eva).await;
    assert_eq!(shared.status, StatusCode::OK, "{}", shared.body);
    assert_eq!(heart_rates(&shared.body), 3);
    for (uri, why) in [
        ("/fhir/Observation?patient=p2", "another patient"),
        ("/fhir/Flag?patient=p1", "alarms were not shared"),
    ] {
        let reply = api.get(uri, &eva).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{why}: {}", reply.body);
    }
    let all = api.get("/fhir/Observation", &eva).await;
    if all.status == StatusCode::OK {
        assert!(
            entries(&all.body)
                .iter()
                .all(|o| o["subject"]["reference"] == "Patient/p1"),
            "{}",
            all.body
        );
    }
    // Consents are the patient's to change: the caregiver cannot revoke or widen one.
    let delete_by_eva = api
        .send(
            "DELETE",
            &format!("/fhir/Consent/{id}"),
            Sent {
                bearer: Some(&eva),
                ..Sent::default()
            },
        )
        .await;
    assert_eq!(delete_by_eva.status, StatusCode::FORBIDDEN);

    // Revoked, access ends at once.
    let revoked = api
        .send(
            "DELETE",
            &format!("/fhir/Consent/{id}"),
            Sent {
                bearer: Some(&p1),
                ..Sent::default()
            },
        )
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT, "{}", revoked.body);
    let after = api.get("/fhir/Observation?patient=p1", &eva).await;
    assert_eq!(after.status, StatusCode::FORBIDDEN, "{}", after.body);
    let kept = api.get(&format!("/fhir/Consent/{id}"), &p1).await;
    assert_eq!(kept.body["status"], "inactive", "kept for the accounting");
}

async fn delete(api: &Api, uri: &str, bearer: &str) -> Reply {
    api.send(
        "DELETE",
        uri,
        Sent {
            bearer: Some(bearer),
            ..Sent::default()
        },
    )
    .await
}

#[tokio::test]
async fn every_stored_consent_reads_back_as_a_consent_vigil_accepts() {
    let api = Api::ward(false, None).await;
    let p1 = api.token(Role::Patient, "p1");

    // Regression: without a start the consent starts now, and an end already past was stored
    // as a period ending before it began.
    let mut past = consent_for("p1", "eva", &["Observation"]);
    past["provision"]["period"] = json!({"end": "2025-01-01T00:00:00Z"});
    let refused = api.post("/fhir/Consent", &p1, past).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
    assert_eq!(
        refused.body["issue"][0]["expression"][0],
        "Consent.provision.period.end"
    );
    assert!(api.store.consents_of(&pid("p1")).unwrap().is_empty());

    // Regression: revoking a consent that has not begun ended it now, before its start.
    let mut later = consent_for("p1", "eva", &["Observation", "Flag"]);
    later["provision"]["period"] =
        json!({"start": "2098-01-01T00:00:00Z", "end": "2099-01-01T00:00:00Z"});
    let open_ended = consent_for("p1", "dr.novak", &[]);
    for body in [later, open_ended] {
        let created = api.post("/fhir/Consent", &p1, body).await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
        let uri = format!("/fhir/Consent/{}", created.body["id"].as_str().unwrap());
        assert_eq!(delete(&api, &uri, &p1).await.status, StatusCode::NO_CONTENT);
    }
    let all = api.get("/fhir/Consent?patient=p1", &p1).await;
    let consents = entries(&all.body);
    assert_eq!(consents.len(), 2);
    for c in consents {
        assert_eq!(c["status"], "inactive");
        let id = vigil_model::ConsentId::new(c["id"].as_str().unwrap()).unwrap();
        let back = vigil_fhir::consent_from_fhir(c.to_string().as_bytes(), Some(&id));
        assert!(back.is_ok(), "{c}: {back:?}");
        // And the patient can send it back unchanged.
        let put = api
            .send(
                "PUT",
                &format!("/fhir/Consent/{id}"),
                Sent {
                    bearer: Some(&p1),
                    body: Some(c.clone()),
                    ..Sent::default()
                },
            )
            .await;
        assert_eq!(put.status, StatusCode::OK, "{}", put.body);
    }
}

// ---- Research ----

#[tokio::test]
async fn researchers_see_pseudonyms_and_birth_years_and_no_live_stream() {
    let api = Api::ward(false, None).await;
    let researcher = api.token(Role::Researcher, "rita");

    let patients = api.get("/fhir/Patient", &researcher).await;
    assert_eq!(patients.status, StatusCode::OK, "{}", patients.body);
    let found = entries(&patients.body);
    assert_eq!(found.len(), 2);
    let text = patients.body.to_string();
    for identifying in [
        "Havel",
        "Novak",
        "100001",
        "100002",
        "1948-03-14",
        "\"p1\"",
        "Patient/p1",
    ] {
        assert!(!text.contains(identifying), "{identifying} in {text}");
    }
    let mut pseudonyms = Vec::new();
    for p in &found {
        assert!(
            p.get("name").is_none() && p.get("identifier").is_none(),
            "{p}"
        );
        let id = p["id"].as_str().unwrap();
        assert!(id.starts_with("anon-"), "{id}");
        pseudonyms.push(id.to_owned());
        let born = p["birthDate"].as_str().unwrap();
        assert_eq!(born.len(), 4, "{born}");
        assert!(["1948", "1952"].contains(&born));
    }
    assert_ne!(pseudonyms[0], pseudonyms[1]);

    let observations = api.get("/fhir/Observation", &researcher).await;
    assert_eq!(observations.status, StatusCode::OK, "{}", observations.body);
    let obs = entries(&observations.body);
    assert_eq!(heart_rates(&observations.body), 6);
    for o in &obs {
        let subject = o["subject"]["reference"].as_str().unwrap();
        let id = subject.strip_prefix("Patient/").unwrap();
        assert!(pseudonyms.iter().any(|p| p == id), "{subject}");
        assert!(o["subject"].get("display").is_none());
        let device = o["device"]["reference"].as_str().unwrap_or("Device/anon-");
        assert!(device.starts_with("Device/anon-"), "{device}");
    }
    // The same patient has the same pseudonym everywhere.
    let per_patient: std::collections::BTreeSet<&str> = obs
        .iter()
        .map(|o| o["subject"]["reference"].as_str().unwrap())
        .collect();
    assert_eq!(per_patient.len(), 2);

    // Looking a person up by what identifies them would link them to their pseudonym.
    for uri in [
        "/fhir/Patient/p1",
        "/fhir/Patient?identifier=100001",
        "/fhir/Patient?name=Havel",
        "/fhir/Observation?patient=p1",
        "/fhir/Observation?subject=Patient/p1",
        "/fhir/Observation?device=mon-1",
    ] {
        let reply = api.get(uri, &researcher).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{uri}: {}", reply.body);
        assert!(!reply.body.to_string().contains("anon-"), "{uri}");
    }
    // Searching by what is not identifying still works.
    let by_code = api
        .get(
            "/fhir/Observation?code=http://loinc.org|8867-4",
            &researcher,
        )
        .await;
    assert_eq!(by_code.status, StatusCode::OK, "{}", by_code.body);
    assert_eq!(heart_rates(&by_code.body), 6);

    let stream = api.get("/api/v1/stream", &researcher).await;
    assert_eq!(stream.status, StatusCode::FORBIDDEN, "{}", stream.body);
    let one = api.get("/api/v1/stream?patient=p1", &researcher).await;
    assert_eq!(one.status, StatusCode::FORBIDDEN);
    // Writing is not research.
    let write = api
        .post(
            "/fhir/Observation",
            &researcher,
            heart_rate_observation("p1"),
        )
        .await;
    assert_eq!(write.status, StatusCode::FORBIDDEN);
}
