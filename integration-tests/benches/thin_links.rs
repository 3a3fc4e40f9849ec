//! The thin-links benchmark of issue 12: for each link profile (`fibre`, `satellite`,
//! `cable-cut`; `linkemu`), two real `tanoad` members joined by the emulated link, measured
//! against the link's physical limit, and a TAXII 2.1 client polling the same objects through
//! the same link. Prints one table with a row per profile (column `utilisation`), the issue's
//! targets with PASS/FAIL, and the emulator's own check (bandwidth and round trip reached in
//! the same run: the ceiling every figure is bounded by).
//!
//! Run: `cargo bench --workspace --bench thin_links` (10,000 advisories per profile; TAXII
//! paging stops after 300 s and the rest is extrapolated, labelled so), `-- --quick` (a few
//! minutes: fewer advisories and probes), `-- --n N`, `-- --probes K`,
//! `-- --profiles fibre,satellite` (or `--profile satellite`), `-- --taxii-max-s S` (0: page
//! everything), `-- --timeline DIR` (each catch-up's timeline as CSV: link bytes per 100 ms,
//! the far member's flow window, rate and requests in flight). A program, not a test: without
//! cargo bench's `--bench` argument it measures nothing and exits 0.
//!
//! Per profile, in order:
//! 1. catch-up: the origin (ws-cert) holds N advisories (the MITRE APT40 bundle's parts, then
//!    generated ones shaped like `examples/`), published while the link was cut; the far
//!    member (to-cert) starts behind a stalled link, which is opened at t0; wall time until it
//!    holds all N; bytes on the wire each way; the physical limit = the heavier direction's
//!    wire bytes ÷ bandwidth (outages excluded on cable-cut) + the round trips the protocol
//!    needs (the TLS handshake, the reconciliation rounds the far member counted, one fetch;
//!    the TCP handshake is over before t0), the transmission counted after the round trips;
//!    utilisation = limit ÷ wall; wire bytes (both ways) ÷ the stored envelopes' bytes; a
//!    timeline of the catch-up (idle link, ramp, tail);
//! 2. nothing changed: one reconciliation started by the far member (SyncNow) when both hold
//!    the same, inside a link-up phase (on cable-cut: after the last outage settled, at least
//!    10 s before the next): time, bytes both ways, rounds;
//! 3. TAXII: taxii2-client (`as_pages`, limit 100) pages the origin's `green` collection (the
//!    same advisories as STIX) from the far side of the same link; time (discovery included),
//!    bytes; ratio TAXII time ÷ Tanoa catch-up time;
//! 4. publish → held by the far member (its Watch stream), over K publishes: idle (one after
//!    the other), then while a backlog (about 15 s of link time, at most 1,500 advisories) is in
//!    flight (one every max(RTT, 0.3 s)); the row says how many arrived before the backlog
//!    was complete;
//! 5. on cable-cut, the fraction of bytes sent more than once during the catch-up: items the
//!    origin sent beyond the catch-up's (Tanoa's resends, judged against the 5% target) and
//!    the link's retransmissions (loss, outages; printed beside: the emulator sends every lost
//!    segment again, so they are at least the profile's loss whatever the protocol).
//!
//! The daemons run with their default `[sync]` settings (today's, whatever they are).
//! On cable-cut the first outage starts 5 s after t0, then every 60 s (so a short run meets
//! one).
//!
//! Owns: the workload, the timing and the tables. Must never: run under `cargo test`, or print
//! a figure without the ceiling it is bounded by.

// A benchmark driver: a failed step must stop the run at once, loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest as _, Sha256};
use tanoa_integration_tests::corpus::{self, envelope_bytes, items_held};
use tanoa_integration_tests::federation::{Federation, Options};
use tanoa_integration_tests::interop::{python, scripts_dir};
use tanoa_integration_tests::linkemu::{
    Dir, Drops, LinkCheck, LinkStats, Profile, bulk_bytes, check_profile,
};
use tanoa_integration_tests::{TestNode, binaries, run_command_for, sample_draft};
use tanoa_proto::v1 as pb;
use tokio::sync::mpsc;

const CLIENT: &str = "thin";
const TOKEN: &str = "thin-links-taxii-token-8d21c4";
const ORIGIN: usize = 0;
const FAR: usize = 1;
const STEP_TIMEOUT: Duration = Duration::from_secs(3 * 3600);
/// Objects per TAXII request, as a SIEM would.
const TAXII_LIMIT: usize = 100;

struct Args {
    quick: bool,
    n: Option<usize>,
    probes: Option<usize>,
    profiles: Vec<String>,
    /// TAXII paging stops after this long (the rest is extrapolated, and labelled so).
    taxii_max_s: Option<f64>,
    /// Where to write each profile's catch-up timeline (CSV), if anywhere.
    timeline: Option<std::path::PathBuf>,
}

fn parse_args() -> Args {
    let mut a = Args {
        quick: false,
        n: None,
        probes: None,
        profiles: Profile::NAMES.iter().map(ToString::to_string).collect(),
        taxii_max_s: None,
        timeline: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--quick" => a.quick = true,
            "--n" => a.n = it.next().and_then(|v| v.parse().ok()),
            "--probes" => a.probes = it.next().and_then(|v| v.parse().ok()),
            "--taxii-max-s" => a.taxii_max_s = it.next().and_then(|v| v.parse().ok()),
            "--timeline" => a.timeline = it.next().map(std::path::PathBuf::from),
            "--profiles" | "--profile" => {
                a.profiles = it
                    .next()
                    .map(|v| v.split(',').map(str::to_string).collect())
                    .unwrap_or_default();
            }
            _ => {}
        }
    }
    a
}

/// Advisories of the catch-up on `profile`, and whether the APT40 parts are among them
/// (`--quick` leaves them out on cable-cut: their ~400 KB alone take 25 s of that link).
fn catch_up_items(args: &Args, p: &Profile) -> (usize, bool) {
    if let Some(n) = args.n {
        return (n, true);
    }
    if !args.quick {
        return (10_000, true);
    }
    match p.name.as_str() {
        "fibre" => (2_000, true),
        "satellite" => (150, true),
        _ => (40, false),
    }
}

/// Waits until the link carried nothing for `quiet` (at most `bound`); whether it did.
async fn quiesce(
    link: &tanoa_integration_tests::linkemu::EmuLink,
    quiet: Duration,
    bound: Duration,
) -> bool {
    let deadline = Instant::now() + bound;
    let mut last = link.stats();
    let mut since = Instant::now();
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = link.stats();
        if now.a_to_b.delivered != last.a_to_b.delivered
            || now.b_to_a.delivered != last.b_to_a.delivered
        {
            last = now;
            since = Instant::now();
        } else if since.elapsed() >= quiet {
            return true;
        }
    }
    false
}

/// One sample of the catch-up, every 100 ms (peer counters every 500 ms, else repeated).
#[derive(Debug, Clone, Default)]
struct Sample {
    /// Seconds since t0.
    t: f64,
    /// Link counters since t0.
    link: LinkStats,
    /// The far member's view of the origin: requests in flight, ids queued to fetch, fetches
    /// sent, items received; its flow estimate (`PeerInfo.flow_*`).
    far: pb::PeerInfo,
    /// The origin's view of the far member (pushes, items sent).
    origin: pb::PeerInfo,
    /// Items the far member holds.
    held: u64,
}

/// Waits until the far member holds `want` items (at most `bound`), sampling the link every
/// 100 ms and both members' peer state every 500 ms into `out`; the instant it held them.
async fn catch_up_timeline(
    fed: &Federation,
    link: &tanoa_integration_tests::linkemu::EmuLink,
    t0: Instant,
    want: u64,
    bound: Duration,
    out: &mut Vec<Sample>,
) -> Result<Instant, u64> {
    let deadline = Instant::now() + bound;
    let base = link.stats();
    let mut tick = 0u64;
    let mut far = pb::PeerInfo::default();
    let mut origin = pb::PeerInfo::default();
    loop {
        let held = items_held(&fed.nodes[FAR]).await;
        let now = Instant::now();
        if tick.is_multiple_of(4) || held >= want {
            if tick.is_multiple_of(20) {
                far = peer_info(&fed.nodes[FAR], "ws-cert").await;
                origin = peer_info(&fed.nodes[ORIGIN], "to-cert").await;
            }
            out.push(Sample {
                t: now.duration_since(t0).as_secs_f64(),
                link: link.stats().since(&base),
                far: far.clone(),
                origin: origin.clone(),
                held,
            });
        }
        if held >= want {
            return Ok(now);
        }
        if now > deadline {
            return Err(held);
        }
        tick += 1;
        let next = t0 + Duration::from_millis(25 * tick);
        tokio::time::sleep_until(next.max(Instant::now()).into()).await;
    }
}

/// What the catch-up timeline shows: how much of the wall time the link towards the far
/// member was idle, and when.
#[derive(Debug, Clone, Default)]
struct TimelineSummary {
    /// One line for the report: the share of 100-ms buckets (outages excluded) in which the
    /// link towards the far member delivered less than half its capacity, when it first ran
    /// at half its capacity, the time from the last such bucket to the end, and its capacity
    /// used per second.
    text: String,
}

fn summarize_timeline(
    samples: &[Sample],
    link: &tanoa_integration_tests::linkemu::EmuLink,
    t0: Instant,
    rate: f64,
    wall: Option<f64>,
) -> TimelineSummary {
    let mut idle = 0usize;
    let mut counted = 0usize;
    let mut first_busy = None;
    let mut last_busy = 0.0f64;
    let mut per_second: Vec<f64> = Vec::new();
    for w in samples.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        let dt = b.t - a.t;
        if dt <= 0.0 {
            continue;
        }
        let bytes = b
            .link
            .a_to_b
            .delivered
            .saturating_sub(a.link.a_to_b.delivered) as f64;
        let mid = t0 + Duration::from_secs_f64((a.t + b.t) / 2.0);
        let down = link
            .outage_at_or_after(mid)
            .is_some_and(|(start, end)| mid >= start && mid < end);
        let sec = b.t as usize;
        if per_second.len() <= sec {
            per_second.resize(sec + 1, 0.0);
        }
        per_second[sec] += bytes;
        if down {
            continue;
        }
        counted += 1;
        if bytes >= rate * dt * 0.5 {
            first_busy.get_or_insert(a.t);
            last_busy = b.t;
        } else {
            idle += 1;
        }
    }
    let idle_fraction = idle as f64 / counted.max(1) as f64;
    let first_busy_s = first_busy.unwrap_or(f64::NAN);
    let tail_s = wall.map_or(f64::NAN, |w| (w - last_busy).max(0.0));
    let shape: Vec<String> = per_second
        .iter()
        .map(|b| format!("{:.0}", b / rate * 100.0))
        .collect();
    let text = format!(
        "below half capacity in {:.1}% of 100-ms buckets (outages excluded), first at half \
         capacity after {:.2} s, last such bucket {:.2} s before the end; % of capacity towards \
         the far member per second: [{}]",
        idle_fraction * 100.0,
        first_busy_s,
        tail_s,
        shape.join(" ")
    );
    TimelineSummary { text }
}

fn write_timeline(dir: &std::path::Path, profile: &str, samples: &[Sample]) {
    use std::fmt::Write as _;
    let mut csv = String::from(
        "t_s,a2b_delivered,a2b_wire,b2a_delivered,b2a_wire,held,far_in_flight,far_queued_fetch,\
         far_fetches_sent,far_items_received,far_rtt_ms,far_window_in,far_rate_in,\
         far_bytes_in_flight_in,origin_in_flight,origin_pushes_sent,origin_items_sent,\
         origin_window_out\\n",
    );
    for s in samples {
        let _ = writeln!(
            csv,
            "{:.3},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            s.t,
            s.link.a_to_b.delivered,
            s.link.a_to_b.wire(),
            s.link.b_to_a.delivered,
            s.link.b_to_a.wire(),
            s.held,
            s.far.in_flight,
            s.far.queued_fetch,
            s.far.fetches_sent,
            s.far.items_received,
            s.far.flow_rtt_ms,
            s.far.flow_window_in,
            s.far.flow_rate_in,
            s.far.flow_bytes_in_flight_in,
            s.origin.in_flight,
            s.origin.pushes_sent,
            s.origin.items_sent,
            s.origin.flow_window_out,
        );
    }
    let _ = std::fs::create_dir_all(dir);
    let path = dir.join(format!("timeline-{profile}.csv"));
    if let Err(e) = std::fs::write(&path, csv) {
        eprintln!("thin_links: cannot write {}: {e}", path.display());
    }
}

/// Waits, on a link with scheduled outages, until the link is up, every connection that lost
/// bytes in the last outage has retried (`settled_after_outage`) and been quiet for
/// `quiet`, and at least `need` is left before the next outage; says when that was relative
/// to the schedule. Without outages: at once.
async fn clear_of_outages(
    link: &tanoa_integration_tests::linkemu::EmuLink,
    need: Duration,
    quiet: Duration,
) -> String {
    loop {
        let now = Instant::now();
        let Some((start, end)) = link.outage_at_or_after(now) else {
            return "no outages on this profile".into();
        };
        if now >= start {
            // Inside an outage: wait for it to end and the connections to retry.
            tokio::time::sleep_until(link.settled_after_outage(start, end).into()).await;
            quiesce(link, quiet, Duration::from_secs(60)).await;
            continue;
        }
        // Up: the previous outage (if any) must be settled.
        let every = link.profile().drops.map_or(Duration::ZERO, |d| d.every);
        let prev = start
            .checked_sub(every)
            .filter(|s| *s >= link.drops_origin());
        if let Some(ps) = prev {
            let pe = ps + link.profile().drops.map_or(Duration::ZERO, |d| d.length);
            let settled = link.settled_after_outage(ps, pe);
            if now < settled {
                tokio::time::sleep_until(settled.into()).await;
                quiesce(link, quiet, Duration::from_secs(60)).await;
                continue;
            }
        }
        if start.saturating_duration_since(now) < need {
            // Too close to the next outage: wait it out.
            tokio::time::sleep_until(start.into()).await;
            continue;
        }
        let since = prev.map_or_else(
            || "before the first outage".to_string(),
            |ps| {
                let pe = ps + link.profile().drops.map_or(Duration::ZERO, |d| d.length);
                format!(
                    "{:.1} s after the last outage ended",
                    now.duration_since(pe).as_secs_f64()
                )
            },
        );
        return format!(
            "{since}, {:.1} s before the next",
            start.duration_since(now).as_secs_f64()
        );
    }
}

/// TAXII paging stops after this many seconds (`--taxii-max-s`; 0 = never): by default never
/// with `--quick`, 300 s otherwise (a full catch-up paged through `cable-cut` would take hours).
fn taxii_cap(args: &Args) -> Option<f64> {
    match args.taxii_max_s {
        Some(c) if c > 0.0 => Some(c),
        Some(_) => None,
        None => (!args.quick).then_some(300.0),
    }
}

fn probe_count(args: &Args) -> usize {
    args.probes.unwrap_or(if args.quick { 10 } else { 50 })
}

fn taxii_config() -> String {
    format!(
        "[taxii]\nlisten = \"127.0.0.1:0\"\n\n[[taxii.clients]]\nname = \"{CLIENT}\"\n\
         token_sha256 = \"{}\"\ncollections = [\"clear\", \"green\"]\n",
        hex::encode(Sha256::digest(TOKEN.as_bytes()))
    )
}

/// `name{peer="<peer>"} value` from a Prometheus text (0 when absent).
fn metric(text: &str, name: &str, peer: &str) -> f64 {
    let prefix = format!("{name}{{peer=\"{peer}\"");
    text.lines()
        .filter(|l| l.starts_with(&prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let k = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[k.min(sorted.len() - 1)]
}

fn kb(b: u64) -> String {
    format!("{:.1}", b as f64 / 1024.0)
}

async fn peer_info(node: &TestNode, peer: &str) -> pb::PeerInfo {
    node.client()
        .await
        .peers(pb::PeersRequest {})
        .await
        .expect("Peers")
        .into_inner()
        .peers
        .into_iter()
        .find(|p| p.member_id == peer)
        .expect("peer listed")
}

/// Waits until `node` holds at least `want` items, at most `bound`; the instant it did.
async fn wait_items(node: &TestNode, want: u64, bound: Duration) -> Result<Instant, u64> {
    let deadline = Instant::now() + bound;
    loop {
        let held = items_held(node).await;
        if held >= want {
            return Ok(Instant::now());
        }
        if Instant::now() > deadline {
            return Err(held);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Watches `node`: every new advisory id with the instant it was reported.
async fn watch(node: &TestNode) -> mpsc::UnboundedReceiver<(String, Instant)> {
    let mut stream = node
        .client()
        .await
        .watch(pb::WatchRequest {})
        .await
        .expect("Watch")
        .into_inner();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(Some(ev)) = stream.message().await {
            if let Some(a) = ev.advisory
                && tx.send((a.advisory_id, Instant::now())).is_err()
            {
                return;
            }
        }
    });
    rx
}

/// Publish → held latencies (seconds) of the probes `ids` published at `sent`, read from
/// `rx` for at most `bound`; missing probes are left out (counted by the caller).
async fn collect_latencies(
    rx: &mut mpsc::UnboundedReceiver<(String, Instant)>,
    sent: &HashMap<String, Instant>,
    bound: Duration,
) -> HashMap<String, (f64, Instant)> {
    let mut got = HashMap::new();
    let deadline = Instant::now() + bound;
    while got.len() < sent.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(Some((id, at))) = tokio::time::timeout(left, rx.recv()).await else {
            break;
        };
        if let Some(t0) = sent.get(&id) {
            got.insert(id, (at.saturating_duration_since(*t0).as_secs_f64(), at));
        }
    }
    got
}

async fn publish_probe(node: &TestNode, id: &str) -> Instant {
    let t0 = Instant::now();
    node.client()
        .await
        .publish(pb::PublishRequest {
            draft: Some(sample_draft(id, "Thin-links probe", 77)),
        })
        .await
        .expect("publish probe");
    t0
}

/// Everything measured on one profile.
#[derive(Debug, Default)]
struct Row {
    name: String,
    rtt: f64,
    rate: f64,
    /// The profile's segment loss (0..1).
    loss: f64,
    items: usize,
    payload: u64,
    wall: Option<f64>,
    held_at_bound: u64,
    wire: LinkStats,
    rtts_used: u64,
    limit: f64,
    resent: Option<f64>,
    resent_parts: (f64, f64),
    quiet: bool,
    nothing_s: f64,
    nothing_bytes: u64,
    nothing_rounds: f64,
    idle: Vec<f64>,
    idle_missing: usize,
    backlog: Vec<f64>,
    backlog_in_flight: usize,
    backlog_missing: usize,
    backlog_items: usize,
    timeline: TimelineSummary,
    nothing_when: String,
    taxii_s: f64,
    taxii_measured_s: f64,
    taxii_objects: (u64, u64),
    taxii_pages: u64,
    taxii_bytes: LinkStats,
    check: Option<LinkCheck>,
}

impl Row {
    fn utilisation(&self) -> Option<f64> {
        self.wall.map(|w| self.limit / w)
    }
    fn wire_ratio(&self) -> f64 {
        self.wire.wire_total() as f64 / self.payload.max(1) as f64
    }
}

#[allow(clippy::too_many_lines)]
async fn run_profile(args: &Args, profile: &Profile) -> Row {
    let bins = binaries!();
    let mut p = profile.clone();
    if let Some(d) = p.drops.as_mut() {
        *d = Drops {
            first_at: Duration::from_secs(5),
            ..*d
        };
    }
    let (n, with_apt40) = catch_up_items(args, &p);
    let mut row = Row {
        name: p.name.clone(),
        rtt: p.rtt.as_secs_f64(),
        rate: p.bytes_per_sec(),
        loss: p.loss,
        items: n,
        ..Row::default()
    };
    // The emulator's own ceiling in this run (loss-free): bandwidth and round trip.
    let lossless = p.clone().lossless();
    let secs = if p.name == "fibre" { 2.0 } else { 3.0 };
    row.check = Some(
        tokio::task::spawn_blocking(move || {
            check_profile(&lossless, bulk_bytes(&lossless, secs)).expect("link check")
        })
        .await
        .expect("check task"),
    );
    eprintln!("[{}] link check done; {n} advisories", p.name);

    let opts = Options {
        sync: Some(Vec::new()),
        profile: Some(p.clone()),
        extra_config: vec![taxii_config()],
        ..Options::default()
    };
    let mut fed = Federation::create_with(&bins.tanoad, &["ws-cert", "to-cert"], &[], &opts).await;
    let link_cut = |fed: &Federation| fed.emulated(ORIGIN, FAR).cut();
    link_cut(&fed);
    fed.start_member(ORIGIN).await;
    let drafts = corpus::corpus("bench", n, with_apt40);
    let published = corpus::publish_all(&fed.nodes[ORIGIN], &drafts, 200).await;
    let ids: Vec<String> = published.iter().map(|r| r.item_id.clone()).collect();
    row.payload = envelope_bytes(&fed.nodes[ORIGIN], &ids).await;
    eprintln!(
        "[{}] origin holds {} advisories, {} bytes of envelopes",
        p.name,
        ids.len(),
        row.payload
    );
    fed.emulated(ORIGIN, FAR).stall();
    let conns_before = fed.emulated(ORIGIN, FAR).stats().connections;
    fed.start_member(FAR).await;

    // 1. Catch-up.
    let link = fed.emulated(ORIGIN, FAR);
    // The far member's connection is accepted by the stalled link; its emulated TCP handshake
    // (one round trip from the accept) is over before t0, as the limit below assumes.
    let deadline = Instant::now() + Duration::from_secs(60);
    while link.stats().connections <= conns_before && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(p.rtt + Duration::from_millis(100)).await;
    let before = link.stats();
    let metrics_before = fed.nodes[FAR].scrape_metrics().await;
    let origin_sent_before = peer_info(&fed.nodes[ORIGIN], "to-cert").await.items_sent;
    let t0 = Instant::now();
    link.align_drops(t0);
    link.heal();
    let limit_guess = row.payload as f64 / row.rate * 1.5 + 20.0 * row.rtt;
    let bound = Duration::from_secs_f64((limit_guess * 10.0).max(120.0));
    let mut timeline: Vec<Sample> = Vec::new();
    match catch_up_timeline(&fed, link, t0, n as u64, bound, &mut timeline).await {
        Ok(t1) => row.wall = Some(t1.duration_since(t0).as_secs_f64()),
        Err(held) => row.held_at_bound = held,
    }
    row.timeline = summarize_timeline(&timeline, link, t0, row.rate, row.wall);
    eprintln!("[{}] catch-up timeline: {}", p.name, row.timeline.text);
    if let Some(dir) = &args.timeline {
        write_timeline(dir, &p.name, &timeline);
    }
    // The limit counts what crossed the link until the far member held everything (delivered
    // plus retransmitted); the wire columns count everything the catch-up caused, until the
    // link has been quiet for two round trips and a second.
    let at_t1 = link.stats().since(&before);
    let metrics_after = fed.nodes[FAR].scrape_metrics().await;
    let quiet = Duration::from_secs_f64(2.0 * row.rtt + 1.0);
    row.quiet = quiesce(link, quiet, Duration::from_secs(300)).await;
    row.wire = link.stats().since(&before);
    let rounds = metric(&metrics_after, "tanoa_reconcile_rounds_total", "ws-cert")
        - metric(&metrics_before, "tanoa_reconcile_rounds_total", "ws-cert");
    // The TCP handshake happened before t0 (the far member's connection waited at the stalled
    // link): the TLS handshake, the reconciliation rounds, one fetch.
    row.rtts_used = 1 + (rounds.max(1.0) as u64) + 1;
    let carried = |d: &tanoa_integration_tests::linkemu::DirStats| d.delivered + d.retransmitted;
    let heavier = carried(&at_t1.a_to_b).max(carried(&at_t1.b_to_a));
    // The round trips come first (the data follows the fetch), so the transmission starts
    // after them, and any outage it then meets is added (outages excluded from link time).
    let rtts_s = row.rtts_used as f64 * row.rtt;
    row.limit =
        rtts_s + p.up_time_needed(Duration::from_secs_f64(rtts_s), heavier as f64 / row.rate);
    // Sent more than once: items the origin sent beyond the N of the catch-up (its own count of
    // items sent to the far member in pushes and fetch answers, cancelled requests included;
    // its `bytes_sent` also counts its reconciliation messages, which are not sent twice), and
    // the link's retransmissions.
    let origin_sent =
        peer_info(&fed.nodes[ORIGIN], "to-cert").await.items_sent - origin_sent_before;
    let app = (origin_sent.saturating_sub(n as u64)) as f64 / origin_sent.max(1) as f64;
    let tcp = row.wire.a_to_b.retransmitted as f64 / row.wire.a_to_b.wire().max(1) as f64;
    row.resent = Some(1.0 - (1.0 - app) * (1.0 - tcp));
    row.resent_parts = (app, tcp);
    eprintln!(
        "[{}] catch-up: {:?} s, wire {:?}",
        p.name, row.wall, row.wire
    );

    // 2. Nothing changed (the link is quiet: see above), inside a link-up phase: the outages
    // are part of cable-cut, but a probe started just before one would measure the outage, not
    // the protocol.
    row.nothing_when = clear_of_outages(
        link,
        Duration::from_secs_f64((10.0 * row.rtt).max(10.0)),
        quiet,
    )
    .await;
    eprintln!("[{}] nothing changed: started {}", p.name, row.nothing_when);
    let before_ok = peer_info(&fed.nodes[FAR], "ws-cert").await.sessions_ok;
    let m0 = fed.nodes[FAR].scrape_metrics().await;
    let s0 = link.stats();
    let t = Instant::now();
    fed.nodes[FAR]
        .client()
        .await
        .sync_now(pb::SyncNowRequest {
            peer: "ws-cert".into(),
        })
        .await
        .expect("SyncNow");
    let deadline = Instant::now() + Duration::from_secs(120);
    while peer_info(&fed.nodes[FAR], "ws-cert").await.sessions_ok <= before_ok
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    row.nothing_s = t.elapsed().as_secs_f64();
    row.nothing_bytes = link.stats().since(&s0).wire_total();
    let m1 = fed.nodes[FAR].scrape_metrics().await;
    row.nothing_rounds = metric(&m1, "tanoa_reconcile_rounds_total", "ws-cert")
        - metric(&m0, "tanoa_reconcile_rounds_total", "ws-cert");
    eprintln!("[{}] nothing changed: {:.3} s", p.name, row.nothing_s);

    // 3. TAXII through the same link, the same objects.
    let work = tempfile::tempdir().expect("tempdir");
    let export = work.path().join("export.json");
    let out = run_command_for(
        &bins.tanoa,
        [
            "--config",
            fed.nodes[ORIGIN].config_path().to_str().expect("utf-8"),
            "export",
            "--format",
            "stix",
            "-o",
            export.to_str().expect("utf-8"),
        ],
        STEP_TIMEOUT,
    )
    .await;
    out.expect_code(0, "tanoa export --format stix");
    let taxii_addr = fed.nodes[ORIGIN].started_addr("taxii");
    let relay = link.relay_to(Dir::BtoA, taxii_addr).expect("TAXII relay");
    let py = tokio::task::spawn_blocking(python).await.expect("venv");
    let s0 = link.stats();
    let out = run_command_for(
        &py,
        [
            scripts_dir()
                .join("bench_taxii.py")
                .to_string_lossy()
                .into_owned(),
            "tanoa".into(),
            "--url".into(),
            format!("http://{}/taxii2/", relay.addr()),
            "--user".into(),
            CLIENT.into(),
            "--password".into(),
            TOKEN.into(),
            "--collection".into(),
            "green".into(),
            "--expect".into(),
            export.to_string_lossy().into_owned(),
            "--per-request".into(),
            TAXII_LIMIT.to_string(),
            "--max-seconds".into(),
            taxii_cap(args).map_or_else(|| "1e9".to_string(), |c| c.to_string()),
        ],
        STEP_TIMEOUT,
    )
    .await;
    out.expect_code(0, "bench_taxii.py tanoa");
    let v: Value = serde_json::from_str(&out.stdout).expect("bench_taxii JSON");
    let session = v["session_seconds"].as_f64().expect("session_seconds");
    let paging = v["seconds"].as_f64().expect("seconds");
    let got = v["objects"].as_u64().expect("objects");
    let all = v["collection_objects"]
        .as_u64()
        .expect("collection_objects");
    row.taxii_measured_s = session;
    row.taxii_objects = (got, all);
    // Stopped at the cap: the paging time is extrapolated at the rate measured (objects per
    // second of paging); discovery is counted once, as measured.
    row.taxii_s = if got < all && got > 0 {
        session - paging + paging * all as f64 / got as f64
    } else {
        session
    };
    row.taxii_pages = v["pages"].as_u64().unwrap_or(0);
    row.taxii_bytes = link.stats().since(&s0);
    drop(relay);
    eprintln!("[{}] TAXII: {:.3} s", p.name, row.taxii_s);

    // 4a. Publish → held, idle.
    let probes = probe_count(args);
    let mut rx = watch(&fed.nodes[FAR]).await;
    let probe_bound = Duration::from_secs_f64(60.0 + 20.0 * row.rtt);
    for k in 0..probes {
        let id = format!("probe-idle-{k:03}");
        let t0 = publish_probe(&fed.nodes[ORIGIN], &id).await;
        let sent = HashMap::from([(id.clone(), t0)]);
        let got = collect_latencies(&mut rx, &sent, probe_bound).await;
        match got.get(&id) {
            Some((l, _)) => row.idle.push(*l),
            None => row.idle_missing += 1,
        }
    }
    eprintln!("[{}] idle probes done", p.name);

    // 4b. Publish → held while a backlog is in flight.
    let mean_item = row.payload as f64 / n.max(1) as f64;
    let backlog_n = ((15.0 * row.rate / mean_item) as usize).clamp(20, 1_500);
    row.backlog_items = backlog_n;
    let held_before = items_held(&fed.nodes[FAR]).await;
    let backlog: Vec<pb::AdvisoryDraft> = (0..backlog_n as u64)
        .map(|i| corpus::generated_draft("backlog", i))
        .collect();
    corpus::publish_all(&fed.nodes[ORIGIN], &backlog, 200).await;
    let backlog_target = held_before + backlog_n as u64;
    let spacing = Duration::from_secs_f64(row.rtt.max(0.3));
    let mut sent = HashMap::new();
    for k in 0..probes {
        let id = format!("probe-busy-{k:03}");
        sent.insert(id.clone(), publish_probe(&fed.nodes[ORIGIN], &id).await);
        tokio::time::sleep(spacing).await;
    }
    // Everything (backlog and probes) held: when?
    let far = &fed.nodes[FAR];
    let all = backlog_target + probes as u64;
    let bound =
        Duration::from_secs_f64((backlog_n as f64 * mean_item / row.rate * 10.0).max(120.0));
    let done = wait_items(far, all, bound).await.ok();
    let got = collect_latencies(&mut rx, &sent, Duration::from_secs(1)).await;
    // The backlog was complete at the Watch event of its last item (or `done`, as an upper
    // bound when the last event came from a probe).
    let backlog_done = done.unwrap_or_else(Instant::now);
    for (l, at) in got.values() {
        row.backlog.push(*l);
        if *at < backlog_done {
            row.backlog_in_flight += 1;
        }
    }
    row.backlog_missing = probes - got.len();
    fed.stop_member(FAR).await;
    fed.stop_member(ORIGIN).await;
    row
}

fn pass(ok: bool) -> &'static str {
    if ok { "PASS" } else { "FAIL" }
}

#[allow(clippy::too_many_lines)]
fn print(rows: &[Row], args: &Args, load: &str, took: f64) {
    println!();
    println!(
        "Thin-links benchmark (issue 12){}: two real members through the link emulator \
         (integration-tests/src/linkemu.rs), default [sync] settings, release build, {} cores, \
         load average {load} at the start, run took {took:.0} s",
        if args.quick { ", --quick" } else { "" },
        std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
    );
    println!();
    println!(
        "| profile | advisories | payload (KiB) | catch-up wall (s) | wire A→B (KiB) | wire B→A (KiB) | RTTs in limit | physical limit (s) | utilisation | wire ÷ payload | resent | nothing changed: time (s) / bytes / rounds | publish→held idle p50 / p99 (s) | during backlog p50 / p99 (s) [in flight / sent] | TAXII limit 100: time (s) / pages / KiB A→B | TAXII ÷ Tanoa |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---|---|---:|");
    for r in rows {
        let mut idle = r.idle.clone();
        idle.sort_by(f64::total_cmp);
        let mut busy = r.backlog.clone();
        busy.sort_by(f64::total_cmp);
        let wall = r.wall.map_or_else(
            || format!("> bound ({} of {} held)", r.held_at_bound, r.items),
            |w| format!("{w:.2}"),
        );
        let mut taxii_kib = kb(r.taxii_bytes.a_to_b.wire());
        if r.taxii_objects.0 < r.taxii_objects.1 {
            taxii_kib.push_str(&format!(
                " (extrapolated: paging stopped after {:.0} s with {} of {} objects)",
                r.taxii_measured_s, r.taxii_objects.0, r.taxii_objects.1
            ));
        }
        println!(
            "| {} | {} | {} | {} | {}{} | {} | {} | {:.2} | {} | {:.2} | {} | {:.3} / {} / {} | {:.3} / {:.3}{} | {:.3} / {:.3} [{} / {}]{} | {:.2} / {} / {} | {} |",
            r.name,
            r.items,
            kb(r.payload),
            wall,
            kb(r.wire.a_to_b.wire()),
            if r.quiet {
                String::new()
            } else {
                " (link not quiet after 300 s)".into()
            },
            kb(r.wire.b_to_a.wire()),
            r.rtts_used,
            r.limit,
            r.utilisation()
                .map_or_else(|| "-".to_string(), |u| format!("{:.1}%", u * 100.0)),
            r.wire_ratio(),
            r.resent.map_or_else(
                || "-".to_string(),
                |f| format!(
                    "{:.1}% ({:.1}% items, {:.1}% TCP)",
                    f * 100.0,
                    r.resent_parts.0 * 100.0,
                    r.resent_parts.1 * 100.0
                )
            ),
            r.nothing_s,
            r.nothing_bytes,
            r.nothing_rounds,
            percentile(&idle, 0.5),
            percentile(&idle, 0.99),
            if r.idle_missing > 0 {
                format!(" ({} lost)", r.idle_missing)
            } else {
                String::new()
            },
            percentile(&busy, 0.5),
            percentile(&busy, 0.99),
            r.backlog_in_flight,
            r.backlog.len() + r.backlog_missing,
            if r.backlog_missing > 0 {
                format!(" ({} not held)", r.backlog_missing)
            } else {
                String::new()
            },
            r.taxii_s,
            r.taxii_pages,
            taxii_kib,
            r.wall
                .map_or_else(|| "-".to_string(), |w| format!("{:.2}", r.taxii_s / w)),
        );
    }
    println!();
    println!(
        "Columns: wire = bytes the emulated link carried for the catch-up (TLS, HTTP/2 and \
         retransmissions included; counted until the link was quiet for 2 RTT + 1 s); physical \
         limit = the heavier direction's bytes carried until the far member held everything ÷ \
         bandwidth (outages excluded) + RTTs × round trip (RTTs = TLS handshake + the \
         reconciliation rounds the far member counted + one fetch; the TCP handshake was made \
         before t0); utilisation = limit ÷ wall; payload = encoded envelopes stored; resent = \
         1 − (1 − items) × (1 − TCP), items = items the origin sent beyond the N of the catch-up \
         ÷ items it sent (pushes and fetch answers), TCP = the link's retransmissions ÷ wire A→B; backlog = {} advisories \
         on fibre, fewer on thinner links (about 15 s of link time, at least 20).",
        rows.first().map_or(0, |r| r.backlog_items)
    );
    println!();
    println!(
        "Catch-up timeline (the link towards the far member, 100-ms buckets; `--timeline DIR` \
         writes them with the flow window and requests in flight):"
    );
    for r in rows {
        println!("- {}: {}", r.name, r.timeline.text);
    }
    println!();
    println!(
        "Nothing changed, when it ran (outside scheduled outages, after the connections that \
         lost bytes in one retried):"
    );
    for r in rows {
        println!("- {}: {}", r.name, r.nothing_when);
    }
    if rows.iter().any(|r| r.taxii_objects.0 < r.taxii_objects.1) {
        println!();
        println!(
            "TAXII extrapolation: paging stopped at the cap (`--taxii-max-s`, default 300 s \
             without --quick); time = discovery + paging time × all objects ÷ objects \
             received (an estimate, not a measurement: it assumes the rest pages at the rate of \
             the part measured; Tanoa's TAXII pages by cursor, so a page further in costs \
             the server no more, and the generated advisories after the APT40 parts are alike)."
        );
    }
    println!();
    println!("| target (issue 12) | profile | figure | result |");
    println!("|---|---|---|---|");
    let by = |name: &str| rows.iter().find(|r| r.name == name);
    for (name, want) in [("satellite", 0.8), ("cable-cut", 0.7)] {
        if let Some(r) = by(name) {
            let u = r.utilisation().unwrap_or(0.0);
            println!(
                "| link utilisation ≥ {:.0}% during catch-up | {name} | {:.1}% | {} |",
                want * 100.0,
                u * 100.0,
                pass(u >= want)
            );
        }
    }
    for r in rows {
        println!(
            "| wire bytes ≤ 0.5 × stored payload (catch-up) | {} | {:.2} × | {} |",
            r.name,
            r.wire_ratio(),
            pass(r.wire_ratio() <= 0.5)
        );
    }
    if let Some(r) = by("satellite") {
        let mut busy = r.backlog.clone();
        busy.sort_by(f64::total_cmp);
        let probe_tx = 4096.0 / r.rate;
        let bound = 3.0 * r.rtt + probe_tx;
        let p99 = percentile(&busy, 0.99);
        println!(
            "| publish during a backlog held within 3 RTT + its transmission (p99) | satellite | {p99:.3} s (bound {bound:.3} s; {} of {} probes arrived while the backlog was in flight) | {} |",
            r.backlog_in_flight,
            r.backlog.len() + r.backlog_missing,
            pass(r.backlog_missing == 0 && p99 <= bound)
        );
    }
    if let Some(r) = by("cable-cut") {
        // Judged on what Tanoa sends more than once (items the origin sent beyond the
        // catch-up). The link's own retransmissions are printed beside it: the emulator sends
        // every lost segment again (5% loss on `cable-cut`), so no protocol over TCP could send
        // less than that twice; a target on the total would be unreachable by construction.
        let (app, tcp) = r.resent_parts;
        let f = r.resent.unwrap_or(1.0);
        println!(
            "| ≤ 5% of bytes sent more than once (by Tanoa; TCP's retransmissions of the link's loss beside) | cable-cut | {:.1}% by Tanoa ({:.1}% with TCP's {:.1}%, the link's loss {:.0}%) | {} |",
            app * 100.0,
            f * 100.0,
            tcp * 100.0,
            r.loss * 100.0,
            pass(r.resent.is_some() && app <= 0.05)
        );
    }
    for r in rows {
        println!(
            "| nothing changed: 1 round trip (time ≤ 1.5 RTT) and < 2 KB | {} | {} rounds, {} bytes, {:.3} s ({:.1} RTT) | {} |",
            r.name,
            r.nothing_rounds,
            r.nothing_bytes,
            r.nothing_s,
            r.nothing_s / r.rtt,
            pass(r.nothing_s <= 1.5 * r.rtt && r.nothing_bytes < 2048)
        );
    }
    if let Some(r) = by("satellite") {
        let ratio = r.wall.map_or(0.0, |w| r.taxii_s / w);
        println!(
            "| ≥ 5× faster than TAXII polling (catch-up) | satellite | TAXII {:.2} s{} ÷ Tanoa {} s = {ratio:.2}× | {} |",
            r.taxii_s,
            if r.taxii_objects.0 < r.taxii_objects.1 {
                " (extrapolated)"
            } else {
                ""
            },
            r.wall.map_or_else(|| "-".into(), |w| format!("{w:.2}")),
            pass(ratio >= 5.0)
        );
    }
    println!();
    println!(
        "Emulator check, same run (loss-free bulk transfer and 1-byte ping-pong through each profile; the ceiling of every figure above):"
    );
    println!();
    println!(
        "| profile | nominal | goodput | fraction (≥ 90%) | RTT nominal | RTT measured: min / median of 9 | min ÷ nominal (±5%) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        if let Some(c) = &r.check {
            println!(
                "| {} | {:.3} Mbit/s | {:.3} Mbit/s | {:.1}% {} | {:.0} ms | {:.1} / {:.1} ms | {:.3} {} |",
                r.name,
                c.profile.bandwidth_bps as f64 / 1e6,
                c.goodput_bps / 1e6,
                c.bandwidth_fraction() * 100.0,
                pass(c.bandwidth_fraction() >= 0.9),
                c.profile.rtt.as_secs_f64() * 1e3,
                c.rtt_min.as_secs_f64() * 1e3,
                c.rtt.as_secs_f64() * 1e3,
                c.rtt_min_ratio(),
                pass((c.rtt_min_ratio() - 1.0).abs() <= 0.05)
            );
        }
    }
}

async fn run() {
    let args = parse_args();
    let started = Instant::now();
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into());
    let mut rows = Vec::new();
    for name in &args.profiles {
        let Some(p) = Profile::named(name) else {
            eprintln!(
                "thin_links: unknown profile {name} (known: {:?})",
                Profile::NAMES
            );
            std::process::exit(2);
        };
        rows.push(run_profile(&args, &p).await);
    }
    print(&rows, &args, &load, started.elapsed().as_secs_f64());
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!(
            "thin_links bench: nothing measured (run it with `cargo bench --workspace --bench \
             thin_links [-- --quick]`)"
        );
        return;
    }
    if cfg!(debug_assertions) {
        eprintln!("thin_links bench: needs a release build (cargo bench), not a debug build");
        std::process::exit(2);
    }
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(run());
}
