//! The ingest pipeline between the sources and the store: decoded submissions go in through a
//! bounded queue, one writer thread commits them in groups, and each source gets its outcome back
//! as a value once the data is durable.
//!
//! Group commit: while one transaction is being made durable (fsync), new submissions queue up;
//! the writer then takes everything waiting (up to [`PipelineConfig::max_batch_readings`]) into the
//! next transaction. Under load this turns thousands of tiny commits into a few large ones without
//! adding latency when the system is idle.
//!
//! When the queue is full, `submit` waits (backpressure): clinical data is never dropped. Sources
//! see the wait as slower acknowledgements, and MQTT connections stop reading their sockets.

use std::sync::Arc;
use std::thread;
use std::time::Instant as StdInstant;

use tokio::sync::{mpsc, oneshot};
use vigil_codecs::template::Template;
use vigil_store::{Store, StoreError, Submission, SubmissionOutcome};

use crate::telemetry;

#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// Submissions waiting for the writer; `submit` waits when this many are queued.
    pub queue_capacity: usize,
    /// Most readings and waveform segments in one transaction.
    pub max_batch_readings: usize,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            queue_capacity: 16_384,
            max_batch_readings: 4_096,
        }
    }
}

/// Why a submission was not stored. Nothing of it is stored in either case.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The store failed to commit; the source must not acknowledge, so the device retries.
    #[error("the store could not commit: {0}")]
    Store(#[from] StoreError),
    /// The pipeline is shutting down.
    #[error("the ingest pipeline is stopped")]
    Stopped,
}

/// Submissions committed together: all of them or none (one HL7 message's readings from several
/// pieces of equipment are one job).
struct Job {
    submissions: Vec<Submission>,
    reply: oneshot::Sender<Result<Vec<SubmissionOutcome>, IngestError>>,
}

/// The sources' handle on the pipeline. Cheap to clone.
#[derive(Clone)]
pub struct Ingest {
    tx: mpsc::Sender<Job>,
    refusals: RefusalLog,
    templates: Templates,
    guard: crate::guard::Guard,
}

/// The newest version of each vendor mapping template, parsed once: read from the store on first
/// use, replaced when a new version is uploaded.
#[derive(Clone)]
pub struct Templates {
    store: Arc<dyn Store>,
    parsed: Arc<std::sync::RwLock<std::collections::HashMap<String, Arc<Template>>>>,
}

impl Templates {
    fn new(store: Arc<dyn Store>) -> Self {
        Templates {
            store,
            parsed: Default::default(),
        }
    }

    /// The template `name`, if one is stored (its newest version).
    pub async fn get(&self, name: &str) -> Result<Option<Arc<Template>>, StoreError> {
        if let Some(t) = self
            .parsed
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
        {
            return Ok(Some(t.clone()));
        }
        let (store, key) = (self.store.clone(), name.to_owned());
        let stored = tokio::task::spawn_blocking(move || store.template(&key))
            .await
            .map_err(|_| StoreError::Backend("the store task ended".into()))??;
        let Some(stored) = stored else {
            return Ok(None);
        };
        let format = if stored.format == "yaml" {
            vigil_codecs::template::TemplateFormat::Yaml
        } else {
            vigil_codecs::template::TemplateFormat::Json
        };
        let template = Template::parse(&stored.text, format)
            .map_err(|e| StoreError::Corrupt(format!("stored template {name}: {e}")))?;
        Ok(Some(self.install(template)))
    }

    /// Makes `template` the one in use for its name.
    pub fn install(&self, template: Template) -> Arc<Template> {
        let template = Arc::new(template);
        self.parsed
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(template.name().to_owned(), template.clone());
        template
    }
}

/// Refused messages on their way to the store's refusal log (best effort, bounded: a flood of bad
/// messages must not slow ingest down; what does not fit is counted and dropped).
#[derive(Clone)]
pub struct RefusalLog {
    tx: std::sync::mpsc::SyncSender<vigil_store::RefusedMessage>,
}

/// Refused messages waiting to be written; beyond this they are dropped (and counted).
const REFUSAL_QUEUE: usize = 1024;

impl RefusalLog {
    fn start(store: Arc<dyn Store>) -> std::io::Result<RefusalLog> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<vigil_store::RefusedMessage>(REFUSAL_QUEUE);
        thread::Builder::new()
            .name("vigil-refusal-log".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut batch = vec![first];
                    while batch.len() < 256 {
                        match rx.try_recv() {
                            Ok(r) => batch.push(r),
                            Err(_) => break,
                        }
                    }
                    if let Err(e) = store.record_refusals(&batch) {
                        tracing::warn!(error = %e, refusals = batch.len(), "refused messages could not be logged");
                    }
                }
            })?;
        Ok(RefusalLog { tx })
    }

    /// Queues a refused message for the log; never blocks.
    pub fn keep(&self, refusal: vigil_store::RefusedMessage) {
        if self.tx.try_send(refusal).is_err() {
            telemetry::refusal_not_logged();
        }
    }
}

/// Joins the writer thread once every [`Ingest`] handle is dropped and the queue is drained.
pub struct IngestWriter {
    thread: Option<thread::JoinHandle<()>>,
}

impl IngestWriter {
    /// Waits until everything submitted has been committed and answered.
    pub fn join(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Ingest {
    pub fn start(
        store: Arc<dyn Store>,
        config: PipelineConfig,
    ) -> std::io::Result<(Ingest, IngestWriter)> {
        Self::start_with_commit_hook(store, config, None)
    }

    /// Like [`Ingest::start`], calling `on_commit` after every successful commit (from the writer
    /// thread; it must not block): how downstream stages learn that new observations are durable.
    pub fn start_with_commit_hook(
        store: Arc<dyn Store>,
        config: PipelineConfig,
        on_commit: Option<CommitHook>,
    ) -> std::io::Result<(Ingest, IngestWriter)> {
        let (tx, rx) = mpsc::channel(config.queue_capacity.max(1));
        let refusals = RefusalLog::start(store.clone())?;
        let templates = Templates::new(store.clone());
        let thread = thread::Builder::new()
            .name("vigil-ingest-writer".into())
            .spawn(move || writer_loop(store, rx, config.max_batch_readings.max(1), on_commit))?;
        Ok((
            Ingest {
                tx,
                refusals,
                templates,
                guard: crate::guard::Guard::disabled(),
            },
            IngestWriter {
                thread: Some(thread),
            },
        ))
    }

    /// Gives the sources this guard (rate limits, intrusion signals) instead of none.
    pub fn with_guard(mut self, guard: crate::guard::Guard) -> Ingest {
        self.guard = guard;
        self
    }

    /// The rate limits and the intrusion detector every source reports to.
    pub fn guard(&self) -> &crate::guard::Guard {
        &self.guard
    }

    /// Queues a submission and waits until it is durably committed (or failed).
    pub async fn submit(&self, submission: Submission) -> Result<SubmissionOutcome, IngestError> {
        let mut outcomes = self.submit_all(vec![submission]).await?;
        outcomes.pop().ok_or(IngestError::Stopped)
    }

    /// Commits several submissions in one transaction: every one of them is durable on return,
    /// or none is.
    pub async fn submit_all(
        &self,
        submissions: Vec<Submission>,
    ) -> Result<Vec<SubmissionOutcome>, IngestError> {
        // A message that names its patient (HL7 PID-3, a FHIR subject) is checked against the
        // device's binding by the intrusion detector, off this path.
        for s in &submissions {
            if let (Some(patient), Some(first)) = (&s.patient, s.readings.first()) {
                self.guard
                    .intrusion()
                    .check_named_patient(&s.device, patient, first.effective);
            }
        }
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Job { submissions, reply })
            .await
            .map_err(|_| IngestError::Stopped)?;
        answer.await.map_err(|_| IngestError::Stopped)?
    }

    /// Submissions waiting for the writer (for readiness and metrics).
    /// The vendor mapping templates in use.
    pub fn templates(&self) -> &Templates {
        &self.templates
    }

    /// Where sources keep the messages they refuse.
    pub fn refusals(&self) -> &RefusalLog {
        &self.refusals
    }

    pub fn queued(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }
}

fn items(job: &Job) -> usize {
    job.submissions
        .iter()
        .map(|s| (s.readings.len() + s.waveforms.len()).max(1))
        .sum::<usize>()
        .max(1)
}

/// Called after each successful commit.
pub type CommitHook = Box<dyn Fn() + Send + 'static>;

fn writer_loop(
    store: Arc<dyn Store>,
    mut rx: mpsc::Receiver<Job>,
    max_batch: usize,
    on_commit: Option<CommitHook>,
) {
    let mut jobs: Vec<Job> = Vec::with_capacity(1024);
    let mut batch: Vec<Submission> = Vec::with_capacity(1024);
    while let Some(first) = rx.blocking_recv() {
        let mut size = items(&first);
        jobs.push(first);
        while size < max_batch {
            match rx.try_recv() {
                Ok(job) => {
                    size += items(&job);
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        // Move the submissions out for the store call, keeping the reply channels in order.
        let mut replies = Vec::with_capacity(jobs.len());
        for job in jobs.drain(..) {
            replies.push((job.submissions.len(), job.reply));
            batch.extend(job.submissions);
        }
        let started = StdInstant::now();
        let result = store.append(&batch);
        telemetry::record_commit(started.elapsed(), batch.len(), size);
        match result {
            Ok(outcomes) => {
                let mut outcomes = outcomes.into_iter();
                for (count, reply) in replies {
                    let _ = reply.send(Ok(outcomes.by_ref().take(count).collect()));
                }
                if let Some(hook) = &on_commit {
                    hook();
                }
            }
            Err(err) => {
                tracing::error!(error = %err, submissions = batch.len(), "commit failed; sources will not acknowledge");
                telemetry::record_commit_failure();
                let message = err.to_string();
                for (_, reply) in replies {
                    let _ = reply.send(Err(IngestError::Store(StoreError::Backend(
                        message.clone(),
                    ))));
                }
            }
        }
        batch.clear();
    }
    tracing::debug!("ingest writer stopped: all sources closed");
}

/// One refused reading, waveform segment or field, as reported back to the device.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Rejection {
    /// JSON pointer into the device's message (`/obs/2`), when the item can be located there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pointer: Option<String>,
    /// The code as the device sent it, or the normalised short name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Stable machine-readable reason (also the metrics label).
    pub kind: &'static str,
    /// What is wrong, in a sentence.
    pub reason: String,
}

/// What became of one device message once it is durable.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct MessageReport {
    pub accepted: usize,
    pub duplicates: usize,
    pub rejected: Vec<Rejection>,
}

/// Which of the device contracts a message follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceMessage {
    /// A vendor's own JSON (`vigil/v1/ingest/{template}`), read with that mapping template.
    Vendor(String),
    /// Readings and waveforms (`…/obs`): the device JSON payload.
    Readings,
    /// One event (`…/events`): a fall, a panic-button press, a sensor off.
    Event,
    /// A gateway relaying one Bluetooth LE characteristic value (`vigil/v1/gateways/{id}/ble`):
    /// stored under the peripheral registered with that address, not under the gateway.
    Ble,
}

/// A whole message refused as unreadable; nothing of it was stored.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{reason}")]
pub struct Refusal {
    /// Stable machine-readable reason (also the metrics label).
    pub kind: &'static str,
    /// What is wrong, in a sentence for the sender.
    pub reason: String,
    /// The message was over the size limit.
    pub too_large: bool,
}

impl From<vigil_codecs::PayloadError> for Refusal {
    fn from(e: vigil_codecs::PayloadError) -> Self {
        Refusal {
            kind: e.kind(),
            too_large: matches!(e, vigil_codecs::PayloadError::TooLarge { .. }),
            reason: e.to_string(),
        }
    }
}

impl From<vigil_codecs::EventError> for Refusal {
    fn from(e: vigil_codecs::EventError) -> Self {
        Refusal {
            kind: e.kind(),
            too_large: matches!(
                e,
                vigil_codecs::EventError::Envelope(vigil_codecs::PayloadError::TooLarge { .. })
            ),
            reason: e.to_string(),
        }
    }
}

impl From<vigil_codecs::ble::BleError> for Refusal {
    fn from(e: vigil_codecs::ble::BleError) -> Self {
        Refusal {
            kind: e.kind(),
            too_large: matches!(
                e,
                vigil_codecs::ble::BleError::Envelope(vigil_codecs::PayloadError::TooLarge { .. })
            ),
            reason: e.to_string(),
        }
    }
}

impl Refusal {
    fn new(kind: &'static str, reason: impl Into<String>) -> Self {
        Refusal {
            kind,
            reason: reason.into(),
            too_large: false,
        }
    }
}

/// A vendor message read with its template: the device it is from (the sender itself, or any
/// registered device when the sender is a gateway or hub), what it yielded, and what the
/// template rejected item by item.
async fn vendor_message(
    ingest: &Ingest,
    store: &Arc<dyn Store>,
    limits: &vigil_codecs::DecodeLimits,
    sender: &vigil_model::DeviceId,
    name: &str,
    payload: &[u8],
    received: vigil_model::Instant,
) -> Result<
    Result<
        (
            vigil_model::DeviceId,
            vigil_codecs::DecodedMessage,
            Vec<Rejection>,
        ),
        Refusal,
    >,
    MessageError,
> {
    let template = match ingest.templates().get(name).await {
        Ok(Some(t)) => t,
        Ok(None) => {
            return Ok(Err(Refusal::new(
                "unknown_template",
                format!("no mapping template is named {name:?}"),
            )));
        }
        Err(e) => return Err(MessageError::Ingest(IngestError::Store(e))),
    };
    let mapped = match template.apply(payload, received, limits) {
        Ok(mapped) => mapped,
        Err(e) => {
            return Ok(Err(Refusal {
                kind: e.kind(),
                too_large: matches!(
                    e,
                    vigil_codecs::template::TemplateApplyError::Envelope(
                        vigil_codecs::PayloadError::TooLarge { .. }
                    )
                ),
                reason: e.to_string(),
            }));
        }
    };
    if &mapped.device != sender {
        let (store, who, from) = (store.clone(), sender.clone(), mapped.device.clone());
        let allowed = tokio::task::spawn_blocking(move || {
            Ok::<_, StoreError>(is_gateway(store.as_ref(), &who)? && store.device(&from)?.is_some())
        })
        .await
        .map_err(|_| MessageError::Ingest(IngestError::Stopped))?
        .map_err(|e| MessageError::Ingest(IngestError::Store(e)))?;
        if !allowed {
            return Ok(Err(Refusal::new(
                "foreign_device",
                format!(
                    "the message is from device {}, not from the sender; only a registered gateway \
                     may send for other (registered) devices",
                    mapped.device
                ),
            )));
        }
    }
    let rejections = mapped
        .rejected
        .iter()
        .map(|r| Rejection {
            pointer: r.pointer.clone(),
            code: r.code.map(str::to_owned),
            kind: r.kind(),
            reason: r.to_string(),
        })
        .collect();
    Ok(Ok((
        mapped.device,
        vigil_codecs::DecodedMessage {
            readings: mapped.readings,
            battery_pct: mapped.battery_pct,
            ..Default::default()
        },
        rejections,
    )))
}

/// Whether `device` is registered as a gateway, which may send for other devices.
fn is_gateway(store: &dyn Store, device: &vigil_model::DeviceId) -> Result<bool, StoreError> {
    Ok(store
        .device(device)?
        .is_some_and(|d| d.kind.as_str() == vigil_model::DeviceKind::GATEWAY))
}

/// The registered peripheral a gateway relays for; the gateway must be registered as one.
async fn relayed_peripheral(
    store: &Arc<dyn Store>,
    gateway: &vigil_model::DeviceId,
    address: String,
) -> Result<vigil_model::DeviceId, MessageError> {
    let (store, gateway) = (store.clone(), gateway.clone());
    let found = tokio::task::spawn_blocking(move || {
        if !is_gateway(store.as_ref(), &gateway)? {
            return Ok(Err(Refusal::new(
                "not_a_gateway",
                "only a device registered as a gateway (--type gateway) may relay BLE readings",
            )));
        }
        Ok(match store.device_by_ble_address(&address)? {
            Some(peripheral) => Ok(peripheral.id),
            None => Err(Refusal::new(
                "unknown_peripheral",
                format!(
                    "no device is registered with BLE address {address}; register it with \
                     `vigil device add --ble-address {address}` and bind it to its patient"
                ),
            )),
        })
    })
    .await
    .map_err(|_| MessageError::Ingest(IngestError::Stopped))?
    .map_err(|e: StoreError| MessageError::Ingest(IngestError::Store(e)))?;
    found.map_err(MessageError::Payload)
}

/// Why a device message was not taken at all.
#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    /// The message as a whole is unreadable; nothing of it was stored.
    #[error(transparent)]
    Payload(#[from] Refusal),
    /// Nothing was stored and nothing may be acknowledged.
    #[error(transparent)]
    Ingest(#[from] IngestError),
}

/// Decodes, validates and stores one device message: the path shared by every source that takes
/// the device JSON contracts (MQTT and HTTP). Returns once the accepted part is durable.
pub async fn ingest_device_message(
    ingest: &Ingest,
    store: &Arc<dyn Store>,
    limits: &vigil_codecs::DecodeLimits,
    source: &'static str,
    device: &vigil_model::DeviceId,
    message: DeviceMessage,
    payload: &[u8],
) -> Result<MessageReport, MessageError> {
    let received = chrono::Utc::now();
    // The sender signed in; the readings may belong to another device it relays for.
    let sender = device;
    let mut template_rejections: Vec<Rejection> = Vec::new();
    let mut relayed_for: Option<vigil_model::DeviceId> = None;
    let decoded = match message {
        DeviceMessage::Readings => {
            vigil_codecs::decode_device_message(payload, received, limits).map_err(Refusal::from)
        }
        DeviceMessage::Event => {
            vigil_codecs::decode_device_event(payload, received, limits).map_err(Refusal::from)
        }
        DeviceMessage::Vendor(name) => {
            match vendor_message(ingest, store, limits, sender, &name, payload, received).await? {
                Ok((from, decoded, rejections)) => {
                    relayed_for = Some(from);
                    template_rejections = rejections;
                    Ok(decoded)
                }
                Err(refusal) => Err(refusal),
            }
        }
        DeviceMessage::Ble => {
            let ble_limits = vigil_codecs::ble::GatewayLimits {
                max_future_skew: limits.max_future_skew,
                ..Default::default()
            };
            match vigil_codecs::ble::decode_gateway_message(payload, received, &ble_limits) {
                Ok(relayed) => {
                    match relayed_peripheral(store, sender, relayed.peripheral.to_string()).await {
                        Ok(peripheral) => {
                            relayed_for = Some(peripheral);
                            Ok(vigil_codecs::DecodedMessage {
                                readings: relayed.readings,
                                ..Default::default()
                            })
                        }
                        Err(MessageError::Payload(refusal)) => Err(refusal),
                        Err(e) => return Err(e),
                    }
                }
                Err(e) => Err(Refusal::from(e)),
            }
        }
    };
    let keep = |kind: &str, reason: String, whole: bool| {
        ingest.refusals().keep(vigil_store::RefusedMessage {
            at: received,
            source: source.to_owned(),
            device: Some(sender.clone()),
            kind: kind.to_owned(),
            reason,
            payload: payload[..payload.len().min(vigil_store::REFUSED_PAYLOAD_MAX)].to_vec(),
            whole,
        })
    };
    let decoded = match decoded {
        Ok(decoded) => decoded,
        Err(refusal) => {
            telemetry::message_rejected(source, refusal.kind);
            keep(refusal.kind, refusal.reason.clone(), true);
            return Err(refusal.into());
        }
    };
    let implausible = decoded
        .rejected
        .iter()
        .filter(|r| r.reason.kind() == "implausible_value")
        .count()
        + template_rejections
            .iter()
            .filter(|r| r.kind == "implausible_value")
            .count();
    if implausible > 0 {
        ingest.guard().intrusion().signal(
            crate::intrusion::SignalKind::ImplausibleValues,
            crate::intrusion::Subject::Device(sender.clone()),
            u32::try_from(implausible).unwrap_or(u32::MAX),
        );
    }
    let mut rejected: Vec<Rejection> = decoded
        .rejected
        .iter()
        .map(|r| {
            telemetry::reading_rejected(source, r.reason.kind());
            Rejection {
                pointer: Some(r.pointer.clone()),
                code: r.code.clone(),
                kind: r.reason.kind(),
                reason: r.reason.to_string(),
            }
        })
        .collect();
    for r in &template_rejections {
        telemetry::reading_rejected(source, r.kind);
    }
    rejected.extend(template_rejections);
    let keep_rejections = |rejected: &[Rejection], whole: bool| {
        if let Some(first) = rejected.first() {
            let reasons: Vec<String> = rejected
                .iter()
                .map(|r| match &r.pointer {
                    Some(p) => format!("{p}: {}", r.reason),
                    None => r.reason.clone(),
                })
                .collect();
            keep(first.kind, reasons.join("; "), whole);
        }
    };
    if decoded.readings.is_empty() && decoded.waveforms.is_empty() {
        keep_rejections(&rejected, true);
        return Ok(MessageReport {
            accepted: 0,
            duplicates: 0,
            rejected,
        });
    }
    let submission = Submission {
        patient: None,
        device: relayed_for.unwrap_or_else(|| sender.clone()),
        received,
        readings: decoded.readings,
        waveforms: decoded.waveforms,
        battery_pct: decoded.battery_pct,
        signal_dbm: decoded.signal_dbm,
    };
    // Keep what the report needs before the submission moves into the pipeline.
    // Static names: no allocation on the hot path, a String only for the rare unattributed one.
    let reading_labels: Vec<(&'static str, vigil_model::Instant)> = submission
        .readings
        .iter()
        .map(|r| (r.code.short_name(), r.effective))
        .chain(
            submission
                .waveforms
                .iter()
                .map(|w| (w.code.short_name(), w.start)),
        )
        .collect();
    let outcome = ingest.submit(submission).await?;
    let mut report = MessageReport::default();
    for (outcome, (code, at)) in outcome
        .readings
        .iter()
        .chain(&outcome.waveforms)
        .zip(reading_labels)
    {
        match outcome {
            vigil_store::Outcome::Stored(_) => report.accepted += 1,
            vigil_store::Outcome::Duplicate(_) => report.duplicates += 1,
            vigil_store::Outcome::Unattributed => {
                telemetry::reading_rejected(source, "unbound_device");
                rejected.push(Rejection {
                    pointer: None,
                    code: Some(code.to_owned()),
                    kind: "unbound_device",
                    reason: format!(
                        "the device was bound to no patient at {}",
                        at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                    ),
                });
            }
        }
    }
    telemetry::readings_accepted(source, report.accepted as u64);
    telemetry::readings_duplicate(source, report.duplicates as u64);
    keep_rejections(&rejected, report.accepted + report.duplicates == 0);
    report.rejected = rejected;
    Ok(report)
}
