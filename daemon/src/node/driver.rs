//! The sync driver: the one task that owns the `SyncCore` and turns its actions into gRPC calls
//! to peers over mutual TLS.
//!
//! Owns: the input channel of the core (local accepted items from publish/import, requests of
//! the peer service that need the core, outcomes of our requests, operator questions), the
//! re-armable wake-up timer, one lazily connected mTLS tonic `Channel` per roster endpoint (with
//! a connect timeout, the HTTP/2 windows and keepalive of `peer_link`, each request bounded by
//! the deadline the core gave it, compression negotiated per endpoint, rotating to the next
//! endpoint of a member when one is unreachable), `peer_up` on successful exchanges, loading the index from the store at start
//! (`Source::Loaded`), a fresh OS seed per start, and joining every task it spawned on shutdown.
//! Must never: block on the store or the network inside the loop (store reads and calls run in
//! tasks it spawns and joins), store an item the core did not admit, or take a peer's identity
//! from anything but the certificate the transport verified.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tanoa_proto::v1 as pb;
use tanoa_proto::v1::peer_client::PeerClient;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::config::{PeerEndpoint, RosterMember};
use crate::envelope::Envelope;
use crate::envelope::Verified;
use crate::machine::{Intake, NodeMachine};
use crate::metrics::Metrics;
use crate::model::Advisory;
use crate::peer_link::{LinkSettings, Negotiated};
use crate::publish::NodeCore;
use crate::sync::{
    Action, FetchResponse, ItemMeta, LinkState, PushRequest, PushResponse, ReconcileResponse,
    RequestId, SyncConfig, SyncCore,
};
use crate::sync_handle::{
    AfterStore, CheckedItems, DriverError, INPUT_CAPACITY, Input, Outcome, PeerView, SyncHandle,
};
use crate::transport::PeerTls;

/// How long a connection to a peer may take (TCP + TLS).
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest gRPC message on the peer port, sent or accepted: the largest legitimate message
/// (a reconciliation frame, a push batch or fetch reply of `max_batch_bytes`, or one envelope
/// of the largest payload) plus room for protobuf framing of ids and envelopes.
pub fn peer_message_limit(sync: &SyncConfig, max_payload_bytes: usize) -> usize {
    sync.max_frame_bytes
        .max(sync.max_batch_bytes)
        .max(max_payload_bytes.saturating_add(1024))
        .saturating_add(64 * 1024)
}

/// A lazily connected channel to one roster endpoint over mutual TLS. The TLS is done by our
/// connector with `tls` (which accepts only the dialled member's certificate), so tonic sees
/// plain HTTP/2.
pub fn peer_channel(
    endpoint: &PeerEndpoint,
    tls: Arc<rustls::ClientConfig>,
    request_timeout: Duration,
) -> Result<Channel, String> {
    channel_with(endpoint, tls, |ep| ep.timeout(request_timeout), None)
}

/// The channel the driver uses: HTTP/2 windows and keepalive of `link`, no fixed request
/// timeout (each request gets the deadline the core gave it, scaled to its bytes), and its
/// connections registered with the peer port's live trust (`watch` = the trust and the member
/// dialled), so they are closed when the member is removed or its pins no longer admit the
/// server's certificate.
pub(crate) fn peer_channel_watched(
    endpoint: &PeerEndpoint,
    tls: Arc<rustls::ClientConfig>,
    link: &LinkSettings,
    watch: Option<(PeerTls, String)>,
) -> Result<Channel, String> {
    channel_with(endpoint, tls, |ep| link.endpoint(ep), watch)
}

fn channel_with(
    endpoint: &PeerEndpoint,
    tls: Arc<rustls::ClientConfig>,
    tune: impl FnOnce(Endpoint) -> Endpoint,
    watch: Option<(PeerTls, String)>,
) -> Result<Channel, String> {
    let target = endpoint.to_string();
    let ep = Endpoint::from_shared(format!("http://{target}"))
        .map_err(|e| format!("endpoint {target}: {e}"))?
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true);
    let ep = tune(ep);
    // Only used for SNI: the server is verified by its member id, not its host name.
    let server_name = rustls::pki_types::ServerName::try_from(endpoint.host.clone()).unwrap_or(
        rustls::pki_types::ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()),
    );
    let connector = tokio_rustls::TlsConnector::from(tls);
    let svc = tower::service_fn(move |_: Uri| {
        let (connector, server_name, target, watch) = (
            connector.clone(),
            server_name.clone(),
            target.clone(),
            watch.clone(),
        );
        async move {
            let tcp = tokio::net::TcpStream::connect(&target).await?;
            tcp.set_nodelay(true)?;
            if let Err(e) =
                crate::peer_link::limit_unsent(&tcp, crate::peer_link::NOTSENT_LOWAT_BYTES)
            {
                tracing::debug!(peer = %target, error = %e, "TCP_NOTSENT_LOWAT not set");
            }
            let remote = tcp.peer_addr().ok();
            let tls =
                crate::transport::with_remote(remote, connector.connect(server_name, tcp)).await?;
            let io: Box<dyn PeerIo> = match watch {
                Some((trust, member)) => Box::new(trust.watch_outbound(tls, &member)),
                None => Box::new(tls),
            };
            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(io))
        }
    });
    Ok(ep.connect_with_connector_lazy(svc))
}

/// A dialled peer connection (TLS, possibly watched by the live trust).
trait PeerIo: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin> PeerIo for T {}

/// A peer client with the message limits of the peer port.
pub fn peer_client(channel: Channel, limit: usize) -> PeerClient<Channel> {
    PeerClient::new(channel)
        .max_decoding_message_size(limit)
        .max_encoding_message_size(limit)
}

/// A peer client that accepts compressed answers and compresses its requests with `wanted`
/// once the peer's latest answer advertised it (`peer_link::Negotiated`).
pub(crate) fn negotiated_client(
    channel: Channel,
    limit: usize,
    negotiated: &Negotiated,
    wanted: Option<tonic::codec::CompressionEncoding>,
) -> PeerClient<Channel> {
    let mut c = peer_client(channel, limit);
    for e in crate::peer_link::DECODABLE {
        c = c.accept_compressed(e);
    }
    match negotiated.send_with(wanted) {
        Some(e) => c.send_compressed(e),
        None => c,
    }
}

struct PeerLink {
    channels: Vec<(String, Channel, Negotiated)>,
    current: usize,
}

/// A client for one request and the negotiation state it reports the answer to.
type Client = (PeerClient<Channel>, Negotiated);

/// A client for one request and where its answer is recorded.
type Dialled = (PeerClient<Channel>, Answers);

impl PeerLink {
    fn client(&self, limit: usize, link: &LinkSettings) -> Option<Client> {
        let (_, ch, neg) = self.channels.get(self.current)?;
        Some((
            negotiated_client(ch.clone(), limit, neg, link.compression),
            neg.clone(),
        ))
    }

    fn rotate(&mut self) {
        if !self.channels.is_empty() {
            self.current = (self.current + 1) % self.channels.len();
        }
    }
}

/// Everything the driver needs.
pub(crate) struct DriverSetup {
    /// Sync settings.
    pub sync: SyncConfig,
    /// The roster (this member may be in it; it is skipped).
    pub roster: Vec<RosterMember>,
    /// TLS of the peer port (client configs per peer).
    pub tls: PeerTls,
    /// gRPC message limit of the peer port.
    pub message_limit: usize,
    /// The node (store, keyring, write path).
    pub node: Arc<NodeCore>,
    /// Counters.
    pub metrics: Arc<Metrics>,
}

impl std::fmt::Debug for DriverSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DriverSetup")
            .field("sync", &self.sync)
            .field("message_limit", &self.message_limit)
            .finish_non_exhaustive()
    }
}

/// The driver task's state.
pub(crate) struct Driver {
    machine: NodeMachine,
    rx: mpsc::Receiver<Input>,
    tx: mpsc::Sender<Input>,
    node: Arc<NodeCore>,
    metrics: Arc<Metrics>,
    links: HashMap<String, PeerLink>,
    tls: PeerTls,
    limit: usize,
    link: LinkSettings,
    tasks: JoinSet<()>,
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("me", &self.machine.core().me())
            .finish_non_exhaustive()
    }
}

fn now_u64() -> u64 {
    u64::try_from(crate::now_ms()).unwrap_or(0)
}

/// Fresh OS randomness for the core's seed.
fn os_seed() -> u64 {
    let mut b = [0u8; 8];
    if getrandom::fill(&mut b).is_err() {
        // No OS randomness: fall back to the clock (choices stay keyed, only less secret).
        return now_u64() ^ 0x9e37_79b9_7f4a_7c15;
    }
    u64::from_le_bytes(b)
}

/// Builds the driver and its handle. The index is loaded in `Driver::run`.
pub(crate) fn new_driver(setup: DriverSetup) -> Result<(SyncHandle, Driver), DriverError> {
    let me = setup.node.member().to_string();
    let peers: Vec<&RosterMember> = setup.roster.iter().filter(|m| m.id != me).collect();
    let core = SyncCore::new(
        setup.sync.clone(),
        me.clone(),
        peers.iter().map(|m| m.id.clone()),
        os_seed(),
        now_u64(),
    )?;
    let link = LinkSettings::from_sync(&setup.sync);
    let mut links = HashMap::new();
    for m in peers {
        links.insert(
            m.id.clone(),
            build_link(&setup.tls, &m.id, &m.endpoints, &link),
        );
    }
    let (tx, rx) = mpsc::channel(INPUT_CAPACITY);
    let handle = SyncHandle::new(tx.clone());
    Ok((
        handle,
        Driver {
            machine: NodeMachine::new(core),
            rx,
            tx,
            node: setup.node,
            metrics: setup.metrics,
            links,
            tls: setup.tls,
            limit: setup.message_limit,
            link,
            tasks: JoinSet::new(),
        },
    ))
}

/// The channels to one member's endpoints (watched by the live trust).
fn build_link(
    tls: &PeerTls,
    member: &str,
    endpoints: &[PeerEndpoint],
    link: &LinkSettings,
) -> PeerLink {
    let mut channels = Vec::new();
    match tls.client_config(member) {
        Ok(cfg) => {
            for ep in endpoints {
                let watch = Some((tls.clone(), member.to_string()));
                match peer_channel_watched(ep, cfg.clone(), link, watch) {
                    Ok(ch) => channels.push((ep.to_string(), ch, Negotiated::default())),
                    Err(e) => tracing::warn!(peer = %member, error = %e, "unusable endpoint"),
                }
            }
        }
        Err(e) => tracing::error!(peer = %member, error = %e, "no TLS client config"),
    }
    if channels.is_empty() {
        tracing::info!(peer = %member, "no usable endpoint: this member only answers the peer");
    }
    PeerLink {
        channels,
        current: 0,
    }
}

fn code_name(code: tonic::Code) -> String {
    let s = format!("{code:?}");
    let mut out = String::with_capacity(s.len() + 4);
    for (i, c) in s.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn failure_of(status: &tonic::Status) -> crate::sync::Failure {
    use crate::sync::Failure;
    match status.code() {
        // Connection refused, TLS refused, connection reset: tonic reports these as
        // Unavailable (or Unknown for a broken HTTP/2 connection).
        tonic::Code::Unavailable | tonic::Code::Unknown => Failure::Unreachable,
        tonic::Code::DeadlineExceeded | tonic::Code::Cancelled => Failure::Timeout,
        c => Failure::Refused(code_name(c)),
    }
}

/// Where the answers of one peer are recorded: what it advertised (`Negotiated`) and the
/// roster version it reports (`peer_roster`), under the member dialled (our TLS client config
/// accepts only that member's certificate).
#[derive(Clone)]
struct Answers {
    negotiated: Negotiated,
    node: Arc<NodeCore>,
    metrics: Arc<Metrics>,
    peer: String,
}

impl Answers {
    fn record(&self, md: &tonic::metadata::MetadataMap) {
        self.negotiated.record(md);
        let value = md
            .get(crate::peer_roster::HEADER)
            .map(tonic::metadata::MetadataValue::as_encoded_bytes);
        if self
            .node
            .peer_rosters()
            .record(&self.peer, value, crate::now_ms())
            == crate::peer_roster::Recorded::Malformed
        {
            self.metrics
                .peer_message_rejected(&self.peer, crate::peer_roster::MALFORMED_HEADER);
        }
    }

    /// A request carrying this member's roster version.
    fn request<T>(&self, msg: T) -> tonic::Request<T> {
        let mut r = tonic::Request::new(msg);
        let ours = self.node.peer_rosters().our_value();
        if let Ok(v) = tonic::metadata::AsciiMetadataValue::try_from(ours.as_bytes()) {
            r.metadata_mut().insert(crate::peer_roster::HEADER, v);
        }
        r
    }
}

/// Runs one request with its deadline, recording what the answer carried (`Answers`).
async fn call<T>(
    timeout: Duration,
    answers: &Answers,
    fut: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Outcome<T> {
    match tokio::time::timeout(timeout, fut).await {
        Err(_) => Err(crate::sync::Failure::Timeout),
        Ok(Ok(r)) => {
            answers.record(r.metadata());
            Ok(r.into_inner())
        }
        Ok(Err(st)) => {
            answers.record(st.metadata());
            Err(failure_of(&st))
        }
    }
}

impl Driver {
    /// Runs until `cancel`: loads the index, reconciles with every peer once, then serves
    /// inputs, timers and request outcomes. Joins every task it spawned before returning.
    pub(crate) async fn run(mut self, cancel: CancellationToken) {
        let started = std::time::Instant::now();
        let loaded = self
            .node
            .blocking(|s| {
                let mut metas = Vec::new();
                for id in s.item_ids()? {
                    if let Some(item) = s.get(&id)? {
                        metas.push(ItemMeta::of_stored(&item));
                    }
                }
                Ok(metas)
            })
            .await;
        match loaded {
            Ok(metas) => {
                self.machine.core_mut().load_items(metas.iter());
                let me = self.node.member();
                if !self.links.is_empty() && !metas.iter().any(|m| m.origin == me) {
                    // Nothing of our own in the store: a new member, or one whose data
                    // directory was lost. Until the peers have given back what they hold of
                    // ours, the write path does not sign revisions of an explicit id.
                    self.machine.core_mut().track_restore();
                    tracing::info!(
                        peers = self.links.len(),
                        "no advisory of this member in the store: restoring its own history \
                         from the peers before revising or withdrawing by id"
                    );
                }
                tracing::info!(
                    items = metas.len(),
                    peers = self.links.len(),
                    ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                    "sync index loaded"
                );
            }
            Err(e) => tracing::error!(error = %e, "could not load the sync index; starting empty"),
        }
        let now = now_u64();
        let peers: Vec<String> = self
            .machine
            .core_mut()
            .peers()
            .map(str::to_string)
            .collect();
        for p in &peers {
            // A start is a (re)connect: reconcile with everyone once.
            let _ = self.machine.core_mut().sync_now(now, Some(p));
        }
        self.drain();
        loop {
            let wake = self.machine.core_mut().next_wakeup();
            let sleep = async {
                match wake {
                    Some(t) => {
                        let d = t.saturating_sub(now_u64());
                        tokio::time::sleep(Duration::from_millis(d)).await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = cancel.cancelled() => break,
                input = self.rx.recv() => match input {
                    Some(i) => self.input(i),
                    None => break,
                },
                Some(joined) = self.tasks.join_next(), if !self.tasks.is_empty() => {
                    if let Err(e) = joined
                        && e.is_panic()
                    {
                        tracing::error!(error = %e, "a sync request task panicked");
                    }
                }
                _ = sleep => self.machine.core_mut().handle_timeout(now_u64()),
            }
            self.drain();
        }
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
        tracing::debug!("sync driver stopped");
    }

    fn mark_up(&mut self, now: u64, peer: &str) {
        if let Some(status) = self.machine.core_mut().peer(now, peer)
            && status.link != LinkState::Up
        {
            tracing::info!(%peer, "peer link up");
            self.machine.core_mut().peer_up(now, peer);
        }
    }

    fn failed(&mut self, now: u64, peer: &str, req: RequestId, f: crate::sync::Failure) {
        if f == crate::sync::Failure::Unreachable {
            if let Some(l) = self.links.get_mut(peer) {
                l.rotate();
            }
            if self.machine.core_mut().peer(now, peer).map(|s| s.link) == Some(LinkState::Up) {
                tracing::info!(%peer, "peer link down");
            } else {
                tracing::debug!(%peer, "peer unreachable");
            }
        } else {
            tracing::debug!(%peer, failure = ?f, "request to peer failed");
        }
        self.machine.core_mut().on_request_failed(now, peer, req, f);
    }

    fn input(&mut self, input: Input) {
        let now = now_u64();
        match input {
            Input::LocalAccepted(metas) => {
                let new = self.machine.published(now, &metas);
                self.metrics.accepted(false, new as u64);
            }
            Input::Receive {
                peer,
                checked,
                reply,
            } => {
                let intake = self.machine.admit(now, &peer, checked);
                self.store_intake(intake, AfterStore::Answer(reply));
            }
            Input::Stored {
                intake,
                signers,
                outcome,
                then,
            } => self.stored(now, intake, &signers, outcome, then),
            Input::Forget(ids) => {
                let n = self.machine.core_mut().forget_items(&ids);
                if n > 0 {
                    tracing::info!(
                        items = n,
                        "items dropped from the store left the sync index"
                    );
                }
            }
            Input::NoteRejection { peer, code } => {
                self.machine.core_mut().note_rejection(&peer, &code)
            }
            Input::Reconcile { peer, req, reply } => {
                let _ = reply.send(self.machine.core_mut().handle_reconcile(now, &peer, &req));
            }
            Input::Fetch { peer, req, reply } => {
                match self.machine.core_mut().handle_fetch(now, &peer, &req) {
                    Err(e) => {
                        let _ = reply.send(Err(e.into()));
                    }
                    Ok(decided) => {
                        let node = self.node.clone();
                        self.tasks.spawn(async move {
                            let serve = decided.serve.clone();
                            let loaded = node
                                .blocking(move |s| {
                                    let mut found = HashMap::with_capacity(serve.len());
                                    for id in &serve {
                                        if let Some(item) = s.get(id)? {
                                            found.insert(*id, item.envelope);
                                        }
                                    }
                                    Ok(found)
                                })
                                .await;
                            let answer = match loaded {
                                Ok(mut found) => Ok(decided.into_response(|id| found.remove(id))),
                                Err(e) => {
                                    tracing::error!(%peer, error = %e, "cannot load items a peer fetched");
                                    Err(DriverError::Store(e.to_string()))
                                }
                            };
                            let _ = reply.send(answer);
                        });
                    }
                }
            }
            Input::RestoreStatus(reply) => {
                let _ = reply.send(self.machine.core_mut().restore_status());
            }
            Input::Peers(reply) => {
                let views = self
                    .machine
                    .core()
                    .peer_status(now)
                    .into_iter()
                    .map(|status| PeerView {
                        reconcile_set: self
                            .machine
                            .core()
                            .reconcile_set_len(&status.peer)
                            .unwrap_or(0),
                        status,
                    })
                    .collect();
                let _ = reply.send(views);
            }
            Input::Explain { meta, peer, reply } => {
                let _ = reply.send(self.machine.core_mut().explain(&meta, &peer));
            }
            Input::SetRoster {
                members,
                redial,
                reply,
            } => {
                let _ = reply.send(self.set_roster(now, &members, &redial));
            }
            Input::SyncNow { peer, reply } => {
                let _ = reply.send(self.machine.core_mut().sync_now(now, peer.as_deref()));
            }
            Input::PushDone { peer, req, result } => match result {
                Ok(resp) => {
                    self.mark_up(now, &peer);
                    match PushResponse::from_proto(resp) {
                        Ok(r) => {
                            for x in r.results.iter().filter(|x| !x.accepted) {
                                tracing::warn!(%peer, item = %x.item_id, reason = %x.reason,
                                    "peer refused an item we pushed");
                            }
                            self.machine
                                .core_mut()
                                .on_push_response(now, &peer, req, &r);
                        }
                        Err(e) => {
                            tracing::warn!(%peer, error = %e, "malformed push response");
                            self.machine
                                .core_mut()
                                .note_rejection(&peer, "malformed_response");
                            self.machine.core_mut().on_request_failed(
                                now,
                                &peer,
                                req,
                                crate::sync::Failure::Refused("malformed_response".into()),
                            );
                        }
                    }
                }
                Err(f) => self.failed(now, &peer, req, f),
            },
            Input::ReconcileDone { peer, req, result } => match result {
                Ok(resp) => {
                    self.mark_up(now, &peer);
                    let r = ReconcileResponse::from_proto(resp);
                    self.machine
                        .core_mut()
                        .on_reconcile_response(now, &peer, req, &r);
                }
                Err(f) => self.failed(now, &peer, req, f),
            },
            Input::FetchDone { peer, req, result } => match result {
                Ok((resp, checked)) => {
                    self.mark_up(now, &peer);
                    let intake = self.machine.admit(now, &peer, checked);
                    self.store_intake(intake, AfterStore::Fetched { req, resp });
                }
                Err(f) => self.failed(now, &peer, req, f),
            },
        }
    }

    /// A new membership: the core's peers, the links (dropped for removed members, new for
    /// added ones and for `redial`), and a reconciliation with each new or re-dialled member.
    fn set_roster(
        &mut self,
        now: u64,
        members: &[crate::membership::Member],
        redial: &std::collections::BTreeSet<String>,
    ) -> (Vec<String>, Vec<String>) {
        let me = self.machine.core().me().to_string();
        let peers: Vec<&crate::membership::Member> =
            members.iter().filter(|m| m.id != me).collect();
        let (added, removed) = self
            .machine
            .core_mut()
            .set_peers(now, peers.iter().map(|m| m.id.clone()));
        for id in &removed {
            self.links.remove(id);
            tracing::info!(peer = %id, "member removed from the roster: link dropped");
        }
        for m in &peers {
            let is_new = added.contains(&m.id);
            if !is_new && !redial.contains(&m.id) {
                continue;
            }
            let mut endpoints = Vec::new();
            for e in &m.endpoints {
                match PeerEndpoint::parse(e) {
                    Ok(p) => endpoints.push(p),
                    Err(err) => tracing::warn!(peer = %m.id, error = %err, "unusable endpoint"),
                }
            }
            self.links.insert(
                m.id.clone(),
                build_link(&self.tls, &m.id, &endpoints, &self.link),
            );
            tracing::info!(peer = %m.id, endpoints = %m.endpoints.join(","),
                change = if is_new { "added" } else { "changed" }, "dialling member");
            // A new or changed link is a (re)connect: reconcile with it now.
            let core = self.machine.core_mut();
            if let Some(s) = core.peer(now, &m.id)
                && matches!(s.link, LinkState::Down { .. } | LinkState::Up)
                && !is_new
            {
                core.peer_down(now, &m.id);
            }
            let _ = core.sync_now(now, Some(&m.id));
        }
        (added, removed)
    }

    /// Step 3 of the machine's pipeline: the admitted items of `intake` are made durable by a
    /// task (never in the loop); its outcome comes back as `Input::Stored`.
    fn store_intake(&mut self, mut intake: Intake<Verified<Advisory>>, then: AfterStore) {
        if intake.is_empty() {
            self.stored(now_u64(), intake, &[], Ok(()), then);
            return;
        }
        let items = std::mem::take(&mut intake.items);
        // Roster items are never voided (see `publish::purge_voided`).
        let signers: Vec<Option<(String, i64)>> = items
            .iter()
            .map(|v| {
                (!tanoa_core::roster::is_carrier_id(&v.id))
                    .then(|| (v.envelope().key_id.clone(), v.modified_ms))
            })
            .collect();
        let (node, tx) = (self.node.clone(), self.tx.clone());
        self.tasks.spawn(async move {
            let outcome = node
                .store_received(intake.peer(), items)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string());
            let _ = tx
                .send(Input::Stored {
                    intake,
                    signers,
                    outcome,
                    then,
                })
                .await;
        });
    }

    /// Step 4: the intake is durable (or the store failed: nothing is reported to the core and
    /// the sender is told; anti-entropy offers the items again later). Items the roster in
    /// force voids (a version that came into force while they were stored: the write path
    /// dropped them from the store) are forgotten again at once.
    fn stored(
        &mut self,
        now: u64,
        intake: Intake<Verified<Advisory>>,
        signers: &[Option<(String, i64)>],
        outcome: Result<(), String>,
        then: AfterStore,
    ) {
        let peer = intake.peer().to_string();
        let voided: Vec<crate::envelope::ItemId> = match self.node.roster() {
            Some(r) if !signers.is_empty() => {
                let rule = r.void_rule();
                intake
                    .metas()
                    .iter()
                    .zip(signers)
                    .filter(|(m, s)| {
                        s.as_ref()
                            .is_some_and(|(key, at)| rule.voids(&m.origin, key, *at).is_some())
                    })
                    .map(|(m, _)| m.id)
                    .collect()
            }
            _ => Vec::new(),
        };
        let answer = match outcome {
            Ok(()) => {
                let done = self.machine.accepted(now, intake);
                if !voided.is_empty() {
                    self.machine.core_mut().forget_items(&voided);
                }
                self.metrics.accepted(true, done.new as u64);
                Ok(done.results)
            }
            Err(e) => {
                tracing::error!(%peer, error = %e, "could not store items received from a peer");
                let _ = intake.refused("store_failed");
                Err(DriverError::Store(e))
            }
        };
        match then {
            AfterStore::Answer(reply) => {
                let _ = reply.send(answer);
            }
            AfterStore::Fetched { req, resp } => {
                self.machine
                    .core_mut()
                    .on_fetch_response(now, &peer, req, &resp);
            }
        }
    }

    /// Executes every pending action of the core.
    fn drain(&mut self) {
        while let Some(action) = self.machine.core_mut().poll_action() {
            match action {
                Action::WakeAt(_) => {} // read from `next_wakeup` in the loop
                Action::Push { to, req, items } => {
                    let Some(((client, neg), timeout)) = self.client(&to, req) else {
                        continue;
                    };
                    let (node, tx) = (self.node.clone(), self.tx.clone());
                    self.tasks.spawn(async move {
                        let loaded = node
                            .blocking(move |s| {
                                let mut envs = Vec::with_capacity(items.len());
                                for id in &items {
                                    if let Some(it) = s.get(id)? {
                                        envs.push(it.envelope);
                                    }
                                }
                                Ok(envs)
                            })
                            .await;
                        let result = match loaded {
                            Ok(envelopes) => {
                                let msg = neg.request(PushRequest { envelopes }.to_proto());
                                let mut client = client;
                                call(timeout, &neg, client.push(msg)).await
                            }
                            Err(e) => {
                                tracing::error!(peer = %to, error = %e, "cannot load items to push");
                                Err(crate::sync::Failure::Refused("local_store_error".into()))
                            }
                        };
                        let _ = tx.send(Input::PushDone { peer: to, req, result }).await;
                    });
                }
                Action::Reconcile { to, req, msg } => {
                    let Some(((mut client, neg), timeout)) = self.client(&to, req) else {
                        continue;
                    };
                    let tx = self.tx.clone();
                    self.tasks.spawn(async move {
                        let msg = neg.request(msg.to_proto());
                        let result = call(timeout, &neg, client.reconcile(msg)).await;
                        let _ = tx
                            .send(Input::ReconcileDone {
                                peer: to,
                                req,
                                result,
                            })
                            .await;
                    });
                }
                Action::Fetch { from, req, msg } => {
                    let Some(((mut client, neg), timeout)) = self.client(&from, req) else {
                        continue;
                    };
                    let (node, tx) = (self.node.clone(), self.tx.clone());
                    self.tasks.spawn(async move {
                        let msg = neg.request(msg.to_proto());
                        let result = match call(timeout, &neg, client.fetch(msg)).await {
                            Ok(resp) => fetched(&node, &tx, &from, resp).await,
                            Err(f) => Err(f),
                        };
                        let _ = tx
                            .send(Input::FetchDone {
                                peer: from,
                                req,
                                result,
                            })
                            .await;
                    });
                }
            }
        }
    }

    /// A client for `peer`'s current endpoint and the time the request may take (until the
    /// deadline the core gave it, scaled to its bytes and `min_link_bytes_per_s`, plus a second
    /// so the core's own timer fires first); a peer without endpoints fails the request at once
    /// (unreachable).
    fn client(&mut self, peer: &str, req: RequestId) -> Option<(Dialled, Duration)> {
        let now = now_u64();
        let found = self
            .links
            .get(peer)
            .and_then(|l| l.client(self.limit, &self.link));
        let deadline = self.machine.core().request_deadline(peer, req);
        let timeout = Duration::from_millis(
            deadline
                .map_or(self.machine.core().config().request_timeout_ms, |d| {
                    d.saturating_sub(now)
                })
                .saturating_add(1000),
        );
        if found.is_none() {
            self.machine.core_mut().on_request_failed(
                now,
                peer,
                req,
                crate::sync::Failure::Unreachable,
            );
        }
        found.map(|(c, negotiated)| {
            let answers = Answers {
                negotiated,
                node: Arc::clone(&self.node),
                metrics: Arc::clone(&self.metrics),
                peer: peer.to_string(),
            };
            ((c, answers), timeout)
        })
    }
}

/// Decodes a fetch response and verifies its envelopes (step 1, off the driver's loop); the
/// driver then admits, stores and reports them like a push, before `on_fetch_response`.
async fn fetched(
    node: &Arc<NodeCore>,
    tx: &mpsc::Sender<Input>,
    peer: &str,
    resp: pb::FetchResponse,
) -> Outcome<(FetchResponse, CheckedItems)> {
    let mut resp = match FetchResponse::from_proto(resp) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(%peer, error = %e, "malformed fetch response");
            let _ = tx
                .send(Input::NoteRejection {
                    peer: peer.to_string(),
                    code: "malformed_response".into(),
                })
                .await;
            return Err(crate::sync::Failure::Refused("malformed_response".into()));
        }
    };
    let envelopes: Vec<Envelope> = std::mem::take(&mut resp.envelopes);
    match node.verify_received(envelopes).await {
        Ok(checked) => Ok((resp, checked)),
        Err(e) => {
            tracing::error!(%peer, error = %e, "could not verify fetched items");
            Err(crate::sync::Failure::Refused("local_error".into()))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn message_limit_covers_frames_batches_and_payloads() {
        let s = SyncConfig::default();
        let l = peer_message_limit(&s, 1024 * 1024);
        assert!(l > s.max_frame_bytes && l > s.max_batch_bytes && l > 1024 * 1024);
        assert!(l < s.max_batch_bytes + 128 * 1024);
    }

    #[test]
    fn status_codes_map_to_failures() {
        use crate::sync::Failure;
        assert_eq!(
            failure_of(&tonic::Status::unavailable("x")),
            Failure::Unreachable
        );
        assert_eq!(
            failure_of(&tonic::Status::deadline_exceeded("x")),
            Failure::Timeout
        );
        assert_eq!(
            failure_of(&tonic::Status::invalid_argument("x")),
            Failure::Refused("invalid_argument".into())
        );
        assert_eq!(
            code_name(tonic::Code::ResourceExhausted),
            "resource_exhausted"
        );
    }
}
