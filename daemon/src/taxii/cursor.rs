//! The opaque `next` cursor of a paging session.
//!
//! Owns: encoding and decoding of the cursor: the index epoch (a cursor from before a restart
//! is refused), the snapshot (index sequence number at the first page), the position of the
//! last object returned (date_added, object id, version), and a digest of the collection,
//! endpoint and filters it was issued for (a cursor reused with other filters is refused).
//! Must never: trust a decoded cursor beyond these values (it is client input: bounded and
//! checked; forging one only moves within what the client may read anyway).

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::index::{Key, MAX_ID_LEN};

/// Format version of the cursor bytes.
const VERSION: u8 = 1;
/// Fixed part: version, epoch, snapshot, date_added, version µs, context.
const FIXED: usize = 1 + 8 + 8 + 8 + 8 + 8;
/// Longest accepted `next` value (characters).
pub(crate) const MAX_CURSOR_LEN: usize = 1024;

/// A decoded `next` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cursor {
    /// The index instance it was issued by.
    pub epoch: u64,
    /// Index sequence number at the session's first page.
    pub snapshot: u64,
    /// Position of the last object returned.
    pub key: Key,
    /// Digest of collection, endpoint and filters.
    pub context: u64,
}

impl Cursor {
    /// The `next` string.
    pub(super) fn encode(&self) -> String {
        let mut b = Vec::with_capacity(FIXED + self.key.1.len());
        b.push(VERSION);
        b.extend_from_slice(&self.epoch.to_be_bytes());
        b.extend_from_slice(&self.snapshot.to_be_bytes());
        b.extend_from_slice(&self.key.0.to_be_bytes());
        b.extend_from_slice(&self.key.2.to_be_bytes());
        b.extend_from_slice(&self.context.to_be_bytes());
        b.extend_from_slice(self.key.1.as_bytes());
        URL_SAFE_NO_PAD.encode(b)
    }

    /// Parses a `next` string; the error says what is wrong (for a 400 naming `next`).
    pub(super) fn decode(s: &str) -> Result<Cursor, String> {
        if s.is_empty() || s.len() > MAX_CURSOR_LEN {
            return Err(format!(
                "must be a value returned by this server (1 to {MAX_CURSOR_LEN} characters)"
            ));
        }
        let b = URL_SAFE_NO_PAD
            .decode(s.trim())
            .map_err(|_| "is not a value returned by this server (not base64url)".to_string())?;
        if b.len() <= FIXED || b.len() > FIXED + MAX_ID_LEN || b[0] != VERSION {
            return Err("is not a value returned by this server".into());
        }
        let word = |at: usize| -> [u8; 8] {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[at..at + 8]);
            w
        };
        let id = std::str::from_utf8(&b[FIXED..])
            .map_err(|_| "is not a value returned by this server".to_string())?;
        Ok(Cursor {
            epoch: u64::from_be_bytes(word(1)),
            snapshot: u64::from_be_bytes(word(9)),
            key: (
                i64::from_be_bytes(word(17)),
                Arc::from(id),
                i64::from_be_bytes(word(25)),
            ),
            context: u64::from_be_bytes(word(33)),
        })
    }
}
