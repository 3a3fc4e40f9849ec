//! `tanoa export --format stix|misp` without IDs pages through the List RPC (issue 10 #14):
//! every advisory exactly once, however many pages, with a revision and a withdrawal in the
//! mix; and the List RPC's page tokens as a client sees them.

use std::collections::BTreeSet;

use tanoa_integration_tests::{RunOutput, TestNode, run_command, sample_draft};
use tanoa_proto::v1 as pb;

use crate::bins;

async fn tanoa(node: &TestNode, args: &[&str]) -> RunOutput {
    let mut all = vec!["--socket", node.socket_path().to_str().unwrap()];
    all.extend_from_slice(args);
    run_command(&bins().tanoa, &all).await
}

#[tokio::test]
async fn export_without_ids_pages_through_every_advisory() {
    let node = TestNode::start_new(&bins().tanoad, "ws-cert", "").await;
    let mut c = node.client().await;
    for n in 0..7u8 {
        c.publish(pb::PublishRequest {
            draft: Some(sample_draft(&format!("page-{n}"), "Paged export", 10 + n)),
        })
        .await
        .unwrap();
    }
    // A second revision of page-3 and a withdrawal of page-5.
    let r2 = c
        .publish(pb::PublishRequest {
            draft: Some(sample_draft("page-3", "Paged export, revised", 30)),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r2.revision, 2);
    tanoa(&node, &["withdraw", "page-5", "--reason", "false positive"])
        .await
        .expect_code(0, "withdraw page-5");

    // The List RPC: pages of 3 in advisory-key order, each resumed from its token.
    let mut seen = Vec::new();
    let mut token = Vec::new();
    let mut pages = 0;
    loop {
        let l = c
            .list(pb::ListRequest {
                limit: 3,
                order: pb::ListOrder::AdvisoryKey as i32,
                include_withdrawn: true,
                page_token: std::mem::take(&mut token),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        seen.extend(l.advisories.iter().map(|s| s.advisory_id.clone()));
        assert_eq!(l.truncated, !l.next_page_token.is_empty());
        if !l.truncated {
            break;
        }
        token = l.next_page_token;
    }
    assert_eq!(pages, 3);
    let expected: Vec<String> = (0..7).map(|n| format!("page-{n}")).collect();
    assert_eq!(seen, expected, "every advisory once, by id");
    let bad = c
        .list(pb::ListRequest {
            limit: 3,
            page_token: vec![2, b'x'],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    assert!(bad.message().contains("page_token"), "{}", bad.message());

    // STIX in pages of 2: six advisories (the withdrawn one left out), page-3 at revision 2.
    let out = node.dir().join("paged.stix.json");
    let ex = tanoa(
        &node,
        &[
            "--json",
            "export",
            "--format",
            "stix",
            "--page-size",
            "2",
            "-o",
            out.to_str().unwrap(),
        ],
    )
    .await;
    ex.expect_code(0, "export stix in pages of 2");
    let ex = ex.json();
    let advisories = ex["advisories"].as_array().unwrap();
    let ids: Vec<&str> = advisories
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    let unique: BTreeSet<&str> = ids.iter().copied().collect();
    assert_eq!(ids.len(), 6, "{ids:?}");
    assert_eq!(unique.len(), 6, "no advisory twice: {ids:?}");
    assert!(!unique.contains("page-5"));
    let p3 = advisories.iter().find(|a| a["id"] == "page-3").unwrap();
    assert_eq!(p3["revision"], 2);
    assert_eq!(p3["item_id"], r2.item_id.as_str());

    // With withdrawn ones, in pages of 1: all seven.
    let out = node.dir().join("paged-all.stix.json");
    let ex = tanoa(
        &node,
        &[
            "--json",
            "export",
            "--format",
            "stix",
            "--include-withdrawn",
            "--page-size",
            "1",
            "-o",
            out.to_str().unwrap(),
        ],
    )
    .await;
    ex.expect_code(0, "export stix in pages of 1");
    assert_eq!(ex.json()["advisories"].as_array().unwrap().len(), 7);

    // MISP in pages of 4: six events.
    let feed = node.dir().join("feed");
    let ex = tanoa(
        &node,
        &[
            "--json",
            "export",
            "--format",
            "misp",
            "--page-size",
            "4",
            "-o",
            feed.to_str().unwrap(),
        ],
    )
    .await;
    ex.expect_code(0, "export misp in pages of 4");
    assert_eq!(ex.json()["events"].as_array().unwrap().len(), 6);
}
