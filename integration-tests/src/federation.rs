//! A federation of real `tanoad` processes for the integration tests: a fresh `pki::Ca` per
//! test, one member certificate and signing key per member, configs written with
//! `Config::example_federated` (short sync intervals), and one fault-injecting `LinkProxy` per
//! directed link, so that every roster endpoint of member X for member Y is the proxy X → Y.
//!
//! Ports: every daemon listens on `127.0.0.1:0` (peer port and metrics) and the actual addresses
//! are read from its `tanoad started` log line (JSON logs); proxies are bound by the test before
//! any config is written, so rosters never need a daemon's port.
//!
//! Owns: the federation's files, the proxies (cut/heal per link or per partition) and polling
//! helpers (holds, metrics scrape, eventual conditions).
//! Must never: wait without a bound, or sleep a fixed time where it can poll.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tanoa_daemon::config::{Config, ExampleMember, FederatedExample};
use tanoa_daemon::keys;
use tanoa_pki::Ca;
use tanoa_proto::v1 as pb;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::TestNode;
use crate::linkemu::{Dir, EmuLink, Profile, Relay};
use crate::proxy::{LinkProxy, Target};

/// The five members of the tests, a..e.
pub const FIVE: [&str; 5] = ["ws-cert", "to-cert", "fj-cert", "au-acsc", "nz-ncsc"];

/// Default bound of `Federation::eventually`.
pub const CONVERGE_TIMEOUT: Duration = Duration::from_secs(40);

/// `[sync]` settings of the test federation: anti-entropy every ~0.5 s, quick retries.
pub const FAST_SYNC: &[(&str, &str)] = &[
    ("interval_ms", "400"),
    ("jitter_ms", "100"),
    ("request_timeout_ms", "3000"),
    ("session_timeout_ms", "10000"),
    ("backoff_base_ms", "200"),
    ("backoff_max_ms", "800"),
];

/// How a federation is built beyond its member ids.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `[sync]` settings (key, TOML value); `None` = `FAST_SYNC`; empty = the daemon's defaults.
    pub sync: Option<Vec<(String, String)>>,
    /// When set, every pair of members is joined by an emulated link of this profile
    /// (`linkemu`) instead of the fault-injecting proxies.
    pub profile: Option<Profile>,
    /// TOML appended to member i's config (e.g. a `[taxii]` table); missing = nothing.
    pub extra_config: Vec<String>,
    /// Self-signed certificates pinned (SHA-256 of their public keys) in every roster, and no
    /// CA at all.
    pub pinned: bool,
}

/// A federation of real daemons with a proxy (or an emulated link) on every directed link.
#[derive(Debug)]
pub struct Federation {
    /// The members, in the order of `ids`.
    pub nodes: Vec<TestNode>,
    ids: Vec<String>,
    targets: Vec<Target>,
    /// `links[i][j]`: the proxy member i dials to reach member j (`None` on the diagonal, and
    /// everywhere when the links are emulated).
    links: Vec<Vec<Option<LinkProxy>>>,
    /// `relays[i][j]`: the emulated link's relay member i dials to reach member j.
    relays: Vec<Vec<Option<Relay>>>,
    /// `emulated[(i, j)]` for i < j: the link between i (side A) and j (side B).
    emulated: Vec<((usize, usize), EmuLink)>,
    _ca: Ca,
    /// Public signing keys (hex), by member.
    publics: Vec<String>,
    /// TLS pins by member (`sha256:…`), listed in every roster; empty in CA mode.
    pins: Vec<Vec<String>>,
    /// The members each member's `[[members]]` lists (itself included).
    rosters: Vec<Vec<usize>>,
    /// `[sync]` settings written into every config.
    sync: Vec<(String, String)>,
    /// TOML appended to member i's config.
    extra_config: Vec<String>,
    /// Self-signed pinned certificates and no CA (`create_pinned`).
    pinned: bool,
}

impl Federation {
    /// Creates and starts a federation of `ids` (every member running and answering).
    pub async fn start(tanoad: &std::path::Path, ids: &[&str]) -> Federation {
        let mut fed = Federation::create(tanoad, ids).await;
        for i in 0..ids.len() {
            fed.start_member(i).await;
        }
        fed
    }

    /// Creates the member directories, PKI, proxies and configs without starting anything.
    pub async fn create(tanoad: &std::path::Path, ids: &[&str]) -> Federation {
        Federation::create_with_keys(tanoad, ids, &[]).await
    }

    /// `create`, with the signing key of member i taken from `fixed[i]` when given (so two
    /// federations can hold byte-identical envelopes signed by that member).
    pub async fn create_with_keys(
        tanoad: &std::path::Path,
        ids: &[&str],
        fixed: &[Option<ed25519_dalek::SigningKey>],
    ) -> Federation {
        Federation::create_with(tanoad, ids, fixed, &Options::default()).await
    }

    /// Creates and starts a federation built with `opts`.
    pub async fn start_with(tanoad: &std::path::Path, ids: &[&str], opts: &Options) -> Federation {
        let mut fed = Federation::create_with(tanoad, ids, &[], opts).await;
        for i in 0..ids.len() {
            fed.start_member(i).await;
        }
        fed
    }

    /// `create` with no CA at all: every member has a self-signed certificate pinned (SHA-256
    /// of its public key) in every roster, and no `trust_anchors`.
    pub async fn create_pinned(tanoad: &std::path::Path, ids: &[&str]) -> Federation {
        let opts = Options {
            pinned: true,
            ..Options::default()
        };
        Federation::create_with(tanoad, ids, &[], &opts).await
    }

    /// `create_with_keys` with `opts` (sync settings, emulated links, extra config).
    #[allow(clippy::too_many_lines)]
    pub async fn create_with(
        tanoad: &std::path::Path,
        ids: &[&str],
        fixed: &[Option<ed25519_dalek::SigningKey>],
        opts: &Options,
    ) -> Federation {
        tanoa_daemon::transport::install_crypto_provider();
        let ca = Ca::new("Integration test federation CA", 2).expect("CA");
        let n = ids.len();
        let targets: Vec<Target> = (0..n).map(|_| Arc::new(Mutex::new(None))).collect();
        let mut links = Vec::new();
        let mut relays = Vec::new();
        let mut emulated = Vec::new();
        if let Some(profile) = &opts.profile {
            for i in 0..n {
                for j in i + 1..n {
                    emulated.push(((i, j), EmuLink::new(profile.clone())));
                }
            }
        }
        for i in 0..n {
            let mut row = Vec::new();
            let mut relay_row = Vec::new();
            for (j, target) in targets.iter().enumerate() {
                if i == j {
                    row.push(None);
                    relay_row.push(None);
                } else if opts.profile.is_some() {
                    let key = (i.min(j), i.max(j));
                    let link = &emulated
                        .iter()
                        .find(|(k, _)| *k == key)
                        .expect("a link per pair")
                        .1;
                    let dialer = if i < j { Dir::AtoB } else { Dir::BtoA };
                    row.push(None);
                    relay_row.push(Some(link.relay(dialer, Arc::clone(target)).expect("relay")));
                } else {
                    row.push(Some(
                        LinkProxy::start(Arc::clone(target)).await.expect("proxy"),
                    ));
                    relay_row.push(None);
                }
            }
            links.push(row);
            relays.push(relay_row);
        }
        // Keys first: every roster lists every member's public key.
        let mut dirs = Vec::new();
        let mut publics = Vec::new();
        let mut pins = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            let dir = tempfile::Builder::new()
                .prefix("tanoa-fed-")
                .tempdir()
                .expect("tempdir");
            std::fs::create_dir_all(dir.path().join("keys")).expect("keys dir");
            let key = match fixed.get(i) {
                Some(Some(k)) => k.clone(),
                _ => keys::generate().expect("key"),
            };
            keys::write_key_file(&dir.path().join(format!("keys/{id}.key")), id, &key)
                .expect("key file");
            publics.push(keys::public_hex(&key.verifying_key()));
            let cert = if opts.pinned {
                let c = tanoa_pki::self_signed_member(id, 2).expect("self-signed cert");
                pins.push(vec![
                    tanoa_pki::spki_pin(&c.cert_pem).expect("pin").to_string(),
                ]);
                c
            } else {
                pins.push(Vec::new());
                ca.issue_member(id, 2).expect("member cert")
            };
            std::fs::write(dir.path().join("member.pem"), &cert.cert_pem).expect("cert");
            tanoa_pki::write_private_pem(&dir.path().join("member.key"), &cert.key_pem)
                .expect("cert key");
            std::fs::write(dir.path().join("ca.pem"), ca.cert_pem()).expect("ca");
            dirs.push(dir);
        }
        let mut fed = Federation {
            nodes: Vec::new(),
            ids: ids.iter().map(ToString::to_string).collect(),
            targets,
            links,
            relays,
            emulated,
            _ca: ca,
            publics,
            pins,
            rosters: (0..n).map(|_| (0..n).collect()).collect(),
            sync: opts.sync.clone().unwrap_or_else(|| {
                FAST_SYNC
                    .iter()
                    .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                    .collect()
            }),
            extra_config: opts.extra_config.clone(),
            pinned: opts.pinned,
        };
        for (i, dir) in dirs.into_iter().enumerate() {
            let config = dir.path().join("tanoad.toml");
            std::fs::write(&config, fed.config_text(i)).expect("config");
            let mut node = TestNode::adopt(tanoad, dir, config);
            node.set_args(&["--log-format", "json"]);
            fed.nodes.push(node);
        }
        fed
    }

    /// The config of member `i` for its current roster and the current pins.
    fn config_text(&self, i: usize) -> String {
        let id = &self.ids[i];
        let x = FederatedExample {
            member_id: id.clone(),
            name: format!("Test CERT {id}"),
            key_file: format!("keys/{id}.key"),
            data_dir: "data".into(),
            operator_socket: None,
            peer_listen: "127.0.0.1:0".into(),
            tls_cert: "member.pem".into(),
            tls_key: "member.key".into(),
            trust_anchors: if self.pinned {
                Vec::new()
            } else {
                vec!["ca.pem".into()]
            },
            metrics_listen: Some("127.0.0.1:0".into()),
            sync: self.sync.clone(),
            members: self.rosters[i]
                .iter()
                .map(|&j| {
                    let o = &self.ids[j];
                    ExampleMember {
                        id: o.clone(),
                        name: format!("Test CERT {o}"),
                        endpoints: self.links[i][j]
                            .as_ref()
                            .map(LinkProxy::addr)
                            .or_else(|| self.relays[i][j].as_ref().map(Relay::addr))
                            .map(|a| vec![a.to_string()])
                            .unwrap_or_default(),
                        public_keys: vec![self.publics[j].clone()],
                        tls_pins: self.pins[j].clone(),
                    }
                })
                .collect(),
        };
        let mut text = Config::example_federated(&x);
        if let Some(extra) = self.extra_config.get(i) {
            text.push('\n');
            text.push_str(extra);
        }
        text
    }

    /// Sets the members member `i`'s roster lists and rewrites its config (not applied until
    /// it is reloaded or restarted).
    pub fn set_roster(&mut self, i: usize, roster: &[usize]) {
        self.rosters[i] = roster.to_vec();
        self.write_config(i);
    }

    /// Sets the pins listed for member `j` (in every roster written from now on).
    pub fn set_pins(&mut self, j: usize, pins: Vec<String>) {
        self.pins[j] = pins;
    }

    /// The pins currently listed for member `j`.
    pub fn pins(&self, j: usize) -> &[String] {
        &self.pins[j]
    }

    /// Rewrites member `i`'s config from its roster and the current pins.
    pub fn write_config(&self, i: usize) {
        std::fs::write(self.nodes[i].config_path(), self.config_text(i)).expect("config");
    }

    /// Replaces member `j`'s certificate and key files (a renewal: new key, self-signed);
    /// returns the new certificate's pin. Not presented until member `j` reloads.
    pub fn renew_certificate(&self, j: usize) -> String {
        let c = tanoa_pki::self_signed_member(&self.ids[j], 2).expect("self-signed cert");
        let dir = self.nodes[j].dir();
        let tmp_key = dir.join("member.key.new");
        let _ = std::fs::remove_file(&tmp_key);
        tanoa_pki::write_private_pem(&tmp_key, &c.key_pem).expect("new key");
        std::fs::write(dir.join("member.pem.new"), &c.cert_pem).expect("new cert");
        std::fs::rename(dir.join("member.pem.new"), dir.join("member.pem")).expect("cert");
        std::fs::rename(&tmp_key, dir.join("member.key")).expect("key");
        tanoa_pki::spki_pin(&c.cert_pem).expect("pin").to_string()
    }

    /// The relay of the emulated link member `from` dials to reach member `to`.
    pub fn relay_addr(&self, from: usize, to: usize) -> SocketAddr {
        self.relays[from][to]
            .as_ref()
            .map(Relay::addr)
            .unwrap_or_else(|| panic!("no emulated link from {from} to {to}"))
    }

    /// The emulated link between members `a` and `b` (side A is the lower index).
    pub fn emulated(&self, a: usize, b: usize) -> &EmuLink {
        let key = (a.min(b), a.max(b));
        &self
            .emulated
            .iter()
            .find(|(k, _)| *k == key)
            .unwrap_or_else(|| panic!("no emulated link between {a} and {b}"))
            .1
    }

    /// Member ids, in order.
    pub fn ids(&self) -> &[String] {
        &self.ids
    }

    /// Index of member `id`.
    pub fn index(&self, id: &str) -> usize {
        self.ids
            .iter()
            .position(|m| m == id)
            .unwrap_or_else(|| panic!("no member {id}"))
    }

    /// Starts member `i` and points every proxy in front of it at its new peer port.
    pub async fn start_member(&mut self, i: usize) {
        self.nodes[i].start().await;
        let peer = self.nodes[i].started_addr("peer");
        *self.targets[i].lock().unwrap() = Some(peer);
    }

    /// Stops member `i` (SIGTERM, exit 0); proxies in front of it close new connections.
    pub async fn stop_member(&mut self, i: usize) {
        *self.targets[i].lock().unwrap() = None;
        self.nodes[i].stop().await;
    }

    /// Deletes the data directory of a stopped member (store, socket).
    pub fn wipe_member(&self, i: usize) {
        let data = self.nodes[i].dir().join("data");
        std::fs::remove_dir_all(&data).unwrap_or_else(|e| panic!("remove {}: {e}", data.display()));
    }

    /// The proxy member `from` dials to reach member `to`.
    pub fn link(&self, from: usize, to: usize) -> &LinkProxy {
        self.links[from][to].as_ref().expect("no link to itself")
    }

    /// Cuts every link between a member of `left` and a member of `right`, both ways.
    pub fn partition(&self, left: &[usize], right: &[usize]) {
        for &a in left {
            for &b in right {
                self.link(a, b).cut();
                self.link(b, a).cut();
            }
        }
    }

    /// Heals every link.
    pub fn heal_all(&self) {
        for row in &self.links {
            for p in row.iter().flatten() {
                p.heal();
            }
        }
    }

    /// Publishes `draft` on member `i`.
    pub async fn publish(&self, i: usize, draft: pb::AdvisoryDraft) -> pb::PublishResponse {
        self.nodes[i]
            .client()
            .await
            .publish(pb::PublishRequest { draft: Some(draft) })
            .await
            .unwrap_or_else(|s| panic!("publish on {}: {s}", self.ids[i]))
            .into_inner()
    }

    /// Polls `f` every 50 ms until it holds; panics naming `what` after `CONVERGE_TIMEOUT`.
    pub async fn eventually<F, Fut>(what: &str, mut f: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = Instant::now() + CONVERGE_TIMEOUT;
        loop {
            if f().await {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {CONVERGE_TIMEOUT:?} waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until every member in `holders` holds `id` (Get succeeds) and its latest revision
    /// there is `item_id`.
    pub async fn wait_latest(&self, holders: &[usize], id: &str, item_id: &str) {
        for &h in holders {
            let node = &self.nodes[h];
            let what = format!("{} to hold {id} at item {item_id}", self.ids[h]);
            Federation::eventually(&what, || async {
                matches!(latest(node, id).await, Some(l) if l == item_id)
            })
            .await;
        }
    }

    /// Waits until every running member has completed at least `rounds` more reconciliations
    /// it started with every other running member than now: whatever anti-entropy could have
    /// carried by then, it has.
    pub async fn settle(&self, running: &[usize], rounds: u64) {
        let mut before = Vec::new();
        for &i in running {
            before.push(sessions_ok(&self.nodes[i]).await);
        }
        for (k, &i) in running.iter().enumerate() {
            let node = &self.nodes[i];
            let peers: Vec<String> = running
                .iter()
                .filter(|&&j| j != i)
                .map(|&j| self.ids[j].clone())
                .collect();
            let base = before[k].clone();
            let what = format!(
                "{} to reconcile {rounds} more times with {peers:?}",
                self.ids[i]
            );
            Federation::eventually(&what, || {
                let (peers, base) = (&peers, &base);
                async move {
                    let now = sessions_ok(node).await;
                    peers.iter().all(|p| {
                        let b = base.iter().find(|(m, _)| m == p).map_or(0, |(_, n)| *n);
                        now.iter().any(|(m, n)| m == p && *n >= b + rounds)
                    })
                }
            })
            .await;
        }
    }
}

/// `(peer, sessions_ok)` of every peer of `node`.
async fn sessions_ok(node: &TestNode) -> Vec<(String, u64)> {
    node.client()
        .await
        .peers(pb::PeersRequest {})
        .await
        .expect("Peers")
        .into_inner()
        .peers
        .into_iter()
        .map(|p| (p.member_id, p.sessions_ok))
        .collect()
}

/// The latest item id `node` holds for `id` (item id, advisory id or `origin/advisory-id`);
/// `None` on NotFound.
pub async fn latest(node: &TestNode, id: &str) -> Option<String> {
    match node
        .client()
        .await
        .get(pb::GetRequest { id: id.into() })
        .await
    {
        Ok(r) => Some(r.into_inner().latest_item_id),
        Err(s) if s.code() == tonic::Code::NotFound => None,
        Err(s) => panic!("Get {id} on {}: {s}", node.member()),
    }
}

/// Whether `node` holds `id` (Get succeeds; NotFound = false).
pub async fn holds(node: &TestNode, id: &str) -> bool {
    latest(node, id).await.is_some()
}

impl TestNode {
    /// An address the daemon logged in its last `tanoad started` line (`field` = `peer`,
    /// `metrics` or `tcp`); needs `--log-format json`.
    pub fn started_addr(&self, field: &str) -> SocketAddr {
        let v = self.started_field(field);
        let s = v
            .as_str()
            .unwrap_or_else(|| panic!("field {field} = {v} is not a string"));
        s.parse()
            .unwrap_or_else(|e| panic!("field {field} = {s:?} is not an address: {e}"))
    }

    /// A field of the daemon's last `tanoad started` log line (needs `--log-format json`).
    pub fn started_field(&self, field: &str) -> serde_json::Value {
        let log = std::fs::read_to_string(self.dir().join("tanoad.stdout.log")).unwrap_or_default()
            + &std::fs::read_to_string(self.dir().join("tanoad.stderr.log")).unwrap_or_default();
        let line = log
            .lines()
            .rev()
            .find(|l| l.contains("tanoad started"))
            .unwrap_or_else(|| panic!("no \"tanoad started\" line\n{}", self.logs()));
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("log line is not JSON ({e}): {line}"));
        // tracing's JSON layer puts fields at the top level (or under "fields", when nested).
        match v.get(field).or_else(|| v["fields"].get(field)) {
            Some(f) => f.clone(),
            None => panic!("no field {field} in {line}"),
        }
    }

    /// The Prometheus text of the running daemon (`GET /metrics`).
    pub async fn scrape_metrics(&self) -> String {
        let addr = self.started_addr("metrics");
        let mut tcp = tokio::net::TcpStream::connect(addr)
            .await
            .unwrap_or_else(|e| panic!("metrics {addr}: {e}"));
        tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await
            .expect("metrics request");
        let mut out = String::new();
        tokio::time::timeout(Duration::from_secs(10), tcp.read_to_string(&mut out))
            .await
            .expect("metrics answer in time")
            .expect("metrics answer");
        assert!(out.starts_with("HTTP/1.1 200"), "metrics answered {out}");
        out
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir().join("data")
    }
}
