//! Validation and normalization rules for advisories.
//!
//! Every rule yields a `ValidationError` whose `path` names the field and index
//! (`indicators[17].value`, `audience[2]`, `title`), and whose message quotes the bad value.
//!
//! Owns: the whole-advisory rules (ids, times, TLP/audience, text limits, duplicates,
//! withdrawal) and `normalize_advisory`; per-kind value rules live in `indicator`.
//! Must never: change an advisory while validating, add a rule that `docs/advisory-format.md`
//! does not list (every member must accept exactly the same payloads), or allocate per
//! indicator on the happy path (it runs on every received envelope).

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use serde::{Deserialize, Serialize};

use super::Advisory;
use super::indicator::{self, IndicatorKind, quote};

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
    /// Maximum size of `extras` in bytes (default 1,048,576: bounded in practice by the payload
    /// limit; an imported STIX bundle such as MITRE's APT40 set is about 550 kB).
    pub max_extras_bytes: usize,
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
            max_extras_bytes: 1_048_576,
        }
    }
}

/// Longest advisory id, in characters.
pub const MAX_ID_LEN: usize = 128;
/// Longest member id, in characters.
pub const MAX_MEMBER_ID_LEN: usize = 63;

/// Checks an advisory id: 1..=128 characters of `[A-Za-z0-9._-]`, starting with a letter or
/// digit. `Err` is a message quoting the id.
pub fn check_advisory_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("must not be empty".to_string());
    }
    if id.len() > MAX_ID_LEN {
        return Err(format!(
            "{} is {} characters long (at most {MAX_ID_LEN})",
            quote(id),
            id.chars().count()
        ));
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "{} contains {c:?} (allowed: letters, digits, '.', '_', '-')",
            quote(id)
        ));
    }
    if !id.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(format!("{} must start with a letter or digit", quote(id)));
    }
    Ok(())
}

/// Checks a member id: 1..=63 characters of `[a-z0-9-]`, starting with a letter.
/// `Err` is a message quoting the id.
pub fn check_member_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("must not be empty".to_string());
    }
    if id.len() > MAX_MEMBER_ID_LEN {
        return Err(format!(
            "{} is {} characters long (at most {MAX_MEMBER_ID_LEN})",
            quote(id),
            id.chars().count()
        ));
    }
    if let Some(c) = id
        .chars()
        .find(|c| !matches!(c, 'a'..='z' | '0'..='9' | '-'))
    {
        return Err(format!(
            "{} contains {c:?}; a member id is lower-case letters, digits and '-'",
            quote(id)
        ));
    }
    if !id.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err(format!("{} must start with a letter", quote(id)));
    }
    Ok(())
}

fn trim_in_place(s: &mut String) {
    let t = s.trim();
    if t.len() != s.len() {
        *s = t.to_string();
    }
}

/// Normalizes in place what an operator wrote before it is signed: strings trimmed, indicator
/// values normalized per kind (values that cannot be normalized are left as they are for
/// `validate_advisory` to report), CVE ids upper-cased, audience sorted and de-duplicated,
/// exact duplicate indicators (same kind and normalized value) removed, keeping the first.
pub fn normalize_advisory(a: &mut Advisory) {
    trim_in_place(&mut a.id);
    trim_in_place(&mut a.origin);
    trim_in_place(&mut a.title);
    trim_in_place(&mut a.summary);
    trim_in_place(&mut a.withdrawn_reason);
    for s in a
        .audience
        .iter_mut()
        .chain(a.actors.iter_mut())
        .chain(a.references.iter_mut())
    {
        trim_in_place(s);
    }
    for c in &mut a.cves {
        trim_in_place(c);
        c.make_ascii_uppercase();
    }
    a.audience.sort_unstable();
    a.audience.dedup();
    for i in &mut a.indicators {
        trim_in_place(&mut i.note);
        if let Ok(n) = indicator::normalize_indicator(i.kind, &i.value)
            && n != i.value
        {
            i.value = n;
        }
    }
    let mut seen = std::collections::HashSet::with_capacity(a.indicators.len());
    a.indicators
        .retain(|i| seen.insert((i.kind, i.value.clone())));
}

fn too_long(s: &str, max: usize) -> Option<String> {
    (s.len() > max).then(|| format!("is {} bytes long (at most {max})", s.len()))
}

fn check_reference(r: &str) -> Result<(), String> {
    match url::Url::parse(r) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.has_host() => Ok(()),
        Ok(_) => Err(format!("{} is not an http(s) URL", quote(r))),
        Err(e) => Err(format!("{} is not an absolute http(s) URL ({e})", quote(r))),
    }
}

/// Checks every rule and reports every violation with its field path; values must already be
/// in normalized form (see [`normalize_advisory`]). The rules, one per line, are listed in
/// `docs/advisory-format.md` ("Validation rules").
pub fn validate_advisory(a: &Advisory, limits: &Limits) -> Result<(), ValidationErrors> {
    let mut errs = ValidationErrors::default();
    check_all(a, limits, |path: &str, message: String| {
        errs.push(ValidationError::new(path, message));
    });
    errs.into_result()
}

/// Runs every rule, reporting each violation through `err(path, message)`.
fn check_all(a: &Advisory, limits: &Limits, mut err: impl FnMut(&str, String)) {
    // Identity and times.
    if let Err(m) = check_advisory_id(&a.id) {
        err("id", m);
    }
    if let Err(m) = check_member_id(&a.origin) {
        err("origin", m);
    }
    if a.revision < 1 {
        err("revision", "must be at least 1".to_string());
    }
    if a.created_ms <= 0 {
        err(
            "created_ms",
            format!("{} is not a positive time", a.created_ms),
        );
    }
    if a.modified_ms < a.created_ms {
        err(
            "modified_ms",
            format!("{} is before created_ms ({})", a.modified_ms, a.created_ms),
        );
    }
    if let Some(v) = a.valid_until_ms
        && v <= a.created_ms
    {
        err(
            "valid_until_ms",
            format!("{v} is not after created_ms ({})", a.created_ms),
        );
    }

    // TLP and audience.
    if a.tlp.needs_audience() {
        if a.audience.is_empty() {
            err(
                "audience",
                format!("must name at least one member for TLP:{}", a.tlp),
            );
        }
    } else if !a.audience.is_empty() {
        err(
            "audience",
            format!(
                "must be empty for TLP:{} (everyone in the federation may hold it)",
                a.tlp
            ),
        );
    }
    too_many_into(&mut err, "audience", a.audience.len(), limits.max_list_len);
    for (n, m) in a.audience.iter().enumerate() {
        if let Err(msg) = check_member_id(m) {
            err(&format!("audience[{n}]"), msg);
        }
        if n > 0 {
            let prev = &a.audience[n - 1];
            if prev == m {
                err(
                    &format!("audience[{n}]"),
                    format!("{} is a duplicate of audience[{}]", quote(m), n - 1),
                );
            } else if prev > m {
                err(
                    &format!("audience[{n}]"),
                    format!(
                        "{} is out of order (audience must be sorted; it follows {})",
                        quote(m),
                        quote(prev)
                    ),
                );
            }
        }
    }

    // Text.
    if a.title.trim().is_empty() {
        err("title", "must not be empty".to_string());
    }
    if let Some(m) = too_long(&a.title, limits.max_title_len) {
        err("title", m);
    }
    if a.title.chars().any(char::is_control) {
        err(
            "title",
            format!("{} contains a control character", quote(&a.title)),
        );
    }
    if let Some(m) = too_long(&a.summary, limits.max_summary_len) {
        err("summary", m);
    }
    if let Some((pos, c)) = a
        .summary
        .char_indices()
        .find(|(_, c)| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        err(
            "summary",
            format!("contains the control character {c:?} at byte {pos}"),
        );
    }

    // Lists.
    too_many_into(&mut err, "actors", a.actors.len(), limits.max_list_len);
    for (n, actor) in a.actors.iter().enumerate() {
        if actor.trim().is_empty() {
            err(&format!("actors[{n}]"), "must not be empty".to_string());
        }
        if let Some(m) = too_long(actor, limits.max_string_len) {
            err(&format!("actors[{n}]"), m);
        }
    }
    too_many_into(&mut err, "cves", a.cves.len(), limits.max_list_len);
    for (n, c) in a.cves.iter().enumerate() {
        if let Err(m) = indicator::check_normalized(IndicatorKind::Cve, c) {
            err(&format!("cves[{n}]"), m);
        }
    }
    too_many_into(
        &mut err,
        "references",
        a.references.len(),
        limits.max_list_len,
    );
    for (n, r) in a.references.iter().enumerate() {
        if let Some(m) = too_long(r, limits.max_string_len) {
            err(&format!("references[{n}]"), m);
        } else if let Err(m) = check_reference(r) {
            err(&format!("references[{n}]"), m);
        }
    }

    // Indicators.
    if a.indicators.len() > limits.max_indicators {
        err(
            "indicators",
            format!(
                "has {} indicators (at most {})",
                a.indicators.len(),
                limits.max_indicators
            ),
        );
    }
    let mut first_seen: HashMap<(IndicatorKind, &str), usize> =
        HashMap::with_capacity(a.indicators.len());
    for (n, i) in a.indicators.iter().enumerate() {
        if let Some(m) = too_long(&i.value, limits.max_string_len) {
            err(&format!("indicators[{n}].value"), m);
        } else if let Err(m) = indicator::check_normalized(i.kind, &i.value) {
            err(&format!("indicators[{n}].value"), m);
        }
        if i.confidence > 100 {
            err(
                &format!("indicators[{n}].confidence"),
                format!("{} is not in 0..=100", i.confidence),
            );
        }
        if let Some(m) = too_long(&i.note, limits.max_string_len) {
            err(&format!("indicators[{n}].note"), m);
        }
        if let Some(v) = i.valid_until_ms
            && v < 0
        {
            err(
                &format!("indicators[{n}].valid_until_ms"),
                format!("{v} is negative"),
            );
        }
        match first_seen.entry((i.kind, i.value.as_str())) {
            Entry::Occupied(e) => err(
                &format!("indicators[{n}]"),
                format!("duplicate of indicators[{}]", e.get()),
            ),
            Entry::Vacant(e) => {
                e.insert(n);
            }
        }
    }

    // Withdrawal and extras.
    if a.withdrawn && a.withdrawn_reason.trim().is_empty() {
        err(
            "withdrawn_reason",
            "must say why the advisory is withdrawn".to_string(),
        );
    }
    if !a.withdrawn && !a.withdrawn_reason.is_empty() {
        err(
            "withdrawn_reason",
            "must be empty unless the advisory is withdrawn".to_string(),
        );
    }
    if let Some(m) = too_long(&a.withdrawn_reason, limits.max_string_len) {
        err("withdrawn_reason", m);
    }
    if a.extras.len() > limits.max_extras_bytes {
        err(
            "extras",
            format!(
                "is {} bytes long (at most {})",
                a.extras.len(),
                limits.max_extras_bytes
            ),
        );
    } else if !a.extras.is_empty()
        && let Err(e) = serde_json::from_slice::<
            std::collections::HashMap<String, serde::de::IgnoredAny>,
        >(&a.extras)
    {
        err("extras", format!("is not a JSON object ({e})"));
    }
}

fn too_many_into(err: &mut impl FnMut(&str, String), path: &str, n: usize, max: usize) {
    if n > max {
        err(path, format!("has {n} entries (at most {max})"));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::model::{Indicator, IndicatorKind as K, Severity, Tlp};

    fn ind(kind: K, value: &str) -> Indicator {
        Indicator {
            kind,
            value: value.to_string(),
            confidence: 50,
            valid_until_ms: None,
            note: String::new(),
        }
    }

    /// A valid advisory (TLP:AMBER with an audience, every list non-empty).
    fn sample() -> Advisory {
        Advisory {
            id: "ws-2026-0042".to_string(),
            origin: "ws-cert".to_string(),
            revision: 1,
            created_ms: 1_770_000_000_000,
            modified_ms: 1_770_000_000_000,
            valid_until_ms: Some(1_800_000_000_000),
            tlp: Tlp::Amber,
            audience: vec!["fj-cert".to_string(), "to-cert".to_string()],
            title: "APT40 activity".to_string(),
            summary: "Line one.\n\tLine two.\r\n".to_string(),
            severity: Severity::High,
            actors: vec!["APT40".to_string()],
            cves: vec!["CVE-2017-11882".to_string()],
            indicators: vec![
                ind(K::Ipv4, "192.0.2.1"),
                ind(K::Domain, "evil.example"),
                ind(K::Url, "https://evil.example/a"),
            ],
            references: vec![
                "https://www.cisa.gov/news-events/cybersecurity-advisories/aa24-190a".to_string(),
            ],
            withdrawn: false,
            withdrawn_reason: String::new(),
            extras: br#"{"x_custom": 1}"#.to_vec(),
        }
    }

    fn errors_of(a: &Advisory) -> ValidationErrors {
        validate_advisory(a, &Limits::default()).expect_err("advisory unexpectedly valid")
    }

    /// Asserts that `a` fails with an error at `path` whose message contains `msg`.
    #[track_caller]
    fn assert_fails(a: &Advisory, path: &str, msg: &str) {
        let errs = errors_of(a);
        assert!(
            errs.errors()
                .iter()
                .any(|e| e.path == path && e.message.contains(msg)),
            "expected {path}: …{msg}…, got: {errs}"
        );
        assert!(errs.to_string().contains(&format!("{path}: ")), "{errs}");
    }

    #[test]
    fn sample_is_valid() {
        assert_eq!(validate_advisory(&sample(), &Limits::default()), Ok(()));
        let mut green = sample();
        green.tlp = Tlp::Green;
        green.audience.clear();
        assert_eq!(validate_advisory(&green, &Limits::default()), Ok(()));
    }

    /// Every rule: (name, mutation, field path, message fragment).
    #[test]
    fn every_rule_names_its_field() {
        type Case = (&'static str, fn(&mut Advisory), &'static str, &'static str);
        let cases: Vec<Case> = vec![
            ("empty id", |a| a.id.clear(), "id", "must not be empty"),
            ("long id", |a| a.id = "a".repeat(129), "id", "at most 128"),
            ("id charset", |a| a.id = "ws 1".into(), "id", "contains ' '"),
            (
                "id start",
                |a| a.id = "-ws1".into(),
                "id",
                "must start with a letter or digit",
            ),
            (
                "empty origin",
                |a| a.origin.clear(),
                "origin",
                "must not be empty",
            ),
            (
                "origin case",
                |a| a.origin = "WS-CERT".into(),
                "origin",
                "contains 'W'",
            ),
            (
                "origin start",
                |a| a.origin = "1cert".into(),
                "origin",
                "must start with a letter",
            ),
            (
                "long origin",
                |a| a.origin = "a".repeat(64),
                "origin",
                "at most 63",
            ),
            ("revision 0", |a| a.revision = 0, "revision", "at least 1"),
            (
                "created 0",
                |a| a.created_ms = 0,
                "created_ms",
                "not a positive time",
            ),
            (
                "modified early",
                |a| a.modified_ms = a.created_ms - 1,
                "modified_ms",
                "before created_ms",
            ),
            (
                "valid_until early",
                |a| a.valid_until_ms = Some(a.created_ms),
                "valid_until_ms",
                "not after created_ms",
            ),
            (
                "amber without audience",
                |a| a.audience.clear(),
                "audience",
                "at least one member for TLP:AMBER",
            ),
            (
                "red without audience",
                |a| {
                    a.tlp = Tlp::Red;
                    a.audience.clear()
                },
                "audience",
                "TLP:RED",
            ),
            (
                "amber+strict without audience",
                |a| {
                    a.tlp = Tlp::AmberStrict;
                    a.audience.clear()
                },
                "audience",
                "TLP:AMBER+STRICT",
            ),
            (
                "green with audience",
                |a| a.tlp = Tlp::Green,
                "audience",
                "must be empty for TLP:GREEN",
            ),
            (
                "clear with audience",
                |a| a.tlp = Tlp::Clear,
                "audience",
                "must be empty for TLP:CLEAR",
            ),
            (
                "audience member id",
                |a| a.audience[1] = "To_Cert".into(),
                "audience[1]",
                "contains 'T'",
            ),
            (
                "audience unsorted",
                |a| a.audience.reverse(),
                "audience[1]",
                "out of order",
            ),
            (
                "audience duplicate",
                |a| a.audience[1] = "fj-cert".into(),
                "audience[1]",
                "duplicate of audience[0]",
            ),
            (
                "empty title",
                |a| a.title = "  ".into(),
                "title",
                "must not be empty",
            ),
            (
                "long title",
                |a| a.title = "t".repeat(513),
                "title",
                "at most 512",
            ),
            (
                "title newline",
                |a| a.title = "a\nb".into(),
                "title",
                "control character",
            ),
            (
                "long summary",
                |a| a.summary = "s".repeat(65_537),
                "summary",
                "at most 65536",
            ),
            (
                "summary escape",
                |a| a.summary = "red\u{1b}[31m".into(),
                "summary",
                "control character '\\u{1b}'",
            ),
            (
                "empty actor",
                |a| a.actors.push(String::new()),
                "actors[1]",
                "must not be empty",
            ),
            (
                "long actor",
                |a| a.actors[0] = "a".repeat(2049),
                "actors[0]",
                "at most 2048",
            ),
            (
                "too many actors",
                |a| a.actors = vec!["x".into(); 1001],
                "actors",
                "1001 entries (at most 1000)",
            ),
            (
                "too many cves",
                |a| a.cves = vec!["CVE-2017-0199".into(); 1001],
                "cves",
                "1001 entries",
            ),
            (
                "too many references",
                |a| a.references = vec!["https://a.example/".into(); 1001],
                "references",
                "1001 entries",
            ),
            (
                "too many audience",
                |a| a.audience = (0..1001).map(|n| format!("m{n:04}")).collect(),
                "audience",
                "1001 entries",
            ),
            (
                "bad cve",
                |a| a.cves.push("CVE-17-1".into()),
                "cves[1]",
                "is not a CVE id",
            ),
            (
                "cve case",
                |a| a.cves[0] = "cve-2017-11882".into(),
                "cves[0]",
                "not in normalized form (expected \"CVE-2017-11882\")",
            ),
            (
                "relative reference",
                |a| a.references[0] = "/aa24-190a".into(),
                "references[0]",
                "not an absolute http(s) URL",
            ),
            (
                "ftp reference",
                |a| a.references[0] = "ftp://files.example/x".into(),
                "references[0]",
                "not an http(s) URL",
            ),
            (
                "long reference",
                |a| a.references[0] = format!("https://a.example/{}", "x".repeat(2048)),
                "references[0]",
                "at most 2048",
            ),
            (
                "bad ipv4",
                |a| a.indicators[0].value = "10.0.0.300".into(),
                "indicators[0].value",
                "\"10.0.0.300\" is not an IPv4 address",
            ),
            (
                "unnormalized domain",
                |a| a.indicators[1].value = "Evil.Example".into(),
                "indicators[1].value",
                "\"Evil.Example\" is not in normalized form (expected \"evil.example\")",
            ),
            (
                "unnormalized url",
                |a| a.indicators[2].value = "hxxps://evil[.]example/a".into(),
                "indicators[2].value",
                "expected \"https://evil.example/a\"",
            ),
            (
                "long value",
                |a| a.indicators[2].value = format!("https://evil.example/{}", "x".repeat(2048)),
                "indicators[2].value",
                "at most 2048",
            ),
            (
                "confidence",
                |a| a.indicators[0].confidence = 101,
                "indicators[0].confidence",
                "101 is not in 0..=100",
            ),
            (
                "long note",
                |a| a.indicators[0].note = "n".repeat(2049),
                "indicators[0].note",
                "at most 2048",
            ),
            (
                "negative expiry",
                |a| a.indicators[1].valid_until_ms = Some(-1),
                "indicators[1].valid_until_ms",
                "negative",
            ),
            (
                "duplicate indicator",
                |a| a.indicators.push(ind(K::Domain, "evil.example")),
                "indicators[3]",
                "duplicate of indicators[1]",
            ),
            (
                "withdrawn without reason",
                |a| a.withdrawn = true,
                "withdrawn_reason",
                "must say why",
            ),
            (
                "reason without withdrawal",
                |a| a.withdrawn_reason = "oops".into(),
                "withdrawn_reason",
                "must be empty unless",
            ),
            (
                "long reason",
                |a| {
                    a.withdrawn = true;
                    a.withdrawn_reason = "r".repeat(2049)
                },
                "withdrawn_reason",
                "at most 2048",
            ),
            (
                "stix not json",
                |a| a.extras = b"{not json".to_vec(),
                "extras",
                "not a JSON object",
            ),
            (
                "stix too big",
                |a| a.extras = vec![b' '; 1_048_577],
                "extras",
                "at most 1048576",
            ),
        ];
        for (name, mutate, path, msg) in cases {
            let mut a = sample();
            mutate(&mut a);
            let errs = validate_advisory(&a, &Limits::default())
                .expect_err(&format!("case {name:?} was accepted"));
            assert!(
                errs.errors()
                    .iter()
                    .any(|e| e.path == path && e.message.contains(msg)),
                "case {name:?}: expected {path}: …{msg}…, got: {errs}"
            );
        }
    }

    #[test]
    fn same_value_of_another_kind_is_not_a_duplicate() {
        let mut a = sample();
        a.indicators.push(ind(K::Filename, "evil.example"));
        assert_eq!(validate_advisory(&a, &Limits::default()), Ok(()));
    }

    #[test]
    fn indicator_paths_carry_the_index() {
        let mut a = sample();
        a.indicators = (0..20)
            .map(|n| ind(K::Ipv4, &format!("192.0.2.{n}")))
            .collect();
        a.indicators[17].value = "10.0.0.300".into();
        let err = errors_of(&a).to_string();
        assert!(err.contains("indicators[17].value"), "{err}");
        assert_eq!(
            err,
            r#"indicators[17].value: "10.0.0.300" is not an IPv4 address"#
        );
        a.indicators[17].value = "Example.COM".into();
        a.indicators[17].kind = K::Domain;
        assert_eq!(
            errors_of(&a).to_string(),
            r#"indicators[17].value: "Example.COM" is not in normalized form (expected "example.com")"#
        );
        a.indicators[17] = ind(K::Ipv4, "192.0.2.9");
        assert_fails(&a, "indicators[17]", "duplicate of indicators[9]");
    }

    #[test]
    fn every_violation_is_collected() {
        let mut a = sample();
        a.id.clear();
        a.revision = 0;
        a.indicators[0].value = "x".into();
        a.withdrawn = true;
        let errs = errors_of(&a);
        let paths: Vec<&str> = errs.errors().iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            ["id", "revision", "indicators[0].value", "withdrawn_reason"]
        );
    }

    #[test]
    fn many_errors_are_counted_not_listed() {
        let mut a = sample();
        a.indicators = (0..200).map(|n| ind(K::Md5, &format!("bad{n}"))).collect();
        let errs = errors_of(&a);
        assert_eq!(errs.errors().len(), ValidationErrors::MAX_REPORTED);
        assert!(errs.to_string().ends_with("; and 150 more"), "{errs}");
    }

    #[test]
    fn indicator_count_limit() {
        let limits = Limits::default();
        let mut a = sample();
        a.indicators = (0..limits.max_indicators as u32)
            .map(|n| {
                ind(
                    K::Ipv4,
                    &std::net::Ipv4Addr::from(0xC000_0000 + n).to_string(),
                )
            })
            .collect();
        assert_eq!(validate_advisory(&a, &limits), Ok(()));
        a.indicators.push(ind(K::Domain, "evil.example"));
        assert_fails(&a, "indicators", "50001 indicators (at most 50000)");
    }

    #[test]
    fn limits_are_configurable() {
        let limits = Limits {
            max_title_len: 5,
            ..Limits::default()
        };
        let err = validate_advisory(&sample(), &limits).unwrap_err();
        assert_eq!(err.errors()[0].path, "title");
    }

    #[test]
    fn unset_optional_times_are_fine() {
        let mut a = sample();
        a.valid_until_ms = None;
        a.indicators[0].valid_until_ms = Some(0);
        assert_eq!(validate_advisory(&a, &Limits::default()), Ok(()));
    }

    #[test]
    fn withdrawn_with_reason_is_valid() {
        let mut a = sample();
        a.withdrawn = true;
        a.withdrawn_reason = "false positive".into();
        assert_eq!(validate_advisory(&a, &Limits::default()), Ok(()));
    }

    #[test]
    fn normalize_then_validate() {
        let mut a = sample();
        a.id = "  ws-2026-0042 ".into();
        a.title = " APT40 activity\n".into();
        a.audience = vec![" to-cert".into(), "fj-cert".into(), "to-cert".into()];
        a.cves = vec!["cve-2017-0199 ".into()];
        a.actors = vec![" APT40 ".into()];
        a.references = vec![" https://attack.mitre.org/groups/G0065 ".into()];
        a.indicators = vec![
            ind(K::Domain, "Evil[.]Example."),
            ind(K::Ipv4, "192.0.2[.]1"),
            ind(K::Domain, "evil.example"),
            ind(K::Url, "hxxps://Evil.Example/a"),
            ind(K::Ipv4, "10.0.0.300"),
        ];
        a.indicators[0].note = " first ".into();
        a.indicators[2].note = "second".into();
        normalize_advisory(&mut a);
        assert_eq!(a.id, "ws-2026-0042");
        assert_eq!(a.title, "APT40 activity");
        assert_eq!(a.audience, ["fj-cert", "to-cert"]);
        assert_eq!(a.cves, ["CVE-2017-0199"]);
        assert_eq!(a.actors, ["APT40"]);
        assert_eq!(a.references, ["https://attack.mitre.org/groups/G0065"]);
        let values: Vec<(K, &str)> = a
            .indicators
            .iter()
            .map(|i| (i.kind, i.value.as_str()))
            .collect();
        assert_eq!(
            values,
            [
                (K::Domain, "evil.example"),
                (K::Ipv4, "192.0.2.1"),
                (K::Url, "https://evil.example/a"),
                (K::Ipv4, "10.0.0.300"),
            ]
        );
        // The first of the duplicates is kept (with its note).
        assert_eq!(a.indicators[0].note, "first");
        // The value that cannot be normalized is left for validation to report.
        let errs = validate_advisory(&a, &Limits::default()).unwrap_err();
        assert_eq!(
            errs.to_string(),
            r#"indicators[3].value: "10.0.0.300" is not an IPv4 address"#
        );
        a.indicators.pop();
        assert_eq!(validate_advisory(&a, &Limits::default()), Ok(()));
        // Normalizing twice changes nothing.
        let once = a.clone();
        normalize_advisory(&mut a);
        assert_eq!(a, once);
    }

    #[test]
    fn id_rules() {
        assert!(check_advisory_id("ws-2026-0042").is_ok());
        assert!(check_advisory_id("A.b_c-1").is_ok());
        assert!(check_advisory_id(&"a".repeat(128)).is_ok());
        assert!(check_advisory_id("_a").is_err());
        assert!(check_advisory_id("é").is_err());
        assert!(check_member_id("ws-cert").is_ok());
        assert!(check_member_id(&"a".repeat(63)).is_ok());
        assert!(check_member_id("ws_cert").is_err());
        assert!(check_member_id("-ws").is_err());
    }
}
