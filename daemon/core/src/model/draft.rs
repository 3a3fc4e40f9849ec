//! The advisory file an operator writes for `tanoa publish FILE` (JSON or TOML), and the
//! conversion of a publish draft into an `Advisory`.
//!
//! Owns: the domain [`Draft`] (what an operator or an importer supplies; protobuf's
//! `AdvisoryDraft` is converted to and from it only in `model::wire`), the documented file
//! format (`docs/advisory-format.md`), its parsing with errors that name the file and line, the
//! mapping of names (TLP, severity, indicator kinds, RFC 3339 times) to a `Draft`, and
//! `draft_to_advisory` for the daemon's publish path.
//! Must never: normalize or validate beyond name mapping (the daemon runs `normalize_advisory`
//! and `validate_advisory`, so the CLI and the daemon cannot disagree), read anything but the
//! one file it is given, or invent origin/revision/times (the daemon assigns them).

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::validate::{ValidationError, ValidationErrors};
use super::{Advisory, Indicator, IndicatorKind, Severity, Tlp};

/// An advisory as an operator (or an importer) supplies it for publishing: everything but what
/// the daemon assigns (origin, revision, times). Values are as written; the daemon normalizes
/// and validates them (`normalize_advisory`, `validate_advisory`). Mirrors protobuf's
/// `AdvisoryDraft` field for field (`model::wire::draft_to_proto` / `draft_from_proto`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draft {
    /// Advisory id; `None` (or blank) = the daemon generates one. Reusing an id of ours
    /// publishes its next revision.
    pub id: Option<String>,
    /// TLP label.
    pub tlp: Tlp,
    /// Audience member ids (required for AMBER, AMBER+STRICT, RED).
    pub audience: Vec<String>,
    /// One-line title.
    pub title: String,
    /// Body text.
    pub summary: String,
    /// Severity (`Unknown` = not stated).
    pub severity: Severity,
    /// Threat actor names and aliases.
    pub actors: Vec<String>,
    /// CVE ids.
    pub cves: Vec<String>,
    /// Indicators, values as written (possibly defanged; normalized by the daemon).
    pub indicators: Vec<Indicator>,
    /// Reference URLs.
    pub references: Vec<String>,
    /// Unix ms expiry of the whole advisory; `None` = none.
    pub valid_until_ms: Option<i64>,
    /// Opaque source material (JSON), e.g. the STIX objects or the MISP event.
    pub extras: Vec<u8>,
}

/// Syntax of an advisory file, chosen by its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    /// `.json`
    Json,
    /// `.toml`
    Toml,
}

impl FileFormat {
    /// The format of `path` by its extension (`.json` or `.toml`, any case); `None` otherwise.
    pub fn from_path(path: &Path) -> Option<FileFormat> {
        let ext = path.extension()?.to_str()?;
        if ext.eq_ignore_ascii_case("json") {
            Some(FileFormat::Json)
        } else if ext.eq_ignore_ascii_case("toml") {
            Some(FileFormat::Toml)
        } else {
            None
        }
    }
}

impl fmt::Display for FileFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FileFormat::Json => "JSON",
            FileFormat::Toml => "TOML",
        })
    }
}

/// Why an advisory file could not be read or converted. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum DraftError {
    /// The file could not be read.
    #[error("cannot read advisory file {}: {source}", file.display())]
    Io {
        /// The file.
        file: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The extension is neither `.json` nor `.toml`.
    #[error(
        "{}: unknown advisory file format; name the file *.json or *.toml (see docs/advisory-format.md)",
        file.display()
    )]
    UnknownFormat {
        /// The file.
        file: PathBuf,
    },
    /// The file is not valid JSON/TOML or does not fit the format (unknown field, wrong type…).
    #[error("{file}:{line}:{column}: {message}")]
    Syntax {
        /// The file name as given.
        file: String,
        /// Format of the file.
        format: FileFormat,
        /// 1-based line of the problem (0 if unknown).
        line: usize,
        /// 1-based column of the problem (0 if unknown).
        column: usize,
        /// What is wrong (names the field, e.g. "unknown field `severty`, expected one of …").
        message: String,
    },
    /// The file parsed but a value is not acceptable; each error names its field path.
    #[error("{file}: {errors}")]
    Invalid {
        /// The file name as given.
        file: String,
        /// The field errors (e.g. `indicators[3].kind: unknown indicator kind "ipv5" …`).
        errors: ValidationErrors,
    },
}

/// One indicator as written in an advisory file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndicatorEntry {
    /// Kind name: ipv4, ipv6, cidr, domain, url, email, md5, sha1, sha256, sha512, cve,
    /// filename, asn (case-insensitive).
    pub kind: String,
    /// The value; may be defanged (`evil[.]example`, `hxxps://…`); the daemon normalizes it.
    pub value: String,
    /// Confidence 0..=100; absent = not stated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<u32>,
    /// Expiry of this indicator, RFC 3339 (e.g. `2027-06-30T00:00:00Z`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<String>,
    /// Analyst note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// An advisory file (`tanoa publish FILE`): the operator-written part of an advisory.
/// Field-by-field documentation: `docs/advisory-format.md`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdvisoryFile {
    /// Advisory id; absent = the daemon generates one. Reusing an id of ours publishes its
    /// next revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// TLP label: CLEAR, GREEN, AMBER, AMBER+STRICT or RED, optionally prefixed `TLP:`.
    pub tlp: String,
    /// Member ids allowed to hold the advisory (required for AMBER, AMBER+STRICT, RED; must be
    /// empty for CLEAR and GREEN).
    #[serde(default)]
    pub audience: Vec<String>,
    /// One-line title.
    pub title: String,
    /// Body text (plain text or Markdown).
    #[serde(default)]
    pub summary: String,
    /// Severity: info, low, medium, high, critical (absent = unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    /// Threat actor names and aliases.
    #[serde(default)]
    pub actors: Vec<String>,
    /// CVE ids.
    #[serde(default)]
    pub cves: Vec<String>,
    /// Indicators of compromise.
    #[serde(default)]
    pub indicators: Vec<IndicatorEntry>,
    /// Reference URLs (absolute http/https).
    #[serde(default)]
    pub references: Vec<String>,
    /// Expiry of the whole advisory, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<String>,
}

/// Parses an advisory file; the format comes from the extension (`.json`/`.toml`). The caller
/// supplies the reading (`read`, e.g. `std::fs::read_to_string`): the core never opens a file.
pub fn parse_advisory_file(
    path: &Path,
    read: impl FnOnce(&Path) -> std::io::Result<String>,
) -> Result<AdvisoryFile, DraftError> {
    let format = FileFormat::from_path(path).ok_or_else(|| DraftError::UnknownFormat {
        file: path.to_path_buf(),
    })?;
    let text = read(path).map_err(|source| DraftError::Io {
        file: path.to_path_buf(),
        source,
    })?;
    parse_advisory_str(&text, format, &path.display().to_string())
}

/// Parses an advisory file (read by `read`, see [`parse_advisory_file`]) and converts it to a
/// publish draft, naming the file in every error.
pub fn read_draft(
    path: &Path,
    read: impl FnOnce(&Path) -> std::io::Result<String>,
) -> Result<Draft, DraftError> {
    let file = parse_advisory_file(path, read)?;
    file.to_draft().map_err(|errors| DraftError::Invalid {
        file: path.display().to_string(),
        errors,
    })
}

/// 1-based (line, column) of byte offset `pos` in `text`.
fn line_col(text: &str, pos: usize) -> (usize, usize) {
    let pos = pos.min(text.len());
    let before = text.get(..pos).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// Parses the text of an advisory file; `origin_name` (the file name) is used in errors.
pub fn parse_advisory_str(
    text: &str,
    format: FileFormat,
    origin_name: &str,
) -> Result<AdvisoryFile, DraftError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    match format {
        FileFormat::Json => serde_json::from_str(text).map_err(|e| {
            let full = e.to_string();
            let suffix = format!(" at line {} column {}", e.line(), e.column());
            let message = full.strip_suffix(&suffix).unwrap_or(&full).to_string();
            DraftError::Syntax {
                file: origin_name.to_string(),
                format,
                line: e.line(),
                column: e.column(),
                message,
            }
        }),
        FileFormat::Toml => toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map_or((0, 0), |s| line_col(text, s.start));
            DraftError::Syntax {
                file: origin_name.to_string(),
                format,
                line,
                column,
                message: e.message().trim_end().to_string(),
            }
        }),
    }
}

/// Unix milliseconds of an RFC 3339 time, or a message quoting it.
fn rfc3339_ms(s: &str) -> Result<i64, String> {
    let t = OffsetDateTime::parse(s.trim(), &Rfc3339)
        .map_err(|_| format!("{s:?} is not an RFC 3339 date-time (e.g. 2027-06-30T00:00:00Z)"))?;
    let ms = i64::try_from(t.unix_timestamp_nanos() / 1_000_000)
        .map_err(|_| format!("{s:?} is out of range"))?;
    if ms <= 0 {
        return Err(format!("{s:?} is not after 1970-01-01T00:00:00Z"));
    }
    Ok(ms)
}

impl AdvisoryFile {
    /// Maps names to the domain enums and times to Unix ms, collecting every error with its
    /// field path (`tlp`, `severity`, `valid_until`, `indicators[3].kind`, …). Values are passed
    /// as written: the daemon normalizes and validates them.
    pub fn to_draft(&self) -> Result<Draft, ValidationErrors> {
        let mut errs = ValidationErrors::default();
        let tlp = match Tlp::parse(&self.tlp) {
            Some(t) => t,
            None => {
                errs.push(ValidationError::new(
                    "tlp",
                    format!(
                        "unknown TLP label {:?} (accepted: CLEAR, GREEN, AMBER, AMBER+STRICT, RED, optionally prefixed TLP:)",
                        self.tlp
                    ),
                ));
                Tlp::Clear
            }
        };
        let severity = match self.severity.as_deref().map(Severity::parse) {
            None => Severity::Unknown,
            Some(Some(s)) => s,
            Some(None) => {
                errs.push(ValidationError::new(
                    "severity",
                    format!(
                        "unknown severity {:?} (accepted: info, low, medium, high, critical)",
                        self.severity.as_deref().unwrap_or_default()
                    ),
                ));
                Severity::Unknown
            }
        };
        let valid_until_ms = match self.valid_until.as_deref().map(rfc3339_ms) {
            None => None,
            Some(Ok(ms)) => Some(ms),
            Some(Err(m)) => {
                errs.push(ValidationError::new("valid_until", m));
                None
            }
        };
        let mut indicators = Vec::with_capacity(self.indicators.len());
        for (n, i) in self.indicators.iter().enumerate() {
            let kind = match IndicatorKind::parse(&i.kind) {
                Some(k) => Some(k),
                None => {
                    errs.push(ValidationError::new(
                        format!("indicators[{n}].kind"),
                        format!(
                            "unknown indicator kind {:?} (accepted: {})",
                            i.kind,
                            IndicatorKind::names()
                        ),
                    ));
                    None
                }
            };
            let confidence = i.confidence.unwrap_or(0);
            if confidence > 100 {
                errs.push(ValidationError::new(
                    format!("indicators[{n}].confidence"),
                    format!("{confidence} is not in 0..=100"),
                ));
            }
            let valid_until_ms = match i.valid_until.as_deref().map(rfc3339_ms) {
                None => None,
                Some(Ok(ms)) => Some(ms),
                Some(Err(m)) => {
                    errs.push(ValidationError::new(
                        format!("indicators[{n}].valid_until"),
                        m,
                    ));
                    None
                }
            };
            if let (Some(kind), Ok(confidence)) = (kind, u8::try_from(confidence)) {
                indicators.push(Indicator {
                    kind,
                    value: i.value.clone(),
                    confidence,
                    valid_until_ms,
                    note: i.note.clone().unwrap_or_default(),
                });
            }
        }
        errs.into_result()?;
        Ok(Draft {
            id: self.id.clone(),
            tlp,
            audience: self.audience.clone(),
            title: self.title.clone(),
            summary: self.summary.clone(),
            severity,
            actors: self.actors.clone(),
            cves: self.cves.clone(),
            indicators,
            references: self.references.clone(),
            valid_until_ms,
            extras: Vec::new(),
        })
    }
}

/// Builds the advisory the daemon will sign from an operator's draft and the values the daemon
/// assigns (origin, id, revision, times). Reports a negative expiry with its field path (the
/// enum values of a protobuf draft are checked by `wire::draft_from_proto`); the caller then
/// runs `normalize_advisory` and `validate_advisory`.
pub fn draft_to_advisory(
    draft: &Draft,
    origin: &str,
    id: &str,
    revision: u64,
    created_ms: i64,
    modified_ms: i64,
) -> Result<Advisory, ValidationErrors> {
    if let Some(ms) = draft.valid_until_ms.filter(|ms| *ms < 0) {
        return Err(ValidationErrors::one(ValidationError::new(
            "valid_until_ms",
            format!("{ms} is negative"),
        )));
    }
    Ok(Advisory {
        id: id.to_string(),
        origin: origin.to_string(),
        revision,
        created_ms,
        modified_ms,
        valid_until_ms: draft.valid_until_ms.filter(|ms| *ms != 0),
        tlp: draft.tlp,
        audience: draft.audience.clone(),
        title: draft.title.clone(),
        summary: draft.summary.clone(),
        severity: draft.severity,
        actors: draft.actors.clone(),
        cves: draft.cves.clone(),
        indicators: draft.indicators.clone(),
        references: draft.references.clone(),
        withdrawn: false,
        withdrawn_reason: String::new(),
        extras: draft.extras.clone(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::model::wire;
    use crate::model::{Limits, normalize_advisory, validate_advisory};
    use tanoa_proto::v1 as pb;

    fn parse_advisory_file(path: &Path) -> Result<AdvisoryFile, DraftError> {
        super::parse_advisory_file(path, |p| std::fs::read_to_string(p))
    }

    fn read_draft(path: &Path) -> Result<Draft, DraftError> {
        super::read_draft(path, |p| std::fs::read_to_string(p))
    }

    fn example(ext: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join("examples")
            .join(format!("apt40-advisory.{ext}"))
    }

    const MINIMAL_TOML: &str = r#"
tlp = "green"
title = "Test"

[[indicators]]
kind = "IPv4"
value = "192.0.2[.]1"
"#;

    #[test]
    fn examples_parse_convert_normalize_and_validate() {
        let toml = parse_advisory_file(&example("toml")).unwrap();
        let json = parse_advisory_file(&example("json")).unwrap();
        assert_eq!(toml, json, "the JSON and TOML examples must say the same");

        let draft = read_draft(&example("toml")).unwrap();
        assert_eq!(draft.tlp, Tlp::Green);
        assert_eq!(draft.severity, Severity::High);
        let id = toml.id.clone().unwrap();
        let mut a = draft_to_advisory(
            &draft,
            "ws-cert",
            &id,
            1,
            1_770_000_000_000,
            1_770_000_000_000,
        )
        .unwrap();
        normalize_advisory(&mut a);
        validate_advisory(&a, &Limits::default()).unwrap();

        assert_eq!(a.tlp, Tlp::Green);
        assert!(a.audience.is_empty());
        assert_eq!(a.actors[0], "APT40");
        assert_eq!(a.cves, ["CVE-2017-0199", "CVE-2017-8759", "CVE-2017-11882"]);
        // Several kinds are covered, and defanged values were refanged.
        for kind in [
            IndicatorKind::Ipv4,
            IndicatorKind::Ipv6,
            IndicatorKind::Cidr,
            IndicatorKind::Domain,
            IndicatorKind::Url,
            IndicatorKind::Email,
            IndicatorKind::Sha256,
            IndicatorKind::Filename,
            IndicatorKind::Asn,
        ] {
            assert!(
                a.indicators.iter().any(|i| i.kind == kind),
                "no {kind} indicator"
            );
        }
        let values: Vec<&str> = a.indicators.iter().map(|i| i.value.as_str()).collect();
        assert!(values.contains(&"203.0.113.45"));
        assert!(values.contains(&"2001:db8:4000::25"));
        assert!(values.contains(&"https://login.blue-pacific-portal.example/owa/auth.aspx"));
        assert!(values.contains(&"it-helpdesk@blue-pacific-portal.example"));
        assert!(values.contains(&"AS64500"));
        assert!(a.indicators[0].valid_until_ms.is_some());
    }

    #[test]
    fn example_uses_documentation_values_only() {
        let a = parse_advisory_file(&example("toml")).unwrap();
        for i in &a.indicators {
            let kind = IndicatorKind::parse(&i.kind).unwrap();
            let v = crate::model::normalize_indicator(kind, &i.value).unwrap();
            let ok = match kind {
                IndicatorKind::Ipv4 | IndicatorKind::Cidr => {
                    ["192.0.2.", "198.51.100.", "203.0.113."]
                        .iter()
                        .any(|p| v.starts_with(p))
                }
                IndicatorKind::Ipv6 => v.starts_with("2001:db8:"),
                IndicatorKind::Domain | IndicatorKind::Url | IndicatorKind::Email => v
                    .split('/')
                    .nth(if kind == IndicatorKind::Url { 2 } else { 0 })
                    .unwrap()
                    .ends_with(".example"),
                IndicatorKind::Asn => (64496..=64511).contains(&v[2..].parse::<u32>().unwrap()),
                _ => true,
            };
            assert!(ok, "{kind} {v} is not a documentation value");
        }
    }

    #[test]
    fn minimal_file_and_name_case() {
        let f = parse_advisory_str(MINIMAL_TOML, FileFormat::Toml, "m.toml").unwrap();
        // What the CLI sends for it.
        let d = wire::draft_to_proto(&f.to_draft().unwrap());
        assert_eq!(d.tlp, pb::Tlp::Green as i32);
        assert_eq!(d.id, "");
        assert_eq!(d.severity, pb::Severity::Unspecified as i32);
        assert_eq!(d.indicators[0].kind, pb::IndicatorKind::Ipv4 as i32);
        assert_eq!(d.indicators[0].confidence, 0);
        assert_eq!(d.valid_until_ms, 0);
    }

    #[test]
    fn tlp_names() {
        for (name, want) in [
            ("CLEAR", pb::Tlp::Clear),
            ("TLP:GREEN", pb::Tlp::Green),
            ("amber", pb::Tlp::Amber),
            ("AMBER+STRICT", pb::Tlp::AmberStrict),
            ("TLP:RED", pb::Tlp::Red),
        ] {
            let f = AdvisoryFile {
                tlp: name.to_string(),
                ..parse_advisory_str(MINIMAL_TOML, FileFormat::Toml, "m.toml").unwrap()
            };
            assert_eq!(
                f.to_draft().unwrap().tlp,
                wire::tlp_from_proto(want as i32).unwrap(),
                "{name}"
            );
        }
    }

    #[test]
    fn unknown_field_is_named_with_its_line() {
        let text = "tlp = \"GREEN\"\ntitle = \"t\"\nseverty = \"high\"\n";
        let err = parse_advisory_str(text, FileFormat::Toml, "adv.toml").unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("adv.toml:3:"), "{msg}");
        assert!(msg.contains("severty"), "{msg}");

        let text = "{\n  \"tlp\": \"GREEN\",\n  \"title\": \"t\",\n  \"indicators\": [{\"kind\": \"ipv4\", \"value\": \"192.0.2.1\", \"confdence\": 5}]\n}";
        let err = parse_advisory_str(text, FileFormat::Json, "adv.json").unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("adv.json:4:"), "{msg}");
        assert!(msg.contains("unknown field `confdence`"), "{msg}");
        assert!(!msg.contains("at line"), "position given twice: {msg}");
    }

    #[test]
    fn syntax_errors_carry_the_position() {
        let err = parse_advisory_str("tlp = \"GREEN\"\ntitle = \n", FileFormat::Toml, "a.toml")
            .unwrap_err();
        match &err {
            DraftError::Syntax { file, line, .. } => {
                assert_eq!(file, "a.toml");
                assert_eq!(*line, 2);
            }
            other => panic!("unexpected {other:?}"),
        }
        let err = parse_advisory_str(
            "{\"tlp\": \"GREEN\",\n\"title\": 5}",
            FileFormat::Json,
            "a.json",
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("a.json:2:"), "{msg}");
        assert!(msg.contains("invalid type"), "{msg}");
        let err = parse_advisory_str("{\"title\": \"t\"}", FileFormat::Json, "a.json").unwrap_err();
        assert!(err.to_string().contains("missing field `tlp`"), "{err}");
    }

    #[test]
    fn unknown_names_are_reported_with_their_field_path() {
        let text = r#"{
            "tlp": "ORANGE", "title": "t", "severity": "dire", "valid_until": "tomorrow",
            "indicators": [
                {"kind": "ipv4", "value": "192.0.2.1"},
                {"kind": "ipv5", "value": "192.0.2.2"},
                {"kind": "domain", "value": "a.example", "confidence": 101,
                 "valid_until": "2027-02-30T00:00:00Z"}
            ]
        }"#;
        let f = parse_advisory_str(text, FileFormat::Json, "a.json").unwrap();
        let errs = f.to_draft().unwrap_err();
        let paths: Vec<&str> = errs.errors().iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "tlp",
                "severity",
                "valid_until",
                "indicators[1].kind",
                "indicators[2].confidence",
                "indicators[2].valid_until"
            ]
        );
        let msg = errs.to_string();
        assert!(
            msg.contains(r#"indicators[1].kind: unknown indicator kind "ipv5" (accepted: ipv4, ipv6, cidr, domain, url, email, md5, sha1, sha256, sha512, cve, filename, asn)"#),
            "{msg}"
        );
        assert!(msg.contains("AMBER+STRICT"), "{msg}");
    }

    #[test]
    fn rfc3339_times_are_converted() {
        assert_eq!(rfc3339_ms("2027-06-30T00:00:00Z"), Ok(1_814_313_600_000));
        assert_eq!(
            rfc3339_ms("2027-06-30T10:00:00+10:00"),
            Ok(1_814_313_600_000)
        );
        assert!(rfc3339_ms("2027-06-30").is_err());
        assert!(rfc3339_ms("1969-12-31T00:00:00Z").is_err());
    }

    #[test]
    fn file_format_comes_from_the_extension() {
        assert_eq!(
            FileFormat::from_path(Path::new("a.JSON")),
            Some(FileFormat::Json)
        );
        assert_eq!(
            FileFormat::from_path(Path::new("dir/a.toml")),
            Some(FileFormat::Toml)
        );
        let err = parse_advisory_file(Path::new("advisory.yaml")).unwrap_err();
        assert!(matches!(err, DraftError::UnknownFormat { .. }));
        assert!(err.to_string().contains("advisory.yaml"), "{err}");
        let err = parse_advisory_file(Path::new("/nonexistent/advisory.toml")).unwrap_err();
        assert!(matches!(err, DraftError::Io { .. }));
        assert!(
            err.to_string().contains("/nonexistent/advisory.toml"),
            "{err}"
        );
    }

    #[test]
    fn invalid_file_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "tlp = \"purple\"\ntitle = \"t\"\n").unwrap();
        let err = read_draft(&path).unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with(&path.display().to_string()), "{msg}");
        assert!(msg.contains("tlp: unknown TLP label \"purple\""), "{msg}");
    }

    #[test]
    fn draft_to_advisory_maps_every_field() {
        let draft = pb::AdvisoryDraft {
            id: String::new(),
            tlp: pb::Tlp::Amber as i32,
            audience: vec!["fj-cert".into()],
            title: "t".into(),
            summary: "s".into(),
            severity: pb::Severity::Critical as i32,
            actors: vec!["APT40".into()],
            cves: vec!["CVE-2017-0199".into()],
            indicators: vec![pb::Indicator {
                kind: pb::IndicatorKind::Sha1 as i32,
                value: "da39a3ee5e6b4b0d3255bfef95601890afd80709".into(),
                confidence: 7,
                valid_until_ms: 5,
                note: "n".into(),
            }],
            references: vec!["https://a.example/".into()],
            valid_until_ms: 1_900_000_000_000,
            extras: b"{}".to_vec(),
        };
        let domain = wire::draft_from_proto(draft.clone()).unwrap();
        assert_eq!(
            wire::draft_to_proto(&domain),
            draft,
            "the conversion loses nothing"
        );
        let a = draft_to_advisory(&domain, "ws-cert", "ws-2026-1", 3, 10, 20).unwrap();
        assert_eq!(
            (a.origin.as_str(), a.id.as_str(), a.revision),
            ("ws-cert", "ws-2026-1", 3)
        );
        assert_eq!((a.created_ms, a.modified_ms), (10, 20));
        assert_eq!(a.valid_until_ms, Some(1_900_000_000_000));
        assert_eq!(a.tlp, Tlp::Amber);
        assert_eq!(a.severity, Severity::Critical);
        assert_eq!(a.indicators[0].kind, IndicatorKind::Sha1);
        assert_eq!(a.indicators[0].confidence, 7);
        assert_eq!(a.indicators[0].valid_until_ms, Some(5));
        assert_eq!(a.extras, b"{}");
        assert!(!a.withdrawn);

        let bad = pb::AdvisoryDraft {
            tlp: 0,
            indicators: vec![pb::Indicator {
                kind: 99,
                confidence: 300,
                ..Default::default()
            }],
            ..draft
        };
        // A protobuf draft's enum and range errors are reported by its conversion.
        let errs = wire::draft_from_proto(bad).unwrap_err();
        let msg = errs.to_string();
        assert!(msg.contains("tlp: unknown or missing TLP label"), "{msg}");
        assert!(msg.contains("indicators[0].kind"), "{msg}");
    }
}
