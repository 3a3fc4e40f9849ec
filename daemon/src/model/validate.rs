//! Validation and normalization rules for advisories.
//!
//! Every rule yields a `ValidationError` whose `path` names the field and index
//! (`indicators[17].value`, `audience[2]`, `title`), and whose message quotes the bad value.

use serde::{Deserialize, Serialize};

use super::Advisory;

/// One violated rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ValidationError {
    /// Field path, e.g. `indicators[17].value`.
    pub path: String,
    /// What is wrong, quoting the value, e.g. `"10.0.0.300" is not an IPv4 address`.
    pub message: String,
}

impl ValidationError {
    /// Builds an error for `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// Every violated rule of one advisory (at most `MAX_REPORTED`, then a count of the rest).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValidationErrors {
    errors: Vec<ValidationError>,
    omitted: usize,
}

impl ValidationErrors {
    /// How many errors are kept in full; more are only counted.
    pub const MAX_REPORTED: usize = 50;

    /// A list holding one error.
    pub fn one(e: ValidationError) -> Self {
        Self {
            errors: vec![e],
            omitted: 0,
        }
    }

    /// Adds an error (counted only, once `MAX_REPORTED` are held).
    pub fn push(&mut self, e: ValidationError) {
        if self.errors.len() < Self::MAX_REPORTED {
            self.errors.push(e);
        } else {
            self.omitted += 1;
        }
    }

    /// True when no rule was violated.
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// The errors kept in full.
    pub fn errors(&self) -> &[ValidationError] {
        &self.errors
    }

    /// `Ok(())` when empty, else `Err(self)`.
    pub fn into_result(self) -> Result<(), ValidationErrors> {
        if self.is_empty() { Ok(()) } else { Err(self) }
    }
}

impl std::fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (n, e) in self.errors.iter().enumerate() {
            if n > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        if self.omitted > 0 {
            write!(f, "; and {} more", self.omitted)?;
        }
        Ok(())
    }
}

impl std::error::Error for ValidationErrors {}

/// Size limits, configurable under `[limits]` in the daemon config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Maximum encoded payload size in bytes (default 1 MiB).
    pub max_payload_bytes: usize,
    /// Maximum number of indicators per advisory (default 50,000).
    pub max_indicators: usize,
    /// Maximum title length in bytes (default 512).
    pub max_title_len: usize,
    /// Maximum summary length in bytes (default 65,536).
    pub max_summary_len: usize,
    /// Maximum length of any other string (ids, actors, notes, references, values) (default 2,048).
    pub max_string_len: usize,
    /// Maximum entries in audience, actors, cves and references each (default 1,000).
    pub max_list_len: usize,
    /// Maximum size of `stix_extras` in bytes (default 262,144).
    pub max_stix_extras_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_payload_bytes: 1024 * 1024,
            max_indicators: 50_000,
            max_title_len: 512,
            max_summary_len: 65_536,
            max_string_len: 2_048,
            max_list_len: 1_000,
            max_stix_extras_bytes: 262_144,
        }
    }
}

/// Normalizes in place what an operator wrote before it is signed: indicator values
/// (per kind), CVE ids upper-cased, audience sorted and de-duplicated, strings trimmed.
/// Values that cannot be normalized are left as they are for `validate_advisory` to report.
pub fn normalize_advisory(a: &mut Advisory) {
    super::indicator::normalize_all(a);
}

/// Checks every rule; values must already be in normalized form.
pub fn validate_advisory(a: &Advisory, limits: &Limits) -> Result<(), ValidationErrors> {
    let mut errs = ValidationErrors::default();
    super::indicator::check_all(a, limits, &mut errs);
    errs.into_result()
}
