//! One stored advisory revision → STIX 2.1 objects, and objects → a bundle.
//!
//! Owns: the objects Tanoa generates (origin identity, report with the signature extension,
//! indicators, vulnerabilities, threat actors, the TLP 2.0 marking definition), their
//! deterministic ids (UUIDv5 under [`TANOA_NAMESPACE`]) and their order.
//! Must never: modify a kept object (everything in `extras.stix` is emitted exactly as stored),
//! read a clock, or put anything in the signature extension that is not the envelope's bytes.

use std::collections::{HashMap, HashSet};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::markings::{self, SIGNATURE_EXTENSION_ID};
use super::pattern;
use crate::envelope::{Envelope, PAYLOAD_TYPE};
use crate::model::{Advisory, Indicator, IndicatorKind, Severity};

/// The UUIDv5 namespace of every id Tanoa generates (fixed for good: changing it changes every
/// exported id).
pub const TANOA_NAMESPACE: Uuid = Uuid::from_u128(0x6e1c_3a52_9d0f_4b7e_8c21_5f4a_3b2d_1e0c);

/// The deterministic UUID (v5 under [`TANOA_NAMESPACE`]) of a name.
pub fn tanoa_uuid(name: &str) -> Uuid {
    Uuid::new_v5(&TANOA_NAMESPACE, name.as_bytes())
}

fn stix_id(ty: &str, name: &str) -> String {
    format!("{ty}--{}", tanoa_uuid(name))
}

/// Formats Unix milliseconds as a STIX timestamp with millisecond precision
/// (`2026-01-31T12:00:00.000Z`). Out-of-range values are clamped to the representable years.
pub fn format_timestamp(ms: i64) -> String {
    let ms = ms.clamp(0, 253_402_300_799_999);
    let secs = ms.div_euclid(1000);
    let milli = ms.rem_euclid(1000);
    let dt =
        time::OffsetDateTime::from_unix_timestamp(secs).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{milli:03}Z",
        dt.year(),
        u8::from(dt.month()),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second()
    )
}

/// The objects kept verbatim from an import (`extras.stix`), in their stored order; empty when
/// the advisory has none (or its extras are not the expected JSON, which validation prevents).
pub fn kept_objects(advisory: &Advisory) -> Vec<Value> {
    if advisory.extras.is_empty() {
        return Vec::new();
    }
    match serde_json::from_slice::<Value>(&advisory.extras) {
        Ok(Value::Object(mut m)) => match m.remove("stix") {
            Some(Value::Array(objs)) => objs,
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

/// Escapes a value for a STIX pattern string literal (`\` and `'`).
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    for c in value.chars() {
        if matches!(c, '\\' | '\'') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The STIX pattern of one of our indicators, or `None` for kinds STIX expresses otherwise
/// (`cve` becomes a `vulnerability`).
pub fn stix_pattern(kind: IndicatorKind, value: &str) -> Option<String> {
    let v = escape(value);
    let p = match kind {
        IndicatorKind::Ipv4 => format!("[ipv4-addr:value = '{v}']"),
        IndicatorKind::Ipv6 => format!("[ipv6-addr:value = '{v}']"),
        IndicatorKind::Cidr => {
            if value.contains(':') {
                format!("[ipv6-addr:value = '{v}']")
            } else {
                format!("[ipv4-addr:value = '{v}']")
            }
        }
        IndicatorKind::Domain => format!("[domain-name:value = '{v}']"),
        IndicatorKind::Url => format!("[url:value = '{v}']"),
        IndicatorKind::Email => format!("[email-addr:value = '{v}']"),
        IndicatorKind::Md5 => format!("[file:hashes.MD5 = '{v}']"),
        IndicatorKind::Sha1 => format!("[file:hashes.'SHA-1' = '{v}']"),
        IndicatorKind::Sha256 => format!("[file:hashes.'SHA-256' = '{v}']"),
        IndicatorKind::Sha512 => format!("[file:hashes.'SHA-512' = '{v}']"),
        IndicatorKind::Filename => format!("[file:name = '{v}']"),
        IndicatorKind::Asn => {
            let n: u64 = value.trim_start_matches("AS").parse().ok()?;
            format!("[autonomous-system:number = {n}]")
        }
        IndicatorKind::Cve => return None,
    };
    Some(p)
}

/// What the kept objects already say, so we do not say it twice.
#[derive(Default)]
struct Covered {
    ids: HashSet<String>,
    indicators: HashSet<(IndicatorKind, String)>,
    cves: HashSet<String>,
    actors: HashSet<String>,
}

fn covered(kept: &[Value]) -> Covered {
    let mut c = Covered::default();
    for o in kept {
        let Some(obj) = o.as_object() else { continue };
        if let Some(id) = obj.get("id").and_then(Value::as_str) {
            c.ids.insert(id.to_string());
        }
        match obj.get("type").and_then(Value::as_str) {
            Some("indicator") => {
                if let Some(p) = obj.get("pattern").and_then(Value::as_str)
                    && let Ok(m) = pattern::map_pattern(p)
                {
                    for (kind, value) in m.values {
                        c.indicators.insert((kind, value));
                    }
                }
            }
            Some("vulnerability") => {
                for cve in super::import::cves_of(obj) {
                    c.cves.insert(cve);
                }
            }
            Some("intrusion-set" | "threat-actor") => {
                for name in super::import::names_of(obj) {
                    c.actors.insert(name.to_lowercase());
                }
            }
            _ => {}
        }
    }
    c
}

/// Builds one generated object: common properties first, in a fixed order.
struct Gen<'a> {
    created_by: &'a str,
    created: &'a str,
    modified: &'a str,
    marking: &'a str,
    revoked: bool,
}

impl Gen<'_> {
    fn object(&self, ty: &str, id: &str) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("type".into(), json!(ty));
        m.insert("spec_version".into(), json!("2.1"));
        m.insert("id".into(), json!(id));
        m.insert("created_by_ref".into(), json!(self.created_by));
        m.insert("created".into(), json!(self.created));
        m.insert("modified".into(), json!(self.modified));
        if self.revoked {
            m.insert("revoked".into(), json!(true));
        }
        m
    }

    fn finish(&self, mut m: Map<String, Value>) -> Value {
        m.insert("object_marking_refs".into(), json!([self.marking]));
        Value::Object(m)
    }
}

fn indicator_object(g: &Gen<'_>, a: &Advisory, i: &Indicator, pattern: String) -> Value {
    let id = stix_id(
        "indicator",
        &format!("indicator:{}/{}/{}/{}", a.origin, a.id, i.kind, i.value),
    );
    let mut m = g.object("indicator", &id);
    m.insert("name".into(), json!(format!("{}: {}", i.kind, i.value)));
    if !i.note.is_empty() {
        m.insert("description".into(), json!(i.note));
    }
    m.insert("indicator_types".into(), json!(["malicious-activity"]));
    m.insert("pattern".into(), json!(pattern));
    m.insert("pattern_type".into(), json!("stix"));
    m.insert("pattern_version".into(), json!("2.1"));
    // valid_until must be later than valid_from: an indicator that expired before the advisory
    // was created gets valid_from just before its expiry.
    let until = i.valid_until_ms.or(a.valid_until_ms);
    let from = match until {
        Some(u) if u <= a.created_ms => u.saturating_sub(1),
        _ => a.created_ms,
    };
    m.insert("valid_from".into(), json!(format_timestamp(from)));
    if let Some(u) = until {
        m.insert("valid_until".into(), json!(format_timestamp(u)));
    }
    if i.confidence > 0 {
        m.insert("confidence".into(), json!(i.confidence));
    }
    g.finish(m)
}

/// The STIX 2.1 objects of one stored advisory revision, in a stable order with deterministic
/// ids: the origin `identity`, the TLP 2.0 `marking-definition` of the advisory's TLP, the Tanoa
/// `identity` and the signature `extension-definition`, the `report` (carrying the origin's
/// signature in the extension), one `indicator` per modelled indicator not already expressed by
/// a kept STIX indicator, a `vulnerability` per CVE and a `threat-actor` per actor not already
/// among the kept objects, then every kept object from `extras.stix` unchanged.
///
/// `envelope` must be the envelope whose payload is `advisory` (its bytes and signature are
/// recorded in the report's signature extension). A withdrawn advisory yields `revoked: true` on
/// the report and on every object generated for it.
pub fn advisory_objects(advisory: &Advisory, envelope: &Envelope) -> Vec<Value> {
    let a = advisory;
    let kept = kept_objects(a);
    let cov = covered(&kept);

    let origin_identity = stix_id("identity", &format!("identity:{}", a.origin));
    let created = format_timestamp(a.created_ms);
    let modified = format_timestamp(a.modified_ms.max(a.created_ms));
    let marking_id = markings::tlp2_id(a.tlp);
    let g = Gen {
        created_by: &origin_identity,
        created: &created,
        modified: &modified,
        marking: marking_id,
        revoked: a.withdrawn,
    };

    let mut out: Vec<Value> = Vec::with_capacity(kept.len() + a.indicators.len() + 8);
    let push_fixed = |out: &mut Vec<Value>, v: Value| {
        let id = v.get("id").and_then(Value::as_str).unwrap_or_default();
        if !cov.ids.contains(id) {
            out.push(v);
        }
    };
    push_fixed(
        &mut out,
        json!({
            "type": "identity",
            "spec_version": "2.1",
            "id": origin_identity,
            "created": markings::FIXED_CREATED,
            "modified": markings::FIXED_CREATED,
            "name": a.origin,
            "description": format!("Tanoa federation member {}", a.origin),
            "identity_class": "organization",
            "sectors": ["government-national"],
        }),
    );
    push_fixed(&mut out, markings::tlp2_marking_definition(a.tlp));
    push_fixed(&mut out, markings::tanoa_identity());
    push_fixed(&mut out, markings::signature_extension_definition());
    let report_pos = out.len();

    // Indicators we model that no kept STIX indicator expresses.
    let mut generated: Vec<Value> = Vec::new();
    let mut cves: Vec<String> = Vec::new();
    let mut seen_cves: HashSet<String> = HashSet::new();
    for c in &a.cves {
        if seen_cves.insert(c.clone()) {
            cves.push(c.clone());
        }
    }
    for i in &a.indicators {
        if i.kind == IndicatorKind::Cve {
            if seen_cves.insert(i.value.clone()) {
                cves.push(i.value.clone());
            }
            continue;
        }
        if cov.indicators.contains(&(i.kind, i.value.clone())) {
            continue;
        }
        if let Some(p) = stix_pattern(i.kind, &i.value) {
            generated.push(indicator_object(&g, a, i, p));
        }
    }
    for c in &cves {
        if cov.cves.contains(c) {
            continue;
        }
        let id = stix_id(
            "vulnerability",
            &format!("vulnerability:{}/{}/{c}", a.origin, a.id),
        );
        let mut m = g.object("vulnerability", &id);
        m.insert("name".into(), json!(c));
        m.insert(
            "external_references".into(),
            json!([{"source_name": "cve", "external_id": c}]),
        );
        generated.push(g.finish(m));
    }
    for actor in &a.actors {
        if cov.actors.contains(&actor.to_lowercase()) {
            continue;
        }
        let id = stix_id(
            "threat-actor",
            &format!("threat-actor:{}/{}/{actor}", a.origin, a.id),
        );
        let mut m = g.object("threat-actor", &id);
        m.insert("name".into(), json!(actor));
        m.insert("threat_actor_types".into(), json!(["unknown"]));
        generated.push(g.finish(m));
    }

    // The report refers to every other object of the advisory.
    let mut refs: Vec<Value> = Vec::with_capacity(out.len() + generated.len() + kept.len());
    let mut seen_refs: HashSet<&str> = HashSet::new();
    for o in out.iter().chain(generated.iter()).chain(kept.iter()) {
        if let Some(id) = o.get("id").and_then(Value::as_str)
            && seen_refs.insert(id)
        {
            refs.push(json!(id));
        }
    }
    let report = report_object(&g, a, envelope, refs);

    out.insert(report_pos, report);
    out.extend(generated);
    out.extend(kept);
    out
}

fn report_object(g: &Gen<'_>, a: &Advisory, envelope: &Envelope, refs: Vec<Value>) -> Value {
    let id = stix_id("report", &format!("report:{}/{}", a.origin, a.id));
    let mut m = g.object("report", &id);
    m.insert("name".into(), json!(a.title));
    let description = if a.withdrawn {
        format!("WITHDRAWN: {}\n\n{}", a.withdrawn_reason, a.summary)
    } else {
        a.summary.clone()
    };
    if !description.is_empty() {
        m.insert("description".into(), json!(description));
    }
    m.insert("report_types".into(), json!(["threat-report"]));
    m.insert("published".into(), json!(g.created));
    m.insert("object_refs".into(), Value::Array(refs));
    let mut labels = vec![json!(format!("tlp:{}", a.tlp.as_str().to_lowercase()))];
    if a.severity != Severity::Unknown {
        labels.push(json!(format!("severity:{}", a.severity)));
    }
    m.insert("labels".into(), Value::Array(labels));
    let mut ext_refs = vec![json!({
        "source_name": "tanoa",
        "external_id": format!("{}/{}", a.origin, a.id),
        "description": format!("Tanoa advisory {}/{} revision {}", a.origin, a.id, a.revision),
    })];
    for r in &a.references {
        ext_refs.push(json!({"source_name": "reference", "url": r}));
    }
    for c in &a.cves {
        ext_refs.push(json!({"source_name": "cve", "external_id": c}));
    }
    m.insert("external_references".into(), Value::Array(ext_refs));
    m.insert(
        "extensions".into(),
        json!({
            SIGNATURE_EXTENSION_ID: {
                "extension_type": "property-extension",
                "tanoa_item_id": envelope.item_id().to_hex(),
                "signer": a.origin,
                "key_id": envelope.key_id,
                "payload_type": PAYLOAD_TYPE,
                "payload": B64.encode(&envelope.payload),
                "signature": B64.encode(&envelope.signature),
            }
        }),
    );
    g.finish(m)
}

/// Version key of an object for de-duplication: (`id`, `modified`, or `created` when it has no
/// `modified`, as marking definitions).
fn version_key(o: &Value) -> Option<(String, String)> {
    let id = o.get("id")?.as_str()?;
    let v = o
        .get("modified")
        .or_else(|| o.get("created"))
        .and_then(Value::as_str)
        .unwrap_or("");
    Some((id.to_string(), v.to_string()))
}

/// A STIX 2.1 bundle of `objects`, keeping the first of objects with the same (`id`,
/// `modified`) and the order otherwise. The bundle id is deterministic: UUIDv5 of the ordered
/// (id, modified) list, so the same objects always give the same bundle.
pub fn bundle(objects: Vec<Value>) -> Value {
    let mut seen: HashMap<(String, String), ()> = HashMap::with_capacity(objects.len());
    let mut kept = Vec::with_capacity(objects.len());
    let mut name = String::from("bundle:");
    for o in objects {
        match version_key(&o) {
            Some(k) => {
                if seen.contains_key(&k) {
                    continue;
                }
                name.push_str(&k.0);
                name.push('@');
                name.push_str(&k.1);
                name.push('\n');
                seen.insert(k, ());
            }
            None => name.push_str("?\n"),
        }
        kept.push(o);
    }
    let mut m = Map::new();
    m.insert("type".into(), json!("bundle"));
    m.insert("id".into(), json!(stix_id("bundle", &name)));
    m.insert("objects".into(), Value::Array(kept));
    Value::Object(m)
}
