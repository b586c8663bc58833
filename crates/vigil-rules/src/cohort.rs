//! Cohort rule sets: named starting points for a patient's monitoring settings, such as "COPD"
//! (SpO2 scale 2 and a lower SpO2 limit), "heart failure" (the weight-gain rule) or "diabetes"
//! (glucose trend rules). A clinician assigns one to a patient; the patient's settings become the
//! adult defaults with the cohort's changes applied, and can then be adjusted for that patient.
//!
//! Assigning copies the cohort into the patient's settings (and records the cohort's name). A
//! later edit of the cohort file does not change patients already assigned: a patient's alarm
//! limits change only when a clinician acts on that patient.
//!
//! Cohorts are written in a readable file (TOML in the server's configuration; see
//! `config/cohorts.toml`); this module defines their meaning and validates them, whatever the
//! file format.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use vigil_model::Measurand;

use crate::news2::Spo2Scale;
use crate::surveillance::PatientSettings;
use crate::threshold::Limits;
use crate::trend::TrendRules;

/// The most cohorts one configuration may define.
pub const MAX_COHORTS: usize = 64;

/// A new value for the first (least severe) low and/or high alarm limit of one measurand, in its
/// canonical unit. Delay, hysteresis and priority stay as they are.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitChange {
    pub low: Option<f64>,
    pub high: Option<f64>,
}

/// Applies limit changes (measurand code → change) to `limits`; the error says what is wrong.
/// Nothing is changed when any change is refused.
pub fn apply_limit_changes(
    limits: &mut Limits,
    changes: &BTreeMap<String, LimitChange>,
) -> Result<(), String> {
    let mut changed = limits.clone();
    for (code, change) in changes {
        let measurand = Measurand::from_code(code)
            .ok_or_else(|| format!("limits: unknown measurand {code:?}"))?;
        let mut current = changed.get(measurand).cloned().unwrap_or_default();
        for (value, side, bound) in [
            (change.low, &mut current.low, "low"),
            (change.high, &mut current.high, "high"),
        ] {
            let Some(value) = value else { continue };
            let tier = side
                .as_mut()
                .and_then(|s| s.tiers.first_mut())
                .ok_or_else(|| format!("limits: {code} has no {bound} alarm to change"))?;
            tier.limit = value;
        }
        changed
            .set(measurand, Some(current))
            .map_err(|e| format!("limits: {code}: {e}"))?;
    }
    *limits = changed;
    Ok(())
}

/// One cohort as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cohort {
    /// Who the cohort is for and why its settings differ, for the clinician choosing it.
    pub description: String,
    /// The NEWS2 SpO2 scale (1 or 2); scale 2 only for confirmed hypercapnic respiratory failure.
    #[serde(default)]
    pub spo2_scale: Option<u8>,
    /// Changes to the adult default limits, by measurand code (`spo2`, `heart_rate`, a LOINC…).
    #[serde(default)]
    pub limits: BTreeMap<String, LimitChange>,
    /// Trend rules replacing the default ones; the defaults stay when absent.
    #[serde(default)]
    pub trends: Option<TrendRules>,
}

impl Cohort {
    /// The settings of a patient newly assigned to this cohort, named `name`.
    pub fn settings(&self, name: &str) -> Result<PatientSettings, String> {
        let mut settings = PatientSettings::default();
        if let Some(n) = self.spo2_scale {
            settings.spo2_scale = Spo2Scale::from_number(n)
                .ok_or_else(|| format!("spo2_scale {n}: must be 1 or 2"))?;
        }
        apply_limit_changes(&mut settings.limits, &self.limits)?;
        if let Some(trends) = &self.trends {
            settings.trends = trends.clone();
        }
        settings.cohort = Some(name.to_owned());
        Ok(settings)
    }
}

/// Every cohort a server offers, by name; validated when built.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Cohorts(BTreeMap<String, Cohort>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CohortError {
    #[error("cohort {name:?}: {why}")]
    Invalid { name: String, why: String },
    #[error("cohort name {0:?}: use 1–64 lower-case letters, digits and '-'")]
    BadName(String),
    #[error("{0} cohorts defined; at most {MAX_COHORTS} are allowed")]
    TooMany(usize),
}

impl Cohorts {
    pub fn new(cohorts: BTreeMap<String, Cohort>) -> Result<Self, CohortError> {
        if cohorts.len() > MAX_COHORTS {
            return Err(CohortError::TooMany(cohorts.len()));
        }
        for (name, cohort) in &cohorts {
            let valid_name = !name.is_empty()
                && name.len() <= 64
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !valid_name {
                return Err(CohortError::BadName(name.clone()));
            }
            cohort.settings(name).map_err(|why| CohortError::Invalid {
                name: name.clone(),
                why,
            })?;
        }
        Ok(Cohorts(cohorts))
    }

    pub fn get(&self, name: &str) -> Option<&Cohort> {
        self.0.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Cohort)> {
        self.0.iter().map(|(n, c)| (n.as_str(), c))
    }

    pub fn names(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::threshold::Bound;

    fn cohort(json: serde_json::Value) -> Cohort {
        serde_json::from_value(json).unwrap()
    }

    fn first_limit(s: &PatientSettings, m: Measurand, bound: Bound) -> f64 {
        s.limits.get(m).unwrap().side(bound).unwrap().tiers[0].limit
    }

    #[test]
    fn a_cohort_changes_the_defaults_and_names_itself() {
        let copd = cohort(serde_json::json!({
            "description": "COPD with hypercapnic respiratory failure",
            "spo2_scale": 2,
            "limits": {"spo2": {"low": 85}},
        }));
        let s = copd.settings("copd").unwrap();
        assert_eq!(s.spo2_scale, Spo2Scale::Scale2);
        assert_eq!(first_limit(&s, Measurand::Spo2, Bound::Low), 85.0);
        // Everything else is the adult default.
        let d = PatientSettings::default();
        assert_eq!(
            s.limits.get(Measurand::HeartRate),
            d.limits.get(Measurand::HeartRate)
        );
        assert_eq!(s.trends, d.trends);
        assert_eq!(s.cohort.as_deref(), Some("copd"));
    }

    #[test]
    fn trend_rules_replace_the_defaults() {
        let none = cohort(serde_json::json!({
            "description": "no trend rules",
            "trends": {},
        }));
        assert_eq!(none.settings("x").unwrap().trends, TrendRules::none());
    }

    #[test]
    fn bad_cohorts_are_refused_with_the_reason() {
        let bad = |json: serde_json::Value| {
            let mut m = BTreeMap::new();
            m.insert("c".to_owned(), cohort(json));
            Cohorts::new(m).unwrap_err().to_string()
        };
        assert!(
            bad(serde_json::json!({"description": "", "spo2_scale": 3})).contains("must be 1 or 2")
        );
        assert!(
            bad(serde_json::json!({"description": "", "limits": {"vibes": {"low": 1}}}))
                .contains("unknown measurand")
        );
        assert!(
            bad(serde_json::json!({"description": "", "limits": {"spo2": {"high": 99}}}))
                .contains("no high alarm")
        );
        // A low limit above the high one is refused by the limits' own validation.
        assert!(
            bad(serde_json::json!({"description": "", "limits": {"heart_rate": {"low": 140}}}))
                .starts_with("cohort \"c\": limits: heart_rate")
        );
        let mut m = BTreeMap::new();
        m.insert(
            "COPD!".to_owned(),
            cohort(serde_json::json!({"description": ""})),
        );
        assert!(matches!(Cohorts::new(m), Err(CohortError::BadName(_))));
        assert!(
            serde_json::from_value::<Cohort>(serde_json::json!({"description": "", "colour": 1}))
                .is_err()
        );
    }

    #[test]
    fn limit_changes_are_all_or_nothing() {
        let mut limits = Limits::adult_defaults();
        let mut changes = BTreeMap::new();
        changes.insert(
            "heart_rate".to_owned(),
            LimitChange {
                low: Some(45.0),
                high: None,
            },
        );
        changes.insert(
            "spo2".to_owned(),
            LimitChange {
                low: None,
                high: Some(99.0),
            },
        );
        assert!(apply_limit_changes(&mut limits, &changes).is_err());
        assert_eq!(limits, Limits::adult_defaults());
    }
}
