//! Withdrawal: the indicators leave search, but Get still explains the advisory (withdrawn,
//! reason, both revisions), also after a restart.

use tanoa_integration_tests::{TestNode, sample_draft, verify_envelope};
use tanoa_proto::v1 as pb;

use crate::bins;

async fn hits(
    c: &mut tanoa_proto::v1::operator_client::OperatorClient<tonic::transport::Channel>,
    v: &str,
) -> usize {
    c.search_indicator(pb::SearchIndicatorRequest {
        value: v.into(),
        kind: 0,
    })
    .await
    .unwrap()
    .into_inner()
    .hits
    .len()
}

#[tokio::test]
async fn withdrawn_advisory_leaves_search_but_get_explains_it() {
    let mut node = TestNode::start_new(&bins().tanoad, "ws-cert", "").await;
    let mut c = node.client().await;
    let p = c
        .publish(pb::PublishRequest {
            draft: Some(sample_draft("apt40-wd", "To be withdrawn", 30)),
        })
        .await
        .unwrap()
        .into_inner();
    // A second advisory sharing nothing with the first stays searchable.
    let mut other = sample_draft("other-wd", "Stays", 31);
    other.indicators.truncate(1);
    c.publish(pb::PublishRequest { draft: Some(other) })
        .await
        .unwrap();
    assert_eq!(hits(&mut c, "192.0.2.30").await, 1);
    assert_eq!(hits(&mut c, "198.51.100.9").await, 1);

    let reason = "false positive: shared hosting range";
    let w = c
        .withdraw(pb::WithdrawRequest {
            id: "apt40-wd".into(),
            reason: reason.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(w.revision, 2);
    assert_ne!(w.item_id, p.item_id);

    for round in ["before restart", "after restart"] {
        assert_eq!(hits(&mut c, "192.0.2.30").await, 0, "{round}");
        assert_eq!(hits(&mut c, "198.51.100.9").await, 0, "{round}");
        assert_eq!(
            hits(&mut c, "update.pacific-news.example").await,
            0,
            "{round}"
        );
        assert_eq!(
            hits(&mut c, "192.0.2.31").await,
            1,
            "{round}: other advisory"
        );

        let got = c
            .get(pb::GetRequest {
                id: "apt40-wd".into(),
            })
            .await
            .unwrap()
            .into_inner();
        let adv = got.advisory.clone().unwrap();
        assert!(adv.withdrawn, "{round}");
        assert_eq!(adv.withdrawn_reason, reason, "{round}");
        assert_eq!(adv.revision, 2);
        assert_eq!(got.item_id, w.item_id);
        assert!(got.verification.unwrap().valid, "{round}");
        // The tombstone is signed: a partner verifies it.
        let v = verify_envelope(&got.envelope.unwrap(), &node.keyring()).unwrap();
        assert!(v.withdrawn);
        let revs: Vec<(u64, bool)> = got
            .history
            .iter()
            .map(|h| (h.revision, h.withdrawn))
            .collect();
        assert_eq!(revs, vec![(1, false), (2, true)], "{round}");
        assert_eq!(got.history[0].item_id, p.item_id);

        // The first revision is still there, marked superseded.
        let old = c
            .get(pb::GetRequest {
                id: p.item_id.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(old.superseded, "{round}");
        assert_eq!(old.latest_item_id, w.item_id);

        let listed = c
            .list(pb::ListRequest::default())
            .await
            .unwrap()
            .into_inner();
        assert!(
            listed
                .advisories
                .iter()
                .all(|a| a.advisory_id != "apt40-wd"),
            "{round}: withdrawn listed by default: {listed:?}"
        );
        let all = c
            .list(pb::ListRequest {
                include_withdrawn: true,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let row = all
            .advisories
            .iter()
            .find(|a| a.advisory_id == "apt40-wd")
            .unwrap_or_else(|| panic!("{round}: {all:?}"));
        assert!(row.withdrawn);
        let st = c.status(pb::StatusRequest {}).await.unwrap().into_inner();
        assert_eq!(
            (st.advisories, st.withdrawn, st.items),
            (2, 1, 3),
            "{round}"
        );

        if round == "before restart" {
            drop(c);
            node.restart().await;
            c = node.client().await;
        }
    }

    // A withdrawn advisory takes no new revision, and cannot be withdrawn twice.
    let again = c
        .publish(pb::PublishRequest {
            draft: Some(sample_draft("apt40-wd", "Back again", 30)),
        })
        .await
        .unwrap_err();
    assert_eq!(again.code(), tonic::Code::FailedPrecondition, "{again:?}");
    let twice = c
        .withdraw(pb::WithdrawRequest {
            id: "apt40-wd".into(),
            reason: "again".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(twice.code(), tonic::Code::FailedPrecondition, "{twice:?}");
}
