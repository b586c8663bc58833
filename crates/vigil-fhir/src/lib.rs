//! The FHIR R4 (4.0.1) view of Vigil's model: resources, search parameters and
//! `OperationOutcome`. Pure: no HTTP, no storage; the server calls these functions and maps
//! [`FhirError`] to HTTP statuses.
//!
//! Resources are written by hand with `serde_json` (typed serde structs where bodies are read)
//! and checked against an independent R4 validator: `cargo run -p vigil-fhir --example dump`
//! prints an example of every resource as a Bundle for `scripts/validate_fhir.py`.
//!
//! | Resource | Written by | Read by |
//! |---|---|---|
//! | Patient | [`patient_to_fhir`] | [`patient_from_fhir`] |
//! | Device | [`device_to_fhir`] | |
//! | Observation (vital signs, lab, activity) | [`observation_to_fhir`] | |
//! | Observation (waveform, `SampledData`) | [`waveform_to_fhir`] | |
//! | CapabilityStatement | [`capability_statement`] | |
//! | OperationOutcome | [`operation_outcome`], [`FhirError::to_operation_outcome`] | |
//! | AuditEvent | [`audit_event_to_fhir`] | |
//! | Bundle | [`searchset_bundle`], [`collection_bundle`] | |
//!
//! Searches: [`parse_observation_search`], [`parse_patient_search`], [`parse_device_search`].
//!
//! Vigil's own URIs: identifier systems `urn:vigil:patient`, `urn:vigil:mrn`, `urn:vigil:device`;
//! code system `urn:vigil:code` (short names); extensions `urn:vigil:quality` (Observation) and
//! `urn:vigil:last-seen` (Device).

mod audit_event;
mod bundle;
mod capability;
pub mod common;
mod consent;
mod deidentify;
mod device;
mod error;
mod flag;
mod input;
mod monitoring;
mod observation;
mod patient;
pub mod search;

pub use audit_event::{SYSTEM_AUDIT_ACTION, audit_event_to_fhir};
pub use bundle::{collection_bundle, searchset_bundle};
pub use capability::{CAPABILITY_DATE, capability_statement};
pub use consent::{ConsentInput, SHAREABLE, consent_from_fhir, consent_to_fhir};
pub use deidentify::deidentify;
pub use device::{CALIBRATION_METRIC_SUFFIX, calibration_metric, device_to_fhir};
pub use error::{FhirError, IssueLocation, IssueType, Severity, operation_outcome};
pub use flag::{AlarmFlag, SYSTEM_ALARM_CONDITION, alarm_to_flag};
pub use input::{
    BundleInput, BundleKind, EntryOutcome, InputLimits, InputNote, ObservationIdentifier,
    ObservationInput, batch_response_bundle, bundle_from_fhir, observation_from_fhir,
    observation_from_value,
};
pub use monitoring::{AlarmLimit, EXT_MONITORING, MonitoringSettings, add_monitoring_extension};
pub use observation::{
    PROFILE_VITAL_SIGNS, WAVEFORM_ID_PREFIX, observation_code, observation_to_fhir,
    waveform_fhir_id, waveform_to_fhir,
};
pub use patient::{PatientInput, patient_from_fhir, patient_to_fhir};
pub use search::{
    Bound, DateSort, DeviceIdentifier, DeviceSearch, FlagSearch, ObservationCursor,
    ObservationSearch, PatientIdentifier, PatientSearch, decode_cursor, encode_cursor,
    parse_device_search, parse_flag_search, parse_observation_search, parse_patient_search,
};
