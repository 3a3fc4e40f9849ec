//! The exported-envelope file (`tanoa export --format envelope`), read by `verify` and `import`.
//!
//! Format (JSON, version `tanoa-envelope-v1`):
//! `{"format","item_id","key_id","signer","public_key"?,"payload_b64","signature_b64"}` where
//! `payload_b64` holds the exact signed payload bytes and `public_key` (hex) is present only
//! when the exporting node is the signer.
//! Owns: that JSON shape and its decoding with errors that name the file and the field.
//! Must never: decode the payload (verification does, after checking the signature) or trust
//! `public_key` from the file (verify takes the key from the operator).

use std::path::Path;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use tanoa_daemon::envelope::Envelope;

use crate::exit::Failure;

/// Value of the `format` field.
pub const FORMAT: &str = "tanoa-envelope-v1";

/// An exported envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvelopeFile {
    /// Always `tanoa-envelope-v1`.
    pub format: String,
    /// Item id (hex SHA-256 of the payload), informational: verification recomputes it.
    pub item_id: String,
    /// Signing key id.
    pub key_id: String,
    /// Member id that signed (the advisory's origin).
    pub signer: String,
    /// Signer's public key (hex), when the exporting node was the signer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    /// The signed payload bytes, base64 (standard alphabet, padded).
    pub payload_b64: String,
    /// The ed25519 signature, base64.
    pub signature_b64: String,
}

impl EnvelopeFile {
    /// Builds the file for an envelope.
    pub fn from_envelope(env: &Envelope, signer: &str, public_key: Option<String>) -> Self {
        let b64 = base64::engine::general_purpose::STANDARD;
        Self {
            format: FORMAT.into(),
            item_id: env.item_id().to_hex(),
            key_id: env.key_id.clone(),
            signer: signer.into(),
            public_key,
            payload_b64: b64.encode(&env.payload),
            signature_b64: b64.encode(&env.signature),
        }
    }

    /// Pretty JSON text (with a trailing newline).
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }

    /// Parses the JSON text of `name`; problems are bad input (exit 2).
    pub fn parse(text: &str, name: &str) -> Result<Self, Failure> {
        let f: EnvelopeFile = serde_json::from_str(text).map_err(|e| {
            Failure::usage(format!("{name}: not an exported envelope: {e}"))
                .hint("export one with `tanoa export ID --format envelope -o FILE`")
        })?;
        if f.format != FORMAT {
            return Err(Failure::usage(format!(
                "{name}: format is {:?}, expected {FORMAT:?}",
                f.format
            )));
        }
        if f.signer.trim().is_empty() {
            return Err(Failure::usage(format!(
                "{name}: signer: must name the signing member"
            )));
        }
        Ok(f)
    }

    /// Reads and parses a file.
    pub fn read(path: &Path) -> Result<Self, Failure> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Failure::usage(format!("cannot read {}: {e}", path.display())))?;
        Self::parse(&text, &path.display().to_string())
    }

    /// The envelope, exactly as signed (base64 errors name the field).
    pub fn to_envelope(&self, name: &str) -> Result<Envelope, Failure> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let payload = b64
            .decode(self.payload_b64.trim())
            .map_err(|e| Failure::usage(format!("{name}: payload_b64: not base64 ({e})")))?;
        let signature = b64
            .decode(self.signature_b64.trim())
            .map_err(|e| Failure::usage(format!("{name}: signature_b64: not base64 ({e})")))?;
        Ok(Envelope {
            payload,
            key_id: self.key_id.clone(),
            signature,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn round_trips_and_names_bad_fields() {
        let env = Envelope {
            payload: b"payload bytes".to_vec(),
            key_id: "ed25519:0011223344556677".into(),
            signature: vec![7; 64],
        };
        let f = EnvelopeFile::from_envelope(&env, "ws-cert", None);
        let text = f.to_json();
        assert!(!text.contains("public_key"));
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["format"], "tanoa-envelope-v1");
        assert_eq!(v["item_id"], env.item_id().to_hex());
        let back = EnvelopeFile::parse(&text, "e.json").unwrap();
        assert_eq!(back.to_envelope("e.json").unwrap(), env);

        let mut bad = f.clone();
        bad.payload_b64 = "***".into();
        let err = EnvelopeFile::parse(&bad.to_json(), "e.json")
            .unwrap()
            .to_envelope("e.json")
            .unwrap_err();
        assert!(err.message.contains("payload_b64"), "{}", err.message);
        assert_eq!(err.code, crate::exit::USAGE);

        let err = EnvelopeFile::parse("{\"format\":\"x\"}", "e.json").unwrap_err();
        assert_eq!(err.code, crate::exit::USAGE);
        let mut other = f;
        other.format = "v0".into();
        let err = EnvelopeFile::parse(&other.to_json(), "e.json").unwrap_err();
        assert!(err.message.contains("expected \"tanoa-envelope-v1\""));
    }
}
