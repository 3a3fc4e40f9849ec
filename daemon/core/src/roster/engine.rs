//! The roster a node follows: the version in force, every version, proposal and approval it
//! holds, the fork alarm and the refusal counts.
//!
//! Owns: admission of roster items (`check`, before an item is stored: refusals carry the
//! `rules` reason), recording them (`ingest`, after they are durable), and the version in
//! force, recomputed from what is held: start at the anchor (the version the operator pinned
//! by hash), repeatedly take the one successor that is valid (`rules::check_successor` over a
//! published version, or over a proposal plus the approvals collected for its hash); two valid
//! successors of one version are a fork: the walk stops before them (the last agreed version
//! stays in force), roster changes are frozen, and `fork()` reports it. Because the outcome is
//! a function of the set of items held, every member holding the same items is at the same
//! version whatever order they arrived in.
//! Must never: read clocks or stores, or trust a version that did not pass `rules` (except
//! the anchor, trusted by the operator's hash check).

use std::collections::{BTreeMap, BTreeSet};

use super::doc::{RosterDoc, RosterHash, RosterSignature, SignedRoster};
use super::item::{Proposal, RosterItem};
use super::rules::{self, RosterRefusal};

/// Two valid versions with the same number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fork {
    /// The version number that forked.
    pub version: u64,
    /// The hashes of its valid versions (sorted).
    pub hashes: Vec<RosterHash>,
}

/// A version that is a candidate to follow another: its document (once known), its proposal
/// (if it came as one) and every signature collected for it.
#[derive(Debug, Clone, Default)]
struct Candidate {
    doc: Option<RosterDoc>,
    proposal: Option<Proposal>,
    published: bool,
    /// Signatures by (member, key id).
    sigs: BTreeMap<(String, String), RosterSignature>,
    /// Members whose signature verified against the predecessor.
    good: BTreeSet<String>,
    /// Signatures already checked (good or not).
    checked: BTreeSet<(String, String)>,
    /// Whether the shape check against the predecessor passed (cached).
    shape: Option<bool>,
}

/// A proposal not (yet) in force, with its signatures so far.
#[derive(Debug, Clone)]
pub struct Pending {
    /// The proposal.
    pub proposal: Proposal,
    /// Hash of the proposed version.
    pub hash: RosterHash,
    /// Members whose signatures verified (the proposer included).
    pub signed_by: Vec<String>,
    /// Distinct signatures it needs.
    pub required: usize,
}

/// What changed in the version in force after an `ingest`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Advanced {
    /// Version in force before.
    pub from: u64,
    /// Version in force now.
    pub to: u64,
    /// The fork was raised by this item.
    pub fork_raised: bool,
    /// Versions newly in force that came from a proposal and its approvals (no published
    /// version item held yet): the proposer publishes them.
    pub assembled: Vec<SignedRoster>,
}

impl Advanced {
    /// Whether the version in force changed.
    pub fn changed(&self) -> bool {
        self.from != self.to || !self.assembled.is_empty()
    }
}

/// Where a version follows (see `RosterEngine::predecessor`).
enum Pred<'a> {
    Chain(&'a RosterDoc),
    Candidate,
    Unknown,
}

/// The roster state of one node.
#[derive(Debug, Clone)]
pub struct RosterEngine {
    anchor: SignedRoster,
    chain: Vec<SignedRoster>,
    history: BTreeSet<RosterHash>,
    candidates: BTreeMap<RosterHash, Candidate>,
    by_previous: BTreeMap<RosterHash, BTreeSet<RosterHash>>,
    fork: Option<Fork>,
    refusals: BTreeMap<&'static str, u64>,
}

impl RosterEngine {
    /// A node following the federation from `anchor` (the roster file whose hash the operator
    /// checked). A founding version must carry its founders' signatures.
    pub fn new(anchor: SignedRoster) -> Result<RosterEngine, RosterRefusal> {
        anchor.roster.check().map_err(RosterRefusal::Invalid)?;
        if anchor.roster.version == 1 {
            rules::check_founding(&anchor.roster, &anchor.signatures)?;
        }
        let mut history = BTreeSet::new();
        history.extend(RosterHash::from_hex(&anchor.roster.previous));
        Ok(RosterEngine {
            chain: vec![anchor.clone()],
            anchor,
            history,
            candidates: BTreeMap::new(),
            by_previous: BTreeMap::new(),
            fork: None,
            refusals: BTreeMap::new(),
        })
    }

    /// The version in force.
    pub fn current(&self) -> &SignedRoster {
        self.chain.last().unwrap_or(&self.anchor)
    }

    /// Versions from the anchor to the one in force.
    pub fn chain(&self) -> &[SignedRoster] {
        &self.chain
    }

    /// The version `n` of the agreed chain, if held.
    pub fn version(&self, n: u64) -> Option<&SignedRoster> {
        let first = self.anchor.roster.version;
        let i = usize::try_from(n.checked_sub(first)?).ok()?;
        self.chain.get(i)
    }

    /// Every roster document held by hash: the chain and every other candidate document.
    pub fn document(&self, hash: &RosterHash) -> Option<&RosterDoc> {
        self.chain
            .iter()
            .find(|s| &s.hash() == hash)
            .map(|s| &s.roster)
            .or_else(|| self.candidates.get(hash).and_then(|c| c.doc.as_ref()))
    }

    /// The fork alarm, if raised.
    pub fn fork(&self) -> Option<&Fork> {
        self.fork.as_ref()
    }

    /// Refusals counted by reason.
    pub fn refusals(&self) -> &BTreeMap<&'static str, u64> {
        &self.refusals
    }

    /// Counts one refusal (the caller refused an item with `check`'s reason).
    pub fn count_refusal(&mut self, reason: &'static str) {
        *self.refusals.entry(reason).or_default() += 1;
    }

    /// Whether `hash` is a version of the agreed chain or of the history before the anchor.
    pub fn is_known(&self, hash: &RosterHash) -> bool {
        self.history.contains(hash) || self.chain.iter().any(|s| &s.hash() == hash)
    }

    /// Admission of a roster item carried by an envelope `signer` signed (before storing).
    /// `Ok` for what an honest federation can hold: known history, valid versions (a valid
    /// competitor of an agreed version too: that is fork evidence every member must see),
    /// proposals and approvals that check against their predecessor, and items about versions
    /// we cannot judge yet (ahead of ours).
    pub fn check(&self, item: &RosterItem, signer: &str) -> Result<(), RosterRefusal> {
        let want = &self.anchor.roster.federation;
        if item.federation() != want {
            return Err(RosterRefusal::WrongFederation {
                got: item.federation().to_string(),
                want: want.clone(),
            });
        }
        let v = item.version();
        let current = self.current().roster.version;
        match item {
            RosterItem::Version(s) => {
                s.roster.check().map_err(RosterRefusal::Invalid)?;
                if self.is_known(&s.hash()) {
                    return Ok(());
                }
                match self.predecessor(&s.roster) {
                    Pred::Chain(prev) => rules::check_successor(prev, &s.roster, &s.signatures),
                    Pred::Candidate => Ok(()),
                    Pred::Unknown if v <= self.anchor.roster.version => {
                        Err(RosterRefusal::OldVersion {
                            version: v,
                            current,
                        })
                    }
                    Pred::Unknown => self.unknown_previous(&s.roster),
                }
            }
            RosterItem::Proposal(p) => {
                if p.proposer.member != signer {
                    return Err(RosterRefusal::SignerMismatch {
                        signer: signer.to_string(),
                        claimed: p.proposer.member.clone(),
                    });
                }
                p.roster.check().map_err(RosterRefusal::Invalid)?;
                match self.predecessor(&p.roster) {
                    Pred::Chain(prev) => {
                        rules::check_successor_shape(prev, &p.roster)?;
                        rules::check_one_signature(prev, &p.roster, &p.proposer)
                    }
                    Pred::Candidate => Ok(()),
                    // History before our anchor: inert, cannot be judged.
                    Pred::Unknown if v <= self.anchor.roster.version => Ok(()),
                    Pred::Unknown => self.unknown_previous(&p.roster),
                }
            }
            RosterItem::Approval(a) => {
                if a.signature.member != signer {
                    return Err(RosterRefusal::SignerMismatch {
                        signer: signer.to_string(),
                        claimed: a.signature.member.clone(),
                    });
                }
                let Some(h) = RosterHash::from_hex(&a.roster_hash) else {
                    return Err(RosterRefusal::Malformed(format!(
                        "roster_hash {:?} is not 64 hex digits",
                        a.roster_hash
                    )));
                };
                let Some(doc) = self.candidates.get(&h).and_then(|c| c.doc.as_ref()) else {
                    return Ok(());
                };
                if doc.version != v {
                    return Err(RosterRefusal::Malformed(format!(
                        "approval names version {v}, the document is version {}",
                        doc.version
                    )));
                }
                match self.predecessor(doc) {
                    Pred::Chain(prev) => rules::check_one_signature(prev, doc, &a.signature),
                    _ => Ok(()),
                }
            }
        }
    }

    /// Where the version `doc` follows: a version of the agreed chain, another candidate we
    /// hold (a competing branch: judged when that one is), or nothing we know.
    fn predecessor(&self, doc: &RosterDoc) -> Pred<'_> {
        let Some(p) = RosterHash::from_hex(&doc.previous) else {
            return Pred::Unknown;
        };
        if let Some(s) = self.chain.iter().find(|s| s.hash() == p) {
            return Pred::Chain(&s.roster);
        }
        if self.candidates.get(&p).is_some_and(|c| c.doc.is_some()) {
            return Pred::Candidate;
        }
        Pred::Unknown
    }

    /// A version naming a previous we do not hold: refused when that number is in our chain
    /// (it names something other than our agreed version), pending when it is ahead of us.
    fn unknown_previous(&self, doc: &RosterDoc) -> Result<(), RosterRefusal> {
        match doc.version.checked_sub(1).and_then(|p| self.version(p)) {
            Some(prev) => Err(RosterRefusal::WrongPrevious {
                version: doc.version,
                named: doc.previous.clone(),
                actual: prev.hash().to_hex(),
            }),
            None => Ok(()),
        }
    }

    /// Records an item that was admitted and stored, and recomputes the version in force.
    pub fn ingest(&mut self, item: RosterItem) -> Advanced {
        match item {
            RosterItem::Version(s) => {
                let h = s.hash();
                if self.history.contains(&h)
                    && let Some(p) = RosterHash::from_hex(&s.roster.previous)
                {
                    self.history.insert(p);
                }
                let c = self.candidate(h, Some(&s.roster));
                c.published = true;
                for sig in s.signatures {
                    c.sigs.insert((sig.member.clone(), sig.key_id.clone()), sig);
                }
            }
            RosterItem::Proposal(p) => {
                let h = p.roster.hash();
                let c = self.candidate(h, Some(&p.roster));
                c.sigs.insert(
                    (p.proposer.member.clone(), p.proposer.key_id.clone()),
                    p.proposer.clone(),
                );
                if c.proposal.is_none() {
                    c.proposal = Some(p);
                }
            }
            RosterItem::Approval(a) => {
                if let Some(h) = RosterHash::from_hex(&a.roster_hash) {
                    let c = self.candidate(h, None);
                    c.sigs.insert(
                        (a.signature.member.clone(), a.signature.key_id.clone()),
                        a.signature,
                    );
                }
            }
        }
        self.recompute()
    }

    fn candidate(&mut self, h: RosterHash, doc: Option<&RosterDoc>) -> &mut Candidate {
        if let Some(d) = doc
            && let Some(p) = RosterHash::from_hex(&d.previous)
        {
            self.by_previous.entry(p).or_default().insert(h);
        }
        let c = self.candidates.entry(h).or_default();
        if c.doc.is_none() {
            c.doc = doc.cloned();
        }
        c
    }

    /// Whether candidate `h` is a valid successor of `prev` (verifying new signatures only).
    fn valid_successor(&mut self, prev: &RosterDoc, h: &RosterHash) -> Option<SignedRoster> {
        let c = self.candidates.get_mut(h)?;
        let doc = c.doc.clone()?;
        let shape = *c
            .shape
            .get_or_insert_with(|| rules::check_successor_shape(prev, &doc).is_ok());
        if !shape {
            return None;
        }
        let unchecked: Vec<(String, String)> = c
            .sigs
            .keys()
            .filter(|k| !c.checked.contains(*k))
            .cloned()
            .collect();
        for k in unchecked {
            if let Some(sig) = c.sigs.get(&k)
                && rules::check_one_signature(prev, &doc, sig).is_ok()
            {
                c.good.insert(k.0.clone());
            }
            c.checked.insert(k);
        }
        if c.good.len() < rules::required_signatures(prev, &doc) {
            return None;
        }
        let mut signatures: Vec<RosterSignature> = c
            .sigs
            .iter()
            .filter(|((m, _), _)| c.good.contains(m))
            .map(|(_, s)| s.clone())
            .collect();
        signatures.sort();
        signatures.dedup_by(|a, b| a.member == b.member);
        Some(SignedRoster {
            roster: doc,
            signatures,
        })
    }

    fn recompute(&mut self) -> Advanced {
        let from = self.current().roster.version;
        let old_hashes: BTreeSet<RosterHash> = self.chain.iter().map(SignedRoster::hash).collect();
        let had_fork = self.fork.is_some();
        let mut chain = vec![self.anchor.clone()];
        let mut fork = None;
        while let Some(cur) = chain.last() {
            let cur_doc = cur.roster.clone();
            let succ: Vec<RosterHash> = self
                .by_previous
                .get(&cur.hash())
                .map(|s| s.iter().copied().collect())
                .unwrap_or_default();
            let mut valid: Vec<SignedRoster> = succ
                .iter()
                .filter_map(|h| self.valid_successor(&cur_doc, h))
                .collect();
            match valid.len() {
                0 => break,
                1 => chain.extend(valid.pop()),
                _ => {
                    fork = Some(Fork {
                        version: cur_doc.version + 1,
                        hashes: valid.iter().map(SignedRoster::hash).collect(),
                    });
                    break;
                }
            }
        }
        let assembled = chain
            .iter()
            .filter(|s| {
                let h = s.hash();
                !old_hashes.contains(&h) && self.candidates.get(&h).is_some_and(|c| !c.published)
            })
            .cloned()
            .collect();
        self.chain = chain;
        self.fork = fork;
        Advanced {
            from,
            to: self.current().roster.version,
            fork_raised: !had_fork && self.fork.is_some(),
            assembled,
        }
    }

    /// Proposals not in force (for the next version and beyond), with their signatures so far.
    pub fn pending(&self) -> Vec<Pending> {
        let current = self.current();
        let in_chain: BTreeSet<RosterHash> = self.chain.iter().map(SignedRoster::hash).collect();
        let mut out = Vec::new();
        for (h, c) in &self.candidates {
            let (Some(p), Some(doc)) = (&c.proposal, &c.doc) else {
                continue;
            };
            if in_chain.contains(h) || doc.version <= current.roster.version {
                continue;
            }
            let prev = doc.version.checked_sub(1).and_then(|v| self.version(v));
            let (signed_by, required) = match prev {
                Some(prev) => {
                    let mut by: BTreeSet<String> = BTreeSet::new();
                    for s in c.sigs.values() {
                        if rules::check_one_signature(&prev.roster, doc, s).is_ok() {
                            by.insert(s.member.clone());
                        }
                    }
                    (
                        by.into_iter().collect(),
                        rules::required_signatures(&prev.roster, doc),
                    )
                }
                None => (c.sigs.values().map(|s| s.member.clone()).collect(), 0),
            };
            out.push(Pending {
                proposal: p.clone(),
                hash: *h,
                signed_by,
                required,
            });
        }
        out
    }

    /// The proposal with hash `h`, if held.
    pub fn proposal(&self, h: &RosterHash) -> Option<&Proposal> {
        self.candidates.get(h).and_then(|c| c.proposal.as_ref())
    }

    /// Whether `member` already signed candidate `h`.
    pub fn has_signed(&self, h: &RosterHash, member: &str) -> bool {
        self.candidates
            .get(h)
            .is_some_and(|c| c.sigs.keys().any(|(m, _)| m == member))
    }
}
