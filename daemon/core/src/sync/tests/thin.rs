//! Thin links (issue 12), sans-IO with simulated time: a fresh push overtakes a backlog in
//! flight, RED/AMBER go first, the backlog never crosses a link twice, fetches ask for small
//! batches, deadlines scale with bytes (a slow link is never declared down), and a catch-up cut
//! by a drop resumes without fetching again what was stored.

use std::collections::{BTreeSet, HashMap};

use super::net::{TestItem, item};
use crate::envelope::ItemId;
use crate::model::Tlp;
use crate::sync::{
    Action, Failure, FetchRequest, FetchResponse, LinkState, Source, SyncConfig, SyncCore,
};

const T0: u64 = 1_700_000_000_000;
const A: &str = "ws-cert";
const B: &str = "to-cert";

fn green(origin: &str, n: u64) -> TestItem {
    item(origin, n, Tlp::Green, &[], (T0 + n * 1_000) as i64)
}

fn core(me: &str, peers: &[&str], cfg: SyncConfig) -> SyncCore {
    let mut c = SyncCore::new(cfg, me, peers.iter().copied(), 7, T0).unwrap();
    while c.poll_action().is_some() {}
    c
}

fn cfg() -> SyncConfig {
    SyncConfig {
        interval_ms: 0,
        reconcile_on_connect: false,
        // ~250-byte test items: 16 per backlog batch.
        backlog_batch_bytes: 4_096,
        ..SyncConfig::default()
    }
}

/// Runs reconciliation rounds of `a`'s session with `b` (answered by `b`) and returns every other
/// action `a` emitted.
fn reconcile(a: &mut SyncCore, b: &mut SyncCore, now: u64) -> Vec<Action> {
    let (a_id, b_id) = (a.me().to_string(), b.me().to_string());
    a.sync_now(now, Some(&b_id)).unwrap();
    let mut out = Vec::new();
    while let Some(action) = a.poll_action() {
        match action {
            Action::Reconcile { req, msg, .. } => {
                let resp = b.handle_reconcile(now, &a_id, &msg).unwrap();
                a.on_reconcile_response(now, &b_id, req, &resp);
            }
            Action::WakeAt(_) => {}
            other => out.push(other),
        }
    }
    out
}

/// `b` answers `a`'s fetch `req`/`msg` at `now`; `a` admits and accepts every envelope of the
/// answer (`false` from `item_accepted`: an item it already held) and takes the response.
/// Returns (items new to `a`, items in the answer).
fn answer_fetch(
    a: &mut SyncCore,
    b: &mut SyncCore,
    by_id: &HashMap<ItemId, &TestItem>,
    now: u64,
    req: u64,
    msg: &FetchRequest,
) -> (usize, usize) {
    let reply = b.handle_fetch(now, A, msg).unwrap();
    let resp: FetchResponse = reply.into_response(|id| by_id.get(id).map(|t| t.env.clone()));
    let mut new = 0;
    for e in &resp.envelopes {
        let meta = &by_id[&e.item_id()].meta;
        a.admit(now, B, meta).unwrap();
        if a.item_accepted(now, meta, Source::Peer(B)) {
            new += 1;
        }
    }
    a.on_fetch_response(now, B, req, &resp);
    (new, resp.envelopes.len())
}

/// `a` holds 300 GREEN items `b` lacks and reconciles with `b`: returns both cores, the items
/// and the other actions `a` emitted (its first backlog pushes).
fn a_reconciles_its_backlog_of_300_with_b() -> (SyncCore, SyncCore, Vec<TestItem>, Vec<Action>) {
    let mut a = core(A, &[B], cfg());
    let mut b = core(B, &[A], cfg());
    let items: Vec<TestItem> = (0..300).map(|n| green(A, n)).collect();
    for it in &items {
        a.item_accepted(T0, &it.meta, Source::Loaded);
    }
    let actions = reconcile(&mut a, &mut b, T0);
    (a, b, items, actions)
}

fn pushes(actions: &[Action]) -> Vec<Vec<ItemId>> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Push { items, .. } => Some(items.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_fresh_push_and_amber_overtake_a_backlog_in_flight() {
    let mut a = core(A, &[B], cfg());
    let mut b = core(B, &[A], cfg());
    let backlog: Vec<TestItem> = (0..500).map(|n| green(A, n)).collect();
    for it in &backlog {
        a.item_accepted(T0, &it.meta, Source::Loaded);
    }
    let amber = item(A, 9_000, Tlp::Amber, &[B], (T0 + 999_000) as i64);
    a.item_accepted(T0, &amber.meta, Source::Loaded);
    // `b` never reconciles with `a` (say it cannot dial it): `a` pushes what `b` lacks.
    let actions = reconcile(&mut a, &mut b, T0);
    let sent = pushes(&actions);
    // The AMBER item goes first, alone in the fresh lane; then `max_in_flight` (4) backlog
    // batches of at most `backlog_batch_bytes`.
    assert_eq!(sent.len(), 5, "{sent:?}");
    assert_eq!(sent[0], vec![amber.meta.id]);
    let per_item = backlog[0].meta.bytes as usize;
    for batch in &sent[1..] {
        assert!(!batch.contains(&amber.meta.id));
        assert!(batch.len() * per_item <= 4_096 && batch.len() >= 4_096 / per_item - 1);
    }
    assert_eq!(
        a.peer(T0, B).unwrap().queued_push,
        500 - sent[1..].iter().map(Vec::len).sum::<usize>()
    );
    // Nothing answered yet: the backlog pushes are in flight. A new advisory is pushed at once,
    // in its own request, not behind the ~470 queued items.
    let fresh = green(A, 10_000);
    a.item_accepted(T0 + 5, &fresh.meta, Source::Local);
    let now: Vec<Action> = std::iter::from_fn(|| a.poll_action()).collect();
    assert_eq!(pushes(&now), vec![vec![fresh.meta.id]]);
}

#[test]
fn the_backlog_is_not_pushed_to_a_peer_that_fetches_it_itself() {
    let mut a = core(A, &[B], cfg());
    let mut b = core(B, &[A], cfg());
    let items: Vec<TestItem> = (0..200).map(|n| green(A, n)).collect();
    let by_id: HashMap<ItemId, &TestItem> = items.iter().map(|i| (i.meta.id, i)).collect();
    for it in &items {
        a.item_accepted(T0, &it.meta, Source::Loaded);
    }
    // `b` reconciles with `a` first: it pulls what it lacks.
    let b_actions = reconcile(&mut b, &mut a, T0);
    let fetches: Vec<FetchRequest> = b_actions
        .iter()
        .filter_map(|x| match x {
            Action::Fetch { msg, .. } => Some(msg.clone()),
            _ => None,
        })
        .collect();
    assert!(!fetches.is_empty());
    // Each fetch asks for `backlog_batch_bytes` of envelopes, and about that many ids.
    for f in &fetches {
        assert_eq!(f.max_bytes, 4_096);
    }
    // `a`'s own session then finds the same 200 items missing on `b`, but pushes none of them.
    let a_actions = reconcile(&mut a, &mut b, T0 + 10);
    assert!(pushes(&a_actions).is_empty(), "{a_actions:?}");
    assert_eq!(a.peer(T0, B).unwrap().queued_push, 0);
    // The answer to a fetch respects its max_bytes and defers the rest.
    let reply = a.handle_fetch(T0 + 20, B, &fetches[0]).unwrap();
    let bytes: usize = reply
        .serve
        .iter()
        .map(|id| by_id[id].meta.bytes as usize)
        .sum();
    assert!(bytes <= 4_096 && !reply.serve.is_empty());
    assert_eq!(
        reply.serve.len() + reply.deferred.len(),
        fetches[0].item_ids.len()
    );
}

#[test]
fn ids_a_peer_fetched_leave_the_backlog_pushed_to_it() {
    let (mut a, _b, items, actions) = a_reconciles_its_backlog_of_300_with_b();
    let in_flight: BTreeSet<ItemId> = pushes(&actions).into_iter().flatten().collect();
    let queued = a.peer(T0, B).unwrap().queued_push;
    // `b` fetches 40 ids still in `a`'s backlog (b started pulling after all).
    let wanted: Vec<ItemId> = items
        .iter()
        .map(|i| i.meta.id)
        .filter(|id| !in_flight.contains(id))
        .take(40)
        .collect();
    let reply = a
        .handle_fetch(
            T0 + 1,
            B,
            &FetchRequest {
                item_ids: wanted.clone(),
                max_bytes: 0,
            },
        )
        .unwrap();
    assert_eq!(reply.serve, wanted);
    assert_eq!(a.peer(T0, B).unwrap().queued_push, queued - 40);
}

#[test]
fn ids_in_flight_in_a_push_are_deferred_not_sent_twice() {
    // `a` pushes its backlog to `b` (b did not pull at first); `b`'s own session then finds the
    // same items missing and fetches some that are on their way in `a`'s pushes and some that
    // still wait in `a`'s backlog. Only the latter are served; the others are deferred until
    // the push is answered.
    let (mut a, _b, items, actions) = a_reconciles_its_backlog_of_300_with_b();
    let mut push_reqs = Vec::new();
    for x in &actions {
        if let Action::Push { req, items, .. } = x {
            push_reqs.push((*req, items.clone()));
        }
    }
    let in_flight: Vec<ItemId> = push_reqs.iter().flat_map(|p| p.1.clone()).collect();
    assert!(!in_flight.is_empty());
    let waiting: Vec<ItemId> = items
        .iter()
        .map(|i| i.meta.id)
        .filter(|id| !in_flight.contains(id))
        .take(5)
        .collect();
    let asked: Vec<ItemId> = in_flight
        .iter()
        .take(5)
        .copied()
        .chain(waiting.clone())
        .collect();
    let fetch = FetchRequest {
        item_ids: asked,
        max_bytes: 0,
    };
    let reply = a.handle_fetch(T0 + 1, B, &fetch).unwrap();
    assert_eq!(reply.serve, waiting, "only what is not on its way already");
    assert_eq!(reply.deferred, in_flight[..5].to_vec());
    assert!(reply.missing.is_empty());
    // Asked again while still on its way (that push may be lost): served.
    let again = a
        .handle_fetch(
            T0 + 2,
            B,
            &FetchRequest {
                item_ids: in_flight[..5].to_vec(),
                max_bytes: 0,
            },
        )
        .unwrap();
    assert_eq!(again.serve, in_flight[..5].to_vec());
    // Another push is refused (so not pushed again): its items are no longer in flight and are
    // served at the first request.
    let (req, ids) = push_reqs[1].clone();
    a.on_request_failed(T0 + 3, B, req, Failure::Refused("busy".into()));
    let after = a
        .handle_fetch(
            T0 + 4,
            B,
            &FetchRequest {
                item_ids: ids[..3].to_vec(),
                max_bytes: 0,
            },
        )
        .unwrap();
    assert_eq!(after.serve, ids[..3].to_vec());
}

#[test]
fn a_slow_link_is_never_timed_out_or_declared_down() {
    // 1 Mbit/s: a fetch answer of 256 KiB takes 2.1 s on the wire; beside a window of others
    // in flight and a 600 ms round trip, more; at the floor of `min_link_bytes_per_s` (4 kB/s)
    // 66 s, and the first request's answer may come last.
    let cfg = SyncConfig {
        interval_ms: 0,
        reconcile_on_connect: false,
        ..SyncConfig::default()
    };
    let mut a = core(A, &[B], cfg.clone());
    let mut b = core(B, &[A], cfg.clone());
    let items: Vec<TestItem> = (0..3_000).map(|n| green(B, n)).collect();
    let by_id: HashMap<ItemId, &TestItem> = items.iter().map(|i| (i.meta.id, i)).collect();
    for it in &items {
        b.item_accepted(T0, &it.meta, Source::Loaded);
    }
    let mut queue: Vec<(u64, u64, FetchRequest)> = reconcile(&mut a, &mut b, T0)
        .into_iter()
        .filter_map(|x| match x {
            Action::Fetch { req, msg, .. } => Some((T0, req, msg)),
            _ => None,
        })
        .collect();
    let mut now = T0;
    let mut answered = 0;
    while let Some((sent, req, msg)) = queue.pop() {
        // A link of 6.5 kB/s: each answer arrives after its bytes' time, 40 s for 256 KiB, well
        // past request_timeout_ms (15 s). (The flow window makes later fetches smaller.)
        let deadline = a.request_deadline(B, req).unwrap();
        assert!(
            deadline - sent
                >= cfg.request_timeout_ms
                    + (32 * msg.item_ids.len() as u64 + msg.max_bytes) * 1000
                        / cfg.min_link_bytes_per_s
        );
        now += 40_000 * msg.max_bytes / (256 * 1024);
        a.handle_timeout(now);
        answer_fetch(&mut a, &mut b, &by_id, now, req, &msg);
        answered += 1;
        for x in std::iter::from_fn(|| a.poll_action()) {
            if let Action::Fetch { req, msg, .. } = x {
                queue.insert(0, (now, req, msg));
            }
        }
        let st = a.peer(now, B).unwrap();
        assert_eq!((st.stats.timeouts, st.link), (0, LinkState::Up));
    }
    assert!(answered >= 3);
    assert_eq!(a.item_count(), 3_000);
}

#[test]
fn a_catch_up_cut_by_a_drop_resumes_without_fetching_stored_items_again() {
    let mut a = core(A, &[B], cfg());
    let mut b = core(B, &[A], cfg());
    let items: Vec<TestItem> = (0..400).map(|n| green(B, n)).collect();
    let by_id: HashMap<ItemId, &TestItem> = items.iter().map(|i| (i.meta.id, i)).collect();
    for it in &items {
        b.item_accepted(T0, &it.meta, Source::Loaded);
    }
    let mut now = T0;
    // Every fetch `a` sends, checked when sent: it never asks for an item it holds.
    let mut asked = 0usize;
    let take = |a: &mut SyncCore,
                b: &mut SyncCore,
                asked: &mut usize,
                now: u64,
                pending: &mut Vec<(u64, FetchRequest)>| {
        while let Some(x) = a.poll_action() {
            match x {
                Action::Reconcile { req, msg, .. } => {
                    let resp = b.handle_reconcile(now, A, &msg).unwrap();
                    a.on_reconcile_response(now, B, req, &resp);
                }
                Action::Fetch { req, msg, .. } => {
                    assert!(msg.item_ids.iter().all(|id| !a.holds(id)));
                    *asked += msg.item_ids.len();
                    pending.push((req, msg));
                }
                _ => {}
            }
        }
    };
    let mut pending = Vec::new();
    a.sync_now(now, Some(B)).unwrap();
    take(&mut a, &mut b, &mut asked, now, &mut pending);
    let mut lost = 0usize;
    let mut dropped = false;
    while !pending.is_empty() {
        let (req, msg) = pending.remove(0);
        now += 500;
        if !dropped && a.item_count() >= 100 {
            // The link drops with this request and the others in flight: their answers are lost.
            dropped = true;
            lost =
                msg.item_ids.len() + pending.iter().map(|(_, m)| m.item_ids.len()).sum::<usize>();
            pending.clear();
            a.peer_down(now, B);
            now += 10_000;
            a.peer_up(now, B);
            // Reconnect: a new reconciliation finds only what is still missing.
            a.sync_now(now, Some(B)).unwrap();
            take(&mut a, &mut b, &mut asked, now, &mut pending);
            continue;
        }
        let (new, got) = answer_fetch(&mut a, &mut b, &by_id, now, req, &msg);
        assert_eq!(new, got, "received twice");
        take(&mut a, &mut b, &mut asked, now, &mut pending);
    }
    assert!(dropped && lost > 0);
    assert_eq!(a.item_count(), 400);
    assert_eq!(a.peer(now, B).unwrap().stats.duplicates_received, 0);
    // Ids asked for: each item once, plus the answers the drop lost, plus ids deferred by a
    // full answer (asked again, never sent twice).
    println!("asked {asked} ids for 400 items; {lost} in answers the drop lost");
    assert!(asked >= 400 + lost);
}

/// A catch-up that lasts many anti-entropy intervals (a thin link) does not start a session
/// every interval: while ids found missing are still being fetched, the periodic session is
/// skipped for up to `DIFFERENCE_SKIP_INTERVALS` intervals after the last one completed (each
/// would only carry the remaining difference's ids again); once the difference is worked
/// through, the next interval reconciles again.
#[test]
fn a_long_catch_up_does_not_reconcile_every_interval() {
    let interval_ms = 30_000;
    let cfg = SyncConfig {
        interval_ms,
        reconcile_on_connect: false,
        ..SyncConfig::default()
    };
    let mut a = core(A, &[B], cfg.clone());
    let mut b = core(B, &[A], cfg);
    let items: Vec<TestItem> = (0..6_000).map(|n| green(B, n)).collect();
    let by_id: HashMap<ItemId, &TestItem> = items.iter().map(|i| (i.meta.id, i)).collect();
    for it in &items {
        b.item_accepted(T0, &it.meta, Source::Loaded);
    }
    // Answers every Reconcile of `a` at once; returns the fetches it sent.
    fn drain(a: &mut SyncCore, b: &mut SyncCore, now: u64) -> Vec<(u64, FetchRequest)> {
        let mut fetches = Vec::new();
        while let Some(action) = a.poll_action() {
            match action {
                Action::Reconcile { req, msg, .. } => {
                    let resp = b.handle_reconcile(now, A, &msg).unwrap();
                    a.on_reconcile_response(now, B, req, &resp);
                }
                Action::Fetch { req, msg, .. } => fetches.push((req, msg)),
                _ => {}
            }
        }
        fetches
    }
    a.sync_now(T0, Some(B)).unwrap();
    let mut queue = drain(&mut a, &mut b, T0);
    let mut now = T0;
    while !queue.is_empty() {
        let (req, msg) = queue.remove(0);
        // A link of 6.5 kB/s: each answer arrives after its bytes' time.
        now += 40_000 * msg.max_bytes / (256 * 1024);
        a.handle_timeout(now);
        queue.extend(drain(&mut a, &mut b, now));
        answer_fetch(&mut a, &mut b, &by_id, now, req, &msg);
        queue.extend(drain(&mut a, &mut b, now));
    }
    assert_eq!(a.item_count(), 6_000);
    let elapsed = now - T0;
    let intervals = elapsed / interval_ms;
    assert!(intervals >= 8, "the catch-up spans {intervals} intervals");
    let sessions = a.peer(now, B).unwrap().stats.sessions_ok;
    // The first session, then at most one per 4 intervals (plus one for the jitter).
    assert!(
        sessions <= 2 + intervals / 4,
        "{sessions} sessions in {intervals} intervals"
    );
    // Caught up: the next interval reconciles again.
    let later = now + 2 * interval_ms;
    a.handle_timeout(later);
    drain(&mut a, &mut b, later);
    assert_eq!(a.peer(later, B).unwrap().stats.sessions_ok, sessions + 1);
}
