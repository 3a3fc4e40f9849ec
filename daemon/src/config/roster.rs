//! `[roster]`: the signed roster file this node was started with, checked against the hash its
//! operator compared out of band. The file's version is the trust anchor; the node follows
//! signed updates from there by itself. Without `[roster]`, `[[members]]` is version 0 (a
//! local, unsigned federation), as before.

use std::path::{Path, PathBuf};

use super::member::{PeerEndpoint, RosterMember};
use super::raw::RawRoster;
use super::resolve_path;
use tanoa_core::roster::{RosterDoc, RosterHash, SignedRoster};

/// `[roster]` resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RosterConfig {
    /// The roster file (absolute).
    pub file: PathBuf,
    /// The hash its operator checked (of the roster document, as `tanoa roster show` prints).
    pub sha256: RosterHash,
    /// The roster in the file (its hash is `sha256`).
    pub anchor: SignedRoster,
}

/// `[roster]` resolved: the file read, parsed and its hash compared with `sha256`.
pub(super) fn resolve_signed_roster(
    raw: RawRoster,
    base: &Path,
    bad: &mut dyn FnMut(&str, String),
) -> Option<RosterConfig> {
    let file = resolve_path(base, &raw.file);
    let Some(sha256) = RosterHash::from_hex(&raw.sha256) else {
        bad(
            "roster.sha256",
            format!("{:?} is not a 64-hex-digit SHA-256", raw.sha256),
        );
        return None;
    };
    let text = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) => {
            bad(
                "roster.file",
                format!("cannot read {}: {e}", file.display()),
            );
            return None;
        }
    };
    let anchor = match SignedRoster::from_json(&text) {
        Ok(a) => a,
        Err(e) => {
            bad("roster.file", format!("{}: {e}", file.display()));
            return None;
        }
    };
    let got = anchor.hash();
    if got != sha256 {
        bad(
            "roster.sha256",
            format!(
                "{} has roster hash {got}, not the {sha256} configured: do not start with a roster \
                 you did not check",
                file.display()
            ),
        );
        return None;
    }
    Some(RosterConfig {
        file,
        sha256,
        anchor,
    })
}

/// The `[[members]]` form of a roster version (the peers, endpoints and member keys the node
/// is built with). Endpoints that do not parse are skipped (the document checked `host:port`).
pub(crate) fn members_of(doc: &RosterDoc) -> Vec<RosterMember> {
    let m = doc.membership();
    m.members
        .into_values()
        .map(|x| RosterMember {
            id: x.id,
            name: x.name,
            endpoints: x
                .endpoints
                .iter()
                .filter_map(|e| PeerEndpoint::parse(e).ok())
                .collect(),
            keys: x.keys,
            tls_pins: x.tls_pins,
        })
        .collect()
}
