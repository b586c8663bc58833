//! NEWS2, the Royal College of Physicians' National Early Warning Score 2 (RCP, December 2017):
//! Chart 1 (the scoring system), Chart 3 (thresholds and triggers) and Chart 4 (clinical response).
//!
//! Input domain (the chart defines only integers for respiration rate, SpO2, systolic pressure and
//! pulse, and tenths of a degree for temperature): values are first rounded to the chart's
//! resolution, half away from zero (90.5 mmHg → 91, 35.05 °C → 35.1), then scored. Temperature is
//! compared as an integer number of tenths, so 36.0 against 36.1 can never fall between floats.
//!
//! A parameter that is missing (or stale, which the caller decides with its freshness window) is
//! never scored as normal: the score is then *incomplete*, names what is missing, and its total and
//! band are lower bounds of what the complete score would be.

use serde::{Deserialize, Serialize};
use vigil_model::Acvpu;

/// Which SpO2 scale applies. Scale 2 is only for patients with confirmed hypercapnic respiratory
/// failure, prescribed by a clinician (target 88–92 %); it is a patient setting, never inferred.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Spo2Scale {
    #[default]
    #[serde(rename = "1")]
    Scale1,
    #[serde(rename = "2")]
    Scale2,
}

impl Spo2Scale {
    pub fn number(self) -> u8 {
        match self {
            Spo2Scale::Scale1 => 1,
            Spo2Scale::Scale2 => 2,
        }
    }
    pub fn from_number(n: u8) -> Option<Spo2Scale> {
        match n {
            1 => Some(Spo2Scale::Scale1),
            2 => Some(Spo2Scale::Scale2),
            _ => None,
        }
    }
}

/// The seven NEWS2 parameters, in chart order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Parameter {
    RespirationRate,
    Spo2,
    AirOrOxygen,
    SystolicBp,
    Pulse,
    Consciousness,
    Temperature,
}

impl Parameter {
    pub const ALL: [Parameter; 7] = [
        Parameter::RespirationRate,
        Parameter::Spo2,
        Parameter::AirOrOxygen,
        Parameter::SystolicBp,
        Parameter::Pulse,
        Parameter::Consciousness,
        Parameter::Temperature,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Parameter::RespirationRate => "respiration_rate",
            Parameter::Spo2 => "spo2",
            Parameter::AirOrOxygen => "air_or_oxygen",
            Parameter::SystolicBp => "systolic_bp",
            Parameter::Pulse => "pulse",
            Parameter::Consciousness => "consciousness",
            Parameter::Temperature => "temperature",
        }
    }
}

/// The latest fresh value of each parameter; `None` when missing or stale.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Inputs {
    /// Breaths per minute.
    pub respiration_rate: Option<f64>,
    /// Percent.
    pub spo2: Option<f64>,
    /// True on supplemental oxygen, false on air.
    pub on_oxygen: Option<bool>,
    /// mmHg.
    pub systolic_bp: Option<f64>,
    /// Beats per minute.
    pub pulse: Option<f64>,
    pub consciousness: Option<Acvpu>,
    /// Degrees Celsius.
    pub temperature: Option<f64>,
}

/// Chart 3 clinical risk, from lowest to highest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Band {
    /// Aggregate 0–4 with no single parameter scoring 3.
    Low,
    /// A single parameter scoring 3 (aggregate at most 4): the "red score".
    LowMedium,
    /// Aggregate 5–6: the urgent response threshold.
    Medium,
    /// Aggregate 7 or more: the emergency response threshold.
    High,
}

impl Band {
    pub fn name(self) -> &'static str {
        match self {
            Band::Low => "low",
            Band::LowMedium => "low-medium",
            Band::Medium => "medium",
            Band::High => "high",
        }
    }

    /// Chart 3 response wording.
    pub fn clinical_risk_response(self) -> &'static str {
        match self {
            Band::Low => "Ward-based response",
            Band::LowMedium => "Urgent ward-based response",
            Band::Medium => "Key threshold for urgent response",
            Band::High => "Urgent or emergency response",
        }
    }
}

/// Chart 4: minimum frequency of monitoring for a total and band.
pub fn monitoring_frequency(total: u8, band: Band) -> &'static str {
    match band {
        Band::High => "Continuous monitoring of vital signs",
        Band::Medium | Band::LowMedium => "Minimum 1-hourly",
        Band::Low if total == 0 => "Minimum 12-hourly",
        Band::Low => "Minimum 4–6-hourly",
    }
}

/// Chart 4: clinical response for a total and band.
pub fn clinical_response(total: u8, band: Band) -> &'static str {
    match band {
        Band::High => {
            "Registered nurse to immediately inform the medical team caring for the patient (at least specialist registrar level); \
             emergency assessment by a team with critical-care competencies, including practitioner(s) with advanced airway management skills; \
             consider transfer of care to a level 2 or 3 clinical care facility; clinical care in an environment with monitoring facilities"
        }
        Band::Medium => {
            "Registered nurse to immediately inform the medical team caring for the patient; \
             registered nurse to request urgent assessment by a clinician or team with core competencies in the care of acutely ill patients; \
             provide clinical care in an environment with monitoring facilities"
        }
        Band::LowMedium => {
            "Registered nurse to inform the medical team caring for the patient, who will review and decide whether escalation of care is necessary"
        }
        Band::Low if total == 0 => "Continue routine NEWS monitoring",
        Band::Low => {
            "Inform the registered nurse, who must assess the patient; \
             the registered nurse decides whether increased frequency of monitoring and/or escalation of care is required"
        }
    }
}

/// A NEWS2 score, complete or not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Score {
    /// Sum of the parameters that could be scored. When incomplete, a lower bound.
    pub total: u8,
    /// Band of `total` (and of any single 3). When incomplete, a lower bound.
    pub band: Band,
    /// True when all seven parameters were scored.
    pub complete: bool,
    /// Per parameter, in chart order; `None` for a parameter that could not be scored.
    pub scores: Vec<(Parameter, Option<u8>)>,
    /// The parameters that could not be scored (missing or stale, or SpO2 ≥ 93 % on scale 2
    /// without knowing whether the patient is on oxygen).
    pub missing: Vec<Parameter>,
    pub scale: Spo2Scale,
}

impl Score {
    pub fn score_of(&self, parameter: Parameter) -> Option<u8> {
        self.scores
            .iter()
            .find(|(p, _)| *p == parameter)
            .and_then(|(_, s)| *s)
    }
}

/// Rounds half away from zero to an integer (the chart's resolution).
fn whole(value: f64) -> i64 {
    value.round() as i64
}

/// Chart 1, respiration rate: ≤8 → 3; 9–11 → 1; 12–20 → 0; 21–24 → 2; ≥25 → 3.
pub fn score_respiration_rate(per_min: f64) -> u8 {
    match whole(per_min) {
        ..=8 => 3,
        9..=11 => 1,
        12..=20 => 0,
        21..=24 => 2,
        _ => 3,
    }
}

/// Chart 1, SpO2 scale 1: ≤91 → 3; 92–93 → 2; 94–95 → 1; ≥96 → 0.
pub fn score_spo2_scale1(percent: f64) -> u8 {
    match whole(percent) {
        ..=91 => 3,
        92..=93 => 2,
        94..=95 => 1,
        _ => 0,
    }
}

/// Chart 1, SpO2 scale 2: ≤83 → 3; 84–85 → 2; 86–87 → 1; 88–92 → 0; ≥93 on air → 0; on oxygen
/// 93–94 → 1, 95–96 → 2, ≥97 → 3. `None` when SpO2 ≥ 93 and the oxygen status is unknown.
pub fn score_spo2_scale2(percent: f64, on_oxygen: Option<bool>) -> Option<u8> {
    match whole(percent) {
        ..=83 => Some(3),
        84..=85 => Some(2),
        86..=87 => Some(1),
        88..=92 => Some(0),
        high => match on_oxygen? {
            false => Some(0),
            true => Some(match high {
                93..=94 => 1,
                95..=96 => 2,
                _ => 3,
            }),
        },
    }
}

/// Chart 1, air or oxygen: oxygen → 2, air → 0.
pub fn score_air_or_oxygen(on_oxygen: bool) -> u8 {
    if on_oxygen { 2 } else { 0 }
}

/// Chart 1, systolic blood pressure: ≤90 → 3; 91–100 → 2; 101–110 → 1; 111–219 → 0; ≥220 → 3.
pub fn score_systolic_bp(mmhg: f64) -> u8 {
    match whole(mmhg) {
        ..=90 => 3,
        91..=100 => 2,
        101..=110 => 1,
        111..=219 => 0,
        _ => 3,
    }
}

/// Chart 1, pulse: ≤40 → 3; 41–50 → 1; 51–90 → 0; 91–110 → 1; 111–130 → 2; ≥131 → 3.
pub fn score_pulse(per_min: f64) -> u8 {
    match whole(per_min) {
        ..=40 => 3,
        41..=50 => 1,
        51..=90 => 0,
        91..=110 => 1,
        111..=130 => 2,
        _ => 3,
    }
}

/// Chart 1, consciousness: Alert → 0; new confusion, voice, pain or unresponsive → 3.
pub fn score_consciousness(level: Acvpu) -> u8 {
    match level {
        Acvpu::Alert => 0,
        Acvpu::NewConfusion | Acvpu::Voice | Acvpu::Pain | Acvpu::Unresponsive => 3,
    }
}

/// Chart 1, temperature: ≤35.0 → 3; 35.1–36.0 → 1; 36.1–38.0 → 0; 38.1–39.0 → 1; ≥39.1 → 2.
/// Compared in integer tenths of a degree.
pub fn score_temperature(celsius: f64) -> u8 {
    match whole(celsius * 10.0) {
        ..=350 => 3,
        351..=360 => 1,
        361..=380 => 0,
        381..=390 => 1,
        _ => 2,
    }
}

/// Chart 3: the band of a set of parameter scores, in the RCP's order of precedence.
pub fn band(total: u8, any_single_three: bool) -> Band {
    if total >= 7 {
        Band::High
    } else if total >= 5 {
        Band::Medium
    } else if any_single_three {
        Band::LowMedium
    } else {
        Band::Low
    }
}

/// Scores what is known. Non-finite inputs count as missing.
pub fn score(inputs: &Inputs, scale: Spo2Scale) -> Score {
    let finite = |v: Option<f64>| v.filter(|x| x.is_finite());
    let spo2 = finite(inputs.spo2).and_then(|s| match scale {
        Spo2Scale::Scale1 => Some(score_spo2_scale1(s)),
        Spo2Scale::Scale2 => score_spo2_scale2(s, inputs.on_oxygen),
    });
    let scores = vec![
        (
            Parameter::RespirationRate,
            finite(inputs.respiration_rate).map(score_respiration_rate),
        ),
        (Parameter::Spo2, spo2),
        (
            Parameter::AirOrOxygen,
            inputs.on_oxygen.map(score_air_or_oxygen),
        ),
        (
            Parameter::SystolicBp,
            finite(inputs.systolic_bp).map(score_systolic_bp),
        ),
        (Parameter::Pulse, finite(inputs.pulse).map(score_pulse)),
        (
            Parameter::Consciousness,
            inputs.consciousness.map(score_consciousness),
        ),
        (
            Parameter::Temperature,
            finite(inputs.temperature).map(score_temperature),
        ),
    ];
    let total = scores.iter().filter_map(|(_, s)| *s).sum::<u8>();
    let any_three = scores.iter().any(|(_, s)| *s == Some(3));
    let missing: Vec<Parameter> = scores
        .iter()
        .filter(|(_, s)| s.is_none())
        .map(|(p, _)| *p)
        .collect();
    Score {
        total,
        band: band(total, any_three),
        complete: missing.is_empty(),
        scores,
        missing,
        scale,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Every boundary of Chart 1, both sides.
    #[test]
    fn respiration_rate_boundaries() {
        for (rr, s) in [
            (0.0, 3),
            (8.0, 3),
            (9.0, 1),
            (11.0, 1),
            (12.0, 0),
            (20.0, 0),
            (21.0, 2),
            (24.0, 2),
            (25.0, 3),
            (60.0, 3),
        ] {
            assert_eq!(score_respiration_rate(rr), s, "RR {rr}");
        }
    }

    #[test]
    fn spo2_scale1_boundaries() {
        for (v, s) in [
            (70.0, 3),
            (91.0, 3),
            (92.0, 2),
            (93.0, 2),
            (94.0, 1),
            (95.0, 1),
            (96.0, 0),
            (100.0, 0),
        ] {
            assert_eq!(score_spo2_scale1(v), s, "SpO2 {v}");
        }
    }

    #[test]
    fn spo2_scale2_boundaries_on_air_and_on_oxygen() {
        for oxygen in [Some(false), Some(true), None] {
            for (v, s) in [
                (80.0, 3),
                (83.0, 3),
                (84.0, 2),
                (85.0, 2),
                (86.0, 1),
                (87.0, 1),
                (88.0, 0),
                (92.0, 0),
            ] {
                assert_eq!(
                    score_spo2_scale2(v, oxygen),
                    Some(s),
                    "SpO2 {v} oxygen {oxygen:?}"
                );
            }
        }
        for v in [93.0, 97.0, 100.0] {
            assert_eq!(
                score_spo2_scale2(v, Some(false)),
                Some(0),
                "≥93 on air scores 0"
            );
            assert_eq!(
                score_spo2_scale2(v, None),
                None,
                "≥93 needs the oxygen status"
            );
        }
        for (v, s) in [
            (93.0, 1),
            (94.0, 1),
            (95.0, 2),
            (96.0, 2),
            (97.0, 3),
            (100.0, 3),
        ] {
            assert_eq!(
                score_spo2_scale2(v, Some(true)),
                Some(s),
                "SpO2 {v} on oxygen"
            );
        }
    }

    #[test]
    fn air_or_oxygen() {
        assert_eq!(score_air_or_oxygen(true), 2);
        assert_eq!(score_air_or_oxygen(false), 0);
    }

    #[test]
    fn systolic_boundaries() {
        for (v, s) in [
            (60.0, 3),
            (90.0, 3),
            (91.0, 2),
            (100.0, 2),
            (101.0, 1),
            (110.0, 1),
            (111.0, 0),
            (219.0, 0),
            (220.0, 3),
            (260.0, 3),
        ] {
            assert_eq!(score_systolic_bp(v), s, "SBP {v}");
        }
    }

    #[test]
    fn pulse_boundaries_have_no_low_two() {
        for (v, s) in [
            (30.0, 3),
            (40.0, 3),
            (41.0, 1),
            (50.0, 1),
            (51.0, 0),
            (90.0, 0),
            (91.0, 1),
            (110.0, 1),
            (111.0, 2),
            (130.0, 2),
            (131.0, 3),
            (200.0, 3),
        ] {
            assert_eq!(score_pulse(v), s, "pulse {v}");
        }
    }

    #[test]
    fn consciousness_scores_three_for_anything_but_alert() {
        assert_eq!(score_consciousness(Acvpu::Alert), 0);
        for a in [
            Acvpu::NewConfusion,
            Acvpu::Voice,
            Acvpu::Pain,
            Acvpu::Unresponsive,
        ] {
            assert_eq!(score_consciousness(a), 3, "{a:?}");
        }
    }

    #[test]
    fn temperature_boundaries_are_asymmetric() {
        for (v, s) in [
            (33.0, 3),
            (35.0, 3),
            (35.1, 1),
            (36.0, 1),
            (36.1, 0),
            (38.0, 0),
            (38.1, 1),
            (39.0, 1),
            (39.1, 2),
            (41.0, 2),
        ] {
            assert_eq!(score_temperature(v), s, "temp {v}");
        }
    }

    #[test]
    fn values_between_chart_steps_round_half_away_from_zero() {
        assert_eq!(score_systolic_bp(90.4), 3);
        assert_eq!(score_systolic_bp(90.5), 2);
        assert_eq!(score_temperature(35.04), 3);
        assert_eq!(score_temperature(35.05), 1);
        assert_eq!(score_temperature(36.05), 0);
        assert_eq!(score_pulse(50.5), 0);
        // Float representation must not move a boundary: 0.1 steps computed by addition.
        let t = 36.0 + 0.1;
        assert_eq!(score_temperature(t), 0);
    }

    fn normal() -> Inputs {
        Inputs {
            respiration_rate: Some(16.0),
            spo2: Some(97.0),
            on_oxygen: Some(false),
            systolic_bp: Some(120.0),
            pulse: Some(72.0),
            consciousness: Some(Acvpu::Alert),
            temperature: Some(37.0),
        }
    }

    #[test]
    fn a_healthy_adult_scores_zero_and_low() {
        let s = score(&normal(), Spo2Scale::Scale1);
        assert_eq!((s.total, s.band, s.complete), (0, Band::Low, true));
        assert!(s.missing.is_empty());
        assert_eq!(monitoring_frequency(s.total, s.band), "Minimum 12-hourly");
    }

    #[test]
    fn bands_follow_chart_3_precedence() {
        // A single 3 with total 3: low-medium.
        let s = score(
            &Inputs {
                consciousness: Some(Acvpu::NewConfusion),
                ..normal()
            },
            Spo2Scale::Scale1,
        );
        assert_eq!((s.total, s.band), (3, Band::LowMedium));
        assert_eq!(monitoring_frequency(s.total, s.band), "Minimum 1-hourly");
        // Total 4 without a 3: low.
        let s = score(
            &Inputs {
                pulse: Some(115.0),
                respiration_rate: Some(22.0),
                ..normal()
            },
            Spo2Scale::Scale1,
        );
        assert_eq!((s.total, s.band), (4, Band::Low));
        assert_eq!(monitoring_frequency(s.total, s.band), "Minimum 4–6-hourly");
        // Total 5 with a 3: medium, not low-medium.
        let s = score(
            &Inputs {
                pulse: Some(140.0),
                on_oxygen: Some(true),
                ..normal()
            },
            Spo2Scale::Scale1,
        );
        assert_eq!((s.total, s.band), (5, Band::Medium));
        // Total 7: high.
        let s = score(
            &Inputs {
                pulse: Some(140.0),
                on_oxygen: Some(true),
                temperature: Some(39.5),
                ..normal()
            },
            Spo2Scale::Scale1,
        );
        assert_eq!((s.total, s.band), (7, Band::High));
        assert_eq!(
            monitoring_frequency(s.total, s.band),
            "Continuous monitoring of vital signs"
        );
    }

    #[test]
    fn the_maximum_total_is_twenty() {
        let worst = Inputs {
            respiration_rate: Some(30.0),
            spo2: Some(80.0),
            on_oxygen: Some(true),
            systolic_bp: Some(80.0),
            pulse: Some(150.0),
            consciousness: Some(Acvpu::Unresponsive),
            temperature: Some(34.0),
        };
        assert_eq!(score(&worst, Spo2Scale::Scale1).total, 20);
    }

    #[test]
    fn scale_2_on_oxygen_counts_over_oxygenation_and_the_oxygen_itself() {
        let s = score(
            &Inputs {
                spo2: Some(97.0),
                on_oxygen: Some(true),
                ..normal()
            },
            Spo2Scale::Scale2,
        );
        assert_eq!(s.score_of(Parameter::Spo2), Some(3));
        assert_eq!(s.score_of(Parameter::AirOrOxygen), Some(2));
        assert_eq!(s.total, 5);
        let s = score(
            &Inputs {
                spo2: Some(97.0),
                on_oxygen: Some(false),
                ..normal()
            },
            Spo2Scale::Scale2,
        );
        assert_eq!(s.total, 0, "≥93 on air is normal on scale 2");
        let s = score(
            &Inputs {
                spo2: Some(90.0),
                ..normal()
            },
            Spo2Scale::Scale2,
        );
        assert_eq!(
            s.score_of(Parameter::Spo2),
            Some(0),
            "88–92 is the scale-2 target"
        );
        let s = score(
            &Inputs {
                spo2: Some(90.0),
                ..normal()
            },
            Spo2Scale::Scale1,
        );
        assert_eq!(s.score_of(Parameter::Spo2), Some(3));
    }

    #[test]
    fn a_missing_parameter_is_never_scored_as_normal() {
        let s = score(
            &Inputs {
                temperature: None,
                ..normal()
            },
            Spo2Scale::Scale1,
        );
        assert!(!s.complete);
        assert_eq!(s.missing, vec![Parameter::Temperature]);
        assert_eq!(s.score_of(Parameter::Temperature), None);
        let s = score(&Inputs::default(), Spo2Scale::Scale1);
        assert_eq!(s.missing.len(), 7);
        assert_eq!(s.total, 0);
        assert!(!s.complete);
        let s = score(
            &Inputs {
                pulse: Some(f64::NAN),
                ..normal()
            },
            Spo2Scale::Scale1,
        );
        assert_eq!(s.missing, vec![Parameter::Pulse]);
        // Scale 2 at ≥93 % needs the oxygen status: both are missing, neither is guessed.
        let s = score(
            &Inputs {
                spo2: Some(95.0),
                on_oxygen: None,
                ..normal()
            },
            Spo2Scale::Scale2,
        );
        assert_eq!(s.missing, vec![Parameter::Spo2, Parameter::AirOrOxygen]);
    }

    #[test]
    fn an_incomplete_score_is_a_lower_bound() {
        let s = score(
            &Inputs {
                pulse: Some(140.0),
                respiration_rate: Some(30.0),
                temperature: None,
                ..normal()
            },
            Spo2Scale::Scale1,
        );
        assert!(!s.complete);
        assert_eq!((s.total, s.band), (6, Band::Medium));
    }

    fn any_inputs() -> impl Strategy<Value = Inputs> {
        (
            proptest::option::of(0.0..70.0f64),
            proptest::option::of(50.0..100.0f64),
            proptest::option::of(any::<bool>()),
            proptest::option::of(40.0..300.0f64),
            proptest::option::of(20.0..250.0f64),
            proptest::option::of(proptest::sample::select(Acvpu::ALL.to_vec())),
            proptest::option::of(30.0..43.0f64),
        )
            .prop_map(|(rr, spo2, o2, sbp, pulse, c, t)| Inputs {
                respiration_rate: rr,
                spo2,
                on_oxygen: o2,
                systolic_bp: sbp,
                pulse,
                consciousness: c,
                temperature: t,
            })
    }

    proptest! {
        #[test]
        fn total_is_the_sum_and_within_range(inputs in any_inputs(), scale2 in any::<bool>()) {
            let scale = if scale2 { Spo2Scale::Scale2 } else { Spo2Scale::Scale1 };
            let s = score(&inputs, scale);
            let sum: u8 = s.scores.iter().filter_map(|(_, v)| *v).sum();
            prop_assert_eq!(s.total, sum);
            prop_assert!(s.total <= 20);
            prop_assert_eq!(s.complete, s.missing.is_empty());
        }

        #[test]
        fn filling_in_a_missing_parameter_never_lowers_the_score(inputs in any_inputs()) {
            let partial = score(&Inputs { temperature: None, ..inputs }, Spo2Scale::Scale1);
            let full = score(&Inputs { temperature: Some(inputs.temperature.unwrap_or(37.0)), ..inputs }, Spo2Scale::Scale1);
            prop_assert!(full.total >= partial.total);
            prop_assert!(full.band >= partial.band);
        }

        /// Monotone in abnormality: moving a value further from the normal range never lowers its score.
        #[test]
        fn scores_are_monotone_away_from_normal(x in 0.0..400.0f64, step in 0.0..50.0f64) {
            let (lo, hi) = (x.min(16.0), x.max(16.0));
            prop_assert!(score_respiration_rate(lo - step) >= score_respiration_rate(lo));
            prop_assert!(score_respiration_rate(hi + step) >= score_respiration_rate(hi));
            let (lo, hi) = (x.min(70.0), x.max(70.0));
            prop_assert!(score_pulse(lo - step) >= score_pulse(lo));
            prop_assert!(score_pulse(hi + step) >= score_pulse(hi));
            let (lo, hi) = (x.min(150.0), x.max(150.0));
            prop_assert!(score_systolic_bp(lo - step) >= score_systolic_bp(lo));
            prop_assert!(score_systolic_bp(hi + step) >= score_systolic_bp(hi));
            let t = x / 10.0;
            let (lo, hi) = (t.min(37.0), t.max(37.0));
            prop_assert!(score_temperature(lo - step / 10.0) >= score_temperature(lo));
            prop_assert!(score_temperature(hi + step / 10.0) >= score_temperature(hi));
            let s = x.min(100.0);
            prop_assert!(score_spo2_scale1(s - step) >= score_spo2_scale1(s));
        }
    }
}
