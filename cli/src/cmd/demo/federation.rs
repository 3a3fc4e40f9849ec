//! The demo federation: five Pacific CERT members founding a signed roster (version 1, built and
//! signed with the same library calls as `tanoa member request`, `roster init` and `roster sign`),
//! and a sixth, ck-cert (Cook Islands), that joins by a proposal and two approvals and starts
//! from the roster version in force, checked by its hash. Each member is a full `tanoad` running
//! in this process on loopback, with a dev PKI.
//!
//! Owns: the demo directory layout (`pki/` from `tanoa_pki::init_dir`: CA and member
//! certificates, keys 0600; `roster-v1.json`, the founding roster; `<member>/keys/<member>.key`
//! 0600; `<member>/tanoad.toml` from `Config::example_federated` with `[roster] file` + `sha256`;
//! `<member>/data/` with the store and the operator socket), binding every peer and metrics
//! listener on port 0 before any roster or config is written (so the roster holds the real
//! addresses), starting the nodes with `node::run_with`, the join, and stopping and joining them
//! all.
//! Must never: listen on anything but loopback, write a private key wider than 0600, start the
//! joining member on a roster file whose hash is not the one its approvers hold in force, or
//! return from `shutdown` while one of its nodes still runs.

use std::net::SocketAddr;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tanoa_core::envelope::SigningIdentity;
use tanoa_core::roster::{Change, JoinRequest, RosterSignature, SignedRoster, found};
use tanoa_daemon::client;
use tanoa_daemon::config::{Config, FederatedExample};
use tanoa_daemon::node::{self, Listeners, NetListeners, NodeError};
use tanoa_daemon::{envelope, keys};
use tanoa_pki as pki;
use tanoa_proto::v1 as pb;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::connect::{CONFIG_FILE, Client};
use crate::exit::Failure;

/// The demo members: id and display name. The first is the origin of the demo advisories.
pub const MEMBERS: [(&str, &str); 5] = [
    ("ws-cert", "Samoa CERT"),
    ("to-cert", "Tonga CERT"),
    ("fj-cert", "Fiji CERT"),
    ("au-acsc", "Australian Cyber Security Centre"),
    ("nz-ncsc", "New Zealand NCSC"),
];

/// The member that joins during the demo (not a founder): id and display name.
pub const JOINER: (&str, &str) = ("ck-cert", "Cook Islands CERT");
/// The founders that approve the join (the proposer, `MEMBERS[0]`, signs too).
pub const APPROVERS: [&str; 2] = ["to-cert", "fj-cert"];
/// Federation id of the demo roster.
pub const FEDERATION_ID: &str = "pacific-demo";
/// Threshold of the founding roster: 3 of 5 (a majority), so the join needs the proposer and
/// two approvals.
pub const THRESHOLD: u32 = 3;
/// The founding roster file, in the demo directory.
pub const FOUNDING_ROSTER: &str = "roster-v1.json";
/// How long the join may wait for the proposal to reach an approver.
const JOIN_TIMEOUT: Duration = Duration::from_secs(20);

/// Sub-directory of the demo directory holding the dev PKI.
pub const PKI_DIR: &str = "pki";
/// Common name of the demo CA.
pub const CA_NAME: &str = "Tanoa demo federation CA (dev only)";
/// Lifetime of the demo CA and certificates, in days.
pub const CERT_DAYS: u32 = 30;

/// `[sync]` settings of the demo: anti-entropy every 2 s (± 0.5 s) and quick retries, so the
/// federation converges while you watch.
pub const DEMO_SYNC: [(&str, &str); 5] = [
    ("interval_ms", "2000"),
    ("jitter_ms", "500"),
    ("request_timeout_ms", "5000"),
    ("backoff_base_ms", "500"),
    ("backoff_max_ms", "5000"),
];

/// How long a node may take to answer its first operator request.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// One member of the demo federation, as set up on disk.
#[derive(Debug, Clone)]
pub struct DemoMember {
    /// Member id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// The member directory.
    pub dir: PathBuf,
    /// Its `tanoad.toml`.
    pub config: PathBuf,
    /// Its operator socket.
    pub socket: PathBuf,
    /// Its peer port (loopback).
    pub peer_addr: SocketAddr,
    /// Its Prometheus endpoint (loopback).
    pub metrics_addr: SocketAddr,
    /// Signing key id.
    pub key_id: String,
    /// Public signing key, hex.
    pub public_key: String,
    /// Its member certificate (PEM).
    pub tls_cert: PathBuf,
}

impl DemoMember {
    /// `http://<metrics>/metrics`.
    pub fn metrics_url(&self) -> String {
        format!("http://{}/metrics", self.metrics_addr)
    }
}

struct RunningNode {
    stop: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<Result<(), NodeError>>>,
}

/// The demo members: the five founders running, and the joiner (last) once it joined. Call
/// `shutdown` before dropping it.
pub struct Federation {
    /// The members, in `MEMBERS` order, then `JOINER`.
    pub members: Vec<DemoMember>,
    /// The CA certificate every member trusts.
    pub ca_cert: PathBuf,
    /// The founding roster's hash.
    pub founding_hash: String,
    /// The nodes started so far (index = member index).
    nodes: Vec<RunningNode>,
    /// The joiner's peer and metrics listeners, bound before its endpoint entered its join
    /// request, until it starts.
    joiner_listeners: Option<(TcpListener, TcpListener)>,
}

impl std::fmt::Debug for Federation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Federation")
            .field("members", &self.members)
            .field("ca_cert", &self.ca_cert)
            .finish_non_exhaustive()
    }
}

fn mkdir(path: &Path, mode: u32) -> Result<(), Failure> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(path)
        .map_err(|e| Failure::failed(format!("cannot create directory {}: {e}", path.display())))
}

async fn bind_loopback(what: &str, member: &str) -> Result<(TcpListener, SocketAddr), Failure> {
    let l = TcpListener::bind("127.0.0.1:0").await.map_err(|e| {
        Failure::failed(format!(
            "cannot bind a loopback port for the {what} of {member}: {e}"
        ))
    })?;
    let addr = l
        .local_addr()
        .map_err(|e| Failure::failed(format!("{what} of {member}: {e}")))?;
    Ok((l, addr))
}

/// The config text of member `i` (pure: everything is given): its listeners, TLS files, the
/// demo's fast sync, and `[roster]` naming `roster_file` (relative to the member directory)
/// with the hash it must have. No `[[members]]`: the peers come from the signed roster.
pub fn member_config(
    members: &[DemoMember],
    i: usize,
    roster_file: &str,
    roster_hash: &str,
) -> Option<String> {
    let m = members.get(i)?;
    let (cert, key) = (
        format!("../{PKI_DIR}/members/{}.pem", m.id),
        format!("../{PKI_DIR}/members/{}.key", m.id),
    );
    let x = FederatedExample {
        member_id: m.id.clone(),
        name: m.name.clone(),
        key_file: format!("keys/{}.key", m.id),
        data_dir: "data".into(),
        operator_socket: None,
        peer_listen: m.peer_addr.to_string(),
        tls_cert: cert,
        tls_key: key,
        trust_anchors: vec![format!("../{PKI_DIR}/{}", pki::CA_CERT_FILE)],
        metrics_listen: Some(m.metrics_addr.to_string()),
        sync: DEMO_SYNC
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect(),
        members: Vec::new(),
    };
    // Both are ours: a file name without quotes or backslashes, and hex.
    Some(format!(
        "# Written by `tanoa demo` (dev only): member {} of a local federation on a signed \
         roster.\n# Ports were chosen by the OS for this run.\n{}\n[roster]\nfile = \"{roster_file}\"\n\
         sha256 = \"{roster_hash}\"\n",
        m.id,
        Config::example_federated(&x),
    ))
}

/// The founding roster (version 1) of `founders`: each one's join request (endpoint = its peer
/// port, no pin: the demo authenticates by its CA), built into version 1 and signed by every
/// founder, as `tanoa member request`, `roster init` and `roster sign` do.
pub fn founding_roster(
    founders: &[(&DemoMember, &SigningIdentity)],
    now_ms: i64,
) -> Result<SignedRoster, Failure> {
    let requests: Vec<JoinRequest> = founders.iter().map(|(m, id)| join_request(m, id)).collect();
    let doc = found(FEDERATION_ID, THRESHOLD, now_ms, &requests)
        .map_err(|e| Failure::failed(format!("demo roster: {e}")))?;
    let mut s = SignedRoster {
        roster: doc,
        signatures: Vec::new(),
    };
    let hash = s.hash();
    for (_, id) in founders {
        s.signatures.push(RosterSignature::by(id, &hash));
    }
    s.signatures.sort();
    Ok(s)
}

/// The join request of a demo member, signed by its key.
fn join_request(m: &DemoMember, identity: &SigningIdentity) -> JoinRequest {
    JoinRequest::sign_by(
        &m.id,
        &m.name,
        vec![m.peer_addr.to_string()],
        Vec::new(),
        identity,
    )
}

/// What the join did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Join {
    /// The member that joined.
    pub member: String,
    /// The member that proposed it.
    pub proposer: String,
    /// The members that approved it, in order.
    pub approvers: Vec<String>,
    /// Signatures the new version needed.
    pub required: u32,
    /// The version that added it.
    pub version: u64,
    /// Its hash (what the new member's `[roster] sha256` says).
    pub hash: String,
}

/// Writes member `m`'s config `text`, loads it, prepares its data directory and binds its
/// operator socket.
fn prepare_node(
    m: &mut DemoMember,
    text: &str,
    peer: TcpListener,
    metrics: TcpListener,
) -> Result<(Config, tokio::net::UnixListener, TcpListener, TcpListener), Failure> {
    std::fs::write(&m.config, text)
        .map_err(|e| Failure::failed(format!("cannot write {}: {e}", m.config.display())))?;
    let config = Config::load(&m.config).map_err(|e| {
        Failure::failed(format!(
            "the demo config {} does not load: {e}",
            m.config.display()
        ))
        .hint("a shorter --dir path helps if the socket path is too long")
    })?;
    m.socket = config.operator.socket.clone();
    node::prepare_data_dir(&config).map_err(|e| Failure::failed(e.to_string()))?;
    let unix = node::bind_unix(&m.socket).map_err(|e| Failure::failed(e.to_string()))?;
    Ok((config, unix, peer, metrics))
}

/// Starts a node in this process; `RunningNode::stop` ends it.
fn spawn_node(
    config: Config,
    unix: tokio::net::UnixListener,
    peer: TcpListener,
    metrics: TcpListener,
) -> RunningNode {
    let (tx, rx) = oneshot::channel::<()>();
    let handle = tokio::spawn(node::run_with(
        config,
        None,
        Listeners {
            unix: Some(unix),
            tcp: None,
        },
        NetListeners {
            peer: Some(peer),
            metrics: Some(metrics),
            taxii: None,
        },
        async move {
            let _ = rx.await;
        },
    ));
    RunningNode {
        stop: Some(tx),
        handle: Some(handle),
    }
}

impl Federation {
    /// Sets up the dev PKI, keys, the founding roster and the configs under `dir` (which must
    /// exist and be empty but for the demo marker), binds every listener, and starts the five
    /// founders. Nothing is left running when it fails.
    pub async fn launch(dir: &Path) -> Result<Federation, Failure> {
        tanoa_daemon::transport::install_crypto_provider();
        let dir = std::path::absolute(dir)
            .map_err(|e| Failure::failed(format!("{}: {e}", dir.display())))?;
        let pki_dir = dir.join(PKI_DIR);
        let everyone: Vec<(&str, &str)> = MEMBERS.iter().copied().chain([JOINER]).collect();
        pki::init_dir(
            &pki_dir,
            &pki::InitOptions {
                ca_name: CA_NAME.into(),
                ca_days: CERT_DAYS,
                members: everyone.iter().map(|(id, _)| (*id).to_string()).collect(),
                operators: Vec::new(),
                days: CERT_DAYS,
                negative: false,
            },
        )
        .map_err(|e| Failure::failed(format!("demo PKI in {}: {e}", pki_dir.display())))?;

        // Keys and listeners first: the roster needs every public key and every address.
        let mut members = Vec::new();
        let mut identities = Vec::new();
        let mut listeners = Vec::new();
        for (id, name) in everyone {
            let mdir = dir.join(id);
            mkdir(&mdir, 0o755)?;
            mkdir(&mdir.join("keys"), 0o700)?;
            mkdir(&mdir.join("data"), 0o700)?;
            let key = keys::generate().map_err(|e| Failure::failed(e.to_string()))?;
            let key_path = mdir.join("keys").join(format!("{id}.key"));
            keys::write_key_file(&key_path, id, &key)
                .map_err(|e| Failure::failed(e.to_string()))?;
            identities.push(SigningIdentity::new(id, key.clone()));
            let public = key.verifying_key();
            let (peer, peer_addr) = bind_loopback("peer port", id).await?;
            let (metrics, metrics_addr) = bind_loopback("metrics endpoint", id).await?;
            listeners.push((peer, metrics));
            members.push(DemoMember {
                id: id.to_string(),
                name: name.to_string(),
                config: mdir.join(CONFIG_FILE),
                socket: mdir.join("data").join("tanoad.sock"),
                dir: mdir,
                peer_addr,
                metrics_addr,
                key_id: envelope::key_id_of(&public),
                public_key: keys::public_hex(&public),
                tls_cert: pki_dir.join("members").join(format!("{id}.pem")),
            });
        }
        let joiner_listeners = listeners.pop();

        // The founders' roster, version 1, signed by all five.
        let founders: Vec<(&DemoMember, &SigningIdentity)> = members
            .iter()
            .zip(&identities)
            .take(MEMBERS.len())
            .collect();
        let founding = founding_roster(&founders, tanoa_daemon::now_ms())?;
        let founding_hash = founding.hash().to_hex();
        let roster_path = dir.join(FOUNDING_ROSTER);
        std::fs::write(&roster_path, founding.to_json() + "\n")
            .map_err(|e| Failure::failed(format!("cannot write {}: {e}", roster_path.display())))?;

        // Configs, then load and bind each operator socket before starting anything.
        let mut ready = Vec::new();
        for (i, (peer, metrics)) in listeners.into_iter().enumerate() {
            let roster_file = format!("../{FOUNDING_ROSTER}");
            let Some(text) = member_config(&members, i, &roster_file, &founding_hash) else {
                return Err(Failure::failed(format!("no demo member {i}")));
            };
            ready.push(prepare_node(&mut members[i], &text, peer, metrics)?);
        }

        let mut nodes = Vec::new();
        for (config, unix, peer, metrics) in ready {
            nodes.push(spawn_node(config, unix, peer, metrics));
        }
        let mut fed = Federation {
            members,
            ca_cert: pki_dir.join(pki::CA_CERT_FILE),
            founding_hash,
            nodes,
            joiner_listeners,
        };
        for i in 0..fed.nodes.len() {
            if let Err(e) = fed.wait_ready(i).await {
                let _ = fed.shutdown().await;
                return Err(e);
            }
        }
        Ok(fed)
    }

    /// The joiner joins: it writes its join request, `MEMBERS[0]` proposes it, each of
    /// `APPROVERS` approves it (once the proposal reached it), and the joiner starts from the
    /// version in force on the last approver, checked by its hash.
    pub async fn join(&mut self) -> Result<Join, Failure> {
        let j = self
            .index_of(JOINER.0)
            .ok_or_else(|| Failure::failed(format!("no demo member {}", JOINER.0)))?;
        let joiner = self.members[j].clone();
        let identity =
            keys::load_key_file(&joiner.dir.join("keys").join(format!("{}.key", joiner.id)))
                .map_err(|e| Failure::failed(format!("{}: {e}", joiner.id)))?;
        let request = join_request(&joiner, &identity);
        let change = serde_json::to_string(&Change::Add { request })
            .map_err(|e| Failure::failed(format!("join request of {}: {e}", joiner.id)))?;
        let (proposer, _) = MEMBERS[0];
        let mut c = self.client(0).await?;
        let proposed = c
            .roster_propose(pb::RosterProposeRequest {
                change_json: change,
            })
            .await
            .map_err(|s| {
                Failure::failed(format!(
                    "{proposer} proposing {}: {}",
                    joiner.id,
                    s.message()
                ))
            })?
            .into_inner();
        let needed = usize::try_from(proposed.required).unwrap_or(usize::MAX);
        if needed != 1 + APPROVERS.len() {
            return Err(Failure::failed(format!(
                "adding {} needs {} signatures, the demo brings {}",
                joiner.id,
                proposed.required,
                1 + APPROVERS.len()
            )));
        }
        let mut last = 0;
        for approver in APPROVERS {
            last = self
                .index_of(approver)
                .ok_or_else(|| Failure::failed(format!("no demo member {approver}")))?;
            let mut c = self.client(last).await?;
            let t0 = std::time::Instant::now();
            // The proposal travels by gossip: approve once it arrived (bounded).
            loop {
                match c
                    .roster_approve(pb::RosterApproveRequest {
                        proposal: proposed.hash.clone(),
                    })
                    .await
                {
                    Ok(_) => break,
                    Err(s) if s.code() == tonic::Code::NotFound && t0.elapsed() < JOIN_TIMEOUT => {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Err(s) => {
                        return Err(Failure::failed(format!(
                            "{approver} approving {}: {}",
                            joiner.id,
                            s.message()
                        )));
                    }
                }
            }
        }
        // The approvals travel by gossip too: the member that holds all three signatures first
        // publishes the new version. The joiner gets its roster file from the last approver
        // once the version is in force there, checked by the hash that member holds.
        let approver = self.members[last].id.clone();
        let mut c = self.client(last).await?;
        let t0 = std::time::Instant::now();
        let shown = loop {
            let shown = c
                .roster_show(pb::RosterShowRequest {})
                .await
                .map_err(|s| Failure::failed(format!("roster of {approver}: {}", s.message())))?
                .into_inner();
            if shown.version >= proposed.version {
                break shown;
            }
            if t0.elapsed() >= JOIN_TIMEOUT {
                return Err(Failure::failed(format!(
                    "the version adding {} is not in force on {approver} {}s after {} approvals",
                    joiner.id,
                    JOIN_TIMEOUT.as_secs(),
                    APPROVERS.len()
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let file = SignedRoster::from_json(&shown.roster_json)
            .map_err(|e| Failure::failed(format!("the roster of {approver}: {e}")))?;
        if file.hash().to_hex() != shown.hash || shown.version != proposed.version {
            return Err(Failure::failed(format!(
                "the roster handed to {} does not match the version in force (hash {}, version {})",
                joiner.id, shown.hash, shown.version
            )));
        }
        let path = joiner.dir.join("roster.json");
        std::fs::write(&path, file.to_json() + "\n")
            .map_err(|e| Failure::failed(format!("cannot write {}: {e}", path.display())))?;
        let Some(text) = member_config(&self.members, j, "roster.json", &shown.hash) else {
            return Err(Failure::failed(format!("no demo member {j}")));
        };
        let (peer, metrics) = self
            .joiner_listeners
            .take()
            .ok_or_else(|| Failure::failed(format!("{} already started", joiner.id)))?;
        let (config, unix, peer, metrics) =
            prepare_node(&mut self.members[j], &text, peer, metrics)?;
        if self.nodes.len() != j {
            return Err(Failure::failed(format!(
                "{} is not the next node to start",
                joiner.id
            )));
        }
        self.nodes.push(spawn_node(config, unix, peer, metrics));
        self.wait_ready(j).await?;
        Ok(Join {
            member: joiner.id,
            proposer: proposer.to_string(),
            approvers: APPROVERS.iter().map(ToString::to_string).collect(),
            required: proposed.required,
            version: shown.version,
            hash: shown.hash,
        })
    }

    /// Waits until node `i` answers Status (bounded), checking that it is the member and
    /// federation we configured.
    async fn wait_ready(&mut self, i: usize) -> Result<(), Failure> {
        {
            let m = self.members[i].clone();
            let status = tokio::time::timeout(READY_TIMEOUT, async {
                let mut c = self.client(i).await?;
                c.status(pb::StatusRequest {})
                    .await
                    .map(tonic::Response::into_inner)
                    .map_err(|s| Failure::failed(format!("status of {}: {}", m.id, s.message())))
            })
            .await;
            let status = match status {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    self.check_nodes().await?;
                    return Err(e);
                }
                Err(_) => {
                    self.check_nodes().await?;
                    return Err(Failure::failed(format!(
                        "member {} did not answer on {} within {}s",
                        m.id,
                        m.socket.display(),
                        READY_TIMEOUT.as_secs()
                    )));
                }
            };
            if status.member_id != m.id || !status.federation {
                return Err(Failure::failed(format!(
                    "{} answers as member {:?} (federation {}), expected {}",
                    m.socket.display(),
                    status.member_id,
                    status.federation,
                    m.id
                )));
            }
        }
        Ok(())
    }

    /// An operator client of member `i`.
    pub async fn client(&self, i: usize) -> Result<Client, Failure> {
        let m = self
            .members
            .get(i)
            .ok_or_else(|| Failure::failed(format!("no demo member {i}")))?;
        client::connect_unix(&m.socket)
            .await
            .map_err(|e| Failure::failed(format!("member {}: {e}", m.id)))
    }

    /// Fails if a node stopped on its own (with the error it returned).
    pub async fn check_nodes(&mut self) -> Result<(), Failure> {
        for (i, n) in self.nodes.iter_mut().enumerate() {
            if !n.handle.as_ref().is_some_and(JoinHandle::is_finished) {
                continue;
            }
            let id = self.members.get(i).map_or("?", |m| m.id.as_str());
            let Some(h) = n.handle.take() else { continue };
            let detail = match h.await {
                Ok(Ok(())) => "stopped unexpectedly".to_string(),
                Ok(Err(e)) => e.to_string(),
                Err(e) => format!("its task failed: {e}"),
            };
            return Err(Failure::failed(format!("demo member {id}: {detail}")));
        }
        Ok(())
    }

    /// Stops every node, waits until each has stopped and synced its store, and removes the
    /// operator sockets. Reports the first node that failed.
    pub async fn shutdown(&mut self) -> Result<(), Failure> {
        for n in &mut self.nodes {
            if let Some(tx) = n.stop.take() {
                let _ = tx.send(());
            }
        }
        let mut first_error = None;
        for (i, n) in self.nodes.iter_mut().enumerate() {
            let Some(h) = n.handle.take() else { continue };
            let id = self.members.get(i).map_or("?", |m| m.id.as_str());
            let err = match h.await {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(format!("demo member {id} failed: {e}")),
                Err(e) => Some(format!("demo member {id}: its task failed: {e}")),
            };
            if first_error.is_none() {
                first_error = err;
            }
        }
        for m in &self.members {
            let _ = std::fs::remove_file(&m.socket);
        }
        first_error.map_or(Ok(()), |e| Err(Failure::failed(e)))
    }

    /// Index of a member by id.
    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.members.iter().position(|m| m.id == id)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn member(i: u16, id: &str, name: &str) -> DemoMember {
        DemoMember {
            id: id.into(),
            name: name.into(),
            dir: PathBuf::from("/x").join(id),
            config: PathBuf::from("/x").join(id).join(CONFIG_FILE),
            socket: PathBuf::from("/x").join(id).join("data/tanoad.sock"),
            peer_addr: SocketAddr::from(([127, 0, 0, 1], 40_000 + i)),
            metrics_addr: SocketAddr::from(([127, 0, 0, 1], 41_000 + i)),
            key_id: format!("ed25519:{i:016}"),
            public_key: keys::public_hex(&keys::generate().unwrap().verifying_key()),
            tls_cert: PathBuf::from("/x/pki/members").join(format!("{id}.pem")),
        }
    }

    #[test]
    fn configs_follow_the_signed_founding_roster_with_the_bound_ports_and_fast_sync() {
        let members: Vec<DemoMember> = MEMBERS
            .iter()
            .zip(1..)
            .map(|((id, name), i)| member(i, id, name))
            .collect();
        let ids: Vec<SigningIdentity> = MEMBERS
            .iter()
            .map(|(id, _)| SigningIdentity::new(*id, keys::generate().unwrap()))
            .collect();
        let founders: Vec<(&DemoMember, &SigningIdentity)> = members.iter().zip(&ids).collect();
        let roster = founding_roster(&founders, 1_800_000_000_000).unwrap();
        assert_eq!(roster.roster.version, 1);
        assert_eq!(roster.roster.threshold, THRESHOLD);
        assert_eq!(roster.signatures.len(), 5, "signed by every founder");
        for (i, (id, _)) in MEMBERS.iter().enumerate() {
            let m = roster.roster.member(id).unwrap();
            assert_eq!(m.endpoints, [format!("127.0.0.1:{}", 40_001 + i)]);
        }
        let hash = roster.hash().to_hex();
        let text = member_config(&members, 1, "../roster-v1.json", &hash).unwrap();
        assert!(text.contains("id = \"to-cert\""), "{text}");
        assert!(text.contains("listen = \"127.0.0.1:40002\""));
        assert!(text.contains("listen = \"127.0.0.1:41002\""));
        assert!(text.contains("tls_cert = \"../pki/members/to-cert.pem\""));
        assert!(text.contains("trust_anchors = [\"../pki/ca.pem\"]"));
        assert!(text.contains("interval_ms = 2000"));
        assert!(!text.contains("[[members]]"), "{text}");
        assert!(member_config(&members, 5, "x", &hash).is_none());
        // It is a valid config once the files it names exist, and its members are the
        // roster's.
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("to-cert");
        for f in [
            "to-cert/keys/to-cert.key",
            "pki/members/to-cert.pem",
            "pki/members/to-cert.key",
            "pki/ca.pem",
        ] {
            let p = tmp.path().join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, "x").unwrap();
        }
        std::fs::write(tmp.path().join("roster-v1.json"), roster.to_json()).unwrap();
        let c = Config::parse(&text, &dir.join(CONFIG_FILE)).unwrap();
        assert_eq!(c.member.id, "to-cert");
        assert_eq!(c.members.len(), 5);
        assert_eq!(c.sync.interval_ms, 2000);
        assert_eq!(c.operator.socket, dir.join("data").join("tanoad.sock"));
        // A roster file that is not the one hashed is refused.
        let other = member_config(&members, 1, "../roster-v1.json", &"0".repeat(64)).unwrap();
        assert!(Config::parse(&other, &dir.join(CONFIG_FILE)).is_err());
    }

    #[test]
    fn members_are_the_five_pacific_certs() {
        let ids: Vec<&str> = MEMBERS.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids, ["ws-cert", "to-cert", "fj-cert", "au-acsc", "nz-ncsc"]);
        assert_eq!(JOINER.0, "ck-cert");
        for (id, _) in MEMBERS.iter().chain([&JOINER]) {
            tanoa_daemon::model::validate::check_member_id(id).unwrap();
        }
    }
}
