//! [`SqliteStore`]: the embedded default backend, one SQLite file `vigil.db` in the data directory.
//!
//! - **Durability.** WAL journal with `synchronous=FULL`: when [`Store::append`] returns, the
//!   batch's commit record has been fsynced, so the acknowledgement sent after it survives a power
//!   loss.
//! - **Connections.** One writer connection behind a mutex (all writes, so the server's group-commit
//!   writer thread and the occasional registry change serialise here) and a small pool of reader
//!   connections; in WAL mode readers see the last commit and never wait for the writer.
//! - **Other processes.** The operator CLI writes the same file while the server runs; a 5 s busy
//!   timeout covers the short time either holds the write lock. The writer caches each device's
//!   bindings for attribution and drops that cache whenever `PRAGMA data_version` shows another
//!   connection committed, checked inside each write transaction (after the write lock is held, so
//!   nothing can change between the check and the commit).
//! - **Times** are integer microseconds since the Unix epoch, UTC; instants round-trip exactly to
//!   the microsecond (finer parts are truncated).
//! - **Schema**: see `sqlite/schema.rs`; versioned migrations run at [`SqliteStore::open`].

mod audit;
mod codec;
mod encryption;
mod people;
mod schema;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant as Deadline};

use rusqlite::types::Value;
use rusqlite::{
    Connection, ErrorCode, OpenFlags, OptionalExtension, Row, Transaction, TransactionBehavior,
    params, params_from_iter,
};
use tracing::debug;
use vigil_model::{
    Binding, Device, DeviceEvent, DeviceId, DeviceKind, Gender, Measurand, NEWS2_SCORER,
    Observation, ObservationCode, ObservationId, ObservationValue, Patient, PatientId,
    QualityFlags, StoredWaveform, WaveformCode, WaveformSegment,
};

use crate::{
    ALARM_PRIORITIES, ALARM_STATES, AlarmEventRecord, AlarmQuery, AlarmRecord, DeviceCommand,
    DeviceQuery, NewSecurityAlert, NewStreamEvent, ObservationQuery, Outcome, PatientQuery,
    RefusalQuery, RefusedMessage, ScoreRecord, SecretHash, SecurityAlert, SecurityAlertQuery,
    StepWritten, Store, StoreError, StoreStats, StoredRefusal, StoredTemplate, StreamEvent,
    Submission, SubmissionOutcome, SurveillanceStep, WaveformQuery,
};
use crate::{CareReach, SessionRecord, UserAccount};
pub use audit::{AUDIT_ANCHOR_FILE, AUDIT_DATABASE_FILE, SqliteAuditLog};
pub use encryption::{OpenError, backup, encrypt, rekey, restore};

use crate::key::StoreKey;
use codec::{
    ValueColumns, decode_samples, decode_value, encode_samples, encode_value, instant, micros,
};
use vigil_model::{CareTeam, Consent, ConsentId, EmergencyAccess, UserId};

/// The database file inside the data directory.
pub const DATABASE_FILE: &str = "vigil.db";
/// The lock file in the data directory: every open store holds it shared, a maintenance command
/// (re-key, encrypt, restore) exclusively.
pub const LOCK_FILE: &str = "vigil.lock";
/// How long a connection waits for another one (or another process) to release a lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Reader connections kept open at most; a reader beyond that waits for one to be returned.
const READERS: usize = 4;
/// How long a read waits for a free reader connection before it fails.
const READER_WAIT: Duration = Duration::from_secs(30);
/// Prepared statements kept per connection.
const STATEMENT_CACHE: usize = 64;
/// Devices whose id → key mapping and bindings the writer keeps; beyond that it starts afresh.
const MAX_CACHED_DEVICES: usize = 100_000;
/// Separates the lower-cased name parts in `patients.search_text`; a search for text containing it
/// matches nothing.
const NAME_SEPARATOR: char = '\u{1f}';

/// The embedded store. `Send + Sync`: share it in an `Arc`.
pub struct SqliteStore {
    path: PathBuf,
    encrypted: bool,
    /// The shared hold on the data directory's [`LOCK_FILE`], released when the store is dropped.
    _hold: std::fs::File,
    writer: Mutex<Writer>,
    readers: Readers,
    codes: Codes,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the store in `data_dir`, unencrypted: the directory, the
    /// database file [`DATABASE_FILE`] in it, WAL mode, and every schema migration not yet
    /// applied. For tests and tools; the `vigil` binary always uses [`SqliteStore::open_encrypted`].
    ///
    /// `Corrupt` if the file is not a Vigil database or has a schema newer than this code knows;
    /// `Backend` if the directory or file cannot be created or opened.
    pub fn open(data_dir: &Path) -> Result<SqliteStore, StoreError> {
        SqliteStore::open_with(data_dir, None).map_err(OpenError::into_store)
    }

    /// Opens (creating if needed) the store in `data_dir` encrypted with `key` (SQLCipher; see
    /// `docs/encryption.md`). Every connection the store opens, the writer's and each reader's,
    /// is keyed.
    ///
    /// [`OpenError::WrongKey`] if the database exists and `key` does not open it;
    /// [`OpenError::NotEncrypted`] if it exists unencrypted.
    pub fn open_encrypted(data_dir: &Path, key: &StoreKey) -> Result<SqliteStore, OpenError> {
        SqliteStore::open_with(data_dir, Some(key))
    }

    fn open_with(data_dir: &Path, key: Option<&StoreKey>) -> Result<SqliteStore, OpenError> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            StoreError::Backend(format!(
                "cannot create the data directory {}: {e}",
                data_dir.display()
            ))
        })?;
        let hold = encryption::hold_shared(data_dir)?;
        let path = data_dir.join(DATABASE_FILE);
        let opened = (|| -> Result<SqliteStore, Fail> {
            let mut conn = open_connection(&path, Role::Writer, key)?;
            schema::migrate(&mut conn)?;
            let codes = Codes::load(&mut conn)?;
            let data_version = data_version(&conn)?;
            Ok(SqliteStore {
                writer: Mutex::new(Writer {
                    conn,
                    cache: WriterCache::new(data_version),
                }),
                readers: Readers::new(path.clone(), key.cloned()),
                codes,
                encrypted: key.is_some(),
                _hold: hold,
                path: path.clone(),
            })
        })();
        opened.map_err(|e| e.into_open(&path, "opening the database"))
    }

    /// Whether the store's files are encrypted.
    pub fn is_encrypted(&self) -> bool {
        self.encrypted
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The writer, recovering it if a thread panicked while holding it (its transaction, if any,
    /// was rolled back when the panic dropped it; the caches may be stale, so they go).
    fn writer(&self) -> MutexGuard<'_, Writer> {
        let guard = match self.writer.lock() {
            Ok(guard) => guard,
            Err(poisoned) => {
                self.writer.clear_poison();
                let mut guard = poisoned.into_inner();
                guard.cache.clear();
                guard
            }
        };
        if !guard.conn.is_autocommit() {
            // Only reachable after a panic mid-transaction; a failed rollback surfaces at BEGIN.
            let _ = guard.conn.execute_batch("ROLLBACK");
        }
        guard
    }

    /// Runs `f` in one `BEGIN IMMEDIATE` transaction on the writer and commits it; rolls back on
    /// any error.
    fn write<T>(
        &self,
        op: &'static str,
        f: impl FnOnce(&Transaction<'_>, &mut WriterCache) -> Result<T, Fail>,
    ) -> Result<T, StoreError> {
        let mut guard = self.writer();
        let Writer { conn, cache } = &mut *guard;
        let result = (|| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            cache.sync(&tx)?;
            let out = f(&tx, cache)?;
            tx.commit()?;
            Ok(out)
        })();
        result.map_err(|e: Fail| e.into_store(op))
    }

    /// Runs `f` in one read transaction (a consistent snapshot) on a pooled reader.
    fn read<T>(
        &self,
        op: &'static str,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, Fail>,
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
}

// ---------------------------------------------------------------------------------------------
// Errors

/// An operation's failure before it gets its context: a SQLite error, or a decision already made.
#[derive(Debug)]
pub(crate) enum Fail {
    Db(rusqlite::Error),
    Store(StoreError),
    /// The file is encrypted and the key given does not decrypt it (or it is not a database).
    WrongKey,
    /// A key was given but the file is a plaintext SQLite database.
    NotEncrypted,
}

impl From<rusqlite::Error> for Fail {
    fn from(e: rusqlite::Error) -> Self {
        Fail::Db(e)
    }
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Self {
        Fail::Store(e)
    }
}

fn corrupt(message: impl Into<String>) -> Fail {
    Fail::Store(StoreError::Corrupt(message.into()))
}

impl Fail {
    /// Maps SQLite's errors to ours. Messages name the operation and the kind of failure; they
    /// never carry values, ids or SQLite's own message text.
    pub(crate) fn into_store(self, op: &'static str) -> StoreError {
        let e = match self {
            Fail::Store(e) => return e,
            Fail::Db(e) => e,
            Fail::WrongKey => {
                return StoreError::Corrupt(format!(
                    "{op}: the database is encrypted and this key does not open it"
                ));
            }
            Fail::NotEncrypted => {
                return StoreError::Corrupt(format!(
                    "{op}: the database is not encrypted but a key was given"
                ));
            }
        };
        use rusqlite::Error as E;
        match &e {
            E::SqliteFailure(failure, _) => {
                let ext = failure.extended_code;
                match failure.code {
                    ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase => {
                        StoreError::Corrupt(format!(
                            "{op}: the database file is damaged or is not a SQLite database (SQLite code {ext})"
                        ))
                    }
                    ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => {
                        StoreError::Backend(format!(
                            "{op}: the database stayed locked by another connection for longer than {} s \
                         (SQLite code {ext})",
                            BUSY_TIMEOUT.as_secs()
                        ))
                    }
                    ErrorCode::DiskFull => {
                        StoreError::Backend(format!("{op}: the disk is full (SQLite code {ext})"))
                    }
                    ErrorCode::SystemIoFailure => {
                        StoreError::Backend(format!("{op}: disk I/O error (SQLite code {ext})"))
                    }
                    ErrorCode::ReadOnly | ErrorCode::PermissionDenied | ErrorCode::CannotOpen => {
                        StoreError::Backend(format!(
                            "{op}: cannot open or write the database file; check its directory and \
                             permissions (SQLite code {ext})"
                        ))
                    }
                    ErrorCode::OutOfMemory => {
                        StoreError::Backend(format!("{op}: out of memory (SQLite code {ext})"))
                    }
                    ErrorCode::ConstraintViolation => {
                        let what = match ext {
                            rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                            | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY => "a uniqueness",
                            rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY => "a reference",
                            rusqlite::ffi::SQLITE_CONSTRAINT_CHECK => "a value-range",
                            rusqlite::ffi::SQLITE_CONSTRAINT_NOTNULL => "a required-value",
                            _ => "a",
                        };
                        StoreError::Conflict(format!(
                            "{op}: {what} constraint of the stored data was violated"
                        ))
                    }
                    _ => StoreError::Backend(format!("{op}: SQLite failed with code {ext}")),
                }
            }
            E::FromSqlConversionFailure(column, ..)
            | E::InvalidColumnType(column, ..)
            | E::IntegralValueOutOfRange(column, _) => StoreError::Corrupt(format!(
                "{op}: a stored value in result column {column} has an unexpected type or range"
            )),
            E::Utf8Error(_) => {
                StoreError::Corrupt(format!("{op}: a stored text is not valid UTF-8"))
            }
            // Everything else is a mistake in this module's SQL or parameters, not a data problem.
            _ => StoreError::Backend(format!("{op}: internal storage error: {e}")),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Connections

#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Role {
    /// The store's writer: creates the file, switches it to WAL.
    Writer,
    /// A pooled reader: `query_only`.
    Reader,
    /// A maintenance tool (backup, rekey, restore): read-write, never creates the file, leaves
    /// the journal mode alone.
    Maintenance,
}

/// Opens one connection to the database file at `path`, keyed with `key` when given. The one
/// place a connection is made: the store's writer and readers, and every maintenance tool
/// (backup, rekey, restore), go through here so none can forget the key.
///
/// With a key: fails with [`Fail::NotEncrypted`] if the file is plaintext SQLite, and with
/// [`Fail::WrongKey`] if the key does not decrypt it (SQLCipher only notices at the first read,
/// so the schema is read here once). Also fails if the SQLite linked in is not SQLCipher, which
/// would otherwise ignore the key and write plaintext.
///
/// The database file is only ever touched through SQLite here: closing any other descriptor of
/// it would drop this process's POSIX locks on it (they are per process, not per descriptor),
/// and another process could then delete the write-ahead log under the open connections.
pub(crate) fn open_connection(
    path: &Path,
    role: Role,
    key: Option<&StoreKey>,
) -> Result<Connection, Fail> {
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if role == Role::Writer {
        flags |= OpenFlags::SQLITE_OPEN_CREATE;
    }
    let conn = Connection::open_with_flags(path, flags)?;
    if let Some(key) = key {
        apply_key(&conn, key).map_err(|e| match e {
            Fail::WrongKey if opens_without_key(path) => Fail::NotEncrypted,
            e => e,
        })?;
    }
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    if role == Role::Writer {
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Backend(format!(
                "the database cannot use write-ahead logging (journal mode stays {mode:?}); \
                 is the data directory on a network file system?"
            ))
            .into());
        }
        // 16 MiB of page cache: the observation indexes' hot pages stay in memory.
        conn.pragma_update(None, "cache_size", -16_384)?;
    } else if role == Role::Reader {
        conn.pragma_update(None, "query_only", true)?;
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", true)?;
    Ok(conn)
}

/// Keys a fresh connection and proves the key opens the file.
fn apply_key(conn: &Connection, key: &StoreKey) -> Result<(), Fail> {
    // `cipher_version` is answered only by SQLCipher; plain SQLite ignores `PRAGMA key`.
    let cipher: Option<String> = conn
        .query_row("PRAGMA cipher_version", [], |r| r.get(0))
        .optional()?;
    if cipher.is_none_or(|v| v.is_empty()) {
        return Err(StoreError::Backend(
            "this build of Vigil is linked without SQLCipher and cannot encrypt the store".into(),
        )
        .into());
    }
    // SQLCipher would print its own diagnostics ("hmac check failed for pgno=1") to stderr; the
    // failure reaches the caller as an error with its meaning instead.
    conn.execute_batch("PRAGMA cipher_log_level = NONE;")?;
    // A raw key: SQLCipher uses it as the AES-256 key directly (no PBKDF2), and derives the
    // HMAC key from it. The literal cannot be bound as a parameter in a PRAGMA.
    let statement = zeroize::Zeroizing::new(format!(
        "PRAGMA key = \"{}\";",
        key.sqlcipher_literal().as_str()
    ));
    conn.execute_batch(&statement)?;
    match conn.query_row("SELECT count(*) FROM sqlite_schema", [], |r| {
        r.get::<_, i64>(0)
    }) {
        Ok(_) => Ok(()),
        Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == ErrorCode::NotADatabase => {
            Err(Fail::WrongKey)
        }
        Err(e) => Err(e.into()),
    }
}

/// Whether the file at `path` is a plaintext SQLite database: it reads without a key.
fn opens_without_key(path: &Path) -> bool {
    Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .and_then(|plain| {
        plain.query_row("SELECT count(*) FROM sqlite_schema", [], |r| {
            r.get::<_, i64>(0)
        })
    })
    .is_ok()
}

fn data_version(conn: &Connection) -> Result<i64, Fail> {
    Ok(conn.pragma_query_value(None, "data_version", |r| r.get(0))?)
}

/// The pooled reader connections, opened on first use.
struct Readers {
    path: PathBuf,
    key: Option<StoreKey>,
    state: Mutex<ReaderPool>,
    returned: Condvar,
}

struct ReaderPool {
    idle: Vec<Connection>,
    open: usize,
}

/// A borrowed reader connection, returned to the pool on drop.
struct Reader<'a> {
    pool: &'a Readers,
    conn: Option<Connection>,
}

impl Readers {
    fn new(path: PathBuf, key: Option<StoreKey>) -> Self {
        Readers {
            path,
            key,
            state: Mutex::new(ReaderPool {
                idle: Vec::new(),
                open: 0,
            }),
            returned: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, ReaderPool> {
        // The pool's state is a list and a count, valid after any panic.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn get(&self) -> Result<Reader<'_>, Fail> {
        let deadline = Deadline::now() + READER_WAIT;
        let mut pool = self.lock();
        loop {
            if let Some(conn) = pool.idle.pop() {
                return Ok(Reader {
                    pool: self,
                    conn: Some(conn),
                });
            }
            if pool.open < READERS {
                pool.open += 1;
                drop(pool);
                return match open_connection(&self.path, Role::Reader, self.key.as_ref()) {
                    Ok(conn) => Ok(Reader {
                        pool: self,
                        conn: Some(conn),
                    }),
                    Err(e) => {
                        self.lock().open -= 1;
                        self.returned.notify_one();
                        Err(e)
                    }
                };
            }
            let left = deadline.saturating_duration_since(Deadline::now());
            if left.is_zero() {
                return Err(StoreError::Backend(format!(
                    "no database reader connection became free within {} s",
                    READER_WAIT.as_secs()
                ))
                .into());
            }
            pool = self
                .returned
                .wait_timeout(pool, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

impl Reader<'_> {
    fn conn(&mut self) -> &mut Connection {
        // Present from creation until drop.
        self.conn
            .as_mut()
            .expect("reader connection is present until dropped")
    }
}

impl Drop for Reader<'_> {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else { return };
        let mut pool = self.pool.lock();
        if conn.is_autocommit() {
            pool.idle.push(conn);
        } else {
            // Left mid-transaction by a panic: close it rather than reuse it.
            pool.open -= 1;
        }
        drop(pool);
        self.pool.returned.notify_one();
    }
}

// ---------------------------------------------------------------------------------------------
// Observation codes

/// Every code the store can hold: the blood-pressure panel and each single measurand (including
/// the panel's parts, which a search may name).
fn known_codes() -> impl Iterator<Item = ObservationCode> {
    std::iter::once(ObservationCode::BloodPressure)
        .chain(Measurand::ALL.into_iter().map(ObservationCode::Single))
        .chain(DeviceEvent::ALL.into_iter().map(ObservationCode::Event))
        .chain(std::iter::once(ObservationCode::News2))
}

/// The `observation_codes` mapping, loaded at open. New codes get the next number, so numbers
/// never change once assigned.
struct Codes {
    number: HashMap<ObservationCode, i64>,
    code: HashMap<i64, ObservationCode>,
}

impl Codes {
    fn load(conn: &mut Connection) -> Result<Codes, Fail> {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut codes = Codes {
            number: HashMap::new(),
            code: HashMap::new(),
        };
        {
            let mut insert = tx.prepare(
                "INSERT INTO observation_codes (short_name) VALUES (?1) ON CONFLICT (short_name) DO NOTHING",
            )?;
            for code in known_codes() {
                insert.execute([code.short_name()])?;
            }
            let mut select = tx.prepare("SELECT code, short_name FROM observation_codes")?;
            let mut rows = select.query([])?;
            while let Some(row) = rows.next()? {
                let number: i64 = row.get(0)?;
                let name: String = row.get(1)?;
                // Names a newer Vigil added are left unmapped; rows using them read as Corrupt.
                if let Some(code) = known_codes().find(|c| c.short_name() == name) {
                    codes.number.insert(code, number);
                    codes.code.insert(number, code);
                }
            }
        }
        tx.commit()?;
        Ok(codes)
    }

    fn number(&self, code: ObservationCode) -> Result<i64, Fail> {
        self.number.get(&code).copied().ok_or_else(|| {
            corrupt(format!(
                "observation code {} is missing from the code table",
                code.short_name()
            ))
        })
    }

    fn code(&self, number: i64) -> Result<ObservationCode, Fail> {
        self.code.get(&number).copied().ok_or_else(|| {
            corrupt(format!(
                "a stored observation has code number {number}, which this version does not know"
            ))
        })
    }
}

// ---------------------------------------------------------------------------------------------
// The writer and its attribution cache

struct Writer {
    conn: Connection,
    cache: WriterCache,
}

#[derive(Debug, Clone, Copy)]
struct CachedBinding {
    patient: i64,
    from: i64,
    to: Option<i64>,
}

/// What the writer remembers between batches: device keys and bindings. Valid while no other
/// connection has committed (`data_version` unchanged) and cleared after this store's own registry
/// writes.
struct WriterCache {
    data_version: i64,
    devices: HashMap<DeviceId, Option<i64>>,
    bindings: HashMap<i64, Vec<CachedBinding>>,
}

impl WriterCache {
    fn new(data_version: i64) -> Self {
        WriterCache {
            data_version,
            devices: HashMap::new(),
            bindings: HashMap::new(),
        }
    }

    fn clear(&mut self) {
        self.devices.clear();
        self.bindings.clear();
    }

    /// Drops the cache if another connection committed since the last check.
    fn sync(&mut self, tx: &Transaction<'_>) -> Result<(), Fail> {
        let version = data_version(tx)?;
        if version != self.data_version {
            if !self.devices.is_empty() {
                debug!("the database was changed by another connection; attribution cache cleared");
            }
            self.clear();
            self.data_version = version;
        }
        Ok(())
    }

    fn device_pk(&mut self, tx: &Transaction<'_>, id: &DeviceId) -> Result<Option<i64>, Fail> {
        if let Some(pk) = self.devices.get(id) {
            return Ok(*pk);
        }
        if self.devices.len() >= MAX_CACHED_DEVICES {
            self.clear();
        }
        let pk = device_pk(tx, id)?;
        self.devices.insert(id.clone(), pk);
        Ok(pk)
    }

    fn bindings(&mut self, tx: &Transaction<'_>, device: i64) -> Result<&[CachedBinding], Fail> {
        match self.bindings.entry(device) {
            Entry::Occupied(e) => Ok(e.into_mut()),
            Entry::Vacant(e) => {
                let mut stmt = tx.prepare_cached(
                    "SELECT patient, from_us, to_us FROM bindings WHERE device = ?1 ORDER BY from_us, id",
                )?;
                let loaded = stmt
                    .query_map([device], |r| {
                        Ok(CachedBinding {
                            patient: r.get(0)?,
                            from: r.get(1)?,
                            to: r.get(2)?,
                        })
                    })?
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(e.insert(loaded))
            }
        }
    }
}

/// The patient whose binding covers `at` (`from` inclusive, `to` exclusive), as `Binding::covers`.
fn attribute(bindings: &[CachedBinding], at: i64) -> Option<i64> {
    // Newest first: readings are mostly recent.
    bindings
        .iter()
        .rev()
        .find(|b| b.from <= at && b.to.is_none_or(|to| at < to))
        .map(|b| b.patient)
}

fn device_pk(conn: &Connection, id: &DeviceId) -> Result<Option<i64>, Fail> {
    Ok(conn
        .prepare_cached("SELECT pk FROM devices WHERE id = ?1")?
        .query_row([id.as_str()], |r| r.get(0))
        .optional()?)
}

fn patient_pk(conn: &Connection, id: &PatientId) -> Result<Option<i64>, Fail> {
    Ok(conn
        .prepare_cached("SELECT pk FROM patients WHERE id = ?1")?
        .query_row([id.as_str()], |r| r.get(0))
        .optional()?)
}

fn exists(conn: &Connection, sql: &str, key: &str) -> Result<bool, Fail> {
    Ok(conn.prepare_cached(sql)?.exists([key])?)
}

/// The JSON array a `within` restriction is bound as (read back with `json_each`), so any number
/// of patients takes one parameter.
fn within_json(within: &[PatientId]) -> Value {
    let ids: Vec<&str> = within.iter().map(PatientId::as_str).collect();
    Value::Text(serde_json::Value::from(ids).to_string())
}

fn limit_value(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

// ---------------------------------------------------------------------------------------------
// Patients

const PATIENT_COLUMNS: &str = "id, name, family, given, mrn, birth_date, gender, active";

/// Lower-cases character by character (no context-dependent forms such as a final sigma), so a
/// lower-cased needle is a substring of a lower-cased haystack whenever it is one ignoring case.
fn fold_case(text: &str) -> String {
    text.chars().flat_map(char::to_lowercase).collect()
}

fn search_text(p: &Patient) -> String {
    let mut parts = vec![
        fold_case(&p.name),
        p.family.as_deref().map(fold_case).unwrap_or_default(),
    ];
    parts.extend(p.given.iter().map(|g| fold_case(g)));
    parts.join(&NAME_SEPARATOR.to_string())
}

/// The patient's columns after `id`: name, family, given, mrn, birth_date, gender, active,
/// search_text.
fn patient_values(p: &Patient) -> Result<[Value; 8], Fail> {
    let given = serde_json::to_string(&p.given)
        .map_err(|_| StoreError::Backend("cannot encode given names".into()))?;
    let text = |s: Option<&str>| s.map_or(Value::Null, |s| Value::Text(s.to_owned()));
    Ok([
        Value::Text(p.name.clone()),
        text(p.family.as_deref()),
        Value::Text(given),
        text(p.mrn.as_deref()),
        p.birth_date
            .map_or(Value::Null, |d| Value::Text(d.to_string())),
        text(p.gender.map(Gender::as_str)),
        Value::Integer(i64::from(p.active)),
        Value::Text(search_text(p)),
    ])
}

fn patient_from_row(row: &Row<'_>) -> Result<Patient, Fail> {
    let id: String = row.get(0)?;
    let given: String = row.get(3)?;
    let birth_date: Option<String> = row.get(5)?;
    let gender: Option<String> = row.get(6)?;
    Ok(Patient {
        id: PatientId::new(id)
            .map_err(|_| corrupt("a stored patient id is not a valid identifier"))?,
        name: row.get(1)?,
        family: row.get(2)?,
        given: serde_json::from_str(&given)
            .map_err(|_| corrupt("a stored patient's given names are not a JSON list"))?,
        mrn: row.get(4)?,
        birth_date: birth_date
            .map(|d| {
                d.parse()
                    .map_err(|_| corrupt("a stored patient's birth date is not a date"))
            })
            .transpose()?,
        gender: gender
            .map(|g| {
                Gender::parse(&g)
                    .ok_or_else(|| corrupt("a stored patient's gender is not a known code"))
            })
            .transpose()?,
        active: row.get(7)?,
    })
}

fn query_patients(conn: &Connection, sql: &str, args: Vec<Value>) -> Result<Vec<Patient>, Fail> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query(params_from_iter(args))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(patient_from_row(row)?);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Devices

const DEVICE_COLUMNS: &str = "d.id, d.kind, d.manufacturer, d.model, d.serial, d.firmware, d.battery_pct, d.last_seen_us, \
     d.ble_address, d.calibrated_us, d.calibration_due_us, d.signal_dbm";

fn device_from_row(row: &Row<'_>) -> Result<Device, Fail> {
    let id: String = row.get(0)?;
    let last_seen: Option<i64> = row.get(7)?;
    Ok(Device {
        id: DeviceId::new(id)
            .map_err(|_| corrupt("a stored device id is not a valid identifier"))?,
        kind: DeviceKind::new(row.get::<_, String>(1)?),
        manufacturer: row.get(2)?,
        model: row.get(3)?,
        serial: row.get(4)?,
        firmware: row.get(5)?,
        ble_address: row.get(8)?,
        signal_dbm: row.get(11)?,
        calibrated_at: row
            .get::<_, Option<i64>>(9)?
            .map(|us| {
                instant(us).ok_or_else(|| corrupt("a device's calibration time is out of range"))
            })
            .transpose()?,
        calibration_due: row
            .get::<_, Option<i64>>(10)?
            .map(|us| {
                instant(us)
                    .ok_or_else(|| corrupt("a device's calibration due date is out of range"))
            })
            .transpose()?,
        battery_pct: row.get(6)?,
        last_seen: last_seen
            .map(|us| {
                instant(us).ok_or_else(|| corrupt("a device's last-seen time is out of range"))
            })
            .transpose()?,
    })
}

// ---------------------------------------------------------------------------------------------
// Observations

const OBSERVATION_SELECT: &str = "SELECT o.id, p.id, d.id, o.code, o.effective_us, o.received_us, o.value, o.unit, \
     o.systolic, o.diastolic, o.mean, o.value_json, o.status, o.quality \
     FROM observations o CROSS JOIN patients p CROSS JOIN devices d \
     WHERE p.pk = o.patient AND d.pk = o.device";

const INSERT_OBSERVATION: &str = "INSERT INTO observations \
     (patient, device, code, effective_us, received_us, value, unit, systolic, diastolic, mean, value_json, status, quality) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) \
     ON CONFLICT (device, code, effective_us, patient, status) DO NOTHING";

fn observation_from_row(row: &Row<'_>, codes: &Codes) -> Result<Observation, Fail> {
    let id: i64 = row.get(0)?;
    let patient: String = row.get(1)?;
    let device: String = row.get(2)?;
    let code = codes.code(row.get(3)?)?;
    let time = |us: i64| {
        instant(us).ok_or_else(|| corrupt(format!("observation {id} has a time out of range")))
    };
    let unit: Option<String> = row.get(7)?;
    let value = decode_value(
        code,
        ValueColumns {
            value: row.get(6)?,
            unit: unit.as_deref(),
            systolic: row.get(8)?,
            diastolic: row.get(9)?,
            mean: row.get(10)?,
            json: row.get(11)?,
        },
    )
    .map_err(|why| corrupt(format!("observation {id}: {why}")))?;
    let quality: i64 = row.get(13)?;
    Ok(Observation {
        id: ObservationId(id),
        patient: PatientId::new(patient)
            .map_err(|_| corrupt("a stored patient id is not a valid identifier"))?,
        device: DeviceId::new(device)
            .map_err(|_| corrupt("a stored device id is not a valid identifier"))?,
        code,
        value,
        effective: time(row.get(4)?)?,
        received: time(row.get(5)?)?,
        status: codec::status_from_code(row.get(12)?)
            .ok_or_else(|| corrupt(format!("observation {id} has an unknown status number")))?,
        quality: QualityFlags::from_bits_truncate(
            u16::try_from(quality)
                .map_err(|_| corrupt(format!("observation {id} has quality bits out of range")))?,
        ),
    })
}

/// The SQL and arguments of one observation query with at most one code.
fn observation_sql(
    q: &ObservationQuery,
    patient: Option<i64>,
    device: Option<i64>,
    code: Option<i64>,
) -> (String, Vec<Value>) {
    let mut sql = String::from(OBSERVATION_SELECT);
    let mut args: Vec<Value> = Vec::new();
    if let Some(within) = &q.within {
        sql.push_str(
            " AND o.patient IN (SELECT pk FROM patients WHERE id IN (SELECT value FROM json_each(?)))",
        );
        args.push(within_json(within));
    }
    let mut condition = |sql_part: &str, values: &[i64]| {
        sql.push_str(sql_part);
        args.extend(values.iter().map(|v| Value::Integer(*v)));
    };
    if let Some(patient) = patient {
        condition(" AND o.patient = ?", &[patient]);
    }
    if let Some(device) = device {
        condition(" AND o.device = ?", &[device]);
    }
    if let Some(code) = code {
        condition(" AND o.code = ?", &[code]);
    }
    if let Some(from) = q.from {
        let op = if from.inclusive {
            " AND o.effective_us >= ?"
        } else {
            " AND o.effective_us > ?"
        };
        condition(op, &[micros(from.at)]);
    }
    if let Some(to) = q.to {
        let op = if to.inclusive {
            " AND o.effective_us <= ?"
        } else {
            " AND o.effective_us < ?"
        };
        condition(op, &[micros(to.at)]);
    }
    let (after, direction) = if q.newest_first {
        ("<", "DESC")
    } else {
        (">", "ASC")
    };
    if let Some(cursor) = q.after {
        let at = micros(cursor.effective);
        // The first term bounds the index range; the second breaks the tie on the id.
        condition(
            &format!(
                " AND o.effective_us {after}= ? AND (o.effective_us {after} ? OR o.id {after} ?)"
            ),
            &[at, at, cursor.id.0],
        );
    }
    condition(
        &format!(" ORDER BY o.effective_us {direction}, o.id {direction} LIMIT ?"),
        &[limit_value(q.limit)],
    );
    (sql, args)
}

/// One observation query with at most one code, in the query's order.
fn query_observations(
    conn: &Connection,
    codes: &Codes,
    q: &ObservationQuery,
    patient: Option<i64>,
    device: Option<i64>,
    code: Option<i64>,
) -> Result<Vec<Observation>, Fail> {
    let (sql, args) = observation_sql(q, patient, device, code);
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(params_from_iter(args))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(observation_from_row(row, codes)?);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Waveforms

const INSERT_WAVEFORM: &str = "INSERT INTO waveforms \
     (patient, device, code, start_us, end_us, received_us, period_ms, factor, origin, sample_count, samples) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) \
     ON CONFLICT (device, code, start_us) DO NOTHING";

/// `start + period × samples` in microseconds, saturating; never before `start`.
fn waveform_end(start_us: i64, segment: &WaveformSegment) -> i64 {
    let span = segment.period_ms * 1000.0 * segment.samples.len() as f64;
    // `as` saturates; a negative or NaN span counts as none.
    start_us.saturating_add((span as i64).max(0))
}

fn waveform_from_row(row: &Row<'_>) -> Result<StoredWaveform, Fail> {
    let id: i64 = row.get(0)?;
    let patient: String = row.get(1)?;
    let device: String = row.get(2)?;
    let code: String = row.get(3)?;
    let time = |us: i64| {
        instant(us).ok_or_else(|| corrupt(format!("waveform {id} has a time out of range")))
    };
    let count: i64 = row.get(9)?;
    let count = usize::try_from(count)
        .map_err(|_| corrupt(format!("waveform {id} has a negative sample count")))?;
    let blob = row
        .get_ref(10)?
        .as_blob()
        .map_err(|_| corrupt(format!("waveform {id} has samples that are not a blob")))?;
    Ok(StoredWaveform {
        id,
        patient: PatientId::new(patient)
            .map_err(|_| corrupt("a stored patient id is not a valid identifier"))?,
        device: DeviceId::new(device)
            .map_err(|_| corrupt("a stored device id is not a valid identifier"))?,
        segment: WaveformSegment {
            code: WaveformCode::ALL
                .into_iter()
                .find(|w| w.short_name() == code)
                .ok_or_else(|| {
                    corrupt(format!(
                        "waveform {id} has a code this version does not know"
                    ))
                })?,
            start: time(row.get(4)?)?,
            period_ms: row.get(6)?,
            factor: row.get(7)?,
            origin: row.get(8)?,
            samples: decode_samples(blob, count)
                .map_err(|why| corrupt(format!("waveform {id}: {why}")))?,
        },
        received: time(row.get(5)?)?,
    })
}

// ---------------------------------------------------------------------------------------------
// Append

/// Per device in a batch: the latest `received`, and the battery of the latest-received
/// submission that reported one.
struct Seen {
    received: i64,
    battery: Option<(i64, u8)>,
    signal: Option<(i64, i16)>,
}

fn not_finite(submission: usize, what: &str, index: usize) -> Fail {
    StoreError::Conflict(format!(
        "submission {submission}, {what} {index}: a value is not a finite number; the batch was not stored"
    ))
    .into()
}

fn append_batch(
    tx: &Transaction<'_>,
    cache: &mut WriterCache,
    codes: &Codes,
    batch: &[Submission],
) -> Result<Vec<SubmissionOutcome>, Fail> {
    let mut insert_observation = tx.prepare_cached(INSERT_OBSERVATION)?;
    let mut find_observation = tx.prepare_cached(
        "SELECT id FROM observations WHERE device = ?1 AND code = ?2 AND effective_us = ?3 AND patient = ?4 AND status = ?5",
    )?;
    let mut seen: HashMap<i64, Seen> = HashMap::new();
    let mut stored_observations = 0i64;
    let mut max_span: Option<i64> = None;
    let mut outcomes = Vec::with_capacity(batch.len());

    for (s, submission) in batch.iter().enumerate() {
        let received = micros(submission.received);
        let mut outcome = SubmissionOutcome {
            readings: Vec::with_capacity(submission.readings.len()),
            waveforms: Vec::with_capacity(submission.waveforms.len()),
        };
        let device = cache.device_pk(tx, &submission.device)?;
        if let Some(device) = device {
            let entry = seen.entry(device).or_insert(Seen {
                received,
                battery: None,
                signal: None,
            });
            entry.received = entry.received.max(received);
            if let Some(pct) = submission.battery_pct
                && entry.battery.is_none_or(|(at, _)| received >= at)
            {
                entry.battery = Some((received, pct));
            }
            if let Some(dbm) = submission.signal_dbm
                && entry.signal.is_none_or(|(at, _)| received >= at)
            {
                entry.signal = Some((received, dbm));
            }
        }
        let named = match &submission.patient {
            Some(patient) => Some(patient_pk(tx, patient)?),
            None => None,
        };
        let bindings = match (device, named) {
            (Some(device), None) => cache.bindings(tx, device)?,
            _ => &[],
        };
        // The patient the message names (an unknown one attributes nothing), else the binding.
        let attribute = |effective: i64| match named {
            Some(named) => named,
            None => attribute(bindings, effective),
        };

        for (r, reading) in submission.readings.iter().enumerate() {
            let columns = encode_value(reading.code, &reading.value)
                .map_err(|_| not_finite(s, "reading", r))?;
            let effective = micros(reading.effective);
            let (Some(device), Some(patient)) = (device, attribute(effective)) else {
                outcome.readings.push(Outcome::Unattributed);
                continue;
            };
            let code = codes.number(reading.code)?;
            let inserted = insert_observation.execute(params![
                patient,
                device,
                code,
                effective,
                received,
                columns.value,
                columns.unit,
                columns.systolic,
                columns.diastolic,
                columns.mean,
                columns.json,
                codec::status_code(reading.status),
                i64::from(reading.quality.bits()),
            ])?;
            outcome.readings.push(if inserted == 1 {
                stored_observations += 1;
                Outcome::Stored(tx.last_insert_rowid())
            } else {
                Outcome::Duplicate(find_observation.query_row(
                    params![
                        device,
                        code,
                        effective,
                        patient,
                        codec::status_code(reading.status)
                    ],
                    |r| r.get(0),
                )?)
            });
        }

        for (w, segment) in submission.waveforms.iter().enumerate() {
            if ![segment.period_ms, segment.factor, segment.origin]
                .iter()
                .all(|v| v.is_finite())
            {
                return Err(not_finite(s, "waveform", w));
            }
            let start = micros(segment.start);
            let (Some(device), Some(patient)) = (device, attribute(start)) else {
                outcome.waveforms.push(Outcome::Unattributed);
                continue;
            };
            let end = waveform_end(start, segment);
            let code = segment.code.short_name();
            let inserted = tx.prepare_cached(INSERT_WAVEFORM)?.execute(params![
                patient,
                device,
                code,
                start,
                end,
                received,
                segment.period_ms,
                segment.factor,
                segment.origin,
                segment.samples.len() as i64,
                encode_samples(&segment.samples),
            ])?;
            outcome.waveforms.push(if inserted == 1 {
                max_span = max_span.max(Some(end - start));
                Outcome::Stored(tx.last_insert_rowid())
            } else {
                let id = tx
                    .prepare_cached("SELECT id FROM waveforms WHERE device = ?1 AND code = ?2 AND start_us = ?3")?
                    .query_row(params![device, code, start], |r| r.get(0))?;
                Outcome::Duplicate(id)
            });
        }
        outcomes.push(outcome);
    }

    let mut update_device = tx.prepare_cached(
        "UPDATE devices SET \
             last_seen_us = max(coalesce(last_seen_us, ?2), ?2), \
             battery_pct = CASE WHEN ?3 IS NOT NULL AND (last_seen_us IS NULL OR ?4 >= last_seen_us) \
                                THEN ?3 ELSE battery_pct END, \
             signal_dbm = CASE WHEN ?5 IS NOT NULL AND (last_seen_us IS NULL OR ?6 >= last_seen_us) \
                               THEN ?5 ELSE signal_dbm END \
         WHERE pk = ?1",
    )?;
    for (device, seen) in &seen {
        let (battery_at, battery) = match seen.battery {
            Some((at, pct)) => (Some(at), Some(pct)),
            None => (None, None),
        };
        let (signal_at, signal) = match seen.signal {
            Some((at, dbm)) => (Some(at), Some(dbm)),
            None => (None, None),
        };
        update_device.execute(params![
            device,
            seen.received,
            battery,
            battery_at,
            signal,
            signal_at
        ])?;
    }
    if stored_observations > 0 {
        tx.prepare_cached("UPDATE store_meta SET value = value + ?1 WHERE key = 'observations'")?
            .execute([stored_observations])?;
    }
    if let Some(span) = max_span {
        tx.prepare_cached(
            "UPDATE store_meta SET value = max(value, ?1) WHERE key = 'waveform_max_span_us'",
        )?
        .execute([span])?;
    }
    Ok(outcomes)
}

// ---------------------------------------------------------------------------------------------
// Surveillance: alarms, their history, the stream log, patient settings

/// A caller's id or sequence number as a column value; `Conflict` beyond what SQLite holds.
fn id_value(id: u64, what: &str) -> Result<i64, Fail> {
    i64::try_from(id).map_err(|_| {
        StoreError::Conflict(format!(
            "{what} is larger than the store can hold ({})",
            i64::MAX
        ))
        .into()
    })
}

/// A stored id or sequence number; negative ones are not ours.
const SECURITY_ALERT_COLUMNS: &str = "id, device, peer, kind, count, first_seen_us, last_seen_us, \
     detail, quarantined, status, acknowledged_by, acknowledged_us";

fn security_alert_by_id(tx: &Transaction<'_>, id: i64) -> Result<Option<SecurityAlert>, Fail> {
    let mut stmt = tx.prepare_cached(&format!(
        "SELECT {SECURITY_ALERT_COLUMNS} FROM security_alerts WHERE id = ?1"
    ))?;
    let mut rows = stmt.query([id])?;
    rows.next()?.map(security_alert_from_row).transpose()
}

fn security_alert_from_row(row: &Row<'_>) -> Result<SecurityAlert, Fail> {
    let time =
        |us: i64| instant(us).ok_or_else(|| corrupt("a security alert's time is out of range"));
    let device: Option<String> = row.get(1)?;
    let acknowledged: Option<i64> = row.get(11)?;
    Ok(SecurityAlert {
        id: stored_u64(row.get(0)?, "security alert id")?,
        device: device
            .map(DeviceId::new)
            .transpose()
            .map_err(|_| corrupt("a security alert's device id is invalid"))?,
        peer: row.get(2)?,
        kind: row.get(3)?,
        count: stored_u64(row.get(4)?, "security alert count")?,
        first_seen: time(row.get(5)?)?,
        last_seen: time(row.get(6)?)?,
        detail: row.get(7)?,
        quarantined: row.get(8)?,
        status: row.get(9)?,
        acknowledged_by: row.get(10)?,
        acknowledged_at: acknowledged.map(time).transpose()?,
    })
}

fn stored_u64(n: i64, what: &str) -> Result<u64, Fail> {
    u64::try_from(n).map_err(|_| corrupt(format!("a stored {what} is negative")))
}

fn stored_time(us: i64, what: &str) -> Result<vigil_model::Instant, Fail> {
    instant(us).ok_or_else(|| corrupt(format!("{what} has a time out of range")))
}

fn stored_patient_id(id: Option<String>) -> Result<Option<PatientId>, Fail> {
    id.map(|id| {
        PatientId::new(id).map_err(|_| corrupt("a stored patient id is not a valid identifier"))
    })
    .transpose()
}

/// The key of a patient that must exist; `NotFound` otherwise.
fn known_patient(conn: &Connection, id: &PatientId) -> Result<i64, Fail> {
    patient_pk(conn, id)?.ok_or_else(|| {
        StoreError::NotFound {
            what: "patient",
            id: id.to_string(),
        }
        .into()
    })
}

/// The key of a device that must exist; `NotFound` otherwise.
fn known_device(conn: &Connection, id: &DeviceId) -> Result<i64, Fail> {
    device_pk(conn, id)?.ok_or_else(|| {
        StoreError::NotFound {
            what: "device",
            id: id.to_string(),
        }
        .into()
    })
}

const UPSERT_ALARM: &str = "INSERT INTO alarms \
     (id, patient, device, condition, state, priority, raised_at_us, updated_at_us, snapshot) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
     ON CONFLICT (id) DO UPDATE SET patient = excluded.patient, device = excluded.device, \
     condition = excluded.condition, state = excluded.state, priority = excluded.priority, \
     raised_at_us = excluded.raised_at_us, updated_at_us = excluded.updated_at_us, \
     snapshot = excluded.snapshot";

const INSERT_ALARM_EVENT: &str =
    "INSERT INTO alarm_events (alarm, at_us, kind, actor, detail) VALUES (?1, ?2, ?3, ?4, ?5)";

const ALARM_SELECT: &str = "SELECT a.id, p.id, d.id, a.condition, a.state, a.priority, \
     a.raised_at_us, a.updated_at_us, a.snapshot \
     FROM alarms a LEFT JOIN patients p ON p.pk = a.patient LEFT JOIN devices d ON d.pk = a.device";

/// The SQL and arguments of an alarm search (patient given as its key).
fn alarm_sql(q: &AlarmQuery, patient: Option<i64>) -> (String, Vec<Value>) {
    let mut sql = format!("{ALARM_SELECT} WHERE 1 = 1");
    let mut args = Vec::new();
    if let Some(patient) = patient {
        sql.push_str(" AND a.patient = ?");
        args.push(Value::Integer(patient));
    }
    if let Some(within) = &q.within {
        sql.push_str(
            " AND a.patient IN (SELECT pk FROM patients WHERE id IN (SELECT value FROM json_each(?)))",
        );
        args.push(within_json(within));
    }
    if q.open_only {
        // Spelled as the partial index `alarms_open` is, so the planner can use it.
        sql.push_str(" AND a.state <> 'resolved'");
    }
    // A bound beyond the largest storable id excludes nothing.
    if let Some(before) = q.before.and_then(|b| i64::try_from(b).ok()) {
        sql.push_str(" AND a.id < ?");
        args.push(Value::Integer(before));
    }
    sql.push_str(" ORDER BY a.id DESC LIMIT ?");
    args.push(Value::Integer(limit_value(q.limit)));
    (sql, args)
}

fn alarm_from_row(row: &Row<'_>) -> Result<AlarmRecord, Fail> {
    let id = stored_u64(row.get(0)?, "alarm id")?;
    let device: Option<String> = row.get(2)?;
    Ok(AlarmRecord {
        id,
        patient: stored_patient_id(row.get(1)?)?,
        device: device
            .map(|d| {
                DeviceId::new(d)
                    .map_err(|_| corrupt("a stored device id is not a valid identifier"))
            })
            .transpose()?,
        condition: row.get(3)?,
        state: row.get(4)?,
        priority: row.get(5)?,
        raised_at: stored_time(row.get(6)?, &format!("alarm {id}"))?,
        updated_at: stored_time(row.get(7)?, &format!("alarm {id}"))?,
        snapshot: row.get(8)?,
    })
}

/// Upserts each alarm and appends its event to the alarm's history.
fn store_alarm_changes(
    tx: &Transaction<'_>,
    changes: &[(AlarmRecord, AlarmEventRecord)],
) -> Result<(), Fail> {
    let mut upsert = tx.prepare_cached(UPSERT_ALARM)?;
    let mut insert_event = tx.prepare_cached(INSERT_ALARM_EVENT)?;
    for (i, (alarm, event)) in changes.iter().enumerate() {
        if event.alarm != alarm.id {
            return Err(StoreError::Conflict(format!(
                "alarm change {i}: its event belongs to another alarm; nothing was stored"
            ))
            .into());
        }
        if !ALARM_STATES.contains(&alarm.state.as_str()) {
            return Err(StoreError::Conflict(format!(
                "alarm change {i}: the state is not one of {ALARM_STATES:?}; nothing was stored"
            ))
            .into());
        }
        if !ALARM_PRIORITIES.contains(&alarm.priority.as_str()) {
            return Err(StoreError::Conflict(format!(
                "alarm change {i}: the priority is not one of {ALARM_PRIORITIES:?}; nothing was stored"
            ))
            .into());
        }
        let id = id_value(alarm.id, "an alarm id")?;
        let patient = alarm
            .patient
            .as_ref()
            .map(|p| known_patient(tx, p))
            .transpose()?;
        let device = alarm
            .device
            .as_ref()
            .map(|d| known_device(tx, d))
            .transpose()?;
        upsert.execute(params![
            id,
            patient,
            device,
            alarm.condition,
            alarm.state,
            alarm.priority,
            micros(alarm.raised_at),
            micros(alarm.updated_at),
            alarm.snapshot,
        ])?;
        insert_event.execute(params![
            id,
            micros(event.at),
            event.kind,
            event.by,
            event.detail
        ])?;
    }
    Ok(())
}

/// Appends stream events; returns their seqs, in order.
/// Adds NEWS2 records to the observation log under Vigil's scorer device; a record repeating one
/// already stored (same patient and time) is not stored twice.
fn store_scores(
    tx: &Transaction<'_>,
    codes: &Codes,
    scores: &[ScoreRecord],
) -> Result<Vec<ObservationId>, Fail> {
    if scores.is_empty() {
        return Ok(Vec::new());
    }
    let scorer = device_pk(
        tx,
        &DeviceId::new(NEWS2_SCORER).map_err(|e| corrupt(e.to_string()))?,
    )?
    .ok_or_else(|| {
        corrupt(format!(
            "the scorer device {NEWS2_SCORER} is not registered"
        ))
    })?;
    let code = codes.number(ObservationCode::News2)?;
    let mut insert = tx.prepare_cached(INSERT_OBSERVATION)?;
    let mut ids = Vec::with_capacity(scores.len());
    let mut stored = 0i64;
    for score in scores {
        let patient = known_patient(tx, &score.patient)?;
        let effective = micros(score.effective);
        let json = serde_json::to_string(&ObservationValue::News2(score.value.clone()))
            .map_err(|e| corrupt(e.to_string()))?;
        let inserted = insert.execute(params![
            patient,
            scorer,
            code,
            effective,
            micros(score.recorded),
            Option::<f64>::None,
            Option::<String>::None,
            Option::<f64>::None,
            Option::<f64>::None,
            Option::<f64>::None,
            json,
            codec::status_code(vigil_model::ObservationStatus::Final),
            0i64,
        ])?;
        let id = if inserted == 1 {
            stored += 1;
            tx.last_insert_rowid()
        } else {
            tx.prepare_cached(
                "SELECT id FROM observations WHERE device = ?1 AND code = ?2 AND effective_us = ?3 AND patient = ?4 AND status = ?5",
            )?
            .query_row(
                params![
                    scorer,
                    code,
                    effective,
                    patient,
                    codec::status_code(vigil_model::ObservationStatus::Final)
                ],
                |r| r.get(0),
            )?
        };
        ids.push(ObservationId(id));
    }
    if stored > 0 {
        tx.prepare_cached("UPDATE store_meta SET value = value + ?1 WHERE key = 'observations'")?
            .execute([stored])?;
    }
    Ok(ids)
}

fn template_from_row(row: &Row<'_>) -> Result<StoredTemplate, Fail> {
    let version: i64 = row.get(1)?;
    Ok(StoredTemplate {
        name: row.get(0)?,
        version: u32::try_from(version)
            .map_err(|_| corrupt("a template version is out of range"))?,
        format: row.get(2)?,
        text: row.get(3)?,
        uploaded: instant(row.get(4)?)
            .ok_or_else(|| corrupt("a template's time is out of range"))?,
        by: row.get(5)?,
    })
}

const COMMAND_SELECT: &str = "SELECT c.id, d.id, c.correlation_id, c.body, c.created_us, c.expires_us, \
     c.sent_us, c.confirmed_us, c.outcome, c.detail FROM device_commands c JOIN devices d ON d.pk = c.device";

fn command_from_row(row: &Row<'_>) -> Result<DeviceCommand, Fail> {
    let time =
        |us: i64| instant(us).ok_or_else(|| corrupt("a device command's time is out of range"));
    let optional = |us: Option<i64>| us.map(time).transpose();
    Ok(DeviceCommand {
        id: stored_u64(row.get(0)?, "command id")?,
        device: DeviceId::new(row.get::<_, String>(1)?)
            .map_err(|_| corrupt("a stored device id is not a valid identifier"))?,
        correlation_id: row.get(2)?,
        body: row.get(3)?,
        created: time(row.get(4)?)?,
        expires: time(row.get(5)?)?,
        sent: optional(row.get(6)?)?,
        confirmed: optional(row.get(7)?)?,
        outcome: row.get(8)?,
        detail: row.get(9)?,
    })
}

fn store_stream_events(tx: &Transaction<'_>, events: &[NewStreamEvent]) -> Result<Vec<u64>, Fail> {
    let mut insert = tx.prepare_cached(
        "INSERT INTO stream_events (at_us, patient, kind, data) VALUES (?1, ?2, ?3, ?4)",
    )?;
    let mut seqs = Vec::with_capacity(events.len());
    for event in events {
        let patient = event
            .patient
            .as_ref()
            .map(|p| known_patient(tx, p))
            .transpose()?;
        insert.execute(params![micros(event.at), patient, event.kind, event.data])?;
        seqs.push(stored_u64(tx.last_insert_rowid(), "stream seq")?);
    }
    Ok(seqs)
}

/// The SQL and arguments of a stream read (patient given as its key).
fn stream_sql(after: i64, patient: Option<i64>, limit: usize) -> (String, Vec<Value>) {
    let mut sql = String::from(
        "SELECT s.seq, s.at_us, p.id, s.kind, s.data \
         FROM stream_events s LEFT JOIN patients p ON p.pk = s.patient WHERE s.seq > ?",
    );
    let mut args = vec![Value::Integer(after)];
    if let Some(patient) = patient {
        sql.push_str(" AND s.patient = ?");
        args.push(Value::Integer(patient));
    }
    sql.push_str(" ORDER BY s.seq LIMIT ?");
    args.push(Value::Integer(limit_value(limit)));
    (sql, args)
}

fn stream_event_from_row(row: &Row<'_>) -> Result<StreamEvent, Fail> {
    let seq = stored_u64(row.get(0)?, "stream seq")?;
    Ok(StreamEvent {
        seq,
        at: stored_time(row.get(1)?, &format!("stream event {seq}"))?,
        patient: stored_patient_id(row.get(2)?)?,
        kind: row.get(3)?,
        data: row.get(4)?,
    })
}

/// Observations with an id above `after`, ascending: a range scan of the rowid.
const OBSERVATIONS_AFTER: &str = "AND o.id > ?1 ORDER BY o.id LIMIT ?2";

// ---------------------------------------------------------------------------------------------
// The trait

impl Store for SqliteStore {
    fn create_patient(&self, patient: &Patient) -> Result<(), StoreError> {
        self.write("creating a patient", |tx, _| {
            if exists(tx, "SELECT 1 FROM patients WHERE id = ?1", patient.id.as_str())? {
                return Err(StoreError::AlreadyExists { what: "patient", id: patient.id.to_string() }.into());
            }
            if let Some(mrn) = &patient.mrn
                && exists(tx, "SELECT 1 FROM patients WHERE mrn = ?1", mrn)?
            {
                return Err(StoreError::AlreadyExists { what: "patient MRN", id: mrn.clone() }.into());
            }
            let values = patient_values(patient)?;
            let mut args = vec![Value::Text(patient.id.to_string())];
            args.extend(values);
            tx.prepare_cached(
                "INSERT INTO patients (id, name, family, given, mrn, birth_date, gender, active, search_text) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?
            .execute(params_from_iter(args))?;
            Ok(())
        })
    }

    fn update_patient(&self, patient: &Patient) -> Result<(), StoreError> {
        self.write("updating a patient", |tx, _| {
            let Some(pk) = patient_pk(tx, &patient.id)? else {
                return Err(StoreError::NotFound { what: "patient", id: patient.id.to_string() }.into());
            };
            if let Some(mrn) = &patient.mrn {
                let holder: Option<i64> = tx
                    .prepare_cached("SELECT pk FROM patients WHERE mrn = ?1")?
                    .query_row([mrn], |r| r.get(0))
                    .optional()?;
                if holder.is_some_and(|holder| holder != pk) {
                    return Err(StoreError::AlreadyExists { what: "patient MRN", id: mrn.clone() }.into());
                }
            }
            let mut args: Vec<Value> = patient_values(patient)?.into();
            args.push(Value::Integer(pk));
            tx.prepare_cached(
                "UPDATE patients SET name = ?1, family = ?2, given = ?3, mrn = ?4, birth_date = ?5, \
                 gender = ?6, active = ?7, search_text = ?8 WHERE pk = ?9",
            )?
            .execute(params_from_iter(args))?;
            Ok(())
        })
    }

    fn patient(&self, id: &PatientId) -> Result<Option<Patient>, StoreError> {
        self.read("reading a patient", |tx| {
            let sql = format!("SELECT {PATIENT_COLUMNS} FROM patients WHERE id = ?1");
            Ok(query_patients(tx, &sql, vec![Value::Text(id.to_string())])?.pop())
        })
    }

    fn patient_by_mrn(&self, mrn: &str) -> Result<Option<Patient>, StoreError> {
        self.read("reading a patient by MRN", |tx| {
            let sql = format!("SELECT {PATIENT_COLUMNS} FROM patients WHERE mrn = ?1");
            Ok(query_patients(tx, &sql, vec![Value::Text(mrn.to_owned())])?.pop())
        })
    }

    fn search_patients(&self, query: &PatientQuery) -> Result<Vec<Patient>, StoreError> {
        let needle = query.name.as_deref().map(fold_case);
        if query.limit == 0 || needle.as_ref().is_some_and(|n| n.contains(NAME_SEPARATOR)) {
            return Ok(Vec::new());
        }
        self.read("searching patients", |tx| {
            let mut sql = format!("SELECT {PATIENT_COLUMNS} FROM patients WHERE 1 = 1");
            let mut args = Vec::new();
            if let Some(identifier) = &query.identifier {
                sql.push_str(" AND (id = ? OR mrn = ?)");
                args.extend([
                    Value::Text(identifier.clone()),
                    Value::Text(identifier.clone()),
                ]);
            }
            if let Some(needle) = needle {
                sql.push_str(" AND instr(search_text, ?) > 0");
                args.push(Value::Text(needle));
            }
            if let Some(within) = &query.within {
                sql.push_str(" AND id IN (SELECT value FROM json_each(?))");
                args.push(within_json(within));
            }
            sql.push_str(" ORDER BY id LIMIT ? OFFSET ?");
            args.extend([
                Value::Integer(limit_value(query.limit)),
                Value::Integer(limit_value(query.offset)),
            ]);
            query_patients(tx, &sql, args)
        })
    }

    fn create_device(&self, device: &Device, secret: &SecretHash) -> Result<(), StoreError> {
        self.write("registering a device", |tx, cache| {
            if exists(tx, "SELECT 1 FROM devices WHERE id = ?1", device.id.as_str())? {
                return Err(StoreError::AlreadyExists { what: "device", id: device.id.to_string() }.into());
            }
            if let Some(address) = &device.ble_address
                && exists(tx, "SELECT 1 FROM devices WHERE ble_address = ?1", address)?
            {
                return Err(StoreError::AlreadyExists { what: "device with BLE address", id: address.clone() }.into());
            }
            tx.prepare_cached(
                "INSERT INTO devices (id, kind, manufacturer, model, serial, firmware, battery_pct, last_seen_us, secret_hash, ble_address, calibrated_us, calibration_due_us, signal_dbm) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            )?
            .execute(params![
                device.id.as_str(),
                device.kind.as_str(),
                device.manufacturer,
                device.model,
                device.serial,
                device.firmware,
                device.battery_pct,
                device.last_seen.map(micros),
                &secret[..],
                device.ble_address,
                device.calibrated_at.map(micros),
                device.calibration_due.map(micros),
                device.signal_dbm,
            ])?;
            cache.clear();
            Ok(())
        })
    }

    fn device(&self, id: &DeviceId) -> Result<Option<Device>, StoreError> {
        self.read("reading a device", |tx| {
            let mut stmt = tx.prepare_cached(&format!(
                "SELECT {DEVICE_COLUMNS} FROM devices d WHERE d.id = ?1"
            ))?;
            let mut rows = stmt.query([id.as_str()])?;
            rows.next()?.map(device_from_row).transpose()
        })
    }

    fn set_calibration(
        &self,
        id: &DeviceId,
        calibrated_at: Option<vigil_model::Instant>,
        due: Option<vigil_model::Instant>,
    ) -> Result<(), StoreError> {
        self.write("recording a calibration", |tx, _| {
            let changed = tx
                .prepare_cached(
                    "UPDATE devices SET calibrated_us = ?2, calibration_due_us = ?3 WHERE id = ?1",
                )?
                .execute(params![
                    id.as_str(),
                    calibrated_at.map(micros),
                    due.map(micros)
                ])?;
            if changed == 0 {
                return Err(StoreError::NotFound {
                    what: "device",
                    id: id.to_string(),
                }
                .into());
            }
            Ok(())
        })
    }

    fn set_device_secret(&self, id: &DeviceId, secret: &SecretHash) -> Result<(), StoreError> {
        self.write("replacing a device secret", |tx, _| {
            let changed = tx
                .prepare_cached("UPDATE devices SET secret_hash = ?2 WHERE id = ?1")?
                .execute(params![id.as_str(), &secret[..]])?;
            if changed == 0 {
                return Err(StoreError::NotFound {
                    what: "device",
                    id: id.to_string(),
                }
                .into());
            }
            Ok(())
        })
    }

    fn device_by_ble_address(&self, address: &str) -> Result<Option<Device>, StoreError> {
        self.read("finding a device by BLE address", |tx| {
            let mut stmt = tx.prepare_cached(&format!(
                "SELECT {DEVICE_COLUMNS} FROM devices d WHERE d.ble_address = ?1"
            ))?;
            let mut rows = stmt.query([address])?;
            rows.next()?.map(device_from_row).transpose()
        })
    }

    fn device_secret(&self, id: &DeviceId) -> Result<Option<SecretHash>, StoreError> {
        self.read("reading a device secret hash", |tx| {
            let hash: Option<Vec<u8>> = tx
                .prepare_cached("SELECT secret_hash FROM devices WHERE id = ?1")?
                .query_row([id.as_str()], |r| r.get(0))
                .optional()?;
            hash.map(|h| {
                SecretHash::try_from(h.as_slice())
                    .map_err(|_| corrupt("a device's secret hash is not 32 bytes"))
            })
            .transpose()
        })
    }

    fn search_devices(&self, query: &DeviceQuery) -> Result<Vec<Device>, StoreError> {
        if query.limit == 0 {
            return Ok(Vec::new());
        }
        self.read("searching devices", |tx| {
            let mut sql = format!("SELECT {DEVICE_COLUMNS} FROM devices d");
            let mut args = Vec::new();
            if let Some(patient) = &query.patient {
                sql.push_str(
                    " JOIN bindings b ON b.device = d.pk AND b.to_us IS NULL \
                      AND b.patient = (SELECT pk FROM patients WHERE id = ?)",
                );
                args.push(Value::Text(patient.to_string()));
            }
            // Vigil's own software devices (the NEWS2 scorer) are readable by id but not listed.
            sql.push_str(" WHERE d.id NOT LIKE 'vigil-%'");
            if let Some(identifier) = &query.identifier {
                sql.push_str(" AND (d.id = ? OR d.serial = ?)");
                args.extend([
                    Value::Text(identifier.clone()),
                    Value::Text(identifier.clone()),
                ]);
            }
            if let Some(within) = &query.within {
                sql.push_str(
                    " AND EXISTS (SELECT 1 FROM bindings wb JOIN patients wp ON wp.pk = wb.patient \
                      WHERE wb.device = d.pk AND wb.to_us IS NULL \
                      AND wp.id IN (SELECT value FROM json_each(?)))",
                );
                args.push(within_json(within));
            }
            sql.push_str(" ORDER BY d.id LIMIT ? OFFSET ?");
            args.extend([
                Value::Integer(limit_value(query.limit)),
                Value::Integer(limit_value(query.offset)),
            ]);
            let mut stmt = tx.prepare_cached(&sql)?;
            let mut rows = stmt.query(params_from_iter(args))?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                out.push(device_from_row(row)?);
            }
            Ok(out)
        })
    }

    fn bind(
        &self,
        device: &DeviceId,
        patient: &PatientId,
        from: vigil_model::Instant,
    ) -> Result<Binding, StoreError> {
        self.write("binding a device", |tx, cache| {
            let device_key = device_pk(tx, device)?
                .ok_or_else(|| StoreError::NotFound { what: "device", id: device.to_string() })?;
            let patient_key = patient_pk(tx, patient)?
                .ok_or_else(|| StoreError::NotFound { what: "patient", id: patient.to_string() })?;
            let from_us = micros(from);
            let latest: Option<(i64, i64, Option<i64>)> = tx
                .prepare_cached(
                    "SELECT id, from_us, to_us FROM bindings WHERE device = ?1 ORDER BY from_us DESC, id DESC LIMIT 1",
                )?
                .query_row([device_key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()?;
            if let Some((id, latest_from, latest_to)) = latest {
                if from_us < latest_from {
                    return Err(StoreError::Conflict(
                        "the device's latest binding starts after the requested start; bindings are never rewritten"
                            .into(),
                    )
                    .into());
                }
                if latest_to.is_none_or(|to| to > from_us) {
                    tx.prepare_cached("UPDATE bindings SET to_us = ?1 WHERE id = ?2")?.execute([from_us, id])?;
                }
            }
            tx.prepare_cached("INSERT INTO bindings (device, patient, from_us, to_us) VALUES (?1, ?2, ?3, NULL)")?
                .execute([device_key, patient_key, from_us])?;
            cache.clear();
            Ok(Binding {
                device: device.clone(),
                patient: patient.clone(),
                from: instant(from_us).ok_or_else(|| corrupt("a binding time is out of range"))?,
                to: None,
            })
        })
    }

    fn unbind(&self, device: &DeviceId, at: vigil_model::Instant) -> Result<(), StoreError> {
        self.write("unbinding a device", |tx, cache| {
            let device_key = device_pk(tx, device)?.ok_or_else(|| StoreError::NotFound {
                what: "device",
                id: device.to_string(),
            })?;
            let open: Option<(i64, i64)> = tx
                .prepare_cached(
                    "SELECT id, from_us FROM bindings WHERE device = ?1 AND to_us IS NULL",
                )?
                .query_row([device_key], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            let Some((id, from_us)) = open else {
                return Err(StoreError::NotFound {
                    what: "open binding of device",
                    id: device.to_string(),
                }
                .into());
            };
            let at_us = micros(at);
            if at_us < from_us {
                return Err(
                    StoreError::Conflict("the binding would end before it starts".into()).into(),
                );
            }
            tx.prepare_cached("UPDATE bindings SET to_us = ?1 WHERE id = ?2")?
                .execute([at_us, id])?;
            cache.clear();
            Ok(())
        })
    }

    fn bindings(&self, device: &DeviceId) -> Result<Vec<Binding>, StoreError> {
        self.read("reading bindings", |tx| {
            let device_key = device_pk(tx, device)?
                .ok_or_else(|| StoreError::NotFound { what: "device", id: device.to_string() })?;
            let mut stmt = tx.prepare_cached(
                "SELECT p.id, b.from_us, b.to_us FROM bindings b JOIN patients p ON p.pk = b.patient \
                 WHERE b.device = ?1 ORDER BY b.from_us, b.id",
            )?;
            let mut rows = stmt.query([device_key])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                let time = |us: i64| instant(us).ok_or_else(|| corrupt("a binding time is out of range"));
                let to: Option<i64> = row.get(2)?;
                out.push(Binding {
                    device: device.clone(),
                    patient: PatientId::new(row.get::<_, String>(0)?)
                        .map_err(|_| corrupt("a stored patient id is not a valid identifier"))?,
                    from: time(row.get(1)?)?,
                    to: to.map(time).transpose()?,
                });
            }
            Ok(out)
        })
    }

    fn append(&self, batch: &[Submission]) -> Result<Vec<SubmissionOutcome>, StoreError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        self.write("appending a batch", |tx, cache| {
            append_batch(tx, cache, &self.codes, batch)
        })
    }

    fn observation(&self, id: ObservationId) -> Result<Option<Observation>, StoreError> {
        self.read("reading an observation", |tx| {
            let mut stmt = tx.prepare_cached(&format!("{OBSERVATION_SELECT} AND o.id = ?1"))?;
            let mut rows = stmt.query([id.0])?;
            rows.next()?
                .map(|row| observation_from_row(row, &self.codes))
                .transpose()
        })
    }

    fn search_observations(
        &self,
        query: &ObservationQuery,
    ) -> Result<Vec<Observation>, StoreError> {
        if query.limit == 0 {
            return Ok(Vec::new());
        }
        self.read("searching observations", |tx| {
            let patient = match &query.patient {
                Some(id) => match patient_pk(tx, id)? {
                    Some(pk) => Some(pk),
                    None => return Ok(Vec::new()),
                },
                None => None,
            };
            let device = match &query.device {
                Some(id) => match device_pk(tx, id)? {
                    Some(pk) => Some(pk),
                    None => return Ok(Vec::new()),
                },
                None => None,
            };
            let mut codes = query
                .codes
                .iter()
                .map(|c| self.codes.number(*c))
                .collect::<Result<Vec<_>, _>>()?;
            codes.sort_unstable();
            codes.dedup();
            if codes.len() <= 1 {
                return query_observations(
                    tx,
                    &self.codes,
                    query,
                    patient,
                    device,
                    codes.first().copied(),
                );
            }
            // Several codes: one ordered, limited range scan per code (each uses the
            // (patient, code, effective) index), merged here. Reads at most codes × limit rows
            // instead of sorting all of a patient's matching observations.
            let mut merged = Vec::new();
            for code in codes {
                merged.extend(query_observations(
                    tx,
                    &self.codes,
                    query,
                    patient,
                    device,
                    Some(code),
                )?);
            }
            merged.sort_unstable_by_key(|o| (o.effective, o.id));
            if query.newest_first {
                merged.reverse();
            }
            merged.truncate(query.limit);
            Ok(merged)
        })
    }

    fn waveforms(&self, query: &WaveformQuery) -> Result<Vec<StoredWaveform>, StoreError> {
        if query.limit == 0 {
            return Ok(Vec::new());
        }
        self.read("searching waveforms", |tx| {
            let Some(patient) = patient_pk(tx, &query.patient)? else {
                return Ok(Vec::new());
            };
            let mut sql = String::from(
                "SELECT w.id, p.id, d.id, w.code, w.start_us, w.received_us, w.period_ms, w.factor, w.origin, \
                 w.sample_count, w.samples \
                 FROM waveforms w CROSS JOIN patients p CROSS JOIN devices d \
                 WHERE p.pk = w.patient AND d.pk = w.device AND w.patient = ?",
            );
            let mut args = vec![Value::Integer(patient)];
            if !query.codes.is_empty() {
                let marks = vec!["?"; query.codes.len()].join(", ");
                sql.push_str(&format!(" AND w.code IN ({marks})"));
                args.extend(query.codes.iter().map(|c| Value::Text(c.short_name().to_owned())));
            }
            if let Some(to) = query.to {
                sql.push_str(" AND w.start_us < ?");
                args.push(Value::Integer(micros(to)));
            }
            if let Some(from) = query.from {
                let from = micros(from);
                // No segment is longer than the longest stored, so older starts cannot overlap:
                // this bounds the index range scan.
                let max_span: i64 = tx
                    .prepare_cached("SELECT value FROM store_meta WHERE key = 'waveform_max_span_us'")?
                    .query_row([], |r| r.get(0))?;
                sql.push_str(" AND w.start_us >= ? AND (w.end_us > ? OR w.start_us >= ?)");
                args.extend([from.saturating_sub(max_span), from, from].map(Value::Integer));
            }
            sql.push_str(" ORDER BY w.start_us, w.id LIMIT ?");
            args.push(Value::Integer(limit_value(query.limit)));
            let mut stmt = tx.prepare_cached(&sql)?;
            let mut rows = stmt.query(params_from_iter(args))?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                out.push(waveform_from_row(row)?);
            }
            Ok(out)
        })
    }

    fn stats(&self) -> Result<StoreStats, StoreError> {
        self.read("counting", |tx| {
            let (patients, devices, observations): (i64, i64, i64) = tx
                .prepare_cached(
                    "SELECT (SELECT count(*) FROM patients), \
                     (SELECT count(*) FROM devices WHERE id NOT LIKE 'vigil-%'), \
                     (SELECT value FROM store_meta WHERE key = 'observations')",
                )?
                .query_row([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            let count =
                |n: i64| u64::try_from(n).map_err(|_| corrupt("a stored count is negative"));
            Ok(StoreStats {
                patients: count(patients)?,
                devices: count(devices)?,
                observations: count(observations)?,
            })
        })
    }

    fn observations_after(
        &self,
        after: ObservationId,
        limit: usize,
    ) -> Result<Vec<Observation>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        self.read("reading the observation log", |tx| {
            let mut stmt =
                tx.prepare_cached(&format!("{OBSERVATION_SELECT} {OBSERVATIONS_AFTER}"))?;
            let mut rows = stmt.query(params![after.0, limit_value(limit)])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                out.push(observation_from_row(row, &self.codes)?);
            }
            Ok(out)
        })
    }

    fn last_observation_id(&self) -> Result<ObservationId, StoreError> {
        self.read("reading the last observation id", |tx| {
            let id: i64 = tx
                .prepare_cached("SELECT coalesce(max(id), 0) FROM observations")?
                .query_row([], |r| r.get(0))?;
            Ok(ObservationId(id))
        })
    }

    fn record_alarm_changes(
        &self,
        changes: &[(AlarmRecord, AlarmEventRecord)],
        events: &[NewStreamEvent],
    ) -> Result<Vec<u64>, StoreError> {
        if changes.is_empty() && events.is_empty() {
            return Ok(Vec::new());
        }
        self.write("recording alarm changes", |tx, _| {
            store_alarm_changes(tx, changes)?;
            store_stream_events(tx, events)
        })
    }

    fn append_stream_events(&self, events: &[NewStreamEvent]) -> Result<Vec<u64>, StoreError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        self.write("appending stream events", |tx, _| {
            store_stream_events(tx, events)
        })
    }

    fn record_surveillance(&self, step: &SurveillanceStep<'_>) -> Result<StepWritten, StoreError> {
        self.write("recording a surveillance step", |tx, _| {
            store_alarm_changes(tx, step.alarm_changes)?;
            let scores = store_scores(tx, &self.codes, step.scores)?;
            let stream_seqs = store_stream_events(tx, step.stream_events)?;
            if let Some(position) = step.position {
                tx.prepare_cached(
                    "UPDATE store_meta SET value = max(value, ?1) WHERE key = 'surveillance_position'",
                )?
                .execute([position.0])?;
            }
            Ok(StepWritten {
                stream_seqs,
                scores,
            })
        })
    }

    fn surveillance_position(&self) -> Result<Option<ObservationId>, StoreError> {
        self.read("reading the surveillance position", |tx| {
            let position: i64 = tx
                .prepare_cached("SELECT value FROM store_meta WHERE key = 'surveillance_position'")?
                .query_row([], |r| r.get(0))?;
            Ok((position > 0).then_some(ObservationId(position)))
        })
    }

    fn alarm(&self, id: u64) -> Result<Option<AlarmRecord>, StoreError> {
        let Ok(id) = i64::try_from(id) else {
            return Ok(None);
        };
        self.read("reading an alarm", |tx| {
            let mut stmt = tx.prepare_cached(&format!("{ALARM_SELECT} WHERE a.id = ?1"))?;
            let mut rows = stmt.query([id])?;
            rows.next()?.map(alarm_from_row).transpose()
        })
    }

    fn alarms(&self, query: &AlarmQuery) -> Result<Vec<AlarmRecord>, StoreError> {
        if query.limit == 0 {
            return Ok(Vec::new());
        }
        self.read("searching alarms", |tx| {
            let patient = match &query.patient {
                Some(id) => match patient_pk(tx, id)? {
                    Some(pk) => Some(pk),
                    None => return Ok(Vec::new()),
                },
                None => None,
            };
            let (sql, args) = alarm_sql(query, patient);
            let mut stmt = tx.prepare_cached(&sql)?;
            let mut rows = stmt.query(params_from_iter(args))?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                out.push(alarm_from_row(row)?);
            }
            Ok(out)
        })
    }

    fn alarm_events(&self, alarm: u64) -> Result<Vec<AlarmEventRecord>, StoreError> {
        let Ok(id) = i64::try_from(alarm) else {
            return Ok(Vec::new());
        };
        self.read("reading an alarm's history", |tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT at_us, kind, actor, detail FROM alarm_events WHERE alarm = ?1 ORDER BY id",
            )?;
            let mut rows = stmt.query([id])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                out.push(AlarmEventRecord {
                    alarm,
                    at: stored_time(row.get(0)?, &format!("an event of alarm {alarm}"))?,
                    kind: row.get(1)?,
                    by: row.get(2)?,
                    detail: row.get(3)?,
                });
            }
            Ok(out)
        })
    }

    fn max_alarm_id(&self) -> Result<Option<u64>, StoreError> {
        self.read("reading the highest alarm id", |tx| {
            let id: Option<i64> = tx
                .prepare_cached("SELECT max(id) FROM alarms")?
                .query_row([], |r| r.get(0))?;
            id.map(|id| stored_u64(id, "alarm id")).transpose()
        })
    }

    fn stream_events_after(
        &self,
        after: u64,
        patient: Option<&PatientId>,
        limit: usize,
    ) -> Result<Vec<StreamEvent>, StoreError> {
        // Nothing is stored beyond i64::MAX.
        let Ok(after) = i64::try_from(after) else {
            return Ok(Vec::new());
        };
        if limit == 0 {
            return Ok(Vec::new());
        }
        self.read("reading the stream log", |tx| {
            let patient = match patient {
                Some(id) => match patient_pk(tx, id)? {
                    Some(pk) => Some(pk),
                    None => return Ok(Vec::new()),
                },
                None => None,
            };
            let (sql, args) = stream_sql(after, patient, limit);
            let mut stmt = tx.prepare_cached(&sql)?;
            let mut rows = stmt.query(params_from_iter(args))?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                out.push(stream_event_from_row(row)?);
            }
            Ok(out)
        })
    }

    fn last_stream_seq(&self) -> Result<u64, StoreError> {
        self.read("reading the last stream seq", |tx| {
            // AUTOINCREMENT's record of the highest seq ever assigned (kept when pruned).
            let seq: Option<i64> = tx
                .prepare_cached("SELECT seq FROM sqlite_sequence WHERE name = 'stream_events'")?
                .query_row([], |r| r.get(0))
                .optional()?;
            stored_u64(seq.unwrap_or(0), "stream seq")
        })
    }

    fn prune_stream_events(&self, older_than: vigil_model::Instant) -> Result<u64, StoreError> {
        self.write("pruning stream events", |tx, _| {
            let deleted = tx
                .prepare_cached("DELETE FROM stream_events WHERE at_us < ?1")?
                .execute([micros(older_than)])?;
            Ok(deleted as u64)
        })
    }

    fn record_refusals(&self, refusals: &[RefusedMessage]) -> Result<(), StoreError> {
        if refusals.is_empty() {
            return Ok(());
        }
        self.write("recording refused messages", |tx, _| {
            let mut insert = tx.prepare_cached(
                "INSERT INTO refused_messages (at_us, source, device, kind, reason, payload, whole) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for r in refusals {
                let payload = &r.payload[..r.payload.len().min(crate::REFUSED_PAYLOAD_MAX)];
                insert.execute(params![
                    micros(r.at),
                    r.source,
                    r.device.as_ref().map(|d| d.as_str()),
                    r.kind,
                    r.reason,
                    payload,
                    r.whole,
                ])?;
            }
            Ok(())
        })
    }

    fn refusals(&self, query: &RefusalQuery) -> Result<Vec<StoredRefusal>, StoreError> {
        if query.limit == 0 {
            return Ok(Vec::new());
        }
        self.read("reading refused messages", |tx| {
            let mut sql = String::from(
                "SELECT id, at_us, source, device, kind, reason, payload, whole \
                 FROM refused_messages WHERE 1 = 1",
            );
            let mut args: Vec<Value> = Vec::new();
            if let Some(source) = &query.source {
                sql.push_str(" AND source = ?");
                args.push(Value::Text(source.clone()));
            }
            if let Some(device) = &query.device {
                sql.push_str(" AND device = ?");
                args.push(Value::Text(device.to_string()));
            }
            if let Some(before) = query.before {
                sql.push_str(" AND id < ?");
                args.push(Value::Integer(i64::try_from(before).unwrap_or(i64::MAX)));
            }
            sql.push_str(" ORDER BY id DESC LIMIT ?");
            args.push(Value::Integer(limit_value(query.limit)));
            let mut stmt = tx.prepare_cached(&sql)?;
            let mut rows = stmt.query(params_from_iter(args))?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                let id: i64 = row.get(0)?;
                let at: i64 = row.get(1)?;
                let device: Option<String> = row.get(3)?;
                out.push(StoredRefusal {
                    id: stored_u64(id, "refusal id")?,
                    message: RefusedMessage {
                        at: instant(at)
                            .ok_or_else(|| corrupt("a refused message's time is out of range"))?,
                        source: row.get(2)?,
                        device: device
                            .map(DeviceId::new)
                            .transpose()
                            .map_err(|_| corrupt("a refused message's device id is invalid"))?,
                        kind: row.get(4)?,
                        reason: row.get(5)?,
                        payload: row.get(6)?,
                        whole: row.get(7)?,
                    },
                });
            }
            Ok(out)
        })
    }

    fn prune_refusals(&self, older_than: vigil_model::Instant) -> Result<u64, StoreError> {
        self.write("pruning refused messages", |tx, _| {
            let deleted = tx
                .prepare_cached("DELETE FROM refused_messages WHERE at_us < ?1")?
                .execute([micros(older_than)])?;
            Ok(deleted as u64)
        })
    }

    fn set_device_quarantine(
        &self,
        id: &DeviceId,
        at: Option<vigil_model::Instant>,
    ) -> Result<(), StoreError> {
        self.write("quarantining or releasing a device", |tx, _| {
            let changed = tx
                .prepare_cached("UPDATE devices SET quarantined_us = ?2 WHERE id = ?1")?
                .execute(params![id.as_str(), at.map(micros)])?;
            if changed == 0 {
                return Err(StoreError::NotFound {
                    what: "device",
                    id: id.to_string(),
                }
                .into());
            }
            Ok(())
        })
    }

    fn device_quarantine(&self, id: &DeviceId) -> Result<Option<vigil_model::Instant>, StoreError> {
        self.read("reading a device's quarantine", |tx| {
            let at: Option<Option<i64>> = tx
                .prepare_cached("SELECT quarantined_us FROM devices WHERE id = ?1")?
                .query_row([id.as_str()], |r| r.get(0))
                .optional()?;
            at.flatten()
                .map(|us| instant(us).ok_or_else(|| corrupt("a quarantine time is out of range")))
                .transpose()
        })
    }

    fn record_security_alert(&self, alert: &NewSecurityAlert) -> Result<SecurityAlert, StoreError> {
        let count = i64::try_from(alert.count)
            .map_err(|_| StoreError::Conflict("a security alert's count exceeds i64".into()))?;
        self.write("recording a security alert", |tx, _| {
            let device = alert.device.as_ref().map(|d| d.as_str());
            let open: Option<i64> = tx
                .prepare_cached(
                    "SELECT id FROM security_alerts WHERE status = 'open' AND kind = ?1 \
                     AND device IS ?2 AND peer IS ?3 ORDER BY id DESC LIMIT 1",
                )?
                .query_row(params![alert.kind, device, alert.peer], |r| r.get(0))
                .optional()?;
            let id = match open {
                Some(id) => {
                    tx.prepare_cached(
                        "UPDATE security_alerts SET count = count + ?2, \
                         last_seen_us = max(last_seen_us, ?3), detail = ?4, \
                         quarantined = max(quarantined, ?5) WHERE id = ?1",
                    )?
                    .execute(params![
                        id,
                        count,
                        micros(alert.at),
                        alert.detail,
                        alert.quarantined
                    ])?;
                    id
                }
                None => {
                    tx.prepare_cached(
                        "INSERT INTO security_alerts (device, peer, kind, count, first_seen_us, \
                         last_seen_us, detail, quarantined, status) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6, ?7, 'open')",
                    )?
                    .execute(params![
                        device,
                        alert.peer,
                        alert.kind,
                        count,
                        micros(alert.at),
                        alert.detail,
                        alert.quarantined
                    ])?;
                    tx.last_insert_rowid()
                }
            };
            security_alert_by_id(tx, id)?
                .ok_or_else(|| corrupt("a security alert vanished inside its transaction"))
        })
    }

    fn security_alerts(
        &self,
        query: &SecurityAlertQuery,
    ) -> Result<Vec<SecurityAlert>, StoreError> {
        if query.limit == 0 {
            return Ok(Vec::new());
        }
        self.read("reading security alerts", |tx| {
            let mut sql =
                format!("SELECT {SECURITY_ALERT_COLUMNS} FROM security_alerts WHERE 1 = 1");
            let mut args: Vec<Value> = Vec::new();
            if query.open_only {
                sql.push_str(" AND status = 'open'");
            }
            if let Some(before) = query.before {
                sql.push_str(" AND id < ?");
                args.push(Value::Integer(i64::try_from(before).unwrap_or(i64::MAX)));
            }
            sql.push_str(" ORDER BY id DESC LIMIT ?");
            args.push(Value::Integer(limit_value(query.limit)));
            let mut stmt = tx.prepare_cached(&sql)?;
            let mut rows = stmt.query(params_from_iter(args))?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                out.push(security_alert_from_row(row)?);
            }
            Ok(out)
        })
    }

    fn acknowledge_security_alert(
        &self,
        id: u64,
        by: &str,
        at: vigil_model::Instant,
    ) -> Result<SecurityAlert, StoreError> {
        let not_found = || StoreError::NotFound {
            what: "security alert",
            id: id.to_string(),
        };
        let key = i64::try_from(id).map_err(|_| not_found())?;
        self.write("acknowledging a security alert", |tx, _| {
            tx.prepare_cached(
                "UPDATE security_alerts SET status = 'acknowledged', acknowledged_by = ?2, \
                 acknowledged_us = ?3 WHERE id = ?1 AND status = 'open'",
            )?
            .execute(params![key, by, micros(at)])?;
            security_alert_by_id(tx, key)?.ok_or_else(|| not_found().into())
        })
    }

    fn queue_command(
        &self,
        device: &DeviceId,
        correlation_id: &str,
        body: &str,
        created: vigil_model::Instant,
        expires: vigil_model::Instant,
    ) -> Result<DeviceCommand, StoreError> {
        self.write("queueing a device command", |tx, _| {
            let pk = device_pk(tx, device)?.ok_or_else(|| StoreError::NotFound {
                what: "device",
                id: device.to_string(),
            })?;
            let inserted = tx
                .prepare_cached(
                    "INSERT INTO device_commands (device, correlation_id, body, created_us, expires_us) \
                     VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (device, correlation_id) DO NOTHING",
                )?
                .execute(params![pk, correlation_id, body, micros(created), micros(expires)])?;
            if inserted == 0 {
                return Err(StoreError::AlreadyExists {
                    what: "command with correlation id",
                    id: correlation_id.to_owned(),
                }
                .into());
            }
            Ok(DeviceCommand {
                id: stored_u64(tx.last_insert_rowid(), "command id")?,
                device: device.clone(),
                correlation_id: correlation_id.to_owned(),
                body: body.to_owned(),
                created: instant(micros(created)).unwrap_or(created),
                expires: instant(micros(expires)).unwrap_or(expires),
                sent: None,
                confirmed: None,
                outcome: None,
                detail: None,
            })
        })
    }

    fn pending_commands(
        &self,
        device: &DeviceId,
        now: vigil_model::Instant,
    ) -> Result<Vec<DeviceCommand>, StoreError> {
        self.read("reading pending device commands", |tx| {
            let Some(pk) = device_pk(tx, device)? else {
                return Ok(Vec::new());
            };
            let mut stmt = tx.prepare_cached(&format!(
                "{COMMAND_SELECT} WHERE c.device = ?1 AND c.confirmed_us IS NULL AND c.expires_us > ?2 ORDER BY c.id"
            ))?;
            let mut rows = stmt.query(params![pk, micros(now)])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                out.push(command_from_row(row)?);
            }
            Ok(out)
        })
    }

    fn mark_command_sent(&self, id: u64, at: vigil_model::Instant) -> Result<(), StoreError> {
        self.write("marking a device command sent", |tx, _| {
            tx.prepare_cached("UPDATE device_commands SET sent_us = ?2 WHERE id = ?1")?
                .execute(params![i64::try_from(id).unwrap_or(i64::MAX), micros(at)])?;
            Ok(())
        })
    }

    fn confirm_command(
        &self,
        device: &DeviceId,
        correlation_id: &str,
        outcome: &str,
        detail: Option<&str>,
        at: vigil_model::Instant,
    ) -> Result<Option<DeviceCommand>, StoreError> {
        self.write("confirming a device command", |tx, _| {
            let Some(pk) = device_pk(tx, device)? else {
                return Ok(None);
            };
            tx.prepare_cached(
                "UPDATE device_commands SET confirmed_us = ?3, outcome = ?4, detail = ?5 \
                 WHERE device = ?1 AND correlation_id = ?2 AND confirmed_us IS NULL",
            )?
            .execute(params![pk, correlation_id, micros(at), outcome, detail])?;
            let mut stmt = tx.prepare_cached(&format!(
                "{COMMAND_SELECT} WHERE c.device = ?1 AND c.correlation_id = ?2"
            ))?;
            let mut rows = stmt.query(params![pk, correlation_id])?;
            rows.next()?.map(command_from_row).transpose()
        })
    }

    fn command(
        &self,
        device: &DeviceId,
        correlation_id: &str,
    ) -> Result<Option<DeviceCommand>, StoreError> {
        self.read("reading a device command", |tx| {
            let Some(pk) = device_pk(tx, device)? else {
                return Ok(None);
            };
            let mut stmt = tx.prepare_cached(&format!(
                "{COMMAND_SELECT} WHERE c.device = ?1 AND c.correlation_id = ?2"
            ))?;
            let mut rows = stmt.query(params![pk, correlation_id])?;
            rows.next()?.map(command_from_row).transpose()
        })
    }

    fn put_template(&self, template: &StoredTemplate) -> Result<(), StoreError> {
        self.write("storing a template", |tx, _| {
            let newest: Option<i64> = tx
                .prepare_cached("SELECT max(version) FROM templates WHERE name = ?1")?
                .query_row([&template.name], |r| r.get(0))?;
            if let Some(newest) = newest
                && i64::from(template.version) <= newest
            {
                return Err(StoreError::Conflict(format!(
                    "template {} is at version {newest}; a new version must be greater",
                    template.name
                ))
                .into());
            }
            tx.prepare_cached(
                "INSERT INTO templates (name, version, format, text, uploaded_us, uploaded_by) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                template.name,
                template.version,
                template.format,
                template.text,
                micros(template.uploaded),
                template.by,
            ])?;
            Ok(())
        })
    }

    fn template(&self, name: &str) -> Result<Option<StoredTemplate>, StoreError> {
        self.read("reading a template", |tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT name, version, format, text, uploaded_us, uploaded_by FROM templates \
                 WHERE name = ?1 ORDER BY version DESC LIMIT 1",
            )?;
            let mut rows = stmt.query([name])?;
            rows.next()?.map(template_from_row).transpose()
        })
    }

    fn templates(&self) -> Result<Vec<StoredTemplate>, StoreError> {
        self.read("listing templates", |tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT t.name, t.version, t.format, t.text, t.uploaded_us, t.uploaded_by \
                 FROM templates t WHERE t.version = \
                 (SELECT max(version) FROM templates u WHERE u.name = t.name) ORDER BY t.name",
            )?;
            let mut rows = stmt.query([])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                out.push(template_from_row(row)?);
            }
            Ok(out)
        })
    }

    fn create_user(&self, user: &UserAccount) -> Result<(), StoreError> {
        self.write("creating an account", |tx, _| people::create_user(tx, user))
    }
    fn user(&self, id: &UserId) -> Result<Option<UserAccount>, StoreError> {
        self.read("reading an account", |tx| people::user(tx, id))
    }
    fn users(&self) -> Result<Vec<UserAccount>, StoreError> {
        self.read("listing accounts", people::users)
    }
    fn set_password(&self, id: &UserId, hash: &str) -> Result<(), StoreError> {
        self.write("setting a password", |tx, _| {
            people::set_password(tx, id, hash)
        })
    }
    fn set_login_state(
        &self,
        id: &UserId,
        failed_logins: u32,
        locked_until: Option<vigil_model::Instant>,
    ) -> Result<(), StoreError> {
        self.write("recording a login attempt", |tx, _| {
            people::set_login_state(tx, id, failed_logins, locked_until)
        })
    }
    fn set_user_disabled(&self, id: &UserId, disabled: bool) -> Result<(), StoreError> {
        self.write("disabling an account", |tx, _| {
            people::set_user_disabled(tx, id, disabled)
        })
    }
    fn create_session(&self, session: &SessionRecord) -> Result<(), StoreError> {
        self.write("starting a session", |tx, _| {
            people::create_session(tx, session)
        })
    }
    fn session(&self, token_hash: &SecretHash) -> Result<Option<SessionRecord>, StoreError> {
        self.read("reading a session", |tx| people::session(tx, token_hash))
    }
    fn touch_session(
        &self,
        token_hash: &SecretHash,
        at: vigil_model::Instant,
    ) -> Result<(), StoreError> {
        self.write("refreshing a session", |tx, _| {
            people::touch_session(tx, token_hash, at)
        })
    }
    fn end_session(&self, token_hash: &SecretHash) -> Result<(), StoreError> {
        self.write("ending a session", |tx, _| {
            people::end_session(tx, token_hash)
        })
    }
    fn end_sessions_of(&self, user: &UserId) -> Result<u64, StoreError> {
        self.write("ending an account's sessions", |tx, _| {
            people::end_sessions_of(tx, user)
        })
    }
    fn prune_sessions(&self, now: vigil_model::Instant) -> Result<u64, StoreError> {
        self.write("removing expired sessions", |tx, _| {
            people::prune_sessions(tx, now)
        })
    }
    fn put_care_team(&self, team: &CareTeam) -> Result<(), StoreError> {
        self.write("saving a care team", |tx, _| {
            people::put_care_team(tx, team)
        })
    }
    fn care_teams(&self) -> Result<Vec<CareTeam>, StoreError> {
        self.read("listing care teams", people::care_teams)
    }
    fn set_patient_ward(&self, patient: &PatientId, ward: Option<&str>) -> Result<(), StoreError> {
        self.write("placing a patient on a ward", |tx, _| {
            people::set_patient_ward(tx, patient, ward)
        })
    }
    fn patient_ward(&self, patient: &PatientId) -> Result<Option<String>, StoreError> {
        self.read("reading a patient's ward", |tx| {
            people::patient_ward(tx, patient)
        })
    }
    fn care_reach(&self, user: &UserId) -> Result<CareReach, StoreError> {
        self.read("reading a clinician's care teams", |tx| {
            people::care_reach(tx, user)
        })
    }
    fn put_consent(&self, consent: &Consent) -> Result<(), StoreError> {
        self.write("recording a consent", |tx, _| {
            people::put_consent(tx, consent)
        })
    }
    fn consent(&self, id: &ConsentId) -> Result<Option<Consent>, StoreError> {
        self.read("reading a consent", |tx| people::consent(tx, id))
    }
    fn consents_of(&self, patient: &PatientId) -> Result<Vec<Consent>, StoreError> {
        self.read("reading a patient's consents", |tx| {
            people::consents_of(tx, patient)
        })
    }
    fn consents_granted_to(
        &self,
        person: &UserId,
        organization: Option<&str>,
    ) -> Result<Vec<Consent>, StoreError> {
        self.read("reading consents granted", |tx| {
            people::consents_granted_to(tx, person, organization)
        })
    }
    fn series(&self, query: &crate::SeriesQuery) -> Result<Vec<crate::SeriesBucket>, StoreError> {
        if query.to <= query.from {
            return Ok(Vec::new());
        }
        let code = self
            .codes
            .number(ObservationCode::Single(query.measurand))
            .map_err(|e| e.into_store("summarising a series"))?;
        self.read("summarising a series", |tx| {
            let Some(patient) = patient_pk(tx, &query.patient)? else {
                return Ok(Vec::new());
            };
            let (from, width) = (micros(query.from), query.bucket_us());
            let mut stmt = tx.prepare_cached(
                "SELECT (effective_us - ?1) / ?2 AS bucket, min(value), max(value), avg(value), count(*) \
                 FROM observations WHERE patient = ?3 AND code = ?4 \
                 AND effective_us >= ?1 AND effective_us < ?5 AND value IS NOT NULL \
                 GROUP BY bucket ORDER BY bucket",
            )?;
            let mut rows = stmt.query(params![from, width, patient, code, micros(query.to)])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                let bucket: i64 = row.get(0)?;
                out.push(crate::SeriesBucket {
                    start: stored_time(from.saturating_add(bucket.saturating_mul(width)), "a series bucket")?,
                    min: row.get(1)?,
                    max: row.get(2)?,
                    mean: row.get(3)?,
                    count: stored_u64(row.get(4)?, "bucket count")?,
                });
            }
            Ok(out)
        })
    }
    fn grant_emergency_access(&self, access: &EmergencyAccess) -> Result<(), StoreError> {
        self.write("recording an emergency access", |tx, _| {
            people::grant_emergency_access(tx, access)
        })
    }
    fn emergency_access_in_force(
        &self,
        clinician: &UserId,
        at: vigil_model::Instant,
    ) -> Result<Vec<EmergencyAccess>, StoreError> {
        self.read("reading emergency accesses", |tx| {
            people::emergency_access_in_force(tx, clinician, at)
        })
    }
    fn emergency_accesses_since(
        &self,
        since: vigil_model::Instant,
    ) -> Result<Vec<EmergencyAccess>, StoreError> {
        self.read("listing emergency accesses", |tx| {
            people::emergency_accesses_since(tx, since)
        })
    }

    fn patient_settings(&self, patient: &PatientId) -> Result<Option<String>, StoreError> {
        self.read("reading patient settings", |tx| {
            let pk = known_patient(tx, patient)?;
            Ok(tx
                .prepare_cached("SELECT settings FROM patient_settings WHERE patient = ?1")?
                .query_row([pk], |r| r.get(0))
                .optional()?)
        })
    }

    fn put_patient_settings(
        &self,
        patient: &PatientId,
        settings_json: &str,
    ) -> Result<(), StoreError> {
        self.write("storing patient settings", |tx, _| {
            let pk = known_patient(tx, patient)?;
            tx.prepare_cached(
                "INSERT INTO patient_settings (patient, settings) VALUES (?1, ?2) \
                 ON CONFLICT (patient) DO UPDATE SET settings = excluded.settings",
            )?
            .execute(params![pk, settings_json])?;
            Ok(())
        })
    }
}
