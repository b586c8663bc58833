//! Physiology for the simulated ward: plausible adult vital signs that drift, wobble and now and
//! then go wrong the way real patients and real sensors do.

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

    /// How far the deterioration has progressed, 0 (not started) to 1 (fully developed).
    fn severity(&self, t: f64) -> f64 {
        match *self {
            Scenario::Stable => 0.0,
            Scenario::Sepsis { onset_s, ramp_s } | Scenario::Hypoxia { onset_s, ramp_s } => {
                ((t - onset_s) / ramp_s.max(1.0)).clamp(0.0, 1.0)
            }
        }
    }
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
    rng: StdRng,
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
            rng,
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

    /// One device message (Vigil's payload contract) for time `t`. Continuous signals every call;
    /// blood pressure and temperature only when `with_spot_checks`. About one message in 300
    /// carries an artifact: a flagged probe-off SpO2 or a motion spike in heart rate.
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
                3 => Scenario::Sepsis {
                    onset_s: 60.0 + 30.0 * (i / 10) as f64,
                    ramp_s: 600.0,
                },
                7 => Scenario::Hypoxia {
                    onset_s: 120.0 + 30.0 * (i / 10) as f64,
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
                "temperature"
            ]
        );
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
