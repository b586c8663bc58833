//! The embedded broker with MQTT 3.1.1 clients (rumqttc, and raw TCP where a client library
//! would not send what the test needs): refusals, keep-alive, limits, garbage, take-over,
//! ordering under a burst, and redelivery.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use rumqttc::mqttbytes::v4;
use rumqttc::v5::mqttbytes::v5;
use rumqttc::{ConnectReturnCode, ConnectionError, Packet, QoS, SubscribeReasonCode};
use serde_json::Value;
use vigil_server::ServerConfig;
use vigil_store::sqlite::SqliteStore;

struct Ward {
    _dir: tempfile::TempDir,
    store: Arc<SqliteStore>,
    server: vigil_server::RunningServer,
}

impl Ward {
    async fn new() -> Ward {
        Ward::with(|_| {}).await
    }

    async fn with(tweak: impl FnOnce(&mut ServerConfig)) -> Ward {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
        let server = start(dir.path(), store.clone(), tweak).await;
        Ward {
            _dir: dir,
            store,
            server,
        }
    }

    fn mqtt(&self) -> SocketAddr {
        self.server.mqtt_addr.unwrap()
    }

    fn device(&self, patient: &str, device: &str) -> String {
        register(self.store.as_ref(), patient, device)
    }

    fn stored(&self, device: &str) -> Vec<vigil_model::Observation> {
        stored(self.store.as_ref(), device)
    }

    /// Waits until the broker holds exactly `n` open device connections.
    async fn connections(&self, n: usize) {
        eventually(&format!("{n} open connections"), || {
            (self.server.broker.sessions.connected() == n).then_some(())
        })
        .await;
    }
}

async fn connected(
    ward: &Ward,
    client_id: &str,
    device: &str,
    secret: &str,
) -> (rumqttc::AsyncClient, rumqttc::EventLoop) {
    let (client, mut events) = client_v4(ward.mqtt(), client_id, device, secret);
    let code = await_v4(&mut events, |p| match p {
        Packet::ConnAck(ack) => Some(ack.code),
        _ => None,
    })
    .await;
    assert_eq!(code, ConnectReturnCode::Success);
    (client, events)
}

fn puback(p: &Packet) -> Option<u16> {
    match p {
        Packet::PubAck(ack) => Some(ack.pkid),
        _ => None,
    }
}

/// Polls until the connection ends; returns what arrived before, and the error.
async fn until_closed(events: &mut rumqttc::EventLoop) -> (Vec<Packet>, ConnectionError) {
    let mut seen = Vec::new();
    loop {
        match incoming_v4(events).await {
            Ok(p) => seen.push(p),
            Err(e) => return (seen, e),
        }
    }
}

#[tokio::test]
async fn bad_credentials_get_a_connack_refusal_and_no_session() {
    let ward = Ward::new().await;
    let secret = ward.device("p1", "mon-1");
    for (user, password, expected) in [
        ("mon-1", "wrong", ConnectReturnCode::BadUserNamePassword),
        ("mon-1", "", ConnectReturnCode::BadUserNamePassword),
        // An unknown device gets the same answer as a wrong secret: no probing for device ids.
        (
            "ghost",
            secret.as_str(),
            ConnectReturnCode::BadUserNamePassword,
        ),
        (
            "not a/valid id",
            secret.as_str(),
            ConnectReturnCode::BadUserNamePassword,
        ),
    ] {
        let (_client, mut events) = client_v4(ward.mqtt(), "c", user, password);
        match incoming_v4(&mut events).await {
            Err(ConnectionError::ConnectionRefused(code)) => assert_eq!(code, expected, "{user}"),
            other => panic!("{user}/{password}: expected a refusal, got {other:?}"),
        }
    }
    // No credentials at all.
    let mut options = rumqttc::MqttOptions::new("c", "127.0.0.1", ward.mqtt().port());
    options.set_keep_alive(Duration::from_secs(30));
    let (_client, mut events) = rumqttc::AsyncClient::new(options, 4);
    match incoming_v4(&mut events).await {
        Err(ConnectionError::ConnectionRefused(code)) => {
            assert_eq!(code, ConnectReturnCode::NotAuthorized)
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // MQTT 5 gets the MQTT 5 code.
    let (_client, mut events) = client_v5(ward.mqtt(), "c5", "mon-1", "wrong");
    match incoming_v5(&mut events).await {
        Err(rumqttc::v5::ConnectionError::ConnectionRefused(code)) => {
            assert_eq!(code, v5::ConnectReturnCode::BadUserNamePassword)
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(ward.server.broker.sessions.connected(), 0);

    // The right secret still works.
    let (_client, _events) = connected(&ward, "mon-1", "mon-1", &secret).await;
    ward.connections(1).await;
}

#[tokio::test]
async fn a_publish_to_a_foreign_topic_closes_the_connection_unacknowledged() {
    let ward = Ward::new().await;
    let secret = ward.device("p1", "mon-1");
    let _other = ward.device("p2", "mon-2");
    // Another device's topic last: it also quarantines mon-1 (tests/defence.rs), which would
    // refuse the next round's sign-in.
    for topic in [
        errors_topic("mon-1"),
        "elsewhere".to_owned(),
        obs_topic("mon-2"),
    ] {
        let (client, mut events) = connected(&ward, "mon-1", "mon-1", &secret).await;
        client
            .publish(&topic, QoS::AtLeastOnce, false, heart_rate(BASE_MS, 70))
            .await
            .unwrap();
        let (seen, _) = until_closed(&mut events).await;
        assert!(
            !seen.iter().any(|p| puback(p).is_some()),
            "{topic}: 3.1.1 has no negative PUBACK, so none at all: {seen:?}"
        );
    }
    assert!(ward.stored("mon-2").is_empty());
    assert!(ward.stored("mon-1").is_empty());
    ward.connections(0).await;
}

#[tokio::test]
async fn subscriptions_outside_the_own_subtree_are_refused() {
    let ward = Ward::new().await;
    let secret = ward.device("p1", "mon-1");
    let other = ward.device("p2", "mon-2");
    let (client, mut events) = connected(&ward, "mon-1", "mon-1", &secret).await;
    let filters = [
        errors_topic("mon-1"),
        errors_topic("mon-2"),
        "vigil/v1/devices/mon-2/#".to_owned(),
        "vigil/v1/devices/+/errors".to_owned(),
        "#".to_owned(),
        "vigil/v1/devices/mon-1/#".to_owned(),
    ];
    client
        .subscribe_many(
            filters
                .iter()
                .map(|f| rumqttc::SubscribeFilter::new(f.clone(), QoS::AtMostOnce)),
        )
        .await
        .unwrap();
    let codes = await_v4(&mut events, |p| match p {
        Packet::SubAck(ack) => Some(ack.return_codes.clone()),
        _ => None,
    })
    .await;
    let ok = SubscribeReasonCode::Success(QoS::AtMostOnce);
    let no = SubscribeReasonCode::Failure;
    assert_eq!(codes, [ok, no, no, no, no, ok]);

    // mon-2's error report does not reach mon-1. Deliveries to one connection keep their order,
    // and mon-2's report is queued before mon-2's PUBACK leaves, so had it been queued for mon-1
    // it would come before mon-1's own report.
    let (c2, mut e2) = connected(&ward, "mon-2", "mon-2", &other).await;
    c2.publish(obs_topic("mon-2"), QoS::AtLeastOnce, false, ALL_REJECTED)
        .await
        .unwrap();
    await_v4(&mut e2, puback).await;
    client
        .publish(
            obs_topic("mon-1"),
            QoS::AtLeastOnce,
            false,
            r#"{"obs":[{"code":"heart_rate","value":"fast"}]}"#,
        )
        .await
        .unwrap();
    let first: Value = await_v4(&mut events, |p| match p {
        Packet::Publish(p) => Some(serde_json::from_slice(&p.payload).unwrap()),
        _ => None,
    })
    .await;
    assert_eq!(first["rejected"][0]["code"], "heart_rate", "{first}");
}

#[tokio::test]
async fn keep_alive_expiry_closes_an_idle_connection() {
    let ward = Ward::new().await;
    let secret = ward.device("p1", "mon-1");

    // Silent for longer than 1.5 × 1 s: closed (3.1.1 has no DISCONNECT from the server).
    let (mut idle, ack) = RawMqtt::connect_v4(ward.mqtt(), "idle", "mon-1", &secret, 1).await;
    assert_eq!(ack.code, v4::ConnectReturnCode::Success);
    let started = tokio::time::Instant::now();
    assert!(idle.bytes_until_closed().await.is_empty());
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "closed before the keep-alive ran out"
    );

    // MQTT 5 is told why.
    let (mut idle5, _) = RawMqtt::connect_v5(ward.mqtt(), "idle5", "mon-1", &secret, 1).await;
    let answer = idle5.v5_until_closed().await;
    assert!(
        matches!(
            answer.as_slice(),
            [v5::Packet::Disconnect(d)] if d.reason_code == v5::DisconnectReasonCode::KeepAliveTimeout
        ),
        "{answer:?}"
    );

    // A client that pings within its keep-alive stays connected well past 1.5 s.
    let (mut alive, _) = RawMqtt::connect_v4(ward.mqtt(), "alive", "mon-1", &secret, 1).await;
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        alive.send_v4(v4::Packet::PingReq).await;
        assert_eq!(alive.recv_v4().await, Some(v4::Packet::PingResp));
    }
    alive
        .send_v4(publish_v4(
            &obs_topic("mon-1"),
            1,
            1,
            &heart_rate(BASE_MS, 70),
        ))
        .await;
    assert_eq!(
        alive.recv_v4().await,
        Some(v4::Packet::PubAck(v4::PubAck { pkid: 1 }))
    );
}

#[tokio::test]
async fn a_packet_over_the_size_limit_closes_the_connection() {
    let ward = Ward::with(|c| c.mqtt_config.max_packet_size = 1024).await;
    let secret = ward.device("p1", "mon-1");
    let oversized = format!(
        r#"{{"ts":{BASE_MS},"obs":[{{"code":"heart_rate","value":70}}]}}{}"#,
        " ".repeat(2000)
    );

    let (mut raw, _) = RawMqtt::connect_v4(ward.mqtt(), "big", "mon-1", &secret, 30).await;
    raw.send_v4(publish_v4(&obs_topic("mon-1"), 1, 1, &oversized))
        .await;
    assert_eq!(raw.v4_until_closed().await, []);

    // MQTT 5: the limit is announced in CONNACK, and DISCONNECT 0x95 says what went wrong.
    let (mut raw, ack) = RawMqtt::connect_v5(ward.mqtt(), "big5", "mon-1", &secret, 30).await;
    assert_eq!(ack.properties.unwrap().max_packet_size, Some(1024));
    raw.send_v5(publish_v5(&obs_topic("mon-1"), 1, 1, None, &oversized))
        .await;
    let answer = raw.v5_until_closed().await;
    assert!(
        matches!(
            answer.as_slice(),
            [v5::Packet::Disconnect(d)] if d.reason_code == v5::DisconnectReasonCode::PacketTooLarge
        ),
        "{answer:?}"
    );

    // Refused from the fixed header alone: a client announcing 1 MiB is not waited for.
    let (mut raw, _) = RawMqtt::connect_v4(ward.mqtt(), "liar", "mon-1", &secret, 30).await;
    raw.send_bytes(&[0x32, 0x80, 0x80, 0x40]).await;
    assert_eq!(raw.v4_until_closed().await, []);
    assert!(ward.stored("mon-1").is_empty());

    // Just under the limit is fine.
    let fits = format!(
        r#"{{"ts":{BASE_MS},"obs":[{{"code":"heart_rate","value":70}}]}}{}"#,
        " ".repeat(900)
    );
    let (mut raw, _) = RawMqtt::connect_v4(ward.mqtt(), "fits", "mon-1", &secret, 30).await;
    raw.send_v4(publish_v4(&obs_topic("mon-1"), 1, 1, &fits))
        .await;
    assert_eq!(
        raw.recv_v4().await,
        Some(v4::Packet::PubAck(v4::PubAck { pkid: 1 }))
    );
    assert_eq!(ward.stored("mon-1").len(), 1);
}

#[tokio::test]
async fn garbage_closes_only_its_own_connection() {
    let ward = Ward::new().await;
    let secret = ward.device("p1", "mon-1");
    let (client, mut events) = connected(&ward, "bystander", "mon-1", &secret).await;

    // Not MQTT at all, a CONNECT of MQTT 3.1 (level 3), a packet type that does not exist, and
    // a CONNECT cut off by the client closing its side.
    let mqtt31_connect = [
        0x10u8, 0x0c, 0, 6, b'M', b'Q', b'I', b's', b'd', b'p', 3, 0, 0, 0,
    ];
    let mut truncated = RawMqtt::encode_v4([v4::Packet::Connect({
        let mut c = v4::Connect::new("t");
        c.set_login("mon-1", &secret);
        c
    })]);
    truncated.truncate(truncated.len() - 5);
    for garbage in [
        &b"GET / HTTP/1.1\r\nHost: vigil\r\n\r\n"[..],
        &[0xFF; 64][..],
        &mqtt31_connect[..],
        &[0x10, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F][..],
    ] {
        let mut raw = RawMqtt::open(ward.mqtt()).await;
        // The server may close before it has read everything; that is the point.
        let _ = raw.try_send_bytes(garbage).await;
        assert_eq!(raw.bytes_until_closed().await, b"", "{garbage:?}");
    }
    let mut raw = RawMqtt::open(ward.mqtt()).await;
    raw.send_bytes(&truncated).await;
    raw.shutdown_write().await;
    assert_eq!(raw.bytes_until_closed().await, b"");

    // After CONNECT, a reserved packet type is a protocol error; MQTT 5 says so.
    let (mut raw, _) = RawMqtt::connect_v5(ward.mqtt(), "bad5", "mon-1", &secret, 30).await;
    raw.send_bytes(&[0x00, 0x00]).await;
    let answer = raw.v5_until_closed().await;
    assert!(
        matches!(
            answer.as_slice(),
            [v5::Packet::Disconnect(d)] if d.reason_code == v5::DisconnectReasonCode::ProtocolError
        ),
        "{answer:?}"
    );
    // A second CONNECT is one too.
    let (mut raw, _) = RawMqtt::connect_v4(ward.mqtt(), "twice", "mon-1", &secret, 30).await;
    raw.send_v4(v4::Packet::Connect(v4::Connect::new("twice")))
        .await;
    assert_eq!(raw.v4_until_closed().await, []);

    // The bystander never noticed, and new connections are served.
    client
        .publish(
            obs_topic("mon-1"),
            QoS::AtLeastOnce,
            false,
            heart_rate(BASE_MS, 70),
        )
        .await
        .unwrap();
    await_v4(&mut events, puback).await;
    let (mut fresh, ack) = RawMqtt::connect_v4(ward.mqtt(), "fresh", "mon-1", &secret, 30).await;
    assert_eq!(ack.code, v4::ConnectReturnCode::Success);
    fresh
        .send_v4(publish_v4(
            &obs_topic("mon-1"),
            1,
            9,
            &heart_rate(BASE_MS + 1000, 71),
        ))
        .await;
    assert_eq!(
        fresh.recv_v4().await,
        Some(v4::Packet::PubAck(v4::PubAck { pkid: 9 }))
    );
    assert_eq!(ward.stored("mon-1").len(), 2);
}

#[tokio::test]
async fn a_new_connection_with_the_same_client_id_takes_the_session_over() {
    let ward = Ward::new().await;
    let secret = ward.device("p1", "mon-1");
    let other = ward.device("p2", "mon-2");

    // MQTT 3.1.1: the old connection is closed.
    let (mut old, _) = RawMqtt::connect_v4(ward.mqtt(), "monitor", "mon-1", &secret, 30).await;
    let (mut new, ack) = RawMqtt::connect_v4(ward.mqtt(), "monitor", "mon-1", &secret, 30).await;
    assert_eq!(ack.code, v4::ConnectReturnCode::Success);
    assert_eq!(old.v4_until_closed().await, []);
    ward.connections(1).await;

    // MQTT 5: the old connection is told why (rumqttc surfaces it as the ending error).
    let (_c5, mut e5) = client_v5(ward.mqtt(), "monitor-5", "mon-1", &secret);
    await_v5(&mut e5, |p| {
        matches!(p, v5::Packet::ConnAck(_)).then_some(())
    })
    .await;
    let (mut new5, _) = RawMqtt::connect_v5(ward.mqtt(), "monitor-5", "mon-1", &secret, 30).await;
    let reason = loop {
        match incoming_v5(&mut e5).await {
            Ok(_) => {}
            Err(rumqttc::v5::ConnectionError::MqttState(
                rumqttc::v5::StateError::ServerDisconnect { reason_code, .. },
            )) => break reason_code,
            Err(e) => panic!("expected DISCONNECT 0x8E, got {e}"),
        }
    };
    assert_eq!(reason, v5::DisconnectReasonCode::SessionTakenOver);
    ward.connections(2).await;

    // Another device with the same client id takes nothing over: client ids are per device.
    let (_stranger, _) = RawMqtt::connect_v4(ward.mqtt(), "monitor", "mon-2", &other, 30).await;
    ward.connections(3).await;

    // The connections that took over work.
    new.send_v4(publish_v4(
        &obs_topic("mon-1"),
        1,
        1,
        &heart_rate(BASE_MS, 70),
    ))
    .await;
    assert_eq!(
        new.recv_v4().await,
        Some(v4::Packet::PubAck(v4::PubAck { pkid: 1 }))
    );
    new5.send_v5(publish_v5(
        &obs_topic("mon-1"),
        1,
        1,
        None,
        &heart_rate(BASE_MS + 1000, 71),
    ))
    .await;
    assert!(matches!(
        new5.recv_v5().await,
        Some(v5::Packet::PubAck(a)) if a.pkid == 1 && a.reason == v5::PubAckReason::Success
    ));
    assert_eq!(ward.stored("mon-1").len(), 2);
}

/// 500 QoS 1 publishes written in one go: every PUBACK comes back, in publish order (MQTT 3.1.1
/// §4.6), and every message is stored exactly once. With a receive maximum of 8 the broker stops
/// reading its socket while 8 are in flight; the outcome must be the same.
#[tokio::test]
async fn a_burst_of_qos1_publishes_is_acknowledged_in_order_and_stored_once() {
    for receive_maximum in [1024, 8] {
        let ward = Ward::with(|c| c.mqtt_config.receive_maximum = receive_maximum).await;
        let secret = ward.device("p1", "mon-1");
        let (mut raw, _) = RawMqtt::connect_v4(ward.mqtt(), "burst", "mon-1", &secret, 30).await;
        let burst = RawMqtt::encode_v4((1..=500u16).map(|pkid| {
            publish_v4(
                &obs_topic("mon-1"),
                1,
                pkid,
                &heart_rate(BASE_MS + pkid as i64 * 1000, 60 + (pkid % 40) as u32),
            )
        }));
        raw.send_bytes(&burst).await;
        let mut acked = Vec::with_capacity(500);
        while acked.len() < 500 {
            match raw.recv_v4().await {
                Some(v4::Packet::PubAck(ack)) => acked.push(ack.pkid),
                other => panic!("expected a PUBACK, got {other:?}"),
            }
        }
        assert_eq!(
            acked,
            (1..=500).collect::<Vec<u16>>(),
            "receive max {receive_maximum}"
        );
        let mut times: Vec<i64> = ward
            .stored("mon-1")
            .iter()
            .map(|o| o.effective.timestamp_millis())
            .collect();
        times.sort_unstable();
        let expected: Vec<i64> = (1..=500).map(|i| BASE_MS + i * 1000).collect();
        assert_eq!(times, expected, "receive max {receive_maximum}");
    }
}

#[tokio::test]
async fn a_redelivery_with_dup_is_acknowledged_and_stored_once() {
    let ward = Ward::new().await;
    let secret = ward.device("p1", "mon-1");
    let message = heart_rate(BASE_MS, 77);
    let dup = |pkid| {
        let mut p = publish_v4(&obs_topic("mon-1"), 1, pkid, &message);
        if let v4::Packet::Publish(p) = &mut p {
            p.dup = true;
        }
        p
    };

    // Sent, and the connection lost before any PUBACK could be read.
    let (mut lost, _) = RawMqtt::connect_v4(ward.mqtt(), "mon-1", "mon-1", &secret, 30).await;
    lost.send_v4(publish_v4(&obs_topic("mon-1"), 1, 7, &message))
        .await;
    drop(lost);

    // Redelivered with DUP on a new connection, once and then again.
    let (mut raw, _) = RawMqtt::connect_v4(ward.mqtt(), "mon-1", "mon-1", &secret, 30).await;
    for pkid in [7, 8] {
        raw.send_v4(dup(pkid)).await;
        assert_eq!(
            raw.recv_v4().await,
            Some(v4::Packet::PubAck(v4::PubAck { pkid }))
        );
        let rows = ward.stored("mon-1");
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!(rows[0].effective, at_ms(BASE_MS));
    }
    // The original and its redelivery in flight together.
    let both = RawMqtt::encode_v4([
        publish_v4(&obs_topic("mon-1"), 1, 9, &heart_rate(BASE_MS + 1000, 78)),
        {
            let mut p = publish_v4(&obs_topic("mon-1"), 1, 9, &heart_rate(BASE_MS + 1000, 78));
            if let v4::Packet::Publish(p) = &mut p {
                p.dup = true;
            }
            p
        },
    ]);
    raw.send_bytes(&both).await;
    for _ in 0..2 {
        assert_eq!(
            raw.recv_v4().await,
            Some(v4::Packet::PubAck(v4::PubAck { pkid: 9 }))
        );
    }
    assert_eq!(ward.stored("mon-1").len(), 2);
}
