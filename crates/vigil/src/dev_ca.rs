//! A local development certificate authority: `vigil dev-ca` and `vigil demo`.
//!
//! Writes into one directory:
//! - `ca.pem`, `ca.key`: the CA (self-signed, 10 years). Trust `ca.pem` in clients
//!   (`curl --cacert`, `mosquitto_pub --cafile`); give it to Vigil as `[tls] client_ca` to accept
//!   the device certificates it issues.
//! - `server.pem`, `server.key`: the server certificate for `localhost`, `127.0.0.1`, `::1` and
//!   any extra host names asked for (1 year).
//! - `devices/{id}.pem`, `devices/{id}.key`: a client certificate per device, naming it by the
//!   subjectAltName URI `urn:vigil:device:{id}` (1 year).
//!
//! Files already there are reused (the CA stays the one clients were told to trust); when the
//! CA itself is new, everything it signs is issued again. Keys are written readable by the owner
//! only. This is for development and tests: the CA key lies beside what it signs, unprotected.

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use vigil_model::DeviceId;
use vigil_server::tls::DEVICE_URI_PREFIX;

#[derive(Args, Debug)]
pub struct DevCaArgs {
    /// Directory for the CA, the server certificate and the device certificates.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Issue a client certificate for this device (repeatable).
    #[arg(long = "device", value_name = "DEVICE_ID")]
    pub devices: Vec<String>,
    /// Another name or address the server certificate is valid for (repeatable); localhost,
    /// 127.0.0.1 and ::1 are always included.
    #[arg(long = "host", value_name = "NAME")]
    pub hosts: Vec<String>,
}

/// The files of a development CA directory.
#[derive(Debug, Clone)]
pub struct DevCa {
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// Device id, certificate, key.
    pub devices: Vec<(String, PathBuf, PathBuf)>,
    /// Whether the CA was created now (rather than found).
    pub created: bool,
}

impl DevCa {
    pub fn tls_settings(&self) -> vigil_server::tls::TlsSettings {
        vigil_server::tls::TlsSettings {
            cert: self.server_cert.clone(),
            key: self.server_key.clone(),
            client_ca: Some(self.ca_cert.clone()),
        }
    }
}

pub fn run(args: DevCaArgs) -> anyhow::Result<()> {
    let ca = ensure(&args.out, &args.hosts, &args.devices)?;
    println!(
        "Development CA {} {} (for development and tests only: its key is not protected).",
        ca.ca_cert.display(),
        if ca.created { "created" } else { "reused" }
    );
    println!(
        "  server certificate  {}  key {}",
        ca.server_cert.display(),
        ca.server_key.display()
    );
    for (id, cert, key) in &ca.devices {
        println!(
            "  device {id:<12} {}  key {}",
            cert.display(),
            key.display()
        );
    }
    println!();
    println!("  Vigil's configuration:");
    println!("    [tls]");
    println!("    cert = \"{}\"", ca.server_cert.display());
    println!("    key = \"{}\"", ca.server_key.display());
    println!("    client_ca = \"{}\"", ca.ca_cert.display());
    println!(
        "  Clients trust it with: curl --cacert {}   mosquitto_pub --cafile {}",
        ca.ca_cert.display(),
        ca.ca_cert.display()
    );
    Ok(())
}

/// Creates (or reuses) the CA in `dir`, the server certificate, and one client certificate per
/// device in `devices`.
pub fn ensure(dir: &Path, hosts: &[String], devices: &[String]) -> anyhow::Result<DevCa> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let ca_cert = dir.join("ca.pem");
    let ca_key = dir.join("ca.key");
    let (issuer, created) = if ca_cert.exists() && ca_key.exists() {
        let key = KeyPair::from_pem(&read(&ca_key)?)
            .with_context(|| format!("{} is not a private key", ca_key.display()))?;
        let issuer = Issuer::from_ca_cert_pem(&read(&ca_cert)?, key)
            .with_context(|| format!("{} is not a CA certificate", ca_cert.display()))?;
        (issuer, false)
    } else {
        let mut params = CertificateParams::new(Vec::new())?;
        params.distinguished_name = name("Vigil development CA (not for production)");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        validity(&mut params, 3650);
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        write_key(&ca_key, &key.serialize_pem())?;
        write(&ca_cert, &cert.pem())?;
        (Issuer::new(params, key), true)
    };

    let server_cert = dir.join("server.pem");
    let server_key = dir.join("server.key");
    if created || !server_cert.exists() || !server_key.exists() {
        let mut sans = vec![
            SanType::DnsName("localhost".try_into()?),
            SanType::IpAddress(IpAddr::from([127, 0, 0, 1])),
            SanType::IpAddress("::1".parse()?),
        ];
        for host in hosts {
            sans.push(match host.parse::<IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName(
                    host.as_str()
                        .try_into()
                        .with_context(|| format!("{host:?} is not a valid host name"))?,
                ),
            });
        }
        let mut params = CertificateParams::new(Vec::new())?;
        params.distinguished_name = name("Vigil development server");
        params.subject_alt_names = sans;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        validity(&mut params, 365);
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &issuer)?;
        write_key(&server_key, &key.serialize_pem())?;
        write(&server_cert, &cert.pem())?;
    }

    let mut issued = Vec::new();
    if !devices.is_empty() {
        std::fs::create_dir_all(dir.join("devices"))?;
    }
    for id in devices {
        let device = DeviceId::new(id.clone())
            .map_err(|e| anyhow::anyhow!("{id:?} is not a valid device id: {e}"))?;
        let cert_path = dir.join("devices").join(format!("{}.pem", device.as_str()));
        let key_path = dir.join("devices").join(format!("{}.key", device.as_str()));
        if created || !cert_path.exists() || !key_path.exists() {
            let mut params = CertificateParams::new(Vec::new())?;
            params.distinguished_name = name(device.as_str());
            params.subject_alt_names = vec![SanType::URI(
                format!("{DEVICE_URI_PREFIX}{}", device.as_str()).try_into()?,
            )];
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            validity(&mut params, 365);
            let key = KeyPair::generate()?;
            let cert = params.signed_by(&key, &issuer)?;
            write_key(&key_path, &key.serialize_pem())?;
            write(&cert_path, &cert.pem())?;
        }
        issued.push((device.as_str().to_owned(), cert_path, key_path));
    }
    Ok(DevCa {
        ca_cert,
        server_cert,
        server_key,
        devices: issued,
        created,
    })
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Vigil (development only)");
    dn.push(DnType::CommonName, common_name);
    dn
}

/// Valid from yesterday (clock skew between machines) for `days`.
fn validity(params: &mut CertificateParams, days: i64) {
    use chrono::Datelike;
    let ymd = |d: chrono::NaiveDate| rcgen::date_time_ymd(d.year(), d.month() as u8, d.day() as u8);
    let today = chrono::Utc::now().date_naive();
    params.not_before = ymd(today - chrono::Duration::days(1));
    params.not_after = ymd(today + chrono::Duration::days(days));
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// Writes a private key readable by its owner only (created so; never briefly wider).
fn write_key(path: &Path, pem: &str) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(0o600);
        // An existing file keeps its mode when opened: narrow it first.
        if path.exists() {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                .with_context(|| format!("restricting {}", path.display()))?;
        }
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(pem.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issues_then_reuses_and_the_certificates_load() {
        let dir = tempfile::tempdir().unwrap();
        let first = ensure(dir.path(), &["ward.example".into()], &["mon-1".into()]).unwrap();
        assert!(first.created);
        let ca_pem = std::fs::read(&first.ca_cert).unwrap();
        let server_pem = std::fs::read(&first.server_cert).unwrap();
        vigil_server::tls::server_config(&first.tls_settings()).unwrap();
        let device_cert = vigil_server::tls::read_certificates(&first.devices[0].1).unwrap();
        assert_eq!(
            vigil_server::tls::device_named_by(&device_cert[0])
                .unwrap()
                .as_str(),
            "mon-1"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for key in [
                &first.server_key,
                &first.devices[0].2,
                &dir.path().join("ca.key"),
            ] {
                let mode = std::fs::metadata(key).unwrap().permissions().mode();
                assert_eq!(mode & 0o777, 0o600, "{}", key.display());
            }
        }

        // Reused: the same CA and server certificate; a new device is signed by the same CA.
        let second = ensure(dir.path(), &[], &["mon-1".into(), "mon-2".into()]).unwrap();
        assert!(!second.created);
        assert_eq!(std::fs::read(&second.ca_cert).unwrap(), ca_pem);
        assert_eq!(std::fs::read(&second.server_cert).unwrap(), server_pem);
        assert_eq!(second.devices.len(), 2);
        assert!(ensure(dir.path(), &[], &["bad id!".into()]).is_err());
    }
}
