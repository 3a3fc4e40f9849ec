//! Flow control end to end in the core (issue 12), sans-IO over a simulated link (a serializer
//! of envelope bytes at `rate`, answers one round trip after a request's last byte): the bytes
//! in flight follow the measured bandwidth-delay product, the link stays busy, and an item
//! accepted during a backlog (pushed, fetched, or a flood of fresh items) reaches the peer
//! within 3 round trips plus its transmission, never behind the whole backlog.

use std::collections::{BTreeMap, HashMap};

use super::net::{TestItem, item};
use crate::envelope::ItemId;
use crate::model::Tlp;
use crate::sync::{
    Action, FetchResponse, ItemResult, PushResponse, RequestId, Source, SyncConfig, SyncCore,
};

const T0: u64 = 1_700_000_000_000;
const A: &str = "ws-cert";
const B: &str = "to-cert";
/// Envelope bytes per second of the simulated link (satellite-like, scaled to test items).
const RATE: u64 = 50_000;
const RTT: u64 = 600;

fn green(origin: &str, n: u64) -> TestItem {
    item(origin, n, Tlp::Green, &[], (T0 + n) as i64)
}

fn cfg() -> SyncConfig {
    SyncConfig {
        interval_ms: 0,
        reconcile_on_connect: false,
        // Four bandwidth-delay products (30 kB) per batch: what bounded a backlog in flight
        // before the window did.
        backlog_batch_bytes: 64 * 1024,
        ..SyncConfig::default()
    }
}

fn core(me: &str, peers: &[&str]) -> SyncCore {
    let mut c = SyncCore::new(cfg(), me, peers.iter().copied(), 7, T0).unwrap();
    while c.poll_action().is_some() {}
    c
}

/// A one-way serializer: bytes sent at `now` occupy the link after what is already on it.
#[derive(Default)]
struct Link {
    free_at: u64,
}

impl Link {
    /// When the last of `bytes` sent at `now` has crossed (arrived at the far end).
    fn send(&mut self, now: u64, bytes: u64) -> u64 {
        let start = self.free_at.max(now);
        self.free_at = start + bytes * 1000 / RATE;
        self.free_at + RTT / 2
    }
}

/// `a` reconciles with `b`, each round answered one round trip later (the round trips the
/// flow estimate measures). Returns the other actions `a` emitted and the time at the end.
fn reconcile_timed(a: &mut SyncCore, b: &mut SyncCore, mut now: u64) -> (Vec<Action>, u64) {
    let (a_id, b_id) = (a.me().to_string(), b.me().to_string());
    a.sync_now(now, Some(&b_id)).unwrap();
    let mut out = Vec::new();
    loop {
        let mut rounds = Vec::new();
        while let Some(action) = a.poll_action() {
            match action {
                Action::Reconcile { req, msg, .. } => rounds.push((req, msg)),
                Action::WakeAt(_) => {}
                other => out.push(other),
            }
        }
        if rounds.is_empty() {
            return (out, now);
        }
        now += RTT;
        for (req, msg) in rounds {
            let resp = b.handle_reconcile(now - RTT / 2, &a_id, &msg).unwrap();
            a.on_reconcile_response(now, &b_id, req, &resp);
        }
    }
}

/// What a run of the simulated link saw.
#[derive(Default)]
struct Run {
    /// When each item arrived at the far end.
    arrived: HashMap<ItemId, u64>,
    /// Largest envelope bytes in flight at any send after `warm_up`.
    max_in_flight_after_warm_up: u64,
    /// When the last item arrived.
    last_arrival: u64,
}

/// Drives `a` pushing to the peer over the link until nothing is left, accepting `fresh` items
/// (`Source::Local`) at their times, in groups; every push is answered `RTT / 2` after it arrived.
fn run_pushes(
    a: &mut SyncCore,
    start: (Vec<Action>, u64),
    bytes: &HashMap<ItemId, u64>,
    fresh: &[(u64, Vec<&TestItem>)],
) -> Run {
    let (mut first, mut now) = start;
    let warm_up = now + 5_000;
    let mut link = Link::default();
    let mut run = Run::default();
    // (answer time, req) → (bytes, ids)
    let mut pending: BTreeMap<(u64, RequestId), (u64, Vec<ItemId>)> = BTreeMap::new();
    let mut next_fresh = 0;
    loop {
        let drained: Vec<Action> = std::mem::take(&mut first)
            .into_iter()
            .chain(std::iter::from_fn(|| a.poll_action()))
            .collect();
        for action in drained {
            if let Action::Push { req, items, .. } = action {
                let b: u64 = items.iter().map(|i| bytes[i]).sum();
                let arrive = link.send(now, b);
                for id in &items {
                    run.arrived.entry(*id).or_insert(arrive);
                }
                run.last_arrival = run.last_arrival.max(arrive);
                let in_flight: u64 = pending.values().map(|p| p.0).sum::<u64>() + b;
                if now >= warm_up {
                    run.max_in_flight_after_warm_up =
                        run.max_in_flight_after_warm_up.max(in_flight);
                }
                pending.insert((arrive + RTT / 2, req), (b, items));
            }
        }
        let next_answer = pending.keys().next().map(|k| k.0);
        let next_accept = fresh.get(next_fresh).map(|f| f.0);
        match (next_answer, next_accept) {
            (None, None) => break,
            (Some(t), Some(f)) if f <= t => {
                now = f;
                for it in &fresh[next_fresh].1 {
                    a.item_accepted(now, &it.meta, Source::Local);
                }
                next_fresh += 1;
            }
            (None, Some(f)) => {
                now = f;
                for it in &fresh[next_fresh].1 {
                    a.item_accepted(now, &it.meta, Source::Local);
                }
                next_fresh += 1;
            }
            (Some(t), _) => {
                now = t;
                let key = *pending.keys().next().unwrap();
                let (_, ids) = pending.remove(&key).unwrap();
                let resp = PushResponse {
                    results: ids
                        .iter()
                        .map(|id| ItemResult {
                            item_id: *id,
                            accepted: true,
                            reason: String::new(),
                        })
                        .collect(),
                };
                a.on_push_response(now, B, key.1, &resp);
            }
        }
        a.handle_timeout(now);
    }
    run
}

/// Bound of issue 12 for an item of `bytes`: 3 round trips plus its transmission.
fn bound(bytes: u64) -> u64 {
    3 * RTT + bytes * 1000 / RATE
}

#[test]
fn items_accepted_together_leave_in_one_push() {
    let mut a = core(A, &[B]);
    let items: Vec<TestItem> = (0..10).map(|n| green(A, n)).collect();
    for it in &items {
        a.item_accepted(T0, &it.meta, Source::Local);
    }
    let pushes: Vec<Vec<ItemId>> = std::iter::from_fn(|| a.poll_action())
        .filter_map(|x| match x {
            Action::Push { items, .. } => Some(items),
            _ => None,
        })
        .collect();
    assert_eq!(
        pushes,
        vec![items.iter().map(|i| i.meta.id).collect::<Vec<_>>()]
    );
}

#[test]
fn a_pushed_backlog_keeps_about_twice_the_bandwidth_delay_product_in_flight() {
    let mut a = core(A, &[B]);
    let mut b = core(B, &[A]);
    let backlog: Vec<TestItem> = (0..4_000).map(|n| green(A, n)).collect();
    let mut bytes: HashMap<ItemId, u64> = HashMap::new();
    for it in &backlog {
        a.item_accepted(T0, &it.meta, Source::Loaded);
        bytes.insert(it.meta.id, u64::from(it.meta.bytes));
    }
    let probe = green(A, 99_999);
    bytes.insert(probe.meta.id, u64::from(probe.meta.bytes));
    // `b` does not pull: `a`'s reconciliation queues the whole backlog for push.
    let start = reconcile_timed(&mut a, &mut b, T0);
    let t1 = start.1;
    let total: u64 = backlog.iter().map(|i| u64::from(i.meta.bytes)).sum();
    let probe_at = t1 + 8_000;
    let run = run_pushes(&mut a, start, &bytes, &[(probe_at, vec![&probe])]);
    assert_eq!(run.arrived.len(), backlog.len() + 1, "everything arrived");
    let bdp = RATE * RTT / 1000;
    assert!(
        run.max_in_flight_after_warm_up <= 3 * bdp,
        "{} bytes in flight, BDP {bdp}",
        run.max_in_flight_after_warm_up
    );
    // The link stayed busy: the catch-up took its bytes' time plus a few round trips.
    let took = run.last_arrival - t1;
    let floor = total * 1000 / RATE + RTT / 2;
    assert!(
        took * 9 <= floor * 10 + 9 * 4 * RTT,
        "catch-up {took} ms, link floor {floor} ms"
    );
    let latency = run.arrived[&probe.meta.id] - probe_at;
    assert!(
        latency <= bound(u64::from(probe.meta.bytes)),
        "probe held after {latency} ms (bound {})",
        bound(u64::from(probe.meta.bytes))
    );
    assert!(run.arrived[&probe.meta.id] < run.last_arrival);
}

#[test]
fn a_flood_of_fresh_items_is_sent_as_backlog_and_a_newer_item_goes_first() {
    let mut a = core(A, &[B]);
    let mut b = core(B, &[A]);
    let flood: Vec<TestItem> = (0..4_000).map(|n| green(A, n)).collect();
    let probe = green(A, 99_999);
    let bytes: HashMap<ItemId, u64> = flood
        .iter()
        .chain([&probe])
        .map(|it| (it.meta.id, u64::from(it.meta.bytes)))
        .collect();
    // Connected (one reconciliation with nothing to exchange), then published in groups of
    // 100, one group every 10 ms; the probe 3 s after the flood began.
    let start = reconcile_timed(&mut a, &mut b, T0);
    let t1 = start.1;
    let mut events: Vec<(u64, Vec<&TestItem>)> = flood
        .chunks(100)
        .enumerate()
        .map(|(k, g)| (t1 + 10 * k as u64, g.iter().collect()))
        .collect();
    let probe_at = t1 + 3_000;
    events.push((probe_at, vec![&probe]));
    let run = run_pushes(&mut a, start, &bytes, &events);
    assert_eq!(run.arrived.len(), flood.len() + 1, "everything arrived");
    let bdp = RATE * RTT / 1000;
    assert!(
        run.max_in_flight_after_warm_up <= 3 * bdp,
        "{} bytes in flight, BDP {bdp}",
        run.max_in_flight_after_warm_up
    );
    let latency = run.arrived[&probe.meta.id] - probe_at;
    assert!(
        latency <= bound(u64::from(probe.meta.bytes)),
        "probe held after {latency} ms (bound {}), flood done at {} ms",
        bound(u64::from(probe.meta.bytes)),
        run.last_arrival - T0
    );
}

/// What a fetched catch-up over the simulated link saw.
struct FetchRun {
    /// From the end of the reconciliation to the last answer stored (ms).
    took: u64,
    /// The link's floor for the backlog's bytes (ms).
    floor: u64,
    /// Most envelope bytes asked for in flight after 5 s.
    max_asked: u64,
}

/// `b` catches up 4,000 items from `a` by fetching; each answer is handed to `b`'s core
/// `store_ms` after its last byte arrived (the time to verify and store it).
fn fetched_catch_up(store_ms: u64) -> FetchRun {
    let mut a = core(A, &[B]);
    let mut b = core(B, &[A]);
    let backlog: Vec<TestItem> = (0..4_000).map(|n| green(A, n)).collect();
    let by_id: HashMap<ItemId, &TestItem> = backlog.iter().map(|i| (i.meta.id, i)).collect();
    for it in &backlog {
        a.item_accepted(T0, &it.meta, Source::Loaded);
    }
    let total: u64 = backlog.iter().map(|i| u64::from(i.meta.bytes)).sum();
    let (mut first, t1) = reconcile_timed(&mut b, &mut a, T0);
    let mut link = Link::default();
    // (answer time, req) → (served, deferred)
    let mut pending: BTreeMap<(u64, RequestId), (Vec<ItemId>, Vec<ItemId>)> = BTreeMap::new();
    let mut now = t1;
    let mut max_asked = 0u64;
    let mut asked: HashMap<RequestId, u64> = HashMap::new();
    let mut last = now;
    loop {
        let drained: Vec<Action> = std::mem::take(&mut first)
            .into_iter()
            .chain(std::iter::from_fn(|| b.poll_action()))
            .collect();
        for action in drained {
            if let Action::Fetch { req, msg, .. } = action {
                let reply = a.handle_fetch(now, B, &msg).unwrap();
                let sent: u64 = reply
                    .serve
                    .iter()
                    .map(|id| u64::from(by_id[id].meta.bytes))
                    .sum();
                let done = link.send(now, sent) + RTT / 2 + store_ms;
                asked.insert(req, msg.max_bytes);
                if now >= t1 + 5_000 {
                    max_asked = max_asked.max(asked.values().sum());
                }
                pending.insert((done, req), (reply.serve, reply.deferred));
            }
        }
        let Some(&key) = pending.keys().next() else {
            break;
        };
        now = key.0;
        let (served, deferred) = pending.remove(&key).unwrap();
        asked.remove(&key.1);
        for id in &served {
            b.item_accepted(now, &by_id[id].meta, Source::Peer(A));
        }
        last = now;
        let resp = FetchResponse {
            envelopes: Vec::new(),
            missing: Vec::new(),
            deferred,
        };
        b.on_fetch_response(now, A, key.1, &resp);
        b.handle_timeout(now);
    }
    assert_eq!(b.item_count(), backlog.len(), "everything fetched");
    FetchRun {
        took: last - t1,
        floor: total * 1000 / RATE + RTT,
        max_asked,
    }
}

impl FetchRun {
    /// At most 3 bandwidth-delay products asked in flight, and the catch-up within 90% of the
    /// link's floor (plus 4 round trips of start-up).
    fn assert_busy_within_the_window(&self) {
        let bdp = RATE * RTT / 1000;
        assert!(
            self.max_asked <= 3 * bdp,
            "{} bytes asked in flight, BDP {bdp}",
            self.max_asked
        );
        assert!(
            self.took * 9 <= self.floor * 10 + 9 * 4 * RTT,
            "catch-up {} ms, link floor {} ms",
            self.took,
            self.floor
        );
    }
}

#[test]
fn a_fetched_backlog_keeps_its_answers_in_flight_within_the_window() {
    let run = fetched_catch_up(0);
    run.assert_busy_within_the_window();
}

#[test]
fn a_fetched_backlog_keeps_the_link_busy_while_answers_are_stored() {
    // Each answer takes a quarter of a round trip to verify and store before the core hears of
    // it. With the window in two batches the next fetch left only after that, the measured
    // rate fell with the idle link and the window with it (the link ran at about three
    // quarters); with four, the spare half product covers it.
    let run = fetched_catch_up(RTT / 4);
    run.assert_busy_within_the_window();
}
