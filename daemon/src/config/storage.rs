//! `[storage]`: the data directory and the sled cache.

use std::path::{Path, PathBuf};

use super::raw::RawStorage;
use super::resolve_path;
use crate::store::SledConfig;

/// Default sled cache in MiB when `storage.cache_mb` is not set: `SledConfig`'s default
/// (sized for a small CERT's server; sled's own 1 GiB default uses gigabytes of RAM).
pub fn default_cache_mb() -> u64 {
    (SledConfig::default().cache_capacity_bytes / (1024 * 1024)).max(1)
}

/// `[storage]`: where and how data is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageConfig {
    /// Data directory (absolute).
    pub data_dir: PathBuf,
    /// sled page cache in MiB.
    pub cache_mb: u64,
}

impl StorageConfig {
    /// Directory of the sled database inside the data directory.
    pub fn store_path(&self) -> PathBuf {
        self.data_dir.join("store")
    }

    /// The sled configuration these settings give.
    pub fn sled_config(&self) -> SledConfig {
        SledConfig {
            cache_capacity_bytes: self.cache_mb.saturating_mul(1024 * 1024),
        }
    }
}

/// `[storage]` resolved against the config's directory, with its defaults.
pub(super) fn resolve_storage(
    raw: RawStorage,
    base: &Path,
    bad: &mut dyn FnMut(&str, String),
) -> StorageConfig {
    let data_dir = resolve_path(base, &raw.data_dir.unwrap_or_else(|| PathBuf::from("data")));
    if data_dir.exists() && !data_dir.is_dir() {
        bad(
            "storage.data_dir",
            format!("{} exists and is not a directory", data_dir.display()),
        );
    }
    let cache_mb = raw.cache_mb.unwrap_or_else(default_cache_mb);
    if !(1..=1_048_576).contains(&cache_mb) {
        bad(
            "storage.cache_mb",
            format!("{cache_mb} is out of range (1 to 1048576 MiB)"),
        );
    }
    StorageConfig { data_dir, cache_mb }
}
