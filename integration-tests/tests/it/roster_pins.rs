//! A member renews its TLS certificate by signed roster updates, with real `tanoad` processes,
//! self-signed certificates pinned in the roster and no CA at all: `set-pins X [old, new]`
//! (2 of 3) reaches every member, X switches to its new certificate files (`tanoa reload`),
//! replication never stops, then `set-pins X [new]` makes every member refuse the old
//! certificate (a connection presenting it fails, counted as `unknown_pin`) while the new one
//! is admitted — and no daemon's process id changes.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tanoa_daemon::config::{Config, FederatedExample, PeerEndpoint};
use tanoa_daemon::keys;
use tanoa_daemon::node::{self, driver};
use tanoa_daemon::transport;
use tanoa_integration_tests::federation::{FAST_SYNC, Federation, holds};
use tanoa_integration_tests::proxy::LinkProxy;
use tanoa_integration_tests::{TestNode, sample_draft};
use tanoa_proto::v1 as pb;

use crate::bins;
use crate::roster::{
    FOUNDERS, Member, on, roster_show, s, sign_founding_roster, tanoa, wait_version,
};

/// The renewing member (to-cert).
const X: usize = 1;

/// A config following `roster.json` (checked by `roster_hash`), pins only (no trust anchors),
/// presenting `cert`/`key` (relative to the member directory).
fn config_text(id: &str, cert: &str, key: &str, roster_hash: &str) -> String {
    let x = FederatedExample {
        member_id: id.to_string(),
        name: format!("Test CERT {id}"),
        key_file: format!("keys/{id}.key"),
        data_dir: "data".into(),
        operator_socket: None,
        peer_listen: "127.0.0.1:0".into(),
        tls_cert: cert.into(),
        tls_key: key.into(),
        trust_anchors: Vec::new(),
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
    text
}

/// `tanoa pki pin CERT`.
async fn pin_of(cert: &Path) -> String {
    let out = tanoa(&["--json", "pki", "pin", &s(cert)]).await;
    out.expect_code(0, "pki pin");
    out.json()["pin"].as_str().unwrap().to_string()
}

/// A metric sample (exact series text), 0 if absent.
async fn metric(node: &TestNode, series: &str) -> u64 {
    node.scrape_metrics()
        .await
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0)
}

/// Dials `server` (member `server_id`) directly with the TLS identity of the config file
/// `config` and makes one peer call; the error text if the connection or the call fails.
async fn dial_with(config: &Path, server_id: &str, server: &TestNode) -> Result<(), String> {
    let cfg = Config::load(config).map_err(|e| format!("{e:?}"))?;
    let tls = node::peer_tls(&cfg, transport::logging_hook())
        .map_err(|e| e.to_string())?
        .ok_or("no [peer]")?;
    let addr = server.started_addr("peer");
    let endpoint = PeerEndpoint {
        host: addr.ip().to_string(),
        port: addr.port(),
    };
    let channel = driver::peer_channel(
        &endpoint,
        tls.client_config(server_id).map_err(|e| e.to_string())?,
        Duration::from_secs(10),
    )?;
    let mut client = driver::peer_client(channel, 1 << 20);
    client
        .fetch(pb::FetchRequest::default())
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

async fn publish(node: &TestNode, id: &str, host: u8) -> String {
    node.client()
        .await
        .publish(pb::PublishRequest {
            draft: Some(sample_draft(id, &format!("Renewal {id}"), host)),
        })
        .await
        .unwrap()
        .into_inner()
        .item_id
}

/// `item` reaches every member of `members`.
async fn everywhere(members: &[Member], item: &str) {
    for m in members {
        let what = format!("{item} on {}", m.node.member());
        Federation::eventually(&what, || holds(&m.node, item)).await;
    }
}

/// `by` proposes `set-pins X pins`, `approver` approves; every member reaches `version`, where
/// X's roster entry lists exactly `pins` (sorted, without the `sha256:` prefix).
async fn set_pins(members: &[Member], by: usize, approver: usize, pins: &[&str], version: u64) {
    let x = FOUNDERS[X];
    let mut args = vec!["--json", "roster", "propose", "set-pins", x];
    for p in pins {
        args.extend(["--pin", p]);
    }
    let out = on(&members[by].node, &args).await;
    out.expect_code(0, "propose set-pins");
    let proposal = out.json()["hash"].as_str().unwrap().to_string();
    assert_eq!(out.json()["required"], 2);
    let node = &members[approver].node;
    Federation::eventually("the set-pins proposal pending on the approver", || async {
        roster_show(node).await["pending"][0]["hash"] == proposal.as_str()
    })
    .await;
    on(node, &["roster", "approve", &proposal[..16]])
        .await
        .expect_code(0, "approve set-pins");
    let all: Vec<&Member> = members.iter().collect();
    wait_version(&all, version).await;
    let mut want: Vec<String> = pins
        .iter()
        .map(|p| p.trim_start_matches("sha256:").to_string())
        .collect();
    want.sort();
    for m in members {
        let show = roster_show(&m.node).await;
        let entry = show["roster"]["roster"]["members"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["id"] == x)
            .cloned()
            .unwrap();
        assert_eq!(entry["tls_pins"], serde_json::json!(want), "{show}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::too_many_lines)]
async fn a_member_renews_its_certificate_by_roster_updates_without_downtime() {
    transport::install_crypto_provider();
    let mut targets = Vec::new();
    let mut proxies = Vec::new();
    for _ in 0..3 {
        let t = Arc::new(Mutex::new(None));
        proxies.push(LinkProxy::start(Arc::clone(&t)).await.unwrap());
        targets.push(t);
    }
    // Founding with self-signed certificates: each join request carries its pin.
    let work = tempfile::tempdir().unwrap();
    let mut dirs = Vec::new();
    let mut requests = Vec::new();
    for (i, id) in FOUNDERS.iter().enumerate() {
        let dir = tempfile::Builder::new()
            .prefix("tanoa-renew-")
            .tempdir()
            .unwrap();
        std::fs::create_dir_all(dir.path().join("keys")).unwrap();
        let key = keys::generate().unwrap();
        let key_path = dir.path().join(format!("keys/{id}.key"));
        keys::write_key_file(&key_path, id, &key).unwrap();
        let cert = tanoa_pki::self_signed_member(id, 2).unwrap();
        std::fs::write(dir.path().join("member.pem"), &cert.cert_pem).unwrap();
        tanoa_pki::write_private_pem(&dir.path().join("member.key"), &cert.key_pem).unwrap();
        let pin = pin_of(&dir.path().join("member.pem")).await;
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
            &s(&key_path),
            "--tls-pin",
            &pin,
            "-o",
            &s(&req),
        ])
        .await
        .expect_code(0, "member request");
        requests.push(s(&req));
        dirs.push(dir);
    }
    let roster = work.path().join("roster.json");
    let keys: Vec<PathBuf> = dirs
        .iter()
        .zip(FOUNDERS)
        .map(|(d, id)| d.path().join(format!("keys/{id}.key")))
        .collect();
    let hash = sign_founding_roster(&roster, "pacific-renewal", &requests, &keys).await;
    let mut members = Vec::new();
    for (i, dir) in dirs.into_iter().enumerate() {
        std::fs::copy(&roster, dir.path().join("roster.json")).unwrap();
        let config = dir.path().join("tanoad.toml");
        let text = config_text(FOUNDERS[i], "member.pem", "member.key", &hash);
        assert!(!text.contains("trust_anchors"), "pins only, no CA:\n{text}");
        std::fs::write(&config, text).unwrap();
        let mut node = TestNode::adopt(&bins().tanoad, dir, config);
        node.set_args(&["--log-format", "json"]);
        node.start().await;
        *targets[i].lock().unwrap() = Some(node.started_addr("peer"));
        members.push(Member { node });
    }
    let pids: Vec<Option<u32>> = members.iter().map(|m| m.node.pid()).collect();
    let all: Vec<&Member> = members.iter().collect();
    wait_version(&all, 1).await;
    let a = publish(&members[X].node, "to-2026-r1", 61).await;
    everywhere(&members, &a).await;

    // X keeps its old certificate aside (to show later it is refused) and makes a new one.
    let xdir = members[X].node.dir().to_path_buf();
    std::fs::copy(xdir.join("member.pem"), xdir.join("old.pem")).unwrap();
    std::fs::copy(xdir.join("member.key"), xdir.join("old.key")).unwrap();
    let old = pin_of(&xdir.join("member.pem")).await;
    tanoa(&[
        "pki",
        "self-signed",
        "--member",
        FOUNDERS[X],
        "--out",
        &s(&xdir.join("renewed")),
    ])
    .await
    .expect_code(0, "pki self-signed");
    let new_pem = xdir.join(format!("renewed/members/{}.pem", FOUNDERS[X]));
    let new_key = xdir.join(format!("renewed/members/{}.key", FOUNDERS[X]));
    let new = pin_of(&new_pem).await;
    assert_ne!(old, new);
    // Client configs presenting the old and the new certificate (for direct dials).
    let dial_old = xdir.join("dial-old.toml");
    let dial_new = xdir.join("dial-new.toml");
    std::fs::write(
        &dial_old,
        config_text(FOUNDERS[X], "old.pem", "old.key", &hash),
    )
    .unwrap();
    std::fs::write(
        &dial_new,
        config_text(
            FOUNDERS[X],
            "renewed/members/to-cert.pem",
            "renewed/members/to-cert.key",
            &hash,
        ),
    )
    .unwrap();
    // Before the renewal, the new certificate is nobody's: ws-cert refuses it.
    let ws = &members[0].node;
    dial_with(&dial_new, FOUNDERS[0], ws)
        .await
        .expect_err("the new certificate before set-pins");
    dial_with(&dial_old, FOUNDERS[0], ws)
        .await
        .expect("the old certificate before set-pins");

    // A malformed pin is refused by the CLI; an empty list by clap.
    let out = on(
        ws,
        &[
            "roster",
            "propose",
            "set-pins",
            FOUNDERS[X],
            "--pin",
            "sha256:12",
        ],
    )
    .await;
    out.expect_code(2, "set-pins with a malformed pin");
    assert!(out.stderr.contains("--pin"), "{}", out.stderr);
    let out = on(ws, &["roster", "propose", "set-pins", FOUNDERS[X]]).await;
    assert_ne!(out.code, Some(0), "set-pins without a pin");
    assert_eq!(roster_show(ws).await["version"], 1);

    // 1. set-pins X [old, new]: ws-cert proposes, fj-cert approves; version 2 everywhere.
    set_pins(&members, 0, 2, &[&old, &new], 2).await;
    let b = publish(&members[0].node, "ws-2026-r2", 62).await;
    everywhere(&members, &b).await;
    // Both certificates are admitted now.
    dial_with(&dial_new, FOUNDERS[0], ws)
        .await
        .expect("the new certificate under [old, new]");
    dial_with(&dial_old, FOUNDERS[0], ws)
        .await
        .expect("the old certificate under [old, new]");

    // 2. X switches to its new certificate files; TLS files are re-read live.
    std::fs::copy(&new_pem, xdir.join("member.pem.new")).unwrap();
    std::fs::copy(&new_key, xdir.join("member.key.new")).unwrap();
    std::fs::rename(xdir.join("member.pem.new"), xdir.join("member.pem")).unwrap();
    std::fs::rename(xdir.join("member.key.new"), xdir.join("member.key")).unwrap();
    let out = on(&members[X].node, &["reload"]).await;
    out.expect_code(0, "tanoa reload");
    assert!(out.stdout.contains("peer.tls_cert"), "{}", out.stdout);
    assert!(
        members[X]
            .node
            .logs()
            .contains("peer TLS certificate replaced")
    );
    let c = publish(&members[X].node, "to-2026-r3", 63).await;
    everywhere(&members, &c).await;
    let d = publish(&members[2].node, "fj-2026-r4", 64).await;
    everywhere(&members, &d).await;

    // 3. set-pins X [new]: to-cert itself proposes, ws-cert approves; version 3 everywhere.
    let refused_before = metric(ws, "tanoa_peer_refusals_total{reason=\"unknown_pin\"}").await;
    set_pins(&members, X, 0, &[&new], 3).await;
    // Replication continues both ways over connections presenting the new certificate.
    let e = publish(&members[X].node, "to-2026-r5", 65).await;
    everywhere(&members, &e).await;
    let f = publish(&members[0].node, "ws-2026-r6", 66).await;
    everywhere(&members, &f).await;
    // The old certificate is refused; the new one is admitted.
    let err = dial_with(&dial_old, FOUNDERS[0], ws)
        .await
        .expect_err("the old certificate after set-pins [new]");
    assert!(!err.is_empty());
    Federation::eventually(
        "ws-cert to count the old certificate as unknown_pin",
        || async {
            metric(ws, "tanoa_peer_refusals_total{reason=\"unknown_pin\"}").await > refused_before
        },
    )
    .await;
    dial_with(&dial_new, FOUNDERS[0], ws)
        .await
        .expect("the new certificate after set-pins [new]");
    let fj = &members[2].node;
    dial_with(&dial_old, FOUNDERS[2], fj)
        .await
        .expect_err("fj-cert refuses the old certificate too");

    // `roster diff` names the two pin changes.
    let hex = |p: &str| serde_json::json!([p.trim_start_matches("sha256:")]);
    let diff = on(ws, &["--json", "roster", "diff", "1", "2"]).await.json();
    assert_eq!(diff["changed"][0]["member"], FOUNDERS[X], "{diff}");
    assert_eq!(diff["changed"][0]["pins_added"], hex(&new), "{diff}");
    assert_eq!(
        diff["changed"][0]["pins_removed"],
        serde_json::json!([]),
        "{diff}"
    );
    let diff = on(ws, &["--json", "roster", "diff", "2", "3"]).await.json();
    assert_eq!(diff["changed"][0]["pins_removed"], hex(&old), "{diff}");
    assert_eq!(
        diff["changed"][0]["pins_added"],
        serde_json::json!([]),
        "{diff}"
    );

    // Nobody restarted.
    let after: Vec<Option<u32>> = members.iter().map(|m| m.node.pid()).collect();
    assert_eq!(pids, after);
    assert!(pids.iter().all(Option::is_some));
}
