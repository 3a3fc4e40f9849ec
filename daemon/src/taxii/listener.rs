//! The TAXII listener: TCP accept, TLS handshakes (rustls, TLS 1.3 and 1.2, optional client
//! certificates), HTTP/1.1 serving of the router, the background refresh of the index, and
//! graceful shutdown.
//!
//! Owns: `TaxiiServer` (built from `[taxii]` and the node's core), the rustls server config of
//! the endpoint (`tls_server_config`), and the connection metadata handed to the router.
//! Must never: serve plain HTTP on a non-loopback address (the configuration refuses it), or
//! return from `serve` while a handshake, request or refresh it started still runs.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::server::WebPkiClientVerifier;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::auth::{ConnMeta, cert_uris};
use super::feed::Shared;
use super::routes::{AppState, router};
use super::{Converter, stix_converter};
use crate::config::{TaxiiConfig, TaxiiTlsConfig};
use crate::publish::NodeCore;
use crate::transport::{self, TransportError};

/// Interval of the background refresh of the index.
const REFRESH_INTERVAL: Duration = Duration::from_secs(1);

/// The rustls server config of the TAXII listener: TLS 1.3 and 1.2, ALPN `http/1.1`, client
/// certificates verified against `client_ca` when it is set (and optional: token clients need
/// none).
pub(crate) fn tls_server_config(
    tls: &TaxiiTlsConfig,
) -> Result<Arc<rustls::ServerConfig>, TransportError> {
    transport::install_crypto_provider();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs = transport::certs_from_pem(
        &transport::read_file(&tls.cert, "taxii.tls_cert")?,
        "taxii.tls_cert",
    )?;
    let key = transport::key_from_pem(
        &transport::read_private_file(&tls.key, "taxii.tls_key")?,
        "taxii.tls_key",
    )?;
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TransportError::Config(format!("taxii: {e}")))?;
    let builder = match &tls.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let roots = transport::roots_from_pem_bytes(
                &transport::read_file(ca, "taxii.client_ca")?,
                "taxii.client_ca",
            )?;
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .map_err(|e| TransportError::Config(format!("taxii.client_ca: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut cfg = builder
        .with_single_cert(certs, key)
        .map_err(|e| TransportError::Config(format!("taxii.tls_cert/tls_key: {e}")))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// The TAXII endpoint of a node, ready to serve.
#[derive(Debug)]
pub(crate) struct TaxiiServer {
    state: Arc<AppState>,
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl TaxiiServer {
    /// The endpoint of `core` as `config` describes it (loads the TLS files).
    pub(crate) fn new(
        config: &TaxiiConfig,
        core: &Arc<NodeCore>,
    ) -> Result<TaxiiServer, TransportError> {
        Self::with_converter(config, core, stix_converter())
    }

    /// Same, with another converter (tests).
    pub(crate) fn with_converter(
        config: &TaxiiConfig,
        core: &Arc<NodeCore>,
        convert: Converter,
    ) -> Result<TaxiiServer, TransportError> {
        let tls = match &config.tls {
            Some(t) => Some(tls_server_config(t)?),
            None => None,
        };
        let cache_bytes =
            usize::try_from(config.cache_mb.saturating_mul(1024 * 1024)).unwrap_or(usize::MAX);
        let shared = Arc::new(Shared::new(
            Arc::clone(core.store()),
            convert,
            Some(core.subscribe()),
            cache_bytes,
        ));
        let state = Arc::new(AppState::new(
            shared,
            config,
            core.member(),
            core.display_name(),
            tls.is_some(),
        ));
        Ok(TaxiiServer { state, tls })
    }

    /// Counts refused connections and failed logins in `metrics`.
    pub(crate) fn with_metrics(self, metrics: Arc<crate::metrics::Metrics>) -> TaxiiServer {
        self.state.set_metrics(metrics);
        self
    }

    /// Serves on `listener` until `cancel`, then finishes the requests in progress and returns.
    pub(crate) async fn serve(
        self,
        listener: TcpListener,
        cancel: CancellationToken,
    ) -> Result<(), String> {
        let local = listener.local_addr().ok();
        let (tx, rx) = mpsc::channel(64);
        let acceptor = self.tls.map(TlsAcceptor::from);
        let m = self.state.metrics().cloned();
        let limits = crate::tcp_accept::AcceptLimits {
            on_closed: m.map(|m| -> crate::tcp_accept::ClosedHook {
                Arc::new(move |l, r| m.listener_refused(l, r))
            }),
            ..crate::tcp_accept::AcceptLimits::new()
        };
        let accept = accept_loop(listener, acceptor, limits, tx, cancel.clone());
        let shared = Arc::clone(&self.state.shared);
        let refresher = refresh_loop(shared, cancel.clone());
        let app = router(Arc::clone(&self.state)).into_make_service_with_connect_info::<ConnMeta>();
        let server = axum::serve(TaxiiListener { rx, local }, app)
            .with_graceful_shutdown(cancel.clone().cancelled_owned());
        let (served, (), ()) = tokio::join!(async { server.await }, accept, refresher);
        served.map_err(|e| e.to_string())
    }
}

async fn refresh_loop(shared: Arc<Shared>, cancel: CancellationToken) {
    loop {
        let s = Arc::clone(&shared);
        let mut task = tokio::task::spawn_blocking(move || s.refresh());
        let joined = tokio::select! {
            r = &mut task => r,
            _ = cancel.cancelled() => {
                // A long build stops after its current chunk; wait for it (it is ours).
                shared.stop();
                task.await
            }
        };
        match joined {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "taxii: refreshing the index failed"),
            Err(e) => tracing::warn!(error = %e, "taxii: refresh task failed"),
        }
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(REFRESH_INTERVAL) => {}
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: Option<TlsAcceptor>,
    limits: crate::tcp_accept::AcceptLimits,
    tx: mpsc::Sender<(TaxiiIo, ConnMeta)>,
    cancel: CancellationToken,
) {
    let on_closed = limits.on_closed.clone();
    crate::tcp_accept::accept_each(
        listener,
        "taxii",
        limits,
        cancel,
        |tcp, remote, deadline| {
            let on_closed = on_closed.clone();
            let (acceptor, tx) = (acceptor.clone(), tx.clone());
            async move {
                let Some(acceptor) = acceptor else {
                    let meta = ConnMeta {
                        remote: Some(remote),
                        cert_uris: Vec::new(),
                    };
                    let _ = tx.send((TaxiiIo::Plain(tcp), meta)).await;
                    return;
                };
                match tokio::time::timeout(deadline, acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => {
                        let uris = tls
                            .get_ref()
                            .1
                            .peer_certificates()
                            .and_then(|c| c.first())
                            .map(|der| cert_uris(der))
                            .unwrap_or_default();
                        let meta = ConnMeta {
                            remote: Some(remote),
                            cert_uris: uris,
                        };
                        let _ = tx.send((TaxiiIo::Tls(Box::new(tls)), meta)).await;
                    }
                    Ok(Err(e)) => {
                        tracing::info!(%remote, error = %e, "taxii: TLS handshake failed");
                    }
                    Err(_) => {
                        if let Some(count) = &on_closed {
                            count("taxii", crate::tcp_accept::closed::HANDSHAKE_TIMEOUT);
                        }
                        tracing::debug!(%remote, "taxii: TLS handshake timed out");
                    }
                }
            }
        },
    )
    .await;
}

/// The accepted connections, as axum's listener.
struct TaxiiListener {
    rx: mpsc::Receiver<(TaxiiIo, ConnMeta)>,
    local: Option<SocketAddr>,
}

impl axum::serve::Listener for TaxiiListener {
    type Io = TaxiiIo;
    type Addr = ConnMeta;

    async fn accept(&mut self) -> (TaxiiIo, ConnMeta) {
        match self.rx.recv().await {
            Some(c) => c,
            // The accept loop stopped (shutdown): nothing more will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<ConnMeta> {
        Ok(ConnMeta {
            remote: self.local,
            cert_uris: Vec::new(),
        })
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, TaxiiListener>>
    for ConnMeta
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, TaxiiListener>) -> Self {
        stream.remote_addr().clone()
    }
}

/// A plain or TLS connection.
enum TaxiiIo {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl AsyncRead for TaxiiIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            TaxiiIo::Plain(s) => Pin::new(s).poll_read(cx, buf),
            TaxiiIo::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for TaxiiIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            TaxiiIo::Plain(s) => Pin::new(s).poll_write(cx, buf),
            TaxiiIo::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            TaxiiIo::Plain(s) => Pin::new(s).poll_flush(cx),
            TaxiiIo::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            TaxiiIo::Plain(s) => Pin::new(s).poll_shutdown(cx),
            TaxiiIo::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
