//! Range-based set reconciliation sessions over the `negentropy` crate.
//!
//! An `Initiator` runs one session with one peer: it sends the first message, feeds each reply
//! back, and collects the ids it has and the peer lacks (`have`) and the ids the peer has and it
//! lacks (`need`). A `Responder` answers a peer's session from a snapshot of the reconciliation
//! set taken at the session's first message. Both only ever see the storage built by
//! `ItemIndex::storage_for(me, peer)`, i.e. items in `policy::in_reconcile_scope(me, peer)`.

use std::fmt;

use negentropy::{Id, Negentropy, NegentropyStorageVector};

use crate::envelope::ItemId;

type Neg = Negentropy<'static, NegentropyStorageVector>;

fn to_item(id: Id) -> ItemId {
    ItemId(id.to_bytes())
}

/// What one reply taught the initiator.
#[derive(Debug, Default)]
pub(crate) struct Round {
    /// The next message to send, or `None` when reconciliation is complete.
    pub(crate) next: Option<Vec<u8>>,
    /// Ids we hold that the peer lacks.
    pub(crate) have: Vec<ItemId>,
    /// Ids the peer holds that we lack.
    pub(crate) need: Vec<ItemId>,
}

/// The initiating side of a session.
pub(crate) struct Initiator {
    pub(crate) session: u64,
    neg: Neg,
    /// Round trips started so far.
    pub(crate) rounds: u32,
    /// Idle deadline: the session fails if no reply arrives by then.
    pub(crate) deadline_ms: u64,
    /// The request carrying the current round, while it is in flight.
    pub(crate) outstanding: Option<u64>,
    /// A next message held back by flow control (queues too full), sent when they drain.
    pub(crate) paused: Option<Vec<u8>>,
}

impl fmt::Debug for Initiator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Initiator")
            .field("session", &self.session)
            .field("rounds", &self.rounds)
            .field("deadline_ms", &self.deadline_ms)
            .field("outstanding", &self.outstanding)
            .field("paused", &self.paused.as_ref().map(Vec::len))
            .finish_non_exhaustive()
    }
}

impl Initiator {
    /// Starts a session; returns it and its first message.
    pub(crate) fn start(
        storage: NegentropyStorageVector,
        frame_size_limit: u64,
        session: u64,
        deadline_ms: u64,
    ) -> Result<(Self, Vec<u8>), negentropy::Error> {
        let mut neg = Negentropy::owned(storage, frame_size_limit)?;
        let first = neg.initiate()?;
        Ok((
            Self {
                session,
                neg,
                rounds: 1,
                deadline_ms,
                outstanding: None,
                paused: None,
            },
            first,
        ))
    }

    /// Feeds the peer's reply.
    pub(crate) fn on_reply(&mut self, reply: &[u8]) -> Result<Round, negentropy::Error> {
        let mut have = Vec::new();
        let mut need = Vec::new();
        let next = self.neg.reconcile_with_ids(reply, &mut have, &mut need)?;
        // negentropy collects `need` through a HashSet: sort, so that what we send next (fetch
        // requests) never depends on a per-process hash seed.
        have.sort_unstable();
        need.sort_unstable();
        Ok(Round {
            next,
            have: have.into_iter().map(to_item).collect(),
            need: need.into_iter().map(to_item).collect(),
        })
    }
}

/// The responding side of a session.
pub(crate) struct Responder {
    pub(crate) session: u64,
    neg: Neg,
    /// The snapshot is dropped at this time unless another round arrives.
    pub(crate) expires_ms: u64,
}

impl fmt::Debug for Responder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Responder")
            .field("session", &self.session)
            .field("expires_ms", &self.expires_ms)
            .finish_non_exhaustive()
    }
}

impl Responder {
    /// A responder over a snapshot of the reconciliation set.
    pub(crate) fn new(
        storage: NegentropyStorageVector,
        frame_size_limit: u64,
        session: u64,
        expires_ms: u64,
    ) -> Result<Self, negentropy::Error> {
        Ok(Self {
            session,
            neg: Negentropy::owned(storage, frame_size_limit)?,
            expires_ms,
        })
    }

    /// Answers one round.
    pub(crate) fn reply(&mut self, query: &[u8]) -> Result<Vec<u8>, negentropy::Error> {
        self.neg.reconcile(query)
    }
}
