//! End to end, as an operator and a device would do it: the real `vigil` binary on ephemeral
//! ports, devices registered with the CLI, readings published with real MQTT clients (Debian's
//! mosquitto_pub/mosquitto_sub, and rumqttc) and over HTTP, read back through the FHIR API.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

const VIGIL: &str = env!("CARGO_BIN_EXE_vigil");

/// The store key of the data directory `data_dir`: in a directory beside it (never inside it,
/// which `vigil` refuses), removed when the test's [`Ward`] is dropped.
fn key_file_for(data_dir: &Path) -> PathBuf {
    let mut name = data_dir.file_name().expect("a named directory").to_owned();
    name.push(".keys");
    let keys = data_dir.with_file_name(name);
    std::fs::create_dir_all(&keys).expect("create the key directory");
    keys.join("store.key")
}

/// `vigil args…`, given the store key (`VIGIL_KEY_FILE`) of the data directory it names.
fn vigil_command(args: &[&str]) -> Command {
    let mut cmd = Command::new(VIGIL);
    cmd.args(args);
    if let Some(at) = args.iter().position(|a| *a == "--data-dir") {
        cmd.env("VIGIL_KEY_FILE", key_file_for(Path::new(args[at + 1])));
    }
    cmd
}

fn vigil(args: &[&str]) -> String {
    let out = vigil_command(args).output().expect("run vigil");
    assert!(
        out.status.success(),
        "vigil {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn vigil_fails(args: &[&str]) -> String {
    let out = vigil_command(args).output().expect("run vigil");
    assert!(!out.status.success(), "vigil {args:?} should have failed");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

struct Server {
    child: Child,
    http: String,
    mqtt_port: u16,
    mllp_port: Option<u16>,
}

impl Server {
    fn start(data_dir: &Path) -> Server {
        Server::start_with(data_dir, &[])
    }

    fn start_with(data_dir: &Path, extra: &[&str]) -> Server {
        let mut child = Command::new(VIGIL)
            .args(["serve", "--data-dir"])
            .arg(data_dir)
            .env("VIGIL_KEY_FILE", key_file_for(data_dir))
            .args(extra)
            .args(["--http", "127.0.0.1:0", "--mqtt", "127.0.0.1:0"])
            .env("VIGIL_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .expect("start vigil serve");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let (mut http, mut mqtt_port, mut mllp_port) = (None, None, None);
        let wants_mllp = extra.contains(&"--mllp");
        while http.is_none() || mqtt_port.is_none() || (wants_mllp && mllp_port.is_none()) {
            let line = lines.next().expect("vigil serve exited early").unwrap();
            if let Some(rest) = line.trim().strip_prefix("MLLP") {
                let url = rest.split_whitespace().next().unwrap();
                mllp_port = url.rsplit(':').next().and_then(|p| p.parse().ok());
            }
            if let Some(rest) = line.trim().strip_prefix("HTTP API") {
                http = rest.split_whitespace().next().map(str::to_owned);
            }
            if let Some(rest) = line.trim().strip_prefix("MQTT") {
                let url = rest.split_whitespace().next().unwrap();
                mqtt_port = url.rsplit(':').next().and_then(|p| p.parse().ok());
            }
        }
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Server {
            child,
            http: http.unwrap(),
            mqtt_port: mqtt_port.unwrap(),
            mllp_port,
        }
    }

    /// Stops the process the hard way: no graceful shutdown, as in a crash.
    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Asks for a graceful stop (SIGTERM) and waits for it.
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

struct Ward {
    dir: tempfile::TempDir,
    token: String,
}

impl Drop for Ward {
    fn drop(&mut self) {
        if let Some(keys) = key_file_for(self.dir.path()).parent() {
            let _ = std::fs::remove_dir_all(keys);
        }
    }
}

impl Ward {
    fn data(&self) -> &str {
        self.dir.path().to_str().unwrap()
    }
    fn add_device(&self, id: &str, patient: &str) -> String {
        let out = vigil(&[
            "device",
            "add",
            "--data-dir",
            self.data(),
            "--id",
            id,
            "--patient",
            patient,
            "--since",
            "2025-11-01T00:00:00Z",
        ]);
        out.lines()
            .find_map(|l| l.strip_prefix("secret: "))
            .expect("secret printed")
            .trim()
            .to_owned()
    }
}

fn ward() -> Ward {
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
        "--mrn",
        "MRN-1",
    ]);
    vigil(&[
        "patient",
        "add",
        "--data-dir",
        &data,
        "--id",
        "p2",
        "--name",
        "Eva Novak",
    ]);
    // nadia works at the central station, whose care team looks after every patient.
    vigil(&[
        "team",
        "set",
        "--data-dir",
        &data,
        "--id",
        "central",
        "--name",
        "Central monitoring",
        "--member",
        "nadia",
        "--every-patient",
    ]);
    let token = vigil(&[
        "token",
        "issue",
        "--data-dir",
        &data,
        "--role",
        "clinician",
        "--subject",
        "nadia",
    ])
    .trim()
    .to_owned();
    Ward { dir, token }
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn fhir_get(server: &Server, token: &str, path_and_query: &str) -> (u16, Value) {
    let resp = client()
        .get(format!("{}{}", server.http, path_and_query))
        .bearer_auth(token)
        .send()
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().unwrap_or(Value::Null))
}

/// The patient's observations from devices (without the NEWS2 scorer's records).
fn observations(server: &Server, token: &str, patient: &str) -> Vec<Value> {
    all_observations(server, token, patient)
        .into_iter()
        .filter(|o| !is_score(o))
        .collect()
}

fn is_score(o: &Value) -> bool {
    o["device"]["reference"] == "Device/vigil-news2"
}

fn all_observations(server: &Server, token: &str, patient: &str) -> Vec<Value> {
    let (status, bundle) = fhir_get(
        server,
        token,
        &format!("/fhir/Observation?patient={patient}&_count=1000"),
    );
    assert_eq!(status, 200, "{bundle}");
    bundle["entry"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|e| e["resource"].clone())
        .collect()
}

fn mosquitto_pub(
    port: u16,
    user: &str,
    secret: &str,
    topic: &str,
    message: &str,
    extra: &[&str],
) -> std::process::Output {
    Command::new("mosquitto_pub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-u",
            user,
            "-P",
            secret,
            "-t",
            topic,
            "-q",
            "1",
            "-m",
            message,
        ])
        .args(extra)
        .output()
        .expect("mosquitto_pub is installed (scripts/test.sh installs mosquitto-clients)")
}

fn post_obs(
    server: &Server,
    device: &str,
    user: &str,
    secret: &str,
    body: impl Into<reqwest::blocking::Body>,
) -> (u16, Value) {
    let resp = client()
        .post(format!("{}/api/v1/devices/{device}/obs", server.http))
        .basic_auth(user, Some(secret))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().unwrap_or(Value::Null))
}

#[test]
fn a_reading_published_over_mqtt_is_read_back_as_fhir() {
    let w = ward();
    let secret = w.add_device("mon-1", "p1");
    let server = Server::start(w.dir.path());

    // MQTT 3.1.1 and MQTT 5, with Debian's mosquitto_pub.
    let out = mosquitto_pub(
        server.mqtt_port,
        "mon-1",
        &secret,
        "vigil/v1/devices/mon-1/obs",
        r#"{"ts":"2026-11-21T10:15:00.250Z","obs":[{"code":"heart_rate","value":72,"unit":"/min"},{"code":"8480-6","value":128,"unit":"mm[Hg]"},{"code":"diastolic_bp","value":16,"unit":"kPa"}]}"#,
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = mosquitto_pub(
        server.mqtt_port,
        "mon-1",
        &secret,
        "vigil/v1/devices/mon-1/obs",
        r#"{"ts":1795256160000,"obs":[{"code":"temperature","value":100.4,"unit":"[degF]"}]}"#,
        &["-V", "5"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let obs = observations(&server, &w.token, "p1");
    assert_eq!(
        obs.len(),
        3,
        "heart rate, one BP panel, temperature: {obs:#?}"
    );
    let hr = obs
        .iter()
        .find(|o| o["code"]["coding"][0]["code"] == "8867-4")
        .expect("heart rate");
    assert_eq!(hr["valueQuantity"]["value"], 72);
    assert_eq!(hr["valueQuantity"]["code"], "/min");
    assert_eq!(hr["valueQuantity"]["system"], "http://unitsofmeasure.org");
    assert_eq!(hr["subject"]["reference"], "Patient/p1");
    assert_eq!(hr["category"][0]["coding"][0]["code"], "vital-signs");
    assert!(
        hr["effectiveDateTime"]
            .as_str()
            .unwrap()
            .starts_with("2026-11-21T10:15:00.250")
    );
    let bp = obs
        .iter()
        .find(|o| o["code"]["coding"][0]["code"] == "85354-9")
        .expect("blood pressure panel");
    let components = bp["component"].as_array().unwrap();
    assert_eq!(components.len(), 2);
    let dia = components
        .iter()
        .find(|c| c["code"]["coding"][0]["code"] == "8462-4")
        .unwrap();
    let mmhg = dia["valueQuantity"]["value"].as_f64().unwrap();
    assert!(
        (mmhg - 120.0098521353).abs() < 1e-6,
        "16 kPa in mm[Hg]: {mmhg}"
    );
    let temp = obs
        .iter()
        .find(|o| o["code"]["coding"][0]["code"] == "8310-5")
        .unwrap();
    assert!((temp["valueQuantity"]["value"].as_f64().unwrap() - 38.0).abs() < 1e-9);
    assert_eq!(temp["valueQuantity"]["code"], "Cel");

    // Search by code, with system, newest first, paged.
    let (status, bundle) = fhir_get(
        &server,
        &w.token,
        "/fhir/Observation?patient=p1&code=http://loinc.org|8867-4",
    );
    assert_eq!(status, 200);
    assert_eq!(bundle["entry"].as_array().unwrap().len(), 1);
    let (_, bundle) = fhir_get(
        &server,
        &w.token,
        "/fhir/Observation?patient=p1&device=mon-1&_sort=-date&_count=1",
    );
    assert_eq!(
        bundle["entry"][0]["resource"]["code"]["coding"][0]["code"], "8310-5",
        "newest first"
    );
    let next = bundle["link"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["relation"] == "next")
        .expect("next link");
    let next_url = next["url"].as_str().unwrap();
    let resp: Value = client()
        .get(next_url)
        .bearer_auth(&w.token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(resp["entry"].as_array().unwrap().len(), 1);
    assert_ne!(
        resp["entry"][0]["resource"]["id"],
        bundle["entry"][0]["resource"]["id"]
    );

    // Date search.
    let (_, bundle) = fhir_get(
        &server,
        &w.token,
        "/fhir/Observation?patient=p1&device=mon-1&date=ge2026-11-21T10:15:30Z",
    );
    assert_eq!(
        bundle["entry"].as_array().unwrap().len(),
        1,
        "only the temperature is after 10:15:30"
    );

    // The device is visible with its patient and last-seen time.
    let (status, device) = fhir_get(&server, &w.token, "/fhir/Device/mon-1");
    assert_eq!(status, 200);
    assert_eq!(device["patient"]["reference"], "Patient/p1");
    let (_, devices) = fhir_get(&server, &w.token, "/fhir/Device?patient=p1");
    assert_eq!(devices["entry"].as_array().unwrap().len(), 1);
}

#[test]
fn http_ingest_answers_after_commit_and_explains_rejections() {
    let w = ward();
    let secret = w.add_device("cuff-1", "p2");
    let server = Server::start(w.dir.path());

    let (status, body) = post_obs(
        &server,
        "cuff-1",
        "cuff-1",
        &secret,
        r#"{"ts":"2026-11-21T10:00:00Z","obs":[{"code":"systolic_bp","value":131},{"code":"diastolic_bp","value":84},{"code":"heart_rate","value":72,"unit":"mm[Hg]"},{"code":"hr","value":70}]}"#,
    );
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["accepted"], 1, "one BP panel: {body}");
    let rejected = body["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 2);
    assert_eq!(rejected[0]["pointer"], "/obs/2");
    assert_eq!(rejected[0]["kind"], "unit_mismatch");
    assert_eq!(rejected[1]["kind"], "unknown_code");

    // The same message again: recognised as a redelivery, nothing stored twice.
    let (status, body) = post_obs(
        &server,
        "cuff-1",
        "cuff-1",
        &secret,
        r#"{"ts":"2026-11-21T10:00:00Z","obs":[{"code":"systolic_bp","value":131},{"code":"diastolic_bp","value":84}]}"#,
    );
    assert_eq!(status, 202);
    assert_eq!(body["duplicates"], 1);
    assert_eq!(observations(&server, &w.token, "p2").len(), 1);

    // Everything rejected: 422 with the reasons, as problem+json.
    let (status, body) = post_obs(
        &server,
        "cuff-1",
        "cuff-1",
        &secret,
        r#"{"obs":[{"code":"spo2","value":140}]}"#,
    );
    assert_eq!(status, 422);
    assert_eq!(body["rejected"][0]["kind"], "implausible_value");
    // Malformed JSON: 400 with where it broke.
    let (status, body) = post_obs(
        &server,
        "cuff-1",
        "cuff-1",
        &secret,
        r#"{"obs":[{"code":"spo2","#,
    );
    assert_eq!(status, 400, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("line"), "{body}");
    // Oversized: 413.
    let huge = format!(r#"{{"obs":[],"pad":"{}"}}"#, "x".repeat(400 * 1024));
    let (status, body) = post_obs(&server, "cuff-1", "cuff-1", &secret, huge);
    assert_eq!(status, 413);
    assert_eq!(body["type"], "urn:vigil:problem:too_large", "{body}");
    // Just over the decoder's limit: the same answer.
    let just_over = format!(r#"{{"obs":[],"pad":"{}"}}"#, "x".repeat(256 * 1024 - 10));
    let (status, body) = post_obs(&server, "cuff-1", "cuff-1", &secret, just_over);
    assert_eq!(status, 413);
    assert!(
        body["detail"].as_str().unwrap().contains("262144"),
        "{body}"
    );
    // Wrong secret, unknown device, another device's URL, a user token instead of device credentials.
    assert_eq!(post_obs(&server, "cuff-1", "cuff-1", "wrong", "{}").0, 401);
    assert_eq!(post_obs(&server, "ghost", "ghost", &secret, "{}").0, 401);
    let other = w.add_device("cuff-2", "p1");
    assert_eq!(post_obs(&server, "cuff-1", "cuff-2", &other, "{}").0, 403);
    let resp = client()
        .post(format!("{}/api/v1/devices/cuff-1/obs", server.http))
        .bearer_auth(&w.token)
        .body("{}")
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);

    // None of that changed what is stored.
    assert_eq!(observations(&server, &w.token, "p2").len(), 1);
    assert_eq!(observations(&server, &w.token, "p1").len(), 0);
}

#[test]
fn mqtt_refuses_strangers_and_other_devices_topics_and_reports_rejections() {
    let w = ward();
    let secret = w.add_device("ox-1", "p1");
    let other = w.add_device("ox-2", "p2");
    let server = Server::start(w.dir.path());
    let port = server.mqtt_port;

    // Wrong secret and unknown device: the CONNECT is refused.
    let out = mosquitto_pub(
        port,
        "ox-1",
        "wrong",
        "vigil/v1/devices/ox-1/obs",
        "{}",
        &[],
    );
    assert!(!out.status.success());
    let out = mosquitto_pub(
        port,
        "ghost",
        &secret,
        "vigil/v1/devices/ghost/obs",
        "{}",
        &[],
    );
    assert!(!out.status.success());

    // Subscribe to our own errors topic with mosquitto_sub, then send a bad reading.
    let sub = Command::new("mosquitto_sub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-u",
            "ox-1",
            "-P",
            &secret,
        ])
        .args(["-t", "vigil/v1/devices/ox-1/errors", "-C", "1", "-W", "10"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let out = mosquitto_pub(
        port,
        "ox-1",
        &secret,
        "vigil/v1/devices/ox-1/obs",
        r#"{"obs":[{"code":"spo2","value":97},{"code":"spo2","value":"high"}]}"#,
        &[],
    );
    assert!(out.status.success());
    let report = sub.wait_with_output().unwrap();
    let report: Value = serde_json::from_slice(&report.stdout).expect("an error report arrived");
    assert_eq!(report["accepted"], 1);
    assert_eq!(report["rejected"][0]["pointer"], "/obs/1");

    // Publishing to another device's topic: MQTT 5 gets a negative PUBACK (0x87, "not
    // authorized"); MQTT 3.1.1, which has no negative PUBACK, has its connection closed.
    let foreign = r#"{"obs":[{"code":"spo2","value":91}]}"#;
    let out = mosquitto_pub(
        port,
        "ox-1",
        &secret,
        "vigil/v1/devices/ox-2/obs",
        foreign,
        &["-V", "5", "-d"],
    );
    let debug = String::from_utf8_lossy(&out.stdout);
    assert!(debug.contains("RC:135"), "{debug}");
    let out = mosquitto_pub(
        port,
        "ox-1",
        &secret,
        "vigil/v1/devices/ox-2/obs",
        foreign,
        &[],
    );
    assert!(
        !out.status.success(),
        "the MQTT 3.1.1 connection must be closed"
    );
    // And a subscription to another device's topics is refused.
    let out = Command::new("mosquitto_sub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-u",
            "ox-1",
            "-P",
            &secret,
        ])
        .args(["-t", "vigil/v1/devices/ox-2/#", "-C", "1", "-W", "2"])
        .output()
        .unwrap();
    assert!(!out.status.success() || out.stdout.is_empty());
    // ox-2 itself is unaffected and still publishes.
    let own = r#"{"obs":[{"code":"spo2","value":95}]}"#;
    let out = mosquitto_pub(port, "ox-2", &other, "vigil/v1/devices/ox-2/obs", own, &[]);
    assert!(out.status.success());
    let p2 = observations(&server, &w.token, "p2");
    assert_eq!(p2.len(), 1, "only ox-2's own reading reached its patient");
    assert_eq!(p2[0]["valueQuantity"]["value"], 95);
    assert_eq!(observations(&server, &w.token, "p1").len(), 1);

    // The refusals are counted.
    let metrics = client()
        .get(format!("{}/metrics", server.http))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains("vigil_mqtt_refused_total{reason=\"foreign_topic\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("vigil_mqtt_refused_total{reason=\"bad_secret\"}"));
    assert!(
        metrics.contains("vigil_readings_rejected_total{source=\"mqtt\",reason=\"wrong_type\"} 1"),
        "{metrics}"
    );
}

#[test]
fn acknowledged_readings_survive_a_crash_and_a_restart() {
    let w = ward();
    let secret = w.add_device("mon-9", "p1");
    let server = Server::start(w.dir.path());
    for i in 0..20 {
        let body = json!({"ts": 1_763_720_000_000_i64 + i * 1000, "obs": [{"code": "heart_rate", "value": 60 + i}]}).to_string();
        let out = mosquitto_pub(
            server.mqtt_port,
            "mon-9",
            &secret,
            "vigil/v1/devices/mon-9/obs",
            &body,
            &[],
        );
        assert!(out.status.success());
    }
    // Killed without warning right after the acknowledgements.
    server.kill();
    let server = Server::start(w.dir.path());
    assert_eq!(observations(&server, &w.token, "p1").len(), 20);
    server.stop();
    let server = Server::start(w.dir.path());
    assert_eq!(
        observations(&server, &w.token, "p1").len(),
        20,
        "and after a graceful restart"
    );
}

#[test]
fn the_api_needs_a_token_and_errors_are_operation_outcomes() {
    let w = ward();
    let server = Server::start(w.dir.path());
    let resp = client()
        .get(format!("{}/fhir/Observation?patient=p1", server.http))
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let body: Value = resp.json().unwrap();
    assert_eq!(body["resourceType"], "OperationOutcome");
    let resp = client()
        .get(format!("{}/fhir/Patient/p1", server.http))
        .bearer_auth("not-a-token")
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);

    let (status, metadata) = fhir_get(&server, &w.token, "/fhir/metadata");
    assert_eq!(status, 200);
    assert_eq!(metadata["resourceType"], "CapabilityStatement");
    assert_eq!(metadata["fhirVersion"], "4.0.1");

    let (status, outcome) = fhir_get(&server, &w.token, "/fhir/Patient/nobody");
    assert_eq!(status, 404);
    assert_eq!(outcome["resourceType"], "OperationOutcome");
    let (status, outcome) = fhir_get(
        &server,
        &w.token,
        "/fhir/Observation?patient=p1&date=xx2026",
    );
    assert_eq!(status, 400, "{outcome}");
    assert_eq!(outcome["resourceType"], "OperationOutcome");

    // Patients: search by identifier (MRN) and name, create and update.
    let (_, bundle) = fhir_get(&server, &w.token, "/fhir/Patient?identifier=MRN-1");
    assert_eq!(bundle["entry"][0]["resource"]["id"], "p1");
    let (_, bundle) = fhir_get(&server, &w.token, "/fhir/Patient?name=novak");
    assert_eq!(bundle["entry"][0]["resource"]["id"], "p2");
    let created = client()
        .post(format!("{}/fhir/Patient", server.http))
        .bearer_auth(&w.token)
        .header("content-type", "application/fhir+json")
        .body(json!({"resourceType": "Patient", "id": "p3", "name": [{"family": "Osei", "given": ["Kofi"]}], "gender": "male", "birthDate": "1950-02-03"}).to_string())
        .send()
        .unwrap();
    assert_eq!(created.status().as_u16(), 201);
    assert!(created.headers().get("location").is_some());
    let (status, p3) = fhir_get(&server, &w.token, "/fhir/Patient/p3");
    assert_eq!(status, 200);
    assert_eq!(p3["birthDate"], "1950-02-03");

    // A patient token sees only its own record.
    let own = vigil(&[
        "token",
        "issue",
        "--data-dir",
        w.data(),
        "--role",
        "patient",
        "--subject",
        "p1",
    ])
    .trim()
    .to_owned();
    assert_eq!(fhir_get(&server, &own, "/fhir/Patient/p1").0, 200);
    assert_eq!(fhir_get(&server, &own, "/fhir/Patient/p2").0, 403);
    assert_eq!(
        fhir_get(&server, &own, "/fhir/Observation?patient=p2").0,
        403
    );
}

#[test]
fn operator_cli_refuses_bad_input_clearly() {
    let w = ward();
    let err = vigil_fails(&[
        "patient",
        "add",
        "--data-dir",
        w.data(),
        "--id",
        "p1",
        "--name",
        "Again",
    ]);
    assert!(err.contains("already exists"), "{err}");
    let err = vigil_fails(&["device", "add", "--data-dir", w.data(), "--id", "a/b"]);
    assert!(err.contains("invalid device id"), "{err}");
    let err = vigil_fails(&[
        "device",
        "add",
        "--data-dir",
        w.data(),
        "--id",
        "d9",
        "--patient",
        "nobody",
    ]);
    assert!(err.contains("no patient"), "{err}");
    let err = vigil_fails(&[
        "token",
        "issue",
        "--data-dir",
        w.data(),
        "--role",
        "king",
        "--subject",
        "x",
    ]);
    assert!(err.contains("unknown role"), "{err}");
    let help = vigil(&["--help"]);
    for cmd in [
        "serve", "demo", "patient", "device", "token", "sim", "bench",
    ] {
        assert!(help.contains(cmd), "{help}");
    }
}

#[test]
fn the_simulator_drives_a_ward_and_a_load_through_the_broker() {
    let w = ward();
    let mut creds = String::new();
    for (device, patient) in [("sim-1", "p1"), ("sim-2", "p2")] {
        let secret = w.add_device(device, patient);
        creds.push_str(&format!("{device} {secret}\n"));
    }
    let creds_file = w.dir.path().join("devices.txt");
    std::fs::write(&creds_file, creds).unwrap();
    let server = Server::start(w.dir.path());
    let url = format!("mqtt://127.0.0.1:{}", server.mqtt_port);
    let creds_path = creds_file.to_str().unwrap();

    // Ward mode: realistic vital signs from each device.
    let out = vigil(&[
        "sim",
        "--mqtt-url",
        &url,
        "--devices",
        "2",
        "--rate",
        "5",
        "--duration",
        "2",
        "--credentials",
        creds_path,
    ]);
    let acknowledged: u64 = out
        .split("acknowledged ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("unexpected output: {out}"));
    assert!(acknowledged >= 2, "{out}");
    let hr = observations(&server, &w.token, "p1");
    assert!(
        hr.iter()
            .any(|o| o["code"]["coding"][0]["code"] == "8867-4"),
        "heart rate from the simulated monitor"
    );

    // Load mode: throughput and latency printed.
    let out = vigil(&[
        "sim",
        "--load",
        "--mqtt-url",
        &url,
        "--devices",
        "2",
        "--rate",
        "50",
        "--duration",
        "1",
        "--credentials",
        creds_path,
    ]);
    assert!(out.contains("messages/s") && out.contains("p99"), "{out}");
    let err = vigil_fails(&["sim", "--mqtt-url", "http://x", "--devices", "1"]);
    assert!(err.contains("mqtt://"), "{err}");
}

/// A live stream read on a background thread; every event received is kept, so a test can look
/// for events in any order.
struct Followed {
    rx: std::sync::mpsc::Receiver<(String, Value)>,
    seen: Vec<(String, Value)>,
}

fn follow_stream(server: &Server, token: &str, query: &str) -> Followed {
    let (tx, rx) = std::sync::mpsc::channel();
    let resp = reqwest::blocking::Client::builder()
        .build()
        .unwrap()
        .get(format!("{}/api/v1/stream?{query}", server.http))
        .bearer_auth(token)
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    std::thread::spawn(move || {
        let mut event = String::new();
        for line in BufReader::new(resp).lines() {
            let Ok(line) = line else { break };
            if let Some(kind) = line.strip_prefix("event: ") {
                event = kind.to_owned();
            } else if let Some(data) = line.strip_prefix("data: ") {
                let value = serde_json::from_str(data).unwrap_or(Value::Null);
                if tx.send((event.clone(), value)).is_err() {
                    break;
                }
            }
        }
    });
    Followed {
        rx,
        seen: Vec::new(),
    }
}

/// The first event so far (or arriving within 15 s) that matches.
fn wait_for(stream: &mut Followed, what: impl Fn(&str, &Value) -> bool) -> Value {
    if let Some((_, data)) = stream.seen.iter().find(|(k, d)| what(k, d)) {
        return data.clone();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match stream.rx.recv_timeout(left) {
            Ok((kind, data)) => {
                let found = what(&kind, &data);
                stream.seen.push((kind, data.clone()));
                if found {
                    return data;
                }
            }
            Err(_) => panic!(
                "the expected event did not arrive on the stream; seen: {:#?}",
                stream.seen
            ),
        }
    }
}

#[test]
fn a_deterioration_over_mqtt_raises_a_news2_alarm_on_the_stream_that_stays_acknowledged() {
    let w = ward();
    let secret = w.add_device("mon-1", "p1");
    let server = Server::start(w.dir.path());
    let mut events = follow_stream(&server, &w.token, "patient=p1");
    wait_for(&mut events, |kind, _| kind == "ready");

    // Taken a minute ago (a monitor uploading its last minute): the band alarm needs NEWS2 to
    // stay elevated for 30 s by the readings' own time, which these already have.
    let now = chrono_now_ms() - 60_000;
    let vitals = json!({"ts": now, "obs": [
        {"code": "resp_rate", "value": 26},
        {"code": "spo2", "value": 91},
        {"code": "o2_supplemental", "value": false},
        {"code": "systolic_bp", "value": 95},
        {"code": "diastolic_bp", "value": 60},
        {"code": "heart_rate", "value": 135},
        {"code": "acvpu", "value": "A"},
        {"code": "temperature", "value": 39.5}
    ]})
    .to_string();
    let out = mosquitto_pub(
        server.mqtt_port,
        "mon-1",
        &secret,
        "vigil/v1/devices/mon-1/obs",
        &vitals,
        &[],
    );
    assert!(out.status.success());

    // RR 26 → 3, SpO2 91 → 3, air → 0, systolic 95 → 2, pulse 135 → 3, alert → 0, 39.5 °C → 2.
    let score = wait_for(&mut events, |kind, data| {
        kind == "news2" && data["complete"] == true
    });
    assert_eq!(score["total"], 13);
    assert_eq!(score["band"], "high");
    // Raised as the first red score arrived, escalated to high as the others did.
    let alarm = wait_for(&mut events, |kind, data| {
        kind == "alarm" && data["condition"] == "news2:band" && data["priority"] == "high"
    });
    assert_eq!(alarm["state"], "active");
    assert_eq!(alarm["patient"], "p1");
    let id = alarm["id"].as_u64().unwrap();

    let (status, news2) = fhir_get(&server, &w.token, "/api/v1/patients/p1/news2");
    assert_eq!(status, 200);
    assert_eq!(news2["total"], 13);
    // Every change of the score is an Observation of Vigil's scorer, newest first.
    let (status, scores) = fhir_get(
        &server,
        &w.token,
        "/fhir/Observation?patient=p1&code=urn:vigil:code%7Cnews2&_sort=-date",
    );
    assert_eq!(status, 200, "{scores}");
    let latest = &scores["entry"][0]["resource"];
    assert_eq!(latest["valueQuantity"]["value"], 13);
    assert_eq!(latest["code"]["coding"][0]["code"], "1104051000000101");
    assert_eq!(latest["device"]["reference"], "Device/vigil-news2");
    assert!(
        latest["component"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["code"]["coding"][0]["code"] == "news2-band"
                && c["valueCodeableConcept"]["coding"][0]["code"] == "high"),
        "{latest}"
    );
    let (status, scorer) = fhir_get(&server, &w.token, "/fhir/Device/vigil-news2");
    assert_eq!(status, 200, "{scorer}");
    assert_eq!(news2["scores"]["temperature"], 2);
    assert_eq!(news2["inputs"]["consciousness"]["value"], "A");
    assert_eq!(
        news2["monitoring_frequency"],
        "Continuous monitoring of vital signs"
    );

    let acked: Value = client()
        .post(format!("{}/api/v1/alerts/{id}/ack", server.http))
        .bearer_auth(&w.token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(acked["state"], "acknowledged");
    assert_eq!(acked["acknowledged"]["by"], "nadia");
    let event = wait_for(&mut events, |kind, data| {
        kind == "alarm" && data["id"] == id && data["state"] == "acknowledged"
    });
    assert_eq!(event["event"]["kind"], "acknowledged");

    // Restart: the alarm is still open and acknowledged, and nothing is raised twice.
    server.stop();
    let server = Server::start(w.dir.path());
    let later = json!({"ts": now + 5_000, "obs": [{"code": "heart_rate", "value": 136}, {"code": "resp_rate", "value": 27}]}).to_string();
    let out = mosquitto_pub(
        server.mqtt_port,
        "mon-1",
        &secret,
        "vigil/v1/devices/mon-1/obs",
        &later,
        &[],
    );
    assert!(out.status.success());
    let (_, alerts) = fhir_get(&server, &w.token, "/api/v1/alerts?patient=p1&status=all");
    let news2_alarms: Vec<&Value> = alerts["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["condition"] == "news2:band")
        .collect();
    assert_eq!(news2_alarms.len(), 1, "{alerts}");
    assert_eq!(news2_alarms[0]["id"], id);
    assert_eq!(news2_alarms[0]["state"], "acknowledged");
    let (_, history) = fhir_get(&server, &w.token, &format!("/api/v1/alerts/{id}"));
    let kinds: Vec<&str> = history["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.first(), Some(&"raised"));
    assert_eq!(kinds.last(), Some(&"acknowledged"));
    assert_eq!(
        kinds.iter().filter(|k| **k == "raised").count(),
        1,
        "{kinds:?}"
    );

    // The EHR's view: the alarm as a FHIR Flag, active, high priority.
    let (status, flags) = fhir_get(&server, &w.token, "/fhir/Flag?patient=p1&status=active");
    assert_eq!(status, 200, "{flags}");
    let flag = flags["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["resource"])
        .find(|f| f["code"]["coding"][0]["code"] == "news2:band")
        .expect("the NEWS2 alarm as a Flag");
    assert_eq!(flag["status"], "active");
    assert_eq!(
        flag["extension"][0]["valueCodeableConcept"]["coding"][0]["code"],
        "PH"
    );
    assert_eq!(flag["subject"]["reference"], "Patient/p1");
    let (status, one) = fhir_get(&server, &w.token, &format!("/fhir/Flag/{id}"));
    assert_eq!(status, 200);
    assert_eq!(one["id"], id.to_string());
    assert_eq!(
        fhir_get(&server, &w.token, "/fhir/Flag?status=maybe").0,
        400
    );

    // Only clinicians acknowledge; patients see only themselves.
    let own = vigil(&[
        "token",
        "issue",
        "--data-dir",
        w.data(),
        "--role",
        "patient",
        "--subject",
        "p2",
    ])
    .trim()
    .to_owned();
    assert_eq!(fhir_get(&server, &own, "/api/v1/patients/p1/news2").0, 403);
    assert_eq!(fhir_get(&server, &own, &format!("/fhir/Flag/{id}")).0, 403);
    let (_, own_flags) = fhir_get(&server, &own, "/fhir/Flag");
    assert!(
        own_flags
            .get("entry")
            .is_none_or(|e| e.as_array().unwrap().is_empty()),
        "{own_flags}"
    );
    let resp = client()
        .post(format!("{}/api/v1/alerts/{id}/ack", server.http))
        .bearer_auth(&own)
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);
}

#[test]
fn the_live_stream_resumes_from_last_event_id_without_gaps() {
    let w = ward();
    let secret = w.add_device("mon-2", "p2");
    let server = Server::start(w.dir.path());
    let mut events = follow_stream(&server, &w.token, "patient=p2");
    let ready_id = {
        wait_for(&mut events, |kind, _| kind == "ready");
        // The ready event's id is the position to resume from; read it from a second connection.
        let resp = client()
            .get(format!("{}/api/v1/stream?patient=p2", server.http))
            .bearer_auth(&w.token)
            .send()
            .unwrap();
        let mut lines = BufReader::new(resp).lines();
        let id_line = lines
            .find(|l| l.as_ref().is_ok_and(|l| l.starts_with("id: ")))
            .unwrap()
            .unwrap();
        id_line.trim_start_matches("id: ").to_owned()
    };
    let now = chrono_now_ms();
    for i in 0..3 {
        let body = json!({"ts": now + i * 1000, "obs": [{"code": "heart_rate", "value": 70 + i}]})
            .to_string();
        assert!(
            mosquitto_pub(
                server.mqtt_port,
                "mon-2",
                &secret,
                "vigil/v1/devices/mon-2/obs",
                &body,
                &[]
            )
            .status
            .success()
        );
    }
    for value in [70, 71, 72] {
        wait_for(&mut events, |kind, data| {
            kind == "observation" && data["valueQuantity"]["value"] == value && !is_score(data)
        });
    }
    // A client that was away since `ready_id` gets the three observations from the log.
    let resumed = client()
        .get(format!("{}/api/v1/stream?patient=p2", server.http))
        .bearer_auth(&w.token)
        .header("Last-Event-ID", &ready_id)
        .send()
        .unwrap();
    let mut values = Vec::new();
    let mut lines = BufReader::new(resumed).lines();
    while values.len() < 3 {
        let line = lines.next().expect("stream open").unwrap();
        if let Some(data) = line.strip_prefix("data: ") {
            let v: Value = serde_json::from_str(data).unwrap();
            if v["resourceType"] == "Observation" && !is_score(&v) {
                values.push(v["valueQuantity"]["value"].as_i64().unwrap());
            }
        }
    }
    assert_eq!(values, [70, 71, 72]);
}

fn chrono_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[test]
fn clinicians_set_the_spo2_scale_and_alarm_limits_per_patient() {
    let w = ward();
    let secret = w.add_device("ox-9", "p1");
    let server = Server::start(w.dir.path());
    let now = chrono_now_ms() - 10_000;
    let body = json!({"ts": now, "obs": [{"code": "spo2", "value": 90}, {"code": "o2_supplemental", "value": false}]}).to_string();
    assert!(
        mosquitto_pub(
            server.mqtt_port,
            "ox-9",
            &secret,
            "vigil/v1/devices/ox-9/obs",
            &body,
            &[]
        )
        .status
        .success()
    );
    let spo2_score = |server: &Server| {
        let (_, news2) = fhir_get(server, &w.token, "/api/v1/patients/p1/news2");
        news2["scores"]["spo2"].clone()
    };
    // The surveillance thread evaluates right after the commit; give it a moment.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while spo2_score(&server).is_null() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(spo2_score(&server), 3, "90 % on scale 1");

    let put = |token: &str, body: Value| {
        let resp = client()
            .put(format!("{}/api/v1/patients/p1/settings", server.http))
            .bearer_auth(token)
            .json(&body)
            .send()
            .unwrap();
        (
            resp.status().as_u16(),
            resp.json::<Value>().unwrap_or(Value::Null),
        )
    };
    let (status, body) = put(
        &w.token,
        json!({"spo2_scale": 2, "limits": {"spo2": {"low": 85}}}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(spo2_score(&server), 0, "88–92 % is the scale-2 target");
    let (_, settings) = fhir_get(&server, &w.token, "/api/v1/patients/p1/settings");
    assert_eq!(settings["spo2_scale"], 2);
    assert_eq!(settings["limits"]["spo2"]["low"]["tiers"][0]["limit"], 85.0);
    // The EHR sees the same on the FHIR Patient.
    let (_, patient) = fhir_get(&server, &w.token, "/fhir/Patient/p1");
    let monitoring = patient["extension"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["url"] == "urn:vigil:monitoring")
        .expect("the monitoring extension")
        .clone();
    let parts = monitoring["extension"].as_array().unwrap();
    assert!(
        parts
            .iter()
            .any(|p| p["url"] == "spo2-scale" && p["valueInteger"] == 2)
    );
    let spo2_low = parts
        .iter()
        .filter(|p| p["url"] == "alarm-limit")
        .find(|p| p["extension"][0]["valueCoding"]["code"] == "59408-5")
        .expect("the SpO2 limit");
    assert_eq!(spo2_low["extension"][1]["valueCode"], "low");
    assert_eq!(spo2_low["extension"][2]["valueQuantity"]["value"], 85.0);
    assert_eq!(spo2_low["extension"][4]["valueDuration"]["value"], 15);

    let (status, body) = put(&w.token, json!({"spo2_scale": 3}));
    assert_eq!(status, 422, "{body}");
    let (status, body) = put(&w.token, json!({"limits": {"sp02": {"low": 85}}}));
    assert_eq!(status, 422);
    assert!(body["detail"].as_str().unwrap().contains("sp02"), "{body}");
    let (status, _) = put(&w.token, json!({"spo2_scale": 1, "shiny": true}));
    assert_eq!(status, 400);
    let patient = vigil(&[
        "token",
        "issue",
        "--data-dir",
        w.data(),
        "--role",
        "patient",
        "--subject",
        "p1",
    ])
    .trim()
    .to_owned();
    assert_eq!(put(&patient, json!({"spo2_scale": 1})).0, 403);

    // Settings survive a restart.
    server.stop();
    let server = Server::start(w.dir.path());
    let (_, settings) = fhir_get(&server, &w.token, "/api/v1/patients/p1/settings");
    assert_eq!(settings["spo2_scale"], 2);

    // Cohort rule sets: listed with what they change, assigned per patient.
    let (status, cohorts) = fhir_get(&server, &w.token, "/api/v1/cohorts");
    assert_eq!(status, 200, "{cohorts}");
    let names: Vec<&str> = cohorts["cohorts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["copd", "diabetes", "general", "heart-failure"]);
    let put = |body: Value| {
        let resp = client()
            .put(format!("{}/api/v1/patients/p2/settings", server.http))
            .bearer_auth(&w.token)
            .json(&body)
            .send()
            .unwrap();
        (resp.status().as_u16(), resp.json::<Value>().unwrap())
    };
    let (status, hf) =
        put(json!({"cohort": "heart-failure", "limits": {"heart_rate": {"high": 120}}}));
    assert_eq!(status, 200, "{hf}");
    assert_eq!(hf["cohort"], "heart-failure");
    assert_eq!(hf["trends"]["drift"][0]["priority"], "high");
    assert_eq!(
        hf["limits"]["systolic_bp"]["low"]["tiers"][0]["limit"],
        85.0
    );
    assert_eq!(
        hf["limits"]["heart_rate"]["high"]["tiers"][0]["limit"], 120.0,
        "the request's own changes apply on top"
    );
    let (status, body) = put(json!({"cohort": "astronauts"}));
    assert_eq!(status, 422);
    assert!(
        body["detail"].as_str().unwrap().contains("copd, diabetes"),
        "{body}"
    );
    let (_, settings) = fhir_get(&server, &w.token, "/api/v1/patients/p2/settings");
    assert_eq!(
        settings["cohort"], "heart-failure",
        "a refused change changes nothing"
    );
    // Back to the plain defaults, from the cohort of that name.
    let (_, general) = put(json!({"cohort": "general"}));
    assert_eq!(
        general["limits"]["heart_rate"]["high"]["tiers"][0]["limit"],
        130.0
    );
}

fn post_event(server: &Server, device: &str, secret: &str, body: &Value) -> (u16, Value) {
    let resp = client()
        .post(format!("{}/api/v1/devices/{device}/events", server.http))
        .basic_auth(device, Some(secret))
        .json(body)
        .send()
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().unwrap_or(Value::Null))
}

#[test]
fn a_fall_and_a_sensor_off_reported_by_devices_raise_alarms_on_the_stream() {
    let w = ward();
    let pendant = w.add_device("pendant-1", "p1");
    let oximeter = w.add_device("ox-1", "p1");
    let server = Server::start(w.dir.path());
    let mut events = follow_stream(&server, &w.token, "patient=p1");
    wait_for(&mut events, |kind, _| kind == "ready");

    // A fall over MQTT, as a pendant sends it.
    let ts = chrono_now_ms() - 2_000;
    let fall = json!({"event": "fall", "ts": ts, "battery": 80}).to_string();
    let topic = "vigil/v1/devices/pendant-1/events";
    let out = mosquitto_pub(server.mqtt_port, "pendant-1", &pendant, topic, &fall, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        mosquitto_pub(server.mqtt_port, "pendant-1", &pendant, topic, &fall, &[])
            .status
            .success()
    );
    let alarm = wait_for(&mut events, |kind, data| {
        kind == "alarm" && data["condition"] == "event:fall"
    });
    assert_eq!(alarm["priority"], "high");
    assert_eq!(alarm["kind"], "physiological");
    assert_eq!(alarm["state"], "active");
    assert_eq!(alarm["patient"], "p1");
    assert_eq!(alarm["message"], "Fall detected");
    let fall_id = alarm["id"].as_u64().unwrap();
    // The same event resent (no acknowledgement reached the pendant) is stored once.
    assert!(
        mosquitto_pub(server.mqtt_port, "pendant-1", &pendant, topic, &fall, &[])
            .status
            .success()
    );
    let (status, found) = fhir_get(
        &server,
        &w.token,
        "/fhir/Observation?patient=p1&code=http://snomed.info/sct%7C1912002",
    );
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["entry"].as_array().unwrap().len(), 1, "{found}");
    let observation = &found["entry"][0]["resource"];
    assert_eq!(observation["valueBoolean"], true);
    assert_eq!(observation["device"]["reference"], "Device/pendant-1");

    // A probe off, over HTTP: a technical alarm on the device, never a low SpO2.
    let (status, body) = post_event(
        &server,
        "ox-1",
        &oximeter,
        &json!({"event": "sensor_off", "code": "spo2", "ts": ts}),
    );
    assert_eq!(status, 202, "{body}");
    let off = wait_for(&mut events, |kind, data| {
        kind == "alarm" && data["condition"] == "technical:sensor-off:spo2"
    });
    assert_eq!(off["priority"], "medium");
    assert_eq!(off["kind"], "technical");
    assert_eq!(off["device"], "ox-1");
    // Bad events are refused whole, saying why.
    let (status, body) = post_event(
        &server,
        "ox-1",
        &oximeter,
        &json!({"event": "sensor_off", "code": "spo2"}),
    );
    assert_eq!(status, 400);
    assert_eq!(
        body["type"].as_str().map(|t| t.ends_with("missing_field")),
        Some(true),
        "{body}"
    );
    let (status, _) = post_event(
        &server,
        "ox-1",
        &oximeter,
        &json!({"event": "earthquake", "ts": ts}),
    );
    assert_eq!(status, 400);
    // The probe goes back on: the next clean reading ends the technical alarm.
    let (status, _) = post_obs(
        &server,
        "ox-1",
        "ox-1",
        &oximeter,
        json!({"ts": ts + 1000, "obs": [{"code": "spo2", "value": 97}]}).to_string(),
    );
    assert_eq!(status, 202);
    wait_for(&mut events, |kind, data| {
        kind == "alarm"
            && data["condition"] == "technical:sensor-off:spo2"
            && data["state"] == "resolved"
    });

    // The fall alarm is latched: it sounds until someone acknowledges it, across a restart too.
    server.stop();
    let server = Server::start(w.dir.path());
    let (_, alerts) = fhir_get(&server, &w.token, "/api/v1/alerts?patient=p1");
    let falls: Vec<&Value> = alerts["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["condition"] == "event:fall")
        .collect();
    assert_eq!(falls.len(), 1, "{alerts}");
    assert_eq!(falls[0]["id"], fall_id);
    assert_eq!(falls[0]["state"], "active");
    let acked: Value = client()
        .post(format!("{}/api/v1/alerts/{fall_id}/ack", server.http))
        .bearer_auth(&w.token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        acked["state"], "resolved",
        "acknowledging an event that is over ends it"
    );
    assert_eq!(acked["acknowledged"]["by"], "nadia");
}

#[test]
fn a_silent_device_raises_its_no_data_alarm_on_time_across_a_restart() {
    let w = ward();
    let secret = w.add_device("watch-1", "p1");
    // A wearable expected every 2 s, silent after 2 + 1 s without data.
    let config = w.dir.path().join("vigil.toml");
    std::fs::write(
        &config,
        "[devices.multiparameter-monitor]\ninterval_secs = 2\nmargin_secs = 1\nsilent_priority = \"medium\"\nartifact_delay_secs = 10\n",
    )
    .unwrap();
    let config = config.to_str().unwrap().to_owned();
    let server = Server::start_with(w.dir.path(), &["--config", &config]);
    let (status, _) = post_obs(
        &server,
        "watch-1",
        "watch-1",
        &secret,
        json!({"obs": [{"code": "heart_rate", "value": 70}]}).to_string(),
    );
    assert_eq!(status, 202);
    // The server dies right after; the device says nothing more.
    server.kill();
    let server = Server::start_with(w.dir.path(), &["--config", &config]);
    let mut events = follow_stream(&server, &w.token, "");
    let silent = wait_for(&mut events, |kind, data| {
        kind == "alarm" && data["condition"] == "technical:silent"
    });
    assert_eq!(silent["device"], "watch-1");
    assert_eq!(silent["patient"], "p1");
    assert_eq!(silent["priority"], "medium");
    assert_eq!(silent["kind"], "technical");
    let id = silent["id"].as_u64().unwrap();
    // Another restart while it is open: the same alarm, not a second one.
    server.stop();
    let server = Server::start_with(w.dir.path(), &["--config", &config]);
    std::thread::sleep(Duration::from_secs(4));
    let (_, alerts) = fhir_get(&server, &w.token, "/api/v1/alerts?status=all");
    let silences: Vec<&Value> = alerts["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["condition"] == "technical:silent")
        .collect();
    assert_eq!(silences.len(), 1, "{alerts}");
    assert_eq!(silences[0]["id"], id);
    // Data resumes: the condition ends, and the medium-priority alarm with it.
    let mut events = follow_stream(&server, &w.token, "");
    let (status, _) = post_obs(
        &server,
        "watch-1",
        "watch-1",
        &secret,
        json!({"obs": [{"code": "heart_rate", "value": 71}]}).to_string(),
    );
    assert_eq!(status, 202);
    wait_for(&mut events, |kind, data| {
        kind == "alarm" && data["id"] == id && data["state"] == "resolved"
    });
}

/// The python `hl7` package's MLLP client, installed by scripts/test.sh.
fn mllp_send(port: u16, file: &Path) -> String {
    let venv = std::env::var("VIGIL_TEST_VENV").unwrap_or_else(|_| {
        format!(
            "{}/vigil-test-venv",
            std::env::var("TMPDIR").unwrap_or_else(|_| "/tmp".into())
        )
    });
    let out = Command::new(format!("{venv}/bin/mllp_send"))
        .args(["-p", &port.to_string(), "-f"])
        .arg(file)
        .arg("127.0.0.1")
        .output()
        .expect("mllp_send (scripts/test.sh installs python hl7 into $VIGIL_TEST_VENV)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// MSA-1 and MSA-2, and ERR-3's code, of every ACK in mllp_send's output, in order.
fn acks(output: &str) -> Vec<(String, String, Option<String>)> {
    let segments: Vec<&str> = output
        .split(['\r', '\n', '\u{b}', '\u{1c}'])
        .filter(|s| !s.is_empty())
        .collect();
    let mut out: Vec<(String, String, Option<String>)> = Vec::new();
    for segment in segments {
        let fields: Vec<&str> = segment.split('|').collect();
        match fields[0] {
            "MSA" => out.push((fields[1].to_owned(), fields[2].to_owned(), None)),
            "ERR" => {
                if let Some(last) = out.last_mut() {
                    last.2 = fields
                        .get(3)
                        .map(|c| c.split('^').next().unwrap_or("").to_owned());
                }
            }
            _ => {}
        }
    }
    out
}

#[test]
fn a_real_mllp_client_sends_monitor_messages_that_land_as_observations_of_the_right_patient() {
    let w = ward();
    let data = w.data().to_owned();
    for (id, mrn) in [
        ("icu-1", "MRN10001"),
        ("ward-7", "MRN20002"),
        ("icu-3", "MRN30003"),
        ("ed-4", "MRN40004"),
    ] {
        vigil(&[
            "patient",
            "add",
            "--data-dir",
            &data,
            "--id",
            id,
            "--name",
            "Test Patient",
            "--mrn",
            mrn,
        ]);
    }
    // Senders named in MSH-3; MONITOR_GW is not a valid device id, so it is its serial.
    vigil(&[
        "device",
        "add",
        "--data-dir",
        &data,
        "--id",
        "monitor-gw",
        "--type",
        "hl7-sender",
        "--serial",
        "MONITOR_GW",
    ]);
    vigil(&[
        "device",
        "add",
        "--data-dir",
        &data,
        "--id",
        "SPOTCHECK",
        "--type",
        "hl7-sender",
    ]);
    let server = Server::start_with(w.dir.path(), &["--mllp", "127.0.0.1:0"]);
    let port = server.mllp_port.expect("the MLLP listener");

    // Several messages on one connection, framed as the reference files are.
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../vigil-codecs/tests/data/hl7");
    let mut stream = Vec::new();
    for name in [
        "oru_01_icu_periodic",
        "oru_02_ward_spotcheck",
        "oru_03_probe_off_fahrenheit",
        "oru_04_v25_kpa_transport",
        "bad_01_unsupported_version",
        "bad_02_nm_decimal_comma",
        "bad_03_obx_before_obr",
    ] {
        stream.extend(std::fs::read(samples.join(format!("{name}.mllp"))).unwrap());
    }
    let file = w.dir.path().join("messages.mllp");
    std::fs::write(&file, &stream).unwrap();
    let answers = acks(&mllp_send(port, &file));
    let expected = [
        ("AA", "ICU1-000001", None),
        ("AA", "WARD-000417", None),
        ("AA", "ICU3-002211", None),
        // TRANSPORT_MON is not registered: refused, never guessed.
        ("AR", "TRN-88812", Some("204")),
        ("AR", "ICU1-000002", Some("203")),
        ("AE", "WARD-000418", Some("102")),
        ("AE", "ICU3-002212", Some("100")),
    ];
    assert_eq!(answers.len(), expected.len(), "{answers:?}");
    for ((code, control, err), (want_code, want_control, want_err)) in answers.iter().zip(expected)
    {
        assert_eq!(
            (code.as_str(), err.as_deref()),
            (want_code, want_err),
            "{control}"
        );
        assert_eq!(control, want_control);
    }

    // The ICU monitor's values, for the patient PID-3 named, under the equipment of OBX-18.
    let icu = observations(&server, &w.token, "icu-1");
    let value = |code: &str| {
        icu.iter()
            .find(|o| o["code"]["coding"][0]["code"] == code)
            .unwrap_or_else(|| panic!("{code} in {icu:#?}"))
            .clone()
    };
    assert_eq!(value("8867-4")["valueQuantity"]["value"], 88.0);
    assert_eq!(
        value("8867-4")["device"]["reference"],
        "Device/0012340000000001"
    );
    let bp = value("85354-9");
    assert_eq!(bp["component"][0]["valueQuantity"]["value"], 104.0);
    assert_eq!(
        icu.iter().filter(|o| o["status"] != "preliminary").count(),
        0,
        "OBX-11 R is preliminary"
    );
    // The probe-off SpO2 is "no value", and a technical alarm.
    let probe_off = observations(&server, &w.token, "icu-3");
    assert!(
        probe_off
            .iter()
            .any(|o| o["code"]["coding"][0]["code"] == "59408-5"
                && o["dataAbsentReason"]["coding"][0]["code"] == "error"
                && o.get("valueQuantity").is_none())
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, alerts) = fhir_get(&server, &w.token, "/api/v1/alerts?patient=icu-3");
        if alerts["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["condition"] == "technical:sensor-off:spo2")
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no sensor-off alarm: {alerts}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Nothing of a refused message is stored.
    assert!(observations(&server, &w.token, "ed-4").is_empty());

    // The sender is registered; the message resent is accepted; resent again, stored once.
    vigil(&[
        "device",
        "add",
        "--data-dir",
        &data,
        "--id",
        "transport-mon",
        "--type",
        "hl7-sender",
        "--serial",
        "TRANSPORT_MON",
    ]);
    let one = w.dir.path().join("one.mllp");
    std::fs::write(
        &one,
        std::fs::read(samples.join("oru_04_v25_kpa_transport.mllp")).unwrap(),
    )
    .unwrap();
    for _ in 0..2 {
        let answers = acks(&mllp_send(port, &one));
        assert_eq!(answers[0].0, "AA", "{answers:?}");
    }
    let ed = observations(&server, &w.token, "ed-4");
    assert!(!ed.is_empty());
    let mut codes: Vec<&str> = ed
        .iter()
        .map(|o| o["code"]["coding"][0]["code"].as_str().unwrap())
        .collect();
    let n = codes.len();
    codes.dedup();
    assert_eq!(codes.len(), n, "stored once: {codes:?}");
}

fn post_ble(server: &Server, gateway: &str, secret: &str, body: &Value) -> (u16, Value) {
    let resp = client()
        .post(format!("{}/api/v1/gateways/{gateway}/ble", server.http))
        .basic_auth(gateway, Some(secret))
        .json(body)
        .send()
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().unwrap_or(Value::Null))
}

#[test]
fn a_ble_cuff_relayed_by_a_gateway_lands_as_the_bound_patients_blood_pressure() {
    let w = ward();
    let data = w.data().to_owned();
    let gateway = |id: &str| {
        vigil(&[
            "device",
            "add",
            "--data-dir",
            &data,
            "--id",
            id,
            "--type",
            "gateway",
        ])
        .lines()
        .find_map(|l| l.strip_prefix("secret: "))
        .unwrap()
        .trim()
        .to_owned()
    };
    let phone = gateway("phone-1");
    // The cuff: registered by its address (given in lower case; stored canonical), bound to p1.
    vigil(&[
        "device",
        "add",
        "--data-dir",
        &data,
        "--id",
        "cuff-1",
        "--type",
        "bp-monitor",
        "--patient",
        "p1",
        "--since",
        "2025-11-01T00:00:00Z",
        "--ble-address",
        "c4:7c:8d:6a:11:02",
    ]);
    let monitor = w.add_device("mon-1", "p2");
    let server = Server::start(w.dir.path());

    // Blood Pressure Measurement 0x2A35: flags 0 (mmHg, nothing optional), systolic 114,
    // diastolic 78, MAP 90, each an SFLOAT with exponent 0.
    let ts = chrono_now_ms() - 5_000;
    let relay = json!({"ts": ts, "peripheral": "C4:7C:8D:6A:11:02", "characteristic": "2a35",
                       "data": "0072004e005a00"})
    .to_string();
    let out = mosquitto_pub(
        server.mqtt_port,
        "phone-1",
        &phone,
        "vigil/v1/gateways/phone-1/ble",
        &relay,
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let bp = loop {
        let found = observations(&server, &w.token, "p1")
            .into_iter()
            .find(|o| o["code"]["coding"][0]["code"] == "85354-9");
        if let Some(bp) = found {
            break bp;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the relayed reading did not arrive"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(
        bp["device"]["reference"], "Device/cuff-1",
        "stored under the peripheral"
    );
    let parts: Vec<(String, f64)> = bp["component"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["code"]["coding"][0]["code"].as_str().unwrap().to_owned(),
                c["valueQuantity"]["value"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        parts,
        [
            ("8480-6".to_owned(), 114.0),
            ("8462-4".to_owned(), 78.0),
            ("8478-0".to_owned(), 90.0)
        ]
    );
    let (_, cuff) = fhir_get(&server, &w.token, "/fhir/Device/cuff-1");
    assert!(
        cuff["identifier"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["system"] == "urn:vigil:ble-address" && i["value"] == "C4:7C:8D:6A:11:02"),
        "{cuff}"
    );

    // Refused with a reason: an unregistered peripheral, a device that is not a gateway, a
    // truncated value.
    let (status, body) = post_ble(
        &server,
        "phone-1",
        &phone,
        &json!({"peripheral": "C4:7C:8D:6A:11:09", "characteristic": "2a35", "data": "0072004e005a00"}),
    );
    assert_eq!(status, 400);
    assert!(
        body["type"]
            .as_str()
            .unwrap()
            .ends_with("unknown_peripheral"),
        "{body}"
    );
    let (status, body) = post_ble(
        &server,
        "mon-1",
        &monitor,
        &json!({"peripheral": "C4:7C:8D:6A:11:02", "characteristic": "2a35", "data": "0072004e005a00"}),
    );
    assert_eq!(status, 400);
    assert!(
        body["type"].as_str().unwrap().ends_with("not_a_gateway"),
        "{body}"
    );
    let (status, body) = post_ble(
        &server,
        "phone-1",
        &phone,
        &json!({"peripheral": "C4:7C:8D:6A:11:02", "characteristic": "2a35", "data": "0072004e00"}),
    );
    assert_eq!(status, 400);
    assert!(
        body["type"].as_str().unwrap().ends_with("truncated"),
        "{body}"
    );
    // The same relay again (a gateway reconnecting) is stored once.
    let (status, body) = post_ble(
        &server,
        "phone-1",
        &phone,
        &serde_json::from_str(&relay).unwrap(),
    );
    assert_eq!(
        (status, body["duplicates"].as_u64()),
        (202, Some(1)),
        "{body}"
    );
}

#[test]
fn devices_are_registered_rotated_revoked_and_bound_through_the_api() {
    let w = ward();
    let admin = vigil(&[
        "token",
        "issue",
        "--data-dir",
        w.data(),
        "--role",
        "admin",
        "--subject",
        "ops",
    ])
    .trim()
    .to_owned();
    let server = Server::start(w.dir.path());
    let api = |method: reqwest::Method, path: &str, token: &str, body: Option<Value>| {
        let mut req = client()
            .request(method, format!("{}{path}", server.http))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().unwrap();
        (
            resp.status().as_u16(),
            resp.json::<Value>().unwrap_or(Value::Null),
        )
    };
    let (status, created) = api(
        reqwest::Method::POST,
        "/api/v1/devices",
        &admin,
        Some(
            json!({"id": "ox-5", "type": "pulse-oximeter", "patient": "p1", "since": "2025-11-01T00:00:00Z"}),
        ),
    );
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["device"]["resourceType"], "Device");
    let first = created["secret"].as_str().unwrap().to_owned();
    // Clinicians do not manage devices; taken ids and reserved ids are refused.
    assert_eq!(
        api(
            reqwest::Method::POST,
            "/api/v1/devices",
            &w.token,
            Some(json!({"id": "x-1", "type": "wearable"}))
        )
        .0,
        403
    );
    assert_eq!(
        api(
            reqwest::Method::POST,
            "/api/v1/devices",
            &admin,
            Some(json!({"id": "ox-5", "type": "wearable"}))
        )
        .0,
        409
    );
    assert_eq!(
        api(
            reqwest::Method::POST,
            "/api/v1/devices",
            &admin,
            Some(json!({"id": "vigil-x", "type": "wearable"}))
        )
        .0,
        422
    );

    let publish = |secret: &str, value: u32| {
        let body = json!({"obs": [{"code": "spo2", "value": value}]}).to_string();
        mosquitto_pub(
            server.mqtt_port,
            "ox-5",
            secret,
            "vigil/v1/devices/ox-5/obs",
            &body,
            &[],
        )
        .status
        .success()
    };
    assert!(publish(&first, 97));
    let (status, rotated) = api(
        reqwest::Method::POST,
        "/api/v1/devices/ox-5/secret",
        &admin,
        None,
    );
    assert_eq!(status, 200, "{rotated}");
    let second = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(first, second);
    assert!(!publish(&first, 96), "the old secret no longer works");
    assert!(publish(&second, 96));
    let (status, _) = api(
        reqwest::Method::POST,
        "/api/v1/devices/ox-5/revoke",
        &admin,
        None,
    );
    assert_eq!(status, 200);
    assert!(!publish(&second, 95), "a revoked device cannot sign in");
    let (status, body) = post_obs(
        &server,
        "ox-5",
        "ox-5",
        &second,
        json!({"obs": [{"code": "spo2", "value": 95}]}).to_string(),
    );
    assert_eq!(status, 401, "{body}");
    let spo2: Vec<f64> = observations(&server, &w.token, "p1")
        .iter()
        .filter(|o| o["device"]["reference"] == "Device/ox-5")
        .map(|o| o["valueQuantity"]["value"].as_f64().unwrap())
        .collect();
    assert_eq!(spo2, [97.0, 96.0]);

    // Rebound to p2 from now; unbound: its readings are refused as unbound.
    let (_, rotated) = api(
        reqwest::Method::POST,
        "/api/v1/devices/ox-5/secret",
        &admin,
        None,
    );
    let third = rotated["secret"].as_str().unwrap().to_owned();
    let (status, binding) = api(
        reqwest::Method::PUT,
        "/api/v1/devices/ox-5/binding",
        &admin,
        Some(json!({"patient": "p2"})),
    );
    assert_eq!(status, 200, "{binding}");
    assert_eq!(binding["patient"], "p2");
    let (status, _) = post_obs(
        &server,
        "ox-5",
        "ox-5",
        &third,
        json!({"obs": [{"code": "spo2", "value": 94}]}).to_string(),
    );
    assert_eq!(status, 202);
    assert_eq!(observations(&server, &w.token, "p2").len(), 1);
    assert_eq!(
        api(
            reqwest::Method::DELETE,
            "/api/v1/devices/ox-5/binding",
            &admin,
            None
        )
        .0,
        204
    );
    let (status, body) = post_obs(
        &server,
        "ox-5",
        "ox-5",
        &third,
        json!({"obs": [{"code": "spo2", "value": 93}]}).to_string(),
    );
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["rejected"][0]["kind"], "unbound_device");

    // Calibration: overdue raises a technical alarm at once; a new due date clears it.
    let year_ago = (chrono::Utc::now() - chrono::Duration::days(365)).to_rfc3339();
    let yesterday = (chrono::Utc::now() - chrono::Duration::days(1)).to_rfc3339();
    let (status, _) = api(
        reqwest::Method::PUT,
        "/api/v1/devices/ox-5/calibration",
        &admin,
        Some(json!({"calibrated_at": year_ago, "due": yesterday})),
    );
    assert_eq!(status, 200);
    let calibration_alarm = || {
        let (_, alerts) = fhir_get(&server, &w.token, "/api/v1/alerts?status=all");
        alerts["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["condition"] == "technical:calibration-due" && a["device"] == "ox-5")
            .cloned()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let alarm = loop {
        if let Some(a) = calibration_alarm() {
            break a;
        }
        assert!(std::time::Instant::now() < deadline, "no calibration alarm");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(
        (alarm["priority"].as_str(), alarm["state"].as_str()),
        (Some("low"), Some("active"))
    );
    let (_, device) = fhir_get(&server, &w.token, "/fhir/Device/ox-5");
    assert!(
        device["extension"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["url"] == "urn:vigil:calibration-due"),
        "{device}"
    );
    // The same as a FHIR DeviceMetric, found from its device.
    let (status, metrics) = fhir_get(&server, &w.token, "/fhir/DeviceMetric?source=Device/ox-5");
    assert_eq!(status, 200, "{metrics}");
    let metric = &metrics["entry"][0]["resource"];
    assert_eq!(metric["id"], "ox-5.calibration");
    assert_eq!(metric["calibration"][0]["state"], "calibration-required");
    assert_eq!(
        fhir_get(&server, &w.token, "/fhir/DeviceMetric/ox-5.calibration").0,
        200
    );
    assert_eq!(
        fhir_get(&server, &w.token, "/fhir/DeviceMetric?colour=red").0,
        400
    );
    let next_year = (chrono::Utc::now() + chrono::Duration::days(365)).to_rfc3339();
    let (status, _) = api(
        reqwest::Method::PUT,
        "/api/v1/devices/ox-5/calibration",
        &admin,
        Some(json!({"calibrated_at": chrono::Utc::now().to_rfc3339(), "due": next_year})),
    );
    assert_eq!(status, 200);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while calibration_alarm().is_some_and(|a| a["state"] != "resolved") {
        assert!(
            std::time::Instant::now() < deadline,
            "the calibration alarm did not clear"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (_, metric) = fhir_get(&server, &w.token, "/fhir/DeviceMetric/ox-5.calibration");
    assert_eq!(metric["calibration"][0]["state"], "calibrated");
}

#[test]
fn a_command_waits_for_its_device_and_is_confirmed_by_it() {
    let w = ward();
    let admin = vigil(&[
        "token",
        "issue",
        "--data-dir",
        w.data(),
        "--role",
        "admin",
        "--subject",
        "ops",
    ])
    .trim()
    .to_owned();
    let secret = w.add_device("disp-1", "p1");
    let server = Server::start(w.dir.path());
    let queue = |body: Value| {
        let resp = client()
            .post(format!("{}/api/v1/devices/disp-1/commands", server.http))
            .bearer_auth(&admin)
            .json(&body)
            .send()
            .unwrap();
        (resp.status().as_u16(), resp.json::<Value>().unwrap())
    };
    let state = |cid: &str| {
        fhir_get(
            &server,
            &admin,
            &format!("/api/v1/devices/disp-1/commands/{cid}"),
        )
        .1
    };
    let subscribe_once = || {
        Command::new("mosquitto_sub")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &server.mqtt_port.to_string(),
                "-u",
                "disp-1",
                "-P",
                &secret,
            ])
            .args(["-t", "vigil/v1/devices/disp-1/cmd", "-C", "1", "-W", "10"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap()
    };

    // Queued while the dispenser is away: it gets the command when it subscribes.
    let (status, queued) = queue(
        json!({"command": {"remind": "morning dose", "compartment": 3}, "correlation_id": "r-1"}),
    );
    assert_eq!(status, 202, "{queued}");
    assert_eq!(queued["state"], "queued");
    let out = subscribe_once().wait_with_output().unwrap();
    let received: Value = serde_json::from_slice(&out.stdout).expect("the command");
    assert_eq!(received["correlation_id"], "r-1");
    assert_eq!(received["command"]["compartment"], 3);
    assert_eq!(state("r-1")["state"], "sent");
    // The dispenser confirms it.
    let ack = json!({"correlation_id": "r-1", "status": "ok"}).to_string();
    assert!(
        mosquitto_pub(
            server.mqtt_port,
            "disp-1",
            &secret,
            "vigil/v1/devices/disp-1/cmd/ack",
            &ack,
            &[]
        )
        .status
        .success()
    );
    let confirmed = state("r-1");
    assert_eq!(confirmed["state"], "confirmed", "{confirmed}");
    assert_eq!(confirmed["outcome"], "ok");

    // Queued while it listens: delivered at once.
    let listener = subscribe_once();
    std::thread::sleep(Duration::from_millis(300));
    let (status, queued) = queue(json!({"command": {"interval_s": 300}, "expires_in_s": 60}));
    assert_eq!(status, 202);
    let cid = queued["correlation_id"].as_str().unwrap().to_owned();
    let out = listener.wait_with_output().unwrap();
    let received: Value = serde_json::from_slice(&out.stdout).expect("the command");
    assert_eq!(received["correlation_id"], cid.as_str());
    // Refused: an unknown device, a too-long wait, a taken correlation id.
    let resp = client()
        .post(format!("{}/api/v1/devices/ghost/commands", server.http))
        .bearer_auth(&admin)
        .json(&json!({"command": {}}))
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 404);
    assert_eq!(
        queue(json!({"command": {}, "expires_in_s": 999999999})).0,
        422
    );
    assert_eq!(
        queue(json!({"command": {}, "correlation_id": "r-1"})).0,
        409
    );
}

fn fhir_post(
    server: &Server,
    token: &str,
    path: &str,
    body: &Value,
) -> (u16, Value, Option<String>) {
    let resp = client()
        .post(format!("{}{path}", server.http))
        .bearer_auth(token)
        .header("content-type", "application/fhir+json")
        .json(body)
        .send()
        .unwrap();
    let status = resp.status().as_u16();
    let location = resp
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_owned());
    (status, resp.json().unwrap_or(Value::Null), location)
}

fn heart_rate_observation(patient: &str, device: Option<&str>, bpm: f64, at: &str) -> Value {
    let mut o = json!({
        "resourceType": "Observation",
        "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": {"reference": format!("Patient/{patient}")},
        "effectiveDateTime": at,
        "valueQuantity": {"value": bpm, "unit": "beats/minute", "system": "http://unitsofmeasure.org", "code": "/min"}
    });
    if let Some(d) = device {
        o["device"] = json!({"reference": format!("Device/{d}")});
    }
    o
}

#[test]
fn a_fhir_speaking_gateway_posts_observations_and_bundles() {
    let w = ward();
    w.add_device("phd-1", "p1");
    let integration = vigil(&[
        "token",
        "issue",
        "--data-dir",
        w.data(),
        "--role",
        "integration",
        "--subject",
        "phd-gateway",
    ])
    .trim()
    .to_owned();
    let server = Server::start(w.dir.path());
    let now = chrono::Utc::now();
    let at = |s: i64| {
        (now - chrono::Duration::seconds(s)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    };

    // One Observation: 201, Location, the stored resource; again: 200, the same one.
    let hr = heart_rate_observation("p1", Some("phd-1"), 72.0, &at(60));
    let (status, created, location) = fhir_post(&server, &integration, "/fhir/Observation", &hr);
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(
        location
            .unwrap()
            .ends_with(&format!("/fhir/Observation/{id}"))
    );
    assert_eq!(created["device"]["reference"], "Device/phd-1");
    assert_eq!(created["valueQuantity"]["value"], 72.0);
    let (status, again, _) = fhir_post(&server, &integration, "/fhir/Observation", &hr);
    assert_eq!((status, again["id"].as_str()), (200, Some(id.as_str())));
    // A temperature in °F from a clinician, with no device: converted exactly, stored under vigil-fhir.
    let temp = json!({
        "resourceType": "Observation", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8310-5"}]},
        "subject": {"reference": "Patient/p1"}, "effectiveDateTime": at(30),
        "valueQuantity": {"value": 100.4, "unit": "°F", "system": "http://unitsofmeasure.org", "code": "[degF]"}
    });
    let (status, stored, _) = fhir_post(&server, &w.token, "/fhir/Observation", &temp);
    assert_eq!(status, 201, "{stored}");
    assert!((stored["valueQuantity"]["value"].as_f64().unwrap() - 38.0).abs() < 1e-9);
    assert_eq!(stored["device"]["reference"], "Device/vigil-fhir");

    // Refusals name what is wrong.
    let mut bad = hr.clone();
    bad["valueQuantity"]["code"] = json!("furlongs");
    let (status, outcome, _) = fhir_post(&server, &integration, "/fhir/Observation", &bad);
    assert_eq!(status, 400, "{outcome}");
    assert_eq!(outcome["resourceType"], "OperationOutcome");
    assert!(outcome.to_string().contains("valueQuantity"), "{outcome}");
    let (status, _, _) = fhir_post(
        &server,
        &integration,
        "/fhir/Observation",
        &heart_rate_observation("nobody", None, 70.0, &at(10)),
    );
    assert_eq!(status, 404);
    let own = vigil(&[
        "token",
        "issue",
        "--data-dir",
        w.data(),
        "--role",
        "patient",
        "--subject",
        "p2",
    ])
    .trim()
    .to_owned();
    let (status, _, _) = fhir_post(
        &server,
        &own,
        "/fhir/Observation",
        &heart_rate_observation("p1", None, 70.0, &at(10)),
    );
    assert_eq!(status, 403, "a patient adds only their own readings");

    // A batch: each entry on its own.
    let entry =
        |o: Value| json!({"resource": o, "request": {"method": "POST", "url": "Observation"}});
    let batch = json!({"resourceType": "Bundle", "type": "batch", "entry": [
        entry(heart_rate_observation("p1", Some("phd-1"), 75.0, &at(20))),
        entry(heart_rate_observation("nobody", Some("phd-1"), 75.0, &at(20))),
        entry(bad.clone()),
    ]});
    let (status, response, _) = fhir_post(&server, &integration, "/fhir", &batch);
    assert_eq!(status, 200, "{response}");
    assert_eq!(response["type"], "batch-response");
    let statuses: Vec<&str> = response["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["response"]["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["201 Created", "404 Not Found", "400 Bad Request"]
    );
    // A transaction with one bad entry stores nothing.
    let before = observations(&server, &w.token, "p1").len();
    let transaction = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        entry(heart_rate_observation("p1", Some("phd-1"), 80.0, &at(15))),
        entry(heart_rate_observation("nobody", Some("phd-1"), 80.0, &at(15))),
    ]});
    let (status, _, _) = fhir_post(&server, &integration, "/fhir", &transaction);
    assert_eq!(status, 404);
    assert_eq!(
        observations(&server, &w.token, "p1").len(),
        before,
        "all or nothing"
    );
    let transaction = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        entry(heart_rate_observation("p1", Some("phd-1"), 80.0, &at(15))),
        entry(heart_rate_observation("p1", Some("phd-1"), 81.0, &at(14))),
    ]});
    let (status, response, _) = fhir_post(&server, &integration, "/fhir", &transaction);
    assert_eq!(status, 200, "{response}");
    assert_eq!(response["type"], "transaction-response");
    assert_eq!(observations(&server, &w.token, "p1").len(), before + 2);
}

#[test]
fn a_vendor_device_lands_through_an_uploaded_mapping_template() {
    let w = ward();
    let integration = vigil(&[
        "token",
        "issue",
        "--data-dir",
        w.data(),
        "--role",
        "integration",
        "--subject",
        "integrator",
    ])
    .trim()
    .to_owned();
    // The template names the device acme-{serial}: the band registers under that id.
    let secret = w.add_device("acme-AB2-00417", "p1");
    let server = Server::start(w.dir.path());
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/templates");
    let template = std::fs::read_to_string(examples.join("acme-band.yaml")).unwrap();
    let upload = |text: &str, token: &str| {
        let resp = client()
            .put(format!("{}/api/v1/templates/acme-band", server.http))
            .bearer_auth(token)
            .header("content-type", "application/yaml")
            .body(text.to_owned())
            .send()
            .unwrap();
        (
            resp.status().as_u16(),
            resp.json::<Value>().unwrap_or(Value::Null),
        )
    };
    assert_eq!(
        upload(&template, &w.token).0,
        403,
        "clinicians do not upload templates"
    );
    let (status, body) = upload(&template, &integration);
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["version"], 3);
    let (status, body) = upload(&template, &integration);
    assert_eq!(status, 409, "the version must increase: {body}");
    let (status, body) = upload(
        &template
            .replace("value: \"$.hr\"", "vlaue: \"$.hr\"")
            .replace("version: 3", "version: 4"),
        &integration,
    );
    assert_eq!(status, 422, "{body}");
    assert!(
        body["field"].as_str().unwrap().starts_with("readings[0]"),
        "{body}"
    );

    // The vendor's message, timed a minute ago.
    let now = chrono_now_ms();
    let mut sample: Value = serde_json::from_str(
        &std::fs::read_to_string(examples.join("acme-band.sample.json")).unwrap(),
    )
    .unwrap();
    sample["ts"] = json!(now - 60_000);
    sample["backlog"] = json!([]);
    let message = sample.to_string();
    // A dry run shows what it becomes and stores nothing.
    let dry: Value = client()
        .post(format!(
            "{}/api/v1/templates/acme-band/dry-run",
            server.http
        ))
        .bearer_auth(&integration)
        .body(message.clone())
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(dry["matched"], true, "{dry}");
    assert_eq!(dry["device"], "acme-AB2-00417");
    assert!(observations(&server, &w.token, "p1").is_empty());
    // Published by the band itself on vigil/v1/ingest/acme-band.
    let out = mosquitto_pub(
        server.mqtt_port,
        "acme-AB2-00417",
        &secret,
        "vigil/v1/ingest/acme-band",
        &message,
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let stored = loop {
        let found = observations(&server, &w.token, "p1");
        if found.len() >= 5 {
            break found;
        }
        assert!(std::time::Instant::now() < deadline, "only {found:?}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let value = |code: &str| {
        stored
            .iter()
            .find(|o| o["code"]["coding"][0]["code"] == code)
            .map(|o| o["valueQuantity"]["value"].as_f64().unwrap())
    };
    assert_eq!(value("8867-4"), Some(72.0));
    assert_eq!(
        value("8310-5"),
        Some(36.8),
        "tenths of a degree, computed exactly"
    );
    assert_eq!(value("9279-1"), Some(14.0));
    // Another device's serial from this band is refused: a template never lets one device write
    // for another.
    sample["serial"] = json!("AB2-99999");
    let (status, body) = {
        let resp = client()
            .post(format!("{}/api/v1/ingest/acme-band", server.http))
            .basic_auth("acme-AB2-00417", Some(&secret))
            .body(sample.to_string())
            .send()
            .unwrap();
        (
            resp.status().as_u16(),
            resp.json::<Value>().unwrap_or(Value::Null),
        )
    };
    assert_eq!(status, 400, "{body}");
    assert!(
        body["type"].as_str().unwrap().ends_with("foreign_device"),
        "{body}"
    );
}

#[test]
fn the_operator_revokes_and_rotates_a_device_from_the_command_line() {
    let w = ward();
    let first = w.add_device("mon-7", "p1");
    let server = Server::start(w.dir.path());
    let reading = || json!({"obs": [{"code": "heart_rate", "value": 70}]}).to_string();
    assert_eq!(
        post_obs(&server, "mon-7", "mon-7", &first, reading()).0,
        202
    );
    vigil(&["device", "revoke", "--data-dir", w.data(), "--id", "mon-7"]);
    let (status, body) = post_obs(&server, "mon-7", "mon-7", &first, reading());
    assert_eq!(status, 401, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("revoked"),
        "{body}"
    );
    let out = vigil(&[
        "device",
        "rotate-secret",
        "--data-dir",
        w.data(),
        "--id",
        "mon-7",
    ]);
    let second = out
        .lines()
        .find_map(|l| l.strip_prefix("secret: "))
        .unwrap()
        .trim()
        .to_owned();
    assert_eq!(
        post_obs(&server, "mon-7", "mon-7", &first, reading()).0,
        401
    );
    assert_eq!(
        post_obs(&server, "mon-7", "mon-7", &second, reading()).0,
        202
    );
    // Its radio link's signal strength, reported with a reading, is a property of the Device.
    let with_signal =
        json!({"signal": -71, "battery": 64, "obs": [{"code": "heart_rate", "value": 71}]})
            .to_string();
    assert_eq!(
        post_obs(&server, "mon-7", "mon-7", &second, with_signal).0,
        202
    );
    let (_, device) = fhir_get(&server, &w.token, "/fhir/Device/mon-7");
    let signal = device["property"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["type"]["text"] == "signal")
        .cloned()
        .unwrap_or_else(|| panic!("{device}"));
    assert_eq!(signal["valueQuantity"][0]["value"], -71.0);
    let err = vigil_fails(&["device", "revoke", "--data-dir", w.data(), "--id", "ghost"]);
    assert!(err.contains("ghost"), "{err}");
}
