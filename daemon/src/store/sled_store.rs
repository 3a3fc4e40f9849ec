//! Durable `Store` on sled 0.34.7.
//!
//! Owns: the sled database of a node (one directory), the one sled tree `tanoa` holding every
//! logical tree (`envelopes`, `history`, `latest`, `by_modified`, `indicators`, `tombstones`,
//! `equivocations`, `audit`, `meta`; key layouts in `store::engine`), the migration of a store
//! of the first sled layout, atomic commits, the cache size, and durability with group commit.
//! Must never: acknowledge durability (`sync` returning `Ok`) before the data file *and* every
//! blob file are fsynced; apply part of a `put`; be opened twice (sled locks the directory);
//! drop data of the first layout before its copy is durable.
//!
//! # Layout
//! Logical tree `t`'s key `k` is the sled key `[t as u8] ++ k` of the one tree `tanoa` (the
//! tree's index in `engine::Tree`, 0 = `envelopes` … 8 = `meta`), so a prefix scan of a
//! logical tree is a prefix scan of sled, and a commit touching several logical trees is ONE
//! `sled::Tree::apply_batch`: atomic (sled seals the batch in its log, recovery applies it
//! whole or not at all) with no read per write. The first sled layout had one sled tree per
//! logical tree (same keys and values) and committed with a multi-tree transaction, whose every
//! insert and remove first reads the key's current value (sled 0.34.7 `TransactionalTree::
//! insert` returns the old value). Measured (bench `federation`, store alone, 512 a batch):
//! 11.0k/s instead of 8.3k/s with 20,000 advisories, where the pages written are cached; no
//! difference at 100,000 (5.1k/s vs 5.3k/s), where every write of a random key (item id,
//! indicator, advisory id) pulls its leaf into sled's 32 MiB cache first.
//!
//! A store of the first layout (its `meta` tree tagged `engine::FORMAT_TAG`) is migrated at
//! open: its trees are copied into `tanoa` in batches, the format tag last; the copy is then
//! made durable (`sync`) and only then are the old trees dropped. A migration interrupted before
//! the tag is started again from a cleared `tanoa`; one interrupted after it only drops the old
//! trees. A first-layout store with another tag is refused, naming the directory.
//!
//! # Writes
//! Writers are serialized by a mutex. A put (or a chunk of `put_batch`) is planned in memory by
//! `engine::Overlay` against the committed state, then applied as one batch (see Layout). An
//! item costs about 5 + (number of indicators) key writes: envelope, history, latest,
//! by_modified, indicator entries, plus the removal of the previous latest's entries; counters
//! in `meta` are written once per batch; `put_batch_audited` adds each item's audit entries to
//! the same batch. `put_batch` commits one batch per chunk of about `BATCH_WRITES` key writes,
//! which bounds how long sled's global write lock (taken by every batch) blocks readers.
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

use super::spill::{self, Spill};
use super::{
    AuditEntry, Counts, DroppedItem, Equivocation, IndicatorMatch, IndicatorQuery, ListFilter,
    OriginEquivocations, PutOutcome, Store, StoreError, StoredItem,
};
use super::{fsync_dir, io_err};
use crate::envelope::{ItemId, Verified};
use crate::model::Advisory;
use tanoa_core::store::engine::{self, CidrPresence, Kv, Overlay, Tree, Visit, WriteSet};

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

/// Key writes per `put_batch` batch (bounds how long readers wait on a commit).
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

/// Name of the one sled tree holding every logical tree (layout below).
const STORE_TREE: &str = "tanoa";

/// Key writes per migration batch (`migrate_v1`).
const MIGRATE_BATCH: usize = 16_384;

/// The logical trees of the store, all in the one sled tree `STORE_TREE`: the logical tree
/// `t`'s key `k` is stored as `[t.index()] ++ k`. One tree lets a commit be one `apply_batch`
/// (atomic, recovered whole) instead of a multi-tree transaction, whose every insert and
/// remove first reads the key's current value.
struct Trees(sled::Tree, Spill);

/// The physical key of `key` in logical tree `tree`.
fn pkey(tree: Tree, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + key.len());
    k.push(tree.index() as u8);
    k.extend_from_slice(key);
    k
}

fn sled_err(tree: Tree, what: &str, e: sled::Error) -> StoreError {
    match e {
        sled::Error::Corruption { .. } => StoreError::Corrupt {
            tree: tree.name(),
            detail: format!("{what}: {e}"),
        },
        other => StoreError::Backend(format!("tree {}: {what}: {other}", tree.name())),
    }
}

impl Trees {
    /// The value `v` of `key` in `tree` as the engine wrote it: an envelope record kept outside
    /// sled (`spill`) is read back. `None`: the key was removed while this read ran.
    fn resolve(
        &self,
        tree: Tree,
        key: &[u8],
        v: sled::IVec,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        if !matches!(tree, Tree::Envelopes) || !spill::is_ref(&v) {
            return Ok(Some(v.to_vec()));
        }
        if let Some(bytes) = self.1.read(key, &v)? {
            return Ok(Some(bytes));
        }
        // No file: a removal racing this read (the file goes only after its key), or a corrupt
        // store. Read the key again to tell.
        match self
            .0
            .get(pkey(tree, key))
            .map_err(|e| sled_err(tree, "get", e))?
        {
            None => Ok(None),
            Some(now) if now != v => self.resolve(tree, key, now),
            Some(_) => Err(StoreError::Corrupt {
                tree: tree.name(),
                detail: format!(
                    "item {}: sled references a spilled record whose file is missing in {}",
                    hex::encode(key),
                    self.1.dir().display()
                ),
            }),
        }
    }
}

impl Trees {
    /// Calls `f` on the scanned entry (physical key `k`, value `v`); a spilled envelope record
    /// is read back first, and skipped when its key was removed meanwhile. Returns `f`'s answer.
    fn visit(
        &self,
        tree: Tree,
        k: &[u8],
        v: sled::IVec,
        f: &mut Visit<'_>,
    ) -> Result<bool, StoreError> {
        if matches!(tree, Tree::Envelopes) && spill::is_ref(&v) {
            return match self.resolve(tree, &k[1..], v)? {
                Some(v) => f(&k[1..], &v),
                None => Ok(true),
            };
        }
        // Everything else is handed over as sled holds it, without a copy.
        f(&k[1..], &v)
    }
}

impl Kv for Trees {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        match self
            .0
            .get(pkey(tree, key))
            .map_err(|e| sled_err(tree, "get", e))?
        {
            None => Ok(None),
            Some(v) => self.resolve(tree, key, v),
        }
    }

    fn scan_keys(
        &self,
        tree: Tree,
        prefix: &[u8],
        f: &mut dyn FnMut(&[u8]) -> Result<bool, StoreError>,
    ) -> Result<(), StoreError> {
        for k in self.0.scan_prefix(pkey(tree, prefix)).keys() {
            let k = k.map_err(|e| sled_err(tree, "scan", e))?;
            if !f(&k[1..])? {
                break;
            }
        }
        Ok(())
    }

    fn contains(&self, tree: Tree, key: &[u8]) -> Result<bool, StoreError> {
        self.0
            .contains_key(pkey(tree, key))
            .map_err(|e| sled_err(tree, "get", e))
    }

    fn scan(
        &self,
        tree: Tree,
        prefix: &[u8],
        reverse: bool,
        f: &mut Visit<'_>,
    ) -> Result<(), StoreError> {
        let iter = self.0.scan_prefix(pkey(tree, prefix));
        let iter: Box<dyn Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>> = if reverse {
            Box::new(iter.rev())
        } else {
            Box::new(iter)
        };
        for kv in iter {
            let (k, v) = kv.map_err(|e| sled_err(tree, "scan", e))?;
            if !self.visit(tree, &k, v, f)? {
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
        let full_prefix = pkey(tree, prefix);
        let start = if after >= prefix {
            Bound::Excluded(pkey(tree, after))
        } else {
            Bound::Included(full_prefix.clone())
        };
        for kv in self.0.range::<Vec<u8>, _>((start, Bound::Unbounded)) {
            let (k, v) = kv.map_err(|e| sled_err(tree, "scan", e))?;
            if !k.starts_with(&full_prefix) || !self.visit(tree, &k, v, f)? {
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
    /// Keys of spilled envelope records removed by an applied batch: their files go after the
    /// next sync.
    unspill: Mutex<Vec<Vec<u8>>>,
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

/// Whether `db` holds the trees of the first sled layout (one sled tree per logical tree,
/// named after it), with content.
fn has_v1_trees(db: &sled::Db) -> Result<bool, StoreError> {
    let names = db.tree_names();
    for t in Tree::ALL {
        if names.iter().any(|n| n.as_ref() == t.name().as_bytes()) {
            let tree = db
                .open_tree(t.name())
                .map_err(|e| sled_err(t, "open tree", e))?;
            if !tree.is_empty() {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// Removes the trees of the first sled layout, if any are left.
fn drop_v1_trees(db: &sled::Db) -> Result<(), StoreError> {
    let names = db.tree_names();
    for t in Tree::ALL {
        if names.iter().any(|n| n.as_ref() == t.name().as_bytes()) {
            db.drop_tree(t.name())
                .map_err(|e| sled_err(t, "drop the tree of the first layout", e))?;
        }
    }
    Ok(())
}

/// Copies a store of the first sled layout (one sled tree per logical tree, same keys and
/// values) into `STORE_TREE`, then makes the copy durable. Its format tag is copied last, so a
/// copy interrupted before it is started again (from a cleared tree) at the next open; the
/// trees of the first layout are dropped (by `open`) only once the tagged copy is durable.
fn migrate_v1(path: &Path, db: &sled::Db, trees: &Trees) -> Result<(), StoreError> {
    let refuse = |detail: String| StoreError::Corrupt {
        tree: Tree::Meta.name(),
        detail: format!("store {}: {detail}", path.display()),
    };
    let old_meta = db
        .open_tree(Tree::Meta.name())
        .map_err(|e| sled_err(Tree::Meta, "open tree", e))?;
    let tag = old_meta
        .get(engine::META_FORMAT)
        .map_err(|e| sled_err(Tree::Meta, "get", e))?;
    if tag.as_deref() != Some(engine::FORMAT_TAG) {
        return Err(refuse(format!(
            "has trees of the first sled layout with format {:?}, this build migrates {:?} only",
            tag.as_deref().map(String::from_utf8_lossy),
            String::from_utf8_lossy(engine::FORMAT_TAG)
        )));
    }
    tracing::info!(store = %path.display(), "migrating the store to one sled tree");
    trees
        .0
        .clear()
        .map_err(|e| sled_err(Tree::Meta, "clear before migrating", e))?;
    let mut copied = 0u64;
    for t in Tree::ALL {
        let old = db
            .open_tree(t.name())
            .map_err(|e| sled_err(t, "open tree", e))?;
        let mut batch = sled::Batch::default();
        let mut n = 0;
        for kv in old.iter() {
            let (k, v) = kv.map_err(|e| sled_err(t, "migrate", e))?;
            if t == Tree::Meta && k.as_ref() == engine::META_FORMAT {
                continue;
            }
            batch.insert(pkey(t, &k), v);
            n += 1;
            if n == MIGRATE_BATCH {
                trees
                    .0
                    .apply_batch(std::mem::take(&mut batch))
                    .map_err(|e| sled_err(t, "migrate", e))?;
                copied += n as u64;
                n = 0;
            }
        }
        trees
            .0
            .apply_batch(batch)
            .map_err(|e| sled_err(t, "migrate", e))?;
        copied += n as u64;
    }
    trees
        .0
        .insert(pkey(Tree::Meta, engine::META_FORMAT), engine::FORMAT_TAG)
        .map_err(|e| sled_err(Tree::Meta, "write format tag", e))?;
    tracing::info!(store = %path.display(), keys = copied, "store migrated to one sled tree");
    Ok(())
}

impl SledStore {
    /// Opens (creating if needed) the store in directory `path`.
    pub fn open(path: &Path, config: &SledConfig) -> Result<SledStore, StoreError> {
        std::fs::create_dir_all(path).map_err(|e| io_err("create store directory", path, e))?;
        let db = open_db(path, config)?;
        let db_file = path.join("db");
        let data_file = File::open(&db_file).map_err(|e| io_err("open", &db_file, e))?;
        let trees = Trees(
            db.open_tree(STORE_TREE)
                .map_err(|e| sled_err(Tree::Meta, "open tree", e))?,
            Spill::new(path),
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
            None if has_v1_trees(&db)? => {
                migrate_v1(path, &db, &trees)?;
            }
            None => {
                trees
                    .0
                    .insert(pkey(Tree::Meta, engine::META_FORMAT), engine::FORMAT_TAG)
                    .map_err(|e| sled_err(Tree::Meta, "write format tag", e))?;
            }
        }
        let v1_left = db
            .tree_names()
            .iter()
            .any(|n| Tree::ALL.iter().any(|t| n.as_ref() == t.name().as_bytes()));
        let swept = trees.1.sweep(|key| {
            Ok(trees
                .0
                .get(pkey(Tree::Envelopes, key))
                .map_err(|e| sled_err(Tree::Envelopes, "get", e))?
                .is_some_and(|v| spill::is_ref(&v)))
        })?;
        if swept > 0 {
            tracing::info!(store = %path.display(), files = swept, "removed spilled envelope files no record references");
        }
        let presence = CidrPresence::new(&engine::read_cidr_counts(&trees)?);
        let next_audit = engine::next_audit_seq(&trees)?;
        fsync_dir(path)?;
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fsync_dir(parent)?;
        }
        let store = SledStore {
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
            unspill: Mutex::new(Vec::new()),
        };
        if v1_left {
            // The copy (tagged) is made durable, blob files included, before the trees of the
            // first layout are dropped; a drop lost in a crash is done again at the next open.
            store.sync()?;
            drop_v1_trees(&store.db)?;
            store.write_seq.fetch_add(1, Ordering::SeqCst);
        }
        Ok(store)
    }

    /// Opens the closed store in `path` and closes it again, so that sled writes its snapshot:
    /// the next open then replays only what is written after this call. sled 0.34.7 writes a
    /// snapshot only while opening (recovery replays every log segment written since the last
    /// one, so the first open after loading 10^6 advisories reads the whole multi-GB file);
    /// `tanoad` calls this after a clean shutdown. Returns how long it took.
    pub fn checkpoint(path: &Path, config: &SledConfig) -> Result<std::time::Duration, StoreError> {
        let started = std::time::Instant::now();
        drop(SledStore::open(path, config)?);
        Ok(started.elapsed())
    }

    /// Directory of the store.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Applies a write set as one sled batch (atomic: recovered whole or not at all), then
    /// publishes the CIDR counters.
    fn commit(&self, ws: WriteSet) -> Result<(), StoreError> {
        if ws.is_empty() {
            return Ok(());
        }
        let WriteSet { trees, cidr } = ws;
        let mut batch = sled::Batch::default();
        let (mut spilled, mut unspill) = (false, Vec::new());
        for (t, writes) in Tree::ALL.into_iter().zip(trees) {
            let envelopes = matches!(t, Tree::Envelopes);
            for (k, v) in writes {
                match v {
                    Some(v) if envelopes && v.len() > spill::SPILL_BYTES => {
                        let reference = self.trees.1.write(&k, &v)?;
                        spilled = true;
                        batch.insert(pkey(t, &k), reference);
                    }
                    Some(v) => batch.insert(pkey(t, &k), v),
                    None => {
                        if envelopes {
                            unspill.push(k.clone());
                        }
                        batch.remove(pkey(t, &k));
                    }
                }
            }
        }
        if spilled {
            // The files are durable before anything references them.
            self.trees.1.sync_dir()?;
        }
        self.trees
            .0
            .apply_batch(batch)
            .map_err(|e| sled_err(Tree::Envelopes, "commit", e))?;
        if !unspill.is_empty() {
            // Removed by the next sync, once the removal of their keys is durable.
            lock(&self.unspill).extend(unspill);
        }
        if let Some(c) = &cidr {
            self.presence.set(c);
        }
        self.write_seq.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    /// Removes the spilled files of envelope records whose removal is durable, unless a later
    /// write stored the record again (the writer lock keeps writes out meanwhile). A file left
    /// behind (an error here, a crash) is removed at the next open.
    fn remove_spilled(&self, keys: &[Vec<u8>]) {
        let _w = lock(&self.writer);
        for k in keys {
            match self.trees.0.get(pkey(Tree::Envelopes, k)) {
                Ok(None) => {}
                Ok(Some(v)) if !spill::is_ref(&v) => {}
                // Stored again, or unknown: keep the file.
                _ => continue,
            }
            if let Err(e) = self.trees.1.remove(k) {
                tracing::warn!(error = %e, "spilled envelope record not removed (the next open removes it)");
            }
        }
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
        let _ = self.trees.0.insert(pkey(t, key), value);
    }

    /// Test hook: the raw record of a tree, as sled holds it.
    #[cfg(test)]
    #[doc(hidden)]
    pub fn raw_get(&self, tree: &str, key: &[u8]) -> Option<Vec<u8>> {
        let t = Tree::ALL
            .into_iter()
            .find(|t| t.name() == tree)
            .unwrap_or(Tree::Meta);
        self.trees
            .0
            .get(pkey(t, key))
            .ok()
            .flatten()
            .map(|v| v.to_vec())
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
        self.commit(ov.finish())?;
        Ok(outcome)
    }

    fn put_batch(
        &self,
        items: &[(&Verified<Advisory>, &str)],
        now_ms: i64,
    ) -> Result<Vec<PutOutcome>, StoreError> {
        self.put_batch_audited(items, now_ms, &|_, _| Vec::new())
    }

    fn put_batch_audited(
        &self,
        items: &[(&Verified<Advisory>, &str)],
        now_ms: i64,
        audit: &dyn Fn(usize, &PutOutcome) -> Vec<AuditEntry>,
    ) -> Result<Vec<PutOutcome>, StoreError> {
        let _w = lock(&self.writer);
        let mut outcomes = Vec::with_capacity(items.len());
        let mut ov = Overlay::new(&self.trees)?;
        for (n, (item, source)) in items.iter().enumerate() {
            // On error the current chunk is dropped whole, so no item is half-applied.
            let outcome = ov.put_item(item, source, now_ms)?;
            for entry in audit(n, &outcome) {
                // A number skipped by a failed commit leaves a gap, never a reused key.
                let seq = self.next_audit.fetch_add(1, Ordering::SeqCst);
                ov.append_audit(seq, &entry);
            }
            outcomes.push(outcome);
            if ov.writes() >= BATCH_WRITES {
                self.commit(ov.finish())?;
                ov = Overlay::new(&self.trees)?;
            }
        }
        self.commit(ov.finish())?;
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
        // One batch, whatever the number of items: a drop is never half-applied.
        self.commit(ov.finish())?;
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
        // Taken before the flush: every key listed here was removed by a batch already applied.
        let unspill = std::mem::take(&mut *lock(&self.unspill));
        self.db
            .flush()
            .map_err(|e| StoreError::Backend(format!("flush {}: {e}", self.dir.display())))?;
        self.sync_blobs(&mut st)?;
        self.data_file
            .sync_data()
            .map_err(|e| io_err("fdatasync", &self.dir.join("db"), e))?;
        st.synced_seq = covering;
        drop(st);
        if !unspill.is_empty() {
            self.remove_spilled(&unspill);
        }
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
        self.trees
            .0
            .insert(
                pkey(Tree::Audit, &engine::audit_key(seq)),
                engine::encode_audit(entry),
            )
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
        self.db.size_on_disk().unwrap_or(0) + self.trees.1.disk_bytes()
    }
}

#[cfg(test)]
mod layout_tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::super::sled_conformance::{REFERENCE_ADVS, reference_items, reference_queries};
    use super::*;
    use tanoa_core::store::conformance::*;

    /// What `to_first_layout` leaves of the one-tree layout.
    #[derive(Clone, Copy)]
    enum Left {
        /// Nothing: a store written by a build of the first layout.
        Nothing,
        /// A partial, untagged copy (with a key the first layout does not hold): a migration
        /// interrupted before its end.
        PartialCopy,
        /// The whole tagged copy: a migration interrupted before the old trees were dropped.
        TaggedCopy,
    }

    /// Rewrites the closed store in `dir` into the first sled layout (one sled tree per
    /// logical tree, same keys and values), leaving `left` of the one-tree layout.
    fn to_first_layout(dir: &Path, left: Left) {
        let db = open_db(dir, &SledConfig::default()).unwrap();
        let one = db.open_tree(STORE_TREE).unwrap();
        for kv in one.iter() {
            let (k, v) = kv.unwrap();
            let t = Tree::ALL[usize::from(k[0])];
            db.open_tree(t.name()).unwrap().insert(&k[1..], v).unwrap();
        }
        match left {
            Left::Nothing => {
                db.drop_tree(STORE_TREE).unwrap();
            }
            Left::PartialCopy => {
                one.remove(pkey(Tree::Meta, engine::META_FORMAT)).unwrap();
                let firsts: Vec<_> = one.iter().keys().step_by(2).map(|k| k.unwrap()).collect();
                for k in firsts {
                    one.remove(k).unwrap();
                }
                one.insert(pkey(Tree::Envelopes, &[0xEE; 32]), b"stray".to_vec())
                    .unwrap();
            }
            Left::TaggedCopy => {}
        }
        db.flush().unwrap();
    }

    fn tree_names(dir: &Path) -> Vec<String> {
        let db = open_db(dir, &SledConfig::default()).unwrap();
        db.tree_names()
            .iter()
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .collect()
    }

    fn fill(store: &SledStore) {
        let [v, w, t] = reference_items();
        for i in [
            ws_item("ws-2026-0001", 1),
            v,
            ws_item("ws-2026-0001", 2),
            w,
            t,
        ] {
            put(store, &i);
        }
        store.append_audit(&audit_entry(1, None)).unwrap();
        store.append_audit(&audit_entry(2, None)).unwrap();
        store.sync().unwrap();
    }

    fn observe(store: &SledStore) -> (Snapshot, Vec<AuditEntry>) {
        (
            snapshot(store, &REFERENCE_ADVS, &reference_queries()),
            store.audit(100).unwrap(),
        )
    }

    #[test]
    fn a_store_of_the_first_layout_is_migrated_at_open_whatever_was_left() {
        for left in [Left::Nothing, Left::PartialCopy, Left::TaggedCopy] {
            let dir = tempfile::tempdir().unwrap();
            let before = {
                let store = SledStore::open(dir.path(), &SledConfig::default()).unwrap();
                fill(&store);
                observe(&store)
            };
            assert_eq!(before.0.counts, counts(3, 1, 5, 12, 1));
            assert_eq!(before.1.len(), 2);
            to_first_layout(dir.path(), left);
            assert!(tree_names(dir.path()).contains(&"envelopes".to_string()));

            let store = SledStore::open(dir.path(), &SledConfig::default()).unwrap();
            assert_eq!(observe(&store), before, "migrated store differs");
            // The next audit entry follows the migrated ones; new items are stored.
            store.append_audit(&audit_entry(3, None)).unwrap();
            assert_eq!(store.audit(1).unwrap()[0], audit_entry(3, None));
            put(&store, &ws_item("ws-2026-0003", 1));
            store.sync().unwrap();
            drop(store);

            let names = tree_names(dir.path());
            for t in Tree::ALL {
                assert!(!names.contains(&t.name().to_string()), "{} left", t.name());
            }
            let store = SledStore::open(dir.path(), &SledConfig::default()).unwrap();
            assert_eq!(store.counts().unwrap(), counts(4, 1, 6, 18, 1));
            assert_eq!(store.audit(100).unwrap().len(), 3);
        }
    }

    #[test]
    fn a_first_layout_store_of_another_format_is_refused_naming_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = SledStore::open(dir.path(), &SledConfig::default()).unwrap();
            fill(&store);
            store.raw_insert("meta", b"format", b"tanoa-store-v0");
        }
        to_first_layout(dir.path(), Left::Nothing);
        let err = SledStore::open(dir.path(), &SledConfig::default()).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("tanoa-store-v0"), "{text}");
        assert!(text.contains(&dir.path().display().to_string()), "{text}");
        // Nothing was dropped: the trees of the first layout are still there.
        assert!(tree_names(dir.path()).contains(&"envelopes".to_string()));
    }

    #[test]
    fn audited_batches_write_each_items_entries_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path(), &SledConfig::default()).unwrap();
        let items: Vec<_> = (0..3)
            .map(|n| ws_item(&format!("ws-2026-{n:04}"), 1))
            .collect();
        let mut refs: Vec<(&Verified<Advisory>, &str)> =
            items.iter().map(|v| (v, "local")).collect();
        refs.push((&items[0], "local"));
        let outcomes = store
            .put_batch_audited(&refs, 5, &|n, outcome| {
                let mut e = audit_entry(u32::try_from(n).unwrap(), None);
                if matches!(outcome, PutOutcome::Duplicate) {
                    e.detail.push_str(" (already stored)");
                }
                vec![e]
            })
            .unwrap();
        assert_eq!(outcomes.len(), 4);
        assert_eq!(outcomes[3], PutOutcome::Duplicate);
        let audit = store.audit(10).unwrap();
        let details: Vec<&str> = audit.iter().map(|e| e.detail.as_str()).collect();
        assert_eq!(
            details,
            ["entry 3 (already stored)", "entry 2", "entry 1", "entry 0"]
        );
        assert_eq!(store.counts().unwrap().items, 3);
    }
}

#[cfg(test)]
mod spill_tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use tanoa_core::store::conformance::*;

    /// A ws-cert advisory whose signed record is about `extras` bytes larger than a small one.
    fn big_item(id: &str, revision: u64, extras: usize) -> Verified<Advisory> {
        let mut a = advisory(WS, id, revision);
        // Valid JSON (extras is an object kept verbatim), not compressible to nothing.
        let filler: String = (0..extras)
            .map(|i| char::from(b'a' + u8::try_from((i * 7 + i / 13) % 26).unwrap()))
            .collect();
        a.extras = format!("{{\"x_note\":\"{filler}\"}}").into_bytes();
        signed(a)
    }

    fn raw(store: &SledStore, id: &ItemId) -> Option<sled::IVec> {
        store.trees.0.get(pkey(Tree::Envelopes, &id.0)).unwrap()
    }

    fn file_of(dir: &Path, id: &ItemId) -> PathBuf {
        dir.join("envelopes").join(hex::encode(id.0))
    }

    fn open(dir: &Path) -> SledStore {
        SledStore::open(dir, &SledConfig::default()).unwrap()
    }

    #[test]
    fn a_big_envelope_record_is_a_file_sled_only_references_and_reads_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        let big = big_item("ws-2026-0100", 1, 300 * 1024);
        let small = ws_item("ws-2026-0101", 1);
        let (big_id, small_id) = (big.item_id(), small.item_id());
        {
            let store = open(dir.path());
            store
                .put_batch(&[(&big, "local"), (&small, "local")], 5)
                .unwrap();
            store.sync().unwrap();
            // sled holds a reference of a few dozen bytes for the big record, the small one inline.
            let r = raw(&store, &big_id).unwrap();
            assert!(
                spill::is_ref(&r) && r.len() < 64,
                "{} bytes in sled",
                r.len()
            );
            assert!(!spill::is_ref(&raw(&store, &small_id).unwrap()));
            // A record of 10 KiB spills too: 17 of them in one sled leaf would make a blob.
            let mid = big_item("ws-2026-0105", 1, 10 * 1024);
            store.put(&mid, "local", 5).unwrap();
            assert!(spill::is_ref(&raw(&store, &mid.item_id()).unwrap()));
            assert!(store.get(&mid.item_id()).unwrap().is_some());
            assert!(!file_of(dir.path(), &small_id).exists());
            let file = std::fs::metadata(file_of(dir.path(), &big_id)).unwrap();
            assert!(file.len() > 300 * 1024, "{}", file.len());
            assert!(store.disk_bytes() >= file.len());

            let got = store.get(&big_id).unwrap().unwrap();
            assert_eq!(got.envelope.to_proto(), big.envelope().to_proto());
            assert_eq!(got.advisory.extras, big.extras);
            let latest = store.latest(WS, "ws-2026-0100").unwrap().unwrap();
            assert_eq!(latest.item_id, big_id);
            assert_eq!(store.history(WS, "ws-2026-0100").unwrap().len(), 1);
            let (listed, _) = store.list(&ListFilter::default()).unwrap();
            assert!(listed.iter().any(|i| i.item_id == big_id));
            let ids = store.item_ids().unwrap();
            assert!(ids.contains(&big_id) && ids.contains(&small_id) && ids.len() == 3);
            // Putting it again is a duplicate and leaves the file as it was.
            let again = store.put(&big, "local", 6).unwrap();
            assert!(matches!(again, PutOutcome::Duplicate), "{again:?}");
        }
        // Reopened: the same record.
        let store = open(dir.path());
        let got = store.get(&big_id).unwrap().unwrap();
        assert_eq!(got.envelope.to_proto(), big.envelope().to_proto());

        // Dropped: the key goes at once, the file after the removal is durable.
        let dropped = store.drop_items(&[big_id]).unwrap();
        assert_eq!(dropped.len(), 1);
        assert!(store.get(&big_id).unwrap().is_none());
        store.sync().unwrap();
        assert!(
            !file_of(dir.path(), &big_id).exists(),
            "file left after a durable drop"
        );
        assert!(store.get(&small_id).unwrap().is_some());
    }

    #[test]
    fn a_record_stored_again_before_the_sync_keeps_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let big = big_item("ws-2026-0102", 1, 200 * 1024);
        let id = big.item_id();
        let store = open(dir.path());
        store.put(&big, "local", 5).unwrap();
        store.sync().unwrap();
        store.drop_items(&[id]).unwrap();
        // Stored again (a peer sends it back) before the drop's sync removed the file.
        store.put(&big, "peer", 6).unwrap();
        store.sync().unwrap();
        assert!(file_of(dir.path(), &id).exists());
        let got = store.get(&id).unwrap().unwrap();
        assert_eq!(got.envelope.to_proto(), big.envelope().to_proto());
        drop(store);
        assert!(open(dir.path()).get(&id).unwrap().is_some());
    }

    #[test]
    fn a_spilled_file_that_is_altered_or_missing_is_reported_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let big = big_item("ws-2026-0103", 1, 200 * 1024);
        let id = big.item_id();
        let store = open(dir.path());
        store.put(&big, "local", 5).unwrap();
        store.sync().unwrap();
        let file = file_of(dir.path(), &id);

        let mut bytes = std::fs::read(&file).unwrap();
        let n = bytes.len() / 2;
        bytes[n] ^= 0x55;
        std::fs::write(&file, &bytes).unwrap();
        let err = store.get(&id).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
        assert!(
            err.to_string().contains(&file.display().to_string()),
            "{err}"
        );

        std::fs::remove_file(&file).unwrap();
        let err = store.get(&id).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
        let text = err.to_string();
        assert!(
            text.contains("missing") && text.contains(&hex::encode(id.0)),
            "{text}"
        );
        // The rest of the store still answers.
        assert_eq!(store.item_ids().unwrap(), vec![id]);
    }

    #[test]
    fn files_no_record_references_are_removed_at_open_and_referenced_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let big = big_item("ws-2026-0104", 1, 200 * 1024);
        let id = big.item_id();
        {
            let store = open(dir.path());
            store.put(&big, "local", 5).unwrap();
            store.sync().unwrap();
        }
        let spill_dir = dir.path().join("envelopes");
        // What a crash can leave: a file being written, and the file of a removed record.
        let tmp = spill_dir.join(format!("{}.tmp", hex::encode([7u8; 32])));
        let orphan = spill_dir.join(hex::encode([9u8; 32]));
        let stranger = spill_dir.join("notes.txt");
        for f in [&tmp, &orphan, &stranger] {
            std::fs::write(f, b"left over").unwrap();
        }
        let store = open(dir.path());
        for f in [&tmp, &orphan, &stranger] {
            assert!(!f.exists(), "{} kept", f.display());
        }
        assert!(file_of(dir.path(), &id).exists());
        assert!(store.get(&id).unwrap().is_some());
    }
}
