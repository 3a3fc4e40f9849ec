//! The `Store` conformance suite, run against every backend, and shared test-item builders.
//!
//! Owns: one set of checks written against `&dyn Store`, instantiated for a backend by the
//! exported macro `store_conformance_suite!` (this crate runs it for `MemoryStore`; the daemon
//! runs it for `SledStore` in a temporary directory), the arrival-order property
//! (`arrival_order_case`, compared with `MemoryStore` and an oracle), and the builders of valid,
//! signed advisories that other tests reuse. Compiled for tests and with the `conformance`
//! feature (a dev-dependency of every crate with a backend), never into a release binary.
//! Must never: use values outside the documentation ranges, or depend on timing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::IpAddr;

use ed25519_dalek::SigningKey;
pub use proptest;
use proptest::prelude::*;

use super::engine::akey;
use super::{
    AuditEntry, Counts, Equivocation, IndicatorMatch, IndicatorQuery, ListFilter, ListOrder,
    MatchKind, MemoryStore, OriginEquivocations, PutOutcome, Store, StoreError, StoredItem,
    list_cursor,
};
use crate::envelope::{ItemId, SigningIdentity, Verified};
use crate::model::{Advisory, Indicator, IndicatorKind, Limits, Severity, Tlp};

// ---------------------------------------------------------------------------------------------
// Builders (shared with other unit tests)
// ---------------------------------------------------------------------------------------------

/// Member id of the default test identity.
pub const WS: &str = "ws-cert";
/// Member id of the second test identity.
pub const TO: &str = "to-cert";
/// 2026-01-01T00:00:00Z in Unix ms: `created_ms` of test advisories.
pub const T0: i64 = 1_767_225_600_000;

/// The `ws-cert` test identity (ed25519 key of 32 bytes of 7).
pub fn ws_identity() -> SigningIdentity {
    SigningIdentity::new(WS, SigningKey::from_bytes(&[7u8; 32]))
}

/// The `to-cert` test identity (ed25519 key of 32 bytes of 8).
pub fn to_identity() -> SigningIdentity {
    SigningIdentity::new(TO, SigningKey::from_bytes(&[8u8; 32]))
}

/// An indicator; the value is passed through the model's normalizer (it should already be
/// in normal form; this keeps builders valid if normal forms are refined).
pub fn indicator(kind: IndicatorKind, value: &str) -> Indicator {
    Indicator {
        kind,
        value: crate::model::normalize_indicator(kind, value).unwrap_or_else(|_| value.to_string()),
        confidence: 80,
        valid_until_ms: None,
        note: String::new(),
    }
}

/// One indicator of each common kind, from documentation ranges.
pub fn sample_indicators() -> Vec<Indicator> {
    vec![
        indicator(IndicatorKind::Ipv4, "192.0.2.7"),
        indicator(IndicatorKind::Cidr, "198.51.100.0/24"),
        indicator(IndicatorKind::Ipv6, "2001:db8::1"),
        indicator(IndicatorKind::Cidr, "2001:db8::/32"),
        indicator(IndicatorKind::Domain, "c2.apt40.example"),
        indicator(
            IndicatorKind::Sha256,
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ),
    ]
}

/// A valid TLP:GREEN advisory `id` of `origin` at `revision` (modified = T0 + revision seconds),
/// with `sample_indicators()`.
pub fn advisory(origin: &str, id: &str, revision: u64) -> Advisory {
    Advisory {
        id: id.to_string(),
        origin: origin.to_string(),
        revision,
        created_ms: T0,
        modified_ms: T0 + i64::try_from(revision).unwrap() * 1_000,
        valid_until_ms: None,
        tlp: Tlp::Green,
        audience: Vec::new(),
        title: format!("APT40 activity {id} revision {revision}"),
        summary: "Sample advisory with documentation-range indicators.".to_string(),
        severity: Severity::High,
        actors: vec!["APT40".to_string()],
        cves: Vec::new(),
        indicators: sample_indicators(),
        references: Vec::new(),
        withdrawn: false,
        withdrawn_reason: String::new(),
        extras: Vec::new(),
    }
}

/// Marks an advisory as a withdrawal tombstone.
pub fn withdrawn(mut a: Advisory) -> Advisory {
    a.withdrawn = true;
    a.withdrawn_reason = "false positive: sample withdrawn".to_string();
    a
}

/// Makes an advisory TLP:AMBER for `au-acsc`.
pub fn amber(mut a: Advisory) -> Advisory {
    a.tlp = Tlp::Amber;
    a.audience = vec!["au-acsc".to_string()];
    a
}

/// Signs with the identity of the advisory's origin (`ws-cert` or `to-cert`).
pub fn signed(a: Advisory) -> Verified<Advisory> {
    let id = if a.origin == TO {
        to_identity()
    } else {
        ws_identity()
    };
    id.sign(a, &Limits::default()).unwrap()
}

/// A signed `ws-cert` advisory with the sample indicators.
pub fn ws_item(id: &str, revision: u64) -> Verified<Advisory> {
    signed(advisory(WS, id, revision))
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

const NOW: i64 = T0 + 3_600_000;

pub fn put(store: &dyn Store, item: &Verified<Advisory>) -> PutOutcome {
    store.put(item, "local", NOW).unwrap()
}

pub fn stored(became_latest: bool, replaced: Option<ItemId>, equivocation: bool) -> PutOutcome {
    PutOutcome::Stored {
        became_latest,
        replaced,
        equivocation,
    }
}

pub fn counts(advisories: u64, withdrawn: u64, items: u64, indicators: u64, eq: u64) -> Counts {
    Counts {
        advisories,
        withdrawn,
        items,
        indicators,
        equivocations: eq,
    }
}

pub fn exact(kind: IndicatorKind, value: &str) -> IndicatorQuery {
    IndicatorQuery::Exact(kind, value.to_string())
}

pub fn ip(s: &str) -> IndicatorQuery {
    IndicatorQuery::Ip(s.parse::<IpAddr>().unwrap())
}

pub fn hit(item: &Verified<Advisory>, index: u32, matched: MatchKind) -> IndicatorMatch {
    IndicatorMatch {
        item_id: item.item_id(),
        index,
        matched,
    }
}

pub fn latest_id(store: &dyn Store, origin: &str, id: &str) -> Option<ItemId> {
    store.latest(origin, id).unwrap().map(|s| s.item_id)
}

pub fn history_ids(store: &dyn Store, origin: &str, id: &str) -> Vec<ItemId> {
    store
        .history(origin, id)
        .unwrap()
        .into_iter()
        .map(|s| s.item_id)
        .collect()
}

pub fn list_ids(store: &dyn Store, filter: &ListFilter) -> (Vec<ItemId>, bool) {
    let (items, truncated) = store.list(filter).unwrap();
    (items.into_iter().map(|s| s.item_id).collect(), truncated)
}

pub fn audit_entry(n: u32, item: Option<ItemId>) -> AuditEntry {
    AuditEntry {
        at_ms: NOW + i64::from(n),
        action: "publish".to_string(),
        item_id: item,
        subject: format!("{WS}/ws-2026-{n:04}"),
        actor: "operator".to_string(),
        detail: format!("entry {n}"),
    }
}

/// Everything observable about a set of advisories, for order-independence comparisons.
#[derive(Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub latest: Vec<Option<ItemId>>,
    pub history: Vec<Vec<ItemId>>,
    pub equivocations: Vec<Vec<Equivocation>>,
    pub searches: Vec<Vec<IndicatorMatch>>,
    pub list: (Vec<ItemId>, bool),
    pub counts: Counts,
    pub item_ids: Vec<ItemId>,
}

pub fn snapshot(
    store: &dyn Store,
    advisories: &[(&str, &str)],
    queries: &[IndicatorQuery],
) -> Snapshot {
    Snapshot {
        latest: advisories
            .iter()
            .map(|(o, i)| latest_id(store, o, i))
            .collect(),
        history: advisories
            .iter()
            .map(|(o, i)| history_ids(store, o, i))
            .collect(),
        equivocations: advisories
            .iter()
            .map(|(o, i)| store.equivocations(o, i).unwrap())
            .collect(),
        searches: queries.iter().map(|q| store.search(q).unwrap()).collect(),
        list: list_ids(
            store,
            &ListFilter {
                include_withdrawn: true,
                ..ListFilter::default()
            },
        ),
        counts: store.counts().unwrap(),
        item_ids: store.item_ids().unwrap(),
    }
}

// ---------------------------------------------------------------------------------------------
// The suite (every backend)
// ---------------------------------------------------------------------------------------------

pub fn put_get_round_trip(store: &dyn Store) {
    assert_eq!(store.counts().unwrap(), Counts::default());
    let item = ws_item("ws-2026-0001", 1);
    assert_eq!(put(store, &item), stored(true, None, false));

    let got = store.get(&item.item_id()).unwrap().unwrap();
    assert_eq!(got.item_id, item.item_id());
    assert_eq!(&got.envelope, item.envelope());
    assert_eq!(got.envelope.encode(), item.envelope().encode());
    assert_eq!(&got.advisory, item.value());
    assert_eq!(got.received_ms, NOW);
    assert_eq!(got.source, "local");

    assert_eq!(latest_id(store, WS, "ws-2026-0001"), Some(item.item_id()));
    assert_eq!(history_ids(store, WS, "ws-2026-0001"), vec![item.item_id()]);
    assert_eq!(store.item_ids().unwrap(), vec![item.item_id()]);
    assert_eq!(store.counts().unwrap(), counts(1, 0, 1, 6, 0));
    assert!(store.equivocations(WS, "ws-2026-0001").unwrap().is_empty());

    // Unknown things are absent, not errors.
    assert!(store.get(&ItemId([0xEE; 32])).unwrap().is_none());
    assert!(store.latest(WS, "ws-2026-9999").unwrap().is_none());
    assert!(store.latest(TO, "ws-2026-0001").unwrap().is_none());
    assert!(store.history(WS, "ws-2026-000").unwrap().is_empty());
    store.sync().unwrap();
}

pub fn duplicate_changes_nothing(store: &dyn Store) {
    let item = ws_item("ws-2026-0001", 1);
    assert_eq!(put(store, &item), stored(true, None, false));
    let before = store.counts().unwrap();
    assert_eq!(
        store.put(&item, "peer-x", NOW + 5).unwrap(),
        PutOutcome::Duplicate
    );
    assert_eq!(store.counts().unwrap(), before);
    let got = store.get(&item.item_id()).unwrap().unwrap();
    assert_eq!(got.source, "local", "the first arrival's bookkeeping stays");
    assert_eq!(got.received_ms, NOW);
    assert_eq!(store.item_ids().unwrap().len(), 1);
}

pub fn supersession_by_revision(store: &dyn Store) {
    let r1 = ws_item("ws-2026-0001", 1);
    let mut a2 = advisory(WS, "ws-2026-0001", 2);
    a2.indicators
        .push(indicator(IndicatorKind::Domain, "r2.apt40.example"));
    let r2 = signed(a2);
    let mut a3 = advisory(WS, "ws-2026-0001", 3);
    a3.indicators = vec![indicator(IndicatorKind::Domain, "r3.apt40.example")];
    let r3 = signed(a3);

    assert_eq!(put(store, &r1), stored(true, None, false));
    assert_eq!(store.counts().unwrap(), counts(1, 0, 1, 6, 0));
    assert_eq!(put(store, &r3), stored(true, Some(r1.item_id()), false));
    assert_eq!(store.counts().unwrap(), counts(1, 0, 2, 1, 0));
    // Older than the latest: stored as history, does not become latest.
    assert_eq!(put(store, &r2), stored(false, None, false));
    assert_eq!(store.counts().unwrap(), counts(1, 0, 3, 1, 0));

    assert_eq!(latest_id(store, WS, "ws-2026-0001"), Some(r3.item_id()));
    assert_eq!(
        history_ids(store, WS, "ws-2026-0001"),
        vec![r1.item_id(), r2.item_id(), r3.item_id()]
    );
    // Only the latest revision's indicators are active.
    assert_eq!(
        store
            .search(&exact(IndicatorKind::Domain, "r3.apt40.example"))
            .unwrap(),
        vec![hit(&r3, 0, MatchKind::Exact)]
    );
    assert!(
        store
            .search(&exact(IndicatorKind::Domain, "r2.apt40.example"))
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .search(&exact(IndicatorKind::Domain, "c2.apt40.example"))
            .unwrap()
            .is_empty()
    );
    // Every revision stays readable.
    for r in [&r1, &r2, &r3] {
        assert_eq!(
            store.get(&r.item_id()).unwrap().unwrap().advisory.revision,
            r.revision
        );
    }
}

pub fn withdrawal_removes_indicators_but_keeps_records(store: &dyn Store) {
    let r1 = ws_item("ws-2026-0001", 1);
    let mut w = withdrawn(advisory(WS, "ws-2026-0001", 2));
    w.indicators.clear();
    let r2 = signed(w);
    let q = exact(IndicatorKind::Domain, "c2.apt40.example");

    put(store, &r1);
    assert_eq!(
        store.search(&q).unwrap(),
        vec![hit(&r1, 4, MatchKind::Exact)]
    );
    assert_eq!(put(store, &r2), stored(true, Some(r1.item_id()), false));
    assert_eq!(store.counts().unwrap(), counts(1, 1, 2, 0, 0));

    assert!(store.search(&q).unwrap().is_empty());
    assert!(store.search(&ip("198.51.100.9")).unwrap().is_empty());
    assert!(store.search(&ip("192.0.2.7")).unwrap().is_empty());
    let latest = store.latest(WS, "ws-2026-0001").unwrap().unwrap();
    assert!(latest.advisory.withdrawn);
    assert_eq!(
        latest.advisory.withdrawn_reason,
        "false positive: sample withdrawn"
    );
    assert!(store.get(&r1.item_id()).unwrap().is_some());
    assert_eq!(
        history_ids(store, WS, "ws-2026-0001"),
        vec![r1.item_id(), r2.item_id()]
    );
    assert_eq!(list_ids(store, &ListFilter::default()), (vec![], false));
    assert_eq!(
        list_ids(
            store,
            &ListFilter {
                include_withdrawn: true,
                ..ListFilter::default()
            }
        ),
        (vec![r2.item_id()], false)
    );

    // A withdrawal that keeps its indicators in the payload still unindexes them.
    let r3w = signed(withdrawn(advisory(WS, "ws-2026-0002", 1)));
    put(store, &r3w);
    assert!(store.search(&q).unwrap().is_empty());
    assert_eq!(store.counts().unwrap(), counts(2, 2, 3, 0, 0));

    // A later revision that is not withdrawn is kept as history but does not re-activate the
    // advisory: withdrawal is forever.
    let r4 = ws_item("ws-2026-0001", 3);
    assert_eq!(put(store, &r4), stored(false, None, false));
    assert!(store.search(&q).unwrap().is_empty());
    assert_eq!(latest_id(store, WS, "ws-2026-0001"), Some(r2.item_id()));
    assert_eq!(
        history_ids(store, WS, "ws-2026-0001"),
        vec![r1.item_id(), r2.item_id(), r4.item_id()]
    );
    assert_eq!(store.counts().unwrap(), counts(2, 2, 4, 0, 0));
}

/// Withdrawal is forever: once any withdrawn revision of an advisory is held, the advisory is
/// withdrawn whatever the order in which its revisions arrived (a revision after the tombstone,
/// an equivocating pair after it, a tombstone older than the active latest). Every arrival
/// order of four items is played, each on its own advisory id.
pub fn withdrawal_is_forever_whatever_the_arrival_order(store: &dyn Store) {
    let q = exact(IndicatorKind::Domain, "c2.apt40.example");
    let mut n = 0u32;
    let orders = permutations(4);
    for order in &orders {
        n += 1;
        let id = format!("ws-2026-{n:04}");
        let r1 = ws_item(&id, 1);
        let r2 = signed(withdrawn(advisory(WS, &id, 2)));
        let r3 = ws_item(&id, 3);
        let mut v = advisory(WS, &id, 3);
        v.title = "APT40 resurrected".to_string();
        let r3v = signed(v);
        let items = [&r1, &r2, &r3, &r3v];
        let mut tomb_held = false;
        for &k in order {
            put(store, items[k]);
            tomb_held |= k == 1;
            if tomb_held {
                assert_eq!(
                    latest_id(store, WS, &id),
                    Some(r2.item_id()),
                    "order {order:?}"
                );
            }
        }
        let latest = store.latest(WS, &id).unwrap().unwrap();
        assert!(latest.advisory.withdrawn, "order {order:?}");
        assert_eq!(latest.item_id, r2.item_id(), "order {order:?}");
        assert!(store.search(&q).unwrap().is_empty(), "order {order:?}");
        assert!(
            store.search(&ip("192.0.2.7")).unwrap().is_empty(),
            "order {order:?}"
        );
        assert_eq!(history_ids(store, WS, &id).len(), 4, "order {order:?}");
        let eq = store.equivocations(WS, &id).unwrap();
        assert_eq!(eq.len(), 1, "order {order:?}");
        assert_eq!(eq[0].revision, 3);
        assert_eq!(eq[0].chosen, r3.item_id().min(r3v.item_id()));
    }
    let n = u64::from(n);
    assert_eq!(store.counts().unwrap(), counts(n, n, 4 * n, 0, n));
    assert_eq!(list_ids(store, &ListFilter::default()), (vec![], false));
}

// ---------------------------------------------------------------------------------------------
// Dropping items (a revocation's purge)
// ---------------------------------------------------------------------------------------------

fn drop_ids(store: &dyn Store, items: &[&Verified<Advisory>]) -> Vec<ItemId> {
    let ids: Vec<ItemId> = items.iter().map(|i| i.item_id()).collect();
    store
        .drop_items(&ids)
        .unwrap()
        .into_iter()
        .map(|d| d.item_id)
        .collect()
}

/// Dropping the latest revision makes the previous one latest again: its indicators, CVE and
/// actor entries are searchable, it is listed at its own `modified` time, and the counters
/// follow; the dropped item is gone from get, history and item ids; a second drop is a no-op.
pub fn drop_latest_restores_the_previous_revision(store: &dyn Store) {
    let mut a1 = advisory(WS, "ws-2026-0001", 1);
    a1.cves = vec!["CVE-2017-11882".to_string()];
    let r1 = signed(a1);
    let mut a2 = advisory(WS, "ws-2026-0001", 2);
    a2.indicators = vec![indicator(IndicatorKind::Domain, "r2.apt40.example")];
    a2.actors = vec!["Kryptonite Panda".to_string()];
    let r2 = signed(a2);
    let other = ws_item("ws-2026-0002", 1);
    put(store, &r1);
    put(store, &r2);
    put(store, &other);
    assert_eq!(store.counts().unwrap(), counts(2, 0, 3, 7, 0));
    let gen0 = store.drop_generation();

    let dropped = store.drop_items(&[r2.item_id()]).unwrap();
    assert_eq!(
        dropped,
        vec![super::DroppedItem {
            item_id: r2.item_id(),
            origin: WS.to_string(),
            advisory_id: "ws-2026-0001".to_string(),
            revision: 2,
            modified_ms: r2.modified_ms,
            withdrawn: false,
            key_id: ws_identity().key_id().to_string(),
            was_latest: true,
            latest_now: Some(r1.item_id()),
        }]
    );
    assert!(store.drop_generation() > gen0);
    assert!(store.get(&r2.item_id()).unwrap().is_none());
    assert_eq!(latest_id(store, WS, "ws-2026-0001"), Some(r1.item_id()));
    assert_eq!(history_ids(store, WS, "ws-2026-0001"), vec![r1.item_id()]);
    assert_eq!(store.counts().unwrap(), counts(2, 0, 2, 12, 0));
    let mut ids = vec![r1.item_id(), other.item_id()];
    ids.sort();
    assert_eq!(store.item_ids().unwrap(), ids);
    assert!(
        store
            .search(&exact(IndicatorKind::Domain, "r2.apt40.example"))
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .search(&IndicatorQuery::Actor("kryptonite panda".into()))
            .unwrap()
            .is_empty()
    );
    let hits = store.search(&ip("192.0.2.7")).unwrap();
    assert!(hits.contains(&hit(&r1, 0, MatchKind::Exact)), "{hits:?}");
    assert_eq!(
        store
            .search(&exact(IndicatorKind::Cve, "CVE-2017-11882"))
            .unwrap(),
        vec![hit(&r1, 0, MatchKind::CveList)]
    );
    assert!(
        store
            .search(&IndicatorQuery::Actor("apt40".into()))
            .unwrap()
            .contains(&hit(&r1, 0, MatchKind::ActorList))
    );
    // Listed once, at r1's time (newest first: `other`'s r1 has the same modified time).
    let (listed, _) = list_ids(store, &ListFilter::default());
    assert_eq!(listed.len(), 2);
    assert!(listed.contains(&r1.item_id()));
    let (since, _) = list_ids(
        store,
        &ListFilter {
            since_ms: Some(r2.modified_ms),
            ..ListFilter::default()
        },
    );
    assert!(since.is_empty(), "r2's time is no longer listed: {since:?}");

    // Idempotent.
    let gen1 = store.drop_generation();
    assert!(store.drop_items(&[r2.item_id()]).unwrap().is_empty());
    assert_eq!(store.drop_generation(), gen1);
    assert_eq!(store.counts().unwrap(), counts(2, 0, 2, 12, 0));
    store.sync().unwrap();
}

/// Dropping a revision that is not the latest changes only the history and the item count.
pub fn drop_history_revision_keeps_the_latest(store: &dyn Store) {
    let r1 = ws_item("ws-2026-0001", 1);
    let r2 = ws_item("ws-2026-0001", 2);
    let mut a3 = advisory(WS, "ws-2026-0001", 3);
    a3.indicators = vec![indicator(IndicatorKind::Domain, "r3.apt40.example")];
    let r3 = signed(a3);
    for r in [&r1, &r2, &r3] {
        put(store, r);
    }
    let before = store
        .search(&exact(IndicatorKind::Domain, "r3.apt40.example"))
        .unwrap();
    assert_eq!(before, vec![hit(&r3, 0, MatchKind::Exact)]);
    let d = store.drop_items(&[r2.item_id()]).unwrap();
    assert_eq!(d.len(), 1);
    assert!(!d[0].was_latest);
    assert_eq!(d[0].latest_now, Some(r3.item_id()));
    assert_eq!(latest_id(store, WS, "ws-2026-0001"), Some(r3.item_id()));
    assert_eq!(
        history_ids(store, WS, "ws-2026-0001"),
        vec![r1.item_id(), r3.item_id()]
    );
    assert_eq!(
        store
            .search(&exact(IndicatorKind::Domain, "r3.apt40.example"))
            .unwrap(),
        before
    );
    assert_eq!(store.counts().unwrap(), counts(1, 0, 2, 1, 0));
}

/// Dropping every item of an advisory removes the advisory (latest, list, search, counters),
/// and leaves the other advisories alone.
pub fn drop_everything_of_an_advisory(store: &dyn Store) {
    let r1 = ws_item("ws-2026-0001", 1);
    let w2 = signed(withdrawn(advisory(WS, "ws-2026-0001", 2)));
    let mut o = advisory(TO, "to-2026-0001", 1);
    o.indicators = vec![indicator(IndicatorKind::Domain, "to.apt40.example")];
    let other = signed(o);
    for r in [&r1, &w2, &other] {
        put(store, r);
    }
    assert_eq!(store.counts().unwrap(), counts(2, 1, 3, 1, 0));
    // Given twice and with an unknown id: each held item is dropped once.
    let got = drop_ids(
        store,
        &[&w2, &r1, &w2, &signed(advisory(WS, "ws-2026-0009", 1))],
    );
    assert_eq!(got, vec![w2.item_id(), r1.item_id()]);
    assert!(store.latest(WS, "ws-2026-0001").unwrap().is_none());
    assert!(history_ids(store, WS, "ws-2026-0001").is_empty());
    assert_eq!(store.counts().unwrap(), counts(1, 0, 1, 1, 0));
    assert_eq!(
        list_ids(
            store,
            &ListFilter {
                include_withdrawn: true,
                ..ListFilter::default()
            }
        ),
        (vec![other.item_id()], false)
    );
    assert!(store.search(&ip("192.0.2.7")).unwrap().is_empty());
    assert_eq!(
        store
            .search(&exact(IndicatorKind::Domain, "to.apt40.example"))
            .unwrap(),
        vec![hit(&other, 0, MatchKind::Exact)]
    );
    let mut seen = Vec::new();
    store
        .scan_latest(None, true, &mut |it| {
            seen.push(it.item_id);
            Ok(true)
        })
        .unwrap();
    assert_eq!(seen, vec![other.item_id()]);
    assert_eq!(store.item_ids().unwrap(), vec![other.item_id()]);
}

/// A dropped withdrawal is void: the best remaining revision becomes latest again (a revision
/// stored after the tombstone included), its indicators active, the counters follow.
pub fn drop_tombstone_reactivates_the_best_remaining_revision(store: &dyn Store) {
    let q = exact(IndicatorKind::Domain, "c2.apt40.example");
    let r1 = ws_item("ws-2026-0001", 1);
    let w2 = signed(withdrawn(advisory(WS, "ws-2026-0001", 2)));
    put(store, &r1);
    put(store, &w2);
    assert!(store.search(&q).unwrap().is_empty());
    assert_eq!(store.counts().unwrap(), counts(1, 1, 2, 0, 0));
    let d = store.drop_items(&[w2.item_id()]).unwrap();
    assert!(d[0].withdrawn && d[0].was_latest);
    assert_eq!(latest_id(store, WS, "ws-2026-0001"), Some(r1.item_id()));
    assert!(
        !store
            .latest(WS, "ws-2026-0001")
            .unwrap()
            .unwrap()
            .advisory
            .withdrawn
    );
    assert_eq!(
        store.search(&q).unwrap(),
        vec![hit(&r1, 4, MatchKind::Exact)]
    );
    assert_eq!(store.counts().unwrap(), counts(1, 0, 1, 6, 0));
    assert_eq!(
        list_ids(store, &ListFilter::default()),
        (vec![r1.item_id()], false)
    );

    // A revision held after the tombstone (history while withdrawn) becomes latest.
    let r1b = ws_item("ws-2026-0002", 1);
    let w2b = signed(withdrawn(advisory(WS, "ws-2026-0002", 2)));
    let r3b = ws_item("ws-2026-0002", 3);
    for r in [&r1b, &w2b, &r3b] {
        put(store, r);
    }
    assert_eq!(latest_id(store, WS, "ws-2026-0002"), Some(w2b.item_id()));
    drop_ids(store, &[&w2b]);
    assert_eq!(latest_id(store, WS, "ws-2026-0002"), Some(r3b.item_id()));
    assert_eq!(store.counts().unwrap(), counts(2, 0, 3, 12, 0));
}

/// Equivocation evidence names only the items still held: dropping one of two variants
/// removes the evidence (and its count), dropping one of three keeps it for the other two.
pub fn drop_updates_equivocation_evidence(store: &dyn Store) {
    let variant = |n: u32| {
        let mut a = advisory(WS, "ws-2026-0001", 2);
        a.title = format!("APT40 variant {n}");
        signed(a)
    };
    let (a, b, c) = (variant(0), variant(1), variant(2));
    for r in [&a, &b, &c] {
        put(store, r);
    }
    assert_eq!(store.counts().unwrap().equivocations, 1);
    let mut ids = [a.item_id(), b.item_id(), c.item_id()];
    ids.sort();
    // Drop the chosen (lowest) one: the next lowest is chosen and latest.
    store.drop_items(&[ids[0]]).unwrap();
    let eq = store.equivocations(WS, "ws-2026-0001").unwrap();
    assert_eq!(eq.len(), 1);
    assert_eq!(eq[0].item_ids, ids[1..].to_vec());
    assert_eq!(eq[0].chosen, ids[1]);
    assert_eq!(latest_id(store, WS, "ws-2026-0001"), Some(ids[1]));
    store.drop_items(&[ids[2]]).unwrap();
    assert!(store.equivocations(WS, "ws-2026-0001").unwrap().is_empty());
    assert_eq!(store.counts().unwrap(), counts(1, 0, 1, 6, 0));
    assert!(store.equivocating_origins().unwrap().is_empty());
}

/// The state after a drop does not depend on the order the items arrived in, nor on the order
/// of the ids given: every arrival order of four items (a revision, a tombstone, two
/// equivocating later revisions) is played, then the tombstone and one variant are dropped;
/// each store then equals a store that was only ever given the two remaining items.
pub fn drop_is_the_same_whatever_the_arrival_order(store: &dyn Store) {
    let mut n = 0u32;
    let mut advs = Vec::new();
    let reference = MemoryStore::new();
    for order in &permutations(4) {
        n += 1;
        let id = format!("ws-2026-{n:04}");
        let r1 = ws_item(&id, 1);
        let w2 = signed(withdrawn(advisory(WS, &id, 2)));
        let r3 = ws_item(&id, 3);
        let mut v = advisory(WS, &id, 3);
        v.title = "APT40 resurrected".to_string();
        let r3v = signed(v);
        let items = [&r1, &w2, &r3, &r3v];
        for &k in order {
            put(store, items[k]);
        }
        let drop_order: Vec<ItemId> = if n.is_multiple_of(2) {
            vec![w2.item_id(), r3v.item_id()]
        } else {
            vec![r3v.item_id(), w2.item_id()]
        };
        assert_eq!(store.drop_items(&drop_order).unwrap().len(), 2);
        assert_eq!(
            latest_id(store, WS, &id),
            Some(r3.item_id()),
            "order {order:?}"
        );
        put(&reference, &r1);
        put(&reference, &r3);
        advs.push(id);
    }
    let advs: Vec<(&str, &str)> = advs.iter().map(|a| (WS, a.as_str())).collect();
    let queries = pool_queries();
    assert_eq!(
        snapshot(store, &advs, &queries),
        snapshot(&reference, &advs, &queries)
    );
    let n = u64::from(n);
    assert_eq!(store.counts().unwrap(), counts(n, 0, 2 * n, 6 * n, 0));
}

/// Every permutation of `0..n`.
pub fn permutations(n: usize) -> Vec<Vec<usize>> {
    if n == 0 {
        return vec![Vec::new()];
    }
    let mut out = Vec::new();
    for p in permutations(n - 1) {
        for pos in 0..=p.len() {
            let mut q = p.clone();
            q.insert(pos, n - 1);
            out.push(q);
        }
    }
    out
}

/// The advisories' CVE and actor lists are searchable, and supersession and withdrawal remove
/// them exactly as they remove indicators (issue 10 #11).
pub fn cve_and_actor_lists_are_searched_and_follow_the_latest_revision(store: &dyn Store) {
    let cve = exact(IndicatorKind::Cve, "cve-2017-11882");
    let actor = IndicatorQuery::Actor(" apt40 ".to_string());
    let mut a = advisory(WS, "ws-2026-0001", 1);
    a.cves = vec!["CVE-2017-11882".to_string()];
    let r1 = signed(a);
    put(store, &r1);
    assert_eq!(
        store.search(&cve).unwrap(),
        vec![hit(&r1, 0, MatchKind::CveList)]
    );
    assert_eq!(
        store.search(&actor).unwrap(),
        vec![hit(&r1, 0, MatchKind::ActorList)]
    );
    // List entries are not indicators.
    assert_eq!(store.counts().unwrap(), counts(1, 0, 1, 6, 0));

    // A CVE that is also an indicator: the indicator first, then the list entry.
    let mut b = advisory(TO, "to-2026-0001", 1);
    b.cves = vec!["CVE-2017-11882".to_string()];
    b.indicators = vec![indicator(IndicatorKind::Cve, "CVE-2017-11882")];
    b.actors = vec!["Leviathan".to_string()];
    let t1 = signed(b);
    put(store, &t1);
    let hits = store.search(&cve).unwrap();
    assert_eq!(hits.len(), 3, "{hits:?}");
    assert_eq!(hits[0], hit(&t1, 0, MatchKind::Exact));
    let mut lists = [
        hit(&r1, 0, MatchKind::CveList),
        hit(&t1, 0, MatchKind::CveList),
    ];
    lists.sort_by_key(|h| h.item_id);
    assert_eq!(hits[1..], lists[..]);

    // Superseded: the new revision's lists replace the old ones.
    let mut a2 = advisory(WS, "ws-2026-0001", 2);
    a2.actors = vec!["Leviathan".to_string(), "APT40".to_string()];
    let r2 = signed(a2);
    put(store, &r2);
    assert_eq!(
        store.search(&cve).unwrap(),
        vec![
            hit(&t1, 0, MatchKind::Exact),
            hit(&t1, 0, MatchKind::CveList)
        ]
    );
    assert_eq!(
        store.search(&actor).unwrap(),
        vec![hit(&r2, 1, MatchKind::ActorList)]
    );

    // Withdrawn: every list entry goes, like the indicators.
    let mut w = withdrawn(advisory(WS, "ws-2026-0001", 3));
    w.actors = vec!["APT40".to_string()];
    put(store, &signed(w));
    put(store, &signed(withdrawn(advisory(TO, "to-2026-0001", 2))));
    assert!(store.search(&cve).unwrap().is_empty());
    assert!(store.search(&actor).unwrap().is_empty());
    assert!(
        store
            .search(&IndicatorQuery::Actor("leviathan".into()))
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.counts().unwrap(), counts(2, 2, 5, 0, 0));
}

pub fn equivocation_recorded_and_resolved_to_lowest(store: &dyn Store) {
    let mut variants: Vec<Verified<Advisory>> = (0..3)
        .map(|n| {
            let mut a = advisory(WS, "ws-2026-0001", 2);
            a.title = format!("APT40 variant {n}");
            a.indicators = vec![indicator(
                IndicatorKind::Domain,
                &format!("v{n}.apt40.example"),
            )];
            signed(a)
        })
        .collect();
    let r1 = ws_item("ws-2026-0001", 1);
    put(store, &r1);
    // Arrival: highest item id first, so each later one replaces the previous choice.
    variants.sort_by_key(|v| std::cmp::Reverse(v.item_id()));
    let [hi, mid, lo] = [&variants[0], &variants[1], &variants[2]];

    assert_eq!(put(store, hi), stored(true, Some(r1.item_id()), false));
    assert_eq!(store.counts().unwrap(), counts(1, 0, 2, 1, 0));
    assert_eq!(
        store.put(mid, "peer-a", NOW + 10).unwrap(),
        stored(true, Some(hi.item_id()), true)
    );
    assert_eq!(store.counts().unwrap(), counts(1, 0, 3, 1, 1));
    assert_eq!(
        store.put(lo, "peer-b", NOW + 20).unwrap(),
        stored(true, Some(mid.item_id()), true)
    );
    assert_eq!(store.counts().unwrap(), counts(1, 0, 4, 1, 1));

    let mut ids = vec![hi.item_id(), mid.item_id(), lo.item_id()];
    ids.sort();
    assert_eq!(
        store.equivocations(WS, "ws-2026-0001").unwrap(),
        vec![Equivocation {
            origin: WS.to_string(),
            advisory_id: "ws-2026-0001".to_string(),
            revision: 2,
            chosen: ids[0],
            item_ids: ids.clone(),
            detected_ms: NOW + 10,
        }]
    );
    assert_eq!(lo.item_id(), ids[0]);
    assert_eq!(latest_id(store, WS, "ws-2026-0001"), Some(lo.item_id()));
    let lo_domain = &lo.indicators[0].value;
    assert_eq!(
        store
            .search(&exact(IndicatorKind::Domain, lo_domain))
            .unwrap(),
        vec![hit(lo, 0, MatchKind::Exact)]
    );
    for v in [hi, mid] {
        assert!(
            store
                .search(&exact(IndicatorKind::Domain, &v.indicators[0].value))
                .unwrap()
                .is_empty()
        );
    }
    // A higher variant arriving after the lowest: evidence grows, choice stays.
    let mut a = advisory(WS, "ws-2026-0001", 2);
    a.title = "APT40 variant 3".to_string();
    let v3 = signed(a);
    let out = store.put(&v3, "peer-c", NOW + 30).unwrap();
    let expect_latest = v3.item_id() < lo.item_id();
    assert_eq!(
        out,
        stored(expect_latest, expect_latest.then(|| lo.item_id()), true)
    );
    let eq = store.equivocations(WS, "ws-2026-0001").unwrap();
    assert_eq!(eq.len(), 1);
    assert_eq!(eq[0].item_ids.len(), 4);
    assert!(eq[0].item_ids.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(eq[0].chosen, eq[0].item_ids[0]);
    assert_eq!(eq[0].detected_ms, NOW + 10, "first detection time is kept");
    assert_eq!(store.counts().unwrap().equivocations, 1);
    // Equivocation of an older revision is recorded too, without changing the latest.
    let mut old = advisory(WS, "ws-2026-0001", 1);
    old.title = "APT40 rewritten history".to_string();
    let old = signed(old);
    let out = put(store, &old);
    assert_eq!(out, stored(false, None, true));
    let eq = store.equivocations(WS, "ws-2026-0001").unwrap();
    assert_eq!(
        eq.iter().map(|e| e.revision).collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert_eq!(store.counts().unwrap().equivocations, 2);
    assert_eq!(latest_id(store, WS, "ws-2026-0001"), Some(eq[1].chosen));
    assert_eq!(
        store.equivocating_origins().unwrap(),
        vec![OriginEquivocations {
            origin: WS.to_string(),
            revisions: 2,
            last_detected_ms: NOW + 10,
        }]
    );
    // Across TLP levels (issue 10 #3): to-cert signs revision 1 as GREEN and as AMBER; holding
    // both is equivocation whatever their TLP, flagged per origin.
    let green = signed(advisory(TO, "to-2026-0007", 1));
    let mut a = amber(advisory(TO, "to-2026-0007", 1));
    a.title = "APT40 activity, the audience's version".to_string();
    let amber_twin = signed(a);
    assert_eq!(put(store, &green), stored(true, None, false));
    assert_eq!(
        store.put(&amber_twin, "peer-a", NOW + 40).unwrap(),
        stored(
            amber_twin.item_id() < green.item_id(),
            (amber_twin.item_id() < green.item_id()).then(|| green.item_id()),
            true
        )
    );
    let per_origin = store.equivocating_origins().unwrap();
    assert_eq!(
        per_origin
            .iter()
            .map(|o| (o.origin.as_str(), o.revisions))
            .collect::<Vec<_>>(),
        vec![(TO, 1), (WS, 2)]
    );
    assert_eq!(per_origin[0].last_detected_ms, NOW + 40);
}

/// Roster items (GREEN, id prefix `tanoa-roster.`) are stored and found by id and by
/// `scan_latest`, but `list` (every order, every page) and `search` never return them.
pub fn roster_items_are_not_listed_or_searched(store: &dyn Store) {
    let mut carrier = advisory(WS, "tanoa-roster.version.0001", 1);
    carrier.title = "APT40 roster carrier".to_string();
    let carrier = signed(carrier);
    let plain = signed(advisory(WS, "ws-2026-0001", 2));
    let late = signed(advisory(TO, "to-2026-0001", 3));
    for i in [&carrier, &plain, &late] {
        put(store, i);
    }
    assert_eq!(
        latest_id(store, WS, "tanoa-roster.version.0001"),
        Some(carrier.item_id())
    );
    let mut scanned = Vec::new();
    store
        .scan_latest(None, true, &mut |it| {
            scanned.push(it.item_id);
            Ok(true)
        })
        .unwrap();
    assert!(scanned.contains(&carrier.item_id()));
    for order in [ListOrder::NewestFirst, ListOrder::AdvisoryKey] {
        let all = ListFilter {
            order,
            include_withdrawn: true,
            ..ListFilter::default()
        };
        let (ids, more) = list_ids(store, &all);
        assert!(!more);
        assert_eq!(ids.len(), 2, "{order:?}");
        assert!(!ids.contains(&carrier.item_id()), "{order:?}");
        let text = ListFilter {
            text: Some("apt40".into()),
            origin: Some(WS.into()),
            ..all.clone()
        };
        assert_eq!(list_ids(store, &text).0, vec![plain.item_id()], "{order:?}");
        // Page by page, one at a time: still never the carrier, nothing skipped.
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let (page, more) = store
                .list(&ListFilter {
                    limit: 1,
                    after: after.clone(),
                    ..all.clone()
                })
                .unwrap();
            if let Some(last) = page.last() {
                after = Some(super::list_cursor(order, last));
            }
            seen.extend(page.iter().map(|s| s.item_id));
            if !more {
                break;
            }
        }
        seen.sort();
        let mut want = vec![plain.item_id(), late.item_id()];
        want.sort();
        assert_eq!(seen, want, "{order:?}");
    }
    let hits = store.search(&ip("192.0.2.7")).unwrap();
    assert!(!hits.is_empty());
    assert!(
        hits.iter().all(|h| h.item_id != carrier.item_id()),
        "{hits:?}"
    );
    let actor = store
        .search(&IndicatorQuery::Actor("APT40".into()))
        .unwrap();
    assert!(actor.iter().all(|h| h.item_id != carrier.item_id()));
}

pub fn list_filters(store: &dyn Store) {
    // Modified times: a=T0+1s, b=T0+2s, c=T0+3s, d=T0+4s (withdrawn), e=T0+5s (other origin).
    let a = signed(advisory(WS, "ws-2026-0001", 1));
    let mut b = amber(advisory(WS, "ws-2026-0002", 2));
    b.title = "Phishing wave against ministries".to_string();
    let b = signed(b);
    let mut c = advisory(WS, "ws-2026-0003", 3);
    c.title = "Second apt40 campaign".to_string();
    let c = signed(c);
    let d = signed(withdrawn(advisory(WS, "ws-2026-0004", 4)));
    let e = signed(advisory(TO, "to-2026-0001", 5));
    for i in [&a, &b, &c, &d, &e] {
        put(store, i);
    }
    assert_eq!(store.counts().unwrap(), counts(5, 1, 5, 24, 0));
    let f = |f: ListFilter| list_ids(store, &f);
    let all = ListFilter::default();

    assert_eq!(
        f(all.clone()),
        (
            vec![e.item_id(), c.item_id(), b.item_id(), a.item_id()],
            false
        )
    );
    assert_eq!(
        f(ListFilter {
            include_withdrawn: true,
            ..all.clone()
        }),
        (
            vec![
                e.item_id(),
                d.item_id(),
                c.item_id(),
                b.item_id(),
                a.item_id()
            ],
            false
        )
    );
    assert_eq!(
        f(ListFilter {
            origin: Some(TO.to_string()),
            ..all.clone()
        }),
        (vec![e.item_id()], false)
    );
    assert_eq!(
        f(ListFilter {
            origin: Some("ws-cer".to_string()),
            ..all.clone()
        }),
        (vec![], false),
        "origin is matched exactly, not as a prefix"
    );
    assert_eq!(
        f(ListFilter {
            tlp: Some(Tlp::Amber),
            ..all.clone()
        }),
        (vec![b.item_id()], false)
    );
    assert_eq!(
        f(ListFilter {
            since_ms: Some(T0 + 3_000),
            ..all.clone()
        }),
        (vec![e.item_id(), c.item_id()], false)
    );
    assert_eq!(
        f(ListFilter {
            text: Some("APT40".to_string()),
            ..all.clone()
        }),
        (vec![e.item_id(), c.item_id(), a.item_id()], false)
    );
    assert_eq!(
        f(ListFilter {
            text: Some("pHiShInG".to_string()),
            ..all.clone()
        }),
        (vec![b.item_id()], false)
    );
    assert_eq!(
        f(ListFilter {
            limit: 2,
            ..all.clone()
        }),
        (vec![e.item_id(), c.item_id()], true)
    );
    assert_eq!(
        f(ListFilter {
            limit: 4,
            ..all.clone()
        }),
        (
            vec![e.item_id(), c.item_id(), b.item_id(), a.item_id()],
            false
        )
    );
    assert_eq!(
        f(ListFilter {
            origin: Some(WS.to_string()),
            text: Some("apt40".to_string()),
            include_withdrawn: true,
            limit: 1,
            ..all.clone()
        }),
        (vec![d.item_id()], true)
    );
    // A superseded revision leaves the list; its successor appears at its own time.
    let a2 = signed(advisory(WS, "ws-2026-0001", 9));
    put(store, &a2);
    assert_eq!(
        f(all),
        (
            vec![a2.item_id(), e.item_id(), c.item_id(), b.item_id()],
            false
        )
    );
}

/// Every page of `filter` (page size `size`), resumed from the last item's cursor, until a
/// page is not truncated; `between` runs after each page (concurrent writes).
pub fn pages(
    store: &dyn Store,
    filter: &ListFilter,
    size: usize,
    between: &mut dyn FnMut(usize),
) -> Vec<StoredItem> {
    let mut out = Vec::new();
    let mut after = None;
    for page in 0.. {
        let (items, truncated) = store
            .list(&ListFilter {
                limit: size,
                after: after.clone(),
                ..filter.clone()
            })
            .unwrap();
        assert!(items.len() <= size, "a page holds at most its size");
        if let Some(last) = items.last() {
            after = Some(list_cursor(filter.order, last));
        }
        out.extend(items);
        between(page);
        if !truncated {
            break;
        }
        assert!(page < 1_000, "paging does not end");
    }
    out
}

pub fn list_pages_return_every_advisory_exactly_once(store: &dyn Store) {
    // 23 advisories of two origins; revisions 1..=3 repeat, so many share a modified time
    // (ties are ordered by origin, id); every fifth is withdrawn.
    for n in 0..23u64 {
        let origin = if n % 3 == 0 { TO } else { WS };
        let a = advisory(origin, &format!("{origin}-2026-{n:04}"), 1 + n % 3);
        put(store, &signed(if n % 5 == 4 { withdrawn(a) } else { a }));
    }
    let ids = |v: &[StoredItem]| v.iter().map(|s| s.item_id).collect::<Vec<_>>();
    for order in [ListOrder::NewestFirst, ListOrder::AdvisoryKey] {
        for (include_withdrawn, origin) in [(false, None), (true, None), (true, Some(WS))] {
            let filter = ListFilter {
                order,
                include_withdrawn,
                origin: origin.map(str::to_string),
                ..ListFilter::default()
            };
            let (whole, truncated) = store.list(&filter).unwrap();
            assert!(!truncated);
            let expected = match (include_withdrawn, origin) {
                (false, _) => 19,
                (true, None) => 23,
                (true, Some(_)) => 15,
            };
            assert_eq!(whole.len(), expected, "{filter:?}");
            for size in [1, 2, 3, 7, expected, 100] {
                let paged = pages(store, &filter, size, &mut |_| {});
                assert_eq!(ids(&paged), ids(&whole), "{order:?} pages of {size}");
            }
        }
    }
    // By advisory key, paging is stable under concurrent writes: an advisory revised while
    // pages are read is returned once (at its new revision if its page comes later), one
    // created after the cursor appears, one created before it does not.
    let filter = ListFilter {
        order: ListOrder::AdvisoryKey,
        ..ListFilter::default()
    };
    let before = store.list(&filter).unwrap().0;
    let last_key = |s: &StoredItem| (s.advisory.origin.clone(), s.advisory.id.clone());
    let late = before[before.len() - 2].advisory.clone();
    let early = before[0].advisory.clone();
    let revised_late = signed(advisory(&late.origin, &late.id, late.revision + 10));
    let revised_early = signed(advisory(&early.origin, &early.id, early.revision + 10));
    let new_after = signed(advisory(WS, "ws-2026-9999", 1));
    let new_before = signed(advisory(TO, "to-2026-0000a", 1));
    let paged = pages(store, &filter, 4, &mut |page| {
        if page == 0 {
            for i in [&revised_late, &revised_early, &new_after, &new_before] {
                put(store, i);
            }
        }
    });
    let keys: Vec<_> = paged.iter().map(last_key).collect();
    let mut unique = keys.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), keys.len(), "no advisory twice");
    assert_eq!(
        paged.len(),
        before.len() + 1,
        "every advisory, plus the one after"
    );
    assert!(before.iter().all(|b| keys.contains(&last_key(b))));
    assert!(paged.iter().any(|s| s.item_id == revised_late.item_id()));
    assert!(paged.iter().any(|s| s.item_id == new_after.item_id()));
    assert!(!paged.iter().any(|s| s.item_id == new_before.item_id()));
    assert!(
        paged
            .iter()
            .any(|s| s.advisory.id == early.id && s.advisory.revision == early.revision),
        "the first page had the earlier revision"
    );
}

pub fn search_exact_per_kind(store: &dyn Store) {
    let mut a = advisory(WS, "ws-2026-0001", 1);
    a.indicators.extend([
        indicator(IndicatorKind::Url, "https://login.portal.example/owa"),
        indicator(IndicatorKind::Email, "helpdesk@portal.example"),
        indicator(IndicatorKind::Md5, "0123456789abcdef0123456789abcdef"),
        indicator(IndicatorKind::Filename, "agenda.docx.lnk"),
        indicator(IndicatorKind::Asn, "as64500"),
    ]);
    let item = signed(a);
    // A second advisory sharing one value: both are found.
    let other = ws_item("ws-2026-0002", 1);
    put(store, &item);
    put(store, &other);
    for (n, ind) in item.indicators.iter().enumerate() {
        let mut expected = vec![hit(&item, n as u32, MatchKind::Exact)];
        if n < 6 {
            expected.push(hit(&other, n as u32, MatchKind::Exact));
            expected.sort_by_key(|m| m.item_id);
        }
        assert_eq!(
            store.search(&exact(ind.kind, &ind.value)).unwrap(),
            expected,
            "{:?} {}",
            ind.kind,
            ind.value
        );
    }
    // Same value, other kind: no match. Unknown value: no match.
    assert!(
        store
            .search(&exact(IndicatorKind::Domain, "192.0.2.7"))
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .search(&exact(IndicatorKind::Domain, "c2.apt40.example.org"))
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .search(&exact(IndicatorKind::Domain, "c2.apt40.exampl"))
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.counts().unwrap(), counts(2, 0, 2, 17, 0));
}

pub fn search_ip_inside_cidr(store: &dyn Store) {
    let base = ws_item("ws-2026-0001", 1); // 192.0.2.7, 198.51.100.0/24, 2001:db8::1, 2001:db8::/32
    let mut narrow = advisory(WS, "ws-2026-0002", 1);
    narrow.indicators = vec![
        indicator(IndicatorKind::Cidr, "198.51.100.128/25"),
        indicator(IndicatorKind::Cidr, "2001:db8:1::/48"),
        indicator(IndicatorKind::Cidr, "192.0.2.7/32"),
    ];
    let narrow = signed(narrow);
    put(store, &base);
    put(store, &narrow);

    // IPv4: exact address and the /32 CIDR.
    assert_eq!(
        store.search(&ip("192.0.2.7")).unwrap(),
        vec![
            hit(&base, 0, MatchKind::Exact),
            hit(&narrow, 2, MatchKind::Cidr)
        ]
    );
    // IPv4 inside nested CIDRs, most specific first.
    assert_eq!(
        store.search(&ip("198.51.100.200")).unwrap(),
        vec![
            hit(&narrow, 0, MatchKind::Cidr),
            hit(&base, 1, MatchKind::Cidr)
        ]
    );
    assert_eq!(
        store.search(&ip("198.51.100.5")).unwrap(),
        vec![hit(&base, 1, MatchKind::Cidr)]
    );
    // Outside every CIDR.
    assert!(store.search(&ip("203.0.113.9")).unwrap().is_empty());
    assert!(store.search(&ip("192.0.2.8")).unwrap().is_empty());
    // IPv6.
    assert_eq!(
        store.search(&ip("2001:db8::1")).unwrap(),
        vec![
            hit(&base, 2, MatchKind::Exact),
            hit(&base, 3, MatchKind::Cidr)
        ]
    );
    assert_eq!(
        store.search(&ip("2001:db8:1::5")).unwrap(),
        vec![
            hit(&narrow, 1, MatchKind::Cidr),
            hit(&base, 3, MatchKind::Cidr)
        ]
    );
    assert_eq!(
        store.search(&ip("2001:db8:2::1")).unwrap(),
        vec![hit(&base, 3, MatchKind::Cidr)]
    );
    // An IPv4 query never matches IPv6 networks and vice versa.
    assert!(store.search(&ip("::1")).unwrap().is_empty());
    // Exact CIDR lookups.
    assert_eq!(
        store
            .search(&exact(IndicatorKind::Cidr, "198.51.100.0/24"))
            .unwrap(),
        vec![hit(&base, 1, MatchKind::Exact)]
    );
    assert_eq!(
        store
            .search(&exact(IndicatorKind::Cidr, "2001:db8::/32"))
            .unwrap(),
        vec![hit(&base, 3, MatchKind::Exact)]
    );
    assert!(
        store
            .search(&exact(IndicatorKind::Cidr, "198.51.100.0/23"))
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.counts().unwrap(), counts(2, 0, 2, 9, 0));

    // When the narrow advisory is superseded by one without CIDRs, containment follows.
    let mut n2 = advisory(WS, "ws-2026-0002", 2);
    n2.indicators = vec![indicator(IndicatorKind::Domain, "n2.apt40.example")];
    put(store, &signed(n2));
    assert_eq!(
        store.search(&ip("198.51.100.200")).unwrap(),
        vec![hit(&base, 1, MatchKind::Cidr)]
    );
    assert_eq!(
        store.search(&ip("192.0.2.7")).unwrap(),
        vec![hit(&base, 0, MatchKind::Exact)]
    );
    assert_eq!(store.counts().unwrap(), counts(2, 0, 3, 7, 0));
}

/// `drop_items_audited` writes the record `audit` makes of each item it actually dropped, in
/// the drop's own write: one per dropped item (none for an absent one), in the order dropped,
/// after the entries already there and before the ones appended later.
pub fn a_drop_writes_its_audit_records_with_it(store: &dyn Store) {
    let r1 = ws_item("ws-2026-0001", 1);
    let r2 = ws_item("ws-2026-0001", 2);
    let other = ws_item("ws-2026-0002", 1);
    for r in [&r1, &r2, &other] {
        put(store, r);
    }
    let first = audit_entry(1, None);
    store.append_audit(&first).unwrap();
    let record = |d: &super::DroppedItem| AuditEntry {
        at_ms: 7,
        action: "drop".into(),
        item_id: Some(d.item_id),
        subject: format!("{}/{}", d.origin, d.advisory_id),
        actor: "test".into(),
        detail: format!("revision {}", d.revision),
    };
    let absent = ItemId([9; 32]);
    let dropped = store
        .drop_items_audited(&[r2.item_id(), absent, other.item_id()], Some(&record))
        .unwrap();
    assert_eq!(dropped.len(), 2);
    let last = audit_entry(4, None);
    store.append_audit(&last).unwrap();
    let got = store.audit(10).unwrap();
    let want = vec![last, record(&dropped[1]), record(&dropped[0]), first];
    assert_eq!(got, want);
    assert_eq!(got[1].subject, "ws-cert/ws-2026-0002");
    assert_eq!(got[2].item_id, Some(r2.item_id()));
    // Nothing left to drop: no record.
    assert!(
        store
            .drop_items_audited(&[r2.item_id()], Some(&record))
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.audit(10).unwrap().len(), 4);
    store.sync().unwrap();
}

pub fn audit_append_and_read_newest_first(store: &dyn Store) {
    assert!(store.audit(10).unwrap().is_empty());
    let entries: Vec<AuditEntry> = (1..=3)
        .map(|n| audit_entry(n, (n == 2).then_some(ItemId([n as u8; 32]))))
        .collect();
    for e in &entries {
        store.append_audit(e).unwrap();
    }
    let mut newest_first = entries.clone();
    newest_first.reverse();
    assert_eq!(store.audit(10).unwrap(), newest_first);
    assert_eq!(store.audit(2).unwrap(), newest_first[..2].to_vec());
    assert!(store.audit(0).unwrap().is_empty());
    // The audit log is not an item: counts are untouched.
    assert_eq!(store.counts().unwrap(), Counts::default());
    store.sync().unwrap();
}

pub fn put_batch_equals_sequential_puts(store: &dyn Store) {
    let reference = MemoryStore::new();
    let mut items = Vec::new();
    for n in 0..40u64 {
        let mut a = advisory(WS, &format!("ws-2026-{:04}", n % 7), n / 7 + 1);
        // Many indicators so the batch spans several sled batches.
        a.indicators = (0..120u32)
            .map(|k| {
                let v = (n as u32 * 120 + k) % 254 + 1;
                indicator(IndicatorKind::Ipv4, &format!("203.0.113.{v}"))
            })
            .collect();
        if n % 11 == 5 {
            a = withdrawn(a);
        }
        items.push(signed(a));
    }
    // Same-revision variants and an in-batch duplicate.
    let mut v = advisory(WS, "ws-2026-0003", 1);
    v.title = "APT40 equivocating variant".to_string();
    items.push(signed(v));
    items.push(items[3].clone());

    let refs: Vec<(&Verified<Advisory>, &str)> = items.iter().map(|i| (i, "import")).collect();
    let outcomes = store.put_batch(&refs, NOW).unwrap();
    let expected: Vec<PutOutcome> = items
        .iter()
        .map(|i| reference.put(i, "import", NOW).unwrap())
        .collect();
    assert_eq!(outcomes, expected);
    assert_eq!(outcomes.last(), Some(&PutOutcome::Duplicate));
    assert!(outcomes.iter().any(|o| matches!(
        o,
        PutOutcome::Stored {
            equivocation: true,
            ..
        }
    )));
    let advs: Vec<String> = (0..7).map(|n| format!("ws-2026-{n:04}")).collect();
    let advs: Vec<(&str, &str)> = advs.iter().map(|a| (WS, a.as_str())).collect();
    let queries: Vec<IndicatorQuery> = (1..=254).map(|v| ip(&format!("203.0.113.{v}"))).collect();
    assert_eq!(
        snapshot(store, &advs, &queries),
        snapshot(&reference, &advs, &queries)
    );
    store.sync().unwrap();
}

/// Writes raw bytes into a tree of the store under test: (tree, key, value).
pub type RawWrite<'a> = dyn Fn(&str, &[u8], &[u8]) + 'a;

pub fn corrupt_records_are_errors(store: &dyn Store, raw: &RawWrite<'_>) {
    let item = ws_item("ws-2026-0001", 1);
    put(store, &item);
    let ak = akey(WS, "ws-2026-0001");
    let is_corrupt = |r: Result<(), StoreError>, tree: &str| match r {
        Err(StoreError::Corrupt { tree: t, .. }) => assert_eq!(t, tree),
        other => panic!("expected Corrupt in {tree}, got {other:?}"),
    };

    raw("envelopes", &item.item_id().0, b"\xff\xff garbage");
    is_corrupt(store.get(&item.item_id()).map(drop), "envelopes");
    is_corrupt(store.latest(WS, "ws-2026-0001").map(drop), "envelopes");
    is_corrupt(store.history(WS, "ws-2026-0001").map(drop), "envelopes");
    is_corrupt(store.list(&ListFilter::default()).map(drop), "envelopes");
    // A newer revision must unindex the old latest: it reads the corrupt record and refuses.
    is_corrupt(
        store
            .put(&ws_item("ws-2026-0001", 2), "local", NOW)
            .map(drop),
        "envelopes",
    );
    // A well-formed record whose payload does not hash to its key is corrupt as well.
    let other = ws_item("ws-2026-0002", 1);
    let moved = super::engine::tests_support::stored_record(&other);
    raw("envelopes", &item.item_id().0, &moved);
    is_corrupt(store.get(&item.item_id()).map(drop), "envelopes");

    raw("latest", &ak, b"short");
    is_corrupt(store.latest(WS, "ws-2026-0001").map(drop), "latest");

    raw("meta", b"counts", b"not forty bytes");
    is_corrupt(store.counts().map(drop), "meta");

    raw(
        "equivocations",
        &[ak.as_slice(), &[0, 0, 0, 0, 0, 0, 0, 1]].concat(),
        b"\x0a\xff",
    );
    is_corrupt(
        store.equivocations(WS, "ws-2026-0001").map(drop),
        "equivocations",
    );

    raw("audit", &7u64.to_be_bytes(), b"\x0a\xff\xff");
    is_corrupt(store.audit(5).map(drop), "audit");

    let mut bad_key = vec![crate::model::wire::kind_to_proto(IndicatorKind::Domain) as i32 as u8];
    bad_key.extend_from_slice(&(3u32).to_be_bytes());
    bad_key.extend_from_slice(b"x.y");
    bad_key.extend_from_slice(b"short");
    raw("indicators", &bad_key, b"");
    is_corrupt(
        store.search(&exact(IndicatorKind::Domain, "x.y")).map(drop),
        "indicators",
    );
}

pub fn scan_latest_visits_latest_revisions_in_order(store: &dyn Store) {
    let a1 = ws_item("ws-a", 1);
    let a2 = ws_item("ws-a", 2);
    let b = signed(withdrawn(advisory(WS, "ws-b", 1)));
    let t = signed(advisory(TO, "to-a", 1));
    for item in [&a1, &a2, &b, &t] {
        put(store, item);
    }
    let scan = |origin: Option<&str>, withdrawn: bool| {
        let mut seen = Vec::new();
        store
            .scan_latest(origin, withdrawn, &mut |i| {
                seen.push(i.item_id);
                Ok(true)
            })
            .unwrap();
        seen
    };
    assert_eq!(scan(None, false), [t.item_id(), a2.item_id()]);
    assert_eq!(scan(None, true), [t.item_id(), a2.item_id(), b.item_id()]);
    assert_eq!(scan(Some(WS), true), [a2.item_id(), b.item_id()]);
    assert_eq!(scan(Some("ws"), true), Vec::<ItemId>::new());
    // The visitor stops the scan.
    let mut n = 0;
    store
        .scan_latest(None, true, &mut |_| {
            n += 1;
            Ok(false)
        })
        .unwrap();
    assert_eq!(n, 1);
}

pub fn scan_latest_id_prefix_visits_only_matching_ids(store: &dyn Store) {
    let r1 = signed(advisory(WS, "tanoa-roster.v1", 1));
    let r2a = signed(advisory(WS, "tanoa-roster.v2", 1));
    let r2b = signed(advisory(WS, "tanoa-roster.v2", 2));
    let other = signed(advisory(WS, "tanoa-rostex", 1));
    let before = signed(advisory(WS, "tanoa-rosteq.z", 1));
    let foreign = signed(advisory(TO, "tanoa-roster.v1", 1));
    let gone = signed(withdrawn(advisory(WS, "tanoa-roster.v3", 1)));
    for item in [&r1, &r2a, &r2b, &other, &before, &foreign, &gone] {
        put(store, item);
    }
    let scan = |origin: &str, prefix: &str, withdrawn: bool| {
        let mut seen = Vec::new();
        store
            .scan_latest_id_prefix(origin, prefix, withdrawn, &mut |i| {
                seen.push(i.item_id);
                Ok(true)
            })
            .unwrap();
        seen
    };
    assert_eq!(
        scan(WS, "tanoa-roster.", false),
        [r1.item_id(), r2b.item_id()]
    );
    assert_eq!(
        scan(WS, "tanoa-roster.", true),
        [r1.item_id(), r2b.item_id(), gone.item_id()]
    );
    assert_eq!(scan(TO, "tanoa-roster.", true), [foreign.item_id()]);
    assert_eq!(scan(WS, "tanoa-roster.v2", true), [r2b.item_id()]);
    assert_eq!(scan("ws", "tanoa-roster.", true), Vec::<ItemId>::new());
    assert_eq!(
        scan(WS, "", true).len(),
        5,
        "every advisory of ws-cert, latest only"
    );
}

/// Instantiates the whole conformance suite (one `#[test]` per check, plus the arrival-order
/// property) for a backend. `$open` is an expression callable as `$open()` that returns
/// `(guard, store)`: the guard (a temporary directory, or `()`) lives as long as the test, and the
/// store must have an inherent `raw_insert(tree, key, value)` for the corruption check.
#[macro_export]
macro_rules! store_conformance_suite {
    ($open:expr) => {
        $crate::store_conformance_suite!(@checks $open; put_get_round_trip, duplicate_changes_nothing, supersession_by_revision, withdrawal_removes_indicators_but_keeps_records, withdrawal_is_forever_whatever_the_arrival_order, cve_and_actor_lists_are_searched_and_follow_the_latest_revision, equivocation_recorded_and_resolved_to_lowest, list_filters, roster_items_are_not_listed_or_searched, list_pages_return_every_advisory_exactly_once, search_exact_per_kind, search_ip_inside_cidr, audit_append_and_read_newest_first, put_batch_equals_sequential_puts, scan_latest_visits_latest_revisions_in_order, scan_latest_id_prefix_visits_only_matching_ids, drop_latest_restores_the_previous_revision, drop_history_revision_keeps_the_latest, drop_everything_of_an_advisory, drop_tombstone_reactivates_the_best_remaining_revision, drop_updates_equivocation_evidence, drop_is_the_same_whatever_the_arrival_order, a_drop_writes_its_audit_records_with_it);

        #[test]
        fn corrupt_records_are_errors() {
            let (_guard, store) = ($open)();
            $crate::store::conformance::corrupt_records_are_errors(&store, &|t, k, v| {
                store.raw_insert(t, k, v)
            });
        }

        $crate::store::conformance::proptest::proptest! {
            #![proptest_config($crate::store::conformance::proptest::prelude::ProptestConfig {
                cases: 32,
                ..$crate::store::conformance::proptest::prelude::ProptestConfig::default()
            })]

            #[test]
            fn arrival_order_does_not_change_the_outcome(
                (specs, o1, o2) in $crate::store::conformance::specs_and_orders()
            ) {
                $crate::store::conformance::arrival_order_case(&specs, &o1, &o2, || ($open)())?;
            }

            #[test]
            fn dropping_equals_never_having_stored(
                (specs, o1, o2) in $crate::store::conformance::specs_and_orders(),
                mask in $crate::store::conformance::proptest::prelude::any::<u16>()
            ) {
                $crate::store::conformance::drop_case(&specs, &o1, &o2, mask, || ($open)())?;
            }
        }
    };
    (@checks $open:expr; $($check:ident),* $(,)?) => {
        $(
            #[test]
            fn $check() {
                let (_guard, store) = ($open)();
                $crate::store::conformance::$check(&store);
            }
        )*
    };
}

// ---------------------------------------------------------------------------------------------
// Property: the outcome does not depend on arrival order
// ---------------------------------------------------------------------------------------------

/// One generated item: advisory (0..3), revision, payload variant, withdrawn, indicator mask.
pub type Spec = (usize, u64, u8, bool, u8);

pub fn pool() -> Vec<Indicator> {
    vec![
        indicator(IndicatorKind::Ipv4, "192.0.2.1"),
        indicator(IndicatorKind::Ipv4, "192.0.2.2"),
        indicator(IndicatorKind::Cidr, "198.51.100.0/24"),
        indicator(IndicatorKind::Cidr, "198.51.100.0/25"),
        indicator(IndicatorKind::Domain, "a.apt40.example"),
        indicator(IndicatorKind::Domain, "b.apt40.example"),
        indicator(IndicatorKind::Cidr, "2001:db8::/32"),
        indicator(IndicatorKind::Ipv6, "2001:db8::5"),
    ]
}

pub fn pool_queries() -> Vec<IndicatorQuery> {
    let mut q: Vec<IndicatorQuery> = pool()
        .into_iter()
        .map(|i| IndicatorQuery::Exact(i.kind, i.value))
        .collect();
    q.extend([
        ip("192.0.2.1"),
        ip("198.51.100.1"),
        ip("198.51.100.200"),
        ip("2001:db8::5"),
        ip("203.0.113.1"),
        IndicatorQuery::Actor("APT40".to_string()),
        exact(IndicatorKind::Cve, "CVE-2017-11882"),
    ]);
    q
}

pub const PROP_ADVS: [(&str, &str); 3] = [
    (WS, "ws-2026-0001"),
    (WS, "ws-2026-0002"),
    (TO, "to-2026-0001"),
];

pub fn build(spec: &Spec) -> Verified<Advisory> {
    let (adv, revision, variant, is_withdrawn, mask) = *spec;
    let (origin, id) = PROP_ADVS[adv];
    let mut a = advisory(origin, id, revision);
    a.title = format!("APT40 {id} r{revision} v{variant}");
    a.indicators = pool()
        .into_iter()
        .enumerate()
        .filter(|(n, _)| mask & (1 << n) != 0)
        .map(|(_, i)| i)
        .collect();
    if variant == 1 {
        a.cves = vec!["CVE-2017-11882".to_string()];
    }
    if is_withdrawn {
        a = withdrawn(a);
    }
    signed(a)
}

pub fn specs_and_orders() -> impl Strategy<Value = (Vec<Spec>, Vec<usize>, Vec<usize>)> {
    let spec = (
        0usize..3,
        1u64..=3,
        0u8..3,
        prop::bool::weighted(0.2),
        any::<u8>(),
    );
    prop::collection::vec(spec, 1..12).prop_flat_map(|specs| {
        let idx: Vec<usize> = (0..specs.len()).collect();
        (
            Just(specs),
            Just(idx.clone()).prop_shuffle(),
            Just(idx).prop_shuffle(),
        )
    })
}

/// Expected latest per advisory: a withdrawal if any (withdrawal is forever), then highest
/// revision, then lowest item id.
pub fn oracle_latest(items: &[Verified<Advisory>]) -> Vec<Option<ItemId>> {
    type Rank = (bool, u64, std::cmp::Reverse<ItemId>);
    let mut best: BTreeMap<(String, String), Rank> = BTreeMap::new();
    for i in items {
        let key = (i.origin.clone(), i.id.clone());
        let cand = (i.withdrawn, i.revision, std::cmp::Reverse(i.item_id()));
        let e = best.entry(key).or_insert(cand);
        if cand > *e {
            *e = cand;
        }
    }
    PROP_ADVS
        .iter()
        .map(|(o, i)| {
            best.get(&(o.to_string(), i.to_string()))
                .map(|(_, _, r)| r.0)
        })
        .collect()
}

pub fn fill(store: &dyn Store, items: &[Verified<Advisory>], order: &[usize]) -> Snapshot {
    for &n in order {
        // The same `now` everywhere, so `detected_ms` cannot differ between orders.
        store.put(&items[n], "import", NOW).unwrap();
    }
    snapshot(store, &PROP_ADVS, &pool_queries())
}

/// The arrival-order property for one generated case: the items put in orders `o1` and `o2`
/// into two fresh stores of the backend under test (`open`) give the same observable state, equal
/// to `MemoryStore`'s and to the oracle's latest revisions, with counters matching a recount.
pub fn arrival_order_case<G, S: Store>(
    specs: &[Spec],
    o1: &[usize],
    o2: &[usize],
    open: impl Fn() -> (G, S),
) -> Result<(), TestCaseError> {
    let items: Vec<Verified<Advisory>> = specs.iter().map(build).collect();
    let mem1 = fill(&MemoryStore::new(), &items, o1);
    let mem2 = fill(&MemoryStore::new(), &items, o2);
    prop_assert_eq!(&mem1, &mem2);
    prop_assert_eq!(&mem1.latest, &oracle_latest(&items));

    let (_g1, s1) = open();
    let (_g2, s2) = open();
    let other1 = fill(&s1, &items, o1);
    let other2 = fill(&s2, &items, o2);
    prop_assert_eq!(&other1, &other2);
    prop_assert_eq!(&other1, &mem1);

    // Counters match a recount from the observable state.
    let distinct: std::collections::BTreeSet<ItemId> = items.iter().map(|i| i.item_id()).collect();
    prop_assert_eq!(mem1.counts.items, distinct.len() as u64);
    prop_assert_eq!(
        mem1.counts.advisories,
        mem1.latest.iter().filter(|l| l.is_some()).count() as u64
    );
    let eq_total: usize = mem1.equivocations.iter().map(Vec::len).sum();
    prop_assert_eq!(mem1.counts.equivocations, eq_total as u64);
    let by_id: BTreeMap<ItemId, &Verified<Advisory>> =
        items.iter().map(|i| (i.item_id(), i)).collect();
    let active: u64 = mem1
        .latest
        .iter()
        .flatten()
        .map(|id| by_id[id])
        .filter(|i| !i.withdrawn)
        .map(|i| i.indicators.len() as u64)
        .sum();
    prop_assert_eq!(mem1.counts.indicators, active);
    let withdrawn_now = mem1
        .latest
        .iter()
        .flatten()
        .filter(|id| by_id[*id].withdrawn)
        .count() as u64;
    prop_assert_eq!(mem1.counts.withdrawn, withdrawn_now);
    Ok(())
}

/// The drop property for one generated case: every item is put in order `o1`, then the items
/// selected by `mask` are dropped (in `o2`'s order); the observable state equals that of a store
/// given only the other items, and `MemoryStore`'s.
pub fn drop_case<G, S: Store>(
    specs: &[Spec],
    o1: &[usize],
    o2: &[usize],
    mask: u16,
    open: impl Fn() -> (G, S),
) -> Result<(), TestCaseError> {
    let items: Vec<Verified<Advisory>> = specs.iter().map(build).collect();
    let gone = |n: usize| mask & (1 << n) != 0;
    let dropped: std::collections::BTreeSet<ItemId> = (0..items.len())
        .filter(|n| gone(*n))
        .map(|n| items[n].item_id())
        .collect();
    // An item generated twice is dropped if any copy is selected.
    let kept: Vec<usize> = o1
        .iter()
        .copied()
        .filter(|n| !dropped.contains(&items[*n].item_id()))
        .collect();
    let to_drop: Vec<ItemId> = o2
        .iter()
        .filter(|n| gone(**n))
        .map(|n| items[*n].item_id())
        .collect();
    let expected = fill(&MemoryStore::new(), &items, &kept);

    let mem = MemoryStore::new();
    fill(&mem, &items, o1);
    let got = mem.drop_items(&to_drop).unwrap();
    prop_assert_eq!(got.len(), dropped.len());
    prop_assert_eq!(&snapshot(&mem, &PROP_ADVS, &pool_queries()), &expected);

    let (_g, s) = open();
    fill(&s, &items, o1);
    s.drop_items(&to_drop).unwrap();
    prop_assert_eq!(&snapshot(&s, &PROP_ADVS, &pool_queries()), &expected);
    Ok(())
}

#[cfg(test)]
mod memory_backend {
    fn open() -> ((), super::MemoryStore) {
        ((), super::MemoryStore::new())
    }
    crate::store_conformance_suite!(open);
}
