//! Devices, and which patient each one measures over which span of time.

use serde::{Deserialize, Serialize};

use crate::{DeviceId, Instant, PatientId};

/// What a device is, in the words a ward or an integration engineer would use.
///
/// Free text on purpose: vendors invent new kinds faster than an enum could follow. The
/// well-known kinds below are the ones the simulator and the documentation use.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DeviceKind(pub String);

impl DeviceKind {
    pub const MULTIPARAMETER_MONITOR: &'static str = "multiparameter-monitor";
    pub const PULSE_OXIMETER: &'static str = "pulse-oximeter";
    pub const BP_MONITOR: &'static str = "bp-monitor";
    pub const THERMOMETER: &'static str = "thermometer";
    pub const WEIGHT_SCALE: &'static str = "weight-scale";
    pub const GLUCOSE_METER: &'static str = "glucose-meter";
    pub const WEARABLE: &'static str = "wearable";
    /// A system that sends HL7 v2 messages on behalf of its equipment (a monitor gateway or a
    /// central station); its id is what it writes in MSH-3.
    pub const HL7_SENDER: &'static str = "hl7-sender";
    /// A phone app or bedside hub that relays Bluetooth LE health devices' readings.
    pub const GATEWAY: &'static str = "gateway";
    /// Software that derives observations from others: Vigil's own NEWS2 scorer.
    pub const SOFTWARE: &'static str = "software";

    pub fn new(kind: impl Into<String>) -> Self {
        DeviceKind(kind.into())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Device {
    pub id: DeviceId,
    pub kind: DeviceKind,
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    pub serial: Option<String>,
    pub firmware: Option<String>,
    /// For a Bluetooth LE peripheral: its public or static random device address, in the
    /// canonical upper-case colon form (`C4:7C:8D:6A:11:02`); gateways relay its data under it.
    pub ble_address: Option<String>,
    /// When the device was last calibrated, and by when it must be calibrated again.
    pub calibrated_at: Option<Instant>,
    pub calibration_due: Option<Instant>,
    /// Received signal strength in dBm (radio link quality), as last reported by the device.
    pub signal_dbm: Option<i16>,
    /// Battery charge in percent (0–100), as last reported by the device.
    pub battery_pct: Option<u8>,
    /// When the device last delivered anything Vigil accepted.
    pub last_seen: Option<Instant>,
}

impl Device {
    pub fn new(id: DeviceId, kind: DeviceKind) -> Self {
        Device {
            id,
            kind,
            manufacturer: None,
            model: None,
            serial: None,
            firmware: None,
            ble_address: None,
            calibrated_at: None,
            calibration_due: None,
            signal_dbm: None,
            battery_pct: None,
            last_seen: None,
        }
    }
}

/// A device measured one patient from `from` (inclusive) until `to` (exclusive, open when `None`).
///
/// Readings are attributed by the reading's own time, not the time it arrived, so a monitor moved
/// to another bed never mixes two patients' data, even when it uploads a backlog late.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Binding {
    pub device: DeviceId,
    pub patient: PatientId,
    pub from: Instant,
    pub to: Option<Instant>,
}

impl Binding {
    pub fn covers(&self, at: Instant) -> bool {
        self.from <= at && self.to.is_none_or(|to| at < to)
    }
}

/// The patient a device was bound to at `at`, if any.
pub fn patient_at(bindings: &[Binding], at: Instant) -> Option<&PatientId> {
    bindings.iter().find(|b| b.covers(at)).map(|b| &b.patient)
}

/// The device id Vigil's NEWS2 scorer records its scores under: a FHIR Device of kind
/// [`DeviceKind::SOFTWARE`], registered by the store itself, which no device can sign in as.
/// Device ids starting with `vigil-` are reserved for Vigil.
pub const NEWS2_SCORER: &str = "vigil-news2";

/// The device id of observations posted through the FHIR API without a `device` reference (a
/// value a clinician or an EHR entered): a software Device registered by the store.
pub const FHIR_ENTRY: &str = "vigil-fhir";

/// True for ids reserved for Vigil's own software devices.
pub fn is_reserved_device_id(id: &str) -> bool {
    id.starts_with("vigil-")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn t(h: u32) -> Instant {
        Utc.with_ymd_and_hms(2026, 11, 21, h, 0, 0).unwrap()
    }

    #[test]
    fn a_moved_device_attributes_by_reading_time() {
        let dev = DeviceId::new("mon-1").unwrap();
        let a = PatientId::new("a").unwrap();
        let b = PatientId::new("b").unwrap();
        let bindings = vec![
            Binding {
                device: dev.clone(),
                patient: a.clone(),
                from: t(8),
                to: Some(t(10)),
            },
            Binding {
                device: dev,
                patient: b.clone(),
                from: t(10),
                to: None,
            },
        ];
        assert_eq!(patient_at(&bindings, t(7)), None);
        assert_eq!(patient_at(&bindings, t(8)), Some(&a));
        assert_eq!(patient_at(&bindings, t(9)), Some(&a));
        // The boundary belongs to the new binding: `to` is exclusive.
        assert_eq!(patient_at(&bindings, t(10)), Some(&b));
        assert_eq!(patient_at(&bindings, t(23)), Some(&b));
    }
}
