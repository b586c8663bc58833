//! The key that encrypts the embedded store at rest, and the key file it is kept in.
//!
//! A key is 256 random bits, handed to SQLCipher as a raw key (`PRAGMA key = "x'…'"`), which
//! skips SQLCipher's PBKDF2 derivation: every connection the store opens would otherwise pay for
//! 256 000 iterations (about a quarter of a second here), and a random key gains nothing from
//! stretching.
//!
//! The key file holds the key as 64 hexadecimal digits (a trailing newline is allowed). It must
//! not be readable by group or others (mode 0600, as SSH insists for private keys) and must live
//! outside the data directory, so a copy of the data directory (a backup, a disk image, a stolen
//! disk holding only the data volume) does not carry the key that opens it. See
//! `docs/encryption.md`.

use std::fmt;
use std::io::Write;
use std::path::{Component, Path, PathBuf};

use rand::TryRngCore;
use thiserror::Error;
use zeroize::{Zeroize, Zeroizing};

/// Bytes in a key: AES-256.
pub const KEY_BYTES: usize = 32;

/// A 256-bit store key. Wiped from memory when dropped; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct StoreKey([u8; KEY_BYTES]);

impl Drop for StoreKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StoreKey(redacted)")
    }
}

/// Why a key or key file could not be used. Messages name the file, never the key.
#[derive(Debug, Error)]
pub enum KeyError {
    #[error(
        "the key file {key} is inside the data directory {data_dir}; keep it elsewhere (for example /etc/vigil/store.key) so a copy of the data directory does not carry its own key"
    )]
    InsideDataDirectory { key: PathBuf, data_dir: PathBuf },
    #[error(
        "the store in {data_dir} is encrypted but its key file {key} does not exist; give the key file the store was created with (--key-file or VIGIL_KEY_FILE)"
    )]
    MissingForExistingStore { key: PathBuf, data_dir: PathBuf },
    #[error("the key file {0} does not exist")]
    NotFound(PathBuf),
    #[error("the key file {path} cannot be read: {source}")]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the key file {0} does not hold a key: expected 64 hexadecimal digits")]
    Malformed(PathBuf),
    #[error(
        "the key file {path} can be read by other users (mode {mode:o}); restrict it with chmod 600"
    )]
    TooOpen { path: PathBuf, mode: u32 },
    #[error("the key file {path} cannot be written: {source}")]
    Unwritable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the operating system's random number generator failed: {0}")]
    Random(String),
}

impl StoreKey {
    /// A fresh key from the operating system's random number generator.
    pub fn generate() -> Result<StoreKey, KeyError> {
        let mut bytes = [0u8; KEY_BYTES];
        rand::rngs::OsRng
            .try_fill_bytes(&mut bytes)
            .map_err(|e| KeyError::Random(e.to_string()))?;
        let key = StoreKey(bytes);
        bytes.zeroize();
        Ok(key)
    }

    /// Parses the key file's text: 64 hexadecimal digits, surrounding whitespace ignored.
    fn parse(text: &str) -> Option<StoreKey> {
        let text = text.trim();
        if text.len() != KEY_BYTES * 2 {
            return None;
        }
        let mut bytes = [0u8; KEY_BYTES];
        let decoded = hex::decode_to_slice(text, &mut bytes).is_ok();
        let key = StoreKey(bytes);
        bytes.zeroize();
        decoded.then_some(key)
    }

    /// The key as SQLCipher's raw-key literal, `x'<64 hex digits>'`, wiped when dropped.
    pub(crate) fn sqlcipher_literal(&self) -> Zeroizing<String> {
        let mut hex = Zeroizing::new(hex::encode(self.0));
        let literal = Zeroizing::new(format!("x'{}'", hex.as_str()));
        hex.zeroize();
        literal
    }

    /// Reads a key file, refusing one that other users can read.
    pub fn read_file(path: &Path) -> Result<StoreKey, KeyError> {
        let metadata = std::fs::metadata(path).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => KeyError::NotFound(path.to_owned()),
            _ => KeyError::Unreadable {
                path: path.to_owned(),
                source,
            },
        })?;
        check_private(path, &metadata)?;
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|source| {
            KeyError::Unreadable {
                path: path.to_owned(),
                source,
            }
        })?);
        StoreKey::parse(&text).ok_or_else(|| KeyError::Malformed(path.to_owned()))
    }

    /// Writes this key to a new file readable by its owner only (0600); never replaces an
    /// existing file. The file is synced before this returns, so a key that encrypts data is on
    /// disk before the data is.
    pub fn write_new_file(&self, path: &Path) -> Result<(), KeyError> {
        let unwritable = |source| KeyError::Unwritable {
            path: path.to_owned(),
            source,
        };
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(path).map_err(unwritable)?;
        let mut text = Zeroizing::new(hex::encode(self.0));
        text.push('\n');
        file.write_all(text.as_bytes()).map_err(unwritable)?;
        file.sync_all().map_err(unwritable)?;
        Ok(())
    }
}

#[cfg(unix)]
fn check_private(path: &Path, metadata: &std::fs::Metadata) -> Result<(), KeyError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyError::TooOpen {
            path: path.to_owned(),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_path: &Path, _metadata: &std::fs::Metadata) -> Result<(), KeyError> {
    Ok(())
}

/// What [`key_for_store`] did to get the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyOrigin {
    /// Read from the existing key file.
    Read,
    /// The key file did not exist and neither did the store: a new key was written to it.
    Created,
}

/// The key for the store in `data_dir`, from `key_file`:
/// - refused if `key_file` is inside `data_dir` (compared after resolving symbolic links and
///   `..`, for the parts of both paths that exist);
/// - read if it exists;
/// - created (random, 0600) if neither it nor the store's database file exists yet;
/// - otherwise an error: an existing encrypted store is never paired with a new key.
pub fn key_for_store(data_dir: &Path, key_file: &Path) -> Result<(StoreKey, KeyOrigin), KeyError> {
    refuse_inside(data_dir, key_file)?;
    match StoreKey::read_file(key_file) {
        Ok(key) => Ok((key, KeyOrigin::Read)),
        Err(KeyError::NotFound(_)) => {
            if data_dir.join(crate::sqlite::DATABASE_FILE).exists() {
                return Err(KeyError::MissingForExistingStore {
                    key: key_file.to_owned(),
                    data_dir: data_dir.to_owned(),
                });
            }
            let key = StoreKey::generate()?;
            key.write_new_file(key_file)?;
            Ok((key, KeyOrigin::Created))
        }
        Err(e) => Err(e),
    }
}

/// Refuses a key file inside the data directory.
pub fn refuse_inside(data_dir: &Path, key_file: &Path) -> Result<(), KeyError> {
    let data = resolve(data_dir);
    let key = resolve(key_file);
    if key.starts_with(&data) {
        return Err(KeyError::InsideDataDirectory {
            key: key_file.to_owned(),
            data_dir: data_dir.to_owned(),
        });
    }
    Ok(())
}

/// An absolute path with symbolic links resolved as far as the path exists, and `.` and `..`
/// applied lexically to the rest.
fn resolve(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    // The longest prefix that exists is canonicalised; the remainder is appended.
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    let base = loop {
        if let Ok(canonical) = existing.canonicalize() {
            break canonical;
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_owned());
                existing = parent;
            }
            _ => break existing.to_owned(),
        }
    };
    let mut out = base;
    for part in rest.iter().rev() {
        for component in Path::new(part).components() {
            match component {
                Component::ParentDir => {
                    out.pop();
                }
                Component::CurDir => {}
                other => out.push(other),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_round_trips_through_its_file_and_the_file_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.key");
        let key = StoreKey::generate().unwrap();
        key.write_new_file(&path).unwrap();
        assert_eq!(StoreKey::read_file(&path).unwrap(), key);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        // Never replaced.
        assert!(matches!(
            StoreKey::generate().unwrap().write_new_file(&path),
            Err(KeyError::Unwritable { .. })
        ));
        assert_eq!(StoreKey::read_file(&path).unwrap(), key);
    }

    #[test]
    fn two_generated_keys_differ_and_debug_hides_them() {
        let (a, b) = (StoreKey::generate().unwrap(), StoreKey::generate().unwrap());
        assert_ne!(a, b);
        assert_eq!(format!("{a:?}"), "StoreKey(redacted)");
        let literal = a.sqlcipher_literal();
        assert!(literal.starts_with("x'") && literal.ends_with('\'') && literal.len() == 67);
    }

    #[test]
    fn a_key_file_without_a_key_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.key");
        for text in ["", "abc", &"zz".repeat(32), &"ab".repeat(33)] {
            std::fs::write(&path, text).unwrap();
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
            }
            let err = StoreKey::read_file(&path).unwrap_err();
            assert!(matches!(err, KeyError::Malformed(_)), "{text:?}: {err}");
            assert!(err.to_string().contains("store.key"), "{err}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_key_file_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.key");
        StoreKey::generate().unwrap().write_new_file(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = StoreKey::read_file(&path).unwrap_err();
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }

    #[test]
    fn a_key_file_inside_the_data_directory_is_refused_however_it_is_spelt() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        std::fs::create_dir(dir.path().join("keys")).unwrap();
        for inside in [
            data.join("store.key"),
            data.join("sub/store.key"),
            dir.path().join("keys/../data/store.key"),
            data.join("./store.key"),
        ] {
            let err = refuse_inside(&data, &inside).unwrap_err();
            assert!(
                matches!(err, KeyError::InsideDataDirectory { .. }),
                "{inside:?}"
            );
        }
        // A sibling whose name merely starts with the data directory's name is outside.
        refuse_inside(&data, &dir.path().join("data-keys/store.key")).unwrap();
        refuse_inside(&data, &dir.path().join("keys/store.key")).unwrap();
        #[cfg(unix)]
        {
            // Through a symbolic link to the data directory.
            let link = dir.path().join("link");
            std::os::unix::fs::symlink(&data, &link).unwrap();
            assert!(refuse_inside(&data, &link.join("store.key")).is_err());
        }
    }

    #[test]
    fn a_key_is_created_only_for_a_store_that_does_not_exist_yet() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let key_file = dir.path().join("store.key");
        let (key, origin) = key_for_store(&data, &key_file).unwrap();
        assert_eq!(origin, KeyOrigin::Created);
        let (again, origin) = key_for_store(&data, &key_file).unwrap();
        assert_eq!((again, origin), (key, KeyOrigin::Read));

        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(data.join(crate::sqlite::DATABASE_FILE), b"x").unwrap();
        let err = key_for_store(&data, &dir.path().join("other.key")).unwrap_err();
        assert!(
            matches!(err, KeyError::MissingForExistingStore { .. }),
            "{err}"
        );
        assert!(!dir.path().join("other.key").exists());
    }
}
