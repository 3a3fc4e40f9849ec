//! The signed roster at run time: the core's `RosterEngine` behind a lock, the keyring and the
//! membership it implies, and the items this member publishes (proposals, approvals, versions).
//!
//! Owns: admitting roster items received from peers (`check`, called in step 1 of the receive
//! pipeline, so a refused roster item is refused and counted like any refused envelope),
//! recording stored ones (`ingest`), building this member's proposals and approvals, the
//! keyring of the version in force (roster keys + `[[trusted]]`), and handing every new
//! `Membership` to the node through one channel (`membership_changed`, watched by the node's
//! live application).
//! Must never: store or publish anything itself (`publish` does), judge a roster rule (the
//! core's `roster::rules` does), or import `publish`, `api` or `node`.

use std::collections::BTreeMap;
use std::sync::Mutex;

use tanoa_core::envelope::{PublicKeyRecord, SigningIdentity};
use tanoa_core::membership::Membership;
use tanoa_core::model::Advisory;
use tanoa_core::roster::{
    Advanced, Approval, Change, ChangeError, Fork, Pending, Proposal, RosterEngine, RosterHash,
    RosterItem, RosterRefusal, RosterSignature, SignedRoster, propose, required_signatures,
};
use tokio::sync::watch;

use crate::store::Store;

/// Why an operator's roster request fails.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RosterOpError {
    /// This node follows a local `[[members]]` roster (version 0): nothing to sign.
    #[error(
        "this node follows a local [[members]] roster (version 0); start it with a [roster] file to use signed roster updates"
    )]
    NotSigned,
    /// Roster changes are frozen by a fork.
    #[error("roster changes are frozen: version {0} forked (see `tanoa roster show`)")]
    Frozen(u64),
    /// The change cannot be applied to the version in force.
    #[error(transparent)]
    Change(#[from] ChangeError),
    /// This member is not in the version in force, so its signature would not count.
    #[error("{0} is not a member of the roster in force; its signature would not count")]
    NotMember(String),
    /// No pending proposal matches.
    #[error("no pending proposal matches {0:?} (see `tanoa roster show`)")]
    NoSuchProposal(String),
    /// Several pending proposals match a prefix.
    #[error("{0:?} matches several proposals; give more digits")]
    Ambiguous(String),
    /// The change is malformed.
    #[error("change: {0}")]
    BadChange(String),
    /// A rule refused it.
    #[error(transparent)]
    Refused(#[from] RosterRefusal),
}

/// What the node must do after an item changed the version in force.
#[derive(Debug, Clone)]
pub(crate) struct Applied {
    /// Versions (from, to).
    pub from: u64,
    /// Version now in force.
    pub to: u64,
    /// Hash now in force.
    pub hash: RosterHash,
    /// The fork alarm was raised by this item.
    pub fork_raised: bool,
    /// Versions this member proposed that came into force from approvals: to publish.
    pub to_publish: Vec<SignedRoster>,
}

/// A view of the roster for the operator API.
#[derive(Debug, Clone)]
pub(crate) struct RosterView {
    /// Version in force.
    pub current: SignedRoster,
    /// Versions from the anchor to the one in force.
    pub chain: Vec<SignedRoster>,
    /// Pending proposals.
    pub pending: Vec<Pending>,
    /// Fork alarm.
    pub fork: Option<Fork>,
    /// Refusals by reason.
    pub refusals: BTreeMap<&'static str, u64>,
}

/// The roster's Prometheus lines: `tanoa_roster_version`, `tanoa_roster_fork` (the alarm) and
/// `tanoa_roster_refusals_total{reason}` (labels are fixed reason codes).
pub(crate) fn metrics_text(r: &RosterRuntime) -> String {
    let v = r.view();
    let mut out = format!(
        "# HELP tanoa_roster_version Signed roster version in force.\n\
         # TYPE tanoa_roster_version gauge\ntanoa_roster_version {}\n\
         # HELP tanoa_roster_fork 1 when two valid roster versions with one number are held \
         (roster changes frozen at the last agreed version).\n\
         # TYPE tanoa_roster_fork gauge\ntanoa_roster_fork {}\n\
         # HELP tanoa_roster_refusals_total Roster items refused, by reason.\n\
         # TYPE tanoa_roster_refusals_total counter\n",
        v.current.roster.version,
        u8::from(v.fork.is_some())
    );
    for (reason, n) in &v.refusals {
        out.push_str(&format!(
            "tanoa_roster_refusals_total{{reason=\"{reason}\"}} {n}\n"
        ));
    }
    out.push_str(&format!(
        "# HELP tanoa_roster_dropped_items_total Held items dropped from the store because the \
         roster in force voids them (revoked key, removed member, rotation window).\n\
         # TYPE tanoa_roster_dropped_items_total counter\ntanoa_roster_dropped_items_total {}\n",
        r.dropped_items()
    ));
    out
}

/// The rule by which a roster version voids items: an item of an origin the version knows (a
/// member or a former member) is void when the key that signed it is not that origin's, or its
/// window (closed by a rotation, a revocation as of a time, or the member's removal) does not
/// contain the item's `modified` time. It is `RosterDoc::signer_valid_at`, the rule of every
/// member's keyring on arrival, so every member drops the same items whatever the order they
/// arrived in. Items of origins the roster does not know (`[[trusted]]` keys) are never void.
#[derive(Debug)]
pub(crate) struct VoidRule {
    version: u64,
    doc: tanoa_core::roster::RosterDoc,
    records: Vec<PublicKeyRecord>,
}

impl VoidRule {
    /// The rule of `current`.
    pub(crate) fn of(current: &SignedRoster) -> VoidRule {
        VoidRule {
            version: current.roster.version,
            records: current.roster.key_records(),
            doc: current.roster.clone(),
        }
    }

    /// The roster version the rule is of.
    pub(crate) fn version(&self) -> u64 {
        self.version
    }

    /// Origins that may have void items: members with a key whose window is bounded (a
    /// rotation, a revocation) and former members. Items of other origins are never void.
    pub(crate) fn affected_origins(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .doc
            .members
            .iter()
            .filter(|m| {
                m.keys
                    .iter()
                    .any(|k| k.valid_from_ms.is_some() || k.effective_until_ms(None).is_some())
            })
            .map(|m| m.id.clone())
            .chain(self.doc.former_members.iter().map(|f| f.id.clone()))
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Why an item `origin` signed with `key_id`, dated `modified_ms`, is void under this
    /// version; `None` when it is valid (or its origin is unknown to the roster).
    pub(crate) fn voids(&self, origin: &str, key_id: &str, modified_ms: i64) -> Option<String> {
        let member = self.doc.members.iter().find(|m| m.id == origin);
        let former = self.doc.former_members.iter().find(|f| f.id == origin);
        let keys = match (member, former) {
            (Some(m), _) => &m.keys,
            (None, Some(f)) => &f.keys,
            (None, None) => return None,
        };
        if self
            .records
            .iter()
            .any(|r| r.member == origin && r.key_id == key_id && r.valid_at(modified_ms))
        {
            return None;
        }
        if let Some(f) = former.filter(|f| modified_ms >= f.removed_ms) {
            return Some(format!(
                "dated {modified_ms}, after {origin}'s removal at {}",
                f.removed_ms
            ));
        }
        let key = keys
            .iter()
            .find(|k| k.key_id().is_ok_and(|id| id == key_id));
        Some(match key {
            None => format!("key {key_id} is not a key of {origin}"),
            Some(k) => match k.revoked_as_of_ms {
                Some(r) if modified_ms >= r => {
                    format!("key {key_id} revoked as of {r}, item dated {modified_ms}")
                }
                _ => format!("item dated {modified_ms}, outside the window of key {key_id}"),
            },
        })
    }
}

/// Why this member's signing key may not sign now under a roster version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum OwnKeyProblem {
    /// The version does not list this member (not yet added, or removed).
    NotMember,
    /// The member is listed but the key is not valid for it now (the message says why).
    Invalid(String),
}

/// Whether `key_id` may sign for `me` at `now_ms` under `doc`: listed among `me`'s keys,
/// its window (closed by a rotation) containing `now_ms`, and not revoked by then.
pub(crate) fn own_key_in(
    doc: &tanoa_core::roster::RosterDoc,
    me: &str,
    key_id: &str,
    now_ms: i64,
) -> Result<(), OwnKeyProblem> {
    let Some(m) = doc.member(me) else {
        return Err(OwnKeyProblem::NotMember);
    };
    let listed: Vec<String> = m.keys.iter().filter_map(|k| k.key_id().ok()).collect();
    let Some(k) = m
        .keys
        .iter()
        .find(|k| k.key_id().is_ok_and(|id| id == key_id))
    else {
        return Err(OwnKeyProblem::Invalid(format!(
            "roster version {} lists {me} with keys {}; {key_id} is not among them",
            doc.version,
            listed.join(", ")
        )));
    };
    if k.valid_at(now_ms) {
        return Ok(());
    }
    let why = match (k.revoked_as_of_ms, k.valid_from_ms, k.valid_until_ms) {
        (Some(r), _, _) if now_ms >= r => format!("it is revoked as of {r} (Unix ms)"),
        (_, Some(f), _) if now_ms < f => format!("it signs only from {f} (Unix ms)"),
        (_, _, Some(u)) => format!(
            "its window ended at {u} (Unix ms; rotated: the newer key is {})",
            listed
                .iter()
                .filter(|id| id.as_str() != key_id)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ),
        _ => "it is not valid now".to_string(),
    };
    Err(OwnKeyProblem::Invalid(format!(
        "in roster version {}, key {key_id} of {me} may not sign now: {why}",
        doc.version
    )))
}

/// The roster runtime of one node.
#[derive(Debug)]
pub struct RosterRuntime {
    engine: Mutex<RosterEngine>,
    me: String,
    trusted: Vec<PublicKeyRecord>,
    membership: watch::Sender<Membership>,
    /// The void rule of the version in force, built once per version.
    void_rule: Mutex<Option<std::sync::Arc<VoidRule>>>,
    /// Items dropped because a version voided them (since start).
    dropped: std::sync::atomic::AtomicU64,
}

impl RosterRuntime {
    /// A runtime following `engine` for member `me`; `trusted` are the `[[trusted]]` keys.
    pub(crate) fn new(
        engine: RosterEngine,
        me: &str,
        trusted: Vec<PublicKeyRecord>,
    ) -> RosterRuntime {
        let (membership, _) = watch::channel(engine.current().roster.membership());
        RosterRuntime {
            engine: Mutex::new(engine),
            me: me.to_string(),
            trusted,
            membership,
            void_rule: Mutex::new(None),
            dropped: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Starts following `anchor`: every roster item already in `store` is recorded, so the
    /// version in force at start is the one the node had reached (the store is the roster's
    /// only persistence). Roster items are published by members of some version, so only the
    /// `tanoa-roster.` id range of each member (current and former, of every version reached,
    /// until no new member appears) is read: never the whole store.
    pub(crate) fn start(
        anchor: SignedRoster,
        me: &str,
        trusted: Vec<PublicKeyRecord>,
        store: &dyn Store,
    ) -> Result<RosterRuntime, String> {
        let mut engine = RosterEngine::new(anchor)
            .map_err(|e| format!("the roster file is not acceptable ({}): {e}", e.reason()))?;
        let mut carriers = 0usize;
        let mut scanned = std::collections::BTreeSet::new();
        loop {
            let origins: Vec<String> = engine
                .chain()
                .iter()
                .flat_map(|v| {
                    let doc = &v.roster;
                    doc.members
                        .iter()
                        .map(|m| m.id.clone())
                        .chain(doc.former_members.iter().map(|m| m.id.clone()))
                })
                .filter(|id| !scanned.contains(id))
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            if origins.is_empty() {
                break;
            }
            for origin in origins {
                store
                    .scan_latest_id_prefix(
                        &origin,
                        tanoa_core::roster::CARRIER_PREFIX,
                        true,
                        &mut |item| {
                            if let Some(Ok(r)) = RosterItem::from_advisory(&item.advisory) {
                                engine.ingest(r);
                                carriers += 1;
                            }
                            Ok(true)
                        },
                    )
                    .map_err(|e| format!("reading {origin}'s roster items from the store: {e}"))?;
                scanned.insert(origin);
            }
        }
        tracing::info!(
            roster_items = carriers,
            origins = scanned.len(),
            version = engine.current().roster.version,
            hash = %engine.current().hash(),
            "roster in force at start"
        );
        Ok(RosterRuntime::new(engine, me, trusted))
    }

    fn engine(&self) -> std::sync::MutexGuard<'_, RosterEngine> {
        // A panic while holding the lock cannot leave the engine half-updated in a way that
        // matters more than stopping: recover the guard.
        self.engine.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The version in force.
    pub(crate) fn current(&self) -> SignedRoster {
        self.engine().current().clone()
    }

    /// The void rule of the version in force (see `VoidRule`).
    pub(crate) fn void_rule(&self) -> std::sync::Arc<VoidRule> {
        let version = self.engine().current().roster.version;
        let mut cached = self.void_rule.lock().unwrap_or_else(|p| p.into_inner());
        match cached.as_ref() {
            Some(r) if r.version == version => std::sync::Arc::clone(r),
            _ => {
                // Built from the version in force now (it may have moved on since `version`).
                let r = std::sync::Arc::new(VoidRule::of(&self.current()));
                *cached = Some(std::sync::Arc::clone(&r));
                r
            }
        }
    }

    /// Counts items dropped because the version in force voids them.
    pub(crate) fn note_dropped(&self, n: u64) {
        self.dropped
            .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }

    /// Items dropped because a roster version voided them, since start.
    pub(crate) fn dropped_items(&self) -> u64 {
        self.dropped.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Every verification key of the version in force (former members' included, windows
    /// closed by rotation, revocation and removal) plus the `[[trusted]]` keys.
    pub(crate) fn keyring_records(&self) -> Vec<PublicKeyRecord> {
        let mut out = self.trusted.clone();
        out.extend(self.engine().current().roster.key_records());
        out
    }

    /// The membership of the version in force, and every later one (the node's live
    /// application watches this).
    pub(crate) fn membership_updates(&self) -> watch::Receiver<Membership> {
        self.membership.subscribe()
    }

    /// Hands a new membership to the node (the one call site of the live application).
    fn membership_changed(&self, m: Membership) {
        self.membership.send_replace(m);
    }

    /// Step 1 hook: whether a verified carrier advisory signed by `signer` may be stored. A
    /// refusal is counted and returned as its reason code. Non-carriers pass.
    pub(crate) fn check(&self, a: &Advisory, signer: &str) -> Result<(), &'static str> {
        let Some(parsed) = RosterItem::from_advisory(a) else {
            return Ok(());
        };
        let mut e = self.engine();
        let verdict = parsed.and_then(|item| e.check(&item, signer));
        verdict.map_err(|r| {
            e.count_refusal(r.reason());
            tracing::warn!(item = %a.id, signer, reason = r.reason(), error = %r, "roster item refused");
            r.reason()
        })
    }

    /// Records a stored carrier; when the version in force changed, hands the new membership
    /// to the node and says what else to do. Non-carriers and malformed ones are ignored.
    pub(crate) fn ingest(&self, a: &Advisory) -> Option<Applied> {
        let item = RosterItem::from_advisory(a)?.ok()?;
        let mut e = self.engine();
        let adv: Advanced = e.ingest(item);
        if !adv.changed() && !adv.fork_raised {
            return None;
        }
        let current = e.current().clone();
        let to_publish = adv
            .assembled
            .iter()
            .filter(|s| {
                e.proposal(&s.hash())
                    .is_some_and(|p| p.proposer.member == self.me)
            })
            .cloned()
            .collect();
        drop(e);
        if adv.from != adv.to {
            self.membership_changed(current.roster.membership());
        }
        Some(Applied {
            from: adv.from,
            to: adv.to,
            hash: current.hash(),
            fork_raised: adv.fork_raised,
            to_publish,
        })
    }

    /// For the operator: everything `tanoa roster show` and `history` print.
    pub(crate) fn view(&self) -> RosterView {
        let e = self.engine();
        RosterView {
            current: e.current().clone(),
            chain: e.chain().to_vec(),
            pending: e.pending(),
            fork: e.fork().cloned(),
            refusals: e.refusals().clone(),
        }
    }

    /// This member's proposal of `change` over the version in force, issued at `now_ms`,
    /// signed by `identity` (its own approval). Returns the item and the signatures needed.
    pub(crate) fn propose(
        &self,
        change_json: &str,
        identity: &SigningIdentity,
        now_ms: i64,
    ) -> Result<(RosterItem, usize), RosterOpError> {
        let change: Change = serde_json::from_str(change_json)
            .map_err(|e| RosterOpError::BadChange(e.to_string()))?;
        let e = self.engine();
        if let Some(f) = e.fork() {
            return Err(RosterOpError::Frozen(f.version));
        }
        let current = e.current().roster.clone();
        if current.member(identity.member()).is_none() {
            return Err(RosterOpError::NotMember(identity.member().to_string()));
        }
        let next = propose(&current, &change, now_ms)?;
        let required = required_signatures(&current, &next);
        let proposer = RosterSignature::by(identity, &next.hash());
        let item = RosterItem::Proposal(Proposal {
            change,
            roster: next,
            proposer,
        });
        e.check(&item, identity.member())?;
        Ok((item, required))
    }

    /// This member's approval of the pending proposal whose hash starts with `prefix`.
    pub(crate) fn approve(
        &self,
        prefix: &str,
        identity: &SigningIdentity,
    ) -> Result<(RosterItem, u64, usize), RosterOpError> {
        let e = self.engine();
        if let Some(f) = e.fork() {
            return Err(RosterOpError::Frozen(f.version));
        }
        let p = prefix
            .trim()
            .trim_start_matches("sha256:")
            .to_ascii_lowercase();
        let pending = e.pending();
        let found: Vec<&Pending> = pending
            .iter()
            .filter(|x| p.len() >= 8 && x.hash.to_hex().starts_with(&p))
            .collect();
        let pick = match found.as_slice() {
            [] => return Err(RosterOpError::NoSuchProposal(prefix.to_string())),
            [one] => *one,
            _ => return Err(RosterOpError::Ambiguous(prefix.to_string())),
        };
        let doc = &pick.proposal.roster;
        let item = RosterItem::Approval(Approval {
            federation: doc.federation.clone(),
            version: doc.version,
            roster_hash: pick.hash.to_hex(),
            signature: RosterSignature::by(identity, &pick.hash),
        });
        e.check(&item, identity.member())?;
        Ok((item, doc.version, pick.required))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use ed25519_dalek::SigningKey;
    use tanoa_core::membership::SpkiPin;
    use tanoa_core::model::Limits;
    use tanoa_core::roster::{Change, JoinRequest, RosterDoc, found, propose};

    use super::*;
    use crate::store::MemoryStore;

    pub(super) const T0: i64 = 1_700_000_000_000;

    pub(super) fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    pub(super) fn request(id: &str, seed: u8) -> JoinRequest {
        JoinRequest::sign(
            id,
            &id.to_uppercase(),
            vec![format!("127.0.0.{seed}:7400")],
            vec![SpkiPin([seed; 32])],
            &key(seed),
        )
    }

    pub(super) fn signed(doc: RosterDoc, by: &[(&str, u8)]) -> SignedRoster {
        let h = doc.hash();
        let signatures = by
            .iter()
            .map(|(m, s)| RosterSignature::sign(m, &key(*s), &h))
            .collect();
        SignedRoster {
            roster: doc,
            signatures,
        }
    }

    /// Stores `item` as the carrier advisory `origin` (key seed `seed`) published.
    fn store_carrier(store: &MemoryStore, item: &RosterItem, origin: &str, seed: u8, at: i64) {
        let identity = SigningIdentity::new(origin, key(seed));
        let verified = identity
            .sign(item.to_advisory(origin, at), &Limits::default())
            .unwrap();
        store.put(&verified, "test", at).unwrap();
    }

    #[test]
    fn start_reaches_the_latest_version_held_reading_only_roster_ids_of_members() {
        let founders = [("ws-cert", 1u8), ("to-cert", 2), ("fj-cert", 3)];
        let reqs: Vec<JoinRequest> = founders.iter().map(|(id, s)| request(id, *s)).collect();
        let v1 = signed(found("pacific", 2, T0, &reqs).unwrap(), &founders);
        // v2 adds ck-cert (published by ws-cert); v3, published by ck-cert itself (a member
        // only from v2 on), removes fj-cert: start must follow the chain to members it learns.
        let v2 = signed(
            propose(
                &v1.roster,
                &Change::Add {
                    request: request("ck-cert", 9),
                },
                T0 + 1_000,
            )
            .unwrap(),
            &[("ws-cert", 1), ("to-cert", 2)],
        );
        let v3 = signed(
            propose(
                &v2.roster,
                &Change::Remove {
                    member: "fj-cert".into(),
                },
                T0 + 2_000,
            )
            .unwrap(),
            &[("ck-cert", 9), ("to-cert", 2)],
        );
        let store = MemoryStore::new();
        store_carrier(&store, &RosterItem::Version(v3), "ck-cert", 9, T0 + 2_000);
        store_carrier(&store, &RosterItem::Version(v2), "ws-cert", 1, T0 + 1_000);
        let rt = RosterRuntime::start(v1.clone(), "ws-cert", vec![], &store).unwrap();
        assert_eq!(rt.current().roster.version, 3);
        assert!(
            rt.current()
                .roster
                .former_members
                .iter()
                .any(|m| m.id == "fj-cert")
        );
        // An empty store: the anchor is in force.
        let rt = RosterRuntime::start(v1, "ws-cert", vec![], &MemoryStore::new()).unwrap();
        assert_eq!(rt.current().roster.version, 1);
    }

    #[test]
    fn own_key_in_accepts_only_a_listed_key_valid_now() {
        let founders = [("ws-cert", 1u8), ("to-cert", 2)];
        let reqs: Vec<JoinRequest> = founders.iter().map(|(id, s)| request(id, *s)).collect();
        let v1 = found("pacific", 2, T0, &reqs).unwrap();
        let kid = |seed: u8| tanoa_core::envelope::key_id_of(&key(seed).verifying_key());
        assert_eq!(own_key_in(&v1, "to-cert", &kid(2), T0 + 1), Ok(()));
        assert_eq!(
            own_key_in(&v1, "ck-cert", &kid(2), T0 + 1),
            Err(OwnKeyProblem::NotMember)
        );
        let Err(OwnKeyProblem::Invalid(why)) = own_key_in(&v1, "to-cert", &kid(1), T0 + 1) else {
            panic!("ws-cert's key accepted for to-cert");
        };
        assert!(
            why.contains("not among them") && why.contains(&kid(2)),
            "{why}"
        );
        // Rotated from T0 + 1000: the new key from then on, the old one only before.
        let new = tanoa_core::envelope::SigningIdentity::new("to-cert", key(7));
        let v2 = propose(
            &v1,
            &Change::RotateKey {
                member: "to-cert".into(),
                public_key: crate::keys::public_hex(&key(7).verifying_key()),
                from_ms: T0 + 1_000,
            },
            T0 + 500,
        )
        .unwrap();
        assert_eq!(own_key_in(&v2, "to-cert", new.key_id(), T0 + 2_000), Ok(()));
        assert_eq!(own_key_in(&v2, "to-cert", &kid(2), T0 + 999), Ok(()));
        let Err(OwnKeyProblem::Invalid(why)) = own_key_in(&v2, "to-cert", &kid(2), T0 + 2_000)
        else {
            panic!("the rotated-away key accepted");
        };
        assert!(
            why.contains("window ended") && why.contains(new.key_id()),
            "{why}"
        );
        let Err(OwnKeyProblem::Invalid(why)) = own_key_in(&v2, "to-cert", new.key_id(), T0 + 10)
        else {
            panic!("the new key accepted before its window");
        };
        assert!(why.contains("signs only from"), "{why}");
    }
}

#[cfg(test)]
mod purge_tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::Arc;

    use tanoa_core::envelope::{ItemId, Verified};
    use tanoa_core::model::{Advisory, Limits};
    use tanoa_core::roster::{Change, JoinRequest, found, propose};
    use tanoa_core::store::conformance::advisory;

    use super::tests::{T0, key, request, signed};
    use super::*;
    use crate::publish::NodeCore;
    use crate::store::MemoryStore;

    fn item(origin: &str, seed: u8, revision: u64, modified_ms: i64) -> Verified<Advisory> {
        let mut a = advisory(origin, &format!("{origin}-0001"), revision);
        a.id = "to-2026-0001".into();
        a.created_ms = T0;
        a.modified_ms = modified_ms;
        SigningIdentity::new(origin, key(seed))
            .sign(a, &Limits::default())
            .unwrap()
    }

    /// A rotation then a revocation: every held revision the version in force voids is dropped
    /// (a history revision signed by the revoked key after its time, and the latest, signed by
    /// the rotated-away key after its window), the best remaining one becomes latest, each drop
    /// has one `roster-drop` audit entry saying why, and a second purge drops nothing.
    #[tokio::test]
    async fn the_roster_in_force_drops_every_revision_it_voids_once() {
        let founders = [("ws-cert", 1u8), ("to-cert", 2), ("fj-cert", 3)];
        let reqs: Vec<JoinRequest> = founders.iter().map(|(id, s)| request(id, *s)).collect();
        let v1 = signed(found("pacific", 2, T0, &reqs).unwrap(), &founders);
        let pk7 = crate::keys::public_hex(&key(7).verifying_key());
        let v2 = signed(
            propose(
                &v1.roster,
                &Change::RotateKey {
                    member: "to-cert".into(),
                    public_key: pk7.clone(),
                    from_ms: T0 + 1_000,
                },
                T0 + 100,
            )
            .unwrap(),
            &[("ws-cert", 1), ("fj-cert", 3)],
        );
        let v3 = signed(
            propose(
                &v2.roster,
                &Change::Revoke {
                    member: "to-cert".into(),
                    public_key: pk7,
                    as_of_ms: T0 + 5_000,
                },
                T0 + 200,
            )
            .unwrap(),
            &[("ws-cert", 1), ("fj-cert", 3)],
        );
        let store = Arc::new(MemoryStore::new());
        let ws = SigningIdentity::new("ws-cert", key(1));
        for (v, at) in [(v2, T0 + 100), (v3, T0 + 200)] {
            let carrier = ws
                .sign(
                    RosterItem::Version(v).to_advisory("ws-cert", at),
                    &Limits::default(),
                )
                .unwrap();
            store.put(&carrier, "test", at).unwrap();
        }
        let r1 = item("to-cert", 2, 1, T0 + 500); // old key, in its window
        let r2 = item("to-cert", 7, 2, T0 + 2_000); // new key, before the revocation
        let r3 = item("to-cert", 7, 3, T0 + 6_000); // revoked key, after as_of
        let r4 = item("to-cert", 2, 4, T0 + 7_000); // old key after the rotation
        let other = item("ws-cert", 1, 1, T0 + 9_000);
        for it in [&r1, &r2, &r3, &r4, &other] {
            store.put(it, "test", T0).unwrap();
        }
        assert_eq!(
            store
                .latest("to-cert", "to-2026-0001")
                .unwrap()
                .unwrap()
                .item_id,
            r4.item_id()
        );
        let rt = Arc::new(RosterRuntime::start(v1, "ws-cert", vec![], store.as_ref()).unwrap());
        assert_eq!(rt.current().roster.version, 3);
        assert_eq!(rt.void_rule().affected_origins(), ["to-cert"]);
        let core = NodeCore::new(
            ws,
            "WS",
            Vec::new(),
            Limits::default(),
            Arc::clone(&store) as Arc<dyn Store>,
        );
        core.attach_roster(Arc::clone(&rt));

        let mut dropped = core.purge_voided().await.unwrap();
        dropped.sort();
        let mut want = vec![r3.item_id(), r4.item_id()];
        want.sort();
        assert_eq!(dropped, want);
        let latest = store.latest("to-cert", "to-2026-0001").unwrap().unwrap();
        assert_eq!(latest.item_id, r2.item_id());
        let history: Vec<_> = store
            .history("to-cert", "to-2026-0001")
            .unwrap()
            .into_iter()
            .map(|i| i.item_id)
            .collect();
        assert_eq!(history, vec![r1.item_id(), r2.item_id()]);
        assert!(store.get(&other.item_id()).unwrap().is_some());
        let audit = store.audit(100).unwrap();
        let drops: Vec<_> = audit.iter().filter(|e| e.action == "roster-drop").collect();
        assert_eq!(drops.len(), 2, "{audit:?}");
        let of = |id: ItemId| drops.iter().find(|e| e.item_id == Some(id)).unwrap();
        assert!(
            of(r3.item_id()).detail.contains("revoked as of"),
            "{drops:?}"
        );
        assert!(
            of(r4.item_id()).detail.contains("outside the window"),
            "{drops:?}"
        );
        assert!(of(r4.item_id()).detail.contains(&r2.item_id().to_hex()));
        assert_eq!(of(r3.item_id()).subject, "to-cert/to-2026-0001");
        assert_eq!(of(r3.item_id()).actor, "roster v3");
        assert_eq!(rt.dropped_items(), 2);
        assert!(metrics_text(&rt).contains("tanoa_roster_dropped_items_total 2"));

        // Nothing left to drop: no new audit entry.
        assert!(core.purge_voided().await.unwrap().is_empty());
        assert_eq!(store.audit(100).unwrap().len(), audit.len());

        // to-cert itself, after version 3 came into force: neither its revoked key nor its
        // rotated-away key signs anything more (its peers would refuse and drop it); ws-cert's
        // key still does.
        let draft = crate::publish::tests::draft("", "after the revocation", "192.0.2.7");
        for (seed, why) in [(7u8, "revoked as of"), (2, "window ended")] {
            let to = NodeCore::new(
                SigningIdentity::new("to-cert", key(seed)),
                "TO",
                Vec::new(),
                Limits::default(),
                Arc::clone(&store) as Arc<dyn Store>,
            );
            to.attach_roster(Arc::clone(&rt));
            let before = store.counts().unwrap();
            let e = to.publish(&draft, "t").await.unwrap_err();
            assert!(
                matches!(&e, crate::publish::CoreError::SigningKeyNotValid { .. }),
                "{e}"
            );
            assert!(e.to_string().contains(why), "{e}");
            assert!(e.to_string().contains("roster version 3"), "{e}");
            let e = to.withdraw("to-2026-0001", "gone", "t").await.unwrap_err();
            assert!(e.to_string().contains(why), "{e}");
            assert_eq!(store.counts().unwrap(), before, "nothing signed or stored");
        }
        core.publish(&draft, "t").await.unwrap();
    }
}
