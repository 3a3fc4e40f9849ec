//! Domain types of an advisory and their validation.
//!
//! Owns: the `Advisory` payload as Rust types, indicator normalization, the limits, and every
//! validation rule (each error names its field path, e.g. `indicators[17].value`).
//! Must never: touch I/O, keys, clocks or the store. `wire` is the only place that converts the
//! signed payload and the publish draft to and from protobuf.

pub mod draft;
pub mod indicator;
pub mod validate;
pub mod wire;

use serde::{Deserialize, Serialize};

pub use draft::Draft;
pub use indicator::{IndicatorKind, candidate_kinds, detect_kind, normalize_indicator};
pub use validate::{
    Limits, ValidationError, ValidationErrors, normalize_advisory, validate_advisory,
};

/// TLP 2.0 label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Tlp {
    /// TLP:CLEAR.
    Clear,
    /// TLP:GREEN.
    Green,
    /// TLP:AMBER.
    Amber,
    /// TLP:AMBER+STRICT.
    #[serde(alias = "AMBER+STRICT")]
    AmberStrict,
    /// TLP:RED.
    Red,
}

impl Tlp {
    /// All labels, least restrictive first.
    pub const ALL: [Tlp; 5] = [
        Tlp::Clear,
        Tlp::Green,
        Tlp::Amber,
        Tlp::AmberStrict,
        Tlp::Red,
    ];

    /// Canonical label text, e.g. `AMBER+STRICT`.
    pub fn as_str(self) -> &'static str {
        match self {
            Tlp::Clear => "CLEAR",
            Tlp::Green => "GREEN",
            Tlp::Amber => "AMBER",
            Tlp::AmberStrict => "AMBER+STRICT",
            Tlp::Red => "RED",
        }
    }

    /// Parses `clear`, `TLP:GREEN`, `amber+strict`, `amber_strict`, … (case-insensitive).
    pub fn parse(s: &str) -> Option<Tlp> {
        let t = s.trim().to_ascii_uppercase();
        let t = t.strip_prefix("TLP:").unwrap_or(&t);
        match t {
            "CLEAR" | "WHITE" => Some(Tlp::Clear),
            "GREEN" => Some(Tlp::Green),
            "AMBER" => Some(Tlp::Amber),
            "AMBER+STRICT" | "AMBER_STRICT" | "AMBER-STRICT" => Some(Tlp::AmberStrict),
            "RED" => Some(Tlp::Red),
            _ => None,
        }
    }

    /// True for labels that require a non-empty audience.
    pub fn needs_audience(self) -> bool {
        matches!(self, Tlp::Amber | Tlp::AmberStrict | Tlp::Red)
    }
}

impl std::fmt::Display for Tlp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Severity assessed by the origin.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Not stated.
    #[default]
    Unknown,
    /// Informational.
    Info,
    /// Low.
    Low,
    /// Medium.
    Medium,
    /// High.
    High,
    /// Critical.
    Critical,
}

impl Severity {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Unknown => "unknown",
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// Parses a severity name (case-insensitive).
    pub fn parse(s: &str) -> Option<Severity> {
        match s.trim().to_ascii_lowercase().as_str() {
            "" | "unknown" => Some(Severity::Unknown),
            "info" | "informational" => Some(Severity::Info),
            "low" => Some(Severity::Low),
            "medium" | "moderate" => Some(Severity::Medium),
            "high" => Some(Severity::High),
            "critical" => Some(Severity::Critical),
            _ => None,
        }
    }
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One indicator of compromise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Indicator {
    /// Kind of value.
    pub kind: IndicatorKind,
    /// Normalized value.
    pub value: String,
    /// Confidence 0..=100 (0 = not stated).
    #[serde(default)]
    pub confidence: u8,
    /// Unix ms expiry; `None` = no expiry.
    #[serde(default)]
    pub valid_until_ms: Option<i64>,
    /// Analyst note.
    #[serde(default)]
    pub note: String,
}

/// The signed advisory payload (see `proto/tanoa/v1/advisory.proto` for field meanings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Advisory {
    /// Advisory id, unique within its origin.
    pub id: String,
    /// Origin member id.
    pub origin: String,
    /// Revision, >= 1.
    pub revision: u64,
    /// Unix ms of revision 1.
    pub created_ms: i64,
    /// Unix ms of this revision.
    pub modified_ms: i64,
    /// Unix ms expiry; `None` = none.
    pub valid_until_ms: Option<i64>,
    /// TLP label.
    pub tlp: Tlp,
    /// Audience member ids (sorted, unique after normalization).
    pub audience: Vec<String>,
    /// Title.
    pub title: String,
    /// Summary.
    pub summary: String,
    /// Severity.
    pub severity: Severity,
    /// Threat actors.
    pub actors: Vec<String>,
    /// CVE ids.
    pub cves: Vec<String>,
    /// Indicators.
    pub indicators: Vec<Indicator>,
    /// Reference URLs.
    pub references: Vec<String>,
    /// Withdrawal tombstone flag.
    pub withdrawn: bool,
    /// Reason for withdrawal.
    pub withdrawn_reason: String,
    /// Opaque STIX extras (JSON).
    pub extras: Vec<u8>,
}
