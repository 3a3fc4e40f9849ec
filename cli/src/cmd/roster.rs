//! `tanoa roster …`: the signed roster. Offline: `init` (the founding version from the
//! founders' join requests), `sign` (a founder's signature), `hash`. Through the daemon:
//! `propose`, `approve`, `show`, `history`, `diff`.
//!
//! Owns: the roster command group and its printing.
//! Must never: judge a roster (the daemon and `tanoa_core::roster` do), print private keys.

use std::collections::BTreeSet;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use tanoa_core::membership::SpkiPin;
use tanoa_core::roster::{
    Change, JoinRequest, RosterDoc, RosterMember, RosterSignature, SignedRoster, found,
};
use tanoa_proto::v1 as pb;

use crate::args::GlobalArgs;
use crate::cmd::member::signing_identity;
use crate::exit::Failure;
use crate::{connect, outfile, output};

/// `tanoa roster` commands.
#[derive(Debug, Clone, Subcommand)]
pub enum RosterCommand {
    /// Founders: build version 1 from the founders' join requests (unsigned; each founder then
    /// runs `tanoa roster sign`).
    Init(InitArgs),
    /// Founders: add this member's signature to a roster file (after checking its hash).
    Sign(SignArgs),
    /// Print the roster hash of a roster file (what `[roster] sha256` must say).
    Hash(HashArgs),
    /// Propose a change: add REQUEST.json | remove MEMBER | rotate-key MEMBER --public-key HEX
    /// --from TIME | revoke MEMBER --revoke HEX --as-of TIME | set-threshold N | set-pins
    /// MEMBER --pin sha256:HEX [--pin …].
    #[command(subcommand)]
    Propose(ProposeCommand),
    /// Approve a pending proposal (its hash, or a prefix of at least 8 hex digits).
    Approve(ApproveArgs),
    /// The roster in force: version, hash, threshold, members, keys, pins, pending proposals.
    Show,
    /// Every roster version this node followed, oldest first.
    History,
    /// What changed between two versions (numbers from `tanoa roster history`).
    Diff(DiffArgs),
    /// Write the signed version in force as a roster file (usable as `[roster] file`, or to
    /// hand a new member) and print its hash.
    Export(ExportArgs),
}

/// `tanoa roster export` arguments.
#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    /// Output roster file (mode 0644: a public document, checked by its hash).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: PathBuf,
    /// Replace an existing output file.
    #[arg(long)]
    pub force: bool,
}

/// `tanoa roster init` arguments.
#[derive(Debug, Clone, Args)]
pub struct InitArgs {
    /// Federation id.
    #[arg(long)]
    pub federation: String,
    /// Distinct members whose signatures each next version needs.
    #[arg(long)]
    pub threshold: u32,
    /// The founders' join requests.
    #[arg(value_name = "REQUEST.json", required = true)]
    pub requests: Vec<PathBuf>,
    /// Output roster file.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: PathBuf,
    /// Replace an existing output file.
    #[arg(long)]
    pub force: bool,
}

/// `tanoa roster sign` arguments.
#[derive(Debug, Clone, Args)]
pub struct SignArgs {
    /// Roster file, signed in place.
    #[arg(value_name = "ROSTER.json")]
    pub file: PathBuf,
    /// The hash you checked out of band (refused if the file's differs).
    #[arg(long, value_name = "HEX")]
    pub expect: Option<String>,
    /// Signing key file [default: the key file of the config's [member]].
    #[arg(long, value_name = "FILE")]
    pub signing_key: Option<PathBuf>,
}

/// `tanoa roster hash` arguments.
#[derive(Debug, Clone, Args)]
pub struct HashArgs {
    /// Roster file.
    #[arg(value_name = "ROSTER.json")]
    pub file: PathBuf,
}

/// `tanoa roster propose` commands.
#[derive(Debug, Clone, Subcommand)]
pub enum ProposeCommand {
    /// Add the member of a join request.
    Add {
        /// The join request (`tanoa member request`).
        #[arg(value_name = "REQUEST.json")]
        request: PathBuf,
    },
    /// Remove a member.
    Remove {
        /// Member id.
        member: String,
    },
    /// Give a member a new signing key from a time (its old keys end just before).
    RotateKey {
        /// Member id.
        member: String,
        /// The new public key (64 hex digits).
        #[arg(long, value_name = "HEX")]
        public_key: String,
        /// From when it signs (RFC 3339, YYYY-MM-DD, or Unix ms).
        #[arg(long, value_name = "TIME")]
        from: String,
    },
    /// Revoke a member's key: what it signed dated at or after --as-of is dropped everywhere.
    Revoke {
        /// Member id.
        member: String,
        /// The revoked public key (64 hex digits).
        #[arg(long = "revoke", value_name = "HEX")]
        public_key: String,
        /// From when its signatures are void (RFC 3339, YYYY-MM-DD, or Unix ms).
        #[arg(long, value_name = "TIME")]
        as_of: String,
    },
    /// Set the threshold.
    SetThreshold {
        /// New threshold.
        threshold: u32,
    },
    /// Replace a member's TLS pins (certificate renewal: first the old and the new pin, once
    /// the member presents its new certificate only the new one). `tanoa pki pin CERT` prints a
    /// certificate's pin.
    SetPins {
        /// Member id.
        member: String,
        /// SHA-256 pin of a certificate's public key (`sha256:` + 64 hex digits; repeatable,
        /// at least one).
        #[arg(
            long = "pin",
            alias = "tls-pin",
            value_name = "sha256:HEX",
            required = true
        )]
        pins: Vec<String>,
    },
}

/// `tanoa roster approve` arguments.
#[derive(Debug, Clone, Args)]
pub struct ApproveArgs {
    /// Hash of the proposed version (or a prefix of at least 8 hex digits).
    #[arg(value_name = "PROPOSAL")]
    pub proposal: String,
}

/// `tanoa roster diff` arguments.
#[derive(Debug, Clone, Args)]
pub struct DiffArgs {
    /// From version.
    pub a: u64,
    /// To version.
    pub b: u64,
}

fn parse_time(s: &str, field: &str) -> Result<i64, Failure> {
    let t = s.trim();
    if let Ok(ms) = t.parse::<i64>() {
        return Ok(ms);
    }
    let full = if t.len() == 10 {
        format!("{t}T00:00:00Z")
    } else {
        t.to_string()
    };
    tanoa_daemon::config::parse_rfc3339_ms(&full)
        .map_err(|e| Failure::usage(format!("{field}: {e}")))
}

fn read_roster(path: &PathBuf) -> Result<SignedRoster, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::failed(format!("cannot read {}: {e}", path.display())))?;
    SignedRoster::from_json(&text).map_err(|e| Failure::usage(format!("{}: {e}", path.display())))
}

fn read_request(path: &PathBuf) -> Result<JoinRequest, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::failed(format!("cannot read {}: {e}", path.display())))?;
    let r: JoinRequest = serde_json::from_str(&text)
        .map_err(|e| Failure::usage(format!("{}: not a join request ({e})", path.display())))?;
    r.verify()
        .map_err(|e| Failure::usage(format!("{}: {e}", path.display())))?;
    Ok(r)
}

/// Runs `tanoa roster …`.
pub async fn run(c: RosterCommand, g: &GlobalArgs) -> anyhow::Result<()> {
    match c {
        RosterCommand::Init(a) => init(a, g),
        RosterCommand::Sign(a) => sign(a, g),
        RosterCommand::Hash(a) => {
            let s = read_roster(&a.file)?;
            if g.json {
                output::print_json(
                    &json!({"hash": s.hash().to_hex(), "version": s.roster.version}),
                );
            } else {
                outln!("{}", s.hash());
            }
            Ok(())
        }
        RosterCommand::Propose(p) => propose(p, g).await,
        RosterCommand::Approve(a) => approve(a, g).await,
        RosterCommand::Show => show(g).await,
        RosterCommand::History => history(g).await,
        RosterCommand::Diff(a) => diff(a, g).await,
        RosterCommand::Export(a) => export(a, g).await,
    }
}

/// `tanoa roster export`: the version in force as the daemon holds it (signatures verified
/// there), checked here again against the hash the daemon reports before it is written.
async fn export(a: ExportArgs, g: &GlobalArgs) -> anyhow::Result<()> {
    let mut client = connect::connect(g).await?;
    let r = client
        .roster_show(pb::RosterShowRequest {})
        .await
        .context("roster show")?
        .into_inner();
    if !r.signed {
        return Err(Failure::usage(
            "this node follows a local [[members]] roster (version 0): there is no signed \
             roster to export",
        )
        .into());
    }
    let s = SignedRoster::from_json(&r.roster_json)
        .map_err(|e| Failure::failed(format!("the daemon sent an unreadable roster: {e}")))?;
    let h = s.hash();
    if tanoa_core::roster::RosterHash::from_hex(&r.hash) != Some(h) {
        return Err(Failure::failed(format!(
            "the daemon reports hash {} for a roster whose hash is {h}; not written",
            r.hash
        ))
        .into());
    }
    outfile::write_mode(
        &a.output,
        (s.to_json() + "\n").as_bytes(),
        a.force,
        outfile::PUBLIC_MODE,
    )?;
    if g.json {
        output::print_json(&json!({
            "file": a.output, "hash": h.to_hex(), "version": s.roster.version,
            "signatures": s.signatures.len(),
        }));
    } else {
        // The hash alone on stdout (like `roster hash`), so `hash=$(tanoa roster export …)`.
        outln!("{h}");
        eprintln!(
            "roster version {} ({} signatures) written to {}",
            s.roster.version,
            s.signatures.len(),
            a.output.display()
        );
    }
    Ok(())
}

fn init(a: InitArgs, g: &GlobalArgs) -> anyhow::Result<()> {
    let mut reqs = Vec::new();
    for p in &a.requests {
        reqs.push(read_request(p)?);
    }
    let doc = found(&a.federation, a.threshold, tanoa_daemon::now_ms(), &reqs)
        .map_err(|e| Failure::usage(format!("roster: {e}")))?;
    let s = SignedRoster {
        roster: doc,
        signatures: Vec::new(),
    };
    outfile::write(&a.output, (s.to_json() + "\n").as_bytes(), a.force)?;
    if g.json {
        output::print_json(&json!({"hash": s.hash().to_hex(), "file": a.output}));
    } else {
        outln!(
            "roster version 1 of {} ({} founders, threshold {}) written to {}\nhash {}\n\
             each founder checks this hash out of band, then runs `tanoa roster sign {} --expect HASH`",
            a.federation,
            s.roster.members.len(),
            a.threshold,
            a.output.display(),
            s.hash(),
            a.output.display()
        );
    }
    Ok(())
}

fn sign(a: SignArgs, g: &GlobalArgs) -> anyhow::Result<()> {
    let mut s = read_roster(&a.file)?;
    let h = s.hash();
    if let Some(want) = &a.expect
        && tanoa_core::roster::RosterHash::from_hex(want) != Some(h)
    {
        return Err(Failure::failed(format!(
            "{} has hash {h}, not {want}: do not sign it",
            a.file.display()
        ))
        .into());
    }
    let identity = signing_identity(a.signing_key.as_ref(), g)?;
    if s.roster.member(identity.member()).is_none() {
        return Err(Failure::usage(format!(
            "{} is not a member of this roster",
            identity.member()
        ))
        .into());
    }
    s.signatures.retain(|x| x.member != identity.member());
    s.signatures.push(RosterSignature::by(&identity, &h));
    s.signatures.sort();
    outfile::write(&a.file, (s.to_json() + "\n").as_bytes(), true)?;
    let n = s.signatures.len();
    if g.json {
        output::print_json(&json!({"hash": h.to_hex(), "signatures": n}));
    } else {
        outln!(
            "signed roster {} as {} ({n} of {} signatures needed to found it)",
            h,
            identity.member(),
            s.roster.threshold
        );
    }
    Ok(())
}

async fn propose(p: ProposeCommand, g: &GlobalArgs) -> anyhow::Result<()> {
    let change = match p {
        ProposeCommand::Add { request } => Change::Add {
            request: read_request(&request)?,
        },
        ProposeCommand::Remove { member } => Change::Remove { member },
        ProposeCommand::RotateKey {
            member,
            public_key,
            from,
        } => Change::RotateKey {
            member,
            public_key,
            from_ms: parse_time(&from, "--from")?,
        },
        ProposeCommand::Revoke {
            member,
            public_key,
            as_of,
        } => Change::Revoke {
            member,
            public_key,
            as_of_ms: parse_time(&as_of, "--as-of")?,
        },
        ProposeCommand::SetThreshold { threshold } => Change::SetThreshold { threshold },
        ProposeCommand::SetPins { member, pins } => {
            for (j, p) in pins.iter().enumerate() {
                SpkiPin::from_hex(p)
                    .map_err(|e| Failure::usage(format!("--pin (#{}): {e}", j + 1)))?;
            }
            Change::SetPins { member, pins }
        }
    };
    let what = change.describe();
    let mut client = connect::connect(g).await?;
    let r = client
        .roster_propose(pb::RosterProposeRequest {
            change_json: serde_json::to_string(&change)?,
        })
        .await
        .with_context(|| format!("roster propose {what}"))?
        .into_inner();
    if g.json {
        output::print_json(
            &json!({"hash": r.hash, "version": r.version, "required": r.required, "change": what}),
        );
    } else {
        outln!(
            "proposed version {} ({what}): {}\nit needs {} signature(s) of members (this one's \
             included); others run `tanoa roster approve {}`",
            r.version,
            r.hash,
            r.required,
            &r.hash.get(..16).unwrap_or(&r.hash)
        );
    }
    Ok(())
}

async fn approve(a: ApproveArgs, g: &GlobalArgs) -> anyhow::Result<()> {
    let mut client = connect::connect(g).await?;
    let r = client
        .roster_approve(pb::RosterApproveRequest {
            proposal: a.proposal.clone(),
        })
        .await
        .with_context(|| format!("roster approve {}", a.proposal))?
        .into_inner();
    if g.json {
        output::print_json(
            &json!({"hash": r.hash, "version": r.version, "signatures": r.signatures, "required": r.required, "in_force": r.in_force}),
        );
    } else if r.in_force {
        outln!(
            "approved {}: version {} is in force here",
            r.hash,
            r.version
        );
    } else {
        outln!(
            "approved {} (version {}): {} of {} signatures held here",
            r.hash,
            r.version,
            r.signatures,
            r.required
        );
    }
    Ok(())
}

fn window(k: &tanoa_core::roster::RosterKey) -> String {
    let t = |ms: Option<i64>| ms.map_or("-".to_string(), output::time_text);
    let mut s = format!("{} .. {}", t(k.valid_from_ms), t(k.valid_until_ms));
    if let Some(r) = k.revoked_as_of_ms {
        s.push_str(&format!(", REVOKED as of {}", output::time_text(r)));
    }
    s
}

fn member_lines(m: &RosterMember) -> Vec<String> {
    let mut out = vec![format!(
        "  {} ({})  {}",
        m.id,
        m.name,
        m.endpoints.join(", ")
    )];
    for k in &m.keys {
        out.push(format!(
            "    key {} {}  [{}]",
            k.key_id().unwrap_or_default(),
            k.public_key,
            window(k)
        ));
    }
    for p in &m.tls_pins {
        out.push(format!("    tls pin sha256:{p}"));
    }
    out
}

async fn show(g: &GlobalArgs) -> anyhow::Result<()> {
    let mut client = connect::connect(g).await?;
    let r = client
        .roster_show(pb::RosterShowRequest {})
        .await
        .context("roster show")?
        .into_inner();
    let roster: Value = serde_json::from_str(&r.roster_json).unwrap_or(Value::Null);
    if g.json {
        output::print_json(&json!({
            "signed": r.signed,
            "version": r.version,
            "hash": r.hash,
            "roster": roster,
            "pending": r.pending.iter().map(|p| json!({
                "hash": p.hash, "version": p.version, "change": p.change, "proposer": p.proposer,
                "signed_by": p.signed_by, "required": p.required,
            })).collect::<Vec<_>>(),
            "fork": r.fork.then(|| json!({"version": r.fork_version, "hashes": r.fork_hashes})),
            "refusals": r.refusals,
        }));
        return Ok(());
    }
    if !r.signed {
        outln!("roster: version 0 (the local [[members]] list of tanoad.toml; not signed)");
        return Ok(());
    }
    let s = SignedRoster::from_json(&r.roster_json)
        .map_err(|e| Failure::failed(format!("the daemon sent an unreadable roster: {e}")))?;
    let mut lines = vec![
        format!("federation  {}", s.roster.federation),
        format!("version     {}", r.version),
        format!("hash        {}", r.hash),
        format!(
            "threshold   {} of {} members",
            s.roster.threshold,
            s.roster.members.len()
        ),
        format!(
            "signed by   {}",
            s.signatures
                .iter()
                .map(|x| x.member.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    ];
    if r.fork {
        lines.push(format!(
            "FORK        version {} has two valid versions ({}); roster changes are frozen",
            r.fork_version,
            r.fork_hashes.join(", ")
        ));
    }
    lines.push("members".into());
    for m in &s.roster.members {
        lines.extend(member_lines(m));
    }
    if !s.roster.former_members.is_empty() {
        lines.push("former members".into());
        for f in &s.roster.former_members {
            lines.push(format!(
                "  {} ({}) removed {}",
                f.id,
                f.name,
                output::time_text(f.removed_ms)
            ));
        }
    }
    if r.pending.is_empty() {
        lines.push("pending     none".into());
    } else {
        lines.push("pending".into());
        for p in &r.pending {
            lines.push(format!(
                "  {} v{} {} by {}: {}/{} signatures ({})",
                &p.hash.get(..16).unwrap_or(&p.hash),
                p.version,
                p.change,
                p.proposer,
                p.signed_by.len(),
                p.required,
                p.signed_by.join(", ")
            ));
        }
    }
    if !r.refusals.is_empty() {
        let mut v: Vec<_> = r.refusals.iter().collect();
        v.sort();
        lines.push(format!(
            "refused     {}",
            v.iter()
                .map(|(k, n)| format!("{k}={n}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    outln!("{}", lines.join("\n"));
    Ok(())
}

async fn fetch_history(g: &GlobalArgs) -> anyhow::Result<Vec<SignedRoster>> {
    let mut client = connect::connect(g).await?;
    let r = client
        .roster_history(pb::RosterHistoryRequest {})
        .await
        .context("roster history")?
        .into_inner();
    r.versions_json
        .iter()
        .map(|j| {
            SignedRoster::from_json(j).map_err(|e| {
                Failure::failed(format!("the daemon sent an unreadable roster: {e}")).into()
            })
        })
        .collect()
}

async fn history(g: &GlobalArgs) -> anyhow::Result<()> {
    let versions = fetch_history(g).await?;
    if g.json {
        output::print_json(&json!(
            versions
                .iter()
                .map(|s| json!({
                    "version": s.roster.version,
                    "hash": s.hash().to_hex(),
                    "issued_ms": s.roster.issued_ms,
                    "threshold": s.roster.threshold,
                    "members": s.roster.members.iter().map(|m| m.id.clone()).collect::<Vec<_>>(),
                    "signed_by": s.signatures.iter().map(|x| x.member.clone()).collect::<Vec<_>>(),
                }))
                .collect::<Vec<_>>()
        ));
        return Ok(());
    }
    for s in &versions {
        outln!(
            "v{}  {}  {}  threshold {}  members {}  signed by {}",
            s.roster.version,
            &s.hash().to_hex()[..16],
            output::time_text(s.roster.issued_ms),
            s.roster.threshold,
            s.roster
                .members
                .iter()
                .map(|m| m.id.as_str())
                .collect::<Vec<_>>()
                .join(","),
            s.signatures
                .iter()
                .map(|x| x.member.as_str())
                .collect::<Vec<_>>()
                .join(",")
        );
    }
    Ok(())
}

/// The differences between two roster documents, as JSON.
pub fn diff_json(a: &RosterDoc, b: &RosterDoc) -> Value {
    let d = a.membership().diff(&b.membership());
    let changed: Vec<Value> = d
        .changed
        .iter()
        .filter_map(|id| {
            let (x, y) = (a.member(id)?, b.member(id)?);
            let keys = |m: &RosterMember| -> BTreeSet<String> {
                m.keys.iter().map(|k| format!("{} [{}]", k.public_key, window(k))).collect()
            };
            let (kx, ky) = (keys(x), keys(y));
            let (px, py): (BTreeSet<_>, BTreeSet<_>) =
                (x.tls_pins.iter().collect(), y.tls_pins.iter().collect());
            Some(json!({
                "member": id,
                "endpoints": (x.endpoints != y.endpoints).then(|| json!([x.endpoints, y.endpoints])),
                "keys_removed": kx.difference(&ky).collect::<Vec<_>>(),
                "keys_added": ky.difference(&kx).collect::<Vec<_>>(),
                "pins_removed": px.difference(&py).collect::<Vec<_>>(),
                "pins_added": py.difference(&px).collect::<Vec<_>>(),
            }))
        })
        .collect();
    json!({
        "from": a.version,
        "to": b.version,
        "threshold": (a.threshold != b.threshold).then(|| json!([a.threshold, b.threshold])),
        "added": d.added,
        "removed": d.removed,
        "changed": changed,
    })
}

async fn diff(a: DiffArgs, g: &GlobalArgs) -> anyhow::Result<()> {
    let versions = fetch_history(g).await?;
    let find = |v: u64| {
        versions
            .iter()
            .find(|s| s.roster.version == v)
            .map(|s| s.roster.clone())
            .ok_or_else(|| {
                Failure::usage(format!(
                    "version {v} is not in this node's roster history (`tanoa roster history`)"
                ))
            })
    };
    let (x, y) = (find(a.a)?, find(a.b)?);
    let d = diff_json(&x, &y);
    if g.json {
        output::print_json(&d);
        return Ok(());
    }
    let mut lines = vec![format!("roster v{} -> v{}", x.version, y.version)];
    if x.threshold != y.threshold {
        lines.push(format!("threshold {} -> {}", x.threshold, y.threshold));
    }
    let list = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    for id in list(&d["added"]) {
        lines.push(format!("+ member {id}"));
    }
    for id in list(&d["removed"]) {
        lines.push(format!("- member {id}"));
    }
    for c in d["changed"].as_array().cloned().unwrap_or_default() {
        let id = c["member"].as_str().unwrap_or_default().to_string();
        lines.push(format!("~ member {id}"));
        for k in list(&c["keys_removed"]) {
            lines.push(format!("    - key {k}"));
        }
        for k in list(&c["keys_added"]) {
            lines.push(format!("    + key {k}"));
        }
        for p in list(&c["pins_removed"]) {
            lines.push(format!("    - pin {p}"));
        }
        for p in list(&c["pins_added"]) {
            lines.push(format!("    + pin {p}"));
        }
        if !c["endpoints"].is_null() {
            lines.push(format!("    endpoints {}", c["endpoints"]));
        }
    }
    if lines.len() == 1 {
        lines.push("no difference".into());
    }
    outln!("{}", lines.join("\n"));
    Ok(())
}
