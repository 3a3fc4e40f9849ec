//! The tonic `Operator` service: what a CERT's own people and tools call.
//!
//! Owns: request handling of Publish, Withdraw, Get, List, SearchIndicator, Watch, Status,
//! ImportEnvelope, Audit, and the federation's Peers, Explain and SyncNow (asked of the sync
//! driver; "not federating" is a `FAILED_PRECONDITION`); the caller's identity for the audit log (the Unix socket is
//! "operator", a TLS client is "operator/<name>" from its verified certificate); re-verifying
//! envelopes at read time; ending watch streams on shutdown or when a watcher lags;
//! ExportIndicators (a store scan streamed in bounded chunks, ended on shutdown) and the
//! warning-list hits of Publish, PublishBatch, Get and SearchIndicator (this node's lists).
//! Must never: be served on a peer listener, build a `Status` from an error by itself (see
//! `api::error`), or call the store outside `NodeCore::blocking`.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tanoa_proto::v1 as pb;
use tanoa_proto::v1::operator_server::{Operator, OperatorServer};
use tokio_stream::Stream;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tonic::{Request, Response, Status};

use super::convert::{self, GetTarget};
use super::error::{ApiError, status, to_status};
use crate::envelope::{self, Envelope};
use crate::interop::blocklist::{self, ExportFilter};
use crate::metrics::Metrics;
use crate::model::{self, IndicatorKind, wire};
use crate::policy;
use crate::publish::{ChangeEvent, CoreError, NodeCore};
use crate::store::{IndicatorQuery, MatchKind, StoredItem};
use crate::sync::{ItemMeta, LinkState};
use crate::transport::OperatorIdentity;

/// What the operator API reports about the federation besides the sync core's state.
#[derive(Debug, Clone)]
pub(crate) struct FederationInfo {
    /// The peer listener's address, when federating.
    pub peer_listen: Option<std::net::SocketAddr>,
    /// The node's counters (TLS refusals in Status).
    pub metrics: Arc<Metrics>,
}

/// The operator service over a shared `NodeCore`.
#[derive(Debug, Clone)]
pub(crate) struct OperatorApi {
    core: Arc<NodeCore>,
    data_dir: PathBuf,
    shutdown: CancellationToken,
    federation: Option<Arc<FederationInfo>>,
}

impl OperatorApi {
    /// A service over `core`; `data_dir` is reported by Status; watch streams end when
    /// `shutdown` is cancelled.
    pub(crate) fn new(core: Arc<NodeCore>, data_dir: PathBuf, shutdown: CancellationToken) -> Self {
        Self {
            core,
            data_dir,
            shutdown,
            federation: None,
        }
    }

    /// Adds what Status and Peers report about the federation (roster, peer listener,
    /// refusal counters).
    pub(crate) fn with_federation(mut self, info: FederationInfo) -> Self {
        self.federation = Some(Arc::new(info));
        self
    }

    /// The tonic server of this service, with message limits derived from the payload limit
    /// and room for one `PublishBatch` of an import (`MAX_BATCH_REQUEST_BYTES`).
    pub(crate) fn into_server(self) -> OperatorServer<OperatorApi> {
        let max = self
            .core
            .limits()
            .max_payload_bytes
            .saturating_mul(4)
            .saturating_add(4 * 1024 * 1024)
            .max(MAX_BATCH_REQUEST_BYTES);
        OperatorServer::new(self)
            .max_decoding_message_size(max)
            .max_encoding_message_size(max.max(crate::client::MAX_MESSAGE_BYTES))
    }
}

/// Largest operator request accepted (a `PublishBatch` of an import): 128 MiB.
pub(crate) const MAX_BATCH_REQUEST_BYTES: usize = 128 * 1024 * 1024;
/// Most drafts in one `PublishBatch`.
pub(crate) const MAX_BATCH_DRAFTS: usize = 10_000;

/// Who is calling, for the audit log.
fn actor<T>(req: &Request<T>) -> String {
    match req.extensions().get::<OperatorIdentity>() {
        Some(id) => format!("operator/{}", id.name),
        None => "operator".to_string(),
    }
}

/// The verification of a stored envelope, re-checked now with the current keyring.
fn verification(core: &NodeCore, env: &Envelope) -> pb::Verification {
    let signer_of = |key_id: &str| {
        core.keyring()
            .get(key_id)
            .map(|k| k.member.clone())
            .unwrap_or_default()
    };
    match envelope::verify(env.clone(), &core.keyring(), &core.limits()) {
        Ok(v) => pb::Verification {
            valid: true,
            key_id: env.key_id.clone(),
            signer: v.signer().to_string(),
            detail: format!(
                "signature verified with key {} of {}",
                env.key_id,
                v.signer()
            ),
        },
        Err(e) => pb::Verification {
            valid: false,
            key_id: env.key_id.clone(),
            signer: signer_of(&env.key_id),
            detail: format!("{} ({})", e, e.reason()),
        },
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchEvent, Status>> + Send>>;
type ExportIndicatorsStream =
    Pin<Box<dyn Stream<Item = Result<pb::ExportIndicatorsChunk, Status>> + Send>>;

/// Change events for one watcher; ends with a status when the watcher lags or the daemon stops.
struct EventStream {
    rx: BroadcastStream<ChangeEvent>,
    shutdown: Pin<Box<WaitForCancellationFutureOwned>>,
    done: bool,
}

impl Stream for EventStream {
    type Item = Result<pb::WatchEvent, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        if self.shutdown.as_mut().poll(cx).is_ready() {
            self.done = true;
            return Poll::Ready(Some(Err(status(ApiError::ShuttingDown {
                what: "; watch again once it is back",
            }))));
        }
        loop {
            return match Pin::new(&mut self.rx).poll_next(cx) {
                // Roster items are not advisories (`tanoa roster show` follows them).
                Poll::Ready(Some(Ok(ev))) if tanoa_core::roster::is_carrier_id(&ev.advisory.id) => {
                    continue;
                }
                Poll::Ready(Some(Ok(ev))) => Poll::Ready(Some(Ok(convert::watch_event(&ev)))),
                Poll::Ready(Some(Err(BroadcastStreamRecvError::Lagged(n)))) => {
                    self.done = true;
                    Poll::Ready(Some(Err(status(ApiError::WatchLagged(n)))))
                }
                Poll::Ready(None) => {
                    self.done = true;
                    Poll::Ready(None)
                }
                Poll::Pending => Poll::Pending,
            };
        }
    }
}

impl OperatorApi {
    async fn resolve(&self, id: &str) -> Result<StoredItem, CoreError> {
        let target = convert::get_target(id, self.core.member())?;
        let member = self.core.member().to_string();
        let id_s = id.trim().to_string();
        let found = self
            .core
            .blocking(move |s| match target {
                GetTarget::Item(item) => match s.get(&item)? {
                    Some(found) => Ok(Some(found)),
                    // A 64-hex advisory id of ours is still an advisory id.
                    None => s.latest(&member, &id_s),
                },
                GetTarget::Advisory { origin, id } => s.latest(&origin, &id),
            })
            .await?;
        found.ok_or_else(|| {
            CoreError::NotFound(format!(
                "nothing stored here is named {:?} (use an item id, an advisory id of {}, or \
                 origin/advisory-id; tanoa list shows what is held)",
                id.trim(),
                self.core.member()
            ))
        })
    }

    async fn get_inner(&self, id: &str) -> Result<pb::GetResponse, CoreError> {
        let item = self.resolve(id).await?;
        let (origin, aid) = (item.advisory.origin.clone(), item.advisory.id.clone());
        let (latest, history, equivocations) = self
            .core
            .blocking(move |s| {
                Ok((
                    s.latest(&origin, &aid)?,
                    s.history(&origin, &aid)?,
                    s.equivocations(&origin, &aid)?,
                ))
            })
            .await?;
        let core = Arc::clone(&self.core);
        let env = item.envelope.clone();
        let verification = tokio::task::spawn_blocking(move || verification(&core, &env))
            .await
            .map_err(|e| CoreError::Internal(format!("verification task failed: {e}")))?;
        let latest_id = latest.map_or(item.item_id, |l| l.item_id);
        Ok(pb::GetResponse {
            advisory: Some(convert::advisory(&item.advisory)),
            envelope: Some(item.envelope.to_proto()),
            item_id: item.item_id.to_hex(),
            verification: Some(verification),
            superseded: latest_id != item.item_id,
            latest_item_id: latest_id.to_hex(),
            history: history.iter().map(convert::summary_of).collect(),
            equivocations: equivocations.iter().map(convert::equivocation).collect(),
            received_ms: item.received_ms,
            source: item.source,
            warnings: self.screen(&item.advisory.indicators),
        })
    }

    async fn search_inner(
        &self,
        req: pb::SearchIndicatorRequest,
    ) -> Result<pb::SearchIndicatorResponse, CoreError> {
        let bad = |message: String| CoreError::BadRequest {
            field: "value".into(),
            message,
        };
        let value = req.value.trim();
        if value.is_empty() {
            return Err(bad("a value to search for is required".into()));
        }
        // Every kind the value can be (or the one given), each normalized its own way; with no
        // kind given, the advisories' actor lists too (any text can be an actor name).
        let mut searched: Vec<(String, IndicatorQuery, String)> = Vec::new();
        if req.kind == 0 {
            for kind in model::candidate_kinds(value) {
                if let Ok(n) = model::normalize_indicator(kind, value)
                    && let Ok(q) = query_of(kind, &n)
                {
                    searched.push((kind.as_str().to_string(), q, n));
                }
            }
            let actor = value.to_string();
            searched.push((
                "actor".to_string(),
                IndicatorQuery::Actor(actor.clone()),
                actor,
            ));
        } else {
            let kind = wire::kind_from_proto(req.kind).ok_or_else(|| CoreError::BadRequest {
                field: "kind".into(),
                message: format!("unknown indicator kind {}", req.kind),
            })?;
            let n = model::normalize_indicator(kind, value).map_err(bad)?;
            let q = query_of(kind, &n).map_err(bad)?;
            searched.push((kind.as_str().to_string(), q, n));
        }
        let first_kind = match req.kind {
            0 => model::candidate_kinds(value).first().copied(),
            k => wire::kind_from_proto(k),
        };
        let normalized = searched
            .first()
            .map(|(_, _, n)| n.clone())
            .unwrap_or_default();
        let queries: Vec<IndicatorQuery> = searched.iter().map(|(_, q, _)| q.clone()).collect();
        let (matches, items) = self
            .core
            .blocking(move |s| {
                let mut matches = Vec::new();
                for q in &queries {
                    matches.extend(s.search(q)?);
                }
                let mut items = HashMap::new();
                for m in &matches {
                    if !items.contains_key(&m.item_id)
                        && let Some(item) = s.get(&m.item_id)?
                    {
                        items.insert(m.item_id, item);
                    }
                }
                Ok((matches, items))
            })
            .await?;
        let hits = matches
            .iter()
            .filter_map(|m| {
                let item = items.get(&m.item_id)?;
                let n = usize::try_from(m.index).ok()?;
                let advisory = Some(convert::summary_of(item));
                let r#match = convert::match_kind(m.matched).to_string();
                match m.matched {
                    // A hit in the advisory's CVE or actor list: no indicator.
                    MatchKind::CveList | MatchKind::ActorList => Some(pb::IndicatorHit {
                        advisory,
                        indicator: None,
                        r#match,
                        warning_lists: Vec::new(),
                    }),
                    MatchKind::Exact | MatchKind::Cidr => {
                        let ind = item.advisory.indicators.get(n)?;
                        Some(pb::IndicatorHit {
                            advisory,
                            indicator: Some(convert::indicator(ind)),
                            r#match,
                            warning_lists: self.core.warninglists().map_or_else(Vec::new, |w| {
                                w.check(ind.kind, &ind.value)
                                    .into_iter()
                                    .map(String::from)
                                    .collect()
                            }),
                        })
                    }
                }
            })
            .collect();
        Ok(pb::SearchIndicatorResponse {
            normalized,
            kind: first_kind.map_or(pb::IndicatorKind::Unspecified as i32, |k| {
                wire::kind_to_proto(k) as i32
            }),
            hits,
            searched: searched
                .into_iter()
                .map(|(kind, _, normalized)| pb::SearchedKind { kind, normalized })
                .collect(),
        })
    }

    /// Warning-list hits of indicators, against this node's lists (none when not configured).
    fn screen(&self, indicators: &[model::Indicator]) -> Vec<pb::WarningHit> {
        self.core
            .warninglists()
            .map_or_else(Vec::new, |w| convert::warning_hits(w.screen(indicators)))
    }

    async fn status_inner(&self) -> Result<pb::StatusResponse, CoreError> {
        let origins = super::roster::carrier_origins(&self.core);
        let (mut counts, store_bytes, equivocating, carriers) = self
            .core
            .blocking(move |s| {
                let carriers = super::roster::count_carriers(s, &origins)?;
                Ok((
                    s.counts()?,
                    s.disk_bytes(),
                    s.equivocating_origins()?,
                    carriers,
                ))
            })
            .await?;
        // Roster items are stored like advisories but are not advisories: `advisories` counts
        // what `list` shows; `items` counts every stored envelope, roster items included (what
        // the reconciliation sets hold).
        counts.advisories = counts.advisories.saturating_sub(carriers);
        let identity = self.core.identity();
        let active = identity.key_id();
        let keys = self
            .core
            .keyring()
            .of_member(self.core.member())
            .map(|k| convert::key_info(k, k.key_id == active))
            .collect();
        let mut status = pb::StatusResponse {
            member_id: self.core.member().to_string(),
            display_name: self.core.display_name().to_string(),
            keys,
            advisories: counts.advisories,
            withdrawn: counts.withdrawn,
            items: counts.items,
            indicators: counts.indicators,
            equivocations: counts.equivocations,
            equivocating_origins: equivocating
                .iter()
                .map(|o| pb::EquivocatingOrigin {
                    origin: o.origin.clone(),
                    revisions: o.revisions,
                    last_detected_ms: o.last_detected_ms,
                })
                .collect(),
            store_bytes,
            uptime_s: self.core.started().elapsed().as_secs(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            data_dir: self.data_dir.display().to_string(),
            ..self.federation_status().await
        };
        super::roster::status_fields(&self.core, &mut status);
        Ok(status)
    }

    /// The federation fields of Status (all zero for a single node).
    async fn federation_status(&self) -> pb::StatusResponse {
        let refusals = self
            .federation
            .as_ref()
            .map_or(0, |f| f.metrics.refusals_total());
        let Some(sync) = self.core.sync_handle() else {
            return pb::StatusResponse {
                peer_refusals_total: refusals,
                restart_required: self
                    .federation
                    .as_ref()
                    .map(|f| f.metrics.restart_required())
                    .unwrap_or_default(),
                config_reloads: self
                    .federation
                    .as_ref()
                    .map_or(0, |f| f.metrics.reloads("applied")),
                ..Default::default()
            };
        };
        let views = sync.peers().await.unwrap_or_default();
        let restore = self.core.restore_status().await.unwrap_or_default();
        let now = crate::now_ms();
        let last = views
            .iter()
            .filter_map(|v| v.status.last_success_ms)
            .max()
            .and_then(|t| i64::try_from(t).ok());
        pb::StatusResponse {
            federation: true,
            peer_listen: self
                .federation
                .as_ref()
                .and_then(|f| f.peer_listen)
                .map(|a| a.to_string())
                .unwrap_or_default(),
            peers_configured: u32::try_from(views.len()).unwrap_or(u32::MAX),
            peers_up: u32::try_from(
                views
                    .iter()
                    .filter(|v| v.status.link == LinkState::Up)
                    .count(),
            )
            .unwrap_or(u32::MAX),
            peers_down: u32::try_from(
                views
                    .iter()
                    .filter(|v| matches!(v.status.link, LinkState::Down { .. }))
                    .count(),
            )
            .unwrap_or(u32::MAX),
            last_sync_ms: last.unwrap_or(0),
            last_sync_age_ms: last.map_or(0, |t| u64::try_from(now - t).unwrap_or(0)),
            rejections_total: views
                .iter()
                .map(|v| v.status.stats.rejections.values().sum::<u64>())
                .sum(),
            peer_refusals_total: refusals,
            restart_required: self
                .federation
                .as_ref()
                .map(|f| f.metrics.restart_required())
                .unwrap_or_default(),
            config_reloads: self
                .federation
                .as_ref()
                .map_or(0, |f| f.metrics.reloads("applied")),
            roster_version: self.core.membership().version,
            restoring_from: restore.waiting,
            restore_unreachable: restore.unreachable,
            roster_peers_behind: self.roster_peers(&views, std::cmp::Ordering::Less),
            roster_peers_ahead: self.roster_peers(&views, std::cmp::Ordering::Greater),
            ..Default::default()
        }
    }

    /// The roster peers whose reported roster version compares with ours as `ord` (`Less`:
    /// they are behind).
    fn roster_peers(
        &self,
        views: &[crate::sync_handle::PeerView],
        ord: std::cmp::Ordering,
    ) -> Vec<String> {
        let ours = self.core.membership().version;
        let reported = self.core.peer_rosters().snapshot();
        views
            .iter()
            .filter(|v| {
                reported
                    .get(&v.status.peer)
                    .and_then(|r| r.stamp.as_ref())
                    .is_some_and(|st| st.version.cmp(&ours) == ord)
            })
            .map(|v| v.status.peer.clone())
            .collect()
    }

    fn sync(&self) -> Result<&crate::sync_handle::SyncHandle, CoreError> {
        self.core.sync_handle().ok_or_else(|| {
            CoreError::Unavailable(
                "this node does not federate: add a [peer] section and a [[members]] roster to \
                 its config"
                    .into(),
            )
        })
    }

    async fn peers_inner(&self) -> Result<pb::PeersResponse, CoreError> {
        let now = crate::now_ms();
        let Some(sync) = self.core.sync_handle() else {
            return Ok(pb::PeersResponse {
                federation: false,
                peers: Vec::new(),
                now_ms: now,
            });
        };
        let views = sync.peers().await?;
        let equivocating = self.core.blocking(|s| s.equivocating_origins()).await?;
        // The membership in force now (it changes live), never a copy taken at start.
        let membership = self.core.membership();
        let reported = self.core.peer_rosters().snapshot();
        let peers = views
            .iter()
            .map(|v| {
                let entry = membership.members.get(&v.status.peer);
                let mut info = pb::PeerInfo {
                    equivocating: equivocating.iter().any(|o| o.origin == v.status.peer),
                    ..convert::peer_info(v, entry)
                };
                if let Some(r) = reported.get(&v.status.peer) {
                    convert::peer_roster_fields(&mut info, r, membership.version);
                }
                info
            })
            .collect();
        Ok(pb::PeersResponse {
            federation: true,
            peers,
            now_ms: now,
        })
    }

    async fn explain_inner(&self, r: pb::ExplainRequest) -> Result<pb::ExplainResponse, CoreError> {
        let peer = r.peer.trim().to_string();
        if peer.is_empty() {
            return Err(CoreError::BadRequest {
                field: "peer".into(),
                message: "the member id of a peer is required".into(),
            });
        }
        let sync = self.sync()?.clone();
        let item = self.resolve(&r.id).await?;
        let meta = ItemMeta::of_stored(&item);
        let e = sync.explain(meta, &peer).await?;
        let a = &item.advisory;
        let scope = policy::ItemScope::from(a);
        let hold = policy::may_hold(&scope, &peer);
        let retry_at_ms = match e.link {
            LinkState::Down { retry_at_ms } => i64::try_from(retry_at_ms).unwrap_or(0),
            _ => 0,
        };
        let would_send = e.allowed && e.held;
        let me = self.core.member();
        let verdict = if !hold.allowed {
            format!("never sent to {peer}: {}", hold.reason)
        } else if !e.allowed {
            format!("not sent by {me} to {peer}: {}", e.reason)
        } else if !e.held {
            format!("allowed ({}), but {me} does not hold this item", e.reason)
        } else {
            let how = if e.direct && a.origin == me {
                "delivered directly by the origin, then kept in sync by anti-entropy"
            } else if e.in_reconcile_scope {
                "pushed by gossip and kept in sync by anti-entropy"
            } else {
                "pushed by gossip"
            };
            match e.link {
                LinkState::Down { .. } => format!(
                    "sent once {peer} is reachable again ({}; {how}); the link is down",
                    e.reason
                ),
                _ => format!("sent to {peer}: {}; {how}", e.reason),
            }
        };
        Ok(pb::ExplainResponse {
            item_id: item.item_id.to_hex(),
            advisory_id: a.id.clone(),
            origin: a.origin.clone(),
            revision: a.revision,
            tlp: wire::tlp_to_proto(a.tlp) as i32,
            audience: a.audience.clone(),
            peer: peer.clone(),
            peer_may_hold: hold.allowed,
            hold_code: hold.reason.code().to_string(),
            hold_reason: hold.reason.to_string(),
            allowed: e.allowed,
            code: e.code.to_string(),
            reason: e.reason.clone(),
            in_reconcile_scope: e.in_reconcile_scope,
            direct: e.direct,
            held: e.held,
            link: e.link.as_str().to_string(),
            retry_at_ms,
            would_send,
            verdict,
        })
    }
}

#[tonic::async_trait]
impl Operator for OperatorApi {
    async fn publish(
        &self,
        request: Request<pb::PublishRequest>,
    ) -> Result<Response<pb::PublishResponse>, Status> {
        let actor = actor(&request);
        let Some(draft) = request.into_inner().draft else {
            return Err(to_status(CoreError::BadRequest {
                field: "draft".into(),
                message: "required".into(),
            }));
        };
        let draft = convert::draft(draft).map_err(to_status)?;
        let p = self.core.publish(&draft, &actor).await.map_err(to_status)?;
        Ok(Response::new(convert::publish_response(&p)))
    }

    async fn publish_batch(
        &self,
        request: Request<pb::PublishBatchRequest>,
    ) -> Result<Response<pb::PublishBatchResponse>, Status> {
        let actor = actor(&request);
        let drafts = request.into_inner().drafts;
        if drafts.is_empty() || drafts.len() > MAX_BATCH_DRAFTS {
            return Err(to_status(CoreError::BadRequest {
                field: "drafts".into(),
                message: format!(
                    "{} drafts given; a batch holds 1 to {MAX_BATCH_DRAFTS}",
                    drafts.len()
                ),
            }));
        }
        let drafts = convert::drafts(drafts).map_err(to_status)?;
        let published = self
            .core
            .publish_batch(&drafts, &actor)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::PublishBatchResponse {
            results: published.iter().map(convert::publish_response).collect(),
        }))
    }

    type ExportIndicatorsStream = ExportIndicatorsStream;

    async fn export_indicators(
        &self,
        request: Request<pb::ExportIndicatorsRequest>,
    ) -> Result<Response<Self::ExportIndicatorsStream>, Status> {
        let filter = export_filter(request.get_ref()).map_err(to_status)?;
        Ok(Response::new(export_stream(
            Arc::clone(&self.core),
            filter,
            self.shutdown.clone(),
        )))
    }

    async fn withdraw(
        &self,
        request: Request<pb::WithdrawRequest>,
    ) -> Result<Response<pb::WithdrawResponse>, Status> {
        let actor = actor(&request);
        let r = request.into_inner();
        let p = self
            .core
            .withdraw(&r.id, &r.reason, &actor)
            .await
            .map_err(to_status)?;
        Ok(Response::new(convert::withdraw_response(&p)))
    }

    async fn get(
        &self,
        request: Request<pb::GetRequest>,
    ) -> Result<Response<pb::GetResponse>, Status> {
        let r = self
            .get_inner(&request.into_inner().id)
            .await
            .map_err(to_status)?;
        Ok(Response::new(r))
    }

    async fn list(
        &self,
        request: Request<pb::ListRequest>,
    ) -> Result<Response<pb::ListResponse>, Status> {
        let filter = convert::list_filter(request.get_ref()).map_err(to_status)?;
        let order = filter.order;
        let (items, truncated) = self
            .core
            .blocking(move |s| s.list(&filter))
            .await
            .map_err(to_status)?;
        let next_page_token = match items.last() {
            Some(last) if truncated => convert::next_page_token(order, last),
            _ => Vec::new(),
        };
        Ok(Response::new(pb::ListResponse {
            advisories: items.iter().map(convert::summary_of).collect(),
            truncated,
            next_page_token,
        }))
    }

    async fn search_indicator(
        &self,
        request: Request<pb::SearchIndicatorRequest>,
    ) -> Result<Response<pb::SearchIndicatorResponse>, Status> {
        let r = self
            .search_inner(request.into_inner())
            .await
            .map_err(to_status)?;
        Ok(Response::new(r))
    }

    type WatchStream = WatchStream;

    async fn watch(
        &self,
        _request: Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        if self.shutdown.is_cancelled() {
            return Err(status(ApiError::ShuttingDown { what: "" }));
        }
        let stream = EventStream {
            rx: BroadcastStream::new(self.core.subscribe()),
            shutdown: Box::pin(self.shutdown.clone().cancelled_owned()),
            done: false,
        };
        Ok(Response::new(Box::pin(stream)))
    }

    async fn status(
        &self,
        _request: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        Ok(Response::new(self.status_inner().await.map_err(to_status)?))
    }

    async fn import_envelope(
        &self,
        request: Request<pb::ImportEnvelopeRequest>,
    ) -> Result<Response<pb::ImportEnvelopeResponse>, Status> {
        let actor = actor(&request);
        let Some(env) = request.into_inner().envelope else {
            return Err(to_status(CoreError::BadRequest {
                field: "envelope".into(),
                message: "required".into(),
            }));
        };
        let (id, outcome) = self
            .core
            .import_envelope(Envelope::from_proto(env), &actor)
            .await
            .map_err(to_status)?;
        Ok(Response::new(convert::import_response(&id, outcome)))
    }

    async fn peers(
        &self,
        _request: Request<pb::PeersRequest>,
    ) -> Result<Response<pb::PeersResponse>, Status> {
        Ok(Response::new(self.peers_inner().await.map_err(to_status)?))
    }

    async fn explain(
        &self,
        request: Request<pb::ExplainRequest>,
    ) -> Result<Response<pb::ExplainResponse>, Status> {
        let r = self
            .explain_inner(request.into_inner())
            .await
            .map_err(to_status)?;
        Ok(Response::new(r))
    }

    async fn sync_now(
        &self,
        request: Request<pb::SyncNowRequest>,
    ) -> Result<Response<pb::SyncNowResponse>, Status> {
        let actor = actor(&request);
        let peer = request.into_inner().peer.trim().to_string();
        let sync = self.sync().map_err(to_status)?;
        let chosen = sync
            .sync_now((!peer.is_empty()).then_some(peer.as_str()))
            .await
            .map_err(|e| to_status(e.into()))?;
        tracing::info!(peer = %chosen, actor, "reconciliation started by the operator");
        Ok(Response::new(pb::SyncNowResponse { peer: chosen }))
    }

    async fn reload(
        &self,
        request: Request<pb::ReloadRequest>,
    ) -> Result<Response<pb::ReloadResponse>, Status> {
        let actor = actor(&request);
        tracing::info!(actor, "config reload requested by the operator");
        let report = self.core.reload().await.map_err(to_status)?;
        Ok(Response::new(pb::ReloadResponse {
            applied: report.applied,
            restart_required: report.restart_required,
        }))
    }

    async fn roster_show(
        &self,
        _request: Request<pb::RosterShowRequest>,
    ) -> Result<Response<pb::RosterShowResponse>, Status> {
        Ok(Response::new(super::roster::show(&self.core)))
    }

    async fn roster_history(
        &self,
        _request: Request<pb::RosterHistoryRequest>,
    ) -> Result<Response<pb::RosterHistoryResponse>, Status> {
        Ok(Response::new(
            super::roster::history(&self.core).map_err(to_status)?,
        ))
    }

    async fn roster_propose(
        &self,
        request: Request<pb::RosterProposeRequest>,
    ) -> Result<Response<pb::RosterProposeResponse>, Status> {
        let actor = actor(&request);
        let change = request.into_inner().change_json;
        Ok(Response::new(
            super::roster::propose(&self.core, &change, &actor)
                .await
                .map_err(to_status)?,
        ))
    }

    async fn roster_approve(
        &self,
        request: Request<pb::RosterApproveRequest>,
    ) -> Result<Response<pb::RosterApproveResponse>, Status> {
        let actor = actor(&request);
        let proposal = request.into_inner().proposal;
        Ok(Response::new(
            super::roster::approve(&self.core, &proposal, &actor)
                .await
                .map_err(to_status)?,
        ))
    }

    async fn audit(
        &self,
        request: Request<pb::AuditRequest>,
    ) -> Result<Response<pb::AuditResponse>, Status> {
        let limit = convert::audit_limit(request.get_ref().limit);
        let entries = self
            .core
            .blocking(move |s| s.audit(limit))
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::AuditResponse {
            entries: entries.iter().map(convert::audit_record).collect(),
        }))
    }
}

/// Indicators per chunk of an `ExportIndicators` stream.
const EXPORT_CHUNK: usize = 1000;
/// Chunks produced ahead of a slow reader (memory stays at a few chunks whatever the export
/// size).
const EXPORT_BUFFER: usize = 4;

/// The filter of an `ExportIndicators` request (TLP_UNSPECIFIED = GREEN).
fn export_filter(r: &pb::ExportIndicatorsRequest) -> Result<ExportFilter, CoreError> {
    let bad = |field: &str, message: String| CoreError::BadRequest {
        field: field.into(),
        message,
    };
    let max_tlp = match r.max_tlp {
        0 => crate::policy::DEFAULT_EXPORT_CEILING,
        v => wire::tlp_from_proto(v)
            .ok_or_else(|| bad("max_tlp", format!("unknown TLP value {v}")))?,
    };
    let min_confidence = u8::try_from(r.min_confidence)
        .ok()
        .filter(|c| *c <= 100)
        .ok_or_else(|| {
            bad(
                "min_confidence",
                format!("{} is above 100", r.min_confidence),
            )
        })?;
    let mut kinds = Vec::new();
    for (n, k) in r.kinds.iter().enumerate() {
        let kind = wire::kind_from_proto(*k).ok_or_else(|| {
            bad(
                &format!("kinds[{n}]"),
                format!("unknown indicator kind {k}"),
            )
        })?;
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    let mut origins: Vec<String> = r.origins.iter().map(|o| o.trim().to_string()).collect();
    for (n, o) in origins.iter().enumerate() {
        model::validate::check_member_id(o).map_err(|m| bad(&format!("origins[{n}]"), m))?;
    }
    origins.sort();
    origins.dedup();
    Ok(ExportFilter {
        max_tlp,
        min_confidence,
        kinds,
        origins,
        include_warninglisted: r.include_warninglisted,
    })
}

/// Chunks of an export; ends with UNAVAILABLE when the daemon shuts down (which also stops the
/// store scan feeding it).
struct ExportStream {
    rx: tokio::sync::mpsc::Receiver<Result<pb::ExportIndicatorsChunk, Status>>,
    shutdown: Pin<Box<WaitForCancellationFutureOwned>>,
    done: bool,
}

impl Stream for ExportStream {
    type Item = Result<pb::ExportIndicatorsChunk, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        if self.shutdown.as_mut().poll(cx).is_ready() {
            self.done = true;
            self.rx.close();
            return Poll::Ready(Some(Err(status(ApiError::ShuttingDown {
                what: "; export again once it is back",
            }))));
        }
        let r = self.rx.poll_recv(cx);
        if let Poll::Ready(None) = r {
            self.done = true;
        }
        r
    }
}

/// From the blocking pool: sends a chunk, waiting while the reader is behind, unless the
/// reader went away or the daemon is shutting down (then `false`: stop producing). Never waits
/// on a reader past shutdown, so a client that stops reading cannot hold the daemon up.
fn send_or_stop(
    out: &tokio::sync::mpsc::Sender<Result<pb::ExportIndicatorsChunk, Status>>,
    chunk: pb::ExportIndicatorsChunk,
    stop: &CancellationToken,
) -> bool {
    tokio::runtime::Handle::current().block_on(async {
        tokio::select! {
            sent = out.send(Ok(chunk)) => sent.is_ok(),
            () = stop.cancelled() => false,
        }
    })
}

/// Streams the active indicators `filter` selects, in chunks of `EXPORT_CHUNK`, by (origin,
/// advisory id): a blocking task scans the latest revisions one advisory at a time and waits
/// while the reader is `EXPORT_BUFFER` chunks behind, so memory does not grow with the export.
/// Each indicator is screened against this node's warning lists: hits are left out unless
/// `include_warninglisted`, then marked. An exported indicator's `valid_until_ms` is the
/// earlier of its own and its advisory's.
fn export_stream(
    core: Arc<NodeCore>,
    filter: ExportFilter,
    shutdown: CancellationToken,
) -> ExportIndicatorsStream {
    let (tx, rx) = tokio::sync::mpsc::channel(EXPORT_BUFFER);
    let stop = shutdown.clone();
    tokio::spawn(async move {
        let now = crate::now_ms();
        let lists = core.warninglists().cloned();
        let origins: Vec<Option<String>> = if filter.origins.is_empty() {
            vec![None]
        } else {
            filter.origins.iter().cloned().map(Some).collect()
        };
        let out = tx.clone();
        let result = core
            .blocking(move |s| {
                let mut chunk = Vec::with_capacity(EXPORT_CHUNK);
                let mut open = true;
                for origin in &origins {
                    s.scan_latest(origin.as_deref(), false, &mut |item| {
                        if stop.is_cancelled() {
                            open = false;
                            return Ok(false);
                        }
                        let a = &item.advisory;
                        // Roster items are not advisories: never exported.
                        if tanoa_core::roster::is_carrier_id(&a.id) {
                            return Ok(true);
                        }
                        let mut summary = None;
                        for (_, ind) in filter.select(a, now) {
                            let warning_lists: Vec<String> = lists
                                .as_ref()
                                .map(|w| {
                                    w.check(ind.kind, &ind.value)
                                        .into_iter()
                                        .map(String::from)
                                        .collect()
                                })
                                .unwrap_or_default();
                            if !warning_lists.is_empty() && !filter.include_warninglisted {
                                continue;
                            }
                            let mut exported = convert::indicator(ind);
                            exported.valid_until_ms =
                                blocklist::earliest(ind.valid_until_ms, a.valid_until_ms)
                                    .unwrap_or(0);
                            let summary = summary.get_or_insert_with(|| convert::summary_of(&item));
                            chunk.push(pb::ExportedIndicator {
                                indicator: Some(exported),
                                advisory: Some(summary.clone()),
                                warning_lists,
                            });
                            if chunk.len() == EXPORT_CHUNK {
                                let full =
                                    std::mem::replace(&mut chunk, Vec::with_capacity(EXPORT_CHUNK));
                                let msg = pb::ExportIndicatorsChunk { indicators: full };
                                if !send_or_stop(&out, msg, &stop) {
                                    open = false;
                                    return Ok(false);
                                }
                            }
                        }
                        Ok(true)
                    })?;
                    if !open {
                        return Ok(());
                    }
                }
                if !chunk.is_empty() {
                    send_or_stop(&out, pb::ExportIndicatorsChunk { indicators: chunk }, &stop);
                }
                Ok(())
            })
            .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "indicator export failed");
            let _ = tx.send(Err(to_status(e))).await;
        }
    });
    Box::pin(ExportStream {
        rx,
        shutdown: Box::pin(shutdown.cancelled_owned()),
        done: false,
    })
}

/// The store query for a normalized value of a kind: an address also finds the CIDR indicators
/// holding it.
fn query_of(kind: IndicatorKind, normalized: &str) -> Result<IndicatorQuery, String> {
    Ok(match kind {
        IndicatorKind::Ipv4 | IndicatorKind::Ipv6 => IndicatorQuery::Ip(
            normalized
                .parse()
                .map_err(|e| format!("{normalized:?} is not an IP address ({e})"))?,
        ),
        _ => IndicatorQuery::Exact(kind, normalized.to_string()),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use tokio::sync::broadcast;
    use tokio_stream::StreamExt as _;
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::publish::{ChangeKind, ChangeSummary};

    fn event(id: &str) -> ChangeEvent {
        let a = tanoa_core::store::conformance::advisory("ws-cert", id, 1);
        ChangeEvent {
            kind: ChangeKind::New,
            item_id: crate::envelope::ItemId([7; 32]),
            advisory: ChangeSummary::of(&a),
            source: "local".into(),
        }
    }

    #[tokio::test]
    async fn watch_streams_advisories_but_never_roster_items() {
        let (tx, rx) = broadcast::channel(16);
        let mut stream = EventStream {
            rx: BroadcastStream::new(rx),
            shutdown: Box::pin(CancellationToken::new().cancelled_owned()),
            done: false,
        };
        for id in [
            "tanoa-roster.v2.0123456789abcdef",
            "ws-2026-0001",
            "tanoa-roster.v2.approval.0123456789abcdef",
            "ws-2026-0002",
        ] {
            tx.send(event(id)).unwrap();
        }
        drop(tx);
        let mut seen = Vec::new();
        while let Some(ev) = stream.next().await {
            seen.push(ev.unwrap().advisory.unwrap().advisory_id);
        }
        assert_eq!(seen, ["ws-2026-0001", "ws-2026-0002"]);
    }
}
