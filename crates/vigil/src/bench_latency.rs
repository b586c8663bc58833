//! `vigil bench --alarm-latency`: how long from a device's reading reaching Vigil to the alarm it
//! causes appearing on the live stream, while Vigil also ingests a steady background load.
//!
//! The probe is a patient whose temperature alternates between 39.5 °C (above the default high
//! limit of 39.0 °C, which has no alarm delay: a thermometer reading is a complete spot check)
//! and 37.0 °C (which clears it). Each 39.5 is published over MQTT with QoS 1; the clock starts
//! when the publish is written and stops when the `alarm` event with `"kind": "raised"` for the
//! probe arrives on `GET /api/v1/stream`. So the figure includes the MQTT hop, decoding, the durable commit, the
//! surveillance thread reading the log, the alarm's own durable commit and the SSE delivery.

use std::time::{Duration, Instant};

use anyhow::bail;
use futures_util::StreamExt;
use hdrhistogram::Histogram;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::sync::mpsc;
use vigil_model::{Device, DeviceId, DeviceKind, Patient, PatientId};
use vigil_server::auth::{self, Role, TokenKeys};
use vigil_sim::load::{self, LoadConfig};

use crate::bench::{BenchArgs, BenchStore, register_load_devices, start_vigil};

const PROBE_PATIENT: &str = "probe-patient";
const PROBE_DEVICE: &str = "probe-monitor";

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let bench_store = BenchStore::new()?;
    let data_dir = bench_store.data_dir.clone();
    let load_devices = args.devices.max(1);
    let probe_secret;
    let devices = {
        let store = bench_store.open()?;
        let devices = register_load_devices(&store, load_devices)?;
        let pid = PatientId::new(PROBE_PATIENT)?;
        let did = DeviceId::new(PROBE_DEVICE)?;
        store.create_patient(&Patient::new(pid.clone(), "Probe Patient"))?;
        probe_secret = auth::new_device_secret();
        store.create_device(
            &Device::new(
                did.clone(),
                DeviceKind::new(DeviceKind::MULTIPARAMETER_MONITOR),
            ),
            &auth::hash_device_secret(&probe_secret),
        )?;
        store.bind(&did, &pid, chrono::Utc::now() - chrono::Duration::days(1))?;
        // The watching clinician's care team looks after the probe patient.
        store.put_care_team(&vigil_model::CareTeam {
            id: vigil_model::CareTeamId::new("bench-team")?,
            name: "Benchmark watchers".into(),
            members: vec![vigil_model::UserId::new("bench")?],
            patients: vec![pid.clone()],
            wards: Vec::new(),
            every_patient: false,
        })?;
        devices
    };
    let token = TokenKeys::load_or_create(&data_dir)?.issue(
        Role::Clinician,
        "bench",
        chrono::Duration::hours(1),
    )?;

    let (_guard, http, mqtt_addr) = start_vigil(&bench_store).await?;
    let mqtt = mqtt_addr.port();

    // Follow the probe patient's alarms on the live stream.
    let (raised_tx, mut raised_rx) = mpsc::unbounded_channel::<Instant>();
    let stream = reqwest::Client::new()
        .get(format!(
            "http://127.0.0.1:{http}/api/v1/stream?patient={PROBE_PATIENT}"
        ))
        .bearer_auth(&token)
        .send()
        .await?;
    if !stream.status().is_success() {
        bail!("the live stream answered {}", stream.status());
    }
    tokio::spawn(async move {
        let mut body = stream.bytes_stream();
        let mut buffer = String::new();
        let mut event = String::new();
        while let Some(Ok(chunk)) = body.next().await {
            let arrived = Instant::now();
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buffer.find('\n') {
                let line: String = buffer.drain(..=end).collect();
                let line = line.trim_end();
                if let Some(kind) = line.strip_prefix("event: ") {
                    event = kind.to_owned();
                } else if let Some(data) = line.strip_prefix("data: ")
                    && event == "alarm"
                    && let Ok(v) = serde_json::from_str::<serde_json::Value>(data)
                    && v["event"]["kind"] == "raised"
                    && v["condition"] == "threshold:temperature:high"
                {
                    let _ = raised_tx.send(arrived);
                }
            }
        }
    });

    // The background load.
    let per_device = f64::from(args.background_rate) / load_devices as f64;
    let measure = Duration::from_secs(args.duration);
    let background = tokio::spawn(load::run(LoadConfig {
        addr: mqtt_addr,
        devices,
        qos: 1,
        window: 64,
        rate_per_device: Some(per_device),
        duration: measure + Duration::from_secs(2),
        warmup: Duration::from_secs(2),
    }));
    tokio::time::sleep(Duration::from_secs(3)).await;

    // The probe: a real MQTT client.
    let mut options = MqttOptions::new("probe", "127.0.0.1", mqtt);
    options.set_credentials(PROBE_DEVICE, probe_secret);
    options.set_keep_alive(Duration::from_secs(30));
    let (client, mut events) = AsyncClient::new(options, 16);
    tokio::spawn(async move {
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::Disconnect)) | Err(_) => break,
                Ok(_) => {}
            }
        }
    });
    let topic = format!("vigil/v1/devices/{PROBE_DEVICE}/obs");
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let started = Instant::now();
    let mut missed = 0u32;
    while started.elapsed() < measure {
        let now_ms = chrono::Utc::now().timestamp_millis();
        let fever = format!(r#"{{"ts":{now_ms},"obs":[{{"code":"temperature","value":39.5}}]}}"#);
        let sent = Instant::now();
        client
            .publish(&topic, QoS::AtLeastOnce, false, fever)
            .await?;
        match tokio::time::timeout(Duration::from_secs(5), raised_rx.recv()).await {
            Ok(Some(arrived)) => {
                let _ = latency.record(arrived.duration_since(sent).as_micros().max(1) as u64);
            }
            _ => missed += 1,
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let normal = format!(
            r#"{{"ts":{},"obs":[{{"code":"temperature","value":37.0}}]}}"#,
            now_ms + 50
        );
        client
            .publish(&topic, QoS::AtLeastOnce, false, normal)
            .await?;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let report = background.await??;
    println!(
        "Alarm latency: reading received → alarm raised on the live stream, {} probes, background load {:.0} readings/s ({} connections, QoS 1, acknowledged after commit).",
        latency.len(),
        report.rate(),
        load_devices
    );
    println!();
    println!("| p50 ms | p95 ms | p99 ms | max ms | missed |");
    println!("|-------:|-------:|-------:|-------:|-------:|");
    println!(
        "| {:>6.2} | {:>6.2} | {:>6.2} | {:>6.2} | {:>6} |",
        latency.value_at_quantile(0.50) as f64 / 1000.0,
        latency.value_at_quantile(0.95) as f64 / 1000.0,
        latency.value_at_quantile(0.99) as f64 / 1000.0,
        latency.max() as f64 / 1000.0,
        missed
    );
    if latency.is_empty() {
        bail!("no alarm arrived on the stream");
    }
    Ok(())
}
