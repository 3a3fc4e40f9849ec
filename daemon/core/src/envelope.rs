//! Signed envelopes: signing, verification, item ids and the `Verified<Advisory>` type.
//!
//! Owns: the DSSE-style pre-authentication encoding (PAE), ed25519 signing and strict
//! verification, item ids (SHA-256 of the payload bytes), and the only constructor of
//! `Verified<Advisory>`.
//! Must never: decode a payload before its signature is verified, re-encode a payload to verify
//! it, read clocks or files (callers pass the keyring and limits in).

use std::collections::BTreeMap;
use std::fmt;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use prost::Message;
use sha2::{Digest, Sha256};
use tanoa_proto::v1 as pb;

use crate::model::{self, Advisory, Limits, ValidationErrors};

/// Payload type bound into every signature.
pub const PAYLOAD_TYPE: &str = "application/vnd.tanoa.advisory.v1+protobuf";

/// Pre-authentication encoding: `"DSSEv1" SP len(type) SP type SP len(payload) SP payload`.
pub fn pae(payload: &[u8]) -> Vec<u8> {
    let header = format!(
        "DSSEv1 {} {} {} ",
        PAYLOAD_TYPE.len(),
        PAYLOAD_TYPE,
        payload.len()
    );
    let mut out = Vec::with_capacity(header.len() + payload.len());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(payload);
    out
}

/// Identity of a stored item: SHA-256 of its payload bytes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ItemId(pub [u8; 32]);

impl ItemId {
    /// Item id of payload bytes.
    pub fn of_payload(payload: &[u8]) -> ItemId {
        ItemId(Sha256::digest(payload).into())
    }

    /// Lower-case hex (64 digits).
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hex digits.
    pub fn from_hex(s: &str) -> Option<ItemId> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s.trim(), &mut out).ok()?;
        Some(ItemId(out))
    }

    /// From a 32-byte slice.
    pub fn from_slice(b: &[u8]) -> Option<ItemId> {
        <[u8; 32]>::try_from(b).ok().map(ItemId)
    }
}

impl fmt::Debug for ItemId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ItemId({})", &self.to_hex()[..16])
    }
}

impl fmt::Display for ItemId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// A signed payload, exactly as it travels and is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// Encoded `tanoa.v1.Advisory` bytes as signed.
    pub payload: Vec<u8>,
    /// Signing key id.
    pub key_id: String,
    /// Ed25519 signature over `pae(payload)`.
    pub signature: Vec<u8>,
}

impl Envelope {
    /// Item id of this envelope's payload.
    pub fn item_id(&self) -> ItemId {
        ItemId::of_payload(&self.payload)
    }

    /// To the protobuf message.
    pub fn to_proto(&self) -> pb::Envelope {
        pb::Envelope {
            payload: self.payload.clone(),
            key_id: self.key_id.clone(),
            signature: self.signature.clone(),
        }
    }

    /// From the protobuf message (no checks: `verify` does them).
    pub fn from_proto(p: pb::Envelope) -> Envelope {
        Envelope {
            payload: p.payload,
            key_id: p.key_id,
            signature: p.signature,
        }
    }

    /// Encodes as protobuf bytes.
    pub fn encode(&self) -> Vec<u8> {
        self.to_proto().encode_to_vec()
    }

    /// Decodes protobuf bytes; a truncated or garbled buffer is `EnvelopeError::Malformed`.
    pub fn decode(bytes: &[u8]) -> Result<Envelope, EnvelopeError> {
        pb::Envelope::decode(bytes)
            .map(Envelope::from_proto)
            .map_err(|e| EnvelopeError::Malformed {
                detail: format!("envelope is not a valid tanoa.v1.Envelope: {e}"),
            })
    }
}

/// Derives the key id of a public key: `ed25519:` + first 16 hex digits of SHA-256(key).
pub fn key_id_of(key: &VerifyingKey) -> String {
    let d = Sha256::digest(key.as_bytes());
    format!("ed25519:{}", hex::encode(&d[..8]))
}

/// A public signing key of a roster member, with its validity window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKeyRecord {
    /// Key id (derived from the key).
    pub key_id: String,
    /// Member id owning the key.
    pub member: String,
    /// The ed25519 public key.
    pub key: VerifyingKey,
    /// Unix ms from which it may sign; `None` = always.
    pub valid_from_ms: Option<i64>,
    /// Unix ms until which it may sign; `None` = no end.
    pub valid_until_ms: Option<i64>,
}

impl PublicKeyRecord {
    /// A record with the key id derived from the key.
    pub fn new(
        member: impl Into<String>,
        key: VerifyingKey,
        valid_from_ms: Option<i64>,
        valid_until_ms: Option<i64>,
    ) -> Self {
        Self {
            key_id: key_id_of(&key),
            member: member.into(),
            key,
            valid_from_ms,
            valid_until_ms,
        }
    }

    /// Whether the key may sign something dated `at_ms`.
    pub fn valid_at(&self, at_ms: i64) -> bool {
        self.valid_from_ms.is_none_or(|f| at_ms >= f)
            && self.valid_until_ms.is_none_or(|u| at_ms <= u)
    }
}

/// Every public key this node trusts, by key id. Built from the roster (local config).
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    keys: BTreeMap<String, PublicKeyRecord>,
}

impl Keyring {
    /// Empty keyring.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a key; a second key with the same id replaces the first.
    pub fn insert(&mut self, rec: PublicKeyRecord) {
        self.keys.insert(rec.key_id.clone(), rec);
    }

    /// Looks a key up by id.
    pub fn get(&self, key_id: &str) -> Option<&PublicKeyRecord> {
        self.keys.get(key_id)
    }

    /// All keys.
    pub fn iter(&self) -> impl Iterator<Item = &PublicKeyRecord> {
        self.keys.values()
    }

    /// Keys of one member.
    pub fn of_member<'a>(
        &'a self,
        member: &'a str,
    ) -> impl Iterator<Item = &'a PublicKeyRecord> + 'a {
        self.keys.values().filter(move |k| k.member == member)
    }
}

/// Why an envelope was refused. Each variant is a distinct, machine-readable reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// Payload larger than the configured limit (checked before anything else).
    #[error("payload is {size} bytes, larger than the limit of {max} bytes")]
    TooLarge {
        /// Payload size.
        size: usize,
        /// Limit.
        max: usize,
    },
    /// The envelope bytes could not be decoded (e.g. truncated).
    #[error("malformed envelope: {detail}")]
    Malformed {
        /// What was wrong.
        detail: String,
    },
    /// The signature is not 64 bytes (a truncated envelope, typically).
    #[error("signature is {len} bytes; an ed25519 signature is 64 bytes (truncated envelope?)")]
    TruncatedSignature {
        /// Length found.
        len: usize,
    },
    /// No trusted key has this id.
    #[error("unknown signing key {key_id:?}: no roster member has it")]
    UnknownKey {
        /// The key id named by the envelope.
        key_id: String,
    },
    /// The signature verifies under another roster key than the one named.
    #[error("signed with key {actual} of {actual_member}, but the envelope names key {named}")]
    WrongKey {
        /// Key id named by the envelope.
        named: String,
        /// Key that actually made the signature.
        actual: String,
        /// Owner of that key.
        actual_member: String,
    },
    /// The signature does not verify: payload or signature was altered.
    #[error("signature does not verify under key {key_id}: payload or signature was altered")]
    BadSignature {
        /// Key id named.
        key_id: String,
    },
    /// The payload was signed by a key of another member than its `origin`.
    #[error("payload claims origin {origin:?} but is signed by {signer:?}'s key {key_id}")]
    OriginMismatch {
        /// Origin in the payload.
        origin: String,
        /// Owner of the signing key.
        signer: String,
        /// Key id.
        key_id: String,
    },
    /// The key was not valid when the payload says it was made.
    #[error("key {key_id} was not valid at {at_ms} (its window is {window})")]
    KeyNotValid {
        /// Key id.
        key_id: String,
        /// The payload's modified_ms.
        at_ms: i64,
        /// Window, human readable.
        window: String,
    },
    /// The signed payload fails validation.
    #[error("invalid advisory: {0}")]
    Invalid(ValidationErrors),
}

impl EnvelopeError {
    /// Stable machine-readable reason, used in metrics, audit entries and peer replies.
    pub fn reason(&self) -> &'static str {
        match self {
            EnvelopeError::TooLarge { .. } => "too_large",
            EnvelopeError::Malformed { .. } => "malformed",
            EnvelopeError::TruncatedSignature { .. } => "truncated_signature",
            EnvelopeError::UnknownKey { .. } => "unknown_key",
            EnvelopeError::WrongKey { .. } => "wrong_key",
            EnvelopeError::BadSignature { .. } => "bad_signature",
            EnvelopeError::OriginMismatch { .. } => "origin_mismatch",
            EnvelopeError::KeyNotValid { .. } => "key_not_valid",
            EnvelopeError::Invalid(_) => "invalid_advisory",
        }
    }
}

/// A value whose envelope verified and whose payload validated. Only `verify` and
/// `SigningIdentity::sign` construct one; the store and sync accept nothing else.
#[derive(Debug, Clone)]
pub struct Verified<T> {
    value: T,
    envelope: Envelope,
    item_id: ItemId,
    signer: String,
}

impl<T> Verified<T> {
    /// The verified value.
    pub fn value(&self) -> &T {
        &self.value
    }

    /// The envelope, exactly as verified.
    pub fn envelope(&self) -> &Envelope {
        &self.envelope
    }

    /// SHA-256 of the payload bytes.
    pub fn item_id(&self) -> ItemId {
        self.item_id
    }

    /// Member id that signed.
    pub fn signer(&self) -> &str {
        &self.signer
    }
}

impl<T> std::ops::Deref for Verified<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

/// Verifies an envelope and decodes its advisory.
///
/// Order: size limit, signature shape, key lookup, strict signature over the bytes as received,
/// then decode, origin == key owner, key validity window at `modified_ms`, full validation.
pub fn verify(
    env: Envelope,
    keyring: &Keyring,
    limits: &Limits,
) -> Result<Verified<Advisory>, EnvelopeError> {
    if env.payload.len() > limits.max_payload_bytes {
        return Err(EnvelopeError::TooLarge {
            size: env.payload.len(),
            max: limits.max_payload_bytes,
        });
    }
    let sig_bytes: [u8; 64] =
        env.signature
            .as_slice()
            .try_into()
            .map_err(|_| EnvelopeError::TruncatedSignature {
                len: env.signature.len(),
            })?;
    let sig = Signature::from_bytes(&sig_bytes);
    let key = keyring
        .get(&env.key_id)
        .ok_or_else(|| EnvelopeError::UnknownKey {
            key_id: env.key_id.clone(),
        })?;
    let msg = pae(&env.payload);
    if key.key.verify_strict(&msg, &sig).is_err() {
        // Diagnose "signed by another trusted key than the one named" separately from tampering.
        if let Some(other) = keyring
            .iter()
            .find(|k| k.key_id != key.key_id && k.key.verify_strict(&msg, &sig).is_ok())
        {
            return Err(EnvelopeError::WrongKey {
                named: env.key_id.clone(),
                actual: other.key_id.clone(),
                actual_member: other.member.clone(),
            });
        }
        return Err(EnvelopeError::BadSignature {
            key_id: env.key_id.clone(),
        });
    }
    let advisory = model::wire::decode_payload(&env.payload).map_err(EnvelopeError::Invalid)?;
    if advisory.origin != key.member {
        return Err(EnvelopeError::OriginMismatch {
            origin: advisory.origin,
            signer: key.member.clone(),
            key_id: key.key_id.clone(),
        });
    }
    if !key.valid_at(advisory.modified_ms) {
        return Err(EnvelopeError::KeyNotValid {
            key_id: key.key_id.clone(),
            at_ms: advisory.modified_ms,
            window: format!("{:?}..{:?}", key.valid_from_ms, key.valid_until_ms),
        });
    }
    model::validate_advisory(&advisory, limits).map_err(EnvelopeError::Invalid)?;
    let item_id = env.item_id();
    let signer = key.member.clone();
    Ok(Verified {
        value: advisory,
        envelope: env,
        item_id,
        signer,
    })
}

/// A member's private signing key, able to produce verified envelopes.
pub struct SigningIdentity {
    member: String,
    key_id: String,
    key: SigningKey,
}

impl fmt::Debug for SigningIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningIdentity")
            .field("member", &self.member)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl SigningIdentity {
    /// Wraps a signing key for `member`.
    pub fn new(member: impl Into<String>, key: SigningKey) -> Self {
        let key_id = key_id_of(&key.verifying_key());
        Self {
            member: member.into(),
            key_id,
            key,
        }
    }

    /// Member id.
    pub fn member(&self) -> &str {
        &self.member
    }

    /// Key id.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The private key, for the roster's domain-separated signatures (`roster::doc`).
    pub(crate) fn signing_key(&self) -> &SigningKey {
        &self.key
    }

    /// Public key.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// Signs raw payload bytes (no validation). For tests and tools that build envelopes by hand.
    pub fn sign_payload(&self, payload: Vec<u8>) -> Envelope {
        let signature = self.key.sign(&pae(&payload)).to_bytes().to_vec();
        Envelope {
            payload,
            key_id: self.key_id.clone(),
            signature,
        }
    }

    /// Validates, encodes and signs an advisory whose origin must be this member.
    pub fn sign(
        &self,
        advisory: Advisory,
        limits: &Limits,
    ) -> Result<Verified<Advisory>, EnvelopeError> {
        if advisory.origin != self.member {
            return Err(EnvelopeError::OriginMismatch {
                origin: advisory.origin,
                signer: self.member.clone(),
                key_id: self.key_id.clone(),
            });
        }
        model::validate_advisory(&advisory, limits).map_err(EnvelopeError::Invalid)?;
        let payload = model::wire::encode_payload(&advisory);
        if payload.len() > limits.max_payload_bytes {
            return Err(EnvelopeError::TooLarge {
                size: payload.len(),
                max: limits.max_payload_bytes,
            });
        }
        let envelope = self.sign_payload(payload);
        let item_id = envelope.item_id();
        Ok(Verified {
            value: advisory,
            envelope,
            item_id,
            signer: self.member.clone(),
        })
    }
}
