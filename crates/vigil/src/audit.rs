//! `vigil audit …`: check the audit trail of a data directory, print its anchor, search it.
//! Works whether or not the server runs (the log only grows; verification reads the anchor
//! first). See docs/audit.md.

use anyhow::{Context, bail};
use clap::Subcommand;
use vigil_model::PatientId;
use vigil_model::audit::{AuditAction, AuditAgent, AuditEntity, AuditEntry, AuditSource, Channel};
use vigil_store::audit::{
    AuditHead, AuditLog, AuditQuery, Tamper, TamperKind, Verification, verify,
};
use vigil_store::sqlite::SqliteAuditLog;

use crate::DataDir;

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Check every entry, the chain and the anchor; exit status 1 and the first problem (its
    /// seq and what is wrong) if anything was edited, deleted, reordered or cut off.
    Verify {
        #[command(flatten)]
        data: DataDir,
        /// Also check against an anchor kept elsewhere ("<seq> <hash>", as `vigil audit head`
        /// printed it): catches a log and local anchor rewritten together.
        #[arg(long, value_name = "ANCHOR")]
        anchor: Option<String>,
    },
    /// Print the anchor ("<seq> <sha-256 hex>") to ship somewhere the server cannot write.
    Head {
        #[command(flatten)]
        data: DataDir,
    },
    /// Print audit entries, newest first (this search is itself audited).
    Search {
        #[command(flatten)]
        data: DataDir,
        /// Entries concerning this patient.
        #[arg(long)]
        patient: Option<String>,
        /// Entries by this agent (a user's token subject, a device id).
        #[arg(long)]
        agent: Option<String>,
        /// Entries of this action (read, search, login-failed, credential-change, …).
        #[arg(long)]
        action: Option<String>,
        /// Entries recorded at or after this time (RFC 3339).
        #[arg(long, value_name = "TIME")]
        since: Option<chrono::DateTime<chrono::FixedOffset>>,
        /// At most this many entries.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
}

/// The audit log is encrypted with the store's key.
fn key(data: &DataDir) -> anyhow::Result<vigil_store::key::StoreKey> {
    crate::config::store_key(&data.data_dir, data.key_file.as_deref())
}

fn open(data: &DataDir) -> anyhow::Result<SqliteAuditLog> {
    SqliteAuditLog::open_existing(&data.data_dir, Some(&key(data)?))
        .with_context(|| format!("opening the audit log in {}", data.data_dir.display()))
}

fn hex(head: &AuditHead) -> String {
    head.to_text()
        .split_once(' ')
        .map(|(_, h)| h.to_owned())
        .unwrap_or_default()
}

pub fn run(cmd: AuditCommand) -> anyhow::Result<()> {
    match cmd {
        AuditCommand::Verify { data, anchor } => {
            let external = anchor
                .map(|a| {
                    AuditHead::from_text(&a)
                        .with_context(|| format!("--anchor {a:?} is not \"<seq> <sha-256 hex>\""))
                })
                .transpose()?;
            let log = open(&data)?;
            let mut outcome = verify(&log)?;
            if let (Verification::Intact { entries, .. }, Some(external)) = (&outcome, external)
                && let Some(problem) = check_external(&log, *entries, external)?
            {
                outcome = Verification::Broken(problem);
            }
            match outcome {
                Verification::Intact {
                    entries,
                    head,
                    anchor,
                } => {
                    match head {
                        Some(h) => println!(
                            "OK: {entries} entries, chain intact; head seq {} hash {}",
                            h.seq,
                            hex(&h)
                        ),
                        None => println!("OK: the audit log is empty"),
                    }
                    if let (Some(a), Some(h)) = (anchor, head)
                        && a.seq < h.seq
                    {
                        println!(
                            "note: the anchor is at seq {} (an append finished after it was written)",
                            a.seq
                        );
                    }
                    Ok(())
                }
                Verification::Broken(t) => {
                    println!("TAMPERED: {t}");
                    bail!("the audit trail failed verification at seq {}", t.seq)
                }
            }
        }
        AuditCommand::Head { data } => {
            let log = open(&data)?;
            match log.anchor()? {
                Some(anchor) => println!("{}", anchor.to_text()),
                None => bail!("the audit log has no anchor yet (nothing was recorded)"),
            }
            Ok(())
        }
        AuditCommand::Search {
            data,
            patient,
            agent,
            action,
            since,
            limit,
        } => {
            let patient = patient
                .map(|p| PatientId::new(p).context("--patient"))
                .transpose()?;
            let action = action
                .map(|a| {
                    AuditAction::from_code(&a).with_context(|| {
                        let known: Vec<&str> = AuditAction::ALL.iter().map(|a| a.code()).collect();
                        format!("--action {a:?} is not one of {}", known.join(", "))
                    })
                })
                .transpose()?;
            let log = open(&data)?;
            let query = AuditQuery {
                patient,
                agent,
                action,
                from: since.map(|t| t.to_utc()),
                limit,
                ..Default::default()
            };
            // Reading the audit is itself audited, before anything is shown.
            record_cli(
                &data,
                AuditAction::Search,
                AuditEntity::search("AuditEvent", describe(&query)),
                query.patient.clone(),
            )?;
            for r in log.search(&query)? {
                println!("{}", line(r.seq, &r.entry));
            }
            Ok(())
        }
    }
}

/// Compares the log with an anchor kept elsewhere.
fn check_external(
    log: &SqliteAuditLog,
    entries: u64,
    external: AuditHead,
) -> anyhow::Result<Option<Tamper>> {
    if external.seq == 0 {
        return Ok(None);
    }
    if external.seq > entries {
        return Ok(Some(Tamper {
            seq: entries + 1,
            kind: TamperKind::TailTruncated,
            detail: format!(
                "the given anchor names seq {} but the log ends at seq {entries}",
                external.seq
            ),
        }));
    }
    let at = log.chain(external.seq - 1, 1)?;
    let matches = at
        .first()
        .is_some_and(|l| l.seq == external.seq && l.hash == external.hash);
    Ok((!matches).then(|| Tamper {
        seq: external.seq,
        kind: TamperKind::AnchorMismatch,
        detail: "the log's hash at the given anchor's seq differs: the log and its local anchor \
                 were rewritten"
            .into(),
    }))
}

fn describe(q: &AuditQuery) -> String {
    let mut parts = Vec::new();
    if let Some(p) = &q.patient {
        parts.push(format!("patient={p}"));
    }
    if let Some(a) = &q.agent {
        parts.push(format!("agent={a}"));
    }
    if let Some(a) = q.action {
        parts.push(format!("action={a}"));
    }
    if let Some(t) = q.from {
        parts.push(format!("date=ge{}", t.to_rfc3339()));
    }
    parts.push(format!("_count={}", q.limit));
    parts.join("&")
}

fn line(seq: u64, e: &AuditEntry) -> String {
    let what = match (&e.entity.id, &e.entity.query) {
        (Some(id), _) => format!("{}/{id}", e.entity.kind),
        (None, Some(q)) => format!("{}?{q}", e.entity.kind),
        (None, None) => e.entity.kind.clone(),
    };
    let patients: Vec<&str> = e.patients.iter().map(|p| p.as_str()).collect();
    format!(
        "{seq}\t{}\t{}\t{}\t{:?}:{}{}\t{what}\tpatients={}\t{}{}\t{}",
        e.recorded
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        e.action,
        e.outcome.code(),
        e.agent.kind,
        e.agent.id,
        e.agent
            .role
            .as_deref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default(),
        patients.join(","),
        e.source.channel.code(),
        e.source
            .address
            .as_deref()
            .map(|a| format!(" {a}"))
            .unwrap_or_default(),
        e.detail.as_deref().unwrap_or(""),
    )
}

/// Records something the operator did on the command line (the OS user is the agent).
pub fn record_cli(
    data: &DataDir,
    action: AuditAction,
    entity: AuditEntity,
    patient: Option<PatientId>,
) -> anyhow::Result<()> {
    record_cli_entry(data, action, entity, patient, None)
}

/// As [`record_cli`], with a short detail ("registered", "secret rotated").
pub fn record_cli_entry(
    data: &DataDir,
    action: AuditAction,
    entity: AuditEntity,
    patient: Option<PatientId>,
    detail: Option<&str>,
) -> anyhow::Result<()> {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    let mut entry = AuditEntry::new(
        chrono::Utc::now(),
        action,
        AuditAgent::person(user, "operator"),
        entity,
    )
    .patients(patient)
    .source(AuditSource::new(Channel::Cli, None));
    if let Some(d) = detail {
        entry = entry.detail(d);
    }
    let log = SqliteAuditLog::open_with(&data.data_dir, Some(&key(data)?))
        .with_context(|| format!("opening the audit log in {}", data.data_dir.display()))?;
    log.append(&[entry])
        .context("recording the command in the audit log")?;
    Ok(())
}
