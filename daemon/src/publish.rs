//! The operator's write path: assign, normalize, validate, sign, store, sync, audit, notify.
//!
//! Owns: `NodeCore` (this member's signing identity, the keyring of trusted keys, the limits,
//! the store and the change-event channel), the rules for what the daemon assigns on publish
//! (origin, id, revision, created/modified), withdrawal tombstones, importing signed envelopes,
//! storing what the node machine admitted from peers (`store_received`, step 3 of
//! `tanoa_core::machine`'s pipeline, called by the sync driver), handing locally accepted items
//! to the sync driver after they are durable (one-way), the audit entries of these actions, and serializing
//! publishes of one advisory id.
//! Must never: acknowledge a write before `Store::sync` returned, call the store outside
//! `spawn_blocking`, store anything that is not a `Verified<Advisory>`, or know about gRPC
//! (the `api` module maps `CoreError` to a status).

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, PoisonError};
use std::time::Instant;

use tokio::sync::{Mutex, broadcast};

use crate::commit::{AuditNote, CommitError, Committer, Entry};
use crate::envelope::{
    self, Envelope, EnvelopeError, ItemId, Keyring, PublicKeyRecord, SigningIdentity, Verified,
};
use crate::machine::{Checked, KeyringVerifier, Verify};
use crate::model::{self, Advisory, Draft, Limits, ValidationError, ValidationErrors};
use crate::roster::RosterRuntime;
use crate::store::{AuditEntry, PutOutcome, Store, StoreError, StoredItem};
use crate::sync::{ItemMeta, RestoreStatus, SyncError};
use crate::sync_handle::{CheckedItems, DriverError, SyncHandle};

/// `source` of items this node published.
pub(crate) const SOURCE_LOCAL: &str = "local";
/// `source` of items stored by `ImportEnvelope`.
pub(crate) const SOURCE_IMPORT: &str = "import";
/// Capacity of the change-event channel; a watcher further behind than this is cut off.
pub(crate) const EVENT_CAPACITY: usize = 1024;
/// Number of lock stripes serializing publishes per advisory id.
const LOCK_STRIPES: usize = 64;
/// Random advisory ids tried at most for one publish (a clash takes another).
const ID_TRIES: u32 = 9;
/// How long a revision by id waits for a restoring member to hold its history before it is
/// refused (`CoreError::Restoring`), and how often it looks.
const RESTORE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);
const RESTORE_POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// What a change event reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChangeKind {
    /// First revision of an advisory this node holds.
    New,
    /// A newer revision of an advisory this node held.
    Updated,
    /// A withdrawal tombstone became the latest revision.
    Withdrawn,
    /// The origin signed two different payloads for one revision.
    Equivocation,
}

/// One stored item, announced to watchers after it is durable.
///
/// Carries a summary of the advisory, never the advisory itself: the broadcast channel keeps
/// its last `EVENT_CAPACITY` events alive after every receiver has read them, so an event's
/// size times `EVENT_CAPACITY` is memory held for as long as the node runs. With the whole
/// advisory (STIX extras included) that was up to 1,024 advisories of up to the payload limit
/// each, and it filled as the node stored data (the soak of issue 10 measured it).
#[derive(Debug, Clone)]
pub(crate) struct ChangeEvent {
    /// What happened.
    pub kind: ChangeKind,
    /// The item just stored.
    pub item_id: ItemId,
    /// Its advisory, summarized.
    pub advisory: ChangeSummary,
    /// Where it came from ("local", "import", or a peer id).
    pub source: String,
}

/// The fields of a stored advisory a change event reports (those of a summary line). Its size
/// is bounded by the model's limits on ids and titles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ChangeSummary {
    /// Advisory id.
    pub id: String,
    /// Origin member.
    pub origin: String,
    /// Revision.
    pub revision: u64,
    /// TLP.
    pub tlp: model::Tlp,
    /// Title.
    pub title: String,
    /// Severity.
    pub severity: model::Severity,
    /// Last modification (Unix ms).
    pub modified_ms: i64,
    /// Whether this revision is a withdrawal.
    pub withdrawn: bool,
    /// Number of indicators.
    pub indicator_count: usize,
}

impl ChangeSummary {
    /// The summary of an advisory.
    pub(crate) fn of(a: &Advisory) -> ChangeSummary {
        ChangeSummary {
            id: a.id.clone(),
            origin: a.origin.clone(),
            revision: a.revision,
            tlp: a.tlp,
            title: a.title.clone(),
            severity: a.severity,
            modified_ms: a.modified_ms,
            withdrawn: a.withdrawn,
            indicator_count: a.indicators.len(),
        }
    }
}

/// Result of a publish or withdraw, returned once the item is durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// Item id of the signed payload.
    pub item_id: ItemId,
    /// Advisory id.
    pub advisory_id: String,
    /// Revision assigned.
    pub revision: u64,
    /// Origin (this member).
    pub origin: String,
    /// Indicators of the signed advisory found on this node's warning lists (empty when none
    /// are configured, and for withdrawals).
    pub warnings: Vec<crate::warninglist::Hit>,
}

/// What an import did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportOutcome {
    /// Stored as the latest revision.
    Inserted,
    /// Already held, byte for byte.
    Duplicate,
    /// Stored, but a newer revision is already held.
    Superseded,
    /// Stored as equivocation evidence (another payload has the same revision).
    Equivocation,
}

impl ImportOutcome {
    /// The API spelling: "inserted", "duplicate", "superseded", "equivocation".
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ImportOutcome::Inserted => "inserted",
            ImportOutcome::Duplicate => "duplicate",
            ImportOutcome::Superseded => "superseded",
            ImportOutcome::Equivocation => "equivocation",
        }
    }
}

/// Why a node operation failed. `api::error` maps each variant to a gRPC status.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// The advisory fails validation (each error names its field path).
    #[error("invalid advisory: {0}")]
    Invalid(ValidationErrors),
    /// A request argument is wrong.
    #[error("{field}: {message}")]
    BadRequest {
        /// Request field.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// Nothing with that id is stored here.
    #[error("{0}")]
    NotFound(String),
    /// Publishing a new revision of a withdrawn advisory.
    #[error("advisory {id} is withdrawn; publish a new advisory instead")]
    Withdrawn {
        /// Advisory id.
        id: String,
    },
    /// Withdrawing an advisory that already is.
    #[error("advisory {id} is already withdrawn (revision {revision})")]
    AlreadyWithdrawn {
        /// Advisory id.
        id: String,
        /// Revision of the tombstone.
        revision: u64,
    },
    /// Changing an advisory of another origin.
    #[error("advisory {origin}/{id} was published by {origin}; only its origin can change it")]
    NotOurs {
        /// Origin.
        origin: String,
        /// Advisory id.
        id: String,
    },
    /// An imported envelope was refused (nothing stored).
    #[error("envelope rejected ({reason}): {0}", reason = .0.reason())]
    Rejected(EnvelopeError),
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The federation is not configured, or its driver is not running.
    #[error("{0}")]
    Unavailable(String),
    /// This member started without any advisory of its own (a lost data directory, or a new
    /// member) and its peers have not yet given back what they hold of its history: signing a
    /// revision of an explicit id now could reuse a revision number it signed before.
    #[error(
        "this member is restoring its own advisories from its peers (still waiting for {}); \
         revising or withdrawing an advisory by id is refused until then, publishing a new \
         advisory without an id works now; `tanoa status` shows when the restore is done",
        .waiting_for.join(", ")
    )]
    Restoring {
        /// Peers not yet caught up with.
        waiting_for: Vec<String>,
    },
    /// The roster in force does not let this member's signing key sign now (revoked, rotated
    /// away, or this member removed): nothing is signed.
    #[error(
        "this member's signing key {key_id} may not sign now: {why}; point member.key_file at \
         a key the roster lists for this member and reload tanoad (SIGHUP)"
    )]
    SigningKeyNotValid {
        /// Key id of the configured signing key.
        key_id: String,
        /// Why the roster in force refuses it.
        why: String,
    },
    /// The sync core refused (unknown peer, busy, ...).
    #[error(transparent)]
    Sync(SyncError),
    /// A bug or a lost blocking task.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<CommitError> for CoreError {
    fn from(e: CommitError) -> Self {
        match e {
            CommitError::Store(detail) => CoreError::Store(StoreError::Backend(detail)),
            CommitError::Stopped => CoreError::Unavailable(e.to_string()),
        }
    }
}

impl From<DriverError> for CoreError {
    fn from(e: DriverError) -> Self {
        match e {
            DriverError::Sync(s) => CoreError::Sync(s),
            DriverError::Stopped => CoreError::Unavailable(e.to_string()),
            DriverError::Store(detail) => CoreError::Internal(format!("store: {detail}")),
        }
    }
}

fn sign_error(e: EnvelopeError) -> CoreError {
    match e {
        EnvelopeError::Invalid(v) => CoreError::Invalid(v),
        EnvelopeError::TooLarge { size, max } => {
            CoreError::Invalid(ValidationErrors::one(ValidationError::new(
                "payload",
                format!("encoded advisory is {size} bytes, larger than the limit of {max} bytes"),
            )))
        }
        other => CoreError::Internal(format!("signing failed: {other}")),
    }
}

/// Applies a new membership to the running node. Implemented by the node's wiring
/// (`node::live`), which owns the TLS state, the sync driver and the listeners; `NodeCore` only
/// holds it so that whoever decides a new roster (the roster rules, SIGHUP, an operator) can
/// reach it from below the wiring.
pub(crate) trait ApplyMembership: Send + Sync + std::fmt::Debug {
    /// Applies `next`; the error says what could not be applied (nothing else changed then).
    fn apply(
        &self,
        next: crate::membership::Membership,
    ) -> std::pin::Pin<
        Box<
            dyn std::future::Future<Output = Result<crate::membership::MembershipDiff, String>>
                + Send
                + '_,
        >,
    >;

    /// Re-reads the config file and the TLS files and applies what can change live (SIGHUP,
    /// `Reload`); the error names the file and key and nothing changed then.
    fn reload(
        &self,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<ReloadReport, String>> + Send + '_>,
    >;
}

/// What a config reload did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadReport {
    /// What was applied, one line each.
    pub applied: Vec<String>,
    /// Settings changed in the file that need a restart (dotted keys).
    pub restart_required: Vec<String>,
}

/// The keyring of `identity`'s own key plus `trusted`.
/// `trusted` plus this member's own key, unbounded. With `own_if_absent`, the own key is added
/// only when `trusted` does not list it (a signed roster's window and revocation of it apply).
fn keyring_of(
    identity: &SigningIdentity,
    trusted: impl IntoIterator<Item = PublicKeyRecord>,
    own_if_absent: bool,
) -> Keyring {
    let mut keyring = Keyring::new();
    for k in trusted {
        keyring.insert(k);
    }
    if !own_if_absent || keyring.get(identity.key_id()).is_none() {
        keyring.insert(PublicKeyRecord::new(
            identity.member(),
            identity.verifying_key(),
            None,
            None,
        ));
    }
    keyring
}

/// The node's state shared by every API handler: identity, keyring, limits, store, events.
#[derive(Debug)]
pub struct NodeCore {
    /// Swapped by a reload that finds a new valid `member.key_file` (`set_identity`).
    identity: std::sync::RwLock<Arc<SigningIdentity>>,
    /// This member's id (never changes: a key of another member is refused).
    member: String,
    display_name: String,
    keyring: std::sync::RwLock<Arc<Keyring>>,
    limits: std::sync::RwLock<Arc<Limits>>,
    membership: std::sync::RwLock<Arc<crate::membership::Membership>>,
    live: std::sync::OnceLock<Arc<dyn ApplyMembership>>,
    store: Arc<dyn Store>,
    committer: Committer,
    events: broadcast::Sender<ChangeEvent>,
    locks: Vec<Mutex<()>>,
    started: Instant,
    /// Set once the sync driver reported this member's own history restored (or never lost).
    restored: std::sync::atomic::AtomicBool,
    sync: std::sync::OnceLock<SyncHandle>,
    warninglists: std::sync::OnceLock<Arc<crate::warninglist::WarningLists>>,
    roster: std::sync::OnceLock<Arc<RosterRuntime>>,
    /// The roster version this member sends its peers and the versions they report.
    peer_rosters: crate::peer_roster::PeerRosters,
}

impl NodeCore {
    /// A core signing with `identity`, trusting its own key plus `trusted` keys of other
    /// members (and possibly older keys of its own).
    pub fn new(
        identity: SigningIdentity,
        display_name: impl Into<String>,
        trusted: impl IntoIterator<Item = PublicKeyRecord>,
        limits: Limits,
        store: Arc<dyn Store>,
    ) -> NodeCore {
        let keyring = keyring_of(&identity, trusted, false);
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        NodeCore {
            member: identity.member().to_string(),
            identity: std::sync::RwLock::new(Arc::new(identity)),
            display_name: display_name.into(),
            keyring: std::sync::RwLock::new(Arc::new(keyring)),
            limits: std::sync::RwLock::new(Arc::new(limits)),
            membership: std::sync::RwLock::default(),
            live: std::sync::OnceLock::new(),
            committer: Committer::new(Arc::clone(&store)),
            store,
            events,
            locks: (0..LOCK_STRIPES).map(|_| Mutex::new(())).collect(),
            started: Instant::now(),
            restored: std::sync::atomic::AtomicBool::new(false),
            sync: std::sync::OnceLock::new(),
            warninglists: std::sync::OnceLock::new(),
            roster: std::sync::OnceLock::new(),
            peer_rosters: crate::peer_roster::PeerRosters::default(),
        }
    }

    /// Follows a signed roster: roster items are admitted, recorded and applied through
    /// `roster`, and the keyring becomes the one of the version in force. Only the first call
    /// has an effect.
    pub(crate) fn attach_roster(&self, roster: Arc<RosterRuntime>) {
        let records = roster.keyring_records();
        if self.roster.set(roster).is_ok() {
            self.set_keyring(records);
        }
    }

    /// The signed roster runtime, when this node follows one.
    pub fn roster(&self) -> Option<&Arc<RosterRuntime>> {
        self.roster.get()
    }

    /// The roster version this member sends its peers and the versions they reported.
    pub(crate) fn peer_rosters(&self) -> &crate::peer_roster::PeerRosters {
        &self.peer_rosters
    }

    /// When this node follows a signed roster, makes the keyring the roster's (former members'
    /// keys kept with their closed windows, so what they signed before still verifies) and
    /// returns true; false for a local `[[members]]` roster.
    pub(crate) fn keyring_from_roster(&self) -> bool {
        match self.roster.get() {
            Some(r) => {
                self.set_keyring(r.keyring_records());
                true
            }
            None => false,
        }
    }

    /// Replaces the verification keyring (a new roster version): `records` plus this member's
    /// own key unless the roster lists it (its window and revocation then apply).
    fn set_keyring(&self, records: Vec<PublicKeyRecord>) {
        let k = keyring_of(&self.identity(), records, true);
        *self.keyring.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(k);
    }

    /// Connects the sync driver: from now on locally accepted items are handed to it once
    /// durable, and peers' items can be received. Only the first call has an effect. Call it
    /// before the driver runs: a store that already holds an advisory of this member's own
    /// (the same test the driver makes when it loads its index) marks the history as present,
    /// so writes by id never wait for the driver's index to load.
    pub(crate) async fn attach_sync(&self, handle: SyncHandle) {
        use std::sync::atomic::Ordering;
        let me = self.member().to_string();
        let own = self
            .blocking(move |s| {
                let mut own = false;
                s.scan_latest(Some(&me), true, &mut |_| {
                    own = true;
                    Ok(false)
                })?;
                Ok(own)
            })
            .await;
        if matches!(own, Ok(true)) {
            self.restored.store(true, Ordering::Release);
        }
        let _ = self.sync.set(handle);
    }

    /// The sync driver, when this node federates.
    pub(crate) fn sync_handle(&self) -> Option<&SyncHandle> {
        self.sync.get()
    }

    /// Sets the warning lists indicators are screened with (`[warninglists]`, loaded at start
    /// by `warninglist::attach`). Only the first call has an effect.
    pub(crate) fn set_warninglists(&self, lists: Arc<crate::warninglist::WarningLists>) {
        let _ = self.warninglists.set(lists);
    }

    /// The loaded warning lists, when configured and not empty.
    pub fn warninglists(&self) -> Option<&Arc<crate::warninglist::WarningLists>> {
        self.warninglists.get().filter(|w| !w.is_empty())
    }

    /// This member's id.
    pub fn member(&self) -> &str {
        &self.member
    }

    /// Display name.
    pub fn display_name(&self) -> &str {
        &self.display_name
    }

    /// The signing identity in force (public parts are what callers need). A publish signs
    /// with the one it read here, even if a reload swaps it meanwhile.
    pub fn identity(&self) -> Arc<SigningIdentity> {
        Arc::clone(&self.identity.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// The identity to sign an item dated `modified_ms` with, if the signed roster in force
    /// lets its key sign for this member then (a revocation, rotation or removal applied live
    /// takes effect on the next write, not at the next reload); without a signed roster, or
    /// before the version that adds this member, the configured key. So this member never
    /// signs what its peers would refuse and drop.
    fn signer_at(&self, modified_ms: i64) -> Result<Arc<SigningIdentity>, CoreError> {
        let identity = self.identity();
        let Some(roster) = self.roster() else {
            return Ok(identity);
        };
        let current = roster.current();
        let doc = &current.roster;
        let why =
            match crate::roster::own_key_in(doc, self.member(), identity.key_id(), modified_ms) {
                Ok(()) => return Ok(identity),
                // Not yet a member (a new member before the version that adds it): what it signs
                // now is accepted once it is in, as its key has no start in the roster.
                Err(crate::roster::OwnKeyProblem::NotMember)
                    if doc.former(self.member()).is_none() =>
                {
                    return Ok(identity);
                }
                Err(crate::roster::OwnKeyProblem::NotMember) => format!(
                    "roster version {} removed {} from the federation",
                    doc.version,
                    self.member()
                ),
                Err(crate::roster::OwnKeyProblem::Invalid(why)) => {
                    format!("under roster version {}, {why}", doc.version)
                }
            };
        Err(CoreError::SigningKeyNotValid {
            key_id: identity.key_id().to_string(),
            why,
        })
    }

    /// Signs from now on with `identity` (a reload found a new valid `member.key_file`; the
    /// caller checked it belongs to this member and is valid in the roster in force). The
    /// keyring keeps the old key's record (its window decides) and gains the new one unless
    /// listed.
    pub(crate) fn set_identity(&self, identity: Arc<SigningIdentity>) {
        *self
            .identity
            .write()
            .unwrap_or_else(PoisonError::into_inner) = identity;
    }

    /// Every trusted public key, ours included (the keyring in force now).
    pub fn keyring(&self) -> Arc<Keyring> {
        Arc::clone(&self.keyring.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Replaces the trusted keys (a new membership or `[[trusted]]`); our own signing key is
    /// always kept. Verifications that already started finish with the keyring they began with.
    pub(crate) fn set_trusted_keys(&self, trusted: impl IntoIterator<Item = PublicKeyRecord>) {
        let k = keyring_of(&self.identity(), trusted, false);
        *self.keyring.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(k);
    }

    /// Validation limits in force now.
    pub fn limits(&self) -> Arc<Limits> {
        Arc::clone(&self.limits.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Replaces the validation limits (a SIGHUP changing `[limits]`).
    pub(crate) fn set_limits(&self, limits: Limits) {
        *self.limits.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(limits);
    }

    /// The federation's membership in force here (empty for a single node).
    pub fn membership(&self) -> Arc<crate::membership::Membership> {
        Arc::clone(
            &self
                .membership
                .read()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    /// Records the membership in force (called by the applier once it applied it).
    pub(crate) fn set_membership(&self, m: crate::membership::Membership) {
        // The stamp sent to peers: the version applied, with its hash when the runtime's
        // version in force is that one (it may already be ahead; the next apply catches up).
        let hash = self
            .roster
            .get()
            .map(|r| r.current())
            .filter(|c| c.roster.version == m.version)
            .map(|c| c.hash().to_hex());
        self.peer_rosters
            .set_ours(crate::peer_roster::RosterStamp::new(
                m.version,
                hash.as_deref(),
            ));
        for gone in self.membership().members.keys() {
            if !m.members.contains_key(gone) {
                self.peer_rosters.forget(gone);
            }
        }
        *self
            .membership
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(m);
    }

    /// Connects what applies a new membership to the running node (the node's wiring). Only
    /// the first call has an effect.
    pub(crate) fn attach_live(&self, live: Arc<dyn ApplyMembership>) {
        let _ = self.live.set(live);
    }

    /// Re-reads `tanoad.toml` and the TLS files and applies what can change live (the same as
    /// SIGHUP). Unavailable on a node started without its wiring (tests over a bare core).
    pub async fn reload(&self) -> Result<ReloadReport, CoreError> {
        match self.live.get() {
            Some(live) => live
                .reload()
                .await
                .map_err(|message| CoreError::BadRequest {
                    field: "config refused".into(),
                    message,
                }),
            None => Err(CoreError::Unavailable(
                "this node was not started from a config file; nothing to reload".into(),
            )),
        }
    }

    /// Applies a new membership without restarting: keyring, TLS pins, peers dialled or
    /// disconnected, reserved capacity of the peer port (see `node::live`). The one entry point
    /// for roster updates and SIGHUP. Returns what changed.
    pub(crate) async fn apply_membership(
        &self,
        next: crate::membership::Membership,
    ) -> Result<crate::membership::MembershipDiff, CoreError> {
        match self.live.get() {
            Some(live) => live.apply(next).await.map_err(CoreError::Unavailable),
            None => {
                // A node without federation wiring: only the keys and the snapshot change.
                let diff = self.membership().diff(&next);
                self.set_trusted_keys(next.key_records().cloned());
                self.set_membership(next);
                Ok(diff)
            }
        }
    }

    /// The store (call it only through `blocking`).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// When the core was created.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// A receiver of change events from now on.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<ChangeEvent> {
        self.events.subscribe()
    }

    /// Runs a store operation on the blocking pool.
    pub async fn blocking<T, F>(&self, f: F) -> Result<T, CoreError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
    {
        let store = Arc::clone(&self.store);
        tokio::task::spawn_blocking(move || f(store.as_ref()))
            .await
            .map_err(|e| CoreError::Internal(format!("store task failed: {e}")))?
            .map_err(CoreError::Store)
    }

    fn stripe_of(advisory_id: &str) -> usize {
        let mut h = DefaultHasher::new();
        advisory_id.hash(&mut h);
        usize::try_from(h.finish() % LOCK_STRIPES as u64).unwrap_or(0)
    }

    fn lock_for(&self, advisory_id: &str) -> &Mutex<()> {
        &self.locks[Self::stripe_of(advisory_id)]
    }

    fn new_advisory_id(&self, now_ms: i64) -> Result<String, CoreError> {
        let year = time::OffsetDateTime::from_unix_timestamp(now_ms / 1000)
            .map(|t| t.year())
            .unwrap_or(1970);
        let mut r = [0u8; 4];
        getrandom::fill(&mut r)
            .map_err(|e| CoreError::Internal(format!("no random bytes for an advisory id: {e}")))?;
        Ok(format!("{}-{year}-{}", self.member(), hex::encode(r)))
    }

    /// Stores a verified item through the group committer (its audit entry, equivocation
    /// evidence, one shared `sync`), then hands it to the sync driver and announces it. Returns
    /// the put outcome once durable.
    async fn store_durably(
        &self,
        item: Verified<Advisory>,
        source: &str,
        action: &str,
        actor: &str,
        detail: String,
    ) -> Result<PutOutcome, CoreError> {
        let mut outcomes = self
            .store_many_durably(vec![(item, detail)], source, action, actor)
            .await?;
        outcomes
            .pop()
            .ok_or_else(|| CoreError::Internal("the committer answered no outcome".into()))
    }

    /// Stores several locally signed items through the group committer (one audit entry each,
    /// all in one batch and one `sync` shared with concurrent writers), then hands the stored
    /// ones to the sync driver and announces them.
    async fn store_many_durably(
        &self,
        items: Vec<(Verified<Advisory>, String)>,
        source: &str,
        action: &str,
        actor: &str,
    ) -> Result<Vec<PutOutcome>, CoreError> {
        let entries: Vec<Entry> = items
            .into_iter()
            .map(|(v, detail)| Entry {
                item: Arc::new(v),
                source: source.to_string(),
                note: Some(AuditNote {
                    action: action.to_string(),
                    actor: actor.to_string(),
                    detail,
                }),
                equivocation_actor: Some(actor.to_string()),
            })
            .collect();
        let items: Vec<Arc<Verified<Advisory>>> =
            entries.iter().map(|e| Arc::clone(&e.item)).collect();
        let outcomes = self.committer.commit(entries, crate::now_ms()).await?;
        let stored: Vec<ItemMeta> = items
            .iter()
            .zip(&outcomes)
            .filter(|(_, o)| matches!(o, PutOutcome::Stored { .. }))
            .map(|(v, _)| ItemMeta::of_verified(v))
            .collect();
        if !stored.is_empty()
            && let Some(h) = self.sync.get()
            && let Err(e) = h.local_accepted(stored).await
        {
            // Durable already: anti-entropy will offer them once the driver runs again.
            tracing::warn!(error = %e, "items not handed to sync");
        }
        for (item, outcome) in items.iter().zip(&outcomes) {
            self.announce(item, outcome, source);
        }
        self.roster_stored(&items).await;
        Ok(outcomes)
    }

    /// Tells watchers about a stored item (nothing for duplicates and superseded revisions).
    fn announce(&self, item: &Verified<Advisory>, outcome: &PutOutcome, source: &str) {
        if let PutOutcome::Stored {
            became_latest,
            replaced,
            equivocation,
        } = outcome
        {
            let kind = if *equivocation {
                Some(ChangeKind::Equivocation)
            } else if !became_latest {
                None
            } else if item.withdrawn {
                Some(ChangeKind::Withdrawn)
            } else if replaced.is_some() {
                Some(ChangeKind::Updated)
            } else {
                Some(ChangeKind::New)
            };
            if let Some(kind) = kind {
                // No receiver is fine: nobody is watching.
                let _ = self.events.send(ChangeEvent {
                    kind,
                    item_id: item.item_id(),
                    advisory: ChangeSummary::of(item.value()),
                    source: source.to_string(),
                });
            }
        }
    }

    async fn latest(&self, advisory_id: &str) -> Result<Option<StoredItem>, CoreError> {
        let (origin, id) = (self.member().to_string(), advisory_id.to_string());
        self.blocking(move |s| s.latest(&origin, &id)).await
    }

    /// Publishes a draft: the daemon assigns origin (this member), the id if empty
    /// (`<member>-<yyyy>-<8 hex>`), the revision (latest + 1 for an id of ours, keeping its
    /// `created_ms`) and the times, then normalizes, validates, signs and durably stores it.
    pub async fn publish(&self, draft: &Draft, actor: &str) -> Result<Published, CoreError> {
        let now = crate::now_ms();
        let generated = draft.id.as_deref().unwrap_or_default().trim().is_empty();
        let mut id = if generated {
            self.new_advisory_id(now)?
        } else {
            self.draft_advisory_id(draft, now).await?
        };
        // A new random id's clash check is the latest read `prepare` needs anyway (one read per
        // publish): a clash takes another id, at most `ID_TRIES` times, like `draft_advisory_id`.
        let mut tries = 1;
        let (_guard, latest) = loop {
            let guard = self.lock_for(&id).lock().await;
            let latest = self.latest(&id).await?;
            if !generated || latest.is_none() || tries == ID_TRIES {
                break (guard, latest);
            }
            drop(guard);
            id = self.new_advisory_id(now)?;
            tries += 1;
        };
        let (verified, published) = self.prepare_from(draft, &id, now, latest.as_ref())?;
        let detail = publish_detail(&verified);
        self.store_durably(verified, SOURCE_LOCAL, "publish", actor, detail)
            .await?;
        tracing::info!(
            advisory = %format!("{}/{}", published.origin, published.advisory_id),
            revision = published.revision,
            item_id = %published.item_id,
            actor,
            "published"
        );
        Ok(published)
    }

    /// Publishes several drafts all or nothing: every draft is assigned, validated and signed
    /// before anything is stored, so one invalid draft (its errors are prefixed with
    /// `drafts[i].`) stores none of them. The signed items are then stored with one batch and
    /// made durable with one sync. Two drafts naming the same advisory id are refused.
    pub async fn publish_batch(
        &self,
        drafts: &[Draft],
        actor: &str,
    ) -> Result<Vec<Published>, CoreError> {
        let now = crate::now_ms();
        let mut ids = Vec::with_capacity(drafts.len());
        let mut seen = std::collections::HashMap::new();
        for (i, draft) in drafts.iter().enumerate() {
            let id = self
                .draft_advisory_id(draft, now)
                .await
                .map_err(|e| prefix_draft_error(e, i))?;
            if let Some(first) = seen.insert(id.clone(), i) {
                return Err(CoreError::BadRequest {
                    field: format!("drafts[{i}].id"),
                    message: format!("advisory id {id:?} is also used by drafts[{first}]"),
                });
            }
            ids.push(id);
        }
        // Lock every stripe involved, in ascending order (no deadlock with other batches).
        let mut stripes: Vec<usize> = ids.iter().map(|id| Self::stripe_of(id)).collect();
        stripes.sort_unstable();
        stripes.dedup();
        let mut guards = Vec::with_capacity(stripes.len());
        for n in stripes {
            guards.push(self.locks[n].lock().await);
        }
        let mut signed = Vec::with_capacity(drafts.len());
        for (i, (draft, id)) in drafts.iter().zip(&ids).enumerate() {
            signed.push(
                self.prepare(draft, id, now)
                    .await
                    .map_err(|e| prefix_draft_error(e, i))?,
            );
        }
        let published: Vec<Published> = signed.iter().map(|(_, p)| p.clone()).collect();
        let items: Vec<(Verified<Advisory>, String)> = signed
            .into_iter()
            .map(|(v, _)| {
                let detail = publish_detail(&v);
                (v, detail)
            })
            .collect();
        self.store_many_durably(items, SOURCE_LOCAL, "publish", actor)
            .await?;
        drop(guards);
        tracing::info!(count = published.len(), actor, "published a batch");
        Ok(published)
    }

    /// Waits (at most `RESTORE_WAIT`) until this member holds its own history again, if it
    /// started without it; then `Err(Restoring)` naming the peers still waited for. Called
    /// before signing a revision of an explicit id (publish with an id, withdraw). Peers that
    /// are down are not waited for (`SyncCore::restore_status`); while one of them is not
    /// caught up, every such write asks again, so that once it is back its restore is waited
    /// for too.
    async fn ensure_restored(&self) -> Result<(), CoreError> {
        use std::sync::atomic::Ordering;
        if self.restored.load(Ordering::Acquire) {
            return Ok(());
        }
        let Some(sync) = self.sync.get() else {
            // No federation attached (yet): there is no peer to restore from.
            return Ok(());
        };
        let mut waiting = Vec::new();
        let waited = tokio::time::timeout(RESTORE_WAIT, async {
            loop {
                let status = sync.restore_status().await?;
                if status.waiting.is_empty() {
                    return Ok::<RestoreStatus, CoreError>(status);
                }
                waiting = status.waiting;
                tokio::time::sleep(RESTORE_POLL).await;
            }
        })
        .await;
        match waited {
            Ok(Ok(status)) => {
                if status.unreachable.is_empty() {
                    self.restored.store(true, Ordering::Release);
                } else {
                    tracing::warn!(
                        unreachable = %status.unreachable.join(","),
                        "revising by id while peers not yet restored from are unreachable: \
                         what only they hold of this member's history is not known here"
                    );
                }
                Ok(())
            }
            Ok(Err(e)) => Err(e),
            Err(_) if waiting.is_empty() => Err(CoreError::Unavailable(
                "the sync driver is still loading its index; retry in a few seconds".into(),
            )),
            Err(_) => Err(CoreError::Restoring {
                waiting_for: waiting,
            }),
        }
    }

    /// Where the restore of this member's own history stands (both lists empty when it holds
    /// it, or never lost it).
    pub(crate) async fn restore_status(&self) -> Result<RestoreStatus, CoreError> {
        use std::sync::atomic::Ordering;
        if self.restored.load(Ordering::Acquire) {
            return Ok(RestoreStatus::default());
        }
        match self.sync.get() {
            None => Ok(RestoreStatus::default()),
            Some(sync) => {
                let status = sync.restore_status().await?;
                if status.waiting.is_empty() && status.unreachable.is_empty() {
                    self.restored.store(true, Ordering::Release);
                }
                Ok(status)
            }
        }
    }

    /// The advisory id a draft publishes under: its own (checked), or a new random one.
    async fn draft_advisory_id(&self, draft: &Draft, now: i64) -> Result<String, CoreError> {
        let requested = draft.id.as_deref().unwrap_or_default().trim();
        let id = if requested.is_empty() {
            let mut id = self.new_advisory_id(now)?;
            // A clash of 32 random bits within one member and year is unlikely; never reuse.
            for _ in 1..ID_TRIES {
                if self.latest(&id).await?.is_none() {
                    break;
                }
                id = self.new_advisory_id(now)?;
            }
            id
        } else {
            model::validate::check_advisory_id(requested).map_err(|message| {
                CoreError::Invalid(ValidationErrors::one(ValidationError::new("id", message)))
            })?;
            if tanoa_core::roster::is_carrier_id(requested) {
                return Err(CoreError::Invalid(ValidationErrors::one(
                    ValidationError::new(
                        "id",
                        format!(
                            "{requested:?}: ids starting with {:?} are reserved for roster items",
                            tanoa_core::roster::CARRIER_PREFIX
                        ),
                    ),
                )));
            }
            self.ensure_restored().await?;
            requested.to_string()
        };
        Ok(id)
    }

    /// Assigns revision and times to a draft of advisory `id` (whose lock the caller holds),
    /// then normalizes, validates and signs it.
    async fn prepare(
        &self,
        draft: &Draft,
        id: &str,
        now: i64,
    ) -> Result<(Verified<Advisory>, Published), CoreError> {
        let latest = self.latest(id).await?;
        self.prepare_from(draft, id, now, latest.as_ref())
    }

    /// `prepare`, given the advisory's latest stored revision (read under its lock).
    fn prepare_from(
        &self,
        draft: &Draft,
        id: &str,
        now: i64,
        latest: Option<&StoredItem>,
    ) -> Result<(Verified<Advisory>, Published), CoreError> {
        let id = id.to_string();
        let (revision, created_ms, modified_ms) = match latest {
            None => (1, now, now),
            Some(prev) => {
                if prev.advisory.withdrawn {
                    return Err(CoreError::Withdrawn { id });
                }
                (
                    prev.advisory.revision.saturating_add(1),
                    prev.advisory.created_ms,
                    now.max(prev.advisory.modified_ms.saturating_add(1)),
                )
            }
        };
        let mut advisory = model::draft::draft_to_advisory(
            draft,
            self.member(),
            &id,
            revision,
            created_ms,
            modified_ms,
        )
        .map_err(CoreError::Invalid)?;
        model::normalize_advisory(&mut advisory);
        let verified = self
            .signer_at(advisory.modified_ms)?
            .sign(advisory, &self.limits())
            .map_err(sign_error)?;
        let published = Published {
            item_id: verified.item_id(),
            advisory_id: id,
            revision,
            origin: self.member().to_string(),
            warnings: self
                .warninglists()
                .map_or_else(Vec::new, |w| w.screen(&verified.indicators)),
        };
        Ok((verified, published))
    }

    /// Resolves an id naming one of our advisories: an advisory id, `origin/id` with our
    /// origin, or an item id (64 hex) of any of its revisions.
    async fn our_advisory_id(&self, id: &str) -> Result<String, CoreError> {
        let id = id.trim();
        if id.is_empty() {
            return Err(CoreError::BadRequest {
                field: "id".into(),
                message: "an advisory id or item id is required".into(),
            });
        }
        if let Some(item_id) = ItemId::from_hex(id).filter(|_| id.len() == 64) {
            let found = self.blocking(move |s| s.get(&item_id)).await?;
            let Some(item) = found else {
                return Err(CoreError::NotFound(format!("no item {id} is stored here")));
            };
            if item.advisory.origin != self.member() {
                return Err(CoreError::NotOurs {
                    origin: item.advisory.origin,
                    id: item.advisory.id,
                });
            }
            return Ok(item.advisory.id);
        }
        if let Some((origin, aid)) = id.split_once('/') {
            if origin != self.member() {
                return Err(CoreError::NotOurs {
                    origin: origin.to_string(),
                    id: aid.to_string(),
                });
            }
            return Ok(aid.to_string());
        }
        Ok(id.to_string())
    }

    /// Withdraws one of our advisories: publishes revision + 1 as a signed tombstone with the
    /// same content, `withdrawn = true` and the reason. Returns once it is durable.
    pub async fn withdraw(
        &self,
        id: &str,
        reason: &str,
        actor: &str,
    ) -> Result<Published, CoreError> {
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(CoreError::BadRequest {
                field: "reason".into(),
                message: "a reason is required; it is shown to every holder of the advisory".into(),
            });
        }
        let advisory_id = self.our_advisory_id(id).await?;
        self.ensure_restored().await?;
        let _guard = self.lock_for(&advisory_id).lock().await;
        let Some(prev) = self.latest(&advisory_id).await? else {
            return Err(CoreError::NotFound(format!(
                "no advisory {}/{advisory_id} is stored here",
                self.member()
            )));
        };
        if prev.advisory.withdrawn {
            return Err(CoreError::AlreadyWithdrawn {
                id: advisory_id,
                revision: prev.advisory.revision,
            });
        }
        let now = crate::now_ms();
        let mut tomb = prev.advisory;
        tomb.revision = tomb.revision.saturating_add(1);
        tomb.modified_ms = now.max(tomb.modified_ms.saturating_add(1));
        tomb.withdrawn = true;
        tomb.withdrawn_reason = reason.to_string();
        let revision = tomb.revision;
        let verified = self
            .signer_at(tomb.modified_ms)?
            .sign(tomb, &self.limits())
            .map_err(sign_error)?;
        let published = Published {
            item_id: verified.item_id(),
            advisory_id: advisory_id.clone(),
            revision,
            origin: self.member().to_string(),
            warnings: Vec::new(),
        };
        let detail = format!("revision {revision}: {reason}");
        self.store_durably(verified, SOURCE_LOCAL, "withdraw", actor, detail)
            .await?;
        tracing::info!(
            advisory = %format!("{}/{advisory_id}", self.member()),
            revision,
            item_id = %published.item_id,
            actor,
            "withdrawn"
        );
        Ok(published)
    }

    /// Verifies a signed envelope with the keyring and stores it durably. A refused envelope is
    /// recorded in the audit log with its reason and nothing else is stored.
    pub async fn import_envelope(
        &self,
        env: Envelope,
        actor: &str,
    ) -> Result<(ItemId, ImportOutcome), CoreError> {
        let item_id = env.item_id();
        let keyring = self.keyring();
        let limits = self.limits();
        let verified =
            tokio::task::spawn_blocking(move || envelope::verify(env, &keyring, &limits))
                .await
                .map_err(|e| CoreError::Internal(format!("verification task failed: {e}")))?;
        if let (Ok(v), Some(r)) = (&verified, self.roster.get())
            && let Err(reason) = r.check(v, v.signer())
        {
            return Err(CoreError::BadRequest {
                field: "envelope".into(),
                message: format!("roster item refused ({reason})"),
            });
        }
        let verified = match verified {
            Ok(v) => v,
            Err(e) => {
                let (actor_s, detail) = (actor.to_string(), format!("{}: {e}", e.reason()));
                tracing::warn!(%item_id, reason = e.reason(), error = %e, actor, "import rejected");
                self.blocking(move |s| {
                    s.append_audit(&AuditEntry {
                        at_ms: crate::now_ms(),
                        action: "reject".into(),
                        item_id: Some(item_id),
                        subject: String::new(),
                        actor: actor_s,
                        detail,
                    })
                })
                .await?;
                return Err(CoreError::Rejected(e));
            }
        };
        let detail = format!(
            "revision {} signed by {} ({})",
            verified.revision,
            verified.signer(),
            verified.envelope().key_id
        );
        let outcome = self
            .store_durably(verified, SOURCE_IMPORT, "import", actor, detail)
            .await?;
        let outcome = match outcome {
            PutOutcome::Duplicate => ImportOutcome::Duplicate,
            PutOutcome::Stored {
                equivocation: true, ..
            } => ImportOutcome::Equivocation,
            PutOutcome::Stored {
                became_latest: false,
                ..
            } => ImportOutcome::Superseded,
            PutOutcome::Stored { .. } => ImportOutcome::Inserted,
        };
        tracing::info!(%item_id, outcome = outcome.as_str(), actor, "imported envelope");
        Ok((item_id, outcome))
    }

    /// Step 1 of the node machine's receive pipeline: verifies envelopes received from a peer
    /// with the keyring (strict signatures, key windows, full validation) on the blocking pool,
    /// so the driver's loop never spends CPU on signatures.
    pub(crate) async fn verify_received(
        &self,
        envelopes: Vec<Envelope>,
    ) -> Result<CheckedItems, CoreError> {
        let (keyring, limits) = (self.keyring(), self.limits());
        let roster = self.roster.get().cloned();
        tokio::task::spawn_blocking(move || {
            let inner = KeyringVerifier {
                keyring: &keyring,
                limits: &limits,
            };
            match roster {
                None => Checked::verify(&mut { inner }, envelopes),
                Some(r) => Checked::verify(&mut RosterVerifier { inner, roster: &r }, envelopes),
            }
        })
        .await
        .map_err(|e| CoreError::Internal(format!("verification task failed: {e}")))
    }

    /// Step 3 of the node machine's receive pipeline (`tanoa_core::machine`): makes the items
    /// the machine admitted from `peer` durable — one `put_batch` (an older revision is stored as
    /// history; the latest does not regress), an audit entry for each equivocation, one `sync`
    /// (group commit) — then tells watchers. Returns one outcome per item, in order. The caller
    /// (the sync driver) reports them to the machine only after this returned `Ok`.
    pub(crate) async fn store_received(
        &self,
        peer: &str,
        items: Vec<Verified<Advisory>>,
    ) -> Result<Vec<PutOutcome>, CoreError> {
        let entries: Vec<Entry> = items
            .into_iter()
            .map(|v| Entry {
                item: Arc::new(v),
                source: peer.to_string(),
                note: None,
                equivocation_actor: Some(format!("peer/{peer}")),
            })
            .collect();
        let items: Vec<Arc<Verified<Advisory>>> =
            entries.iter().map(|e| Arc::clone(&e.item)).collect();
        let outcomes = self.committer.commit(entries, crate::now_ms()).await?;
        for (v, o) in items.iter().zip(&outcomes) {
            self.announce(v, o, peer);
        }
        self.roster_stored(&items).await;
        // Verified under the roster before a version that voids them came into force, and
        // stored after its purge scanned the store: dropped now (the driver forgets them too).
        if let Some(roster) = self.roster.get().cloned() {
            let rule = roster.void_rule();
            let voided: Vec<(ItemId, String)> = items
                .iter()
                .filter(|v| !tanoa_core::roster::is_carrier_id(&v.id))
                .filter_map(|v| {
                    rule.voids(&v.origin, &v.envelope().key_id, v.modified_ms)
                        .map(|why| (v.item_id(), why))
                })
                .collect();
            if let Err(e) = self.drop_voided(&roster, rule.version(), voided).await {
                tracing::warn!(error = %e, "items voided by the roster not dropped");
            }
        }
        Ok(outcomes)
    }

    /// Roster items among `items` (now durable) are recorded; when the version in force
    /// changes, the keyring follows it, an audit entry records it, and a version this member
    /// proposed that came into force from approvals is published.
    async fn roster_stored(&self, items: &[Arc<Verified<Advisory>>]) {
        let Some(roster) = self.roster.get().cloned() else {
            return;
        };
        for v in items {
            if !tanoa_core::roster::is_carrier_id(&v.id) {
                continue;
            }
            let Some(applied) = roster.ingest(v) else {
                continue;
            };
            self.set_keyring(roster.keyring_records());
            let detail = if applied.fork_raised {
                tracing::error!(
                    version = applied.to,
                    "ROSTER FORK: two valid roster versions with one number; roster changes frozen"
                );
                format!("roster fork: changes frozen at version {}", applied.to)
            } else {
                tracing::info!(from = applied.from, to = applied.to, hash = %applied.hash, "roster version in force");
                format!(
                    "roster version {} ({}) in force, was {}",
                    applied.to, applied.hash, applied.from
                )
            };
            let entry = AuditEntry {
                at_ms: crate::now_ms(),
                action: "roster".into(),
                item_id: Some(v.item_id()),
                subject: v.id.clone(),
                actor: v.signer().to_string(),
                detail,
            };
            if let Err(e) = self.blocking(move |s| s.append_audit(&entry)).await {
                tracing::warn!(error = %e, "roster audit entry not written");
            }
            if let Err(e) = self.purge_voided().await {
                tracing::warn!(error = %e, "items voided by the roster not dropped");
            }
            for s in applied.to_publish {
                let item = tanoa_core::roster::RosterItem::Version(s);
                if let Err(e) = Box::pin(self.publish_roster_item(item, "roster")).await {
                    tracing::warn!(error = %e, "roster version not published");
                }
            }
        }
    }

    /// Drops every held item the roster in force voids (`roster::VoidRule`: signed by a key
    /// revoked as of a time at or before its `modified`, dated after its origin's removal, or
    /// outside its key's rotation window): every revision of each origin that may have void
    /// items (latest, history, tombstones), never roster items. Called when a roster version
    /// comes into force and at start, so a member that was down during a revocation drops the
    /// same items when it returns. Returns the items dropped (see `drop_voided`).
    pub(crate) async fn purge_voided(&self) -> Result<Vec<ItemId>, CoreError> {
        let Some(roster) = self.roster.get().cloned() else {
            return Ok(Vec::new());
        };
        let rule = roster.void_rule();
        let origins = rule.affected_origins();
        if origins.is_empty() {
            return Ok(Vec::new());
        }
        let r = Arc::clone(&rule);
        let voided = self
            .blocking(move |s| {
                let mut out = Vec::new();
                for o in &origins {
                    let mut ids = Vec::new();
                    s.scan_latest(Some(o), true, &mut |it| {
                        if !tanoa_core::roster::is_carrier_id(&it.advisory.id) {
                            ids.push(it.advisory.id);
                        }
                        Ok(true)
                    })?;
                    for id in ids {
                        for it in s.history(o, &id)? {
                            let a = &it.advisory;
                            if let Some(why) =
                                r.voids(&a.origin, &it.envelope.key_id, a.modified_ms)
                            {
                                out.push((it.item_id, why));
                            }
                        }
                    }
                }
                Ok(out)
            })
            .await?;
        self.drop_voided(&roster, rule.version(), voided).await
    }

    /// Drops `voided` items (id, why) as one atomic `drop_items_audited` that also writes one
    /// `roster-drop` audit entry per item actually dropped (an item is dropped once: a later
    /// call finds it absent), makes it durable with one `sync`, counts them, and has the sync driver forget
    /// them, so reconciliation no longer advertises them. The TAXII index follows
    /// `Store::drop_generation` and rebuilds. Returns the items dropped.
    async fn drop_voided(
        &self,
        roster: &RosterRuntime,
        version: u64,
        voided: Vec<(ItemId, String)>,
    ) -> Result<Vec<ItemId>, CoreError> {
        if voided.is_empty() {
            return Ok(Vec::new());
        }
        let dropped = self
            .blocking(move |s| {
                let ids: Vec<ItemId> = voided.iter().map(|(i, _)| *i).collect();
                let why: std::collections::HashMap<ItemId, String> = voided.into_iter().collect();
                let at = crate::now_ms();
                let record = |d: &tanoa_core::store::DroppedItem| {
                    let latest = match (d.was_latest, d.latest_now) {
                        (false, _) => String::new(),
                        (true, Some(l)) => format!("; latest revision now {l}"),
                        (true, None) => "; nothing of the advisory remains".to_string(),
                    };
                    AuditEntry {
                        at_ms: at,
                        action: "roster-drop".into(),
                        item_id: Some(d.item_id),
                        subject: format!("{}/{}", d.origin, d.advisory_id),
                        actor: format!("roster v{version}"),
                        detail: format!(
                            "dropped under roster version {version}: revision {}{} signed with \
                             key {}: {}{latest}",
                            d.revision,
                            if d.withdrawn { " (withdrawal)" } else { "" },
                            d.key_id,
                            why.get(&d.item_id).map_or("void", String::as_str),
                        ),
                    }
                };
                // The records go in the drop's own atomic write: never a drop without them.
                let dropped = s.drop_items_audited(&ids, Some(&record))?;
                s.sync()?;
                Ok(dropped)
            })
            .await?;
        let ids: Vec<ItemId> = dropped.iter().map(|d| d.item_id).collect();
        if ids.is_empty() {
            return Ok(ids);
        }
        roster.note_dropped(ids.len() as u64);
        tracing::warn!(
            items = ids.len(),
            roster_version = version,
            "held items voided by the roster were dropped (see `tanoa audit`, action roster-drop)"
        );
        if let Some(h) = self.sync.get()
            && let Err(e) = h.forget(ids.clone()).await
        {
            // The driver is stopping; a restart loads its index from the store.
            tracing::warn!(error = %e, "dropped items not removed from the sync index");
        }
        Ok(ids)
    }

    /// Signs a roster item as a carrier advisory of this member and stores it like a publish
    /// (then it replicates like any GREEN item). Returns the carrier's item id.
    pub(crate) async fn publish_roster_item(
        &self,
        item: tanoa_core::roster::RosterItem,
        actor: &str,
    ) -> Result<ItemId, CoreError> {
        let advisory = item.to_advisory(self.member(), crate::now_ms());
        let verified = self
            .identity()
            .sign(advisory, &self.limits())
            .map_err(sign_error)?;
        let item_id = verified.item_id();
        let detail = verified.title.clone();
        self.store_durably(verified, SOURCE_LOCAL, "publish", actor, detail)
            .await?;
        Ok(item_id)
    }

    /// Stops the group committer after what is queued is durable, and joins its task (called
    /// by the node at shutdown; writes after it fail as unavailable).
    pub async fn close(&self) {
        self.committer.close().await;
    }
}

/// Step 1 with a signed roster: the keyring verification, then the roster's admission of
/// roster items (a refusal is the rule's reason code, counted like any refused envelope).
struct RosterVerifier<'a> {
    inner: KeyringVerifier<'a>,
    roster: &'a RosterRuntime,
}

impl Verify for RosterVerifier<'_> {
    type Item = Verified<Advisory>;

    fn verify(&mut self, env: Envelope) -> crate::machine::Verdict<Self::Item> {
        let (v, meta) = self.inner.verify(env)?;
        self.roster.check(&v, v.signer())?;
        Ok((v, meta))
    }
}

/// The audit detail of a publish.
fn publish_detail(v: &Verified<Advisory>) -> String {
    format!(
        "revision {}, TLP:{}, {} indicator(s): {}",
        v.revision,
        v.tlp,
        v.indicators.len(),
        v.title
    )
}

/// Prefixes the field paths of a draft's error with `drafts[i].`.
pub(crate) fn prefix_draft_error(e: CoreError, i: usize) -> CoreError {
    match e {
        CoreError::Invalid(errs) => {
            let mut out = ValidationErrors::default();
            for v in errs.errors() {
                out.push(ValidationError::new(
                    format!("drafts[{i}].{}", v.path),
                    v.message.clone(),
                ));
            }
            CoreError::Invalid(out)
        }
        CoreError::BadRequest { field, message } => CoreError::BadRequest {
            field: format!("drafts[{i}].{field}"),
            message,
        },
        CoreError::Withdrawn { id } => CoreError::BadRequest {
            field: format!("drafts[{i}].id"),
            message: format!("advisory {id} is withdrawn; publish a new advisory instead"),
        },
        other => other,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::store::{IndicatorQuery, MemoryStore};
    use tanoa_proto::v1 as pb;

    pub(crate) fn draft(id: &str, title: &str, ip: &str) -> Draft {
        let ind = |kind, value: &str, confidence| model::Indicator {
            kind,
            value: value.into(),
            confidence,
            valid_until_ms: None,
            note: String::new(),
        };
        Draft {
            id: (!id.is_empty()).then(|| id.to_string()),
            tlp: model::Tlp::Green,
            audience: Vec::new(),
            title: title.into(),
            summary: "APT40 infrastructure seen scanning Pacific government networks.".into(),
            severity: model::Severity::High,
            actors: vec!["APT40".into()],
            cves: Vec::new(),
            indicators: vec![
                ind(model::IndicatorKind::Ipv4, ip, 80),
                ind(model::IndicatorKind::Domain, "Update.Example", 0),
            ],
            references: Vec::new(),
            valid_until_ms: None,
            extras: Vec::new(),
        }
    }

    /// [`draft`] as an operator's `Publish` request carries it.
    pub(crate) fn draft_pb(id: &str, title: &str, ip: &str) -> pb::AdvisoryDraft {
        model::wire::draft_to_proto(&draft(id, title, ip))
    }

    pub(crate) fn core_with(store: Arc<dyn Store>) -> NodeCore {
        let id = SigningIdentity::new("ws-cert", crate::keys::generate().unwrap());
        NodeCore::new(id, "Samoa CERT", [], Limits::default(), store)
    }

    fn core() -> NodeCore {
        core_with(Arc::new(MemoryStore::new()))
    }

    #[tokio::test]
    async fn publish_assigns_id_revision_and_times() {
        let c = core();
        let p = c
            .publish(&draft("", "APT40 scanning", "192.0.2.7"), "test")
            .await
            .unwrap();
        assert_eq!(p.revision, 1);
        assert_eq!(p.origin, "ws-cert");
        let year = time::OffsetDateTime::now_utc().year();
        assert!(
            p.advisory_id.starts_with(&format!("ws-cert-{year}-")),
            "{}",
            p.advisory_id
        );
        assert_eq!(p.advisory_id.len(), format!("ws-cert-{year}-").len() + 8);
        let item = c.store().get(&p.item_id).unwrap().unwrap();
        assert_eq!(item.source, SOURCE_LOCAL);
        assert_eq!(item.advisory.created_ms, item.advisory.modified_ms);
        // Normalized before signing.
        assert_eq!(item.advisory.indicators[1].value, "update.example");
        let audit = c.store().audit(10).unwrap();
        assert_eq!(audit[0].action, "publish");
        assert_eq!(audit[0].actor, "test");
    }

    #[tokio::test]
    async fn publish_batch_stores_all_or_nothing() {
        let c = core();
        let mut bad = draft("ws-2026-0003", "bad", "10.0.0.300");
        bad.tlp = model::Tlp::Green;
        let drafts = vec![
            draft("ws-2026-0001", "one", "192.0.2.1"),
            draft("ws-2026-0002", "two", "192.0.2.2"),
            bad,
        ];
        let e = c.publish_batch(&drafts, "t").await.unwrap_err();
        let text = e.to_string();
        assert!(text.contains("drafts[2].indicators[0].value"), "{text}");
        assert_eq!(c.store().counts().unwrap().items, 0, "nothing stored");
        assert!(c.store().audit(10).unwrap().is_empty());

        let dup = vec![
            draft("ws-2026-0001", "one", "192.0.2.1"),
            draft("ws-2026-0001", "again", "192.0.2.2"),
        ];
        let e = c.publish_batch(&dup, "t").await.unwrap_err();
        assert!(e.to_string().contains("drafts[1].id"), "{e}");
        assert_eq!(c.store().counts().unwrap().items, 0);

        let mut events = c.subscribe();
        let ok = c.publish_batch(&drafts[..2], "t").await.unwrap();
        assert_eq!(ok.len(), 2);
        assert_eq!(ok[1].advisory_id, "ws-2026-0002");
        assert_eq!(c.store().counts().unwrap().items, 2);
        for p in &ok {
            assert!(c.store().get(&p.item_id).unwrap().is_some());
            assert_eq!(events.recv().await.unwrap().item_id, p.item_id);
        }
        // A second batch naming the same ids publishes revision 2 of each.
        let again = c.publish_batch(&drafts[..2], "t").await.unwrap();
        assert!(again.iter().all(|p| p.revision == 2));
        assert_eq!(c.store().audit(10).unwrap().len(), 4);
    }

    #[tokio::test]
    async fn same_id_publishes_next_revision_preserving_created() {
        let c = core();
        let p1 = c
            .publish(&draft("ws-2026-0042", "v1", "192.0.2.7"), "t")
            .await
            .unwrap();
        let p2 = c
            .publish(&draft("ws-2026-0042", "v2", "192.0.2.8"), "t")
            .await
            .unwrap();
        assert_eq!((p1.revision, p2.revision), (1, 2));
        let a1 = c.store().get(&p1.item_id).unwrap().unwrap().advisory;
        let a2 = c.store().get(&p2.item_id).unwrap().unwrap().advisory;
        assert_eq!(a1.created_ms, a2.created_ms);
        assert!(a2.modified_ms > a1.modified_ms);
        let latest = c
            .store()
            .latest("ws-cert", "ws-2026-0042")
            .unwrap()
            .unwrap();
        assert_eq!(latest.item_id, p2.item_id);
    }

    #[tokio::test]
    async fn concurrent_publishes_of_one_id_get_distinct_revisions() {
        let c = Arc::new(core());
        let mut tasks = Vec::new();
        for n in 0..8 {
            let c = Arc::clone(&c);
            tasks.push(tokio::spawn(async move {
                c.publish(&draft("ws-2026-0001", &format!("v{n}"), "192.0.2.9"), "t")
                    .await
                    .unwrap()
                    .revision
            }));
        }
        let mut revs = Vec::new();
        for t in tasks {
            revs.push(t.await.unwrap());
        }
        revs.sort_unstable();
        assert_eq!(revs, (1..=8).collect::<Vec<u64>>());
        assert_eq!(c.store().counts().unwrap().equivocations, 0);
    }

    #[tokio::test]
    async fn invalid_draft_is_refused_with_field_path() {
        let c = core();
        let err = c
            .publish(&draft("", "bad", "10.0.0.300"), "t")
            .await
            .unwrap_err();
        assert!(matches!(err, CoreError::Invalid(_)), "{err}");
        assert!(err.to_string().contains("indicators[0].value"), "{err}");
        assert_eq!(c.store().counts().unwrap().items, 0);
    }

    #[tokio::test]
    async fn withdraw_keeps_record_and_removes_indicators() {
        let c = core();
        let p = c
            .publish(&draft("ws-2026-0007", "t", "198.51.100.4"), "t")
            .await
            .unwrap();
        let ip = "198.51.100.4".parse().unwrap();
        assert_eq!(c.store().search(&IndicatorQuery::Ip(ip)).unwrap().len(), 1);
        let w = c
            .withdraw("ws-2026-0007", "false positive", "t")
            .await
            .unwrap();
        assert_eq!(w.revision, 2);
        assert!(
            c.store()
                .search(&IndicatorQuery::Ip(ip))
                .unwrap()
                .is_empty()
        );
        let latest = c
            .store()
            .latest("ws-cert", "ws-2026-0007")
            .unwrap()
            .unwrap();
        assert!(latest.advisory.withdrawn);
        assert_eq!(latest.advisory.withdrawn_reason, "false positive");
        assert_eq!(latest.advisory.indicators.len(), 2);
        // Withdraw by item id of the first revision is refused as already withdrawn.
        let err = c
            .withdraw(&p.item_id.to_hex(), "again", "t")
            .await
            .unwrap_err();
        assert!(matches!(err, CoreError::AlreadyWithdrawn { .. }), "{err}");
        let err = c
            .publish(&draft("ws-2026-0007", "t", "198.51.100.4"), "t")
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "advisory ws-2026-0007 is withdrawn; publish a new advisory instead"
        );
        let err = c.withdraw("ws-2026-0007", "  ", "t").await.unwrap_err();
        assert!(err.to_string().starts_with("reason:"), "{err}");
        let err = c.withdraw("to-cert/x", "r", "t").await.unwrap_err();
        assert!(matches!(err, CoreError::NotOurs { .. }), "{err}");
        let err = c.withdraw("nope", "r", "t").await.unwrap_err();
        assert!(matches!(err, CoreError::NotFound(_)), "{err}");
    }

    #[tokio::test]
    async fn import_verifies_and_rejects_tampered_envelopes() {
        let other = SigningIdentity::new("to-cert", crate::keys::generate().unwrap());
        let c = NodeCore::new(
            SigningIdentity::new("ws-cert", crate::keys::generate().unwrap()),
            "Samoa CERT",
            [PublicKeyRecord::new(
                "to-cert",
                other.verifying_key(),
                None,
                None,
            )],
            Limits::default(),
            Arc::new(MemoryStore::new()),
        );
        let mut adv = model::draft::draft_to_advisory(
            &draft("to-2026-1", "Tonga", "203.0.113.9"),
            "to-cert",
            "to-2026-1",
            1,
            1_767_225_600_000,
            1_767_225_600_000,
        )
        .unwrap();
        model::normalize_advisory(&mut adv);
        let signed = other.sign(adv, &Limits::default()).unwrap();
        let env = signed.envelope().clone();

        let mut tampered = env.clone();
        let last = tampered.payload.len() - 1;
        tampered.payload[last] ^= 1;
        let err = c.import_envelope(tampered, "t").await.unwrap_err();
        assert!(
            matches!(err, CoreError::Rejected(EnvelopeError::BadSignature { .. })),
            "{err}"
        );
        assert!(err.to_string().contains("(bad_signature)"), "{err}");
        assert_eq!(c.store().counts().unwrap().items, 0);
        let audit = c.store().audit(1).unwrap();
        assert_eq!(audit[0].action, "reject");
        assert!(
            audit[0].detail.starts_with("bad_signature:"),
            "{}",
            audit[0].detail
        );

        let (id, outcome) = c.import_envelope(env.clone(), "t").await.unwrap();
        assert_eq!((id, outcome), (signed.item_id(), ImportOutcome::Inserted));
        let (_, outcome) = c.import_envelope(env, "t").await.unwrap();
        assert_eq!(outcome, ImportOutcome::Duplicate);
        assert_eq!(c.store().counts().unwrap().items, 1);
        assert_eq!(c.store().get(&id).unwrap().unwrap().source, SOURCE_IMPORT);
    }

    /// The event channel keeps its last `EVENT_CAPACITY` events alive, so an event must not
    /// carry the advisory: its summary, sized by the title and ids, whatever the payload.
    #[tokio::test]
    async fn events_carry_a_summary_whatever_the_payload_size() {
        let c = core();
        let mut rx = c.subscribe();
        let mut d = draft("ws-2026-0010", "big", "192.0.2.1");
        d.summary = "x".repeat(60_000);
        d.extras = serde_json::to_vec(&serde_json::json!({ "note": "y".repeat(60_000) })).unwrap();
        let p = c.publish(&d, "t").await.unwrap();
        let ev = rx.try_recv().unwrap();
        assert_eq!(ev.item_id, p.item_id);
        let stored = c.store().get(&p.item_id).unwrap().unwrap();
        assert_eq!(ev.advisory, ChangeSummary::of(&stored.advisory));
        assert_eq!(ev.advisory.indicator_count, 2);
        let carried = ev.advisory.id.len() + ev.advisory.origin.len() + ev.advisory.title.len();
        assert!(carried < 100, "an event carries {carried} bytes of text");
    }

    #[tokio::test]
    async fn events_report_new_updated_withdrawn() {
        let c = core();
        let mut rx = c.subscribe();
        c.publish(&draft("ws-2026-0009", "a", "192.0.2.1"), "t")
            .await
            .unwrap();
        c.publish(&draft("ws-2026-0009", "b", "192.0.2.1"), "t")
            .await
            .unwrap();
        c.withdraw("ws-2026-0009", "done", "t").await.unwrap();
        let kinds: Vec<ChangeKind> = (0..3).map(|_| rx.try_recv().unwrap().kind).collect();
        assert_eq!(
            kinds,
            [ChangeKind::New, ChangeKind::Updated, ChangeKind::Withdrawn]
        );
    }
}
