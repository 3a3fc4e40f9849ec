#![warn(unreachable_pub)]
//! Tanoa daemon library: the runtime around the sans-IO core (`tanoa-core`), as testable modules.
//!
//! `model`, `envelope`, `policy`, `sync` and `interop` are re-exported from `tanoa-core`.
//! Each module here is a room with one job (see `ARCHITECTURE.md`):
//! - `keys`: private key files (0600);
//! - `store`: the core's `Store` trait and rules, plus the durable sled backend;
//! - `config`: the TOML configuration and its validation;
//! - `publish`: the operator's write path (assign, sign, store, sync, notify);
//! - `roster`: the signed roster at run time (admission, version in force, keyring, membership);
//! - `api`: tonic services; proto <-> domain conversion and error -> `Status` in one place;
//! - `transport`: rustls configurations and identity from certificates or roster pins;
//! - `peer_link`: compression and HTTP/2 settings of the peer link;
//! - `peer_roster`: the roster version each peer reports (header `tanoa-roster-version`);
//! - `client`: connecting to a daemon's operator API (used by the CLI and tests);
//! - `node`: wiring, listeners, tasks and shutdown;
//! - `taxii`: the TAXII 2.1 read endpoint (collections per visibility, exact paging);
//! - `warninglist`: reading MISP warning lists from disk (matching is the core's);
//! - `malloc`: the C allocator's arena limit at start-up and its periodic heap trim.

pub use tanoa_core::{envelope, interop, machine, membership, model, policy, sync};
pub use tanoa_keys as keys;

pub mod api;
pub mod client;
pub(crate) mod commit;
pub mod config;
#[doc(hidden)]
pub mod fuzzing;
pub(crate) mod malloc;
pub(crate) mod metrics;
pub mod node;
pub(crate) mod peer_link;
pub(crate) mod peer_roster;
pub mod publish;
pub(crate) mod roster;
pub mod store;
pub(crate) mod sync_handle;
pub(crate) mod taxii;
pub(crate) mod tcp_accept;
pub mod transport;
pub(crate) mod warninglist;

/// Current Unix time in milliseconds (the only clock read outside `node`).
pub fn now_ms() -> i64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
