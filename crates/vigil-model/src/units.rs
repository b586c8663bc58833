//! Exact conversion of the units devices commonly send into each measurand's canonical UCUM unit.
//!
//! Factors are the defined ones, not rounded clinical approximations:
//! - 1 mm[Hg] = 133.322 387 415 Pa (UCUM definition), so 1 kPa = 1000 / 133.322387415 mm[Hg].
//! - [degF]: t(Cel) = (t(degF) − 32) × 5/9; K: t(Cel) = T(K) − 273.15 (SI).
//! - [lb_av] = 0.453 592 37 kg exactly (international avoirdupois pound); [oz_av] = [lb_av] / 16.
//! - Glucose C6H12O6 molar mass 180.156 g/mol: 1 mmol/L = 18.0156 mg/dL.
//! - [in_i] = 2.54 cm exactly.

use crate::Measurand;

/// Why a unit was refused for a measurand.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    #[error("unit {unit:?} does not fit {measurand}; expected {expected}")]
    Mismatch {
        unit: String,
        measurand: &'static str,
        expected: String,
    },
}

/// How a source unit becomes the canonical one.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Conversion {
    Same,
    /// canonical = value × factor
    Scale(f64),
    /// canonical = (value − 32) × 5/9
    FahrenheitToCelsius,
    /// canonical = value − 273.15
    KelvinToCelsius,
}

const MMHG_PER_KPA: f64 = 1000.0 / 133.322_387_415;
const KG_PER_LB: f64 = 0.453_592_37;
const MG_DL_PER_MMOL_L: f64 = 18.0156;

fn conversion(measurand: Measurand, unit: &str) -> Option<Conversion> {
    use Conversion::*;
    use Measurand::*;
    let c = match (measurand, unit) {
        (HeartRate, "/min" | "{beats}/min" | "{beat}/min" | "1/min") => Same,
        (RespRate, "/min" | "{breaths}/min" | "{breath}/min" | "1/min") => Same,
        (Spo2, "%") => Same,
        (SystolicBp | DiastolicBp | MeanBp, "mm[Hg]") => Same,
        (SystolicBp | DiastolicBp | MeanBp, "kPa") => Scale(MMHG_PER_KPA),
        (Temperature, "Cel") => Same,
        (Temperature, "[degF]") => FahrenheitToCelsius,
        (Temperature, "K") => KelvinToCelsius,
        (Glucose, "mg/dL") => Same,
        (Glucose, "mmol/L") => Scale(MG_DL_PER_MMOL_L),
        (Weight, "kg") => Same,
        (Weight, "g") => Scale(0.001),
        (Weight, "[lb_av]") => Scale(KG_PER_LB),
        (Weight, "[oz_av]") => Scale(KG_PER_LB / 16.0),
        (Height, "cm") => Same,
        (Height, "m") => Scale(100.0),
        (Height, "mm") => Scale(0.1),
        (Height, "[in_i]") => Scale(2.54),
        (Steps, "{steps}" | "{count}" | "1") => Same,
        (SupplementalOxygen, "L/min") => Same,
        (SupplementalOxygen, "mL/min") => Scale(0.001),
        _ => return None,
    };
    Some(c)
}

/// Every unit accepted for a measurand, canonical first (for error messages and documentation).
pub fn accepted_units(measurand: Measurand) -> &'static [&'static str] {
    use Measurand::*;
    match measurand {
        HeartRate => &["/min", "{beats}/min", "{beat}/min", "1/min"],
        RespRate => &["/min", "{breaths}/min", "{breath}/min", "1/min"],
        Spo2 => &["%"],
        SystolicBp | DiastolicBp | MeanBp => &["mm[Hg]", "kPa"],
        Temperature => &["Cel", "[degF]", "K"],
        Glucose => &["mg/dL", "mmol/L"],
        Weight => &["kg", "g", "[lb_av]", "[oz_av]"],
        Height => &["cm", "m", "mm", "[in_i]"],
        Steps => &["{steps}", "{count}", "1"],
        SupplementalOxygen => &["L/min", "mL/min"],
        // Coded values carry no unit.
        Consciousness => &[],
    }
}

/// Converts `value` in `unit` to the measurand's canonical unit. Returns the canonical value and
/// whether a conversion took place (a synonym of the canonical unit is not a conversion).
pub fn to_canonical(
    measurand: Measurand,
    value: f64,
    unit: &str,
) -> Result<(f64, bool), UnitError> {
    let Some(conversion) = conversion(measurand, unit) else {
        return Err(UnitError::Mismatch {
            unit: unit.to_owned(),
            measurand: measurand.short_name(),
            expected: accepted_units(measurand).join(", "),
        });
    };
    Ok(match conversion {
        Conversion::Same => (value, false),
        Conversion::Scale(factor) => (value * factor, true),
        Conversion::FahrenheitToCelsius => ((value - 32.0) * 5.0 / 9.0, true),
        Conversion::KelvinToCelsius => (value - 273.15, true),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn fahrenheit_to_celsius_at_the_fixed_points() {
        assert_eq!(
            to_canonical(Measurand::Temperature, 32.0, "[degF]").unwrap(),
            (0.0, true)
        );
        assert_eq!(
            to_canonical(Measurand::Temperature, 212.0, "[degF]").unwrap(),
            (100.0, true)
        );
        let (c, _) = to_canonical(Measurand::Temperature, 98.6, "[degF]").unwrap();
        assert!(close(c, 37.0), "{c}");
        let (c, _) = to_canonical(Measurand::Temperature, 310.15, "K").unwrap();
        assert!(close(c, 37.0), "{c}");
    }

    #[test]
    fn kilopascal_to_millimetres_of_mercury() {
        // 16 kPa is the classic 120 mmHg: 16000 / 133.322387415 = 120.00985…
        let (v, converted) = to_canonical(Measurand::SystolicBp, 16.0, "kPa").unwrap();
        assert!(converted);
        assert!(close(v, 120.009_852_135_3), "{v}");
        let (v, _) = to_canonical(Measurand::DiastolicBp, 0.133_322_387_415, "kPa").unwrap();
        assert!(close(v, 1.0), "{v}");
    }

    #[test]
    fn glucose_both_ways() {
        let (v, _) = to_canonical(Measurand::Glucose, 5.5, "mmol/L").unwrap();
        assert!(close(v, 99.0858), "{v}");
        assert_eq!(
            to_canonical(Measurand::Glucose, 99.0, "mg/dL").unwrap(),
            (99.0, false)
        );
    }

    #[test]
    fn pounds_are_exact() {
        let (v, _) = to_canonical(Measurand::Weight, 100.0, "[lb_av]").unwrap();
        assert!(close(v, 45.359237), "{v}");
        let (v, _) = to_canonical(Measurand::Weight, 16.0, "[oz_av]").unwrap();
        assert!(close(v, 0.45359237), "{v}");
    }

    #[test]
    fn synonyms_are_not_conversions() {
        assert_eq!(
            to_canonical(Measurand::HeartRate, 72.0, "{beats}/min").unwrap(),
            (72.0, false)
        );
    }

    #[test]
    fn a_unit_that_does_not_fit_is_refused_with_the_alternatives() {
        let err = to_canonical(Measurand::HeartRate, 72.0, "mm[Hg]").unwrap_err();
        assert_eq!(
            err.to_string(),
            "unit \"mm[Hg]\" does not fit heart_rate; expected /min, {beats}/min, {beat}/min, 1/min"
        );
        assert!(
            to_canonical(Measurand::Temperature, 37.0, "cel").is_err(),
            "UCUM is case-sensitive"
        );
        assert!(to_canonical(Measurand::Spo2, 0.97, "").is_err());
    }

    #[test]
    fn every_accepted_unit_converts() {
        for m in Measurand::ALL {
            for unit in accepted_units(m) {
                assert!(to_canonical(m, 1.0, unit).is_ok(), "{m:?} {unit}");
            }
            if let Some(first) = accepted_units(m).first() {
                assert_eq!(*first, m.canonical_unit());
            }
        }
    }
}
