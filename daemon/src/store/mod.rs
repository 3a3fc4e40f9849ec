//! Storage: the `Store` trait, its rules and the in-memory backend come from
//! `tanoa_core::store`; this module adds the durable sled backend (`SledStore`) and runs the
//! conformance suite against it.
//!
//! Owns: sled (trees, flush + fdatasync durability, blob files) and the envelope records kept
//! beside it as files (`spill`). Must never: hold a storage rule of its own (every rule and key
//! layout is `tanoa_core::store::engine`'s).

use std::path::Path;
use std::sync::Arc;

pub use tanoa_core::store::*;

mod sled_store;
mod spill;
pub use sled_store::{SledConfig, SledStore};

#[cfg(test)]
mod sled_conformance;

/// An I/O error of the durable store, naming what was done and the path.
fn io_err(what: &str, path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Backend(format!("{what} {}: {e}", path.display()))
}

/// Makes the names in directory `path` durable.
fn fsync_dir(path: &Path) -> Result<(), StoreError> {
    std::fs::File::open(path)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err("fsync directory", path, e))
}

/// Opens (or creates) the durable sled store in directory `path`, as a shared `dyn Store`.
pub fn open(path: &Path, config: &SledConfig) -> Result<Arc<dyn Store>, StoreError> {
    Ok(Arc::new(SledStore::open(path, config)?))
}
