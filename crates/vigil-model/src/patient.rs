//! The person being watched.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::PatientId;

/// Administrative gender, as FHIR's `AdministrativeGender` value set defines it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Gender {
    Male,
    Female,
    Other,
    Unknown,
}

impl Gender {
    pub fn as_str(self) -> &'static str {
        match self {
            Gender::Male => "male",
            Gender::Female => "female",
            Gender::Other => "other",
            Gender::Unknown => "unknown",
        }
    }
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "male" => Some(Gender::Male),
            "female" => Some(Gender::Female),
            "other" => Some(Gender::Other),
            "unknown" => Some(Gender::Unknown),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Patient {
    pub id: PatientId,
    /// The name as a person would write it ("Jan Havel"); always present.
    pub name: String,
    /// Family name, when known separately (FHIR `HumanName.family`).
    pub family: Option<String>,
    /// Given names, when known separately (FHIR `HumanName.given`).
    pub given: Vec<String>,
    /// Hospital medical record number, the identifier HL7 v2 feeds carry in PID-3.
    pub mrn: Option<String>,
    pub birth_date: Option<NaiveDate>,
    pub gender: Option<Gender>,
    pub active: bool,
}

impl Patient {
    /// A patient known only by identifier and a display name, as the CLI creates them.
    pub fn new(id: PatientId, name: impl Into<String>) -> Self {
        Patient {
            id,
            name: name.into(),
            family: None,
            given: Vec::new(),
            mrn: None,
            birth_date: None,
            gender: None,
            active: true,
        }
    }
}
