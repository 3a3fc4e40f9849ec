//! `SyncCore`: the state machine itself (see the module doc of `sync` for how to drive it).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};

use super::flow::{self, Dir};
use super::index::ItemIndex;
use super::peer::{InFlight, LinkState, Peer, PeerStatus, Pending};
use super::prf::{self, Prf, domain};
use super::push::{self, PushParams};
use super::reconcile::{FrameError, Initiator, Responder};
use super::{
    Action, Failure, FetchRequest, FetchResponse, ItemMeta, PushResponse, ReconcileRequest,
    ReconcileResponse, RequestId, Source, SyncConfig, SyncError,
};
use crate::envelope::ItemId;
use crate::model::Tlp;
use crate::policy;

/// Fresh pushes in flight per `max_in_flight`: fresh items are sent as soon as the flow window
/// has room, and this bounds how many requests a stream of small fresh groups may open.
const FRESH_REQUESTS_PER_SLOT: usize = 2;
/// How many anti-entropy intervals after its last completed session a peer's periodic session
/// may be skipped while a difference with it is still being fetched or pushed.
const DIFFERENCE_SKIP_INTERVALS: u64 = 4;

/// A timer; stale entries (whose state moved on) are skipped when they come due.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Tick,
    Request { peer: usize, req: RequestId },
    Session { peer: usize, session: u64 },
    Responder { peer: usize, session: u64 },
    Retry { peer: usize },
}

/// What `handle_fetch` decided: the driver answers with the envelopes of `serve` (in order),
/// `missing` and `deferred` as they are.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FetchReply {
    /// Ids to serve: held, and the requester may hold them.
    pub serve: Vec<ItemId>,
    /// Ids unknown here or that the requester may not hold: the same answer for both.
    pub missing: Vec<ItemId>,
    /// Ids that would be served but did not fit in `max_batch_bytes`.
    pub deferred: Vec<ItemId>,
}

impl FetchReply {
    /// The response message, given the envelopes of `serve` loaded from the store. An id whose
    /// envelope could not be loaded is reported missing.
    pub fn into_response(
        self,
        mut load: impl FnMut(&ItemId) -> Option<crate::envelope::Envelope>,
    ) -> FetchResponse {
        let mut envelopes = Vec::with_capacity(self.serve.len());
        let mut missing = self.missing;
        for id in &self.serve {
            match load(id) {
                Some(e) => envelopes.push(e),
                None => missing.push(*id),
            }
        }
        FetchResponse {
            envelopes,
            missing,
            deferred: self.deferred,
        }
    }
}

/// A refusal by `admit`: the peer was not allowed to send us this item.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("refused from {peer}: {explanation}")]
pub struct Rejected {
    /// The sending peer.
    pub peer: String,
    /// Stable reason code (`policy::Reason::code`, or `unknown_peer`).
    pub code: &'static str,
    /// Human explanation.
    pub explanation: String,
}

/// Why an item would or would not go to a peer (`tanoa explain`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    /// `policy::may_send(item, me, peer)`.
    pub allowed: bool,
    /// Its reason code.
    pub code: &'static str,
    /// Its human explanation.
    pub reason: String,
    /// The item is in the set we reconcile with that peer.
    pub in_reconcile_scope: bool,
    /// The origin delivers it directly (RED, small audience) rather than by gossip.
    pub direct: bool,
    /// We hold the item.
    pub held: bool,
    /// Our link to the peer.
    pub link: LinkState,
}

/// Where the restore of this member's own history stands (`SyncCore::restore_status`); both
/// lists sorted, both empty when it is not restoring.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RestoreStatus {
    /// Reachable peers not yet caught up: the write path waits for them.
    pub waiting: Vec<String>,
    /// Peers not yet caught up whose link went down during the restore and that have not
    /// answered since: not waited for, and not restored from either; the restore from them
    /// resumes when they answer again.
    pub unreachable: Vec<String>,
}

/// The replication state machine of one member. See the `sync` module doc.
#[derive(Debug)]
pub struct SyncCore {
    cfg: SyncConfig,
    me: String,
    prf: Prf,
    peers: Vec<Peer>,
    by_id: HashMap<String, usize>,
    index: ItemIndex,
    /// Ids in flight in some fetch (not fetched twice at once).
    fetching: HashSet<ItemId>,
    actions: VecDeque<Action>,
    timers: BinaryHeap<Reverse<(u64, Timer)>>,
    next_tick_ms: Option<u64>,
    tick_count: u64,
    next_req: RequestId,
    last_wake: Option<u64>,
    /// Per-origin push quota buckets (origins are roster members: bounded).
    quotas: HashMap<String, TokenBucket>,
    /// This member is restoring its own history from its peers (`track_restore`).
    restoring: bool,
    /// Peers with items newly queued for push, pumped at the next `poll_action` (with the time
    /// of their last `item_accepted`), so that items accepted together go out together.
    to_pump: Vec<(usize, u64)>,
}

/// A token bucket in thousandths of a token (integer arithmetic, deterministic).
#[derive(Debug, Clone, Copy)]
struct TokenBucket {
    milli: u64,
    at_ms: u64,
}

impl TokenBucket {
    /// Refills at `rate` tokens/s up to `burst`, then takes one token if there is one.
    fn take(&mut self, now_ms: u64, rate: u32, burst: u32) -> bool {
        let cap = u64::from(burst) * 1000;
        let elapsed = now_ms.saturating_sub(self.at_ms);
        self.milli = self
            .milli
            .saturating_add(elapsed.saturating_mul(u64::from(rate)))
            .min(cap);
        self.at_ms = self.at_ms.max(now_ms);
        if self.milli >= 1000 {
            self.milli -= 1000;
            true
        } else {
            false
        }
    }
}

impl SyncCore {
    /// A core for member `me` with these peers (the roster minus `me`). `seed` keys every random
    /// choice (the daemon passes fresh OS randomness; the simulator a replayable seed).
    pub fn new(
        config: SyncConfig,
        me: impl Into<String>,
        peers: impl IntoIterator<Item = impl Into<String>>,
        seed: u64,
        now_ms: u64,
    ) -> Result<Self, SyncError> {
        config.validate()?;
        let me = me.into();
        let prf = Prf::new(seed);
        let mut list: Vec<String> = peers.into_iter().map(Into::into).collect();
        list.sort();
        list.dedup();
        list.retain(|p| *p != me);
        let mut by_id = HashMap::new();
        let peers: Vec<Peer> = list
            .into_iter()
            .enumerate()
            .map(|(i, id)| {
                let h = prf::fnv(id.as_bytes());
                by_id.insert(id.clone(), i);
                Peer::new(id, h, prf.hash(domain::RANK, &[h]))
            })
            .collect();
        let mut core = Self {
            cfg: config,
            me,
            prf,
            peers,
            by_id,
            index: ItemIndex::default(),
            fetching: HashSet::new(),
            actions: VecDeque::new(),
            timers: BinaryHeap::new(),
            next_tick_ms: None,
            tick_count: 0,
            next_req: 0,
            last_wake: None,
            quotas: HashMap::new(),
            restoring: false,
            to_pump: Vec::new(),
        };
        core.schedule_tick(now_ms);
        core.refresh_wake();
        Ok(core)
    }

    /// This member's id.
    pub fn me(&self) -> &str {
        &self.me
    }

    /// The settings.
    pub fn config(&self) -> &SyncConfig {
        &self.cfg
    }

    /// Peer ids, sorted.
    pub fn peers(&self) -> impl Iterator<Item = &str> {
        self.peers.iter().map(|p| p.id.as_str())
    }

    /// Whether the item is indexed (held).
    pub fn holds(&self, id: &ItemId) -> bool {
        self.index.contains(id)
    }

    /// Items indexed.
    pub fn item_count(&self) -> usize {
        self.index.len()
    }

    /// Size of the set we reconcile with `peer`.
    pub fn reconcile_set_len(&self, peer: &str) -> Option<usize> {
        self.by_id
            .get(peer)
            .map(|_| self.index.scope_len(&self.me, peer))
    }

    /// Next output, if any. Drain after every input.
    pub fn poll_action(&mut self) -> Option<Action> {
        if !self.to_pump.is_empty() {
            for (i, now_ms) in std::mem::take(&mut self.to_pump) {
                if i < self.peers.len() {
                    self.pump(now_ms, i);
                }
            }
            self.refresh_wake();
        }
        self.actions.pop_front()
    }

    /// When `handle_timeout` should next be called.
    pub fn next_wakeup(&self) -> Option<u64> {
        self.last_wake
    }

    /// Per-peer state for operators, sorted by peer id.
    pub fn peer_status(&self, now_ms: u64) -> Vec<PeerStatus> {
        let limits = self.flow_limits();
        self.peers
            .iter()
            .map(|p| p.status(now_ms, limits))
            .collect()
    }

    /// One peer's state.
    pub fn peer(&self, now_ms: u64, peer: &str) -> Option<PeerStatus> {
        let limits = self.flow_limits();
        self.by_id
            .get(peer)
            .map(|&i| self.peers[i].status(now_ms, limits))
    }

    /// Why `item` would or would not be sent to `peer`.
    pub fn explain(&self, item: &ItemMeta, peer: &str) -> Result<Explanation, SyncError> {
        let i = self.idx(peer)?;
        let scope = item.scope();
        let d = policy::may_send(&scope, &self.me, peer);
        Ok(Explanation {
            allowed: d.allowed,
            code: d.reason.code(),
            reason: d.reason.to_string(),
            in_reconcile_scope: policy::in_reconcile_scope(&scope, &self.me, peer),
            direct: push::is_direct(&scope, self.cfg.direct_audience_max),
            held: self.index.contains(&item.id),
            link: self.peers[i].link,
        })
    }

    fn idx(&self, peer: &str) -> Result<usize, SyncError> {
        self.by_id
            .get(peer)
            .copied()
            .ok_or_else(|| SyncError::UnknownPeer {
                peer: peer.to_string(),
            })
    }

    // ----- local facts -----------------------------------------------------------------------

    /// An item was stored (or is in the store at start, `Source::Loaded`). Returns `false` if it
    /// was already indexed (a duplicate, counted against the sending peer). New items from
    /// `Local` or `Peer` are pushed at once (see `push`).
    pub fn item_accepted(&mut self, now_ms: u64, meta: &ItemMeta, source: Source<'_>) -> bool {
        let src = match source {
            Source::Peer(p) => self.by_id.get(p).copied(),
            Source::Local | Source::Loaded => None,
        };
        let new = self.index.insert(meta);
        if self.restoring {
            for p in &mut self.peers {
                if let Some(t) = p.restore.as_mut() {
                    t.pending.remove(&meta.id);
                }
            }
        }
        if let Some(s) = src {
            let st = &mut self.peers[s].stats;
            if new {
                st.items_received += 1;
                st.bytes_received += u64::from(meta.bytes);
            } else {
                st.duplicates_received += 1;
            }
        }
        if !new || source == Source::Loaded {
            return new;
        }
        let params = PushParams {
            fanout: self.cfg.fanout,
            mode: self.cfg.push_mode,
            direct_audience_max: self.cfg.direct_audience_max,
        };
        let targets = push::targets(
            params,
            &self.me,
            &meta.id,
            &meta.scope(),
            src,
            &self.peers,
            &self.prf,
        );
        for t in targets {
            self.queue_push(t, meta.id, true);
            // Pumped at the next `poll_action`: the items of one input (a commit group, a
            // received push) leave in one request per peer instead of one each.
            match self.to_pump.iter_mut().find(|(p, _)| *p == t) {
                Some(e) => e.1 = e.1.max(now_ms),
                None => self.to_pump.push((t, now_ms)),
            }
        }
        self.refresh_wake();
        true
    }

    /// Items the store dropped (a roster version voided them: a revoked key's items dated at or
    /// after its revocation, a removed member's later ones): they leave the index, so
    /// reconciliation no longer advertises them and a fetch of them is answered missing; items
    /// queued for push are skipped when loaded. A peer that still holds them offers them again
    /// and is refused by the receive pipeline's verification under the roster in force.
    /// Returns how many were indexed.
    pub fn forget_items(&mut self, ids: &[ItemId]) -> usize {
        for id in ids {
            self.fetching.remove(id);
        }
        self.index.remove(ids)
    }

    /// Indexes items already in the store at start (never pushed).
    pub fn load_items<'a>(&mut self, items: impl IntoIterator<Item = &'a ItemMeta>) {
        for m in items {
            self.index.insert(m);
        }
    }

    /// This member starts without its own history (a wiped or lost data directory, or a new
    /// member): from now on, track what each current peer still has to give us, until
    /// `restore_status` reports nothing left. The write path uses it so that this member
    /// never signs a revision number it may already have signed before it lost its store.
    /// Peers added later are not waited for.
    pub fn track_restore(&mut self) {
        self.restoring = !self.peers.is_empty();
        for p in &mut self.peers {
            p.restore = Some(Default::default());
        }
    }

    /// While restoring: the reachable peers not yet caught up (sorted), which the write path
    /// waits for; `restore_status().waiting`.
    pub fn restore_pending(&mut self) -> Vec<String> {
        self.restore_status().waiting
    }

    /// Where the restore of this member's own history stands. A peer is caught up once a
    /// reconciliation session we initiated with it completed and every id it found us lacking
    /// was answered (held, which the runtime reports only once the item is durable; reported
    /// missing by the peer; or refused by our admission), or once it refused our
    /// reconciliation. A peer not caught up whose link went down during the restore and has
    /// not answered since (down, or being probed again) is not waited for (it cannot give us
    /// anything now; what only it holds is the residual risk written in ARCHITECTURE.md) but
    /// it is reported as `unreachable`, and the restore from it resumes when it answers again:
    /// being down is not being caught up. Tracking stops for good (both
    /// lists empty from then on) once every peer is caught up.
    pub fn restore_status(&mut self) -> RestoreStatus {
        let mut status = RestoreStatus::default();
        if !self.restoring {
            return status;
        }
        for p in &self.peers {
            let Some(t) = p.restore.as_ref().filter(|t| !t.settled()) else {
                continue;
            };
            if p.is_down() || t.unreached {
                status.unreachable.push(p.id.clone());
            } else {
                status.waiting.push(p.id.clone());
            }
        }
        if status.waiting.is_empty() && status.unreachable.is_empty() {
            self.restoring = false;
            for p in &mut self.peers {
                p.restore = None;
            }
        }
        status
    }

    /// Policy check of an item received from `from` (push or fetch reply), after verification
    /// and before storing: was `from` allowed to send it to us? A refusal is counted for the peer
    /// by reason; the item must not be stored.
    pub fn admit(&mut self, now_ms: u64, from: &str, meta: &ItemMeta) -> Result<(), Rejected> {
        let Some(&i) = self.by_id.get(from) else {
            return Err(Rejected {
                peer: from.to_string(),
                code: "unknown_peer",
                explanation: format!("{from} is not a peer of {}", self.me),
            });
        };
        self.mark_inbound(now_ms, i, false);
        let scope = meta.scope();
        let d = policy::may_send(&scope, from, &self.me);
        let result = if d.allowed {
            // A refusal for want of quota is not an answer: anti-entropy fetches the item.
            self.check_origin_quota(now_ms, i, meta)
        } else {
            let code = d.reason.code();
            let explanation = d.reason.to_string();
            self.peers[i].reject(code);
            self.restore_answered(i, &meta.id);
            Err(Rejected {
                peer: from.to_string(),
                code,
                explanation,
            })
        };
        self.refresh_wake();
        result
    }

    /// The per-origin push quota (`SyncConfig::origin_push_rate_per_s`): an item we did not
    /// ask for (not in a fetch of ours) and do not hold takes a token from its origin's bucket;
    /// without one it is refused as `origin_quota` and left to anti-entropy.
    fn check_origin_quota(
        &mut self,
        now_ms: u64,
        i: usize,
        meta: &ItemMeta,
    ) -> Result<(), Rejected> {
        let (rate, burst) = (self.cfg.origin_push_rate_per_s, self.cfg.origin_push_burst);
        if rate == 0
            || meta.origin == self.me
            || self.fetching.contains(&meta.id)
            || self.index.contains(&meta.id)
        {
            return Ok(());
        }
        let bucket = self
            .quotas
            .entry(meta.origin.clone())
            .or_insert(TokenBucket {
                milli: u64::from(burst) * 1000,
                at_ms: now_ms,
            });
        if bucket.take(now_ms, rate, burst) {
            return Ok(());
        }
        let code = "origin_quota";
        self.peers[i].reject(code);
        Err(Rejected {
            peer: self.peers[i].id.clone(),
            code,
            explanation: format!(
                "{} pushed more than {rate} items/s (burst {burst}) of origin {}; refused for \
                 now, anti-entropy will fetch it",
                self.peers[i].id, meta.origin
            ),
        })
    }

    /// Counts a refusal of something `peer` sent (e.g. `EnvelopeError::reason()`).
    pub fn note_rejection(&mut self, peer: &str, code: &str) {
        if let Some(&i) = self.by_id.get(peer) {
            self.peers[i].reject(code);
        }
    }

    /// Counts the refusal of item `id` that `peer` sent (verification failed: `code`, e.g.
    /// `bad_signature`). While restoring, it answers `id` for that peer: what it gives us for
    /// that id cannot be stored, so it is not waited for.
    pub fn note_item_rejection(&mut self, peer: &str, id: &ItemId, code: &str) {
        if let Some(&i) = self.by_id.get(peer) {
            self.peers[i].reject(code);
            self.restore_answered(i, id);
        }
    }

    /// While restoring: `id` is answered by peer `i` (it reported it missing, or we refused
    /// what it sent for it).
    fn restore_answered(&mut self, i: usize, id: &ItemId) {
        if let Some(t) = self.peers[i].restore.as_mut() {
            t.pending.remove(id);
        }
    }

    /// The driver established a connection with `peer`: it is up; reconcile with it now if it
    /// was not up before (`reconcile_on_connect`).
    pub fn peer_up(&mut self, now_ms: u64, peer: &str) {
        let Some(&i) = self.by_id.get(peer) else {
            return;
        };
        let was_up = self.peers[i].link == LinkState::Up;
        self.mark_alive(i);
        if !was_up && self.cfg.reconcile_on_connect {
            self.start_session(now_ms, i);
        }
        self.pump(now_ms, i);
        self.refresh_wake();
    }

    /// The connection with `peer` was lost: it goes down (backoff), its session, queues and
    /// requests in flight are dropped.
    pub fn peer_down(&mut self, now_ms: u64, peer: &str) {
        if let Some(&i) = self.by_id.get(peer) {
            self.go_down(now_ms, i);
            self.refresh_wake();
        }
    }

    /// Operator: reconcile now with `peer`, or with the least recently attempted peer. A down
    /// peer is probed at once. Returns the peer chosen.
    pub fn sync_now(&mut self, now_ms: u64, peer: Option<&str>) -> Result<String, SyncError> {
        let i = match peer {
            Some(p) => self.idx(p)?,
            None => self
                .least_recently_attempted(true)
                .ok_or_else(|| SyncError::UnknownPeer {
                    peer: "(no peers)".to_string(),
                })?,
        };
        if self.peers[i].initiator.is_some() {
            return Err(SyncError::Busy {
                peer: self.peers[i].id.clone(),
            });
        }
        if self.peers[i].is_down() {
            self.peers[i].link = LinkState::Unknown;
        }
        self.start_session(now_ms, i);
        self.refresh_wake();
        Ok(self.peers[i].id.clone())
    }

    /// The roster changed: `peers` (minus this member) are the peers from now on. A kept peer
    /// keeps its state; a removed one loses its sessions, queues and requests in flight (their
    /// late answers are ignored as stale, and anything it sends is `unknown_peer`); an added one
    /// starts with its link unknown (the caller reconciles with it, e.g. `sync_now`). Returns
    /// the ids added and removed, sorted.
    pub fn set_peers(
        &mut self,
        now_ms: u64,
        peers: impl IntoIterator<Item = impl Into<String>>,
    ) -> (Vec<String>, Vec<String>) {
        let mut list: Vec<String> = peers.into_iter().map(Into::into).collect();
        list.sort();
        list.dedup();
        list.retain(|p| *p != self.me);
        // Peer indices change below: send what is waiting first.
        for (i, now_ms) in std::mem::take(&mut self.to_pump) {
            if i < self.peers.len() {
                self.pump(now_ms, i);
            }
        }
        let old: Vec<Peer> = std::mem::take(&mut self.peers);
        let mut removed = Vec::new();
        let mut slots: Vec<Option<Peer>> = Vec::with_capacity(old.len());
        for p in old {
            if list.binary_search(&p.id).is_ok() {
                slots.push(Some(p));
            } else {
                for f in p.in_flight.values() {
                    if let Pending::Fetch { ids } = &f.what {
                        for id in ids {
                            self.fetching.remove(id);
                        }
                    }
                }
                removed.push(p.id.clone());
                slots.push(None);
            }
        }
        let old_index: HashMap<String, usize> = std::mem::take(&mut self.by_id);
        let mut remap: HashMap<usize, usize> = HashMap::new();
        let mut added = Vec::new();
        let mut by_id = HashMap::new();
        let mut next: Vec<Peer> = Vec::with_capacity(list.len());
        for (i, id) in list.into_iter().enumerate() {
            let kept = old_index
                .get(&id)
                .and_then(|&o| slots.get_mut(o).and_then(Option::take).map(|p| (o, p)));
            let peer = match kept {
                Some((o, p)) => {
                    remap.insert(o, i);
                    p
                }
                None => {
                    added.push(id.clone());
                    let h = prf::fnv(id.as_bytes());
                    Peer::new(id.clone(), h, self.prf.hash(domain::RANK, &[h]))
                }
            };
            by_id.insert(id, i);
            next.push(peer);
        }
        self.peers = next;
        self.by_id = by_id;
        let timers = std::mem::take(&mut self.timers);
        let map = |p: usize| remap.get(&p).copied();
        for Reverse((at, t)) in timers {
            let moved = match t {
                Timer::Tick => Some(Timer::Tick),
                Timer::Request { peer, req } => map(peer).map(|peer| Timer::Request { peer, req }),
                Timer::Session { peer, session } => {
                    map(peer).map(|peer| Timer::Session { peer, session })
                }
                Timer::Responder { peer, session } => {
                    map(peer).map(|peer| Timer::Responder { peer, session })
                }
                Timer::Retry { peer } => map(peer).map(|peer| Timer::Retry { peer }),
            };
            if let Some(t) = moved {
                self.timers.push(Reverse((at, t)));
            }
        }
        if self.next_tick_ms.is_none() {
            self.schedule_tick(now_ms);
        }
        self.refresh_wake();
        (added, removed)
    }

    // ----- requests from peers -------------------------------------------------------------

    /// Answers one reconciliation round from `from`, from the set we reconcile with it.
    pub fn handle_reconcile(
        &mut self,
        now_ms: u64,
        from: &str,
        req: &ReconcileRequest,
    ) -> Result<ReconcileResponse, SyncError> {
        let i = self.idx(from)?;
        self.mark_inbound(now_ms, i, true);
        let result = self.answer_reconcile(now_ms, i, req);
        if let Err(e) = &result {
            self.peers[i].reject(e.code());
        }
        self.refresh_wake();
        result
    }

    fn answer_reconcile(
        &mut self,
        now_ms: u64,
        i: usize,
        req: &ReconcileRequest,
    ) -> Result<ReconcileResponse, SyncError> {
        let max = self.cfg.max_frame_bytes;
        let peer_id = self.peers[i].id.clone();
        if req.message.len() > max {
            return Err(SyncError::FrameTooLarge {
                peer: peer_id,
                size: req.message.len(),
                max,
            });
        }
        let neg_err = |e: negentropy::Error| SyncError::Reconcile {
            peer: peer_id.clone(),
            detail: e.to_string(),
        };
        let expires = now_ms.saturating_add(self.cfg.request_timeout_ms.saturating_mul(2));
        let fresh = self.peers[i]
            .responder
            .as_ref()
            .is_none_or(|r| r.session != req.session);
        if fresh {
            self.peers[i].pulls_at_ms = Some(now_ms);
            let storage = self
                .index
                .storage_for(&self.me, &peer_id)
                .map_err(neg_err)?;
            let r = Responder::new(storage, max as u64, req.session, expires).map_err(neg_err)?;
            self.peers[i].responder = Some(r);
            self.peers[i].stats.sessions_answered += 1;
        }
        let p = &mut self.peers[i];
        let Some(r) = p.responder.as_mut() else {
            return Err(neg_err(negentropy::Error::NotSealed));
        };
        r.expires_ms = expires;
        match r.reply(&req.message) {
            Ok(out) => {
                p.stats.bytes_received += req.message.len() as u64;
                p.stats.bytes_sent += out.len() as u64;
                self.timers.push(Reverse((
                    expires,
                    Timer::Responder {
                        peer: i,
                        session: req.session,
                    },
                )));
                Ok(ReconcileResponse {
                    session: req.session,
                    message: out,
                })
            }
            Err(FrameError::Malformed(m)) => {
                p.responder = None;
                Err(SyncError::MalformedFrame {
                    peer: peer_id.clone(),
                    detail: m.to_string(),
                })
            }
            Err(FrameError::Negentropy(e)) => {
                p.responder = None;
                Err(neg_err(e))
            }
        }
    }

    /// Decides the answer to a fetch from `from`: an id is served only if we hold it and `from`
    /// may hold it; otherwise it is reported missing, exactly like an unknown id.
    pub fn handle_fetch(
        &mut self,
        now_ms: u64,
        from: &str,
        req: &FetchRequest,
    ) -> Result<FetchReply, SyncError> {
        let i = self.idx(from)?;
        self.mark_inbound(now_ms, i, false);
        // A peer that fetches pulls what it lacks at its own pace (its sessions may be paused
        // while it works through a difference): what our sessions find it lacking is not
        // pushed as well.
        self.peers[i].pulls_at_ms = Some(now_ms);
        if req.item_ids.len() > self.cfg.max_fetch_ids {
            let e = SyncError::TooManyIds {
                peer: from.to_string(),
                count: req.item_ids.len(),
                max: self.cfg.max_fetch_ids,
            };
            self.peers[i].reject(e.code());
            self.refresh_wake();
            return Err(e);
        }
        let mut reply = FetchReply::default();
        // Ids on their way to `from` in a push of ours: deferred once, not sent a second time
        // (the peer's own reconciliation finds what our pushes carry before they arrive); asked
        // again while still on their way, they are served (the push may be lost).
        let pushing: HashSet<ItemId> = self.peers[i]
            .in_flight
            .values()
            .filter_map(|f| match &f.what {
                Pending::Push { ids, .. } => Some(ids.iter().copied()),
                _ => None,
            })
            .flatten()
            .collect();
        let mut seen = HashSet::with_capacity(req.item_ids.len());
        let mut used: u64 = 0;
        let limit = match req.max_bytes {
            0 => self.cfg.max_batch_bytes as u64,
            m => m.min(self.cfg.max_batch_bytes as u64),
        };
        for id in &req.item_ids {
            if !seen.insert(*id) {
                continue;
            }
            let allowed = self.index.get(id).and_then(|(e, class)| {
                policy::may_send(&class.scope(), &self.me, from)
                    .allowed
                    .then_some(e.bytes)
            });
            match allowed {
                Some(_) if pushing.contains(id) && self.peers[i].deferred_pushing.insert(*id) => {
                    reply.deferred.push(*id);
                }
                Some(bytes) => {
                    let bytes = u64::from(bytes);
                    if !reply.serve.is_empty() && used + bytes > limit {
                        reply.deferred.push(*id);
                    } else {
                        used += bytes;
                        reply.serve.push(*id);
                    }
                }
                None => reply.missing.push(*id),
            }
        }
        // What the peer fetches itself is not pushed to it as well.
        for id in &reply.serve {
            self.peers[i].backlog.remove(id);
            self.peers[i].deferred_pushing.remove(id);
        }
        let st = &mut self.peers[i].stats;
        st.items_sent += reply.serve.len() as u64;
        st.bytes_sent += used;
        st.bytes_received += 32 * req.item_ids.len() as u64;
        self.refresh_wake();
        Ok(reply)
    }

    // ----- outcomes of our requests --------------------------------------------------------

    /// Takes request `req` out of the flight. `answered`: the envelope bytes it delivered (for
    /// the flow estimate), or `None` when it failed.
    fn take_request(
        &mut self,
        now_ms: u64,
        peer: &str,
        req: RequestId,
        answered: Option<u64>,
    ) -> Option<(usize, Pending)> {
        let &i = self.by_id.get(peer)?;
        match self.peers[i].in_flight.remove(&req) {
            Some(f) => {
                let p = &mut self.peers[i];
                match (answered, f.flow) {
                    (Some(bytes), Some((dir, _, mark))) => {
                        p.flow.on_answer(now_ms, dir, mark, bytes);
                    }
                    (Some(_), None) => p.flow.on_round_trip(now_ms, f.sent_ms),
                    (None, _) => p.abandoned(&f),
                }
                Some((i, f.what))
            }
            None => {
                self.peers[i].stats.stale_responses += 1;
                None
            }
        }
    }

    /// The peer answered a push.
    pub fn on_push_response(
        &mut self,
        now_ms: u64,
        peer: &str,
        req: RequestId,
        resp: &PushResponse,
    ) {
        let bytes = self.by_id.get(peer).map_or(0, |&i| {
            self.peers[i]
                .in_flight
                .get(&req)
                .and_then(|f| f.flow)
                .map_or(0, |(_, b, _)| b)
        });
        if let Some((i, what)) = self.take_request(now_ms, peer, req, Some(bytes)) {
            self.mark_alive(i);
            if let Pending::Push { ids, .. } = &what {
                for id in ids {
                    self.peers[i].deferred_pushing.remove(id);
                }
            }
            let st = &mut self.peers[i].stats;
            for r in resp.results.iter().filter(|r| !r.accepted) {
                *st.refused_by_peer.entry(r.reason.clone()).or_insert(0) += 1;
            }
            self.pump(now_ms, i);
        }
        self.refresh_wake();
    }

    /// The peer answered a fetch. Call after verifying, admitting and storing (and reporting
    /// with `item_accepted`) the envelopes it carried.
    pub fn on_fetch_response(
        &mut self,
        now_ms: u64,
        peer: &str,
        req: RequestId,
        resp: &FetchResponse,
    ) {
        // Delivered: the ids asked for, not deferred, and held now.
        let delivered = self.by_id.get(peer).map_or(0, |&i| {
            let Some(InFlight {
                what: Pending::Fetch { ids },
                ..
            }) = self.peers[i].in_flight.get(&req)
            else {
                return 0;
            };
            let deferred: HashSet<&ItemId> = resp.deferred.iter().collect();
            ids.iter()
                .filter(|id| !deferred.contains(id))
                .filter_map(|id| self.index.get(id).map(|(m, _)| u64::from(m.bytes)))
                .sum()
        });
        if let Some((i, what)) = self.take_request(now_ms, peer, req, Some(delivered)) {
            self.mark_alive(i);
            if let Pending::Fetch { ids } = what {
                let deferred: HashSet<&ItemId> = resp.deferred.iter().collect();
                let cap = self.cfg.max_queue_items;
                // Deferred for want of room in the answer: asked for again first. Deferred with
                // nothing served: the peer is pushing them to us; asked for again last (held
                // by then, most likely, and then skipped).
                let again_first = resp.deferred.len() < ids.len();
                let missing: HashSet<&ItemId> = resp.missing.iter().collect();
                for id in ids.iter().rev() {
                    self.fetching.remove(id);
                    if self.index.contains(id) {
                        // Held: `item_accepted` answered it for the restore.
                        continue;
                    }
                    if deferred.contains(id) {
                        self.peers[i].enqueue_fetch(*id, cap, again_first);
                    } else if missing.contains(id) {
                        self.peers[i].stats.fetch_missing += 1;
                        self.restore_answered(i, id);
                    }
                    // Otherwise served but not held: refused by our admission (answered
                    // there), or not stored (the store failed: it stays pending for the
                    // restore, and a later session finds it again).
                }
            }
            self.pump(now_ms, i);
        }
        self.refresh_wake();
    }

    /// The peer answered a reconciliation round.
    pub fn on_reconcile_response(
        &mut self,
        now_ms: u64,
        peer: &str,
        req: RequestId,
        resp: &ReconcileResponse,
    ) {
        if let Some((i, what)) = self.take_request(now_ms, peer, req, Some(0)) {
            self.mark_alive(i);
            if let Pending::Reconcile { session } = what {
                self.continue_session(now_ms, i, session, resp);
            }
            self.pump(now_ms, i);
        }
        self.refresh_wake();
    }

    /// A request failed (see `Failure`).
    pub fn on_request_failed(&mut self, now_ms: u64, peer: &str, req: RequestId, failure: Failure) {
        if let Some((i, what)) = self.take_request(now_ms, peer, req, None) {
            self.request_failed(now_ms, i, what, failure);
        }
        self.refresh_wake();
    }

    fn request_failed(&mut self, now_ms: u64, i: usize, what: Pending, failure: Failure) {
        match what {
            Pending::Fetch { ids } => {
                for id in &ids {
                    self.fetching.remove(id);
                }
            }
            Pending::Reconcile { session } => {
                let p = &mut self.peers[i];
                if p.initiator.as_ref().is_some_and(|s| s.session == session) {
                    p.initiator = None;
                    p.stats.sessions_failed += 1;
                }
                if let (Some(t), Failure::Refused(_)) = (p.restore.as_mut(), &failure) {
                    t.refused = true;
                }
            }
            Pending::Push { ids, fresh } => {
                // A push that timed out was probably lost: send it again in its lane (policy is
                // re-checked by `queue_push`). Unreachable peers catch up by anti-entropy at
                // reconnect, and a refused push is not repeated.
                if matches!(failure, Failure::Timeout) {
                    for id in ids {
                        self.queue_push(i, id, fresh);
                    }
                }
            }
        }
        match failure {
            Failure::Unreachable => self.go_down(now_ms, i),
            Failure::Timeout => {
                let p = &mut self.peers[i];
                p.stats.timeouts += 1;
                p.consecutive_timeouts += 1;
                if p.consecutive_timeouts >= self.cfg.timeouts_before_down {
                    self.go_down(now_ms, i);
                } else {
                    self.pump(now_ms, i);
                }
            }
            Failure::Refused(reason) => {
                let st = &mut self.peers[i].stats;
                *st.refused_by_peer.entry(reason).or_insert(0) += 1;
                self.pump(now_ms, i);
            }
        }
    }

    // ----- time ----------------------------------------------------------------------------

    /// Runs every timer due at `now_ms`: request timeouts, session timeouts, probes of down
    /// peers, the anti-entropy tick.
    pub fn handle_timeout(&mut self, now_ms: u64) {
        while let Some(&Reverse((at, timer))) = self.timers.peek() {
            if at > now_ms {
                break;
            }
            self.timers.pop();
            if !self.timer_valid(at, timer) {
                continue;
            }
            match timer {
                Timer::Tick => self.anti_entropy_tick(now_ms),
                Timer::Request { peer, req } => {
                    if let Some(f) = self.peers[peer].in_flight.remove(&req) {
                        self.peers[peer].abandoned(&f);
                        self.request_failed(now_ms, peer, f.what, Failure::Timeout);
                    }
                }
                Timer::Session { peer, .. } => {
                    self.fail_session(peer, "session_timeout");
                    self.pump(now_ms, peer);
                }
                Timer::Responder { peer, .. } => self.peers[peer].responder = None,
                Timer::Retry { peer } => {
                    self.peers[peer].link = LinkState::Unknown;
                    self.start_session(now_ms, peer);
                }
            }
        }
        self.refresh_wake();
    }

    fn timer_valid(&self, at: u64, timer: Timer) -> bool {
        match timer {
            Timer::Tick => self.next_tick_ms == Some(at),
            Timer::Request { peer, req } => {
                self.peers[peer].in_flight.get(&req).map(|f| f.deadline_ms) == Some(at)
            }
            Timer::Session { peer, session } => self.peers[peer]
                .initiator
                .as_ref()
                .is_some_and(|s| s.session == session && s.deadline_ms == at),
            Timer::Responder { peer, session } => self.peers[peer]
                .responder
                .as_ref()
                .is_some_and(|r| r.session == session && r.expires_ms == at),
            Timer::Retry { peer } => self.peers[peer].link == LinkState::Down { retry_at_ms: at },
        }
    }

    fn refresh_wake(&mut self) {
        while let Some(&Reverse((at, timer))) = self.timers.peek() {
            if self.timer_valid(at, timer) {
                break;
            }
            self.timers.pop();
        }
        let next = self.timers.peek().map(|Reverse((at, _))| *at);
        if next != self.last_wake {
            if let Some(t) = next {
                self.actions.push_back(Action::WakeAt(t));
            }
            self.last_wake = next;
        }
    }

    fn schedule_tick(&mut self, now_ms: u64) {
        if self.cfg.interval_ms == 0 {
            self.next_tick_ms = None;
            return;
        }
        let j = self.cfg.jitter_ms;
        let r = self.prf.below(2 * j + 1, domain::TICK, &[self.tick_count]);
        let at = now_ms
            .saturating_add(self.cfg.interval_ms)
            .saturating_sub(j)
            .saturating_add(r);
        self.next_tick_ms = Some(at);
        self.timers.push(Reverse((at, Timer::Tick)));
    }

    fn anti_entropy_tick(&mut self, now_ms: u64) {
        self.tick_count += 1;
        if let Some(i) = self.least_recently_attempted(false) {
            if self.peers[i].initiator.is_some() || self.working_through_a_difference(now_ms, i) {
                // Busy: the round-robin moves on anyway, so the order of peers never depends on
                // how long a session with another peer took.
                self.peers[i].last_attempt_ms = Some(now_ms);
            } else {
                self.start_session(now_ms, i);
            }
        }
        self.schedule_tick(now_ms);
    }

    /// Whether a session with peer `i` would only find again what the last one found: ids we
    /// still fetch from it or push to it from its backlog. Then a periodic session is skipped
    /// (on a thin link a catch-up lasts many intervals, and each session would carry the
    /// remaining difference's ids once more), but never for longer than
    /// `DIFFERENCE_SKIP_INTERVALS` intervals after the last completed session, so anti-entropy
    /// still repairs what no queue holds.
    fn working_through_a_difference(&self, now_ms: u64, i: usize) -> bool {
        let p = &self.peers[i];
        let recent = p.last_success_ms.is_some_and(|t| {
            now_ms.saturating_sub(t)
                < DIFFERENCE_SKIP_INTERVALS.saturating_mul(self.cfg.interval_ms)
        });
        let queued = !p.fetch_queue.is_empty()
            || !p.backlog.is_empty()
            || p.in_flight.values().any(|f| match &f.what {
                Pending::Fetch { .. } => true,
                Pending::Push { fresh, .. } => !fresh,
                Pending::Reconcile { .. } => false,
            });
        recent && queued
    }

    fn least_recently_attempted(&self, include_down: bool) -> Option<usize> {
        (0..self.peers.len())
            .filter(|&i| include_down || !self.peers[i].is_down())
            .min_by_key(|&i| (self.peers[i].last_attempt_ms, self.peers[i].rank))
    }

    // ----- peers, sessions and queues --------------------------------------------------------

    fn mark_alive(&mut self, i: usize) {
        let p = &mut self.peers[i];
        p.link = LinkState::Up;
        p.consecutive_failures = 0;
        p.consecutive_timeouts = 0;
        if let Some(t) = p.restore.as_mut() {
            t.unreached = false;
        }
    }

    /// Traffic from the peer: it is reachable. If it was down, that is a reconnect. While this
    /// member restores its own history, a reachable peer it is not caught up with gets a
    /// session at once when the restore from it is stalled — no session completed yet, or ids
    /// still pending with nothing fetched from it or queued (a fetch failed, the link went
    /// down) — even when the peer is reconciling with us (its session pulls what *it* lacks,
    /// not what we lack), so the restore does not wait for the next interval.
    fn mark_inbound(&mut self, now_ms: u64, i: usize, is_reconcile: bool) {
        let was_down = self.peers[i].is_down();
        self.mark_alive(i);
        let p = &self.peers[i];
        let fetching_from_it = !p.fetch_queue.is_empty()
            || p.in_flight
                .values()
                .any(|f| matches!(f.what, Pending::Fetch { .. }));
        let restore_needs_session = p.initiator.is_none()
            && p.restore.as_ref().is_some_and(|t| {
                !t.refused && (!t.session_done || (!t.pending.is_empty() && !fetching_from_it))
            });
        if (was_down && !is_reconcile && self.cfg.reconcile_on_connect) || restore_needs_session {
            self.start_session(now_ms, i);
        }
    }

    fn go_down(&mut self, now_ms: u64, i: usize) {
        let base = self.cfg.backoff_base_ms;
        let max = self.cfg.backoff_max_ms;
        let p = &mut self.peers[i];
        if p.initiator.take().is_some() {
            p.stats.sessions_failed += 1;
        }
        p.responder = None;
        if let Some(t) = p.restore.as_mut() {
            t.unreached = true;
        }
        for (_, f) in std::mem::take(&mut p.in_flight) {
            p.abandoned(&f);
            if let Pending::Fetch { ids } = f.what {
                for id in &ids {
                    self.fetching.remove(id);
                }
            }
        }
        p.clear_queues();
        let shift = p.consecutive_failures.min(40);
        let delay = base.saturating_mul(1u64 << shift).min(max);
        let half = delay / 2;
        p.down_count += 1;
        let jitter = self
            .prf
            .below(half + 1, domain::BACKOFF, &[p.id_hash, p.down_count]);
        p.consecutive_failures = p.consecutive_failures.saturating_add(1);
        let at = now_ms.saturating_add(delay - half + jitter);
        p.link = LinkState::Down { retry_at_ms: at };
        self.timers.push(Reverse((at, Timer::Retry { peer: i })));
    }

    fn start_session(&mut self, now_ms: u64, i: usize) {
        if self.peers[i].initiator.is_some() || self.peers[i].is_down() {
            return;
        }
        let storage = match self.index.storage_for(&self.me, &self.peers[i].id) {
            Ok(s) => s,
            Err(_) => {
                self.peers[i].reject("internal_reconcile");
                return;
            }
        };
        let p = &mut self.peers[i];
        p.session_counter += 1;
        p.last_attempt_ms = Some(now_ms);
        if let Some(t) = p.restore.as_mut() {
            t.found.clear();
        }
        let session = self
            .prf
            .hash(domain::SESSION, &[p.id_hash, p.session_counter]);
        let deadline = now_ms.saturating_add(self.cfg.session_timeout_ms);
        match Initiator::start(storage, self.cfg.max_frame_bytes as u64, session, deadline) {
            Ok((init, first)) => {
                p.initiator = Some(init);
                self.timers
                    .push(Reverse((deadline, Timer::Session { peer: i, session })));
                self.send_round(now_ms, i, first);
            }
            Err(_) => p.reject("internal_reconcile"),
        }
    }

    fn send_round(&mut self, now_ms: u64, i: usize, message: Vec<u8>) {
        let Some(session) = self.peers[i].initiator.as_ref().map(|s| s.session) else {
            return;
        };
        // A reply is about as large as the frame it answers (ranges split into as many).
        let transfer = self.transfer_ms(2 * message.len() as u64);
        let req = self.new_request(now_ms, i, Pending::Reconcile { session }, transfer, None);
        let p = &mut self.peers[i];
        if let Some(init) = p.initiator.as_mut() {
            init.outstanding = Some(req);
            init.paused = None;
        }
        p.stats.bytes_sent += message.len() as u64;
        p.stats.rounds += 1;
        self.actions.push_back(Action::Reconcile {
            to: p.id.clone(),
            req,
            msg: ReconcileRequest { session, message },
        });
    }

    /// Registers a request in flight and returns its id. It times out `request_timeout_ms` plus
    /// `transfer_ms` (the time its bytes take at `min_link_bytes_per_s`) from now, plus the time
    /// of the envelope bytes in flight ahead of it in its direction. `bytes`: the envelope bytes
    /// it carries or asks for, and their direction (flow control).
    fn new_request(
        &mut self,
        now_ms: u64,
        i: usize,
        what: Pending,
        transfer_ms: u64,
        bytes: Option<(Dir, u64)>,
    ) -> RequestId {
        self.next_req += 1;
        let req = self.next_req;
        let deadline = now_ms
            .saturating_add(self.cfg.request_timeout_ms)
            .saturating_add(transfer_ms);
        // A request waits behind the envelope bytes already in flight in its direction: they
        // count in its deadline too.
        let ahead = bytes.map_or(0, |(dir, _)| self.peers[i].bytes_in_flight(dir));
        let deadline = deadline.saturating_add(self.transfer_ms(ahead));
        let limits = self.flow_limits();
        let p = &mut self.peers[i];
        let flow = bytes.map(|(dir, b)| {
            let in_flight = p.bytes_in_flight(dir).saturating_add(b);
            let window = p.flow.window(dir, limits);
            (dir, b, p.flow.on_send(now_ms, dir, in_flight, window))
        });
        p.in_flight.insert(
            req,
            InFlight {
                what,
                deadline_ms: deadline,
                sent_ms: now_ms,
                flow,
            },
        );
        self.timers
            .push(Reverse((deadline, Timer::Request { peer: i, req })));
        req
    }

    fn fail_session(&mut self, i: usize, code: &str) {
        let p = &mut self.peers[i];
        if let Some(s) = p.initiator.take() {
            if let Some(req) = s.outstanding
                && let Some(f) = p.in_flight.remove(&req)
            {
                p.abandoned(&f);
            }
            p.stats.sessions_failed += 1;
            p.reject(code);
        }
    }

    fn continue_session(&mut self, now_ms: u64, i: usize, session: u64, resp: &ReconcileResponse) {
        let max = self.cfg.max_frame_bytes;
        let p = &mut self.peers[i];
        let Some(init) = p.initiator.as_mut().filter(|s| s.session == session) else {
            p.stats.stale_responses += 1;
            return;
        };
        init.outstanding = None;
        if resp.session != session {
            self.fail_session(i, "session_mismatch");
            return;
        }
        if resp.message.len() > max {
            self.fail_session(i, "frame_too_large");
            return;
        }
        p.stats.bytes_received += resp.message.len() as u64;
        let round = match init.on_reply(&resp.message) {
            Ok(r) => r,
            Err(FrameError::Malformed(_)) => {
                self.fail_session(i, "malformed_frame");
                return;
            }
            Err(FrameError::Negentropy(_)) => {
                self.fail_session(i, "bad_reconcile");
                return;
            }
        };
        let rounds = init.rounds;
        let cap = self.cfg.max_queue_items;
        for id in round.need {
            if !self.index.contains(&id) {
                if let Some(t) = self.peers[i].restore.as_mut() {
                    t.pending.insert(id);
                    t.found.insert(id);
                }
                self.peers[i].enqueue_fetch(id, cap, false);
            }
        }
        // What the peer lacks: pushed, unless the peer reconciles with us itself (it started a
        // session within the last two intervals) and so fetches it at its own pace; sending it
        // both ways would put each item on the link twice. RED and AMBER items are pushed in the
        // fresh lane either way.
        let pulls = self.peers[i].pulls_at_ms.is_some_and(|t| {
            now_ms.saturating_sub(t) <= 2 * self.cfg.interval_ms.max(self.cfg.request_timeout_ms)
        });
        for id in round.have {
            let urgent = self
                .index
                .get(&id)
                .is_some_and(|(_, c)| matches!(c.tlp, Tlp::Red | Tlp::Amber | Tlp::AmberStrict));
            if urgent || !pulls {
                self.queue_push(i, id, false);
            }
        }
        let p = &mut self.peers[i];
        match round.next {
            None => {
                p.initiator = None;
                p.stats.sessions_ok += 1;
                p.last_success_ms = Some(now_ms);
                if let Some(t) = p.restore.as_mut() {
                    t.session_done = true;
                    t.refused = false;
                    // This session's findings are what the peer still has for us.
                    let found = std::mem::take(&mut t.found);
                    t.pending.retain(|id| found.contains(id));
                }
            }
            Some(_) if rounds >= self.cfg.max_rounds => self.fail_session(i, "too_many_rounds"),
            Some(next) => {
                if let Some(init) = p.initiator.as_mut() {
                    init.rounds += 1;
                    init.paused = Some(next);
                }
                // `pump` sends it once the queues have room for another frame of ids.
            }
        }
    }

    /// Queues an item for `i` if policy lets us send it there (defence in depth: every caller
    /// already chose it by policy): in the fresh lane if `fresh` or the item is RED or AMBER,
    /// else in the backlog lane.
    fn queue_push(&mut self, i: usize, id: ItemId, fresh: bool) {
        let Some((_, class)) = self.index.get(&id) else {
            return;
        };
        let scope = class.scope();
        if !policy::may_send(&scope, &self.me, &self.peers[i].id).allowed {
            return;
        }
        let urgent = fresh || matches!(class.tlp, Tlp::Red | Tlp::Amber | Tlp::AmberStrict);
        self.peers[i].enqueue_push(id, self.cfg.max_queue_items, urgent);
    }

    /// When request `req` to `peer` times out (Unix ms), if it is in flight.
    pub fn request_deadline(&self, peer: &str, req: RequestId) -> Option<u64> {
        let &i = self.by_id.get(peer)?;
        self.peers[i].in_flight.get(&req).map(|f| f.deadline_ms)
    }

    /// Time for `bytes` at `min_link_bytes_per_s`, in ms.
    fn transfer_ms(&self, bytes: u64) -> u64 {
        bytes.saturating_mul(1000) / self.cfg.min_link_bytes_per_s.max(1)
    }

    /// Ids asked for in one fetch of `want` bytes: that many at the average size of the items
    /// held (1 KiB while none is), between 16 and `max_fetch_ids`.
    fn fetch_ids(&self, want: u64) -> usize {
        let avg = self.index.average_bytes().unwrap_or(1024).max(1);
        (want / avg)
            .try_into()
            .unwrap_or(usize::MAX)
            .clamp(16, self.cfg.max_fetch_ids.max(16))
            .min(self.cfg.max_fetch_ids)
    }

    /// The flow windows' settings: two batches of `backlog_batch_bytes` before anything is
    /// measured, at most `max_in_flight` of `max_batch_bytes`; a window is split into
    /// `max_in_flight` batches.
    fn flow_limits(&self) -> flow::Limits {
        let max_batch = self.cfg.backlog_batch_bytes.min(self.cfg.max_batch_bytes) as u64;
        let n = self.cfg.max_in_flight.max(1) as u64;
        flow::Limits {
            initial: n.min(2).saturating_mul(max_batch),
            ceiling: n.saturating_mul(self.cfg.max_batch_bytes as u64),
            max_batch,
            batches: n,
        }
    }

    /// Sends what the peer's queues, in-flight limits and flow windows allow, and resumes a
    /// paused session.
    ///
    /// Pushes share one byte window (about twice the link's bandwidth-delay product, `flow`):
    /// the fresh lane goes first, while the window has room (at most
    /// `FRESH_REQUESTS_PER_SLOT` × `max_in_flight` requests), and one fresh push may be in
    /// flight whatever the window, so a new item never waits for a backlog batch to be
    /// answered; the backlog follows while the window and `max_in_flight` allow. Fetches ask
    /// for one batch each while the inbound window allows. So a fresh push queues behind about
    /// one round trip of backlog on the link, wherever that backlog comes from.
    fn pump(&mut self, now_ms: u64, i: usize) {
        if self.peers[i].is_down() {
            return;
        }
        let limits = self.flow_limits();
        let (max_in_flight, max_items, max_ids, max_bytes) = (
            self.cfg.max_in_flight.max(1),
            self.cfg.max_push_items,
            self.cfg.max_fetch_ids,
            self.cfg.max_batch_bytes as u64,
        );
        let (window, batch_bytes) = {
            let f = &self.peers[i].flow;
            (
                f.window(Dir::Out, limits),
                f.batch(Dir::Out, limits).min(max_bytes),
            )
        };
        for fresh in [true, false] {
            loop {
                let p = &self.peers[i];
                let lane = if fresh { &p.fresh } else { &p.backlog };
                if lane.is_empty() {
                    break;
                }
                let in_lane = p.count_in_flight(
                    |w| matches!(w, Pending::Push { fresh: f, .. } if *f == fresh),
                );
                let bytes_out = p.bytes_in_flight(Dir::Out);
                let room = bytes_out < window;
                let allowed = if fresh {
                    // One fresh push may always be in flight; more while the window has room.
                    in_lane == 0 || (room && in_lane < FRESH_REQUESTS_PER_SLOT * max_in_flight)
                } else {
                    in_lane < max_in_flight && room
                };
                if !allowed {
                    break;
                }
                let mut items = Vec::new();
                let mut bytes = 0u64;
                while items.len() < max_items {
                    let p = &mut self.peers[i];
                    let lane = if fresh { &mut p.fresh } else { &mut p.backlog };
                    let Some(id) = lane.front() else {
                        break;
                    };
                    let b = self.index.get(&id).map_or(0, |(e, _)| u64::from(e.bytes));
                    if !items.is_empty() && bytes + b > batch_bytes {
                        break;
                    }
                    lane.pop();
                    if !fresh && self.peers[i].fresh.contains(&id) {
                        continue;
                    }
                    bytes += b;
                    items.push(id);
                }
                if items.is_empty() {
                    continue;
                }
                let deadline = self.transfer_ms(bytes);
                let req = self.new_request(
                    now_ms,
                    i,
                    Pending::Push {
                        ids: items.clone(),
                        fresh,
                    },
                    deadline,
                    Some((Dir::Out, bytes)),
                );
                let p = &mut self.peers[i];
                p.stats.items_sent += items.len() as u64;
                p.stats.bytes_sent += bytes;
                p.stats.pushes_sent += 1;
                self.actions.push_back(Action::Push {
                    to: p.id.clone(),
                    req,
                    items,
                });
            }
        }
        // What still waits in the fresh lane beyond one batch becomes backlog: the next new item
        // goes in the next fresh push, not behind a flood of earlier ones.
        {
            let index = &self.index;
            let cap = self.cfg.max_queue_items;
            self.peers[i].demote_fresh(
                batch_bytes,
                |id| index.get(id).map_or(0, |(e, _)| u64::from(e.bytes)),
                cap,
            );
        }
        // Fetches, each asking for one inbound batch, while the inbound window allows.
        let (in_window, want) = {
            let f = &self.peers[i].flow;
            (
                f.window(Dir::In, limits),
                f.batch(Dir::In, limits).min(max_bytes),
            )
        };
        let max_ids = max_ids.min(self.fetch_ids(want));
        loop {
            let p = &self.peers[i];
            let bytes_in = p.bytes_in_flight(Dir::In);
            if p.fetch_queue.is_empty()
                || p.count_in_flight(|w| matches!(w, Pending::Fetch { .. })) >= max_in_flight
                || (bytes_in >= in_window && bytes_in > 0)
            {
                break;
            }
            let mut ids = Vec::new();
            while ids.len() < max_ids {
                let Some(id) = self.peers[i].fetch_queue.pop_front() else {
                    break;
                };
                self.peers[i].fetch_queued.remove(&id);
                if !self.index.contains(&id) && !self.fetching.contains(&id) {
                    ids.push(id);
                }
            }
            if ids.is_empty() {
                continue;
            }
            self.fetching.extend(ids.iter().copied());
            let extra = self.transfer_ms(32 * ids.len() as u64 + want);
            let req = self.new_request(
                now_ms,
                i,
                Pending::Fetch { ids: ids.clone() },
                extra,
                Some((Dir::In, want)),
            );
            let p = &mut self.peers[i];
            p.stats.fetches_sent += 1;
            p.stats.bytes_sent += 32 * ids.len() as u64;
            self.actions.push_back(Action::Fetch {
                from: p.id.clone(),
                req,
                msg: FetchRequest {
                    item_ids: ids,
                    max_bytes: want,
                },
            });
        }
        // A session paused by flow control goes on when another frame of ids fits.
        let room = self.cfg.max_queue_items - self.cfg.ids_per_frame();
        let p = &mut self.peers[i];
        let resume = p.initiator.as_mut().and_then(|s| {
            (s.outstanding.is_none()
                && p.fetch_queue.len() <= room
                && p.fresh.len() <= room
                && p.backlog.len() <= room)
                .then(|| s.paused.take())
                .flatten()
        });
        if let Some(next) = resume {
            self.send_round(now_ms, i, next);
        }
    }
}
