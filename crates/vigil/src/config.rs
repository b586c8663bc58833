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
    /// PEM certificate chain for every listener (HTTPS, MQTT over TLS, MLLP over TLS).
    #[arg(long, env = "VIGIL_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of the certificate.
    #[arg(long, env = "VIGIL_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// PEM bundle of the CA(s) issuing device client certificates (mutual TLS).
    #[arg(long, env = "VIGIL_TLS_CLIENT_CA", value_name = "FILE")]
    pub tls_client_ca: Option<PathBuf>,
    /// Listen on non-loopback addresses without TLS (e.g. behind a TLS-terminating proxy).
    /// Without TLS and without this flag, only loopback addresses are allowed.
    #[arg(long, env = "VIGIL_ALLOW_PLAINTEXT")]
    pub allow_plaintext: bool,
}

/// The `[tls]` section: when present, every listener speaks TLS 1.2 or 1.3 (docs/tls.md).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFileConfig {
    /// PEM certificate chain, the server's certificate first.
    pub cert: Option<PathBuf>,
    /// PEM private key of that certificate.
    pub key: Option<PathBuf>,
    /// PEM bundle of the CA(s) that issue device client certificates; omitted: devices sign in
    /// with secrets only.
    pub client_ca: Option<PathBuf>,
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
    /// Allow non-loopback listeners without TLS (default false).
    pub allow_plaintext: Option<bool>,
    /// Certificate, key and client CA for all listeners.
    pub tls: Option<TlsFileConfig>,
    /// Cohort rule sets file (TOML); default: the built-in `config/cohorts.toml`.
    pub cohorts: Option<PathBuf>,
    /// What to expect of devices, per device kind (`multiparameter-monitor`, `wearable`, …):
    /// overrides the built-in table of `vigil_rules::technical` for the kinds given.
    #[serde(default)]
    pub devices: BTreeMap<String, Expectation>,
    /// Rate limits, cross-origin access and intrusion detection (docs/defence.md).
    #[serde(default)]
    pub defence: DefenceSection,
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

/// `[defence]`: every field optional; what is left out keeps its default.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DefenceSection {
    /// Per remote address, all HTTP requests but health probes (default 100/s, burst 200).
    pub http_per_client: Option<RateSection>,
    /// Per device, its HTTP ingest requests (default 50/s, burst 100).
    pub http_per_device: Option<RateSection>,
    /// Per device, its MQTT publishes over all its connections (default 20 000/s, burst 20 000);
    /// over it the device is slowed down (backpressure), never dropped.
    pub mqtt_per_device: Option<RateSection>,
    /// Origins allowed cross-origin access to the API, exactly as browsers send them
    /// (`https://ward.example.org`); default none.
    #[serde(default)]
    pub cors_origins: Vec<String>,
    /// Intrusion detection thresholds, by signal.
    #[serde(default)]
    pub intrusion: IntrusionSection,
}

/// A token bucket; `requests_per_second = 0` turns the limit off.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateSection {
    pub requests_per_second: u32,
    /// Requests allowed at once; default equal to `requests_per_second`.
    pub burst: Option<u32>,
}

/// One entry per intrusion signal; each may override count, window and quarantine.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntrusionSection {
    pub auth_failures_per_device: Option<ThresholdSection>,
    pub auth_failures_per_address: Option<ThresholdSection>,
    pub topic_violations: Option<ThresholdSection>,
    pub message_flood: Option<ThresholdSection>,
    pub implausible_values: Option<ThresholdSection>,
    pub foreign_patient: Option<ThresholdSection>,
    pub many_patients: Option<ThresholdSection>,
}

/// `count` signals within `window_seconds` raise an alert (`count = 0`: the signal is off);
/// `quarantine` also quarantines the device.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThresholdSection {
    pub count: Option<u32>,
    pub window_seconds: Option<u64>,
    pub quarantine: Option<bool>,
}

impl ThresholdSection {
    fn apply(&self, to: &mut vigil_server::intrusion::Threshold) -> anyhow::Result<()> {
        if let Some(count) = self.count {
            to.count = count;
        }
        if let Some(window) = self.window_seconds {
            if window == 0 {
                bail!("window_seconds must be at least 1");
            }
            to.window = std::time::Duration::from_secs(window);
        }
        if let Some(quarantine) = self.quarantine {
            to.quarantine = quarantine;
        }
        Ok(())
    }
}

impl DefenceSection {
    /// Validates the section into the server's settings, starting from the defaults.
    pub fn resolve(&self) -> anyhow::Result<vigil_server::guard::DefenceConfig> {
        use vigil_server::guard::RateLimit;
        let mut out = vigil_server::guard::DefenceConfig::default();
        let rate = |r: &RateSection| {
            RateLimit::per_second(
                r.requests_per_second,
                r.burst.unwrap_or(r.requests_per_second),
            )
        };
        for (section, limit) in [
            (&self.http_per_client, &mut out.http_per_client),
            (&self.http_per_device, &mut out.http_per_device),
            (&self.mqtt_per_device, &mut out.mqtt_per_device),
        ] {
            if let Some(section) = section {
                if section.requests_per_second > 0 && section.burst == Some(0) {
                    bail!("defence: a burst of 0 would refuse everything; give at least 1");
                }
                *limit = rate(section);
            }
        }
        for origin in &self.cors_origins {
            let parsed = url::Url::parse(origin)
                .with_context(|| format!("defence.cors_origins: {origin:?} is not a URL"))?;
            let exact = parsed.origin().ascii_serialization();
            if !matches!(parsed.scheme(), "http" | "https") || exact != *origin {
                bail!(
                    "defence.cors_origins: {origin:?} is not an exact origin; write it as {exact:?} (scheme, host and port only, no path or trailing slash)"
                );
            }
        }
        out.cors_origins = self.cors_origins.clone();
        let i = &self.intrusion;
        let t = &mut out.intrusion;
        for (name, section, threshold) in [
            (
                "auth_failures_per_device",
                &i.auth_failures_per_device,
                &mut t.auth_failures_per_device,
            ),
            (
                "auth_failures_per_address",
                &i.auth_failures_per_address,
                &mut t.auth_failures_per_address,
            ),
            (
                "topic_violations",
                &i.topic_violations,
                &mut t.topic_violations,
            ),
            ("message_flood", &i.message_flood, &mut t.message_flood),
            (
                "implausible_values",
                &i.implausible_values,
                &mut t.implausible_values,
            ),
            (
                "foreign_patient",
                &i.foreign_patient,
                &mut t.foreign_patient,
            ),
            ("many_patients", &i.many_patients, &mut t.many_patients),
        ] {
            if let Some(section) = section {
                section
                    .apply(threshold)
                    .with_context(|| format!("defence.intrusion.{name}"))?;
            }
        }
        Ok(out)
    }
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
    let file_tls = file.tls.unwrap_or_default();
    let tls = match (
        args.tls_cert.or(file_tls.cert),
        args.tls_key.or(file_tls.key),
        args.tls_client_ca.or(file_tls.client_ca),
    ) {
        (Some(cert), Some(key), client_ca) => Some(vigil_server::tls::TlsSettings {
            cert,
            key,
            client_ca,
        }),
        (None, None, None) => None,
        (None, None, Some(_)) => bail!(
            "a TLS client CA is configured without a server certificate: give [tls] cert and key (or --tls-cert and --tls-key)"
        ),
        (Some(_), None, _) => {
            bail!("a TLS certificate is configured without its key: give [tls] key (or --tls-key)")
        }
        (None, Some(_), _) => bail!(
            "a TLS key is configured without its certificate: give [tls] cert (or --tls-cert)"
        ),
    };
    let allow_plaintext = args.allow_plaintext || file.allow_plaintext.unwrap_or(false);
    if tls.is_none() {
        for (what, addr) in [("HTTP", Some(http)), ("MQTT", mqtt), ("MLLP", mllp)] {
            if let Some(addr) = addr
                && !addr.ip().is_loopback()
            {
                if !allow_plaintext {
                    bail!(
                        "refusing to expose the {what} listener on {addr} without TLS: configure [tls] cert and key (or --tls-cert and --tls-key), bind to a loopback address such as 127.0.0.1, or pass --allow-plaintext if a TLS-terminating proxy is in front"
                    );
                }
                tracing::warn!(
                    listener = what,
                    %addr,
                    "PLAINTEXT listener on a non-loopback address (--allow-plaintext): device secrets, tokens and patient data cross the network unencrypted unless a TLS-terminating proxy is in front"
                );
            }
        }
    }
    let mut config = vigil_server::ServerConfig::new(data_dir, http, mqtt);
    config.mllp = mllp;
    config.secure_cookies = tls.is_some();
    config.tls = tls;
    config.public_url = args.public_url.or(file.public_url);
    config.cohorts = match &file.cohorts {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            parse_cohorts(&text, &path.display().to_string())?
        }
        None => parse_cohorts(BUILT_IN_COHORTS, "the built-in cohorts file")?,
    };
    config.defence = file.defence.resolve()?;
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
    let mut config = resolve(args)?;
    let key = store_key(&config.data_dir, key_file.as_deref())?;
    let store = open_store(&config.data_dir, &key)?;
    config.store_key = Some(key);
    let server = vigil_server::start(config, store).await?;
    println!("Vigil is running.");
    print_listeners(&server);
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

/// The listeners' URLs, with the scheme saying whether they are encrypted.
pub fn print_listeners(server: &vigil_server::RunningServer) {
    let (http, mqtt, mllp) = if server.tls {
        ("https", "mqtts", "mllps")
    } else {
        ("http", "mqtt", "mllp")
    };
    println!(
        "  HTTP API  {http}://{}  (FHIR at /fhir, metrics at /metrics)",
        server.http_addr
    );
    if let Some(addr) = server.mqtt_addr {
        println!("  MQTT      {mqtt}://{addr}");
    }
    if let Some(addr) = server.mllp_addr {
        println!("  MLLP      {mllp}://{addr}  (HL7 v2 ORU^R01 in MLLP frames)");
    }
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
    fn the_defence_section_is_validated_and_defaults_the_rest() {
        let file: FileConfig = toml::from_str(
            r#"
[defence]
http_per_client = { requests_per_second = 0 }
mqtt_per_device = { requests_per_second = 500, burst = 1000 }
cors_origins = ["https://ward.example.org"]
[defence.intrusion.auth_failures_per_device]
count = 3
quarantine = true
"#,
        )
        .unwrap();
        let d = file.defence.resolve().unwrap();
        assert_eq!(d.http_per_client, None, "0 turns the limit off");
        assert_eq!(
            d.mqtt_per_device,
            vigil_server::guard::RateLimit::per_second(500, 1000)
        );
        let defaults = vigil_server::guard::DefenceConfig::default();
        assert_eq!(d.http_per_device, defaults.http_per_device);
        assert_eq!(d.intrusion.auth_failures_per_device.count, 3);
        assert!(d.intrusion.auth_failures_per_device.quarantine);
        assert_eq!(
            d.intrusion.auth_failures_per_device.window,
            defaults.intrusion.auth_failures_per_device.window
        );
        for bad in [
            "[defence]\ncors_origins = [\"https://ward.example.org/\"]",
            "[defence]\ncors_origins = [\"*\"]",
            "[defence.intrusion.topic_violations]\nwindow_seconds = 0",
            "[defence]\nhttp_per_device = { requests_per_second = 5, burst = 0 }",
        ] {
            let file: FileConfig = toml::from_str(bad).unwrap();
            assert!(file.defence.resolve().is_err(), "{bad}");
        }
        assert!(toml::from_str::<FileConfig>("[defence]\nrate = 5").is_err());
    }

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
            tls_cert: None,
            tls_key: None,
            tls_client_ca: None,
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
    fn tls_lets_a_public_listener_start_and_needs_both_files() {
        let mut a = args();
        a.http = Some("0.0.0.0:8080".parse().unwrap());
        a.tls_cert = Some("/etc/vigil/cert.pem".into());
        let err = resolve(a.clone()).unwrap_err().to_string();
        assert!(err.contains("without its key"), "{err}");
        a.tls_key = Some("/etc/vigil/key.pem".into());
        let c = resolve(a).unwrap();
        let tls = c.tls.unwrap();
        assert_eq!(tls.key, PathBuf::from("/etc/vigil/key.pem"));
        assert_eq!(tls.client_ca, None);
    }

    #[test]
    fn the_tls_section_is_read_and_checked_for_unknown_keys() {
        let file: FileConfig =
            toml::from_str("[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\nclient_ca = \"ca.pem\"\n")
                .unwrap();
        let tls = file.tls.unwrap();
        assert_eq!(tls.client_ca, Some(PathBuf::from("ca.pem")));
        let err =
            toml::from_str::<FileConfig>("[tls]\ncert = \"c.pem\"\nkye = \"k.pem\"\n").unwrap_err();
        assert!(err.to_string().contains("kye"), "{err}");
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
