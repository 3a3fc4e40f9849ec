//! The real `tanoa` CLI against a real `tanoad`: init, publish the example file, list, show,
//! search, export + offline verify, withdraw, status, and its exit codes (0 ok, 1 failed,
//! 2 bad input).

use std::path::{Path, PathBuf};

use base64::Engine as _;
use tanoa_integration_tests::{RunOutput, TestNode, run_command};

use crate::bins;

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name)
}

/// Runs `tanoa --config CFG args…`.
async fn tanoa(config: &Path, args: &[&str]) -> RunOutput {
    let mut all = vec!["--config", config.to_str().unwrap()];
    all.extend_from_slice(args);
    run_command(&bins().tanoa, &all).await
}

#[tokio::test]
async fn cli_drives_a_real_daemon_end_to_end() {
    let b = bins();
    let tmp = tempfile::Builder::new()
        .prefix("tanoa-cli-")
        .tempdir()
        .unwrap();
    let member_dir = tmp.path().join("ws");
    let init = run_command(
        &b.tanoa,
        [
            "init",
            "--dir",
            member_dir.to_str().unwrap(),
            "--id",
            "ws-cert",
            "--name",
            "Samoa CERT",
            "--json",
        ],
    )
    .await;
    init.expect_code(0, "tanoa init");
    let init = init.json();
    let config = PathBuf::from(init["config"].as_str().unwrap());
    let public_key = init["public_key"].as_str().unwrap().to_string();
    assert_eq!(public_key.len(), 64);
    assert_eq!(config, member_dir.join("tanoad.toml"));
    // Initializing again refuses to overwrite the member.
    let again = run_command(
        &b.tanoa,
        [
            "init",
            "--dir",
            member_dir.to_str().unwrap(),
            "--id",
            "ws-cert",
            "--name",
            "x",
        ],
    )
    .await;
    again.expect_code(1, "second tanoa init");
    assert!(again.stderr.contains("already exists"), "{}", again.stderr);

    // No daemon yet: exit 1 with a hint saying how to start it.
    let down = tanoa(&config, &["status"]).await;
    down.expect_code(1, "status without a daemon");
    assert!(down.stderr.contains("hint:"), "{}", down.stderr);
    assert!(down.stderr.contains("tanoad --config"), "{}", down.stderr);

    let mut node = TestNode::adopt(&b.tanoad, tmp, config.clone());
    assert_eq!(
        hex::encode(node.public_key().as_bytes()),
        public_key,
        "init printed another key than it wrote"
    );
    node.start().await;

    // publish the example advisory
    let toml = example("apt40-advisory.toml");
    let p = tanoa(&config, &["--json", "publish", toml.to_str().unwrap()]).await;
    p.expect_code(0, "publish");
    let p = p.json();
    assert_eq!(p["advisory_id"], "apt40-blue-pacific");
    assert_eq!(p["revision"], 1);
    assert_eq!(p["origin"], "ws-cert");
    let item_id = p["item_id"].as_str().unwrap().to_string();

    // list
    let l = tanoa(&config, &["--json", "list"]).await;
    l.expect_code(0, "list");
    let rows = l.json()["advisories"].as_array().unwrap().clone();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["item_id"], item_id.as_str());
    assert_eq!(rows[0]["tlp"], "GREEN");
    assert_eq!(rows[0]["indicator_count"], 12);
    // The human table also names it.
    let lt = tanoa(&config, &["list"]).await;
    lt.expect_code(0, "list (table)");
    assert!(lt.stdout.contains("apt40-blue-pacific"), "{}", lt.stdout);

    // show
    let s = tanoa(&config, &["--json", "show", "apt40-blue-pacific"]).await;
    s.expect_code(0, "show");
    let s = s.json();
    assert_eq!(s["item_id"], item_id.as_str());
    assert_eq!(s["verification"]["valid"], true);
    assert_eq!(s["advisory"]["severity"], "high");
    let values: Vec<&str> = s["advisory"]["indicators"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["value"].as_str().unwrap())
        .collect();
    // Refanged and normalized by the daemon.
    assert!(values.contains(&"203.0.113.45"), "{values:?}");
    assert!(
        values.contains(&"update-check.pacific-news.example"),
        "{values:?}"
    );

    // search: exact, and inside the CIDR 192.0.2.128/25
    let q = tanoa(&config, &["--json", "search", "203.0.113.45"]).await;
    q.expect_code(0, "search exact");
    let hits = q.json()["hits"].as_array().unwrap().clone();
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!(hits[0]["match"], "exact");
    assert_eq!(hits[0]["advisory"]["advisory_id"], "apt40-blue-pacific");
    let q = tanoa(&config, &["--json", "search", "192.0.2.200"]).await;
    q.expect_code(0, "search cidr");
    let hits = q.json()["hits"].as_array().unwrap().clone();
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!(hits[0]["match"], "cidr");

    // export + offline verify; a tampered copy fails with exit 1
    let env_file = node.dir().join("apt40.envelope.json");
    tanoa(
        &config,
        &[
            "export",
            "apt40-blue-pacific",
            "--format",
            "envelope",
            "-o",
            env_file.to_str().unwrap(),
        ],
    )
    .await
    .expect_code(0, "export");
    let v = tanoa(
        &config,
        &[
            "--json",
            "verify",
            env_file.to_str().unwrap(),
            "--public-key",
            &public_key,
        ],
    )
    .await;
    v.expect_code(0, "verify");
    assert_eq!(v.json()["valid"], true);

    let mut doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&env_file).unwrap()).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut payload = b64.decode(doc["payload_b64"].as_str().unwrap()).unwrap();
    let at = payload.len() / 3;
    payload[at] ^= 0x20;
    doc["payload_b64"] = b64.encode(&payload).into();
    let tampered = node.dir().join("tampered.envelope.json");
    std::fs::write(&tampered, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
    let v = tanoa(
        &config,
        &[
            "--json",
            "verify",
            tampered.to_str().unwrap(),
            "--public-key",
            &public_key,
        ],
    )
    .await;
    v.expect_code(1, "verify tampered");
    assert_eq!(v.json()["valid"], false);
    // Another member's key does not verify it either.
    let other = hex::encode(
        tanoa_daemon::keys::generate()
            .unwrap()
            .verifying_key()
            .as_bytes(),
    );
    tanoa(
        &config,
        &["verify", env_file.to_str().unwrap(), "--public-key", &other],
    )
    .await
    .expect_code(1, "verify with another key");

    // a bad advisory file: exit 2 with the field path
    let bad = node.dir().join("bad.toml");
    std::fs::write(
        &bad,
        "tlp = \"GREEN\"\ntitle = \"Bad\"\n\n[[indicators]]\nkind = \"ipv4\"\nvalue = \"192.0.2.1\"\n\n\
         [[indicators]]\nkind = \"ipv4\"\nvalue = \"192.0.2.300\"\n",
    )
    .unwrap();
    let out = tanoa(&config, &["publish", bad.to_str().unwrap()]).await;
    out.expect_code(2, "publish bad file");
    assert!(out.stderr.contains("indicators[1].value"), "{}", out.stderr);
    assert!(out.stderr.contains("192.0.2.300"), "{}", out.stderr);
    // Nothing was published.
    let st = tanoa(&config, &["--json", "status"]).await;
    st.expect_code(0, "status");
    assert_eq!(st.json()["items"], 1);

    // The same advisory in JSON publishes its next revision, same content.
    let json_file = example("apt40-advisory.json");
    let p2 = tanoa(&config, &["--json", "publish", json_file.to_str().unwrap()]).await;
    p2.expect_code(0, "publish json");
    let p2 = p2.json();
    assert_eq!(p2["advisory_id"], "apt40-blue-pacific");
    assert_eq!(p2["revision"], 2);
    let s2 = tanoa(&config, &["--json", "show", "apt40-blue-pacific"]).await;
    s2.expect_code(0, "show revision 2");
    let s2 = s2.json();
    let strip = |v: &serde_json::Value| {
        let mut v = v.clone();
        for k in ["revision", "modified", "modified_ms"] {
            v[k] = serde_json::Value::Null;
        }
        v
    };
    assert_eq!(
        strip(&s2["advisory"]),
        strip(&s["advisory"]),
        "the JSON and TOML examples differ"
    );

    // withdraw
    let w = tanoa(
        &config,
        &[
            "--json",
            "withdraw",
            "apt40-blue-pacific",
            "--reason",
            "superseded by a joint advisory",
        ],
    )
    .await;
    w.expect_code(0, "withdraw");
    assert_eq!(w.json()["revision"], 3);
    let q = tanoa(&config, &["--json", "search", "203.0.113.45"]).await;
    q.expect_code(0, "search after withdraw");
    assert!(q.json()["hits"].as_array().unwrap().is_empty());
    let s = tanoa(&config, &["--json", "show", "apt40-blue-pacific"]).await;
    s.expect_code(0, "show after withdraw");
    let s = s.json();
    assert_eq!(s["advisory"]["withdrawn"], true);
    assert_eq!(
        s["advisory"]["withdrawn_reason"],
        "superseded by a joint advisory"
    );
    assert_eq!(s["history"].as_array().unwrap().len(), 3);
    let shown = tanoa(&config, &["show", "apt40-blue-pacific"]).await;
    shown.expect_code(0, "show (text)");
    assert!(
        shown.stdout.contains("superseded by a joint advisory"),
        "{}",
        shown.stdout
    );
    // Unknown ids are "not found": exit 1.
    tanoa(&config, &["show", "no-such-advisory"])
        .await
        .expect_code(1, "show unknown");

    // status
    let st = tanoa(&config, &["status"]).await;
    st.expect_code(0, "status (text)");
    assert!(st.stdout.contains("ws-cert"), "{}", st.stdout);
    let st = tanoa(&config, &["--json", "status"]).await;
    st.expect_code(0, "status --json");
    let st = st.json();
    assert_eq!(st["member_id"], "ws-cert");
    assert_eq!(st["items"], 3);
    assert_eq!(st["withdrawn"], 1);
    assert_eq!(st["keys"][0]["public_key"], public_key.as_str());

    // the daemon stopped: exit 1 with a hint
    node.stop().await;
    let down = tanoa(&config, &["--json", "list"]).await;
    down.expect_code(1, "list without a daemon");
    assert!(down.stderr.contains("hint:"), "{}", down.stderr);
    // killed: the socket file is left behind, and the hint says it is stale
    node.start().await;
    node.kill9();
    let stale = tanoa(&config, &["status"]).await;
    stale.expect_code(1, "status on a stale socket");
    assert!(stale.stderr.contains("stale socket"), "{}", stale.stderr);

    // A partner that trusts ws-cert (with the snippet init printed) imports the exported
    // envelope; the tampered copy and an untrusting node refuse it.
    let snippet = init["trusted_snippet"].as_str().unwrap();
    let partner = TestNode::start_new(&b.tanoad, "fj-cert", snippet).await;
    let pcfg = partner.config_path();
    let imp = tanoa(pcfg, &["--json", "import", env_file.to_str().unwrap()]).await;
    imp.expect_code(0, "import into a partner");
    assert_eq!(imp.json()["outcome"], "inserted");
    assert_eq!(imp.json()["item_id"], item_id.as_str());
    let imp = tanoa(pcfg, &["--json", "import", env_file.to_str().unwrap()]).await;
    imp.expect_code(0, "import again");
    assert_eq!(imp.json()["outcome"], "duplicate");
    let bad = tanoa(pcfg, &["import", tampered.to_str().unwrap()]).await;
    bad.expect_code(1, "import tampered");
    assert!(bad.stderr.contains("bad_signature"), "{}", bad.stderr);
    let s = tanoa(pcfg, &["--json", "show", &item_id]).await;
    s.expect_code(0, "partner shows the imported advisory");
    let s = s.json();
    assert_eq!(s["source"], "import");
    assert_eq!(s["verification"]["valid"], true);
    assert_eq!(s["verification"]["signer"], "ws-cert");
    let q = tanoa(pcfg, &["--json", "search", "203.0.113.45"]).await;
    q.expect_code(0, "partner search");
    assert_eq!(q.json()["hits"].as_array().unwrap().len(), 1);

    let stranger = TestNode::start_new(&b.tanoad, "to-cert", "").await;
    let no = tanoa(
        stranger.config_path(),
        &["import", env_file.to_str().unwrap()],
    )
    .await;
    no.expect_code(1, "import into a node that does not trust ws-cert");
    assert!(no.stderr.contains("unknown_key"), "{}", no.stderr);
}
