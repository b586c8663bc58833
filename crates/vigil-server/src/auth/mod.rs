//! Who is calling: people and systems with signed bearer tokens, devices with their own secrets.
//!
//! Tokens are HS256 JWTs signed with a key kept in the data directory (created on first use, file
//! mode 0600), so `vigil token issue` and the running server agree without any network call. The
//! access decision itself lives in `vigil-access`; OpenID Connect tokens are checked in [`oidc`],
//! local passwords in [`password`], browser sessions in [`session`].

use std::io::Write;
use std::path::Path;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use vigil_model::PatientId;
use vigil_store::SecretHash;

pub mod oidc;
pub mod password;
pub mod session;

const ISSUER: &str = "vigil";
const AUDIENCE: &str = "vigil-api";
const KEY_FILE: &str = "token-signing.key";

pub use vigil_access::{Principal, Role, Scopes};

/// The claims of a Vigil-issued token. `scope` and `patient` follow SMART on FHIR: the granted
/// scopes, and the patient in context for `patient/` scopes.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Claims {
    sub: String,
    role: String,
    iss: String,
    aud: String,
    iat: i64,
    exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    patient: Option<String>,
}

/// What a token Vigil issues says about its bearer.
#[derive(Debug, Clone)]
pub struct TokenGrant {
    pub subject: String,
    pub role: Role,
    /// `None`: the role's default scopes.
    pub scopes: Option<Scopes>,
    /// The patient in context; for a patient's own token, themself (defaults to the subject).
    pub patient: Option<PatientId>,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("the token is not valid: {0}")]
    BadToken(String),
    #[error("token signing key: {0}")]
    Key(#[from] std::io::Error),
    #[error("could not sign the token: {0}")]
    Sign(String),
}

/// Signs and checks user tokens.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl TokenKeys {
    /// Loads `<data_dir>/keys/token-signing.key`, creating it (32 random bytes) if absent.
    pub fn load_or_create(data_dir: &Path) -> Result<TokenKeys, AuthError> {
        Ok(TokenKeys::from_secret(&load_or_create_secret(
            data_dir, KEY_FILE,
        )?))
    }

    pub fn from_secret(secret: &[u8]) -> TokenKeys {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 30;
        TokenKeys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
        }
    }

    /// A token with the role's default scopes (a patient's token is about the subject).
    pub fn issue(
        &self,
        role: Role,
        subject: &str,
        ttl: chrono::Duration,
    ) -> Result<String, AuthError> {
        self.issue_grant(
            &TokenGrant {
                subject: subject.to_owned(),
                role,
                scopes: None,
                patient: None,
            },
            ttl,
        )
    }

    pub fn issue_grant(
        &self,
        grant: &TokenGrant,
        ttl: chrono::Duration,
    ) -> Result<String, AuthError> {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: grant.subject.clone(),
            role: grant.role.as_str().to_owned(),
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            iat: now,
            exp: now + ttl.num_seconds(),
            scope: grant.scopes.as_ref().map(ToString::to_string),
            patient: grant.patient.as_ref().map(ToString::to_string),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| AuthError::Sign(e.to_string()))
    }

    pub fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| AuthError::BadToken(e.to_string()))?
            .claims;
        let role = Role::parse(&claims.role)
            .ok_or_else(|| AuthError::BadToken(format!("unknown role {:?}", claims.role)))?;
        let patient = match (&claims.patient, role) {
            (Some(p), _) => Some(
                PatientId::new(p.clone())
                    .map_err(|_| AuthError::BadToken("the patient claim is not an id".into()))?,
            ),
            (None, Role::Patient) => PatientId::new(claims.sub.clone()).ok(),
            (None, _) => None,
        };
        Ok(Principal {
            scopes: match &claims.scope {
                Some(list) => Scopes::from_granted(list),
                None => role.default_scopes(),
            },
            subject: claims.sub,
            role,
            patient,
            organization: None,
        })
    }
}

/// Loads `<data_dir>/keys/<file>`, creating it (32 random bytes, mode 0600) if absent. Safe
/// against two processes creating it at once: the second uses the first one's.
fn load_or_create_secret(data_dir: &Path, file: &str) -> Result<Vec<u8>, AuthError> {
    let dir = data_dir.join("keys");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(file);
    let secret = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut key = [0u8; 32];
            rand::rng().fill_bytes(&mut key);
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            match options.open(&path) {
                Ok(mut f) => {
                    f.write_all(&key)?;
                    f.sync_all()?;
                    key.to_vec()
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => std::fs::read(&path)?,
                Err(e) => return Err(e.into()),
            }
        }
        Err(e) => return Err(e.into()),
    };
    if secret.len() < 32 {
        return Err(AuthError::Key(std::io::Error::other(format!(
            "{} is shorter than 32 bytes",
            path.display()
        ))));
    }
    Ok(secret)
}

/// Stable pseudonyms for the research view: a keyed hash (HMAC-SHA256) of the real id, so the
/// same patient always gets the same pseudonym but nobody without the key can link it back, not
/// even by hashing every known patient id.
#[derive(Clone)]
pub struct Pseudonyms {
    key: Vec<u8>,
}

impl Pseudonyms {
    /// Loads `<data_dir>/keys/pseudonym.key`, creating it if absent.
    pub fn load_or_create(data_dir: &Path) -> Result<Pseudonyms, AuthError> {
        Ok(Pseudonyms {
            key: load_or_create_secret(data_dir, "pseudonym.key")?,
        })
    }

    /// `anon-` and 20 hex digits (80 bits), valid as a FHIR id.
    pub fn of(&self, resource_type: &str, id: &str) -> String {
        use hmac::Mac;
        let mut mac = match hmac::Hmac::<Sha256>::new_from_slice(&self.key) {
            Ok(mac) => mac,
            // HMAC takes keys of any length; this arm cannot run.
            Err(_) => return "anon".into(),
        };
        mac.update(resource_type.as_bytes());
        mac.update(b"/");
        mac.update(id.as_bytes());
        let digest = mac.finalize().into_bytes();
        format!("anon-{}", hex::encode(&digest[..10]))
    }
}

/// A new device secret: 32 random bytes, hex-encoded (64 characters, safe in any MQTT client).
pub fn new_device_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

pub fn hash_device_secret(secret: &str) -> SecretHash {
    Sha256::digest(secret.as_bytes()).into()
}

/// Compares in constant time, so response timing says nothing about how close a guess was. A
/// revoked device matches nothing.
pub fn device_secret_matches(stored: &SecretHash, presented: &str) -> bool {
    if *stored == vigil_store::REVOKED {
        return false;
    }
    let presented = hash_device_secret(presented);
    stored.ct_eq(&presented).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_reject_tampering() {
        let keys = TokenKeys::from_secret(&[7u8; 32]);
        let token = keys
            .issue(Role::Clinician, "nadia", chrono::Duration::hours(1))
            .unwrap();
        assert_eq!(
            keys.verify(&token).unwrap(),
            Principal::new("nadia", Role::Clinician)
        );
        let scoped = keys
            .issue_grant(
                &TokenGrant {
                    subject: "ehr".into(),
                    role: Role::Integration,
                    scopes: Some(Scopes::parse("patient/Observation.rs").unwrap()),
                    patient: Some(PatientId::new("p1").unwrap()),
                },
                chrono::Duration::hours(1),
            )
            .unwrap();
        let principal = keys.verify(&scoped).unwrap();
        assert_eq!(principal.scopes.to_string(), "patient/Observation.rs");
        assert_eq!(principal.patient, Some(PatientId::new("p1").unwrap()));
        let own = keys
            .issue(Role::Patient, "p7", chrono::Duration::hours(1))
            .unwrap();
        assert_eq!(
            keys.verify(&own).unwrap().patient,
            Some(PatientId::new("p7").unwrap()),
            "a patient's token is about the patient it names"
        );
        let other = TokenKeys::from_secret(&[8u8; 32]);
        assert!(other.verify(&token).is_err(), "signed with another key");
        let expired = keys
            .issue(Role::Admin, "sam", chrono::Duration::hours(-1))
            .unwrap();
        assert!(keys.verify(&expired).is_err(), "expired");
        assert!(keys.verify("not.a.token").is_err());
    }

    #[test]
    fn the_signing_key_is_created_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let a = TokenKeys::load_or_create(dir.path()).unwrap();
        let b = TokenKeys::load_or_create(dir.path()).unwrap();
        let token = a
            .issue(Role::Admin, "sam", chrono::Duration::minutes(5))
            .unwrap();
        assert!(b.verify(&token).is_ok());
    }

    #[test]
    fn device_secrets_are_checked_by_hash() {
        let secret = new_device_secret();
        assert_eq!(secret.len(), 64);
        let stored = hash_device_secret(&secret);
        assert!(device_secret_matches(&stored, &secret));
        assert!(!device_secret_matches(&stored, "guess"));
        assert!(!device_secret_matches(&stored, ""));
    }
}
