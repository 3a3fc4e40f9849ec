//! Indicator kinds, value normalization and kind detection.

use serde::{Deserialize, Serialize};

/// Kind of an indicator of compromise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IndicatorKind {
    /// IPv4 address.
    Ipv4,
    /// IPv6 address.
    Ipv6,
    /// IPv4 or IPv6 network.
    Cidr,
    /// DNS name.
    Domain,
    /// URL.
    Url,
    /// E-mail address.
    Email,
    /// MD5 digest.
    Md5,
    /// SHA-1 digest.
    Sha1,
    /// SHA-256 digest.
    Sha256,
    /// SHA-512 digest.
    Sha512,
    /// CVE id.
    Cve,
    /// File name.
    Filename,
    /// Autonomous system number.
    Asn,
}

use super::Advisory;
use super::validate::{Limits, ValidationErrors};

pub(crate) fn normalize_all(_a: &mut Advisory) {}
pub(crate) fn check_all(_a: &Advisory, _l: &Limits, _e: &mut ValidationErrors) {}
/// Normalizes a value of a kind.
pub fn normalize_indicator(_kind: IndicatorKind, value: &str) -> Result<String, String> {
    Ok(value.to_string())
}
/// Detects the kind of a value.
pub fn detect_kind(_value: &str) -> Option<IndicatorKind> {
    None
}
