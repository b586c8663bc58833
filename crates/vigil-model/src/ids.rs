//! Identifiers chosen by people (ward staff, integration engineers), so they are validated once at
//! the edge and then trusted everywhere.
//!
//! The allowed alphabet is the intersection of what is safe in an MQTT topic level, a URL path
//! segment, a FHIR `id` (`[A-Za-z0-9\-\.]{1,64}`) and a log line: ASCII letters, digits, `-` and `.`.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("identifier is empty")]
    Empty,
    #[error("identifier is {0} characters long; at most 64 are allowed")]
    TooLong(usize),
    #[error("identifier contains {0:?}; only ASCII letters, digits, '-' and '.' are allowed")]
    BadCharacter(char),
}

fn check(raw: &str) -> Result<(), IdError> {
    if raw.is_empty() {
        return Err(IdError::Empty);
    }
    if raw.len() > 64 {
        return Err(IdError::TooLong(raw.chars().count()));
    }
    match raw
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '.'))
    {
        Some(c) => Err(IdError::BadCharacter(c)),
        None => Ok(()),
    }
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn new(raw: impl Into<String>) -> Result<Self, IdError> {
                let raw = raw.into();
                check(&raw)?;
                Ok(Self(raw))
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(raw: String) -> Result<Self, IdError> {
                Self::new(raw)
            }
        }
        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(raw: &str) -> Result<Self, IdError> {
                Self::new(raw)
            }
        }
        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }
        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

id_type!(
    /// A patient's identifier in Vigil (also the FHIR `Patient.id`).
    PatientId
);
id_type!(
    /// A device's identifier: its MQTT username, its topic level and its FHIR `Device.id`.
    DeviceId
);
id_type!(
    /// A person's or a system's account name in Vigil (a nurse's login, an EHR's client id).
    UserId
);
id_type!(
    /// A care team (a ward's nurses, a home-monitoring service): the unit clinicians see patients by.
    CareTeamId
);
id_type!(
    /// A patient's consent to share (also the FHIR `Consent.id`).
    ConsentId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_fhir_style_ids() {
        assert!(PatientId::new("bed-12.a").is_ok());
        assert!(DeviceId::new("A".repeat(64)).is_ok());
    }

    #[test]
    fn refuses_what_would_break_a_topic_or_a_path() {
        assert_eq!(PatientId::new(""), Err(IdError::Empty));
        assert_eq!(DeviceId::new("a/b"), Err(IdError::BadCharacter('/')));
        assert_eq!(DeviceId::new("+"), Err(IdError::BadCharacter('+')));
        assert_eq!(DeviceId::new("#"), Err(IdError::BadCharacter('#')));
        assert_eq!(DeviceId::new("a b"), Err(IdError::BadCharacter(' ')));
        assert_eq!(DeviceId::new("é"), Err(IdError::BadCharacter('é')));
        assert_eq!(DeviceId::new("x".repeat(65)), Err(IdError::TooLong(65)));
    }

    #[test]
    fn deserialising_validates() {
        let bad: Result<DeviceId, _> = serde_json::from_str("\"a/b\"");
        assert!(bad.is_err());
    }
}
