//! The simulator as a test: every scenario at CI size with fixed seeds, replay, the transcript
//! comparison (non-interference) and the mutation check (a leaking policy is caught).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use tanoa_core::sync::SyncConfig;

const CI_MEMBERS: usize = 200;
const CI_GREEN: usize = 30;
const CI_BACKLOG: usize = 2_000;

fn ok(sc: &Scenario, seed: u64) -> Report {
    match run(sc, seed) {
        Ok(o) => o.report,
        Err(e) => panic!(
            "{e}\nreplay: scenario {:?} seed {}\n{:#?}",
            e.scenario, e.seed, e.violations
        ),
    }
}

#[test]
fn sim_ci_every_scenario_converges_without_violations() {
    for (k, sc) in presets(CI_MEMBERS, CI_GREEN, CI_BACKLOG)
        .into_iter()
        .enumerate()
    {
        let started = std::time::Instant::now();
        let r = ok(&sc, 1_000 + k as u64);
        eprintln!("{}  wall {:?}", format_report(&r), started.elapsed());
        assert!(r.t100_ms.is_some(), "{}: never reached 100%", sc.name);
        assert!(r.items > 0, "{}: no items", sc.name);
    }
}

#[test]
fn sim_runs_replay_from_their_seed() {
    let sc = Scenario {
        name: "replay".to_string(),
        members: 40,
        link: LinkModel {
            loss_ppm: 100_000,
            dup_ppm: 20_000,
            reorder_ppm: 100_000,
            ..LinkModel::default()
        },
        ..Scenario::default()
    };
    let a = ok(&sc, 7);
    let b = ok(&sc, 7);
    assert_eq!(a, b);
    let c = ok(&sc, 8);
    assert_ne!(a.by_kind, c.by_kind, "another seed, another run");
}

#[test]
fn sim_green_push_stays_within_two_rounds_of_the_bound() {
    let sc = presets(CI_MEMBERS, CI_GREEN, 0).remove(0);
    let r = ok(&sc, 11);
    let bound = bound_rounds(r.members, r.fanout);
    assert_eq!(bound_rounds(1000, 3), 5);
    assert!(
        r.rounds_999.unwrap() as u32 <= bound + 2,
        "{}",
        format_report(&r)
    );
    assert!(r.redundancy <= r.fanout as f64, "{}", format_report(&r));
}

/// Member `q` of the mixed scenario; the "without" run leaves out every item it may not hold. Loss, duplication and reordering only on links touching them, unlimited bandwidth (a
/// busy link among holders of secrets would delay their later GREEN traffic: timing is not
/// covered by non-interference).
fn transcript_run(q: usize, omit: bool) -> Outcome {
    let q = vec![q];
    let mut sc = presets(40, CI_GREEN, 0).remove(1);
    sc.name = format!("transcripts omit={omit}");
    sc.link = LinkModel {
        bandwidth_bytes_per_ms: 0,
        loss_ppm: 100_000,
        dup_ppm: 20_000,
        reorder_ppm: 50_000,
        lossy_only_for: q.clone(),
        ..LinkModel::default()
    };
    // Per-peer request slots are shared by all items: with 2 in flight, a secret pushed to a
    // relay delays the GREEN item queued behind it, and so (timing only) what reaches Q later.
    sc.sync.max_in_flight = 1024;
    sc.record_for = q.clone();
    sc.max_ms = 60 * 30_000;
    if omit {
        sc.omit_forbidden_for = q;
    }
    run(&sc, 21).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn sim_messages_to_q_do_not_depend_on_items_q_may_not_hold() {
    for q in [3usize, 4] {
        let with = transcript_run(q, false);
        let without = transcript_run(q, true);
        assert!(
            with.report.items > without.report.items,
            "the secrets of member {q} were left out"
        );
        let (a, b) = (&with.transcripts[&q], &without.transcripts[&q]);
        assert!(a.len() > 20, "member {q} saw little traffic");
        if let Some(i) = (0..a.len().min(b.len())).find(|&i| a[i] != b[i]) {
            panic!(
                "member {q}: first difference at message {i}: {:?} vs {:?}",
                (a[i].0, a[i].1, a[i].2.len()),
                (b[i].0, b[i].1, b[i].2.len())
            );
        }
        assert_eq!(a.len(), b.len(), "member {q}: transcript lengths");
    }
}

#[test]
fn sim_mutation_leaking_amber_to_one_member_is_caught() {
    let mut sc = presets(40, CI_GREEN, 0).remove(1);
    sc.name = "mutation: AMBER leaks to cert-0005".to_string();
    // The same scenario without the mutation is clean.
    ok(&sc, 31);
    sc.mutation = Some(Mutation::LeakAmberTo { member: 5 });
    let err = run(&sc, 31).expect_err("the leak must be caught");
    assert_eq!(err.seed, 31);
    assert!(err.to_string().contains("mutation"), "{err}");
    assert!(
        err.violations
            .iter()
            .any(|v| v.contains("cert-0005 received a PushRequest")),
        "{:#?}",
        err.violations
    );
    assert!(
        err.violations
            .iter()
            .any(|v| v.contains("cert-0005 stores")),
        "{:#?}",
        err.violations
    );
}

#[test]
fn sim_scenarios_are_data() {
    let sc = Scenario::from_toml(
        r#"
        name = "from toml"
        members = 12
        skew_ms = 1000
        [link]
        loss_ppm = 50000
        [items]
        green = 5
        [[faults]]
        at_ms = 0
        fault = { kind = "isolate", members = [1, 2] }
        [[faults]]
        at_ms = 60000
        fault = { kind = "heal" }
        "#,
    )
    .unwrap();
    assert_eq!(sc.members, 12);
    assert_eq!(sc.faults.len(), 2);
    let r = ok(&sc, 3);
    assert!(
        r.t100_ms.unwrap() >= 60_000,
        "converged only after the heal"
    );
    assert!(Scenario::from_toml("bogus = 1").is_err());
}

/// Regression: a lost push used to be dropped, and since only the origin may send RED (only the
/// audience may relay AMBER), a recipient whose push was lost waited for anti-entropy to pair it
/// with an allowed sender (up to one interval per member); this scenario never reached 100% in
/// 40 intervals. The core now re-queues a push that timed out.
#[test]
fn sim_lost_restricted_pushes_are_resent_and_converge() {
    // With 20% loss, AMBER/RED items may only come from a few members; a lost push is re-queued
    // on timeout by the core, so every member still ends holding exactly what it may hold.
    let sc = presets(CI_MEMBERS, CI_GREEN, 0)
        .into_iter()
        .find(|s| s.name.contains("small AMBER and RED"))
        .unwrap();
    match run(&sc, 77) {
        Ok(o) => assert!(o.report.t100_ms.is_some(), "never reached 100% coverage"),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn sim_a_push_flood_over_the_origin_quota_still_converges_by_anti_entropy() {
    // 300 GREEN items (about 10 per origin) published within one second, against a quota of
    // 2 items/s with a burst of 2 per origin: most pushes are refused (`origin_quota`), and
    // every member still ends with every item, fetched by anti-entropy at its own pace.
    let flood = |rate: u32| Scenario {
        name: format!("push flood, quota {rate}/s"),
        members: 30,
        items: ItemMix {
            green: 300,
            ..ItemMix::default()
        },
        publish_spread_ms: 1_000,
        sync: SyncConfig {
            origin_push_rate_per_s: rate,
            origin_push_burst: 2,
            ..SyncConfig::default()
        },
        ..Scenario::default()
    };
    let open = ok(&flood(0), 21);
    let capped = ok(&flood(2), 21);
    for r in [&open, &capped] {
        assert!(r.t100_ms.is_some(), "{}", format_report(r));
        assert_eq!(r.coverage_end.0, r.coverage_end.1, "{}", format_report(r));
    }
    let fetches = |r: &Report| r.by_kind.get("FetchRequest").map_or(0, |m| m.0);
    assert_eq!(fetches(&open), 0, "{}", format_report(&open));
    assert!(fetches(&capped) > 0, "{}", format_report(&capped));
    assert!(
        capped.t100_ms > open.t100_ms,
        "refused pushes wait for anti-entropy"
    );
}

/// Issue 12's Pacific topology at test size: 5 `fibre` partners and 20 islands (4 on
/// `cable-cut` in the second and third scenarios). Every run keeps every invariant (the engine
/// checks them at each store write and delivery), ends with every member holding exactly what
/// it may hold, and no group reaches 100% faster than its links physically allow.
#[test]
fn sim_pacific_islands_converge_within_their_links_limits() {
    let scenarios = pacific(5, 20, 4, 20, 300);
    assert_eq!(scenarios.len(), 4);
    for (k, sc) in scenarios.iter().enumerate() {
        let r = ok(sc, 600 + k as u64);
        eprintln!("{}", format_report(&r));
        assert!(r.t100_ms.is_some(), "{}", format_report(&r));
        assert_eq!(r.coverage_end.0, r.coverage_end.1, "{}", format_report(&r));
        let thin = r.thin.as_ref().expect("profiled runs report their links");
        // Framing only adds bytes.
        assert!(
            thin.link_bytes_per_item_member > r.bytes_per_item_member,
            "{}",
            format_report(&r)
        );
        let names: Vec<&str> = thin.rows.iter().map(|row| row.profile).collect();
        let want: &[&str] = if k == 0 {
            &["fibre", "satellite"]
        } else {
            &["fibre", "satellite", "cable-cut"]
        };
        assert_eq!(names, want);
        for row in &thin.rows {
            let t = row.t100_ms.expect("every group reached 100%");
            assert!(
                t >= row.floor_ms,
                "{} beat its physical floor: {}",
                row.profile,
                format_report(&r)
            );
        }
        if k == 0 {
            // The wave: islands need more than the partners (slower links, farther away).
            let (fibre, sat) = (&thin.rows[0], &thin.rows[1]);
            assert!(sat.floor_ms > fibre.floor_ms, "{}", format_report(&r));
        }
        if k >= 2 {
            // The catch-up crosses the cable-cut drops: some messages die in them, and the new
            // island still ends with the whole backlog.
            assert!(thin.dropped > 0, "{}", format_report(&r));
            let cut = &thin.rows[2];
            assert!(
                cut.down_bytes_per_item_member > 0.0,
                "{}",
                format_report(&r)
            );
        }
    }
}

/// The same scenario and seed give the same report, link figures included; without profiles
/// there are no link figures (the uniform network's report is unchanged).
#[test]
fn sim_profiled_runs_replay_and_profiles_are_named_as_in_issue_12() {
    let sc = pacific(2, 4, 1, 10, 0).remove(1);
    assert_eq!(ok(&sc, 5), ok(&sc, 5));
    assert!(ok(&presets(10, 5, 0).remove(0), 5).thin.is_none());
    for (p, name) in LinkProfile::ALL
        .iter()
        .zip(["fibre", "satellite", "cable-cut"])
    {
        assert_eq!(p.name(), name);
        assert_eq!(LinkProfile::from_name(name), Some(*p));
    }
    assert_eq!(LinkProfile::from_name("cable_cut"), None);
    let spec = LinkProfile::CableCut.spec();
    assert_eq!(
        (
            spec.bits_per_s,
            spec.rtt_ms,
            spec.loss_ppm,
            spec.down_every_ms,
            spec.down_ms
        ),
        (128_000, 700, 50_000, 60_000, 10_000)
    );
    let parsed = Scenario::from_toml(
        r#"
        members = 3
        profiles = ["fibre", "satellite", "cable-cut"]
        "#,
    )
    .unwrap();
    assert_eq!(
        parsed.profiles,
        vec![
            LinkProfile::Fibre,
            LinkProfile::Satellite,
            LinkProfile::CableCut
        ]
    );
    assert!(Scenario::from_toml("profiles = [\"dsl\"]").is_err());
    // The invariants are checked on access links too: a leaking policy is caught.
    let mut leak = pacific(5, 20, 0, 5, 0).remove(0);
    leak.mutation = Some(Mutation::LeakAmberTo { member: 3 });
    let err = run(&leak, 9).expect_err("the leak must be caught on access links");
    assert!(
        err.violations
            .iter()
            .any(|v| v.contains("cert-0003 received a PushRequest")),
        "{:#?}",
        err.violations
    );
    // One profile per member, or none.
    let bad = Scenario {
        profiles: vec![LinkProfile::Fibre; 2],
        ..Scenario::default()
    };
    let err = run(&bad, 1).expect_err("2 profiles for 50 members");
    assert!(err.violations[0].contains("profiles"), "{err}");
}

/// Issue 11 at test size (the bench runs 200 members: `-- --roster`): a join approved by a
/// majority, a key rotation, a revocation backdated over an item, a removal, under 20% loss and
/// under churn. Every member of the final roster has it in force within 3 intervals of the last
/// change; at every store write the item is valid under the storing member's roster in force
/// (the engine's invariant); at the end nobody holds what the final roster makes invalid, and
/// everyone holds everything else, the rotated key's item included.
#[test]
fn sim_roster_changes_converge_within_three_intervals_under_loss_and_churn() {
    for (k, sc) in roster_presets(30, 10).into_iter().enumerate() {
        let r = ok(&sc, 700 + k as u64);
        eprintln!("{}", format_report(&r));
        let ro = r.roster.as_ref().expect("roster figures");
        assert_eq!(ro.final_version, 5, "{}", format_report(&r));
        assert_eq!(ro.members, 29, "the removed member is out");
        assert_eq!(ro.at_final, ro.members, "{}", format_report(&r));
        let t = ro
            .converged_after_last_change_ms
            .expect("everyone converged");
        assert!(t <= 3 * sc.sync.interval_ms, "{}", format_report(&r));
        assert!(
            ro.purged >= 2,
            "the revoked and removed members' own items at least: {}",
            format_report(&r)
        );
        assert!(
            ro.gated > 0,
            "the joiner before its version, the removed member after: {}",
            format_report(&r)
        );
        assert_eq!(r.coverage_end.0, r.coverage_end.1, "{}", format_report(&r));
        assert!(r.t100_ms.is_some(), "{}", format_report(&r));
    }
}

/// The roster invariants can fail: a driver that keeps what a revocation or removal made invalid
/// is caught by the end check.
#[test]
fn sim_roster_mutation_keeping_revoked_items_is_caught() {
    let mut sc = roster_presets(12, 5).remove(0);
    ok(&sc, 41);
    sc.mutation = Some(Mutation::KeepRevokedItems);
    let err = run(&sc, 41).expect_err("kept revoked items must be caught");
    assert!(
        err.violations
            .iter()
            .any(|v| v.contains("invalid under the final roster")),
        "{:#?}",
        err.violations
    );
}
