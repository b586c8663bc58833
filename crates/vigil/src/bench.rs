//! `vigil bench`: the same MQTT QoS 1 load against a plain Mosquitto broker and against Vigil, in
//! one run, on this machine. Vigil acknowledges only after the reading is durably committed
//! (SQLite WAL, synchronous=FULL); Mosquitto acknowledges on receipt (no persistence), so the
//! comparison is "a hub that stores and validates" against "a broker that only forwards".

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use vigil_model::{Device, DeviceId, DeviceKind, Patient, PatientId};
use vigil_server::auth;
use vigil_sim::load::{self, LoadConfig, LoadReport};

use crate::config::{open_store, store_key};

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Simulated devices, one MQTT connection each.
    #[arg(long, default_value_t = 100)]
    pub devices: usize,
    /// QoS 1 publishes in flight per connection.
    #[arg(long, default_value_t = 64)]
    pub window: usize,
    /// Measured seconds per broker.
    #[arg(long, default_value_t = 20)]
    pub duration: u64,
    /// The Mosquitto binary.
    #[arg(long, default_value = "mosquitto")]
    pub mosquitto: String,
    /// Skip the Mosquitto run (Vigil only).
    #[arg(long)]
    pub no_mosquitto: bool,
    /// Instead of the ingest comparison, measure reading-received → alarm-on-the-stream latency
    /// under a background load of `--background-rate` readings/s.
    #[arg(long)]
    pub alarm_latency: bool,
    /// Background readings per second for `--alarm-latency`.
    #[arg(long, default_value_t = 10_000)]
    pub background_rate: u32,
    /// Instead of the MQTT comparison, measure HL7 v2 messages/s through MLLP (one connection
    /// per `--devices`, ACK after commit).
    #[arg(long)]
    pub hl7: bool,
}

pub(crate) struct Reaped(pub(crate) Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A benchmark's store: a data directory and, beside it (not inside), its key file, both in a
/// temporary directory removed on drop. Encrypted like a production store, so the figures
/// include encryption.
pub(crate) struct BenchStore {
    work: tempfile::TempDir,
    pub(crate) data_dir: PathBuf,
    pub(crate) key_file: PathBuf,
}

impl BenchStore {
    pub(crate) fn new() -> anyhow::Result<BenchStore> {
        let work = tempfile::tempdir()?;
        Ok(BenchStore {
            data_dir: work.path().join("vigil"),
            key_file: work.path().join("store.key"),
            work,
        })
    }

    /// A scratch path inside the benchmark's temporary directory (not the data directory).
    pub(crate) fn scratch(&self, name: &str) -> PathBuf {
        self.work.path().join(name)
    }

    pub(crate) fn open(&self) -> anyhow::Result<std::sync::Arc<dyn vigil_store::Store>> {
        let key = store_key(&self.data_dir, Some(&self.key_file))?;
        open_store(&self.data_dir, &key)
    }
}

/// Starts `vigil serve` on free loopback ports; returns the process (killed on drop), the HTTP
/// port and the MQTT address once it accepts connections.
pub(crate) async fn start_vigil(store: &BenchStore) -> anyhow::Result<(Reaped, u16, SocketAddr)> {
    let http = free_port()?;
    let mqtt = free_port()?;
    // The load generator sends far faster per connection than any device: lift the per-device
    // MQTT rate limit (docs/defence.md) so the benchmark measures ingest, not the limit.
    let config = store.data_dir.join("bench-vigil.toml");
    std::fs::write(
        &config,
        "[defence]\nmqtt_per_device = { requests_per_second = 0 }\nhttp_per_client = { requests_per_second = 0 }\nhttp_per_device = { requests_per_second = 0 }\n",
    )
    .context("writing the benchmark's configuration")?;
    let child = Command::new(std::env::current_exe()?)
        .args(["serve", "--data-dir"])
        .arg(&store.data_dir)
        .arg("--key-file")
        .arg(&store.key_file)
        .arg("--config")
        .arg(&config)
        .args([
            "--http",
            &format!("127.0.0.1:{http}"),
            "--mqtt",
            &format!("127.0.0.1:{mqtt}"),
        ])
        .env("VIGIL_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .context("starting vigil serve")?;
    let guard = Reaped(child);
    let addr: SocketAddr = format!("127.0.0.1:{mqtt}").parse()?;
    wait_for_port(addr).await?;
    Ok((guard, http, addr))
}

/// Registers `n` wearables, each bound to its own patient since yesterday; returns their MQTT
/// credentials.
pub(crate) fn register_load_devices(
    store: &std::sync::Arc<dyn vigil_store::Store>,
    n: usize,
) -> anyhow::Result<Vec<(String, Option<String>)>> {
    let mut devices = Vec::with_capacity(n);
    for i in 0..n {
        let pid = PatientId::new(format!("bench-p{i:05}"))?;
        let did = DeviceId::new(format!("bench-d{i:05}"))?;
        store.create_patient(&Patient::new(pid.clone(), format!("Bench Patient {i}")))?;
        let secret = auth::new_device_secret();
        store.create_device(
            &Device::new(did.clone(), DeviceKind::new(DeviceKind::WEARABLE)),
            &auth::hash_device_secret(&secret),
        )?;
        store.bind(&did, &pid, chrono::Utc::now() - chrono::Duration::days(1))?;
        devices.push((did.to_string(), Some(secret)));
    }
    Ok(devices)
}

pub(crate) fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

pub(crate) async fn wait_for_port(addr: SocketAddr) -> anyhow::Result<()> {
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("nothing is listening on {addr} after 10 s")
}

fn find_mosquitto(name: &str) -> Option<PathBuf> {
    let candidates = [
        PathBuf::from(name),
        PathBuf::from("/usr/sbin/mosquitto"),
        PathBuf::from("/usr/local/sbin/mosquitto"),
    ];
    candidates.into_iter().find(|p| p.is_file()).or_else(|| {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(name))
                .find(|p| p.is_file())
        })
    })
}

fn print_report(name: &str, r: &LoadReport) {
    let h = &r.latency_us;
    println!(
        "| {name:<9} | {:>10.0} | {:>8.2} | {:>8.2} | {:>8.2} | {:>8.2} |",
        r.rate(),
        h.value_at_quantile(0.50) as f64 / 1000.0,
        h.value_at_quantile(0.99) as f64 / 1000.0,
        h.value_at_quantile(0.999) as f64 / 1000.0,
        h.max() as f64 / 1000.0
    );
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    if args.hl7 {
        return crate::bench_hl7::run(args).await;
    }
    if args.alarm_latency {
        return crate::bench_latency::run(args).await;
    }
    let store = BenchStore::new()?;
    let n = args.devices.max(1);

    // Register the devices, each bound to its own patient.
    let devices = register_load_devices(&store.open()?, n)?;
    let load_config = |addr: SocketAddr, devices: Vec<(String, Option<String>)>| LoadConfig {
        addr,
        devices,
        qos: 1,
        window: args.window,
        rate_per_device: None,
        duration: Duration::from_secs(args.duration),
        warmup: Duration::from_secs(3),
    };

    println!(
        "Load: {n} connections, single-reading QoS 1 publishes, {} in flight per connection, {} s measured per broker.",
        args.window, args.duration
    );
    println!();
    println!("| broker    | messages/s | p50 ms   | p99 ms   | p99.9 ms | max ms   |");
    println!("|-----------|-----------:|---------:|---------:|---------:|---------:|");

    let mut mosquitto_rate = None;
    if !args.no_mosquitto {
        let binary = find_mosquitto(&args.mosquitto)
            .context("mosquitto not found (apt-get install mosquitto, or --no-mosquitto)")?;
        let port = free_port()?;
        let conf = store.scratch("mosquitto.conf");
        // Limits set explicitly: a stock Mosquitto drops QoS 1 messages in bursts.
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_inflight_messages 0\nmax_queued_messages 0\nmax_queued_bytes 0\nlog_type error\n"
            ),
        )?;
        let child = Command::new(binary)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting mosquitto")?;
        let _guard = Reaped(child);
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
        wait_for_port(addr).await?;
        let anonymous = devices.iter().map(|(d, _)| (d.clone(), None)).collect();
        let report = load::run(load_config(addr, anonymous)).await?;
        if report.connect_failures > 0 {
            bail!(
                "{} load connections to mosquitto failed",
                report.connect_failures
            );
        }
        print_report("mosquitto", &report);
        mosquitto_rate = Some(report.rate());
    }

    let (_guard, _http, addr) = start_vigil(&store).await?;
    let report = load::run(load_config(addr, devices)).await?;
    if report.connect_failures > 0 {
        bail!(
            "{} load connections to vigil failed",
            report.connect_failures
        );
    }
    print_report("vigil", &report);

    // Check the claim behind the numbers: what was acknowledged is stored.
    let stored = stored_observations(&store)?;
    println!();
    if let Some(m) = mosquitto_rate {
        println!(
            "Vigil / Mosquitto throughput ratio: {:.2}",
            report.rate() / m
        );
    }
    println!("Observations durably stored by Vigil during the run (incl. warm-up): {stored}");
    Ok(())
}

/// Counts stored observations straight from the data directory.
fn stored_observations(store: &BenchStore) -> anyhow::Result<u64> {
    Ok(store.open()?.stats()?.observations)
}
