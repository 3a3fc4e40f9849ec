//! MISP in and out through a real `tanoad` and the real `tanoa` CLI, checked by PyMISP:
//! the CIRCL OSINT event imported, stored, signed, exported as a MISP feed directory with a
//! native advisory and a withdrawn one, and `check_misp.py` (PyMISP 2.5) loads every event of
//! the feed, recomputes manifest.json and hashes.csv, and compares the CIRCL event attribute by
//! attribute with the original — registry-key backslashes and CR/LF byte for byte.

use std::path::{Path, PathBuf};

use serde_json::Value;
use tanoa_integration_tests::interop::{run_script, testdata};
use tanoa_integration_tests::{RunOutput, TestNode, run_command};

use crate::bins;

const CIRCL_UUID: &str = "57c4445b-c548-4654-af0b-4be3950d210f";

fn misp_file(name: &str) -> PathBuf {
    testdata().join("misp/pymisp-tests").join(name)
}

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name)
}

/// Runs `tanoa --socket SOCK args…`.
async fn tanoa(node: &TestNode, args: &[&str]) -> RunOutput {
    let mut all = vec!["--socket", node.socket_path().to_str().unwrap()];
    all.extend_from_slice(args);
    run_command(&bins().tanoa, &all).await
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap())
        .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

#[tokio::test]
async fn circl_event_survives_misp_tanoa_misp_through_a_pymisp_checked_feed() {
    let b = bins();
    let node = TestNode::start_new(&b.tanoad, "ws-cert", "").await;
    let circl = misp_file(&format!("{CIRCL_UUID}.json"));
    let circl_s = circl.to_str().unwrap();

    // Import the CIRCL event (format detected from the file).
    let imp = tanoa(&node, &["--json", "import", circl_s]).await;
    imp.expect_code(0, "import the CIRCL event");
    let imp = imp.json();
    assert_eq!(imp["format"], "misp");
    assert_eq!(imp["advisory_id"], format!("misp-{CIRCL_UUID}"));
    assert_eq!(imp["revision"], 1);
    assert_eq!(imp["tlp"], "CLEAR");
    let report = &imp["report"];
    assert_eq!(report["attributes"], 9);
    assert_eq!(report["indicators"], 4);
    assert_eq!(report["references"], 2);
    assert_eq!(report["not_indexed"]["unmodelled"], 1);
    assert_eq!(
        report["not_indexed_attributes"][0]["uuid"],
        "57c54b0f-27a4-458b-8e63-4455950d210f"
    );

    // Stored, signed and indexed: the md5 is found, the kept event is the original.
    let q = tanoa(
        &node,
        &["--json", "search", "0749bae92ca336a02c83d126e04ec628"],
    )
    .await;
    q.expect_code(0, "search the imported md5");
    let hits = q.json()["hits"].as_array().unwrap().clone();
    assert_eq!(hits.len(), 1, "{hits:?}");
    let s = tanoa(&node, &["--json", "show", &format!("misp-{CIRCL_UUID}")]).await;
    s.expect_code(0, "show the imported advisory");
    let s = s.json();
    assert_eq!(s["verification"]["valid"], true);
    assert_eq!(s["advisory"]["severity"], "low");
    let original = read_json(&circl);
    assert_eq!(s["advisory"]["extras"]["misp"], original["Event"]);

    // The PyMISP fixture with object uuids "a" and "b": no TLP tag, so --tlp is required.
    let fixture = misp_file("event_obj_attr_tag.json");
    let no_tlp = tanoa(
        &node,
        &["import", "--format", "misp", fixture.to_str().unwrap()],
    )
    .await;
    no_tlp.expect_code(2, "import without any TLP");
    assert!(no_tlp.stderr.contains("--tlp"), "{}", no_tlp.stderr);
    assert!(
        no_tlp.stderr.contains("nothing published"),
        "{}",
        no_tlp.stderr
    );
    let fx = tanoa(
        &node,
        &[
            "--json",
            "import",
            "--format",
            "misp",
            "--tlp",
            "green",
            "--id",
            "pymisp-fixture",
            fixture.to_str().unwrap(),
        ],
    )
    .await;
    fx.expect_code(0, "import the fixture with --tlp green");
    assert_eq!(fx.json()["report"]["indicators"], 2);

    // A native advisory, and one withdrawn.
    tanoa(
        &node,
        &["publish", example("apt40-advisory.toml").to_str().unwrap()],
    )
    .await
    .expect_code(0, "publish the example");
    let gone = node.dir().join("gone.json");
    std::fs::write(
        &gone,
        r#"{"id": "gone-1", "tlp": "GREEN", "title": "Withdrawn soon",
            "indicators": [{"kind": "domain", "value": "gone.example"}]}"#,
    )
    .unwrap();
    tanoa(&node, &["publish", gone.to_str().unwrap()])
        .await
        .expect_code(0, "publish the one to withdraw");
    tanoa(&node, &["withdraw", "gone-1", "--reason", "false positive"])
        .await
        .expect_code(0, "withdraw");

    // Export the feed: withdrawn advisories are left out by default.
    let feed = node.dir().join("feed");
    let feed_s = feed.to_str().unwrap();
    let ex = tanoa(
        &node,
        &["--json", "export", "--format", "misp", "-o", feed_s],
    )
    .await;
    ex.expect_code(0, "export the MISP feed");
    let ex = ex.json();
    assert_eq!(ex["events"].as_array().unwrap().len(), 3, "{ex}");
    assert!(feed.join(format!("{CIRCL_UUID}.json")).is_file());
    let manifest = read_json(&feed.join("manifest.json"));
    assert_eq!(manifest.as_object().unwrap().len(), 3);
    assert_eq!(manifest[CIRCL_UUID]["info"], "Ransomware - Xorist");
    // The CIRCL event file is the original event (nothing to add, tlp:white already CLEAR).
    assert_eq!(
        read_json(&feed.join(format!("{CIRCL_UUID}.json"))),
        original
    );

    let check = run_script("check_misp.py", ["--feed", feed_s, "--original", circl_s]).await;
    check.expect_code(0, "check_misp.py on the feed");
    let sum = check.json();
    assert_eq!(sum["events"], 3, "{sum}");
    assert_eq!(sum["compared_attributes"], 9, "{sum}");
    assert_eq!(sum["with_backslash"], 1, "{sum}");
    assert_eq!(sum["with_crlf"], 1, "{sum}");
    // 10 CIRCL lines (regkey|value hashed per part) + 2 fixture + the example's attributes.
    assert!(sum["hashes"].as_u64().unwrap() > 12, "{sum}");
    assert_eq!(
        sum["hashes"].as_u64().unwrap(),
        std::fs::read_to_string(feed.join("hashes.csv"))
            .unwrap()
            .lines()
            .count() as u64
    );

    // With --include-withdrawn, the withdrawn advisory is there, its attributes deleted.
    let feed2 = node.dir().join("feed-all");
    let ex2 = tanoa(
        &node,
        &[
            "--json",
            "export",
            "--format",
            "misp",
            "--include-withdrawn",
            "-o",
            feed2.to_str().unwrap(),
        ],
    )
    .await;
    ex2.expect_code(0, "export with withdrawn");
    let events = ex2.json()["events"].as_array().unwrap().clone();
    assert_eq!(events.len(), 4);
    let w = events.iter().find(|e| e["withdrawn"] == true).unwrap();
    assert_eq!(w["advisory"], "ws-cert/gone-1");
    let wev = read_json(&feed2.join(w["file"].as_str().unwrap()));
    assert_eq!(wev["Event"]["published"], false);
    assert_eq!(wev["Event"]["Attribute"][0]["value"], "gone.example");
    assert_eq!(wev["Event"]["Attribute"][0]["deleted"], true);
    let check = run_script(
        "check_misp.py",
        ["--feed", feed2.to_str().unwrap(), "--original", circl_s],
    )
    .await;
    check.expect_code(0, "check_misp.py on the feed with withdrawn");
    assert_eq!(check.json()["events"], 4);

    // Naming a withdrawn advisory without --include-withdrawn is refused.
    let refused = tanoa(
        &node,
        &["export", "--format", "misp", "gone-1", "-o", feed_s],
    )
    .await;
    refused.expect_code(2, "export a withdrawn advisory by id");
    assert!(
        refused.stderr.contains("--include-withdrawn"),
        "{}",
        refused.stderr
    );
}
