//! Accounts, sessions, care teams, wards and consents: who may see whom is decided from these
//! (by `vigil-access`); this module only keeps them.

use rusqlite::{OptionalExtension, Row, Transaction, params};
use vigil_model::{
    CareTeam, CareTeamId, Consent, ConsentId, ConsentStatus, EmergencyAccess, Grantee, GranteeKind,
    Instant, PatientId, UserId,
};

use super::codec::micros;
use super::{Fail, corrupt, known_patient, stored_time};
use crate::{CareReach, SecretHash, SessionRecord, StoreError, UserAccount};

const USER_COLUMNS: &str = "u.id, u.display_name, u.role, u.password_hash, p.id, u.organization, \
     u.failed_logins, u.locked_until_us, u.disabled, u.created_us";

fn user_from_row(row: &Row<'_>) -> Result<UserAccount, Fail> {
    let id: String = row.get(0)?;
    let id =
        UserId::new(id).map_err(|_| corrupt("a stored account id is not a valid identifier"))?;
    let patient: Option<String> = row.get(4)?;
    let failed: i64 = row.get(6)?;
    let locked: Option<i64> = row.get(7)?;
    Ok(UserAccount {
        display_name: row.get(1)?,
        role: row.get(2)?,
        password_hash: row.get(3)?,
        patient: patient
            .map(|p| PatientId::new(p).map_err(|_| corrupt("a stored patient id is not valid")))
            .transpose()?,
        organization: row.get(5)?,
        failed_logins: u32::try_from(failed).unwrap_or(u32::MAX),
        locked_until: locked
            .map(|us| stored_time(us, &format!("account {id}'s lockout")))
            .transpose()?,
        disabled: row.get::<_, i64>(8)? != 0,
        created_at: stored_time(row.get(9)?, &format!("account {id}"))?,
        id,
    })
}

pub(super) fn create_user(tx: &Transaction<'_>, user: &UserAccount) -> Result<(), Fail> {
    if tx
        .prepare_cached("SELECT 1 FROM users WHERE id = ?1")?
        .exists([user.id.as_str()])?
    {
        return Err(StoreError::AlreadyExists {
            what: "account",
            id: user.id.to_string(),
        }
        .into());
    }
    let patient = user
        .patient
        .as_ref()
        .map(|p| known_patient(tx, p))
        .transpose()?;
    tx.prepare_cached(
        "INSERT INTO users (id, display_name, role, password_hash, patient, organization, \
         failed_logins, locked_until_us, disabled, created_us) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        user.id.as_str(),
        user.display_name,
        user.role,
        user.password_hash,
        patient,
        user.organization,
        i64::from(user.failed_logins),
        user.locked_until.map(micros),
        i64::from(user.disabled),
        micros(user.created_at),
    ])?;
    Ok(())
}

pub(super) fn user(tx: &Transaction<'_>, id: &UserId) -> Result<Option<UserAccount>, Fail> {
    let sql = format!(
        "SELECT {USER_COLUMNS} FROM users u LEFT JOIN patients p ON p.pk = u.patient WHERE u.id = ?1"
    );
    let mut stmt = tx.prepare_cached(&sql)?;
    let mut rows = stmt.query([id.as_str()])?;
    match rows.next()? {
        Some(row) => Ok(Some(user_from_row(row)?)),
        None => Ok(None),
    }
}

pub(super) fn users(tx: &Transaction<'_>) -> Result<Vec<UserAccount>, Fail> {
    let sql = format!(
        "SELECT {USER_COLUMNS} FROM users u LEFT JOIN patients p ON p.pk = u.patient ORDER BY u.id"
    );
    let mut stmt = tx.prepare_cached(&sql)?;
    let mut rows = stmt.query([])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(user_from_row(row)?);
    }
    Ok(out)
}

fn changed_user(changed: usize, id: &UserId) -> Result<(), Fail> {
    if changed == 0 {
        return Err(StoreError::NotFound {
            what: "account",
            id: id.to_string(),
        }
        .into());
    }
    Ok(())
}

pub(super) fn set_password(tx: &Transaction<'_>, id: &UserId, hash: &str) -> Result<(), Fail> {
    let changed = tx
        .prepare_cached(
            "UPDATE users SET password_hash = ?2, failed_logins = 0, locked_until_us = NULL WHERE id = ?1",
        )?
        .execute(params![id.as_str(), hash])?;
    changed_user(changed, id)
}

pub(super) fn set_login_state(
    tx: &Transaction<'_>,
    id: &UserId,
    failed: u32,
    locked_until: Option<Instant>,
) -> Result<(), Fail> {
    let changed = tx
        .prepare_cached("UPDATE users SET failed_logins = ?2, locked_until_us = ?3 WHERE id = ?1")?
        .execute(params![
            id.as_str(),
            i64::from(failed),
            locked_until.map(micros)
        ])?;
    changed_user(changed, id)
}

pub(super) fn set_user_disabled(
    tx: &Transaction<'_>,
    id: &UserId,
    disabled: bool,
) -> Result<(), Fail> {
    let changed = tx
        .prepare_cached("UPDATE users SET disabled = ?2 WHERE id = ?1")?
        .execute(params![id.as_str(), i64::from(disabled)])?;
    changed_user(changed, id)
}

// ---------------------------------------------------------------------------------------------
// Sessions

pub(super) fn create_session(tx: &Transaction<'_>, s: &SessionRecord) -> Result<(), Fail> {
    if !tx
        .prepare_cached("SELECT 1 FROM users WHERE id = ?1")?
        .exists([s.user.as_str()])?
    {
        return Err(StoreError::NotFound {
            what: "account",
            id: s.user.to_string(),
        }
        .into());
    }
    tx.prepare_cached(
        "INSERT INTO sessions (token_hash, user_id, csrf, created_us, last_seen_us, expires_us) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        &s.token_hash[..],
        s.user.as_str(),
        s.csrf,
        micros(s.created_at),
        micros(s.last_seen),
        micros(s.expires_at),
    ])?;
    Ok(())
}

pub(super) fn session(
    tx: &Transaction<'_>,
    token_hash: &SecretHash,
) -> Result<Option<SessionRecord>, Fail> {
    let found = tx
        .prepare_cached(
            "SELECT user_id, csrf, created_us, last_seen_us, expires_us FROM sessions WHERE token_hash = ?1",
        )?
        .query_row([&token_hash[..]], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
            ))
        })
        .optional()?;
    let Some((user, csrf, created, seen, expires)) = found else {
        return Ok(None);
    };
    Ok(Some(SessionRecord {
        token_hash: *token_hash,
        user: UserId::new(user).map_err(|_| corrupt("a session's account id is not valid"))?,
        csrf,
        created_at: stored_time(created, "a session")?,
        last_seen: stored_time(seen, "a session")?,
        expires_at: stored_time(expires, "a session")?,
    }))
}

pub(super) fn touch_session(
    tx: &Transaction<'_>,
    token_hash: &SecretHash,
    at: Instant,
) -> Result<(), Fail> {
    tx.prepare_cached(
        "UPDATE sessions SET last_seen_us = max(last_seen_us, ?2) WHERE token_hash = ?1",
    )?
    .execute(params![&token_hash[..], micros(at)])?;
    Ok(())
}

pub(super) fn end_session(tx: &Transaction<'_>, token_hash: &SecretHash) -> Result<(), Fail> {
    tx.prepare_cached("DELETE FROM sessions WHERE token_hash = ?1")?
        .execute([&token_hash[..]])?;
    Ok(())
}

pub(super) fn end_sessions_of(tx: &Transaction<'_>, user: &UserId) -> Result<u64, Fail> {
    let n = tx
        .prepare_cached("DELETE FROM sessions WHERE user_id = ?1")?
        .execute([user.as_str()])?;
    Ok(n as u64)
}

pub(super) fn prune_sessions(tx: &Transaction<'_>, now: Instant) -> Result<u64, Fail> {
    let n = tx
        .prepare_cached("DELETE FROM sessions WHERE expires_us < ?1")?
        .execute([micros(now)])?;
    Ok(n as u64)
}

// ---------------------------------------------------------------------------------------------
// Care teams and wards

pub(super) fn put_care_team(tx: &Transaction<'_>, team: &CareTeam) -> Result<(), Fail> {
    let id = team.id.as_str();
    tx.prepare_cached(
        "INSERT INTO care_teams (id, name, every_patient) VALUES (?1, ?2, ?3) \
         ON CONFLICT (id) DO UPDATE SET name = excluded.name, every_patient = excluded.every_patient",
    )?
    .execute(params![id, team.name, i64::from(team.every_patient)])?;
    for table in ["care_team_members", "care_team_patients", "care_team_wards"] {
        tx.execute(&format!("DELETE FROM {table} WHERE team = ?1"), [id])?;
    }
    let mut member = tx.prepare_cached(
        "INSERT OR IGNORE INTO care_team_members (team, user_id) VALUES (?1, ?2)",
    )?;
    for m in &team.members {
        member.execute([id, m.as_str()])?;
    }
    let mut patient = tx.prepare_cached(
        "INSERT OR IGNORE INTO care_team_patients (team, patient) VALUES (?1, ?2)",
    )?;
    for p in &team.patients {
        known_patient(tx, p)?;
        patient.execute([id, p.as_str()])?;
    }
    let mut ward =
        tx.prepare_cached("INSERT OR IGNORE INTO care_team_wards (team, ward) VALUES (?1, ?2)")?;
    for w in &team.wards {
        ward.execute([id, w.as_str()])?;
    }
    Ok(())
}

fn strings(tx: &Transaction<'_>, sql: &str, key: &str) -> Result<Vec<String>, Fail> {
    let mut stmt = tx.prepare_cached(sql)?;
    let rows = stmt.query_map([key], |r| r.get::<_, String>(0))?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

pub(super) fn care_teams(tx: &Transaction<'_>) -> Result<Vec<CareTeam>, Fail> {
    let teams: Vec<(String, String, i64)> = {
        let mut stmt =
            tx.prepare_cached("SELECT id, name, every_patient FROM care_teams ORDER BY id")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    let bad = |what: &str| {
        corrupt(format!(
            "a stored care team's {what} is not a valid identifier"
        ))
    };
    teams
        .into_iter()
        .map(|(id, name, every)| {
            let members = strings(
                tx,
                "SELECT user_id FROM care_team_members WHERE team = ?1 ORDER BY user_id",
                &id,
            )?
            .into_iter()
            .map(|m| UserId::new(m).map_err(|_| bad("member")))
            .collect::<Result<_, _>>()?;
            let patients = strings(
                tx,
                "SELECT patient FROM care_team_patients WHERE team = ?1 ORDER BY patient",
                &id,
            )?
            .into_iter()
            .map(|p| PatientId::new(p).map_err(|_| bad("patient")))
            .collect::<Result<_, _>>()?;
            let wards = strings(
                tx,
                "SELECT ward FROM care_team_wards WHERE team = ?1 ORDER BY ward",
                &id,
            )?;
            Ok(CareTeam {
                id: CareTeamId::new(id).map_err(|_| bad("id"))?,
                name,
                members,
                patients,
                wards,
                every_patient: every != 0,
            })
        })
        .collect()
}

pub(super) fn set_patient_ward(
    tx: &Transaction<'_>,
    patient: &PatientId,
    ward: Option<&str>,
) -> Result<(), Fail> {
    known_patient(tx, patient)?;
    match ward {
        Some(ward) => tx
            .prepare_cached(
                "INSERT INTO patient_wards (patient, ward) VALUES (?1, ?2) \
                 ON CONFLICT (patient) DO UPDATE SET ward = excluded.ward",
            )?
            .execute([patient.as_str(), ward])?,
        None => tx
            .prepare_cached("DELETE FROM patient_wards WHERE patient = ?1")?
            .execute([patient.as_str()])?,
    };
    Ok(())
}

pub(super) fn patient_ward(
    tx: &Transaction<'_>,
    patient: &PatientId,
) -> Result<Option<String>, Fail> {
    Ok(tx
        .prepare_cached("SELECT ward FROM patient_wards WHERE patient = ?1")?
        .query_row([patient.as_str()], |r| r.get(0))
        .optional()?)
}

pub(super) fn care_reach(tx: &Transaction<'_>, user: &UserId) -> Result<CareReach, Fail> {
    let every: bool = tx
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM care_team_members m JOIN care_teams t ON t.id = m.team \
             WHERE m.user_id = ?1 AND t.every_patient = 1)",
        )?
        .query_row([user.as_str()], |r| r.get(0))?;
    if every {
        return Ok(CareReach {
            every_patient: true,
            patients: Vec::new(),
        });
    }
    let patients = strings(
        tx,
        "SELECT tp.patient FROM care_team_members m JOIN care_team_patients tp ON tp.team = m.team \
         WHERE m.user_id = ?1 \
         UNION \
         SELECT pw.patient FROM care_team_members m JOIN care_team_wards tw ON tw.team = m.team \
         JOIN patient_wards pw ON pw.ward = tw.ward WHERE m.user_id = ?1 \
         ORDER BY 1",
        user.as_str(),
    )?
    .into_iter()
    .map(|p| PatientId::new(p).map_err(|_| corrupt("a stored patient id is not valid")))
    .collect::<Result<_, _>>()?;
    Ok(CareReach {
        every_patient: false,
        patients,
    })
}

// ---------------------------------------------------------------------------------------------
// Consents

const CONSENT_COLUMNS: &str = "id, patient, grantee_kind, grantee, resource_types, start_us, \
     end_us, status, recorded_by, recorded_us";

fn consent_from_row(row: &Row<'_>) -> Result<Consent, Fail> {
    let id: String = row.get(0)?;
    let bad = |what: &str| corrupt(format!("stored consent {id} has an invalid {what}"));
    let patient: String = row.get(1)?;
    let kind: String = row.get(2)?;
    let types: String = row.get(4)?;
    let end: Option<i64> = row.get(6)?;
    let status: String = row.get(7)?;
    let by: String = row.get(8)?;
    Ok(Consent {
        patient: PatientId::new(patient).map_err(|_| bad("patient"))?,
        grantee: Grantee {
            kind: match kind.as_str() {
                "person" => GranteeKind::Person,
                "organization" => GranteeKind::Organization,
                _ => return Err(bad("grantee kind")),
            },
            id: row.get(3)?,
        },
        resource_types: serde_json::from_str(&types).map_err(|_| bad("resource type list"))?,
        start: stored_time(row.get(5)?, "a consent")?,
        end: end.map(|us| stored_time(us, "a consent")).transpose()?,
        status: match status.as_str() {
            "active" => ConsentStatus::Active,
            "inactive" => ConsentStatus::Inactive,
            _ => return Err(bad("status")),
        },
        recorded_by: UserId::new(by).map_err(|_| bad("recorder"))?,
        recorded_at: stored_time(row.get(9)?, "a consent")?,
        id: ConsentId::new(id.clone()).map_err(|_| bad("id"))?,
    })
}

fn consents(tx: &Transaction<'_>, sql: &str, args: &[&str]) -> Result<Vec<Consent>, Fail> {
    let mut stmt = tx.prepare_cached(sql)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(args))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(consent_from_row(row)?);
    }
    Ok(out)
}

pub(super) fn put_consent(tx: &Transaction<'_>, c: &Consent) -> Result<(), Fail> {
    known_patient(tx, &c.patient)?;
    let types = serde_json::to_string(&c.resource_types)
        .map_err(|e| StoreError::Backend(format!("encoding a consent's resource types: {e}")))?;
    tx.prepare_cached(&format!(
        "INSERT INTO consents ({CONSENT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
         ON CONFLICT (id) DO UPDATE SET patient = excluded.patient, grantee_kind = excluded.grantee_kind, \
         grantee = excluded.grantee, resource_types = excluded.resource_types, start_us = excluded.start_us, \
         end_us = excluded.end_us, status = excluded.status, recorded_by = excluded.recorded_by, \
         recorded_us = excluded.recorded_us"
    ))?
    .execute(params![
        c.id.as_str(),
        c.patient.as_str(),
        match c.grantee.kind {
            GranteeKind::Person => "person",
            GranteeKind::Organization => "organization",
        },
        c.grantee.id,
        types,
        micros(c.start),
        c.end.map(micros),
        match c.status {
            ConsentStatus::Active => "active",
            ConsentStatus::Inactive => "inactive",
        },
        c.recorded_by.as_str(),
        micros(c.recorded_at),
    ])?;
    Ok(())
}

pub(super) fn consent(tx: &Transaction<'_>, id: &ConsentId) -> Result<Option<Consent>, Fail> {
    Ok(consents(
        tx,
        &format!("SELECT {CONSENT_COLUMNS} FROM consents WHERE id = ?1"),
        &[id.as_str()],
    )?
    .pop())
}

pub(super) fn consents_of(tx: &Transaction<'_>, patient: &PatientId) -> Result<Vec<Consent>, Fail> {
    consents(
        tx,
        &format!(
            "SELECT {CONSENT_COLUMNS} FROM consents WHERE patient = ?1 ORDER BY recorded_us, id"
        ),
        &[patient.as_str()],
    )
}

pub(super) fn consents_granted_to(
    tx: &Transaction<'_>,
    person: &UserId,
    organization: Option<&str>,
) -> Result<Vec<Consent>, Fail> {
    let mut found = consents(
        tx,
        &format!(
            "SELECT {CONSENT_COLUMNS} FROM consents WHERE grantee_kind = 'person' AND grantee = ?1 \
             ORDER BY recorded_us, id"
        ),
        &[person.as_str()],
    )?;
    if let Some(org) = organization {
        found.extend(consents(
            tx,
            &format!(
                "SELECT {CONSENT_COLUMNS} FROM consents WHERE grantee_kind = 'organization' \
                 AND grantee = ?1 ORDER BY recorded_us, id"
            ),
            &[org],
        )?);
    }
    Ok(found)
}

// ---------------------------------------------------------------------------------------------
// Emergency access

pub(super) fn grant_emergency_access(
    tx: &Transaction<'_>,
    e: &EmergencyAccess,
) -> Result<(), Fail> {
    known_patient(tx, &e.patient)?;
    if e.end <= e.start {
        return Err(
            StoreError::Conflict("an emergency access must end after it starts".into()).into(),
        );
    }
    tx.prepare_cached(
        "INSERT INTO emergency_access (patient, clinician, reason, start_us, end_us) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        e.patient.as_str(),
        e.clinician.as_str(),
        e.reason,
        micros(e.start),
        micros(e.end),
    ])?;
    Ok(())
}

fn emergency_rows(
    tx: &Transaction<'_>,
    sql: &str,
    args: &[&dyn rusqlite::ToSql],
) -> Result<Vec<EmergencyAccess>, Fail> {
    let mut stmt = tx.prepare_cached(sql)?;
    let mut rows = stmt.query(args)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let patient: String = row.get(0)?;
        let clinician: String = row.get(1)?;
        out.push(EmergencyAccess {
            patient: PatientId::new(patient)
                .map_err(|_| corrupt("a stored emergency access names an invalid patient"))?,
            clinician: UserId::new(clinician)
                .map_err(|_| corrupt("a stored emergency access names an invalid account"))?,
            reason: row.get(2)?,
            start: stored_time(row.get(3)?, "an emergency access")?,
            end: stored_time(row.get(4)?, "an emergency access")?,
        });
    }
    Ok(out)
}

pub(super) fn emergency_access_in_force(
    tx: &Transaction<'_>,
    clinician: &UserId,
    at: Instant,
) -> Result<Vec<EmergencyAccess>, Fail> {
    emergency_rows(
        tx,
        "SELECT patient, clinician, reason, start_us, end_us FROM emergency_access \
         WHERE clinician = ?1 AND end_us > ?2 AND start_us <= ?2 ORDER BY start_us",
        &[&clinician.as_str(), &micros(at)],
    )
}

pub(super) fn emergency_accesses_since(
    tx: &Transaction<'_>,
    since: Instant,
) -> Result<Vec<EmergencyAccess>, Fail> {
    emergency_rows(
        tx,
        "SELECT patient, clinician, reason, start_us, end_us FROM emergency_access \
         WHERE start_us >= ?1 ORDER BY start_us DESC, id DESC LIMIT 10000",
        &[&micros(since)],
    )
}
