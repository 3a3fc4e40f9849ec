//! Every output file the CLI writes (exports, MISP feed files, blocklists) goes through here.
//!
//! Owns: the rules of writing one: the bytes go to a fresh temporary file in the same directory
//! (created exclusively with mode 0600 and `O_NOFOLLOW`, synced), which is then linked to the
//! final name (fails if anything, a symlink included, is there) or, with `--force`, renamed
//! over it (replacing a symlink itself, never writing through it). So an existing file is never
//! overwritten without `--force`, a symlink at the final component is never followed, a reader
//! never sees half a file, and what we write (an AMBER envelope, say) is readable by its owner
//! only.
//! Must never: open an existing path for writing.

use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use crate::exit::Failure;

/// Mode of every file written (except `PUBLIC_MODE` documents).
pub const MODE: u32 = 0o600;
/// Mode of a document meant to be handed to others and read by other local users (a roster
/// file: public keys, pins, endpoints and signatures, no secret; its integrity comes from the
/// hash read out of band, not from who can read it).
pub const PUBLIC_MODE: u32 = 0o644;

/// Writes `bytes` to `path` (see the module doc). Without `force`, an existing `path` (file,
/// directory or symlink, dangling or not) is refused with a hint naming `--force`.
pub fn write(path: &Path, bytes: &[u8], force: bool) -> Result<(), Failure> {
    write_mode(path, bytes, force, MODE)
}

/// `write` with the file's mode (`MODE` or `PUBLIC_MODE`).
pub fn write_mode(path: &Path, bytes: &[u8], force: bool, mode: u32) -> Result<(), Failure> {
    let fail = |e: std::io::Error| Failure::failed(format!("cannot write {}: {e}", path.display()));
    if !force && std::fs::symlink_metadata(path).is_ok() {
        return Err(exists(path));
    }
    let tmp = temp_path(path);
    let written = (|| -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(MODE)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)?;
        // The umask may have narrowed the mode; make it exact (a public document is widened
        // only once it is ours, created 0600).
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        f.write_all(bytes)?;
        f.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(fail(e));
    }
    let placed = if force {
        std::fs::rename(&tmp, path)
    } else {
        std::fs::hard_link(&tmp, path)
    };
    let _ = std::fs::remove_file(&tmp);
    match placed {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(exists(path)),
        Err(e) => Err(fail(e)),
    }
}

/// Refuses to write into `dir` files that exist already, unless `force`.
pub fn check_new(paths: &[PathBuf], force: bool) -> Result<(), Failure> {
    if force {
        return Ok(());
    }
    match paths.iter().find(|p| std::fs::symlink_metadata(p).is_ok()) {
        Some(p) => Err(exists(p)),
        None => Ok(()),
    }
}

fn exists(path: &Path) -> Failure {
    Failure::failed(format!(
        "{} already exists; refusing to overwrite it",
        path.display()
    ))
    .hint("add --force to replace it (a symlink there is replaced, never followed)")
}

/// `.<name>.<pid>.tanoa-tmp` beside `path`.
fn temp_path(path: &Path) -> PathBuf {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map_or_else(|| "output".into(), |n| n.to_string_lossy().into_owned());
    dir.join(format!(".{name}.{}.tanoa-tmp", std::process::id()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn creates_0600_and_refuses_to_overwrite_without_force() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("amber.json");
        write(&p, b"one", false).unwrap();
        assert_eq!(mode(&p), 0o600);
        let err = write(&p, b"two", false).unwrap_err();
        assert!(err.to_string().contains("already exists"), "{err}");
        assert_eq!(std::fs::read(&p).unwrap(), b"one");
        write(&p, b"two", true).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(mode(&p), 0o600);
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn never_follows_a_symlink_at_the_final_component() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        let link = dir.path().join("out.json");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        assert!(write(&link, b"x", false).is_err());
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        // A dangling symlink is refused too (it would create its target).
        let dangling = dir.path().join("dangling.json");
        std::os::unix::fs::symlink(dir.path().join("nowhere"), &dangling).unwrap();
        assert!(write(&dangling, b"x", false).is_err());
        assert!(!dir.path().join("nowhere").exists());
        // With --force the link itself is replaced, its target untouched.
        write(&link, b"x", true).unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        assert!(
            !std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(std::fs::read(&link).unwrap(), b"x");
    }
}
