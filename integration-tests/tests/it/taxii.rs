//! The TAXII 2.1 endpoint of a real `tanoad`, read by the independent client (`taxii2-client`
//! from PyPI, `integration-tests/interop/check_taxii.py`) exactly as it reads medallion, the
//! OASIS reference server, in the same run.
//!
//! The daemon publishes CLEAR, GREEN, AMBER, AMBER+STRICT and RED advisories (one revised, one
//! withdrawn, one with 10,000 indicators so that 10,000 objects share one `date_added`); the
//! expectations are computed here with `interop::stix::advisory_objects` over the stored
//! envelopes: exactly those objects per collection, RED nowhere.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use tanoa_daemon::model::Tlp;
use tanoa_integration_tests::interop::{run_script, testdata};
use tanoa_integration_tests::{TestNode, run_command, sample_draft, verify_envelope};
use tanoa_proto::v1 as pb;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::bins;

/// (client name, token, collections).
const CLIENTS: [(&str, &str, &[&str]); 3] = [
    ("siem", "it-siem-token-4d1f8a", &["clear", "green"]),
    ("clear-reader", "it-clear-token-93be2c", &["clear"]),
    ("soc", "it-soc-token-7a0e51", &["clear", "green", "amber"]),
];

fn taxii_config(listen: &str) -> String {
    let mut s = format!("[taxii]\nlisten = \"{listen}\"\nmax_page = 1000\n");
    for (name, token, colls) in CLIENTS {
        let hash = hex::encode(Sha256::digest(token.as_bytes()));
        let colls: Vec<String> = colls.iter().map(|c| format!("\"{c}\"")).collect();
        s.push_str(&format!(
            "[[taxii.clients]]\nname = \"{name}\"\ntoken_sha256 = \"{hash}\"\ncollections = [{}]\n",
            colls.join(", ")
        ));
    }
    s
}

fn draft(id: &str, tlp: pb::Tlp, host: u8) -> pb::AdvisoryDraft {
    let mut d = sample_draft(id, &format!("TAXII test {id}"), host);
    d.tlp = tlp as i32;
    if matches!(tlp, pb::Tlp::Amber | pb::Tlp::AmberStrict | pb::Tlp::Red) {
        d.audience = vec!["to-cert".into()];
    }
    d
}

/// A GREEN advisory with `n` domain indicators.
fn bulk_draft(id: &str, n: usize) -> pb::AdvisoryDraft {
    let mut d = draft(id, pb::Tlp::Green, 200);
    d.indicators = (0..n)
        .map(|k| pb::Indicator {
            kind: pb::IndicatorKind::Domain as i32,
            value: format!("h{k:05}.bulk.apt40.example"),
            confidence: 60,
            ..Default::default()
        })
        .collect();
    d
}

fn version_of(o: &Value) -> String {
    o.get("modified")
        .or_else(|| o.get("created"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// GET over plain HTTP/1.1 with a bearer token; (status, body).
async fn http_get(addr: SocketAddr, path: &str, token: &str) -> (u16, Value) {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Accept: application/taxii+json;version=2.1\r\nConnection: close\r\n\r\n"
    );
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), tcp.read_to_end(&mut buf))
        .await
        .expect("TAXII answered within 30 s")
        .unwrap();
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    // Chunked or not, the body of these small answers is one JSON document.
    let json_text = body
        .find('{')
        .and_then(|s| body.rfind('}').map(|e| &body[s..=e]))
        .unwrap_or("null");
    (
        status,
        serde_json::from_str(json_text).unwrap_or(Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taxii2_client_reads_every_collection_like_it_reads_medallion() {
    let mut node = TestNode::create(&bins().tanoad, "ws-cert", &taxii_config("127.0.0.1:0"));
    node.set_args(&["--log-format", "json"]);
    node.start().await;
    let addr = node.started_addr("taxii");
    let mut c = node.client().await;

    // CLEAR (revised, then another withdrawn), GREEN, AMBER, AMBER+STRICT, RED, and the bulk
    // GREEN advisory: 10,000 indicators stored in one item, so one received_ms.
    let mut items: Vec<String> = Vec::new();
    let publish = |d: pb::AdvisoryDraft| {
        let mut c = c.clone();
        async move {
            c.publish(pb::PublishRequest { draft: Some(d) })
                .await
                .unwrap()
                .into_inner()
                .item_id
        }
    };
    items.push(publish(draft("it-clear-1", pb::Tlp::Clear, 11)).await);
    items.push(publish(draft("it-clear-1", pb::Tlp::Clear, 12)).await);
    items.push(publish(draft("it-clear-2", pb::Tlp::Clear, 13)).await);
    items.push(publish(draft("it-green-1", pb::Tlp::Green, 21)).await);
    items.push(publish(draft("it-amber-1", pb::Tlp::Amber, 31)).await);
    items.push(publish(draft("it-strict-1", pb::Tlp::AmberStrict, 32)).await);
    let red_item = publish(draft("it-red-1", pb::Tlp::Red, 41)).await;
    items.push(red_item.clone());
    items.push(publish(bulk_draft("it-bulk-1", 10_000)).await);
    let w = c
        .withdraw(pb::WithdrawRequest {
            id: "it-clear-2".into(),
            reason: "test: withdrawn advisories stay as revoked versions".into(),
        })
        .await
        .unwrap()
        .into_inner();
    items.push(w.item_id);

    // Expectations from the stored envelopes, with the daemon's own STIX conversion.
    let keyring = node.keyring();
    let mut latest: BTreeMap<&str, BTreeMap<String, String>> = BTreeMap::new();
    let mut all: BTreeMap<&str, BTreeSet<(String, String)>> = BTreeMap::new();
    let mut red_ids = BTreeSet::new();
    let mut other_ids = BTreeSet::new();
    let mut withdrawn_report = None;
    let mut report_versions: Vec<String> = Vec::new();
    for item in &items {
        let got = c
            .get(pb::GetRequest { id: item.clone() })
            .await
            .unwrap()
            .into_inner();
        let env = got.envelope.unwrap();
        let v = verify_envelope(&env, &keyring).unwrap();
        let adv = v.value().clone();
        let objects = tanoa_daemon::interop::stix::advisory_objects(
            &adv,
            &tanoa_daemon::envelope::Envelope::from_proto(env),
        );
        for o in &objects {
            let id = o["id"].as_str().unwrap().to_string();
            if adv.tlp == Tlp::Red {
                red_ids.insert(id.clone());
                continue;
            }
            other_ids.insert(id.clone());
            if o["type"] == "report" && adv.id == "it-clear-2" {
                withdrawn_report = Some(id.clone());
                report_versions.push(version_of(o));
            }
            for (alias, tlps) in [
                ("clear", &[Tlp::Clear][..]),
                ("green", &[Tlp::Clear, Tlp::Green][..]),
                (
                    "amber",
                    &[Tlp::Clear, Tlp::Green, Tlp::Amber, Tlp::AmberStrict][..],
                ),
            ] {
                if tlps.contains(&adv.tlp) {
                    let ver = version_of(o);
                    let e = latest
                        .entry(alias)
                        .or_default()
                        .entry(id.clone())
                        .or_insert_with(|| ver.clone());
                    if ver > *e {
                        *e = ver.clone();
                    }
                    all.entry(alias).or_default().insert((id.clone(), ver));
                }
            }
        }
    }
    let red_only: Vec<String> = red_ids.difference(&other_ids).cloned().collect();
    assert!(
        red_only.iter().any(|i| i.starts_with("report--")),
        "the RED advisory has objects of its own"
    );
    assert!(latest["green"].len() > 10_000);
    let withdrawn_report = withdrawn_report.unwrap();
    report_versions.sort();
    report_versions.dedup();
    assert_eq!(report_versions.len(), 2, "revision 1 and the tombstone");

    let clients: serde_json::Map<String, Value> = CLIENTS
        .iter()
        .map(|(name, token, colls)| {
            (
                name.to_string(),
                json!({"token": token, "collections": colls}),
            )
        })
        .collect();
    let mut versions_of_report = serde_json::Map::new();
    versions_of_report.insert(withdrawn_report.clone(), json!(report_versions));
    let expect = json!({
        "clients": clients,
        "reader": "soc",
        "collections": latest
            .iter()
            .map(|(alias, m)| (alias.to_string(), json!(m.keys().collect::<Vec<_>>())))
            .collect::<serde_json::Map<_, _>>(),
        "all_versions": {"clear": all["clear"].iter().map(|(i, v)| json!([i, v])).collect::<Vec<_>>()},
        "versions": {"clear": versions_of_report},
        "forbidden_ids": red_only,
        "shared_date_added": {"green": 10_000},
    });
    let expect_path = node.dir().join("taxii-expect.json");
    std::fs::write(&expect_path, serde_json::to_vec_pretty(&expect).unwrap()).unwrap();

    let url = format!("http://{addr}/taxii2/");
    let medallion = testdata().join("taxii21-medallion");
    let out = run_script(
        "check_taxii.py",
        [
            "--url",
            url.as_str(),
            "--expect",
            expect_path.to_str().unwrap(),
            "--medallion",
            medallion.to_str().unwrap(),
            "--per-request",
            "50",
        ],
    )
    .await;
    out.expect_code(0, "check_taxii.py");
    let s = out.json();
    let t = &s["tanoa"];
    for alias in ["clear", "green", "amber"] {
        assert_eq!(
            t["collections"][alias].as_u64().unwrap(),
            latest[alias].len() as u64,
            "{alias}"
        );
    }
    // 10,000+ objects at 50 per page.
    assert!(t["pages"]["green"].as_u64().unwrap() >= 200);
    assert!(t["shared_date_added"]["green"].as_u64().unwrap() >= 10_000);
    assert_eq!(t["unauthenticated"], json!(401));
    assert_eq!(t["forbidden"], json!(403));
    assert_eq!(t["versions_checked"], json!(1));
    let m = &s["medallion"];
    assert_eq!(m["unauthenticated"], json!(401));
    assert_eq!(m["forbidden"], json!(403));
    assert_eq!(
        m["collections"]["91a7b528-80eb-42ed-a74d-c6fbd5a26116"],
        json!(5),
        "medallion's test collection: 8 versions of 5 objects"
    );
    eprintln!("check_taxii.py: {s}");

    // After a restart: the same collection ids, the same objects with the same date_added.
    let token = CLIENTS[2].1;
    let (status, before) = http_get(addr, "/tanoa/collections/clear/manifest/", token).await;
    assert_eq!(status, 200);
    let (_, colls_before) = http_get(addr, "/tanoa/collections/", token).await;
    node.stop().await;
    node.start().await;
    let addr = node.started_addr("taxii");
    let (status, after) = http_get(addr, "/tanoa/collections/clear/manifest/", token).await;
    assert_eq!(status, 200);
    assert_eq!(before, after);
    let (_, colls_after) = http_get(addr, "/tanoa/collections/", token).await;
    assert_eq!(colls_before, colls_after);
    node.stop().await;
}

#[tokio::test]
async fn taxii_is_off_by_default_and_plain_http_only_on_loopback() {
    let mut node = TestNode::create(&bins().tanoad, "ws-cert", "");
    node.set_args(&["--log-format", "json"]);
    node.start().await;
    assert_eq!(node.started_field("taxii"), json!("-"));
    node.stop().await;

    // A config that would serve tokens in clear over the network is refused.
    let open = TestNode::create(&bins().tanoad, "ws-cert", "");
    let mut text = std::fs::read_to_string(open.config_path()).unwrap();
    text.push_str(&taxii_config("0.0.0.0:9470"));
    std::fs::write(open.config_path(), text).unwrap();
    let out = run_command(
        &bins().tanoad,
        [
            "--config",
            open.config_path().to_str().unwrap(),
            "check-config",
        ],
    )
    .await;
    out.expect_code(2, "check-config with plain HTTP on 0.0.0.0");
    assert!(
        out.stderr.contains("taxii.tls_cert") && out.stderr.contains("loopback"),
        "{}",
        out.stderr
    );
}
