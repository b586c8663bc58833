//! The "done when", end to end: run `vigil demo` over TLS, sign in as the nurse, the
//! patient, the family member, the researcher and the administrator it prints, and check that
//! each sees exactly what they may, and that every access shows up in the audit trail.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

const VIGIL: &str = env!("CARGO_BIN_EXE_vigil");

struct Demo {
    child: Child,
    base: String,
    /// account → password, as printed.
    logins: Vec<(String, String)>,
    client: reqwest::blocking::Client,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(dir: &std::path::Path) -> Demo {
    let data = dir.join("data");
    let key = dir.join("store.key");
    let mut child = Command::new(VIGIL)
        .args(["demo", "--patients", "4", "--interval", "0.5"])
        .arg("--data-dir")
        .arg(&data)
        .arg("--key-file")
        .arg(&key)
        .env("VIGIL_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the demo");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut base, mut logins, mut in_logins) = (None, Vec::new(), false);
    for line in lines.by_ref() {
        let line = line.expect("demo output");
        let trimmed = line.trim();
        if let Some(url) = trimmed.strip_prefix("HTTP API") {
            base = Some(url.trim().to_owned());
        }
        if trimmed.starts_with("Sign in") {
            in_logins = true;
            continue;
        }
        if in_logins {
            let words: Vec<&str> = trimmed.split_whitespace().collect();
            if words.len() >= 3 && words.contains(&"sees") {
                logins.push((words[0].to_owned(), words[2].to_owned()));
                continue;
            }
            in_logins = false;
        }
        if trimmed.starts_with("Stop with Ctrl-C") {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    let ca = std::fs::read(data.join("dev-ca/ca.pem")).expect("the demo's development CA");
    let client = reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    Demo {
        child,
        base: base.expect("the demo prints its HTTP API URL"),
        logins,
        client,
    }
}

/// A signed-in person: their session cookie.
struct Session<'a> {
    demo: &'a Demo,
    cookie: String,
}

impl Demo {
    fn login(&self, account: &str) -> Session<'_> {
        let password = &self
            .logins
            .iter()
            .find(|(a, _)| a == account)
            .unwrap_or_else(|| panic!("the demo prints a login for {account}: {:?}", self.logins))
            .1;
        let resp = self
            .client
            .post(format!("{}/api/v1/login", self.base))
            .json(&json!({"username": account, "password": password}))
            .send()
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{account} signs in");
        let cookie = resp
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .expect("a session cookie")
            .to_owned();
        assert!(
            cookie.contains("HttpOnly") && cookie.contains("Secure"),
            "{cookie}"
        );
        let cookie = cookie.split(';').next().unwrap().to_owned();
        Session { demo: self, cookie }
    }
}

impl Session<'_> {
    fn get(&self, path: &str) -> (u16, Value) {
        let resp = self
            .demo
            .client
            .get(format!("{}{path}", self.demo.base))
            .header("cookie", &self.cookie)
            .send()
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().unwrap_or(Value::Null))
    }

    fn patients(&self) -> Vec<String> {
        let (status, bundle) = self.get("/fhir/Patient?_count=100");
        assert_eq!(status, 200, "{bundle}");
        bundle["entry"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|e| e["resource"]["id"].as_str().unwrap().to_owned())
            .collect()
    }
}

#[test]
fn each_person_the_demo_prints_sees_exactly_what_they_may_and_every_access_is_audited() {
    let dir = tempfile::tempdir().unwrap();
    let demo = start(dir.path());
    let home = "pat-004";

    let nurse = demo.login("nurse.ana");
    let mut seen = nurse.patients();
    seen.sort();
    assert_eq!(
        seen,
        ["pat-001", "pat-002", "pat-003", "pat-004"],
        "the ward"
    );

    let patient = demo.login(&format!("patient.{home}"));
    assert_eq!(patient.patients(), [home], "only themself");
    assert_eq!(patient.get("/fhir/Patient/pat-001").0, 403);
    assert_eq!(patient.get(&format!("/fhir/Patient/{home}")).0, 200);

    let family = demo.login("family.eva");
    assert_eq!(family.patients(), [home], "only the patient who consented");
    let (status, _) = family.get(&format!("/fhir/Observation?patient={home}&_count=5"));
    assert_eq!(status, 200);
    assert_eq!(family.get("/fhir/Observation?patient=pat-001").0, 403);
    assert_eq!(family.get("/fhir/Patient/pat-002").0, 403);
    assert_eq!(family.get("/api/v1/patients/pat-001/news2").0, 403);
    assert_eq!(family.get("/api/v1/alerts?patient=pat-001").0, 403);

    let researcher = demo.login("research.lee");
    let pseudonyms = researcher.patients();
    assert_eq!(pseudonyms.len(), 4);
    assert!(
        pseudonyms.iter().all(|id| id.starts_with("anon-")),
        "{pseudonyms:?}"
    );
    let (_, bundle) = researcher.get("/fhir/Patient?_count=100");
    assert!(
        bundle["entry"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["resource"].get("name").is_none()),
        "{bundle}"
    );
    assert_eq!(
        researcher.get("/fhir/Patient?name=havel").0,
        403,
        "no look-ups"
    );

    // The patient sees who accessed their record, including their daughter.
    let (status, disclosures) = patient.get(&format!("/api/v1/patients/{home}/disclosures"));
    assert_eq!(status, 200, "{disclosures}");
    let who: Vec<&str> = disclosures["disclosures"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["who"]["id"].as_str())
        .collect();
    assert!(who.contains(&"family.eva"), "{who:?}");
    assert!(who.contains(&"nurse.ana"), "{who:?}");

    // The administrator sees the denials in the audit trail too.
    let admin = demo.login("admin");
    let (status, audit) = admin.get("/fhir/AuditEvent?action=permission-denied&_count=100");
    assert_eq!(status, 200, "{audit}");
    let denied_agents: Vec<String> = audit["entry"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["resource"]["agent"][0]["who"]["identifier"]["value"].as_str())
        .map(str::to_owned)
        .collect();
    for who in [format!("patient.{home}"), "family.eva".to_owned()] {
        assert!(denied_agents.contains(&who), "{who} in {denied_agents:?}");
    }
}
