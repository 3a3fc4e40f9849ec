//! Durable `Store` on sled 0.34.7.
//!
//! Owns: the sled database of a node (one directory), its trees (`envelopes`, `history`,
//! `latest`, `by_modified`, `indicators`, `tombstones`, `equivocations`, `audit`, `meta`; key
//! layouts in `store::engine`), atomic multi-tree commits, the cache size, and durability with
//! group commit.
//! Must never: acknowledge durability (`sync` returning `Ok`) before the data file *and* every
//! blob file are fsynced; apply part of a `put`; be opened twice (sled locks the directory).
//!
//! # Writes
//! Writers are serialized by a mutex. A put (or a chunk of `put_batch`) is planned in memory by
//! `engine::Overlay` against the committed trees, then applied as ONE sled multi-tree transaction
//! (no conflicts are possible, since only the writer mutex holder writes those trees). An item
//! costs about 5 + (number of indicators) key writes: envelope, history, latest, by_modified,
//! indicator entries, plus the removal of the previous latest's entries; counters in `meta` are
//! written once per transaction. `put_batch` commits one transaction per chunk of about
//! `BATCH_WRITES` key writes, which bounds how long sled's global write lock (taken by every
//! transaction) blocks readers.
//!
//! # Durability: what sled 0.34.7 does, and what `sync` adds
//! Read in the sled-0.34.7 sources (`pagecache/iobuf.rs`, `pagecache/blob_io.rs`,
//! `pagecache/logger.rs`, `flusher.rs`):
//! - `Db::flush()` writes the log buffers with `pwrite` and then `sync_file_range(WAIT_BEFORE |
//!   WRITE | WAIT_AFTER)` on Linux (`iobuf.rs`). That starts and waits for write-back of the
//!   range but issues no disk cache flush and does not persist file metadata: it is not an
//!   fsync. Only the background flusher (every 500 ms) calls `sync_all` on the data file `db`.
//! - A log message whose serialized page exceeds `segment_size / 4 - 20` bytes (131,052 with the
//!   default 512 KiB segments) is written to a separate file `<dir>/blobs/<lsn>`
//!   (`logger.rs` `over_blob_threshold`, `blob_io.rs` `write_blob`): `create_new`, then
//!   `write_all` of crc + kind + data, and the file is dropped. Nothing ever fsyncs blob files or
//!   the `blobs` directory — neither `flush()` nor the periodic flusher (which only syncs `db`).
//!   Advisories up to the 1 MiB payload limit therefore reach blob files, and after a power loss
//!   the log could point to a blob that never reached the disk.
//! - On recovery sled deletes blobs whose lsn is above the stable log (`gc_blobs`).
//!
//! So `sync` does: `db.flush()` (all log buffers and blob files written to the kernel), then
//! `sync_all` of every blob file not yet synced by this process and of the `blobs` directory if
//! any was new (blobs first, so a durable log never names a non-durable blob), then
//! `sync_data` (fdatasync) on our own handle of `<dir>/db`. At open, the directory and its parent
//! are fsynced once so the data file's directory entry is durable, and blobs left by a previous
//! process are synced by the first `sync`.
//!
//! Group commit: every write bumps `write_seq` after it is applied. `sync` reads the target
//! sequence, then takes the sync mutex; if `synced_seq` already covers the target (another
//! caller's sync ran meanwhile) it returns at once, else it records the current sequence, syncs
//! and publishes it. Concurrent callers thus share one flush + fdatasync.
//!
//! # Memory
//! See `SledConfig::cache_capacity_bytes`: the default is 32 MiB, not sled's 1 GiB.

use std::collections::HashSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use sled::Transactional;
use sled::transaction::TransactionError;

use super::{
    AuditEntry, Counts, DroppedItem, Equivocation, IndicatorMatch, IndicatorQuery, ListFilter,
    OriginEquivocations, PutOutcome, Store, StoreError, StoredItem,
};
use crate::envelope::{ItemId, Verified};
use crate::model::Advisory;
use tanoa_core::store::engine::{
    self, CidrPresence, Kv, Overlay, TREE_COUNT, Tree, Visit, WriteSet,
};

/// Default sled page-cache size: 32 MiB.
///
/// Sled's default (1 GiB) let a store of 10^6 × 1 KiB values grow to about 2 GB RSS on this
/// machine (`STACK.md`): RSS follows the cache, roughly twice its nominal size once full. A small
/// CERT's node must hold 10^6 advisories under 300 MB RSS, leaving room for tokio, tonic and
/// TLS. Measured by `cargo bench -p tanoa-daemon --bench node` with 10^6 advisories: a bare open
/// is ~190 MB whatever the cache; 64 MiB peaked at 343 MB after a full-scan List, 32 MiB at
/// 286 MB, with indicator lookup p99 still under 100 µs. The upper levels of every tree and the
/// hot part of the indicator index stay in memory; the rest is read from the OS page cache,
/// which does not count against the process. Raise it on a larger server for faster cold reads.
pub(super) const DEFAULT_CACHE_CAPACITY_BYTES: u64 = 32 * 1024 * 1024;

/// Key writes per `put_batch` transaction (bounds how long readers wait on a commit).
const BATCH_WRITES: usize = 4096;

/// Configuration of the sled store (`[store]` in the daemon config).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SledConfig {
    /// Sled page-cache capacity in bytes (default `DEFAULT_CACHE_CAPACITY_BYTES`, 32 MiB).
    pub cache_capacity_bytes: u64,
}

impl Default for SledConfig {
    fn default() -> Self {
        Self {
            cache_capacity_bytes: DEFAULT_CACHE_CAPACITY_BYTES,
        }
    }
}

/// The sled trees, in `Tree` order.
struct Trees([sled::Tree; TREE_COUNT]);

fn sled_err(tree: Tree, what: &str, e: sled::Error) -> StoreError {
    match e {
        sled::Error::Corruption { .. } => StoreError::Corrupt {
            tree: tree.name(),
            detail: format!("{what}: {e}"),
        },
        other => StoreError::Backend(format!("tree {}: {what}: {other}", tree.name())),
    }
}

impl Kv for Trees {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.0[tree.index()]
            .get(key)
            .map(|v| v.map(|v| v.to_vec()))
            .map_err(|e| sled_err(tree, "get", e))
    }

    fn contains(&self, tree: Tree, key: &[u8]) -> Result<bool, StoreError> {
        self.0[tree.index()]
            .contains_key(key)
            .map_err(|e| sled_err(tree, "get", e))
    }

    fn scan(
        &self,
        tree: Tree,
        prefix: &[u8],
        reverse: bool,
        f: &mut Visit<'_>,
    ) -> Result<(), StoreError> {
        let iter = self.0[tree.index()].scan_prefix(prefix);
        let iter: Box<dyn Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>> = if reverse {
            Box::new(iter.rev())
        } else {
            Box::new(iter)
        };
        for kv in iter {
            let (k, v) = kv.map_err(|e| sled_err(tree, "scan", e))?;
            if !f(&k, &v)? {
                break;
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
        use std::ops::Bound;
        let start = if after >= prefix {
            Bound::Excluded(after.to_vec())
        } else {
            Bound::Included(prefix.to_vec())
        };
        for kv in self.0[tree.index()].range::<Vec<u8>, _>((start, Bound::Unbounded)) {
            let (k, v) = kv.map_err(|e| sled_err(tree, "scan", e))?;
            if !k.starts_with(prefix) || !f(&k, &v)? {
                break;
            }
        }
        Ok(())
    }
}

/// What the last `sync` covered.
#[derive(Debug, Default)]
struct SyncState {
    /// Every write with a sequence number up to this one is durable.
    synced_seq: u64,
    /// Blob files (by lsn) fsynced by this process and still present.
    synced_blobs: HashSet<u64>,
}

/// The durable store.
pub struct SledStore {
    dir: PathBuf,
    db: sled::Db,
    trees: Trees,
    /// Our own handle of `<dir>/db`, for fdatasync.
    data_file: File,
    writer: Mutex<()>,
    presence: CidrPresence,
    next_audit: AtomicU64,
    write_seq: AtomicU64,
    sync_state: Mutex<SyncState>,
    /// `drop_items` calls that removed something since open (`Store::drop_generation`).
    drops: AtomicU64,
}

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore")
            .field("dir", &self.dir)
            .field("write_seq", &self.write_seq.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded state is only changed after the fallible work succeeded, so a poisoned lock
    // still guards consistent state.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Backend(format!("{what} {}: {e}", path.display()))
}

fn fsync_dir(path: &Path) -> Result<(), StoreError> {
    File::open(path)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err("fsync directory", path, e))
}

/// How long `open` waits for sled's file lock to be released.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Opens the sled database, waiting up to `LOCK_WAIT` for its file lock: when a `SledStore` of
/// this process was just dropped, sled's background flusher thread can still hold the lock for
/// a moment (sled 0.34 does not join it on drop). A lock held longer (another live process) is
/// reported as an error naming the path.
fn open_db(path: &Path, config: &SledConfig) -> Result<sled::Db, StoreError> {
    let started = std::time::Instant::now();
    loop {
        let opened = sled::Config::new()
            .path(path)
            .cache_capacity(config.cache_capacity_bytes)
            .open();
        match opened {
            Ok(db) => return Ok(db),
            // sled 0.34 reports a held lock as `ErrorKind::Other` with this message
            // (`config.rs`), so the message is the only way to recognize it.
            Err(sled::Error::Io(e))
                if e.to_string().starts_with("could not acquire lock")
                    && started.elapsed() < LOCK_WAIT =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => {
                return Err(StoreError::Backend(format!(
                    "open sled store {}: {e}",
                    path.display()
                )));
            }
        }
    }
}

impl SledStore {
    /// Opens (creating if needed) the store in directory `path`.
    pub fn open(path: &Path, config: &SledConfig) -> Result<SledStore, StoreError> {
        std::fs::create_dir_all(path).map_err(|e| io_err("create store directory", path, e))?;
        let db = open_db(path, config)?;
        let mut opened = Vec::with_capacity(TREE_COUNT);
        for t in Tree::ALL {
            opened.push(
                db.open_tree(t.name())
                    .map_err(|e| sled_err(t, "open tree", e))?,
            );
        }
        let trees = Trees(
            opened
                .try_into()
                .map_err(|_| StoreError::Backend("sled: wrong number of trees".into()))?,
        );
        match trees.get(Tree::Meta, engine::META_FORMAT)? {
            Some(tag) if tag == engine::FORMAT_TAG => {}
            Some(tag) => {
                return Err(StoreError::Corrupt {
                    tree: Tree::Meta.name(),
                    detail: format!(
                        "store {} has format {:?}, this build reads {:?}",
                        path.display(),
                        String::from_utf8_lossy(&tag),
                        String::from_utf8_lossy(engine::FORMAT_TAG)
                    ),
                });
            }
            None => {
                trees.0[Tree::Meta.index()]
                    .insert(engine::META_FORMAT, engine::FORMAT_TAG)
                    .map_err(|e| sled_err(Tree::Meta, "write format tag", e))?;
            }
        }
        let presence = CidrPresence::new(&engine::read_cidr_counts(&trees)?);
        let next_audit = engine::next_audit_seq(&trees)?;
        let db_file = path.join("db");
        let data_file = File::open(&db_file).map_err(|e| io_err("open", &db_file, e))?;
        fsync_dir(path)?;
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fsync_dir(parent)?;
        }
        Ok(SledStore {
            dir: path.to_path_buf(),
            db,
            trees,
            data_file,
            writer: Mutex::new(()),
            presence,
            next_audit: AtomicU64::new(next_audit),
            // 1 so that the first `sync` after open runs: it makes data a previous process
            // left unsynced (blob files included) durable before anything new is acknowledged.
            write_seq: AtomicU64::new(1),
            sync_state: Mutex::new(SyncState::default()),
            drops: AtomicU64::new(0),
        })
    }

    /// Directory of the store.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Applies a write set as one multi-tree transaction, then publishes the CIDR counters.
    fn commit(&self, ws: &WriteSet) -> Result<(), StoreError> {
        let involved: Vec<usize> = (0..TREE_COUNT)
            .filter(|i| !ws.trees[*i].is_empty())
            .collect();
        if involved.is_empty() {
            return Ok(());
        }
        let trees: Vec<&sled::Tree> = involved.iter().map(|i| &self.trees.0[*i]).collect();
        let res: Result<(), TransactionError<()>> = trees.as_slice().transaction(|tx| {
            for (n, i) in involved.iter().enumerate() {
                for (k, v) in &ws.trees[*i] {
                    match v {
                        Some(v) => {
                            tx[n].insert(k.as_slice(), v.as_slice())?;
                        }
                        None => {
                            tx[n].remove(k.as_slice())?;
                        }
                    }
                }
            }
            Ok(())
        });
        res.map_err(|e| match e {
            TransactionError::Storage(e) => sled_err(Tree::Envelopes, "commit", e),
            TransactionError::Abort(()) => StoreError::Backend("sled: commit aborted".into()),
        })?;
        if let Some(c) = &ws.cidr {
            self.presence.set(c);
        }
        self.write_seq.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    /// fsyncs blob files written since the last sync (and the `blobs` directory if any is new).
    fn sync_blobs(&self, st: &mut SyncState) -> Result<(), StoreError> {
        let dir = self.dir.join("blobs");
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_err("list", &dir, e)),
        };
        let mut present = HashSet::new();
        let mut fresh = false;
        for entry in entries {
            let entry = entry.map_err(|e| io_err("list", &dir, e))?;
            let Some(lsn) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u64>().ok())
            else {
                continue;
            };
            if st.synced_blobs.contains(&lsn) {
                present.insert(lsn);
                continue;
            }
            let path = entry.path();
            match File::open(&path) {
                Ok(f) => {
                    f.sync_all().map_err(|e| io_err("fsync blob", &path, e))?;
                    present.insert(lsn);
                    fresh = true;
                }
                // Removed by sled meanwhile (its page was rewritten): nothing to make durable.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err("open blob", &path, e)),
            }
        }
        if fresh {
            fsync_dir(&dir)?;
        }
        st.synced_blobs = present;
        Ok(())
    }

    /// Test hook: overwrites a raw record of a tree (to exercise corruption handling).
    #[cfg(test)]
    #[doc(hidden)]
    pub fn raw_insert(&self, tree: &str, key: &[u8], value: &[u8]) {
        let t = Tree::ALL
            .into_iter()
            .find(|t| t.name() == tree)
            .unwrap_or(Tree::Meta);
        let _ = self.trees.0[t.index()].insert(key, value);
    }
}

impl Store for SledStore {
    fn put(
        &self,
        item: &Verified<Advisory>,
        source: &str,
        now_ms: i64,
    ) -> Result<PutOutcome, StoreError> {
        let _w = lock(&self.writer);
        let mut ov = Overlay::new(&self.trees)?;
        let outcome = ov.put_item(item, source, now_ms)?;
        self.commit(&ov.finish())?;
        Ok(outcome)
    }

    fn put_batch(
        &self,
        items: &[(&Verified<Advisory>, &str)],
        now_ms: i64,
    ) -> Result<Vec<PutOutcome>, StoreError> {
        let _w = lock(&self.writer);
        let mut outcomes = Vec::with_capacity(items.len());
        let mut ov = Overlay::new(&self.trees)?;
        for (item, source) in items {
            // On error the current chunk is dropped whole, so no item is half-applied.
            outcomes.push(ov.put_item(item, source, now_ms)?);
            if ov.writes() >= BATCH_WRITES {
                self.commit(&ov.finish())?;
                ov = Overlay::new(&self.trees)?;
            }
        }
        self.commit(&ov.finish())?;
        Ok(outcomes)
    }

    fn drop_items_audited(
        &self,
        ids: &[ItemId],
        audit: Option<&dyn Fn(&DroppedItem) -> AuditEntry>,
    ) -> Result<Vec<DroppedItem>, StoreError> {
        let _w = lock(&self.writer);
        let mut ov = Overlay::new(&self.trees)?;
        let mut out = Vec::new();
        for id in ids {
            if let Some(d) = ov.drop_item(id)? {
                if let Some(f) = audit {
                    // A number skipped by a failed commit leaves a gap, never a reused key.
                    let seq = self.next_audit.fetch_add(1, Ordering::SeqCst);
                    ov.append_audit(seq, &f(&d));
                }
                out.push(d);
            }
        }
        // One transaction, whatever the number of items: a drop is never half-applied.
        self.commit(&ov.finish())?;
        if !out.is_empty() {
            self.drops.fetch_add(1, Ordering::SeqCst);
        }
        Ok(out)
    }

    fn drop_generation(&self) -> u64 {
        self.drops.load(Ordering::SeqCst)
    }

    fn sync(&self) -> Result<(), StoreError> {
        let target = self.write_seq.load(Ordering::SeqCst);
        let mut st = lock(&self.sync_state);
        if st.synced_seq >= target {
            return Ok(());
        }
        // Every write counted here has been applied: the flush below covers it.
        let covering = self.write_seq.load(Ordering::SeqCst);
        self.db
            .flush()
            .map_err(|e| StoreError::Backend(format!("flush {}: {e}", self.dir.display())))?;
        self.sync_blobs(&mut st)?;
        self.data_file
            .sync_data()
            .map_err(|e| io_err("fdatasync", &self.dir.join("db"), e))?;
        st.synced_seq = covering;
        Ok(())
    }

    fn get(&self, id: &ItemId) -> Result<Option<StoredItem>, StoreError> {
        engine::get(&self.trees, id)
    }

    fn latest(&self, origin: &str, advisory_id: &str) -> Result<Option<StoredItem>, StoreError> {
        engine::latest(&self.trees, origin, advisory_id)
    }

    fn history(&self, origin: &str, advisory_id: &str) -> Result<Vec<StoredItem>, StoreError> {
        engine::history(&self.trees, origin, advisory_id)
    }

    fn list(&self, filter: &ListFilter) -> Result<(Vec<StoredItem>, bool), StoreError> {
        engine::list(&self.trees, filter)
    }

    fn search(&self, query: &IndicatorQuery) -> Result<Vec<IndicatorMatch>, StoreError> {
        engine::search(&self.trees, &self.presence, query)
    }

    fn equivocations(
        &self,
        origin: &str,
        advisory_id: &str,
    ) -> Result<Vec<Equivocation>, StoreError> {
        engine::equivocations(&self.trees, origin, advisory_id)
    }

    fn equivocating_origins(&self) -> Result<Vec<OriginEquivocations>, StoreError> {
        engine::equivocating_origins(&self.trees)
    }

    fn append_audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        let seq = self.next_audit.fetch_add(1, Ordering::SeqCst);
        self.trees.0[Tree::Audit.index()]
            .insert(engine::audit_key(seq), engine::encode_audit(entry))
            .map_err(|e| sled_err(Tree::Audit, "append", e))?;
        self.write_seq.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    fn audit(&self, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        engine::audit(&self.trees, limit)
    }

    fn counts(&self) -> Result<Counts, StoreError> {
        engine::read_counts(&self.trees)
    }

    fn item_ids(&self) -> Result<Vec<ItemId>, StoreError> {
        engine::item_ids(&self.trees)
    }

    fn scan_latest(
        &self,
        origin: Option<&str>,
        include_withdrawn: bool,
        f: &mut dyn FnMut(StoredItem) -> Result<bool, StoreError>,
    ) -> Result<(), StoreError> {
        engine::scan_latest(&self.trees, origin, include_withdrawn, f)
    }

    fn scan_latest_id_prefix(
        &self,
        origin: &str,
        id_prefix: &str,
        include_withdrawn: bool,
        f: &mut dyn FnMut(StoredItem) -> Result<bool, StoreError>,
    ) -> Result<(), StoreError> {
        engine::scan_latest_id_prefix(&self.trees, origin, id_prefix, include_withdrawn, f)
    }

    fn disk_bytes(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }
}
