//! Device intrusion detection end to end: the real `vigil` binary, devices registered with the
//! CLI, Debian's mosquitto_pub as the device. A device that publishes to another device's topic
//! is quarantined (an alert for the administrators, its sign-in refused) until an operator
//! releases it with `vigil device release`.

mod common;

use common::vigil_cmd;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn vigil(args: &[&str]) -> String {
    let out = vigil_cmd().args(args).output().expect("run vigil");
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
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
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
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn add_device(data: &str, id: &str, patient: &str) -> String {
    let out = vigil(&[
        "device",
        "add",
        "--data-dir",
        data,
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

fn mosquitto_pub(port: u16, user: &str, secret: &str, topic: &str, extra: &[&str]) -> Output {
    Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-u", user, "-P", secret, "-t", topic, "-q", "1"])
        .args(["-m", r#"{"obs":[{"code":"spo2","value":96}]}"#])
        .args(extra)
        .output()
        .expect("mosquitto_pub is installed (scripts/test.sh installs mosquitto-clients)")
}

fn get(server: &Server, token: &str, path: &str) -> (u16, Value) {
    let resp = reqwest::blocking::Client::new()
        .get(format!("{}{path}", server.http))
        .bearer_auth(token)
        .timeout(Duration::from_secs(10))
        .send()
        .unwrap();
    (resp.status().as_u16(), resp.json().unwrap_or(Value::Null))
}

#[test]
fn a_device_publishing_to_another_devices_topic_is_quarantined_until_released() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_owned();
    for (id, name) in [("p1", "Jan Havel"), ("p2", "Eva Novak")] {
        vigil(&[
            "patient",
            "add",
            "--data-dir",
            &data,
            "--id",
            id,
            "--name",
            name,
        ]);
    }
    let secret = add_device(&data, "ox-1", "p1");
    add_device(&data, "ox-2", "p2");
    let token = |role: &str| {
        vigil(&[
            "token",
            "issue",
            "--data-dir",
            &data,
            "--role",
            role,
            "--subject",
            "sam",
        ])
        .trim()
        .to_owned()
    };
    let (admin, clinician) = (token("admin"), token("clinician"));
    let server = Server::start(dir.path());
    let port = server.mqtt_port;

    // Before: ox-1 publishes its own readings.
    let own = "vigil/v1/devices/ox-1/obs";
    assert!(
        mosquitto_pub(port, "ox-1", &secret, own, &[])
            .status
            .success()
    );

    // ox-1 speaks on ox-2's topic: refused with 0x87 (135), and quarantined.
    let out = mosquitto_pub(
        port,
        "ox-1",
        &secret,
        "vigil/v1/devices/ox-2/obs",
        &["-V", "5", "-d"],
    );
    let debug = String::from_utf8_lossy(&out.stdout);
    assert!(debug.contains("RC:135"), "{debug}");

    let deadline = Instant::now() + Duration::from_secs(10);
    let alert = loop {
        let (status, body) = get(&server, &admin, "/api/v1/security/alerts?status=open");
        assert_eq!(status, 200, "{body}");
        if let Some(a) = body["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["kind"] == "topic_violation")
        {
            break a.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no security alert appeared: {body}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(alert["device"], "ox-1");
    assert_eq!(alert["quarantined"], true);
    let detail = alert["detail"].as_str().unwrap();
    assert!(
        !detail.contains("p2") && !detail.contains("Novak"),
        "{detail}"
    );
    // Clinicians do not see security alerts.
    assert_eq!(get(&server, &clinician, "/api/v1/security/alerts").0, 403);

    // Its next sign-in is refused: MQTT 5 CONNACK 0x8A (banned), MQTT 3.1.1 code 5.
    let out = mosquitto_pub(port, "ox-1", &secret, own, &["-V", "5"]);
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(said.contains("banned"), "{said}");
    let out = mosquitto_pub(port, "ox-1", &secret, own, &[]);
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(
        said.contains("not authorised") || said.contains("not authorized"),
        "{said}"
    );

    // The operator releases it from the command line while the server runs.
    let released = vigil(&["device", "release", "--data-dir", &data, "ox-1"]);
    assert!(released.contains("released"), "{released}");
    assert!(
        mosquitto_pub(port, "ox-1", &secret, own, &["-V", "5"])
            .status
            .success()
    );
    let metrics = reqwest::blocking::get(format!("{}/metrics", server.http))
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains("vigil_security_alerts_total{kind=\"topic_violation\"} 1"),
        "{metrics}"
    );
    let again = vigil(&["device", "release", "--data-dir", &data, "ox-1"]);
    assert!(again.contains("was not quarantined"), "{again}");
}
