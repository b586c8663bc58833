//! Continuous surveillance, running: one thread owns the rules engine (`vigil_rules`), tails the
//! observation log as commits land, fires its timers exactly when they are due, persists every
//! alarm change and score change before publishing it on the live stream, and answers operator
//! commands (acknowledge, silence, settings) through a bounded queue.
//!
//! Like rumqttd's router, the engine lives on its own thread and talks to the rest only through
//! bounded channels: rule evaluation never competes with the async runtime, and its state needs
//! no locks.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::thread;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::{broadcast, oneshot};
use vigil_model::{
    DeviceId, DeviceKind, Instant, Observation, ObservationCode, ObservationId, PatientId,
};
use vigil_rules::alarm::{Alarm, AlarmId, BookState, Change, Subject};
use vigil_rules::surveillance::{
    News2Assessment, Output, PatientSettings, Surveillance, SurveillanceConfig, SurveillanceError,
};
use vigil_store::{
    AlarmEventRecord, AlarmQuery, AlarmRecord, NewStreamEvent, ScoreRecord, Store, StoreError,
    SurveillanceStep,
};

/// One event on the live stream.
#[derive(Debug, Clone)]
pub struct LiveEvent {
    /// Observation-log position of this event (for observations) or 0.
    pub observation: i64,
    /// Stream-log position of this event (for score and alarm changes) or 0.
    pub seq: u64,
    pub patient: Option<PatientId>,
    /// `observation`, `news2` or `alarm`.
    pub kind: &'static str,
    pub data: Arc<Value>,
}

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("no open alarm {0}")]
    NoSuchAlarm(u64),
    #[error("{0}")]
    Refused(String),
    #[error("the store failed: {0}")]
    Store(#[from] StoreError),
    #[error("surveillance is not running")]
    Stopped,
}

enum Command {
    /// New observations are durable: read them.
    Committed,
    Acknowledge {
        id: u64,
        by: String,
        reply: oneshot::Sender<Result<Value, CommandError>>,
    },
    Silence {
        id: u64,
        by: String,
        until: Instant,
        reply: oneshot::Sender<Result<Value, CommandError>>,
    },
    SetSettings {
        patient: PatientId,
        settings: PatientSettings,
        reply: oneshot::Sender<Result<(), CommandError>>,
    },
    News2 {
        patient: PatientId,
        reply: oneshot::Sender<News2Assessment>,
    },
    Settings {
        patient: PatientId,
        reply: oneshot::Sender<PatientSettings>,
    },
    /// A device's calibration due date changed in the registry.
    Calibration {
        device: DeviceId,
        due: Option<Instant>,
    },
    Stop,
}

/// The API's handle on the surveillance thread. Cheap to clone.
#[derive(Clone)]
pub struct SurveillanceHandle {
    commands: SyncSender<Command>,
    live: broadcast::Sender<LiveEvent>,
}

/// Owns the thread; [`SurveillanceThread::stop`] finishes pending work and joins it.
pub struct SurveillanceThread {
    commands: SyncSender<Command>,
    thread: Option<thread::JoinHandle<()>>,
}

impl SurveillanceThread {
    pub fn stop(mut self) {
        let _ = self.commands.send(Command::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Capacity of the command queue; commit notifications beyond it are dropped because one pending
/// notification already makes the thread read everything new.
const COMMAND_QUEUE: usize = 1024;
/// Live events buffered per subscriber; a subscriber that falls further behind is disconnected and
/// resumes from the stored logs with `Last-Event-ID`, so it misses nothing.
const LIVE_BUFFER: usize = 4096;
/// Observations read from the log per step.
const READ_BATCH: usize = 4096;
/// Observations replayed silently at start-up to rebuild NEWS2 inputs and trend windows.
const REPLAY_TAIL: i64 = 200_000;

impl SurveillanceHandle {
    /// Tells the thread that new observations are durable. Never blocks.
    pub fn notify_committed(&self) {
        match self.commands.try_send(Command::Committed) {
            Ok(()) | Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {}
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<LiveEvent> {
        self.live.subscribe()
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, CommandError> {
        let (tx, rx) = oneshot::channel();
        let commands = self.commands.clone();
        let command = make(tx);
        // The queue is bounded; waiting for room happens off the async runtime.
        tokio::task::spawn_blocking(move || {
            commands.send(command).map_err(|_| CommandError::Stopped)
        })
        .await
        .map_err(|_| CommandError::Stopped)??;
        rx.await.map_err(|_| CommandError::Stopped)
    }

    pub async fn acknowledge(&self, id: u64, by: String) -> Result<Value, CommandError> {
        self.ask(|reply| Command::Acknowledge { id, by, reply })
            .await?
    }

    pub async fn silence(
        &self,
        id: u64,
        by: String,
        until: Instant,
    ) -> Result<Value, CommandError> {
        self.ask(|reply| Command::Silence {
            id,
            by,
            until,
            reply,
        })
        .await?
    }

    pub async fn set_settings(
        &self,
        patient: PatientId,
        settings: PatientSettings,
    ) -> Result<(), CommandError> {
        self.ask(|reply| Command::SetSettings {
            patient,
            settings,
            reply,
        })
        .await?
    }

    pub async fn news2(&self, patient: PatientId) -> Result<News2Assessment, CommandError> {
        self.ask(|reply| Command::News2 { patient, reply }).await
    }

    pub async fn settings(&self, patient: PatientId) -> Result<PatientSettings, CommandError> {
        self.ask(|reply| Command::Settings { patient, reply }).await
    }

    /// Tells the engine a device's calibration due date (after the registry recorded it).
    pub async fn calibration_changed(
        &self,
        device: DeviceId,
        due: Option<Instant>,
    ) -> Result<(), CommandError> {
        let commands = self.commands.clone();
        tokio::task::spawn_blocking(move || {
            commands
                .send(Command::Calibration { device, due })
                .map_err(|_| CommandError::Stopped)
        })
        .await
        .map_err(|_| CommandError::Stopped)?
    }
}

/// Starts the surveillance thread: restores open alarms, replays recent observations silently,
/// then follows the observation log from its end.
pub fn start(
    store: Arc<dyn Store>,
    config: SurveillanceConfig,
) -> Result<(SurveillanceHandle, SurveillanceThread), StartError> {
    let mut engine = Surveillance::new(config)?;
    let next_id = store.max_alarm_id()?.map_or(1, |id| id + 1);
    let open: Vec<Alarm> = store
        .alarms(&AlarmQuery {
            patient: None,
            open_only: true,
            before: None,
            limit: usize::MAX,
            within: None,
        })?
        .into_iter()
        .map(|r| {
            serde_json::from_str::<Alarm>(&r.snapshot)
                .map_err(|e| StartError::Snapshot(r.id, e.to_string()))
        })
        .collect::<Result<_, _>>()?;
    let restored = open.len();
    engine.restore_alarms(BookState {
        next_id: AlarmId(next_id),
        alarms: open,
    })?;
    // Observations up to the engine's recorded position were evaluated before the restart:
    // replayed silently to rebuild state. Any after it were committed (and acknowledged to their
    // devices) but never evaluated, because the process stopped in between: they are evaluated
    // for real once the thread runs, so an alarm they call for is raised late rather than never.
    // A database without a recorded position (new, or from before positions were recorded)
    // counts as evaluated to its end.
    let end = store.last_observation_id()?;
    let evaluated = store
        .surveillance_position()?
        .map_or(end, |p| ObservationId(p.0.min(end.0)));
    let mut position = ObservationId((evaluated.0 - REPLAY_TAIL).max(0));
    let mut replayed = 0usize;
    while position < evaluated {
        let limit = usize::try_from(evaluated.0 - position.0)
            .unwrap_or(READ_BATCH)
            .min(READ_BATCH);
        let batch = store.observations_after(position, limit)?;
        let Some(last) = batch.last() else { break };
        position = last.id;
        for obs in batch.iter().filter(|o| o.id <= evaluated) {
            engine.replay(obs)?;
        }
        replayed += batch.len();
    }
    let position = evaluated;
    // Every device that has ever delivered is expected to go on doing so: watch it from its last
    // message, so one that stays silent across a restart still raises its "no data" alarm.
    let mut device_patient = HashMap::new();
    let mut calibrations = Vec::new();
    let registered = store.search_devices(&vigil_store::DeviceQuery {
        limit: usize::MAX,
        ..Default::default()
    })?;
    for device in &registered {
        if let Some(patient) = store
            .bindings(&device.id)?
            .into_iter()
            .find(|b| b.to.is_none())
            .map(|b| b.patient)
        {
            device_patient.insert(device.id.clone(), patient);
        }
        if let Some(seen) = device.last_seen {
            engine.watch_device(&device.id, device.kind.clone(), seen);
        }
        if device.calibration_due.is_some() {
            calibrations.push((device.id.clone(), device.calibration_due));
        }
    }
    let now = chrono::Utc::now();
    engine.settle(now);
    tracing::info!(
        restored_alarms = restored,
        replayed_observations = replayed,
        not_yet_evaluated = end.0 - evaluated.0,
        "surveillance restored"
    );

    let (commands, rx) = sync_channel(COMMAND_QUEUE);
    let (live, _) = broadcast::channel(LIVE_BUFFER);
    let mut worker = Worker {
        store,
        engine,
        position,
        devices: HashMap::new(),
        device_patient,
        settings_loaded: HashSet::new(),
        live: live.clone(),
        calibrations,
    };
    let thread = thread::Builder::new()
        .name("vigil-surveillance".into())
        .spawn(move || worker.run(rx))
        .map_err(StartError::Thread)?;
    Ok((
        SurveillanceHandle {
            commands: commands.clone(),
            live,
        },
        SurveillanceThread {
            commands,
            thread: Some(thread),
        },
    ))
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Rules(#[from] SurveillanceError),
    #[error("stored alarm {0} cannot be read: {1}")]
    Snapshot(u64, String),
    #[error("cannot start the surveillance thread: {0}")]
    Thread(std::io::Error),
}

struct DeviceInfo {
    kind: DeviceKind,
    battery_pct: Option<u8>,
    read_at: std::time::Instant,
}

/// How long a device's kind and battery level are reused before the registry is read again.
const DEVICE_INFO_TTL: Duration = Duration::from_secs(60);

struct Worker {
    store: Arc<dyn Store>,
    engine: Surveillance,
    /// The last observation evaluated.
    position: ObservationId,
    /// Device kind and battery, re-read from the registry at most once a minute per device.
    devices: HashMap<DeviceId, DeviceInfo>,
    /// The patient each device last reported for: technical alarms are shown with their patient.
    device_patient: HashMap<DeviceId, PatientId>,
    settings_loaded: HashSet<PatientId>,
    live: broadcast::Sender<LiveEvent>,
    /// Calibration due dates from the registry, handed to the engine when the thread starts.
    calibrations: Vec<(DeviceId, Option<Instant>)>,
}

fn name<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(Value::String(s)) => s,
        _ => String::new(),
    }
}

/// The alarm as the API shows it.
pub fn alarm_json(alarm: &Alarm, patient: Option<&PatientId>) -> Value {
    let (device, patient_key) = match &alarm.key.subject {
        Subject::Patient(p) => (None, Some(p.clone())),
        Subject::Device(d) => (Some(d.clone()), patient.cloned()),
    };
    json!({
        "id": alarm.id.0,
        "patient": patient_key,
        "device": device,
        "condition": alarm.key.condition,
        "kind": name(&alarm.kind),
        "priority": alarm.priority.name(),
        "state": name(&alarm.state),
        "condition_present": alarm.condition_present,
        "message": alarm.message,
        "value": alarm.value,
        "raised_at": alarm.raised_at,
        "updated_at": alarm.updated_at,
        "acknowledged": alarm.acknowledged.as_ref().map(|a| json!({"by": a.by, "at": a.at})),
        "audio_paused": alarm.audio_paused.as_ref().map(|p| json!({"by": p.by, "at": p.at, "until": p.until})),
        "resolved_at": alarm.resolved_at,
    })
}

/// NEWS2 as the API shows it.
pub fn news2_json(patient: &PatientId, a: &News2Assessment) -> Value {
    let scores: serde_json::Map<String, Value> = a
        .score
        .scores
        .iter()
        .map(|(p, s)| (p.name().to_owned(), json!(s)))
        .collect();
    let measured: HashMap<_, _> = a.measured_at.iter().copied().collect();
    let i = &a.inputs;
    let input = |p: vigil_rules::news2::Parameter, value: Value| -> Value {
        match measured.get(&p) {
            Some(at) => json!({"value": value, "measured_at": at}),
            None => Value::Null,
        }
    };
    use vigil_rules::news2::Parameter as P;
    json!({
        "patient": patient,
        "at": a.at,
        "total": a.score.total,
        "band": a.score.band.name(),
        "complete": a.score.complete,
        "missing": a.score.missing.iter().map(|p| p.name()).collect::<Vec<_>>(),
        "scores": scores,
        "spo2_scale": a.score.scale.number(),
        "inputs": {
            "respiration_rate": input(P::RespirationRate, json!(i.respiration_rate)),
            "spo2": input(P::Spo2, json!(i.spo2)),
            "air_or_oxygen": input(P::AirOrOxygen, json!(i.on_oxygen.map(|o| if o { "oxygen" } else { "air" }))),
            "systolic_bp": input(P::SystolicBp, json!(i.systolic_bp)),
            "pulse": input(P::Pulse, json!(i.pulse)),
            "consciousness": input(P::Consciousness, json!(i.consciousness.map(|c| c.code()))),
            "temperature": input(P::Temperature, json!(i.temperature)),
        },
        "clinical_risk": a.score.band.clinical_risk_response(),
        "monitoring_frequency": a.monitoring_frequency,
        "clinical_response": a.clinical_response,
    })
}

impl Worker {
    fn run(&mut self, rx: Receiver<Command>) {
        // Whatever was committed but not evaluated before a restart.
        self.read_new();
        let now = chrono::Utc::now();
        for (device, due) in std::mem::take(&mut self.calibrations) {
            let outputs = self.engine.set_calibration_due(&device, due, now);
            self.publish(outputs);
        }
        loop {
            let now = chrono::Utc::now();
            let wait = self
                .engine
                .next_deadline()
                .map(|d| (d - now).to_std().unwrap_or(Duration::ZERO))
                .unwrap_or(Duration::from_secs(60))
                .min(Duration::from_secs(60));
            match rx.recv_timeout(wait) {
                Ok(Command::Committed) => self.read_new(),
                Ok(Command::Stop) | Err(RecvTimeoutError::Disconnected) => {
                    self.read_new();
                    break;
                }
                Ok(command) => self.command(command),
                Err(RecvTimeoutError::Timeout) => {}
            }
            let now = chrono::Utc::now();
            if self.engine.next_deadline().is_some_and(|d| d <= now) {
                match self.engine.tick(now) {
                    Ok(outputs) => self.publish(outputs),
                    Err(e) => tracing::error!(error = %e, "surveillance tick failed"),
                }
            }
        }
        tracing::debug!("surveillance stopped");
    }

    fn command(&mut self, command: Command) {
        let now = chrono::Utc::now();
        match command {
            Command::Acknowledge { id, by, reply } => {
                let result = self
                    .engine
                    .acknowledge(AlarmId(id), &by, now)
                    .map_err(|e| refused(id, e));
                let _ = reply.send(result.and_then(|outputs| self.answer(id, outputs)));
            }
            Command::Silence {
                id,
                by,
                until,
                reply,
            } => {
                let result = self
                    .engine
                    .silence(AlarmId(id), &by, until, now)
                    .map_err(|e| refused(id, e));
                let _ = reply.send(result.and_then(|outputs| self.answer(id, outputs)));
            }
            Command::SetSettings {
                patient,
                settings,
                reply,
            } => {
                let result = (|| {
                    let json = serde_json::to_string(&settings)
                        .map_err(|e| CommandError::Refused(e.to_string()))?;
                    self.store.put_patient_settings(&patient, &json)?;
                    self.settings_loaded.insert(patient.clone());
                    let outputs = self
                        .engine
                        .set_settings(&patient, settings, now)
                        .map_err(|e| CommandError::Refused(e.to_string()))?;
                    self.publish(outputs);
                    Ok(())
                })();
                let _ = reply.send(result);
            }
            Command::News2 { patient, reply } => {
                self.load_settings(&patient);
                let _ = reply.send(self.engine.news2(&patient, now));
            }
            Command::Settings { patient, reply } => {
                self.load_settings(&patient);
                let _ = reply.send(self.engine.settings(&patient));
            }
            Command::Calibration { device, due } => {
                let outputs = self.engine.set_calibration_due(&device, due, now);
                self.publish(outputs);
            }
            Command::Committed | Command::Stop => {}
        }
    }

    /// Persists and publishes the outputs of an operator action and returns the alarm's new state.
    fn answer(&mut self, id: u64, outputs: Vec<Output>) -> Result<Value, CommandError> {
        let alarm = outputs.iter().rev().find_map(|o| match o {
            Output::Alarm(c) if c.alarm.id.0 == id => Some(c.alarm.clone()),
            _ => None,
        });
        self.publish(outputs);
        let alarm = alarm
            .or_else(|| self.engine.book().get(AlarmId(id)).cloned())
            .ok_or(CommandError::NoSuchAlarm(id))?;
        Ok(alarm_json(&alarm, self.patient_of(&alarm).as_ref()))
    }

    fn patient_of(&self, alarm: &Alarm) -> Option<PatientId> {
        match &alarm.key.subject {
            Subject::Patient(p) => Some(p.clone()),
            Subject::Device(d) => self.device_patient.get(d).cloned(),
        }
    }

    fn load_settings(&mut self, patient: &PatientId) {
        if self.settings_loaded.contains(patient) {
            return;
        }
        match self.store.patient_settings(patient) {
            Ok(Some(json)) => match serde_json::from_str::<PatientSettings>(&json) {
                Ok(settings) => {
                    if let Ok(outputs) =
                        self.engine
                            .set_settings(patient, settings, chrono::Utc::now())
                    {
                        self.publish(outputs);
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "stored patient settings cannot be read; using defaults")
                }
            },
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, "patient settings could not be loaded; will retry");
                return;
            }
        }
        self.settings_loaded.insert(patient.clone());
    }

    /// The device's kind and latest battery level, as its messages recorded them in the registry.
    fn device_info(&mut self, device: &DeviceId) -> (DeviceKind, Option<u8>) {
        if let Some(info) = self.devices.get(device)
            && info.read_at.elapsed() < DEVICE_INFO_TTL
        {
            return (info.kind.clone(), info.battery_pct);
        }
        let (kind, battery_pct) = match self.store.device(device) {
            Ok(Some(d)) => (d.kind, d.battery_pct),
            _ => (DeviceKind::new("unknown"), None),
        };
        self.devices.insert(
            device.clone(),
            DeviceInfo {
                kind: kind.clone(),
                battery_pct,
                read_at: std::time::Instant::now(),
            },
        );
        (kind, battery_pct)
    }

    /// Evaluates every observation committed since the last look.
    fn read_new(&mut self) {
        loop {
            let batch = match self.store.observations_after(self.position, READ_BATCH) {
                Ok(batch) => batch,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read new observations; will retry on the next commit");
                    return;
                }
            };
            let Some(last) = batch.last() else { return };
            self.position = last.id;
            let mut outputs = Vec::new();
            let streaming = self.live.receiver_count() > 0;
            for obs in &batch {
                if obs.code == ObservationCode::News2 {
                    // The engine's own record of a score it already published.
                    if streaming {
                        let _ = self.live.send(observation_event(obs));
                    }
                    continue;
                }
                self.load_settings(&obs.patient);
                self.device_patient
                    .insert(obs.device.clone(), obs.patient.clone());
                let (kind, battery) = self.device_info(&obs.device);
                match self.engine.observe(obs, &kind, battery, chrono::Utc::now()) {
                    Ok(out) => outputs.extend(out),
                    Err(e) => tracing::error!(error = %e, "an observation could not be evaluated"),
                }
                if streaming {
                    let _ = self.live.send(observation_event(obs));
                }
            }
            self.publish(latest_scores_only(outputs));
        }
    }

    /// Persists score and alarm changes with the engine's position (one transaction), then
    /// publishes them.
    fn publish(&mut self, outputs: Vec<Output>) {
        if outputs.is_empty() {
            return;
        }
        let recorded = chrono::Utc::now();
        let mut scores: Vec<ScoreRecord> = Vec::new();
        let mut changes: Vec<(AlarmRecord, AlarmEventRecord)> = Vec::new();
        let mut events: Vec<(NewStreamEvent, &'static str, Arc<Value>)> = Vec::new();
        for output in &outputs {
            match output {
                Output::News2 {
                    patient,
                    assessment,
                } => {
                    scores.push(ScoreRecord {
                        patient: patient.clone(),
                        effective: assessment.at,
                        recorded,
                        value: assessment.record(),
                    });
                    let data = Arc::new(news2_json(patient, assessment));
                    events.push((
                        stream_event(assessment.at, Some(patient), "news2", &data),
                        "news2",
                        data,
                    ));
                }
                Output::Alarm(change) => {
                    let patient = self.patient_of(&change.alarm);
                    changes.push(self.record(change, patient.clone()));
                    let mut data = alarm_json(&change.alarm, patient.as_ref());
                    data["event"] = json!({
                        "kind": name(&change.event.kind),
                        "at": change.event.at,
                        "by": change.event.by,
                        "detail": change.event.detail,
                    });
                    let data = Arc::new(data);
                    events.push((
                        stream_event(change.event.at, patient.as_ref(), "alarm", &data),
                        "alarm",
                        data,
                    ));
                }
            }
        }
        let new_events: Vec<NewStreamEvent> = events.iter().map(|(e, _, _)| e.clone()).collect();
        let written = self.store.record_surveillance(&SurveillanceStep {
            alarm_changes: &changes,
            scores: &scores,
            stream_events: &new_events,
            position: (self.position.0 > 0).then_some(self.position),
        });
        match written.map(|w| w.stream_seqs) {
            Ok(seqs) => {
                for (seq, (event, kind, data)) in seqs.into_iter().zip(events) {
                    let _ = self.live.send(LiveEvent {
                        observation: 0,
                        seq,
                        patient: event.patient,
                        kind,
                        data,
                    });
                }
            }
            // Alarms stay in memory and on the next change are written whole; the stream and the
            // log will miss this step, which the operator must see.
            Err(e) => {
                tracing::error!(error = %e, changes = changes.len(), "alarm changes could not be stored")
            }
        }
    }

    fn record(
        &self,
        change: &Change,
        patient: Option<PatientId>,
    ) -> (AlarmRecord, AlarmEventRecord) {
        let alarm = &change.alarm;
        let device = match &alarm.key.subject {
            Subject::Device(d) => Some(d.clone()),
            Subject::Patient(_) => None,
        };
        (
            AlarmRecord {
                id: alarm.id.0,
                patient,
                device,
                condition: alarm.key.condition.clone(),
                state: name(&alarm.state),
                priority: alarm.priority.name().to_owned(),
                raised_at: alarm.raised_at,
                updated_at: alarm.updated_at,
                snapshot: serde_json::to_string(alarm).unwrap_or_default(),
            },
            AlarmEventRecord {
                alarm: alarm.id.0,
                at: change.event.at,
                kind: name(&change.event.kind),
                by: change.event.by.clone(),
                detail: change.event.detail.clone(),
            },
        )
    }
}

/// Keeps, of the NEWS2 changes in one batch, only each patient's last: a monitor's message of
/// seven vital signs moves the score up to seven times within a millisecond, and what the
/// clinician and the record need is where it ended. Alarm changes are all kept, in order.
fn latest_scores_only(outputs: Vec<Output>) -> Vec<Output> {
    let mut last: HashMap<&PatientId, usize> = HashMap::new();
    for (i, output) in outputs.iter().enumerate() {
        if let Output::News2 { patient, .. } = output {
            last.insert(patient, i);
        }
    }
    let keep: Vec<bool> = outputs
        .iter()
        .enumerate()
        .map(|(i, output)| match output {
            Output::News2 { patient, .. } => last.get(patient) == Some(&i),
            Output::Alarm(_) => true,
        })
        .collect();
    outputs
        .into_iter()
        .zip(keep)
        .filter_map(|(output, keep)| keep.then_some(output))
        .collect()
}

fn refused(id: u64, e: SurveillanceError) -> CommandError {
    match e {
        SurveillanceError::Alarm(vigil_rules::alarm::AlarmError::NotOpen(_)) => {
            CommandError::NoSuchAlarm(id)
        }
        other => CommandError::Refused(other.to_string()),
    }
}

fn stream_event(
    at: Instant,
    patient: Option<&PatientId>,
    kind: &str,
    data: &Value,
) -> NewStreamEvent {
    NewStreamEvent {
        at,
        patient: patient.cloned(),
        kind: kind.to_owned(),
        data: data.to_string(),
    }
}

/// An observation on the live stream, as FHIR.
pub fn observation_event(obs: &Observation) -> LiveEvent {
    LiveEvent {
        observation: obs.id.0,
        seq: 0,
        patient: Some(obs.patient.clone()),
        kind: "observation",
        data: Arc::new(vigil_fhir::observation_to_fhir(obs)),
    }
}
