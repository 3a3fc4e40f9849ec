//! The signed payload format: `Advisory` <-> protobuf `tanoa.v1.Advisory` bytes, and the
//! publish draft: `Draft` <-> protobuf `tanoa.v1.AdvisoryDraft`.
//!
//! Owns: encoding an advisory for signing and decoding verified payload bytes; the one
//! conversion of each direction between a domain `Draft` and protobuf's `AdvisoryDraft` (the
//! CLI sends with `draft_to_proto`, the daemon's `api::convert` receives with
//! `draft_from_proto`).
//! Must never: be used to re-encode a payload for verification (encoding is not canonical;
//! signatures are always checked over the bytes as received).

use prost::Message;
use tanoa_proto::v1 as pb;

use super::draft::Draft;
use super::validate::{ValidationError, ValidationErrors};
use super::{Advisory, Indicator, IndicatorKind, Severity, Tlp};

/// Encodes an advisory as the payload bytes that get signed.
pub fn encode_payload(a: &Advisory) -> Vec<u8> {
    advisory_to_proto(a).encode_to_vec()
}

/// Decodes payload bytes into an advisory. Rejects unknown enum values and missing labels,
/// naming the field. Does not run the full validation (see `validate_advisory`).
pub fn decode_payload(bytes: &[u8]) -> Result<Advisory, ValidationErrors> {
    let p = pb::Advisory::decode(bytes).map_err(|e| {
        ValidationErrors::one(ValidationError::new(
            "payload",
            format!("not a tanoa.v1.Advisory: {e}"),
        ))
    })?;
    advisory_from_proto(p)
}

/// Converts a domain TLP to its protobuf value.
pub fn tlp_to_proto(t: Tlp) -> pb::Tlp {
    match t {
        Tlp::Clear => pb::Tlp::Clear,
        Tlp::Green => pb::Tlp::Green,
        Tlp::Amber => pb::Tlp::Amber,
        Tlp::AmberStrict => pb::Tlp::AmberStrict,
        Tlp::Red => pb::Tlp::Red,
    }
}

/// Converts a protobuf TLP value; `None` for unspecified or unknown values.
pub fn tlp_from_proto(v: i32) -> Option<Tlp> {
    match pb::Tlp::try_from(v).ok()? {
        pb::Tlp::Unspecified => None,
        pb::Tlp::Clear => Some(Tlp::Clear),
        pb::Tlp::Green => Some(Tlp::Green),
        pb::Tlp::Amber => Some(Tlp::Amber),
        pb::Tlp::AmberStrict => Some(Tlp::AmberStrict),
        pb::Tlp::Red => Some(Tlp::Red),
    }
}

/// Converts a domain severity to protobuf.
pub fn severity_to_proto(s: Severity) -> pb::Severity {
    match s {
        Severity::Unknown => pb::Severity::Unspecified,
        Severity::Info => pb::Severity::Info,
        Severity::Low => pb::Severity::Low,
        Severity::Medium => pb::Severity::Medium,
        Severity::High => pb::Severity::High,
        Severity::Critical => pb::Severity::Critical,
    }
}

/// Converts a protobuf severity; `None` for unknown values.
pub fn severity_from_proto(v: i32) -> Option<Severity> {
    Some(match pb::Severity::try_from(v).ok()? {
        pb::Severity::Unspecified => Severity::Unknown,
        pb::Severity::Info => Severity::Info,
        pb::Severity::Low => Severity::Low,
        pb::Severity::Medium => Severity::Medium,
        pb::Severity::High => Severity::High,
        pb::Severity::Critical => Severity::Critical,
    })
}

/// Converts a domain indicator kind to protobuf.
pub fn kind_to_proto(k: IndicatorKind) -> pb::IndicatorKind {
    match k {
        IndicatorKind::Ipv4 => pb::IndicatorKind::Ipv4,
        IndicatorKind::Ipv6 => pb::IndicatorKind::Ipv6,
        IndicatorKind::Cidr => pb::IndicatorKind::Cidr,
        IndicatorKind::Domain => pb::IndicatorKind::Domain,
        IndicatorKind::Url => pb::IndicatorKind::Url,
        IndicatorKind::Email => pb::IndicatorKind::Email,
        IndicatorKind::Md5 => pb::IndicatorKind::Md5,
        IndicatorKind::Sha1 => pb::IndicatorKind::Sha1,
        IndicatorKind::Sha256 => pb::IndicatorKind::Sha256,
        IndicatorKind::Sha512 => pb::IndicatorKind::Sha512,
        IndicatorKind::Cve => pb::IndicatorKind::Cve,
        IndicatorKind::Filename => pb::IndicatorKind::Filename,
        IndicatorKind::Asn => pb::IndicatorKind::Asn,
    }
}

/// Converts a protobuf indicator kind; `None` for unspecified or unknown values.
pub fn kind_from_proto(v: i32) -> Option<IndicatorKind> {
    Some(match pb::IndicatorKind::try_from(v).ok()? {
        pb::IndicatorKind::Unspecified => return None,
        pb::IndicatorKind::Ipv4 => IndicatorKind::Ipv4,
        pb::IndicatorKind::Ipv6 => IndicatorKind::Ipv6,
        pb::IndicatorKind::Cidr => IndicatorKind::Cidr,
        pb::IndicatorKind::Domain => IndicatorKind::Domain,
        pb::IndicatorKind::Url => IndicatorKind::Url,
        pb::IndicatorKind::Email => IndicatorKind::Email,
        pb::IndicatorKind::Md5 => IndicatorKind::Md5,
        pb::IndicatorKind::Sha1 => IndicatorKind::Sha1,
        pb::IndicatorKind::Sha256 => IndicatorKind::Sha256,
        pb::IndicatorKind::Sha512 => IndicatorKind::Sha512,
        pb::IndicatorKind::Cve => IndicatorKind::Cve,
        pb::IndicatorKind::Filename => IndicatorKind::Filename,
        pb::IndicatorKind::Asn => IndicatorKind::Asn,
    })
}

fn opt_ms(v: i64) -> Option<i64> {
    (v != 0).then_some(v)
}

/// Converts a domain indicator to protobuf.
pub fn indicator_to_proto(i: &Indicator) -> pb::Indicator {
    pb::Indicator {
        kind: kind_to_proto(i.kind) as i32,
        value: i.value.clone(),
        confidence: u32::from(i.confidence),
        valid_until_ms: i.valid_until_ms.unwrap_or(0),
        note: i.note.clone(),
    }
}

/// Converts a protobuf indicator, naming `path` (e.g. `indicators[3]`) in errors.
pub fn indicator_from_proto(i: pb::Indicator, path: &str) -> Result<Indicator, ValidationError> {
    let kind = kind_from_proto(i.kind).ok_or_else(|| {
        ValidationError::new(
            format!("{path}.kind"),
            format!("unknown or missing indicator kind ({})", i.kind),
        )
    })?;
    let confidence = u8::try_from(i.confidence)
        .ok()
        .filter(|c| *c <= 100)
        .ok_or_else(|| {
            ValidationError::new(
                format!("{path}.confidence"),
                format!("{} is not in 0..=100", i.confidence),
            )
        })?;
    Ok(Indicator {
        kind,
        value: i.value,
        confidence,
        valid_until_ms: opt_ms(i.valid_until_ms),
        note: i.note,
    })
}

/// Converts a domain advisory to protobuf.
pub fn advisory_to_proto(a: &Advisory) -> pb::Advisory {
    pb::Advisory {
        id: a.id.clone(),
        origin: a.origin.clone(),
        revision: a.revision,
        created_ms: a.created_ms,
        modified_ms: a.modified_ms,
        valid_until_ms: a.valid_until_ms.unwrap_or(0),
        tlp: tlp_to_proto(a.tlp) as i32,
        audience: a.audience.clone(),
        title: a.title.clone(),
        summary: a.summary.clone(),
        severity: severity_to_proto(a.severity) as i32,
        actors: a.actors.clone(),
        cves: a.cves.clone(),
        indicators: a.indicators.iter().map(indicator_to_proto).collect(),
        references: a.references.clone(),
        withdrawn: a.withdrawn,
        withdrawn_reason: a.withdrawn_reason.clone(),
        extras: a.extras.clone(),
    }
}

/// Converts a protobuf advisory, collecting every enum/range error with its field path.
pub fn advisory_from_proto(p: pb::Advisory) -> Result<Advisory, ValidationErrors> {
    let mut errs = ValidationErrors::default();
    let tlp = tlp_from_proto(p.tlp);
    if tlp.is_none() {
        errs.push(ValidationError::new(
            "tlp",
            format!("unknown or missing TLP label ({})", p.tlp),
        ));
    }
    let severity = severity_from_proto(p.severity);
    if severity.is_none() {
        errs.push(ValidationError::new(
            "severity",
            format!("unknown severity ({})", p.severity),
        ));
    }
    let mut indicators = Vec::with_capacity(p.indicators.len());
    for (n, i) in p.indicators.into_iter().enumerate() {
        match indicator_from_proto(i, &format!("indicators[{n}]")) {
            Ok(i) => indicators.push(i),
            Err(e) => errs.push(e),
        }
    }
    match (tlp, severity) {
        (Some(tlp), Some(severity)) if errs.is_empty() => Ok(Advisory {
            id: p.id,
            origin: p.origin,
            revision: p.revision,
            created_ms: p.created_ms,
            modified_ms: p.modified_ms,
            valid_until_ms: opt_ms(p.valid_until_ms),
            tlp,
            audience: p.audience,
            title: p.title,
            summary: p.summary,
            severity,
            actors: p.actors,
            cves: p.cves,
            indicators,
            references: p.references,
            withdrawn: p.withdrawn,
            withdrawn_reason: p.withdrawn_reason,
            extras: p.extras,
        }),
        _ => Err(errs),
    }
}

/// Converts a domain draft to protobuf (what the CLI sends). `None` id = empty, `None` times =
/// 0; nothing is lost: `draft_from_proto(draft_to_proto(d))` gives `d` back (a blank id and
/// zero times read back as `None`).
pub fn draft_to_proto(d: &Draft) -> pb::AdvisoryDraft {
    pb::AdvisoryDraft {
        id: d.id.clone().unwrap_or_default(),
        tlp: tlp_to_proto(d.tlp) as i32,
        audience: d.audience.clone(),
        title: d.title.clone(),
        summary: d.summary.clone(),
        severity: severity_to_proto(d.severity) as i32,
        actors: d.actors.clone(),
        cves: d.cves.clone(),
        indicators: d.indicators.iter().map(indicator_to_proto).collect(),
        references: d.references.clone(),
        valid_until_ms: d.valid_until_ms.unwrap_or(0),
        extras: d.extras.clone(),
    }
}

/// Converts a protobuf draft (what an operator sent), collecting every enum/range error with
/// its field path (`tlp`, `severity`, `valid_until_ms`, `indicators[2].kind`, …). An empty id
/// and a zero expiry become `None`.
pub fn draft_from_proto(p: pb::AdvisoryDraft) -> Result<Draft, ValidationErrors> {
    let mut errs = ValidationErrors::default();
    let tlp = tlp_from_proto(p.tlp);
    if tlp.is_none() {
        errs.push(ValidationError::new(
            "tlp",
            format!(
                "unknown or missing TLP label ({}); one of CLEAR, GREEN, AMBER, AMBER+STRICT, RED is required",
                p.tlp
            ),
        ));
    }
    let severity = severity_from_proto(p.severity);
    if severity.is_none() {
        errs.push(ValidationError::new(
            "severity",
            format!("unknown severity ({})", p.severity),
        ));
    }
    if p.valid_until_ms < 0 {
        errs.push(ValidationError::new(
            "valid_until_ms",
            format!("{} is negative", p.valid_until_ms),
        ));
    }
    let mut indicators = Vec::with_capacity(p.indicators.len());
    for (n, i) in p.indicators.into_iter().enumerate() {
        match indicator_from_proto(i, &format!("indicators[{n}]")) {
            Ok(i) => indicators.push(i),
            Err(e) => errs.push(e),
        }
    }
    match (tlp, severity) {
        (Some(tlp), Some(severity)) if errs.is_empty() => Ok(Draft {
            id: (!p.id.is_empty()).then_some(p.id),
            tlp,
            audience: p.audience,
            title: p.title,
            summary: p.summary,
            severity,
            actors: p.actors,
            cves: p.cves,
            indicators,
            references: p.references,
            valid_until_ms: opt_ms(p.valid_until_ms),
            extras: p.extras,
        }),
        _ => Err(errs),
    }
}
