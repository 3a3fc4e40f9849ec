//! Storage of verified envelopes and their indexes, behind the `Store` trait.
//!
//! Owns: persistence of envelopes, the latest revision per (origin, advisory id), the active
//! indicator index, withdrawal tombstones, equivocation evidence and the audit log; the
//! supersession and equivocation rules (a withdrawal tombstone outranks every revision that is
//! not withdrawn, so withdrawal is forever; otherwise the highest revision wins; same revision
//! with different payloads is equivocation, resolved to the lowest item id); dropping items
//! (`drop_items`: what a roster revocation or removal voids), after which the store is what it
//! would be had they never arrived; durability (`sync`).
//! Must never: accept anything but a `Verified<Advisory>`, decide TLP policy, or talk to the
//! network. Implementations: `MemoryStore` here (tests, simulator) and the daemon's
//! durable `SledStore`; both pass the same `conformance` suite. Roster items (advisory ids with
//! the `roster::CARRIER_PREFIX`) are stored like any item and found by id, history and
//! `scan_latest`, but `list` and `search` never return them: the one place that keeps them off
//! every operator surface built on those queries (`tanoa list`, `search`, the JSON, STIX and
//! MISP exports); the two surfaces that scan the store (the blocklist export and the TAXII
//! collections) skip them with the same `roster::is_carrier_id`. Both run the same rules and
//! record layouts (`engine`, which documents every tree and key) over their own ordered trees.

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
pub mod engine;
pub mod memory;

use std::net::IpAddr;

use crate::envelope::{Envelope, ItemId, Verified};
use crate::model::{Advisory, IndicatorKind, Tlp};

pub use memory::MemoryStore;

/// Storage failure; names the tree or record concerned.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend failed (I/O, sled).
    #[error("store backend: {0}")]
    Backend(String),
    /// A stored record could not be decoded (disk corruption or a format bug).
    #[error("corrupt record in tree {tree}: {detail}")]
    Corrupt {
        /// Tree name.
        tree: &'static str,
        /// What is wrong.
        detail: String,
    },
}

/// One stored envelope with its decoded advisory and local bookkeeping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredItem {
    /// SHA-256 of the payload.
    pub item_id: ItemId,
    /// Envelope as verified.
    pub envelope: Envelope,
    /// Decoded payload.
    pub advisory: Advisory,
    /// Unix ms when first stored here.
    pub received_ms: i64,
    /// "local", "import", or a peer member id.
    pub source: String,
}

/// What a `put` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutOutcome {
    /// The exact item was already stored; nothing changed.
    Duplicate,
    /// Stored.
    Stored {
        /// The item is now the latest revision of its advisory.
        became_latest: bool,
        /// The previous latest item it replaced, if any.
        replaced: Option<ItemId>,
        /// Another payload with the same (origin, id, revision) exists: evidence recorded.
        equivocation: bool,
    },
}

/// One item `drop_items` removed, for the caller's audit record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DroppedItem {
    /// The item removed.
    pub item_id: ItemId,
    /// Its advisory's origin.
    pub origin: String,
    /// Its advisory id.
    pub advisory_id: String,
    /// Its revision.
    pub revision: u64,
    /// Its `modified_ms`.
    pub modified_ms: i64,
    /// Whether it was a withdrawal.
    pub withdrawn: bool,
    /// The key that signed it.
    pub key_id: String,
    /// It was the latest revision of its advisory (the latest was recomputed).
    pub was_latest: bool,
    /// The advisory's latest revision after the drop (`None`: nothing of it remains).
    pub latest_now: Option<ItemId>,
}

/// Filters of `list`. Empty/`None` means "any".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListFilter {
    /// Only this origin.
    pub origin: Option<String>,
    /// Only this TLP.
    pub tlp: Option<Tlp>,
    /// Only latest revisions with `modified_ms >= since_ms`.
    pub since_ms: Option<i64>,
    /// Only titles containing this (case-insensitive).
    pub text: Option<String>,
    /// Include withdrawn advisories.
    pub include_withdrawn: bool,
    /// At most this many (0 = no limit).
    pub limit: usize,
    /// The order to walk.
    pub order: ListOrder,
    /// Resume strictly after this cursor (`list_cursor` of the last item of the previous page,
    /// in the same order); `None` = from the start.
    pub after: Option<Vec<u8>>,
}

/// Order of `list`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ListOrder {
    /// Newest `modified_ms` first, ties by (origin, advisory id). For browsing: an advisory
    /// revised while pages are read moves to the front, before the cursor, so paging may miss
    /// its new revision.
    #[default]
    NewestFirst,
    /// By (origin, advisory id). A revision never moves an advisory in this order, so paging
    /// with `after` returns every advisory held during the whole paging exactly once (in the
    /// revision latest when its page was read); one created meanwhile appears iff its key
    /// follows the cursor. Exports page in this order.
    AdvisoryKey,
}

/// The cursor to resume a `list` in `order` after `item` (see `ListFilter::after`).
pub fn list_cursor(order: ListOrder, item: &StoredItem) -> Vec<u8> {
    engine::list_cursor(order, item)
}

/// What to look up in the indicator index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndicatorQuery {
    /// Exact match of a normalized value of a kind; for `Cve`, the advisories' `cves` lists too.
    Exact(IndicatorKind, String),
    /// An address: exact ipv4/ipv6 indicators equal to it, plus every CIDR indicator containing it.
    Ip(IpAddr),
    /// An actor name in the advisories' `actors` lists (case-insensitive, trimmed).
    Actor(String),
}

/// How an indicator matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchKind {
    /// Same kind, same normalized value.
    Exact,
    /// The queried address lies inside a CIDR indicator.
    Cidr,
    /// The queried CVE is in the advisory's `cves` list (`index` = position in that list).
    CveList,
    /// The queried actor is in the advisory's `actors` list (`index` = position in that list).
    ActorList,
}

/// One hit of the indicator index (only latest, non-withdrawn revisions are indexed; the
/// advisories' CVE and actor lists are indexed with their indicators).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndicatorMatch {
    /// Item holding the indicator.
    pub item_id: ItemId,
    /// Position of the indicator in `advisory.indicators`.
    pub index: u32,
    /// How it matched.
    pub matched: MatchKind,
}

/// Evidence of equivocation for one (origin, id, revision).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Equivocation {
    /// Origin.
    pub origin: String,
    /// Advisory id.
    pub advisory_id: String,
    /// Revision signed more than once.
    pub revision: u64,
    /// Every item id seen, ascending.
    pub item_ids: Vec<ItemId>,
    /// Chosen: the lowest.
    pub chosen: ItemId,
    /// Unix ms when first detected.
    pub detected_ms: i64,
}

/// Equivocation evidence summed per origin (what `status` and the metrics flag).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginEquivocations {
    /// The origin (a member whose key signed both payloads).
    pub origin: String,
    /// (advisory id, revision) pairs it signed with more than one payload, as held here.
    pub revisions: u64,
    /// Unix ms when the most recent of them was first detected here.
    pub last_detected_ms: i64,
}

/// One audit-log entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Unix ms.
    pub at_ms: i64,
    /// "publish", "withdraw", "import", "reject", "equivocation", …
    pub action: String,
    /// Item concerned, if any.
    pub item_id: Option<ItemId>,
    /// "origin/id" or empty.
    pub subject: String,
    /// "local", "operator", or a peer id.
    pub actor: String,
    /// Detail.
    pub detail: String,
}

/// Counters for status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Advisories (distinct origin/id), withdrawn included.
    pub advisories: u64,
    /// Of which the latest revision is a withdrawal.
    pub withdrawn: u64,
    /// Stored envelopes (all revisions and equivocating variants).
    pub items: u64,
    /// Active indicator index entries.
    pub indicators: u64,
    /// (origin, id, revision) triples with equivocation evidence.
    pub equivocations: u64,
}

/// Storage of verified advisories. All methods are blocking; async callers use
/// `spawn_blocking`. Implementations are internally synchronized.
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// Stores a verified item and updates every index atomically. Not durable until `sync`.
    fn put(
        &self,
        item: &Verified<Advisory>,
        source: &str,
        now_ms: i64,
    ) -> Result<PutOutcome, StoreError>;
    /// Stores several verified items, each exactly as `put` would (each item's index updates are
    /// atomic; the batch as a whole is not: on error, a prefix of the items may be stored).
    /// Returns one outcome per item, in order; a later item may be a `Duplicate` of an earlier
    /// one. Backends override it to amortize work (sled: one atomic batch per chunk of items).
    fn put_batch(
        &self,
        items: &[(&Verified<Advisory>, &str)],
        now_ms: i64,
    ) -> Result<Vec<PutOutcome>, StoreError> {
        items
            .iter()
            .map(|(item, source)| self.put(item, source, now_ms))
            .collect()
    }
    /// `put_batch`, plus the audit entries `audit` makes of each item's outcome (given its
    /// position in `items`), appended in item order. The entries of an item are written with it
    /// (backends that can: in the same atomic write), never before it; like `append_audit`,
    /// they are durable with the next `sync`.
    fn put_batch_audited(
        &self,
        items: &[(&Verified<Advisory>, &str)],
        now_ms: i64,
        audit: &dyn Fn(usize, &PutOutcome) -> Vec<AuditEntry>,
    ) -> Result<Vec<PutOutcome>, StoreError> {
        let outcomes = self.put_batch(items, now_ms)?;
        for (n, outcome) in outcomes.iter().enumerate() {
            for entry in audit(n, outcome) {
                self.append_audit(&entry)?;
            }
        }
        Ok(outcomes)
    }
    /// Removes the given items (any revision: latest, history, tombstone, equivocating
    /// variant) and everything that refers to them, as ONE atomic write; not durable until
    /// `sync`. Where a dropped item was the latest of its advisory, the latest (with its
    /// `by_modified`, tombstone, indicator, CVE and actor entries and the counters) is recomputed
    /// from the remaining revisions by the same rank `put` uses (a dropped withdrawal therefore
    /// makes the best remaining revision latest again); an advisory with nothing left is gone.
    /// Equivocation evidence keeps only the items still held (none left with fewer than two).
    /// The store is then exactly what it would be had the dropped items never been put (audit
    /// and `received_ms` aside), whatever the order items arrived in. Absent ids are skipped
    /// (idempotent). Returns what was removed, in the order given.
    fn drop_items(&self, ids: &[ItemId]) -> Result<Vec<DroppedItem>, StoreError> {
        self.drop_items_audited(ids, None)
    }
    /// `drop_items`, with the audit entry `audit` makes of each item actually dropped written
    /// in the same atomic write: a drop is never stored without its record, whatever happens
    /// before the next `sync`.
    fn drop_items_audited(
        &self,
        ids: &[ItemId],
        audit: Option<&dyn Fn(&DroppedItem) -> AuditEntry>,
    ) -> Result<Vec<DroppedItem>, StoreError>;
    /// Number of `drop_items` calls that removed something since this store was opened (kept
    /// in memory only). Readers that cache state derived from stored items (the TAXII index)
    /// rebuild it when this moves.
    fn drop_generation(&self) -> u64;
    /// Durability barrier: returns once every `put` that returned before this call is on stable
    /// storage (flush + fdatasync for sled). Concurrent callers share one sync (group commit).
    fn sync(&self) -> Result<(), StoreError>;
    /// An item by id (any revision).
    fn get(&self, id: &ItemId) -> Result<Option<StoredItem>, StoreError>;
    /// The latest revision of an advisory (after equivocation resolution); once any withdrawal
    /// of it is stored, the highest-ranked withdrawal (withdrawal is forever).
    fn latest(&self, origin: &str, advisory_id: &str) -> Result<Option<StoredItem>, StoreError>;
    /// Every stored item of an advisory, ordered by (revision, item id).
    fn history(&self, origin: &str, advisory_id: &str) -> Result<Vec<StoredItem>, StoreError>;
    /// Latest revisions matching the filter, in `filter.order` (by default newest `modified_ms`
    /// first, ties by origin, then advisory id), after `filter.after` when set; `bool` =
    /// truncated (more matched than `limit`: resume after the last item's `list_cursor`).
    /// Roster items are never listed.
    fn list(&self, filter: &ListFilter) -> Result<(Vec<StoredItem>, bool), StoreError>;
    /// Indicator index lookup (active indicators of latest, non-withdrawn revisions only).
    /// Exact matches come first, then CIDR matches from the most specific prefix; within a group
    /// by (item id, index). An `Exact` value is first normalized (`model::normalize_indicator`,
    /// falling back to the value as given). Roster items are never indexed.
    fn search(&self, query: &IndicatorQuery) -> Result<Vec<IndicatorMatch>, StoreError>;
    /// Equivocation evidence of an advisory, by revision.
    fn equivocations(
        &self,
        origin: &str,
        advisory_id: &str,
    ) -> Result<Vec<Equivocation>, StoreError>;
    /// Every origin with equivocation evidence here (two payloads held for one (origin, id,
    /// revision), whatever their TLP), by origin.
    fn equivocating_origins(&self) -> Result<Vec<OriginEquivocations>, StoreError>;
    /// Appends to the audit log (durable with the next `sync`).
    fn append_audit(&self, entry: &AuditEntry) -> Result<(), StoreError>;
    /// The newest `limit` audit entries, newest first.
    fn audit(&self, limit: usize) -> Result<Vec<AuditEntry>, StoreError>;
    /// Counters (O(1): maintained, not scanned).
    fn counts(&self) -> Result<Counts, StoreError>;
    /// Every stored item id, ascending.
    fn item_ids(&self) -> Result<Vec<ItemId>, StoreError>;
    /// Calls `f` with the latest revision of every advisory of `origin` (of every origin when
    /// `None`), in (origin, advisory id) order, skipping withdrawn ones unless
    /// `include_withdrawn`, until `f` returns `Ok(false)`. Items are read one at a time, so
    /// memory does not grow with the number of advisories (exports stream from it).
    fn scan_latest(
        &self,
        origin: Option<&str>,
        include_withdrawn: bool,
        f: &mut dyn FnMut(StoredItem) -> Result<bool, StoreError>,
    ) -> Result<(), StoreError>;
    /// `scan_latest` of `origin`'s advisories whose id starts with `id_prefix` only, at the cost
    /// of those advisories (one key range), never of the whole store.
    fn scan_latest_id_prefix(
        &self,
        origin: &str,
        id_prefix: &str,
        include_withdrawn: bool,
        f: &mut dyn FnMut(StoredItem) -> Result<bool, StoreError>,
    ) -> Result<(), StoreError>;
    /// Bytes used on disk (0 for memory).
    fn disk_bytes(&self) -> u64;
}
