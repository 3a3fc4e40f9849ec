//! The replication state machine, sans-IO: who gets which item, when, and how two members find
//! out what the other lacks.
//!
//! Owns: eager push (target choice, direct delivery of RED and small-audience items),
//! anti-entropy scheduling (interval ± jitter, least recently attempted peer first, at every
//! (re)connect), range-based set reconciliation with `negentropy` over exactly
//! `policy::in_reconcile_scope(item, me, peer)`, fetch and offer pipelines, bounds (frame size,
//! batch sizes, per-peer queues, requests in flight), timeouts, per-peer backoff with jitter, and
//! the per-peer counters operators see.
//! Must never: read a clock, a socket, a file or the store; spawn; use ambient randomness; verify
//! envelopes (the node does, and tells the core what it accepted); decide TLP rules itself (it
//! asks `policy`). Nothing here is async: the daemon's driver and the simulator of issue 4 run
//! the very same code.
//!
//! # Driving the core
//!
//! Time is `now_ms: u64` (Unix milliseconds in the daemon, virtual time in the simulator), passed
//! to every call. Randomness is a `seed` given once (see `prf`: every choice is a keyed hash of
//! the seed and what it is about, never a draw from a shared stream).
//!
//! **Inputs** (methods of [`SyncCore`]):
//! - local facts: [`SyncCore::item_accepted`] (an item was stored: published here, imported,
//!   received from a peer, or loaded at start with [`Source::Loaded`]), [`SyncCore::peer_up`] /
//!   [`SyncCore::peer_down`] (connection established / lost), [`SyncCore::sync_now`] (operator);
//! - requests from a peer, answered at once: [`SyncCore::handle_reconcile`] (returns the
//!   `ReconcileResponse`), [`SyncCore::handle_fetch`] (returns which ids to serve, which to report
//!   missing, which to defer; the driver loads the envelopes). A `PushRequest` is handled by the
//!   driver: for each envelope it verifies, calls [`SyncCore::admit`] (policy: was the peer allowed
//!   to send it to us?), stores it, then calls `item_accepted` with [`Source::Peer`]; other
//!   refusals (bad signature, …) are counted with [`SyncCore::note_rejection`];
//! - outcomes of our requests: [`SyncCore::on_push_response`],
//!   [`SyncCore::on_reconcile_response`], [`SyncCore::on_fetch_response`] (after the driver has
//!   verified and stored the envelopes it carried, as for a push), [`SyncCore::on_request_failed`];
//! - time: [`SyncCore::handle_timeout`], at (or after) the last `WakeAt` (calling it early is
//!   harmless).
//!
//! **Outputs**: [`SyncCore::poll_action`] until `None` after every input. Each [`Action`] is a
//! request to a peer — `Push` (the driver sends those items' envelopes from its store as a
//! `PushRequest`), `Reconcile` (send the `ReconcileRequest`), `Fetch` (send the `FetchRequest`) —
//! tagged with a local [`RequestId`] the driver hands back with the response or failure (it never
//! goes on the wire), or `WakeAt(t)`: call `handle_timeout` at `t` (replaces any earlier wake-up).
//!
//! # Non-interference
//!
//! Every id, fingerprint and count sent to peer Q is computed from items Q may hold: the
//! reconciliation set with Q is built only from visibility classes in scope for Q, pushes and
//! offers to Q pass `policy::may_send`, and a fetch of an id Q may not hold gets exactly the
//! answer of an unknown id. Choices about Q (push targets, tick times, session ids, backoff) are
//! keyed hashes independent of other items, and the round-robin of anti-entropy advances whether
//! or not the chosen peer was busy. Timing is not covered: a member busy with one peer answers
//! another later.

mod core;
mod flow;
mod index;
pub mod messages;
mod peer;
mod prf;
mod push;
mod reconcile;

#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};

use crate::envelope::{Envelope, ItemId, Verified};
use crate::model::{Advisory, Tlp};
use crate::policy::ItemScope;
use crate::store::StoredItem;

pub use self::core::{Explanation, FetchReply, Rejected, RestoreStatus, SyncCore};
pub use self::messages::{
    FetchRequest, FetchResponse, ItemResult, MessageError, PeerMessage, PushRequest, PushResponse,
    ReconcileRequest, ReconcileResponse,
};
pub use self::peer::{FlowStatus, LinkState, PeerStats, PeerStatus};
pub use self::push::PushMode;
/// The strict negentropy frame check, for the fuzz targets (`crate::fuzzing`).
#[doc(hidden)]
pub(crate) use self::reconcile::check_frame;

/// Local id of a request in flight, handed back by the driver with its outcome. Never on the wire.
pub type RequestId = u64;

/// What the core needs to know about an item it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemMeta {
    /// SHA-256 of the payload.
    pub id: ItemId,
    /// Origin member id.
    pub origin: String,
    /// TLP label.
    pub tlp: Tlp,
    /// Audience member ids.
    pub audience: Vec<String>,
    /// Reconciliation timestamp: the payload's `modified_ms` (negative clamped to 0).
    pub timestamp: u64,
    /// Size of the encoded envelope in bytes (for byte counters and batch limits).
    pub bytes: u32,
}

impl ItemMeta {
    /// From parts; `modified_ms` is clamped into `0..u64::MAX` (`u64::MAX` is negentropy's
    /// "infinity" bound), `bytes` saturates at `u32::MAX`.
    pub fn new(
        id: ItemId,
        origin: impl Into<String>,
        tlp: Tlp,
        audience: Vec<String>,
        modified_ms: i64,
        bytes: usize,
    ) -> Self {
        Self {
            id,
            origin: origin.into(),
            tlp,
            audience,
            timestamp: u64::try_from(modified_ms).unwrap_or(0).min(u64::MAX - 1),
            bytes: u32::try_from(bytes).unwrap_or(u32::MAX),
        }
    }

    /// From a verified advisory.
    pub fn of_verified(v: &Verified<Advisory>) -> Self {
        let a = v.value();
        Self::new(
            v.item_id(),
            a.origin.clone(),
            a.tlp,
            a.audience.clone(),
            a.modified_ms,
            envelope_wire_len(v.envelope()),
        )
    }

    /// From a stored item (loading the index at start).
    pub fn of_stored(s: &StoredItem) -> Self {
        let a = &s.advisory;
        Self::new(
            s.item_id,
            a.origin.clone(),
            a.tlp,
            a.audience.clone(),
            a.modified_ms,
            envelope_wire_len(&s.envelope),
        )
    }

    /// The policy view of the item.
    pub fn scope(&self) -> ItemScope<'_> {
        ItemScope::new(&self.origin, self.tlp, &self.audience)
    }
}

/// Encoded size of an envelope as a protobuf message, computed without encoding it.
pub fn envelope_wire_len(e: &Envelope) -> usize {
    fn field(len: usize) -> usize {
        if len == 0 {
            0
        } else {
            1 + prost::encoding::encoded_len_varint(len as u64) + len
        }
    }
    field(e.payload.len()) + field(e.key_id.len()) + field(e.signature.len())
}

/// Where an accepted item came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source<'a> {
    /// Published or imported on this member: pushed to peers.
    Local,
    /// Received from this peer: pushed on, never back to it.
    Peer(&'a str),
    /// Already in the store at start: indexed only, never pushed.
    Loaded,
}

/// Why a request to a peer failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The peer could not be reached or the connection broke: the peer goes down at once.
    Unreachable,
    /// No answer in time: the peer goes down after `timeouts_before_down` in a row.
    Timeout,
    /// The peer answered with an error (its reason, e.g. a gRPC status message).
    Refused(String),
}

/// An output of the core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send these items (envelopes from the store, in this order) to `to` as a `PushRequest`.
    /// Report the answer with `on_push_response(req)` or `on_request_failed(req)`.
    Push {
        /// Receiver.
        to: String,
        /// Request id.
        req: RequestId,
        /// Items to send.
        items: Vec<ItemId>,
    },
    /// Send a reconciliation round; report with `on_reconcile_response(req)`.
    Reconcile {
        /// Receiver.
        to: String,
        /// Request id.
        req: RequestId,
        /// The message.
        msg: ReconcileRequest,
    },
    /// Ask `from` for items; verify and store what comes back, then `on_fetch_response(req)`.
    Fetch {
        /// Peer asked.
        from: String,
        /// Request id.
        req: RequestId,
        /// The message.
        msg: FetchRequest,
    },
    /// Call `handle_timeout` at this time (replaces any earlier `WakeAt`).
    WakeAt(u64),
}

/// Errors of the sync core. Each names the peer or the setting concerned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyncError {
    /// A setting is out of range.
    #[error("sync setting {field}: {detail}")]
    Config {
        /// Setting name.
        field: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// The member is not a peer of this core.
    #[error("{peer:?} is not a peer of this member")]
    UnknownPeer {
        /// Member id.
        peer: String,
    },
    /// A reconciliation message is larger than `max_frame_bytes`.
    #[error("reconciliation message from {peer} is {size} bytes, larger than {max}")]
    FrameTooLarge {
        /// Peer.
        peer: String,
        /// Size.
        size: usize,
        /// Limit.
        max: usize,
    },
    /// A fetch asks for more ids than `max_fetch_ids`.
    #[error("fetch from {peer} asks for {count} ids, more than {max}")]
    TooManyIds {
        /// Peer.
        peer: String,
        /// Ids asked.
        count: usize,
        /// Limit.
        max: usize,
    },
    /// A reconciliation message could not be processed.
    #[error("reconciliation with {peer} failed: {detail}")]
    Reconcile {
        /// Peer.
        peer: String,
        /// Negentropy's error.
        detail: String,
    },
    /// A reconciliation message does not follow the negentropy encoding (unterminated or
    /// overlong varint, descending bounds, truncated field, unknown mode).
    #[error("reconciliation message from {peer} refused: {detail}")]
    MalformedFrame {
        /// Peer.
        peer: String,
        /// What is wrong, with the byte offset.
        detail: String,
    },
    /// A reconciliation we initiated with the peer is already running.
    #[error("a reconciliation with {peer} is already running")]
    Busy {
        /// Peer.
        peer: String,
    },
}

impl SyncError {
    /// Stable machine-readable reason (rejection counters, gRPC status details).
    pub fn code(&self) -> &'static str {
        match self {
            SyncError::Config { .. } => "config",
            SyncError::UnknownPeer { .. } => "unknown_peer",
            SyncError::FrameTooLarge { .. } => "frame_too_large",
            SyncError::TooManyIds { .. } => "too_many_ids",
            SyncError::Reconcile { .. } => "bad_reconcile",
            SyncError::MalformedFrame { .. } => "malformed_frame",
            SyncError::Busy { .. } => "busy",
        }
    }
}

/// Settings of the sync core. Defaults are the federation's; `max_frame_bytes` must be the same on
/// every member (a larger frame from a peer is refused).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyncConfig {
    /// Gossip targets per newly accepted item (default 3). 0 disables gossip (not direct delivery).
    pub fanout: usize,
    /// How gossip targets are chosen (default `tree`).
    pub push_mode: PushMode,
    /// AMBER items with at most this many audience members go from the origin directly to each
    /// (default 32). RED always does.
    pub direct_audience_max: usize,
    /// Anti-entropy interval in ms (default 30,000); 0 disables periodic anti-entropy.
    pub interval_ms: u64,
    /// Each interval is drawn in `interval ± jitter` (default 3,000; must be < interval).
    pub jitter_ms: u64,
    /// Reconcile with a peer when it (re)connects (default true).
    pub reconcile_on_connect: bool,
    /// Largest reconciliation message, sent or accepted (negentropy frame limit; default 131,072,
    /// at least 4,096).
    pub max_frame_bytes: usize,
    /// Most round trips in one reconciliation session (default 64).
    pub max_rounds: u32,
    /// Most ids in one fetch request, sent or accepted (default 512).
    pub max_fetch_ids: usize,
    /// Most items in one push request (default 128).
    pub max_push_items: usize,
    /// Most envelope bytes in one push request or fetch response; a single larger item still goes
    /// alone (default 2 MiB).
    pub max_batch_bytes: usize,
    /// Requests of each kind (push, fetch) in flight per peer (default 4). Within it, the
    /// envelope bytes in flight follow the link's measured bandwidth-delay product (`flow`),
    /// split into this many batches (an answer arrives whole, so the window less one batch
    /// must cover the link's bandwidth-delay product); the fresh lane may use its own
    /// requests when that window is full.
    pub max_in_flight: usize,
    /// Items queued per peer for push and ids queued for fetch, each (default 16,384; at least
    /// twice the ids in a frame). When full, new entries are dropped and counted; anti-entropy
    /// finds them again.
    pub max_queue_items: usize,
    /// Time for a peer to answer a request (default 15,000 ms).
    pub request_timeout_ms: u64,
    /// Longest reconciliation session, from its start (default 600,000 ms).
    pub session_timeout_ms: u64,
    /// Consecutive timeouts after which a peer is considered down (default 3).
    pub timeouts_before_down: u32,
    /// First backoff after a peer goes down (default 1,000 ms); doubles per failure.
    pub backoff_base_ms: u64,
    /// Longest backoff (default 300,000 ms). Each delay is drawn in `[d/2, d]`.
    pub backoff_max_ms: u64,
    /// Per-origin quota on pushed (unsolicited) items: sustained items per second accepted by
    /// push from all peers together for one origin (default 20; 0 disables the quota). Items
    /// we fetched ourselves (anti-entropy catch-up, restores) are never counted: the receiver
    /// already paces those. A push over quota is refused (`origin_quota`), not lost: the next
    /// reconciliation finds the item and fetches it at the receiver's pace, so a flooding
    /// origin cannot amplify through eager push.
    pub origin_push_rate_per_s: u32,
    /// Burst of the per-origin push quota: items an origin may push at once after being quiet
    /// (default 2,000; at least 1 when the quota is on).
    pub origin_push_burst: u32,
    /// The largest envelope bytes asked for in one fetch (`FetchRequest.max_bytes`) and sent in
    /// one push, default 262,144. A batch is the flow window of the link (twice its measured
    /// bandwidth-delay product) ÷ `max_in_flight`, at most this; before the link is measured
    /// the window is two of these. Fresh items (published or gossiped now, and RED/AMBER ones)
    /// go first, so a fresh push waits behind about one round trip of backlog on the link, and
    /// a dropped link loses at most a window.
    pub backlog_batch_bytes: usize,
    /// The slowest link the federation supports, in bytes/s (default 4,000 = 32 kbit/s, a
    /// quarter of `cable-cut`). A request's deadline is `request_timeout_ms` plus the time its
    /// bytes (sent and expected back) take at this rate, so a request on a slow link is never
    /// timed out for being slow; a dead peer is found by the HTTP/2 keepalive instead.
    pub min_link_bytes_per_s: u64,
    /// Compression of peer messages (`zstd`, `gzip` or `none`; default `zstd`): answers are
    /// compressed for callers that accept it, requests only once the peer's answers advertised
    /// it. Every encoding is always accepted.
    pub compression: Compression,
    /// HTTP/2 stream window this member advertises on peer connections (default 1 MiB; at
    /// least 65,535, at most 2^31 - 1): with one window per request, at least the
    /// bandwidth-delay product of the link (`fibre`: 100 Mbit/s × 20 ms = 250 kB).
    pub stream_window_bytes: u32,
    /// HTTP/2 connection window (default 4 MiB; at least `stream_window_bytes`).
    pub connection_window_bytes: u32,
    /// Let HTTP/2 grow the windows from its own bandwidth-delay estimate (default false: the
    /// fixed windows above already cover the profiles of `docs/peer-link.md`).
    pub adaptive_window: bool,
    /// HTTP/2 PING interval on peer connections (default 20,000 ms; 0 disables keepalive).
    pub keepalive_interval_ms: u64,
    /// A PING unanswered this long closes the connection and the peer goes down (default
    /// 60,000 ms: longer than a `cable-cut` outage of 10 s plus a full queue of data ahead of
    /// the PING on a 128 kbit/s link, so a slow link is never declared down).
    pub keepalive_timeout_ms: u64,
}

/// Compression of peer messages (see `SyncConfig::compression`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Nothing is compressed.
    None,
    /// gzip (flate2, level 6).
    Gzip,
    /// zstd (level 3): the better ratio on advisories (see `peer_link` tests).
    #[default]
    Zstd,
}

impl Default for SyncConfig {
    fn default() -> Self {
        Self {
            fanout: 3,
            push_mode: PushMode::Tree,
            direct_audience_max: 32,
            interval_ms: 30_000,
            jitter_ms: 3_000,
            reconcile_on_connect: true,
            max_frame_bytes: 131_072,
            max_rounds: 64,
            max_fetch_ids: 512,
            max_push_items: 128,
            max_batch_bytes: 2 * 1024 * 1024,
            max_in_flight: 4,
            max_queue_items: 16_384,
            request_timeout_ms: 15_000,
            session_timeout_ms: 600_000,
            timeouts_before_down: 3,
            backoff_base_ms: 1_000,
            backoff_max_ms: 300_000,
            origin_push_rate_per_s: 20,
            origin_push_burst: 2_000,
            backlog_batch_bytes: 256 * 1024,
            min_link_bytes_per_s: 4_000,
            compression: Compression::Zstd,
            stream_window_bytes: 1024 * 1024,
            connection_window_bytes: 4 * 1024 * 1024,
            adaptive_window: false,
            keepalive_interval_ms: 20_000,
            keepalive_timeout_ms: 60_000,
        }
    }
}

impl SyncConfig {
    /// Ids that fit in one reconciliation frame (an upper bound).
    pub(crate) fn ids_per_frame(&self) -> usize {
        self.max_frame_bytes / negentropy::ID_SIZE + 1
    }

    /// Checks every setting; the error names it.
    pub fn validate(&self) -> Result<(), SyncError> {
        let bad = |field: &'static str, detail: String| Err(SyncError::Config { field, detail });
        if self.max_frame_bytes < 4096 {
            return bad(
                "max_frame_bytes",
                format!(
                    "{} is below negentropy's minimum of 4096",
                    self.max_frame_bytes
                ),
            );
        }
        if self.interval_ms > 0 && self.jitter_ms >= self.interval_ms {
            return bad(
                "jitter_ms",
                format!(
                    "{} must be below interval_ms ({})",
                    self.jitter_ms, self.interval_ms
                ),
            );
        }
        for (field, v) in [
            ("max_rounds", self.max_rounds as usize),
            ("max_fetch_ids", self.max_fetch_ids),
            ("max_push_items", self.max_push_items),
            ("max_batch_bytes", self.max_batch_bytes),
            ("max_in_flight", self.max_in_flight),
            ("timeouts_before_down", self.timeouts_before_down as usize),
        ] {
            if v == 0 {
                return bad(field, "must be at least 1".to_string());
            }
        }
        if !(65_535..=0x7fff_ffff).contains(&self.stream_window_bytes) {
            return bad(
                "stream_window_bytes",
                format!(
                    "{} is outside HTTP/2's 65535..=2147483647",
                    self.stream_window_bytes
                ),
            );
        }
        if self.connection_window_bytes < self.stream_window_bytes
            || self.connection_window_bytes > 0x7fff_ffff
        {
            return bad(
                "connection_window_bytes",
                format!(
                    "{} must be between stream_window_bytes ({}) and 2147483647",
                    self.connection_window_bytes, self.stream_window_bytes
                ),
            );
        }
        if self.keepalive_interval_ms > 0 && self.keepalive_timeout_ms < 1_000 {
            return bad(
                "keepalive_timeout_ms",
                format!(
                    "{} is below 1000 (a slow link would be declared down)",
                    self.keepalive_timeout_ms
                ),
            );
        }
        if self.backlog_batch_bytes == 0 {
            return bad("backlog_batch_bytes", "must be at least 1".to_string());
        }
        for (field, v) in [
            ("min_link_bytes_per_s", self.min_link_bytes_per_s),
            ("request_timeout_ms", self.request_timeout_ms),
            ("session_timeout_ms", self.session_timeout_ms),
            ("backoff_base_ms", self.backoff_base_ms),
        ] {
            if v == 0 {
                return bad(field, "must be at least 1".to_string());
            }
        }
        if self.backoff_max_ms < self.backoff_base_ms {
            return bad(
                "backoff_max_ms",
                format!(
                    "{} is below backoff_base_ms ({})",
                    self.backoff_max_ms, self.backoff_base_ms
                ),
            );
        }
        if self.origin_push_rate_per_s > 0 && self.origin_push_burst == 0 {
            return bad(
                "origin_push_burst",
                "must be at least 1 while origin_push_rate_per_s is set".to_string(),
            );
        }
        if self.max_queue_items < 2 * self.ids_per_frame() {
            return bad(
                "max_queue_items",
                format!(
                    "{} is below twice the ids in one frame ({})",
                    self.max_queue_items,
                    2 * self.ids_per_frame()
                ),
            );
        }
        Ok(())
    }
}
