//! `docs/federation.md`, executed: every ```` ```sh host=NAME ```` block of the guide runs, in
//! document order, with `bash -eu` on the host it names, so the guide cannot drift from the CLI.
//!
//! Hosts are distinct loopback addresses 127.X.Y.1..4 (one per member, X.Y from the test's
//! process id), each with its own directory; `$SHARED` is one directory all hosts see (the
//! guide's out-of-band file exchange). The test substitutes only the placeholders that the
//! guide's ```` ```sh placeholders ```` blocks declare (checked: the two sets are equal); the
//! out-of-band hashes are what a member would read aloud: `ROSTER_HASH` the hash of the roster
//! file when the founder who built it wrote it, `JOIN_HASH` the hash of the version in force
//! on the member that hands the new member its roster. A block's last line `tanoad --config
//! "$TANOA_HOME/tanoad.toml"` is what a service manager does: the test starts the daemon in the
//! background (or restarts it when it already runs). Each block is bounded in time.
//!
//! Then it checks the outcome: the remaining members at the final roster version with one hash,
//! the joined member holding the GREEN advisory published before it joined, the rotated key
//! signing (taken by a reload), the removed member cut off, and no daemon restarted.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tanoa_core::envelope::SigningIdentity;
use tanoa_core::model::{Advisory, Limits, Severity, Tlp};
use tanoa_core::roster::SignedRoster;
use tanoa_integration_tests::federation::{Federation, holds};
use tanoa_integration_tests::{RunOutput, TestNode, run_command};
use tanoa_proto::v1 as pb;

use crate::bins;

/// The guide, relative to the workspace root.
const GUIDE: &str = "docs/federation.md";
/// How long one block of the guide may take (its `until` loops included).
const BLOCK_TIMEOUT: Duration = Duration::from_secs(90);
/// The line that starts (or restarts) a member's daemon.
const START_LINE: &str = "tanoad --config \"$TANOA_HOME/tanoad.toml\"";
/// The hosts of the guide, in the order of their loopback addresses.
const HOSTS: [(&str, &str); 4] = [
    ("ws", "ws-cert"),
    ("to", "to-cert"),
    ("fj", "fj-cert"),
    ("ck", "ck-cert"),
];

/// One fenced block of the guide.
#[derive(Debug, Clone)]
enum Block {
    /// ```` ```sh placeholders ````: the variable names it exports.
    Placeholders(Vec<String>),
    /// ```` ```sh host=NAME ````: the host and the script.
    Host { host: String, script: String },
}

/// The `sh` blocks of the guide, in order (other blocks are prose for the reader).
fn blocks(text: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let Some(info) = line.strip_prefix("```") else {
            continue;
        };
        let mut body = Vec::new();
        for l in lines.by_ref() {
            if l.starts_with("```") {
                break;
            }
            body.push(l);
        }
        let info: Vec<&str> = info.split_whitespace().collect();
        if info.first() != Some(&"sh") {
            continue;
        }
        match info.get(1) {
            Some(&"placeholders") => out.push(Block::Placeholders(
                body.iter()
                    .filter_map(|l| {
                        let rest = l.trim().strip_prefix("export ")?;
                        Some(rest.split('=').next()?.trim().to_string())
                    })
                    .collect(),
            )),
            Some(tag) if tag.starts_with("host=") => out.push(Block::Host {
                host: tag.trim_start_matches("host=").to_string(),
                script: body.join("\n"),
            }),
            other => {
                panic!("{GUIDE}: a ```sh block tagged {other:?}: tag it host=NAME or placeholders")
            }
        }
    }
    out
}

/// A free TCP port on `ip` (bound and released: the daemon binds it right after).
fn free_port(ip: Ipv4Addr) -> u16 {
    std::net::TcpListener::bind(SocketAddr::from((ip, 0)))
        .unwrap_or_else(|e| panic!("cannot bind {ip}:0: {e}"))
        .local_addr()
        .unwrap()
        .port()
}

/// One host of the guide: its directory and, once started, its daemon.
struct Host {
    member: &'static str,
    root: PathBuf,
    dir: Option<tempfile::TempDir>,
    node: Option<TestNode>,
    peer: SocketAddr,
    starts: u32,
}

impl Host {
    fn home(&self) -> PathBuf {
        self.root.join("home")
    }

    fn node(&self) -> &TestNode {
        self.node
            .as_ref()
            .unwrap_or_else(|| panic!("{}'s tanoad is not started", self.member))
    }
}

/// Runs `script` with `bash -eu` in `cwd` with exactly `env` (and `PATH`).
async fn run_script(script: &str, cwd: &Path, env: &BTreeMap<String, String>) -> RunOutput {
    let mut cmd = tokio::process::Command::new("bash");
    cmd.arg("-euc")
        .arg(script)
        .current_dir(cwd)
        .env_clear()
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = cmd.spawn().expect("spawn bash");
    let out = tokio::time::timeout(BLOCK_TIMEOUT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| {
            panic!("a block of {GUIDE} ran longer than {BLOCK_TIMEOUT:?}:\n{script}")
        })
        .expect("wait for bash");
    RunOutput {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

async fn tanoa_on(node: &TestNode, args: &[&str]) -> RunOutput {
    let mut all = vec!["--socket", node.socket_path().to_str().unwrap()];
    all.extend_from_slice(args);
    run_command(&bins().tanoa, &all).await
}

async fn roster_show(node: &TestNode) -> serde_json::Value {
    let out = tanoa_on(node, &["--json", "roster", "show"]).await;
    out.expect_code(0, "roster show");
    out.json()
}

async fn peers_of(node: &TestNode) -> Vec<String> {
    node.client()
        .await
        .peers(pb::PeersRequest {})
        .await
        .expect("Peers")
        .into_inner()
        .peers
        .into_iter()
        .map(|p| p.member_id)
        .collect()
}

/// A GREEN advisory `id` signed by `identity`, dated `modified_ms`.
fn late_envelope(identity: &SigningIdentity, id: &str, modified_ms: i64) -> pb::Envelope {
    let a = Advisory {
        id: id.into(),
        origin: identity.member().into(),
        revision: 1,
        created_ms: modified_ms,
        modified_ms,
        valid_until_ms: None,
        tlp: Tlp::Green,
        audience: vec![],
        title: format!("{id}, signed after the removal"),
        summary: String::new(),
        severity: Severity::Low,
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

/// The hash of a roster file, as `tanoa roster hash` computes it.
fn file_hash(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    Some(SignedRoster::from_json(&text).ok()?.hash().to_hex())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_federation_guide_runs_as_written() {
    let which = std::process::Command::new("bash")
        .args(["-c", "command -v jq"])
        .output()
        .expect("bash");
    assert!(
        which.status.success(),
        "{GUIDE} uses jq: install it (apt-get install jq) to run this test"
    );
    let root = tanoa_integration_tests::interop::repo_root();
    let guide = std::fs::read_to_string(root.join(GUIDE)).expect("read the guide");
    let blocks = blocks(&guide);

    // The placeholders the guide declares are exactly the ones this test fills.
    let declared: BTreeSet<String> = blocks
        .iter()
        .filter_map(|b| match b {
            Block::Placeholders(v) => Some(v.clone()),
            Block::Host { .. } => None,
        })
        .flatten()
        .collect();
    let filled: BTreeSet<String> = [
        "WS_PEER",
        "TO_PEER",
        "FJ_PEER",
        "CK_PEER",
        "TANOA_HOME",
        "SHARED",
        "ROSTER_HASH",
        "JOIN_HASH",
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    assert_eq!(declared, filled, "the guide's placeholders");

    // Hosts on 127.X.Y.1..4, a shared exchange directory, and `tanoa` on the PATH.
    let pid = std::process::id();
    let (x, y) = (
        u8::try_from(100 + (pid >> 8) % 100).unwrap(),
        u8::try_from(pid % 250).unwrap(),
    );
    let shared = tempfile::Builder::new()
        .prefix("tanoa-guide-shared-")
        .tempdir()
        .unwrap();
    let bin = shared.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::os::unix::fs::symlink(&bins().tanoa, bin.join("tanoa")).unwrap();
    let exchange = shared.path().join("exchange");
    std::fs::create_dir(&exchange).unwrap();
    let mut hosts: BTreeMap<&str, Host> = BTreeMap::new();
    for (i, (host, member)) in HOSTS.iter().enumerate() {
        let ip = Ipv4Addr::new(127, x, y, u8::try_from(i + 1).unwrap());
        let dir = tempfile::Builder::new()
            .prefix(&format!("tanoa-guide-{host}-"))
            .tempdir()
            .unwrap();
        hosts.insert(
            *host,
            Host {
                member,
                root: dir.path().to_path_buf(),
                dir: Some(dir),
                node: None,
                peer: SocketAddr::from((ip, free_port(ip))),
                starts: 0,
            },
        );
    }
    let mut common = BTreeMap::new();
    common.insert(
        "PATH".to_string(),
        format!("{}:/usr/local/bin:/usr/bin:/bin", bin.display()),
    );
    common.insert("LANG".to_string(), "C".to_string());
    for (host, h) in &hosts {
        common.insert(format!("{}_PEER", host.to_uppercase()), h.peer.to_string());
    }
    common.insert("SHARED".to_string(), exchange.display().to_string());

    let mut roster_hash: Option<String> = None;
    let mut join_hash: Option<String> = None;
    let mut ran: BTreeMap<String, usize> = BTreeMap::new();
    let mut pids: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
    for block in &blocks {
        let Block::Host { host, script } = block else {
            continue;
        };
        // What the founder who built the roster reads aloud: the file's hash as written.
        if roster_hash.is_none() {
            roster_hash = file_hash(&exchange.join("roster.json"));
        }
        // What an existing member reads to the new one: the hash of its version in force.
        if join_hash.is_none() && script.contains("$JOIN_HASH") {
            // The guide has to-cert (the approver that published version 2) hand it over.
            let giver = hosts["to"].node();
            join_hash = Some(
                roster_show(giver).await["hash"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            );
        }
        let h = hosts
            .get_mut(host.as_str())
            .unwrap_or_else(|| panic!("{GUIDE}: unknown host {host:?}"));
        let mut env = common.clone();
        env.insert("HOME".into(), h.root.display().to_string());
        env.insert("TANOA_HOME".into(), h.home().display().to_string());
        if let Some(v) = &roster_hash {
            env.insert("ROSTER_HASH".into(), v.clone());
        }
        if let Some(v) = &join_hash {
            env.insert("JOIN_HASH".into(), v.clone());
        }
        let mut lines: Vec<&str> = script.lines().collect();
        let starts = lines
            .last()
            .is_some_and(|l| l.trim_start().starts_with("tanoad"));
        if starts {
            assert_eq!(lines.pop().map(str::trim), Some(START_LINE), "{GUIDE}");
        }
        assert!(
            !lines.iter().any(|l| l.trim_start().starts_with("tanoad ")),
            "{GUIDE}: `tanoad` may only be the last line of a block:\n{script}"
        );
        let out = run_script(&lines.join("\n"), &h.root, &env).await;
        assert_eq!(
            out.code,
            Some(0),
            "{GUIDE}: a block on host {host} failed\n--- block\n{script}\n--- stdout\n{}\n--- \
             stderr\n{}",
            out.stdout,
            out.stderr
        );
        *ran.entry(host.clone()).or_default() += 1;
        if starts {
            match h.node.as_mut() {
                Some(node) => node.restart().await,
                None => {
                    let dir = h.dir.take().unwrap();
                    let config = h.home().join("tanoad.toml");
                    let mut node = TestNode::adopt(&bins().tanoad, dir, config);
                    node.start().await;
                    h.node = Some(node);
                }
            }
            h.starts += 1;
            let pid = h.node().pid().unwrap();
            pids.entry(h.member).or_default().push(pid);
        }
    }
    for (host, _) in HOSTS {
        assert!(
            ran.get(host).copied().unwrap_or(0) >= 3,
            "{host} ran {ran:?}"
        );
        assert!(
            hosts[host].node.is_some(),
            "the guide starts {host}'s tanoad"
        );
    }
    let (ws, to, fj, ck) = (
        hosts["ws"].node(),
        hosts["to"].node(),
        hosts["fj"].node(),
        hosts["ck"].node(),
    );

    // Every remaining member at the final version (4: founding, join, rotation, removal), one
    // hash everywhere, no proposal pending.
    let remaining = [ws, to, ck];
    for node in remaining {
        Federation::eventually(
            &format!("{} at roster version 4", node.member()),
            || async { roster_show(node).await["version"] == 4 },
        )
        .await;
    }
    let final_hash = roster_show(ws).await["hash"].clone();
    for node in remaining {
        let show = roster_show(node).await;
        assert_eq!(show["hash"], final_hash, "{show}");
        assert_eq!(show["pending"], serde_json::json!([]), "{show}");
        let ids: Vec<&str> = show["roster"]["roster"]["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["ck-cert", "to-cert", "ws-cert"], "{show}");
    }
    // The founding version checked by hash is version 1 of everyone's history.
    let hist = tanoa_on(ck, &["--json", "roster", "history"]).await.json();
    assert!(
        hist.as_array().unwrap().len() >= 3,
        "ck-cert followed versions 2..4: {hist}"
    );

    // The member that joined holds the GREEN advisory published before it joined.
    assert!(holds(ck, "ws-cert/pacific-federation-founded").await);

    // The rotated key signs: to-cert's advisory after its rotation reached every remaining
    // member, signed by the key the guide generated.
    let next_key = std::fs::read_to_string(exchange.join("to-cert.next-key")).unwrap();
    for node in remaining {
        Federation::eventually("to-cert's advisory signed by its new key", || {
            holds(node, "to-cert/to-key-rotated")
        })
        .await;
    }
    let env_file = shared.path().join("rotated.envelope.json");
    let out = tanoa_on(
        ck,
        &[
            "--json",
            "export",
            "to-cert/to-key-rotated",
            "-o",
            env_file.to_str().unwrap(),
        ],
    )
    .await;
    out.expect_code(0, "export the rotated member's advisory");
    let next_key = tanoa_daemon::keys::parse_public_hex(next_key.trim()).unwrap();
    let next_id = tanoa_core::envelope::key_id_of(&next_key);
    assert_eq!(
        out.json()["key_id"].as_str(),
        Some(next_id.as_str()),
        "{}",
        out.stdout
    );
    // And the old key is not the new one (the rotation changed something).
    let old =
        tanoa_daemon::keys::load_key_file(&hosts["to"].home().join("keys/to-cert.key")).unwrap();
    assert_ne!(old.key_id(), next_id);

    // The removed member is cut off: no longer a peer of anyone, and what it signs now is
    // refused by every remaining member.
    for node in remaining {
        Federation::eventually("fj-cert no longer a peer", || async {
            !peers_of(node).await.iter().any(|p| p == "fj-cert")
        })
        .await;
    }
    // An advisory fj-cert's key signs now (fj-cert's daemon may refuse to publish once it
    // knows it is out, so it is signed here with its key file).
    let fj_key =
        tanoa_daemon::keys::load_key_file(&hosts["fj"].home().join("keys/fj-cert.key")).unwrap();
    let late = late_envelope(&fj_key, "fj-after-removal", tanoa_daemon::now_ms());
    for node in remaining {
        let refused = node
            .client()
            .await
            .import_envelope(pb::ImportEnvelopeRequest {
                envelope: Some(late.clone()),
            })
            .await
            .unwrap_err();
        assert!(
            refused.message().contains("key_not_valid"),
            "{}: {refused:?}",
            node.member()
        );
        assert!(!holds(node, "fj-cert/fj-after-removal").await);
    }
    assert!(fj.pid().is_some(), "fj-cert's daemon still runs, cut off");

    // Nobody restarted: to-cert took its new key with a reload.
    for (host, member) in HOSTS {
        let node = hosts[host].node();
        let now = node.pid().unwrap();
        assert_eq!(
            pids[member].as_slice(),
            [now],
            "{member} restarted behind the guide"
        );
        assert_eq!(hosts[host].starts, 1, "{member} was restarted");
    }
    assert!(
        hosts["to"].node().logs().contains("signing key switched"),
        "to-cert switched its key live"
    );
    drop(shared);
}
