//! Range-based set reconciliation sessions over the `negentropy` crate.
//!
//! An `Initiator` runs one session with one peer: it sends the first message, feeds each reply
//! back, and collects the ids it has and the peer lacks (`have`) and the ids the peer has and it
//! lacks (`need`). A `Responder` answers a peer's session from a snapshot of the reconciliation
//! set taken at the session's first message. Both only ever see the storage built by
//! `ItemIndex::storage_for(me, peer)`, i.e. items in `policy::in_reconcile_scope(me, peer)`.
//!
//! Every frame from a peer is checked by `check_frame` before the `negentropy` crate reads it:
//! the crate decodes leniently (an unterminated varint reads as a shorter number, bounds that go
//! backwards make empty ranges) and would answer such a frame with an empty, valid reply.
//! A frame is refused as `malformed_frame` when a varint is unterminated, longer than 10 bytes
//! or overflows 64 bits, a bound's id is longer than 32 bytes, a mode is unknown, a fingerprint
//! or id list is cut short, or a bound is lower than the one before it (equal bounds, an empty
//! range, are what the crate itself emits at a frame limit, so they are accepted).

use std::fmt;

use negentropy::{Id, Negentropy, NegentropyStorageVector};

use crate::envelope::ItemId;

type Neg = Negentropy<'static, NegentropyStorageVector>;

fn to_item(id: Id) -> ItemId {
    ItemId(id.to_bytes())
}

/// A reconciliation frame that does not follow the negentropy v1 encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Malformed {
    /// Offset of the first byte of the field at fault.
    pub(crate) offset: usize,
    /// What is wrong.
    pub(crate) what: &'static str,
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed frame at byte {}: {}", self.offset, self.what)
    }
}

/// Why a session could not use a frame.
#[derive(Debug)]
pub(crate) enum FrameError {
    /// Refused by `check_frame` before negentropy read it.
    Malformed(Malformed),
    /// Refused by negentropy.
    Negentropy(negentropy::Error),
}

impl From<negentropy::Error> for FrameError {
    fn from(e: negentropy::Error) -> Self {
        FrameError::Negentropy(e)
    }
}

/// Protocol version 1 of negentropy (the one the crate speaks).
const PROTOCOL_V1: u8 = 0x61;
/// Bytes of an id and of a fingerprint in negentropy v1.
const ID_BYTES: usize = 32;
const FINGERPRINT_BYTES: usize = 16;

struct FrameReader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl FrameReader<'_> {
    fn err(&self, offset: usize, what: &'static str) -> Malformed {
        Malformed { offset, what }
    }

    /// A strict varint: big-endian groups of 7 bits, high bit = more; terminated, at most 10
    /// bytes, no overflow of 64 bits.
    fn varint(&mut self, what_unterminated: &'static str) -> Result<u64, Malformed> {
        let start = self.pos;
        let mut v: u64 = 0;
        loop {
            let Some(&byte) = self.b.get(self.pos) else {
                return Err(self.err(start, what_unterminated));
            };
            self.pos += 1;
            if v >> 57 != 0 || self.pos - start > 10 {
                return Err(self.err(start, "varint longer than 64 bits"));
            }
            v = (v << 7) | u64::from(byte & 0x7f);
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
    }

    fn bytes(&mut self, n: usize, what: &'static str) -> Result<&[u8], Malformed> {
        let start = self.pos;
        let end = start
            .checked_add(n)
            .filter(|&e| e <= self.b.len())
            .ok_or_else(|| self.err(start, what))?;
        self.pos = end;
        Ok(&self.b[start..end])
    }
}

/// Checks that `frame` is a well-formed negentropy v1 message (see the module doc). A frame of
/// another protocol version (0x60..=0x6F) is only checked for its version byte: negentropy
/// answers it with its own version (version negotiation) without reading further.
pub(crate) fn check_frame(frame: &[u8]) -> Result<(), Malformed> {
    let mut r = FrameReader { b: frame, pos: 0 };
    let version = *r
        .bytes(1, "empty frame (no protocol version)")?
        .first()
        .unwrap_or(&0);
    if !(0x60..=0x6F).contains(&version) {
        return Err(r.err(0, "not a negentropy protocol version"));
    }
    if version != PROTOCOL_V1 {
        return Ok(());
    }
    let mut last_ts: u64 = 0;
    let mut prev: (u64, [u8; ID_BYTES]) = (0, [0; ID_BYTES]);
    while r.pos < frame.len() {
        let start = r.pos;
        // Timestamps are deltas from the previous bound, 0 meaning infinity (as negentropy).
        let delta = r.varint("unterminated varint (bound timestamp)")?;
        let ts = match delta {
            0 => u64::MAX,
            d => (d - 1).saturating_add(last_ts),
        };
        last_ts = ts;
        let len = r.varint("unterminated varint (bound id length)")?;
        let len = usize::try_from(len)
            .ok()
            .filter(|&l| l <= ID_BYTES)
            .ok_or_else(|| r.err(start, "bound id longer than 32 bytes"))?;
        let mut id = [0u8; ID_BYTES];
        id[..len].copy_from_slice(r.bytes(len, "bound id cut short")?);
        let bound = (ts, id);
        if bound < prev {
            return Err(r.err(start, "descending bound (lower than the previous one)"));
        }
        prev = bound;
        let mode_at = r.pos;
        match r.varint("unterminated varint (mode)")? {
            0 => {}
            1 => {
                r.bytes(FINGERPRINT_BYTES, "fingerprint cut short")?;
            }
            2 => {
                let count = r.varint("unterminated varint (id count)")?;
                let n = usize::try_from(count)
                    .ok()
                    .and_then(|c| c.checked_mul(ID_BYTES))
                    .ok_or_else(|| r.err(mode_at, "id list longer than the frame"))?;
                r.bytes(n, "id list longer than the frame")?;
            }
            _ => return Err(r.err(mode_at, "unknown mode")),
        }
    }
    Ok(())
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

    /// Feeds the peer's reply (checked by `check_frame` first).
    pub(crate) fn on_reply(&mut self, reply: &[u8]) -> Result<Round, FrameError> {
        check_frame(reply).map_err(FrameError::Malformed)?;
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

    /// Answers one round (the query is checked by `check_frame` first).
    pub(crate) fn reply(&mut self, query: &[u8]) -> Result<Vec<u8>, FrameError> {
        check_frame(query).map_err(FrameError::Malformed)?;
        Ok(self.neg.reconcile(query)?)
    }
}
