//! The SQLite schema and its versioned migrations.
//!
//! `PRAGMA user_version` holds the number of migrations applied; `schema_migrations` records when
//! each was applied. Migrations run in order, each in its own `BEGIN IMMEDIATE` transaction that
//! also bumps `user_version`, so a crash leaves the database at a whole version and two processes
//! opening the same file at once apply each migration exactly once. A database whose version is
//! newer than [`MIGRATIONS`] knows is refused rather than guessed at.
//!
//! Conventions:
//! - times are integer microseconds since the Unix epoch, UTC (`*_us` columns);
//! - patients and devices have an integer surrogate key `pk` (an alias of the rowid, so `VACUUM`
//!   keeps it) that the big tables reference instead of repeating the text id;
//! - observation codes are small integers mapped to `ObservationCode::short_name()` in
//!   `observation_codes`; waveform codes are stored as `WaveformCode::short_name()` text.

use rusqlite::{Connection, TransactionBehavior};
use tracing::info;

use super::Fail;
use crate::StoreError;

/// `PRAGMA application_id` of a Vigil database ("VIGL"), so another program's SQLite file is not
/// mistaken for ours.
pub(super) const APPLICATION_ID: i64 = 0x5649_474C;

/// The migrations, oldest first; the database's `user_version` is how many have been applied.
/// Never edit a released migration: append a new one.
pub(super) const MIGRATIONS: &[&str] =
    &[V1, V2, V3, V4, V5, V6, V7, V8, V9, V10, V11, V12, V13, V14];

const V1: &str = r#"
CREATE TABLE schema_migrations (
    version       INTEGER PRIMARY KEY,
    applied_at_us INTEGER NOT NULL
) STRICT;

-- Small counters kept in step with the data, so `stats` and waveform searches need no scans.
-- observations: number of rows in `observations`.
-- waveform_max_span_us: the longest `end_us - start_us` of any stored waveform segment.
CREATE TABLE store_meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
INSERT INTO store_meta (key, value) VALUES ('observations', 0), ('waveform_max_span_us', 0);

CREATE TABLE patients (
    pk          INTEGER PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    family      TEXT,
    given       TEXT NOT NULL,            -- JSON array of strings
    mrn         TEXT UNIQUE,
    birth_date  TEXT,                     -- YYYY-MM-DD
    gender      TEXT,                     -- FHIR AdministrativeGender code
    active      INTEGER NOT NULL CHECK (active IN (0, 1)),
    search_text TEXT NOT NULL             -- lower-cased name, family, given; U+001F between
) STRICT;

CREATE TABLE devices (
    pk           INTEGER PRIMARY KEY,
    id           TEXT NOT NULL UNIQUE,
    kind         TEXT NOT NULL,
    manufacturer TEXT,
    model        TEXT,
    serial       TEXT,
    firmware     TEXT,
    battery_pct  INTEGER CHECK (battery_pct BETWEEN 0 AND 255),
    last_seen_us INTEGER,
    secret_hash  BLOB NOT NULL CHECK (length(secret_hash) = 32)   -- SHA-256 of the secret
) STRICT;
CREATE INDEX devices_serial ON devices (serial) WHERE serial IS NOT NULL;

-- A device measured a patient over [from_us, to_us); to_us NULL = still open.
-- Bindings of one device never overlap; at most one is open.
CREATE TABLE bindings (
    id      INTEGER PRIMARY KEY,
    device  INTEGER NOT NULL REFERENCES devices (pk),
    patient INTEGER NOT NULL REFERENCES patients (pk),
    from_us INTEGER NOT NULL,
    to_us   INTEGER CHECK (to_us IS NULL OR to_us >= from_us)
) STRICT;
CREATE INDEX bindings_device ON bindings (device, from_us);
CREATE UNIQUE INDEX bindings_one_open ON bindings (device) WHERE to_us IS NULL;
CREATE INDEX bindings_open_by_patient ON bindings (patient) WHERE to_us IS NULL;

CREATE TABLE observation_codes (
    code       INTEGER PRIMARY KEY,
    short_name TEXT NOT NULL UNIQUE       -- ObservationCode::short_name()
) STRICT;

-- The hot table: one row per stored reading, kept small.
-- value:      the quantity of a single-measurand code, in the measurand's canonical unit unless
--             `unit` says otherwise (NULL = canonical).
-- systolic, diastolic, mean: the blood-pressure panel's components (mm[Hg]), NULL when absent.
-- value_json: any other shape of value (ObservationValue as JSON); NULL for the two above.
-- status:     see `status_code` in the Rust code (0 = final).
-- quality:    QualityFlags bits.
CREATE TABLE observations (
    id           INTEGER PRIMARY KEY,
    patient      INTEGER NOT NULL REFERENCES patients (pk),
    device       INTEGER NOT NULL REFERENCES devices (pk),
    code         INTEGER NOT NULL REFERENCES observation_codes (code),
    effective_us INTEGER NOT NULL,
    received_us  INTEGER NOT NULL,
    value        REAL,
    unit         TEXT,
    systolic     REAL,
    diastolic    REAL,
    mean         REAL,
    value_json   TEXT,
    status       INTEGER NOT NULL,
    quality      INTEGER NOT NULL
) STRICT;
-- De-duplication: a redelivered reading hits this and is reported as a duplicate.
CREATE UNIQUE INDEX observations_dedup ON observations (device, code, effective_us);
-- Search by patient and code(s) in time order, and by patient in time order (the rowid, which is
-- the observation id, is the implicit last column of both: it breaks ties for keyset paging).
CREATE INDEX observations_patient_code ON observations (patient, code, effective_us);
CREATE INDEX observations_patient ON observations (patient, effective_us);

-- samples: format byte 1, then each sample's difference from the previous one (the first from 0)
-- zigzag-encoded as an unsigned LEB128 varint; see `codec::encode_samples`.
CREATE TABLE waveforms (
    id           INTEGER PRIMARY KEY,
    patient      INTEGER NOT NULL REFERENCES patients (pk),
    device       INTEGER NOT NULL REFERENCES devices (pk),
    code         TEXT NOT NULL,           -- WaveformCode::short_name()
    start_us     INTEGER NOT NULL,
    end_us       INTEGER NOT NULL,        -- start + period × samples, for overlap searches
    received_us  INTEGER NOT NULL,
    period_ms    REAL NOT NULL,
    factor       REAL NOT NULL,
    origin       REAL NOT NULL,
    sample_count INTEGER NOT NULL,
    samples      BLOB NOT NULL
) STRICT;
CREATE UNIQUE INDEX waveforms_dedup ON waveforms (device, code, start_us);
CREATE INDEX waveforms_patient ON waveforms (patient, start_us);
"#;

/// Surveillance (issue 3): alarms, their history, the live-stream log, per-patient settings; and
/// the observation log made append-only, so observation ids can be tailed.
const V2: &str = r#"
-- Observation ids are the rowid (INTEGER PRIMARY KEY without AUTOINCREMENT): a new row gets the
-- largest id + 1, assigned under the write lock, so ids increase in commit order. They could only
-- be reused if the row with the largest id were deleted; observations are never deleted, and this
-- trigger makes sure of it, so `observations_after` tailing by id misses nothing. (Retention of
-- observations, if it ever comes, must replace this with an AUTOINCREMENT sequence.)
CREATE TRIGGER observations_append_only BEFORE DELETE ON observations
BEGIN
    SELECT RAISE(ABORT, 'observations are append-only');
END;

-- One row per alarm, upserted on every change. id is assigned by the surveillance engine; alarms
-- are never deleted, so max(id) continues the numbering after a restart. The snapshot is the
-- caller's JSON, verbatim; the other columns are copies of its fields for searching.
CREATE TABLE alarms (
    id            INTEGER PRIMARY KEY,
    patient       INTEGER REFERENCES patients (pk),
    device        INTEGER REFERENCES devices (pk),
    condition     TEXT NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('active', 'acknowledged', 'resolved')),
    priority      TEXT NOT NULL CHECK (priority IN ('low', 'medium', 'high')),
    raised_at_us  INTEGER NOT NULL,
    updated_at_us INTEGER NOT NULL,
    snapshot      TEXT NOT NULL
) STRICT;
-- A patient's alarms, newest first.
CREATE INDEX alarms_patient ON alarms (patient, id);
-- The open alarms (few), newest first: the dashboard and the engine's restart.
CREATE INDEX alarms_open ON alarms (id) WHERE state <> 'resolved';

-- Each alarm's history in the order recorded (the rowid).
CREATE TABLE alarm_events (
    id     INTEGER PRIMARY KEY,
    alarm  INTEGER NOT NULL REFERENCES alarms (id),
    at_us  INTEGER NOT NULL,
    kind   TEXT NOT NULL,
    actor  TEXT,                          -- who, when a person did it
    detail TEXT NOT NULL
) STRICT;
CREATE INDEX alarm_events_alarm ON alarm_events (alarm, id);

-- The live-stream log. AUTOINCREMENT: a seq is never reused, also after the newest events were
-- pruned (sqlite_sequence keeps the highest ever assigned).
CREATE TABLE stream_events (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    at_us   INTEGER NOT NULL,
    patient INTEGER REFERENCES patients (pk),
    kind    TEXT NOT NULL,
    data    TEXT NOT NULL
) STRICT;
CREATE INDEX stream_events_patient ON stream_events (patient, seq);
-- Retention: pruning by time.
CREATE INDEX stream_events_at ON stream_events (at_us);

-- A patient's surveillance settings (the caller's JSON, verbatim).
CREATE TABLE patient_settings (
    patient  INTEGER PRIMARY KEY REFERENCES patients (pk),
    settings TEXT NOT NULL
) STRICT;
"#;

/// Observations Vigil derives (the NEWS2 scorer's records): the scorer is a registered software
/// device, and since it records for every patient, de-duplication is per patient too. For device
/// readings this changes nothing (a device's reading time names one patient through its
/// bindings). The surveillance engine's position in the observation log is kept with its outputs.
const V3: &str = r#"
DROP INDEX observations_dedup;
CREATE UNIQUE INDEX observations_dedup ON observations (device, code, effective_us, patient);

-- Vigil's NEWS2 scorer. An all-zero secret hash: no secret hashes to it (SHA-256 preimage
-- resistance), so nothing can sign in as this device.
INSERT INTO devices (id, kind, manufacturer, model, secret_hash)
VALUES ('vigil-news2', 'software', 'Vigil', 'NEWS2 scorer', zeroblob(32))
ON CONFLICT (id) DO NOTHING;

-- The last observation id the surveillance engine has evaluated (0: none).
INSERT INTO store_meta (key, value) VALUES ('surveillance_position', 0);
"#;

/// Bluetooth LE peripherals are found by their device address when a gateway relays their data;
/// an address names at most one device.
const V4: &str = r#"
ALTER TABLE devices ADD COLUMN ble_address TEXT;
CREATE UNIQUE INDEX devices_ble_address ON devices (ble_address) WHERE ble_address IS NOT NULL;
"#;

/// Refused device messages, kept with their reasons for the administrator (retention by time).
/// The device is kept as its id text, not a key: a refusal may name a device that is not
/// registered (an unknown sender).
const V5: &str = r#"
CREATE TABLE refused_messages (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    at_us   INTEGER NOT NULL,
    source  TEXT NOT NULL,
    device  TEXT,
    kind    TEXT NOT NULL,
    reason  TEXT NOT NULL,
    payload BLOB NOT NULL,
    whole   INTEGER NOT NULL CHECK (whole IN (0, 1))
) STRICT;
CREATE INDEX refused_messages_at ON refused_messages (at_us);
CREATE INDEX refused_messages_device ON refused_messages (device, id) WHERE device IS NOT NULL;
"#;

/// Commands to devices, kept until confirmed or expired.
const V6: &str = r#"
CREATE TABLE device_commands (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    device         INTEGER NOT NULL REFERENCES devices (pk),
    correlation_id TEXT NOT NULL,
    body           TEXT NOT NULL,
    created_us     INTEGER NOT NULL,
    expires_us     INTEGER NOT NULL,
    sent_us        INTEGER,
    confirmed_us   INTEGER,
    outcome        TEXT CHECK (outcome IN ('ok', 'failed', 'rejected')),
    detail         TEXT,
    UNIQUE (device, correlation_id)
) STRICT;
CREATE INDEX device_commands_pending ON device_commands (device, id) WHERE confirmed_us IS NULL;
"#;

/// The device of observations posted through the FHIR API without a device reference.
const V7: &str = r#"
INSERT INTO devices (id, kind, manufacturer, model, secret_hash)
VALUES ('vigil-fhir', 'software', 'Vigil', 'FHIR API entry (no device named)', zeroblob(32))
ON CONFLICT (id) DO NOTHING;
"#;

/// Vendor mapping templates, every version kept.
const V8: &str = r#"
CREATE TABLE templates (
    name        TEXT NOT NULL,
    version     INTEGER NOT NULL CHECK (version >= 1),
    format      TEXT NOT NULL CHECK (format IN ('json', 'yaml')),
    text        TEXT NOT NULL,
    uploaded_us INTEGER NOT NULL,
    uploaded_by TEXT NOT NULL,
    PRIMARY KEY (name, version)
) STRICT, WITHOUT ROWID;
"#;

/// Device calibration: when last done, and when next due.
const V9: &str = r#"
ALTER TABLE devices ADD COLUMN calibrated_us INTEGER;
ALTER TABLE devices ADD COLUMN calibration_due_us INTEGER;
"#;

/// A device's received signal strength, as last reported (like its battery).
const V10: &str = r#"
ALTER TABLE devices ADD COLUMN signal_dbm INTEGER;
"#;

/// A corrected or amended result (HL7 OBX-11 `C`, FHIR `corrected`) for the same device, code, time
/// and patient is a new row, not a duplicate of the original: the log keeps both, the correction
/// with its own status, and a resent correction is still recognised as a duplicate.
const V11: &str = r#"
DROP INDEX observations_dedup;
CREATE UNIQUE INDEX observations_dedup ON observations (device, code, effective_us, patient, status);
"#;

/// Device intrusion detection: security alerts for administrators, and quarantine. A device's
/// `device` here is text, not a reference: alerts also concern ids that are not registered (someone
/// guessing). `detail` never holds patient data.
const V12: &str = r#"
ALTER TABLE devices ADD COLUMN quarantined_us INTEGER;
CREATE TABLE security_alerts (
    id              INTEGER PRIMARY KEY,
    device          TEXT,
    peer            TEXT,
    kind            TEXT NOT NULL,
    count           INTEGER NOT NULL CHECK (count >= 0),
    first_seen_us   INTEGER NOT NULL,
    last_seen_us    INTEGER NOT NULL,
    detail          TEXT NOT NULL,
    quarantined     INTEGER NOT NULL CHECK (quarantined IN (0, 1)),
    status          TEXT NOT NULL CHECK (status IN ('open', 'acknowledged')),
    acknowledged_by TEXT,
    acknowledged_us INTEGER
) STRICT;
CREATE INDEX security_alerts_open ON security_alerts (kind, device, peer) WHERE status = 'open';
"#;

/// People and who cares for whom: accounts (argon2id hashes, lockout state), browser sessions
/// (only the cookie's hash), care teams with their members, patients and wards, patients' wards,
/// and patients' consents to share.
const V13: &str = r#"
CREATE TABLE users (
    id              TEXT PRIMARY KEY,
    display_name    TEXT NOT NULL,
    role            TEXT NOT NULL,
    password_hash   TEXT,
    patient         INTEGER REFERENCES patients (pk),
    organization    TEXT,
    failed_logins   INTEGER NOT NULL DEFAULT 0 CHECK (failed_logins >= 0),
    locked_until_us INTEGER,
    disabled        INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    created_us      INTEGER NOT NULL
) STRICT;

CREATE TABLE sessions (
    token_hash   BLOB PRIMARY KEY CHECK (length(token_hash) = 32),
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf         TEXT NOT NULL,
    created_us   INTEGER NOT NULL,
    last_seen_us INTEGER NOT NULL,
    expires_us   INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE care_teams (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    every_patient INTEGER NOT NULL CHECK (every_patient IN (0, 1))
) STRICT, WITHOUT ROWID;
CREATE TABLE care_team_members (
    team    TEXT NOT NULL REFERENCES care_teams (id) ON DELETE CASCADE,
    user_id TEXT NOT NULL,
    PRIMARY KEY (team, user_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX care_team_members_user ON care_team_members (user_id);
CREATE TABLE care_team_patients (
    team    TEXT NOT NULL REFERENCES care_teams (id) ON DELETE CASCADE,
    patient TEXT NOT NULL,
    PRIMARY KEY (team, patient)
) STRICT, WITHOUT ROWID;
CREATE TABLE care_team_wards (
    team TEXT NOT NULL REFERENCES care_teams (id) ON DELETE CASCADE,
    ward TEXT NOT NULL,
    PRIMARY KEY (team, ward)
) STRICT, WITHOUT ROWID;
CREATE TABLE patient_wards (
    patient TEXT PRIMARY KEY,
    ward    TEXT NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX patient_wards_ward ON patient_wards (ward);

CREATE TABLE consents (
    id             TEXT PRIMARY KEY,
    patient        TEXT NOT NULL,
    grantee_kind   TEXT NOT NULL CHECK (grantee_kind IN ('person', 'organization')),
    grantee        TEXT NOT NULL,
    resource_types TEXT NOT NULL,   -- JSON array of FHIR resource type names; empty = all
    start_us       INTEGER NOT NULL,
    end_us         INTEGER,
    status         TEXT NOT NULL CHECK (status IN ('active', 'inactive')),
    recorded_by    TEXT NOT NULL,
    recorded_us    INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX consents_patient ON consents (patient);
CREATE INDEX consents_grantee ON consents (grantee_kind, grantee);
"#;

/// Clinicians' emergency ("break-glass") access to patients outside their care teams, kept for
/// review.
const V14: &str = r#"
CREATE TABLE emergency_access (
    id        INTEGER PRIMARY KEY,
    patient   TEXT NOT NULL,
    clinician TEXT NOT NULL,
    reason    TEXT NOT NULL,
    start_us  INTEGER NOT NULL,
    end_us    INTEGER NOT NULL CHECK (end_us > start_us)
) STRICT;
CREATE INDEX emergency_access_clinician ON emergency_access (clinician, end_us);
CREATE INDEX emergency_access_start ON emergency_access (start_us);
"#;

/// Brings the database up to the newest schema this code knows, or refuses a newer one.
pub(super) fn migrate(conn: &mut Connection) -> Result<(), Fail> {
    let known = MIGRATIONS.len() as i64;
    loop {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
        let application: i64 = tx.pragma_query_value(None, "application_id", |r| r.get(0))?;
        if version > 0 && application != APPLICATION_ID {
            return Err(StoreError::Corrupt(format!(
                "the database file has application id {application:#x}, not Vigil's; it belongs to another program"
            ))
            .into());
        }
        if version < 0 || version > known {
            return Err(StoreError::Corrupt(format!(
                "the database has schema version {version}, but this version of Vigil knows versions up \
                 to {known}; it was written by a newer Vigil: upgrade Vigil or restore a backup"
            ))
            .into());
        }
        if version == known {
            tx.commit()?;
            return Ok(());
        }
        let next = version + 1;
        tx.execute_batch(MIGRATIONS[version as usize])?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at_us) VALUES (?1, ?2)",
            (next, chrono::Utc::now().timestamp_micros()),
        )?;
        tx.pragma_update(None, "user_version", next)?;
        tx.pragma_update(None, "application_id", APPLICATION_ID)?;
        tx.commit()?;
        info!(version = next, "applied storage schema migration");
    }
}
