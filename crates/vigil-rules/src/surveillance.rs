//! One patient population under watch: every rule module composed, fed observations as they are
//! committed and ticks from a timer, producing NEWS2 assessments and alarm changes.
//!
//! Still pure: the server owns the I/O (persisting and publishing what comes out, calling
//! [`Surveillance::tick`] at [`Surveillance::next_deadline`]), and the alarm-burden benchmark
//! drives the very same code with simulated time.

use std::collections::HashMap;

use chrono::TimeDelta;
use serde::{Deserialize, Serialize};
use vigil_model::{
    AbsentReason, DeviceEvent, DeviceId, DeviceKind, Instant, Measurand, Observation,
    ObservationCode, ObservationStatus, ObservationValue, PatientId, QualityFlags,
};

use crate::alarm::{
    AlarmBook, AlarmError, AlarmId, AlarmKind, BookState, Change, ConditionChange, ConditionKey,
    Direction, Priority, RestoreError, Trigger, Worsening,
};
use crate::news2::{self, Band, Inputs, Parameter, Score, Spo2Scale};
use crate::technical::{DeviceWatch, WatchConfig, WatchError};
use crate::threshold::{Limits, ThresholdMonitor};
use crate::trend::{TrendError, TrendMonitor, TrendRules};

/// Condition id of the NEWS2 band alarm.
pub const NEWS2_CONDITION: &str = "news2:band";

/// What a clinician sets per patient.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PatientSettings {
    pub spo2_scale: Spo2Scale,
    pub limits: Limits,
    pub trends: TrendRules,
    /// The cohort these settings started from, if one was assigned.
    #[serde(default)]
    pub cohort: Option<String>,
}

impl Default for PatientSettings {
    fn default() -> Self {
        PatientSettings {
            spo2_scale: Spo2Scale::Scale1,
            limits: Limits::adult_defaults(),
            trends: TrendRules::defaults(),
            cohort: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SurveillanceConfig {
    /// How old a parameter's latest value may be and still count towards NEWS2. Default one
    /// hour: Chart 4's most frequent scheduled observation interval for a patient not on
    /// continuous monitoring. Older values make the score incomplete, never normal.
    pub news2_freshness: TimeDelta,
    /// How long NEWS2 must stay at low-medium or above, by the time of the readings, before the
    /// band alarm is raised: one odd reading (a cough, a motion artifact the device did not flag)
    /// moves a 1 Hz score for a moment; a deterioration stays.
    pub news2_alarm_delay: TimeDelta,
    pub watch: WatchConfig,
}

impl Default for SurveillanceConfig {
    fn default() -> Self {
        SurveillanceConfig {
            news2_freshness: TimeDelta::hours(1),
            news2_alarm_delay: TimeDelta::seconds(30),
            watch: WatchConfig::default(),
        }
    }
}

/// The NEWS2 of one patient at one moment, with what it was computed from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct News2Assessment {
    pub at: Instant,
    pub score: Score,
    /// The fresh inputs used (missing ones are `None`).
    pub inputs: Inputs,
    /// When each input used was measured.
    pub measured_at: Vec<(Parameter, Instant)>,
    pub monitoring_frequency: &'static str,
    pub clinical_response: &'static str,
}

impl News2Assessment {
    /// The assessment as it is recorded (an Observation of Vigil's NEWS2 scorer).
    pub fn record(&self) -> vigil_model::News2Value {
        vigil_model::News2Value {
            total: self.score.total,
            band: self.score.band.name().to_owned(),
            complete: self.score.complete,
            spo2_scale: self.score.scale.number(),
            scores: self
                .score
                .scores
                .iter()
                .map(|(p, s)| (p.name().to_owned(), *s))
                .collect(),
        }
    }
}

/// What the caller must persist and publish, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// A patient's NEWS2 changed (total, band, completeness or what is missing).
    News2 {
        patient: PatientId,
        assessment: News2Assessment,
    },
    /// An alarm was raised or changed state.
    Alarm(Change),
}

#[derive(Debug, thiserror::Error)]
pub enum SurveillanceError {
    #[error(transparent)]
    Watch(#[from] WatchError),
    #[error(transparent)]
    Trend(#[from] TrendError),
    #[error(transparent)]
    Restore(#[from] RestoreError),
    #[error(transparent)]
    Alarm(#[from] AlarmError),
}

/// A value and when it was measured.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Latest<T> {
    value: T,
    at: Instant,
}

#[derive(Debug, Default, Clone)]
struct News2Latest {
    respiration_rate: Option<Latest<f64>>,
    spo2: Option<Latest<f64>>,
    on_oxygen: Option<Latest<bool>>,
    systolic_bp: Option<Latest<f64>>,
    pulse: Option<Latest<f64>>,
    consciousness: Option<Latest<vigil_model::Acvpu>>,
    temperature: Option<Latest<f64>>,
}

/// Keeps a value only if it is newer than what is there.
fn keep<T: Copy>(slot: &mut Option<Latest<T>>, value: T, at: Instant) -> bool {
    if slot.is_some_and(|l| l.at > at) {
        return false;
    }
    *slot = Some(Latest { value, at });
    true
}

impl News2Latest {
    /// Records a NEWS2 input; false if the observation is not one (or is older than what is known).
    fn record(&mut self, obs: &Observation) -> bool {
        let at = obs.effective;
        match (&obs.code, &obs.value) {
            (ObservationCode::Single(m), ObservationValue::Quantity(q))
                if q.unit == m.canonical_unit() =>
            {
                match m {
                    Measurand::RespRate => keep(&mut self.respiration_rate, q.value, at),
                    Measurand::Spo2 => keep(&mut self.spo2, q.value, at),
                    Measurand::HeartRate => keep(&mut self.pulse, q.value, at),
                    Measurand::Temperature => keep(&mut self.temperature, q.value, at),
                    // A flow of supplemental oxygen: any flow above zero is oxygen.
                    Measurand::SupplementalOxygen => keep(&mut self.on_oxygen, q.value > 0.0, at),
                    _ => false,
                }
            }
            (ObservationCode::BloodPressure, ObservationValue::Components(parts)) => parts
                .iter()
                .find(|c| c.measurand == Measurand::SystolicBp && c.value.unit == "mm[Hg]")
                .is_some_and(|c| keep(&mut self.systolic_bp, c.value.value, at)),
            (_, ObservationValue::Acvpu(level)) => keep(&mut self.consciousness, *level, at),
            (_, ObservationValue::OnOxygen(on)) => keep(&mut self.on_oxygen, *on, at),
            _ => false,
        }
    }

    fn fresh<T: Copy>(
        slot: &Option<Latest<T>>,
        now: Instant,
        freshness: TimeDelta,
    ) -> Option<Latest<T>> {
        slot.filter(|l| now - l.at <= freshness)
    }

    fn assess(&self, scale: Spo2Scale, now: Instant, freshness: TimeDelta) -> News2Assessment {
        let rr = Self::fresh(&self.respiration_rate, now, freshness);
        let spo2 = Self::fresh(&self.spo2, now, freshness);
        let o2 = Self::fresh(&self.on_oxygen, now, freshness);
        let sbp = Self::fresh(&self.systolic_bp, now, freshness);
        let pulse = Self::fresh(&self.pulse, now, freshness);
        let acvpu = Self::fresh(&self.consciousness, now, freshness);
        let temp = Self::fresh(&self.temperature, now, freshness);
        let inputs = Inputs {
            respiration_rate: rr.map(|l| l.value),
            spo2: spo2.map(|l| l.value),
            on_oxygen: o2.map(|l| l.value),
            systolic_bp: sbp.map(|l| l.value),
            pulse: pulse.map(|l| l.value),
            consciousness: acvpu.map(|l| l.value),
            temperature: temp.map(|l| l.value),
        };
        let measured_at = [
            (Parameter::RespirationRate, rr.map(|l| l.at)),
            (Parameter::Spo2, spo2.map(|l| l.at)),
            (Parameter::AirOrOxygen, o2.map(|l| l.at)),
            (Parameter::SystolicBp, sbp.map(|l| l.at)),
            (Parameter::Pulse, pulse.map(|l| l.at)),
            (Parameter::Consciousness, acvpu.map(|l| l.at)),
            (Parameter::Temperature, temp.map(|l| l.at)),
        ]
        .into_iter()
        .filter_map(|(p, at)| at.map(|at| (p, at)))
        .collect();
        let score = news2::score(&inputs, scale);
        News2Assessment {
            at: now,
            monitoring_frequency: news2::monitoring_frequency(score.total, score.band),
            clinical_response: news2::clinical_response(score.total, score.band),
            score,
            inputs,
            measured_at,
        }
    }

    /// When the next fresh value goes stale: the earliest `at + freshness + 1 ms` after `now`.
    /// Computed as the earliest `at` after `now - (freshness + 1 ms)`, shifted once, because the
    /// engine asks this of every patient on every step (one date addition instead of seven).
    fn next_stale(&self, freshness: TimeDelta, now: Instant) -> Option<Instant> {
        let shift = freshness + TimeDelta::milliseconds(1);
        let fresh_after = now - shift;
        [
            self.respiration_rate.map(|l| l.at),
            self.spo2.map(|l| l.at),
            self.on_oxygen.map(|l| l.at),
            self.systolic_bp.map(|l| l.at),
            self.pulse.map(|l| l.at),
            self.consciousness.map(|l| l.at),
            self.temperature.map(|l| l.at),
        ]
        .into_iter()
        .flatten()
        .filter(|at| *at > fresh_after)
        .min()
        .map(|at| at + shift)
    }
}

struct PatientState {
    settings: PatientSettings,
    latest: News2Latest,
    /// The last assessment published, to report only changes.
    last: Option<News2Assessment>,
    /// Since when (reading time) NEWS2 has been at low-medium or above, while that lasts.
    elevated_since: Option<Instant>,
    /// Whether the band alarm's condition is reported present.
    band_alarmed: bool,
    thresholds: ThresholdMonitor,
    trends: TrendMonitor,
}

impl PatientState {
    fn new(patient: &PatientId, settings: PatientSettings) -> Result<Self, SurveillanceError> {
        Ok(PatientState {
            thresholds: ThresholdMonitor::new(patient.clone(), settings.limits.clone()),
            trends: TrendMonitor::new(patient.clone(), settings.trends.clone())?,
            settings,
            latest: News2Latest::default(),
            last: None,
            elevated_since: None,
            band_alarmed: false,
        })
    }
}

/// True when two assessments say the same to a clinician.
fn same_assessment(a: &News2Assessment, b: &News2Assessment) -> bool {
    a.score.total == b.score.total
        && a.score.band == b.score.band
        && a.score.complete == b.score.complete
        && a.score.missing == b.score.missing
        && a.score.scale == b.score.scale
}

fn band_rank(band: Band) -> f64 {
    match band {
        Band::Low => 0.0,
        Band::LowMedium => 1.0,
        Band::Medium => 2.0,
        Band::High => 3.0,
    }
}

/// The NEWS2 band alarm: a single red score (Chart 4: the nurse informs the medical team) is low
/// priority, 5–6 (urgent response) medium, 7 or more (emergency response) high, so a rising band
/// escalates the alarm, and after an acknowledgement re-sounds it.
fn news2_condition(patient: &PatientId, a: &News2Assessment) -> ConditionChange {
    let key = ConditionKey::patient(patient.clone(), NEWS2_CONDITION);
    let priority = match a.score.band {
        Band::Low => return ConditionChange::Cleared { key, at: a.at },
        // Each band its own priority, so that every escalation of band shows as one.
        Band::LowMedium => Priority::Low,
        Band::Medium => Priority::Medium,
        Band::High => Priority::High,
    };
    let completeness = if a.score.complete {
        ""
    } else {
        " (incomplete: at least)"
    };
    ConditionChange::Present {
        key,
        trigger: Trigger {
            priority,
            kind: AlarmKind::Physiological,
            message: format!(
                "NEWS2 {}{completeness}, {} clinical risk: {}",
                a.score.total,
                a.score.band.name(),
                a.score.band.clinical_risk_response()
            ),
            value: Some(band_rank(a.score.band)),
            worsening: Some(Worsening {
                direction: Direction::Up,
                margin: 1.0,
            }),
        },
        at: a.at,
    }
}

/// Condition id of the event alarm of one kind of device event: `event:{event}`.
pub fn event_condition(event: DeviceEvent) -> String {
    format!("event:{}", event.code())
}

/// A fall or a panic-button press needs someone at the patient now: high priority. An event has
/// no duration, so its condition is present and gone at once; being high priority, the alarm
/// latches (IEC 60601-1-8 6.2.2) and sounds until someone acknowledges it. Another event of the
/// same kind before then is recorded on the same alarm ("condition present again").
fn event_alarm(patient: &PatientId, event: DeviceEvent, at: Instant) -> [ConditionChange; 2] {
    let key = ConditionKey::patient(patient.clone(), event_condition(event));
    [
        ConditionChange::Present {
            key: key.clone(),
            trigger: Trigger {
                priority: Priority::High,
                kind: AlarmKind::Physiological,
                message: event.display().to_owned(),
                value: None,
                worsening: None,
            },
            at,
        },
        ConditionChange::Cleared { key, at },
    ]
}

/// Every patient and device under watch, and the open alarms.
pub struct Surveillance {
    config: SurveillanceConfig,
    patients: HashMap<PatientId, PatientState>,
    devices: DeviceWatch,
    book: AlarmBook,
}

impl Surveillance {
    pub fn new(config: SurveillanceConfig) -> Result<Self, SurveillanceError> {
        Ok(Surveillance {
            devices: DeviceWatch::new(config.watch.clone())?,
            config,
            patients: HashMap::new(),
            book: AlarmBook::new(AlarmId(1)),
        })
    }

    /// Continues from stored alarms after a restart: open alarms stay open (and acknowledged ones
    /// acknowledged); conditions that are still present update them instead of raising new ones.
    pub fn restore_alarms(&mut self, state: BookState) -> Result<(), SurveillanceError> {
        self.book = AlarmBook::try_from(state)?;
        Ok(())
    }

    pub fn book(&self) -> &AlarmBook {
        &self.book
    }

    fn patient(&mut self, patient: &PatientId) -> Result<&mut PatientState, SurveillanceError> {
        if !self.patients.contains_key(patient) {
            let state = PatientState::new(patient, PatientSettings::default())?;
            self.patients.insert(patient.clone(), state);
        }
        Ok(self.patients.get_mut(patient).expect("inserted above"))
    }

    /// Applies a patient's settings (SpO2 scale, limits, trend rules) and re-evaluates.
    pub fn set_settings(
        &mut self,
        patient: &PatientId,
        settings: PatientSettings,
        now: Instant,
    ) -> Result<Vec<Output>, SurveillanceError> {
        let freshness = self.config.news2_freshness;
        let state = self.patient(patient)?;
        let mut conditions = Vec::new();
        for (m, limits) in settings.limits.iter() {
            if state.settings.limits.get(m) != Some(limits) {
                conditions.extend(
                    state
                        .thresholds
                        .set_limits(m, Some(limits.clone()), now)
                        .unwrap_or_default(),
                );
            }
        }
        for (m, _) in state.settings.limits.iter() {
            if settings.limits.get(m).is_none() {
                conditions.extend(
                    state
                        .thresholds
                        .set_limits(m, None, now)
                        .unwrap_or_default(),
                );
            }
        }
        if state.settings.trends != settings.trends {
            conditions.extend(state.trends.set_rules(settings.trends.clone(), now)?);
        }
        state.settings = settings;
        let mut out = Vec::new();
        self.reassess(patient, now, freshness, &mut out)?;
        for c in conditions {
            out.extend(self.book.apply(&c, now).into_iter().map(Output::Alarm));
        }
        Ok(out)
    }

    pub fn settings(&self, patient: &PatientId) -> PatientSettings {
        self.patients
            .get(patient)
            .map(|p| p.settings.clone())
            .unwrap_or_default()
    }

    /// Records when `device` must next be calibrated (`None`: no due date); an overdue one
    /// raises a technical alarm, at once or when it comes due.
    pub fn set_calibration_due(
        &mut self,
        device: &DeviceId,
        due: Option<Instant>,
        now: Instant,
    ) -> Vec<Output> {
        let changes = self.devices.set_calibration_due(device, due, now);
        changes
            .iter()
            .flat_map(|c| self.book.apply(c, now))
            .map(Output::Alarm)
            .collect()
    }

    /// Starts watching a device for silence from `since`, even if it never sends anything.
    pub fn watch_device(&mut self, device: &DeviceId, kind: DeviceKind, since: Instant) {
        self.devices.watch(device, kind, since);
    }

    /// Evaluates one committed observation. `received` is when Vigil received it; `battery` the
    /// device's battery as reported with it.
    pub fn observe(
        &mut self,
        obs: &Observation,
        device_kind: &DeviceKind,
        battery_pct: Option<u8>,
        now: Instant,
    ) -> Result<Vec<Output>, SurveillanceError> {
        // A recorded NEWS2 is this engine's own output, not a new fact about the patient.
        if obs.code == ObservationCode::News2 {
            return Ok(Vec::new());
        }
        let mut conditions =
            self.devices
                .seen(&obs.device, device_kind.clone(), obs.received, battery_pct);
        let probe = match (&obs.code, &obs.value) {
            (_, ObservationValue::Absent(reason)) => {
                let measurand = match obs.code {
                    ObservationCode::Single(m) => Some(m),
                    ObservationCode::BloodPressure => Some(Measurand::SystolicBp),
                    ObservationCode::Event(_) | ObservationCode::News2 => None,
                };
                if let Some(m) = measurand {
                    conditions.extend(self.devices.no_value(
                        &obs.device,
                        m,
                        *reason == AbsentReason::SensorOff,
                        obs.effective,
                    ));
                }
                None
            }
            (ObservationCode::Single(m), ObservationValue::Quantity(q)) => {
                Some((*m, Some(q.value)))
            }
            (ObservationCode::BloodPressure, _) => Some((Measurand::SystolicBp, None)),
            (ObservationCode::Single(m), _) => Some((*m, None)),
            (ObservationCode::Event(event), _) => {
                conditions.extend(event_alarm(&obs.patient, *event, obs.effective));
                None
            }
            (ObservationCode::News2, _) => None,
        };
        if let Some((m, value)) = probe {
            conditions.extend(self.devices.observed(
                &obs.device,
                m,
                value,
                obs.effective,
                obs.received,
                obs.quality,
            ));
        }
        let freshness = self.config.news2_freshness;
        let state = self.patient(&obs.patient)?;
        conditions.extend(state.thresholds.observe_observation(obs));
        if let (ObservationCode::Single(m), ObservationValue::Quantity(q)) = (&obs.code, &obs.value)
        {
            conditions.extend(
                state
                    .trends
                    .observe(*m, Some(q.value), obs.effective, obs.quality),
            );
        }
        // Artifacts, values the device itself doubts, and non-results do not feed the score.
        let usable = !obs.quality.contains(QualityFlags::ARTIFACT)
            && !obs.quality.contains(QualityFlags::QUESTIONABLE)
            && matches!(
                obs.status,
                ObservationStatus::Final
                    | ObservationStatus::Preliminary
                    | ObservationStatus::Amended
                    | ObservationStatus::Corrected
            );
        let mut out = Vec::new();
        if usable && state.latest.record(obs) {
            self.reassess(&obs.patient, now, freshness, &mut out)?;
        }
        for c in conditions {
            out.extend(self.book.apply(&c, now).into_iter().map(Output::Alarm));
        }
        Ok(out)
    }

    /// Rebuilds a patient's recent history after a restart without raising anything: NEWS2
    /// inputs and trend windows are refilled; alarms come from [`Surveillance::restore_alarms`].
    pub fn replay(&mut self, obs: &Observation) -> Result<(), SurveillanceError> {
        if obs.code == ObservationCode::News2 {
            return Ok(());
        }
        let state = self.patient(&obs.patient)?;
        if !obs.quality.contains(QualityFlags::ARTIFACT)
            && !obs.quality.contains(QualityFlags::QUESTIONABLE)
        {
            state.latest.record(obs);
        }
        if let (ObservationCode::Single(m), ObservationValue::Quantity(q)) = (&obs.code, &obs.value)
        {
            let _ = state
                .trends
                .observe(*m, Some(q.value), obs.effective, obs.quality);
        }
        Ok(())
    }

    /// After a replay: computes every patient's current NEWS2 silently, so the next published
    /// assessment is a real change.
    pub fn settle(&mut self, now: Instant) {
        let freshness = self.config.news2_freshness;
        for state in self.patients.values_mut() {
            state.last = Some(
                state
                    .latest
                    .assess(state.settings.spo2_scale, now, freshness),
            );
        }
    }

    fn reassess(
        &mut self,
        patient: &PatientId,
        now: Instant,
        freshness: TimeDelta,
        out: &mut Vec<Output>,
    ) -> Result<(), SurveillanceError> {
        let state = self.patient(patient)?;
        let assessment = state
            .latest
            .assess(state.settings.spo2_scale, now, freshness);
        if state
            .last
            .as_ref()
            .is_some_and(|last| same_assessment(last, &assessment))
        {
            return Ok(());
        }
        let elevated = assessment.score.band > Band::Low;
        let newest_reading = assessment
            .measured_at
            .iter()
            .map(|(_, at)| *at)
            .max()
            .unwrap_or(now);
        let condition = match (elevated, state.elevated_since) {
            (true, None) => {
                state.elevated_since = Some(newest_reading);
                None
            }
            (true, Some(_)) => None,
            (false, _) => {
                state.elevated_since = None;
                std::mem::take(&mut state.band_alarmed)
                    .then(|| news2_condition(patient, &assessment))
            }
        };
        state.last = Some(assessment.clone());
        out.push(Output::News2 {
            patient: patient.clone(),
            assessment,
        });
        if let Some(condition) = condition {
            out.extend(
                self.book
                    .apply(&condition, now)
                    .into_iter()
                    .map(Output::Alarm),
            );
        }
        self.band_alarm(patient, now, out);
        Ok(())
    }

    /// Raises (or escalates) the band alarm once NEWS2 has been elevated for the alarm delay.
    fn band_alarm(&mut self, patient: &PatientId, now: Instant, out: &mut Vec<Output>) {
        let delay = self.config.news2_alarm_delay;
        let Some(state) = self.patients.get_mut(patient) else {
            return;
        };
        let (Some(since), Some(last)) = (state.elevated_since, state.last.as_ref()) else {
            return;
        };
        if now < since + delay {
            return;
        }
        state.band_alarmed = true;
        let condition = news2_condition(patient, last);
        out.extend(
            self.book
                .apply(&condition, now)
                .into_iter()
                .map(Output::Alarm),
        );
    }

    /// The current NEWS2 of a patient.
    pub fn news2(&self, patient: &PatientId, now: Instant) -> News2Assessment {
        match self.patients.get(patient) {
            Some(state) => {
                state
                    .latest
                    .assess(state.settings.spo2_scale, now, self.config.news2_freshness)
            }
            None => {
                News2Latest::default().assess(Spo2Scale::Scale1, now, self.config.news2_freshness)
            }
        }
    }

    /// Timer work: devices gone silent, audio pauses ending, NEWS2 inputs going stale.
    pub fn tick(&mut self, now: Instant) -> Result<Vec<Output>, SurveillanceError> {
        let mut out = Vec::new();
        for c in self.devices.tick(now) {
            out.extend(self.book.apply(&c, now).into_iter().map(Output::Alarm));
        }
        out.extend(self.book.tick(now).into_iter().map(Output::Alarm));
        let freshness = self.config.news2_freshness;
        let due: Vec<PatientId> = self
            .patients
            .iter()
            .filter(|(_, s)| {
                s.last.as_ref().is_some_and(|last| {
                    // Something that was fresh at the last assessment may have gone stale since.
                    s.latest
                        .next_stale(freshness, last.at)
                        .is_some_and(|stale| stale <= now)
                })
            })
            .map(|(p, _)| p.clone())
            .collect();
        for patient in due {
            self.reassess(&patient, now, freshness, &mut out)?;
        }
        let delay = self.config.news2_alarm_delay;
        let band_due: Vec<PatientId> = self
            .patients
            .iter()
            .filter(|(_, s)| {
                !s.band_alarmed && s.elevated_since.is_some_and(|since| since + delay <= now)
            })
            .map(|(p, _)| p.clone())
            .collect();
        for patient in band_due {
            self.band_alarm(&patient, now, &mut out);
        }
        Ok(out)
    }

    /// The next moment [`Surveillance::tick`] has work to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        let freshness = self.config.news2_freshness;
        let stale = self
            .patients
            .values()
            .filter_map(|s| {
                s.last
                    .as_ref()
                    .and_then(|last| s.latest.next_stale(freshness, last.at))
            })
            .min();
        let delay = self.config.news2_alarm_delay;
        let band = self
            .patients
            .values()
            .filter(|s| !s.band_alarmed)
            .filter_map(|s| s.elevated_since.map(|since| since + delay))
            .min();
        [
            self.devices.next_deadline(),
            self.book.next_deadline(),
            stale,
            band,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    pub fn acknowledge(
        &mut self,
        id: AlarmId,
        by: &str,
        now: Instant,
    ) -> Result<Vec<Output>, SurveillanceError> {
        Ok(self
            .book
            .acknowledge(id, by, now)?
            .into_iter()
            .map(Output::Alarm)
            .collect())
    }

    pub fn silence(
        &mut self,
        id: AlarmId,
        by: &str,
        until: Instant,
        now: Instant,
    ) -> Result<Vec<Output>, SurveillanceError> {
        Ok(self
            .book
            .silence(id, by, until, now)?
            .into_iter()
            .map(Output::Alarm)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use vigil_model::{Acvpu, ObservationId, Quantity};

    use crate::alarm::AlarmState;

    #[test]
    fn next_stale_is_the_earliest_input_time_plus_freshness_strictly_after_now() {
        let freshness = TimeDelta::minutes(15);
        let shift = freshness + TimeDelta::milliseconds(1);
        let base = Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap();
        let latest = News2Latest {
            pulse: Some(Latest {
                value: 70.0,
                at: base,
            }),
            spo2: Some(Latest {
                value: 97.0,
                at: base + TimeDelta::minutes(5),
            }),
            temperature: Some(Latest {
                value: 37.0,
                at: base - TimeDelta::minutes(20),
            }),
            ..Default::default()
        };
        // The definition, input by input, against the shortcut, at every boundary.
        let naive = |now: Instant| {
            [
                base,
                base + TimeDelta::minutes(5),
                base - TimeDelta::minutes(20),
            ]
            .into_iter()
            .map(|at| at + shift)
            .filter(|stale| *stale > now)
            .min()
        };
        for now in [
            base,
            base + shift - TimeDelta::milliseconds(1),
            base + shift,
            base + shift + TimeDelta::milliseconds(1),
            base + TimeDelta::minutes(5) + shift,
            base + TimeDelta::minutes(5) + shift - TimeDelta::milliseconds(1),
            base - TimeDelta::minutes(20) + shift,
            base - TimeDelta::hours(1),
            base + TimeDelta::hours(1),
        ] {
            assert_eq!(latest.next_stale(freshness, now), naive(now), "at {now}");
        }
        assert_eq!(latest.next_stale(freshness, base), Some(base + shift));
        assert_eq!(News2Latest::default().next_stale(freshness, base), None);
    }

    fn t(sec: i64) -> Instant {
        Utc.with_ymd_and_hms(2026, 11, 21, 10, 0, 0).unwrap() + TimeDelta::seconds(sec)
    }

    fn obs(m: Measurand, value: f64, sec: i64) -> Observation {
        Observation {
            id: ObservationId(sec),
            patient: PatientId::new("p1").unwrap(),
            device: DeviceId::new("mon-1").unwrap(),
            code: ObservationCode::Single(m),
            value: ObservationValue::Quantity(Quantity::new(value, m.canonical_unit())),
            effective: t(sec),
            received: t(sec),
            status: ObservationStatus::Final,
            quality: QualityFlags::empty(),
        }
    }

    fn coded(value: ObservationValue, m: Measurand, sec: i64) -> Observation {
        Observation {
            value,
            ..obs(m, 0.0, sec)
        }
    }

    fn bp(systolic: f64, sec: i64) -> Observation {
        Observation {
            code: ObservationCode::BloodPressure,
            value: ObservationValue::Components(vec![vigil_model::ObservationComponent {
                measurand: Measurand::SystolicBp,
                value: Quantity::new(systolic, "mm[Hg]"),
            }]),
            ..obs(Measurand::SystolicBp, 0.0, sec)
        }
    }

    fn monitor() -> DeviceKind {
        DeviceKind::new(DeviceKind::MULTIPARAMETER_MONITOR)
    }

    fn feed(s: &mut Surveillance, o: Observation) -> Vec<Output> {
        let now = o.received;
        s.observe(&o, &monitor(), None, now).unwrap()
    }

    fn full_set(
        s: &mut Surveillance,
        rr: f64,
        spo2: f64,
        pulse: f64,
        temp: f64,
        sbp: f64,
        sec: i64,
    ) -> Vec<Output> {
        let mut out = Vec::new();
        out.extend(feed(s, obs(Measurand::RespRate, rr, sec)));
        out.extend(feed(s, obs(Measurand::Spo2, spo2, sec)));
        out.extend(feed(
            s,
            coded(
                ObservationValue::OnOxygen(false),
                Measurand::SupplementalOxygen,
                sec,
            ),
        ));
        out.extend(feed(s, bp(sbp, sec)));
        out.extend(feed(s, obs(Measurand::HeartRate, pulse, sec)));
        out.extend(feed(
            s,
            coded(
                ObservationValue::Acvpu(Acvpu::Alert),
                Measurand::Consciousness,
                sec,
            ),
        ));
        out.extend(feed(s, obs(Measurand::Temperature, temp, sec)));
        out
    }

    fn last_news2(out: &[Output]) -> Option<&News2Assessment> {
        out.iter().rev().find_map(|o| match o {
            Output::News2 { assessment, .. } => Some(assessment),
            Output::Alarm(_) => None,
        })
    }

    fn event(e: DeviceEvent, sec: i64) -> Observation {
        Observation {
            code: ObservationCode::Event(e),
            value: ObservationValue::Detected,
            ..obs(Measurand::HeartRate, 0.0, sec)
        }
    }

    fn absent(m: Measurand, reason: AbsentReason, sec: i64) -> Observation {
        Observation {
            value: ObservationValue::Absent(reason),
            ..obs(m, 0.0, sec)
        }
    }

    fn open_alarm<'a>(s: &'a Surveillance, condition: &str) -> Option<&'a crate::alarm::Alarm> {
        s.book().open().find(|a| a.key.condition == condition)
    }

    #[test]
    fn a_fall_raises_a_high_priority_alarm_that_sounds_until_acknowledged() {
        let mut s = Surveillance::new(SurveillanceConfig::default()).unwrap();
        feed(&mut s, event(DeviceEvent::Fall, 0));
        let alarm = open_alarm(&s, "event:fall").unwrap().clone();
        assert_eq!(alarm.priority, Priority::High);
        assert_eq!(alarm.kind, AlarmKind::Physiological);
        assert_eq!(
            alarm.key.subject,
            crate::alarm::Subject::Patient(PatientId::new("p1").unwrap())
        );
        assert!(!alarm.condition_present, "an event has no duration");
        assert_eq!(
            alarm.state,
            AlarmState::Active,
            "latched: it sounds until acknowledged"
        );
        assert!(alarm.is_sounding(t(600)));
        // A second fall before anyone came is recorded on the same alarm, not a second one.
        let out = feed(&mut s, event(DeviceEvent::Fall, 30));
        assert_eq!(
            s.book()
                .open()
                .filter(|a| a.key.condition == "event:fall")
                .count(),
            1
        );
        assert!(out.iter().any(|o| matches!(o, Output::Alarm(c)
            if c.event.kind == crate::alarm::AlarmEventKind::ConditionReturned)));
        // Acknowledging ends it; a later fall is a new alarm.
        s.acknowledge(alarm.id, "nurse.kim", t(60)).unwrap();
        assert!(open_alarm(&s, "event:fall").is_none());
        feed(&mut s, event(DeviceEvent::Fall, 120));
        let again = open_alarm(&s, "event:fall").unwrap();
        assert_ne!(again.id, alarm.id);
        // A panic press is its own condition, and neither event touches NEWS2.
        let out = feed(&mut s, event(DeviceEvent::Panic, 130));
        assert_eq!(
            open_alarm(&s, "event:panic").unwrap().priority,
            Priority::High
        );
        assert!(last_news2(&out).is_none());
    }

    #[test]
    fn a_sensor_off_report_raises_a_technical_alarm_until_a_clean_reading() {
        let mut s = Surveillance::new(SurveillanceConfig::default()).unwrap();
        full_set(&mut s, 16.0, 97.0, 72.0, 37.0, 120.0, 0);
        let before = s.news2(&PatientId::new("p1").unwrap(), t(10));
        let out = feed(&mut s, absent(Measurand::Spo2, AbsentReason::SensorOff, 10));
        let alarm = open_alarm(&s, "technical:sensor-off:spo2").unwrap().clone();
        assert_eq!(
            (alarm.priority, alarm.kind),
            (Priority::Medium, AlarmKind::Technical)
        );
        assert_eq!(
            alarm.key.subject,
            crate::alarm::Subject::Device(DeviceId::new("mon-1").unwrap())
        );
        assert_eq!(alarm.message, "spo2: sensor off");
        // A missing value is neither a low SpO2 nor a new score.
        assert!(open_alarm(&s, "threshold:spo2:low").is_none());
        assert!(last_news2(&out).is_none());
        assert_eq!(
            s.news2(&PatientId::new("p1").unwrap(), t(10)).score,
            before.score
        );
        // Repeated reports change nothing; a flagged artifact does not clear it; a clean one does.
        assert!(feed(&mut s, absent(Measurand::Spo2, AbsentReason::SensorOff, 11)).is_empty());
        let mut flagged = obs(Measurand::Spo2, 60.0, 12);
        flagged.quality = QualityFlags::ARTIFACT;
        feed(&mut s, flagged);
        assert!(open_alarm(&s, "technical:sensor-off:spo2").is_some());
        feed(&mut s, obs(Measurand::Spo2, 96.0, 13));
        assert!(open_alarm(&s, "technical:sensor-off:spo2").is_none());
        // "Could not be obtained" (HL7 OBX-11 X) is the same condition, worded as such.
        feed(
            &mut s,
            absent(Measurand::HeartRate, AbsentReason::NotObtained, 14),
        );
        assert_eq!(
            open_alarm(&s, "technical:sensor-off:heart_rate")
                .unwrap()
                .message,
            "heart_rate: no value obtained"
        );
    }

    #[test]
    fn a_complete_normal_set_scores_zero_and_raises_nothing() {
        let mut s = Surveillance::new(SurveillanceConfig::default()).unwrap();
        let out = full_set(&mut s, 16.0, 97.0, 72.0, 37.0, 120.0, 0);
        let a = last_news2(&out).unwrap();
        assert_eq!(
            (a.score.total, a.score.band, a.score.complete),
            (0, Band::Low, true)
        );
        assert!(!out.iter().any(|o| matches!(o, Output::Alarm(_))));
    }

    #[test]
    fn deterioration_escalates_the_news2_alarm_once_per_band() {
        let mut s = Surveillance::new(SurveillanceConfig::default()).unwrap();
        full_set(&mut s, 16.0, 97.0, 72.0, 37.0, 120.0, 0);
        // Sepsis-like: pulse 115 (2), temperature 39.2 (2), RR 22 (2) → 6, medium.
        let mut out = feed(&mut s, obs(Measurand::HeartRate, 115.0, 60));
        out.extend(feed(&mut s, obs(Measurand::Temperature, 39.2, 60)));
        out.extend(feed(&mut s, obs(Measurand::RespRate, 22.0, 60)));
        let a = last_news2(&out).unwrap();
        assert_eq!((a.score.total, a.score.band), (6, Band::Medium));
        // Not yet: the band must hold for the alarm delay (30 s from the readings).
        assert!(!s.book().open().any(|a| a.key.condition == NEWS2_CONDITION));
        assert_eq!(s.next_deadline(), Some(t(90)));
        s.tick(t(89)).unwrap();
        assert!(!s.book().open().any(|a| a.key.condition == NEWS2_CONDITION));
        s.tick(t(90)).unwrap();
        let news2_alarms: Vec<_> = s
            .book()
            .open()
            .filter(|a| a.key.condition == NEWS2_CONDITION)
            .collect();
        assert_eq!(news2_alarms.len(), 1);
        assert_eq!(news2_alarms[0].priority, Priority::Medium);
        let id = news2_alarms[0].id;
        // Acknowledged, then worse: RR 26 (3) → 7, high: the same alarm re-sounds at high priority.
        s.acknowledge(id, "nadia", t(70)).unwrap();
        feed(&mut s, obs(Measurand::RespRate, 26.0, 120));
        let alarm = s.book().get(id).unwrap();
        assert_eq!(alarm.priority, Priority::High);
        assert_eq!(alarm.state, AlarmState::Active);
        assert_eq!(
            s.book()
                .open()
                .filter(|a| a.key.condition == NEWS2_CONDITION)
                .count(),
            1
        );
    }

    #[test]
    fn a_brief_excursion_raises_no_band_alarm() {
        let mut s = Surveillance::new(SurveillanceConfig::default()).unwrap();
        full_set(&mut s, 16.0, 97.0, 72.0, 37.0, 120.0, 0);
        // One unflagged motion spike scores pulse 3 for a few seconds, then normal again.
        let out = feed(&mut s, obs(Measurand::HeartRate, 180.0, 10));
        assert_eq!(last_news2(&out).unwrap().score.band, Band::LowMedium);
        feed(&mut s, obs(Measurand::HeartRate, 74.0, 15));
        for sec in [40, 60] {
            s.tick(t(sec)).unwrap();
        }
        assert!(
            s.book().is_empty(),
            "{:?}",
            s.book().open().collect::<Vec<_>>()
        );
        // A value the device flags as questionable does not even move the score.
        let mut doubtful = obs(Measurand::HeartRate, 190.0, 65);
        doubtful.quality = QualityFlags::QUESTIONABLE;
        assert!(last_news2(&feed(&mut s, doubtful)).is_none());
    }

    #[test]
    fn a_stale_parameter_makes_the_score_incomplete_on_the_timer() {
        let mut s = Surveillance::new(SurveillanceConfig::default()).unwrap();
        full_set(&mut s, 16.0, 97.0, 72.0, 37.0, 120.0, 0);
        // Everything but the temperature keeps coming.
        for sec in [1800, 3500] {
            feed(&mut s, obs(Measurand::RespRate, 16.0, sec));
            feed(&mut s, obs(Measurand::Spo2, 97.0, sec));
            feed(
                &mut s,
                coded(
                    ObservationValue::OnOxygen(false),
                    Measurand::SupplementalOxygen,
                    sec,
                ),
            );
            feed(&mut s, bp(120.0, sec));
            feed(&mut s, obs(Measurand::HeartRate, 72.0, sec));
            feed(
                &mut s,
                coded(
                    ObservationValue::Acvpu(Acvpu::Alert),
                    Measurand::Consciousness,
                    sec,
                ),
            );
        }
        // The monitor itself went quiet 90 s after its last message (a technical alarm), but
        // the temperature is still fresh until 11:00:00.
        let out = s.tick(t(3599)).unwrap();
        assert!(last_news2(&out).is_none());
        assert!(out.iter().any(
            |o| matches!(o, Output::Alarm(c) if c.alarm.key.condition == crate::technical::SILENT)
        ));
        let deadline = s.next_deadline().unwrap();
        assert!(deadline > t(3600) && deadline <= t(3601), "{deadline}");
        let out = s.tick(deadline).unwrap();
        let a = last_news2(&out).expect("the score changed");
        assert!(!a.score.complete);
        assert_eq!(a.score.missing, vec![Parameter::Temperature]);
    }

    #[test]
    fn an_artifact_does_not_feed_the_score() {
        let mut s = Surveillance::new(SurveillanceConfig::default()).unwrap();
        full_set(&mut s, 16.0, 97.0, 72.0, 37.0, 120.0, 0);
        let mut probe_off = obs(Measurand::Spo2, 60.0, 10);
        probe_off.quality = QualityFlags::ARTIFACT;
        let out = feed(&mut s, probe_off);
        assert!(last_news2(&out).is_none());
        assert_eq!(
            s.news2(&PatientId::new("p1").unwrap(), t(11)).score.total,
            0
        );
    }

    #[test]
    fn scale_2_settings_rescore_at_once() {
        let mut s = Surveillance::new(SurveillanceConfig::default()).unwrap();
        full_set(&mut s, 16.0, 90.0, 72.0, 37.0, 120.0, 0);
        let p = PatientId::new("p1").unwrap();
        assert_eq!(s.news2(&p, t(1)).score.total, 3);
        let settings = PatientSettings {
            spo2_scale: Spo2Scale::Scale2,
            ..PatientSettings::default()
        };
        let out = s.set_settings(&p, settings, t(2)).unwrap();
        assert_eq!(last_news2(&out).unwrap().score.total, 0);
    }

    #[test]
    fn restored_alarms_are_not_raised_again() {
        let mut s = Surveillance::new(SurveillanceConfig::default()).unwrap();
        full_set(&mut s, 16.0, 97.0, 72.0, 37.0, 120.0, 0);
        feed(&mut s, obs(Measurand::RespRate, 30.0, 60));
        feed(&mut s, obs(Measurand::HeartRate, 140.0, 60));
        s.tick(t(90)).unwrap();
        let open: Vec<_> = s.book().open().cloned().collect();
        assert!(!open.is_empty());
        let id = open
            .iter()
            .find(|a| a.key.condition == NEWS2_CONDITION)
            .unwrap()
            .id;
        s.acknowledge(id, "nadia", t(61)).unwrap();
        let state = BookState::from(std::mem::take(&mut s.book));
        // "Restart".
        let mut s2 = Surveillance::new(SurveillanceConfig::default()).unwrap();
        s2.restore_alarms(state).unwrap();
        for o in [
            obs(Measurand::RespRate, 30.0, 60),
            obs(Measurand::HeartRate, 140.0, 60),
        ] {
            s2.replay(&o).unwrap();
        }
        s2.settle(t(62));
        let out = feed(&mut s2, obs(Measurand::HeartRate, 141.0, 63));
        assert!(!out.iter().any(|o| matches!(o, Output::Alarm(c) if c.event.kind == crate::alarm::AlarmEventKind::Raised)), "{out:?}");
        assert_eq!(s2.book().get(id).unwrap().state, AlarmState::Acknowledged);
    }
}
