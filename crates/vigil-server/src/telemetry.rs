//! Prometheus metrics. Labels never carry patient or device identifiers (privacy and cardinality):
//! only reasons, protocols and outcomes from small fixed sets.

use std::time::Duration;

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const READINGS_ACCEPTED: &str = "vigil_readings_accepted_total";
pub const READINGS_REJECTED: &str = "vigil_readings_rejected_total";
pub const READINGS_DUPLICATE: &str = "vigil_readings_duplicate_total";
pub const MESSAGES_REJECTED: &str = "vigil_messages_rejected_total";
pub const REFUSALS_NOT_LOGGED: &str = "vigil_refusals_not_logged_total";
pub const COMMIT_SECONDS: &str = "vigil_store_commit_seconds";
pub const COMMIT_BATCH: &str = "vigil_store_commit_batch_items";
pub const COMMIT_FAILURES: &str = "vigil_store_commit_failures_total";
pub const DEVICES_CONNECTED: &str = "vigil_mqtt_devices_connected";
pub const MQTT_REFUSED: &str = "vigil_mqtt_refused_total";
pub const HTTP_AUTH_REFUSED: &str = "vigil_http_auth_refused_total";
pub const RATE_LIMITED: &str = "vigil_rate_limited_total";
pub const INTRUSION_SIGNALS: &str = "vigil_intrusion_signals_total";
pub const SECURITY_ALERTS: &str = "vigil_security_alerts_total";
pub const INTRUSION_DROPPED: &str = "vigil_intrusion_alerts_dropped_total";
pub const INTRUSION_UNTRACKED: &str = "vigil_intrusion_untracked_total";
pub const TLS_HANDSHAKES_FAILED: &str = "vigil_tls_handshakes_failed_total";

/// Installs the global recorder once and returns the handle `/metrics` renders from.
pub fn install() -> PrometheusHandle {
    static HANDLE: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full(COMMIT_SECONDS.into()),
                    &[
                        0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0,
                    ],
                )
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(COMMIT_BATCH.into()),
                        &[1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0],
                    )
                });
            let recorder = match builder {
                Ok(b) => b.build_recorder(),
                Err(_) => PrometheusBuilder::new().build_recorder(),
            };
            let handle = recorder.handle();
            // Another recorder may already be installed (several servers in one test process);
            // then this handle simply renders nothing new, which is harmless.
            let _ = metrics::set_global_recorder(recorder);
            describe();
            handle
        })
        .clone()
}

fn describe() {
    metrics::describe_counter!(READINGS_ACCEPTED, "Readings stored, by source protocol.");
    metrics::describe_counter!(READINGS_REJECTED, "Readings refused, by source and reason.");
    metrics::describe_counter!(
        READINGS_DUPLICATE,
        "Redelivered readings recognised and not stored twice."
    );
    metrics::describe_counter!(
        MESSAGES_REJECTED,
        "Whole messages refused, by source and reason."
    );
    metrics::describe_counter!(
        REFUSALS_NOT_LOGGED,
        "Refused messages not kept in the refusal log because its queue was full."
    );
    metrics::describe_histogram!(
        COMMIT_SECONDS,
        "Time to durably commit one group of submissions."
    );
    metrics::describe_histogram!(
        COMMIT_BATCH,
        "Readings and waveform segments per committed group."
    );
    metrics::describe_counter!(
        COMMIT_FAILURES,
        "Group commits that failed (nothing acknowledged)."
    );
    metrics::describe_gauge!(DEVICES_CONNECTED, "MQTT device connections currently open.");
    metrics::describe_counter!(
        MQTT_REFUSED,
        "MQTT connections, publishes and subscriptions refused, by reason."
    );
    metrics::describe_counter!(
        HTTP_AUTH_REFUSED,
        "HTTP requests refused for missing or bad credentials, by reason."
    );
    metrics::describe_counter!(
        RATE_LIMITED,
        "Requests and publishes held back by a rate limit, by limit (http_client, http_device, mqtt_device)."
    );
    metrics::describe_counter!(
        INTRUSION_SIGNALS,
        "Intrusion detection signals (refused sign-ins, topic violations, …), by kind."
    );
    metrics::describe_counter!(
        SECURITY_ALERTS,
        "Security alerts raised (an intrusion threshold crossed), by kind."
    );
    metrics::describe_counter!(
        INTRUSION_DROPPED,
        "Threshold crossings not recorded because the alert queue was full."
    );
    metrics::describe_counter!(
        INTRUSION_UNTRACKED,
        "Intrusion signals not tracked because the detector already tracks its maximum of subjects."
    );
    metrics::describe_counter!(
        TLS_HANDSHAKES_FAILED,
        "TLS handshakes that failed (old protocol, unknown client certificate, plain text on a TLS port, timeout), by listener and reason."
    );
}

pub fn record_commit(elapsed: Duration, submissions: usize, items: usize) {
    let _ = submissions;
    histogram!(COMMIT_SECONDS).record(elapsed.as_secs_f64());
    histogram!(COMMIT_BATCH).record(items as f64);
}

pub fn record_commit_failure() {
    counter!(COMMIT_FAILURES).increment(1);
}

pub fn readings_accepted(source: &'static str, n: u64) {
    if n > 0 {
        counter!(READINGS_ACCEPTED, "source" => source).increment(n);
    }
}

pub fn readings_duplicate(source: &'static str, n: u64) {
    if n > 0 {
        counter!(READINGS_DUPLICATE, "source" => source).increment(n);
    }
}

pub fn reading_rejected(source: &'static str, reason: &'static str) {
    counter!(READINGS_REJECTED, "source" => source, "reason" => reason).increment(1);
}

pub fn message_rejected(source: &'static str, reason: &'static str) {
    counter!(MESSAGES_REJECTED, "source" => source, "reason" => reason).increment(1);
}

pub fn mqtt_refused(reason: &'static str) {
    counter!(MQTT_REFUSED, "reason" => reason).increment(1);
}

pub fn http_auth_refused(reason: &'static str) {
    counter!(HTTP_AUTH_REFUSED, "reason" => reason).increment(1);
}

pub fn tls_handshake_failed(listener: &'static str, reason: &'static str) {
    counter!(TLS_HANDSHAKES_FAILED, "listener" => listener, "reason" => reason).increment(1);
}

pub fn devices_connected(delta: f64) {
    gauge!(DEVICES_CONNECTED).increment(delta);
}

/// A refused message could not be queued for the refusal log (the queue was full).
pub fn refusal_not_logged() {
    counter!(REFUSALS_NOT_LOGGED).increment(1);
}

pub fn rate_limited(limit: &'static str) {
    counter!(RATE_LIMITED, "limit" => limit).increment(1);
}

pub fn intrusion_signal(kind: &'static str, n: u32) {
    counter!(INTRUSION_SIGNALS, "kind" => kind).increment(u64::from(n));
}

pub fn security_alert(kind: &'static str) {
    counter!(SECURITY_ALERTS, "kind" => kind).increment(1);
}

pub fn intrusion_alert_dropped() {
    counter!(INTRUSION_DROPPED).increment(1);
}

pub fn intrusion_untracked() {
    counter!(INTRUSION_UNTRACKED).increment(1);
}
