//! Devices as FHIR R4 `Device` resources (<http://hl7.org/fhir/R4/device.html>).

use serde_json::{Value, json};
use vigil_model::{Device, DeviceKind, Instant, PatientId};

use crate::common::{
    EXT_CALIBRATED, EXT_CALIBRATION_DUE, EXT_LAST_SEEN, MDC, SYSTEM_BLE_ADDRESS, SYSTEM_DEVICE,
    V2_0203, coding, instant, quantity, reference,
};

/// An MDC device-type coding for the kinds whose code is verified (IEEE 11073-10101, and seen in
/// vendor feeds: `shared/reference/hl7v2.md` §2). Other kinds are described by text only: the
/// PHD specialisation codes (`MDC_DEV_SPEC_PROFILE_*`) would claim conformance to an IEEE
/// 11073-104xx device specialisation, which a kind name cannot promise.
fn kind_coding(kind: &DeviceKind) -> Option<Value> {
    match kind.as_str() {
        DeviceKind::MULTIPARAMETER_MONITOR => {
            Some(coding(MDC, "69965", "MDC_DEV_MON_PHYSIO_MULTI_PARAM_MDS"))
        }
        _ => None,
    }
}

/// A device as FHIR R4 `Device`.
///
/// - `identifier`: the Vigil id (system `urn:vigil:device`), when known the serial number
///   (type `SNO` of HL7 v2 table 0203, no system: serials are unique only per manufacturer), and
///   for a Bluetooth LE peripheral its device address (system `urn:vigil:ble-address`).
/// - `manufacturer`, `modelNumber`, `serialNumber`; `type.text` = the kind (plus an MDC coding
///   for kinds with a verified code); `version` = the firmware, typed `firmware`.
/// - `patient`: the patient the device is bound to now, when the caller knows one.
/// - Received signal strength is a `property` too (type text `signal`, UCUM `dB[mW]`).
/// - Battery charge is a `property` (type text `battery`, `valueQuantity` in UCUM `%`): R4's
///   element for a device's current operating values. Last seen is an extension `urn:vigil:last-seen`
///   with `valueInstant`, because `Device.property` can hold only quantities and codes, not times.
pub fn device_to_fhir(d: &Device, patient: Option<&PatientId>) -> Value {
    let mut identifiers = vec![json!({ "system": SYSTEM_DEVICE, "value": d.id.as_str() })];
    let serial = d.serial.as_deref().filter(|s| !s.is_empty());
    if let Some(serial) = serial {
        identifiers.push(json!({
            "type": { "coding": [coding(V2_0203, "SNO", "Serial Number")] },
            "value": serial,
        }));
    }
    if let Some(address) = d.ble_address.as_deref() {
        identifiers.push(json!({ "system": SYSTEM_BLE_ADDRESS, "value": address }));
    }
    let mut out = json!({
        "resourceType": "Device",
        "id": d.id.as_str(),
        "identifier": identifiers,
    });
    let mut kind = json!({});
    if let Some(c) = kind_coding(&d.kind) {
        kind["coding"] = json!([c]);
    }
    if !d.kind.as_str().is_empty() {
        kind["text"] = Value::from(d.kind.as_str());
    }
    if kind.as_object().is_some_and(|k| !k.is_empty()) {
        out["type"] = kind;
    }
    if let Some(manufacturer) = d.manufacturer.as_deref().filter(|s| !s.is_empty()) {
        out["manufacturer"] = Value::from(manufacturer);
    }
    if let Some(serial) = serial {
        out["serialNumber"] = Value::from(serial);
    }
    if let Some(model) = d.model.as_deref().filter(|s| !s.is_empty()) {
        out["modelNumber"] = Value::from(model);
    }
    if let Some(firmware) = d.firmware.as_deref().filter(|s| !s.is_empty()) {
        out["version"] = json!([{ "type": { "text": "firmware" }, "value": firmware }]);
    }
    let mut properties = Vec::new();
    if let Some(battery) = d
        .battery_pct
        .and_then(|pct| quantity(f64::from(pct), "%", "%"))
    {
        properties.push(json!({ "type": { "text": "battery" }, "valueQuantity": [battery] }));
    }
    // Received signal strength in dBm: UCUM writes a decibel referred to one milliwatt dB[mW].
    if let Some(signal) = d
        .signal_dbm
        .and_then(|dbm| quantity(f64::from(dbm), "dBm", "dB[mW]"))
    {
        properties.push(json!({ "type": { "text": "signal" }, "valueQuantity": [signal] }));
    }
    if !properties.is_empty() {
        out["property"] = Value::Array(properties);
    }
    if let Some(patient) = patient {
        out["patient"] = reference("Patient", patient.as_str());
    }
    let mut extensions = Vec::new();
    if let Some(seen) = d.last_seen {
        extensions.push(json!({ "url": EXT_LAST_SEEN, "valueInstant": instant(seen) }));
    }
    // R4's Device has no calibration element (DeviceMetric.calibration describes one metric's
    // calibration, not the device's service date): Vigil's own extensions, as for last seen.
    if let Some(at) = d.calibrated_at {
        extensions.push(json!({ "url": EXT_CALIBRATED, "valueDateTime": instant(at) }));
    }
    if let Some(due) = d.calibration_due {
        extensions.push(json!({ "url": EXT_CALIBRATION_DUE, "valueDateTime": instant(due) }));
    }
    if !extensions.is_empty() {
        out["extension"] = Value::Array(extensions);
    }
    out
}

/// Suffix of the id of a device's calibration DeviceMetric: `{device id}.calibration`.
pub const CALIBRATION_METRIC_SUFFIX: &str = ".calibration";

/// The device's calibration as a FHIR R4 `DeviceMetric` (<http://hl7.org/fhir/R4/devicemetric.html>),
/// when the registry records one: `source` the Device, `category` `measurement`, and one
/// `calibration` entry whose `state` is `calibrated`, or `calibration-required` once the due date
/// has passed at `now`, with `time` the last calibration. The due date is the extension
/// `urn:vigil:calibration-due`. `None` without calibration data, or when `{id}.calibration`
/// would be longer than a FHIR id may be (64 characters).
pub fn calibration_metric(d: &Device, now: Instant) -> Option<Value> {
    if d.calibrated_at.is_none() && d.calibration_due.is_none() {
        return None;
    }
    let id = format!("{}{CALIBRATION_METRIC_SUFFIX}", d.id);
    if id.len() > 64 {
        return None;
    }
    let overdue = d.calibration_due.is_some_and(|due| due <= now);
    let mut calibration = json!({
        "type": "unspecified",
        "state": if overdue { "calibration-required" } else { "calibrated" },
    });
    if let Some(at) = d.calibrated_at {
        calibration["time"] = Value::from(instant(at));
    }
    let mut out = json!({
        "resourceType": "DeviceMetric",
        "id": id,
        "type": {
            "coding": [coding(crate::common::SYSTEM_CODE, "device-calibration", "Device calibration")],
            "text": "Device calibration",
        },
        "source": reference("Device", d.id.as_str()),
        "category": "measurement",
        "calibration": [calibration],
    });
    if let Some(due) = d.calibration_due {
        out["extension"] = json!([{ "url": EXT_CALIBRATION_DUE, "valueDateTime": instant(due) }]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use vigil_model::DeviceId;

    fn full() -> Device {
        Device {
            id: DeviceId::new("mon-1").unwrap(),
            kind: DeviceKind::new(DeviceKind::MULTIPARAMETER_MONITOR),
            manufacturer: Some("Acme Medical".into()),
            model: Some("VM-9".into()),
            serial: Some("SN123".into()),
            firmware: Some("2.4.1".into()),
            ble_address: None,
            calibrated_at: None,
            calibration_due: None,
            signal_dbm: Some(-67),
            battery_pct: Some(87),
            last_seen: Some(Utc.with_ymd_and_hms(2026, 11, 21, 10, 0, 0).unwrap()),
        }
    }

    #[test]
    fn device_shape() {
        let v = device_to_fhir(&full(), Some(&PatientId::new("bed-12").unwrap()));
        assert_eq!(v["resourceType"], "Device");
        assert_eq!(v["id"], "mon-1");
        assert_eq!(
            v["identifier"][0],
            json!({ "system": "urn:vigil:device", "value": "mon-1" })
        );
        assert_eq!(v["identifier"][1]["type"]["coding"][0]["code"], "SNO");
        assert_eq!(v["identifier"][1]["value"], "SN123");
        assert_eq!(v["manufacturer"], "Acme Medical");
        assert_eq!(v["modelNumber"], "VM-9");
        assert_eq!(v["serialNumber"], "SN123");
        assert_eq!(v["type"]["text"], "multiparameter-monitor");
        assert_eq!(v["type"]["coding"][0]["system"], MDC);
        assert_eq!(v["type"]["coding"][0]["code"], "69965");
        assert_eq!(
            v["version"],
            json!([{ "type": { "text": "firmware" }, "value": "2.4.1" }])
        );
        assert_eq!(v["patient"]["reference"], "Patient/bed-12");
        assert_eq!(v["property"][0]["type"]["text"], "battery");
        assert_eq!(v["property"][1]["type"]["text"], "signal");
        assert_eq!(v["property"][1]["valueQuantity"][0]["value"], -67.0);
        assert_eq!(v["property"][1]["valueQuantity"][0]["code"], "dB[mW]");
        assert_eq!(
            v["property"][0]["valueQuantity"][0],
            json!({ "value": 87, "unit": "%", "system": "http://unitsofmeasure.org", "code": "%" })
        );
        assert_eq!(
            v["extension"],
            json!([{ "url": "urn:vigil:last-seen", "valueInstant": "2026-11-21T10:00:00.000Z" }])
        );
    }

    #[test]
    fn a_bare_device_has_only_what_is_known() {
        let d = Device::new(
            DeviceId::new("ox-7").unwrap(),
            DeviceKind::new(DeviceKind::PULSE_OXIMETER),
        );
        let v = device_to_fhir(&d, None);
        assert_eq!(v["identifier"].as_array().unwrap().len(), 1);
        assert_eq!(
            v["type"],
            json!({ "text": "pulse-oximeter" }),
            "no unverified coding"
        );
        for absent in [
            "manufacturer",
            "serialNumber",
            "modelNumber",
            "version",
            "property",
            "patient",
            "extension",
        ] {
            assert!(v.get(absent).is_none(), "{absent}");
        }
    }
}
