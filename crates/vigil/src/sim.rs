//! `vigil sim`: the ward simulator pointed at any MQTT broker, or a load generator.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use tokio_util::sync::CancellationToken;
use vigil_sim::devices::{WardConfig, WardStats, run_ward};
use vigil_sim::load::{self, LoadConfig};

#[derive(Args, Debug)]
pub struct SimArgs {
    /// Broker to publish to, e.g. mqtt://127.0.0.1:1883.
    #[arg(long, value_name = "URL")]
    pub mqtt_url: String,
    /// Simulated devices (one connection each).
    #[arg(long, default_value_t = 20)]
    pub devices: usize,
    /// Messages per second per device.
    #[arg(long, default_value_t = 1.0)]
    pub rate: f64,
    /// MQTT QoS of the publishes (0 or 1; 2 for the ward mode).
    #[arg(long, default_value_t = 1)]
    pub qos: u8,
    /// Device credentials: a file of `device_id secret` lines (as printed by `vigil device add`).
    /// Without it, devices are named mon-001… and connect without a password.
    #[arg(long, value_name = "FILE")]
    pub credentials: Option<std::path::PathBuf>,
    /// Load-generator mode: single-reading messages as fast as `--rate` allows (or as fast as
    /// acknowledgements come with `--rate 0`), with throughput and latency printed at the end.
    #[arg(long)]
    pub load: bool,
    /// Stop after this many seconds (default: until Ctrl-C; 30 in load mode).
    #[arg(long)]
    pub duration: Option<u64>,
}

pub fn parse_mqtt_url(url: &str) -> anyhow::Result<(String, u16)> {
    let parsed = url::Url::parse(url).with_context(|| format!("{url:?} is not a URL"))?;
    if parsed.scheme() != "mqtt" && parsed.scheme() != "tcp" {
        bail!("{url:?}: only mqtt:// is supported by the simulator");
    }
    let host = parsed
        .host_str()
        .context("the MQTT URL has no host")?
        .to_owned();
    Ok((host, parsed.port().unwrap_or(1883)))
}

fn credentials(
    path: Option<&std::path::Path>,
    devices: usize,
) -> anyhow::Result<Vec<(String, Option<String>)>> {
    match path {
        None => Ok((1..=devices)
            .map(|i| (format!("mon-{i:03}"), None))
            .collect()),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let all: Vec<(String, Option<String>)> = text
                .lines()
                .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
                .map(|l| {
                    let mut parts = l.split_whitespace();
                    let id = parts.next().unwrap_or_default().to_owned();
                    (id, parts.next().map(str::to_owned))
                })
                .collect();
            if all.len() < devices {
                bail!(
                    "{} lists {} devices; --devices asks for {devices}",
                    path.display(),
                    all.len()
                );
            }
            Ok(all.into_iter().take(devices).collect())
        }
    }
}

pub async fn run(args: SimArgs) -> anyhow::Result<()> {
    let (host, port) = parse_mqtt_url(&args.mqtt_url)?;
    let creds = credentials(args.credentials.as_deref(), args.devices)?;
    if args.load {
        let addr = tokio::net::lookup_host((host.as_str(), port))
            .await?
            .next()
            .context("the MQTT host does not resolve")?;
        let report = load::run(LoadConfig {
            addr,
            devices: creds,
            qos: args.qos.min(1),
            window: 64,
            rate_per_device: (args.rate > 0.0).then_some(args.rate),
            duration: Duration::from_secs(args.duration.unwrap_or(30)),
            warmup: Duration::from_secs(2),
        })
        .await?;
        println!(
            "{:.0} messages/s over {:.0} s ({} messages)",
            report.rate(),
            report.seconds,
            report.messages
        );
        if args.qos > 0 {
            let h = &report.latency_us;
            println!(
                "publish→ack latency: p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
                h.value_at_quantile(0.5) as f64 / 1000.0,
                h.value_at_quantile(0.99) as f64 / 1000.0,
                h.value_at_quantile(0.999) as f64 / 1000.0,
                h.max() as f64 / 1000.0
            );
        }
        return Ok(());
    }
    // Ward mode: realistic vital signs for each device.
    let patients: Vec<_> = vigil_sim::ward::ward(creds.len(), 2026)
        .into_iter()
        .zip(&creds)
        .map(|(mut p, (id, _))| {
            p.device_id = id.clone();
            // Only the devices in the credentials file exist on the broker.
            p.pendant = None;
            p
        })
        .collect();
    let secrets: std::collections::HashMap<String, Option<String>> = creds.into_iter().collect();
    let stop = CancellationToken::new();
    let stats = Arc::new(WardStats::default());
    let config = WardConfig {
        host,
        port,
        qos: args.qos.min(2),
        interval: Duration::from_secs_f64(1.0 / args.rate.max(0.001)),
        spot_check_every: 30,
        tls: None,
    };
    let ward = tokio::spawn(run_ward(
        patients,
        move |d| secrets.get(d).cloned().flatten(),
        config,
        stats.clone(),
        stop.clone(),
    ));
    match args.duration {
        Some(s) => tokio::time::sleep(Duration::from_secs(s)).await,
        None => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    stop.cancel();
    let _ = ward.await;
    println!(
        "published {}, acknowledged {}, error reports {}",
        stats.published.load(std::sync::atomic::Ordering::Relaxed),
        stats
            .acknowledged
            .load(std::sync::atomic::Ordering::Relaxed),
        stats
            .error_reports
            .load(std::sync::atomic::Ordering::Relaxed)
    );
    Ok(())
}
