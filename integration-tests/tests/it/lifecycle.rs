//! Process lifecycle of a real daemon: Watch streams across shutdown, a second daemon on the
//! same member refused, JSON logs, and advisories at the size limit over the real socket.

use std::time::{Duration, Instant};

use tanoa_integration_tests::{TestNode, run_command, sample_draft};
use tanoa_proto::v1 as pb;

use crate::bins;

#[tokio::test]
async fn watch_reports_changes_and_does_not_hold_up_shutdown() {
    let mut node = TestNode::start_new(&bins().tanoad, "ws-cert", "").await;
    let mut c = node.client().await;
    let mut stream = c.watch(pb::WatchRequest {}).await.unwrap().into_inner();
    c.publish(pb::PublishRequest {
        draft: Some(sample_draft("w-1", "first", 40)),
    })
    .await
    .unwrap();
    c.publish(pb::PublishRequest {
        draft: Some(sample_draft("w-1", "second", 41)),
    })
    .await
    .unwrap();
    c.withdraw(pb::WithdrawRequest {
        id: "w-1".into(),
        reason: "test".into(),
    })
    .await
    .unwrap();
    let mut kinds = Vec::new();
    for _ in 0..3 {
        let ev = tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .expect("watch event within 10 s")
            .unwrap()
            .expect("stream open");
        let a = ev.advisory.unwrap();
        kinds.push((ev.kind, a.advisory_id, a.revision));
    }
    assert_eq!(
        kinds,
        vec![
            (pb::WatchEventKind::New as i32, "w-1".to_string(), 1),
            (pb::WatchEventKind::Updated as i32, "w-1".to_string(), 2),
            (pb::WatchEventKind::Withdrawn as i32, "w-1".to_string(), 3),
        ]
    );
    // An open Watch stream must not keep the daemon from stopping on SIGTERM.
    let t = Instant::now();
    node.stop().await;
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "shutdown with an open Watch took {:?}",
        t.elapsed()
    );
    let end = tokio::time::timeout(Duration::from_secs(5), stream.message())
        .await
        .expect("the stream ends when the daemon stops");
    assert!(!matches!(end, Ok(Some(_))), "event after shutdown: {end:?}");
}

#[tokio::test]
async fn second_daemon_on_the_same_member_is_refused_and_the_first_keeps_serving() {
    let b = bins();
    let mut node = TestNode::start_new(&b.tanoad, "ws-cert", "").await;
    let mut c = node.client().await;
    c.publish(pb::PublishRequest {
        draft: Some(sample_draft("dup-1", "held by the first daemon", 50)),
    })
    .await
    .unwrap();
    let second = run_command(
        &b.tanoad,
        ["--config", node.config_path().to_str().unwrap()],
    )
    .await;
    second.expect_code(1, "second tanoad on the same config");
    assert!(
        second.stderr.contains("already running"),
        "{}",
        second.stderr
    );
    // The first one still answers on the same socket, with its data.
    let mut c = node.client().await;
    let st = c.status(pb::StatusRequest {}).await.unwrap().into_inner();
    assert_eq!(st.items, 1);
    node.stop().await;
}

#[tokio::test]
async fn json_logs_are_one_object_per_line() {
    let mut node = TestNode::create(&bins().tanoad, "ws-cert", "");
    node.set_args(&["--log-format", "json"]);
    node.start().await;
    let mut c = node.client().await;
    c.publish(pb::PublishRequest {
        draft: Some(sample_draft("log-1", "logged", 60)),
    })
    .await
    .unwrap();
    node.stop().await;
    let log = std::fs::read_to_string(node.dir().join("tanoad.stderr.log")).unwrap();
    let lines: Vec<&str> = log.lines().filter(|l| !l.starts_with("===")).collect();
    assert!(lines.len() >= 3, "{log}");
    let mut messages = Vec::new();
    for l in &lines {
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        assert!(v.get("level").is_some(), "{l}");
        messages.push(v["message"].as_str().unwrap_or_default().to_string());
    }
    for m in [
        "tanoad started",
        "published",
        "tanoad stopped; store synced",
    ] {
        assert!(
            messages.iter().any(|x| x == m),
            "{m:?} not logged: {messages:?}"
        );
    }
}

#[tokio::test]
async fn advisory_near_the_payload_limit_round_trips_and_one_over_is_refused() {
    let mut node = TestNode::start_new(&bins().tanoad, "ws-cert", "").await;
    let mut c = node.client().await;
    let big = |n: usize| {
        let mut d = sample_draft("", "many indicators", 70);
        d.indicators = (0..n)
            .map(|i| pb::Indicator {
                kind: pb::IndicatorKind::Domain as i32,
                value: format!("host-{i:06}.big.example"),
                confidence: 10,
                valid_until_ms: 0,
                note: String::new(),
            })
            .collect();
        d
    };
    // About 0.7 MiB of payload: under the 1 MiB default.
    let ok = c
        .publish(pb::PublishRequest {
            draft: Some(big(25_000)),
        })
        .await
        .unwrap()
        .into_inner();
    // About 1.4 MiB: refused, naming the limit; nothing stored.
    let err = c
        .publish(pb::PublishRequest {
            draft: Some(big(50_000)),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    println!("over the limit: {}", err.message());
    assert!(err.message().contains("1048576"), "{}", err.message());
    drop(c);
    node.restart().await;
    let mut c = node.client().await;
    let got = c
        .get(pb::GetRequest {
            id: ok.item_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.advisory.unwrap().indicators.len(), 25_000);
    assert!(got.verification.unwrap().valid);
    let hits = c
        .search_indicator(pb::SearchIndicatorRequest {
            value: "host-024999.big.example".into(),
            kind: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(hits.hits.len(), 1);
    let st = c.status(pb::StatusRequest {}).await.unwrap().into_inner();
    assert_eq!(st.items, 1);
    assert_eq!(st.indicators, 25_000);
}
