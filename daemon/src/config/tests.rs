//! The config tests: parsing, defaults, every section's problems under its key, and the
//! documented keys matching the types.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

fn dir_with_key(id: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("keys")).unwrap();
    let key = crate::keys::generate().unwrap();
    crate::keys::write_key_file(&dir.path().join(format!("keys/{id}.key")), id, &key).unwrap();
    dir
}

fn load_text(dir: &Path, text: &str) -> Result<Config, ConfigError> {
    let path = dir.join("tanoad.toml");
    std::fs::write(&path, text).unwrap();
    Config::load(&path)
}

/// The `| `key` | default | … |` rows of the `## Limits` table of docs/advisory-format.md.
fn documented_limits() -> Vec<(String, String)> {
    let doc = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/advisory-format.md"),
    )
    .unwrap();
    let section = doc.split("\n## Limits").nth(1).unwrap();
    let section = section.split("\n## ").next().unwrap();
    section
        .lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let key = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
            let default = cells.get(2)?.split_whitespace().next()?;
            Some((key.to_string(), default.to_string()))
        })
        .collect()
}

/// Every `key = value` of the ```toml blocks of the docs (commented-out keys included),
/// with the `[section]` it is under.
fn documented_toml_blocks() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for doc in ["advisory-format.md", "interop.md"] {
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../docs")
                .join(doc),
        )
        .unwrap();
        for block in text.split("```toml\n").skip(1) {
            let block = block.split("```").next().unwrap();
            // Only daemon configuration blocks (an advisory draft has `[[indicators]]`).
            let first_section = block
                .lines()
                .find_map(|l| l.trim_start().strip_prefix('['))
                .map(|h| h.trim_matches(['[', ']']).split('.').next().unwrap_or(""));
            const SECTIONS: [&str; 12] = [
                "member",
                "storage",
                "operator",
                "log",
                "limits",
                "trusted",
                "peer",
                "sync",
                "metrics",
                "members",
                "taxii",
                "warninglists",
            ];
            if !first_section.is_some_and(|s| SECTIONS.contains(&s)) {
                continue;
            }
            let body: String = block
                .lines()
                .map(|l| {
                    // `# key = value  # comment` documents a key: uncomment it.
                    let t = l.trim_start();
                    match t.strip_prefix("# ") {
                        Some(rest)
                            if rest.split_once(" = ").is_some_and(|(k, _)| {
                                k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                            }) =>
                        {
                            rest.to_string()
                        }
                        _ => l.to_string(),
                    }
                })
                .collect::<Vec<_>>()
                .join("\n");
            out.push((doc.to_string(), body));
        }
    }
    out
}

#[test]
fn documented_config_keys_and_defaults_match_the_config_types() {
    let dir = dir_with_key("ws-cert");
    let documented = documented_limits();
    assert!(documented.len() >= 7, "{documented:?}");
    // Every documented key is accepted by the real config parser with its documented default,
    // and that default is the one `Limits::default()` has.
    let defaults = toml::Value::try_from(Limits::default()).unwrap();
    for (key, default) in &documented {
        let text = format!("[member]\nid = \"ws-cert\"\n[limits]\n{key} = {default}\n");
        let c = load_text(dir.path(), &text)
            .unwrap_or_else(|e| panic!("documented [limits] {key} = {default}: {e}"));
        let loaded = toml::Value::try_from(&c.limits).unwrap();
        assert_eq!(
            defaults.get(key).map(ToString::to_string).as_deref(),
            Some(default.as_str()),
            "docs/advisory-format.md: default of [limits] {key}"
        );
        assert_eq!(
            loaded, defaults,
            "[limits] {key} = {default} is the default"
        );
    }
    // Every key of the type is documented.
    let keys: Vec<&String> = documented.iter().map(|(k, _)| k).collect();
    for k in defaults.as_table().unwrap().keys() {
        assert!(keys.contains(&k), "[limits] {k} is not documented");
    }
    // Every daemon config block of the docs parses with the real parser (unknown keys are
    // refused there), commented-out keys included.
    let blocks = documented_toml_blocks();
    assert!(
        blocks.len() >= 2,
        "the [taxii] and [warninglists] blocks of docs/interop.md"
    );
    for (doc, body) in blocks {
        let text = format!("[member]\nid = \"ws-cert\"\n{body}\n");
        if let Err(e) = parse_raw(&text, doc.as_str()) {
            panic!("docs/{doc}: a config block does not parse: {e}\n{body}");
        }
    }
}

#[test]
fn example_config_loads_with_defaults_resolved() {
    let dir = dir_with_key("ws-cert");
    let c = load_text(dir.path(), &Config::example("ws-cert", "Samoa \"CERT\"")).unwrap();
    assert_eq!(c.member.id, "ws-cert");
    assert_eq!(c.member.name, "Samoa \"CERT\"");
    assert_eq!(c.member.key_file, dir.path().join("keys/ws-cert.key"));
    assert_eq!(c.storage.data_dir, dir.path().join("data"));
    assert_eq!(c.operator.socket, dir.path().join("data/tanoad.sock"));
    assert_eq!(c.storage.cache_mb, default_cache_mb());
    assert_eq!(c.log.format, LogFormat::Text);
    assert_eq!(c.limits, Limits::default());
    assert!(c.operator.tcp.is_none());
}

#[test]
fn minimal_config_defaults_everything_optional() {
    let dir = dir_with_key("to-cert");
    let c = load_text(dir.path(), "[member]\nid = \"to-cert\"\n").unwrap();
    assert_eq!(c.member.name, "to-cert");
    assert_eq!(c.log.level, "info");
    assert!(c.trusted.is_empty());
}

#[test]
fn bad_value_names_file_and_key() {
    let dir = dir_with_key("ws-cert");
    let err = load_text(
        dir.path(),
        "[member]\nid = \"ws-cert\"\n[storage]\ncache_mb = \"big\"\n",
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("tanoad.toml: storage.cache_mb: invalid type: string \"big\", expected u64"),
        "{msg}"
    );
    assert!(msg.contains("(line 4)"), "{msg}");
}

#[test]
fn unknown_key_names_key_and_table() {
    let dir = dir_with_key("ws-cert");
    let err = load_text(
        dir.path(),
        "[member]\nid = \"ws-cert\"\n[storage]\ncahce_mb = 5\n",
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("tanoad.toml: storage.cahce_mb: unknown field `cahce_mb`"),
        "{msg}"
    );
    let err = load_text(
        dir.path(),
        "[member]\nid = \"ws-cert\"\n[limits]\nmax_indicatorz = 5\n",
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("limits.max_indicatorz: unknown field `max_indicatorz`"),
        "{err}"
    );
    let err = load_text(dir.path(), "[member]\nid = \"ws-cert\"\n[peers]\n").unwrap_err();
    assert!(err.to_string().contains("unknown field `peers`"), "{err}");
}

#[test]
fn syntax_error_names_file_and_line() {
    let dir = dir_with_key("ws-cert");
    let err = load_text(dir.path(), "[member]\nid = \"ws-cert\n").unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with(&format!("{}", dir.path().join("tanoad.toml").display())));
    assert!(msg.contains("(line 2)"), "{msg}");
}

#[test]
fn validation_names_every_bad_key() {
    let dir = dir_with_key("ws-cert");
    let err = load_text(
        dir.path(),
        r#"
[member]
id = "WS CERT"
key_file = "nope.key"
[storage]
cache_mb = 0
[operator]
tcp_listen = "localhost"
tls_cert = "missing.crt"
[log]
level = "[[["
[limits]
max_indicators = 0
[[trusted]]
member = "to-cert"
public_key = "abcd"
valid_from = "yesterday"
"#,
    )
    .unwrap_err();
    let keys: Vec<String> = err.problems().into_iter().map(|p| p.key).collect();
    for k in [
        "member.id",
        "member.key_file",
        "storage.cache_mb",
        "operator.tcp_listen",
        "operator.tls_cert",
        "operator.tls_key",
        "operator.client_ca",
        "log.level",
        "limits.max_indicators",
        "trusted[0].public_key",
        "trusted[0].valid_from",
    ] {
        assert!(keys.iter().any(|x| x == k), "{k} missing in {err}");
    }
    assert!(
        err.to_string()
            .contains("tanoad.toml: member.id: \"WS CERT\"")
    );
}

#[test]
fn trusted_keys_and_tcp_listener_resolve() {
    let dir = dir_with_key("ws-cert");
    for f in ["op.crt", "op.key", "ca.crt"] {
        std::fs::write(dir.path().join(f), "x").unwrap();
    }
    let other = crate::keys::generate().unwrap().verifying_key();
    let text = format!(
        r#"
[member]
id = "ws-cert"
[operator]
tcp_listen = "127.0.0.1:7443"
tls_cert = "op.crt"
tls_key = "op.key"
client_ca = "ca.crt"
[[trusted]]
member = "to-cert"
public_key = "{}"
valid_from = "2026-01-01T00:00:00Z"
"#,
        crate::keys::public_hex(&other)
    );
    let c = load_text(dir.path(), &text).unwrap();
    let tcp = c.operator.tcp.unwrap();
    assert_eq!(tcp.listen, "127.0.0.1:7443".parse().unwrap());
    assert_eq!(tcp.client_ca, dir.path().join("ca.crt"));
    assert_eq!(c.trusted.len(), 1);
    assert_eq!(c.trusted[0].member, "to-cert");
    assert_eq!(c.trusted[0].valid_from_ms, Some(1_767_225_600_000));
    assert_eq!(c.trusted[0].valid_until_ms, None);
}

fn federated_text(dir: &Path, roster_extra: &str) -> String {
    for f in ["ws.pem", "ws.key", "ca.pem"] {
        std::fs::write(dir.join(f), "x").unwrap();
    }
    let to = crate::keys::generate().unwrap().verifying_key();
    let x = FederatedExample {
        member_id: "ws-cert".into(),
        name: "Samoa CERT".into(),
        key_file: "keys/ws-cert.key".into(),
        data_dir: "data".into(),
        peer_listen: "127.0.0.1:7401".into(),
        tls_cert: "ws.pem".into(),
        tls_key: "ws.key".into(),
        trust_anchors: vec!["ca.pem".into()],
        metrics_listen: Some("127.0.0.1:9464".into()),
        sync: vec![
            ("interval_ms".into(), "2000".into()),
            ("jitter_ms".into(), "200".into()),
        ],
        members: vec![
            ExampleMember {
                id: "ws-cert".into(),
                name: "Samoa CERT".into(),
                endpoints: vec!["127.0.0.1:7401".into()],
                public_keys: vec![],
                tls_pins: vec![],
            },
            ExampleMember {
                id: "to-cert".into(),
                name: "Tonga \"CERT\"".into(),
                endpoints: vec!["127.0.0.1:7402".into(), "[2001:db8::2]:7400".into()],
                public_keys: vec![crate::keys::public_hex(&to)],
                tls_pins: vec![],
            },
        ],
        ..Default::default()
    };
    format!("{}{roster_extra}", Config::example_federated(&x))
}

#[test]
fn federated_example_loads_with_roster_peer_and_metrics() {
    let dir = dir_with_key("ws-cert");
    let c = load_text(dir.path(), &federated_text(dir.path(), "")).unwrap();
    let p = c.peer.as_ref().unwrap();
    assert_eq!(p.listen, "127.0.0.1:7401".parse().unwrap());
    assert_eq!(p.trust_anchors, vec![dir.path().join("ca.pem")]);
    assert_eq!(c.sync.interval_ms, 2000);
    assert_eq!(c.sync.fanout, 3);
    assert_eq!(
        c.metrics.as_ref().unwrap().listen,
        "127.0.0.1:9464".parse().unwrap()
    );
    assert_eq!(c.members.len(), 2);
    assert_eq!(c.own_roster_entry().unwrap().id, "ws-cert");
    let peers: Vec<&str> = c.peers().map(|m| m.id.as_str()).collect();
    assert_eq!(peers, ["to-cert"]);
    let to = &c.members[1];
    assert_eq!(to.name, "Tonga \"CERT\"");
    assert_eq!(
        to.endpoints[1],
        PeerEndpoint {
            host: "2001:db8::2".into(),
            port: 7400
        }
    );
    assert_eq!(to.endpoints[1].to_string(), "[2001:db8::2]:7400");
    assert_eq!(c.keyring_records().len(), 1);
    assert_eq!(c.keyring_records()[0].member, "to-cert");
}

#[test]
fn single_node_example_has_no_federation() {
    let dir = dir_with_key("ws-cert");
    let c = load_text(dir.path(), &Config::example("ws-cert", "Samoa")).unwrap();
    assert!(c.peer.is_none() && c.metrics.is_none() && c.members.is_empty());
    assert_eq!(c.sync, SyncConfig::default());
}

#[test]
fn roster_problems_name_the_key() {
    let dir = dir_with_key("ws-cert");
    let dup_key = crate::keys::public_hex(&crate::keys::generate().unwrap().verifying_key());
    let extra = format!(
        r#"
[[members]]
id = "fj-cert"
endpoints = ["192.0.2.5:7400", "nohostport", "192.0.2.6:0"]
[[members.keys]]
public_key = "{dup_key}"
valid_from = "2027-01-01T00:00:00Z"
valid_until = "2026-01-01T00:00:00Z"

[[members]]
id = "fj-cert"

[[members]]
id = "Bad_Id"

[[members]]
id = "au-acsc"
[[members.keys]]
public_key = "{dup_key}"
[[members.keys]]
public_key = "zz"
"#
    );
    let text = federated_text(dir.path(), &extra)
        .replace("interval_ms = 2000", "")
        .replace("jitter_ms = 200", "jitter_ms = 50000");
    let err = load_text(dir.path(), &text).unwrap_err();
    let keys: Vec<String> = err.problems().into_iter().map(|p| p.key).collect();
    for k in [
        "members[2].endpoints[1]",
        "members[2].endpoints[2]",
        "members[2].keys[0].valid_until",
        "members[3].id",
        "members[4].id",
        "members[5].keys[0].public_key",
        "members[5].keys[1].public_key",
        "sync.jitter_ms",
    ] {
        assert!(keys.iter().any(|x| x == k), "{k} missing in {err}");
    }
    assert!(
        err.to_string()
            .contains("listed twice (first as members[2])"),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("already listed for members[2] (fj-cert)"),
        "{err}"
    );
}

#[test]
fn peer_section_requires_its_files() {
    let dir = dir_with_key("ws-cert");
    let err = load_text(
        dir.path(),
        "[member]\nid = \"ws-cert\"\n[peer]\nlisten = \"nope\"\ntrust_anchors = [\"missing.pem\"]\n\
         [metrics]\nlisten = \"x\"\n",
    )
    .unwrap_err();
    let keys: Vec<String> = err.problems().into_iter().map(|p| p.key).collect();
    for k in [
        "peer.listen",
        "peer.tls_cert",
        "peer.tls_key",
        "peer.trust_anchors[0]",
        "metrics.listen",
    ] {
        assert!(keys.iter().any(|x| x == k), "{k} missing in {err}");
    }
    let err = load_text(
        dir.path(),
        "[member]\nid = \"ws-cert\"\n[sync]\nfanout_typo = 1\n",
    )
    .unwrap_err();
    assert!(err.to_string().contains("sync.fanout_typo"), "{err}");
}

#[test]
fn endpoints_parse() {
    assert_eq!(
        PeerEndpoint::parse("peer.example:7400")
            .unwrap()
            .to_string(),
        "peer.example:7400"
    );
    for bad in [
        "",
        ":7400",
        "host",
        "host:",
        "host:99999",
        "2001:db8::1:7400",
        "a b:1",
    ] {
        assert!(PeerEndpoint::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn missing_file_is_named() {
    let err = Config::load("/nonexistent/tanoad.toml").unwrap_err();
    assert!(
        err.to_string().contains("/nonexistent/tanoad.toml"),
        "{err}"
    );
}

#[test]
fn warninglists_section_resolves_and_checks_its_directory() {
    let dir = dir_with_key("ws-cert");
    let base = Config::example("ws-cert", "Samoa CERT");
    let list = dir.path().join("wl/lists/doc/list.json");
    std::fs::create_dir_all(list.parent().unwrap()).unwrap();
    std::fs::write(&list, "{}").unwrap();
    let c = load_text(
        dir.path(),
        &format!("{base}\n[warninglists]\ndir = \"wl\"\ndisabled = [\"doc\"]\n"),
    )
    .unwrap();
    let w = c.warninglists.unwrap();
    assert_eq!(w.dir, dir.path().join("wl"));
    assert_eq!(w.disabled, ["doc"]);
    assert!(load_text(dir.path(), &base).unwrap().warninglists.is_none());
    for (extra, key) in [
        ("dir = \"missing\"", "warninglists.dir"),
        ("dir = \"keys\"", "warninglists.dir"),
        (
            "dir = \"wl\"\ndisabled = [\"nope\"]",
            "warninglists.disabled[0]",
        ),
        ("dir = \"wl\"\nenabled = []", "warninglists.enabled"),
    ] {
        let err = load_text(dir.path(), &format!("{base}\n[warninglists]\n{extra}\n")).unwrap_err();
        assert!(
            err.problems().iter().any(|p| p.key.starts_with(key)),
            "{extra}: {err}"
        );
    }
}

#[test]
fn tls_pins_parse_and_make_trust_anchors_optional_only_when_every_peer_is_pinned() {
    let dir = dir_with_key("ws-cert");
    for f in ["ws.pem", "ws.key"] {
        std::fs::write(dir.path().join(f), "x").unwrap();
    }
    let pin_a = format!("sha256:{}", "ab".repeat(32));
    let pin_b = "cd".repeat(32);
    let text = |to_pins: &str, fj_pins: &str| {
        format!(
            "[member]\nid = \"ws-cert\"\n[peer]\nlisten = \"127.0.0.1:7401\"\n\
             tls_cert = \"ws.pem\"\ntls_key = \"ws.key\"\n\
             [[members]]\nid = \"ws-cert\"\n\
             [[members]]\nid = \"to-cert\"\nendpoints = [\"127.0.0.1:7402\"]\ntls_pins = [{to_pins}]\n\
             [[members]]\nid = \"fj-cert\"\nendpoints = [\"127.0.0.1:7403\"]\ntls_pins = [{fj_pins}]\n"
        )
    };
    // Every peer pinned (this member needs no pin of its own): no CA needed.
    let c = load_text(
        dir.path(),
        &text(
            &format!("\"{pin_a}\", \"{pin_b}\""),
            &format!("\"{pin_b}x\""),
        ),
    )
    .unwrap_err();
    assert!(
        c.to_string().contains("members[2].tls_pins[0]"),
        "a bad pin names its key: {c}"
    );
    let pin_c = "ef".repeat(32);
    let c = load_text(
        dir.path(),
        &text(
            &format!("\"{pin_a}\", \"{pin_b}\""),
            &format!("\"{pin_c}\""),
        ),
    )
    .unwrap();
    assert!(c.peer.as_ref().unwrap().trust_anchors.is_empty());
    let to = c.members.iter().find(|m| m.id == "to-cert").unwrap();
    assert_eq!(to.tls_pins.len(), 2, "two pins during a renewal");
    assert_eq!(to.tls_pins[0].0, [0xab; 32]);
    let m = c.membership();
    assert_eq!(m.version, 0);
    assert_eq!(
        m.member_by_pin(&to.tls_pins[1]).map(|x| x.id.as_str()),
        Some("to-cert")
    );
    // fj-cert without pins and no trust anchor: refused, naming the member.
    let err = load_text(dir.path(), &text(&format!("\"{pin_a}\""), "")).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("peer.trust_anchors") && msg.contains("members[2] (fj-cert)"),
        "{msg}"
    );
    // The same pin twice is a mistake.
    let err = load_text(dir.path(), &text(&format!("\"{pin_a}\", \"{pin_a}\""), "")).unwrap_err();
    assert!(err.to_string().contains("members[1].tls_pins[1]"), "{err}");
}

#[test]
fn a_signed_roster_file_is_checked_by_hash_and_gives_the_members() {
    use tanoa_core::roster::{JoinRequest, RosterSignature, SignedRoster, found};
    let dir = dir_with_key("ws-cert");
    let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let req = JoinRequest::sign(
        "ws-cert",
        "Samoa CERT",
        vec!["127.0.0.1:7400".into()],
        vec![],
        &key,
    );
    let doc = found("pacific", 1, 1, &[req]).unwrap();
    let h = doc.hash();
    let s = SignedRoster {
        signatures: vec![RosterSignature::sign("ws-cert", &key, &h)],
        roster: doc,
    };
    std::fs::write(dir.path().join("roster.json"), s.to_json()).unwrap();
    let base = "[member]\nid = \"ws-cert\"\n";
    let with = |sha: &str| format!("{base}[roster]\nfile = \"roster.json\"\nsha256 = \"{sha}\"\n");
    let ok = load_text(dir.path(), &with(&h.to_hex())).unwrap();
    assert_eq!(ok.roster.as_ref().unwrap().sha256, h);
    assert_eq!(ok.members.len(), 1);
    assert_eq!(ok.members[0].id, "ws-cert");
    assert_eq!(ok.members[0].endpoints[0].port, 7400);
    // Another hash than the file's: refused, naming the key and both hashes.
    let other = "ab".repeat(32);
    let p = load_text(dir.path(), &with(&other)).unwrap_err().problems();
    assert_eq!(p[0].key, "roster.sha256", "{p:?}");
    assert!(
        p[0].message.contains(&h.to_hex()) && p[0].message.contains(&other),
        "{p:?}"
    );
    // A local [[members]] roster and a signed one exclude each other.
    let both = format!("{}\n[[members]]\nid = \"to-cert\"\n", with(&h.to_hex()));
    let p = load_text(dir.path(), &both).unwrap_err().problems();
    assert!(p.iter().any(|x| x.key == "roster"), "{p:?}");
    // A missing file is named.
    std::fs::remove_file(dir.path().join("roster.json")).unwrap();
    let p = load_text(dir.path(), &with(&h.to_hex()))
        .unwrap_err()
        .problems();
    assert_eq!(p[0].key, "roster.file", "{p:?}");
}

/// Found by the `config_toml` fuzz target: a non-ASCII `[log] level` made `tracing-subscriber`'s
/// directive parser panic (a byte index inside a multi-byte character). It is now a problem
/// under `log.level`, and `tanoad --log-level` goes through the same check.
#[test]
fn a_non_ascii_log_level_is_a_problem_not_a_panic() {
    let dir = dir_with_key("ws-cert");
    for level in [
        // The level of the fuzz finding (its bytes were invalid UTF-8, read lossily); the old
        // check panicked inside tracing-subscriber on it.
        "isyn\u{fffd}cnf\u{fffd}bbbbbbbbbbbbbbbbnd '-', s]]) ar\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}w\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}bbbbbnD '-', s]]) ar\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}[\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}rbbbbbbbbbbbbbbbbbbbbbbbbbbbbbndbbbbbbbbnd '=', s]]) arrx\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}rbbbbbbbbbbbbbbbbbbbbbbbbbbbbbndbbbbbbbbnd '=', s]]) arrxatste/ii.pem",
        "info,\u{d6}\u{d6}=debug",
        "\u{e9}",
    ] {
        let text = format!(
            "[member]\nid = \"ws-cert\"\n[log]\nlevel = {}\n",
            toml::Value::String(level.to_string())
        );
        let err = load_text(dir.path(), &text).unwrap_err();
        let p = err.problems();
        assert!(
            p.iter()
                .any(|x| x.key == "log.level" && x.message.contains("non-ASCII")),
            "{level:?}: {p:?}"
        );
    }
    assert!(super::parse_log_filter("tanoa_daemon=debug,info").is_ok());
}

#[test]
fn a_span_field_value_in_the_log_filter_is_a_literal_not_a_regex() {
    // config_toml fuzz finding (`fuzz/regressions/config_toml/log-level-regex-dfa-timeout`):
    // compiled as a regular expression, this field value (`c` and 55 `.`) made the regex
    // engine build an exponential DFA and parsing did not return for minutes.
    let level = format!(
        "in1line01:[0 Zo%a{{ame1= c{}JJJJJJJJJwJJ}}}}}}}}}}}}}}}}}}}}}}{{",
        ".".repeat(55)
    );
    let parsed = super::parse_log_filter(&level);
    assert!(
        parsed
            .as_ref()
            .is_err_and(|e| e.contains("invalid filter directive")),
        "{parsed:?}"
    );
    // Field filters still work, matched literally.
    let f = super::parse_log_filter("tanoa_daemon[sync{peer=to-cert}]=debug,info").unwrap();
    assert!(f.to_string().contains("peer=to-cert"), "{f}");
}
