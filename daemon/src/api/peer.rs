//! The tonic `Peer` service: what other federation members call on the peer port.
//!
//! Owns: request handling of Push (envelopes verified by `NodeCore::verify_received`, then
//! admitted, stored and reported by the node machine in the sync driver: one request to the
//! driver), Reconcile and Fetch (answered by the driver, which loads fetched envelopes), the caller's identity (the
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

use super::error::{ApiError, status, to_status};
use crate::metrics::Metrics;
use crate::publish::NodeCore;
use crate::sync::{FetchRequest, PushRequest, PushResponse, ReconcileRequest};
use crate::sync_handle::{DriverError, SyncHandle};
use crate::transport::PeerIdentity;

/// Reason code of a message larger than the peer message limit.
pub(crate) const OVERSIZED: &str = "oversized_message";
/// Reason code of a message that does not decode.
pub(crate) const MALFORMED: &str = "malformed";
/// Reason code of a request whose body ends inside a gRPC frame.
pub(crate) const TRUNCATED: &str = "truncated_message";
/// Reason code of a unary request without any message.
pub(crate) const MISSING: &str = "missing_message";
/// Reason code of a frame with the compressed flag set but no `grpc-encoding` header (or a
/// flag other than 0 and 1).
pub(crate) const BAD_COMPRESSION_FLAG: &str = "bad_compression_flag";
/// Reason code of a request stream that failed at the HTTP/2 layer (reset, protocol error).
pub(crate) const HTTP2_ERROR: &str = "http2_error";
/// Reason code of a push with more envelopes than `max_push_items`.
pub(crate) const TOO_MANY_ITEMS: &str = "too_many_items";
/// Reason code of a compressed frame that inflates past the peer message limit (a
/// decompression bomb): refused while decompressing, answered `RESOURCE_EXHAUSTED`.
pub(crate) const INFLATES_TOO_LARGE: &str = "decompressed_too_large";
/// Reason code of a compressed frame that does not decompress.
pub(crate) const BAD_COMPRESSED: &str = "bad_compressed_data";

/// The peer service over a shared `NodeCore` and the sync driver.
#[derive(Debug, Clone)]
pub(crate) struct PeerApi {
    node: Arc<NodeCore>,
    sync: SyncHandle,
    metrics: Arc<Metrics>,
    max_push_items: usize,
    limit: usize,
    compression: Option<tonic::codec::CompressionEncoding>,
}

impl PeerApi {
    /// A service; `limit` is the gRPC message limit (`node::driver::peer_message_limit`),
    /// `max_push_items` the most envelopes accepted in one push.
    pub(crate) fn new(
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
            compression: None,
        }
    }

    /// Answers compressed with `encoding` to callers that accept it (`peer_link`); requests
    /// compressed with any encoding of `peer_link::DECODABLE` are always accepted.
    pub(crate) fn with_compression(
        mut self,
        encoding: Option<tonic::codec::CompressionEncoding>,
    ) -> Self {
        self.compression = encoding;
        self
    }

    /// The tonic server of this service with the message limits, wrapped in `PeerGuard`.
    pub(crate) fn into_server(self) -> PeerGuard {
        let limit = self.limit;
        let (sync, metrics, node) = (self.sync.clone(), self.metrics.clone(), self.node.clone());
        let compression = self.compression;
        let mut inner = PeerServer::new(self)
            .max_decoding_message_size(limit)
            .max_encoding_message_size(limit);
        for e in crate::peer_link::DECODABLE {
            inner = inner.accept_compressed(e);
        }
        if let Some(e) = compression {
            inner = inner.send_compressed(e);
        }
        PeerGuard {
            inner,
            sync,
            metrics,
            node,
            limit,
        }
    }
}

/// The calling member, from the verified certificate. Every handler calls it first, so it also
/// tells `PeerGuard` that the request reached a handler.
fn caller<T>(req: &Request<T>) -> Result<String, Status> {
    if let Some(seen) = req.extensions().get::<Observed>() {
        seen.reached_handler();
    }
    req.extensions()
        .get::<PeerIdentity>()
        .map(|p| p.member.clone())
        .ok_or_else(|| status(ApiError::NoIdentity))
}

fn driver_status(e: DriverError) -> Status {
    status(ApiError::Driver(e))
}

impl PeerApi {
    async fn refuse(&self, peer: &str, code: &'static str, detail: String) -> Status {
        tracing::warn!(%peer, reason = code, %detail, "message from peer refused");
        self.metrics.peer_message_rejected(peer, code);
        let _ = self.sync.note_rejection(peer, code).await;
        status(ApiError::PeerRefused {
            code,
            detail,
            oversized: false,
        })
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
        let checked = self
            .node
            .verify_received(msg.envelopes)
            .await
            .map_err(to_status)?;
        let results = self
            .sync
            .receive(&peer, checked)
            .await
            .map_err(driver_status)?;
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
        let resp = match self.sync.fetch(&peer, msg).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(%peer, error = %e, "fetch refused");
                return Err(driver_status(e));
            }
        };
        Ok(Response::new(resp.to_proto()))
    }
}

/// The generated `PeerServer` wrapped so that messages refused by tonic before a handler runs
/// are counted against the calling member and logged with its id. The guard watches the
/// request body as tonic reads it (`ObservedBody`: the gRPC framing, byte by byte) and marks
/// the request when a handler starts, so a refusal is classified by what was received, not by
/// tonic's message text: a frame over the limit (`oversized_message`, answered
/// `RESOURCE_EXHAUSTED`), a compressed flag without `grpc-encoding` (`bad_compression_flag`),
/// a body ending inside a frame (`truncated_message`), no message at all
/// (`missing_message`), a stream failing at the HTTP/2 layer (`http2_error`), a compressed
/// frame that inflates past the limit (`decompressed_too_large`, answered
/// `RESOURCE_EXHAUSTED`) or does not decompress (`bad_compressed_data`), and a complete
/// frame that does not decode (`malformed`); the others answered `INVALID_ARGUMENT`. Every
/// answer carries `grpc-accept-encoding` (`peer_link`).
/// The connection keeps serving. (HTTP/2 violations that kill the whole connection never reach
/// a service and are not counted here.)
#[derive(Debug, Clone)]
pub(crate) struct PeerGuard {
    inner: PeerServer<PeerApi>,
    sync: SyncHandle,
    metrics: Arc<Metrics>,
    node: Arc<NodeCore>,
    limit: usize,
}

impl NamedService for PeerGuard {
    const NAME: &'static str = <PeerServer<PeerApi> as NamedService>::NAME;
}

/// What the guard saw of one request: the gRPC framing of its body and whether a handler ran.
#[derive(Debug, Clone, Default)]
struct Observed(Arc<std::sync::Mutex<Framing>>);

/// The state of the gRPC framing of a request body.
#[derive(Debug, Default)]
struct Framing {
    /// Body bytes seen.
    bytes: u64,
    /// Header bytes of the current frame seen so far (0..5).
    header: [u8; 5],
    header_len: usize,
    /// Body bytes of the current frame still to come.
    remaining: u64,
    /// The first problem seen in the framing (a reason code).
    problem: Option<&'static str>,
    /// A handler started.
    reached: bool,
}

impl Observed {
    fn lock(&self) -> std::sync::MutexGuard<'_, Framing> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn reached_handler(&self) {
        self.lock().reached = true;
    }

    /// Walks `chunk` through the framing.
    fn data(&self, mut chunk: &[u8], encoding: bool, limit: usize) {
        let mut f = self.lock();
        f.bytes = f.bytes.saturating_add(chunk.len() as u64);
        while !chunk.is_empty() && f.problem.is_none() {
            if f.remaining > 0 {
                let n = usize::try_from(f.remaining)
                    .unwrap_or(usize::MAX)
                    .min(chunk.len());
                f.remaining -= n as u64;
                chunk = &chunk[n..];
                continue;
            }
            let n = (5 - f.header_len).min(chunk.len());
            let at = f.header_len;
            f.header[at..at + n].copy_from_slice(&chunk[..n]);
            f.header_len += n;
            chunk = &chunk[n..];
            if f.header_len < 5 {
                break;
            }
            f.header_len = 0;
            let [flag, a, b, c, d] = f.header;
            let len = u32::from_be_bytes([a, b, c, d]);
            if flag > 1 || (flag == 1 && !encoding) {
                f.problem = Some(BAD_COMPRESSION_FLAG);
            } else if usize::try_from(len).map_or(true, |l| l > limit) {
                f.problem = Some(OVERSIZED);
            }
            f.remaining = u64::from(len);
        }
    }

    fn failed(&self) {
        let mut f = self.lock();
        if f.problem.is_none() {
            f.problem = Some(HTTP2_ERROR);
        }
    }

    /// Why tonic refused the request before a handler ran (`None` when a handler ran).
    fn refusal(&self) -> Option<&'static str> {
        let f = self.lock();
        if f.reached {
            return None;
        }
        Some(match f.problem {
            Some(p) => p,
            None if f.bytes == 0 => MISSING,
            None if f.header_len > 0 || f.remaining > 0 => TRUNCATED,
            None => MALFORMED,
        })
    }
}

/// The request body as tonic reads it, reported to an `Observed`.
struct ObservedBody {
    inner: tonic::body::Body,
    seen: Observed,
    encoding: bool,
    limit: usize,
}

impl http_body::Body for ObservedBody {
    type Data = bytes::Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<bytes::Bytes>, Status>>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref() {
                    self.seen.data(d, self.encoding, self.limit);
                }
            }
            // A stream the caller cancelled ends like an ordinary end of body for tonic.
            Poll::Ready(Some(Err(st))) if st.code() != tonic::Code::Cancelled => {
                self.seen.failed();
            }
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Adds the encodings the peer port decodes to an answer (`peer_link`): a caller compresses its
/// requests only after an answer listed the encoding; and this member's roster version
/// (`peer_roster`).
fn advertise<B>(resp: &mut http::Response<B>, roster: &http::HeaderValue) {
    resp.headers_mut().insert(
        crate::peer_link::ACCEPT_ENCODING,
        crate::peer_link::LinkSettings::advertised(),
    );
    resp.headers_mut()
        .insert(crate::peer_roster::HEADER, roster.clone());
}

/// The answer to a request tonic refused for `reason`.
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
        // The caller's roster version, for display only, recorded under the verified identity.
        if let Some(p) = &peer
            && self.node.peer_rosters().record(
                p,
                req.headers()
                    .get(crate::peer_roster::HEADER)
                    .map(http::HeaderValue::as_bytes),
                crate::now_ms(),
            ) == crate::peer_roster::Recorded::Malformed
        {
            self.metrics
                .peer_message_rejected(p, crate::peer_roster::MALFORMED_HEADER);
        }
        let ours = self.node.peer_rosters().our_value();
        let seen = Observed::default();
        let encoding = req
            .headers()
            .get("grpc-encoding")
            .is_some_and(|v| v.as_bytes() != b"identity");
        let (mut parts, body) = req.into_parts();
        parts.extensions.insert(seen.clone());
        let body = tonic::body::Body::new(ObservedBody {
            inner: body,
            seen: seen.clone(),
            encoding,
            limit: self.limit,
        });
        let fut = tower::Service::call(&mut self.inner, http::Request::from_parts(parts, body));
        let (sync, metrics) = (self.sync.clone(), self.metrics.clone());
        Box::pin(async move {
            let mut resp = fut.await?;
            advertise(&mut resp, &ours);
            let Some(status) = Status::from_header_map(resp.headers()) else {
                return Ok(resp);
            };
            // Only refusals of what was received (not e.g. an unknown method).
            if !matches!(
                status.code(),
                tonic::Code::Internal
                    | tonic::Code::OutOfRange
                    | tonic::Code::ResourceExhausted
                    | tonic::Code::Unknown
            ) {
                return Ok(resp);
            }
            let Some(code) = seen.refusal() else {
                return Ok(resp);
            };
            // A complete frame that tonic could not decompress: too large once inflated (the
            // decompression buffer is bounded by the message limit) or not valid compressed data.
            let code = match (code, encoding, status.code()) {
                (MALFORMED, true, tonic::Code::ResourceExhausted) => INFLATES_TOO_LARGE,
                (MALFORMED, true, tonic::Code::Internal) => BAD_COMPRESSED,
                (c, ..) => c,
            };
            let peer = peer.unwrap_or_else(|| "(unknown)".to_string());
            tracing::warn!(%peer, %method, reason = code, detail = %status.message(),
                "message from peer refused");
            metrics.peer_message_rejected(&peer, code);
            let _ = sync.note_rejection(&peer, code).await;
            let st = super::error::status(ApiError::PeerRefused {
                code,
                detail: format!("{code}: {}", status.message()),
                oversized: code == OVERSIZED || code == INFLATES_TOO_LARGE,
            });
            let mut resp = st.into_http();
            advertise(&mut resp, &ours);
            Ok(resp)
        })
    }
}
