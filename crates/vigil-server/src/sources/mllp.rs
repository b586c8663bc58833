//! HL7 v2 over MLLP: bedside monitors and their gateways send ORU^R01 (IHE PCD-01) and get an
//! ACK once what they sent is durable.
//!
//! For each framed message ([`vigil_codecs::mllp`]): decode it ([`vigil_codecs::decode_oru`]);
//! check that MSH-3 names a registered device of kind `hl7-sender`; find the patient PID-3 names
//! (CX.1 equal to a Vigil patient id or a medical record number; nothing else is guessed); record
//! each piece of equipment (OBX-18) as a device, registering it on first sight; commit all of
//! the message's readings in one transaction, for the patient the message names; and only then
//! answer `AA`. Whatever is refused is answered `AE` (the sender may retry: an unknown patient may
//! be admitted later, a failed commit may succeed) or `AR` (it never will: an unknown sender,
//! an unsupported message) with an ERR segment saying why, and none of its readings is stored.
//! The answer follows MSH-16 (original mode when it is empty: always). Over TLS with a client
//! certificate that names a device (`docs/tls.md`), MSH-3 must name that same device (`AR`
//! otherwise).
//!
//! One leniency: a message whose last segment lacks its carriage return gets one. Common senders
//! strip it (python `hl7`'s `mllp_send` does), and over MLLP the frame is complete by
//! construction (it ended with 0x1C 0x0D), so this cannot turn a cut message into a shorter one;
//! the decoder itself, which may be given unframed bytes, stays strict.
//!
//! A framing error (oversize frame, a frame not closed by 0x1C 0x0D) closes the connection: the
//! byte stream can no longer be trusted to say where the next message starts. A connection that
//! sends nothing for the idle timeout, or leaves a frame half-sent that long, is closed too.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use vigil_codecs::hl7::{AckCode, AckContext, AckError, ErrorCode, ErrorLocation, Severity};
use vigil_codecs::{Hl7Limits, MllpCodec, OruMessage, build_ack, build_nack, decode_oru};
use vigil_model::{
    AbsentReason, Device, DeviceId, DeviceKind, Instant, ObservationCode, ObservationStatus,
    ObservationValue, PatientId, QualityFlags, Reading,
};
use vigil_store::{Outcome, Store, StoreError, Submission};

use crate::pipeline::Ingest;
use crate::telemetry;
use crate::transport::{self, PeerIdentity};

const SOURCE: &str = "mllp";

/// What every MLLP connection shares.
pub struct MllpContext {
    pub store: Arc<dyn Store>,
    pub ingest: Ingest,
    pub limits: Hl7Limits,
    /// A connection idle this long (or stuck mid-frame this long) is closed.
    pub idle_timeout: Duration,
}

impl MllpContext {
    pub fn new(store: Arc<dyn Store>, ingest: Ingest) -> Self {
        MllpContext {
            store,
            ingest,
            limits: Hl7Limits::default(),
            idle_timeout: Duration::from_secs(300),
        }
    }
}

/// Accepts connections until `shutdown`.
pub async fn serve(
    listener: transport::Listener,
    ctx: Arc<MllpContext>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let for_connections = shutdown.clone();
    transport::serve(
        listener,
        shutdown,
        tracker,
        move |stream, _peer, identity| {
            connection(stream, identity, ctx.clone(), for_connections.clone())
        },
    )
    .await
}

async fn connection<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    identity: PeerIdentity,
    ctx: Arc<MllpContext>,
    shutdown: CancellationToken,
) {
    let mut framed = Framed::new(stream, MllpCodec::new(ctx.limits.max_bytes));
    loop {
        let next = tokio::select! {
            _ = shutdown.cancelled() => break,
            next = tokio::time::timeout(ctx.idle_timeout, framed.next()) => next,
        };
        let frame = match next {
            Err(_) => {
                telemetry::message_rejected(SOURCE, "idle_timeout");
                break;
            }
            Ok(None) => break,
            // A TLS peer closing without close_notify (python's ssl and many others do): the
            // connection ended, the stream was not garbled. A half-sent frame got no ACK.
            Ok(Some(Err(vigil_codecs::MllpError::Io(e))))
                if e.kind() == std::io::ErrorKind::UnexpectedEof =>
            {
                break;
            }
            Ok(Some(Err(e))) => {
                telemetry::message_rejected(SOURCE, e.kind());
                tracing::warn!(
                    reason = e.kind(),
                    "mllp framing error; closing the connection"
                );
                break;
            }
            Ok(Some(Ok(frame))) => frame,
        };
        let frame: std::borrow::Cow<'_, [u8]> = if frame.ends_with(b"\r") || frame.is_empty() {
            frame.as_ref().into()
        } else {
            [frame.as_ref(), b"\r"].concat().into()
        };
        // Handled to the end even if shutdown starts meanwhile: the sender gets its answer.
        if let Some(ack) = handle(&ctx, &frame, identity.device.as_ref()).await
            && framed.send(ack).await.is_err()
        {
            break;
        }
    }
}

/// A control id for Vigil's ACKs (MSH-10): unique within the process and across restarts.
fn next_control_id(now: Instant) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("VIGIL{}{:04}", now.timestamp_micros(), n % 10_000)
}

/// Why an accepted message was not stored, as its ACK says.
struct Refusal {
    code: AckCode,
    error: AckError,
    kind: &'static str,
}

impl Refusal {
    fn new(
        code: AckCode,
        error: ErrorCode,
        location: Option<ErrorLocation>,
        kind: &'static str,
    ) -> Self {
        Refusal {
            code,
            error: AckError {
                location,
                code: error,
                severity: Severity::Error,
            },
            kind,
        }
    }

    fn internal(kind: &'static str) -> Self {
        Refusal {
            code: AckCode::Error,
            error: AckError::internal(),
            kind,
        }
    }
}

/// Decodes, checks and stores one message; the ACK to send, if the sender wants one.
/// `certified`: the device the sender's TLS client certificate names, if any.
async fn handle(ctx: &MllpContext, frame: &[u8], certified: Option<&DeviceId>) -> Option<Vec<u8>> {
    let now = chrono::Utc::now();
    let control_id = next_control_id(now);
    let keep = |kind: &str, reason: String| {
        ctx.ingest.refusals().keep(vigil_store::RefusedMessage {
            at: now,
            source: SOURCE.to_owned(),
            device: None,
            kind: kind.to_owned(),
            reason,
            payload: frame[..frame.len().min(vigil_store::REFUSED_PAYLOAD_MAX)].to_vec(),
            whole: true,
        })
    };
    let message = match decode_oru(frame, now, &ctx.limits) {
        // Shared with the registry lookups off the runtime, not copied.
        Ok(message) => Arc::new(message),
        Err(e) => {
            telemetry::message_rejected(SOURCE, e.kind());
            keep(e.kind(), e.to_string());
            let wanted = AckContext::best_effort(frame).application_ack_wanted(e.ack_code());
            return wanted.then(|| build_nack(frame, &e, now, &control_id));
        }
    };
    let (code, error) = match accept(ctx, &message, certified, now).await {
        Ok(()) => (AckCode::Accept, None),
        Err(refusal) => {
            telemetry::message_rejected(SOURCE, refusal.kind);
            let at = refusal
                .error
                .location
                .map(|l| format!(" at {l}"))
                .unwrap_or_default();
            keep(
                refusal.kind,
                format!(
                    "{} {} ({}){at}",
                    refusal.code.as_str(),
                    refusal.error.code.code(),
                    refusal.error.code.text()
                ),
            );
            (refusal.code, Some(refusal.error))
        }
    };
    message
        .ack
        .application_ack_wanted(code)
        .then(|| build_ack(&message.ack, code, error.as_ref(), now, &control_id))
}

/// The checks that need the registry, then the commit.
async fn accept(
    ctx: &MllpContext,
    message: &Arc<OruMessage>,
    certified: Option<&DeviceId>,
    now: Instant,
) -> Result<(), Refusal> {
    let store = ctx.store.clone();
    let prepared = {
        let message = Arc::clone(message);
        let certified = certified.cloned();
        tokio::task::spawn_blocking(move || {
            prepare(store.as_ref(), &message, certified.as_ref(), now)
        })
        .await
        .map_err(|_| Refusal::internal("internal"))??
    };
    let readings: usize = prepared.iter().map(|s| s.readings.len()).sum();
    let outcomes = ctx.ingest.submit_all(prepared).await.map_err(|e| {
        tracing::warn!(error = %e, "hl7 message not committed; answering AE so the sender retries");
        Refusal::internal("not_stored")
    })?;
    let (mut accepted, mut duplicates) = (0u64, 0u64);
    for outcome in outcomes.iter().flat_map(|o| &o.readings) {
        match outcome {
            Outcome::Stored(_) => accepted += 1,
            Outcome::Duplicate(_) => duplicates += 1,
            // The patient was found a moment ago; only a concurrent removal gets here.
            Outcome::Unattributed => return Err(Refusal::internal("unattributed")),
        }
    }
    debug_assert_eq!(accepted + duplicates, readings as u64);
    telemetry::readings_accepted(SOURCE, accepted);
    telemetry::readings_duplicate(SOURCE, duplicates);
    Ok(())
}

/// The registered `hl7-sender` that MSH-3 names: a device whose id is MSH-3's namespace id or
/// universal id (an EUI-64), or, for names that are not valid device ids (`MONITOR_GW`), one
/// registered with that name as its serial number.
fn find_sender(
    store: &dyn Store,
    msh3: &vigil_codecs::hl7::HierarchicDesignator,
) -> Result<Option<DeviceId>, StoreError> {
    let names = [msh3.namespace_id.as_deref(), msh3.universal_id.as_deref()];
    for name in names.into_iter().flatten() {
        let by_id = match DeviceId::new(name) {
            Ok(id) => store.device(&id)?,
            Err(_) => None,
        };
        let candidates =
            by_id
                .into_iter()
                .chain(store.search_devices(&vigil_store::DeviceQuery {
                    identifier: Some(name.to_owned()),
                    limit: 8,
                    ..Default::default()
                })?);
        for device in candidates {
            if device.kind.as_str() == DeviceKind::HL7_SENDER {
                return Ok(Some(device.id));
            }
        }
    }
    Ok(None)
}

/// Resolves the sender, the patient and the equipment; the submissions to commit.
fn prepare(
    store: &dyn Store,
    message: &OruMessage,
    certified: Option<&DeviceId>,
    now: Instant,
) -> Result<Vec<Submission>, Refusal> {
    let internal = |e: StoreError| {
        tracing::error!(error = %e, "the store failed while checking an hl7 message");
        Refusal::internal("store_failed")
    };
    // MSH-3: the sender must be registered, as what it is.
    let msh3 = Some(ErrorLocation::segment("MSH", 1).field(3));
    let unknown_sender = || {
        Refusal::new(
            AckCode::Reject,
            ErrorCode::UnknownKeyIdentifier,
            msh3,
            "unknown_sender",
        )
    };
    let sender = find_sender(store, &message.header.sending_application)
        .map_err(internal)?
        .ok_or_else(unknown_sender)?;
    // Over mutual TLS the certificate must name the sender MSH-3 names: a certified gateway
    // cannot send in another sender's name.
    if certified.is_some_and(|c| c != &sender) {
        return Err(Refusal::new(
            AckCode::Reject,
            ErrorCode::UnknownKeyIdentifier,
            msh3,
            "sender_not_certified",
        ));
    }

    // PID-3: exactly one patient, by Vigil id or medical record number.
    let pid3 = Some(ErrorLocation::segment("PID", 1).field(3));
    let mut found: Vec<PatientId> = Vec::new();
    for identifier in &message.patient_ids {
        let by_id = match PatientId::new(identifier.id.clone()) {
            Ok(id) => store.patient(&id).map_err(internal)?,
            Err(_) => None,
        };
        let by_mrn = store.patient_by_mrn(&identifier.id).map_err(internal)?;
        for p in by_id.into_iter().chain(by_mrn) {
            if !found.contains(&p.id) {
                found.push(p.id);
            }
        }
    }
    let patient = match found.as_slice() {
        [one] => one.clone(),
        [] => {
            return Err(Refusal::new(
                AckCode::Error,
                ErrorCode::UnknownKeyIdentifier,
                pid3,
                "unknown_patient",
            ));
        }
        _ => {
            return Err(Refusal::new(
                AckCode::Error,
                ErrorCode::UnknownKeyIdentifier,
                pid3,
                "ambiguous_patient",
            ));
        }
    };

    // OBX-18: each piece of equipment is a device of this sender, registered on first sight.
    let mut submissions = Vec::with_capacity(message.equipment.len());
    for equipment in &message.equipment {
        let obx18 = message
            .items
            .iter()
            .find(|i| i.equipment() == &equipment.equipment)
            .map(|i| ErrorLocation::segment("OBX", i.obx().sequence).field(18));
        let device = DeviceId::new(equipment.equipment.id.clone()).map_err(|_| {
            Refusal::new(
                AckCode::Error,
                ErrorCode::DataType,
                obx18,
                "bad_equipment_id",
            )
        })?;
        if store.device(&device).map_err(internal)?.is_none() {
            let mut record = Device::new(
                device.clone(),
                DeviceKind::new(DeviceKind::MULTIPARAMETER_MONITOR),
            );
            record.manufacturer = equipment.equipment.namespace_id.clone();
            record.model = Some(format!("equipment reported by HL7 sender {sender}"));
            // No secret can hash to all zeros: equipment reports only through its sender.
            match store.create_device(&record, &[0u8; 32]) {
                Ok(()) | Err(StoreError::AlreadyExists { .. }) => {}
                Err(e) => return Err(internal(e)),
            }
        }
        let mut readings = equipment.readings.clone();
        readings.extend(equipment.absent.iter().map(|a| Reading {
            code: if a.measurand.is_bp_component() {
                ObservationCode::BloodPressure
            } else {
                ObservationCode::Single(a.measurand)
            },
            value: ObservationValue::Absent(AbsentReason::NotObtained),
            effective: a.effective,
            status: ObservationStatus::Final,
            quality: QualityFlags::empty(),
        }));
        submissions.push(Submission {
            patient: Some(patient.clone()),
            device,
            received: now,
            readings,
            waveforms: Vec::new(),
            battery_pct: None,
            signal_dbm: None,
        });
    }
    Ok(submissions)
}
