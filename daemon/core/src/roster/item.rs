//! Roster items and how they travel: as GREEN advisories with a reserved id prefix, so the
//! same envelopes, gossip, negentropy reconciliation, fetch and store carry them unchanged.
//!
//! Owns: `RosterItem` (a signed version, a proposal, an approval), its carrier advisory
//! (`tanoa-roster.` id prefix, TLP:GREEN, the item as JSON under `extras.x_tanoa_roster`,
//! origin = the member publishing it, whose envelope signature attributes it) and the parse
//! back. Ids: `tanoa-roster.v<N>.<hash16>` (a version), `…v<N>.proposal.<hash16>`,
//! `…v<N>.approval.<hash16>` (one per approving origin).
//! Must never: judge an item (the engine and `rules` do), read clocks (`now_ms` comes in).

use serde::{Deserialize, Serialize};

use super::change::Change;
use super::doc::{RosterDoc, RosterHash, RosterSignature, SignedRoster};
use super::rules::RosterRefusal;
use crate::model::{Advisory, Severity, Tlp};

/// Advisory id prefix reserved for roster items (the operator API refuses drafts using it).
pub const CARRIER_PREFIX: &str = "tanoa-roster.";
/// The key under `extras` that holds the item.
const EXTRAS_KEY: &str = "x_tanoa_roster";

/// A proposed next version, with the proposer's own signature (its approval).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Proposal {
    /// What it changes (for operators; the document is authoritative).
    pub change: Change,
    /// The proposed version.
    pub roster: RosterDoc,
    /// The proposer's signature over the proposed version's hash.
    pub proposer: RosterSignature,
}

/// A member's approval: its signature over a proposed version's hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approval {
    /// Federation id.
    pub federation: String,
    /// Version approved.
    pub version: u64,
    /// Hash of the proposed version, hex.
    pub roster_hash: String,
    /// The approver's signature.
    pub signature: RosterSignature,
}

/// What a roster carrier holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum RosterItem {
    /// A version with its signatures.
    Version(SignedRoster),
    /// A proposal.
    Proposal(Proposal),
    /// An approval.
    Approval(Approval),
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Extras {
    x_tanoa_roster: RosterItem,
}

/// Whether an advisory id is a roster carrier's.
pub fn is_carrier_id(id: &str) -> bool {
    id.starts_with(CARRIER_PREFIX)
}

impl RosterItem {
    /// Federation it concerns.
    pub fn federation(&self) -> &str {
        match self {
            RosterItem::Version(s) => &s.roster.federation,
            RosterItem::Proposal(p) => &p.roster.federation,
            RosterItem::Approval(a) => &a.federation,
        }
    }

    /// Version it concerns.
    pub fn version(&self) -> u64 {
        match self {
            RosterItem::Version(s) => s.roster.version,
            RosterItem::Proposal(p) => p.roster.version,
            RosterItem::Approval(a) => a.version,
        }
    }

    /// Hash of the version it concerns (an approval's named hash may be malformed).
    pub fn roster_hash(&self) -> Option<RosterHash> {
        match self {
            RosterItem::Version(s) => Some(s.hash()),
            RosterItem::Proposal(p) => Some(p.roster.hash()),
            RosterItem::Approval(a) => RosterHash::from_hex(&a.roster_hash),
        }
    }

    /// The carrier's advisory id.
    pub fn carrier_id(&self) -> String {
        let h = self
            .roster_hash()
            .map(|h| h.short())
            .unwrap_or_else(|| "invalid".to_string());
        let v = self.version();
        match self {
            RosterItem::Version(_) => format!("{CARRIER_PREFIX}v{v}.{h}"),
            RosterItem::Proposal(_) => format!("{CARRIER_PREFIX}v{v}.proposal.{h}"),
            RosterItem::Approval(_) => format!("{CARRIER_PREFIX}v{v}.approval.{h}"),
        }
    }

    /// The carrier advisory, published by `origin` at `now_ms` (sign it with `origin`'s key).
    pub fn to_advisory(&self, origin: &str, now_ms: i64) -> Advisory {
        let v = self.version();
        let title = match self {
            RosterItem::Version(s) => format!(
                "Roster version {v} of {} ({} members)",
                s.roster.federation,
                s.roster.members.len()
            ),
            RosterItem::Proposal(p) => {
                format!("Roster proposal for version {v}: {}", p.change.describe())
            }
            RosterItem::Approval(a) => format!(
                "Roster approval of version {v} ({}) by {}",
                &a.roster_hash.get(..16).unwrap_or(&a.roster_hash),
                a.signature.member
            ),
        };
        let extras = serde_json::to_vec(&Extras {
            x_tanoa_roster: self.clone(),
        })
        .unwrap_or_default();
        Advisory {
            id: self.carrier_id(),
            origin: origin.to_string(),
            revision: 1,
            created_ms: now_ms,
            modified_ms: now_ms,
            valid_until_ms: None,
            tlp: Tlp::Green,
            audience: Vec::new(),
            title: title.clone(),
            summary: title,
            severity: Severity::Unknown,
            actors: Vec::new(),
            cves: Vec::new(),
            indicators: Vec::new(),
            references: Vec::new(),
            withdrawn: false,
            withdrawn_reason: String::new(),
            extras,
        }
    }

    /// The roster item an advisory carries: `None` when it is not a roster carrier, an error
    /// when it claims to be one but is malformed (wrong TLP, id, content, or an approval or
    /// proposal whose signer is not the carrier's origin).
    pub fn from_advisory(a: &Advisory) -> Option<Result<RosterItem, RosterRefusal>> {
        if !is_carrier_id(&a.id) {
            return None;
        }
        Some(Self::parse_carrier(a))
    }

    fn parse_carrier(a: &Advisory) -> Result<RosterItem, RosterRefusal> {
        if a.tlp != Tlp::Green || !a.audience.is_empty() {
            return Err(RosterRefusal::Malformed(format!(
                "{}: a roster item is TLP:GREEN with no audience",
                a.id
            )));
        }
        if a.withdrawn || a.revision != 1 {
            return Err(RosterRefusal::Malformed(format!(
                "{}: a roster item has revision 1 and is never withdrawn",
                a.id
            )));
        }
        let e: Extras = serde_json::from_slice(&a.extras)
            .map_err(|e| RosterRefusal::Malformed(format!("{}: extras.{EXTRAS_KEY}: {e}", a.id)))?;
        let item = e.x_tanoa_roster;
        if item.carrier_id() != a.id {
            return Err(RosterRefusal::Malformed(format!(
                "{}: the id does not match the item (expected {})",
                a.id,
                item.carrier_id()
            )));
        }
        let claimed = match &item {
            RosterItem::Version(_) => None,
            RosterItem::Proposal(p) => Some(&p.proposer.member),
            RosterItem::Approval(x) => Some(&x.signature.member),
        };
        if let Some(c) = claimed
            && c != &a.origin
        {
            return Err(RosterRefusal::SignerMismatch {
                signer: a.origin.clone(),
                claimed: c.clone(),
            });
        }
        Ok(item)
    }
}
