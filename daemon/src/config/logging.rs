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

/// Parses a `tracing` filter directive (`[log] level`, `tanoad --log-level`). Directives are
/// ASCII (levels, targets, span and field names); anything else is refused here, before
/// `tracing-subscriber`'s parser, which panics on some non-ASCII input (found by the
/// `config_toml` fuzz target; regression in `fuzz/regressions/config_toml/`). Field values in
/// span filters (`[span{field=value}]`) are matched as literal strings, never compiled as
/// regular expressions: a value such as `c` followed by sixty `.` made the regex engine build a
/// DFA exponential in the value's length, and tanoad hung at start (also a `config_toml` fuzz
/// finding, `timeout-…` in the same folder).
pub(crate) fn parse_log_filter(level: &str) -> Result<tracing_subscriber::EnvFilter, String> {
    if let Some((at, c)) = level.char_indices().find(|(_, c)| !c.is_ascii()) {
        return Err(format!(
            "{level:?} is not a log filter such as \"info\" or \"tanoa_daemon=debug\" \
             (non-ASCII character {c:?} at byte {at}; filters are ASCII)"
        ));
    }
    tracing_subscriber::EnvFilter::builder()
        .with_regex(false)
        .parse(level)
        .map_err(|e| {
            format!(
                "{level:?} is not a log filter such as \"info\" or \"tanoa_daemon=debug\" ({e})"
            )
        })
}

/// `[log]` resolved; a filter `tracing` cannot parse is a problem under `log.level`.
pub(super) fn resolve_log(raw: RawLog, bad: &mut dyn FnMut(&str, String)) -> LogConfig {
    let level = raw.level.trim().to_string();
    if let Err(e) = parse_log_filter(&level) {
        bad("log.level", e);
    }
    LogConfig {
        format: raw.format,
        level,
    }
}
