//! Eager push: to whom a newly accepted item goes at once.
//!
//! - **Direct**: the origin of a RED item, or of an AMBER/AMBER+STRICT item whose audience is at
//!   most `direct_audience_max`, sends it to every recipient. Relays of such items push nothing
//!   (the origin already sent it to everyone; anti-entropy repairs a lost delivery).
//! - **Gossip** (CLEAR, GREEN, AMBER with a large audience): up to `fanout` peers among the
//!   members that may hold the item, never the peer we got it from, never a peer known down.
//!   - `PushMode::Tree` (default): every member computes the same per-item spanning tree
//!     ((fanout)-ary, origin at the root, members ordered by a hash of (item id, member)) and
//!     pushes to its children; a child known down is replaced by its own children. Without
//!     loss, N members are reached in about ⌈log_f N⌉ + 1 hops with N − 1 messages.
//!   - `PushMode::Random`: `fanout` peers chosen uniformly (keyed by our seed and the item id).
//!
//! Every target passes `policy::may_send(item, me, target)`.

use super::peer::Peer;
use super::prf::{self, Prf, domain};
use crate::envelope::ItemId;
use crate::policy::{self, ItemScope};

/// How gossip targets are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PushMode {
    /// Per-item spanning tree shared by all members (deterministic from the item id).
    #[default]
    Tree,
    /// Uniformly random peers (keyed by this member's seed and the item id).
    Random,
}

/// Parameters of target selection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PushParams {
    pub(crate) fanout: usize,
    pub(crate) mode: PushMode,
    pub(crate) direct_audience_max: usize,
}

/// Whether an item is delivered directly by its origin (and not gossiped by relays): the
/// policy's rule.
pub(crate) fn is_direct(scope: &ItemScope<'_>, direct_audience_max: usize) -> bool {
    crate::policy::is_direct_delivery(scope, direct_audience_max)
}

/// Indices (into `peers`) of the peers to push a newly accepted item to.
pub(crate) fn targets(
    params: PushParams,
    me: &str,
    id: &ItemId,
    scope: &ItemScope<'_>,
    source: Option<usize>,
    peers: &[Peer],
    prf: &Prf,
) -> Vec<usize> {
    let allowed = |i: usize| {
        let p = &peers[i];
        Some(i) != source && !p.is_down() && policy::may_send(scope, me, &p.id).allowed
    };
    if is_direct(scope, params.direct_audience_max) {
        if !scope.is_origin(me) {
            return Vec::new();
        }
        return (0..peers.len())
            .filter(|&i| scope.in_audience(&peers[i].id) && allowed(i))
            .collect();
    }
    if params.fanout == 0 {
        return Vec::new();
    }
    match params.mode {
        PushMode::Tree => tree_targets(params.fanout, me, id, scope, source, peers, &allowed),
        PushMode::Random => random_targets(params.fanout, id, peers, prf, &allowed),
    }
}

fn random_targets(
    fanout: usize,
    id: &ItemId,
    peers: &[Peer],
    prf: &Prf,
    allowed: &dyn Fn(usize) -> bool,
) -> Vec<usize> {
    let mut cands: Vec<usize> = (0..peers.len()).filter(|&i| allowed(i)).collect();
    let k = fanout.min(cands.len());
    let w = prf::id_word(&id.0);
    // Partial Fisher-Yates, each draw keyed by (item, position): independent of other items.
    for j in 0..k {
        let remaining = (cands.len() - j) as u64;
        let r = prf.below(remaining, domain::PUSH, &[w, j as u64]) as usize;
        cands.swap(j, j + r);
    }
    cands.truncate(k);
    cands
}

/// Member at tree position `pos` is `order[pos]`; its children are `f*pos+1 ..= f*pos+f`.
fn tree_targets(
    fanout: usize,
    me: &str,
    id: &ItemId,
    scope: &ItemScope<'_>,
    source: Option<usize>,
    peers: &[Peer],
    allowed: &dyn Fn(usize) -> bool,
) -> Vec<usize> {
    // Holders of the item among the roster (peers + me); `None` stands for me.
    let shared = Prf::shared();
    let w = prf::id_word(&id.0);
    let rank = |m: &str| shared.hash(domain::TREE, &[w, prf::fnv(m.as_bytes())]);
    let mut order: Vec<(u64, Option<usize>)> = Vec::with_capacity(peers.len() + 1);
    if policy::may_hold(scope, me).allowed {
        order.push((rank(me), None));
    } else {
        return Vec::new();
    }
    for (i, p) in peers.iter().enumerate() {
        if policy::may_hold(scope, &p.id).allowed {
            order.push((rank(&p.id), Some(i)));
        }
    }
    let name = |e: &(u64, Option<usize>)| match e.1 {
        None => me,
        Some(i) => peers[i].id.as_str(),
    };
    // The origin is the root; everyone else by rank (ties by id: every member agrees).
    order.sort_by(|a, b| {
        let (na, nb) = (name(a), name(b));
        (na != scope.origin, a.0, na).cmp(&(nb != scope.origin, b.0, nb))
    });
    let Some(pos) = order.iter().position(|e| e.1.is_none()) else {
        return Vec::new();
    };
    let children = |p: usize| (fanout * p + 1..=fanout * p + fanout).filter(|&c| c < order.len());
    let mut out = Vec::new();
    for c in children(pos) {
        let Some(ci) = order[c].1 else { continue };
        if allowed(ci) {
            out.push(ci);
        } else if Some(ci) != source || peers[ci].is_down() {
            // Skip over a child we cannot reach: push to its children instead.
            for g in children(c) {
                if let Some(gi) = order[g].1
                    && allowed(gi)
                {
                    out.push(gi);
                }
            }
        }
    }
    out
}
