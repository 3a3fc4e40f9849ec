//! Deterministic simulator of a whole federation: the real [`SyncCore`] of every member (the very
//! code the daemon runs), the real in-memory store, real envelope verification and the real
//! policy admit path, on a simulated network with a virtual clock and a seeded pseudo-random
//! function. Used by the `simulate` bench (the report of issue 4) and by tests.
//!
//! Owns: the virtual clock and event queue, the simulated network (per-link latency, bandwidth,
//! loss, duplication, reordering, cuts and heals), member lifecycles (crash, restart, wiped
//! restart, late join, permanent departure, per-member clock skew), the scenario items (signed
//! once per run), the invariants checked as the run goes, and the measurements of the report.
//! Must never: read a real clock, a socket or a file; use ambient randomness; change what the
//! core, the policy or the store decide (it only drives them, except in a [`Mutation`], which
//! exists to prove the invariants catch a broken policy).
//!
//! # A simulated member
//!
//! `tanoa_core::machine::NodeMachine` (the very machine the daemon's driver runs: `SyncCore` plus
//! the receive pipeline) + `MemoryStore`: a received envelope goes through the machine's
//! pipeline — verified (a `Verify` over `envelope::verify` against the scenario's keyring),
//! admitted (`NodeMachine::admit`: `policy::may_send`), stored by the simulator (`Store::put`,
//! the store plan), then reported (`NodeMachine::accepted`).
//! Two shortcuts keep 1,000 members fast, both documented here: every item is signed once per run
//! (`SigningIdentity::sign`) and the result of verifying an envelope is cached by item id (the
//! first receipt anywhere runs the real `verify`; a later envelope is accepted from the cache only
//! if it is byte-identical to the one verified, otherwise it is verified again); and envelopes to
//! send are taken from the scenario's signed set once the member's holding is checked, instead of
//! decoding them back out of the store.
//!
//! # Thin links (issue 12)
//!
//! When a scenario names a [`LinkProfile`] per member (`fibre`, `satellite`, `cable-cut`; the
//! [`pacific`] presets), every member has an access link instead of the uniform [`LinkModel`]: a
//! message from A to B is serialized on A's uplink at A's bandwidth, propagates for half of A's
//! round trip plus half of B's (satellite to fibre: 310 ms one way; island to island: two
//! geostationary hops, 600 ms), is serialized on B's downlink at B's bandwidth (each queue first
//! in first out, in µs), and is lost with A's loss on the way up and B's on the way down, or when
//! either link is down at any moment between its sending and its delivery (`cable-cut` drops
//! for 10 s every 60 s, each member at its own phase drawn from the seed; nobody is told: the
//! request times out, as a connection dying mid-transfer). Bytes on the link are the encoded
//! message plus its gRPC, HTTP/2, TLS and TCP/IP framing ([`link_bytes`]). Loss is per message
//! (the core's retries recover it), not TCP's per-segment retransmission. Without profiles the
//! engine takes exactly the old path: the report of seeds 42-50 is byte-identical.
//!
//! # Roster changes (issue 11)
//!
//! When a scenario has a [`RosterPlan`] ([`roster_presets`]), the membership is tanoa-core's
//! signed roster: founded by a majority of the members present (the threshold is a majority;
//! `roster::rules` then asks a majority's signatures for every change at this size), each member
//! runs its own `RosterEngine` from its roster file (the founding version; a joiner's is the
//! version that admits it, or after a wiped restart). A change is proposed by a carrier
//! (`RosterItem::Proposal`, a GREEN advisory gossiped like any item); its approvers approve when
//! they see it (`RosterItem::Approval`); the proposer's engine assembles the version and the
//! proposer publishes it (`RosterItem::Version`). The driver part, as the daemon's would do it:
//! a carrier is admitted by `RosterEngine::check` before it is stored (refusals counted by
//! reason) and recorded by `ingest` after; each member verifies envelopes against the keyring of
//! its version in force (`RosterDoc::key_records`); connections are accepted only between members
//! of each end's version in force (a refused request fails at once); when the version in force
//! changes, new members are dialled (`peer_up`), removed ones dropped (`peer_down`), and items the
//! new version makes invalid (a revoked key's, a removed member's later ones) are dropped from the
//! store. A member signs with a rotated key only once the rotation is in force at home.
//! Shortcuts: approvals are fed to the engine of their proposer only (the version then reaches
//! everyone as a `Version` carrier with the same signatures; every member still stores and
//! relays approvals). A dropped item leaves the member's store and its core's reconciliation index
//! (`SyncCore::forget_items`), as in the daemon; pushes of it already queued are skipped.
//! Invariants: at every store write the item's signer key is valid at its date under the storing
//! member's version in force (`View::valid` = `RosterDoc::signer_valid_at`); at the end every
//! member of the final version has it in force within `converge_intervals` intervals of the last
//! change, holds nothing it makes invalid, and holds everything else it may hold.
//!
//! # Invariants, checked at every step
//!
//! - at every store write: the member may hold the item (`policy::may_hold`);
//! - at every message delivered to a member Q: each id and envelope it carries (push, push
//!   result, fetch request, fetch response) is of an item Q may hold, and no reconciliation
//!   message carries the 32 bytes of the id of an item Q may not hold (fingerprints cannot be
//!   inspected: the transcript comparison of the tests covers them — the same scenario with and
//!   without Q-forbidden items delivers byte-identical messages to Q);
//! - at the end: every remaining member holds exactly what it may hold, and all agree on the
//!   latest revision of every advisory (equivocations resolved the same way), asked of the store.
//!
//! An item whose only holder restarts with a wiped store is lost for good: it leaves the expected
//! sets and is counted in the report (`lost_items`).
//!
//! # What the simulator found (see the tests)
//!
//! - A lost push used to be dropped by the core, so an AMBER or RED item with a small audience
//!   reached a member whose push was lost only when anti-entropy paired it with an allowed sender
//!   (up to one interval per member). The core now re-queues a push that timed out
//!   (`sim_lost_restricted_pushes_are_resent_and_converge`).
//! - Items fetched to catch up are pushed on as if new (`Source::Peer`), which makes a fresh
//!   member's backlog catch-up redundant (~0.8 of the backlog re-sent); left as is for now.
//! - Non-interference holds for bytes, not for timing: with the default two requests in flight
//!   per peer, a secret pushed to a relay delays the GREEN item behind it and so changes when
//!   (not what) another member receives; the transcript comparison raises `max_in_flight`.
//!
//! A violation stops nothing: it is recorded with the time, and the run's result carries the
//! scenario name and seed so the run can be replayed with [`run`].

mod engine;
mod links;
mod report;
mod roster;
mod scenario;

#[cfg(test)]
mod tests;

pub use self::engine::{Outcome, SimError, run};
pub use self::report::{ProfileRow, Report, Thin, bound_rounds, format_report};
pub use self::scenario::{
    Fault, ItemMix, LinkModel, LinkProfile, LinkSpec, Mutation, RosterChange, RosterPlan,
    RosterStep, Scenario, TimedFault, link_bytes, pacific, presets, roster_presets,
};
