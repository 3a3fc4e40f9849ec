//! `tanoa import --format stix FILE`: a STIX 2.1 (or 2.0, upgraded) bundle becomes advisories.
//!
//! The conversion is `tanoa_daemon::interop::stix::import_bundle_report` (every object kept
//! verbatim in `extras.stix`; one advisory per bundle, or parts `<id>-p1..pN` when it does not
//! fit one). The drafts are checked locally against the advisory rules, then published with one
//! PublishBatch (all or nothing: the daemon validates and signs every draft before it stores
//! any). `--dry-run` stops after the local checks.
//!
//! Owns: reading the file, the progress display, and the report of what was kept, indexed and
//! not indexed, and where the TLP came from.
//! Must never: publish part of a bundle, or hide an indicator that was not indexed.

use std::io::IsTerminal as _;

use serde_json::{Value, json};
use tanoa_daemon::interop::stix::{self, ImportOptions, ImportSummary, Imported, StixError};
use tanoa_daemon::model::draft::draft_to_advisory;
use tanoa_daemon::model::{Draft, Limits, normalize_advisory, validate_advisory, wire};
use tanoa_proto::v1 as pb;

use crate::args::GlobalArgs;
use crate::cmd::import::ImportArgs;
use crate::connect;
use crate::exit::Failure;
use crate::output;

/// Where the mapping is documented.
const DOC_HINT: &str = "the STIX mapping is documented in docs/interop.md (section STIX 2.1)";

/// Runs `tanoa import --format stix`.
pub async fn run(a: &ImportArgs, g: &GlobalArgs) -> anyhow::Result<()> {
    let name = a.file.display().to_string();
    let progress = Progress::new(g.json);
    progress.say(format!("reading {name}"));
    let bytes =
        std::fs::read(&a.file).map_err(|e| Failure::usage(format!("cannot read {name}: {e}")))?;
    progress.say(format!(
        "checking and converting {name} ({})",
        human_bytes(bytes.len())
    ));
    let opts = ImportOptions {
        tlp: a.tlp,
        audience: a.audience.clone(),
        id: a.id.clone(),
        limits: Limits::default(),
    };
    let imp = stix::import_bundle_report(&bytes, &opts).map_err(|e| {
        progress.clear();
        refused(&name, e)
    })?;
    progress.say(format!(
        "validating {} advisor{}",
        imp.drafts.len(),
        if imp.drafts.len() == 1 { "y" } else { "ies" }
    ));
    check_locally(&imp, &name).inspect_err(|_| progress.clear())?;
    if a.dry_run {
        progress.clear();
        print_report(&imp, &name, None, g.json);
        return Ok(());
    }
    let request_bytes: usize = imp.drafts.iter().map(|d| d.extras.len()).sum();
    progress.say(format!(
        "publishing {} advisor{} ({}) with PublishBatch",
        imp.drafts.len(),
        if imp.drafts.len() == 1 { "y" } else { "ies" },
        human_bytes(request_bytes)
    ));
    let mut client = connect::connect(g)
        .await
        .inspect_err(|_| progress.clear())?;
    let r = client
        .publish_batch(pb::PublishBatchRequest {
            drafts: imp.drafts.iter().map(wire::draft_to_proto).collect(),
        })
        .await
        .map_err(|s| {
            progress.clear();
            refusal(&name, s)
        })?
        .into_inner();
    progress.clear();
    if r.results.len() != imp.drafts.len() {
        return Err(Failure::failed(format!(
            "import {name}: the daemon answered PublishBatch with {} results for {} drafts",
            r.results.len(),
            imp.drafts.len()
        ))
        .into());
    }
    print_report(&imp, &name, Some(&r.results), g.json);
    Ok(())
}

/// A spinner on stderr with the current step, when stderr is a terminal and output is for
/// people.
struct Progress(Option<indicatif::ProgressBar>);

impl Progress {
    fn new(json: bool) -> Self {
        if json || !std::io::stderr().is_terminal() {
            return Self(None);
        }
        let bar = indicatif::ProgressBar::new_spinner();
        if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} {msg} {elapsed}") {
            bar.set_style(style);
        }
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        Self(Some(bar))
    }

    fn say(&self, msg: String) {
        if let Some(b) = &self.0 {
            b.set_message(msg);
        }
    }

    fn clear(&self) {
        if let Some(b) = &self.0 {
            b.finish_and_clear();
        }
    }
}

fn human_bytes(n: usize) -> String {
    if n >= 1 << 20 {
        format!("{:.1} MiB", n as f64 / f64::from(1u32 << 20))
    } else if n >= 1 << 10 {
        format!("{:.1} KiB", n as f64 / 1024.0)
    } else {
        format!("{n} bytes")
    }
}

/// A bundle refused by the conversion: bad input (exit 2), every problem on its own line.
fn refused(name: &str, e: StixError) -> anyhow::Error {
    let (msg, hint) = match &e {
        StixError::Invalid { errors, omitted } => {
            let mut lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
            if *omitted > 0 {
                lines.push(format!("… and {omitted} more"));
            }
            (
                format!(
                    "{name}: STIX bundle refused, nothing published:\n{}",
                    lines.join("\n")
                ),
                "fix the objects named above (each line is `<object id>: <property>: <problem>`)"
                    .to_string(),
            )
        }
        StixError::NoTlp { .. } => (
            format!("{name}: STIX bundle refused, nothing published: {e}"),
            "add --tlp CLEAR|GREEN|AMBER|AMBER+STRICT|RED".to_string(),
        ),
        StixError::Options(_) if e.to_string().contains("--audience") => (
            format!("{name}: STIX bundle refused, nothing published: {e}"),
            "name the members with --audience id,id".to_string(),
        ),
        _ => (
            format!("{name}: STIX bundle refused, nothing published: {e}"),
            DOC_HINT.to_string(),
        ),
    };
    Failure::usage(msg).hint(hint).into()
}

/// Every draft must be an advisory the daemon would accept (default limits).
fn check_locally(imp: &Imported, name: &str) -> Result<(), Failure> {
    let now = tanoa_daemon::now_ms();
    for d in &imp.drafts {
        let id = d.id.as_deref().unwrap_or_default();
        let mut adv = draft_to_advisory(d, "dry-run", id, 1, now, now)
            .map_err(|e| Failure::usage(format!("{name}: advisory {id} is invalid: {e}")))?;
        normalize_advisory(&mut adv);
        validate_advisory(&adv, &Limits::default()).map_err(|e| {
            Failure::usage(format!(
                "{name}: advisory {id} is invalid:\n{}",
                e.to_string().replace("; ", "\n")
            ))
            .hint(DOC_HINT)
        })?;
    }
    Ok(())
}

/// A daemon refusal: `InvalidArgument` lists each field.
fn refusal(name: &str, status: tonic::Status) -> anyhow::Error {
    if status.code() == tonic::Code::InvalidArgument {
        let lines: Vec<&str> = status.message().split("; ").collect();
        return Failure::usage(format!(
            "the daemon refused the advisories converted from {name}, nothing published:\n{}",
            lines.join("\n")
        ))
        .hint(DOC_HINT)
        .into();
    }
    anyhow::Error::new(status).context(format!("import {name}"))
}

/// The JSON report (`--json`).
pub fn report_json(
    s: &ImportSummary,
    drafts: &[Draft],
    name: &str,
    published: Option<&[pb::PublishResponse]>,
) -> Value {
    let advisories: Vec<Value> = s
        .parts
        .iter()
        .enumerate()
        .map(|(n, p)| {
            let mut v = json!({
                "id": p.id,
                "title": drafts.get(n).map(|d| d.title.as_str()).unwrap_or(""),
                "objects": p.objects,
                "indicators": p.indicators,
                "extras_bytes": p.extras_bytes,
            });
            if let Some(r) = published.and_then(|r| r.get(n)) {
                v["origin"] = json!(r.origin);
                v["revision"] = json!(r.revision);
                v["item_id"] = json!(r.item_id);
                v["warnings"] = output::warnings_json(&r.warnings);
            }
            v
        })
        .collect();
    let examples: Vec<Value> = s
        .not_indexed_examples
        .iter()
        .map(|n| json!({"id": n.id, "reason": n.reason}))
        .collect();
    let notes = |v: &[stix::ObjectNote]| -> Vec<Value> {
        v.iter()
            .map(|n| json!({"id": n.id, "detail": n.detail}))
            .collect()
    };
    json!({
        "file": name,
        "format": "stix",
        "published": published.is_some(),
        "bundle_id": s.bundle_id,
        "objects": s.objects,
        "upgraded_from_stix20": s.upgraded,
        "stix_indicators": s.stix_indicators,
        "indexed": s.indexed,
        "partly_indexed": s.partly_indexed,
        "not_indexed": s.not_indexed,
        "not_indexed_examples": examples,
        "reclassified": notes(&s.reclassified),
        "validator_warnings": notes(&s.validator_warnings),
        "indicator_values": s.values,
        "actors": s.actors,
        "cves": s.cves,
        "tlp": s.tlp.as_str(),
        "tlp_source": s.tlp_source.to_string(),
        "advisories": advisories,
    })
}

fn print_report(imp: &Imported, name: &str, published: Option<&[pb::PublishResponse]>, json: bool) {
    let s = &imp.summary;
    if json {
        output::print_json(&report_json(s, &imp.drafts, name, published));
        return;
    }
    let n = imp.drafts.len();
    let what = if n == 1 {
        "1 advisory".to_string()
    } else {
        format!("{n} advisories (the bundle is too large for one; split in parts)")
    };
    match published {
        Some(_) => outln!(
            "Imported STIX bundle {} from {name}: {what} published.",
            s.bundle_id
        ),
        None => outln!(
            "Dry run: STIX bundle {} from {name} converts to {what}; nothing published.",
            s.bundle_id
        ),
    }
    outln!("  title       {}", s.title);
    let upgraded = if s.upgraded > 0 {
        format!(" ({} upgraded from STIX 2.0)", s.upgraded)
    } else {
        String::new()
    };
    outln!("  objects     {} kept verbatim{upgraded}", s.objects);
    outln!(
        "  indicators  {} values indexed from {} STIX indicators: {} fully, {} partly, {} not indexed (kept verbatim)",
        s.values,
        s.stix_indicators,
        s.indexed,
        s.partly_indexed,
        s.not_indexed
    );
    for e in &s.not_indexed_examples {
        outln!("      not indexed: {}: {}", e.id, e.reason);
    }
    if s.not_indexed > s.not_indexed_examples.len() {
        outln!(
            "      … and {} more",
            s.not_indexed - s.not_indexed_examples.len()
        );
    }
    for r in &s.reclassified {
        outln!("      reclassified: {}: {}", r.id, r.detail);
    }
    for w in &s.validator_warnings {
        outln!(
            "  WARNING: {}: {} (kept verbatim; exported as it is)",
            w.id,
            w.detail
        );
    }
    outln!("  actors      {}   CVEs {}", s.actors, s.cves);
    outln!("  TLP         {} (from {})", s.tlp, s.tlp_source);
    for (k, p) in s.parts.iter().enumerate() {
        let line = published
            .and_then(|r| r.get(k))
            .map(|r| {
                format!(
                    "  {}/{} rev {}  item {}",
                    r.origin,
                    r.advisory_id,
                    r.revision,
                    output::short_id(&r.item_id)
                )
            })
            .unwrap_or_default();
        outln!(
            "  advisory    {}: {} objects, {} indicators{line}",
            p.id,
            p.objects,
            p.indicators
        );
        if let Some(r) = published.and_then(|r| r.get(k))
            && !r.warnings.is_empty()
        {
            outln!("{}", output::warnings_text(&r.warnings));
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn refusals_are_bad_input_with_every_problem_on_a_line() {
        let e = StixError::Invalid {
            errors: vec![
                stix::ObjectError {
                    id: "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f".into(),
                    reason: "created: \"2022-101-27\" is not an RFC 3339 timestamp".into(),
                },
                stix::ObjectError {
                    id: "objects[3]".into(),
                    reason: "id: missing".into(),
                },
            ],
            omitted: 2,
        };
        let f = crate::exit::classify(&refused("b.json", e));
        assert_eq!(f.code, crate::exit::USAGE);
        assert!(f.message.contains("nothing published"), "{}", f.message);
        assert!(
            f.message.contains(
                "\nindicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f: created: \"2022-101-27\""
            ),
            "{}",
            f.message
        );
        assert!(f.message.contains("\nobjects[3]: id: missing"));
        assert!(f.message.contains("and 2 more"));
        let f = crate::exit::classify(&refused(
            "b.json",
            StixError::NoTlp {
                bundle: "bundle--x".into(),
            },
        ));
        assert_eq!(f.code, crate::exit::USAGE);
        assert!(f.hint.unwrap().contains("--tlp"));
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(human_bytes(10), "10 bytes");
        assert_eq!(human_bytes(2048), "2.0 KiB");
        assert_eq!(human_bytes(3 << 20), "3.0 MiB");
    }
}
