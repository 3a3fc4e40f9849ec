//! The soak benchmark of issue 10: five real `tanoad` processes under a mixed, bounded load for
//! `--minutes N` (default 30), then an exact convergence check. Prints a table over time (RSS
//! and open descriptors per member, warnings and errors from the daemons' JSON logs, the load
//! done so far), the log lines by level and message, and one PASS/FAIL line.
//!
//! Run: `cargo bench -p tanoa-integration-tests --bench soak -- --minutes 30` (`--minutes 2`
//! for a quick run). A program, not a test: without cargo bench's `--bench` argument (e.g.
//! under `cargo test --benches`) it does nothing and exits 0.
//!
//! The load (loopback only, every task bounded in rate and stopped at the deadline):
//! - a fill phase (the first two thirds of the warm-up) that builds the data set: new
//!   advisories on random members several times a second (GREEN mostly, some CLEAR, AMBER for
//!   one other member, RED for one recipient) and each `testdata/` STIX bundle imported once
//!   with the real CLI;
//! - then a steady phase in which no write adds an advisory: every `--write-every` seconds
//!   on average (default 10: 8,640 writes a day, far above what CERTs publish) a revision or
//!   (every 13th write) a withdrawal of an advisory its member holds, and every 30 s a
//!   re-import of a bundle on the member that first imported it (a new revision each time).
//!   Each revision is data every member keeps (the store keeps every revision), so a faster
//!   rate measures growth with data: at one write a second (`--write-every 1`) the members
//!   grow 2-4 kB per added revision, +10 to +15% over 30 minutes for +65% items; a slower one
//!   separates growth with data from growth with time (issue 10 found a growth with time that
//!   way: at one write every 5 s and every 15 s the members grew alike);
//! - operator queries (List, Search, Status, Peers, Get) about once a second, and one `Watch`
//!   stream per member, reconnected when its member restarts;
//! - TAXII paging (limit 50, following `next`) of to-cert's `green` collection every 20 s;
//! - fj-cert restarted (SIGTERM, start) every few minutes; au-acsc stopped, wiped and started
//!   empty once, half-way (the federation restores it);
//! - a hostile peer throughout: garbage bytes on raw TCP to every peer port, and malformed
//!   Reconcile / Fetch / Push messages over mutual TLS with a valid member certificate
//!   (nz-ncsc's).
//!
//! Pass: RSS and descriptor growth after warm-up < 10% for every member that was never
//! restarted (a restart resets both), no ERROR line in any log, and exact convergence: every
//! acknowledged advisory is held, at its acknowledged latest item, by exactly the members
//! policy allows (CLEAR/GREEN: all five; AMBER, RED: origin and audience), and by no other.
//! Growth is the median of the RSS read every 10 s during the first table interval after the
//! warm-up against the median during the last one (the range of each window is printed beside
//! it): a member's RSS swings by several MB between two reads a few seconds apart (a Fetch
//! answer, a page of TAXII objects in flight), so one read at each end measures that swing
//! rather than growth.
//!
//! What the memory criterion means: growth that is not explained by data. Two rules make the
//! run measure that. (1) The advisory set stops growing after the fill phase (revisions and
//! withdrawals still add items, as the store keeps every revision: the table shows items held
//! per member and the summary the RSS growth per added item). (2) Every member's sled cache
//! and to-cert's TAXII object cache are configured small (`STORAGE_CACHE_MB`,
//! `TAXII_CACHE_MB`; `--cache-mb`, `--taxii-cache-mb` change them) so that they reach their
//! bounds during the fill phase: what grows after the warm-up is then neither a cache filling
//! up to its configured bound nor new data.
//!
//! `--probe` (a diagnostic, not the soak): ONE member (to-cert, TAXII on) grows its data with
//! the soak's write mix and nothing else (`--grow-to N` advisories, default 1,500; `--revise N`
//! revisions after that), then holds it constant for `--hold-minutes M` (default 10) under the
//! soak's queries, `Watch`, TAXII paging and hostile peer; it prints RSS, anonymous RSS, store
//! size and RSS per item. `--cache-mb`, `--taxii-cache-mb` set the two caches.
//!
//! The environment variable `SOAK_TANOAD` names a wrapper to run the daemons under, in the soak
//! and in the probe (e.g. a script that runs one member under heaptrack and `exec`s the others:
//! the `--config` file names the member). A member whose wrapper does not `exec` the daemon
//! shows the wrapper's RSS and descriptors, so such a run is a diagnostic, not a soak result.

// A benchmark driver: a failed step must stop the run at once, loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use tanoa_daemon::config::Config;
use tanoa_daemon::node::driver;
use tanoa_daemon::{node, transport};
use tanoa_integration_tests::federation::{FIVE, Federation};
use tanoa_integration_tests::interop::testdata;
use tanoa_integration_tests::{binaries, run_command_for, sample_draft};
use tanoa_proto::v1 as pb;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::RwLock;

/// Member restarted every few minutes.
const RESTARTED: usize = 2;
/// Member wiped and restored once.
const WIPED: usize = 3;
/// Member whose certificate the hostile peer uses.
const HOSTILE_AS: usize = 4;
/// Member with `[taxii]` on.
const TAXII: usize = 1;
const TAXII_TOKEN: &str = "soak-taxii-token-2f9c41";
/// How long the final convergence may take.
const CONVERGE: Duration = Duration::from_secs(180);
/// `[storage] cache_mb` of every member and `[taxii] cache_mb` of to-cert: small enough that
/// the soak's data (about 10 MB of sled, 15 MB of converted STIX at 1,500 advisories) fills
/// both caches during the fill phase. The judged growth is then what no configured bound
/// holds; with the defaults (32 and 128 MiB) a 30-minute run measures the caches filling.
const STORAGE_CACHE_MB: u64 = 8;
const TAXII_CACHE_MB: u64 = 4;

/// What an acknowledged advisory must look like at the end.
#[derive(Debug, Clone)]
struct Expect {
    /// Latest acknowledged item id.
    item_id: String,
    tlp: i32,
    audience: Vec<String>,
    withdrawn: bool,
    /// Published by the publisher task (revisable, withdrawable).
    ours: bool,
}

/// State shared by the load tasks and the driver.
struct Shared {
    sockets: Vec<PathBuf>,
    /// Held (read) by every operation on a member; taken (write) to stop, wipe or start it, so
    /// no acknowledgement is lost in a restart.
    gates: Vec<RwLock<()>>,
    peer_addrs: Mutex<Vec<SocketAddr>>,
    stop: AtomicBool,
    /// Set when the fill phase ends: from then on no write adds an advisory (see `publisher`).
    steady: AtomicBool,
    /// Mean pause between two writes of the steady phase (`--write-every`).
    steady_every: Duration,
    acked: Mutex<BTreeMap<(String, String), Expect>>,
    ops: Mutex<BTreeMap<String, u64>>,
}

impl Shared {
    fn count(&self, what: impl Into<String>) {
        *self.ops.lock().unwrap().entry(what.into()).or_default() += 1;
    }
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
    fn steady(&self) -> bool {
        self.steady.load(Ordering::Relaxed)
    }
    async fn client(
        &self,
        i: usize,
    ) -> Option<pb::operator_client::OperatorClient<tonic::transport::Channel>> {
        tanoa_daemon::client::connect_unix(&self.sockets[i])
            .await
            .ok()
    }
}

async fn pause(shared: &Shared, d: Duration) {
    let end = Instant::now() + d;
    while Instant::now() < end && !shared.stopped() {
        tokio::time::sleep(Duration::from_millis(100).min(end - Instant::now())).await;
    }
}

fn tlp_name(t: i32) -> &'static str {
    match pb::Tlp::try_from(t) {
        Ok(pb::Tlp::Clear) => "CLEAR",
        Ok(pb::Tlp::Green) => "GREEN",
        Ok(pb::Tlp::Amber) => "AMBER",
        Ok(pb::Tlp::AmberStrict) => "AMBER+STRICT",
        Ok(pb::Tlp::Red) => "RED",
        _ => "?",
    }
}

/// Writes on random members. Fill phase (`!steady`): new advisories only, several a second.
/// Steady phase: every `steady_every` on average (0.6 to 1.4 times it), a revision (or, every
/// 13th write, a withdrawal) of an advisory the member already holds: no write adds an
/// advisory.
async fn publisher(shared: Arc<Shared>) {
    let mut rng = StdRng::seed_from_u64(1);
    let mut n: u64 = 0;
    while !shared.stopped() {
        n += 1;
        let m = rng.random_range(0..FIVE.len());
        let origin = FIVE[m].to_string();
        let gate = shared.gates[m].read().await;
        let Some(mut c) = shared.client(m).await else {
            shared.count("publish: no connection");
            drop(gate);
            pause(&shared, Duration::from_secs(1)).await;
            continue;
        };
        let mine: Vec<(String, Expect)> = shared
            .acked
            .lock()
            .unwrap()
            .iter()
            .filter(|((o, _), e)| *o == origin && e.ours && !e.withdrawn)
            .map(|((_, id), e)| (id.clone(), e.clone()))
            .collect();
        let steady = shared.steady();
        if steady && mine.is_empty() {
            shared.count("steady: no advisory of this member to revise");
        } else if steady && n.is_multiple_of(13) {
            let (id, e) = &mine[rng.random_range(0..mine.len())];
            match c
                .withdraw(pb::WithdrawRequest {
                    id: id.clone(),
                    reason: "soak: superseded by a later advisory".into(),
                })
                .await
            {
                Ok(r) => {
                    let r = r.into_inner();
                    shared.acked.lock().unwrap().insert(
                        (origin.clone(), id.clone()),
                        Expect {
                            item_id: r.item_id,
                            withdrawn: true,
                            ..e.clone()
                        },
                    );
                    shared.count("withdraw ok");
                }
                Err(s) => shared.count(format!("withdraw failed: {:?}", s.code())),
            }
        } else if steady {
            let (id, e) = &mine[rng.random_range(0..mine.len())];
            let mut d = sample_draft(id, "Soak revision", rng.random_range(1..250));
            d.tlp = e.tlp;
            d.audience.clone_from(&e.audience);
            match c.publish(pb::PublishRequest { draft: Some(d) }).await {
                Ok(r) => {
                    let r = r.into_inner();
                    shared.acked.lock().unwrap().insert(
                        (origin.clone(), id.clone()),
                        Expect {
                            item_id: r.item_id,
                            ..e.clone()
                        },
                    );
                    shared.count("revision ok");
                }
                Err(s) => shared.count(format!("revision failed: {:?}", s.code())),
            }
        } else {
            let id = format!("soak-{n:06}");
            let mut d = sample_draft(&id, "Soak advisory", rng.random_range(1..250));
            let (tlp, audience) = match n % 10 {
                0..=5 => (pb::Tlp::Green, vec![]),
                6 | 7 => (pb::Tlp::Clear, vec![]),
                k => {
                    let other = (m + 1 + rng.random_range(0..FIVE.len() - 1)) % FIVE.len();
                    let tlp = if k == 8 { pb::Tlp::Amber } else { pb::Tlp::Red };
                    (tlp, vec![FIVE[other].to_string()])
                }
            };
            d.tlp = tlp as i32;
            d.audience.clone_from(&audience);
            match c.publish(pb::PublishRequest { draft: Some(d) }).await {
                Ok(r) => {
                    shared.acked.lock().unwrap().insert(
                        (origin.clone(), id),
                        Expect {
                            item_id: r.into_inner().item_id,
                            tlp: tlp as i32,
                            audience,
                            withdrawn: false,
                            ours: true,
                        },
                    );
                    shared.count(format!("publish ok ({})", tlp_name(tlp as i32)));
                }
                Err(s) => shared.count(format!("publish failed: {:?}", s.code())),
            }
        }
        drop(gate);
        let wait = if steady {
            let ms = u64::try_from(shared.steady_every.as_millis()).unwrap_or(u64::MAX);
            ms * 6 / 10..=ms * 14 / 10
        } else {
            20..=60
        };
        pause(&shared, Duration::from_millis(rng.random_range(wait))).await;
    }
}

/// STIX bundles of `testdata/` to import, in turn.
fn bundles() -> Vec<PathBuf> {
    let dir = testdata().join("stix21-oasis/examples");
    let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    out.sort();
    out.push(testdata().join("mitre-attack-apt40/apt40-G0065-C0049.stix21-DERIVED.bundle.json"));
    out
}

/// Imports the testdata bundles with the real CLI: each once during the fill phase, then one
/// every 30 s, each again on the member that first imported it (a bundle it already holds).
async fn importer(shared: Arc<Shared>, tanoa: PathBuf) {
    let files = bundles();
    let mut k = 0usize;
    pause(&shared, Duration::from_secs(5)).await;
    while !shared.stopped() {
        let i = k % files.len();
        let file = &files[i];
        let m = i % FIVE.len();
        k += 1;
        let gate = shared.gates[m].read().await;
        let out = run_command_for(
            &tanoa,
            [
                "--socket",
                shared.sockets[m].to_str().unwrap(),
                "--json",
                "import",
                "--format",
                "stix",
                file.to_str().unwrap(),
                "--tlp",
                "green",
            ],
            Duration::from_secs(120),
        )
        .await;
        drop(gate);
        if out.code != Some(0) {
            shared.count("stix import refused");
        } else {
            let r: Value = serde_json::from_str(&out.stdout).unwrap_or(Value::Null);
            let tlp = match r["tlp"].as_str() {
                Some("CLEAR") => Some(pb::Tlp::Clear),
                Some("GREEN") => Some(pb::Tlp::Green),
                _ => None,
            };
            let advs = r["advisories"].as_array().cloned().unwrap_or_default();
            match tlp {
                Some(tlp) if !advs.is_empty() => {
                    for a in advs {
                        let (Some(o), Some(id), Some(item)) = (
                            a["origin"].as_str(),
                            a["id"].as_str(),
                            a["item_id"].as_str(),
                        ) else {
                            continue;
                        };
                        shared.acked.lock().unwrap().insert(
                            (o.to_string(), id.to_string()),
                            Expect {
                                item_id: item.to_string(),
                                tlp: tlp as i32,
                                audience: vec![],
                                withdrawn: false,
                                ours: false,
                            },
                        );
                    }
                    shared.count("stix import ok");
                }
                _ => shared.count("stix import ok (not tracked: not CLEAR/GREEN)"),
            }
        }
        let wait = if k < files.len() { 1 } else { 30 };
        pause(&shared, Duration::from_secs(wait)).await;
    }
}

/// Operator queries on random members, about once a second.
async fn querier(shared: Arc<Shared>) {
    let mut rng = StdRng::seed_from_u64(2);
    while !shared.stopped() {
        let m = rng.random_range(0..shared.sockets.len());
        let gate = shared.gates[m].read().await;
        if let Some(mut c) = shared.client(m).await {
            let some_id = {
                let acked = shared.acked.lock().unwrap();
                let n = acked.len();
                (n > 0).then(|| {
                    let (k, _) = acked.iter().nth(rng.random_range(0..n)).unwrap();
                    format!("{}/{}", k.0, k.1)
                })
            };
            let list = c
                .list(pb::ListRequest {
                    limit: 50,
                    ..Default::default()
                })
                .await;
            let search = c
                .search_indicator(pb::SearchIndicatorRequest {
                    value: "192.0.2.7".into(),
                    ..Default::default()
                })
                .await;
            let status = c.status(pb::StatusRequest {}).await;
            let peers = c.peers(pb::PeersRequest {}).await;
            for (what, ok) in [
                ("list", list.is_ok()),
                ("search", search.is_ok()),
                ("status", status.is_ok()),
                ("peers", peers.is_ok()),
            ] {
                shared.count(format!("query {what} {}", if ok { "ok" } else { "failed" }));
            }
            if let Some(id) = some_id {
                match c.get(pb::GetRequest { id }).await {
                    Ok(_) => shared.count("query get ok"),
                    Err(s) if s.code() == tonic::Code::NotFound => {
                        shared.count("query get not (yet) held");
                    }
                    Err(_) => shared.count("query get failed"),
                }
            }
        } else {
            shared.count("query: no connection");
        }
        drop(gate);
        pause(&shared, Duration::from_millis(rng.random_range(500..1500))).await;
    }
}

/// One `Watch` stream on member `m`, reconnected whenever it ends.
async fn watcher(shared: Arc<Shared>, m: usize) {
    while !shared.stopped() {
        let Some(mut c) = shared.client(m).await else {
            pause(&shared, Duration::from_secs(1)).await;
            continue;
        };
        let Ok(stream) = c.watch(pb::WatchRequest {}).await else {
            pause(&shared, Duration::from_secs(1)).await;
            continue;
        };
        shared.count("watch streams opened");
        let mut stream = stream.into_inner();
        while !shared.stopped() {
            match tokio::time::timeout(Duration::from_millis(500), stream.message()).await {
                Err(_) => {}
                Ok(Ok(Some(_))) => shared.count("watch events"),
                Ok(_) => break,
            }
        }
    }
}

/// GET over plain HTTP/1.1 with a bearer token: (status, JSON body).
async fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, Value)> {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.ok()?;
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TAXII_TOKEN}\r\n\
         Accept: application/taxii+json;version=2.1\r\nConnection: close\r\n\r\n"
    );
    tcp.write_all(req.as_bytes()).await.ok()?;
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), tcp.read_to_end(&mut buf))
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let json_text = body
        .find('{')
        .and_then(|s| body.rfind('}').map(|e| &body[s..=e]))
        .unwrap_or("null");
    Some((
        status,
        serde_json::from_str(json_text).unwrap_or(Value::Null),
    ))
}

/// Pages to-cert's `green` TAXII collection (limit 50) every 20 s.
async fn taxii_pager(shared: Arc<Shared>, addr: SocketAddr) {
    pause(&shared, Duration::from_secs(10)).await;
    while !shared.stopped() {
        let mut next: Option<String> = None;
        let mut pages = 0;
        loop {
            let path = match &next {
                None => "/tanoa/collections/green/objects/?limit=50".to_string(),
                Some(n) => format!("/tanoa/collections/green/objects/?limit=50&next={n}"),
            };
            match http_get(addr, &path).await {
                Some((200, body)) => {
                    pages += 1;
                    shared.count("taxii pages");
                    let more = body["more"].as_bool().unwrap_or(false);
                    next = body["next"].as_str().map(ToString::to_string);
                    if !more || next.is_none() || pages > 10_000 || shared.stopped() {
                        break;
                    }
                }
                Some((code, _)) => {
                    shared.count(format!("taxii answered {code}"));
                    break;
                }
                None => {
                    shared.count("taxii failed");
                    break;
                }
            }
        }
        shared.count("taxii collections paged");
        pause(&shared, Duration::from_secs(20)).await;
    }
}

/// A hostile peer: garbage TCP on every peer port, and malformed messages over mutual TLS
/// with nz-ncsc's valid certificate to ws-cert.
async fn hostile(shared: Arc<Shared>, config: PathBuf, to: usize, target_id: &'static str) {
    let mut rng = StdRng::seed_from_u64(3);
    let cfg = Config::load(&config).expect("hostile config");
    let tls = node::peer_tls(&cfg, transport::logging_hook())
        .expect("peer tls")
        .expect("[peer] in the hostile member's config");
    let limit = driver::peer_message_limit(&cfg.sync, cfg.limits.max_payload_bytes);
    while !shared.stopped() {
        let addrs = shared.peer_addrs.lock().unwrap().clone();
        // Garbage bytes on raw TCP, to a random member.
        let target = addrs[rng.random_range(0..addrs.len())];
        if let Ok(Ok(mut tcp)) = tokio::time::timeout(
            Duration::from_secs(2),
            tokio::net::TcpStream::connect(target),
        )
        .await
        {
            let mut junk = vec![0u8; rng.random_range(1..2048)];
            rng.fill(&mut junk[..]);
            let _ = tcp.write_all(&junk).await;
            let mut sink = [0u8; 256];
            let _ = tokio::time::timeout(Duration::from_millis(300), tcp.read(&mut sink)).await;
            shared.count("hostile: garbage TCP connections");
        }
        // Malformed gRPC as a valid member, to ws-cert.
        let endpoint = tanoa_daemon::config::PeerEndpoint {
            host: "127.0.0.1".into(),
            port: addrs[to].port(),
        };
        if let Ok(client_cfg) = tls.client_config(target_id)
            && let Ok(channel) = driver::peer_channel(&endpoint, client_cfg, Duration::from_secs(5))
        {
            let mut c = driver::peer_client(channel, limit);
            let mut junk = vec![0u8; rng.random_range(1..4096)];
            rng.fill(&mut junk[..]);
            let r = c
                .reconcile(pb::ReconcileRequest {
                    session: rng.random(),
                    message: junk.clone(),
                })
                .await;
            shared.count(format!("hostile: reconcile junk -> {}", code_of(&r)));
            let r = c
                .fetch(pb::FetchRequest {
                    item_ids: vec![junk[..junk.len().min(7)].to_vec()],
                    max_bytes: 0,
                })
                .await;
            shared.count(format!("hostile: fetch junk -> {}", code_of(&r)));
            let r = c
                .push(pb::PushRequest {
                    envelopes: vec![pb::Envelope {
                        payload: junk,
                        key_id: "ed25519:0000000000000000".into(),
                        signature: vec![0; 64],
                    }],
                })
                .await;
            shared.count(format!("hostile: push junk -> {}", code_of(&r)));
        }
        pause(&shared, Duration::from_millis(1000)).await;
    }
}

fn code_of<T>(r: &Result<T, tonic::Status>) -> String {
    match r {
        Ok(_) => "answered".into(),
        Err(s) => format!("{:?}", s.code()),
    }
}

/// RSS (kB) and open descriptors of a process.
fn rss_fds(pid: u32) -> (u64, usize) {
    let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count);
    (rss, fds)
}

/// Reads the JSON log lines appended since the last call: counts by (level, message).
#[derive(Default)]
struct LogTail {
    offsets: BTreeMap<PathBuf, u64>,
    by_kind: BTreeMap<(String, String), u64>,
}

impl LogTail {
    fn read(&mut self, file: &Path) {
        let Ok(mut f) = std::fs::File::open(file) else {
            return;
        };
        let off = self.offsets.entry(file.to_path_buf()).or_default();
        if f.seek(SeekFrom::Start(*off)).is_err() {
            return;
        }
        let mut buf = Vec::new();
        if f.read_to_end(&mut buf).is_err() {
            return;
        }
        // Only whole lines; the rest is read next time.
        let end = buf.iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1);
        *off += end as u64;
        for line in String::from_utf8_lossy(&buf[..end]).lines() {
            let Ok(v) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            let level = v["level"].as_str().unwrap_or("?").to_string();
            if level != "WARN" && level != "ERROR" {
                continue;
            }
            let msg = v["fields"]["message"]
                .as_str()
                .or_else(|| v["message"].as_str())
                .unwrap_or("?");
            let kind: String = msg.chars().take(90).collect();
            *self.by_kind.entry((level, kind)).or_default() += 1;
        }
    }

    fn total(&self, level: &str) -> u64 {
        self.by_kind
            .iter()
            .filter(|((l, _), _)| l == level)
            .map(|(_, n)| n)
            .sum()
    }
}

fn parse_minutes() -> Option<f64> {
    if !std::env::args().any(|a| a == "--bench") {
        return None;
    }
    Some(arg_f64("--minutes", 30.0))
}

/// The positive number after `flag` on the command line, `default` without the flag.
fn arg_f64(flag: &str, default: f64) -> f64 {
    let args: Vec<String> = std::env::args().collect();
    let v = args
        .iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |v| {
            v.parse::<f64>()
                .unwrap_or_else(|e| panic!("{flag} {v}: not a number: {e}"))
        });
    assert!(v > 0.0, "{flag} must be positive");
    v
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--probe") {
        let num = |flag: &str, default: f64| {
            args.iter()
                .position(|a| a == flag)
                .and_then(|i| args.get(i + 1))
                .map_or(default, |v| v.parse().expect("a number"))
        };
        probe(
            num("--grow-to", 1500.0) as u64,
            Duration::from_secs_f64(num("--hold-minutes", 10.0) * 60.0),
            args.iter()
                .position(|a| a == "--cache-mb")
                .and_then(|i| args.get(i + 1))
                .map(|v| v.parse().expect("--cache-mb: a number")),
            args.iter()
                .position(|a| a == "--taxii-cache-mb")
                .and_then(|i| args.get(i + 1))
                .map(|v| v.parse().expect("--taxii-cache-mb: a number")),
            num("--revise", 0.0) as u64,
        )
        .await;
        return;
    }
    let Some(minutes) = parse_minutes() else {
        println!(
            "soak: run with `cargo bench -p tanoa-integration-tests --bench soak -- --minutes N`"
        );
        return;
    };
    let total = Duration::from_secs_f64(minutes * 60.0);
    let steady_every = Duration::from_secs_f64(arg_f64("--write-every", 10.0));
    let cache_mb = arg_f64("--cache-mb", STORAGE_CACHE_MB as f64) as u64;
    let taxii_cache_mb = arg_f64("--taxii-cache-mb", TAXII_CACHE_MB as f64) as u64;
    let warmup = Duration::from_secs_f64((minutes * 60.0 * 0.15).clamp(30.0, 180.0));
    let sample_every = Duration::from_secs_f64((minutes * 60.0 / 18.0).clamp(10.0, 100.0));
    let restart_every = Duration::from_secs_f64((minutes * 60.0 / 8.0).clamp(60.0, 300.0));
    let wipe_at = total / 2;

    // The data set grows only in the fill phase (the first two thirds of the warm-up); after
    // it, writes revise, withdraw and re-import what is held (see `publisher`, `importer`).
    let fill_until = warmup * 2 / 3;

    let b = binaries!();
    // SOAK_TANOAD: a wrapper to run the daemons under (see the module doc).
    let tanoad = std::env::var_os("SOAK_TANOAD").map_or(b.tanoad.clone(), PathBuf::from);
    let mut fed = Federation::create(&tanoad, &FIVE).await;
    for n in &fed.nodes {
        let cfg = n.config_path().to_path_buf();
        let text = std::fs::read_to_string(&cfg).unwrap();
        assert!(
            text.contains("[storage]\n"),
            "{}: no [storage]",
            cfg.display()
        );
        let text = text.replacen(
            "[storage]\n",
            &format!("[storage]\ncache_mb = {cache_mb}\n"),
            1,
        );
        std::fs::write(&cfg, text).unwrap();
    }
    // [taxii] on to-cert, loopback, one client for the green collection.
    let taxii = format!(
        "\n[taxii]\nlisten = \"127.0.0.1:0\"\nmax_page = 1000\ncache_mb = {taxii_cache_mb}\n\
         [[taxii.clients]]\nname = \"soak\"\n\
         token_sha256 = \"{}\"\ncollections = [\"clear\", \"green\"]\n",
        hex::encode(Sha256::digest(TAXII_TOKEN.as_bytes()))
    );
    let cfg = fed.nodes[TAXII].config_path().to_path_buf();
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str(&taxii);
    std::fs::write(&cfg, text).unwrap();
    for i in 0..FIVE.len() {
        fed.start_member(i).await;
    }
    let shared = Arc::new(Shared {
        sockets: fed
            .nodes
            .iter()
            .map(|n| n.socket_path().to_path_buf())
            .collect(),
        gates: (0..FIVE.len()).map(|_| RwLock::new(())).collect(),
        peer_addrs: Mutex::new(fed.nodes.iter().map(|n| n.started_addr("peer")).collect()),
        stop: AtomicBool::new(false),
        steady: AtomicBool::new(false),
        steady_every,
        acked: Mutex::new(BTreeMap::new()),
        ops: Mutex::new(BTreeMap::new()),
    });
    let taxii_addr = fed.nodes[TAXII].started_addr("taxii");
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(publisher(shared.clone()));
    tasks.spawn(importer(shared.clone(), b.tanoa.clone()));
    tasks.spawn(querier(shared.clone()));
    tasks.spawn(taxii_pager(shared.clone(), taxii_addr));
    tasks.spawn(hostile(
        shared.clone(),
        fed.nodes[HOSTILE_AS].config_path().to_path_buf(),
        0,
        FIVE[0],
    ));
    for m in 0..FIVE.len() {
        tasks.spawn(watcher(shared.clone(), m));
    }

    println!(
        "soak: {minutes} min, 5 members ({}), fill phase {:?}, then one write every {steady_every:?} on average, warm-up {:?}, sample every {:?}, {} restarted every {:?}, {} wiped at {:?}; \
         storage.cache_mb = {cache_mb}, taxii.cache_mb = {taxii_cache_mb}",
        FIVE.join(", "),
        fill_until,
        warmup,
        sample_every,
        FIVE[RESTARTED],
        restart_every,
        FIVE[WIPED],
        wipe_at
    );
    let mut header = "| t (s) |".to_string();
    for id in FIVE {
        header.push_str(&format!(" {id} RSS MB / fds / items |"));
    }
    header.push_str(" WARN | ERROR | acked advisories | publishes+revisions+withdrawals | queries | hostile msgs |");
    println!("{header}");
    println!("{}", "|---".repeat(header.matches('|').count() - 1) + "|");

    let start = Instant::now();
    let mut logs = LogTail::default();
    let mut restarted = [false; 5];
    let mut next_sample = Duration::ZERO;
    let mut next_restart = restart_every;
    let mut wiped = false;
    // (t, per member (rss kB, fds, items held)) samples.
    let mut samples: Vec<(Duration, Vec<Sample>)> = Vec::new();
    // (t, per member (rss kB, fds)) every `RSS_EVERY`: the windows the growth is judged on.
    let mut fine: Vec<(Duration, Vec<(u64, usize)>)> = Vec::new();
    let mut next_fine = Duration::ZERO;
    loop {
        let t = start.elapsed();
        if t >= next_fine || t >= total {
            let per = fed
                .nodes
                .iter()
                .map(|n| n.pid().map_or((0, 0), rss_fds))
                .collect();
            fine.push((t, per));
            next_fine += RSS_EVERY;
        }
        if t >= fill_until && !shared.steady() {
            shared.steady.store(true, Ordering::Relaxed);
            println!(
                "| {} | fill phase over: no new advisories from now on |",
                t.as_secs()
            );
        }
        if t >= next_sample || t >= total {
            let mut per: Vec<Sample> = Vec::new();
            for (i, n) in fed.nodes.iter().enumerate() {
                let (rss, fds) = n.pid().map_or((0, 0), rss_fds);
                per.push((rss, fds, items_held(&shared, i).await));
            }
            for n in &fed.nodes {
                logs.read(&n.dir().join("tanoad.stdout.log"));
                logs.read(&n.dir().join("tanoad.stderr.log"));
            }
            let ops = shared.ops.lock().unwrap().clone();
            let sum = |f: &dyn Fn(&str) -> bool| -> u64 {
                ops.iter().filter(|(k, _)| f(k)).map(|(_, v)| v).sum()
            };
            let writes =
                sum(&|k| k.starts_with("publish ok") || k == "revision ok" || k == "withdraw ok");
            let queries = sum(&|k| k.starts_with("query"));
            let hostile = sum(&|k| k.starts_with("hostile"));
            let mut row = format!("| {} |", t.as_secs());
            for (i, (rss, fds, items)) in per.iter().enumerate() {
                let mark = if restarted[i] { "*" } else { "" };
                row.push_str(&format!(
                    " {:.1} / {fds} / {items}{mark} |",
                    *rss as f64 / 1024.0
                ));
            }
            row.push_str(&format!(
                " {} | {} | {} | {writes} | {queries} | {hostile} |",
                logs.total("WARN"),
                logs.total("ERROR"),
                shared.acked.lock().unwrap().len()
            ));
            println!("{row}");
            samples.push((t, per));
            next_sample += sample_every;
        }
        if t >= total {
            break;
        }
        if t >= next_restart {
            let _g = shared.gates[RESTARTED].write().await;
            fed.stop_member(RESTARTED).await;
            fed.start_member(RESTARTED).await;
            shared.peer_addrs.lock().unwrap()[RESTARTED] =
                fed.nodes[RESTARTED].started_addr("peer");
            restarted[RESTARTED] = true;
            println!(
                "| {} | {} restarted |",
                start.elapsed().as_secs(),
                FIVE[RESTARTED]
            );
            next_restart += restart_every;
        }
        if !wiped && t >= wipe_at {
            let _g = shared.gates[WIPED].write().await;
            fed.stop_member(WIPED).await;
            fed.wipe_member(WIPED);
            fed.start_member(WIPED).await;
            shared.peer_addrs.lock().unwrap()[WIPED] = fed.nodes[WIPED].started_addr("peer");
            restarted[WIPED] = true;
            wiped = true;
            println!(
                "| {} | {} wiped and started empty |",
                start.elapsed().as_secs(),
                FIVE[WIPED]
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    shared.stop.store(true, Ordering::Relaxed);
    while tasks.join_next().await.is_some() {}

    // Convergence: every acknowledged advisory at its latest item on exactly the members
    // policy allows.
    let acked = shared.acked.lock().unwrap().clone();
    let conv_start = Instant::now();
    let (converged, mismatches) = loop {
        let mut mismatches = Vec::new();
        for (i, id) in FIVE.iter().enumerate() {
            let mut c = shared.client(i).await.expect("member answers");
            let mut held: BTreeMap<(String, String), String> = BTreeMap::new();
            let mut token = Vec::new();
            loop {
                let l = c
                    .list(pb::ListRequest {
                        include_withdrawn: true,
                        limit: 1000,
                        order: pb::ListOrder::AdvisoryKey as i32,
                        page_token: std::mem::take(&mut token),
                        ..Default::default()
                    })
                    .await
                    .expect("List")
                    .into_inner();
                for s in l.advisories {
                    held.insert((s.origin, s.advisory_id), s.item_id);
                }
                if !l.truncated {
                    break;
                }
                token = l.next_page_token;
            }
            for ((o, a), e) in &acked {
                let allowed = matches!(
                    pb::Tlp::try_from(e.tlp),
                    Ok(pb::Tlp::Clear | pb::Tlp::Green)
                ) || o == id
                    || e.audience.iter().any(|m| m == id);
                match (allowed, held.get(&(o.clone(), a.clone()))) {
                    (true, Some(item)) if *item == e.item_id => {}
                    (true, got) => mismatches.push(format!(
                        "{id}: {o}/{a} ({}) held at {got:?}, acknowledged {}",
                        tlp_name(e.tlp),
                        e.item_id
                    )),
                    (false, Some(_)) => mismatches.push(format!(
                        "{id}: holds {o}/{a} ({}) it may not hold",
                        tlp_name(e.tlp)
                    )),
                    (false, None) => {}
                }
            }
        }
        if mismatches.is_empty() || conv_start.elapsed() > CONVERGE {
            break (mismatches.is_empty(), mismatches);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let conv_time = conv_start.elapsed();
    for n in &fed.nodes {
        logs.read(&n.dir().join("tanoad.stdout.log"));
        logs.read(&n.dir().join("tanoad.stderr.log"));
    }

    println!("\n* = restarted or wiped during the run (RSS and fds reset; not judged for growth)");
    println!("\nLoad done:");
    for (k, v) in shared.ops.lock().unwrap().iter() {
        println!("  {v:>8}  {k}");
    }
    println!("\nWARN and ERROR lines by message (all members):");
    for ((level, kind), n) in &logs.by_kind {
        println!("  {n:>8}  {level:<5} {kind}");
    }
    let by_tlp = acked
        .values()
        .fold(BTreeMap::<&str, u64>::new(), |mut m, e| {
            *m.entry(tlp_name(e.tlp)).or_default() += 1;
            m
        });
    println!(
        "\nConvergence: {} acknowledged advisories ({by_tlp:?}; {} withdrawn): {} after {:.1} s",
        acked.len(),
        acked.values().filter(|e| e.withdrawn).count(),
        if converged { "exact" } else { "NOT converged" },
        conv_time.as_secs_f64()
    );
    for m in mismatches.iter().take(20) {
        println!("  {m}");
    }

    // Growth after warm-up, members never restarted: the median of the RSS (and descriptor)
    // samples in the first window after the warm-up against the median in the last window.
    let window = sample_every;
    let base_w: Vec<&Vec<(u64, usize)>> = fine
        .iter()
        .filter(|(t, _)| *t >= warmup && *t < warmup + window)
        .map(|(_, p)| p)
        .collect();
    let last_w: Vec<&Vec<(u64, usize)>> = fine
        .iter()
        .filter(|(t, _)| *t + window > total)
        .map(|(_, p)| p)
        .collect();
    let base = samples
        .iter()
        .find(|(t, _)| *t >= warmup)
        .map(|(_, p)| p.clone());
    let last = samples.last().map(|(_, p)| p.clone());
    let mut growth_ok = true;
    if let (Some(base), Some(last), false, false) =
        (base, last, base_w.is_empty(), last_w.is_empty())
    {
        println!(
            "\nGrowth after warm-up ({warmup:?}): median of the {} samples (every {RSS_EVERY:?}) in \
             the first {window:?} after the warm-up against the median of the {} in the last \
             {window:?}; the RSS range of each window in brackets",
            base_w.len(),
            last_w.len()
        );
        for (i, id) in FIVE.iter().enumerate() {
            let g = |a: f64, b: f64| if a > 0.0 { (b - a) / a * 100.0 } else { 0.0 };
            let rss_of =
                |w: &[&Vec<(u64, usize)>]| -> Vec<u64> { w.iter().map(|p| p[i].0).collect() };
            let fds_of = |w: &[&Vec<(u64, usize)>]| -> Vec<u64> {
                w.iter().map(|p| p[i].1 as u64).collect()
            };
            let (rss_b, rss_l) = (rss_of(&base_w), rss_of(&last_w));
            let (rss0, rss1) = (median(&rss_b), median(&rss_l));
            let (fds0, fds1) = (median(&fds_of(&base_w)), median(&fds_of(&last_w)));
            let rss = g(rss0 as f64, rss1 as f64);
            let fds = g(fds0 as f64, fds1 as f64);
            let items = g(base[i].2 as f64, last[i].2 as f64);
            let judged = !restarted[i];
            if judged && (rss >= 10.0 || fds >= 10.0) {
                growth_ok = false;
            }
            // Memory per stored item between the two windows: the data-proportional cost.
            let per_item = if last[i].2 > base[i].2 {
                format!(
                    "{:.1} kB",
                    (rss1 as f64 - rss0 as f64) / (last[i].2 - base[i].2) as f64
                )
            } else {
                "-".into()
            };
            let mb = |kb: u64| kb as f64 / 1024.0;
            let range = |w: &[u64]| {
                format!(
                    "[{:.1}-{:.1}]",
                    mb(w.iter().copied().min().unwrap_or(0)),
                    mb(w.iter().copied().max().unwrap_or(0))
                )
            };
            println!(
                "  {id}: RSS {:.1} {} -> {:.1} {} MB ({rss:+.1}%), fds {fds0} -> {fds1} ({fds:+.1}%), \
                 items held {} -> {} ({items:+.1}%), RSS growth per added item {per_item}{}",
                mb(rss0),
                range(&rss_b),
                mb(rss1),
                range(&rss_l),
                base[i].2,
                last[i].2,
                if judged {
                    ""
                } else {
                    " (restarted: not judged)"
                }
            );
        }
    } else {
        println!("\nGrowth: the run is shorter than the warm-up; not judged");
    }
    let errors = logs.total("ERROR");
    let pass = growth_ok && errors == 0 && converged;
    println!(
        "\n{}: growth after warm-up < 10%: {}; ERROR lines: {errors}; convergence: {}",
        if pass { "PASS" } else { "FAIL" },
        if growth_ok { "yes" } else { "NO" },
        if converged { "exact" } else { "NOT exact" }
    );
    drop(fed);
    if !pass {
        std::process::exit(1);
    }
}

/// One member at one sample time: RSS (kB), open descriptors, items held.
type Sample = (u64, usize, u64);

/// How often RSS and descriptors are read for the growth judgement (the table shows every
/// `sample_every`).
const RSS_EVERY: Duration = Duration::from_secs(10);

/// The median of `v` (the upper one of the two middle values); 0 when empty.
fn median(v: &[u64]) -> u64 {
    let mut v = v.to_vec();
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

/// Items (envelopes, every revision) member `i` holds, from Status; 0 if it does not answer.
async fn items_held(shared: &Shared, i: usize) -> u64 {
    let Some(mut c) = shared.client(i).await else {
        return 0;
    };
    tokio::time::timeout(Duration::from_secs(5), c.status(pb::StatusRequest {}))
        .await
        .ok()
        .and_then(Result::ok)
        .map_or(0, |r| r.into_inner().items)
}

/// `Threads`, `RssAnon` (kB) of a process.
fn threads_anon(pid: u32) -> (u64, u64) {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        s.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
            .unwrap_or(0)
    };
    (field("Threads:"), field("RssAnon:"))
}

/// The probe (`--probe`): ONE member (to-cert, with TAXII) grows its data with the soak's write
/// mix and nothing else, then holds it constant under the soak's read and hostile load.
async fn probe(
    grow_to: u64,
    hold: Duration,
    cache_mb: Option<u64>,
    taxii_mb: Option<u64>,
    revise: u64,
) {
    let b = binaries!();
    let ids = ["to-cert", "nz-ncsc"];
    // SOAK_TANOAD: a wrapper to run the daemon under (e.g. a script running heaptrack).
    let tanoad = std::env::var_os("SOAK_TANOAD").map_or(b.tanoad.clone(), PathBuf::from);
    let mut fed = Federation::create(&tanoad, &ids).await;
    let taxii = format!(
        "\n[taxii]\nlisten = \"127.0.0.1:0\"\nmax_page = 1000\n{}[[taxii.clients]]\nname = \"soak\"\n\
         token_sha256 = \"{}\"\ncollections = [\"clear\", \"green\"]\n",
        taxii_mb.map_or(String::new(), |m| format!("cache_mb = {m}\n")),
        hex::encode(Sha256::digest(TAXII_TOKEN.as_bytes()))
    );
    let cfg = fed.nodes[0].config_path().to_path_buf();
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str(&taxii);
    if let Some(mb) = cache_mb {
        text = text.replacen("[storage]\n", &format!("[storage]\ncache_mb = {mb}\n"), 1);
    }
    std::fs::write(&cfg, text).unwrap();
    fed.start_member(0).await;
    let pid = fed.nodes[0].pid().unwrap();
    let shared = Arc::new(Shared {
        sockets: vec![fed.nodes[0].socket_path().to_path_buf()],
        gates: vec![RwLock::new(())],
        peer_addrs: Mutex::new(vec![fed.nodes[0].started_addr("peer")]),
        stop: AtomicBool::new(false),
        steady: AtomicBool::new(false),
        // The probe writes by itself (`--grow-to`, `--revise`) and runs no `publisher`.
        steady_every: Duration::from_secs(1),
        acked: Mutex::new(BTreeMap::new()),
        ops: Mutex::new(BTreeMap::new()),
    });
    let start = Instant::now();
    let row = |phase: &str, st: &pb::StatusResponse| {
        let (rss, fds) = rss_fds(pid);
        let (threads, anon) = threads_anon(pid);
        println!(
            "| {} | {phase} | {} | {} | {:.1} | {:.1} | {:.1} | {fds} | {threads} | {:.1} |",
            start.elapsed().as_secs(),
            st.advisories,
            st.items,
            st.store_bytes as f64 / 1048576.0,
            rss as f64 / 1024.0,
            anon as f64 / 1024.0,
            rss as f64 / st.items.max(1) as f64,
        );
    };
    println!(
        "probe: one member (to-cert, TAXII on), grow to {grow_to} advisories (the soak's write mix, \
         no other load), then hold {hold:?} under queries, Watch, TAXII paging, hostile peer; \
         MALLOC_ARENA_MAX={:?}, storage.cache_mb={}",
        std::env::var("MALLOC_ARENA_MAX").ok(),
        cache_mb.map_or("default".to_string(), |m| m.to_string())
    );
    println!(
        "| t (s) | phase | advisories | items | store MB | RSS MB | RssAnon MB | fds | threads | RSS kB / item |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let mut c = shared.client(0).await.unwrap();
    let status = |mut c: pb::operator_client::OperatorClient<tonic::transport::Channel>| async move {
        c.status(pb::StatusRequest {}).await.unwrap().into_inner()
    };
    row("start", &status(c.clone()).await);
    let files = bundles();
    let mut rng = StdRng::seed_from_u64(1);
    let mut n: u64 = 0;
    let mut ours: Vec<(String, i32, Vec<String>)> = Vec::new();
    let mut next_row = 150;
    loop {
        n += 1;
        if n.is_multiple_of(30) {
            let file = &files[(n / 30) as usize % files.len()];
            let out = run_command_for(
                &b.tanoa,
                [
                    "--socket",
                    shared.sockets[0].to_str().unwrap(),
                    "--json",
                    "import",
                    "--format",
                    "stix",
                    file.to_str().unwrap(),
                    "--tlp",
                    "green",
                ],
                Duration::from_secs(120),
            )
            .await;
            // One testdata bundle is TLP:RED by its marking and refused, as in the soak.
            shared.count(if out.code == Some(0) {
                "grow: stix import ok"
            } else {
                "grow: stix import refused"
            });
        } else if n.is_multiple_of(13) && !ours.is_empty() {
            let k = rng.random_range(0..ours.len());
            let (id, _, _) = ours.swap_remove(k);
            c.withdraw(pb::WithdrawRequest {
                id,
                reason: "probe".into(),
            })
            .await
            .unwrap();
        } else if n.is_multiple_of(5) && !ours.is_empty() {
            let (id, tlp, audience) = &ours[rng.random_range(0..ours.len())];
            let mut d = sample_draft(id, "Probe revision", rng.random_range(1..250));
            d.tlp = *tlp;
            d.audience.clone_from(audience);
            c.publish(pb::PublishRequest { draft: Some(d) })
                .await
                .unwrap();
        } else {
            let id = format!("probe-{n:06}");
            let mut d = sample_draft(&id, "Probe advisory", rng.random_range(1..250));
            let (tlp, audience) = match n % 10 {
                0..=5 => (pb::Tlp::Green, vec![]),
                6 | 7 => (pb::Tlp::Clear, vec![]),
                8 => (pb::Tlp::Amber, vec![ids[1].to_string()]),
                _ => (pb::Tlp::Red, vec![ids[1].to_string()]),
            };
            d.tlp = tlp as i32;
            d.audience.clone_from(&audience);
            c.publish(pb::PublishRequest { draft: Some(d) })
                .await
                .unwrap();
            ours.push((id, tlp as i32, audience));
        }
        let st = status(c.clone()).await;
        if st.advisories >= next_row {
            row("grow", &st);
            next_row += 150;
        }
        if st.advisories >= grow_to {
            break;
        }
    }
    for k in 0..revise {
        let (id, tlp, audience) = &ours[rng.random_range(0..ours.len())];
        let mut d = sample_draft(id, "Probe revision", rng.random_range(1..250));
        d.tlp = *tlp;
        d.audience.clone_from(audience);
        c.publish(pb::PublishRequest { draft: Some(d) })
            .await
            .unwrap();
        if (k + 1) % 300 == 0 {
            row("revise", &status(c.clone()).await);
        }
    }
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(querier(shared.clone()));
    tasks.spawn(taxii_pager(
        shared.clone(),
        fed.nodes[0].started_addr("taxii"),
    ));
    tasks.spawn(hostile(
        shared.clone(),
        fed.nodes[1].config_path().to_path_buf(),
        0,
        "to-cert",
    ));
    tasks.spawn(watcher(shared.clone(), 0));
    let hold_start = Instant::now();
    while hold_start.elapsed() < hold {
        tokio::time::sleep(Duration::from_secs(30).min(hold - hold_start.elapsed())).await;
        row("hold", &status(c.clone()).await);
    }
    shared.stop.store(true, Ordering::Relaxed);
    while tasks.join_next().await.is_some() {}
    println!("\nLoad done:");
    for (k, v) in shared.ops.lock().unwrap().iter() {
        println!("  {v:>8}  {k}");
    }
    println!("member directory: {}", fed.nodes[0].dir().display());
    if std::env::var_os("SOAK_PROBE_KEEP").is_some() {
        std::mem::forget(fed);
    }
}
