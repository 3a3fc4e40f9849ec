//! Output formatting: the JSON shapes of every command and the human tables.
//!
//! Owns: how operator API messages look on stdout (`--json` documents and comfy-table tables),
//! RFC 3339 UTC times, and enum names (TLP `AMBER+STRICT`, severity `high`, kind `ipv4`).
//! Must never: talk to the daemon, read files, or print errors (see `exit`).

use base64::Engine as _;
use comfy_table::{ContentArrangement, Table, presets};
use serde_json::{Value, json};
use tanoa_daemon::model::wire;
use tanoa_proto::v1 as pb;
use time::format_description::well_known::Rfc3339;

mod federation;
pub use federation::*;

/// Unix ms as RFC 3339 UTC (`2026-03-01T09:30:00Z`, with milliseconds when not whole seconds).
pub fn rfc3339(ms: i64) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| format!("{ms} ms"))
}

/// Unix ms as JSON: RFC 3339 string, or null when 0 (the API's "not set").
pub fn time_json(ms: i64) -> Value {
    if ms == 0 {
        Value::Null
    } else {
        Value::String(rfc3339(ms))
    }
}

/// Unix ms for people: RFC 3339 to the second, or `-` when 0.
pub fn time_text(ms: i64) -> String {
    if ms == 0 {
        "-".into()
    } else {
        rfc3339(ms.div_euclid(1000) * 1000)
    }
}

/// TLP label (`CLEAR`, `GREEN`, `AMBER`, `AMBER+STRICT`, `RED`; `UNSPECIFIED` otherwise).
pub fn tlp_name(v: i32) -> &'static str {
    wire::tlp_from_proto(v).map_or("UNSPECIFIED", |t| t.as_str())
}

/// Severity name (`unknown`, `info`, `low`, `medium`, `high`, `critical`).
pub fn severity_name(v: i32) -> &'static str {
    wire::severity_from_proto(v).map_or("unknown", |s| s.as_str())
}

/// Indicator kind name as written in advisory files (`ipv4`, `sha256`, …).
pub fn kind_name(v: i32) -> String {
    pb::IndicatorKind::try_from(v)
        .ok()
        .filter(|k| *k != pb::IndicatorKind::Unspecified)
        .map_or_else(
            || "unspecified".to_string(),
            |k| {
                k.as_str_name()
                    .trim_start_matches("INDICATOR_KIND_")
                    .to_ascii_lowercase()
            },
        )
}

/// Watch event kind name (`new`, `updated`, `withdrawn`, `equivocation`).
pub fn event_kind_name(v: i32) -> String {
    pb::WatchEventKind::try_from(v)
        .ok()
        .filter(|k| *k != pb::WatchEventKind::Unspecified)
        .map_or_else(
            || "unspecified".to_string(),
            |k| {
                k.as_str_name()
                    .trim_start_matches("WATCH_EVENT_KIND_")
                    .to_ascii_lowercase()
            },
        )
}

/// First 12 hex digits of an item id, for tables.
pub fn short_id(hex: &str) -> &str {
    hex.get(..12).unwrap_or(hex)
}

/// Prints one JSON document (pretty) on stdout.
pub fn print_json(v: &Value) {
    outln!(
        "{}",
        serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
    );
}

/// Prints one JSON document on a single line (for streams such as `watch`).
pub fn print_json_line(v: &Value) {
    outln!("{v}");
}

fn new_table() -> Table {
    let mut t = Table::new();
    t.load_preset(presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic);
    t
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

// ---------------------------------------------------------------------------------------------
// JSON shapes.

/// JSON of an advisory summary (one row of `list`, a history entry, a search hit's advisory).
pub fn summary_json(s: &pb::AdvisorySummary) -> Value {
    json!({
        "item_id": s.item_id,
        "advisory_id": s.advisory_id,
        "origin": s.origin,
        "revision": s.revision,
        "tlp": tlp_name(s.tlp),
        "title": s.title,
        "severity": severity_name(s.severity),
        "modified": time_json(s.modified_ms),
        "modified_ms": s.modified_ms,
        "withdrawn": s.withdrawn,
        "indicator_count": s.indicator_count,
    })
}

/// JSON of an indicator.
pub fn indicator_json(i: &pb::Indicator) -> Value {
    json!({
        "kind": kind_name(i.kind),
        "value": i.value,
        "confidence": i.confidence,
        "valid_until": time_json(i.valid_until_ms),
        "note": i.note,
    })
}

/// JSON of a full advisory payload.
pub fn advisory_json(a: &pb::Advisory) -> Value {
    let stix: Value = if a.extras.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&a.extras).unwrap_or_else(|_| json!({"base64": b64(&a.extras)}))
    };
    json!({
        "id": a.id,
        "origin": a.origin,
        "revision": a.revision,
        "created": time_json(a.created_ms),
        "created_ms": a.created_ms,
        "modified": time_json(a.modified_ms),
        "modified_ms": a.modified_ms,
        "valid_until": time_json(a.valid_until_ms),
        "tlp": tlp_name(a.tlp),
        "audience": a.audience,
        "title": a.title,
        "summary": a.summary,
        "severity": severity_name(a.severity),
        "actors": a.actors,
        "cves": a.cves,
        "indicators": a.indicators.iter().map(indicator_json).collect::<Vec<_>>(),
        "references": a.references,
        "withdrawn": a.withdrawn,
        "withdrawn_reason": a.withdrawn_reason,
        "extras": stix,
    })
}

/// JSON of a verification result.
pub fn verification_json(v: Option<&pb::Verification>) -> Value {
    match v {
        Some(v) => json!({
            "valid": v.valid,
            "key_id": v.key_id,
            "signer": v.signer,
            "detail": v.detail,
        }),
        None => json!({"valid": false, "key_id": "", "signer": "", "detail": "not reported"}),
    }
}

/// JSON of equivocation evidence.
pub fn equivocation_json(e: &pb::EquivocationEvidence) -> Value {
    json!({
        "revision": e.revision,
        "item_ids": e.item_ids,
        "chosen": e.chosen,
        "detected": time_json(e.detected_ms),
        "detected_ms": e.detected_ms,
    })
}

/// JSON of `show`.
pub fn get_json(g: &pb::GetResponse) -> Value {
    json!({
        "item_id": g.item_id,
        "latest_item_id": g.latest_item_id,
        "superseded": g.superseded,
        "received": time_json(g.received_ms),
        "received_ms": g.received_ms,
        "source": g.source,
        "advisory": g.advisory.as_ref().map(advisory_json),
        "verification": verification_json(g.verification.as_ref()),
        "history": g.history.iter().map(summary_json).collect::<Vec<_>>(),
        "equivocations": g.equivocations.iter().map(equivocation_json).collect::<Vec<_>>(),
        "warnings": warnings_json(&g.warnings),
        "envelope": g.envelope.as_ref().map(|e| json!({
            "key_id": e.key_id,
            "payload_b64": b64(&e.payload),
            "signature_b64": b64(&e.signature),
        })),
    })
}

/// JSON of `list`.
pub fn list_json(l: &pb::ListResponse) -> Value {
    json!({
        "advisories": l.advisories.iter().map(summary_json).collect::<Vec<_>>(),
        "truncated": l.truncated,
    })
}

/// Human name of a search match (`exact`, `inside CIDR`).
pub fn match_text(m: &str) -> &str {
    match m {
        "cidr" => "inside CIDR",
        "cve_list" => "CVE of the advisory",
        "actor_list" => "actor of the advisory",
        other => other,
    }
}

/// JSON of `search`.
pub fn search_json(query: &str, r: &pb::SearchIndicatorResponse) -> Value {
    json!({
        "query": query,
        "normalized": r.normalized,
        "kind": kind_name(r.kind),
        "kinds": r.searched.iter().map(|k| k.kind.as_str()).collect::<Vec<_>>(),
        "searched": r.searched.iter().map(|k| json!({
            "kind": k.kind,
            "normalized": k.normalized,
        })).collect::<Vec<_>>(),
        "hits": r.hits.iter().map(|h| json!({
            "match": h.r#match,
            "indicator": h.indicator.as_ref().map(indicator_json),
            "advisory": h.advisory.as_ref().map(summary_json),
            "warning_lists": h.warning_lists,
        })).collect::<Vec<_>>(),
    })
}

/// JSON of warning-list hits (`publish`, `import`, `show`).
pub fn warnings_json(w: &[pb::WarningHit]) -> Value {
    Value::Array(
        w.iter()
            .map(|h| {
                json!({
                    "indicator_index": h.indicator_index,
                    "value": h.value,
                    "lists": h.lists,
                })
            })
            .collect(),
    )
}

/// Human lines of warning-list hits, or an empty string when there are none: the node's own
/// lists flag likely false positives; nothing was dropped.
pub fn warnings_text(w: &[pb::WarningHit]) -> String {
    if w.is_empty() {
        return String::new();
    }
    let mut out = format!(
        "WARNING: {} indicator(s) on a warning list of this node (likely false positives; kept, \
         left out of blocklists unless --include-warninglisted):\n",
        w.len()
    );
    for h in w {
        out.push_str(&format!(
            "  indicators[{}] {}: {}\n",
            h.indicator_index,
            h.value,
            h.lists.join(", ")
        ));
    }
    out.trim_end().to_string()
}

/// JSON of one `watch` event (one line each).
pub fn event_json(e: &pb::WatchEvent) -> Value {
    json!({
        "kind": event_kind_name(e.kind),
        "advisory": e.advisory.as_ref().map(summary_json),
        "source": e.source,
    })
}

/// JSON of a signing key in `status`.
pub fn key_json(k: &pb::KeyInfo) -> Value {
    json!({
        "key_id": k.key_id,
        "public_key": k.public_key,
        "valid_from": time_json(k.valid_from_ms),
        "valid_until": time_json(k.valid_until_ms),
        "active": k.active,
    })
}

/// The origins caught signing two payloads for one revision ("none" when none).
fn equivocating_text(s: &pb::StatusResponse) -> String {
    if s.equivocating_origins.is_empty() {
        return "none".to_string();
    }
    s.equivocating_origins
        .iter()
        .map(|o| {
            format!(
                "{} EQUIVOCATING ({} revision{} signed twice; `tanoa show` gives the evidence)",
                o.origin,
                o.revisions,
                if o.revisions == 1 { "" } else { "s" }
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// JSON of `status`.
pub fn status_json(s: &pb::StatusResponse) -> Value {
    json!({
        "member_id": s.member_id,
        "display_name": s.display_name,
        "keys": s.keys.iter().map(key_json).collect::<Vec<_>>(),
        "advisories": s.advisories,
        "withdrawn": s.withdrawn,
        "items": s.items,
        "indicators": s.indicators,
        "equivocations": s.equivocations,
        "equivocating_origins": s.equivocating_origins.iter().map(|o| json!({
            "origin": o.origin,
            "revisions": o.revisions,
            "last_detected": time_json(o.last_detected_ms),
        })).collect::<Vec<_>>(),
        "store_bytes": s.store_bytes,
        "uptime_s": s.uptime_s,
        "version": s.version,
        "data_dir": s.data_dir,
        "federation": federation_status_json(s),
        "roster_version": s.roster_version,
        "config_reloads": s.config_reloads,
        "restart_required": s.restart_required,
        "restoring_from": s.restoring_from,
        "restore_unreachable": s.restore_unreachable,
        "roster": {
            "version": s.roster_version,
            "hash": s.roster_hash,
            "signed": !s.roster_hash.is_empty(),
            "fork": s.roster_fork.then_some(s.roster_fork_version),
            "peers_behind": s.roster_peers_behind,
            "peers_ahead": s.roster_peers_ahead,
        },
    })
}

/// JSON of `audit`.
pub fn audit_json(a: &pb::AuditResponse) -> Value {
    json!({
        "entries": a.entries.iter().map(|e| json!({
            "at": time_json(e.at_ms),
            "at_ms": e.at_ms,
            "action": e.action,
            "item_id": e.item_id,
            "subject": e.subject,
            "actor": e.actor,
            "detail": e.detail,
        })).collect::<Vec<_>>(),
    })
}

// ---------------------------------------------------------------------------------------------
// Human output.

/// Table of advisory summaries (list, history).
pub fn summaries_table(rows: &[pb::AdvisorySummary]) -> String {
    let mut t = new_table();
    t.set_header(vec![
        "ADVISORY",
        "ORIGIN",
        "REV",
        "TLP",
        "SEVERITY",
        "MODIFIED (UTC)",
        "IOCS",
        "TITLE",
        "ITEM",
    ]);
    for s in rows {
        let title = if s.withdrawn {
            format!("[WITHDRAWN] {}", s.title)
        } else {
            s.title.clone()
        };
        t.add_row(vec![
            s.advisory_id.clone(),
            s.origin.clone(),
            s.revision.to_string(),
            tlp_name(s.tlp).to_string(),
            severity_name(s.severity).to_string(),
            time_text(s.modified_ms),
            s.indicator_count.to_string(),
            title,
            short_id(&s.item_id).to_string(),
        ]);
    }
    t.to_string()
}

/// Human output of `list`.
pub fn list_text(l: &pb::ListResponse) -> String {
    if l.advisories.is_empty() {
        return "No advisories match.".into();
    }
    let mut out = summaries_table(&l.advisories);
    out.push('\n');
    out.push_str(&format!("{} advisories", l.advisories.len()));
    if l.truncated {
        out.push_str(" (more match: raise --limit or narrow the filters)");
    }
    out
}

fn join_or_dash(v: &[String]) -> String {
    if v.is_empty() {
        "-".into()
    } else {
        v.join(", ")
    }
}

/// Human output of `show`: a withdrawn advisory leads with WITHDRAWN and its reason.
pub fn show_text(g: &pb::GetResponse) -> String {
    let mut out = String::new();
    let Some(a) = g.advisory.as_ref() else {
        return format!("item {} (no decoded advisory returned)", g.item_id);
    };
    if a.withdrawn {
        out.push_str(&format!(
            "WITHDRAWN by {} at {}\nReason: {}\n\n",
            a.origin,
            time_text(a.modified_ms),
            if a.withdrawn_reason.is_empty() {
                "(none given)"
            } else {
                &a.withdrawn_reason
            }
        ));
    }
    if g.superseded {
        out.push_str(&format!(
            "SUPERSEDED: a newer revision is item {} (tanoa show {})\n\n",
            g.latest_item_id, g.latest_item_id
        ));
    }
    let v = g.verification.as_ref();
    let verified = match v {
        Some(v) if v.valid && v.detail.contains(&v.key_id) => format!("VALID: {}", v.detail),
        Some(v) if v.valid => format!("VALID: {} (key {} of {})", v.detail, v.key_id, v.signer),
        Some(v) => format!(
            "INVALID: {} (key {:?}, signer {:?})",
            v.detail, v.key_id, v.signer
        ),
        None => "NOT REPORTED".into(),
    };
    let mut t = new_table();
    let rows: Vec<(&str, String)> = vec![
        ("Title", a.title.clone()),
        ("Advisory", format!("{}/{}", a.origin, a.id)),
        ("Revision", a.revision.to_string()),
        ("TLP", tlp_name(a.tlp).to_string()),
        ("Audience", join_or_dash(&a.audience)),
        ("Severity", severity_name(a.severity).to_string()),
        ("Created", time_text(a.created_ms)),
        ("Modified", time_text(a.modified_ms)),
        ("Valid until", time_text(a.valid_until_ms)),
        ("Actors", join_or_dash(&a.actors)),
        ("CVEs", join_or_dash(&a.cves)),
        ("References", join_or_dash(&a.references)),
        ("Signature", verified),
        ("Item id", g.item_id.clone()),
        (
            "Received",
            format!("{} from {}", time_text(g.received_ms), g.source),
        ),
    ];
    for (k, v) in rows {
        t.add_row(vec![k.to_string(), v]);
    }
    out.push_str(&t.to_string());
    out.push('\n');
    if !a.summary.is_empty() {
        out.push_str("\nSummary:\n");
        for line in a.summary.lines() {
            if !line.trim().is_empty() {
                out.push_str("  ");
                out.push_str(line);
            }
            out.push('\n');
        }
    }
    out.push_str(&format!(
        "\nIndicators ({}){}:\n",
        a.indicators.len(),
        if a.withdrawn {
            ", no longer active: the advisory is withdrawn"
        } else {
            ""
        }
    ));
    if !a.indicators.is_empty() {
        let mut t = new_table();
        t.set_header(vec!["KIND", "VALUE", "CONFIDENCE", "VALID UNTIL", "NOTE"]);
        for i in &a.indicators {
            t.add_row(vec![
                kind_name(i.kind),
                i.value.clone(),
                if i.confidence == 0 {
                    "-".into()
                } else {
                    i.confidence.to_string()
                },
                time_text(i.valid_until_ms),
                i.note.clone(),
            ]);
        }
        out.push_str(&t.to_string());
        out.push('\n');
    }
    if !g.warnings.is_empty() {
        out.push('\n');
        out.push_str(&warnings_text(&g.warnings));
        out.push('\n');
    }
    if !g.history.is_empty() {
        out.push_str(&format!("\nHistory ({} revisions):\n", g.history.len()));
        out.push_str(&summaries_table(&g.history));
        out.push('\n');
    }
    if !g.equivocations.is_empty() {
        out.push_str(
            "\nEQUIVOCATION: the origin signed different payloads for the same revision\n",
        );
        let mut t = new_table();
        t.set_header(vec![
            "REVISION",
            "ITEM IDS SEEN",
            "CHOSEN (lowest id)",
            "DETECTED",
        ]);
        for e in &g.equivocations {
            t.add_row(vec![
                e.revision.to_string(),
                e.item_ids.join("\n"),
                e.chosen.clone(),
                time_text(e.detected_ms),
            ]);
        }
        out.push_str(&t.to_string());
        out.push('\n');
    }
    out.trim_end().to_string()
}

/// Human output of `search`.
pub fn search_text(query: &str, r: &pb::SearchIndicatorResponse) -> String {
    let from = if r.normalized == query {
        String::new()
    } else {
        format!(" (normalized from {query:?})")
    };
    let mut out = if r.searched.is_empty() {
        format!("Searched {} {}{from}\n", kind_name(r.kind), r.normalized)
    } else {
        // Every kind searched, with the value as normalized for it when that differs.
        let kinds: Vec<String> = r
            .searched
            .iter()
            .map(|k| {
                if k.normalized == r.normalized {
                    k.kind.clone()
                } else {
                    format!("{} ({})", k.kind, k.normalized)
                }
            })
            .collect();
        format!("Searched {}{from} as {}\n", r.normalized, kinds.join(", "))
    };
    if r.hits.is_empty() {
        out.push_str("No active advisory holds it.");
        return out;
    }
    let mut t = new_table();
    let warned = r.hits.iter().any(|h| !h.warning_lists.is_empty());
    let mut header = vec![
        "MATCH",
        "INDICATOR",
        "ADVISORY",
        "ORIGIN",
        "TLP",
        "CONFIDENCE",
        "TITLE",
    ];
    if warned {
        header.push("WARNING LISTS");
    }
    t.set_header(header);
    for h in &r.hits {
        let (ind, conf) = h
            .indicator
            .as_ref()
            .map_or(("-".to_string(), "-".to_string()), |i| {
                (
                    format!("{} {}", kind_name(i.kind), i.value),
                    if i.confidence == 0 {
                        "-".into()
                    } else {
                        i.confidence.to_string()
                    },
                )
            });
        let (adv, origin, tlp, title) = h.advisory.as_ref().map_or_else(
            || ("-".into(), "-".into(), "-".into(), "-".into()),
            |s| {
                (
                    s.advisory_id.clone(),
                    s.origin.clone(),
                    tlp_name(s.tlp).to_string(),
                    s.title.clone(),
                )
            },
        );
        let mut row = vec![
            match_text(&h.r#match).to_string(),
            ind,
            adv,
            origin,
            tlp,
            conf,
            title,
        ];
        if warned {
            row.push(join_or_dash(&h.warning_lists));
        }
        t.add_row(row);
    }
    out.push_str(&t.to_string());
    out.push_str(&format!("\n{} hit(s)", r.hits.len()));
    if warned {
        out.push_str(
            "; WARNING LISTS: this node's warning lists flag the indicator as a likely false \
             positive",
        );
    }
    out
}

/// One human line of `watch`.
pub fn event_line(e: &pb::WatchEvent) -> String {
    let kind = event_kind_name(e.kind).to_ascii_uppercase();
    match &e.advisory {
        Some(s) => {
            let mut line = format!(
                "{}  {:<12} {}/{} r{} {} {} [{}]",
                time_text(s.modified_ms),
                kind,
                s.origin,
                s.advisory_id,
                s.revision,
                tlp_name(s.tlp),
                s.title,
                short_id(&s.item_id),
            );
            if !e.source.is_empty() {
                line.push_str(&format!(" via {}", e.source));
            }
            line
        }
        None => format!("{kind} (no advisory)"),
    }
}

/// Byte count for people (`1.5 MiB`).
pub fn bytes_text(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Seconds for people (`2d 3h 4m 5s`).
pub fn duration_text(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    let mut parts = Vec::new();
    if d > 0 {
        parts.push(format!("{d}d"));
    }
    if h > 0 {
        parts.push(format!("{h}h"));
    }
    if m > 0 {
        parts.push(format!("{m}m"));
    }
    if s > 0 || parts.is_empty() {
        parts.push(format!("{s}s"));
    }
    parts.join(" ")
}

/// The roster row of `status`: version and hash, or the fork alarm.
fn roster_line(s: &pb::StatusResponse) -> String {
    let mut t = if s.roster_hash.is_empty() {
        "version 0 (local [[members]] list, not signed)".to_string()
    } else {
        format!(
            "version {} ({})",
            s.roster_version,
            s.roster_hash.get(..16).unwrap_or(&s.roster_hash)
        )
    };
    if !s.roster_peers_behind.is_empty() {
        t.push_str(&format!(
            "  BEHIND: {} (reported an older version; `tanoa peers`)",
            s.roster_peers_behind.join(", ")
        ));
    }
    if !s.roster_peers_ahead.is_empty() {
        t.push_str(&format!(
            "  AHEAD of this member: {} (a newer version is on its way)",
            s.roster_peers_ahead.join(", ")
        ));
    }
    if s.roster_fork {
        t.push_str(&format!(
            "  FORK at version {}: roster changes frozen (`tanoa roster show`)",
            s.roster_fork_version
        ));
    }
    t
}

/// Human output of `status`.
pub fn status_text(s: &pb::StatusResponse) -> String {
    let mut t = new_table();
    let mut rows = vec![
        ("Member", format!("{} ({})", s.member_id, s.display_name)),
        ("Federation", federation_health_line(s)),
        ("Roster", roster_line(s)),
    ];
    if !s.restoring_from.is_empty() {
        rows.push((
            "Restoring",
            format!(
                "own advisories from {} (revising or withdrawing by id waits until done)",
                s.restoring_from.join(", ")
            ),
        ));
    }
    if !s.restore_unreachable.is_empty() {
        rows.push((
            "Not restored",
            format!(
                "own advisories from {} (down: not waited for; restored when back)",
                s.restore_unreachable.join(", ")
            ),
        ));
    }
    if s.federation {
        rows.push((
            "Peer port",
            format!("{} (`tanoa peers` shows each peer)", s.peer_listen),
        ));
    }
    rows.extend([
        ("Version", s.version.clone()),
        ("Uptime", duration_text(s.uptime_s)),
        (
            "Advisories",
            format!("{} ({} withdrawn)", s.advisories, s.withdrawn),
        ),
        ("Items (all revisions)", s.items.to_string()),
        ("Active indicators", s.indicators.to_string()),
        ("Equivocations", s.equivocations.to_string()),
        ("Equivocating origins", equivocating_text(s)),
        ("Store size", bytes_text(s.store_bytes)),
        ("Data directory", s.data_dir.clone()),
    ]);
    if s.federation {
        rows.push(("Roster version", s.roster_version.to_string()));
    }
    if !s.restart_required.is_empty() {
        rows.push((
            "NEEDS RESTART",
            format!(
                "changed in the config file, not applied until tanoad restarts: {}",
                s.restart_required.join(", ")
            ),
        ));
    }
    for (k, v) in rows {
        t.add_row(vec![k.to_string(), v]);
    }
    let mut out = t.to_string();
    if !s.keys.is_empty() {
        let mut k = new_table();
        k.set_header(vec![
            "KEY ID",
            "PUBLIC KEY",
            "VALID FROM",
            "VALID UNTIL",
            "ACTIVE",
        ]);
        for key in &s.keys {
            k.add_row(vec![
                key.key_id.clone(),
                key.public_key.clone(),
                time_text(key.valid_from_ms),
                time_text(key.valid_until_ms),
                if key.active { "yes" } else { "no" }.to_string(),
            ]);
        }
        out.push_str("\n\nSigning keys:\n");
        out.push_str(&k.to_string());
    }
    out
}

/// Human output of `audit`.
pub fn audit_text(a: &pb::AuditResponse) -> String {
    if a.entries.is_empty() {
        return "The audit log is empty.".into();
    }
    let mut t = new_table();
    t.set_header(vec![
        "AT (UTC)", "ACTION", "ACTOR", "SUBJECT", "ITEM", "DETAIL",
    ]);
    for e in &a.entries {
        t.add_row(vec![
            time_text(e.at_ms),
            e.action.clone(),
            e.actor.clone(),
            e.subject.clone(),
            short_id(&e.item_id).to_string(),
            e.detail.clone(),
        ]);
    }
    t.to_string()
}

/// A two-column key/value table (init, publish, pki summaries).
pub fn kv_table(rows: &[(&str, String)]) -> String {
    let mut t = new_table();
    for (k, v) in rows {
        t.add_row(vec![(*k).to_string(), v.clone()]);
    }
    t.to_string()
}

/// A table with a header row.
pub fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut t = new_table();
    t.set_header(header.to_vec());
    for r in rows {
        t.add_row(r);
    }
    t.to_string()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn summary(withdrawn: bool) -> pb::AdvisorySummary {
        pb::AdvisorySummary {
            item_id: "ab".repeat(32),
            advisory_id: "ws-2026-0001".into(),
            origin: "ws-cert".into(),
            revision: 2,
            tlp: pb::Tlp::AmberStrict as i32,
            title: "APT40 targets Pacific government networks".into(),
            severity: pb::Severity::High as i32,
            modified_ms: 1_767_225_600_000,
            withdrawn,
            indicator_count: 3,
        }
    }

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(rfc3339(1_767_225_600_000), "2026-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_767_225_600_250), "2026-01-01T00:00:00.25Z");
        assert_eq!(time_json(0), Value::Null);
        assert_eq!(time_text(0), "-");
        assert_eq!(time_text(1_767_225_600_250), "2026-01-01T00:00:00Z");
    }

    #[test]
    fn enum_names_match_the_advisory_file_format() {
        assert_eq!(tlp_name(pb::Tlp::AmberStrict as i32), "AMBER+STRICT");
        assert_eq!(tlp_name(99), "UNSPECIFIED");
        assert_eq!(severity_name(pb::Severity::Critical as i32), "critical");
        assert_eq!(kind_name(pb::IndicatorKind::Sha256 as i32), "sha256");
        assert_eq!(kind_name(0), "unspecified");
        assert_eq!(
            event_kind_name(pb::WatchEventKind::Withdrawn as i32),
            "withdrawn"
        );
    }

    #[test]
    fn summary_json_has_the_documented_shape() {
        let v = summary_json(&summary(false));
        assert_eq!(v["advisory_id"], "ws-2026-0001");
        assert_eq!(v["tlp"], "AMBER+STRICT");
        assert_eq!(v["severity"], "high");
        assert_eq!(v["modified"], "2026-01-01T00:00:00Z");
        assert_eq!(v["revision"], 2);
        assert_eq!(v["withdrawn"], false);
        assert_eq!(v["indicator_count"], 3);
        assert_eq!(v["item_id"].as_str().unwrap().len(), 64);
    }

    #[test]
    fn list_table_marks_withdrawn_and_truncation() {
        let l = pb::ListResponse {
            advisories: vec![summary(false), summary(true)],
            truncated: true,
            ..Default::default()
        };
        let text = list_text(&l);
        assert!(text.contains("ws-2026-0001"));
        assert!(text.contains("[WITHDRAWN] APT40"));
        assert!(text.contains("AMBER+STRICT"));
        assert!(text.contains("2026-01-01T00:00:00Z"));
        assert!(text.contains("abababababab"));
        assert!(text.contains("raise --limit"));
        assert_eq!(
            list_text(&pb::ListResponse::default()),
            "No advisories match."
        );
    }

    fn get(withdrawn: bool) -> pb::GetResponse {
        pb::GetResponse {
            advisory: Some(pb::Advisory {
                id: "ws-2026-0001".into(),
                origin: "ws-cert".into(),
                revision: 2,
                tlp: pb::Tlp::Green as i32,
                title: "APT40 targets Pacific government networks".into(),
                summary: "Line one.\nLine two.".into(),
                indicators: vec![pb::Indicator {
                    kind: pb::IndicatorKind::Ipv4 as i32,
                    value: "192.0.2.7".into(),
                    confidence: 80,
                    valid_until_ms: 0,
                    note: "C2".into(),
                }],
                withdrawn,
                withdrawn_reason: if withdrawn {
                    "false positive: 192.0.2.7 is a sinkhole".into()
                } else {
                    String::new()
                },
                ..Default::default()
            }),
            item_id: "cd".repeat(32),
            latest_item_id: "cd".repeat(32),
            verification: Some(pb::Verification {
                valid: true,
                key_id: "ed25519:0011223344556677".into(),
                signer: "ws-cert".into(),
                detail: "signature verified".into(),
            }),
            history: vec![summary(false)],
            equivocations: vec![pb::EquivocationEvidence {
                revision: 1,
                item_ids: vec!["01".repeat(32), "02".repeat(32)],
                chosen: "01".repeat(32),
                detected_ms: 1_767_225_600_000,
            }],
            source: "local".into(),
            ..Default::default()
        }
    }

    #[test]
    fn show_puts_withdrawal_first_and_lists_everything() {
        let text = show_text(&get(true));
        assert!(text.starts_with("WITHDRAWN by ws-cert"), "{text}");
        assert!(text.contains("Reason: false positive: 192.0.2.7 is a sinkhole"));
        assert!(text.contains("no longer active"));
        assert!(text.contains("VALID: signature verified"));
        assert!(text.contains("192.0.2.7"));
        assert!(text.contains("History (1 revisions)"));
        assert!(text.contains("EQUIVOCATION"));
        assert!(text.contains("  Line two."));
        let text = show_text(&get(false));
        assert!(!text.contains("WITHDRAWN by"));
    }

    #[test]
    fn get_json_carries_advisory_verification_history_and_evidence() {
        let mut g = get(true);
        g.envelope = Some(pb::Envelope {
            payload: vec![1, 2, 3],
            key_id: "ed25519:0011223344556677".into(),
            signature: vec![9; 64],
        });
        let v = get_json(&g);
        assert_eq!(v["advisory"]["withdrawn"], true);
        assert_eq!(
            v["advisory"]["withdrawn_reason"],
            "false positive: 192.0.2.7 is a sinkhole"
        );
        assert_eq!(v["advisory"]["indicators"][0]["kind"], "ipv4");
        assert_eq!(v["advisory"]["valid_until"], Value::Null);
        assert_eq!(v["verification"]["valid"], true);
        assert_eq!(v["history"].as_array().unwrap().len(), 1);
        assert_eq!(v["equivocations"][0]["chosen"], "01".repeat(32));
        assert_eq!(v["envelope"]["payload_b64"], "AQID");
    }

    #[test]
    fn search_shows_how_each_hit_matched() {
        let r = pb::SearchIndicatorResponse {
            normalized: "198.51.100.23".into(),
            kind: pb::IndicatorKind::Ipv4 as i32,
            hits: vec![pb::IndicatorHit {
                advisory: Some(summary(false)),
                indicator: Some(pb::Indicator {
                    kind: pb::IndicatorKind::Cidr as i32,
                    value: "198.51.100.0/24".into(),
                    ..Default::default()
                }),
                r#match: "cidr".into(),
                warning_lists: vec![],
            }],
            searched: vec![],
        };
        let text = search_text(" 198.51.100.23", &r);
        assert!(text.contains("Searched ipv4 198.51.100.23 (normalized from"));
        assert!(text.contains("inside CIDR"));
        assert!(text.contains("cidr 198.51.100.0/24"));
        let v = search_json("198.51.100.23", &r);
        assert_eq!(v["hits"][0]["match"], "cidr");
        assert_eq!(v["hits"][0]["indicator"]["value"], "198.51.100.0/24");
        assert_eq!(v["kind"], "ipv4");
        let empty = pb::SearchIndicatorResponse::default();
        assert!(search_text("x", &empty).contains("No active advisory"));
    }

    #[test]
    fn search_says_every_kind_it_searched() {
        let k = |kind: &str, n: &str| pb::SearchedKind {
            kind: kind.into(),
            normalized: n.into(),
        };
        let r = pb::SearchIndicatorResponse {
            normalized: "update.plist".into(),
            kind: pb::IndicatorKind::Domain as i32,
            hits: vec![pb::IndicatorHit {
                advisory: Some(summary(false)),
                indicator: None,
                r#match: "actor_list".into(),
                warning_lists: vec![],
            }],
            searched: vec![
                k("domain", "update.plist"),
                k("filename", "update.plist"),
                k("actor", "Update.plist"),
            ],
        };
        let text = search_text("update.plist", &r);
        assert!(
            text.starts_with("Searched update.plist as domain, filename, actor (Update.plist)\n"),
            "{text}"
        );
        assert!(text.contains("actor of the advisory"), "{text}");
        let v = search_json("update.plist", &r);
        assert_eq!(v["kinds"], json!(["domain", "filename", "actor"]));
        assert_eq!(v["searched"][2]["normalized"], "Update.plist");
    }

    #[test]
    fn watch_lines_and_json() {
        let e = pb::WatchEvent {
            kind: pb::WatchEventKind::New as i32,
            advisory: Some(summary(false)),
            source: "to-cert".into(),
        };
        let line = event_line(&e);
        assert!(line.starts_with("2026-01-01T00:00:00Z  NEW"), "{line}");
        assert!(line.contains("ws-cert/ws-2026-0001 r2"));
        assert!(line.ends_with(" via to-cert"), "{line}");
        let v = event_json(&e);
        assert_eq!(v["kind"], "new");
        assert_eq!(v["source"], "to-cert");
        assert!(!v.to_string().contains('\n'));
    }

    #[test]
    fn status_flags_peers_behind_on_the_roster() {
        let mut s = pb::StatusResponse {
            member_id: "ws-cert".into(),
            federation: true,
            roster_version: 4,
            roster_hash: "cd".repeat(32),
            roster_peers_behind: vec!["to-cert".into()],
            ..Default::default()
        };
        let text = status_text(&s);
        assert!(
            text.contains("version 4 (cdcdcdcdcdcdcdcd)  BEHIND: to-cert"),
            "{text}"
        );
        let v = status_json(&s);
        assert_eq!(v["roster"]["peers_behind"], json!(["to-cert"]));
        assert_eq!(v["federation"]["roster_peers_behind"], json!(["to-cert"]));
        s.roster_peers_behind.clear();
        s.roster_peers_ahead = vec!["fj-cert".into()];
        let text = status_text(&s);
        assert!(!text.contains("BEHIND"), "{text}");
        assert!(text.contains("AHEAD of this member: fj-cert"), "{text}");
    }

    #[test]
    fn status_shows_federation_health_at_a_glance() {
        let mut s = pb::StatusResponse {
            member_id: "ws-cert".into(),
            display_name: "Samoa CERT".into(),
            federation: true,
            peer_listen: "127.0.0.1:7401".into(),
            peers_configured: 4,
            peers_up: 3,
            peers_down: 1,
            last_sync_ms: 1_767_225_600_000,
            last_sync_age_ms: 2_000,
            rejections_total: 2,
            peer_refusals_total: 1,
            ..Default::default()
        };
        let text = status_text(&s);
        let member = text.find("ws-cert (Samoa CERT)").unwrap();
        let fed = text.find("ATTENTION: 3/4 peers up, 1 DOWN").unwrap();
        let version = text.find("Version").unwrap();
        assert!(
            member < fed && fed < version,
            "federation right under the member:\n{text}"
        );
        assert!(text.contains("last sync 2.0s ago, 2 rejected from peers, 1 TLS refusals"));
        assert!(text.contains("127.0.0.1:7401"));
        let v = status_json(&s);
        assert_eq!(v["federation"]["enabled"], true);
        assert_eq!(v["federation"]["peers_up"], 3);
        assert_eq!(v["federation"]["peer_refusals_total"], 1);
        assert_eq!(v["federation"]["last_sync"], "2026-01-01T00:00:00Z");
        assert_eq!(v["member_id"], "ws-cert");
        s.federation = false;
        let text = status_text(&s);
        assert!(text.contains("off (single node"), "{text}");
        assert!(!text.contains("Peer port"));
    }

    #[test]
    fn sizes_and_durations_for_people() {
        assert_eq!(bytes_text(512), "512 B");
        assert_eq!(bytes_text(1536), "1.5 KiB");
        assert_eq!(duration_text(0), "0s");
        assert_eq!(duration_text(90_061), "1d 1h 1m 1s");
        assert_eq!(duration_text(3600), "1h");
    }
}
