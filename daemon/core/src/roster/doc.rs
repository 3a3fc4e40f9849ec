//! The roster document and what is signed: members, keys with their windows, former members,
//! the threshold; its one canonical encoding and hash; roster signatures; join requests.
//!
//! Owns: the roster's types, structural validation (each error names its field), the canonical
//! encoding (compact JSON of the normalized document; decoding refuses anything whose
//! re-encoding differs), `RosterHash` = SHA-256 of that encoding, and the domain-separated
//! messages a member signs (a roster hash, a join request).
//! Must never: decide whether a version may follow another (`rules` does), read clocks or files.

use std::collections::BTreeSet;
use std::fmt;

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::envelope::{PublicKeyRecord, SigningIdentity, key_id_of};
use crate::membership::{Member, Membership, SpkiPin};
use crate::model::validate::check_member_id;
use crate::roster::change::MAX_TLS_PINS;

/// Domain separation of a signature over a roster hash.
const ROSTER_SIG_DOMAIN: &str = "tanoa-roster-v1";
/// Domain separation of a join request's self-signature.
const JOIN_SIG_DOMAIN: &str = "tanoa-join-request-v1";

/// SHA-256 of a roster document's canonical encoding.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RosterHash(pub [u8; 32]);

impl RosterHash {
    /// Lower-case hex, 64 digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hex digits (an optional `sha256:` prefix is accepted).
    pub fn from_hex(s: &str) -> Option<RosterHash> {
        let t = s.trim();
        let t = t.strip_prefix("sha256:").unwrap_or(t);
        let mut out = [0u8; 32];
        hex::decode_to_slice(t, &mut out).ok()?;
        Some(RosterHash(out))
    }

    /// First 16 hex digits (for names and logs).
    pub fn short(&self) -> String {
        hex::encode(&self.0[..8])
    }
}

impl fmt::Debug for RosterHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RosterHash({})", self.short())
    }
}

impl fmt::Display for RosterHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// One signing key of a member, with its window and, once revoked, the time from which
/// everything it signed is void.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RosterKey {
    /// Ed25519 public key, 64 hex digits.
    pub public_key: String,
    /// Unix ms from which it may sign (`None`: always).
    pub valid_from_ms: Option<i64>,
    /// Unix ms until which it may sign (`None`: no end). Set by a rotation.
    pub valid_until_ms: Option<i64>,
    /// Unix ms from which what it signed is void (`None`: not revoked).
    pub revoked_as_of_ms: Option<i64>,
}

impl RosterKey {
    /// A key valid from `valid_from_ms` with no end.
    pub fn new(key: &VerifyingKey, valid_from_ms: Option<i64>) -> RosterKey {
        RosterKey {
            public_key: hex::encode(key.as_bytes()),
            valid_from_ms,
            valid_until_ms: None,
            revoked_as_of_ms: None,
        }
    }

    /// The parsed public key.
    pub fn verifying_key(&self) -> Result<VerifyingKey, String> {
        parse_public_key(&self.public_key)
    }

    /// Key id (`ed25519:` + 16 hex digits), or the parse error.
    pub fn key_id(&self) -> Result<String, String> {
        self.verifying_key().map(|k| key_id_of(&k))
    }

    /// The last millisecond this key may sign at, all limits applied (`None`: no end).
    pub fn effective_until_ms(&self, removed_ms: Option<i64>) -> Option<i64> {
        [
            self.valid_until_ms,
            self.revoked_as_of_ms.map(|t| t.saturating_sub(1)),
            removed_ms.map(|t| t.saturating_sub(1)),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Whether the key may sign something dated `at_ms` (window and revocation).
    pub fn valid_at(&self, at_ms: i64) -> bool {
        self.valid_from_ms.is_none_or(|f| at_ms >= f)
            && self.effective_until_ms(None).is_none_or(|u| at_ms <= u)
    }
}

/// Parses a 64-hex-digit ed25519 public key.
pub fn parse_public_key(hex_key: &str) -> Result<VerifyingKey, String> {
    let mut b = [0u8; 32];
    hex::decode_to_slice(hex_key.trim(), &mut b)
        .map_err(|e| format!("{hex_key:?} is not 64 hex digits ({e})"))?;
    VerifyingKey::from_bytes(&b).map_err(|e| format!("{hex_key:?} is not an ed25519 key ({e})"))
}

/// A member in a roster version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RosterMember {
    /// Member id, e.g. `ws-cert`.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Peer endpoints, `host:port`, in dialling order.
    pub endpoints: Vec<String>,
    /// Signing keys (sorted by public key in the canonical form).
    pub keys: Vec<RosterKey>,
    /// SHA-256 pins of the TLS certificate's public key, hex (sorted, unique); empty: CA mode.
    pub tls_pins: Vec<String>,
}

/// A member removed by an earlier version. Kept so that what it signed before its removal
/// still verifies on every member, including members that joined later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormerMember {
    /// Member id (never reused).
    pub id: String,
    /// Display name.
    pub name: String,
    /// `issued_ms` of the version that removed it: its items dated from then on are void.
    pub removed_ms: i64,
    /// Its keys at removal.
    pub keys: Vec<RosterKey>,
}

/// One version of the roster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RosterDoc {
    /// Federation id.
    pub federation: String,
    /// Version, 1 for the founding roster.
    pub version: u64,
    /// Hash of version − 1 (hex); empty for version 1.
    pub previous: String,
    /// Unix ms the proposer issued it (removals and signer keys are judged at this time).
    pub issued_ms: i64,
    /// Distinct members of this version whose signatures the next version needs.
    pub threshold: u32,
    /// Members (sorted by id).
    pub members: Vec<RosterMember>,
    /// Members removed by earlier versions (sorted by id).
    pub former_members: Vec<FormerMember>,
}

/// A structural fault of a roster document, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct DocError {
    /// Field path, e.g. `members[2].keys[0].public_key`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

fn doc_err(field: impl Into<String>, message: impl Into<String>) -> DocError {
    DocError {
        field: field.into(),
        message: message.into(),
    }
}

impl RosterDoc {
    /// The normalized form: members, former members, keys and pins sorted; pins lower-case.
    pub fn normalized(mut self) -> RosterDoc {
        for m in &mut self.members {
            m.keys.sort_by(|a, b| a.public_key.cmp(&b.public_key));
            for p in &mut m.tls_pins {
                *p = p.trim().trim_start_matches("sha256:").to_ascii_lowercase();
            }
            m.tls_pins.sort();
            m.tls_pins.dedup();
        }
        for f in &mut self.former_members {
            f.keys.sort_by(|a, b| a.public_key.cmp(&b.public_key));
        }
        for k in self
            .members
            .iter_mut()
            .flat_map(|m| m.keys.iter_mut())
            .chain(
                self.former_members
                    .iter_mut()
                    .flat_map(|f| f.keys.iter_mut()),
            )
        {
            k.public_key = k.public_key.trim().to_ascii_lowercase();
        }
        self.members.sort_by(|a, b| a.id.cmp(&b.id));
        self.former_members.sort_by(|a, b| a.id.cmp(&b.id));
        self
    }

    /// The canonical encoding (compact JSON of the normalized document).
    pub fn canonical_bytes(&self) -> Vec<u8> {
        // Serializing plain structs of strings and integers cannot fail.
        serde_json::to_vec(&self.clone().normalized()).unwrap_or_default()
    }

    /// SHA-256 of the canonical encoding.
    pub fn hash(&self) -> RosterHash {
        RosterHash(Sha256::digest(self.canonical_bytes()).into())
    }

    /// Decodes canonical bytes; anything that is not exactly the canonical encoding of a valid
    /// document is refused.
    pub fn decode_canonical(bytes: &[u8]) -> Result<RosterDoc, DocError> {
        let doc: RosterDoc =
            serde_json::from_slice(bytes).map_err(|e| doc_err("roster", e.to_string()))?;
        doc.check()?;
        if doc.canonical_bytes() != bytes {
            return Err(doc_err("roster", "not in canonical form"));
        }
        Ok(doc)
    }

    /// The member with id `id`.
    pub fn member(&self, id: &str) -> Option<&RosterMember> {
        self.members.iter().find(|m| m.id == id)
    }

    /// The former member with id `id`.
    pub fn former(&self, id: &str) -> Option<&FormerMember> {
        self.former_members.iter().find(|m| m.id == id)
    }

    /// Structural validation; the first fault found, naming its field.
    pub fn check(&self) -> Result<(), DocError> {
        if self.federation.trim().is_empty() {
            return Err(doc_err("federation", "must not be empty"));
        }
        if self.version == 0 {
            return Err(doc_err("version", "must be at least 1"));
        }
        if self.version == 1 && !self.previous.is_empty() {
            return Err(doc_err("previous", "must be empty for version 1"));
        }
        if self.version > 1 && RosterHash::from_hex(&self.previous).is_none() {
            return Err(doc_err(
                "previous",
                "must be the 64-hex-digit hash of the previous version",
            ));
        }
        if self.members.is_empty() {
            return Err(doc_err("members", "must not be empty"));
        }
        if self.threshold == 0 || self.threshold as usize > self.members.len() {
            return Err(doc_err(
                "threshold",
                format!(
                    "is {}; it must be between 1 and the number of members ({})",
                    self.threshold,
                    self.members.len()
                ),
            ));
        }
        let mut ids = BTreeSet::new();
        let mut keys = BTreeSet::new();
        let mut pins = BTreeSet::new();
        for (i, m) in self.members.iter().enumerate() {
            let f = format!("members[{i}]");
            check_member_id(&m.id).map_err(|e| doc_err(format!("{f}.id"), e))?;
            if !ids.insert(m.id.as_str()) {
                return Err(doc_err(
                    format!("{f}.id"),
                    format!("{:?} is listed twice", m.id),
                ));
            }
            if m.name.trim().is_empty() {
                return Err(doc_err(format!("{f}.name"), "must not be empty"));
            }
            for (j, e) in m.endpoints.iter().enumerate() {
                if e.trim().is_empty() || !e.contains(':') {
                    return Err(doc_err(
                        format!("{f}.endpoints[{j}]"),
                        format!("{e:?} is not host:port"),
                    ));
                }
            }
            if m.keys.is_empty() {
                return Err(doc_err(format!("{f}.keys"), "a member needs a signing key"));
            }
            check_keys(&m.keys, &format!("{f}.keys"), &mut keys)?;
            if m.tls_pins.len() > MAX_TLS_PINS {
                return Err(doc_err(
                    format!("{f}.tls_pins"),
                    format!("{} pins; at most {MAX_TLS_PINS}", m.tls_pins.len()),
                ));
            }
            for (j, p) in m.tls_pins.iter().enumerate() {
                let pin =
                    SpkiPin::from_hex(p).map_err(|e| doc_err(format!("{f}.tls_pins[{j}]"), e))?;
                if !pins.insert(pin.0) {
                    return Err(doc_err(
                        format!("{f}.tls_pins[{j}]"),
                        "is listed twice (a pin names one member)",
                    ));
                }
            }
        }
        for (i, m) in self.former_members.iter().enumerate() {
            let f = format!("former_members[{i}]");
            check_member_id(&m.id).map_err(|e| doc_err(format!("{f}.id"), e))?;
            if !ids.insert(m.id.as_str()) {
                return Err(doc_err(
                    format!("{f}.id"),
                    format!("{:?} is also a member or listed twice", m.id),
                ));
            }
            check_keys(&m.keys, &format!("{f}.keys"), &mut keys)?;
        }
        Ok(())
    }

    /// The snapshot handed to the node: members with endpoints, keys (windows closed by
    /// rotation and revocation) and pins. Former members are not in it (see `key_records`).
    pub fn membership(&self) -> Membership {
        let members = self
            .members
            .iter()
            .map(|m| {
                let member = Member {
                    id: m.id.clone(),
                    name: m.name.clone(),
                    endpoints: m.endpoints.clone(),
                    keys: records(&m.id, &m.keys, None),
                    tls_pins: m
                        .tls_pins
                        .iter()
                        .filter_map(|p| SpkiPin::from_hex(p).ok())
                        .collect(),
                };
                (m.id.clone(), member)
            })
            .collect();
        Membership {
            federation: self.federation.clone(),
            version: self.version,
            members,
        }
    }

    /// Every verification key this version implies: members' keys, and former members' keys
    /// with their windows ending just before their removal (what they signed before stays
    /// valid, what they sign after is refused).
    pub fn key_records(&self) -> Vec<PublicKeyRecord> {
        let mut out: Vec<PublicKeyRecord> = self
            .members
            .iter()
            .flat_map(|m| records(&m.id, &m.keys, None))
            .collect();
        out.extend(
            self.former_members
                .iter()
                .flat_map(|f| records(&f.id, &f.keys, Some(f.removed_ms))),
        );
        out
    }
}

impl RosterDoc {
    /// Whether an item `origin` signed with `key_id`, dated `at_ms`, is valid under this
    /// version: the key belongs to the origin (a member or a former member) and its window,
    /// closed by rotation, revocation and removal, contains `at_ms`. The rule every member
    /// applies to every item, so a revocation drops the same items on every member.
    pub fn signer_valid_at(&self, origin: &str, key_id: &str, at_ms: i64) -> bool {
        self.key_records()
            .iter()
            .any(|r| r.member == origin && r.key_id == key_id && r.valid_at(at_ms))
    }
}

fn check_keys(
    keys: &[RosterKey],
    field: &str,
    seen: &mut BTreeSet<String>,
) -> Result<(), DocError> {
    for (j, k) in keys.iter().enumerate() {
        k.verifying_key()
            .map_err(|e| doc_err(format!("{field}[{j}].public_key"), e))?;
        if !seen.insert(k.public_key.to_ascii_lowercase()) {
            return Err(doc_err(
                format!("{field}[{j}].public_key"),
                "is listed more than once in the roster",
            ));
        }
        if let (Some(f), Some(u)) = (k.valid_from_ms, k.valid_until_ms)
            && u < f
        {
            return Err(doc_err(
                format!("{field}[{j}].valid_until_ms"),
                "is before valid_from_ms",
            ));
        }
    }
    Ok(())
}

fn records(member: &str, keys: &[RosterKey], removed_ms: Option<i64>) -> Vec<PublicKeyRecord> {
    keys.iter()
        .filter_map(|k| {
            let key = k.verifying_key().ok()?;
            Some(PublicKeyRecord::new(
                member,
                key,
                k.valid_from_ms,
                k.effective_until_ms(removed_ms),
            ))
        })
        .collect()
}

/// One member's signature over a roster hash.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RosterSignature {
    /// Signing member.
    pub member: String,
    /// Key id of the key used.
    pub key_id: String,
    /// Ed25519 signature, hex.
    pub signature: String,
}

fn roster_message(hash: &RosterHash) -> Vec<u8> {
    format!("{ROSTER_SIG_DOMAIN} {}", hash.to_hex()).into_bytes()
}

impl RosterSignature {
    /// `member` signs `hash` with `key`.
    pub fn sign(member: &str, key: &SigningKey, hash: &RosterHash) -> RosterSignature {
        RosterSignature {
            member: member.to_string(),
            key_id: key_id_of(&key.verifying_key()),
            signature: hex::encode(key.sign(&roster_message(hash)).to_bytes()),
        }
    }

    /// This member signs `hash` with its signing identity.
    pub fn by(identity: &SigningIdentity, hash: &RosterHash) -> RosterSignature {
        Self::sign(identity.member(), identity.signing_key(), hash)
    }

    /// Whether this is a valid strict ed25519 signature of `hash` by `key`.
    pub fn verifies(&self, key: &VerifyingKey, hash: &RosterHash) -> bool {
        let Ok(bytes) = hex::decode(&self.signature) else {
            return false;
        };
        let Ok(arr) = <[u8; 64]>::try_from(bytes.as_slice()) else {
            return false;
        };
        key.verify_strict(&roster_message(hash), &Signature::from_bytes(&arr))
            .is_ok()
    }
}

/// A roster version with the signatures that make it acceptable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedRoster {
    /// The document.
    pub roster: RosterDoc,
    /// Signatures over its hash (sorted by member, one per member kept).
    pub signatures: Vec<RosterSignature>,
}

impl SignedRoster {
    /// Hash of the document.
    pub fn hash(&self) -> RosterHash {
        self.roster.hash()
    }

    /// Parses a roster file (JSON); the document must pass structural validation.
    pub fn from_json(text: &str) -> Result<SignedRoster, DocError> {
        let mut s: SignedRoster =
            serde_json::from_str(text).map_err(|e| doc_err("roster file", e.to_string()))?;
        s.roster = s.roster.normalized();
        s.roster.check()?;
        s.signatures.sort();
        Ok(s)
    }

    /// Pretty JSON (a roster file).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

/// A prospective member's request to join, signed by the signing key it will use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinRequest {
    /// Requested member id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Peer endpoints, `host:port`.
    pub endpoints: Vec<String>,
    /// Its ed25519 signing public key, hex.
    pub public_key: String,
    /// SHA-256 pins of its TLS certificate's public key, hex (may be empty: CA mode).
    pub tls_pins: Vec<String>,
    /// Signature by `public_key` over the request without this field, hex.
    pub signature: String,
}

/// Why a join request is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoinError {
    /// A field is malformed.
    #[error("join request {0}")]
    Invalid(DocError),
    /// The signature is not by the key the request names.
    #[error("join request for {id:?}: the signature does not verify under its own public key")]
    BadSignature {
        /// Requested id.
        id: String,
    },
}

impl JoinError {
    /// Stable machine-readable reason.
    pub fn reason(&self) -> &'static str {
        match self {
            JoinError::Invalid(_) => "join_invalid",
            JoinError::BadSignature { .. } => "join_bad_signature",
        }
    }
}

impl JoinRequest {
    fn message(&self) -> Vec<u8> {
        let mut unsigned = self.clone();
        unsigned.signature.clear();
        let body = serde_json::to_vec(&unsigned).unwrap_or_default();
        let mut out = format!("{JOIN_SIG_DOMAIN} {} ", body.len()).into_bytes();
        out.extend_from_slice(&body);
        out
    }

    /// Builds and signs a request with the new member's signing key.
    pub fn sign(
        id: &str,
        name: &str,
        endpoints: Vec<String>,
        tls_pins: Vec<SpkiPin>,
        key: &SigningKey,
    ) -> JoinRequest {
        let mut r = JoinRequest {
            id: id.to_string(),
            name: name.to_string(),
            endpoints,
            public_key: hex::encode(key.verifying_key().as_bytes()),
            tls_pins: tls_pins.iter().map(SpkiPin::to_hex).collect(),
            signature: String::new(),
        };
        r.signature = hex::encode(key.sign(&r.message()).to_bytes());
        r
    }

    /// Builds and signs a request with a signing identity (its member id is not used: the
    /// request names the id it asks for).
    pub fn sign_by(
        id: &str,
        name: &str,
        endpoints: Vec<String>,
        tls_pins: Vec<SpkiPin>,
        identity: &SigningIdentity,
    ) -> JoinRequest {
        Self::sign(id, name, endpoints, tls_pins, identity.signing_key())
    }

    /// Checks the fields and that the signature is by the request's own key.
    pub fn verify(&self) -> Result<(), JoinError> {
        let m = self.as_member(None).map_err(JoinError::Invalid)?;
        let key = parse_public_key(&self.public_key)
            .map_err(|e| JoinError::Invalid(doc_err("public_key", e)))?;
        let sig_ok = hex::decode(&self.signature)
            .ok()
            .and_then(|b| <[u8; 64]>::try_from(b.as_slice()).ok())
            .is_some_and(|arr| {
                key.verify(&self.message(), &Signature::from_bytes(&arr))
                    .is_ok()
            });
        if !sig_ok {
            return Err(JoinError::BadSignature { id: m.id });
        }
        Ok(())
    }

    /// The roster member this request describes (its key valid from `valid_from_ms`).
    pub fn as_member(&self, valid_from_ms: Option<i64>) -> Result<RosterMember, DocError> {
        check_member_id(&self.id).map_err(|e| doc_err("id", e))?;
        if self.name.trim().is_empty() {
            return Err(doc_err("name", "must not be empty"));
        }
        if self.endpoints.is_empty() {
            return Err(doc_err("endpoints", "a member needs an endpoint"));
        }
        for (j, e) in self.endpoints.iter().enumerate() {
            if e.trim().is_empty() || !e.contains(':') {
                return Err(doc_err(
                    format!("endpoints[{j}]"),
                    format!("{e:?} is not host:port"),
                ));
            }
        }
        let key = parse_public_key(&self.public_key).map_err(|e| doc_err("public_key", e))?;
        let mut pins = Vec::new();
        for (j, p) in self.tls_pins.iter().enumerate() {
            pins.push(
                SpkiPin::from_hex(p)
                    .map_err(|e| doc_err(format!("tls_pins[{j}]"), e))?
                    .to_hex(),
            );
        }
        Ok(RosterMember {
            id: self.id.clone(),
            name: self.name.clone(),
            endpoints: self.endpoints.clone(),
            keys: vec![RosterKey::new(&key, valid_from_ms)],
            tls_pins: pins,
        })
    }
}
