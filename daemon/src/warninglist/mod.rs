//! MISP warning lists: known-benign values (public resolvers, cloud and VPN ranges, top sites,
//! dynamic-DNS zones…) that make an indicator a likely false positive.
//!
//! Owns: reading the lists of the `[warninglists] dir` at start (the MISP layout
//! `<dir>/<name>/list.json`, or `<dir>/lists/<name>/list.json` of the misp-warninglists
//! repository), parsing each list with errors naming its file (a bad list is reported and
//! skipped), compiling them into one matcher, and screening indicators. A hit is this node's
//! own judgment at the time of asking: it is never signed, never sent to peers, and never
//! removes anything — hits are flagged (publish, import, `show`, `search`) and left out of
//! blocklists unless the operator asks for them.
//! Must never: drop or alter an indicator, or match differently from the reference
//! implementation, pymispwarninglists 1.7.0 with `slow_search=True` (see `python`):
//!
//! | type | a value is on the list when |
//! |---|---|
//! | `string` | it equals an entry (case-sensitive, no normalization) |
//! | `hostname` | its host (`urlparse(value).hostname` when it is a URL with an authority, else the value) equals an entry or ends with `.` + the entry without leading dots |
//! | `substring` | an entry occurs in it |
//! | `cidr` | it is an IPv4/IPv6 address inside one of the entries that parse as a strict network; a value that is not an address (a CIDR indicator, a domain) only by exact text |
//! | `regex` | the PCRE `/pattern/flags` entry matches (unanchored), for indicators of the kinds named by the list's `matching_attributes` |
//!
//! Lists are identified by their directory name (`dynamic-dns`, `vpn-ipv4`), which is also the
//! key of `[warninglists] disabled`. `matching_attributes` is ignored for every type but
//! `regex`, as pymispwarninglists ignores it; pymispwarninglists never matches regex lists at
//! all (its slow search returns False for them), so for regex lists we follow MISP itself and
//! restrict them to their attribute types, which keeps an unanchored phone-number pattern off
//! file hashes.

mod matcher;
pub mod python;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use crate::config::{Config, ConfigError, ConfigProblem};
use crate::model::{Indicator, IndicatorKind};
use crate::publish::NodeCore;
use matcher::{Builder, ListId, Matcher, kind_bit};

/// Largest list file read (the biggest MISP lists are a few MiB).
pub const MAX_LIST_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// Type of a warning list (`type` in `list.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListType {
    /// Exact string match.
    String,
    /// Entry occurs in the value.
    Substring,
    /// Host name or one of its parent domains.
    Hostname,
    /// IP networks.
    Cidr,
    /// PCRE patterns.
    Regex,
}

impl ListType {
    /// The name used in `list.json`.
    pub fn as_str(self) -> &'static str {
        match self {
            ListType::String => "string",
            ListType::Substring => "substring",
            ListType::Hostname => "hostname",
            ListType::Cidr => "cidr",
            ListType::Regex => "regex",
        }
    }
}

/// One list as read from its `list.json` (the MISP schema: `name`, `description`, `version`,
/// `type`, `list`, optional `matching_attributes`; other members are ignored, as
/// pymispwarninglists ignores them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WarningList {
    /// Identifier: the list's directory name, e.g. `dynamic-dns`.
    pub slug: String,
    /// Human name, e.g. "List of known dynamic DNS domains".
    pub name: String,
    /// Description.
    pub description: String,
    /// Version number.
    pub version: i64,
    /// Type.
    pub list_type: ListType,
    /// Entries as written.
    pub entries: Vec<String>,
    /// MISP attribute types the list is meant for (empty = all).
    pub matching_attributes: Vec<String>,
}

#[derive(Deserialize)]
struct RawList {
    name: String,
    description: String,
    version: serde_json::Value,
    #[serde(rename = "type")]
    list_type: String,
    list: Vec<String>,
    #[serde(default)]
    matching_attributes: Vec<String>,
}

/// Why lists could not be used; names the file or directory.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WarningListError {
    /// One list file is unreadable or does not fit the schema.
    #[error("{file}: {message}")]
    List {
        /// The `list.json` concerned.
        file: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The directory itself is unusable.
    #[error("{dir}: {message}")]
    Dir {
        /// The directory.
        dir: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// Parses one `list.json`; `slug` is the list's directory name and `file` is used in errors.
pub fn parse_list(bytes: &[u8], slug: &str, file: &Path) -> Result<WarningList, WarningListError> {
    let bad = |message: String| WarningListError::List {
        file: file.to_path_buf(),
        message,
    };
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let raw: RawList = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            bad(format!("not a MISP warning list: {inner}"))
        } else {
            bad(format!("{path}: {inner}"))
        }
    })?;
    let list_type = match raw.list_type.as_str() {
        "string" => ListType::String,
        "substring" => ListType::Substring,
        "hostname" => ListType::Hostname,
        "cidr" => ListType::Cidr,
        "regex" => ListType::Regex,
        other => {
            return Err(bad(format!(
                "type: {other:?} is not one of string, substring, hostname, cidr, regex"
            )));
        }
    };
    // `int(version)` in pymispwarninglists: an integer or a string of one.
    let version = match &raw.version {
        serde_json::Value::Number(n) => n.as_i64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .ok_or_else(|| bad(format!("version: {} is not an integer", raw.version)))?;
    Ok(WarningList {
        slug: slug.to_string(),
        name: raw.name,
        description: raw.description,
        version,
        list_type,
        entries: raw.list,
        matching_attributes: raw.matching_attributes,
    })
}

/// The indicator kinds a MISP attribute type names (for `matching_attributes` of regex lists).
pub fn kinds_of_attribute(attribute: &str) -> &'static [IndicatorKind] {
    use IndicatorKind as K;
    match attribute {
        "ip-src" | "ip-dst" | "ip-src|port" | "ip-dst|port" | "domain|ip" => {
            &[K::Ipv4, K::Ipv6, K::Cidr]
        }
        "domain" | "hostname" | "hostname|port" => &[K::Domain],
        "url" | "uri" | "link" => &[K::Url],
        "email"
        | "email-src"
        | "email-dst"
        | "target-email"
        | "whois-registrant-email"
        | "dns-soa-email"
        | "email-reply-to" => &[K::Email],
        "md5" | "filename|md5" => &[K::Md5],
        "sha1" | "filename|sha1" | "x509-fingerprint-sha1" => &[K::Sha1],
        "sha256" | "filename|sha256" | "x509-fingerprint-sha256" => &[K::Sha256],
        "sha512" | "filename|sha512" => &[K::Sha512],
        "filename" => &[K::Filename],
        "vulnerability" => &[K::Cve],
        "AS" => &[K::Asn],
        _ => &[],
    }
}

/// Facts about one loaded list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListInfo {
    /// Identifier (directory name).
    pub slug: String,
    /// Human name.
    pub name: String,
    /// Type.
    pub list_type: ListType,
    /// Version.
    pub version: i64,
    /// Entries in the file.
    pub entries: usize,
}

/// An entry that could not be used (the rest of its list is): a CIDR that is not a strict
/// network (kept for exact matches, as pymispwarninglists does), or a regex that does not
/// compile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryProblem {
    /// List slug.
    pub list: String,
    /// Index of the entry in `list`.
    pub index: usize,
    /// What is wrong.
    pub message: String,
}

/// An indicator found on one or more lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// Index of the indicator in the advisory.
    pub index: usize,
    /// The indicator value.
    pub value: String,
    /// Slugs of the lists it is on, sorted.
    pub lists: Vec<String>,
}

/// Every loaded list, compiled for screening. Cheap to share (`Arc`) and immutable.
#[derive(Debug, Default)]
pub struct WarningLists {
    lists: Vec<ListInfo>,
    matcher: Matcher,
}

impl WarningLists {
    /// Compiles lists (duplicate slugs keep the first); returns the entries that could not be
    /// used, each naming its list.
    pub fn new(mut lists: Vec<WarningList>) -> (WarningLists, Vec<EntryProblem>) {
        lists.sort_by(|a, b| a.slug.cmp(&b.slug));
        lists.dedup_by(|b, a| a.slug == b.slug);
        lists.truncate(usize::from(ListId::MAX));
        let mut b = Builder::default();
        let mut problems = Vec::new();
        let mut infos = Vec::with_capacity(lists.len());
        for (n, l) in lists.iter().enumerate() {
            let id = ListId::try_from(n).unwrap_or(ListId::MAX);
            let mut problem = |index: usize, message: String| {
                problems.push(EntryProblem {
                    list: l.slug.clone(),
                    index,
                    message,
                });
            };
            match l.list_type {
                ListType::String => l.entries.iter().for_each(|e| b.string(id, e)),
                ListType::Hostname => l.entries.iter().for_each(|e| b.hostname(id, e)),
                ListType::Substring => l.entries.iter().for_each(|e| b.substring(id, e)),
                ListType::Cidr => {
                    for (i, e) in l.entries.iter().enumerate() {
                        if !b.cidr(id, e) {
                            problem(
                                i,
                                format!(
                                    "{e:?} is not a network (host bits set or not an address); \
                                     it only matches values written exactly like it"
                                ),
                            );
                        }
                    }
                }
                ListType::Regex => {
                    let kinds = if l.matching_attributes.is_empty() {
                        u16::MAX
                    } else {
                        l.matching_attributes
                            .iter()
                            .flat_map(|a| kinds_of_attribute(a))
                            .fold(0, |m, k| m | kind_bit(*k))
                    };
                    for (i, e) in l.entries.iter().enumerate() {
                        let compiled = python::pcre_to_regex(e).and_then(|p| {
                            regex::RegexBuilder::new(&p)
                                .size_limit(1 << 20)
                                .build()
                                .map(|_| p)
                                .map_err(|err| err.to_string())
                        });
                        match compiled {
                            Ok(p) => b.regex(id, p, kinds),
                            Err(m) => problem(i, format!("regex {e:?} is not usable: {m}")),
                        }
                    }
                }
            }
            infos.push(ListInfo {
                slug: l.slug.clone(),
                name: l.name.clone(),
                list_type: l.list_type,
                version: l.version,
                entries: l.entries.len(),
            });
        }
        let matcher = match b.finish() {
            Ok(m) => m,
            Err(message) => {
                problems.push(EntryProblem {
                    list: String::new(),
                    index: 0,
                    message,
                });
                Matcher::default()
            }
        };
        (
            WarningLists {
                lists: infos,
                matcher,
            },
            problems,
        )
    }

    /// The loaded lists, by slug.
    pub fn lists(&self) -> &[ListInfo] {
        &self.lists
    }

    /// True when no list is loaded.
    pub fn is_empty(&self) -> bool {
        self.lists.is_empty()
    }

    /// Total entries over every list.
    pub fn entries(&self) -> usize {
        self.lists.iter().map(|l| l.entries).sum()
    }

    /// Slugs of the lists an indicator of `kind` with `value` is on (sorted; empty = none).
    pub fn check(&self, kind: IndicatorKind, value: &str) -> Vec<&str> {
        let mut ids = Vec::new();
        self.matcher.collect(kind, value, &mut ids);
        ids.sort_unstable();
        ids.dedup();
        ids.iter()
            .filter_map(|i| self.lists.get(usize::from(*i)).map(|l| l.slug.as_str()))
            .collect()
    }

    /// The indicators that are on some list, in order.
    pub fn screen(&self, indicators: &[Indicator]) -> Vec<Hit> {
        let mut ids = Vec::new();
        let mut out = Vec::new();
        for (index, ind) in indicators.iter().enumerate() {
            ids.clear();
            self.matcher.collect(ind.kind, &ind.value, &mut ids);
            if ids.is_empty() {
                continue;
            }
            ids.sort_unstable();
            ids.dedup();
            out.push(Hit {
                index,
                value: ind.value.clone(),
                lists: ids
                    .iter()
                    .filter_map(|i| self.lists.get(usize::from(*i)).map(|l| l.slug.clone()))
                    .collect(),
            });
        }
        out
    }
}

/// What loading a directory produced.
#[derive(Debug)]
pub struct Loaded {
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
pub fn list_files(dir: &Path) -> Result<(PathBuf, Vec<(String, PathBuf)>), WarningListError> {
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
pub fn load_dir(dir: &Path, disabled: &[String]) -> Result<Loaded, WarningListError> {
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

/// Loads the lists of the config's `[warninglists]` (if any) off the async threads, logs what
/// was loaded and skipped, and hands them to `core`. A directory that holds no list, or a
/// `disabled` name that is no list, is a configuration error naming the key.
pub async fn attach(core: &NodeCore, config: &Config) -> Result<(), ConfigError> {
    let Some(w) = config.warninglists.clone() else {
        return Ok(());
    };
    let file = config.path.display().to_string();
    let problem = |key: &str, message: String| {
        ConfigError::Invalid(vec![ConfigProblem {
            file: file.clone(),
            key: key.to_string(),
            message,
            line: None,
        }])
    };
    let dir = w.dir.clone();
    let loaded = tokio::task::spawn_blocking(move || load_dir(&w.dir, &w.disabled))
        .await
        .map_err(|e| problem("warninglists.dir", format!("loading failed: {e}")))?
        .map_err(|e| match e {
            WarningListError::Dir { dir, message } => {
                problem("warninglists.dir", format!("{}: {message}", dir.display()))
            }
            other => problem("warninglists.dir", other.to_string()),
        })?;
    if let Some(name) = loaded.unknown_disabled.first() {
        return Err(problem(
            "warninglists.disabled",
            format!(
                "{name:?} is not a list in {} (names are directory names such as \
                 \"dynamic-dns\")",
                loaded.root.display()
            ),
        ));
    }
    for e in &loaded.skipped {
        tracing::warn!(error = %e, "warning list skipped");
    }
    for p in &loaded.entry_problems {
        tracing::debug!(list = %p.list, index = p.index, problem = %p.message, "warning-list entry");
    }
    tracing::info!(
        dir = %dir.display(),
        lists = loaded.lists.lists().len(),
        entries = loaded.lists.entries(),
        skipped = loaded.skipped.len(),
        unusable_entries = loaded.entry_problems.len(),
        "warning lists loaded"
    );
    core.set_warninglists(Arc::new(loaded.lists));
    Ok(())
}

#[cfg(test)]
mod tests;
