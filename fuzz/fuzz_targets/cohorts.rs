//! Arbitrary text as a cohorts file (TOML, as `vigil serve` reads it): parsing and validation
//! must never panic, and every cohort of a file that validates yields settings that validate.

#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use vigil_rules::cohort::{Cohort, Cohorts};

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    let Ok(raw) = toml::from_str::<BTreeMap<String, Cohort>>(text) else {
        return;
    };
    let Ok(cohorts) = Cohorts::new(raw) else {
        return;
    };
    for (name, cohort) in cohorts.iter() {
        let settings = cohort.settings(name).expect("a validated cohort applies");
        assert_eq!(settings.cohort.as_deref(), Some(name));
        assert!(settings.trends.validate().is_ok());
    }
});
