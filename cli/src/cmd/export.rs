//! `tanoa export [ID...] --format F [-o PATH]`: give the daemon's holdings to other tools.
//!
//! `envelope` writes one advisory's signed envelope as JSON (this file); `stix` a STIX 2.1
//! bundle (`export_stix`); `misp` a MISP feed directory (`export_misp`); `csv`, `text`,
//! `suricata` and `zeek` blocklists of active indicators (`export_blocklist`).
//!
//! Owns: the export arguments, the format dispatch, the exported-envelope file (see
//! `crate::envfile`) built from Get and Status.
//! Must never: re-encode or alter a signed payload (envelope bytes are exported exactly as
//! signed).

use std::io::IsTerminal as _;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use serde_json::json;
use tanoa_daemon::envelope::Envelope;
use tanoa_daemon::model::{IndicatorKind, Tlp, wire};
use tanoa_proto::v1 as pb;

use crate::args::{GlobalArgs, parse_kind, parse_tlp};
use crate::cmd::show;
use crate::connect;
use crate::envfile::EnvelopeFile;
use crate::exit::Failure;
use crate::output;

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum ExportFormat {
    /// The signed envelope as JSON (tanoa-envelope-v1), for `tanoa verify` and `tanoa import`.
    #[default]
    Envelope,
    /// A STIX 2.1 bundle of the advisories (all held, or the IDs given).
    Stix,
    /// A MISP feed directory (manifest.json, hashes.csv, one <uuid>.json per advisory).
    Misp,
    /// Blocklist: CSV with a header (kind, value, origin, advisory, tlp, confidence, ...).
    Csv,
    /// Blocklist: one value per line.
    Text,
    /// Blocklist: Suricata rules with stable sids.
    Suricata,
    /// Blocklist: a Zeek intel framework file.
    Zeek,
}

/// `tanoa export` arguments.
#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    /// Item id, advisory id of ours, or origin/advisory-id. `envelope` takes exactly one;
    /// `stix` and `misp` take any number (none = every advisory held); blocklists take none.
    #[arg(value_name = "ID")]
    pub ids: Vec<String>,
    /// What to export.
    #[arg(long, value_enum, default_value_t = ExportFormat::Envelope)]
    pub format: ExportFormat,
    /// Write to this file (a directory for `misp`) instead of stdout.
    #[arg(short = 'o', long = "output", value_name = "PATH")]
    pub output: Option<PathBuf>,
    /// Blocklists: most restrictive TLP included (default GREEN: CLEAR and GREEN only).
    #[arg(long, value_name = "TLP", value_parser = parse_tlp)]
    pub max_tlp: Option<Tlp>,
    /// Blocklists: minimum indicator confidence (0-100).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub min_confidence: u32,
    /// Blocklists: only these indicator kinds (comma-separated or repeated).
    #[arg(long = "kind", value_name = "KIND", value_delimiter = ',', value_parser = parse_kind)]
    pub kinds: Vec<IndicatorKind>,
    /// Blocklists: only advisories of these origins (comma-separated or repeated).
    #[arg(long = "origin", value_name = "MEMBER", value_delimiter = ',')]
    pub origins: Vec<String>,
    /// Blocklists: also include indicators found on a warning list (excluded by default).
    #[arg(long)]
    pub include_warninglisted: bool,
    /// stix, misp: include withdrawn advisories (exported as revoked / deleted).
    #[arg(long)]
    pub include_withdrawn: bool,
    /// Replace an existing output file (a symlink there is replaced, never followed).
    #[arg(long)]
    pub force: bool,
    /// stix, misp without IDs: advisories listed per List request (tests use small pages).
    #[arg(long, value_name = "N", default_value_t = EXPORT_PAGE, hide = true)]
    pub page_size: u32,
}

/// Builds the export file from a Get response and, when we signed it, our Status keys.
pub fn envelope_file(
    get: &pb::GetResponse,
    status: Option<&pb::StatusResponse>,
) -> Result<EnvelopeFile, Failure> {
    let env = get
        .envelope
        .clone()
        .map(Envelope::from_proto)
        .ok_or_else(|| {
            Failure::failed(format!(
                "the daemon returned no envelope for {}",
                get.item_id
            ))
        })?;
    let signer = get
        .verification
        .as_ref()
        .map(|v| v.signer.clone())
        .filter(|s| !s.is_empty())
        .or_else(|| get.advisory.as_ref().map(|a| a.origin.clone()))
        .unwrap_or_default();
    let public_key = status
        .filter(|s| s.member_id == signer)
        .and_then(|s| s.keys.iter().find(|k| k.key_id == env.key_id))
        .map(|k| k.public_key.clone());
    Ok(EnvelopeFile::from_envelope(&env, &signer, public_key))
}

/// Runs `tanoa export`.
pub async fn run(a: ExportArgs, g: &GlobalArgs) -> anyhow::Result<()> {
    match a.format {
        ExportFormat::Envelope => run_envelope(a, g).await,
        ExportFormat::Stix => crate::cmd::export_stix::run(&a, g).await,
        ExportFormat::Misp => crate::cmd::export_misp::run(&a, g).await,
        ExportFormat::Csv | ExportFormat::Text | ExportFormat::Suricata | ExportFormat::Zeek => {
            crate::cmd::export_blocklist::run(&a, g).await
        }
    }
}

/// Exports one signed envelope.
async fn run_envelope(a: ExportArgs, g: &GlobalArgs) -> anyhow::Result<()> {
    let [id] = a.ids.as_slice() else {
        return Err(Failure::usage(format!(
            "--format envelope exports exactly one advisory; {} ids given",
            a.ids.len()
        ))
        .hint("tanoa export ID --format envelope")
        .into());
    };
    let mut client = connect::connect(g).await?;
    let get = show::get(&mut client, id).await?;
    let status = client
        .status(pb::StatusRequest {})
        .await
        .context("export: status")?
        .into_inner();
    let file = envelope_file(&get, Some(&status))?;
    match &a.output {
        None => print!("{}", file.to_json()),
        Some(path) => {
            crate::outfile::write(path, file.to_json().as_bytes(), a.force)?;
            if g.json {
                output::print_json(&json!({
                    "written": path,
                    "format": crate::envfile::FORMAT,
                    "item_id": file.item_id,
                    "key_id": file.key_id,
                    "signer": file.signer,
                    "public_key": file.public_key,
                }));
            } else {
                outln!(
                    "Wrote the signed envelope of item {} ({}) to {}.",
                    file.item_id,
                    file.signer,
                    path.display()
                );
                match &file.public_key {
                    Some(pk) => outln!(
                        "Verify it anywhere: tanoa verify {} --public-key {pk}",
                        path.display()
                    ),
                    None => outln!(
                        "Verify it with the signer's public key: tanoa verify {} --public-key <hex>",
                        path.display()
                    ),
                }
            }
        }
    }
    Ok(())
}

/// Advisories listed per List request when no ID is given.
const EXPORT_PAGE: u32 = 1_000;

/// Calls `f` with each advisory a document export (`stix`, `misp`) covers, as a Get response:
/// the IDs given (a withdrawn one is refused unless `--include-withdrawn`; `withdrawn_hint` says
/// what that flag would do), or every advisory held, read page by page in (origin, id) order
/// (List with `LIST_ORDER_ADVISORY_KEY` and `next_page_token`: no ceiling, and an advisory
/// revised meanwhile is neither missed nor repeated); `--origin` and `--max-tlp` filter both.
/// A counter runs on stderr when it is a terminal and the output is for people. Returns how
/// many advisories were passed to `f`.
pub async fn for_each_selected(
    client: &mut connect::Client,
    a: &ExportArgs,
    g: &GlobalArgs,
    withdrawn_hint: &str,
    f: &mut dyn FnMut(pb::GetResponse) -> anyhow::Result<()>,
) -> anyhow::Result<u64> {
    let wanted_tlp = |tlp: i32| match (a.max_tlp, wire::tlp_from_proto(tlp)) {
        (Some(max), Some(t)) => t <= max,
        (Some(_), None) => false,
        (None, _) => true,
    };
    let wanted_origin = |o: &str| a.origins.is_empty() || a.origins.iter().any(|x| x == o);
    let mut n = 0u64;
    if !a.ids.is_empty() {
        for id in &a.ids {
            let r = show::get(client, id).await?;
            let adv = r.advisory.as_ref().ok_or_else(|| {
                Failure::failed(format!("the daemon returned no advisory for {id}"))
            })?;
            if adv.withdrawn && !a.include_withdrawn {
                return Err(Failure::usage(format!(
                    "{id} ({}/{}) is withdrawn",
                    adv.origin, adv.id
                ))
                .hint(withdrawn_hint)
                .into());
            }
            if wanted_tlp(adv.tlp) && wanted_origin(&adv.origin) {
                f(r)?;
                n += 1;
            }
        }
        return Ok(n);
    }
    if a.page_size == 0 {
        return Err(Failure::usage("--page-size must be at least 1").into());
    }
    // One origin: the daemon filters; several: filtered here.
    let origin = match a.origins.as_slice() {
        [one] => one.clone(),
        _ => String::new(),
    };
    let bar = progress(g.json);
    let mut page_token = Vec::new();
    for page in 1u64.. {
        let list = client
            .list(pb::ListRequest {
                include_withdrawn: a.include_withdrawn,
                origin: origin.clone(),
                limit: a.page_size,
                order: pb::ListOrder::AdvisoryKey as i32,
                page_token: std::mem::take(&mut page_token),
                ..Default::default()
            })
            .await
            .with_context(|| format!("export: list (page {page})"))?
            .into_inner();
        for s in list
            .advisories
            .iter()
            .filter(|s| wanted_tlp(s.tlp) && wanted_origin(&s.origin))
        {
            f(show::get(client, &s.item_id).await?)?;
            n += 1;
            if let Some(b) = &bar {
                b.inc(1);
            }
        }
        if !list.truncated {
            break;
        }
        if list.next_page_token.is_empty() {
            return Err(Failure::failed(format!(
                "export: page {page} of the list is truncated but has no next_page_token \
                 (is the daemon older than this tanoa?)"
            ))
            .into());
        }
        page_token = list.next_page_token;
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    Ok(n)
}

/// A counter on stderr when it is a terminal and the output is for people.
fn progress(json: bool) -> Option<indicatif::ProgressBar> {
    if json || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new_spinner();
    if let Ok(style) = indicatif::ProgressStyle::with_template("{pos} advisories {per_sec}") {
        bar.set_style(style);
    }
    Some(bar)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn get() -> pb::GetResponse {
        pb::GetResponse {
            envelope: Some(pb::Envelope {
                payload: vec![1, 2, 3],
                key_id: "ed25519:0011223344556677".into(),
                signature: vec![5; 64],
            }),
            verification: Some(pb::Verification {
                valid: true,
                key_id: "ed25519:0011223344556677".into(),
                signer: "ws-cert".into(),
                detail: "signature verified".into(),
            }),
            ..Default::default()
        }
    }

    fn status(member: &str) -> pb::StatusResponse {
        pb::StatusResponse {
            member_id: member.into(),
            keys: vec![pb::KeyInfo {
                key_id: "ed25519:0011223344556677".into(),
                public_key: "ab".repeat(32),
                active: true,
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn public_key_is_included_only_when_we_signed() {
        let f = envelope_file(&get(), Some(&status("ws-cert"))).unwrap();
        assert_eq!(f.public_key, Some("ab".repeat(32)));
        assert_eq!(f.signer, "ws-cert");
        assert_eq!(f.payload_b64, "AQID");
        let f = envelope_file(&get(), Some(&status("fj-cert"))).unwrap();
        assert_eq!(f.public_key, None);
        let v: serde_json::Value = serde_json::from_str(&f.to_json()).unwrap();
        assert!(v.get("public_key").is_none());
        let mut no_env = get();
        no_env.envelope = None;
        assert!(envelope_file(&no_env, None).is_err());
    }
}
