//! Roster changes in the simulator (issue 11): the signed roster of `tanoa_core::roster` driven
//! the way a node's driver drives it, on every simulated member.
//!
//! Owns: the plan's chain of versions computed once per run (founding by a majority of the
//! founders, then each change by `roster::propose`, its proposer's and approvers' signatures
//! over the proposed hash), the signing keys of every member (the key the scenario's items are
//! signed with, and the key a rotation introduces), and the [`View`] of each version: its
//! members (who may connect), its key records and the keyring built from them (what verifies).
//! Must never: decide what a roster change means (that is `tanoa_core::roster`: `propose`,
//! `RosterEngine::check`/`ingest`, `rules`, `RosterDoc::key_records`); the engine's run loop
//! only feeds roster carriers to each member's own `RosterEngine` and applies the version in
//! force it reports.

use std::collections::{HashMap, HashSet};

use ed25519_dalek::SigningKey;

use super::engine::h;
use super::scenario::{RosterPlan, RosterStep};
use tanoa_core::envelope::{Keyring, PublicKeyRecord};
use tanoa_core::roster::{
    self, Change, JoinRequest, Proposal, RosterEngine, RosterHash, RosterKey, RosterSignature,
    SignedRoster, rules,
};

/// The federation id of every simulated roster.
pub(crate) const FEDERATION: &str = "tanoa-sim";

/// A member's signing key: generation 0 signs the scenario's items (the same key the simulator
/// always derived), generation 1 is the key a rotation introduces.
pub(crate) fn member_key(seed: u64, m: usize, generation: u64) -> SigningKey {
    let mut bytes = [0u8; 32];
    for (k, c) in bytes.chunks_mut(8).enumerate() {
        let w = if generation == 0 {
            h(seed, &[0x006b_6579, m as u64, k as u64])
        } else {
            h(seed, &[0x726f_7461, m as u64, k as u64, generation])
        };
        c.copy_from_slice(&w.to_le_bytes());
    }
    SigningKey::from_bytes(&bytes)
}

/// What one roster version means to a member that has it in force.
pub(crate) struct View {
    pub(crate) hash: RosterHash,
    pub(crate) version: u64,
    /// Member ids: who may connect.
    pub(crate) members: HashSet<String>,
    /// `RosterDoc::key_records`: every key with its window.
    pub(crate) records: Vec<PublicKeyRecord>,
    /// The same records as a keyring (what `envelope::verify` checks against).
    pub(crate) keyring: Keyring,
}

impl View {
    fn of(s: &SignedRoster) -> View {
        let records = s.roster.key_records();
        let mut keyring = Keyring::new();
        for r in &records {
            keyring.insert(r.clone());
        }
        View {
            hash: s.hash(),
            version: s.roster.version,
            members: s.roster.members.iter().map(|m| m.id.clone()).collect(),
            records,
            keyring,
        }
    }

    /// `RosterDoc::signer_valid_at` over the cached records: the item `origin` signed with
    /// `key_id`, dated `at_ms`, is valid under this version.
    pub(crate) fn valid(&self, origin: &str, key_id: &str, at_ms: i64) -> bool {
        self.records
            .iter()
            .any(|r| r.member == origin && r.key_id == key_id && r.valid_at(at_ms))
    }
}

/// One change of the plan, computed.
pub(crate) struct Planned {
    /// When it is proposed (ms after the wave starts).
    pub(crate) at_ms: i64,
    /// Who proposes it.
    pub(crate) proposer: usize,
    /// Who approves it when they see the proposal (more than needed: some may be down).
    pub(crate) approvers: Vec<usize>,
    /// The proposal carried by the proposer's carrier.
    pub(crate) proposal: Proposal,
    /// Hash of the proposed version.
    pub(crate) hash: RosterHash,
    /// The member it concerns.
    pub(crate) step: RosterStep,
}

/// The plan of a run, computed once.
pub(crate) struct RosterSim {
    /// The engine at the founding version (cloned for every founder).
    pub(crate) founding: RosterEngine,
    /// Per joiner: the engine at the version that admits it (its roster file).
    pub(crate) joiner_anchor: HashMap<usize, RosterEngine>,
    pub(crate) changes: Vec<Planned>,
    pub(crate) views: Vec<View>,
    pub(crate) by_hash: HashMap<RosterHash, usize>,
    /// Index of the final version's view.
    pub(crate) final_view: usize,
    /// Rotated members and the time (Unix ms) from which their new key signs.
    pub(crate) rotated: HashMap<usize, i64>,
}

impl RosterSim {
    /// Computes the chain for `plan` among `ids`, the founding version issued at `founded_ms`
    /// and each change at `t0 + at_ms`.
    pub(crate) fn build(
        plan: &RosterPlan,
        ids: &[String],
        seed: u64,
        t0: i64,
        founded_ms: i64,
    ) -> Result<RosterSim, String> {
        let n = ids.len();
        let joiners: HashSet<usize> = plan
            .changes
            .iter()
            .filter_map(|c| match c.step {
                RosterStep::Join { member } => Some(member),
                _ => None,
            })
            .collect();
        let targets: HashSet<usize> = plan.changes.iter().map(|c| c.step.member()).collect();
        if let Some(&bad) = targets.iter().find(|&&m| m >= n) {
            return Err(format!("roster.changes: member {bad} of {n}"));
        }
        let request = |m: usize| {
            JoinRequest::sign(
                &ids[m],
                &format!("Simulated CERT {m}"),
                vec![format!("{}.sim.example:7443", ids[m])],
                Vec::new(),
                &member_key(seed, m, 0),
            )
        };
        let founders: Vec<usize> = (0..n).filter(|m| !joiners.contains(m)).collect();
        let threshold = rules::majority(founders.len()) as u32;
        let requests: Vec<JoinRequest> = founders.iter().map(|&m| request(m)).collect();
        let doc = roster::found(FEDERATION, threshold, founded_ms, &requests)
            .map_err(|e| format!("founding roster: {e}"))?;
        let h1 = doc.hash();
        let signatures = founders
            .iter()
            .take(threshold as usize)
            .map(|&m| RosterSignature::sign(&ids[m], &member_key(seed, m, 0), &h1))
            .collect();
        let first = SignedRoster {
            roster: doc,
            signatures,
        };
        let founding =
            RosterEngine::new(first.clone()).map_err(|e| format!("founding roster: {e}"))?;
        let mut views = vec![View::of(&first)];
        let mut prev = first;
        let mut changes = Vec::new();
        let mut joiner_anchor = HashMap::new();
        let mut rotated = HashMap::new();
        for (k, c) in plan.changes.iter().enumerate() {
            let issued = t0 + c.at_ms;
            let id = |m: usize| ids[m].clone();
            let change = match c.step {
                RosterStep::Join { member } => Change::Add {
                    request: request(member),
                },
                RosterStep::RotateKey { member } => {
                    rotated.insert(member, issued);
                    Change::RotateKey {
                        member: id(member),
                        public_key: RosterKey::new(
                            &member_key(seed, member, 1).verifying_key(),
                            None,
                        )
                        .public_key,
                        from_ms: issued,
                    }
                }
                RosterStep::Revoke { member, as_of_ms } => Change::Revoke {
                    member: id(member),
                    public_key: RosterKey::new(&member_key(seed, member, 0).verifying_key(), None)
                        .public_key,
                    as_of_ms: t0 + as_of_ms,
                },
                RosterStep::Remove { member } => Change::Remove { member: id(member) },
            };
            let next = roster::propose(&prev.roster, &change, issued)
                .map_err(|e| format!("roster.changes[{k}]: {e}"))?;
            let hash = next.hash();
            let need = rules::required_signatures(&prev.roster, &next);
            let proposer = c.proposer;
            if targets.contains(&proposer) || prev.roster.member(&ids[proposer]).is_none() {
                return Err(format!(
                    "roster.changes[{k}]: proposer {proposer} is not a stable member"
                ));
            }
            let approvers: Vec<usize> = (0..n)
                .filter(|&m| m != proposer && !targets.contains(&m))
                .filter(|&m| prev.roster.member(&ids[m]).is_some())
                .take(need.saturating_sub(1) + plan.extra_approvers)
                .collect();
            let sign = |m: usize| RosterSignature::sign(&ids[m], &member_key(seed, m, 0), &hash);
            let proposal = Proposal {
                change,
                roster: next.clone(),
                proposer: sign(proposer),
            };
            let mut signatures = vec![sign(proposer)];
            signatures.extend(
                approvers
                    .iter()
                    .take(need.saturating_sub(1))
                    .map(|&m| sign(m)),
            );
            let signed = SignedRoster {
                roster: next,
                signatures,
            };
            rules::check_successor(&prev.roster, &signed.roster, &signed.signatures)
                .map_err(|e| format!("roster.changes[{k}]: {e}"))?;
            if let RosterStep::Join { member } = c.step {
                let e = RosterEngine::new(signed.clone())
                    .map_err(|e| format!("roster.changes[{k}]: joiner's roster: {e}"))?;
                joiner_anchor.insert(member, e);
            }
            views.push(View::of(&signed));
            changes.push(Planned {
                at_ms: c.at_ms,
                proposer,
                approvers,
                proposal,
                hash,
                step: c.step.clone(),
            });
            prev = signed;
        }
        let by_hash = views.iter().enumerate().map(|(i, v)| (v.hash, i)).collect();
        Ok(RosterSim {
            founding,
            joiner_anchor,
            final_view: views.len() - 1,
            changes,
            views,
            by_hash,
            rotated,
        })
    }

    /// The engine a member starts with (or restarts with after losing its store): the
    /// founding version, or for a joiner the version that admits it.
    pub(crate) fn anchor_of(&self, m: usize) -> RosterEngine {
        self.joiner_anchor
            .get(&m)
            .cloned()
            .unwrap_or_else(|| self.founding.clone())
    }

    /// The key member `m` signs with at `now_ms` (Unix ms).
    pub(crate) fn key_at(&self, seed: u64, m: usize, now_ms: i64) -> SigningKey {
        match self.rotated.get(&m) {
            Some(&from) if now_ms >= from => member_key(seed, m, 1),
            _ => member_key(seed, m, 0),
        }
    }

    /// The change whose proposed version has hash `h`.
    pub(crate) fn change_of(&self, h: &RosterHash) -> Option<usize> {
        self.changes.iter().position(|c| &c.hash == h)
    }
}
