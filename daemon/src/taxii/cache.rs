//! A bounded cache of converted objects (compact JSON) by object version, least recently used
//! evicted first.
//!
//! Owns: the byte budget and the eviction order.
//! Must never: grow past its budget (an object larger than the whole budget is not kept).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Bytes counted per entry on top of its JSON.
const OVERHEAD: usize = 64;

/// The cache.
#[derive(Debug, Default)]
pub(crate) struct ObjectCache {
    budget: usize,
    used: usize,
    tick: u64,
    map: HashMap<u32, (Arc<str>, u64)>,
    lru: BTreeMap<u64, u32>,
}

impl ObjectCache {
    /// An empty cache of at most `budget` bytes.
    pub(super) fn new(budget: usize) -> ObjectCache {
        ObjectCache {
            budget,
            ..ObjectCache::default()
        }
    }

    /// Entries held.
    pub(super) fn len(&self) -> usize {
        self.map.len()
    }

    /// Bytes used.
    pub(super) fn used(&self) -> usize {
        self.used
    }

    /// The JSON of an object version, marking it recently used.
    pub(super) fn get(&mut self, ov: u32) -> Option<Arc<str>> {
        self.tick += 1;
        let tick = self.tick;
        let (json, at) = self.map.get_mut(&ov)?;
        self.lru.remove(at);
        *at = tick;
        self.lru.insert(tick, ov);
        Some(Arc::clone(json))
    }

    /// Keeps the JSON of an object version (nothing if already held), evicting the least
    /// recently used entries to stay within the budget.
    pub(super) fn insert(&mut self, ov: u32, json: Arc<str>) {
        let size = json.len() + OVERHEAD;
        if size > self.budget || self.map.contains_key(&ov) {
            return;
        }
        while self.used + size > self.budget {
            let Some((_, victim)) = self.lru.pop_first() else {
                break;
            };
            if let Some((old, _)) = self.map.remove(&victim) {
                self.used = self.used.saturating_sub(old.len() + OVERHEAD);
            }
        }
        self.tick += 1;
        self.map.insert(ov, (json, self.tick));
        self.lru.insert(self.tick, ov);
        self.used += size;
    }
}
