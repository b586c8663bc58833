//! Bearer-token authentication for the people-and-systems API, as an axum extractor.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;

use super::AppState;
use vigil_model::PatientId;

use crate::auth::{Principal, Role};
use crate::telemetry;

/// An authenticated caller. Extracting it rejects the request with 401 when there is no valid
/// bearer token.
#[derive(Debug, Clone)]
pub struct Caller(pub Principal);

/// A search for a patient the caller may not see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forbidden;

/// Why a request was not authenticated (rendered by the FHIR layer as an OperationOutcome).
#[derive(Debug)]
pub enum Unauthenticated {
    Missing,
    Invalid,
}

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = Unauthenticated;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let Some(value) = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        else {
            telemetry::http_auth_refused("no_token");
            return Err(Unauthenticated::Missing);
        };
        let Some(token) = value
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim())
        else {
            telemetry::http_auth_refused("no_token");
            return Err(Unauthenticated::Missing);
        };
        match state.tokens.verify(token) {
            Ok(principal) => Ok(Caller(principal)),
            Err(_) => {
                telemetry::http_auth_refused("bad_token");
                Err(Unauthenticated::Invalid)
            }
        }
    }
}

impl Caller {
    /// A patient may see only themselves; other roles see every patient until care-team scoping
    /// arrives with the security issue.
    pub fn may_read_patient(&self, patient: &str) -> bool {
        match self.0.role {
            Role::Patient => self.0.subject == patient,
            Role::Admin | Role::Clinician | Role::Integration => true,
        }
    }

    /// The only patient this caller may see, if restricted to one.
    pub fn restricted_to(&self) -> Option<&str> {
        (self.0.role == Role::Patient).then_some(self.0.subject.as_str())
    }

    /// Narrows a search's patient filter to what the caller may see: a patient's own searches are
    /// filtered to themselves (not refused); asking for someone else is refused with `Err`.
    pub fn scope_search(&self, patient: &mut Option<PatientId>) -> Result<(), Forbidden> {
        let Some(own) = self.restricted_to() else {
            return Ok(());
        };
        match patient {
            Some(p) if p.as_str() != own => Err(Forbidden),
            Some(_) => Ok(()),
            None => {
                *patient = PatientId::new(own).ok();
                Ok(())
            }
        }
    }

    /// Registering devices, rotating and revoking their credentials, binding them.
    pub fn may_manage_devices(&self) -> bool {
        matches!(self.0.role, Role::Admin | Role::Integration)
    }

    /// Operating Vigil itself (refused messages, with payloads that may hold patient data).
    pub fn is_admin(&self) -> bool {
        self.0.role == Role::Admin
    }

    /// Acknowledging alarms and changing monitoring settings: people caring for patients.
    pub fn may_change_care(&self) -> bool {
        matches!(self.0.role, Role::Admin | Role::Clinician)
    }

    pub fn may_write_patients(&self) -> bool {
        matches!(
            self.0.role,
            Role::Admin | Role::Clinician | Role::Integration
        )
    }
}
