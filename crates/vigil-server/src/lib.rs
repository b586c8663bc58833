//! The running Vigil: sources (MQTT, HTTP) → pipeline (decode, validate, attribute, group commit)
//! → store, and the API (FHIR, device ingest, health, metrics) over it. This crate wires the
//! domain, codec, storage and FHIR crates together and holds little logic of its own.

pub mod api;
pub mod audit;
pub mod auth;
pub mod guard;
pub mod intrusion;
pub mod pipeline;
pub mod sources;
pub mod surveillance;
pub mod telemetry;
pub mod tls;
pub mod transport;

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
    /// Base URL clients use to reach the HTTP API; defaults to `http://{http}` (`https://` with
    /// TLS).
    pub public_url: Option<String>,
    /// Certificate and key for all listeners (HTTPS, MQTT over TLS, MLLP over TLS), and the CA
    /// of device certificates; `None`: every listener is plaintext.
    pub tls: Option<tls::TlsSettings>,
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
    /// An external OpenID Connect identity provider whose access tokens are accepted.
    pub oidc: Option<auth::oidc::OidcConfig>,
    /// Mark session cookies `Secure` (on whenever Vigil serves TLS).
    pub secure_cookies: bool,
    /// The key the store is encrypted with; the audit trail (`audit.sqlite`) is encrypted with
    /// it too. `None`: unencrypted (tests).
    pub store_key: Option<vigil_store::key::StoreKey>,
    /// Rate limits, CORS origins and intrusion detection thresholds (`docs/defence.md`).
    pub defence: guard::DefenceConfig,
}

impl ServerConfig {
    pub fn new(data_dir: PathBuf, http: SocketAddr, mqtt: Option<SocketAddr>) -> Self {
        ServerConfig {
            data_dir,
            http,
            mqtt,
            mllp: None,
            public_url: None,
            tls: None,
            pipeline: PipelineConfig::default(),
            mqtt_config: MqttConfig::default(),
            limits: vigil_codecs::DecodeLimits::default(),
            shutdown_grace: Duration::from_secs(10),
            cohorts: vigil_rules::cohort::Cohorts::default(),
            surveillance: Default::default(),
            stream_retention: chrono::Duration::days(7),
            refusal_retention: chrono::Duration::days(30),
            oidc: None,
            secure_cookies: false,
            store_key: None,
            defence: guard::DefenceConfig::default(),
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
    #[error(transparent)]
    Oidc(#[from] auth::oidc::OidcError),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
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
    /// Whether the listeners speak TLS (`https://`, `mqtts://`).
    pub tls: bool,
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

/// Binds one listener; `tls`: its TLS configuration, if the server has one.
async fn bind(
    what: &'static str,
    addr: SocketAddr,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> Result<(transport::Listener, SocketAddr), ServerError> {
    let bind_error = |source| ServerError::Bind { what, addr, source };
    let tcp = TcpListener::bind(addr).await.map_err(bind_error)?;
    let local = tcp.local_addr().map_err(bind_error)?;
    Ok((transport::Listener::new(tcp, tls, what), local))
}

/// Binds the listeners and starts every task. Returns once Vigil is accepting connections.
pub async fn start(
    config: ServerConfig,
    store: Arc<dyn Store>,
) -> Result<RunningServer, ServerError> {
    // First: a bad certificate or key file stops start-up, naming the file, before anything runs.
    let tls = config.tls.as_ref().map(tls::server_config).transpose()?;
    let metrics = telemetry::install();
    let tokens = auth::TokenKeys::load_or_create(&config.data_dir)?;
    let pseudonyms = auth::Pseudonyms::load_or_create(&config.data_dir)?;
    let oidc = match config.oidc.clone() {
        Some(oidc) => Some(Arc::new(auth::oidc::OidcVerifier::start(oidc).await?)),
        None => None,
    };
    let audit_dir = config.data_dir.clone();
    let audit_key = config.store_key.clone();
    let audit_log = tokio::task::spawn_blocking(move || {
        vigil_store::sqlite::SqliteAuditLog::open_with(&audit_dir, audit_key.as_ref())
    })
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
    let (intrusion, crossings) = intrusion::Intrusion::new(config.defence.intrusion.clone());
    let guard = guard::Guard::new(&config.defence, intrusion.clone());
    let ingest = ingest.with_guard(guard.clone());

    let (http_listener, http_addr) =
        bind("HTTP", config.http, tls.as_ref().map(tls::with_http_alpn)).await?;
    let public_url = config.public_url.clone().unwrap_or_else(|| {
        let scheme = if tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{http_addr}")
    });

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
    {
        let sessions = broker.clone();
        let responders = intrusion::Responders {
            store: store.clone(),
            audit: auditor.clone(),
            disconnect: Box::new(move |device| sessions.sessions.disconnect_device(device)),
        };
        tracker.spawn(intrusion::run(
            crossings,
            intrusion,
            responders,
            shutdown.clone(),
        ));
    }
    let mut mqtt_addr = None;
    if let Some(addr) = config.mqtt {
        let (listener, local) = bind("MQTT", addr, tls.clone()).await?;
        mqtt_addr = Some(local);
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
                guard.housekeeping();
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
        let (listener, local) = bind("MLLP", addr, tls.clone()).await?;
        mllp_addr = Some(local);
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
        oidc,
        secure_cookies: config.secure_cookies,
        pseudonyms,
        access_generation: Default::default(),
        surveillance,
        cohorts: Arc::new(config.cohorts.clone()),
        broker: Some(broker.clone()),
        shutdown: shutdown.clone(),
        metrics,
        fhir_base: format!("{}/fhir", public_url.trim_end_matches('/')),
        cors_origins: config.defence.cors_origins.clone(),
        audit: auditor,
    });
    let router = api::app(state);
    tracker.spawn(transport::serve_http(
        http_listener,
        router,
        shutdown.clone(),
        tracker.clone(),
    ));
    tracing::info!(http = %http_addr, mqtt = ?mqtt_addr, mllp = ?mllp_addr, tls = tls.is_some(), "vigil is listening");
    Ok(RunningServer {
        http_addr,
        mqtt_addr,
        mllp_addr,
        tls: tls.is_some(),
        broker,
        shutdown,
        tracker,
        writer: Some(writer),
        surveillance: Some(surveillance_thread),
        audit: Some(audit_writer),
        grace: config.shutdown_grace,
    })
}
