//! The file as written: one serde struct per table, every table denying unknown keys, and the
//! parse that turns a TOML or layout error into a `ConfigProblem` naming the file, the dotted
//! key and the line.

use std::path::PathBuf;

use serde::Deserialize;

use super::logging::LogFormat;
use super::{ConfigError, ConfigProblem};
use crate::model::Limits;
use crate::sync::SyncConfig;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) member: RawMember,
    #[serde(default)]
    pub(super) storage: RawStorage,
    #[serde(default)]
    pub(super) operator: RawOperator,
    #[serde(default)]
    pub(super) log: RawLog,
    #[serde(default)]
    pub(super) limits: Limits,
    #[serde(default)]
    pub(super) trusted: Vec<RawTrusted>,
    #[serde(default)]
    pub(super) peer: Option<RawPeer>,
    #[serde(default)]
    pub(super) sync: SyncConfig,
    #[serde(default)]
    pub(super) metrics: Option<RawMetrics>,
    #[serde(default)]
    pub(super) members: Vec<RawRosterMember>,
    #[serde(default)]
    pub(super) roster: Option<RawRoster>,
    #[serde(default)]
    pub(super) taxii: Option<RawTaxii>,
    #[serde(default)]
    pub(super) warninglists: Option<RawWarningLists>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWarningLists {
    pub(super) dir: PathBuf,
    #[serde(default)]
    pub(super) disabled: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRoster {
    pub(super) file: PathBuf,
    pub(super) sha256: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPeer {
    pub(super) listen: String,
    #[serde(default)]
    pub(super) tls_cert: Option<PathBuf>,
    #[serde(default)]
    pub(super) tls_key: Option<PathBuf>,
    #[serde(default)]
    pub(super) trust_anchors: Vec<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMetrics {
    pub(super) listen: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTaxii {
    pub(super) listen: String,
    #[serde(default)]
    pub(super) tls_cert: Option<PathBuf>,
    #[serde(default)]
    pub(super) tls_key: Option<PathBuf>,
    #[serde(default)]
    pub(super) client_ca: Option<PathBuf>,
    #[serde(default)]
    pub(super) max_page: Option<usize>,
    #[serde(default)]
    pub(super) cache_mb: Option<u64>,
    #[serde(default)]
    pub(super) clients: Vec<RawTaxiiClient>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTaxiiClient {
    pub(super) name: String,
    #[serde(default)]
    pub(super) token_sha256: Option<String>,
    #[serde(default)]
    pub(super) certificate_uri: Option<String>,
    #[serde(default)]
    pub(super) collections: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRosterMember {
    pub(super) id: String,
    #[serde(default)]
    pub(super) name: Option<String>,
    #[serde(default)]
    pub(super) endpoints: Vec<String>,
    #[serde(default)]
    pub(super) keys: Vec<RawKey>,
    #[serde(default)]
    pub(super) tls_pins: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawKey {
    pub(super) public_key: String,
    #[serde(default)]
    pub(super) valid_from: Option<String>,
    #[serde(default)]
    pub(super) valid_until: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMember {
    pub(super) id: String,
    #[serde(default)]
    pub(super) name: Option<String>,
    #[serde(default)]
    pub(super) key_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStorage {
    #[serde(default)]
    pub(super) data_dir: Option<PathBuf>,
    #[serde(default)]
    pub(super) cache_mb: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOperator {
    #[serde(default)]
    pub(super) socket: Option<PathBuf>,
    #[serde(default)]
    pub(super) tcp_listen: Option<String>,
    #[serde(default)]
    pub(super) tls_cert: Option<PathBuf>,
    #[serde(default)]
    pub(super) tls_key: Option<PathBuf>,
    #[serde(default)]
    pub(super) client_ca: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLog {
    #[serde(default)]
    pub(super) format: LogFormat,
    #[serde(default = "default_level")]
    pub(super) level: String,
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
pub(super) struct RawTrusted {
    pub(super) member: String,
    pub(super) public_key: String,
    #[serde(default)]
    pub(super) valid_from: Option<String>,
    #[serde(default)]
    pub(super) valid_until: Option<String>,
}

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset)
        .map(|s| s.bytes().filter(|b| *b == b'\n').count() + 1)
        .unwrap_or(1)
}

pub(super) fn parse_raw(text: &str, file: &str) -> Result<RawConfig, ConfigError> {
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
