//! The embedded broker with MQTT 5 clients: acknowledgement after commit, reason codes, QoS 2,
//! topic aliases, error reports, and MQTT 5 next to MQTT 3.1.1 on one device.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use common::*;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{
    ConnectReturnCode, DisconnectReasonCode, Packet, PubAckReason, PubRecReason, PublishProperties,
    SubscribeReasonCode,
};
use rumqttc::v5::{ConnectionError, Incoming, StateError};
use serde_json::Value;
use vigil_model::{ObservationValue, Quantity};
use vigil_store::sqlite::SqliteStore;

struct Ward {
    _dir: tempfile::TempDir,
    store: Arc<SqliteStore>,
    server: vigil_server::RunningServer,
}

impl Ward {
    async fn new() -> Ward {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
        // These tests are about the protocol's answers on one connection; that a foreign publish
        // also quarantines the device (and closes the connection) is tests/defence.rs's.
        let server = start(dir.path(), store.clone(), |c| {
            c.defence.intrusion.topic_violations.quarantine = false
        })
        .await;
        Ward {
            _dir: dir,
            store,
            server,
        }
    }

    fn mqtt(&self) -> std::net::SocketAddr {
        self.server.mqtt_addr.unwrap()
    }

    fn device(&self, patient: &str, device: &str) -> String {
        register(self.store.as_ref(), patient, device)
    }

    fn stored(&self, device: &str) -> Vec<vigil_model::Observation> {
        stored(self.store.as_ref(), device)
    }
}

/// Connects a rumqttc MQTT 5 client and waits for its CONNACK.
async fn connected(
    ward: &Ward,
    client_id: &str,
    device: &str,
    secret: &str,
) -> (rumqttc::v5::AsyncClient, rumqttc::v5::EventLoop) {
    let (client, mut events) = client_v5(ward.mqtt(), client_id, device, secret);
    let ack = await_v5(&mut events, |p| match p {
        Incoming::ConnAck(ack) => Some(ack.clone()),
        _ => None,
    })
    .await;
    assert_eq!(ack.code, ConnectReturnCode::Success);
    (client, events)
}

async fn subscribe_errors(
    client: &rumqttc::v5::AsyncClient,
    events: &mut rumqttc::v5::EventLoop,
    device: &str,
) {
    client
        .subscribe(errors_topic(device), QoS::AtLeastOnce)
        .await
        .unwrap();
    let codes = await_v5(events, |p| match p {
        Incoming::SubAck(ack) => Some(ack.return_codes.clone()),
        _ => None,
    })
    .await;
    // Error reports are advisory: granted at QoS 0 whatever was asked.
    assert_eq!(codes, [SubscribeReasonCode::Success(QoS::AtMostOnce)]);
}

fn puback(p: &Incoming) -> Option<(u16, PubAckReason)> {
    match p {
        Incoming::PubAck(ack) => Some((ack.pkid, ack.reason)),
        _ => None,
    }
}

/// The payload of the next error report the client receives.
fn report(p: &Incoming, device: &str) -> Option<Value> {
    match p {
        Incoming::Publish(p) if p.topic == errors_topic(device).as_bytes() => {
            Some(serde_json::from_slice(&p.payload).expect("an error report is JSON"))
        }
        _ => None,
    }
}

fn heart_rate_value(o: &vigil_model::Observation) -> f64 {
    match &o.value {
        ObservationValue::Quantity(Quantity { value, .. }) => *value,
        other => panic!("a heart rate is a quantity: {other:?}"),
    }
}

#[tokio::test]
async fn a_success_puback_means_the_reading_is_already_in_the_store() {
    let ward = Ward::new().await;
    let secret = ward.device("p1", "mon-1");
    let (client, mut events) = client_v5(ward.mqtt(), "mon-1", "mon-1", &secret);
    let connack = await_v5(&mut events, |p| match p {
        Incoming::ConnAck(ack) => Some(ack.clone()),
        _ => None,
    })
    .await;
    assert_eq!(connack.code, ConnectReturnCode::Success);
    assert!(
        !connack.session_present,
        "persistent sessions are not offered"
    );
    let props = connack.properties.expect("MQTT 5 CONNACK properties");
    assert_eq!(props.retain_available, Some(0));
    assert_eq!(props.receive_max, Some(1024));
    assert_eq!(props.topic_alias_max, Some(16));

    for i in 0..5 {
        let ts = BASE_MS + i * 1000;
        client
            .publish(
                obs_topic("mon-1"),
                QoS::AtLeastOnce,
                false,
                heart_rate(ts, 60 + i as u32),
            )
            .await
            .unwrap();
        let (_, reason) = await_v5(&mut events, puback).await;
        assert_eq!(reason, PubAckReason::Success);
        // The PUBACK has arrived: the reading must be durable and readable right now.
        let rows = ward.stored("mon-1");
        assert_eq!(rows.len(), i as usize + 1, "acknowledged but not stored");
        let last = rows.last().unwrap();
        assert_eq!(last.effective, at_ms(ts));
        assert_eq!(last.patient.as_str(), "p1");
        assert_eq!(heart_rate_value(last), (60 + i) as f64);
    }
}

#[tokio::test]
async fn a_publish_to_another_devices_topic_is_not_authorized_and_not_stored() {
    let ward = Ward::new().await;
    let secret = ward.device("p1", "mon-1");
    let _other = ward.device("p2", "mon-2");
    let (client, mut events) = connected(&ward, "mon-1", "mon-1", &secret).await;
    subscribe_errors(&client, &mut events, "mon-1").await;

    client
        .publish(
            obs_topic("mon-2"),
            QoS::AtLeastOnce,
            false,
            heart_rate(BASE_MS, 70),
        )
        .await
        .unwrap();
    let (mut ack, mut explained) = (None, None);
    while ack.is_none() || explained.is_none() {
        let p = incoming_v5(&mut events).await.expect("connection stays up");
        if let Some((_, reason)) = puback(&p) {
            ack = Some(reason);
        }
        if let Some(r) = report(&p, "mon-1") {
            explained = Some(r);
        }
    }
    assert_eq!(ack, Some(PubAckReason::NotAuthorized));
    assert_eq!(explained.unwrap()["error"]["kind"], "not_authorized");

    // Its own, read-only errors topic is refused the same way.
    client
        .publish(
            errors_topic("mon-1"),
            QoS::AtLeastOnce,
            false,
            heart_rate(BASE_MS, 70),
        )
        .await
        .unwrap();
    assert_eq!(
        await_v5(&mut events, puback).await.1,
        PubAckReason::NotAuthorized
    );

    // MQTT 5 can say no without closing: the same connection still delivers its own readings.
    client
        .publish(
            obs_topic("mon-1"),
            QoS::AtLeastOnce,
            false,
            heart_rate(BASE_MS + 1000, 71),
        )
        .await
        .unwrap();
    assert_eq!(await_v5(&mut events, puback).await.1, PubAckReason::Success);
    assert!(ward.stored("mon-2").is_empty(), "nothing reached mon-2");
    assert_eq!(ward.stored("mon-1").len(), 1);
}

#[tokio::test]
async fn a_message_with_every_reading_rejected_gets_payload_format_invalid_and_a_report() {
    let ward = Ward::new().await;
    let secret = ward.device("p1", "ox-1");
    let (client, mut events) = connected(&ward, "ox-1", "ox-1", &secret).await;
    subscribe_errors(&client, &mut events, "ox-1").await;

    // The payload, the PUBACK reason it gets, and what its error report must say.
    type Case = (&'static str, PubAckReason, fn(&Value));
    let cases: [Case; 3] = [
        (ALL_REJECTED, PubAckReason::PayloadFormatInvalid, |r| {
            assert_eq!(r["accepted"], 0, "{r}");
            assert_eq!(r["rejected"][0]["pointer"], "/obs/0", "{r}");
            assert_eq!(r["rejected"][0]["kind"], "implausible_value", "{r}");
        }),
        // Not JSON at all: the whole message is refused.
        (
            r#"{"obs":[{"code":"#,
            PubAckReason::PayloadFormatInvalid,
            |r| {
                assert!(r["error"]["kind"].is_string(), "{r}");
                assert!(r["error"]["reason"].is_string(), "{r}");
            },
        ),
        // Partly acceptable: stored, acknowledged, and the refused part reported.
        (
            r#"{"ts":1748736000000,"obs":[{"code":"spo2","value":97},{"code":"spo2","value":"high"}]}"#,
            PubAckReason::Success,
            |r| {
                assert_eq!(r["accepted"], 1, "{r}");
                assert_eq!(r["rejected"][0]["pointer"], "/obs/1", "{r}");
            },
        ),
    ];
    for (payload, expected, check) in cases {
        client
            .publish(obs_topic("ox-1"), QoS::AtLeastOnce, false, payload)
            .await
            .unwrap();
        let (mut ack, mut explained) = (None, None);
        while ack.is_none() || explained.is_none() {
            let p = incoming_v5(&mut events).await.expect("connection stays up");
            if let Some((_, reason)) = puback(&p) {
                ack = Some(reason);
            }
            if let Some(r) = report(&p, "ox-1") {
                explained = Some(r);
            }
        }
        assert_eq!(ack, Some(expected), "{payload}");
        check(&explained.unwrap());
    }
    assert_eq!(ward.stored("ox-1").len(), 1, "only the one good SpO2");
}

#[tokio::test]
async fn qos2_is_received_after_commit_and_completed_on_pubrel() {
    let ward = Ward::new().await;
    let secret = ward.device("p1", "mon-1");
    let (client, mut events) = connected(&ward, "mon-1", "mon-1", &secret).await;
    for i in 0..3 {
        client
            .publish(
                obs_topic("mon-1"),
                QoS::ExactlyOnce,
                false,
                heart_rate(BASE_MS + i * 1000, 80),
            )
            .await
            .unwrap();
        let (pkid, reason) = await_v5(&mut events, |p| match p {
            Incoming::PubRec(rec) => Some((rec.pkid, rec.reason)),
            _ => None,
        })
        .await;
        assert_eq!(reason, PubRecReason::Success);
        assert_eq!(
            ward.stored("mon-1").len(),
            i as usize + 1,
            "PUBREC before the commit"
        );
        // rumqttc answers the PUBREC with PUBREL; the broker completes with PUBCOMP.
        let completed = await_v5(&mut events, |p| match p {
            Incoming::PubComp(comp) => Some(comp.pkid),
            _ => None,
        })
        .await;
        assert_eq!(completed, pkid);
    }
    assert_eq!(ward.stored("mon-1").len(), 3);
}

#[tokio::test]
async fn topic_aliases_resolve_to_the_topic_they_were_set_with() {
    let ward = Ward::new().await;
    let secret = ward.device("p1", "mon-1");
    let _other = ward.device("p2", "mon-2");
    let (client, mut events) = connected(&ward, "mon-1", "mon-1", &secret).await;
    let alias = |a| PublishProperties {
        topic_alias: Some(a),
        ..PublishProperties::default()
    };

    // Alias 1 is set with the full topic, then used alone.
    client
        .publish_with_properties(
            obs_topic("mon-1"),
            QoS::AtLeastOnce,
            false,
            heart_rate(BASE_MS, 60),
            alias(1),
        )
        .await
        .unwrap();
    assert_eq!(await_v5(&mut events, puback).await.1, PubAckReason::Success);
    for i in 1..4 {
        client
            .publish_with_properties(
                "",
                QoS::AtLeastOnce,
                false,
                heart_rate(BASE_MS + i * 1000, 60),
                alias(1),
            )
            .await
            .unwrap();
        assert_eq!(await_v5(&mut events, puback).await.1, PubAckReason::Success);
    }
    assert_eq!(ward.stored("mon-1").len(), 4);

    // An alias for a foreign topic is refused when used alone too.
    client
        .publish_with_properties(
            obs_topic("mon-2"),
            QoS::AtLeastOnce,
            false,
            heart_rate(BASE_MS, 60),
            alias(2),
        )
        .await
        .unwrap();
    assert_eq!(
        await_v5(&mut events, puback).await.1,
        PubAckReason::NotAuthorized
    );
    client
        .publish_with_properties(
            "",
            QoS::AtLeastOnce,
            false,
            heart_rate(BASE_MS + 9000, 60),
            alias(2),
        )
        .await
        .unwrap();
    assert_eq!(
        await_v5(&mut events, puback).await.1,
        PubAckReason::NotAuthorized
    );

    // An alias never set is a protocol error (MQTT 5 §3.3.4): DISCONNECT 0x82.
    client
        .publish_with_properties(
            "",
            QoS::AtLeastOnce,
            false,
            heart_rate(BASE_MS + 10_000, 60),
            alias(3),
        )
        .await
        .unwrap();
    // rumqttc reports the broker's DISCONNECT as the error that ends the connection.
    let reason = loop {
        match incoming_v5(&mut events).await {
            Ok(Incoming::PubAck(ack)) => panic!("an unknown alias was acknowledged: {ack:?}"),
            Ok(_) => {}
            Err(ConnectionError::MqttState(StateError::ServerDisconnect {
                reason_code, ..
            })) => {
                break reason_code;
            }
            Err(e) => panic!("expected the broker's DISCONNECT, got {e}"),
        }
    };
    assert_eq!(reason, DisconnectReasonCode::ProtocolError);
    assert!(ward.stored("mon-2").is_empty());
    assert_eq!(ward.stored("mon-1").len(), 4);
}

/// rumqttc refuses to send an alias above the broker's maximum, so these go over raw TCP.
#[tokio::test]
async fn topic_aliases_outside_the_advertised_range_close_the_connection() {
    let ward = Ward::new().await;
    let secret = ward.device("p1", "mon-1");
    for bad in [0u16, 17, u16::MAX] {
        let (mut raw, ack) = RawMqtt::connect_v5(ward.mqtt(), "mon-1", "mon-1", &secret, 30).await;
        let max = ack.properties.and_then(|p| p.topic_alias_max).unwrap();
        assert!(bad == 0 || bad > max);
        raw.send_v5(publish_v5(
            &obs_topic("mon-1"),
            1,
            1,
            Some(bad),
            &heart_rate(BASE_MS, 60),
        ))
        .await;
        let answer = raw.v5_until_closed().await;
        assert!(
            matches!(
                answer.as_slice(),
                [Packet::Disconnect(d)] if d.reason_code == DisconnectReasonCode::TopicAliasInvalid
            ),
            "alias {bad}: {answer:?}"
        );
    }
    assert!(ward.stored("mon-1").is_empty());
}

/// Regression: MQTT 5 §3.14.2.1 lets a normal DISCONNECT (reason 0x00, no properties) have a
/// remaining length of 0, and that is how rumqttc and mosquitto send it. It was read as a
/// malformed packet: the broker answered DISCONNECT 0x82 and dropped the QoS 0 publishes that
/// came just before it.
#[tokio::test]
async fn a_short_normal_disconnect_is_clean_and_finishes_what_came_before_it() {
    let ward = Ward::new().await;
    let secret = ward.device("p1", "mon-1");
    let (mut raw, _) = RawMqtt::connect_v5(ward.mqtt(), "mon-1", "mon-1", &secret, 30).await;
    let mut burst = RawMqtt::encode_v5((0..3).map(|i| {
        publish_v5(
            &obs_topic("mon-1"),
            0,
            0,
            None,
            &heart_rate(BASE_MS + i * 1000, 60),
        )
    }));
    burst.extend_from_slice(&[0xE0, 0x00]);
    raw.send_bytes(&burst).await;
    let answer = raw.v5_until_closed().await;
    assert!(
        answer.is_empty(),
        "a clean disconnect is not answered: {answer:?}"
    );
    eventually("the QoS 0 readings sent before DISCONNECT", || {
        (ward.stored("mon-1").len() == 3).then_some(())
    })
    .await;

    // rumqttc's own disconnect() sends the same two bytes.
    let (client, mut events) = connected(&ward, "mon-1b", "mon-1", &secret).await;
    client
        .publish(
            obs_topic("mon-1"),
            QoS::AtMostOnce,
            false,
            heart_rate(BASE_MS + 5000, 61),
        )
        .await
        .unwrap();
    client.disconnect().await.unwrap();
    loop {
        match incoming_v5(&mut events).await {
            Ok(Incoming::Disconnect(d)) => panic!("the broker refused a clean DISCONNECT: {d:?}"),
            Ok(_) => {}
            Err(_) => break,
        }
    }
    eventually("the QoS 0 reading sent before rumqttc's DISCONNECT", || {
        (ward.stored("mon-1").len() == 4).then_some(())
    })
    .await;
}

#[tokio::test]
async fn error_reports_reach_mqtt5_and_mqtt311_connections_of_the_same_device() {
    let ward = Ward::new().await;
    let secret = ward.device("p1", "mon-1");
    let (c5, mut e5) = connected(&ward, "mon-1-v5", "mon-1", &secret).await;
    subscribe_errors(&c5, &mut e5, "mon-1").await;

    let (c4, mut e4) = client_v4(ward.mqtt(), "mon-1-v311", "mon-1", &secret);
    c4.subscribe(errors_topic("mon-1"), rumqttc::QoS::AtLeastOnce)
        .await
        .unwrap();
    let granted = await_v4(&mut e4, |p| match p {
        rumqttc::Packet::SubAck(ack) => Some(ack.return_codes.clone()),
        _ => None,
    })
    .await;
    assert_eq!(
        granted,
        [rumqttc::SubscribeReasonCode::Success(
            rumqttc::QoS::AtMostOnce
        )]
    );

    // Both event loops run side by side from here on.
    let (tx5, mut rx5) = tokio::sync::mpsc::channel(64);
    let (tx4, mut rx4) = tokio::sync::mpsc::channel(64);
    let drive5 = tokio::spawn(async move {
        while let Ok(p) = incoming_v5(&mut e5).await {
            if tx5.send(p).await.is_err() {
                break;
            }
        }
    });
    let drive4 = tokio::spawn(async move {
        while let Ok(p) = incoming_v4(&mut e4).await {
            if tx4.send(p).await.is_err() {
                break;
            }
        }
    });
    async fn next_report_v5(rx: &mut tokio::sync::mpsc::Receiver<Incoming>) -> Value {
        loop {
            let p = within("an MQTT 5 packet", rx.recv())
                .await
                .expect("v5 connection up");
            if let Some(r) = report(&p, "mon-1") {
                return r;
            }
        }
    }
    async fn next_report_v4(rx: &mut tokio::sync::mpsc::Receiver<rumqttc::Packet>) -> Value {
        loop {
            let p = within("an MQTT 3.1.1 packet", rx.recv())
                .await
                .expect("v3.1.1 connection up");
            if let rumqttc::Packet::Publish(p) = p {
                assert_eq!(p.topic, errors_topic("mon-1"));
                assert_eq!(p.qos, rumqttc::QoS::AtMostOnce);
                return serde_json::from_slice(&p.payload).unwrap();
            }
        }
    }

    // The MQTT 5 connection sends a bad reading: both connections hear why.
    c5.publish(obs_topic("mon-1"), QoS::AtLeastOnce, false, ALL_REJECTED)
        .await
        .unwrap();
    let r4 = next_report_v4(&mut rx4).await;
    let r5 = next_report_v5(&mut rx5).await;
    assert_eq!(r4["rejected"][0]["kind"], "implausible_value");
    assert_eq!(r4, r5);

    // The MQTT 3.1.1 connection sends one (its PUBACK cannot say no): both hear it too.
    c4.publish(
        obs_topic("mon-1"),
        rumqttc::QoS::AtLeastOnce,
        false,
        Bytes::from_static(br#"{"obs":[{"code":"heart_rate","value":72,"unit":"mm[Hg]"}]}"#),
    )
    .await
    .unwrap();
    let r5 = next_report_v5(&mut rx5).await;
    let r4 = next_report_v4(&mut rx4).await;
    assert_eq!(r5["rejected"][0]["kind"], "unit_mismatch", "{r5}");
    assert_eq!(r4, r5);
    assert!(ward.stored("mon-1").is_empty());
    drive5.abort();
    drive4.abort();
}
