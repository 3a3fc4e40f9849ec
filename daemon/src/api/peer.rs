//! The tonic `Peer` service: what other federation members call on the peer port.
//!
//! Owns: request handling of Push (verify → admit by policy → store → sync → report, through
//! `NodeCore::accept_from_peer`), Reconcile and Fetch (answered by the sync core through the
//! driver; fetched envelopes loaded from the store), the caller's identity (the
//! `transport::PeerIdentity` request extension set from the verified certificate, never a
//! message field), and `PeerGuard`, which wraps the generated server to count and log whole
//! messages refused before a handler runs (oversized → `RESOURCE_EXHAUSTED`, undecodable →
//! `INVALID_ARGUMENT`) against the calling member.
//! Must never: be served on the operator listener, answer a caller without a verified member
//! identity, trust an id carried in a message, or tell a peer anything about items it may not
//! hold (fetch answers those exactly like unknown ids; errors carry only the caller's own data).

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use tanoa_proto::v1 as pb;
use tanoa_proto::v1::peer_server::{Peer, PeerServer};
use tonic::server::NamedService;
use tonic::{Request, Response, Status};

use super::error::{sync_status, to_status};
use crate::metrics::Metrics;
use crate::publish::{CoreError, NodeCore};
use crate::sync::{FetchRequest, PushRequest, PushResponse, ReconcileRequest};
use crate::sync_handle::{DriverError, SyncHandle};
use crate::transport::PeerIdentity;

/// Reason code of a message larger than the peer message limit.
pub const OVERSIZED: &str = "oversized_message";
/// Reason code of a message that does not decode.
pub const MALFORMED: &str = "malformed";
/// Reason code of a push with more envelopes than `max_push_items`.
pub const TOO_MANY_ITEMS: &str = "too_many_items";

/// The peer service over a shared `NodeCore` and the sync driver.
#[derive(Debug, Clone)]
pub struct PeerApi {
    node: Arc<NodeCore>,
    sync: SyncHandle,
    metrics: Arc<Metrics>,
    max_push_items: usize,
    limit: usize,
}

impl PeerApi {
    /// A service; `limit` is the gRPC message limit (`node::driver::peer_message_limit`),
    /// `max_push_items` the most envelopes accepted in one push.
    pub fn new(
        node: Arc<NodeCore>,
        sync: SyncHandle,
        metrics: Arc<Metrics>,
        max_push_items: usize,
        limit: usize,
    ) -> Self {
        Self {
            node,
            sync,
            metrics,
            max_push_items,
            limit,
        }
    }

    /// The tonic server of this service with the message limits, wrapped in `PeerGuard`.
    pub fn into_server(self) -> PeerGuard {
        let limit = self.limit;
        let (sync, metrics) = (self.sync.clone(), self.metrics.clone());
        PeerGuard {
            inner: PeerServer::new(self)
                .max_decoding_message_size(limit)
                .max_encoding_message_size(limit),
            sync,
            metrics,
        }
    }
}

/// The calling member, from the verified certificate.
fn caller<T>(req: &Request<T>) -> Result<String, Status> {
    req.extensions()
        .get::<PeerIdentity>()
        .map(|p| p.member.clone())
        .ok_or_else(|| Status::unauthenticated("no verified member certificate on this connection"))
}

fn driver_status(e: DriverError) -> Status {
    match e {
        DriverError::Sync(s) => sync_status(&s),
        DriverError::Stopped => to_status(CoreError::from(e)),
    }
}

impl PeerApi {
    async fn refuse(&self, peer: &str, code: &'static str, detail: String) -> Status {
        tracing::warn!(%peer, reason = code, %detail, "message from peer refused");
        self.metrics.peer_message_rejected(peer, code);
        let _ = self.sync.note_rejection(peer, code).await;
        let mut st = Status::invalid_argument(detail);
        if let Ok(v) = code.parse() {
            st.metadata_mut().insert(super::error::REASON_METADATA, v);
        }
        st
    }
}

#[tonic::async_trait]
impl Peer for PeerApi {
    async fn push(
        &self,
        request: Request<pb::PushRequest>,
    ) -> Result<Response<pb::PushResponse>, Status> {
        let peer = caller(&request)?;
        let msg = PushRequest::from_proto(request.into_inner());
        if msg.envelopes.len() > self.max_push_items {
            return Err(self
                .refuse(
                    &peer,
                    TOO_MANY_ITEMS,
                    format!(
                        "PushRequest.envelopes has {} envelopes, more than {}",
                        msg.envelopes.len(),
                        self.max_push_items
                    ),
                )
                .await);
        }
        let results = self
            .node
            .accept_from_peer(&peer, msg.envelopes)
            .await
            .map_err(to_status)?;
        let accepted = results.iter().filter(|r| r.accepted).count();
        tracing::debug!(%peer, items = results.len(), accepted, "push received");
        Ok(Response::new(PushResponse { results }.to_proto()))
    }

    async fn reconcile(
        &self,
        request: Request<pb::ReconcileRequest>,
    ) -> Result<Response<pb::ReconcileResponse>, Status> {
        let peer = caller(&request)?;
        let msg = ReconcileRequest::from_proto(request.into_inner());
        match self.sync.reconcile(&peer, msg).await {
            Ok(r) => Ok(Response::new(r.to_proto())),
            Err(e) => {
                // The core counted it against the peer.
                tracing::warn!(%peer, error = %e, "reconciliation round refused");
                Err(driver_status(e))
            }
        }
    }

    async fn fetch(
        &self,
        request: Request<pb::FetchRequest>,
    ) -> Result<Response<pb::FetchResponse>, Status> {
        let peer = caller(&request)?;
        let msg = match FetchRequest::from_proto(request.into_inner()) {
            Ok(m) => m,
            Err(e) => return Err(self.refuse(&peer, MALFORMED, e.to_string()).await),
        };
        let reply = match self.sync.fetch(&peer, msg).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(%peer, error = %e, "fetch refused");
                return Err(driver_status(e));
            }
        };
        let serve = reply.serve.clone();
        let loaded = self
            .node
            .blocking(move |s| {
                let mut found = std::collections::HashMap::with_capacity(serve.len());
                for id in &serve {
                    if let Some(item) = s.get(id)? {
                        found.insert(*id, item.envelope);
                    }
                }
                Ok(found)
            })
            .await
            .map_err(to_status)?;
        let mut loaded = loaded;
        let resp = reply.into_response(|id| loaded.remove(id));
        Ok(Response::new(resp.to_proto()))
    }
}

/// The generated `PeerServer` wrapped so that messages refused by tonic before a handler runs
/// are counted against the calling member and logged with its id: a message over the limit
/// (tonic: `OUT_OF_RANGE`) becomes `RESOURCE_EXHAUSTED`, one that does not decode (tonic:
/// `INTERNAL` "failed to decode Protobuf message") becomes `INVALID_ARGUMENT`. The connection
/// keeps serving.
#[derive(Debug, Clone)]
pub struct PeerGuard {
    inner: PeerServer<PeerApi>,
    sync: SyncHandle,
    metrics: Arc<Metrics>,
}

impl NamedService for PeerGuard {
    const NAME: &'static str = <PeerServer<PeerApi> as NamedService>::NAME;
}

/// What a trailers-only error response from tonic's decoder means, if it is one of ours.
fn classify(status: &Status) -> Option<(&'static str, tonic::Code)> {
    match status.code() {
        tonic::Code::OutOfRange if status.message().contains("message length too large") => {
            Some((OVERSIZED, tonic::Code::ResourceExhausted))
        }
        tonic::Code::Internal if status.message().contains("failed to decode Protobuf") => {
            Some((MALFORMED, tonic::Code::InvalidArgument))
        }
        _ => None,
    }
}

impl tower::Service<http::Request<tonic::body::Body>> for PeerGuard {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Infallible>> + Send>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        <PeerServer<PeerApi> as tower::Service<http::Request<tonic::body::Body>>>::poll_ready(
            &mut self.inner,
            cx,
        )
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        let peer = req
            .extensions()
            .get::<PeerIdentity>()
            .map(|p| p.member.clone());
        let method = req.uri().path().to_string();
        let fut = tower::Service::call(&mut self.inner, req);
        let (sync, metrics) = (self.sync.clone(), self.metrics.clone());
        Box::pin(async move {
            let resp = fut.await?;
            let Some(status) = Status::from_header_map(resp.headers()) else {
                return Ok(resp);
            };
            let Some((code, new_code)) = classify(&status) else {
                return Ok(resp);
            };
            let peer = peer.unwrap_or_else(|| "(unknown)".to_string());
            tracing::warn!(%peer, %method, reason = code, detail = %status.message(),
                "message from peer refused");
            metrics.peer_message_rejected(&peer, code);
            let _ = sync.note_rejection(&peer, code).await;
            let mut st = Status::new(new_code, format!("{code}: {}", status.message()));
            if let Ok(v) = code.parse() {
                st.metadata_mut().insert(super::error::REASON_METADATA, v);
            }
            Ok(st.into_http())
        })
    }
}
