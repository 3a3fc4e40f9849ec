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

#[doc(hidden)]
pub use tikv_jemallocator as __jemalloc;

/// Makes jemalloc, with `tanoad`'s settings, the heap of the program that invokes it at its
/// crate root: `tanoad` itself (`src/bin/tanoad.rs`) and the benches that measure in-process
/// what it would do. Why jemalloc: see the `malloc` module.
///
/// The settings (jemalloc's `malloc_conf`, read once when it starts) are for a daemon's memory
/// over hours: a background thread returns freed pages to the OS even while the daemon is idle;
/// freed pages go back after 1 s (jemalloc's default is 10 s) and at once rather than through
/// `MADV_FREE` (pages freed that way still count in the RSS until the kernel needs them); two
/// arenas, as glibc had, since the per-thread caches already spare the writer most locks. With
/// jemalloc's defaults (Debian's 5.3 through `LD_PRELOAD`) the 12-minute soak grew 12.7% and
/// 13.9% after warm-up; with these, -1.5% to +3.3% at about glibc's RSS. An operator can
/// still override them with `_RJEM_MALLOC_CONF`.
#[macro_export]
macro_rules! tanoad_heap {
    () => {
        #[global_allocator]
        static HEAP: $crate::__jemalloc::Jemalloc = $crate::__jemalloc::Jemalloc;

        #[allow(unsafe_code)]
        // SAFETY: jemalloc reads this symbol once, when it initializes, as a `const char *` to a
        // NUL-terminated string. A `&'static [u8; N]` is a thin pointer to bytes that live for
        // the whole program and end in NUL; nothing writes to them.
        #[unsafe(export_name = "_rjem_malloc_conf")]
        static MALLOC_CONF: &[u8; 70] =
            b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0,narenas:2\0";
    };
}

/// Current Unix time in milliseconds (the only clock read outside `node`).
pub fn now_ms() -> i64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
