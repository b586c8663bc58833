//! The authorization matrix: every role × resource type × interaction, for the caller's own
//! patient, a patient they are related to, and a stranger.

use super::*;
use Interaction::*;
use chrono::TimeZone;
use vigil_model::{ConsentId, ConsentStatus, Grantee, GranteeKind, UserId};

fn pid(id: &str) -> PatientId {
    PatientId::new(id).unwrap()
}

fn now() -> Instant {
    chrono::Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap()
}

fn consent(patient: &str, grantee: &str, types: &[&str]) -> Consent {
    Consent {
        id: ConsentId::new(format!("c-{patient}-{grantee}")).unwrap(),
        patient: pid(patient),
        grantee: Grantee {
            kind: GranteeKind::Person,
            id: grantee.into(),
        },
        resource_types: types.iter().map(|t| t.to_string()).collect(),
        start: now() - chrono::Duration::days(1),
        end: None,
        status: ConsentStatus::Active,
        recorded_by: UserId::new(patient).unwrap(),
        recorded_at: now() - chrono::Duration::days(1),
    }
}

/// `ward` is the patient a clinician's team looks after or a caregiver was granted; `stranger`
/// is nobody's.
fn setup(role: Role) -> (Principal, Relationships) {
    let mut principal = Principal::new("someone", role);
    let mut rels = Relationships::default();
    match role {
        Role::Clinician => {
            rels.care_team_patients.insert(pid("ward"));
        }
        Role::Caregiver => rels.consents.push(consent("ward", "someone", &[])),
        Role::Patient => principal.patient = Some(pid("ward")),
        _ => {}
    }
    (principal, rels)
}

fn may(role: Role, resource: &str, interaction: Interaction, patient: &str) -> bool {
    let (principal, rels) = setup(role);
    decide(
        &principal,
        &rels,
        Request {
            resource_type: resource,
            interaction,
            patient: Some(&pid(patient)),
        },
        now(),
    )
    .is_ok()
}

/// The expected matrix for the related patient, as letters (`cruds`); the stranger is reached
/// only by roles that reach everyone.
fn expected(role: Role, resource: &str) -> &'static str {
    match (role, resource) {
        (Role::Admin, _) => "cruds",
        (Role::Clinician, "Patient") => "crus",
        (Role::Clinician, "Observation") => "crs",
        (Role::Clinician, "Flag") => "rus",
        (Role::Clinician, "Device" | "DeviceMetric" | "Consent") => "rs",
        (Role::Caregiver, "Patient" | "Observation" | "Flag" | "Device" | "DeviceMetric") => "rs",
        (Role::Patient, "Patient" | "Flag" | "Device" | "DeviceMetric" | "AuditEvent") => "rs",
        (Role::Patient, "Observation") => "crs",
        (Role::Patient, "Consent") => "cruds",
        (Role::Researcher, "Patient" | "Observation") => "rs",
        (Role::Integration, "Patient" | "Device") => "crus",
        (Role::Integration, "Observation") => "crs",
        (Role::Integration, "Flag" | "DeviceMetric" | "Consent") => "rs",
        (Role::Device, "Observation") => "c",
        _ => "",
    }
}

const RESOURCES: [&str; 8] = [
    "Patient",
    "Observation",
    "Flag",
    "Device",
    "DeviceMetric",
    "Consent",
    "AuditEvent",
    "Medication",
];

#[test]
fn the_authorization_matrix_holds_for_every_role_resource_and_interaction() {
    let mut checked = 0;
    for role in Role::ALL {
        for resource in RESOURCES {
            let letters = expected(role, resource);
            for interaction in Interaction::ALL {
                let want = letters.contains(interaction.letter());
                assert_eq!(
                    may(role, resource, interaction, "ward"),
                    want,
                    "{} {resource} {:?} on their own / related patient",
                    role.as_str(),
                    interaction
                );
                let reaches_everyone = matches!(
                    role,
                    Role::Admin | Role::Integration | Role::Researcher | Role::Device
                );
                let creates_unattached =
                    interaction == Create && matches!(resource, "Patient" | "Device");
                let want_stranger = want && (reaches_everyone || creates_unattached);
                assert_eq!(
                    may(role, resource, interaction, "stranger"),
                    want_stranger,
                    "{} {resource} {:?} on a stranger",
                    role.as_str(),
                    interaction
                );
                checked += 2;
            }
        }
    }
    assert_eq!(checked, 7 * 8 * 5 * 2);
}

#[test]
fn researchers_see_everyone_but_only_de_identified() {
    let (principal, rels) = setup(Role::Researcher);
    let scoped = reach(&principal, &rels, "Observation", Search, now()).unwrap();
    assert_eq!(scoped.reach, Reach::Everyone);
    assert_eq!(scoped.view, View::Deidentified);
    let (clinician, rels) = setup(Role::Clinician);
    let scoped = reach(&clinician, &rels, "Observation", Search, now()).unwrap();
    assert_eq!(scoped.view, View::Identified);
    assert_eq!(scoped.reach, Reach::Only([pid("ward")].into()));
}

#[test]
fn a_caregiver_sees_only_what_and_while_the_patient_shares() {
    let mut principal = Principal::new("daughter", Role::Caregiver);
    principal.scopes = Role::Caregiver.default_scopes();
    let mut rels = Relationships::default();
    let mut c = consent("mum", "daughter", &["Observation"]);
    c.end = Some(now() + chrono::Duration::hours(1));
    rels.consents.push(c.clone());
    let ask = |rels: &Relationships, resource, at| {
        decide(
            &principal,
            rels,
            Request {
                resource_type: resource,
                interaction: Read,
                patient: Some(&pid("mum")),
            },
            at,
        )
    };
    assert_eq!(ask(&rels, "Observation", now()), Ok(View::Identified));
    assert_eq!(
        ask(&rels, "Patient", now()),
        Ok(View::Identified),
        "sharing any part shares whose record it is"
    );
    assert_eq!(
        ask(&rels, "Flag", now()),
        Err(Denial::NotYourPatient),
        "alarms were not shared"
    );
    assert_eq!(
        ask(&rels, "Observation", now() + chrono::Duration::hours(1)),
        Err(Denial::NotYourPatient),
        "the period is over"
    );
    rels.consents[0].status = ConsentStatus::Inactive;
    assert_eq!(
        ask(&rels, "Observation", now()),
        Err(Denial::NotYourPatient),
        "revoked"
    );
}

#[test]
fn a_physician_outside_the_team_sees_a_patient_who_consented() {
    let principal = Principal::new("dr-out", Role::Clinician);
    let mut rels = Relationships::default();
    let scoped = reach(&principal, &rels, "Observation", Read, now()).unwrap();
    assert_eq!(scoped.reach, Reach::Only(BTreeSet::new()));
    rels.consents.push(consent("mum", "dr-out", &[]));
    let scoped = reach(&principal, &rels, "Observation", Read, now()).unwrap();
    assert!(scoped.reach.includes(&pid("mum")));
    // Consent grants reading, never writing alarms for a clinician who is not on the team.
    let flag = decide(
        &principal,
        &rels,
        Request {
            resource_type: "Flag",
            interaction: Update,
            patient: Some(&pid("mum")),
        },
        now(),
    );
    assert!(
        flag.is_ok(),
        "a consented physician may acknowledge: they read the record"
    );
}

#[test]
fn a_central_station_team_reaches_everyone() {
    let principal = Principal::new("monitor-tech", Role::Clinician);
    let rels = Relationships {
        every_patient: true,
        ..Default::default()
    };
    let scoped = reach(&principal, &rels, "Observation", Search, now()).unwrap();
    assert_eq!(scoped.reach, Reach::Everyone);
}

#[test]
fn scopes_only_narrow_what_the_role_allows() {
    // A clinician whose app asked only for reading observations.
    let mut principal = Principal::new("nadia", Role::Clinician);
    principal.scopes = Scopes::parse("user/Observation.rs").unwrap();
    let rels = Relationships {
        every_patient: true,
        ..Default::default()
    };
    let ask = |resource, interaction| {
        decide(
            &principal,
            &rels,
            Request {
                resource_type: resource,
                interaction,
                patient: Some(&pid("p")),
            },
            now(),
        )
    };
    assert!(ask("Observation", Read).is_ok());
    assert_eq!(ask("Observation", Create), Err(Denial::Scope));
    assert_eq!(ask("Patient", Read), Err(Denial::Scope));
    // A scope never grants what the role cannot do.
    let mut caregiver = Principal::new("son", Role::Caregiver);
    caregiver.scopes = Scopes::parse("user/*.cruds").unwrap();
    let r = decide(
        &caregiver,
        &Relationships::default(),
        Request {
            resource_type: "Observation",
            interaction: Create,
            patient: Some(&pid("p")),
        },
        now(),
    );
    assert_eq!(r, Err(Denial::Role("caregiver")));
}

#[test]
fn patient_scopes_reach_only_the_patient_in_context() {
    // An integration token with patient-context scopes (a SMART app launched for one patient).
    let mut principal = Principal::new("ehr-app", Role::Integration);
    principal.scopes = Scopes::parse("patient/Observation.rs").unwrap();
    principal.patient = Some(pid("p1"));
    let scoped = reach(
        &principal,
        &Relationships::default(),
        "Observation",
        Search,
        now(),
    )
    .unwrap();
    assert_eq!(scoped.reach, Reach::Only([pid("p1")].into()));
    // Without a patient in context, patient scopes reach nobody.
    principal.patient = None;
    let scoped = reach(
        &principal,
        &Relationships::default(),
        "Observation",
        Search,
        now(),
    )
    .unwrap();
    assert_eq!(scoped.reach, Reach::Only(BTreeSet::new()));
}

#[test]
fn system_scopes_grant_nothing_to_people() {
    let mut principal = Principal::new("nadia", Role::Clinician);
    principal.scopes = Scopes::parse("system/*.cruds").unwrap();
    let rels = Relationships {
        every_patient: true,
        ..Default::default()
    };
    let scoped = reach(&principal, &rels, "Observation", Read, now()).unwrap();
    assert_eq!(scoped.reach, Reach::Only(BTreeSet::new()));
}

#[test]
fn roles_parse_from_their_names_only() {
    for role in Role::ALL {
        assert_eq!(Role::parse(role.as_str()), Some(role));
    }
    assert_eq!(Role::parse("king"), None);
    assert_eq!(Role::parse("Admin"), None);
}

#[test]
fn emergency_access_opens_one_patient_to_one_clinician() {
    let principal = Principal::new("dr-er", Role::Clinician);
    let mut rels = Relationships::default();
    let ask = |rels: &Relationships, patient: &str| {
        decide(
            &principal,
            rels,
            Request {
                resource_type: "Observation",
                interaction: Read,
                patient: Some(&pid(patient)),
            },
            now(),
        )
    };
    assert_eq!(ask(&rels, "p9"), Err(Denial::NotYourPatient));
    rels.emergency.insert(pid("p9"));
    assert_eq!(ask(&rels, "p9"), Ok(View::Identified));
    assert_eq!(ask(&rels, "p8"), Err(Denial::NotYourPatient));
    // Only clinicians break the glass.
    let caregiver = Principal::new("son", Role::Caregiver);
    let r = decide(
        &caregiver,
        &rels,
        Request {
            resource_type: "Observation",
            interaction: Read,
            patient: Some(&pid("p9")),
        },
        now(),
    );
    assert_eq!(r, Err(Denial::NotYourPatient));
}
