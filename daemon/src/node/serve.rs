//! `serve`: the life of a started node — build the core, start every listener and task, wait
//! for the shutdown signal (or a task failing), then drain, close the committer and sync.
//!
//! Owns: the order of start-up and shutdown, and the one way a gRPC router is served on an
//! incoming stream (`spawn_grpc`, used by the peer port, the operator socket and the operator
//! TCP port). Must never: return while a task it spawned runs, or before the store is synced.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use tanoa_proto::v1::operator_server::OperatorServer;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_stream::Stream;
use tokio_stream::wrappers::{ReceiverStream, UnixListenerStream};
use tokio_util::sync::CancellationToken;
use tonic::transport::Server;
use tonic::transport::server::{Connected, Router};

use super::{
    Listeners, MetricsSource, NetListeners, NodeError, ROSTER_REFRESH, SHUTDOWN_GRACE,
    accept_limits, accept_peers, accept_tls, bind_tcp, check_own_key_in_force, check_roster,
    driver, live, load_identity, operator_tls_with_hook, peer_tls, refusal_hook, warninglists,
};
use crate::api::OperatorApi;
use crate::config::Config;
use crate::metrics::{self, Metrics};
use crate::publish::NodeCore;
use crate::store::{Store, StoreError};
use crate::transport::{PeerTls, RefusalHook};

/// With `[roster]`: the version in force at start (the anchor plus every roster item already
/// stored); the node is then built with its members (peers, endpoints, keys).
async fn start_roster(
    config: &mut Config,
    store: &Arc<dyn Store>,
) -> Result<Option<Arc<crate::roster::RosterRuntime>>, NodeError> {
    let Some(rc) = config.roster.clone() else {
        return Ok(None);
    };
    let (me, trusted, s) = (
        config.member.id.clone(),
        config.trusted.clone(),
        Arc::clone(store),
    );
    let rt = tokio::task::spawn_blocking(move || {
        crate::roster::RosterRuntime::start(rc.anchor, &me, trusted, s.as_ref())
    })
    .await
    .map_err(|e| NodeError::Roster(format!("roster start-up task failed: {e}")))?
    .map_err(|e| NodeError::Roster(format!("{}: {e}", config.path.display())))?;
    config.members = crate::config::members_of(&rt.current().roster);
    Ok(Some(Arc::new(rt)))
}

/// Every task of a running node: its name, and how it ended.
type Tasks = JoinSet<(String, Result<(), String>)>;

/// Runs the node until `shutdown` (see the module doc).
pub(super) async fn serve(
    mut config: Config,
    store: Arc<dyn Store>,
    listeners: Listeners,
    net: NetListeners,
    shutdown: impl Future<Output = ()>,
    started: Instant,
) -> Result<(), NodeError> {
    // Registered first: SIGHUP's default action would end the process.
    let hup =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).map_err(|e| {
            NodeError::Serve {
                listener: "SIGHUP handler".into(),
                detail: e.to_string(),
            }
        })?;
    let identity = load_identity(&config)?;
    let roster = start_roster(&mut config, &store).await?;
    check_roster(&config, &identity)?;
    if let Some(r) = &roster {
        check_own_key_in_force(&config, &identity, &r.current(), crate::now_ms())?;
    }
    let metrics = Arc::new(Metrics::new());
    let hook = refusal_hook(&metrics);
    let peer_tls = peer_tls(&config, hook.clone())?;
    let tcp_tls = if listeners.tcp.is_some() {
        Some(
            operator_tls_with_hook(&config, Some(hook.clone()))?.ok_or_else(|| {
                NodeError::Listener(
                    "a TCP operator listener was given but operator.tcp_listen (with tls_cert, \
                 tls_key and client_ca) is not configured"
                        .into(),
                )
            })?,
        )
    } else {
        None
    };
    let key_id = identity.key_id().to_string();
    let core = Arc::new(NodeCore::new(
        identity,
        config.member.name.clone(),
        config.keyring_records(),
        config.limits.clone(),
        Arc::clone(&store),
    ));
    let roster_updates = roster.as_ref().map(|r| r.membership_updates());
    if let Some(r) = roster {
        core.attach_roster(r);
        // Held items the roster in force voids (a revocation or removal applied while this
        // member was down, or before a crash finished the purge) are dropped before the sync
        // index and the TAXII index are loaded from the store.
        match core.purge_voided().await {
            Ok(ids) if !ids.is_empty() => {
                tracing::warn!(
                    items = ids.len(),
                    "dropped at start: voided by the roster in force"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "items voided by the roster not dropped at start"),
        }
    }
    warninglists::attach(&core, &config).await?;
    core.set_membership(config.membership());
    let live = Arc::new(live::Live::new(
        &config,
        Arc::clone(&core),
        peer_tls.clone(),
        Arc::clone(&metrics),
    )?);
    core.attach_live(Arc::new(live::LiveHandle(Arc::clone(&live))));
    let cancel = CancellationToken::new();
    let mut tasks = Tasks::new();
    {
        let (l, c) = (Arc::clone(&live), cancel.clone());
        tasks.spawn(async move {
            live::on_sighup(l, hup, c).await;
            ("SIGHUP handler".to_string(), Ok(()))
        });
    }
    if let Some(updates) = roster_updates {
        let (c, k) = (Arc::clone(&core), cancel.clone());
        tasks.spawn(async move {
            follow_roster(c, updates, k).await;
            ("roster follower".to_string(), Ok(()))
        });
    }
    let (health_reporter, health) = tonic_health::server::health_reporter();

    // The federation: the sync driver and the peer port.
    let mut peer_addr = None;
    if let (Some(pcfg), Some(ptls)) = (&config.peer, peer_tls) {
        let listener = match net.peer {
            Some(l) => l,
            None => bind_tcp("peer.listen", pcfg.listen).await?,
        };
        peer_addr = listener.local_addr().ok();
        let peer_api = start_driver(&config, &ptls, &core, &metrics, &cancel, &mut tasks).await?;
        let incoming =
            spawn_peer_accept(listener, &ptls, &hook, &metrics, &live, &cancel, &mut tasks).await;
        let link = crate::peer_link::LinkSettings::from_sync(&config.sync);
        let router = link
            .server(Server::builder())
            .add_service(health.clone())
            .add_service(peer_api.into_server());
        spawn_grpc(&mut tasks, "peer port", router, incoming, &cancel);
    }
    let api = OperatorApi::new(
        Arc::clone(&core),
        config.storage.data_dir.clone(),
        cancel.clone(),
    )
    .with_federation(crate::api::operator::FederationInfo {
        peer_listen: peer_addr,
        metrics: Arc::clone(&metrics),
    });
    health_reporter
        .set_serving::<OperatorServer<OperatorApi>>()
        .await;
    let taxii_addr = spawn_taxii(&config, net.taxii, &core, &metrics, &cancel, &mut tasks).await?;
    let metrics_addr =
        spawn_metrics(&config, net.metrics, &core, &metrics, &cancel, &mut tasks).await?;
    let unix_on = listeners.unix.is_some();
    if let Some(unix) = listeners.unix {
        let router = Server::builder()
            .add_service(health.clone())
            .add_service(api.clone().into_server());
        spawn_grpc(
            &mut tasks,
            "operator socket",
            router,
            UnixListenerStream::new(unix),
            &cancel,
        );
    }
    let mut tcp_addr = None;
    if let (Some(tcp), Some(tls)) = (listeners.tcp, tcp_tls) {
        tcp_addr = tcp.local_addr().ok();
        let (tx, rx) = mpsc::channel(64);
        let (c, limits) = (cancel.clone(), accept_limits(&metrics));
        tasks.spawn(async move {
            accept_tls(tcp, TlsAcceptor::from(tls), limits, tx, c).await;
            ("operator TCP accept".to_string(), Ok(()))
        });
        let router = Server::builder()
            .add_service(health.clone())
            .add_service(api.clone().into_server());
        spawn_grpc(
            &mut tasks,
            "operator TCP",
            router,
            ReceiverStream::new(rx),
            &cancel,
        );
    }
    drop(api);
    // Free heap goes back to the OS now and then (see `malloc`).
    let c = cancel.clone();
    tasks.spawn(async move {
        crate::malloc::trim_every(crate::malloc::TRIM_EVERY, c).await;
        ("heap trim".to_string(), Ok(()))
    });

    let counts = core.blocking(|s| s.counts()).await.unwrap_or_default();
    let shown = |a: Option<SocketAddr>| a.map_or_else(|| "-".to_string(), |a| a.to_string());
    tracing::info!(
        member = %core.member(),
        key_id = %key_id,
        socket = %if unix_on { config.operator.socket.display().to_string() } else { "-".into() },
        tcp = %shown(tcp_addr),
        peer = %shown(peer_addr),
        peers = config.peers().count(),
        metrics = %shown(metrics_addr),
        taxii = %shown(taxii_addr),
        data_dir = %config.storage.data_dir.display(),
        advisories = counts.advisories,
        items = counts.items,
        indicators = counts.indicators,
        startup_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        version = env!("CARGO_PKG_VERSION"),
        "tanoad started"
    );

    let failure = wait(shutdown, &mut tasks).await;
    cancel.cancel();
    health_reporter
        .set_not_serving::<OperatorServer<OperatorApi>>()
        .await;
    drain(&mut tasks).await;
    drop(health_reporter);
    close(&config, core).await?;
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Starts the sync driver (its task joined with the others) and returns the peer service.
async fn start_driver(
    config: &Config,
    ptls: &PeerTls,
    core: &Arc<NodeCore>,
    metrics: &Arc<Metrics>,
    cancel: &CancellationToken,
    tasks: &mut Tasks,
) -> Result<crate::api::PeerApi, NodeError> {
    let limit = driver::peer_message_limit(&config.sync, config.limits.max_payload_bytes);
    let (handle, drv) = driver::new_driver(driver::DriverSetup {
        sync: config.sync.clone(),
        roster: config.members.clone(),
        tls: ptls.clone(),
        message_limit: limit,
        node: Arc::clone(core),
        metrics: Arc::clone(metrics),
    })
    .map_err(|e| NodeError::Sync(e.to_string()))?;
    core.attach_sync(handle.clone()).await;
    let c = cancel.clone();
    tasks.spawn(async move {
        drv.run(c).await;
        ("sync driver".to_string(), Ok(()))
    });
    Ok(crate::api::PeerApi::new(
        Arc::clone(core),
        handle,
        Arc::clone(metrics),
        config.sync.max_push_items,
        limit,
    )
    .with_compression(crate::peer_link::encoding(config.sync.compression)))
}

/// The peer port's accept loop (TLS with identity from certificates; roster members' addresses
/// have reserved capacity, resolved now and every few minutes, so connections from anywhere else
/// can never lock them out). Returns the stream of accepted connections.
async fn spawn_peer_accept(
    listener: TcpListener,
    ptls: &PeerTls,
    hook: &RefusalHook,
    metrics: &Arc<Metrics>,
    live: &Arc<live::Live>,
    cancel: &CancellationToken,
    tasks: &mut Tasks,
) -> ReceiverStream<Result<super::LivePeerStream, std::io::Error>> {
    let (tx, rx) = mpsc::channel(64);
    let reserved: crate::tcp_accept::ReservedAddrs = Arc::default();
    live.set_reserved(Arc::clone(&reserved));
    live.refresh_reserved().await;
    let limits = crate::tcp_accept::AcceptLimits {
        reserved: Some(reserved),
        ..accept_limits(metrics)
    };
    let (c, h, t) = (cancel.clone(), hook.clone(), ptls.clone());
    tasks.spawn(async move {
        accept_peers(listener, t, h, limits, tx, c).await;
        ("peer accept".to_string(), Ok(()))
    });
    // The membership in force is resolved again every few minutes (addresses may change) and at
    // every membership change (`Live::apply`); open connections are re-checked then too.
    let (c, l) = (cancel.clone(), Arc::clone(live));
    tasks.spawn(async move {
        loop {
            tokio::select! {
                _ = c.cancelled() => break,
                _ = tokio::time::sleep(ROSTER_REFRESH) => {}
            }
            l.refresh_reserved().await;
            // A pinned certificate may have expired on an open connection.
            l.recheck_connections();
        }
        ("roster address refresh".to_string(), Ok(()))
    });
    ReceiverStream::new(rx)
}

/// Serves `router` on `incoming` until `cancel` (the one way every gRPC listener is served).
fn spawn_grpc<I, IO, IE>(
    tasks: &mut Tasks,
    name: &'static str,
    router: Router,
    incoming: I,
    cancel: &CancellationToken,
) where
    I: Stream<Item = Result<IO, IE>> + Send + 'static,
    IO: AsyncRead + AsyncWrite + Connected + Unpin + Send + 'static,
    IO::ConnectInfo: Clone + Send + Sync + 'static,
    IE: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
{
    let c = cancel.clone();
    tasks.spawn(async move {
        let r = router
            .serve_with_incoming_shutdown(incoming, c.cancelled_owned())
            .await;
        (name.to_string(), r.map_err(|e| e.to_string()))
    });
}

/// The TAXII 2.1 endpoint when `[taxii]` is configured; its address.
async fn spawn_taxii(
    config: &Config,
    given: Option<TcpListener>,
    core: &Arc<NodeCore>,
    metrics: &Arc<Metrics>,
    cancel: &CancellationToken,
    tasks: &mut Tasks,
) -> Result<Option<SocketAddr>, NodeError> {
    let tcfg = match (given.is_some(), &config.taxii) {
        (true, None) => {
            return Err(NodeError::Listener(
                "a TAXII listener was given but [taxii] is not configured".into(),
            ));
        }
        (_, Some(t)) => t,
        (false, None) => return Ok(None),
    };
    let server = crate::taxii::TaxiiServer::new(tcfg, core)?.with_metrics(Arc::clone(metrics));
    let listener = match given {
        Some(l) => l,
        None => bind_tcp("taxii.listen", tcfg.listen).await?,
    };
    let addr = listener.local_addr().ok();
    let c = cancel.clone();
    tasks.spawn(async move {
        let r = server.serve(listener, c).await;
        ("taxii".to_string(), r)
    });
    Ok(addr)
}

/// The Prometheus endpoint when one is given or `[metrics]` is configured; its address.
async fn spawn_metrics(
    config: &Config,
    given: Option<TcpListener>,
    core: &Arc<NodeCore>,
    metrics: &Arc<Metrics>,
    cancel: &CancellationToken,
    tasks: &mut Tasks,
) -> Result<Option<SocketAddr>, NodeError> {
    let listener = match (given, &config.metrics) {
        (Some(l), _) => l,
        (None, Some(m)) => bind_tcp("metrics.listen", m.listen).await?,
        (None, None) => return Ok(None),
    };
    let addr = listener.local_addr().ok();
    let source: Arc<dyn metrics::Render> = Arc::new(MetricsSource {
        metrics: Arc::clone(metrics),
        core: Arc::clone(core),
    });
    let c = cancel.clone();
    tasks.spawn(async move {
        metrics::serve_http(listener, source, c).await;
        ("metrics".to_string(), Ok(()))
    });
    Ok(addr)
}

/// Waits for `shutdown` or the first task to end (a failure: every task runs until cancelled).
async fn wait(shutdown: impl Future<Output = ()>, tasks: &mut Tasks) -> Option<NodeError> {
    tokio::pin!(shutdown);
    tokio::select! {
        _ = &mut shutdown => {
            tracing::info!("shutting down");
            None
        }
        Some(joined) = tasks.join_next() => {
            let (listener, detail) = match joined {
                Ok((name, Ok(()))) => (name, "stopped unexpectedly".to_string()),
                Ok((name, Err(e))) => (name, e),
                Err(e) => ("a server task".to_string(), e.to_string()),
            };
            tracing::error!(%listener, %detail, "server task failed; shutting down");
            Some(NodeError::Serve { listener, detail })
        }
    }
}

/// Joins every task, aborting what still runs after the grace period.
async fn drain(tasks: &mut Tasks) {
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok((name, Err(e))) => {
                    tracing::warn!(listener = %name, error = %e, "server stopped with an error")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "server task ended abnormally"),
            }
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            grace_s = SHUTDOWN_GRACE.as_secs(),
            "requests still running after the grace period; aborting them"
        );
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
}

/// Closes the committer (what is queued becomes durable), then syncs the store.
async fn close(config: &Config, core: Arc<NodeCore>) -> Result<(), NodeError> {
    let path = config.storage.store_path();
    core.close().await;
    core.blocking(|s| s.sync())
        .await
        .map_err(|e| NodeError::Store {
            path: path.clone(),
            source: match e {
                crate::publish::CoreError::Store(s) => s,
                other => StoreError::Backend(other.to_string()),
            },
        })?;
    drop(core);
    tracing::info!("tanoad stopped; store synced");
    Ok(())
}

/// Applies every membership the signed roster puts in force (the one at start included) through
/// `NodeCore::apply_membership`, the same entry point as SIGHUP, until `cancel`.
async fn follow_roster(
    core: Arc<NodeCore>,
    mut updates: tokio::sync::watch::Receiver<crate::membership::Membership>,
    cancel: CancellationToken,
) {
    loop {
        let next = updates.borrow_and_update().clone();
        let version = next.version;
        match core.apply_membership(next).await {
            Ok(diff) => tracing::info!(
                version,
                added = diff.added.len(),
                removed = diff.removed.len(),
                changed = diff.changed.len(),
                "roster membership applied"
            ),
            Err(e) => tracing::error!(version, error = %e, "roster membership not applied"),
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            r = updates.changed() => {
                if r.is_err() {
                    return;
                }
            }
        }
    }
}
