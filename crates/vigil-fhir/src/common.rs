//! The code systems, identifier systems and extension URLs Vigil writes, and the small JSON
//! builders every resource shares.

use chrono::SecondsFormat;
use serde_json::{Value, json};
use vigil_model::Instant;
use vigil_model::catalogue::{Category, MdcCode};

/// LOINC (<http://hl7.org/fhir/R4/loinc.html>).
pub const LOINC: &str = "http://loinc.org";
/// IEEE 11073-10101 nomenclature, as FHIR R4 names it (<http://hl7.org/fhir/R4/mdc.html>).
/// Codes are the 32-bit numeric code (partition × 65 536 + term code) as a decimal string.
pub const MDC: &str = "urn:iso:std:iso:11073:10101";
/// SNOMED CT (<http://hl7.org/fhir/R4/snomedct.html>).
pub const SNOMED: &str = "http://snomed.info/sct";
/// UCUM (<http://hl7.org/fhir/R4/ucum.html>).
pub const UCUM: &str = "http://unitsofmeasure.org";
/// FHIR's observation categories.
pub const OBSERVATION_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/observation-category";
/// HL7 v2 table 0203, identifier types (`MR` medical record number, `SNO` serial number).
pub const V2_0203: &str = "http://terminology.hl7.org/CodeSystem/v2-0203";
/// `Observation.dataAbsentReason` codes.
pub const DATA_ABSENT_REASON: &str = "http://terminology.hl7.org/CodeSystem/data-absent-reason";

/// `Patient.identifier.system` of the Vigil patient id.
pub const SYSTEM_PATIENT: &str = "urn:vigil:patient";
/// `Patient.identifier.system` of the hospital medical record number.
pub const SYSTEM_MRN: &str = "urn:vigil:mrn";
/// `Device.identifier.system` of the Vigil device id.
pub const SYSTEM_DEVICE: &str = "urn:vigil:device";
/// `Device.identifier.system` of a Bluetooth LE peripheral's device address (`C4:7C:8D:6A:11:02`).
pub const SYSTEM_BLE_ADDRESS: &str = "urn:vigil:ble-address";
/// Code system of Vigil's short observation names (`heart_rate`, `blood_pressure`), written as an
/// extra coding of `Observation.code` so that `code=urn:vigil:code|…` finds what it names.
pub const SYSTEM_CODE: &str = "urn:vigil:code";
/// Code system of the NEWS2 clinical risk bands: `low`, `low-medium`, `medium`, `high`.
pub const SYSTEM_NEWS2_BAND: &str = "urn:vigil:news2-band";

/// Extension on an Observation, one per quality flag, `valueCode` = the flag's name
/// (`converted-unit`, `questionable`, `artifact`, `time-from-receipt`).
pub const EXT_QUALITY: &str = "urn:vigil:quality";
/// Extension on a Device: `valueInstant` = when the device last delivered anything Vigil accepted.
pub const EXT_LAST_SEEN: &str = "urn:vigil:last-seen";
/// Extension on a Device: `valueDateTime` = when it was last calibrated.
pub const EXT_CALIBRATED: &str = "urn:vigil:calibrated";
/// Extension on a Device: `valueDateTime` = by when it must be calibrated again.
pub const EXT_CALIBRATION_DUE: &str = "urn:vigil:calibration-due";

/// An instant as FHIR `instant`/`dateTime`: RFC 3339, UTC (`Z`), millisecond precision.
pub fn instant(at: Instant) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A FHIR `decimal` without float noise: whole numbers are written as integers (37, not 37.0);
/// anything else is serde_json's shortest representation that reads back as the same `f64`, so
/// no precision is invented and none is lost. Callers keep non-finite values out (JSON has none).
pub fn decimal(value: f64) -> Value {
    // Integers up to 2^53 are exact in an f64 and in an i64.
    const EXACT: f64 = 9_007_199_254_740_992.0;
    if value.fract() == 0.0 && value.abs() <= EXACT {
        Value::from(value as i64)
    } else {
        Value::from(value)
    }
}

pub fn coding(system: &str, code: &str, display: &str) -> Value {
    json!({ "system": system, "code": code, "display": display })
}

pub fn mdc_coding(mdc: MdcCode) -> Value {
    coding(MDC, &mdc.code.to_string(), mdc.refid)
}

/// A UCUM quantity; `None` when the value is not finite (JSON cannot carry it).
pub fn quantity(value: f64, display_unit: &str, ucum: &str) -> Option<Value> {
    value.is_finite().then(
        || json!({ "value": decimal(value), "unit": display_unit, "system": UCUM, "code": ucum }),
    )
}

/// `dataAbsentReason` for a value that could not be represented.
pub fn absent_because_error() -> Value {
    json!({ "coding": [coding(DATA_ABSENT_REASON, "error", "Error")] })
}

pub fn category(category: Category) -> Value {
    json!({ "coding": [coding(OBSERVATION_CATEGORY, category.code(), category.display())] })
}

pub fn reference(resource: &str, id: &str) -> Value {
    json!({ "reference": format!("{resource}/{id}") })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    #[test]
    fn decimals_carry_no_float_noise_and_lose_no_precision() {
        assert_eq!(serde_json::to_string(&decimal(37.0)).unwrap(), "37");
        assert_eq!(serde_json::to_string(&decimal(-0.0)).unwrap(), "0");
        assert_eq!(serde_json::to_string(&decimal(36.6)).unwrap(), "36.6");
        assert_eq!(
            serde_json::to_string(&decimal(0.1 + 0.2)).unwrap(),
            "0.30000000000000004"
        );
        let kpa = 16_000.0 / 133.322_387_415;
        let written = serde_json::to_string(&decimal(kpa)).unwrap();
        assert_eq!(written.parse::<f64>().unwrap(), kpa, "round-trips exactly");
        // FHIR's decimal allows an exponent.
        assert_eq!(serde_json::to_string(&decimal(1e300)).unwrap(), "1e+300");
    }

    #[test]
    fn instants_are_utc_with_milliseconds() {
        let at = Utc.with_ymd_and_hms(2026, 11, 21, 10, 0, 5).unwrap();
        assert_eq!(instant(at), "2026-11-21T10:00:05.000Z");
    }

    #[test]
    fn a_value_json_cannot_carry_gives_no_quantity() {
        assert!(quantity(f64::NAN, "%", "%").is_none());
        assert!(quantity(f64::INFINITY, "%", "%").is_none());
        assert_eq!(quantity(97.0, "%", "%").unwrap()["value"], 97);
    }
}
