//! `tanoa import --format misp FILE`: a MISP event becomes one advisory.
//!
//! The conversion is `tanoa_daemon::interop::misp::convert_event` (the whole event is kept
//! verbatim in the advisory's `extras`); the draft is published with PublishBatch (all or
//! nothing: the daemon validates and signs before it stores anything). `--dry-run` converts
//! and validates locally, with the default limits, and publishes nothing.
//!
//! Owns: reading the file, reporting what was indexed, what was not and why.
//! Must never: publish part of an event, or hide an attribute that was not indexed.

use serde_json::{Value, json};
use tanoa_daemon::interop::misp::{self, ImportOptions, ImportReport, MispImport};
use tanoa_daemon::model::draft::draft_to_advisory;
use tanoa_daemon::model::{Limits, normalize_advisory, validate_advisory, wire};
use tanoa_proto::v1 as pb;

use crate::args::GlobalArgs;
use crate::cmd::import::ImportArgs;
use crate::connect;
use crate::exit::Failure;
use crate::output;

/// How many not-indexed attributes the text report lists one by one (invalid values are
/// always listed).
const LISTED: usize = 20;

/// Where the mapping is documented.
const DOC_HINT: &str = "the MISP mapping is documented in docs/interop.md (section MISP)";

/// Runs `tanoa import --format misp`.
pub async fn run(a: &ImportArgs, g: &GlobalArgs) -> anyhow::Result<()> {
    let name = a.file.display().to_string();
    let bytes =
        std::fs::read(&a.file).map_err(|e| Failure::usage(format!("cannot read {name}: {e}")))?;
    let opts = ImportOptions {
        tlp: a.tlp,
        audience: a.audience.clone(),
        id: a.id.clone(),
    };
    let imp = misp::convert_event(&bytes, &opts).map_err(|e| {
        let hint = match e.at.as_str() {
            "Event.Tag" => "add --tlp CLEAR|GREEN|AMBER|AMBER+STRICT|RED".to_string(),
            "--audience" => "name the members with --audience id,id".to_string(),
            _ => DOC_HINT.to_string(),
        };
        Failure::usage(format!(
            "{name}: MISP event refused, nothing published: {e}"
        ))
        .hint(hint)
    })?;
    if a.dry_run {
        check_locally(&imp, &name)?;
        print_report(&imp, &name, None, g.json);
        return Ok(());
    }
    let mut client = connect::connect(g).await?;
    let r = client
        .publish_batch(pb::PublishBatchRequest {
            drafts: vec![wire::draft_to_proto(&imp.draft)],
        })
        .await
        .map_err(|s| refusal(&name, s))?
        .into_inner();
    let published = r.results.into_iter().next().ok_or_else(|| {
        Failure::failed(format!(
            "import {name}: the daemon answered PublishBatch without a result"
        ))
    })?;
    print_report(&imp, &name, Some(&published), g.json);
    Ok(())
}

/// `--dry-run`: the draft must be an advisory the daemon would accept (default limits).
fn check_locally(imp: &MispImport, name: &str) -> Result<(), Failure> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(1);
    let d = &imp.draft;
    let id = d.id.as_deref().unwrap_or_default();
    let mut adv = draft_to_advisory(d, "dry-run", id, 1, now, now)
        .map_err(|e| Failure::usage(format!("{name}: the converted advisory is invalid: {e}")))?;
    normalize_advisory(&mut adv);
    validate_advisory(&adv, &Limits::default()).map_err(|e| {
        Failure::usage(format!(
            "{name}: the converted advisory is invalid:\n{}",
            e.to_string().replace("; ", "\n")
        ))
        .hint(DOC_HINT)
    })
}

/// A daemon refusal: `InvalidArgument` lists each field (without the `drafts[0].` prefix).
fn refusal(name: &str, status: tonic::Status) -> anyhow::Error {
    if status.code() == tonic::Code::InvalidArgument {
        let msg = status.message();
        let lines: Vec<String> = msg
            .split("; ")
            .map(|l| {
                let l = l.strip_prefix("drafts[0].").unwrap_or(l);
                l.strip_prefix("invalid advisory: ")
                    .unwrap_or(l)
                    .to_string()
            })
            .collect();
        return Failure::usage(format!(
            "the daemon refused the advisory converted from {name}, nothing published:\n{}",
            lines.join("\n")
        ))
        .hint(DOC_HINT)
        .into();
    }
    anyhow::Error::new(status).context(format!("import {name}"))
}

fn report_json(r: &ImportReport) -> Value {
    let list: Vec<Value> = r
        .not_indexed
        .iter()
        .map(|n| {
            json!({
                "path": n.path,
                "uuid": n.uuid,
                "type": n.misp_type,
                "code": n.reason.code(),
                "reason": n.reason.to_string(),
            })
        })
        .collect();
    json!({
        "event_uuid": r.event_uuid,
        "attributes": r.attributes,
        "objects": r.objects,
        "indexed_attributes": r.indexed_attributes,
        "indicators": r.indicators,
        "cves": r.cves,
        "actors": r.actors,
        "references": r.references,
        "in_summary": r.in_summary,
        "tlp_tags": r.tlp_tags,
        "not_indexed": {
            "unmodelled": r.count("unmodelled"),
            "not_for_ids": r.count("not_for_ids"),
            "deleted": r.count("deleted"),
            "invalid": r.count("invalid"),
        },
        "not_indexed_attributes": list,
        "warnings": r.warnings,
    })
}

fn print_report(imp: &MispImport, name: &str, published: Option<&pb::PublishResponse>, json: bool) {
    let d = &imp.draft;
    let r = &imp.report;
    let tlp = d.tlp.as_str();
    let id = d.id.as_deref().unwrap_or_default();
    if json {
        let mut v = json!({
            "file": name,
            "format": "misp",
            "dry_run": published.is_none(),
            "advisory_id": published.map_or(id, |p| p.advisory_id.as_str()),
            "title": d.title,
            "tlp": tlp,
            "audience": d.audience,
            "report": report_json(r),
        });
        if let Some(p) = published {
            v["item_id"] = json!(p.item_id);
            v["revision"] = json!(p.revision);
            v["origin"] = json!(p.origin);
            v["warning_list_hits"] = json!(
                p.warnings
                    .iter()
                    .map(|w| json!({"indicator_index": w.indicator_index, "value": w.value, "lists": w.lists}))
                    .collect::<Vec<_>>()
            );
        } else {
            v["indicators"] = json!(
                d.indicators
                    .iter()
                    .map(|i| output::indicator_json(&wire::indicator_to_proto(i)))
                    .collect::<Vec<_>>()
            );
            v["actors"] = json!(d.actors);
            v["cves"] = json!(d.cves);
            v["references"] = json!(d.references);
        }
        output::print_json(&v);
        return;
    }
    let event = r.event_uuid.as_deref().unwrap_or("without uuid");
    match published {
        Some(p) => outln!(
            "Imported MISP event {event} {:?} from {name} as {}/{} revision {} (TLP:{tlp}; signed, stored durably).",
            d.title,
            p.origin,
            p.advisory_id,
            p.revision
        ),
        None => outln!(
            "Dry run: MISP event {event} {:?} from {name} converts to advisory {} (TLP:{tlp}); nothing published.",
            d.title,
            id
        ),
    }
    outln!(
        "  {} attributes ({} objects): {} indexed as {} indicators; {} CVEs, {} actors, {} references, {} texts in the summary.",
        r.attributes,
        r.objects,
        r.indexed_attributes,
        r.indicators,
        r.cves,
        r.actors,
        r.references,
        r.in_summary
    );
    if !r.tlp_tags.is_empty() {
        outln!("  TLP from: {}", r.tlp_tags.join(", "));
    }
    if !r.not_indexed.is_empty() {
        outln!(
            "  Not indexed (kept in the advisory's copy of the event): {} of a type Tanoa does not index, {} with to_ids false, {} deleted, {} invalid.",
            r.count("unmodelled"),
            r.count("not_for_ids"),
            r.count("deleted"),
            r.count("invalid")
        );
        let mut listed = 0usize;
        for n in &r.not_indexed {
            if n.reason.code() == "invalid" || listed < LISTED {
                outln!("    {n}");
                listed += 1;
            }
        }
        if listed < r.not_indexed.len() {
            outln!(
                "    … and {} more (--json lists them all)",
                r.not_indexed.len() - listed
            );
        }
    }
    for w in &r.warnings {
        outln!("  warning: {w}");
    }
    if let Some(p) = published {
        for w in &p.warnings {
            outln!("  on a warning list: {} ({})", w.value, w.lists.join(", "));
        }
        outln!("Inspect it: tanoa show {}", p.advisory_id);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn refusals_drop_the_batch_prefix_and_exit_2() {
        let err = refusal(
            "e.json",
            tonic::Status::invalid_argument(
                "drafts[0].indicators[3].value: bad; drafts[0].title: must not be empty",
            ),
        );
        let f = crate::exit::classify(&err);
        assert_eq!(f.code, crate::exit::USAGE);
        assert!(
            f.message
                .contains("\nindicators[3].value: bad\ntitle: must not be empty"),
            "{}",
            f.message
        );
        let err = refusal("e.json", tonic::Status::unavailable("down"));
        assert_eq!(crate::exit::classify(&err).code, crate::exit::FAILED);
    }

    #[test]
    fn report_json_counts_by_reason() {
        let bytes = br#"{"Event": {"info": "t", "Tag": [{"name": "tlp:clear"}], "Attribute": [
            {"uuid": "x-1", "type": "ip-dst", "value": "10.0.0.300"},
            {"uuid": "x-2", "type": "mutex", "value": "m"},
            {"uuid": "x-3", "type": "ip-dst", "value": "192.0.2.1"}]}}"#;
        let imp = misp::convert_event(bytes, &ImportOptions::default()).unwrap();
        let v = report_json(&imp.report);
        assert_eq!(v["not_indexed"]["invalid"], 1);
        assert_eq!(v["not_indexed"]["unmodelled"], 1);
        assert_eq!(v["indicators"], 1);
        assert_eq!(v["not_indexed_attributes"][0]["uuid"], "x-1");
        check_locally(&imp, "t.json").unwrap();
    }
}
