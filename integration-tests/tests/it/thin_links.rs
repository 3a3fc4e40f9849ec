//! Thin links (issue 12): the link emulator checked against its profiles, and real members
//! replicating through it: a member behind a cable-cut link ends with everything it may hold, a
//! slow link is never reported down, a publish overtakes a backlog in flight, and a drop in the
//! middle of a catch-up resumes without sending again what was already acknowledged.
//!
//! Times are scaled down where a profile's would make a test long (cable-cut drops 2 s every
//! 6 s instead of 10 s every 60 s); bandwidth and round trips are the profiles' own.

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use tanoa_integration_tests::corpus::{self, items_held};
use tanoa_integration_tests::federation::{Federation, Options, holds};
use tanoa_integration_tests::linkemu::{
    Dir, DropMode, Drops, EmuLink, Profile, bulk_bytes, check_profile,
};
use tanoa_integration_tests::{TestNode, sample_draft};
use tanoa_proto::v1 as pb;

use crate::bins;

/// `[sync]` of the thin-link federations: the daemon's defaults (timeouts, batch sizes,
/// backoff ceiling aside), with anti-entropy every ~2 s so a test does not wait 30 s.
fn thin_sync() -> Vec<(String, String)> {
    [
        ("interval_ms", "2000"),
        ("jitter_ms", "500"),
        ("backoff_base_ms", "500"),
        ("backoff_max_ms", "2000"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
    .collect()
}

/// cable-cut with its outages scaled down: 2 s every 6 s.
fn short_cable_cut() -> Profile {
    Profile::cable_cut().with_drops(
        Some(Drops::new(Duration::from_secs(6), Duration::from_secs(2))),
        DropMode::Stall,
    )
}

async fn peer_info(node: &TestNode, peer: &str) -> pb::PeerInfo {
    node.client()
        .await
        .peers(pb::PeersRequest {})
        .await
        .expect("Peers")
        .into_inner()
        .peers
        .into_iter()
        .find(|p| p.member_id == peer)
        .unwrap_or_else(|| panic!("{} has no peer {peer}", node.member()))
}

/// Polls `f` every 100 ms for at most `bound`.
async fn within<F, Fut>(bound: Duration, what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + bound;
    while !f().await {
        assert!(
            Instant::now() < deadline,
            "timed out after {bound:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn emulated_links_reach_their_bandwidth_and_round_trip() {
    // Loss-free (the loss model adds retransmissions and stalls on purpose), 2–3 s each.
    let mut runs = Vec::new();
    for (p, secs) in [
        (Profile::fibre(), 2.0),
        (Profile::satellite(), 3.0),
        (Profile::cable_cut(), 3.0),
    ] {
        let p = p.lossless();
        runs.push(tokio::task::spawn_blocking(move || {
            let bytes = bulk_bytes(&p, secs);
            check_profile(&p, bytes).unwrap_or_else(|e| panic!("{}: {e}", p.name))
        }));
    }
    for r in runs {
        let c = r.await.expect("check task");
        let name = &c.profile.name;
        assert!(
            c.bandwidth_fraction() >= 0.9,
            "{name}: {:.0} bit/s is {:.1}% of {} bit/s ({} bytes in {:?})",
            c.goodput_bps,
            c.bandwidth_fraction() * 100.0,
            c.profile.bandwidth_bps,
            c.bytes,
            c.elapsed
        );
        // The shaper cannot go faster than the link either.
        assert!(
            c.bandwidth_fraction() <= 1.02,
            "{name}: {:.0} bit/s exceeds the link",
            c.goodput_bps
        );
        // The link's round trip: the smallest of 9 to 40 ping-pongs (the median adds this shared
        // machine's thread wake-ups, up to several ms when it is loaded).
        assert!(
            (c.rtt_min_ratio() - 1.0).abs() <= 0.05,
            "{name}: round trip {:?} (median {:?}), profile {:?}",
            c.rtt_min,
            c.rtt,
            c.profile.rtt
        );
        assert_eq!(
            c.wire.retransmitted, 0,
            "{name}: nothing lost, nothing resent"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emulated_loss_resends_about_its_share_of_segments() {
    // satellite's bandwidth and round trip with cable-cut's 5% loss: ~260 segments in 3 s.
    let mut p = Profile::satellite();
    p.loss = 0.05;
    let bytes = bulk_bytes(&p, 3.0);
    let c = tokio::task::spawn_blocking(move || check_profile(&p, bytes).expect("check"))
        .await
        .expect("task");
    let share = c.wire.retransmitted as f64 / c.wire.forwarded as f64;
    assert!(
        (0.02..=0.10).contains(&share),
        "resent {share:.3} of {} bytes (loss 5%)",
        c.wire.forwarded
    );
    // Every byte still arrived; the losses cost their resending and some stalls, not the link.
    assert!(
        c.bandwidth_fraction() >= 0.6,
        "goodput {:.0}",
        c.goodput_bps
    );
}

/// An echo server on 127.0.0.1:0 (one thread per connection).
fn echo_server() -> std::net::SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            std::thread::spawn(move || {
                let mut buf = [0u8; 1024];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 || s.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

fn ping(c: &mut TcpStream) -> std::io::Result<Duration> {
    let t = Instant::now();
    c.write_all(b"x")?;
    let mut one = [0u8; 1];
    c.read_exact(&mut one)?;
    Ok(t.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emulated_drops_stall_or_reset_connections() {
    tokio::task::spawn_blocking(|| {
        let drops = Drops {
            every: Duration::from_secs(10),
            length: Duration::from_secs(1),
            first_at: Duration::from_millis(600),
        };
        let base = Profile::fibre().lossless();
        let echo = echo_server();

        // Stall: the connection survives; a byte sent in the outage arrives at the sender's
        // first retransmission after the link is back.
        let link = EmuLink::new(base.clone().with_drops(Some(drops), DropMode::Stall));
        let relay = link.relay_to(Dir::AtoB, echo).expect("relay");
        let origin = link.drops_origin();
        let mut c = TcpStream::connect(relay.addr()).expect("connect");
        c.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        ping(&mut c).expect("first ping");
        let fast = ping(&mut c).expect("ping before the outage");
        assert!(fast < Duration::from_millis(200), "{fast:?}");
        let wait = (origin + Duration::from_millis(700)).saturating_duration_since(Instant::now());
        std::thread::sleep(wait);
        assert!(link.is_down(), "the outage is on");
        let sent_at = Instant::now();
        ping(&mut c).expect("the connection survives the outage");
        let back = origin + Duration::from_millis(1600);
        assert!(Instant::now() >= back, "answered before the link came back");
        assert!(
            sent_at.elapsed() < Duration::from_secs(4),
            "{:?}",
            sent_at.elapsed()
        );
        assert!(
            link.stats().a_to_b.retransmitted > 0,
            "the lost byte counts as resent"
        );
        drop(relay);
        drop(link);

        // Reset: the open connection is closed at the outage; a new one is refused meanwhile.
        let link = EmuLink::new(base.with_drops(Some(drops), DropMode::Reset));
        let relay = link.relay_to(Dir::AtoB, echo).expect("relay");
        let origin = link.drops_origin();
        let mut c = TcpStream::connect(relay.addr()).expect("connect");
        c.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        ping(&mut c).expect("ping before the outage");
        let wait = (origin + Duration::from_millis(750)).saturating_duration_since(Instant::now());
        std::thread::sleep(wait);
        assert!(ping(&mut c).is_err(), "the connection was reset");
        let mut d = TcpStream::connect(relay.addr()).expect("the relay accepts, then closes");
        d.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        assert!(ping(&mut d).is_err(), "refused during the outage");
        assert!(link.stats().resets >= 1);
        let wait = (origin + Duration::from_millis(1700)).saturating_duration_since(Instant::now());
        std::thread::sleep(wait);
        let mut e = TcpStream::connect(relay.addr()).expect("connect after the outage");
        e.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        ping(&mut e).expect("a new connection works after the outage");
    })
    .await
    .expect("drop checks");
}

/// Publishes `draft` on `node`; the item id.
async fn publish(node: &TestNode, draft: pb::AdvisoryDraft) -> String {
    node.client()
        .await
        .publish(pb::PublishRequest { draft: Some(draft) })
        .await
        .unwrap_or_else(|s| panic!("publish on {}: {s}", node.member()))
        .into_inner()
        .item_id
}

fn restricted(id: &str, tlp: pb::Tlp, audience: &[&str]) -> pb::AdvisoryDraft {
    let mut d = sample_draft(id, "Thin-link restricted advisory", 7);
    d.tlp = tlp as i32;
    d.audience = audience.iter().map(ToString::to_string).collect();
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_behind_a_cable_cut_ends_with_everything_it_may_hold() {
    let b = bins();
    let opts = Options {
        sync: Some(thin_sync()),
        profile: Some(short_cable_cut()),
        extra_config: Vec::new(),
        pinned: false,
    };
    let fed = Federation::start_with(&b.tanoad, &["ws-cert", "to-cert", "fj-cert"], &opts).await;
    let (ws, to, fj) = (0, 1, 2);
    // Publish in three rounds spread over ~9 s, so that outages fall among them.
    let mut green = Vec::new();
    for round in 0..3u64 {
        let drafts: Vec<_> = (0..6)
            .map(|k| corpus::generated_draft("cc", round * 10 + k))
            .collect();
        for r in corpus::publish_all(&fed.nodes[ws], &drafts, 6).await {
            green.push(r.advisory_id);
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    publish(
        &fed.nodes[ws],
        restricted("cc-amber-to", pb::Tlp::Amber, &["to-cert"]),
    )
    .await;
    publish(
        &fed.nodes[ws],
        restricted("cc-red-to", pb::Tlp::Red, &["to-cert"]),
    )
    .await;
    publish(
        &fed.nodes[ws],
        restricted("cc-amber-fj", pb::Tlp::Amber, &["fj-cert"]),
    )
    .await;
    let mut want_to: Vec<String> = green.iter().map(|g| format!("ws-cert/{g}")).collect();
    want_to.push("ws-cert/cc-amber-to".into());
    want_to.push("ws-cert/cc-red-to".into());
    let node = &fed.nodes[to];
    within(
        Duration::from_secs(120),
        "to-cert to hold everything it may",
        || async {
            for id in &want_to {
                if !holds(node, id).await {
                    return false;
                }
            }
            true
        },
    )
    .await;
    let third = &fed.nodes[fj];
    within(
        Duration::from_secs(60),
        "fj-cert to hold its AMBER advisory",
        || async { holds(third, "ws-cert/cc-amber-fj").await },
    )
    .await;
    // Nothing it may not hold, after a few more reconciliations over the same links.
    fed.settle(&[ws, to, fj], 1).await;
    assert!(
        !holds(node, "ws-cert/cc-amber-fj").await,
        "to-cert is not in that audience"
    );
    assert!(
        !holds(&fed.nodes[fj], "ws-cert/cc-red-to").await,
        "RED went to to-cert only"
    );
    assert_eq!(
        items_held(node).await,
        want_to.len() as u64,
        "to-cert holds exactly what it may"
    );
}

/// A backlog of about `seconds` of the satellite link: the APT40 parts and generated advisories.
fn backlog(prefix: &str, n: usize) -> Vec<pb::AdvisoryDraft> {
    corpus::corpus(prefix, n, true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_link_is_never_reported_down() {
    let b = bins();
    let opts = Options {
        sync: Some(thin_sync()),
        profile: Some(Profile::satellite()),
        extra_config: Vec::new(),
        pinned: false,
    };
    let fed = Federation::start_with(&b.tanoad, &["ws-cert", "to-cert"], &opts).await;
    // The first member's reconciliation at start fails (the second was not running yet):
    // wait until both completed one, then count only what happens from there on.
    fed.settle(&[0, 1], 1).await;
    let pairs = [(0, "to-cert"), (1, "ws-cert")];
    let mut base = Vec::new();
    for (me, peer) in pairs {
        let p = peer_info(&fed.nodes[me], peer).await;
        base.push((p.timeouts, p.sessions_failed));
    }
    let drafts = backlog("slow", 500);
    let total = drafts.len() as u64 + items_held(&fed.nodes[1]).await;
    corpus::publish_all(&fed.nodes[0], &drafts, 100).await;
    let deadline = Instant::now() + Duration::from_secs(150);
    let mut seen_down = Vec::new();
    loop {
        for (k, (me, peer)) in pairs.iter().enumerate() {
            let p = peer_info(&fed.nodes[*me], peer).await;
            if p.link == "down" || p.timeouts > base[k].0 || p.sessions_failed > base[k].1 {
                seen_down.push(format!(
                    "{} saw {peer}: link {}, timeouts {} (before {}), sessions failed {} (before {})",
                    fed.ids()[*me],
                    p.link,
                    p.timeouts,
                    base[k].0,
                    p.sessions_failed,
                    base[k].1
                ));
            }
        }
        if items_held(&fed.nodes[1]).await >= total {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the backlog did not arrive in 150 s"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    seen_down.dedup();
    assert!(
        seen_down.is_empty(),
        "a slow link was reported down: {seen_down:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_overtakes_a_backlog_in_flight() {
    // A catch-up on `satellite`: to-cert starts behind a cut link while ws-cert holds a backlog
    // of several seconds of link time; once the catch-up is flowing, ws-cert publishes a probe.
    // The probe must be held before the backlog is complete (order, not speed: how fast it
    // overtakes is the `thin_links` bench's figure).
    let b = bins();
    let p = Profile::satellite();
    let opts = Options {
        sync: Some(thin_sync()),
        profile: Some(p.clone()),
        extra_config: Vec::new(),
        pinned: false,
    };
    let mut fed = Federation::create_with(&b.tanoad, &["ws-cert", "to-cert"], &[], &opts).await;
    fed.start_member(0).await;
    let drafts = backlog("prio", 1_500);
    let total = drafts.len() as u64;
    corpus::publish_all(&fed.nodes[0], &drafts, 100).await;
    fed.emulated(0, 1).cut();
    fed.start_member(1).await;
    fed.emulated(0, 1).heal();
    within(
        Duration::from_secs(90),
        "the backlog to start arriving",
        || async { items_held(&fed.nodes[1]).await > 0 },
    )
    .await;
    let probe = sample_draft("prio-probe", "Published during the backlog", 9);
    let t0 = Instant::now();
    publish(&fed.nodes[0], probe).await;
    within(Duration::from_secs(150), "the probe to arrive", || async {
        holds(&fed.nodes[1], "ws-cert/prio-probe").await
    })
    .await;
    let latency = t0.elapsed();
    // Held now: backlog items and the probe.
    let backlog_held = items_held(&fed.nodes[1]).await.saturating_sub(1);
    assert!(
        backlog_held < total,
        "the probe arrived only after the whole backlog ({backlog_held} of {total} items held, \
         {latency:?})"
    );
    eprintln!(
        "probe held after {latency:?} with {backlog_held} of {total} backlog items held \
         (3 RTT + tx = {:?})",
        p.rtt * 3 + p.tx_time(4096)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drop_mid_catch_up_resumes_without_resending_acknowledged_items() {
    let b = bins();
    let opts = Options {
        sync: Some(thin_sync()),
        profile: Some(Profile::satellite().lossless()),
        extra_config: Vec::new(),
        pinned: false,
    };
    let mut fed = Federation::create_with(&b.tanoad, &["ws-cert", "to-cert"], &[], &opts).await;
    fed.start_member(0).await;
    let drafts = backlog("resume", 400);
    let total = drafts.len() as u64;
    corpus::publish_all(&fed.nodes[0], &drafts, 100).await;
    // The far member starts behind a cut link, then the catch-up begins.
    fed.emulated(0, 1).cut();
    fed.start_member(1).await;
    let sent_before = peer_info(&fed.nodes[0], "to-cert").await.items_sent;
    fed.emulated(0, 1).heal();
    within(
        Duration::from_secs(90),
        "a third of the backlog",
        || async { items_held(&fed.nodes[1]).await >= total / 3 },
    )
    .await;
    // Drop mid-catch-up: every connection reset, 2 s without a link.
    fed.emulated(0, 1).cut();
    let sent_at_cut = peer_info(&fed.nodes[0], "to-cert").await.items_sent - sent_before;
    let held_at_cut = items_held(&fed.nodes[1]).await;
    assert!(
        held_at_cut < total,
        "the catch-up was still running at the cut"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    fed.emulated(0, 1).heal();
    within(
        Duration::from_secs(120),
        "the rest of the backlog",
        || async { items_held(&fed.nodes[1]).await >= total },
    )
    .await;
    let far = peer_info(&fed.nodes[1], "ws-cert").await;
    assert_eq!(
        far.duplicates_received, 0,
        "nothing to-cert held was sent again"
    );
    let sent = peer_info(&fed.nodes[0], "to-cert").await.items_sent - sent_before;
    // Only what was in flight at the cut (sent, not yet stored) may be sent a second time.
    let in_flight = sent_at_cut.saturating_sub(held_at_cut);
    assert!(
        sent <= total + in_flight,
        "{sent} items sent for {total} ({in_flight} were in flight at the cut)"
    );
}
