//! The domain of Vigil: patients, devices and who wears what when, the readings devices make and the
//! observations they become, and the clinical vocabulary (LOINC, UCUM, IEEE 11073 MDC) they are
//! coded in.
//!
//! Pure by design: no async, no I/O, no protocols, no database. Every other crate depends on this
//! one and this one on nothing of ours.

pub mod audit;
pub mod care;
pub mod catalogue;
pub mod device;
pub mod ids;
pub mod observation;
pub mod patient;
pub mod units;
pub mod waveform;

pub use care::{CareTeam, Consent, ConsentStatus, EmergencyAccess, Grantee, GranteeKind};
pub use catalogue::{Category, DeviceEvent, Measurand, ObservationCode, ValueKind};
pub use device::{Binding, Device, DeviceKind, FHIR_ENTRY, NEWS2_SCORER, is_reserved_device_id};
pub use ids::{CareTeamId, ConsentId, DeviceId, IdError, PatientId, UserId};
pub use observation::{
    AbsentReason, Acvpu, MeasuredValue, Measurement, News2Value, Observation, ObservationComponent,
    ObservationId, ObservationStatus, ObservationValue, QualityFlags, Quantity, Reading,
    assemble_readings,
};
pub use patient::{Gender, Patient};
pub use units::UnitError;
pub use waveform::{StoredWaveform, WaveformCode, WaveformSegment};

/// Timestamps are UTC instants throughout the model; local time is a presentation concern.
pub type Instant = chrono::DateTime<chrono::Utc>;
