//! `vigil`: the one binary. Parses the command line and configuration, then hands over to the
//! library crates. `anyhow` lives only here.

mod admin;
mod at_rest;
mod audit;
mod bench;
mod bench_alarms;
mod bench_hl7;
mod bench_latency;
mod config;
mod demo;
mod demo_people;
mod dev_ca;
mod people;
mod sim;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Vigil — an Internet-of-Medical-Things hub: takes readings from medical devices over MQTT and
/// HTTP, validates and normalises them (LOINC, UCUM, IEEE 11073), stores them durably, watches
/// every patient (NEWS2, threshold, trend and technical alarms) and serves it all as FHIR R4 and a
/// live stream.
#[derive(Parser)]
#[command(name = "vigil", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the hub: HTTP API (FHIR, device ingest, health, metrics) and the embedded MQTT broker.
    Serve(config::ServeArgs),
    /// Try Vigil in one command: a simulated ward of 20 patients streaming vital signs into an
    /// embedded hub, with URLs and a clinician token printed.
    Demo(demo::DemoArgs),
    /// Write a local development CA, a server certificate for localhost and client certificates
    /// for devices (mutual TLS). For development and tests only.
    DevCa(dev_ca::DevCaArgs),
    /// Manage patients in a data directory (works while the server runs).
    #[command(subcommand)]
    Patient(admin::PatientCommand),
    /// Register devices and bind them to patients (works while the server runs).
    #[command(subcommand)]
    Device(admin::DeviceCommand),
    /// Manage local accounts (logins for the web UI and API).
    #[command(subcommand)]
    User(people::UserCommand),
    /// Manage care teams: which clinicians look after which patients and wards.
    #[command(subcommand)]
    Team(people::TeamCommand),
    /// Issue API bearer tokens for people and systems.
    #[command(subcommand)]
    Token(admin::TokenCommand),
    /// Check, anchor and search the tamper-evident audit trail (see docs/audit.md).
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Maintain the encrypted store: change its key, encrypt an older plaintext store (the
    /// server must be stopped).
    #[command(subcommand)]
    Store(at_rest::StoreCommand),
    /// Write an encrypted, consistent copy of the store to a file (works while the server runs).
    Backup(at_rest::BackupArgs),
    /// Make a backup file the store of a new data directory.
    Restore(at_rest::RestoreArgs),
    /// Simulate a ward of devices against any MQTT broker, or generate load.
    Sim(sim::SimArgs),
    /// Measure Vigil against a plain Mosquitto broker under the same QoS 1 load.
    Bench(bench::BenchArgs),
    /// Measure the alarm burden: the demo ward for a simulated day through the real decoder and
    /// rules engine, against naive single-threshold alarming (no server; deterministic).
    BenchAlarms(bench_alarms::BenchAlarmsArgs),
}

/// The data directory and the key its store is encrypted with, shared by every command that
/// touches storage.
#[derive(Args, Clone, Debug)]
pub struct DataDir {
    /// Directory holding Vigil's database and keys.
    #[arg(long, env = "VIGIL_DATA_DIR", value_name = "DIR")]
    pub data_dir: PathBuf,
    /// File holding the key the store is encrypted with, outside the data directory; created
    /// (owner-only) together with a new store. See docs/encryption.md.
    #[arg(long, env = "VIGIL_KEY_FILE", value_name = "FILE")]
    pub key_file: Option<PathBuf>,
}

impl DataDir {
    /// Opens the data directory's encrypted store.
    pub fn open_store(&self) -> anyhow::Result<std::sync::Arc<dyn vigil_store::Store>> {
        let key = config::store_key(&self.data_dir, self.key_file.as_deref())?;
        config::open_store(&self.data_dir, &key)
    }
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("VIGIL_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("VIGIL_LOG_FORMAT").is_ok_and(|f| f == "json");
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn main() -> anyhow::Result<()> {
    // Before anything builds a TLS configuration: two crypto providers are compiled in.
    vigil_server::tls::install_crypto_provider();
    let cli = Cli::parse();
    init_tracing();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Serve(args) => runtime.block_on(config::serve(args)),
        Command::Demo(args) => runtime.block_on(demo::run(args)),
        Command::DevCa(args) => dev_ca::run(args),
        Command::Patient(cmd) => admin::patient(cmd),
        Command::Device(cmd) => admin::device(cmd),
        Command::Token(cmd) => admin::token(cmd),
        Command::User(cmd) => people::user(cmd),
        Command::Team(cmd) => people::team(cmd),
        Command::Audit(cmd) => audit::run(cmd),
        Command::Store(cmd) => at_rest::store(cmd),
        Command::Backup(args) => at_rest::backup(args),
        Command::Restore(args) => at_rest::restore(args),
        Command::Sim(args) => runtime.block_on(sim::run(args)),
        Command::Bench(args) => runtime.block_on(bench::run(args)),
        Command::BenchAlarms(args) => bench_alarms::run(args),
    }
}
