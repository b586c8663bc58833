//! A lean MQTT load generator: one TCP connection per simulated device, pre-encoded MQTT 3.1.1
//! packets (rumqttc's codec), a window of QoS 1 publishes in flight, and publish→PUBACK latency
//! per message. Lean on purpose: the generator shares the machine with the broker under test, so
//! every cycle it spends is one the broker cannot use.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use hdrhistogram::Histogram;
use rumqttc::mqttbytes::v4::{Connect, ConnectReturnCode, Packet, Publish};
use rumqttc::mqttbytes::{self, QoS};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Debug, Clone)]
pub struct LoadConfig {
    pub addr: SocketAddr,
    /// (device id, MQTT password if the broker needs one)
    pub devices: Vec<(String, Option<String>)>,
    pub qos: u8,
    /// Publishes awaiting PUBACK per connection.
    pub window: usize,
    /// Messages per second per device; `None` sends as fast as acknowledgements allow.
    pub rate_per_device: Option<f64>,
    pub duration: Duration,
    /// Time before measuring starts (connections settle, caches warm).
    pub warmup: Duration,
}

#[derive(Debug, Clone)]
pub struct LoadReport {
    /// Messages acknowledged (QoS 1) or written (QoS 0) during the measured interval.
    pub messages: u64,
    pub seconds: f64,
    /// Publish→PUBACK latency in microseconds (QoS 1 only).
    pub latency_us: Histogram<u64>,
    pub connect_failures: u64,
}

impl LoadReport {
    pub fn rate(&self) -> f64 {
        self.messages as f64 / self.seconds.max(1e-9)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("the broker refused device {device}: {code:?}")]
    Refused {
        device: String,
        code: ConnectReturnCode,
    },
    #[error("MQTT error: {0}")]
    Protocol(String),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

struct DeviceResult {
    messages: u64,
    latency: Histogram<u64>,
}

/// Runs the load and returns the figures of the measured interval (after warm-up).
pub async fn run(config: LoadConfig) -> Result<LoadReport, LoadError> {
    let start = Instant::now();
    let measure_from = start + config.warmup;
    let end = measure_from + config.duration;
    let mut tasks = tokio::task::JoinSet::new();
    for (i, (device, password)) in config.devices.iter().cloned().enumerate() {
        let config = config.clone();
        tasks.spawn(
            async move { drive_device(i, device, password, &config, measure_from, end).await },
        );
    }
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)
        .map_err(|e| LoadError::Protocol(e.to_string()))?;
    let mut messages = 0;
    let mut connect_failures = 0;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(r)) => {
                messages += r.messages;
                let _ = latency.add(&r.latency);
            }
            Ok(Err(e)) => {
                connect_failures += 1;
                tracing::warn!(error = %e, "load connection failed");
            }
            Err(e) => return Err(LoadError::Protocol(e.to_string())),
        }
    }
    Ok(LoadReport {
        messages,
        seconds: config.duration.as_secs_f64(),
        latency_us: latency,
        connect_failures,
    })
}

async fn drive_device(
    index: usize,
    device: String,
    password: Option<String>,
    config: &LoadConfig,
    measure_from: Instant,
    end: Instant,
) -> Result<DeviceResult, LoadError> {
    let mut stream =
        TcpStream::connect(config.addr)
            .await
            .map_err(|source| LoadError::Connect {
                addr: config.addr,
                source,
            })?;
    stream.set_nodelay(true)?;
    let mut out = BytesMut::with_capacity(64 * 1024);
    let mut connect = Connect::new(format!("{device}-load"));
    connect.keep_alive = 60;
    if let Some(p) = &password {
        connect.set_login(device.clone(), p.clone());
    }
    Packet::Connect(connect)
        .write(&mut out, usize::MAX)
        .map_err(|e| LoadError::Protocol(e.to_string()))?;
    stream.write_all(&out).await?;
    out.clear();
    let mut inbuf = BytesMut::with_capacity(64 * 1024);
    loop {
        match Packet::read(&mut inbuf, 1 << 20) {
            Ok(Packet::ConnAck(ack)) if ack.code == ConnectReturnCode::Success => break,
            Ok(Packet::ConnAck(ack)) => {
                return Err(LoadError::Refused {
                    device,
                    code: ack.code,
                });
            }
            Ok(_) => continue,
            Err(mqttbytes::Error::InsufficientBytes(_)) => {
                if stream.read_buf(&mut inbuf).await? == 0 {
                    return Err(LoadError::Protocol("closed before CONNACK".into()));
                }
            }
            Err(e) => return Err(LoadError::Protocol(e.to_string())),
        }
    }

    let topic = format!("vigil/v1/devices/{device}/obs");
    let qos = if config.qos == 0 {
        QoS::AtMostOnce
    } else {
        QoS::AtLeastOnce
    };
    let window = if config.qos == 0 {
        usize::MAX
    } else {
        config.window.max(1)
    };
    // Send times by packet id; packet ids cycle through 1..=65535.
    let mut sent_at: Vec<Option<Instant>> = vec![None; 65_536];
    let mut next_pkid: u16 = 1;
    let mut inflight = 0usize;
    let mut seq: i64 = 0;
    // Distinct, increasing effective times per device so no two messages are duplicates.
    let base_ms = chrono::Utc::now().timestamp_millis() - 3_600_000 + index as i64;
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)
        .map_err(|e| LoadError::Protocol(e.to_string()))?;
    let mut messages = 0u64;
    let interval = config
        .rate_per_device
        .map(|r| Duration::from_secs_f64(1.0 / r.max(1e-6)));
    let mut next_send = Instant::now();

    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        // Fill the window (or the rate allowance).
        while inflight < window && interval.is_none_or(|_| Instant::now() >= next_send) {
            let pkid = if qos == QoS::AtMostOnce {
                0
            } else {
                let id = next_pkid;
                next_pkid = if next_pkid == u16::MAX {
                    1
                } else {
                    next_pkid + 1
                };
                id
            };
            seq += 1;
            let value = 60 + (seq % 40);
            let payload = format!(
                r#"{{"ts":{},"obs":[{{"code":"heart_rate","value":{value},"unit":"/min"}}]}}"#,
                base_ms + seq
            );
            let mut publish = Publish::new(topic.clone(), qos, payload.into_bytes());
            publish.pkid = pkid;
            Packet::Publish(publish)
                .write(&mut out, usize::MAX)
                .map_err(|e| LoadError::Protocol(e.to_string()))?;
            if qos == QoS::AtMostOnce {
                if Instant::now() >= measure_from {
                    messages += 1;
                }
            } else {
                sent_at[pkid as usize] = Some(Instant::now());
                inflight += 1;
            }
            if let Some(i) = interval {
                next_send += i;
            }
            if out.len() > 32 * 1024 {
                break;
            }
        }
        if !out.is_empty() {
            stream.write_all(&out).await?;
            out.clear();
        }
        if qos == QoS::AtMostOnce {
            if let Some(i) = interval {
                tokio::time::sleep_until(next_send.max(Instant::now()).into()).await;
                let _ = i;
            } else {
                tokio::task::yield_now().await;
            }
            continue;
        }
        // Wait for acknowledgements (or for the next send time when rate-limited).
        let wait = if inflight < window {
            interval.map(|_| next_send.saturating_duration_since(Instant::now()))
        } else {
            None
        };
        let read = match wait {
            Some(d) => match tokio::time::timeout(d, stream.read_buf(&mut inbuf)).await {
                Ok(r) => Some(r?),
                Err(_) => None,
            },
            None => match tokio::time::timeout(
                end.saturating_duration_since(Instant::now()),
                stream.read_buf(&mut inbuf),
            )
            .await
            {
                Ok(r) => Some(r?),
                Err(_) => break,
            },
        };
        if read == Some(0) {
            return Err(LoadError::Protocol(
                "the broker closed the connection".into(),
            ));
        }
        loop {
            match Packet::read(&mut inbuf, 1 << 20) {
                Ok(Packet::PubAck(ack)) => {
                    if let Some(t) = sent_at[ack.pkid as usize].take() {
                        inflight -= 1;
                        let acked = Instant::now();
                        if acked >= measure_from && acked < end {
                            messages += 1;
                            let _ =
                                latency.record(acked.duration_since(t).as_micros().max(1) as u64);
                        }
                    }
                }
                Ok(_) => {}
                Err(mqttbytes::Error::InsufficientBytes(_)) => break,
                Err(e) => return Err(LoadError::Protocol(e.to_string())),
            }
        }
    }
    let mut out = BytesMut::new();
    let _ = Packet::Disconnect.write(&mut out, usize::MAX);
    let _ = stream.write_all(&out).await;
    Ok(DeviceResult { messages, latency })
}
