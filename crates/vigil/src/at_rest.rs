//! Operator commands for the store at rest: change its key, encrypt an older plaintext store,
//! back it up encrypted and restore a backup. See docs/encryption.md for the procedures.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use vigil_store::key::{self, KeyError, StoreKey};
use vigil_store::sqlite;

use crate::DataDir;

#[derive(Subcommand)]
pub enum StoreCommand {
    /// Re-encrypt the store with a new key. Stop the server first; afterwards point the server at
    /// the new key file. The new key file is created if it does not exist.
    Rekey {
        #[command(flatten)]
        data: DataDir,
        /// The new key file (outside the data directory); created (owner-only) if absent.
        #[arg(long, value_name = "FILE")]
        new_key_file: PathBuf,
    },
    /// Encrypt a store created by a Vigil without encryption at rest, in place, with the key in
    /// --key-file (created if absent). Stop the server first.
    Encrypt {
        #[command(flatten)]
        data: DataDir,
    },
}

#[derive(Args)]
pub struct BackupArgs {
    #[command(flatten)]
    data: DataDir,
    /// The backup file to write; never overwritten.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Encrypt the backup with this key file instead of the store's own key; created
    /// (owner-only) if absent. Keep it apart from the backups.
    #[arg(long, value_name = "FILE")]
    backup_key_file: Option<PathBuf>,
}

#[derive(Args)]
pub struct RestoreArgs {
    /// The backup file.
    #[arg(long, value_name = "FILE")]
    from: PathBuf,
    /// The data directory to restore into (it must not hold a store) and the key file the
    /// restored store is encrypted with (created if absent).
    #[command(flatten)]
    data: DataDir,
    /// The key the backup was written with, if not the one in --key-file.
    #[arg(long, value_name = "FILE")]
    backup_key_file: Option<PathBuf>,
}

fn required_key_file(data: &DataDir) -> anyhow::Result<&Path> {
    data.key_file.as_deref().context(
        "no key file: give --key-file FILE (or VIGIL_KEY_FILE), the file holding the store's key",
    )
}

/// Reads the key file, or creates it with a fresh key if it does not exist.
fn read_or_create(path: &Path, what: &str) -> anyhow::Result<StoreKey> {
    match StoreKey::read_file(path) {
        Ok(key) => Ok(key),
        Err(KeyError::NotFound(_)) => {
            let key = StoreKey::generate()?;
            key.write_new_file(path)?;
            eprintln!(
                "Created a new {what} in {} (owner-only). Keep it safe: without it the data it \
                 encrypts cannot be read.",
                path.display()
            );
            Ok(key)
        }
        Err(e) => Err(e.into()),
    }
}

pub fn store(cmd: StoreCommand) -> anyhow::Result<()> {
    match cmd {
        StoreCommand::Rekey { data, new_key_file } => {
            let old_file = required_key_file(&data)?;
            key::refuse_inside(&data.data_dir, old_file)?;
            key::refuse_inside(&data.data_dir, &new_key_file)?;
            if same_file(old_file, &new_key_file) {
                bail!("--new-key-file must be a different file from --key-file");
            }
            let old = StoreKey::read_file(old_file)?;
            let new = read_or_create(&new_key_file, "store key")?;
            if old == new {
                bail!(
                    "{} holds the same key as {}",
                    new_key_file.display(),
                    old_file.display()
                );
            }
            sqlite::rekey(&data.data_dir, &old, &new)
                .with_context(|| format!("changing the key of {}", data.data_dir.display()))?;
            println!(
                "The store in {} is now encrypted with the key in {}; the old key no longer opens it.",
                data.data_dir.display(),
                new_key_file.display()
            );
            println!(
                "Start the server with --key-file {} (or move it over {}). Keep the old key as \
                 long as you keep backups written with it.",
                new_key_file.display(),
                old_file.display()
            );
        }
        StoreCommand::Encrypt { data } => {
            let key_file = required_key_file(&data)?;
            key::refuse_inside(&data.data_dir, key_file)?;
            let key = read_or_create(key_file, "store key")?;
            sqlite::encrypt(&data.data_dir, &key)
                .with_context(|| format!("encrypting {}", data.data_dir.display()))?;
            println!(
                "The store in {} is now encrypted with the key in {}.",
                data.data_dir.display(),
                key_file.display()
            );
        }
    }
    Ok(())
}

pub fn backup(args: BackupArgs) -> anyhow::Result<()> {
    let BackupArgs {
        data,
        out,
        backup_key_file,
    } = args;
    let key_file = required_key_file(&data)?;
    key::refuse_inside(&data.data_dir, key_file)?;
    let key = StoreKey::read_file(key_file)?;
    let (backup_key, used) = match &backup_key_file {
        Some(path) => {
            key::refuse_inside(&data.data_dir, path)?;
            (read_or_create(path, "backup key")?, path.as_path())
        }
        None => (key.clone(), key_file),
    };
    sqlite::backup(&data.data_dir, &key, &out, &backup_key)
        .with_context(|| format!("backing up {}", data.data_dir.display()))?;
    println!(
        "Backup written to {}, encrypted with the key in {}.",
        out.display(),
        used.display()
    );
    Ok(())
}

pub fn restore(args: RestoreArgs) -> anyhow::Result<()> {
    let RestoreArgs {
        from,
        data,
        backup_key_file,
    } = args;
    let key_file = required_key_file(&data)?;
    let backup_key = match &backup_key_file {
        Some(path) => StoreKey::read_file(path)?,
        // Same key: it must already exist, it is the one the backup was written with.
        None => StoreKey::read_file(key_file)?,
    };
    // Refused inside the data directory; created if absent (the restored store is new).
    let (key, _) = key::key_for_store(&data.data_dir, key_file)?;
    sqlite::restore(&from, &backup_key, &data.data_dir, &key)
        .with_context(|| format!("restoring {}", from.display()))?;
    println!(
        "Restored {} into {}, encrypted with the key in {}.",
        from.display(),
        data.data_dir.display(),
        key_file.display()
    );
    Ok(())
}

/// Whether two paths name the same file (by their resolved paths where they exist).
fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}
