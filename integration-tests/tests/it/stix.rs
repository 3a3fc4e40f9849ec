//! STIX 2.1 through real daemons and the real CLI, checked by the ecosystem's own tools
//! (`interop/check_stix.py`: stix2-validator, mitreattack-python, and an independent ed25519
//! check of the origin's signature): the MITRE APT40 set imported on one member, replicated,
//! exported from another; every OASIS example and threat report through one node; every broken
//! file refused with nothing stored; a bundle too large for one advisory published as parts.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use tanoa_integration_tests::federation::Federation;
use tanoa_integration_tests::interop::{run_script, testdata};
use tanoa_integration_tests::{RunOutput, TestNode, run_command, run_command_for};

use crate::bins;

/// Runs `tanoa --config CFG args…`.
async fn tanoa(config: &Path, args: &[&str]) -> RunOutput {
    let mut all = vec!["--config", config.to_str().unwrap()];
    all.extend_from_slice(args);
    run_command(&bins().tanoa, &all).await
}

fn data(rel: &str) -> PathBuf {
    testdata().join(rel)
}

fn public_hex(node: &TestNode) -> String {
    hex::encode(node.public_key().as_bytes())
}

/// Runs check_stix.py on an export against the originals; returns its JSON summary.
async fn check(export: &Path, originals: &[PathBuf], extra: &[&str]) -> Value {
    let mut args: Vec<String> = vec!["--export".into(), export.display().to_string()];
    for o in originals {
        args.push("--original".into());
        args.push(o.display().to_string());
    }
    args.extend(extra.iter().map(ToString::to_string));
    let out = run_script("check_stix.py", &args).await;
    out.expect_code(0, &format!("check_stix.py {args:?}"));
    out.json()
}

#[tokio::test]
async fn mitre_apt40_imported_replicated_and_exported_intact() {
    let b = bins();
    let fed = Federation::start(&b.tanoad, &["ws-cert", "to-cert", "fj-cert"]).await;
    let file = data("mitre-attack-apt40/apt40-G0065-C0049.stix21-DERIVED.bundle.json");
    let imp = tanoa(
        fed.nodes[0].config_path(),
        &[
            "import",
            "--format",
            "stix",
            file.to_str().unwrap(),
            "--tlp",
            "clear",
            "--json",
        ],
    )
    .await;
    imp.expect_code(0, "import the APT40 bundle");
    let r = imp.json();
    assert_eq!(r["objects"], 185);
    assert_eq!(r["tlp"], "CLEAR");
    assert_eq!(r["tlp_source"], "--tlp");
    assert_eq!(r["advisories"].as_array().unwrap().len(), 1);
    let adv = &r["advisories"][0];
    assert_eq!(adv["id"], "stix-14671499c45a");
    assert_eq!(adv["origin"], "ws-cert");
    let item = adv["item_id"].as_str().unwrap().to_string();

    fed.wait_latest(&[1, 2], "ws-cert/stix-14671499c45a", &item)
        .await;

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("apt40-export.json");
    let exp = tanoa(
        fed.nodes[2].config_path(),
        &[
            "export",
            "--format",
            "stix",
            "-o",
            out.to_str().unwrap(),
            "--json",
        ],
    )
    .await;
    exp.expect_code(0, "export from the third member");
    let e = exp.json();
    assert_eq!(e["advisories"][0]["item_id"], item.as_str());
    assert_eq!(e["advisories"][0]["origin"], "ws-cert");

    let s = check(
        &out,
        &[file],
        &[
            "--public-key",
            &public_hex(&fed.nodes[0]),
            "--mitre-group",
            "G0065=70",
            "--mitre-campaign",
            "C0049=26",
        ],
    )
    .await;
    assert_eq!(s["valid"], true);
    assert_eq!(s["original_objects_matched"], 185, "{s}");
    assert_eq!(s["x_mitre_properties"], 1034, "{s}");
    assert_eq!(s["signatures_verified"], 1, "{s}");
    assert_eq!(s["group_techniques"], 70, "{s}");
    assert_eq!(s["campaign_techniques"], 26, "{s}");
    assert_eq!(s["groups"], 1, "{s}");
}

/// The OASIS STIX 2.1 examples and threat reports.
fn oasis_files() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in [
        "stix21-oasis/examples",
        "stix21-oasis/examples/threat-reports",
    ] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(data(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        out.extend(files);
    }
    out
}

#[tokio::test]
async fn every_oasis_example_and_threat_report_survives_import_and_export() {
    let b = bins();
    let node = TestNode::start_new(&b.tanoad, "ws-cert", "").await;
    let cfg = node.config_path();
    let dir = tempfile::tempdir().unwrap();
    let files = oasis_files();
    assert_eq!(files.len(), 8);
    let mut ids = Vec::new();
    for f in &files {
        let name = f.display().to_string();
        let mut args = vec![
            "import", "--format", "stix", &name, "--tlp", "clear", "--json",
        ];
        // The object-marking example is marked TLP 1.0 RED: it needs an audience.
        if name.contains("interop-objectmarking") {
            args.extend(["--audience", "fj-cert"]);
        }
        let imp = tanoa(cfg, &args).await;
        imp.expect_code(0, &format!("import {name}"));
        let r = imp.json();
        if name.contains("interop-objectmarking") {
            assert_eq!(r["tlp"], "RED", "{name}");
            assert!(
                r["tlp_source"]
                    .as_str()
                    .unwrap()
                    .contains("marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed"),
                "{r}"
            );
        }
        let id = r["advisories"][0]["id"].as_str().unwrap().to_string();
        // Export that advisory alone and check it against its file.
        let out = dir.path().join(format!("{id}.json"));
        tanoa(
            cfg,
            &[
                "export",
                "--format",
                "stix",
                &format!("ws-cert/{id}"),
                "-o",
                out.to_str().unwrap(),
            ],
        )
        .await
        .expect_code(0, &format!("export {id}"));
        let s = check(
            &out,
            std::slice::from_ref(f),
            &["--public-key", &public_hex(&node)],
        )
        .await;
        let originals = {
            let v: Value = serde_json::from_slice(&std::fs::read(f).unwrap()).unwrap();
            v["objects"].as_array().map_or(1, Vec::len)
        };
        assert_eq!(s["original_objects_matched"], originals, "{name}: {s}");
        assert_eq!(s["signatures_verified"], 1, "{name}: {s}");
        ids.push(id);
    }
    // Everything at once, to stdout: one bundle holding every original object.
    let all = tanoa(cfg, &["export", "--format", "stix"]).await;
    all.expect_code(0, "export everything");
    let out = dir.path().join("all.json");
    std::fs::write(&out, &all.stdout).unwrap();
    let s = check(&out, &files, &["--public-key", &public_hex(&node)]).await;
    assert_eq!(s["reports"], 8, "one signed report per advisory: {s}");
    assert_eq!(s["original_objects_matched"], 260, "{s}");
    assert_eq!(s["signatures_verified"], 8, "{s}");
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 8, "each file is its own advisory");
}

#[tokio::test]
async fn every_broken_file_is_refused_with_its_reason_and_nothing_is_stored() {
    let b = bins();
    let node = TestNode::start_new(&b.tanoad, "ws-cert", "").await;
    let cfg = node.config_path();
    let dir = tempfile::tempdir().unwrap();
    // A bundle with one good indicator and one broken object: nothing of it may be stored.
    let half = dir.path().join("half-broken.json");
    std::fs::write(
        &half,
        serde_json::to_vec(&json!({
            "type": "bundle", "id": "bundle--5d0092c5-5f74-4287-9642-33f4c354e56d",
            "objects": [
                {"type": "indicator", "spec_version": "2.1",
                 "id": "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",
                 "created": "2026-01-01T00:00:00.000Z", "modified": "2026-01-01T00:00:00.000Z",
                 "pattern": "[ipv4-addr:value = '198.51.100.1']", "pattern_type": "stix",
                 "valid_from": "2026-01-01T00:00:00Z"},
                {"type": "indicator", "spec_version": "2.1",
                 "id": "indicator--9e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",
                 "created": "2026-01-01T00:00:00.000Z", "modified": "2026-01-01T00:00:00.000Z",
                 "pattern": "[ipv4-addr:value = '198.51.100.2' AND", "pattern_type": "stix",
                 "valid_from": "2026-01-01T00:00:00Z"}
            ]
        }))
        .unwrap(),
    )
    .unwrap();
    let cases: Vec<(PathBuf, &[&str])> = vec![
        (
            data("stix21-validator-test-examples/invalid_braces.json"),
            &["not valid JSON", "line 1 column 1"],
        ),
        (
            data("stix21-validator-test-examples/invalid_comma.json"),
            &["not valid JSON", "trailing comma"],
        ),
        (
            data("stix21-validator-test-examples/invalid_identity.json"),
            &["identity--8c6af861-7b20-41ef-9b59-6344fd872a8f: modified: missing"],
        ),
        (
            data("stix21-validator-test-examples/invalid_timestamp.json"),
            &[
                "identity--8c6af861-7b20-41ef-9b59-6344fd872a8f: modified: \"2015-08-08T15:50:10.983Z\" must be later than or equal to created",
            ],
        ),
        (
            data("tlp2/using-tlp2.0-green.json"),
            &[
                "bundle--161f8ade-b67d-11e3-b8af-f01faf20d111: type: missing",
                "relationship--1621d4d4-b67d-11e3-9670-f01faf20d111: created: \"2022-101-27T13:49:54.326Z\" is not an RFC 3339 timestamp",
            ],
        ),
        (
            half.clone(),
            &[
                "indicator--9e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f: pattern:",
                "does not parse",
            ],
        ),
    ];
    for (file, wants) in &cases {
        let name = file.display().to_string();
        let r = tanoa(
            cfg,
            &["import", "--format", "stix", &name, "--tlp", "clear"],
        )
        .await;
        r.expect_code(2, &format!("import {name}"));
        assert!(
            r.stderr.contains("nothing published"),
            "{name}: {}",
            r.stderr
        );
        for w in *wants {
            assert!(r.stderr.contains(w), "{name}: want {w:?} in\n{}", r.stderr);
        }
    }
    // No TLP marking and no --tlp: refused, saying what to pass.
    let r = tanoa(cfg, &["import", "--format", "stix", half.to_str().unwrap()]).await;
    r.expect_code(2, "import without --tlp");
    let f = data("stix21-oasis/examples/indicator-for-c2-ip-address.json");
    let r = tanoa(cfg, &["import", "--format", "stix", f.to_str().unwrap()]).await;
    r.expect_code(2, "import an unmarked bundle without --tlp");
    assert!(r.stderr.contains("pass --tlp"), "{}", r.stderr);
    // A dry run publishes nothing either.
    let r = tanoa(
        cfg,
        &[
            "import",
            "--format",
            "stix",
            f.to_str().unwrap(),
            "--tlp",
            "green",
            "--dry-run",
            "--json",
        ],
    )
    .await;
    r.expect_code(0, "dry run");
    assert_eq!(r.json()["published"], false);

    let list = tanoa(cfg, &["list", "--withdrawn", "--json"]).await;
    list.expect_code(0, "list");
    assert_eq!(
        list.json()["advisories"].as_array().unwrap().len(),
        0,
        "nothing may be stored: {}",
        list.stdout
    );
}

/// A bundle of `n` distinct indicators (IPv6 in 2001:db8::/32 and *.example domains) with an
/// identity, the TLP 2.0 GREEN marking, a malware and one relationship per 1000 indicators.
fn large_bundle(n: usize) -> Vec<u8> {
    let green = "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb";
    let ident = "identity--11111111-2222-4333-8444-555555555555";
    let malware = "malware--11111111-2222-4333-8444-666666666666";
    let mut objs = vec![
        json!({"type": "identity", "spec_version": "2.1", "id": ident,
            "created": "2026-01-01T00:00:00.000Z", "modified": "2026-01-01T00:00:00.000Z",
            "name": "Example CERT", "identity_class": "organization"}),
        json!({"type": "malware", "spec_version": "2.1", "id": malware,
            "created": "2026-01-01T00:00:00.000Z", "modified": "2026-01-01T00:00:00.000Z",
            "name": "ExampleRAT", "is_family": true, "object_marking_refs": [green]}),
    ];
    for i in 0..n {
        let pattern = if i % 2 == 0 {
            format!(
                "[ipv6-addr:value = '2001:db8::{:x}:{:x}']",
                i / 65536,
                i % 65536
            )
        } else {
            format!("[domain-name:value = 'host{i}.bad.example']")
        };
        let uid = format!("{i:08x}-0000-4000-8000-{i:012x}");
        objs.push(json!({"type": "indicator", "spec_version": "2.1",
            "id": format!("indicator--{uid}"), "created_by_ref": ident,
            "created": "2026-01-01T00:00:00.000Z", "modified": "2026-01-01T00:00:00.000Z",
            "pattern": pattern, "pattern_type": "stix", "valid_from": "2026-01-01T00:00:00Z",
            "object_marking_refs": [green]}));
        if i % 1000 == 999 {
            objs.push(json!({"type": "relationship", "spec_version": "2.1",
                "id": format!("relationship--{uid}"), "created_by_ref": ident,
                "created": "2026-01-01T00:00:00.000Z", "modified": "2026-01-01T00:00:00.000Z",
                "relationship_type": "indicates", "source_ref": format!("indicator--{uid}"),
                "target_ref": malware, "object_marking_refs": [green]}));
        }
    }
    serde_json::to_vec(&json!({"type": "bundle",
        "id": "bundle--11111111-2222-4333-8444-777777777777", "objects": objs}))
    .unwrap()
}

#[tokio::test]
async fn a_bundle_too_large_for_one_advisory_is_published_as_parts() {
    let b = bins();
    let node = TestNode::start_new(&b.tanoad, "ws-cert", "").await;
    let cfg = node.config_path();
    let dir = tempfile::tempdir().unwrap();
    let n = 30_000;
    let file = dir.path().join("large.json");
    std::fs::write(&file, large_bundle(n)).unwrap();
    let long = Duration::from_secs(180);
    let imp = run_command_for(
        &b.tanoa,
        [
            "--config",
            cfg.to_str().unwrap(),
            "import",
            "--format",
            "stix",
            file.to_str().unwrap(),
            "--json",
        ],
        long,
    )
    .await;
    imp.expect_code(0, "import the large bundle");
    let r = imp.json();
    assert_eq!(
        r["tlp"], "GREEN",
        "from the bundle's TLP 2.0 marking: {}",
        r["tlp_source"]
    );
    let parts = r["advisories"].as_array().unwrap();
    assert!(parts.len() > 1, "{r}");
    let total: u64 = parts
        .iter()
        .map(|p| p["indicators"].as_u64().unwrap())
        .sum();
    assert_eq!(total, n as u64);
    assert_eq!(r["indicator_values"], n);
    let base = parts[0]["id"]
        .as_str()
        .unwrap()
        .strip_suffix("-p1")
        .unwrap()
        .to_string();
    for (k, p) in parts.iter().enumerate() {
        assert_eq!(p["id"], format!("{base}-p{}", k + 1));
    }
    // Indexed: a value from the middle of the bundle is found.
    let s = tanoa(cfg, &["search", "host20001.bad.example", "--json"]).await;
    s.expect_code(0, "search");
    assert!(s.stdout.contains(&format!("{base}-p")), "{}", s.stdout);
    // The export of all parts gives every original object back once.
    let out = dir.path().join("large-export.json");
    run_command_for(
        &b.tanoa,
        [
            "--config",
            cfg.to_str().unwrap(),
            "export",
            "--format",
            "stix",
            "-o",
            out.to_str().unwrap(),
        ],
        long,
    )
    .await
    .expect_code(0, "export the parts");
    let exported: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let original: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let objs = exported["objects"].as_array().unwrap();
    let mut by_id = std::collections::HashMap::new();
    for o in objs {
        *by_id.entry(o["id"].as_str().unwrap()).or_insert(0) += 1;
    }
    for o in original["objects"].as_array().unwrap() {
        assert_eq!(
            by_id.get(o["id"].as_str().unwrap()),
            Some(&1),
            "{} must be exported exactly once",
            o["id"]
        );
    }
}
