//! The running Vigil: sources (MQTT, HTTP) → pipeline (decode, validate, attribute, group commit)
//! → store, and the API (FHIR, device ingest, health, metrics) over it. This crate wires the
//! domain, codec, storage and FHIR crates together and holds little logic of its own.

pub mod api;
pub mod audit;
pub mod auth;
pub mod pipeline;
pub mod sources;
pub mod surveillance;
pub mod telemetry;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use vigil_store::Store;

use crate::pipeline::{Ingest, IngestWriter, PipelineConfig};
use crate::sources::mqtt::{self, BrokerContext, MqttConfig, Sessions};

/// Resolved, validated settings for one server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub data_dir: PathBuf,
    pub http: SocketAddr,
    /// The embedded MQTT broker's address; `None` runs without it.
    pub mqtt: Option<SocketAddr>,
    /// The HL7 v2 MLLP listener's address; `None` (the default) runs without it.
    pub mllp: Option<SocketAddr>,
    /// Base URL clients use to reach the HTTP API; defaults to `http://{http}`.
    pub public_url: Option<String>,
    pub pipeline: PipelineConfig,
    pub mqtt_config: MqttConfig,
    pub limits: vigil_codecs::DecodeLimits,
    /// How long shutdown waits for in-flight work.
    pub shutdown_grace: Duration,
    /// The cohort rule sets patients can be assigned to.
    pub cohorts: vigil_rules::cohort::Cohorts,
    /// Rules engine configuration (NEWS2 freshness and delay, device expectations).
    pub surveillance: vigil_rules::surveillance::SurveillanceConfig,
    /// How long the live stream's log is kept for clients resuming with `Last-Event-ID`.
    pub stream_retention: chrono::Duration,
    /// How long refused messages are kept for the administrator.
    pub refusal_retention: chrono::Duration,
}

impl ServerConfig {
    pub fn new(data_dir: PathBuf, http: SocketAddr, mqtt: Option<SocketAddr>) -> Self {
        ServerConfig {
            data_dir,
            http,
            mqtt,
            mllp: None,
            public_url: None,
            pipeline: PipelineConfig::default(),
            mqtt_config: MqttConfig::default(),
            limits: vigil_codecs::DecodeLimits::default(),
            shutdown_grace: Duration::from_secs(10),
            cohorts: vigil_rules::cohort::Cohorts::default(),
            surveillance: Default::default(),
            stream_retention: chrono::Duration::days(7),
            refusal_retention: chrono::Duration::days(30),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Auth(#[from] auth::AuthError),
    #[error("cannot start the ingest writer: {0}")]
    Writer(std::io::Error),
    #[error("cannot open the audit log: {0}")]
    Audit(vigil_store::StoreError),
    #[error("cannot start the audit writer: {0}")]
    AuditWriter(std::io::Error),
    #[error("cannot start surveillance: {0}")]
    Surveillance(#[from] surveillance::StartError),
}

/// A started server. Dropping it does not stop it; call [`RunningServer::shutdown`].
pub struct RunningServer {
    pub http_addr: SocketAddr,
    pub mqtt_addr: Option<SocketAddr>,
    pub mllp_addr: Option<SocketAddr>,
    pub broker: Arc<BrokerContext>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    writer: Option<IngestWriter>,
    surveillance: Option<surveillance::SurveillanceThread>,
    audit: Option<audit::AuditWriter>,
    grace: Duration,
}

impl RunningServer {
    /// A token that, once cancelled, stops the server (e.g. on Ctrl-C).
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Waits until the shutdown token is cancelled, then stops gracefully.
    pub async fn run_until_stopped(self) {
        self.shutdown.cancelled().await;
        self.shutdown().await;
    }

    /// Stops accepting, lets in-flight requests and publishes finish (within the grace period),
    /// then waits for the writer to commit everything already queued.
    pub async fn shutdown(mut self) {
        self.shutdown.cancel();
        self.tracker.close();
        if tokio::time::timeout(self.grace, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("shutdown grace period over; abandoning unfinished connections");
        }
        drop(self.broker);
        if let Some(writer) = self.writer.take() {
            let _ = tokio::task::spawn_blocking(move || writer.join()).await;
        }
        // After the writer: surveillance evaluates everything committed before it stops.
        if let Some(surveillance) = self.surveillance.take() {
            let _ = tokio::task::spawn_blocking(move || surveillance.stop()).await;
        }
        // Last: whatever was audited while draining is committed before the process ends.
        if let Some(audit) = self.audit.take() {
            let _ = tokio::task::spawn_blocking(move || audit.stop()).await;
        }
        tracing::info!("stopped");
    }
}

/// Binds the listeners and starts every task. Returns once Vigil is accepting connections.
pub async fn start(
    config: ServerConfig,
    store: Arc<dyn Store>,
) -> Result<RunningServer, ServerError> {
    let metrics = telemetry::install();
    let tokens = auth::TokenKeys::load_or_create(&config.data_dir)?;
    let audit_dir = config.data_dir.clone();
    let audit_log =
        tokio::task::spawn_blocking(move || vigil_store::sqlite::SqliteAuditLog::open(&audit_dir))
            .await
            .map_err(|e| ServerError::AuditWriter(std::io::Error::other(e.to_string())))?
            .map_err(ServerError::Audit)?;
    let (auditor, audit_writer) =
        audit::Auditor::start(Arc::new(audit_log)).map_err(ServerError::AuditWriter)?;
    let store_for_rules = store.clone();
    let rules_config = config.surveillance.clone();
    let (surveillance, surveillance_thread) =
        tokio::task::spawn_blocking(move || surveillance::start(store_for_rules, rules_config))
            .await
            .map_err(|e| ServerError::Writer(std::io::Error::other(e.to_string())))??;
    let notify = surveillance.clone();
    let (ingest, writer) = Ingest::start_with_commit_hook(
        store.clone(),
        config.pipeline.clone(),
        Some(Box::new(move || notify.notify_committed())),
    )
    .map_err(ServerError::Writer)?;

    let http_listener =
        TcpListener::bind(config.http)
            .await
            .map_err(|source| ServerError::Bind {
                what: "HTTP",
                addr: config.http,
                source,
            })?;
    let http_addr = http_listener
        .local_addr()
        .map_err(|source| ServerError::Bind {
            what: "HTTP",
            addr: config.http,
            source,
        })?;
    let public_url = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{http_addr}"));

    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();

    let broker = Arc::new(BrokerContext {
        store: store.clone(),
        ingest: ingest.clone(),
        limits: config.limits.clone(),
        config: config.mqtt_config.clone(),
        sessions: Sessions::default(),
        audit: auditor.clone(),
    });
    let mut mqtt_addr = None;
    if let Some(addr) = config.mqtt {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::Bind {
                what: "MQTT",
                addr,
                source,
            })?;
        mqtt_addr = Some(listener.local_addr().map_err(|source| ServerError::Bind {
            what: "MQTT",
            addr,
            source,
        })?);
        tracker.spawn(mqtt::serve(
            listener,
            broker.clone(),
            shutdown.clone(),
            tracker.clone(),
        ));
    }

    // Retention of the two logs that are not clinical records: hourly, off the runtime.
    {
        let (store, shutdown) = (store.clone(), shutdown.clone());
        let (stream_keep, refusal_keep) = (config.stream_retention, config.refusal_retention);
        tracker.spawn(async move {
            let mut hourly = tokio::time::interval(Duration::from_secs(3600));
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = hourly.tick() => {}
                }
                let store = store.clone();
                let pruned = tokio::task::spawn_blocking(move || {
                    let now = chrono::Utc::now();
                    Ok::<_, vigil_store::StoreError>((
                        store.prune_stream_events(now - stream_keep)?,
                        store.prune_refusals(now - refusal_keep)?,
                    ))
                })
                .await;
                match pruned {
                    Ok(Ok((stream, refused))) => {
                        tracing::debug!(stream, refused, "retention applied")
                    }
                    Ok(Err(e)) => tracing::warn!(error = %e, "retention could not be applied"),
                    Err(_) => {}
                }
            }
        });
    }

    let mut mllp_addr = None;
    if let Some(addr) = config.mllp {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::Bind {
                what: "MLLP",
                addr,
                source,
            })?;
        mllp_addr = Some(listener.local_addr().map_err(|source| ServerError::Bind {
            what: "MLLP",
            addr,
            source,
        })?);
        let ctx = Arc::new(sources::mllp::MllpContext::new(
            store.clone(),
            ingest.clone(),
        ));
        tracker.spawn(sources::mllp::serve(
            listener,
            ctx,
            shutdown.clone(),
            tracker.clone(),
        ));
    }

    let state = Arc::new(api::AppState {
        store,
        ingest,
        limits: config.limits.clone(),
        tokens,
        surveillance,
        cohorts: Arc::new(config.cohorts.clone()),
        broker: Some(broker.clone()),
        shutdown: shutdown.clone(),
        metrics,
        fhir_base: format!("{}/fhir", public_url.trim_end_matches('/')),
        audit: auditor,
    });
    let router = api::app(state);
    let http_shutdown = shutdown.clone();
    tracker.spawn(async move {
        // With the peer's address, which the audit trail records for every request.
        let served = axum::serve(
            http_listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move { http_shutdown.cancelled().await })
        .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "HTTP server failed");
        }
    });
    tracing::info!(http = %http_addr, mqtt = ?mqtt_addr, mllp = ?mllp_addr, "vigil is listening");
    Ok(RunningServer {
        http_addr,
        mqtt_addr,
        mllp_addr,
        broker,
        shutdown,
        tracker,
        writer: Some(writer),
        surveillance: Some(surveillance_thread),
        audit: Some(audit_writer),
        grace: config.shutdown_grace,
    })
}
