//! The channel into the sync driver: what may be asked of it (`SyncHandle`), its inputs and
//! replies, and its error.
//!
//! Owns: the message protocol between the write path, the peer service and the operator API on
//! one side and the driver task (`node::driver`) on the other. Must never: hold state of its own
//! or import the driver, the write path or the API (they import it: this keeps the module graph
//! acyclic, checked by `.ci/check-deps`).

use tanoa_proto::v1 as pb;
use tokio::sync::{mpsc, oneshot};

use crate::envelope::Verified;
use crate::machine::{Checked, Intake};
use crate::model::Advisory;
use crate::sync::{
    Explanation, FetchRequest, FetchResponse, ItemMeta, ItemResult, PeerStatus, ReconcileRequest,
    ReconcileResponse, RequestId, RestoreStatus, SyncError,
};

/// Envelopes from a peer after verification (step 1 of the node machine's pipeline).
pub(crate) type CheckedItems = Checked<Verified<Advisory>>;

/// Capacity of the driver's input channel (senders wait when it is full).
pub(crate) const INPUT_CAPACITY: usize = 4096;
/// Why the driver could not answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DriverError {
    /// The driver task is not running (shutting down).
    #[error("the sync driver is not running (tanoad is shutting down)")]
    Stopped,
    /// The sync core refused (names the peer or setting).
    #[error(transparent)]
    Sync(#[from] SyncError),
    /// The store failed while the driver read or wrote items for a peer.
    #[error("store: {0}")]
    Store(String),
}

/// What to do once the items of an intake are durable (or the store failed).
#[derive(Debug)]
pub(crate) enum AfterStore {
    /// Answer a push of the peer service.
    Answer(Reply<Result<Vec<ItemResult>, DriverError>>),
    /// Complete our fetch `req` to the peer with its response (envelopes taken out).
    Fetched { req: RequestId, resp: FetchResponse },
}

/// One peer as the operator sees it.
#[derive(Debug, Clone)]
pub(crate) struct PeerView {
    /// The core's state of the peer.
    pub(crate) status: PeerStatus,
    /// Items in the set reconciled with it.
    pub(crate) reconcile_set: usize,
}

pub(crate) type Reply<T> = oneshot::Sender<T>;

/// Result of a request we sent.
pub(crate) type Outcome<T> = Result<T, crate::sync::Failure>;

/// What the driver's loop receives: requests of the write path, the peer service and the
/// operator API, and the outcomes of its own requests to peers.
#[derive(Debug)]
pub(crate) enum Input {
    LocalAccepted(Vec<ItemMeta>),
    /// A push from `peer`, verified: admit, store, report, answer.
    Receive {
        peer: String,
        checked: CheckedItems,
        reply: Reply<Result<Vec<ItemResult>, DriverError>>,
    },
    /// The driver's store task finished an intake (`Err` = the store failed); `signers` are
    /// the (key id, modified ms) of the intake's items, in order (`None` for roster items).
    Stored {
        intake: Intake<Verified<Advisory>>,
        signers: Vec<Option<(String, i64)>>,
        outcome: Result<(), String>,
        then: AfterStore,
    },
    /// Items the store dropped (a roster version voided them): they leave the sync index.
    Forget(Vec<crate::envelope::ItemId>),
    NoteRejection {
        peer: String,
        code: String,
    },
    Reconcile {
        peer: String,
        req: ReconcileRequest,
        reply: Reply<Result<ReconcileResponse, SyncError>>,
    },
    Fetch {
        peer: String,
        req: FetchRequest,
        reply: Reply<Result<FetchResponse, DriverError>>,
    },
    Peers(Reply<Vec<PeerView>>),
    /// Where the restore of this member's own history stands (both lists empty: not
    /// restoring).
    RestoreStatus(Reply<RestoreStatus>),
    Explain {
        meta: ItemMeta,
        peer: String,
        reply: Reply<Result<Explanation, SyncError>>,
    },
    SyncNow {
        peer: Option<String>,
        reply: Reply<Result<String, SyncError>>,
    },
    PushDone {
        peer: String,
        req: RequestId,
        result: Outcome<pb::PushResponse>,
    },
    ReconcileDone {
        peer: String,
        req: RequestId,
        result: Outcome<pb::ReconcileResponse>,
    },
    FetchDone {
        peer: String,
        req: RequestId,
        result: Outcome<(FetchResponse, CheckedItems)>,
    },
    /// A new membership: `members` (this member may be among them) are the peers from now on;
    /// `redial` are kept members whose endpoints or TLS identity changed. Answers the ids added
    /// and removed.
    SetRoster {
        members: Vec<crate::membership::Member>,
        redial: std::collections::BTreeSet<String>,
        reply: Reply<(Vec<String>, Vec<String>)>,
    },
}

/// A cheap handle to the driver, used by the write path, the peer service and the operator API.
#[derive(Debug, Clone)]
pub(crate) struct SyncHandle {
    tx: mpsc::Sender<Input>,
}

impl SyncHandle {
    /// A handle sending into `tx` (the driver's input channel).
    pub(crate) fn new(tx: mpsc::Sender<Input>) -> SyncHandle {
        SyncHandle { tx }
    }

    async fn send(&self, input: Input) -> Result<(), DriverError> {
        self.tx.send(input).await.map_err(|_| DriverError::Stopped)
    }

    async fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> Input) -> Result<T, DriverError> {
        let (tx, rx) = oneshot::channel();
        self.send(make(tx)).await?;
        rx.await.map_err(|_| DriverError::Stopped)
    }

    /// Items published or imported here were stored durably: index them and push them.
    pub(crate) async fn local_accepted(&self, metas: Vec<ItemMeta>) -> Result<(), DriverError> {
        self.send(Input::LocalAccepted(metas)).await
    }

    /// Items the store dropped because the roster in force voids them: the core forgets them,
    /// so reconciliation no longer advertises them.
    pub(crate) async fn forget(
        &self,
        ids: Vec<crate::envelope::ItemId>,
    ) -> Result<(), DriverError> {
        self.send(Input::Forget(ids)).await
    }

    /// A push from `peer`, its envelopes verified: the driver admits them by policy, stores the
    /// admitted ones durably and answers one result per envelope, in order.
    pub(crate) async fn receive(
        &self,
        peer: &str,
        checked: CheckedItems,
    ) -> Result<Vec<ItemResult>, DriverError> {
        self.ask(|reply| Input::Receive {
            peer: peer.to_string(),
            checked,
            reply,
        })
        .await?
    }

    /// Counts a rejection of something `peer` sent.
    pub(crate) async fn note_rejection(&self, peer: &str, code: &str) -> Result<(), DriverError> {
        self.send(Input::NoteRejection {
            peer: peer.to_string(),
            code: code.to_string(),
        })
        .await
    }

    /// Answers a reconciliation round from `peer`.
    pub(crate) async fn reconcile(
        &self,
        peer: &str,
        req: ReconcileRequest,
    ) -> Result<ReconcileResponse, DriverError> {
        Ok(self
            .ask(|reply| Input::Reconcile {
                peer: peer.to_string(),
                req,
                reply,
            })
            .await??)
    }

    /// Answers a fetch from `peer`: what it may have, loaded from the store.
    pub(crate) async fn fetch(
        &self,
        peer: &str,
        req: FetchRequest,
    ) -> Result<FetchResponse, DriverError> {
        self.ask(|reply| Input::Fetch {
            peer: peer.to_string(),
            req,
            reply,
        })
        .await?
    }

    /// Every peer's state.
    pub(crate) async fn peers(&self) -> Result<Vec<PeerView>, DriverError> {
        self.ask(Input::Peers).await
    }

    /// Where the restore of this member's own history stands (`SyncCore::restore_status`):
    /// the reachable peers it still restores from, and those not caught up that are down;
    /// both empty once it holds its history (or never lost it). Answered after the driver
    /// loaded its index.
    pub(crate) async fn restore_status(&self) -> Result<RestoreStatus, DriverError> {
        self.ask(Input::RestoreStatus).await
    }

    /// Why `meta` would or would not be sent to `peer`.
    pub(crate) async fn explain(
        &self,
        meta: ItemMeta,
        peer: &str,
    ) -> Result<Explanation, DriverError> {
        Ok(self
            .ask(|reply| Input::Explain {
                meta,
                peer: peer.to_string(),
                reply,
            })
            .await??)
    }

    /// Applies a new membership to the sync core and the peer links: added members are dialled
    /// and reconciled with, removed ones dropped (their links and queues), `redial` members get
    /// new channels (changed endpoints or pins). Returns the ids (added, removed).
    pub(crate) async fn set_roster(
        &self,
        members: Vec<crate::membership::Member>,
        redial: std::collections::BTreeSet<String>,
    ) -> Result<(Vec<String>, Vec<String>), DriverError> {
        self.ask(|reply| Input::SetRoster {
            members,
            redial,
            reply,
        })
        .await
    }

    /// Starts a reconciliation now; returns the peer chosen.
    pub(crate) async fn sync_now(&self, peer: Option<&str>) -> Result<String, DriverError> {
        Ok(self
            .ask(|reply| Input::SyncNow {
                peer: peer.map(str::to_string),
                reply,
            })
            .await??)
    }
}
