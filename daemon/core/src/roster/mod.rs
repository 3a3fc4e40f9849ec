//! The signed roster: who is in the federation, agreed by the federation itself.
//!
//! - `doc`: the roster document, its canonical encoding and hash, roster signatures, join
//!   requests; `RosterDoc::membership` gives the `membership::Membership` the node applies,
//!   `RosterDoc::key_records` the verification keys (former members' included, windows closed).
//! - `rules`: when version n+1 may follow version n (TUF root rotation), the threshold-lowering
//!   rule, the founding rule, the refusal reasons.
//! - `change`: proposed changes (add, remove, rotate-key, revoke, set-threshold, set-pins) and
//!   the next document each one yields.
//! - `item`: versions, proposals and approvals as roster items, carried by GREEN advisories
//!   with the reserved id prefix `tanoa-roster.` through the ordinary envelopes, gossip,
//!   reconciliation and store.
//! - `engine`: a node's roster state: admission, the version in force, pending proposals, the
//!   fork alarm.
//!
//! Verification rule (the roster "in force at an item's time"): an item is valid when, in the
//! version in force, its signing key belongs to its origin (member or former member) and the
//! key's window contains the item's `modified` time; windows only ever close (a rotation ends
//! the old key at the new key's start − 1, a revocation at its as-of − 1, a removal at the
//! removal version's `issued_ms` − 1), so this is the same verdict as judging the item by the
//! version in force at its `modified` time, and every member reaches it whatever the order
//! things arrived in.
//!
//! Must never: do I/O, read clocks, or use randomness; time comes in as arguments.

pub mod change;
pub mod doc;
pub mod engine;
pub mod item;
pub mod rules;
#[cfg(test)]
mod tests;

pub use change::{Change, ChangeError, propose};
pub use doc::{
    DocError, FormerMember, JoinError, JoinRequest, RosterDoc, RosterHash, RosterKey, RosterMember,
    RosterSignature, SignedRoster,
};
pub use engine::{Advanced, Fork, Pending, RosterEngine};
pub use item::{Approval, CARRIER_PREFIX, Proposal, RosterItem, is_carrier_id};
pub use rules::{RosterRefusal, check_founding, check_successor, majority, required_signatures};

/// A founding (version 1) roster from the founders' join requests, unsigned: each founder
/// checks its hash and signs it (`RosterSignature::sign`), the signatures are collected into a
/// `SignedRoster`.
pub fn found(
    federation: &str,
    threshold: u32,
    issued_ms: i64,
    founders: &[JoinRequest],
) -> Result<RosterDoc, ChangeError> {
    let mut members = Vec::new();
    for r in founders {
        r.verify()?;
        members.push(
            r.as_member(None)
                .map_err(|e| ChangeError::Join(JoinError::Invalid(e)))?,
        );
    }
    let doc = RosterDoc {
        federation: federation.to_string(),
        version: 1,
        previous: String::new(),
        issued_ms,
        threshold,
        members,
        former_members: Vec::new(),
    }
    .normalized();
    doc.check()
        .map_err(|e| ChangeError::Invalid(e.to_string()))?;
    Ok(doc)
}
