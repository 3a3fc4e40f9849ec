//! Per-peer state of the sync core: link state and backoff, reconciliation sessions, bounded
//! outbound queues (two push lanes: fresh items before the backlog found by reconciliation),
//! requests in flight, and the counters operators see (`tanoa peers`).

use std::collections::{BTreeMap, HashSet, VecDeque};

use super::flow::{self, Flow, SendMark};
use super::reconcile::{Initiator, Responder};
use crate::envelope::ItemId;

/// What the core believes about its link to a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    /// Never heard from or about since start (eligible for pushes, optimistically).
    Unknown,
    /// The last exchange succeeded, or the driver reported a connection.
    Up,
    /// Unreachable: no traffic until `retry_at_ms`, when a reconciliation probes it.
    Down {
        /// When the next probe starts.
        retry_at_ms: u64,
    },
}

impl LinkState {
    /// `up`, `down` or `unknown`.
    pub fn as_str(&self) -> &'static str {
        match self {
            LinkState::Unknown => "unknown",
            LinkState::Up => "up",
            LinkState::Down { .. } => "down",
        }
    }
}

/// Counters of one peer, since start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerStats {
    /// Items sent to the peer (pushes, offers, fetch replies).
    pub items_sent: u64,
    /// Bytes sent: envelopes, reconciliation messages, fetch ids.
    pub bytes_sent: u64,
    /// New items received from the peer (accepted and not held before).
    pub items_received: u64,
    /// Bytes received: new items, reconciliation messages.
    pub bytes_received: u64,
    /// Items received from the peer that were already held (push redundancy).
    pub duplicates_received: u64,
    /// Push requests sent.
    pub pushes_sent: u64,
    /// Fetch requests sent.
    pub fetches_sent: u64,
    /// Reconciliation sessions we initiated that completed.
    pub sessions_ok: u64,
    /// Reconciliation sessions we initiated that failed (timeout, error, link down).
    pub sessions_failed: u64,
    /// Reconciliation sessions the peer initiated with us (first rounds answered).
    pub sessions_answered: u64,
    /// Reconciliation round trips we initiated.
    pub rounds: u64,
    /// Requests to the peer that timed out.
    pub timeouts: u64,
    /// Ids fetched from the peer that it answered as missing.
    pub fetch_missing: u64,
    /// Items not queued for the peer because its queue was full (anti-entropy repairs them).
    pub dropped_queue_full: u64,
    /// Items the peer refused when we pushed them, by its reason.
    pub refused_by_peer: BTreeMap<String, u64>,
    /// What we rejected from the peer, by reason (policy, verification, protocol).
    pub rejections: BTreeMap<String, u64>,
    /// Responses that matched no request in flight (late, after a timeout).
    pub stale_responses: u64,
}

/// One peer as operators see it (`tanoa peers`, status).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerStatus {
    /// Member id.
    pub peer: String,
    /// Link state.
    pub link: LinkState,
    /// Consecutive failures (drives the backoff).
    pub consecutive_failures: u32,
    /// When we last started a reconciliation with it.
    pub last_attempt_ms: Option<u64>,
    /// When a reconciliation we initiated with it last completed.
    pub last_success_ms: Option<u64>,
    /// Time since `last_success_ms` (lag of our view of that peer), if ever synced.
    pub lag_ms: Option<u64>,
    /// A session we initiated is running.
    pub syncing: bool,
    /// Items queued to be pushed or offered to it.
    pub queued_push: usize,
    /// Ids queued to be fetched from it.
    pub queued_fetch: usize,
    /// Requests in flight to it.
    pub in_flight: usize,
    /// Counters.
    pub stats: PeerStats,
    /// The flow estimate of the link to it and the windows it gives (`flow`).
    pub flow: FlowStatus,
}

/// The flow estimate of one peer's link (`flow`), for operators and benchmarks. Bytes are
/// envelope bytes as stored (before compression).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlowStatus {
    /// The smallest recent round trip (ms), 0 before the first answer.
    pub rtt_ms: u64,
    /// Delivery rate of pushes (bytes/s), 0 before it was measured.
    pub rate_out: u64,
    /// Delivery rate of fetches (bytes/s), 0 before it was measured.
    pub rate_in: u64,
    /// Bytes that may be in flight in pushes.
    pub window_out: u64,
    /// Bytes that may be in flight in fetches.
    pub window_in: u64,
    /// Bytes in flight in pushes now.
    pub bytes_in_flight_out: u64,
    /// Bytes in flight in fetches now (asked for).
    pub bytes_in_flight_in: u64,
}

/// What a request in flight was for.
#[derive(Debug, Clone)]
pub(crate) enum Pending {
    Push {
        /// Items carried, re-queued if the push times out (a lost push is sent again).
        ids: Vec<ItemId>,
        /// From the fresh lane (not the backlog).
        fresh: bool,
    },
    Fetch {
        ids: Vec<ItemId>,
    },
    Reconcile {
        session: u64,
    },
}

#[derive(Debug, Clone)]
pub(crate) struct InFlight {
    pub(crate) what: Pending,
    pub(crate) deadline_ms: u64,
    pub(crate) sent_ms: u64,
    /// Envelope bytes it carries (push) or asks for (fetch), counted against the window of
    /// their direction, and what the flow estimate noted when it was sent.
    pub(crate) flow: Option<(flow::Dir, u64, SendMark)>,
}

/// Internal per-peer state.
#[derive(Debug)]
pub(crate) struct Peer {
    pub(crate) id: String,
    pub(crate) id_hash: u64,
    /// Random tie-break between peers never synced (keyed by our seed).
    pub(crate) rank: u64,
    pub(crate) link: LinkState,
    pub(crate) consecutive_failures: u32,
    pub(crate) consecutive_timeouts: u32,
    /// Times the peer went down (keys the backoff jitter).
    pub(crate) down_count: u64,
    pub(crate) last_attempt_ms: Option<u64>,
    pub(crate) last_success_ms: Option<u64>,
    pub(crate) session_counter: u64,
    pub(crate) initiator: Option<Initiator>,
    pub(crate) responder: Option<Responder>,
    /// Items accepted now (published, gossiped) and RED/AMBER items: pushed first.
    pub(crate) fresh: Lane,
    /// When the peer last started a reconciliation session with us (it pulls what it lacks).
    pub(crate) pulls_at_ms: Option<u64>,
    /// Items the peer lacks found by reconciliation: pushed in `backlog_batch_bytes` batches
    /// after the fresh lane, and dropped from here when the peer fetches them itself.
    pub(crate) backlog: Lane,
    pub(crate) fetch_queue: VecDeque<ItemId>,
    pub(crate) fetch_queued: HashSet<ItemId>,
    /// Ids this peer fetched while they were on their way to it in a push of ours, and that we
    /// deferred once: asked again, they are served (that push may be lost). An id leaves when
    /// served or when a push carrying it is answered.
    pub(crate) deferred_pushing: HashSet<ItemId>,
    pub(crate) in_flight: BTreeMap<u64, InFlight>,
    /// Bandwidth-delay estimate of the link to this peer: the byte windows of pushes and fetches.
    pub(crate) flow: Flow,
    pub(crate) stats: PeerStats,
    /// While this member restores its own history (`SyncCore::track_restore`): what this peer
    /// still has to give us.
    pub(crate) restore: Option<RestoreTrack>,
}

/// Restore progress with one peer: caught up once a reconciliation session we initiated has
/// completed and every id it found us lacking was answered: held (the runtime reports an item
/// only once it is durable), reported missing by the peer, or refused by our admission. An id
/// the peer served that was not stored (the store failed) is not answered: it stays pending.
#[derive(Debug, Default)]
pub(crate) struct RestoreTrack {
    /// A session we initiated completed since tracking began.
    pub(crate) session_done: bool,
    /// Ids the peer's sessions found us lacking, not yet answered.
    pub(crate) pending: HashSet<ItemId>,
    /// Ids the running session found us lacking so far: when it completes, `pending` keeps only
    /// these (what an earlier session found and the peer no longer offers is not waited for).
    pub(crate) found: HashSet<ItemId>,
    /// The peer refused our last reconciliation (e.g. it does not know us yet): it cannot
    /// give us anything, so it is not waited for.
    pub(crate) refused: bool,
    /// Its link went down since tracking began and it has not answered since (a probe of a
    /// down peer sets the link to `Unknown` until it fails again): not waited for.
    pub(crate) unreached: bool,
}

impl RestoreTrack {
    /// Nothing more to wait for from this peer.
    pub(crate) fn settled(&self) -> bool {
        self.refused || (self.session_done && self.pending.is_empty())
    }
}

impl Peer {
    pub(crate) fn new(id: String, id_hash: u64, rank: u64) -> Self {
        Self {
            id,
            id_hash,
            rank,
            link: LinkState::Unknown,
            consecutive_failures: 0,
            consecutive_timeouts: 0,
            down_count: 0,
            last_attempt_ms: None,
            last_success_ms: None,
            session_counter: 0,
            initiator: None,
            responder: None,
            fresh: Lane::default(),
            pulls_at_ms: None,
            backlog: Lane::default(),
            fetch_queue: VecDeque::new(),
            fetch_queued: HashSet::new(),
            deferred_pushing: HashSet::new(),
            in_flight: BTreeMap::new(),
            flow: Flow::default(),
            stats: PeerStats::default(),
            restore: None,
        }
    }

    pub(crate) fn is_down(&self) -> bool {
        matches!(self.link, LinkState::Down { .. })
    }

    pub(crate) fn count_in_flight(&self, f: impl Fn(&Pending) -> bool) -> usize {
        self.in_flight.values().filter(|p| f(&p.what)).count()
    }

    /// Envelope bytes in flight in `dir` (pushes out, fetches in).
    pub(crate) fn bytes_in_flight(&self, dir: flow::Dir) -> u64 {
        self.in_flight
            .values()
            .filter_map(|f| f.flow.filter(|(d, _, _)| *d == dir).map(|(_, b, _)| b))
            .sum()
    }

    /// A request left the flight without an answer (failed, timed out, abandoned).
    pub(crate) fn abandoned(&mut self, f: &InFlight) {
        if let Some((dir, _, _)) = f.flow {
            self.flow.on_failure(dir);
        }
    }

    /// Keeps at most `keep` envelope bytes (the newest items, at least one) waiting in the fresh
    /// lane and moves the older ones to the front of the backlog (newest first): a flood of
    /// fresh items is sent as backlog, under the byte window, and the next new item is never
    /// queued behind more than one batch. Returns how many moved.
    pub(crate) fn demote_fresh(
        &mut self,
        keep: u64,
        bytes: impl Fn(&ItemId) -> u64,
        cap: usize,
    ) -> usize {
        if self.fresh.len() <= 1 {
            return 0;
        }
        let mut kept = 0u64;
        let mut n = 0usize;
        let mut older = Vec::new();
        for id in self.fresh.newest_first() {
            if n > 0 && kept >= keep {
                older.push(id);
            } else {
                kept += bytes(&id);
                n += 1;
            }
        }
        for id in &older {
            self.fresh.remove(id);
        }
        // `older` runs newest → oldest; each goes to the front, so the oldest ends first: the
        // backlog's order stays oldest-first and the demoted items come before it.
        let mut moved = 0;
        for id in older {
            if self.backlog.push_front(id, cap) {
                moved += 1;
            } else {
                self.stats.dropped_queue_full += 1;
            }
        }
        moved
    }

    pub(crate) fn reject(&mut self, code: &str) {
        *self.stats.rejections.entry(code.to_string()).or_insert(0) += 1;
    }

    /// Enqueues an item to push in the fresh or the backlog lane; `false` (and counted) when
    /// that lane is full. An item already in the fresh lane is not queued again.
    pub(crate) fn enqueue_push(&mut self, id: ItemId, cap: usize, fresh: bool) -> bool {
        if self.fresh.contains(&id) || (!fresh && self.backlog.contains(&id)) {
            return true;
        }
        let lane = if fresh {
            // Sent from the fresh lane: not again from the backlog.
            self.backlog.remove(&id);
            &mut self.fresh
        } else {
            &mut self.backlog
        };
        if lane.push(id, cap) {
            true
        } else {
            self.stats.dropped_queue_full += 1;
            false
        }
    }

    /// Items queued in both push lanes.
    pub(crate) fn queued_push(&self) -> usize {
        self.fresh.len() + self.backlog.len()
    }

    /// Enqueues an id to fetch; `false` (and counted) when the queue is full.
    pub(crate) fn enqueue_fetch(&mut self, id: ItemId, cap: usize, front: bool) -> bool {
        if self.fetch_queued.contains(&id) {
            return true;
        }
        if self.fetch_queue.len() >= cap {
            self.stats.dropped_queue_full += 1;
            return false;
        }
        self.fetch_queued.insert(id);
        if front {
            self.fetch_queue.push_front(id);
        } else {
            self.fetch_queue.push_back(id);
        }
        true
    }

    pub(crate) fn clear_queues(&mut self) {
        self.fresh = Lane::default();
        self.backlog = Lane::default();
        self.fetch_queue.clear();
        self.deferred_pushing.clear();
        self.fetch_queued.clear();
    }

    pub(crate) fn status(&self, now_ms: u64, limits: flow::Limits) -> PeerStatus {
        PeerStatus {
            peer: self.id.clone(),
            link: self.link,
            consecutive_failures: self.consecutive_failures,
            last_attempt_ms: self.last_attempt_ms,
            last_success_ms: self.last_success_ms,
            lag_ms: self.last_success_ms.map(|t| now_ms.saturating_sub(t)),
            syncing: self.initiator.is_some(),
            queued_push: self.queued_push(),
            queued_fetch: self.fetch_queue.len(),
            in_flight: self.in_flight.len(),
            stats: self.stats.clone(),
            flow: FlowStatus {
                rtt_ms: self.flow.min_rtt_ms().unwrap_or(0),
                rate_out: self.flow.rate_bytes_per_s(flow::Dir::Out).unwrap_or(0),
                rate_in: self.flow.rate_bytes_per_s(flow::Dir::In).unwrap_or(0),
                window_out: self.flow.window(flow::Dir::Out, limits),
                window_in: self.flow.window(flow::Dir::In, limits),
                bytes_in_flight_out: self.bytes_in_flight(flow::Dir::Out),
                bytes_in_flight_in: self.bytes_in_flight(flow::Dir::In),
            },
        }
    }
}

/// A bounded FIFO of item ids without duplicates. Removal is lazy: `remove` forgets the id and
/// `pop` skips ids no longer queued, so taking out an id the peer fetched itself costs O(1).
#[derive(Debug, Default)]
pub(crate) struct Lane {
    order: VecDeque<ItemId>,
    queued: HashSet<ItemId>,
}

impl Lane {
    pub(crate) fn contains(&self, id: &ItemId) -> bool {
        self.queued.contains(id)
    }

    /// Ids queued.
    pub(crate) fn len(&self) -> usize {
        self.queued.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.queued.is_empty()
    }

    /// Appends `id` (already queued: nothing to do); `false` when `cap` ids are queued.
    fn push(&mut self, id: ItemId, cap: usize) -> bool {
        if self.queued.contains(&id) {
            return true;
        }
        if self.queued.len() >= cap {
            return false;
        }
        self.queued.insert(id);
        self.order.push_back(id);
        true
    }

    /// The next queued id, without taking it.
    pub(crate) fn front(&mut self) -> Option<ItemId> {
        while let Some(id) = self.order.front() {
            if self.queued.contains(id) {
                return Some(*id);
            }
            self.order.pop_front();
        }
        None
    }

    /// Puts `id` first (already queued: nothing to do); `false` when `cap` ids are queued.
    fn push_front(&mut self, id: ItemId, cap: usize) -> bool {
        if self.queued.contains(&id) {
            return true;
        }
        if self.queued.len() >= cap {
            return false;
        }
        self.queued.insert(id);
        self.order.push_front(id);
        true
    }

    /// The queued ids, newest first (each once).
    fn newest_first(&self) -> Vec<ItemId> {
        let mut seen = HashSet::with_capacity(self.queued.len());
        self.order
            .iter()
            .rev()
            .filter(|id| self.queued.contains(id) && seen.insert(**id))
            .copied()
            .collect()
    }

    /// Takes the next queued id.
    pub(crate) fn pop(&mut self) -> Option<ItemId> {
        let id = self.front()?;
        self.order.pop_front();
        self.queued.remove(&id);
        Some(id)
    }

    /// Forgets `id`; `true` if it was queued.
    pub(crate) fn remove(&mut self, id: &ItemId) -> bool {
        let was = self.queued.remove(id);
        if self.queued.is_empty() {
            self.order.clear();
        }
        was
    }
}
