//! The audit trail end to end: the real `vigil` binary records an alarm acknowledgement, a
//! credential rotation and a refused device sign-in (mosquitto_pub with a wrong secret);
//! `vigil audit verify` finds the log intact; then the file is tampered with as an attacker with
//! the file and the key would (drop the append-only trigger, edit one entry) and verification
//! names the entry.

mod common;

use common::vigil_cmd;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

fn vigil_output(args: &[&str]) -> Output {
    vigil_cmd().args(args).output().expect("run vigil")
}

fn vigil(args: &[&str]) -> String {
    let out = vigil_output(args);
    assert!(
        out.status.success(),
        "vigil {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

struct Server {
    child: Child,
    http: String,
    mqtt_port: u16,
}

impl Server {
    fn start(data_dir: &Path) -> Server {
        let mut child = vigil_cmd()
            .args(["serve", "--data-dir"])
            .arg(data_dir)
            .args(["--http", "127.0.0.1:0", "--mqtt", "127.0.0.1:0"])
            .env("VIGIL_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .expect("start vigil serve");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let (mut http, mut mqtt_port) = (None, None);
        while http.is_none() || mqtt_port.is_none() {
            let line = lines.next().expect("vigil serve exited early").unwrap();
            if let Some(rest) = line.trim().strip_prefix("HTTP API") {
                http = rest.split_whitespace().next().map(str::to_owned);
            }
            if let Some(rest) = line.trim().strip_prefix("MQTT") {
                let url = rest.split_whitespace().next().unwrap();
                mqtt_port = url.rsplit(':').next().and_then(|p| p.parse().ok());
            }
        }
        std::thread::spawn(move || for _ in lines {});
        Server {
            child,
            http: http.unwrap(),
            mqtt_port: mqtt_port.unwrap(),
        }
    }

    /// A graceful stop (SIGTERM), waited for.
    fn stop(mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn get(server: &Server, token: &str, path: &str) -> (u16, Value) {
    let resp = client()
        .get(format!("{}{path}", server.http))
        .bearer_auth(token)
        .send()
        .unwrap();
    (resp.status().as_u16(), resp.json().unwrap_or(Value::Null))
}

fn post(server: &Server, token: &str, path: &str) -> (u16, Value) {
    let resp = client()
        .post(format!("{}{path}", server.http))
        .bearer_auth(token)
        .send()
        .unwrap();
    (resp.status().as_u16(), resp.json().unwrap_or(Value::Null))
}

fn token(data: &str, role: &str, subject: &str) -> String {
    vigil(&[
        "token",
        "issue",
        "--data-dir",
        data,
        "--role",
        role,
        "--subject",
        subject,
    ])
    .trim()
    .to_owned()
}

#[test]
fn the_audit_trail_records_what_happened_and_verify_names_the_entry_someone_edited() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_owned();
    vigil(&[
        "patient",
        "add",
        "--data-dir",
        &data,
        "--id",
        "p1",
        "--name",
        "Jan Havel",
    ]);
    let added = vigil(&[
        "device",
        "add",
        "--data-dir",
        &data,
        "--id",
        "pendant-1",
        "--patient",
        "p1",
        "--since",
        "2025-11-01T00:00:00Z",
    ]);
    let secret = added
        .lines()
        .find_map(|l| l.strip_prefix("secret: "))
        .unwrap()
        .trim()
        .to_owned();
    // nadia's care team looks after p1.
    vigil(&[
        "team",
        "set",
        "--data-dir",
        &data,
        "--id",
        "ward-4b",
        "--name",
        "Ward 4B",
        "--member",
        "nadia",
        "--patient",
        "p1",
    ]);
    let nurse = token(&data, "clinician", "nadia");
    let admin = token(&data, "admin", "root");
    let server = Server::start(dir.path());

    // A fall raises an alarm; the nurse acknowledges it.
    let ts = chrono::Utc::now().timestamp_millis() - 2_000;
    let resp = client()
        .post(format!("{}/api/v1/devices/pendant-1/events", server.http))
        .basic_auth("pendant-1", Some(&secret))
        .json(&json!({"event": "fall", "ts": ts}))
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 202);
    let mut alarm = None;
    for _ in 0..200 {
        let (_, alerts) = get(&server, &nurse, "/api/v1/alerts?patient=p1");
        alarm = alerts["alerts"]
            .as_array()
            .and_then(|a| a.iter().find(|a| a["condition"] == "event:fall"))
            .map(|a| a["id"].as_u64().unwrap());
        if alarm.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let alarm = alarm.expect("the fall raised an alarm");
    let (status, acked) = post(&server, &nurse, &format!("/api/v1/alerts/{alarm}/ack"));
    assert_eq!(status, 200, "{acked}");

    // The administrator rotates the pendant's secret; the old one is then refused over MQTT.
    let (status, rotated) = post(&server, &admin, "/api/v1/devices/pendant-1/secret");
    assert_eq!(status, 200, "{rotated}");
    let refused = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &server.mqtt_port.to_string()])
        .args(["-u", "pendant-1", "-P", &secret, "-q", "1"])
        .args(["-t", "vigil/v1/devices/pendant-1/events", "-m", "{}"])
        .output()
        .expect("mosquitto_pub is installed (scripts/test.sh installs mosquitto-clients)");
    assert!(!refused.status.success());

    // The administrator sees all of it as FHIR AuditEvents.
    let (status, bundle) = get(&server, &admin, "/fhir/AuditEvent?_count=100");
    assert_eq!(status, 200, "{bundle}");
    let codes: Vec<String> = bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            e["resource"]["subtype"].as_array().unwrap().last().unwrap()["code"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        codes,
        [
            "login-failed",
            "credential-change",
            // The administrator's token, first used for the rotation.
            "token-use",
            "alarm-acknowledge",
            // The nurse's search of p1's alarms, and her token's first use.
            "search",
            "token-use",
            "credential-change"
        ],
        "newest first; the first credential change is the CLI's registration"
    );
    let ack = &bundle["entry"][3]["resource"];
    assert_eq!(ack["agent"][0]["who"]["identifier"]["value"], "nadia");
    assert_eq!(ack["agent"][0]["network"]["address"], "127.0.0.1");
    assert_eq!(ack["entity"][0]["what"]["reference"], "Patient/p1");
    let refused_login = &bundle["entry"][0]["resource"];
    assert_eq!(refused_login["source"]["site"], "mqtt");
    assert_eq!(refused_login["outcomeDesc"], "bad_secret");
    server.stop();

    // Intact: OK with the count and the head, which is the anchor.
    let ok = vigil(&["audit", "verify", "--data-dir", &data]);
    let head = vigil(&["audit", "head", "--data-dir", &data])
        .trim()
        .to_owned();
    let (head_seq, head_hash) = head.split_once(' ').unwrap();
    assert!(
        ok.starts_with(&format!("OK: {head_seq} entries, chain intact")),
        "{ok}"
    );
    assert!(ok.contains(head_hash), "{ok} vs {head}");
    let ok = vigil(&["audit", "verify", "--data-dir", &data, "--anchor", &head]);
    assert!(ok.starts_with("OK"), "{ok}");
    let found = vigil(&["audit", "search", "--data-dir", &data, "--patient", "p1"]);
    assert!(
        found
            .lines()
            .any(|l| l.contains("alarm-acknowledge") && l.contains("nadia")),
        "{found}"
    );

    // Someone with the file and the key removes the trigger and rewrites who acknowledged the
    // alarm.
    let db = dir.path().join("audit.sqlite");
    let key_file = vigil_cmd()
        .get_envs()
        .find(|(k, _)| *k == "VIGIL_KEY_FILE")
        .and_then(|(_, v)| v.map(std::path::PathBuf::from))
        .expect("the test key file");
    let key = std::fs::read_to_string(key_file).unwrap();
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch(&format!("PRAGMA key = \"x'{}'\";", key.trim()))
        .unwrap();
    conn.execute_batch("DROP TRIGGER audit_log_no_update")
        .unwrap();
    let seq: i64 = conn
        .query_row(
            "SELECT seq FROM audit_log WHERE action = 'alarm-acknowledge'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    conn.execute(
        "UPDATE audit_log SET entry = replace(entry, 'nadia', 'omar') WHERE seq = ?1",
        [seq],
    )
    .unwrap();
    drop(conn);
    let edited = seq.to_string();
    let seq = edited.trim();
    let out = vigil_output(&["audit", "verify", "--data-dir", &data]);
    assert_eq!(out.status.code(), Some(1));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains(&format!("TAMPERED: seq {seq}: entry-altered")),
        "{said}"
    );
}
