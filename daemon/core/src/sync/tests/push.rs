//! Eager push targets: direct delivery, gossip fanout, never back to the source, never to a down
//! peer, and the per-item tree reaching every member exactly once.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::net::item;
use crate::model::Tlp;
use crate::policy;
use crate::sync::{Action, PushMode, PushResponse, Source, SyncConfig, SyncCore};

const T0: u64 = 1_700_000_000_000;

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("m{i:03}")).collect()
}

fn cfg(mode: PushMode) -> SyncConfig {
    SyncConfig {
        interval_ms: 0,
        reconcile_on_connect: false,
        push_mode: mode,
        ..SyncConfig::default()
    }
}

fn member(me: &str, all: &[String], mode: PushMode) -> SyncCore {
    let mut c = SyncCore::new(cfg(mode), me, all.iter().cloned(), 5, T0).unwrap();
    while c.poll_action().is_some() {}
    c
}

/// Peers an accepted item is pushed to (each push is answered at once, so the in-flight limit
/// never holds one back).
fn pushed_to(c: &mut SyncCore) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    while let Some(a) = c.poll_action() {
        if let Action::Push { to, req, .. } = a {
            c.on_push_response(T0, &to, req, &PushResponse::default());
            out.insert(to);
        }
    }
    out
}

fn strs(v: &[&str]) -> BTreeSet<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn origin_delivers_red_and_small_audiences_directly_to_every_recipient() {
    let all = names(40);
    let mut a = member("m000", &all, PushMode::Tree);
    let aud5 = ["m003", "m007", "m011", "m020", "m039"];
    let amber = item("m000", 1, Tlp::Amber, &aud5, 1);
    a.item_accepted(T0, &amber.meta, Source::Local);
    assert_eq!(pushed_to(&mut a), strs(&aud5));

    let big: Vec<String> = all[1..].to_vec();
    let big_refs: Vec<&str> = big.iter().map(String::as_str).collect();
    let red = item("m000", 2, Tlp::Red, &big_refs, 1);
    a.item_accepted(T0, &red.meta, Source::Local);
    assert_eq!(
        pushed_to(&mut a),
        big.iter().cloned().collect(),
        "RED: always direct"
    );

    // AMBER with 33 recipients is gossiped: `fanout` targets, all in the audience.
    let aud33: Vec<&str> = big_refs[..33].to_vec();
    let amber33 = item("m000", 3, Tlp::AmberStrict, &aud33, 1);
    a.item_accepted(T0, &amber33.meta, Source::Local);
    let t = pushed_to(&mut a);
    assert_eq!(t.len(), 3);
    assert!(t.iter().all(|m| aud33.contains(&m.as_str())));
}

#[test]
fn relays_of_direct_items_push_nothing_and_gossip_never_goes_back() {
    let all = names(10);
    for mode in [PushMode::Tree, PushMode::Random] {
        let mut b = member("m001", &all, mode);
        let amber = item("m000", 1, Tlp::Amber, &["m001", "m002"], 1);
        b.item_accepted(T0, &amber.meta, Source::Peer("m000"));
        assert!(pushed_to(&mut b).is_empty(), "{mode:?}");
        let red = item("m000", 2, Tlp::Red, &["m001", "m002"], 1);
        b.item_accepted(T0, &red.meta, Source::Peer("m000"));
        assert!(pushed_to(&mut b).is_empty(), "{mode:?}");
        // Random gossip: exactly `fanout` peers, never the source.
        if mode == PushMode::Random {
            for n in 0..50 {
                let g = item("m005", 100 + n, Tlp::Green, &[], 1);
                b.item_accepted(T0, &g.meta, Source::Peer("m005"));
                let t = pushed_to(&mut b);
                assert_eq!(t.len(), 3);
                assert!(!t.contains("m005") && !t.contains("m001"));
            }
        }
    }
}

#[test]
fn random_targets_skip_down_peers_and_spread() {
    let all = names(8);
    let mut a = member("m000", &all, PushMode::Random);
    a.peer_down(T0, "m003");
    while a.poll_action().is_some() {}
    let mut seen = BTreeMap::new();
    for n in 0..300 {
        let g = item("m000", n, Tlp::Green, &[], 1);
        a.item_accepted(T0, &g.meta, Source::Local);
        for t in pushed_to(&mut a) {
            *seen.entry(t).or_insert(0) += 1;
        }
    }
    assert!(!seen.contains_key("m003"));
    assert_eq!(seen.len(), 6, "{seen:?}");
    // 300 × 3 pushes over 6 peers: about 150 each.
    assert!(seen.values().all(|&c| (100..200).contains(&c)), "{seen:?}");
}

/// Pushes one item through a federation of `n` cores (tree mode, no loss) and returns, per
/// member, how many times it received the item and at which hop it first did.
fn flood(n: usize, down: &[&str], tlp: Tlp, audience: &[&str]) -> BTreeMap<String, (u32, u32)> {
    let all = names(n);
    let mut cores: BTreeMap<String, SyncCore> = all
        .iter()
        .map(|m| (m.clone(), member(m, &all, PushMode::Tree)))
        .collect();
    for c in cores.values_mut() {
        for d in down {
            c.peer_down(T0, d);
        }
        while c.poll_action().is_some() {}
    }
    let it = item("m000", 1, tlp, audience, 1);
    let mut got: BTreeMap<String, (u32, u32)> = BTreeMap::new();
    let mut queue = VecDeque::new();
    let origin = cores.get_mut("m000").unwrap();
    origin.item_accepted(T0, &it.meta, Source::Local);
    for t in pushed_to(origin) {
        queue.push_back(("m000".to_string(), t, 1));
    }
    while let Some((from, to, hop)) = queue.pop_front() {
        assert!(
            policy::may_send(&it.meta.scope(), &from, &to).allowed,
            "{from} -> {to}"
        );
        let e = got.entry(to.clone()).or_insert((0, hop));
        e.0 += 1;
        let c = cores.get_mut(&to).unwrap();
        if c.item_accepted(T0, &it.meta, Source::Peer(&from)) {
            for t in pushed_to(c) {
                queue.push_back((to.clone(), t, hop + 1));
            }
        }
    }
    got
}

#[test]
fn tree_push_reaches_every_member_exactly_once_in_few_hops() {
    for n in [2usize, 5, 13, 40, 121, 200] {
        let got = flood(n, &[], Tlp::Green, &[]);
        assert_eq!(got.len(), n - 1, "n = {n}: every other member reached");
        assert!(
            got.values().all(|(times, _)| *times == 1),
            "n = {n}: no duplicates"
        );
        // Depth of a 3-ary tree rooted at the origin: 1 + 3 + 9 + … ≥ n.
        let mut depth = 0;
        let mut cap = 1usize;
        let mut level = 1usize;
        while cap < n {
            level *= 3;
            cap += level;
            depth += 1;
        }
        let max_hop = got.values().map(|(_, h)| *h).max().unwrap_or(0);
        assert!(max_hop <= depth, "n = {n}: {max_hop} hops > {depth}");
    }
}

#[test]
fn tree_push_routes_around_a_down_member() {
    // Whoever is down, everyone else is still reached (its children are adopted).
    for down in ["m001", "m017", "m033"] {
        let got = flood(40, &[down], Tlp::Green, &[]);
        assert!(!got.contains_key(down));
        assert_eq!(got.len(), 38, "down = {down}: {} reached", got.len());
    }
}

#[test]
fn tree_push_of_a_large_amber_audience_stays_inside_it() {
    let all = names(80);
    let aud: Vec<&str> = all[10..50].iter().map(String::as_str).collect();
    let got = flood(80, &[], Tlp::Amber, &aud);
    let reached: BTreeSet<&str> = got.keys().map(String::as_str).collect();
    assert_eq!(reached, aud.iter().copied().collect());
    assert!(got.values().all(|(times, _)| *times == 1));
}
