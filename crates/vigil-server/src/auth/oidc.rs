//! OpenID Connect access tokens from an external identity provider (Keycloak, Entra ID, Okta…):
//! Vigil is the resource server. A token is accepted when its signature verifies with a key from
//! the provider's JWKS (asymmetric algorithms only), its issuer and audience are the configured
//! ones, and it has not expired. Its claims give the principal: the subject (the `sub` claim, or
//! a configured one such as `preferred_username`, which must match the Vigil account used in care
//! teams), the role (a configured claim, default `vigil_role`), the SMART scopes (`scope`) and
//! the patient in context (`patient`).
//!
//! Keys are fetched at start-up and again when a token names a key id not seen yet (the provider
//! rotated its keys), at most once a minute so that forged key ids cannot make Vigil hammer the
//! provider.

use std::path::PathBuf;
use std::time::{Duration, Instant as Clock};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use tokio::sync::RwLock;
use vigil_access::{Principal, Role, Scopes};
use vigil_model::PatientId;

/// How often at most the JWKS is fetched again for an unknown key id.
const REFRESH_AT_MOST_EVERY: Duration = Duration::from_secs(60);
/// Clock skew tolerated on `exp` and `nbf`.
const LEEWAY_SECONDS: u64 = 30;

/// Where the provider's signing keys come from.
#[derive(Debug, Clone, PartialEq)]
pub enum JwksSource {
    /// The provider's `jwks_uri` (HTTPS; plain HTTP only on loopback).
    Url(String),
    /// A JWKS document on disk (air-gapped sites, tests).
    File(PathBuf),
}

/// Resolved OpenID Connect settings.
#[derive(Debug, Clone, PartialEq)]
pub struct OidcConfig {
    pub issuer: String,
    pub audience: String,
    pub jwks: JwksSource,
    /// The claim naming the Vigil role.
    pub role_claim: String,
    /// The claim naming the account (default `sub`).
    pub subject_claim: String,
    /// The role when the token names none; `None` refuses such tokens.
    pub default_role: Option<Role>,
}

#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("cannot load the identity provider's keys: {0}")]
    Keys(String),
    #[error("the JWKS URL must use https (plain http is allowed on loopback only): {0}")]
    InsecureJwksUrl(String),
    #[error("the token is not valid: {0}")]
    BadToken(String),
}

pub struct OidcVerifier {
    config: OidcConfig,
    keys: RwLock<(JwkSet, Clock)>,
    http: reqwest::Client,
}

impl OidcVerifier {
    /// Loads the keys now, so a misconfiguration stops the start instead of every login.
    pub async fn start(config: OidcConfig) -> Result<OidcVerifier, OidcError> {
        if let JwksSource::Url(url) = &config.jwks {
            let parsed = url::Url::parse(url).map_err(|e| OidcError::Keys(e.to_string()))?;
            let loopback = matches!(
                parsed.host(),
                Some(url::Host::Ipv4(ip)) if ip.is_loopback()
            ) || matches!(parsed.host(), Some(url::Host::Ipv6(ip)) if ip.is_loopback())
                || parsed.host_str() == Some("localhost");
            if parsed.scheme() != "https" && !(parsed.scheme() == "http" && loopback) {
                return Err(OidcError::InsecureJwksUrl(url.clone()));
            }
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| OidcError::Keys(e.to_string()))?;
        let set = fetch(&config.jwks, &http).await?;
        Ok(OidcVerifier {
            config,
            keys: RwLock::new((set, Clock::now())),
            http,
        })
    }

    pub fn issuer(&self) -> &str {
        &self.config.issuer
    }

    pub async fn verify(&self, token: &str) -> Result<Principal, OidcError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| OidcError::BadToken(e.to_string()))?;
        // Never a shared-secret algorithm: the provider's public key must not become an HMAC key.
        let asymmetric = matches!(
            header.alg,
            Algorithm::RS256
                | Algorithm::RS384
                | Algorithm::RS512
                | Algorithm::PS256
                | Algorithm::PS384
                | Algorithm::PS512
                | Algorithm::ES256
                | Algorithm::ES384
                | Algorithm::EdDSA
        );
        if !asymmetric {
            return Err(OidcError::BadToken(format!(
                "algorithm {:?} is not accepted",
                header.alg
            )));
        }
        let kid = header
            .kid
            .ok_or_else(|| OidcError::BadToken("the token names no key (kid)".into()))?;
        let key = self.key(&kid).await?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(&[&self.config.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = LEEWAY_SECONDS;
        // jsonwebtoken checks `nbf` only when asked; RFC 7519 §4.1.5 says not before it.
        validation.validate_nbf = true;
        let claims =
            jsonwebtoken::decode::<serde_json::Map<String, Value>>(token, &key, &validation)
                .map_err(|e| OidcError::BadToken(e.to_string()))?
                .claims;
        self.principal(&claims)
    }

    fn principal(&self, claims: &serde_json::Map<String, Value>) -> Result<Principal, OidcError> {
        let text = |name: &str| claims.get(name).and_then(Value::as_str);
        let subject = text(&self.config.subject_claim).ok_or_else(|| {
            OidcError::BadToken(format!("no {} claim", self.config.subject_claim))
        })?;
        let role = match claims.get(&self.config.role_claim) {
            Some(Value::String(r)) => Role::parse(r),
            // Providers often put roles in a list: the first Vigil role in it.
            Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).find_map(Role::parse),
            _ => None,
        }
        .or(self.config.default_role)
        .ok_or_else(|| OidcError::BadToken("the token names no Vigil role".into()))?;
        if role == Role::Device {
            return Err(OidcError::BadToken(
                "devices sign in with their own credentials, not identity-provider tokens".into(),
            ));
        }
        let scopes = match text("scope") {
            Some(list) => Scopes::from_granted(list),
            None => role.default_scopes(),
        };
        let patient = text("patient")
            .map(|p| {
                PatientId::new(p)
                    .map_err(|_| OidcError::BadToken("the patient claim is not an id".into()))
            })
            .transpose()?;
        Ok(Principal {
            subject: subject.to_owned(),
            role,
            scopes,
            patient,
            organization: text("organization").map(str::to_owned),
        })
    }

    async fn key(&self, kid: &str) -> Result<DecodingKey, OidcError> {
        {
            let keys = self.keys.read().await;
            if let Some(jwk) = keys.0.find(kid) {
                return DecodingKey::from_jwk(jwk).map_err(|e| OidcError::Keys(e.to_string()));
            }
            if keys.1.elapsed() < REFRESH_AT_MOST_EVERY {
                return Err(OidcError::BadToken("signed with an unknown key".into()));
            }
        }
        let mut keys = self.keys.write().await;
        if keys.0.find(kid).is_none() && keys.1.elapsed() >= REFRESH_AT_MOST_EVERY {
            keys.1 = Clock::now();
            match fetch(&self.config.jwks, &self.http).await {
                Ok(set) => keys.0 = set,
                Err(e) => {
                    tracing::warn!(error = %e, "could not refresh the identity provider's keys")
                }
            }
        }
        let jwk = keys
            .0
            .find(kid)
            .ok_or_else(|| OidcError::BadToken("signed with an unknown key".into()))?;
        DecodingKey::from_jwk(jwk).map_err(|e| OidcError::Keys(e.to_string()))
    }
}

async fn fetch(source: &JwksSource, http: &reqwest::Client) -> Result<JwkSet, OidcError> {
    let body = match source {
        JwksSource::File(path) => tokio::fs::read(path)
            .await
            .map_err(|e| OidcError::Keys(format!("{}: {e}", path.display())))?,
        JwksSource::Url(url) => http
            .get(url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| OidcError::Keys(e.to_string()))?
            .bytes()
            .await
            .map_err(|e| OidcError::Keys(e.to_string()))?
            .to_vec(),
    };
    serde_json::from_slice(&body).map_err(|e| OidcError::Keys(format!("not a JWKS document: {e}")))
}
