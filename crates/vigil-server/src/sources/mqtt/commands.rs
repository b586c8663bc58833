//! Commands to devices over the broker: delivered on `vigil/v1/devices/{id}/cmd` as soon as they
//! are queued if the device is connected and subscribed, again whenever it subscribes until it
//! confirms them on `vigil/v1/devices/{id}/cmd/ack`, and never after they expire.
//!
//! Delivery is QoS 0 on purpose: the proof of delivery is the device's own confirmation, which
//! says whether it carried the command out, and a command without one is delivered again. The
//! device must therefore treat a repeated correlation id as the same command.
//!
//! On the wire, to the device:
//! `{"correlation_id": "c-1", "command": {…}, "expires": "2026-11-22T10:00:00Z"}`;
//! from the device: `{"correlation_id": "c-1", "status": "ok" | "failed" | "rejected",
//! "detail": "…"}` (detail optional).

use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;
use vigil_model::DeviceId;
use vigil_store::DeviceCommand;

use super::BrokerContext;
use super::topics;
use crate::pipeline::{IngestError, MessageError, MessageReport, Refusal};

/// The command as the device receives it.
pub fn wire(command: &DeviceCommand) -> Bytes {
    let body: serde_json::Value =
        serde_json::from_str(&command.body).unwrap_or(serde_json::Value::Null);
    Bytes::from(
        serde_json::to_vec(&json!({
            "correlation_id": command.correlation_id,
            "command": body,
            "expires": command.expires,
        }))
        .unwrap_or_default(),
    )
}

/// Hands `command` to the device's open connections; records it as sent if any took it.
pub async fn deliver(ctx: &BrokerContext, command: &DeviceCommand) -> bool {
    let delivered = ctx.sessions.deliver(
        &command.device,
        &topics::cmd_topic(command.device.as_str()),
        wire(command),
    );
    if delivered == 0 {
        return false;
    }
    let (store, id) = (ctx.store.clone(), command.id);
    let marked =
        tokio::task::spawn_blocking(move || store.mark_command_sent(id, chrono::Utc::now())).await;
    if !matches!(marked, Ok(Ok(()))) {
        tracing::warn!("a delivered command could not be marked sent");
    }
    true
}

/// Delivers every command still waiting for `device`.
pub async fn deliver_pending(ctx: &BrokerContext, device: &DeviceId) {
    let (store, who) = (ctx.store.clone(), device.clone());
    let pending =
        tokio::task::spawn_blocking(move || store.pending_commands(&who, chrono::Utc::now())).await;
    match pending {
        Ok(Ok(commands)) => {
            for command in &commands {
                deliver(ctx, command).await;
            }
        }
        _ => tracing::warn!(
            "pending commands could not be read; they wait for the next subscription"
        ),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Confirmation {
    correlation_id: String,
    status: String,
    detail: Option<String>,
}

/// A device's confirmation of a command: stored before the device's PUBACK.
pub async fn confirm(
    ctx: &BrokerContext,
    device: &DeviceId,
    payload: &[u8],
) -> Result<MessageReport, MessageError> {
    let refuse = |kind: &'static str, reason: String| -> MessageError {
        crate::telemetry::message_rejected("mqtt", kind);
        MessageError::Payload(Refusal {
            kind,
            reason,
            too_large: false,
        })
    };
    let confirmation: Confirmation = serde_json::from_slice(payload).map_err(|e| {
        refuse(
            "bad_confirmation",
            format!(
                "a command confirmation is {{\"correlation_id\", \"status\", \"detail\"}}: {e}"
            ),
        )
    })?;
    if !matches!(confirmation.status.as_str(), "ok" | "failed" | "rejected") {
        return Err(refuse(
            "bad_confirmation",
            "status must be ok, failed or rejected".into(),
        ));
    }
    let store = ctx.store.clone();
    let who = device.clone();
    let correlation = confirmation.correlation_id.clone();
    let confirmed = tokio::task::spawn_blocking(move || {
        store.confirm_command(
            &who,
            &confirmation.correlation_id,
            &confirmation.status,
            confirmation.detail.as_deref(),
            chrono::Utc::now(),
        )
    })
    .await
    .map_err(|_| MessageError::Ingest(IngestError::Stopped))?
    .map_err(|e| MessageError::Ingest(IngestError::Store(e)))?;
    match confirmed {
        Some(_) => Ok(MessageReport {
            accepted: 1,
            ..Default::default()
        }),
        None => Err(refuse(
            "unknown_command",
            format!("no command {correlation:?} was sent to this device"),
        )),
    }
}
