//! Arbitrary bytes into the FHIR input side: `observation_from_fhir` and `bundle_from_fhir`.
//! Nothing may panic; whatever is accepted must be a reading Vigil can store (known code whose
//! value agrees with it, canonical units, plausible values, a result status, an instant from
//! 1970 up to the allowed clock skew, identifiers within bounds) and must survive a round trip
//! through `observation_to_fhir`; every error must name its element under the right resource
//! or entry, and render as an OperationOutcome; a batch's response Bundle has one entry per
//! request entry.

#![no_main]

use chrono::{DateTime, TimeZone, Utc};
use libfuzzer_sys::fuzz_target;
use vigil_fhir::{
    BundleInput, BundleKind, EntryOutcome, FhirError, InputLimits, IssueLocation, ObservationInput,
    batch_response_bundle, bundle_from_fhir, observation_from_fhir, observation_to_fhir,
};
use vigil_model::{
    DeviceId, Instant, Measurand, Observation, ObservationCode, ObservationId, ObservationStatus,
    ObservationValue, PatientId, Reading,
};

fuzz_target!(|bytes: &[u8]| {
    let received = Utc.with_ymd_and_hms(2026, 11, 21, 10, 0, 0).unwrap();
    let limits = InputLimits {
        max_entries: 64,
        ..InputLimits::received_at(received)
    };

    match observation_from_fhir(bytes, &limits) {
        Ok(input) => check_input(&input, &limits, received, "Observation"),
        Err(e) => check_error(&e, &["Observation", "resourceType"]),
    }

    match bundle_from_fhir(bytes, &limits) {
        Ok(bundle) => {
            assert!(bundle.len() <= limits.max_entries);
            let outcomes: Vec<EntryOutcome> = match &bundle {
                BundleInput::Batch(results) => results
                    .iter()
                    .enumerate()
                    .map(|(i, r)| match r {
                        Ok(input) => {
                            check_input(input, &limits, received, &format!("Bundle.entry[{i}]"));
                            EntryOutcome::Created {
                                id: ObservationId(i as i64),
                                notes: input.notes.clone(),
                            }
                        }
                        Err(e) => {
                            check_error(e, &[&format!("Bundle.entry[{i}]")]);
                            EntryOutcome::invalid(e)
                        }
                    })
                    .collect(),
                BundleInput::Transaction(inputs) => inputs
                    .iter()
                    .enumerate()
                    .map(|(i, input)| {
                        check_input(input, &limits, received, &format!("Bundle.entry[{i}]"));
                        EntryOutcome::Duplicate {
                            id: ObservationId(i as i64),
                        }
                    })
                    .collect(),
            };
            let kind = bundle.kind();
            let response = batch_response_bundle(kind, &outcomes);
            let expected_type = match kind {
                BundleKind::Batch => "batch-response",
                BundleKind::Transaction => "transaction-response",
            };
            assert_eq!(response["type"], expected_type);
            let entries = response
                .get("entry")
                .and_then(|e| e.as_array())
                .map_or(0, Vec::len);
            assert_eq!(entries, outcomes.len());
            assert!(serde_json::to_vec(&response).is_ok());
        }
        Err(e) => check_error(&e, &["Bundle", "resourceType"]),
    }
});

/// An accepted Observation is a reading Vigil can store, and reads back the same once written.
fn check_input(input: &ObservationInput, limits: &InputLimits, received: Instant, place: &str) {
    let r = &input.reading;
    check_reading(r);
    assert!(!matches!(
        r.status,
        ObservationStatus::Registered
            | ObservationStatus::Cancelled
            | ObservationStatus::EnteredInError
    ));
    assert!(r.effective >= DateTime::UNIX_EPOCH);
    assert!(r.effective.signed_duration_since(received) <= limits.max_future_skew);
    if let Some(id) = &input.identifier {
        assert!(!id.value.trim().is_empty());
        assert!(id.value.len() <= limits.max_identifier_bytes);
        if let Some(system) = &id.system {
            assert!(system.len() <= limits.max_identifier_bytes);
        }
    }
    for note in &input.notes {
        assert!(
            note.path.starts_with(place),
            "{} outside {place}",
            note.path
        );
        assert!(!note.message.is_empty());
    }

    // Written by Vigil (to the millisecond) and read back, it is the same reading.
    let at_millis = DateTime::from_timestamp_millis(r.effective.timestamp_millis()).unwrap();
    let stored = Observation {
        id: ObservationId(1),
        patient: input.subject.clone(),
        device: input
            .device
            .clone()
            .unwrap_or_else(|| DeviceId::new("fuzz").unwrap()),
        code: r.code,
        value: r.value.clone(),
        effective: at_millis,
        received,
        status: r.status,
        quality: r.quality,
    };
    let body = serde_json::to_vec(&observation_to_fhir(&stored)).unwrap();
    let again = observation_from_fhir(&body, &InputLimits::default())
        .unwrap_or_else(|e| panic!("Vigil's own output refused: {e}"));
    assert_eq!(
        again.reading,
        Reading {
            effective: at_millis,
            ..r.clone()
        }
    );
    assert_eq!(again.subject, input.subject);
    let _: &PatientId = &again.subject;
}

/// Code and value agree; quantities are canonical and plausible.
fn check_reading(r: &Reading) {
    let parts: Vec<(Measurand, f64, &str)> = match (&r.code, &r.value) {
        (_, ObservationValue::Absent(_)) => Vec::new(),
        (ObservationCode::Single(m), ObservationValue::Quantity(q)) => {
            assert!(!m.is_bp_component(), "a lone part becomes a panel");
            vec![(*m, q.value, q.unit.as_str())]
        }
        (ObservationCode::BloodPressure, ObservationValue::Components(c)) => {
            assert!(!c.is_empty());
            for (i, a) in c.iter().enumerate() {
                assert!(a.measurand.is_bp_component());
                assert!(c[..i].iter().all(|b| b.measurand != a.measurand));
            }
            c.iter()
                .map(|c| (c.measurand, c.value.value, c.value.unit.as_str()))
                .collect()
        }
        (ObservationCode::Single(Measurand::Consciousness), ObservationValue::Acvpu(_)) => {
            Vec::new()
        }
        (ObservationCode::Single(Measurand::SupplementalOxygen), ObservationValue::OnOxygen(_)) => {
            Vec::new()
        }
        (ObservationCode::Event(_), ObservationValue::Detected) => Vec::new(),
        other => panic!("code and value disagree: {other:?}"),
    };
    assert_ne!(r.code, ObservationCode::News2);
    for (m, value, unit) in parts {
        assert_eq!(unit, m.canonical_unit());
        let range = m.plausible();
        assert!(
            value.is_finite() && value >= range.min && value <= range.max,
            "{m:?} {value}"
        );
    }
}

/// An error renders, and names an element under one of `roots`.
fn check_error(e: &FhirError, roots: &[&str]) {
    assert!(!e.to_string().is_empty());
    let oo = e.to_operation_outcome();
    assert_eq!(oo["resourceType"], "OperationOutcome");
    assert!(serde_json::to_vec(&oo).is_ok());
    if let Some(IssueLocation::Expression(path)) = e.location() {
        assert!(
            roots.iter().any(|root| path == *root
                || path.starts_with(&format!("{root}."))
                || path.starts_with(&format!("{root}["))),
            "{path} is not under {roots:?}"
        );
    }
}
