//! The report of issue 4: every simulator scenario, one table each.
//!
//! Run: `cargo bench -p tanoa-sim --bench simulate` (1,000 members; `-- 200` for another N;
//! `-- 1000 100000` also sets the backlog, default 100,000; a word selects scenarios by name,
//! e.g. `-- backlog`). The AMBER/RED scenario uses N/5
//! members (200 at the default), the backlog scenario 20 members. Each line of a failure prints
//! the scenario and seed to replay with `tanoa_sim::run`.
//!
//! `-- --topology pacific` runs the Pacific topology of issue 12 instead (5 `fibre` partners, 20
//! islands on `satellite`, 4 of them on `cable-cut` in the second to fourth scenarios; a backlog
//! of 10,000 for the catch-ups of a new `cable-cut` then `satellite` island, or the second number
//! given: `-- --topology pacific 0 2000`), with seeds 60 to 65. Each report adds the access links' figures: time to 100% per profile next
//! to its physical floor, bytes on the links per item per member.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use tanoa_sim::{Scenario, format_report, pacific, presets, roster_presets};

/// Runs one scenario and prints its report; false when it failed.
fn run_one(sc: &Scenario, seed: u64) -> bool {
    let started = Instant::now();
    let ok = match tanoa_sim::run(sc, seed) {
        Ok(o) => {
            print!("{}", format_report(&o.report));
            println!(
                "  {:<30} {:.1} s",
                "wall clock",
                started.elapsed().as_secs_f64()
            );
            true
        }
        Err(e) => {
            if let Some(r) = &e.report {
                print!("{}", format_report(r));
            }
            println!("FAILED: {e}");
            println!("  replay: scenario {:?} seed {}", e.scenario, e.seed);
            for v in e.violations.iter().take(10) {
                println!("  {v}");
            }
            false
        }
    };
    println!();
    ok
}

fn main() {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    // `--topology NAME` or `--topology=NAME`.
    let topology: Option<String> = raw.iter().enumerate().find_map(|(i, a)| {
        if a == "--topology" {
            raw.get(i + 1).cloned()
        } else {
            a.strip_prefix("--topology=").map(str::to_string)
        }
    });
    let args: Vec<usize> = raw.iter().filter_map(|a| a.parse().ok()).collect();
    // A non-numeric argument (other than the harness's `--bench` and the topology) selects
    // scenarios by name.
    let filter: Vec<&String> = raw
        .iter()
        .filter(|a| a.parse::<usize>().is_err() && !a.starts_with("--"))
        .filter(|a| Some(a.as_str()) != topology.as_deref())
        .collect();
    let selected =
        |sc: &Scenario| filter.is_empty() || filter.iter().any(|f| sc.name.contains(f.as_str()));
    let mut failed = 0;
    if raw.iter().any(|a| a == "--roster") {
        // Issue 11: roster changes under loss and under churn (200 members unless a number is
        // given), seeds 70 and 71.
        let n = args.first().copied().unwrap_or(200);
        for (k, sc) in roster_presets(n, 30).into_iter().enumerate() {
            if selected(&sc) && !run_one(&sc, 70 + k as u64) {
                failed += 1;
            }
        }
        if failed > 0 {
            println!("{failed} scenario(s) failed");
        }
        return;
    }
    match topology.as_deref() {
        None => {}
        Some("pacific") => {
            let backlog = args.get(1).copied().unwrap_or(10_000);
            // The wave, the wave with cable-cut islands, and the catch-up of a cable-cut island
            // then of a satellite island, each with default and with link-sized settings.
            let mut all = pacific(5, 20, 4, 100, backlog);
            all.extend(pacific(5, 20, 0, 100, backlog).into_iter().skip(2));
            for (k, sc) in all.into_iter().enumerate() {
                if selected(&sc) && !run_one(&sc, 60 + k as u64) {
                    failed += 1;
                }
            }
            if failed > 0 {
                println!("{failed} scenario(s) failed");
            }
            return;
        }
        Some(other) => {
            println!("unknown topology {other:?} (known: pacific)");
            std::process::exit(2);
        }
    }
    let n = args.first().copied().unwrap_or(1_000);
    let backlog = args.get(1).copied().unwrap_or(100_000);
    for (k, mut sc) in presets(n, 100, backlog).into_iter().enumerate() {
        if k == 1 {
            // Many small AMBER audiences and RED items: 200 members at N = 1,000.
            sc = presets((n / 5).max(10), 100, backlog).remove(1);
        }
        if !selected(&sc) {
            continue;
        }
        if !run_one(&sc, 42 + k as u64) {
            failed += 1;
        }
    }
    if failed > 0 {
        println!("{failed} scenario(s) failed");
    }
}
