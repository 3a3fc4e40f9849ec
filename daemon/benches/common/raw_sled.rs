//! The ceiling the write benchmarks (`node`, `federation`) print beside their figures: sled
//! alone, with no Tanoa code, writing the same number of keys per advisory.
//!
//! Owns: the raw writer (one value of `env_bytes` and `keys - 1` values of 64 B per advisory,
//! sequential keys in one tree, `group` advisories per `apply_batch`).
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

/// Advisories per second that sled alone sustains, writing `n` advisories into a new store in
/// `dir` with a cache of `cache_bytes`.
pub(crate) fn raw_sled_rate(
    dir: &Path,
    n: u64,
    keys: usize,
    env_bytes: usize,
    group: u64,
    cache_bytes: u64,
    sync: Sync,
) -> Result<f64> {
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
            batch.insert(format!("e{j:012}").into_bytes(), env.as_slice());
            for kk in 1..keys {
                batch.insert(format!("k{j:012}/{kk:03}").into_bytes(), &small[..]);
            }
        }
        db.apply_batch(batch)?;
        if sync == Sync::EachBatch {
            db.flush()?;
            file.sync_data()?;
        }
        i += group;
    }
    if sync == Sync::AtEnd {
        db.flush()?;
        file.sync_data()?;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}
