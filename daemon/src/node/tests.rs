//! Tests of the running node: an in-process daemon on a temp-dir Unix socket (and a port-0 TCP
//! listener with mutual TLS), driven through the real client.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tanoa_proto::v1 as pb;
use tanoa_proto::v1::operator_client::OperatorClient;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::Code;
use tonic::transport::Channel;

use super::*;
use crate::api::OperatorApi;
use crate::client;
use crate::envelope::SigningIdentity;
use crate::model::Limits;
use crate::publish::tests::{draft, draft_pb};
use crate::store::{MemoryStore, SledConfig, SledStore};
use crate::transport::test_pki::{TestCa, TestCert};

const MEMBER: &str = "ws-cert";

/// A member directory: key file and config, optionally with the TCP operator listener.
struct Member {
    dir: tempfile::TempDir,
    config: Config,
}

struct Tls {
    ca: TestCa,
}

fn member(tls: Option<&Tls>) -> Member {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("keys")).unwrap();
    let key = keys::generate().unwrap();
    keys::write_key_file(&dir.path().join("keys/ws-cert.key"), MEMBER, &key).unwrap();
    let mut text = Config::example(MEMBER, "Samoa CERT");
    if let Some(tls) = tls {
        let server = tls.ca.issue(&["tanoa://member/ws-cert"]);
        std::fs::write(dir.path().join("server.crt"), &server.cert_pem).unwrap();
        tanoa_pki::write_private_pem(&dir.path().join("server.key"), &server.key_pem).unwrap();
        std::fs::write(dir.path().join("ca.crt"), &tls.ca.pem).unwrap();
        text = text.replace(
            "# tcp_listen = \"127.0.0.1:7443\"",
            "tcp_listen = \"127.0.0.1:0\"\ntls_cert = \"server.crt\"\ntls_key = \"server.key\"\n\
             client_ca = \"ca.crt\"",
        );
    }
    let path = dir.path().join("tanoad.toml");
    std::fs::write(&path, text).unwrap();
    let config = Config::load(&path).unwrap();
    Member { dir, config }
}

struct Running {
    socket: PathBuf,
    tcp: Option<std::net::SocketAddr>,
    stop: Option<oneshot::Sender<()>>,
    handle: JoinHandle<Result<(), NodeError>>,
}

impl Running {
    async fn client(&self) -> OperatorClient<Channel> {
        client::connect_unix(&self.socket).await.unwrap()
    }

    async fn stop(mut self) -> Result<(), NodeError> {
        let _ = self.stop.take().unwrap().send(());
        self.handle.await.unwrap()
    }
}

/// Starts a node: `store` None = the sled store of the config (via `run`).
async fn start(m: &Member, store: Option<Arc<dyn Store>>) -> Running {
    prepare_data_dir(&m.config).unwrap();
    let socket = m.config.operator.socket.clone();
    let unix = bind_unix(&socket).unwrap();
    let tcp = match &m.config.operator.tcp {
        Some(t) => Some(TcpListener::bind(t.listen).await.unwrap()),
        None => None,
    };
    let tcp_addr = tcp.as_ref().map(|l| l.local_addr().unwrap());
    let (tx, rx) = oneshot::channel::<()>();
    let shutdown = async move {
        let _ = rx.await;
    };
    let listeners = Listeners {
        unix: Some(unix),
        tcp,
    };
    let config = m.config.clone();
    let handle = tokio::spawn(async move {
        match store {
            Some(s) => run_with_store(config, s, listeners, shutdown).await,
            None => run(config, listeners, shutdown).await,
        }
    });
    Running {
        socket,
        tcp: tcp_addr,
        stop: Some(tx),
        handle,
    }
}

fn publish_req(id: &str, title: &str, ip: &str) -> pb::PublishRequest {
    pb::PublishRequest {
        draft: Some(draft_pb(id, title, ip)),
    }
}

async fn status(c: &mut OperatorClient<Channel>) -> pb::StatusResponse {
    c.status(pb::StatusRequest {}).await.unwrap().into_inner()
}

#[tokio::test]
async fn publish_get_list_search_round_trip() {
    let m = member(None);
    let node = start(&m, Some(Arc::new(MemoryStore::new()))).await;
    let mut c = node.client().await;

    let p = c
        .publish(publish_req("ws-2026-0042", "APT40 scanning", "192.0.2.7"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((p.origin.as_str(), p.revision), (MEMBER, 1));
    assert_eq!(p.advisory_id, "ws-2026-0042");

    // Get by advisory id, origin/id and item id all name the same item.
    for id in ["ws-2026-0042", "ws-cert/ws-2026-0042", p.item_id.as_str()] {
        let g = c
            .get(pb::GetRequest { id: id.into() })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(g.item_id, p.item_id, "{id}");
        let a = g.advisory.unwrap();
        assert_eq!(a.title, "APT40 scanning");
        assert_eq!(a.origin, MEMBER);
        let v = g.verification.unwrap();
        assert!(v.valid, "{}", v.detail);
        assert_eq!(v.signer, MEMBER);
        assert!(!g.superseded);
        assert_eq!(g.source, "local");
        assert_eq!(g.history.len(), 1);
        let env = crate::envelope::Envelope::from_proto(g.envelope.unwrap());
        assert_eq!(env.item_id().to_hex(), p.item_id);
    }
    let err = c
        .get(pb::GetRequest { id: "nope".into() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    let l = c
        .list(pb::ListRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(l.advisories.len(), 1);
    assert_eq!(l.advisories[0].indicator_count, 2);
    let l = c
        .list(pb::ListRequest {
            origin: "to-cert".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(l.advisories.is_empty());

    // Exact IP, kind detected; domain normalized before lookup.
    let s = c
        .search_indicator(pb::SearchIndicatorRequest {
            value: " 192.0.2.7 ".into(),
            kind: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(s.normalized, "192.0.2.7");
    assert_eq!(s.kind, pb::IndicatorKind::Ipv4 as i32);
    assert_eq!(s.hits.len(), 1);
    assert_eq!(s.hits[0].r#match, "exact");
    assert_eq!(s.hits[0].advisory.as_ref().unwrap().item_id, p.item_id);
    let s = c
        .search_indicator(pb::SearchIndicatorRequest {
            value: "UPDATE.example.".into(),
            kind: pb::IndicatorKind::Domain as i32,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(s.normalized, "update.example");
    assert_eq!(s.hits.len(), 1);

    // An IP inside a CIDR indicator.
    let mut d = draft_pb("ws-2026-0043", "net", "192.0.2.8");
    d.indicators.push(pb::Indicator {
        kind: pb::IndicatorKind::Cidr as i32,
        value: "198.51.100.0/24".into(),
        ..Default::default()
    });
    c.publish(pb::PublishRequest { draft: Some(d) })
        .await
        .unwrap();
    let s = c
        .search_indicator(pb::SearchIndicatorRequest {
            value: "198.51.100.77".into(),
            kind: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(s.hits.len(), 1);
    assert_eq!(s.hits[0].r#match, "cidr");
    assert_eq!(
        s.hits[0].indicator.as_ref().unwrap().value,
        "198.51.100.0/24"
    );

    // A validation error names the field path.
    let err = c
        .publish(publish_req("", "bad", "10.0.0.300"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("indicators[0].value"),
        "{}",
        err.message()
    );

    let st = status(&mut c).await;
    assert_eq!(st.member_id, MEMBER);
    assert_eq!(st.display_name, "Samoa CERT");
    assert_eq!(st.advisories, 2);
    assert_eq!(st.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(st.keys.len(), 1);
    assert!(st.keys[0].active);
    assert_eq!(st.data_dir, m.config.storage.data_dir.display().to_string());

    let audit = c
        .audit(pb::AuditRequest { limit: 0 })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(audit.entries.len(), 2);
    assert_eq!(audit.entries[0].action, "publish");
    assert_eq!(audit.entries[0].actor, "operator");
    drop(c);
    node.stop().await.unwrap();
}

#[tokio::test]
async fn search_tries_every_kind_and_finds_cves_and_actors_of_advisories() {
    let m = member(None);
    let node = start(&m, Some(Arc::new(MemoryStore::new()))).await;
    let mut c = node.client().await;
    let mut d = draft_pb("ws-2026-0050", "Spyware plist", "192.0.2.9");
    d.indicators.push(pb::Indicator {
        kind: pb::IndicatorKind::Filename as i32,
        value: "update.plist".into(),
        ..Default::default()
    });
    d.cves = vec!["CVE-2017-11882".into()];
    d.actors = vec!["APT40".into()];
    let p = c
        .publish(pb::PublishRequest { draft: Some(d) })
        .await
        .unwrap()
        .into_inner();
    let search = |value: &str| pb::SearchIndicatorRequest {
        value: value.into(),
        kind: 0,
    };
    let kinds = |r: &pb::SearchIndicatorResponse| -> Vec<String> {
        r.searched.iter().map(|k| k.kind.clone()).collect()
    };

    // A file name that is also a domain name: both kinds are searched, and said.
    let s = c
        .search_indicator(search("update.plist"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(kinds(&s), ["domain", "filename", "actor"]);
    assert_eq!(s.hits.len(), 1, "{s:?}");
    assert_eq!(s.hits[0].r#match, "exact");
    assert_eq!(
        s.hits[0].indicator.as_ref().unwrap().kind,
        pb::IndicatorKind::Filename as i32
    );

    // A CVE listed by the advisory (not an indicator).
    let s = c
        .search_indicator(search("cve-2017-11882"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(s.normalized, "CVE-2017-11882");
    assert!(kinds(&s).starts_with(&["cve".to_string()]), "{s:?}");
    assert_eq!(s.hits.len(), 1, "{s:?}");
    assert_eq!(s.hits[0].r#match, "cve_list");
    assert_eq!(s.hits[0].advisory.as_ref().unwrap().item_id, p.item_id);

    // An actor, any case.
    let s = c
        .search_indicator(search("apt40"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(s.hits.len(), 1, "{s:?}");
    assert_eq!(s.hits[0].r#match, "actor_list");

    // A kind given: only that kind.
    let s = c
        .search_indicator(pb::SearchIndicatorRequest {
            value: "update.plist".into(),
            kind: pb::IndicatorKind::Domain as i32,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(kinds(&s), ["domain"]);
    assert!(s.hits.is_empty());
    drop(c);
    node.stop().await.unwrap();
}

#[tokio::test]
async fn same_id_publishes_next_revision_and_get_shows_history() {
    let m = member(None);
    let node = start(&m, Some(Arc::new(MemoryStore::new()))).await;
    let mut c = node.client().await;
    let p1 = c
        .publish(publish_req("ws-2026-0001", "first", "192.0.2.1"))
        .await
        .unwrap()
        .into_inner();
    let p2 = c
        .publish(publish_req("ws-2026-0001", "second", "192.0.2.2"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((p1.revision, p2.revision), (1, 2));
    let g = c
        .get(pb::GetRequest {
            id: p1.item_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(g.superseded);
    assert_eq!(g.latest_item_id, p2.item_id);
    assert_eq!(g.advisory.unwrap().title, "first");
    let revs: Vec<u64> = g.history.iter().map(|h| h.revision).collect();
    assert_eq!(revs, [1, 2]);
    let g = c
        .get(pb::GetRequest {
            id: "ws-2026-0001".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(g.item_id, p2.item_id);
    assert!(!g.superseded);
    // The old IP left the active index with its revision.
    let s = c
        .search_indicator(pb::SearchIndicatorRequest {
            value: "192.0.2.1".into(),
            kind: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(s.hits.is_empty());
    drop(c);
    node.stop().await.unwrap();
}

#[tokio::test]
async fn withdraw_hides_from_search_but_get_explains() {
    let m = member(None);
    let node = start(&m, Some(Arc::new(MemoryStore::new()))).await;
    let mut c = node.client().await;
    c.publish(publish_req("ws-2026-0007", "to withdraw", "203.0.113.5"))
        .await
        .unwrap();
    let search = pb::SearchIndicatorRequest {
        value: "203.0.113.5".into(),
        kind: 0,
    };
    assert_eq!(
        c.search_indicator(search.clone())
            .await
            .unwrap()
            .into_inner()
            .hits
            .len(),
        1
    );
    let w = c
        .withdraw(pb::WithdrawRequest {
            id: "ws-2026-0007".into(),
            reason: "false positive: shared hosting".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(w.revision, 2);
    assert!(
        c.search_indicator(search)
            .await
            .unwrap()
            .into_inner()
            .hits
            .is_empty()
    );
    let g = c
        .get(pb::GetRequest {
            id: "ws-2026-0007".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(g.item_id, w.item_id);
    let a = g.advisory.unwrap();
    assert!(a.withdrawn);
    assert_eq!(a.withdrawn_reason, "false positive: shared hosting");
    assert!(g.verification.unwrap().valid);
    let l = c
        .list(pb::ListRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(l.advisories.is_empty());
    let l = c
        .list(pb::ListRequest {
            include_withdrawn: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(l.advisories.len(), 1);
    assert!(l.advisories[0].withdrawn);
    let err = c
        .publish(publish_req("ws-2026-0007", "again", "203.0.113.5"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(
        err.message()
            .contains("is withdrawn; publish a new advisory instead")
    );
    let err = c
        .withdraw(pb::WithdrawRequest {
            id: "ws-2026-0007".into(),
            reason: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    drop(c);
    node.stop().await.unwrap();
}

#[tokio::test]
async fn tampered_import_is_refused_with_reason_and_nothing_stored() {
    let other = SigningIdentity::new("to-cert", keys::generate().unwrap());
    let mut m = member(None);
    m.config.trusted.push(crate::envelope::PublicKeyRecord::new(
        "to-cert",
        other.verifying_key(),
        None,
        None,
    ));
    let node = start(&m, Some(Arc::new(MemoryStore::new()))).await;
    let mut c = node.client().await;
    let mut adv = crate::model::draft::draft_to_advisory(
        &draft("to-2026-1", "Tonga", "203.0.113.9"),
        "to-cert",
        "to-2026-1",
        1,
        1_767_225_600_000,
        1_767_225_600_000,
    )
    .unwrap();
    crate::model::normalize_advisory(&mut adv);
    let env = other
        .sign(adv, &Limits::default())
        .unwrap()
        .envelope()
        .clone();
    let before = status(&mut c).await;

    let mut tampered = env.clone();
    let n = tampered.payload.len() / 2;
    tampered.payload[n] ^= 0x20;
    let err = c
        .import_envelope(pb::ImportEnvelopeRequest {
            envelope: Some(tampered.to_proto()),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("(bad_signature)"),
        "{}",
        err.message()
    );
    assert_eq!(err.metadata().get("tanoa-reason").unwrap(), "bad_signature");

    let mut truncated = env.clone();
    truncated.signature.truncate(40);
    let err = c
        .import_envelope(pb::ImportEnvelopeRequest {
            envelope: Some(truncated.to_proto()),
        })
        .await
        .unwrap_err();
    assert!(
        err.message().contains("(truncated_signature)"),
        "{}",
        err.message()
    );

    let stranger = SigningIdentity::new("to-cert", keys::generate().unwrap());
    let unknown = stranger.sign_payload(env.payload.clone());
    let err = c
        .import_envelope(pb::ImportEnvelopeRequest {
            envelope: Some(unknown.to_proto()),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("(unknown_key)"), "{}", err.message());

    let after = status(&mut c).await;
    assert_eq!(
        (after.items, after.advisories, after.indicators),
        (before.items, before.advisories, before.indicators)
    );
    let audit = c
        .audit(pb::AuditRequest { limit: 3 })
        .await
        .unwrap()
        .into_inner();
    assert!(audit.entries.iter().all(|e| e.action == "reject"));
    assert!(audit.entries[2].detail.starts_with("bad_signature:"));

    // The genuine envelope is accepted, then a duplicate.
    let ok = c
        .import_envelope(pb::ImportEnvelopeRequest {
            envelope: Some(env.to_proto()),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ok.outcome, "inserted");
    assert_eq!(ok.item_id, env.item_id().to_hex());
    let g = c
        .get(pb::GetRequest {
            id: "to-cert/to-2026-1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(g.source, "import");
    assert_eq!(g.verification.unwrap().signer, "to-cert");
    let dup = c
        .import_envelope(pb::ImportEnvelopeRequest {
            envelope: Some(env.to_proto()),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(dup.outcome, "duplicate");
    drop(c);
    node.stop().await.unwrap();
}

#[tokio::test]
async fn watch_receives_new_updated_withdrawn() {
    let m = member(None);
    let node = start(&m, Some(Arc::new(MemoryStore::new()))).await;
    let mut c = node.client().await;
    let mut stream = c.watch(pb::WatchRequest {}).await.unwrap().into_inner();
    c.publish(publish_req("ws-2026-0100", "a", "192.0.2.10"))
        .await
        .unwrap();
    c.publish(publish_req("ws-2026-0100", "b", "192.0.2.10"))
        .await
        .unwrap();
    c.withdraw(pb::WithdrawRequest {
        id: "ws-2026-0100".into(),
        reason: "done".into(),
    })
    .await
    .unwrap();
    let mut got = Vec::new();
    for _ in 0..3 {
        let ev = stream.message().await.unwrap().unwrap();
        let s = ev.advisory.unwrap();
        got.push((ev.kind, s.revision, s.withdrawn));
    }
    assert_eq!(
        got,
        [
            (pb::WatchEventKind::New as i32, 1, false),
            (pb::WatchEventKind::Updated as i32, 2, false),
            (pb::WatchEventKind::Withdrawn as i32, 3, true),
        ]
    );
    // Shutdown ends the open watch with a clear status instead of hanging.
    drop(c);
    let stopping = tokio::spawn(node.stop());
    let end = stream.message().await.unwrap_err();
    assert_eq!(end.code(), Code::Unavailable);
    assert!(end.message().contains("shutting down"), "{}", end.message());
    stopping.await.unwrap().unwrap();
}

#[tokio::test]
async fn lagging_watcher_gets_an_error_not_silent_loss() {
    let m = member(None);
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let core = Arc::new(NodeCore::new(
        load_identity(&m.config).unwrap(),
        "x",
        [],
        Limits::default(),
        store,
    ));
    let api = OperatorApi::new(
        Arc::clone(&core),
        PathBuf::from("/tmp"),
        CancellationToken::new(),
    );
    use tanoa_proto::v1::operator_server::Operator;
    use tokio_stream::StreamExt;
    let mut stream = api
        .watch(tonic::Request::new(pb::WatchRequest {}))
        .await
        .unwrap()
        .into_inner();
    for n in 0..(crate::publish::EVENT_CAPACITY + 5) {
        core.publish(&draft(&format!("ws-2026-{n:05}"), "x", "192.0.2.3"), "t")
            .await
            .unwrap();
    }
    let first = stream.next().await.unwrap().unwrap_err();
    assert_eq!(first.code(), Code::ResourceExhausted);
    assert!(
        first.message().contains("watch fell behind"),
        "{}",
        first.message()
    );
    assert!(stream.next().await.is_none());
}

#[tokio::test]
async fn health_answers_serving_on_the_socket() {
    let m = member(None);
    let node = start(&m, Some(Arc::new(MemoryStore::new()))).await;
    let channel = client::unix_channel(&node.socket).await.unwrap();
    let mut h = tonic_health::pb::health_client::HealthClient::new(channel);
    for service in ["", "tanoa.v1.Operator"] {
        let r = h
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            r.status,
            tonic_health::pb::health_check_response::ServingStatus::Serving as i32,
            "{service:?}"
        );
    }
    drop(h);
    node.stop().await.unwrap();
}

#[tokio::test]
async fn socket_is_0600_stale_replaced_live_refused() {
    let m = member(None);
    prepare_data_dir(&m.config).unwrap();
    let path = m.config.operator.socket.clone();
    // A stale socket file from a crashed daemon.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777)).unwrap();
    let listener = bind_unix(&path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // No temporary directory is left behind.
    let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".t"))
        .collect();
    assert!(leftovers.is_empty());
    // The listener really is bound at `path`: a second bind sees a live daemon.
    let err = bind_unix(&path).unwrap_err();
    assert!(matches!(err, NodeError::AlreadyRunning { .. }), "{err}");
    assert!(err.to_string().contains("already running"), "{err}");
    drop(listener);
    // A regular file is never removed.
    let file = m.dir.path().join("not-a-socket");
    std::fs::write(&file, "x").unwrap();
    let err = bind_unix(&file).unwrap_err();
    assert!(err.to_string().contains("is not a socket"), "{err}");
    assert!(file.is_file());
}

fn write_client(dir: &Path, name: &str, cert: &TestCert) -> (Vec<u8>, Vec<u8>) {
    std::fs::write(dir.join(format!("{name}.crt")), &cert.cert_pem).unwrap();
    (
        cert.cert_pem.clone().into_bytes(),
        cert.key_pem.clone().into_bytes(),
    )
}

#[tokio::test]
async fn tcp_operator_listener_accepts_only_operator_certs_of_its_ca() {
    let tls = Tls {
        ca: TestCa::new("operator CA"),
    };
    let m = member(Some(&tls));
    let node = start(&m, Some(Arc::new(MemoryStore::new()))).await;
    let addr = node.tcp.unwrap().to_string();
    let ca = tls.ca.pem.as_bytes();

    // An operator certificate: accepted, and the audit log names the operator from it.
    let op = tls.ca.issue(&["tanoa://operator/alice"]);
    let (cert, key) = write_client(m.dir.path(), "alice", &op);
    let mut c = client::connect_tls(&addr, ca, &cert, &key).await.unwrap();
    let st = status(&mut c).await;
    assert_eq!(st.member_id, MEMBER);
    c.publish(publish_req("ws-2026-0200", "over TLS", "192.0.2.20"))
        .await
        .unwrap();
    let audit = c
        .audit(pb::AuditRequest { limit: 1 })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(audit.entries[0].actor, "operator/alice");
    let mut h = tonic_health::pb::health_client::HealthClient::new(
        client::tls_channel(&addr, ca, &cert, &key).await.unwrap(),
    );
    let r = h
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        r.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    // A peer certificate of the same CA: refused.
    let peer = tls.ca.issue(&["tanoa://member/to-cert"]);
    let (cert, key) = write_client(m.dir.path(), "peer", &peer);
    let refused = async {
        let mut c = client::connect_tls(&addr, ca, &cert, &key).await?;
        c.status(pb::StatusRequest {})
            .await
            .map_err(|s| client::ClientError::Connect {
                target: addr.clone(),
                detail: s.to_string(),
                hint: String::new(),
            })
    }
    .await;
    let err = refused
        .expect_err("peer certificate was accepted")
        .to_string();
    assert!(err.contains("AccessDenied"), "{err}");

    // An operator certificate from another CA: refused.
    let other = TestCa::new("rogue CA");
    let rogue = other.issue(&["tanoa://operator/mallory"]);
    let (cert, key) = write_client(m.dir.path(), "mallory", &rogue);
    let refused = async {
        let mut c = client::connect_tls(&addr, ca, &cert, &key).await?;
        c.status(pb::StatusRequest {})
            .await
            .map_err(|s| client::ClientError::Connect {
                target: addr.clone(),
                detail: s.to_string(),
                hint: String::new(),
            })
    }
    .await;
    let err = refused
        .expect_err("certificate of another CA was accepted")
        .to_string();
    assert!(err.contains("UnknownCA"), "{err}");

    // Nothing those clients tried reached the store.
    let st = status(&mut c).await;
    assert_eq!(st.items, 1);
    drop((c, h));
    node.stop().await.unwrap();
}

#[tokio::test]
async fn shutdown_syncs_and_sled_store_reopens_with_the_data() {
    let m = member(None);
    let node = start(&m, None).await;
    let mut c = node.client().await;
    let p = c
        .publish(publish_req("ws-2026-0300", "durable", "192.0.2.30"))
        .await
        .unwrap()
        .into_inner();
    drop(c);
    node.stop().await.unwrap();

    // The clean shutdown checkpointed the store: opening it replays nothing, so sled writes
    // no newer snapshot than the one the shutdown left.
    let snapshots = |dir: &std::path::Path| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("snap."))
            .collect();
        v.sort();
        v
    };
    let store_path = m.config.storage.store_path();
    let after_shutdown = snapshots(&store_path);
    assert!(
        !after_shutdown.is_empty(),
        "no sled snapshot after shutdown"
    );
    let store = SledStore::open(&store_path, &SledConfig::default()).unwrap();
    assert_eq!(
        snapshots(&store_path),
        after_shutdown,
        "the open replayed a log"
    );
    let latest = store.latest(MEMBER, "ws-2026-0300").unwrap().unwrap();
    assert_eq!(latest.item_id.to_hex(), p.item_id);
    drop(store);

    // And a restarted node serves it.
    let node = start(&m, None).await;
    let mut c = node.client().await;
    let g = c
        .get(pb::GetRequest {
            id: "ws-2026-0300".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(g.item_id, p.item_id);
    assert!(g.verification.unwrap().valid);
    drop(c);
    node.stop().await.unwrap();
}

#[test]
fn main_entry_exit_codes() {
    let m = member(None);
    let cfg = m.config.path.display().to_string();
    assert_eq!(
        main_entry(["tanoad", "check-config", "--config", &cfg]),
        ExitCode::from(EXIT_OK)
    );
    let bad = m.dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[member]\nid = \"ws-cert\"\n[storage]\ncahce_mb = 1\n",
    )
    .unwrap();
    let bad = bad.display().to_string();
    assert_eq!(
        main_entry(["tanoad", "check-config", "--config", &bad]),
        ExitCode::from(EXIT_USAGE)
    );
    assert_eq!(
        main_entry(["tanoad", "--config", &bad]),
        ExitCode::from(EXIT_USAGE)
    );
    assert_eq!(
        main_entry(["tanoad", "--bogus"]),
        ExitCode::from(EXIT_USAGE)
    );
    assert_eq!(main_entry(["tanoad", "--help"]), ExitCode::from(EXIT_OK));
    // A key file of another member is a configuration error.
    let other = m.dir.path().join("keys/other.key");
    keys::write_key_file(&other, "to-cert", &keys::generate().unwrap()).unwrap();
    let text = std::fs::read_to_string(&m.config.path)
        .unwrap()
        .replace("keys/ws-cert.key", "keys/other.key");
    let wrong = m.dir.path().join("wrong.toml");
    std::fs::write(&wrong, text).unwrap();
    assert_eq!(
        main_entry([
            "tanoad",
            "check-config",
            "--config",
            &wrong.display().to_string()
        ]),
        ExitCode::from(EXIT_USAGE)
    );
}

/// Roster items (GREEN advisories under `tanoa-roster.`) are not advisories for operators:
/// `List` (every order), `SearchIndicator` and `ExportIndicators` never return one, even when it
/// carries an indicator; `Get` by its id still shows it.
#[tokio::test]
async fn roster_items_are_not_listed_searched_or_exported_but_shown_by_id() {
    let m = member(None);
    let identity = keys::load_key_file(&m.dir.path().join("keys/ws-cert.key")).unwrap();
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let mut carrier = tanoa_core::store::conformance::advisory(
        MEMBER,
        "tanoa-roster.proposal.0123456789abcdef",
        1,
    );
    carrier.title = "Roster carrier with an indicator".into();
    carrier.indicators = vec![tanoa_core::store::conformance::indicator(
        crate::model::IndicatorKind::Ipv4,
        "192.0.2.99",
    )];
    let carrier = identity.sign(carrier, &Limits::default()).unwrap();
    store.put(&carrier, "local", crate::now_ms()).unwrap();
    let r = start(&m, Some(store)).await;
    let mut c = r.client().await;
    c.publish(publish_req("ws-2026-0100", "Plain advisory", "192.0.2.7"))
        .await
        .unwrap();
    for order in [pb::ListOrder::NewestFirst, pb::ListOrder::AdvisoryKey] {
        let l = c
            .list(pb::ListRequest {
                include_withdrawn: true,
                order: order as i32,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let ids: Vec<&str> = l
            .advisories
            .iter()
            .map(|a| a.advisory_id.as_str())
            .collect();
        assert_eq!(ids, ["ws-2026-0100"], "{order:?}");
    }
    for value in ["192.0.2.99", "APT40"] {
        let hits = c
            .search_indicator(pb::SearchIndicatorRequest {
                value: value.into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .hits;
        assert!(
            hits.iter().all(|h| h
                .advisory
                .as_ref()
                .is_none_or(|a| !a.advisory_id.starts_with("tanoa-roster."))),
            "{value}: {hits:?}"
        );
    }
    let mut stream = c
        .export_indicators(pb::ExportIndicatorsRequest {
            include_warninglisted: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut exported = Vec::new();
    while let Some(chunk) = stream.message().await.unwrap() {
        exported.extend(chunk.indicators);
    }
    assert!(!exported.is_empty(), "the plain advisory's indicators");
    assert!(
        exported.iter().all(|e| e
            .advisory
            .as_ref()
            .is_some_and(|a| a.advisory_id == "ws-2026-0100")),
        "{exported:?}"
    );
    let shown = c
        .get(pb::GetRequest {
            id: "tanoa-roster.proposal.0123456789abcdef".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(shown.item_id, carrier.item_id().to_hex());
    r.stop().await.unwrap();
}
