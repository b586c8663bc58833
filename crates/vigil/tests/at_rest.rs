//! The store at rest, as an operator meets it: the real `vigil` binary with key files, a running
//! server, re-keying, encrypted backups and their restore. The files on disk are read byte for
//! byte to check they hold no patient data in the clear.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

const VIGIL: &str = env!("CARGO_BIN_EXE_vigil");
/// A name that occurs nowhere but in the store under test.
const NAME: &str = "Zdenka Vratislavova";
const MRN: &str = "MRN-AT-REST-4711";

/// A data directory and, beside it, a directory for key files.
struct Site {
    _tmp: tempfile::TempDir,
    data: PathBuf,
    keys: PathBuf,
}

impl Site {
    fn new() -> Site {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let keys = tmp.path().join("keys");
        std::fs::create_dir(&keys).unwrap();
        Site {
            data,
            keys,
            _tmp: tmp,
        }
    }

    fn key(&self, name: &str) -> PathBuf {
        self.keys.join(name)
    }

    fn data(&self) -> &str {
        self.data.to_str().unwrap()
    }

    fn path(&self, name: &str) -> PathBuf {
        self._tmp.path().join(name)
    }
}

fn run(args: &[&str]) -> Output {
    Command::new(VIGIL)
        .args(args)
        .env_remove("VIGIL_KEY_FILE")
        .env_remove("VIGIL_DATA_DIR")
        .output()
        .expect("run vigil")
}

fn ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "vigil {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn fails(args: &[&str]) -> String {
    let out = run(args);
    assert!(!out.status.success(), "vigil {args:?} should have failed");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

fn add_patient(site: &Site, key: &Path) {
    ok(&[
        "patient",
        "add",
        "--data-dir",
        site.data(),
        "--key-file",
        key.to_str().unwrap(),
        "--id",
        "p-rest",
        "--name",
        NAME,
        "--mrn",
        MRN,
    ]);
}

fn list_patients(site: &Site, key: &Path) -> String {
    ok(&[
        "patient",
        "list",
        "--data-dir",
        site.data(),
        "--key-file",
        key.to_str().unwrap(),
    ])
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Fails if the file holds the patient's name or MRN, or the plaintext SQLite header.
fn assert_no_plaintext(path: &Path) {
    let bytes = std::fs::read(path).unwrap_or_default();
    for needle in [
        NAME.as_bytes(),
        b"Vratislavova",
        MRN.as_bytes(),
        b"SQLite format 3",
    ] {
        assert!(
            !contains(&bytes, needle),
            "{} holds {:?} in the clear",
            path.display(),
            String::from_utf8_lossy(needle)
        );
    }
}

struct Server(Child);

impl Server {
    fn start(site: &Site, key: &Path) -> (Server, String) {
        let mut child = Command::new(VIGIL)
            .args(["serve", "--data-dir", site.data(), "--key-file"])
            .arg(key)
            .args(["--http", "127.0.0.1:0", "--mqtt", "127.0.0.1:0"])
            .env("VIGIL_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start vigil serve");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let http = loop {
            let line = lines.next().expect("vigil serve exited early").unwrap();
            if let Some(rest) = line.trim().strip_prefix("HTTP API") {
                break rest.split_whitespace().next().unwrap().to_owned();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        (Server(child), http)
    }

    /// Stops it gracefully (SIGTERM) and waits; returns its stderr.
    fn stop(mut self) -> String {
        let _ = Command::new("kill").arg(self.0.id().to_string()).status();
        let _ = self.0.wait();
        let mut stderr = String::new();
        if let Some(mut e) = self.0.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
        }
        stderr
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn serve_creates_the_key_outside_the_data_directory_and_the_files_hold_no_plaintext() {
    let site = Site::new();
    let key = site.key("store.key");
    let (server, http) = Server::start(&site, &key);
    assert!(key.is_file(), "the key file was created");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    // The server itself writes the patient: the commit sits in its write-ahead log.
    let token = ok(&[
        "token",
        "issue",
        "--data-dir",
        site.data(),
        "--role",
        "admin",
        "--subject",
        "ops",
    ]);
    let client = reqwest::blocking::Client::new();
    let created = client
        .post(format!("{http}/fhir/Patient"))
        .bearer_auth(token.trim())
        .header("content-type", "application/fhir+json")
        .body(format!(
            r#"{{"resourceType":"Patient","name":[{{"text":"{NAME}"}}],"identifier":[{{"system":"urn:mrn","value":"{MRN}"}}]}}"#
        ))
        .send()
        .unwrap();
    assert_eq!(
        created.status().as_u16(),
        201,
        "{}",
        created.text().unwrap()
    );
    let found = client
        .get(format!("{http}/fhir/Patient?name=vratislavova"))
        .bearer_auth(token.trim())
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(found.contains("Vratislavova"), "{found}");
    // An operator command beside the running server (its readers are open now).
    assert!(list_patients(&site, &key).contains(NAME));
    let db = site.data.join("vigil.db");
    let wal = site.data.join("vigil.db-wal");
    // Regression: the operator commands above must not have been able to delete the log under
    // the running server (they could when the server dropped its own file locks by reading the
    // database file outside SQLite; the server then missed later commits of other processes).
    assert!(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0) > 0);
    assert!(site.data.join("vigil.db-shm").exists());
    assert_no_plaintext(&db);
    assert_no_plaintext(&wal);
    let stderr = server.stop();
    assert!(stderr.contains("Created a new store key in"), "{stderr}");
    assert!(stderr.contains(key.to_str().unwrap()), "{stderr}");
    assert_no_plaintext(&db);
    assert_no_plaintext(&wal);
    assert!(list_patients(&site, &key).contains(NAME));
}

#[test]
fn a_key_file_inside_the_data_directory_is_refused() {
    let site = Site::new();
    std::fs::create_dir_all(&site.data).unwrap();
    let inside = site.data.join("store.key");
    let out = Command::new(VIGIL)
        .args(["serve", "--data-dir", site.data(), "--key-file"])
        .arg(&inside)
        .args(["--http", "127.0.0.1:0", "--no-mqtt"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("inside the data directory"), "{stderr}");
    assert!(
        !inside.exists(),
        "no key was written inside the data directory"
    );
    assert!(!site.data.join("vigil.db").exists(), "no store was created");

    // The same through the environment, for an operator command.
    let out = Command::new(VIGIL)
        .args(["patient", "list", "--data-dir", site.data()])
        .env("VIGIL_KEY_FILE", site.data.join("sub/../k.key"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("inside the data directory"));
}

#[test]
fn a_wrong_missing_or_absent_key_is_a_clear_error_and_never_a_new_store() {
    let site = Site::new();
    let key = site.key("store.key");
    add_patient(&site, &key);
    let before = std::fs::read(site.data.join("vigil.db")).unwrap();

    // Another key: "encrypted and this key does not open it".
    let other = site.key("other.key");
    std::fs::write(&other, format!("{}\n", "ab".repeat(32))).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&other, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let err = fails(&[
        "patient",
        "list",
        "--data-dir",
        site.data(),
        "--key-file",
        other.to_str().unwrap(),
    ]);
    assert!(
        err.contains("is encrypted and this key does not open it"),
        "{err}"
    );

    // A key file that does not exist, for a store that does: no new key is made.
    let missing = site.key("missing.key");
    let err = fails(&[
        "patient",
        "list",
        "--data-dir",
        site.data(),
        "--key-file",
        missing.to_str().unwrap(),
    ]);
    assert!(err.contains("is encrypted but its key file"), "{err}");
    assert!(!missing.exists());

    // No key file at all.
    let err = fails(&["patient", "list", "--data-dir", site.data()]);
    assert!(err.contains("no key file"), "{err}");

    // A key file others can read.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = fails(&[
            "patient",
            "list",
            "--data-dir",
            site.data(),
            "--key-file",
            key.to_str().unwrap(),
        ]);
        assert!(err.contains("chmod 600"), "{err}");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    assert_eq!(std::fs::read(site.data.join("vigil.db")).unwrap(), before);
    assert!(list_patients(&site, &key).contains(NAME));
}

#[test]
fn rekey_is_refused_while_the_server_runs_and_afterwards_only_the_new_key_opens_the_store() {
    let site = Site::new();
    let old = site.key("store.key");
    let new = site.key("store-2027.key");
    add_patient(&site, &old);
    let rekey = [
        "store",
        "rekey",
        "--data-dir",
        site.data(),
        "--key-file",
        old.to_str().unwrap(),
        "--new-key-file",
        new.to_str().unwrap(),
    ];

    let (server, _) = Server::start(&site, &old);
    let err = fails(&rekey);
    assert!(err.contains("in use by another process"), "{err}");
    assert!(err.contains("stop `vigil serve`"), "{err}");
    server.stop();
    // The refused attempt left the store as it was.
    assert!(list_patients(&site, &old).contains(NAME));

    let out = ok(&rekey);
    assert!(out.contains("now encrypted with the key in"), "{out}");
    assert!(new.is_file());
    assert!(list_patients(&site, &new).contains(NAME));
    let err = fails(&[
        "patient",
        "list",
        "--data-dir",
        site.data(),
        "--key-file",
        old.to_str().unwrap(),
    ]);
    assert!(
        err.contains("is encrypted and this key does not open it"),
        "{err}"
    );
    assert_no_plaintext(&site.data.join("vigil.db"));
    // The server starts with the new key.
    let (server, _) = Server::start(&site, &new);
    server.stop();
}

#[test]
fn a_backup_taken_while_the_server_runs_is_encrypted_and_restores_into_a_new_data_directory() {
    let site = Site::new();
    let key = site.key("store.key");
    add_patient(&site, &key);
    let (server, _) = Server::start(&site, &key);
    let out = site.path("vigil-backup.db");
    let said = ok(&[
        "backup",
        "--data-dir",
        site.data(),
        "--key-file",
        key.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(said.contains("Backup written to"), "{said}");
    server.stop();
    assert!(std::fs::metadata(&out).unwrap().len() > 0);
    assert_no_plaintext(&out);

    let restored = site.path("restored");
    ok(&[
        "restore",
        "--from",
        out.to_str().unwrap(),
        "--data-dir",
        restored.to_str().unwrap(),
        "--key-file",
        key.to_str().unwrap(),
    ]);
    let listed = ok(&[
        "patient",
        "list",
        "--data-dir",
        restored.to_str().unwrap(),
        "--key-file",
        key.to_str().unwrap(),
    ]);
    assert!(listed.contains(NAME), "{listed}");
    assert_no_plaintext(&restored.join("vigil.db"));

    // Restoring over a store is refused.
    let err = fails(&[
        "restore",
        "--from",
        out.to_str().unwrap(),
        "--data-dir",
        restored.to_str().unwrap(),
        "--key-file",
        key.to_str().unwrap(),
    ]);
    assert!(err.contains("already exists"), "{err}");
}

#[test]
fn a_backup_under_its_own_key_needs_that_key_to_restore() {
    let site = Site::new();
    let key = site.key("store.key");
    let backup_key = site.key("backup.key");
    add_patient(&site, &key);
    let out = site.path("b.db");
    ok(&[
        "backup",
        "--data-dir",
        site.data(),
        "--key-file",
        key.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--backup-key-file",
        backup_key.to_str().unwrap(),
    ]);
    assert!(backup_key.is_file(), "the backup key was created");
    assert_no_plaintext(&out);

    let restored = site.path("restored");
    let new_key = site.key("restored.key");
    // With the store's key: refused, and nothing is left behind.
    let err = fails(&[
        "restore",
        "--from",
        out.to_str().unwrap(),
        "--data-dir",
        restored.to_str().unwrap(),
        "--key-file",
        key.to_str().unwrap(),
    ]);
    assert!(
        err.contains("is encrypted and this key does not open it"),
        "{err}"
    );
    assert!(!restored.join("vigil.db").exists());

    ok(&[
        "restore",
        "--from",
        out.to_str().unwrap(),
        "--backup-key-file",
        backup_key.to_str().unwrap(),
        "--data-dir",
        restored.to_str().unwrap(),
        "--key-file",
        new_key.to_str().unwrap(),
    ]);
    let listed = ok(&[
        "patient",
        "list",
        "--data-dir",
        restored.to_str().unwrap(),
        "--key-file",
        new_key.to_str().unwrap(),
    ]);
    assert!(listed.contains(NAME), "{listed}");
}
