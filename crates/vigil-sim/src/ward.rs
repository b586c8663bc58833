//! Physiology for the simulated ward: plausible adult vital signs that drift, wobble and now and
//! then go wrong the way real patients and real sensors do.
//!
//! Two wards: [`ward`] for the demo, whose scripted deteriorations start within the first minutes
//! so a newcomer sees one unfold, and [`ward_for_day`] for the alarm-burden benchmark
//! ([`crate::burden`]), whose deteriorations start at staggered times across a simulated day.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

/// A scripted course of events for one patient, on the simulation clock.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scenario {
    /// Stays around the baseline.
    Stable,
    /// Sepsis-like: tachycardia, fever, tachypnoea and falling blood pressure.
    Sepsis { onset_s: f64, ramp_s: f64 },
    /// Respiratory deterioration: falling SpO2, rising respiratory and heart rate.
    Hypoxia { onset_s: f64, ramp_s: f64 },
}

impl Scenario {
    pub fn name(&self) -> &'static str {
        match self {
            Scenario::Stable => "stable",
            Scenario::Sepsis { .. } => "sepsis",
            Scenario::Hypoxia { .. } => "hypoxia",
        }
    }

    /// When the deterioration starts, in simulation seconds (`None` for a stable patient).
    pub fn onset_s(&self) -> Option<f64> {
        match *self {
            Scenario::Stable => None,
            Scenario::Sepsis { onset_s, .. } | Scenario::Hypoxia { onset_s, .. } => Some(onset_s),
        }
    }

    /// How far the deterioration has progressed, 0 (not started) to 1 (fully developed).
    fn severity(&self, t: f64) -> f64 {
        match *self {
            Scenario::Stable => 0.0,
            Scenario::Sepsis { onset_s, ramp_s } | Scenario::Hypoxia { onset_s, ramp_s } => {
                ((t - onset_s) / ramp_s.max(1.0)).clamp(0.0, 1.0)
            }
        }
    }

    /// Level of consciousness on the ACVPU scale: alert, except late in sepsis, once it has been
    /// fully developed for as long again as it took to develop (septic encephalopathy: new
    /// confusion, "C").
    pub fn acvpu(&self, t: f64) -> &'static str {
        match *self {
            Scenario::Sepsis { onset_s, ramp_s } if t >= onset_s + 2.0 * ramp_s.max(1.0) => "C",
            _ => "A",
        }
    }

    /// Whether the patient is on supplemental oxygen: on air, except in respiratory deterioration
    /// once the fall in SpO2 is fully developed, when the nurse starts oxygen.
    pub fn on_oxygen(&self, t: f64) -> bool {
        match *self {
            Scenario::Hypoxia { onset_s, ramp_s } => t >= onset_s + ramp_s.max(1.0),
            _ => false,
        }
    }
}

/// How often unflagged motion artifacts start, per message (at the demo's one message per second,
/// a few per patient-day each).
const MOTION_SPO2_DIP_PER_MESSAGE: f64 = 4.0 / 86_400.0;
const MOTION_HR_BURST_PER_MESSAGE: f64 = 3.0 / 86_400.0;

/// An unflagged motion artifact in progress: the device reports a wrong value for a few seconds
/// without marking it, as real oximeters and ECG leads do when the patient moves.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Motion {
    /// The pulse oximeter reads 80–85 % (the plethysmogram is disturbed, not the patient).
    Spo2Dip { until: f64 },
    /// Muscle noise on the ECG is counted as beats: 135–160 /min.
    HeartRateBurst { until: f64 },
}

/// A patient's own resting values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Baseline {
    pub heart_rate: f64,
    pub resp_rate: f64,
    pub spo2: f64,
    pub systolic: f64,
    pub diastolic: f64,
    pub temperature: f64,
}

/// Vital signs at one instant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Vitals {
    pub heart_rate: f64,
    pub resp_rate: f64,
    pub spo2: f64,
    pub systolic: f64,
    pub diastolic: f64,
    pub temperature: f64,
}

pub struct SimPatient {
    pub id: String,
    pub name: String,
    pub device_id: String,
    pub baseline: Baseline,
    pub scenario: Scenario,
    /// A fall-detecting pendant the patient wears, if any.
    pub pendant: Option<Pendant>,
    rng: StdRng,
    motion: Option<Motion>,
}

/// A wearable pendant with a step counter and fall detection: it reports steps once a minute and
/// a fall when the patient falls.
#[derive(Debug, Clone, PartialEq)]
pub struct Pendant {
    pub device_id: String,
    /// When the patient falls, in simulation seconds.
    pub fall_at_s: Option<f64>,
}

impl Pendant {
    /// The pendant's minutely message: steps so far (about 10 a minute on a ward).
    pub fn steps_message(&self, t: f64, ts_ms: i64) -> Value {
        json!({"ts": ts_ms, "obs": [{"code": "steps", "value": (t / 6.0).floor()}]})
    }

    /// The fall event, timed when the fall happened.
    pub fn fall_message(&self, ts_ms: i64) -> Value {
        json!({"event": "fall", "ts": ts_ms})
    }
}

const NAMES: [&str; 24] = [
    "Jan Havel",
    "Eva Novak",
    "Amira Haddad",
    "Tomás Ruiz",
    "Grace Okafor",
    "Lukas Weber",
    "Mei Lin",
    "Olu Adeyemi",
    "Sofia Rossi",
    "Noah Fischer",
    "Priya Nair",
    "Liam Byrne",
    "Hana Sato",
    "Mateo Silva",
    "Ingrid Berg",
    "Kwame Mensah",
    "Chloé Martin",
    "Arjun Mehta",
    "Zofia Kowalska",
    "Omar Farouk",
    "Elena Popescu",
    "Yusuf Demir",
    "Aino Virtanen",
    "Ravi Iyer",
];

impl SimPatient {
    /// The `index`-th bed of a ward; `seed` makes runs reproducible.
    pub fn new(index: usize, scenario: Scenario, seed: u64) -> SimPatient {
        let mut rng =
            StdRng::seed_from_u64(seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let baseline = Baseline {
            heart_rate: rng.random_range(58.0..88.0),
            resp_rate: rng.random_range(12.0..18.0),
            spo2: rng.random_range(95.0..99.0),
            systolic: rng.random_range(108.0..142.0),
            diastolic: rng.random_range(64.0..86.0),
            temperature: rng.random_range(36.3..37.2),
        };
        SimPatient {
            id: format!("pat-{:03}", index + 1),
            name: NAMES[index % NAMES.len()].to_owned(),
            device_id: format!("mon-{:03}", index + 1),
            baseline,
            scenario,
            pendant: None,
            rng,
            motion: None,
        }
    }

    fn noise(&mut self, spread: f64) -> f64 {
        // Sum of uniforms: roughly normal, bounded, cheap.
        let s: f64 = (0..4).map(|_| self.rng.random_range(-1.0..1.0)).sum();
        s * spread / 2.0
    }

    /// Vital signs `t` seconds into the simulation, at `hour_of_day` (0–24, for circadian drift).
    pub fn vitals(&mut self, t: f64, hour_of_day: f64) -> Vitals {
        let b = self.baseline;
        // Circadian rhythm: lowest around 04:00, highest in the late afternoon.
        let circadian = ((hour_of_day - 10.0) / 24.0 * std::f64::consts::TAU).sin();
        let s = self.scenario.severity(t);
        let (d_hr, d_rr, d_spo2, d_sys, d_temp) = match self.scenario {
            Scenario::Stable => (0.0, 0.0, 0.0, 0.0, 0.0),
            Scenario::Sepsis { .. } => (48.0 * s, 11.0 * s, -4.0 * s, -38.0 * s, 2.3 * s),
            Scenario::Hypoxia { .. } => (26.0 * s, 12.0 * s, -15.0 * s, 6.0 * s, 0.2 * s),
        };
        Vitals {
            heart_rate: (b.heart_rate + 5.0 * circadian + d_hr + self.noise(3.0))
                .clamp(30.0, 220.0),
            resp_rate: (b.resp_rate + 1.0 * circadian + d_rr + self.noise(1.2)).clamp(4.0, 60.0),
            spo2: (b.spo2 + d_spo2 + self.noise(0.8)).clamp(60.0, 100.0),
            systolic: (b.systolic + 6.0 * circadian + d_sys + self.noise(4.0)).clamp(60.0, 230.0),
            diastolic: (b.diastolic + 4.0 * circadian + d_sys * 0.5 + self.noise(3.0))
                .clamp(35.0, 140.0),
            temperature: (b.temperature + 0.3 * circadian + d_temp + self.noise(0.08))
                .clamp(34.0, 42.0),
        }
    }

    /// How long an unflagged motion artifact lasts: mostly 3–8 s, one in four 12–40 s (a patient
    /// turning over, a long walk to the bathroom with the probe on).
    fn motion_seconds(&mut self) -> f64 {
        let long = self.rng.random_bool(0.25);
        let range = if long { 12.0..40.0_f64 } else { 3.0..8.0 };
        self.rng.random_range(range).round()
    }

    /// One device message (Vigil's payload contract) for time `t`. Continuous signals every call;
    /// blood pressure, temperature, level of consciousness (`acvpu`) and whether the patient is on
    /// oxygen (`o2_supplemental`) only when `with_spot_checks`, so NEWS2 can be complete.
    ///
    /// Artifacts, as real monitors produce them:
    /// * about one message in 300 carries a *flagged* artifact: a probe-off SpO2 marked
    ///   `artifact` or a motion spike in heart rate marked `questionable`;
    /// * a few times per patient-day (at one message per second) an *unflagged* motion artifact
    ///   lasts 3–8 s, now and then 12–40 s: SpO2 reading 80–85 % or heart rate 135–160 /min,
    ///   with nothing to tell it from a real value but its brevity.
    pub fn message(
        &mut self,
        t: f64,
        hour_of_day: f64,
        ts_ms: i64,
        with_spot_checks: bool,
    ) -> Value {
        let v = self.vitals(t, hour_of_day);
        let round1 = |x: f64| (x * 10.0).round() / 10.0;
        let mut obs = vec![
            json!({"code": "heart_rate", "value": v.heart_rate.round(), "unit": "/min"}),
            json!({"code": "spo2", "value": v.spo2.round(), "unit": "%"}),
            json!({"code": "resp_rate", "value": v.resp_rate.round(), "unit": "/min"}),
        ];
        // Unflagged motion: one draw per message whatever happens, so the random sequence (and
        // with it every later value) does not depend on the scenario.
        let motion: f64 = self.rng.random();
        if self.motion.is_some_and(|m| match m {
            Motion::Spo2Dip { until } | Motion::HeartRateBurst { until } => t >= until,
        }) {
            self.motion = None;
        }
        if self.motion.is_none()
            && motion < MOTION_SPO2_DIP_PER_MESSAGE + MOTION_HR_BURST_PER_MESSAGE
        {
            let until = t + self.motion_seconds();
            self.motion = Some(if motion < MOTION_SPO2_DIP_PER_MESSAGE {
                Motion::Spo2Dip { until }
            } else {
                Motion::HeartRateBurst { until }
            });
        }
        match self.motion {
            Some(Motion::Spo2Dip { .. }) => {
                obs[1] = json!({"code": "spo2", "value": self.rng.random_range(80.0..85.0_f64).round(), "unit": "%"});
            }
            Some(Motion::HeartRateBurst { .. }) => {
                obs[0] = json!({"code": "heart_rate", "value": self.rng.random_range(135.0..160.0_f64).round(), "unit": "/min"});
            }
            None => {}
        }
        let artifact: f64 = self.rng.random();
        if artifact < 0.002 {
            obs[1] = json!({"code": "spo2", "value": self.rng.random_range(55.0..75.0_f64).round(), "unit": "%", "quality": ["artifact"]});
        } else if artifact < 0.0035 {
            obs[0] = json!({"code": "heart_rate", "value": self.rng.random_range(170.0..210.0_f64).round(), "unit": "/min", "quality": ["questionable"]});
        }
        if with_spot_checks {
            obs.push(json!({"code": "systolic_bp", "value": v.systolic.round(), "unit": "mm[Hg]"}));
            obs.push(
                json!({"code": "diastolic_bp", "value": v.diastolic.round(), "unit": "mm[Hg]"}),
            );
            obs.push(json!({"code": "temperature", "value": round1(v.temperature), "unit": "Cel"}));
            obs.push(json!({"code": "acvpu", "value": self.scenario.acvpu(t)}));
            obs.push(json!({"code": "o2_supplemental", "value": self.scenario.on_oxygen(t)}));
        }
        json!({"ts": ts_ms, "obs": obs, "battery": 100 - ((t / 600.0) as i64).min(80)})
    }
}

/// A ward of `n` patients: most stable, a few with scripted deteriorations that start within the
/// first minutes so a newcomer sees one unfold.
pub fn ward(n: usize, seed: u64) -> Vec<SimPatient> {
    (0..n)
        .map(|i| {
            let scenario = match i % 10 {
                // Fast on purpose: a newcomer running the demo sees the first NEWS2 band alarm
                // within about three minutes (the day-long benchmark uses `ward_for_day`).
                3 => Scenario::Sepsis {
                    onset_s: 20.0 + 60.0 * (i / 10) as f64,
                    ramp_s: 300.0,
                },
                7 => Scenario::Hypoxia {
                    onset_s: 60.0 + 60.0 * (i / 10) as f64,
                    ramp_s: 240.0,
                },
                _ => Scenario::Stable,
            };
            let mut patient = SimPatient::new(i, scenario, seed);
            // Every tenth from the sixth wears a pendant; the first of them falls after 90 s.
            if i % 10 == 5 {
                patient.pendant = Some(Pendant {
                    device_id: format!("pendant-{:03}", i + 1),
                    fall_at_s: (i == 5).then_some(90.0),
                });
            }
            patient
        })
        .collect()
}

/// The scripted deteriorations of a ward of `n`: the same beds as [`ward`] (every tenth from the
/// fourth septic, every tenth from the eighth hypoxic), but the `k`-th of `m` deteriorations starts
/// at `(k + 1) / (m + 1)` of `duration_s` (rounded to the minute), so over a simulated day they
/// start at different hours: night and day, circadian low and high. Ramps as in [`ward`] (sepsis
/// 10 min, hypoxia 8 min); each stays deteriorated to the end.
pub fn ward_for_day(n: usize, seed: u64, duration_s: f64) -> Vec<SimPatient> {
    let sick = (0..n).filter(|i| matches!(i % 10, 3 | 7)).count();
    let mut k = 0;
    (0..n)
        .map(|i| {
            let mut onset = || {
                k += 1;
                (duration_s * k as f64 / (sick + 1) as f64 / 60.0).round() * 60.0
            };
            let scenario = match i % 10 {
                3 => Scenario::Sepsis {
                    onset_s: onset(),
                    ramp_s: 600.0,
                },
                7 => Scenario::Hypoxia {
                    onset_s: onset(),
                    ramp_s: 480.0,
                },
                _ => Scenario::Stable,
            };
            SimPatient::new(i, scenario, seed)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_patients_stay_near_their_baseline() {
        let mut p = SimPatient::new(0, Scenario::Stable, 1);
        for t in 0..3600 {
            let v = p.vitals(t as f64, 12.0);
            assert!((v.heart_rate - p.baseline.heart_rate).abs() < 15.0);
            assert!(v.spo2 <= 100.0 && v.spo2 > 90.0);
        }
    }

    #[test]
    fn sepsis_raises_heart_rate_and_temperature_after_onset() {
        let mut p = SimPatient::new(
            3,
            Scenario::Sepsis {
                onset_s: 60.0,
                ramp_s: 600.0,
            },
            1,
        );
        let before: f64 = (0..30)
            .map(|t| p.vitals(t as f64, 12.0).heart_rate)
            .sum::<f64>()
            / 30.0;
        let after: f64 = (0..30)
            .map(|t| p.vitals(700.0 + t as f64, 12.0).heart_rate)
            .sum::<f64>()
            / 30.0;
        assert!(after - before > 35.0, "{before} → {after}");
        assert!(p.vitals(700.0, 12.0).temperature > p.baseline.temperature + 1.5);
    }

    #[test]
    fn hypoxia_lowers_spo2() {
        let mut p = SimPatient::new(
            7,
            Scenario::Hypoxia {
                onset_s: 0.0,
                ramp_s: 100.0,
            },
            1,
        );
        assert!(p.vitals(200.0, 12.0).spo2 < p.baseline.spo2 - 10.0);
    }

    #[test]
    fn messages_follow_the_payload_contract() {
        let mut p = SimPatient::new(0, Scenario::Stable, 1);
        let m = p.message(0.0, 12.0, 1_763_720_100_000, true);
        assert_eq!(m["ts"], 1_763_720_100_000_i64);
        let codes: Vec<&str> = m["obs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["code"].as_str().unwrap())
            .collect();
        assert_eq!(
            codes,
            [
                "heart_rate",
                "spo2",
                "resp_rate",
                "systolic_bp",
                "diastolic_bp",
                "temperature",
                "acvpu",
                "o2_supplemental"
            ]
        );
        // The real decoder accepts every reading: BP becomes one panel, the rest one reading each.
        let received = chrono::DateTime::from_timestamp_millis(1_763_720_100_000).unwrap();
        let bytes = serde_json::to_vec(&m).unwrap();
        let decoded = vigil_codecs::decode_device_message(
            &bytes,
            received,
            &vigil_codecs::DecodeLimits::default(),
        )
        .unwrap();
        assert!(decoded.rejected.is_empty(), "{:?}", decoded.rejected);
        assert_eq!(decoded.readings.len(), 7);
        assert_eq!(decoded.battery_pct, Some(100));
        assert!(decoded.readings.iter().any(|r| r.value
            == vigil_model::ObservationValue::Acvpu(vigil_model::Acvpu::Alert)));
        assert!(
            decoded
                .readings
                .iter()
                .any(|r| r.value == vigil_model::ObservationValue::OnOxygen(false))
        );
        // Between spot checks only the continuous signals.
        let m = p.message(1.0, 12.0, 1_763_720_101_000, false);
        assert_eq!(m["obs"].as_array().unwrap().len(), 3);
    }

    #[test]
    fn late_sepsis_brings_new_confusion_and_hypoxia_brings_oxygen() {
        let sepsis = Scenario::Sepsis {
            onset_s: 100.0,
            ramp_s: 600.0,
        };
        assert_eq!(sepsis.acvpu(0.0), "A");
        assert_eq!(sepsis.acvpu(1299.0), "A");
        assert_eq!(sepsis.acvpu(1300.0), "C");
        assert!(!sepsis.on_oxygen(5000.0));
        let hypoxia = Scenario::Hypoxia {
            onset_s: 100.0,
            ramp_s: 480.0,
        };
        assert!(!hypoxia.on_oxygen(579.0));
        assert!(hypoxia.on_oxygen(580.0));
        assert_eq!(hypoxia.acvpu(5000.0), "A");
        assert!(!Scenario::Stable.on_oxygen(1e6));
        assert_eq!(Scenario::Stable.acvpu(1e6), "A");
    }

    #[test]
    fn unflagged_motion_artifacts_happen_a_few_times_a_day() {
        let mut p = SimPatient::new(0, Scenario::Stable, 1);
        let (mut dips, mut bursts) = (0, 0);
        let (mut in_dip, mut in_burst) = (false, false);
        for t in 0..86_400 {
            let m = p.message(t as f64, (t / 3600) as f64, t * 1000, false);
            let unflagged = |i: usize| m["obs"][i].get("quality").is_none();
            let spo2 = m["obs"][1]["value"].as_f64().unwrap();
            let hr = m["obs"][0]["value"].as_f64().unwrap();
            let dip = unflagged(1) && (80.0..=85.0).contains(&spo2);
            let burst = unflagged(0) && (135.0..=160.0).contains(&hr);
            dips += usize::from(dip && !in_dip);
            bursts += usize::from(burst && !in_burst);
            (in_dip, in_burst) = (dip, burst);
        }
        assert!((1..=12).contains(&dips), "{dips} SpO2 dips");
        assert!((1..=12).contains(&bursts), "{bursts} heart-rate bursts");
    }

    #[test]
    fn the_random_course_does_not_depend_on_the_scenario() {
        // What makes a stable twin of a deteriorating patient: same noise, same artifacts.
        let mut stable = SimPatient::new(3, Scenario::Stable, 9);
        let mut sick = SimPatient::new(
            3,
            Scenario::Sepsis {
                onset_s: 600.0,
                ramp_s: 600.0,
            },
            9,
        );
        for t in 0..2000 {
            let a = stable.message(t as f64, 12.0, t * 1000, t % 30 == 0);
            let b = sick.message(t as f64, 12.0, t * 1000, t % 30 == 0);
            if t < 600 {
                assert_eq!(a, b, "t = {t}");
            }
        }
        assert_eq!(
            stable.message(2000.0, 12.0, 0, false)["battery"],
            sick.message(2000.0, 12.0, 0, false)["battery"]
        );
    }

    #[test]
    fn a_day_ward_staggers_its_deteriorations_and_the_demo_ward_does_not_change() {
        let day = ward_for_day(20, 7, 86_400.0);
        let onsets: Vec<(usize, &str, f64)> = day
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.scenario.onset_s().map(|o| (i, p.scenario.name(), o)))
            .collect();
        assert_eq!(
            onsets,
            [
                (3, "sepsis", 17_280.0),
                (7, "hypoxia", 34_560.0),
                (13, "sepsis", 51_840.0),
                (17, "hypoxia", 69_120.0)
            ]
        );
        let demo: Vec<Scenario> = ward(20, 7).iter().map(|p| p.scenario).collect();
        assert_eq!(
            demo[3],
            Scenario::Sepsis {
                onset_s: 20.0,
                ramp_s: 300.0
            }
        );
        assert_eq!(
            demo[17],
            Scenario::Hypoxia {
                onset_s: 120.0,
                ramp_s: 240.0
            }
        );
        // Same beds, same people.
        for (a, b) in day.iter().zip(ward(20, 7).iter()) {
            assert_eq!((&a.id, a.baseline), (&b.id, b.baseline));
        }
    }

    #[test]
    fn a_ward_has_a_few_deteriorations() {
        let w = ward(20, 7);
        let sick = w.iter().filter(|p| p.scenario != Scenario::Stable).count();
        assert_eq!(sick, 4);
        let ids: std::collections::HashSet<_> = w.iter().map(|p| p.id.clone()).collect();
        assert_eq!(ids.len(), 20);
    }
}
