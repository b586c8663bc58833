//! Technical alarm conditions (IEC 60601-1-8 "technical alarm condition": from the equipment, not
//! the patient): a device that went silent, a low battery, a sensor off or an implausible value,
//! and a device clock that disagrees with the hub's.
//!
//! **Silence is timer-driven.** Reading-driven checks say nothing exactly when nothing arrives, so
//! a silent device is found by [`DeviceWatch::tick`], which the caller runs at
//! [`DeviceWatch::next_deadline`]: it sleeps until exactly then, so the "no data" alarm is never
//! late, and there is no polling loop. A device is silent once `interval + margin` has passed
//! since it last delivered anything (`now ≥ last_seen + interval + margin`); the condition fires
//! once and clears when data resumes. IEC 60601-1-8 requires a distributed alarm system to raise a
//! technical alarm when its communication fails; "no data" must never look like "all normal".
//!
//! # Defaults per device kind
//!
//! | Kind | Expected every | Margin | "No data" after | Priority | Artifact delay | Clock may lag by |
//! |---|---|---|---|---|---|---|
//! | `multiparameter-monitor` | 60 s | 30 s | 90 s | medium | 10 s | 5 min |
//! | `pulse-oximeter` | 30 s | 30 s | 60 s | medium | 10 s | 5 min |
//! | `wearable` | 5 min | 5 min | 10 min | low | 30 s | not checked |
//! | `bp-monitor`, `weight-scale`, `glucose-meter`, `thermometer` | 24 h | 6 h | 30 h | low | 0 s | not checked |
//! | any other kind | 15 min | 5 min | 20 min | low | 10 s | not checked |
//!
//! Ward monitors stream (HL7 v2 ORU or MQTT at least once a minute), and losing a monitored
//! patient's data needs a prompt response (medium). Spot-check devices at home are used about once
//! a day and store and forward their readings, so an old reading time is normal for them; a
//! device that deviates (a CGM sold as a `glucose-meter`, every 5 minutes) gets a per-device
//! [`Expectation`] ([`DeviceWatch::set_expectation`]).
//!
//! # The other conditions
//!
//! * **Battery** (`technical:battery`): ≤ 20 % low priority, ≤ 10 % medium; clears at ≥ 25 %, so
//!   a reading that jitters around 20 % does not flap.
//! * **Artifact** (`technical:artifact:{measurand}`, low): readings flagged `ARTIFACT` (probe off,
//!   lead off, cuff error) or implausible for the measurand, persisting for the kind's artifact
//!   delay (so a single artifact on a continuous sensor says nothing, while a spot-check device's
//!   failed measurement says so at once). Clears at the next clean reading of that measurand.
//!   `QUESTIONABLE` readings neither start nor clear it. This is the technical notice of journey 3;
//!   the physiological modules ignore such readings.
//! * **Sensor off** (`technical:sensor-off:{measurand}`, medium): the device reported the
//!   measurand without a value because its sensor is off the patient (SpO2 probe off, ECG lead
//!   off) or could not obtain one (HL7 v2 OBX-11 `X`). Raised at once: unlike an artifact, the
//!   device itself says nothing is being measured, so the patient is unmonitored for that vital
//!   sign, which needs a prompt response (medium, as ward monitors rate probe-off and lead-off).
//!   Clears at the next clean reading of that measurand from the device.
//! * **Calibration due** (`technical:calibration-due`, low): the date by which the device must
//!   be calibrated (as the registry records it) has passed. Timer-driven like silence, so it
//!   fires at the due time whether or not the device sends anything; clears when a new due date
//!   in the future is recorded (after a calibration) or the due date is removed.
//! * **Clock skew** (`technical:clock-skew`, low): a reading time more than 60 s ahead of its
//!   receipt (never possible with a correct clock), or, for streaming kinds, more than the kind's
//!   lag behind. Clears at a reading within half those tolerances. Readings timed by their receipt
//!   (`TIME_FROM_RECEIPT`) are not checked.
//!
//! Memory: one small state per watched device (at most one artifact entry per measurand);
//! [`DeviceWatch::forget`] removes an unbound device.

use std::collections::{BTreeMap, BTreeSet};

use chrono::TimeDelta;
use serde::{Deserialize, Serialize};
use vigil_model::{DeviceId, DeviceKind, Instant, Measurand, QualityFlags};

use crate::alarm::{AlarmKind, ConditionChange, ConditionKey, Priority, Trigger};

/// Condition id of the "no data" condition.
pub const SILENT: &str = "technical:silent";
/// Condition id of the low-battery condition.
pub const BATTERY: &str = "technical:battery";
/// Condition id of the clock-skew condition.
pub const CLOCK_SKEW: &str = "technical:clock-skew";
/// Condition id of an overdue calibration.
pub const CALIBRATION_DUE: &str = "technical:calibration-due";

/// Condition id of the sensor-off condition of one measurand: `technical:sensor-off:{measurand}`.
pub fn sensor_off_condition(measurand: Measurand) -> String {
    format!("technical:sensor-off:{}", measurand.short_name())
}

/// Condition id of the artifact condition of one measurand: `technical:artifact:{measurand}`.
pub fn artifact_condition(measurand: Measurand) -> String {
    format!("technical:artifact:{}", measurand.short_name())
}

/// What to expect of a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expectation {
    /// How often the device normally delivers, in seconds; `None`: silence is not supervised.
    pub interval_secs: Option<u32>,
    /// Seconds of grace beyond the interval before the device counts as silent.
    pub margin_secs: u32,
    /// Priority of the "no data" alarm.
    pub silent_priority: Priority,
    /// Seconds artifact readings must persist before the artifact notice (0: the first one).
    pub artifact_delay_secs: u32,
    /// How far a reading's time may lag its receipt, in seconds; `None` for store-and-forward
    /// devices, whose readings may legitimately arrive days later.
    pub max_lag_secs: Option<u32>,
}

impl Expectation {
    const fn streaming(interval: u32, margin: u32, priority: Priority, artifact: u32) -> Self {
        Expectation {
            interval_secs: Some(interval),
            margin_secs: margin,
            silent_priority: priority,
            artifact_delay_secs: artifact,
            max_lag_secs: Some(300),
        }
    }
    const fn daily() -> Self {
        Expectation {
            interval_secs: Some(24 * 3600),
            margin_secs: 6 * 3600,
            silent_priority: Priority::Low,
            artifact_delay_secs: 0,
            max_lag_secs: None,
        }
    }
    /// How long without data makes the device silent.
    pub fn silent_after(&self) -> Option<TimeDelta> {
        self.interval_secs
            .map(|i| TimeDelta::seconds(i64::from(i) + i64::from(self.margin_secs)))
    }
}

/// Expectations per device kind and the device-independent limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchConfig {
    /// Per [`DeviceKind`] string.
    pub kinds: BTreeMap<String, Expectation>,
    /// For kinds not in `kinds`.
    pub fallback: Expectation,
    /// A reading time this many seconds or more ahead of its receipt is clock skew.
    pub max_ahead_secs: u32,
    /// Battery at or below this percentage: low priority.
    pub battery_low_pct: u8,
    /// Battery at or below this percentage: medium priority.
    pub battery_critical_pct: u8,
    /// Battery at or above this percentage clears the condition.
    pub battery_clear_pct: u8,
}

impl Default for WatchConfig {
    fn default() -> Self {
        let mut kinds = BTreeMap::new();
        kinds.insert(
            DeviceKind::MULTIPARAMETER_MONITOR.to_owned(),
            Expectation::streaming(60, 30, Priority::Medium, 10),
        );
        kinds.insert(
            DeviceKind::PULSE_OXIMETER.to_owned(),
            Expectation::streaming(30, 30, Priority::Medium, 10),
        );
        kinds.insert(
            DeviceKind::WEARABLE.to_owned(),
            Expectation {
                max_lag_secs: None,
                ..Expectation::streaming(300, 300, Priority::Low, 30)
            },
        );
        for kind in [
            DeviceKind::BP_MONITOR,
            DeviceKind::WEIGHT_SCALE,
            DeviceKind::GLUCOSE_METER,
            DeviceKind::THERMOMETER,
        ] {
            kinds.insert(kind.to_owned(), Expectation::daily());
        }
        WatchConfig {
            kinds,
            fallback: Expectation {
                max_lag_secs: None,
                ..Expectation::streaming(900, 300, Priority::Low, 10)
            },
            max_ahead_secs: 60,
            battery_low_pct: 20,
            battery_critical_pct: 10,
            battery_clear_pct: 25,
        }
    }
}

impl WatchConfig {
    /// Checks that the battery thresholds are ordered: critical < low < clear ≤ 100.
    pub fn validate(&self) -> Result<(), WatchError> {
        let (c, l, k) = (
            self.battery_critical_pct,
            self.battery_low_pct,
            self.battery_clear_pct,
        );
        if !(c < l && l < k && k <= 100) {
            return Err(WatchError::BatteryThresholds {
                critical: c,
                low: l,
                clear: k,
            });
        }
        Ok(())
    }

    /// The expectation for a kind.
    pub fn for_kind(&self, kind: &DeviceKind) -> &Expectation {
        self.kinds.get(kind.as_str()).unwrap_or(&self.fallback)
    }
}

/// Why the watch refused something.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WatchError {
    #[error(
        "battery thresholds must satisfy critical < low < clear ≤ 100 (got {critical}, {low}, {clear})"
    )]
    BatteryThresholds { critical: u8, low: u8, clear: u8 },
    #[error("device {0} is not watched")]
    UnknownDevice(DeviceId),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
struct ArtifactState {
    /// Reading time of the first artifact of the current run.
    since: Option<Instant>,
    raised: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct DeviceState {
    kind: DeviceKind,
    /// Overrides the kind's expectation.
    expectation: Option<Expectation>,
    /// When the device last delivered anything (receipt time), or when watching began.
    last_seen: Instant,
    silent: bool,
    /// The raised battery condition's priority.
    battery: Option<Priority>,
    artifacts: BTreeMap<Measurand, ArtifactState>,
    /// Measurands whose sensor-off condition is raised.
    #[serde(default)]
    sensors_off: BTreeSet<Measurand>,
    skewed: bool,
}

/// The persisted form of a [`DeviceWatch`] (its deadline index is rebuilt).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchState {
    config: WatchConfig,
    devices: BTreeMap<DeviceId, DeviceState>,
}

/// Supervises devices. Pure: time comes in as values; [`DeviceWatch::tick`] finds silence.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "WatchState", into = "WatchState")]
pub struct DeviceWatch {
    config: WatchConfig,
    devices: BTreeMap<DeviceId, DeviceState>,
    /// Silence deadlines of the devices that can still go silent, earliest first.
    deadlines: BTreeSet<(Instant, DeviceId)>,
    /// The deadline each device is indexed under in `deadlines`.
    indexed: BTreeMap<DeviceId, Instant>,
    /// Calibration due dates not yet passed, earliest first.
    calibration_pending: BTreeSet<(Instant, DeviceId)>,
    /// Each device's calibration due date.
    calibration_due: BTreeMap<DeviceId, Instant>,
    /// Devices whose overdue calibration is raised.
    calibration_overdue: BTreeSet<DeviceId>,
}

impl TryFrom<WatchState> for DeviceWatch {
    type Error = WatchError;
    fn try_from(state: WatchState) -> Result<Self, WatchError> {
        state.config.validate()?;
        let mut watch = DeviceWatch {
            config: state.config,
            devices: state.devices,
            ..DeviceWatch::default()
        };
        let ids: Vec<DeviceId> = watch.devices.keys().cloned().collect();
        for id in ids {
            watch.reschedule(&id);
        }
        Ok(watch)
    }
}

impl From<DeviceWatch> for WatchState {
    fn from(watch: DeviceWatch) -> WatchState {
        WatchState {
            config: watch.config,
            devices: watch.devices,
        }
    }
}

impl DeviceWatch {
    pub fn new(config: WatchConfig) -> Result<Self, WatchError> {
        config.validate()?;
        Ok(DeviceWatch {
            config,
            ..DeviceWatch::default()
        })
    }

    pub fn config(&self) -> &WatchConfig {
        &self.config
    }

    /// The expectation in force for a watched device.
    pub fn expectation(&self, device: &DeviceId) -> Option<&Expectation> {
        let state = self.devices.get(device)?;
        Some(
            state
                .expectation
                .as_ref()
                .unwrap_or_else(|| self.config.for_kind(&state.kind)),
        )
    }

    pub fn is_silent(&self, device: &DeviceId) -> bool {
        self.devices.get(device).is_some_and(|d| d.silent)
    }

    pub fn is_watched(&self, device: &DeviceId) -> bool {
        self.devices.contains_key(device)
    }

    /// Starts watching a device that has not delivered yet (bound at `since`): it goes silent if
    /// nothing arrives in time. For a device already watched only the kind is updated.
    pub fn watch(&mut self, device: &DeviceId, kind: DeviceKind, since: Instant) {
        match self.devices.get_mut(device) {
            Some(state) => state.kind = kind,
            None => {
                self.devices.insert(
                    device.clone(),
                    DeviceState {
                        kind,
                        expectation: None,
                        last_seen: since,
                        silent: false,
                        battery: None,
                        artifacts: BTreeMap::new(),
                        sensors_off: BTreeSet::new(),
                        skewed: false,
                    },
                );
            }
        }
        self.reschedule(device);
    }

    /// Overrides (or with `None` restores) the kind's expectation for one device.
    pub fn set_expectation(
        &mut self,
        device: &DeviceId,
        expectation: Option<Expectation>,
    ) -> Result<(), WatchError> {
        let state = self
            .devices
            .get_mut(device)
            .ok_or_else(|| WatchError::UnknownDevice(device.clone()))?;
        state.expectation = expectation;
        self.reschedule(device);
        Ok(())
    }

    /// The device delivered something at `at` (receipt time), with its battery level if it
    /// reported one. Starts watching an unknown device; ends its silence.
    pub fn seen(
        &mut self,
        device: &DeviceId,
        kind: DeviceKind,
        at: Instant,
        battery_pct: Option<u8>,
    ) -> Vec<ConditionChange> {
        self.watch(device, kind, at);
        let mut changes = Vec::new();
        let config = &self.config;
        let Some(state) = self.devices.get_mut(device) else {
            return changes;
        };
        if at > state.last_seen {
            state.last_seen = at;
        }
        if state.silent {
            state.silent = false;
            changes.push(ConditionChange::Cleared {
                key: ConditionKey::device(device.clone(), SILENT),
                at,
            });
        }
        if let Some(pct) = battery_pct.filter(|p| *p <= 100) {
            let level = if pct <= config.battery_critical_pct {
                Some(Priority::Medium)
            } else if pct <= config.battery_low_pct {
                Some(Priority::Low)
            } else {
                None
            };
            let key = || ConditionKey::device(device.clone(), BATTERY);
            match (state.battery, level) {
                (raised, Some(p)) if raised.is_none_or(|r| p > r) => {
                    state.battery = Some(p);
                    changes.push(technical(key(), p, format!("battery {pct} %"), at));
                }
                (Some(_), None) if pct >= config.battery_clear_pct => {
                    state.battery = None;
                    changes.push(ConditionChange::Cleared { key: key(), at });
                }
                _ => {}
            }
        }
        self.reschedule(device);
        changes
    }

    /// One reading of a watched device: checks it for artifacts and clock skew. `value` is the
    /// number in the measurand's canonical unit (`None` for coded values or when missing),
    /// `effective` the reading's own time and `received` when Vigil got it. Call
    /// [`DeviceWatch::seen`] for the message first; readings of unwatched devices are ignored.
    pub fn observed(
        &mut self,
        device: &DeviceId,
        measurand: Measurand,
        value: Option<f64>,
        effective: Instant,
        received: Instant,
        quality: QualityFlags,
    ) -> Vec<ConditionChange> {
        let Some(state) = self.devices.get(device) else {
            return Vec::new();
        };
        let expectation = *state
            .expectation
            .as_ref()
            .unwrap_or_else(|| self.config.for_kind(&state.kind));
        let max_ahead = TimeDelta::seconds(i64::from(self.config.max_ahead_secs));
        let Some(state) = self.devices.get_mut(device) else {
            return Vec::new();
        };
        let mut changes = Vec::new();

        // Artifact or implausible value.
        let range = measurand.plausible();
        let implausible =
            value.is_some_and(|v| !(v.is_finite() && v >= range.min && v <= range.max));
        let artifact = quality.contains(QualityFlags::ARTIFACT) || implausible;
        let clean = !artifact && value.is_some() && !quality.contains(QualityFlags::QUESTIONABLE);
        let key = ConditionKey::device(device.clone(), artifact_condition(measurand));
        if artifact {
            let entry = state.artifacts.entry(measurand).or_default();
            let since = *entry.since.get_or_insert(effective);
            let delay = TimeDelta::seconds(i64::from(expectation.artifact_delay_secs));
            if !entry.raised && effective - since >= delay {
                entry.raised = true;
                let what = if quality.contains(QualityFlags::ARTIFACT) {
                    "sensor off or artifact"
                } else {
                    "implausible value"
                };
                changes.push(technical(
                    key,
                    Priority::Low,
                    format!("{}: {what}", measurand.short_name()),
                    effective,
                ));
            }
        } else if clean
            && let Some(entry) = state.artifacts.remove(&measurand)
            && entry.raised
        {
            changes.push(ConditionChange::Cleared { key, at: effective });
        }
        if clean && state.sensors_off.remove(&measurand) {
            changes.push(ConditionChange::Cleared {
                key: ConditionKey::device(device.clone(), sensor_off_condition(measurand)),
                at: effective,
            });
        }

        // Clock skew.
        if !quality.contains(QualityFlags::TIME_FROM_RECEIPT) {
            let offset = effective - received;
            let max_lag = expectation
                .max_lag_secs
                .map(|s| TimeDelta::seconds(i64::from(s)));
            let ahead = offset > max_ahead;
            let behind = max_lag.is_some_and(|lag| -offset > lag);
            let key = || ConditionKey::device(device.clone(), CLOCK_SKEW);
            if !state.skewed && (ahead || behind) {
                state.skewed = true;
                let secs = offset.num_seconds();
                let message = if ahead {
                    format!("device clock {secs} s ahead of receipt")
                } else {
                    format!("reading time {} s behind receipt", -secs)
                };
                changes.push(technical(key(), Priority::Low, message, received));
            } else if state.skewed
                && offset <= max_ahead / 2
                && max_lag.is_none_or(|lag| -offset <= lag / 2)
            {
                state.skewed = false;
                changes.push(ConditionChange::Cleared {
                    key: key(),
                    at: received,
                });
            }
        }
        changes
    }

    /// The device reported `measurand` without a value at `at` (reading time): its sensor is off
    /// the patient, or, with `sensor_off == false`, the value could not be obtained. Call
    /// [`DeviceWatch::seen`] for the message first; unwatched devices are ignored.
    pub fn no_value(
        &mut self,
        device: &DeviceId,
        measurand: Measurand,
        sensor_off: bool,
        at: Instant,
    ) -> Vec<ConditionChange> {
        let Some(state) = self.devices.get_mut(device) else {
            return Vec::new();
        };
        if !state.sensors_off.insert(measurand) {
            return Vec::new();
        }
        let what = if sensor_off {
            "sensor off"
        } else {
            "no value obtained"
        };
        vec![technical(
            ConditionKey::device(device.clone(), sensor_off_condition(measurand)),
            Priority::Medium,
            format!("{}: {what}", measurand.short_name()),
            at,
        )]
    }

    /// Stops watching a device (unbound, retired): its raised conditions clear at `at`.
    pub fn forget(&mut self, device: &DeviceId, at: Instant) -> Vec<ConditionChange> {
        let Some(state) = self.devices.remove(device) else {
            return Vec::new();
        };
        self.reschedule(device);
        let mut ids: Vec<String> = Vec::new();
        if state.silent {
            ids.push(SILENT.into());
        }
        if state.battery.is_some() {
            ids.push(BATTERY.into());
        }
        ids.extend(
            state
                .artifacts
                .iter()
                .filter(|(_, a)| a.raised)
                .map(|(m, _)| artifact_condition(*m)),
        );
        ids.extend(state.sensors_off.iter().map(|m| sensor_off_condition(*m)));
        if state.skewed {
            ids.push(CLOCK_SKEW.into());
        }
        ids.into_iter()
            .map(|id| ConditionChange::Cleared {
                key: ConditionKey::device(device.clone(), id),
                at,
            })
            .collect()
    }

    /// Records when `device` must next be calibrated (`None`: no due date). A date already
    /// passed raises the condition at once; a later one clears a raised condition and waits.
    pub fn set_calibration_due(
        &mut self,
        device: &DeviceId,
        due: Option<Instant>,
        now: Instant,
    ) -> Vec<ConditionChange> {
        if let Some(old) = self.calibration_due.remove(device) {
            self.calibration_pending.remove(&(old, device.clone()));
        }
        let key = || ConditionKey::device(device.clone(), CALIBRATION_DUE);
        match due {
            Some(due) if due <= now => {
                self.calibration_due.insert(device.clone(), due);
                if self.calibration_overdue.insert(device.clone()) {
                    return vec![overdue(key(), due, now)];
                }
                Vec::new()
            }
            Some(due) => {
                self.calibration_due.insert(device.clone(), due);
                self.calibration_pending.insert((due, device.clone()));
                self.clear_overdue(device, now)
            }
            None => self.clear_overdue(device, now),
        }
    }

    fn clear_overdue(&mut self, device: &DeviceId, at: Instant) -> Vec<ConditionChange> {
        if self.calibration_overdue.remove(device) {
            return vec![ConditionChange::Cleared {
                key: ConditionKey::device(device.clone(), CALIBRATION_DUE),
                at,
            }];
        }
        Vec::new()
    }

    /// Fires the "no data" condition of every device whose deadline is at or before `now`, once
    /// each, in deadline order, and every calibration that has come due. `at` of each change is
    /// the deadline itself.
    pub fn tick(&mut self, now: Instant) -> Vec<ConditionChange> {
        let mut changes = Vec::new();
        while let Some((due, device)) = self.calibration_pending.first().cloned() {
            if due > now {
                break;
            }
            self.calibration_pending.pop_first();
            if self.calibration_overdue.insert(device.clone()) {
                changes.push(overdue(
                    ConditionKey::device(device, CALIBRATION_DUE),
                    due,
                    due,
                ));
            }
        }
        while let Some((deadline, device)) = self.deadlines.first().cloned() {
            if deadline > now {
                break;
            }
            self.deadlines.pop_first();
            self.indexed.remove(&device);
            let Some(state) = self.devices.get_mut(&device) else {
                continue;
            };
            let expectation = state
                .expectation
                .as_ref()
                .unwrap_or_else(|| self.config.for_kind(&state.kind));
            state.silent = true;
            let message = format!(
                "no data for {} s; expected every {} s",
                (deadline - state.last_seen).num_seconds(),
                expectation.interval_secs.unwrap_or_default()
            );
            changes.push(technical(
                ConditionKey::device(device, SILENT),
                expectation.silent_priority,
                message,
                deadline,
            ));
        }
        changes
    }

    /// The earliest time at which [`DeviceWatch::tick`] can fire: sleep until then (and again
    /// after any call that changed the watch).
    pub fn next_deadline(&self) -> Option<Instant> {
        let silence = self.deadlines.first().map(|(at, _)| *at);
        let calibration = self.calibration_pending.first().map(|(at, _)| *at);
        [silence, calibration].into_iter().flatten().min()
    }

    /// The device's silence deadline, if it can still go silent.
    fn deadline_of(&self, device: &DeviceId) -> Option<Instant> {
        let state = self.devices.get(device)?;
        if state.silent {
            return None;
        }
        let expectation = state
            .expectation
            .as_ref()
            .unwrap_or_else(|| self.config.for_kind(&state.kind));
        Some(state.last_seen + expectation.silent_after()?)
    }

    /// Re-indexes a device's deadline after any change to its state.
    fn reschedule(&mut self, device: &DeviceId) {
        if let Some(old) = self.indexed.remove(device) {
            self.deadlines.remove(&(old, device.clone()));
        }
        if let Some(new) = self.deadline_of(device) {
            self.deadlines.insert((new, device.clone()));
            self.indexed.insert(device.clone(), new);
        }
    }
}

fn overdue(key: ConditionKey, due: Instant, at: Instant) -> ConditionChange {
    technical(
        key,
        Priority::Low,
        format!(
            "calibration overdue since {}",
            due.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ),
        at,
    )
}

fn technical(
    key: ConditionKey,
    priority: Priority,
    message: String,
    at: Instant,
) -> ConditionChange {
    ConditionChange::Present {
        key,
        trigger: Trigger {
            priority,
            kind: AlarmKind::Technical,
            message,
            value: None,
            worsening: None,
        },
        at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alarm::{AlarmBook, AlarmEventKind, AlarmKind};
    use chrono::{TimeZone, Utc};
    use proptest::prelude::*;

    fn t(secs: i64) -> Instant {
        Utc.with_ymd_and_hms(2026, 11, 21, 10, 0, 0).unwrap() + TimeDelta::seconds(secs)
    }
    fn ms(millis: i64) -> Instant {
        t(0) + TimeDelta::milliseconds(millis)
    }
    fn dev(id: &str) -> DeviceId {
        DeviceId::new(id).unwrap()
    }
    fn kind(k: &str) -> DeviceKind {
        DeviceKind::new(k)
    }
    fn monitor_kind() -> DeviceKind {
        kind(DeviceKind::MULTIPARAMETER_MONITOR)
    }
    const CLEAN: QualityFlags = QualityFlags::empty();

    fn conditions(changes: &[ConditionChange]) -> Vec<(String, bool)> {
        changes
            .iter()
            .map(|c| (c.key().condition.clone(), c.is_present()))
            .collect()
    }

    #[test]
    fn a_silent_device_fires_once_exactly_at_its_deadline_and_clears_when_data_resumes() {
        let mut w = DeviceWatch::default();
        let m = dev("mon-1");
        assert!(w.seen(&m, monitor_kind(), t(0), None).is_empty());
        // Monitor: every 60 s + 30 s margin.
        assert_eq!(w.next_deadline(), Some(t(90)));
        assert!(w.tick(ms(89_999)).is_empty(), "one millisecond early");
        let fired = w.tick(t(90));
        assert_eq!(fired.len(), 1);
        let ConditionChange::Present { key, trigger, at } = &fired[0] else {
            panic!("{fired:?}")
        };
        assert_eq!(*key, ConditionKey::device(m.clone(), SILENT));
        assert_eq!(*at, t(90));
        assert_eq!(trigger.kind, AlarmKind::Technical);
        assert_eq!(trigger.priority, Priority::Medium);
        assert_eq!(trigger.message, "no data for 90 s; expected every 60 s");
        assert!(w.is_silent(&m));
        // Fires once: later ticks say nothing, and there is nothing to wait for.
        assert!(w.tick(t(91)).is_empty());
        assert!(w.tick(t(10_000)).is_empty());
        assert_eq!(w.next_deadline(), None);
        // Data resumes: cleared, and the clock restarts.
        let c = w.seen(&m, monitor_kind(), t(20_000), None);
        assert_eq!(conditions(&c), vec![(SILENT.into(), false)]);
        assert_eq!(c[0].at(), t(20_000));
        assert_eq!(w.next_deadline(), Some(t(20_090)));
    }

    #[test]
    fn each_message_moves_the_deadline() {
        let mut w = DeviceWatch::default();
        let m = dev("mon-1");
        for s in (0..600).step_by(60) {
            w.seen(&m, monitor_kind(), t(s), None);
            assert!(w.tick(t(s + 59)).is_empty());
        }
        assert_eq!(w.next_deadline(), Some(t(540 + 90)));
        // A message processed late (an older receipt time) never moves the deadline back.
        w.seen(&m, monitor_kind(), t(100), None);
        assert_eq!(w.next_deadline(), Some(t(630)));
    }

    /// Journey 3: a device that is bound but never says anything also raises "no data".
    #[test]
    fn a_device_that_never_speaks_goes_silent() {
        let mut w = DeviceWatch::default();
        let ox = dev("ox-1");
        w.watch(&ox, kind(DeviceKind::PULSE_OXIMETER), t(0));
        assert_eq!(w.next_deadline(), Some(t(60)));
        assert_eq!(conditions(&w.tick(t(60))), vec![(SILENT.into(), true)]);
        // Watching again does not reset the clock or re-fire.
        w.watch(&ox, kind(DeviceKind::PULSE_OXIMETER), t(100));
        assert!(w.tick(t(200)).is_empty());
    }

    #[test]
    fn deadlines_fire_in_order_and_only_when_due() {
        let mut w = DeviceWatch::default();
        w.seen(&dev("scale"), kind(DeviceKind::WEIGHT_SCALE), t(0), None);
        w.seen(&dev("mon"), monitor_kind(), t(10), None);
        w.seen(&dev("ox"), kind(DeviceKind::PULSE_OXIMETER), t(20), None);
        w.seen(&dev("vendor"), kind("acme-patch"), t(0), None);
        assert_eq!(w.next_deadline(), Some(t(80)));
        let fired = w.tick(t(100));
        let keys: Vec<_> = fired.iter().map(|c| c.key().to_string()).collect();
        assert_eq!(
            keys,
            vec!["device/ox/technical:silent", "device/mon/technical:silent"]
        );
        assert_eq!(fired[0].at(), t(80));
        assert_eq!(fired[1].at(), t(100));
        // Unknown kinds use the fallback: 15 min + 5 min.
        assert_eq!(w.next_deadline(), Some(t(1200)));
        assert_eq!(w.tick(t(1200)).len(), 1);
        // A home scale: a day and six hours, low priority.
        assert_eq!(w.next_deadline(), Some(t(30 * 3600)));
        let fired = w.tick(t(30 * 3600));
        let ConditionChange::Present { trigger, .. } = &fired[0] else {
            panic!()
        };
        assert_eq!(trigger.priority, Priority::Low);
    }

    #[test]
    fn a_per_device_expectation_overrides_the_kind() {
        let mut w = DeviceWatch::default();
        let cgm = dev("cgm-1");
        w.seen(&cgm, kind(DeviceKind::GLUCOSE_METER), t(0), None);
        assert_eq!(w.next_deadline(), Some(t(30 * 3600)));
        let every_5_min = Expectation {
            interval_secs: Some(300),
            margin_secs: 600,
            silent_priority: Priority::Medium,
            artifact_delay_secs: 0,
            max_lag_secs: None,
        };
        w.set_expectation(&cgm, Some(every_5_min)).unwrap();
        assert_eq!(w.next_deadline(), Some(t(900)));
        assert_eq!(w.expectation(&cgm), Some(&every_5_min));
        // Unsupervised: never fires.
        w.set_expectation(
            &cgm,
            Some(Expectation {
                interval_secs: None,
                ..every_5_min
            }),
        )
        .unwrap();
        assert_eq!(w.next_deadline(), None);
        assert!(w.tick(t(1_000_000)).is_empty());
        assert_eq!(
            w.set_expectation(&dev("nobody"), None),
            Err(WatchError::UnknownDevice(dev("nobody")))
        );
    }

    #[test]
    fn battery_boundaries() {
        let mut w = DeviceWatch::default();
        let d = dev("ox-1");
        let k = || kind(DeviceKind::PULSE_OXIMETER);
        let mut seen = |s: i64, pct: u8| {
            w.seen(&d, k(), t(s), Some(pct))
                .into_iter()
                .map(|c| match c {
                    ConditionChange::Present { trigger, .. } => Some(trigger.priority),
                    ConditionChange::Cleared { .. } => None,
                })
                .collect::<Vec<_>>()
        };
        assert!(seen(0, 21).is_empty());
        assert_eq!(seen(1, 20), vec![Some(Priority::Low)]);
        assert!(seen(2, 20).is_empty(), "raised once");
        assert!(seen(3, 11).is_empty());
        assert_eq!(seen(4, 10), vec![Some(Priority::Medium)]);
        assert!(seen(5, 5).is_empty());
        assert!(seen(6, 15).is_empty(), "charging, not yet clear");
        assert!(seen(7, 24).is_empty());
        assert_eq!(seen(8, 25), vec![None]);
        assert!(seen(9, 21).is_empty());
        assert!(
            seen(10, 101).is_empty(),
            "impossible percentages are ignored"
        );
        // Straight to critical.
        let mut w = DeviceWatch::default();
        let c = w.seen(&dev("x"), monitor_kind(), t(0), Some(9));
        assert_eq!(conditions(&c), vec![(BATTERY.into(), true)]);
    }

    #[test]
    fn battery_thresholds_are_validated() {
        let config = WatchConfig {
            battery_low_pct: 10,
            battery_critical_pct: 10,
            ..WatchConfig::default()
        };
        assert_eq!(
            DeviceWatch::new(config).unwrap_err(),
            WatchError::BatteryThresholds {
                critical: 10,
                low: 10,
                clear: 25
            }
        );
        assert!(DeviceWatch::new(WatchConfig::default()).is_ok());
    }

    #[test]
    fn a_single_artifact_on_a_continuous_sensor_says_nothing() {
        let mut w = DeviceWatch::default();
        let ox = dev("ox-1");
        w.seen(&ox, kind(DeviceKind::PULSE_OXIMETER), t(0), None);
        let mut obs = |s: i64, v: Option<f64>, q: QualityFlags| {
            conditions(&w.observed(&ox, Measurand::Spo2, v, t(s), t(s), q))
        };
        assert!(obs(0, Some(97.0), CLEAN).is_empty());
        assert!(obs(1, Some(0.0), QualityFlags::ARTIFACT).is_empty());
        assert!(obs(2, Some(97.0), CLEAN).is_empty());
        // Probe off for 10 s: one low-priority notice, exactly at 10 s.
        for s in 10..20 {
            assert!(obs(s, None, QualityFlags::ARTIFACT).is_empty(), "{s}");
        }
        assert_eq!(
            obs(20, None, QualityFlags::ARTIFACT),
            vec![("technical:artifact:spo2".into(), true)]
        );
        assert!(obs(21, None, QualityFlags::ARTIFACT).is_empty());
        // Questionable readings neither clear nor start it.
        assert!(obs(22, Some(91.0), QualityFlags::QUESTIONABLE).is_empty());
        assert_eq!(
            obs(23, Some(96.0), CLEAN),
            vec![("technical:artifact:spo2".into(), false)]
        );
        assert!(obs(24, Some(96.0), CLEAN).is_empty());
    }

    #[test]
    fn a_spot_check_failure_or_an_implausible_value_is_a_notice_at_once() {
        let mut w = DeviceWatch::default();
        let cuff = dev("cuff-1");
        w.seen(&cuff, kind(DeviceKind::BP_MONITOR), t(0), None);
        let c = w.observed(
            &cuff,
            Measurand::SystolicBp,
            None,
            t(0),
            t(0),
            QualityFlags::ARTIFACT,
        );
        let ConditionChange::Present { trigger, .. } = &c[0] else {
            panic!("{c:?}")
        };
        assert_eq!(trigger.priority, Priority::Low);
        assert_eq!(trigger.message, "systolic_bp: sensor off or artifact");
        let c = w.observed(
            &cuff,
            Measurand::SystolicBp,
            Some(120.0),
            t(60),
            t(60),
            CLEAN,
        );
        assert_eq!(
            conditions(&c),
            vec![("technical:artifact:systolic_bp".into(), false)]
        );
        // Implausible: above the measurand's possible range.
        let c = w.observed(
            &cuff,
            Measurand::SystolicBp,
            Some(400.0),
            t(120),
            t(120),
            CLEAN,
        );
        let ConditionChange::Present { trigger, .. } = &c[0] else {
            panic!("{c:?}")
        };
        assert_eq!(trigger.message, "systolic_bp: implausible value");
        // Readings of devices nobody watches are ignored.
        assert!(
            w.observed(
                &dev("stranger"),
                Measurand::Spo2,
                None,
                t(0),
                t(0),
                QualityFlags::ARTIFACT
            )
            .is_empty()
        );
    }

    #[test]
    fn clock_skew_boundaries() {
        let mut w = DeviceWatch::default();
        let m = dev("mon-1");
        w.seen(&m, monitor_kind(), t(1000), None);
        let mut obs = |effective: i64, received: i64, q: QualityFlags| {
            conditions(&w.observed(
                &m,
                Measurand::HeartRate,
                Some(70.0),
                t(effective),
                t(received),
                q,
            ))
        };
        // Ahead of receipt: 60 s is tolerated, 61 s is skew.
        assert!(obs(1060, 1000, CLEAN).is_empty());
        assert_eq!(obs(1061, 1000, CLEAN), vec![(CLOCK_SKEW.into(), true)]);
        assert!(obs(1100, 1000, CLEAN).is_empty(), "raised once");
        // Clears only within half the tolerance.
        assert!(obs(1031, 1000, CLEAN).is_empty());
        assert_eq!(obs(1030, 1000, CLEAN), vec![(CLOCK_SKEW.into(), false)]);
        // Behind: a streaming monitor may lag 300 s.
        assert!(obs(700, 1000, CLEAN).is_empty());
        assert_eq!(obs(699, 1000, CLEAN), vec![(CLOCK_SKEW.into(), true)]);
        assert!(obs(849, 1000, CLEAN).is_empty());
        assert_eq!(obs(850, 1000, CLEAN), vec![(CLOCK_SKEW.into(), false)]);
        // A time taken from receipt is not checked.
        assert!(obs(5000, 1000, QualityFlags::TIME_FROM_RECEIPT).is_empty());

        // A home scale uploads last week's weights: not skew.
        let scale = dev("scale-1");
        w.seen(&scale, kind(DeviceKind::WEIGHT_SCALE), t(700_000), None);
        assert!(
            w.observed(
                &scale,
                Measurand::Weight,
                Some(80.0),
                t(100),
                t(700_000),
                CLEAN
            )
            .is_empty()
        );
    }

    #[test]
    fn forgetting_a_device_clears_what_it_had_raised() {
        let mut w = DeviceWatch::default();
        let m = dev("mon-1");
        w.seen(&m, monitor_kind(), t(0), Some(5));
        w.observed(
            &m,
            Measurand::Spo2,
            None,
            t(0),
            t(0),
            QualityFlags::ARTIFACT,
        );
        w.observed(
            &m,
            Measurand::Spo2,
            None,
            t(10),
            t(10),
            QualityFlags::ARTIFACT,
        );
        w.tick(t(100));
        let c = w.forget(&m, t(200));
        let mut got = conditions(&c);
        got.sort();
        assert_eq!(
            got,
            vec![
                ("technical:artifact:spo2".into(), false),
                (BATTERY.into(), false),
                (SILENT.into(), false),
            ]
        );
        assert!(!w.is_watched(&m));
        assert_eq!(w.next_deadline(), None);
        assert!(w.forget(&m, t(201)).is_empty());
        // A forgotten device that was not silent leaves no deadline behind.
        w.seen(&dev("ox"), kind(DeviceKind::PULSE_OXIMETER), t(300), None);
        w.forget(&dev("ox"), t(301));
        assert_eq!(w.next_deadline(), None);
        assert!(w.tick(t(10_000)).is_empty());
    }

    #[test]
    fn a_restarted_watch_keeps_its_deadlines_and_does_not_re_fire() {
        let mut w = DeviceWatch::default();
        w.seen(&dev("mon-1"), monitor_kind(), t(0), None);
        w.seen(&dev("mon-2"), monitor_kind(), t(30), None);
        w.tick(t(90));
        assert!(w.is_silent(&dev("mon-1")));
        let json = serde_json::to_string(&w).unwrap();
        let mut restored: DeviceWatch = serde_json::from_str(&json).unwrap();
        assert_eq!(restored, w);
        assert_eq!(restored.next_deadline(), Some(t(120)));
        let fired = restored.tick(t(1000));
        assert_eq!(
            fired
                .iter()
                .map(|c| c.key().to_string())
                .collect::<Vec<_>>(),
            vec!["device/mon-2/technical:silent"]
        );
        // A persisted config is validated on the way in.
        let bad = json.replace("\"battery_clear_pct\":25", "\"battery_clear_pct\":5");
        assert!(serde_json::from_str::<DeviceWatch>(&bad).is_err());
    }

    #[test]
    fn silence_through_the_alarm_book() {
        let mut w = DeviceWatch::default();
        let mut book = AlarmBook::default();
        let m = dev("mon-1");
        w.seen(&m, monitor_kind(), t(0), None);
        let mut events = Vec::new();
        for s in (0..400).step_by(5) {
            for c in w.tick(t(s)) {
                events.extend(book.apply(&c, t(s)));
            }
        }
        for c in w.seen(&m, monitor_kind(), t(400), None) {
            events.extend(book.apply(&c, t(400)));
        }
        let kinds: Vec<_> = events.iter().map(|c| c.event.kind).collect();
        use AlarmEventKind as E;
        assert_eq!(kinds, vec![E::Raised, E::ConditionCleared, E::Resolved]);
        assert_eq!(events[0].event.at, t(90));
        assert_eq!(events[0].alarm.kind, AlarmKind::Technical);
    }

    proptest! {
        /// For any interleaving of messages and ticks: "no data" fires at most once per silence,
        /// never before the deadline, and always by the first tick at or after it.
        #[test]
        fn silence_fires_once_on_time(events in proptest::collection::vec((any::<bool>(), 1..200i64), 1..100)) {
            let mut w = DeviceWatch::default();
            let m = dev("mon-1");
            w.seen(&m, monitor_kind(), t(0), None);
            let (mut now, mut last_seen, mut fired) = (0, 0, false);
            for (is_message, step) in events {
                now += step;
                if is_message {
                    let c = w.seen(&m, monitor_kind(), t(now), None);
                    prop_assert_eq!(c.len(), usize::from(fired));
                    last_seen = now;
                    fired = false;
                } else {
                    let c = w.tick(t(now));
                    let due = now >= last_seen + 90;
                    prop_assert_eq!(c.len(), usize::from(due && !fired));
                    if let Some(c) = c.first() {
                        prop_assert_eq!(c.at(), t(last_seen + 90));
                    }
                    fired |= due;
                }
                prop_assert_eq!(w.next_deadline(), (!fired).then(|| t(last_seen + 90)));
            }
        }
    }

    #[test]
    fn an_overdue_calibration_alarms_at_its_due_time_and_clears_with_a_new_date() {
        let mut w = DeviceWatch::new(WatchConfig::default()).unwrap();
        let d = DeviceId::new("cuff-1").unwrap();
        let at = |s: i64| {
            chrono::TimeZone::with_ymd_and_hms(&chrono::Utc, 2026, 11, 22, 8, 0, 0).unwrap()
                + TimeDelta::seconds(s)
        };
        assert!(w.set_calibration_due(&d, Some(at(100)), at(0)).is_empty());
        assert_eq!(w.next_deadline(), Some(at(100)));
        assert!(w.tick(at(99)).is_empty());
        let fired = w.tick(at(100));
        assert_eq!(fired.len(), 1);
        assert!(
            matches!(&fired[0], ConditionChange::Present { key, trigger, .. }
            if key.condition == CALIBRATION_DUE && trigger.priority == Priority::Low)
        );
        assert!(w.tick(at(200)).is_empty(), "once");
        assert_eq!(w.next_deadline(), None);
        // Calibrated: a new due date in a year clears it.
        let cleared = w.set_calibration_due(&d, Some(at(365 * 86_400)), at(300));
        assert!(matches!(&cleared[0], ConditionChange::Cleared { .. }));
        // A due date already passed when recorded raises at once; removing it clears.
        let e = DeviceId::new("scale-1").unwrap();
        assert_eq!(w.set_calibration_due(&e, Some(at(-10)), at(0)).len(), 1);
        assert!(
            w.set_calibration_due(&e, Some(at(-5)), at(1)).is_empty(),
            "still the same condition"
        );
        assert_eq!(w.set_calibration_due(&e, None, at(2)).len(), 1);
    }
}
