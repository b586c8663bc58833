//! Trend alarm conditions: how fast a value changes, where its fitted trend will be soon, and how
//! far it drifted over days. Evaluated reading by reading, per patient, in bounded memory.
//!
//! # Rules and defaults ([`TrendRules::defaults`])
//!
//! | Condition id | Rule | Priority | Source / rationale |
//! |---|---|---|---|
//! | `trend:glucose:falling` | least-squares slope of the last 15 min (≥ 3 readings spanning ≥ 10 min) below −2 mg/dL/min; clears at ≥ −1.5 | medium | CGM trend arrows (a falling arrow is 2–3 mg/dL/min, a double arrow faster), the issue's figure. |
//! | `trend:glucose:predicted-low` | the same fit, extended 20 min ahead, below 54 mg/dL while falling; clears at ≥ 59 or when no longer falling | medium | CGM "urgent low soon" alerts predict level 2 hypoglycaemia (ADA, < 54 mg/dL) about 20 min ahead. Harm that could be severe but is not yet present: Table 1 of IEC 60601-1-8 gives medium for a delayed onset. |
//! | `trend:weight:gain` | latest weight more than 2.0 kg above the **lowest** weight of the last 72 h (inclusive); clears at ≤ 1.5 kg | medium | Heart-failure self-care rule: report a weight gain of more than 2 kg in 3 days (ESC Heart Failure Guidelines 2016/2021, patient self-care recommendations), a standard remote-monitoring heuristic for fluid retention. |
//!
//! **Lowest, not earliest**, for drift: comparing with the earliest weight of the window misses a
//! gain that follows a dip (81 → 80 → 82.1 kg is +2.1 kg from the lowest but only +1.1 kg from the
//! earliest), and the congestion the rule looks for starts from the patient's dry weight, which
//! the lowest recent weight approximates best. Drift compares in hundredths of the unit, so
//! exactly 2.0 kg never alarms however the floats fall.
//!
//! # Bounded memory
//!
//! Per patient, one series per measurand that some rule uses, holding the points of the longest
//! window among those rules (defaults: glucose 15 min, weight 72 h), and never more than
//! [`MAX_POINTS`] points (the oldest go first). Windows are at most [`MAX_WINDOW_SECS`] (7 days).
//!
//! # Evidence
//!
//! Readings flagged `ARTIFACT` or `QUESTIONABLE`, implausible, non-finite or missing are left out
//! of every fit; a reading not newer than the latest kept for its measurand (a late backlog, a
//! duplicate) is ignored. A rule without enough points neither raises nor clears: too little data
//! is never taken as normal. Conditions are reported on transitions only (raised, cleared), with
//! no [`crate::alarm::Worsening`]: an acknowledged trend alarm stays quiet until it clears.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use chrono::TimeDelta;
use serde::{Deserialize, Serialize};
use vigil_model::{Instant, Measurand, PatientId, QualityFlags, ValueKind};

use crate::alarm::{AlarmKind, ConditionChange, ConditionKey, Direction, Priority, Trigger};

/// The most points kept per measurand: a 15-minute window of a 1 Hz signal fits (901 points).
pub const MAX_POINTS: usize = 1024;
/// The longest window a rule may use: 7 days.
pub const MAX_WINDOW_SECS: u32 = 7 * 24 * 3600;
/// The most rules of each kind.
pub const MAX_RULES: usize = 16;

const EPSILON: f64 = 1e-9;

/// Rate of change: the least-squares slope over a window is faster than `per_min`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateRule {
    pub measurand: Measurand,
    /// `Down`: falling faster than `per_min`; `Up`: rising faster.
    pub direction: Direction,
    /// Canonical unit per minute, > 0.
    pub per_min: f64,
    pub window_secs: u32,
    /// Fewest points for a fit (≥ 2).
    pub min_points: u32,
    /// Shortest time the points must span.
    pub min_span_secs: u32,
    /// The rate must fall back below `per_min - hysteresis_per_min` to clear.
    pub hysteresis_per_min: f64,
    pub priority: Priority,
}

/// Predicted crossing: the fitted trend, extended `horizon_secs` past the latest point, is beyond
/// `limit` while moving towards it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PredictRule {
    pub measurand: Measurand,
    /// `Down`: predicted to fall below `limit`; `Up`: to rise above it.
    pub direction: Direction,
    pub limit: f64,
    pub horizon_secs: u32,
    pub window_secs: u32,
    pub min_points: u32,
    pub min_span_secs: u32,
    /// The prediction must be this far back inside the limit to clear.
    pub hysteresis: f64,
    pub priority: Priority,
}

/// Slow drift: the latest value moved more than `change` from the most extreme value of the window
/// in the other direction (the lowest for `Up`, the highest for `Down`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DriftRule {
    pub measurand: Measurand,
    /// `Up`: a gain; `Down`: a loss.
    pub direction: Direction,
    /// Canonical unit, > 0; the drift must exceed it.
    pub change: f64,
    pub window_secs: u32,
    /// The drift must fall to `change - hysteresis` or less to clear.
    pub hysteresis: f64,
    pub priority: Priority,
}

/// A patient's trend rules; validated whenever built or deserialised.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(try_from = "UncheckedRules")]
pub struct TrendRules {
    pub rate: Vec<RateRule>,
    pub predict: Vec<PredictRule>,
    pub drift: Vec<DriftRule>,
}

/// Trend rules as written, before validation.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UncheckedRules {
    #[serde(default)]
    rate: Vec<RateRule>,
    #[serde(default)]
    predict: Vec<PredictRule>,
    #[serde(default)]
    drift: Vec<DriftRule>,
}

impl TryFrom<UncheckedRules> for TrendRules {
    type Error = TrendError;
    fn try_from(raw: UncheckedRules) -> Result<Self, TrendError> {
        let rules = TrendRules {
            rate: raw.rate,
            predict: raw.predict,
            drift: raw.drift,
        };
        rules.validate()?;
        Ok(rules)
    }
}

/// Why trend rules were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrendError {
    #[error("{0:?} is not a numeric measurand")]
    NotNumeric(Measurand),
    #[error("rule {0}: a threshold, limit or hysteresis is out of range")]
    BadValue(String),
    #[error("rule {0}: the window must be 1 s to {MAX_WINDOW_SECS} s and cover the minimum span")]
    BadWindow(String),
    #[error("rule {0}: a fit needs at least 2 points")]
    TooFewPoints(String),
    #[error("rule {0} appears twice")]
    Duplicate(String),
    #[error("more than {MAX_RULES} rules of one kind")]
    TooManyRules,
}

fn word(direction: Direction, down: &'static str, up: &'static str) -> &'static str {
    match direction {
        Direction::Down => down,
        Direction::Up => up,
    }
}

impl RateRule {
    pub fn condition_id(&self) -> String {
        let w = word(self.direction, "falling", "rising");
        format!("trend:{}:{w}", self.measurand.short_name())
    }
}

impl PredictRule {
    pub fn condition_id(&self) -> String {
        let w = word(self.direction, "predicted-low", "predicted-high");
        format!("trend:{}:{w}", self.measurand.short_name())
    }
}

impl DriftRule {
    pub fn condition_id(&self) -> String {
        let w = word(self.direction, "loss", "gain");
        format!("trend:{}:{w}", self.measurand.short_name())
    }
}

impl TrendRules {
    /// No trend rules.
    pub fn none() -> Self {
        TrendRules::default()
    }

    /// The defaults of the module's table.
    pub fn defaults() -> Self {
        TrendRules {
            rate: vec![RateRule {
                measurand: Measurand::Glucose,
                direction: Direction::Down,
                per_min: 2.0,
                window_secs: 15 * 60,
                min_points: 3,
                min_span_secs: 10 * 60,
                hysteresis_per_min: 0.5,
                priority: Priority::Medium,
            }],
            predict: vec![PredictRule {
                measurand: Measurand::Glucose,
                direction: Direction::Down,
                limit: 54.0,
                horizon_secs: 20 * 60,
                window_secs: 15 * 60,
                min_points: 3,
                min_span_secs: 10 * 60,
                hysteresis: 5.0,
                priority: Priority::Medium,
            }],
            drift: vec![DriftRule {
                measurand: Measurand::Weight,
                direction: Direction::Up,
                change: 2.0,
                window_secs: 72 * 3600,
                hysteresis: 0.5,
                priority: Priority::Medium,
            }],
        }
    }

    /// Checks every rule, and that no condition id is used twice.
    pub fn validate(&self) -> Result<(), TrendError> {
        if self.rate.len() > MAX_RULES
            || self.predict.len() > MAX_RULES
            || self.drift.len() > MAX_RULES
        {
            return Err(TrendError::TooManyRules);
        }
        let positive = |x: f64| x.is_finite() && x > 0.0;
        let hysteresis_ok = |h: f64, of: f64| h.is_finite() && h >= 0.0 && h < of;
        let window_ok = |w: u32, span: u32| (1..=MAX_WINDOW_SECS).contains(&w) && span <= w;
        let mut ids = BTreeSet::new();
        let mut check = |m: Measurand, id: String, value_ok: bool, window: bool, points: u32| {
            if m.value_kind() != ValueKind::Quantity {
                return Err(TrendError::NotNumeric(m));
            }
            if !value_ok {
                return Err(TrendError::BadValue(id));
            }
            if !window {
                return Err(TrendError::BadWindow(id));
            }
            if points < 2 {
                return Err(TrendError::TooFewPoints(id));
            }
            if !ids.insert(id.clone()) {
                return Err(TrendError::Duplicate(id));
            }
            Ok(())
        };
        for r in &self.rate {
            check(
                r.measurand,
                r.condition_id(),
                positive(r.per_min) && hysteresis_ok(r.hysteresis_per_min, r.per_min),
                window_ok(r.window_secs, r.min_span_secs),
                r.min_points,
            )?;
        }
        for r in &self.predict {
            check(
                r.measurand,
                r.condition_id(),
                r.limit.is_finite() && r.hysteresis.is_finite() && r.hysteresis >= 0.0,
                window_ok(r.window_secs, r.min_span_secs) && r.horizon_secs > 0,
                r.min_points,
            )?;
        }
        for r in &self.drift {
            check(
                r.measurand,
                r.condition_id(),
                positive(r.change) && hysteresis_ok(r.hysteresis, r.change),
                window_ok(r.window_secs, 0),
                2,
            )?;
        }
        Ok(())
    }

    /// How long the points of `measurand` must be kept: the longest window using it.
    fn retention(&self, measurand: Measurand) -> Option<TimeDelta> {
        let rate = self
            .rate
            .iter()
            .filter(|r| r.measurand == measurand)
            .map(|r| r.window_secs);
        let predict = self
            .predict
            .iter()
            .filter(|r| r.measurand == measurand)
            .map(|r| r.window_secs);
        let drift = self
            .drift
            .iter()
            .filter(|r| r.measurand == measurand)
            .map(|r| r.window_secs);
        rate.chain(predict)
            .chain(drift)
            .max()
            .map(|s| TimeDelta::seconds(i64::from(s)))
    }
}

/// A least-squares line through a window's points.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fit {
    /// Canonical unit per minute.
    pub slope_per_min: f64,
    /// The line's value at the latest point's time.
    pub value_at_latest: f64,
    pub points: usize,
    pub span: TimeDelta,
}

/// Fits a line to `points` (time order) by ordinary least squares; `None` with fewer than two
/// distinct times.
pub fn fit(points: &[(Instant, f64)]) -> Option<Fit> {
    let (first, _) = *points.first()?;
    let (last, _) = *points.last()?;
    let minutes = |at: Instant| (at - first).num_milliseconds() as f64 / 60_000.0;
    let n = points.len() as f64;
    let mean_x = points.iter().map(|(at, _)| minutes(*at)).sum::<f64>() / n;
    let mean_y = points.iter().map(|(_, v)| v).sum::<f64>() / n;
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for (at, v) in points {
        let dx = minutes(*at) - mean_x;
        sxy += dx * (v - mean_y);
        sxx += dx * dx;
    }
    if sxx <= 0.0 {
        return None;
    }
    let slope = sxy / sxx;
    Some(Fit {
        slope_per_min: slope,
        value_at_latest: mean_y + slope * (minutes(last) - mean_x),
        points: points.len(),
        span: last - first,
    })
}

/// One patient's trend conditions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrendMonitor {
    patient: PatientId,
    rules: TrendRules,
    series: BTreeMap<Measurand, VecDeque<(Instant, f64)>>,
    /// Condition ids currently raised.
    raised: BTreeSet<String>,
}

impl TrendMonitor {
    pub fn new(patient: PatientId, rules: TrendRules) -> Result<Self, TrendError> {
        rules.validate()?;
        Ok(TrendMonitor {
            patient,
            rules,
            series: BTreeMap::new(),
            raised: BTreeSet::new(),
        })
    }

    pub fn patient(&self) -> &PatientId {
        &self.patient
    }

    pub fn rules(&self) -> &TrendRules {
        &self.rules
    }

    pub fn is_raised(&self, condition_id: &str) -> bool {
        self.raised.contains(condition_id)
    }

    /// The points kept for a measurand, oldest first.
    pub fn points(&self, measurand: Measurand) -> impl Iterator<Item = &(Instant, f64)> {
        self.series.get(&measurand).into_iter().flatten()
    }

    /// Replaces the rules. Raised conditions whose rule is gone clear at `at`; kept points stay.
    pub fn set_rules(
        &mut self,
        rules: TrendRules,
        at: Instant,
    ) -> Result<Vec<ConditionChange>, TrendError> {
        rules.validate()?;
        let ids: BTreeSet<String> = rules
            .rate
            .iter()
            .map(RateRule::condition_id)
            .chain(rules.predict.iter().map(PredictRule::condition_id))
            .chain(rules.drift.iter().map(DriftRule::condition_id))
            .collect();
        let gone: Vec<String> = self.raised.difference(&ids).cloned().collect();
        self.rules = rules;
        let measurands: Vec<Measurand> = self.series.keys().copied().collect();
        for m in measurands {
            if self.rules.retention(m).is_none() {
                self.series.remove(&m);
            }
        }
        Ok(gone
            .into_iter()
            .map(|id| {
                self.raised.remove(&id);
                ConditionChange::Cleared {
                    key: ConditionKey::patient(self.patient.clone(), id),
                    at,
                }
            })
            .collect())
    }

    /// Adds one reading (canonical unit) and evaluates the rules of its measurand.
    pub fn observe(
        &mut self,
        measurand: Measurand,
        value: Option<f64>,
        at: Instant,
        quality: QualityFlags,
    ) -> Vec<ConditionChange> {
        let Some(retention) = self.rules.retention(measurand) else {
            return Vec::new();
        };
        let range = measurand.plausible();
        let Some(value) = value.filter(|v| {
            v.is_finite()
                && *v >= range.min
                && *v <= range.max
                && !quality.contains(QualityFlags::ARTIFACT)
                && !quality.contains(QualityFlags::QUESTIONABLE)
        }) else {
            return Vec::new();
        };
        let series = self.series.entry(measurand).or_default();
        if series.back().is_some_and(|(last, _)| at <= *last) {
            return Vec::new();
        }
        series.push_back((at, value));
        while series.front().is_some_and(|(t, _)| at - *t > retention) || series.len() > MAX_POINTS
        {
            series.pop_front();
        }
        let points: &[(Instant, f64)] = series.make_contiguous();
        let in_window = |window_secs: u32| {
            let from = at - TimeDelta::seconds(i64::from(window_secs));
            let start = points.partition_point(|(t, _)| *t < from);
            &points[start..]
        };
        let mut verdicts: Vec<(String, Verdict)> = Vec::new();
        let label = measurand.short_name();
        let unit = measurand.unit_display();
        for rule in self.rules.rate.iter().filter(|r| r.measurand == measurand) {
            let verdict = match enough(
                in_window(rule.window_secs),
                rule.min_points,
                rule.min_span_secs,
            ) {
                None => Verdict::Keep,
                Some(f) => {
                    let speed = match rule.direction {
                        Direction::Down => -f.slope_per_min,
                        Direction::Up => f.slope_per_min,
                    };
                    if speed > rule.per_min + EPSILON {
                        Verdict::Raise(trigger(
                            rule.priority,
                            format!(
                                "{label} {} {:.1} {unit}/min over the last {} min",
                                word(rule.direction, "falling", "rising"),
                                speed,
                                rule.window_secs / 60
                            ),
                            f.slope_per_min,
                        ))
                    } else if speed <= rule.per_min - rule.hysteresis_per_min + EPSILON {
                        Verdict::Clear
                    } else {
                        Verdict::Keep
                    }
                }
            };
            verdicts.push((rule.condition_id(), verdict));
        }
        for rule in self
            .rules
            .predict
            .iter()
            .filter(|r| r.measurand == measurand)
        {
            let verdict = match enough(
                in_window(rule.window_secs),
                rule.min_points,
                rule.min_span_secs,
            ) {
                None => Verdict::Keep,
                Some(f) => {
                    let horizon_min = f64::from(rule.horizon_secs) / 60.0;
                    let predicted = f.value_at_latest + f.slope_per_min * horizon_min;
                    let (towards, beyond, back) = match rule.direction {
                        Direction::Down => (
                            f.slope_per_min < 0.0,
                            predicted < rule.limit - EPSILON,
                            predicted >= rule.limit + rule.hysteresis - EPSILON,
                        ),
                        Direction::Up => (
                            f.slope_per_min > 0.0,
                            predicted > rule.limit + EPSILON,
                            predicted <= rule.limit - rule.hysteresis + EPSILON,
                        ),
                    };
                    if towards && beyond {
                        let minutes = ((rule.limit - f.value_at_latest) / f.slope_per_min).max(0.0);
                        Verdict::Raise(trigger(
                            rule.priority,
                            format!(
                                "{label} predicted {} {} {unit} in about {:.0} min",
                                word(rule.direction, "below", "above"),
                                rule.limit,
                                minutes
                            ),
                            predicted,
                        ))
                    } else if !towards || back {
                        Verdict::Clear
                    } else {
                        Verdict::Keep
                    }
                }
            };
            verdicts.push((rule.condition_id(), verdict));
        }
        for rule in self.rules.drift.iter().filter(|r| r.measurand == measurand) {
            let window = in_window(rule.window_secs);
            let hundredths = |x: f64| (x * 100.0).round() as i64;
            let latest = hundredths(value);
            let values = window.iter().map(|(_, v)| hundredths(*v));
            let (reference, drift) = match rule.direction {
                Direction::Up => {
                    let min = values.min().unwrap_or(latest);
                    (min, latest - min)
                }
                Direction::Down => {
                    let max = values.max().unwrap_or(latest);
                    (max, max - latest)
                }
            };
            let verdict = if window.len() < 2 {
                Verdict::Keep
            } else if drift > hundredths(rule.change) {
                Verdict::Raise(trigger(
                    rule.priority,
                    format!(
                        "{label} {} {:.2} {unit} within {} h (from {:.2} {unit})",
                        word(rule.direction, "down", "up"),
                        drift as f64 / 100.0,
                        rule.window_secs / 3600,
                        reference as f64 / 100.0
                    ),
                    drift as f64 / 100.0,
                ))
            } else if drift <= hundredths(rule.change - rule.hysteresis) {
                Verdict::Clear
            } else {
                Verdict::Keep
            };
            verdicts.push((rule.condition_id(), verdict));
        }
        let mut changes = Vec::new();
        for (id, verdict) in verdicts {
            let key = || ConditionKey::patient(self.patient.clone(), id.clone());
            match verdict {
                Verdict::Raise(trigger) if !self.raised.contains(&id) => {
                    self.raised.insert(id.clone());
                    changes.push(ConditionChange::Present {
                        key: key(),
                        trigger,
                        at,
                    });
                }
                Verdict::Clear if self.raised.contains(&id) => {
                    self.raised.remove(&id);
                    changes.push(ConditionChange::Cleared { key: key(), at });
                }
                _ => {}
            }
        }
        changes
    }
}

/// One rule's judgement of the latest data.
enum Verdict {
    Raise(Trigger),
    Clear,
    /// Between the raise and the clear thresholds, or too little data: no change.
    Keep,
}

/// A fit of the window's points when there are enough of them over a long enough span.
fn enough(points: &[(Instant, f64)], min_points: u32, min_span_secs: u32) -> Option<Fit> {
    let f = fit(points)?;
    (f.points >= min_points as usize && f.span >= TimeDelta::seconds(i64::from(min_span_secs)))
        .then_some(f)
}

fn trigger(priority: Priority, message: String, value: f64) -> Trigger {
    Trigger {
        priority,
        kind: AlarmKind::Physiological,
        message,
        value: Some(value),
        worsening: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alarm::{AlarmBook, AlarmEventKind};
    use chrono::{TimeZone, Utc};
    use proptest::prelude::*;

    fn t(secs: i64) -> Instant {
        Utc.with_ymd_and_hms(2026, 11, 21, 10, 0, 0).unwrap() + TimeDelta::seconds(secs)
    }
    fn min(m: i64) -> Instant {
        t(m * 60)
    }
    fn hours(h: i64) -> Instant {
        t(h * 3600)
    }
    fn monitor() -> TrendMonitor {
        TrendMonitor::new(PatientId::new("havel").unwrap(), TrendRules::defaults()).unwrap()
    }
    const CLEAN: QualityFlags = QualityFlags::empty();
    const FALLING: &str = "trend:glucose:falling";
    const PREDICTED: &str = "trend:glucose:predicted-low";
    const GAIN: &str = "trend:weight:gain";

    /// Feeds glucose values 5 minutes apart from `start` (minutes); returns (condition, present).
    fn glucose(mon: &mut TrendMonitor, start: i64, values: &[f64]) -> Vec<(String, bool)> {
        values
            .iter()
            .enumerate()
            .flat_map(|(i, v)| {
                mon.observe(
                    Measurand::Glucose,
                    Some(*v),
                    min(start + 5 * i as i64),
                    CLEAN,
                )
            })
            .map(|c| (c.key().condition.clone(), c.is_present()))
            .collect()
    }

    #[test]
    fn a_least_squares_fit_of_a_line_is_the_line() {
        let points: Vec<_> = (0..4)
            .map(|i| (min(5 * i), 100.0 - 10.0 * i as f64))
            .collect();
        let f = fit(&points).unwrap();
        assert_eq!(f.slope_per_min, -2.0);
        assert_eq!(f.value_at_latest, 70.0);
        assert_eq!(f.points, 4);
        assert_eq!(f.span, TimeDelta::minutes(15));
        // Noise around the line: the fit goes through the middle.
        let noisy = [
            (min(0), 101.0),
            (min(5), 89.0),
            (min(10), 81.0),
            (min(15), 69.0),
        ];
        let f = fit(&noisy).unwrap();
        assert!((f.slope_per_min + 2.08).abs() < 1e-9, "{}", f.slope_per_min);
        assert!(fit(&[(min(0), 1.0)]).is_none());
        assert!(fit(&[(min(0), 1.0), (min(0), 2.0)]).is_none());
        assert!(fit(&[]).is_none());
    }

    #[test]
    fn glucose_falling_at_exactly_2_per_minute_does_not_alarm_faster_does() {
        // -2.0 mg/dL/min: the limit itself.
        let mut mon = monitor();
        assert!(glucose(&mut mon, 0, &[160.0, 150.0, 140.0, 130.0]).is_empty());
        // -1.9: inside.
        let mut mon = monitor();
        assert!(glucose(&mut mon, 0, &[160.0, 150.5, 141.0, 131.5]).is_empty());
        // -2.1: beyond, raised at the third reading (3 points spanning 10 min).
        let mut mon = monitor();
        assert!(glucose(&mut mon, 0, &[160.0, 149.5]).is_empty());
        assert_eq!(
            glucose(&mut mon, 10, &[139.0]),
            vec![(FALLING.into(), true)]
        );
        assert!(mon.is_raised(FALLING));
        assert!(glucose(&mut mon, 15, &[128.5]).is_empty(), "raised once");
    }

    #[test]
    fn a_rate_needs_enough_points_over_enough_time() {
        // Two readings falling 10 mg/dL/min: not a trend yet.
        let mut mon = monitor();
        mon.observe(Measurand::Glucose, Some(200.0), min(0), CLEAN);
        assert!(
            mon.observe(Measurand::Glucose, Some(150.0), min(5), CLEAN)
                .is_empty()
        );
        // Three within four minutes: too short a span.
        let mut mon = monitor();
        for (m, v) in [(0, 200.0), (2, 180.0), (4, 160.0)] {
            assert!(
                mon.observe(Measurand::Glucose, Some(v), min(m), CLEAN)
                    .is_empty()
            );
        }
    }

    #[test]
    fn a_falling_rate_clears_with_hysteresis() {
        let mut mon = TrendMonitor::new(
            PatientId::new("p").unwrap(),
            TrendRules {
                rate: TrendRules::defaults().rate,
                ..TrendRules::none()
            },
        )
        .unwrap();
        assert_eq!(
            glucose(&mut mon, 0, &[200.0, 185.0, 170.0]),
            vec![(FALLING.into(), true)]
        );
        // The 15-minute window holds four 5-minute readings (both ends included).
        // 5–20 min: 185, 170, 162, 154 → -2.02: still raised.
        assert!(glucose(&mut mon, 15, &[162.0, 154.0]).is_empty());
        // 10–25 min: 170, 162, 154, 146 → -1.6: slower than 2, not yet back to 1.5.
        assert!(glucose(&mut mon, 25, &[146.0]).is_empty());
        // 15–30 min ending at 139.5 → -1.51: still raised; ending at 140 → -1.48: cleared.
        assert!(glucose(&mut mon.clone(), 30, &[139.5]).is_empty());
        assert_eq!(
            glucose(&mut mon, 30, &[140.0]),
            vec![(FALLING.into(), false)]
        );
    }

    #[test]
    fn predicted_level_2_hypoglycaemia_boundaries() {
        // -1 mg/dL/min reaching 74: predicted 54 in 20 min, at the limit: nothing.
        let mut mon = monitor();
        assert!(glucose(&mut mon, 0, &[84.0, 79.0, 74.0]).is_empty());
        // Reaching 73: predicted 53: raised, crossing in about 19 min.
        let mut mon = monitor();
        let c: Vec<ConditionChange> = [(0, 83.0), (5, 78.0), (10, 73.0)]
            .into_iter()
            .flat_map(|(m, v)| mon.observe(Measurand::Glucose, Some(v), min(m), CLEAN))
            .collect();
        assert_eq!(c.len(), 1);
        let ConditionChange::Present { key, trigger, .. } = &c[0] else {
            panic!("{c:?}")
        };
        assert_eq!(key.condition, PREDICTED);
        assert_eq!(trigger.priority, Priority::Medium);
        assert_eq!(
            trigger.message,
            "glucose predicted below 54 mg/dL in about 19 min"
        );
        assert_eq!(trigger.value, Some(53.0));
        // Levelling off: the prediction moves back above 59 → cleared.
        assert_eq!(
            glucose(&mut mon, 15, &[73.0, 73.0]),
            vec![(PREDICTED.into(), false)]
        );
    }

    #[test]
    fn a_rising_glucose_never_predicts_a_low() {
        let mut mon = monitor();
        assert!(glucose(&mut mon, 0, &[40.0, 42.0, 44.0, 46.0]).is_empty());
    }

    #[test]
    fn weight_gain_of_exactly_2_kg_does_not_alarm_more_does() {
        let mut mon = monitor();
        mon.observe(Measurand::Weight, Some(80.0), hours(0), CLEAN);
        assert!(
            mon.observe(Measurand::Weight, Some(82.0), hours(24), CLEAN)
                .is_empty()
        );
        let c = mon.observe(Measurand::Weight, Some(82.1), hours(48), CLEAN);
        assert_eq!(c.len(), 1);
        let ConditionChange::Present { key, trigger, .. } = &c[0] else {
            panic!()
        };
        assert_eq!(key.condition, GAIN);
        assert_eq!(
            trigger.message,
            "weight up 2.10 kg within 72 h (from 80.00 kg)"
        );
        assert_eq!(trigger.value, Some(2.1));
        // Clears at 1.5 kg above the lowest, not before.
        assert!(
            mon.observe(Measurand::Weight, Some(81.6), hours(50), CLEAN)
                .is_empty()
        );
        assert_eq!(
            mon.observe(Measurand::Weight, Some(81.5), hours(52), CLEAN)
                .len(),
            1
        );
        assert!(!mon.is_raised(GAIN));
    }

    #[test]
    fn weight_gain_is_measured_from_the_lowest_not_the_earliest() {
        let mut mon = monitor();
        mon.observe(Measurand::Weight, Some(81.0), hours(0), CLEAN);
        mon.observe(Measurand::Weight, Some(80.0), hours(24), CLEAN);
        assert_eq!(
            mon.observe(Measurand::Weight, Some(82.1), hours(48), CLEAN)
                .len(),
            1,
            "+2.1 kg from the lowest though only +1.1 kg from the earliest"
        );
    }

    #[test]
    fn the_72_hour_window_is_inclusive() {
        let mut mon = monitor();
        mon.observe(Measurand::Weight, Some(80.0), hours(0), CLEAN);
        assert_eq!(
            mon.observe(Measurand::Weight, Some(82.5), hours(72), CLEAN)
                .len(),
            1,
            "a reading exactly 72 h old is in the window"
        );
        let mut mon = monitor();
        mon.observe(Measurand::Weight, Some(80.0), hours(0), CLEAN);
        assert!(
            mon.observe(
                Measurand::Weight,
                Some(82.5),
                hours(72) + TimeDelta::seconds(1),
                CLEAN
            )
            .is_empty(),
            "one second older is out"
        );
        assert_eq!(mon.points(Measurand::Weight).count(), 1, "and forgotten");
    }

    /// Journey 4: Mr Havel gains 2.3 kg in three days; the programme's nurse gets a medium alarm.
    #[test]
    fn heart_failure_weight_gain_raises_a_medium_alarm() {
        let mut mon = monitor();
        let mut book = AlarmBook::default();
        let mut events = Vec::new();
        for (day, kg) in [(0, 78.0), (1, 78.4), (2, 79.1), (3, 80.3), (4, 80.4)] {
            let at = hours(24 * day + 7);
            for c in mon.observe(Measurand::Weight, Some(kg), at, CLEAN) {
                events.extend(book.apply(&c, at));
            }
        }
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].event.kind, AlarmEventKind::Raised);
        assert_eq!(events[0].event.at, hours(24 * 3 + 7));
        assert_eq!(events[0].alarm.priority, Priority::Medium);
        assert_eq!(
            events[0].alarm.message,
            "weight up 2.30 kg within 72 h (from 78.00 kg)"
        );
    }

    #[test]
    fn artifacts_late_and_missing_readings_are_left_out() {
        let mut mon = monitor();
        for (m, v) in [(0, 200.0), (5, 150.0), (10, 100.0)] {
            for q in [QualityFlags::ARTIFACT, QualityFlags::QUESTIONABLE] {
                assert!(
                    mon.observe(Measurand::Glucose, Some(v), min(m), q)
                        .is_empty()
                );
            }
            assert!(
                mon.observe(Measurand::Glucose, None, min(m), CLEAN)
                    .is_empty()
            );
            assert!(
                mon.observe(Measurand::Glucose, Some(f64::NAN), min(m), CLEAN)
                    .is_empty()
            );
        }
        assert_eq!(mon.points(Measurand::Glucose).count(), 0);
        mon.observe(Measurand::Glucose, Some(120.0), min(20), CLEAN);
        assert!(
            mon.observe(Measurand::Glucose, Some(300.0), min(15), CLEAN)
                .is_empty()
        );
        assert!(
            mon.observe(Measurand::Glucose, Some(300.0), min(20), CLEAN)
                .is_empty()
        );
        assert_eq!(mon.points(Measurand::Glucose).count(), 1);
        // Measurands no rule uses are not kept at all.
        mon.observe(Measurand::HeartRate, Some(70.0), min(20), CLEAN);
        assert_eq!(mon.points(Measurand::HeartRate).count(), 0);
    }

    #[test]
    fn memory_is_bounded_by_window_and_count() {
        let mut mon = monitor();
        for s in 0..5_000 {
            mon.observe(Measurand::Glucose, Some(100.0), t(s), CLEAN);
        }
        let kept: Vec<_> = mon.points(Measurand::Glucose).collect();
        assert_eq!(
            kept.len(),
            15 * 60 + 1,
            "15 min of 1 Hz readings, both ends included"
        );
        let mut mon = monitor();
        for s in 0..5_000 {
            mon.observe(Measurand::Weight, Some(80.0), t(s), CLEAN);
        }
        assert_eq!(mon.points(Measurand::Weight).count(), MAX_POINTS);
        assert_eq!(
            mon.points(Measurand::Weight).next().map(|p| p.0),
            Some(t(5_000 - MAX_POINTS as i64)),
            "the oldest go first"
        );
    }

    #[test]
    fn rules_are_validated() {
        let d = TrendRules::defaults();
        let mut twice = d.clone();
        twice.drift.push(twice.drift[0].clone());
        assert_eq!(
            twice.validate(),
            Err(TrendError::Duplicate("trend:weight:gain".into()))
        );
        let mut coded = d.clone();
        coded.rate[0].measurand = Measurand::Consciousness;
        assert_eq!(
            coded.validate(),
            Err(TrendError::NotNumeric(Measurand::Consciousness))
        );
        let mut slow = d.clone();
        slow.rate[0].per_min = 0.0;
        assert_eq!(slow.validate(), Err(TrendError::BadValue(FALLING.into())));
        let mut wide = d.clone();
        wide.rate[0].hysteresis_per_min = 2.0;
        assert_eq!(wide.validate(), Err(TrendError::BadValue(FALLING.into())));
        let mut long = d.clone();
        long.drift[0].window_secs = MAX_WINDOW_SECS + 1;
        assert_eq!(long.validate(), Err(TrendError::BadWindow(GAIN.into())));
        let mut span = d.clone();
        span.predict[0].min_span_secs = span.predict[0].window_secs + 1;
        assert_eq!(
            span.validate(),
            Err(TrendError::BadWindow(PREDICTED.into()))
        );
        let mut one = d.clone();
        one.predict[0].min_points = 1;
        assert_eq!(
            one.validate(),
            Err(TrendError::TooFewPoints(PREDICTED.into()))
        );
        let mut many = d.clone();
        many.rate = (0..=MAX_RULES).map(|_| d.rate[0].clone()).collect();
        assert_eq!(many.validate(), Err(TrendError::TooManyRules));
        assert!(TrendMonitor::new(PatientId::new("p").unwrap(), twice).is_err());
        // Deserialising validates, and refuses unknown fields.
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(serde_json::from_str::<TrendRules>(&json).unwrap(), d);
        let bad = json.replace("\"per_min\":2.0", "\"per_min\":-2.0");
        assert!(serde_json::from_str::<TrendRules>(&bad).is_err());
        assert!(serde_json::from_str::<TrendRules>(r#"{"drift":[],"sideways":[]}"#).is_err());
        assert_eq!(
            serde_json::from_str::<TrendRules>(r#"{"drift":[]}"#).unwrap(),
            TrendRules::none()
        );
    }

    #[test]
    fn removing_a_rule_clears_its_raised_condition() {
        let mut mon = monitor();
        mon.observe(Measurand::Weight, Some(80.0), hours(0), CLEAN);
        mon.observe(Measurand::Weight, Some(83.0), hours(24), CLEAN);
        assert!(mon.is_raised(GAIN));
        let c = mon
            .set_rules(
                TrendRules {
                    drift: vec![],
                    ..TrendRules::defaults()
                },
                hours(25),
            )
            .unwrap();
        assert_eq!(c.len(), 1);
        assert!(!c[0].is_present());
        assert_eq!(c[0].key().condition, GAIN);
        assert_eq!(mon.points(Measurand::Weight).count(), 0);
    }

    #[test]
    fn a_restarted_monitor_continues_its_trends() {
        let mut mon = monitor();
        glucose(&mut mon, 0, &[160.0, 149.5]);
        let json = serde_json::to_string(&mon).unwrap();
        let mut restored: TrendMonitor = serde_json::from_str(&json).unwrap();
        assert_eq!(restored, mon);
        assert_eq!(
            glucose(&mut restored, 10, &[139.0]),
            vec![(FALLING.into(), true)]
        );
    }

    proptest! {
        /// The fit recovers any line, whatever the sampling times.
        #[test]
        fn fit_recovers_a_line(
            slope in -10.0..10.0f64,
            intercept in 0.0..500.0f64,
            gaps in proptest::collection::vec(1..600i64, 1..40),
        ) {
            let mut s = 0;
            let mut points = vec![(t(0), intercept)];
            for g in gaps {
                s += g;
                points.push((t(s), intercept + slope * s as f64 / 60.0));
            }
            let f = fit(&points).unwrap();
            prop_assert!((f.slope_per_min - slope).abs() < 1e-6);
            prop_assert!((f.value_at_latest - points[points.len() - 1].1).abs() < 1e-6);
        }

        /// Whatever arrives, memory stays within the window and the cap, and conditions
        /// alternate between raised and cleared.
        #[test]
        fn memory_and_transitions_stay_sane(
            readings in proptest::collection::vec((0..4000i64, 40..400i32, any::<bool>()), 1..300)
        ) {
            let mut mon = monitor();
            let mut raised = BTreeSet::new();
            for (at, v, weight) in readings {
                let m = if weight { Measurand::Weight } else { Measurand::Glucose };
                let at = t(at * if weight { 600 } else { 30 });
                for c in mon.observe(m, Some(f64::from(v)), at, CLEAN) {
                    let id = c.key().condition.clone();
                    prop_assert_eq!(c.is_present(), raised.insert(id.clone()));
                    if !c.is_present() {
                        raised.remove(&id);
                    }
                }
                for (m, window) in [(Measurand::Glucose, 900), (Measurand::Weight, 72 * 3600)] {
                    let pts: Vec<_> = mon.points(m).collect();
                    prop_assert!(pts.len() <= MAX_POINTS);
                    if let (Some(first), Some(last)) = (pts.first(), pts.last()) {
                        prop_assert!(last.0 - first.0 <= TimeDelta::seconds(window));
                    }
                    prop_assert!(pts.windows(2).all(|w| w[0].0 < w[1].0));
                }
            }
        }
    }
}
