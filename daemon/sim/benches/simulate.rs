//! The report of issue 4: every simulator scenario, one table each.
//!
//! Run: `cargo bench -p tanoa-sim --bench simulate` (1,000 members; `-- 200` for another N;
//! `-- 1000 100000` also sets the backlog, default 100,000; a word selects scenarios by name,
//! e.g. `-- backlog`). The AMBER/RED scenario uses N/5
//! members (200 at the default), the backlog scenario 20 members. Each line of a failure prints
//! the scenario and seed to replay with `tanoa_sim::run`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use tanoa_sim::{format_report, presets};

fn main() {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<usize> = raw.iter().filter_map(|a| a.parse().ok()).collect();
    // A non-numeric argument (other than the harness's `--bench`) selects scenarios by name.
    let filter: Vec<&String> = raw
        .iter()
        .filter(|a| a.parse::<usize>().is_err() && !a.starts_with("--"))
        .collect();
    let n = args.first().copied().unwrap_or(1_000);
    let backlog = args.get(1).copied().unwrap_or(100_000);
    let mut failed = 0;
    for (k, mut sc) in presets(n, 100, backlog).into_iter().enumerate() {
        if k == 1 {
            // Many small AMBER audiences and RED items: 200 members at N = 1,000.
            sc = presets((n / 5).max(10), 100, backlog).remove(1);
        }
        if !filter.is_empty() && !filter.iter().any(|f| sc.name.contains(f.as_str())) {
            continue;
        }
        let seed = 42 + k as u64;
        let started = Instant::now();
        match tanoa_sim::run(&sc, seed) {
            Ok(o) => {
                print!("{}", format_report(&o.report));
                println!(
                    "  {:<30} {:.1} s",
                    "wall clock",
                    started.elapsed().as_secs_f64()
                );
            }
            Err(e) => {
                failed += 1;
                if let Some(r) = &e.report {
                    print!("{}", format_report(r));
                }
                println!("FAILED: {e}");
                println!("  replay: scenario {:?} seed {}", e.scenario, e.seed);
                for v in e.violations.iter().take(10) {
                    println!("  {v}");
                }
            }
        }
        println!();
    }
    if failed > 0 {
        println!("{failed} scenario(s) failed");
    }
}
