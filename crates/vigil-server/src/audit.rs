//! The audit trail's writer: every access to health data and every security event is recorded
//! (see `docs/audit.md`) through one [`Auditor`], shared by the API and the sources.
//!
//! Like the ingest pipeline: a bounded queue to one writer thread that group-commits whatever has
//! queued (up to [`MAX_BATCH_ENTRIES`] per transaction) to the [`AuditLog`] and answers each
//! caller once its entries are durable and chained.
//!
//! | queue / limit | size | when full |
//! |---|---|---|
//! | audit queue | [`QUEUE_CAPACITY`] requests | `record` waits: an audit entry is never dropped |
//! | audit batch | [`MAX_BATCH_ENTRIES`] entries per transaction (a larger single request is one transaction) | the rest goes in the next transaction |
//!
//! Handlers that answer with health data await [`Auditor::record`] first and refuse (503) when the
//! audit cannot be written: no disclosure without its record. Handlers that report an action
//! already done (an acknowledged alarm) use [`Auditor::record_done`], which logs and counts a
//! failure instead of misreporting the action.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use metrics::counter;
use tokio::sync::{mpsc, oneshot};
use vigil_model::DeviceId;
use vigil_model::audit::{
    AuditAction, AuditAgent, AuditEntity, AuditEntry, AuditOutcome, AuditSource, Channel,
};
use vigil_store::audit::AuditLog;

use crate::auth::{Principal, Role};

/// Requests (each one or several entries) waiting for the writer at most.
pub const QUEUE_CAPACITY: usize = 4096;
/// Entries committed in one transaction at most (one request is never split).
pub const MAX_BATCH_ENTRIES: usize = 1024;

pub const AUDIT_ENTRIES_WRITTEN: &str = "vigil_audit_entries_written_total";
pub const AUDIT_FAILURES: &str = "vigil_audit_failures_total";

/// The audit trail could not record an entry.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuditUnavailable {
    #[error("the audit writer has stopped")]
    Stopped,
    #[error("the audit log could not be written: {0}")]
    NotWritten(String),
}

/// Where the writer answers one request.
type Reply = oneshot::Sender<Result<(), AuditUnavailable>>;

enum Request {
    Append {
        entries: Vec<AuditEntry>,
        reply: Reply,
    },
    Stop,
}

/// A cloneable handle to the audit trail: record entries, search the log.
#[derive(Clone)]
pub struct Auditor {
    queue: mpsc::Sender<Request>,
    log: Arc<dyn AuditLog>,
}

impl std::fmt::Debug for Auditor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auditor").finish_non_exhaustive()
    }
}

/// The writer thread; [`AuditWriter::stop`] drains what is queued and ends it.
pub struct AuditWriter {
    queue: mpsc::Sender<Request>,
    thread: Option<JoinHandle<()>>,
}

impl Auditor {
    /// Starts the writer thread over `log`.
    pub fn start(log: Arc<dyn AuditLog>) -> std::io::Result<(Auditor, AuditWriter)> {
        describe_metrics();
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let writer_log = log.clone();
        let thread = std::thread::Builder::new()
            .name("vigil-audit".into())
            .spawn(move || write_loop(rx, writer_log.as_ref()))?;
        Ok((
            Auditor {
                queue: tx.clone(),
                log,
            },
            AuditWriter {
                queue: tx,
                thread: Some(thread),
            },
        ))
    }

    /// Records `entry`; returns once it is durable in the chained log.
    pub async fn record(&self, entry: AuditEntry) -> Result<(), AuditUnavailable> {
        self.record_all(vec![entry]).await
    }

    /// Records several entries in order, in one transaction; returns once they are durable.
    pub async fn record_all(&self, entries: Vec<AuditEntry>) -> Result<(), AuditUnavailable> {
        if entries.is_empty() {
            return Ok(());
        }
        let n = entries.len() as u64;
        let (reply, answer) = oneshot::channel();
        if self
            .queue
            .send(Request::Append { entries, reply })
            .await
            .is_err()
        {
            counter!(AUDIT_FAILURES).increment(n);
            return Err(AuditUnavailable::Stopped);
        }
        answer.await.unwrap_or(Err(AuditUnavailable::Stopped))
    }

    /// Records an action that has already taken effect: a failure to record is logged and
    /// counted (the writer counts it in `vigil_audit_failures_total`), and the caller goes on
    /// to report the action truthfully.
    pub async fn record_done(&self, entry: AuditEntry) {
        let action = entry.action;
        if let Err(e) = self.record(entry).await {
            tracing::error!(error = %e, %action, "an action was done but could not be audited");
        }
    }

    /// The log, for searching (call from a blocking context).
    pub fn log(&self) -> &Arc<dyn AuditLog> {
        &self.log
    }
}

impl AuditWriter {
    /// Lets the writer commit everything queued before this call, then ends it.
    pub fn stop(mut self) {
        let _ = self.queue.blocking_send(Request::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn write_loop(mut rx: mpsc::Receiver<Request>, log: &dyn AuditLog) {
    let mut stopping = false;
    while !stopping {
        let Some(first) = rx.blocking_recv() else {
            break;
        };
        let mut batch: Vec<(Vec<AuditEntry>, Reply)> = Vec::new();
        let mut count = 0;
        let mut next = Some(first);
        while let Some(request) = next.take() {
            match request {
                Request::Stop => stopping = true,
                Request::Append { entries, reply } => {
                    count += entries.len();
                    batch.push((entries, reply));
                }
            }
            if stopping || count >= MAX_BATCH_ENTRIES {
                break;
            }
            next = rx.try_recv().ok();
        }
        if batch.is_empty() {
            continue;
        }
        let all: Vec<AuditEntry> = batch.iter().flat_map(|(e, _)| e.iter().cloned()).collect();
        let result = match log.append(&all) {
            Ok(_) => {
                counter!(AUDIT_ENTRIES_WRITTEN).increment(all.len() as u64);
                Ok(())
            }
            Err(e) => {
                counter!(AUDIT_FAILURES).increment(all.len() as u64);
                tracing::error!(error = %e, entries = all.len(), "audit entries could not be written");
                Err(AuditUnavailable::NotWritten(e.to_string()))
            }
        };
        for (_, reply) in batch {
            let _ = reply.send(result.clone());
        }
    }
}

fn describe_metrics() {
    metrics::describe_counter!(
        AUDIT_ENTRIES_WRITTEN,
        "Audit entries durably appended to the hash-chained audit log."
    );
    metrics::describe_counter!(
        AUDIT_FAILURES,
        "Audit entries that could not be written (the request they belonged to was refused)."
    );
}

// ---------------------------------------------------------------------------------------------
// Building entries

/// The agent for an authenticated API caller: people by their token subject, integrations as
/// systems.
pub fn agent_of(principal: &Principal) -> AuditAgent {
    match principal.role {
        Role::Integration => {
            AuditAgent::system(principal.subject.clone(), Some("integration".into()))
        }
        Role::Device => AuditAgent::device(principal.subject.clone()),
        Role::Admin | Role::Clinician | Role::Caregiver | Role::Patient | Role::Researcher => {
            AuditAgent::person(principal.subject.clone(), principal.role.as_str())
        }
    }
}

/// Where a request came from.
pub fn source(channel: Channel, peer: Option<SocketAddr>) -> AuditSource {
    AuditSource::new(channel, peer.map(|a| a.to_string()))
}

/// `action` on `entity` by an API caller, now, successful until told otherwise.
pub fn by(
    principal: &Principal,
    peer: Option<SocketAddr>,
    action: AuditAction,
    entity: AuditEntity,
) -> AuditEntry {
    AuditEntry::new(chrono::Utc::now(), action, agent_of(principal), entity)
        .source(source(Channel::Http, peer))
}

/// A bearer token refused (forged, expired, signed by someone else): who presented it is not
/// known, only from where.
pub fn bearer_refused(peer: Option<SocketAddr>) -> AuditEntry {
    AuditEntry::new(
        chrono::Utc::now(),
        AuditAction::LoginFailed,
        AuditAgent::anonymous(),
        AuditEntity::kind("Token"),
    )
    .source(source(Channel::Http, peer))
    .outcome(AuditOutcome::MinorFailure)
    .detail("bad_token")
}

/// A person's login attempt with a password, and how it went.
pub fn password_login(
    account: &str,
    peer: Option<SocketAddr>,
    action: AuditAction,
    outcome: AuditOutcome,
    detail: &'static str,
) -> AuditEntry {
    let agent = match vigil_model::UserId::new(account.to_owned()) {
        Ok(id) => AuditAgent::person(id.as_str(), "account"),
        Err(_) => AuditAgent::anonymous(),
    };
    AuditEntry::new(
        chrono::Utc::now(),
        action,
        agent,
        AuditEntity::kind("Session"),
    )
    .source(source(Channel::Http, peer))
    .outcome(outcome)
    .detail(detail)
}

/// A device (or someone claiming to be `claimed`) refused at sign-in, for `reason` (the same
/// reason the refusal metric counts). The claimed id is kept only when it is a valid device id.
pub fn device_login_refused(
    claimed: Option<&str>,
    channel: Channel,
    peer: Option<SocketAddr>,
    reason: &'static str,
) -> AuditEntry {
    let agent = claimed
        .and_then(|id| DeviceId::new(id).ok())
        .map_or_else(AuditAgent::anonymous, |d| AuditAgent::device(d.as_str()));
    let outcome = match reason {
        "store_unavailable" | "internal_error" => AuditOutcome::SeriousFailure,
        _ => AuditOutcome::MinorFailure,
    };
    AuditEntry::new(
        chrono::Utc::now(),
        AuditAction::LoginFailed,
        agent,
        AuditEntity::kind("Session"),
    )
    .source(source(channel, peer))
    .outcome(outcome)
    .detail(reason)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_store::audit::{AuditQuery, Verification, verify};
    use vigil_store::sqlite::SqliteAuditLog;

    fn entry(i: u32) -> AuditEntry {
        AuditEntry::new(
            chrono::Utc::now(),
            AuditAction::Read,
            AuditAgent::person(format!("user-{i}"), "clinician"),
            AuditEntity::resource("Patient", "p1"),
        )
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_records_are_all_durable_and_chained_when_they_return() {
        let dir = tempfile::tempdir().unwrap();
        let log: Arc<dyn AuditLog> = Arc::new(SqliteAuditLog::open(dir.path()).unwrap());
        let (auditor, writer) = Auditor::start(log.clone()).unwrap();
        let mut tasks = Vec::new();
        for i in 0..200 {
            let auditor = auditor.clone();
            tasks.push(tokio::spawn(async move { auditor.record(entry(i)).await }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        auditor
            .record_all(vec![entry(1000), entry(1001)])
            .await
            .unwrap();
        // Everything answered is already in the log, before the writer stops.
        assert_eq!(log.head().unwrap().unwrap().seq, 202);
        tokio::task::spawn_blocking(move || writer.stop())
            .await
            .unwrap();
        assert!(matches!(
            verify(log.as_ref()).unwrap(),
            Verification::Intact { entries: 202, .. }
        ));
        let last = log
            .search(&AuditQuery {
                limit: 2,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(last[0].entry.agent.id, "user-1001");
        assert_eq!(last[1].entry.agent.id, "user-1000");
        // After the writer stopped, recording fails instead of hanging or dropping silently.
        assert!(matches!(
            auditor.record(entry(1)).await,
            Err(AuditUnavailable::Stopped)
        ));
    }

    #[tokio::test]
    async fn a_write_failure_is_reported_to_the_caller() {
        let dir = tempfile::tempdir().unwrap();
        let log: Arc<dyn AuditLog> = Arc::new(SqliteAuditLog::open(dir.path()).unwrap());
        let (auditor, writer) = Auditor::start(log).unwrap();
        auditor.record(entry(1)).await.unwrap();
        // The next append holds the directory's lock file; make it impossible to open.
        let lock = dir.path().join("audit.lock");
        std::fs::remove_file(&lock).unwrap();
        std::fs::create_dir(&lock).unwrap();
        let e = auditor.record(entry(2)).await.unwrap_err();
        assert!(matches!(e, AuditUnavailable::NotWritten(_)), "{e}");
        tokio::task::spawn_blocking(move || writer.stop())
            .await
            .unwrap();
    }

    #[test]
    fn a_refused_sign_in_keeps_only_a_valid_claimed_device_id() {
        let e = device_login_refused(Some("mon-1"), Channel::Mqtt, None, "bad_secret");
        assert_eq!(e.agent.id, "mon-1");
        assert_eq!(e.outcome, AuditOutcome::MinorFailure);
        let e = device_login_refused(Some("a/b#"), Channel::Http, None, "unknown_device");
        assert_eq!(e.agent, AuditAgent::anonymous());
        let e = device_login_refused(None, Channel::Mqtt, None, "store_unavailable");
        assert_eq!(e.outcome, AuditOutcome::SeriousFailure);
    }
}
