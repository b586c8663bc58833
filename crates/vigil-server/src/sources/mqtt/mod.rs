//! The embedded MQTT broker: MQTT 3.1.1 and 5.0 on one port, built for device ingest.
//!
//! Why our own connection handling around rumqttc's packet codecs rather than an embedded
//! general-purpose broker: Vigil must send PUBACK only after a reading is durably committed, which
//! no embeddable broker we tried lets a hook delay (see `docs/decisions/mqtt-broker.md`). What a
//! device needs from the broker is small and fully implemented here: authenticated CONNECT,
//! QoS 0/1/2 publishes to its own readings topic (acknowledged after commit, in order, with at
//! most `receive_maximum` in flight), subscriptions inside its own subtree (delivered at QoS 0),
//! keep-alive, session take-over, and clear refusals. Scale-out to a broker cluster uses an
//! external broker instead (a later issue).

pub mod commands;
pub mod topics;
pub mod wire;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::FutureExt;
use futures_util::stream::{FuturesOrdered, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use vigil_model::DeviceId;
use vigil_model::audit::Channel;
use vigil_store::Store;

use crate::audit;
use crate::auth;
use crate::pipeline::{self, DeviceMessage, Ingest, MessageError, MessageReport};
use crate::telemetry;
use crate::transport::{self, PeerIdentity};
use topics::PublishTarget;
use wire::{ConnectRefusal, DisconnectReason, Inbound, Outbound, Protocol, Refusal};

#[derive(Debug, Clone)]
pub struct MqttConfig {
    /// Largest packet accepted; larger ones close the connection (MQTT 5: DISCONNECT 0x95).
    pub max_packet_size: usize,
    /// QoS 1/2 publishes a connection may have awaiting commit; beyond it, the socket is not read.
    pub receive_maximum: u16,
    /// Time a new connection has to send its CONNECT.
    pub connect_timeout: Duration,
    /// Messages queued for delivery to one connection; when full, QoS 0 deliveries are dropped
    /// (they are advisory error reports) and counted.
    pub outbound_capacity: usize,
}

impl Default for MqttConfig {
    fn default() -> Self {
        MqttConfig {
            max_packet_size: 300 * 1024,
            receive_maximum: 1024,
            connect_timeout: Duration::from_secs(10),
            outbound_capacity: 256,
        }
    }
}

/// Everything a connection needs, shared by all of them.
pub struct BrokerContext {
    pub store: Arc<dyn Store>,
    pub ingest: Ingest,
    pub limits: vigil_codecs::DecodeLimits,
    pub config: MqttConfig,
    pub sessions: Sessions,
    /// Refused sign-ins are audited.
    pub audit: crate::audit::Auditor,
}

/// The open device connections, for delivering to a device's subscriptions and for take-over.
#[derive(Default)]
pub struct Sessions {
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Session>>,
}

struct Session {
    device: DeviceId,
    client_id: String,
    filters: Vec<String>,
    outbound: mpsc::Sender<Outbound>,
    taken_over: CancellationToken,
}

impl Sessions {
    fn register(
        &self,
        device: DeviceId,
        client_id: String,
        outbound: mpsc::Sender<Outbound>,
    ) -> (u64, CancellationToken) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let token = CancellationToken::new();
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        // MQTT: a new connection with the same client id takes the session over. An empty client
        // id asks the server for a unique one (3.1.1 §3.1.3.1), so it never takes anything over.
        let client_id = if client_id.is_empty() {
            format!("vigil-assigned-{id}")
        } else {
            client_id
        };
        for s in open.values() {
            if s.client_id == client_id && s.device == device {
                s.taken_over.cancel();
            }
        }
        open.insert(
            id,
            Session {
                device,
                client_id,
                filters: Vec::new(),
                outbound,
                taken_over: token.clone(),
            },
        );
        (id, token)
    }

    /// Closes every open connection of `device` (its credentials were rotated or revoked): it
    /// must sign in again with what it now has.
    pub fn disconnect_device(&self, device: &DeviceId) -> usize {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let mut closed = 0;
        for s in open.values().filter(|s| &s.device == device) {
            s.taken_over.cancel();
            closed += 1;
        }
        closed
    }

    fn unregister(&self, id: u64) {
        self.open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
    }

    fn subscribe(&self, id: u64, filter: String) {
        if let Some(s) = self
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(&id)
            && !s.filters.contains(&filter)
        {
            s.filters.push(filter);
        }
    }

    fn unsubscribe(&self, id: u64, filter: &str) {
        if let Some(s) = self
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(&id)
        {
            s.filters.retain(|f| f != filter);
        }
    }

    /// Delivers a message to every connection of `device` subscribed to `topic`; returns how many
    /// connections it was queued for.
    pub fn deliver(&self, device: &DeviceId, topic: &str, payload: Bytes) -> usize {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let mut delivered = 0;
        for s in open.values().filter(|s| &s.device == device) {
            if s.filters.iter().any(|f| topics::matches(f, topic)) {
                let packet = Outbound::Publish {
                    topic: topic.to_owned(),
                    payload: payload.clone(),
                };
                match s.outbound.try_send(packet) {
                    Ok(()) => delivered += 1,
                    Err(_) => telemetry::mqtt_refused("delivery_queue_full"),
                }
            }
        }
        delivered
    }

    /// Whether the session has a subscription that matches `topic`.
    pub fn subscribed(&self, session: u64, topic: &str) -> bool {
        self.open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&session)
            .is_some_and(|s| s.filters.iter().any(|f| topics::matches(f, topic)))
    }

    pub fn connected(&self) -> usize {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// Accepts connections until `shutdown`; each connection runs in its own task, so a fault in one
/// (even a panic in a packet parser) never affects another.
pub async fn serve(
    listener: transport::Listener,
    ctx: Arc<BrokerContext>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let for_connections = shutdown.clone();
    transport::serve(
        listener,
        shutdown,
        tracker,
        move |stream, peer, identity| {
            let (ctx, shutdown) = (ctx.clone(), for_connections.clone());
            async move {
                if let Err(reason) = Connection::run(stream, peer, identity, ctx, shutdown).await {
                    tracing::debug!(%reason, "mqtt connection closed");
                }
            }
        },
    )
    .await
}

/// The outcome of one publish, produced (in order) once its commit has finished.
struct PublishDone {
    qos: u8,
    pkid: u16,
    result: Result<Option<Refusal>, ()>,
    /// An error report for the device's `errors` topic.
    report: Option<Bytes>,
}

struct Connection {
    protocol: Protocol,
    device: DeviceId,
    session_id: u64,
    write_buf: BytesMut,
    aliases: HashMap<u16, String>,
}

impl Connection {
    async fn run<S: AsyncRead + AsyncWrite + Unpin>(
        mut stream: S,
        peer: SocketAddr,
        identity: PeerIdentity,
        ctx: Arc<BrokerContext>,
        shutdown: CancellationToken,
    ) -> Result<(), String> {
        let mut read_buf = BytesMut::with_capacity(4096);
        let max = ctx.config.max_packet_size;
        let connect = tokio::time::timeout(ctx.config.connect_timeout, async {
            loop {
                if let Some(c) =
                    wire::read_connect(&mut read_buf, max).map_err(|e| e.to_string())?
                {
                    return Ok::<_, String>(c);
                }
                if stream
                    .read_buf(&mut read_buf)
                    .await
                    .map_err(|e| e.to_string())?
                    == 0
                {
                    return Err("closed before CONNECT".to_owned());
                }
            }
        })
        .await
        .map_err(|_| {
            telemetry::mqtt_refused("connect_timeout");
            "no CONNECT in time".to_owned()
        })?
        .inspect_err(|_| telemetry::mqtt_refused("malformed_connect"))?;

        let protocol = connect.protocol;
        let device = match authenticate(&ctx, &connect, &identity, peer).await {
            Ok(device) => device,
            Err((refusal, reason)) => {
                telemetry::mqtt_refused(reason);
                tracing::info!(%peer, reason, "mqtt connection refused");
                let claimed = connect.username.as_deref();
                let entry = audit::device_login_refused(claimed, Channel::Mqtt, Some(peer), reason);
                ctx.audit.record_done(entry).await;
                let mut out = BytesMut::new();
                wire::write(protocol, Outbound::ConnAckRefused(refusal), &mut out);
                let _ = stream.write_all(&out).await;
                return Err(format!("refused: {reason}"));
            }
        };
        let (outbound_tx, mut outbound_rx) = mpsc::channel(ctx.config.outbound_capacity.max(1));
        let (session_id, taken_over) =
            ctx.sessions
                .register(device.clone(), connect.client_id.clone(), outbound_tx);
        telemetry::devices_connected(1.0);
        let mut conn = Connection {
            protocol,
            device,
            session_id,
            write_buf: BytesMut::with_capacity(4096),
            aliases: HashMap::new(),
        };
        conn.write_buf_push(Outbound::ConnAckAccepted {
            receive_maximum: ctx.config.receive_maximum,
            max_packet_size: max as u32,
        });
        let result = conn
            .serve(
                &mut stream,
                &mut read_buf,
                &ctx,
                &mut outbound_rx,
                connect.keep_alive_secs,
                &shutdown,
                &taken_over,
            )
            .await;
        ctx.sessions.unregister(conn.session_id);
        telemetry::devices_connected(-1.0);
        let _ = stream.shutdown().await;
        result
    }

    fn write_buf_push(&mut self, packet: Outbound) {
        wire::write(self.protocol, packet, &mut self.write_buf);
    }

    async fn flush<S: AsyncWrite + Unpin>(&mut self, stream: &mut S) -> Result<(), String> {
        if !self.write_buf.is_empty() {
            stream
                .write_all(&self.write_buf)
                .await
                .map_err(|e| e.to_string())?;
            self.write_buf.clear();
        }
        Ok(())
    }

    async fn close_with<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        stream: &mut S,
        reason: DisconnectReason,
    ) -> Result<(), String> {
        self.write_buf_push(Outbound::Disconnect(reason));
        self.flush(stream).await
    }

    #[allow(clippy::too_many_arguments)]
    async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        stream: &mut S,
        read_buf: &mut BytesMut,
        ctx: &Arc<BrokerContext>,
        outbound_rx: &mut mpsc::Receiver<Outbound>,
        keep_alive_secs: u16,
        shutdown: &CancellationToken,
        taken_over: &CancellationToken,
    ) -> Result<(), String> {
        let max = ctx.config.max_packet_size;
        let receive_maximum = ctx.config.receive_maximum as usize;
        let mut inflight: FuturesOrdered<futures_util::future::BoxFuture<'static, PublishDone>> =
            FuturesOrdered::new();
        // MQTT: the server closes a connection silent for 1.5 × keep-alive.
        let idle_limit =
            (keep_alive_secs > 0).then(|| Duration::from_millis(keep_alive_secs as u64 * 1500));
        let mut last_heard = tokio::time::Instant::now();
        loop {
            // Take every complete packet already buffered before waiting again.
            while inflight.len() < receive_maximum {
                let packet = match wire::read(self.protocol, read_buf, max) {
                    Ok(Some(p)) => p,
                    Ok(None) => break,
                    Err(wire::WireError::TooLarge(_)) => {
                        telemetry::mqtt_refused("packet_too_large");
                        self.close_with(stream, DisconnectReason::PacketTooLarge)
                            .await?;
                        return Err("packet too large".into());
                    }
                    Err(e) => {
                        telemetry::mqtt_refused("malformed_packet");
                        self.close_with(stream, DisconnectReason::ProtocolError)
                            .await?;
                        return Err(e.to_string());
                    }
                };
                // Over the device's rate: hold this publish (already read) and read nothing
                // more until a token is free. Backpressure, never a drop.
                while matches!(packet, Inbound::Publish { .. })
                    && let Err(wait) = ctx.ingest.guard().check_mqtt_device(&self.device)
                {
                    telemetry::rate_limited("mqtt_device");
                    self.flush(stream).await?;
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = taken_over.cancelled() => {
                            self.close_with(stream, DisconnectReason::SessionTakenOver).await?;
                            return Err("session taken over".into());
                        }
                    }
                }
                if !self.handle(packet, ctx, &mut inflight, stream).await? {
                    // Finish what is in flight so every committed reading is acknowledged.
                    while let Some(done) = inflight.next().await {
                        self.finish(done, ctx, stream).await?;
                    }
                    self.flush(stream).await?;
                    return Ok(());
                }
            }
            self.flush(stream).await?;
            let can_read = inflight.len() < receive_maximum;
            let idle_deadline = idle_limit.map(|l| last_heard + l);
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => {
                    while let Some(done) = inflight.next().await {
                        self.finish(done, ctx, stream).await?;
                    }
                    self.close_with(stream, DisconnectReason::ServerShuttingDown).await?;
                    return Ok(());
                }
                _ = taken_over.cancelled() => {
                    self.close_with(stream, DisconnectReason::SessionTakenOver).await?;
                    return Err("session taken over".into());
                }
                Some(done) = inflight.next(), if !inflight.is_empty() => {
                    self.finish(done, ctx, stream).await?;
                    // Acknowledge everything else that is already done in one write.
                    while let Some(Some(done)) = inflight.next().now_or_never() {
                        self.finish(done, ctx, stream).await?;
                    }
                }
                Some(packet) = outbound_rx.recv() => {
                    self.write_buf_push(packet);
                }
                read = stream.read_buf(read_buf), if can_read => {
                    match read {
                        Ok(0) => return Err("peer closed the connection".into()),
                        Ok(_) => last_heard = tokio::time::Instant::now(),
                        Err(e) => return Err(e.to_string()),
                    }
                }
                // Only while the socket is being read: during backpressure the client's packets
                // (PINGREQs too) wait unread in the socket, and silence is ours, not the client's.
                // Once reading resumes, `biased` reads what waited before this can fire.
                _ = sleep_until(idle_deadline), if can_read => {
                    telemetry::mqtt_refused("keep_alive_timeout");
                    self.close_with(stream, DisconnectReason::KeepAliveTimeout).await?;
                    return Err("keep-alive expired".into());
                }
            }
        }
    }

    /// Handles one packet; `Ok(false)` when the client disconnected cleanly.
    async fn handle<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        packet: Inbound,
        ctx: &Arc<BrokerContext>,
        inflight: &mut FuturesOrdered<futures_util::future::BoxFuture<'static, PublishDone>>,
        stream: &mut S,
    ) -> Result<bool, String> {
        match packet {
            Inbound::Publish {
                topic,
                topic_alias,
                qos,
                pkid,
                payload,
            } => {
                // MQTT 5 §3.3.2.3.4: an alias of 0 or above the maximum the CONNACK gave is a
                // protocol error. Checking it also bounds the alias table a client can grow.
                if topic_alias.is_some_and(|a| a == 0 || a > wire::TOPIC_ALIAS_MAX) {
                    telemetry::mqtt_refused("topic_alias_invalid");
                    self.close_with(stream, DisconnectReason::TopicAliasInvalid)
                        .await?;
                    return Err("topic alias out of range".into());
                }
                let topic = match (topic.is_empty(), topic_alias) {
                    (false, Some(alias)) => {
                        self.aliases.insert(alias, topic.clone());
                        topic
                    }
                    (true, Some(alias)) => match self.aliases.get(&alias) {
                        Some(t) => t.clone(),
                        None => {
                            telemetry::mqtt_refused("unknown_topic_alias");
                            self.close_with(stream, DisconnectReason::ProtocolError)
                                .await?;
                            return Err("unknown topic alias".into());
                        }
                    },
                    _ => topic,
                };
                match topics::classify_publish(self.device.as_str(), &topic) {
                    PublishTarget::OwnCommandAck => {
                        let ctx = ctx.clone();
                        let device = self.device.clone();
                        inflight.push_back(Box::pin(async move {
                            let outcome = commands::confirm(&ctx, &device, &payload).await;
                            publish_done(qos, pkid, outcome)
                        }));
                    }
                    target @ (PublishTarget::OwnReadings
                    | PublishTarget::OwnEvents
                    | PublishTarget::OwnGatewayBle
                    | PublishTarget::Vendor(_)) => {
                        let ctx = ctx.clone();
                        let device = self.device.clone();
                        let message = match target {
                            PublishTarget::OwnEvents => DeviceMessage::Event,
                            PublishTarget::OwnGatewayBle => DeviceMessage::Ble,
                            PublishTarget::Vendor(template) => DeviceMessage::Vendor(template),
                            _ => DeviceMessage::Readings,
                        };
                        inflight.push_back(Box::pin(async move {
                            let outcome = pipeline::ingest_device_message(
                                &ctx.ingest,
                                &ctx.store,
                                &ctx.limits,
                                "mqtt",
                                &device,
                                message,
                                &payload,
                            )
                            .await;
                            publish_done(qos, pkid, outcome)
                        }));
                    }
                    target => {
                        let reason = if target == PublishTarget::Foreign {
                            "foreign_topic"
                        } else {
                            "read_only_topic"
                        };
                        // Another device's part of the tree (not a stray topic outside it):
                        // this device tried to speak as another one.
                        if target == PublishTarget::Foreign && topics::is_device_topic(&topic) {
                            ctx.ingest.guard().intrusion().signal(
                                crate::intrusion::SignalKind::TopicViolation,
                                crate::intrusion::Subject::Device(self.device.clone()),
                                1,
                            );
                        }
                        telemetry::mqtt_refused(reason);
                        tracing::warn!(reason, "device publish refused");
                        let report = error_report(
                            "not_authorized",
                            &format!(
                                "a device may publish only to {} and {}",
                                topics::obs_topic(self.device.as_str()),
                                topics::events_topic(self.device.as_str())
                            ),
                        );
                        ctx.sessions.deliver(
                            &self.device,
                            &topics::errors_topic(self.device.as_str()),
                            report,
                        );
                        if self.protocol == Protocol::V311 {
                            // MQTT 3.1.1 §3.3.5: with no negative PUBACK, the server either
                            // acknowledges or closes. Closing makes the refusal visible.
                            self.flush(stream).await?;
                            return Err("publish to a topic the device may not use".into());
                        }
                        inflight.push_back(Box::pin(futures_util::future::ready(PublishDone {
                            qos,
                            pkid,
                            result: Ok(Some(Refusal::NotAuthorized)),
                            report: None,
                        })));
                    }
                }
            }
            Inbound::PubRel { pkid } => self.write_buf_push(Outbound::PubComp { pkid }),
            Inbound::PubAck => {}
            Inbound::Subscribe { pkid, filters } => {
                let mut granted = Vec::with_capacity(filters.len());
                for (filter, _qos) in filters {
                    if topics::subscription_allowed(self.device.as_str(), &filter) {
                        ctx.sessions.subscribe(self.session_id, filter);
                        // Deliveries are advisory reports and commands: QoS 0.
                        granted.push(Some(0));
                    } else {
                        telemetry::mqtt_refused("foreign_subscription");
                        granted.push(None);
                    }
                }
                let wants_commands = granted.iter().any(Option::is_some)
                    && ctx
                        .sessions
                        .subscribed(self.session_id, &topics::cmd_topic(self.device.as_str()));
                self.write_buf_push(Outbound::SubAck { pkid, granted });
                if wants_commands {
                    // What waited while the device was away, after its SUBACK.
                    let (ctx, device) = (ctx.clone(), self.device.clone());
                    tokio::spawn(async move { commands::deliver_pending(&ctx, &device).await });
                }
            }
            Inbound::Unsubscribe { pkid, filters } => {
                for f in &filters {
                    ctx.sessions.unsubscribe(self.session_id, f);
                }
                self.write_buf_push(Outbound::UnsubAck {
                    pkid,
                    count: filters.len(),
                });
            }
            Inbound::PingReq => self.write_buf_push(Outbound::PingResp),
            Inbound::Disconnect => return Ok(false),
            Inbound::ProtocolViolation(what) => {
                telemetry::mqtt_refused("protocol_violation");
                self.close_with(stream, DisconnectReason::ProtocolError)
                    .await?;
                return Err(format!("protocol violation: {what}"));
            }
        }
        Ok(true)
    }

    /// [`Connection::complete`], but when a commit failed, first sends the acknowledgements of
    /// the publishes before it that did commit, so the device resends only what was not stored.
    async fn finish<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        done: PublishDone,
        ctx: &BrokerContext,
        stream: &mut S,
    ) -> Result<(), String> {
        if let Err(e) = self.complete(done, ctx) {
            let _ = self.flush(stream).await;
            return Err(e);
        }
        Ok(())
    }

    /// Acknowledges one finished publish, in order. A failed commit closes the connection without
    /// acknowledging, so the device sends the message again.
    fn complete(&mut self, done: PublishDone, ctx: &BrokerContext) -> Result<(), String> {
        if let Some(report) = done.report {
            ctx.sessions.deliver(
                &self.device,
                &topics::errors_topic(self.device.as_str()),
                report,
            );
        }
        let refusal = match done.result {
            Ok(refusal) => refusal,
            Err(()) => return Err("commit failed; closing without acknowledgement".into()),
        };
        match done.qos {
            1 => self.write_buf_push(Outbound::PubAck {
                pkid: done.pkid,
                refusal,
            }),
            2 => self.write_buf_push(Outbound::PubRec {
                pkid: done.pkid,
                refusal,
            }),
            _ => {}
        }
        Ok(())
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

fn publish_done(qos: u8, pkid: u16, outcome: Result<MessageReport, MessageError>) -> PublishDone {
    match outcome {
        Ok(report) => {
            let rejected_all =
                report.accepted == 0 && report.duplicates == 0 && !report.rejected.is_empty();
            let payload = (!report.rejected.is_empty()).then(|| {
                Bytes::from(
                    serde_json::to_vec(&serde_json::json!({
                        "accepted": report.accepted,
                        "duplicates": report.duplicates,
                        "rejected": report.rejected,
                    }))
                    .unwrap_or_default(),
                )
            });
            PublishDone {
                qos,
                pkid,
                result: Ok(rejected_all.then_some(Refusal::PayloadFormatInvalid)),
                report: payload,
            }
        }
        Err(MessageError::Payload(refusal)) => PublishDone {
            qos,
            pkid,
            result: Ok(Some(Refusal::PayloadFormatInvalid)),
            report: Some(error_report(refusal.kind, &refusal.reason)),
        },
        Err(MessageError::Ingest(err)) => {
            tracing::warn!(error = %err, "reading not committed; the device will resend");
            PublishDone {
                qos,
                pkid,
                result: Err(()),
                report: None,
            }
        }
    }
}

fn error_report(kind: &str, reason: &str) -> Bytes {
    Bytes::from(
        serde_json::to_vec(&serde_json::json!({"error": {"kind": kind, "reason": reason}}))
            .unwrap_or_default(),
    )
}

/// Checks the device's credentials (username = device id, password = its secret) and that it is
/// not quarantined. Wrong secrets and unknown ids are intrusion signals.
async fn authenticate(
    ctx: &Arc<BrokerContext>,
    connect: &wire::Connect,
    identity: &PeerIdentity,
    peer: SocketAddr,
) -> Result<DeviceId, (ConnectRefusal, &'static str)> {
    let signed_in = check_credentials(ctx, connect, identity).await;
    let device = match signed_in {
        Ok(device) => device,
        Err(refusal @ (_, "bad_secret" | "unknown_device")) => {
            ctx.ingest
                .guard()
                .intrusion()
                .auth_failure(connect.username.as_deref(), Some(peer.ip()));
            return Err(refusal);
        }
        Err(refusal) => return Err(refusal),
    };
    let store = ctx.store.clone();
    let lookup = device.clone();
    match tokio::task::spawn_blocking(move || store.device_quarantine(&lookup)).await {
        Ok(Ok(None)) => Ok(device),
        Ok(Ok(Some(_))) => Err((ConnectRefusal::Banned, "quarantined")),
        Ok(Err(_)) => Err((ConnectRefusal::ServerUnavailable, "store_unavailable")),
        Err(_) => Err((ConnectRefusal::ServerUnavailable, "internal_error")),
    }
}

/// Checks the device's credentials.
///
/// Without a client certificate: user name = device id, password = its secret.
/// With a verified client certificate naming device D (mutual TLS): the device is D, and the
/// password may be left out. The CONNECT must not claim another device: its user name, or when
/// it has none its client id, must be D (an empty client id is fine). A password that is given
/// is still checked. A revoked or unregistered D is refused as it would be with a secret.
async fn check_credentials(
    ctx: &Arc<BrokerContext>,
    connect: &wire::Connect,
    identity: &PeerIdentity,
) -> Result<DeviceId, (ConnectRefusal, &'static str)> {
    let certified = identity.device.as_ref();
    let device = match (certified, &connect.username) {
        (Some(named), Some(user)) if user != named.as_str() => {
            return Err((
                ConnectRefusal::NotAuthorized,
                "certificate_names_another_device",
            ));
        }
        (Some(named), None)
            if !connect.client_id.is_empty() && connect.client_id != named.as_str() =>
        {
            return Err((
                ConnectRefusal::NotAuthorized,
                "certificate_names_another_device",
            ));
        }
        (Some(named), _) => named.clone(),
        (None, Some(user)) if connect.password.is_some() => DeviceId::new(user.clone())
            .map_err(|_| (ConnectRefusal::BadCredentials, "unknown_device"))?,
        (None, _) => return Err((ConnectRefusal::NotAuthorized, "no_credentials")),
    };
    let store = ctx.store.clone();
    let lookup = device.clone();
    let stored = tokio::task::spawn_blocking(move || store.device_secret(&lookup))
        .await
        .map_err(|_| (ConnectRefusal::ServerUnavailable, "internal_error"))?
        .map_err(|_| (ConnectRefusal::ServerUnavailable, "store_unavailable"))?;
    match (stored, &connect.password) {
        // The same answer for an unknown device and a wrong secret: no probing for device ids.
        (None, _) => Err((ConnectRefusal::BadCredentials, "unknown_device")),
        (Some(hash), _) if hash == vigil_store::REVOKED => {
            Err((ConnectRefusal::NotAuthorized, "revoked"))
        }
        (Some(hash), Some(password)) if auth::device_secret_matches(&hash, password) => Ok(device),
        (Some(_), Some(_)) => Err((ConnectRefusal::BadCredentials, "bad_secret")),
        (Some(_), None) if certified.is_some() => Ok(device),
        (Some(_), None) => Err((ConnectRefusal::NotAuthorized, "no_credentials")),
    }
}
