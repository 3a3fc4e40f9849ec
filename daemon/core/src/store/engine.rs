//! The store's rules and record layouts, written once over an abstract ordered key-value space.
//!
//! Owns: the key and value layout of every tree, the supersession / equivocation / withdrawal
//! rules applied by `put`, the maintenance of the indicator index and of the counters, and every
//! query (`get`, `latest`, `history`, `list`, `search`, …). Both backends (`MemoryStore`,
//! `SledStore`) run exactly this code over their own trees, so they cannot drift apart; they only
//! supply reads (`Kv`) and apply a computed `WriteSet` atomically.
//! Must never: perform I/O itself, read a clock, or apply writes piecemeal (a `put`, and a
//! `drop_items` of any number of items, is planned completely in an `Overlay`, then applied as
//! one atomic `WriteSet`).
//!
//! # Trees and key layouts
//! `akey(origin, id)` is `esc(origin) ++ esc(id)`, where `esc` copies the UTF-8 bytes, replaces
//! `0x00` by `0x00 0xFF` and appends the terminator `0x00 0x01`. It sorts like the tuple
//! `(origin, id)` and a prefix scan of it never matches another advisory. Integers are big-endian.
//!
//! | tree | key | value |
//! |---|---|---|
//! | `envelopes` | item id (32) | `tanoa.v1.StoredEnvelope` |
//! | `history` | akey ++ revision (8) ++ item id (32) | empty |
//! | `latest` | akey | item id (32) ++ revision (8) ++ modified_ms (8) ++ withdrawn (1) ++ tlp (1) |
//! | `by_modified` | desc(modified_ms) (8) ++ akey | item id (32) ++ withdrawn (1) ++ tlp (1) |
//! | `indicators` | see below | empty |
//! | `tombstones` | akey | item id (32) of the latest revision, present iff it is a withdrawal |
//! | `equivocations` | akey ++ revision (8) | `tanoa.v1.EquivocationRecord` |
//! | `audit` | sequence number (8) | `tanoa.v1.AuditEntry` |
//! | `meta` | `counts`, `cidr4`, `cidr6`, `format` | counters (u64 each), format tag |
//!
//! Indicator keys (one per indicator of every latest, non-withdrawn revision):
//! - a CIDR that parses: `0xC4 ++ network (4) ++ prefix length (1)` (IPv4) or
//!   `0xC6 ++ network (16) ++ prefix length (1)` (IPv6), host bits cleared;
//! - any other value: `kind (1, the tanoa.v1.IndicatorKind number) ++ len (4) ++ value`;
//!
//! - a CVE of the advisory's `cves` list: `0xA1 ++ len (4) ++ CVE id (upper case)`;
//! - an actor of the advisory's `actors` list: `0xA2 ++ len (4) ++ name (trimmed, lower case)`;
//!
//! each followed by `item id (32) ++ indicator index (4)` (for list entries: the position in
//! the list). List entries are added and removed exactly with the indicators (latest,
//! non-withdrawn revisions only) but are not counted in `Counts::indicators`. An address lookup reads the exact
//! ipv4/ipv6 key, then one prefix per CIDR prefix length *in use* (at most 33 for IPv4, 129 for
//! IPv6): `meta/cidr4` and `meta/cidr6` count index entries per prefix length, and lengths with
//! no entry are skipped. Results: exact matches first, then CIDRs from the most specific; within
//! a group by (item id, index).
//!
//! `latest` holds, per advisory, the item ranked first by `outranks`: a withdrawal tombstone if
//! any is stored (withdrawal is forever), else the highest revision; ties by lowest item id.
//! Dropping an item (`Overlay::drop_item`, a revocation's purge) removes its envelope, history
//! key and equivocation evidence and, when it was the latest, recomputes the latest from what
//! remains by the same rank, so the result is the store without that item whatever the order
//! of arrival (a dropped tombstone makes the best remaining revision latest again).
//!
//! `desc(ms)` is `!(ms as u64 ^ 1 << 63)`, so `by_modified` iterates newest first; ties are
//! ordered by (origin, id).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use prost::Message;
use tanoa_proto::v1 as pb;

use super::{
    AuditEntry, Counts, DroppedItem, Equivocation, IndicatorMatch, IndicatorQuery, ListFilter,
    ListOrder, MatchKind, OriginEquivocations, PutOutcome, StoreError, StoredItem,
};
use crate::envelope::{Envelope, ItemId, Verified};
use crate::model::{Advisory, IndicatorKind, Tlp, wire};

/// The trees of the store, in a fixed order (index into `WriteSet::trees`). The sled backend
/// persists the index as the first byte of every key: never renumber or reorder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tree {
    Envelopes = 0,
    History = 1,
    Latest = 2,
    ByModified = 3,
    Indicators = 4,
    Tombstones = 5,
    Equivocations = 6,
    Audit = 7,
    Meta = 8,
}

/// Number of trees.
pub const TREE_COUNT: usize = 9;

impl Tree {
    /// Every tree, in index order.
    pub const ALL: [Tree; TREE_COUNT] = [
        Tree::Envelopes,
        Tree::History,
        Tree::Latest,
        Tree::ByModified,
        Tree::Indicators,
        Tree::Tombstones,
        Tree::Equivocations,
        Tree::Audit,
        Tree::Meta,
    ];

    /// Tree name (also the sled tree name).
    pub fn name(self) -> &'static str {
        match self {
            Tree::Envelopes => "envelopes",
            Tree::History => "history",
            Tree::Latest => "latest",
            Tree::ByModified => "by_modified",
            Tree::Indicators => "indicators",
            Tree::Tombstones => "tombstones",
            Tree::Equivocations => "equivocations",
            Tree::Audit => "audit",
            Tree::Meta => "meta",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// Meta key of the counters.
const META_COUNTS: &[u8] = b"counts";
/// Meta key of the IPv4 CIDR entries per prefix length.
const META_CIDR4: &[u8] = b"cidr4";
/// Meta key of the IPv6 CIDR entries per prefix length.
const META_CIDR6: &[u8] = b"cidr6";
/// Meta key of the format tag.
pub const META_FORMAT: &[u8] = b"format";
/// Current format tag.
pub const FORMAT_TAG: &[u8] = b"tanoa-store-v1";

const TAG_CIDR4: u8 = 0xC4;
const TAG_CIDR6: u8 = 0xC6;
/// Index keys of an advisory's CVE list and actor list (not indicators: not counted in
/// `Counts::indicators`).
const TAG_CVE_LIST: u8 = 0xA1;
const TAG_ACTOR_LIST: u8 = 0xA2;

/// Visitor of a scan: gets (key, value), returns whether to continue.
pub type Visit<'a> = dyn FnMut(&[u8], &[u8]) -> Result<bool, StoreError> + 'a;

/// An indicator index key, with the CIDR prefix length it counts for (`Some((is_v6, len))`).
type IndexEntry = (Vec<u8>, Option<(bool, u8)>);

/// Read access to the trees of a backend.
pub trait Kv {
    /// Value of `key` in `tree`.
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// Whether `key` exists in `tree`.
    fn contains(&self, tree: Tree, key: &[u8]) -> Result<bool, StoreError> {
        Ok(self.get(tree, key)?.is_some())
    }
    /// Calls `f` on every entry whose key starts with `prefix`, in key order (reversed if
    /// `reverse`), until `f` returns `Ok(false)`.
    fn scan(
        &self,
        tree: Tree,
        prefix: &[u8],
        reverse: bool,
        f: &mut Visit<'_>,
    ) -> Result<(), StoreError>;
    /// Like `scan` for a visitor that reads keys only: a backend may then pass any value (the
    /// sled backend does not read an envelope record it keeps outside sled).
    fn scan_keys(
        &self,
        tree: Tree,
        prefix: &[u8],
        f: &mut dyn FnMut(&[u8]) -> Result<bool, StoreError>,
    ) -> Result<(), StoreError> {
        self.scan(tree, prefix, false, &mut |k, _| f(k))
    }
    /// Calls `f` on every entry whose key starts with `prefix` and is greater than `after`, in
    /// key order, until `f` returns `Ok(false)`. Backends override this default (which walks the
    /// prefix from its start) with a seek, so resuming a paged `list` costs one page.
    fn scan_after(
        &self,
        tree: Tree,
        prefix: &[u8],
        after: &[u8],
        f: &mut Visit<'_>,
    ) -> Result<(), StoreError> {
        self.scan(tree, prefix, false, &mut |k, v| {
            if k <= after {
                return Ok(true);
            }
            f(k, v)
        })
    }
}

fn corrupt(tree: Tree, detail: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        tree: tree.name(),
        detail: detail.into(),
    }
}

// ---------------------------------------------------------------------------------------------
// Key and value encodings
// ---------------------------------------------------------------------------------------------

fn esc(s: &str, out: &mut Vec<u8>) {
    for &b in s.as_bytes() {
        if b == 0 {
            out.extend_from_slice(&[0, 0xFF]);
        } else {
            out.push(b);
        }
    }
    out.extend_from_slice(&[0, 1]);
}

/// Parses one escaped string; returns it and the rest.
fn unesc(b: &[u8]) -> Option<(String, &[u8])> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == 0 {
            match b.get(i + 1)? {
                0xFF => out.push(0),
                1 => return Some((String::from_utf8(out).ok()?, &b[i + 2..])),
                _ => return None,
            }
            i += 2;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    None
}

/// Key of an advisory: `esc(origin) ++ esc(id)`.
pub fn akey(origin: &str, id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(origin.len() + id.len() + 4);
    esc(origin, &mut k);
    esc(id, &mut k);
    k
}

/// Decodes an advisory key into (origin, id).
#[cfg(test)]
fn parse_akey(b: &[u8], tree: Tree) -> Result<(String, String), StoreError> {
    let bad = || corrupt(tree, format!("bad advisory key {}", hex::encode(b)));
    let (origin, rest) = unesc(b).ok_or_else(bad)?;
    let (id, rest) = unesc(rest).ok_or_else(bad)?;
    if !rest.is_empty() {
        return Err(bad());
    }
    Ok((origin, id))
}

fn rev_key(akey: &[u8], revision: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(akey.len() + 8);
    k.extend_from_slice(akey);
    k.extend_from_slice(&revision.to_be_bytes());
    k
}

fn history_key(akey: &[u8], revision: u64, item: &ItemId) -> Vec<u8> {
    let mut k = rev_key(akey, revision);
    k.extend_from_slice(&item.0);
    k
}

fn desc_ms(ms: i64) -> [u8; 8] {
    (!((ms as u64) ^ (1 << 63))).to_be_bytes()
}

fn undesc_ms(b: [u8; 8]) -> i64 {
    ((!u64::from_be_bytes(b)) ^ (1 << 63)) as i64
}

fn by_modified_key(modified_ms: i64, akey: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + akey.len());
    k.extend_from_slice(&desc_ms(modified_ms));
    k.extend_from_slice(akey);
    k
}

fn tlp_code(t: Tlp) -> u8 {
    wire::tlp_to_proto(t) as i32 as u8
}

fn tlp_of_code(c: u8, tree: Tree) -> Result<Tlp, StoreError> {
    wire::tlp_from_proto(i32::from(c)).ok_or_else(|| corrupt(tree, format!("bad TLP code {c}")))
}

fn item_of(b: &[u8], tree: Tree) -> Result<ItemId, StoreError> {
    ItemId::from_slice(b).ok_or_else(|| corrupt(tree, format!("bad item id {}", hex::encode(b))))
}

/// The supersession order of the items of one advisory: whether `a` =
/// (withdrawn, revision, item id) replaces `b` as the latest revision.
///
/// Withdrawal is forever: a tombstone outranks every revision that is not withdrawn, whatever
/// their revision numbers, so once any tombstone of an advisory is held the advisory stays
/// withdrawn (later revisions are stored as history but never become latest, never reactivate
/// indicators). Among items of the same withdrawn state: the highest revision, then the lowest
/// item id (equivocation). A total order over items, so the latest does not depend on the order
/// in which items arrive.
pub(crate) fn outranks(a: (bool, u64, &ItemId), b: (bool, u64, &ItemId)) -> bool {
    let (aw, ar, ai) = a;
    let (bw, br, bi) = b;
    (aw, ar, std::cmp::Reverse(ai)) > (bw, br, std::cmp::Reverse(bi))
}

/// Value of the `latest` tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LatestRec {
    item: ItemId,
    revision: u64,
    modified_ms: i64,
    withdrawn: bool,
    tlp: Tlp,
}

impl LatestRec {
    fn of(item: ItemId, a: &Advisory) -> Self {
        Self {
            item,
            revision: a.revision,
            modified_ms: a.modified_ms,
            withdrawn: a.withdrawn,
            tlp: a.tlp,
        }
    }

    fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(50);
        v.extend_from_slice(&self.item.0);
        v.extend_from_slice(&self.revision.to_be_bytes());
        v.extend_from_slice(&self.modified_ms.to_be_bytes());
        v.push(u8::from(self.withdrawn));
        v.push(tlp_code(self.tlp));
        v
    }

    fn decode(b: &[u8]) -> Result<Self, StoreError> {
        let t = Tree::Latest;
        if b.len() != 50 {
            return Err(corrupt(
                t,
                format!("record of {} bytes, expected 50", b.len()),
            ));
        }
        let mut r = [0u8; 8];
        r.copy_from_slice(&b[32..40]);
        let mut m = [0u8; 8];
        m.copy_from_slice(&b[40..48]);
        Ok(Self {
            item: item_of(&b[..32], t)?,
            revision: u64::from_be_bytes(r),
            modified_ms: i64::from_be_bytes(m),
            withdrawn: b[48] != 0,
            tlp: tlp_of_code(b[49], t)?,
        })
    }

    fn by_modified_value(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(34);
        v.extend_from_slice(&self.item.0);
        v.push(u8::from(self.withdrawn));
        v.push(tlp_code(self.tlp));
        v
    }
}

/// An indicator index key without its (item id, index) suffix, plus the CIDR prefix length it
/// counts for (`Some((is_v6, len))`).
fn indicator_prefix(kind: IndicatorKind, value: &str) -> IndexEntry {
    if kind == IndicatorKind::Cidr
        && let Ok(net) = value.trim().parse::<ipnet::IpNet>()
    {
        return cidr_prefix(&net.trunc());
    }
    let mut k = Vec::with_capacity(5 + value.len() + 36);
    k.push(wire::kind_to_proto(kind) as i32 as u8);
    k.extend_from_slice(&(value.len() as u32).to_be_bytes());
    k.extend_from_slice(value.as_bytes());
    (k, None)
}

fn cidr_prefix(net: &ipnet::IpNet) -> IndexEntry {
    let plen = net.prefix_len();
    let mut k = Vec::with_capacity(18 + 36);
    match net {
        ipnet::IpNet::V4(n) => {
            k.push(TAG_CIDR4);
            k.extend_from_slice(&n.network().octets());
            k.push(plen);
            (k, Some((false, plen)))
        }
        ipnet::IpNet::V6(n) => {
            k.push(TAG_CIDR6);
            k.extend_from_slice(&n.network().octets());
            k.push(plen);
            (k, Some((true, plen)))
        }
    }
}

/// The normal form of a CVE id in the advisory CVE-list index (upper case, as the model
/// normalizes it; the value as given, trimmed and upper-cased, when it does not normalize).
pub(crate) fn cve_list_value(v: &str) -> String {
    crate::model::normalize_indicator(IndicatorKind::Cve, v)
        .unwrap_or_else(|_| v.trim().to_uppercase())
}

/// The normal form of an actor name in the actor-list index: trimmed, lower case (search is
/// case-insensitive).
pub(crate) fn actor_list_value(v: &str) -> String {
    v.trim().to_lowercase()
}

/// Key prefix of a value of an advisory list (`TAG_CVE_LIST` or `TAG_ACTOR_LIST`).
fn list_prefix(tag: u8, value: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(5 + value.len() + 36);
    k.push(tag);
    k.extend_from_slice(&(value.len() as u32).to_be_bytes());
    k.extend_from_slice(value.as_bytes());
    k
}

/// Whether an index key counts as an indicator (not an advisory CVE or actor list entry).
fn is_indicator_key(k: &[u8]) -> bool {
    !matches!(k.first(), Some(&TAG_CVE_LIST | &TAG_ACTOR_LIST))
}

/// Index keys of an advisory's indicators, with their CIDR prefix lengths, then of its CVE
/// and actor lists (position in `cves` / `actors` as the index).
fn indicator_keys(item: &ItemId, a: &Advisory) -> Vec<IndexEntry> {
    // Roster items are never search results (they carry nothing to search for anyway).
    if crate::roster::is_carrier_id(&a.id) {
        return Vec::new();
    }
    let suffixed = |mut k: Vec<u8>, n: usize| {
        k.extend_from_slice(&item.0);
        k.extend_from_slice(&(n as u32).to_be_bytes());
        k
    };
    let mut out: Vec<IndexEntry> = a
        .indicators
        .iter()
        .enumerate()
        .map(|(n, ind)| {
            let (k, cidr) = indicator_prefix(ind.kind, &ind.value);
            (suffixed(k, n), cidr)
        })
        .collect();
    for (n, c) in a.cves.iter().enumerate() {
        out.push((
            suffixed(list_prefix(TAG_CVE_LIST, &cve_list_value(c)), n),
            None,
        ));
    }
    for (n, c) in a.actors.iter().enumerate() {
        out.push((
            suffixed(list_prefix(TAG_ACTOR_LIST, &actor_list_value(c)), n),
            None,
        ));
    }
    out
}

/// Counters: encoded as 5 big-endian u64 in `meta/counts`.
fn encode_counts(c: &Counts) -> Vec<u8> {
    let mut v = Vec::with_capacity(40);
    for x in [
        c.advisories,
        c.withdrawn,
        c.items,
        c.indicators,
        c.equivocations,
    ] {
        v.extend_from_slice(&x.to_be_bytes());
    }
    v
}

fn decode_u64s(b: &[u8], n: usize, what: &str) -> Result<Vec<u64>, StoreError> {
    if b.len() != n * 8 {
        return Err(corrupt(
            Tree::Meta,
            format!("{what}: {} bytes, expected {}", b.len(), n * 8),
        ));
    }
    Ok(b.chunks_exact(8)
        .map(|c| {
            let mut a = [0u8; 8];
            a.copy_from_slice(c);
            u64::from_be_bytes(a)
        })
        .collect())
}

/// Reads the counters (zero when the store is empty).
pub fn read_counts(kv: &(impl Kv + ?Sized)) -> Result<Counts, StoreError> {
    let Some(b) = kv.get(Tree::Meta, META_COUNTS)? else {
        return Ok(Counts::default());
    };
    let v = decode_u64s(&b, 5, "counts")?;
    Ok(Counts {
        advisories: v[0],
        withdrawn: v[1],
        items: v[2],
        indicators: v[3],
        equivocations: v[4],
    })
}

/// Index entries per CIDR prefix length: 33 for IPv4 (/0../32), 129 for IPv6 (/0../128).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CidrCounts {
    v4: Vec<u64>,
    v6: Vec<u64>,
}

impl Default for CidrCounts {
    fn default() -> Self {
        Self {
            v4: vec![0; 33],
            v6: vec![0; 129],
        }
    }
}

impl CidrCounts {
    fn slot(&mut self, v6: bool, plen: u8) -> &mut u64 {
        let list = if v6 { &mut self.v6 } else { &mut self.v4 };
        &mut list[usize::from(plen)]
    }
}

/// Reads the per-prefix-length CIDR counters.
pub fn read_cidr_counts(kv: &(impl Kv + ?Sized)) -> Result<CidrCounts, StoreError> {
    let mut c = CidrCounts::default();
    if let Some(b) = kv.get(Tree::Meta, META_CIDR4)? {
        c.v4 = decode_u64s(&b, 33, "cidr4")?;
    }
    if let Some(b) = kv.get(Tree::Meta, META_CIDR6)? {
        c.v6 = decode_u64s(&b, 129, "cidr6")?;
    }
    Ok(c)
}

fn encode_u64s(v: &[u64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_be_bytes()).collect()
}

/// Which CIDR prefix lengths have index entries: an in-memory mirror of `meta/cidr4|cidr6`,
/// updated by the backend after each commit (under its writer lock).
#[derive(Debug)]
pub struct CidrPresence {
    v4: Vec<AtomicU64>,
    v6: Vec<AtomicU64>,
}

impl CidrPresence {
    pub fn new(c: &CidrCounts) -> Self {
        Self {
            v4: c.v4.iter().map(|x| AtomicU64::new(*x)).collect(),
            v6: c.v6.iter().map(|x| AtomicU64::new(*x)).collect(),
        }
    }

    /// Replaces the mirror with committed counters.
    pub fn set(&self, c: &CidrCounts) {
        for (a, x) in self.v4.iter().zip(&c.v4) {
            a.store(*x, Ordering::Release);
        }
        for (a, x) in self.v6.iter().zip(&c.v6) {
            a.store(*x, Ordering::Release);
        }
    }

    fn has(&self, v6: bool, plen: u8) -> bool {
        let list = if v6 { &self.v6 } else { &self.v4 };
        list.get(usize::from(plen))
            .is_some_and(|a| a.load(Ordering::Acquire) > 0)
    }
}

// ---------------------------------------------------------------------------------------------
// Records
// ---------------------------------------------------------------------------------------------

fn encode_stored(env: &Envelope, received_ms: i64, source: &str) -> Vec<u8> {
    pb::StoredEnvelope {
        envelope: Some(env.to_proto()),
        received_ms,
        source: source.to_string(),
    }
    .encode_to_vec()
}

fn decode_stored(key: &ItemId, bytes: &[u8]) -> Result<StoredItem, StoreError> {
    let t = Tree::Envelopes;
    let rec = pb::StoredEnvelope::decode(bytes)
        .map_err(|e| corrupt(t, format!("item {key}: not a StoredEnvelope: {e}")))?;
    let env = rec
        .envelope
        .map(Envelope::from_proto)
        .ok_or_else(|| corrupt(t, format!("item {key}: no envelope")))?;
    let item_id = env.item_id();
    if item_id != *key {
        return Err(corrupt(
            t,
            format!("item {key}: payload hashes to {item_id}"),
        ));
    }
    let advisory = wire::decode_payload(&env.payload)
        .map_err(|e| corrupt(t, format!("item {key}: payload does not decode: {e}")))?;
    Ok(StoredItem {
        item_id,
        envelope: env,
        advisory,
        received_ms: rec.received_ms,
        source: rec.source,
    })
}

fn encode_equivocation(e: &Equivocation) -> Vec<u8> {
    pb::EquivocationRecord {
        origin: e.origin.clone(),
        advisory_id: e.advisory_id.clone(),
        revision: e.revision,
        item_ids: e.item_ids.iter().map(|i| i.0.to_vec()).collect(),
        chosen: e.chosen.0.to_vec(),
        detected_ms: e.detected_ms,
    }
    .encode_to_vec()
}

fn decode_equivocation(bytes: &[u8]) -> Result<Equivocation, StoreError> {
    let t = Tree::Equivocations;
    let r = pb::EquivocationRecord::decode(bytes)
        .map_err(|e| corrupt(t, format!("not an EquivocationRecord: {e}")))?;
    let item_ids = r
        .item_ids
        .iter()
        .map(|b| item_of(b, t))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Equivocation {
        origin: r.origin,
        advisory_id: r.advisory_id,
        revision: r.revision,
        item_ids,
        chosen: item_of(&r.chosen, t)?,
        detected_ms: r.detected_ms,
    })
}

/// Encodes an audit entry.
pub fn encode_audit(e: &AuditEntry) -> Vec<u8> {
    pb::AuditEntry {
        at_ms: e.at_ms,
        action: e.action.clone(),
        item_id: e.item_id.map(|i| i.to_hex()).unwrap_or_default(),
        subject: e.subject.clone(),
        actor: e.actor.clone(),
        detail: e.detail.clone(),
    }
    .encode_to_vec()
}

fn decode_audit(seq: &[u8], bytes: &[u8]) -> Result<AuditEntry, StoreError> {
    let t = Tree::Audit;
    let r = pb::AuditEntry::decode(bytes).map_err(|e| {
        corrupt(
            t,
            format!("entry {}: not an AuditEntry: {e}", hex::encode(seq)),
        )
    })?;
    let item_id = if r.item_id.is_empty() {
        None
    } else {
        Some(ItemId::from_hex(&r.item_id).ok_or_else(|| {
            corrupt(
                t,
                format!("entry {}: bad item id {:?}", hex::encode(seq), r.item_id),
            )
        })?)
    };
    Ok(AuditEntry {
        at_ms: r.at_ms,
        action: r.action,
        item_id,
        subject: r.subject,
        actor: r.actor,
        detail: r.detail,
    })
}

/// Audit key of a sequence number.
pub fn audit_key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

/// The sequence number the next audit entry gets (last key + 1, or 1 when empty).
pub fn next_audit_seq(kv: &(impl Kv + ?Sized)) -> Result<u64, StoreError> {
    let mut next = 1u64;
    kv.scan(Tree::Audit, &[], true, &mut |k, _| {
        let a: [u8; 8] = k
            .try_into()
            .map_err(|_| corrupt(Tree::Audit, format!("bad key {}", hex::encode(k))))?;
        next = u64::from_be_bytes(a).saturating_add(1);
        Ok(false)
    })?;
    Ok(next)
}

// ---------------------------------------------------------------------------------------------
// Writes: an overlay that plans puts, and the resulting write set
// ---------------------------------------------------------------------------------------------

/// Writes computed by one or more planned puts, to be applied atomically.
#[derive(Debug, Default)]
pub struct WriteSet {
    /// Per tree (by `Tree::index`): key -> new value, `None` = remove.
    pub trees: [BTreeMap<Vec<u8>, Option<Vec<u8>>>; TREE_COUNT],
    /// New CIDR counters, when they changed (apply to `CidrPresence` after the commit).
    pub cidr: Option<CidrCounts>,
}

impl WriteSet {
    /// Number of key writes.
    pub fn len(&self) -> usize {
        self.trees.iter().map(BTreeMap::len).sum()
    }

    /// No key write planned.
    pub fn is_empty(&self) -> bool {
        self.trees.iter().all(BTreeMap::is_empty)
    }
}

/// Plans puts over a backend's committed state plus the writes planned so far.
pub struct Overlay<'a, K: Kv + ?Sized> {
    base: &'a K,
    ws: WriteSet,
    counts: Counts,
    cidr: CidrCounts,
    counts_dirty: bool,
    cidr_dirty: bool,
    /// Indicator keys of items planned in this overlay (to unindex them without re-decoding).
    planned_keys: HashMap<ItemId, Vec<IndexEntry>>,
}

impl<K: Kv + ?Sized> std::fmt::Debug for Overlay<'_, K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Overlay")
            .field("writes", &self.ws.len())
            .finish_non_exhaustive()
    }
}

impl<'a, K: Kv + ?Sized> Overlay<'a, K> {
    /// A fresh overlay over `base` (reads the counters).
    pub fn new(base: &'a K) -> Result<Self, StoreError> {
        Ok(Self {
            base,
            ws: WriteSet::default(),
            counts: read_counts(base)?,
            cidr: read_cidr_counts(base)?,
            counts_dirty: false,
            cidr_dirty: false,
            planned_keys: HashMap::new(),
        })
    }

    /// Number of key writes planned so far.
    pub fn writes(&self) -> usize {
        self.ws.len()
    }

    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        match self.ws.trees[tree.index()].get(key) {
            Some(v) => Ok(v.clone()),
            None => self.base.get(tree, key),
        }
    }

    fn contains(&self, tree: Tree, key: &[u8]) -> Result<bool, StoreError> {
        match self.ws.trees[tree.index()].get(key) {
            Some(v) => Ok(v.is_some()),
            None => self.base.contains(tree, key),
        }
    }

    /// Keys under `prefix`, merging committed keys with planned writes.
    fn keys_with_prefix(&self, tree: Tree, prefix: &[u8]) -> Result<BTreeSet<Vec<u8>>, StoreError> {
        let mut keys = BTreeSet::new();
        self.base.scan(tree, prefix, false, &mut |k, _| {
            keys.insert(k.to_vec());
            Ok(true)
        })?;
        for (k, v) in self.ws.trees[tree.index()].range(prefix.to_vec()..) {
            if !k.starts_with(prefix) {
                break;
            }
            if v.is_some() {
                keys.insert(k.clone());
            } else {
                keys.remove(k);
            }
        }
        Ok(keys)
    }

    fn put(&mut self, tree: Tree, key: Vec<u8>, value: Vec<u8>) {
        self.ws.trees[tree.index()].insert(key, Some(value));
    }

    /// Adds audit entry `seq` to the write set (the backend allocates the sequence number).
    pub fn append_audit(&mut self, seq: u64, entry: &AuditEntry) {
        self.put(Tree::Audit, audit_key(seq).to_vec(), encode_audit(entry));
    }

    fn del(&mut self, tree: Tree, key: Vec<u8>) {
        self.ws.trees[tree.index()].insert(key, None);
    }

    fn index_add(&mut self, keys: &[IndexEntry]) {
        for (k, cidr) in keys {
            self.put(Tree::Indicators, k.clone(), Vec::new());
            if let Some((v6, plen)) = cidr {
                *self.cidr.slot(*v6, *plen) += 1;
                self.cidr_dirty = true;
            }
        }
        let n = keys.iter().filter(|(k, _)| is_indicator_key(k)).count();
        self.counts.indicators += n as u64;
    }

    fn index_remove(&mut self, keys: &[IndexEntry]) {
        for (k, cidr) in keys {
            self.del(Tree::Indicators, k.clone());
            if let Some((v6, plen)) = cidr {
                let s = self.cidr.slot(*v6, *plen);
                *s = s.saturating_sub(1);
                self.cidr_dirty = true;
            }
        }
        let n = keys.iter().filter(|(k, _)| is_indicator_key(k)).count();
        self.counts.indicators = self.counts.indicators.saturating_sub(n as u64);
    }

    /// Indicator keys of a stored (or planned) item.
    fn keys_of(&self, item: &ItemId) -> Result<Vec<IndexEntry>, StoreError> {
        if let Some(k) = self.planned_keys.get(item) {
            return Ok(k.clone());
        }
        let bytes = self.get(Tree::Envelopes, &item.0)?.ok_or_else(|| {
            corrupt(
                Tree::Latest,
                format!("latest names item {item}, which is not in envelopes"),
            )
        })?;
        let stored = decode_stored(item, &bytes)?;
        Ok(indicator_keys(item, &stored.advisory))
    }

    /// Plans one put: the whole rule set of the store lives here.
    pub fn put_item(
        &mut self,
        item: &Verified<Advisory>,
        source: &str,
        now_ms: i64,
    ) -> Result<PutOutcome, StoreError> {
        let id = item.item_id();
        if self.contains(Tree::Envelopes, &id.0)? {
            return Ok(PutOutcome::Duplicate);
        }
        let adv = item.value();
        let ak = akey(&adv.origin, &adv.id);

        let current = self
            .get(Tree::Latest, &ak)?
            .map(|b| LatestRec::decode(&b))
            .transpose()?;

        // Equivocation: other items with the same (origin, id, revision). An active latest has
        // the highest stored revision, so there can be none above it (no history read needed);
        // a withdrawn latest may have later revisions stored as history (see `outranks`).
        let rk = rev_key(&ak, adv.revision);
        let siblings = match current {
            Some(c) if adv.revision <= c.revision || c.withdrawn => {
                self.keys_with_prefix(Tree::History, &rk)?
            }
            _ => BTreeSet::new(),
        };
        let equivocation = !siblings.is_empty();
        if equivocation {
            let mut ids = siblings
                .iter()
                .map(|k| item_of(&k[rk.len()..], Tree::History))
                .collect::<Result<BTreeSet<_>, _>>()?;
            ids.insert(id);
            let detected_ms = match self.get(Tree::Equivocations, &rk)? {
                Some(b) => decode_equivocation(&b)?.detected_ms,
                None => {
                    self.counts.equivocations += 1;
                    now_ms
                }
            };
            let item_ids: Vec<ItemId> = ids.into_iter().collect();
            let rec = Equivocation {
                origin: adv.origin.clone(),
                advisory_id: adv.id.clone(),
                revision: adv.revision,
                chosen: item_ids[0],
                item_ids,
                detected_ms,
            };
            self.put(Tree::Equivocations, rk.clone(), encode_equivocation(&rec));
        }

        // Supersession: withdrawal is forever, then highest revision, then lowest item id.
        let becomes = current.is_none_or(|c| {
            outranks(
                (adv.withdrawn, adv.revision, &id),
                (c.withdrawn, c.revision, &c.item),
            )
        });
        let new_keys = indicator_keys(&id, adv);
        if becomes {
            match current {
                Some(c) => {
                    self.del(Tree::ByModified, by_modified_key(c.modified_ms, &ak));
                    if c.withdrawn {
                        self.counts.withdrawn = self.counts.withdrawn.saturating_sub(1);
                        self.del(Tree::Tombstones, ak.clone());
                    } else {
                        let old = self.keys_of(&c.item)?;
                        self.index_remove(&old);
                    }
                }
                None => self.counts.advisories += 1,
            }
            let rec = LatestRec::of(id, adv);
            self.put(
                Tree::ByModified,
                by_modified_key(rec.modified_ms, &ak),
                rec.by_modified_value(),
            );
            self.put(Tree::Latest, ak.clone(), rec.encode());
            if adv.withdrawn {
                self.counts.withdrawn += 1;
                self.put(Tree::Tombstones, ak.clone(), id.0.to_vec());
            } else {
                self.index_add(&new_keys);
            }
        }
        self.planned_keys.insert(id, new_keys);
        self.put(
            Tree::Envelopes,
            id.0.to_vec(),
            encode_stored(item.envelope(), now_ms, source),
        );
        self.put(
            Tree::History,
            history_key(&ak, adv.revision, &id),
            Vec::new(),
        );
        self.counts.items += 1;
        self.counts_dirty = true;
        Ok(PutOutcome::Stored {
            became_latest: becomes,
            replaced: if becomes {
                current.map(|c| c.item)
            } else {
                None
            },
            equivocation,
        })
    }

    /// Plans the removal of one item (see `Store::drop_items`): its envelope, history key and
    /// equivocation evidence; when it is the latest of its advisory, the latest is recomputed
    /// from the remaining revisions by `outranks` (or the advisory removed when none remains).
    /// `None` when the item is not held.
    pub fn drop_item(&mut self, id: &ItemId) -> Result<Option<DroppedItem>, StoreError> {
        let Some(bytes) = self.get(Tree::Envelopes, &id.0)? else {
            return Ok(None);
        };
        let stored = decode_stored(id, &bytes)?;
        let adv = &stored.advisory;
        let ak = akey(&adv.origin, &adv.id);
        self.del(Tree::Envelopes, id.0.to_vec());
        self.del(Tree::History, history_key(&ak, adv.revision, id));
        self.planned_keys.remove(id);
        self.counts.items = self.counts.items.saturating_sub(1);
        self.counts_dirty = true;

        // Equivocation evidence names only items still held.
        let rk = rev_key(&ak, adv.revision);
        if let Some(b) = self.get(Tree::Equivocations, &rk)? {
            let mut e = decode_equivocation(&b)?;
            e.item_ids.retain(|i| i != id);
            match e.item_ids.first() {
                Some(first) if e.item_ids.len() >= 2 => {
                    e.chosen = *first;
                    self.put(Tree::Equivocations, rk, encode_equivocation(&e));
                }
                _ => {
                    self.del(Tree::Equivocations, rk);
                    self.counts.equivocations = self.counts.equivocations.saturating_sub(1);
                }
            }
        }

        let current = self
            .get(Tree::Latest, &ak)?
            .map(|b| LatestRec::decode(&b))
            .transpose()?;
        let was_latest = current.is_some_and(|c| c.item == *id);
        let mut latest_now = current.map(|c| c.item);
        if let Some(c) = current.filter(|_| was_latest) {
            self.del(Tree::ByModified, by_modified_key(c.modified_ms, &ak));
            if c.withdrawn {
                self.counts.withdrawn = self.counts.withdrawn.saturating_sub(1);
                self.del(Tree::Tombstones, ak.clone());
            } else {
                self.index_remove(&indicator_keys(id, adv));
            }
            // The best remaining revision, by the rank `put` uses.
            let mut best: Option<(LatestRec, Advisory)> = None;
            for k in self.keys_with_prefix(Tree::History, &ak)? {
                let rest = &k[ak.len()..];
                if rest.len() != 40 {
                    return Err(corrupt(
                        Tree::History,
                        format!("bad key {}", hex::encode(&k)),
                    ));
                }
                let cand = item_of(&rest[8..], Tree::History)?;
                let b = self.get(Tree::Envelopes, &cand.0)?.ok_or_else(|| {
                    corrupt(
                        Tree::History,
                        format!("refers to item {cand}, which is not in envelopes"),
                    )
                })?;
                let a = decode_stored(&cand, &b)?.advisory;
                let rec = LatestRec::of(cand, &a);
                let better = best.as_ref().is_none_or(|(r, _)| {
                    outranks(
                        (rec.withdrawn, rec.revision, &rec.item),
                        (r.withdrawn, r.revision, &r.item),
                    )
                });
                if better {
                    best = Some((rec, a));
                }
            }
            match best {
                None => {
                    self.del(Tree::Latest, ak.clone());
                    self.counts.advisories = self.counts.advisories.saturating_sub(1);
                    latest_now = None;
                }
                Some((rec, a)) => {
                    self.put(
                        Tree::ByModified,
                        by_modified_key(rec.modified_ms, &ak),
                        rec.by_modified_value(),
                    );
                    self.put(Tree::Latest, ak.clone(), rec.encode());
                    if rec.withdrawn {
                        self.counts.withdrawn += 1;
                        self.put(Tree::Tombstones, ak.clone(), rec.item.0.to_vec());
                    } else {
                        self.index_add(&indicator_keys(&rec.item, &a));
                    }
                    latest_now = Some(rec.item);
                }
            }
        }
        Ok(Some(DroppedItem {
            item_id: *id,
            origin: adv.origin.clone(),
            advisory_id: adv.id.clone(),
            revision: adv.revision,
            modified_ms: adv.modified_ms,
            withdrawn: adv.withdrawn,
            key_id: stored.envelope.key_id.clone(),
            was_latest,
            latest_now,
        }))
    }

    /// The write set of every put planned (counters included).
    pub fn finish(mut self) -> WriteSet {
        if self.counts_dirty {
            let c = encode_counts(&self.counts);
            self.put(Tree::Meta, META_COUNTS.to_vec(), c);
        }
        if self.cidr_dirty {
            let v4 = encode_u64s(&self.cidr.v4);
            let v6 = encode_u64s(&self.cidr.v6);
            self.put(Tree::Meta, META_CIDR4.to_vec(), v4);
            self.put(Tree::Meta, META_CIDR6.to_vec(), v6);
            self.ws.cidr = Some(self.cidr.clone());
        }
        self.ws
    }
}

// ---------------------------------------------------------------------------------------------
// Queries
// ---------------------------------------------------------------------------------------------

/// An item by id.
pub fn get(kv: &(impl Kv + ?Sized), id: &ItemId) -> Result<Option<StoredItem>, StoreError> {
    kv.get(Tree::Envelopes, &id.0)?
        .map(|b| decode_stored(id, &b))
        .transpose()
}

fn must_get(kv: &(impl Kv + ?Sized), id: &ItemId, from: Tree) -> Result<StoredItem, StoreError> {
    get(kv, id)?.ok_or_else(|| {
        corrupt(
            from,
            format!("refers to item {id}, which is not in envelopes"),
        )
    })
}

/// The latest revision of an advisory.
pub fn latest(
    kv: &(impl Kv + ?Sized),
    origin: &str,
    advisory_id: &str,
) -> Result<Option<StoredItem>, StoreError> {
    let Some(b) = kv.get(Tree::Latest, &akey(origin, advisory_id))? else {
        return Ok(None);
    };
    let rec = LatestRec::decode(&b)?;
    must_get(kv, &rec.item, Tree::Latest).map(Some)
}

/// Every stored item of an advisory, by (revision, item id).
pub fn history(
    kv: &(impl Kv + ?Sized),
    origin: &str,
    advisory_id: &str,
) -> Result<Vec<StoredItem>, StoreError> {
    let ak = akey(origin, advisory_id);
    let mut ids = Vec::new();
    kv.scan(Tree::History, &ak, false, &mut |k, _| {
        let rest = &k[ak.len()..];
        if rest.len() != 40 {
            return Err(corrupt(
                Tree::History,
                format!("bad key {}", hex::encode(k)),
            ));
        }
        ids.push(item_of(&rest[8..], Tree::History)?);
        Ok(true)
    })?;
    ids.iter().map(|i| must_get(kv, i, Tree::History)).collect()
}

/// Latest revisions matching `filter`, in `filter.order` (newest `modified_ms` first, ties by
/// origin, id; or by (origin, id)), resuming after `filter.after` when set.
pub fn list(
    kv: &(impl Kv + ?Sized),
    filter: &ListFilter,
) -> Result<(Vec<StoredItem>, bool), StoreError> {
    let mut origin_prefix = Vec::new();
    if let Some(o) = filter.origin.as_deref() {
        esc(o, &mut origin_prefix);
    }
    let text = filter.text.as_deref().map(str::to_lowercase);
    let mut out = Vec::new();
    let mut truncated = false;
    // One candidate: (modified, withdrawn, tlp code, item id bytes) of an advisory whose key
    // (akey) is `ak`. Returns whether to go on.
    let mut consider = |t: Tree,
                        modified: i64,
                        withdrawn: bool,
                        tlp: u8,
                        ak: &[u8],
                        item: &[u8]|
     -> Result<Option<bool>, StoreError> {
        if filter.since_ms.is_some_and(|s| modified < s) {
            // In newest-first order nothing older can follow; the caller stops there.
            return Ok(None);
        }
        if withdrawn && !filter.include_withdrawn {
            return Ok(Some(true));
        }
        if filter
            .tlp
            .is_some_and(|f| tlp_of_code(tlp, t).ok() != Some(f))
        {
            return Ok(Some(true));
        }
        if !ak.starts_with(&origin_prefix) {
            return Ok(Some(true));
        }
        let id = item_of(item, t)?;
        let item = must_get(kv, &id, t)?;
        // Roster items are not advisories (`tanoa roster show`, `tanoa show <id>` show them).
        if crate::roster::is_carrier_id(&item.advisory.id) {
            return Ok(Some(true));
        }
        if let Some(text) = &text
            && !item.advisory.title.to_lowercase().contains(text.as_str())
        {
            return Ok(Some(true));
        }
        if filter.limit > 0 && out.len() == filter.limit {
            truncated = true;
            return Ok(Some(false));
        }
        out.push(item);
        Ok(Some(true))
    };
    match filter.order {
        ListOrder::NewestFirst => {
            let t = Tree::ByModified;
            let mut visit = |k: &[u8], v: &[u8]| {
                if k.len() < 8 || v.len() != 34 {
                    return Err(corrupt(t, format!("bad entry {}", hex::encode(k))));
                }
                let mut m = [0u8; 8];
                m.copy_from_slice(&k[..8]);
                let modified = undesc_ms(m);
                Ok(consider(t, modified, v[32] != 0, v[33], &k[8..], &v[..32])?.unwrap_or(false))
            };
            match &filter.after {
                Some(after) => kv.scan_after(t, &[], after, &mut visit)?,
                None => kv.scan(t, &[], false, &mut visit)?,
            }
        }
        ListOrder::AdvisoryKey => {
            let t = Tree::Latest;
            let mut visit = |k: &[u8], v: &[u8]| {
                let rec = LatestRec::decode(v)?;
                let r = consider(t, rec.modified_ms, rec.withdrawn, v[49], k, &v[..32])?;
                Ok(r.unwrap_or(true))
            };
            match &filter.after {
                Some(after) => kv.scan_after(t, &origin_prefix, after, &mut visit)?,
                None => kv.scan(t, &origin_prefix, false, &mut visit)?,
            }
        }
    }
    Ok((out, truncated))
}

/// The resume cursor of `item` in `order` (its key in the tree that order walks): give it as
/// `ListFilter::after` to list what follows it.
pub fn list_cursor(order: ListOrder, item: &StoredItem) -> Vec<u8> {
    let ak = akey(&item.advisory.origin, &item.advisory.id);
    match order {
        ListOrder::NewestFirst => by_modified_key(item.advisory.modified_ms, &ak),
        ListOrder::AdvisoryKey => ak,
    }
}

fn collect_matches(
    kv: &(impl Kv + ?Sized),
    prefix: &[u8],
    matched: MatchKind,
    out: &mut Vec<IndicatorMatch>,
) -> Result<(), StoreError> {
    let t = Tree::Indicators;
    kv.scan(t, prefix, false, &mut |k, _| {
        let rest = &k[prefix.len()..];
        if rest.len() != 36 {
            return Err(corrupt(t, format!("bad key {}", hex::encode(k))));
        }
        let mut n = [0u8; 4];
        n.copy_from_slice(&rest[32..]);
        out.push(IndicatorMatch {
            item_id: item_of(&rest[..32], t)?,
            index: u32::from_be_bytes(n),
            matched,
        });
        Ok(true)
    })
}

/// Indicator index lookup.
pub fn search(
    kv: &(impl Kv + ?Sized),
    presence: &CidrPresence,
    query: &IndicatorQuery,
) -> Result<Vec<IndicatorMatch>, StoreError> {
    let mut out = Vec::new();
    match query {
        IndicatorQuery::Exact(kind, value) => {
            let value =
                crate::model::normalize_indicator(*kind, value).unwrap_or_else(|_| value.clone());
            let (prefix, _) = indicator_prefix(*kind, &value);
            collect_matches(kv, &prefix, MatchKind::Exact, &mut out)?;
            if *kind == IndicatorKind::Cve {
                let prefix = list_prefix(TAG_CVE_LIST, &cve_list_value(&value));
                collect_matches(kv, &prefix, MatchKind::CveList, &mut out)?;
            }
        }
        IndicatorQuery::Actor(name) => {
            let prefix = list_prefix(TAG_ACTOR_LIST, &actor_list_value(name));
            collect_matches(kv, &prefix, MatchKind::ActorList, &mut out)?;
        }
        IndicatorQuery::Ip(addr) => {
            let kind = match addr {
                IpAddr::V4(_) => IndicatorKind::Ipv4,
                IpAddr::V6(_) => IndicatorKind::Ipv6,
            };
            let (prefix, _) = indicator_prefix(kind, &addr.to_string());
            collect_matches(kv, &prefix, MatchKind::Exact, &mut out)?;
            let (v6, max) = match addr {
                IpAddr::V4(_) => (false, 32u8),
                IpAddr::V6(_) => (true, 128u8),
            };
            for plen in (0..=max).rev() {
                if !presence.has(v6, plen) {
                    continue;
                }
                let Ok(net) = ipnet::IpNet::new(*addr, plen) else {
                    continue;
                };
                let (prefix, _) = cidr_prefix(&net.trunc());
                collect_matches(kv, &prefix, MatchKind::Cidr, &mut out)?;
            }
        }
    }
    Ok(out)
}

/// Equivocation evidence of an advisory, by revision.
pub fn equivocations(
    kv: &(impl Kv + ?Sized),
    origin: &str,
    advisory_id: &str,
) -> Result<Vec<Equivocation>, StoreError> {
    let mut out = Vec::new();
    kv.scan(
        Tree::Equivocations,
        &akey(origin, advisory_id),
        false,
        &mut |_, v| {
            out.push(decode_equivocation(v)?);
            Ok(true)
        },
    )?;
    Ok(out)
}

/// Origins with equivocation evidence, by origin: how many (id, revision) pairs each signed
/// more than once, and when the latest was first detected. Reads the `equivocations` tree,
/// which holds only evidence (small: one record per equivocating revision).
pub fn equivocating_origins(
    kv: &(impl Kv + ?Sized),
) -> Result<Vec<OriginEquivocations>, StoreError> {
    let t = Tree::Equivocations;
    let mut out: Vec<OriginEquivocations> = Vec::new();
    kv.scan(t, &[], false, &mut |k, v| {
        let (origin, _) =
            unesc(k).ok_or_else(|| corrupt(t, format!("bad key {}", hex::encode(k))))?;
        let detected = decode_equivocation(v)?.detected_ms;
        match out.last_mut() {
            Some(last) if last.origin == origin => {
                last.revisions += 1;
                last.last_detected_ms = last.last_detected_ms.max(detected);
            }
            _ => out.push(OriginEquivocations {
                origin,
                revisions: 1,
                last_detected_ms: detected,
            }),
        }
        Ok(true)
    })?;
    Ok(out)
}

/// The newest `limit` audit entries, newest first.
pub fn audit(kv: &(impl Kv + ?Sized), limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
    let mut out = Vec::new();
    if limit == 0 {
        return Ok(out);
    }
    kv.scan(Tree::Audit, &[], true, &mut |k, v| {
        out.push(decode_audit(k, v)?);
        Ok(out.len() < limit)
    })?;
    Ok(out)
}

/// The latest revision of every advisory (of `origin` only, when given), in (origin, id)
/// order, one at a time.
pub fn scan_latest(
    kv: &(impl Kv + ?Sized),
    origin: Option<&str>,
    include_withdrawn: bool,
    f: &mut dyn FnMut(StoredItem) -> Result<bool, StoreError>,
) -> Result<(), StoreError> {
    let t = Tree::Latest;
    let mut prefix = Vec::new();
    if let Some(o) = origin {
        esc(o, &mut prefix);
    }
    kv.scan(t, &prefix, false, &mut |_, v| {
        let rec = LatestRec::decode(v)?;
        if rec.withdrawn && !include_withdrawn {
            return Ok(true);
        }
        f(must_get(kv, &rec.item, t)?)
    })
}

/// The latest revision of every advisory of `origin` whose id starts with `id_prefix`, in id
/// order: one range of the `latest` tree (the key is `esc(origin) ++ esc(id)`, and `esc(id)`
/// starts with the id's escaped bytes), so the cost is that of the matching advisories only.
pub fn scan_latest_id_prefix(
    kv: &(impl Kv + ?Sized),
    origin: &str,
    id_prefix: &str,
    include_withdrawn: bool,
    f: &mut dyn FnMut(StoredItem) -> Result<bool, StoreError>,
) -> Result<(), StoreError> {
    let t = Tree::Latest;
    let mut prefix = Vec::new();
    esc(origin, &mut prefix);
    esc(id_prefix, &mut prefix);
    // Drop the terminator: a prefix of the id, not the whole id.
    prefix.truncate(prefix.len() - 2);
    kv.scan(t, &prefix, false, &mut |_, v| {
        let rec = LatestRec::decode(v)?;
        if rec.withdrawn && !include_withdrawn {
            return Ok(true);
        }
        f(must_get(kv, &rec.item, t)?)
    })
}

/// Every stored item id, ascending.
pub fn item_ids(kv: &(impl Kv + ?Sized)) -> Result<Vec<ItemId>, StoreError> {
    let mut out = Vec::new();
    kv.scan_keys(Tree::Envelopes, &[], &mut |k| {
        out.push(item_of(k, Tree::Envelopes)?);
        Ok(true)
    })?;
    Ok(out)
}

/// Record builders for tests of other modules of the store (corruption scenarios).
#[cfg(any(test, feature = "conformance"))]
pub mod tests_support {
    use super::*;

    /// The `envelopes` record of an item, as `put` writes it.
    pub fn stored_record(item: &Verified<Advisory>) -> Vec<u8> {
        encode_stored(item.envelope(), 0, "local")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn advisory_keys_sort_like_tuples_and_round_trip() {
        let pairs = [
            ("a", "b"),
            ("a", "b\0c"),
            ("a", "bc"),
            ("a\0", ""),
            ("ab", ""),
            ("ws-cert", "ws-2026-0001"),
        ];
        let mut sorted = pairs.to_vec();
        sorted.sort();
        let mut by_key = pairs.to_vec();
        by_key.sort_by_key(|(o, i)| akey(o, i));
        assert_eq!(sorted, by_key);
        for (o, i) in pairs {
            assert_eq!(
                parse_akey(&akey(o, i), Tree::Latest).unwrap(),
                (o.to_string(), i.to_string())
            );
        }
        // A prefix scan of one advisory never matches another one.
        assert!(!akey("a", "bc").starts_with(&akey("a", "b")));
    }

    #[test]
    fn descending_time_keys_order_newest_first() {
        let times = [i64::MIN, -5, 0, 1, 1_700_000_000_000, i64::MAX];
        for w in times.windows(2) {
            assert!(desc_ms(w[0]) > desc_ms(w[1]), "{} vs {}", w[0], w[1]);
        }
        for t in times {
            assert_eq!(undesc_ms(desc_ms(t)), t);
        }
    }

    #[test]
    fn latest_record_round_trips_and_rejects_garbage() {
        let r = LatestRec {
            item: ItemId([9; 32]),
            revision: 7,
            modified_ms: 1_700_000_000_123,
            withdrawn: true,
            tlp: Tlp::Amber,
        };
        assert_eq!(LatestRec::decode(&r.encode()).unwrap(), r);
        assert!(matches!(
            LatestRec::decode(b"garbage"),
            Err(StoreError::Corrupt { tree: "latest", .. })
        ));
    }

    /// A test backend that counts scans.
    #[derive(Default)]
    struct Counting {
        trees: [BTreeMap<Vec<u8>, Vec<u8>>; TREE_COUNT],
        scans: std::cell::Cell<usize>,
    }

    impl Kv for Counting {
        fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
            Ok(self.trees[tree.index()].get(key).cloned())
        }

        fn scan(
            &self,
            tree: Tree,
            prefix: &[u8],
            reverse: bool,
            f: &mut Visit<'_>,
        ) -> Result<(), StoreError> {
            assert!(!reverse);
            self.scans.set(self.scans.get() + 1);
            for (k, v) in self.trees[tree.index()].range(prefix.to_vec()..) {
                if !k.starts_with(prefix) || !f(k, v)? {
                    break;
                }
            }
            Ok(())
        }
    }

    impl Counting {
        fn put(&mut self, item: &Verified<Advisory>) -> CidrPresence {
            let mut ov = Overlay::new(&*self).unwrap();
            ov.put_item(item, "local", 1).unwrap();
            let ws = ov.finish();
            for (t, writes) in ws.trees.into_iter().enumerate() {
                for (k, v) in writes {
                    match v {
                        Some(v) => self.trees[t].insert(k, v),
                        None => self.trees[t].remove(&k),
                    };
                }
            }
            CidrPresence::new(&read_cidr_counts(&*self).unwrap())
        }
    }

    #[test]
    fn address_lookups_read_only_prefix_lengths_in_use() {
        use crate::store::conformance::{WS, advisory, indicator, signed};
        let mut kv = Counting::default();
        let mut a = advisory(WS, "ws-2026-0001", 1);
        a.indicators = vec![indicator(IndicatorKind::Cidr, "198.51.100.0/24")];
        let presence = kv.put(&signed(a));
        let q = IndicatorQuery::Ip("198.51.100.9".parse().unwrap());
        kv.scans.set(0);
        assert_eq!(search(&kv, &presence, &q).unwrap().len(), 1);
        assert_eq!(kv.scans.get(), 2, "exact ipv4 + the one /24 prefix");

        // Every IPv6 prefix length in use (within 2001:db8::/32): one lookup per length, at
        // most 1 + 129, never a scan of all CIDRs.
        let mut b = advisory(WS, "ws-2026-0002", 1);
        b.indicators = (32..=128u8)
            .map(|p| {
                let net = ipnet::IpNet::new("2001:db8::1".parse().unwrap(), p).unwrap();
                indicator(IndicatorKind::Cidr, &net.trunc().to_string())
            })
            .collect();
        let presence = kv.put(&signed(b));
        let q = IndicatorQuery::Ip("2001:db8::1".parse().unwrap());
        kv.scans.set(0);
        let hits = search(&kv, &presence, &q).unwrap();
        assert_eq!(hits.len(), 97);
        assert!(
            hits.windows(2).all(|w| w[0].index > w[1].index),
            "most specific first"
        );
        assert_eq!(kv.scans.get(), 1 + 97);
    }

    #[test]
    fn cidr_values_index_by_network_and_prefix() {
        let (k, c) = indicator_prefix(IndicatorKind::Cidr, "198.51.100.0/24");
        assert_eq!(k, vec![TAG_CIDR4, 198, 51, 100, 0, 24]);
        assert_eq!(c, Some((false, 24)));
        let (k6, c6) = indicator_prefix(IndicatorKind::Cidr, "2001:db8::/32");
        assert_eq!(k6.len(), 18);
        assert_eq!(c6, Some((true, 32)));
        let (g, none) = indicator_prefix(IndicatorKind::Domain, "c2.apt40.example");
        assert_eq!(none, None);
        assert_eq!(
            g[0],
            wire::kind_to_proto(IndicatorKind::Domain) as i32 as u8
        );
    }
}
