//! `vigil serve` configuration: a TOML file (`--config`), overridden by `VIGIL_*` environment
//! variables, overridden by flags. Unknown keys are an error; everything is validated into a
//! `ServerConfig` before anything starts.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Args;
use serde::Deserialize;
use vigil_rules::cohort::{Cohort, Cohorts};
use vigil_rules::technical::Expectation;

/// Flags of `vigil serve`; each may also come from the environment or the config file.
#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// TOML configuration file (see examples/vigil.toml).
    #[arg(long, env = "VIGIL_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Directory holding Vigil's database and keys.
    #[arg(long, env = "VIGIL_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// File holding the key the store is encrypted with, outside the data directory; created
    /// (owner-only) together with a new store. See docs/encryption.md.
    #[arg(long, env = "VIGIL_KEY_FILE", value_name = "FILE")]
    pub key_file: Option<PathBuf>,
    /// Address for the HTTP API [default: 127.0.0.1:8080].
    #[arg(long, env = "VIGIL_HTTP", value_name = "ADDR")]
    pub http: Option<SocketAddr>,
    /// Address for the embedded MQTT broker [default: 127.0.0.1:1883].
    #[arg(long, env = "VIGIL_MQTT", value_name = "ADDR")]
    pub mqtt: Option<SocketAddr>,
    /// Run without the embedded MQTT broker.
    #[arg(long)]
    pub no_mqtt: bool,
    /// Address for the HL7 v2 MLLP listener (bedside monitors, gateways) [default: off].
    #[arg(long, env = "VIGIL_MLLP", value_name = "ADDR")]
    pub mllp: Option<SocketAddr>,
    /// Base URL clients use to reach the API (for FHIR links), e.g. https://vigil.example.org.
    #[arg(long, env = "VIGIL_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,
    /// Listen on non-loopback addresses without TLS (TLS arrives with the security work; until
    /// then this must be said explicitly).
    #[arg(long, env = "VIGIL_ALLOW_PLAINTEXT")]
    pub allow_plaintext: bool,
}

/// The config file. Every field is optional; flags and environment win.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Directory holding the database and keys.
    pub data_dir: Option<PathBuf>,
    /// HTTP listen address, e.g. "127.0.0.1:8080".
    pub http: Option<SocketAddr>,
    /// Embedded MQTT broker listen address; omit together with `mqtt_enabled = false` to disable.
    pub mqtt: Option<SocketAddr>,
    /// Whether the embedded broker runs (default true).
    pub mqtt_enabled: Option<bool>,
    /// HL7 v2 MLLP listen address, e.g. "127.0.0.1:2575"; omitted: no MLLP listener.
    pub mllp: Option<SocketAddr>,
    /// Public base URL of the API.
    pub public_url: Option<String>,
    /// Allow non-loopback plaintext listeners.
    pub allow_plaintext: Option<bool>,
    /// Cohort rule sets file (TOML); default: the built-in `config/cohorts.toml`.
    pub cohorts: Option<PathBuf>,
    /// What to expect of devices, per device kind (`multiparameter-monitor`, `wearable`, …):
    /// overrides the built-in table of `vigil_rules::technical` for the kinds given.
    #[serde(default)]
    pub devices: BTreeMap<String, Expectation>,
    /// How the store is kept at rest.
    #[serde(default)]
    pub storage: StorageConfig,
}

/// The `[storage]` section.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// File holding the 256-bit key the store is encrypted with (64 hex digits, mode 0600),
    /// outside the data directory, e.g. "/etc/vigil/store.key". Created with a new store.
    pub key_file: Option<PathBuf>,
}

/// The cohort rule sets built into Vigil.
pub const BUILT_IN_COHORTS: &str = include_str!("../../../config/cohorts.toml");

/// Parses and validates a cohorts file.
pub fn parse_cohorts(text: &str, origin: &str) -> anyhow::Result<Cohorts> {
    let raw: BTreeMap<String, Cohort> =
        toml::from_str(text).with_context(|| format!("{origin} is not a valid cohorts file"))?;
    Cohorts::new(raw).with_context(|| format!("{origin} defines an invalid cohort"))
}

pub fn load_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    toml::from_str(&text)
        .with_context(|| format!("{} is not a valid Vigil configuration", path.display()))
}

/// The store's key file: the flag (or `VIGIL_KEY_FILE`), else `[storage] key_file`.
pub fn resolve_key_file(args: &ServeArgs) -> anyhow::Result<Option<PathBuf>> {
    if let Some(key_file) = &args.key_file {
        return Ok(Some(key_file.clone()));
    }
    Ok(match &args.config {
        Some(path) => load_file(path)?.storage.key_file,
        None => None,
    })
}

pub fn resolve(args: ServeArgs) -> anyhow::Result<vigil_server::ServerConfig> {
    let file = match &args.config {
        Some(path) => load_file(path)?,
        None => FileConfig::default(),
    };
    let data_dir = args
        .data_dir
        .or(file.data_dir)
        .context("no data directory: give --data-dir DIR (or VIGIL_DATA_DIR, or data_dir in the config file)")?;
    let http = args
        .http
        .or(file.http)
        .unwrap_or_else(|| "127.0.0.1:8080".parse().expect("valid literal"));
    let mqtt_enabled = !args.no_mqtt && file.mqtt_enabled.unwrap_or(true);
    let mqtt = mqtt_enabled.then(|| {
        args.mqtt
            .or(file.mqtt)
            .unwrap_or_else(|| "127.0.0.1:1883".parse().expect("valid literal"))
    });
    let mllp = args.mllp.or(file.mllp);
    let allow_plaintext = args.allow_plaintext || file.allow_plaintext.unwrap_or(false);
    for (what, addr) in [("HTTP", Some(http)), ("MQTT", mqtt), ("MLLP", mllp)] {
        if let Some(addr) = addr
            && !addr.ip().is_loopback()
        {
            if !allow_plaintext {
                bail!(
                    "refusing to expose the {what} listener on {addr} without TLS; bind to 127.0.0.1 or pass --allow-plaintext if a TLS-terminating proxy is in front"
                );
            }
            tracing::warn!(listener = what, %addr, "plaintext listener on a non-loopback address");
        }
    }
    let mut config = vigil_server::ServerConfig::new(data_dir, http, mqtt);
    config.mllp = mllp;
    config.public_url = args.public_url.or(file.public_url);
    config.cohorts = match &file.cohorts {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            parse_cohorts(&text, &path.display().to_string())?
        }
        None => parse_cohorts(BUILT_IN_COHORTS, "the built-in cohorts file")?,
    };
    for (kind, expectation) in file.devices {
        config.surveillance.watch.kinds.insert(kind, expectation);
    }
    config
        .surveillance
        .watch
        .validate()
        .context("the devices section of the configuration is invalid")?;
    Ok(config)
}

pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let key_file = resolve_key_file(&args)?;
    let config = resolve(args)?;
    let key = store_key(&config.data_dir, key_file.as_deref())?;
    let store = open_store(&config.data_dir, &key)?;
    let server = vigil_server::start(config, store).await?;
    println!("Vigil is running.");
    println!(
        "  HTTP API  http://{}  (FHIR at /fhir, metrics at /metrics)",
        server.http_addr
    );
    if let Some(mqtt) = server.mqtt_addr {
        println!("  MQTT      mqtt://{mqtt}");
    }
    if let Some(mllp) = server.mllp_addr {
        println!("  MLLP      mllp://{mllp}  (HL7 v2 ORU^R01)");
    }
    let token = server.shutdown_token();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        token.cancel();
    });
    #[cfg(unix)]
    {
        let token = server.shutdown_token();
        if let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            tokio::spawn(async move {
                term.recv().await;
                token.cancel();
            });
        }
    }
    server.run_until_stopped().await;
    Ok(())
}

/// The key of the store in `data_dir`, from `key_file` (see [`vigil_store::key::key_for_store`]):
/// refused inside the data directory, created with a new store (and where it went is said on
/// stderr, because losing it loses the data), an error for an existing store without it.
pub fn store_key(
    data_dir: &Path,
    key_file: Option<&Path>,
) -> anyhow::Result<vigil_store::key::StoreKey> {
    let key_file = key_file.context(
        "no key file: the store is encrypted at rest; give --key-file FILE (or VIGIL_KEY_FILE, or key_file in the [storage] section of the config file), outside the data directory",
    )?;
    let (key, origin) = vigil_store::key::key_for_store(data_dir, key_file)?;
    if origin == vigil_store::key::KeyOrigin::Created {
        eprintln!(
            "Created a new store key in {} (owner-only). Keep it safe and apart from the data \
             directory and its backups: without it the store cannot be read.",
            key_file.display()
        );
    }
    Ok(key)
}

/// Opens the encrypted store in `data_dir`.
pub fn open_store(
    data_dir: &Path,
    key: &vigil_store::key::StoreKey,
) -> anyhow::Result<Arc<dyn vigil_store::Store>> {
    let store = vigil_store::sqlite::SqliteStore::open_encrypted(data_dir, key)
        .with_context(|| format!("opening the store in {}", data_dir.display()))?;
    Ok(Arc::new(store))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_an_error() {
        let err =
            toml::from_str::<FileConfig>("data_dir = \"/x\"\nhtpp = \"1.2.3.4:5\"\n").unwrap_err();
        assert!(err.to_string().contains("htpp"), "{err}");
    }

    fn args() -> ServeArgs {
        ServeArgs {
            config: None,
            data_dir: Some("/tmp/x".into()),
            key_file: None,
            http: None,
            mqtt: None,
            no_mqtt: false,
            mllp: None,
            public_url: None,
            allow_plaintext: false,
        }
    }

    #[test]
    fn defaults_are_loopback() {
        let c = resolve(args()).unwrap();
        assert_eq!(c.http.to_string(), "127.0.0.1:8080");
        assert_eq!(c.mqtt.unwrap().to_string(), "127.0.0.1:1883");
    }

    #[test]
    fn a_public_plaintext_listener_must_be_asked_for() {
        let mut a = args();
        a.http = Some("0.0.0.0:8080".parse().unwrap());
        assert!(resolve(a.clone()).is_err());
        a.allow_plaintext = true;
        assert!(resolve(a).is_ok());
    }

    #[test]
    fn the_built_in_cohorts_are_valid_and_say_what_they_change() {
        let c = resolve(args()).unwrap();
        assert_eq!(
            c.cohorts.names(),
            ["copd", "diabetes", "general", "heart-failure"]
        );
        let copd = c.cohorts.get("copd").unwrap().settings("copd").unwrap();
        assert_eq!(copd.spo2_scale.number(), 2);
        let hf = c
            .cohorts
            .get("heart-failure")
            .unwrap()
            .settings("hf")
            .unwrap();
        assert_eq!(hf.trends.drift[0].change, 2.0);
        let diabetes = c.cohorts.get("diabetes").unwrap().settings("d").unwrap();
        assert_eq!(diabetes.trends.rate.len(), 2);
    }

    #[test]
    fn a_bad_cohorts_file_is_refused_naming_the_cohort() {
        let err =
            parse_cohorts("[copd]\ndescription = \"x\"\nspo2_scale = 3\n", "f.toml").unwrap_err();
        assert!(format!("{err:#}").contains("copd"), "{err:#}");
        let err = parse_cohorts("[copd]\ndescripton = \"x\"\n", "f.toml").unwrap_err();
        assert!(format!("{err:#}").contains("descripton"), "{err:#}");
    }

    #[test]
    fn device_expectations_come_from_the_file_and_are_checked() {
        let file: FileConfig = toml::from_str(
            "[devices.wearable]\ninterval_secs = 2\nmargin_secs = 1\nsilent_priority = \"medium\"\nartifact_delay_secs = 0\n",
        )
        .unwrap();
        let e = &file.devices["wearable"];
        assert_eq!((e.interval_secs, e.margin_secs), (Some(2), 1));
    }

    #[test]
    fn the_key_file_comes_from_the_flag_else_the_storage_section() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("vigil.toml");
        std::fs::write(&config, "[storage]\nkey_file = \"/etc/vigil/store.key\"\n").unwrap();
        let mut a = args();
        assert_eq!(resolve_key_file(&a).unwrap(), None);
        a.config = Some(config.clone());
        assert_eq!(
            resolve_key_file(&a).unwrap(),
            Some(PathBuf::from("/etc/vigil/store.key"))
        );
        a.key_file = Some("/run/keys/vigil.key".into());
        assert_eq!(
            resolve_key_file(&a).unwrap(),
            Some(PathBuf::from("/run/keys/vigil.key"))
        );
        std::fs::write(&config, "[storage]\nkey_fle = \"x\"\n").unwrap();
        a.key_file = None;
        assert!(format!("{:#}", resolve_key_file(&a).unwrap_err()).contains("key_fle"));
    }

    #[test]
    fn a_missing_data_dir_says_how_to_give_one() {
        let mut a = args();
        a.data_dir = None;
        let err = resolve(a).unwrap_err().to_string();
        assert!(err.contains("--data-dir"), "{err}");
    }
}
