//! TLS configurations and identities taken from verified certificates.
//!
//! Owns: the rustls `ServerConfig` of the TCP operator listener (TLS 1.3 only, client
//! certificates required and verified against the configured CA, and only operator certificates
//! with URI SAN `tanoa://operator/<name>` accepted), the rustls `ClientConfig` the CLI uses to
//! reach it, reading identities from certificate SANs (x509-parser), and the TLS stream type
//! that carries the verified operator identity into request extensions.
//! Must never: take an identity from anything but a certificate that rustls verified, accept a
//! peer (`tanoa://member/<id>`) certificate on the operator listener, or rely on rustls picking a
//! crypto provider by itself (ring is always passed explicitly).

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
pub fn certs_from_pem(
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
pub fn key_from_pem(pem: &[u8], what: &str) -> Result<PrivateKeyDer<'static>, TransportError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| TransportError::Pem {
        what: what.into(),
        detail: format!("no usable PRIVATE KEY block ({e})"),
    })
}

/// Reads a file for a named setting.
pub fn read_file(path: &Path, what: &str) -> Result<Vec<u8>, TransportError> {
    std::fs::read(path).map_err(|source| TransportError::Io {
        what: what.into(),
        path: path.to_path_buf(),
        source,
    })
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
pub enum CertIdentity {
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

/// Reads the `tanoa://` identity of a DER certificate. A certificate with both kinds, two
/// identities, or none is refused.
pub fn cert_identity(der: &[u8]) -> Result<CertIdentity, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| format!("certificate does not parse ({e})"))?;
    let san = cert
        .subject_alternative_name()
        .map_err(|e| format!("bad subjectAltName extension ({e})"))?;
    let mut found = Vec::new();
    if let Some(san) = san {
        for name in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::URI(uri) = name {
                if let Some(n) = uri.strip_prefix(OPERATOR_URI_PREFIX) {
                    found.push(CertIdentity::Operator(n.to_string()));
                } else if let Some(n) = uri.strip_prefix(MEMBER_URI_PREFIX) {
                    found.push(CertIdentity::Member(n.to_string()));
                }
            }
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
pub fn operator_name_of(der: &[u8]) -> Result<String, String> {
    match cert_identity(der)? {
        CertIdentity::Operator(name) => Ok(name),
        CertIdentity::Member(id) => Err(format!(
            "a peer certificate ({MEMBER_URI_PREFIX}{id}) can never call the operator API"
        )),
    }
}

/// Client verifier of the operator listener: the WebPKI chain check against `client_ca`, then
/// the operator SAN check.
#[derive(Debug)]
struct OperatorClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
}

impl ClientCertVerifier for OperatorClientVerifier {
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
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)
            .inspect_err(|e| {
                tracing::warn!(error = %e, "operator listener: client certificate refused");
            })?;
        match operator_name_of(end_entity) {
            Ok(_) => Ok(verified),
            Err(reason) => {
                tracing::warn!(%reason, "operator listener: client certificate refused");
                // Sent to the client as an `access_denied` alert: the chain is fine, the
                // identity is not allowed here.
                Err(rustls::Error::InvalidCertificate(
                    rustls::CertificateError::ApplicationVerificationFailure,
                ))
            }
        }
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

/// rustls server config of the TCP operator listener from in-memory PEM: TLS 1.3 only, ALPN
/// `h2`, client certificate required, chained to `client_ca_pem` and carrying an operator SAN.
pub fn operator_server_config(
    cert_pem: &[u8],
    key_pem: &[u8],
    client_ca_pem: &[u8],
) -> Result<Arc<rustls::ServerConfig>, TransportError> {
    let provider = provider();
    let certs = certs_from_pem(cert_pem, "operator.tls_cert")?;
    let key = key_from_pem(key_pem, "operator.tls_key")?;
    let roots = roots_from_pem(client_ca_pem, "operator.client_ca")?;
    let inner = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| TransportError::Config(format!("operator.client_ca: {e}")))?;
    let verifier = Arc::new(OperatorClientVerifier { inner });
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TransportError::Config(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| TransportError::Config(format!("operator.tls_cert/tls_key: {e}")))?;
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(cfg))
}

/// Same as `operator_server_config`, reading the three PEM files.
pub fn operator_server_config_from_files(
    cert: &Path,
    key: &Path,
    client_ca: &Path,
) -> Result<Arc<rustls::ServerConfig>, TransportError> {
    operator_server_config(
        &read_file(cert, "operator.tls_cert")?,
        &read_file(key, "operator.tls_key")?,
        &read_file(client_ca, "operator.client_ca")?,
    )
}

/// rustls client config for reaching an operator TCP listener: TLS 1.3, server verified against
/// `ca_pem`, client certificate `cert_pem`/`key_pem`, ALPN `h2`.
pub fn operator_client_config(
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
pub struct OperatorIdentity {
    /// `<name>` of the certificate's `tanoa://operator/<name>` URI SAN.
    pub name: String,
    /// Remote address.
    pub remote: Option<SocketAddr>,
}

/// A TLS connection on the operator listener whose client certificate verified and carries an
/// operator identity.
#[derive(Debug)]
pub struct OperatorTlsStream {
    inner: tokio_rustls::server::TlsStream<TcpStream>,
    identity: OperatorIdentity,
}

impl OperatorTlsStream {
    /// The verified operator identity.
    pub fn identity(&self) -> &OperatorIdentity {
        &self.identity
    }
}

impl tonic::transport::server::Connected for OperatorTlsStream {
    type ConnectInfo = OperatorIdentity;

    fn connect_info(&self) -> OperatorIdentity {
        self.identity.clone()
    }
}

impl AsyncRead for OperatorTlsStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for OperatorTlsStream {
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

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
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

/// Runs the TLS handshake of an accepted operator connection and reads the operator identity
/// from the verified client certificate.
pub async fn accept_operator(
    acceptor: &TlsAcceptor,
    tcp: TcpStream,
) -> Result<OperatorTlsStream, TransportError> {
    let remote = tcp.peer_addr().ok();
    let remote_s = remote.map_or_else(|| "unknown".to_string(), |a| a.to_string());
    let tls = acceptor
        .accept(tcp)
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
    fn bad_pem_names_the_setting() {
        let err = operator_server_config(b"garbage", b"garbage", b"garbage").unwrap_err();
        assert!(err.to_string().contains("operator.tls_cert"), "{err}");
    }
}
