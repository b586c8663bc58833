//! The store at rest: SQLCipher encryption, changing the key, encrypted backups and their
//! restore, and encrypting a store created before encryption existed. See `docs/encryption.md`.
//!
//! Every connection here is made by [`open_connection`], the same function the store uses, so a
//! maintenance tool keys its connections exactly as the server does.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, ErrorCode, params};
use thiserror::Error;

use super::{DATABASE_FILE, Fail, LOCK_FILE, Role, open_connection};
use crate::StoreError;
use crate::key::StoreKey;

/// Why an encrypted store (or its backup) could not be opened, re-keyed, backed up or restored.
#[derive(Debug, Error)]
pub enum OpenError {
    #[error(
        "the store {path} is encrypted and this key does not open it (is it the key file the store was created or last re-keyed with?)"
    )]
    WrongKey { path: PathBuf },
    #[error(
        "the store {path} is not encrypted; encrypt it first with `vigil store encrypt` (see docs/encryption.md)"
    )]
    NotEncrypted { path: PathBuf },
    #[error(
        "the store {path} is in use by another process; stop `vigil serve` (and any other vigil command on this data directory) and try again"
    )]
    InUse { path: PathBuf },
    #[error(
        "the store {path} is being re-keyed, encrypted or restored by another command; start again when it has finished"
    )]
    UnderMaintenance { path: PathBuf },
    #[error("{path} already exists; refusing to overwrite it")]
    AlreadyExists { path: PathBuf },
    #[error("there is no store at {path}")]
    NoStore { path: PathBuf },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl OpenError {
    /// The same failure as a [`StoreError`], for callers that open without a key.
    pub(crate) fn into_store(self) -> StoreError {
        match self {
            OpenError::Store(e) => e,
            other => StoreError::Corrupt(other.to_string()),
        }
    }
}

impl Fail {
    /// Maps a failure on the database at `path` to an [`OpenError`].
    pub(crate) fn into_open(self, path: &Path, op: &'static str) -> OpenError {
        match self {
            Fail::WrongKey => OpenError::WrongKey {
                path: path.to_owned(),
            },
            Fail::NotEncrypted => OpenError::NotEncrypted {
                path: path.to_owned(),
            },
            Fail::Db(rusqlite::Error::SqliteFailure(e, _))
                if matches!(e.code, ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) =>
            {
                OpenError::InUse {
                    path: path.to_owned(),
                }
            }
            other => OpenError::Store(other.into_store(op)),
        }
    }
}

/// Opens (creating it, owner-only) the data directory's lock file.
fn lock_file(data_dir: &Path) -> Result<std::fs::File, OpenError> {
    let path = data_dir.join(LOCK_FILE);
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
        .open(&path)
        .map_err(|e| backend(format!("cannot open the lock file {}: {e}", path.display())))
}

/// The hold every open store keeps on its data directory: shared, so a server and operator
/// commands work side by side, but never beside a maintenance command's exclusive hold.
///
/// SQLite's own locks cannot serve here: an idle connection in WAL mode holds no lock on the
/// database file, so another process could switch the journal mode and re-key under a running
/// server's feet.
pub(crate) fn hold_shared(data_dir: &Path) -> Result<std::fs::File, OpenError> {
    let file = lock_file(data_dir)?;
    match file.try_lock_shared() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(OpenError::UnderMaintenance {
            path: data_dir.join(DATABASE_FILE),
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(backend(format!(
            "cannot lock {}: {e}",
            data_dir.join(LOCK_FILE).display()
        ))),
    }
}

/// A maintenance command's exclusive hold on the data directory; [`OpenError::InUse`] while any
/// store (a server, an operator command) has it open.
fn hold_exclusive(data_dir: &Path) -> Result<std::fs::File, OpenError> {
    let file = lock_file(data_dir)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(OpenError::InUse {
            path: data_dir.join(DATABASE_FILE),
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(backend(format!(
            "cannot lock {}: {e}",
            data_dir.join(LOCK_FILE).display()
        ))),
    }
}

/// The existing database file in `data_dir`.
fn existing_database(data_dir: &Path) -> Result<PathBuf, OpenError> {
    let path = data_dir.join(DATABASE_FILE);
    if !path.is_file() {
        return Err(OpenError::NoStore { path });
    }
    Ok(path)
}

fn refuse_existing(path: &Path) -> Result<(), OpenError> {
    if path.symlink_metadata().is_ok() {
        return Err(OpenError::AlreadyExists {
            path: path.to_owned(),
        });
    }
    Ok(())
}

fn backend(what: String) -> OpenError {
    OpenError::Store(StoreError::Backend(what))
}

/// `path` with `suffix` appended to its file name.
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(suffix);
    path.with_file_name(name)
}

/// Takes the database out of WAL mode, which needs every other connection closed: SQLite then
/// checkpoints the write-ahead log into the main file and deletes it, so what follows (a re-key,
/// an export) sees and rewrites every page, and no frame written under the old key is left in a
/// `-wal` file. Without a busy timeout, another process holding the file open (a running
/// server, an operator command) makes this fail at once with [`OpenError::InUse`].
fn take_exclusive(conn: &Connection, path: &Path) -> Result<(), OpenError> {
    let fail = |e: rusqlite::Error| Fail::Db(e).into_open(path, "taking the database offline");
    conn.busy_timeout(std::time::Duration::ZERO).map_err(fail)?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "DELETE", |r| r.get(0))
        .map_err(fail)?;
    if !mode.eq_ignore_ascii_case("delete") {
        return Err(OpenError::InUse {
            path: path.to_owned(),
        });
    }
    // Keep the connection's exclusive hold until it closes: no other process slips in between
    // this check and the end of the maintenance.
    conn.pragma_update(None, "locking_mode", "EXCLUSIVE")
        .map_err(fail)?;
    conn.execute_batch("BEGIN EXCLUSIVE; COMMIT;")
        .map_err(fail)?;
    Ok(())
}

/// Puts the database back in WAL mode, as the server expects it.
fn back_to_wal(conn: &Connection, path: &Path) -> Result<(), OpenError> {
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
        .map_err(|e| Fail::Db(e).into_open(path, "returning the database to WAL mode"))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(backend(format!(
            "the database {} did not return to write-ahead logging (journal mode {mode:?})",
            path.display()
        )));
    }
    Ok(())
}

/// Re-encrypts every page with the key `new` (SQLCipher `PRAGMA rekey`, one transaction).
fn apply_rekey(conn: &Connection, path: &Path, new: &StoreKey) -> Result<(), OpenError> {
    let statement = zeroize::Zeroizing::new(format!(
        "PRAGMA rekey = \"{}\";",
        new.sqlcipher_literal().as_str()
    ));
    conn.execute_batch(&statement)
        .map_err(|e| Fail::Db(e).into_open(path, "re-encrypting the database"))
}

/// Changes the key of the store in `data_dir` from `old` to `new`. The store must not be in use:
/// [`OpenError::InUse`] while a server or another command has it open. On success the store opens
/// with `new` only.
pub fn rekey(data_dir: &Path, old: &StoreKey, new: &StoreKey) -> Result<(), OpenError> {
    let path = existing_database(data_dir)?;
    let _hold = hold_exclusive(data_dir)?;
    // The audit trail is encrypted with the same key: it changes first, and back again if the
    // store itself cannot be re-keyed, so the two never end up under different keys.
    let audit = data_dir.join(super::audit::AUDIT_DATABASE_FILE);
    let audit = audit.is_file().then_some(audit);
    if let Some(audit) = &audit {
        rekey_file(audit, old, new)?;
    }
    if let Err(e) = rekey_file(&path, old, new) {
        if let Some(audit) = &audit {
            let _ = rekey_file(audit, new, old);
        }
        return Err(e);
    }
    Ok(())
}

/// Changes the key of one database file and proves the new key opens it.
fn rekey_file(path: &Path, old: &StoreKey, new: &StoreKey) -> Result<(), OpenError> {
    let conn = open_connection(path, Role::Maintenance, Some(old))
        .map_err(|e| e.into_open(path, "opening the database to change its key"))?;
    take_exclusive(&conn, path)?;
    apply_rekey(&conn, path, new)?;
    back_to_wal(&conn, path)?;
    conn.close()
        .map_err(|(_, e)| Fail::Db(e).into_open(path, "closing the re-keyed database"))?;
    // Prove the new key opens it before the caller retires the old one.
    open_connection(path, Role::Maintenance, Some(new))
        .map_err(|e| e.into_open(path, "opening the re-keyed database"))?;
    Ok(())
}

/// Copies every table of the open database `conn` into a new encrypted database file `out`,
/// keyed with `out_key`, from one consistent snapshot (one read transaction), and syncs it.
fn export(
    conn: &Connection,
    source: &Path,
    out: &Path,
    out_key: &StoreKey,
) -> Result<(), OpenError> {
    let fail = |e: rusqlite::Error| Fail::Db(e).into_open(source, "exporting the database");
    let out_name = out
        .to_str()
        .ok_or_else(|| backend(format!("the path {} is not valid UTF-8", out.display())))?;
    // Created here, owner-only, because SQLite would create it with the process's umask (and
    // cannot: an attached file is opened with the main connection's flags, without CREATE).
    create_private_file(out)?;
    let literal = out_key.sqlcipher_literal();
    conn.execute(
        "ATTACH DATABASE ?1 AS export KEY ?2",
        params![out_name, literal.as_str()],
    )
    .map_err(fail)?;
    let exported = (|| -> rusqlite::Result<()> {
        // A deferred transaction whose first read pins the snapshot every table is copied from,
        // while a server keeps committing to the write-ahead log.
        conn.execute_batch("BEGIN")?;
        let copied = (|| {
            conn.query_row("SELECT sqlcipher_export('export')", [], |_| Ok(()))?;
            // sqlcipher_export copies tables, not the header fields Vigil keeps its identity and
            // schema version in; without them the copy would not open as a Vigil store.
            for field in ["application_id", "user_version"] {
                let value: i64 = conn.pragma_query_value(Some("main"), field, |r| r.get(0))?;
                conn.pragma_update(Some("export"), field, value)?;
            }
            Ok(())
        })();
        match copied {
            Ok(()) => conn.execute_batch("COMMIT"),
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    })();
    let detached = conn.execute_batch("DETACH DATABASE export");
    exported.map_err(fail)?;
    detached.map_err(fail)?;
    sync_file(out)
}

/// Creates an empty file readable and writable by its owner only.
fn create_private_file(path: &Path) -> Result<(), OpenError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
        .open(path)
        .map(drop)
        .map_err(|e| backend(format!("cannot create {}: {e}", path.display())))
}

fn sync_file(path: &Path) -> Result<(), OpenError> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| backend(format!("cannot sync {}: {e}", path.display())))
}

/// Renames `from` to `to` and syncs their directory, so the new name survives a power loss.
fn rename_durably(from: &Path, to: &Path) -> Result<(), OpenError> {
    std::fs::rename(from, to).map_err(|e| {
        backend(format!(
            "cannot rename {} to {}: {e}",
            from.display(),
            to.display()
        ))
    })?;
    if let Some(dir) = to.parent().filter(|d| !d.as_os_str().is_empty()) {
        // Directories cannot be opened for syncing everywhere; the rename itself succeeded.
        if let Ok(dir) = std::fs::File::open(dir) {
            let _ = dir.sync_all();
        }
    }
    Ok(())
}

/// Writes a consistent copy of the store in `data_dir` (opened with `key`) to the new file `out`,
/// encrypted with `out_key` (the store's own key, or a separate backup key). Works while the
/// server runs: the copy is one snapshot of the last commit. `out` is written under a temporary
/// name beside it and renamed when complete, so a file at `out` is always a whole backup.
pub fn backup(
    data_dir: &Path,
    key: &StoreKey,
    out: &Path,
    out_key: &StoreKey,
) -> Result<(), OpenError> {
    let path = existing_database(data_dir)?;
    refuse_existing(out)?;
    let partial = with_suffix(out, ".partial");
    // Left by an interrupted backup: ours, and incomplete.
    let _ = std::fs::remove_file(&partial);
    let _ = std::fs::remove_file(with_suffix(&partial, "-journal"));
    let conn = open_connection(&path, Role::Maintenance, Some(key))
        .map_err(|e| e.into_open(&path, "opening the database to back it up"))?;
    let result = export(&conn, &path, &partial, out_key);
    drop(conn);
    if let Err(e) = result {
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }
    rename_durably(&partial, out)
}

/// Makes the backup file `from` (encrypted with `backup_key`) the store of `data_dir`, encrypted
/// with `key`. `data_dir` must not hold a store yet. The backup is checked (its key, SQLite's
/// `quick_check`) before it takes the store's place.
pub fn restore(
    from: &Path,
    backup_key: &StoreKey,
    data_dir: &Path,
    key: &StoreKey,
) -> Result<(), OpenError> {
    if !from.is_file() {
        return Err(OpenError::NoStore {
            path: from.to_owned(),
        });
    }
    let target = data_dir.join(DATABASE_FILE);
    refuse_existing(&target)?;
    refuse_existing(&with_suffix(&target, "-wal"))?;
    std::fs::create_dir_all(data_dir).map_err(|e| {
        backend(format!(
            "cannot create the data directory {}: {e}",
            data_dir.display()
        ))
    })?;
    // No server may start on the directory half-way through.
    let _hold = hold_exclusive(data_dir)?;
    refuse_existing(&target)?;
    let partial = with_suffix(&target, ".restoring");
    let _ = std::fs::remove_file(&partial);
    std::fs::copy(from, &partial).map_err(|e| {
        backend(format!(
            "cannot copy {} to {}: {e}",
            from.display(),
            partial.display()
        ))
    })?;
    let checked = (|| {
        let conn = open_connection(&partial, Role::Maintenance, Some(backup_key))
            .map_err(|e| e.into_open(from, "opening the backup"))?;
        let fail = |e| Fail::Db(e).into_open(from, "checking the backup");
        let verdict: String = conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(fail)?;
        if verdict != "ok" {
            return Err(OpenError::Store(StoreError::Corrupt(format!(
                "the backup {} is damaged (SQLite quick_check failed)",
                from.display()
            ))));
        }
        if backup_key != key {
            apply_rekey(&conn, from, key)?;
        }
        back_to_wal(&conn, from)?;
        conn.close()
            .map_err(|(_, e)| Fail::Db(e).into_open(from, "closing the restored database"))?;
        sync_file(&partial)
    })();
    if let Err(e) = checked {
        let _ = std::fs::remove_file(&partial);
        let _ = std::fs::remove_file(with_suffix(&partial, "-wal"));
        let _ = std::fs::remove_file(with_suffix(&partial, "-shm"));
        return Err(e);
    }
    // A WAL-mode file closed cleanly has no -wal left; its -shm (if any) is rebuilt on open.
    let _ = std::fs::remove_file(with_suffix(&partial, "-shm"));
    rename_durably(&partial, &target)
}

/// Encrypts the plaintext store in `data_dir` with `key`, in place: an encrypted copy is written
/// beside it and renamed over it. The store must not be in use. The plaintext's old disk blocks
/// are not overwritten by this (file systems and SSDs do not promise that): see
/// `docs/encryption.md`.
pub fn encrypt(data_dir: &Path, key: &StoreKey) -> Result<(), OpenError> {
    let path = existing_database(data_dir)?;
    let _hold = hold_exclusive(data_dir)?;
    let partial = with_suffix(&path, ".encrypting");
    let _ = std::fs::remove_file(&partial);
    let _ = std::fs::remove_file(with_suffix(&partial, "-journal"));
    let conn = open_connection(&path, Role::Maintenance, None)
        .map_err(|e| e.into_open(&path, "opening the plaintext database"))?;
    // A file that does not open without a key is already encrypted (or not a database).
    conn.query_row("SELECT count(*) FROM sqlite_schema", [], |r| {
        r.get::<_, i64>(0)
    })
    .map_err(|e| match e {
        rusqlite::Error::SqliteFailure(f, _) if f.code == ErrorCode::NotADatabase => {
            OpenError::Store(StoreError::Corrupt(format!(
                "the store {} is already encrypted or is not a database",
                path.display()
            )))
        }
        e => Fail::Db(e).into_open(&path, "reading the plaintext database"),
    })?;
    take_exclusive(&conn, &path)?;
    let result = export(&conn, &path, &partial, key);
    drop(conn);
    let result = result.and_then(|()| {
        let encrypted = open_connection(&partial, Role::Maintenance, Some(key))
            .map_err(|e| e.into_open(&partial, "opening the encrypted copy"))?;
        back_to_wal(&encrypted, &partial)?;
        encrypted
            .close()
            .map_err(|(_, e)| Fail::Db(e).into_open(&partial, "closing the encrypted copy"))
    });
    if let Err(e) = result {
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }
    let _ = std::fs::remove_file(with_suffix(&partial, "-shm"));
    rename_durably(&partial, &path)?;
    // The plaintext store's own side files are gone after `take_exclusive` (DELETE mode); a
    // leftover -shm would only be rebuilt, but it must not pair with the new file.
    let _ = std::fs::remove_file(with_suffix(&path, "-shm"));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::SqliteStore;
    use super::*;
    use crate::Store;
    use vigil_model::{Patient, PatientId};

    const NAME: &str = "Zdenka Vratislavova";

    fn key() -> StoreKey {
        StoreKey::generate().unwrap()
    }

    fn add_patient(store: &SqliteStore) {
        let mut patient = Patient::new(PatientId::new("p-enc").unwrap(), NAME);
        patient.mrn = Some("MRN-ENC-4711".into());
        store.create_patient(&patient).unwrap();
    }

    fn read_patient(store: &SqliteStore) -> String {
        store
            .patient(&PatientId::new("p-enc").unwrap())
            .unwrap()
            .expect("the patient is there")
            .name
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    /// Whether a file (absent counts as empty) holds the name or the plaintext SQLite header.
    fn leaks(path: &Path) -> bool {
        let bytes = std::fs::read(path).unwrap_or_default();
        contains(&bytes, NAME.as_bytes())
            || contains(&bytes, b"MRN-ENC-4711")
            || contains(&bytes, b"SQLite format 3")
    }

    #[test]
    fn the_database_and_its_write_ahead_log_hold_no_plaintext() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open_encrypted(dir.path(), &key()).unwrap();
        assert!(store.is_encrypted());
        add_patient(&store);
        assert_eq!(read_patient(&store), NAME);
        let db = dir.path().join(DATABASE_FILE);
        let wal = with_suffix(&db, "-wal");
        // The commit sits in the write-ahead log until a checkpoint: both files are checked.
        assert!(std::fs::metadata(&wal).unwrap().len() > 0);
        assert!(!leaks(&db) && !leaks(&wal));
        drop(store);
        assert!(!leaks(&db) && !leaks(&wal));

        // The same check on an unencrypted store finds the name: the check can fail.
        let plain = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(plain.path()).unwrap();
        add_patient(&store);
        drop(store);
        assert!(leaks(&plain.path().join(DATABASE_FILE)));
    }

    #[test]
    fn every_reader_connection_is_keyed() {
        let dir = tempfile::tempdir().unwrap();
        let store = std::sync::Arc::new(SqliteStore::open_encrypted(dir.path(), &key()).unwrap());
        add_patient(&store);
        // More concurrent reads than one connection: the pool opens several readers.
        let readers: Vec<_> = (0..8)
            .map(|_| {
                let store = store.clone();
                std::thread::spawn(move || {
                    for _ in 0..20 {
                        assert_eq!(read_patient(&store), NAME);
                    }
                })
            })
            .collect();
        for r in readers {
            r.join().unwrap();
        }
    }

    #[test]
    fn a_store_does_not_open_while_it_is_being_maintained() {
        let dir = tempfile::tempdir().unwrap();
        let k = key();
        drop(SqliteStore::open_encrypted(dir.path(), &k).unwrap());
        let hold = hold_exclusive(dir.path()).unwrap();
        let err = SqliteStore::open_encrypted(dir.path(), &k).unwrap_err();
        assert!(matches!(err, OpenError::UnderMaintenance { .. }), "{err}");
        drop(hold);
        let store = SqliteStore::open_encrypted(dir.path(), &k).unwrap();
        // And the other way round: an open store keeps maintenance out.
        assert!(matches!(
            hold_exclusive(dir.path()),
            Err(OpenError::InUse { .. })
        ));
        drop(store);
        hold_exclusive(dir.path()).unwrap();
    }

    #[test]
    fn a_wrong_key_is_refused_clearly_and_creates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open_encrypted(dir.path(), &key()).unwrap();
        add_patient(&store);
        drop(store);
        let before = std::fs::read(dir.path().join(DATABASE_FILE)).unwrap();
        let err = SqliteStore::open_encrypted(dir.path(), &key()).unwrap_err();
        assert!(matches!(err, OpenError::WrongKey { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("is encrypted and this key does not open it"),
            "{err}"
        );
        assert_eq!(
            std::fs::read(dir.path().join(DATABASE_FILE)).unwrap(),
            before
        );
        // Nor does it open without a key.
        let err = SqliteStore::open(dir.path()).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt(_)), "{err}");
    }

    #[test]
    fn a_plaintext_store_is_not_opened_with_a_key_until_encrypted() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        add_patient(&store);
        let k = key();
        // In use: refused.
        let err = encrypt(dir.path(), &k).unwrap_err();
        assert!(matches!(err, OpenError::InUse { .. }), "{err}");
        drop(store);
        let err = SqliteStore::open_encrypted(dir.path(), &k).unwrap_err();
        assert!(matches!(err, OpenError::NotEncrypted { .. }), "{err}");

        encrypt(dir.path(), &k).unwrap();
        let db = dir.path().join(DATABASE_FILE);
        assert!(!leaks(&db));
        let store = SqliteStore::open_encrypted(dir.path(), &k).unwrap();
        assert_eq!(read_patient(&store), NAME);
        add_patient_2(&store);
        drop(store);
        // Twice: the second time it is already encrypted.
        assert!(encrypt(dir.path(), &k).is_err());
    }

    fn add_patient_2(store: &SqliteStore) {
        store
            .create_patient(&Patient::new(PatientId::new("p-two").unwrap(), "Second"))
            .unwrap();
    }

    #[test]
    fn rekey_needs_the_store_stopped_and_then_only_the_new_key_opens_it() {
        let dir = tempfile::tempdir().unwrap();
        let (old, new) = (key(), key());
        let store = SqliteStore::open_encrypted(dir.path(), &old).unwrap();
        add_patient(&store);
        let err = rekey(dir.path(), &old, &new).unwrap_err();
        assert!(matches!(err, OpenError::InUse { .. }), "{err}");
        assert!(err.to_string().contains("stop `vigil serve`"), "{err}");
        // The refused attempt changed nothing: the open store still works.
        add_patient_2(&store);
        drop(store);

        // The wrong current key: refused as such.
        let err = rekey(dir.path(), &new, &old).unwrap_err();
        assert!(matches!(err, OpenError::WrongKey { .. }), "{err}");

        rekey(dir.path(), &old, &new).unwrap();
        let err = SqliteStore::open_encrypted(dir.path(), &old).unwrap_err();
        assert!(matches!(err, OpenError::WrongKey { .. }), "{err}");
        let store = SqliteStore::open_encrypted(dir.path(), &new).unwrap();
        assert_eq!(read_patient(&store), NAME);
        assert!(
            store
                .patient(&PatientId::new("p-two").unwrap())
                .unwrap()
                .is_some()
        );
        // Back in WAL mode for the server.
        let mode: String = store
            .writer()
            .conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }

    #[test]
    fn a_backup_taken_while_the_store_is_open_is_encrypted_and_restores() {
        let dir = tempfile::tempdir().unwrap();
        let out_dir = tempfile::tempdir().unwrap();
        let k = key();
        let store = SqliteStore::open_encrypted(dir.path(), &k).unwrap();
        add_patient(&store);
        let out = out_dir.path().join("vigil-backup.db");
        // The store stays open (its last commit only in the write-ahead log).
        backup(dir.path(), &k, &out, &k).unwrap();
        add_patient_2(&store);
        assert!(std::fs::metadata(&out).unwrap().len() > 0);
        assert!(!leaks(&out));
        assert!(!with_suffix(&out, ".partial").exists());
        // Never overwritten.
        let err = backup(dir.path(), &k, &out, &k).unwrap_err();
        assert!(matches!(err, OpenError::AlreadyExists { .. }), "{err}");

        let restored = out_dir.path().join("restored");
        restore(&out, &k, &restored, &k).unwrap();
        let copy = SqliteStore::open_encrypted(&restored, &k).unwrap();
        assert_eq!(read_patient(&copy), NAME);
        // The snapshot predates the second patient.
        assert!(
            copy.patient(&PatientId::new("p-two").unwrap())
                .unwrap()
                .is_none()
        );
        drop(copy);
        // Not onto an existing store.
        let err = restore(&out, &k, &restored, &k).unwrap_err();
        assert!(matches!(err, OpenError::AlreadyExists { .. }), "{err}");
    }

    #[test]
    fn a_backup_under_its_own_key_restores_under_the_store_key() {
        let dir = tempfile::tempdir().unwrap();
        let out_dir = tempfile::tempdir().unwrap();
        let (k, backup_key) = (key(), key());
        let store = SqliteStore::open_encrypted(dir.path(), &k).unwrap();
        add_patient(&store);
        let out = out_dir.path().join("b.db");
        backup(dir.path(), &k, &out, &backup_key).unwrap();
        drop(store);
        assert!(!leaks(&out));

        let restored = out_dir.path().join("restored");
        // The store's key does not open a backup made under the backup key.
        let err = restore(&out, &k, &restored, &k).unwrap_err();
        assert!(matches!(err, OpenError::WrongKey { .. }), "{err}");
        assert!(!restored.join(DATABASE_FILE).exists());

        let new_store_key = key();
        restore(&out, &backup_key, &restored, &new_store_key).unwrap();
        let copy = SqliteStore::open_encrypted(&restored, &new_store_key).unwrap();
        assert_eq!(read_patient(&copy), NAME);
        drop(copy);
        assert!(matches!(
            SqliteStore::open_encrypted(&restored, &backup_key),
            Err(OpenError::WrongKey { .. })
        ));
    }

    #[test]
    fn sqlcipher_is_linked_with_authenticated_pages() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open_encrypted(dir.path(), &key()).unwrap();
        let writer = store.writer();
        let setting = |name: &str| -> String {
            writer
                .conn
                .query_row(&format!("PRAGMA {name}"), [], |r| r.get::<_, String>(0))
                .unwrap()
        };
        assert!(
            setting("cipher_version").starts_with('4'),
            "{}",
            setting("cipher_version")
        );
        assert_eq!(setting("cipher_hmac_algorithm"), "HMAC_SHA512");
        assert_eq!(setting("cipher_page_size"), "4096");
    }

    #[test]
    fn a_flipped_byte_in_the_file_is_detected_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let k = key();
        let store = SqliteStore::open_encrypted(dir.path(), &k).unwrap();
        add_patient(&store);
        drop(store);
        let db = dir.path().join(DATABASE_FILE);
        let mut bytes = std::fs::read(&db).unwrap();
        // Inside the second page's ciphertext: the HMAC no longer matches.
        bytes[4096 + 100] ^= 0x01;
        std::fs::write(&db, &bytes).unwrap();
        // The store still opens (page 1 is intact); reading every page fails at the tampered one.
        let conn = open_connection(&db, Role::Maintenance, Some(&k)).unwrap();
        let checked = conn.query_row("PRAGMA quick_check", [], |r| r.get::<_, String>(0));
        assert!(
            checked.as_deref() != Ok("ok"),
            "a tampered page was read: {checked:?}"
        );
    }
}
