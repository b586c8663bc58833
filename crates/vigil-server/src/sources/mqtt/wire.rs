//! MQTT 3.1.1 and 5.0 on the wire, through rumqttc's packet codecs, reduced to the few packets an
//! ingest broker handles. The connection logic speaks only [`Inbound`] and [`Outbound`], so it is
//! written once for both protocol versions.

use bytes::{Bytes, BytesMut};
use rumqttc::mqttbytes::{self as mb4, v4};
use rumqttc::v5::mqttbytes::{self as mb5, v5};

/// Most topic aliases an MQTT 5 client may set on one connection (CONNACK "Topic Alias Maximum").
pub const TOPIC_ALIAS_MAX: u16 = 16;

/// Protocol version, chosen by the client's CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    V311,
    V5,
}

/// The CONNECT packet, version-independent.
#[derive(Debug, Clone)]
pub struct Connect {
    pub protocol: Protocol,
    pub client_id: String,
    pub keep_alive_secs: u16,
    pub username: Option<String>,
    pub password: Option<String>,
    /// MQTT 5 receive maximum the client asked for (how many QoS 1/2 it takes in flight).
    pub has_will: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    Publish {
        topic: String,
        /// MQTT 5 topic alias, to be resolved by the connection.
        topic_alias: Option<u16>,
        qos: u8,
        pkid: u16,
        payload: Bytes,
    },
    PubAck,
    PubRel {
        pkid: u16,
    },
    Subscribe {
        pkid: u16,
        filters: Vec<(String, u8)>,
    },
    Unsubscribe {
        pkid: u16,
        filters: Vec<String>,
    },
    PingReq,
    Disconnect,
    /// A packet a client must never send to a server (CONNACK, SUBACK…) or a second CONNECT.
    ProtocolViolation(&'static str),
}

/// Why a publish or a subscription was not accepted (mapped to MQTT 5 reason codes; MQTT 3.1.1
/// has no negative PUBACK, see the connection for what it does instead).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    NotAuthorized,
    PayloadFormatInvalid,
    TopicNameInvalid,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outbound {
    ConnAckAccepted {
        receive_maximum: u16,
        max_packet_size: u32,
    },
    ConnAckRefused(ConnectRefusal),
    PubAck {
        pkid: u16,
        refusal: Option<Refusal>,
    },
    PubRec {
        pkid: u16,
        refusal: Option<Refusal>,
    },
    PubComp {
        pkid: u16,
    },
    /// Granted QoS per filter, or `None` for a refused filter.
    SubAck {
        pkid: u16,
        granted: Vec<Option<u8>>,
    },
    UnsubAck {
        pkid: u16,
        count: usize,
    },
    PingResp,
    Publish {
        topic: String,
        payload: Bytes,
    },
    /// MQTT 5 only: tell the client why it is being disconnected.
    Disconnect(DisconnectReason),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectRefusal {
    BadCredentials,
    NotAuthorized,
    ServerUnavailable,
    /// The device is quarantined (MQTT 5: 0x8A Banned; 3.1.1: 5 not authorised).
    Banned,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisconnectReason {
    ProtocolError,
    PacketTooLarge,
    NotAuthorized,
    SessionTakenOver,
    ServerShuttingDown,
    KeepAliveTimeout,
    TopicAliasInvalid,
    UnspecifiedError,
}

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("malformed MQTT 3.1.1 packet: {0}")]
    V4(mb4::Error),
    #[error("malformed MQTT 5 packet: {0}")]
    V5(mb5::Error),
    #[error("the first packet is not a CONNECT")]
    NotConnect,
    #[error("unsupported protocol level {0}")]
    UnsupportedProtocol(u8),
    #[error("packet larger than the {0}-byte limit")]
    TooLarge(usize),
    /// A complete packet whose fields run past its remaining length (a string, property or
    /// packet identifier cut short).
    #[error("malformed packet: a field runs past the end of the packet")]
    Truncated,
}

/// rumqttc answers `InsufficientBytes` both for an incomplete frame, having consumed nothing (wait
/// for more bytes), and for a field running past the end of a complete frame, having already
/// split that frame off the buffer. The second is a malformed packet: taking it for "need more"
/// would silently drop the packet, or take whatever follows a bad CONNECT for the CONNECT.
fn need_more<T>(buf: &BytesMut, len_before: usize) -> Result<Option<T>, WireError> {
    if buf.len() == len_before {
        Ok(None)
    } else {
        Err(WireError::Truncated)
    }
}

/// The protocol level byte of a CONNECT at the start of `buf`, once enough bytes are there.
fn connect_protocol_level(buf: &[u8]) -> Result<Option<u8>, WireError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    if first >> 4 != 1 {
        return Err(WireError::NotConnect);
    }
    let mut i = 1;
    loop {
        let Some(&b) = buf.get(i) else {
            return Ok(None);
        };
        i += 1;
        if b & 0x80 == 0 {
            break;
        }
        if i > 4 {
            return Err(WireError::NotConnect);
        }
    }
    let (Some(&hi), Some(&lo)) = (buf.get(i), buf.get(i + 1)) else {
        return Ok(None);
    };
    let name_len = u16::from_be_bytes([hi, lo]) as usize;
    Ok(buf.get(i + 2 + name_len).copied())
}

/// Reads the CONNECT from the start of `buf`; `Ok(None)` means more bytes are needed.
pub fn read_connect(buf: &mut BytesMut, max_size: usize) -> Result<Option<Connect>, WireError> {
    let Some(level) = connect_protocol_level(buf)? else {
        if buf.len() > max_size {
            return Err(WireError::TooLarge(max_size));
        }
        return Ok(None);
    };
    let len_before = buf.len();
    match level {
        4 => match v4::Packet::read(buf, max_size) {
            Ok(v4::Packet::Connect(c)) => Ok(Some(Connect {
                protocol: Protocol::V311,
                client_id: c.client_id,
                keep_alive_secs: c.keep_alive,
                username: c.login.as_ref().map(|l| l.username.clone()),
                password: c.login.map(|l| l.password),
                has_will: c.last_will.is_some(),
            })),
            Ok(_) => Err(WireError::NotConnect),
            Err(mb4::Error::InsufficientBytes(_)) => need_more(buf, len_before),
            Err(mb4::Error::PayloadSizeLimitExceeded(_)) => Err(WireError::TooLarge(max_size)),
            Err(e) => Err(WireError::V4(e)),
        },
        5 => match v5::Packet::read(buf, Some(max_size as u32)) {
            Ok(v5::Packet::Connect(c, will, login)) => Ok(Some(Connect {
                protocol: Protocol::V5,
                client_id: c.client_id,
                keep_alive_secs: c.keep_alive,
                username: login.as_ref().map(|l| l.username.clone()),
                password: login.map(|l| l.password),
                has_will: will.is_some(),
            })),
            Ok(_) => Err(WireError::NotConnect),
            Err(mb5::Error::InsufficientBytes(_)) => need_more(buf, len_before),
            Err(mb5::Error::PayloadSizeLimitExceeded { .. }) => Err(WireError::TooLarge(max_size)),
            Err(e) => Err(WireError::V5(e)),
        },
        other => Err(WireError::UnsupportedProtocol(other)),
    }
}

fn qos_v4(q: mb4::QoS) -> u8 {
    q as u8
}
fn qos_v5(q: mb5::QoS) -> u8 {
    q as u8
}

/// Reads the next packet after CONNECT; `Ok(None)` means more bytes are needed.
pub fn read(
    protocol: Protocol,
    buf: &mut BytesMut,
    max_size: usize,
) -> Result<Option<Inbound>, WireError> {
    let len_before = buf.len();
    match protocol {
        Protocol::V311 => match v4::Packet::read(buf, max_size) {
            Ok(p) => Ok(Some(from_v4(p))),
            Err(mb4::Error::InsufficientBytes(_)) => need_more(buf, len_before),
            Err(mb4::Error::PayloadSizeLimitExceeded(_)) => Err(WireError::TooLarge(max_size)),
            Err(e) => Err(WireError::V4(e)),
        },
        // MQTT 5 §3.14.2.1: a DISCONNECT with reason 0x00 and no properties may have a remaining
        // length of 0, as rumqttc and mosquitto send it; rumqttc's reader refuses every empty
        // packet but PINGREQ/PINGRESP, so it is recognised here.
        Protocol::V5 if buf.starts_with(&[0xE0, 0x00]) => {
            let _ = buf.split_to(2);
            Ok(Some(Inbound::Disconnect))
        }
        Protocol::V5 => match v5::Packet::read(buf, Some(max_size as u32)) {
            Ok(p) => Ok(Some(from_v5(p))),
            Err(mb5::Error::InsufficientBytes(_)) => need_more(buf, len_before),
            Err(mb5::Error::PayloadSizeLimitExceeded { .. }) => Err(WireError::TooLarge(max_size)),
            Err(e) => Err(WireError::V5(e)),
        },
    }
}

fn from_v4(p: v4::Packet) -> Inbound {
    match p {
        v4::Packet::Publish(p) => Inbound::Publish {
            topic: p.topic,
            topic_alias: None,
            qos: qos_v4(p.qos),
            pkid: p.pkid,
            payload: p.payload,
        },
        v4::Packet::PubAck(_) | v4::Packet::PubComp(_) => Inbound::PubAck,
        v4::Packet::PubRec(_) => Inbound::ProtocolViolation("PUBREC (the broker sends only QoS 0)"),
        v4::Packet::PubRel(r) => Inbound::PubRel { pkid: r.pkid },
        v4::Packet::Subscribe(s) => Inbound::Subscribe {
            pkid: s.pkid,
            filters: s
                .filters
                .into_iter()
                .map(|f| (f.path, qos_v4(f.qos)))
                .collect(),
        },
        v4::Packet::Unsubscribe(u) => Inbound::Unsubscribe {
            pkid: u.pkid,
            filters: u.topics,
        },
        v4::Packet::PingReq => Inbound::PingReq,
        v4::Packet::Disconnect => Inbound::Disconnect,
        v4::Packet::Connect(_) => Inbound::ProtocolViolation("a second CONNECT"),
        v4::Packet::ConnAck(_)
        | v4::Packet::SubAck(_)
        | v4::Packet::UnsubAck(_)
        | v4::Packet::PingResp => Inbound::ProtocolViolation("a server-to-client packet"),
    }
}

fn from_v5(p: v5::Packet) -> Inbound {
    match p {
        v5::Packet::Publish(p) => Inbound::Publish {
            topic: String::from_utf8_lossy(&p.topic).into_owned(),
            topic_alias: p.properties.as_ref().and_then(|props| props.topic_alias),
            qos: qos_v5(p.qos),
            pkid: p.pkid,
            payload: p.payload,
        },
        v5::Packet::PubAck(_) | v5::Packet::PubComp(_) => Inbound::PubAck,
        v5::Packet::PubRec(_) => Inbound::ProtocolViolation("PUBREC (the broker sends only QoS 0)"),
        v5::Packet::PubRel(r) => Inbound::PubRel { pkid: r.pkid },
        v5::Packet::Subscribe(s) => Inbound::Subscribe {
            pkid: s.pkid,
            filters: s
                .filters
                .into_iter()
                .map(|f| (f.path, qos_v5(f.qos)))
                .collect(),
        },
        v5::Packet::Unsubscribe(u) => Inbound::Unsubscribe {
            pkid: u.pkid,
            filters: u.filters,
        },
        v5::Packet::PingReq(_) => Inbound::PingReq,
        v5::Packet::Disconnect(_) => Inbound::Disconnect,
        v5::Packet::Connect(..) => Inbound::ProtocolViolation("a second CONNECT"),
        v5::Packet::Auth(_) => {
            Inbound::ProtocolViolation("AUTH (enhanced authentication is not offered)")
        }
        v5::Packet::ConnAck(_)
        | v5::Packet::SubAck(_)
        | v5::Packet::UnsubAck(_)
        | v5::Packet::PingResp(_) => Inbound::ProtocolViolation("a server-to-client packet"),
    }
}

/// Appends one packet to `out`. Packets the protocol version cannot express (an MQTT 5
/// DISCONNECT on 3.1.1) are skipped: the caller then just closes the connection.
pub fn write(protocol: Protocol, packet: Outbound, out: &mut BytesMut) {
    let max = usize::MAX;
    let result = match protocol {
        Protocol::V311 => match to_v4(packet) {
            Some(p) => p.write(out, max).map(|_| ()).map_err(WireError::V4),
            None => Ok(()),
        },
        Protocol::V5 => match to_v5(packet) {
            // Written by hand (MQTT 5 §3.14: reason code, then an empty property list): rumqttc
            // 0.25 encodes a DISCONNECT without properties with a stray 0x00 after the packet,
            // and one with empty properties without its reason code. Clients then saw a parse
            // error, or a normal disconnection, instead of the reason.
            v5::Packet::Disconnect(d) => {
                out.extend_from_slice(&[0xE0, 0x02, d.reason_code as u8, 0x00]);
                Ok(())
            }
            p => p.write(out, None).map(|_| ()).map_err(WireError::V5),
        },
    };
    if let Err(e) = result {
        // Only our own packets are written here; failing to encode one is a bug worth a log line.
        tracing::error!(error = %e, "could not encode an MQTT packet");
    }
}

fn to_v4(packet: Outbound) -> Option<v4::Packet> {
    Some(match packet {
        Outbound::ConnAckAccepted { .. } => v4::Packet::ConnAck(v4::ConnAck {
            session_present: false,
            code: v4::ConnectReturnCode::Success,
        }),
        Outbound::ConnAckRefused(r) => v4::Packet::ConnAck(v4::ConnAck {
            session_present: false,
            code: match r {
                ConnectRefusal::BadCredentials => v4::ConnectReturnCode::BadUserNamePassword,
                ConnectRefusal::NotAuthorized | ConnectRefusal::Banned => {
                    v4::ConnectReturnCode::NotAuthorized
                }
                ConnectRefusal::ServerUnavailable => v4::ConnectReturnCode::ServiceUnavailable,
            },
        }),
        // MQTT 3.1.1 has no negative acknowledgement; refusals are handled by the connection.
        Outbound::PubAck { pkid, .. } => v4::Packet::PubAck(v4::PubAck { pkid }),
        Outbound::PubRec { pkid, .. } => v4::Packet::PubRec(v4::PubRec { pkid }),
        Outbound::PubComp { pkid } => v4::Packet::PubComp(v4::PubComp { pkid }),
        Outbound::SubAck { pkid, granted } => v4::Packet::SubAck(v4::SubAck {
            pkid,
            return_codes: granted
                .into_iter()
                .map(|g| match g {
                    Some(q) => v4::SubscribeReasonCode::Success(v4_qos(q)),
                    None => v4::SubscribeReasonCode::Failure,
                })
                .collect(),
        }),
        Outbound::UnsubAck { pkid, .. } => v4::Packet::UnsubAck(v4::UnsubAck { pkid }),
        Outbound::PingResp => v4::Packet::PingResp,
        Outbound::Publish { topic, payload } => v4::Packet::Publish(v4::Publish {
            dup: false,
            qos: mb4::QoS::AtMostOnce,
            retain: false,
            topic,
            pkid: 0,
            payload,
        }),
        Outbound::Disconnect(_) => return None,
    })
}

fn v4_qos(q: u8) -> mb4::QoS {
    match q {
        0 => mb4::QoS::AtMostOnce,
        1 => mb4::QoS::AtLeastOnce,
        _ => mb4::QoS::ExactlyOnce,
    }
}

fn v5_qos(q: u8) -> mb5::QoS {
    match q {
        0 => mb5::QoS::AtMostOnce,
        1 => mb5::QoS::AtLeastOnce,
        _ => mb5::QoS::ExactlyOnce,
    }
}

fn to_v5(packet: Outbound) -> v5::Packet {
    match packet {
        Outbound::ConnAckAccepted {
            receive_maximum,
            max_packet_size,
        } => v5::Packet::ConnAck(v5::ConnAck {
            session_present: false,
            code: v5::ConnectReturnCode::Success,
            properties: Some(v5::ConnAckProperties {
                session_expiry_interval: None,
                receive_max: Some(receive_maximum),
                max_qos: None,
                retain_available: Some(0),
                max_packet_size: Some(max_packet_size),
                assigned_client_identifier: None,
                topic_alias_max: Some(TOPIC_ALIAS_MAX),
                reason_string: None,
                user_properties: Vec::new(),
                wildcard_subscription_available: Some(1),
                subscription_identifiers_available: Some(0),
                shared_subscription_available: Some(0),
                server_keep_alive: None,
                response_information: None,
                server_reference: None,
                authentication_method: None,
                authentication_data: None,
            }),
        }),
        Outbound::ConnAckRefused(r) => v5::Packet::ConnAck(v5::ConnAck {
            session_present: false,
            code: match r {
                ConnectRefusal::BadCredentials => v5::ConnectReturnCode::BadUserNamePassword,
                ConnectRefusal::NotAuthorized => v5::ConnectReturnCode::NotAuthorized,
                ConnectRefusal::ServerUnavailable => v5::ConnectReturnCode::ServerUnavailable,
                ConnectRefusal::Banned => v5::ConnectReturnCode::Banned,
            },
            properties: None,
        }),
        Outbound::PubAck { pkid, refusal } => v5::Packet::PubAck(v5::PubAck {
            pkid,
            reason: match refusal {
                None => v5::PubAckReason::Success,
                Some(Refusal::NotAuthorized) => v5::PubAckReason::NotAuthorized,
                Some(Refusal::PayloadFormatInvalid) => v5::PubAckReason::PayloadFormatInvalid,
                Some(Refusal::TopicNameInvalid) => v5::PubAckReason::TopicNameInvalid,
            },
            properties: None,
        }),
        Outbound::PubRec { pkid, refusal } => v5::Packet::PubRec(v5::PubRec {
            pkid,
            reason: match refusal {
                None => v5::PubRecReason::Success,
                Some(Refusal::NotAuthorized) => v5::PubRecReason::NotAuthorized,
                Some(Refusal::PayloadFormatInvalid) => v5::PubRecReason::PayloadFormatInvalid,
                Some(Refusal::TopicNameInvalid) => v5::PubRecReason::TopicNameInvalid,
            },
            properties: None,
        }),
        Outbound::PubComp { pkid } => v5::Packet::PubComp(v5::PubComp {
            pkid,
            reason: v5::PubCompReason::Success,
            properties: None,
        }),
        Outbound::SubAck { pkid, granted } => v5::Packet::SubAck(v5::SubAck {
            pkid,
            return_codes: granted
                .into_iter()
                .map(|g| match g {
                    Some(q) => v5::SubscribeReasonCode::Success(v5_qos(q)),
                    None => v5::SubscribeReasonCode::NotAuthorized,
                })
                .collect(),
            properties: None,
        }),
        Outbound::UnsubAck { pkid, count } => v5::Packet::UnsubAck(v5::UnsubAck {
            pkid,
            reasons: vec![v5::UnsubAckReason::Success; count],
            properties: None,
        }),
        Outbound::PingResp => v5::Packet::PingResp(v5::PingResp),
        Outbound::Publish { topic, payload } => v5::Packet::Publish(v5::Publish {
            dup: false,
            qos: mb5::QoS::AtMostOnce,
            retain: false,
            topic: Bytes::from(topic),
            pkid: 0,
            payload,
            properties: None,
        }),
        Outbound::Disconnect(reason) => v5::Packet::Disconnect(v5::Disconnect {
            reason_code: match reason {
                DisconnectReason::ProtocolError => v5::DisconnectReasonCode::ProtocolError,
                DisconnectReason::PacketTooLarge => v5::DisconnectReasonCode::PacketTooLarge,
                DisconnectReason::NotAuthorized => v5::DisconnectReasonCode::NotAuthorized,
                DisconnectReason::SessionTakenOver => v5::DisconnectReasonCode::SessionTakenOver,
                DisconnectReason::ServerShuttingDown => {
                    v5::DisconnectReasonCode::ServerShuttingDown
                }
                DisconnectReason::KeepAliveTimeout => v5::DisconnectReasonCode::KeepAliveTimeout,
                DisconnectReason::TopicAliasInvalid => v5::DisconnectReasonCode::TopicAliasInvalid,
                DisconnectReason::UnspecifiedError => v5::DisconnectReasonCode::UnspecifiedError,
            },
            properties: None,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_v311_and_a_v5_connect() {
        let mut buf = BytesMut::new();
        let mut c = v4::Connect::new("dev-1");
        c.set_login("dev-1", "secret");
        v4::Packet::Connect(c).write(&mut buf, 1024).unwrap();
        // Byte by byte: every prefix asks for more rather than failing.
        let full = buf.clone();
        for n in 0..full.len() {
            let mut part = BytesMut::from(&full[..n]);
            assert!(
                read_connect(&mut part, 1024).unwrap().is_none(),
                "prefix {n}"
            );
        }
        let c = read_connect(&mut buf, 1024).unwrap().unwrap();
        assert_eq!(c.protocol, Protocol::V311);
        assert_eq!(c.username.as_deref(), Some("dev-1"));
        assert_eq!(c.password.as_deref(), Some("secret"));

        let mut buf = BytesMut::new();
        let c5 = v5::Connect {
            keep_alive: 30,
            client_id: "dev-2".into(),
            clean_start: true,
            properties: None,
        };
        v5::Packet::Connect(c5, None, Some(v5::Login::new("dev-2", "s")))
            .write(&mut buf, None)
            .unwrap();
        let c = read_connect(&mut buf, 1024).unwrap().unwrap();
        assert_eq!(c.protocol, Protocol::V5);
        assert_eq!(c.keep_alive_secs, 30);
    }

    #[test]
    fn refuses_what_is_not_a_connect() {
        let mut buf = BytesMut::from(&b"GET / HTTP/1.1\r\n\r\n"[..]);
        assert!(matches!(
            read_connect(&mut buf, 1024),
            Err(WireError::NotConnect)
        ));
        // CONNECT with protocol level 3 (MQTT 3.1) is not supported.
        let mut buf = BytesMut::from(
            &[
                0x10u8, 0x0c, 0, 6, b'M', b'Q', b'I', b's', b'd', b'p', 3, 0, 0, 0,
            ][..],
        );
        assert!(matches!(
            read_connect(&mut buf, 1024),
            Err(WireError::UnsupportedProtocol(3))
        ));
    }

    #[test]
    fn a_v5_disconnect_with_a_reason_is_exactly_one_packet() {
        for reason in [
            DisconnectReason::ProtocolError,
            DisconnectReason::PacketTooLarge,
            DisconnectReason::NotAuthorized,
            DisconnectReason::SessionTakenOver,
            DisconnectReason::ServerShuttingDown,
            DisconnectReason::KeepAliveTimeout,
            DisconnectReason::TopicAliasInvalid,
            DisconnectReason::UnspecifiedError,
        ] {
            let mut out = BytesMut::new();
            write(Protocol::V5, Outbound::Disconnect(reason), &mut out);
            let Ok(v5::Packet::Disconnect(d)) = v5::Packet::read(&mut out, None) else {
                panic!("{reason:?} is not a readable DISCONNECT");
            };
            assert_eq!(
                v5::Packet::Disconnect(d),
                to_v5(Outbound::Disconnect(reason)),
                "the reason code survives"
            );
            assert!(out.is_empty(), "{reason:?} left {out:?} behind");
        }
    }

    #[test]
    fn a_v5_disconnect_without_reason_code_is_a_clean_disconnect() {
        let mut buf = BytesMut::from(&[0xE0u8, 0x00, 0xC0, 0x00][..]);
        assert_eq!(
            read(Protocol::V5, &mut buf, 1024).unwrap(),
            Some(Inbound::Disconnect)
        );
        assert_eq!(
            read(Protocol::V5, &mut buf, 1024).unwrap(),
            Some(Inbound::PingReq)
        );
        let mut buf = BytesMut::from(&[0xE0u8][..]);
        assert_eq!(read(Protocol::V5, &mut buf, 1024).unwrap(), None);
    }

    /// Found by `fuzz/fuzz_targets/mqtt_packets.rs`: in MQTT 5, a property length (a variable
    /// byte integer) cut short by the end of a complete packet makes rumqttc answer
    /// `InsufficientBytes`, after it has split the packet off the buffer. Read as "need more
    /// bytes", the packet vanished without an error and, for a CONNECT, whatever came next would
    /// have been read as the CONNECT.
    #[test]
    fn a_packet_whose_fields_run_past_its_end_is_malformed_not_incomplete() {
        // The fuzzer's input: an UNSUBSCRIBE of remaining length 3 whose property length (0xFD)
        // announces a continuation byte the packet does not have.
        let mut buf = BytesMut::from(&[0xAAu8, 0x03, 0xEB, 0xA1, 0xFD][..]);
        assert!(matches!(
            read(Protocol::V5, &mut buf, 4096),
            Err(WireError::Truncated)
        ));
        // A QoS 0 PUBLISH to "a" ending in a property length of 0x80; a PINGREQ follows.
        let mut buf = BytesMut::from(&[0x30u8, 0x04, 0x00, 0x01, b'a', 0x80, 0xC0, 0x00][..]);
        assert!(matches!(
            read(Protocol::V5, &mut buf, 4096),
            Err(WireError::Truncated)
        ));
        // A CONNECT ending in a property length of 0x80, then a PINGREQ.
        let mut buf = BytesMut::from(
            &[
                0x10u8, 0x0b, 0, 4, b'M', b'Q', b'T', b'T', 5, 0x02, 0, 60, 0x80, 0xC0, 0x00,
            ][..],
        );
        assert!(matches!(
            read_connect(&mut buf, 4096),
            Err(WireError::Truncated)
        ));
        // An incomplete packet still asks for more and leaves the buffer as it was.
        for protocol in [Protocol::V311, Protocol::V5] {
            let mut buf = BytesMut::from(&[0x30u8, 0x0a, 0x00, 0x01, b'a'][..]);
            assert_eq!(read(protocol, &mut buf, 4096).unwrap(), None);
            assert_eq!(buf.len(), 5);
        }
    }

    #[test]
    fn a_puback_round_trips_in_both_versions() {
        for protocol in [Protocol::V311, Protocol::V5] {
            let mut out = BytesMut::new();
            write(
                protocol,
                Outbound::PubAck {
                    pkid: 7,
                    refusal: None,
                },
                &mut out,
            );
            assert_eq!(&out[..], &[0x40, 0x02, 0x00, 0x07]);
        }
    }
}
