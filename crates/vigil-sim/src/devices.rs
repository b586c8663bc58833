//! Simulated bedside monitors: one real MQTT client (rumqttc) per patient, publishing the ward's
//! vital signs in Vigil's payload contract and listening on its own `errors` topic.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::Timelike;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, TlsConfiguration, Transport};
use tokio_util::sync::CancellationToken;

use crate::ward::{Pendant, SimPatient};

#[derive(Debug, Clone)]
pub struct WardConfig {
    pub host: String,
    pub port: u16,
    pub qos: u8,
    /// Time between two messages of one monitor.
    pub interval: Duration,
    /// Every how many messages blood pressure and temperature are included.
    pub spot_check_every: u64,
    /// MQTT over TLS with this client configuration (which CA to trust); `None`: plaintext.
    pub tls: Option<TlsConfiguration>,
}

impl WardConfig {
    fn options(&self, client_id: &str, secret: Option<String>) -> MqttOptions {
        let mut options = MqttOptions::new(client_id, self.host.clone(), self.port);
        options.set_keep_alive(Duration::from_secs(30));
        if let Some(secret) = secret {
            options.set_credentials(client_id, secret);
        }
        if let Some(tls) = &self.tls {
            options.set_transport(Transport::tls_with_config(tls.clone()));
        }
        options
    }
}

/// Counters shared by all simulated devices.
#[derive(Debug, Default)]
pub struct WardStats {
    pub published: AtomicU64,
    pub acknowledged: AtomicU64,
    pub error_reports: AtomicU64,
}

fn qos(q: u8) -> QoS {
    match q {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    }
}

/// Runs every patient's monitor until `shutdown`. `secret_of` gives each device's MQTT password
/// (`None` for brokers without authentication).
pub async fn run_ward(
    patients: Vec<SimPatient>,
    secret_of: impl Fn(&str) -> Option<String>,
    config: WardConfig,
    stats: Arc<WardStats>,
    shutdown: CancellationToken,
) {
    let mut tasks = tokio::task::JoinSet::new();
    for (i, patient) in patients.into_iter().enumerate() {
        if let Some(pendant) = patient.pendant.clone() {
            let secret = secret_of(&pendant.device_id);
            let (config, stats, shutdown) = (config.clone(), stats.clone(), shutdown.clone());
            tasks.spawn(run_pendant(pendant, secret, config, stats, shutdown));
        }
        let secret = secret_of(&patient.device_id);
        let config = config.clone();
        let stats = stats.clone();
        let shutdown = shutdown.clone();
        // Spread the monitors over the interval so they do not all publish in the same instant.
        let offset = config.interval.mul_f64((i % 20) as f64 / 20.0);
        tasks.spawn(async move {
            tokio::time::sleep(offset).await;
            run_monitor(patient, secret, config, stats, shutdown).await;
        });
    }
    while tasks.join_next().await.is_some() {}
}

/// A pendant: steps once a minute (its heartbeat) and its fall, when it comes, on the events topic.
async fn run_pendant(
    pendant: Pendant,
    secret: Option<String>,
    config: WardConfig,
    stats: Arc<WardStats>,
    shutdown: CancellationToken,
) {
    let options = config.options(&pendant.device_id, secret);
    let (client, mut events) = AsyncClient::new(options, 16);
    let poll_shutdown = shutdown.clone();
    let poller = tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = poll_shutdown.cancelled() => break,
                e = events.poll() => if e.is_err() {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                },
            }
        }
    });
    let obs_topic = format!("vigil/v1/devices/{}/obs", pendant.device_id);
    let events_topic = format!("vigil/v1/devices/{}/events", pendant.device_id);
    let started = tokio::time::Instant::now();
    let mut fallen = false;
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    let mut n: u64 = 0;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let t = started.elapsed().as_secs_f64();
        let now = chrono::Utc::now().timestamp_millis();
        let send = |topic: &String, message: serde_json::Value| {
            let payload = serde_json::to_vec(&message).unwrap_or_default();
            let (client, topic, stats) = (client.clone(), topic.clone(), stats.clone());
            async move {
                if client
                    .publish(topic, qos(config.qos), false, payload)
                    .await
                    .is_ok()
                {
                    stats.published.fetch_add(1, Ordering::Relaxed);
                }
            }
        };
        if n.is_multiple_of(60) {
            send(&obs_topic, pendant.steps_message(t, now)).await;
        }
        if !fallen && pendant.fall_at_s.is_some_and(|at| t >= at) {
            fallen = true;
            send(&events_topic, pendant.fall_message(now)).await;
        }
        n += 1;
    }
    let _ = client.disconnect().await;
    let _ = tokio::time::timeout(Duration::from_secs(2), poller).await;
}

async fn run_monitor(
    mut patient: SimPatient,
    secret: Option<String>,
    config: WardConfig,
    stats: Arc<WardStats>,
    shutdown: CancellationToken,
) {
    let mut options = config.options(&patient.device_id, secret);
    options.set_clean_session(true);
    let (client, mut events) = AsyncClient::new(options, 64);
    let obs_topic = format!("vigil/v1/devices/{}/obs", patient.device_id);
    let errors_topic = format!("vigil/v1/devices/{}/errors", patient.device_id);
    let device = patient.device_id.clone();
    let poll_stats = stats.clone();
    let poll_shutdown = shutdown.clone();
    let subscriber = client.clone();
    let poller = tokio::spawn(async move {
        loop {
            let event = tokio::select! {
                _ = poll_shutdown.cancelled() => break,
                e = events.poll() => e,
            };
            match event {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    let _ = subscriber
                        .subscribe(errors_topic.clone(), QoS::AtMostOnce)
                        .await;
                }
                Ok(Event::Incoming(Packet::PubAck(_))) => {
                    poll_stats.acknowledged.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    poll_stats.error_reports.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(device = %device, report = %String::from_utf8_lossy(&p.payload), "device got an error report");
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(device = %device, error = %e, "simulated device lost its connection; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    });
    let started = tokio::time::Instant::now();
    let mut ticker = tokio::time::interval(config.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut n: u64 = 0;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let now = chrono::Utc::now();
        let hour = now.hour() as f64 + now.minute() as f64 / 60.0;
        let t = started.elapsed().as_secs_f64();
        let with_spot_checks = n.is_multiple_of(config.spot_check_every.max(1));
        let message = patient.message(t, hour, now.timestamp_millis(), with_spot_checks);
        let payload = serde_json::to_vec(&message).unwrap_or_default();
        if client
            .publish(obs_topic.clone(), qos(config.qos), false, payload)
            .await
            .is_ok()
        {
            stats.published.fetch_add(1, Ordering::Relaxed);
        }
        n += 1;
    }
    let _ = client.disconnect().await;
    let _ = tokio::time::timeout(Duration::from_secs(2), poller).await;
}
