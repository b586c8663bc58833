//! Transport security end to end: the real `vigil` binary with certificates made by
//! `vigil dev-ca`, spoken to by TLS clients nobody on the team wrote (curl, openssl s_client,
//! Debian's mosquitto_pub, python's ssl module).

mod common;

use common::vigil_cmd;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

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

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A data directory with patients, devices and a token, and a development CA beside it.
struct Ward {
    dir: tempfile::TempDir,
    token: String,
    /// Secrets of mon-1 and mon-2.
    secrets: [String; 2],
}

impl Ward {
    fn new() -> Ward {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let data = data.to_str().unwrap();
        for (id, mrn) in [("p1", "MRN20002"), ("p2", "MRN-2")] {
            vigil(&[
                "patient",
                "add",
                "--data-dir",
                data,
                "--id",
                id,
                "--name",
                "Test Patient",
                "--mrn",
                mrn,
            ]);
        }
        let mut secrets = Vec::new();
        for (device, patient) in [("mon-1", "p1"), ("mon-2", "p2")] {
            let out = vigil(&[
                "device",
                "add",
                "--data-dir",
                data,
                "--id",
                device,
                "--patient",
                patient,
                "--since",
                "2025-11-01T00:00:00Z",
            ]);
            secrets.push(
                out.lines()
                    .find_map(|l| l.strip_prefix("secret: "))
                    .expect("secret printed")
                    .trim()
                    .to_owned(),
            );
        }
        vigil(&[
            "device",
            "add",
            "--data-dir",
            data,
            "--id",
            "SPOTCHECK",
            "--type",
            "hl7-sender",
        ]);
        // nadia works at the central station, whose care team looks after every patient.
        vigil(&[
            "team",
            "set",
            "--data-dir",
            data,
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
            data,
            "--role",
            "clinician",
            "--subject",
            "nadia",
        ])
        .trim()
        .to_owned();
        // `stranger` has a certificate from the right CA but is not registered.
        let ca = dir.path().join("ca");
        let out = vigil(&[
            "dev-ca",
            "--out",
            ca.to_str().unwrap(),
            "--device",
            "mon-1",
            "--device",
            "mon-2",
            "--device",
            "SPOTCHECK",
            "--device",
            "stranger",
        ]);
        assert!(out.contains("for development and tests only"), "{out}");
        Ward {
            dir,
            token,
            secrets: secrets.try_into().unwrap(),
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn ca(&self) -> PathBuf {
        self.dir.path().join("ca/ca.pem")
    }

    fn ca_file(&self, name: &str) -> String {
        self.dir
            .path()
            .join("ca")
            .join(name)
            .to_str()
            .unwrap()
            .to_owned()
    }

    /// Certificate and key of a device.
    fn device(&self, id: &str) -> (String, String) {
        (
            self.ca_file(&format!("devices/{id}.pem")),
            self.ca_file(&format!("devices/{id}.key")),
        )
    }

    fn tls_args(&self) -> Vec<String> {
        vec![
            "--tls-cert".into(),
            self.ca_file("server.pem"),
            "--tls-key".into(),
            self.ca_file("server.key"),
            "--tls-client-ca".into(),
            self.ca_file("ca.pem"),
        ]
    }
}

struct Server {
    child: Child,
    /// `https://127.0.0.1:port`
    http: String,
    mqtt_port: u16,
    mllp_port: u16,
}

fn port_of(url: &str) -> u16 {
    url.rsplit(':').next().unwrap().parse().unwrap()
}

impl Server {
    fn start(w: &Ward) -> Server {
        let mut child = vigil_cmd()
            .arg("serve")
            .arg("--data-dir")
            .arg(w.data())
            .args(w.tls_args())
            .args(["--http", "127.0.0.1:0", "--mqtt", "127.0.0.1:0"])
            .args(["--mllp", "127.0.0.1:0"])
            .env("VIGIL_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .expect("start vigil serve");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let (mut http, mut mqtt, mut mllp) = (None, None, None);
        while http.is_none() || mqtt.is_none() || mllp.is_none() {
            let line = lines.next().expect("vigil serve exited early").unwrap();
            let mut words = line.split_whitespace();
            match (words.next(), words.next(), words.next()) {
                (Some("HTTP"), Some("API"), Some(url)) => http = Some(url.to_owned()),
                (Some("MQTT"), Some(url), _) => mqtt = Some(url.to_owned()),
                (Some("MLLP"), Some(url), _) => mllp = Some(url.to_owned()),
                _ => {}
            }
        }
        std::thread::spawn(move || for _ in lines {});
        let (http, mqtt, mllp) = (http.unwrap(), mqtt.unwrap(), mllp.unwrap());
        // The printed URLs say the listeners are encrypted.
        assert!(http.starts_with("https://"), "{http}");
        assert!(mqtt.starts_with("mqtts://"), "{mqtt}");
        assert!(mllp.starts_with("mllps://"), "{mllp}");
        Server {
            child,
            mqtt_port: port_of(&mqtt),
            mllp_port: port_of(&mllp),
            http,
        }
    }

    fn http_port(&self) -> u16 {
        port_of(&self.http)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn curl(args: &[&str]) -> Output {
    Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .args(args)
        .output()
        .expect("curl is installed")
}

/// A reqwest client that trusts the development CA (and nothing else).
fn client(w: &Ward) -> reqwest::blocking::Client {
    let ca = std::fs::read(w.ca()).unwrap();
    reqwest::blocking::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn observations(w: &Ward, server: &Server, patient: &str) -> Vec<Value> {
    let resp = client(w)
        .get(format!(
            "{}/fhir/Observation?patient={patient}&_count=1000",
            server.http
        ))
        .bearer_auth(&w.token)
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let bundle: Value = resp.json().unwrap();
    bundle["entry"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|e| e["resource"].clone())
        .filter(|o| o["device"]["reference"] != "Device/vigil-news2")
        .collect()
}

fn metrics(w: &Ward, server: &Server) -> String {
    client(w)
        .get(format!("{}/metrics", server.http))
        .send()
        .unwrap()
        .text()
        .unwrap()
}

/// `openssl s_client` with the protocol message trace (`-msg`); stdin closed so it ends after
/// the handshake.
fn s_client(port: u16, args: &[&str]) -> Output {
    Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args(["-servername", "localhost", "-msg"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("openssl is installed")
}

#[test]
fn https_speaks_tls_13_and_12_only_and_refuses_older_versions_and_plain_text() {
    let w = Ward::new();
    let server = Server::start(&w);
    let ca = w.ca();
    let ca = ca.to_str().unwrap();
    let healthz = format!("{}/healthz", server.http);
    // A client that connects and never starts its handshake holds up nobody: handshakes run in
    // each connection's own task, not in the accept loop.
    let _stalled = std::net::TcpStream::connect(("127.0.0.1", server.http_port())).unwrap();

    // TLS 1.3 by default, TLS 1.2 when the client goes no higher; both verified against the CA.
    for (extra, version) in [(None, "TLSv1.3"), (Some(["--tls-max", "1.2"]), "TLSv1.2")] {
        let mut args = vec![
            "-v",
            "--cacert",
            ca,
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ];
        args.extend(extra.iter().flatten());
        args.push(&healthz);
        let out = curl(&args);
        let all = text(&out);
        assert!(out.status.success(), "{all}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "200");
        assert!(
            all.contains(&format!("SSL connection using {version}")),
            "{all}"
        );
    }
    // Not a certificate anyone else trusts.
    let out = curl(&[&healthz]);
    assert!(!out.status.success(), "{}", text(&out));

    // The control: openssl completes a TLS 1.2 handshake and verifies the chain.
    let out = s_client(server.http_port(), &["-tls1_2", "-CAfile", ca]);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(all.contains("Protocol  : TLSv1.2"), "{all}");
    assert!(all.contains("Verify return code: 0 (ok)"), "{all}");

    // TLS 1.1 and 1.0: the client's own security level is lowered so that it really sends the
    // old ClientHello; the trace shows it leave and the server's fatal alert come back.
    for (flag, version) in [("-tls1_1", "TLS 1.1"), ("-tls1", "TLS 1.0")] {
        let out = s_client(
            server.http_port(),
            &[flag, "-cipher", "DEFAULT@SECLEVEL=0", "-CAfile", ca],
        );
        let all = text(&out);
        assert!(!out.status.success(), "{version} was accepted: {all}");
        assert!(
            all.lines()
                .any(|l| l.starts_with(&format!(">>> {version}, Handshake"))
                    && l.contains("ClientHello")),
            "the client did not offer {version}: {all}"
        );
        assert!(
            all.lines()
                .any(|l| l.starts_with("<<<") && l.contains("Alert") && l.contains("fatal")),
            "no alert from the server: {all}"
        );
        assert!(all.contains("Cipher is (NONE)"), "{all}");
    }

    // Plain HTTP to the TLS port gets no answer.
    let out = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &format!("http://127.0.0.1:{}/healthz", server.http_port()),
    ]);
    assert!(!out.status.success(), "{}", text(&out));
    assert_ne!(String::from_utf8_lossy(&out.stdout), "200");

    // The server counted what it refused, and why.
    let m = metrics(&w, &server);
    assert!(
        m.contains(r#"vigil_tls_handshakes_failed_total{listener="HTTP",reason="incompatible"} 2"#),
        "{m}"
    );
    assert!(
        m.contains(r#"vigil_tls_handshakes_failed_total{listener="HTTP",reason="not_tls"} 1"#),
        "{m}"
    );
}

const READING: &str =
    r#"{"ts":"2026-11-21T10:15:00Z","obs":[{"code":"heart_rate","value":72,"unit":"/min"}]}"#;

/// mosquitto_pub over TLS trusting the development CA; `extra` adds the credentials.
fn mosquitto_pub(w: &Ward, port: u16, topic: &str, message: &str, extra: &[&str]) -> Output {
    Command::new("mosquitto_pub")
        .args(["-h", "localhost", "-p", &port.to_string()])
        .arg("--cafile")
        .arg(w.ca())
        .args(["-t", topic, "-q", "1", "-m", message])
        .args(extra)
        .output()
        .expect("mosquitto_pub is installed (mosquitto-clients)")
}

#[test]
fn devices_sign_in_over_mqtts_with_their_certificate_or_their_secret_and_only_as_themselves() {
    let w = Ward::new();
    let server = Server::start(&w);
    let port = server.mqtt_port;
    let (mon1_cert, mon1_key) = w.device("mon-1");
    let mon1 = ["--cert", &mon1_cert, "--key", &mon1_key];
    let obs = |d: &str| format!("vigil/v1/devices/{d}/obs");

    // Mutual TLS, no password, MQTT 3.1.1 and 5: the certificate names mon-1.
    for version in ["311", "5"] {
        let reading = READING.replace("10:15", if version == "5" { "10:16" } else { "10:15" });
        let args = [&mon1[..], &["-i", "mon-1", "-V", version]].concat();
        let out = mosquitto_pub(&w, port, &obs("mon-1"), &reading, &args);
        assert!(out.status.success(), "MQTT {version}: {}", text(&out));
    }
    // A device secret over TLS, without a certificate.
    let out = mosquitto_pub(
        &w,
        port,
        &obs("mon-2"),
        READING,
        &["-u", "mon-2", "-P", &w.secrets[1]],
    );
    assert!(out.status.success(), "{}", text(&out));
    // A certificate and the right secret together.
    let args = [&mon1[..], &["-u", "mon-1", "-P", &w.secrets[0]]].concat();
    let out = mosquitto_pub(&w, port, &obs("mon-1"), READING, &args);
    assert!(out.status.success(), "{}", text(&out));

    // mon-1's certificate cannot act as mon-2: not by client id, not by user name, not even
    // with mon-2's secret, and not by publishing to mon-2's topic.
    let foreign = READING.replace("10:15", "11:00");
    for claim in [
        vec!["-i", "mon-2"],
        vec!["-u", "mon-2"],
        vec!["-u", "mon-2", "-P", &w.secrets[1]],
    ] {
        let args = [&mon1[..], &claim].concat();
        let out = mosquitto_pub(&w, port, &obs("mon-2"), &foreign, &args);
        assert!(!out.status.success(), "{claim:?} was accepted");
        assert!(text(&out).contains("not authorised"), "{}", text(&out));
    }
    let args = [&mon1[..], &["-i", "mon-1", "-V", "5", "-d"]].concat();
    let out = mosquitto_pub(&w, port, &obs("mon-2"), &foreign, &args);
    assert!(text(&out).contains("RC:135"), "{}", text(&out));
    // A wrong secret is refused although the certificate is good.
    let args = [&mon1[..], &["-u", "mon-1", "-P", "wrong"]].concat();
    let out = mosquitto_pub(&w, port, &obs("mon-1"), &foreign, &args);
    assert!(!out.status.success(), "{}", text(&out));

    // A certificate from the CA for a device that is not registered.
    let (cert, key) = w.device("stranger");
    let out = mosquitto_pub(
        &w,
        port,
        &obs("stranger"),
        READING,
        &["--cert", &cert, "--key", &key, "-i", "stranger"],
    );
    assert!(!out.status.success(), "{}", text(&out));
    // A certificate naming mon-1 from another CA fails the handshake.
    let other = w.dir.path().join("other-ca");
    vigil(&[
        "dev-ca",
        "--out",
        other.to_str().unwrap(),
        "--device",
        "mon-1",
    ]);
    let forged_cert = other.join("devices/mon-1.pem");
    let forged_key = other.join("devices/mon-1.key");
    let out = mosquitto_pub(
        &w,
        port,
        &obs("mon-1"),
        &foreign,
        &[
            "--cert",
            forged_cert.to_str().unwrap(),
            "--key",
            forged_key.to_str().unwrap(),
            "-i",
            "mon-1",
        ],
    );
    assert!(!out.status.success(), "{}", text(&out));
    let m = metrics(&w, &server);
    assert!(
        m.contains(
            r#"vigil_tls_handshakes_failed_total{listener="MQTT",reason="client_certificate"} 1"#
        ),
        "{m}"
    );
    // No password and no certificate.
    let out = mosquitto_pub(&w, port, &obs("mon-1"), &foreign, &["-i", "mon-1"]);
    assert!(!out.status.success(), "{}", text(&out));
    // Plain MQTT to the TLS port.
    let out = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-u", "mon-2", "-P", &w.secrets[1]])
        .args(["-t", &obs("mon-2"), "-q", "1", "-m", &foreign])
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", text(&out));

    // What was accepted is stored (the repeat of 10:15 is a duplicate); nothing refused is.
    let p1 = observations(&w, &server, "p1");
    assert_eq!(p1.len(), 2, "{p1:?}");
    assert!(
        p1.iter()
            .all(|o| o["device"]["reference"] == "Device/mon-1")
    );
    let p2 = observations(&w, &server, "p2");
    assert_eq!(p2.len(), 1, "{p2:?}");
    assert_eq!(p2[0]["valueQuantity"]["value"], 72);
    assert!(
        !p2[0]["effectiveDateTime"]
            .as_str()
            .unwrap()
            .contains("11:00")
    );
}

#[test]
fn http_device_ingest_accepts_a_certificate_naming_the_device_instead_of_its_secret() {
    let w = Ward::new();
    let server = Server::start(&w);
    let ca = w.ca();
    let (cert, key) = w.device("mon-1");
    let post = |device: &str, auth: &[&str]| {
        let url = format!("{}/api/v1/devices/{device}/obs", server.http);
        let mut args = vec![
            "--cacert",
            ca.to_str().unwrap(),
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-H",
            "content-type: application/json",
            "--data",
            READING,
        ];
        args.extend_from_slice(auth);
        args.push(&url);
        let out = curl(&args);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(post("mon-1", &["--cert", &cert, "--key", &key]), "202");
    // Another device's URL with mon-1's certificate, even with that device's secret.
    assert_eq!(post("mon-2", &["--cert", &cert, "--key", &key]), "403");
    let basic = format!("mon-2:{}", w.secrets[1]);
    assert_eq!(
        post("mon-2", &["--cert", &cert, "--key", &key, "-u", &basic]),
        "403"
    );
    // Neither a certificate nor a secret.
    assert_eq!(post("mon-1", &[]), "401");
    // The secret alone still works over HTTPS.
    assert_eq!(post("mon-2", &["-u", &basic]), "202");
    assert_eq!(observations(&w, &server, "p1").len(), 1);
    assert_eq!(observations(&w, &server, "p2").len(), 1);
}

/// Sends one framed HL7 message over TLS with python's ssl module; returns the framed answer.
fn mllp_over_tls(w: &Ward, port: u16, message: &Path, cert: Option<(&str, &str)>) -> String {
    const CLIENT: &str = r#"
import socket, ssl, sys
port, cafile, message = int(sys.argv[1]), sys.argv[2], sys.argv[3]
context = ssl.create_default_context(cafile=cafile)
if len(sys.argv) > 4:
    context.load_cert_chain(sys.argv[4], sys.argv[5])
with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
    with context.wrap_socket(raw, server_hostname="localhost") as tls:
        tls.sendall(open(message, "rb").read())
        answer = b""
        while not answer.endswith(b"\x1c\r"):
            chunk = tls.recv(65536)
            if not chunk:
                break
            answer += chunk
        sys.stdout.write(tls.version() + "\n" + answer.decode())
"#;
    let mut command = Command::new("python3");
    command
        .args(["-c", CLIENT, &port.to_string()])
        .arg(w.ca())
        .arg(message);
    if let Some((cert, key)) = cert {
        command.args([cert, key]);
    }
    let out = command.output().expect("python3 is installed");
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn msa(answer: &str) -> String {
    answer
        .split(['\r', '\n'])
        .find(|s| s.starts_with("MSA|"))
        .unwrap_or_else(|| panic!("no MSA in {answer:?}"))
        .split('|')
        .nth(1)
        .unwrap()
        .to_owned()
}

#[test]
fn mllp_over_tls_acknowledges_and_a_certificate_must_name_the_msh3_sender() {
    let w = Ward::new();
    let server = Server::start(&w);
    // MSH-3 SPOTCHECK, PID-3 MRN20002 (p1), MSH-16 AL: an ACK is always wanted.
    let message = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../vigil-codecs/tests/data/hl7/oru_02_ward_spotcheck.mllp");

    let answer = mllp_over_tls(&w, server.mllp_port, &message, None);
    assert!(answer.starts_with("TLSv1.3\n"), "{answer}");
    assert_eq!(msa(&answer), "AA", "{answer}");
    let stored = observations(&w, &server, "p1").len();
    assert!(stored > 0);

    let (cert, key) = w.device("SPOTCHECK");
    let answer = mllp_over_tls(&w, server.mllp_port, &message, Some((&cert, &key)));
    assert_eq!(msa(&answer), "AA", "{answer}");

    // mon-1's certificate cannot send in SPOTCHECK's name.
    let (cert, key) = w.device("mon-1");
    let answer = mllp_over_tls(&w, server.mllp_port, &message, Some((&cert, &key)));
    assert_eq!(msa(&answer), "AR", "{answer}");
    assert_eq!(observations(&w, &server, "p1").len(), stored);
}

/// `vigil serve` with `args`; returns (stdout up to the HTTP line, stderr so far) or the failed
/// process's stderr.
fn serve_once(data: &Path, args: &[&str]) -> Result<(String, String), String> {
    let mut child = vigil_cmd()
        .arg("serve")
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env("VIGIL_LOG", "warn")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = String::new();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let started = loop {
        match lines.next() {
            Some(Ok(line)) => {
                stdout.push_str(&line);
                stdout.push('\n');
                if line.trim().starts_with("HTTP API") {
                    break true;
                }
            }
            _ => break false,
        }
    };
    if started {
        let _ = child.kill();
    }
    let _ = child.wait();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    if started {
        Ok((stdout, stderr))
    } else {
        Err(stderr)
    }
}

#[test]
fn a_public_listener_needs_tls_or_an_explicit_allow_plaintext() {
    let w = Ward::new();
    let data = w.data();
    let loopback_mqtt = ["--mqtt", "127.0.0.1:0"];

    let err = serve_once(
        &data,
        &[&["--http", "0.0.0.0:0"][..], &loopback_mqtt].concat(),
    )
    .expect_err("a public plaintext HTTP listener started");
    assert!(
        err.contains("refusing to expose the HTTP listener on 0.0.0.0:0 without TLS"),
        "{err}"
    );
    assert!(
        err.contains("--allow-plaintext") && err.contains("--tls-cert"),
        "{err}"
    );
    let err = serve_once(&data, &["--http", "127.0.0.1:0", "--mqtt", "0.0.0.0:0"])
        .expect_err("a public plaintext MQTT listener started");
    assert!(err.contains("the MQTT listener"), "{err}");

    let (stdout, stderr) = serve_once(
        &data,
        &[
            &["--http", "0.0.0.0:0", "--allow-plaintext"][..],
            &loopback_mqtt,
        ]
        .concat(),
    )
    .expect("--allow-plaintext starts");
    assert!(stdout.contains("http://0.0.0.0:"), "{stdout}");
    assert!(stderr.contains("PLAINTEXT listener"), "{stderr}");

    // With TLS a public address is fine, and nothing warns.
    let tls = w.tls_args();
    let tls: Vec<&str> = tls.iter().map(String::as_str).collect();
    let (stdout, stderr) = serve_once(
        &data,
        &[&["--http", "0.0.0.0:0"][..], &loopback_mqtt, &tls].concat(),
    )
    .expect("TLS on a public address starts");
    assert!(stdout.contains("https://0.0.0.0:"), "{stdout}");
    assert!(!stderr.contains("PLAINTEXT"), "{stderr}");

    // A key that is not there stops start-up, naming the file.
    let err = serve_once(
        &data,
        &[
            "--http",
            "127.0.0.1:0",
            "--mqtt",
            "127.0.0.1:0",
            "--tls-cert",
            &w.ca_file("server.pem"),
            "--tls-key",
            "/nonexistent/server.key",
        ],
    )
    .expect_err("started without its key");
    assert!(err.contains("/nonexistent/server.key"), "{err}");
}

#[test]
fn the_demo_runs_its_ward_over_tls_with_a_development_ca_it_says_is_one() {
    let dir = tempfile::tempdir().unwrap();
    let out = vigil_cmd()
        .args([
            "demo",
            "--patients",
            "2",
            "--interval",
            "0.2",
            "--duration",
            "4",
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .env("VIGIL_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", text(&out));
    let ca = dir.path().join("dev-ca/ca.pem");
    assert!(stdout.contains("HTTP API   https://"), "{stdout}");
    assert!(stdout.contains("mqtts://"), "{stdout}");
    assert!(
        stdout.contains("DEVELOPMENT certificate authority"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("curl --cacert {}", ca.display())),
        "{stdout}"
    );
    // The simulated monitors got their readings in over MQTT over TLS.
    let stored: u64 = stdout
        .lines()
        .find_map(|l| l.strip_suffix(" observations stored."))
        .expect("the demo reports what it stored")
        .trim()
        .parse()
        .unwrap();
    assert!(stored > 0, "{stdout}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for key in ["ca.key", "server.key"] {
            let mode = std::fs::metadata(dir.path().join("dev-ca").join(key))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{key}");
        }
    }
}
