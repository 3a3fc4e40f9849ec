//! Federation tests: in-process members (a fresh `pki::Ca` per test, peer and metrics listeners
//! on port 0, in-memory stores) replicating over real gRPC with mutual TLS. Waits are bounded
//! polls, never sleeps that a slow machine could outrun.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut};
use tanoa_proto::v1 as pb;
use tanoa_proto::v1::operator_client::OperatorClient;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::Code;
use tonic::transport::Channel;

use super::*;
use crate::client;
use crate::config::{ExampleMember, FederatedExample, PeerEndpoint};
use crate::envelope::{Envelope, SigningIdentity};
use crate::model::{self, Advisory, Limits};
use crate::publish::tests::{draft, draft_pb};
use crate::store::MemoryStore;
use tanoa_pki::{Ca, IssuedCert, Subject};

const T0: i64 = 1_767_225_600_000;
const WAIT: Duration = Duration::from_secs(30);

struct Member {
    id: String,
    dir: PathBuf,
    key: ed25519_dalek::SigningKey,
    cert: IssuedCert,
    peer: Option<TcpListener>,
    peer_addr: SocketAddr,
    metrics: Option<TcpListener>,
}

struct Fed {
    ca: Ca,
    _root: tempfile::TempDir,
    members: Vec<Member>,
}

struct Node {
    socket: PathBuf,
    metrics_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    handle: JoinHandle<Result<(), NodeError>>,
}

impl Fed {
    async fn new(ids: &[&str]) -> Fed {
        transport::install_crypto_provider();
        let ca = Ca::new("Test federation CA", 1).unwrap();
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("ca.pem"), ca.cert_pem()).unwrap();
        let mut members = Vec::new();
        for id in ids {
            let dir = root.path().join(id);
            std::fs::create_dir_all(dir.join("keys")).unwrap();
            let key = keys::generate().unwrap();
            keys::write_key_file(&dir.join(format!("keys/{id}.key")), id, &key).unwrap();
            let cert = ca.issue_member(id, 1).unwrap();
            std::fs::write(dir.join("member.pem"), &cert.cert_pem).unwrap();
            tanoa_pki::write_private_pem(&dir.join("member.key"), &cert.key_pem).unwrap();
            let peer = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let peer_addr = peer.local_addr().unwrap();
            let metrics = TcpListener::bind("127.0.0.1:0").await.unwrap();
            members.push(Member {
                id: (*id).to_string(),
                dir,
                key,
                cert,
                peer: Some(peer),
                peer_addr,
                metrics: Some(metrics),
            });
        }
        Fed {
            ca,
            _root: root,
            members,
        }
    }

    fn identity(&self, i: usize) -> SigningIdentity {
        SigningIdentity::new(self.members[i].id.clone(), self.members[i].key.clone())
    }

    /// The config of member `i` (whole roster, fast sync), after `edit`.
    fn config(&self, i: usize, edit: impl FnOnce(&mut FederatedExample)) -> Config {
        let m = &self.members[i];
        let mut x = FederatedExample {
            member_id: m.id.clone(),
            name: format!("{} test", m.id),
            key_file: format!("keys/{}.key", m.id),
            data_dir: "data".into(),
            operator_socket: None,
            peer_listen: m.peer_addr.to_string(),
            tls_cert: "member.pem".into(),
            tls_key: "member.key".into(),
            trust_anchors: vec!["../ca.pem".into()],
            metrics_listen: None,
            sync: [
                ("interval_ms", "300"),
                ("jitter_ms", "100"),
                ("request_timeout_ms", "2000"),
                ("session_timeout_ms", "10000"),
                ("backoff_base_ms", "200"),
                ("backoff_max_ms", "1000"),
                ("max_batch_bytes", "65536"),
            ]
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect(),
            members: self
                .members
                .iter()
                .map(|o| ExampleMember {
                    id: o.id.clone(),
                    name: format!("{} test", o.id),
                    endpoints: vec![o.peer_addr.to_string()],
                    public_keys: vec![keys::public_hex(&o.key.verifying_key())],
                    tls_pins: vec![],
                })
                .collect(),
        };
        edit(&mut x);
        let path = m.dir.join("tanoad.toml");
        std::fs::write(&path, Config::example_federated(&x)).unwrap();
        Config::load(&path).unwrap()
    }

    /// Starts member `i` with `config` on its pre-bound listeners and an in-memory store.
    fn start(&mut self, i: usize, config: Config) -> Node {
        self.start_with_tcp(i, config, None)
    }

    /// `start`, with an operator TCP listener.
    fn start_with_tcp(&mut self, i: usize, config: Config, tcp: Option<TcpListener>) -> Node {
        let m = &mut self.members[i];
        prepare_data_dir(&config).unwrap();
        let socket = config.operator.socket.clone();
        let unix = bind_unix(&socket).unwrap();
        let metrics = m.metrics.take().unwrap();
        let metrics_addr = metrics.local_addr().unwrap();
        let net = NetListeners {
            peer: m.peer.take(),
            metrics: Some(metrics),
            taxii: None,
        };
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(run_with(
            config,
            Some(Arc::new(MemoryStore::new())),
            Listeners {
                unix: Some(unix),
                tcp,
            },
            net,
            async move {
                let _ = rx.await;
            },
        ));
        Node {
            socket,
            metrics_addr,
            stop: Some(tx),
            handle,
        }
    }

    /// Closes the peer listener of a member that will not run (dials to it fail at once).
    fn close(&mut self, i: usize) {
        self.members[i].peer = None;
    }

    fn endpoint(&self, i: usize) -> PeerEndpoint {
        PeerEndpoint {
            host: "127.0.0.1".into(),
            port: self.members[i].peer_addr.port(),
        }
    }
}

impl Node {
    async fn client(&self) -> OperatorClient<Channel> {
        client::connect_unix(&self.socket).await.unwrap()
    }

    async fn scrape(&self) -> String {
        let mut tcp = tokio::net::TcpStream::connect(self.metrics_addr)
            .await
            .unwrap();
        tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut out = String::new();
        tcp.read_to_string(&mut out).await.unwrap();
        assert!(out.starts_with("HTTP/1.1 200 OK"), "{out}");
        out
    }

    async fn holds(&self, item_hex: &str) -> bool {
        match self
            .client()
            .await
            .get(pb::GetRequest {
                id: item_hex.into(),
            })
            .await
        {
            Ok(_) => true,
            Err(s) if s.code() == Code::NotFound => false,
            Err(s) => panic!("get {item_hex}: {s}"),
        }
    }

    async fn peer(&self, id: &str) -> pb::PeerInfo {
        let r = self
            .client()
            .await
            .peers(pb::PeersRequest {})
            .await
            .unwrap()
            .into_inner();
        r.peers.into_iter().find(|p| p.member_id == id).unwrap()
    }

    async fn publish(&self, id: &str, tlp: pb::Tlp, audience: &[&str]) -> pb::PublishResponse {
        let mut d = draft_pb(id, &format!("advisory {id}"), "192.0.2.7");
        d.tlp = tlp as i32;
        d.audience = audience.iter().map(|s| (*s).to_string()).collect();
        self.client()
            .await
            .publish(pb::PublishRequest { draft: Some(d) })
            .await
            .unwrap()
            .into_inner()
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.handle.await.unwrap().unwrap();
    }
}

/// Value of the sample whose line starts with `series` (name and labels), 0 when absent.
fn metric(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0)
}

async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + WAIT;
    loop {
        if f().await {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A started federation of `ids`, every member running.
async fn federation(ids: &[&str]) -> (Fed, Vec<Node>) {
    let mut fed = Fed::new(ids).await;
    let mut nodes = Vec::new();
    for i in 0..ids.len() {
        let c = fed.config(i, |_| {});
        nodes.push(fed.start(i, c));
    }
    (fed, nodes)
}

async fn stop_all(nodes: Vec<Node>) {
    for n in nodes {
        n.stop().await;
    }
}

/// Waits until `b` has completed a reconciliation it started with `c` after now, and a GREEN
/// marker published on `b` has reached `c`: everything `b` could have sent `c` by then, it has.
async fn barrier(b: &Node, c: &Node, c_id: &str, marker: &str) {
    let before = b.peer(c_id).await.sessions_ok;
    eventually("a new reconciliation from b to c", || async {
        b.peer(c_id).await.sessions_ok > before
    })
    .await;
    let m = b.publish(marker, pb::Tlp::Green, &[]).await;
    eventually("the marker to reach c", || c.holds(&m.item_id)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn green_published_on_a_reaches_b_and_c() {
    let (_fed, nodes) = federation(&["ws-cert", "to-cert", "fj-cert"]).await;
    let p = nodes[0].publish("ws-2026-0001", pb::Tlp::Green, &[]).await;
    for n in &nodes[1..] {
        eventually("GREEN to reach every member", || n.holds(&p.item_id)).await;
    }
    let to = nodes[1].peer("ws-cert").await;
    assert!(to.items_received >= 1, "{to:?}");
    assert_eq!(to.link, "up");
    let text = nodes[1].scrape().await;
    assert!(
        metric(&text, "tanoa_items_accepted_total{source=\"peer\"}") >= 1,
        "{text}"
    );
    let st = nodes[0]
        .client()
        .await
        .status(pb::StatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(st.federation);
    assert_eq!(st.peers_configured, 2);
    stop_all(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amber_reaches_its_audience_only_and_explain_says_why() {
    let (_fed, nodes) = federation(&["ws-cert", "to-cert", "fj-cert"]).await;
    let p = nodes[0]
        .publish("ws-2026-0002", pb::Tlp::Amber, &["to-cert"])
        .await;
    eventually("AMBER to reach to-cert", || nodes[1].holds(&p.item_id)).await;
    barrier(&nodes[1], &nodes[2], "fj-cert", "to-2026-marker").await;
    barrier(&nodes[0], &nodes[2], "fj-cert", "ws-2026-marker").await;
    assert!(!nodes[2].holds(&p.item_id).await);
    let text = nodes[2].scrape().await;
    assert!(!text.contains(&p.item_id) && !text.contains("ws-2026-0002"));
    assert_eq!(nodes[2].peer("ws-cert").await.rejections_total, 0);
    assert_eq!(nodes[2].peer("to-cert").await.rejections_total, 0);

    let mut c = nodes[0].client().await;
    let e = c
        .explain(pb::ExplainRequest {
            id: p.item_id.clone(),
            peer: "fj-cert".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!e.allowed && !e.peer_may_hold && !e.would_send, "{e:?}");
    assert_eq!(e.code, "receiver_may_not_hold");
    assert_eq!(e.hold_code, "not_in_audience");
    let e = c
        .explain(pb::ExplainRequest {
            id: "ws-2026-0002".into(),
            peer: "to-cert".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(e.allowed && e.would_send && e.direct && e.held, "{e:?}");
    assert_eq!(e.code, "within_audience");
    let err = c
        .explain(pb::ExplainRequest {
            id: "ws-2026-0002".into(),
            peer: "zz-cert".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let chosen = c
        .sync_now(pb::SyncNowRequest {
            peer: "to-cert".into(),
        })
        .await;
    // Busy (a session is running) is the only acceptable refusal.
    match chosen {
        Ok(r) => assert_eq!(r.into_inner().peer, "to-cert"),
        Err(s) => assert_eq!(s.code(), Code::FailedPrecondition, "{s}"),
    }
    stop_all(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn red_goes_from_origin_to_its_recipient_and_is_never_relayed() {
    let (_fed, nodes) = federation(&["ws-cert", "to-cert", "fj-cert"]).await;
    let p = nodes[0]
        .publish("ws-2026-0003", pb::Tlp::Red, &["to-cert"])
        .await;
    eventually("RED to reach its recipient", || nodes[1].holds(&p.item_id)).await;
    barrier(&nodes[1], &nodes[2], "fj-cert", "to-2026-m1").await;
    barrier(&nodes[1], &nodes[2], "fj-cert", "to-2026-m2").await;
    assert!(!nodes[2].holds(&p.item_id).await);
    // to-cert never even tried: fj-cert rejected nothing from it.
    assert_eq!(nodes[2].peer("to-cert").await.rejections_total, 0);
    let list = nodes[2]
        .client()
        .await
        .list(pb::ListRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(list.advisories.iter().all(|a| a.tlp != pb::Tlp::Red as i32));
    let e = nodes[1]
        .client()
        .await
        .explain(pb::ExplainRequest {
            id: p.item_id.clone(),
            peer: "fj-cert".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!e.allowed, "{e:?}");
    stop_all(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn withdrawal_propagates_to_every_holder() {
    let (_fed, nodes) = federation(&["ws-cert", "to-cert", "fj-cert"]).await;
    let p = nodes[0].publish("ws-2026-0004", pb::Tlp::Green, &[]).await;
    for n in &nodes[1..] {
        eventually("GREEN to reach every member", || n.holds(&p.item_id)).await;
    }
    let w = nodes[0]
        .client()
        .await
        .withdraw(pb::WithdrawRequest {
            id: "ws-2026-0004".into(),
            reason: "false positive".into(),
        })
        .await
        .unwrap()
        .into_inner();
    for n in &nodes[1..] {
        eventually("the tombstone to become latest everywhere", || async {
            let g = n
                .client()
                .await
                .get(pb::GetRequest {
                    id: "ws-cert/ws-2026-0004".into(),
                })
                .await
                .unwrap()
                .into_inner();
            g.item_id == w.item_id && g.advisory.unwrap().withdrawn
        })
        .await;
    }
    stop_all(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_started_later_catches_up_by_anti_entropy() {
    let mut fed = Fed::new(&["ws-cert", "to-cert", "fj-cert"]).await;
    let (ca, cb) = (fed.config(0, |_| {}), fed.config(1, |_| {}));
    let a = fed.start(0, ca);
    let b = fed.start(1, cb);
    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(
            a.publish(&format!("ws-2026-01{n:02}"), pb::Tlp::Green, &[])
                .await
                .item_id,
        );
    }
    for id in &ids {
        eventually("b to hold a's items", || b.holds(id)).await;
    }
    let cc = fed.config(2, |_| {});
    let c = fed.start(2, cc);
    for id in &ids {
        eventually("the late member to catch up", || c.holds(id)).await;
    }
    let got = c.peer("ws-cert").await.items_received + c.peer("to-cert").await.items_received;
    assert!(got >= 3, "received {got}");
    stop_all(vec![a, b, c]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_binds_the_peer_port_from_the_config() {
    let fed = Fed::new(&["ws-cert", "to-cert"]).await;
    let cfg = fed.config(0, |x| {
        x.peer_listen = "127.0.0.1:0".into();
        x.metrics_listen = Some("127.0.0.1:0".into());
    });
    prepare_data_dir(&cfg).unwrap();
    let socket = cfg.operator.socket.clone();
    let unix = bind_unix(&socket).unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let handle = tokio::spawn(run_with_store(
        cfg,
        Arc::new(MemoryStore::new()),
        Listeners {
            unix: Some(unix),
            tcp: None,
        },
        async move {
            let _ = rx.await;
        },
    ));
    let mut c = client::connect_unix(&socket).await.unwrap();
    let st = c.status(pb::StatusRequest {}).await.unwrap().into_inner();
    assert!(st.federation);
    let addr: SocketAddr = st.peer_listen.parse().unwrap();
    assert_ne!(addr.port(), 0);
    assert_eq!(st.peers_configured, 1);
    // The peer port answers TLS with ws-cert's certificate (to-cert may connect).
    let to = &fed.members[1].cert;
    let ch = client::tls_channel(
        &addr.to_string(),
        fed.ca.cert_pem().as_bytes(),
        to.cert_pem.as_bytes(),
        to.key_pem.as_bytes(),
    )
    .await
    .unwrap();
    let r = tanoa_proto::v1::peer_client::PeerClient::new(ch)
        .fetch(pb::FetchRequest {
            item_ids: vec![vec![1; 32]],
            max_bytes: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.missing, vec![vec![1u8; 32]]);
    let _ = tx.send(());
    handle.await.unwrap().unwrap();
}

// ---------------------------------------------------------------------------------------------
// Identity refusals: each case has its own test.

/// Runs ws-cert alone (roster ws-cert, to-cert), connects to its peer port with `cert`, and
/// waits for `reason` to be counted.
async fn refused_on_peer_port(cert: impl FnOnce(&Ca) -> IssuedCert, reason: &str) {
    let mut fed = Fed::new(&["ws-cert", "to-cert"]).await;
    fed.close(1);
    let cfg = fed.config(0, |_| {});
    let node = fed.start(0, cfg);
    let cert = cert(&fed.ca);
    let ep = fed.members[0].peer_addr.to_string();
    if let Ok(ch) = client::tls_channel(
        &ep,
        fed.ca.cert_pem().as_bytes(),
        cert.cert_pem.as_bytes(),
        cert.key_pem.as_bytes(),
    )
    .await
    {
        let r = tanoa_proto::v1::peer_client::PeerClient::new(ch)
            .reconcile(pb::ReconcileRequest {
                session: 1,
                message: vec![0x61],
            })
            .await;
        assert!(r.is_err(), "a refused certificate got an answer");
    }
    let series = format!("tanoa_peer_refusals_total{{reason=\"{reason}\"}}");
    eventually(&series, || async {
        metric(&node.scrape().await, &series) >= 1
    })
    .await;
    // Nothing reached the sync core from that connection.
    assert_eq!(node.peer("to-cert").await.sessions_answered, 0);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_port_refuses_a_certificate_of_an_unknown_ca() {
    refused_on_peer_port(
        |_| {
            Ca::new("Rogue CA", 1)
                .unwrap()
                .issue_member("to-cert", 1)
                .unwrap()
        },
        "unknown_ca",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_port_refuses_an_expired_certificate() {
    let now = crate::now_ms();
    refused_on_peer_port(
        |ca| {
            ca.issue_with_validity(
                &Subject::Member("to-cert".into()),
                now - 2 * 86_400_000,
                now - 86_400_000,
            )
            .unwrap()
        },
        "expired",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_port_refuses_a_not_yet_valid_certificate() {
    let now = crate::now_ms();
    refused_on_peer_port(
        |ca| {
            ca.issue_with_validity(
                &Subject::Member("to-cert".into()),
                now + 86_400_000,
                now + 2 * 86_400_000,
            )
            .unwrap()
        },
        "not_yet_valid",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_port_refuses_a_member_not_in_the_roster() {
    refused_on_peer_port(|ca| ca.issue_member("zz-cert", 1).unwrap(), "not_in_roster").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_port_refuses_an_operator_certificate() {
    refused_on_peer_port(|ca| ca.issue_operator("alice", 1).unwrap(), "operator_cert").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dialling_refuses_a_server_certificate_of_another_member() {
    // ws-cert's roster says to-cert is at fj-cert's address: fj-cert answers with its own
    // (valid) certificate, which is not the member ws-cert meant to reach.
    let mut fed = Fed::new(&["ws-cert", "to-cert", "fj-cert"]).await;
    fed.close(1);
    let fj = fed.members[2].peer_addr.to_string();
    let cfg = fed.config(0, |x| x.members[1].endpoints = vec![fj.clone()]);
    let a = fed.start(0, cfg);
    let cfg = fed.config(2, |_| {});
    let c = fed.start(2, cfg);
    let series = "tanoa_peer_refusals_total{reason=\"wrong_member\"}";
    eventually(series, || async { metric(&a.scrape().await, series) >= 1 }).await;
    let to = a.peer("to-cert").await;
    assert_ne!(to.link, "up", "{to:?}");
    assert_eq!(to.items_received, 0);
    stop_all(vec![a, c]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_port_refuses_and_counts_a_peer_certificate() {
    let mut fed = Fed::new(&["ws-cert", "to-cert"]).await;
    fed.close(1);
    let cfg = fed.config(0, |_| {});
    let path = cfg.path.clone();
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(
        "\n[operator]\ntcp_listen = \"127.0.0.1:0\"\ntls_cert = \"member.pem\"\n\
         tls_key = \"member.key\"\nclient_ca = \"../ca.pem\"\n",
    );
    std::fs::write(&path, text).unwrap();
    let cfg = Config::load(&path).unwrap();
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let node = fed.start_with_tcp(0, cfg, Some(tcp));
    let peer_cert = &fed.members[1].cert;
    if let Ok(ch) = client::tls_channel(
        &addr.to_string(),
        fed.ca.cert_pem().as_bytes(),
        peer_cert.cert_pem.as_bytes(),
        peer_cert.key_pem.as_bytes(),
    )
    .await
    {
        let r = OperatorClient::new(ch).status(pb::StatusRequest {}).await;
        assert!(r.is_err(), "a peer certificate called the operator API");
    }
    let series = "tanoa_peer_refusals_total{reason=\"peer_cert_on_operator_port\"}";
    eventually(series, || async {
        metric(&node.scrape().await, series) >= 1
    })
    .await;
    let st = node
        .client()
        .await
        .status(pb::StatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(st.peer_refusals_total >= 1);
    node.stop().await;
}

// ---------------------------------------------------------------------------------------------
// A misbehaving peer with a valid certificate.

fn advisory(origin: &str, id: &str, revision: u64, tlp: pb::Tlp, audience: &[&str]) -> Advisory {
    let mut d = draft(id, &format!("{id} r{revision}"), "198.51.100.9");
    d.tlp = model::wire::tlp_from_proto(tlp as i32).unwrap();
    d.audience = audience.iter().map(|s| (*s).to_string()).collect();
    let mut a = model::draft::draft_to_advisory(
        &d,
        origin,
        id,
        revision,
        T0,
        T0 + i64::try_from(revision).unwrap(),
    )
    .unwrap();
    model::normalize_advisory(&mut a);
    a
}

fn signed(by: &SigningIdentity, a: Advisory) -> Envelope {
    by.sign(a, &Limits::default()).unwrap().envelope().clone()
}

/// Sends raw bytes as a gRPC message.
#[derive(Debug, Clone, Default)]
struct RawCodec;

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }

    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl tonic::codec::Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(
        &mut self,
        item: Vec<u8>,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Vec<u8>>, tonic::Status> {
        let v = src.chunk().to_vec();
        src.advance(v.len());
        Ok(Some(v))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misbehaving_peer_is_rejected_item_by_item_and_counted() {
    let mut fed = Fed::new(&["ws-cert", "to-cert", "fj-cert"]).await;
    fed.close(1);
    fed.close(2);
    let cfg = fed.config(0, |_| {});
    let limit = driver::peer_message_limit(&cfg.sync, cfg.limits.max_payload_bytes);
    let max_frame = cfg.sync.max_frame_bytes;
    let node = fed.start(0, cfg);

    // The test is to-cert: a roster member with a valid certificate.
    let to = fed.identity(1);
    let fj = fed.identity(2);
    let tls = transport::PeerTls::new(
        "to-cert",
        fed.members[1].cert.cert_pem.as_bytes(),
        fed.members[1].cert.key_pem.as_bytes(),
        transport::roots_from_pem_bytes(fed.ca.cert_pem().as_bytes(), "ca").unwrap(),
        ["ws-cert".to_string()],
        transport::logging_hook(),
    )
    .unwrap();
    let ch = driver::peer_channel(
        &fed.endpoint(0),
        tls.client_config("ws-cert").unwrap(),
        Duration::from_secs(10),
    )
    .unwrap();
    let mut peer = driver::peer_client(ch.clone(), limit).max_encoding_message_size(usize::MAX);
    let push = |envs: Vec<Envelope>| pb::PushRequest {
        envelopes: envs.iter().map(Envelope::to_proto).collect(),
    };

    // A forged signature, another member's key under our origin, an AMBER item for an audience
    // ws-cert is not in, and a good item, all in one push: judged one by one.
    let mut forged = signed(
        &to,
        advisory("to-cert", "to-2026-0001", 1, pb::Tlp::Green, &[]),
    );
    let last = forged.payload.len() - 1;
    forged.payload[last] ^= 1;
    let wrong_key = fj.sign_payload(model::wire::encode_payload(&advisory(
        "to-cert",
        "to-2026-0002",
        1,
        pb::Tlp::Green,
        &[],
    )));
    let amber = signed(
        &fj,
        advisory("fj-cert", "fj-2026-0001", 1, pb::Tlp::Amber, &["to-cert"]),
    );
    let good = signed(
        &to,
        advisory("to-cert", "to-2026-0003", 1, pb::Tlp::Green, &[]),
    );
    let r = peer
        .push(push(vec![forged, wrong_key, amber.clone(), good.clone()]))
        .await
        .unwrap()
        .into_inner();
    let got: Vec<(bool, &str)> = r
        .results
        .iter()
        .map(|x| (x.accepted, x.reason.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (false, "bad_signature"),
            (false, "origin_mismatch"),
            (false, "receiver_may_not_hold"),
            (true, ""),
        ]
    );
    assert!(node.holds(&good.item_id().to_hex()).await);
    assert!(!node.holds(&amber.item_id().to_hex()).await);

    // A replayed older revision is stored as history; the latest does not regress.
    let r2 = signed(
        &to,
        advisory("to-cert", "to-2026-0004", 2, pb::Tlp::Green, &[]),
    );
    let r1 = signed(
        &to,
        advisory("to-cert", "to-2026-0004", 1, pb::Tlp::Green, &[]),
    );
    for e in [r2.clone(), r1.clone()] {
        let r = peer.push(push(vec![e])).await.unwrap().into_inner();
        assert!(r.results[0].accepted, "{r:?}");
    }
    let g = node
        .client()
        .await
        .get(pb::GetRequest {
            id: "to-cert/to-2026-0004".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(g.item_id, r2.item_id().to_hex());
    assert_eq!(g.history.len(), 2);

    // An oversized message.
    let huge = Envelope {
        payload: vec![7; limit + 1],
        key_id: "ed25519:0000000000000000".into(),
        signature: vec![0; 64],
    };
    let err = peer.push(push(vec![huge])).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err}");
    // A reconciliation frame over max_frame_bytes (within the message limit).
    let err = peer
        .reconcile(pb::ReconcileRequest {
            session: 9,
            message: vec![0x61; max_frame + 1],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err}");
    // Garbage bytes.
    let mut raw = tonic::client::Grpc::new(ch.clone());
    raw.ready().await.unwrap();
    let err = raw
        .unary(
            tonic::Request::new(vec![0xff; 16]),
            http::uri::PathAndQuery::from_static("/tanoa.v1.Peer/Push"),
            RawCodec,
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");

    // The receiver keeps serving: a good item after all that is stored.
    let after = signed(
        &to,
        advisory("to-cert", "to-2026-0005", 1, pb::Tlp::Green, &[]),
    );
    let r = peer
        .push(push(vec![after.clone()]))
        .await
        .unwrap()
        .into_inner();
    assert!(r.results[0].accepted);
    assert!(node.holds(&after.item_id().to_hex()).await);

    // Every rejection is counted against to-cert by reason.
    let info = node.peer("to-cert").await;
    let by: std::collections::HashMap<&str, u64> = info
        .rejections
        .iter()
        .map(|r| (r.reason.as_str(), r.count))
        .collect();
    for reason in [
        "bad_signature",
        "origin_mismatch",
        "receiver_may_not_hold",
        "oversized_message",
        "frame_too_large",
        "malformed",
    ] {
        assert_eq!(by.get(reason), Some(&1), "{reason} in {by:?}");
    }
    let text = node.scrape().await;
    for (series, n) in [
        (
            "tanoa_peer_rejections_total{peer=\"to-cert\",reason=\"bad_signature\"}",
            1,
        ),
        (
            "tanoa_peer_messages_rejected_total{peer=\"to-cert\",reason=\"malformed\"}",
            1,
        ),
        (
            "tanoa_peer_messages_rejected_total{peer=\"to-cert\",reason=\"oversized_message\"}",
            1,
        ),
    ] {
        assert_eq!(metric(&text, series), n, "{series} in\n{text}");
    }
    // Nothing of the refused AMBER item is visible in the metrics.
    assert!(!text.contains(&amber.item_id().to_hex()) && !text.contains("fj-2026-0001"));
    node.stop().await;
}

/// A request body of fixed bytes (hand-built gRPC frames).
struct RawBody(Option<bytes::Bytes>);

impl http_body::Body for RawBody {
    type Data = bytes::Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, tonic::Status>>> {
        std::task::Poll::Ready(self.0.take().map(|b| Ok(http_body::Frame::data(b))))
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_none()
    }
}

/// Sends `body` as the request body of Push over `ch` and returns the gRPC status it answers.
async fn raw_push(ch: &tonic::transport::Channel, body: &[u8]) -> tonic::Status {
    raw_push_encoded(ch, body, None).await
}

/// `raw_push` with a `grpc-encoding` header; the answer's status (`Ok` when it succeeded).
async fn raw_push_encoded(
    ch: &tonic::transport::Channel,
    body: &[u8],
    encoding: Option<&str>,
) -> tonic::Status {
    use tower::ServiceExt as _;
    let mut req = http::Request::builder()
        .method("POST")
        .uri("/tanoa.v1.Peer/Push")
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    if let Some(e) = encoding {
        req = req.header("grpc-encoding", e);
    }
    let req = req
        .body(tonic::body::Body::new(RawBody(Some(
            bytes::Bytes::copy_from_slice(body),
        ))))
        .unwrap();
    let resp = ch.clone().oneshot(req).await.unwrap();
    if let Some(st) = tonic::Status::from_header_map(resp.headers()) {
        return st;
    }
    // A successful answer: its status is in the trailers.
    use http_body_util::BodyExt as _;
    let trailers = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .trailers()
        .cloned()
        .unwrap_or_default();
    tonic::Status::from_header_map(&trailers).expect("a grpc-status")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_frames_are_counted_against_the_peer_by_reason() {
    let mut fed = Fed::new(&["ws-cert", "to-cert"]).await;
    fed.close(1);
    let cfg = fed.config(0, |_| {});
    let node = fed.start(0, cfg);
    let tls = transport::PeerTls::new(
        "to-cert",
        fed.members[1].cert.cert_pem.as_bytes(),
        fed.members[1].cert.key_pem.as_bytes(),
        transport::roots_from_pem_bytes(fed.ca.cert_pem().as_bytes(), "ca").unwrap(),
        ["ws-cert".to_string()],
        transport::logging_hook(),
    )
    .unwrap();
    let ch = driver::peer_channel(
        &fed.endpoint(0),
        tls.client_config("ws-cert").unwrap(),
        Duration::from_secs(10),
    )
    .unwrap();
    let cases: [(&str, Vec<u8>, &str); 5] = [
        ("no message", Vec::new(), "missing_message"),
        ("header cut short", vec![0, 0, 0], "truncated_message"),
        (
            "body shorter than its length",
            [&[0u8, 0, 0, 0, 100][..], &[0x0a; 10]].concat(),
            "truncated_message",
        ),
        (
            "compressed flag without grpc-encoding",
            vec![1, 0, 0, 0, 2, 0x0a, 0x00],
            "bad_compression_flag",
        ),
        (
            "a complete frame that is not a PushRequest",
            vec![0, 0, 0, 0, 4, 0xff, 0xff, 0xff, 0xff],
            "malformed",
        ),
    ];
    for (what, body, reason) in &cases {
        let st = raw_push(&ch, body).await;
        assert_eq!(st.code(), Code::InvalidArgument, "{what}: {st:?}");
        assert_eq!(
            st.metadata()
                .get(crate::api::error::REASON_METADATA)
                .and_then(|v| v.to_str().ok()),
            Some(*reason),
            "{what}: {st:?}"
        );
    }
    let text = node.scrape().await;
    for (reason, n) in [
        ("missing_message", 1),
        ("truncated_message", 2),
        ("bad_compression_flag", 1),
        ("malformed", 1),
    ] {
        let series =
            format!("tanoa_peer_messages_rejected_total{{peer=\"to-cert\",reason=\"{reason}\"}}");
        assert_eq!(metric(&text, &series), n, "{series} in\n{text}");
    }
    // The connection still serves a well-formed request.
    let r = driver::peer_client(ch.clone(), 1 << 20)
        .fetch(pb::FetchRequest {
            item_ids: vec![vec![1; 32]],
            max_bytes: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.missing, vec![vec![1u8; 32]]);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_frames_are_decoded_within_the_limit_and_bombs_are_counted() {
    let mut fed = Fed::new(&["ws-cert", "to-cert"]).await;
    fed.close(1);
    let cfg = fed.config(0, |_| {});
    let limit = driver::peer_message_limit(&cfg.sync, cfg.limits.max_payload_bytes);
    let node = fed.start(0, cfg);
    let tls = transport::PeerTls::new(
        "to-cert",
        fed.members[1].cert.cert_pem.as_bytes(),
        fed.members[1].cert.key_pem.as_bytes(),
        transport::roots_from_pem_bytes(fed.ca.cert_pem().as_bytes(), "ca").unwrap(),
        ["ws-cert".to_string()],
        transport::logging_hook(),
    )
    .unwrap();
    let ch = driver::peer_channel(
        &fed.endpoint(0),
        tls.client_config("ws-cert").unwrap(),
        Duration::from_secs(10),
    )
    .unwrap();
    let frame = |flag: u8, data: &[u8]| {
        let mut f = vec![flag];
        f.extend_from_slice(&u32::try_from(data.len()).unwrap().to_be_bytes());
        f.extend_from_slice(data);
        f
    };
    // A well-formed compressed push (an empty PushRequest, zstd) is decoded and answered.
    let ok = raw_push_encoded(
        &ch,
        &frame(1, &zstd::bulk::compress(&[], 3).unwrap()),
        Some("zstd"),
    )
    .await;
    assert_eq!(ok.code(), Code::Ok, "{ok:?}");
    // A bomb: a few hundred bytes that inflate past the message limit.
    let zeros = vec![0u8; limit + 4096];
    let bomb = zstd::bulk::compress(&zeros, 19).unwrap();
    assert!(bomb.len() < 4096, "{}", bomb.len());
    let st = raw_push_encoded(&ch, &frame(1, &bomb), Some("zstd")).await;
    assert_eq!(st.code(), Code::ResourceExhausted, "{st:?}");
    let reason = |st: &tonic::Status| {
        st.metadata()
            .get(crate::api::error::REASON_METADATA)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    assert_eq!(reason(&st).as_deref(), Some("decompressed_too_large"));
    // The same as gzip.
    let gz = {
        use std::io::Write as _;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(&zeros).unwrap();
        e.finish().unwrap()
    };
    let st = raw_push_encoded(&ch, &frame(1, &gz), Some("gzip")).await;
    assert_eq!(
        reason(&st).as_deref(),
        Some("decompressed_too_large"),
        "{st:?}"
    );
    // Bytes that are not zstd at all.
    let st = raw_push_encoded(&ch, &frame(1, &[0x55; 40]), Some("zstd")).await;
    assert_eq!(st.code(), Code::InvalidArgument, "{st:?}");
    assert_eq!(reason(&st).as_deref(), Some("bad_compressed_data"));
    let text = node.scrape().await;
    for (reason, n) in [("decompressed_too_large", 2), ("bad_compressed_data", 1)] {
        let series =
            format!("tanoa_peer_messages_rejected_total{{peer=\"to-cert\",reason=\"{reason}\"}}");
        assert_eq!(metric(&text, &series), n, "{series} in\n{text}");
    }
    // Every answer advertises what the peer port decodes; the connection still serves.
    let r = driver::peer_client(ch.clone(), 1 << 20)
        .fetch(pb::FetchRequest {
            item_ids: vec![vec![1; 32]],
            max_bytes: 0,
        })
        .await
        .unwrap();
    assert_eq!(
        r.metadata()
            .get("grpc-accept-encoding")
            .and_then(|v| v.to_str().ok()),
        Some("zstd,gzip")
    );
    node.stop().await;
}

/// Bytes relayed each way by `counting_relay`.
struct Relay {
    addr: SocketAddr,
    /// Towards the target (requests of the dialling member).
    up: Arc<std::sync::atomic::AtomicU64>,
    /// Back from the target (answers).
    down: Arc<std::sync::atomic::AtomicU64>,
}

impl Relay {
    fn total(&self) -> u64 {
        use std::sync::atomic::Ordering::Relaxed;
        self.up.load(Relaxed) + self.down.load(Relaxed)
    }
}

/// A TCP relay on 127.0.0.1:0 to `target` that counts the bytes (TLS records, as on the wire)
/// each way: a measuring shim for this module's tests, not a link emulator.
async fn counting_relay(target: SocketAddr) -> Relay {
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (up, down) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (u, d) = (up.clone(), down.clone());
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            let Ok(outbound) = tokio::net::TcpStream::connect(target).await else {
                continue;
            };
            let (mut ri, mut wi) = inbound.into_split();
            let (mut ro, mut wo) = outbound.into_split();
            async fn pump(
                r: &mut tokio::net::tcp::OwnedReadHalf,
                w: &mut tokio::net::tcp::OwnedWriteHalf,
                n: &AtomicU64,
            ) {
                let mut buf = vec![0u8; 64 * 1024];
                while let Ok(k) = r.read(&mut buf).await {
                    if k == 0 || w.write_all(&buf[..k]).await.is_err() {
                        break;
                    }
                    n.fetch_add(k as u64, Relaxed);
                }
                let _ = w.shutdown().await;
            }
            let (u, d) = (u.clone(), d.clone());
            tokio::spawn(async move { pump(&mut ri, &mut wo, &u).await });
            tokio::spawn(async move { pump(&mut ro, &mut wi, &d).await });
        }
    });
    Relay { addr, up, down }
}

/// Catch-up of `n` advisories by a fresh member through a counting relay, then one
/// reconciliation with nothing changed: (catch-up bytes on the wire, stored envelope bytes,
/// nothing-changed bytes up, down).
async fn wire_bytes(n: usize, compression: &str) -> (u64, u64, u64, u64) {
    use std::sync::atomic::Ordering::Relaxed;
    let mut fed = Fed::new(&["ws-cert", "to-cert"]).await;
    let relay = counting_relay(fed.members[0].peer_addr).await;
    let sync = |x: &mut FederatedExample| {
        x.sync
            .retain(|(k, _)| k != "interval_ms" && k != "jitter_ms");
        x.sync.push(("interval_ms".into(), "0".into()));
        x.sync
            .push(("compression".into(), format!("{compression:?}")));
    };
    // `a` cannot dial `b`: everything `b` gets crosses the relay, fetched by `b`.
    let c0 = fed.config(0, |x| {
        sync(x);
        x.members[1].endpoints = vec!["127.0.0.1:1".into()];
    });
    let a = fed.start(0, c0);
    let drafts: Vec<pb::AdvisoryDraft> = (0..n)
        .map(|k| {
            draft_pb(
                &format!("ws-2026-{k:05}"),
                &format!("APT40 activity report {k}: scanning of Pacific government networks"),
                &format!("198.51.100.{}", k % 250),
            )
        })
        .collect();
    let published = a
        .client()
        .await
        .publish_batch(pb::PublishBatchRequest { drafts })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(published.results.len(), n);
    let c1 = fed.config(1, |x| {
        sync(x);
        x.members[0].endpoints = vec![relay.addr.to_string()];
    });
    let b = fed.start(1, c1);
    eventually("the catch-up", || async {
        b.client()
            .await
            .status(pb::StatusRequest {})
            .await
            .unwrap()
            .into_inner()
            .items
            == n as u64
    })
    .await;
    eventually("b's session with a to end", || async {
        !b.peer("ws-cert").await.syncing
    })
    .await;
    let catch_up = relay.total();
    let stored = b.peer("ws-cert").await.bytes_received;
    // Nothing changed: one reconciliation started by b, over the connection already open.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = (relay.up.load(Relaxed), relay.down.load(Relaxed));
    let ok = b.peer("ws-cert").await.sessions_ok;
    b.client()
        .await
        .sync_now(pb::SyncNowRequest {
            peer: "ws-cert".into(),
        })
        .await
        .unwrap();
    eventually("the reconciliation", || async {
        b.peer("ws-cert").await.sessions_ok > ok
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let up = relay.up.load(Relaxed) - before.0;
    let down = relay.down.load(Relaxed) - before.1;
    stop_all(vec![a, b]).await;
    (catch_up, stored, up, down)
}

/// Bytes on the wire (TLS included) of a catch-up with and without compression, and of a
/// reconciliation with nothing changed. Prints the figures (`cargo test -p tanoa-daemon
/// wire_bytes -- --nocapture`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wire_bytes_of_a_catch_up_and_of_nothing_changed() {
    let n = 300;
    let (plain, stored, ..) = wire_bytes(n, "none").await;
    let (zstd, stored_z, up, down) = wire_bytes(n, "zstd").await;
    println!("catch-up of {n} advisories ({stored} envelope bytes stored):");
    println!(
        "  compression none: {plain} B on the wire ({:.3} of stored)",
        plain as f64 / stored as f64
    );
    println!(
        "  compression zstd: {zstd} B on the wire ({:.3} of stored)",
        zstd as f64 / stored_z as f64
    );
    println!(
        "nothing changed, one reconciliation: {up} B up + {down} B down = {} B",
        up + down
    );
    assert!(stored > 0 && stored == stored_z);
    assert!(
        (zstd as f64) < 0.7 * plain as f64,
        "zstd {zstd} B vs none {plain} B"
    );
    assert!(up + down < 2048, "{up} + {down}");
    assert!(up > 0 && down > 0);
}

impl Fed {
    /// Binds member `i`'s peer and metrics listeners again (after its node stopped), on the
    /// same peer port, so it can be started again.
    async fn rebind(&mut self, i: usize) {
        let m = &mut self.members[i];
        m.peer = Some(TcpListener::bind(m.peer_addr).await.unwrap());
        m.metrics = Some(TcpListener::bind("127.0.0.1:0").await.unwrap());
    }
}

async fn status_of(n: &Node) -> pb::StatusResponse {
    n.client()
        .await
        .status(pb::StatusRequest {})
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_lost_its_store_restores_its_history_before_revising_by_id() {
    let (mut fed, mut nodes) = federation(&["ws-cert", "to-cert"]).await;
    let mut last = None;
    for _ in 0..3 {
        last = Some(nodes[0].publish("ws-2026-0300", pb::Tlp::Green, &[]).await);
    }
    let last = last.unwrap();
    assert_eq!(last.revision, 3);
    let mut others = Vec::new();
    for n in 0..20 {
        let p = nodes[0]
            .publish(&format!("ws-2026-04{n:02}"), pb::Tlp::Green, &[])
            .await;
        others.push(p.item_id);
    }
    eventually("to-cert to hold revision 3", || {
        nodes[1].holds(&last.item_id)
    })
    .await;
    // A publish returns once it is durable here; it reaches to-cert by a push after that. On a
    // loaded machine the last pushes may still be on their way: wait until to-cert holds all
    // 23, or ws-cert, stopped now, could only get back what to-cert had (it once restored 20).
    for id in &others {
        eventually("to-cert to hold every advisory of ws-cert", || {
            nodes[1].holds(id)
        })
        .await;
    }
    let a = nodes.remove(0);
    a.stop().await;

    // ws-cert starts again with an empty store (its data directory was lost). Revising the
    // advisory by id at once must not sign revision 1 again (to-cert holds 1..3): the write
    // waits until to-cert gave back ws-cert's history, then signs revision 4.
    fed.rebind(0).await;
    let config = fed.config(0, |_| {});
    let a = fed.start(0, config);
    let revised = a.publish("ws-2026-0300", pb::Tlp::Green, &[]).await;
    assert_eq!(revised.revision, 4, "{revised:?}");
    let st = status_of(&a).await;
    assert!(st.restoring_from.is_empty(), "{:?}", st.restoring_from);
    assert!(st.restore_unreachable.is_empty(), "{st:?}");
    assert!(st.advisories >= 21, "restored: {}", st.advisories);
    eventually("to-cert to hold revision 4", || {
        nodes[0].holds(&revised.item_id)
    })
    .await;
    // No equivocation anywhere: revision 4 was signed once.
    assert_eq!(status_of(&nodes[0]).await.equivocations, 0);
    assert_eq!(status_of(&a).await.equivocations, 0);
    stop_all(vec![a, nodes.remove(0)]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_starts_empty_does_not_wait_for_an_unreachable_peer() {
    let mut fed = Fed::new(&["ws-cert", "to-cert"]).await;
    fed.close(1);
    let config = fed.config(0, |_| {});
    let a = fed.start(0, config);
    // Nothing to restore from: the only peer refuses connections, so it is not waited for.
    let p = a.publish("ws-2026-0500", pb::Tlp::Green, &[]).await;
    assert_eq!(p.revision, 1);
    let st = status_of(&a).await;
    assert!(st.restoring_from.is_empty());
    // Not waited for, but not restored from either: reported until it answers.
    assert_eq!(st.restore_unreachable, vec!["to-cert".to_string()]);
    a.stop().await;
}

/// Every peer request and answer carries the sender's roster version (`peer_roster`): two
/// members on a `[[members]]` roster see each other at version 0; a version a peer claims is
/// shown (ahead of ours) but changes nothing; a malformed value is ignored and counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_report_their_roster_version_and_a_malformed_one_is_counted_not_trusted() {
    let mut fed = Fed::new(&["ws-cert", "to-cert", "fj-cert"]).await;
    fed.close(2);
    let c0 = fed.config(0, |_| {});
    let limit = driver::peer_message_limit(&c0.sync, c0.limits.max_payload_bytes);
    let ws = fed.start(0, c0);
    let c1 = fed.config(1, |_| {});
    let to = fed.start(1, c1);
    for (a, b) in [(&ws, "to-cert"), (&to, "ws-cert")] {
        eventually("the peer's roster version", || async {
            let p = a.peer(b).await;
            p.roster_reported && p.roster_version == 0 && !p.roster_behind
        })
        .await;
    }
    let p = ws.peer("to-cert").await;
    assert!(p.roster_hash_prefix.is_empty() && p.roster_reported_ms > 0);
    assert_eq!(p.roster_header_malformed, 0);
    assert!(p.tls_pins.is_empty(), "CA-authenticated: no pins");
    // fj-cert never ran: nothing reported.
    assert!(!ws.peer("fj-cert").await.roster_reported);
    to.stop().await;

    // fj-cert's certificate, by hand: a raw Push carrying chosen header values.
    let tls = transport::PeerTls::new(
        "fj-cert",
        fed.members[2].cert.cert_pem.as_bytes(),
        fed.members[2].cert.key_pem.as_bytes(),
        transport::roots_from_pem_bytes(fed.ca.cert_pem().as_bytes(), "ca").unwrap(),
        ["ws-cert".to_string()],
        transport::logging_hook(),
    )
    .unwrap();
    let ch = driver::peer_channel(
        &fed.endpoint(0),
        tls.client_config("ws-cert").unwrap(),
        Duration::from_secs(10),
    )
    .unwrap();
    let push = |value: &'static str| {
        let mut peer = driver::peer_client(ch.clone(), limit);
        async move {
            let mut req = tonic::Request::new(pb::PushRequest { envelopes: vec![] });
            req.metadata_mut()
                .insert("tanoa-roster-version", value.parse().unwrap());
            peer.push(req).await.unwrap()
        }
    };
    let answer = push("7:0123456789abcdef").await;
    // The answer carries ws-cert's own version.
    assert_eq!(
        answer.metadata().get("tanoa-roster-version").unwrap(),
        "0",
        "{:?}",
        answer.metadata()
    );
    let p = ws.peer("fj-cert").await;
    assert!(p.roster_reported && !p.roster_behind);
    assert_eq!(p.roster_version, 7);
    assert_eq!(p.roster_hash_prefix, "0123456789abcdef");
    let st = status_of(&ws).await;
    assert_eq!(st.roster_peers_ahead, ["fj-cert"]);
    assert!(st.roster_peers_behind.is_empty());
    // Display only: the roster in force is still version 0.
    assert_eq!(st.roster_version, 0);

    for bad in ["8:XYZ", "-1", "08", "9:0123"] {
        push(bad).await;
    }
    let p = ws.peer("fj-cert").await;
    assert_eq!(p.roster_header_malformed, 4);
    assert_eq!(p.roster_version, 7, "the last well-formed value stays");
    let text = ws.scrape().await;
    assert_eq!(
        metric(
            &text,
            "tanoa_peer_messages_rejected_total{peer=\"fj-cert\",reason=\"malformed_roster_header\"}"
        ),
        4,
        "{text}"
    );
    ws.stop().await;
}
