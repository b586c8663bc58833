//! Operator commands for people: accounts (local logins), care teams and wards.

use std::io::BufRead;

use anyhow::{Context, bail};
use clap::Subcommand;
use vigil_model::{CareTeam, CareTeamId, PatientId, UserId};
use vigil_server::auth::{Role, password};
use vigil_store::UserAccount;

use crate::DataDir;

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create a local account. The password is read from standard input (one line) with
    /// --password-stdin, or generated and printed once.
    Add {
        #[command(flatten)]
        data: DataDir,
        /// Account name: the login (letters, digits, '-' and '.').
        #[arg(long)]
        id: String,
        /// The name shown to others, e.g. "Ana Ruiz, RN".
        #[arg(long)]
        name: String,
        /// admin, clinician, caregiver, patient, researcher or integration.
        #[arg(long)]
        role: String,
        /// For the patient role: whose record the account is.
        #[arg(long)]
        patient: Option<String>,
        /// The organisation the account belongs to (consents may name an organisation).
        #[arg(long)]
        organization: Option<String>,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Set a new password (read or generated as for `add`); ends the account's sessions and
    /// lifts any lockout.
    ResetPassword {
        #[command(flatten)]
        data: DataDir,
        #[arg(long)]
        id: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Disable an account: it cannot sign in, and its sessions end.
    Disable {
        #[command(flatten)]
        data: DataDir,
        #[arg(long)]
        id: String,
    },
    /// Enable a disabled account again.
    Enable {
        #[command(flatten)]
        data: DataDir,
        #[arg(long)]
        id: String,
    },
    /// List accounts.
    List {
        #[command(flatten)]
        data: DataDir,
    },
}

#[derive(Subcommand)]
pub enum TeamCommand {
    /// Create or replace a care team: its clinicians and the patients and wards it looks after.
    Set {
        #[command(flatten)]
        data: DataDir,
        #[arg(long)]
        id: String,
        #[arg(long)]
        name: String,
        /// A clinician's account (repeat for several).
        #[arg(long = "member")]
        members: Vec<String>,
        /// A patient the team looks after by name (repeat).
        #[arg(long = "patient")]
        patients: Vec<String>,
        /// A ward the team covers (repeat): every patient on it.
        #[arg(long = "ward")]
        wards: Vec<String>,
        /// The team looks after every patient (a central monitoring station).
        #[arg(long)]
        every_patient: bool,
    },
    /// List care teams.
    List {
        #[command(flatten)]
        data: DataDir,
    },
}

/// The new password and whether to print it (generated ones are shown once).
fn new_password(account: &str, from_stdin: bool) -> anyhow::Result<(String, bool)> {
    if !from_stdin {
        return Ok((password::generate(), true));
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    let password = line.trim_end_matches(['\n', '\r']).to_owned();
    password::check_rules(&password, account).context("the password was refused")?;
    Ok((password, false))
}

pub fn user(cmd: UserCommand) -> anyhow::Result<()> {
    match cmd {
        UserCommand::Add {
            data,
            id,
            name,
            role,
            patient,
            organization,
            password_stdin,
        } => {
            let id = UserId::new(id).context("invalid account name")?;
            let role = Role::parse(&role).with_context(|| {
                format!(
                    "unknown role {role:?}: use admin, clinician, caregiver, patient, researcher or integration"
                )
            })?;
            if role == Role::Device {
                bail!("devices sign in with their own secrets: use `vigil device add`");
            }
            let patient = patient
                .map(PatientId::new)
                .transpose()
                .context("invalid patient id")?;
            match (role, &patient) {
                (Role::Patient, None) => bail!("a patient's account needs --patient"),
                (r, Some(_)) if r != Role::Patient => {
                    bail!("--patient is for the patient role only")
                }
                _ => {}
            }
            if name.trim().is_empty() {
                bail!("the name must not be empty");
            }
            let (password, show) = new_password(id.as_str(), password_stdin)?;
            let store = data.open_store()?;
            store.create_user(&UserAccount {
                id: id.clone(),
                display_name: name,
                role: role.as_str().into(),
                password_hash: Some(password::hash(&password)?),
                patient,
                organization,
                failed_logins: 0,
                locked_until: None,
                disabled: false,
                created_at: chrono::Utc::now(),
            })?;
            println!("account {id} created ({})", role.as_str());
            if show {
                println!("password: {password}");
                println!("(shown once; only its argon2id hash is stored)");
            }
        }
        UserCommand::ResetPassword {
            data,
            id,
            password_stdin,
        } => {
            let id = UserId::new(id).context("invalid account name")?;
            let (password, show) = new_password(id.as_str(), password_stdin)?;
            let store = data.open_store()?;
            store.set_password(&id, &password::hash(&password)?)?;
            let ended = store.end_sessions_of(&id)?;
            println!("password of {id} reset; {ended} session(s) ended");
            if show {
                println!("password: {password}");
            }
        }
        UserCommand::Disable { data, id } => {
            let id = UserId::new(id).context("invalid account name")?;
            let store = data.open_store()?;
            store.set_user_disabled(&id, true)?;
            let ended = store.end_sessions_of(&id)?;
            println!("account {id} disabled; {ended} session(s) ended");
        }
        UserCommand::Enable { data, id } => {
            let id = UserId::new(id).context("invalid account name")?;
            data.open_store()?.set_user_disabled(&id, false)?;
            println!("account {id} enabled");
        }
        UserCommand::List { data } => {
            for u in data.open_store()?.users()? {
                println!(
                    "{}\t{}\t{}\t{}",
                    u.id,
                    u.role,
                    u.patient
                        .map(|p| p.to_string())
                        .unwrap_or_else(|| "-".into()),
                    if u.disabled { "disabled" } else { "enabled" }
                );
            }
        }
    }
    Ok(())
}

pub fn team(cmd: TeamCommand) -> anyhow::Result<()> {
    match cmd {
        TeamCommand::Set {
            data,
            id,
            name,
            members,
            patients,
            wards,
            every_patient,
        } => {
            let team = CareTeam {
                id: CareTeamId::new(id).context("invalid care team id")?,
                name,
                members: members
                    .into_iter()
                    .map(UserId::new)
                    .collect::<Result<_, _>>()
                    .context("invalid member account name")?,
                patients: patients
                    .into_iter()
                    .map(PatientId::new)
                    .collect::<Result<_, _>>()
                    .context("invalid patient id")?,
                wards,
                every_patient,
            };
            data.open_store()?.put_care_team(&team)?;
            println!("care team {} saved", team.id);
        }
        TeamCommand::List { data } => {
            for t in data.open_store()?.care_teams()? {
                println!(
                    "{}\t{}\tmembers: {}\tpatients: {}\twards: {}{}",
                    t.id,
                    t.name,
                    t.members
                        .iter()
                        .map(|m| m.as_str())
                        .collect::<Vec<_>>()
                        .join(","),
                    t.patients
                        .iter()
                        .map(|p| p.as_str())
                        .collect::<Vec<_>>()
                        .join(","),
                    t.wards.join(","),
                    if t.every_patient {
                        "\tevery patient"
                    } else {
                        ""
                    }
                );
            }
        }
    }
    Ok(())
}
