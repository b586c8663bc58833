//! Who may see and do what, decided in one place.
//!
//! Every API (FHIR, `/api/v1`, the live stream, exports) asks [`decide`] before it reads or
//! writes one patient's data and [`reach`] before it searches, so search results are filtered by
//! the same rule as reads. The decision combines three things:
//!
//! 1. the **role**'s capabilities (a caregiver never writes, a researcher reads only Patient and
//!    Observation, a device only creates its own observations);
//! 2. the **SMART on FHIR v2 scopes** of the token or session ([`scope`]), which can only narrow
//!    what the role allows;
//! 3. the **relationships** that say whose data it is to the caller: the care teams a clinician
//!    belongs to, the consents a patient gave a caregiver, physician or organisation, and for a
//!    patient their own record.
//!
//! Pure: the caller loads [`Relationships`] from the store; time is a value.

pub mod scope;

use std::collections::BTreeSet;

use vigil_model::{Consent, Instant, PatientId};

pub use scope::{Interaction, Scope, ScopeContext, ScopeError, Scopes};

/// What kind of party a caller is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Operates Vigil: accounts, devices, the audit trail.
    Admin,
    /// A nurse or physician: sees the patients of their care teams (and those who consented).
    Clinician,
    /// A family member or other informal carer: sees only patients who consented to it.
    Caregiver,
    /// Sees and manages only their own record.
    Patient,
    /// Sees de-identified data only.
    Researcher,
    /// Another system (an EHR, a telemedicine platform) acting on its own.
    Integration,
    /// A medical device or gateway: writes its own data only.
    Device,
}

impl Role {
    pub const ALL: [Role; 7] = [
        Role::Admin,
        Role::Clinician,
        Role::Caregiver,
        Role::Patient,
        Role::Researcher,
        Role::Integration,
        Role::Device,
    ];

    pub fn parse(raw: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == raw)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Clinician => "clinician",
            Role::Caregiver => "caregiver",
            Role::Patient => "patient",
            Role::Researcher => "researcher",
            Role::Integration => "integration",
            Role::Device => "device",
        }
    }

    /// The scopes a session or a Vigil-issued token of this role carries when none are asked
    /// for: everything the role may do (the role's capabilities still apply on top).
    pub fn default_scopes(self) -> Scopes {
        let list = match self {
            Role::Admin | Role::Clinician | Role::Caregiver | Role::Researcher => "user/*.cruds",
            Role::Patient => "patient/*.cruds",
            Role::Integration | Role::Device => "system/*.cruds",
        };
        Scopes::from_granted(list)
    }

    /// Whether the role may ever perform `interaction` on `resource_type` (before scopes and
    /// relationships).
    pub fn capable(self, resource_type: &str, interaction: Interaction) -> bool {
        use Interaction::*;
        let allowed: &[Interaction] = match (self, resource_type) {
            (Role::Admin, _) => &[Create, Read, Update, Delete, Search],
            (Role::Clinician, "Patient") => &[Create, Read, Update, Search],
            (Role::Clinician, "Observation") => &[Create, Read, Search],
            (Role::Clinician, "Flag") => &[Read, Update, Search],
            (Role::Clinician, "Device" | "DeviceMetric" | "Consent") => &[Read, Search],
            (Role::Caregiver, "Patient" | "Observation" | "Flag" | "Device" | "DeviceMetric") => {
                &[Read, Search]
            }
            (Role::Patient, "Patient" | "Flag" | "Device" | "DeviceMetric") => &[Read, Search],
            (Role::Patient, "Observation") => &[Create, Read, Search],
            (Role::Patient, "Consent") => &[Create, Read, Update, Delete, Search],
            // Accounting of disclosures: who accessed my record.
            (Role::Patient, "AuditEvent") => &[Read, Search],
            (Role::Researcher, "Patient" | "Observation") => &[Read, Search],
            (Role::Integration, "Patient" | "Device") => &[Create, Read, Update, Search],
            (Role::Integration, "Observation") => &[Create, Read, Search],
            (Role::Integration, "Flag" | "DeviceMetric" | "Consent") => &[Read, Search],
            (Role::Device, "Observation") => &[Create],
            _ => &[],
        };
        allowed.contains(&interaction)
    }

    /// Systems act on their own behalf (`system/` scopes); people act as users.
    fn is_system(self) -> bool {
        matches!(self, Role::Integration | Role::Device | Role::Admin)
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The account (a user's login, a client id, a device id).
    pub subject: String,
    pub role: Role,
    pub scopes: Scopes,
    /// A patient's own record, or the patient in a SMART launch context (`patient/` scopes).
    pub patient: Option<PatientId>,
    /// The organisation the account belongs to (consents may name an organisation).
    pub organization: Option<String>,
}

impl Principal {
    /// A caller with the role's default scopes.
    pub fn new(subject: impl Into<String>, role: Role) -> Principal {
        Principal {
            subject: subject.into(),
            role,
            scopes: role.default_scopes(),
            patient: None,
            organization: None,
        }
    }
}

/// Whose data the caller is related to, loaded from the store for one request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Relationships {
    /// A clinician's care teams cover every patient (a central monitoring station).
    pub every_patient: bool,
    /// The patients a clinician's care teams look after (by name or by ward).
    pub care_team_patients: BTreeSet<PatientId>,
    /// Consents naming the caller or their organisation (active or not; [`Consent::grants`]
    /// decides).
    pub consents: Vec<Consent>,
    /// Patients a clinician opened by emergency access, while it is in force.
    pub emergency: BTreeSet<PatientId>,
}

/// Which patients a caller may reach for one kind of request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    Everyone,
    /// Only these (possibly none).
    Only(BTreeSet<PatientId>),
}

impl Reach {
    pub fn includes(&self, patient: &PatientId) -> bool {
        match self {
            Reach::Everyone => true,
            Reach::Only(set) => set.contains(patient),
        }
    }

    fn union(self, other: Reach) -> Reach {
        match (self, other) {
            (Reach::Everyone, _) | (_, Reach::Everyone) => Reach::Everyone,
            (Reach::Only(mut a), Reach::Only(b)) => {
                a.extend(b);
                Reach::Only(a)
            }
        }
    }

    fn intersect_one(&self, patient: Option<&PatientId>) -> Reach {
        Reach::Only(
            patient
                .filter(|p| self.includes(p))
                .cloned()
                .into_iter()
                .collect(),
        )
    }
}

/// How the data may be shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    Identified,
    /// Without names, identifiers or exact birth dates, patients under a pseudonym.
    Deidentified,
}

/// What a caller may search: the patients and how to show them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scoped {
    pub reach: Reach,
    pub view: View,
}

/// Why a request was refused. The reasons are safe to show the caller: they name no patient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Denial {
    #[error("the {0} role may not do this")]
    Role(&'static str),
    #[error("the token's scopes do not permit this")]
    Scope,
    #[error("this patient's record is not shared with you")]
    NotYourPatient,
}

/// One request about one patient's data (or about none: creating a patient, a device).
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub resource_type: &'a str,
    pub interaction: Interaction,
    pub patient: Option<&'a PatientId>,
}

/// The patients `principal` may reach with `interaction` on `resource_type` at `now`, or why
/// not at all.
pub fn reach(
    principal: &Principal,
    relationships: &Relationships,
    resource_type: &str,
    interaction: Interaction,
    now: Instant,
) -> Result<Scoped, Denial> {
    if !principal.role.capable(resource_type, interaction) {
        return Err(Denial::Role(principal.role.as_str()));
    }
    let contexts = principal.scopes.permitting(resource_type, interaction);
    if contexts.is_empty() {
        return Err(Denial::Scope);
    }
    let by_role = role_reach(principal, relationships, resource_type, now);
    let mut granted = Reach::Only(BTreeSet::new());
    for context in contexts {
        let part = match context {
            ScopeContext::Patient => by_role.intersect_one(principal.patient.as_ref()),
            ScopeContext::User => by_role.clone(),
            ScopeContext::System if principal.role.is_system() => by_role.clone(),
            ScopeContext::System => Reach::Only(BTreeSet::new()),
        };
        granted = granted.union(part);
    }
    let view = if principal.role == Role::Researcher {
        View::Deidentified
    } else {
        View::Identified
    };
    Ok(Scoped {
        reach: granted,
        view,
    })
}

/// Decides one request. Creating a patient or a device concerns nobody's record yet: the role
/// and the scopes decide alone. A device's own observations are attributed by its binding in
/// the pipeline, so the policy only checks that devices create observations and nothing else.
pub fn decide(
    principal: &Principal,
    relationships: &Relationships,
    request: Request<'_>,
    now: Instant,
) -> Result<View, Denial> {
    let scoped = reach(
        principal,
        relationships,
        request.resource_type,
        request.interaction,
        now,
    )?;
    let unattached = request.interaction == Interaction::Create
        && matches!(request.resource_type, "Patient" | "Device");
    if unattached || principal.role == Role::Device {
        return Ok(scoped.view);
    }
    match request.patient {
        Some(patient) if scoped.reach.includes(patient) => Ok(scoped.view),
        // Data about nobody in particular (an unbound device) is for those who reach everyone.
        None if scoped.reach == Reach::Everyone => Ok(scoped.view),
        _ => Err(Denial::NotYourPatient),
    }
}

/// The patients the role reaches through its relationships, for one resource type.
fn role_reach(
    principal: &Principal,
    relationships: &Relationships,
    resource_type: &str,
    now: Instant,
) -> Reach {
    let consented = || -> BTreeSet<PatientId> {
        relationships
            .consents
            .iter()
            // Sharing any part of a record shares whose record it is (the Patient resource).
            .filter(|c| {
                c.grants(resource_type, now) || (resource_type == "Patient" && c.in_force(now))
            })
            .map(|c| c.patient.clone())
            .collect()
    };
    match principal.role {
        Role::Admin | Role::Integration | Role::Researcher => Reach::Everyone,
        Role::Clinician if relationships.every_patient => Reach::Everyone,
        Role::Clinician => {
            let mut patients = relationships.care_team_patients.clone();
            patients.extend(consented());
            patients.extend(relationships.emergency.iter().cloned());
            Reach::Only(patients)
        }
        Role::Caregiver => Reach::Only(consented()),
        Role::Patient => Reach::Only(principal.patient.iter().cloned().collect()),
        Role::Device => Reach::Only(BTreeSet::new()),
    }
}

#[cfg(test)]
mod tests;
