//! The node's sans-IO state machine: the replication core (`SyncCore`) and the one admission
//! pipeline every envelope received from a peer goes through.
//!
//! Owns: the order of the receive pipeline — (1) verify each envelope ([`Verify`]; pure, may run
//! on any thread), (2) admit it by policy against the sending peer ([`NodeMachine::admit`]:
//! `policy::may_send` through the core, per-origin quotas; every refusal counted against the
//! peer by reason), (3) the store plan ([`Intake::items`]: what the runtime must make durable),
//! (4) once durable, report it ([`NodeMachine::accepted`]: the core indexes it, pushes it on and
//! counts it) and answer the sender ([`ItemResult`] per envelope, in order).
//! Must never: read a clock, a socket or a store (time comes in as `now_ms`, storing is the
//! runtime's step 3), or report an item as accepted before the runtime said it is durable.
//!
//! The daemon's driver (`tanoa-daemon`, `node::driver`), the simulator (`tanoa-sim`) and the sync
//! tests all run this machine, so the receive pipeline exists once. Everything else the core does
//! (timers, reconciliation, fetch decisions, operator questions) is reached through
//! [`NodeMachine::core`] / [`NodeMachine::core_mut`].

use crate::envelope::{self, Envelope, ItemId, Keyring, Verified};
use crate::model::{Advisory, Limits};
use crate::sync::{ItemMeta, ItemResult, PeerMessage, Source, SyncCore};

/// Step 1: verification of one envelope into an item and its metadata, or a refusal reason code
/// (`bad_signature`, `unknown_key`, …). The daemon verifies signatures for real
/// ([`KeyringVerifier`]); the simulator caches results; the sync tests look items up in a registry.
pub trait Verify {
    /// What a verified envelope becomes (what the runtime stores).
    type Item;
    /// Verifies `env`.
    fn verify(&mut self, env: Envelope) -> Verdict<Self::Item>;
}

/// The real verifier: strict ed25519 over the payload bytes, the key in `keyring` valid at the
/// item's time, then full validation (`envelope::verify`).
#[derive(Debug, Clone, Copy)]
pub struct KeyringVerifier<'a> {
    /// Trusted keys.
    pub keyring: &'a Keyring,
    /// Validation limits.
    pub limits: &'a Limits,
}

impl Verify for KeyringVerifier<'_> {
    type Item = Verified<Advisory>;

    fn verify(&mut self, env: Envelope) -> Verdict<Self::Item> {
        match envelope::verify(env, self.keyring, self.limits) {
            Ok(v) => {
                let meta = ItemMeta::of_verified(&v);
                Ok((v, meta))
            }
            Err(e) => Err(e.reason()),
        }
    }
}

/// What step 1 made of one envelope: the item and its metadata, or the refusal reason code.
pub type Verdict<T> = Result<(T, ItemMeta), &'static str>;

/// Envelopes after step 1, in the order received.
#[derive(Debug)]
pub struct Checked<T> {
    entries: Vec<(ItemId, Verdict<T>)>,
}

impl<T> Checked<T> {
    /// Runs `verifier` over `envelopes` (step 1).
    pub fn verify<V: Verify<Item = T>>(verifier: &mut V, envelopes: Vec<Envelope>) -> Checked<T> {
        let entries = envelopes
            .into_iter()
            .map(|env| (env.item_id(), verifier.verify(env)))
            .collect();
        Checked { entries }
    }

    /// Number of envelopes.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// No envelope.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Envelopes that passed verification.
    pub fn verified(&self) -> usize {
        self.entries.iter().filter(|(_, r)| r.is_ok()).count()
    }
}

/// Envelopes from one peer after step 2: the answer so far and the store plan.
#[derive(Debug)]
pub struct Intake<T> {
    peer: String,
    results: Vec<ItemResult>,
    /// Step 3, the store plan: the admitted items, to be made durable by the runtime.
    pub items: Vec<T>,
    metas: Vec<ItemMeta>,
    index: Vec<usize>,
}

impl<T> Intake<T> {
    /// The sending peer.
    pub fn peer(&self) -> &str {
        &self.peer
    }

    /// Metadata of the admitted items (parallel to `items`).
    pub fn metas(&self) -> &[ItemMeta] {
        &self.metas
    }

    /// Nothing to store: every envelope was refused (or there was none).
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The answer when nothing is stored (every envelope refused, or the store failed: the
    /// admitted ones are then reported not accepted, reason `store_failed`).
    pub fn refused(mut self, reason: &str) -> Vec<ItemResult> {
        for &i in &self.index {
            self.results[i].reason = reason.to_string();
        }
        self.results
    }
}

/// What [`NodeMachine::accepted`] reports.
#[derive(Debug)]
pub struct Accepted<T> {
    /// One result per envelope received, in order (the answer to the sender).
    pub results: Vec<ItemResult>,
    /// The stored items (the store plan, given back).
    pub items: Vec<T>,
    /// How many of them were new to the core (not duplicates).
    pub new: usize,
}

/// The node: the replication core plus the receive pipeline.
#[derive(Debug)]
pub struct NodeMachine {
    core: SyncCore,
}

impl NodeMachine {
    /// A machine around `core`.
    pub fn new(core: SyncCore) -> NodeMachine {
        NodeMachine { core }
    }

    /// The replication core (status, explanations, next wake-up).
    pub fn core(&self) -> &SyncCore {
        &self.core
    }

    /// The replication core (timers, reconciliation, fetch decisions, link state, actions).
    pub fn core_mut(&mut self) -> &mut SyncCore {
        &mut self.core
    }

    /// Step 2: admits the verified envelopes of `checked`, sent by `peer`, by policy. A
    /// verification failure or a policy refusal is counted against `peer` by reason and answered
    /// with that reason; the admitted items form the store plan.
    pub fn admit<T>(&mut self, now_ms: u64, peer: &str, checked: Checked<T>) -> Intake<T> {
        self.admit_forcing(now_ms, peer, checked, |_| false)
    }

    /// [`NodeMachine::admit`], except that items for which `force` is true are admitted even when
    /// the policy refuses them. Only the simulator's mutations use it, to prove that its
    /// invariants catch a broken policy; the daemon never does.
    pub fn admit_forcing<T>(
        &mut self,
        now_ms: u64,
        peer: &str,
        checked: Checked<T>,
        force: impl Fn(&ItemMeta) -> bool,
    ) -> Intake<T> {
        let n = checked.entries.len();
        let mut intake = Intake {
            peer: peer.to_string(),
            results: Vec::with_capacity(n),
            items: Vec::new(),
            metas: Vec::new(),
            index: Vec::new(),
        };
        for (i, (item_id, verified)) in checked.entries.into_iter().enumerate() {
            let mut result = ItemResult {
                item_id,
                accepted: false,
                reason: String::new(),
            };
            match verified {
                Err(reason) => {
                    self.core.note_item_rejection(peer, &item_id, reason);
                    result.reason = reason.to_string();
                }
                Ok((item, meta)) => match self.core.admit(now_ms, peer, &meta) {
                    Err(r) if !force(&meta) => result.reason = r.code.to_string(),
                    _ => {
                        intake.index.push(i);
                        intake.items.push(item);
                        intake.metas.push(meta);
                    }
                },
            }
            intake.results.push(result);
        }
        intake
    }

    /// Step 4: the runtime made the intake's items durable (or already held them). The core
    /// indexes each, pushes it on and counts it against the peer; the answer marks them accepted.
    pub fn accepted<T>(&mut self, now_ms: u64, intake: Intake<T>) -> Accepted<T> {
        let Intake {
            peer,
            mut results,
            items,
            metas,
            index,
        } = intake;
        let mut new = 0;
        for (meta, i) in metas.iter().zip(index) {
            if self.core.item_accepted(now_ms, meta, Source::Peer(&peer)) {
                new += 1;
            }
            results[i].accepted = true;
        }
        Accepted {
            results,
            items,
            new,
        }
    }

    /// Answers a request from `peer` that writes nothing: a reconciliation round (the core)
    /// or a fetch (the core decides what `peer` may have; `load` supplies the envelopes held).
    /// A push goes through [`NodeMachine::admit`] and [`NodeMachine::accepted`] instead; any
    /// other message is refused. The error is the reason code answered to the peer. (The
    /// daemon's driver asks the core the same questions but loads envelopes from sled in a task,
    /// off its loop, so it cannot pass a synchronous `load`.)
    pub fn answer(
        &mut self,
        now_ms: u64,
        peer: &str,
        msg: PeerMessage,
        load: impl FnMut(&ItemId) -> Option<Envelope>,
    ) -> Result<PeerMessage, String> {
        match msg {
            PeerMessage::ReconcileRequest(r) => self
                .core
                .handle_reconcile(now_ms, peer, &r)
                .map(PeerMessage::ReconcileResponse)
                .map_err(|e| e.code().to_string()),
            PeerMessage::FetchRequest(f) => {
                let reply = self
                    .core
                    .handle_fetch(now_ms, peer, &f)
                    .map_err(|e| e.code().to_string())?;
                Ok(PeerMessage::FetchResponse(reply.into_response(load)))
            }
            other => Err(format!("unexpected request {}", other.name())),
        }
    }

    /// Items published or imported here are durable: the core indexes and pushes them. Returns
    /// how many were new to the core.
    pub fn published<'a>(
        &mut self,
        now_ms: u64,
        metas: impl IntoIterator<Item = &'a ItemMeta>,
    ) -> usize {
        metas
            .into_iter()
            .filter(|m| self.core.item_accepted(now_ms, m, Source::Local))
            .count()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::model::Tlp;
    use crate::store::conformance::{amber, signed, ws_identity, ws_item};
    use crate::sync::SyncConfig;

    fn machine(me: &str, peers: &[&str]) -> NodeMachine {
        let core = SyncCore::new(
            SyncConfig::default(),
            me.to_string(),
            peers.iter().map(|p| p.to_string()),
            7,
            1_000,
        )
        .unwrap();
        NodeMachine::new(core)
    }

    #[test]
    fn the_pipeline_verifies_admits_by_policy_and_accepts_only_after_the_store() {
        let mut keyring = Keyring::new();
        let id = ws_identity();
        keyring.insert(envelope::PublicKeyRecord::new(
            id.member(),
            id.verifying_key(),
            None,
            None,
        ));
        let limits = Limits::default();
        let green = ws_item("ws-2026-0001", 1);
        let mut a = crate::store::conformance::advisory("ws-cert", "ws-2026-0002", 1);
        a.audience = vec!["to-cert".to_string()];
        let amber_item = signed(amber(a));
        assert_eq!(amber_item.tlp, Tlp::Amber);
        let mut forged = green.envelope().clone();
        forged.signature[0] ^= 1;

        // fj-cert receives from ws-cert (the origin): GREEN admitted, AMBER for to-cert only
        // refused, the forged envelope refused as a bad signature.
        let mut m = machine("fj-cert", &["ws-cert", "to-cert"]);
        let envs = vec![
            green.envelope().clone(),
            amber_item.envelope().clone(),
            forged,
        ];
        let checked = Checked::verify(
            &mut KeyringVerifier {
                keyring: &keyring,
                limits: &limits,
            },
            envs,
        );
        assert_eq!((checked.len(), checked.verified()), (3, 2));
        let intake = m.admit(2_000, "ws-cert", checked);
        assert_eq!(intake.items.len(), 1);
        assert_eq!(intake.metas()[0].id, green.item_id());
        assert!(
            !m.core().holds(&green.item_id()),
            "not held before the store"
        );
        let done = m.accepted(2_000, intake);
        assert_eq!(done.new, 1);
        assert!(m.core().holds(&green.item_id()));
        let r = &done.results;
        assert!(r[0].accepted && r[0].reason.is_empty());
        assert!(!r[1].accepted && !r[1].reason.is_empty(), "{r:?}");
        assert_eq!(
            (r[2].accepted, r[2].reason.as_str()),
            (false, "bad_signature")
        );
        let stats = m.core().peer(2_000, "ws-cert").unwrap().stats;
        assert_eq!(stats.rejections.values().sum::<u64>(), 2, "{stats:?}");
    }

    #[test]
    fn a_store_failure_answers_not_accepted_and_the_core_never_holds_it() {
        struct Registry;
        impl Verify for Registry {
            type Item = ();
            fn verify(&mut self, env: Envelope) -> Result<((), ItemMeta), &'static str> {
                Ok((
                    (),
                    ItemMeta::new(env.item_id(), "ws-cert", Tlp::Green, Vec::new(), 5, 100),
                ))
            }
        }
        let mut m = machine("fj-cert", &["ws-cert"]);
        let env = ws_item("ws-2026-0001", 1).envelope().clone();
        let id = env.item_id();
        let intake = m.admit(1, "ws-cert", Checked::verify(&mut Registry, vec![env]));
        assert!(!intake.is_empty());
        let results = intake.refused("store_failed");
        assert_eq!(results[0].reason, "store_failed");
        assert!(!results[0].accepted);
        assert!(!m.core().holds(&id));
    }
}
