//! Wiring of a running node: store, core, listeners, tasks, signals and shutdown.
//!
//! Owns: opening the store from the config, binding the operator Unix socket (mode 0600, stale
//! sockets replaced, a live daemon refused), serving the Operator and gRPC health services on
//! every operator listener (TCP with mutual TLS accepted here with tokio-rustls, so the identity
//! comes from the verified certificate), the federation when `[peer]` is configured (the peer
//! port: TLS accepted here, the `Peer` service and health on it; the sync driver of `driver`;
//! refusals logged and counted), the Prometheus endpoint (`metrics`), the TAXII 2.1 endpoint
//! when `[taxii]` is configured (`crate::taxii`), graceful shutdown (stop
//! accepting, join every task, sync the store), logging set-up, and `main_entry`, all of
//! `tanoad`'s main.
//! Must never: return from `run` while a task it spawned still runs or before the store is
//! synced, serve the operator API on a listener a peer certificate could use, or serve the peer
//! API on the operator listeners.

use std::ffi::OsString;
use std::future::Future;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, ConfigError, LogFormat};
use crate::keys::{self, KeyError};
use crate::metrics;
use crate::publish::NodeCore;
use crate::store::{self, Store, StoreError};
use crate::transport::{self, OperatorTlsStream, TransportError};

/// How long in-flight requests may take to finish after shutdown begins.
pub(crate) const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Why the node could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The signing key could not be loaded.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The key file belongs to another member.
    #[error(
        "key file {path} belongs to member {found:?}, but member.id in the config is {expected:?}"
    )]
    KeyMember {
        /// Key file.
        path: PathBuf,
        /// Member in the key file.
        found: String,
        /// Member in the config.
        expected: String,
    },
    /// The store failed to open or sync.
    #[error("store {path}: {source}")]
    Store {
        /// Store directory.
        path: PathBuf,
        /// Cause.
        source: StoreError,
    },
    /// The data directory could not be prepared.
    #[error("data directory {path}: {source}")]
    DataDir {
        /// Directory.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The operator socket could not be bound.
    #[error("operator socket {path}: {detail}")]
    Socket {
        /// Socket path.
        path: PathBuf,
        /// What failed.
        detail: String,
    },
    /// Another daemon answers on the socket.
    #[error(
        "another tanoad is already running on {path}; stop it first (or set operator.socket to \
         another path)"
    )]
    AlreadyRunning {
        /// Socket path.
        path: PathBuf,
    },
    /// The TCP listener could not be bound.
    #[error("operator.tcp_listen {addr}: {source}")]
    Tcp {
        /// Address.
        addr: String,
        /// Cause.
        source: std::io::Error,
    },
    /// TLS configuration failed.
    #[error(transparent)]
    Tls(#[from] TransportError),
    /// A listener was given without the configuration it needs.
    #[error("{0}")]
    Listener(String),
    /// The roster does not fit this member.
    #[error("{0}")]
    Roster(String),
    /// A federation or metrics listener could not be bound.
    #[error("{what} {addr}: {source}")]
    Bind {
        /// Which setting, e.g. `peer.listen`.
        what: &'static str,
        /// Address.
        addr: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The sync core could not be set up.
    #[error("sync: {0}")]
    Sync(String),
    /// A server task failed.
    #[error("serving {listener}: {detail}")]
    Serve {
        /// Which listener.
        listener: String,
        /// What failed.
        detail: String,
    },
}

/// The listeners a node serves on, bound by the caller (so tests can use port 0 and temp paths).
#[derive(Debug, Default)]
pub struct Listeners {
    /// Operator API on a Unix socket (see `bind_unix`).
    pub unix: Option<UnixListener>,
    /// Operator API on TCP with mutual TLS (needs `[operator] tcp_listen` and its TLS files).
    pub tcp: Option<TcpListener>,
}

/// The federation, metrics and TAXII listeners, bound by the caller (tests: port 0, so every member's
/// endpoint is known before the configs are written). A listener left `None` is bound by the
/// node from the config (`[peer] listen`, `[metrics] listen`, `[taxii] listen`) when that
/// section is present.
#[derive(Debug, Default)]
pub struct NetListeners {
    /// The peer port (needs `[peer]`).
    pub peer: Option<TcpListener>,
    /// The Prometheus endpoint.
    pub metrics: Option<TcpListener>,
    /// The TAXII 2.1 endpoint (needs `[taxii]`).
    pub taxii: Option<TcpListener>,
}

/// Creates the data directory (mode 0700) if it does not exist.
pub fn prepare_data_dir(config: &Config) -> Result<(), NodeError> {
    let dir = &config.storage.data_dir;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| NodeError::DataDir {
            path: dir.clone(),
            source,
        })
}

/// Binds the operator Unix socket at `path` with mode 0600.
///
/// A stale socket file (nobody answers) is replaced; a live daemon answering on it is refused
/// with `NodeError::AlreadyRunning`; any other kind of file there is refused. The socket is bound
/// inside a fresh 0700 directory, set to 0600 and checked, then renamed into place, so it is
/// never reachable with wider permissions whatever the umask. Must be called inside a tokio
/// runtime.
pub fn bind_unix(path: &Path) -> Result<UnixListener, NodeError> {
    let sock_err = |detail: String| NodeError::Socket {
        path: path.to_path_buf(),
        detail,
    };
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            match std::os::unix::net::UnixStream::connect(path) {
                Ok(_) => {
                    return Err(NodeError::AlreadyRunning {
                        path: path.to_path_buf(),
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    tracing::info!(socket = %path.display(), "replacing stale operator socket");
                }
                Err(e) => return Err(sock_err(format!("cannot check the existing socket: {e}"))),
            }
        }
        Ok(_) => {
            return Err(sock_err(
                "exists and is not a socket; remove it or set operator.socket to another path"
                    .into(),
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(sock_err(e.to_string())),
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !parent.is_dir() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&parent)
            .map_err(|e| sock_err(format!("cannot create {}: {e}", parent.display())))?;
    }
    let mut rnd = [0u8; 3];
    getrandom::fill(&mut rnd).map_err(|e| sock_err(format!("no random bytes: {e}")))?;
    let tmp_dir = parent.join(format!(".t{}", hex::encode(rnd)));
    let tmp_sock = tmp_dir.join("s");
    let std_listener = if tmp_sock.as_os_str().len() <= crate::config::MAX_SOCKET_PATH {
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&tmp_dir)
            .map_err(|e| sock_err(format!("cannot create {}: {e}", tmp_dir.display())))?;
        let bound = (|| {
            std::fs::set_permissions(&tmp_dir, std::fs::Permissions::from_mode(0o700))?;
            let l = std::os::unix::net::UnixListener::bind(&tmp_sock)?;
            std::fs::set_permissions(&tmp_sock, std::fs::Permissions::from_mode(0o600))?;
            check_mode(&tmp_sock)?;
            std::fs::rename(&tmp_sock, path)?;
            Ok::<_, std::io::Error>(l)
        })();
        let _ = std::fs::remove_file(&tmp_sock);
        let _ = std::fs::remove_dir(&tmp_dir);
        bound.map_err(|e| sock_err(e.to_string()))?
    } else {
        // The temporary path would be too long: bind in place, then restrict at once.
        let _ = std::fs::remove_file(path);
        let l =
            std::os::unix::net::UnixListener::bind(path).map_err(|e| sock_err(e.to_string()))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| sock_err(e.to_string()))?;
        l
    };
    check_mode(path).map_err(|e| sock_err(e.to_string()))?;
    std_listener
        .set_nonblocking(true)
        .map_err(|e| sock_err(e.to_string()))?;
    UnixListener::from_std(std_listener).map_err(|e| sock_err(e.to_string()))
}

fn check_mode(path: &Path) -> std::io::Result<()> {
    let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
    if mode == 0o600 {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "socket has mode {mode:o} after chmod 600"
        )))
    }
}

/// Opens the durable sled store of a config (in `<data_dir>/store`, cache from
/// `storage.cache_mb`).
pub async fn open_store(config: &Config) -> Result<Arc<dyn Store>, NodeError> {
    prepare_data_dir(config)?;
    let path = config.storage.store_path();
    let sled_config = config.storage.sled_config();
    let p = path.clone();
    tokio::task::spawn_blocking(move || store::open(&p, &sled_config))
        .await
        .map_err(|e| NodeError::Store {
            path: path.clone(),
            source: StoreError::Backend(format!("open task failed: {e}")),
        })?
        .map_err(|source| NodeError::Store { path, source })
}

/// Loads the signing key named by the config and checks it belongs to `member.id`.
pub(crate) fn load_identity(
    config: &Config,
) -> Result<crate::envelope::SigningIdentity, NodeError> {
    let identity = keys::load_key_file(&config.member.key_file)?;
    if identity.member() != config.member.id {
        return Err(NodeError::KeyMember {
            path: config.member.key_file.clone(),
            found: identity.member().to_string(),
            expected: config.member.id.clone(),
        });
    }
    Ok(identity)
}

/// Builds the rustls config of the TCP operator listener from the config's TLS files, if set.
pub(crate) fn operator_tls(
    config: &Config,
) -> Result<Option<Arc<rustls::ServerConfig>>, NodeError> {
    operator_tls_with_hook(config, None)
}

/// `operator_tls` reporting refused identities (a peer certificate on the operator port) to
/// `hook`.
pub(crate) fn operator_tls_with_hook(
    config: &Config,
    hook: Option<transport::RefusalHook>,
) -> Result<Option<Arc<rustls::ServerConfig>>, NodeError> {
    transport::install_crypto_provider();
    match &config.operator.tcp {
        None => Ok(None),
        Some(t) => Ok(Some(
            transport::operator_server_config_from_files_with_hook(
                &t.tls_cert,
                &t.tls_key,
                &t.client_ca,
                hook,
            )?,
        )),
    }
}

/// Checks a local `[[members]]` roster against this member: if it lists this member with keys,
/// the signing key must be one of them (so peers verify what we sign). With `[roster]` the
/// check is `check_own_key_in_force`, once the store gave the version in force (the roster file
/// is only the anchor: a rotation of this member's key is in a later version).
pub(crate) fn check_roster(
    config: &Config,
    identity: &crate::envelope::SigningIdentity,
) -> Result<(), NodeError> {
    if config.roster.is_some() {
        return Ok(());
    }
    if let Some(own) = config.own_roster_entry()
        && !own.keys.is_empty()
        && !own.keys.iter().any(|k| k.key_id == identity.key_id())
    {
        return Err(NodeError::Roster(format!(
            "{}: [[members]] lists {} with keys {}, but its signing key {} ({}) is not among them",
            config.path.display(),
            own.id,
            own.keys
                .iter()
                .map(|k| k.key_id.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            identity.key_id(),
            config.member.key_file.display()
        )));
    }
    Ok(())
}

/// With `[roster]`: the signing key must be valid for this member now in `in_force`, the
/// version reached from the roster file and the roster items in the store. A member the
/// version does not list (not yet added, or removed) starts with a warning: nobody accepts
/// what it signs, but its store stays readable.
pub(crate) fn check_own_key_in_force(
    config: &Config,
    identity: &crate::envelope::SigningIdentity,
    in_force: &tanoa_core::roster::SignedRoster,
    now_ms: i64,
) -> Result<(), NodeError> {
    let Some(rc) = &config.roster else {
        return Ok(());
    };
    match crate::roster::own_key_in(
        &in_force.roster,
        &config.member.id,
        identity.key_id(),
        now_ms,
    ) {
        Ok(()) => Ok(()),
        Err(crate::roster::OwnKeyProblem::NotMember) => {
            tracing::warn!(member = %config.member.id, version = in_force.roster.version,
                "this member is not in the roster version in force: peers refuse what it signs");
            Ok(())
        }
        Err(crate::roster::OwnKeyProblem::Invalid(why)) => Err(NodeError::Roster(format!(
            "{}: the signing key of {} in member.key_file {} cannot sign: {why} (the version in \
             force, hash {}, reached from roster file {} and the roster items in the store); \
             point member.key_file at the key the roster lists",
            config.path.display(),
            config.member.id,
            config.member.key_file.display(),
            in_force.hash(),
            rc.file.display()
        ))),
    }
}

/// Loads the peer port's TLS material of the config (`None` without `[peer]`).
pub fn peer_tls(
    config: &Config,
    hook: transport::RefusalHook,
) -> Result<Option<transport::PeerTls>, NodeError> {
    transport::install_crypto_provider();
    let Some(p) = &config.peer else {
        return Ok(None);
    };
    Ok(Some(transport::PeerTls::from_files(
        &config.member.id,
        &p.tls_cert,
        &p.tls_key,
        &p.trust_anchors,
        config
            .peers()
            .map(|m| (m.id.clone(), m.tls_pins.clone()))
            .collect(),
        hook,
    )?))
}

/// Runs a node with the sled store of `config` until `shutdown` completes, then stops accepting,
/// joins every task, syncs the store and checkpoints it (`SledStore::checkpoint`: the next start
/// replays nothing) before returning. Peer and metrics listeners are bound from the config.
pub async fn run(
    config: Config,
    listeners: Listeners,
    shutdown: impl Future<Output = ()>,
) -> Result<(), NodeError> {
    run_with(config, None, listeners, NetListeners::default(), shutdown).await
}

/// Same as `run` over a store the caller opened (`MemoryStore` in the node's tests).
#[cfg(test)]
pub(crate) async fn run_with_store(
    config: Config,
    store: Arc<dyn Store>,
    listeners: Listeners,
    shutdown: impl Future<Output = ()>,
) -> Result<(), NodeError> {
    run_with(
        config,
        Some(store),
        listeners,
        NetListeners::default(),
        shutdown,
    )
    .await
}

/// The general form of `run`: `store` None = the sled store of the config; peer and metrics
/// listeners given in `net` (or bound from the config when `None`).
pub async fn run_with(
    config: Config,
    store: Option<Arc<dyn Store>>,
    listeners: Listeners,
    net: NetListeners,
    shutdown: impl Future<Output = ()>,
) -> Result<(), NodeError> {
    let started = Instant::now();
    let (store, opened_here) = match store {
        Some(s) => (s, false),
        None => (open_store(&config).await?, true),
    };
    let path = config.storage.store_path();
    let sled_config = config.storage.sled_config();
    serve(config, store, listeners, net, shutdown, started).await?;
    if opened_here {
        checkpoint_store(path, sled_config).await;
    }
    Ok(())
}

/// After a clean shutdown (the store synced and closed): reopens and closes the sled store so
/// sled writes its snapshot, and the next start replays nothing (`SledStore::checkpoint`). A
/// failure costs only start-up time, so it is logged, not returned.
async fn checkpoint_store(path: PathBuf, sled_config: store::SledConfig) {
    let p = path.clone();
    let done =
        tokio::task::spawn_blocking(move || store::SledStore::checkpoint(&p, &sled_config)).await;
    match done {
        Ok(Ok(took)) => tracing::info!(
            store = %path.display(),
            ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
            "store checkpointed: the next start replays nothing"
        ),
        Ok(Err(e)) => tracing::warn!(store = %path.display(), error = %e,
            "store not checkpointed: the next start replays the log"),
        Err(e) => tracing::warn!(store = %path.display(), error = %e,
            "store checkpoint task failed: the next start replays the log"),
    }
}

/// Accepts TCP connections on the peer port, runs each TLS handshake in its own task (bounded
/// in time, see `tcp_accept`), and passes connections of verified roster members on. Refusals
/// are reported by the transport's hook; connections closed by the accept loop's limits and
/// timed-out handshakes are counted through `limits.on_closed`. Joins its handshake tasks
/// before returning.
async fn accept_peers(
    listener: TcpListener,
    tls: transport::PeerTls,
    hook: transport::RefusalHook,
    limits: crate::tcp_accept::AcceptLimits,
    tx: mpsc::Sender<Result<LivePeerStream, std::io::Error>>,
    cancel: CancellationToken,
) {
    let on_closed = limits.on_closed.clone();
    let acceptor = TlsAcceptor::from(tls.server_config());
    crate::tcp_accept::accept_each(listener, "peer", limits, cancel, |tcp, remote, deadline| {
        if let Err(e) = crate::peer_link::limit_unsent(&tcp, crate::peer_link::NOTSENT_LOWAT_BYTES)
        {
            tracing::debug!(%remote, error = %e, "TCP_NOTSENT_LOWAT not set");
        }
        let (acceptor, tx, hook, tls) = (acceptor.clone(), tx.clone(), hook.clone(), tls.clone());
        let on_closed = on_closed.clone();
        async move {
            match tokio::time::timeout(
                deadline,
                transport::accept_peer(&acceptor, tcp, &hook, &tls),
            )
            .await
            {
                Ok(Ok(stream)) => {
                    tracing::debug!(%remote, peer = %stream.get_ref().identity().member,
                        "peer connected");
                    let _ = tx.send(Ok(stream)).await;
                }
                Ok(Err(e)) => {
                    tracing::debug!(%remote, error = %e, "peer connection refused");
                }
                Err(_) => {
                    if let Some(count) = &on_closed {
                        count("peer", crate::tcp_accept::closed::HANDSHAKE_TIMEOUT);
                    }
                    hook(&transport::Refusal {
                        reason: transport::refusal::HANDSHAKE,
                        side: "peer port".into(),
                        remote: Some(remote),
                        subject: format!("remote {remote}"),
                        detail: format!("TLS handshake timed out after {deadline:?}"),
                    });
                }
            }
        }
    })
    .await;
}

/// The addresses the peer endpoints of a membership resolve to (`me` excluded).
pub(crate) async fn membership_addresses(
    m: &crate::membership::Membership,
    me: &str,
) -> std::collections::HashSet<std::net::IpAddr> {
    let mut out = std::collections::HashSet::new();
    for m in m.members.values().filter(|m| m.id != me) {
        for raw in &m.endpoints {
            let Ok(ep) = crate::config::PeerEndpoint::parse(raw) else {
                tracing::warn!(member = %m.id, endpoint = %raw, "unusable roster endpoint");
                continue;
            };
            if let Ok(ip) = ep.host.parse::<std::net::IpAddr>() {
                out.insert(ip.to_canonical());
                continue;
            }
            let lookup = tokio::net::lookup_host((ep.host.as_str(), ep.port));
            match tokio::time::timeout(ROSTER_LOOKUP_TIMEOUT, lookup).await {
                Ok(Ok(addrs)) => out.extend(addrs.map(|a| a.ip().to_canonical())),
                Ok(Err(e)) => {
                    tracing::warn!(member = %m.id, endpoint = %ep, error = %e,
                        "cannot resolve a roster endpoint; no reserved capacity for it");
                }
                Err(_) => {
                    tracing::warn!(member = %m.id, endpoint = %ep,
                        "resolving a roster endpoint timed out; no reserved capacity for it");
                }
            }
        }
    }
    out
}

/// A connection on the peer port, closed when its authentication is withdrawn.
type LivePeerStream = transport::LiveStream<transport::PeerTlsStream>;

/// Bound of one roster endpoint lookup.
const ROSTER_LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the roster endpoints are resolved again (their addresses may change).
const ROSTER_REFRESH: Duration = Duration::from_secs(300);

/// The accept limits of a listener counted in `metrics` (`tanoa_listener_refused_total`).
fn accept_limits(metrics: &Arc<metrics::Metrics>) -> crate::tcp_accept::AcceptLimits {
    let m = Arc::clone(metrics);
    crate::tcp_accept::AcceptLimits {
        on_closed: Some(Arc::new(move |listener, reason| {
            m.listener_refused(listener, reason);
        })),
        ..crate::tcp_accept::AcceptLimits::new()
    }
}

/// Renders the metrics of a node from its counters, its sync driver and its store.
#[derive(Debug)]
struct MetricsSource {
    metrics: Arc<metrics::Metrics>,
    core: Arc<NodeCore>,
}

impl metrics::Render for MetricsSource {
    fn render(&self) -> std::pin::Pin<Box<dyn Future<Output = String> + Send + '_>> {
        Box::pin(async move {
            let peers = match self.core.sync_handle() {
                Some(h) => h
                    .peers()
                    .await
                    .unwrap_or_default()
                    .into_iter()
                    .map(|v| v.status)
                    .collect(),
                None => Vec::new(),
            };
            let counts = self.core.blocking(|s| s.counts()).await.ok();
            let equivocating = self
                .core
                .blocking(|s| s.equivocating_origins())
                .await
                .unwrap_or_default();
            let mut text = self.metrics.render(&peers, counts.as_ref(), &equivocating);
            if let Some(r) = self.core.roster() {
                text.push_str(&crate::roster::metrics_text(r));
            }
            text
        })
    }
}

async fn bind_tcp(
    what: &'static str,
    addr: std::net::SocketAddr,
) -> Result<TcpListener, NodeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| NodeError::Bind {
            what,
            addr: addr.to_string(),
            source,
        })
}

/// The hook reporting TLS refusals: the counter, and a warning naming the certificate and the
/// remote address, at most one line per reason every `tcp_accept::LOG_PERIOD` (an attacker can
/// cause refusals at will; the counter has them all).
fn refusal_hook(metrics: &Arc<metrics::Metrics>) -> transport::RefusalHook {
    let metrics = Arc::clone(metrics);
    let gates: std::sync::Mutex<
        std::collections::BTreeMap<&'static str, Arc<crate::tcp_accept::LogGate>>,
    > = std::sync::Mutex::default();
    Arc::new(move |r: &transport::Refusal| {
        metrics.refusal(r.reason);
        let gate = Arc::clone(
            gates
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .entry(r.reason)
                .or_insert_with(|| {
                    Arc::new(crate::tcp_accept::LogGate::new(
                        crate::tcp_accept::LOG_PERIOD,
                    ))
                }),
        );
        if let Some(held) = gate.admit() {
            tracing::warn!(reason = r.reason, side = %r.side,
                remote = %transport::remote_text(r.remote), subject = %r.subject,
                detail = %r.detail, not_logged_since_last_line = held,
                "TLS connection refused");
        }
    })
}

/// Accepts TCP connections, runs each TLS handshake in its own task (bounded in time), and
/// passes verified operator connections on. Joins its handshake tasks before returning.
async fn accept_tls(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    limits: crate::tcp_accept::AcceptLimits,
    tx: mpsc::Sender<Result<OperatorTlsStream, std::io::Error>>,
    cancel: CancellationToken,
) {
    let what = "operator_tcp";
    crate::tcp_accept::accept_each(listener, what, limits, cancel, |tcp, remote, deadline| {
        let (acceptor, tx) = (acceptor.clone(), tx.clone());
        async move {
            match tokio::time::timeout(deadline, transport::accept_operator(&acceptor, tcp)).await {
                Ok(Ok(stream)) => {
                    tracing::debug!(%remote, operator = %stream.identity().name,
                        "operator connected over TLS");
                    let _ = tx.send(Ok(stream)).await;
                }
                Ok(Err(e)) => {
                    tracing::warn!(%remote, error = %e, "operator connection refused");
                }
                Err(_) => {
                    tracing::warn!(%remote, "operator TLS handshake timed out");
                }
            }
        }
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// main

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormatArg {
    Text,
    Json,
}

/// tanoad: the Tanoa federation daemon of one CERT.
#[derive(Debug, Parser)]
#[command(name = "tanoad", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Config file (TOML); `tanoa init` writes one.
    #[arg(long, value_name = "PATH", global = true, env = "TANOAD_CONFIG")]
    config: Option<PathBuf>,
    /// Log format (overrides [log] format).
    #[arg(long, value_enum)]
    log_format: Option<LogFormatArg>,
    /// Log filter, e.g. info or tanoa_daemon=debug (overrides [log] level).
    #[arg(long, value_name = "LEVEL")]
    log_level: Option<String>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Validate the config (and the key and TLS files it names), then exit: 0 valid, 2 not.
    CheckConfig,
}

/// Exit code of a clean shutdown.
pub(crate) const EXIT_OK: u8 = 0;
/// Exit code of a runtime failure.
pub(crate) const EXIT_FAILURE: u8 = 1;
/// Exit code of a bad config or bad usage.
pub(crate) const EXIT_USAGE: u8 = 2;

fn init_logging(format: LogFormat, level: &str) {
    let filter = crate::config::parse_log_filter(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    // Already initialized (tests calling main_entry twice) is fine.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// Completes on SIGINT or SIGTERM.
pub(crate) fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{SignalKind, signal};
    // Register both handlers NOW (not on first poll): once registered, a SIGTERM that arrives
    // before the future is polled is queued instead of killing the process with the default
    // action. `start` calls this before binding any listener.
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    async move {
        let term = async {
            match term {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for SIGTERM");
                    std::future::pending::<()>().await;
                }
            }
        };
        let int = async {
            match int {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for SIGINT");
                    std::future::pending::<()>().await;
                }
            }
        };
        tokio::select! {
            _ = term => tracing::info!("SIGTERM received"),
            _ = int => tracing::info!("SIGINT received"),
        }
    }
}

fn check_config(config: &Config) -> Result<String, NodeError> {
    let identity = load_identity(config)?;
    check_roster(config, &identity)?;
    operator_tls(config)?;
    peer_tls(config, transport::logging_hook())?;
    if let Some(tls) = config.taxii.as_ref().and_then(|t| t.tls.as_ref()) {
        crate::taxii::tls_server_config(tls)?;
    }
    Ok(format!(
        "{}: valid (member {}, key {}, socket {}{})",
        config.path.display(),
        config.member.id,
        identity.key_id(),
        config.operator.socket.display(),
        config
            .operator
            .tcp
            .as_ref()
            .map(|t| format!(", operator TLS on {}", t.listen))
            .unwrap_or_default()
            + &config
                .peer
                .as_ref()
                .map(|p| format!(
                    ", peer port {} with {} peers",
                    p.listen,
                    config.peers().count()
                ))
                .unwrap_or_default()
    ))
}

async fn start(config: Config) -> Result<(), NodeError> {
    let shutdown = shutdown_signal();
    prepare_data_dir(&config)?;
    let socket = config.operator.socket.clone();
    let unix = bind_unix(&socket)?;
    let bound_ino = std::fs::metadata(&socket).map(|m| m.ino()).ok();
    let tcp = match &config.operator.tcp {
        None => None,
        Some(t) => Some(
            TcpListener::bind(t.listen)
                .await
                .map_err(|source| NodeError::Tcp {
                    addr: t.listen.to_string(),
                    source,
                })?,
        ),
    };
    let result = run(
        config,
        Listeners {
            unix: Some(unix),
            tcp,
        },
        shutdown,
    )
    .await;
    // Remove our socket file (only if it is still the one we bound).
    if bound_ino.is_some() && std::fs::metadata(&socket).map(|m| m.ino()).ok() == bound_ino {
        let _ = std::fs::remove_file(&socket);
    }
    result
}

/// All of `tanoad`'s main: parses `args` (including the program name), loads the config, sets
/// up logging, binds the listeners, runs until SIGINT/SIGTERM. Exit codes: 0 clean shutdown,
/// 1 runtime failure, 2 bad config or usage.
pub fn main_entry<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    // First, before the runtime starts its threads (see `malloc`).
    let _ = crate::malloc::limit_arenas();
    let _ = crate::malloc::pin_mmap_threshold();
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(EXIT_USAGE));
        }
    };
    let Some(path) = cli.config else {
        eprintln!(
            "tanoad: --config PATH is required (create a member and its config with: tanoa init)"
        );
        return ExitCode::from(EXIT_USAGE);
    };
    let config = match Config::load(&path) {
        Ok(c) => c,
        Err(e) => {
            for p in e.problems() {
                eprintln!("tanoad: {p}");
            }
            return ExitCode::from(EXIT_USAGE);
        }
    };
    if let Some(Command::CheckConfig) = cli.command {
        return match check_config(&config) {
            Ok(msg) => {
                println!("{msg}");
                ExitCode::from(EXIT_OK)
            }
            Err(e) => {
                eprintln!("tanoad: {}: {e}", config.path.display());
                ExitCode::from(EXIT_USAGE)
            }
        };
    }
    let format = match cli.log_format {
        Some(LogFormatArg::Text) => LogFormat::Text,
        Some(LogFormatArg::Json) => LogFormat::Json,
        None => config.log.format,
    };
    let level = cli.log_level.unwrap_or_else(|| config.log.level.clone());
    if let Err(e) = crate::config::parse_log_filter(&level) {
        eprintln!("tanoad: --log-level: {e}");
        return ExitCode::from(EXIT_USAGE);
    }
    init_logging(format, &level);
    transport::install_crypto_provider();
    // Key and TLS problems are configuration problems: report them before starting.
    if let Err(e) = check_config(&config) {
        eprintln!("tanoad: {}: {e}", config.path.display());
        return ExitCode::from(EXIT_USAGE);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("tanoad")
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tanoad: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    match runtime.block_on(start(config)) {
        Ok(()) => ExitCode::from(EXIT_OK),
        Err(e) => {
            // Text logs already go to stderr: one line is enough there.
            if format == LogFormat::Json {
                tracing::error!(error = %e, "tanoad failed");
            }
            eprintln!("tanoad: {e}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

pub mod driver;
mod live;
mod serve;
use serve::serve;

mod warninglists;

#[cfg(test)]
mod fed_tests;
#[cfg(test)]
mod tests;
