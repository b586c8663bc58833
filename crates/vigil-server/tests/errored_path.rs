//! House rule 2, the errored path: when the store cannot commit, no source acknowledges, nothing
//! is stored, and what the device sends again once the store is back is stored exactly once.
//! A `Store` wrapper fails (or slows) its commits on command, which also shows what slow commits
//! do to keep-alive and to shutdown.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::*;
use rumqttc::mqttbytes::v4;
use rumqttc::v5::Incoming;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{self, PubAckReason, PubRecReason};
use serde_json::Value;
use vigil_model::{
    Binding, Device, DeviceId, Observation, ObservationId, Patient, PatientId, StoredWaveform,
};
use vigil_server::ServerConfig;
use vigil_store::sqlite::SqliteStore;
use vigil_store::{
    DeviceQuery, ObservationQuery, PatientQuery, SecretHash, Store, StoreError, StoreStats,
    Submission, SubmissionOutcome, WaveformQuery,
};

/// SQLite, except that `append` fails while `failing` is set, and first sleeps `delay_ms` (a
/// slow disk). `appending` tells that a commit has begun.
struct FlakyStore {
    inner: SqliteStore,
    failing: AtomicBool,
    delay_ms: AtomicU64,
    appending: AtomicBool,
}

impl Store for FlakyStore {
    fn create_patient(&self, patient: &Patient) -> Result<(), StoreError> {
        self.inner.create_patient(patient)
    }
    fn update_patient(&self, patient: &Patient) -> Result<(), StoreError> {
        self.inner.update_patient(patient)
    }
    fn patient(&self, id: &PatientId) -> Result<Option<Patient>, StoreError> {
        self.inner.patient(id)
    }
    fn patient_by_mrn(&self, mrn: &str) -> Result<Option<Patient>, StoreError> {
        self.inner.patient_by_mrn(mrn)
    }
    fn search_patients(&self, query: &PatientQuery) -> Result<Vec<Patient>, StoreError> {
        self.inner.search_patients(query)
    }
    fn create_device(&self, device: &Device, secret: &SecretHash) -> Result<(), StoreError> {
        self.inner.create_device(device, secret)
    }
    fn device(&self, id: &DeviceId) -> Result<Option<Device>, StoreError> {
        self.inner.device(id)
    }
    fn set_calibration(
        &self,
        id: &DeviceId,
        calibrated_at: Option<vigil_model::Instant>,
        due: Option<vigil_model::Instant>,
    ) -> Result<(), StoreError> {
        self.inner.set_calibration(id, calibrated_at, due)
    }
    fn set_device_secret(&self, id: &DeviceId, secret: &SecretHash) -> Result<(), StoreError> {
        self.inner.set_device_secret(id, secret)
    }
    fn device_by_ble_address(&self, address: &str) -> Result<Option<Device>, StoreError> {
        self.inner.device_by_ble_address(address)
    }
    fn device_secret(&self, id: &DeviceId) -> Result<Option<SecretHash>, StoreError> {
        self.inner.device_secret(id)
    }
    fn search_devices(&self, query: &DeviceQuery) -> Result<Vec<Device>, StoreError> {
        self.inner.search_devices(query)
    }
    fn bind(
        &self,
        device: &DeviceId,
        patient: &PatientId,
        from: vigil_model::Instant,
    ) -> Result<Binding, StoreError> {
        self.inner.bind(device, patient, from)
    }
    fn unbind(&self, device: &DeviceId, at: vigil_model::Instant) -> Result<(), StoreError> {
        self.inner.unbind(device, at)
    }
    fn bindings(&self, device: &DeviceId) -> Result<Vec<Binding>, StoreError> {
        self.inner.bindings(device)
    }
    fn append(&self, batch: &[Submission]) -> Result<Vec<SubmissionOutcome>, StoreError> {
        self.appending.store(true, Ordering::SeqCst);
        let delay = self.delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            std::thread::sleep(Duration::from_millis(delay));
        }
        if self.failing.load(Ordering::SeqCst) {
            return Err(StoreError::Backend("injected: disk unavailable".into()));
        }
        self.inner.append(batch)
    }
    fn observation(&self, id: ObservationId) -> Result<Option<Observation>, StoreError> {
        self.inner.observation(id)
    }
    fn search_observations(
        &self,
        query: &ObservationQuery,
    ) -> Result<Vec<Observation>, StoreError> {
        self.inner.search_observations(query)
    }
    fn waveforms(&self, query: &WaveformQuery) -> Result<Vec<StoredWaveform>, StoreError> {
        self.inner.waveforms(query)
    }
    fn stats(&self) -> Result<StoreStats, StoreError> {
        self.inner.stats()
    }
    // Surveillance storage passes straight through: only `append` fails on command.
    fn observations_after(
        &self,
        after: ObservationId,
        limit: usize,
    ) -> Result<Vec<Observation>, StoreError> {
        self.inner.observations_after(after, limit)
    }
    fn last_observation_id(&self) -> Result<ObservationId, StoreError> {
        self.inner.last_observation_id()
    }
    fn record_alarm_changes(
        &self,
        changes: &[(vigil_store::AlarmRecord, vigil_store::AlarmEventRecord)],
        events: &[vigil_store::NewStreamEvent],
    ) -> Result<Vec<u64>, StoreError> {
        self.inner.record_alarm_changes(changes, events)
    }
    fn append_stream_events(
        &self,
        events: &[vigil_store::NewStreamEvent],
    ) -> Result<Vec<u64>, StoreError> {
        self.inner.append_stream_events(events)
    }
    fn record_surveillance(
        &self,
        step: &vigil_store::SurveillanceStep<'_>,
    ) -> Result<vigil_store::StepWritten, StoreError> {
        self.inner.record_surveillance(step)
    }
    fn surveillance_position(&self) -> Result<Option<ObservationId>, StoreError> {
        self.inner.surveillance_position()
    }
    fn alarm(&self, id: u64) -> Result<Option<vigil_store::AlarmRecord>, StoreError> {
        self.inner.alarm(id)
    }
    fn alarms(
        &self,
        query: &vigil_store::AlarmQuery,
    ) -> Result<Vec<vigil_store::AlarmRecord>, StoreError> {
        self.inner.alarms(query)
    }
    fn alarm_events(&self, alarm: u64) -> Result<Vec<vigil_store::AlarmEventRecord>, StoreError> {
        self.inner.alarm_events(alarm)
    }
    fn max_alarm_id(&self) -> Result<Option<u64>, StoreError> {
        self.inner.max_alarm_id()
    }
    fn stream_events_after(
        &self,
        after: u64,
        patient: Option<&PatientId>,
        limit: usize,
    ) -> Result<Vec<vigil_store::StreamEvent>, StoreError> {
        self.inner.stream_events_after(after, patient, limit)
    }
    fn last_stream_seq(&self) -> Result<u64, StoreError> {
        self.inner.last_stream_seq()
    }
    fn prune_stream_events(&self, older_than: vigil_model::Instant) -> Result<u64, StoreError> {
        self.inner.prune_stream_events(older_than)
    }
    fn record_refusals(&self, refusals: &[vigil_store::RefusedMessage]) -> Result<(), StoreError> {
        self.inner.record_refusals(refusals)
    }
    fn refusals(
        &self,
        query: &vigil_store::RefusalQuery,
    ) -> Result<Vec<vigil_store::StoredRefusal>, StoreError> {
        self.inner.refusals(query)
    }
    fn prune_refusals(&self, older_than: vigil_model::Instant) -> Result<u64, StoreError> {
        self.inner.prune_refusals(older_than)
    }
    fn queue_command(
        &self,
        device: &DeviceId,
        correlation_id: &str,
        body: &str,
        created: vigil_model::Instant,
        expires: vigil_model::Instant,
    ) -> Result<vigil_store::DeviceCommand, StoreError> {
        self.inner
            .queue_command(device, correlation_id, body, created, expires)
    }
    fn pending_commands(
        &self,
        device: &DeviceId,
        now: vigil_model::Instant,
    ) -> Result<Vec<vigil_store::DeviceCommand>, StoreError> {
        self.inner.pending_commands(device, now)
    }
    fn mark_command_sent(&self, id: u64, at: vigil_model::Instant) -> Result<(), StoreError> {
        self.inner.mark_command_sent(id, at)
    }
    fn confirm_command(
        &self,
        device: &DeviceId,
        correlation_id: &str,
        outcome: &str,
        detail: Option<&str>,
        at: vigil_model::Instant,
    ) -> Result<Option<vigil_store::DeviceCommand>, StoreError> {
        self.inner
            .confirm_command(device, correlation_id, outcome, detail, at)
    }
    fn command(
        &self,
        device: &DeviceId,
        correlation_id: &str,
    ) -> Result<Option<vigil_store::DeviceCommand>, StoreError> {
        self.inner.command(device, correlation_id)
    }
    fn put_template(&self, t: &vigil_store::StoredTemplate) -> Result<(), StoreError> {
        self.inner.put_template(t)
    }
    fn template(&self, name: &str) -> Result<Option<vigil_store::StoredTemplate>, StoreError> {
        self.inner.template(name)
    }
    fn templates(&self) -> Result<Vec<vigil_store::StoredTemplate>, StoreError> {
        self.inner.templates()
    }
    fn create_user(&self, user: &vigil_store::UserAccount) -> Result<(), StoreError> {
        self.inner.create_user(user)
    }
    fn user(
        &self,
        id: &vigil_model::UserId,
    ) -> Result<Option<vigil_store::UserAccount>, StoreError> {
        self.inner.user(id)
    }
    fn users(&self) -> Result<Vec<vigil_store::UserAccount>, StoreError> {
        self.inner.users()
    }
    fn set_password(&self, id: &vigil_model::UserId, hash: &str) -> Result<(), StoreError> {
        self.inner.set_password(id, hash)
    }
    fn set_login_state(
        &self,
        id: &vigil_model::UserId,
        failed: u32,
        until: Option<vigil_model::Instant>,
    ) -> Result<(), StoreError> {
        self.inner.set_login_state(id, failed, until)
    }
    fn set_user_disabled(
        &self,
        id: &vigil_model::UserId,
        disabled: bool,
    ) -> Result<(), StoreError> {
        self.inner.set_user_disabled(id, disabled)
    }
    fn create_session(&self, s: &vigil_store::SessionRecord) -> Result<(), StoreError> {
        self.inner.create_session(s)
    }
    fn session(&self, h: &SecretHash) -> Result<Option<vigil_store::SessionRecord>, StoreError> {
        self.inner.session(h)
    }
    fn touch_session(&self, h: &SecretHash, at: vigil_model::Instant) -> Result<(), StoreError> {
        self.inner.touch_session(h, at)
    }
    fn end_session(&self, h: &SecretHash) -> Result<(), StoreError> {
        self.inner.end_session(h)
    }
    fn end_sessions_of(&self, user: &vigil_model::UserId) -> Result<u64, StoreError> {
        self.inner.end_sessions_of(user)
    }
    fn prune_sessions(&self, now: vigil_model::Instant) -> Result<u64, StoreError> {
        self.inner.prune_sessions(now)
    }
    fn put_care_team(&self, team: &vigil_model::CareTeam) -> Result<(), StoreError> {
        self.inner.put_care_team(team)
    }
    fn care_teams(&self) -> Result<Vec<vigil_model::CareTeam>, StoreError> {
        self.inner.care_teams()
    }
    fn set_patient_ward(&self, p: &PatientId, ward: Option<&str>) -> Result<(), StoreError> {
        self.inner.set_patient_ward(p, ward)
    }
    fn patient_ward(&self, p: &PatientId) -> Result<Option<String>, StoreError> {
        self.inner.patient_ward(p)
    }
    fn care_reach(&self, user: &vigil_model::UserId) -> Result<vigil_store::CareReach, StoreError> {
        self.inner.care_reach(user)
    }
    fn put_consent(&self, c: &vigil_model::Consent) -> Result<(), StoreError> {
        self.inner.put_consent(c)
    }
    fn consent(
        &self,
        id: &vigil_model::ConsentId,
    ) -> Result<Option<vigil_model::Consent>, StoreError> {
        self.inner.consent(id)
    }
    fn consents_of(&self, p: &PatientId) -> Result<Vec<vigil_model::Consent>, StoreError> {
        self.inner.consents_of(p)
    }
    fn consents_granted_to(
        &self,
        person: &vigil_model::UserId,
        org: Option<&str>,
    ) -> Result<Vec<vigil_model::Consent>, StoreError> {
        self.inner.consents_granted_to(person, org)
    }
    fn series(
        &self,
        q: &vigil_store::SeriesQuery,
    ) -> Result<Vec<vigil_store::SeriesBucket>, StoreError> {
        self.inner.series(q)
    }
    fn grant_emergency_access(&self, a: &vigil_model::EmergencyAccess) -> Result<(), StoreError> {
        self.inner.grant_emergency_access(a)
    }
    fn emergency_access_in_force(
        &self,
        c: &vigil_model::UserId,
        at: vigil_model::Instant,
    ) -> Result<Vec<vigil_model::EmergencyAccess>, StoreError> {
        self.inner.emergency_access_in_force(c, at)
    }
    fn emergency_accesses_since(
        &self,
        since: vigil_model::Instant,
    ) -> Result<Vec<vigil_model::EmergencyAccess>, StoreError> {
        self.inner.emergency_accesses_since(since)
    }
    fn set_device_quarantine(
        &self,
        id: &DeviceId,
        at: Option<vigil_model::Instant>,
    ) -> Result<(), StoreError> {
        self.inner.set_device_quarantine(id, at)
    }
    fn device_quarantine(&self, id: &DeviceId) -> Result<Option<vigil_model::Instant>, StoreError> {
        self.inner.device_quarantine(id)
    }
    fn record_security_alert(
        &self,
        alert: &vigil_store::NewSecurityAlert,
    ) -> Result<vigil_store::SecurityAlert, StoreError> {
        self.inner.record_security_alert(alert)
    }
    fn security_alerts(
        &self,
        query: &vigil_store::SecurityAlertQuery,
    ) -> Result<Vec<vigil_store::SecurityAlert>, StoreError> {
        self.inner.security_alerts(query)
    }
    fn acknowledge_security_alert(
        &self,
        id: u64,
        by: &str,
        at: vigil_model::Instant,
    ) -> Result<vigil_store::SecurityAlert, StoreError> {
        self.inner.acknowledge_security_alert(id, by, at)
    }
    fn patient_settings(&self, patient: &PatientId) -> Result<Option<String>, StoreError> {
        self.inner.patient_settings(patient)
    }
    fn put_patient_settings(
        &self,
        patient: &PatientId,
        settings_json: &str,
    ) -> Result<(), StoreError> {
        self.inner.put_patient_settings(patient, settings_json)
    }
}

struct Ward {
    _dir: tempfile::TempDir,
    store: Arc<FlakyStore>,
    server: vigil_server::RunningServer,
}

impl Ward {
    async fn with(tweak: impl FnOnce(&mut ServerConfig)) -> Ward {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(FlakyStore {
            inner: SqliteStore::open(dir.path()).unwrap(),
            failing: AtomicBool::new(false),
            delay_ms: AtomicU64::new(0),
            appending: AtomicBool::new(false),
        });
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

    fn fail(&self, failing: bool) {
        self.store.failing.store(failing, Ordering::SeqCst);
    }

    fn stored(&self, device: &str) -> Vec<Observation> {
        stored(&self.store.inner, device)
    }
}

#[tokio::test]
async fn a_failed_commit_gets_no_mqtt5_acknowledgement_and_the_resend_is_stored_once() {
    let ward = Ward::with(|_| {}).await;
    let secret = register(ward.store.as_ref(), "p1", "mon-1");
    let message = heart_rate(BASE_MS, 72);
    let (client, mut events) = client_v5(ward.mqtt(), "mon-1", "mon-1", &secret);
    await_v5(&mut events, |p| {
        matches!(p, Incoming::ConnAck(_)).then_some(())
    })
    .await;

    ward.fail(true);
    for qos in [QoS::AtLeastOnce, QoS::ExactlyOnce] {
        client
            .publish(obs_topic("mon-1"), qos, false, message.clone())
            .await
            .unwrap();
        // The connection ends without any acknowledgement, so the device will send again.
        loop {
            match incoming_v5(&mut events).await {
                Ok(p @ (Incoming::PubAck(_) | Incoming::PubRec(_))) => {
                    panic!("{qos:?}: acknowledged although nothing was committed: {p:?}")
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        assert!(ward.stored("mon-1").is_empty());
        // rumqttc reconnects on the next poll (its unacknowledged publish is dropped: the broker
        // keeps no session, so the application sends again, as a device's outbox would).
        await_v5(&mut events, |p| {
            matches!(p, Incoming::ConnAck(_)).then_some(())
        })
        .await;
    }

    ward.fail(false);
    for _ in 0..2 {
        client
            .publish(obs_topic("mon-1"), QoS::AtLeastOnce, false, message.clone())
            .await
            .unwrap();
        let reason = await_v5(&mut events, |p| match p {
            Incoming::PubAck(ack) => Some(ack.reason),
            _ => None,
        })
        .await;
        assert_eq!(reason, PubAckReason::Success);
        assert_eq!(
            ward.stored("mon-1").len(),
            1,
            "stored once, however often sent"
        );
    }
    client
        .publish(obs_topic("mon-1"), QoS::ExactlyOnce, false, message.clone())
        .await
        .unwrap();
    let reason = await_v5(&mut events, |p| match p {
        Incoming::PubRec(rec) => Some(rec.reason),
        _ => None,
    })
    .await;
    assert_eq!(reason, PubRecReason::Success);
    assert_eq!(ward.stored("mon-1").len(), 1);
}

#[tokio::test]
async fn a_failed_commit_closes_an_mqtt311_connection_without_any_puback() {
    let ward = Ward::with(|_| {}).await;
    let secret = register(ward.store.as_ref(), "p1", "mon-1");

    ward.fail(true);
    let (mut raw, _) = RawMqtt::connect_v4(ward.mqtt(), "mon-1", "mon-1", &secret, 30).await;
    let burst = RawMqtt::encode_v4((1..=5u16).map(|i| {
        publish_v4(
            &obs_topic("mon-1"),
            1,
            i,
            &heart_rate(BASE_MS + i as i64, 70),
        )
    }));
    raw.send_bytes(&burst).await;
    assert_eq!(raw.v4_until_closed().await, [], "no PUBACK for anything");
    assert!(ward.stored("mon-1").is_empty());

    ward.fail(false);
    let (mut raw, _) = RawMqtt::connect_v4(ward.mqtt(), "mon-1", "mon-1", &secret, 30).await;
    let mut resend = RawMqtt::encode_v4((1..=5u16).map(|i| {
        let mut p = publish_v4(
            &obs_topic("mon-1"),
            1,
            i,
            &heart_rate(BASE_MS + i as i64, 70),
        );
        if let v4::Packet::Publish(p) = &mut p {
            p.dup = true;
        }
        p
    }));
    // And the first one once more, as a device unsure of its outbox might.
    resend.extend_from_slice(&RawMqtt::encode_v4([publish_v4(
        &obs_topic("mon-1"),
        1,
        6,
        &heart_rate(BASE_MS + 1, 70),
    )]));
    raw.send_bytes(&resend).await;
    for pkid in 1..=6 {
        assert_eq!(
            raw.recv_v4().await,
            Some(v4::Packet::PubAck(v4::PubAck { pkid }))
        );
    }
    assert_eq!(ward.stored("mon-1").len(), 5);
}

#[tokio::test]
async fn a_failed_commit_answers_http_with_503_and_the_resend_is_stored_once() {
    let ward = Ward::with(|_| {}).await;
    let secret = register(ward.store.as_ref(), "p1", "cuff-1");
    let url = format!("http://{}/api/v1/devices/cuff-1/obs", ward.server.http_addr);
    let http = reqwest::Client::builder()
        .timeout(DEADLINE)
        .build()
        .unwrap();
    let message = heart_rate(BASE_MS, 72);
    let post = || {
        http.post(&url)
            .basic_auth("cuff-1", Some(&secret))
            .header("content-type", "application/json")
            .body(message.clone())
            .send()
    };

    ward.fail(true);
    let resp = post().await.unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let problem: Value = resp.json().await.unwrap();
    assert_eq!(problem["type"], "urn:vigil:problem:not-stored");
    assert_eq!(problem["status"], 503);
    assert!(
        !problem.to_string().contains("injected"),
        "the store's own message stays inside: {problem}"
    );
    assert!(ward.stored("cuff-1").is_empty());

    ward.fail(false);
    let resp = post().await.unwrap();
    assert_eq!(resp.status(), 202);
    let report: Value = resp.json().await.unwrap();
    assert_eq!(report["accepted"], 1);
    let resp = post().await.unwrap();
    assert_eq!(resp.status(), 202);
    let report: Value = resp.json().await.unwrap();
    assert_eq!(
        (report["accepted"].as_u64(), report["duplicates"].as_u64()),
        (Some(0), Some(1))
    );
    assert_eq!(ward.stored("cuff-1").len(), 1);
}

/// Regression: while a connection's in-flight window was full the broker stopped reading its
/// socket (backpressure) but kept its keep-alive clock running, so a slow commit closed an
/// active, pinging device for "keep-alive timeout" and threw away its acknowledgements.
#[tokio::test]
async fn backpressure_longer_than_the_keep_alive_does_not_disconnect_the_device() {
    let ward = Ward::with(|c| c.mqtt_config.receive_maximum = 1).await;
    let secret = register(ward.store.as_ref(), "p1", "mon-1");
    let (mut raw, _) = RawMqtt::connect_v4(ward.mqtt(), "mon-1", "mon-1", &secret, 1).await;

    // The first commit takes 2.5 s, longer than 1.5 × the 1 s keep-alive.
    ward.store.delay_ms.store(2500, Ordering::SeqCst);
    let both = RawMqtt::encode_v4([
        publish_v4(&obs_topic("mon-1"), 1, 1, &heart_rate(BASE_MS, 70)),
        publish_v4(&obs_topic("mon-1"), 1, 2, &heart_rate(BASE_MS + 1000, 71)),
    ]);
    raw.send_bytes(&both).await;
    // A well-behaved client keeps pinging while it waits.
    let mut acked = Vec::new();
    let mut ping = tokio::time::interval(Duration::from_millis(500));
    ping.tick().await;
    while acked.len() < 2 {
        tokio::select! {
            _ = ping.tick() => {
                raw.try_send_bytes(&RawMqtt::encode_v4([v4::Packet::PingReq])).await.ok();
            }
            packet = raw.recv_v4() => match packet {
                Some(v4::Packet::PubAck(ack)) => {
                    ward.store.delay_ms.store(0, Ordering::SeqCst);
                    acked.push(ack.pkid);
                }
                Some(v4::Packet::PingResp) => {}
                other => panic!("expected PUBACKs, got {other:?} after {acked:?}"),
            },
        }
    }
    assert_eq!(acked, [1, 2]);
    assert_eq!(ward.stored("mon-1").len(), 2);
}

/// Shutdown lets a commit in progress finish and acknowledges it before saying goodbye.
#[tokio::test]
async fn shutdown_acknowledges_what_is_being_committed_then_disconnects() {
    let ward = Ward::with(|_| {}).await;
    let secret = register(ward.store.as_ref(), "p1", "mon-1");
    let (mut raw, _) = RawMqtt::connect_v5(ward.mqtt(), "mon-1", "mon-1", &secret, 30).await;
    ward.store.delay_ms.store(1000, Ordering::SeqCst);
    raw.send_v5(publish_v5(
        &obs_topic("mon-1"),
        1,
        1,
        None,
        &heart_rate(BASE_MS, 70),
    ))
    .await;
    eventually("the commit to begin", || {
        ward.store.appending.load(Ordering::SeqCst).then_some(())
    })
    .await;

    let Ward {
        _dir,
        store,
        server,
    } = ward;
    let mqtt = server.mqtt_addr.unwrap();
    let stopping = tokio::spawn(server.shutdown());
    let answer = raw.v5_until_closed().await;
    assert!(
        matches!(
            answer.as_slice(),
            [v5::Packet::PubAck(ack), v5::Packet::Disconnect(d)]
                if ack.pkid == 1
                    && ack.reason == PubAckReason::Success
                    && d.reason_code == v5::DisconnectReasonCode::ServerShuttingDown
        ),
        "{answer:?}"
    );
    assert_eq!(stored(&store.inner, "mon-1").len(), 1);
    within("shutdown", stopping).await.unwrap();
    assert!(
        tokio::net::TcpStream::connect(mqtt).await.is_err(),
        "no longer listening"
    );
}
