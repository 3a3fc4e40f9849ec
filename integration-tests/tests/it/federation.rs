//! Federation of five real `tanoad` processes (ws-cert, to-cert, fj-cert, au-acsc, nz-ncsc;
//! fresh PKI, OS-chosen ports, a proxy on every link): TLP confinement end to end (stores,
//! `tanoa list`, metrics), and propagation of new revisions and withdrawals.

use tanoa_integration_tests::federation::{FIVE, Federation, holds, latest};
use tanoa_integration_tests::{TestNode, run_command, sample_draft};
use tanoa_proto::v1 as pb;

use crate::bins;

const A: usize = 0;
const B: usize = 1;
const C: usize = 2;
const D: usize = 3;
const E: usize = 4;

/// A draft of `tlp` for `audience`, with a title and an ipv4 indicator unique to it.
pub fn draft(
    id: &str,
    title: &str,
    host: u8,
    tlp: pb::Tlp,
    audience: &[&str],
) -> pb::AdvisoryDraft {
    let mut d = sample_draft(id, title, host);
    d.tlp = tlp as i32;
    d.audience = audience.iter().map(ToString::to_string).collect();
    d
}

/// Asserts that `node` shows no trace of a restricted item: Get (by item id and by
/// origin/advisory id) is NotFound, List (withdrawn included) and `tanoa list` (text and JSON)
/// do not mention its ids or title, SearchIndicator finds nothing for its unique indicator,
/// and the metrics text does not mention it.
pub async fn assert_no_trace(
    node: &TestNode,
    origin: &str,
    p: &pb::PublishResponse,
    title: &str,
    indicator: &str,
) {
    let who = node.member().to_string();
    assert!(!holds(node, &p.item_id).await, "{who} holds {}", p.item_id);
    let qualified = format!("{origin}/{}", p.advisory_id);
    assert!(!holds(node, &qualified).await, "{who} holds {qualified}");
    let mut c = node.client().await;
    let list = c
        .list(pb::ListRequest {
            include_withdrawn: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    for a in &list.advisories {
        assert!(
            a.item_id != p.item_id && a.advisory_id != p.advisory_id && a.title != title,
            "{who} lists the restricted item: {a:?}"
        );
    }
    let hits = c
        .search_indicator(pb::SearchIndicatorRequest {
            value: indicator.into(),
            kind: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .hits;
    assert!(hits.is_empty(), "{who} finds {indicator}: {hits:?}");
    let config = node.config_path().to_str().unwrap().to_string();
    for args in [["list", "--withdrawn"], ["--json", "list"]] {
        let mut all = vec!["--config", config.as_str()];
        all.extend(args);
        let out = run_command(&bins().tanoa, &all).await;
        out.expect_code(0, "tanoa list");
        check_text(&who, "tanoa list", &out.stdout, p, title);
    }
    let metrics = node.scrape_metrics().await;
    check_text(&who, "metrics", &metrics, p, title);
}

fn check_text(who: &str, what: &str, text: &str, p: &pb::PublishResponse, title: &str) {
    for needle in [p.item_id.as_str(), p.advisory_id.as_str(), title] {
        assert!(
            !text.contains(needle),
            "{what} of {who} mentions {needle:?}:\n{text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn green_reaches_all_amber_its_audience_red_its_recipient_and_others_see_no_trace() {
    let fed = Federation::start(&bins().tanoad, &FIVE).await;
    let ids = fed.ids().to_vec();
    let green = fed
        .publish(
            A,
            draft(
                "ws-2026-0101",
                "Green for everyone",
                101,
                pb::Tlp::Green,
                &[],
            ),
        )
        .await;
    let amber_title = "Amber for to and fj only";
    let amber = fed
        .publish(
            A,
            draft(
                "ws-2026-0102",
                amber_title,
                102,
                pb::Tlp::Amber,
                &[&ids[B], &ids[C]],
            ),
        )
        .await;
    let red_title = "Red for to-cert only";
    let red = fed
        .publish(
            A,
            draft("ws-2026-0103", red_title, 103, pb::Tlp::Red, &[&ids[B]]),
        )
        .await;
    fed.wait_latest(&[A, B, C, D, E], &green.item_id, &green.item_id)
        .await;
    fed.wait_latest(&[A, B, C], &amber.item_id, &amber.item_id)
        .await;
    fed.wait_latest(&[A, B], &red.item_id, &red.item_id).await;
    // Give anti-entropy every chance to leak: two more rounds between every pair, and a GREEN
    // marker from each holder that must reach everyone.
    fed.settle(&[A, B, C, D, E], 2).await;
    for (k, &h) in [A, B, C].iter().enumerate() {
        let m = fed
            .publish(
                h,
                draft(
                    &format!("marker-{k}"),
                    "Marker",
                    110 + u8::try_from(k).unwrap(),
                    pb::Tlp::Green,
                    &[],
                ),
            )
            .await;
        fed.wait_latest(&[A, B, C, D, E], &m.item_id, &m.item_id)
            .await;
    }
    for &o in &[D, E] {
        assert_no_trace(&fed.nodes[o], &ids[A], &amber, amber_title, "192.0.2.102").await;
    }
    for &o in &[C, D, E] {
        assert_no_trace(&fed.nodes[o], &ids[A], &red, red_title, "192.0.2.103").await;
    }
    // to-cert never relayed the RED item: nobody rejected anything from it (it never tried),
    // and its Explain says it may not send it.
    for &o in &[C, D, E] {
        let peers = fed.nodes[o]
            .client()
            .await
            .peers(pb::PeersRequest {})
            .await
            .unwrap()
            .into_inner()
            .peers;
        for p in peers {
            assert_eq!(
                p.rejections_total, 0,
                "{} rejected items from {}: {p:?}",
                ids[o], p.member_id
            );
        }
    }
    let e = fed.nodes[B]
        .client()
        .await
        .explain(pb::ExplainRequest {
            id: red.item_id.clone(),
            peer: ids[C].clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!e.allowed && !e.would_send, "{e:?}");
    // The same checks see the items where they are held (they are not vacuous).
    let config = fed.nodes[B].config_path().to_str().unwrap().to_string();
    let out = run_command(
        &bins().tanoa,
        ["--config", config.as_str(), "--json", "list"],
    )
    .await;
    out.expect_code(0, "tanoa list on to-cert");
    for p in [&amber, &red] {
        assert!(out.stdout.contains(&p.item_id), "{}", out.stdout);
    }
    let out = run_command(&bins().tanoa, ["--config", config.as_str(), "list"]).await;
    assert!(out.stdout.contains(red_title), "{}", out.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_revisions_and_withdrawals_reach_every_holder_and_only_them() {
    let fed = Federation::start(&bins().tanoad, &FIVE).await;
    let ids = fed.ids().to_vec();
    let g1 = fed
        .publish(
            A,
            draft("ws-2026-0201", "Green rev 1", 121, pb::Tlp::Green, &[]),
        )
        .await;
    let a1 = fed
        .publish(
            B,
            draft(
                "to-2026-0202",
                "Amber rev 1",
                122,
                pb::Tlp::Amber,
                &[&ids[C], &ids[D]],
            ),
        )
        .await;
    fed.wait_latest(&[A, B, C, D, E], &g1.item_id, &g1.item_id)
        .await;
    fed.wait_latest(&[B, C, D], &a1.item_id, &a1.item_id).await;

    // New revisions.
    let g2 = fed
        .publish(
            A,
            draft("ws-2026-0201", "Green rev 2", 123, pb::Tlp::Green, &[]),
        )
        .await;
    assert_eq!(g2.revision, g1.revision + 1);
    let a2 = fed
        .publish(
            B,
            draft(
                "to-2026-0202",
                "Amber rev 2",
                124,
                pb::Tlp::Amber,
                &[&ids[C], &ids[D]],
            ),
        )
        .await;
    let g_name = format!("{}/ws-2026-0201", ids[A]);
    let a_name = format!("{}/to-2026-0202", ids[B]);
    fed.wait_latest(&[A, B, C, D, E], &g_name, &g2.item_id)
        .await;
    fed.wait_latest(&[B, C, D], &a_name, &a2.item_id).await;

    // Withdrawals.
    let gw = fed.nodes[A]
        .client()
        .await
        .withdraw(pb::WithdrawRequest {
            id: "ws-2026-0201".into(),
            reason: "false positive".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let aw = fed.nodes[B]
        .client()
        .await
        .withdraw(pb::WithdrawRequest {
            id: "to-2026-0202".into(),
            reason: "superseded by a joint advisory".into(),
        })
        .await
        .unwrap()
        .into_inner();
    fed.wait_latest(&[A, B, C, D, E], &g_name, &gw.item_id)
        .await;
    fed.wait_latest(&[B, C, D], &a_name, &aw.item_id).await;
    fed.settle(&[A, B, C, D, E], 1).await;
    for i in [A, B, C, D, E] {
        let r = fed.nodes[i]
            .client()
            .await
            .get(pb::GetRequest { id: g_name.clone() })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.latest_item_id, gw.item_id, "on {}", ids[i]);
        let last = r.history.last().unwrap();
        assert!(last.withdrawn, "on {}: {:?}", ids[i], r.history);
        assert_eq!(last.revision, gw.revision);
        // Search no longer finds the withdrawn advisory's indicators.
        let hits = fed.nodes[i]
            .client()
            .await
            .search_indicator(pb::SearchIndicatorRequest {
                value: "192.0.2.123".into(),
                kind: 0,
            })
            .await
            .unwrap()
            .into_inner()
            .hits;
        assert!(hits.is_empty(), "on {}: {hits:?}", ids[i]);
    }
    // Neither revision nor the tombstone of the AMBER advisory reached a or e.
    for i in [A, E] {
        assert_eq!(latest(&fed.nodes[i], &a_name).await, None, "on {}", ids[i]);
        for it in [&a1.item_id, &a2.item_id, &aw.item_id] {
            assert!(!holds(&fed.nodes[i], it).await, "{} holds {it}", ids[i]);
        }
    }
}
