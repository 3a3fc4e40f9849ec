//! `tanoa demo [--dir DIR] [--once] [--timeout SECS]`: a local federation of five Pacific CERT
//! daemons in this process (dev PKI, loopback only) on a signed roster, a TLP:GREEN and a
//! TLP:AMBER advisory published by ws-cert, a sixth member (ck-cert, Cook Islands) joining by a
//! proposal and two approvals and receiving the GREEN advisory published before it joined, and
//! a live view of which member holds what.
//!
//! Owns: the demo directory (recreated fresh each run, only if it is a previous demo's), the
//! embedded example advisories, publishing them, the live holdings matrix (refreshed from each
//! member's List until it matches TLP policy), the commands printed to inspect each member, the
//! `--once` verdict (exit 0 only if every member, the joined one included, holds exactly what
//! policy allows and every member is at the roster version that added ck-cert), and running
//! until Ctrl-C otherwise.
//! Must never: delete a directory that is not a demo directory, or return while one of the
//! members still runs (every path goes through `Federation::shutdown`).

pub mod federation;
pub mod holdings;

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use serde_json::{Value, json};
use tanoa_daemon::model::Draft;
use tanoa_daemon::model::draft::{self, FileFormat};
use tanoa_daemon::model::wire;
use tanoa_proto::v1 as pb;

use crate::args::GlobalArgs;
use crate::connect::Client;
use crate::exit::Failure;
use crate::output;

use federation::{Federation, JOINER, Join, MEMBERS};
use holdings::{DemoAdvisory, Matrix};

/// The seed's APT40 advisory, TLP:GREEN (also `examples/apt40-advisory.toml`).
pub const APT40_TOML: &str = include_str!("../../../../examples/apt40-advisory.toml");
/// Name used for the embedded GREEN advisory in messages.
pub const APT40_NAME: &str = "examples/apt40-advisory.toml";
/// The AMBER advisory for au-acsc and nz-ncsc (also `examples/amber-advisory.toml`).
pub const AMBER_TOML: &str = include_str!("../../../../examples/amber-advisory.toml");
/// Name used for the embedded AMBER advisory in messages.
pub const AMBER_NAME: &str = "examples/amber-advisory.toml";
/// Default demo directory.
pub const DEFAULT_DIR: &str = ".tanoa-demo";
/// Marker file that makes a directory a demo directory (safe to recreate).
pub const MARKER: &str = ".tanoa-demo";
/// Member that publishes both advisories.
pub const ORIGIN: &str = "ws-cert";
/// Default bound on the wait for convergence, in seconds.
pub const DEFAULT_TIMEOUT_S: u64 = 60;
/// How often the holdings are read while waiting.
const POLL: Duration = Duration::from_millis(250);
/// Bound on one List request to a member.
const LIST_TIMEOUT: Duration = Duration::from_secs(3);

/// `tanoa demo` arguments.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Demo directory, recreated fresh each run (only if empty or made by a previous demo).
    #[arg(long, value_name = "DIR", default_value = DEFAULT_DIR)]
    pub dir: PathBuf,
    /// Exit once the federation has converged: 0 if every member holds exactly what TLP allows,
    /// 1 otherwise (or after --timeout), instead of running until Ctrl-C.
    #[arg(long)]
    pub once: bool,
    /// Longest wait for convergence, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_TIMEOUT_S,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub timeout: u64,
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
        let sockets = std::iter::once(dir.join("data").join("tanoad.sock")).chain(
            MEMBERS
                .iter()
                .chain([&JOINER])
                .map(|(id, _)| dir.join(id).join("data").join("tanoad.sock")),
        );
        for sock in sockets {
            if std::os::unix::net::UnixStream::connect(&sock).is_ok() {
                return Err(Failure::failed(format!(
                    "a demo is already running in {} (a node answers on {})",
                    dir.display(),
                    sock.display()
                ))
                .hint("stop it (Ctrl-C in its terminal) or use another --dir"));
            }
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

/// The embedded advisory `toml` (named `name`) as a draft.
pub fn embedded_draft(toml: &str, name: &str) -> Result<Draft, Failure> {
    let file = draft::parse_advisory_str(toml, FileFormat::Toml, name)
        .map_err(|e| crate::cmd::publish::draft_failure(&e))?;
    file.to_draft().map_err(|errors| {
        crate::cmd::publish::draft_failure(&draft::DraftError::Invalid {
            file: name.into(),
            errors,
        })
    })
}

/// `p` relative to the current directory when it is inside it (shorter commands), else as is.
pub fn shown(p: &Path) -> String {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| p.strip_prefix(&cwd).ok().map(Path::to_path_buf))
        .filter(|r| !r.as_os_str().is_empty())
        .unwrap_or_else(|| p.to_path_buf())
        .display()
        .to_string()
}

/// A spinner (on a terminal only) whose message can hold the live matrix; lines printed
/// through it go above the spinner. Once done, lines go straight to stdout.
struct Spinner(std::cell::RefCell<Option<indicatif::ProgressBar>>);

impl Spinner {
    fn new(enabled: bool) -> Self {
        if !enabled {
            return Spinner(std::cell::RefCell::new(None));
        }
        let pb =
            indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stdout());
        if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} {msg}") {
            pb.set_style(style);
        }
        pb.enable_steady_tick(Duration::from_millis(100));
        Spinner(std::cell::RefCell::new(Some(pb)))
    }
    fn say(&self, msg: &str) {
        if let Some(pb) = self.0.borrow().as_ref() {
            pb.set_message(msg.to_string());
        }
    }
    fn println(&self, line: &str) {
        match self.0.borrow().as_ref() {
            Some(pb) => pb.println(line),
            None => outln!("{line}"),
        }
    }
    fn done(&self) {
        if let Some(pb) = self.0.borrow_mut().take() {
            pb.finish_and_clear();
        }
    }
}

/// Where human lines go: above the spinner on a terminal, stdout otherwise, nowhere with --json.
struct Out<'a> {
    json: bool,
    spinner: &'a Spinner,
}

impl Out<'_> {
    fn line(&self, s: &str) {
        if !self.json {
            self.spinner.println(s);
        }
    }
}

/// SIGINT/SIGTERM, when the demo runs until Ctrl-C (`None` with --once: the default action).
struct Interrupt(Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>);

impl Interrupt {
    fn new(enabled: bool) -> Result<Self, Failure> {
        if !enabled {
            return Ok(Interrupt(None));
        }
        use tokio::signal::unix::{SignalKind, signal};
        let int = signal(SignalKind::interrupt())
            .map_err(|e| Failure::failed(format!("cannot listen for Ctrl-C: {e}")))?;
        let term = signal(SignalKind::terminate())
            .map_err(|e| Failure::failed(format!("cannot listen for SIGTERM: {e}")))?;
        Ok(Interrupt(Some((int, term))))
    }

    /// Completes on the first SIGINT or SIGTERM; never without signals.
    async fn wait(&mut self) {
        match &mut self.0 {
            Some((int, term)) => {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
            }
            None => std::future::pending().await,
        }
    }
}

/// A command printed for an operator: which member it inspects, the command, and what it shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoCommand {
    /// Member id.
    pub member: String,
    /// The shell command.
    pub command: String,
    /// What it shows.
    pub note: String,
}

/// What a demo run did (the `--json` document is built from it).
#[derive(Debug, Clone)]
pub struct DemoReport {
    /// The demo directory.
    pub dir: PathBuf,
    /// The CA certificate (trust anchor of every member).
    pub ca_cert: PathBuf,
    /// The members: the five founders, then the one that joined.
    pub members: Vec<federation::DemoMember>,
    /// Holdings when the wait ended (advisories published = its columns).
    pub matrix: Matrix,
    /// Milliseconds from the first publish to convergence (`None` = not converged).
    pub converged_after_ms: Option<u64>,
    /// The anti-entropy round after convergence (`--once` only).
    pub anti_entropy: Option<AntiEntropyRound>,
    /// Commands to inspect each member.
    pub commands: Vec<DemoCommand>,
    /// The join of `JOINER` (`None` = it did not happen).
    pub join: Option<Join>,
    /// Each member's roster in force at the end: (member, version, hash); empty if not read.
    pub rosters: Vec<(String, u64, String)>,
}

impl DemoReport {
    /// Everything `--once` requires: converged, holdings exactly as policy allows, and (when it
    /// ran) every reconciliation of the anti-entropy round completed without changing that.
    pub fn problems(&self) -> Vec<String> {
        let mut out = self.matrix.problems();
        match &self.join {
            None => out.push(format!("{} did not join", JOINER.0)),
            Some(j) => {
                for (member, version, hash) in &self.rosters {
                    if *version != j.version || *hash != j.hash {
                        out.push(format!(
                            "{member} is at roster version {version} ({hash}), not version {} \
                             ({}) that added {}",
                            j.version, j.hash, j.member
                        ));
                    }
                }
            }
        }
        if self.converged_after_ms.is_none() && out.is_empty() {
            out.push("the wait for convergence ended early".into());
        }
        if let Some(r) = &self.anti_entropy
            && r.completed < r.started
        {
            out.push(format!(
                "only {} of {} reconciliations completed after convergence (see `tanoa peers`)",
                r.completed, r.started
            ));
        }
        out
    }
}

impl DemoReport {
    /// The single JSON document of `demo --json`.
    pub fn to_json(&self) -> Value {
        let problems = self.problems();
        let m = self.matrix.to_json();
        json!({
            "dir": self.dir,
            "ca_cert": self.ca_cert,
            "members": self.members.iter().map(|m| json!({
                "member_id": m.id,
                "name": m.name,
                "config": m.config,
                "socket": m.socket,
                "peer_listen": m.peer_addr.to_string(),
                "metrics_url": m.metrics_url(),
                "key_id": m.key_id,
                "public_key": m.public_key,
                "tls_cert": m.tls_cert,
            })).collect::<Vec<_>>(),
            "advisories": m["advisories"],
            "holdings": m["holdings"],
            "converged": self.converged_after_ms.is_some() && self.matrix.converged(),
            "converged_after_ms": self.converged_after_ms,
            "anti_entropy": self.anti_entropy.as_ref().map(|r| json!({
                "reconciliations": r.started,
                "completed": r.completed,
                "elapsed_ms": r.elapsed_ms,
            })),
            "checks": {"ok": problems.is_empty(), "problems": problems},
            "commands": self.commands.iter().map(|c| c.command.clone()).collect::<Vec<_>>(),
            "join": self.join.as_ref().map(|j| json!({
                "member": j.member,
                "proposer": j.proposer,
                "approvers": j.approvers,
                "required": j.required,
                "version": j.version,
                "hash": j.hash,
            })),
            "rosters": self.rosters.iter().map(|(m, v, h)| json!({
                "member": m, "version": v, "hash": h,
            })).collect::<Vec<_>>(),
        })
    }
}

/// The commands to inspect each member: peers, list, an explain that shows a TLP decision, the
/// metrics; plus status, sync now and a `show` that proves the AMBER item never reached to-cert.
pub fn inspect_commands(members: &[federation::DemoMember], m: &Matrix) -> Vec<DemoCommand> {
    let mut out = Vec::new();
    let green = m.advisories.iter().find(|a| a.audience.is_empty());
    let amber = m.advisories.iter().find(|a| !a.audience.is_empty());
    let outsider = amber.and_then(|a| members.iter().find(|x| !a.may_hold(&x.id)));
    for (i, x) in members.iter().enumerate() {
        let s = format!("tanoa --socket {}", shown(&x.socket));
        let mut push = |command: String, note: &str| {
            out.push(DemoCommand {
                member: x.id.clone(),
                command,
                note: note.to_string(),
            });
        };
        push(
            format!("{s} peers"),
            "link, last sync, traffic, rejections per peer",
        );
        push(format!("{s} list"), "what this member holds");
        match (amber, outsider, green) {
            (Some(a), Some(o), _) if a.may_hold(&x.id) => push(
                format!("{s} explain {} {}", a.qualified_id(), o.id),
                "why the AMBER advisory never goes to that member",
            ),
            (_, _, Some(g)) => {
                let next = &members[(i + 1) % members.len()];
                push(
                    format!("{s} explain {} {}", g.qualified_id(), next.id),
                    "GREEN goes to every member",
                );
            }
            _ => {}
        }
        if x.id == ORIGIN {
            push(format!("{s} status"), "federation health at a glance");
            push(
                format!("{s} sync now"),
                "reconcile now with the least recently synced peer",
            );
        }
        if let (Some(a), Some(o)) = (amber, outsider)
            && o.id == x.id
        {
            push(
                format!("{s} show {}", a.qualified_id()),
                "not found: this member never received the AMBER advisory",
            );
        }
        push(format!("curl -s {}", x.metrics_url()), "Prometheus metrics");
    }
    out
}

/// Runs `tanoa demo`.
pub async fn run(a: DemoArgs, g: &GlobalArgs) -> anyhow::Result<()> {
    run_report(a, g).await.map(|_| ())
}

/// Runs `tanoa demo` and returns what happened (for tests); fails with exit 1 when `--once`
/// finds holdings that differ from policy.
pub async fn run_report(a: DemoArgs, g: &GlobalArgs) -> anyhow::Result<DemoReport> {
    let mut interrupt = Interrupt::new(!a.once)?;
    let spinner = Spinner::new(std::io::stdout().is_terminal() && !g.json);
    let out = Out {
        json: g.json,
        spinner: &spinner,
    };
    let green = embedded_draft(APT40_TOML, APT40_NAME)?;
    let amber = embedded_draft(AMBER_TOML, AMBER_NAME)?;
    spinner.say("preparing the demo directory");
    prepare_dir(&a.dir)?;
    spinner.say("generating a dev PKI and a signed roster, starting five members");
    let mut fed = Federation::launch(&a.dir).await?;
    let outcome = drive(&a, &out, &mut fed, [green, amber], &mut interrupt).await;
    spinner.done();
    let stopped = fed.shutdown().await;
    let report = outcome?;
    stopped?;
    if g.json {
        // With --once the document comes after the checks; otherwise it was printed at
        // convergence, before waiting for Ctrl-C.
        if a.once {
            output::print_json(&report.to_json());
        }
    } else if !a.once {
        outln!(
            "\nStopped all {} members (stores synced). The demo data stays in {} until the \
             next `tanoa demo`.",
            report.members.len(),
            shown(&report.dir)
        );
    }
    if a.once {
        let problems = report.problems();
        if !problems.is_empty() {
            return Err(Failure::failed(format!(
                "the federation did not converge to what TLP allows within {}s:\n{}",
                a.timeout,
                problems.join("\n")
            ))
            .hint("`tanoa demo` (without --once) keeps it running: inspect it with `tanoa peers`")
            .into());
        }
    }
    Ok(report)
}

async fn publish(c: &mut Client, draft: Draft, name: &str) -> anyhow::Result<DemoAdvisory> {
    let published = c
        .publish(pb::PublishRequest {
            draft: Some(wire::draft_to_proto(&draft)),
        })
        .await
        .map_err(|s| crate::cmd::publish::refusal(name, s))?
        .into_inner();
    let got = c
        .get(pb::GetRequest {
            id: published.item_id.clone(),
        })
        .await
        .with_context(|| format!("demo: get {}", published.item_id))?
        .into_inner();
    let adv = got
        .advisory
        .ok_or_else(|| Failure::failed(format!("{name}: the origin returned no advisory")))?;
    let tlp = wire::tlp_from_proto(adv.tlp).ok_or_else(|| {
        Failure::failed(format!("{name}: the origin stored TLP value {}", adv.tlp))
    })?;
    Ok(DemoAdvisory {
        advisory_id: published.advisory_id,
        origin: published.origin,
        item_id: published.item_id,
        revision: published.revision,
        tlp,
        audience: adv.audience,
        title: adv.title,
    })
}

/// Outcome of the anti-entropy round `--once` runs after convergence.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AntiEntropyRound {
    /// Reconciliations asked for (every member with every peer).
    pub started: usize,
    /// Member → peer pairs whose reconciliation completed after convergence.
    pub completed: usize,
    /// Milliseconds the round took.
    pub elapsed_ms: u64,
}

/// `sessions_ok` of every (member, peer) pair, from each member's Peers answer (0 when it did
/// not answer).
async fn sessions_ok(clients: &mut [Client]) -> Vec<std::collections::BTreeMap<String, u64>> {
    let mut out = Vec::new();
    for c in clients.iter_mut() {
        let peers = match tokio::time::timeout(LIST_TIMEOUT, c.peers(pb::PeersRequest {})).await {
            Ok(Ok(r)) => r.into_inner().peers,
            _ => Vec::new(),
        };
        out.push(
            peers
                .into_iter()
                .map(|p| (p.member_id, p.sessions_ok))
                .collect(),
        );
    }
    out
}

/// Asks every member to reconcile with every peer (SyncNow) and waits, bounded, until each of
/// those pairs has completed one more reconciliation than before. One already running when
/// asked (the daemon answers "busy") counts when it completes.
async fn anti_entropy_round(
    clients: &mut [Client],
    members: &[federation::DemoMember],
    bound: Duration,
) -> AntiEntropyRound {
    let t0 = Instant::now();
    let mut round = AntiEntropyRound::default();
    let before = sessions_ok(clients).await;
    for (i, c) in clients.iter_mut().enumerate() {
        for (j, peer) in members.iter().enumerate() {
            if i == j {
                continue;
            }
            round.started += 1;
            let req = pb::SyncNowRequest {
                peer: peer.id.clone(),
            };
            let _ = tokio::time::timeout(LIST_TIMEOUT, c.sync_now(req)).await;
        }
    }
    loop {
        let now = sessions_ok(clients).await;
        round.completed = now
            .iter()
            .zip(&before)
            .map(|(after, before)| {
                after
                    .iter()
                    .filter(|(peer, n)| **n > before.get(*peer).copied().unwrap_or(0))
                    .count()
            })
            .sum();
        if round.completed >= round.started || t0.elapsed() >= bound {
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    round.elapsed_ms = u64::try_from(t0.elapsed().as_millis()).unwrap_or(u64::MAX);
    round
}

/// Every member's roster in force: (member, version, hash); version 0 and the error as the
/// hash when it did not answer.
async fn read_rosters(
    clients: &mut [Client],
    members: &[federation::DemoMember],
) -> Vec<(String, u64, String)> {
    let mut out = Vec::new();
    for (c, m) in clients.iter_mut().zip(members) {
        let r = tokio::time::timeout(LIST_TIMEOUT, c.roster_show(pb::RosterShowRequest {})).await;
        out.push(match r {
            Ok(Ok(r)) => {
                let r = r.into_inner();
                (m.id.clone(), r.version, r.hash)
            }
            Ok(Err(s)) => (m.id.clone(), 0, crate::exit::status_message(&s)),
            Err(_) => (m.id.clone(), 0, "no answer".into()),
        });
    }
    out
}

/// Reads every member's holdings into a copy of `m`.
async fn read_holdings(clients: &mut [Client], m: &Matrix) -> Matrix {
    let mut next = m.clone();
    for (i, c) in clients.iter_mut().enumerate() {
        let req = pb::ListRequest {
            include_withdrawn: true,
            ..Default::default()
        };
        match tokio::time::timeout(LIST_TIMEOUT, c.list(req)).await {
            Ok(Ok(r)) => next.record(i, &r.into_inner()),
            Ok(Err(s)) => next.record_error(i, crate::exit::status_message(&s)),
            Err(_) => next.record_error(i, format!("no answer within {}s", LIST_TIMEOUT.as_secs())),
        }
    }
    next
}

fn intro(out: &Out<'_>, fed: &Federation, dir: &Path) {
    out.line(&format!(
        "Tanoa demo: a federation of {} Pacific CERT daemons running in this process, on \
         loopback, with a dev PKI (CA {}), founded on a signed roster (version 1, threshold {} \
         of {}, hash {}); {} ({}) joins it below.",
        MEMBERS.len(),
        shown(&fed.ca_cert),
        federation::THRESHOLD,
        MEMBERS.len(),
        output::short_id(&fed.founding_hash),
        JOINER.0,
        JOINER.1
    ));
    out.line(&format!(
        "Directory: {} (recreated at every run; dev keys only)\n",
        shown(dir)
    ));
    let rows = fed
        .members
        .iter()
        .map(|m| {
            vec![
                m.id.clone(),
                m.name.clone(),
                m.peer_addr.to_string(),
                m.metrics_url(),
                shown(&m.socket),
            ]
        })
        .collect();
    out.line(&output::table(
        &[
            "MEMBER",
            "NAME",
            "PEER PORT (mTLS)",
            "METRICS",
            "OPERATOR SOCKET",
        ],
        rows,
    ));
}

async fn drive(
    a: &DemoArgs,
    out: &Out<'_>,
    fed: &mut Federation,
    drafts: [Draft; 2],
    interrupt: &mut Interrupt,
) -> anyhow::Result<DemoReport> {
    let dir = fed
        .members
        .first()
        .and_then(|m| m.dir.parent())
        .map_or_else(|| a.dir.clone(), Path::to_path_buf);
    intro(out, fed, &dir);
    let origin = fed
        .index_of(ORIGIN)
        .ok_or_else(|| Failure::failed(format!("no demo member {ORIGIN}")))?;
    let mut clients = Vec::new();
    for i in 0..MEMBERS.len() {
        clients.push(fed.client(i).await?);
    }
    out.spinner.say("publishing the advisories");
    let [green, amber] = drafts;
    let started = Instant::now();
    let mut published = Vec::new();
    for (draft, name) in [(green, APT40_NAME), (amber, AMBER_NAME)] {
        let c = clients
            .get_mut(origin)
            .ok_or_else(|| Failure::failed("no client of the origin"))?;
        let adv = publish(c, draft, name).await?;
        out.line(&format!(
            "{}Published by {}: {} revision {} as TLP:{}{} (item {})",
            if published.is_empty() { "\n" } else { "" },
            adv.origin,
            adv.advisory_id,
            adv.revision,
            adv.tlp.as_str(),
            if adv.audience.is_empty() {
                ", for every member".to_string()
            } else {
                format!(" for {} only", adv.audience.join(" and "))
            },
            output::short_id(&adv.item_id)
        ));
        published.push(adv);
    }
    out.spinner
        .say(&format!("{} joins the federation", JOINER.0));
    let join = fed.join().await?;
    out.line(&format!(
        "\nJoin: {} ({}) asks to join with a signed request; {} proposes roster version {}, \
         {} approve ({} signatures needed); version {} is in force, hash {}.\n      {} starts \
         from that roster file, checked by its hash, and catches up on what was published \
         before it joined.",
        join.member,
        JOINER.1,
        join.proposer,
        join.version,
        join.approvers.join(" and "),
        join.required,
        join.version,
        output::short_id(&join.hash),
        join.member,
    ));
    let j = fed
        .index_of(JOINER.0)
        .ok_or_else(|| Failure::failed(format!("no demo member {}", JOINER.0)))?;
    clients.push(fed.client(j).await?);
    let names: Vec<(String, String)> = fed
        .members
        .iter()
        .map(|m| (m.id.clone(), m.name.clone()))
        .collect();
    let mut matrix = Matrix::new(&names, published);

    out.line("\nReplication, live:");
    let deadline = started + Duration::from_secs(a.timeout);
    let mut converged_after_ms = None;
    let mut interrupted = false;
    loop {
        fed.check_nodes().await?;
        let next = read_holdings(&mut clients, &matrix).await;
        let t = started.elapsed().as_secs_f64();
        for change in next.changes_since(&matrix) {
            out.line(&format!("  {:>7}  {change}", format!("+{t:.2}s")));
        }
        matrix = next;
        if matrix.converged() {
            converged_after_ms = Some(u64::try_from(started.elapsed().as_millis()).unwrap_or(0));
            break;
        }
        if Instant::now() >= deadline {
            break;
        }
        let (done, want) = matrix.progress();
        out.spinner.say(&format!(
            "waiting for convergence: {done}/{want} allowed holdings, {t:.1}s\n{}",
            matrix.table()
        ));
        tokio::select! {
            _ = interrupt.wait() => { interrupted = true; break; }
            _ = tokio::time::sleep(POLL) => {}
        }
    }
    if interrupted {
        out.spinner.done();
        out.line("\nInterrupted before convergence; stopping.");
    } else {
        match converged_after_ms {
            Some(ms) => out.line(&format!(
                "\nConverged {:.2}s after publishing: every member holds exactly what TLP allows.",
                ms as f64 / 1000.0
            )),
            None => out.line(&format!(
                "\nNOT converged after {}s:\n  {}",
                a.timeout,
                matrix.problems().join("\n  ")
            )),
        }
    }
    // --once: a full anti-entropy round (every member with every peer) must leave the
    // holdings exactly as they are, so the AMBER advisory is not merely "not yet" elsewhere.
    let mut anti_entropy = None;
    if a.once && converged_after_ms.is_some() && !interrupted {
        out.spinner
            .say("converged; running an anti-entropy round (every member × every peer)");
        let left = deadline.saturating_duration_since(Instant::now());
        let round = anti_entropy_round(
            &mut clients,
            &fed.members,
            left.max(Duration::from_secs(10)),
        )
        .await;
        fed.check_nodes().await?;
        let after = read_holdings(&mut clients, &matrix).await;
        for change in after.changes_since(&matrix) {
            out.line(&format!("  after anti-entropy: {change}"));
        }
        matrix = after;
        out.line(&format!(
            "Anti-entropy round: {}/{} reconciliations (every member with every peer) completed \
             in {:.2}s; holdings {}.",
            round.completed,
            round.started,
            round.elapsed_ms as f64 / 1000.0,
            if matrix.converged() {
                "unchanged"
            } else {
                "CHANGED"
            }
        ));
        anti_entropy = Some(round);
    }
    let rosters = if interrupted {
        Vec::new()
    } else {
        read_rosters(&mut clients, &fed.members).await
    };
    out.spinner.done();
    let commands = inspect_commands(&fed.members, &matrix);
    let report = DemoReport {
        dir,
        ca_cert: fed.ca_cert.clone(),
        members: fed.members.clone(),
        matrix,
        converged_after_ms,
        anti_entropy,
        commands,
        join: Some(join),
        rosters,
    };
    if interrupted {
        return Ok(report);
    }
    out.line(&report.matrix.table());
    for (text, ok) in report.matrix.check_lines() {
        out.line(&format!(
            "Check: {text}: {}",
            if ok { "ok" } else { "FAILED" }
        ));
    }
    if let Some(j) = &report.join {
        let behind: Vec<&str> = report
            .rosters
            .iter()
            .filter(|(_, v, h)| *v != j.version || *h != j.hash)
            .map(|(m, _, _)| m.as_str())
            .collect();
        out.line(&format!(
            "Check: {} joined; all {} members at roster version {} ({}): {}",
            j.member,
            report.rosters.len(),
            j.version,
            output::short_id(&j.hash),
            if behind.is_empty() {
                "ok".to_string()
            } else {
                format!("FAILED ({} behind)", behind.join(", "))
            }
        ));
    }
    if a.once {
        out.line("\n`tanoa demo` without --once keeps the federation running to inspect it.");
        return Ok(report);
    }
    if out.json {
        output::print_json(&report.to_json());
    } else {
        out.line("\nInspect the members from another terminal:");
        let mut last = "";
        for c in &report.commands {
            if c.member != last {
                let name = report
                    .members
                    .iter()
                    .find(|m| m.id == c.member)
                    .map_or("", |m| m.name.as_str());
                out.line(&format!("  # {} ({name})", c.member));
                last = &c.member;
            }
            out.line(&format!("  {}    # {}", c.command, c.note));
        }
        out.line(&format!(
            "\nPress Ctrl-C to stop the {} members.",
            report.members.len()
        ));
    }
    interrupt.wait().await;
    Ok(report)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::os::unix::fs::PermissionsExt as _;

    use super::*;
    use tanoa_daemon::model::Tlp;

    #[test]
    fn the_embedded_advisories_convert_with_the_demo_tlp_and_audience() {
        let g = embedded_draft(APT40_TOML, APT40_NAME).unwrap();
        assert_eq!(g.tlp, Tlp::Green);
        assert!(g.audience.is_empty());
        let a = embedded_draft(AMBER_TOML, AMBER_NAME).unwrap();
        assert_eq!(a.tlp, Tlp::Amber);
        assert_eq!(a.audience, ["au-acsc", "nz-ncsc"]);
        for d in [&g, &a] {
            assert!(!d.indicators.is_empty());
        }
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

    #[test]
    fn prepare_dir_refuses_a_running_demo() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().join("demo");
        prepare_dir(&d).unwrap();
        let sock = d.join("fj-cert/data/tanoad.sock");
        std::fs::create_dir_all(sock.parent().unwrap()).unwrap();
        let _live = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let f = prepare_dir(&d).unwrap_err();
        assert_eq!(f.code, crate::exit::FAILED);
        assert!(f.message.contains("already running"), "{}", f.message);
        assert!(sock.exists());
    }

    #[test]
    fn commands_inspect_every_member_and_show_the_amber_decision() {
        let members: Vec<federation::DemoMember> = MEMBERS
            .iter()
            .zip(1u16..)
            .map(|((id, name), i)| federation::DemoMember {
                id: (*id).into(),
                name: (*name).into(),
                dir: PathBuf::from("/d").join(id),
                config: PathBuf::from("/d").join(id).join("tanoad.toml"),
                socket: PathBuf::from("/d").join(id).join("data/tanoad.sock"),
                peer_addr: ([127, 0, 0, 1], 40_000 + i).into(),
                metrics_addr: ([127, 0, 0, 1], 41_000 + i).into(),
                key_id: String::new(),
                public_key: String::new(),
                tls_cert: PathBuf::new(),
            })
            .collect();
        let adv = |id: &str, tlp, audience: &[&str]| DemoAdvisory {
            advisory_id: id.into(),
            origin: ORIGIN.into(),
            item_id: "ab".repeat(32),
            revision: 1,
            tlp,
            audience: audience.iter().map(|s| (*s).to_string()).collect(),
            title: String::new(),
        };
        let names: Vec<(String, String)> = members
            .iter()
            .map(|m| (m.id.clone(), m.name.clone()))
            .collect();
        let m = Matrix::new(
            &names,
            vec![
                adv("apt40-blue-pacific", Tlp::Green, &[]),
                adv(
                    "apt40-forum-lures-amber",
                    Tlp::Amber,
                    &["au-acsc", "nz-ncsc"],
                ),
            ],
        );
        let cmds: Vec<String> = inspect_commands(&members, &m)
            .into_iter()
            .map(|c| c.command)
            .collect();
        let s = |id: &str| format!("tanoa --socket /d/{id}/data/tanoad.sock");
        for (id, _) in MEMBERS {
            assert!(cmds.contains(&format!("{} peers", s(id))), "{cmds:#?}");
            assert!(cmds.contains(&format!("{} list", s(id))));
        }
        assert!(cmds.contains(&format!(
            "{} explain ws-cert/apt40-forum-lures-amber to-cert",
            s("ws-cert")
        )));
        assert!(cmds.contains(&format!(
            "{} explain ws-cert/apt40-forum-lures-amber to-cert",
            s("nz-ncsc")
        )));
        assert!(cmds.contains(&format!(
            "{} explain ws-cert/apt40-blue-pacific fj-cert",
            s("to-cert")
        )));
        assert!(cmds.contains(&format!(
            "{} show ws-cert/apt40-forum-lures-amber",
            s("to-cert")
        )));
        assert!(cmds.contains(&format!("{} sync now", s("ws-cert"))));
        assert!(cmds.contains(&"curl -s http://127.0.0.1:41003/metrics".to_string()));
    }

    #[test]
    fn once_fails_when_not_converged_or_the_round_is_incomplete() {
        let names = vec![("ws-cert".to_string(), "Samoa CERT".to_string())];
        let adv = DemoAdvisory {
            advisory_id: "apt40-blue-pacific".into(),
            origin: ORIGIN.into(),
            item_id: "ab".repeat(32),
            revision: 1,
            tlp: Tlp::Green,
            audience: Vec::new(),
            title: String::new(),
        };
        let mut matrix = Matrix::new(&names, vec![adv]);
        let mut report = DemoReport {
            dir: PathBuf::from("/d"),
            ca_cert: PathBuf::from("/d/pki/ca.pem"),
            members: Vec::new(),
            matrix: matrix.clone(),
            converged_after_ms: None,
            anti_entropy: None,
            commands: Vec::new(),
            join: None,
            rosters: Vec::new(),
        };
        assert_eq!(
            report.problems(),
            [
                "ws-cert: its holdings are unknown (not asked yet)",
                "ck-cert did not join"
            ]
        );
        let join = Join {
            member: "ck-cert".into(),
            proposer: "ws-cert".into(),
            approvers: vec!["to-cert".into(), "fj-cert".into()],
            required: 3,
            version: 2,
            hash: "cd".repeat(32),
        };
        report.join = Some(join.clone());
        report.rosters = vec![("ws-cert".into(), 1, "ef".repeat(32))];
        assert_eq!(
            report.problems()[1],
            format!(
                "ws-cert is at roster version 1 ({}), not version 2 ({}) that added ck-cert",
                "ef".repeat(32),
                "cd".repeat(32)
            )
        );
        report.rosters = vec![("ws-cert".into(), 2, "cd".repeat(32))];
        assert_eq!(
            report.problems(),
            ["ws-cert: its holdings are unknown (not asked yet)"]
        );
        assert_eq!(report.to_json()["join"]["approvers"][1], "fj-cert");
        assert_eq!(report.to_json()["checks"]["ok"], false);
        assert_eq!(report.to_json()["converged"], false);
        matrix.record(
            0,
            &pb::ListResponse {
                advisories: vec![pb::AdvisorySummary {
                    item_id: "ab".repeat(32),
                    ..Default::default()
                }],
                truncated: false,
                ..Default::default()
            },
        );
        report.matrix = matrix;
        report.converged_after_ms = Some(40);
        report.anti_entropy = Some(AntiEntropyRound {
            started: 20,
            completed: 19,
            elapsed_ms: 10_000,
        });
        assert_eq!(
            report.problems(),
            ["only 19 of 20 reconciliations completed after convergence (see `tanoa peers`)"]
        );
        let doc = report.to_json();
        assert_eq!(doc["converged"], true);
        assert_eq!(doc["checks"]["ok"], false);
        assert_eq!(doc["anti_entropy"]["completed"], 19);
        report.anti_entropy = None;
        assert!(report.problems().is_empty());
    }

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    /// The whole demo, in process: five members with sled stores, real mTLS between them.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn demo_once_converges_to_exactly_what_tlp_allows() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("d");
        let g = GlobalArgs {
            json: true,
            ..GlobalArgs::default()
        };
        let report = run_report(
            DemoArgs {
                dir: dir.clone(),
                once: true,
                timeout: 45,
            },
            &g,
        )
        .await
        .unwrap();
        assert!(report.converged_after_ms.is_some());
        assert!(report.problems().is_empty(), "{:?}", report.problems());
        let round = report.anti_entropy.clone().unwrap();
        assert_eq!(round.started, 30, "every member with every peer");
        assert_eq!(round.completed, 30);
        let m = &report.matrix;
        let ids: Vec<&str> = m.members.iter().map(|x| x.member.as_str()).collect();
        assert_eq!(
            ids,
            [
                "ws-cert", "to-cert", "fj-cert", "au-acsc", "nz-ncsc", "ck-cert"
            ]
        );
        assert_eq!(m.advisories[0].advisory_id, "apt40-blue-pacific");
        assert_eq!(m.advisories[0].tlp, Tlp::Green);
        assert_eq!(m.advisories[1].tlp, Tlp::Amber);
        let green: Vec<bool> = (0..6).map(|i| m.held(i, 0)).collect();
        let amber: Vec<bool> = (0..6).map(|i| m.held(i, 1)).collect();
        assert_eq!(
            green, [true; 6],
            "GREEN on every member, ck-cert included (published before it joined)"
        );
        assert_eq!(
            amber,
            [true, false, false, true, true, false],
            "AMBER on ws-cert, au-acsc and nz-ncsc only"
        );
        // The join: proposed by ws-cert, approved by to-cert and fj-cert (3 of 5 signatures),
        // version 2 in force on all six members with one hash.
        let join = report.join.clone().unwrap();
        assert_eq!(join.member, "ck-cert");
        assert_eq!(join.proposer, "ws-cert");
        assert_eq!(join.approvers, ["to-cert", "fj-cert"]);
        assert_eq!(join.required, 3);
        assert_eq!(join.version, 2);
        assert_eq!(report.rosters.len(), 6);
        for (member, version, hash) in &report.rosters {
            assert_eq!((*version, hash), (2, &join.hash), "{member}");
        }
        let ck = std::fs::read_to_string(dir.join("ck-cert/tanoad.toml")).unwrap();
        assert!(ck.contains(&format!("sha256 = \"{}\"", join.hash)), "{ck}");
        assert!(!ck.contains("[[members]]"), "{ck}");
        let founding = std::fs::read_to_string(dir.join(federation::FOUNDING_ROSTER)).unwrap();
        let founding = tanoa_core::roster::SignedRoster::from_json(&founding).unwrap();
        assert_eq!(founding.roster.version, 1);
        assert_eq!(founding.signatures.len(), 5);
        assert!(founding.roster.member("ck-cert").is_none());
        for x in &m.members {
            assert!(x.others.is_empty() && x.error.is_none(), "{x:?}");
        }
        let doc = report.to_json();
        assert_eq!(doc["checks"]["ok"], true);
        assert_eq!(doc["converged"], true);
        assert_eq!(doc["anti_entropy"]["completed"], 30);
        assert_eq!(doc["join"]["member"], "ck-cert");
        assert_eq!(
            doc["holdings"][1]["holds"]["apt40-forum-lures-amber"],
            false
        );
        // Every member stopped and removed its socket; dev keys are private.
        for x in &report.members {
            assert!(!x.socket.exists(), "{} still has a socket", x.id);
            assert_eq!(mode(&x.dir.join(format!("keys/{}.key", x.id))), 0o600);
            assert_eq!(mode(&dir.join(format!("pki/members/{}.key", x.id))), 0o600);
        }
        assert_eq!(mode(&dir.join("pki/ca.key")), 0o600);
        // A second run recreates the directory.
        assert!(dir.join(MARKER).is_file());
        prepare_dir(&dir).unwrap();
        assert!(!dir.join("ws-cert").exists());
    }
}
