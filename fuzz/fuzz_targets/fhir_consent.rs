//! Arbitrary bytes into `vigil_fhir::consent_from_fhir`, as a create (no URL id) and as an
//! update of `Consent/c1`. Nothing may panic; whatever is accepted must be a consent Vigil can
//! store (a valid patient and grantee, shareable resource types without repeats, a period whose
//! end follows its start) and must read back the same once written by `consent_to_fhir`, as the
//! update of what a read returned would be; every error must name an element under `Consent` and
//! render as an OperationOutcome.

#![no_main]

use chrono::{TimeZone, Utc};
use libfuzzer_sys::fuzz_target;
use vigil_fhir::{FhirError, IssueLocation, SHAREABLE, consent_from_fhir, consent_to_fhir};
use vigil_model::{Consent, ConsentId, UserId};

fuzz_target!(|bytes: &[u8]| {
    let url_id = ConsentId::new("c1").unwrap();
    for url in [None, Some(&url_id)] {
        match consent_from_fhir(bytes, url) {
            Ok(input) => {
                if let Some(url) = url {
                    assert_eq!(input.id.as_ref(), Some(url));
                }
                assert!(UserId::new(input.grantee.id.clone()).is_ok());
                for (i, t) in input.resource_types.iter().enumerate() {
                    assert!(SHAREABLE.contains(&t.as_str()), "{t}");
                    assert!(!input.resource_types[..i].contains(t), "{t} twice");
                }
                if let (Some(s), Some(e)) = (input.start, input.end) {
                    assert!(e > s);
                }
                // Stored as the API stores it, rendered, and read back as an update.
                let recorded = Utc.with_ymd_and_hms(2026, 11, 21, 10, 0, 0).unwrap();
                let Some(start) = input.start else { continue };
                let stored = Consent {
                    id: url_id.clone(),
                    patient: input.patient.clone(),
                    grantee: input.grantee.clone(),
                    resource_types: input.resource_types.clone(),
                    start,
                    end: input.end,
                    status: input.status,
                    recorded_by: UserId::new("fuzz").unwrap(),
                    recorded_at: recorded,
                };
                let body = serde_json::to_vec(&consent_to_fhir(&stored)).unwrap();
                let back = consent_from_fhir(&body, Some(&url_id))
                    .unwrap_or_else(|e| panic!("Vigil's own Consent refused: {e}"));
                assert_eq!(back.patient, input.patient);
                assert_eq!(back.grantee, input.grantee);
                assert_eq!(back.resource_types, input.resource_types);
                assert_eq!(back.status, input.status);
                assert_eq!((back.start, back.end), (input.start, input.end));
            }
            Err(e) => check_error(&e),
        }
    }
});

fn check_error(e: &FhirError) {
    assert!(!e.to_string().is_empty());
    let oo = e.to_operation_outcome();
    assert_eq!(oo["resourceType"], "OperationOutcome");
    assert!(serde_json::to_vec(&oo).is_ok());
    if let Some(IssueLocation::Expression(path)) = e.location() {
        assert!(
            path == "Consent" || path == "resourceType" || path.starts_with("Consent."),
            "{path} is not under Consent"
        );
    }
}
