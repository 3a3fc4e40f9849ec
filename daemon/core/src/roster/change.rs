//! Proposed changes to the roster and how each one turns version n into version n+1.
//!
//! Owns: `Change` (add from a join request, remove, rotate-key, revoke, set-threshold,
//! set-pins) and
//! `propose`, the one function that derives the next document from the current one.
//! Must never: sign, decide acceptance (`rules`), or read clocks (`issued_ms` comes in).
//!
//! Effects: `add` lists the requester with its key valid from `issued_ms`; `remove` moves the
//! member to `former_members` with `removed_ms = issued_ms` (its keys kept, so what it signed
//! before stays valid; what it dates from then on is refused) and lowers the threshold to the
//! number of members left if it would exceed it; `rotate-key --from T` adds the new key valid
//! from T and ends every open-ended key of the member at T − 1 (items in the old window stay
//! valid); `revoke --as-of T` marks the key revoked as of T (items it dated at or after T are
//! void everywhere); `set-threshold` sets it (the lowering rule of `rules` applies);
//! `set-pins` replaces a member's TLS pins with 1..=`MAX_TLS_PINS` well-formed SHA-256 pins
//! (a certificate renewal lists the old and the new pin, then only the new one). An empty list
//! is refused (it would silently move the member to CA mode), and so is a pin another member
//! holds (a pin names one member) or a list equal to the member's pins (no change).

use serde::{Deserialize, Serialize};

use super::doc::{FormerMember, JoinError, JoinRequest, RosterDoc, RosterKey, parse_public_key};
use crate::membership::SpkiPin;

/// The most TLS pins `set-pins` gives a member (a renewal needs two; a few spare for
/// overlapping renewals of several endpoints).
pub const MAX_TLS_PINS: usize = 4;

/// One change to the roster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Change {
    /// Admit the member a join request describes.
    Add {
        /// The signed join request.
        request: JoinRequest,
    },
    /// Remove a member.
    Remove {
        /// Member id.
        member: String,
    },
    /// Give a member a new signing key from `from_ms`.
    RotateKey {
        /// Member id.
        member: String,
        /// New public key, hex.
        public_key: String,
        /// Unix ms from which the new key signs (the old keys end at `from_ms` − 1).
        from_ms: i64,
    },
    /// Revoke one of a member's keys as of a time.
    Revoke {
        /// Member id.
        member: String,
        /// The revoked public key, hex.
        public_key: String,
        /// Unix ms from which what it signed is void.
        as_of_ms: i64,
    },
    /// Set the threshold.
    SetThreshold {
        /// New threshold.
        threshold: u32,
    },
    /// Replace a member's TLS pins (certificate renewal: old and new, then only the new).
    SetPins {
        /// Member id.
        member: String,
        /// SHA-256 pins of its TLS certificate's public key (`sha256:` + 64 hex digits, or
        /// the 64 hex digits alone).
        pins: Vec<String>,
    },
}

impl Change {
    /// One line for operators, e.g. `add ck-cert`.
    pub fn describe(&self) -> String {
        match self {
            Change::Add { request } => format!("add {}", request.id),
            Change::Remove { member } => format!("remove {member}"),
            Change::RotateKey {
                member, from_ms, ..
            } => format!("rotate-key {member} from {from_ms}"),
            Change::Revoke {
                member, as_of_ms, ..
            } => format!("revoke a key of {member} as of {as_of_ms}"),
            Change::SetThreshold { threshold } => format!("set-threshold {threshold}"),
            Change::SetPins { member, pins } => {
                format!("set-pins {member} ({} pin(s))", pins.len())
            }
        }
    }
}

/// Why a change cannot be applied to the current version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChangeError {
    /// The join request is invalid or not signed by its key.
    #[error(transparent)]
    Join(#[from] JoinError),
    /// The member id is already (or was) in the federation.
    #[error("{0:?} is already a member or a former member (ids are never reused)")]
    IdTaken(String),
    /// No such member.
    #[error("{0:?} is not a member")]
    NoSuchMember(String),
    /// The key is not the member's.
    #[error("{member} has no key {public_key}")]
    NoSuchKey {
        /// Member.
        member: String,
        /// Key.
        public_key: String,
    },
    /// The public key is malformed or already in the roster.
    #[error("public key: {0}")]
    BadKey(String),
    /// A TLS pin list that cannot be set (empty, too long, malformed, another member's, or
    /// unchanged).
    #[error("tls pins of {member}: {message}")]
    BadPins {
        /// Member.
        member: String,
        /// What is wrong (names the pin).
        message: String,
    },
    /// The result would be invalid (e.g. removing the last member, threshold 0).
    #[error("the resulting roster is invalid: {0}")]
    Invalid(String),
}

/// The next version: `current` with `change` applied, issued at `issued_ms`.
pub fn propose(
    current: &RosterDoc,
    change: &Change,
    issued_ms: i64,
) -> Result<RosterDoc, ChangeError> {
    let mut next = current.clone();
    next.version = current.version + 1;
    next.previous = current.hash().to_hex();
    next.issued_ms = issued_ms;
    match change {
        Change::Add { request } => {
            request.verify()?;
            if current.member(&request.id).is_some() || current.former(&request.id).is_some() {
                return Err(ChangeError::IdTaken(request.id.clone()));
            }
            let m = request
                .as_member(None)
                .map_err(|e| ChangeError::Join(JoinError::Invalid(e)))?;
            next.members.push(m);
        }
        Change::Remove { member } => {
            let pos = next
                .members
                .iter()
                .position(|m| &m.id == member)
                .ok_or_else(|| ChangeError::NoSuchMember(member.clone()))?;
            let m = next.members.remove(pos);
            next.former_members.push(FormerMember {
                id: m.id,
                name: m.name,
                removed_ms: issued_ms,
                keys: m.keys,
            });
            next.threshold = next.threshold.min(next.members.len() as u32);
        }
        Change::RotateKey {
            member,
            public_key,
            from_ms,
        } => {
            let key = parse_public_key(public_key).map_err(ChangeError::BadKey)?;
            let m = next
                .members
                .iter_mut()
                .find(|m| &m.id == member)
                .ok_or_else(|| ChangeError::NoSuchMember(member.clone()))?;
            for k in &mut m.keys {
                if k.valid_until_ms.is_none_or(|u| u >= *from_ms) {
                    k.valid_until_ms = Some(from_ms.saturating_sub(1));
                }
            }
            m.keys.push(RosterKey::new(&key, Some(*from_ms)));
        }
        Change::Revoke {
            member,
            public_key,
            as_of_ms,
        } => {
            let want = public_key.trim().to_ascii_lowercase();
            let m = next
                .members
                .iter_mut()
                .find(|m| &m.id == member)
                .ok_or_else(|| ChangeError::NoSuchMember(member.clone()))?;
            let k = m
                .keys
                .iter_mut()
                .find(|k| k.public_key == want)
                .ok_or_else(|| ChangeError::NoSuchKey {
                    member: member.clone(),
                    public_key: want.clone(),
                })?;
            k.revoked_as_of_ms = Some(k.revoked_as_of_ms.map_or(*as_of_ms, |t| t.min(*as_of_ms)));
        }
        Change::SetThreshold { threshold } => next.threshold = *threshold,
        Change::SetPins { member, pins } => {
            let pins = checked_pins(current, member, pins)?;
            let m = next
                .members
                .iter_mut()
                .find(|m| &m.id == member)
                .ok_or_else(|| ChangeError::NoSuchMember(member.clone()))?;
            m.tls_pins = pins;
        }
    }
    let next = next.normalized();
    next.check()
        .map_err(|e| ChangeError::Invalid(e.to_string()))?;
    Ok(next)
}

/// The pins `set-pins` gives `member`: parsed, lower-case hex, sorted, unique; refused when
/// empty, longer than `MAX_TLS_PINS`, malformed, held by another member, or unchanged.
fn checked_pins(
    current: &RosterDoc,
    member: &str,
    pins: &[String],
) -> Result<Vec<String>, ChangeError> {
    let bad = |message: String| ChangeError::BadPins {
        member: member.to_string(),
        message,
    };
    let Some(m) = current.member(member) else {
        return Err(ChangeError::NoSuchMember(member.to_string()));
    };
    if pins.is_empty() {
        return Err(bad(
            "at least one pin is required (a pinned member cannot be moved to CA mode by a \
             pin change)"
                .to_string(),
        ));
    }
    let mut out = Vec::new();
    for (j, p) in pins.iter().enumerate() {
        let pin = SpkiPin::from_hex(p).map_err(|e| bad(format!("pins[{j}]: {e}")))?;
        out.push(pin.to_hex());
    }
    out.sort();
    out.dedup();
    if out.len() > MAX_TLS_PINS {
        return Err(bad(format!(
            "{} distinct pins; at most {MAX_TLS_PINS}",
            out.len()
        )));
    }
    for other in current.members.iter().filter(|o| o.id != member) {
        if let Some(p) = out.iter().find(|p| other.tls_pins.contains(p)) {
            return Err(bad(format!("sha256:{p} is a pin of {}", other.id)));
        }
    }
    if out == m.tls_pins {
        return Err(bad("these are already its pins (no change)".to_string()));
    }
    Ok(out)
}
