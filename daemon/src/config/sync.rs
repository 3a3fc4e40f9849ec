//! `[sync]`: replication settings; the values are `crate::sync::SyncConfig` and it validates
//! itself, each problem reported under `sync.<field>`.

use crate::sync::{SyncConfig, SyncError};

/// The problems `SyncConfig::validate` finds, under their `sync.<field>` keys.
pub(super) fn check_sync(sync: &SyncConfig, bad: &mut dyn FnMut(&str, String)) {
    if let Err(e) = sync.validate() {
        match &e {
            SyncError::Config { field, detail } => bad(&format!("sync.{field}"), detail.clone()),
            other => bad("sync", other.to_string()),
        }
    }
}
