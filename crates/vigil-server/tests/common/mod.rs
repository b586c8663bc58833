//! What the integration tests share: a ward registered straight through the store, the server
//! started in-process on ephemeral ports, a raw MQTT connection for what client libraries refuse
//! to send, and bounded waiting.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use rumqttc::mqttbytes::{self as mb4, v4};
use rumqttc::v5::mqttbytes::{self as mb5, v5};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use vigil_model::{Device, DeviceId, DeviceKind, Observation, Patient, PatientId};
use vigil_server::{RunningServer, ServerConfig};
use vigil_store::{ObservationQuery, Store, StoreError};

/// How long a test waits for anything before it fails.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// 2025-06-01T00:00:00Z in milliseconds: readings are timed from here, inside every binding.
pub const BASE_MS: i64 = 1_748_736_000_000;

pub fn pid(id: &str) -> PatientId {
    PatientId::new(id).unwrap()
}

pub fn did(id: &str) -> DeviceId {
    DeviceId::new(id).unwrap()
}

pub fn at_ms(ms: i64) -> vigil_model::Instant {
    chrono::DateTime::from_timestamp_millis(ms).unwrap()
}

/// Adds the patient (once) and a device bound to them since 2025-01-01; returns the device secret.
pub fn register(store: &dyn Store, patient: &str, device: &str) -> String {
    match store.create_patient(&Patient::new(pid(patient), format!("Patient {patient}"))) {
        Ok(()) | Err(StoreError::AlreadyExists { .. }) => {}
        Err(e) => panic!("create patient {patient}: {e}"),
    }
    let secret = vigil_server::auth::new_device_secret();
    store
        .create_device(
            &Device::new(
                did(device),
                DeviceKind::new(DeviceKind::MULTIPARAMETER_MONITOR),
            ),
            &vigil_server::auth::hash_device_secret(&secret),
        )
        .unwrap();
    store
        .bind(&did(device), &pid(patient), at_ms(1_735_689_600_000))
        .unwrap();
    secret
}

/// Starts Vigil in-process with HTTP and MQTT on ephemeral ports.
pub async fn start(
    data_dir: &Path,
    store: Arc<dyn Store>,
    tweak: impl FnOnce(&mut ServerConfig),
) -> RunningServer {
    let mut config = ServerConfig::new(
        data_dir.to_path_buf(),
        "127.0.0.1:0".parse().unwrap(),
        Some("127.0.0.1:0".parse().unwrap()),
    );
    config.shutdown_grace = Duration::from_secs(2);
    tweak(&mut config);
    vigil_server::start(config, store).await.unwrap()
}

/// A device message with one heart rate taken at `ts_ms`.
pub fn heart_rate(ts_ms: i64, bpm: u32) -> String {
    format!(r#"{{"ts":{ts_ms},"obs":[{{"code":"heart_rate","value":{bpm}}}]}}"#)
}

/// A device message none of whose readings can be accepted (an SpO2 of 140 % is implausible).
pub const ALL_REJECTED: &str = r#"{"obs":[{"code":"spo2","value":140}]}"#;

pub fn obs_topic(device: &str) -> String {
    format!("vigil/v1/devices/{device}/obs")
}

pub fn errors_topic(device: &str) -> String {
    format!("vigil/v1/devices/{device}/errors")
}

/// Everything stored from `device`, oldest first.
pub fn stored(store: &dyn Store, device: &str) -> Vec<Observation> {
    store
        .search_observations(&ObservationQuery {
            device: Some(did(device)),
            limit: 100_000,
            ..ObservationQuery::default()
        })
        .unwrap()
}

/// Polls `check` until it yields a value, failing the test after [`DEADLINE`]. Only for effects
/// the test has no event to await (a row appearing after a fire-and-forget QoS 0 publish).
pub async fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Awaits `f`, failing the test after [`DEADLINE`].
pub async fn within<F: std::future::Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(DEADLINE, f)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// A hand-driven MQTT connection: packets encoded with rumqttc's codecs (or raw bytes) written
/// straight to the socket, so a test controls exactly what is sent and sees exactly what comes
/// back, including the moment the server closes.
pub struct RawMqtt {
    stream: TcpStream,
    buf: BytesMut,
}

impl RawMqtt {
    pub async fn open(addr: SocketAddr) -> RawMqtt {
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        RawMqtt {
            stream,
            buf: BytesMut::new(),
        }
    }

    /// Opens an MQTT 3.1.1 connection and returns it with the server's CONNACK.
    pub async fn connect_v4(
        addr: SocketAddr,
        client_id: &str,
        user: &str,
        password: &str,
        keep_alive: u16,
    ) -> (RawMqtt, v4::ConnAck) {
        let mut raw = RawMqtt::open(addr).await;
        let mut connect = v4::Connect::new(client_id);
        connect.keep_alive = keep_alive;
        connect.set_login(user, password);
        raw.send_v4(v4::Packet::Connect(connect)).await;
        match raw.recv_v4().await {
            Some(v4::Packet::ConnAck(ack)) => (raw, ack),
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    /// Opens an MQTT 5 connection and returns it with the server's CONNACK.
    pub async fn connect_v5(
        addr: SocketAddr,
        client_id: &str,
        user: &str,
        password: &str,
        keep_alive: u16,
    ) -> (RawMqtt, v5::ConnAck) {
        let mut raw = RawMqtt::open(addr).await;
        let connect = v5::Connect {
            keep_alive,
            client_id: client_id.into(),
            clean_start: true,
            properties: None,
        };
        raw.send_v5(v5::Packet::Connect(
            connect,
            None,
            Some(v5::Login::new(user, password)),
        ))
        .await;
        match raw.recv_v5().await {
            Some(v5::Packet::ConnAck(ack)) => (raw, ack),
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// Like [`RawMqtt::send_bytes`], but the server may already have closed the connection.
    pub async fn try_send_bytes(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await
    }

    /// Closes the sending side, as a client that gives up mid-packet.
    pub async fn shutdown_write(&mut self) {
        self.stream.shutdown().await.unwrap();
    }

    pub fn encode_v4(packets: impl IntoIterator<Item = v4::Packet>) -> BytesMut {
        let mut out = BytesMut::new();
        for p in packets {
            p.write(&mut out, usize::MAX).unwrap();
        }
        out
    }

    pub fn encode_v5(packets: impl IntoIterator<Item = v5::Packet>) -> BytesMut {
        let mut out = BytesMut::new();
        for p in packets {
            p.write(&mut out, None).unwrap();
        }
        out
    }

    pub async fn send_v4(&mut self, packet: v4::Packet) {
        let bytes = RawMqtt::encode_v4([packet]);
        self.send_bytes(&bytes).await;
    }

    pub async fn send_v5(&mut self, packet: v5::Packet) {
        let bytes = RawMqtt::encode_v5([packet]);
        self.send_bytes(&bytes).await;
    }

    /// Reads more bytes; `false` once the server has closed the connection.
    async fn fill(&mut self) -> bool {
        match within(
            "a packet from the server",
            self.stream.read_buf(&mut self.buf),
        )
        .await
        {
            Ok(0) => false,
            Ok(_) => true,
            // A reset is the server closing too (it closed with our bytes still unread).
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => false,
            Err(e) => panic!("read failed: {e}"),
        }
    }

    /// The next MQTT 3.1.1 packet, or `None` when the server closed the connection.
    pub async fn recv_v4(&mut self) -> Option<v4::Packet> {
        loop {
            match v4::Packet::read(&mut self.buf, usize::MAX) {
                Ok(p) => return Some(p),
                Err(mb4::Error::InsufficientBytes(_)) => {}
                Err(e) => panic!("the server sent a malformed packet: {e}"),
            }
            if !self.fill().await {
                assert!(self.buf.is_empty(), "closed mid-packet: {:?}", self.buf);
                return None;
            }
        }
    }

    /// The next MQTT 5 packet, or `None` when the server closed the connection.
    pub async fn recv_v5(&mut self) -> Option<v5::Packet> {
        loop {
            match v5::Packet::read(&mut self.buf, None) {
                Ok(p) => return Some(p),
                Err(mb5::Error::InsufficientBytes(_)) => {}
                Err(e) => panic!("the server sent a malformed packet: {e}"),
            }
            if !self.fill().await {
                assert!(self.buf.is_empty(), "closed mid-packet: {:?}", self.buf);
                return None;
            }
        }
    }

    /// Reads until the server closes; returns every byte it sent before closing.
    pub async fn bytes_until_closed(&mut self) -> Vec<u8> {
        while self.fill().await {}
        self.buf.split().to_vec()
    }

    /// Every MQTT 3.1.1 packet the server sends until it closes the connection.
    pub async fn v4_until_closed(&mut self) -> Vec<v4::Packet> {
        let mut packets = Vec::new();
        while let Some(p) = self.recv_v4().await {
            packets.push(p);
        }
        packets
    }

    /// Every MQTT 5 packet the server sends until it closes the connection.
    pub async fn v5_until_closed(&mut self) -> Vec<v5::Packet> {
        let mut packets = Vec::new();
        while let Some(p) = self.recv_v5().await {
            packets.push(p);
        }
        packets
    }
}

/// An MQTT 3.1.1 PUBLISH to `topic`.
pub fn publish_v4(topic: &str, qos: u8, pkid: u16, payload: &str) -> v4::Packet {
    let qos = match qos {
        0 => mb4::QoS::AtMostOnce,
        1 => mb4::QoS::AtLeastOnce,
        _ => mb4::QoS::ExactlyOnce,
    };
    let mut p = v4::Publish::new(topic, qos, payload.as_bytes().to_vec());
    p.pkid = pkid;
    v4::Packet::Publish(p)
}

/// An MQTT 5 PUBLISH to `topic`, with a topic alias when given.
pub fn publish_v5(
    topic: &str,
    qos: u8,
    pkid: u16,
    alias: Option<u16>,
    payload: &str,
) -> v5::Packet {
    let qos = match qos {
        0 => mb5::QoS::AtMostOnce,
        1 => mb5::QoS::AtLeastOnce,
        _ => mb5::QoS::ExactlyOnce,
    };
    let properties = alias.map(|a| v5::PublishProperties {
        topic_alias: Some(a),
        ..v5::PublishProperties::default()
    });
    let mut p = v5::Publish::new(topic, qos, payload.as_bytes().to_vec(), properties);
    p.pkid = pkid;
    v5::Packet::Publish(p)
}

/// A real MQTT 3.1.1 client (rumqttc) for `device`.
pub fn client_v4(
    addr: SocketAddr,
    client_id: &str,
    device: &str,
    secret: &str,
) -> (rumqttc::AsyncClient, rumqttc::EventLoop) {
    let mut options = rumqttc::MqttOptions::new(client_id, addr.ip().to_string(), addr.port());
    options.set_credentials(device, secret);
    options.set_keep_alive(Duration::from_secs(30));
    rumqttc::AsyncClient::new(options, 64)
}

/// A real MQTT 5 client (rumqttc) for `device`.
pub fn client_v5(
    addr: SocketAddr,
    client_id: &str,
    device: &str,
    secret: &str,
) -> (rumqttc::v5::AsyncClient, rumqttc::v5::EventLoop) {
    let mut options = rumqttc::v5::MqttOptions::new(client_id, addr.ip().to_string(), addr.port());
    options.set_credentials(device, secret);
    options.set_keep_alive(Duration::from_secs(30));
    rumqttc::v5::AsyncClient::new(options, 64)
}

/// The next packet an MQTT 3.1.1 client receives (outgoing events skipped), or the error that
/// ended its connection. Never called again after an error: rumqttc would reconnect.
pub async fn incoming_v4(
    events: &mut rumqttc::EventLoop,
) -> Result<rumqttc::Packet, rumqttc::ConnectionError> {
    within("an MQTT 3.1.1 event", async {
        loop {
            match events.poll().await? {
                rumqttc::Event::Incoming(p) => return Ok(p),
                rumqttc::Event::Outgoing(_) => {}
            }
        }
    })
    .await
}

/// The next packet an MQTT 5 client receives (outgoing events skipped), or the error that ended
/// its connection.
pub async fn incoming_v5(
    events: &mut rumqttc::v5::EventLoop,
) -> Result<rumqttc::v5::Incoming, rumqttc::v5::ConnectionError> {
    within("an MQTT 5 event", async {
        loop {
            match events.poll().await? {
                rumqttc::v5::Event::Incoming(p) => return Ok(p),
                rumqttc::v5::Event::Outgoing(_) => {}
            }
        }
    })
    .await
}

/// Polls an MQTT 3.1.1 client until `pick` accepts a packet; panics on a connection error.
pub async fn await_v4<T>(
    events: &mut rumqttc::EventLoop,
    mut pick: impl FnMut(&rumqttc::Packet) -> Option<T>,
) -> T {
    loop {
        let p = incoming_v4(events).await.expect("connection stays up");
        if let Some(v) = pick(&p) {
            return v;
        }
    }
}

/// Polls an MQTT 5 client until `pick` accepts a packet; panics on a connection error.
pub async fn await_v5<T>(
    events: &mut rumqttc::v5::EventLoop,
    mut pick: impl FnMut(&rumqttc::v5::Incoming) -> Option<T>,
) -> T {
    loop {
        let p = incoming_v5(events).await.expect("connection stays up");
        if let Some(v) = pick(&p) {
            return v;
        }
    }
}
