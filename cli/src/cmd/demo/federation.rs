//! The demo federation: five Pacific CERT members with a dev PKI, each a full `tanoad` running
//! in this process on loopback.
//!
//! Owns: the demo directory layout (`pki/` from `tanoa_pki::init_dir`: CA and member
//! certificates, keys 0600; `<member>/keys/<member>.key` 0600; `<member>/tanoad.toml` from
//! `Config::example_federated`; `<member>/data/` with the store and the operator socket),
//! binding every peer and metrics listener on port 0 before any config is written (so the roster
//! holds the real addresses), starting the five nodes with `node::run_with`, and stopping and
//! joining them all.
//! Must never: listen on anything but loopback, write a private key wider than 0600, or return
//! from `shutdown` while one of its nodes still runs.

use std::net::SocketAddr;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tanoa_daemon::client;
use tanoa_daemon::config::{Config, ExampleMember, FederatedExample};
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

/// The five running members. Call `shutdown` before dropping it.
pub struct Federation {
    /// The members, in `MEMBERS` order.
    pub members: Vec<DemoMember>,
    /// The CA certificate every member trusts.
    pub ca_cert: PathBuf,
    nodes: Vec<RunningNode>,
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

/// The roster entries and config text of member `i` (pure: everything is given).
pub fn member_config(members: &[DemoMember], i: usize) -> Option<String> {
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
        members: members
            .iter()
            .map(|o| ExampleMember {
                id: o.id.clone(),
                name: o.name.clone(),
                endpoints: vec![o.peer_addr.to_string()],
                public_keys: vec![o.public_key.clone()],
                tls_pins: vec![],
            })
            .collect(),
    };
    Some(format!(
        "# Written by `tanoa demo` (dev only): member {} of a local federation of five.\n\
         # Ports were chosen by the OS for this run.\n{}",
        m.id,
        Config::example_federated(&x)
    ))
}

impl Federation {
    /// Sets up the dev PKI, keys and configs under `dir` (which must exist and be empty but for
    /// the demo marker), binds every listener, and starts the five nodes. Nothing is left
    /// running when it fails.
    pub async fn launch(dir: &Path) -> Result<Federation, Failure> {
        tanoa_daemon::transport::install_crypto_provider();
        let dir = std::path::absolute(dir)
            .map_err(|e| Failure::failed(format!("{}: {e}", dir.display())))?;
        let pki_dir = dir.join(PKI_DIR);
        pki::init_dir(
            &pki_dir,
            &pki::InitOptions {
                ca_name: CA_NAME.into(),
                ca_days: CERT_DAYS,
                members: MEMBERS.iter().map(|(id, _)| (*id).to_string()).collect(),
                operators: Vec::new(),
                days: CERT_DAYS,
                negative: false,
            },
        )
        .map_err(|e| Failure::failed(format!("demo PKI in {}: {e}", pki_dir.display())))?;

        // Keys and listeners first: the roster needs every public key and every address.
        let mut members = Vec::new();
        let mut listeners = Vec::new();
        for (id, name) in MEMBERS {
            let mdir = dir.join(id);
            mkdir(&mdir, 0o755)?;
            mkdir(&mdir.join("keys"), 0o700)?;
            mkdir(&mdir.join("data"), 0o700)?;
            let key = keys::generate().map_err(|e| Failure::failed(e.to_string()))?;
            let key_path = mdir.join("keys").join(format!("{id}.key"));
            keys::write_key_file(&key_path, id, &key)
                .map_err(|e| Failure::failed(e.to_string()))?;
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

        // Configs, then load and bind each operator socket before starting anything.
        let mut ready = Vec::new();
        for (i, (peer, metrics)) in listeners.into_iter().enumerate() {
            let Some(text) = member_config(&members, i) else {
                return Err(Failure::failed(format!("no demo member {i}")));
            };
            let m = &mut members[i];
            std::fs::write(&m.config, text).map_err(|e| {
                Failure::failed(format!("cannot write {}: {e}", m.config.display()))
            })?;
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
            ready.push((config, unix, peer, metrics));
        }

        let mut nodes = Vec::new();
        for (config, unix, peer, metrics) in ready {
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
            nodes.push(RunningNode {
                stop: Some(tx),
                handle: Some(handle),
            });
        }
        let mut fed = Federation {
            members,
            ca_cert: pki_dir.join(pki::CA_CERT_FILE),
            nodes,
        };
        if let Err(e) = fed.wait_ready().await {
            let _ = fed.shutdown().await;
            return Err(e);
        }
        Ok(fed)
    }

    /// Waits until every node answers Status (bounded), checking that it is the member and
    /// federation we configured.
    async fn wait_ready(&mut self) -> Result<(), Failure> {
        for i in 0..self.members.len() {
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
    fn configs_list_the_whole_roster_with_the_bound_ports_and_fast_sync() {
        let members: Vec<DemoMember> = MEMBERS
            .iter()
            .zip(1..)
            .map(|((id, name), i)| member(i, id, name))
            .collect();
        let text = member_config(&members, 1).unwrap();
        assert!(text.contains("id = \"to-cert\""), "{text}");
        assert!(text.contains("listen = \"127.0.0.1:40002\""));
        assert!(text.contains("listen = \"127.0.0.1:41002\""));
        assert!(text.contains("tls_cert = \"../pki/members/to-cert.pem\""));
        assert!(text.contains("trust_anchors = [\"../pki/ca.pem\"]"));
        assert!(text.contains("interval_ms = 2000"));
        for (i, (id, name)) in MEMBERS.iter().enumerate() {
            assert!(text.contains(&format!("id = \"{id}\"")));
            assert!(text.contains(&format!("name = \"{name}\"")));
            assert!(text.contains(&format!("endpoints = [\"127.0.0.1:{}\"]", 40_001 + i)));
        }
        assert!(member_config(&members, 5).is_none());
        // It is a valid config once the files it names exist.
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
        let c = Config::parse(&text, &dir.join(CONFIG_FILE)).unwrap();
        assert_eq!(c.member.id, "to-cert");
        assert_eq!(c.members.len(), 5);
        assert_eq!(c.sync.interval_ms, 2000);
        assert_eq!(c.operator.socket, dir.join("data").join("tanoad.sock"));
    }

    #[test]
    fn members_are_the_five_pacific_certs() {
        let ids: Vec<&str> = MEMBERS.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids, ["ws-cert", "to-cert", "fj-cert", "au-acsc", "nz-ncsc"]);
        for (id, _) in MEMBERS {
            tanoa_daemon::model::validate::check_member_id(id).unwrap();
        }
    }
}
