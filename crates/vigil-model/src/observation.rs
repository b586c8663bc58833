//! Readings as devices report them and Observations as clinicians read them.
//!
//! A [`Measurement`] is one validated value in its canonical unit. Measurements taken together
//! become [`Reading`]s (blood pressure's systolic, diastolic and mean become one panel), and a
//! reading attributed to a patient and stored is an [`Observation`].

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{DeviceId, Instant, Measurand, ObservationCode, PatientId};

/// A value with its UCUM unit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Quantity {
    pub value: f64,
    pub unit: String,
}

impl Quantity {
    pub fn new(value: f64, unit: impl Into<String>) -> Self {
        Quantity {
            value,
            unit: unit.into(),
        }
    }
}

/// FHIR `ObservationStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ObservationStatus {
    Registered,
    Preliminary,
    #[default]
    Final,
    Amended,
    Corrected,
    Cancelled,
    EnteredInError,
    Unknown,
}

impl ObservationStatus {
    pub const ALL: [ObservationStatus; 8] = [
        ObservationStatus::Registered,
        ObservationStatus::Preliminary,
        ObservationStatus::Final,
        ObservationStatus::Amended,
        ObservationStatus::Corrected,
        ObservationStatus::Cancelled,
        ObservationStatus::EnteredInError,
        ObservationStatus::Unknown,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            ObservationStatus::Registered => "registered",
            ObservationStatus::Preliminary => "preliminary",
            ObservationStatus::Final => "final",
            ObservationStatus::Amended => "amended",
            ObservationStatus::Corrected => "corrected",
            ObservationStatus::Cancelled => "cancelled",
            ObservationStatus::EnteredInError => "entered-in-error",
            ObservationStatus::Unknown => "unknown",
        }
    }
    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }
}

/// What Vigil knows about how trustworthy a value is, beyond its status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct QualityFlags(u16);

impl QualityFlags {
    /// The device sent another unit; the value was converted exactly to the canonical one.
    pub const CONVERTED_UNIT: QualityFlags = QualityFlags(1);
    /// The device flagged the value as questionable (weak signal, motion, low perfusion).
    pub const QUESTIONABLE: QualityFlags = QualityFlags(1 << 1);
    /// The device reported an artifact (probe off, lead off, cuff error).
    pub const ARTIFACT: QualityFlags = QualityFlags(1 << 2);
    /// The device gave no time for the value; the time Vigil received it is used.
    pub const TIME_FROM_RECEIPT: QualityFlags = QualityFlags(1 << 3);

    const NAMES: [(QualityFlags, &'static str); 4] = [
        (QualityFlags::CONVERTED_UNIT, "converted-unit"),
        (QualityFlags::QUESTIONABLE, "questionable"),
        (QualityFlags::ARTIFACT, "artifact"),
        (QualityFlags::TIME_FROM_RECEIPT, "time-from-receipt"),
    ];

    pub const fn empty() -> Self {
        QualityFlags(0)
    }
    pub const fn bits(self) -> u16 {
        self.0
    }
    /// Rebuilds flags from stored bits, ignoring bits this version does not know.
    pub fn from_bits_truncate(bits: u16) -> Self {
        let known = Self::NAMES.iter().fold(0, |acc, (f, _)| acc | f.0);
        QualityFlags(bits & known)
    }
    pub fn contains(self, other: QualityFlags) -> bool {
        self.0 & other.0 == other.0
    }
    pub fn insert(&mut self, other: QualityFlags) {
        self.0 |= other.0;
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    /// The flag's name as the payload contract and the API spell it.
    pub fn parse(name: &str) -> Option<QualityFlags> {
        Self::NAMES
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(f, _)| *f)
    }
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        Self::NAMES
            .into_iter()
            .filter(move |(f, _)| self.contains(*f))
            .map(|(_, n)| n)
    }
}

impl std::ops::BitOr for QualityFlags {
    type Output = QualityFlags;
    fn bitor(self, rhs: QualityFlags) -> QualityFlags {
        QualityFlags(self.0 | rhs.0)
    }
}

impl Serialize for QualityFlags {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.names())
    }
}

impl<'de> Deserialize<'de> for QualityFlags {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let names: Vec<String> = Vec::deserialize(d)?;
        names.iter().try_fold(QualityFlags::empty(), |acc, n| {
            QualityFlags::parse(n)
                .map(|f| acc | f)
                .ok_or_else(|| serde::de::Error::custom(format!("unknown quality flag {n:?}")))
        })
    }
}

/// Level of consciousness on the ACVPU scale used by NEWS2 (RCP 2017, Chart 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Acvpu {
    /// A: alert.
    Alert,
    /// C: new confusion (new-onset confusion, disorientation or agitation).
    NewConfusion,
    /// V: responds to voice.
    Voice,
    /// P: responds to pain.
    Pain,
    /// U: unresponsive.
    Unresponsive,
}

impl Acvpu {
    pub const ALL: [Acvpu; 5] = [
        Acvpu::Alert,
        Acvpu::NewConfusion,
        Acvpu::Voice,
        Acvpu::Pain,
        Acvpu::Unresponsive,
    ];
    /// The one-letter code devices and clinicians use.
    pub fn code(self) -> &'static str {
        match self {
            Acvpu::Alert => "A",
            Acvpu::NewConfusion => "C",
            Acvpu::Voice => "V",
            Acvpu::Pain => "P",
            Acvpu::Unresponsive => "U",
        }
    }
    pub fn display(self) -> &'static str {
        match self {
            Acvpu::Alert => "Alert",
            Acvpu::NewConfusion => "New confusion",
            Acvpu::Voice => "Responds to voice",
            Acvpu::Pain => "Responds to pain",
            Acvpu::Unresponsive => "Unresponsive",
        }
    }
    /// Parses the one-letter code (upper case, as the payload contract spells it).
    pub fn parse(code: &str) -> Option<Acvpu> {
        Self::ALL.into_iter().find(|a| a.code() == code)
    }
}

/// The value of one measurement: a number in the measurand's canonical unit, or a coded value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MeasuredValue {
    /// In `measurand.canonical_unit()`.
    Number(f64),
    /// For [`Measurand::Consciousness`].
    Acvpu(Acvpu),
    /// For [`Measurand::SupplementalOxygen`] sent as yes/no.
    OnOxygen(bool),
}

/// One validated value, in its measurand's canonical unit, at one time.
#[derive(Debug, Clone, PartialEq)]
pub struct Measurement {
    pub measurand: Measurand,
    pub value: MeasuredValue,
    pub effective: Instant,
    pub status: ObservationStatus,
    pub quality: QualityFlags,
}

/// A part of a panel observation (blood pressure's systolic, diastolic, mean).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObservationComponent {
    pub measurand: Measurand,
    pub value: Quantity,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObservationValue {
    Quantity(Quantity),
    Components(Vec<ObservationComponent>),
    /// Level of consciousness.
    Acvpu(Acvpu),
    /// On supplemental oxygen (true) or on air (false).
    OnOxygen(bool),
    /// For an [`ObservationCode::Event`](crate::ObservationCode::Event): the device detected it.
    Detected,
    /// The device reported that it could not measure: there is no value, and it is never read
    /// as a normal one.
    Absent(AbsentReason),
    /// For [`ObservationCode::News2`](crate::ObservationCode::News2).
    News2(News2Value),
}

/// A NEWS2 assessment as recorded: the total, the band, and what it was computed from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct News2Value {
    pub total: u8,
    /// `low`, `low-medium`, `medium` or `high`.
    pub band: String,
    /// False when a parameter was missing or stale: the total is then a lower bound.
    pub complete: bool,
    /// The SpO2 scale used, 1 or 2.
    pub spo2_scale: u8,
    /// Each parameter's sub-score by name (`respiration_rate`, `spo2`, `air_or_oxygen`,
    /// `systolic_bp`, `pulse`, `consciousness`, `temperature`); `None` when it was missing.
    pub scores: Vec<(String, Option<u8>)>,
}

/// Why a device reported a measurand without a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AbsentReason {
    /// The sensor is off the patient or disconnected (SpO2 probe off, ECG lead off, BLE PLX
    /// "sensor disconnected"): a technical alarm condition, not a physiological one.
    SensorOff,
    /// The device could not obtain the value, without saying why (HL7 v2 OBX-11 `X`).
    NotObtained,
}

impl AbsentReason {
    pub fn code(self) -> &'static str {
        match self {
            AbsentReason::SensorOff => "sensor_off",
            AbsentReason::NotObtained => "not_obtained",
        }
    }
}

/// What a device reported for one observation code at one time, before it is attributed to a
/// patient.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub code: ObservationCode,
    pub value: ObservationValue,
    pub effective: Instant,
    pub status: ObservationStatus,
    pub quality: QualityFlags,
}

/// Groups measurements into readings, keeping their order: values of one blood-pressure
/// measurement (components with the same time and status) become one panel reading; everything
/// else stays one reading per measurement.
pub fn assemble_readings(measurements: Vec<Measurement>) -> Vec<Reading> {
    let mut readings: Vec<Reading> = Vec::with_capacity(measurements.len());
    for m in measurements {
        let number = match m.value {
            MeasuredValue::Number(n) => n,
            MeasuredValue::Acvpu(a) => {
                readings.push(single(&m, ObservationValue::Acvpu(a)));
                continue;
            }
            MeasuredValue::OnOxygen(on) => {
                readings.push(single(&m, ObservationValue::OnOxygen(on)));
                continue;
            }
        };
        let quantity = Quantity::new(number, m.measurand.canonical_unit());
        if !m.measurand.is_bp_component() {
            readings.push(Reading {
                code: ObservationCode::Single(m.measurand),
                value: ObservationValue::Quantity(quantity),
                effective: m.effective,
                status: m.status,
                quality: m.quality,
            });
            continue;
        }
        let panel = readings.iter_mut().find(|r| {
            r.code == ObservationCode::BloodPressure
                && r.effective == m.effective
                && r.status == m.status
                && matches!(&r.value, ObservationValue::Components(c)
                    if c.iter().all(|c| c.measurand != m.measurand))
        });
        let component = ObservationComponent {
            measurand: m.measurand,
            value: quantity,
        };
        match panel {
            Some(panel) => {
                panel.quality.insert(m.quality);
                if let ObservationValue::Components(components) = &mut panel.value {
                    components.push(component);
                    components.sort_by_key(|c| c.measurand);
                }
            }
            None => readings.push(Reading {
                code: ObservationCode::BloodPressure,
                value: ObservationValue::Components(vec![component]),
                effective: m.effective,
                status: m.status,
                quality: m.quality,
            }),
        }
    }
    readings
}

fn single(m: &Measurement, value: ObservationValue) -> Reading {
    Reading {
        code: ObservationCode::Single(m.measurand),
        value,
        effective: m.effective,
        status: m.status,
        quality: m.quality,
    }
}

/// Storage-assigned identity of an Observation (also its FHIR `id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ObservationId(pub i64);

impl fmt::Display for ObservationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A stored reading, attributed to the patient its device was bound to at the reading's time.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub id: ObservationId,
    pub patient: PatientId,
    pub device: DeviceId,
    pub code: ObservationCode,
    pub value: ObservationValue,
    pub effective: Instant,
    /// When Vigil received it: with `effective`, shows transport delay and device clock skew.
    pub received: Instant,
    pub status: ObservationStatus,
    pub quality: QualityFlags,
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn m(measurand: Measurand, value: f64, sec: u32) -> Measurement {
        Measurement {
            measurand,
            value: MeasuredValue::Number(value),
            effective: Utc.with_ymd_and_hms(2026, 11, 21, 10, 0, sec).unwrap(),
            status: ObservationStatus::Final,
            quality: QualityFlags::empty(),
        }
    }

    #[test]
    fn blood_pressure_parts_at_one_time_become_one_panel() {
        let readings = assemble_readings(vec![
            m(Measurand::HeartRate, 72.0, 0),
            m(Measurand::DiastolicBp, 80.0, 0),
            m(Measurand::SystolicBp, 128.0, 0),
            m(Measurand::SystolicBp, 131.0, 5),
        ]);
        assert_eq!(readings.len(), 3);
        assert_eq!(
            readings[0].code,
            ObservationCode::Single(Measurand::HeartRate)
        );
        assert_eq!(readings[1].code, ObservationCode::BloodPressure);
        let ObservationValue::Components(parts) = &readings[1].value else {
            panic!()
        };
        assert_eq!(
            parts
                .iter()
                .map(|c| (c.measurand, c.value.value))
                .collect::<Vec<_>>(),
            vec![
                (Measurand::SystolicBp, 128.0),
                (Measurand::DiastolicBp, 80.0)
            ]
        );
        let ObservationValue::Components(later) = &readings[2].value else {
            panic!()
        };
        assert_eq!(later.len(), 1, "a later systolic is its own measurement");
    }

    #[test]
    fn a_repeated_component_at_the_same_time_opens_a_second_panel() {
        let readings = assemble_readings(vec![
            m(Measurand::SystolicBp, 128.0, 0),
            m(Measurand::SystolicBp, 129.0, 0),
        ]);
        assert_eq!(readings.len(), 2);
    }

    #[test]
    fn coded_values_stay_single_readings() {
        let mut acvpu = m(Measurand::Consciousness, 0.0, 0);
        acvpu.value = MeasuredValue::Acvpu(Acvpu::NewConfusion);
        let mut oxygen = m(Measurand::SupplementalOxygen, 0.0, 0);
        oxygen.value = MeasuredValue::OnOxygen(true);
        let readings = assemble_readings(vec![acvpu, oxygen]);
        assert_eq!(
            readings[0].value,
            ObservationValue::Acvpu(Acvpu::NewConfusion)
        );
        assert_eq!(readings[1].value, ObservationValue::OnOxygen(true));
    }

    #[test]
    fn acvpu_codes_round_trip() {
        for a in Acvpu::ALL {
            assert_eq!(Acvpu::parse(a.code()), Some(a));
        }
        assert_eq!(Acvpu::parse("a"), None);
        assert_eq!(Acvpu::parse("X"), None);
    }

    #[test]
    fn quality_flags_round_trip_by_name() {
        let flags = QualityFlags::ARTIFACT | QualityFlags::CONVERTED_UNIT;
        let json = serde_json::to_string(&flags).unwrap();
        assert_eq!(json, r#"["converted-unit","artifact"]"#);
        assert_eq!(serde_json::from_str::<QualityFlags>(&json).unwrap(), flags);
        assert!(serde_json::from_str::<QualityFlags>(r#"["shiny"]"#).is_err());
        assert_eq!(QualityFlags::from_bits_truncate(0xffff).bits(), 0b1111);
    }
}
