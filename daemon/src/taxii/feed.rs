//! Keeps the index in step with the store, and reads objects back for responses.
//!
//! Owns: `Shared` (the index, the cache, the store, the converter, the change-event receiver),
//! `refresh` (index the items announced since the last call; scan the store for items that
//! were never announced — superseded revisions arriving late, events lost to a lagging
//! receiver — when the store holds more items than the index knows for more than a moment),
//! and `objects` (the JSON of object versions: from the cache, else by converting their item
//! again). The index only ever grows, so when the store drops items (a roster revocation: its
//! `drop_generation` moved) `refresh` rebuilds the index and the cache from the store under a
//! new epoch before anything else is served: dropped objects are never served again, and
//! `next` cursors of the old index are refused (clients restart paging, or resume with
//! `added_after`).
//! Must never: call the store outside blocking context (every method here blocks), or hold the
//! index's write lock while reading the store or converting.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::broadcast;

use super::Converter;
use super::cache::ObjectCache;
use super::index::{Index, ItemInfo, ParsedObject, date_added, parse_objects};
use crate::envelope::ItemId;
use crate::publish::ChangeEvent;
use crate::store::{Store, StoreError, StoredItem};

/// How long the store may hold items the index does not know (and no event arrives) before
/// the store is scanned for them.
const RESCAN_AFTER: Duration = Duration::from_secs(1);
/// Items converted and inserted under one write lock.
const CHUNK: usize = 256;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn read(m: &RwLock<Index>) -> std::sync::RwLockReadGuard<'_, Index> {
    m.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write(m: &RwLock<Index>) -> std::sync::RwLockWriteGuard<'_, Index> {
    m.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[derive(Debug)]
struct RefreshState {
    events: Option<broadcast::Receiver<ChangeEvent>>,
    built: bool,
    deficit_since: Option<Instant>,
}

/// State shared by every request of one TAXII endpoint.
pub(crate) struct Shared {
    /// The index (read by requests, written by `refresh`).
    pub index: RwLock<Index>,
    cache: Mutex<ObjectCache>,
    store: Arc<dyn Store>,
    convert: Converter,
    refresh: Mutex<RefreshState>,
    stopping: AtomicBool,
    /// Identifies this index instance in cursors (a new one after each rebuild).
    epoch: AtomicU64,
    /// The store's `drop_generation` the index was built at.
    drops_seen: AtomicU64,
    cache_bytes: usize,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("epoch", &self.epoch())
            .finish_non_exhaustive()
    }
}

fn fresh_epoch() -> u64 {
    let mut e = [0u8; 8];
    let _ = getrandom::fill(&mut e);
    u64::from_be_bytes(e)
}

fn info_of(item: &StoredItem) -> ItemInfo {
    ItemInfo {
        item_id: item.item_id,
        received_ms: item.received_ms,
        tlp: item.advisory.tlp,
        origin: item.advisory.origin.clone(),
        advisory_id: item.advisory.id.clone(),
        revision: item.advisory.revision,
    }
}

impl Shared {
    /// State over `store`, converting with `convert`, following `events` (`None`: only scans
    /// find new items), caching up to `cache_bytes`.
    pub(super) fn new(
        store: Arc<dyn Store>,
        convert: Converter,
        events: Option<broadcast::Receiver<ChangeEvent>>,
        cache_bytes: usize,
    ) -> Shared {
        let drops_seen = AtomicU64::new(store.drop_generation());
        Shared {
            index: RwLock::new(Index::new()),
            cache: Mutex::new(ObjectCache::new(cache_bytes)),
            store,
            convert,
            refresh: Mutex::new(RefreshState {
                events,
                built: false,
                deficit_since: None,
            }),
            stopping: AtomicBool::new(false),
            epoch: AtomicU64::new(fresh_epoch()),
            drops_seen,
            cache_bytes,
        }
    }

    /// Identifies the index instance in cursors.
    pub(super) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// The store dropped items since the index was built: a fresh, empty index and cache under
    /// a new epoch (the caller then indexes every stored item).
    fn reset(&self, generation: u64) {
        let mut idx = write(&self.index);
        *idx = Index::new();
        *lock(&self.cache) = ObjectCache::new(self.cache_bytes);
        self.epoch.store(fresh_epoch(), Ordering::SeqCst);
        self.drops_seen.store(generation, Ordering::SeqCst);
    }

    /// Asks a running `refresh` to stop after its current chunk of items (shutdown).
    pub(super) fn stop(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }

    /// Brings the index up to date with the store (blocking). The first call builds it.
    pub(super) fn refresh(&self) -> Result<(), StoreError> {
        let mut st = lock(&self.refresh);
        let generation = self.store.drop_generation();
        let rebuild = generation != self.drops_seen.load(Ordering::SeqCst);
        if rebuild {
            tracing::info!("taxii: items were dropped from the store; rebuilding the index");
            self.reset(generation);
            st.built = false;
        }
        let mut announced: Vec<ItemId> = Vec::new();
        let mut lagged = false;
        if let Some(rx) = st.events.as_mut() {
            loop {
                match rx.try_recv() {
                    Ok(ev) => announced.push(ev.item_id),
                    Err(broadcast::error::TryRecvError::Lagged(_)) => lagged = true,
                    Err(
                        broadcast::error::TryRecvError::Empty
                        | broadcast::error::TryRecvError::Closed,
                    ) => break,
                }
            }
        }
        if rebuild {
            // The rebuild below indexes everything in (received_ms, item id) order at once.
            announced.clear();
        }
        let new: Vec<ItemId> = {
            let idx = read(&self.index);
            announced.into_iter().filter(|id| !idx.knows(id)).collect()
        };
        let progressed = !new.is_empty();
        if progressed {
            self.index_items(&new)?;
        }
        let stored = self.store.counts()?.items;
        let known = read(&self.index).known_items() as u64;
        if stored <= known {
            st.built = true;
            st.deficit_since = None;
            return Ok(());
        }
        let now = Instant::now();
        let since = if progressed {
            now
        } else {
            *st.deficit_since.get_or_insert(now)
        };
        st.deficit_since = Some(since);
        // Without change events a scan is the only way to find new items.
        let no_events = st.events.is_none();
        if !st.built || lagged || no_events || now.duration_since(since) >= RESCAN_AFTER {
            let first = !st.built;
            self.rescan()?;
            st.built = true;
            st.deficit_since = None;
            if first {
                let idx = read(&self.index);
                let (entries, bytes) = self.cache_stats();
                tracing::info!(
                    items = idx.known_items(),
                    clear = idx.len(super::Visibility::Clear),
                    green = idx.len(super::Visibility::Green),
                    amber = idx.len(super::Visibility::Amber),
                    equivocating_left_out = idx.skipped_variants(),
                    cached_objects = entries,
                    cache_bytes = bytes,
                    "taxii: index built"
                );
            }
        }
        Ok(())
    }

    /// Indexes every stored item the index does not know yet.
    fn rescan(&self) -> Result<(), StoreError> {
        let ids = self.store.item_ids()?;
        let unknown: Vec<ItemId> = {
            let idx = read(&self.index);
            ids.into_iter().filter(|id| !idx.knows(id)).collect()
        };
        if !unknown.is_empty() {
            tracing::debug!(
                items = unknown.len(),
                "taxii: indexing items found in the store"
            );
        }
        self.index_items(&unknown)
    }

    /// Loads, converts and indexes items, in (received_ms, item id) order, as one indexing pass
    /// (one dating base: see `index::date_added`).
    fn index_items(&self, ids: &[ItemId]) -> Result<(), StoreError> {
        let mut order: Vec<(i64, ItemId)> = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(item) = self.store.get(id)? {
                order.push((item.received_ms, *id));
            }
        }
        order.sort_unstable();
        let base = read(&self.index).max_date_added();
        for chunk in order.chunks(CHUNK) {
            if self.stopping.load(Ordering::Relaxed) {
                return Ok(());
            }
            let mut prepared: Vec<(ItemInfo, Vec<ParsedObject>)> = Vec::with_capacity(chunk.len());
            for (_, id) in chunk {
                let Some(item) = self.store.get(id)? else {
                    continue;
                };
                let objects = self.convert_item(&item);
                prepared.push((info_of(&item), objects));
            }
            let mut fresh = Vec::new();
            {
                let mut idx = write(&self.index);
                for (info, objects) in &prepared {
                    let dated = date_added(info.received_ms, base);
                    fresh.extend(idx.insert_item(info, dated, objects));
                }
            }
            let mut cache = lock(&self.cache);
            for (ov, json) in fresh {
                cache.insert(ov, json);
            }
        }
        Ok(())
    }

    fn convert_item(&self, item: &StoredItem) -> Vec<ParsedObject> {
        // Roster items are not advisories: known to the index (so it is complete), in no
        // collection.
        if tanoa_core::roster::is_carrier_id(&item.advisory.id) {
            return Vec::new();
        }
        if !super::Visibility::ALL
            .iter()
            .any(|v| v.includes(item.advisory.tlp))
        {
            return Vec::new();
        }
        let values = (self.convert)(&item.advisory, &item.envelope);
        let (objects, skipped) = parse_objects(&values);
        if skipped > 0 {
            tracing::warn!(item_id = %item.item_id, skipped,
                "taxii: converted objects without a usable id or timestamp were left out");
        }
        objects
    }

    /// The JSON of each object version (in order; `None` where it can no longer be produced).
    pub(super) fn objects(&self, ovs: &[u32]) -> Result<Vec<Option<Arc<str>>>, StoreError> {
        let mut out: Vec<Option<Arc<str>>> = {
            let mut cache = lock(&self.cache);
            ovs.iter().map(|ov| cache.get(*ov)).collect()
        };
        // Misses: group by the item whose conversion carries them.
        let mut by_item: HashMap<u32, Vec<usize>> = HashMap::new();
        {
            let idx = read(&self.index);
            for (n, ov) in ovs.iter().enumerate() {
                if out[n].is_none()
                    && let Some(o) = idx.objver(*ov)
                {
                    by_item.entry(o.item).or_default().push(n);
                }
            }
        }
        for (item, positions) in by_item {
            let Some(item_id) = read(&self.index).item(item) else {
                continue;
            };
            let Some(stored) = self.store.get(&item_id)? else {
                continue;
            };
            let objects = self.convert_item(&stored);
            let idx = read(&self.index);
            let mut cache = lock(&self.cache);
            for o in &objects {
                if let Some(ov) = idx.lookup(&o.id, o.version.as_ref().map(|v| v.1)) {
                    cache.insert(ov, std::sync::Arc::clone(&o.json));
                }
            }
            for n in positions {
                let ov = ovs[n];
                let Some(want) = idx.objver(ov) else {
                    continue;
                };
                // The same position normally; else the same (id, version) anywhere.
                let found = objects
                    .get(want.pos as usize)
                    .filter(|o| o.id == want.id)
                    .or_else(|| {
                        objects.iter().find(|o| {
                            idx.lookup(&o.id, o.version.as_ref().map(|v| v.1)) == Some(ov)
                        })
                    });
                out[n] = found.map(|o| Arc::clone(&o.json));
            }
        }
        Ok(out)
    }

    /// Cache statistics (entries, bytes).
    pub(super) fn cache_stats(&self) -> (usize, usize) {
        let c = lock(&self.cache);
        (c.len(), c.used())
    }
}
