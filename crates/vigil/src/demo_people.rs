//! The demo's people: who signs in, and who sees whom. A ward nurse whose care team covers the
//! demo ward, a patient at home with their own login, a family member the patient consented to
//! share their vital signs and alarms with, a researcher (de-identified view) and an
//! administrator. Passwords are generated at each start and printed once.

use anyhow::Context;
use vigil_model::{
    CareTeam, CareTeamId, Consent, ConsentId, ConsentStatus, Grantee, GranteeKind, PatientId,
    UserId,
};
use vigil_server::auth::{Role, password};
use vigil_store::{Store, StoreError, UserAccount};

/// The demo ward every simulated patient is on.
pub const WARD: &str = "7A";

/// One demo login.
pub struct Login {
    pub account: String,
    pub role: Role,
    pub password: String,
    /// What the person should expect to see.
    pub sees: String,
}

/// Creates (or, on a reused data directory, resets) one account with a fresh password.
fn account(
    store: &dyn Store,
    id: &str,
    name: &str,
    role: Role,
    patient: Option<&PatientId>,
) -> anyhow::Result<String> {
    let password = password::generate();
    let hash = password::hash(&password)?;
    let id = UserId::new(id)?;
    let created = store.create_user(&UserAccount {
        id: id.clone(),
        display_name: name.into(),
        role: role.as_str().into(),
        password_hash: Some(hash.clone()),
        patient: patient.cloned(),
        organization: None,
        failed_logins: 0,
        locked_until: None,
        disabled: false,
        created_at: chrono::Utc::now(),
    });
    match created {
        Ok(()) => {}
        Err(StoreError::AlreadyExists { .. }) => store.set_password(&id, &hash)?,
        Err(e) => return Err(e.into()),
    }
    Ok(password)
}

/// Sets up the ward's care team and the demo's accounts; `home` is the patient who shares with
/// their family.
pub fn set_up(
    store: &dyn Store,
    patients: &[PatientId],
    home: &PatientId,
    clinician_token_subject: &str,
) -> anyhow::Result<Vec<Login>> {
    for p in patients {
        store.set_patient_ward(p, Some(WARD))?;
    }
    store
        .put_care_team(&CareTeam {
            id: CareTeamId::new("ward-7a-nurses")?,
            name: format!("Ward {WARD} nursing team"),
            members: vec![
                UserId::new("nurse.ana")?,
                UserId::new(clinician_token_subject)?,
            ],
            patients: Vec::new(),
            wards: vec![WARD.into()],
            every_patient: false,
        })
        .context("setting up the ward's care team")?;
    let consent = Consent {
        id: ConsentId::new("demo-family-consent")?,
        patient: home.clone(),
        grantee: Grantee {
            kind: GranteeKind::Person,
            id: "family.eva".into(),
        },
        resource_types: vec!["Observation".into(), "Flag".into(), "Device".into()],
        start: chrono::Utc::now() - chrono::Duration::minutes(1),
        end: None,
        status: ConsentStatus::Active,
        recorded_by: UserId::new(format!("patient.{home}"))?,
        recorded_at: chrono::Utc::now(),
    };
    store.put_consent(&consent)?;
    Ok(vec![
        Login {
            password: account(store, "nurse.ana", "Ana Ruiz, RN", Role::Clinician, None)?,
            account: "nurse.ana".into(),
            role: Role::Clinician,
            sees: format!("every patient on ward {WARD}"),
        },
        Login {
            password: account(
                store,
                &format!("patient.{home}"),
                "Demo patient",
                Role::Patient,
                Some(home),
            )?,
            account: format!("patient.{home}"),
            role: Role::Patient,
            sees: format!("only their own record ({home}) and who accessed it"),
        },
        Login {
            password: account(store, "family.eva", "Eva (daughter)", Role::Caregiver, None)?,
            account: "family.eva".into(),
            role: Role::Caregiver,
            sees: format!("{home}'s vital signs, alarms and devices, shared by consent"),
        },
        Login {
            password: account(
                store,
                "research.lee",
                "Lee (research)",
                Role::Researcher,
                None,
            )?,
            account: "research.lee".into(),
            role: Role::Researcher,
            sees: "de-identified patients and observations only".into(),
        },
        Login {
            password: account(store, "admin", "Ward administrator", Role::Admin, None)?,
            account: "admin".into(),
            role: Role::Admin,
            sees: "everything, and the audit trail".into(),
        },
    ])
}
