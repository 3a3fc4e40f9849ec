//! Envelope records larger than `SPILL_BYTES`, kept as files beside the sled log while sled holds
//! a small reference to each.
//!
//! Why: sled 0.34 writes a log fragment larger than a quarter of a segment (128 KiB) as a blob
//! file and charges the page that holds it to `cache_capacity` by its size in the log: a pointer
//! of a few dozen bytes. A page holding a big value therefore stays in memory whole and
//! uncounted, so every big advisory written or read once stayed resident. Measured in the soak
//! (issue 10): each re-import of MITRE's APT40 bundle (a 400 KB advisory) left one more 412 KB
//! block in every member, about 0.2 MB per 100 s, whatever `cache_mb` was. A spilled record
//! costs memory only while it is being read.
//!
//! Owns: the reference format, the files under `<store>/envelopes/` (named by the hex of the
//! record's key, the item id), their durability and their removal.
//! Must never: let sled reference a file that is not durable (the file and its directory are
//! fsynced before the batch that references it is applied); remove a file that sled still
//! references (files are removed after the batch that removed their key, and at open only when
//! sled does not reference them); return bytes that do not match their reference.

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{StoreError, fsync_dir, io_err};
use tanoa_core::store::engine::Tree;

/// Records larger than this are spilled. sled splits a leaf once it holds more than 16 entries
/// (whatever their size), so a leaf of envelope records holds at most 17 of them: at 7 KiB each
/// it stays under sled's 128 KiB blob threshold, and every record left in sled is charged to
/// the cache at its size.
pub(super) const SPILL_BYTES: usize = 7 * 1024;

/// Start of a reference. No protobuf message (an envelope record is a `StoredEnvelope`) starts
/// with a 0 byte: that would be field number 0, which does not exist.
const MAGIC: [u8; 5] = [0x00, b'T', b'S', b'P', 1];
/// Reference: `MAGIC` ++ length (u64 BE) ++ SHA-256 of the record.
const REF_LEN: usize = MAGIC.len() + 8 + 32;
/// Suffix of a file being written (removed at open if a crash left it).
const TMP_SUFFIX: &str = ".tmp";

/// The directory of spilled records of one store.
#[derive(Debug)]
pub(super) struct Spill {
    dir: PathBuf,
}

fn corrupt(detail: String) -> StoreError {
    StoreError::Corrupt {
        tree: Tree::Envelopes.name(),
        detail,
    }
}

/// Whether a stored value is a reference to a spilled record.
pub(super) fn is_ref(value: &[u8]) -> bool {
    value.len() == REF_LEN && value.starts_with(&MAGIC)
}

impl Spill {
    /// The spill directory of the store in `store_dir` (created when the first record spills).
    pub(super) fn new(store_dir: &Path) -> Spill {
        Spill {
            dir: store_dir.join("envelopes"),
        }
    }

    /// The directory of the files.
    pub(super) fn dir(&self) -> &Path {
        &self.dir
    }

    fn path_of(&self, key: &[u8]) -> PathBuf {
        self.dir.join(hex::encode(key))
    }

    /// Writes `value` (the record of `key`) to its file and fsyncs the file; returns the
    /// reference to store in its place. The caller fsyncs the directory (`sync_dir`) before
    /// the reference is applied.
    pub(super) fn write(&self, key: &[u8], value: &[u8]) -> Result<Vec<u8>, StoreError> {
        std::fs::create_dir_all(&self.dir).map_err(|e| io_err("create", &self.dir, e))?;
        let path = self.path_of(key);
        let mut tmp = path.clone().into_os_string();
        tmp.push(TMP_SUFFIX);
        let tmp = PathBuf::from(tmp);
        let mut f = File::create(&tmp).map_err(|e| io_err("create", &tmp, e))?;
        f.write_all(value)
            .and_then(|()| f.sync_all())
            .map_err(|e| io_err("write", &tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| io_err("rename", &tmp, e))?;
        let mut r = Vec::with_capacity(REF_LEN);
        r.extend_from_slice(&MAGIC);
        r.extend_from_slice(&(value.len() as u64).to_be_bytes());
        r.extend_from_slice(&Sha256::digest(value));
        Ok(r)
    }

    /// Makes the names of files written since the last call durable (the store's parent
    /// directory too when the spill directory is new).
    pub(super) fn sync_dir(&self) -> Result<(), StoreError> {
        fsync_dir(&self.dir)?;
        fsync_dir(self.dir.parent().unwrap_or(&self.dir))
    }

    /// The record `reference` (of `key`) points to. `Ok(None)`: its file does not exist (the
    /// caller decides whether that is a race with a removal or a corrupt store).
    pub(super) fn read(&self, key: &[u8], reference: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.path_of(key);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("read", &path, e)),
        };
        let (len, sum) = reference[MAGIC.len()..].split_at(8);
        let len = u64::from_be_bytes(len.try_into().unwrap_or([0; 8]));
        if bytes.len() as u64 != len || Sha256::digest(&bytes).as_slice() != sum {
            return Err(corrupt(format!(
                "{}: {} bytes that do not match the record sled references ({len} bytes, \
                 SHA-256 {})",
                path.display(),
                bytes.len(),
                hex::encode(sum)
            )));
        }
        Ok(Some(bytes))
    }

    /// Removes the file of `key` (after the batch that removed the key was applied); a file
    /// that does not exist is fine (the record was not spilled).
    pub(super) fn remove(&self, key: &[u8]) -> Result<(), StoreError> {
        let path = self.path_of(key);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("remove", &path, e)),
        }
    }

    /// At open: removes what a crash can leave (a file being written, or the file of a record
    /// whose removal was applied) and any file sled does not reference (`referenced(key)`).
    /// Returns how many files were removed.
    pub(super) fn sweep(
        &self,
        referenced: impl Fn(&[u8]) -> Result<bool, StoreError>,
    ) -> Result<usize, StoreError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(io_err("list", &self.dir, e)),
        };
        let mut removed = 0;
        for entry in entries {
            let entry = entry.map_err(|e| io_err("list", &self.dir, e))?;
            let name = entry.file_name();
            let keep = match name.to_str().and_then(|n| hex::decode(n).ok()) {
                Some(key) => referenced(&key)?,
                // A `.tmp` file, or a name no record has.
                None => false,
            };
            if !keep {
                let path = entry.path();
                std::fs::remove_file(&path).map_err(|e| io_err("remove", &path, e))?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Bytes of the spilled files.
    pub(super) fn disk_bytes(&self) -> u64 {
        std::fs::read_dir(&self.dir).map_or(0, |entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
    }
}
