//! The peer port's trust, live: who may connect and whom we accept when dialling, decided at
//! each handshake from a state that can be replaced while the node runs (a new roster, a
//! SIGHUP), and the connections authenticated under it, closed when it no longer admits them.
//!
//! Owns: `PeerTls` (the shared handle: the current trust state — roster peers with their SPKI
//! pins and the CA trust anchors —, this member's own certificate and key, the server config of
//! the peer port and per-peer client configs that read both at each handshake), the one
//! authentication rule of the peer port (`identify_client`, `identify_server`), the registry
//! of live connections with what authenticated them, and `LiveStream`, the wrapper that ends a
//! connection when its authentication is withdrawn.
//!
//! The rule, the same on both sides:
//! - a member WITH pins is authenticated only by its pins: the certificate's
//!   SubjectPublicKeyInfo hashes (SHA-256) to one of them, its validity dates include now (a
//!   self-signed certificate is never accepted expired or not yet valid), and if it carries a
//!   `tanoa://` URI it must name that same member. The CA plays no part: a CA-issued
//!   certificate for a pinned member is refused (`pin_mismatch`), so whoever holds the CA key
//!   cannot impersonate a pinned member;
//! - a member WITHOUT pins is authenticated by the CA as before: the chain verifies to a trust
//!   anchor (rustls/webpki, dates included) and its `tanoa://member/<id>` names it;
//! - the TLS 1.3 handshake signature is always checked with the provider's algorithms
//!   (`rustls::crypto::verify_tls13_signature`), so the peer proves it holds the pinned key;
//! - sessions are never resumed (a resumed TLS 1.3 session skips certificate verification, and
//!   the trust may have changed since), and the server asks the trust again who the peer is
//!   after every handshake.
//!
//! Must never: take an identity from an unverified name (the member of a pinned certificate is
//! the one whose pin matched), keep serving a connection the current trust would refuse after
//! `recheck`, or let rustls pick a crypto provider (ring is passed explicitly).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};

use rustls::RootCertStore;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use sha2::{Digest, Sha256};
use tanoa_core::membership::SpkiPin;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use super::{
    CertIdentity, MEMBER_URI_PREFIX, OPERATOR_URI_PREFIX, PeerIdentity, PeerTlsStream, Refusal,
    RefusalHook, TransportError, app_refusal, cert_identity, certs_from_pem, describe_unverified,
    handshake_remote, key_from_pem, provider, read_file, read_private_file, refusal,
    refusal_reason, remote_text, with_remote,
};

/// SHA-256 of the SubjectPublicKeyInfo of a DER certificate.
pub(crate) fn spki_pin_of_der(der: &[u8]) -> Result<SpkiPin, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| format!("certificate does not parse ({e})"))?;
    let digest = Sha256::digest(cert.tbs_certificate.subject_pki.raw);
    let mut out = [0u8; 32];
    out.copy_from_slice(&digest);
    Ok(SpkiPin(out))
}

/// The pin of the first certificate of a PEM file (`what` names it in errors).
#[cfg(test)]
pub(crate) fn spki_pin_of_pem(pem: &[u8], what: &str) -> Result<SpkiPin, TransportError> {
    let certs = certs_from_pem(pem, what)?;
    spki_pin_of_der(&certs[0]).map_err(|detail| TransportError::Pem {
        what: what.into(),
        detail,
    })
}

/// What the peer port trusts: roster peers (this member excluded) with their pins (empty =
/// authenticated by the CA) and the CA trust anchors (possibly none).
struct TrustState {
    peers: BTreeMap<String, Vec<SpkiPin>>,
    roots: Arc<RootCertStore>,
    /// The WebPKI client verifier over `roots` (None without trust anchors).
    ca: Option<Arc<dyn ClientCertVerifier>>,
}

impl TrustState {
    fn new(
        me: &str,
        peers: BTreeMap<String, Vec<SpkiPin>>,
        roots: RootCertStore,
        provider: &Arc<CryptoProvider>,
    ) -> Result<TrustState, TransportError> {
        let peers: BTreeMap<String, Vec<SpkiPin>> =
            peers.into_iter().filter(|(id, _)| id != me).collect();
        let roots = Arc::new(roots);
        let ca = if roots.is_empty() {
            None
        } else {
            Some(
                WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
                    .build()
                    .map_err(|e| TransportError::Config(format!("peer.trust_anchors: {e}")))?,
            )
        };
        Ok(TrustState { peers, roots, ca })
    }

    fn member_by_pin(&self, pin: &SpkiPin) -> Option<&str> {
        self.peers
            .iter()
            .find(|(_, pins)| pins.contains(pin))
            .map(|(id, _)| id.as_str())
    }
}

/// How a certificate was authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Auth {
    /// Its key matched this pin.
    Pin(SpkiPin),
    /// Its chain verified to a trust anchor.
    Ca,
}

/// Why a certificate is refused.
#[derive(Debug)]
struct Denied {
    reason: &'static str,
    detail: String,
    /// Whether the certificate itself verified (then only its identity is not allowed here).
    verified: bool,
    err: rustls::Error,
}

impl Denied {
    fn identity(reason: &'static str, detail: String) -> Denied {
        Denied {
            reason,
            detail,
            verified: true,
            err: app_refusal(),
        }
    }

    fn certificate(e: rustls::Error) -> Denied {
        Denied {
            reason: refusal_reason(&e),
            detail: e.to_string(),
            verified: false,
            err: e,
        }
    }
}

/// The validity dates of a pinned (possibly self-signed) certificate must include `now`.
fn check_dates(der: &[u8], now: UnixTime) -> Result<(), Denied> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| {
        Denied::certificate(rustls::Error::InvalidCertificate(
            rustls::CertificateError::BadEncoding,
        ))
        .with_detail(format!("certificate does not parse ({e})"))
    })?;
    let now_s = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    let v = cert.validity();
    if now_s < v.not_before.timestamp() {
        return Err(Denied::certificate(rustls::Error::InvalidCertificate(
            rustls::CertificateError::NotValidYet,
        ))
        .with_detail(format!(
            "pinned certificate is not valid before {}",
            v.not_before
        )));
    }
    if now_s > v.not_after.timestamp() {
        return Err(Denied::certificate(rustls::Error::InvalidCertificate(
            rustls::CertificateError::Expired,
        ))
        .with_detail(format!("pinned certificate expired at {}", v.not_after)));
    }
    Ok(())
}

impl Denied {
    fn with_detail(mut self, detail: String) -> Denied {
        self.detail = detail;
        self
    }
}

/// A pinned certificate may carry a `tanoa://` URI; if it does, it must name `member`.
fn check_pinned_name(der: &[u8], member: &str) -> Result<(), Denied> {
    match cert_identity(der) {
        Ok(CertIdentity::Member(id)) if id == member => Ok(()),
        Ok(CertIdentity::Member(id)) => Err(Denied::identity(
            refusal::WRONG_MEMBER,
            format!("the key is pinned for member {member} but the certificate names {id}"),
        )),
        Ok(CertIdentity::Operator(name)) => Err(Denied::identity(
            refusal::OPERATOR_CERT,
            format!(
                "an operator certificate ({OPERATOR_URI_PREFIX}{name}) can never be used on the \
                 peer port"
            ),
        )),
        // No tanoa:// URI (or an unusable one): the pin alone identifies the member.
        Err(_) => Ok(()),
    }
}

fn pin_of(der: &[u8]) -> Result<SpkiPin, Denied> {
    spki_pin_of_der(der).map_err(|detail| {
        Denied::certificate(rustls::Error::InvalidCertificate(
            rustls::CertificateError::BadEncoding,
        ))
        .with_detail(detail)
    })
}

/// Checks the identity of a chain-verified certificate seen on the peer port; `Err` = refusal
/// (reason, detail).
pub(crate) fn peer_identity_check(
    der: &[u8],
    peers: &BTreeSet<String>,
) -> Result<String, (&'static str, String)> {
    match cert_identity(der) {
        Ok(CertIdentity::Member(id)) if peers.contains(&id) => Ok(id),
        Ok(CertIdentity::Member(id)) => Err((
            refusal::NOT_IN_ROSTER,
            format!("member {id:?} is not a peer in this member's roster"),
        )),
        Ok(CertIdentity::Operator(name)) => Err((
            refusal::OPERATOR_CERT,
            format!(
                "an operator certificate ({OPERATOR_URI_PREFIX}{name}) can never be used on the \
                 peer port"
            ),
        )),
        Err(e) => Err((refusal::NO_IDENTITY, e)),
    }
}

/// Who a client certificate on the peer port belongs to (see the module doc for the rule).
fn identify_client(
    state: &TrustState,
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    now: UnixTime,
) -> Result<(String, Auth), Denied> {
    let pin = pin_of(end_entity)?;
    if let Some(member) = state.member_by_pin(&pin) {
        check_dates(end_entity, now)?;
        check_pinned_name(end_entity, member)?;
        return Ok((member.to_string(), Auth::Pin(pin)));
    }
    let Some(ca) = &state.ca else {
        return Err(Denied {
            reason: refusal::UNKNOWN_PIN,
            detail: format!(
                "no roster member pins this certificate's key ({pin}) and no trust anchor is \
                 configured"
            ),
            verified: false,
            err: app_refusal(),
        });
    };
    ca.verify_client_cert(end_entity, intermediates, now)
        .map_err(Denied::certificate)?;
    let ids: BTreeSet<String> = state.peers.keys().cloned().collect();
    let id = peer_identity_check(end_entity, &ids)
        .map_err(|(reason, detail)| Denied::identity(reason, detail))?;
    if state.peers.get(&id).is_some_and(|p| !p.is_empty()) {
        return Err(Denied::identity(
            refusal::PIN_MISMATCH,
            format!(
                "member {id} is authenticated by its pinned keys only; this CA-issued \
                 certificate's key ({pin}) is not among them"
            ),
        ));
    }
    Ok((id, Auth::Ca))
}

/// Whether the server we dialled is `expected` (see the module doc for the rule).
fn identify_server(
    state: &TrustState,
    provider: &CryptoProvider,
    expected: &str,
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    now: UnixTime,
) -> Result<Auth, Denied> {
    let Some(pins) = state.peers.get(expected) else {
        return Err(Denied::identity(
            refusal::NOT_IN_ROSTER,
            format!("member {expected} is no longer a peer in this member's roster"),
        ));
    };
    if !pins.is_empty() {
        let pin = pin_of(end_entity)?;
        if !pins.contains(&pin) {
            return Err(Denied {
                reason: refusal::PIN_MISMATCH,
                detail: format!(
                    "dialled {expected}, which is pinned, but the server's key ({pin}) is not \
                     among its pins"
                ),
                verified: false,
                err: app_refusal(),
            });
        }
        check_dates(end_entity, now)?;
        check_pinned_name(end_entity, expected)?;
        return Ok(Auth::Pin(pin));
    }
    if state.roots.is_empty() {
        return Err(Denied {
            reason: refusal::UNKNOWN_CA,
            detail: format!("member {expected} has no pins and no trust anchor is configured"),
            verified: false,
            err: rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        });
    }
    rustls::server::ParsedCertificate::try_from(end_entity)
        .and_then(|cert| {
            rustls::client::verify_server_cert_signed_by_trust_anchor(
                &cert,
                &state.roots,
                intermediates,
                now,
                provider.signature_verification_algorithms.all,
            )
        })
        .map_err(Denied::certificate)?;
    match cert_identity(end_entity) {
        Ok(CertIdentity::Member(id)) if id == expected => Ok(Auth::Ca),
        Ok(CertIdentity::Member(id)) => Err(Denied::identity(
            refusal::WRONG_MEMBER,
            format!("dialled {expected} but the server presented the certificate of member {id}"),
        )),
        Ok(CertIdentity::Operator(name)) => Err(Denied::identity(
            refusal::OPERATOR_CERT,
            format!("the server presented an operator certificate ({name})"),
        )),
        Err(e) => Err(Denied::identity(refusal::NO_IDENTITY, e)),
    }
}

/// Which side of a connection we are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    /// Accepted on the peer port.
    Inbound,
    /// Dialled by us.
    Outbound,
}

/// One live connection and what authenticated it.
struct ConnEntry {
    member: String,
    side: Side,
    chain: Vec<CertificateDer<'static>>,
    cancel: CancellationToken,
}

/// Everything the verifiers, resolvers and connections share.
struct Shared {
    me: String,
    provider: Arc<CryptoProvider>,
    hook: RefusalHook,
    trust: RwLock<Arc<TrustState>>,
    identity: RwLock<Arc<CertifiedKey>>,
    conns: Mutex<HashMap<u64, ConnEntry>>,
    next_conn: AtomicU64,
}

impl Shared {
    fn trust(&self) -> Arc<TrustState> {
        Arc::clone(
            &self
                .trust
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    fn identity(&self) -> Arc<CertifiedKey> {
        Arc::clone(
            &self
                .identity
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    fn report(&self, side: String, end_entity: &CertificateDer<'_>, d: &Denied) {
        (self.hook)(&Refusal {
            reason: d.reason,
            side,
            remote: handshake_remote(),
            subject: if d.verified {
                format!(
                    "authenticated certificate {}",
                    super::describe_cert(end_entity)
                )
            } else {
                describe_unverified(end_entity)
            },
            detail: d.detail.clone(),
        });
    }

    fn verify_tls13(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls12(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        // Never negotiated (TLS 1.3 only), but checked properly if it ever were.
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The client-certificate verifier of the peer port (reads the live trust at each handshake).
struct LiveClientVerifier {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for LiveClientVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveClientVerifier").finish_non_exhaustive()
    }
}

impl ClientCertVerifier for LiveClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // Members send their one certificate whatever the hints say.
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let state = self.shared.trust();
        match identify_client(&state, end_entity, intermediates, now) {
            Ok(_) => Ok(ClientCertVerified::assertion()),
            Err(d) => {
                self.shared.report("peer port".into(), end_entity, &d);
                Err(d.err)
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.shared.verify_tls12(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.shared.verify_tls13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.shared.schemes()
    }
}

/// The server verifier used when dialling `expected` (reads the live trust at each handshake).
/// Host names are not checked: the identity is the pin or the URI SAN.
struct LiveServerVerifier {
    shared: Arc<Shared>,
    expected: String,
}

impl std::fmt::Debug for LiveServerVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveServerVerifier")
            .field("expected", &self.expected)
            .finish_non_exhaustive()
    }
}

impl ServerCertVerifier for LiveServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let state = self.shared.trust();
        match identify_server(
            &state,
            &self.shared.provider,
            &self.expected,
            end_entity,
            intermediates,
            now,
        ) {
            Ok(_) => Ok(ServerCertVerified::assertion()),
            Err(d) => {
                self.shared
                    .report(format!("dialling {}", self.expected), end_entity, &d);
                Err(d.err)
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.shared.verify_tls12(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.shared.verify_tls13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.shared.schemes()
    }
}

/// Presents this member's current certificate (server and client side): a new certificate
/// applies to the next handshake; established connections keep theirs.
struct LiveIdentity {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for LiveIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveIdentity").finish_non_exhaustive()
    }
}

impl rustls::server::ResolvesServerCert for LiveIdentity {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.shared.identity())
    }
}

impl rustls::client::ResolvesClientCert for LiveIdentity {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.shared.identity())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// This member's certificate and key as rustls signs with them; the certificate must carry
/// `tanoa://member/<me>`.
fn load_identity(
    me: &str,
    cert_pem: &[u8],
    key_pem: &[u8],
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TransportError> {
    let certs = certs_from_pem(cert_pem, "peer.tls_cert")?;
    match cert_identity(&certs[0]) {
        Ok(CertIdentity::Member(id)) if id == me => {}
        Ok(other) => {
            return Err(TransportError::Identity(format!(
                "peer.tls_cert carries {other:?}, but this member is {me:?} (expected URI SAN \
                 {MEMBER_URI_PREFIX}{me})"
            )));
        }
        Err(e) => return Err(TransportError::Identity(format!("peer.tls_cert: {e}"))),
    }
    let key = key_from_pem(key_pem, "peer.tls_key")?;
    CertifiedKey::from_der(certs, key, provider)
        .map_err(|e| TransportError::Config(format!("peer.tls_cert/tls_key: {e}")))
}

/// A new trust for the peer port (a new roster, new trust anchors).
#[derive(Debug, Clone, Default)]
pub struct PeerTrustUpdate {
    /// Roster members by id with their pins (empty = authenticated by the CA). This member may
    /// be listed; it is never a peer.
    pub peers: BTreeMap<String, Vec<SpkiPin>>,
    /// CA certificates (DER) of the trust anchors; empty = pins only.
    pub anchors: Vec<CertificateDer<'static>>,
}

/// The TLS side of the peer port: the server config (client certificates of roster peers only)
/// and, per peer, a client config that accepts only that peer's certificate; both follow
/// `update` and `set_identity` from the next handshake on. Cheap to clone (one shared state).
#[derive(Clone)]
pub struct PeerTls {
    shared: Arc<Shared>,
    server: Arc<rustls::ServerConfig>,
}

impl std::fmt::Debug for PeerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerTls")
            .field("me", &self.shared.me)
            .field("peers", &self.peers())
            .finish_non_exhaustive()
    }
}

fn roots_of(anchors: &[CertificateDer<'static>]) -> Result<RootCertStore, TransportError> {
    let mut roots = RootCertStore::empty();
    for c in anchors {
        roots.add(c.clone()).map_err(|e| TransportError::Pem {
            what: "peer.trust_anchors".into(),
            detail: format!("not a usable CA certificate ({e})"),
        })?;
    }
    Ok(roots)
}

/// Reads the CA certificates of `peer.trust_anchors` (DER, in file order).
pub(crate) fn anchors_from_files(
    anchors: &[std::path::PathBuf],
) -> Result<Vec<CertificateDer<'static>>, TransportError> {
    let mut out = Vec::new();
    for (n, path) in anchors.iter().enumerate() {
        let what = format!("peer.trust_anchors[{n}]");
        let pem = read_file(path, &what)?;
        let certs = certs_from_pem(&pem, &what)?;
        // Refuse an unusable CA here, naming the file.
        roots_of(&certs).map_err(|e| match e {
            TransportError::Pem { detail, .. } => TransportError::Pem {
                what: what.clone(),
                detail,
            },
            other => other,
        })?;
        out.extend(certs);
    }
    Ok(out)
}

impl PeerTls {
    /// From in-memory PEM: this member's certificate and key, the trust anchors, the roster
    /// peers (member ids other than ours, all authenticated by the CA) and the refusal hook.
    /// The certificate must carry `tanoa://member/<me>`.
    pub fn new(
        me: &str,
        cert_pem: &[u8],
        key_pem: &[u8],
        roots: RootCertStore,
        peers: impl IntoIterator<Item = String>,
        hook: RefusalHook,
    ) -> Result<PeerTls, TransportError> {
        let peers = peers.into_iter().map(|p| (p, Vec::new())).collect();
        PeerTls::with_roots(me, cert_pem, key_pem, roots, peers, hook)
    }

    /// Like `new`, with pins per peer (a peer with pins is authenticated by them only).
    pub(crate) fn with_trust(
        me: &str,
        cert_pem: &[u8],
        key_pem: &[u8],
        trust: PeerTrustUpdate,
        hook: RefusalHook,
    ) -> Result<PeerTls, TransportError> {
        let roots = roots_of(&trust.anchors)?;
        PeerTls::with_roots(me, cert_pem, key_pem, roots, trust.peers, hook)
    }

    fn with_roots(
        me: &str,
        cert_pem: &[u8],
        key_pem: &[u8],
        roots: RootCertStore,
        peers: BTreeMap<String, Vec<SpkiPin>>,
        hook: RefusalHook,
    ) -> Result<PeerTls, TransportError> {
        let provider = provider();
        let identity = load_identity(me, cert_pem, key_pem, &provider)?;
        let state = TrustState::new(me, peers, roots, &provider)?;
        let shared = Arc::new(Shared {
            me: me.to_string(),
            provider: provider.clone(),
            hook,
            trust: RwLock::new(Arc::new(state)),
            identity: RwLock::new(Arc::new(identity)),
            conns: Mutex::new(HashMap::new()),
            next_conn: AtomicU64::new(0),
        });
        let mut server = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| TransportError::Config(e.to_string()))?
            .with_client_cert_verifier(Arc::new(LiveClientVerifier {
                shared: shared.clone(),
            }))
            .with_cert_resolver(Arc::new(LiveIdentity {
                shared: shared.clone(),
            }));
        server.alpn_protocols = vec![b"h2".to_vec()];
        // No resumption: a resumed TLS 1.3 session skips certificate verification, and the
        // trust can change between two connections (a removed member, a withdrawn pin).
        server.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        server.send_tls13_tickets = 0;
        Ok(PeerTls {
            shared,
            server: Arc::new(server),
        })
    }

    /// From the `[peer]` files of the config: certificate, key (refused when others may read
    /// it), trust anchors (possibly none when every peer is pinned) and the peers with pins.
    pub(crate) fn from_files(
        me: &str,
        cert: &std::path::Path,
        key: &std::path::Path,
        trust_anchors: &[std::path::PathBuf],
        peers: BTreeMap<String, Vec<SpkiPin>>,
        hook: RefusalHook,
    ) -> Result<PeerTls, TransportError> {
        let anchors = anchors_from_files(trust_anchors)?;
        PeerTls::with_trust(
            me,
            &read_file(cert, "peer.tls_cert")?,
            &read_private_file(key, "peer.tls_key")?,
            PeerTrustUpdate { peers, anchors },
            hook,
        )
    }

    /// The server config of the peer port (TLS 1.3, ALPN h2, roster peers' certificates only).
    pub(crate) fn server_config(&self) -> Arc<rustls::ServerConfig> {
        self.server.clone()
    }

    /// Roster peers accepted on the peer port now.
    pub fn peers(&self) -> BTreeSet<String> {
        self.shared.trust().peers.keys().cloned().collect()
    }

    /// The pins of `member` now (empty: authenticated by the CA, or not a peer).
    #[cfg(test)]
    pub(crate) fn pins_of(&self, member: &str) -> Vec<SpkiPin> {
        self.shared
            .trust()
            .peers
            .get(member)
            .cloned()
            .unwrap_or_default()
    }

    /// The pin of the certificate this member presents now.
    pub(crate) fn own_pin(&self) -> Option<SpkiPin> {
        let id = self.shared.identity();
        id.cert.first().and_then(|c| spki_pin_of_der(c).ok())
    }

    /// A client config for dialling `member`: TLS 1.3, ALPN h2, our current member certificate,
    /// and only a server certificate that authenticates as `member` under the current trust.
    pub fn client_config(&self, member: &str) -> Result<Arc<rustls::ClientConfig>, TransportError> {
        let mut cfg = rustls::ClientConfig::builder_with_provider(self.shared.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| TransportError::Config(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(LiveServerVerifier {
                shared: self.shared.clone(),
                expected: member.to_string(),
            }))
            .with_client_cert_resolver(Arc::new(LiveIdentity {
                shared: self.shared.clone(),
            }));
        cfg.alpn_protocols = vec![b"h2".to_vec()];
        // Every connection is verified under the trust in force (see the server config).
        cfg.resumption = rustls::client::Resumption::disabled();
        Ok(Arc::new(cfg))
    }

    /// Replaces the trust (roster peers with pins, trust anchors) for every handshake from now
    /// on. Connections already open are not touched: call `recheck`.
    pub fn update(&self, trust: PeerTrustUpdate) -> Result<(), TransportError> {
        let roots = roots_of(&trust.anchors)?;
        let state = TrustState::new(&self.shared.me, trust.peers, roots, &self.shared.provider)?;
        *self
            .shared
            .trust
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(state);
        Ok(())
    }

    /// Replaces this member's certificate and key for every handshake from now on (a renewal);
    /// connections already open keep the certificate they were set up with.
    pub(crate) fn set_identity(
        &self,
        cert_pem: &[u8],
        key_pem: &[u8],
    ) -> Result<(), TransportError> {
        let id = load_identity(&self.shared.me, cert_pem, key_pem, &self.shared.provider)?;
        *self
            .shared
            .identity
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(id);
        Ok(())
    }

    /// Checks every open connection against the current trust and closes those it no longer
    /// admits (member removed, pin withdrawn, member now pinned, ...). Returns `(member,
    /// reason)` for each connection closed.
    pub(crate) fn recheck(&self) -> Vec<(String, String)> {
        self.recheck_at(UnixTime::now())
    }

    /// `recheck` as of `now` (a pinned certificate that expired on an open connection).
    fn recheck_at(&self, now: UnixTime) -> Vec<(String, String)> {
        let state = self.shared.trust();
        let mut closed = Vec::new();
        let mut conns = self
            .shared
            .conns
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        conns.retain(|_, c| {
            let Some((end, rest)) = c.chain.split_first() else {
                return true;
            };
            let verdict = match c.side {
                Side::Inbound => identify_client(&state, end, rest, now).and_then(|(m, _)| {
                    if m == c.member {
                        Ok(())
                    } else {
                        Err(Denied::identity(
                            refusal::WRONG_MEMBER,
                            format!("the certificate now authenticates {m}"),
                        ))
                    }
                }),
                Side::Outbound => {
                    identify_server(&state, &self.shared.provider, &c.member, end, rest, now)
                        .map(|_| ())
                }
            };
            match verdict {
                Ok(()) => true,
                Err(d) => {
                    c.cancel.cancel();
                    closed.push((c.member.clone(), format!("{}: {}", d.reason, d.detail)));
                    false
                }
            }
        });
        closed
    }

    /// Open connections by member (inbound and outbound), for status and tests.
    pub fn connections(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for c in self
            .shared
            .conns
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
        {
            *out.entry(c.member.clone()).or_insert(0) += 1;
        }
        out
    }

    fn register<S>(
        &self,
        stream: S,
        member: &str,
        side: Side,
        chain: Vec<CertificateDer<'static>>,
    ) -> LiveStream<S> {
        let cancel = CancellationToken::new();
        let id = self.shared.next_conn.fetch_add(1, Ordering::Relaxed);
        self.shared
            .conns
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(
                id,
                ConnEntry {
                    member: member.to_string(),
                    side,
                    chain,
                    cancel: cancel.clone(),
                },
            );
        LiveStream {
            inner: stream,
            closed: Box::pin(cancel.clone().cancelled_owned()),
            cancel,
            _entry: EntryGuard {
                shared: Arc::downgrade(&self.shared),
                id,
            },
        }
    }

    /// Registers a connection we dialled to `member` (after its handshake), so it is closed when
    /// the trust no longer admits the server's certificate.
    pub(crate) fn watch_outbound<IO>(
        &self,
        tls: tokio_rustls::client::TlsStream<IO>,
        member: &str,
    ) -> LiveStream<tokio_rustls::client::TlsStream<IO>> {
        let chain: Vec<CertificateDer<'static>> = tls
            .get_ref()
            .1
            .peer_certificates()
            .map(|c| c.iter().map(|d| d.clone().into_owned()).collect())
            .unwrap_or_default();
        self.register(tls, member, Side::Outbound, chain)
    }
}

/// Removes a connection from the registry when it is dropped.
struct EntryGuard {
    shared: std::sync::Weak<Shared>,
    id: u64,
}

impl Drop for EntryGuard {
    fn drop(&mut self) {
        if let Some(s) = self.shared.upgrade() {
            s.conns
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .remove(&self.id);
        }
    }
}

/// A connection authenticated under the peer port's trust: reads and writes fail
/// (`ConnectionAborted`) once the trust no longer admits it (`PeerTls::recheck`), which ends
/// the HTTP/2 connection on top of it.
pub struct LiveStream<S> {
    inner: S,
    cancel: CancellationToken,
    closed: Pin<Box<WaitForCancellationFutureOwned>>,
    _entry: EntryGuard,
}

impl<S> std::fmt::Debug for LiveStream<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveStream")
            .field("closed", &self.cancel.is_cancelled())
            .finish_non_exhaustive()
    }
}

impl<S> LiveStream<S> {
    /// The wrapped stream.
    pub(crate) fn get_ref(&self) -> &S {
        &self.inner
    }

    fn check(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        if self.cancel.is_cancelled() || self.closed.as_mut().poll(cx).is_ready() {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the peer's authentication was withdrawn (roster or pins changed)",
            ));
        }
        Ok(())
    }
}

use std::future::Future as _;

impl<S: AsyncRead + Unpin> AsyncRead for LiveStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Err(e) = self.check(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for LiveStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if let Err(e) = self.check(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Err(e) = self.check(cx) {
            return Poll::Ready(Err(e));
        }
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
        if let Err(e) = self.check(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

impl<S: tonic::transport::server::Connected> tonic::transport::server::Connected for LiveStream<S> {
    type ConnectInfo = S::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

/// Runs the TLS handshake of an accepted peer connection; the member is the one the current
/// trust authenticates (pin match, or CA chain + URI SAN), never a name taken on its own.
/// Certificate refusals were already reported by the verifier; other handshake failures (no
/// certificate, TLS 1.2, garbage) are reported to `hook` here. The connection is registered,
/// so `PeerTls::recheck` closes it when the trust no longer admits it.
pub(crate) async fn accept_peer(
    acceptor: &TlsAcceptor,
    tcp: TcpStream,
    hook: &RefusalHook,
    tls_state: &PeerTls,
) -> Result<LiveStream<PeerTlsStream>, TransportError> {
    let remote = tcp.peer_addr().ok();
    let remote_s = remote_text(remote);
    let tls = match with_remote(remote, acceptor.accept(tcp)).await {
        Ok(t) => t,
        Err(e) => {
            let rustls_err = e
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>());
            let counted = matches!(rustls_err, Some(rustls::Error::InvalidCertificate(_)));
            if !counted {
                hook(&Refusal {
                    reason: rustls_err.map_or(refusal::HANDSHAKE, refusal_reason),
                    side: "peer port".into(),
                    remote,
                    subject: format!("remote {remote_s}"),
                    detail: e.to_string(),
                });
            }
            return Err(TransportError::Handshake {
                remote: remote_s,
                detail: e.to_string(),
            });
        }
    };
    let chain: Vec<CertificateDer<'static>> = tls
        .get_ref()
        .1
        .peer_certificates()
        .map(|c| c.iter().map(|d| d.clone().into_owned()).collect())
        .unwrap_or_default();
    let Some((end, rest)) = chain.split_first() else {
        return Err(TransportError::Identity(format!(
            "{remote_s} sent no client certificate"
        )));
    };
    // The verifier accepted it; ask the trust again who it is (never a name on its own).
    let state = tls_state.shared.trust();
    let member = match identify_client(&state, end, rest, UnixTime::now()) {
        Ok((member, _)) => member,
        Err(d) => {
            // The trust changed during the handshake: refused and counted like any refusal.
            hook(&Refusal {
                reason: d.reason,
                side: "peer port (after the handshake)".into(),
                remote,
                subject: describe_unverified(end),
                detail: d.detail.clone(),
            });
            return Err(TransportError::Identity(format!(
                "{remote_s}: {}: {}",
                d.reason, d.detail
            )));
        }
    };
    let stream = PeerTlsStream {
        inner: tls,
        identity: PeerIdentity {
            member: member.clone(),
            remote,
        },
    };
    Ok(tls_state.register(stream, &member, Side::Inbound, chain))
}

#[cfg(test)]
mod tests;
