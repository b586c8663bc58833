//! The clinical vocabulary Vigil accepts: what each measurand is called by devices, how it is
//! coded (LOINC for FHIR, IEEE 11073-10101 "MDC" for device feeds), its canonical UCUM unit and
//! the range outside which a value is physiologically impossible (and so a device fault).
//!
//! Codes follow the FHIR R4 vital-signs profiles (<http://hl7.org/fhir/R4/observation-vitalsigns.html>)
//! and the MDC ↔ LOINC table in IHE PCD-01 / `shared/reference/hl7v2.md` §6.

use serde::{Deserialize, Serialize};

/// Observation category (FHIR `observation-category` code system).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Category {
    VitalSigns,
    Laboratory,
    Activity,
    /// Findings of an examination (FHIR `exam`), e.g. the level of consciousness.
    Exam,
    /// An assessment tool's result (FHIR `survey`), e.g. an early-warning score.
    Survey,
}

impl Category {
    pub fn code(self) -> &'static str {
        match self {
            Category::VitalSigns => "vital-signs",
            Category::Laboratory => "laboratory",
            Category::Activity => "activity",
            Category::Exam => "exam",
            Category::Survey => "survey",
        }
    }
    pub fn display(self) -> &'static str {
        match self {
            Category::VitalSigns => "Vital Signs",
            Category::Laboratory => "Laboratory",
            Category::Activity => "Activity",
            Category::Exam => "Exam",
            Category::Survey => "Survey",
        }
    }
}

/// One thing a device measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Measurand {
    HeartRate,
    RespRate,
    Spo2,
    SystolicBp,
    DiastolicBp,
    MeanBp,
    Temperature,
    Glucose,
    Weight,
    Height,
    Steps,
    /// Level of consciousness on the ACVPU scale (NEWS2): a coded value, not a quantity.
    Consciousness,
    /// Supplemental oxygen: on/off, or the oxygen flow in L/min.
    SupplementalOxygen,
}

/// What kind of value a measurand takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    /// A number in a UCUM unit.
    Quantity,
    /// One of A, C, V, P, U.
    Acvpu,
    /// A yes/no (on supplemental oxygen or not) or a flow in L/min.
    OxygenSupport,
}

/// An IEEE 11073-10101 code: the 32-bit code (partition × 65 536 + term code) and its reference id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MdcCode {
    pub code: u32,
    pub refid: &'static str,
}

/// Physiologically possible values, inclusive, in the canonical unit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlausibleRange {
    pub min: f64,
    pub max: f64,
}

impl Measurand {
    pub const ALL: [Measurand; 13] = [
        Measurand::HeartRate,
        Measurand::RespRate,
        Measurand::Spo2,
        Measurand::SystolicBp,
        Measurand::DiastolicBp,
        Measurand::MeanBp,
        Measurand::Temperature,
        Measurand::Glucose,
        Measurand::Weight,
        Measurand::Height,
        Measurand::Steps,
        Measurand::Consciousness,
        Measurand::SupplementalOxygen,
    ];

    /// What kind of value the measurand takes.
    pub fn value_kind(self) -> ValueKind {
        match self {
            Measurand::Consciousness => ValueKind::Acvpu,
            Measurand::SupplementalOxygen => ValueKind::OxygenSupport,
            _ => ValueKind::Quantity,
        }
    }

    /// The short name devices may send instead of a LOINC code (the public payload contract).
    pub fn short_name(self) -> &'static str {
        match self {
            Measurand::HeartRate => "heart_rate",
            Measurand::RespRate => "resp_rate",
            Measurand::Spo2 => "spo2",
            Measurand::SystolicBp => "systolic_bp",
            Measurand::DiastolicBp => "diastolic_bp",
            Measurand::MeanBp => "mean_bp",
            Measurand::Temperature => "temperature",
            Measurand::Glucose => "glucose",
            Measurand::Weight => "weight",
            Measurand::Height => "height",
            Measurand::Steps => "steps",
            Measurand::Consciousness => "acvpu",
            Measurand::SupplementalOxygen => "o2_supplemental",
        }
    }

    /// The LOINC code Vigil records this measurand under.
    pub fn loinc(self) -> &'static str {
        match self {
            Measurand::HeartRate => "8867-4",
            Measurand::RespRate => "9279-1",
            // US Core pulse oximetry: 59408-5 (by pulse oximetry) together with 2708-6 (FHIR core).
            Measurand::Spo2 => "59408-5",
            Measurand::SystolicBp => "8480-6",
            Measurand::DiastolicBp => "8462-4",
            Measurand::MeanBp => "8478-0",
            Measurand::Temperature => "8310-5",
            // Mass concentration, because mg/dL is the canonical unit (mmol/L would be 15074-8).
            Measurand::Glucose => "2339-0",
            Measurand::Weight => "29463-7",
            Measurand::Height => "8302-2",
            Measurand::Steps => "55423-8",
            // Level of responsiveness (AVPU); the NEWS2 "new confusion" answer is coded in Vigil's
            // own ACVPU code system because LOINC's answer list has no C.
            Measurand::Consciousness => "67775-7",
            // Inhaled oxygen flow rate.
            Measurand::SupplementalOxygen => "3151-8",
        }
    }

    /// Further LOINC codes that mean the same measurand and are written as extra codings.
    pub fn extra_loinc(self) -> &'static [&'static str] {
        match self {
            Measurand::Spo2 => &["2708-6"],
            _ => &[],
        }
    }

    /// LOINC codes a sender may use for this measurand (recorded under [`Measurand::loinc`]).
    fn accepted_loinc(self) -> &'static [&'static str] {
        match self {
            // Glucose by moles per volume, in blood and in capillary blood by glucometer.
            Measurand::Glucose => &["15074-8", "14743-9"],
            // Heart rate by pulse oximetry.
            Measurand::HeartRate => &["8889-8"],
            _ => &[],
        }
    }

    pub fn display(self) -> &'static str {
        match self {
            Measurand::HeartRate => "Heart rate",
            Measurand::RespRate => "Respiratory rate",
            Measurand::Spo2 => "Oxygen saturation in Arterial blood by Pulse oximetry",
            Measurand::SystolicBp => "Systolic blood pressure",
            Measurand::DiastolicBp => "Diastolic blood pressure",
            Measurand::MeanBp => "Mean blood pressure",
            Measurand::Temperature => "Body temperature",
            Measurand::Glucose => "Glucose [Mass/volume] in Blood",
            Measurand::Weight => "Body weight",
            Measurand::Height => "Body height",
            Measurand::Steps => "Number of steps in unspecified time Pedometer",
            Measurand::Consciousness => "Level of responsiveness",
            Measurand::SupplementalOxygen => "Inhaled oxygen flow rate",
        }
    }

    /// The IEEE 11073-10101 code, where one is established for the measurand.
    pub fn mdc(self) -> Option<MdcCode> {
        let (code, refid) = match self {
            Measurand::HeartRate => (147842, "MDC_ECG_HEART_RATE"),
            Measurand::RespRate => (151562, "MDC_RESP_RATE"),
            Measurand::Spo2 => (150456, "MDC_PULS_OXIM_SAT_O2"),
            Measurand::SystolicBp => (150021, "MDC_PRESS_BLD_NONINV_SYS"),
            Measurand::DiastolicBp => (150022, "MDC_PRESS_BLD_NONINV_DIA"),
            Measurand::MeanBp => (150023, "MDC_PRESS_BLD_NONINV_MEAN"),
            Measurand::Temperature => (150364, "MDC_TEMP_BODY"),
            Measurand::Glucose => (160184, "MDC_CONC_GLU_CAPILLARY_WHOLEBLOOD"),
            Measurand::Weight => (188736, "MDC_MASS_BODY_ACTUAL"),
            Measurand::Height => (188740, "MDC_LEN_BODY_ACTUAL"),
            Measurand::Steps | Measurand::Consciousness | Measurand::SupplementalOxygen => {
                return None;
            }
        };
        Some(MdcCode { code, refid })
    }

    /// The UCUM unit values are stored and served in.
    pub fn canonical_unit(self) -> &'static str {
        match self {
            Measurand::HeartRate | Measurand::RespRate => "/min",
            Measurand::Spo2 => "%",
            Measurand::SystolicBp | Measurand::DiastolicBp | Measurand::MeanBp => "mm[Hg]",
            Measurand::Temperature => "Cel",
            Measurand::Glucose => "mg/dL",
            Measurand::Weight => "kg",
            Measurand::Height => "cm",
            Measurand::Steps => "{steps}",
            // Coded: no unit. A flow of supplemental oxygen is in L/min.
            Measurand::Consciousness => "",
            Measurand::SupplementalOxygen => "L/min",
        }
    }

    /// Human-readable form of the canonical unit (FHIR `Quantity.unit`).
    pub fn unit_display(self) -> &'static str {
        match self {
            Measurand::HeartRate => "beats/minute",
            Measurand::RespRate => "breaths/minute",
            Measurand::Spo2 => "%",
            Measurand::SystolicBp | Measurand::DiastolicBp | Measurand::MeanBp => "mmHg",
            Measurand::Temperature => "°C",
            Measurand::Glucose => "mg/dL",
            Measurand::Weight => "kg",
            Measurand::Height => "cm",
            Measurand::Steps => "steps",
            Measurand::Consciousness => "",
            Measurand::SupplementalOxygen => "L/min",
        }
    }

    /// Values outside this range cannot come from a living patient; they are device faults.
    ///
    /// Deliberately wide: a surprising but possible value must reach the clinician, so these bounds
    /// sit beyond recorded extremes (e.g. survived hypothermia at 13.7 °C, glucose above 2000 mg/dL).
    pub fn plausible(self) -> PlausibleRange {
        let (min, max) = match self {
            Measurand::HeartRate => (0.0, 350.0),
            Measurand::RespRate => (0.0, 150.0),
            Measurand::Spo2 => (0.0, 100.0),
            Measurand::SystolicBp => (20.0, 320.0),
            Measurand::DiastolicBp => (5.0, 250.0),
            Measurand::MeanBp => (10.0, 280.0),
            Measurand::Temperature => (10.0, 46.0),
            Measurand::Glucose => (1.0, 3000.0),
            Measurand::Weight => (0.2, 700.0),
            Measurand::Height => (20.0, 280.0),
            Measurand::Steps => (0.0, 200_000.0),
            // Not numeric; the range is never consulted for a coded value.
            Measurand::Consciousness => (0.0, 0.0),
            // High-flow nasal oxygen reaches 60–70 L/min.
            Measurand::SupplementalOxygen => (0.0, 80.0),
        };
        PlausibleRange { min, max }
    }

    pub fn category(self) -> Category {
        match self {
            Measurand::Glucose => Category::Laboratory,
            Measurand::Steps => Category::Activity,
            Measurand::Consciousness => Category::Exam,
            _ => Category::VitalSigns,
        }
    }

    /// True for the parts of a blood-pressure panel.
    pub fn is_bp_component(self) -> bool {
        matches!(
            self,
            Measurand::SystolicBp | Measurand::DiastolicBp | Measurand::MeanBp
        )
    }

    /// Resolves what a device or an integration sent as `code`: a short name, a LOINC code, an MDC
    /// reference id (`MDC_…`) or a numeric MDC code.
    pub fn from_code(code: &str) -> Option<Measurand> {
        Measurand::ALL
            .into_iter()
            .find(|m| {
                m.short_name() == code
                    || m.loinc() == code
                    || m.extra_loinc().contains(&code)
                    || m.accepted_loinc().contains(&code)
                    || m.mdc()
                        .is_some_and(|mdc| mdc.refid == code || mdc.code.to_string() == code)
            })
            .or(match code {
                // Vendors also send the generic temperature and the other pulse-rate terms.
                "150344" | "MDC_TEMP" => Some(Measurand::Temperature),
                "149530" | "MDC_PULS_OXIM_PULS_RATE" | "149546" | "MDC_PULS_RATE_NON_INV" => {
                    Some(Measurand::HeartRate)
                }
                _ => None,
            })
    }
}

/// Something a device reports happening to its wearer, rather than a value it measured: a fall
/// detector's fall, a press of the panic (help) button. Each becomes an event alarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceEvent {
    /// A fall detector (pendant, watch, bed or floor sensor) detected a fall.
    Fall,
    /// The wearer pressed the panic (help, nurse-call) button.
    Panic,
}

impl DeviceEvent {
    pub const ALL: [DeviceEvent; 2] = [DeviceEvent::Fall, DeviceEvent::Panic];

    /// The name in the event payload, the API and storage.
    pub fn code(self) -> &'static str {
        match self {
            DeviceEvent::Fall => "fall",
            DeviceEvent::Panic => "panic",
        }
    }

    pub fn display(self) -> &'static str {
        match self {
            DeviceEvent::Fall => "Fall detected",
            DeviceEvent::Panic => "Help requested (panic button)",
        }
    }

    /// SNOMED CT concept, where one names the event exactly: 1912002 |Fall (event)|. There is no
    /// SNOMED CT or LOINC concept for a panic-button press; it is coded in Vigil's own code system.
    pub fn snomed(self) -> Option<(&'static str, &'static str)> {
        match self {
            DeviceEvent::Fall => Some(("1912002", "Fall")),
            DeviceEvent::Panic => None,
        }
    }

    pub fn from_code(code: &str) -> Option<DeviceEvent> {
        Self::ALL.into_iter().find(|e| e.code() == code)
    }
}

/// What an Observation is about: one measurand, a blood-pressure panel whose systolic,
/// diastolic and mean values are components (FHIR vital-signs BP profile), or an event a device
/// reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObservationCode {
    Single(Measurand),
    BloodPressure,
    Event(DeviceEvent),
    /// The NEWS2 total score, computed by Vigil from the other observations.
    News2,
}

/// SNOMED CT (UK clinical extension) concept of the NEWS2 total score, as the NHS England
/// early-warning-score FHIR guidance codes it; there is no LOINC code for NEWS2.
pub const NEWS2_SNOMED: (&str, &str) = (
    "1104051000000101",
    "Royal College of Physicians NEWS2 (National Early Warning Score 2) total score",
);

/// LOINC code of the blood-pressure panel.
pub const BLOOD_PRESSURE_LOINC: &str = "85354-9";

impl ObservationCode {
    /// The LOINC code, for measurements; events have none.
    pub fn loinc(self) -> Option<&'static str> {
        match self {
            ObservationCode::Single(m) => Some(m.loinc()),
            ObservationCode::BloodPressure => Some(BLOOD_PRESSURE_LOINC),
            ObservationCode::Event(_) | ObservationCode::News2 => None,
        }
    }
    pub fn display(self) -> &'static str {
        match self {
            ObservationCode::Single(m) => m.display(),
            ObservationCode::BloodPressure => "Blood pressure panel with all children optional",
            ObservationCode::Event(e) => e.display(),
            ObservationCode::News2 => "NEWS2 total score",
        }
    }
    pub fn mdc(self) -> Option<MdcCode> {
        match self {
            ObservationCode::Single(m) => m.mdc(),
            ObservationCode::BloodPressure => Some(MdcCode {
                code: 150020,
                refid: "MDC_PRESS_BLD_NONINV",
            }),
            ObservationCode::Event(_) | ObservationCode::News2 => None,
        }
    }
    /// The FHIR observation category; events have none of the standard ones.
    pub fn category(self) -> Option<Category> {
        match self {
            ObservationCode::Single(m) => Some(m.category()),
            ObservationCode::BloodPressure => Some(Category::VitalSigns),
            ObservationCode::Event(_) => None,
            ObservationCode::News2 => Some(Category::Survey),
        }
    }
    /// A stable short name, used in the API and as the storage key.
    pub fn short_name(self) -> &'static str {
        match self {
            ObservationCode::Single(m) => m.short_name(),
            ObservationCode::BloodPressure => "blood_pressure",
            ObservationCode::Event(e) => e.code(),
            ObservationCode::News2 => "news2",
        }
    }
    /// Resolves a short name, LOINC code or MDC code to an observation code. Blood-pressure
    /// component codes resolve to themselves; the panel is `blood_pressure` / 85354-9 / 150020.
    pub fn from_code(code: &str) -> Option<ObservationCode> {
        match code {
            "blood_pressure" | BLOOD_PRESSURE_LOINC | "150020" | "MDC_PRESS_BLD_NONINV" => {
                Some(ObservationCode::BloodPressure)
            }
            "news2" => Some(ObservationCode::News2),
            _ => Measurand::from_code(code)
                .map(ObservationCode::Single)
                .or_else(|| DeviceEvent::from_code(code).map(ObservationCode::Event)),
        }
    }
    /// Every observation code Vigil stores.
    pub fn all() -> impl Iterator<Item = ObservationCode> {
        std::iter::once(ObservationCode::BloodPressure)
            .chain(
                Measurand::ALL
                    .into_iter()
                    .filter(|m| !m.is_bp_component())
                    .map(ObservationCode::Single),
            )
            .chain(DeviceEvent::ALL.into_iter().map(ObservationCode::Event))
            .chain(std::iter::once(ObservationCode::News2))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_short_name_and_loinc_resolves_to_itself() {
        for m in Measurand::ALL {
            assert_eq!(Measurand::from_code(m.short_name()), Some(m));
            assert_eq!(Measurand::from_code(m.loinc()), Some(m));
            if let Some(mdc) = m.mdc() {
                assert_eq!(Measurand::from_code(mdc.refid), Some(m));
                assert_eq!(Measurand::from_code(&mdc.code.to_string()), Some(m));
            }
        }
    }

    #[test]
    fn mdc_codes_are_partition_2_terms() {
        // 32-bit code = partition × 65 536 + term code; SCADA partition is 2.
        for m in Measurand::ALL {
            if let Some(mdc) = m.mdc() {
                assert_eq!(mdc.code >> 16, 2, "{m:?}");
            }
        }
        assert_eq!(
            Measurand::HeartRate.mdc().unwrap().code,
            2 * 65_536 + 16_770
        );
    }

    #[test]
    fn alternative_codes_resolve() {
        assert_eq!(Measurand::from_code("2708-6"), Some(Measurand::Spo2));
        assert_eq!(Measurand::from_code("15074-8"), Some(Measurand::Glucose));
        assert_eq!(Measurand::from_code("150344"), Some(Measurand::Temperature));
        assert_eq!(Measurand::from_code("149530"), Some(Measurand::HeartRate));
        assert_eq!(Measurand::from_code("nonsense"), None);
        assert_eq!(Measurand::from_code(""), None);
    }

    #[test]
    fn blood_pressure_panel_resolves() {
        assert_eq!(
            ObservationCode::from_code("85354-9"),
            Some(ObservationCode::BloodPressure)
        );
        assert_eq!(
            ObservationCode::from_code("8480-6"),
            Some(ObservationCode::Single(Measurand::SystolicBp))
        );
        assert!(
            ObservationCode::all()
                .all(|c| !matches!(c, ObservationCode::Single(m) if m.is_bp_component()))
        );
    }
}
