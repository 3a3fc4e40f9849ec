//! Group commit: the one writer of the node's store. Every durable write — operator publishes,
//! batches, withdrawals, imports, and the items the node machine admitted from peers — is queued
//! here; one task takes everything queued at once and makes it durable with one
//! `put_batch_audited` (each item with its audit entries) and one `Store::sync` (flush +
//! fdatasync), then answers each writer. Concurrent writers therefore share the sled batch and
//! the fdatasync instead of queuing behind each other's. The sync of a batch runs while the next
//! batch is applied (at most one sync in flight), so the disk flush does not idle the writer.
//!
//! Owns: the committer task (started on first use, ended and joined by [`Committer::close`]),
//! the batch bounds, and the audit entries that depend on what `put` did (an "(already stored)"
//! note, equivocation evidence). Must never: answer a writer before the `sync` that covers its
//! write returned; reorder the writes of one writer; run the store on an async thread.

use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::envelope::Verified;
use crate::model::Advisory;
use crate::store::{AuditEntry, PutOutcome, Store, StoreError};

/// Writes queued at most before writers wait (back-pressure).
const QUEUE: usize = 1024;
/// Items committed in one batch at most (bounds the time readers wait for sled's write lock).
const MAX_BATCH_ITEMS: usize = 4096;

/// The audit entry a write asks for, per item.
#[derive(Debug, Clone)]
pub(crate) struct AuditNote {
    /// `publish`, `withdraw`, `import`.
    pub(crate) action: String,
    /// Who asked (operator identity).
    pub(crate) actor: String,
    /// What was done; " (already stored)" is appended for a duplicate.
    pub(crate) detail: String,
}

/// One item to store.
#[derive(Debug)]
pub(crate) struct Entry {
    /// The verified item.
    pub(crate) item: Arc<Verified<Advisory>>,
    /// `local`, `import`, or the peer's member id.
    pub(crate) source: String,
    /// The audit entry of this write (none for items received from peers).
    pub(crate) note: Option<AuditNote>,
    /// Actor of the equivocation audit entry, if `put` finds one (`peer/<id>` or the operator).
    pub(crate) equivocation_actor: Option<String>,
}

/// Why a write was not made durable.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum CommitError {
    /// The store failed (names the tree or I/O error).
    #[error("{0}")]
    Store(String),
    /// The committer is not running (the node is shutting down).
    #[error("the store's committer is not running (tanoad is shutting down)")]
    Stopped,
}

impl From<StoreError> for CommitError {
    fn from(e: StoreError) -> Self {
        CommitError::Store(e.to_string())
    }
}

type Answer = oneshot::Sender<Result<Vec<PutOutcome>, CommitError>>;

#[derive(Debug)]
struct Queued {
    entries: Vec<Entry>,
    now_ms: i64,
    answer: Answer,
}

#[derive(Debug, Default)]
struct Running {
    tx: Option<mpsc::Sender<Queued>>,
    task: Option<JoinHandle<()>>,
    closed: bool,
}

/// The group committer of one store.
#[derive(Debug)]
pub(crate) struct Committer {
    store: Arc<dyn Store>,
    running: Mutex<Running>,
}

impl Committer {
    /// A committer for `store` (its task starts with the first write).
    pub(crate) fn new(store: Arc<dyn Store>) -> Committer {
        Committer {
            store,
            running: Mutex::new(Running::default()),
        }
    }

    fn sender(&self) -> Result<mpsc::Sender<Queued>, CommitError> {
        let mut r = self
            .running
            .lock()
            .map_err(|_| CommitError::Store("committer state poisoned".into()))?;
        if r.closed {
            return Err(CommitError::Stopped);
        }
        if let Some(tx) = &r.tx {
            return Ok(tx.clone());
        }
        let (tx, rx) = mpsc::channel(QUEUE);
        r.task = Some(tokio::spawn(run(Arc::clone(&self.store), rx)));
        r.tx = Some(tx.clone());
        Ok(tx)
    }

    /// Stores `entries` (in order) durably, sharing the batch and the sync with every write
    /// queued meanwhile; answers one outcome per entry once the sync covering them returned.
    pub(crate) async fn commit(
        &self,
        entries: Vec<Entry>,
        now_ms: i64,
    ) -> Result<Vec<PutOutcome>, CommitError> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let tx = self.sender()?;
        let (answer, rx) = oneshot::channel();
        tx.send(Queued {
            entries,
            now_ms,
            answer,
        })
        .await
        .map_err(|_| CommitError::Stopped)?;
        rx.await.map_err(|_| CommitError::Stopped)?
    }

    /// Stops taking writes, lets the task commit what is queued, and joins it.
    pub(crate) async fn close(&self) {
        let task = match self.running.lock() {
            Ok(mut r) => {
                r.closed = true;
                r.tx = None;
                r.task.take()
            }
            Err(_) => None,
        };
        if let Some(t) = task
            && let Err(e) = t.await
        {
            tracing::error!(error = %e, "the store's committer ended abnormally");
        }
    }
}

/// The committer task: takes everything queued, applies it as one batch, then makes it durable
/// with one `sync` and answers its writers — while the next batch is applied. At most one sync
/// is in flight: the next one starts after it returned, so every batch is covered by a sync
/// that started after the batch was applied.
async fn run(store: Arc<dyn Store>, mut rx: mpsc::Receiver<Queued>) {
    let mut syncing: Option<JoinHandle<()>> = None;
    while let Some(first) = rx.recv().await {
        let mut items = first.entries.len();
        let mut batch = vec![first];
        while items < MAX_BATCH_ITEMS {
            match rx.try_recv() {
                Ok(q) => {
                    items += q.entries.len();
                    batch.push(q);
                }
                Err(_) => break,
            }
        }
        let (writes, answers): (Vec<_>, Vec<_>) = batch
            .into_iter()
            .map(|q| ((q.entries, q.now_ms), q.answer))
            .unzip();
        let s = Arc::clone(&store);
        let applied = tokio::task::spawn_blocking(move || apply_batch(s.as_ref(), &writes))
            .await
            .unwrap_or_else(|e| Err(CommitError::Store(format!("commit task failed: {e}"))));
        if let Some(previous) = syncing.take() {
            let _ = previous.await;
        }
        match applied {
            Ok(per_write) => {
                syncing = Some(tokio::spawn(sync_and_answer(
                    Arc::clone(&store),
                    answers,
                    per_write,
                )));
            }
            Err(e) => {
                tracing::error!(error = %e, "group commit failed");
                for answer in answers {
                    let _ = answer.send(Err(e.clone()));
                }
            }
        }
    }
    if let Some(previous) = syncing.take() {
        let _ = previous.await;
    }
}

/// Makes an applied batch durable (one `sync`), then answers each of its writers.
async fn sync_and_answer(
    store: Arc<dyn Store>,
    answers: Vec<Answer>,
    per_write: Vec<Vec<PutOutcome>>,
) {
    let synced = tokio::task::spawn_blocking(move || store.sync())
        .await
        .unwrap_or_else(|e| Err(StoreError::Backend(format!("sync task failed: {e}"))));
    match synced {
        Ok(()) => {
            for (answer, outcomes) in answers.into_iter().zip(per_write) {
                let _ = answer.send(Ok(outcomes));
            }
        }
        Err(e) => {
            let e = CommitError::from(e);
            tracing::error!(error = %e, "group commit failed");
            for answer in answers {
                let _ = answer.send(Err(e.clone()));
            }
        }
    }
}

/// One batch, applied (not yet durable): every entry of every write with one
/// `put_batch_audited` (in order, so a later write of the same item is a duplicate exactly as if
/// written after; each item with its audit entries).
fn apply_batch(
    store: &dyn Store,
    writes: &[(Vec<Entry>, i64)],
) -> Result<Vec<Vec<PutOutcome>>, CommitError> {
    // The batch's time: the latest of its writers' (they all became durable now).
    let now = writes.iter().map(|(_, t)| *t).max().unwrap_or(0);
    let refs: Vec<(&Verified<Advisory>, &str)> = writes
        .iter()
        .flat_map(|(entries, _)| entries.iter())
        .map(|e| (e.item.as_ref(), e.source.as_str()))
        .collect();
    let entries: Vec<&Entry> = writes
        .iter()
        .flat_map(|(entries, _)| entries.iter())
        .collect();
    // Each item's audit entries are written in the same atomic write as the item.
    let outcomes = store.put_batch_audited(&refs, now, &|n, outcome| {
        entries
            .get(n)
            .map_or_else(Vec::new, |e| audit_entries(e, outcome, now))
    })?;
    let mut outcomes = outcomes.into_iter();
    Ok(writes
        .iter()
        .map(|(entries, _)| outcomes.by_ref().take(entries.len()).collect())
        .collect())
}

/// The audit entries of one stored entry: its note (marked when the item was already stored),
/// then the equivocation evidence when `put` found two payloads for one revision.
fn audit_entries(e: &Entry, outcome: &PutOutcome, now: i64) -> Vec<AuditEntry> {
    let item = &e.item;
    let subject = format!("{}/{}", item.origin, item.id);
    let mut out = Vec::new();
    if let Some(n) = &e.note {
        out.push(AuditEntry {
            at_ms: now,
            action: n.action.clone(),
            item_id: Some(item.item_id()),
            subject: subject.clone(),
            actor: n.actor.clone(),
            detail: match outcome {
                PutOutcome::Duplicate => format!("{} (already stored)", n.detail),
                PutOutcome::Stored { .. } => n.detail.clone(),
            },
        });
    }
    if let (
        PutOutcome::Stored {
            equivocation: true, ..
        },
        Some(actor),
    ) = (outcome, &e.equivocation_actor)
    {
        out.push(AuditEntry {
            at_ms: now,
            action: "equivocation".into(),
            item_id: Some(item.item_id()),
            subject,
            actor: actor.clone(),
            detail: format!(
                "{} signed revision {} more than once; evidence recorded, lowest item id chosen",
                item.origin, item.revision
            ),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::store::MemoryStore;
    use tanoa_core::store::conformance::{advisory, signed, ws_item};

    fn entry(item: Verified<Advisory>, note: bool) -> Entry {
        Entry {
            item: Arc::new(item),
            source: "local".into(),
            note: note.then(|| AuditNote {
                action: "publish".into(),
                actor: "op".into(),
                detail: "d".into(),
            }),
            equivocation_actor: Some("op".into()),
        }
    }

    use std::sync::atomic::{AtomicBool, Ordering};
    use tanoa_core::envelope::ItemId;
    use tanoa_core::store::{
        Counts, DroppedItem, Equivocation, IndicatorMatch, IndicatorQuery, ListFilter,
        OriginEquivocations, StoredItem,
    };

    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Ev {
        Applied(Vec<ItemId>),
        SyncStarted,
        SyncEnded,
        Answered(ItemId),
    }

    /// A `MemoryStore` recording when items are applied and syncs start and end; its sync
    /// takes a while (so the next batch is applied meanwhile) and fails when told to.
    #[derive(Debug, Default)]
    struct Recording {
        inner: MemoryStore,
        log: Mutex<Vec<Ev>>,
        fail_sync: AtomicBool,
    }

    impl Recording {
        fn note(&self, e: Ev) {
            self.log.lock().unwrap().push(e);
        }
    }

    impl Store for Recording {
        fn put(
            &self,
            item: &Verified<Advisory>,
            source: &str,
            now_ms: i64,
        ) -> Result<PutOutcome, StoreError> {
            self.inner.put(item, source, now_ms)
        }
        fn put_batch_audited(
            &self,
            items: &[(&Verified<Advisory>, &str)],
            now_ms: i64,
            audit: &dyn Fn(usize, &PutOutcome) -> Vec<AuditEntry>,
        ) -> Result<Vec<PutOutcome>, StoreError> {
            let out = self.inner.put_batch_audited(items, now_ms, audit)?;
            self.note(Ev::Applied(
                items.iter().map(|(v, _)| v.item_id()).collect(),
            ));
            Ok(out)
        }
        fn drop_items_audited(
            &self,
            ids: &[ItemId],
            audit: Option<&dyn Fn(&DroppedItem) -> AuditEntry>,
        ) -> Result<Vec<DroppedItem>, StoreError> {
            self.inner.drop_items_audited(ids, audit)
        }
        fn drop_generation(&self) -> u64 {
            self.inner.drop_generation()
        }
        fn sync(&self) -> Result<(), StoreError> {
            self.note(Ev::SyncStarted);
            std::thread::sleep(std::time::Duration::from_millis(3));
            self.note(Ev::SyncEnded);
            if self.fail_sync.load(Ordering::SeqCst) {
                return Err(StoreError::Backend("fdatasync: disk on fire".into()));
            }
            Ok(())
        }
        fn get(&self, id: &ItemId) -> Result<Option<StoredItem>, StoreError> {
            self.inner.get(id)
        }
        fn latest(&self, o: &str, id: &str) -> Result<Option<StoredItem>, StoreError> {
            self.inner.latest(o, id)
        }
        fn history(&self, o: &str, id: &str) -> Result<Vec<StoredItem>, StoreError> {
            self.inner.history(o, id)
        }
        fn list(&self, f: &ListFilter) -> Result<(Vec<StoredItem>, bool), StoreError> {
            self.inner.list(f)
        }
        fn search(&self, q: &IndicatorQuery) -> Result<Vec<IndicatorMatch>, StoreError> {
            self.inner.search(q)
        }
        fn equivocations(&self, o: &str, id: &str) -> Result<Vec<Equivocation>, StoreError> {
            self.inner.equivocations(o, id)
        }
        fn equivocating_origins(&self) -> Result<Vec<OriginEquivocations>, StoreError> {
            self.inner.equivocating_origins()
        }
        fn append_audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
            self.inner.append_audit(entry)
        }
        fn audit(&self, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
            self.inner.audit(limit)
        }
        fn counts(&self) -> Result<Counts, StoreError> {
            self.inner.counts()
        }
        fn item_ids(&self) -> Result<Vec<ItemId>, StoreError> {
            self.inner.item_ids()
        }
        fn scan_latest(
            &self,
            origin: Option<&str>,
            include_withdrawn: bool,
            f: &mut dyn FnMut(StoredItem) -> Result<bool, StoreError>,
        ) -> Result<(), StoreError> {
            self.inner.scan_latest(origin, include_withdrawn, f)
        }
        fn scan_latest_id_prefix(
            &self,
            origin: &str,
            id_prefix: &str,
            include_withdrawn: bool,
            f: &mut dyn FnMut(StoredItem) -> Result<bool, StoreError>,
        ) -> Result<(), StoreError> {
            self.inner
                .scan_latest_id_prefix(origin, id_prefix, include_withdrawn, f)
        }
        fn disk_bytes(&self) -> u64 {
            0
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_writer_is_answered_after_a_sync_that_started_after_its_write() {
        let rec = Arc::new(Recording::default());
        let c = Arc::new(Committer::new(Arc::clone(&rec) as Arc<dyn Store>));
        let mut tasks = tokio::task::JoinSet::new();
        for t in 0..16u32 {
            let (c, rec) = (Arc::clone(&c), Arc::clone(&rec));
            tasks.spawn(async move {
                for n in 0..8u32 {
                    let item = ws_item(&format!("ws-2026-{t:02}{n:02}"), 1);
                    let id = item.item_id();
                    c.commit(vec![entry(item, true)], 5).await.unwrap();
                    rec.note(Ev::Answered(id));
                }
            });
        }
        while let Some(r) = tasks.join_next().await {
            r.unwrap();
        }
        c.close().await;
        let log = rec.log.lock().unwrap().clone();
        let mut answered = 0;
        for (i, e) in log.iter().enumerate() {
            let Ev::Answered(id) = e else { continue };
            answered += 1;
            let applied = log[..i]
                .iter()
                .position(|e| matches!(e, Ev::Applied(ids) if ids.contains(id)))
                .unwrap_or_else(|| panic!("{id} answered before it was applied"));
            // A sync that started after the write and ended before the answer.
            let started = log[applied..i]
                .iter()
                .position(|e| *e == Ev::SyncStarted)
                .unwrap_or_else(|| panic!("{id} answered with no sync after its write"));
            assert!(
                log[applied + started..i].contains(&Ev::SyncEnded),
                "{id} answered before the sync covering it ended"
            );
        }
        assert_eq!(answered, 128);
        assert_eq!(rec.counts().unwrap().items, 128);
    }

    #[tokio::test]
    async fn a_failed_sync_fails_its_writers_and_the_committer_goes_on() {
        let rec = Arc::new(Recording::default());
        let c = Committer::new(Arc::clone(&rec) as Arc<dyn Store>);
        rec.fail_sync.store(true, Ordering::SeqCst);
        let failed = c
            .commit(vec![entry(ws_item("ws-2026-0001", 1), true)], 5)
            .await;
        match failed {
            Err(CommitError::Store(m)) => assert!(m.contains("disk on fire"), "{m}"),
            other => panic!("expected a store error, got {other:?}"),
        }
        rec.fail_sync.store(false, Ordering::SeqCst);
        let ok = c
            .commit(vec![entry(ws_item("ws-2026-0002", 1), true)], 6)
            .await
            .unwrap();
        assert!(matches!(ok[0], PutOutcome::Stored { .. }), "{ok:?}");
        c.close().await;
    }

    #[tokio::test]
    async fn concurrent_writers_share_batches_and_each_gets_its_own_outcomes() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let c = Arc::new(Committer::new(Arc::clone(&store)));
        let mut tasks = tokio::task::JoinSet::new();
        for n in 0..64u32 {
            let c = Arc::clone(&c);
            tasks.spawn(async move {
                let item = ws_item(&format!("ws-2026-{n:04}"), 1);
                let id = item.item_id();
                let out = c.commit(vec![entry(item, true)], 5).await.unwrap();
                (id, out)
            });
        }
        while let Some(r) = tasks.join_next().await {
            let (id, out) = r.unwrap();
            assert_eq!(out.len(), 1);
            assert!(matches!(out[0], PutOutcome::Stored { .. }), "{out:?}");
            assert!(store.get(&id).unwrap().is_some(), "durable before answered");
        }
        assert_eq!(store.counts().unwrap().items, 64);
        assert_eq!(store.audit(1000).unwrap().len(), 64);

        // A duplicate is noted, an equivocation leaves its evidence entry.
        let again = ws_item("ws-2026-0000", 1);
        let out = c.commit(vec![entry(again, true)], 6).await.unwrap();
        assert_eq!(out, vec![PutOutcome::Duplicate]);
        let newest = &store.audit(1).unwrap()[0];
        assert!(newest.detail.ends_with("(already stored)"), "{newest:?}");
        let mut twin = advisory("ws-cert", "ws-2026-0001", 1);
        twin.title = "another payload for revision 1".into();
        let out = c.commit(vec![entry(signed(twin), false)], 7).await.unwrap();
        assert!(matches!(
            out[0],
            PutOutcome::Stored {
                equivocation: true,
                ..
            }
        ));
        assert_eq!(store.audit(1).unwrap()[0].action, "equivocation");

        c.close().await;
        let refused = c
            .commit(vec![entry(ws_item("ws-2026-9999", 1), true)], 8)
            .await;
        assert!(matches!(refused, Err(CommitError::Stopped)), "{refused:?}");
    }
}
