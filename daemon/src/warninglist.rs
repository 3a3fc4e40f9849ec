//! Reading MISP warning lists from disk: the `[warninglists] dir` layouts, files bounded in
//! size, a bad list reported and skipped, then compiled by `tanoa_core::warninglist` (the
//! node's `warninglists::attach` loads them at start).
//!
//! Owns: every file read of warning lists (the matching itself is pure and lives in
//! `tanoa_core::warninglist`). Must never: drop or alter an indicator (screening only flags).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

pub(crate) use tanoa_core::warninglist::*;

/// What loading a directory produced.
#[derive(Debug)]
pub(crate) struct Loaded {
    /// The compiled lists.
    pub lists: WarningLists,
    /// Directory the lists were read from (`<dir>` or `<dir>/lists`).
    pub root: PathBuf,
    /// List files that were skipped, each with its error.
    pub skipped: Vec<WarningListError>,
    /// Entries that could not be used.
    pub entry_problems: Vec<EntryProblem>,
    /// Disabled slugs that name no list in the directory.
    pub unknown_disabled: Vec<String>,
}

/// The list files of a warning-list directory: `(root, [(name, <root>/<name>/list.json)])`
/// sorted by name, where root is `dir/lists` when that exists (the misp-warninglists
/// repository) and `dir` otherwise. No list file at all is an error.
pub(crate) fn list_files(
    dir: &Path,
) -> Result<(PathBuf, Vec<(String, PathBuf)>), WarningListError> {
    let dir_err = |message: String| WarningListError::Dir {
        dir: dir.to_path_buf(),
        message,
    };
    let nested = dir.join("lists");
    let root = if nested.is_dir() {
        nested
    } else {
        dir.to_path_buf()
    };
    let entries = std::fs::read_dir(&root).map_err(|e| dir_err(e.to_string()))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| dir_err(e.to_string()))?;
        let file = entry.path().join("list.json");
        if file.is_file() {
            files.push((entry.file_name().to_string_lossy().into_owned(), file));
        }
    }
    if files.is_empty() {
        return Err(dir_err(
            "holds no warning list (expected <name>/list.json or lists/<name>/list.json, the \
             layout of github.com/MISP/misp-warninglists)"
                .into(),
        ));
    }
    files.sort();
    Ok((root, files))
}

/// Reads every list of `dir` (see [`list_files`]) except the names in `disabled`. A list file
/// that cannot be read or parsed is reported in `skipped`; a directory that cannot be listed
/// or holds no list at all is an error.
pub(crate) fn load_dir(dir: &Path, disabled: &[String]) -> Result<Loaded, WarningListError> {
    let (root, files) = list_files(dir)?;
    let disabled_set: BTreeSet<&str> = disabled.iter().map(String::as_str).collect();
    let unknown_disabled = disabled
        .iter()
        .filter(|d| !files.iter().any(|(slug, _)| slug == *d))
        .cloned()
        .collect();
    let mut lists = Vec::new();
    let mut skipped = Vec::new();
    for (slug, file) in files {
        if disabled_set.contains(slug.as_str()) {
            continue;
        }
        match read_list(&slug, &file) {
            Ok(l) => lists.push(l),
            Err(e) => skipped.push(e),
        }
    }
    let (lists, entry_problems) = WarningLists::new(lists);
    Ok(Loaded {
        lists,
        root,
        skipped,
        entry_problems,
        unknown_disabled,
    })
}

fn read_list(slug: &str, file: &Path) -> Result<WarningList, WarningListError> {
    let bad = |message: String| WarningListError::List {
        file: file.to_path_buf(),
        message,
    };
    let len = std::fs::metadata(file)
        .map_err(|e| bad(e.to_string()))?
        .len();
    if len > MAX_LIST_FILE_BYTES {
        return Err(bad(format!(
            "{len} bytes, more than the {MAX_LIST_FILE_BYTES} accepted"
        )));
    }
    let bytes = std::fs::read(file).map_err(|e| bad(e.to_string()))?;
    parse_list(&bytes, slug, file)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::model::IndicatorKind;

    fn testdata_lists() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/misp/warninglists")
    }

    #[test]
    fn directories_load_in_both_layouts_and_bad_files_are_skipped() {
        let tmp = tempfile::tempdir().unwrap();
        let write = |rel: &str, text: &str| {
            let p = tmp.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        };
        write(
            "good/list.json",
            r#"{"name": "G", "description": "D", "version": 1, "type": "string", "list": ["a"]}"#,
        );
        write("broken/list.json", "{ not json");
        write(
            "other/list.json",
            r#"{"name": "O", "description": "D", "version": 1, "type": "string", "list": ["b"]}"#,
        );
        std::fs::create_dir_all(tmp.path().join("no-list-here")).unwrap();
        let loaded = load_dir(tmp.path(), &["other".into(), "nope".into()]).unwrap();
        let slugs: Vec<&str> = loaded
            .lists
            .lists()
            .iter()
            .map(|l| l.slug.as_str())
            .collect();
        assert_eq!(slugs, ["good"]);
        assert_eq!(loaded.skipped.len(), 1);
        let e = loaded.skipped[0].to_string();
        assert!(e.contains("broken/list.json"), "{e}");
        assert_eq!(loaded.unknown_disabled, ["nope"]);

        // The repository layout: lists under lists/.
        let repo = tempfile::tempdir().unwrap();
        let p = repo.path().join("lists/good/list.json");
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(
        &p,
        r#"{"name": "G", "description": "D", "version": 1, "type": "hostname", "list": ["h.example"]}"#,
    )
    .unwrap();
        let loaded = load_dir(repo.path(), &[]).unwrap();
        assert_eq!(loaded.root, repo.path().join("lists"));
        assert_eq!(
            loaded.lists.check(IndicatorKind::Domain, "x.h.example"),
            ["good"]
        );

        // No list at all, or no directory: errors naming the directory.
        let empty = tempfile::tempdir().unwrap();
        let e = load_dir(empty.path(), &[]).unwrap_err();
        assert!(matches!(e, WarningListError::Dir { .. }), "{e}");
        assert!(e.to_string().contains("holds no warning list"), "{e}");
        assert!(load_dir(&empty.path().join("missing"), &[]).is_err());
    }

    #[test]
    fn the_vendored_misp_lists_all_load_and_flag_known_values() {
        let loaded = load_dir(&testdata_lists(), &[]).unwrap();
        assert!(loaded.skipped.is_empty(), "{:?}", loaded.skipped);
        assert_eq!(loaded.lists.lists().len(), 116);
        let w = &loaded.lists;
        let empty: Vec<&str> = w
            .lists()
            .iter()
            .filter(|l| l.entries == 0)
            .map(|l| l.slug.as_str())
            .collect();
        assert_eq!(empty, ["crl-hostname", "crl-ip"]);
        // Values of the Poison Ivy report (third-party data) and documentation ranges.
        assert_eq!(
            w.check(IndicatorKind::Domain, "fbi.zyns.com"),
            ["disposable-email", "dynamic-dns"]
        );
        assert_eq!(w.check(IndicatorKind::Ipv4, "75.126.95.138"), ["vpn-ipv4"]);
        assert_eq!(
            w.check(IndicatorKind::Domain, "www.webserver.dynssl.com"),
            ["dynamic-dns"]
        );
        assert_eq!(w.check(IndicatorKind::Ipv4, "192.0.2.7"), ["rfc5735"]);
        assert_eq!(w.check(IndicatorKind::Ipv6, "2001:db8::7"), ["rfc3849"]);
        assert_eq!(
            w.check(IndicatorKind::Email, "abuse@cert.example"),
            ["common-contact-emails"]
        );
        assert!(
            w.check(IndicatorKind::Sha256, &"9".repeat(64)).is_empty(),
            "the phone-number patterns are not applied to hashes"
        );
    }
}
