//! The ordered index of object versions behind the collections.
//!
//! Owns: the table of object versions (one per (STIX id, version), whatever item first carried
//! it), and per collection the order (date_added, object id, version) → object version with the
//! index sequence number at which it entered, plus the versions of each object id. Entries are
//! only ever added, never moved or removed, so a position in the order plus a sequence number
//! (the snapshot) identify exactly what a paging session has returned and what it still must.
//! Must never: do I/O, read a clock, or hold anything but metadata and positions (the objects'
//! JSON lives in the cache and in the store).

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::Arc;

use serde_json::Value;

use super::Visibility;
use crate::envelope::ItemId;
use crate::model::Tlp;

/// Position of an object version in a collection: (date_added ms, object id, version µs).
pub(crate) type Key = (i64, Arc<str>, i64);

/// `version_us` key of objects without `modified` or `created` (immutable objects: their first
/// appearance is their only version).
const UNVERSIONED: i64 = i64::MIN;

/// Longest STIX id indexed.
pub(crate) const MAX_ID_LEN: usize = 256;

/// One object the converter produced, with what the index needs.
#[derive(Debug, Clone)]
pub(crate) struct ParsedObject {
    /// STIX id.
    pub id: Arc<str>,
    /// `modified` (else `created`) as written and in µs; `None` for objects without either.
    pub version: Option<(Arc<str>, i64)>,
    /// `spec_version` ("2.1" when absent).
    pub spec: Arc<str>,
    /// The object as compact JSON.
    pub json: Arc<str>,
}

/// Parses the converter's output. Objects without a usable `id`, or with a timestamp that does
/// not parse, are skipped and counted.
pub(crate) fn parse_objects(values: &[Value]) -> (Vec<ParsedObject>, usize) {
    let mut out = Vec::with_capacity(values.len());
    let mut skipped = 0;
    let spec21: Arc<str> = Arc::from("2.1");
    for v in values {
        let Some(id) = v.get("id").and_then(Value::as_str) else {
            skipped += 1;
            continue;
        };
        if id.len() > MAX_ID_LEN || !id.contains("--") {
            skipped += 1;
            continue;
        }
        let ts = v
            .get("modified")
            .or_else(|| v.get("created"))
            .and_then(Value::as_str);
        let version = match ts {
            None => None,
            Some(t) => match parse_timestamp_us(t) {
                Some(us) => Some((Arc::from(t), us)),
                None => {
                    skipped += 1;
                    continue;
                }
            },
        };
        let spec = match v.get("spec_version").and_then(Value::as_str) {
            None | Some("2.1") => Arc::clone(&spec21),
            Some(s) => Arc::from(s),
        };
        let Ok(json) = serde_json::to_string(v) else {
            skipped += 1;
            continue;
        };
        out.push(ParsedObject {
            id: Arc::from(id),
            version,
            spec,
            json: Arc::from(json),
        });
    }
    (out, skipped)
}

/// Parses an RFC 3339 timestamp (STIX timestamps: `2026-01-02T03:04:05.678Z`) to Unix µs.
pub(crate) fn parse_timestamp_us(s: &str) -> Option<i64> {
    let t = time::OffsetDateTime::parse(s.trim(), &time::format_description::well_known::Rfc3339)
        .ok()?;
    i64::try_from(t.unix_timestamp_nanos().div_euclid(1000)).ok()
}

/// Formats Unix ms as a STIX timestamp with millisecond precision (`…T03:04:05.678Z`).
pub(crate) fn format_ms(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// What the index needs to know about a stored item.
#[derive(Debug, Clone)]
pub(crate) struct ItemInfo {
    /// Item id.
    pub item_id: ItemId,
    /// When it was first stored here (Unix ms).
    pub received_ms: i64,
    /// Its TLP.
    pub tlp: Tlp,
    /// Origin member.
    pub origin: String,
    /// Advisory id.
    pub advisory_id: String,
    /// Revision.
    pub revision: u64,
}

/// One object version: where its content comes from.
#[derive(Debug, Clone)]
pub(crate) struct ObjVer {
    /// STIX id.
    pub id: Arc<str>,
    /// Version as written (`modified`, `created`, or the `date_added` of unversioned objects).
    pub version: Arc<str>,
    /// Version in µs (ordering of versions).
    pub version_us: i64,
    /// `spec_version`.
    pub spec: Arc<str>,
    /// The item (position in the item table) whose conversion carries it.
    pub item: u32,
    /// Its position in that conversion's output.
    pub pos: u32,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    ov: u32,
    seq: u64,
}

#[derive(Debug, Clone, Copy)]
struct VerRef {
    version_us: i64,
    date_added_ms: i64,
    seq: u64,
    ov: u32,
}

#[derive(Debug, Default)]
struct Coll {
    order: BTreeMap<Key, Slot>,
    by_id: HashMap<Arc<str>, Vec<VerRef>>,
}

/// Which versions of each object a request wants (`match[version]`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct VersionSel {
    /// Every version.
    pub all: bool,
    /// The earliest version.
    pub first: bool,
    /// The latest version.
    pub last: bool,
    /// These exact versions (µs).
    pub exact: Vec<i64>,
}

impl VersionSel {
    /// The default of TAXII 2.1: the latest version only.
    pub(super) fn last() -> VersionSel {
        VersionSel {
            last: true,
            ..VersionSel::default()
        }
    }

    /// Every version (the versions endpoint).
    pub(super) fn all() -> VersionSel {
        VersionSel {
            all: true,
            ..VersionSel::default()
        }
    }
}

/// The filters of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Filter {
    /// Only objects added strictly after this (Unix µs).
    pub added_after_us: Option<i64>,
    /// Only these object types.
    pub types: Option<Vec<String>>,
    /// Only these object ids.
    pub ids: Option<Vec<String>>,
    /// Which versions.
    pub versions: VersionSel,
    /// Only these `spec_version`s.
    pub specs: Option<Vec<String>>,
}

impl Default for Filter {
    fn default() -> Self {
        Filter {
            added_after_us: None,
            types: None,
            ids: None,
            versions: VersionSel::last(),
            specs: None,
        }
    }
}

/// One object version on a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hit {
    /// Its position (date_added ms, id, version µs).
    pub key: Key,
    /// The object version.
    pub ov: u32,
}

/// One page.
#[derive(Debug, Clone, Default)]
pub(crate) struct Page {
    /// The object versions, in order.
    pub hits: Vec<Hit>,
    /// More matched after the last one (within the snapshot).
    pub more: bool,
}

/// The index of every collection. Readers take `&self`; only `insert_item` needs `&mut`.
#[derive(Debug, Default)]
pub(crate) struct Index {
    seq: u64,
    items: Vec<ItemId>,
    known: HashMap<ItemId, Option<u32>>,
    revisions: HashMap<(Arc<str>, Arc<str>, u64), ItemId>,
    objvers: Vec<ObjVer>,
    ov_by_key: HashMap<(Arc<str>, i64), u32>,
    colls: [Coll; 3],
    max_date_added: i64,
    skipped_variants: u64,
}

/// The `date_added` of an item indexed in a pass that started when the latest `date_added` in
/// the index was `base`: its `received_ms`, unless that is not later than `base` (a write that
/// raced an earlier pass, a clock step back); then `base + 1`, so that everything indexed later
/// sorts after everything a paging session or an `added_after` poll may already have seen.
pub(crate) fn date_added(received_ms: i64, base: i64) -> i64 {
    if received_ms > base {
        received_ms
    } else {
        base.saturating_add(1)
    }
}

impl Index {
    /// An empty index.
    pub(super) fn new() -> Index {
        Index {
            max_date_added: i64::MIN,
            ..Index::default()
        }
    }

    /// The latest `date_added` in the index (the base of the next indexing pass).
    pub(super) fn max_date_added(&self) -> i64 {
        self.max_date_added
    }

    /// Items seen so far (indexed or deliberately left out: RED, equivocating variants).
    pub(super) fn known_items(&self) -> usize {
        self.known.len()
    }

    /// Whether an item was seen.
    pub(super) fn knows(&self, id: &ItemId) -> bool {
        self.known.contains_key(id)
    }

    /// The current sequence number (the snapshot of a new paging session).
    pub(super) fn snapshot(&self) -> u64 {
        self.seq
    }

    /// Object versions in a collection.
    pub(super) fn len(&self, vis: Visibility) -> usize {
        self.colls[vis.index()].order.len()
    }

    /// The object version table entry.
    pub(super) fn objver(&self, ov: u32) -> Option<&ObjVer> {
        self.objvers.get(usize::try_from(ov).ok()?)
    }

    /// The item id at a position of the item table.
    pub(super) fn item(&self, item: u32) -> Option<ItemId> {
        self.items.get(usize::try_from(item).ok()?).copied()
    }

    /// The object version of (id, version) if indexed.
    pub(super) fn lookup(&self, id: &str, version: Option<i64>) -> Option<u32> {
        self.ov_by_key
            .get(&(Arc::from(id), version.unwrap_or(UNVERSIONED)))
            .copied()
    }

    /// Equivocating variants left out so far.
    pub(super) fn skipped_variants(&self) -> u64 {
        self.skipped_variants
    }

    /// Adds the objects of one stored item, dated `date_added` (see [`date_added`]), to every
    /// collection its TLP belongs to. Returns (object version, JSON) of each object, for the
    /// cache. An item already seen, a RED item, or a second payload for a revision already
    /// indexed (equivocation) adds nothing.
    pub(super) fn insert_item(
        &mut self,
        info: &ItemInfo,
        date_added: i64,
        objects: &[ParsedObject],
    ) -> Vec<(u32, Arc<str>)> {
        if self.known.contains_key(&info.item_id) {
            return Vec::new();
        }
        if !Visibility::ALL.iter().any(|v| v.includes(info.tlp)) {
            self.known.insert(info.item_id, None);
            return Vec::new();
        }
        let rkey: (Arc<str>, Arc<str>, u64) = (
            Arc::from(info.origin.as_str()),
            Arc::from(info.advisory_id.as_str()),
            info.revision,
        );
        if let Some(other) = self.revisions.get(&rkey)
            && *other != info.item_id
        {
            self.known.insert(info.item_id, None);
            self.skipped_variants += 1;
            return Vec::new();
        }
        self.revisions.insert(rkey, info.item_id);
        let Ok(item) = u32::try_from(self.items.len()) else {
            self.known.insert(info.item_id, None);
            return Vec::new();
        };
        self.items.push(info.item_id);
        self.known.insert(info.item_id, Some(item));
        self.max_date_added = self.max_date_added.max(date_added);
        let mut out = Vec::with_capacity(objects.len());
        for (pos, o) in objects.iter().enumerate() {
            let vkey = o.version.as_ref().map_or(UNVERSIONED, |v| v.1);
            let ov = match self.ov_by_key.get(&(Arc::clone(&o.id), vkey)) {
                Some(ov) => *ov,
                None => {
                    let Ok(ov) = u32::try_from(self.objvers.len()) else {
                        continue;
                    };
                    let (version, version_us) = match &o.version {
                        Some((text, us)) => (Arc::clone(text), *us),
                        None => (
                            Arc::from(format_ms(date_added)),
                            date_added.saturating_mul(1000),
                        ),
                    };
                    self.objvers.push(ObjVer {
                        id: Arc::clone(&o.id),
                        version,
                        version_us,
                        spec: Arc::clone(&o.spec),
                        item,
                        pos: u32::try_from(pos).unwrap_or(u32::MAX),
                    });
                    self.ov_by_key.insert((Arc::clone(&o.id), vkey), ov);
                    ov
                }
            };
            out.push((ov, Arc::clone(&o.json)));
            let Some(objver) = self.objvers.get(ov as usize) else {
                continue;
            };
            let (id, version_us) = (Arc::clone(&objver.id), objver.version_us);
            for vis in Visibility::ALL {
                if !vis.includes(info.tlp) {
                    continue;
                }
                let coll = &mut self.colls[vis.index()];
                let versions = coll.by_id.entry(Arc::clone(&id)).or_default();
                if versions.iter().any(|v| v.ov == ov) {
                    continue;
                }
                let key = (date_added, Arc::clone(&id), version_us);
                if coll.order.contains_key(&key) {
                    continue;
                }
                self.seq += 1;
                coll.order.insert(key, Slot { ov, seq: self.seq });
                let at = versions.partition_point(|v| v.version_us <= version_us);
                versions.insert(
                    at,
                    VerRef {
                        version_us,
                        date_added_ms: date_added,
                        seq: self.seq,
                        ov,
                    },
                );
            }
        }
        out
    }

    /// Whether object `id` has a version in the collection within the snapshot.
    pub(super) fn has_object(&self, vis: Visibility, id: &str, snapshot: u64) -> bool {
        self.colls[vis.index()]
            .by_id
            .get(id)
            .is_some_and(|vs| vs.iter().any(|v| v.seq <= snapshot))
    }

    /// One page of the collection: object versions matching `filter` that entered the index at
    /// or before `snapshot`, strictly after position `after`, at most `limit` of them.
    pub(super) fn page(
        &self,
        vis: Visibility,
        filter: &Filter,
        snapshot: u64,
        after: Option<&Key>,
        limit: usize,
    ) -> Page {
        let coll = &self.colls[vis.index()];
        let mut page = Page::default();
        let take = |key: &Key, ov: u32, seq: u64, page: &mut Page| -> bool {
            if !self.eligible(coll, filter, key, ov, seq, snapshot) {
                return true;
            }
            if page.hits.len() >= limit {
                page.more = true;
                return false;
            }
            page.hits.push(Hit {
                key: key.clone(),
                ov,
            });
            true
        };
        if let Some(ids) = &filter.ids {
            let mut keys: Vec<(Key, u32, u64)> = Vec::new();
            let mut seen: Vec<&str> = Vec::new();
            for id in ids {
                if seen.contains(&id.as_str()) {
                    continue;
                }
                seen.push(id);
                if let Some((id_arc, vs)) = coll.by_id.get_key_value(id.as_str()) {
                    for v in vs {
                        keys.push((
                            (v.date_added_ms, Arc::clone(id_arc), v.version_us),
                            v.ov,
                            v.seq,
                        ));
                    }
                }
            }
            keys.sort_by(|a, b| a.0.cmp(&b.0));
            for (key, ov, seq) in &keys {
                if after.is_some_and(|a| key <= a) {
                    continue;
                }
                if !take(key, *ov, *seq, &mut page) {
                    break;
                }
            }
            return page;
        }
        let start: Bound<Key> = match (after, filter.added_after_us) {
            (Some(a), _) => Bound::Excluded(a.clone()),
            (None, Some(aa)) => Bound::Included((
                aa.div_euclid(1000).saturating_add(1),
                Arc::from(""),
                i64::MIN,
            )),
            (None, None) => Bound::Unbounded,
        };
        for (key, slot) in coll.order.range((start, Bound::Unbounded)) {
            if !take(key, slot.ov, slot.seq, &mut page) {
                break;
            }
        }
        page
    }

    fn eligible(
        &self,
        coll: &Coll,
        filter: &Filter,
        key: &Key,
        ov: u32,
        seq: u64,
        snapshot: u64,
    ) -> bool {
        if seq > snapshot || !self.basic_match(filter, key.0, ov) {
            return false;
        }
        let sel = &filter.versions;
        if sel.all || sel.exact.contains(&key.2) {
            return true;
        }
        if !sel.first && !sel.last {
            return false;
        }
        // first / last among the versions of this object that pass the other filters.
        let Some(vs) = coll.by_id.get(&key.1) else {
            return false;
        };
        let mut eligible = vs
            .iter()
            .filter(|v| v.seq <= snapshot && self.basic_match(filter, v.date_added_ms, v.ov));
        let first = eligible.next();
        let last = eligible.next_back().or(first);
        (sel.first && first.is_some_and(|v| v.ov == ov))
            || (sel.last && last.is_some_and(|v| v.ov == ov))
    }

    /// Every filter but the version selection.
    fn basic_match(&self, filter: &Filter, date_added_ms: i64, ov: u32) -> bool {
        if let Some(aa) = filter.added_after_us
            && date_added_ms.saturating_mul(1000) <= aa
        {
            return false;
        }
        let Some(o) = self.objver(ov) else {
            return false;
        };
        if let Some(types) = &filter.types {
            let ty = o.id.split_once("--").map_or(&*o.id, |(t, _)| t);
            if !types.iter().any(|t| t == ty) {
                return false;
            }
        }
        if let Some(ids) = &filter.ids
            && !ids.iter().any(|i| **i == *o.id)
        {
            return false;
        }
        if let Some(specs) = &filter.specs
            && !specs.iter().any(|s| **s == *o.spec)
        {
            return false;
        }
        true
    }
}
