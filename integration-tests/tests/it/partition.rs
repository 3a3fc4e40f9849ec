//! Failures of a five-member federation of real `tanoad` processes: a stopped member catches
//! up after restart, a member whose data directory was wiped is restored by the others (its own
//! GREEN and RED items included), and a partition {a,b} | {c,d,e} made by cutting the proxied links
//! heals to full convergence.

use std::collections::BTreeSet;

use tanoa_integration_tests::TestNode;
use tanoa_integration_tests::federation::{FIVE, Federation, holds};
use tanoa_proto::v1 as pb;

use crate::bins;
use crate::federation::draft;

const A: usize = 0;
const B: usize = 1;
const C: usize = 2;
const D: usize = 3;
const E: usize = 4;

/// Item ids of every revision `node` lists (withdrawn included).
async fn listed(node: &TestNode) -> BTreeSet<String> {
    node.client()
        .await
        .list(pb::ListRequest {
            include_withdrawn: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .advisories
        .into_iter()
        .map(|a| a.item_id)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_member_catches_up_and_wiped_member_is_restored() {
    let mut fed = Federation::start(&bins().tanoad, &FIVE).await;
    let ids = fed.ids().to_vec();
    // nz-ncsc's own GREEN item and an AMBER item addressed to it, before anything fails.
    let own = fed
        .publish(
            E,
            draft("nz-2026-0001", "Own green", 130, pb::Tlp::Green, &[]),
        )
        .await;
    let own_red = fed
        .publish(
            E,
            draft("nz-2026-0002", "Own red", 131, pb::Tlp::Red, &[&ids[D]]),
        )
        .await;
    fed.wait_latest(&[A, B, C, D, E], &own.item_id, &own.item_id)
        .await;
    fed.wait_latest(&[D], &own_red.item_id, &own_red.item_id)
        .await;

    // Stopped: publishes while it is down reach it after restart.
    fed.stop_member(E).await;
    let mut missed = Vec::new();
    for (k, &i) in [A, A, B, C].iter().enumerate() {
        let host = 132 + u8::try_from(k).unwrap();
        let p = fed
            .publish(
                i,
                draft(
                    &format!("down-{k}"),
                    "While nz was down",
                    host,
                    pb::Tlp::Green,
                    &[],
                ),
            )
            .await;
        missed.push(p.item_id);
    }
    let amber = fed
        .publish(
            C,
            draft(
                "fj-2026-0003",
                "Amber for au and nz",
                140,
                pb::Tlp::Amber,
                &[&ids[D], &ids[E]],
            ),
        )
        .await;
    let other = fed
        .publish(
            C,
            draft(
                "fj-2026-0004",
                "Amber for au",
                141,
                pb::Tlp::Amber,
                &[&ids[D]],
            ),
        )
        .await;
    fed.start_member(E).await;
    for it in missed.iter().chain([&amber.item_id]) {
        fed.wait_latest(&[E], it, it).await;
    }
    fed.settle(&[A, B, C, D, E], 1).await;
    assert!(!holds(&fed.nodes[E], &other.item_id).await);
    let before = listed(&fed.nodes[E]).await;
    assert!(before.contains(&own.item_id) && before.contains(&own_red.item_id));

    // Wiped: everything policy lets others send back comes back, its own GREEN item included.
    fed.stop_member(E).await;
    fed.wipe_member(E);
    fed.start_member(E).await;
    let node = &fed.nodes[E];
    // It started from an empty store (its start line counts what it loaded).
    assert_eq!(
        node.started_field("items"),
        serde_json::json!(0),
        "{}",
        node.logs()
    );
    // Everything comes back, its own RED item included: policy lets a RED recipient (au-acsc)
    // return it to its origin, and to nobody else.
    let restorable = before.clone();
    Federation::eventually("nz-ncsc to be restored", || async {
        listed(node).await.is_superset(&restorable)
    })
    .await;
    fed.settle(&[A, B, C, D, E], 1).await;
    let after = listed(node).await;
    assert!(after.is_superset(&restorable));
    assert!(after.contains(&own.item_id), "own GREEN item not restored");
    assert!(!after.contains(&other.item_id));
    assert!(
        after.contains(&own_red.item_id),
        "own RED item not returned by its recipient"
    );
    let r = fed.nodes[E]
        .client()
        .await
        .get(pb::GetRequest {
            id: own_red.item_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.source, ids[D], "the RED item came back from someone else");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_ab_cde_heals_to_full_convergence() {
    let fed = Federation::start(&bins().tanoad, &FIVE).await;
    let ids = fed.ids().to_vec();
    let left = [A, B];
    let right = [C, D, E];
    let before = fed
        .publish(
            A,
            draft(
                "ws-2026-0300",
                "Before the partition",
                150,
                pb::Tlp::Green,
                &[],
            ),
        )
        .await;
    fed.wait_latest(&[A, B, C, D, E], &before.item_id, &before.item_id)
        .await;
    fed.partition(&left, &right);

    let mut left_items = Vec::new();
    for (k, &i) in left.iter().enumerate() {
        let host = 151 + u8::try_from(k).unwrap();
        let p = fed
            .publish(
                i,
                draft(&format!("left-{k}"), "Left side", host, pb::Tlp::Green, &[]),
            )
            .await;
        left_items.push(p.item_id);
    }
    // An AMBER item across the cut: from ws-cert for fj-cert.
    let cross = fed
        .publish(
            A,
            draft(
                "ws-2026-0310",
                "Across the cut",
                160,
                pb::Tlp::Amber,
                &[&ids[C]],
            ),
        )
        .await;
    let mut right_items = Vec::new();
    for (k, &i) in right.iter().enumerate() {
        let host = 170 + u8::try_from(k).unwrap();
        let p = fed
            .publish(
                i,
                draft(
                    &format!("right-{k}"),
                    "Right side",
                    host,
                    pb::Tlp::Green,
                    &[],
                ),
            )
            .await;
        right_items.push(p.item_id);
    }
    for it in &left_items {
        fed.wait_latest(&left, it, it).await;
    }
    for it in &right_items {
        fed.wait_latest(&right, it, it).await;
    }
    fed.settle(&left, 1).await;
    fed.settle(&right, 1).await;
    // The cut holds: nothing crossed it.
    for &i in &right {
        for it in left_items.iter().chain([&cross.item_id]) {
            assert!(
                !holds(&fed.nodes[i], it).await,
                "{it} crossed to {}",
                ids[i]
            );
        }
    }
    for &i in &left {
        for it in &right_items {
            assert!(
                !holds(&fed.nodes[i], it).await,
                "{it} crossed to {}",
                ids[i]
            );
        }
    }

    fed.heal_all();
    for it in left_items.iter().chain(&right_items) {
        fed.wait_latest(&[A, B, C, D, E], it, it).await;
    }
    fed.wait_latest(&[C], &cross.item_id, &cross.item_id).await;
    fed.settle(&[A, B, C, D, E], 1).await;
    // Full convergence: every member lists exactly the GREEN set, plus the AMBER item on its
    // origin and audience.
    let mut green: BTreeSet<String> = left_items.iter().chain(&right_items).cloned().collect();
    green.insert(before.item_id.clone());
    for i in [A, B, C, D, E] {
        let mut want = green.clone();
        if i == A || i == C {
            want.insert(cross.item_id.clone());
        }
        assert_eq!(listed(&fed.nodes[i]).await, want, "on {}", ids[i]);
    }
}
