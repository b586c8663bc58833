//! The alarm-burden benchmark: the demo ward's realistic data, artifacts included, for a simulated
//! day, through the real device-JSON decoder and the real rules engine, against naive
//! single-threshold alarming. Deterministic and serverless: time is simulated, so a day takes
//! seconds and the same seed always gives the same report.
//!
//! # What runs
//!
//! * **The ward**: [`crate::ward::ward_for_day`] with `patients` beds (default 20) and a fixed
//!   seed: most patients stable, every tenth from the fourth septic and every tenth from the
//!   eighth hypoxic, their onsets staggered over the day. The simulated clock starts at
//!   [`START`] (midnight, so the hour of day drives the circadian rhythm) and runs `hours`
//!   (default 24).
//! * **Devices**: each patient's monitor sends one message a second, HR, SpO2 and respiration
//!   rate every time, blood pressure, temperature, ACVPU and supplemental oxygen every 30th, as
//!   [`crate::ward::SimPatient::message`] writes them (the demo's cadence). Monitor `i` sends at
//!   `(i mod 20) × 50 ms` into each second, as the demo spreads them. Flagged artifacts (probe-off
//!   SpO2 marked `artifact`, heart-rate spikes marked `questionable`, one message in 300) and
//!   unflagged motion artifacts (SpO2 80–85 % or heart rate 135–160 for 3–8 s, one in four for
//!   12–40 s; about seven per patient-day) come from the ward module.
//! * **Vigil**: every message is serialised and decoded with
//!   [`vigil_codecs::decode_device_message`] (received = the message time), each reading becomes an
//!   [`Observation`] (ids increasing, patient = the sim patient, device = its monitor, a
//!   `multiparameter-monitor`, effective = received = the message time) and goes to
//!   [`Surveillance::observe`] with the battery the message reported, under the default
//!   configuration (adult default limits, default trend rules, NEWS2 scale 1, one-hour
//!   freshness). Before each message, [`Surveillance::tick`] runs at every
//!   [`Surveillance::next_deadline`] that has passed, at that deadline, as the server's timer does.
//! * **A nurse**: acknowledges every alarm `acknowledge_after_secs` (default 120 s) after it starts
//!   sounding. Without anyone acknowledging, a latched high-priority alarm would stay open all day
//!   and hide every later occurrence of its condition; with the nurse, a condition that comes
//!   back after its alarm was reset is a new alarm, as on a real ward.
//! * **Naive alarming**, the comparator: the same decoded readings against the same limits
//!   ([`Limits::adult_defaults`], the least severe limit of each side, strictly beyond it), with
//!   no delay, no hysteresis and no artifact handling (flagged readings count like any other).
//!   One alarm per transition from inside to outside a limit, per patient, measurand and side; the
//!   first reading counts as a transition from inside. A second, fairer comparator does the same
//!   but skips readings the device flagged `artifact` or `questionable` (as most bedside monitors
//!   do), so what remains of the difference is delay and hysteresis.
//!
//! # What is reported ([`BurdenReport`])
//!
//! * **An alarm (Vigil)** is an alarm *signal* starting: an [`AlarmEventKind::Raised`] event (a
//!   new alarm) or an [`AlarmEventKind::ReAlarmed`] one (an acknowledged alarm sounding again
//!   because its condition worsened or escalated). Escalations of an alarm still sounding, a
//!   latched alarm's condition returning before anyone acknowledged it, and resolutions are not
//!   new signals. Its priority is the alarm's priority just after the event; physiological or
//!   technical is the alarm's kind; its condition the condition id (`threshold:spo2:low`,
//!   `news2:band`, `technical:battery`, …). Technical alarms about a monitor count for the patient
//!   wearing it.
//! * **An alarm (naive)** is one transition as defined above; its condition is named like the
//!   threshold condition it mirrors. All naive alarms are physiological.
//! * **Alarms per patient-day** = alarms ÷ (patients × hours ÷ 24). **False alarms per stable
//!   patient-day** = physiological alarms on patients whose scenario is stable ÷ (stable
//!   patients × hours ÷ 24): nothing is wrong with those patients, so every physiological alarm
//!   on them is false. **Physiological alarms per deteriorating patient-day** = the same on the
//!   other patients, over the whole run (before their onset too).
//! * **Detection of a scripted deterioration**: the time from its onset (the start of its ramp)
//!   to the first physiological alarm on that patient at or after the onset that *the
//!   deterioration caused*. To tell caused from coincidental (an artifact that would have
//!   alarmed anyway), each deteriorating patient has a stable twin: the same bed, seed and
//!   therefore the same noise and the same artifacts at the same instants, with scenario
//!   [`Scenario::Stable`], run through its own engine, nurse and naive comparator. An alarm of the
//!   deteriorating patient at time `t` for condition `c` is coincidental when the twin also has
//!   an alarm for `c` at `t`. For Vigil any physiological condition counts, the NEWS2 band alarm
//!   included; for naive any threshold. Not detected means no caused alarm by the end of the run.
//!   Also reported: the time to the first caused event at *high* priority (for Vigil an alarm
//!   raised or re-alarmed at high priority, or escalated to it; for naive a crossing of a limit
//!   whose priority is high), the moment the response becomes urgent.
//!
//! Figures and their reading: `docs/alarms.md`. Run with `vigil bench-alarms`.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::Write as _;

use chrono::{TimeDelta, TimeZone, Utc};
use vigil_codecs::{DecodeLimits, PayloadError, decode_device_message};
use vigil_model::{
    DeviceId, DeviceKind, IdError, Instant, Measurand, Observation, ObservationCode, ObservationId,
    ObservationValue, PatientId, QualityFlags,
};
use vigil_rules::alarm::{AlarmError, AlarmEventKind, AlarmId, AlarmKind, Priority, Subject};
use vigil_rules::surveillance::{Output, Surveillance, SurveillanceConfig, SurveillanceError};
use vigil_rules::threshold::{Bound, Limits, condition_id};

use crate::ward::{Scenario, SimPatient, ward_for_day};

/// The seed the demo uses; the benchmark's default.
pub const DEFAULT_SEED: u64 = 2026;

/// When the simulated day starts: midnight UTC, so simulated seconds are seconds of the day.
pub const START: &str = "2026-11-23T00:00:00Z";

/// Every how many messages a monitor adds its spot checks (the demo's figure).
pub const SPOT_CHECK_EVERY: u64 = 30;

/// Who acknowledges in the benchmark (recorded on the acknowledgement events).
const NURSE: &str = "simulated-nurse";

/// What to simulate.
#[derive(Debug, Clone, PartialEq)]
pub struct BurdenConfig {
    /// Beds on the ward.
    pub patients: usize,
    /// Simulated hours.
    pub hours: f64,
    pub seed: u64,
    /// Seconds from an alarm starting to sound to the nurse acknowledging it; `None`: nobody
    /// ever acknowledges.
    pub acknowledge_after_secs: Option<u32>,
}

impl Default for BurdenConfig {
    fn default() -> Self {
        BurdenConfig {
            patients: 20,
            hours: 24.0,
            seed: DEFAULT_SEED,
            acknowledge_after_secs: Some(120),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BurdenError {
    #[error("the ward needs at least one patient and a positive number of hours")]
    Empty,
    #[error("the rules engine refused: {0}")]
    Surveillance(#[from] SurveillanceError),
    #[error("the decoder refused a simulated message: {0}")]
    Payload(#[from] PayloadError),
    #[error("a simulated identifier is invalid: {0}")]
    Id(#[from] IdError),
    #[error("a simulated message could not be serialised: {0}")]
    Json(#[from] serde_json::Error),
}

/// Vigil's alarm signals, counted.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct VigilTally {
    pub total: u64,
    pub high: u64,
    pub medium: u64,
    pub low: u64,
    pub physiological: u64,
    pub technical: u64,
    /// Physiological alarms on stable patients: false alarms.
    pub stable_physiological: u64,
    /// Technical alarms on stable patients.
    pub stable_technical: u64,
    /// Per condition id: alarms on stable and on deteriorating patients.
    pub by_condition: BTreeMap<String, Split>,
}

/// A count split by the patients' scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Split {
    pub stable: u64,
    /// On patients with a scripted deterioration, before and after its onset.
    pub deteriorating: u64,
}

impl Split {
    fn add(&mut self, stable: bool) {
        if stable {
            self.stable += 1;
        } else {
            self.deteriorating += 1;
        }
    }
}

/// Naive single-threshold alarms, counted.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NaiveTally {
    pub total: u64,
    /// On stable patients: false alarms.
    pub stable: u64,
    /// Per condition id (named like Vigil's threshold conditions).
    pub by_condition: BTreeMap<String, Split>,
}

/// The first alarm a deterioration caused.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    /// Seconds from the onset.
    pub after_s: f64,
    /// The condition id that alarmed.
    pub condition: String,
    /// Its priority (naive: the priority of the limit crossed).
    pub priority: Priority,
}

/// How one approach caught one deterioration.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Caught {
    /// The first alarm the deterioration caused (`None`: not detected).
    pub first: Option<Detection>,
    /// The first time an alarm it caused was (or became, by escalation) high priority.
    pub first_high: Option<Detection>,
}

/// One scripted deterioration and how each approach caught it.
#[derive(Debug, Clone, PartialEq)]
pub struct Deterioration {
    pub patient: String,
    pub scenario: &'static str,
    /// Seconds after [`START`].
    pub onset_s: f64,
    pub vigil: Caught,
    pub naive: Caught,
    pub naive_flags: Caught,
}

/// The result of one run; see the module documentation for the definitions.
#[derive(Debug, Clone, PartialEq)]
pub struct BurdenReport {
    pub config: BurdenConfig,
    pub stable_patients: usize,
    /// Device messages sent and decoded (the twins' not counted).
    pub messages: u64,
    /// Observations fed to the engine.
    pub observations: u64,
    /// Readings the decoder refused (should be none: the simulator follows the contract).
    pub rejected_readings: u64,
    pub vigil: VigilTally,
    /// Naive alarming on every reading.
    pub naive: NaiveTally,
    /// Naive alarming that skips readings flagged `artifact` or `questionable`.
    pub naive_flags: NaiveTally,
    pub deteriorations: Vec<Deterioration>,
    /// Times a timer deadline did not move on after its tick (a rules-engine bug if ever > 0;
    /// the benchmark skips the deadline rather than spin).
    pub timer_stalls: u64,
}

/// One alarm event as recorded for the report.
#[derive(Debug, Clone, PartialEq)]
struct Signal {
    bed: usize,
    at: Instant,
    condition: String,
    /// The alarm's priority just after the event.
    priority: Priority,
    kind: AlarmKind,
    /// An alarm signal starting (raised, re-alarmed); false for an escalation of one sounding.
    starts: bool,
}

/// Naive alarming: one alarm per crossing from inside to outside a limit.
struct Naive {
    /// (measurand, side, limit, priority, condition id)
    limits: Vec<(Measurand, Bound, f64, Priority, String)>,
    outside: HashMap<(usize, Measurand, Bound), bool>,
    /// Skip readings the device flagged `artifact` or `questionable` (the fairer comparator).
    honour_flags: bool,
}

impl Naive {
    fn new(limits: &Limits, honour_flags: bool) -> Self {
        let mut all = Vec::new();
        for (m, sides) in limits.iter() {
            for bound in [Bound::Low, Bound::High] {
                if let Some(tier) = sides.side(bound).and_then(|s| s.tiers.first()) {
                    all.push((m, bound, tier.limit, tier.priority, condition_id(m, bound)));
                }
            }
        }
        Naive {
            limits: all,
            outside: HashMap::new(),
            honour_flags,
        }
    }

    /// The alarms one observation of bed `bed` raises.
    fn observe(&mut self, bed: usize, obs: &Observation, out: &mut Vec<Signal>) {
        if self.honour_flags
            && (obs.quality.contains(QualityFlags::ARTIFACT)
                || obs.quality.contains(QualityFlags::QUESTIONABLE))
        {
            return;
        }
        let values: Vec<(Measurand, f64)> = match (&obs.code, &obs.value) {
            (ObservationCode::Single(m), ObservationValue::Quantity(q)) => vec![(*m, q.value)],
            (_, ObservationValue::Components(parts)) => {
                parts.iter().map(|c| (c.measurand, c.value.value)).collect()
            }
            _ => Vec::new(),
        };
        for (m, v) in values {
            for (lm, bound, limit, priority, condition) in &self.limits {
                if *lm != m {
                    continue;
                }
                let beyond = match bound {
                    Bound::Low => v < *limit,
                    Bound::High => v > *limit,
                };
                let was = self.outside.insert((bed, m, *bound), beyond);
                if beyond && was != Some(true) {
                    out.push(Signal {
                        bed,
                        at: obs.effective,
                        condition: condition.clone(),
                        priority: *priority,
                        kind: AlarmKind::Physiological,
                        starts: true,
                    });
                }
            }
        }
    }
}

/// What [`Lane::advance`] does next.
enum Next {
    Tick(Instant),
    Acknowledge(Instant, AlarmId),
}

/// One engine, nurse and naive comparator over some beds.
struct Lane {
    engine: Surveillance,
    decode_limits: DecodeLimits,
    kind: DeviceKind,
    naive: Naive,
    naive_flags: Naive,
    /// Pending acknowledgements: (when, alarm).
    nurse: BTreeSet<(Instant, AlarmId)>,
    acknowledge_after: Option<TimeDelta>,
    /// Which bed a patient or device id belongs to.
    bed_of: HashMap<String, usize>,
    signals: Vec<Signal>,
    naive_alarms: Vec<Signal>,
    naive_flags_alarms: Vec<Signal>,
    next_observation: i64,
    messages: u64,
    observations: u64,
    rejected: u64,
    timer_stalls: u64,
    /// A deadline that did not move on after its tick; skipped until it changes.
    stalled: Option<Instant>,
}

impl Lane {
    fn new(acknowledge_after_secs: Option<u32>) -> Result<Self, BurdenError> {
        Ok(Lane {
            engine: Surveillance::new(SurveillanceConfig::default())?,
            decode_limits: DecodeLimits::default(),
            kind: DeviceKind::new(DeviceKind::MULTIPARAMETER_MONITOR),
            naive: Naive::new(&Limits::adult_defaults(), false),
            naive_flags: Naive::new(&Limits::adult_defaults(), true),
            nurse: BTreeSet::new(),
            acknowledge_after: acknowledge_after_secs
                .map(|s| TimeDelta::seconds(i64::from(s.max(1)))),
            bed_of: HashMap::new(),
            signals: Vec::new(),
            naive_alarms: Vec::new(),
            naive_flags_alarms: Vec::new(),
            next_observation: 1,
            messages: 0,
            observations: 0,
            rejected: 0,
            timer_stalls: 0,
            stalled: None,
        })
    }

    fn record(&mut self, outputs: Vec<Output>) {
        for output in outputs {
            let Output::Alarm(change) = output else {
                continue;
            };
            let starts = match change.event.kind {
                AlarmEventKind::Raised | AlarmEventKind::ReAlarmed => true,
                AlarmEventKind::Escalated => false,
                _ => continue,
            };
            let id = match &change.alarm.key.subject {
                Subject::Patient(p) => p.as_str(),
                Subject::Device(d) => d.as_str(),
            };
            let Some(&bed) = self.bed_of.get(id) else {
                continue;
            };
            let at = change.event.at;
            if let (true, Some(after)) = (starts, self.acknowledge_after) {
                self.nurse.insert((at + after, change.alarm.id));
            }
            self.signals.push(Signal {
                bed,
                at,
                condition: change.alarm.key.condition.clone(),
                priority: change.alarm.priority,
                kind: change.alarm.kind,
                starts,
            });
        }
    }

    /// Runs the timer and the nurse up to `now`, earliest first (the timer first on a tie).
    fn advance(&mut self, now: Instant) -> Result<(), BurdenError> {
        loop {
            let tick = self
                .engine
                .next_deadline()
                .filter(|d| *d <= now && self.stalled != Some(*d));
            let ack = self.nurse.first().copied().filter(|(d, _)| *d <= now);
            let next = match (tick, ack) {
                (None, None) => return Ok(()),
                (Some(deadline), Some((at, id))) if at < deadline => Next::Acknowledge(at, id),
                (Some(deadline), _) => Next::Tick(deadline),
                (None, Some((at, id))) => Next::Acknowledge(at, id),
            };
            match next {
                Next::Tick(deadline) => {
                    let outputs = self.engine.tick(deadline)?;
                    self.record(outputs);
                    if self.engine.next_deadline() == Some(deadline) {
                        self.timer_stalls += 1;
                        self.stalled = Some(deadline);
                    }
                }
                Next::Acknowledge(at, id) => {
                    self.nurse.remove(&(at, id));
                    match self.engine.acknowledge(id, NURSE, at) {
                        Ok(outputs) => self.record(outputs),
                        // Resolved before the nurse got there.
                        Err(SurveillanceError::Alarm(AlarmError::NotOpen(_))) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        }
    }

    /// Sends, decodes and evaluates one message of bed `bed`'s monitor.
    fn message(
        &mut self,
        bed: usize,
        patient: &mut SimPatient,
        ids: &(PatientId, DeviceId),
        second: u64,
        now: Instant,
    ) -> Result<(), BurdenError> {
        self.advance(now)?;
        let t = second as f64;
        let hour = (t / 3600.0) % 24.0;
        let message = patient.message(
            t,
            hour,
            now.timestamp_millis(),
            second.is_multiple_of(SPOT_CHECK_EVERY),
        );
        let bytes = serde_json::to_vec(&message)?;
        let decoded = decode_device_message(&bytes, now, &self.decode_limits)?;
        self.messages += 1;
        self.rejected += decoded.rejected.len() as u64;
        for reading in decoded.readings {
            let obs = Observation {
                id: ObservationId(self.next_observation),
                patient: ids.0.clone(),
                device: ids.1.clone(),
                code: reading.code,
                value: reading.value,
                effective: reading.effective,
                received: now,
                status: reading.status,
                quality: reading.quality,
            };
            self.next_observation += 1;
            self.observations += 1;
            self.naive.observe(bed, &obs, &mut self.naive_alarms);
            self.naive_flags
                .observe(bed, &obs, &mut self.naive_flags_alarms);
            let outputs = self
                .engine
                .observe(&obs, &self.kind, decoded.battery_pct, now)?;
            self.record(outputs);
        }
        Ok(())
    }
}

/// Runs beds `(bed, patient)` for `seconds` simulated seconds in one lane.
fn run_lane(
    mut beds: Vec<(usize, SimPatient)>,
    seconds: u64,
    start: Instant,
    acknowledge_after_secs: Option<u32>,
) -> Result<Lane, BurdenError> {
    let mut lane = Lane::new(acknowledge_after_secs)?;
    // Monitors in the order they send within each second.
    beds.sort_by_key(|(bed, _)| (bed % 20, *bed));
    let mut ids = Vec::with_capacity(beds.len());
    for (bed, p) in &beds {
        let patient = PatientId::new(p.id.as_str())?;
        let device = DeviceId::new(p.device_id.as_str())?;
        lane.bed_of.insert(p.id.clone(), *bed);
        lane.bed_of.insert(p.device_id.clone(), *bed);
        lane.engine.watch_device(&device, lane.kind.clone(), start);
        ids.push((patient, device));
    }
    for second in 0..seconds {
        for ((bed, patient), ids) in beds.iter_mut().zip(&ids) {
            let offset_ms = (*bed % 20) as i64 * 50;
            let now = start + TimeDelta::milliseconds(second as i64 * 1000 + offset_ms);
            lane.message(*bed, patient, ids, second, now)?;
        }
    }
    lane.advance(start + TimeDelta::seconds(seconds as i64))?;
    Ok(lane)
}

/// The first event of `bed` at or after `onset` that the twin does not share: the first alarm
/// signal, or with `high` the first event at high priority (escalations included).
fn first_caused(
    events: &[Signal],
    twin: &HashSet<(Instant, &str)>,
    bed: usize,
    onset: Instant,
    high: bool,
) -> Option<Detection> {
    events
        .iter()
        .filter(|s| s.bed == bed && s.kind == AlarmKind::Physiological && s.at >= onset)
        .filter(|s| {
            if high {
                s.priority == Priority::High
            } else {
                s.starts
            }
        })
        .filter(|s| !twin.contains(&(s.at, s.condition.as_str())))
        .min_by_key(|s| s.at)
        .map(|s| Detection {
            after_s: (s.at - onset).num_milliseconds() as f64 / 1000.0,
            condition: s.condition.clone(),
            priority: s.priority,
        })
}

fn caught(events: &[Signal], twin_events: &[Signal], bed: usize, onset: Instant) -> Caught {
    let twin: HashSet<(Instant, &str)> = twin_events
        .iter()
        .filter(|s| s.kind == AlarmKind::Physiological)
        .map(|s| (s.at, s.condition.as_str()))
        .collect();
    Caught {
        first: first_caused(events, &twin, bed, onset, false),
        first_high: first_caused(events, &twin, bed, onset, true),
    }
}

fn naive_tally(alarms: &[Signal], stable: impl Fn(usize) -> bool) -> NaiveTally {
    let mut tally = NaiveTally::default();
    for s in alarms {
        tally.total += 1;
        tally.stable += u64::from(stable(s.bed));
        tally
            .by_condition
            .entry(s.condition.clone())
            .or_default()
            .add(stable(s.bed));
    }
    tally
}

/// [`START`] as an instant.
fn start_instant() -> Instant {
    // A valid, unambiguous UTC date: `single()` always has it.
    Utc.with_ymd_and_hms(2026, 11, 23, 0, 0, 0)
        .single()
        .unwrap_or_default()
}

/// Runs the benchmark.
pub fn run(config: &BurdenConfig) -> Result<BurdenReport, BurdenError> {
    let seconds = (config.hours * 3600.0).round();
    if config.patients == 0 || seconds < 1.0 {
        return Err(BurdenError::Empty);
    }
    let seconds = seconds as u64;
    let start = start_instant();
    let ward = ward_for_day(config.patients, config.seed, seconds as f64);
    let scenarios: Vec<(String, Scenario)> =
        ward.iter().map(|p| (p.id.clone(), p.scenario)).collect();
    let twins: Vec<(usize, SimPatient)> = scenarios
        .iter()
        .enumerate()
        .filter(|(_, (_, s))| *s != Scenario::Stable)
        .map(|(bed, _)| (bed, SimPatient::new(bed, Scenario::Stable, config.seed)))
        .collect();
    let main = run_lane(
        ward.into_iter().enumerate().collect(),
        seconds,
        start,
        config.acknowledge_after_secs,
    )?;
    let twin = run_lane(twins, seconds, start, config.acknowledge_after_secs)?;

    let stable = |bed: usize| scenarios[bed].1 == Scenario::Stable;
    let mut vigil = VigilTally::default();
    for s in main.signals.iter().filter(|s| s.starts) {
        vigil.total += 1;
        match s.priority {
            Priority::High => vigil.high += 1,
            Priority::Medium => vigil.medium += 1,
            Priority::Low => vigil.low += 1,
        }
        match s.kind {
            AlarmKind::Physiological => {
                vigil.physiological += 1;
                vigil.stable_physiological += u64::from(stable(s.bed));
            }
            AlarmKind::Technical => {
                vigil.technical += 1;
                vigil.stable_technical += u64::from(stable(s.bed));
            }
        }
        vigil
            .by_condition
            .entry(s.condition.clone())
            .or_default()
            .add(stable(s.bed));
    }
    let naive = naive_tally(&main.naive_alarms, stable);
    let naive_flags = naive_tally(&main.naive_flags_alarms, stable);

    let deteriorations = scenarios
        .iter()
        .enumerate()
        .filter_map(|(bed, (id, scenario))| {
            let onset_s = scenario.onset_s()?;
            let onset = start + TimeDelta::milliseconds((onset_s * 1000.0) as i64);
            Some(Deterioration {
                patient: id.clone(),
                scenario: scenario.name(),
                onset_s,
                vigil: caught(&main.signals, &twin.signals, bed, onset),
                naive: caught(&main.naive_alarms, &twin.naive_alarms, bed, onset),
                naive_flags: caught(
                    &main.naive_flags_alarms,
                    &twin.naive_flags_alarms,
                    bed,
                    onset,
                ),
            })
        })
        .collect();

    Ok(BurdenReport {
        config: config.clone(),
        stable_patients: scenarios
            .iter()
            .filter(|(_, s)| *s == Scenario::Stable)
            .count(),
        messages: main.messages,
        observations: main.observations,
        rejected_readings: main.rejected + twin.rejected,
        vigil,
        naive,
        naive_flags,
        deteriorations,
        timer_stalls: main.timer_stalls + twin.timer_stalls,
    })
}

/// `1 h 05 min`, `3 min 20 s`, `12 s`.
fn duration(seconds: f64) -> String {
    let s = seconds.round() as i64;
    match (s / 3600, (s % 3600) / 60, s % 60) {
        (0, 0, s) => format!("{s} s"),
        (0, m, s) => format!("{m} min {s:02} s"),
        (h, m, _) => format!("{h} h {m:02} min"),
    }
}

/// `04:48` of the simulated day.
fn clock(seconds: f64) -> String {
    let s = seconds.round() as i64;
    let day = s / 86_400;
    let (h, m) = ((s % 86_400) / 3600, (s % 3600) / 60);
    if day == 0 {
        format!("{h:02}:{m:02}")
    } else {
        format!("day {} {h:02}:{m:02}", day + 1)
    }
}

impl BurdenReport {
    /// Patients × simulated days.
    pub fn patient_days(&self) -> f64 {
        self.config.patients as f64 * self.config.hours / 24.0
    }

    /// Stable patients × simulated days.
    pub fn stable_patient_days(&self) -> f64 {
        self.stable_patients as f64 * self.config.hours / 24.0
    }

    fn rate(count: u64, days: f64) -> String {
        if days > 1e-9 {
            format!("{:.1}", count as f64 / days)
        } else {
            "–".into()
        }
    }

    /// The report as Markdown: the run, alarms per patient-day, per condition, and each
    /// deterioration's detection.
    pub fn markdown(&self) -> String {
        let days = self.patient_days();
        let stable_days = self.stable_patient_days();
        let r = |n: u64| Self::rate(n, days);
        let c = &self.config;
        let v = &self.vigil;
        let n = &self.naive;
        let mut out = String::new();
        let ack = match c.acknowledge_after_secs {
            Some(s) => format!("acknowledged by the nurse {s} s after they sound"),
            None => "never acknowledged".into(),
        };
        let _ = writeln!(
            out,
            "Ward of {} patients ({} stable, {} scripted deteriorations), {} h simulated from \
             {START}, seed {}; alarms {ack}. {} messages, {} observations, {} readings refused by \
             the decoder.\n",
            c.patients,
            self.stable_patients,
            self.deteriorations.len(),
            c.hours,
            c.seed,
            self.messages,
            self.observations,
            self.rejected_readings,
        );
        if self.timer_stalls > 0 {
            let _ = writeln!(
                out,
                "**Warning:** a timer deadline failed to move on after its tick {} times.\n",
                self.timer_stalls
            );
        }
        let f = &self.naive_flags;
        let _ = writeln!(
            out,
            "| alarms per patient-day | Vigil | naive threshold | naive threshold, flagged readings skipped |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|");
        let mut row = |label: &str, a: String, b: String, c: String| {
            let _ = writeln!(out, "| {label} | {a} | {b} | {c} |");
        };
        let dash = || "–".to_owned();
        row("all alarms", r(v.total), r(n.total), r(f.total));
        row("… high priority", r(v.high), dash(), dash());
        row("… medium priority", r(v.medium), dash(), dash());
        row("… low priority", r(v.low), dash(), dash());
        row(
            "… physiological",
            r(v.physiological),
            r(n.total),
            r(f.total),
        );
        row("… technical", r(v.technical), dash(), dash());
        row(
            "false alarms per stable patient-day (physiological alarms on stable patients)",
            Self::rate(v.stable_physiological, stable_days),
            Self::rate(n.stable, stable_days),
            Self::rate(f.stable, stable_days),
        );
        let sick_days = days - stable_days;
        row(
            "physiological alarms per deteriorating patient-day (the whole day, before and after onset)",
            Self::rate(v.physiological - v.stable_physiological, sick_days),
            Self::rate(n.total - n.stable, sick_days),
            Self::rate(f.total - f.stable, sick_days),
        );
        row(
            "technical alarms per stable patient-day",
            Self::rate(v.stable_technical, stable_days),
            dash(),
            dash(),
        );

        let _ = writeln!(
            out,
            "\nAlarms by condition over the whole run, on stable / on deteriorating patients:\n"
        );
        let _ = writeln!(
            out,
            "| condition | Vigil | naive threshold | naive threshold, flagged readings skipped |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|");
        let conditions: BTreeSet<&String> = v
            .by_condition
            .keys()
            .chain(n.by_condition.keys())
            .chain(f.by_condition.keys())
            .collect();
        for condition in conditions {
            let cell = |m: &BTreeMap<String, Split>| {
                m.get(condition).map_or("–".into(), |x| {
                    format!("{} / {}", x.stable, x.deteriorating)
                })
            };
            let _ = writeln!(
                out,
                "| `{condition}` | {} | {} | {} |",
                cell(&v.by_condition),
                cell(&n.by_condition),
                cell(&f.by_condition)
            );
        }

        let _ = writeln!(
            out,
            "\n| deterioration | onset | approach | first alarm it caused | first high-priority alarm it caused |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|");
        let detection = |d: &Option<Detection>| match d {
            Some(d) => format!(
                "after {} (`{}`, {})",
                duration(d.after_s),
                d.condition,
                d.priority.name()
            ),
            None => "**none**".into(),
        };
        for d in &self.deteriorations {
            for (i, (approach, caught)) in [
                ("Vigil", &d.vigil),
                ("naive", &d.naive),
                ("naive, flags skipped", &d.naive_flags),
            ]
            .into_iter()
            .enumerate()
            {
                let (who, when) = if i == 0 {
                    (format!("{} {}", d.patient, d.scenario), clock(d.onset_s))
                } else {
                    (String::new(), String::new())
                };
                let _ = writeln!(
                    out,
                    "| {who} | {when} | {approach} | {} | {} |",
                    detection(&caught.first),
                    detection(&caught.first_high)
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;

    use vigil_model::{ObservationStatus, Quantity};

    use super::*;

    fn short() -> BurdenConfig {
        BurdenConfig {
            patients: 4,
            hours: 2.0,
            ..BurdenConfig::default()
        }
    }

    fn short_report() -> &'static BurdenReport {
        static REPORT: OnceLock<BurdenReport> = OnceLock::new();
        REPORT.get_or_init(|| run(&short()).unwrap())
    }

    #[test]
    fn a_short_run_feeds_the_engine_what_the_ward_sends() {
        let r = short_report();
        // 4 monitors, one message a second for two hours.
        assert_eq!(r.messages, 4 * 7200);
        // Three readings each, plus BP (one panel), temperature, ACVPU and oxygen every 30th.
        assert_eq!(r.observations, 4 * 7200 * 3 + 4 * 240 * 4);
        assert_eq!(r.rejected_readings, 0);
        assert_eq!(r.timer_stalls, 0);
        assert_eq!(r.stable_patients, 3);
        assert_eq!(r.deteriorations.len(), 1);
        assert_eq!(r.deteriorations[0].onset_s, 3600.0);
    }

    #[test]
    fn vigil_detects_the_scripted_sepsis() {
        let d = &short_report().deteriorations[0];
        assert_eq!((d.patient.as_str(), d.scenario), ("pat-004", "sepsis"));
        let vigil = d.vigil.first.as_ref().expect("Vigil detects the sepsis");
        // Within the hour it has; the ramp takes ten minutes.
        assert!(vigil.after_s > 0.0 && vigil.after_s < 3600.0, "{vigil:?}");
        let high = d.vigil.first_high.as_ref().expect("and calls it urgent");
        assert!(high.after_s >= vigil.after_s, "{high:?}");
        assert!(d.naive.first.is_some() && d.naive_flags.first.is_some());
    }

    #[test]
    fn vigil_raises_fewer_alarms_on_stable_patients_than_naive_alarming() {
        let r = short_report();
        assert!(
            r.vigil.stable_physiological < r.naive_flags.stable,
            "Vigil {} vs naive with flags honoured {}",
            r.vigil.stable_physiological,
            r.naive_flags.stable
        );
        assert!(r.naive_flags.stable < r.naive.stable);
        // Naive alarming sounds for flagged probe-off readings; Vigil's SpO2 threshold does not.
        assert!(r.naive.by_condition["threshold:spo2:low"].stable > 0);
        assert_eq!(r.vigil.by_condition.get("threshold:spo2:low"), None);
    }

    #[test]
    fn the_same_seed_gives_the_same_report() {
        assert_eq!(&run(&short()).unwrap(), short_report());
    }

    #[test]
    fn another_seed_gives_another_ward() {
        let other = run(&BurdenConfig {
            patients: 2,
            hours: 0.5,
            seed: 7,
            ..BurdenConfig::default()
        })
        .unwrap();
        let again = run(&BurdenConfig {
            patients: 2,
            hours: 0.5,
            seed: 8,
            ..BurdenConfig::default()
        })
        .unwrap();
        assert_ne!(other.naive, again.naive);
    }

    #[test]
    fn without_a_nurse_latched_alarms_stay_open_and_nothing_breaks() {
        let config = BurdenConfig {
            patients: 4,
            hours: 2.0,
            acknowledge_after_secs: None,
            ..BurdenConfig::default()
        };
        let r = run(&config).unwrap();
        assert!(r.deteriorations[0].vigil.first.is_some());
        // Nobody acknowledges, so nothing re-alarms and no latched alarm is reset to sound anew.
        assert!(r.vigil.total <= short_report().vigil.total);
    }

    #[test]
    fn an_empty_ward_is_refused() {
        let config = BurdenConfig {
            patients: 0,
            ..BurdenConfig::default()
        };
        assert!(matches!(run(&config), Err(BurdenError::Empty)));
    }

    fn reading(m: Measurand, value: f64, sec: i64, quality: QualityFlags) -> Observation {
        let at = start_instant() + TimeDelta::seconds(sec);
        Observation {
            id: ObservationId(sec),
            patient: PatientId::new("p").unwrap(),
            device: DeviceId::new("d").unwrap(),
            code: ObservationCode::Single(m),
            value: ObservationValue::Quantity(Quantity::new(value, m.canonical_unit())),
            effective: at,
            received: at,
            status: ObservationStatus::Final,
            quality,
        }
    }

    #[test]
    fn naive_alarming_counts_every_crossing_and_trusts_every_value() {
        let mut naive = Naive::new(&Limits::adult_defaults(), false);
        let mut out = Vec::new();
        let clean = QualityFlags::empty();
        for (sec, v) in [(0, 97.0), (1, 89.0), (2, 85.0), (3, 90.0), (4, 89.0)] {
            naive.observe(0, &reading(Measurand::Spo2, v, sec, clean), &mut out);
        }
        // 97 → 89 crosses; 85 stays outside; 90 is not below 90 (back inside); 89 crosses again.
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].condition, "threshold:spo2:low");
        assert_eq!(out[0].priority, Priority::High);
        // A questionable spike and a flagged probe-off count too; another bed has its own state.
        let spike = reading(Measurand::HeartRate, 190.0, 6, QualityFlags::QUESTIONABLE);
        let probe_off = reading(Measurand::Spo2, 60.0, 6, QualityFlags::ARTIFACT);
        naive.observe(0, &reading(Measurand::HeartRate, 72.0, 5, clean), &mut out);
        naive.observe(0, &spike, &mut out);
        naive.observe(1, &probe_off, &mut out);
        assert_eq!(out.len(), 4);
        assert_eq!(out[2].condition, "threshold:heart_rate:high");
        assert_eq!(out[3].bed, 1);
        // The fairer comparator skips what the device flagged.
        let mut honest = Naive::new(&Limits::adult_defaults(), true);
        let mut out = Vec::new();
        honest.observe(0, &spike, &mut out);
        honest.observe(1, &probe_off, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn the_markdown_has_the_tables() {
        let md = short_report().markdown();
        assert!(md.contains("| all alarms |"), "{md}");
        assert!(md.contains("| false alarms per stable patient-day"));
        assert!(md.contains("| `news2:band` | "), "{md}");
        assert!(
            md.contains("| pat-004 sepsis | 01:00 | Vigil | after "),
            "{md}"
        );
        assert!(md.contains("|  |  | naive, flags skipped | after "), "{md}");
    }

    #[test]
    fn durations_and_clock_times_read_well() {
        assert_eq!(
            start_instant().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            START
        );
        assert_eq!(duration(12.4), "12 s");
        assert_eq!(duration(200.0), "3 min 20 s");
        assert_eq!(duration(3900.0), "1 h 05 min");
        assert_eq!(clock(17_280.0), "04:48");
        assert_eq!(clock(90_000.0), "day 2 01:00");
    }
}
