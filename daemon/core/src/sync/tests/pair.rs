//! Two cores driven by hand: reconciliation cost and exactness, fetch answers, admission,
//! bounds, timeouts and backoff.

use std::collections::{BTreeSet, HashMap};

use proptest::prelude::*;

use super::net::{TestItem, item};
use crate::envelope::ItemId;
use crate::model::Tlp;
use crate::sync::{
    Action, Failure, FetchRequest, ItemResult, LinkState, PeerMessage, PushResponse,
    ReconcileRequest, RestoreStatus, Source, SyncConfig, SyncCore, SyncError,
};

const T0: u64 = 1_700_000_000_000;

fn green(origin: &str, n: u64) -> TestItem {
    item(origin, n, Tlp::Green, &[], (T0 + n * 1_000) as i64)
}

fn core(me: &str, peers: &[&str], cfg: SyncConfig) -> SyncCore {
    let mut c = SyncCore::new(cfg, me, peers.iter().copied(), 7, T0).unwrap();
    while c.poll_action().is_some() {}
    c
}

fn no_timers() -> SyncConfig {
    SyncConfig {
        interval_ms: 0,
        reconcile_on_connect: false,
        ..SyncConfig::default()
    }
}

/// What one reconciliation session initiated by `a` with `b` cost and produced.
#[derive(Debug, Default)]
struct Exchange {
    /// Reconciliation round trips.
    rounds: usize,
    /// Protobuf bytes of the reconciliation requests (a -> b) and responses (b -> a).
    bytes_ab: usize,
    bytes_ba: usize,
    /// Ids `a` fetched, and ids it offered (pushed) to `b`.
    fetched: BTreeSet<ItemId>,
    offered: BTreeSet<ItemId>,
    /// Every message `a` sent to `b`, encoded.
    sent: Vec<Vec<u8>>,
}

/// Runs a session from `a` to `b` to completion (fetches served by `b`, offers acknowledged).
fn exchange(
    a: &mut SyncCore,
    b: &mut SyncCore,
    b_items: &HashMap<ItemId, TestItem>,
    now: u64,
) -> Exchange {
    let (a_id, b_id) = (a.me().to_string(), b.me().to_string());
    let mut x = Exchange::default();
    a.sync_now(now, Some(&b_id)).unwrap();
    while let Some(action) = a.poll_action() {
        match action {
            Action::Reconcile { req, msg, .. } => {
                let m = PeerMessage::ReconcileRequest(msg.clone());
                x.bytes_ab += m.encode_body().len();
                x.sent.push(m.encode());
                x.rounds += 1;
                let resp = b.handle_reconcile(now, &a_id, &msg).unwrap();
                x.bytes_ba += PeerMessage::ReconcileResponse(resp.clone())
                    .encode_body()
                    .len();
                a.on_reconcile_response(now, &b_id, req, &resp);
            }
            Action::Fetch { req, msg, .. } => {
                x.sent.push(PeerMessage::FetchRequest(msg.clone()).encode());
                x.fetched.extend(msg.item_ids.iter().copied());
                let reply = b.handle_fetch(now, &a_id, &msg).unwrap();
                let resp = reply.into_response(|id| b_items.get(id).map(|t| t.env.clone()));
                for env in &resp.envelopes {
                    let meta = &b_items[&env.item_id()].meta;
                    a.admit(now, &b_id, meta).unwrap();
                    a.item_accepted(now, meta, Source::Peer(&b_id));
                }
                a.on_fetch_response(now, &b_id, req, &resp);
            }
            Action::Push { req, items, .. } => {
                x.offered.extend(items.iter().copied());
                let results = items
                    .iter()
                    .map(|id| ItemResult {
                        item_id: *id,
                        accepted: true,
                        reason: String::new(),
                    })
                    .collect();
                a.on_push_response(now, &b_id, req, &PushResponse { results });
            }
            Action::WakeAt(_) => {}
        }
    }
    x
}

/// `a` holds common + a_only, `b` holds common + b_only (all GREEN).
fn two_sets(
    common: u64,
    a_only: u64,
    b_only: u64,
    cfg: SyncConfig,
) -> (
    SyncCore,
    SyncCore,
    HashMap<ItemId, TestItem>,
    Vec<ItemId>,
    Vec<ItemId>,
) {
    let mut a = core("ws-cert", &["to-cert"], cfg.clone());
    let mut b = core("to-cert", &["ws-cert"], cfg);
    let mut b_items = HashMap::new();
    let mut a_ids = Vec::new();
    let mut b_ids = Vec::new();
    for n in 0..common {
        let it = green("fj-cert", n);
        a.item_accepted(T0, &it.meta, Source::Loaded);
        b.item_accepted(T0, &it.meta, Source::Loaded);
        b_items.insert(it.meta.id, it);
    }
    for n in 0..a_only {
        let it = green("ws-cert", 1_000_000 + n);
        a.item_accepted(T0, &it.meta, Source::Loaded);
        a_ids.push(it.meta.id);
    }
    for n in 0..b_only {
        let it = green("to-cert", 2_000_000 + n);
        b.item_accepted(T0, &it.meta, Source::Loaded);
        b_ids.push(it.meta.id);
        b_items.insert(it.meta.id, it);
    }
    (a, b, b_items, a_ids, b_ids)
}

#[test]
fn identical_sets_of_10k_reconcile_in_one_round_trip_under_2_kb() {
    let (mut a, mut b, b_items, _, _) = two_sets(10_000, 0, 0, no_timers());
    let x = exchange(&mut a, &mut b, &b_items, T0);
    assert_eq!(x.rounds, 1, "{x:?}");
    assert!(
        x.bytes_ab + x.bytes_ba < 2048,
        "{} + {} bytes",
        x.bytes_ab,
        x.bytes_ba
    );
    assert!(x.fetched.is_empty() && x.offered.is_empty());
    let st = a.peer(T0, "to-cert").unwrap();
    assert_eq!(st.stats.sessions_ok, 1);
    assert_eq!(st.last_success_ms, Some(T0));
    assert_eq!(st.link, LinkState::Up);
}

#[test]
fn d_differences_fetch_and_offer_exactly_the_differences() {
    for d in [1u64, 10, 100, 1_000] {
        let (mut a, mut b, b_items, a_ids, b_ids) = two_sets(10_000, d, d, no_timers());
        let x = exchange(&mut a, &mut b, &b_items, T0);
        let want_fetch: BTreeSet<ItemId> = b_ids.iter().copied().collect();
        let want_offer: BTreeSet<ItemId> = a_ids.iter().copied().collect();
        assert_eq!(
            x.fetched, want_fetch,
            "d = {d}: fetched exactly what b alone holds"
        );
        assert_eq!(
            x.offered, want_offer,
            "d = {d}: offered exactly what a alone holds"
        );
        assert!(x.rounds <= 4, "d = {d}: {} round trips", x.rounds);
        assert!(b_ids.iter().all(|id| a.holds(id)), "d = {d}");
    }
}

#[test]
fn small_frames_take_more_rounds_but_stay_exact_and_bounded() {
    let cfg = SyncConfig {
        max_frame_bytes: 4096,
        ..no_timers()
    };
    let (mut a, mut b, b_items, a_ids, b_ids) = two_sets(5_000, 1_500, 1_500, cfg);
    let x = exchange(&mut a, &mut b, &b_items, T0);
    assert!(x.rounds > 1);
    assert_eq!(x.fetched, b_ids.iter().copied().collect());
    assert_eq!(x.offered, a_ids.iter().copied().collect());
    for m in &x.sent {
        if let Ok(PeerMessage::ReconcileRequest(r)) = PeerMessage::decode(m, 1 << 20) {
            assert!(r.message.len() <= 4096, "{} bytes", r.message.len());
        }
    }
}

#[test]
fn reconciliation_covers_only_items_both_may_hold() {
    // b holds AMBER for {fj} and RED from fj to {to}: nothing of it may reach ws.
    let (mut a, mut b, mut b_items, _, b_ids) = two_sets(1_000, 0, 5, no_timers());
    let mut secret = Vec::new();
    for n in 0..20 {
        let amber = item("fj-cert", 500 + n, Tlp::Amber, &["to-cert"], T0 as i64);
        let red = item("fj-cert", 600 + n, Tlp::Red, &["to-cert"], T0 as i64);
        for it in [amber, red] {
            b.item_accepted(T0, &it.meta, Source::Loaded);
            secret.push(it.meta.id);
            b_items.insert(it.meta.id, it);
        }
    }
    assert_eq!(b.reconcile_set_len("ws-cert"), Some(1_005));
    let x = exchange(&mut a, &mut b, &b_items, T0);
    assert_eq!(x.fetched, b_ids.iter().copied().collect());
    for id in &secret {
        assert!(!a.holds(id));
    }
}

#[test]
fn the_same_session_without_the_secret_items_is_byte_identical() {
    let run = |with_secret: bool| {
        let (mut a, mut b, mut b_items, _, _) = two_sets(2_000, 3, 7, no_timers());
        if with_secret {
            for n in 0..50 {
                let it = item(
                    "to-cert",
                    900 + n,
                    Tlp::AmberStrict,
                    &["fj-cert"],
                    (T0 + n) as i64,
                );
                b.item_accepted(T0, &it.meta, Source::Loaded);
                b_items.insert(it.meta.id, it);
            }
        }
        assert_eq!(b.reconcile_set_len("ws-cert"), Some(2_007));
        // What b sends to a: reconciliation replies and fetch replies.
        let mut to_a = Vec::new();
        a.sync_now(T0, Some("to-cert")).unwrap();
        while let Some(action) = a.poll_action() {
            match action {
                Action::Reconcile { req, msg, .. } => {
                    let resp = b.handle_reconcile(T0, "ws-cert", &msg).unwrap();
                    to_a.push(PeerMessage::ReconcileResponse(resp.clone()).encode());
                    a.on_reconcile_response(T0, "to-cert", req, &resp);
                }
                Action::Fetch { req, msg, .. } => {
                    let reply = b.handle_fetch(T0, "ws-cert", &msg).unwrap();
                    let resp = reply.into_response(|id| b_items.get(id).map(|t| t.env.clone()));
                    to_a.push(PeerMessage::FetchResponse(resp.clone()).encode());
                    a.on_fetch_response(T0, "to-cert", req, &resp);
                }
                Action::Push { req, .. } => {
                    a.on_push_response(T0, "to-cert", req, &PushResponse::default())
                }
                Action::WakeAt(_) => {}
            }
        }
        to_a
    };
    let without = run(false);
    let with = run(true);
    assert!(without.len() >= 2);
    assert_eq!(without, with);
}

#[test]
fn fetch_of_an_id_the_peer_may_not_hold_is_answered_like_an_unknown_id() {
    let mut b = core("to-cert", &["ws-cert", "fj-cert"], no_timers());
    let g = green("fj-cert", 1);
    let amber = item("fj-cert", 2, Tlp::Amber, &["to-cert"], T0 as i64);
    let red = item("fj-cert", 3, Tlp::Red, &["to-cert"], T0 as i64);
    for it in [&g, &amber, &red] {
        b.item_accepted(T0, &it.meta, Source::Loaded);
    }
    let unknown = ItemId([0x42; 32]);
    let ask = |ids: Vec<ItemId>| FetchRequest {
        item_ids: ids,
        max_bytes: 0,
    };
    let r = b
        .handle_fetch(
            T0,
            "ws-cert",
            &ask(vec![amber.meta.id, g.meta.id, unknown, red.meta.id]),
        )
        .unwrap();
    assert_eq!(r.serve, vec![g.meta.id]);
    assert_eq!(r.missing, vec![amber.meta.id, unknown, red.meta.id]);
    assert!(r.deferred.is_empty());
    // The same request to a member that does not hold the secret items gets the same answer.
    let mut b2 = core("to-cert", &["ws-cert", "fj-cert"], no_timers());
    b2.item_accepted(T0, &g.meta, Source::Loaded);
    let r2 = b2
        .handle_fetch(
            T0,
            "ws-cert",
            &ask(vec![amber.meta.id, g.meta.id, unknown, red.meta.id]),
        )
        .unwrap();
    assert_eq!(r, r2);
    // The RED item's recipient may not relay it; the AMBER one goes back to its origin.
    let r3 = b
        .handle_fetch(T0, "fj-cert", &ask(vec![amber.meta.id, red.meta.id]))
        .unwrap();
    assert_eq!(r3.serve, vec![amber.meta.id, red.meta.id]);
}

#[test]
fn fetch_replies_are_bounded_and_defer_the_rest() {
    let cfg = SyncConfig {
        max_batch_bytes: 1_000,
        ..no_timers()
    };
    let mut b = core("to-cert", &["ws-cert"], cfg);
    let items: Vec<TestItem> = (0..10).map(|n| green("fj-cert", n)).collect();
    for it in &items {
        b.item_accepted(T0, &it.meta, Source::Loaded);
    }
    let per_item = items[0].meta.bytes as usize;
    let fits = (1_000 / per_item).max(1);
    let ids: Vec<ItemId> = items.iter().map(|i| i.meta.id).collect();
    let r = b
        .handle_fetch(
            T0,
            "ws-cert",
            &FetchRequest {
                item_ids: ids.clone(),
                max_bytes: 0,
            },
        )
        .unwrap();
    assert_eq!(r.serve, ids[..fits].to_vec());
    assert_eq!(r.deferred, ids[fits..].to_vec());
    assert!(r.missing.is_empty());
    // Too many ids in one request: refused and counted.
    let many = FetchRequest {
        item_ids: vec![ItemId([1; 32]); 513],
        max_bytes: 0,
    };
    let e = b.handle_fetch(T0, "ws-cert", &many).unwrap_err();
    assert!(matches!(
        e,
        SyncError::TooManyIds {
            count: 513,
            max: 512,
            ..
        }
    ));
    assert_eq!(
        b.peer(T0, "ws-cert").unwrap().stats.rejections["too_many_ids"],
        1
    );
}

#[test]
fn deferred_ids_are_fetched_again() {
    let cfg = SyncConfig {
        max_batch_bytes: 600,
        ..no_timers()
    };
    let (mut a, mut b, b_items, _, b_ids) = two_sets(100, 0, 12, cfg);
    let x = exchange(&mut a, &mut b, &b_items, T0);
    assert_eq!(x.fetched, b_ids.iter().copied().collect());
    assert!(b_ids.iter().all(|id| a.holds(id)));
    assert!(a.peer(T0, "to-cert").unwrap().stats.fetches_sent >= 3);
    assert_eq!(a.peer(T0, "to-cert").unwrap().stats.fetch_missing, 0);
}

#[test]
fn admit_refuses_what_the_sender_may_not_send_and_counts_it() {
    let mut c = core("fj-cert", &["ws-cert", "to-cert", "au-acsc"], no_timers());
    let red = item("ws-cert", 1, Tlp::Red, &["to-cert", "fj-cert"], T0 as i64);
    let amber = item("ws-cert", 2, Tlp::Amber, &["to-cert", "fj-cert"], T0 as i64);
    // The origin may send RED to its recipient; a recipient may not relay it.
    assert!(c.admit(T0, "ws-cert", &red.meta).is_ok());
    let e = c.admit(T0, "to-cert", &red.meta).unwrap_err();
    assert_eq!(e.code, "red_relay");
    assert_eq!(
        e.explanation,
        "RED: only the origin ws-cert sends, to-cert is a relay"
    );
    // AMBER is relayed within the audience, never by an outsider.
    assert!(c.admit(T0, "to-cert", &amber.meta).is_ok());
    let e = c.admit(T0, "au-acsc", &amber.meta).unwrap_err();
    assert_eq!(e.code, "sender_may_not_hold");
    assert!(c.admit(T0, "nobody", &amber.meta).is_err());
    c.note_rejection("au-acsc", "bad_signature");
    let to = c.peer(T0, "to-cert").unwrap().stats.rejections;
    let au = c.peer(T0, "au-acsc").unwrap().stats.rejections;
    assert_eq!(to.get("red_relay"), Some(&1));
    assert_eq!(au.get("sender_may_not_hold"), Some(&1));
    assert_eq!(au.get("bad_signature"), Some(&1));
}

#[test]
fn garbage_and_oversized_reconciliation_messages_are_refused_and_counted() {
    let (_, mut b, _, _, _) = two_sets(100, 0, 0, no_timers());
    let e = b
        .handle_reconcile(
            T0,
            "ws-cert",
            &ReconcileRequest {
                session: 1,
                message: vec![0x61, 0x05, 0xff],
            },
        )
        .unwrap_err();
    assert_eq!(e.code(), "malformed_frame");
    let e = b
        .handle_reconcile(
            T0,
            "ws-cert",
            &ReconcileRequest {
                session: 2,
                message: vec![0x61; 200_000],
            },
        )
        .unwrap_err();
    assert!(matches!(e, SyncError::FrameTooLarge { size: 200_000, .. }));
    let r = b.peer(T0, "ws-cert").unwrap().stats.rejections;
    assert_eq!(r.get("malformed_frame"), Some(&1));
    assert_eq!(r.get("frame_too_large"), Some(&1));
    assert!(matches!(
        b.handle_reconcile(T0, "mallory", &ReconcileRequest::default()),
        Err(SyncError::UnknownPeer { .. })
    ));
}

#[test]
fn malformed_reconciliation_frames_are_refused_not_answered_and_counted() {
    let (_, mut b, _, _, _) = two_sets(100, 0, 0, no_timers());
    let frames: [(&str, Vec<u8>); 6] = [
        // The timestamp varint of the first bound never ends.
        ("unterminated varint", vec![0x61, 0x80]),
        ("unterminated varint", vec![0x61, 0x00, 0x00, 0x00, 0x81]),
        // (10, ff) then (10, 01): the second range would end before it starts.
        (
            "descending bound",
            vec![0x61, 0x0b, 0x01, 0xff, 0x00, 0x01, 0x01, 0x01, 0x00],
        ),
        ("longer than 64 bits", {
            let mut f = vec![0x61];
            f.extend([0xff; 11]);
            f.push(0x00);
            f
        }),
        ("unknown mode", vec![0x61, 0x00, 0x00, 0x07]),
        ("fingerprint cut short", vec![0x61, 0x00, 0x00, 0x01, 0xaa]),
    ];
    for (n, (what, frame)) in frames.iter().enumerate() {
        let e = b
            .handle_reconcile(
                T0,
                "ws-cert",
                &ReconcileRequest {
                    session: 10 + n as u64,
                    message: frame.clone(),
                },
            )
            .unwrap_err();
        assert_eq!(e.code(), "malformed_frame", "{what}: {e}");
        assert!(e.to_string().contains(what), "{e}");
        assert!(e.to_string().contains("ws-cert"), "{e}");
    }
    let r = b.peer(T0, "ws-cert").unwrap().stats.rejections;
    assert_eq!(r.get("malformed_frame"), Some(&(frames.len() as u64)));
    // A well-formed frame is still answered.
    let ok = b.handle_reconcile(
        T0,
        "ws-cert",
        &ReconcileRequest {
            session: 99,
            message: vec![0x61, 0x00, 0x00, 0x00],
        },
    );
    assert!(ok.is_ok(), "{ok:?}");
}

#[test]
fn a_malformed_reply_fails_the_initiators_session_as_malformed_frame() {
    let (mut a, _, _, _, _) = two_sets(10, 0, 0, no_timers());
    a.sync_now(T0, Some("to-cert")).unwrap();
    let mut sent = None;
    while let Some(act) = a.poll_action() {
        if let Action::Reconcile { req, msg, .. } = act {
            sent = Some((req, msg.session));
        }
    }
    let (req, session) = sent.expect("a reconcile request");
    a.on_reconcile_response(
        T0 + 1,
        "to-cert",
        req,
        &crate::sync::ReconcileResponse {
            session,
            message: vec![0x61, 0x80],
        },
    );
    let r = a.peer(T0, "to-cert").unwrap().stats.rejections;
    assert_eq!(r.get("malformed_frame"), Some(&1), "{r:?}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn random_bytes_never_panic_the_responder_or_the_initiator(
        bytes in prop::collection::vec(any::<u8>(), 0..600),
        versioned in any::<bool>(),
    ) {
        let (mut a, mut b, _, _, _) = two_sets(300, 2, 2, no_timers());
        let mut msg = bytes.clone();
        if versioned {
            msg.insert(0, 0x61);
        }
        let _ = b.handle_reconcile(T0, "ws-cert", &ReconcileRequest { session: 9, message: msg.clone() });
        a.sync_now(T0, Some("to-cert")).unwrap();
        while let Some(act) = a.poll_action() {
            if let Action::Reconcile { req, msg: m, .. } = act {
                let resp = crate::sync::ReconcileResponse { session: m.session, message: msg.clone() };
                a.on_reconcile_response(T0, "to-cert", req, &resp);
            }
        }
        // Whatever happened, the core still answers a well-formed session.
        prop_assert!(a.peer(T0, "to-cert").is_some());
    }
}

#[test]
fn per_peer_queue_is_bounded_and_drops_are_counted() {
    let cfg = SyncConfig {
        max_frame_bytes: 4096,
        max_queue_items: 300,
        max_in_flight: 1,
        max_push_items: 1,
        ..no_timers()
    };
    let mut a = core("ws-cert", &["to-cert"], cfg);
    let mut pushes = 0u64;
    for n in 0..400 {
        let it = green("ws-cert", n);
        a.item_accepted(T0, &it.meta, Source::Local);
        while let Some(act) = a.poll_action() {
            if matches!(act, Action::Push { .. }) {
                pushes += 1;
            }
        }
    }
    // Pushes in flight (never answered): the fresh lane's 2 × max_in_flight (the flow window
    // has room for them); the rest queued, each lane bounded by max_queue_items (300), the
    // rest dropped and counted.
    let st = a.peer(T0, "to-cert").unwrap();
    assert_eq!(pushes, 2);
    assert_eq!(st.in_flight, 2);
    assert!(st.queued_push <= 2 * 300, "{}", st.queued_push);
    assert!(st.stats.dropped_queue_full > 0);
    assert_eq!(
        st.stats.dropped_queue_full,
        400 - pushes - st.queued_push as u64
    );
}

#[test]
fn unreachable_peer_backs_off_exponentially_with_jitter_up_to_the_cap() {
    let cfg = SyncConfig {
        backoff_base_ms: 1_000,
        backoff_max_ms: 20_000,
        ..no_timers()
    };
    let mut a = core("ws-cert", &["to-cert"], cfg);
    let mut now = T0;
    let mut delays = Vec::new();
    for _ in 0..8 {
        a.sync_now(now, Some("to-cert")).unwrap();
        let req = loop {
            match a.poll_action() {
                Some(Action::Reconcile { req, .. }) => break req,
                Some(_) => {}
                None => panic!("no reconcile request"),
            }
        };
        a.on_request_failed(now, "to-cert", req, Failure::Unreachable);
        let LinkState::Down { retry_at_ms } = a.peer(now, "to-cert").unwrap().link else {
            panic!("not down")
        };
        delays.push(retry_at_ms - now);
        // No traffic to a down peer; at the retry time a probe (reconciliation) starts.
        a.handle_timeout(retry_at_ms - 1);
        assert!(
            !std::iter::from_fn(|| a.poll_action()).any(|x| matches!(x, Action::Reconcile { .. }))
        );
        a.handle_timeout(retry_at_ms);
        let probes: Vec<Action> = std::iter::from_fn(|| a.poll_action())
            .filter(|x| matches!(x, Action::Reconcile { .. }))
            .collect();
        assert_eq!(probes.len(), 1);
        // Abandon the probe by failing it the same way next round (sync_now is refused: busy).
        if let Action::Reconcile { req, .. } = &probes[0] {
            a.on_request_failed(retry_at_ms, "to-cert", *req, Failure::Refused("x".into()));
        }
        now = retry_at_ms;
    }
    for (k, d) in delays.iter().enumerate() {
        let full = (1_000u64 << k).min(20_000);
        assert!(
            (full / 2..=full).contains(d),
            "failure {k}: delay {d} outside [{}, {full}]",
            full / 2
        );
    }
    // A success resets the backoff.
    a.peer_up(now, "to-cert");
    assert_eq!(a.peer(now, "to-cert").unwrap().consecutive_failures, 0);
}

#[test]
fn three_timeouts_in_a_row_take_a_peer_down() {
    let cfg = SyncConfig {
        request_timeout_ms: 1_000,
        ..no_timers()
    };
    let mut a = core("ws-cert", &["to-cert"], cfg);
    let mut now = T0;
    for k in 1..=3 {
        a.sync_now(now, Some("to-cert")).unwrap();
        let actions: Vec<Action> = std::iter::from_fn(|| a.poll_action()).collect();
        let wake = actions
            .iter()
            .rev()
            .find_map(|x| match x {
                Action::WakeAt(t) => Some(*t),
                _ => None,
            })
            .unwrap();
        // The deadline: request_timeout_ms plus the frame and its answer at min_link_bytes_per_s.
        let frame = actions
            .iter()
            .find_map(|x| match x {
                Action::Reconcile { msg, .. } => Some(msg.message.len() as u64),
                _ => None,
            })
            .unwrap();
        assert_eq!(wake, now + 1_000 + 2 * frame * 1000 / 4_000);
        a.handle_timeout(wake);
        now = wake;
        let st = a.peer(now, "to-cert").unwrap();
        assert_eq!(st.stats.timeouts, k);
        assert_eq!(st.stats.sessions_failed, k);
        assert_eq!(st.link.as_str(), if k < 3 { "unknown" } else { "down" });
    }
}

#[test]
fn anti_entropy_ticks_visit_every_peer_before_any_twice() {
    let cfg = SyncConfig {
        interval_ms: 30_000,
        jitter_ms: 3_000,
        reconcile_on_connect: false,
        ..SyncConfig::default()
    };
    let peers = ["to-cert", "fj-cert", "au-acsc", "nz-ncsc"];
    let mut a = SyncCore::new(cfg, "ws-cert", peers, 11, T0).unwrap();
    let mut chosen = Vec::new();
    let mut now = T0;
    // The first pass only sees the first tick's wake-up; each later pass one session.
    for _ in 0..9 {
        let mut wake = None;
        while let Some(x) = a.poll_action() {
            match x {
                Action::WakeAt(t) => wake = Some(t),
                Action::Reconcile { to, req, msg } => {
                    chosen.push(to.clone());
                    // Complete at once: an empty peer answers "nothing to do".
                    let mut b = core(&to, &["ws-cert"], no_timers());
                    let resp = b.handle_reconcile(now, "ws-cert", &msg).unwrap();
                    a.on_reconcile_response(now, &to, req, &resp);
                }
                _ => {}
            }
        }
        let t = wake.or(a.next_wakeup()).unwrap();
        assert!(
            (now + 27_000..=now + 33_000).contains(&t),
            "tick at +{}",
            t - now
        );
        now = t;
        a.handle_timeout(now);
    }
    assert_eq!(chosen.len(), 8);
    let first: BTreeSet<&String> = chosen[..4].iter().collect();
    assert_eq!(first.len(), 4, "{chosen:?}");
    assert_eq!(chosen[..4], chosen[4..], "round robin");
}

#[test]
fn explain_says_why() {
    let a = core("ws-cert", &["to-cert", "au-acsc"], no_timers());
    let amber = item("ws-cert", 1, Tlp::Amber, &["au-acsc"], T0 as i64);
    let e = a.explain(&amber.meta, "au-acsc").unwrap();
    assert!(e.allowed && e.in_reconcile_scope && e.direct && !e.held);
    let e = a.explain(&amber.meta, "to-cert").unwrap();
    assert!(!e.allowed && !e.in_reconcile_scope);
    assert_eq!(
        e.reason,
        "AMBER: to-cert may not hold it (neither the origin ws-cert nor in the audience)"
    );
    assert!(a.explain(&amber.meta, "nobody").is_err());
}

#[test]
fn config_is_validated_naming_the_setting() {
    let bad = SyncConfig {
        max_frame_bytes: 1000,
        ..SyncConfig::default()
    };
    let e = SyncCore::new(bad, "a", ["b"], 1, 0).unwrap_err();
    assert!(e.to_string().contains("max_frame_bytes"), "{e}");
    let bad = SyncConfig {
        jitter_ms: 30_000,
        ..SyncConfig::default()
    };
    assert!(
        bad.validate()
            .unwrap_err()
            .to_string()
            .contains("jitter_ms")
    );
    let parsed: SyncConfig = toml::from_str("fanout = 4\npush_mode = \"random\"").unwrap();
    assert_eq!(parsed.fanout, 4);
    assert_eq!(parsed.interval_ms, 30_000);
    assert!(toml::from_str::<SyncConfig>("fanot = 4").is_err());
}

#[test]
fn the_core_can_move_into_a_task() {
    // The daemon's driver owns the core inside a tokio task: it must be `Send + 'static`.
    fn owned_by_a_task<T: Send + 'static>(t: T) -> T {
        t
    }
    let c = owned_by_a_task(core("ws-cert", &["to-cert"], no_timers()));
    assert_eq!(c.me(), "ws-cert");
}

fn quota(rate: u32, burst: u32) -> SyncConfig {
    SyncConfig {
        origin_push_rate_per_s: rate,
        origin_push_burst: burst,
        ..no_timers()
    }
}

#[test]
fn pushes_over_an_origins_quota_are_refused_per_origin_and_refill_with_time() {
    let mut c = core("fj-cert", &["ws-cert", "to-cert"], quota(2, 3));
    let ws: Vec<TestItem> = (0..6).map(|n| green("ws-cert", n)).collect();
    for it in &ws[..3] {
        assert!(c.admit(T0, "ws-cert", &it.meta).is_ok(), "within the burst");
    }
    let e = c.admit(T0, "ws-cert", &ws[3].meta).unwrap_err();
    assert_eq!(e.code, "origin_quota");
    assert!(
        e.explanation.contains("origin ws-cert"),
        "{}",
        e.explanation
    );
    // The bucket is the origin's, whoever relays: to-cert relaying ws-cert items is refused
    // too, while to-cert's own items have their own bucket.
    assert_eq!(
        c.admit(T0, "to-cert", &ws[3].meta).unwrap_err().code,
        "origin_quota"
    );
    assert!(c.admit(T0, "to-cert", &green("to-cert", 9).meta).is_ok());
    // 2 items/s: one token every 500 ms, and no more.
    assert!(c.admit(T0 + 499, "ws-cert", &ws[3].meta).is_err());
    assert!(c.admit(T0 + 500, "ws-cert", &ws[3].meta).is_ok());
    assert!(c.admit(T0 + 500, "ws-cert", &ws[4].meta).is_err());
    // Refill never exceeds the burst.
    for it in &ws[..3] {
        assert!(c.admit(T0 + 3_600_000, "ws-cert", &it.meta).is_ok());
    }
    assert!(c.admit(T0 + 3_600_000, "ws-cert", &ws[5].meta).is_err());
    let rej = c.peer(T0, "ws-cert").unwrap().stats.rejections;
    assert_eq!(rej.get("origin_quota"), Some(&4));
    let rej = c.peer(T0, "to-cert").unwrap().stats.rejections;
    assert_eq!(rej.get("origin_quota"), Some(&1));
}

#[test]
fn items_already_held_and_our_own_items_take_no_quota() {
    let mut c = core("fj-cert", &["ws-cert", "to-cert"], quota(1, 1));
    let held = green("ws-cert", 1);
    c.item_accepted(T0, &held.meta, Source::Peer("ws-cert"));
    for _ in 0..5 {
        assert!(
            c.admit(T0, "to-cert", &held.meta).is_ok(),
            "a duplicate push"
        );
    }
    for n in 0..5 {
        let ours = green("fj-cert", n);
        assert!(
            c.admit(T0, "ws-cert", &ours.meta).is_ok(),
            "our own item back"
        );
    }
    assert!(c.admit(T0, "ws-cert", &green("ws-cert", 2).meta).is_ok());
    assert!(c.admit(T0, "ws-cert", &green("ws-cert", 3).meta).is_err());
}

#[test]
fn catch_up_by_fetch_is_never_throttled_by_the_push_quota() {
    // A quota of 1 item/s and a burst of 1, yet a 300-item backlog is fetched in one session:
    // `exchange` admits every fetched item and fails on any refusal.
    let (mut a, mut b, b_items, _, b_ids) = two_sets(20, 0, 300, quota(1, 1));
    let x = exchange(&mut a, &mut b, &b_items, T0);
    assert_eq!(x.fetched.len(), 300);
    assert!(b_ids.iter().all(|id| a.holds(id)));
    assert_eq!(
        a.peer(T0, "to-cert")
            .unwrap()
            .stats
            .rejections
            .get("origin_quota"),
        None
    );
}

#[test]
fn the_quota_is_validated() {
    let e = SyncCore::new(quota(5, 0), "fj-cert", ["ws-cert"], 7, T0).unwrap_err();
    assert!(e.to_string().contains("origin_push_burst"), "{e}");
    assert!(SyncCore::new(quota(0, 0), "fj-cert", ["ws-cert"], 7, T0).is_ok());
}

#[test]
fn set_peers_keeps_kept_peers_state_drops_removed_ones_and_adds_new_ones() {
    let cfg = no_timers();
    let timeout = cfg.request_timeout_ms;
    let mut c = core("ws-cert", &["aa-cert", "to-cert"], cfg);
    // A reconciliation with to-cert is in flight (to-cert is peer index 1).
    c.sync_now(T0, Some("to-cert")).unwrap();
    while c.poll_action().is_some() {}
    assert!(c.peer(T0, "to-cert").unwrap().syncing);
    let (added, removed) = c.set_peers(T0 + 1, ["to-cert", "ck-cert", "ws-cert"]);
    assert_eq!(added, ["ck-cert"]);
    assert_eq!(removed, ["aa-cert"]);
    assert_eq!(c.peers().collect::<Vec<_>>(), ["ck-cert", "to-cert"]);
    // to-cert kept its session; its request timer follows it to its new index.
    assert!(c.peer(T0, "to-cert").unwrap().syncing);
    c.handle_timeout(T0 + timeout + 10);
    assert_eq!(c.peer(T0, "to-cert").unwrap().stats.timeouts, 1);
    assert_eq!(c.peer(T0, "ck-cert").unwrap().stats.timeouts, 0);
    // The removed member is unknown from now on: what it sends is refused.
    let g = green("aa-cert", 1);
    assert_eq!(
        c.admit(T0 + 20, "aa-cert", &g.meta).unwrap_err().code,
        "unknown_peer"
    );
    assert!(c.peer(T0, "aa-cert").is_none());
    assert!(c.sync_now(T0, Some("aa-cert")).is_err());
    // The new member is reconciled with on demand.
    while c.poll_action().is_some() {}
    c.sync_now(T0 + 30, Some("ck-cert")).unwrap();
    let acts: Vec<Action> = std::iter::from_fn(|| c.poll_action()).collect();
    assert!(
        acts.iter()
            .any(|a| matches!(a, Action::Reconcile { to, .. } if to == "ck-cert")),
        "{acts:?}"
    );
}

#[test]
fn a_restoring_member_waits_for_each_peer_until_what_it_lacks_is_answered() {
    // ws-cert lost its store: it holds nothing; to-cert holds 300 items (100 of ws-cert's own).
    let mut a = core("ws-cert", &["to-cert"], no_timers());
    let mut b = core("to-cert", &["ws-cert"], no_timers());
    let mut b_items = HashMap::new();
    for n in 0..300 {
        let origin = if n < 100 { "ws-cert" } else { "fj-cert" };
        let it = green(origin, n);
        b.item_accepted(T0, &it.meta, Source::Loaded);
        b_items.insert(it.meta.id, it);
    }
    assert!(
        a.restore_pending().is_empty(),
        "not tracking: nothing to wait for"
    );
    a.track_restore();
    assert_eq!(a.restore_pending(), vec!["to-cert".to_string()]);

    // The session completes, but the fetches it queued are not answered yet: still waiting.
    a.sync_now(T0, Some("to-cert")).unwrap();
    let mut fetches = Vec::new();
    while let Some(action) = a.poll_action() {
        match action {
            Action::Reconcile { req, msg, .. } => {
                let resp = b.handle_reconcile(T0, "ws-cert", &msg).unwrap();
                a.on_reconcile_response(T0, "to-cert", req, &resp);
            }
            Action::Fetch { req, msg, .. } => fetches.push((req, msg)),
            _ => {}
        }
    }
    assert_eq!(a.peer(T0, "to-cert").unwrap().stats.sessions_ok, 1);
    assert!(!fetches.is_empty());
    assert_eq!(a.restore_pending(), vec!["to-cert".to_string()]);

    // Every fetch answered, one id reported missing: caught up, and tracking stops for good.
    let mut dropped = false;
    while let Some((req, msg)) = fetches.pop() {
        let mut reply = b.handle_fetch(T0, "ws-cert", &msg).unwrap();
        if !dropped {
            let gone = reply.serve.remove(0);
            reply.missing.push(gone);
            dropped = true;
        }
        let resp = reply.into_response(|id| b_items.get(id).map(|t| t.env.clone()));
        for env in &resp.envelopes {
            let meta = &b_items[&env.item_id()].meta;
            a.admit(T0, "to-cert", meta).unwrap();
            a.item_accepted(T0, meta, Source::Peer("to-cert"));
        }
        a.on_fetch_response(T0, "to-cert", req, &resp);
        if !fetches.is_empty() {
            assert_eq!(a.restore_pending(), vec!["to-cert".to_string()]);
        }
        while let Some(action) = a.poll_action() {
            if let Action::Fetch { req, msg, .. } = action {
                fetches.push((req, msg));
            }
        }
    }
    assert!(a.restore_pending().is_empty());
    assert_eq!(a.item_count(), 299);
    assert!(a.restore_pending().is_empty(), "stays done");
}

#[test]
fn a_restoring_member_does_not_wait_for_a_peer_that_is_down_or_refuses_it() {
    let mut a = core("ws-cert", &["to-cert", "fj-cert", "ck-cert"], no_timers());
    let mut b = core("to-cert", &["ws-cert", "fj-cert"], no_timers());
    a.track_restore();
    assert_eq!(
        a.restore_pending(),
        vec![
            "ck-cert".to_string(),
            "fj-cert".to_string(),
            "to-cert".to_string()
        ]
    );
    // ck-cert refuses our reconciliation (it does not know us yet): not waited for.
    a.sync_now(T0, Some("ck-cert")).unwrap();
    while let Some(action) = a.poll_action() {
        if let Action::Reconcile { req, .. } = action {
            a.on_request_failed(
                T0,
                "ck-cert",
                req,
                Failure::Refused("permission_denied".into()),
            );
        }
    }
    assert_eq!(
        a.restore_pending(),
        vec!["fj-cert".to_string(), "to-cert".to_string()]
    );
    // to-cert holds nothing: one session and it is caught up.
    let x = exchange(&mut a, &mut b, &HashMap::new(), T0);
    assert_eq!(x.rounds, 1);
    assert_eq!(a.restore_pending(), vec!["fj-cert".to_string()]);
    // fj-cert is unreachable: the link goes down and it is no longer waited for.
    a.sync_now(T0, Some("fj-cert")).unwrap();
    let mut failed = false;
    while let Some(action) = a.poll_action() {
        if let Action::Reconcile { req, .. } = action {
            a.on_request_failed(T0, "fj-cert", req, Failure::Unreachable);
            failed = true;
        }
    }
    assert!(failed);
    assert!(matches!(
        a.peer(T0, "fj-cert").unwrap().link,
        LinkState::Down { .. }
    ));
    assert!(a.restore_pending().is_empty());
    assert_eq!(a.restore_status().unreachable, vec!["fj-cert".to_string()]);
}

#[test]
fn a_restoring_member_reconciles_at_once_with_a_peer_that_comes_back() {
    // ws-cert restores; its first attempt with to-cert failed (to-cert was not up yet).
    let mut a = core("ws-cert", &["to-cert"], no_timers());
    let mut b = core("to-cert", &["ws-cert"], no_timers());
    a.track_restore();
    a.sync_now(T0, Some("to-cert")).unwrap();
    while let Some(action) = a.poll_action() {
        if let Action::Reconcile { req, .. } = action {
            a.on_request_failed(T0, "to-cert", req, Failure::Unreachable);
        }
    }
    assert!(
        a.restore_pending().is_empty(),
        "a peer that is down is not waited for"
    );

    // Tracking again (a new start): to-cert comes up and reconciles with us first. Its
    // session pulls what it lacks; ours must start at once to pull what we lack.
    let mut a = core("ws-cert", &["to-cert"], no_timers());
    a.track_restore();
    a.sync_now(T0, Some("to-cert")).unwrap();
    while let Some(action) = a.poll_action() {
        if let Action::Reconcile { req, .. } = action {
            a.on_request_failed(T0, "to-cert", req, Failure::Unreachable);
        }
    }
    b.sync_now(T0 + 10, Some("ws-cert")).unwrap();
    let mut ours = false;
    while let Some(action) = b.poll_action() {
        if let Action::Reconcile { msg, .. } = action {
            a.handle_reconcile(T0 + 10, "to-cert", &msg).unwrap();
            while let Some(mine) = a.poll_action() {
                ours |= matches!(mine, Action::Reconcile { .. });
            }
        }
    }
    assert!(
        ours,
        "the restoring member started its own session on inbound traffic"
    );
    assert_eq!(a.restore_pending(), vec!["to-cert".to_string()]);
}

/// `b` holding `n` GREEN items of ws-cert's own, and `a` (ws-cert, empty) restoring from it.
fn restoring_pair(n: u64) -> (SyncCore, SyncCore, HashMap<ItemId, TestItem>) {
    let mut a = core("ws-cert", &["to-cert"], no_timers());
    let mut b = core("to-cert", &["ws-cert"], no_timers());
    let mut b_items = HashMap::new();
    for k in 0..n {
        let it = green("ws-cert", k);
        b.item_accepted(T0, &it.meta, Source::Loaded);
        b_items.insert(it.meta.id, it);
    }
    a.track_restore();
    (a, b, b_items)
}

/// Runs `a`'s session with `b` to its end; returns the fetches it sent, unanswered.
fn session_fetches(a: &mut SyncCore, b: &mut SyncCore, now: u64) -> Vec<(u64, FetchRequest)> {
    a.sync_now(now, Some("to-cert")).unwrap();
    let mut fetches = Vec::new();
    while let Some(action) = a.poll_action() {
        match action {
            Action::Reconcile { req, msg, .. } => {
                let resp = b.handle_reconcile(now, "ws-cert", &msg).unwrap();
                a.on_reconcile_response(now, "to-cert", req, &resp);
            }
            Action::Fetch { req, msg, .. } => fetches.push((req, msg)),
            _ => {}
        }
    }
    fetches
}

/// Answers `fetches` from `b`; the envelopes are stored (reported with `item_accepted`, as
/// the runtime does once they are durable) only when `store` is true, and the answer is
/// reported either way (the daemon's driver reports it after a failed store too). Answers the
/// fetches these answers queue as well.
fn answer_fetches(
    a: &mut SyncCore,
    b: &mut SyncCore,
    b_items: &HashMap<ItemId, TestItem>,
    mut fetches: Vec<(u64, FetchRequest)>,
    store: bool,
    now: u64,
) {
    while let Some((req, msg)) = fetches.pop() {
        let reply = b.handle_fetch(now, "ws-cert", &msg).unwrap();
        let resp = reply.into_response(|id| b_items.get(id).map(|t| t.env.clone()));
        assert!(!resp.envelopes.is_empty());
        for env in &resp.envelopes {
            let meta = &b_items[&env.item_id()].meta;
            a.admit(now, "to-cert", meta).unwrap();
            if store {
                a.item_accepted(now, meta, Source::Peer("to-cert"));
            }
        }
        a.on_fetch_response(now, "to-cert", req, &resp);
        while let Some(action) = a.poll_action() {
            if let Action::Fetch { req, msg, .. } = action {
                fetches.push((req, msg));
            }
        }
    }
}

#[test]
fn a_restoring_member_keeps_waiting_for_items_that_were_served_but_not_stored() {
    // to-cert serves every id ws-cert lacks, but ws-cert's store fails: nothing is durable, so
    // nothing is restored, although every fetch was answered.
    let (mut a, mut b, b_items) = restoring_pair(40);
    let fetches = session_fetches(&mut a, &mut b, T0);
    answer_fetches(&mut a, &mut b, &b_items, fetches, false, T0);
    assert_eq!(a.item_count(), 0);
    assert_eq!(
        a.restore_pending(),
        vec!["to-cert".to_string()],
        "served is not stored: the restore must not be over"
    );
    assert_eq!(
        a.peer(T0, "to-cert").unwrap().stats.fetch_missing,
        0,
        "to-cert reported nothing missing"
    );
    // The next session finds them again; this time they are stored: caught up.
    let fetches = session_fetches(&mut a, &mut b, T0 + 1_000);
    assert!(!fetches.is_empty(), "the next session fetches them again");
    answer_fetches(&mut a, &mut b, &b_items, fetches, true, T0 + 1_000);
    assert_eq!(a.item_count(), 40);
    assert!(a.restore_pending().is_empty());
    assert_eq!(a.restore_status(), RestoreStatus::default());
}

#[test]
fn a_peer_that_goes_down_mid_restore_is_reported_and_restored_from_when_it_is_back() {
    // ws-cert's session with to-cert found 40 ids lacking; then to-cert's link goes down
    // before they are fetched.
    let (mut a, mut b, b_items) = restoring_pair(40);
    let fetches = session_fetches(&mut a, &mut b, T0);
    assert!(!fetches.is_empty());
    assert_eq!(a.restore_pending(), vec!["to-cert".to_string()]);
    for (req, _) in fetches {
        a.on_request_failed(T0 + 10, "to-cert", req, Failure::Unreachable);
    }
    assert!(matches!(
        a.peer(T0 + 10, "to-cert").unwrap().link,
        LinkState::Down { .. }
    ));
    // Down: not waited for by the write path, but reported, and not counted as restored.
    assert!(a.restore_pending().is_empty());
    assert_eq!(
        a.restore_status(),
        RestoreStatus {
            waiting: vec![],
            unreachable: vec!["to-cert".to_string()],
        }
    );
    // The backoff's probe of to-cert (the link is `Unknown` meanwhile) is not an answer: still
    // unreachable, still not waited for, until the probe fails again.
    a.handle_timeout(T0 + 3_600_000);
    let mut probes = Vec::new();
    while let Some(action) = a.poll_action() {
        if let Action::Reconcile { req, .. } = action {
            probes.push(req);
        }
    }
    assert_eq!(probes.len(), 1, "the retry probes to-cert");
    assert_eq!(a.restore_status().unreachable, vec!["to-cert".to_string()]);
    assert!(a.restore_pending().is_empty());
    a.on_request_failed(T0 + 3_600_000, "to-cert", probes[0], Failure::Unreachable);
    // to-cert comes back: it reconciles with us (its own session). The restore from it
    // resumes at once: it is waited for again until what it holds of ours is stored.
    b.sync_now(T0 + 3_600_020, Some("ws-cert")).unwrap();
    let mut resumed = Vec::new();
    while let Some(action) = b.poll_action() {
        if let Action::Reconcile { msg, .. } = action {
            a.handle_reconcile(T0 + 3_600_020, "to-cert", &msg).unwrap();
            while let Some(mine) = a.poll_action() {
                if let Action::Reconcile { req, msg, .. } = mine {
                    resumed.push((req, msg));
                }
            }
        }
    }
    assert_eq!(resumed.len(), 1, "ws-cert started its own session at once");
    assert_eq!(
        a.restore_pending(),
        vec!["to-cert".to_string()],
        "back and not caught up: waited for again"
    );
    assert!(a.restore_status().unreachable.is_empty());
    let (req, msg) = resumed.remove(0);
    let resp = b.handle_reconcile(T0 + 3_600_030, "ws-cert", &msg).unwrap();
    a.on_reconcile_response(T0 + 3_600_030, "to-cert", req, &resp);
    let mut fetches = Vec::new();
    while let Some(action) = a.poll_action() {
        if let Action::Fetch { req, msg, .. } = action {
            fetches.push((req, msg));
        }
    }
    assert!(!fetches.is_empty());
    assert_eq!(a.restore_pending(), vec!["to-cert".to_string()]);
    answer_fetches(&mut a, &mut b, &b_items, fetches, true, T0 + 3_600_030);
    assert_eq!(a.item_count(), 40);
    assert!(a.restore_pending().is_empty());
    assert_eq!(a.restore_status(), RestoreStatus::default());
}

#[test]
fn a_restoring_member_does_not_wait_for_what_the_peer_no_longer_offers() {
    // A session found 40 ids lacking; before they are fetched, to-cert drops 10 of them (a
    // roster version voided them) and a fetch fails. The next session's findings are what
    // to-cert still has for us: the 10 are not waited for.
    let (mut a, mut b, b_items) = restoring_pair(40);
    let fetches = session_fetches(&mut a, &mut b, T0);
    for (req, _) in fetches {
        a.on_request_failed(T0 + 10, "to-cert", req, Failure::Timeout);
    }
    let dropped: Vec<ItemId> = b_items.keys().copied().take(10).collect();
    assert_eq!(b.forget_items(&dropped), 10);
    let fetches = session_fetches(&mut a, &mut b, T0 + 1_000);
    assert_eq!(a.restore_pending(), vec!["to-cert".to_string()]);
    answer_fetches(&mut a, &mut b, &b_items, fetches, true, T0 + 1_000);
    assert_eq!(a.item_count(), 30);
    assert!(a.restore_pending().is_empty());
}

#[test]
fn forgotten_items_leave_the_reconciliation_set_and_are_answered_missing() {
    // Both hold 200 common items and 3 that a roster version voids; `a` applied it first.
    let (mut a, mut b, mut b_items, _, _) = two_sets(200, 0, 0, no_timers());
    let voided: Vec<TestItem> = (0..3).map(|n| green("fj-cert", 9_000 + n)).collect();
    for it in &voided {
        a.item_accepted(T0, &it.meta, Source::Loaded);
        b.item_accepted(T0, &it.meta, Source::Loaded);
        b_items.insert(it.meta.id, it.clone());
    }
    let ids: Vec<ItemId> = voided.iter().map(|t| t.meta.id).collect();
    assert_eq!(a.reconcile_set_len("to-cert"), Some(203));
    assert_eq!(a.forget_items(&ids), 3);
    assert_eq!(a.forget_items(&ids), 0, "forgetting twice is a no-op");
    assert!(ids.iter().all(|id| !a.holds(id)));
    assert_eq!(a.item_count(), 200);
    assert_eq!(a.reconcile_set_len("to-cert"), Some(200));

    // `a` no longer serves them: a fetch is answered missing.
    let r = a
        .handle_fetch(
            T0,
            "to-cert",
            &FetchRequest {
                item_ids: ids.clone(),
                max_bytes: 0,
            },
        )
        .unwrap();
    assert!(r.serve.is_empty());
    assert_eq!(r.missing, ids);

    // `b` (not yet on the new roster) still holds them: a session it starts finds exactly them
    // missing at `a` and offers them (the receive pipeline of `a` refuses them by the roster).
    let a_items: HashMap<ItemId, TestItem> = HashMap::new();
    let x = exchange(&mut b, &mut a, &a_items, T0 + 1);
    assert!(x.fetched.is_empty(), "{x:?}");
    assert_eq!(x.offered, ids.iter().copied().collect::<BTreeSet<_>>());

    // Once `b` dropped them too, the two sets are identical again: nothing is exchanged.
    assert_eq!(b.forget_items(&ids), 3);
    let x = exchange(&mut a, &mut b, &b_items, T0 + 2);
    assert_eq!(x.rounds, 1, "{x:?}");
    assert!(x.fetched.is_empty() && x.offered.is_empty(), "{x:?}");
}
