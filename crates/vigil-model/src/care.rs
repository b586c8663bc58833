//! Who cares for whom: care teams (which clinicians look after which patients) and a patient's
//! consents to share their data with a named person or organisation. Access decisions are made
//! from these (see the `vigil-access` crate); this module only says what they are.

use serde::{Deserialize, Serialize};

use crate::{CareTeamId, ConsentId, Instant, PatientId, UserId};

/// A team of clinicians and the patients it looks after: a ward's nursing team, a home-monitoring
/// service, a rapid-response team. A clinician sees the patients of every team they belong to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CareTeam {
    pub id: CareTeamId,
    pub name: String,
    /// The team's clinicians (user accounts).
    pub members: Vec<UserId>,
    /// Patients the team looks after by name.
    pub patients: Vec<PatientId>,
    /// Wards the team covers: it looks after every patient on them.
    pub wards: Vec<String>,
    /// The team looks after every patient (a central monitoring station, a rapid-response team).
    pub every_patient: bool,
}

/// Whether a grantee is a person (a family member, a physician outside the care team) or an
/// organisation (an insurer, a consulting service), whose users all share the grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GranteeKind {
    Person,
    Organization,
}

/// Who a consent shares with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grantee {
    pub kind: GranteeKind,
    /// A user account (person) or an organisation's identifier (matched against users'
    /// organisation).
    pub id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConsentStatus {
    Active,
    /// Revoked by the patient or their proxy; kept for the record, grants nothing.
    Inactive,
}

/// A patient's permission for a grantee to read part of their record for a period (FHIR Consent,
/// scope `patient-privacy`, provision type `permit`, action `access`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consent {
    pub id: ConsentId,
    pub patient: PatientId,
    pub grantee: Grantee,
    /// FHIR resource types shared (`Observation`, `Flag`, …); empty shares the whole record.
    pub resource_types: Vec<String>,
    /// From when the grant holds (inclusive).
    pub start: Instant,
    /// Until when (exclusive); `None`: until revoked.
    pub end: Option<Instant>,
    pub status: ConsentStatus,
    /// The account that recorded it: the patient, or a proxy acting for them.
    pub recorded_by: UserId,
    pub recorded_at: Instant,
}

impl Consent {
    /// The consent grants access at `at` to resources of `resource_type`.
    pub fn grants(&self, resource_type: &str, at: Instant) -> bool {
        self.in_force(at)
            && (self.resource_types.is_empty()
                || self.resource_types.iter().any(|t| t == resource_type))
    }
}

/// A clinician's emergency ("break-glass") access to a patient outside their care teams
/// (HIPAA 45 CFR 164.312(a)(2)(ii)): granted at once on a stated reason, for a fixed time, and
/// listed for after-the-fact review.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmergencyAccess {
    pub patient: PatientId,
    pub clinician: UserId,
    /// Why, in the clinician's words (kept in the encrypted store and the audit trail).
    pub reason: String,
    pub start: Instant,
    pub end: Instant,
}

impl EmergencyAccess {
    /// How long one emergency access lasts.
    pub const DURATION: chrono::Duration = chrono::Duration::hours(4);

    pub fn in_force(&self, at: Instant) -> bool {
        self.start <= at && at < self.end
    }
}

impl Consent {
    /// Active and within its period at `at`.
    pub fn in_force(&self, at: Instant) -> bool {
        self.status == ConsentStatus::Active
            && self.start <= at
            && self.end.is_none_or(|end| at < end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn consent() -> Consent {
        Consent {
            id: ConsentId::new("c1").unwrap(),
            patient: PatientId::new("p1").unwrap(),
            grantee: Grantee {
                kind: GranteeKind::Person,
                id: "daughter".into(),
            },
            resource_types: vec!["Observation".into()],
            start: chrono::Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
            end: Some(chrono::Utc.with_ymd_and_hms(2026, 2, 1, 0, 0, 0).unwrap()),
            status: ConsentStatus::Active,
            recorded_by: UserId::new("p1").unwrap(),
            recorded_at: chrono::Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
        }
    }

    #[test]
    fn a_consent_holds_from_its_start_until_its_end_for_its_resource_types() {
        let c = consent();
        let start = c.start;
        let end = c.end.unwrap();
        assert!(c.grants("Observation", start), "start is inclusive");
        assert!(!c.grants("Observation", start - chrono::Duration::seconds(1)));
        assert!(c.grants("Observation", end - chrono::Duration::seconds(1)));
        assert!(!c.grants("Observation", end), "end is exclusive");
        assert!(!c.grants("Flag", start), "only the resource types shared");
        let everything = Consent {
            resource_types: vec![],
            end: None,
            ..consent()
        };
        assert!(everything.grants("Flag", end + chrono::Duration::days(900)));
        let revoked = Consent {
            status: ConsentStatus::Inactive,
            ..consent()
        };
        assert!(!revoked.grants("Observation", start));
    }
}
