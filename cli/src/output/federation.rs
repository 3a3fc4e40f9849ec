//! Output of the federation commands: `peers`, `explain`, `sync now`, and the federation
//! health block of `status`.
//!
//! Owns: the JSON shapes and human text of per-peer state (link, last successful sync, traffic,
//! rejections by reason, backlog), of an explanation (verdict, may hold, may send, scope,
//! direct delivery, link), and the one-line federation health summary.
//! Must never: talk to the daemon, decide policy (the daemon's answer is shown as given), or
//! print errors.

use serde_json::{Map, Value, json};
use tanoa_proto::v1 as pb;

use super::{bytes_text, duration_text, new_table, time_json, time_text, tlp_name};

/// An age in milliseconds for people: `0.4s`, `12.5s`, then `3m 4s`, `2h 5m 1s`.
pub fn age_text(ms: u64) -> String {
    if ms < 60_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else {
        duration_text(ms / 1000)
    }
}

/// `{reason: count}` of a list of reason counts (JSON object, sorted by reason).
pub fn reasons_json(v: &[pb::ReasonCount]) -> Value {
    let mut sorted: Vec<&pb::ReasonCount> = v.iter().collect();
    sorted.sort_by(|a, b| a.reason.cmp(&b.reason));
    let mut m = Map::new();
    for r in sorted {
        m.insert(r.reason.clone(), Value::from(r.count));
    }
    Value::Object(m)
}

/// `bad_signature 2, receiver_may_not_hold 1` (most frequent first), or `-`.
pub fn reasons_text(v: &[pb::ReasonCount]) -> String {
    let mut sorted: Vec<&pb::ReasonCount> = v.iter().filter(|r| r.count > 0).collect();
    if sorted.is_empty() {
        return "-".into();
    }
    sorted.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.reason.cmp(&b.reason)));
    sorted
        .iter()
        .map(|r| format!("{} {}", r.reason, r.count))
        .collect::<Vec<_>>()
        .join(", ")
}

/// True when the link to the peer is up (its last exchange succeeded).
pub fn connected(p: &pb::PeerInfo) -> bool {
    p.link == "up"
}

/// Age of the last successful sync, in ms, at `now_ms` (`None` = never synced).
pub fn last_sync_age_ms(p: &pb::PeerInfo, now_ms: i64) -> Option<u64> {
    (p.last_success_ms > 0).then(|| {
        if p.lag_ms > 0 {
            p.lag_ms
        } else {
            u64::try_from(now_ms.saturating_sub(p.last_success_ms)).unwrap_or(0)
        }
    })
}

/// JSON of one peer in `peers`.
pub fn peer_json(p: &pb::PeerInfo, now_ms: i64) -> Value {
    json!({
        "member_id": p.member_id,
        "name": p.name,
        "endpoints": p.endpoints,
        "link": p.link,
        "equivocating": p.equivocating,
        "connected": connected(p),
        "retry_at": time_json(p.retry_at_ms),
        "retry_at_ms": p.retry_at_ms,
        "consecutive_failures": p.consecutive_failures,
        "last_attempt": time_json(p.last_attempt_ms),
        "last_attempt_ms": p.last_attempt_ms,
        "last_sync": time_json(p.last_success_ms),
        "last_sync_ms": p.last_success_ms,
        "last_sync_age_ms": last_sync_age_ms(p, now_ms),
        "lag_ms": (p.last_success_ms > 0).then_some(p.lag_ms),
        "syncing": p.syncing,
        "queued_push": p.queued_push,
        "queued_fetch": p.queued_fetch,
        "in_flight": p.in_flight,
        "items_sent": p.items_sent,
        "items_received": p.items_received,
        "bytes_sent": p.bytes_sent,
        "bytes_received": p.bytes_received,
        "duplicates_received": p.duplicates_received,
        "pushes_sent": p.pushes_sent,
        "fetches_sent": p.fetches_sent,
        "sessions_ok": p.sessions_ok,
        "sessions_failed": p.sessions_failed,
        "sessions_answered": p.sessions_answered,
        "timeouts": p.timeouts,
        "rejections": reasons_json(&p.rejections),
        "rejections_total": p.rejections_total,
        "refused_by_peer": reasons_json(&p.refused_by_peer),
        "reconcile_set_size": p.reconcile_set_size,
        "roster": peer_roster_json(p),
        "tls_pins": p.tls_pins,
    })
}

/// The roster version a peer reported (`null` when it never did), for `peers --json`.
fn peer_roster_json(p: &pb::PeerInfo) -> Value {
    json!({
        "version": p.roster_reported.then_some(p.roster_version),
        "hash_prefix": (!p.roster_hash_prefix.is_empty()).then_some(&p.roster_hash_prefix),
        "reported": time_json(p.roster_reported_ms),
        "reported_ms": p.roster_reported_ms,
        "behind": p.roster_behind,
        "header_malformed": p.roster_header_malformed,
    })
}

/// The ROSTER cell of `peers`: the version the peer reported (BEHIND when older than ours) and
/// its pinned TLS identities from the roster in force (shortened; `--json` has them whole).
fn roster_cell(p: &pb::PeerInfo) -> String {
    let mut s = if p.roster_reported {
        let mut v = format!("v{}", p.roster_version);
        if !p.roster_hash_prefix.is_empty() {
            v.push_str(&format!(
                " ({})",
                p.roster_hash_prefix
                    .get(..8)
                    .unwrap_or(&p.roster_hash_prefix)
            ));
        }
        if p.roster_behind {
            v.push_str(" BEHIND");
        }
        v
    } else {
        "not reported".to_string()
    };
    if p.roster_header_malformed > 0 {
        s.push_str(&format!(
            "
{} malformed",
            p.roster_header_malformed
        ));
    }
    if p.tls_pins.is_empty() {
        s.push_str(
            "
pin: - (CA)",
        );
    }
    for pin in &p.tls_pins {
        let short = pin.get(..23).unwrap_or(pin);
        s.push_str(&format!(
            "
pin {short}…"
        ));
    }
    s
}

/// JSON of `peers`.
pub fn peers_json(r: &pb::PeersResponse) -> Value {
    json!({
        "federation": r.federation,
        "now": time_json(r.now_ms),
        "now_ms": r.now_ms,
        "peers": r.peers.iter().map(|p| peer_json(p, r.now_ms)).collect::<Vec<_>>(),
    })
}

fn link_cell(p: &pb::PeerInfo, now_ms: i64) -> String {
    match p.link.as_str() {
        "down" => {
            let mut s = "DOWN".to_string();
            if p.retry_at_ms > 0 {
                let wait = u64::try_from(p.retry_at_ms.saturating_sub(now_ms)).unwrap_or(0);
                s.push_str(&format!(", retry in {}", age_text(wait)));
            }
            if p.consecutive_failures > 0 {
                s.push_str(&format!(" ({} failures)", p.consecutive_failures));
            }
            s
        }
        "up" => "up".into(),
        "" => "unknown".into(),
        other => other.to_string(),
    }
}

fn connected_cell(p: &pb::PeerInfo) -> String {
    let base = match p.link.as_str() {
        "up" => "yes",
        "down" => "no",
        _ => "not yet",
    };
    if p.syncing {
        format!("{base}, syncing")
    } else {
        base.to_string()
    }
}

fn traffic_cell(items: u64, bytes: u64) -> String {
    let noun = if items == 1 { "item" } else { "items" };
    format!("{items} {noun} / {}", bytes_text(bytes))
}

fn backlog_cell(p: &pb::PeerInfo) -> String {
    let mut parts = Vec::new();
    if p.queued_push > 0 {
        parts.push(format!("{} to push", p.queued_push));
    }
    if p.queued_fetch > 0 {
        parts.push(format!("{} to fetch", p.queued_fetch));
    }
    if p.in_flight > 0 {
        parts.push(format!("{} in flight", p.in_flight));
    }
    if parts.is_empty() {
        "none queued".into()
    } else {
        parts.join(", ")
    }
}

/// Human output of `peers`: one row per roster peer, then a summary line.
pub fn peers_text(r: &pb::PeersResponse) -> String {
    if !r.federation {
        return "This node does not federate (no [peer] section in its config): it has no peers."
            .into();
    }
    if r.peers.is_empty() {
        return "This node federates but its roster lists no other member.".into();
    }
    let mut t = new_table();
    t.set_header(vec![
        "PEER",
        "NAME",
        "LINK",
        "CONNECTED",
        "LAST SYNC",
        "SENT",
        "RECEIVED",
        "REJECTED (by reason)",
        "LAG",
        "ROSTER",
    ]);
    for p in &r.peers {
        let mut received = traffic_cell(p.items_received, p.bytes_received);
        if p.duplicates_received > 0 {
            received.push_str(&format!(" ({} dup)", p.duplicates_received));
        }
        let mut rejected = reasons_text(&p.rejections);
        let refused = reasons_text(&p.refused_by_peer);
        if refused != "-" {
            rejected.push_str(&format!("\nrefused by {}: {refused}", p.member_id));
        }
        let member = if p.equivocating {
            format!("{}\nEQUIVOCATING", p.member_id)
        } else {
            p.member_id.clone()
        };
        t.add_row(vec![
            member,
            p.name.clone(),
            link_cell(p, r.now_ms),
            connected_cell(p),
            last_sync_age_ms(p, r.now_ms).map_or_else(
                || "never".to_string(),
                |age| format!("{} ago", age_text(age)),
            ),
            traffic_cell(p.items_sent, p.bytes_sent),
            received,
            rejected,
            backlog_cell(p),
            roster_cell(p),
        ]);
    }
    let up = r.peers.iter().filter(|p| p.link == "up").count();
    let down = r.peers.iter().filter(|p| p.link == "down").count();
    let rejected: u64 = r.peers.iter().map(|p| p.rejections_total).sum();
    let mut out = format!(
        "{t}\n{} peers: {up} up, {down} down, {} not contacted yet; {rejected} rejected from peers",
        r.peers.len(),
        r.peers.len() - up - down
    );
    let behind: Vec<&str> = r
        .peers
        .iter()
        .filter(|p| p.roster_behind)
        .map(|p| p.member_id.as_str())
        .collect();
    if !behind.is_empty() {
        out.push_str(&format!(
            "\nroster: {} reported an older version than ours (behind)",
            behind.join(", ")
        ));
    }
    for p in r.peers.iter().filter(|p| p.equivocating) {
        out.push_str(&format!(
            "\n{} signed two different payloads for one revision (equivocation; `tanoa status` \
             counts them, `tanoa show` gives the evidence)",
            p.member_id
        ));
    }
    out
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// JSON of `explain`.
pub fn explain_json(e: &pb::ExplainResponse) -> Value {
    json!({
        "item_id": e.item_id,
        "advisory_id": e.advisory_id,
        "origin": e.origin,
        "revision": e.revision,
        "tlp": tlp_name(e.tlp),
        "audience": e.audience,
        "peer": e.peer,
        "verdict": e.verdict,
        "would_send": e.would_send,
        "may_hold": {"allowed": e.peer_may_hold, "code": e.hold_code, "reason": e.hold_reason},
        "may_send": {"allowed": e.allowed, "code": e.code, "reason": e.reason},
        "in_reconcile_scope": e.in_reconcile_scope,
        "direct": e.direct,
        "held": e.held,
        "link": e.link,
        "retry_at": time_json(e.retry_at_ms),
        "retry_at_ms": e.retry_at_ms,
    })
}

/// Human output of `explain`: the verdict sentence first, then each rule with its reason.
pub fn explain_text(e: &pb::ExplainResponse) -> String {
    let verdict = if e.verdict.is_empty() {
        if e.would_send {
            format!("sent to {}", e.peer)
        } else {
            format!("not sent to {}", e.peer)
        }
    } else {
        e.verdict.clone()
    };
    let mut out = format!(
        "{}/{} r{} → {}: {}\n",
        e.origin,
        e.advisory_id,
        e.revision,
        e.peer,
        if e.would_send {
            "WOULD SEND"
        } else {
            "WOULD NOT SEND"
        }
    );
    out.push_str(&verdict);
    out.push('\n');
    let tlp = if e.audience.is_empty() {
        tlp_name(e.tlp).to_string()
    } else {
        format!("{} (audience: {})", tlp_name(e.tlp), e.audience.join(", "))
    };
    let link = match e.link.as_str() {
        "down" if e.retry_at_ms > 0 => format!("down (next attempt {})", time_text(e.retry_at_ms)),
        "" => "unknown".into(),
        other => other.to_string(),
    };
    let rows: Vec<(&str, String)> = vec![
        ("TLP", tlp),
        (
            "Peer may hold it",
            format!(
                "{}: {} [{}]",
                yes_no(e.peer_may_hold),
                e.hold_reason,
                e.hold_code
            ),
        ),
        (
            "This member may send it",
            format!("{}: {} [{}]", yes_no(e.allowed), e.reason, e.code),
        ),
        ("In the reconcile set", yes_no(e.in_reconcile_scope).into()),
        (
            "Direct delivery by origin",
            yes_no(e.direct).to_string()
                + if e.direct {
                    " (RED or small audience)"
                } else {
                    " (gossip)"
                },
        ),
        ("Held by this member", yes_no(e.held).into()),
        ("Link to the peer", link),
        ("Item", e.item_id.clone()),
    ];
    let mut t = new_table();
    for (k, v) in rows {
        t.add_row(vec![k.to_string(), v]);
    }
    out.push_str(&t.to_string());
    out
}

/// JSON of `sync now`.
pub fn sync_now_json(r: &pb::SyncNowResponse) -> Value {
    json!({"peer": r.peer})
}

/// Human output of `sync now`.
pub fn sync_now_text(r: &pb::SyncNowResponse, asked: Option<&str>) -> String {
    match asked {
        Some(_) => format!("Reconciliation with {} started.", r.peer),
        None => format!(
            "Reconciliation started with {} (the least recently synced peer).",
            r.peer
        ),
    }
}

/// The `federation` object of `status --json`.
pub fn federation_status_json(s: &pb::StatusResponse) -> Value {
    json!({
        "enabled": s.federation,
        "peer_listen": s.peer_listen,
        "peers_configured": s.peers_configured,
        "peers_up": s.peers_up,
        "peers_down": s.peers_down,
        "last_sync": time_json(s.last_sync_ms),
        "last_sync_ms": s.last_sync_ms,
        "last_sync_age_ms": (s.last_sync_ms > 0).then_some(s.last_sync_age_ms),
        "rejections_total": s.rejections_total,
        "peer_refusals_total": s.peer_refusals_total,
        "roster_peers_behind": s.roster_peers_behind,
        "roster_peers_ahead": s.roster_peers_ahead,
        "healthy": federation_healthy(s),
    })
}

/// All peers up, nothing rejected, no TLS refusal (a single node is "healthy" too).
pub fn federation_healthy(s: &pb::StatusResponse) -> bool {
    !s.federation
        || (s.peers_up == s.peers_configured
            && s.rejections_total == 0
            && s.peer_refusals_total == 0)
}

/// One line of federation health for `status`: `OK: 4/4 peers up, last sync 1.2s ago, …` or
/// `ATTENTION: …` naming what is wrong.
pub fn federation_health_line(s: &pb::StatusResponse) -> String {
    if !s.federation {
        return "off (single node: no [peer] section)".into();
    }
    let not_yet = s
        .peers_configured
        .saturating_sub(s.peers_up)
        .saturating_sub(s.peers_down);
    let mut line = format!("{}/{} peers up", s.peers_up, s.peers_configured);
    if s.peers_down > 0 {
        line.push_str(&format!(", {} DOWN", s.peers_down));
    }
    if not_yet > 0 {
        line.push_str(&format!(", {not_yet} not contacted yet"));
    }
    line.push_str(&if s.last_sync_ms > 0 {
        format!(", last sync {} ago", age_text(s.last_sync_age_ms))
    } else {
        ", never synced".to_string()
    });
    line.push_str(&format!(
        ", {} rejected from peers, {} TLS refusals",
        s.rejections_total, s.peer_refusals_total
    ));
    let status = if federation_healthy(s) {
        "OK"
    } else {
        "ATTENTION"
    };
    format!("{status}: {line}")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    const NOW: i64 = 1_767_225_600_000;

    fn peer(id: &str, link: &str) -> pb::PeerInfo {
        pb::PeerInfo {
            member_id: id.into(),
            name: format!("{id} name"),
            endpoints: vec!["127.0.0.1:7401".into()],
            link: link.into(),
            ..Default::default()
        }
    }

    fn response() -> pb::PeersResponse {
        let mut up = peer("to-cert", "up");
        up.last_success_ms = NOW - 3_200;
        up.lag_ms = 3_200;
        up.items_sent = 2;
        up.bytes_sent = 3_000;
        up.items_received = 1;
        up.bytes_received = 512;
        up.duplicates_received = 4;
        up.rejections = vec![
            pb::ReasonCount {
                reason: "receiver_may_not_hold".into(),
                count: 1,
            },
            pb::ReasonCount {
                reason: "bad_signature".into(),
                count: 2,
            },
        ];
        up.rejections_total = 3;
        up.refused_by_peer = vec![pb::ReasonCount {
            reason: "stale_revision".into(),
            count: 5,
        }];
        up.queued_push = 7;
        up.roster_reported = true;
        up.roster_version = 3;
        up.roster_hash_prefix = "0123456789abcdef".into();
        up.roster_reported_ms = NOW - 100;
        up.roster_behind = true;
        up.tls_pins = vec![format!("sha256:{}", "ab".repeat(32))];
        let mut down = peer("fj-cert", "down");
        down.retry_at_ms = NOW + 4_000;
        down.consecutive_failures = 3;
        pb::PeersResponse {
            federation: true,
            peers: vec![up, down, peer("nz-ncsc", "unknown")],
            now_ms: NOW,
        }
    }

    #[test]
    fn ages_are_short_and_readable() {
        assert_eq!(age_text(0), "0.0s");
        assert_eq!(age_text(3_249), "3.2s");
        assert_eq!(age_text(125_000), "2m 5s");
    }

    #[test]
    fn peers_table_shows_link_sync_traffic_rejections_and_backlog() {
        let text = peers_text(&response());
        for want in [
            "to-cert",
            "to-cert name",
            "3.2s ago",
            "2 items / 2.9 KiB",
            "1 item / 512 B (4 dup)",
            "bad_signature 2, receiver_may_not_hold 1",
            "refused by to-cert: stale_revision 5",
            "7 to push",
            "DOWN, retry in 4.0s (3 failures)",
            "never",
            "not yet",
            "3 peers: 1 up, 1 down, 1 not contacted yet; 3 rejected from peers",
            "v3 (01234567) BEHIND",
            "pin sha256:abababababababab…",
            "not reported",
            "pin: - (CA)",
            "roster: to-cert reported an older version than ours (behind)",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
        let single = pb::PeersResponse::default();
        assert!(peers_text(&single).contains("does not federate"));
    }

    #[test]
    fn peers_json_has_reasons_as_objects_and_ages() {
        let v = peers_json(&response());
        assert_eq!(v["federation"], true);
        let p = &v["peers"][0];
        assert_eq!(p["member_id"], "to-cert");
        assert_eq!(p["connected"], true);
        assert_eq!(p["last_sync_age_ms"], 3_200);
        assert_eq!(p["lag_ms"], 3_200);
        assert_eq!(p["rejections"]["bad_signature"], 2);
        assert_eq!(p["rejections"]["receiver_may_not_hold"], 1);
        assert_eq!(p["refused_by_peer"]["stale_revision"], 5);
        assert_eq!(p["last_sync"], "2025-12-31T23:59:56.8Z");
        let never = &v["peers"][2];
        assert_eq!(never["connected"], false);
        assert_eq!(never["last_sync"], Value::Null);
        assert_eq!(never["last_sync_age_ms"], Value::Null);
        assert_eq!(never["lag_ms"], Value::Null);
        assert_eq!(v["peers"][1]["retry_at_ms"], NOW + 4_000);
        assert_eq!(p["roster"]["version"], 3);
        assert_eq!(p["roster"]["hash_prefix"], "0123456789abcdef");
        assert_eq!(p["roster"]["behind"], true);
        assert_eq!(p["tls_pins"][0], format!("sha256:{}", "ab".repeat(32)));
        assert_eq!(never["roster"]["version"], Value::Null);
        assert_eq!(never["roster"]["behind"], false);
    }

    fn explanation(would_send: bool) -> pb::ExplainResponse {
        pb::ExplainResponse {
            item_id: "ab".repeat(32),
            advisory_id: "apt40-forum-lure".into(),
            origin: "ws-cert".into(),
            revision: 1,
            tlp: pb::Tlp::Amber as i32,
            audience: vec!["au-acsc".into(), "nz-ncsc".into()],
            peer: if would_send { "au-acsc" } else { "to-cert" }.into(),
            peer_may_hold: would_send,
            hold_code: if would_send {
                "in_audience"
            } else {
                "not_in_audience"
            }
            .into(),
            hold_reason: "TLP:AMBER: to-cert is not the origin ws-cert nor in its audience".into(),
            allowed: would_send,
            code: if would_send {
                "within_audience"
            } else {
                "receiver_may_not_hold"
            }
            .into(),
            reason: "receiver may not hold it".into(),
            in_reconcile_scope: would_send,
            direct: true,
            held: true,
            link: "up".into(),
            retry_at_ms: 0,
            would_send,
            verdict: if would_send {
                "sent to au-acsc: within the audience".into()
            } else {
                "never sent to to-cert: not in the audience".into()
            },
        }
    }

    #[test]
    fn explain_leads_with_the_verdict_and_lists_each_rule() {
        let text = explain_text(&explanation(false));
        assert!(
            text.starts_with("ws-cert/apt40-forum-lure r1 → to-cert: WOULD NOT SEND\n"),
            "{text}"
        );
        assert!(text.contains("never sent to to-cert: not in the audience"));
        assert!(text.contains("AMBER (audience: au-acsc, nz-ncsc)"));
        assert!(text.contains("no: TLP:AMBER: to-cert is not the origin"));
        assert!(text.contains("[not_in_audience]"));
        assert!(text.contains("[receiver_may_not_hold]"));
        assert!(text.contains("yes (RED or small audience)"));
        let text = explain_text(&explanation(true));
        assert!(text.contains("WOULD SEND"), "{text}");
        let v = explain_json(&explanation(false));
        assert_eq!(v["would_send"], false);
        assert_eq!(v["tlp"], "AMBER");
        assert_eq!(v["may_hold"]["code"], "not_in_audience");
        assert_eq!(v["may_send"]["allowed"], false);
        assert_eq!(v["verdict"], "never sent to to-cert: not in the audience");
        assert_eq!(v["retry_at"], Value::Null);
    }

    #[test]
    fn sync_now_names_the_chosen_peer() {
        let r = pb::SyncNowResponse {
            peer: "fj-cert".into(),
        };
        assert_eq!(
            sync_now_text(&r, None),
            "Reconciliation started with fj-cert (the least recently synced peer)."
        );
        assert_eq!(
            sync_now_text(&r, Some("fj-cert")),
            "Reconciliation with fj-cert started."
        );
        assert_eq!(sync_now_json(&r)["peer"], "fj-cert");
    }

    #[test]
    fn federation_health_is_one_line_naming_what_is_wrong() {
        let mut s = pb::StatusResponse {
            federation: true,
            peer_listen: "127.0.0.1:7401".into(),
            peers_configured: 4,
            peers_up: 4,
            last_sync_ms: NOW,
            last_sync_age_ms: 1_200,
            ..Default::default()
        };
        assert_eq!(
            federation_health_line(&s),
            "OK: 4/4 peers up, last sync 1.2s ago, 0 rejected from peers, 0 TLS refusals"
        );
        s.peers_up = 2;
        s.peers_down = 1;
        s.rejections_total = 3;
        let line = federation_health_line(&s);
        assert!(line.starts_with("ATTENTION: 2/4 peers up, 1 DOWN, 1 not contacted yet"));
        assert!(line.contains("3 rejected from peers"));
        let v = federation_status_json(&s);
        assert_eq!(v["healthy"], false);
        assert_eq!(v["peers_down"], 1);
        assert_eq!(v["last_sync_age_ms"], 1_200);
        let single = pb::StatusResponse::default();
        assert!(federation_health_line(&single).starts_with("off"));
        assert_eq!(
            federation_status_json(&single)["last_sync_age_ms"],
            Value::Null
        );
        assert_eq!(federation_status_json(&single)["healthy"], true);
    }
}
