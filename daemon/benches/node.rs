//! Single-node benchmark: what one `tanoad` does per second, how fast it answers, what it keeps.
//!
//! Measures, on sled stores in temporary directories and at default settings:
//! 1. publishes per second through the real write path (`NodeCore::publish`: assign, validate,
//!    sign, store, audit, flush + fdatasync), one by one and with 64 publishers in flight (group
//!    commit);
//! 2. verify-and-store of pre-signed envelopes (`envelope::verify`, i.e. `verify_strict`, on 2
//!    threads feeding `Store::put_batch`, one final `sync`), with verification alone, storage
//!    alone, and the raw ed25519 `verify_strict` / `verify_batch` rates of this run as reference;
//! 3. indicator lookup latency (p50/p99/max) with 10^6 indicators stored, warm;
//! 4. bytes on disk per advisory, against the payload bytes;
//! 5. peak RSS and cold-start time of a real `tanoad` process holding 10^6 advisories.
//!
//! Prints progress on stderr and a markdown table on stdout: every figure with the ceiling of this
//! machine it is bounded by (`STACK.md`) and the fraction of it reached. Times and sizes, where a
//! smaller figure is better, give the fraction as floor ÷ measured.
//!
//! Run: `cargo bench -p tanoa-daemon --bench node`. `TANOA_BENCH_N` (default 1,000,000) sets the
//! size of the big stores; `TANOA_BENCH_N=20000` gives a quick run. `TANOA_BENCH_ONLY=1,2,5`
//! runs only some parts (2 includes 3 and the first row of 4; 5 the second row of 4);
//! `TANOA_BENCH_CACHE_MB` changes the sled cache of the in-process stores (1–3; `tanoad` in 5
//! runs with what its config says); `TANOA_BENCH_DATA=DIR` builds the data dir of 5 in DIR and
//! keeps it, or reuses it if DIR already holds one (for investigating start-up and memory).
//! After the load, 5 closes the store as `tanoad`'s clean shutdown does (`SledStore::
//! checkpoint`: sled writes its snapshot) and prints how long that took;
//! `TANOA_BENCH_NO_CHECKPOINT=1` skips it, so the 1st start replays the whole load's log (what
//! a start after a crash does).
//!
//! Verification is `envelope::verify` (`verify_strict`), the acceptance rule. There is no batch
//! fast path: ed25519-dalek's `verify_batch` is cofactorless with transcript-derived (so
//! grindable) coefficients and accepts a signature whose R has a small-order component with
//! probability up to 1/2, which `verify_strict` always rejects; making it exact would need a
//! torsion check of every R (a scalar multiplication), which costs what batching saves.
//! Must never: run under `cargo test` (it is a `harness = false` bench), or leave a `tanoad` or a
//! temporary directory behind.

#[path = "common/raw_sled.rs"]
mod raw_sled;

// The heap `tanoad` runs with (jemalloc and its settings), so the in-process figures and the
// raw sled ceilings are measured as the daemon would run them.
tanoa_daemon::tanoad_heap!();

use std::fmt::Write as _;
use std::fs::File;
use std::net::{IpAddr, Ipv6Addr};
use std::ops::Range;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use ed25519_dalek::Signature;
use sha2::{Digest, Sha256};
use tanoa_daemon::config::Config;
use tanoa_daemon::envelope::{
    self, Envelope, Keyring, PublicKeyRecord, SigningIdentity, Verified, pae,
};
use tanoa_daemon::model::{self, Advisory, Indicator, IndicatorKind, Limits, Severity, Tlp};
use tanoa_daemon::publish::NodeCore;
use tanoa_daemon::store::{IndicatorQuery, PutOutcome, SledConfig, SledStore, Store};
use tanoa_daemon::{client, keys};
use tanoa_proto::v1 as pb;

// ---------------------------------------------------------------------------------------------
// Ceilings of this machine (STACK.md), per second unless said otherwise.

const SIGN_1T: f64 = 67_800.0;
const STRICT_1T: f64 = 31_300.0;
const STRICT_2T: f64 = 60_900.0;
const BATCH_1T: f64 = 89_100.0;
const BATCH_2T: f64 = 177_000.0;
const SLED_FSYNC_EACH: f64 = 5_700.0;
const SLED_GROUP_100: f64 = 82_000.0;
/// One warm sled point get with 10^6 keys: 1 / 93k/s.
const SLED_GET_US: f64 = 1e6 / 93_000.0;
/// sled reopen with 10^6 keys, clean shutdown (upper end of 0.1–0.4 s).
const SLED_REOPEN_S: f64 = 0.4;
/// sled bytes on disk per value byte (10^6 × 1 KiB values).
const SLED_DISK_RATIO: f64 = 1.88;

/// sled key writes of a new realistic advisory: envelope, history, latest, by_modified and 5
/// indicator entries (`store::engine` layout; counters are written once per transaction).
const KEY_WRITES_REALISTIC: f64 = 9.0;

/// Targets of issue 2.
const TARGET_VERIFY_STORE: f64 = 0.30 * BATCH_2T;
const TARGET_P99_MS: f64 = 1.0;
const TARGET_RSS_MB: f64 = 300.0;
const TARGET_COLD_S: f64 = 3.0;
/// Target of issue 9: publishes per second with 64 in flight, each acknowledged after its
/// fdatasync.
const TARGET_PUBLISH_64: f64 = 8_000.0;

const MEMBER: &str = "ws-cert";
/// 2026-01-01T00:00:00Z.
const T0: i64 = 1_767_225_600_000;
const SOURCE: &str = "bench";
/// Envelopes per `put_batch` call / per verifier chunk.
const CHUNK: usize = 1024;
/// Publishers in flight for the group-commit figure.
const IN_FLIGHT: usize = 64;

// ---------------------------------------------------------------------------------------------
// Sample data: documentation ranges and *.example names only; every value is unique per `n`.

/// Deterministic pseudo-random numbers (splitmix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn ipv6_of(n: u64) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 0xa, 0, 0, 0, (n >> 16) as u16, n as u16)
}

fn cidr_net(n: u64) -> (u16, u16) {
    (0x100 + (n >> 16) as u16, n as u16)
}

fn cidr_of(n: u64) -> String {
    let (a, b) = cidr_net(n);
    format!("{}/64", Ipv6Addr::new(0x2001, 0xdb8, a, b, 0, 0, 0, 0))
}

/// An address inside `cidr_of(n)`.
fn ip_in_cidr(n: u64, host: u64) -> IpAddr {
    let (a, b) = cidr_net(n);
    IpAddr::V6(Ipv6Addr::new(
        0x2001,
        0xdb8,
        a,
        b,
        (host >> 48) as u16,
        (host >> 32) as u16,
        (host >> 16) as u16,
        host as u16 | 1,
    ))
}

fn value_of(kind: IndicatorKind, n: u64) -> String {
    match kind {
        IndicatorKind::Ipv6 => ipv6_of(n).to_string(),
        IndicatorKind::Cidr => cidr_of(n),
        IndicatorKind::Domain => format!("h{n:x}.c2.example"),
        IndicatorKind::Url => format!("https://d{n:x}.example/dl/{n:x}.bin"),
        _ => hex::encode(Sha256::digest(n.to_le_bytes())),
    }
}

/// The indicator kinds of a realistic advisory, in order.
const REALISTIC_KINDS: [IndicatorKind; 5] = [
    IndicatorKind::Ipv6,
    IndicatorKind::Cidr,
    IndicatorKind::Domain,
    IndicatorKind::Url,
    IndicatorKind::Sha256,
];

/// Kind of the single indicator of small advisory `n`.
fn small_kind(n: u64) -> IndicatorKind {
    [
        IndicatorKind::Ipv6,
        IndicatorKind::Domain,
        IndicatorKind::Sha256,
    ][(n % 3) as usize]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// Title, ~540-byte summary, 5 indicators, a CVE and a reference: about 1 KiB of payload.
    Realistic,
    /// Short title and summary, 1 indicator: about 250 bytes of payload.
    Small,
}

fn summary(n: u64) -> String {
    format!(
        "Since early 2026 the actor has operated a rotating set of command-and-control servers \
         behind compromised small-office routers, and sends spear-phishing mail with malicious \
         archive attachments to ministries and utilities across the Pacific. The lures \
         impersonate regional trade forums. Once opened, a loader fetches a second stage over \
         HTTPS from the listed URL, persists as a scheduled task and beacons every 90 seconds. \
         Block the listed indicators, hunt for the file hash, and report sightings to your \
         national CERT. Wave {n}."
    )
}

fn indicator(kind: IndicatorKind, n: u64) -> Indicator {
    Indicator {
        kind,
        value: value_of(kind, n),
        confidence: 80,
        valid_until_ms: None,
        note: String::new(),
    }
}

fn advisory(n: u64, shape: Shape) -> Advisory {
    let realistic = shape == Shape::Realistic;
    Advisory {
        id: format!("{MEMBER}-2026-{n:08}"),
        origin: MEMBER.to_string(),
        revision: 1,
        created_ms: T0 + n as i64,
        modified_ms: T0 + n as i64,
        valid_until_ms: None,
        tlp: Tlp::Green,
        audience: Vec::new(),
        title: format!("APT40 infrastructure wave {n}: C2 servers and phishing lures"),
        summary: if realistic {
            summary(n)
        } else {
            format!("C2 server of wave {n}.")
        },
        severity: Severity::High,
        actors: vec!["APT40".to_string()],
        cves: if realistic {
            vec!["CVE-2024-3400".to_string()]
        } else {
            Vec::new()
        },
        indicators: if realistic {
            REALISTIC_KINDS.iter().map(|k| indicator(*k, n)).collect()
        } else {
            vec![indicator(small_kind(n), n)]
        },
        references: if realistic {
            vec![format!("https://advisories.example/{MEMBER}/{n}")]
        } else {
            Vec::new()
        },
        withdrawn: false,
        withdrawn_reason: String::new(),
        extras: Vec::new(),
    }
}

/// The operator's draft of realistic advisory `n` (the daemon assigns id, revision and times).
fn draft(n: u64) -> model::Draft {
    let a = advisory(n, Shape::Realistic);
    model::Draft {
        id: None,
        tlp: model::Tlp::Green,
        audience: Vec::new(),
        title: a.title,
        summary: a.summary,
        severity: model::Severity::High,
        actors: a.actors,
        cves: a.cves,
        indicators: a.indicators,
        references: a.references,
        valid_until_ms: None,
        extras: Vec::new(),
    }
}

fn sign_range(
    id: &SigningIdentity,
    ns: Range<u64>,
    shape: Shape,
    limits: &Limits,
) -> Result<Vec<Verified<Advisory>>> {
    ns.map(|n| {
        let mut a = advisory(n, shape);
        model::normalize_advisory(&mut a);
        id.sign(a, limits)
            .with_context(|| format!("signing sample advisory {n}"))
    })
    .collect()
}

/// Signs advisories `ns` on 2 threads, in order.
fn sign_all(
    id: &SigningIdentity,
    ns: Range<u64>,
    shape: Shape,
    limits: &Limits,
) -> Result<Vec<Verified<Advisory>>> {
    let mid = ns.start + (ns.end - ns.start) / 2;
    std::thread::scope(|s| {
        let first = s.spawn(|| sign_range(id, ns.start..mid, shape, limits));
        let second = sign_range(id, mid..ns.end, shape, limits)?;
        let mut all = first
            .join()
            .map_err(|_| anyhow!("signing thread panicked"))??;
        all.extend(second);
        Ok(all)
    })
}

fn put_all(store: &dyn Store, items: &[Verified<Advisory>]) -> Result<usize> {
    let now = tanoa_daemon::now_ms();
    let mut stored = 0;
    for chunk in items.chunks(CHUNK) {
        let batch: Vec<(&Verified<Advisory>, &str)> = chunk.iter().map(|v| (v, SOURCE)).collect();
        stored += count_stored(&store.put_batch(&batch, now)?);
    }
    Ok(stored)
}

fn count_stored(outcomes: &[PutOutcome]) -> usize {
    outcomes
        .iter()
        .filter(|o| matches!(o, PutOutcome::Stored { .. }))
        .count()
}

/// Sled config of the in-process stores: the default, or `TANOA_BENCH_CACHE_MB` MiB of cache.
fn sled_config() -> SledConfig {
    std::env::var("TANOA_BENCH_CACHE_MB")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map_or_else(SledConfig::default, |mb| SledConfig {
            cache_capacity_bytes: mb * 1024 * 1024,
        })
}

fn open_store(path: &Path) -> Result<SledStore> {
    SledStore::open(path, &sled_config())
        .with_context(|| format!("opening sled store {}", path.display()))
}

/// Bytes allocated on disk under `dir` (st_blocks), recursively.
fn allocated_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => allocated_bytes(&e.path()),
            Ok(m) => m.blocks() * 512,
            Err(_) => 0,
        })
        .sum()
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                files_under(&p, out);
            } else {
                out.push(p);
            }
        }
    }
}

/// Drops the page-cache pages of every file under `dir` (GNU dd `iflag=nocache`, which calls
/// posix_fadvise DONTNEED on the clean pages of that file only, not the whole machine's cache).
fn evict_page_cache(dir: &Path) -> Result<()> {
    let mut files = Vec::new();
    files_under(dir, &mut files);
    for f in files {
        let status = Command::new("dd")
            .arg(format!("if={}", f.display()))
            .args(["iflag=nocache", "count=0", "status=none"])
            .status()
            .context("running dd to evict the store from the page cache")?;
        ensure!(
            status.success(),
            "dd iflag=nocache on {} failed",
            f.display()
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Report.

struct Row {
    name: String,
    value: String,
    ceiling: String,
    fraction: String,
    target: String,
    met: String,
}

#[derive(Default)]
struct Report {
    rows: Vec<Row>,
    notes: Vec<String>,
}

fn k(x: f64) -> String {
    if x >= 10_000.0 {
        format!("{:.1}k/s", x / 1000.0)
    } else {
        format!("{x:.0}/s")
    }
}

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn yes(ok: bool) -> String {
    if ok { "yes" } else { "**no**" }.to_string()
}

impl Report {
    fn row(&mut self, name: &str, value: String, ceiling: String, fraction: String) -> &mut Row {
        eprintln!("  -> {name}: {value} ({fraction} of {ceiling})");
        self.rows.push(Row {
            name: name.to_string(),
            value,
            ceiling,
            fraction,
            target: "—".into(),
            met: "—".into(),
        });
        let last = self.rows.len() - 1;
        &mut self.rows[last]
    }

    /// A throughput row against one ceiling.
    fn rate(&mut self, name: &str, per_s: f64, ceiling_name: &str, ceiling: f64) -> &mut Row {
        self.row(
            name,
            k(per_s),
            format!("{} ({ceiling_name})", k(ceiling)),
            pct(per_s / ceiling),
        )
    }

    /// A ceiling row of this run (raw sled): its rate, and `measured` (what the row named `of`
    /// reached) as a fraction of it.
    fn ceiling(&mut self, name: &str, per_s: f64, of: &str, measured: f64) -> &mut Row {
        self.row(
            name,
            k(per_s),
            format!("{} ({of} ÷ this)", k(per_s)),
            pct(measured / per_s),
        )
    }

    /// A 2-thread verification-side row: fractions of the strict and the batch ceilings.
    fn two_threads(&mut self, name: &str, per_s: f64) -> &mut Row {
        self.row(
            name,
            k(per_s),
            format!(
                "{} verify_strict 2T · {} batch 2T",
                k(STRICT_2T),
                k(BATCH_2T)
            ),
            format!("{} · {}", pct(per_s / STRICT_2T), pct(per_s / BATCH_2T)),
        )
    }

    fn print(&self, machine: &str) {
        println!();
        println!("{machine}");
        println!();
        println!("| measurement | value | ceiling | fraction | target | met? |");
        println!("|---|---|---|---|---|---|");
        for r in &self.rows {
            println!(
                "| {} | {} | {} | {} | {} | {} |",
                r.name, r.value, r.ceiling, r.fraction, r.target, r.met
            );
        }
        println!();
        for n in &self.notes {
            println!("- {n}");
        }
    }
}

impl Row {
    fn target(&mut self, target: String, met: bool) {
        self.target = target;
        self.met = yes(met);
    }
}

/// CPU seconds (user + system) used by this process so far (`/proc/self/stat`, USER_HZ = 100).
fn cpu_s() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let f: Vec<f64> = after
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    (f.get(11).copied().unwrap_or(0.0) + f.get(12).copied().unwrap_or(0.0)) / 100.0
}

/// Wall time and CPU time of a phase.
struct Phase {
    wall: Instant,
    cpu: f64,
}

impl Phase {
    fn start() -> Phase {
        Phase {
            cpu: cpu_s(),
            wall: Instant::now(),
        }
    }

    /// (elapsed, " — CPU x µs/item, y cores busy") for `items` items.
    fn end(&self, items: u64) -> (Duration, String) {
        let wall = self.wall.elapsed();
        let cpu = cpu_s() - self.cpu;
        (
            wall,
            format!(
                " — CPU {:.0} µs/item, {:.1} cores busy",
                cpu * 1e6 / items.max(1) as f64,
                cpu / wall.as_secs_f64()
            ),
        )
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

// ---------------------------------------------------------------------------------------------
// 1. Publishes through NodeCore::publish.

fn bench_publish(
    rt: &tokio::runtime::Runtime,
    n_seq: u64,
    n_conc: u64,
    r: &mut Report,
) -> Result<()> {
    let tmp = tempfile::Builder::new().prefix("tanoa-bench-").tempdir()?;
    let key = keys::generate()?;
    let store: Arc<dyn Store> = Arc::new(open_store(&tmp.path().join("store"))?);
    let core = Arc::new(NodeCore::new(
        SigningIdentity::new(MEMBER, key),
        "Bench CERT",
        [],
        Limits::default(),
        Arc::clone(&store),
    ));

    eprintln!("[1a] {n_seq} publishes one by one (each waits for its fdatasync)");
    let phase = Phase::start();
    rt.block_on(async {
        for i in 0..n_seq {
            core.publish(&draft(i), "bench").await?;
        }
        anyhow::Ok(())
    })?;
    let (seq, cpu) = phase.end(n_seq);
    let row = r.rate(
        "1a publish (sign+store+fdatasync), one by one",
        n_seq as f64 / seq.as_secs_f64(),
        "sled insert + fdatasync each",
        SLED_FSYNC_EACH,
    );
    row.value.push_str(&cpu);

    eprintln!("[1b] {n_conc} publishes, {IN_FLIGHT} in flight (group commit)");
    let phase = Phase::start();
    let mut lat = rt.block_on(async {
        let next = Arc::new(AtomicU64::new(0));
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..IN_FLIGHT {
            let (core, next) = (Arc::clone(&core), Arc::clone(&next));
            set.spawn(async move {
                let mut lat = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n_conc {
                        return anyhow::Ok(lat);
                    }
                    let t = Instant::now();
                    core.publish(&draft(1_000_000_000 + i), "bench").await?;
                    lat.push(t.elapsed());
                }
            });
        }
        let mut all = Vec::new();
        while let Some(done) = set.join_next().await {
            all.extend(done??);
        }
        anyhow::Ok(all)
    })?;
    let (conc, cpu) = phase.end(n_conc);
    lat.sort_unstable();
    let per_s = n_conc as f64 / conc.as_secs_f64();
    let row = r.rate(
        "1b publish, 64 in flight (group commit)",
        per_s,
        "sled group commit of 100",
        SLED_GROUP_100,
    );
    write!(
        row.value,
        " (latency p50 {:.1} ms, p99 {:.1} ms){cpu}",
        ms(percentile(&lat, 0.50)),
        ms(percentile(&lat, 0.99))
    )?;
    row.target(
        format!("≥ {} (issue 9)", k(TARGET_PUBLISH_64)),
        per_s >= TARGET_PUBLISH_64,
    );
    // The ceilings of this run: raw sled (no Tanoa code) writing the same keys per advisory.
    let probe = advisory(0, Shape::Realistic);
    let keys_per = 4 + probe.indicators.len() + probe.cves.len() + probe.actors.len() + 1;
    let env_bytes = draft_envelope_bytes(&core)?;
    let raw_dir = tmp.path().join("raw");
    let cache = sled_config().cache_capacity_bytes;
    // Raw sled writing `n` advisories of this shape into `dir`, `group` a batch, each synced.
    let raw_run = |dir: &str, n, group, order| {
        raw_sled::raw_sled_rate(
            &raw_dir.join(dir),
            raw_sled::Run {
                n,
                keys: keys_per,
                env_bytes,
                group,
                cache_bytes: cache,
                sync: raw_sled::Sync::EachBatch,
                order,
            },
        )
    };
    let raw_each = raw_run("each", n_seq, 1, raw_sled::Keys::Sequential)?;
    let raw_group = raw_run(
        "group",
        n_conc,
        IN_FLIGHT as u64,
        raw_sled::Keys::Sequential,
    )?;
    let raw_group_random = raw_run(
        "group-random",
        n_conc,
        IN_FLIGHT as u64,
        raw_sled::Keys::Random,
    )?;
    r.ceiling(
        "1a′ ceiling of this run: raw sled, same keys, fdatasync each",
        raw_each,
        "1a",
        n_seq as f64 / seq.as_secs_f64(),
    );
    r.ceiling(
        "1b′ ceiling of this run: raw sled, same keys, one fdatasync per 64",
        raw_group,
        "1b",
        per_s,
    );
    let row = r.ceiling(
        "1b″ same as 1b′, keys in random order",
        raw_group_random,
        "1b",
        per_s,
    );
    row.target(
        format!("raw sled itself ≥ {} (issue 9)", k(TARGET_PUBLISH_64)),
        raw_group_random >= TARGET_PUBLISH_64,
    );
    r.notes.push(format!(
        "1a′/1b′ write {keys_per} keys per advisory (envelope {env_bytes} B, history, latest, \
         by_modified, one per indicator, CVE and actor, the audit entry: the store's layout) \
         with sled alone, then flush + fdatasync of `db`; their fraction column is the \
         publish rate of 1a/1b ÷ this ceiling. Their keys are sequential (every batch \
         appends to the rightmost leaf); 1b″ writes the same number and sizes of keys at \
         random places, as a store's item ids, advisory ids and indicators fall: what sled \
         itself sustains for the store's write pattern."
    ));
    let counts = store.counts()?;
    ensure!(
        counts.advisories == n_seq + n_conc,
        "expected {} advisories after the publishes, the store holds {}",
        n_seq + n_conc,
        counts.advisories
    );
    r.notes.push(format!(
        "1b is also bounded by signing: {} on 1 thread, {} on 2 (STACK.md); 1b = {} of the \
         2-thread signing rate.",
        k(SIGN_1T),
        k(2.0 * SIGN_1T),
        pct(per_s / (2.0 * SIGN_1T))
    ));
    Ok(())
}

/// Bytes of one published realistic envelope (payload + key id + signature), as stored.
fn draft_envelope_bytes(core: &NodeCore) -> Result<usize> {
    let mut a = advisory(0, Shape::Realistic);
    model::normalize_advisory(&mut a);
    let v = core.identity().sign(a, &Limits::default())?;
    let e = v.envelope();
    Ok(e.payload.len() + e.key_id.len() + e.signature.len())
}

// ---------------------------------------------------------------------------------------------
// 2. Verify-and-store; 3. lookups; 4. disk bytes (realistic advisories).

/// `envelope::verify` of every envelope on `threads` threads.
fn verify_on(
    envs: Vec<Envelope>,
    threads: usize,
    keyring: &Keyring,
    limits: &Limits,
) -> Result<(Duration, Vec<Verified<Advisory>>)> {
    let per = envs.len().div_ceil(threads.max(1)).max(1);
    let mut parts = Vec::new();
    let mut rest = envs;
    while rest.len() > per {
        let tail = rest.split_off(per);
        parts.push(rest);
        rest = tail;
    }
    parts.push(rest);
    let t = Instant::now();
    let out = std::thread::scope(|s| {
        let handles: Vec<_> = parts
            .into_iter()
            .map(|part| {
                s.spawn(move || {
                    part.into_iter()
                        .map(|e| envelope::verify(e, keyring, limits))
                        .collect::<Result<Vec<_>, _>>()
                })
            })
            .collect();
        let mut all = Vec::new();
        for h in handles {
            all.extend(h.join().map_err(|_| anyhow!("verifier panicked"))??);
        }
        anyhow::Ok(all)
    })?;
    Ok((t.elapsed(), out))
}

/// Raw ed25519 rates on these envelopes: `verify_strict` one at a time, and `verify_batch` of
/// 256, each on `threads` threads. Returns signatures per second.
fn raw_rates(envs: &[Envelope], threads: usize, keyring: &Keyring) -> Result<(f64, f64)> {
    let key = keyring
        .get(&envs.first().context("no envelopes")?.key_id)
        .context("bench key missing from the keyring")?
        .key;
    let msgs: Vec<Vec<u8>> = envs.iter().map(|e| pae(&e.payload)).collect();
    let sigs: Vec<Signature> = envs
        .iter()
        .map(|e| {
            <[u8; 64]>::try_from(e.signature.as_slice())
                .map(|b| Signature::from_bytes(&b))
                .map_err(|_| anyhow!("signature is not 64 bytes"))
        })
        .collect::<Result<_>>()?;
    let per = msgs.len().div_ceil(threads);
    let strict = {
        let t = Instant::now();
        std::thread::scope(|s| {
            let hs: Vec<_> = msgs
                .chunks(per)
                .zip(sigs.chunks(per))
                .map(|(m, g)| {
                    s.spawn(move || {
                        m.iter()
                            .zip(g)
                            .all(|(m, g)| key.verify_strict(m, g).is_ok())
                    })
                })
                .collect();
            hs.into_iter()
                .all(|h| h.join().unwrap_or(false))
                .then_some(())
                .context("a raw verify_strict failed")
        })?;
        msgs.len() as f64 / t.elapsed().as_secs_f64()
    };
    let batch = {
        let keys = vec![key; 256];
        let t = Instant::now();
        std::thread::scope(|s| {
            let hs: Vec<_> = msgs
                .chunks(per)
                .zip(sigs.chunks(per))
                .map(|(m, g)| {
                    let keys = &keys;
                    s.spawn(move || {
                        m.chunks(256).zip(g.chunks(256)).all(|(m, g)| {
                            let m: Vec<&[u8]> = m.iter().map(Vec::as_slice).collect();
                            ed25519_dalek::verify_batch(&m, g, &keys[..g.len()]).is_ok()
                        })
                    })
                })
                .collect();
            hs.into_iter()
                .all(|h| h.join().unwrap_or(false))
                .then_some(())
                .context("a raw verify_batch failed")
        })?;
        msgs.len() as f64 / t.elapsed().as_secs_f64()
    };
    Ok((strict, batch))
}

/// Verifies on 2 threads, in chunks, feeding a storing thread through a bounded channel; one
/// final `sync`. Returns (elapsed, stored).
fn pipeline(
    envs: Vec<Envelope>,
    store: &SledStore,
    keyring: &Keyring,
    limits: &Limits,
) -> Result<(Duration, usize)> {
    let mut first = envs;
    let second = first.split_off(first.len() / 2);
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Verified<Advisory>>>(8);
    let t = Instant::now();
    let stored = std::thread::scope(|s| {
        let handles: Vec<_> = [first, second]
            .into_iter()
            .map(|part| {
                let tx = tx.clone();
                s.spawn(move || {
                    let mut it = part.into_iter();
                    loop {
                        let chunk = it
                            .by_ref()
                            .take(CHUNK)
                            .map(|e| envelope::verify(e, keyring, limits))
                            .collect::<Result<Vec<_>, _>>()?;
                        if chunk.is_empty() {
                            return anyhow::Ok(());
                        }
                        tx.send(chunk)
                            .map_err(|_| anyhow!("the storing thread stopped"))?;
                    }
                })
            })
            .collect();
        drop(tx);
        let now = tanoa_daemon::now_ms();
        let mut stored = 0;
        for chunk in rx {
            let batch: Vec<(&Verified<Advisory>, &str)> =
                chunk.iter().map(|v| (v, SOURCE)).collect();
            stored += count_stored(&store.put_batch(&batch, now)?);
        }
        for h in handles {
            h.join().map_err(|_| anyhow!("verifier panicked"))??;
        }
        store.sync()?;
        anyhow::Ok(stored)
    })?;
    Ok((t.elapsed(), stored))
}

fn bench_verify_store_lookup(n_verify: u64, n_lookup_adv: u64, r: &mut Report) -> Result<()> {
    let tmp = tempfile::Builder::new().prefix("tanoa-bench-").tempdir()?;
    let identity = SigningIdentity::new(MEMBER, keys::generate()?);
    let limits = Limits::default();
    let mut keyring = Keyring::new();
    keyring.insert(PublicKeyRecord::new(
        MEMBER,
        identity.verifying_key(),
        None,
        None,
    ));

    eprintln!("[2] pre-signing {n_verify} realistic advisories (not timed)");
    let envs: Vec<Envelope> = sign_all(&identity, 0..n_verify, Shape::Realistic, &limits)?
        .into_iter()
        .map(|v| v.envelope().clone())
        .collect();
    let mut payload_bytes: u64 = envs.iter().map(|e| e.payload.len() as u64).sum();
    let mut envelope_bytes: u64 = envs.iter().map(|e| e.encode().len() as u64).sum();
    r.notes.push(format!(
        "Realistic advisory: {:.0} payload bytes on average ({:.0} as an encoded envelope), 5 \
         indicators (ipv6, cidr, domain, url, sha256), ~540-byte summary.",
        payload_bytes as f64 / n_verify as f64,
        envelope_bytes as f64 / n_verify as f64
    ));

    let raw_n = envs.len().min(40_000);
    eprintln!("[2] raw ed25519 rates on {raw_n} of them (this run's ceilings)");
    let (strict1, batch1) = raw_rates(&envs[..raw_n], 1, &keyring)?;
    let (strict2, batch2) = raw_rates(&envs[..raw_n], 2, &keyring)?;
    r.rate(
        "2 raw verify_strict, 1 thread (this run)",
        strict1,
        "verify_strict 1 thread",
        STRICT_1T,
    );
    r.rate(
        "2 raw verify_strict, 2 threads (this run)",
        strict2,
        "verify_strict 2 threads",
        STRICT_2T,
    );
    r.rate(
        "2 raw verify_batch 256, 1 thread (this run)",
        batch1,
        "batch verify 1 thread",
        BATCH_1T,
    );
    r.rate(
        "2 raw verify_batch 256, 2 threads (this run)",
        batch2,
        "batch verify 2 threads",
        BATCH_2T,
    );

    let one_n = envs.len().min(30_000);
    eprintln!("[2] envelope::verify alone, 1 thread, {one_n} envelopes");
    let (t1, _) = verify_on(envs[..one_n].to_vec(), 1, &keyring, &limits)?;
    let v1 = one_n as f64 / t1.as_secs_f64();
    r.rate(
        "2 envelope::verify alone, 1 thread",
        v1,
        "verify_strict 1 thread",
        STRICT_1T,
    );

    eprintln!(
        "[2] envelope::verify alone, 2 threads, {} envelopes",
        envs.len()
    );
    let envs2 = envs.clone();
    let phase = Phase::start();
    let (t2, verified) = verify_on(envs2, 2, &keyring, &limits)?;
    let verify_cpu_us = (cpu_s() - phase.cpu) * 1e6 / envs.len() as f64;
    let (_, cpu) = phase.end(envs.len() as u64);
    let v2 = envs.len() as f64 / t2.as_secs_f64();
    let row = r.two_threads("2 envelope::verify alone, 2 threads", v2);
    row.value.push_str(&cpu);

    eprintln!(
        "[2] store alone: put_batch of {} verified items + sync",
        verified.len()
    );
    let store_a_dir = tmp.path().join("store-alone");
    let store_a = open_store(&store_a_dir)?;
    let phase = Phase::start();
    let stored = put_all(&store_a, &verified)?;
    store_a.sync()?;
    let store_cpu_us = (cpu_s() - phase.cpu) * 1e6 / stored.max(1) as f64;
    let (ts, cpu) = phase.end(stored as u64);
    ensure!(
        stored == verified.len(),
        "store alone stored {stored} of {}",
        verified.len()
    );
    drop(verified);
    let s_alone = stored as f64 / ts.as_secs_f64();
    let writes = s_alone * KEY_WRITES_REALISTIC;
    let row = r.two_threads("2 store alone (put_batch + 1 sync)", s_alone);
    write!(
        row.value,
        " = {} sled key writes ({KEY_WRITES_REALISTIC} per advisory, {} of sled's {} group \
         commit){cpu}",
        k(writes),
        pct(writes / SLED_GROUP_100),
        k(SLED_GROUP_100)
    )?;
    drop(store_a);
    std::fs::remove_dir_all(&store_a_dir).ok();

    eprintln!(
        "[2] pipeline: verify on 2 threads -> put_batch -> sync, {} envelopes",
        envs.len()
    );
    let store = open_store(&tmp.path().join("store"))?;
    let phase = Phase::start();
    let (tp, stored) = pipeline(envs, &store, &keyring, &limits)?;
    let (_, cpu) = phase.end(stored as u64);
    ensure!(
        stored as u64 == n_verify,
        "pipeline stored {stored} of {n_verify}"
    );
    let vs = stored as f64 / tp.as_secs_f64();
    let row = r.two_threads("2 verify-and-store pipeline (2 verifiers + storer)", vs);
    row.value.push_str(&cpu);
    row.target(
        format!("≥ 30% of batch 2T ({})", k(TARGET_VERIFY_STORE)),
        vs >= TARGET_VERIFY_STORE,
    );
    r.notes.push(format!(
        "Pipeline arithmetic (CPU time): verify costs {verify_cpu_us:.1} µs and store \
         {store_cpu_us:.1} µs of CPU per envelope, so 2 fully available cores cannot do more \
         than 2 / ({verify_cpu_us:.1} + {store_cpu_us:.1}) µs = {} here; the store alone caps \
         it at {}.",
        k(2e6 / (verify_cpu_us + store_cpu_us)),
        k(s_alone)
    ));

    // Grow to n_lookup_adv realistic advisories (5 indicators each) for the lookups.
    let total = n_verify.max(n_lookup_adv);
    let mut start = n_verify;
    while start < total {
        let end = (start + 20_000).min(total);
        let items = sign_all(&identity, start..end, Shape::Realistic, &limits)?;
        payload_bytes += items
            .iter()
            .map(|v| v.envelope().payload.len() as u64)
            .sum::<u64>();
        envelope_bytes += items
            .iter()
            .map(|v| v.envelope().encode().len() as u64)
            .sum::<u64>();
        put_all(&store, &items)?;
        eprintln!("[3] lookup store: {end}/{total} advisories");
        start = end;
    }
    store.sync()?;
    let counts = store.counts()?;
    ensure!(
        counts.advisories == total,
        "lookup store holds {} advisories",
        counts.advisories
    );

    // 4. Disk bytes per advisory (realistic).
    let disk = store.disk_bytes();
    let alloc = allocated_bytes(&tmp.path().join("store"));
    let per = disk as f64 / total as f64;
    let pay = payload_bytes as f64 / total as f64;
    let ratio = per / pay;
    r.row(
        "4 disk bytes per realistic advisory (disk_bytes / count)",
        format!(
            "{per:.0} B = {ratio:.2}× payload ({pay:.0} B); {:.2}× envelope; allocated {:.0} B",
            per / (envelope_bytes as f64 / total as f64),
            alloc as f64 / total as f64
        ),
        format!("{SLED_DISK_RATIO}× value (sled, 1 KiB values)"),
        format!(
            "{SLED_DISK_RATIO} ÷ {ratio:.2} = {:.2}",
            SLED_DISK_RATIO / ratio
        ),
    );

    // 3. Lookups.
    let indicators = counts.indicators;
    eprintln!("[3] lookups with {indicators} indicators stored (warm-up, then timed)");
    let kinds = [
        IndicatorKind::Ipv6,
        IndicatorKind::Domain,
        IndicatorKind::Url,
        IndicatorKind::Sha256,
    ];
    let present = |rng: &mut Rng| {
        let kind = kinds[rng.below(kinds.len() as u64) as usize];
        IndicatorQuery::Exact(kind, value_of(kind, rng.below(total)))
    };
    let absent = |rng: &mut Rng| {
        let kind = kinds[rng.below(kinds.len() as u64) as usize];
        IndicatorQuery::Exact(
            kind,
            value_of(kind, total + 1_000_000 + rng.below(1_000_000)),
        )
    };
    let in_cidr = |rng: &mut Rng| {
        let n = rng.below(total);
        IndicatorQuery::Ip(ip_in_cidr(n, rng.next()))
    };
    type Gen<'a> = &'a dyn Fn(&mut Rng) -> IndicatorQuery;
    let sets: [(&str, Gen<'_>, bool); 3] = [
        ("exact, present", &present, true),
        ("exact, absent", &absent, false),
        ("IP in CIDR (Ip query)", &in_cidr, true),
    ];
    let mut warm = Rng(7);
    for (_, gen_q, _) in &sets {
        for _ in 0..10_000 {
            store.search(&gen_q(&mut warm))?;
        }
    }
    let mut rng = Rng(42);
    for (name, gen_q, hit) in &sets {
        let mut lat = Vec::with_capacity(10_000);
        for _ in 0..10_000 {
            let q = gen_q(&mut rng);
            let t = Instant::now();
            let found = store.search(&q)?;
            lat.push(t.elapsed());
            ensure!(
                found.is_empty() != *hit,
                "lookup {q:?} found {} matches",
                found.len()
            );
        }
        lat.sort_unstable();
        let (p50, p99, max) = (
            percentile(&lat, 0.50),
            percentile(&lat, 0.99),
            percentile(&lat, 1.0),
        );
        let row = r.row(
            &format!("3 lookup {name}, {indicators} indicators, p50 / p99 / max"),
            format!("{:.1} / {:.1} / {:.0} µs", us(p50), us(p99), us(max)),
            format!("1 sled get ≈ {SLED_GET_US:.1} µs (93k/s)"),
            format!("floor ÷ p50 = {:.2}", SLED_GET_US / us(p50)),
        );
        row.target(
            format!("p99 ≤ {TARGET_P99_MS} ms"),
            ms(p99) <= TARGET_P99_MS,
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 5. A real tanoad holding N advisories.

struct DaemonRun {
    ready: Duration,
    /// Bytes the process had read from disk (not the page cache) when it first answered.
    read_at_ready: u64,
    rss_at_ready_kb: u64,
    /// VmHWM after Status, List, searches and gets, before the full-scan List.
    hwm_before_scan_kb: u64,
    hwm_kb: u64,
    rss_kb: u64,
    status_advisories: u64,
    search: Vec<Duration>,
    text_list: Duration,
    exit: String,
}

fn proc_status_kb(pid: u32, field: &str) -> Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.trim_start_matches(':').split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("no {field} in /proc/{pid}/status"))
}

/// `read_bytes` of `/proc/<pid>/io`: bytes the process caused to be read from the disk.
fn proc_io_read_bytes(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/io"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("read_bytes:"))
        .and_then(|v| v.trim().parse().ok())
}

fn stop(child: &mut Child) -> Result<String> {
    if let Some(st) = child.try_wait()? {
        return Ok(format!("had already exited: {st}"));
    }
    let pid = child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status()?;
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(30) {
        if let Some(st) = child.try_wait()? {
            return Ok(format!("{st} after SIGTERM ({:.0} ms)", ms(t.elapsed())));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill()?;
    child.wait()?;
    Ok("killed: did not stop within 30 s of SIGTERM".into())
}

fn run_tanoad(
    rt: &tokio::runtime::Runtime,
    config_path: &Path,
    socket: &Path,
    log: &Path,
    total: u64,
) -> Result<DaemonRun> {
    let log_file = File::create(log)?;
    let t0 = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tanoad"))
        .arg("--config")
        .arg(config_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .context("spawning tanoad")?;
    let pid = child.id();
    let work = rt.block_on(async {
        let (mut c, status) = loop {
            if let Some(st) = child.try_wait()? {
                bail!(
                    "tanoad exited ({st}) before answering; its log:\n{}",
                    std::fs::read_to_string(log).unwrap_or_default()
                );
            }
            ensure!(
                t0.elapsed() < Duration::from_secs(120),
                "tanoad did not answer within 120 s"
            );
            if let Ok(mut c) = client::connect_unix(socket).await
                && let Ok(st) = c.status(pb::StatusRequest {}).await
            {
                break (c, st.into_inner());
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        let ready = t0.elapsed();
        let read_at_ready = proc_io_read_bytes(pid).unwrap_or(0);
        let rss_at_ready = proc_status_kb(pid, "VmRSS")?;
        eprintln!(
            "[5] tanoad answered Status after {:.0} ms ({:.0} MB read from disk)",
            ms(ready),
            read_at_ready as f64 / 1e6
        );
        let listed = c
            .list(pb::ListRequest {
                limit: 100,
                ..Default::default()
            })
            .await?
            .into_inner();
        ensure!(
            listed.advisories.len() == 100.min(total as usize),
            "List returned {}",
            listed.advisories.len()
        );
        let mut rng = Rng(99);
        let mut search = Vec::with_capacity(1000);
        for _ in 0..1000 {
            let n = rng.below(total);
            let kind = small_kind(n);
            let t = Instant::now();
            let hits = c
                .search_indicator(pb::SearchIndicatorRequest {
                    value: value_of(kind, n),
                    kind: model::wire::kind_to_proto(kind) as i32,
                })
                .await?
                .into_inner();
            search.push(t.elapsed());
            ensure!(
                hits.hits.len() == 1,
                "search of advisory {n}'s indicator: {} hits",
                hits.hits.len()
            );
        }
        for a in &listed.advisories {
            let got = c
                .get(pb::GetRequest {
                    id: a.item_id.clone(),
                })
                .await?
                .into_inner();
            ensure!(
                got.verification.as_ref().is_some_and(|v| v.valid),
                "Get {} did not verify",
                a.item_id
            );
        }
        let hwm_before_scan = proc_status_kb(pid, "VmHWM")?;
        let t = Instant::now();
        let none = c
            .list(pb::ListRequest {
                text: "no advisory has this title".into(),
                limit: 10,
                ..Default::default()
            })
            .await?
            .into_inner();
        let text_list = t.elapsed();
        ensure!(none.advisories.is_empty(), "text List matched something");
        anyhow::Ok((
            (ready, read_at_ready, rss_at_ready, hwm_before_scan),
            status.advisories,
            search,
            text_list,
        ))
    });
    let measured = match work {
        Ok(w) => (
            w,
            proc_status_kb(pid, "VmHWM"),
            proc_status_kb(pid, "VmRSS"),
        ),
        Err(e) => {
            let _ = stop(&mut child);
            return Err(e);
        }
    };
    let exit = stop(&mut child)?;
    let (
        (
            (ready, read_at_ready, rss_at_ready_kb, hwm_before_scan_kb),
            status_advisories,
            mut search,
            text_list,
        ),
        hwm,
        rss,
    ) = measured;
    search.sort_unstable();
    Ok(DaemonRun {
        ready,
        read_at_ready,
        rss_at_ready_kb,
        hwm_before_scan_kb,
        hwm_kb: hwm?,
        rss_kb: rss?,
        status_advisories,
        search,
        text_list,
        exit,
    })
}

/// Writes a member (key, config) into `dir` and loads `total` small signed advisories into the
/// store its config names, as `tanoad` would find them. Returns the disk bytes after the load.
fn build_data_dir(dir: &Path, total: u64, r: &mut Report) -> Result<u64> {
    std::fs::DirBuilder::new()
        .mode(0o700)
        .recursive(true)
        .create(dir.join("keys"))?;
    let key = keys::generate()?;
    keys::write_key_file(&dir.join(format!("keys/{MEMBER}.key")), MEMBER, &key)?;
    let config_path = dir.join("tanoad.toml");
    std::fs::write(&config_path, Config::example(MEMBER, "Bench CERT"))?;
    let config = Config::load(&config_path).map_err(|e| anyhow!("{e}"))?;
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&config.storage.data_dir)?;
    let identity = SigningIdentity::new(MEMBER, key);

    eprintln!("[5] building a data dir with {total} small signed advisories (1 indicator each)");
    let store = SledStore::open(&config.storage.store_path(), &config.storage.sled_config())?;
    let phase = Phase::start();
    let (mut payload, mut start) = (0u64, 0u64);
    while start < total {
        let end = (start + 50_000).min(total);
        let items = sign_all(&identity, start..end, Shape::Small, &config.limits)?;
        payload += items
            .iter()
            .map(|v| v.envelope().payload.len() as u64)
            .sum::<u64>();
        put_all(&store, &items)?;
        if end % 200_000 == 0 || end == total {
            eprintln!(
                "[5]   {end}/{total} ({:.0} s)",
                phase.wall.elapsed().as_secs_f64()
            );
        }
        start = end;
    }
    store.sync()?;
    let (build, cpu) = phase.end(total);
    let disk = store.disk_bytes();
    ensure!(
        store.counts()?.advisories == total,
        "data dir holds the wrong number of advisories"
    );
    drop(store);
    if std::env::var_os("TANOA_BENCH_NO_CHECKPOINT").is_none() {
        // What `tanoad` does after a clean shutdown: reopen and close, so sled writes its
        // snapshot and the next start does not replay the load's log.
        let took =
            SledStore::checkpoint(&config.storage.store_path(), &config.storage.sled_config())?;
        eprintln!(
            "[5] clean close: sled snapshot written in {:.2} s",
            took.as_secs_f64()
        );
        r.row(
            &format!("5 clean close after the load of {total}: sled snapshot (tanoad's shutdown)"),
            format!("{:.2} s", took.as_secs_f64()),
            "—".into(),
            "—".into(),
        );
    } else {
        eprintln!("[5] no clean close (TANOA_BENCH_NO_CHECKPOINT): the 1st start replays the load");
    }
    let per = disk as f64 / total as f64;
    let pay = payload as f64 / total as f64;
    r.row(
        &format!("4 disk bytes per small advisory ({total} stored)"),
        format!("{per:.0} B = {:.2}× payload ({pay:.0} B)", per / pay),
        format!("{SLED_DISK_RATIO}× value (sled, 1 KiB values)"),
        format!(
            "{SLED_DISK_RATIO} ÷ {:.2} = {:.2}",
            per / pay,
            SLED_DISK_RATIO / (per / pay)
        ),
    );
    let row = r.rate(
        &format!("5 bulk load of {total} small (sign on 2 threads, then put_batch)"),
        total as f64 / build.as_secs_f64(),
        "sign 2 threads",
        2.0 * SIGN_1T,
    );
    row.value.push_str(&cpu);
    Ok(disk)
}

/// Section 5. With `TANOA_BENCH_DATA=DIR`, the data dir is built in DIR and kept, or reused if
/// DIR already holds one (then `total` must match what it holds).
fn bench_daemon(rt: &tokio::runtime::Runtime, total: u64, r: &mut Report) -> Result<()> {
    let kept = std::env::var_os("TANOA_BENCH_DATA").map(PathBuf::from);
    let tmp = match kept {
        Some(_) => None,
        None => Some(tempfile::Builder::new().prefix("tanoa-bench-").tempdir()?),
    };
    let dir = match (&tmp, &kept) {
        (Some(t), _) => t.path().to_path_buf(),
        (None, Some(k)) => k.clone(),
        (None, None) => bail!("no data directory"),
    };
    let config_path = dir.join("tanoad.toml");
    let disk = if config_path.exists() {
        eprintln!("[5] reusing the data dir {}", dir.display());
        0
    } else {
        build_data_dir(&dir, total, r)?
    };
    let config = Config::load(&config_path).map_err(|e| anyhow!("{e}"))?;
    let store_path = config.storage.store_path();

    let socket = config.operator.socket.clone();
    let mut runs = Vec::new();
    let first = if std::env::var_os("TANOA_BENCH_NO_CHECKPOINT").is_some() {
        "1st start after the load, no clean close (as after a crash), cold page cache"
    } else {
        "1st start after the load and a clean close, cold page cache"
    };
    for (label, cold) in [
        (first, true),
        ("2nd start, warm page cache", false),
        ("3rd start, cold page cache", true),
    ] {
        if cold {
            evict_page_cache(&store_path)?;
        }
        eprintln!("[5] starting tanoad ({label})");
        let run = run_tanoad(
            rt,
            &config_path,
            &socket,
            &dir.join(format!("tanoad-{}.log", runs.len())),
            total,
        )?;
        ensure!(
            run.status_advisories == total,
            "Status reports {} advisories",
            run.status_advisories
        );
        runs.push((label, run));
    }
    for (label, run) in &runs {
        let s = run.ready.as_secs_f64();
        let row = r.row(
            &format!("5 tanoad start to first Status, {total} advisories, {label}"),
            format!(
                "{s:.2} s ({:.0} MB read from disk; RSS {:.0} MB)",
                run.read_at_ready as f64 / 1e6,
                run.rss_at_ready_kb as f64 / 1024.0
            ),
            format!("sled reopen 10^6 keys ≤ {SLED_REOPEN_S} s"),
            format!("floor ÷ measured = {:.2}", SLED_REOPEN_S / s),
        );
        row.target(format!("≤ {TARGET_COLD_S} s"), s <= TARGET_COLD_S);
    }
    let cache_label = format!(
        "sled cache {} MiB{}",
        config.storage.cache_mb,
        if config.storage.cache_mb == tanoa_daemon::config::default_cache_mb() {
            " (default)"
        } else {
            ""
        }
    );
    let mb = |kb: u64| kb as f64 / 1024.0;
    let per_start = |f: &dyn Fn(&DaemonRun) -> u64| {
        runs.iter()
            .map(|(_, r)| format!("{:.0}", mb(f(r))))
            .collect::<Vec<_>>()
            .join(" / ")
    };
    let serving = mb(runs
        .iter()
        .map(|(_, r)| r.hwm_before_scan_kb)
        .max()
        .unwrap_or(0));
    let row = r.row(
        &format!("5 tanoad peak RSS (VmHWM), {total} advisories, serving lookups"),
        format!(
            "{serving:.0} MB (per start: {}; at first Status: {})",
            per_start(&|r| r.hwm_before_scan_kb),
            per_start(&|r| r.rss_at_ready_kb)
        ),
        cache_label.clone(),
        format!("{} of the 300 MB budget", pct(serving / TARGET_RSS_MB)),
    );
    row.target(format!("≤ {TARGET_RSS_MB} MB"), serving <= TARGET_RSS_MB);
    let peak = mb(runs.iter().map(|(_, r)| r.hwm_kb).max().unwrap_or(0));
    let row = r.row(
        &format!("5 tanoad peak RSS (VmHWM), {total} advisories, after a full-scan List"),
        format!(
            "{peak:.0} MB (per start: {}; VmRSS at the end {})",
            per_start(&|r| r.hwm_kb),
            per_start(&|r| r.rss_kb)
        ),
        cache_label.clone(),
        format!("{} of the 300 MB budget", pct(peak / TARGET_RSS_MB)),
    );
    row.target(format!("≤ {TARGET_RSS_MB} MB"), peak <= TARGET_RSS_MB);
    if disk > 0 {
        r.notes.push(format!(
            "Store of {total} small advisories: {:.0} MB allocated on disk after the three \
             starts ({:.0} MB right after the load).",
            allocated_bytes(&store_path) as f64 / 1e6,
            disk as f64 / 1e6
        ));
    }
    if let Some((_, run)) = runs.get(1) {
        r.row(
            "5 SearchIndicator RPC over the socket, p50 / p99 (warm run)",
            format!(
                "{:.0} / {:.0} µs",
                us(percentile(&run.search, 0.5)),
                us(percentile(&run.search, 0.99))
            ),
            "—".into(),
            "—".into(),
        );
        r.notes.push(format!(
            "tanoad workload per start: Status, List (limit 100), 1000 SearchIndicator, 100 Get, \
             then a List with a title filter that matches nothing (scans all {total}: {:.0} ms \
             in the warm start); exits: {}.",
            ms(run.text_list),
            runs.iter()
                .map(|(_, r)| r.exit.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------

fn machine_line() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_default();
    let ifma = cpuinfo.contains("avx512ifma");
    format!(
        "machine: nproc {cpus}, {model}{}, load average at start {}",
        if ifma { " (avx512ifma)" } else { "" },
        load.join(" ")
    )
}

fn env_n() -> Result<u64> {
    match std::env::var("TANOA_BENCH_N") {
        Ok(v) => v
            .replace(['_', ','], "")
            .parse()
            .with_context(|| format!("TANOA_BENCH_N={v:?} is not a number")),
        Err(_) => Ok(1_000_000),
    }
}

fn main() -> Result<()> {
    let machine = machine_line();
    eprintln!("{machine}");
    let n = env_n()?.max(1000);
    let n_verify = (n / 10).max(5_000);
    let n_lookup_adv = n / 5;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let only = std::env::var("TANOA_BENCH_ONLY").unwrap_or_default();
    let run = |section: &str| only.is_empty() || only.split(',').any(|s| s.trim() == section);
    let mut r = Report::default();
    let t = Instant::now();
    if run("1") {
        bench_publish(
            &rt,
            (n / 500).clamp(200, 2_000),
            (n / 50).clamp(2_000, 20_000),
            &mut r,
        )?;
    }
    if run("2") {
        bench_verify_store_lookup(n_verify, n_lookup_adv, &mut r)?;
    }
    if run("5") {
        bench_daemon(&rt, n, &mut r)?;
    }
    r.notes.push(format!(
        "Fractions: throughput ÷ ceiling; for times and sizes, floor ÷ measured. Ceilings are \
         STACK.md's (curve25519-dalek default backend); the raw rows give this run's own \
         ed25519 rates, since the 2 vCPUs are shared. Total bench time {:.0} s; load average \
         at the end {}.",
        t.elapsed().as_secs_f64(),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    ));
    r.print(&machine);
    Ok(())
}
