//! A small deterministic network of sync cores for tests: a virtual clock, an event queue ordered
//! by (time, sequence), fixed latency, loss decided by a keyed hash of (link, bytes, repetition
//! of those bytes on the link) so that two runs lose the same messages on the same links, members that stop,
//! restart or lose their store. Every message delivered is recorded, as bytes, per receiver.
//!
//! The "driver" here plays the node: it keeps a store (id -> envelope), "verifies" an envelope by
//! looking its item up in the registry of items made by the test (an unknown envelope is refused
//! like a forged one), asks the core to `admit` it, and asserts the TLP invariant before storing.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};

use super::super::prf::{self, Prf};
use super::super::{
    Action, Failure, ItemMeta, ItemResult, PeerMessage, PushRequest, PushResponse, RequestId,
    SyncConfig, SyncCore, envelope_wire_len,
};
use crate::envelope::{Envelope, ItemId};
use crate::machine::{Checked, NodeMachine, Verify};
use crate::model::Tlp;
use crate::policy;

/// An item made by a test: its envelope (fake signature) and the metadata "verification" yields.
#[derive(Debug, Clone)]
pub(crate) struct TestItem {
    pub(crate) meta: ItemMeta,
    pub(crate) env: Envelope,
}

/// A test item; distinct `(origin, n)` give distinct items.
pub(crate) fn item(
    origin: &str,
    n: u64,
    tlp: Tlp,
    audience: &[&str],
    modified_ms: i64,
) -> TestItem {
    let mut aud: Vec<String> = audience.iter().map(|s| s.to_string()).collect();
    aud.sort();
    aud.dedup();
    let payload = format!(
        "advisory {origin}/{n} {} [{}] at {modified_ms} {}",
        tlp.as_str(),
        aud.join(","),
        "lorem ipsum ".repeat(8)
    )
    .into_bytes();
    let env = Envelope {
        payload,
        key_id: format!("ed25519:{origin}"),
        signature: vec![0xA5; 64],
    };
    let meta = ItemMeta::new(
        env.item_id(),
        origin,
        tlp,
        aud,
        modified_ms,
        envelope_wire_len(&env),
    );
    TestItem { meta, env }
}

/// One message as its receiver saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    pub(crate) at: u64,
    pub(crate) from: usize,
    pub(crate) kind: &'static str,
    pub(crate) bytes: Vec<u8>,
}

#[derive(Debug)]
enum Body {
    Request(RequestId, PeerMessage),
    Response(RequestId, PeerMessage),
    Failed(RequestId, Failure),
}

#[derive(Debug)]
enum Event {
    Deliver { from: usize, to: usize, body: Body },
    Wake { node: usize },
}

/// A member: its core and its store.
#[derive(Debug)]
pub(crate) struct Node {
    pub(crate) id: String,
    pub(crate) machine: NodeMachine,
    pub(crate) store: BTreeMap<ItemId, Envelope>,
    pub(crate) online: bool,
}

/// Decides whether a message is lost: `(from, to, message) -> lost`.
pub(crate) type DropRule = Box<dyn Fn(usize, usize, &PeerMessage) -> bool>;

/// The network.
pub(crate) struct Net {
    pub(crate) now: u64,
    pub(crate) nodes: Vec<Node>,
    pub(crate) cfg: SyncConfig,
    seed: u64,
    queue: BinaryHeap<Reverse<(u64, u64)>>,
    events: HashMap<u64, Event>,
    seq: u64,
    pub(crate) latency_ms: u64,
    /// Probability of loss per message, in parts per million.
    pub(crate) loss_ppm: u64,
    /// Links `(from, to)` that `loss_ppm` applies to (all when `None`).
    pub(crate) lossy_links: Option<Box<dyn Fn(usize, usize) -> bool>>,
    /// Extra loss rule (partitions, "drop every push").
    pub(crate) drop_rule: Option<DropRule>,
    link_counts: HashMap<(usize, usize, u64), u64>,
    pub(crate) registry: HashMap<ItemId, TestItem>,
    /// Messages delivered, per receiver.
    pub(crate) transcripts: Vec<Vec<Record>>,
    /// Messages delivered, by kind.
    pub(crate) delivered: BTreeMap<&'static str, u64>,
    pub(crate) lost: u64,
}

impl std::fmt::Debug for Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Net")
            .field("now", &self.now)
            .field("nodes", &self.nodes.len())
            .finish_non_exhaustive()
    }
}

impl Net {
    /// Members `ids` (all peers of each other), each core seeded from `seed` and its position.
    pub(crate) fn new(ids: &[&str], cfg: SyncConfig, seed: u64) -> Self {
        let mut net = Self {
            now: 1_000,
            nodes: Vec::new(),
            cfg,
            seed,
            queue: BinaryHeap::new(),
            events: HashMap::new(),
            seq: 0,
            latency_ms: 10,
            loss_ppm: 0,
            lossy_links: None,
            drop_rule: None,
            link_counts: HashMap::new(),
            registry: HashMap::new(),
            transcripts: vec![Vec::new(); ids.len()],
            delivered: BTreeMap::new(),
            lost: 0,
        };
        for (i, id) in ids.iter().enumerate() {
            let core = net.new_core(i, ids);
            net.nodes.push(Node {
                id: id.to_string(),
                machine: NodeMachine::new(core),
                store: BTreeMap::new(),
                online: true,
            });
        }
        for i in 0..ids.len() {
            net.drain(i);
        }
        net
    }

    fn new_core(&self, i: usize, ids: &[&str]) -> SyncCore {
        let peers: Vec<&str> = ids.iter().copied().filter(|p| *p != ids[i]).collect();
        SyncCore::new(
            self.cfg.clone(),
            ids[i],
            peers,
            prf::mix(self.seed ^ i as u64),
            self.now,
        )
        .expect("valid config")
    }

    pub(crate) fn idx(&self, id: &str) -> usize {
        self.nodes
            .iter()
            .position(|n| n.id == id)
            .expect("member of the test network")
    }

    /// Makes an item known to "verification" without giving it to anyone.
    pub(crate) fn register(&mut self, it: &TestItem) {
        self.registry.insert(it.meta.id, it.clone());
    }

    /// `node` publishes `it` now.
    pub(crate) fn publish(&mut self, node: usize, it: &TestItem) {
        self.register(it);
        assert!(policy::may_hold(&it.meta.scope(), &self.nodes[node].id).allowed);
        let n = &mut self.nodes[node];
        n.store.insert(it.meta.id, it.env.clone());
        n.machine.published(self.now, [&it.meta]);
        self.drain(node);
    }

    /// Stops a member (its in-flight messages are lost, requests to it fail as unreachable).
    pub(crate) fn stop(&mut self, node: usize) {
        self.nodes[node].online = false;
    }

    /// Restarts a member with a new core (its store kept, or wiped), and connects it to every
    /// peer (`peer_up` on its side, as the daemon's driver does after start).
    pub(crate) fn restart(&mut self, node: usize, wipe: bool) {
        let ids: Vec<String> = self.nodes.iter().map(|n| n.id.clone()).collect();
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        let mut core = self.new_core(node, &ids);
        if wipe {
            self.nodes[node].store.clear();
        }
        let metas: Vec<ItemMeta> = self.nodes[node]
            .store
            .keys()
            .map(|id| self.registry[id].meta.clone())
            .collect();
        core.load_items(metas.iter());
        self.nodes[node].machine = NodeMachine::new(core);
        self.nodes[node].online = true;
        for p in ids.iter().filter(|p| **p != ids[node]) {
            self.nodes[node].machine.core_mut().peer_up(self.now, p);
        }
        self.drain(node);
    }

    fn schedule(&mut self, at: u64, ev: Event) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq)));
        self.events.insert(self.seq, ev);
    }

    /// Turns a member's pending actions into messages and wake-ups.
    fn drain(&mut self, node: usize) {
        while let Some(a) = self.nodes[node].machine.core_mut().poll_action() {
            match a {
                Action::WakeAt(t) => self.schedule(t.max(self.now), Event::Wake { node }),
                Action::Push { to, req, items } => {
                    let envelopes = items
                        .iter()
                        .map(|id| self.nodes[node].store[id].clone())
                        .collect();
                    let to = self.idx(&to);
                    let msg = PeerMessage::PushRequest(PushRequest { envelopes });
                    self.send(node, to, Body::Request(req, msg));
                }
                Action::Reconcile { to, req, msg } => {
                    let to = self.idx(&to);
                    self.send(
                        node,
                        to,
                        Body::Request(req, PeerMessage::ReconcileRequest(msg)),
                    );
                }
                Action::Fetch { from, req, msg } => {
                    let to = self.idx(&from);
                    self.send(node, to, Body::Request(req, PeerMessage::FetchRequest(msg)));
                }
            }
        }
    }

    fn send(&mut self, from: usize, to: usize, body: Body) {
        let at = self.now + self.latency_ms;
        if let Body::Request(_, msg) | Body::Response(_, msg) = &body {
            // The fate of a message depends on its link, its bytes and how many identical
            // messages went that way before: never on unrelated traffic.
            let digest = prf::fnv(&msg.encode());
            let n = self.link_counts.entry((from, to, digest)).or_insert(0);
            *n += 1;
            let h = Prf::new(self.seed).hash(0x6c6f_7373, &[from as u64, to as u64, *n, digest]);
            let lossy = self.lossy_links.as_ref().is_none_or(|l| l(from, to));
            let lost_by_chance = lossy && h % 1_000_000 < self.loss_ppm;
            let lost_by_rule = self.drop_rule.as_ref().is_some_and(|r| r(from, to, msg));
            if lost_by_chance || lost_by_rule {
                self.lost += 1;
                return;
            }
        }
        self.schedule(at, Event::Deliver { from, to, body });
    }

    /// Runs every event up to and including `t`.
    pub(crate) fn run_until(&mut self, t: u64) {
        while let Some(&Reverse((at, seq))) = self.queue.peek() {
            if at > t {
                break;
            }
            self.queue.pop();
            let Some(ev) = self.events.remove(&seq) else {
                continue;
            };
            self.now = at;
            match ev {
                Event::Wake { node } => {
                    if self.nodes[node].online {
                        self.nodes[node].machine.core_mut().handle_timeout(self.now);
                        self.drain(node);
                    }
                }
                Event::Deliver { from, to, body } => self.deliver(from, to, body),
            }
        }
        self.now = self.now.max(t);
    }

    /// Runs for `ms` more.
    pub(crate) fn run_for(&mut self, ms: u64) {
        self.run_until(self.now + ms);
    }

    fn deliver(&mut self, from: usize, to: usize, body: Body) {
        if !self.nodes[to].online || !self.nodes[from].online {
            if let Body::Request(req, _) = body
                && self.nodes[from].online
            {
                self.schedule(
                    self.now + self.latency_ms,
                    Event::Deliver {
                        from: to,
                        to: from,
                        body: Body::Failed(req, Failure::Unreachable),
                    },
                );
            }
            return;
        }
        let from_id = self.nodes[from].id.clone();
        match body {
            Body::Request(req, msg) => {
                self.record(from, to, &msg);
                let reply = self.answer(to, &from_id, msg);
                let back = match reply {
                    Ok(m) => Body::Response(req, m),
                    Err(code) => Body::Failed(req, Failure::Refused(code)),
                };
                self.send(to, from, back);
            }
            Body::Response(req, msg) => {
                self.record(from, to, &msg);
                let now = self.now;
                match msg {
                    PeerMessage::PushResponse(r) => self.nodes[to]
                        .machine
                        .core_mut()
                        .on_push_response(now, &from_id, req, &r),
                    PeerMessage::ReconcileResponse(r) => self.nodes[to]
                        .machine
                        .core_mut()
                        .on_reconcile_response(now, &from_id, req, &r),
                    PeerMessage::FetchResponse(r) => {
                        for env in &r.envelopes {
                            self.receive(to, &from_id, env);
                        }
                        self.nodes[to]
                            .machine
                            .core_mut()
                            .on_fetch_response(now, &from_id, req, &r);
                    }
                    other => panic!("unexpected response {}", other.name()),
                }
            }
            Body::Failed(req, f) => {
                let now = self.now;
                self.nodes[to]
                    .machine
                    .core_mut()
                    .on_request_failed(now, &from_id, req, f);
            }
        }
        self.drain(to);
    }

    fn record(&mut self, from: usize, to: usize, msg: &PeerMessage) {
        *self.delivered.entry(msg.name()).or_insert(0) += 1;
        self.transcripts[to].push(Record {
            at: self.now,
            from,
            kind: msg.name(),
            bytes: msg.encode(),
        });
    }

    fn answer(&mut self, node: usize, from: &str, msg: PeerMessage) -> Result<PeerMessage, String> {
        let now = self.now;
        match msg {
            PeerMessage::PushRequest(p) => {
                let results = p
                    .envelopes
                    .iter()
                    .map(|e| self.receive(node, from, e))
                    .collect();
                Ok(PeerMessage::PushResponse(PushResponse { results }))
            }
            other => {
                let n = &mut self.nodes[node];
                let store = &n.store;
                n.machine
                    .answer(now, from, other, |id| store.get(id).cloned())
            }
        }
    }

    /// The node's receive path: the node machine's pipeline (verify by the registry, admit by
    /// policy, store plan, accepted), asserting the TLP invariant before the store applies it.
    fn receive(&mut self, node: usize, from: &str, env: &Envelope) -> ItemResult {
        let now = self.now;
        let checked = Checked::verify(
            &mut RegistryVerifier {
                registry: &self.registry,
            },
            vec![env.clone()],
        );
        let n = &mut self.nodes[node];
        let intake = n.machine.admit(now, from, checked);
        for meta in intake.metas() {
            assert!(
                policy::may_hold(&meta.scope(), &n.id).allowed,
                "{} would store {:?} ({}) it may not hold, sent by {from}",
                n.id,
                meta.id,
                meta.tlp
            );
        }
        for e in &intake.items {
            n.store.insert(e.item_id(), e.clone());
        }
        let mut done = n.machine.accepted(now, intake);
        done.results.pop().expect("one result per envelope")
    }

    /// Whether every member holds exactly the registered items it may hold.
    pub(crate) fn converged(&self) -> bool {
        self.nodes.iter().all(|n| {
            let expected: BTreeSet<ItemId> = self
                .registry
                .values()
                .filter(|it| policy::may_hold(&it.meta.scope(), &n.id).allowed)
                .map(|it| it.meta.id)
                .collect();
            let held: BTreeSet<ItemId> = n.store.keys().copied().collect();
            held == expected
        })
    }

    /// Runs in steps of `step` ms until converged; returns the time taken, or `None` after `max`.
    pub(crate) fn run_until_converged(&mut self, step: u64, max: u64) -> Option<u64> {
        let start = self.now;
        while self.now - start <= max {
            if self.converged() {
                return Some(self.now - start);
            }
            self.run_for(step);
        }
        None
    }

    /// Every message delivered to `node` whose bytes contain `needle`.
    pub(crate) fn messages_to_containing(&self, node: usize, needle: &[u8]) -> Vec<&Record> {
        self.transcripts[node]
            .iter()
            .filter(|r| r.bytes.windows(needle.len()).any(|w| w == needle))
            .collect()
    }

    /// Every message delivered to anyone whose bytes contain `needle`: (receiver, record).
    pub(crate) fn all_messages_containing(&self, needle: &[u8]) -> Vec<(usize, &Record)> {
        (0..self.nodes.len())
            .flat_map(|n| {
                self.messages_to_containing(n, needle)
                    .into_iter()
                    .map(move |r| (n, r))
            })
            .collect()
    }
}

/// "Verification" in the test network: an envelope is valid when the test registered its item
/// (an unknown envelope is refused like one signed by an unknown key).
struct RegistryVerifier<'a> {
    registry: &'a HashMap<ItemId, TestItem>,
}

impl Verify for RegistryVerifier<'_> {
    type Item = Envelope;

    fn verify(&mut self, env: Envelope) -> Result<(Envelope, ItemMeta), &'static str> {
        match self.registry.get(&env.item_id()) {
            Some(it) => Ok((env, it.meta.clone())),
            None => Err("unknown_key"),
        }
    }
}
