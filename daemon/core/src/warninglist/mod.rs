//! MISP warning lists: known-benign values (public resolvers, cloud and VPN ranges, top sites,
//! dynamic-DNS zones…) that make an indicator a likely false positive.
//!
//! Owns: parsing each list (`list.json` of the MISP layout; the daemon's `warninglist` module
//! reads the files of `[warninglists] dir` and hands their bytes here) with errors naming its file (a bad list is reported and
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

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::model::{Indicator, IndicatorKind};
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

#[cfg(test)]
mod tests;
