//! `vigil demo`: the whole product on one machine in one command.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use tokio_util::sync::CancellationToken;
use vigil_model::{Device, DeviceId, DeviceKind, Patient, PatientId};
use vigil_server::auth::{self, Role, TokenKeys};
use vigil_sim::devices::{WardConfig, WardStats, run_ward};

use crate::config::{open_store, store_key};

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Keep the demo's data here (default: a fresh temporary directory, removed on exit).
    #[arg(long, value_name = "DIR", requires = "key_file")]
    pub data_dir: Option<PathBuf>,
    /// The store's key file, outside the data directory (required with --data-dir; default: a
    /// new key in its own temporary directory, removed on exit).
    #[arg(long, value_name = "FILE", env = "VIGIL_KEY_FILE")]
    pub key_file: Option<PathBuf>,
    /// Patients on the simulated ward.
    #[arg(long, default_value_t = 20)]
    pub patients: usize,
    /// Seconds between two messages of one bedside monitor.
    #[arg(long, default_value_t = 1.0)]
    pub interval: f64,
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long)]
    pub duration: Option<u64>,
    /// Run without TLS (http://, mqtt://). By default the demo makes a development CA in its
    /// data directory and serves https:// and mqtts://.
    #[arg(long)]
    pub plaintext: bool,
}

/// The simulated devices' TLS client: trusts the demo's development CA only.
fn ward_tls(ca: &std::path::Path) -> anyhow::Result<rumqttc::TlsConfiguration> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in vigil_server::tls::read_certificates(ca)? {
        roots.add(cert)?;
    }
    let config = rustls::ClientConfig::builder_with_provider(vigil_server::tls::crypto_provider())
        .with_protocol_versions(vigil_server::tls::PROTOCOL_VERSIONS)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(rumqttc::TlsConfiguration::Rustls(Arc::new(config)))
}

/// Binds the preferred address if free, otherwise any free port on loopback.
async fn free_addr(preferred: &str) -> SocketAddr {
    let preferred: SocketAddr = preferred.parse().expect("valid literal");
    match tokio::net::TcpListener::bind(preferred).await {
        Ok(_) => preferred,
        Err(_) => "127.0.0.1:0".parse().expect("valid literal"),
    }
}

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let (data_dir, temporary) = match args.data_dir {
        Some(dir) => (dir, false),
        None => (
            std::env::temp_dir().join(format!("vigil-demo-{}", std::process::id())),
            true,
        ),
    };
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    // The store is encrypted like a real one; its key lives apart from the data, in a directory
    // of its own.
    let (key_file, temporary_key) = match args.key_file {
        Some(file) => (file, None),
        None => {
            let dir = tempfile::Builder::new()
                .prefix("vigil-demo-key-")
                .tempdir()
                .context("creating a temporary directory for the demo's store key")?;
            (dir.path().join("store.key"), Some(dir))
        }
    };
    let key = store_key(&data_dir, Some(&key_file))?;
    let store = open_store(&data_dir, &key)?;

    // The ward: patients, their monitors, and the monitors' secrets (kept in memory only).
    let patients = vigil_sim::ward::ward(args.patients.clamp(1, 500), 2026);
    let mut secrets = std::collections::HashMap::new();
    for p in &patients {
        let pid = PatientId::new(p.id.clone())?;
        let did = DeviceId::new(p.device_id.clone())?;
        if store.patient(&pid)?.is_none() {
            store.create_patient(&Patient::new(pid.clone(), p.name.clone()))?;
        }
        let secret = auth::new_device_secret();
        if store.device(&did)?.is_none() {
            let mut device = Device::new(
                did.clone(),
                DeviceKind::new(DeviceKind::MULTIPARAMETER_MONITOR),
            );
            device.manufacturer = Some("Vigil Simulated Devices".into());
            device.model = Some("SimMonitor 1".into());
            device.serial = Some(format!("SIM-{}", p.device_id));
            store.create_device(&device, &auth::hash_device_secret(&secret))?;
            store.bind(
                &did,
                &pid,
                chrono::Utc::now() - chrono::Duration::minutes(1),
            )?;
            secrets.insert(p.device_id.clone(), secret);
        }
        if let Some(pendant) = &p.pendant {
            let did = DeviceId::new(pendant.device_id.clone())?;
            if store.device(&did)?.is_none() {
                let secret = auth::new_device_secret();
                let mut device = Device::new(did.clone(), DeviceKind::new(DeviceKind::WEARABLE));
                device.manufacturer = Some("Vigil Simulated Devices".into());
                device.model = Some("SimPendant 1 (steps, fall detection)".into());
                store.create_device(&device, &auth::hash_device_secret(&secret))?;
                store.bind(
                    &did,
                    &pid,
                    chrono::Utc::now() - chrono::Duration::minutes(1),
                )?;
                secrets.insert(pendant.device_id.clone(), secret);
            }
        }
    }

    let http = free_addr("127.0.0.1:8080").await;
    let mqtt = free_addr("127.0.0.1:1883").await;
    let dev_ca = if args.plaintext {
        None
    } else {
        Some(crate::dev_ca::ensure(&data_dir.join("dev-ca"), &[], &[])?)
    };
    let mut config = vigil_server::ServerConfig::new(data_dir.clone(), http, Some(mqtt));
    config.tls = dev_ca.as_ref().map(crate::dev_ca::DevCa::tls_settings);
    config.secure_cookies = config.tls.is_some();
    config.store_key = Some(key.clone());
    let server = vigil_server::start(config, store.clone()).await?;
    let mqtt_addr = server
        .mqtt_addr
        .context("the demo runs the embedded broker")?;
    let token = TokenKeys::load_or_create(&data_dir)?.issue(
        Role::Clinician,
        "demo-clinician",
        chrono::Duration::hours(12),
    )?;
    let patient_ids = patients
        .iter()
        .map(|p| PatientId::new(p.id.clone()))
        .collect::<Result<Vec<_>, _>>()?;
    let home = patient_ids
        .get(3)
        .or(patient_ids.first())
        .cloned()
        .context("the demo ward has patients")?;
    let logins = crate::demo_people::set_up(store.as_ref(), &patient_ids, &home, "demo-clinician")?;
    let (base, mqtt_url, curl) = match &dev_ca {
        Some(ca) => (
            format!("https://{}", server.http_addr),
            format!("mqtts://{mqtt_addr}"),
            format!("curl --cacert {}", ca.ca_cert.display()),
        ),
        None => (
            format!("http://{}", server.http_addr),
            format!("mqtt://{mqtt_addr}"),
            "curl".to_owned(),
        ),
    };

    println!();
    println!(
        "Vigil demo: a simulated ward of {} patients is streaming vital signs.",
        patients.len()
    );
    println!();
    println!("  HTTP API   {base}");
    println!("  FHIR       {base}/fhir/metadata");
    println!(
        "  MQTT       {mqtt_url}   (devices: user name = device id, password = device secret)"
    );
    println!("  Metrics    {base}/metrics");
    println!(
        "  Data       {}{}",
        data_dir.display(),
        if temporary {
            "  (temporary, removed on exit)"
        } else {
            ""
        }
    );
    if let Some(ca) = &dev_ca {
        println!();
        println!(
            "  TLS uses a DEVELOPMENT certificate authority {} for this demo: {}",
            if ca.created { "made" } else { "reused" },
            ca.ca_cert.display()
        );
        println!(
            "  It is not a real authority and is trusted by nothing else. Trust it only for this demo,"
        );
        println!(
            "  per command: curl --cacert {0}   mosquitto_sub --cafile {0}",
            ca.ca_cert.display()
        );
        println!("  (vigil demo --plaintext runs without TLS.)");
    }
    println!(
        "  Store key  {}{}  (the store is encrypted at rest; the key is kept outside the data directory)",
        key_file.display(),
        if temporary_key.is_some() {
            "  (temporary, removed on exit)"
        } else {
            ""
        }
    );
    println!();
    println!("  Sign in (passwords are new at every start):");
    for login in &logins {
        println!(
            "    {:<18} {:<10} {}   sees {}",
            login.account,
            login.role.as_str(),
            login.password,
            login.sees
        );
    }
    if let Some(nurse) = logins.first() {
        println!("  For example, as the nurse (a session cookie in nurse.jar):");
        println!(
            "  {curl} -s -c nurse.jar -H 'Content-Type: application/json' -d '{{\"username\":\"{}\",\"password\":\"{}\"}}' '{base}/api/v1/login'",
            nurse.account, nurse.password
        );
        println!("  {curl} -s -b nurse.jar '{base}/fhir/Patient?_count=5'");
    }
    println!();
    println!("  Clinician token (12 h), ready to paste into another terminal:");
    println!("  export TOKEN={token}");
    println!();
    println!("  Then try:");
    for example in [
        format!(
            "{curl} -s -H \"Authorization: Bearer $TOKEN\" '{base}/fhir/Observation?patient=pat-004&code=http://loinc.org|8867-4&_sort=-date&_count=5'"
        ),
        format!("{curl} -s -H \"Authorization: Bearer $TOKEN\" '{base}/fhir/Patient?name=havel'"),
        format!(
            "{curl} -s -H \"Authorization: Bearer $TOKEN\" '{base}/api/v1/patients/pat-004/news2'"
        ),
        format!(
            "{curl} -sN -H \"Authorization: Bearer $TOKEN\" '{base}/api/v1/stream' | grep -A1 'event: alarm'"
        ),
        format!("{curl} -s -H \"Authorization: Bearer $TOKEN\" '{base}/api/v1/alerts'"),
        format!("{curl} -s '{base}/metrics' | grep vigil_readings"),
    ] {
        println!("  {example}");
    }
    let sick: Vec<String> = patients
        .iter()
        .filter(|p| p.scenario.name() != "stable")
        .map(|p| format!("{} ({})", p.id, p.scenario.name()))
        .collect();
    println!();
    println!(
        "  Scripted deteriorations, starting within minutes: {}",
        sick.join(", ")
    );
    println!(
        "  Their NEWS2 climbs and alarms appear on the live stream within about three minutes."
    );
    if let Some(faller) = patients
        .iter()
        .find(|p| p.pendant.as_ref().is_some_and(|d| d.fall_at_s.is_some()))
    {
        println!(
            "  {} wears a fall-detecting pendant and falls after 90 s: a high-priority event alarm.",
            faller.id
        );
    }
    println!("  Stop with Ctrl-C.");
    println!();

    let stop = CancellationToken::new();
    let stats = Arc::new(WardStats::default());
    let ward_config = WardConfig {
        host: mqtt_addr.ip().to_string(),
        port: mqtt_addr.port(),
        qos: 1,
        interval: Duration::from_secs_f64(args.interval.max(0.05)),
        spot_check_every: 30,
        tls: dev_ca
            .as_ref()
            .map(|ca| ward_tls(&ca.ca_cert))
            .transpose()?,
    };
    let ward = tokio::spawn(run_ward(
        patients,
        move |d| secrets.get(d).cloned(),
        ward_config,
        stats.clone(),
        stop.clone(),
    ));

    let progress_store = store.clone();
    let progress_stop = stop.clone();
    let progress_stats = stats.clone();
    let progress = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(10));
        tick.tick().await;
        loop {
            tokio::select! {
                _ = progress_stop.cancelled() => break,
                _ = tick.tick() => {}
            }
            let s = progress_store.clone();
            if let Ok(Ok(st)) = tokio::task::spawn_blocking(move || s.stats()).await {
                tracing::info!(
                    observations_stored = st.observations,
                    messages_acknowledged = progress_stats.acknowledged.load(Ordering::Relaxed),
                    error_reports = progress_stats.error_reports.load(Ordering::Relaxed),
                    "demo running"
                );
            }
        }
    });

    match args.duration {
        Some(secs) => {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(secs)) => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        None => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    println!("stopping…");
    stop.cancel();
    let _ = ward.await;
    let _ = progress.await;
    server.shutdown().await;
    let stored = store.stats()?.observations;
    drop(store);
    println!("{stored} observations stored.");
    if temporary {
        let _ = std::fs::remove_dir_all(&data_dir);
    }
    drop(temporary_key);
    Ok(())
}
