//! `tanoa demo [--dir DIR] [--once]`: a single Tanoa node in this process, with a generated
//! dev identity (`ws-cert`, "Samoa CERT (dev)") and the seed's APT40 advisory published.
//!
//! Owns: the demo directory (recreated fresh each run, only if it is a previous demo's), running
//! `tanoa_daemon::node::run` on the demo's Unix socket with the sled store, publishing the
//! embedded example advisory, and the `--once` self-check (listed, searchable, verifies).
//! Must never: delete a directory that is not a demo directory, or leave the node running after
//! it returns.

use std::io::IsTerminal as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use serde_json::{Value, json};
use tanoa_daemon::client;
use tanoa_daemon::config::Config;
use tanoa_daemon::model::draft::{self, FileFormat};
use tanoa_daemon::node::{self, Listeners};
use tanoa_proto::v1 as pb;

use crate::args::GlobalArgs;
use crate::cmd::{export, init, verify};
use crate::exit::Failure;
use crate::output;

/// The seed's APT40 advisory (also `examples/apt40-advisory.toml`).
pub const APT40_TOML: &str = include_str!("../../../examples/apt40-advisory.toml");
/// Name used for the embedded advisory in messages.
pub const APT40_NAME: &str = "examples/apt40-advisory.toml";
/// Default demo directory.
pub const DEFAULT_DIR: &str = ".tanoa-demo";
/// Dev member id of the demo node.
pub const DEMO_MEMBER: &str = "ws-cert";
/// Dev display name of the demo node.
pub const DEMO_NAME: &str = "Samoa CERT (dev)";
/// Marker file that makes a directory a demo directory (safe to recreate).
pub const MARKER: &str = ".tanoa-demo";

/// `tanoa demo` arguments.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Demo directory, recreated fresh each run (only if empty or made by a previous demo).
    #[arg(long, value_name = "DIR", default_value = DEFAULT_DIR)]
    pub dir: PathBuf,
    /// Check that the advisory is listed, searchable and verifies, then exit (0 all good, 1 not)
    /// instead of waiting for Ctrl-C.
    #[arg(long)]
    pub once: bool,
}

/// Empties `dir` for a fresh demo: refuses a non-empty directory without the marker and a demo
/// that is still running; then writes the marker.
pub fn prepare_dir(dir: &Path) -> Result<(), Failure> {
    if dir.exists() {
        let is_demo = dir.join(MARKER).is_file();
        let empty = std::fs::read_dir(dir)
            .map(|mut d| d.next().is_none())
            .unwrap_or(false);
        if !is_demo && !empty {
            return Err(Failure::usage(format!(
                "{} exists and is not a tanoa demo directory; refusing to delete it",
                dir.display()
            ))
            .hint("choose another --dir (the default is ./.tanoa-demo)"));
        }
        let sock = dir.join("data").join("tanoad.sock");
        if std::os::unix::net::UnixStream::connect(&sock).is_ok() {
            return Err(Failure::failed(format!(
                "a demo node is already running on {}",
                sock.display()
            ))
            .hint("stop it (Ctrl-C in its terminal) or use another --dir"));
        }
        std::fs::remove_dir_all(dir)
            .map_err(|e| Failure::failed(format!("cannot remove {}: {e}", dir.display())))?;
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| Failure::failed(format!("cannot create {}: {e}", dir.display())))?;
    std::fs::write(
        dir.join(MARKER),
        "Made by `tanoa demo`: recreated at every run. Do not keep anything here.\n",
    )
    .map_err(|e| Failure::failed(format!("cannot write in {}: {e}", dir.display())))?;
    Ok(())
}

/// An address inside the first IPv4 CIDR indicator (to show a CIDR match).
pub fn ip_inside_first_cidr(indicators: &[pb::Indicator]) -> Option<String> {
    indicators
        .iter()
        .filter(|i| i.kind == pb::IndicatorKind::Cidr as i32)
        .find_map(|i| {
            let (net, len) = i.value.split_once('/')?;
            let net: Ipv4Addr = net.trim().parse().ok()?;
            let len: u32 = len.trim().parse().ok()?;
            (len < 31).then(|| Ipv4Addr::from(u32::from(net) + 1).to_string())
        })
}

/// The first indicator value of a kind.
pub fn first_value(indicators: &[pb::Indicator], kind: pb::IndicatorKind) -> Option<String> {
    indicators
        .iter()
        .find(|i| i.kind == kind as i32)
        .map(|i| i.value.clone())
}

struct Spinner(Option<indicatif::ProgressBar>);

impl Spinner {
    fn new(enabled: bool) -> Self {
        if !enabled {
            return Spinner(None);
        }
        let pb = indicatif::ProgressBar::new_spinner();
        pb.enable_steady_tick(Duration::from_millis(100));
        Spinner(Some(pb))
    }
    fn say(&self, msg: &str) {
        if let Some(pb) = &self.0 {
            pb.set_message(msg.to_string());
        }
    }
    fn done(&self) {
        if let Some(pb) = &self.0 {
            pb.finish_and_clear();
        }
    }
}

#[derive(Debug, Default)]
struct Checks {
    listed: bool,
    searchable: bool,
    cidr_match: Option<bool>,
    verified_by_daemon: bool,
    verified_offline: bool,
    problems: Vec<String>,
}

impl Checks {
    fn ok(&self) -> bool {
        self.problems.is_empty()
    }
    fn to_json(&self) -> Value {
        json!({
            "listed": self.listed,
            "searchable": self.searchable,
            "cidr_match": self.cidr_match,
            "verified_by_daemon": self.verified_by_daemon,
            "verified_offline": self.verified_offline,
            "problems": self.problems,
        })
    }
}

async fn self_check(
    c: &mut crate::connect::Client,
    published: &pb::PublishResponse,
    exact: Option<&str>,
    inside_cidr: Option<&str>,
) -> anyhow::Result<Checks> {
    let mut checks = Checks::default();
    let list = c
        .list(pb::ListRequest::default())
        .await
        .context("demo check: list")?
        .into_inner();
    checks.listed = list
        .advisories
        .iter()
        .any(|s| s.item_id == published.item_id);
    if !checks.listed {
        checks
            .problems
            .push(format!("item {} is not listed", published.item_id));
    }
    if let Some(v) = exact {
        let r = c
            .search_indicator(pb::SearchIndicatorRequest {
                value: v.to_string(),
                kind: 0,
            })
            .await
            .context("demo check: search")?
            .into_inner();
        checks.searchable = r.hits.iter().any(|h| {
            h.r#match == "exact"
                && h.advisory
                    .as_ref()
                    .is_some_and(|s| s.item_id == published.item_id)
        });
        if !checks.searchable {
            checks
                .problems
                .push(format!("search {v} does not find the advisory"));
        }
    }
    if let Some(ip) = inside_cidr {
        let r = c
            .search_indicator(pb::SearchIndicatorRequest {
                value: ip.to_string(),
                kind: 0,
            })
            .await
            .context("demo check: search in CIDR")?
            .into_inner();
        let hit = r.hits.iter().any(|h| h.r#match == "cidr");
        checks.cidr_match = Some(hit);
        if !hit {
            checks
                .problems
                .push(format!("search {ip} does not match the CIDR indicator"));
        }
    }
    let got = c
        .get(pb::GetRequest {
            id: published.item_id.clone(),
        })
        .await
        .context("demo check: get")?
        .into_inner();
    checks.verified_by_daemon = got.verification.as_ref().is_some_and(|v| v.valid);
    if !checks.verified_by_daemon {
        checks.problems.push(format!(
            "the daemon does not verify item {}: {}",
            published.item_id,
            got.verification
                .as_ref()
                .map_or("no verification reported", |v| v.detail.as_str())
        ));
    }
    let status = c
        .status(pb::StatusRequest {})
        .await
        .context("demo check: status")?
        .into_inner();
    let file = export::envelope_file(&got, Some(&status))?;
    match &file.public_key {
        Some(pk) => match verify::verify_file(&file, "exported envelope", pk)? {
            verify::Outcome::Valid { .. } => checks.verified_offline = true,
            verify::Outcome::Invalid { reason, detail } => checks
                .problems
                .push(format!("offline verification failed ({reason}): {detail}")),
        },
        None => checks
            .problems
            .push("status does not list the key that signed the advisory".into()),
    }
    Ok(checks)
}

/// Runs `tanoa demo`.
pub async fn run(a: DemoArgs, g: &GlobalArgs) -> anyhow::Result<()> {
    let spinner = Spinner::new(std::io::stdout().is_terminal() && !g.json);
    spinner.say("preparing the demo directory");
    prepare_dir(&a.dir)?;
    let member = init::create_member(&a.dir, DEMO_MEMBER, DEMO_NAME)?;
    let config = Config::load(&member.config)
        .map_err(|e| Failure::failed(format!("demo config does not load: {e}")))?;
    let socket = config.operator.socket.clone();
    let draft_file = draft::parse_advisory_str(APT40_TOML, FileFormat::Toml, APT40_NAME)
        .map_err(|e| crate::cmd::publish::draft_failure(&e))?;
    let draft = draft_file.to_proto().map_err(|errors| {
        crate::cmd::publish::draft_failure(&draft::DraftError::Invalid {
            file: APT40_NAME.into(),
            errors,
        })
    })?;

    spinner.say("starting the node");
    node::prepare_data_dir(&config).map_err(|e| Failure::failed(e.to_string()))?;
    let unix = node::bind_unix(&socket).map_err(|e| Failure::failed(e.to_string()))?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let node_task = tokio::spawn(node::run(
        config,
        Listeners {
            unix: Some(unix),
            tcp: None,
        },
        async move {
            let _ = stop_rx.await;
        },
    ));

    let outcome = drive(&a, g, &spinner, &member, &socket, draft).await;
    spinner.done();

    // Stop the node and wait until its store is synced, whatever happened above.
    let _ = stop_tx.send(());
    let node_result = node_task
        .await
        .map_err(|e| Failure::failed(format!("the demo node task failed: {e}")))?;
    let _ = std::fs::remove_file(&socket);
    outcome?;
    node_result.map_err(|e| Failure::failed(format!("the demo node failed: {e}")))?;
    if !a.once && !g.json {
        println!(
            "\nStopped. The demo data stays in {} until the next `tanoa demo`.",
            a.dir.display()
        );
    }
    Ok(())
}

async fn drive(
    a: &DemoArgs,
    g: &GlobalArgs,
    spinner: &Spinner,
    member: &init::Member,
    socket: &Path,
    draft: pb::AdvisoryDraft,
) -> anyhow::Result<()> {
    spinner.say("connecting to the node");
    let mut c = client::connect_unix(socket)
        .await
        .map_err(|e| Failure::failed(e.to_string()))?;
    spinner.say("publishing the APT40 advisory");
    let published = c
        .publish(pb::PublishRequest { draft: Some(draft) })
        .await
        .map_err(|s| crate::cmd::publish::refusal(APT40_NAME, s))?
        .into_inner();
    // Search targets from the stored (normalized) indicators, not the file's defanged text.
    let stored = c
        .get(pb::GetRequest {
            id: published.item_id.clone(),
        })
        .await
        .context("demo: get")?
        .into_inner();
    let indicators = stored.advisory.map(|a| a.indicators).unwrap_or_default();
    let exact = first_value(&indicators, pb::IndicatorKind::Ipv4);
    let inside = ip_inside_first_cidr(&indicators);
    let list = c
        .list(pb::ListRequest::default())
        .await
        .context("demo: list")?
        .into_inner();
    let checks = if a.once {
        spinner.say("checking: listed, searchable, verifies");
        Some(self_check(&mut c, &published, exact.as_deref(), inside.as_deref()).await?)
    } else {
        None
    };
    spinner.done();

    let s = socket.display().to_string();
    let mut commands = vec![
        format!("tanoa --socket {s} list"),
        format!("tanoa --socket {s} show {}", published.advisory_id),
    ];
    if let Some(v) = &exact {
        commands.push(format!("tanoa --socket {s} search {v}"));
    }
    if let Some(ip) = &inside {
        commands.push(format!("tanoa --socket {s} search {ip}"));
    }
    commands.push(format!("tanoa --socket {s} status"));
    commands.push(format!(
        "tanoa --socket {s} export {} -o apt40.envelope.json",
        published.advisory_id
    ));
    commands.push(format!(
        "tanoa verify apt40.envelope.json --public-key {}",
        member.public_key
    ));
    commands.push(format!("tanoa --socket {s} watch"));

    if g.json {
        let mut doc = json!({
            "dir": a.dir,
            "config": member.config,
            "socket": socket,
            "member_id": member.member_id,
            "name": member.name,
            "key_id": member.key_id,
            "public_key": member.public_key,
            "published": {
                "item_id": published.item_id,
                "advisory_id": published.advisory_id,
                "revision": published.revision,
                "origin": published.origin,
            },
            "advisories": list.advisories.iter().map(output::summary_json).collect::<Vec<_>>(),
            "commands": commands,
        });
        if let Some(ch) = &checks {
            doc["checks"] = ch.to_json();
        }
        output::print_json(&doc);
    } else {
        println!(
            "Demo node {} ({}) is running in {}, signing with key {}.",
            member.member_id,
            member.name,
            a.dir.display(),
            member.key_id
        );
        println!(
            "Published {} revision {} (item {}).\n",
            published.advisory_id, published.revision, published.item_id
        );
        println!("Held by this node:");
        println!("{}", output::summaries_table(&list.advisories));
        println!("\nInspect it from another terminal:");
        for cmd in &commands {
            println!("  {cmd}");
        }
        if let Some(ch) = &checks {
            println!();
            let mark = |b: bool| if b { "ok" } else { "FAILED" };
            println!("Check: listed {}", mark(ch.listed));
            println!(
                "Check: searchable ({}) {}",
                exact.as_deref().unwrap_or("-"),
                mark(ch.searchable)
            );
            if let Some(m) = ch.cidr_match {
                println!(
                    "Check: inside CIDR ({}) {}",
                    inside.as_deref().unwrap_or("-"),
                    mark(m)
                );
            }
            println!(
                "Check: verified by the daemon {}",
                mark(ch.verified_by_daemon)
            );
            println!("Check: verified offline {}", mark(ch.verified_offline));
        }
    }
    if let Some(ch) = checks {
        if ch.ok() {
            return Ok(());
        }
        return Err(
            Failure::failed(format!("demo check failed:\n{}", ch.problems.join("\n"))).into(),
        );
    }
    if !g.json {
        println!("\nPress Ctrl-C to stop the node.");
    }
    tokio::signal::ctrl_c()
        .await
        .map_err(|e| Failure::failed(format!("cannot wait for Ctrl-C: {e}")))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use tanoa_daemon::keys;

    fn public_of(path: &Path) -> String {
        let id = keys::load_key_file(path).unwrap();
        keys::public_hex(&id.verifying_key())
    }

    #[test]
    fn the_embedded_advisory_converts_and_has_search_targets() {
        let f = draft::parse_advisory_str(APT40_TOML, FileFormat::Toml, APT40_NAME).unwrap();
        let d = f.to_proto().unwrap();
        assert_eq!(
            first_value(&d.indicators, pb::IndicatorKind::Ipv4).as_deref(),
            Some("203.0.113[.]45")
        );
        assert_eq!(
            ip_inside_first_cidr(&d.indicators).as_deref(),
            Some("192.0.2.129")
        );
    }

    #[test]
    fn prepare_dir_recreates_demo_dirs_only() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().join("demo");
        prepare_dir(&d).unwrap();
        std::fs::write(d.join("leftover"), "x").unwrap();
        prepare_dir(&d).unwrap();
        assert!(
            !d.join("leftover").exists(),
            "a demo dir is recreated fresh"
        );
        assert!(d.join(MARKER).is_file());
        let precious = tmp.path().join("precious");
        std::fs::create_dir(&precious).unwrap();
        std::fs::write(precious.join("notes.txt"), "keep").unwrap();
        let f = prepare_dir(&precious).unwrap_err();
        assert_eq!(f.code, crate::exit::USAGE);
        assert!(precious.join("notes.txt").exists());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn demo_once_publishes_and_checks() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("d");
        let g = GlobalArgs {
            json: true,
            ..GlobalArgs::default()
        };
        run(
            DemoArgs {
                dir: dir.clone(),
                once: true,
            },
            &g,
        )
        .await
        .unwrap();
        // The node stopped and removed its socket; the identity and store stay.
        assert!(!dir.join("data/tanoad.sock").exists());
        assert!(dir.join("keys/ws-cert.key").is_file());
        assert_eq!(public_of(&dir.join("keys/ws-cert.key")).len(), 64);
    }
}
