//! Blocklists from a real `tanoad` through the real CLI: `tanoa export --format
//! csv|text|suricata|zeek` lists the active indicators only (not withdrawn, not expired, TLP up
//! to the ceiling), merges a value held by several advisories, applies the confidence, kind
//! and origin filters, leaves warning-listed values out unless asked (then marks them), and
//! streams an export larger than one chunk.
//!
//! Suricata and Zeek are not installed on the test machine (no Debian package candidate here,
//! and no script of the repository installs them): the rules are checked line by line against
//! the exact text expected, and structurally by `blocklist::validate_suricata_rule`.

use std::path::Path;

use tanoa_daemon::envelope::SigningIdentity;
use tanoa_daemon::interop::blocklist::{self, SID_BASE, sid_home};
use tanoa_daemon::keys;
use tanoa_daemon::model::{self, Advisory, Indicator, IndicatorKind, Limits, Severity, Tlp};
use tanoa_integration_tests::{RunOutput, TestNode, run_command};
use tanoa_proto::v1 as pb;

use crate::bins;

/// 2025-01-01T00:00:00Z.
const Y2025: i64 = 1_735_689_600_000;
/// 2025-06-01T00:00:00Z.
const JUNE_2025: i64 = 1_748_736_000_000;
/// 2099-01-01T00:00:00Z.
const Y2099: i64 = 4_070_908_800_000;

async fn tanoa(node: &TestNode, args: &[&str]) -> RunOutput {
    let mut all = vec!["--config", node.config_path().to_str().unwrap()];
    all.extend_from_slice(args);
    run_command(&bins().tanoa, &all).await
}

/// `tanoa export ARGS` → stdout (exit 0 required).
async fn export(node: &TestNode, args: &[&str]) -> String {
    let mut all = vec!["export"];
    all.extend_from_slice(args);
    let out = tanoa(node, &all).await;
    out.expect_code(0, &format!("tanoa {all:?}"));
    out.stdout
}

fn ind(kind: pb::IndicatorKind, value: &str, confidence: u32) -> pb::Indicator {
    pb::Indicator {
        kind: kind as i32,
        value: value.into(),
        confidence,
        ..Default::default()
    }
}

fn draft(id: &str, tlp: pb::Tlp, indicators: Vec<pb::Indicator>) -> pb::AdvisoryDraft {
    pb::AdvisoryDraft {
        id: id.into(),
        tlp: tlp as i32,
        audience: if tlp == pb::Tlp::Amber {
            vec!["fj-cert".into()]
        } else {
            Vec::new()
        },
        title: format!("Blocklist test {id}"),
        indicators,
        ..Default::default()
    }
}

fn model_ind(kind: IndicatorKind, value: &str, confidence: u8, until: Option<i64>) -> Indicator {
    Indicator {
        kind,
        value: value.into(),
        confidence,
        valid_until_ms: until,
        note: String::new(),
    }
}

/// A GREEN advisory of fj-cert created in 2025, signed outside the daemon.
fn fj_advisory(
    fj: &SigningIdentity,
    id: &str,
    valid_until_ms: Option<i64>,
    indicators: Vec<Indicator>,
) -> pb::Envelope {
    let mut a = Advisory {
        id: id.into(),
        origin: "fj-cert".into(),
        revision: 1,
        created_ms: Y2025,
        modified_ms: Y2025,
        valid_until_ms,
        tlp: Tlp::Green,
        audience: Vec::new(),
        title: format!("Fiji {id}"),
        summary: String::new(),
        severity: Severity::Medium,
        actors: Vec::new(),
        cves: Vec::new(),
        indicators,
        references: Vec::new(),
        withdrawn: false,
        withdrawn_reason: String::new(),
        extras: Vec::new(),
    };
    model::normalize_advisory(&mut a);
    fj.sign(a, &Limits::default())
        .expect("sign")
        .envelope()
        .to_proto()
}

/// Writes a warning list `doc-benign` holding `benign.example`.
fn benign_list(dir: &Path) {
    let p = dir.join("doc-benign/list.json");
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(
        p,
        r#"{"name": "Benign test domains", "description": "test", "version": 1,
            "type": "string", "list": ["benign.example"]}"#,
    )
    .unwrap();
}

fn lines(s: &str) -> Vec<&str> {
    s.lines().collect()
}

#[tokio::test]
async fn blocklists_hold_active_indicators_in_every_format() {
    let lists = tempfile::tempdir().unwrap();
    benign_list(lists.path());
    let fj = SigningIdentity::new("fj-cert", keys::generate().unwrap());
    let extra = format!(
        "[[trusted]]\nmember = \"fj-cert\"\npublic_key = \"{}\"\n\n[warninglists]\ndir = {:?}\n",
        keys::public_hex(&fj.verifying_key()),
        lists.path().display().to_string()
    );
    let node = TestNode::start_new(&bins().tanoad, "ws-cert", &extra).await;
    let mut c = node.client().await;
    use pb::IndicatorKind as K;
    let sha = "ab".repeat(32);
    let mut b = draft(
        "ws-b",
        pb::Tlp::Clear,
        vec![
            ind(K::Ipv4, "192.0.2.1", 50),
            ind(K::Cidr, "198.51.100.0/24", 80),
            ind(K::Ipv6, "2001:db8::5", 80),
        ],
    );
    b.valid_until_ms = Y2099;
    let drafts = vec![
        draft(
            "ws-a",
            pb::Tlp::Green,
            vec![
                ind(K::Ipv4, "192.0.2.1", 90),
                ind(K::Domain, "c2.example", 60),
                ind(K::Url, "http://c2.example/gate.php?id=1", 80),
                ind(K::Email, "x@c2.example", 50),
                ind(K::Sha256, &sha, 70),
                ind(K::Cve, "CVE-2021-44228", 0),
                ind(K::Filename, "invoice.exe", 40),
                ind(K::Domain, "benign.example", 90),
            ],
        ),
        b,
        draft("ws-c", pb::Tlp::Amber, vec![ind(K::Ipv4, "192.0.2.50", 90)]),
        draft(
            "ws-d",
            pb::Tlp::Green,
            vec![ind(K::Domain, "withdrawn.example", 90)],
        ),
    ];
    let published = c
        .publish_batch(pb::PublishBatchRequest { drafts })
        .await
        .unwrap()
        .into_inner()
        .results;
    assert_eq!(published[0].warnings.len(), 1, "benign.example is flagged");
    assert_eq!(published[0].warnings[0].indicator_index, 7);
    c.withdraw(pb::WithdrawRequest {
        id: "ws-d".into(),
        reason: "false positive".into(),
    })
    .await
    .unwrap();
    for env in [
        fj_advisory(
            &fj,
            "fj-1",
            None,
            vec![
                model_ind(IndicatorKind::Ipv4, "192.0.2.1", 95, None),
                model_ind(IndicatorKind::Domain, "fj-c2.example", 30, None),
                model_ind(
                    IndicatorKind::Domain,
                    "expired.example",
                    90,
                    Some(JUNE_2025),
                ),
            ],
        ),
        fj_advisory(
            &fj,
            "fj-2",
            Some(JUNE_2025),
            vec![model_ind(IndicatorKind::Ipv4, "192.0.2.66", 90, None)],
        ),
    ] {
        let r = c
            .import_envelope(pb::ImportEnvelopeRequest {
                envelope: Some(env),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.outcome, "inserted");
    }

    // CSV: one line per value, every advisory holding it, the most restrictive TLP, the
    // highest confidence; nothing withdrawn, expired, AMBER or warning-listed.
    let csv = export(&node, &["--format", "csv"]).await;
    let expected_csv = format!(
        "kind,value,confidence,tlp,valid_until,origins,advisories,warning_lists
ipv4,192.0.2.1,95,GREEN,,fj-cert;ws-cert,fj-cert/fj-1;ws-cert/ws-a;ws-cert/ws-b,
ipv6,2001:db8::5,80,CLEAR,2099-01-01T00:00:00Z,ws-cert,ws-cert/ws-b,
cidr,198.51.100.0/24,80,CLEAR,2099-01-01T00:00:00Z,ws-cert,ws-cert/ws-b,
domain,c2.example,60,GREEN,,ws-cert,ws-cert/ws-a,
domain,fj-c2.example,30,GREEN,,fj-cert,fj-cert/fj-1,
url,http://c2.example/gate.php?id=1,80,GREEN,,ws-cert,ws-cert/ws-a,
email,x@c2.example,50,GREEN,,ws-cert,ws-cert/ws-a,
sha256,{sha},70,GREEN,,ws-cert,ws-cert/ws-a,
cve,CVE-2021-44228,,GREEN,,ws-cert,ws-cert/ws-a,
filename,invoice.exe,40,GREEN,,ws-cert,ws-cert/ws-a,
"
    );
    assert_eq!(csv, expected_csv);

    // Text: the same values, one per line.
    let text = export(&node, &["--format", "text"]).await;
    assert_eq!(
        text,
        format!(
            "192.0.2.1\n2001:db8::5\n198.51.100.0/24\nc2.example\nfj-c2.example\n\
             http://c2.example/gate.php?id=1\nx@c2.example\n{sha}\nCVE-2021-44228\ninvoice.exe\n"
        )
    );

    // Suricata, written to a file.
    let rules_path = node.dir().join("tanoa.rules");
    let out = tanoa(
        &node,
        &[
            "export",
            "--format",
            "suricata",
            "-o",
            rules_path.to_str().unwrap(),
        ],
    )
    .await;
    out.expect_code(0, "export suricata");
    assert!(
        out.stdout
            .contains("Wrote 10 value(s) (12 indicator(s) of 3 advisory(ies))"),
        "{}",
        out.stdout
    );
    let rules = std::fs::read_to_string(&rules_path).unwrap();
    let got = lines(&rules);
    assert!(
        got[0].starts_with("# Tanoa blocklist exported from ws-cert at 20"),
        "{}",
        got[0]
    );
    let sid = |rule: &str, k: IndicatorKind, v: &str| sid_home(rule, k, v);
    let expected_rules = vec![
        "# filter: TLP up to GREEN, confidence >= 0, kinds all, origins all, warning-listed \
         values excluded"
            .to_string(),
        format!(
            "# 9 rules for 10 values; sids {SID_BASE}-1999999999 derived from SHA-256 of (rule, \
             kind, value), stable across exports"
        ),
        "# skipped 1 email: no Suricata keyword matches e-mail addresses reliably".to_string(),
        "# skipped 1 sha256: file hashes need Suricata hash-list files \
         (filemd5/filesha1/filesha256)"
            .to_string(),
        "# skipped 1 cve: not observable in traffic".to_string(),
        format!(
            "alert ip any any <> 192.0.2.1 any (msg:\"TANOA ipv4 192.0.2.1 (fj-cert/fj-1, \
             ws-cert/ws-a +1 more)\"; sid:{}; rev:1;)",
            sid("ip", IndicatorKind::Ipv4, "192.0.2.1")
        ),
        format!(
            "alert ip any any <> 2001:db8::5 any (msg:\"TANOA ipv6 2001:db8::5 (ws-cert/ws-b)\"; \
             sid:{}; rev:1;)",
            sid("ip", IndicatorKind::Ipv6, "2001:db8::5")
        ),
        format!(
            "alert ip any any <> 198.51.100.0/24 any (msg:\"TANOA cidr 198.51.100.0/24 \
             (ws-cert/ws-b)\"; sid:{}; rev:1;)",
            sid("ip", IndicatorKind::Cidr, "198.51.100.0/24")
        ),
        format!(
            "alert dns any any -> any any (msg:\"TANOA domain c2.example (ws-cert/ws-a)\"; \
             dns.query; dotprefix; content:\".c2.example\"; nocase; endswith; sid:{}; rev:1;)",
            sid("dns", IndicatorKind::Domain, "c2.example")
        ),
        format!(
            "alert tls any any -> any any (msg:\"TANOA domain c2.example (ws-cert/ws-a)\"; \
             tls.sni; dotprefix; content:\".c2.example\"; nocase; endswith; sid:{}; rev:1;)",
            sid("tls", IndicatorKind::Domain, "c2.example")
        ),
        format!(
            "alert dns any any -> any any (msg:\"TANOA domain fj-c2.example (fj-cert/fj-1)\"; \
             dns.query; dotprefix; content:\".fj-c2.example\"; nocase; endswith; sid:{}; rev:1;)",
            sid("dns", IndicatorKind::Domain, "fj-c2.example")
        ),
        format!(
            "alert tls any any -> any any (msg:\"TANOA domain fj-c2.example (fj-cert/fj-1)\"; \
             tls.sni; dotprefix; content:\".fj-c2.example\"; nocase; endswith; sid:{}; rev:1;)",
            sid("tls", IndicatorKind::Domain, "fj-c2.example")
        ),
        format!(
            "alert http any any -> any any (msg:\"TANOA url http://c2.example/gate.php?id=1 \
             (ws-cert/ws-a)\"; http.host; content:\"c2.example\"; startswith; endswith; \
             http.uri.raw; content:\"/gate.php?id=1\"; startswith; endswith; sid:{}; rev:1;)",
            sid(
                "http",
                IndicatorKind::Url,
                "http://c2.example/gate.php?id=1"
            )
        ),
        format!(
            "alert http any any -> any any (msg:\"TANOA filename invoice.exe (ws-cert/ws-a)\"; \
             file.name; content:\"invoice.exe\"; startswith; endswith; sid:{}; rev:1;)",
            sid("file", IndicatorKind::Filename, "invoice.exe")
        ),
    ];
    assert_eq!(got[1..], expected_rules[..]);
    for r in got.iter().filter(|l| !l.starts_with('#')) {
        blocklist::validate_suricata_rule(r).unwrap();
    }
    // The same export again gives the same sids.
    let again = export(&node, &["--format", "suricata"]).await;
    assert_eq!(lines(&again)[1..], got[1..]);

    // Zeek intel.
    let zeek = export(&node, &["--format", "zeek"]).await;
    let z = lines(&zeek);
    assert!(z[0].starts_with("# Tanoa blocklist exported from ws-cert at "));
    let expected_zeek = vec![
        "# filter: TLP up to GREEN, confidence >= 0, kinds all, origins all, warning-listed \
         values excluded"
            .to_string(),
        "# skipped 1 cve: no Zeek intel type".to_string(),
        "#fields\tindicator\tindicator_type\tmeta.source\tmeta.desc".to_string(),
        "192.0.2.1\tIntel::ADDR\tfj-cert,ws-cert\tfj-cert/fj-1, ws-cert/ws-a, ws-cert/ws-b"
            .to_string(),
        "2001:db8::5\tIntel::ADDR\tws-cert\tws-cert/ws-b".to_string(),
        "198.51.100.0/24\tIntel::SUBNET\tws-cert\tws-cert/ws-b".to_string(),
        "c2.example\tIntel::DOMAIN\tws-cert\tws-cert/ws-a".to_string(),
        "fj-c2.example\tIntel::DOMAIN\tfj-cert\tfj-cert/fj-1".to_string(),
        "c2.example/gate.php?id=1\tIntel::URL\tws-cert\tws-cert/ws-a".to_string(),
        "x@c2.example\tIntel::EMAIL\tws-cert\tws-cert/ws-a".to_string(),
        format!("{sha}\tIntel::FILE_HASH\tws-cert\tws-cert/ws-a"),
        "invoice.exe\tIntel::FILE_NAME\tws-cert\tws-cert/ws-a".to_string(),
    ];
    assert_eq!(z[1..], expected_zeek[..]);

    // Filters.
    let amber = export(
        &node,
        &["--format", "text", "--max-tlp", "AMBER", "--kind", "ipv4"],
    )
    .await;
    assert_eq!(amber, "192.0.2.1\n192.0.2.50\n");
    let confident = export(&node, &["--format", "text", "--min-confidence", "60"]).await;
    assert_eq!(
        confident,
        format!(
            "192.0.2.1\n2001:db8::5\n198.51.100.0/24\nc2.example\n\
             http://c2.example/gate.php?id=1\n{sha}\n"
        )
    );
    let kinds = export(
        &node,
        &[
            "--format",
            "text",
            "--kind",
            "domain,url",
            "--origin",
            "ws-cert",
        ],
    )
    .await;
    assert_eq!(kinds, "c2.example\nhttp://c2.example/gate.php?id=1\n");
    let fiji = export(&node, &["--format", "csv", "--origin", "fj-cert"]).await;
    assert_eq!(
        lines(&fiji)[1..],
        [
            "ipv4,192.0.2.1,95,GREEN,,fj-cert,fj-cert/fj-1,",
            "domain,fj-c2.example,30,GREEN,,fj-cert,fj-cert/fj-1,",
        ]
    );

    // Warning-listed values on request, marked.
    let marked = export(
        &node,
        &[
            "--format",
            "csv",
            "--kind",
            "domain",
            "--include-warninglisted",
        ],
    )
    .await;
    assert_eq!(
        lines(&marked)[1..],
        [
            "domain,benign.example,90,GREEN,,ws-cert,ws-cert/ws-a,doc-benign",
            "domain,c2.example,60,GREEN,,ws-cert,ws-cert/ws-a,",
            "domain,fj-c2.example,30,GREEN,,fj-cert,fj-cert/fj-1,",
        ]
    );
    let marked = export(
        &node,
        &[
            "--format",
            "zeek",
            "--kind",
            "domain",
            "--include-warninglisted",
        ],
    )
    .await;
    assert!(
        marked.contains(
            "benign.example\tIntel::DOMAIN\tws-cert\tws-cert/ws-a [warning lists: doc-benign]\n"
        ),
        "{marked}"
    );

    // Arguments that do not apply to blocklists.
    let out = tanoa(&node, &["export", "--format", "csv", "ws-a"]).await;
    out.expect_code(2, "blocklist with an advisory id");
    let out = tanoa(
        &node,
        &["export", "--format", "text", "--include-withdrawn"],
    )
    .await;
    out.expect_code(2, "blocklist with --include-withdrawn");

    // JSON summary of a written file.
    let path = node.dir().join("block.txt");
    let out = tanoa(
        &node,
        &[
            "--json",
            "export",
            "--format",
            "text",
            "-o",
            path.to_str().unwrap(),
        ],
    )
    .await;
    out.expect_code(0, "export --json -o");
    let j = out.json();
    assert_eq!(j["values"], 10);
    assert_eq!(j["indicators"], 12);
    assert_eq!(j["advisories"], 3);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
}

#[tokio::test]
async fn exports_larger_than_one_chunk_stream_completely() {
    let node = TestNode::start_new(&bins().tanoad, "ws-cert", "").await;
    let mut c = node.client().await;
    let n = 2_500;
    let indicators: Vec<pb::Indicator> = (0..n)
        .map(|i| ind(pb::IndicatorKind::Ipv6, &format!("2001:db8::1:{i:x}"), 70))
        .collect();
    c.publish(pb::PublishRequest {
        draft: Some(draft("ws-bulk", pb::Tlp::Green, indicators)),
    })
    .await
    .unwrap();
    let mut stream = c
        .export_indicators(pb::ExportIndicatorsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let mut chunks = Vec::new();
    while let Some(chunk) = stream.message().await.unwrap() {
        chunks.push(chunk.indicators.len());
    }
    assert_eq!(chunks, [1000, 1000, 500]);
    let text = export(&node, &["--format", "text"]).await;
    assert_eq!(text.lines().count(), n);
    // A bad filter is refused naming the field.
    let err = c
        .export_indicators(pb::ExportIndicatorsRequest {
            min_confidence: 101,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(
        err.message().contains("min_confidence"),
        "{}",
        err.message()
    );
}

#[tokio::test]
async fn a_client_that_stops_reading_an_export_does_not_hold_up_shutdown() {
    let mut node = TestNode::start_new(&bins().tanoad, "ws-cert", "").await;
    let mut c = node.client().await;
    // 12 chunks: more than the daemon produces ahead of its reader.
    let indicators: Vec<pb::Indicator> = (0..12_000)
        .map(|i| ind(pb::IndicatorKind::Ipv6, &format!("2001:db8::2:{i:x}"), 70))
        .collect();
    c.publish(pb::PublishRequest {
        draft: Some(draft("ws-big", pb::Tlp::Green, indicators)),
    })
    .await
    .unwrap();
    let mut stream = c
        .export_indicators(pb::ExportIndicatorsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let first = stream.message().await.unwrap().unwrap();
    assert_eq!(first.indicators.len(), 1000);
    // The stream stays open and unread while the daemon is asked to stop: it exits 0 in time.
    node.stop().await;
    drop(stream);
}
