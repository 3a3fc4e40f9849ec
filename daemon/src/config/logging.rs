//! `[log]`: output format and `tracing` filter.

use serde::{Deserialize, Serialize};

use super::raw::RawLog;

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

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// Text or JSON.
    pub format: LogFormat,
    /// `tracing` filter directive, e.g. `info` or `tanoa_daemon=debug,info`.
    pub level: String,
}

/// `[log]` resolved; a filter `tracing` cannot parse is a problem under `log.level`.
pub(super) fn resolve_log(raw: RawLog, bad: &mut dyn FnMut(&str, String)) -> LogConfig {
    let level = raw.level.trim().to_string();
    if let Err(e) = tracing_subscriber::EnvFilter::builder().parse(&level) {
        bad(
            "log.level",
            format!(
                "{level:?} is not a log filter such as \"info\" or \"tanoa_daemon=debug\" ({e})"
            ),
        );
    }
    LogConfig {
        format: raw.format,
        level,
    }
}
