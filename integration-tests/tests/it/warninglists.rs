//! MISP warning lists in a real `tanoad`: the Poison Ivy report's indicator values are published
//! and the daemon's flags are checked value by value against pymispwarninglists (the reference
//! implementation, from PyPI) over the same 116 lists; `tanoa publish`, `show` and `search`
//! show the hits; a bad list file is skipped and reported, a missing or empty directory is a
//! configuration error naming the key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use tanoa_daemon::model::{IndicatorKind, normalize_indicator};
use tanoa_integration_tests::interop::{run_script, testdata};
use tanoa_integration_tests::{RunOutput, TestNode, run_command};
use tanoa_proto::v1 as pb;

use crate::bins;

fn lists_dir() -> PathBuf {
    testdata().join("misp/warninglists")
}

/// `[warninglists]` pointing at `dir`.
fn config_for(dir: &Path) -> String {
    format!("[warninglists]\ndir = {:?}\n", dir.display().to_string())
}

/// Runs `tanoa --config CFG args…`.
async fn tanoa(node: &TestNode, args: &[&str]) -> RunOutput {
    let mut all = vec!["--config", node.config_path().to_str().unwrap()];
    all.extend_from_slice(args);
    run_command(&bins().tanoa, &all).await
}

/// The comparisons of one STIX pattern (`[a:b = 'x' OR c:d = 'y']`) as (object path, value).
fn comparisons(pattern: &str) -> Vec<(String, String)> {
    let inner = pattern.trim().trim_start_matches('[').trim_end_matches(']');
    inner
        .split(" OR ")
        .map(|c| {
            let (path, value) = c.split_once(" = ").expect("a comparison");
            let value = value.trim().trim_matches('\'');
            (path.trim().to_string(), value.to_string())
        })
        .collect()
}

/// One draft per indicator object of the Poison Ivy report (the STIX importer is not used:
/// its patterns are plain comparisons of domain names, IPv4 addresses and file names), and the
/// values that are not valid indicators of their kind (left out).
fn poison_ivy_drafts() -> (Vec<pb::AdvisoryDraft>, Vec<String>) {
    let path = testdata().join("stix21-oasis/examples/threat-reports/poisonivy.json");
    let bundle: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let mut drafts = Vec::new();
    let mut invalid = Vec::new();
    for o in bundle["objects"].as_array().unwrap() {
        if o["type"] != "indicator" {
            continue;
        }
        let mut indicators = Vec::new();
        for (p, value) in comparisons(o["pattern"].as_str().unwrap()) {
            let (kind, model_kind) = match p.as_str() {
                "domain-name:value" => (pb::IndicatorKind::Domain, IndicatorKind::Domain),
                "ipv4-addr:value" => (pb::IndicatorKind::Ipv4, IndicatorKind::Ipv4),
                "file:name" => (pb::IndicatorKind::Filename, IndicatorKind::Filename),
                other => panic!("unexpected pattern path {other}"),
            };
            if normalize_indicator(model_kind, &value).is_err() {
                invalid.push(value);
                continue;
            }
            indicators.push(pb::Indicator {
                kind: kind as i32,
                value,
                confidence: 50,
                ..Default::default()
            });
        }
        drafts.push(pb::AdvisoryDraft {
            id: format!("pi-{}", drafts.len() + 1),
            tlp: pb::Tlp::Green as i32,
            title: format!("Poison Ivy: {}", o["name"].as_str().unwrap_or("indicator")),
            indicators,
            ..Default::default()
        });
    }
    (drafts, invalid)
}

fn kind_name(k: i32) -> String {
    pb::IndicatorKind::try_from(k)
        .unwrap()
        .as_str_name()
        .trim_start_matches("INDICATOR_KIND_")
        .to_ascii_lowercase()
}

#[tokio::test]
async fn warning_lists_agree_with_pymispwarninglists_on_poison_ivy() {
    let node = TestNode::start_new(&bins().tanoad, "ws-cert", &config_for(&lists_dir())).await;
    assert!(
        node.logs().contains("warning lists loaded"),
        "{}",
        node.logs()
    );
    let mut client = node.client().await;

    // The report's values, one advisory per STIX indicator, in one batch.
    let (drafts, invalid) = poison_ivy_drafts();
    assert_eq!(drafts.len(), 25);
    // The report itself holds one value that is no domain name (a slip in the source data).
    assert_eq!(invalid, ["domain autuo.xicp.net"]);
    let results = client
        .publish_batch(pb::PublishBatchRequest {
            drafts: drafts.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .results;
    let mut cases = Vec::new();
    for (d, r) in drafts.iter().zip(&results) {
        // The advisory as stored: its indicators and this node's warnings of it now.
        let got = client
            .get(pb::GetRequest {
                id: r.advisory_id.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            got.warnings, r.warnings,
            "{}: Get and Publish screen alike",
            d.id
        );
        let stored = got.advisory.unwrap().indicators;
        for (n, ind) in stored.iter().enumerate() {
            let flagged: Vec<String> = r
                .warnings
                .iter()
                .find(|w| w.indicator_index as usize == n)
                .map(|w| {
                    assert_eq!(w.value, ind.value);
                    w.lists.clone()
                })
                .unwrap_or_default();
            cases.push(json!({
                "group": "poisonivy",
                "kind": kind_name(ind.kind),
                "value": ind.value,
                "flagged": flagged,
            }));
        }
    }
    assert_eq!(cases.len(), 66, "every valid value of the 25 patterns");

    // A file of documentation values through `tanoa publish`: regex, URL host, CIDR text.
    let file = node.dir().join("crafted.json");
    std::fs::write(
        &file,
        serde_json::to_string(&json!({
            "id": "crafted-1",
            "tlp": "GREEN",
            "title": "Warning-list edge cases",
            "indicators": [
                {"kind": "email", "value": "abuse@cert.example"},
                {"kind": "email", "value": "alice@cert.example"},
                {"kind": "url", "value": "http://fbi.zyns.com/gate.php"},
                {"kind": "cidr", "value": "192.0.2.0/24"},
                {"kind": "cidr", "value": "198.51.100.0/25"},
                {"kind": "ipv4", "value": "203.0.113.9"},
                {"kind": "ipv6", "value": "2001:db8::1"},
                {"kind": "domain", "value": "update.pacific-news.example"},
            ]
        }))
        .unwrap(),
    )
    .unwrap();
    let out = tanoa(&node, &["publish", file.to_str().unwrap()]).await;
    out.expect_code(0, "tanoa publish");
    assert!(
        out.stdout
            .contains("indicators[0] abuse@cert.example: common-contact-emails"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("WARNING: "), "{}", out.stdout);
    let out = tanoa(&node, &["--json", "show", "crafted-1"]).await;
    out.expect_code(0, "tanoa show --json");
    let shown = out.json();
    let warnings = shown["warnings"].as_array().unwrap();
    for (n, ind) in shown["advisory"]["indicators"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        let flagged = warnings
            .iter()
            .find(|w| w["indicator_index"] == n)
            .map(|w| w["lists"].clone())
            .unwrap_or(json!([]));
        cases.push(json!({
            "group": "crafted",
            "kind": ind["kind"],
            "value": ind["value"],
            "flagged": flagged,
        }));
    }

    // The reference implementation on the same values and lists.
    let cases_file = node.dir().join("warninglist-cases.json");
    std::fs::write(
        &cases_file,
        serde_json::to_string(&json!({
            "lists_dir": lists_dir(),
            "values": cases,
        }))
        .unwrap(),
    )
    .unwrap();
    let out = run_script("check_warninglists.py", [&cases_file]).await;
    out.expect_code(0, "check_warninglists.py");
    let summary = out.json();
    assert_eq!(summary["lists"], 116);
    assert_eq!(summary["pymisp_regex_hits"], 0);
    let pi = &summary["groups"]["poisonivy"];
    assert_eq!(pi["values"], 66);
    assert_eq!(pi["flagged"], 20, "{summary}");
    assert_eq!(pi["flagged_distinct"], 17, "{summary}");
    assert_eq!(
        pi["by_lists"],
        json!({"dynamic-dns": 14, "vpn-ipv4": 5, "disposable-email+dynamic-dns": 1}),
        "{summary}"
    );
    let crafted = &summary["groups"]["crafted"];
    assert_eq!(
        crafted["by_list"],
        json!({
            "common-contact-emails": 1,
            "disposable-email": 1,
            "dynamic-dns": 1,
            "rfc3849": 1,
            "rfc5735": 2,
        }),
        "{summary}"
    );

    // Shown by show and search, never dropped.
    let (flagged, clean): (Vec<&pb::PublishResponse>, Vec<&pb::PublishResponse>) =
        results.iter().partition(|r| !r.warnings.is_empty());
    assert!(!flagged.is_empty() && !clean.is_empty());
    let out = tanoa(&node, &["show", &flagged[0].advisory_id]).await;
    out.expect_code(0, "tanoa show");
    let w = &flagged[0].warnings[0];
    assert!(
        out.stdout.contains(&format!(
            "indicators[{}] {}: {}",
            w.indicator_index,
            w.value,
            w.lists.join(", ")
        )),
        "{}",
        out.stdout
    );
    let out = tanoa(&node, &["show", &clean[0].advisory_id]).await;
    out.expect_code(0, "tanoa show");
    assert!(!out.stdout.contains("WARNING"), "{}", out.stdout);
    let out = tanoa(&node, &["search", "fbi.zyns.com"]).await;
    out.expect_code(0, "tanoa search");
    assert!(out.stdout.contains("WARNING LISTS"), "{}", out.stdout);
    assert!(
        out.stdout.contains("disposable-email, dynamic-dns"),
        "{}",
        out.stdout
    );
    let out = tanoa(&node, &["--json", "search", "75.126.95.138"]).await;
    let hits = out.json()["hits"].as_array().unwrap().clone();
    assert_eq!(hits.len(), 4, "75.126.95.138 is in four of the patterns");
    for h in &hits {
        assert_eq!(h["warning_lists"], json!(["vpn-ipv4"]));
    }
    let by_value: BTreeMap<String, usize> =
        results
            .iter()
            .flat_map(|r| r.warnings.iter())
            .fold(BTreeMap::new(), |mut m, w| {
                *m.entry(w.value.clone()).or_default() += 1;
                m
            });
    assert_eq!(by_value.get("75.126.95.138"), Some(&4));
}

#[tokio::test]
async fn bad_lists_are_skipped_and_bad_directories_refused() {
    let tanoad = bins().tanoad;
    let lists = tempfile::tempdir().unwrap();
    let write = |rel: &str, text: &str| {
        let p = lists.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    write(
        "doc-nets/list.json",
        r#"{"name": "Documentation networks", "description": "RFC 5737", "version": 1,
            "type": "cidr", "list": ["192.0.2.0/24"]}"#,
    );
    write(
        "broken/list.json",
        r#"{"name": "Broken", "description": "no type", "version": 1, "list": []}"#,
    );

    // A bad list is reported (naming its file) and skipped; the daemon serves with the rest.
    let node = TestNode::start_new(&tanoad, "ws-cert", &config_for(lists.path())).await;
    let logs = node.logs();
    assert!(
        logs.contains("warning list skipped") && logs.contains("broken/list.json"),
        "{logs}"
    );
    let mut client = node.client().await;
    let r = client
        .publish(pb::PublishRequest {
            draft: Some(tanoa_integration_tests::sample_draft("ws-doc", "Doc", 7)),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.warnings.len(), 1, "{r:?}");
    assert_eq!(r.warnings[0].value, "192.0.2.7");
    assert_eq!(r.warnings[0].lists, ["doc-nets"]);
    drop(node);

    // A missing directory, an empty one, and an unknown disabled name: exit 2 naming the key.
    let empty = tempfile::tempdir().unwrap();
    let node = TestNode::create(&tanoad, "ws-cert", "");
    let cfg = node.config_path().to_path_buf();
    let base = std::fs::read_to_string(&cfg).unwrap();
    let cases = [
        (
            config_for(&lists.path().join("missing")),
            "warninglists.dir",
        ),
        (config_for(empty.path()), "warninglists.dir"),
        (
            format!(
                "{}disabled = [\"no-such-list\"]\n",
                config_for(lists.path())
            ),
            "warninglists.disabled",
        ),
    ];
    for (extra, key) in cases {
        std::fs::write(&cfg, format!("{base}\n{extra}")).unwrap();
        let out = run_command(&tanoad, ["--config", cfg.to_str().unwrap()]).await;
        out.expect_code(2, &format!("tanoad with {extra}"));
        assert!(out.stderr.contains(key), "{key}: {}", out.stderr);
        assert!(!node.socket_path().exists());
    }
}
