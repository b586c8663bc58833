//! Threshold alarm conditions: per-patient, per-measurand alarm limits (IEC 60601-1-8 "alarm
//! limit"), with an alarm-condition delay and hysteresis, evaluated reading by reading.
//!
//! # Adult defaults
//!
//! The manufacturer's default alarm preset ([`Limits::adult_defaults`]); clinicians override it per
//! patient ([`ThresholdMonitor::set_limits`]). A condition exists when the value is *strictly*
//! beyond the limit (SpO2 90 % is not below 90 %). Priorities follow the IEC 60601-1-8 Table 1
//! logic (potential harm × onset): harm that can kill or injure irreversibly within minutes is high,
//! harm that needs a prompt response is medium.
//!
//! | Measurand | Condition | Priority | Delay | Clears at (hysteresis) | Re-alarm step | Source / rationale |
//! |---|---|---|---|---|---|---|
//! | SpO2 | < 90 % | high | 15 s | ≥ 92 % (2 %) | 3 % | Below 90 % is hypoxaemia in the BTS oxygen guideline (target 94–98 %, 88–92 % if hypercapnic: override for those patients) and scores 3 on NEWS2 (≤ 91). The 15 s delay is the issue's figure; pulse oximeters already average over 8–16 s, and shorter delays mostly fire on motion. |
//! | Heart rate | < 40 /min | high | 10 s | ≥ 45 (5) | 10 | NEWS2 scores ≤ 40 as 3: severe bradycardia. |
//! | Heart rate | > 130 /min | medium | 10 s | ≤ 125 (5) | 10 | NEWS2 scores ≥ 131 as 3. |
//! | Respiration rate | < 8 /min | high | 15 s | ≥ 10 (2) | 2 | NEWS2 scores ≤ 8 as 3; bradypnoea precedes respiratory arrest (opioids). |
//! | Respiration rate | > 30 /min | medium | 15 s | ≤ 28 (2) | 4 | NEWS2 scores ≥ 25 as 3; > 30 is a common rapid-response calling criterion. |
//! | Systolic BP | < 90 mmHg | high | 0 s | ≥ 100 (10) | 10 | NEWS2 scores ≤ 90 as 3; the usual definition of hypotension / shock. |
//! | Systolic BP | > 200 mmHg | medium | 0 s | ≤ 195 (5) | 20 | Severe hypertension (urgency from 180); NEWS2 scores ≥ 220 as 3. |
//! | Temperature | < 35.0 °C | medium | 0 s | ≥ 35.3 (0.3) | 0.5 | Hypothermia is a core temperature below 35 °C; NEWS2 scores ≤ 35.0 as 3. |
//! | Temperature | > 39.0 °C | medium | 0 s | ≤ 38.7 (0.3) | 0.5 | NEWS2 scores ≥ 39.1 as 2 (its highest temperature score). |
//! | Glucose | < 70 mg/dL (level 1) | medium | 0 s | ≥ 75 (5) | 10 | ADA Standards of Care §6 / International Hypoglycaemia Study Group (2017): level 1 hypoglycaemia 54–69 mg/dL. |
//! | Glucose | < 54 mg/dL (level 2) | high | 0 s | (same condition) | | ADA level 2, "clinically significant" hypoglycaemia. |
//! | Glucose | > 250 mg/dL | medium | 0 s | ≤ 240 (10) | 50 | International consensus on time in range (Battelino et al., Diabetes Care 2019): level 2 hyperglycaemia > 250 mg/dL. |
//!
//! Delays: continuous signals (SpO2, heart rate, respiration rate) need the condition to persist;
//! blood pressure, temperature and glucose are spot measurements (an NIBP cycle, a thermometer, a
//! fingerstick or a 5-minute CGM value), each a complete measurement, so a delay would only make
//! the alarm wait for the next one. A cohort on CGM can set a glucose delay (e.g. 15 min against
//! compression lows).
//!
//! # Rules
//!
//! * **Delay** (IEC 60601-1-8 "alarm condition delay"): a condition is raised at the first valid
//!   reading at or after `onset + delay`, where `onset` begins the current run of consecutive
//!   valid readings beyond the limit. With delay 0 the first such reading raises it. A reading
//!   that is not beyond the limit ends the run.
//! * **Tiers**: a side may have more severe limits with higher priorities (glucose level 2). Each
//!   tier has its own run and the same delay; the condition's priority is that of the most severe
//!   confirmed tier. It is one condition (`threshold:glucose:low`), so one alarm, escalated.
//! * **Hysteresis**: a raised condition clears only at a valid value back inside the least severe
//!   limit by the hysteresis margin; values in between neither raise nor clear, so a value
//!   oscillating around the limit raises once and never flaps.
//! * **Artifacts**: a reading flagged `ARTIFACT` or `QUESTIONABLE`, outside the measurand's
//!   plausible range, not finite, without a value, or in a status that is not a result
//!   (registered, cancelled, entered in error, unknown) is *not evidence*: it never starts or
//!   sustains a condition (it ends any pending run, so a delay needs clean evidence throughout) and
//!   never clears one (a missing value is never normal). Probe-off and staleness are the
//!   [`crate::technical`] module's job.
//! * **Order**: a reading older than the latest one seen for its measurand (a late backlog) is
//!   ignored here; it is still stored.
//! * **Re-reporting**: while raised, every valid reading beyond the limit is reported again as
//!   present with its value, so the [`crate::alarm::AlarmBook`] can escalate or re-alarm on
//!   worsening; the book de-duplicates.
//!
//! Values within 1e-9 of a limit count as at the limit, so float representation never moves a
//! boundary.

use std::collections::BTreeMap;

use chrono::TimeDelta;
use serde::{Deserialize, Serialize};
use vigil_model::{
    Instant, Measurand, Observation, ObservationCode, ObservationStatus, ObservationValue,
    PatientId, QualityFlags, ValueKind,
};

use crate::alarm::{
    AlarmKind, ConditionChange, ConditionKey, Direction, Priority, Trigger, Worsening,
};

/// Tolerance for comparing values with limits.
const EPSILON: f64 = 1e-9;

/// The most tiers a side may have.
pub const MAX_TIERS: usize = 4;

/// Which side of the normal range a limit guards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Bound {
    Low,
    High,
}

impl Bound {
    pub fn name(self) -> &'static str {
        match self {
            Bound::Low => "low",
            Bound::High => "high",
        }
    }
    fn direction(self) -> Direction {
        match self {
            Bound::Low => Direction::Down,
            Bound::High => Direction::Up,
        }
    }
    /// True when `value` is strictly beyond `limit` on this side.
    fn beyond(self, value: f64, limit: f64) -> bool {
        match self {
            Bound::Low => value < limit - EPSILON,
            Bound::High => value > limit + EPSILON,
        }
    }
}

/// One alarm limit and the priority of being beyond it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    /// In the measurand's canonical unit.
    pub limit: f64,
    pub priority: Priority,
}

/// The limits on one side of one measurand.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Side {
    /// From least to most severe; each further beyond the normal range, none of lower priority.
    pub tiers: Vec<Tier>,
    /// Seconds the condition must persist before it is raised.
    pub delay_secs: u32,
    /// How far back inside the least severe limit a value must be to clear the condition.
    pub hysteresis: f64,
    /// How far a value must worsen beyond the acknowledged value to re-sound the alarm.
    pub realarm_step: f64,
}

impl Side {
    fn single(limit: f64, priority: Priority, delay_secs: u32, hysteresis: f64, step: f64) -> Self {
        Side {
            tiers: vec![Tier { limit, priority }],
            delay_secs,
            hysteresis,
            realarm_step: step,
        }
    }
    /// The value at which a raised condition clears (inclusive).
    fn clear_point(&self, bound: Bound) -> Option<f64> {
        let first = self.tiers.first()?.limit;
        Some(match bound {
            Bound::Low => first + self.hysteresis,
            Bound::High => first - self.hysteresis,
        })
    }
}

/// Both sides of one measurand's limits; a side that is `None` is not watched.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeasurandLimits {
    pub low: Option<Side>,
    pub high: Option<Side>,
}

impl MeasurandLimits {
    pub fn side(&self, bound: Bound) -> Option<&Side> {
        match bound {
            Bound::Low => self.low.as_ref(),
            Bound::High => self.high.as_ref(),
        }
    }

    /// Checks that the limits make sense for `measurand`.
    pub fn validate(&self, measurand: Measurand) -> Result<(), LimitError> {
        if measurand.value_kind() != ValueKind::Quantity {
            return Err(LimitError::NotNumeric(measurand));
        }
        for bound in [Bound::Low, Bound::High] {
            let Some(side) = self.side(bound) else {
                continue;
            };
            let at = |problem| LimitError::Invalid {
                measurand,
                bound,
                problem,
            };
            if side.tiers.is_empty() {
                return Err(at(Problem::NoTier));
            }
            if side.tiers.len() > MAX_TIERS {
                return Err(at(Problem::TooManyTiers(side.tiers.len())));
            }
            if side.tiers.iter().any(|t| !t.limit.is_finite()) {
                return Err(at(Problem::NotFinite));
            }
            for pair in side.tiers.windows(2) {
                if !bound.beyond(pair[1].limit, pair[0].limit)
                    || pair[1].priority < pair[0].priority
                {
                    return Err(at(Problem::TiersOutOfOrder));
                }
            }
            if !(side.hysteresis.is_finite() && side.hysteresis >= 0.0) {
                return Err(at(Problem::BadHysteresis));
            }
            if !(side.realarm_step.is_finite() && side.realarm_step > 0.0) {
                return Err(at(Problem::BadRealarmStep));
            }
        }
        if let (Some(low), Some(high)) = (&self.low, &self.high) {
            let (Some(low_clear), Some(high_clear)) =
                (low.clear_point(Bound::Low), high.clear_point(Bound::High))
            else {
                return Ok(());
            };
            if low_clear > high_clear + EPSILON {
                return Err(LimitError::Overlap(measurand));
            }
        }
        Ok(())
    }
}

/// What is wrong with one side of a measurand's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("no limit")]
    NoTier,
    #[error("{0} tiers; at most {MAX_TIERS} are allowed")]
    TooManyTiers(usize),
    #[error("a limit is not a finite number")]
    NotFinite,
    #[error("each further tier must be strictly more extreme and of no lower priority")]
    TiersOutOfOrder,
    #[error("hysteresis must be a finite number ≥ 0")]
    BadHysteresis,
    #[error("the re-alarm step must be a finite number > 0")]
    BadRealarmStep,
}

/// Why limits were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error("{0:?} is not a numeric measurand; it has no alarm limits")]
    NotNumeric(Measurand),
    #[error("{measurand:?} {bound:?} limit: {problem}")]
    Invalid {
        measurand: Measurand,
        bound: Bound,
        problem: Problem,
    },
    #[error(
        "{0:?}: the low limit clears above the point where the high limit clears; the two overlap"
    )]
    Overlap(Measurand),
}

/// A patient's alarm limits, per measurand; validated whenever built or deserialised.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(
    try_from = "BTreeMap<Measurand, MeasurandLimits>",
    into = "BTreeMap<Measurand, MeasurandLimits>"
)]
pub struct Limits(BTreeMap<Measurand, MeasurandLimits>);

impl TryFrom<BTreeMap<Measurand, MeasurandLimits>> for Limits {
    type Error = LimitError;
    fn try_from(map: BTreeMap<Measurand, MeasurandLimits>) -> Result<Self, LimitError> {
        for (m, l) in &map {
            l.validate(*m)?;
        }
        Ok(Limits(map))
    }
}

impl From<Limits> for BTreeMap<Measurand, MeasurandLimits> {
    fn from(limits: Limits) -> Self {
        limits.0
    }
}

impl Limits {
    /// No limits at all.
    pub fn none() -> Self {
        Limits(BTreeMap::new())
    }

    /// The adult default alarm preset (see the module's table).
    pub fn adult_defaults() -> Self {
        use Priority::{High, Medium};
        let both = |low, high| MeasurandLimits {
            low: Some(low),
            high: Some(high),
        };
        let mut map = BTreeMap::new();
        map.insert(
            Measurand::Spo2,
            MeasurandLimits {
                low: Some(Side::single(90.0, High, 15, 2.0, 3.0)),
                high: None,
            },
        );
        map.insert(
            Measurand::HeartRate,
            both(
                Side::single(40.0, High, 10, 5.0, 10.0),
                Side::single(130.0, Medium, 10, 5.0, 10.0),
            ),
        );
        map.insert(
            Measurand::RespRate,
            both(
                Side::single(8.0, High, 15, 2.0, 2.0),
                Side::single(30.0, Medium, 15, 2.0, 4.0),
            ),
        );
        map.insert(
            Measurand::SystolicBp,
            both(
                // Clears 10 mmHg inside the limit: a septic pressure hovering at 90 would
                // otherwise fall, clear and fall again with every cuff reading (measured by the
                // alarm-burden benchmark, docs/alarms.md).
                Side::single(90.0, High, 0, 10.0, 10.0),
                Side::single(200.0, Medium, 0, 5.0, 20.0),
            ),
        );
        map.insert(
            Measurand::Temperature,
            both(
                Side::single(35.0, Medium, 0, 0.3, 0.5),
                Side::single(39.0, Medium, 0, 0.3, 0.5),
            ),
        );
        map.insert(
            Measurand::Glucose,
            both(
                Side {
                    tiers: vec![
                        Tier {
                            limit: 70.0,
                            priority: Medium,
                        },
                        Tier {
                            limit: 54.0,
                            priority: High,
                        },
                    ],
                    delay_secs: 0,
                    hysteresis: 5.0,
                    realarm_step: 10.0,
                },
                Side::single(250.0, Medium, 0, 10.0, 50.0),
            ),
        );
        Limits(map)
    }

    pub fn get(&self, measurand: Measurand) -> Option<&MeasurandLimits> {
        self.0.get(&measurand)
    }

    /// Sets (or with `None` removes) one measurand's limits, after validating them.
    pub fn set(
        &mut self,
        measurand: Measurand,
        limits: Option<MeasurandLimits>,
    ) -> Result<(), LimitError> {
        match limits {
            Some(l) => {
                l.validate(measurand)?;
                self.0.insert(measurand, l);
            }
            None => {
                self.0.remove(&measurand);
            }
        }
        Ok(())
    }

    pub fn iter(&self) -> impl Iterator<Item = (Measurand, &MeasurandLimits)> {
        self.0.iter().map(|(m, l)| (*m, l))
    }
}

/// The condition id of a threshold condition: `threshold:{measurand}:{low|high}`.
pub fn condition_id(measurand: Measurand, bound: Bound) -> String {
    format!("threshold:{}:{}", measurand.short_name(), bound.name())
}

/// A short name for messages.
fn label(measurand: Measurand) -> &'static str {
    match measurand {
        Measurand::Spo2 => "SpO2",
        Measurand::HeartRate => "Heart rate",
        Measurand::RespRate => "Respiration rate",
        Measurand::SystolicBp => "Systolic BP",
        Measurand::DiastolicBp => "Diastolic BP",
        Measurand::MeanBp => "Mean BP",
        Measurand::Temperature => "Temperature",
        Measurand::Glucose => "Glucose",
        Measurand::Weight => "Weight",
        m => m.display(),
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
struct SideState {
    /// Per tier, the start of the current run of valid readings beyond its limit.
    onsets: Vec<Option<Instant>>,
    /// The condition is raised (reported present and not yet cleared).
    raised: bool,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
struct MeasurandState {
    /// Time of the latest reading evaluated, valid or not.
    last_at: Option<Instant>,
    low: SideState,
    high: SideState,
}

impl MeasurandState {
    fn side_mut(&mut self, bound: Bound) -> &mut SideState {
        match bound {
            Bound::Low => &mut self.low,
            Bound::High => &mut self.high,
        }
    }
}

/// One patient's threshold conditions. Memory: one small state per measurand with limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThresholdMonitor {
    patient: PatientId,
    limits: Limits,
    state: BTreeMap<Measurand, MeasurandState>,
}

impl ThresholdMonitor {
    pub fn new(patient: PatientId, limits: Limits) -> Self {
        ThresholdMonitor {
            patient,
            limits,
            state: BTreeMap::new(),
        }
    }

    pub fn patient(&self) -> &PatientId {
        &self.patient
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// True while the condition is raised.
    pub fn is_raised(&self, measurand: Measurand, bound: Bound) -> bool {
        self.state.get(&measurand).is_some_and(|s| match bound {
            Bound::Low => s.low.raised,
            Bound::High => s.high.raised,
        })
    }

    /// Overrides (or with `None` removes) one measurand's limits. A raised condition whose side
    /// is removed clears at `at`; pending runs restart under the new limits. Other raised
    /// conditions are re-judged by the next reading.
    pub fn set_limits(
        &mut self,
        measurand: Measurand,
        limits: Option<MeasurandLimits>,
        at: Instant,
    ) -> Result<Vec<ConditionChange>, LimitError> {
        self.limits.set(measurand, limits)?;
        let mut changes = Vec::new();
        let current = self.limits.get(measurand).cloned().unwrap_or_default();
        if let Some(state) = self.state.get_mut(&measurand) {
            for bound in [Bound::Low, Bound::High] {
                let side = state.side_mut(bound);
                side.onsets.clear();
                if side.raised && current.side(bound).is_none() {
                    side.raised = false;
                    changes.push(ConditionChange::Cleared {
                        key: ConditionKey::patient(
                            self.patient.clone(),
                            condition_id(measurand, bound),
                        ),
                        at,
                    });
                }
            }
        }
        Ok(changes)
    }

    /// Evaluates one reading: `value` in the measurand's canonical unit (`None` when missing).
    pub fn observe(
        &mut self,
        measurand: Measurand,
        value: Option<f64>,
        at: Instant,
        quality: QualityFlags,
    ) -> Vec<ConditionChange> {
        let Some(limits) = self.limits.get(measurand) else {
            return Vec::new();
        };
        let state = self.state.entry(measurand).or_default();
        if state.last_at.is_some_and(|last| at < last) {
            return Vec::new();
        }
        state.last_at = Some(at);
        let plausible = measurand.plausible();
        let evidence = value.filter(|v| {
            v.is_finite()
                && *v >= plausible.min
                && *v <= plausible.max
                && !quality.contains(QualityFlags::ARTIFACT)
                && !quality.contains(QualityFlags::QUESTIONABLE)
        });
        let mut changes = Vec::new();
        for bound in [Bound::Low, Bound::High] {
            let side_state = state.side_mut(bound);
            let Some(side) = limits.side(bound) else {
                side_state.onsets.clear();
                continue;
            };
            side_state.onsets.resize(side.tiers.len(), None);
            let Some(v) = evidence else {
                // Not evidence: ends pending runs, never clears a raised condition.
                side_state.onsets.iter_mut().for_each(|o| *o = None);
                continue;
            };
            let delay = TimeDelta::seconds(i64::from(side.delay_secs));
            let mut confirmed: Option<&Tier> = None;
            for (tier, onset) in side.tiers.iter().zip(side_state.onsets.iter_mut()) {
                if bound.beyond(v, tier.limit) {
                    let since = *onset.get_or_insert(at);
                    if at - since >= delay {
                        confirmed = Some(tier);
                    }
                } else {
                    *onset = None;
                }
            }
            let key =
                || ConditionKey::patient(self.patient.clone(), condition_id(measurand, bound));
            let beyond_first = side_state.onsets.first().is_some_and(|o| o.is_some());
            if side_state.raised {
                let clears = side.clear_point(bound).is_some_and(|clear| match bound {
                    Bound::Low => v >= clear - EPSILON,
                    Bound::High => v <= clear + EPSILON,
                });
                if clears {
                    side_state.raised = false;
                    changes.push(ConditionChange::Cleared { key: key(), at });
                } else if beyond_first {
                    // Established: re-report with the most severe confirmed tier (at least the first).
                    let tier = confirmed.or(side.tiers.first());
                    if let Some(tier) = tier {
                        changes.push(present(key(), measurand, bound, side, tier, v, at));
                    }
                }
            } else if let Some(tier) = confirmed {
                side_state.raised = true;
                changes.push(present(key(), measurand, bound, side, tier, v, at));
            }
        }
        changes
    }

    /// Evaluates a stored observation: its quantity, or each component of a blood-pressure panel.
    /// A value in another unit than the measurand's canonical one, or a status that is not a
    /// result, counts as missing.
    pub fn observe_observation(&mut self, obs: &Observation) -> Vec<ConditionChange> {
        let is_result = matches!(
            obs.status,
            ObservationStatus::Preliminary
                | ObservationStatus::Final
                | ObservationStatus::Amended
                | ObservationStatus::Corrected
        );
        let value_of = |m: Measurand, v: f64, unit: &str| {
            (is_result && unit == m.canonical_unit()).then_some(v)
        };
        match (&obs.code, &obs.value) {
            (ObservationCode::Single(m), ObservationValue::Quantity(q)) => self.observe(
                *m,
                value_of(*m, q.value, &q.unit),
                obs.effective,
                obs.quality,
            ),
            (_, ObservationValue::Components(parts)) => parts
                .iter()
                .flat_map(|c| {
                    let v = value_of(c.measurand, c.value.value, &c.value.unit);
                    self.observe(c.measurand, v, obs.effective, obs.quality)
                })
                .collect(),
            _ => Vec::new(),
        }
    }
}

fn present(
    key: ConditionKey,
    measurand: Measurand,
    bound: Bound,
    side: &Side,
    tier: &Tier,
    value: f64,
    at: Instant,
) -> ConditionChange {
    let unit = measurand.unit_display();
    let relation = match bound {
        Bound::Low => "below",
        Bound::High => "above",
    };
    ConditionChange::Present {
        key,
        trigger: Trigger {
            priority: tier.priority,
            kind: AlarmKind::Physiological,
            message: format!(
                "{} {value} {unit} {relation} the {} {unit} limit",
                label(measurand),
                tier.limit
            ),
            value: Some(value),
            worsening: Some(Worsening {
                direction: bound.direction(),
                margin: side.realarm_step,
            }),
        },
        at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alarm::{AlarmBook, AlarmEventKind, AlarmState};
    use chrono::{TimeZone, Utc};
    use proptest::prelude::*;
    use vigil_model::{DeviceId, ObservationComponent, ObservationId, Quantity};

    fn t(secs: i64) -> Instant {
        Utc.with_ymd_and_hms(2026, 11, 21, 10, 0, 0).unwrap() + TimeDelta::seconds(secs)
    }

    fn monitor() -> ThresholdMonitor {
        ThresholdMonitor::new(PatientId::new("bed-1").unwrap(), Limits::adult_defaults())
    }

    const CLEAN: QualityFlags = QualityFlags::empty();

    /// (measurand, bound, limit, most severe priority at one step beyond, resolution step)
    const BOUNDARIES: [(Measurand, Bound, f64, Priority, f64); 12] = [
        (Measurand::Spo2, Bound::Low, 90.0, Priority::High, 1.0),
        (Measurand::HeartRate, Bound::Low, 40.0, Priority::High, 1.0),
        (
            Measurand::HeartRate,
            Bound::High,
            130.0,
            Priority::Medium,
            1.0,
        ),
        (Measurand::RespRate, Bound::Low, 8.0, Priority::High, 1.0),
        (
            Measurand::RespRate,
            Bound::High,
            30.0,
            Priority::Medium,
            1.0,
        ),
        (Measurand::SystolicBp, Bound::Low, 90.0, Priority::High, 1.0),
        (
            Measurand::SystolicBp,
            Bound::High,
            200.0,
            Priority::Medium,
            1.0,
        ),
        (
            Measurand::Temperature,
            Bound::Low,
            35.0,
            Priority::Medium,
            0.1,
        ),
        (
            Measurand::Temperature,
            Bound::High,
            39.0,
            Priority::Medium,
            0.1,
        ),
        (Measurand::Glucose, Bound::Low, 70.0, Priority::Medium, 1.0),
        (Measurand::Glucose, Bound::Low, 54.0, Priority::High, 1.0),
        (
            Measurand::Glucose,
            Bound::High,
            250.0,
            Priority::Medium,
            1.0,
        ),
    ];

    fn delay_of(m: Measurand, bound: Bound) -> i64 {
        let limits = Limits::adult_defaults();
        i64::from(limits.get(m).unwrap().side(bound).unwrap().delay_secs)
    }

    fn priority_of(change: &ConditionChange) -> Option<Priority> {
        match change {
            ConditionChange::Present { trigger, .. } => Some(trigger.priority),
            ConditionChange::Cleared { .. } => None,
        }
    }

    /// Feeds `value` at t(0) and again at t(delay); returns what the second reading reported.
    fn sustained(m: Measurand, value: f64) -> Vec<ConditionChange> {
        let mut mon = monitor();
        let delay = delay_of(m, Bound::Low).max(
            mon.limits()
                .get(m)
                .and_then(|l| l.high.as_ref())
                .map_or(0, |s| i64::from(s.delay_secs)),
        );
        let first = mon.observe(m, Some(value), t(0), CLEAN);
        if delay == 0 {
            return first;
        }
        assert!(first.is_empty(), "{m:?} {value} raised before its delay");
        mon.observe(m, Some(value), t(delay), CLEAN)
    }

    #[test]
    fn the_defaults_are_valid_and_survive_serde() {
        let limits = Limits::adult_defaults();
        for (m, l) in limits.iter() {
            l.validate(m).unwrap();
        }
        let json = serde_json::to_string(&limits).unwrap();
        let back: Limits = serde_json::from_str(&json).unwrap();
        assert_eq!(back, limits);
    }

    #[test]
    fn every_default_limit_at_and_either_side() {
        for (m, bound, limit, priority, step) in BOUNDARIES {
            let toward = match bound {
                Bound::Low => -step,
                Bound::High => step,
            };
            let at = sustained(m, limit);
            let beyond = sustained(m, limit + toward);
            let inside = sustained(m, limit - toward);
            // At the limit: the condition does not exist (or, for glucose level 2, only level 1).
            let at_priority = at.first().and_then(priority_of);
            assert!(
                at_priority < Some(priority),
                "{m:?} {bound:?} at {limit}: {at:?}"
            );
            assert_eq!(
                beyond.first().and_then(priority_of),
                Some(priority),
                "{m:?} {bound:?} one step beyond {limit}"
            );
            assert!(
                inside.first().and_then(priority_of) < Some(priority),
                "{m:?} {bound:?} one step inside {limit}"
            );
            if let Some(ConditionChange::Present { key, .. }) = beyond.first() {
                assert_eq!(key.condition, condition_id(m, bound));
            }
        }
        // Plain "inside" never raises anything.
        assert!(sustained(Measurand::Spo2, 91.0).is_empty());
        assert!(sustained(Measurand::Temperature, 35.1).is_empty());
        assert!(sustained(Measurand::Glucose, 71.0).is_empty());
    }

    #[test]
    fn every_default_clear_point_at_and_one_step_short() {
        // (measurand, bound, raising value, last value that does not clear, clear point)
        let cases = [
            (Measurand::Spo2, Bound::Low, 85.0, 91.0, 92.0),
            (Measurand::HeartRate, Bound::Low, 35.0, 44.0, 45.0),
            (Measurand::HeartRate, Bound::High, 140.0, 126.0, 125.0),
            (Measurand::RespRate, Bound::Low, 6.0, 9.0, 10.0),
            (Measurand::RespRate, Bound::High, 35.0, 29.0, 28.0),
            (Measurand::SystolicBp, Bound::Low, 80.0, 99.0, 100.0),
            (Measurand::SystolicBp, Bound::High, 210.0, 196.0, 195.0),
            (Measurand::Temperature, Bound::Low, 34.0, 35.2, 35.3),
            (Measurand::Temperature, Bound::High, 40.0, 38.8, 38.7),
            (Measurand::Glucose, Bound::Low, 50.0, 74.0, 75.0),
            (Measurand::Glucose, Bound::High, 300.0, 241.0, 240.0),
        ];
        for (m, bound, raise, short, clear) in cases {
            let mut mon = monitor();
            let delay = delay_of(m, bound);
            mon.observe(m, Some(raise), t(0), CLEAN);
            mon.observe(m, Some(raise), t(delay), CLEAN);
            assert!(mon.is_raised(m, bound), "{m:?} {bound:?}");
            assert!(
                mon.observe(m, Some(short), t(delay + 1), CLEAN).is_empty(),
                "{m:?} {bound:?} cleared at {short}"
            );
            let c = mon.observe(m, Some(clear), t(delay + 2), CLEAN);
            assert!(
                matches!(c.as_slice(), [ConditionChange::Cleared { at, .. }] if *at == t(delay + 2)),
                "{m:?} {bound:?} did not clear at {clear}: {c:?}"
            );
            assert!(!mon.is_raised(m, bound));
        }
    }

    #[test]
    fn spo2_must_stay_low_for_fifteen_seconds() {
        let mut mon = monitor();
        for s in 0..15 {
            assert!(
                mon.observe(Measurand::Spo2, Some(88.0), t(s), CLEAN)
                    .is_empty(),
                "raised after {s} s"
            );
        }
        let c = mon.observe(Measurand::Spo2, Some(88.0), t(15), CLEAN);
        assert_eq!(c.len(), 1);
        assert_eq!(priority_of(&c[0]), Some(Priority::High));
        assert_eq!(c[0].at(), t(15));
        // A single low reading between normal ones never alarms.
        let mut mon = monitor();
        mon.observe(Measurand::Spo2, Some(97.0), t(0), CLEAN);
        mon.observe(Measurand::Spo2, Some(70.0), t(1), CLEAN);
        for s in 2..60 {
            assert!(
                mon.observe(Measurand::Spo2, Some(97.0), t(s), CLEAN)
                    .is_empty()
            );
        }
    }

    #[test]
    fn a_reading_back_at_the_limit_restarts_the_delay() {
        let mut mon = monitor();
        for s in 0..10 {
            mon.observe(Measurand::Spo2, Some(88.0), t(s), CLEAN);
        }
        assert!(
            mon.observe(Measurand::Spo2, Some(90.0), t(10), CLEAN)
                .is_empty()
        );
        for s in 11..26 {
            assert!(
                mon.observe(Measurand::Spo2, Some(88.0), t(s), CLEAN)
                    .is_empty(),
                "{s}"
            );
        }
        assert_eq!(
            mon.observe(Measurand::Spo2, Some(88.0), t(26), CLEAN).len(),
            1
        );
    }

    #[test]
    fn sparse_readings_confirm_at_the_first_reading_after_the_delay() {
        let mut mon = monitor();
        assert!(
            mon.observe(Measurand::HeartRate, Some(150.0), t(0), CLEAN)
                .is_empty()
        );
        assert!(
            mon.observe(Measurand::HeartRate, Some(150.0), t(9), CLEAN)
                .is_empty()
        );
        assert_eq!(
            mon.observe(Measurand::HeartRate, Some(150.0), t(60), CLEAN)
                .len(),
            1
        );
    }

    #[test]
    fn no_flapping_around_the_limit() {
        let mut mon = monitor();
        let mut changes = Vec::new();
        for s in 0..=15 {
            changes.extend(mon.observe(Measurand::Spo2, Some(88.0), t(s), CLEAN));
        }
        for s in 16..600 {
            let v = [89.0, 91.0, 90.0, 89.5, 91.9][s as usize % 5];
            changes.extend(mon.observe(Measurand::Spo2, Some(v), t(s), CLEAN));
        }
        assert!(changes.iter().all(ConditionChange::is_present));
        // Through the book: one alarm, raised once.
        let mut book = AlarmBook::default();
        let events: Vec<_> = changes.iter().flat_map(|c| book.apply(c, c.at())).collect();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].event.kind, AlarmEventKind::Raised);

        // Without a delay (temperature), oscillating around 39.0 raises once and never clears.
        let mut mon = monitor();
        let mut changes = Vec::new();
        for s in 0..200 {
            let v = [39.1, 38.9, 39.2, 38.8, 39.0][s as usize % 5];
            changes.extend(mon.observe(Measurand::Temperature, Some(v), t(s * 60), CLEAN));
        }
        assert!(changes.iter().all(ConditionChange::is_present));
        assert!(mon.is_raised(Measurand::Temperature, Bound::High));
    }

    #[test]
    fn artifacts_never_alarm() {
        for flag in [QualityFlags::ARTIFACT, QualityFlags::QUESTIONABLE] {
            let mut mon = monitor();
            for s in 0..120 {
                assert!(
                    mon.observe(Measurand::Spo2, Some(40.0), t(s), flag)
                        .is_empty()
                );
                assert!(
                    mon.observe(Measurand::Glucose, Some(30.0), t(s), flag)
                        .is_empty()
                );
            }
        }
        // Implausible and non-finite values are artifacts too; missing values are nothing.
        let mut mon = monitor();
        for s in 0..60 {
            for v in [Some(400.0), Some(f64::NAN), Some(f64::INFINITY), None] {
                assert!(mon.observe(Measurand::HeartRate, v, t(s), CLEAN).is_empty());
            }
        }
    }

    #[test]
    fn an_artifact_ends_a_pending_run_but_never_clears() {
        let mut mon = monitor();
        for s in 0..10 {
            mon.observe(Measurand::Spo2, Some(88.0), t(s), CLEAN);
        }
        mon.observe(Measurand::Spo2, Some(88.0), t(10), QualityFlags::ARTIFACT);
        for s in 11..26 {
            assert!(
                mon.observe(Measurand::Spo2, Some(88.0), t(s), CLEAN)
                    .is_empty()
            );
        }
        assert_eq!(
            mon.observe(Measurand::Spo2, Some(88.0), t(26), CLEAN).len(),
            1
        );
        // Raised: artifacts (a probe-off reading 0 %, or a flagged 99 %) and gaps change nothing.
        assert!(
            mon.observe(Measurand::Spo2, Some(99.0), t(27), QualityFlags::ARTIFACT)
                .is_empty()
        );
        assert!(
            mon.observe(
                Measurand::Spo2,
                Some(99.0),
                t(28),
                QualityFlags::QUESTIONABLE
            )
            .is_empty()
        );
        assert!(mon.observe(Measurand::Spo2, None, t(29), CLEAN).is_empty());
        assert!(mon.is_raised(Measurand::Spo2, Bound::Low));
        assert_eq!(
            mon.observe(Measurand::Spo2, Some(97.0), t(30), CLEAN).len(),
            1
        );
        assert!(!mon.is_raised(Measurand::Spo2, Bound::Low));
    }

    #[test]
    fn a_late_reading_is_ignored() {
        let mut mon = monitor();
        mon.observe(Measurand::SystolicBp, Some(120.0), t(100), CLEAN);
        assert!(
            mon.observe(Measurand::SystolicBp, Some(70.0), t(50), CLEAN)
                .is_empty()
        );
        assert_eq!(
            mon.observe(Measurand::SystolicBp, Some(70.0), t(100), CLEAN)
                .len(),
            1,
            "the same time is not late"
        );
    }

    #[test]
    fn hypoglycaemia_escalates_from_level_1_to_level_2_as_one_alarm() {
        let mut mon = monitor();
        let mut book = AlarmBook::default();
        let mut events = Vec::new();
        for (i, v) in [65.0, 60.0, 53.0, 50.0, 60.0, 80.0].into_iter().enumerate() {
            let at = t(i as i64 * 300);
            for c in mon.observe(Measurand::Glucose, Some(v), at, CLEAN) {
                events.extend(book.apply(&c, at));
            }
        }
        let kinds: Vec<_> = events.iter().map(|c| c.event.kind).collect();
        use AlarmEventKind as E;
        assert_eq!(kinds, vec![E::Raised, E::Escalated, E::ConditionCleared]);
        // Escalated to high, it latched when glucose recovered.
        let alarm = &events[2].alarm;
        assert_eq!(alarm.priority, Priority::High);
        assert_eq!(alarm.state, AlarmState::Active);
        assert!(!alarm.condition_present);
    }

    /// Journey 2 and Nadia's rule: acknowledged stays quiet until it truly worsens.
    #[test]
    fn acknowledged_desaturation_re_alarms_only_when_worse() {
        let mut mon = monitor();
        let mut book = AlarmBook::default();
        let feed = |mon: &mut ThresholdMonitor, book: &mut AlarmBook, v: f64, s: i64| {
            mon.observe(Measurand::Spo2, Some(v), t(s), CLEAN)
                .iter()
                .flat_map(|c| book.apply(c, t(s)))
                .map(|c| c.event.kind)
                .collect::<Vec<_>>()
        };
        let mut raised = Vec::new();
        for s in 0..=100 {
            raised.extend(feed(&mut mon, &mut book, 86.0, s));
        }
        assert_eq!(raised, vec![AlarmEventKind::Raised]);
        let id = book.open().next().unwrap().id;
        book.acknowledge(id, "nadia", t(101)).unwrap();
        for s in 102..200 {
            assert!(feed(&mut mon, &mut book, 84.0, s).is_empty());
        }
        assert_eq!(
            feed(&mut mon, &mut book, 83.0, 200),
            vec![AlarmEventKind::ReAlarmed]
        );
        assert_eq!(
            feed(&mut mon, &mut book, 95.0, 201),
            vec![AlarmEventKind::ConditionCleared]
        );
        book.acknowledge(id, "nadia", t(202)).unwrap();
        assert!(book.is_empty());
    }

    #[test]
    fn a_patient_override_replaces_the_default() {
        let mut mon = monitor();
        // Hypercapnic patient: alarm below 85 % instead of 90 %.
        let copd = MeasurandLimits {
            low: Some(Side::single(85.0, Priority::High, 15, 2.0, 3.0)),
            high: None,
        };
        assert!(
            mon.set_limits(Measurand::Spo2, Some(copd), t(0))
                .unwrap()
                .is_empty()
        );
        for s in 0..60 {
            assert!(
                mon.observe(Measurand::Spo2, Some(88.0), t(s), CLEAN)
                    .is_empty()
            );
        }
        mon.observe(Measurand::Spo2, Some(84.0), t(60), CLEAN);
        assert_eq!(
            mon.observe(Measurand::Spo2, Some(84.0), t(75), CLEAN).len(),
            1
        );
        // Removing the limits of a raised condition clears it.
        let c = mon.set_limits(Measurand::Spo2, None, t(80)).unwrap();
        assert!(matches!(c.as_slice(), [ConditionChange::Cleared { at, .. }] if *at == t(80)));
        assert!(
            mon.observe(Measurand::Spo2, Some(50.0), t(81), CLEAN)
                .is_empty()
        );
    }

    #[test]
    fn invalid_limits_are_refused_with_context() {
        let mon = monitor();
        let side = |limit| Side::single(limit, Priority::Medium, 0, 1.0, 1.0);
        let err = |m, l| mon.clone().set_limits(m, Some(l), t(0)).unwrap_err();
        assert_eq!(
            err(Measurand::Consciousness, MeasurandLimits::default()),
            LimitError::NotNumeric(Measurand::Consciousness)
        );
        let invalid = |bound, problem| LimitError::Invalid {
            measurand: Measurand::HeartRate,
            bound,
            problem,
        };
        let cases = [
            (
                MeasurandLimits {
                    low: Some(Side {
                        tiers: vec![],
                        ..side(40.0)
                    }),
                    high: None,
                },
                invalid(Bound::Low, Problem::NoTier),
            ),
            (
                MeasurandLimits {
                    low: Some(side(f64::NAN)),
                    high: None,
                },
                invalid(Bound::Low, Problem::NotFinite),
            ),
            (
                MeasurandLimits {
                    low: None,
                    high: Some(Side {
                        tiers: vec![
                            Tier {
                                limit: 130.0,
                                priority: Priority::Medium,
                            },
                            Tier {
                                limit: 120.0,
                                priority: Priority::High,
                            },
                        ],
                        ..side(0.0)
                    }),
                },
                invalid(Bound::High, Problem::TiersOutOfOrder),
            ),
            (
                MeasurandLimits {
                    low: None,
                    high: Some(Side {
                        tiers: vec![
                            Tier {
                                limit: 130.0,
                                priority: Priority::High,
                            },
                            Tier {
                                limit: 150.0,
                                priority: Priority::Low,
                            },
                        ],
                        ..side(0.0)
                    }),
                },
                invalid(Bound::High, Problem::TiersOutOfOrder),
            ),
            (
                MeasurandLimits {
                    low: Some(Side {
                        tiers: vec![
                            Tier {
                                limit: 40.0,
                                priority: Priority::Low,
                            };
                            5
                        ],
                        ..side(0.0)
                    }),
                    high: None,
                },
                invalid(Bound::Low, Problem::TooManyTiers(5)),
            ),
            (
                MeasurandLimits {
                    low: Some(Side {
                        hysteresis: -1.0,
                        ..side(40.0)
                    }),
                    high: None,
                },
                invalid(Bound::Low, Problem::BadHysteresis),
            ),
            (
                MeasurandLimits {
                    low: Some(Side {
                        realarm_step: 0.0,
                        ..side(40.0)
                    }),
                    high: None,
                },
                invalid(Bound::Low, Problem::BadRealarmStep),
            ),
            (
                MeasurandLimits {
                    low: Some(Side {
                        hysteresis: 30.0,
                        ..side(100.0)
                    }),
                    high: Some(side(120.0)),
                },
                LimitError::Overlap(Measurand::HeartRate),
            ),
        ];
        for (limits, expected) in cases {
            assert_eq!(err(Measurand::HeartRate, limits), expected);
        }
        // Deserialising validates too, and refuses unknown fields.
        let bad =
            r#"{"heart_rate":{"low":{"tiers":[],"delay_secs":0,"hysteresis":1,"realarm_step":1}}}"#;
        assert!(serde_json::from_str::<Limits>(bad).is_err());
        let unknown = r#"{"heart_rate":{"low":null,"high":null,"middle":1}}"#;
        assert!(serde_json::from_str::<Limits>(unknown).is_err());
        let ok = r#"{"heart_rate":{"low":{"tiers":[{"limit":45,"priority":"high"}],"delay_secs":5,"hysteresis":5,"realarm_step":5}}}"#;
        assert!(serde_json::from_str::<Limits>(ok).is_ok());
    }

    #[test]
    fn a_restarted_monitor_continues_a_pending_delay() {
        let mut mon = monitor();
        for s in 0..10 {
            mon.observe(Measurand::Spo2, Some(88.0), t(s), CLEAN);
        }
        let json = serde_json::to_string(&mon).unwrap();
        let mut restored: ThresholdMonitor = serde_json::from_str(&json).unwrap();
        assert_eq!(restored, mon);
        assert!(
            restored
                .observe(Measurand::Spo2, Some(88.0), t(14), CLEAN)
                .is_empty()
        );
        assert_eq!(
            restored
                .observe(Measurand::Spo2, Some(88.0), t(15), CLEAN)
                .len(),
            1
        );
    }

    fn observation(code: ObservationCode, value: ObservationValue) -> Observation {
        Observation {
            id: ObservationId(1),
            patient: PatientId::new("bed-1").unwrap(),
            device: DeviceId::new("mon-1").unwrap(),
            code,
            value,
            effective: t(0),
            received: t(0),
            status: ObservationStatus::Final,
            quality: CLEAN,
        }
    }

    #[test]
    fn observations_feed_the_monitor() {
        let bp = observation(
            ObservationCode::BloodPressure,
            ObservationValue::Components(vec![
                ObservationComponent {
                    measurand: Measurand::SystolicBp,
                    value: Quantity::new(85.0, "mm[Hg]"),
                },
                ObservationComponent {
                    measurand: Measurand::DiastolicBp,
                    value: Quantity::new(50.0, "mm[Hg]"),
                },
            ]),
        );
        let c = monitor().observe_observation(&bp);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].key().condition, "threshold:systolic_bp:low");

        let glucose = |unit: &str, status| Observation {
            status,
            ..observation(
                ObservationCode::Single(Measurand::Glucose),
                ObservationValue::Quantity(Quantity::new(3.0, unit)),
            )
        };
        assert_eq!(
            monitor()
                .observe_observation(&glucose("mg/dL", ObservationStatus::Final))
                .len(),
            1,
            "3 mg/dL is plausible (from 1 mg/dL) and far below 54"
        );
        assert!(
            monitor()
                .observe_observation(&glucose("mmol/L", ObservationStatus::Final))
                .is_empty(),
            "a value in another unit is never compared with mg/dL limits"
        );
        assert!(
            monitor()
                .observe_observation(&glucose("mg/dL", ObservationStatus::EnteredInError))
                .is_empty()
        );
        let acvpu = observation(
            ObservationCode::Single(Measurand::Consciousness),
            ObservationValue::Acvpu(vigil_model::Acvpu::Pain),
        );
        assert!(monitor().observe_observation(&acvpu).is_empty());
    }

    proptest! {
        /// For any SpO2 stream with artifacts and gaps: artifacts never change anything, a raise
        /// always follows at least 15 s of uninterrupted valid readings below 90 %, a clear always
        /// comes from a valid reading at or above 92 %, and raises and clears alternate.
        #[test]
        fn delay_hysteresis_and_artifacts_hold_for_any_stream(
            stream in proptest::collection::vec((600..1000i32, 0..10u8, 1..8i64), 1..300)
        ) {
            let mut mon = monitor();
            let mut now = 0;
            let mut history: Vec<(i64, f64, bool)> = Vec::new();
            let mut raised = false;
            for (tenths, q, step) in stream {
                now += step;
                let v = f64::from(tenths) / 10.0;
                let flag = match q { 0 => QualityFlags::ARTIFACT, 1 => QualityFlags::QUESTIONABLE, _ => CLEAN };
                let valid = flag.is_empty();
                history.push((now, v, valid));
                let changes = mon.observe(Measurand::Spo2, Some(v), t(now), flag);
                if !valid {
                    prop_assert!(changes.is_empty());
                }
                prop_assert!(changes.len() <= 1);
                match changes.first() {
                    Some(ConditionChange::Present { .. }) if !raised => {
                        raised = true;
                        // Walk back over the uninterrupted run of valid readings below 90.
                        let run_start = history
                            .iter()
                            .rev()
                            .take_while(|(_, v, ok)| *ok && *v < 90.0)
                            .last()
                            .map(|(s, _, _)| *s);
                        prop_assert!(run_start.is_some_and(|s| now - s >= 15), "raised at {now} after run from {run_start:?}");
                    }
                    Some(ConditionChange::Present { .. }) => prop_assert!(v < 90.0),
                    Some(ConditionChange::Cleared { .. }) => {
                        prop_assert!(raised);
                        prop_assert!(valid && v >= 92.0);
                        raised = false;
                    }
                    None => {}
                }
                prop_assert_eq!(raised, mon.is_raised(Measurand::Spo2, Bound::Low));
            }
        }
    }
}
