#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::transport::test_pki::TestCa;
use crate::transport::{certs_from_pem, install_crypto_provider, logging_hook};
use rcgen::{CertificateParams, DnType, KeyPair, SanType};

/// A self-signed member certificate (PEM cert, PEM key) valid from `from` to `until` (Unix s).
fn self_signed(uri: Option<&str>, from: i64, until: i64) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    if let Some(u) = uri {
        params
            .subject_alt_names
            .push(SanType::URI(u.try_into().unwrap()));
    }
    params.distinguished_name.push(DnType::CommonName, "self");
    params.not_before = time::OffsetDateTime::from_unix_timestamp(from).unwrap();
    params.not_after = time::OffsetDateTime::from_unix_timestamp(until).unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn now_s() -> i64 {
    i64::try_from(UnixTime::now().as_secs()).unwrap()
}

fn valid(uri: &str) -> (String, String) {
    self_signed(Some(uri), now_s() - 3600, now_s() + 86_400)
}

fn der(pem: &str) -> CertificateDer<'static> {
    certs_from_pem(pem.as_bytes(), "test").unwrap().remove(0)
}

fn pin(pem: &str) -> SpkiPin {
    spki_pin_of_pem(pem.as_bytes(), "test").unwrap()
}

fn state(peers: &[(&str, Vec<SpkiPin>)], ca: Option<&TestCa>) -> TrustState {
    let provider = provider();
    let mut roots = RootCertStore::empty();
    if let Some(ca) = ca {
        roots.add(der(&ca.pem)).unwrap();
    }
    TrustState::new(
        "ws-cert",
        peers
            .iter()
            .map(|(id, p)| ((*id).to_string(), p.clone()))
            .collect(),
        roots,
        &provider,
    )
    .unwrap()
}

fn client(st: &TrustState, pem: &str) -> Result<(String, Auth), Denied> {
    identify_client(st, &der(pem), &[], UnixTime::now())
}

fn server(st: &TrustState, expected: &str, pem: &str) -> Result<Auth, Denied> {
    identify_server(st, &provider(), expected, &der(pem), &[], UnixTime::now())
}

#[test]
fn a_pinned_self_signed_certificate_authenticates_its_member_without_a_ca() {
    install_crypto_provider();
    let (to, _) = valid("tanoa://member/to-cert");
    let st = state(&[("to-cert", vec![pin(&to)]), ("fj-cert", vec![])], None);
    let (member, auth) = client(&st, &to).unwrap();
    assert_eq!(member, "to-cert");
    assert_eq!(auth, Auth::Pin(pin(&to)));
    assert_eq!(server(&st, "to-cert", &to).unwrap(), Auth::Pin(pin(&to)));
    // Without a URI SAN the pin alone names the member.
    let (bare, _) = self_signed(None, now_s() - 60, now_s() + 600);
    let st = state(&[("to-cert", vec![pin(&bare)])], None);
    assert_eq!(client(&st, &bare).unwrap().0, "to-cert");
}

#[test]
fn a_key_that_is_not_pinned_is_refused_whatever_name_it_carries() {
    install_crypto_provider();
    let (to, _) = valid("tanoa://member/to-cert");
    let (impostor, _) = valid("tanoa://member/to-cert");
    let st = state(&[("to-cert", vec![pin(&to)])], None);
    assert_eq!(
        client(&st, &impostor).unwrap_err().reason,
        refusal::UNKNOWN_PIN
    );
    assert_eq!(
        server(&st, "to-cert", &impostor).unwrap_err().reason,
        refusal::PIN_MISMATCH
    );
    // The pinned key of to-cert presented while we dial fj-cert: wrong member.
    let st = state(
        &[
            ("to-cert", vec![pin(&to)]),
            ("fj-cert", vec![pin(&impostor)]),
        ],
        None,
    );
    assert_eq!(
        server(&st, "fj-cert", &to).unwrap_err().reason,
        refusal::PIN_MISMATCH
    );
    // A key pinned for fj-cert in a certificate naming to-cert: refused, names disagree.
    assert_eq!(
        client(&st, &impostor).unwrap_err().reason,
        refusal::WRONG_MEMBER
    );
}

#[test]
fn the_ca_cannot_impersonate_a_pinned_member() {
    install_crypto_provider();
    let ca = TestCa::new("federation");
    let issued = ca.issue(&["tanoa://member/to-cert"]);
    let (to, _) = valid("tanoa://member/to-cert");
    let st = state(&[("to-cert", vec![pin(&to)])], Some(&ca));
    assert_eq!(
        client(&st, &issued.cert_pem).unwrap_err().reason,
        refusal::PIN_MISMATCH
    );
    assert_eq!(
        server(&st, "to-cert", &issued.cert_pem).unwrap_err().reason,
        refusal::PIN_MISMATCH
    );
}

#[test]
fn two_pins_during_a_renewal_both_authenticate() {
    install_crypto_provider();
    let (old, _) = valid("tanoa://member/to-cert");
    let (new, _) = valid("tanoa://member/to-cert");
    let both = state(&[("to-cert", vec![pin(&old), pin(&new)])], None);
    assert_eq!(client(&both, &old).unwrap().0, "to-cert");
    assert_eq!(client(&both, &new).unwrap().0, "to-cert");
    assert!(server(&both, "to-cert", &old).is_ok());
    assert!(server(&both, "to-cert", &new).is_ok());
    let after = state(&[("to-cert", vec![pin(&new)])], None);
    assert!(client(&after, &old).is_err());
    assert!(client(&after, &new).is_ok());
}

#[test]
fn ca_mode_is_unchanged_for_members_without_pins() {
    install_crypto_provider();
    let ca = TestCa::new("federation");
    let rogue = TestCa::new("rogue");
    let st = state(&[("to-cert", vec![]), ("fj-cert", vec![])], Some(&ca));
    let to = ca.issue(&["tanoa://member/to-cert"]);
    assert_eq!(
        client(&st, &to.cert_pem).unwrap(),
        ("to-cert".to_string(), Auth::Ca)
    );
    assert_eq!(server(&st, "to-cert", &to.cert_pem).unwrap(), Auth::Ca);
    assert_eq!(
        server(&st, "fj-cert", &to.cert_pem).unwrap_err().reason,
        refusal::WRONG_MEMBER
    );
    let fake = rogue.issue(&["tanoa://member/to-cert"]);
    assert_eq!(
        client(&st, &fake.cert_pem).unwrap_err().reason,
        refusal::UNKNOWN_CA
    );
    assert_eq!(
        server(&st, "to-cert", &fake.cert_pem).unwrap_err().reason,
        refusal::UNKNOWN_CA
    );
    let stranger = ca.issue(&["tanoa://member/zz-cert"]);
    assert_eq!(
        client(&st, &stranger.cert_pem).unwrap_err().reason,
        refusal::NOT_IN_ROSTER
    );
    let op = ca.issue(&["tanoa://operator/alice"]);
    assert_eq!(
        client(&st, &op.cert_pem).unwrap_err().reason,
        refusal::OPERATOR_CERT
    );
    // A member without pins and no CA at all: nothing can authenticate it.
    let none = state(&[("to-cert", vec![])], None);
    assert_eq!(
        server(&none, "to-cert", &to.cert_pem).unwrap_err().reason,
        refusal::UNKNOWN_CA
    );
}

#[test]
fn pinned_certificates_are_refused_outside_their_validity_dates() {
    install_crypto_provider();
    let (expired, _) = self_signed(
        Some("tanoa://member/to-cert"),
        now_s() - 86_400,
        now_s() - 60,
    );
    let (future, _) = self_signed(
        Some("tanoa://member/to-cert"),
        now_s() + 3600,
        now_s() + 86_400,
    );
    let st = state(&[("to-cert", vec![pin(&expired), pin(&future)])], None);
    assert_eq!(client(&st, &expired).unwrap_err().reason, refusal::EXPIRED);
    assert_eq!(
        server(&st, "to-cert", &expired).unwrap_err().reason,
        refusal::EXPIRED
    );
    assert_eq!(
        client(&st, &future).unwrap_err().reason,
        refusal::NOT_YET_VALID
    );
}

#[test]
fn peer_identity_check_names_each_refusal() {
    let ca = TestCa::new("ca");
    let peers: BTreeSet<String> = ["to-cert".to_string()].into();
    let check = |uris: &[&str]| peer_identity_check(&der(&ca.issue(uris).cert_pem), &peers);
    assert_eq!(check(&["tanoa://member/to-cert"]).unwrap(), "to-cert");
    assert_eq!(
        check(&["tanoa://member/zz-cert"]).unwrap_err().0,
        refusal::NOT_IN_ROSTER
    );
    assert_eq!(
        check(&["tanoa://operator/alice"]).unwrap_err().0,
        refusal::OPERATOR_CERT
    );
    assert_eq!(check(&[]).unwrap_err().0, refusal::NO_IDENTITY);
}

/// A real TLS 1.3 handshake between two pinned members (no CA): both sides authenticate each
/// other; a new certificate applies to the next handshake; withdrawing a pin closes the
/// connection it authenticated.
#[tokio::test]
async fn pinned_members_handshake_and_a_withdrawn_pin_closes_the_connection() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    install_crypto_provider();
    let (ws_cert, ws_key) = valid("tanoa://member/ws-cert");
    let (to_cert, to_key) = valid("tanoa://member/to-cert");
    let trust = |pins: Vec<SpkiPin>, other: &str| PeerTrustUpdate {
        peers: [(other.to_string(), pins)].into(),
        anchors: vec![],
    };
    let seen = Arc::new(Mutex::new(Vec::<Refusal>::new()));
    let s2 = Arc::clone(&seen);
    let counting: RefusalHook = Arc::new(move |r: &Refusal| s2.lock().unwrap().push(r.clone()));
    let ws = PeerTls::with_trust(
        "ws-cert",
        ws_cert.as_bytes(),
        ws_key.as_bytes(),
        trust(vec![pin(&to_cert)], "to-cert"),
        Arc::clone(&counting),
    )
    .unwrap();
    let to = PeerTls::with_trust(
        "to-cert",
        to_cert.as_bytes(),
        to_key.as_bytes(),
        trust(vec![pin(&ws_cert)], "ws-cert"),
        logging_hook(),
    )
    .unwrap();
    // One client config for both connections: a session could be resumed if it allowed it.
    let to_client = to.client_config("ws-cert").unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = TlsAcceptor::from(ws.server_config());
    let ws2 = ws.clone();
    let accepting = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut s = accept_peer(&acceptor, tcp, &logging_hook(), &ws2)
            .await
            .unwrap();
        let member = s.get_ref().identity().member.clone();
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).await.unwrap();
        s.write_all(b"pong").await.unwrap();
        s.flush().await.unwrap();
        // Wait for the pin to be withdrawn: the next read fails.
        let mut more = [0u8; 1];
        let after =
            tokio::time::timeout(std::time::Duration::from_secs(5), s.read(&mut more)).await;
        (member, buf, after.map(|r| r.map_err(|e| e.kind())))
    });
    let tcp = TcpStream::connect(addr).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::clone(&to_client));
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = connector.connect(name, tcp).await.unwrap();
    let mut c = to.watch_outbound(tls, "ws-cert");
    c.write_all(b"ping").await.unwrap();
    c.flush().await.unwrap();
    let mut buf = [0u8; 4];
    c.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"pong");
    assert_eq!(ws.connections().get("to-cert"), Some(&1));
    assert_eq!(to.connections().get("ws-cert"), Some(&1));
    // ws-cert withdraws to-cert's pin: the connection it authenticated is closed.
    ws.update(trust(vec![], "to-cert")).unwrap();
    let closed = ws.recheck();
    assert_eq!(closed.len(), 1, "{closed:?}");
    assert_eq!(closed[0].0, "to-cert");
    let (member, got, after) = accepting.await.unwrap();
    assert_eq!(member, "to-cert");
    assert_eq!(&got, b"ping");
    assert_eq!(
        after.unwrap().unwrap_err(),
        io::ErrorKind::ConnectionAborted,
        "a read after the pin was withdrawn fails"
    );
    assert!(ws.connections().is_empty());
    // A new handshake by to-cert is now refused by ws-cert.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = TlsAcceptor::from(ws.server_config());
    let ws3 = ws.clone();
    let accepting = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        accept_peer(&acceptor, tcp, &logging_hook(), &ws3)
            .await
            .map(|_| ())
    });
    let tcp = TcpStream::connect(addr).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::clone(&to_client));
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let _ = connector.connect(name, tcp).await;
    assert!(accepting.await.unwrap().is_err());
    // Refused by the verifier in a full handshake (sessions are never resumed, so the
    // certificate is verified again under the new trust).
    let refusals = seen.lock().unwrap().clone();
    assert!(
        refusals
            .iter()
            .any(|r| r.reason == refusal::UNKNOWN_PIN && r.side == "peer port"),
        "{refusals:?}"
    );
    // to-cert renews its certificate: its next handshakes present the new one.
    let (to_new, to_new_key) = valid("tanoa://member/to-cert");
    to.set_identity(to_new.as_bytes(), to_new_key.as_bytes())
        .unwrap();
    assert_eq!(to.own_pin(), Some(pin(&to_new)));
    assert!(
        to.set_identity(ws_cert.as_bytes(), ws_key.as_bytes())
            .is_err(),
        "a certificate of another member is refused"
    );
    assert_eq!(to.own_pin(), Some(pin(&to_new)));
}

/// A pinned certificate that expires while its connection is open: the periodic re-check
/// closes it (`expired`); while valid, nothing is closed.
#[tokio::test]
async fn a_connection_whose_pinned_certificate_expired_is_closed_by_the_recheck() {
    install_crypto_provider();
    let (ws_cert, ws_key) = valid("tanoa://member/ws-cert");
    let (to_cert, to_key) = valid("tanoa://member/to-cert");
    let trust = |pin: SpkiPin, other: &str| PeerTrustUpdate {
        peers: [(other.to_string(), vec![pin])].into(),
        anchors: vec![],
    };
    let ws = PeerTls::with_trust(
        "ws-cert",
        ws_cert.as_bytes(),
        ws_key.as_bytes(),
        trust(pin(&to_cert), "to-cert"),
        logging_hook(),
    )
    .unwrap();
    let to = PeerTls::with_trust(
        "to-cert",
        to_cert.as_bytes(),
        to_key.as_bytes(),
        trust(pin(&ws_cert), "ws-cert"),
        logging_hook(),
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = TlsAcceptor::from(ws.server_config());
    let ws2 = ws.clone();
    let accepting = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        accept_peer(&acceptor, tcp, &logging_hook(), &ws2)
            .await
            .unwrap()
    });
    let tcp = TcpStream::connect(addr).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(to.client_config("ws-cert").unwrap());
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let _client = to.watch_outbound(connector.connect(name, tcp).await.unwrap(), "ws-cert");
    let _server = accepting.await.unwrap();
    assert_eq!(ws.connections().get("to-cert"), Some(&1));
    assert!(ws.recheck().is_empty(), "valid: nothing closed");
    // Two days from now the certificate (valid one day) has expired.
    let later = UnixTime::since_unix_epoch(std::time::Duration::from_secs(
        u64::try_from(now_s() + 2 * 86_400).unwrap(),
    ));
    let closed = ws.recheck_at(later);
    assert_eq!(closed.len(), 1, "{closed:?}");
    assert!(closed[0].1.starts_with("expired"), "{closed:?}");
    assert!(ws.connections().is_empty());
    // The client side re-checks the server's certificate the same way.
    assert_eq!(to.recheck_at(later).len(), 1);
}
