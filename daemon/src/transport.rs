//! TLS configurations and identities taken from verified certificates.
//!
//! Owns: the rustls `ServerConfig` of the TCP operator listener (TLS 1.3 only, client
//! certificates required and verified against the configured CA, and only operator certificates
//! with URI SAN `tanoa://operator/<name>` accepted), the rustls `ClientConfig` the CLI uses to
//! reach it, the peer-port configs (`PeerTls`: server side requires a member certificate chained
//! to a trust anchor whose `tanoa://member/<id>` is in the roster; client side accepts only the
//! certificate of the member it dialled), the refusal reasons of both (`refusal` codes, reported
//! through a `RefusalHook` so the node can log and count them), reading identities from
//! certificate SANs (x509-parser), and the TLS stream types that carry the verified operator or
//! member identity into request extensions.
//! Must never: take an identity from anything but a certificate that rustls verified, accept a
//! peer (`tanoa://member/<id>`) certificate on the operator listener or an operator certificate
//! on the peer port, or rely on rustls picking a crypto provider by itself (ring is always passed
//! explicitly).
//!
//! Host names are not checked when dialling a peer: the identity is the URI SAN, and the client
//! refuses any server certificate whose `tanoa://member/<id>` is not the member it meant to reach.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

/// URI SAN prefix of operator certificates.
pub const OPERATOR_URI_PREFIX: &str = "tanoa://operator/";
/// URI SAN prefix of member (peer) certificates.
pub const MEMBER_URI_PREFIX: &str = "tanoa://member/";

/// TLS set-up or handshake failure; names the file or the remote address.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// A file could not be read.
    #[error("{what} {path}: {source}")]
    Io {
        /// Which setting, e.g. `operator.tls_cert`.
        what: String,
        /// The file.
        path: std::path::PathBuf,
        /// Cause.
        source: io::Error,
    },
    /// PEM content is missing or malformed.
    #[error("{what}: {detail}")]
    Pem {
        /// Which setting or argument.
        what: String,
        /// What is wrong.
        detail: String,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(String),
    /// A TLS handshake failed.
    #[error("TLS handshake with {remote}: {detail}")]
    Handshake {
        /// Remote address.
        remote: String,
        /// Cause.
        detail: String,
    },
    /// The verified certificate does not carry an acceptable identity.
    #[error("certificate refused: {0}")]
    Identity(String),
    /// A private key file that others may read (or write).
    #[error(transparent)]
    Key(#[from] crate::keys::KeyError),
}

/// Installs ring as the process-wide rustls crypto provider (idempotent; "already installed"
/// is not an error). Every config here also passes ring explicitly.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Parses every certificate in a PEM buffer; `what` names its source in errors.
pub(crate) fn certs_from_pem(
    pem: &[u8],
    what: &str,
) -> Result<Vec<CertificateDer<'static>>, TransportError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TransportError::Pem {
            what: what.into(),
            detail: format!("not a PEM certificate file ({e})"),
        })?;
    if certs.is_empty() {
        return Err(TransportError::Pem {
            what: what.into(),
            detail: "no CERTIFICATE block found".into(),
        });
    }
    Ok(certs)
}

/// Parses the private key in a PEM buffer (PKCS#8, SEC1 or PKCS#1).
pub(crate) fn key_from_pem(
    pem: &[u8],
    what: &str,
) -> Result<PrivateKeyDer<'static>, TransportError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| TransportError::Pem {
        what: what.into(),
        detail: format!("no usable PRIVATE KEY block ({e})"),
    })
}

/// Reads a file for a named setting.
pub(crate) fn read_file(path: &Path, what: &str) -> Result<Vec<u8>, TransportError> {
    std::fs::read(path).map_err(|source| TransportError::Io {
        what: what.into(),
        path: path.to_path_buf(),
        source,
    })
}

/// Reads a private key file for a named setting, refusing it (like the signing key) when group
/// or others may read or write it.
pub(crate) fn read_private_file(path: &Path, what: &str) -> Result<Vec<u8>, TransportError> {
    let body = read_file(path, what)?;
    crate::keys::check_private_mode(path)?;
    Ok(body)
}

fn roots_from_pem(pem: &[u8], what: &str) -> Result<RootCertStore, TransportError> {
    let mut roots = RootCertStore::empty();
    for c in certs_from_pem(pem, what)? {
        roots.add(c).map_err(|e| TransportError::Pem {
            what: what.into(),
            detail: format!("not a usable CA certificate ({e})"),
        })?;
    }
    Ok(roots)
}

/// The identity a verified certificate carries in its `tanoa://` URI SAN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CertIdentity {
    /// `tanoa://operator/<name>`: an operator of this member.
    Operator(String),
    /// `tanoa://member/<id>`: a federation member (peer).
    Member(String),
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._@".contains(c))
}

/// Every URI subject alternative name of a DER certificate, in order.
pub(crate) fn uri_sans(der: &[u8]) -> Result<Vec<String>, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| format!("certificate does not parse ({e})"))?;
    let san = cert
        .subject_alternative_name()
        .map_err(|e| format!("bad subjectAltName extension ({e})"))?;
    Ok(san
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|name| match name {
                    x509_parser::extensions::GeneralName::URI(uri) => Some((*uri).to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default())
}

/// Reads the `tanoa://` identity of a DER certificate. A certificate with both kinds, two
/// identities, or none is refused.
pub(crate) fn cert_identity(der: &[u8]) -> Result<CertIdentity, String> {
    let mut found = Vec::new();
    for uri in uri_sans(der)? {
        if let Some(n) = uri.strip_prefix(OPERATOR_URI_PREFIX) {
            found.push(CertIdentity::Operator(n.to_string()));
        } else if let Some(n) = uri.strip_prefix(MEMBER_URI_PREFIX) {
            found.push(CertIdentity::Member(n.to_string()));
        }
    }
    match found.as_slice() {
        [] => Err(format!(
            "no {OPERATOR_URI_PREFIX}<name> or {MEMBER_URI_PREFIX}<id> URI SAN"
        )),
        [one] => {
            let (CertIdentity::Operator(n) | CertIdentity::Member(n)) = one;
            if valid_name(n) {
                Ok(one.clone())
            } else {
                Err(format!("identity {n:?} in the URI SAN is not a valid name"))
            }
        }
        _ => Err(format!(
            "{} tanoa:// URI SANs; exactly one is allowed",
            found.len()
        )),
    }
}

/// Decides whether a verified certificate may use the operator API; the error explains why not.
pub(crate) fn operator_name_of(der: &[u8]) -> Result<String, String> {
    match cert_identity(der)? {
        CertIdentity::Operator(name) => Ok(name),
        CertIdentity::Member(id) => Err(format!(
            "a peer certificate ({MEMBER_URI_PREFIX}{id}) can never call the operator API"
        )),
    }
}

/// Stable reason codes of refused TLS connections (label of `tanoa_peer_refusals_total`).
pub mod refusal {
    /// The certificate does not chain to a configured trust anchor.
    pub(crate) const UNKNOWN_CA: &str = "unknown_ca";
    /// The certificate's validity ended.
    pub(crate) const EXPIRED: &str = "expired";
    /// The certificate's validity has not started.
    pub(crate) const NOT_YET_VALID: &str = "not_yet_valid";
    /// A member certificate whose id is not in the roster (or is our own).
    pub const NOT_IN_ROSTER: &str = "not_in_roster";
    /// An operator certificate presented on the peer port.
    pub(crate) const OPERATOR_CERT: &str = "operator_cert";
    /// A member certificate presented on the operator port.
    pub(crate) const PEER_CERT_ON_OPERATOR: &str = "peer_cert_on_operator_port";
    /// The server we dialled presented the certificate of another member.
    pub(crate) const WRONG_MEMBER: &str = "wrong_member";
    /// No usable `tanoa://` identity in the certificate.
    pub(crate) const NO_IDENTITY: &str = "no_identity";
    /// Any other certificate problem (bad signature, wrong key usage, ...).
    pub(crate) const BAD_CERTIFICATE: &str = "bad_certificate";
    /// The client sent no certificate.
    pub(crate) const NO_CLIENT_CERT: &str = "no_client_cert";
    /// The handshake failed for another reason (protocol version, garbage, ...).
    pub(crate) const HANDSHAKE: &str = "handshake_failed";
    /// A pinned member presented a certificate whose key is not among its pins (or a
    /// CA-issued certificate for a member that is authenticated by pins only).
    pub(crate) const PIN_MISMATCH: &str = "pin_mismatch";
    /// No trust anchor is configured and no member pins the certificate's key.
    pub(crate) const UNKNOWN_PIN: &str = "unknown_pin";
}

/// A refused TLS connection, reported to the `RefusalHook`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Reason code (see `refusal`).
    pub reason: &'static str,
    /// Where: `"peer port"`, `"operator port"` or `"dialling <member>"`.
    pub side: String,
    /// The other end's address (`None` when unknown).
    pub remote: Option<SocketAddr>,
    /// What it presented: the certificate's subject and `tanoa://` URIs, labelled "unverified"
    /// when the chain did not verify (then the identity is only claimed), or the remote address.
    pub subject: String,
    /// Human detail.
    pub detail: String,
}

/// Called for every refused connection (the node logs it and counts it).
pub(crate) type RefusalHook = Arc<dyn Fn(&Refusal) + Send + Sync>;

/// A hook that only logs (used when nobody counts, e.g. by the CLI).
pub fn logging_hook() -> RefusalHook {
    Arc::new(|r: &Refusal| {
        tracing::warn!(reason = r.reason, side = %r.side, remote = %remote_text(r.remote),
            subject = %r.subject, detail = %r.detail, "TLS connection refused");
    })
}

/// `addr`, or `unknown`.
pub(crate) fn remote_text(addr: Option<SocketAddr>) -> String {
    addr.map_or_else(|| "unknown".to_string(), |a| a.to_string())
}

tokio::task_local! {
    /// The remote address of the TLS handshake running in this task (read by the certificate
    /// verifiers, which rustls calls without it).
    static HANDSHAKE_REMOTE: Option<SocketAddr>;
}

/// Runs `handshake` with `remote` known to the certificate verifiers (for refusal reports).
pub(crate) async fn with_remote<F: std::future::Future>(
    remote: Option<SocketAddr>,
    handshake: F,
) -> F::Output {
    HANDSHAKE_REMOTE.scope(remote, handshake).await
}

/// The remote address of the handshake being verified, if known.
fn handshake_remote() -> Option<SocketAddr> {
    HANDSHAKE_REMOTE.try_with(|r| *r).ok().flatten()
}

/// Describes a certificate whose chain did not verify: its identity is only claimed.
pub(crate) fn describe_unverified(der: &[u8]) -> String {
    format!("unverified certificate claiming {}", describe_cert(der))
}

/// Describes a certificate whose chain verified but whose identity is not allowed here.
fn describe_verified(der: &[u8]) -> String {
    format!("chain-verified certificate {}", describe_cert(der))
}

/// The refusal reason of a rustls certificate error.
pub(crate) fn refusal_reason(e: &rustls::Error) -> &'static str {
    use rustls::CertificateError as C;
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            C::UnknownIssuer => refusal::UNKNOWN_CA,
            C::Expired | C::ExpiredContext { .. } => refusal::EXPIRED,
            C::NotValidYet | C::NotValidYetContext { .. } => refusal::NOT_YET_VALID,
            _ => refusal::BAD_CERTIFICATE,
        },
        rustls::Error::NoCertificatesPresented => refusal::NO_CLIENT_CERT,
        _ => refusal::HANDSHAKE,
    }
}

/// Describes a certificate for logs: its subject and `tanoa://` URI SANs.
pub(crate) fn describe_cert(der: &[u8]) -> String {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return "an unparsable certificate".to_string();
    };
    let mut uris = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::URI(uri) = name {
                uris.push((*uri).to_string());
            }
        }
    }
    let subject = cert.subject().to_string();
    if uris.is_empty() {
        format!("subject \"{subject}\"")
    } else {
        format!("subject \"{subject}\" ({})", uris.join(", "))
    }
}

/// What a client-certificate verifier decides beyond the WebPKI chain check: whether the
/// identity in the certificate may use this listener, and what to log/count on refusal. The
/// shared rustls plumbing lives once in `GatedClientVerifier`.
trait ClientGate: Send + Sync + std::fmt::Debug {
    /// Takes the chain check's result for `end_entity` and returns the final decision.
    fn admit(
        &self,
        end_entity: &CertificateDer<'_>,
        chain: Result<ClientCertVerified, rustls::Error>,
    ) -> Result<ClientCertVerified, rustls::Error>;
}

/// A client-certificate verifier: the WebPKI chain check (`inner`), then the listener's gate.
/// Client certificates are always required.
#[derive(Debug)]
struct GatedClientVerifier<G> {
    inner: Arc<dyn ClientCertVerifier>,
    gate: G,
}

impl<G: ClientGate> ClientCertVerifier for GatedClientVerifier<G> {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let chain = self
            .inner
            .verify_client_cert(end_entity, intermediates, now);
        self.gate.admit(end_entity, chain)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Gate of the operator listener (after the chain check against `client_ca`): the certificate
/// must carry an operator SAN.
struct OperatorGate {
    hook: Option<RefusalHook>,
}

impl std::fmt::Debug for OperatorGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OperatorGate").finish_non_exhaustive()
    }
}

impl ClientGate for OperatorGate {
    fn admit(
        &self,
        end_entity: &CertificateDer<'_>,
        chain: Result<ClientCertVerified, rustls::Error>,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let remote = remote_text(handshake_remote());
        let verified = chain.inspect_err(|e| {
            tracing::warn!(error = %e, %remote, subject = %describe_unverified(end_entity),
                "operator listener: client certificate refused");
        })?;
        match operator_name_of(end_entity) {
            Ok(_) => Ok(verified),
            Err(reason) => {
                tracing::warn!(%reason, %remote, "operator listener: client certificate refused");
                if let Some(hook) = &self.hook {
                    let code = match cert_identity(end_entity) {
                        Ok(CertIdentity::Member(_)) => refusal::PEER_CERT_ON_OPERATOR,
                        _ => refusal::NO_IDENTITY,
                    };
                    hook(&Refusal {
                        reason: code,
                        side: "operator port".into(),
                        remote: handshake_remote(),
                        subject: describe_verified(end_entity),
                        detail: reason.clone(),
                    });
                }
                // The chain is fine, the identity is not allowed here.
                Err(app_refusal())
            }
        }
    }
}

/// rustls server config of the TCP operator listener from in-memory PEM: TLS 1.3 only, ALPN
/// `h2`, client certificate required, chained to `client_ca_pem` and carrying an operator SAN.
#[cfg(test)]
pub(crate) fn operator_server_config(
    cert_pem: &[u8],
    key_pem: &[u8],
    client_ca_pem: &[u8],
) -> Result<Arc<rustls::ServerConfig>, TransportError> {
    operator_server_config_with_hook(cert_pem, key_pem, client_ca_pem, None)
}

/// `operator_server_config` that also reports refused identities (e.g. a peer certificate on
/// the operator port) to `hook`.
pub(crate) fn operator_server_config_with_hook(
    cert_pem: &[u8],
    key_pem: &[u8],
    client_ca_pem: &[u8],
    hook: Option<RefusalHook>,
) -> Result<Arc<rustls::ServerConfig>, TransportError> {
    let provider = provider();
    let certs = certs_from_pem(cert_pem, "operator.tls_cert")?;
    let key = key_from_pem(key_pem, "operator.tls_key")?;
    let roots = roots_from_pem(client_ca_pem, "operator.client_ca")?;
    let inner = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| TransportError::Config(format!("operator.client_ca: {e}")))?;
    let verifier = Arc::new(GatedClientVerifier {
        inner,
        gate: OperatorGate { hook },
    });
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TransportError::Config(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| TransportError::Config(format!("operator.tls_cert/tls_key: {e}")))?;
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(cfg))
}

/// `operator_server_config` from the three PEM files, reporting refusals to `hook`.
pub(crate) fn operator_server_config_from_files_with_hook(
    cert: &Path,
    key: &Path,
    client_ca: &Path,
    hook: Option<RefusalHook>,
) -> Result<Arc<rustls::ServerConfig>, TransportError> {
    operator_server_config_with_hook(
        &read_file(cert, "operator.tls_cert")?,
        &read_private_file(key, "operator.tls_key")?,
        &read_file(client_ca, "operator.client_ca")?,
        hook,
    )
}

/// rustls client config for reaching an operator TCP listener: TLS 1.3, server verified against
/// `ca_pem`, client certificate `cert_pem`/`key_pem`, ALPN `h2`.
pub(crate) fn operator_client_config(
    ca_pem: &[u8],
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<Arc<rustls::ClientConfig>, TransportError> {
    let roots = roots_from_pem(ca_pem, "CA certificate")?;
    let certs = certs_from_pem(cert_pem, "client certificate")?;
    let key = key_from_pem(key_pem, "client key")?;
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TransportError::Config(e.to_string()))?
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key)
        .map_err(|e| TransportError::Config(format!("client certificate/key: {e}")))?;
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(cfg))
}

/// Who is calling the operator API over TCP, from the verified client certificate. Available
/// to handlers as a request extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OperatorIdentity {
    /// `<name>` of the certificate's `tanoa://operator/<name>` URI SAN.
    pub name: String,
    /// Remote address.
    pub remote: Option<SocketAddr>,
}

/// A server-side TLS connection whose client certificate verified, with the identity read from
/// it (`OperatorIdentity` on the operator listener, `PeerIdentity` on the peer port). Handlers
/// see the identity as a request extension (tonic `ConnectInfo`).
#[derive(Debug)]
pub struct VerifiedTlsStream<I> {
    inner: tokio_rustls::server::TlsStream<TcpStream>,
    identity: I,
}

impl<I> VerifiedTlsStream<I> {
    /// The verified identity.
    pub(crate) fn identity(&self) -> &I {
        &self.identity
    }
}

impl<I: Clone + Send + Sync + 'static> tonic::transport::server::Connected
    for VerifiedTlsStream<I>
{
    type ConnectInfo = I;

    fn connect_info(&self) -> I {
        self.identity.clone()
    }
}

/// A TLS connection on the operator listener carrying a verified operator identity.
pub(crate) type OperatorTlsStream = VerifiedTlsStream<OperatorIdentity>;

/// Forwards `AsyncRead`/`AsyncWrite` of a wrapper to its `inner` TLS stream.
macro_rules! forward_io {
    ($t:ty) => {
        impl<I: Unpin> AsyncRead for $t {
            fn poll_read(
                mut self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut ReadBuf<'_>,
            ) -> Poll<io::Result<()>> {
                Pin::new(&mut self.inner).poll_read(cx, buf)
            }
        }

        impl<I: Unpin> AsyncWrite for $t {
            fn poll_write(
                mut self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                Pin::new(&mut self.inner).poll_write(cx, buf)
            }

            fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                Pin::new(&mut self.inner).poll_flush(cx)
            }

            fn poll_shutdown(
                mut self: Pin<&mut Self>,
                cx: &mut Context<'_>,
            ) -> Poll<io::Result<()>> {
                Pin::new(&mut self.inner).poll_shutdown(cx)
            }

            fn poll_write_vectored(
                mut self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[io::IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
            }

            fn is_write_vectored(&self) -> bool {
                self.inner.is_write_vectored()
            }
        }
    };
}

forward_io!(VerifiedTlsStream<I>);

/// Runs the TLS handshake of an accepted operator connection and reads the operator identity
/// from the verified client certificate.
pub(crate) async fn accept_operator(
    acceptor: &TlsAcceptor,
    tcp: TcpStream,
) -> Result<OperatorTlsStream, TransportError> {
    let remote = tcp.peer_addr().ok();
    let remote_s = remote_text(remote);
    let tls = with_remote(remote, acceptor.accept(tcp))
        .await
        .map_err(|e| TransportError::Handshake {
            remote: remote_s.clone(),
            detail: e.to_string(),
        })?;
    let (_, session) = tls.get_ref();
    let der = session
        .peer_certificates()
        .and_then(|c| c.first())
        .ok_or_else(|| {
            TransportError::Identity(format!("{remote_s} sent no client certificate"))
        })?;
    let name = operator_name_of(der).map_err(TransportError::Identity)?;
    Ok(OperatorTlsStream {
        inner: tls,
        identity: OperatorIdentity { name, remote },
    })
}

// ---------------------------------------------------------------------------------------------
// The peer port.

fn app_refusal() -> rustls::Error {
    // Sent to the remote as an `access_denied` alert.
    rustls::Error::InvalidCertificate(rustls::CertificateError::ApplicationVerificationFailure)
}

mod peer_trust;
pub(crate) use peer_trust::accept_peer;
pub(crate) use peer_trust::anchors_from_files;
pub use peer_trust::{LiveStream, PeerTls, PeerTrustUpdate};

/// Roots from in-memory PEM (one or more CA certificates).
pub(crate) fn roots_from_pem_bytes(
    pem: &[u8],
    what: &str,
) -> Result<RootCertStore, TransportError> {
    roots_from_pem(pem, what)
}

/// Who is calling on the peer port, from the verified client certificate. Available to the peer
/// service's handlers as a request extension; never taken from a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentity {
    /// The roster peer the certificate authenticates: the member whose pin matches its key, or
    /// (for a member without pins) the `<id>` of its CA-verified `tanoa://member/<id>`.
    pub member: String,
    /// Remote address.
    pub remote: Option<SocketAddr>,
}

/// A TLS connection on the peer port whose client certificate verified and names a roster peer.
pub(crate) type PeerTlsStream = VerifiedTlsStream<PeerIdentity>;

/// Test PKI generated with rcgen: a CA and certificates signed by it.
#[cfg(test)]
pub(crate) mod test_pki {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};

    /// A CA able to issue certificates.
    pub(crate) struct TestCa {
        pub(crate) pem: String,
        issuer: Issuer<'static, KeyPair>,
    }

    /// A certificate and its private key, PEM.
    pub(crate) struct TestCert {
        pub(crate) cert_pem: String,
        pub(crate) key_pem: String,
    }

    impl TestCa {
        pub(crate) fn new(name: &str) -> TestCa {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.distinguished_name.push(DnType::CommonName, name);
            let cert = params.self_signed(&key).unwrap();
            TestCa {
                pem: cert.pem(),
                issuer: Issuer::new(params, key),
            }
        }

        /// A leaf certificate with DNS `localhost`, IP 127.0.0.1 and the given URI SANs.
        pub(crate) fn issue(&self, uris: &[&str]) -> TestCert {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
            params
                .subject_alt_names
                .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
            for u in uris {
                params
                    .subject_alt_names
                    .push(SanType::URI((*u).try_into().unwrap()));
            }
            params.distinguished_name.push(DnType::CommonName, "test");
            let cert = params.signed_by(&key, &self.issuer).unwrap();
            TestCert {
                cert_pem: cert.pem(),
                key_pem: key.serialize_pem(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::test_pki::TestCa;
    use super::*;

    fn der_of(pem: &str) -> Vec<u8> {
        certs_from_pem(pem.as_bytes(), "test").unwrap()[0].to_vec()
    }

    #[test]
    fn identity_is_read_from_uri_san() {
        let ca = TestCa::new("ca");
        let op = ca.issue(&["tanoa://operator/alice"]);
        assert_eq!(
            cert_identity(&der_of(&op.cert_pem)).unwrap(),
            CertIdentity::Operator("alice".into())
        );
        let peer = ca.issue(&["tanoa://member/to-cert"]);
        assert_eq!(
            cert_identity(&der_of(&peer.cert_pem)).unwrap(),
            CertIdentity::Member("to-cert".into())
        );
        let err = operator_name_of(&der_of(&peer.cert_pem)).unwrap_err();
        assert!(
            err.contains("peer certificate (tanoa://member/to-cert)"),
            "{err}"
        );
        let none = ca.issue(&[]);
        assert!(
            cert_identity(&der_of(&none.cert_pem))
                .unwrap_err()
                .contains("no tanoa://")
        );
        let both = ca.issue(&["tanoa://operator/a", "tanoa://member/b"]);
        assert!(operator_name_of(&der_of(&both.cert_pem)).is_err());
    }

    #[test]
    fn server_config_is_tls13_with_h2() {
        install_crypto_provider();
        let ca = TestCa::new("ca");
        let server = ca.issue(&["tanoa://member/ws-cert"]);
        let cfg = operator_server_config(
            server.cert_pem.as_bytes(),
            server.key_pem.as_bytes(),
            ca.pem.as_bytes(),
        )
        .unwrap();
        assert_eq!(cfg.alpn_protocols, vec![b"h2".to_vec()]);
    }

    #[test]
    fn peer_tls_requires_our_own_member_certificate() {
        install_crypto_provider();
        let ca = TestCa::new("ca");
        let roots = || roots_from_pem_bytes(ca.pem.as_bytes(), "ca").unwrap();
        let other = ca.issue(&["tanoa://member/to-cert"]);
        let err = PeerTls::new(
            "ws-cert",
            other.cert_pem.as_bytes(),
            other.key_pem.as_bytes(),
            roots(),
            ["to-cert".to_string()],
            logging_hook(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("tanoa://member/ws-cert"), "{err}");
        let own = ca.issue(&["tanoa://member/ws-cert"]);
        let tls = PeerTls::new(
            "ws-cert",
            own.cert_pem.as_bytes(),
            own.key_pem.as_bytes(),
            roots(),
            ["to-cert".to_string(), "ws-cert".to_string()],
            logging_hook(),
        )
        .unwrap();
        // Our own id is never a peer.
        assert_eq!(tls.peers().iter().collect::<Vec<_>>(), ["to-cert"]);
        assert_eq!(tls.server_config().alpn_protocols, vec![b"h2".to_vec()]);
        assert_eq!(
            tls.client_config("to-cert").unwrap().alpn_protocols,
            vec![b"h2".to_vec()]
        );
    }

    #[test]
    fn a_peer_tls_key_readable_by_others_is_refused_like_the_signing_key() {
        use std::os::unix::fs::PermissionsExt;
        install_crypto_provider();
        let ca = TestCa::new("ca");
        let own = ca.issue(&["tanoa://member/ws-cert"]);
        let dir = tempfile::tempdir().unwrap();
        let (cert, key, anchor) = (
            dir.path().join("member.pem"),
            dir.path().join("member.key"),
            dir.path().join("ca.pem"),
        );
        std::fs::write(&cert, &own.cert_pem).unwrap();
        std::fs::write(&key, &own.key_pem).unwrap();
        std::fs::write(&anchor, &ca.pem).unwrap();
        let load = || {
            PeerTls::from_files(
                "ws-cert",
                &cert,
                &key,
                std::slice::from_ref(&anchor),
                [("to-cert".to_string(), Vec::new())].into(),
                logging_hook(),
            )
        };
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = load().map(|_| ()).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "key file {k} has mode 644; a private key must be 0600 (run: chmod 600 {k})",
                k = key.display()
            )
        );
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(load().is_ok());
    }

    #[test]
    fn operator_and_taxii_tls_keys_readable_by_others_are_refused_like_the_signing_key() {
        use std::os::unix::fs::PermissionsExt;
        install_crypto_provider();
        let ca = TestCa::new("ca");
        let own = ca.issue(&["localhost"]);
        let dir = tempfile::tempdir().unwrap();
        let (cert, key, anchor) = (
            dir.path().join("server.pem"),
            dir.path().join("server.key"),
            dir.path().join("ca.pem"),
        );
        std::fs::write(&cert, &own.cert_pem).unwrap();
        std::fs::write(&key, &own.key_pem).unwrap();
        std::fs::write(&anchor, &ca.pem).unwrap();
        let taxii = crate::config::TaxiiTlsConfig {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: None,
        };
        let operator =
            || operator_server_config_from_files_with_hook(&cert, &key, &anchor, None).map(|_| ());
        let taxii_listener = || crate::taxii::listener::tls_server_config(&taxii).map(|_| ());
        let want = format!(
            "key file {k} has mode 644; a private key must be 0600 (run: chmod 600 {k})",
            k = key.display()
        );
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(operator().unwrap_err().to_string(), want);
        assert_eq!(taxii_listener().unwrap_err().to_string(), want);
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(operator().is_ok());
        assert!(taxii_listener().is_ok());
    }

    #[tokio::test]
    async fn a_refused_client_is_reported_with_its_address_and_as_unverified() {
        install_crypto_provider();
        let ca = TestCa::new("ca");
        let rogue = TestCa::new("rogue");
        let roots = || roots_from_pem_bytes(ca.pem.as_bytes(), "ca").unwrap();
        let own = ca.issue(&["tanoa://member/ws-cert"]);
        let seen = Arc::new(std::sync::Mutex::new(Vec::<Refusal>::new()));
        let s2 = Arc::clone(&seen);
        let hook: RefusalHook = Arc::new(move |r: &Refusal| s2.lock().unwrap().push(r.clone()));
        let server = PeerTls::new(
            "ws-cert",
            own.cert_pem.as_bytes(),
            own.key_pem.as_bytes(),
            roots(),
            ["to-cert".to_string()],
            Arc::clone(&hook),
        )
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = TlsAcceptor::from(server.server_config());
        let server2 = server.clone();
        let accepting = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            accept_peer(&acceptor, tcp, &hook, &server2)
                .await
                .map(|_| ())
        });
        // A certificate of another CA claiming to be to-cert (as an attacker's self-made one).
        let impostor = rogue.issue(&["tanoa://member/to-cert"]);
        let client = PeerTls::new(
            "to-cert",
            impostor.cert_pem.as_bytes(),
            impostor.key_pem.as_bytes(),
            roots(),
            ["ws-cert".to_string()],
            logging_hook(),
        )
        .unwrap();
        let tcp = TcpStream::connect(addr).await.unwrap();
        let local = tcp.local_addr().unwrap();
        let connector = tokio_rustls::TlsConnector::from(client.client_config("ws-cert").unwrap());
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let _ = connector.connect(name, tcp).await;
        assert!(accepting.await.unwrap().is_err());
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert_eq!(seen[0].reason, refusal::UNKNOWN_CA);
        assert_eq!(
            seen[0].remote,
            Some(local),
            "the refusal names the remote address"
        );
        assert!(
            seen[0]
                .subject
                .starts_with("unverified certificate claiming subject")
                && seen[0].subject.contains("tanoa://member/to-cert"),
            "{}",
            seen[0].subject
        );
    }

    #[test]
    fn certificate_errors_map_to_refusal_reasons() {
        use rustls::CertificateError as C;
        let r = |c: C| refusal_reason(&rustls::Error::InvalidCertificate(c));
        assert_eq!(r(C::UnknownIssuer), refusal::UNKNOWN_CA);
        assert_eq!(r(C::Expired), refusal::EXPIRED);
        assert_eq!(r(C::NotValidYet), refusal::NOT_YET_VALID);
        assert_eq!(r(C::BadSignature), refusal::BAD_CERTIFICATE);
        assert_eq!(
            refusal_reason(&rustls::Error::NoCertificatesPresented),
            refusal::NO_CLIENT_CERT
        );
        let ca = TestCa::new("ca");
        let d = describe_cert(&der_of(&ca.issue(&["tanoa://member/to-cert"]).cert_pem));
        assert!(
            d.contains("CN=test") && d.contains("tanoa://member/to-cert"),
            "{d}"
        );
    }

    #[test]
    fn bad_pem_names_the_setting() {
        let err = operator_server_config(b"garbage", b"garbage", b"garbage").unwrap_err();
        assert!(err.to_string().contains("operator.tls_cert"), "{err}");
    }
}
