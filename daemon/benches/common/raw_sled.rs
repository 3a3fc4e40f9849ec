//! The ceiling the write benchmarks (`node`, `federation`) print beside their figures: sled
//! alone, with no Tanoa code, writing the same number of keys per advisory.
//!
//! Owns: the raw writer (one value of `env_bytes` and `keys - 1` values of 64 B per advisory,
//! in one tree, `group` advisories per `apply_batch`), with sequential keys (every write lands
//! in the rightmost leaf: the most generous ceiling) or random ones (16 bytes drawn from a
//! fixed-seed hash, as item ids, advisory UUIDs and hashed indicators spread in a real store).
//! Must never: call Tanoa code (it is the ceiling Tanoa is measured against).

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};

/// When the raw writer makes its writes durable (`flush()` + fdatasync of `db`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sync {
    /// After every batch of `group` advisories (a publish acknowledged after its fdatasync).
    EachBatch,
    /// Once, after the last batch (a bulk store of a batch stream, one final sync).
    AtEnd,
}

/// Where the raw writer's keys fall in the tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Keys {
    /// `e<advisory>` and `k<advisory>/<n>`: each batch appends to the end of the tree.
    Sequential,
    /// 16 pseudo-random bytes per key (splitmix64 of the advisory and key number).
    Random,
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn key(order: Keys, j: u64, kk: usize) -> Vec<u8> {
    match (order, kk) {
        (Keys::Sequential, 0) => format!("e{j:012}").into_bytes(),
        (Keys::Sequential, _) => format!("k{j:012}/{kk:03}").into_bytes(),
        (Keys::Random, _) => {
            let a = splitmix(j.wrapping_mul(1_000).wrapping_add(kk as u64));
            let b = splitmix(a);
            let mut k = a.to_be_bytes().to_vec();
            k.extend_from_slice(&b.to_be_bytes());
            k
        }
    }
}

/// One raw run: `n` advisories of `keys` keys (one value of `env_bytes`, the others 64 B),
/// `group` advisories per `apply_batch`, a cache of `cache_bytes`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Run {
    pub(crate) n: u64,
    pub(crate) keys: usize,
    pub(crate) env_bytes: usize,
    pub(crate) group: u64,
    pub(crate) cache_bytes: u64,
    pub(crate) sync: Sync,
    pub(crate) order: Keys,
}

/// Advisories per second that sled alone sustains for `run`, writing into a new store in `dir`.
pub(crate) fn raw_sled_rate(dir: &Path, run: Run) -> Result<f64> {
    let Run {
        n,
        keys,
        env_bytes,
        group,
        cache_bytes,
        sync,
        order,
    } = run;
    let db = sled::Config::new()
        .path(dir)
        .cache_capacity(cache_bytes)
        .open()
        .with_context(|| format!("opening raw sled {}", dir.display()))?;
    let file =
        std::fs::File::open(dir.join("db")).with_context(|| format!("{}/db", dir.display()))?;
    let env = vec![0xA5u8; env_bytes];
    let small = [0x5Au8; 64];
    let start = Instant::now();
    let mut i = 0;
    while i < n {
        let mut batch = sled::Batch::default();
        for j in i..(i + group).min(n) {
            batch.insert(key(order, j, 0), env.as_slice());
            for kk in 1..keys {
                batch.insert(key(order, j, kk), &small[..]);
            }
        }
        db.apply_batch(batch)?;
        if sync == Sync::EachBatch {
            db.flush()?;
            file.sync_data()?;
        }
        i += group;
        if i % 100_000 < group && n >= 500_000 {
            eprintln!("  {i} after {:.1} s", start.elapsed().as_secs_f64());
        }
    }
    if sync == Sync::AtEnd {
        db.flush()?;
        file.sync_data()?;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}
