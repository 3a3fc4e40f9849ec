//! `[warninglists]`: the directory of MISP warning lists and the lists not to load. Only the
//! directory is listed here (`crate::warninglist::list_files`); the node parses the lists.

use std::path::{Path, PathBuf};

use super::raw::RawWarningLists;
use super::resolve_path;

/// `[warninglists]`: MISP warning lists screened at publish, import, show, search and export
/// (see `crate::warninglist`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WarningListsConfig {
    /// Directory of `<name>/list.json` files (or of the misp-warninglists repository, whose
    /// lists are in `lists/`), resolved against the config file's directory.
    pub dir: PathBuf,
    /// List names (directory names, e.g. `alexa`) not to load.
    pub disabled: Vec<String>,
}

/// `[warninglists]` resolved; the directory must hold lists and every disabled name must be one.
pub(super) fn resolve_warninglists(
    w: RawWarningLists,
    base: &Path,
    bad: &mut dyn FnMut(&str, String),
) -> Option<WarningListsConfig> {
    let dir = resolve_path(base, &w.dir);
    if !dir.is_dir() {
        bad(
            "warninglists.dir",
            format!(
                "{} is not a directory (a copy of the lists/ of \
                 github.com/MISP/misp-warninglists)",
                dir.display()
            ),
        );
        return None;
    }
    // Only the directory is listed here; the lists are parsed when the node starts.
    let files = match crate::warninglist::list_files(&dir) {
        Ok((_, files)) => files,
        Err(e) => {
            bad("warninglists.dir", e.to_string());
            return None;
        }
    };
    for (n, d) in w.disabled.iter().enumerate() {
        if !files.iter().any(|(name, _)| name == d.trim()) {
            bad(
                &format!("warninglists.disabled[{n}]"),
                format!(
                    "{d:?} is not a list in {} (names are directory names such as \
                     \"alexa\")",
                    dir.display()
                ),
            );
        }
    }
    Some(WarningListsConfig {
        dir,
        disabled: w.disabled.iter().map(|d| d.trim().to_string()).collect(),
    })
}
