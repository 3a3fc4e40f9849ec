//! Membership and TLS trust applied live, with real `tanoad` processes and no CA at all: every
//! member has a self-signed certificate pinned (SHA-256 of its public key) in the others'
//! rosters. A fourth member joins, a member is removed, a certificate is renewed by a new pin,
//! and a listen address changes — each by editing `tanoad.toml` and sending SIGHUP, and no
//! daemon's process id changes during any of it. Every wait is bounded (`Federation::eventually`).

use tanoa_integration_tests::federation::{Federation, holds};
use tanoa_integration_tests::{TestNode, run_command, sighup};
use tanoa_proto::v1 as pb;

use crate::bins;
use crate::federation::draft;

fn green(id: &str, host: u8) -> pb::AdvisoryDraft {
    draft(
        id,
        &format!("Live membership {id}"),
        host,
        pb::Tlp::Green,
        &[],
    )
}

async fn status(node: &TestNode) -> pb::StatusResponse {
    node.client()
        .await
        .status(pb::StatusRequest {})
        .await
        .expect("Status")
        .into_inner()
}

/// Sends SIGHUP to `node` and waits until it applied the reload.
async fn reload(node: &TestNode) {
    let before = status(node).await.config_reloads;
    sighup(node.pid().expect("running")).expect("SIGHUP");
    let what = format!("{} to apply a reload", node.member());
    Federation::eventually(&what, || async {
        status(node).await.config_reloads > before
    })
    .await;
}

/// The value of a metric sample (exact series text, e.g. `name{label="x"}`), 0 if absent.
async fn metric(node: &TestNode, series: &str) -> u64 {
    let text = node.scrape_metrics().await;
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0)
}

fn pids(fed: &Federation, members: &[usize]) -> Vec<u32> {
    members
        .iter()
        .map(|&i| fed.nodes[i].pid().expect("running"))
        .collect()
}

async fn peers_of(node: &TestNode) -> Vec<String> {
    node.client()
        .await
        .peers(pb::PeersRequest {})
        .await
        .expect("Peers")
        .into_inner()
        .peers
        .into_iter()
        .map(|p| p.member_id)
        .collect()
}

/// (a) three members with self-signed pinned certificates and no CA replicate; (b) a fourth
/// member added to the others' configs and SIGHUP is dialled and replicates both ways.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pinned_members_replicate_without_a_ca_and_a_fourth_joins_by_sighup() {
    let ids = ["ws-cert", "to-cert", "fj-cert", "ck-cert"];
    let mut fed = Federation::create_pinned(&bins().tanoad, &ids).await;
    for i in 0..3 {
        fed.set_roster(i, &[0, 1, 2]);
    }
    for i in 0..4 {
        fed.start_member(i).await;
    }
    let before = pids(&fed, &[0, 1, 2, 3]);
    let cfg = std::fs::read_to_string(fed.nodes[0].config_path()).unwrap();
    assert!(
        cfg.contains("tls_pins") && !cfg.contains("trust_anchors"),
        "pinned, no CA:\n{cfg}"
    );

    // (a) Replication among the three founders, pins only.
    let p = fed.publish(0, green("live-a1", 11)).await;
    fed.wait_latest(&[1, 2], &p.item_id, &p.item_id).await;
    let q = fed.publish(2, green("live-a2", 12)).await;
    fed.wait_latest(&[0, 1], &q.item_id, &q.item_id).await;
    // ck-cert is not in their rosters yet: its connections are refused, nothing reaches it.
    let node0 = &fed.nodes[0];
    Federation::eventually("ws-cert to refuse the unknown ck-cert", || async {
        metric(node0, "tanoa_peer_refusals_total{reason=\"unknown_pin\"}").await > 0
    })
    .await;
    assert!(!holds(&fed.nodes[3], &p.item_id).await);
    assert_eq!(peers_of(&fed.nodes[0]).await, ["fj-cert", "to-cert"]);

    // (b) The founders add ck-cert (endpoint, key, pin) and reload.
    for i in 0..3 {
        fed.set_roster(i, &[0, 1, 2, 3]);
    }
    for i in 0..3 {
        reload(&fed.nodes[i]).await;
    }
    assert_eq!(
        peers_of(&fed.nodes[0]).await,
        ["ck-cert", "fj-cert", "to-cert"]
    );
    fed.wait_latest(&[3], &p.item_id, &p.item_id).await;
    fed.wait_latest(&[3], &q.item_id, &q.item_id).await;
    let r = fed.publish(3, green("live-b1", 13)).await;
    fed.wait_latest(&[0, 1, 2], &r.item_id, &r.item_id).await;
    assert_eq!(
        metric(
            &fed.nodes[0],
            "tanoa_membership_changes_total{change=\"member_added\"}"
        )
        .await,
        1
    );
    assert!(fed.nodes[0].logs().contains("member added"));
    assert_eq!(pids(&fed, &[0, 1, 2, 3]), before, "no daemon restarted");
}

/// (c) a member removed from the others' configs and SIGHUP is disconnected, its new items
/// are refused, and it is no longer a peer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_member_is_disconnected_and_its_new_items_refused() {
    let ids = ["ws-cert", "to-cert", "fj-cert"];
    let mut fed = Federation::create_pinned(&bins().tanoad, &ids).await;
    for i in 0..3 {
        fed.start_member(i).await;
    }
    let before = pids(&fed, &[0, 1, 2]);
    let p = fed.publish(2, green("live-c1", 21)).await;
    fed.wait_latest(&[0, 1], &p.item_id, &p.item_id).await;
    // Connections with fj-cert exist in both directions.
    fed.settle(&[0, 1, 2], 1).await;

    for i in 0..2 {
        fed.set_roster(i, &[0, 1]);
    }
    for i in 0..2 {
        reload(&fed.nodes[i]).await;
    }
    for i in 0..2 {
        let node = &fed.nodes[i];
        assert_eq!(peers_of(node).await.len(), 1, "fj-cert is no longer a peer");
        assert_eq!(
            metric(
                node,
                "tanoa_membership_changes_total{change=\"member_removed\"}"
            )
            .await,
            1
        );
        assert!(node.logs().contains("member removed"));
    }
    let closed = metric(
        &fed.nodes[0],
        "tanoa_membership_changes_total{change=\"connection_closed\"}",
    )
    .await
        + metric(
            &fed.nodes[1],
            "tanoa_membership_changes_total{change=\"connection_closed\"}",
        )
        .await;
    assert!(closed >= 1, "the removed member's connections were closed");
    // fj-cert still lists them and keeps trying: every attempt is refused at the handshake.
    let q = fed.publish(2, green("live-c2", 22)).await;
    let node0 = &fed.nodes[0];
    let refused_before = metric(node0, "tanoa_peer_refusals_total{reason=\"unknown_pin\"}").await;
    Federation::eventually("ws-cert to refuse fj-cert's new connections", || async {
        metric(node0, "tanoa_peer_refusals_total{reason=\"unknown_pin\"}").await > refused_before
    })
    .await;
    fed.settle(&[0, 1], 2).await;
    for i in 0..2 {
        assert!(
            !holds(&fed.nodes[i], &q.item_id).await,
            "{} holds an item the removed member published after its removal",
            fed.ids()[i]
        );
    }
    // What it published before stays (decision: removal does not withdraw).
    assert!(holds(&fed.nodes[0], &p.item_id).await);
    // The two remaining members still replicate.
    let r = fed.publish(0, green("live-c3", 23)).await;
    fed.wait_latest(&[1], &r.item_id, &r.item_id).await;
    assert_eq!(pids(&fed, &[0, 1, 2]), before, "no daemon restarted");
}

/// (d) a certificate renewal by a new pin: the others pin old and new, the member switches to
/// its new certificate (SIGHUP), the others drop the old pin; replication never stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_renewal_by_a_new_pin_keeps_replicating() {
    let ids = ["ws-cert", "to-cert", "fj-cert"];
    let mut fed = Federation::create_pinned(&bins().tanoad, &ids).await;
    for i in 0..3 {
        fed.start_member(i).await;
    }
    let before = pids(&fed, &[0, 1, 2]);
    let p = fed.publish(1, green("live-d1", 31)).await;
    fed.wait_latest(&[0, 2], &p.item_id, &p.item_id).await;
    fed.settle(&[0, 1, 2], 1).await;

    // 1. The others pin to-cert's old and new keys.
    let old = fed.pins(1).to_vec();
    let new = fed.renew_certificate(1);
    fed.set_pins(1, vec![old[0].clone(), new.clone()]);
    for i in [0, 2] {
        fed.write_config(i);
        reload(&fed.nodes[i]).await;
    }
    let q = fed.publish(1, green("live-d2", 32)).await;
    fed.wait_latest(&[0, 2], &q.item_id, &q.item_id).await;
    // 2. to-cert presents its new certificate from its next handshake on.
    fed.write_config(1);
    reload(&fed.nodes[1]).await;
    assert!(
        fed.nodes[1]
            .logs()
            .contains("peer TLS certificate replaced")
    );
    let r = fed.publish(0, green("live-d3", 33)).await;
    fed.wait_latest(&[1, 2], &r.item_id, &r.item_id).await;
    // 3. The old pin is dropped: connections still authenticated by it are closed, and new
    //    ones present the new certificate.
    fed.set_pins(1, vec![new]);
    for i in [0, 2] {
        fed.write_config(i);
        reload(&fed.nodes[i]).await;
    }
    let closed = metric(
        &fed.nodes[0],
        "tanoa_membership_changes_total{change=\"connection_closed\"}",
    )
    .await
        + metric(
            &fed.nodes[2],
            "tanoa_membership_changes_total{change=\"connection_closed\"}",
        )
        .await;
    assert!(closed >= 1, "connections under the old pin were closed");
    let s = fed.publish(1, green("live-d4", 34)).await;
    fed.wait_latest(&[0, 2], &s.item_id, &s.item_id).await;
    let t = fed.publish(2, green("live-d5", 35)).await;
    fed.wait_latest(&[0, 1], &t.item_id, &t.item_id).await;
    assert_eq!(pids(&fed, &[0, 1, 2]), before, "no daemon restarted");
}

/// (e) a SIGHUP changing the listen address reports "needs restart" (status, log, metrics) and
/// keeps serving; a config that does not parse is refused and the running config stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_listen_address_needs_a_restart_and_a_broken_config_is_refused() {
    let ids = ["ws-cert", "to-cert"];
    let mut fed = Federation::create_pinned(&bins().tanoad, &ids).await;
    for i in 0..2 {
        fed.start_member(i).await;
    }
    let before = pids(&fed, &[0, 1]);
    let node = &fed.nodes[0];
    let path = node.config_path().to_path_buf();
    let text = std::fs::read_to_string(&path).unwrap();
    let moved = text.replacen(
        "[peer]\nlisten = \"127.0.0.1:0\"",
        "[peer]\nlisten = \"127.0.0.2:0\"",
        1,
    );
    assert_ne!(moved, text, "the test rewrote peer.listen");
    std::fs::write(&path, &moved).unwrap();
    reload(node).await;
    assert_eq!(status(node).await.restart_required, ["peer.listen"]);
    assert!(
        node.logs().lines().any(|l| l.contains("WARN")
            && l.contains("needs a restart")
            && l.contains("peer.listen")),
        "a WARN line names the key:\n{}",
        node.logs()
    );
    assert_eq!(metric(node, "tanoa_config_restart_required").await, 1);
    let config = path.display().to_string();
    let out = run_command(&bins().tanoa, ["--config", config.as_str(), "status"]).await;
    out.expect_code(0, "tanoa status");
    assert!(
        out.stdout.contains("NEEDS RESTART") && out.stdout.contains("peer.listen"),
        "{}",
        out.stdout
    );
    // `tanoa reload` does the same as SIGHUP.
    let out = run_command(&bins().tanoa, ["--config", config.as_str(), "reload"]).await;
    out.expect_code(0, "tanoa reload");
    assert!(out.stdout.contains("peer.listen"), "{}", out.stdout);
    // Still serving on the old address.
    let p = fed.publish(0, green("live-e1", 41)).await;
    fed.wait_latest(&[1], &p.item_id, &p.item_id).await;

    // A config that does not parse: refused with the file and key, nothing changes.
    std::fs::write(
        &path,
        moved.replacen("[member]\n", "[member]\nbogus = 1\n", 1),
    )
    .unwrap();
    let reloads = status(node).await.config_reloads;
    sighup(node.pid().unwrap()).unwrap();
    Federation::eventually("ws-cert to refuse the broken config", || async {
        metric(node, "tanoa_config_reloads_total{outcome=\"refused\"}").await == 1
    })
    .await;
    assert!(
        node.logs().contains("config reload refused") && node.logs().contains("bogus"),
        "the refusal names the key"
    );
    let st = status(node).await;
    assert_eq!(
        st.config_reloads, reloads,
        "a refused reload applies nothing"
    );
    assert_eq!(st.restart_required, ["peer.listen"]);
    let q = fed.publish(0, green("live-e2", 42)).await;
    fed.wait_latest(&[1], &q.item_id, &q.item_id).await;
    let r = fed.publish(1, green("live-e3", 43)).await;
    fed.wait_latest(&[0], &r.item_id, &r.item_id).await;
    assert_eq!(pids(&fed, &[0, 1]), before, "no daemon restarted");
}
