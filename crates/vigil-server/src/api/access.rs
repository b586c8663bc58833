//! Who is calling, and whether they may: the axum side of `vigil-access`.
//!
//! [`Caller`] authenticates a request by one of three means: a Vigil-issued bearer token, an
//! OpenID Connect bearer token from the configured identity provider, or a browser session cookie
//! (whose state-changing requests must carry the session's anti-CSRF token). Handlers then ask
//! [`Caller::check`] before touching one patient's data and [`Caller::reach`] before a search; both
//! load the caller's relationships (care teams, consents) from the store and apply the one policy
//! in `vigil-access`, so every API, the live stream and exports decide alike.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::ConnectInfo;
use vigil_model::audit::{AuditAction, AuditEntity, AuditEntry, AuditOutcome};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{Method, header};
use subtle::ConstantTimeEq;
use vigil_access::{Denial, Interaction, Principal, Relationships, Request, Role, Scoped, View};
use vigil_model::{PatientId, UserId};
use vigil_store::{Store, StoreError};

use super::AppState;
use crate::auth::session;
use crate::telemetry;

/// An authenticated caller and the address the request came from (for the audit trail).
/// Extracting it rejects the request with 401 when there is no valid token or session.
#[derive(Debug, Clone)]
pub struct Caller(pub Principal, pub Option<SocketAddr>);

/// Why a request was not authenticated (rendered by each API in its own error format).
#[derive(Debug)]
pub enum Unauthenticated {
    Missing,
    Invalid,
    /// A cookie session's change without the session's anti-CSRF token.
    Csrf,
    /// The store could not be asked about the session.
    Unavailable,
}

/// Why a request that was authenticated may not go on.
#[derive(Debug)]
pub enum Refused {
    Denied(Denial),
    Store(StoreError),
    Internal,
}

impl From<StoreError> for Refused {
    fn from(e: StoreError) -> Self {
        Refused::Store(e)
    }
}

fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    value
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
}

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = Unauthenticated;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let origin = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0);
        if parts.headers.contains_key(header::AUTHORIZATION) {
            let Some(token) = bearer(parts) else {
                telemetry::http_auth_refused("no_token");
                return Err(Unauthenticated::Missing);
            };
            let principal = match state.tokens.verify(token) {
                Ok(principal) => Some(principal),
                Err(_) => match &state.oidc {
                    Some(oidc) => match oidc.verify(token).await {
                        Ok(principal) => Some(principal),
                        Err(e) => {
                            tracing::debug!(error = %e, "identity-provider token refused");
                            None
                        }
                    },
                    None => None,
                },
            };
            let Some(principal) = principal else {
                telemetry::http_auth_refused("bad_token");
                let entry = crate::audit::bearer_refused(origin);
                state.audit.record_done(entry).await;
                return Err(Unauthenticated::Invalid);
            };
            let caller = Caller(principal, origin);
            if first_use(token) {
                let entry = caller.audit(AuditAction::TokenUse, AuditEntity::kind("Token"));
                if state.audit.record(entry).await.is_err() {
                    return Err(Unauthenticated::Unavailable);
                }
            }
            return Ok(caller);
        }
        let cookie = parts
            .headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(session::from_cookie_header)
            .map(str::to_owned);
        let Some(token) = cookie else {
            telemetry::http_auth_refused("no_token");
            return Err(Unauthenticated::Missing);
        };
        let store = state.store.clone();
        let found = tokio::task::spawn_blocking(move || session_principal(store.as_ref(), &token))
            .await
            .map_err(|_| Unauthenticated::Unavailable)?
            .map_err(|e| {
                tracing::warn!(error = %e, "could not check a session");
                Unauthenticated::Unavailable
            })?;
        let Some((principal, csrf)) = found else {
            telemetry::http_auth_refused("bad_session");
            return Err(Unauthenticated::Invalid);
        };
        let changes = !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
        if changes {
            let presented = parts
                .headers
                .get(session::CSRF_HEADER)
                .map(|v| v.as_bytes())
                .unwrap_or_default();
            if !bool::from(presented.ct_eq(csrf.as_bytes())) {
                telemetry::http_auth_refused("csrf");
                return Err(Unauthenticated::Csrf);
            }
        }
        Ok(Caller(principal, origin))
    }
}

/// Tokens seen since start-up (their hashes), so that a token's first use is audited once
/// rather than on every request (each request's own audit entry names the bearer anyway).
static SEEN_TOKENS: Mutex<Option<std::collections::HashSet<[u8; 32]>>> = Mutex::new(None);
/// Beyond this many, the set starts afresh (a token is then audited as used once more).
const SEEN_TOKENS_MAX: usize = 100_000;

fn first_use(token: &str) -> bool {
    let hash = session::hash_token(token);
    let mut seen = SEEN_TOKENS.lock().unwrap_or_else(|p| p.into_inner());
    let set = seen.get_or_insert_with(Default::default);
    if set.len() >= SEEN_TOKENS_MAX {
        set.clear();
    }
    set.insert(hash)
}

/// The principal a live session cookie signs in, with the session's anti-CSRF token.
fn session_principal(
    store: &dyn Store,
    token: &str,
) -> Result<Option<(Principal, String)>, StoreError> {
    let hash = session::hash_token(token);
    let Some(found) = store.session(&hash)? else {
        return Ok(None);
    };
    let now = chrono::Utc::now();
    if !session::is_live(&found, now) {
        store.end_session(&hash)?;
        return Ok(None);
    }
    let Some(user) = store.user(&found.user)? else {
        return Ok(None);
    };
    let Some(role) = Role::parse(&user.role) else {
        return Ok(None);
    };
    if user.disabled {
        return Ok(None);
    }
    if now - found.last_seen >= session::TOUCH_EVERY {
        store.touch_session(&hash, now)?;
    }
    let principal = Principal {
        subject: user.id.to_string(),
        role,
        scopes: role.default_scopes(),
        patient: user.patient,
        organization: user.organization,
    };
    Ok(Some((principal, found.csrf)))
}

/// The caller's care teams and the consents naming them (or their organisation).
pub fn relationships(
    store: &dyn Store,
    principal: &Principal,
) -> Result<Relationships, StoreError> {
    let Ok(account) = UserId::new(principal.subject.clone()) else {
        return Ok(Relationships::default());
    };
    let mut out = Relationships::default();
    if principal.role == Role::Clinician {
        let reach = store.care_reach(&account)?;
        out.every_patient = reach.every_patient;
        out.care_team_patients = reach.patients.into_iter().collect();
    }
    if matches!(principal.role, Role::Clinician | Role::Caregiver) {
        out.consents = store.consents_granted_to(&account, principal.organization.as_deref())?;
    }
    if principal.role == Role::Clinician {
        out.emergency = store
            .emergency_access_in_force(&account, chrono::Utc::now())?
            .into_iter()
            .map(|e| e.patient)
            .collect();
    }
    Ok(out)
}

/// The distinct patients of a page of results, in order.
pub fn distinct_patients<'a>(patients: impl IntoIterator<Item = &'a PatientId>) -> Vec<PatientId> {
    let mut out: Vec<PatientId> = Vec::new();
    for p in patients {
        if !out.contains(p) {
            out.push(p.clone());
        }
    }
    out
}

/// What a scoped search may return: `None` for everyone, else the patients.
pub fn within(scoped: &Scoped) -> Option<Vec<PatientId>> {
    match &scoped.reach {
        vigil_access::Reach::Everyone => None,
        vigil_access::Reach::Only(set) => Some(set.iter().cloned().collect()),
    }
}

impl Caller {
    /// Decides one request about `patient`'s data (or about no one's, `None`).
    pub async fn check(
        &self,
        state: &Arc<AppState>,
        resource_type: &'static str,
        interaction: Interaction,
        patient: Option<&PatientId>,
    ) -> Result<View, Refused> {
        let principal = self.0.clone();
        let patient = patient.cloned();
        let patient_for_audit = patient.clone();
        let store = state.store.clone();
        let decided = tokio::task::spawn_blocking(move || {
            let rels = relationships(store.as_ref(), &principal)?;
            Ok::<_, StoreError>(vigil_access::decide(
                &principal,
                &rels,
                Request {
                    resource_type,
                    interaction,
                    patient: patient.as_ref(),
                },
                chrono::Utc::now(),
            ))
        })
        .await
        .map_err(|_| Refused::Internal)??;
        match decided {
            Ok(view) => Ok(view),
            Err(denial) => {
                let entry = self
                    .audit(
                        AuditAction::PermissionDenied,
                        match &patient_for_audit {
                            Some(p) => AuditEntity::resource(resource_type, p.as_str()),
                            None => AuditEntity::kind(resource_type),
                        },
                    )
                    .patients(patient_for_audit)
                    .outcome(AuditOutcome::MinorFailure)
                    .detail(format!("{} {denial}", interaction.letter()));
                state.audit.record_done(entry).await;
                Err(self.denied(denial, resource_type))
            }
        }
    }

    /// The patients this caller may search `resource_type` for, and how to show them.
    pub async fn reach(
        &self,
        state: &Arc<AppState>,
        resource_type: &'static str,
        interaction: Interaction,
    ) -> Result<Scoped, Refused> {
        let principal = self.0.clone();
        let store = state.store.clone();
        let scoped = tokio::task::spawn_blocking(move || {
            let rels = relationships(store.as_ref(), &principal)?;
            Ok::<_, StoreError>(vigil_access::reach(
                &principal,
                &rels,
                resource_type,
                interaction,
                chrono::Utc::now(),
            ))
        })
        .await
        .map_err(|_| Refused::Internal)??;
        match scoped {
            Ok(scoped) => Ok(scoped),
            Err(denial) => {
                let entry = self
                    .audit(
                        AuditAction::PermissionDenied,
                        AuditEntity::kind(resource_type),
                    )
                    .outcome(AuditOutcome::MinorFailure)
                    .detail(format!("{} {denial}", interaction.letter()));
                state.audit.record_done(entry).await;
                Err(self.denied(denial, resource_type))
            }
        }
    }

    /// An audit entry of `action` on `entity` by this caller, now, from where they called.
    pub fn audit(&self, action: AuditAction, entity: AuditEntity) -> AuditEntry {
        crate::audit::by(&self.0, self.1, action, entity)
    }

    fn denied(&self, denial: Denial, resource_type: &'static str) -> Refused {
        metrics::counter!("vigil_access_denied_total", "role" => self.0.role.as_str(), "resource" => resource_type)
            .increment(1);
        Refused::Denied(denial)
    }

    /// Registering devices, rotating and revoking their credentials, binding them: the Device
    /// resource's create and update, which reach no patient's record until a binding does, so
    /// only callers who reach everyone (administrators, integration systems) may.
    pub fn may_manage_devices(&self) -> bool {
        [Interaction::Create, Interaction::Update].iter().all(|i| {
            vigil_access::decide(
                &self.0,
                &Relationships::default(),
                Request {
                    resource_type: "Device",
                    interaction: *i,
                    patient: None,
                },
                chrono::Utc::now(),
            )
            .is_ok()
        })
    }

    /// Operating Vigil itself (refused messages, the audit trail, security alerts).
    pub fn is_admin(&self) -> bool {
        self.0.role == Role::Admin
    }
}
