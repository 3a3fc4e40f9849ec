//! The event loop: members, network, items, invariants and counters (see the module doc of
//! `sim`).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};

use ed25519_dalek::SigningKey;

use super::links::AccessLinks;
use super::report::{ProfileRow, Report, RosterSummary, Thin};
use super::roster::{RosterSim, member_key};
use super::scenario::{Fault, LinkProfile, Mutation, RosterStep, Scenario, link_bytes};
use tanoa_core::envelope::{
    self, Envelope, ItemId, Keyring, PublicKeyRecord, SigningIdentity, Verified,
};
use tanoa_core::machine::{Checked, NodeMachine, Verify};
use tanoa_core::model::{Advisory, Indicator, IndicatorKind, Limits, Severity, Tlp};
use tanoa_core::policy;
use tanoa_core::roster::{Approval, RosterEngine, RosterItem, RosterSignature};
use tanoa_core::store::{MemoryStore, Store};
use tanoa_core::sync::{
    Action, Failure, ItemMeta, ItemResult, PeerMessage, PushRequest, PushResponse, RequestId,
    SyncCore,
};

/// Virtual time of the start of the wave (Unix ms; far from 0 so skewed clocks stay positive).
const T0: u64 = 1_750_000_000_000;

/// A failed run: what went wrong, and how to replay it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("scenario {scenario:?} seed {seed}: {} violation(s), first: {}", violations.len(), violations.first().map(String::as_str).unwrap_or("none"))]
pub struct SimError {
    /// Scenario name.
    pub scenario: String,
    /// Seed to replay with.
    pub seed: u64,
    /// Every violation, in order (time and message).
    pub violations: Vec<String>,
    /// The measurements, when the run got to the end.
    pub report: Option<Box<Report>>,
}

/// A finished run: its report, and the transcripts asked for.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Measurements.
    pub report: Report,
    /// Messages delivered to each member of `Scenario::record_for`: (time, sender, encoded).
    pub transcripts: BTreeMap<usize, Vec<(u64, usize, Vec<u8>)>>,
}

/// Keyed hash: splitmix64 over the seed and the words.
pub(crate) fn h(seed: u64, words: &[u64]) -> u64 {
    let mut z = seed ^ 0x9e37_79b9_7f4a_7c15;
    for w in words {
        z = mix(z ^ w.wrapping_mul(0xbf58_476d_1ce4_e5b9));
    }
    z
}

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn fnv(bytes: &[u8]) -> u64 {
    let mut x: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        x = (x ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
    }
    x
}

/// A planned item: origin, TLP, audience, revision, tag (`@k` revision of plan entry k, `@k!`
/// equivocation of it), publication time.
type Planned = (usize, Tlp, Vec<usize>, u64, String, Option<i64>);

struct SimItem {
    meta: ItemMeta,
    verified: Verified<Advisory>,
    /// Advisory key index (origin, id) for the agreement check.
    advisory: usize,
    revision: u64,
    /// Publication time (ms after T0); `None` for backlog items.
    publish_at: Option<i64>,
    origin: usize,
    /// Published and counted in coverage.
    live: bool,
    /// Invalid under the final roster (a revoked key's or a removed member's later item): never
    /// counted, and nobody may hold it at the end.
    void: bool,
}

struct Member {
    id: String,
    machine: NodeMachine,
    store: MemoryStore,
    held: HashSet<u32>,
    depth: HashMap<u32, u16>,
    online: bool,
    /// Gone for good: not counted any more.
    gone: bool,
    inc: u32,
    skew: i64,
    wake: Option<u64>,
    /// Roster scenarios: the member's roster engine, the view of its version in force, and
    /// when it reached the final version.
    roster: Option<RosterEngine>,
    view: usize,
    converged_at: Option<u64>,
    /// Items dropped as invalid under its roster in force (its core still indexes them).
    dropped: HashSet<u32>,
}

impl Member {
    fn local(&self, now: u64) -> u64 {
        now.saturating_add_signed(self.skew)
    }
}

#[derive(Debug)]
enum Body {
    Request(RequestId, PeerMessage),
    Response(RequestId, PeerMessage),
    Failed(RequestId, Failure),
}

#[derive(Debug)]
enum Ev {
    Deliver {
        from: usize,
        to: usize,
        /// Incarnation of the member a response or failure goes to.
        to_inc: u32,
        body: Body,
        /// The message as encoded on the wire (empty for a failure).
        wire: Vec<u8>,
    },
    Wake {
        node: usize,
        at_local: u64,
    },
    /// A message of a profiled scenario reaches its receiver's downlink.
    Downlink {
        from: usize,
        to: usize,
        to_inc: u32,
        body: Body,
        wire: Vec<u8>,
        /// When it was sent (absolute ms) and when it reaches the downlink (µs).
        sent: u64,
        arrive_us: u64,
    },
    Publish(u32),
    Fault(Fault),
    Join(usize),
    ChurnTick,
    Vanish(usize),
    /// Roster change k of the plan is proposed.
    RosterPropose(usize),
    /// A member publishes a roster carrier (its approval, or a version it assembled).
    RosterPublish {
        member: usize,
        item: Box<RosterItem>,
    },
}

struct Sim {
    sc: Scenario,
    seed: u64,
    now: u64,
    members: Vec<Member>,
    ids: Vec<String>,
    by_name: HashMap<String, usize>,
    items: Vec<SimItem>,
    by_id: HashMap<ItemId, u32>,
    advisories: Vec<(String, String)>,
    keyring: Keyring,
    limits: Limits,
    /// Verification cache: item id -> the envelope verified (see the module doc).
    verified_ok: HashSet<(usize, ItemId)>,
    /// Roster scenarios: the plan's chain and views.
    rs: Option<RosterSim>,
    /// Messages refused because one end is not in the other's roster in force.
    gated: u64,
    /// Items dropped because the roster in force made them invalid.
    purged: u64,
    /// Roster carriers refused by `RosterEngine::check`, by reason.
    roster_refused: BTreeMap<&'static str, u64>,
    queue: BinaryHeap<Reverse<(u64, u64)>>,
    events: HashMap<u64, Ev>,
    seq: u64,
    link_free: HashMap<(usize, usize), u64>,
    /// Access links, when the scenario names profiles (issue 12).
    links: Option<AccessLinks>,
    /// Time (ms after T0) each member last stored an item it had not held.
    last_new: Vec<u64>,
    /// Messages lost on a dropped link (`cable-cut`).
    dropped: u64,
    link_counts: HashMap<(usize, usize, u64), u64>,
    group: Vec<u8>,
    /// Publish-and-vanish: the origin may only talk to this peer.
    only_to: Option<(usize, usize)>,
    churn_ppm: u64,
    churned: Vec<usize>,
    restricted: bool,
    pending_publishes: usize,
    expected_total: u64,
    held_total: u64,
    violations: Vec<String>,
    transcripts: BTreeMap<usize, Vec<(u64, usize, Vec<u8>)>>,
    // Counters.
    msgs: BTreeMap<&'static str, (u64, u64)>,
    envelope_deliveries: u64,
    lost: u64,
    duplicated: u64,
    lost_items: u64,
    first_receipts: u64,
    t999: Option<u64>,
    t100: Option<u64>,
    heal_at: Option<u64>,
    diffs_at_heal: u64,
    bytes_at_heal: BTreeMap<&'static str, (u64, u64)>,
    bytes_at_converge_after_heal: Option<BTreeMap<&'static str, (u64, u64)>>,
}

/// Runs `scenario` with `seed`. `Err` carries every invariant violation, the scenario name and
/// the seed; a run that ends without converging is also an error.
pub fn run(scenario: &Scenario, seed: u64) -> Result<Outcome, SimError> {
    let fail = |v: String| SimError {
        scenario: scenario.name.clone(),
        seed,
        violations: vec![v],
        report: None,
    };
    let mut sim = Sim::new(scenario.clone(), seed).map_err(fail)?;
    sim.run_all();
    sim.final_checks();
    let report = sim.report();
    if !sim.violations.is_empty() {
        return Err(SimError {
            scenario: scenario.name.clone(),
            seed,
            violations: sim.violations,
            report: Some(Box::new(report)),
        });
    }
    Ok(Outcome {
        report,
        transcripts: sim.transcripts,
    })
}

impl Sim {
    fn new(sc: Scenario, seed: u64) -> Result<Sim, String> {
        let n = sc.members;
        if n < 2 {
            return Err(format!("members: {n}, at least 2 needed"));
        }
        let ids: Vec<String> = (0..n).map(|i| format!("cert-{i:04}")).collect();
        let by_name = ids
            .iter()
            .enumerate()
            .map(|(i, s)| (s.clone(), i))
            .collect();
        let mut sim = Sim {
            seed,
            now: T0,
            members: Vec::with_capacity(n),
            ids,
            by_name,
            items: Vec::new(),
            by_id: HashMap::new(),
            advisories: Vec::new(),
            keyring: Keyring::new(),
            limits: Limits::default(),
            verified_ok: HashSet::new(),
            rs: None,
            gated: 0,
            purged: 0,
            roster_refused: BTreeMap::new(),
            queue: BinaryHeap::new(),
            events: HashMap::new(),
            seq: 0,
            link_free: HashMap::new(),
            links: None,
            last_new: vec![0; n],
            dropped: 0,
            link_counts: HashMap::new(),
            group: vec![0; n],
            only_to: None,
            churn_ppm: 0,
            churned: Vec::new(),
            restricted: false,
            pending_publishes: 0,
            expected_total: 0,
            held_total: 0,
            violations: Vec::new(),
            transcripts: sc.record_for.iter().map(|&q| (q, Vec::new())).collect(),
            msgs: BTreeMap::new(),
            envelope_deliveries: 0,
            lost: 0,
            duplicated: 0,
            lost_items: 0,
            first_receipts: 0,
            t999: None,
            t100: None,
            heal_at: None,
            diffs_at_heal: 0,
            bytes_at_heal: BTreeMap::new(),
            bytes_at_converge_after_heal: None,
            sc,
        };
        if !sim.sc.profiles.is_empty() {
            if sim.sc.profiles.len() != n {
                return Err(format!(
                    "profiles: {} named for {n} members (one per member, or none)",
                    sim.sc.profiles.len()
                ));
            }
            let phase = (0..n)
                .map(|m| h(seed, &[0x6472_6f70, m as u64]) % 3_600_000)
                .collect();
            sim.links = Some(AccessLinks::new(&sim.sc.profiles, phase));
        }
        if let Some(plan) = &sim.sc.roster {
            let t0 = i64::try_from(T0).unwrap_or(0);
            sim.rs = Some(RosterSim::build(
                plan,
                &sim.ids,
                seed,
                t0,
                t0 - 2 * 86_400_000,
            )?);
        }
        for i in 0..n {
            let skew = if sim.sc.skew_ms == 0 {
                0
            } else {
                let span = 2 * sim.sc.skew_ms + 1;
                i64::try_from(h(seed, &[0x736b_6577, i as u64]) % span).unwrap_or(0)
                    - i64::try_from(sim.sc.skew_ms).unwrap_or(0)
            };
            let late = sim.sc.late_joiners.contains(&i);
            let m = Member {
                id: sim.ids[i].clone(),
                machine: NodeMachine::new(sim.new_core(i, 0, T0.saturating_add_signed(skew))?),
                store: MemoryStore::new(),
                held: HashSet::new(),
                depth: HashMap::new(),
                online: !late,
                gone: false,
                inc: 0,
                skew,
                wake: None,
                roster: None,
                view: 0,
                converged_at: None,
                dropped: HashSet::new(),
            };
            sim.members.push(m);
        }
        if let Some(rs) = &sim.rs {
            for m in 0..n {
                let e = rs.anchor_of(m);
                sim.members[m].view = rs.by_hash.get(&e.current().hash()).copied().unwrap_or(0);
                sim.members[m].roster = Some(e);
            }
        }
        sim.make_items()?;
        if sim.rs.is_some() {
            sim.make_roster_items()?;
        }
        // Backlog: stored and indexed at start.
        for ix in 0..sim.items.len() {
            if sim.items[ix].publish_at.is_none() {
                sim.items[ix].live = true;
                sim.count_live(ix as u32);
                let holders = sim.sc.items.backlog_holders.max(1);
                for m in 0..holders.min(n) {
                    if !sim.sc.late_joiners.contains(&m) {
                        sim.store_item(m, ix as u32, "local", 0);
                    }
                }
            }
        }
        for m in 0..n {
            let metas: Vec<ItemMeta> = sim.members[m]
                .held
                .iter()
                .map(|&ix| sim.items[ix as usize].meta.clone())
                .collect();
            sim.members[m].machine.core_mut().load_items(metas.iter());
            sim.drain(m);
        }
        for ix in 0..sim.items.len() {
            if let Some(at) = sim.items[ix].publish_at {
                sim.pending_publishes += 1;
                sim.schedule_rel(at, Ev::Publish(ix as u32));
            }
        }
        for f in sim.sc.faults.clone() {
            sim.schedule_rel(f.at_ms, Ev::Fault(f.fault));
        }
        for &j in &sim.sc.late_joiners.clone() {
            sim.schedule_rel(sim.sc.late_join_ms, Ev::Join(j));
        }
        let proposals: Vec<i64> = sim
            .rs
            .as_ref()
            .map(|rs| rs.changes.iter().map(|c| c.at_ms).collect())
            .unwrap_or_default();
        for (k, at) in proposals.into_iter().enumerate() {
            sim.schedule_rel(at, Ev::RosterPropose(k));
        }
        Ok(sim)
    }

    fn new_core(&self, i: usize, inc: u32, local_now: u64) -> Result<SyncCore, String> {
        let peers = self.ids.iter().filter(|p| **p != self.ids[i]);
        SyncCore::new(
            self.sc.sync.clone(),
            self.ids[i].clone(),
            peers,
            h(self.seed, &[0x636f_7265, i as u64, u64::from(inc)]),
            local_now,
        )
        .map_err(|e| e.to_string())
    }

    /// Signs every item of the scenario once.
    fn make_items(&mut self) -> Result<(), String> {
        let n = self.sc.members;
        let seed = self.seed;
        let mix = self.sc.items.clone();
        let mut excluded: HashSet<usize> = self.sc.late_joiners.iter().copied().collect();
        for f in &self.sc.faults {
            if let Fault::PublishAndVanish { origin, .. } = f.fault {
                excluded.insert(origin);
            }
        }
        let eligible: Vec<usize> = (0..n).filter(|m| !excluded.contains(m)).collect();
        if eligible.is_empty() {
            return Err("no member can publish".to_string());
        }
        let mut signers: HashMap<usize, SigningIdentity> = HashMap::new();
        let spread = self.sc.publish_spread_ms.max(1);
        let mut plan: Vec<Planned> = Vec::new();
        let pick =
            |k: u64, salt: u64| eligible[(h(seed, &[salt, k]) % eligible.len() as u64) as usize];
        let when = |k: u64| Some(i64::try_from(h(seed, &[0x7768_656e, k]) % spread).unwrap_or(0));
        for g in 0..mix.green as u64 {
            plan.push((pick(g, 1), Tlp::Green, vec![], 1, String::new(), when(g)));
        }
        for g in 0..mix.amber_groups as u64 {
            let origin = pick(g, 2);
            let aud = self.audience(origin, mix.amber_audience, 0x616d_6265 ^ g);
            for k in 0..mix.amber_per_group as u64 {
                let tlp = if k % 2 == 0 {
                    Tlp::Amber
                } else {
                    Tlp::AmberStrict
                };
                plan.push((
                    origin,
                    tlp,
                    aud.clone(),
                    1,
                    String::new(),
                    when(1_000_000 + g * 64 + k),
                ));
            }
        }
        for r in 0..mix.red as u64 {
            let origin = pick(r, 3);
            let aud = self.audience(origin, mix.red_audience, 0x0072_6564 ^ r);
            plan.push((origin, Tlp::Red, aud, 1, String::new(), when(2_000_000 + r)));
        }
        for b in 0..mix.backlog as u64 {
            let holders = mix.backlog_holders.clamp(1, n);
            plan.push((
                (b as usize) % holders,
                Tlp::Green,
                vec![],
                1,
                String::new(),
                None,
            ));
        }
        // Revisions and equivocations of the first GREEN advisories.
        let firsts: Vec<usize> = (0..mix.green.min(plan.len())).collect();
        for (k, &p) in firsts.iter().take(mix.revisions).enumerate() {
            let (o, t, a, _, _, at) = plan[p].clone();
            let at = at.map(|x| x + 1_000 + k as i64);
            plan.push((o, t, a, 2, format!("@{p}"), at));
        }
        for &p in firsts.iter().skip(mix.revisions).take(mix.equivocations) {
            let (o, t, a, _, _, at) = plan[p].clone();
            plan.push((o, t, a, 1, format!("@{p}!"), at.map(|x| x + 500)));
        }
        for f in &self.sc.faults {
            if let Fault::PublishAndVanish { origin, .. } = f.fault {
                let at = Some(f.at_ms);
                plan.push((origin, Tlp::Green, vec![], 1, "vanish".to_string(), at));
            }
        }
        let omit: Vec<String> = self
            .sc
            .omit_forbidden_for
            .iter()
            .map(|&q| self.ids[q].clone())
            .collect();
        let mut adv_index: HashMap<(String, String), usize> = HashMap::new();
        for (k, (origin, tlp, aud, revision, tag, at)) in plan.into_iter().enumerate() {
            let audience: Vec<String> = {
                let mut v: Vec<String> = aud.iter().map(|&m| self.ids[m].clone()).collect();
                v.sort();
                v
            };
            let base_k = tag
                .strip_prefix('@')
                .and_then(|s| s.trim_end_matches('!').parse::<usize>().ok())
                .unwrap_or(k);
            let adv_id = format!("TANOA-SIM-{base_k:06}");
            let equiv = tag.ends_with('!');
            let t_mod =
                i64::try_from(T0).unwrap_or(0) - 86_400_000 + i64::try_from(base_k).unwrap_or(0);
            let advisory = Advisory {
                id: adv_id.clone(),
                origin: self.ids[origin].clone(),
                revision,
                created_ms: t_mod,
                modified_ms: t_mod + i64::try_from(revision).unwrap_or(1) * 1_000,
                valid_until_ms: None,
                tlp,
                audience,
                title: format!("Simulated advisory {adv_id} revision {revision}"),
                indicators: (0..mix.indicators)
                    .map(|j| sim_indicator(base_k, j))
                    .collect(),
                summary: if equiv {
                    "Equivocating payload: same revision, different bytes.".to_string()
                } else {
                    "Simulated advisory; indicators in documentation ranges only.".to_string()
                },
                severity: Severity::Medium,
                actors: Vec::new(),
                cves: Vec::new(),
                references: Vec::new(),
                withdrawn: false,
                withdrawn_reason: String::new(),
                extras: Vec::new(),
            };
            let scope_ok = {
                let s = policy::ItemScope::from(&advisory);
                omit.iter().all(|q| policy::may_hold(&s, q).allowed)
            };
            if !scope_ok {
                continue;
            }
            let ident = signers.entry(origin).or_insert_with(|| {
                let key: SigningKey = member_key(seed, origin, 0);
                self.keyring.insert(PublicKeyRecord::new(
                    self.ids[origin].clone(),
                    key.verifying_key(),
                    None,
                    None,
                ));
                SigningIdentity::new(self.ids[origin].clone(), key)
            });
            let verified = ident
                .sign(advisory, &self.limits)
                .map_err(|e| format!("signing item {k}: {e}"))?;
            let meta = ItemMeta::of_verified(&verified);
            if tlp != Tlp::Green && tlp != Tlp::Clear {
                self.restricted = true;
            }
            let key = (self.ids[origin].clone(), adv_id);
            let advisory_ix = *adv_index.entry(key.clone()).or_insert_with(|| {
                self.advisories.push(key);
                self.advisories.len() - 1
            });
            let ix = self.items.len() as u32;
            self.by_id.insert(meta.id, ix);
            self.items.push(SimItem {
                meta,
                verified,
                advisory: advisory_ix,
                revision,
                publish_at: at,
                origin,
                live: false,
                void: false,
            });
        }
        Ok(())
    }

    fn audience(&self, origin: usize, size: usize, salt: u64) -> Vec<usize> {
        let n = self.sc.members;
        let mut out = Vec::new();
        let mut k = 0u64;
        while out.len() < size.min(n - 1) && k < 100 * n as u64 {
            let m = (h(self.seed, &[salt, k]) % n as u64) as usize;
            if m != origin && !out.contains(&m) {
                out.push(m);
            }
            k += 1;
        }
        out
    }

    // --- scheduling -----------------------------------------------------------------------

    fn schedule(&mut self, at: u64, ev: Ev) {
        self.seq += 1;
        self.queue.push(Reverse((at.max(self.now), self.seq)));
        self.events.insert(self.seq, ev);
    }

    fn schedule_rel(&mut self, at_ms: i64, ev: Ev) {
        let at = T0.saturating_add_signed(at_ms);
        self.schedule(at, ev);
    }

    fn run_all(&mut self) {
        let end = T0 + self.sc.max_ms;
        let interval = self.sc.sync.interval_ms.max(1);
        while let Some(&Reverse((at, seq))) = self.queue.peek() {
            if at > end {
                break;
            }
            self.queue.pop();
            let Some(ev) = self.events.remove(&seq) else {
                continue;
            };
            self.now = at;
            self.step(ev);
            if self.pending_publishes == 0 && self.expected_total > 0 {
                let cov = self.held_total as f64 / self.expected_total as f64;
                if self.t999.is_none() && cov >= 0.999 {
                    self.t999 = Some(self.now - T0);
                }
                if self.held_total == self.expected_total {
                    if self.t100.is_none() {
                        self.t100 = Some(self.now - T0);
                    }
                    if self.heal_at.is_some() && self.bytes_at_converge_after_heal.is_none() {
                        self.bytes_at_converge_after_heal = Some(self.msgs.clone());
                    }
                    // Converged and no fault left: run one more interval to see it stay so.
                    if self.churn_ppm == 0
                        && self.sc.record_for.is_empty()
                        && !self.events.values().any(|e| {
                            matches!(
                                e,
                                Ev::Fault(_)
                                    | Ev::Join(_)
                                    | Ev::Publish(_)
                                    | Ev::RosterPropose(_)
                                    | Ev::RosterPublish { .. }
                            )
                        })
                    {
                        let stop = self.now + interval;
                        self.run_until(stop);
                        return;
                    }
                } else {
                    // Coverage fell (wipe, join): 100% must be reached again.
                    self.t100 = None;
                }
            }
        }
    }

    fn run_until(&mut self, end: u64) {
        while let Some(&Reverse((at, seq))) = self.queue.peek() {
            if at > end {
                break;
            }
            self.queue.pop();
            let Some(ev) = self.events.remove(&seq) else {
                continue;
            };
            self.now = at;
            self.step(ev);
        }
    }

    fn step(&mut self, ev: Ev) {
        match ev {
            Ev::Wake { node, at_local } => {
                let m = &mut self.members[node];
                if m.online && m.wake == Some(at_local) {
                    m.wake = None;
                    let t = m.local(self.now);
                    m.machine.core_mut().handle_timeout(t);
                    self.drain(node);
                }
            }
            Ev::Deliver {
                from,
                to,
                to_inc,
                body,
                wire,
            } => self.deliver(from, to, to_inc, body, wire),
            Ev::Downlink {
                from,
                to,
                to_inc,
                body,
                wire,
                sent,
                arrive_us,
            } => self.downlink(from, to, to_inc, body, wire, sent, arrive_us),
            Ev::Publish(ix) => self.publish(ix),
            Ev::Fault(f) => self.fault(f),
            Ev::Join(m) => self.restart(m, true),
            Ev::ChurnTick => self.churn_tick(),
            Ev::Vanish(m) => {
                self.members[m].online = false;
                self.members[m].gone = true;
                self.only_to = None;
                self.uncount(m);
            }
            Ev::RosterPropose(k) => self.roster_propose(k),
            Ev::RosterPublish { member, item } => self.roster_publish(member, *item),
        }
    }

    // --- coverage accounting ----------------------------------------------------------------

    fn may_hold(&self, ix: u32, m: usize) -> bool {
        policy::may_hold(&self.items[ix as usize].meta.scope(), &self.ids[m]).allowed
    }

    fn count_live(&mut self, ix: u32) {
        for m in 0..self.members.len() {
            if !self.members[m].gone && self.may_hold(ix, m) {
                self.expected_total += 1;
            }
        }
    }

    fn uncount(&mut self, m: usize) {
        let live: Vec<u32> = (0..self.items.len() as u32)
            .filter(|&ix| self.items[ix as usize].live)
            .collect();
        for ix in live {
            if self.may_hold(ix, m) {
                self.expected_total -= 1;
            }
        }
        let held = &self.members[m].held;
        self.held_total -= held
            .iter()
            .filter(|&&ix| self.items[ix as usize].live)
            .count() as u64;
    }

    // --- members ----------------------------------------------------------------------------

    fn publish(&mut self, ix: u32) {
        let origin = self.items[ix as usize].origin;
        if !self.members[origin].online {
            // A crashed origin publishes once it is back.
            self.schedule(self.now + 1_000, Ev::Publish(ix));
            return;
        }
        if let Some(rs) = &self.rs {
            // A member signs with a key only once its own roster in force lists it (a rotated
            // key waits for the rotation to be in force there).
            let it = &self.items[ix as usize];
            let view = &rs.views[self.members[origin].view];
            if !view.valid(
                &it.meta.origin,
                &it.verified.envelope().key_id,
                it.verified.modified_ms,
            ) && !it.void
            {
                self.schedule(self.now + 1_000, Ev::Publish(ix));
                return;
            }
        }
        self.pending_publishes -= 1;
        if !self.items[ix as usize].void {
            self.items[ix as usize].live = true;
            self.count_live(ix);
        }
        self.store_item(origin, ix, "local", 0);
        let now = self.members[origin].local(self.now);
        let meta = self.items[ix as usize].meta.clone();
        self.members[origin].machine.published(now, [&meta]);
        self.drain(origin);
        if let Some(Mutation::LeakAmberTo { member }) = self.sc.mutation
            && matches!(meta.tlp, Tlp::Amber)
            && member != origin
        {
            // The broken policy: one more push target.
            let env = self.items[ix as usize].verified.envelope().clone();
            let msg = PeerMessage::PushRequest(PushRequest {
                envelopes: vec![env],
            });
            self.send(origin, member, Body::Request(u64::MAX, msg));
        }
    }

    /// Puts the item in the member's store; checks the hold invariant first.
    fn store_item(&mut self, m: usize, ix: u32, source: &str, depth: u16) {
        if let Some(rs) = &self.rs
            && !(source == "local" && self.items[ix as usize].void)
        {
            // Per the roster in force at this member: its signer's key is valid at its time
            // (except the hostile item a revoked key or a removed member publishes itself).
            let it = &self.items[ix as usize];
            let env = it.verified.envelope();
            let view = &rs.views[self.members[m].view];
            if !view.valid(&it.meta.origin, &env.key_id, it.verified.modified_ms) {
                self.violation(format!(
                    "{} stores {} (origin {}, key {}) invalid under its roster version {}, from {source}",
                    self.ids[m], it.meta.id, it.meta.origin, env.key_id, view.version
                ));
            }
        }
        if !self.may_hold(ix, m) {
            let it = &self.items[ix as usize].meta;
            self.violation(format!(
                "{} stores {} ({}, origin {}) it may not hold, from {source}",
                self.ids[m], it.id, it.tlp, it.origin
            ));
        }
        let now = i64::try_from(self.members[m].local(self.now)).unwrap_or(i64::MAX);
        let mem = &mut self.members[m];
        if let Err(e) = mem
            .store
            .put(&self.items[ix as usize].verified, source, now)
        {
            let msg = format!("{}: store refused item: {e}", mem.id);
            self.violation(msg);
            return;
        }
        if mem.held.insert(ix) {
            mem.depth.insert(ix, depth);
            if self.items[ix as usize].live && !mem.gone {
                self.held_total += 1;
                self.last_new[m] = self.now.saturating_sub(T0);
            }
            if self.rs.is_some() {
                self.roster_ingest(m, ix);
            }
        }
    }

    fn restart(&mut self, m: usize, wipe: bool) {
        if self.members[m].gone {
            return;
        }
        let inc = self.members[m].inc + 1;
        let local = self.members[m].local(self.now);
        let core = match self.new_core(m, inc, local) {
            Ok(c) => c,
            Err(e) => {
                self.violation(format!("{}: restart: {e}", self.ids[m]));
                return;
            }
        };
        if wipe {
            let held: Vec<u32> = self.members[m]
                .held
                .iter()
                .copied()
                .filter(|&ix| self.items[ix as usize].live)
                .collect();
            self.held_total -= held.len() as u64;
            // An item only this member held is lost with its store: nobody can be expected to
            // hold it any more.
            for ix in held {
                let others = (0..self.members.len())
                    .any(|o| o != m && !self.members[o].gone && self.members[o].held.contains(&ix));
                if !others {
                    self.items[ix as usize].live = false;
                    self.lost_items += 1;
                    for q in 0..self.members.len() {
                        if q != m && !self.members[q].gone && self.may_hold(ix, q) {
                            self.expected_total -= 1;
                        }
                    }
                    if self.may_hold(ix, m) {
                        self.expected_total -= 1;
                    }
                }
            }
            let mem = &mut self.members[m];
            mem.store = MemoryStore::new();
            mem.held.clear();
            mem.depth.clear();
            // Its roster items went with the store: back to its roster file.
            if let Some(rs) = &self.rs {
                let e = rs.anchor_of(m);
                let view = rs.by_hash.get(&e.current().hash()).copied().unwrap_or(0);
                let mem = &mut self.members[m];
                mem.view = view;
                mem.converged_at = (view == rs.final_view).then_some(self.now);
                mem.roster = Some(e);
            }
        }
        let mut ids: Vec<u32> = self.members[m].held.iter().copied().collect();
        ids.sort_unstable();
        let metas: Vec<ItemMeta> = ids
            .iter()
            .map(|&ix| self.items[ix as usize].meta.clone())
            .collect();
        let mem = &mut self.members[m];
        mem.machine = NodeMachine::new(core);
        mem.machine.core_mut().load_items(metas.iter());
        mem.inc = inc;
        mem.online = true;
        mem.wake = None;
        for p in 0..self.ids.len() {
            if p != m {
                let name = &self.ids[p];
                self.members[m].machine.core_mut().peer_up(local, name);
            }
        }
        self.drain(m);
    }

    fn crash(&mut self, m: usize) {
        let mem = &mut self.members[m];
        mem.online = false;
        mem.wake = None;
    }

    fn fault(&mut self, f: Fault) {
        match f {
            Fault::Isolate { members } => {
                for m in members {
                    if m < self.group.len() {
                        self.group[m] = 1;
                    }
                }
            }
            Fault::Partition { fraction_ppm } => {
                let n = self.sc.members;
                let mut order: Vec<usize> = (0..n).collect();
                order.sort_by_key(|&m| h(self.seed, &[0x7061_7274, m as u64]));
                let k = (n as u64 * fraction_ppm / 1_000_000) as usize;
                for &m in order.iter().take(k) {
                    self.group[m] = 1;
                }
            }
            Fault::Heal => {
                self.group.iter_mut().for_each(|g| *g = 0);
                self.heal_at = Some(self.now);
                self.diffs_at_heal = self.expected_total - self.held_total;
                self.bytes_at_heal = self.msgs.clone();
            }
            Fault::Crash { member } => self.crash(member),
            Fault::Restart { member, wipe } => self.restart(member, wipe),
            Fault::Churn { fraction_ppm } => {
                self.churn_ppm = fraction_ppm;
                self.schedule(self.now + self.sc.sync.interval_ms.max(1), Ev::ChurnTick);
            }
            Fault::StopChurn => {
                self.churn_ppm = 0;
                for m in std::mem::take(&mut self.churned) {
                    self.restart(m, false);
                }
            }
            Fault::PublishAndVanish { origin, peer } => {
                self.only_to = Some((origin, peer));
                // The item itself is a Publish event at the same time; vanish once it was sent.
                let back = self.sc.link.latency_max_ms * 4 + 500;
                self.schedule(self.now + back, Ev::Vanish(origin));
            }
        }
    }

    fn churn_tick(&mut self) {
        if self.churn_ppm == 0 {
            return;
        }
        let tick = self.now;
        for (k, m) in std::mem::take(&mut self.churned).into_iter().enumerate() {
            let wipe = h(self.seed, &[0x7769_7065, tick, k as u64]).is_multiple_of(10);
            self.restart(m, wipe);
        }
        let n = self.sc.members;
        let k = (n as u64 * self.churn_ppm / 1_000_000) as usize;
        let mut order: Vec<usize> = (0..n)
            .filter(|&m| self.members[m].online && !self.members[m].gone)
            .collect();
        order.sort_by_key(|&m| h(self.seed, &[0x6368_7572, tick, m as u64]));
        for &m in order.iter().take(k) {
            self.crash(m);
            self.churned.push(m);
        }
        self.schedule(self.now + self.sc.sync.interval_ms.max(1), Ev::ChurnTick);
    }

    // --- the driver -------------------------------------------------------------------------

    fn drain(&mut self, node: usize) {
        while let Some(a) = self.members[node].machine.core_mut().poll_action() {
            match a {
                Action::WakeAt(t) => {
                    self.members[node].wake = Some(t);
                    let skew = self.members[node].skew;
                    let at = t.saturating_add_signed(-skew);
                    self.schedule(at, Ev::Wake { node, at_local: t });
                }
                Action::Push { to, req, items } => {
                    let Some(&to) = self.by_name.get(&to) else {
                        continue;
                    };
                    let mut envelopes = Vec::with_capacity(items.len());
                    for id in &items {
                        match self.by_id.get(id) {
                            Some(&ix) if self.members[node].held.contains(&ix) => {
                                envelopes.push(self.items[ix as usize].verified.envelope().clone())
                            }
                            // Dropped from the store by a roster change: the driver finds no
                            // envelope and leaves it out.
                            Some(ix) if self.members[node].dropped.contains(ix) => {}
                            _ => self.violation(format!(
                                "{} asked to push {id} it does not hold",
                                self.ids[node]
                            )),
                        }
                    }
                    let msg = PeerMessage::PushRequest(PushRequest { envelopes });
                    self.send(node, to, Body::Request(req, msg));
                }
                Action::Reconcile { to, req, msg } => {
                    if let Some(&to) = self.by_name.get(&to) {
                        self.send(
                            node,
                            to,
                            Body::Request(req, PeerMessage::ReconcileRequest(msg)),
                        );
                    }
                }
                Action::Fetch { from, req, msg } => {
                    if let Some(&to) = self.by_name.get(&from) {
                        self.send(node, to, Body::Request(req, PeerMessage::FetchRequest(msg)));
                    }
                }
            }
        }
    }

    fn lossy(&self, from: usize, to: usize) -> bool {
        let l = &self.sc.link.lossy_only_for;
        l.is_empty() || l.contains(&from) || l.contains(&to)
    }

    fn send(&mut self, from: usize, to: usize, body: Body) {
        let link = &self.sc.link;
        let span = link.latency_max_ms.saturating_sub(link.latency_min_ms) + 1;
        let latency =
            link.latency_min_ms + h(self.seed, &[0x006c_6174, from as u64, to as u64]) % span;
        let wire = match &body {
            Body::Request(_, m) | Body::Response(_, m) => m.encode(),
            Body::Failed(..) => Vec::new(),
        };
        let (bytes, digest) = (wire.len() as u64, fnv(&wire));
        if self.group[from] != self.group[to] {
            self.lost += 1;
            return;
        }
        if let Some((o, p)) = self.only_to
            && from == o
            && to != p
        {
            self.lost += 1;
            return;
        }
        if self.links.is_some() {
            self.send_profiled(from, to, body, wire, digest);
            return;
        }
        let mut extra = 0;
        let mut dup = false;
        if bytes > 0 && self.lossy(from, to) {
            // The fate of a message depends on its link, its bytes and how many identical
            // messages went that way before: never on unrelated traffic.
            let n = self.link_counts.entry((from, to, digest)).or_insert(0);
            *n += 1;
            let r =
                |salt: u64| h(self.seed, &[salt, from as u64, to as u64, *n, digest]) % 1_000_000;
            if r(0x6c6f_7373) < link.loss_ppm {
                self.lost += 1;
                return;
            }
            if r(0x7265_6f72) < link.reorder_ppm {
                extra = r(0x6578_7472) % (link.reorder_max_ms + 1);
            }
            dup = r(0x0064_7570) < link.dup_ppm;
        }
        let tx = if link.bandwidth_bytes_per_ms == 0 {
            0
        } else {
            bytes.div_ceil(link.bandwidth_bytes_per_ms)
        };
        let free = self.link_free.entry((from, to)).or_insert(0);
        let start = (*free).max(self.now);
        *free = start + tx;
        let at = start + tx + latency + extra;
        let to_inc = self.members[to].inc;
        if dup {
            self.duplicated += 1;
            let copy = match &body {
                Body::Request(r, m) => Body::Request(*r, m.clone()),
                Body::Response(r, m) => Body::Response(*r, m.clone()),
                Body::Failed(r, f) => Body::Failed(*r, f.clone()),
            };
            self.schedule(
                at + 1 + extra,
                Ev::Deliver {
                    from,
                    to,
                    to_inc,
                    body: copy,
                    wire: wire.clone(),
                },
            );
        }
        self.schedule(
            at,
            Ev::Deliver {
                from,
                to,
                to_inc,
                body,
                wire,
            },
        );
    }

    /// Draws whether a message crossing `m`'s access link (`salt`: up or down) is lost: from the
    /// link, the message's bytes and how many identical messages went that way before.
    fn profile_loss(&mut self, m: usize, from: usize, to: usize, digest: u64, salt: u64) -> bool {
        let Some(links) = &self.links else {
            return false;
        };
        let loss = links.spec(m).loss_ppm;
        if loss == 0 {
            return false;
        }
        let n = self
            .link_counts
            .entry((from, to, digest ^ salt))
            .or_insert(0);
        *n += 1;
        h(self.seed, &[salt, from as u64, to as u64, *n, digest]) % 1_000_000 < loss
    }

    /// `send` on access links: the sender's uplink (its loss), then `downlink` on arrival.
    fn send_profiled(&mut self, from: usize, to: usize, body: Body, wire: Vec<u8>, digest: u64) {
        let Some(links) = &mut self.links else {
            return;
        };
        let bytes = link_bytes(wire.len() as u64);
        let arrive_us = links.uplink(from, to, self.now.saturating_sub(T0) * 1_000, bytes);
        if self.profile_loss(from, from, to, digest, 0x7570_6c6f) {
            self.lost += 1;
            return;
        }
        let to_inc = self.members[to].inc;
        self.schedule(
            T0 + arrive_us.div_ceil(1_000),
            Ev::Downlink {
                from,
                to,
                to_inc,
                body,
                wire,
                sent: self.now,
                arrive_us,
            },
        );
    }

    /// A message reaches `to`'s downlink: its loss, its queue, and the drops of either end.
    #[allow(clippy::too_many_arguments)]
    fn downlink(
        &mut self,
        from: usize,
        to: usize,
        to_inc: u32,
        body: Body,
        wire: Vec<u8>,
        sent: u64,
        arrive_us: u64,
    ) {
        let digest = fnv(&wire);
        if self.profile_loss(to, from, to, digest, 0x646f_776e) {
            self.lost += 1;
            return;
        }
        let Some(links) = &mut self.links else {
            return;
        };
        let done_us = links.downlink(to, arrive_us, link_bytes(wire.len() as u64));
        let at = T0 + done_us.div_ceil(1_000);
        let (a, b) = (sent.saturating_sub(T0), at.saturating_sub(T0));
        if links.down_during(from, a, b) || links.down_during(to, a, b) {
            self.lost += 1;
            self.dropped += 1;
            return;
        }
        self.schedule(
            at,
            Ev::Deliver {
                from,
                to,
                to_inc,
                body,
                wire,
            },
        );
    }

    fn deliver(&mut self, from: usize, to: usize, to_inc: u32, body: Body, wire: Vec<u8>) {
        let to_alive = self.members[to].online;
        let from_alive = self.members[from].online;
        let same_inc = self.members[to].inc == to_inc;
        if !to_alive || !from_alive {
            if let Body::Request(req, _) = body
                && from_alive
                && req != u64::MAX
            {
                let at = match &self.links {
                    None => self.now + self.sc.link.latency_min_ms,
                    Some(l) => self.now + l.propagation_us(to, from).div_ceil(1_000),
                };
                let inc = self.members[from].inc;
                self.schedule(
                    at,
                    Ev::Deliver {
                        from: to,
                        to: from,
                        to_inc: inc,
                        body: Body::Failed(req, Failure::Unreachable),
                        wire: Vec::new(),
                    },
                );
            }
            return;
        }
        if !matches!(body, Body::Request(..)) && !same_inc {
            // An answer to a previous incarnation: its connection is gone.
            return;
        }
        if let Some(rs) = &self.rs {
            // Transport: each end accepts a connection only from a member of its roster in
            // force (pinned identities); a refused request fails at once for its sender.
            let (vf, vt) = (
                &rs.views[self.members[from].view],
                &rs.views[self.members[to].view],
            );
            if !vf.members.contains(&self.ids[to]) || !vt.members.contains(&self.ids[from]) {
                self.gated += 1;
                if let Body::Request(req, _) = body
                    && req != u64::MAX
                {
                    let inc = self.members[from].inc;
                    self.schedule(
                        self.now + 1,
                        Ev::Deliver {
                            from: to,
                            to: from,
                            to_inc: inc,
                            body: Body::Failed(req, Failure::Unreachable),
                            wire: Vec::new(),
                        },
                    );
                }
                return;
            }
        }
        let from_id = self.ids[from].clone();
        let now = self.members[to].local(self.now);
        match body {
            Body::Request(req, msg) => {
                self.observe(from, to, &msg, wire);
                let reply = self.answer(to, from, msg);
                if req == u64::MAX {
                    return;
                }
                let back = match reply {
                    Ok(m) => Body::Response(req, m),
                    Err(code) => Body::Failed(req, Failure::Refused(code)),
                };
                self.send(to, from, back);
            }
            Body::Response(req, msg) => {
                self.observe(from, to, &msg, wire);
                match msg {
                    PeerMessage::PushResponse(r) => self.members[to]
                        .machine
                        .core_mut()
                        .on_push_response(now, &from_id, req, &r),
                    PeerMessage::ReconcileResponse(r) => self.members[to]
                        .machine
                        .core_mut()
                        .on_reconcile_response(now, &from_id, req, &r),
                    PeerMessage::FetchResponse(r) => {
                        for env in &r.envelopes {
                            self.receive(to, from, env);
                        }
                        self.members[to]
                            .machine
                            .core_mut()
                            .on_fetch_response(now, &from_id, req, &r);
                    }
                    other => self.violation(format!(
                        "{} answered {} with a {}",
                        from_id,
                        self.ids[to],
                        other.name()
                    )),
                }
            }
            Body::Failed(req, f) => {
                self.members[to]
                    .machine
                    .core_mut()
                    .on_request_failed(now, &from_id, req, f);
            }
        }
        self.drain(to);
    }

    fn answer(
        &mut self,
        node: usize,
        from: usize,
        msg: PeerMessage,
    ) -> Result<PeerMessage, String> {
        let now = self.members[node].local(self.now);
        let from_id = self.ids[from].clone();
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
                let (by_id, items) = (&self.by_id, &self.items);
                let m = &mut self.members[node];
                let held = &m.held;
                m.machine.answer(now, &from_id, other, |id| {
                    by_id
                        .get(id)
                        .filter(|ix| held.contains(ix))
                        .map(|&ix| items[ix as usize].verified.envelope().clone())
                })
            }
        }
    }

    /// The node's receive path: the node machine's pipeline (verify, admit by policy, store
    /// plan, accepted) for one envelope, the simulated store applying the plan.
    fn receive(&mut self, node: usize, from: usize, env: &Envelope) -> ItemResult {
        let from_id = self.ids[from].clone();
        // Roster scenarios: each member verifies against the keys of its roster in force.
        let (salt, keyring) = match &self.rs {
            Some(rs) => {
                let v = self.members[node].view;
                (v + 1, &rs.views[v].keyring)
            }
            None => (0, &self.keyring),
        };
        let checked = Checked::verify(
            &mut CachedVerifier {
                by_id: &self.by_id,
                items: &self.items,
                verified_ok: &mut self.verified_ok,
                salt,
                keyring,
                limits: &self.limits,
            },
            vec![env.clone()],
        );
        self.envelope_deliveries += checked.verified() as u64;
        let now = self.members[node].local(self.now);
        // The broken policy of `Mutation::LeakAmberTo`: AMBER admitted by `member` anyway.
        let leaky =
            matches!(self.sc.mutation, Some(Mutation::LeakAmberTo { member }) if member == node);
        let leak = |meta: &ItemMeta| leaky && meta.tlp == Tlp::Amber;
        let intake = self.members[node]
            .machine
            .admit_forcing(now, &from_id, checked, leak);
        // A carrier already held was admitted before: the driver's store sees a duplicate.
        if let Some(&ix) = intake.items.first()
            && !self.members[node].held.contains(&ix)
            && let Some(reason) = self.roster_refusal(node, ix)
        {
            self.members[node]
                .machine
                .core_mut()
                .note_rejection(&from_id, reason);
            let mut results = intake.refused(reason);
            return results.pop().unwrap_or(ItemResult {
                item_id: env.item_id(),
                accepted: false,
                reason: reason.to_string(),
            });
        }
        if let Some(&ix) = intake.items.first()
            && !self.members[node].held.contains(&ix)
        {
            let depth = self.members[from]
                .depth
                .get(&ix)
                .copied()
                .unwrap_or(u16::MAX - 1)
                .saturating_add(1);
            self.first_receipts += 1;
            self.store_item(node, ix, &from_id, depth);
        }
        // Duplicates too: the store holds it already; the core counts it.
        let mut done = self.members[node].machine.accepted(now, intake);
        done.results.pop().unwrap_or(ItemResult {
            item_id: env.item_id(),
            accepted: false,
            reason: "empty".to_string(),
        })
    }

    // --- invariants and counters -------------------------------------------------------------

    fn violation(&mut self, what: String) {
        let t = self.now - T0;
        if self.violations.len() < 100 {
            self.violations.push(format!("t={t} ms: {what}"));
        }
    }

    /// Counts a delivered message and checks that it carries nothing `to` may not hold.
    fn observe(&mut self, from: usize, to: usize, msg: &PeerMessage, bytes: Vec<u8>) {
        let e = self.msgs.entry(msg.name()).or_insert((0, 0));
        e.0 += 1;
        e.1 += bytes.len() as u64;
        let mut ids: Vec<ItemId> = Vec::new();
        match msg {
            PeerMessage::PushRequest(p) => ids.extend(p.envelopes.iter().map(Envelope::item_id)),
            PeerMessage::PushResponse(r) => ids.extend(r.results.iter().map(|x| x.item_id)),
            PeerMessage::FetchRequest(f) => ids.extend(f.item_ids.iter().copied()),
            PeerMessage::FetchResponse(f) => {
                ids.extend(f.envelopes.iter().map(Envelope::item_id));
                ids.extend(f.missing.iter().copied());
                ids.extend(f.deferred.iter().copied());
            }
            PeerMessage::ReconcileRequest(_) | PeerMessage::ReconcileResponse(_) => {
                if self.restricted {
                    for w in bytes.windows(32) {
                        if let Some(id) = ItemId::from_slice(w)
                            && self.by_id.contains_key(&id)
                        {
                            ids.push(id);
                        }
                    }
                }
            }
        }
        for id in ids {
            if let Some(&ix) = self.by_id.get(&id)
                && !self.may_hold(ix, to)
            {
                let it = &self.items[ix as usize].meta;
                self.violation(format!(
                    "{} received a {} from {} carrying {} ({}, origin {}) it may not hold",
                    self.ids[to],
                    msg.name(),
                    self.ids[from],
                    it.id,
                    it.tlp,
                    it.origin
                ));
            }
        }
        if let Some(t) = self.transcripts.get_mut(&to) {
            t.push((self.now - T0, from, bytes));
        }
    }

    fn final_checks(&mut self) {
        if !self.violations.is_empty() {
            return;
        }
        self.roster_final_checks();
        let n = self.members.len();
        for m in 0..n {
            if self.members[m].gone {
                continue;
            }
            let missing: Vec<String> = (0..self.items.len() as u32)
                .filter(|&ix| self.items[ix as usize].live && self.may_hold(ix, m))
                .filter(|ix| !self.members[m].held.contains(ix))
                .map(|ix| {
                    let it = &self.items[ix as usize].meta;
                    format!("{} {} from {}", it.id, it.tlp, it.origin)
                })
                .collect();
            if !missing.is_empty() {
                let more = if missing.len() > 10 { ", …" } else { "" };
                self.violation(format!(
                    "{} lacks {} item(s) it may hold at the end (not converged): {}{more}",
                    self.ids[m],
                    missing.len(),
                    missing[..missing.len().min(10)].join(", ")
                ));
                if self.violations.len() > 5 {
                    return;
                }
            }
        }
        // Agreement on the latest revision (equivocations resolved the same way everywhere;
        // withdrawal is forever: a tombstone outranks every revision that is not withdrawn).
        let mut winner: HashMap<usize, (bool, u64, ItemId)> = HashMap::new();
        for it in self.items.iter().filter(|it| it.live) {
            let cand = (it.verified.withdrawn, it.revision, it.meta.id);
            winner
                .entry(it.advisory)
                .and_modify(|w| {
                    let rank = |x: &(bool, u64, ItemId)| (x.0, x.1, std::cmp::Reverse(x.2));
                    if rank(&cand) > rank(w) {
                        *w = cand;
                    }
                })
                .or_insert(cand);
        }
        let mut advs: Vec<(usize, (bool, u64, ItemId))> = winner.into_iter().collect();
        advs.sort_by_key(|(a, _)| *a);
        for (a, (_, _, want)) in advs {
            let (origin, id) = self.advisories[a].clone();
            let Some(&wix) = self.by_id.get(&want) else {
                continue;
            };
            for m in 0..n {
                if self.members[m].gone || !self.may_hold(wix, m) {
                    continue;
                }
                match self.members[m].store.latest(&origin, &id) {
                    Ok(Some(s)) if s.item_id == want => {}
                    Ok(other) => {
                        let got = other.map(|s| s.item_id.to_hex());
                        self.violation(format!(
                            "{}: latest of {origin}/{id} is {got:?}, expected {want}",
                            self.ids[m]
                        ));
                        return;
                    }
                    Err(e) => {
                        self.violation(format!("{}: store: {e}", self.ids[m]));
                        return;
                    }
                }
            }
        }
    }

    fn report(&self) -> Report {
        let n = self.members.iter().filter(|m| !m.gone).count();
        let no_wave = self.items.iter().all(|it| it.publish_at.is_none());
        let live: Vec<u32> = (0..self.items.len() as u32)
            .filter(|&ix| {
                let it = &self.items[ix as usize];
                it.live && (it.publish_at.is_some() || no_wave)
            })
            .collect();
        // Hop depth of every (member, wave item) pair it may hold.
        let mut depths: Vec<u16> = Vec::new();
        for &ix in &live {
            for m in self.members.iter() {
                if m.gone {
                    continue;
                }
                if let Some(d) = m.depth.get(&ix)
                    && self.items[ix as usize].origin
                        != self.by_name.get(&m.id).copied().unwrap_or(usize::MAX)
                {
                    depths.push(*d);
                }
            }
        }
        depths.sort_unstable();
        let pct = |p: f64| -> Option<u16> {
            if depths.is_empty() {
                return None;
            }
            let k = ((depths.len() as f64) * p).ceil() as usize;
            depths.get(k.clamp(1, depths.len()) - 1).copied()
        };
        let total_msgs: u64 = self.msgs.values().map(|v| v.0).sum();
        let total_bytes: u64 = self.msgs.values().map(|v| v.1).sum();
        let all_items = self.items.iter().filter(|it| it.live).count().max(1) as f64;
        let per = all_items * n.max(1) as f64;
        let heal = self.heal_at.map(|_| {
            let after = self
                .bytes_at_converge_after_heal
                .clone()
                .unwrap_or_else(|| self.msgs.clone());
            let diff = |k: &str| {
                after.get(k).map(|v| v.1).unwrap_or(0)
                    - self.bytes_at_heal.get(k).map(|v| v.1).unwrap_or(0)
            };
            let rec = diff("ReconcileRequest") + diff("ReconcileResponse");
            let all = rec
                + diff("FetchRequest")
                + diff("FetchResponse")
                + diff("PushRequest")
                + diff("PushResponse");
            (self.diffs_at_heal, rec, all)
        });
        Report {
            scenario: self.sc.name.clone(),
            seed: self.seed,
            members: n,
            items: self.items.iter().filter(|it| it.live).count(),
            fanout: self.sc.sync.fanout,
            interval_ms: self.sc.sync.interval_ms,
            rounds_999: pct(0.999),
            rounds_100: depths.last().copied(),
            t999_ms: self.t999,
            t100_ms: self.t100,
            coverage_end: (self.held_total, self.expected_total),
            messages_per_item_member: total_msgs as f64 / per,
            bytes_per_item_member: total_bytes as f64 / per,
            redundancy: if self.first_receipts == 0 {
                0.0
            } else {
                self.envelope_deliveries as f64 / self.first_receipts as f64 - 1.0
            },
            by_kind: self.msgs.clone(),
            lost: self.lost,
            duplicated: self.duplicated,
            lost_items: self.lost_items,
            heal,
            thin: self.thin_report(),
            roster: self.roster_summary(),
        }
    }
}

impl Sim {
    /// The access links' figures (issue 12), when the scenario names profiles.
    fn thin_report(&self) -> Option<Thin> {
        let links = self.links.as_ref()?;
        let n = self.members.len();
        let live: Vec<u32> = (0..self.items.len() as u32)
            .filter(|&ix| self.items[ix as usize].live)
            .collect();
        let env_bytes: HashMap<u32, u64> = live
            .iter()
            .map(|&ix| {
                let len = self.items[ix as usize].verified.envelope().encode().len();
                (ix, len as u64)
            })
            .collect();
        let join_ms = u64::try_from(self.sc.late_join_ms.max(0)).unwrap_or(0);
        // Per member: items it may hold, whether it holds them all, and the physical floor of
        // its time to 100%: every item it received crossed its downlink at least once, after the
        // shortest propagation into it; and no item arrives before its publication plus that
        // propagation and its own serialization.
        let mut per: Vec<(usize, u64, bool, u64)> = Vec::new(); // (member, may hold, complete, floor µs)
        for m in 0..n {
            let mem = &self.members[m];
            if mem.gone {
                continue;
            }
            let may: Vec<u32> = live
                .iter()
                .copied()
                .filter(|&ix| self.may_hold(ix, m))
                .collect();
            let complete = may.iter().all(|ix| mem.held.contains(ix));
            let prop = (0..n)
                .filter(|&p| p != m)
                .map(|p| links.propagation_us(p, m))
                .min()
                .unwrap_or(0);
            // Everything it may hold but did not store locally (published or held at start)
            // has to cross its downlink, whether it arrived or not.
            let received: Vec<u32> = may
                .iter()
                .copied()
                .filter(|ix| mem.depth.get(ix) != Some(&0))
                .collect();
            let start = if self.sc.late_joiners.contains(&m) {
                join_ms * 1_000
            } else {
                0
            };
            let sum: u64 = received
                .iter()
                .map(|ix| links.tx_us(m, env_bytes[ix]))
                .sum();
            let mut floor = if received.is_empty() {
                0
            } else {
                start + prop + sum
            };
            for ix in &received {
                let at = self.items[*ix as usize].publish_at.unwrap_or(0).max(0);
                let at = u64::try_from(at).unwrap_or(0) * 1_000;
                floor = floor.max(at + prop + links.tx_us(m, env_bytes[ix]));
            }
            per.push((m, may.len() as u64, complete, floor));
        }
        let mut rows = Vec::new();
        for p in LinkProfile::ALL {
            let group: Vec<&(usize, u64, bool, u64)> = per
                .iter()
                .filter(|(m, ..)| self.sc.profiles[*m] == p)
                .collect();
            if group.is_empty() {
                continue;
            }
            let t100 = if group.iter().all(|g| g.2) {
                group.iter().map(|g| self.last_new[g.0]).max()
            } else {
                None
            };
            let items: u64 = group.iter().map(|g| g.1).sum();
            let down: u64 = group.iter().map(|g| links.down_bytes[g.0]).sum();
            let busy: u64 = group.iter().map(|g| links.down_busy_us[g.0]).sum();
            // Busy share until everyone had everything (or the end of the run).
            let span_us = self.t100.unwrap_or(self.now.saturating_sub(T0)).max(1) * 1_000;
            rows.push(ProfileRow {
                profile: p.name(),
                members: group.len(),
                t100_ms: t100,
                floor_ms: group.iter().map(|g| g.3).max().unwrap_or(0).div_ceil(1_000),
                down_bytes_per_item_member: down as f64 / items.max(1) as f64,
                down_busy: busy as f64 / (span_us as f64 * group.len() as f64),
            });
        }
        let all_down: u64 = links.down_bytes.iter().sum();
        Some(Thin {
            link_bytes_per_item_member: all_down as f64
                / (live.len().max(1) as f64 * per.len().max(1) as f64),
            floor_ms: per.iter().map(|g| g.3).max().unwrap_or(0).div_ceil(1_000),
            dropped: self.dropped,
            rows,
        })
    }
}

/// Roster scenarios (issue 11): what the driver does with roster carriers.
impl Sim {
    /// Signs and records an item `origin` publishes at `at_ms` (ms after T0) with `key`.
    fn add_item(
        &mut self,
        origin: usize,
        advisory: Advisory,
        key: SigningKey,
        publish_at: i64,
    ) -> Result<u32, String> {
        let id = advisory.id.clone();
        let ident = SigningIdentity::new(self.ids[origin].clone(), key);
        let verified = ident
            .sign(advisory, &self.limits)
            .map_err(|e| format!("signing {id}: {e}"))?;
        let meta = ItemMeta::of_verified(&verified);
        let key = (self.ids[origin].clone(), id);
        let advisory_ix = match self.advisories.iter().position(|a| *a == key) {
            Some(a) => a,
            None => {
                self.advisories.push(key);
                self.advisories.len() - 1
            }
        };
        let void = self.rs.as_ref().is_some_and(|rs| {
            !rs.views[rs.final_view].valid(
                &meta.origin,
                &verified.envelope().key_id,
                verified.modified_ms,
            )
        });
        let ix = self.items.len() as u32;
        self.by_id.insert(meta.id, ix);
        self.items.push(SimItem {
            meta,
            revision: verified.revision,
            verified,
            advisory: advisory_ix,
            publish_at: Some(publish_at),
            origin,
            live: false,
            void,
        });
        Ok(ix)
    }

    /// The plan's own items: one signed by a rotated key after the rotation, one dated after a
    /// revocation's time and published before it, one published by a member after its removal.
    fn make_roster_items(&mut self) -> Result<(), String> {
        let Some(rs) = &self.rs else {
            return Ok(());
        };
        let half = i64::try_from(self.sc.sync.interval_ms / 2).unwrap_or(15_000);
        let t0 = i64::try_from(T0).unwrap_or(0);
        let seed = self.seed;
        let plan: Vec<(i64, RosterStep)> = rs
            .changes
            .iter()
            .map(|c| (c.at_ms, c.step.clone()))
            .collect();
        for (k, (at, step)) in plan.into_iter().enumerate() {
            let (member, key, modified, publish, what) = match step {
                RosterStep::Join { .. } => continue,
                RosterStep::RotateKey { member } => (
                    member,
                    member_key(seed, member, 1),
                    t0 + at + half,
                    at + half,
                    "signed by the rotated key",
                ),
                RosterStep::Revoke { member, as_of_ms } => (
                    member,
                    member_key(seed, member, 0),
                    t0 + as_of_ms + 1,
                    at - half,
                    "signed by a key revoked as of before its date",
                ),
                RosterStep::Remove { member } => (
                    member,
                    member_key(seed, member, 0),
                    t0 + at + half,
                    at + half,
                    "published by a removed member",
                ),
            };
            let id = format!("TANOA-SIM-ROSTER-{k:02}");
            let advisory = Advisory {
                id: id.clone(),
                origin: self.ids[member].clone(),
                revision: 1,
                created_ms: modified,
                modified_ms: modified,
                valid_until_ms: None,
                tlp: Tlp::Green,
                audience: Vec::new(),
                title: format!("Simulated advisory {id}: {what}"),
                summary: "Simulated advisory; indicators in documentation ranges only.".to_string(),
                severity: Severity::Medium,
                actors: Vec::new(),
                cves: Vec::new(),
                indicators: Vec::new(),
                references: Vec::new(),
                withdrawn: false,
                withdrawn_reason: String::new(),
                extras: Vec::new(),
            };
            // Scheduled with the scenario's other items (`Sim::new`).
            self.add_item(member, advisory, key, publish)?;
        }
        Ok(())
    }

    /// Change `k`: its proposer publishes the proposal (once it is up).
    fn roster_propose(&mut self, k: usize) {
        let Some(rs) = &self.rs else {
            return;
        };
        let c = &rs.changes[k];
        let (proposer, step) = (c.proposer, c.step.clone());
        let item = RosterItem::Proposal(c.proposal.clone());
        if !self.members[proposer].online {
            self.schedule(self.now + 1_000, Ev::RosterPropose(k));
            return;
        }
        if let RosterStep::Remove { member } = step
            && !self.members[member].gone
        {
            // It stops counting as a member (it may still hold what it held).
            self.members[member].gone = true;
            self.uncount(member);
        }
        self.pending_publishes += 1;
        self.roster_publish(proposer, item);
    }

    /// `member` publishes a roster carrier now (retried once it is up).
    fn roster_publish(&mut self, member: usize, item: RosterItem) {
        if !self.members[member].online {
            self.schedule(
                self.now + 1_000,
                Ev::RosterPublish {
                    member,
                    item: Box::new(item),
                },
            );
            return;
        }
        let Some(rs) = &self.rs else {
            return;
        };
        let local = i64::try_from(self.members[member].local(self.now)).unwrap_or(0);
        let key = rs.key_at(self.seed, member, local);
        let advisory = item.to_advisory(&self.ids[member], local);
        match self.add_item(member, advisory, key, self.now.saturating_sub(T0) as i64) {
            Ok(ix) => self.publish(ix),
            Err(e) => {
                self.pending_publishes -= 1;
                self.violation(format!("{}: roster carrier: {e}", self.ids[member]));
            }
        }
    }

    /// The roster admission of a carrier (`RosterEngine::check`, before storing), as the driver
    /// does it; `Some(reason)` refuses it. Approvals are only judged by the proposer of the
    /// version they approve (see the module doc of `sim`).
    fn roster_refusal(&mut self, node: usize, ix: u32) -> Option<&'static str> {
        self.rs.as_ref()?;
        let it = &self.items[ix as usize];
        let parsed = RosterItem::from_advisory(&it.verified)?;
        let item = match parsed {
            Ok(item) => item,
            Err(e) => return Some(e.reason()),
        };
        if let RosterItem::Approval(a) = &item
            && !self.approval_judged_by(node, a)
        {
            return None;
        }
        let engine = self.members[node].roster.as_mut()?;
        match engine.check(&item, &it.meta.origin) {
            Ok(()) => None,
            Err(e) => {
                let reason = e.reason();
                engine.count_refusal(reason);
                *self.roster_refused.entry(reason).or_default() += 1;
                Some(reason)
            }
        }
    }

    /// Whether `node` feeds approval `a` to its engine: only the proposer of its version does.
    fn approval_judged_by(&self, node: usize, a: &Approval) -> bool {
        let Some(rs) = &self.rs else {
            return false;
        };
        tanoa_core::roster::RosterHash::from_hex(&a.roster_hash)
            .and_then(|h| rs.change_of(&h))
            .is_some_and(|k| rs.changes[k].proposer == node)
    }

    /// A roster carrier was stored at `m`: its engine records it; the version in force is
    /// applied; an approver approves a proposal it sees; the proposer publishes a version it
    /// assembled.
    fn roster_ingest(&mut self, m: usize, ix: u32) {
        let Some(Ok(item)) = RosterItem::from_advisory(&self.items[ix as usize].verified) else {
            return;
        };
        if let RosterItem::Approval(a) = &item
            && !self.approval_judged_by(m, a)
        {
            return;
        }
        let proposal_hash = match &item {
            RosterItem::Proposal(p) => Some(p.roster.hash()),
            _ => None,
        };
        let local = i64::try_from(self.members[m].local(self.now)).unwrap_or(0);
        let Some(mut engine) = self.members[m].roster.take() else {
            return;
        };
        let adv = engine.ingest(item);
        let hash = engine.current().hash();
        let Some(rs) = &self.rs else {
            return;
        };
        let me = self.ids[m].clone();
        let mut publish: Vec<RosterItem> = Vec::new();
        if let Some(h) = proposal_hash
            && let Some(k) = rs.change_of(&h)
            && rs.changes[k].approvers.contains(&m)
            && !engine.has_signed(&h, &me)
        {
            let key = rs.key_at(self.seed, m, local);
            publish.push(RosterItem::Approval(Approval {
                federation: rs.changes[k].proposal.roster.federation.clone(),
                version: rs.changes[k].proposal.roster.version,
                roster_hash: h.to_hex(),
                signature: RosterSignature::sign(&me, &key, &h),
            }));
        }
        for s in adv.assembled {
            if rs
                .change_of(&s.hash())
                .is_some_and(|k| rs.changes[k].proposer == m)
            {
                publish.push(RosterItem::Version(s));
            }
        }
        let view = rs.by_hash.get(&hash).copied();
        self.members[m].roster = Some(engine);
        for item in publish {
            self.pending_publishes += 1;
            // The operator (or the proposer's node) acts a moment later.
            self.schedule(
                self.now + 1,
                Ev::RosterPublish {
                    member: m,
                    item: Box::new(item),
                },
            );
        }
        if adv.fork_raised {
            self.violation(format!("{}: roster fork raised", self.ids[m]));
        }
        let Some(view) = view else {
            self.violation(format!(
                "{}: roster in force {hash} is none of the plan's versions",
                self.ids[m]
            ));
            return;
        };
        if view != self.members[m].view {
            self.apply_roster(m, view);
        }
    }

    /// Member `m` has version `view` in force: connections follow it (new members dialled,
    /// removed ones dropped) and what it made invalid is dropped from the store.
    fn apply_roster(&mut self, m: usize, view: usize) {
        let Some(rs) = &self.rs else {
            return;
        };
        let old = self.members[m].view;
        let now = self.members[m].local(self.now);
        let added: Vec<String> = rs.views[view]
            .members
            .difference(&rs.views[old].members)
            .cloned()
            .collect();
        let removed: Vec<String> = rs.views[old]
            .members
            .difference(&rs.views[view].members)
            .cloned()
            .collect();
        let invalid: Vec<u32> = self.members[m]
            .held
            .iter()
            .copied()
            .filter(|&ix| {
                let it = &self.items[ix as usize];
                !rs.views[view].valid(
                    &it.meta.origin,
                    &it.verified.envelope().key_id,
                    it.verified.modified_ms,
                )
            })
            .collect();
        let invalid = if self.sc.mutation == Some(Mutation::KeepRevokedItems) {
            Vec::new()
        } else {
            invalid
        };
        let is_final = view == rs.final_view;
        let mem = &mut self.members[m];
        mem.view = view;
        if is_final {
            mem.converged_at = Some(self.now);
        } else {
            mem.converged_at = None;
        }
        for p in &removed {
            if *p != mem.id {
                mem.machine.core_mut().peer_down(now, p);
            }
        }
        for p in &added {
            if *p != mem.id {
                mem.machine.core_mut().peer_up(now, p);
            }
        }
        if !invalid.is_empty() {
            // The store keeps the rest (a store without the dropped items: the simulated
            // driver's purge, as the daemon's `drop_items`).
            self.purged += invalid.len() as u64;
            for ix in &invalid {
                mem.held.remove(ix);
                mem.depth.remove(ix);
                mem.dropped.insert(*ix);
                if self.items[*ix as usize].live && !mem.gone {
                    self.held_total -= 1;
                }
            }
            // The driver's purge: the core forgets them (reconciliation stops advertising them).
            let ids: Vec<ItemId> = invalid
                .iter()
                .map(|ix| self.items[*ix as usize].meta.id)
                .collect();
            mem.machine.core_mut().forget_items(&ids);
            let mut keep: Vec<u32> = mem.held.iter().copied().collect();
            keep.sort_unstable();
            let store = MemoryStore::new();
            let t = i64::try_from(now).unwrap_or(i64::MAX);
            for ix in keep {
                if let Err(e) = store.put(&self.items[ix as usize].verified, "local", t) {
                    let msg = format!("{}: store refused item on purge: {e}", mem.id);
                    self.violations.push(msg);
                }
            }
            self.members[m].store = store;
        }
        self.drain(m);
    }

    /// The roster's figures and end checks: every member of the final version has it in force
    /// within `converge_intervals` of the last change, and holds nothing it makes invalid.
    fn roster_final_checks(&mut self) {
        let Some(rs) = &self.rs else {
            return;
        };
        let Some(plan) = &self.sc.roster else {
            return;
        };
        let last = rs.changes.iter().map(|c| c.at_ms).max().unwrap_or(0);
        let bound = T0.saturating_add_signed(last)
            + plan.converge_intervals * self.sc.sync.interval_ms.max(1);
        let fin = &rs.views[rs.final_view];
        let mut bad: Vec<String> = Vec::new();
        for (m, mem) in self.members.iter().enumerate() {
            if mem.gone || !fin.members.contains(&mem.id) {
                continue;
            }
            match mem.converged_at {
                Some(t) if t <= bound => {}
                Some(t) => bad.push(format!(
                    "{} reached roster version {} at t={} ms, after the bound t={} ms",
                    self.ids[m],
                    fin.version,
                    t - T0,
                    bound - T0
                )),
                None => bad.push(format!(
                    "{} ends at roster version {}, not {}",
                    self.ids[m], rs.views[mem.view].version, fin.version
                )),
            }
            for &ix in &mem.held {
                let it = &self.items[ix as usize];
                if !fin.valid(
                    &it.meta.origin,
                    &it.verified.envelope().key_id,
                    it.verified.modified_ms,
                ) {
                    bad.push(format!(
                        "{} still holds {} (origin {}), invalid under the final roster",
                        self.ids[m], it.meta.id, it.meta.origin
                    ));
                }
            }
        }
        for b in bad.into_iter().take(20) {
            self.violation(b);
        }
    }

    fn roster_summary(&self) -> Option<RosterSummary> {
        let rs = self.rs.as_ref()?;
        let plan = self.sc.roster.as_ref()?;
        let last = rs.changes.iter().map(|c| c.at_ms).max().unwrap_or(0);
        let fin = &rs.views[rs.final_view];
        let members: Vec<&Member> = self
            .members
            .iter()
            .filter(|m| !m.gone && fin.members.contains(&m.id))
            .collect();
        let at_final = members.iter().filter(|m| m.view == rs.final_view).count();
        let slowest = members
            .iter()
            .map(|m| m.converged_at)
            .collect::<Option<Vec<u64>>>()
            .and_then(|v| v.into_iter().max())
            .map(|t| t.saturating_add_signed(-last).saturating_sub(T0));
        Some(RosterSummary {
            final_version: fin.version,
            members: members.len(),
            at_final,
            converged_after_last_change_ms: slowest,
            bound_ms: plan.converge_intervals * self.sc.sync.interval_ms,
            refused: self.roster_refused.clone(),
            purged: self.purged,
            gated: self.gated,
        })
    }
}

/// The simulator's verifier: the first receipt of an envelope anywhere runs the real
/// `envelope::verify`; a later envelope is accepted from the cache only if it is byte-identical
/// to the one verified (see the module doc).
struct CachedVerifier<'a> {
    by_id: &'a HashMap<ItemId, u32>,
    items: &'a [SimItem],
    verified_ok: &'a mut HashSet<(usize, ItemId)>,
    /// Which keyring the cache entries are for (0: the scenario's; v + 1: roster view v).
    salt: usize,
    keyring: &'a Keyring,
    limits: &'a Limits,
}

impl Verify for CachedVerifier<'_> {
    type Item = u32;

    fn verify(&mut self, env: Envelope) -> Result<(u32, ItemMeta), &'static str> {
        let id = env.item_id();
        let ix = self.by_id.get(&id).copied();
        if let Some(ix) = ix
            && self.verified_ok.contains(&(self.salt, id))
            && self.items[ix as usize].verified.envelope() == &env
        {
            return Ok((ix, self.items[ix as usize].meta.clone()));
        }
        match envelope::verify(env, self.keyring, self.limits) {
            Ok(v) => {
                let Some(ix) = ix else {
                    return Err("unknown_item");
                };
                if self.items[ix as usize].verified.envelope() == v.envelope() {
                    self.verified_ok.insert((self.salt, id));
                }
                Ok((ix, self.items[ix as usize].meta.clone()))
            }
            Err(e) => Err(e.reason()),
        }
    }
}

/// Indicator `j` of simulated advisory `k`: documentation-range IPv4 addresses, `.example`
/// domains and SHA-256 digests, in turn.
fn sim_indicator(k: usize, j: usize) -> Indicator {
    let (kind, value) = match j % 3 {
        0 => (
            IndicatorKind::Ipv4,
            format!("203.0.113.{}", (k * 7 + j) % 254 + 1),
        ),
        1 => (IndicatorKind::Domain, format!("c2-{k}-{j}.example")),
        _ => {
            let mut hex = String::with_capacity(64);
            for w in 0..4u64 {
                hex.push_str(&format!("{:016x}", h(k as u64, &[j as u64, w])));
            }
            (IndicatorKind::Sha256, hex)
        }
    };
    Indicator {
        kind,
        value,
        confidence: 80,
        valid_until_ms: None,
        note: String::new(),
    }
}
