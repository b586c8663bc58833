//! The one accept loop every listener (HTTP, MQTT, MLLP) runs: plaintext TCP, or TLS when the
//! server has a certificate.
//!
//! The TLS handshake runs in the connection's own task, under [`HANDSHAKE_TIMEOUT`], never in
//! the accept loop: a client that opens a socket and stalls cannot hold up anyone else. A
//! failed handshake (an old protocol version, a client certificate the CA did not issue, plain
//! text on a TLS port) closes that connection and is counted by listener and reason.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use vigil_model::DeviceId;

use crate::telemetry;

/// Time a new TLS connection has to complete its handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What the transport proved about the peer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerIdentity {
    /// The device a verified client certificate names (see [`crate::tls::device_named_by`]);
    /// `None` over plaintext, without a client certificate, or when it names no device.
    /// Whether that device is registered and not revoked is for the source to check.
    pub device: Option<DeviceId>,
}

/// A bound listener and, when TLS is on, its acceptor.
pub struct Listener {
    tcp: TcpListener,
    tls: Option<TlsAcceptor>,
    /// `HTTP`, `MQTT` or `MLLP`: for logs and metric labels.
    what: &'static str,
}

impl Listener {
    pub fn new(
        tcp: TcpListener,
        tls: Option<Arc<rustls::ServerConfig>>,
        what: &'static str,
    ) -> Listener {
        Listener {
            tcp,
            tls: tls.map(TlsAcceptor::from),
            what,
        }
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.tcp.local_addr()
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }
}

/// An accepted connection, plaintext or TLS; connection code is written against
/// `AsyncRead + AsyncWrite` and does not care which.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

/// Accepts connections until `shutdown`; for each, completes the TLS handshake (if any) in the
/// connection's task and then runs `handle` there. Connection tasks are spawned on `tracker`,
/// so shutdown waits for them.
pub async fn serve<F, Fut>(
    listener: Listener,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    handle: F,
) where
    F: Fn(Stream, SocketAddr, PeerIdentity) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let handle = Arc::new(handle);
    let what = listener.what;
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.tcp.accept() => accepted,
        };
        let (tcp, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(listener = what, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let handle = handle.clone();
        let Some(acceptor) = listener.tls.clone() else {
            tracker.spawn(async move {
                handle(Stream::Plain(tcp), peer, PeerIdentity::default()).await
            });
            continue;
        };
        let shutdown = shutdown.clone();
        tracker.spawn(async move {
            let handshake = tokio::select! {
                _ = shutdown.cancelled() => return,
                done = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)) => done,
            };
            let tls = match handshake {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    telemetry::tls_handshake_failed(what, handshake_failure(&e));
                    tracing::debug!(listener = what, %peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    telemetry::tls_handshake_failed(what, "timeout");
                    tracing::debug!(listener = what, %peer, "TLS handshake timed out");
                    return;
                }
            };
            let identity = PeerIdentity {
                device: tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|chain| chain.first())
                    .and_then(|leaf| crate::tls::device_named_by(leaf)),
            };
            handle(Stream::Tls(Box::new(tls)), peer, identity).await
        });
    }
}

/// A metric label for why a handshake failed (bounded: never the peer's own words).
fn handshake_failure(e: &io::Error) -> &'static str {
    let Some(tls) = e.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) else {
        return "io";
    };
    match tls {
        rustls::Error::PeerIncompatible(_) => "incompatible",
        rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented => {
            "client_certificate"
        }
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateHandshakeMessage { .. } => {
            "not_tls"
        }
        rustls::Error::AlertReceived(_) => "alert_received",
        _ => "other",
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Serves the HTTP API on `listener`: HTTP/1.1 and HTTP/2 (by ALPN over TLS). Each request
/// carries the connection's `ConnectInfo<SocketAddr>` and [`PeerIdentity`] as extensions.
/// At `shutdown`, each connection finishes the requests it has in flight and closes.
pub async fn serve_http(
    listener: Listener,
    router: axum::Router,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let for_connections = shutdown.clone();
    serve(
        listener,
        shutdown,
        tracker,
        move |stream, peer, identity| {
            let shutdown = for_connections.clone();
            let service = tower::ServiceExt::map_request(
                router.clone(),
                move |mut request: hyper::Request<hyper::body::Incoming>| {
                    request
                        .extensions_mut()
                        .insert(axum::extract::ConnectInfo(peer));
                    request.extensions_mut().insert(identity.clone());
                    request
                },
            );
            async move {
                let service = hyper_util::service::TowerToHyperService::new(service);
                let builder = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                );
                let connection = builder
                    .serve_connection_with_upgrades(hyper_util::rt::TokioIo::new(stream), service);
                tokio::pin!(connection);
                let served = tokio::select! {
                    served = connection.as_mut() => served,
                    _ = shutdown.cancelled() => {
                        connection.as_mut().graceful_shutdown();
                        connection.await
                    }
                };
                if let Err(e) = served {
                    tracing::debug!(error = %e, "http connection ended with an error");
                }
            }
        },
    )
    .await
}

/// Handlers take the peer's identity as an argument. A request that did not come through
/// [`serve_http`] (an in-process test calling the router) has proved nothing: the default.
impl<S: Send + Sync> axum::extract::FromRequestParts<S> for PeerIdentity {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<PeerIdentity>()
            .cloned()
            .unwrap_or_default())
    }
}
