//! [`SqliteAuditLog`]: the audit trail in its own SQLite file, `audit.sqlite`, beside `vigil.db`.
//!
//! A separate file so that audit appends never wait for the ingest writer's lock on the main
//! database (and the other way round). Connections are opened by the same `open_connection` as
//! the main store (WAL, `synchronous=FULL`, busy timeout), so whatever that applies, e.g. an
//! encryption key, applies here too.
//!
//! - `audit_log` holds the chain (see [`crate::audit`]); `audit_patient` indexes entries by
//!   patient. Triggers abort every `UPDATE` and `DELETE` on both: the log is append-only for
//!   anything using SQL. Someone with the file can drop the triggers, which is what the chain
//!   and the anchor are for.
//! - The anchor is the file `audit.head` ([`AUDIT_ANCHOR_FILE`]): `"{seq} {hash hex}\n"`,
//!   replaced atomically (write a temporary file, fsync, rename, fsync the directory) after each
//!   committed append. A crash between the commit and the rename leaves the anchor one append
//!   behind, which verification accepts (the entries after it are still chained).
//! - Several processes may append (the server and the operator's command line): each append
//!   holds an exclusive lock on `audit.lock` from reading the head to writing the anchor, so
//!   the chain never forks and the anchor never goes backwards.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params, params_from_iter};
use vigil_model::audit::AuditEntry;

use super::{Fail, Readers, Role, codec, open_connection};
use crate::StoreError;
use crate::audit::{
    AuditHead, AuditLog, AuditQuery, AuditRecord, ChainHash, ChainLink, GENESIS, IndexedColumns,
    chain_hash,
};

/// The audit database inside the data directory.
pub const AUDIT_DATABASE_FILE: &str = "audit.sqlite";
/// The anchor: the head after the last append.
pub const AUDIT_ANCHOR_FILE: &str = "audit.head";
/// Held while appending, across processes.
const AUDIT_LOCK_FILE: &str = "audit.lock";

/// `PRAGMA application_id` of the audit database ("VGAU").
const APPLICATION_ID: i64 = 0x5647_4155;

/// Migrations, oldest first; `user_version` counts those applied. Never edit one: append.
const MIGRATIONS: &[&str] = &[V1];

const V1: &str = r#"
CREATE TABLE audit_log (
    seq         INTEGER PRIMARY KEY,      -- 1, 2, 3, … with no gaps
    recorded_us INTEGER NOT NULL,         -- the entry's time (also in the entry), for searching
    agent       TEXT NOT NULL,            -- the entry's agent id, for searching
    action      TEXT NOT NULL,            -- the entry's action code, for searching
    entry       TEXT NOT NULL,            -- canonical JSON: exactly the bytes hashed
    prev_hash   BLOB NOT NULL,
    hash        BLOB NOT NULL
) STRICT;
CREATE INDEX audit_log_recorded ON audit_log (recorded_us);
CREATE INDEX audit_log_agent ON audit_log (agent, seq);
CREATE INDEX audit_log_action ON audit_log (action, seq);

CREATE TABLE audit_patient (
    patient TEXT NOT NULL,
    seq     INTEGER NOT NULL REFERENCES audit_log (seq),
    PRIMARY KEY (patient, seq)
) STRICT, WITHOUT ROWID;
CREATE INDEX audit_patient_seq ON audit_patient (seq);

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_patient_no_update BEFORE UPDATE ON audit_patient
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_patient_no_delete BEFORE DELETE ON audit_patient
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"#;

/// The embedded audit log. `Send + Sync`: share it in an `Arc`.
pub struct SqliteAuditLog {
    dir: PathBuf,
    writer: Mutex<Connection>,
    readers: Readers,
}

impl std::fmt::Debug for SqliteAuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteAuditLog")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl SqliteAuditLog {
    /// Opens (creating if needed) an unencrypted audit log in `data_dir` (tests).
    pub fn open(data_dir: &Path) -> Result<SqliteAuditLog, StoreError> {
        SqliteAuditLog::open_with(data_dir, None)
    }

    /// Opens (creating if needed) the audit log in `data_dir`, encrypted with the store's key
    /// when one is given (the audit trail names patients: it is health data too).
    pub fn open_with(
        data_dir: &Path,
        key: Option<&crate::key::StoreKey>,
    ) -> Result<SqliteAuditLog, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            StoreError::Backend(format!(
                "cannot create the data directory {}: {e}",
                data_dir.display()
            ))
        })?;
        let path = data_dir.join(AUDIT_DATABASE_FILE);
        let opened = (|| -> Result<SqliteAuditLog, Fail> {
            let mut conn = open_connection(&path, Role::Writer, key)?;
            migrate(&mut conn)?;
            Ok(SqliteAuditLog {
                dir: data_dir.to_path_buf(),
                writer: Mutex::new(conn),
                readers: Readers::new(path.clone(), key.cloned()),
            })
        })();
        opened.map_err(|e| e.into_store("opening the audit log"))
    }

    /// Opens the audit log in `data_dir` only if it exists (`NotFound` otherwise): for checking
    /// a data directory without leaving an empty log behind.
    pub fn open_existing(
        data_dir: &Path,
        key: Option<&crate::key::StoreKey>,
    ) -> Result<SqliteAuditLog, StoreError> {
        if !data_dir.join(AUDIT_DATABASE_FILE).is_file() {
            return Err(StoreError::NotFound {
                what: "audit log",
                id: data_dir.join(AUDIT_DATABASE_FILE).display().to_string(),
            });
        }
        SqliteAuditLog::open_with(data_dir, key)
    }

    /// The audit database file.
    pub fn path(&self) -> PathBuf {
        self.dir.join(AUDIT_DATABASE_FILE)
    }

    fn read<T>(
        &self,
        op: &'static str,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, Fail>,
    ) -> Result<T, StoreError> {
        let result = (|| {
            let mut reader = self.readers.get()?;
            let tx = reader
                .conn()
                .transaction_with_behavior(TransactionBehavior::Deferred)?;
            let out = f(&tx)?;
            tx.commit()?;
            Ok(out)
        })();
        result.map_err(|e: Fail| e.into_store(op))
    }

    fn lock_appenders(&self) -> Result<File, StoreError> {
        let path = self.dir.join(AUDIT_LOCK_FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| {
                StoreError::Backend(format!(
                    "cannot open the audit lock {}: {e}",
                    path.display()
                ))
            })?;
        file.lock().map_err(|e| {
            StoreError::Backend(format!(
                "cannot lock the audit lock {}: {e}",
                path.display()
            ))
        })?;
        Ok(file)
    }

    /// Replaces the anchor atomically and durably.
    fn write_anchor(&self, head: &AuditHead) -> std::io::Result<()> {
        let tmp = self.dir.join(format!("{AUDIT_ANCHOR_FILE}.tmp"));
        let mut file = File::create(&tmp)?;
        file.write_all(format!("{}\n", head.to_text()).as_bytes())?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, self.dir.join(AUDIT_ANCHOR_FILE))?;
        // The rename itself is durable only once the directory is.
        File::open(&self.dir)?.sync_all()
    }
}

fn migrate(conn: &mut Connection) -> Result<(), Fail> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let app: i64 = tx.pragma_query_value(None, "application_id", |r| r.get(0))?;
    let known = MIGRATIONS.len() as i64;
    if version > known {
        return Err(StoreError::Corrupt(format!(
            "the audit log has schema version {version}; this Vigil knows up to {known}"
        ))
        .into());
    }
    if version > 0 && app != APPLICATION_ID {
        return Err(StoreError::Corrupt("audit.sqlite is not a Vigil audit log".into()).into());
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i as i64 + 1)?;
    }
    tx.pragma_update(None, "application_id", APPLICATION_ID)?;
    tx.commit()?;
    Ok(())
}

fn head_of(conn: &Connection) -> Result<Option<AuditHead>, Fail> {
    let row: Option<(i64, Vec<u8>)> = conn
        .query_row(
            "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((seq, hash)) = row else {
        return Ok(None);
    };
    let hash = ChainHash::try_from(hash.as_slice()).map_err(|_| {
        StoreError::Corrupt(format!(
            "the audit log's last entry (seq {seq}) has a damaged hash"
        ))
    })?;
    Ok(Some(AuditHead {
        seq: seq as u64,
        hash,
    }))
}

impl AuditLog for SqliteAuditLog {
    fn append(&self, entries: &[AuditEntry]) -> Result<AuditHead, StoreError> {
        let _lock = self.lock_appenders()?;
        // The connection holds no state a panic could leave half-done beyond an open
        // transaction, which is rolled back below.
        let mut conn = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        if !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        let committed = (|| -> Result<AuditHead, Fail> {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut head = head_of(&tx)?.unwrap_or(AuditHead {
                seq: 0,
                hash: GENESIS,
            });
            {
                let mut insert = tx.prepare_cached(
                    "INSERT INTO audit_log (seq, recorded_us, agent, action, entry, prev_hash, hash) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )?;
                let mut index = tx.prepare_cached(
                    "INSERT OR IGNORE INTO audit_patient (patient, seq) VALUES (?1, ?2)",
                )?;
                for entry in entries {
                    let seq = head.seq + 1;
                    let json = entry.canonical_json();
                    let hash = chain_hash(&head.hash, seq, &json);
                    let columns = IndexedColumns::of(entry);
                    insert.execute(params![
                        seq as i64,
                        columns.recorded_us,
                        columns.agent,
                        columns.action,
                        json,
                        head.hash.as_slice(),
                        hash.as_slice(),
                    ])?;
                    for patient in &columns.patients {
                        index.execute(params![patient, seq as i64])?;
                    }
                    head = AuditHead { seq, hash };
                }
            }
            tx.commit()?;
            Ok(head)
        })();
        let head = committed.map_err(|e| e.into_store("appending to the audit log"))?;
        if let Err(e) = self.write_anchor(&head) {
            // The entries are durable; the anchor lags until the next append writes it again.
            // Verification accepts a lagging anchor, so this weakens only tail detection.
            tracing::error!(error = %e, "the audit anchor could not be written");
        }
        Ok(head)
    }

    fn search(&self, q: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        if q.limit == 0 {
            return Ok(Vec::new());
        }
        self.read("searching the audit log", |tx| {
            let mut sql = String::from("SELECT l.seq, l.entry FROM audit_log l");
            let mut args: Vec<Value> = Vec::new();
            let mut clauses: Vec<String> = Vec::new();
            if let Some(p) = &q.patient {
                sql.push_str(" JOIN audit_patient p ON p.seq = l.seq");
                args.push(Value::Text(p.to_string()));
                clauses.push(format!("p.patient = ?{}", args.len()));
            }
            if let Some(agent) = &q.agent {
                args.push(Value::Text(agent.clone()));
                clauses.push(format!("l.agent = ?{}", args.len()));
            }
            if let Some(action) = q.action {
                args.push(Value::Text(action.code().to_owned()));
                clauses.push(format!("l.action = ?{}", args.len()));
            }
            if let Some(from) = q.from {
                args.push(Value::Integer(codec::micros(from)));
                clauses.push(format!("l.recorded_us >= ?{}", args.len()));
            }
            if let Some(to) = q.to {
                args.push(Value::Integer(codec::micros(to)));
                clauses.push(format!("l.recorded_us < ?{}", args.len()));
            }
            if let Some(before) = q.before_seq {
                args.push(Value::Integer(i64::try_from(before).unwrap_or(i64::MAX)));
                clauses.push(format!("l.seq < ?{}", args.len()));
            }
            if !clauses.is_empty() {
                sql.push_str(" WHERE ");
                sql.push_str(&clauses.join(" AND "));
            }
            args.push(Value::Integer(i64::try_from(q.limit).unwrap_or(i64::MAX)));
            sql.push_str(&format!(" ORDER BY l.seq DESC LIMIT ?{}", args.len()));
            let mut stmt = tx.prepare(&sql)?;
            let rows = stmt.query_map(params_from_iter(args), |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (seq, json) = row?;
                let entry = AuditEntry::from_json(&json).map_err(|e| {
                    StoreError::Corrupt(format!(
                        "audit entry {seq} cannot be read ({e}); run `vigil audit verify`"
                    ))
                })?;
                out.push(AuditRecord {
                    seq: seq as u64,
                    entry,
                });
            }
            Ok(out)
        })
    }

    fn chain(&self, after: u64, limit: usize) -> Result<Vec<ChainLink>, StoreError> {
        self.read("reading the audit chain", |tx| {
            let after = i64::try_from(after).unwrap_or(i64::MAX);
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let mut stmt = tx.prepare_cached(
                "SELECT seq, recorded_us, agent, action, entry, prev_hash, hash FROM audit_log \
                 WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            )?;
            let mut links: Vec<ChainLink> = stmt
                .query_map(params![after, limit], |r| {
                    Ok(ChainLink {
                        seq: r.get::<_, i64>(0)? as u64,
                        indexed: IndexedColumns {
                            recorded_us: r.get(1)?,
                            agent: r.get(2)?,
                            action: r.get(3)?,
                            patients: Vec::new(),
                        },
                        entry_json: r.get(4)?,
                        prev_hash: r.get(5)?,
                        hash: r.get(6)?,
                    })
                })?
                .collect::<Result<_, _>>()?;
            if let (Some(first), Some(last)) = (links.first(), links.last()) {
                let (first, last) = (first.seq as i64, last.seq as i64);
                let mut stmt = tx.prepare_cached(
                    "SELECT seq, patient FROM audit_patient WHERE seq BETWEEN ?1 AND ?2 \
                     ORDER BY seq, patient",
                )?;
                let rows = stmt.query_map(params![first, last], |r| {
                    Ok((r.get::<_, i64>(0)? as u64, r.get::<_, String>(1)?))
                })?;
                let mut i = 0;
                for row in rows {
                    let (seq, patient) = row?;
                    while i < links.len() && links[i].seq < seq {
                        i += 1;
                    }
                    match links.get_mut(i) {
                        Some(link) if link.seq == seq => link.indexed.patients.push(patient),
                        // A patient row for a seq with no entry: shown as a difference on the
                        // entry before it, if any; verification reports the gap anyway.
                        _ => {}
                    }
                }
            }
            Ok(links)
        })
    }

    fn head(&self) -> Result<Option<AuditHead>, StoreError> {
        self.read("reading the audit head", |tx| head_of(tx))
    }

    fn anchor(&self) -> Result<Option<AuditHead>, StoreError> {
        let path = self.dir.join(AUDIT_ANCHOR_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => AuditHead::from_text(&text).map(Some).ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "the audit anchor {} is not \"<seq> <sha-256 hex>\"",
                    path.display()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::Backend(format!(
                "cannot read the audit anchor {}: {e}",
                path.display()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{TamperKind, Verification, verify};
    use chrono::TimeZone;
    use vigil_model::audit::{AuditAction, AuditAgent, AuditEntity};

    fn at(minute: u32) -> vigil_model::Instant {
        chrono::Utc
            .with_ymd_and_hms(2026, 11, 21, 10, minute, 0)
            .single()
            .unwrap()
    }

    fn entry(minute: u32, who: &str, action: AuditAction, patient: Option<&str>) -> AuditEntry {
        let e = AuditEntry::new(
            at(minute),
            action,
            AuditAgent::person(who, "clinician"),
            AuditEntity::resource("Patient", patient.unwrap_or("none")),
        );
        match patient {
            Some(p) => e.patient(p.parse().unwrap()),
            None => e,
        }
    }

    /// A log with entries 1..=n (minute i, alternating agents, patient p1 or p2).
    fn log_with(n: u32) -> (tempfile::TempDir, SqliteAuditLog) {
        let dir = tempfile::tempdir().unwrap();
        let log = SqliteAuditLog::open(dir.path()).unwrap();
        let entries: Vec<AuditEntry> = (1..=n)
            .map(|i| {
                let who = if i % 2 == 0 { "nadia" } else { "omar" };
                let patient = if i % 3 == 0 { "p2" } else { "p1" };
                entry(i, who, AuditAction::Read, Some(patient))
            })
            .collect();
        // Two appends, so the chain crosses a batch boundary.
        let (a, b) = entries.split_at(entries.len() / 2);
        log.append(a).unwrap();
        log.append(b).unwrap();
        (dir, log)
    }

    /// A raw connection with the append-only triggers dropped, as an attacker would.
    fn tamper(dir: &Path) -> Connection {
        let conn = Connection::open(dir.join(AUDIT_DATABASE_FILE)).unwrap();
        conn.execute_batch(
            "PRAGMA foreign_keys = OFF;
             DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete;
             DROP TRIGGER audit_patient_no_update; DROP TRIGGER audit_patient_no_delete;",
        )
        .unwrap();
        conn
    }

    fn broken(log: &SqliteAuditLog) -> (u64, TamperKind, String) {
        match verify(log).unwrap() {
            Verification::Broken(t) => (t.seq, t.kind, t.detail),
            intact => panic!("tampering went unnoticed: {intact:?}"),
        }
    }

    #[test]
    fn an_untouched_log_verifies_and_its_anchor_is_its_head() {
        let (_dir, log) = log_with(10);
        let head = log.head().unwrap().unwrap();
        assert_eq!(head.seq, 10);
        assert_eq!(log.anchor().unwrap(), Some(head));
        assert_eq!(
            verify(&log).unwrap(),
            Verification::Intact {
                entries: 10,
                head: Some(head),
                anchor: Some(head)
            }
        );
        let empty = tempfile::tempdir().unwrap();
        let log = SqliteAuditLog::open(empty.path()).unwrap();
        assert!(matches!(
            verify(&log).unwrap(),
            Verification::Intact {
                entries: 0,
                head: None,
                anchor: None
            }
        ));
    }

    #[test]
    fn sql_cannot_update_or_delete_entries() {
        let (dir, _log) = log_with(3);
        let conn = Connection::open(dir.path().join(AUDIT_DATABASE_FILE)).unwrap();
        for sql in [
            "UPDATE audit_log SET entry = '{}' WHERE seq = 2",
            "DELETE FROM audit_log WHERE seq = 3",
            "DELETE FROM audit_patient",
            "UPDATE audit_patient SET patient = 'p9'",
        ] {
            let err = conn.execute(sql, []).unwrap_err().to_string();
            assert!(err.contains("append-only"), "{sql}: {err}");
        }
    }

    #[test]
    fn an_edited_entry_is_found_at_its_seq() {
        let (dir, log) = log_with(10);
        tamper(dir.path())
            .execute(
                "UPDATE audit_log SET entry = replace(entry, 'omar', 'eve') WHERE seq = 7",
                [],
            )
            .unwrap();
        let (seq, kind, _) = broken(&log);
        assert_eq!((seq, kind), (7, TamperKind::EntryAltered));
    }

    #[test]
    fn a_deleted_entry_is_found_as_missing() {
        let (dir, log) = log_with(10);
        let conn = tamper(dir.path());
        conn.execute("DELETE FROM audit_patient WHERE seq = 4", [])
            .unwrap();
        conn.execute("DELETE FROM audit_log WHERE seq = 4", [])
            .unwrap();
        let (seq, kind, detail) = broken(&log);
        assert_eq!((seq, kind), (4, TamperKind::EntryMissing), "{detail}");
    }

    #[test]
    fn swapped_entries_are_found_out_of_order() {
        let (dir, log) = log_with(10);
        let conn = tamper(dir.path());
        conn.execute_batch(
            "UPDATE audit_log SET seq = -1 WHERE seq = 5;
             UPDATE audit_log SET seq = 5 WHERE seq = 6;
             UPDATE audit_log SET seq = 6 WHERE seq = -1;",
        )
        .unwrap();
        let (seq, kind, detail) = broken(&log);
        assert_eq!((seq, kind), (5, TamperKind::OutOfOrder));
        assert!(detail.contains("recorded as seq 6"), "{detail}");
    }

    #[test]
    fn a_cut_off_tail_is_found_through_the_anchor() {
        let (dir, log) = log_with(10);
        let conn = tamper(dir.path());
        conn.execute("DELETE FROM audit_patient WHERE seq > 8", [])
            .unwrap();
        conn.execute("DELETE FROM audit_log WHERE seq > 8", [])
            .unwrap();
        let (seq, kind, detail) = broken(&log);
        assert_eq!((seq, kind), (9, TamperKind::TailTruncated));
        assert!(detail.contains("last 2 entries"), "{detail}");
    }

    #[test]
    fn a_rewritten_chain_is_found_through_the_anchor() {
        let (dir, log) = log_with(4);
        // Rewrite entry 4 and re-hash it: the chain alone is consistent again.
        let conn = tamper(dir.path());
        let (prev, json): (Vec<u8>, String) = conn
            .query_row(
                "SELECT prev_hash, entry FROM audit_log WHERE seq = 4",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        let forged = json.replace("nadia", "eve");
        let hash = chain_hash(&ChainHash::try_from(prev.as_slice()).unwrap(), 4, &forged);
        conn.execute(
            "UPDATE audit_log SET entry = ?1, hash = ?2, agent = 'eve' WHERE seq = 4",
            params![forged, hash.as_slice()],
        )
        .unwrap();
        let (seq, kind, _) = broken(&log);
        assert_eq!((seq, kind), (4, TamperKind::AnchorMismatch));
    }

    #[test]
    fn a_removed_anchor_is_reported() {
        let (dir, log) = log_with(3);
        std::fs::remove_file(dir.path().join(AUDIT_ANCHOR_FILE)).unwrap();
        let (seq, kind, _) = broken(&log);
        assert_eq!((seq, kind), (3, TamperKind::AnchorMissing));
    }

    #[test]
    fn a_hidden_patient_index_row_is_found() {
        let (dir, log) = log_with(6);
        tamper(dir.path())
            .execute("DELETE FROM audit_patient WHERE seq = 3", [])
            .unwrap();
        let (seq, kind, _) = broken(&log);
        assert_eq!((seq, kind), (3, TamperKind::EntryAltered));
    }

    #[test]
    fn two_writers_on_one_directory_keep_one_chain() {
        let (dir, first) = log_with(2);
        let second = SqliteAuditLog::open(dir.path()).unwrap();
        for i in 0..5 {
            first
                .append(&[entry(30 + i, "omar", AuditAction::Search, None)])
                .unwrap();
            second
                .append(&[entry(40 + i, "cli", AuditAction::CredentialChange, None)])
                .unwrap();
        }
        let head = first.head().unwrap().unwrap();
        assert_eq!(head.seq, 12);
        assert!(matches!(
            verify(&second).unwrap(),
            Verification::Intact { entries: 12, .. }
        ));
    }

    #[test]
    fn searches_filter_by_patient_agent_action_and_time_newest_first_with_paging() {
        let (_dir, log) = log_with(12);
        log.append(&[entry(
            50,
            "nadia",
            AuditAction::AlarmAcknowledge,
            Some("p2"),
        )])
        .unwrap();
        let seqs =
            |q: AuditQuery| -> Vec<u64> { log.search(&q).unwrap().iter().map(|r| r.seq).collect() };
        let p2 = Some("p2".parse().unwrap());
        assert_eq!(
            seqs(AuditQuery {
                patient: p2.clone(),
                limit: 100,
                ..Default::default()
            }),
            vec![13, 12, 9, 6, 3]
        );
        assert_eq!(
            seqs(AuditQuery {
                patient: p2.clone(),
                agent: Some("nadia".into()),
                limit: 100,
                ..Default::default()
            }),
            vec![13, 12, 6]
        );
        assert_eq!(
            seqs(AuditQuery {
                action: Some(AuditAction::AlarmAcknowledge),
                limit: 100,
                ..Default::default()
            }),
            vec![13]
        );
        assert_eq!(
            seqs(AuditQuery {
                from: Some(at(3)),
                to: Some(at(6)),
                limit: 100,
                ..Default::default()
            }),
            vec![5, 4, 3]
        );
        let page1 = seqs(AuditQuery {
            patient: p2.clone(),
            limit: 2,
            ..Default::default()
        });
        assert_eq!(page1, vec![13, 12]);
        let page2 = seqs(AuditQuery {
            patient: p2,
            before_seq: Some(12),
            limit: 2,
            ..Default::default()
        });
        assert_eq!(page2, vec![9, 6]);
        assert!(
            seqs(AuditQuery {
                limit: 0,
                ..Default::default()
            })
            .is_empty()
        );
        let got = log
            .search(&AuditQuery {
                limit: 1,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(got[0].entry.action, AuditAction::AlarmAcknowledge);
        assert_eq!(got[0].entry.recorded, at(50));
    }

    #[test]
    fn open_existing_does_not_create_a_log() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            SqliteAuditLog::open_existing(dir.path(), None),
            Err(StoreError::NotFound { .. })
        ));
        assert!(!dir.path().join(AUDIT_DATABASE_FILE).exists());
    }
}
