//! Tanoa's core: everything a member decides, with no I/O.
//!
//! Each module is a room with one job (see `ARCHITECTURE.md`):
//! - `model`: advisory types, normalization and validation;
//! - `envelope`: signing, verification, item ids, `Verified<Advisory>`;
//! - `policy`: every TLP 2.0 decision;
//! - `sync`: the sans-IO replication state machine (push, negentropy anti-entropy, fetch);
//! - `machine`: the node machine: the sync core plus the one receive pipeline (verify, admit by
//!   policy, store plan, accepted) that the daemon, the simulator and the tests all run;
//! - `store`: the `Store` trait, every storage rule and key layout (`store::engine`), the
//!   in-memory backend and the conformance suite every backend runs;
//! - `interop`: conversions to and from STIX 2.1, MISP and blocklist formats;
//! - `warninglist`: MISP warning-list parsing and matching.
//!
//! Must never: depend on tokio, tonic, sled, axum, hyper or rustls (checked by
//! `.ci/check-deps`), read a clock, open a socket, or use ambient randomness. Time and
//! randomness come in as arguments; the daemon, the simulator and the tests supply them.

pub mod envelope;
#[doc(hidden)]
pub mod fuzzing;
pub mod interop;
pub mod machine;
pub mod membership;
pub mod model;
pub mod policy;
pub mod roster;
pub mod store;
pub mod sync;
pub mod warninglist;
