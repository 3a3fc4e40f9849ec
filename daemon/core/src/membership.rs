//! The federation as this node sees it at one moment: who is a member, where each is dialled,
//! which keys sign for it (with their windows) and which TLS identities it may present.
//!
//! A `Membership` is built from `tanoad.toml`'s `[[members]]` (version 0: a local, unsigned
//! federation) or from the signed roster in force, and handed to the daemon, which applies it
//! live (keyring, pins, peers to dial or to drop). This module owns the snapshot type and the
//! difference between two snapshots; it must never decide trust on its own (the roster rules
//! decide which snapshot is in force) and never does I/O.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::envelope::PublicKeyRecord;

/// SHA-256 of a certificate's SubjectPublicKeyInfo (DER): the pinned TLS identity of a member.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SpkiPin(pub [u8; 32]);

impl SpkiPin {
    /// Lower-case hex, 64 characters.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hex characters (an optional `sha256:` prefix is accepted).
    pub fn from_hex(s: &str) -> Result<SpkiPin, String> {
        let t = s.trim();
        let t = t.strip_prefix("sha256:").unwrap_or(t);
        let bytes = hex::decode(t).map_err(|e| format!("{s:?} is not hex ({e})"))?;
        let arr: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| {
            format!(
                "{s:?} is {} bytes; a SHA-256 pin is 32 bytes (64 hex characters)",
                b.len()
            )
        })?;
        Ok(SpkiPin(arr))
    }
}

impl fmt::Debug for SpkiPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpkiPin(sha256:{})", self.to_hex())
    }
}

impl fmt::Display for SpkiPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.to_hex())
    }
}

/// One member of the federation, as the node needs it to connect and to verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Member id, e.g. `ws-cert`.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Where it listens for peers, `host:port` (`[v6]:port` for IPv6).
    pub endpoints: Vec<String>,
    /// Its signing keys with their validity windows.
    pub keys: Vec<PublicKeyRecord>,
    /// Pinned TLS identities (any one may be presented; two during a certificate renewal).
    /// Empty: the member is authenticated by the federation CA instead.
    pub tls_pins: Vec<SpkiPin>,
}

/// The federation at one version.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Membership {
    /// Federation id (empty for a local `[[members]]` federation).
    pub federation: String,
    /// Roster version this snapshot comes from (0: the local, unsigned `[[members]]` roster).
    pub version: u64,
    /// Members by id (this node included).
    pub members: BTreeMap<String, Member>,
}

/// What changed between two snapshots, per member id.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MembershipDiff {
    /// Members only in the new snapshot: dial them.
    pub added: BTreeSet<String>,
    /// Members only in the old snapshot: disconnect them and refuse their new items.
    pub removed: BTreeSet<String>,
    /// Members in both whose endpoints, keys or pins changed.
    pub changed: BTreeSet<String>,
}

impl MembershipDiff {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

impl Membership {
    /// Whether `id` is a member.
    pub fn contains(&self, id: &str) -> bool {
        self.members.contains_key(id)
    }

    /// Every signing key of every member.
    pub fn key_records(&self) -> impl Iterator<Item = &PublicKeyRecord> {
        self.members.values().flat_map(|m| m.keys.iter())
    }

    /// The member a pinned TLS identity belongs to, if any.
    pub fn member_by_pin(&self, pin: &SpkiPin) -> Option<&Member> {
        self.members.values().find(|m| m.tls_pins.contains(pin))
    }

    /// What changed from `self` to `next`.
    pub fn diff(&self, next: &Membership) -> MembershipDiff {
        let mut d = MembershipDiff::default();
        for (id, m) in &next.members {
            match self.members.get(id) {
                None => {
                    d.added.insert(id.clone());
                }
                Some(old) if old != m => {
                    d.changed.insert(id.clone());
                }
                Some(_) => {}
            }
        }
        for id in self.members.keys() {
            if !next.members.contains_key(id) {
                d.removed.insert(id.clone());
            }
        }
        d
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use ed25519_dalek::SigningKey;

    fn member(id: &str, seed: u8, pins: Vec<SpkiPin>) -> Member {
        let key = SigningKey::from_bytes(&[seed; 32]).verifying_key();
        Member {
            id: id.into(),
            name: id.into(),
            endpoints: vec![format!("127.0.0.{seed}:7400")],
            keys: vec![PublicKeyRecord::new(id, key, None, None)],
            tls_pins: pins,
        }
    }

    fn snapshot(version: u64, members: Vec<Member>) -> Membership {
        Membership {
            federation: "pacific".into(),
            version,
            members: members.into_iter().map(|m| (m.id.clone(), m)).collect(),
        }
    }

    #[test]
    fn diff_names_added_removed_and_changed_members() {
        let a = snapshot(1, vec![member("ws", 1, vec![]), member("to", 2, vec![])]);
        let mut to2 = member("to", 2, vec![]);
        to2.tls_pins.push(SpkiPin([7; 32]));
        let b = snapshot(2, vec![to2, member("ck", 3, vec![])]);
        let d = a.diff(&b);
        assert_eq!(d.added, BTreeSet::from(["ck".to_string()]));
        assert_eq!(d.removed, BTreeSet::from(["ws".to_string()]));
        assert_eq!(d.changed, BTreeSet::from(["to".to_string()]));
        assert!(a.diff(&a).is_empty());
    }

    #[test]
    fn pins_parse_from_hex_and_find_their_member() {
        let pin = SpkiPin::from_hex(&format!("sha256:{}", "ab".repeat(32))).unwrap();
        assert_eq!(pin.0, [0xab; 32]);
        assert!(SpkiPin::from_hex("abcd").unwrap_err().contains("2 bytes"));
        assert!(SpkiPin::from_hex("zz").unwrap_err().contains("not hex"));
        let m = snapshot(1, vec![member("ws", 1, vec![pin]), member("to", 2, vec![])]);
        assert_eq!(m.member_by_pin(&pin).map(|x| x.id.as_str()), Some("ws"));
        assert!(m.member_by_pin(&SpkiPin([0; 32])).is_none());
    }
}
