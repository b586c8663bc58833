//! No patient data and no secrets in the logs (house rule 7; HIPAA §164.312 keeps ePHI in the
//! places that control and audit access to it, and a log file is neither).
//!
//! The real `vigil` binary runs at `VIGIL_LOG=debug` through a whole working day in miniature:
//! patients with distinctive names and MRNs (from the CLI, FHIR and HL7), readings with
//! distinctive values over MQTT, HTTP and MLLP that raise alarms, FHIR reads and searches by name
//! and MRN, an alarm acknowledged, a refused and an accepted login, a consent, refused device
//! sign-ins with a distinctive wrong secret. Then everything the process wrote to stdout and
//! stderr is searched for each name, identifier, value, secret, token, password and cookie used.

mod common;

use common::vigil_cmd;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The patient's own identifier; patient ids are patient identifiers.
const PATIENT_ID: &str = "qxp-5581";
const GIVEN: &str = "Zebediah";
const FAMILY: &str = "Quarrington";
const MRN: &str = "MRN-QX-774411";
/// A second patient, created through FHIR, with a birth date.
const GIVEN_2: &str = "Ottoline";
const FAMILY_2: &str = "Brightwater-Vasquez";
const MRN_2: &str = "MRN-QX-990022";
const BIRTH_DATE_2: &str = "1931-07-23";
/// An MRN that matches nobody (HL7 refuses the message; the refusal must not log it).
const MRN_UNKNOWN: &str = "MRN-QX-000319";
/// Values that appear nowhere else: heart rate, SpO2 over MQTT; systolic, diastolic over HTTP;
/// pulse, temperature over HL7.
const VALUES: [&str; 6] = ["173.41", "81.73", "84.37", "52.19", "166.37", "39.87"];
const PASSWORD: &str = "Quokka-Lantern-8812!";
const WRONG_PASSWORD: &str = "Wrong-Pelican-5533!";
const WRONG_DEVICE_SECRET: &str = "WrongSecret-QX-4471";
const BOGUS_TOKEN: &str = "bogus-bearer-QX-6620";

fn vigil(args: &[&str]) -> String {
    vigil_with_stdin(args, None)
}

fn vigil_with_stdin(args: &[&str], stdin: Option<&str>) -> String {
    let mut child = vigil_cmd()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run vigil");
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        writeln!(input, "{text}").unwrap();
    }
    drop(input);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "vigil {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `vigil serve` with every byte it writes to stdout and stderr kept.
struct Server {
    child: Child,
    http: String,
    mqtt_port: u16,
    mllp_port: u16,
    output: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
}

impl Server {
    fn start(data_dir: &Path, json_logs: bool) -> Server {
        let mut command = vigil_cmd();
        command
            .args(["serve", "--data-dir"])
            .arg(data_dir)
            .args([
                "--http",
                "127.0.0.1:0",
                "--mqtt",
                "127.0.0.1:0",
                "--mllp",
                "127.0.0.1:0",
            ])
            .env("VIGIL_LOG", "debug")
            .env_remove("VIGIL_LOG_FORMAT")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if json_logs {
            command.env("VIGIL_LOG_FORMAT", "json");
        }
        let mut child = command.spawn().expect("start vigil serve");
        let output = Arc::new(Mutex::new(String::new()));

        let mut stderr = child.stderr.take().unwrap();
        let kept = output.clone();
        let stderr_reader = std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                kept.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });

        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let (mut http, mut mqtt_port, mut mllp_port) = (None, None, None);
        while http.is_none() || mqtt_port.is_none() || mllp_port.is_none() {
            let line = lines.next().expect("vigil serve exited early").unwrap();
            output.lock().unwrap().push_str(&format!("{line}\n"));
            let port = |rest: &str| {
                let url = rest.split_whitespace().next().unwrap();
                url.rsplit(':').next().and_then(|p| p.parse::<u16>().ok())
            };
            if let Some(rest) = line.trim().strip_prefix("MLLP") {
                mllp_port = port(rest);
            }
            if let Some(rest) = line.trim().strip_prefix("HTTP API") {
                http = rest.split_whitespace().next().map(str::to_owned);
            }
            if let Some(rest) = line.trim().strip_prefix("MQTT") {
                mqtt_port = port(rest);
            }
        }
        let kept = output.clone();
        let stdout_reader = std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                kept.lock().unwrap().push_str(&format!("{line}\n"));
            }
        });
        Server {
            child,
            http: http.unwrap(),
            mqtt_port: mqtt_port.unwrap(),
            mllp_port: mllp_port.unwrap(),
            output,
            readers: vec![stderr_reader, stdout_reader],
        }
    }

    /// Stops the server gracefully (SIGTERM), so the shut-down path's logs are included, and
    /// returns all it wrote.
    fn stop(mut self) -> String {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        self.output.lock().unwrap().clone()
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
    let status = resp.status().as_u16();
    (status, resp.json().unwrap_or(Value::Null))
}

fn mosquitto_pub(port: u16, user: &str, secret: &str, message: &str) -> std::process::Output {
    Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-u", user, "-P"])
        .arg(secret)
        .args(["-t", &format!("vigil/v1/devices/{user}/obs"), "-q", "1"])
        .args(["-m", message])
        .output()
        .expect("mosquitto_pub is installed (scripts/test.sh installs mosquitto-clients)")
}

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

/// An ORU^R01 from the spot-check device for the patient with `mrn`, named in PID-5.
fn hl7_spot_check(control_id: &str, mrn: &str, ts: &str) -> String {
    [
        format!(
            "MSH|^~\\&|SPOTQX|WARD9|IOMT_HUB|HOSPITAL|{ts}||ORU^R01^ORU_R01|{control_id}|P|2.6|||NE|AL||UNICODE UTF-8"
        ),
        format!("PID|||{mrn}^^^HOSP^MR||QUARRINGTON^ZEBEDIAH^^^^^L||19440312|M"),
        "PV1||I|WARD9^4^1".to_owned(),
        format!("OBR|1|{control_id}|{control_id}|182777000^monitoring of patient^SCT|||{ts}"),
        format!(
            "OBX|1|NM|149546^MDC_PULS_RATE_NON_INV^MDC|1.1.1.4|{}|264864^MDC_DIM_BEAT_PER_MIN^MDC|50-110|H|||R|||{ts}||||0012340000000077^^0012340000000077^EUI-64",
            VALUES[4]
        ),
        format!(
            "OBX|2|NM|150344^MDC_TEMP^MDC|1.3.1.1|{}|268192^MDC_DIM_DEGC^MDC|35.0-38.5|H|||R|||{ts}||||0012340000000077^^0012340000000077^EUI-64",
            VALUES[5]
        ),
    ]
    .join("\r")
        + "\r"
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Everything secret or about a patient that the scenario handled, and what went into the logs.
struct Scenario {
    sensitive: Vec<(String, &'static str)>,
    output: String,
}

fn run_scenario(json_logs: bool) -> Scenario {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_owned();
    let mut sensitive: Vec<(String, &'static str)> = vec![
        (PATIENT_ID.into(), "patient id"),
        (GIVEN.into(), "patient name"),
        (FAMILY.into(), "patient name"),
        (MRN.into(), "MRN"),
        (GIVEN_2.into(), "patient name"),
        (FAMILY_2.into(), "patient name"),
        (MRN_2.into(), "MRN"),
        (BIRTH_DATE_2.into(), "birth date"),
        ("19440312".into(), "birth date"),
        (MRN_UNKNOWN.into(), "MRN"),
        (PASSWORD.into(), "password"),
        (WRONG_PASSWORD.into(), "password"),
        (WRONG_DEVICE_SECRET.into(), "device secret"),
        (BOGUS_TOKEN.into(), "bearer token"),
    ];
    sensitive.extend(VALUES.iter().map(|v| (v.to_string(), "reading value")));

    vigil(&[
        "patient",
        "add",
        "--data-dir",
        &data,
        "--id",
        PATIENT_ID,
        "--name",
        &format!("{GIVEN} {FAMILY}"),
        "--mrn",
        MRN,
    ]);
    let device_secret = |out: String| {
        out.lines()
            .find_map(|l| l.strip_prefix("secret: "))
            .expect("secret printed")
            .trim()
            .to_owned()
    };
    let monitor_secret = device_secret(vigil(&[
        "device",
        "add",
        "--data-dir",
        &data,
        "--id",
        "qxmon-1",
        "--patient",
        PATIENT_ID,
        "--since",
        "2025-11-01T00:00:00Z",
    ]));
    let cuff_secret = device_secret(vigil(&[
        "device",
        "add",
        "--data-dir",
        &data,
        "--id",
        "qxcuff-1",
        "--patient",
        PATIENT_ID,
        "--since",
        "2025-11-01T00:00:00Z",
    ]));
    vigil(&[
        "device",
        "add",
        "--data-dir",
        &data,
        "--id",
        "SPOTQX",
        "--type",
        "hl7-sender",
    ]);
    sensitive.push((monitor_secret.clone(), "device secret"));
    sensitive.push((cuff_secret.clone(), "device secret"));
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
    sensitive.push((token.clone(), "bearer token"));
    // The patient's own local account, and the caregiver the patient will share with.
    vigil_with_stdin(
        &[
            "user",
            "add",
            "--data-dir",
            &data,
            "--id",
            "zq.self",
            "--name",
            &format!("{GIVEN} {FAMILY}"),
            "--role",
            "patient",
            "--patient",
            PATIENT_ID,
            "--password-stdin",
        ],
        Some(PASSWORD),
    );
    let caregiver_password = vigil(&[
        "user",
        "add",
        "--data-dir",
        &data,
        "--id",
        "qx.daughter",
        "--name",
        "A family member",
        "--role",
        "caregiver",
    ]);
    // A generated password is printed once; whatever the line looks like, none of it may leak.
    for word in caregiver_password
        .split_whitespace()
        .filter(|w| w.len() >= 16)
    {
        sensitive.push((word.to_owned(), "generated password"));
    }

    let server = Server::start(dir.path(), json_logs);
    let http = client();

    // Readings over MQTT that stay above the heart-rate and below the SpO2 limits past their
    // delays (by the readings' own time), so both alarm.
    let start = now_ms() - 60_000;
    for i in 0..3 {
        let message = format!(
            r#"{{"ts":{},"obs":[{{"code":"heart_rate","value":{}}},{{"code":"spo2","value":{}}}]}}"#,
            start + i * 20_000,
            VALUES[0],
            VALUES[1]
        );
        let out = mosquitto_pub(server.mqtt_port, "qxmon-1", &monitor_secret, &message);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // A sign-in with a wrong secret is refused (and logged as refused, without the secret).
    let out = mosquitto_pub(server.mqtt_port, "qxmon-1", WRONG_DEVICE_SECRET, "{}");
    assert!(!out.status.success(), "a wrong secret must be refused");

    // A blood pressure over HTTP: systolic below 90 alarms at once.
    let body = json!({"obs": [
        {"code": "systolic_bp", "value": VALUES[2].parse::<f64>().unwrap()},
        {"code": "diastolic_bp", "value": VALUES[3].parse::<f64>().unwrap()}
    ]});
    let resp = http
        .post(format!("{}/api/v1/devices/qxcuff-1/obs", server.http))
        .basic_auth("qxcuff-1", Some(&cuff_secret))
        .json(&body)
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 202, "{:?}", resp.text());
    let resp = http
        .post(format!("{}/api/v1/devices/qxcuff-1/obs", server.http))
        .basic_auth("qxcuff-1", Some(WRONG_DEVICE_SECRET))
        .json(&body)
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);

    // A spot check over HL7 naming the patient by MRN and name, and one for an unknown MRN.
    let ts = chrono::Utc::now().format("%Y%m%d%H%M%S+0000").to_string();
    let hl7 = dir.path().join("spot.hl7");
    let framed = |m: String| format!("\u{b}{m}\u{1c}\r");
    std::fs::write(
        &hl7,
        framed(hl7_spot_check("QX-1", MRN, &ts))
            + &framed(hl7_spot_check("QX-2", MRN_UNKNOWN, &ts)),
    )
    .unwrap();
    let acks = mllp_send(server.mllp_port, &hl7);
    assert!(acks.contains("MSA|AA|QX-1"), "{acks}");
    assert!(
        !acks.contains("MSA|AA|QX-2"),
        "unknown MRN accepted: {acks}"
    );

    // A second patient through FHIR, then reads and searches by name, MRN and id.
    let resp = http
        .post(format!("{}/fhir/Patient", server.http))
        .bearer_auth(&token)
        .header("content-type", "application/fhir+json")
        .body(
            json!({
                "resourceType": "Patient",
                "identifier": [{"system": "urn:vigil:mrn", "value": MRN_2}],
                "name": [{"family": FAMILY_2, "given": [GIVEN_2]}],
                "gender": "female",
                "birthDate": BIRTH_DATE_2
            })
            .to_string(),
        )
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    let created: Value = resp.json().unwrap();
    let second_id = created["id"]
        .as_str()
        .expect("the new patient's id")
        .to_owned();
    sensitive.push((second_id.clone(), "patient id"));
    for path in [
        format!("/fhir/Patient/{PATIENT_ID}"),
        format!("/fhir/Patient/{second_id}"),
        format!("/fhir/Patient?name={FAMILY}"),
        format!("/fhir/Patient?identifier={MRN_2}"),
        format!("/fhir/Observation?patient={PATIENT_ID}&_count=100"),
        format!("/api/v1/patients/{PATIENT_ID}/news2"),
        format!("/fhir/Patient/{MRN_UNKNOWN}"),
    ] {
        let (status, _) = get(&server, &token, &path);
        assert!(status == 200 || status == 404, "{path}: {status}");
    }
    let (_, observations) = get(
        &server,
        &token,
        &format!("/fhir/Observation?patient={PATIENT_ID}&_count=100"),
    );
    let text = observations.to_string();
    for value in VALUES {
        assert!(text.contains(value), "{value} not stored: {text}");
    }
    assert_eq!(get(&server, BOGUS_TOKEN, "/fhir/Patient").0, 401);

    // The alarms come up; the clinician acknowledges one.
    let deadline = Instant::now() + Duration::from_secs(30);
    let alarm_id = loop {
        let (_, alerts) = get(
            &server,
            &token,
            &format!("/api/v1/alerts?patient={PATIENT_ID}"),
        );
        if let Some(id) = alerts["alerts"]
            .as_array()
            .and_then(|a| a.first())
            .and_then(|a| a["id"].as_u64())
        {
            break id;
        }
        assert!(Instant::now() < deadline, "no alarm raised: {alerts}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let resp = http
        .post(format!("{}/api/v1/alerts/{alarm_id}/ack", server.http))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);

    // The patient signs in: first with a wrong password, then with the right one.
    let resp = http
        .post(format!("{}/api/v1/login", server.http))
        .json(&json!({"username": "zq.self", "password": WRONG_PASSWORD}))
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let resp = http
        .post(format!("{}/api/v1/login", server.http))
        .json(&json!({"username": "zq.self", "password": PASSWORD}))
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let cookie = resp
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|c| c.split(';').next())
        .expect("a session cookie")
        .to_owned();
    let account: Value = resp.json().unwrap();
    let csrf = account["csrf_token"].as_str().unwrap().to_owned();
    sensitive.push((
        cookie.trim_start_matches("vigil_session=").to_owned(),
        "session cookie",
    ));
    sensitive.push((csrf.clone(), "CSRF token"));

    // … and shares their observations with the caregiver.
    let consent = json!({
        "resourceType": "Consent",
        "status": "active",
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": format!("Patient/{PATIENT_ID}")},
        "provision": {
            "type": "permit",
            "actor": [{"role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP"}]},
                       "reference": {"reference": "RelatedPerson/qx.daughter"}}],
            "class": [{"system": "http://hl7.org/fhir/resource-types", "code": "Observation"}]
        }
    });
    let resp = http
        .post(format!("{}/fhir/Consent", server.http))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .header("content-type", "application/fhir+json")
        .body(consent.to_string())
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201, "{:?}", resp.text());
    let resp = http
        .get(format!(
            "{}/fhir/Observation?patient={PATIENT_ID}",
            server.http
        ))
        .header("cookie", &cookie)
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let resp = http
        .post(format!("{}/api/v1/logout", server.http))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .send()
        .unwrap();
    assert!(resp.status().is_success(), "logout: {}", resp.status());

    // Metric labels are telemetry too (and a patient per label would explode their number).
    let metrics = http
        .get(format!("{}/metrics", server.http))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(metrics.contains("vigil_logins_total"), "{metrics}");

    Scenario {
        sensitive,
        output: server.stop() + &metrics,
    }
}

/// Every sensitive string found in the output, with the line it is on.
fn leaks(scenario: &Scenario) -> Vec<String> {
    let mut found = Vec::new();
    for line in scenario.output.lines() {
        let lower = line.to_lowercase();
        for (needle, what) in &scenario.sensitive {
            if lower.contains(&needle.to_lowercase()) {
                found.push(format!("{what} {needle:?} in: {line}"));
            }
        }
    }
    found
}

fn check(scenario: Scenario) {
    // The logs were captured at debug level, so the scan is not vacuous.
    assert!(
        scenario.output.contains("vigil is listening"),
        "{}",
        scenario.output
    );
    assert!(
        scenario.output.contains("mqtt connection refused"),
        "the refused sign-in was logged: {}",
        scenario.output
    );
    assert!(
        scenario.output.contains("mqtt connection closed"),
        "debug lines are captured: {}",
        scenario.output
    );
    let found = leaks(&scenario);
    assert!(
        found.is_empty(),
        "patient data or secrets in the logs:\n{}",
        found.join("\n")
    );
}

#[test]
fn debug_logs_carry_no_patient_data_or_secrets() {
    check(run_scenario(false));
}

#[test]
fn json_debug_logs_carry_no_patient_data_or_secrets() {
    let scenario = run_scenario(true);
    assert!(
        scenario
            .output
            .lines()
            .any(|l| l.starts_with('{') && l.contains("\"level\":\"DEBUG\"")),
        "JSON lines at debug: {}",
        scenario.output
    );
    check(scenario);
}
