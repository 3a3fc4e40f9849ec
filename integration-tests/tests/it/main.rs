//! Integration tests: real `tanoad` processes (and the real `tanoa` CLI) driven over the
//! operator socket. One test binary; one module per concern.
//!
//! Every wait is bounded and polls; every daemon is killed when its test ends.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod blocklist;
mod cli;
mod config;
mod crash;
mod equivocation;
mod export_paging;
mod federation;
mod federation_guide;
mod fuzz_corpus;
mod lifecycle;
mod live_membership;
mod lockout;
mod misp;
mod noninterference;
mod partition;
mod rejected;
mod roster;
mod roster_flow;
mod roster_pins;
mod roundtrip;
mod socket;
mod stix;
mod taxii;
mod thin_links;
mod warninglists;
mod withdrawal;

use tanoa_integration_tests::{Binaries, binaries};

/// Paths of this package's binaries.
pub fn bins() -> Binaries {
    binaries!()
}
