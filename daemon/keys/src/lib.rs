//! Signing-key files: generation, storage with mode 0600, loading.
//!
//! Owns: the on-disk format of a member's private signing key.
//! Must never: write a private key with permissions wider than 0600, or log key material.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};

use tanoa_core::envelope::{SigningIdentity, key_id_of};

/// Errors reading or writing a key file; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// I/O failure.
    #[error("key file {path}: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// Bad content.
    #[error("key file {path}: {detail}")]
    Format {
        /// File.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// Permissions wider than 0600.
    #[error(
        "key file {path} has mode {mode:o}; a private key must be 0600 (run: chmod 600 {path})"
    )]
    Permissions {
        /// File.
        path: PathBuf,
        /// Mode found.
        mode: u32,
    },
    /// The OS random generator failed.
    #[error("could not get random bytes: {0}")]
    Random(String),
}

/// On-disk form of a private key (JSON).
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    /// Always "tanoa-ed25519-v1".
    format: String,
    /// Owner member id.
    member: String,
    /// Key id (checked against the key on load).
    key_id: String,
    /// 32-byte secret seed, hex.
    secret_hex: String,
}

const FORMAT: &str = "tanoa-ed25519-v1";

/// Generates a fresh ed25519 key from the OS random generator.
pub fn generate() -> Result<SigningKey, KeyError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| KeyError::Random(e.to_string()))?;
    Ok(SigningKey::from_bytes(&seed))
}

/// Writes `key` for `member` to `path`, created with mode 0600; refuses to overwrite.
pub fn write_key_file(path: &Path, member: &str, key: &SigningKey) -> Result<(), KeyError> {
    let kf = KeyFile {
        format: FORMAT.into(),
        member: member.into(),
        key_id: key_id_of(&key.verifying_key()),
        secret_hex: hex::encode(key.to_bytes()),
    };
    let body = serde_json::to_vec_pretty(&kf).map_err(|e| KeyError::Format {
        path: path.into(),
        detail: e.to_string(),
    })?;
    let io = |source| KeyError::Io {
        path: path.into(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    f.write_all(&body).map_err(io)?;
    f.write_all(b"\n").map_err(io)?;
    f.sync_all().map_err(io)?;
    Ok(())
}

/// Refuses a private key file (signing key, TLS key, CA key) that group or others may read or
/// write: `KeyError::Permissions` names the file and the `chmod` that fixes it.
pub fn check_private_mode(path: &Path) -> Result<(), KeyError> {
    let meta = std::fs::metadata(path).map_err(|source| KeyError::Io {
        path: path.into(),
        source,
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyError::Permissions {
            path: path.into(),
            mode,
        });
    }
    Ok(())
}

/// Loads a key file, checking permissions (0600 or stricter), format and key id.
pub fn load_key_file(path: &Path) -> Result<SigningIdentity, KeyError> {
    let io = |source| KeyError::Io {
        path: path.into(),
        source,
    };
    check_private_mode(path)?;
    let body = std::fs::read(path).map_err(io)?;
    let fmt_err = |detail: String| KeyError::Format {
        path: path.into(),
        detail,
    };
    let kf: KeyFile = serde_json::from_slice(&body).map_err(|e| fmt_err(e.to_string()))?;
    if kf.format != FORMAT {
        return Err(fmt_err(format!(
            "format is {:?}, expected {FORMAT:?}",
            kf.format
        )));
    }
    let mut seed = [0u8; 32];
    hex::decode_to_slice(kf.secret_hex.trim(), &mut seed)
        .map_err(|e| fmt_err(format!("secret_hex: not 64 hex digits ({e})")))?;
    let key = SigningKey::from_bytes(&seed);
    let id = key_id_of(&key.verifying_key());
    if id != kf.key_id {
        return Err(fmt_err(format!(
            "key_id {} does not match the key (it is {id})",
            kf.key_id
        )));
    }
    Ok(SigningIdentity::new(kf.member, key))
}

/// Public key in hex (how the roster and `tanoa verify --key` spell it).
pub fn public_hex(key: &ed25519_dalek::VerifyingKey) -> String {
    hex::encode(key.as_bytes())
}

/// Parses a 64-hex-digit public key.
pub fn parse_public_hex(s: &str) -> Result<ed25519_dalek::VerifyingKey, String> {
    let mut b = [0u8; 32];
    hex::decode_to_slice(s.trim(), &mut b)
        .map_err(|e| format!("{s:?} is not 64 hex digits ({e})"))?;
    ed25519_dalek::VerifyingKey::from_bytes(&b)
        .map_err(|e| format!("{s:?} is not an ed25519 public key ({e})"))
}
