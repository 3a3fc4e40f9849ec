//! In-memory `Store` for tests and the simulator.
//!
//! Owns: one `BTreeMap` per tree behind a single `RwLock`, holding exactly the keys and records
//! the sled backend holds (both run the shared rules in `store::engine`, so they behave alike).
//! Writers take the write lock for the whole plan-and-apply of an item, which makes every `put`
//! atomic; readers share the read lock. `sync` is a no-op and `disk_bytes` is 0.
//! Must never: perform I/O, or be used where durability is promised.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::engine::{
    self, CidrCounts, CidrPresence, Kv, Overlay, TREE_COUNT, Tree, Visit, WriteSet,
};
use super::{
    AuditEntry, Counts, DroppedItem, Equivocation, IndicatorMatch, IndicatorQuery, ListFilter,
    OriginEquivocations, PutOutcome, Store, StoreError, StoredItem,
};
use crate::envelope::{ItemId, Verified};
use crate::model::Advisory;

/// The trees: one ordered map each, plus the next audit sequence number.
#[derive(Debug)]
struct Maps {
    trees: [BTreeMap<Vec<u8>, Vec<u8>>; TREE_COUNT],
    next_audit: u64,
}

impl Kv for Maps {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.trees[tree.index()].get(key).cloned())
    }

    fn contains(&self, tree: Tree, key: &[u8]) -> Result<bool, StoreError> {
        Ok(self.trees[tree.index()].contains_key(key))
    }

    fn scan(
        &self,
        tree: Tree,
        prefix: &[u8],
        reverse: bool,
        f: &mut Visit<'_>,
    ) -> Result<(), StoreError> {
        let map = &self.trees[tree.index()];
        let range = map.range::<[u8], _>((Bound::Included(prefix), Bound::Unbounded));
        let range = range.take_while(|(k, _)| k.starts_with(prefix));
        if reverse {
            // Collecting the keys under the prefix is fine for an in-memory test store.
            let all: Vec<_> = range.collect();
            for (k, v) in all.into_iter().rev() {
                if !f(k, v)? {
                    break;
                }
            }
        } else {
            for (k, v) in range {
                if !f(k, v)? {
                    break;
                }
            }
        }
        Ok(())
    }

    fn scan_after(
        &self,
        tree: Tree,
        prefix: &[u8],
        after: &[u8],
        f: &mut Visit<'_>,
    ) -> Result<(), StoreError> {
        let map = &self.trees[tree.index()];
        let start = if after >= prefix {
            Bound::Excluded(after)
        } else {
            Bound::Included(prefix)
        };
        for (k, v) in map
            .range::<[u8], _>((start, Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
        {
            if !f(k, v)? {
                break;
            }
        }
        Ok(())
    }
}

impl Maps {
    fn apply(&mut self, ws: WriteSet) {
        for (tree, writes) in ws.trees.into_iter().enumerate() {
            for (k, v) in writes {
                match v {
                    Some(v) => {
                        self.trees[tree].insert(k, v);
                    }
                    None => {
                        self.trees[tree].remove(&k);
                    }
                }
            }
        }
    }
}

/// The in-memory store.
#[derive(Debug)]
pub struct MemoryStore {
    maps: RwLock<Maps>,
    presence: CidrPresence,
    drops: std::sync::atomic::AtomicU64,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self {
            maps: RwLock::new(Maps {
                trees: Default::default(),
                next_audit: 1,
            }),
            presence: CidrPresence::new(&CidrCounts::default()),
            drops: std::sync::atomic::AtomicU64::new(0),
        }
    }

    // A panic can only happen while planning (before any map is touched) or in a test
    // assertion, so a poisoned lock still guards consistent maps.
    fn read(&self) -> RwLockReadGuard<'_, Maps> {
        self.maps.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Maps> {
        self.maps.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Test hook: overwrites a raw record of a tree (to exercise corruption handling).
    #[cfg(test)]
    #[doc(hidden)]
    pub fn raw_insert(&self, tree: &str, key: &[u8], value: &[u8]) {
        let t = Tree::ALL
            .into_iter()
            .find(|t| t.name() == tree)
            .unwrap_or(Tree::Meta);
        self.write().trees[t.index()].insert(key.to_vec(), value.to_vec());
    }
}

impl Store for MemoryStore {
    fn put(
        &self,
        item: &Verified<Advisory>,
        source: &str,
        now_ms: i64,
    ) -> Result<PutOutcome, StoreError> {
        self.put_batch(&[(item, source)], now_ms)?
            .pop()
            .ok_or_else(|| StoreError::Backend("memory: put produced no outcome".into()))
    }

    fn put_batch(
        &self,
        items: &[(&Verified<Advisory>, &str)],
        now_ms: i64,
    ) -> Result<Vec<PutOutcome>, StoreError> {
        let mut maps = self.write();
        let mut outcomes = Vec::with_capacity(items.len());
        for (item, source) in items {
            // One overlay per item keeps each item atomic on its own, like sled's chunks.
            let mut ov = Overlay::new(&*maps)?;
            outcomes.push(ov.put_item(item, source, now_ms)?);
            let ws = ov.finish();
            let cidr = ws.cidr.clone();
            maps.apply(ws);
            if let Some(c) = cidr {
                self.presence.set(&c);
            }
        }
        Ok(outcomes)
    }

    fn drop_items_audited(
        &self,
        ids: &[ItemId],
        audit: Option<&dyn Fn(&DroppedItem) -> AuditEntry>,
    ) -> Result<Vec<DroppedItem>, StoreError> {
        let mut maps = self.write();
        let mut next_audit = maps.next_audit;
        let mut ov = Overlay::new(&*maps)?;
        let mut out = Vec::new();
        for id in ids {
            if let Some(d) = ov.drop_item(id)? {
                if let Some(f) = audit {
                    ov.append_audit(next_audit, &f(&d));
                    next_audit += 1;
                }
                out.push(d);
            }
        }
        let ws = ov.finish();
        maps.next_audit = next_audit;
        let cidr = ws.cidr.clone();
        maps.apply(ws);
        if let Some(c) = cidr {
            self.presence.set(&c);
        }
        if !out.is_empty() {
            self.drops.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        Ok(out)
    }

    fn drop_generation(&self) -> u64 {
        self.drops.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn sync(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn get(&self, id: &ItemId) -> Result<Option<StoredItem>, StoreError> {
        engine::get(&*self.read(), id)
    }

    fn latest(&self, origin: &str, advisory_id: &str) -> Result<Option<StoredItem>, StoreError> {
        engine::latest(&*self.read(), origin, advisory_id)
    }

    fn history(&self, origin: &str, advisory_id: &str) -> Result<Vec<StoredItem>, StoreError> {
        engine::history(&*self.read(), origin, advisory_id)
    }

    fn list(&self, filter: &ListFilter) -> Result<(Vec<StoredItem>, bool), StoreError> {
        engine::list(&*self.read(), filter)
    }

    fn search(&self, query: &IndicatorQuery) -> Result<Vec<IndicatorMatch>, StoreError> {
        engine::search(&*self.read(), &self.presence, query)
    }

    fn equivocations(
        &self,
        origin: &str,
        advisory_id: &str,
    ) -> Result<Vec<Equivocation>, StoreError> {
        engine::equivocations(&*self.read(), origin, advisory_id)
    }

    fn equivocating_origins(&self) -> Result<Vec<OriginEquivocations>, StoreError> {
        engine::equivocating_origins(&*self.read())
    }

    fn append_audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        let mut maps = self.write();
        let seq = maps.next_audit;
        maps.next_audit += 1;
        maps.trees[Tree::Audit.index()]
            .insert(engine::audit_key(seq).to_vec(), engine::encode_audit(entry));
        Ok(())
    }

    fn audit(&self, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        engine::audit(&*self.read(), limit)
    }

    fn counts(&self) -> Result<Counts, StoreError> {
        engine::read_counts(&*self.read())
    }

    fn item_ids(&self) -> Result<Vec<ItemId>, StoreError> {
        engine::item_ids(&*self.read())
    }

    fn scan_latest(
        &self,
        origin: Option<&str>,
        include_withdrawn: bool,
        f: &mut dyn FnMut(StoredItem) -> Result<bool, StoreError>,
    ) -> Result<(), StoreError> {
        // Holds the read lock for the whole scan: writers wait (a test store only).
        engine::scan_latest(&*self.read(), origin, include_withdrawn, f)
    }

    fn scan_latest_id_prefix(
        &self,
        origin: &str,
        id_prefix: &str,
        include_withdrawn: bool,
        f: &mut dyn FnMut(StoredItem) -> Result<bool, StoreError>,
    ) -> Result<(), StoreError> {
        engine::scan_latest_id_prefix(&*self.read(), origin, id_prefix, include_withdrawn, f)
    }

    fn disk_bytes(&self) -> u64 {
        0
    }
}
