//! `vigil serve` configuration: a TOML file (`--config`), overridden by `VIGIL_*` environment
//! variables, overridden by flags. Unknown keys are an error; everything is validated into a
//! `ServerConfig` before anything starts.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Args;
use serde::Deserialize;

/// Flags of `vigil serve`; each may also come from the environment or the config file.
#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// TOML configuration file (see examples/vigil.toml).
    #[arg(long, env = "VIGIL_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Directory holding Vigil's database and keys.
    #[arg(long, env = "VIGIL_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address for the HTTP API [default: 127.0.0.1:8080].
    #[arg(long, env = "VIGIL_HTTP", value_name = "ADDR")]
    pub http: Option<SocketAddr>,
    /// Address for the embedded MQTT broker [default: 127.0.0.1:1883].
    #[arg(long, env = "VIGIL_MQTT", value_name = "ADDR")]
    pub mqtt: Option<SocketAddr>,
    /// Run without the embedded MQTT broker.
    #[arg(long)]
    pub no_mqtt: bool,
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
    /// Public base URL of the API.
    pub public_url: Option<String>,
    /// Allow non-loopback plaintext listeners.
    pub allow_plaintext: Option<bool>,
}

pub fn load_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    toml::from_str(&text)
        .with_context(|| format!("{} is not a valid Vigil configuration", path.display()))
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
    let allow_plaintext = args.allow_plaintext || file.allow_plaintext.unwrap_or(false);
    for (what, addr) in [("HTTP", Some(http)), ("MQTT", mqtt)] {
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
    config.public_url = args.public_url.or(file.public_url);
    Ok(config)
}

pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = resolve(args)?;
    let store = open_store(&config.data_dir)?;
    let server = vigil_server::start(config, store).await?;
    println!("Vigil is running.");
    println!(
        "  HTTP API  http://{}  (FHIR at /fhir, metrics at /metrics)",
        server.http_addr
    );
    if let Some(mqtt) = server.mqtt_addr {
        println!("  MQTT      mqtt://{mqtt}");
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

pub fn open_store(data_dir: &Path) -> anyhow::Result<Arc<dyn vigil_store::Store>> {
    let store = vigil_store::sqlite::SqliteStore::open(data_dir)
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
            http: None,
            mqtt: None,
            no_mqtt: false,
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
    fn a_missing_data_dir_says_how_to_give_one() {
        let mut a = args();
        a.data_dir = None;
        let err = resolve(a).unwrap_err().to_string();
        assert!(err.contains("--data-dir"), "{err}");
    }
}
