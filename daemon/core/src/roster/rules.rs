//! When a roster version may follow another (TUF's root rotation is the model).
//!
//! Owns: the acceptance rule of version n+1 over version n, the threshold-lowering rule, the
//! founding (version 1) rule, and the refusal reasons (`RosterRefusal::reason`, stable codes
//! used in metrics, peer answers and audit entries).
//! Must never: keep state (the engine does), read clocks, or trust a signature it did not check.
//!
//! Rule (version n+1 over version n):
//! 1. same federation; version = n + 1; `previous` = hash of version n; structurally valid;
//! 2. history is append-only: every former member of n stays a former member, and every member
//!    of n is either still a member or becomes a former member (removed at `issued_ms`);
//! 3. signatures: each counts once per distinct member of version n, made with one of that
//!    member's keys in version n valid (window, not revoked) at n+1's `issued_ms`, verifying
//!    strictly over n+1's hash. Signatures by anyone else never count;
//! 4. enough: at least `required_signatures(n, n+1)` distinct members:
//!    `threshold(n)`, raised to a majority of n's members (⌊|n|/2⌋ + 1) when n+1 lowers the
//!    threshold: its threshold is below a majority of its own members and it lowers the number
//!    or adds members (the threshold-lowering rule: nobody can make the federation easier to
//!    change than a majority without a majority agreeing; a federation founded below a
//!    majority keeps its threshold for changes that do not lower it further).
//!
//! If not enough, the refusal names the most telling cause seen: a forged signature
//! (`roster_bad_signature`), a removed member's (`roster_removed_signer`), a non-member's
//! (`roster_unknown_signer`), a key outside its window (`roster_signer_key_not_valid`), the
//! lowering rule (`roster_threshold_lowering`), else `roster_under_threshold`.

use std::collections::BTreeSet;

use super::doc::{DocError, RosterDoc, RosterHash, RosterSignature};

/// Why a roster item is refused. Each variant has a distinct machine-readable reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RosterRefusal {
    /// Not a well-formed roster item (field named).
    #[error("malformed roster item: {0}")]
    Malformed(String),
    /// The document is structurally invalid.
    #[error("invalid roster document: {0}")]
    Invalid(DocError),
    /// Another federation's roster.
    #[error("roster of federation {got:?}, this node follows {want:?}")]
    WrongFederation {
        /// Federation in the item.
        got: String,
        /// Ours.
        want: String,
    },
    /// A version at or below ours that is not in our history (a replay or rollback attempt).
    #[error(
        "roster version {version} is not newer than version {current} in force and is not in its history"
    )]
    OldVersion {
        /// Version offered.
        version: u64,
        /// Version in force.
        current: u64,
    },
    /// `previous` does not name the hash of the version it claims to follow.
    #[error("roster version {version} names previous {named}, but version {} is {actual}", version - 1)]
    WrongPrevious {
        /// Version offered.
        version: u64,
        /// Hash it names.
        named: String,
        /// Hash of our version − 1.
        actual: String,
    },
    /// History not carried over (a member vanished without being a former member, …).
    #[error("roster version {version} breaks the history: {detail}")]
    BrokenHistory {
        /// Version offered.
        version: u64,
        /// What is missing.
        detail: String,
    },
    /// A signature does not verify (forged or altered).
    #[error("roster version {version}: signature of {member} does not verify")]
    BadSignature {
        /// Version.
        version: u64,
        /// Claimed signer.
        member: String,
    },
    /// Signed by a member removed from the federation.
    #[error("roster version {version}: {member} was removed from the federation and cannot sign")]
    RemovedSigner {
        /// Version.
        version: u64,
        /// Signer.
        member: String,
    },
    /// Signed by someone who is not a member of the previous version.
    #[error("roster version {version}: {member} is not a member of version {}", version - 1)]
    UnknownSigner {
        /// Version.
        version: u64,
        /// Signer.
        member: String,
    },
    /// Signed with a key that is not (or no longer) valid.
    #[error("roster version {version}: key {key_id} of {member} is not valid at {at_ms}")]
    SignerKeyNotValid {
        /// Version.
        version: u64,
        /// Signer.
        member: String,
        /// Key id.
        key_id: String,
        /// The version's issued_ms.
        at_ms: i64,
    },
    /// Not enough distinct valid signatures.
    #[error(
        "roster version {version} has {valid} valid signature(s) of distinct members; it needs {required}"
    )]
    UnderThreshold {
        /// Version.
        version: u64,
        /// Valid distinct signatures.
        valid: usize,
        /// Required.
        required: usize,
    },
    /// Enough for the old threshold, not for the majority the lowering rule asks.
    #[error(
        "roster version {version} lowers the threshold to {threshold} of {members} (below a majority): it needs {required} signatures, it has {valid}"
    )]
    ThresholdLowering {
        /// Version.
        version: u64,
        /// New threshold.
        threshold: u32,
        /// Members in the new version.
        members: usize,
        /// Valid distinct signatures.
        valid: usize,
        /// Required (a majority of the previous version).
        required: usize,
    },
    /// Roster changes are frozen after a fork.
    #[error("roster changes are frozen: version {version} forked")]
    Frozen {
        /// The version that forked.
        version: u64,
    },
    /// The signer of an approval or proposal item is not the member it claims.
    #[error("roster item signed by {signer} carries a signature claiming {claimed}")]
    SignerMismatch {
        /// Envelope signer.
        signer: String,
        /// Member claimed inside.
        claimed: String,
    },
}

impl RosterRefusal {
    /// Stable machine-readable reason (metrics, peer answers, audit).
    pub fn reason(&self) -> &'static str {
        match self {
            RosterRefusal::Malformed(_) => "roster_malformed",
            RosterRefusal::Invalid(_) => "roster_invalid",
            RosterRefusal::WrongFederation { .. } => "roster_wrong_federation",
            RosterRefusal::OldVersion { .. } => "roster_old_version",
            RosterRefusal::WrongPrevious { .. } => "roster_wrong_previous",
            RosterRefusal::BrokenHistory { .. } => "roster_broken_history",
            RosterRefusal::BadSignature { .. } => "roster_bad_signature",
            RosterRefusal::RemovedSigner { .. } => "roster_removed_signer",
            RosterRefusal::UnknownSigner { .. } => "roster_unknown_signer",
            RosterRefusal::SignerKeyNotValid { .. } => "roster_signer_key_not_valid",
            RosterRefusal::UnderThreshold { .. } => "roster_under_threshold",
            RosterRefusal::ThresholdLowering { .. } => "roster_threshold_lowering",
            RosterRefusal::Frozen { .. } => "roster_frozen",
            RosterRefusal::SignerMismatch { .. } => "roster_signer_mismatch",
        }
    }

    /// Every reason code (for metrics that list them all).
    pub const REASONS: [&'static str; 14] = [
        "roster_malformed",
        "roster_invalid",
        "roster_wrong_federation",
        "roster_old_version",
        "roster_wrong_previous",
        "roster_broken_history",
        "roster_bad_signature",
        "roster_removed_signer",
        "roster_unknown_signer",
        "roster_signer_key_not_valid",
        "roster_under_threshold",
        "roster_threshold_lowering",
        "roster_frozen",
        "roster_signer_mismatch",
    ];
}

/// A majority of `n` members: ⌊n/2⌋ + 1.
pub fn majority(n: usize) -> usize {
    n / 2 + 1
}

/// Whether `next` lowers the threshold in the sense of the lowering rule: its threshold is
/// below a majority of its own members, and it either lowers the number or adds members (which
/// lowers the fraction of members a change needs).
pub fn lowers_threshold(prev: &RosterDoc, next: &RosterDoc) -> bool {
    (next.threshold as usize) < majority(next.members.len())
        && (next.threshold < prev.threshold || next.members.len() > prev.members.len())
}

/// Distinct signatures of members of `prev` that `next` needs.
pub fn required_signatures(prev: &RosterDoc, next: &RosterDoc) -> usize {
    let base = prev.threshold as usize;
    if lowers_threshold(prev, next) {
        base.max(majority(prev.members.len()))
    } else {
        base
    }
}

/// Everything about `next` following `prev` except the signatures: federation, number,
/// `previous`, structure, append-only history.
pub fn check_successor_shape(prev: &RosterDoc, next: &RosterDoc) -> Result<(), RosterRefusal> {
    if next.federation != prev.federation {
        return Err(RosterRefusal::WrongFederation {
            got: next.federation.clone(),
            want: prev.federation.clone(),
        });
    }
    if next.version <= prev.version {
        return Err(RosterRefusal::OldVersion {
            version: next.version,
            current: prev.version,
        });
    }
    if next.version != prev.version + 1 {
        return Err(RosterRefusal::Malformed(format!(
            "version {} cannot follow version {} directly",
            next.version, prev.version
        )));
    }
    let prev_hash = prev.hash();
    if RosterHash::from_hex(&next.previous) != Some(prev_hash) {
        return Err(RosterRefusal::WrongPrevious {
            version: next.version,
            named: next.previous.clone(),
            actual: prev_hash.to_hex(),
        });
    }
    next.check().map_err(RosterRefusal::Invalid)?;
    let broken = |detail: String| RosterRefusal::BrokenHistory {
        version: next.version,
        detail,
    };
    for f in &prev.former_members {
        if next.former(&f.id) != Some(f) {
            return Err(broken(format!(
                "former member {} is not kept as it was",
                f.id
            )));
        }
    }
    for m in &prev.members {
        if next.member(&m.id).is_none() {
            match next.former(&m.id) {
                Some(f) if f.removed_ms == next.issued_ms => {}
                Some(_) => {
                    return Err(broken(format!(
                        "{} is removed with a removal time other than the version's issued_ms",
                        m.id
                    )));
                }
                None => {
                    return Err(broken(format!(
                        "{} disappears without becoming a former member",
                        m.id
                    )));
                }
            }
        }
    }
    Ok(())
}

/// Counts the distinct members of `prev` whose signatures over `hash` are valid at `at_ms`;
/// also returns the most telling refusal among the others.
fn count_signatures(
    prev: &RosterDoc,
    version: u64,
    hash: &RosterHash,
    at_ms: i64,
    signatures: &[RosterSignature],
) -> (usize, Option<RosterRefusal>) {
    let mut valid: BTreeSet<&str> = BTreeSet::new();
    let mut worst: Option<(u8, RosterRefusal)> = None;
    let mut note = |rank: u8, r: RosterRefusal| {
        if worst.as_ref().is_none_or(|(w, _)| rank > *w) {
            worst = Some((rank, r));
        }
    };
    for s in signatures {
        let Some(member) = prev.member(&s.member) else {
            if prev.former(&s.member).is_some() {
                note(
                    3,
                    RosterRefusal::RemovedSigner {
                        version,
                        member: s.member.clone(),
                    },
                );
            } else {
                note(
                    2,
                    RosterRefusal::UnknownSigner {
                        version,
                        member: s.member.clone(),
                    },
                );
            }
            continue;
        };
        let key = member
            .keys
            .iter()
            .find(|k| k.key_id().ok().as_deref() == Some(s.key_id.as_str()));
        let Some(key) = key else {
            note(
                2,
                RosterRefusal::UnknownSigner {
                    version,
                    member: format!("{} (key {})", s.member, s.key_id),
                },
            );
            continue;
        };
        let Ok(vk) = key.verifying_key() else {
            continue;
        };
        if !s.verifies(&vk, hash) {
            note(
                4,
                RosterRefusal::BadSignature {
                    version,
                    member: s.member.clone(),
                },
            );
            continue;
        }
        if !key.valid_at(at_ms) {
            note(
                1,
                RosterRefusal::SignerKeyNotValid {
                    version,
                    member: s.member.clone(),
                    key_id: s.key_id.clone(),
                    at_ms,
                },
            );
            continue;
        }
        valid.insert(s.member.as_str());
    }
    (valid.len(), worst.map(|(_, r)| r))
}

/// Whether `next`, with `signatures`, may follow `prev`.
pub fn check_successor(
    prev: &RosterDoc,
    next: &RosterDoc,
    signatures: &[RosterSignature],
) -> Result<(), RosterRefusal> {
    check_successor_shape(prev, next)?;
    let hash = next.hash();
    let (valid, worst) = count_signatures(prev, next.version, &hash, next.issued_ms, signatures);
    let required = required_signatures(prev, next);
    if valid >= required {
        return Ok(());
    }
    if let Some(w) = worst {
        return Err(w);
    }
    if valid >= prev.threshold as usize {
        return Err(RosterRefusal::ThresholdLowering {
            version: next.version,
            threshold: next.threshold,
            members: next.members.len(),
            valid,
            required,
        });
    }
    Err(RosterRefusal::UnderThreshold {
        version: next.version,
        valid,
        required,
    })
}

/// Whether one signature of a member of `prev` over `next`'s hash counts (for approvals
/// arriving one by one).
pub fn check_one_signature(
    prev: &RosterDoc,
    next: &RosterDoc,
    signature: &RosterSignature,
) -> Result<(), RosterRefusal> {
    let (valid, worst) = count_signatures(
        prev,
        next.version,
        &next.hash(),
        next.issued_ms,
        std::slice::from_ref(signature),
    );
    if valid == 1 {
        Ok(())
    } else {
        Err(worst.unwrap_or(RosterRefusal::UnderThreshold {
            version: next.version,
            valid,
            required: 1,
        }))
    }
}

/// The founding rule: version 1, no previous, signed by at least `threshold` of its own
/// members. (Its trust comes from the hash each founder's operator checks out of band.)
pub fn check_founding(
    doc: &RosterDoc,
    signatures: &[RosterSignature],
) -> Result<(), RosterRefusal> {
    doc.check().map_err(RosterRefusal::Invalid)?;
    if doc.version != 1 {
        return Err(RosterRefusal::Malformed(format!(
            "a founding roster is version 1, this is version {}",
            doc.version
        )));
    }
    let (valid, worst) = count_signatures(doc, 1, &doc.hash(), doc.issued_ms, signatures);
    if valid >= doc.threshold as usize {
        return Ok(());
    }
    Err(worst.unwrap_or(RosterRefusal::UnderThreshold {
        version: 1,
        valid,
        required: doc.threshold as usize,
    }))
}
