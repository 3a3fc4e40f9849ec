//! The ordered index of object versions behind the collections.
//!
//! Owns: the table of object versions (one per (STIX id, version), whatever item first carried
//! it, each with the date_added and the index sequence number at which it entered each
//! collection, and a link to the previous version of its STIX id), per collection the object
//! versions in (date_added, object id, version) order, and one table of strings (STIX ids,
//! version texts, origins, advisory ids) that every other table refers to by position. Entries
//! are only ever added, never moved or removed, so a position in the order plus a sequence
//! number (the snapshot) identify exactly what a paging session has returned and what it still
//! must.
//! Memory: fixed-size records (an object version: one `Rec`; a collection entry: a `u32`) and
//! each distinct string once, however many versions, items and collections refer to it.
//! Must never: do I/O, read a clock, hold a string twice, or hold anything but metadata and
//! positions (the objects' JSON lives in the cache and in the store).

use std::collections::HashMap;
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

/// One object version, as the rest of the endpoint sees it (the interned strings, shared).
#[derive(Debug, Clone)]
pub(crate) struct ObjVer {
    /// STIX id.
    pub id: Arc<str>,
    /// Version as written (`modified`, `created`, or the `date_added` of unversioned objects).
    pub version: Arc<str>,
    /// `spec_version`.
    pub spec: Arc<str>,
    /// The item (position in the item table) whose conversion carries it.
    pub item: u32,
    /// Its position in that conversion's output.
    pub pos: u32,
}

/// "No object version" in the per-id chains.
const NONE: u32 = u32::MAX;

/// Where an object version sits in one collection. `seq == 0`: not in that collection (the
/// index sequence numbers start at 1).
#[derive(Debug, Clone, Copy, Default)]
struct Member {
    date_added_ms: i64,
    seq: u64,
}

/// One object version as stored: fixed size, strings as positions in the string table.
#[derive(Debug, Clone, Copy)]
struct Rec {
    version_us: i64,
    /// STIX id (string table).
    id: u32,
    /// Version as written (string table).
    version: u32,
    /// `spec_version` (string table).
    spec: u32,
    item: u32,
    pos: u32,
    /// The previous version of the same STIX id (the chain of its versions), or `NONE`.
    prev: u32,
    /// No `modified` or `created`: looked up as (id, `UNVERSIONED`).
    unversioned: bool,
    /// Its place in each collection (`Visibility::index`).
    colls: [Member; 3],
}

/// Every string the index holds, each once: STIX ids, version texts, spec versions, origins
/// and advisory ids. Positions never change. For a STIX id, `head` is its newest object
/// version (the start of its chain).
#[derive(Debug, Default)]
struct Strings {
    text: Vec<Arc<str>>,
    pos: HashMap<Arc<str>, u32>,
    head: Vec<u32>,
}

impl Strings {
    fn get(&self, s: &str) -> Option<u32> {
        self.pos.get(s).copied()
    }

    /// The position of `s`, added if new; `None` once the table is full (2^32 - 1 strings).
    fn intern(&mut self, s: &str) -> Option<u32> {
        if let Some(n) = self.pos.get(s) {
            return Some(*n);
        }
        let n = u32::try_from(self.text.len()).ok().filter(|n| *n != NONE)?;
        let a: Arc<str> = Arc::from(s);
        self.text.push(Arc::clone(&a));
        self.head.push(NONE);
        self.pos.insert(a, n);
        Some(n)
    }

    fn text(&self, n: u32) -> &Arc<str> {
        // Positions come from `intern` only: always in range.
        &self.text[n as usize]
    }
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
///
/// Memory per object version is fixed and small (one `Rec` plus a `u32` per collection that
/// holds it); every string is held once in `strings`, whatever number of versions, items and
/// collections refer to it. No JSON is held here.
#[derive(Debug, Default)]
pub(crate) struct Index {
    seq: u64,
    items: Vec<ItemId>,
    known: HashMap<ItemId, Option<u32>>,
    /// (origin, advisory id, revision) → the item indexed for it.
    revisions: HashMap<(u32, u32, u64), u32>,
    strings: Strings,
    objvers: Vec<Rec>,
    /// Per collection: object versions in (date_added, id, version) order.
    colls: [Vec<u32>; 3],
    max_date_added: i64,
    skipped_variants: u64,
}

/// Sizes of the index's tables (entries, not bytes): what memory per item is made of.
#[cfg(test)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tables {
    /// Items seen.
    pub items: usize,
    /// Distinct strings held.
    pub strings: usize,
    /// Bytes of those strings.
    pub string_bytes: usize,
    /// Object versions.
    pub objvers: usize,
    /// Collection entries (all three collections).
    pub entries: usize,
    /// Bytes the tables reserve (capacities times entry sizes, string bytes included; hash
    /// tables counted at their capacity).
    pub reserved_bytes: usize,
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
        self.colls[vis.index()].len()
    }

    fn rec(&self, ov: u32) -> Option<&Rec> {
        self.objvers.get(usize::try_from(ov).ok()?)
    }

    /// The object version table entry.
    pub(super) fn objver(&self, ov: u32) -> Option<ObjVer> {
        let r = self.rec(ov)?;
        Some(ObjVer {
            id: Arc::clone(self.strings.text(r.id)),
            version: Arc::clone(self.strings.text(r.version)),
            spec: Arc::clone(self.strings.text(r.spec)),
            item: r.item,
            pos: r.pos,
        })
    }

    /// The item id at a position of the item table.
    pub(super) fn item(&self, item: u32) -> Option<ItemId> {
        self.items.get(usize::try_from(item).ok()?).copied()
    }

    /// The versions of STIX id `sid` (string position), newest indexed first.
    fn chain(&self, sid: u32) -> impl Iterator<Item = (u32, &Rec)> + '_ {
        let mut at = self.strings.head.get(sid as usize).copied().unwrap_or(NONE);
        std::iter::from_fn(move || {
            let r = self.rec(at)?;
            let ov = at;
            at = r.prev;
            Some((ov, r))
        })
    }

    fn find(&self, sid: u32, vkey: i64) -> Option<u32> {
        self.chain(sid)
            .find(|(_, r)| {
                if r.unversioned {
                    vkey == UNVERSIONED
                } else {
                    r.version_us == vkey
                }
            })
            .map(|(ov, _)| ov)
    }

    /// The object version of (id, version) if indexed.
    pub(super) fn lookup(&self, id: &str, version: Option<i64>) -> Option<u32> {
        let sid = self.strings.get(id)?;
        self.find(sid, version.unwrap_or(UNVERSIONED))
    }

    /// Equivocating variants left out so far.
    pub(super) fn skipped_variants(&self) -> u64 {
        self.skipped_variants
    }

    /// The position of object version `ov` in collection `c`: (date_added, id, version µs).
    fn key_of(&self, c: usize, ov: u32) -> Option<(i64, &str, i64)> {
        let r = self.rec(ov)?;
        Some((
            r.colls[c].date_added_ms,
            self.strings.text(r.id),
            r.version_us,
        ))
    }

    /// How many entries of collection `c` sort before (`or_equal`: before or at) `key`.
    fn partition(&self, c: usize, key: (i64, &str, i64), or_equal: bool) -> usize {
        self.colls[c].partition_point(|ov| match self.key_of(c, *ov) {
            Some(k) if or_equal => k <= key,
            Some(k) => k < key,
            None => true,
        })
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
        let (Some(origin), Some(advisory)) = (
            self.strings.intern(&info.origin),
            self.strings.intern(&info.advisory_id),
        ) else {
            self.known.insert(info.item_id, None);
            return Vec::new();
        };
        let rkey = (origin, advisory, info.revision);
        if let Some(other) = self.revisions.get(&rkey)
            && self.item(*other) != Some(info.item_id)
        {
            self.known.insert(info.item_id, None);
            self.skipped_variants += 1;
            return Vec::new();
        }
        let Ok(item) = u32::try_from(self.items.len()) else {
            self.known.insert(info.item_id, None);
            return Vec::new();
        };
        self.revisions.insert(rkey, item);
        self.items.push(info.item_id);
        self.known.insert(info.item_id, Some(item));
        self.max_date_added = self.max_date_added.max(date_added);
        let mut out = Vec::with_capacity(objects.len());
        for (pos, o) in objects.iter().enumerate() {
            let Some(sid) = self.strings.intern(&o.id) else {
                continue;
            };
            let vkey = o.version.as_ref().map_or(UNVERSIONED, |v| v.1);
            let ov = match self.find(sid, vkey) {
                Some(ov) => ov,
                None => match self.add_objver(sid, o, date_added, item, pos) {
                    Some(ov) => ov,
                    None => continue,
                },
            };
            out.push((ov, Arc::clone(&o.json)));
            for vis in Visibility::ALL {
                if vis.includes(info.tlp) {
                    self.add_to_collection(vis.index(), ov, date_added);
                }
            }
        }
        out
    }

    /// A new object version of STIX id `sid`; `None` if a table is full.
    fn add_objver(
        &mut self,
        sid: u32,
        o: &ParsedObject,
        date_added: i64,
        item: u32,
        pos: usize,
    ) -> Option<u32> {
        let ov = u32::try_from(self.objvers.len())
            .ok()
            .filter(|n| *n != NONE)?;
        let (version, version_us) = match &o.version {
            Some((text, us)) => (self.strings.intern(text)?, *us),
            None => (
                self.strings.intern(&format_ms(date_added))?,
                date_added.saturating_mul(1000),
            ),
        };
        let spec = self.strings.intern(&o.spec)?;
        let head = self.strings.head.get_mut(sid as usize)?;
        let prev = std::mem::replace(head, ov);
        self.objvers.push(Rec {
            version_us,
            id: sid,
            version,
            spec,
            item,
            pos: u32::try_from(pos).unwrap_or(u32::MAX),
            prev,
            unversioned: o.version.is_none(),
            colls: [Member::default(); 3],
        });
        Some(ov)
    }

    /// Enters `ov` into collection `c` at `date_added`, unless it is there already or another
    /// version holds the same position.
    fn add_to_collection(&mut self, c: usize, ov: u32, date_added: i64) {
        let Some(r) = self.rec(ov) else {
            return;
        };
        if r.colls[c].seq != 0 {
            return;
        }
        let key = (date_added, &**self.strings.text(r.id), r.version_us);
        let at = self.partition(c, key, false);
        if self.colls[c]
            .get(at)
            .is_some_and(|o| self.key_of(c, *o) == Some(key))
        {
            return;
        }
        self.seq += 1;
        let seq = self.seq;
        if let Some(r) = self.objvers.get_mut(ov as usize) {
            r.colls[c] = Member {
                date_added_ms: date_added,
                seq,
            };
        }
        self.colls[c].insert(at, ov);
    }

    /// Whether object `id` has a version in the collection within the snapshot.
    pub(super) fn has_object(&self, vis: Visibility, id: &str, snapshot: u64) -> bool {
        let c = vis.index();
        self.strings.get(id).is_some_and(|sid| {
            self.chain(sid)
                .any(|(_, r)| r.colls[c].seq != 0 && r.colls[c].seq <= snapshot)
        })
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
        let c = vis.index();
        let mut page = Page::default();
        let take = |ov: u32, page: &mut Page| -> bool {
            let Some(r) = self.rec(ov) else {
                return true;
            };
            if !self.eligible(c, filter, r, ov, snapshot) {
                return true;
            }
            if page.hits.len() >= limit {
                page.more = true;
                return false;
            }
            page.hits.push(Hit {
                key: (
                    r.colls[c].date_added_ms,
                    Arc::clone(self.strings.text(r.id)),
                    r.version_us,
                ),
                ov,
            });
            true
        };
        let after_key = after.map(|a| (a.0, &*a.1, a.2));
        if let Some(ids) = &filter.ids {
            let mut keys: Vec<((i64, &str, i64), u32)> = Vec::new();
            let mut seen: Vec<&str> = Vec::new();
            for id in ids {
                if seen.contains(&id.as_str()) {
                    continue;
                }
                seen.push(id);
                if let Some(sid) = self.strings.get(id) {
                    for (ov, r) in self.chain(sid) {
                        if r.colls[c].seq != 0
                            && let Some(k) = self.key_of(c, ov)
                        {
                            keys.push((k, ov));
                        }
                    }
                }
            }
            keys.sort_by(|a, b| a.0.cmp(&b.0));
            for (key, ov) in &keys {
                if after_key.is_some_and(|a| *key <= a) {
                    continue;
                }
                if !take(*ov, &mut page) {
                    break;
                }
            }
            return page;
        }
        let start = match (after_key, filter.added_after_us) {
            (Some(a), _) => self.partition(c, a, true),
            (None, Some(aa)) => self.partition(
                c,
                (aa.div_euclid(1000).saturating_add(1), "", i64::MIN),
                false,
            ),
            (None, None) => 0,
        };
        for ov in self.colls[c].iter().skip(start) {
            if !take(*ov, &mut page) {
                break;
            }
        }
        page
    }

    fn eligible(&self, c: usize, filter: &Filter, r: &Rec, ov: u32, snapshot: u64) -> bool {
        let m = r.colls[c];
        if m.seq == 0 || m.seq > snapshot || !self.basic_match(filter, m.date_added_ms, r) {
            return false;
        }
        let sel = &filter.versions;
        if sel.all || sel.exact.contains(&r.version_us) {
            return true;
        }
        if !sel.first && !sel.last {
            return false;
        }
        // first / last among the versions of this object in the collection that pass the
        // other filters, ordered by (version, when they entered the collection).
        let mut first: Option<(i64, u64, u32)> = None;
        let mut last: Option<(i64, u64, u32)> = None;
        for (v, vr) in self.chain(r.id) {
            let vm = vr.colls[c];
            if vm.seq == 0 || vm.seq > snapshot || !self.basic_match(filter, vm.date_added_ms, vr) {
                continue;
            }
            let k = (vr.version_us, vm.seq, v);
            if first.is_none_or(|f| k < f) {
                first = Some(k);
            }
            if last.is_none_or(|l| k > l) {
                last = Some(k);
            }
        }
        (sel.first && first.is_some_and(|f| f.2 == ov))
            || (sel.last && last.is_some_and(|l| l.2 == ov))
    }

    /// Every filter but the version selection.
    fn basic_match(&self, filter: &Filter, date_added_ms: i64, r: &Rec) -> bool {
        if let Some(aa) = filter.added_after_us
            && date_added_ms.saturating_mul(1000) <= aa
        {
            return false;
        }
        let id: &str = self.strings.text(r.id);
        if let Some(types) = &filter.types {
            let ty = id.split_once("--").map_or(id, |(t, _)| t);
            if !types.iter().any(|t| t == ty) {
                return false;
            }
        }
        if let Some(ids) = &filter.ids
            && !ids.iter().any(|i| i == id)
        {
            return false;
        }
        if let Some(specs) = &filter.specs
            && !specs.iter().any(|s| **s == **self.strings.text(r.spec))
        {
            return false;
        }
        true
    }

    /// Sizes of the tables.
    #[cfg(test)]
    pub(super) fn tables(&self) -> Tables {
        use std::mem::size_of;
        let string_bytes: usize = self.strings.text.iter().map(|s| s.len()).sum();
        let entries: usize = self.colls.iter().map(Vec::len).sum();
        let reserved_bytes = self.items.capacity() * size_of::<ItemId>()
            + self.known.capacity() * (size_of::<(ItemId, Option<u32>)>() + 1)
            + self.revisions.capacity() * (size_of::<((u32, u32, u64), u32)>() + 1)
            + self.strings.text.capacity() * size_of::<Arc<str>>()
            + self.strings.head.capacity() * size_of::<u32>()
            + self.strings.pos.capacity() * (size_of::<(Arc<str>, u32)>() + 1)
            + self.strings.text.len() * 2 * size_of::<usize>()
            + string_bytes
            + self.objvers.capacity() * size_of::<Rec>()
            + self
                .colls
                .iter()
                .map(|v| v.capacity() * size_of::<u32>())
                .sum::<usize>();
        Tables {
            items: self.items.len(),
            strings: self.strings.text.len(),
            string_bytes,
            objvers: self.objvers.len(),
            entries,
            reserved_bytes,
        }
    }
}
