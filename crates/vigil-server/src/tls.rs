//! Transport security: the rustls server configuration every listener (HTTP, MQTT, MLLP) shares,
//! and the device a client certificate names.
//!
//! - Protocol versions: TLS 1.3 and TLS 1.2 only. Older versions are refused during the
//!   handshake (RFC 8996 deprecates TLS 1.0 and 1.1).
//! - Cipher suites: the crypto provider's defaults, all AEAD with ephemeral key exchange
//!   (TLS 1.3: AES-256-GCM, AES-128-GCM, ChaCha20-Poly1305; TLS 1.2: ECDHE with the same).
//! - Crypto provider: aws-lc-rs, passed explicitly to every configuration built here, so it does
//!   not matter that ring is also compiled in (reqwest enables it) and no process-wide default
//!   is needed by the server. [`install_crypto_provider`] sets that default for the clients a
//!   binary builds with `ClientConfig::builder()`.
//! - Client certificates: when a client CA is configured, a client *may* present a certificate;
//!   if it does, it must chain to that CA or the handshake fails. A client without one gets
//!   through the handshake and signs in with its device secret, as over plaintext.
//!
//! A verified client certificate names a device by a subjectAltName URI
//! `urn:vigil:device:{device id}` ([`device_named_by`]). The common name is not used: it is
//! free text in many PKIs, and a server certificate's CN must never be mistaken for a device.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use vigil_model::DeviceId;

/// How a client certificate names its device: a subjectAltName URI with this prefix.
pub const DEVICE_URI_PREFIX: &str = "urn:vigil:device:";

/// Where the listeners' certificate, key and (for mutual TLS) client CA are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// PEM certificate chain, the server's certificate first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of the first certificate.
    pub key: PathBuf,
    /// PEM bundle of the CAs that issue device certificates; `None`: no client certificates.
    pub client_ca: Option<PathBuf>,
}

/// Why the TLS configuration could not be built. Each variant names the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the TLS certificate file {}: {reason}", path.display())]
    Certificate { path: PathBuf, reason: String },
    #[error(
        "the TLS certificate file {} holds no certificate (expected PEM \"BEGIN CERTIFICATE\" blocks)",
        path.display()
    )]
    NoCertificate { path: PathBuf },
    #[error(
        "cannot read the TLS private key file {} (expected one PEM private key): {reason}",
        path.display()
    )]
    Key { path: PathBuf, reason: String },
    #[error("cannot read the TLS client CA file {}: {reason}", path.display())]
    ClientCa { path: PathBuf, reason: String },
    #[error("the TLS client CA file {} holds no usable CA certificate", path.display())]
    NoClientCa { path: PathBuf },
    #[error(
        "the TLS certificate {} and key {} cannot be used together: {reason}",
        cert.display(),
        key.display()
    )]
    Unusable {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
}

/// The crypto provider every TLS configuration in Vigil uses.
pub fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Makes [`crypto_provider`] the process default, for clients built with
/// `ClientConfig::builder()`. With two providers compiled in, rustls refuses to pick one itself
/// (it panics), so binaries call this first thing. Calling it again is harmless.
pub fn install_crypto_provider() {
    // Err means a default is already installed, which is all this wants.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// The TLS versions Vigil speaks.
pub static PROTOCOL_VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// Reads the PEM certificate chain of a file.
pub fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bad = |reason: String| TlsError::Certificate {
        path: path.to_owned(),
        reason,
    };
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(e.to_string()))?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(chain)
}

/// Builds the server configuration all listeners share (ALPN is set per listener).
pub fn server_config(settings: &TlsSettings) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let chain = read_certificates(&settings.cert)?;
    let key = PrivateKeyDer::from_pem_file(&settings.key).map_err(|e| TlsError::Key {
        path: settings.key.clone(),
        reason: e.to_string(),
    })?;
    let provider = crypto_provider();
    let unusable = |reason: String| TlsError::Unusable {
        cert: settings.cert.clone(),
        key: settings.key.clone(),
        reason,
    };
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(PROTOCOL_VERSIONS)
        .map_err(|e| unusable(e.to_string()))?;
    let builder = match &settings.client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let bad = |reason: String| TlsError::ClientCa {
                path: path.clone(),
                reason,
            };
            let mut roots = RootCertStore::empty();
            let cas = CertificateDer::pem_file_iter(path)
                .map_err(|e| bad(e.to_string()))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| bad(e.to_string()))?;
            let (added, _ignored) = roots.add_parsable_certificates(cas);
            if added == 0 {
                return Err(TlsError::NoClientCa { path: path.clone() });
            }
            // Optional but verified: devices without a certificate still sign in with their
            // secret; a certificate that does not chain to the CA fails the handshake.
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .map_err(|e| bad(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder
        .with_single_cert(chain, key)
        .map_err(|e| unusable(e.to_string()))?;
    Ok(Arc::new(config))
}

/// The same configuration offering HTTP/2 and HTTP/1.1 by ALPN, for the HTTP listener.
pub fn with_http_alpn(config: &Arc<rustls::ServerConfig>) -> Arc<rustls::ServerConfig> {
    let mut http = (**config).clone();
    http.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(http)
}

/// The device a (verified) client certificate names: its one subjectAltName URI of the form
/// `urn:vigil:device:{id}`. `None` when it names none, names several, or the id is not a valid
/// device id: such a certificate proves nothing about a device, and the client must sign in
/// with a device secret instead.
pub fn device_named_by(certificate: &[u8]) -> Option<DeviceId> {
    let (_, cert) = x509_parser::parse_x509_certificate(certificate).ok()?;
    let san = cert.subject_alternative_name().ok()??;
    let mut named = san
        .value
        .general_names
        .iter()
        .filter_map(|name| match name {
            x509_parser::extensions::GeneralName::URI(uri) => uri.strip_prefix(DEVICE_URI_PREFIX),
            _ => None,
        });
    let id = named.next()?;
    if named.next().is_some() {
        return None;
    }
    DeviceId::new(id.to_owned()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Pki {
        dir: tempfile::TempDir,
        ca: rcgen::Issuer<'static, rcgen::KeyPair>,
    }

    impl Pki {
        fn new() -> Pki {
            let mut params = rcgen::CertificateParams::new(Vec::new()).unwrap();
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            params.key_usages = vec![
                rcgen::KeyUsagePurpose::KeyCertSign,
                rcgen::KeyUsagePurpose::CrlSign,
            ];
            let key = rcgen::KeyPair::generate().unwrap();
            let cert = params.self_signed(&key).unwrap();
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("ca.pem"), cert.pem()).unwrap();
            Pki {
                dir,
                ca: rcgen::Issuer::new(params, key),
            }
        }

        fn leaf(&self, sans: Vec<rcgen::SanType>) -> (Vec<u8>, String, String) {
            let mut params = rcgen::CertificateParams::new(Vec::new()).unwrap();
            params.subject_alt_names = sans;
            let key = rcgen::KeyPair::generate().unwrap();
            let cert = params.signed_by(&key, &self.ca).unwrap();
            (cert.der().to_vec(), cert.pem(), key.serialize_pem())
        }

        fn path(&self, name: &str) -> PathBuf {
            self.dir.path().join(name)
        }

        fn settings(&self) -> TlsSettings {
            let (_, cert, key) = self.leaf(vec![rcgen::SanType::DnsName(
                "localhost".try_into().unwrap(),
            )]);
            std::fs::write(self.path("server.pem"), cert).unwrap();
            std::fs::write(self.path("server.key"), key).unwrap();
            TlsSettings {
                cert: self.path("server.pem"),
                key: self.path("server.key"),
                client_ca: Some(self.path("ca.pem")),
            }
        }
    }

    fn uri(s: &str) -> rcgen::SanType {
        rcgen::SanType::URI(s.try_into().unwrap())
    }

    #[test]
    fn a_certificate_names_its_device_by_one_vigil_uri() {
        let pki = Pki::new();
        let (der, _, _) = pki.leaf(vec![
            rcgen::SanType::DnsName("mon-1.ward.example".try_into().unwrap()),
            uri("urn:vigil:device:mon-1"),
        ]);
        assert_eq!(device_named_by(&der).unwrap().as_str(), "mon-1");
    }

    #[test]
    fn a_certificate_naming_no_device_or_two_names_none() {
        let pki = Pki::new();
        let (none, _, _) = pki.leaf(vec![
            rcgen::SanType::DnsName("mon-1".try_into().unwrap()),
            uri("https://example.org/mon-1"),
        ]);
        assert_eq!(device_named_by(&none), None);
        let (two, _, _) = pki.leaf(vec![
            uri("urn:vigil:device:mon-1"),
            uri("urn:vigil:device:mon-2"),
        ]);
        assert_eq!(device_named_by(&two), None);
        let (invalid, _, _) = pki.leaf(vec![uri("urn:vigil:device:")]);
        assert_eq!(device_named_by(&invalid), None);
        assert_eq!(device_named_by(b"not a certificate"), None);
    }

    #[test]
    fn a_valid_configuration_speaks_only_tls_12_and_13() {
        let pki = Pki::new();
        let config = server_config(&pki.settings()).unwrap();
        // The provider is the one we chose, whatever else is compiled in.
        assert!(
            config
                .crypto_provider()
                .cipher_suites
                .iter()
                .all(|s| matches!(
                    s.version().version,
                    rustls::ProtocolVersion::TLSv1_2 | rustls::ProtocolVersion::TLSv1_3
                ))
        );
        assert!(
            with_http_alpn(&config)
                .alpn_protocols
                .contains(&b"h2".to_vec())
        );
    }

    #[test]
    fn each_bad_file_is_named_in_the_error() {
        let pki = Pki::new();
        let good = pki.settings();

        let mut missing = good.clone();
        missing.cert = pki.path("nope.pem");
        let err = server_config(&missing).unwrap_err();
        assert!(matches!(err, TlsError::Certificate { .. }), "{err}");
        assert!(err.to_string().contains("nope.pem"), "{err}");

        std::fs::write(pki.path("empty.pem"), "not pem\n").unwrap();
        let mut empty = good.clone();
        empty.cert = pki.path("empty.pem");
        assert!(matches!(
            server_config(&empty).unwrap_err(),
            TlsError::NoCertificate { .. }
        ));

        let mut no_key = good.clone();
        no_key.key = pki.path("empty.pem");
        let err = server_config(&no_key).unwrap_err();
        assert!(matches!(err, TlsError::Key { .. }), "{err}");
        assert!(err.to_string().contains("empty.pem"), "{err}");

        let mut no_ca = good.clone();
        no_ca.client_ca = Some(pki.path("empty.pem"));
        assert!(matches!(
            server_config(&no_ca).unwrap_err(),
            TlsError::NoClientCa { .. }
        ));

        // A key that belongs to another certificate.
        let (_, _, other_key) = pki.leaf(Vec::new());
        std::fs::write(pki.path("other.key"), other_key).unwrap();
        let mut mismatched = good.clone();
        mismatched.key = pki.path("other.key");
        let err = server_config(&mismatched).unwrap_err();
        assert!(matches!(err, TlsError::Unusable { .. }), "{err}");
    }
}
