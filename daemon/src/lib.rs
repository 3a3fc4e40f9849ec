//! Tanoa daemon library: everything `tanoad` runs, as testable modules.
//!
//! Each module is a room with one job (see `ARCHITECTURE.md`):
//! - `model`: advisory types, normalization and validation (pure);
//! - `envelope`: signing, verification, item ids, `Verified<Advisory>` (pure);
//! - `keys`: private key files (0600);
//! - `store`: the `Store` trait, sled and in-memory backends;
//! - `config`: the TOML configuration and its validation;
//! - `publish`: the operator's write path (assign, sign, store, sync, notify);
//! - `api`: tonic services; proto <-> domain conversion and error -> `Status` in one place;
//! - `transport`: rustls configurations and identity from certificates;
//! - `client`: connecting to a daemon's operator API (used by the CLI and tests);
//! - `node`: wiring, listeners, tasks and shutdown;
//! - `policy`: every TLP 2.0 decision (pure); `sync`: the sans-IO replication core;
//! - `taxii`: the TAXII 2.1 read endpoint (collections per visibility, exact paging);
//! - `sim`: the deterministic simulator that drives the real `sync` core at scale;
//! - `pki`: federation CA, member and operator certificates (rcgen) for `tanoa pki` and tests.
//! - `warninglist`: MISP warning lists, screening indicators for likely false positives.

pub mod api;
pub mod client;
pub mod config;
pub mod envelope;
pub mod interop;
pub mod keys;
pub mod model;
pub mod node;
pub mod pki;
pub mod policy;
pub mod publish;
pub mod sim;
pub mod store;
pub mod sync;
pub mod taxii;
pub mod tcp_accept;
pub mod transport;
pub mod warninglist;

/// Current Unix time in milliseconds (the only clock read outside `node`).
pub fn now_ms() -> i64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
