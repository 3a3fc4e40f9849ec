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
//!   `trust_anchors` (one or more CA certificate files).
//! - `[sync]`: `sync::SyncConfig` (fanout, anti-entropy interval, bounds, timeouts, backoff).
//! - `[metrics]` (optional): `listen` of the Prometheus HTTP endpoint (`GET /metrics`).
//! - `[[members]]`: the roster, local configuration (trust is each CERT's own decision): `id`,
//!   `name`, `endpoints` ("host:port", tried in order) and `[[members.keys]]` (`public_key` hex,
//!   optional `valid_from`/`valid_until` RFC 3339). This member may list itself (so every member
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

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::envelope::PublicKeyRecord;
use crate::model::Limits;
use crate::model::validate::check_member_id;
use crate::store::SledConfig;
use crate::sync::SyncConfig;

/// Default sled cache in MiB when `storage.cache_mb` is not set: `SledConfig`'s default
/// (sized for a small CERT's server; sled's own 1 GiB default uses gigabytes of RAM).
pub fn default_cache_mb() -> u64 {
    (SledConfig::default().cache_capacity_bytes / (1024 * 1024)).max(1)
}

/// Longest path a Unix socket can be bound to on Linux (`sun_path` minus the NUL).
pub const MAX_SOCKET_PATH: usize = 107;

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

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl LogFormat {
    /// Parses `text` or `json`.
    pub fn parse(s: &str) -> Option<LogFormat> {
        match s.trim().to_ascii_lowercase().as_str() {
            "text" => Some(LogFormat::Text),
            "json" => Some(LogFormat::Json),
            _ => None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The file as written (raw). Every table denies unknown keys.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    member: RawMember,
    #[serde(default)]
    storage: RawStorage,
    #[serde(default)]
    operator: RawOperator,
    #[serde(default)]
    log: RawLog,
    #[serde(default)]
    limits: Limits,
    #[serde(default)]
    trusted: Vec<RawTrusted>,
    #[serde(default)]
    peer: Option<RawPeer>,
    #[serde(default)]
    sync: SyncConfig,
    #[serde(default)]
    metrics: Option<RawMetrics>,
    #[serde(default)]
    members: Vec<RawRosterMember>,
    #[serde(default)]
    taxii: Option<RawTaxii>,
    #[serde(default)]
    warninglists: Option<RawWarningLists>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWarningLists {
    dir: PathBuf,
    #[serde(default)]
    disabled: Vec<String>,
}

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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPeer {
    listen: String,
    #[serde(default)]
    tls_cert: Option<PathBuf>,
    #[serde(default)]
    tls_key: Option<PathBuf>,
    #[serde(default)]
    trust_anchors: Vec<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    listen: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTaxii {
    listen: String,
    #[serde(default)]
    tls_cert: Option<PathBuf>,
    #[serde(default)]
    tls_key: Option<PathBuf>,
    #[serde(default)]
    client_ca: Option<PathBuf>,
    #[serde(default)]
    max_page: Option<usize>,
    #[serde(default)]
    cache_mb: Option<u64>,
    #[serde(default)]
    clients: Vec<RawTaxiiClient>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTaxiiClient {
    name: String,
    #[serde(default)]
    token_sha256: Option<String>,
    #[serde(default)]
    certificate_uri: Option<String>,
    #[serde(default)]
    collections: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRosterMember {
    id: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    endpoints: Vec<String>,
    #[serde(default)]
    keys: Vec<RawKey>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKey {
    public_key: String,
    #[serde(default)]
    valid_from: Option<String>,
    #[serde(default)]
    valid_until: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMember {
    id: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    key_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStorage {
    #[serde(default)]
    data_dir: Option<PathBuf>,
    #[serde(default)]
    cache_mb: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOperator {
    #[serde(default)]
    socket: Option<PathBuf>,
    #[serde(default)]
    tcp_listen: Option<String>,
    #[serde(default)]
    tls_cert: Option<PathBuf>,
    #[serde(default)]
    tls_key: Option<PathBuf>,
    #[serde(default)]
    client_ca: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    #[serde(default)]
    format: LogFormat,
    #[serde(default = "default_level")]
    level: String,
}

impl Default for RawLog {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: default_level(),
        }
    }
}

fn default_level() -> String {
    "info".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTrusted {
    member: String,
    public_key: String,
    #[serde(default)]
    valid_from: Option<String>,
    #[serde(default)]
    valid_until: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// The resolved configuration.

/// `[member]`: who this node is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberConfig {
    /// Member id, e.g. `ws-cert`.
    pub id: String,
    /// Display name (defaults to the id).
    pub name: String,
    /// Private signing key file (absolute).
    pub key_file: PathBuf,
}

/// `[storage]`: where and how data is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageConfig {
    /// Data directory (absolute).
    pub data_dir: PathBuf,
    /// sled page cache in MiB.
    pub cache_mb: u64,
}

impl StorageConfig {
    /// Directory of the sled database inside the data directory.
    pub fn store_path(&self) -> PathBuf {
        self.data_dir.join("store")
    }

    /// The sled configuration these settings give.
    pub fn sled_config(&self) -> SledConfig {
        SledConfig {
            cache_capacity_bytes: self.cache_mb.saturating_mul(1024 * 1024),
        }
    }
}

/// The optional TCP + mutual TLS operator listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorTcpConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Server certificate chain (PEM, absolute path).
    pub tls_cert: PathBuf,
    /// Server private key (PEM, absolute path).
    pub tls_key: PathBuf,
    /// CA certificates that issue operator certificates (PEM, absolute path).
    pub client_ca: PathBuf,
}

/// `[operator]`: the operator API listeners.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorConfig {
    /// Unix socket path (absolute), created with mode 0600.
    pub socket: PathBuf,
    /// Optional TCP listener with mutual TLS.
    pub tcp: Option<OperatorTcpConfig>,
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// Text or JSON.
    pub format: LogFormat,
    /// `tracing` filter directive, e.g. `info` or `tanoa_daemon=debug,info`.
    pub level: String,
}

/// `[peer]`: the federation listener and this member's TLS identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerConfig {
    /// Address of the peer port.
    pub listen: SocketAddr,
    /// This member's certificate chain (PEM, absolute), URI SAN `tanoa://member/<id>`.
    pub tls_cert: PathBuf,
    /// Its private key (PEM, absolute).
    pub tls_key: PathBuf,
    /// CA certificates (PEM, absolute) that issue member certificates; at least one.
    pub trust_anchors: Vec<PathBuf>,
}

/// `[metrics]`: the Prometheus endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsConfig {
    /// Address of the HTTP listener serving `GET /metrics`.
    pub listen: SocketAddr,
}

/// `[taxii]`: the TAXII 2.1 read endpoint (see `crate::taxii`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaxiiConfig {
    /// Address of the HTTP(S) listener.
    pub listen: SocketAddr,
    /// TLS server identity; `None` = plain HTTP (only allowed on a loopback address).
    pub tls: Option<TaxiiTlsConfig>,
    /// Largest page a client gets (`limit` is capped to it; the default page size).
    pub max_page: usize,
    /// Budget of the converted-object cache in MiB.
    pub cache_mb: u64,
    /// The clients allowed to read, with their collections.
    pub clients: Vec<TaxiiClientConfig>,
}

/// TLS files of the TAXII listener (absolute paths).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaxiiTlsConfig {
    /// Server certificate chain (PEM).
    pub cert: PathBuf,
    /// Server private key (PEM).
    pub key: PathBuf,
    /// CA certificates (PEM) issuing client certificates; `None` = no client certificates.
    pub client_ca: Option<PathBuf>,
}

/// One `[[taxii.clients]]` entry. The token itself is never stored: only its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaxiiClientConfig {
    /// Name (logs and messages).
    pub name: String,
    /// SHA-256 of the bearer token, if the client authenticates with a token.
    pub token_sha256: Option<[u8; 32]>,
    /// URI SAN of the client's certificate (e.g. `tanoa://operator/siem`), if it
    /// authenticates with mutual TLS.
    pub certificate_uri: Option<String>,
    /// Collections it may read.
    pub collections: Vec<crate::policy::Visibility>,
}

/// One roster endpoint, `host:port`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PeerEndpoint {
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl PeerEndpoint {
    /// Parses `host:port` (`[v6]:port` for IPv6); the error says what is wrong.
    pub fn parse(s: &str) -> Result<PeerEndpoint, String> {
        let t = s.trim();
        let (host, port) = if let Some(rest) = t.strip_prefix('[') {
            let (h, p) = rest
                .split_once("]:")
                .ok_or_else(|| format!("{s:?} is not [ipv6]:port"))?;
            h.parse::<std::net::Ipv6Addr>()
                .map_err(|e| format!("{s:?}: {h:?} is not an IPv6 address ({e})"))?;
            (h, p)
        } else {
            t.rsplit_once(':')
                .ok_or_else(|| format!("{s:?} is not host:port such as 192.0.2.10:7400"))?
        };
        if host.is_empty() {
            return Err(format!("{s:?} has no host"));
        }
        if host.contains(':') && !t.starts_with('[') {
            return Err(format!("{s:?}: write an IPv6 address as [addr]:port"));
        }
        if !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '_'))
        {
            return Err(format!("{s:?}: {host:?} is not a host name or IP address"));
        }
        let port: u16 = port
            .parse()
            .map_err(|_| format!("{s:?}: {port:?} is not a port number (1-65535)"))?;
        if port == 0 {
            return Err(format!("{s:?}: port 0 cannot be dialled"));
        }
        Ok(PeerEndpoint {
            host: host.to_string(),
            port,
        })
    }
}

impl fmt::Display for PeerEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// One `[[members]]` entry of the roster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RosterMember {
    /// Member id (the `tanoa://member/<id>` of its certificate).
    pub id: String,
    /// Display name (defaults to the id).
    pub name: String,
    /// Where to reach its peer port, in order of preference.
    pub endpoints: Vec<PeerEndpoint>,
    /// Its signing keys with their validity windows.
    pub keys: Vec<PublicKeyRecord>,
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
}

/// Parses an RFC 3339 timestamp into Unix milliseconds.
pub fn parse_rfc3339_ms(s: &str) -> Result<i64, String> {
    let t = time::OffsetDateTime::parse(s.trim(), &time::format_description::well_known::Rfc3339)
        .map_err(|e| {
        format!("{s:?} is not an RFC 3339 time such as 2026-01-31T00:00:00Z ({e})")
    })?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000)
        .map_err(|_| format!("{s:?} is out of range"))
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

    /// A commented example config for a new member (what `tanoa init` writes). It loads as is
    /// once `keys/<id>.key` exists beside it.
    pub fn example(member_id: &str, name: &str) -> String {
        let cache_mb = default_cache_mb();
        let name = name.replace('\\', "\\\\").replace('"', "\\\"");
        format!(
            r#"# tanoad configuration. Relative paths are resolved against this file's directory.

[member]
# This CERT's member id in the federation (a-z, 0-9 and '-', starting with a letter).
id = "{member_id}"
# Display name.
name = "{name}"
# Private ed25519 signing key (mode 0600). Default: "keys/<id>.key".
key_file = "keys/{member_id}.key"

[storage]
# Data directory (the sled store lives in <data_dir>/store). Default: "data".
data_dir = "data"
# sled page cache in MiB. Default: {cache_mb}.
# cache_mb = {cache_mb}

[operator]
# Unix socket of the operator API, created with mode 0600. Default: "<data_dir>/tanoad.sock".
# socket = "data/tanoad.sock"
# Optional TCP listener with mutual TLS for operator certificates
# (URI SAN tanoa://operator/<name>); all three files are required when it is set.
# tcp_listen = "127.0.0.1:7443"
# tls_cert = "certs/{member_id}.crt"
# tls_key = "certs/{member_id}.key"
# client_ca = "certs/operator-ca.crt"

[log]
# "text" or "json". Default: "text".
format = "text"
# tracing filter, e.g. "info" or "tanoa_daemon=debug,info". Default: "info".
level = "info"

[limits]
# max_payload_bytes = 1048576
# max_indicators = 50000
# max_title_len = 512
# max_summary_len = 65536
# max_string_len = 2048
# max_list_len = 1000
# max_extras_bytes = 1048576

# Extra signing keys accepted for verification (ImportEnvelope and replication), e.g. of a
# member that is not a peer. Roster keys ([[members.keys]]) are trusted as well.
# [[trusted]]
# member = "to-cert"
# public_key = "<64 hex digits>"
# valid_from = "2026-01-01T00:00:00Z"   # optional
# valid_until = "2027-01-01T00:00:00Z"  # optional

# Federation: without [peer] this node runs alone.
# [peer]
# listen = "0.0.0.0:7400"
# tls_cert = "certs/{member_id}.pem"      # URI SAN tanoa://member/{member_id}
# tls_key = "certs/{member_id}.key"
# trust_anchors = ["certs/ca.pem"]

# Replication settings (defaults shown).
# [sync]
# fanout = 3
# interval_ms = 30000
# jitter_ms = 3000
# request_timeout_ms = 15000
# max_frame_bytes = 131072

# Prometheus metrics (GET /metrics).
# [metrics]
# listen = "127.0.0.1:9464"

# TAXII 2.1 read endpoint for local tools (SIEM, TIP), off by default. Plain HTTP only on a
# loopback address; anywhere else tls_cert and tls_key are required. TLP:RED is never served.
# [taxii]
# listen = "127.0.0.1:9470"
# tls_cert = "certs/taxii.pem"
# tls_key = "certs/taxii.key"
# client_ca = "certs/taxii-clients-ca.pem"   # optional: clients identified by certificate
# max_page = 1000
# cache_mb = 128                     # converted STIX objects kept in memory
# [[taxii.clients]]
# name = "siem"
# token_sha256 = "<hex SHA-256 of the token: printf %s TOKEN | sha256sum>"
# collections = ["clear", "green"]
# [[taxii.clients]]
# name = "tip"
# certificate_uri = "tanoa://operator/tip"
# collections = ["clear", "green", "amber"]

# MISP warning lists (github.com/MISP/misp-warninglists): indicators on a list (public
# resolvers, cloud ranges, top sites...) are flagged on publish, import, show and search and
# left out of blocklists. Off when absent.
# [warninglists]
# dir = "/srv/misp-warninglists"      # <name>/list.json, or the repository with lists/
# disabled = ["alexa"]

# The roster: every member this CERT federates with (it may list itself too).
# [[members]]
# id = "to-cert"
# name = "Tonga CERT"
# endpoints = ["198.51.100.20:7400"]
# [[members.keys]]
# public_key = "<64 hex digits>"
# valid_from = "2026-01-01T00:00:00Z"   # optional
"#
        )
    }

    /// A complete federated config (what `tanoa demo` writes for each member): the member, its
    /// peer listener, TLS files, optional metrics listener, short-or-default sync settings and
    /// the whole roster (this member included). It loads as is once the files it names exist.
    pub fn example_federated(x: &FederatedExample) -> String {
        fn q(s: &str) -> String {
            toml::Value::String(s.to_string()).to_string()
        }
        let mut out = String::new();
        out.push_str("# tanoad configuration of a federation member.\n\n[member]\n");
        out.push_str(&format!(
            "id = {}\nname = {}\n",
            q(&x.member_id),
            q(&x.name)
        ));
        out.push_str(&format!("key_file = {}\n", q(&x.key_file)));
        out.push_str(&format!("\n[storage]\ndata_dir = {}\n", q(&x.data_dir)));
        if let Some(sock) = &x.operator_socket {
            out.push_str(&format!("\n[operator]\nsocket = {}\n", q(sock)));
        }
        out.push_str(&format!(
            "\n[peer]\nlisten = {}\ntls_cert = {}\ntls_key = {}\ntrust_anchors = [{}]\n",
            q(&x.peer_listen),
            q(&x.tls_cert),
            q(&x.tls_key),
            x.trust_anchors
                .iter()
                .map(|a| q(a))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        if !x.sync.is_empty() {
            out.push_str("\n[sync]\n");
            for (k, v) in &x.sync {
                out.push_str(&format!("{k} = {v}\n"));
            }
        }
        if let Some(m) = &x.metrics_listen {
            out.push_str(&format!("\n[metrics]\nlisten = {}\n", q(m)));
        }
        for m in &x.members {
            out.push_str(&format!(
                "\n[[members]]\nid = {}\nname = {}\nendpoints = [{}]\n",
                q(&m.id),
                q(&m.name),
                m.endpoints
                    .iter()
                    .map(|e| q(e))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            for k in &m.public_keys {
                out.push_str(&format!("[[members.keys]]\npublic_key = {}\n", q(k)));
            }
        }
        out
    }
}

/// Input of `Config::example_federated`. Paths are written as given (relative paths resolve
/// against the config file's directory).
#[derive(Debug, Clone, Default)]
pub struct FederatedExample {
    /// This member's id.
    pub member_id: String,
    /// Display name.
    pub name: String,
    /// Signing key file, e.g. `keys/<id>.key`.
    pub key_file: String,
    /// Data directory, e.g. `data`.
    pub data_dir: String,
    /// Operator socket path; `None` = `<data_dir>/tanoad.sock`.
    pub operator_socket: Option<String>,
    /// Peer listener, e.g. `127.0.0.1:7401`.
    pub peer_listen: String,
    /// Member certificate (PEM).
    pub tls_cert: String,
    /// Its private key (PEM).
    pub tls_key: String,
    /// CA certificate files.
    pub trust_anchors: Vec<String>,
    /// Prometheus listener, if any.
    pub metrics_listen: Option<String>,
    /// `[sync]` settings as (key, TOML value), e.g. `("interval_ms", "2000")`.
    pub sync: Vec<(String, String)>,
    /// The roster (this member may be included).
    pub members: Vec<ExampleMember>,
}

/// A roster entry of `FederatedExample`.
#[derive(Debug, Clone, Default)]
pub struct ExampleMember {
    /// Member id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// `host:port` endpoints.
    pub endpoints: Vec<String>,
    /// Public signing keys, hex.
    pub public_keys: Vec<String>,
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

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset)
        .map(|s| s.bytes().filter(|b| *b == b'\n').count() + 1)
        .unwrap_or(1)
}

fn parse_raw(text: &str, file: &str) -> Result<RawConfig, ConfigError> {
    let de = toml::Deserializer::parse(text).map_err(|e| {
        ConfigError::Parse(ConfigProblem {
            file: file.to_string(),
            key: String::new(),
            message: e.message().trim().to_string(),
            line: e.span().map(|s| line_of(text, s.start)),
        })
    })?;
    serde_path_to_error::deserialize::<_, RawConfig>(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        ConfigError::Parse(ConfigProblem {
            file: file.to_string(),
            key: if path == "." { String::new() } else { path },
            message: inner.message().trim().to_string(),
            line: inner.span().map(|s| line_of(text, s.start)),
        })
    })
}

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

    // [member]
    let id = raw.member.id.trim().to_string();
    if let Err(e) = check_member_id(&id) {
        bad("member.id", e);
    }
    let name = raw
        .member
        .name
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| id.clone());
    let key_file = resolve_path(
        base,
        &raw.member
            .key_file
            .unwrap_or_else(|| PathBuf::from(format!("keys/{id}.key"))),
    );
    if !key_file.is_file() {
        bad(
            "member.key_file",
            format!(
                "{} does not exist (create a member with: tanoa init)",
                key_file.display()
            ),
        );
    }

    // [storage]
    let data_dir = resolve_path(
        base,
        &raw.storage
            .data_dir
            .unwrap_or_else(|| PathBuf::from("data")),
    );
    if data_dir.exists() && !data_dir.is_dir() {
        bad(
            "storage.data_dir",
            format!("{} exists and is not a directory", data_dir.display()),
        );
    }
    let cache_mb = raw.storage.cache_mb.unwrap_or_else(default_cache_mb);
    if !(1..=1_048_576).contains(&cache_mb) {
        bad(
            "storage.cache_mb",
            format!("{cache_mb} is out of range (1 to 1048576 MiB)"),
        );
    }

    // [operator]
    let socket = raw
        .operator
        .socket
        .map(|s| resolve_path(base, &s))
        .unwrap_or_else(|| data_dir.join("tanoad.sock"));
    if socket.as_os_str().len() > MAX_SOCKET_PATH {
        bad(
            "operator.socket",
            format!(
                "{} is {} bytes long; a Unix socket path must be at most {MAX_SOCKET_PATH}",
                socket.display(),
                socket.as_os_str().len()
            ),
        );
    }
    let tcp = match raw.operator.tcp_listen {
        None => None,
        Some(addr) => {
            let listen = listen_addr("operator.tcp_listen", &addr, "127.0.0.1:7443", &mut bad);
            let why = Some("required when operator.tcp_listen is set (mutual TLS)");
            let mut file_key =
                |key: &str, v: Option<PathBuf>| existing_file(key, v, base, why, &mut bad);
            let cert = file_key("operator.tls_cert", raw.operator.tls_cert);
            let key = file_key("operator.tls_key", raw.operator.tls_key);
            let ca = file_key("operator.client_ca", raw.operator.client_ca);
            match (listen, cert, key, ca) {
                (Some(listen), Some(tls_cert), Some(tls_key), Some(client_ca)) => {
                    Some(OperatorTcpConfig {
                        listen,
                        tls_cert,
                        tls_key,
                        client_ca,
                    })
                }
                _ => None,
            }
        }
    };

    // [log]
    let level = raw.log.level.trim().to_string();
    if let Err(e) = tracing_subscriber::EnvFilter::builder().parse(&level) {
        bad(
            "log.level",
            format!(
                "{level:?} is not a log filter such as \"info\" or \"tanoa_daemon=debug\" ({e})"
            ),
        );
    }

    // [limits]
    let l = &raw.limits;
    const MAX_PAYLOAD: usize = 64 * 1024 * 1024;
    if !(1024..=MAX_PAYLOAD).contains(&l.max_payload_bytes) {
        bad(
            "limits.max_payload_bytes",
            format!(
                "{} is out of range (1024 to {MAX_PAYLOAD})",
                l.max_payload_bytes
            ),
        );
    }
    for (key, v) in [
        ("limits.max_indicators", l.max_indicators),
        ("limits.max_title_len", l.max_title_len),
        ("limits.max_summary_len", l.max_summary_len),
        ("limits.max_string_len", l.max_string_len),
        ("limits.max_list_len", l.max_list_len),
    ] {
        if v == 0 {
            bad(key, "must be at least 1".to_string());
        } else if v > MAX_PAYLOAD {
            bad(key, format!("{v} is larger than any payload can be"));
        }
    }
    if l.max_extras_bytes > l.max_payload_bytes {
        bad(
            "limits.max_extras_bytes",
            format!(
                "{} is larger than limits.max_payload_bytes ({})",
                l.max_extras_bytes, l.max_payload_bytes
            ),
        );
    }

    // [[trusted]]
    let mut trusted = Vec::new();
    for (n, t) in raw.trusted.into_iter().enumerate() {
        let k = |f: &str| format!("trusted[{n}].{f}");
        let member = t.member.trim().to_string();
        let mut ok = true;
        if let Err(e) = check_member_id(&member) {
            bad(&k("member"), e);
            ok = false;
        }
        let key = key_with_window(
            &t.public_key,
            t.valid_from,
            t.valid_until,
            &k,
            &mut bad,
            &mut ok,
        );
        if let (true, Some((key, from, until))) = (ok, key) {
            trusted.push(PublicKeyRecord::new(member, key, from, until));
        }
    }

    // [peer]
    let peer = raw.peer.and_then(|p| {
        let listen = listen_addr("peer.listen", &p.listen, "0.0.0.0:7400", &mut bad);
        let why = Some("required when [peer] is set (this member's TLS identity)");
        let mut file_key =
            |key: &str, v: Option<PathBuf>| existing_file(key, v, base, why, &mut bad);
        let tls_cert = file_key("peer.tls_cert", p.tls_cert);
        let tls_key = file_key("peer.tls_key", p.tls_key);
        let mut anchors = Vec::new();
        if p.trust_anchors.is_empty() {
            bad(
                "peer.trust_anchors",
                "at least one CA certificate file is required when [peer] is set".to_string(),
            );
        }
        for (n, a) in p.trust_anchors.iter().enumerate() {
            let key = format!("peer.trust_anchors[{n}]");
            anchors.extend(existing_file(&key, Some(a.clone()), base, None, &mut bad));
        }
        match (listen, tls_cert, tls_key) {
            (Some(listen), Some(tls_cert), Some(tls_key))
                if anchors.len() == p.trust_anchors.len() =>
            {
                Some(PeerConfig {
                    listen,
                    tls_cert,
                    tls_key,
                    trust_anchors: anchors,
                })
            }
            _ => None,
        }
    });

    // [sync]
    if let Err(e) = raw.sync.validate() {
        match &e {
            crate::sync::SyncError::Config { field, detail } => {
                bad(&format!("sync.{field}"), detail.clone())
            }
            other => bad("sync", other.to_string()),
        }
    }

    // [metrics]
    let metrics = raw
        .metrics
        .and_then(|m| listen_addr("metrics.listen", &m.listen, "127.0.0.1:9464", &mut bad))
        .map(|listen| MetricsConfig { listen });

    // [[members]]
    let mut members: Vec<RosterMember> = Vec::new();
    let mut seen_ids: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut seen_keys: std::collections::HashMap<String, (usize, String)> =
        std::collections::HashMap::new();
    for (n, m) in raw.members.into_iter().enumerate() {
        let k = |f: &str| format!("members[{n}].{f}");
        let mid = m.id.trim().to_string();
        let mut ok = true;
        if let Err(e) = check_member_id(&mid) {
            bad(&k("id"), e);
            ok = false;
        } else if let Some(first) = seen_ids.get(&mid) {
            bad(
                &k("id"),
                format!("{mid:?} is listed twice (first as members[{first}])"),
            );
            ok = false;
        } else {
            seen_ids.insert(mid.clone(), n);
        }
        let mname = m
            .name
            .map(|x| x.trim().to_string())
            .filter(|x| !x.is_empty())
            .unwrap_or_else(|| mid.clone());
        let mut endpoints = Vec::new();
        for (e, ep) in m.endpoints.iter().enumerate() {
            match PeerEndpoint::parse(ep) {
                Ok(p) => {
                    if endpoints.contains(&p) {
                        bad(
                            &k(&format!("endpoints[{e}]")),
                            format!("{ep:?} is listed twice"),
                        );
                        ok = false;
                    } else {
                        endpoints.push(p);
                    }
                }
                Err(msg) => {
                    bad(&k(&format!("endpoints[{e}]")), msg);
                    ok = false;
                }
            }
        }
        let mut keys = Vec::new();
        for (j, key) in m.keys.into_iter().enumerate() {
            let kk = |f: &str| k(&format!("keys[{j}].{f}"));
            let parsed = key_with_window(
                &key.public_key,
                key.valid_from,
                key.valid_until,
                &kk,
                &mut bad,
                &mut ok,
            );
            if let Some((pk, from, until)) = parsed {
                let rec = PublicKeyRecord::new(mid.clone(), pk, from, until);
                if let Some((first, owner)) = seen_keys.get(&rec.key_id) {
                    bad(
                        &kk("public_key"),
                        format!(
                            "the same key ({}) is already listed for members[{first}] ({owner})",
                            rec.key_id
                        ),
                    );
                    ok = false;
                } else {
                    seen_keys.insert(rec.key_id.clone(), (n, mid.clone()));
                    keys.push(rec);
                }
            }
        }
        if ok {
            members.push(RosterMember {
                id: mid,
                name: mname,
                endpoints,
                keys,
            });
        }
    }
    for (n, t) in trusted.iter().enumerate() {
        if let Some(owner) = members
            .iter()
            .find(|m| m.keys.iter().any(|k| k.key_id == t.key_id))
            && owner.id != t.member
        {
            bad(
                &format!("trusted[{n}].public_key"),
                format!(
                    "key {} is listed for member {} in [[members]] but for {} here",
                    t.key_id, owner.id, t.member
                ),
            );
        }
    }

    // [taxii]
    let taxii = raw.taxii.and_then(|t| resolve_taxii(t, base, &mut bad));

    // [warninglists]
    let warninglists = raw.warninglists.and_then(|w| {
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
    });

    Config {
        path: path.to_path_buf(),
        member: MemberConfig { id, name, key_file },
        storage: StorageConfig { data_dir, cache_mb },
        operator: OperatorConfig { socket, tcp },
        log: LogConfig {
            format: raw.log.format,
            level,
        },
        limits: raw.limits,
        trusted,
        peer,
        sync: raw.sync,
        metrics,
        members,
        taxii,
        warninglists,
    }
}

/// Largest `taxii.max_page`.
pub const MAX_TAXII_PAGE: usize = 10_000;

fn resolve_taxii(
    t: RawTaxii,
    base: &Path,
    bad: &mut impl FnMut(&str, String),
) -> Option<TaxiiConfig> {
    let mut ok = true;
    let listen = listen_addr("taxii.listen", &t.listen, "127.0.0.1:9470", bad);
    let mut file = |key: &str, v: Option<PathBuf>| -> Option<PathBuf> {
        let given = v.is_some();
        let found = existing_file(key, v, base, None, bad);
        if given && found.is_none() {
            ok = false;
        }
        found
    };
    let (cert_set, key_set, ca_set) = (
        t.tls_cert.is_some(),
        t.tls_key.is_some(),
        t.client_ca.is_some(),
    );
    let cert = file("taxii.tls_cert", t.tls_cert);
    let key = file("taxii.tls_key", t.tls_key);
    let client_ca = file("taxii.client_ca", t.client_ca);
    if cert_set != key_set {
        let missing = if cert_set {
            "taxii.tls_key"
        } else {
            "taxii.tls_cert"
        };
        bad(
            missing,
            "taxii.tls_cert and taxii.tls_key must be given together".into(),
        );
        ok = false;
    }
    if let Some(l) = listen
        && !cert_set
        && !l.ip().is_loopback()
    {
        bad(
            "taxii.tls_cert",
            format!(
                "required because taxii.listen ({l}) is not a loopback address: plain HTTP is \
                 only allowed on 127.0.0.1 or ::1 (tokens would cross the network in clear)"
            ),
        );
        ok = false;
    }
    if ca_set && !cert_set {
        bad(
            "taxii.client_ca",
            "client certificates need TLS: set taxii.tls_cert and taxii.tls_key".into(),
        );
        ok = false;
    }
    let max_page = t.max_page.unwrap_or(1000);
    if !(1..=MAX_TAXII_PAGE).contains(&max_page) {
        bad(
            "taxii.max_page",
            format!("{max_page} is out of range (1 to {MAX_TAXII_PAGE})"),
        );
        ok = false;
    }
    let cache_mb = t.cache_mb.unwrap_or(128);
    if cache_mb > 1_048_576 {
        bad(
            "taxii.cache_mb",
            format!("{cache_mb} is out of range (0 to 1048576 MiB)"),
        );
        ok = false;
    }
    if t.clients.is_empty() {
        bad(
            "taxii.clients",
            "at least one [[taxii.clients]] is required (nobody could read otherwise)".into(),
        );
        ok = false;
    }
    let mut clients: Vec<TaxiiClientConfig> = Vec::new();
    for (n, c) in t.clients.into_iter().enumerate() {
        let k = |f: &str| format!("taxii.clients[{n}].{f}");
        let name = c.name.trim().to_string();
        if name.is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
            bad(&k("name"), "must be 1 to 128 printable characters".into());
            ok = false;
        } else if let Some(first) = clients.iter().position(|x| x.name == name) {
            bad(
                &k("name"),
                format!("{name:?} is also the name of taxii.clients[{first}]"),
            );
            ok = false;
        }
        let token_sha256 = match c.token_sha256.as_deref().map(str::trim) {
            None => None,
            Some(h) => {
                let mut out = [0u8; 32];
                match hex::decode_to_slice(h, &mut out) {
                    Ok(()) => {
                        if let Some(first) =
                            clients.iter().position(|x| x.token_sha256 == Some(out))
                        {
                            bad(
                                &k("token_sha256"),
                                format!("the same token is given to taxii.clients[{first}]"),
                            );
                            ok = false;
                        }
                        Some(out)
                    }
                    Err(_) => {
                        bad(
                            &k("token_sha256"),
                            "must be 64 hex digits: the SHA-256 of the token (e.g. \
                             `printf %s TOKEN | sha256sum`), never the token itself"
                                .into(),
                        );
                        ok = false;
                        None
                    }
                }
            }
        };
        let certificate_uri = c
            .certificate_uri
            .map(|u| u.trim().to_string())
            .filter(|u| !u.is_empty());
        if let Some(u) = &certificate_uri {
            if !u.contains(':') || u.len() > 512 || u.chars().any(|ch| ch.is_whitespace()) {
                bad(
                    &k("certificate_uri"),
                    format!("{u:?} is not a URI such as tanoa://operator/siem"),
                );
                ok = false;
            } else if !ca_set {
                bad(
                    &k("certificate_uri"),
                    "needs taxii.client_ca (the CA that issues client certificates)".into(),
                );
                ok = false;
            } else if let Some(first) = clients
                .iter()
                .position(|x| x.certificate_uri.as_deref() == Some(u.as_str()))
            {
                bad(
                    &k("certificate_uri"),
                    format!("{u:?} is also given to taxii.clients[{first}]"),
                );
                ok = false;
            }
        }
        if token_sha256.is_none() && certificate_uri.is_none() && c.token_sha256.is_none() {
            bad(
                &k("token_sha256"),
                "a client needs token_sha256 or certificate_uri (or both)".into(),
            );
            ok = false;
        }
        let mut collections = Vec::new();
        if c.collections.is_empty() {
            bad(
                &k("collections"),
                "list the collections it may read: \"clear\", \"green\", \"amber\"".into(),
            );
            ok = false;
        }
        for (j, name) in c.collections.iter().enumerate() {
            match crate::policy::Visibility::parse(name) {
                Some(v) if !collections.contains(&v) => collections.push(v),
                Some(_) => {
                    bad(
                        &k(&format!("collections[{j}]")),
                        format!("{name:?} is listed twice"),
                    );
                    ok = false;
                }
                None => {
                    let why = if crate::model::Tlp::parse(name) == Some(crate::model::Tlp::Red) {
                        "TLP:RED is never served over TAXII (only its named recipients may \
                         hold it, never a tool that re-shares it)"
                            .to_string()
                    } else {
                        format!(
                            "{name:?} is not a collection: use \"clear\", \"green\" or \"amber\""
                        )
                    };
                    bad(&k(&format!("collections[{j}]")), why);
                    ok = false;
                }
            }
        }
        clients.push(TaxiiClientConfig {
            name,
            token_sha256,
            certificate_uri,
            collections,
        });
    }
    let tls = match (cert, key) {
        (Some(cert), Some(key)) => Some(TaxiiTlsConfig {
            cert,
            key,
            client_ca,
        }),
        _ => None,
    };
    match listen {
        Some(listen) if ok => Some(TaxiiConfig {
            listen,
            tls,
            max_page,
            cache_mb,
            clients,
        }),
        _ => None,
    }
}

/// A configured public key (64 hex digits) with its optional validity window (RFC 3339). Every
/// problem is reported under `k(field)` and clears `ok`; the key is returned whenever it parsed
/// (so duplicates are still found when only its window is wrong).
fn key_with_window(
    public_key: &str,
    valid_from: Option<String>,
    valid_until: Option<String>,
    k: &dyn Fn(&str) -> String,
    bad: &mut dyn FnMut(&str, String),
    ok: &mut bool,
) -> Option<(ed25519_dalek::VerifyingKey, Option<i64>, Option<i64>)> {
    let key = match crate::keys::parse_public_hex(public_key) {
        Ok(key) => Some(key),
        Err(e) => {
            bad(&k("public_key"), e);
            *ok = false;
            None
        }
    };
    let mut time_key = |f: &str, v: Option<String>| -> Option<i64> {
        match parse_rfc3339_ms(&v?) {
            Ok(ms) => Some(ms),
            Err(e) => {
                bad(&k(f), e);
                *ok = false;
                None
            }
        }
    };
    let from = time_key("valid_from", valid_from);
    let until = time_key("valid_until", valid_until);
    if let (Some(f), Some(u)) = (from, until)
        && u < f
    {
        bad(&k("valid_until"), "is before valid_from".to_string());
        *ok = false;
    }
    key.map(|key| (key, from, until))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn dir_with_key(id: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("keys")).unwrap();
        let key = crate::keys::generate().unwrap();
        crate::keys::write_key_file(&dir.path().join(format!("keys/{id}.key")), id, &key).unwrap();
        dir
    }

    fn load_text(dir: &Path, text: &str) -> Result<Config, ConfigError> {
        let path = dir.join("tanoad.toml");
        std::fs::write(&path, text).unwrap();
        Config::load(&path)
    }

    /// The `| `key` | default | … |` rows of the `## Limits` table of docs/advisory-format.md.
    fn documented_limits() -> Vec<(String, String)> {
        let doc = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/advisory-format.md"),
        )
        .unwrap();
        let section = doc.split("\n## Limits").nth(1).unwrap();
        let section = section.split("\n## ").next().unwrap();
        section
            .lines()
            .filter_map(|l| {
                let cells: Vec<&str> = l.split('|').map(str::trim).collect();
                let key = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
                let default = cells.get(2)?.split_whitespace().next()?;
                Some((key.to_string(), default.to_string()))
            })
            .collect()
    }

    /// Every `key = value` of the ```toml blocks of the docs (commented-out keys included),
    /// with the `[section]` it is under.
    fn documented_toml_blocks() -> Vec<(String, String)> {
        let mut out = Vec::new();
        for doc in ["advisory-format.md", "interop.md"] {
            let text = std::fs::read_to_string(
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../docs")
                    .join(doc),
            )
            .unwrap();
            for block in text.split("```toml\n").skip(1) {
                let block = block.split("```").next().unwrap();
                // Only daemon configuration blocks (an advisory draft has `[[indicators]]`).
                let first_section = block
                    .lines()
                    .find_map(|l| l.trim_start().strip_prefix('['))
                    .map(|h| h.trim_matches(['[', ']']).split('.').next().unwrap_or(""));
                const SECTIONS: [&str; 12] = [
                    "member",
                    "storage",
                    "operator",
                    "log",
                    "limits",
                    "trusted",
                    "peer",
                    "sync",
                    "metrics",
                    "members",
                    "taxii",
                    "warninglists",
                ];
                if !first_section.is_some_and(|s| SECTIONS.contains(&s)) {
                    continue;
                }
                let body: String = block
                    .lines()
                    .map(|l| {
                        // `# key = value  # comment` documents a key: uncomment it.
                        let t = l.trim_start();
                        match t.strip_prefix("# ") {
                            Some(rest)
                                if rest.split_once(" = ").is_some_and(|(k, _)| {
                                    k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                                }) =>
                            {
                                rest.to_string()
                            }
                            _ => l.to_string(),
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("\n");
                out.push((doc.to_string(), body));
            }
        }
        out
    }

    #[test]
    fn documented_config_keys_and_defaults_match_the_config_types() {
        let dir = dir_with_key("ws-cert");
        let documented = documented_limits();
        assert!(documented.len() >= 7, "{documented:?}");
        // Every documented key is accepted by the real config parser with its documented default,
        // and that default is the one `Limits::default()` has.
        let defaults = toml::Value::try_from(Limits::default()).unwrap();
        for (key, default) in &documented {
            let text = format!("[member]\nid = \"ws-cert\"\n[limits]\n{key} = {default}\n");
            let c = load_text(dir.path(), &text)
                .unwrap_or_else(|e| panic!("documented [limits] {key} = {default}: {e}"));
            let loaded = toml::Value::try_from(&c.limits).unwrap();
            assert_eq!(
                defaults.get(key).map(ToString::to_string).as_deref(),
                Some(default.as_str()),
                "docs/advisory-format.md: default of [limits] {key}"
            );
            assert_eq!(
                loaded, defaults,
                "[limits] {key} = {default} is the default"
            );
        }
        // Every key of the type is documented.
        let keys: Vec<&String> = documented.iter().map(|(k, _)| k).collect();
        for k in defaults.as_table().unwrap().keys() {
            assert!(keys.contains(&k), "[limits] {k} is not documented");
        }
        // Every daemon config block of the docs parses with the real parser (unknown keys are
        // refused there), commented-out keys included.
        let blocks = documented_toml_blocks();
        assert!(
            blocks.len() >= 2,
            "the [taxii] and [warninglists] blocks of docs/interop.md"
        );
        for (doc, body) in blocks {
            let text = format!("[member]\nid = \"ws-cert\"\n{body}\n");
            if let Err(e) = parse_raw(&text, doc.as_str()) {
                panic!("docs/{doc}: a config block does not parse: {e}\n{body}");
            }
        }
    }

    #[test]
    fn example_config_loads_with_defaults_resolved() {
        let dir = dir_with_key("ws-cert");
        let c = load_text(dir.path(), &Config::example("ws-cert", "Samoa \"CERT\"")).unwrap();
        assert_eq!(c.member.id, "ws-cert");
        assert_eq!(c.member.name, "Samoa \"CERT\"");
        assert_eq!(c.member.key_file, dir.path().join("keys/ws-cert.key"));
        assert_eq!(c.storage.data_dir, dir.path().join("data"));
        assert_eq!(c.operator.socket, dir.path().join("data/tanoad.sock"));
        assert_eq!(c.storage.cache_mb, default_cache_mb());
        assert_eq!(c.log.format, LogFormat::Text);
        assert_eq!(c.limits, Limits::default());
        assert!(c.operator.tcp.is_none());
    }

    #[test]
    fn minimal_config_defaults_everything_optional() {
        let dir = dir_with_key("to-cert");
        let c = load_text(dir.path(), "[member]\nid = \"to-cert\"\n").unwrap();
        assert_eq!(c.member.name, "to-cert");
        assert_eq!(c.log.level, "info");
        assert!(c.trusted.is_empty());
    }

    #[test]
    fn bad_value_names_file_and_key() {
        let dir = dir_with_key("ws-cert");
        let err = load_text(
            dir.path(),
            "[member]\nid = \"ws-cert\"\n[storage]\ncache_mb = \"big\"\n",
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains(
                "tanoad.toml: storage.cache_mb: invalid type: string \"big\", expected u64"
            ),
            "{msg}"
        );
        assert!(msg.contains("(line 4)"), "{msg}");
    }

    #[test]
    fn unknown_key_names_key_and_table() {
        let dir = dir_with_key("ws-cert");
        let err = load_text(
            dir.path(),
            "[member]\nid = \"ws-cert\"\n[storage]\ncahce_mb = 5\n",
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("tanoad.toml: storage.cahce_mb: unknown field `cahce_mb`"),
            "{msg}"
        );
        let err = load_text(
            dir.path(),
            "[member]\nid = \"ws-cert\"\n[limits]\nmax_indicatorz = 5\n",
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("limits.max_indicatorz: unknown field `max_indicatorz`"),
            "{err}"
        );
        let err = load_text(dir.path(), "[member]\nid = \"ws-cert\"\n[peers]\n").unwrap_err();
        assert!(err.to_string().contains("unknown field `peers`"), "{err}");
    }

    #[test]
    fn syntax_error_names_file_and_line() {
        let dir = dir_with_key("ws-cert");
        let err = load_text(dir.path(), "[member]\nid = \"ws-cert\n").unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with(&format!("{}", dir.path().join("tanoad.toml").display())));
        assert!(msg.contains("(line 2)"), "{msg}");
    }

    #[test]
    fn validation_names_every_bad_key() {
        let dir = dir_with_key("ws-cert");
        let err = load_text(
            dir.path(),
            r#"
[member]
id = "WS CERT"
key_file = "nope.key"
[storage]
cache_mb = 0
[operator]
tcp_listen = "localhost"
tls_cert = "missing.crt"
[log]
level = "[[["
[limits]
max_indicators = 0
[[trusted]]
member = "to-cert"
public_key = "abcd"
valid_from = "yesterday"
"#,
        )
        .unwrap_err();
        let keys: Vec<String> = err.problems().into_iter().map(|p| p.key).collect();
        for k in [
            "member.id",
            "member.key_file",
            "storage.cache_mb",
            "operator.tcp_listen",
            "operator.tls_cert",
            "operator.tls_key",
            "operator.client_ca",
            "log.level",
            "limits.max_indicators",
            "trusted[0].public_key",
            "trusted[0].valid_from",
        ] {
            assert!(keys.iter().any(|x| x == k), "{k} missing in {err}");
        }
        assert!(
            err.to_string()
                .contains("tanoad.toml: member.id: \"WS CERT\"")
        );
    }

    #[test]
    fn trusted_keys_and_tcp_listener_resolve() {
        let dir = dir_with_key("ws-cert");
        for f in ["op.crt", "op.key", "ca.crt"] {
            std::fs::write(dir.path().join(f), "x").unwrap();
        }
        let other = crate::keys::generate().unwrap().verifying_key();
        let text = format!(
            r#"
[member]
id = "ws-cert"
[operator]
tcp_listen = "127.0.0.1:7443"
tls_cert = "op.crt"
tls_key = "op.key"
client_ca = "ca.crt"
[[trusted]]
member = "to-cert"
public_key = "{}"
valid_from = "2026-01-01T00:00:00Z"
"#,
            crate::keys::public_hex(&other)
        );
        let c = load_text(dir.path(), &text).unwrap();
        let tcp = c.operator.tcp.unwrap();
        assert_eq!(tcp.listen, "127.0.0.1:7443".parse().unwrap());
        assert_eq!(tcp.client_ca, dir.path().join("ca.crt"));
        assert_eq!(c.trusted.len(), 1);
        assert_eq!(c.trusted[0].member, "to-cert");
        assert_eq!(c.trusted[0].valid_from_ms, Some(1_767_225_600_000));
        assert_eq!(c.trusted[0].valid_until_ms, None);
    }

    fn federated_text(dir: &Path, roster_extra: &str) -> String {
        for f in ["ws.pem", "ws.key", "ca.pem"] {
            std::fs::write(dir.join(f), "x").unwrap();
        }
        let to = crate::keys::generate().unwrap().verifying_key();
        let x = FederatedExample {
            member_id: "ws-cert".into(),
            name: "Samoa CERT".into(),
            key_file: "keys/ws-cert.key".into(),
            data_dir: "data".into(),
            peer_listen: "127.0.0.1:7401".into(),
            tls_cert: "ws.pem".into(),
            tls_key: "ws.key".into(),
            trust_anchors: vec!["ca.pem".into()],
            metrics_listen: Some("127.0.0.1:9464".into()),
            sync: vec![
                ("interval_ms".into(), "2000".into()),
                ("jitter_ms".into(), "200".into()),
            ],
            members: vec![
                ExampleMember {
                    id: "ws-cert".into(),
                    name: "Samoa CERT".into(),
                    endpoints: vec!["127.0.0.1:7401".into()],
                    public_keys: vec![],
                },
                ExampleMember {
                    id: "to-cert".into(),
                    name: "Tonga \"CERT\"".into(),
                    endpoints: vec!["127.0.0.1:7402".into(), "[2001:db8::2]:7400".into()],
                    public_keys: vec![crate::keys::public_hex(&to)],
                },
            ],
            ..Default::default()
        };
        format!("{}{roster_extra}", Config::example_federated(&x))
    }

    #[test]
    fn federated_example_loads_with_roster_peer_and_metrics() {
        let dir = dir_with_key("ws-cert");
        let c = load_text(dir.path(), &federated_text(dir.path(), "")).unwrap();
        let p = c.peer.as_ref().unwrap();
        assert_eq!(p.listen, "127.0.0.1:7401".parse().unwrap());
        assert_eq!(p.trust_anchors, vec![dir.path().join("ca.pem")]);
        assert_eq!(c.sync.interval_ms, 2000);
        assert_eq!(c.sync.fanout, 3);
        assert_eq!(
            c.metrics.as_ref().unwrap().listen,
            "127.0.0.1:9464".parse().unwrap()
        );
        assert_eq!(c.members.len(), 2);
        assert_eq!(c.own_roster_entry().unwrap().id, "ws-cert");
        let peers: Vec<&str> = c.peers().map(|m| m.id.as_str()).collect();
        assert_eq!(peers, ["to-cert"]);
        let to = &c.members[1];
        assert_eq!(to.name, "Tonga \"CERT\"");
        assert_eq!(
            to.endpoints[1],
            PeerEndpoint {
                host: "2001:db8::2".into(),
                port: 7400
            }
        );
        assert_eq!(to.endpoints[1].to_string(), "[2001:db8::2]:7400");
        assert_eq!(c.keyring_records().len(), 1);
        assert_eq!(c.keyring_records()[0].member, "to-cert");
    }

    #[test]
    fn single_node_example_has_no_federation() {
        let dir = dir_with_key("ws-cert");
        let c = load_text(dir.path(), &Config::example("ws-cert", "Samoa")).unwrap();
        assert!(c.peer.is_none() && c.metrics.is_none() && c.members.is_empty());
        assert_eq!(c.sync, SyncConfig::default());
    }

    #[test]
    fn roster_problems_name_the_key() {
        let dir = dir_with_key("ws-cert");
        let dup_key = crate::keys::public_hex(&crate::keys::generate().unwrap().verifying_key());
        let extra = format!(
            r#"
[[members]]
id = "fj-cert"
endpoints = ["192.0.2.5:7400", "nohostport", "192.0.2.6:0"]
[[members.keys]]
public_key = "{dup_key}"
valid_from = "2027-01-01T00:00:00Z"
valid_until = "2026-01-01T00:00:00Z"

[[members]]
id = "fj-cert"

[[members]]
id = "Bad_Id"

[[members]]
id = "au-acsc"
[[members.keys]]
public_key = "{dup_key}"
[[members.keys]]
public_key = "zz"
"#
        );
        let text = federated_text(dir.path(), &extra)
            .replace("interval_ms = 2000", "")
            .replace("jitter_ms = 200", "jitter_ms = 50000");
        let err = load_text(dir.path(), &text).unwrap_err();
        let keys: Vec<String> = err.problems().into_iter().map(|p| p.key).collect();
        for k in [
            "members[2].endpoints[1]",
            "members[2].endpoints[2]",
            "members[2].keys[0].valid_until",
            "members[3].id",
            "members[4].id",
            "members[5].keys[0].public_key",
            "members[5].keys[1].public_key",
            "sync.jitter_ms",
        ] {
            assert!(keys.iter().any(|x| x == k), "{k} missing in {err}");
        }
        assert!(
            err.to_string()
                .contains("listed twice (first as members[2])"),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains("already listed for members[2] (fj-cert)"),
            "{err}"
        );
    }

    #[test]
    fn peer_section_requires_its_files() {
        let dir = dir_with_key("ws-cert");
        let err = load_text(
            dir.path(),
            "[member]\nid = \"ws-cert\"\n[peer]\nlisten = \"nope\"\ntrust_anchors = [\"missing.pem\"]\n\
             [metrics]\nlisten = \"x\"\n",
        )
        .unwrap_err();
        let keys: Vec<String> = err.problems().into_iter().map(|p| p.key).collect();
        for k in [
            "peer.listen",
            "peer.tls_cert",
            "peer.tls_key",
            "peer.trust_anchors[0]",
            "metrics.listen",
        ] {
            assert!(keys.iter().any(|x| x == k), "{k} missing in {err}");
        }
        let err = load_text(
            dir.path(),
            "[member]\nid = \"ws-cert\"\n[sync]\nfanout_typo = 1\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("sync.fanout_typo"), "{err}");
    }

    #[test]
    fn endpoints_parse() {
        assert_eq!(
            PeerEndpoint::parse("peer.example:7400")
                .unwrap()
                .to_string(),
            "peer.example:7400"
        );
        for bad in [
            "",
            ":7400",
            "host",
            "host:",
            "host:99999",
            "2001:db8::1:7400",
            "a b:1",
        ] {
            assert!(PeerEndpoint::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn missing_file_is_named() {
        let err = Config::load("/nonexistent/tanoad.toml").unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/tanoad.toml"),
            "{err}"
        );
    }

    #[test]
    fn warninglists_section_resolves_and_checks_its_directory() {
        let dir = dir_with_key("ws-cert");
        let base = Config::example("ws-cert", "Samoa CERT");
        let list = dir.path().join("wl/lists/doc/list.json");
        std::fs::create_dir_all(list.parent().unwrap()).unwrap();
        std::fs::write(&list, "{}").unwrap();
        let c = load_text(
            dir.path(),
            &format!("{base}\n[warninglists]\ndir = \"wl\"\ndisabled = [\"doc\"]\n"),
        )
        .unwrap();
        let w = c.warninglists.unwrap();
        assert_eq!(w.dir, dir.path().join("wl"));
        assert_eq!(w.disabled, ["doc"]);
        assert!(load_text(dir.path(), &base).unwrap().warninglists.is_none());
        for (extra, key) in [
            ("dir = \"missing\"", "warninglists.dir"),
            ("dir = \"keys\"", "warninglists.dir"),
            (
                "dir = \"wl\"\ndisabled = [\"nope\"]",
                "warninglists.disabled[0]",
            ),
            ("dir = \"wl\"\nenabled = []", "warninglists.enabled"),
        ] {
            let err =
                load_text(dir.path(), &format!("{base}\n[warninglists]\n{extra}\n")).unwrap_err();
            assert!(
                err.problems().iter().any(|p| p.key.starts_with(key)),
                "{extra}: {err}"
            );
        }
    }
}
