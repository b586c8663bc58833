//! Operator commands on a data directory. They open the same SQLite database as a running server
//! (WAL mode lets both work at once), so they work whether or not the server runs.

use anyhow::{Context, bail};
use clap::Subcommand;
use vigil_model::{Device, DeviceId, DeviceKind, Patient, PatientId};
use vigil_server::auth::{self, Role, TokenKeys};
use vigil_store::{DeviceQuery, PatientQuery};

use crate::DataDir;

#[derive(Subcommand)]
pub enum PatientCommand {
    /// Register a patient.
    Add {
        #[command(flatten)]
        data: DataDir,
        /// Patient id (letters, digits, '-' and '.'; at most 64).
        #[arg(long)]
        id: String,
        /// Name as written, e.g. "Jan Havel".
        #[arg(long)]
        name: String,
        /// Medical record number, as HL7 feeds carry it in PID-3.
        #[arg(long)]
        mrn: Option<String>,
        /// The ward the patient is on (care teams covering it see the patient).
        #[arg(long)]
        ward: Option<String>,
    },
    /// List patients.
    List {
        #[command(flatten)]
        data: DataDir,
    },
}

#[derive(Subcommand)]
pub enum DeviceCommand {
    /// Register a device and print its secret (shown once; only a hash is stored).
    Add {
        #[command(flatten)]
        data: DataDir,
        /// Device id: its MQTT user name and topic level.
        #[arg(long)]
        id: String,
        /// Bind the device to this patient (from now, or from --since).
        #[arg(long)]
        patient: Option<String>,
        /// Start of the binding (RFC 3339), e.g. to attribute readings a device buffered before it
        /// was registered. Default: now.
        #[arg(long, value_name = "TIME", requires = "patient")]
        since: Option<chrono::DateTime<chrono::FixedOffset>>,
        /// What the device is, e.g. multiparameter-monitor, pulse-oximeter, bp-monitor.
        #[arg(long = "type", default_value = "multiparameter-monitor")]
        kind: String,
        #[arg(long)]
        manufacturer: Option<String>,
        #[arg(long)]
        model: Option<String>,
        #[arg(long)]
        serial: Option<String>,
        /// A Bluetooth LE peripheral's device address (e.g. C4:7C:8D:6A:11:02): gateways relay
        /// its readings under it.
        #[arg(long, value_name = "ADDRESS")]
        ble_address: Option<String>,
    },
    /// Give a device a new secret (printed once); the old one stops working.
    RotateSecret {
        #[command(flatten)]
        data: DataDir,
        #[arg(long)]
        id: String,
    },
    /// Revoke a device's credentials: it can no longer sign in until its secret is rotated.
    Revoke {
        #[command(flatten)]
        data: DataDir,
        #[arg(long)]
        id: String,
    },
    /// Release a device from quarantine (after a security alert): it may sign in again. A running
    /// server sees the release at the device's next sign-in.
    Release {
        #[command(flatten)]
        data: DataDir,
        /// The device id.
        id: String,
    },
    /// Bind a device to a patient from now on (ends its current binding).
    Bind {
        #[command(flatten)]
        data: DataDir,
        #[arg(long)]
        id: String,
        #[arg(long)]
        patient: String,
        /// Start of the binding (RFC 3339); default now. It may not precede the device's latest
        /// binding: history is never rewritten.
        #[arg(long, value_name = "TIME")]
        since: Option<chrono::DateTime<chrono::FixedOffset>>,
    },
    /// End a device's current binding.
    Unbind {
        #[command(flatten)]
        data: DataDir,
        #[arg(long)]
        id: String,
    },
    /// List devices.
    List {
        #[command(flatten)]
        data: DataDir,
    },
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Print a signed bearer token for the API.
    Issue {
        #[command(flatten)]
        data: DataDir,
        /// admin, clinician, caregiver, patient, researcher or integration.
        #[arg(long)]
        role: String,
        /// Who the token is for: the account (care teams and consents name it); for the patient
        /// role, the patient id.
        #[arg(long)]
        subject: String,
        /// SMART on FHIR v2 scopes, space-separated (e.g. "patient/Observation.rs"); default:
        /// everything the role may do.
        #[arg(long)]
        scope: Option<String>,
        /// The patient in context, for `patient/` scopes.
        #[arg(long)]
        patient: Option<String>,
        /// Validity in hours.
        #[arg(long, default_value_t = 12)]
        ttl_hours: i64,
    },
}

pub fn patient(cmd: PatientCommand) -> anyhow::Result<()> {
    match cmd {
        PatientCommand::Add {
            data,
            id,
            name,
            mrn,
            ward,
        } => {
            let id = PatientId::new(id).context("invalid patient id")?;
            if name.trim().is_empty() {
                bail!("the name must not be empty");
            }
            if ward.as_ref().is_some_and(|w| w.trim().is_empty()) {
                bail!("the ward must not be empty");
            }
            let store = data.open_store()?;
            let mut patient = Patient::new(id.clone(), name.trim());
            patient.mrn = mrn;
            store.create_patient(&patient)?;
            if let Some(ward) = &ward {
                store.set_patient_ward(&id, Some(ward.trim()))?;
            }
            println!("patient {id} added");
        }
        PatientCommand::List { data } => {
            let store = data.open_store()?;
            for p in store.search_patients(&PatientQuery {
                limit: 10_000,
                ..Default::default()
            })? {
                println!("{}\t{}\t{}", p.id, p.name, p.mrn.unwrap_or_default());
            }
        }
    }
    Ok(())
}

/// Audits a device credential change made on the command line (before a secret is shown).
fn credential_change(
    data: &DataDir,
    id: &DeviceId,
    patient: Option<PatientId>,
    what: &str,
) -> anyhow::Result<()> {
    use vigil_model::audit::{AuditAction, AuditEntity};
    crate::audit::record_cli_entry(
        data,
        AuditAction::CredentialChange,
        AuditEntity::resource("Device", id.as_str()),
        patient,
        Some(what),
    )
}

pub fn device(cmd: DeviceCommand) -> anyhow::Result<()> {
    match cmd {
        DeviceCommand::Add {
            data,
            id,
            patient,
            since,
            kind,
            manufacturer,
            model,
            serial,
            ble_address,
        } => {
            let id = DeviceId::new(id).context("invalid device id")?;
            if vigil_model::is_reserved_device_id(id.as_str()) {
                anyhow::bail!(
                    "device ids starting with \"vigil-\" are reserved for Vigil's own software; choose another id"
                );
            }
            let patient = patient
                .map(PatientId::new)
                .transpose()
                .context("invalid patient id")?;
            let store = data.open_store()?;
            if let Some(p) = &patient
                && store.patient(p)?.is_none()
            {
                bail!("no patient {p}: add it first with `vigil patient add`");
            }
            let mut device = Device::new(id.clone(), DeviceKind::new(kind));
            device.manufacturer = manufacturer;
            device.model = model;
            device.serial = serial;
            device.ble_address = ble_address
                .map(|a| {
                    a.parse::<vigil_codecs::ble::BleAddress>()
                        .map(|a| a.to_string())
                        .map_err(|e| anyhow::anyhow!("--ble-address: {e}"))
                })
                .transpose()?;
            let secret = auth::new_device_secret();
            store.create_device(&device, &auth::hash_device_secret(&secret))?;
            if let Some(p) = &patient {
                store.bind(&id, p, since.map_or_else(chrono::Utc::now, |t| t.to_utc()))?;
            }
            credential_change(&data, &id, patient.clone(), "registered")?;
            println!(
                "device {id} added{}",
                patient
                    .map(|p| format!(" and bound to patient {p}"))
                    .unwrap_or_default()
            );
            println!("secret: {secret}");
            println!(
                "(shown once: Vigil keeps only its hash. MQTT: user name {id}, password the secret.)"
            );
        }
        DeviceCommand::Bind {
            data,
            id,
            patient,
            since,
        } => {
            let id = DeviceId::new(id).context("invalid device id")?;
            let patient = PatientId::new(patient).context("invalid patient id")?;
            let store = data.open_store()?;
            let binding = store.bind(
                &id,
                &patient,
                since.map_or_else(chrono::Utc::now, |t| t.to_utc()),
            )?;
            println!(
                "device {id} bound to patient {patient} from {}",
                binding.from.to_rfc3339()
            );
        }
        DeviceCommand::RotateSecret { data, id } => {
            let id = DeviceId::new(id).context("invalid device id")?;
            let store = data.open_store()?;
            let secret = auth::new_device_secret();
            store.set_device_secret(&id, &auth::hash_device_secret(&secret))?;
            credential_change(&data, &id, None, "secret rotated")?;
            println!("device {id}: new secret (the old one no longer works)");
            println!("secret: {secret}");
            println!(
                "(shown once; a running server closes the device's open connections only when rotated through the API)"
            );
        }
        DeviceCommand::Revoke { data, id } => {
            let id = DeviceId::new(id).context("invalid device id")?;
            let store = data.open_store()?;
            store.set_device_secret(&id, &vigil_store::REVOKED)?;
            credential_change(&data, &id, None, "revoked")?;
            println!(
                "device {id} revoked: it can no longer sign in (rotate-secret gives it a new secret)"
            );
        }
        DeviceCommand::Release { data, id } => {
            let id = DeviceId::new(id).context("invalid device id")?;
            let store = data.open_store()?;
            match store.device_quarantine(&id)? {
                Some(since) => {
                    store.set_device_quarantine(&id, None)?;
                    println!(
                        "device {id} released from the quarantine it was in since {}: it may sign in again",
                        since.to_rfc3339()
                    );
                }
                None => {
                    if store.device(&id)?.is_none() {
                        bail!("no device {id}");
                    }
                    println!("device {id} was not quarantined");
                }
            }
        }
        DeviceCommand::Unbind { data, id } => {
            let id = DeviceId::new(id).context("invalid device id")?;
            let store = data.open_store()?;
            store.unbind(&id, chrono::Utc::now())?;
            println!("device {id} unbound");
        }
        DeviceCommand::List { data } => {
            let store = data.open_store()?;
            for d in store.search_devices(&DeviceQuery {
                limit: 10_000,
                ..Default::default()
            })? {
                let bound = store
                    .bindings(&d.id)?
                    .into_iter()
                    .find(|b| b.to.is_none())
                    .map(|b| b.patient.to_string());
                println!(
                    "{}\t{}\t{}\t{}",
                    d.id,
                    d.kind.as_str(),
                    bound.unwrap_or_else(|| "-".into()),
                    d.last_seen
                        .map(|t| t.to_rfc3339())
                        .unwrap_or_else(|| "never seen".into())
                );
            }
        }
    }
    Ok(())
}

pub fn token(cmd: TokenCommand) -> anyhow::Result<()> {
    match cmd {
        TokenCommand::Issue {
            data,
            role,
            subject,
            scope,
            patient,
            ttl_hours,
        } => {
            let role = Role::parse(&role).with_context(|| {
                format!(
                    "unknown role {role:?}: use admin, clinician, caregiver, patient, researcher or integration"
                )
            })?;
            if role == Role::Device {
                bail!("devices sign in with their own secrets, not tokens");
            }
            let scopes = scope
                .as_deref()
                .map(auth::Scopes::parse)
                .transpose()
                .context("invalid --scope")?;
            let patient = patient
                .map(PatientId::new)
                .transpose()
                .context("invalid --patient")?;
            if subject.trim().is_empty() {
                bail!("the subject must not be empty");
            }
            if !(1..=24 * 30).contains(&ttl_hours) {
                bail!("--ttl-hours must be between 1 and 720");
            }
            let keys = TokenKeys::load_or_create(&data.data_dir)?;
            let grant = auth::TokenGrant {
                subject,
                role,
                scopes,
                patient,
            };
            println!(
                "{}",
                keys.issue_grant(&grant, chrono::Duration::hours(ttl_hours))?
            );
        }
    }
    Ok(())
}
