//! The measurements of one run and their text table.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// What a run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Scenario name.
    pub scenario: String,
    /// Seed of the run.
    pub seed: u64,
    /// Members at the end (not gone for good).
    pub members: usize,
    /// Items published (wave and backlog).
    pub items: usize,
    /// Push fanout.
    pub fanout: usize,
    /// Anti-entropy interval.
    pub interval_ms: u64,
    /// Hop count (push or fetch relays from the origin) by which 99.9% of (member, wave item)
    /// pairs were reached.
    pub rounds_999: Option<u16>,
    /// Hop count by which every pair was reached.
    pub rounds_100: Option<u16>,
    /// Simulated ms from the start of the wave to 99.9% coverage (all items published).
    pub t999_ms: Option<u64>,
    /// Simulated ms from the start of the wave to 100% coverage (last time it was reached).
    pub t100_ms: Option<u64>,
    /// Coverage at the end: (member, item) pairs held / pairs that may be held.
    pub coverage_end: (u64, u64),
    /// Messages delivered per item per member.
    pub messages_per_item_member: f64,
    /// Bytes delivered per item per member.
    pub bytes_per_item_member: f64,
    /// Relative message redundancy: envelope deliveries / items first received from a peer − 1
    /// (for a wave: deliveries / Σ(holders − 1) − 1).
    pub redundancy: f64,
    /// Messages and bytes delivered, by message kind.
    pub by_kind: BTreeMap<&'static str, (u64, u64)>,
    /// Messages lost (loss and cuts).
    pub lost: u64,
    /// Messages duplicated.
    pub duplicated: u64,
    /// Items lost for good: their only holder restarted with a wiped store.
    pub lost_items: u64,
    /// After a heal: (differences at heal, reconciliation bytes, all bytes) until convergence.
    pub heal: Option<(u64, u64, u64)>,
    /// The access links' figures, when the scenario names link profiles (issue 12).
    pub thin: Option<Thin>,
    /// The roster's figures, when the scenario changes the roster (issue 11).
    pub roster: Option<RosterSummary>,
}

/// What the roster changes of a run did.
#[derive(Debug, Clone, PartialEq)]
pub struct RosterSummary {
    /// The plan's last version.
    pub final_version: u64,
    /// Members of that version at the end.
    pub members: usize,
    /// How many of them have it in force.
    pub at_final: usize,
    /// When the last of them reached it, ms after the last change was proposed.
    pub converged_after_last_change_ms: Option<u64>,
    /// The bound: `converge_intervals` anti-entropy intervals.
    pub bound_ms: u64,
    /// Roster carriers refused by the engines' admission, by reason.
    pub refused: BTreeMap<&'static str, u64>,
    /// Items dropped because the roster in force made them invalid (revocation, removal).
    pub purged: u64,
    /// Messages refused because one end was not in the other's roster in force.
    pub gated: u64,
}

/// What the access links of a profiled scenario carried, against their physical limit.
#[derive(Debug, Clone, PartialEq)]
pub struct Thin {
    /// Bytes on the downlinks (messages with their framing) per item per member.
    pub link_bytes_per_item_member: f64,
    /// Physical floor of the time to 100%, ms: the slowest member's downlink carrying each item
    /// it received once, at its bandwidth, after the shortest propagation into it (and no item
    /// before its publication).
    pub floor_ms: u64,
    /// Messages lost because a link was down (`cable-cut`).
    pub dropped: u64,
    /// One row per profile in use.
    pub rows: Vec<ProfileRow>,
}

/// The members on one profile.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileRow {
    /// Profile name (`fibre`, `satellite`, `cable-cut`).
    pub profile: &'static str,
    /// Members on it.
    pub members: usize,
    /// When the last of them held everything it may hold (ms after the wave starts).
    pub t100_ms: Option<u64>,
    /// The physical floor of that time (see [`Thin::floor_ms`]), ms.
    pub floor_ms: u64,
    /// Bytes received on their downlinks (with framing) per item each may hold, per member.
    pub down_bytes_per_item_member: f64,
    /// Share of the time until everyone's 100% (or the end of the run) that their downlinks
    /// were serializing, averaged over the group.
    pub down_busy: f64,
}

/// ⌈log_{f+1} n⌉: the fewest push rounds that can reach `n` members with fanout `f`.
pub fn bound_rounds(n: usize, fanout: usize) -> u32 {
    let base = (fanout + 1) as u128;
    let mut reach: u128 = 1;
    let mut r = 0;
    while reach < n as u128 && base > 1 {
        reach *= base;
        r += 1;
    }
    r
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "never".to_string(), |x| x.to_string())
}

fn secs(v: Option<u64>, interval_ms: u64) -> String {
    match v {
        None => "never".to_string(),
        Some(ms) => format!(
            "{:.2} s ({:.2} intervals)",
            ms as f64 / 1000.0,
            ms as f64 / interval_ms.max(1) as f64
        ),
    }
}

/// The report as a table.
pub fn format_report(r: &Report) -> String {
    let mut s = String::new();
    let bound = bound_rounds(r.members, r.fanout);
    let _ = writeln!(s, "== {} (seed {}) ==", r.scenario, r.seed);
    let rows: Vec<(&str, String)> = vec![
        ("members / items", format!("{} / {}", r.members, r.items)),
        (
            "bound ⌈log_{f+1} N⌉",
            format!("{bound} rounds (f = {}, N = {})", r.fanout, r.members),
        ),
        ("rounds to 99.9%", opt(r.rounds_999)),
        ("rounds to 100%", opt(r.rounds_100)),
        ("time to 99.9%", secs(r.t999_ms, r.interval_ms)),
        ("time to 100%", secs(r.t100_ms, r.interval_ms)),
        (
            "coverage at the end",
            format!("{} / {} pairs", r.coverage_end.0, r.coverage_end.1),
        ),
        (
            "messages / item / member",
            format!("{:.3}", r.messages_per_item_member),
        ),
        (
            "bytes / item / member",
            format!("{:.1}", r.bytes_per_item_member),
        ),
        (
            "relative message redundancy",
            format!("{:.3} (target ≤ fanout {})", r.redundancy, r.fanout),
        ),
        (
            "messages lost / duplicated",
            format!("{} / {}", r.lost, r.duplicated),
        ),
        ("items lost with a wiped store", r.lost_items.to_string()),
    ];
    for (k, v) in rows {
        let _ = writeln!(s, "  {k:<30} {v}");
    }
    if let Some((diffs, rec, all)) = r.heal {
        let per = |b: u64| {
            if diffs == 0 {
                "n/a".to_string()
            } else {
                format!("{:.1}", b as f64 / diffs as f64)
            }
        };
        let _ = writeln!(
            s,
            "  {:<30} {diffs} differences; reconcile {rec} B ({} B/diff); all traffic {all} B ({} B/diff)",
            "after heal",
            per(rec),
            per(all)
        );
    }
    if let Some(t) = &r.thin {
        let _ = writeln!(
            s,
            "  {:<30} {:.1} (messages with gRPC/HTTP2/TLS/TCP framing)",
            "link bytes / item / member", t.link_bytes_per_item_member
        );
        let ratio = match r.t100_ms {
            Some(ms) if ms > 0 => format!("{:.2}", t.floor_ms as f64 / ms as f64),
            _ => "n/a".to_string(),
        };
        let _ = writeln!(
            s,
            "  {:<30} {:.2} s; floor / time to 100% = {ratio}",
            "physical floor of 100%",
            t.floor_ms as f64 / 1000.0
        );
        let _ = writeln!(s, "  {:<30} {}", "messages lost in link drops", t.dropped);
        let _ = writeln!(
            s,
            "  {:<12} {:>7} {:>16} {:>10} {:>10} {:>18} {:>10}",
            "profile",
            "members",
            "time to 100%",
            "floor",
            "floor/t",
            "down B/item/member",
            "down busy"
        );
        for row in &t.rows {
            let (t100, ratio) = match row.t100_ms {
                Some(0) => ("0.00 s".to_string(), "n/a".to_string()),
                Some(ms) => (
                    format!("{:.2} s", ms as f64 / 1000.0),
                    format!("{:.2}", row.floor_ms as f64 / ms.max(1) as f64),
                ),
                None => ("never".to_string(), "n/a".to_string()),
            };
            let _ = writeln!(
                s,
                "  {:<12} {:>7} {:>16} {:>10} {:>10} {:>18.1} {:>9.1}%",
                row.profile,
                row.members,
                t100,
                format!("{:.2} s", row.floor_ms as f64 / 1000.0),
                ratio,
                row.down_bytes_per_item_member,
                row.down_busy * 100.0
            );
        }
    }
    if let Some(ro) = &r.roster {
        let conv = ro.converged_after_last_change_ms.map_or_else(
            || "never".to_string(),
            |ms| format!("{:.2} s", ms as f64 / 1000.0),
        );
        let _ = writeln!(
            s,
            "  {:<30} version {} in force at {} / {} members; the last reached it {conv} after the last change (bound {:.0} s)",
            "roster",
            ro.final_version,
            ro.at_final,
            ro.members,
            ro.bound_ms as f64 / 1000.0
        );
        let refused: Vec<String> = ro.refused.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let _ = writeln!(
            s,
            "  {:<30} carriers refused: {}; items dropped as invalid: {}; messages refused (not in roster): {}",
            "roster enforcement",
            if refused.is_empty() {
                "none".to_string()
            } else {
                refused.join(", ")
            },
            ro.purged,
            ro.gated
        );
    }
    let kinds: Vec<String> = r
        .by_kind
        .iter()
        .map(|(k, (m, b))| format!("{k} {m} msgs {b} B"))
        .collect();
    let _ = writeln!(s, "  {:<30} {}", "by kind", kinds.join("; "));
    s
}
