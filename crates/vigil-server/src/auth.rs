//! Who is calling: people and systems with signed bearer tokens, devices with their own secrets.
//!
//! Tokens are HS256 JWTs signed with a key kept in the data directory (created on first use, file
//! mode 0600), so `vigil token issue` and the running server agree without any network call. The
//! full access model (OIDC, SMART scopes, consent) builds on [`Principal`].

use std::io::Write;
use std::path::Path;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use vigil_store::SecretHash;

const ISSUER: &str = "vigil";
const AUDIENCE: &str = "vigil-api";
const KEY_FILE: &str = "token-signing.key";

/// What a person or system may do, broadly. Finer rules (care teams, consent) come later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Clinician,
    Patient,
    Integration,
}

impl Role {
    pub fn parse(raw: &str) -> Option<Role> {
        match raw {
            "admin" => Some(Role::Admin),
            "clinician" => Some(Role::Clinician),
            "patient" => Some(Role::Patient),
            "integration" => Some(Role::Integration),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Clinician => "clinician",
            Role::Patient => "patient",
            Role::Integration => "integration",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Claims {
    sub: String,
    role: Role,
    iss: String,
    aud: String,
    iat: i64,
    exp: i64,
}

/// An authenticated caller of the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub subject: String,
    pub role: Role,
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
        let dir = data_dir.join("keys");
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(KEY_FILE);
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
                    Ok(mut file) => {
                        file.write_all(&key)?;
                        file.sync_all()?;
                        key.to_vec()
                    }
                    // Another process created it first: use theirs.
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        std::fs::read(&path)?
                    }
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
        Ok(TokenKeys::from_secret(&secret))
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

    pub fn issue(
        &self,
        role: Role,
        subject: &str,
        ttl: chrono::Duration,
    ) -> Result<String, AuthError> {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: subject.to_owned(),
            role,
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            iat: now,
            exp: now + ttl.num_seconds(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| AuthError::Sign(e.to_string()))
    }

    pub fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| AuthError::BadToken(e.to_string()))?;
        Ok(Principal {
            subject: data.claims.sub,
            role: data.claims.role,
        })
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
            Principal {
                subject: "nadia".into(),
                role: Role::Clinician
            }
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
