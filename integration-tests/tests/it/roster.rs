//! The signed roster with real `tanoad` processes: three founders found version 1 with the
//! CLI (`tanoa member request`, `roster init`, `roster sign`, `roster hash`), start from the
//! roster file checked by hash, then a fourth member joins by a 2-of-3 approval and a key
//! revocation reaches every member — without any daemon restarting (pids never change).
//!
//! ck-cert then starts from version 2 (checked by hash), the running founders connect with it
//! receives what was published before it joined.
//! The others accept ck-cert's items (its envelope imported on one member is verified with the
//! roster's new keyring and replicates to the others) and refuse the items its revoked key
//! signs after the revocation.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tanoa_core::envelope::SigningIdentity;
use tanoa_core::model::{Advisory, Limits, Severity, Tlp};
use tanoa_daemon::config::{Config, FederatedExample};
use tanoa_daemon::keys;
use tanoa_integration_tests::federation::{FAST_SYNC, Federation, holds};
use tanoa_integration_tests::proxy::LinkProxy;
use tanoa_integration_tests::{RunOutput, TestNode, run_command, sample_draft};
use tanoa_pki::Ca;
use tanoa_proto::v1 as pb;

use crate::bins;

pub(crate) const FOUNDERS: [&str; 3] = ["ws-cert", "to-cert", "fj-cert"];

pub(crate) async fn tanoa(args: &[&str]) -> RunOutput {
    run_command(&bins().tanoa, args).await
}

pub(crate) async fn on(node: &TestNode, args: &[&str]) -> RunOutput {
    let mut all = vec!["--socket", node.socket_path().to_str().unwrap()];
    all.extend_from_slice(args);
    tanoa(&all).await
}

pub(crate) fn s(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

/// Founds a federation the way the guide does: `roster init` (threshold 2) of `requests` into
/// `roster`, then every founder signs it with `--expect` the hash. Returns the hash.
pub(crate) async fn sign_founding_roster(
    roster: &Path,
    federation: &str,
    requests: &[String],
    keys: &[PathBuf],
) -> String {
    let roster_s = s(roster);
    let mut init = vec![
        "roster",
        "init",
        "--federation",
        federation,
        "--threshold",
        "2",
        "-o",
        &roster_s,
    ];
    init.extend(requests.iter().map(String::as_str));
    tanoa(&init).await.expect_code(0, "roster init");
    let hash = tanoa(&["--json", "roster", "hash", &roster_s]).await.json()["hash"]
        .as_str()
        .unwrap()
        .to_string();
    for key in keys {
        tanoa(&[
            "roster",
            "sign",
            &roster_s,
            "--expect",
            &hash,
            "--signing-key",
            &s(key),
        ])
        .await
        .expect_code(0, "roster sign");
    }
    hash
}

pub(crate) async fn roster_show(node: &TestNode) -> serde_json::Value {
    let out = on(node, &["--json", "roster", "show"]).await;
    out.expect_code(0, "roster show");
    out.json()
}

/// A member directory with key, certificate and a config following `roster.json` (whose hash
/// is filled in later), its peer port behind `proxy`.
pub(crate) struct Member {
    pub(crate) node: TestNode,
}

pub(crate) fn member_dir(ca: &Ca, id: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::Builder::new()
        .prefix("tanoa-roster-")
        .tempdir()
        .unwrap();
    std::fs::create_dir_all(dir.path().join("keys")).unwrap();
    let key = keys::generate().unwrap();
    let key_path = dir.path().join(format!("keys/{id}.key"));
    keys::write_key_file(&key_path, id, &key).unwrap();
    let cert = ca.issue_member(id, 2).unwrap();
    std::fs::write(dir.path().join("member.pem"), &cert.cert_pem).unwrap();
    tanoa_pki::write_private_pem(&dir.path().join("member.key"), &cert.key_pem).unwrap();
    std::fs::write(dir.path().join("ca.pem"), ca.cert_pem()).unwrap();
    (dir, key_path)
}

pub(crate) fn write_config(dir: &Path, id: &str, roster_hash: &str) -> PathBuf {
    let x = FederatedExample {
        member_id: id.to_string(),
        name: format!("Test CERT {id}"),
        key_file: format!("keys/{id}.key"),
        data_dir: "data".into(),
        operator_socket: None,
        peer_listen: "127.0.0.1:0".into(),
        tls_cert: "member.pem".into(),
        tls_key: "member.key".into(),
        trust_anchors: vec!["ca.pem".into()],
        metrics_listen: Some("127.0.0.1:0".into()),
        sync: FAST_SYNC
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect(),
        members: Vec::new(),
    };
    let mut text = Config::example_federated(&x);
    text.push_str(&format!(
        "\n[roster]\nfile = \"roster.json\"\nsha256 = \"{roster_hash}\"\n"
    ));
    let config = dir.join("tanoad.toml");
    std::fs::write(&config, text).unwrap();
    config
}

/// An envelope signed by `identity`, GREEN, dated `modified_ms`.
pub(crate) fn envelope(identity: &SigningIdentity, id: &str, modified_ms: i64) -> pb::Envelope {
    let a = Advisory {
        id: id.into(),
        origin: identity.member().into(),
        revision: 1,
        created_ms: modified_ms,
        modified_ms,
        valid_until_ms: None,
        tlp: Tlp::Green,
        audience: vec![],
        title: format!("{id} from the newest member"),
        summary: "Integration-test advisory of the joining member.".into(),
        severity: Severity::Medium,
        actors: vec![],
        cves: vec![],
        indicators: vec![],
        references: vec![],
        withdrawn: false,
        withdrawn_reason: String::new(),
        extras: vec![],
    };
    identity
        .sign(a, &Limits::default())
        .unwrap()
        .envelope()
        .to_proto()
}

pub(crate) async fn import(node: &TestNode, env: pb::Envelope) -> Result<(), tonic::Status> {
    node.client()
        .await
        .import_envelope(pb::ImportEnvelopeRequest {
            envelope: Some(env),
        })
        .await
        .map(|_| ())
}

pub(crate) async fn wait_version(members: &[&Member], version: u64) {
    for m in members {
        Federation::eventually(
            &format!("{} at roster version {version}", m.node.member()),
            || async { roster_show(&m.node).await["version"] == version },
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fourth_member_joins_by_two_of_three_and_a_revocation_reaches_everyone_without_restarts()
{
    tanoa_daemon::transport::install_crypto_provider();
    let ca = Ca::new("Roster test CA", 2).unwrap();
    // One stable endpoint per member (a proxy pointed at its OS-chosen peer port once started).
    let mut targets = Vec::new();
    let mut proxies = Vec::new();
    for _ in 0..4 {
        let t = Arc::new(Mutex::new(None));
        proxies.push(LinkProxy::start(Arc::clone(&t)).await.unwrap());
        targets.push(t);
    }
    // Founding: each founder writes a join request, one builds version 1, each signs it.
    let work = tempfile::tempdir().unwrap();
    let mut dirs = Vec::new();
    let mut requests = Vec::new();
    for (i, id) in FOUNDERS.iter().enumerate() {
        let (dir, key) = member_dir(&ca, id);
        let req = work.path().join(format!("{id}.request.json"));
        tanoa(&[
            "member",
            "request",
            "--id",
            id,
            "--name",
            &format!("Test CERT {id}"),
            "--peer-endpoint",
            &proxies[i].addr().to_string(),
            "--signing-key",
            &s(&key),
            "-o",
            &s(&req),
        ])
        .await
        .expect_code(0, "member request");
        requests.push(s(&req));
        dirs.push((dir, key));
    }
    let roster = work.path().join("roster.json");
    let mut init = vec![
        "roster",
        "init",
        "--federation",
        "pacific-test",
        "--threshold",
        "2",
        "-o",
    ];
    let roster_s = s(&roster);
    init.push(&roster_s);
    init.extend(requests.iter().map(String::as_str));
    tanoa(&init).await.expect_code(0, "roster init");
    let hash = tanoa(&["--json", "roster", "hash", &roster_s]).await.json()["hash"]
        .as_str()
        .unwrap()
        .to_string();
    // A founder who checked another hash refuses to sign.
    tanoa(&[
        "roster",
        "sign",
        &roster_s,
        "--expect",
        &"0".repeat(64),
        "--signing-key",
        &s(&dirs[0].1),
    ])
    .await
    .expect_code(1, "sign with a wrong expected hash");
    for (_, key) in &dirs {
        tanoa(&[
            "roster",
            "sign",
            &roster_s,
            "--expect",
            &hash,
            "--signing-key",
            &s(key),
        ])
        .await
        .expect_code(0, "roster sign");
    }
    let mut members = Vec::new();
    for (i, (dir, _)) in dirs.into_iter().enumerate() {
        std::fs::copy(&roster, dir.path().join("roster.json")).unwrap();
        let config = write_config(dir.path(), FOUNDERS[i], &hash);
        let mut node = TestNode::adopt(&bins().tanoad, dir, config);
        node.set_args(&["--log-format", "json"]);
        node.start().await;
        *targets[i].lock().unwrap() = Some(node.started_addr("peer"));
        members.push(Member { node });
    }
    let pids: Vec<Option<u32>> = members.iter().map(|m| m.node.pid()).collect();
    let all: Vec<&Member> = members.iter().collect();
    wait_version(&all, 1).await;
    let status = on(&members[0].node, &["--json", "status"]).await.json();
    assert_eq!(status["roster"]["version"], 1, "{status}");
    assert_eq!(status["roster"]["hash"], hash.as_str());

    // A GREEN advisory flows over the roster's endpoints.
    let green = members[0]
        .node
        .client()
        .await
        .publish(pb::PublishRequest {
            draft: Some(sample_draft("ws-2026-0901", "Green before the join", 91)),
        })
        .await
        .unwrap()
        .into_inner();
    for m in &members {
        Federation::eventually("the GREEN advisory everywhere", || {
            holds(&m.node, &green.item_id)
        })
        .await;
    }

    // ck-cert asks to join; its items are unknown to the federation until it is in.
    let (ck_dir, ck_key_path) = member_dir(&ca, "ck-cert");
    let ck = keys::load_key_file(&ck_key_path).unwrap();
    let ck_req = work.path().join("ck.request.json");
    tanoa(&[
        "member",
        "request",
        "--id",
        "ck-cert",
        "--name",
        "Cook Islands CERT",
        "--peer-endpoint",
        &proxies[3].addr().to_string(),
        "--signing-key",
        &s(&ck_key_path),
        "-o",
        &s(&ck_req),
    ])
    .await
    .expect_code(0, "ck member request");
    let now = tanoa_daemon::now_ms();
    let early = envelope(&ck, "ck-2026-0001", now);
    let refused = import(&members[1].node, early.clone()).await.unwrap_err();
    assert!(refused.message().contains("unknown_key"), "{refused:?}");

    // A tampered join request is refused by the CLI before anything is proposed.
    let mut bad: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&ck_req).unwrap()).unwrap();
    bad["endpoints"] = serde_json::json!(["203.0.113.7:7400"]);
    let bad_req = work.path().join("bad.request.json");
    std::fs::write(&bad_req, bad.to_string()).unwrap();
    let out = on(
        &members[0].node,
        &["roster", "propose", "add", &s(&bad_req)],
    )
    .await;
    out.expect_code(2, "propose a tampered join request");

    // ws-cert proposes; the proposal reaches every member as a pending proposal.
    let out = on(
        &members[0].node,
        &["--json", "roster", "propose", "add", &s(&ck_req)],
    )
    .await;
    out.expect_code(0, "propose add");
    let proposal = out.json()["hash"].as_str().unwrap().to_string();
    assert_eq!(out.json()["required"], 2);
    for m in &members {
        Federation::eventually("the proposal pending everywhere", || async {
            roster_show(&m.node).await["pending"][0]["hash"] == proposal.as_str()
        })
        .await;
    }
    assert_eq!(
        roster_show(&members[2].node).await["version"],
        1,
        "one signature is not enough"
    );
    // to-cert approves (2 of 3): every member applies version 2.
    on(&members[1].node, &["roster", "approve", &proposal[..16]])
        .await
        .expect_code(0, "approve");
    wait_version(&all, 2).await;
    for m in &members {
        let show = roster_show(&m.node).await;
        let ids: Vec<&str> = show["roster"]["roster"]["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["ck-cert", "fj-cert", "to-cert", "ws-cert"], "{show}");
        assert!(show["pending"].as_array().unwrap().is_empty(), "{show}");
    }
    // The others now accept ck-cert's items: imported on to-cert, it replicates to all.
    import(&members[1].node, early).await.unwrap();
    for m in &members {
        Federation::eventually("ck-cert's advisory everywhere", || {
            holds(&m.node, "ck-cert/ck-2026-0001")
        })
        .await;
    }

    // ck-cert starts from version 2 (a roster file it got from a member, checked by its hash):
    // the running founders connect with it and it receives what was published before it joined.
    let v2 = roster_show(&members[2].node).await;
    std::fs::write(
        ck_dir.path().join("roster.json"),
        serde_json::to_string_pretty(&v2["roster"]).unwrap(),
    )
    .unwrap();
    let ck_config = write_config(ck_dir.path(), "ck-cert", v2["hash"].as_str().unwrap());
    let mut ck_node = TestNode::adopt(&bins().tanoad, ck_dir, ck_config);
    ck_node.set_args(&["--log-format", "json"]);
    ck_node.start().await;
    *targets[3].lock().unwrap() = Some(ck_node.started_addr("peer"));
    for id in [green.item_id.as_str(), "ck-cert/ck-2026-0001"] {
        Federation::eventually("what was published before the join on ck-cert", || {
            holds(&ck_node, id)
        })
        .await;
    }
    assert_eq!(roster_show(&ck_node).await["version"], 2);

    // A second item of ck-cert, dated t1, reaches everyone before the revocation.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let t1 = tanoa_daemon::now_ms();
    let second = envelope(&ck, "ck-2026-0002", t1);
    let second_id = tanoa_core::envelope::ItemId::of_payload(&second.payload).to_hex();
    import(&members[0].node, second.clone()).await.unwrap();
    // ck-cert included: an item reaching it only after the revocation is refused there (signed
    // by a key revoked as of its date), so it would have nothing to drop.
    let everyone: Vec<&TestNode> = members.iter().map(|m| &m.node).chain([&ck_node]).collect();
    for n in &everyone {
        Federation::eventually("ck-cert's second advisory everywhere", || {
            holds(n, "ck-cert/ck-2026-0002")
        })
        .await;
    }
    // Revocation of ck-cert's key as of t1: ws proposes, fj approves; it reaches everyone.
    let as_of = t1;
    let ck_pub = keys::public_hex(&ck.verifying_key());
    let out = on(
        &members[0].node,
        &[
            "--json",
            "roster",
            "propose",
            "revoke",
            "ck-cert",
            "--revoke",
            &ck_pub,
            "--as-of",
            &as_of.to_string(),
        ],
    )
    .await;
    out.expect_code(0, "propose revoke");
    let revoke = out.json()["hash"].as_str().unwrap().to_string();
    for m in &members {
        Federation::eventually("the revocation pending everywhere", || async {
            roster_show(&m.node).await["pending"][0]["hash"] == revoke.as_str()
        })
        .await;
    }
    on(&members[2].node, &["roster", "approve", &revoke])
        .await
        .expect_code(0, "approve revoke");
    wait_version(&all, 3).await;
    for m in &members {
        let show = roster_show(&m.node).await;
        let ck_entry = show["roster"]["roster"]["members"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["id"] == "ck-cert")
            .cloned()
            .unwrap();
        assert_eq!(ck_entry["keys"][0]["revoked_as_of_ms"], as_of, "{show}");
    }
    // Every member refuses what the revoked key signs from then on; the earlier item stays.
    for m in &members {
        let late = envelope(&ck, &format!("ck-2026-late-{}", m.node.member()), as_of + 1);
        let refused = import(&m.node, late).await.unwrap_err();
        assert!(refused.message().contains("key_not_valid"), "{refused:?}");
        assert!(holds(&m.node, "ck-cert/ck-2026-0001").await);
    }
    // The item dated at the revocation instant, held before it, is dropped from the store on
    // every member (ck-cert included) with one audit record each; the earlier one stays.
    let nodes: Vec<&TestNode> = members.iter().map(|m| &m.node).chain([&ck_node]).collect();
    for n in &nodes {
        Federation::eventually("the roster-drop audit record", || async {
            let audit = n
                .client()
                .await
                .audit(pb::AuditRequest { limit: 1000 })
                .await
                .unwrap()
                .into_inner();
            let dropped: Vec<(String, String, String)> = audit
                .entries
                .iter()
                .filter(|e| e.action == "roster-drop")
                .map(|e| (e.subject.clone(), e.item_id.clone(), e.detail.clone()))
                .collect();
            matches!(dropped.as_slice(), [(subject, item, detail)]
                if subject == "ck-cert/ck-2026-0002"
                    && *item == second_id
                    && detail.contains("roster version 3")
                    && detail.contains(&format!("revoked as of {as_of}")))
        })
        .await;
    }
    for n in &nodes {
        let who = n.member();
        assert!(!holds(n, "ck-cert/ck-2026-0002").await, "{who}");
        assert!(!holds(n, &second_id).await, "{who}: get by item id");
        assert!(holds(n, "ck-cert/ck-2026-0001").await, "{who}");
        on(n, &["show", "ck-cert/ck-2026-0002"])
            .await
            .expect_code(1, "show of a dropped advisory");
        let stix = n.dir().join("after-revocation.stix.json");
        let mut seen = String::new();
        for args in [
            vec!["--json", "list", "--withdrawn"],
            vec![
                "export",
                "--format",
                "stix",
                "--include-withdrawn",
                "-o",
                &s(&stix),
            ],
        ] {
            let out = on(n, &args).await;
            out.expect_code(0, &args.join(" "));
            seen.push_str(&out.stdout);
        }
        seen.push_str(&std::fs::read_to_string(&stix).unwrap());
        assert!(seen.contains("ck-2026-0001"), "{who}: {seen}");
        assert!(!seen.contains("ck-2026-0002"), "{who}: {seen}");
        let metrics = n.scrape_metrics().await;
        assert!(
            metrics.contains("tanoa_roster_dropped_items_total 1"),
            "{who}: {metrics}"
        );
        // A late re-delivery of the dropped item is refused.
        let refused = import(n, second.clone()).await.unwrap_err();
        assert!(
            refused.message().contains("key_not_valid"),
            "{who}: {refused:?}"
        );
    }
    // The sync index follows the store: every item is GREEN, so each peer's reconciliation set
    // is every item held; an index that kept the dropped item would count one more.
    for n in &nodes {
        Federation::eventually("reconciliation sets equal to the items held", || async {
            let mut c = n.client().await;
            let items = c
                .status(pb::StatusRequest {})
                .await
                .unwrap()
                .into_inner()
                .items;
            let peers = c
                .peers(pb::PeersRequest {})
                .await
                .unwrap()
                .into_inner()
                .peers;
            !peers.is_empty() && peers.iter().all(|p| p.reconcile_set_size == items)
        })
        .await;
    }
    for m in &members {
        let metrics = m.node.scrape_metrics().await;
        assert!(metrics.contains("tanoa_roster_version 3"), "{metrics}");
        assert!(metrics.contains("tanoa_roster_fork 0"), "{metrics}");
    }
    // History and diff show the three versions.
    let hist = on(&members[2].node, &["--json", "roster", "history"])
        .await
        .json();
    assert_eq!(hist.as_array().unwrap().len(), 3, "{hist}");
    let diff = on(&members[2].node, &["--json", "roster", "diff", "1", "2"])
        .await
        .json();
    assert_eq!(diff["added"], serde_json::json!(["ck-cert"]), "{diff}");

    // Nobody restarted.
    let after: Vec<Option<u32>> = members.iter().map(|m| m.node.pid()).collect();
    assert_eq!(pids, after);
    assert!(pids.iter().all(Option::is_some));
    drop(ck_node);
}
