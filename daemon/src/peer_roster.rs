//! The roster version each peer reports, for display (`tanoa peers`, `tanoa status`).
//!
//! Every request to a peer and every answer of the peer port carries the metadata header
//! `tanoa-roster-version: <version>[:<hash prefix>]` (the version in force at the sender and the
//! first 16 hex digits of its hash; version 0, the local `[[members]]` roster, has no hash).
//!
//! Owns: the header's format (`RosterStamp`, strict parsing: ASCII decimal without sign or
//! leading zeros, then optionally `:` and 8 to 64 lower-case hex digits; at most 96 bytes), the
//! value this member sends (set whenever a membership is applied), and `PeerRosters`, the last
//! stamp seen per peer and the malformed values counted per peer.
//! Must never: record a stamp for anyone but the member the transport verified (the caller's
//! certificate on the peer port, the dialled member on our requests), or let a reported version
//! decide anything but what operators are shown (membership comes from the signed roster only;
//! a malformed value is ignored and counted).

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError, RwLock};

use http::HeaderValue;

/// The metadata header carrying the sender's roster version.
pub(crate) const HEADER: &str = "tanoa-roster-version";

/// Reason code (metric `peer_message_rejected`) of a malformed header value.
pub(crate) const MALFORMED_HEADER: &str = "malformed_roster_header";

/// Hex digits of the hash sent in the header.
pub(crate) const HASH_PREFIX_LEN: usize = 16;

/// Longest value accepted.
const MAX_LEN: usize = 96;

/// A roster version as reported in the header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RosterStamp {
    /// Version in force at the sender.
    pub(crate) version: u64,
    /// First hex digits of its hash (`None` for version 0 or when not sent).
    pub(crate) hash_prefix: Option<String>,
}

/// Why a header value was ignored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum StampError {
    /// Not visible ASCII, or too long.
    #[error("tanoa-roster-version: not a short ASCII value")]
    NotAscii,
    /// The version is not a decimal u64 (no sign, no leading zero).
    #[error("tanoa-roster-version: version {0:?} is not a decimal number")]
    BadVersion(String),
    /// The hash prefix is not 8 to 64 lower-case hex digits.
    #[error("tanoa-roster-version: hash {0:?} is not 8 to 64 lower-case hex digits")]
    BadHash(String),
}

impl RosterStamp {
    /// The stamp of version `version` with hash `hash_hex` (full or prefix; cut to
    /// `HASH_PREFIX_LEN`).
    pub(crate) fn new(version: u64, hash_hex: Option<&str>) -> RosterStamp {
        RosterStamp {
            version,
            hash_prefix: hash_hex
                .filter(|h| !h.is_empty())
                .map(|h| h.get(..HASH_PREFIX_LEN).unwrap_or(h).to_ascii_lowercase()),
        }
    }

    /// The header value.
    pub(crate) fn to_value(&self) -> String {
        match &self.hash_prefix {
            Some(h) => format!("{}:{h}", self.version),
            None => self.version.to_string(),
        }
    }

    /// Parses a header value (see the module doc for the format).
    pub(crate) fn parse(raw: &[u8]) -> Result<RosterStamp, StampError> {
        if raw.is_empty() || raw.len() > MAX_LEN || !raw.iter().all(|b| b.is_ascii_graphic()) {
            return Err(StampError::NotAscii);
        }
        let s = std::str::from_utf8(raw).map_err(|_| StampError::NotAscii)?;
        let (v, h) = match s.split_once(':') {
            Some((v, h)) => (v, Some(h)),
            None => (s, None),
        };
        let digits = !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit());
        if !digits || (v.len() > 1 && v.starts_with('0')) {
            return Err(StampError::BadVersion(v.to_string()));
        }
        let version = v
            .parse::<u64>()
            .map_err(|_| StampError::BadVersion(v.to_string()))?;
        if let Some(h) = h {
            let ok = (8..=64).contains(&h.len())
                && h.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            if !ok {
                return Err(StampError::BadHash(h.to_string()));
            }
        }
        Ok(RosterStamp {
            version,
            hash_prefix: h.map(str::to_string),
        })
    }
}

/// What one peer last reported.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PeerRoster {
    /// The last well-formed stamp (`None`: never reported).
    pub(crate) stamp: Option<RosterStamp>,
    /// Unix ms when it was received.
    pub(crate) seen_ms: i64,
    /// Malformed values received (ignored).
    pub(crate) malformed: u64,
}

/// What a header did to the record of a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Recorded {
    /// No header (an older member): nothing changed.
    Absent,
    /// A well-formed stamp was recorded.
    Stamp,
    /// A malformed value was ignored and counted.
    Malformed,
}

/// This member's stamp and the stamps its peers reported (shared by the peer port and the
/// sync driver).
#[derive(Debug)]
pub(crate) struct PeerRosters {
    ours: RwLock<(RosterStamp, HeaderValue)>,
    peers: Mutex<BTreeMap<String, PeerRoster>>,
}

impl Default for PeerRosters {
    fn default() -> Self {
        let ours = RosterStamp::new(0, None);
        let value = HeaderValue::from_static("0");
        PeerRosters {
            ours: RwLock::new((ours, value)),
            peers: Mutex::default(),
        }
    }
}

impl PeerRosters {
    /// Sets the stamp this member sends.
    pub(crate) fn set_ours(&self, stamp: RosterStamp) {
        let value = HeaderValue::from_str(&stamp.to_value())
            .unwrap_or_else(|_| HeaderValue::from_static("0"));
        *self.ours.write().unwrap_or_else(PoisonError::into_inner) = (stamp, value);
    }

    /// The stamp this member sends.
    #[cfg(test)]
    pub(crate) fn ours(&self) -> RosterStamp {
        self.ours
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .0
            .clone()
    }

    /// The header value this member sends.
    pub(crate) fn our_value(&self) -> HeaderValue {
        self.ours
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .1
            .clone()
    }

    /// Records the header `value` received from `peer` (the verified member) at `now_ms`.
    pub(crate) fn record(&self, peer: &str, value: Option<&[u8]>, now_ms: i64) -> Recorded {
        let Some(value) = value else {
            return Recorded::Absent;
        };
        let parsed = RosterStamp::parse(value);
        let mut peers = self.peers.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = peers.entry(peer.to_string()).or_default();
        match parsed {
            Ok(stamp) => {
                entry.stamp = Some(stamp);
                entry.seen_ms = now_ms;
                Recorded::Stamp
            }
            Err(e) => {
                entry.malformed = entry.malformed.saturating_add(1);
                // Logged at the first and then at every power of two, never flooding the log.
                if entry.malformed.is_power_of_two() {
                    tracing::warn!(%peer, error = %e, count = entry.malformed,
                        "malformed roster version header ignored");
                }
                Recorded::Malformed
            }
        }
    }

    /// What `peer` reported.
    #[cfg(test)]
    pub(crate) fn get(&self, peer: &str) -> PeerRoster {
        self.peers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(peer)
            .cloned()
            .unwrap_or_default()
    }

    /// Every peer that reported something.
    pub(crate) fn snapshot(&self) -> BTreeMap<String, PeerRoster> {
        self.peers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Forgets a peer (removed from the roster).
    pub(crate) fn forget(&self, peer: &str) {
        self.peers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(peer);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn well_formed_values_parse() {
        assert_eq!(
            RosterStamp::parse(b"0").unwrap(),
            RosterStamp {
                version: 0,
                hash_prefix: None
            }
        );
        assert_eq!(
            RosterStamp::parse(b"12:0123abcd89ef4567").unwrap(),
            RosterStamp {
                version: 12,
                hash_prefix: Some("0123abcd89ef4567".into())
            }
        );
        let max = format!("{}:{}", u64::MAX, "f".repeat(64));
        assert_eq!(
            RosterStamp::parse(max.as_bytes()).unwrap().version,
            u64::MAX
        );
    }

    #[test]
    fn malformed_values_are_refused_with_the_part_named() {
        let cases: &[(&[u8], &str)] = &[
            (b"", "ascii"),
            (b"7 ", "ascii"),
            (b"\xff7", "ascii"),
            (b"-1", "version"),
            (b"+1", "version"),
            (b"01", "version"),
            (b"1.5", "version"),
            (b"18446744073709551616", "version"),
            (b":abcdef01", "version"),
            (b"abc", "version"),
            (b"3:", "hash"),
            (b"3:abc", "hash"),
            (b"3:ABCDEF0123", "hash"),
            (b"3:abcdefg123", "hash"),
            (b"3:abcdef01:2", "hash"),
        ];
        for (raw, part) in cases {
            let e = RosterStamp::parse(raw).unwrap_err();
            let got = match e {
                StampError::NotAscii => "ascii",
                StampError::BadVersion(_) => "version",
                StampError::BadHash(_) => "hash",
            };
            assert_eq!(got, *part, "{:?}", String::from_utf8_lossy(raw));
        }
        let long = format!("1:{}", "a".repeat(100));
        assert_eq!(
            RosterStamp::parse(long.as_bytes()).unwrap_err(),
            StampError::NotAscii
        );
        assert!(matches!(
            RosterStamp::parse(format!("1:{}", "a".repeat(65)).as_bytes()),
            Err(StampError::BadHash(_))
        ));
    }

    #[test]
    fn a_stamp_round_trips_through_its_header_value() {
        for s in [
            RosterStamp::new(0, None),
            RosterStamp::new(4, Some(&"ab".repeat(32))),
        ] {
            assert_eq!(RosterStamp::parse(s.to_value().as_bytes()).unwrap(), s);
        }
        assert_eq!(
            RosterStamp::new(4, Some(&"AB".repeat(32))).to_value(),
            format!("4:{}", "ab".repeat(8))
        );
    }

    #[test]
    fn a_malformed_header_is_counted_and_keeps_the_last_good_stamp() {
        let r = PeerRosters::default();
        assert_eq!(r.record("to-cert", None, 1), Recorded::Absent);
        assert_eq!(r.get("to-cert"), PeerRoster::default());
        let good = b"3:0123456789abcdef".as_slice();
        assert_eq!(r.record("to-cert", Some(good), 10), Recorded::Stamp);
        let bad = b"999999999999999999999".as_slice();
        assert_eq!(r.record("to-cert", Some(bad), 20), Recorded::Malformed);
        let p = r.get("to-cert");
        assert_eq!(p.stamp.unwrap().version, 3);
        assert_eq!((p.seen_ms, p.malformed), (10, 1));
        r.forget("to-cert");
        assert_eq!(r.get("to-cert"), PeerRoster::default());
    }

    #[test]
    fn our_value_follows_the_applied_version() {
        let r = PeerRosters::default();
        assert_eq!(r.our_value(), "0");
        r.set_ours(RosterStamp::new(5, Some(&"c".repeat(64))));
        assert_eq!(r.our_value(), format!("5:{}", "c".repeat(16)).as_str());
        assert_eq!(r.ours().version, 5);
    }
}
