//! The daemon's TOML configuration: parsing, defaults, path resolution and validation.
//!
//! Owns: the layout of `tanoad.toml`, the defaults of every optional key, resolving relative
//! paths against the config file's directory, and checking the values (each error names the file
//! and the dotted key, e.g. `tanoad.toml: storage.cache_mb: invalid type: string "big", expected
//! u64`).
//! Must never: open the store, bind sockets or load private keys (it only checks the key file
//! exists); `node` does that with the resolved values.
//!
//! # Federation keys
//!
//! - `[peer]` (optional; absent = single node): `listen` ("host:port" of the peer port),
//!   `tls_cert`/`tls_key` (this member's certificate, URI SAN `tanoa://member/<id>`),
//!   `trust_anchors` (CA certificate files; may be left out when every other member has
//!   `tls_pins`).
//! - `[sync]`: `sync::SyncConfig` (fanout, anti-entropy interval, bounds, timeouts, backoff).
//! - `[metrics]` (optional): `listen` of the Prometheus HTTP endpoint (`GET /metrics`).
//! - `[[members]]`: the roster, local configuration (trust is each CERT's own decision): `id`,
//!   `name`, `endpoints` ("host:port", tried in order) and `[[members.keys]]` (`public_key` hex,
//!   optional `valid_from`/`valid_until` RFC 3339) and `tls_pins` (`sha256:<hex>` of the
//!   SubjectPublicKeyInfo of each certificate it may present; a member with pins is
//!   authenticated by them only, one without by the CA). This member may list itself (so every member
//!   can share one roster file); its endpoints are then ignored and, if it lists keys, the node
//!   checks at start that its signing key is among them.
//! - `[[trusted]]` (kept from the single-node layout): extra signing keys accepted for
//!   verification (import and replication), e.g. of a member that is not a peer. The keyring is
//!   this member's key + every roster key + every trusted key (`Config::keyring_records`).
//!
//! # TAXII keys
//!
//! - `[taxii]` (optional; absent = no TAXII endpoint): `listen`, `tls_cert`/`tls_key` (required
//!   unless `listen` is a loopback address), `client_ca` (mutual TLS for clients identified by
//!   certificate), `max_page` (largest page, default 1000), `cache_mb` (converted-object cache,
//!   default 128), and `[[taxii.clients]]` (`name`, `token_sha256` = hex SHA-256 of the bearer
//!   token, `certificate_uri` = the URI SAN of a client certificate, `collections` among
//!   `clear`, `green`, `amber`). See `crate::taxii`.
//!
//! # Warning-list keys
//!
//! - `[warninglists]` (optional; absent = no screening): `dir` (MISP warning lists,
//!   `<name>/list.json` or the repository layout `lists/<name>/list.json`; must exist) and
//!   `disabled` (list names not to load). See `crate::warninglist`.
//!
//! # Layout
//!
//! This file holds `Config`, `load`/`parse`, the error types, the shared field checks and
//! `resolve`, which calls each section's resolver in file order. `raw` is the file as written
//! (serde structs denying unknown keys); each section resolves and validates itself: `member`
//! (`[member]`, `[[trusted]]`, `[[members]]`), `storage`, `operator`, `logging` (`[log]`),
//! `limits`, `peer`, `sync`, `metrics`, `taxii`, `warninglists`; `example` writes the example
//! files. `config` uses only the core re-exports, `keys`, `store::SledConfig` and
//! `warninglist::list_files`, never a module above it.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::envelope::PublicKeyRecord;
use crate::model::Limits;
use crate::sync::SyncConfig;

mod example;
mod limits;
mod logging;
mod member;
mod metrics;
mod operator;
mod peer;
mod raw;
mod roster;
mod storage;
mod sync;
mod taxii;
#[cfg(test)]
mod tests;
mod warninglists;

pub use example::{ExampleMember, FederatedExample};
pub(crate) use logging::parse_log_filter;
pub use logging::{LogConfig, LogFormat};
pub use member::{MemberConfig, PeerEndpoint, RosterMember, parse_rfc3339_ms};
pub use metrics::MetricsConfig;
pub(crate) use operator::MAX_SOCKET_PATH;
pub use operator::{OperatorConfig, OperatorTcpConfig};
pub use peer::PeerConfig;
pub use roster::RosterConfig;
pub(crate) use roster::members_of;
pub use storage::{StorageConfig, default_cache_mb};
pub use taxii::{TaxiiClientConfig, TaxiiConfig, TaxiiTlsConfig};
pub use warninglists::WarningListsConfig;

use raw::{RawConfig, parse_raw};

/// One problem in a config file, naming the file and the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// The config file as given.
    pub file: String,
    /// Dotted key, e.g. `storage.cache_mb` or `trusted[0].public_key`; empty for the top level.
    pub key: String,
    /// What is wrong.
    pub message: String,
    /// 1-based line in the file, when known.
    pub line: Option<usize>,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.file)?;
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)?;
        if let Some(line) = self.line {
            write!(f, " (line {line})")?;
        }
        Ok(())
    }
}

/// Why a config could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not fit the layout (one problem).
    #[error("{0}")]
    Parse(ConfigProblem),
    /// The values parsed but some are invalid (every problem found).
    #[error("{}", display_problems(.0))]
    Invalid(Vec<ConfigProblem>),
}

fn display_problems(p: &[ConfigProblem]) -> String {
    p.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

impl ConfigError {
    /// Every problem (one for read and parse errors).
    pub fn problems(&self) -> Vec<ConfigProblem> {
        match self {
            ConfigError::Read { path, source } => vec![ConfigProblem {
                file: path.display().to_string(),
                key: String::new(),
                message: source.to_string(),
                line: None,
            }],
            ConfigError::Parse(p) => vec![p.clone()],
            ConfigError::Invalid(v) => v.clone(),
        }
    }
}

/// A validated, fully resolved daemon configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The config file as given (used in messages).
    pub path: PathBuf,
    /// `[member]`.
    pub member: MemberConfig,
    /// `[storage]`.
    pub storage: StorageConfig,
    /// `[operator]`.
    pub operator: OperatorConfig,
    /// `[log]`.
    pub log: LogConfig,
    /// `[limits]`.
    pub limits: Limits,
    /// `[[trusted]]`: extra signing keys accepted for verification (import and replication).
    pub trusted: Vec<PublicKeyRecord>,
    /// `[peer]`: the federation listener; `None` = single node.
    pub peer: Option<PeerConfig>,
    /// `[sync]`: replication settings (validated).
    pub sync: SyncConfig,
    /// `[metrics]`: the Prometheus endpoint, if any.
    pub metrics: Option<MetricsConfig>,
    /// `[[members]]`: the roster (possibly including this member).
    pub members: Vec<RosterMember>,
    /// `[taxii]`: the TAXII 2.1 endpoint, if enabled.
    pub taxii: Option<TaxiiConfig>,
    /// `[warninglists]`: the MISP warning lists to screen indicators with, if any.
    pub warninglists: Option<WarningListsConfig>,
    /// `[roster]`: the signed roster this node was started with (`None`: `[[members]]` is
    /// version 0, local and unsigned). With it, `members` is the anchor's members until the
    /// node replaces them with the version in force at start.
    pub roster: Option<RosterConfig>,
}

impl Config {
    /// Every public key this node trusts, except its own signing key (which `NodeCore` adds):
    /// the `[[trusted]]` keys, then the keys of every roster member.
    pub fn keyring_records(&self) -> Vec<PublicKeyRecord> {
        let mut out = self.trusted.clone();
        for m in &self.members {
            out.extend(m.keys.iter().cloned());
        }
        out
    }

    /// The roster members other than this one (the peers of the sync core), by id.
    pub fn peers(&self) -> impl Iterator<Item = &RosterMember> {
        self.members.iter().filter(|m| m.id != self.member.id)
    }

    /// The `[[members]]` roster as the federation's membership at version 0 (local, unsigned).
    pub fn membership(&self) -> crate::membership::Membership {
        crate::membership::Membership {
            federation: String::new(),
            version: 0,
            members: self
                .members
                .iter()
                .map(|m| (m.id.clone(), m.to_member()))
                .collect(),
        }
    }

    /// This member's own roster entry, if it lists itself.
    pub fn own_roster_entry(&self) -> Option<&RosterMember> {
        self.members.iter().find(|m| m.id == self.member.id)
    }

    /// Reads, parses, resolves and validates a config file.
    pub fn load(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text, path)
    }

    /// Only the operator socket of a config file (`[operator] socket`, default
    /// `<data_dir>/tanoad.sock`): what a client needs to reach the daemon, without reading or
    /// checking anything else the file names (the roster file, certificates, keys). A file
    /// that does not parse, or a bad `[storage]`/`[operator]` key, is still an error.
    pub fn operator_socket(path: impl AsRef<Path>) -> Result<PathBuf, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let file = path.display().to_string();
        let raw = parse_raw(&text, &file)?;
        let base = base_dir(path);
        let mut problems = Vec::new();
        let mut bad = |key: &str, message: String| {
            problems.push(ConfigProblem {
                file: file.clone(),
                key: key.to_string(),
                message,
                line: None,
            });
        };
        let storage = storage::resolve_storage(raw.storage, &base, &mut bad);
        let mut op = raw.operator;
        // The TCP listener's files are not needed to find the socket.
        op.tcp_listen = None;
        let operator = operator::resolve_operator(op, &storage.data_dir, &base, &mut bad);
        if problems.is_empty() {
            Ok(operator.socket)
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }

    /// Parses config text as if read from `path` (relative paths resolve against its
    /// directory), then validates it.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let raw = parse_raw(text, &file)?;
        let base = base_dir(path);
        let mut problems = Vec::new();
        let config = resolve(raw, path, &base, &file, &mut problems);
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }
}

fn base_dir(path: &Path) -> PathBuf {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if dir.is_absolute() {
        dir
    } else {
        std::env::current_dir()
            .map(|cwd| cwd.join(&dir))
            .unwrap_or(dir)
    }
}

/// `text` parsed as an address:port; otherwise a problem under `key` showing `example`.
fn listen_addr(
    key: &str,
    text: &str,
    example: &str,
    bad: &mut dyn FnMut(&str, String),
) -> Option<SocketAddr> {
    match text.trim().parse::<SocketAddr>() {
        Ok(a) => Some(a),
        Err(e) => {
            bad(
                key,
                format!("{text:?} is not an address:port such as {example} ({e})"),
            );
            None
        }
    }
}

/// The file named under `key` (relative paths against the config's directory), which must
/// exist. When it is not given: `None`, and a problem saying `why_required` if that is set.
fn existing_file(
    key: &str,
    v: Option<PathBuf>,
    base: &Path,
    why_required: Option<&str>,
    bad: &mut dyn FnMut(&str, String),
) -> Option<PathBuf> {
    let Some(p) = v else {
        if let Some(why) = why_required {
            bad(key, why.to_string());
        }
        return None;
    };
    let p = resolve_path(base, &p);
    if p.is_file() {
        Some(p)
    } else {
        bad(key, format!("{} does not exist", p.display()));
        None
    }
}

fn resolve_path(base: &Path, p: &Path) -> PathBuf {
    let joined = if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    };
    // Lexically drop "." components so messages and socket paths stay short.
    joined
        .components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .collect()
}

/// The raw sections resolved one by one, in file order; every problem goes to `problems`.
fn resolve(
    raw: RawConfig,
    path: &Path,
    base: &Path,
    file: &str,
    problems: &mut Vec<ConfigProblem>,
) -> Config {
    let mut bad = |key: &str, message: String| {
        problems.push(ConfigProblem {
            file: file.to_string(),
            key: key.to_string(),
            message,
            line: None,
        });
    };
    let member = member::resolve_member(raw.member, base, &mut bad);
    let storage = storage::resolve_storage(raw.storage, base, &mut bad);
    let operator = operator::resolve_operator(raw.operator, &storage.data_dir, base, &mut bad);
    let log = logging::resolve_log(raw.log, &mut bad);
    limits::check_limits(&raw.limits, &mut bad);
    let trusted = member::resolve_trusted(raw.trusted, &mut bad);
    let peer = raw.peer.and_then(|p| peer::resolve_peer(p, base, &mut bad));
    sync::check_sync(&raw.sync, &mut bad);
    let metrics = raw
        .metrics
        .and_then(|m| metrics::resolve_metrics(m, &mut bad));
    let had_members = !raw.members.is_empty();
    let mut members = member::resolve_roster(raw.members, &mut bad);
    let roster = raw
        .roster
        .and_then(|r| roster::resolve_signed_roster(r, base, &mut bad));
    if let Some(r) = &roster {
        if had_members {
            bad(
                "roster",
                "[roster] (a signed roster) and [[members]] (a local one) exclude each other"
                    .to_string(),
            );
        }
        members = roster::members_of(&r.anchor.roster);
    }
    if let Some(p) = &peer
        && p.trust_anchors.is_empty()
    {
        let unpinned: Vec<String> = members
            .iter()
            .enumerate()
            .filter(|(_, m)| m.id != member.id && m.tls_pins.is_empty())
            .map(|(n, m)| format!("members[{n}] ({})", m.id))
            .collect();
        if !unpinned.is_empty() {
            bad(
                "peer.trust_anchors",
                format!(
                    "at least one CA certificate file is required unless every member has \
                     tls_pins; without pins: {}",
                    unpinned.join(", ")
                ),
            );
        }
    }
    member::check_trusted_against_roster(&trusted, &members, &mut bad);
    let taxii = raw
        .taxii
        .and_then(|t| taxii::resolve_taxii(t, base, &mut bad));
    let warninglists = raw
        .warninglists
        .and_then(|w| warninglists::resolve_warninglists(w, base, &mut bad));
    Config {
        path: path.to_path_buf(),
        member,
        storage,
        operator,
        log,
        limits: raw.limits,
        trusted,
        peer,
        sync: raw.sync,
        metrics,
        members,
        roster,
        taxii,
        warninglists,
    }
}
