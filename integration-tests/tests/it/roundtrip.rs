//! Publish → SIGTERM → restart → the same envelope bytes come back, verified, and indicator
//! search (exact and inside a CIDR) and List still find the advisory.

use tanoa_integration_tests::{TestNode, sample_draft, verify_envelope};
use tanoa_proto::v1 as pb;

use crate::bins;

#[tokio::test]
async fn publish_survives_restart_and_is_found_by_get_search_and_list() {
    let mut node = TestNode::start_new(&bins().tanoad, "ws-cert", "").await;
    let mut c = node.client().await;
    let published = c
        .publish(pb::PublishRequest {
            draft: Some(sample_draft("apt40-rt", "APT40 round trip", 10)),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(published.advisory_id, "apt40-rt");
    assert_eq!(published.revision, 1);
    assert_eq!(published.origin, "ws-cert");
    assert_eq!(published.item_id.len(), 64);
    let before = c
        .get(pb::GetRequest {
            id: published.item_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let env_before = before.envelope.clone().expect("envelope");
    drop(c);

    node.stop().await;
    node.start().await;
    let mut c = node.client().await;

    for id in [published.item_id.clone(), "apt40-rt".to_string()] {
        let got = c
            .get(pb::GetRequest { id: id.clone() })
            .await
            .unwrap_or_else(|s| panic!("get {id}: {s}"))
            .into_inner();
        assert_eq!(got.item_id, published.item_id, "get {id}");
        let env = got.envelope.expect("envelope");
        assert_eq!(
            env, env_before,
            "get {id}: envelope bytes changed across restart"
        );
        let v = got.verification.expect("verification");
        assert!(v.valid, "get {id}: {v:?}");
        assert_eq!(v.signer, "ws-cert");
        assert!(!got.superseded);
        // A partner holding only our public key verifies the same bytes.
        let verified = verify_envelope(&env, &node.keyring()).expect("verifies offline");
        assert_eq!(verified.item_id().to_hex(), published.item_id);
        assert_eq!(verified.id, "apt40-rt");
        let adv = got.advisory.expect("advisory");
        assert_eq!(adv.title, "APT40 round trip");
        assert_eq!(adv.revision, 1);
        assert_eq!(adv.indicators.len(), 4);
        // Normalized on publish: lower-case domain and digest.
        assert!(
            adv.indicators
                .iter()
                .any(|i| i.value == "update.pacific-news.example"),
            "{:?}",
            adv.indicators
        );
        assert!(
            adv.indicators
                .iter()
                .any(|i| i.value
                    == "abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789")
        );
    }

    let exact = c
        .search_indicator(pb::SearchIndicatorRequest {
            value: "192.0.2.10".into(),
            kind: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(exact.hits.len(), 1, "{exact:?}");
    assert_eq!(exact.hits[0].r#match, "exact");
    assert_eq!(
        exact.hits[0].advisory.as_ref().unwrap().item_id,
        published.item_id
    );

    let inside = c
        .search_indicator(pb::SearchIndicatorRequest {
            value: "198.51.100.77".into(),
            kind: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(inside.hits.len(), 1, "{inside:?}");
    assert_eq!(inside.hits[0].r#match, "cidr");
    assert_eq!(
        inside.hits[0].indicator.as_ref().unwrap().value,
        "198.51.100.0/24"
    );

    let domain = c
        .search_indicator(pb::SearchIndicatorRequest {
            value: "UPDATE.pacific-news.EXAMPLE".into(),
            kind: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(domain.normalized, "update.pacific-news.example");
    assert_eq!(domain.hits.len(), 1, "{domain:?}");

    let miss = c
        .search_indicator(pb::SearchIndicatorRequest {
            value: "203.0.113.5".into(),
            kind: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(miss.hits.is_empty(), "{miss:?}");

    let list = c
        .list(pb::ListRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.advisories.len(), 1, "{list:?}");
    assert_eq!(list.advisories[0].item_id, published.item_id);
    assert_eq!(list.advisories[0].indicator_count, 4);

    let status = c.status(pb::StatusRequest {}).await.unwrap().into_inner();
    assert_eq!((status.advisories, status.items), (1, 1));
    drop(c);
    node.stop().await;
}
