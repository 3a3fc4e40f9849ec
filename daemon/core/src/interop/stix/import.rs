//! A STIX 2.0/2.1 bundle (or single object) → advisory drafts.
//!
//! Steps: parse once (order and number text preserved), upgrade 2.0 objects, check every
//! object (nothing is imported when anything is wrong), decide the TLP, derive the modelled
//! fields, and cut the bundle into parts when one advisory cannot hold it.
//!
//! Owns: the mapping rules of `docs/interop.md` ("STIX 2.1 → advisory") and the split rule.
//! Must never: publish, read a clock, or alter a kept object (each is stored as parsed).

use std::collections::{HashMap, HashSet};

use prost::Message as _;
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};

use super::check::{self, parse_timestamp_ms, q};
use super::markings::{TlpVersion, tlp_of_marking};
use super::pattern;
use super::upgrade::upgrade_to_21;
use super::{Problems, StixError};
use crate::model::validate::check_advisory_id;
use crate::model::{
    Draft, Indicator, IndicatorKind, Limits, Severity, Tlp, normalize_indicator, wire,
};

/// What the operator adds to the material.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// TLP when the bundle carries no TLP marking; a more restrictive marking in the bundle
    /// wins, and a more restrictive `tlp` raises the bundle's.
    pub tlp: Option<Tlp>,
    /// Audience member ids (required for AMBER, AMBER+STRICT and RED).
    pub audience: Vec<String>,
    /// Advisory id (parts get `-p1`, `-p2`, …); default `stix-<12 hex>`: the first 12 hex
    /// digits of the first report's uuid, else of SHA-256 over the bundle id and the sorted
    /// object ids.
    pub id: Option<String>,
    /// Limits an advisory must fit in (the daemon's defaults unless told otherwise).
    pub limits: Limits,
}

/// Where the TLP came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlpSource {
    /// The most restrictive TLP marking referenced in the bundle.
    Marking {
        /// The marking-definition id.
        id: String,
        /// TLP 1.0 or 2.0.
        version: TlpVersion,
    },
    /// `--tlp` (the bundle has no TLP marking, or a less restrictive one).
    Option,
}

impl std::fmt::Display for TlpSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TlpSource::Marking { id, version } => write!(
                f,
                "the bundle's TLP {} marking {id}",
                match version {
                    TlpVersion::V1 => "1.0",
                    TlpVersion::V2 => "2.0",
                }
            ),
            TlpSource::Option => f.write_str("--tlp"),
        }
    }
}

/// One advisory of an import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartSummary {
    /// Advisory id.
    pub id: String,
    /// STIX objects it keeps (its own and the copies of what they reference).
    pub objects: usize,
    /// Indicator values it indexes.
    pub indicators: usize,
    /// Size of its `extras` in bytes.
    pub extras_bytes: usize,
}

/// A STIX indicator that gave nothing to index, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotIndexed {
    /// Indicator id.
    pub id: String,
    /// Why (first reason).
    pub reason: String,
}

/// A note about one STIX object of an import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectNote {
    /// Object id.
    pub id: String,
    /// What was noted.
    pub detail: String,
}

/// What an import found and made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportSummary {
    /// Bundle id (or the single object's id).
    pub bundle_id: String,
    /// Objects in the bundle.
    pub objects: usize,
    /// Objects upgraded from STIX 2.0.
    pub upgraded: usize,
    /// `indicator` objects.
    pub stix_indicators: usize,
    /// Indicators whose pattern gave every comparison to index.
    pub indexed: usize,
    /// Indicators that gave some values and kept other comparisons only verbatim.
    pub partly_indexed: usize,
    /// Indicators that gave nothing to index (kept verbatim only).
    pub not_indexed: usize,
    /// The first of those (at most 20), with the reason.
    pub not_indexed_examples: Vec<NotIndexed>,
    /// Indicator values indexed (after de-duplication).
    pub values: usize,
    /// Actor names (intrusion sets, threat actors, aliases).
    pub actors: usize,
    /// CVE ids.
    pub cves: usize,
    /// The advisories' TLP.
    pub tlp: Tlp,
    /// Where it came from.
    pub tlp_source: TlpSource,
    /// Title of the (first) advisory.
    pub title: String,
    /// The advisories made, in order.
    pub parts: Vec<PartSummary>,
    /// Values indexed under another kind than their pattern path says (an IP address in a
    /// `domain-name:value` comparison is indexed as an address), per indicator object.
    pub reclassified: Vec<ObjectNote>,
    /// Objects stix2-validator would reject (kept verbatim and exported as they are), with why
    /// (`check::validator_findings`).
    pub validator_warnings: Vec<ObjectNote>,
}

/// The drafts of an import and what was found.
#[derive(Debug, Clone)]
pub struct Imported {
    /// One draft per advisory (one, or the parts of a split bundle).
    pub drafts: Vec<Draft>,
    /// Counts for the operator.
    pub summary: ImportSummary,
}

/// Converts a STIX 2.0/2.1 bundle (or a single STIX object) into advisory drafts: one, or
/// `<id>-p1..pN` when one advisory cannot hold it. Every object is kept verbatim in
/// `extras.stix`. See `docs/interop.md` for the rules.
pub fn import_bundle(bytes: &[u8], opts: &ImportOptions) -> Result<Vec<Draft>, StixError> {
    import_bundle_report(bytes, opts).map(|i| i.drafts)
}

/// [`import_bundle`] with the summary of what was found.
pub fn import_bundle_report(bytes: &[u8], opts: &ImportOptions) -> Result<Imported, StixError> {
    let mut doc: Value = serde_json::from_slice(bytes).map_err(|e| StixError::Json {
        detail: e.to_string(),
    })?;
    let Some(root) = doc.as_object() else {
        return Err(StixError::NotStix {
            detail: format!("the top level is {}, not a JSON object", kind_of(&doc)),
        });
    };
    let root_id = root.get("id").and_then(Value::as_str).map(str::to_string);
    let has_objects = root.get("objects").is_some_and(Value::is_array);
    let root_type = root.get("type").and_then(Value::as_str).map(str::to_string);
    let is_bundle = root_type.as_deref() == Some("bundle")
        || (root_type.is_none()
            && has_objects
            && root_id
                .as_deref()
                .is_some_and(|i| i.starts_with("bundle--")));
    if !is_bundle && (root_id.is_none() || root_type.is_none()) {
        return Err(StixError::NotStix {
            detail: "a STIX document is a bundle ({\"type\": \"bundle\", \"id\", \"objects\"}) \
                     or one object with \"type\" and \"id\""
                .to_string(),
        });
    }
    let upgraded = upgrade_to_21(&mut doc);

    let mut problems = Problems::default();
    let (bundle_id, objects): (String, Vec<Value>) = if is_bundle {
        let Value::Object(mut root) = doc else {
            return Err(StixError::NotStix {
                detail: "the top level is not an object".into(),
            });
        };
        let id = root_id.unwrap_or_else(|| "bundle".to_string());
        match root.get("type") {
            None => problems.push(
                &id,
                "type: missing; a bundle must have \"type\": \"bundle\"",
            ),
            Some(Value::String(t)) if t == "bundle" => {}
            Some(v) => problems.push(&id, format!("type: {} is not \"bundle\"", q(v))),
        }
        match check::check_identifier(&id) {
            Err(m) => problems.push(&id, format!("id: {m}")),
            Ok(()) if !id.starts_with("bundle--") => {
                problems.push(&id, "id: a bundle id must start with \"bundle--\"")
            }
            Ok(()) => {}
        }
        let objects = match root.remove("objects") {
            Some(Value::Array(objs)) => objs,
            Some(v) => {
                problems.push(&id, format!("objects: {} is not a list", q(&v)));
                Vec::new()
            }
            None => {
                problems.push(&id, "objects: missing");
                Vec::new()
            }
        };
        if objects.is_empty() && problems.is_empty() {
            problems.push(&id, "objects: the bundle holds no object");
        }
        (id, objects)
    } else {
        (root_id.unwrap_or_default(), vec![doc])
    };
    for (n, o) in objects.iter().enumerate() {
        check::check_object(o, &format!("objects[{n}]"), &mut problems);
    }
    problems.into_result()?;

    Importer::new(bundle_id, objects, upgraded, opts)?.run()
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Names of an intrusion set or threat actor: `name`, then `aliases`.
pub(crate) fn names_of(obj: &Map<String, Value>) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(n) = obj.get("name").and_then(Value::as_str) {
        out.push(n.trim().to_string());
    }
    if let Some(a) = obj.get("aliases").and_then(Value::as_array) {
        out.extend(
            a.iter()
                .filter_map(Value::as_str)
                .map(|s| s.trim().to_string()),
        );
    }
    out.retain(|s| !s.is_empty());
    out
}

/// CVE ids of a vulnerability: its `name` when it is one, and `external_references` whose
/// `source_name` is "cve".
pub(crate) fn cves_of(obj: &Map<String, Value>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut add = |s: &str| {
        if let Ok(c) = normalize_indicator(IndicatorKind::Cve, s)
            && !out.contains(&c)
        {
            out.push(c);
        }
    };
    if let Some(n) = obj.get("name").and_then(Value::as_str) {
        add(n);
    }
    if let Some(refs) = obj.get("external_references").and_then(Value::as_array) {
        for r in refs {
            if r.get("source_name")
                .and_then(Value::as_str)
                .is_some_and(|s| s.eq_ignore_ascii_case("cve"))
                && let Some(e) = r.get("external_id").and_then(Value::as_str)
            {
                add(e);
            }
        }
    }
    out
}

/// Every id an object references: top-level `*_ref`, `*_refs`, and granular `marking_ref`.
fn refs_of(obj: &Map<String, Value>) -> Vec<&str> {
    let mut out = Vec::new();
    for (k, v) in obj {
        if k.ends_with("_ref") {
            if let Some(s) = v.as_str() {
                out.push(s);
            }
        } else if k.ends_with("_refs") {
            if let Some(a) = v.as_array() {
                out.extend(a.iter().filter_map(Value::as_str));
            }
        } else if k == "granular_markings"
            && let Some(a) = v.as_array()
        {
            out.extend(
                a.iter()
                    .filter_map(|g| g.get("marking_ref").and_then(Value::as_str)),
            );
        }
    }
    out
}

/// Marking ids an object applies (object and granular).
fn markings_of(obj: &Map<String, Value>) -> impl Iterator<Item = &str> {
    let object = obj
        .get("object_marking_refs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str);
    let granular = obj
        .get("granular_markings")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|g| g.get("marking_ref").and_then(Value::as_str));
    object.chain(granular)
}

/// What one STIX indicator gives.
#[derive(Debug, Default)]
struct IndicatorYield {
    values: Vec<Indicator>,
    skipped: Vec<String>,
    reclassified: Vec<String>,
}

/// Objects with this many references or more are containers: they are not followed when a part
/// copies what its objects reference.
const CONTAINER_REFS: usize = 64;

/// A part of the bundle: the objects it owns (indexes) and the copies it carries.
#[derive(Debug, Default)]
struct Part {
    /// Indexes into `Importer::objects`, in bundle order.
    members: Vec<usize>,
    member_set: HashSet<usize>,
    owned: Vec<usize>,
    indicators: usize,
    extras_bytes: usize,
    indicator_bytes: usize,
}

struct Importer<'a> {
    bundle_id: String,
    objects: Vec<Value>,
    /// Compact JSON of each object (what goes into extras).
    json: Vec<Vec<u8>>,
    yields: Vec<Option<IndicatorYield>>,
    index: HashMap<String, usize>,
    upgraded: usize,
    opts: &'a ImportOptions,
    tlp: Tlp,
    tlp_source: TlpSource,
}

impl<'a> Importer<'a> {
    fn new(
        bundle_id: String,
        objects: Vec<Value>,
        upgraded: usize,
        opts: &'a ImportOptions,
    ) -> Result<Self, StixError> {
        // TLP: the most restrictive marking referenced anywhere.
        let mut found: Option<(Tlp, String, TlpVersion)> = None;
        for o in &objects {
            let Some(obj) = o.as_object() else { continue };
            for m in markings_of(obj) {
                if let Some((t, v)) = tlp_of_marking(m)
                    && found.as_ref().is_none_or(|(best, _, _)| t > *best)
                {
                    found = Some((t, m.to_string(), v));
                }
            }
        }
        let (tlp, tlp_source) = match (found, opts.tlp) {
            (Some((t, id, version)), Some(o)) if o > t => {
                let _ = (id, version);
                (o, TlpSource::Option)
            }
            (Some((t, id, version)), _) => (t, TlpSource::Marking { id, version }),
            (None, Some(o)) => (o, TlpSource::Option),
            (None, None) => {
                return Err(StixError::NoTlp {
                    bundle: bundle_id.clone(),
                });
            }
        };
        if tlp.needs_audience() && opts.audience.is_empty() {
            return Err(StixError::Options(format!(
                "{bundle_id}: the advisory would be TLP:{tlp} ({tlp_source}), which needs an \
                 audience: pass --audience MEMBER,…"
            )));
        }
        if !tlp.needs_audience() && !opts.audience.is_empty() {
            return Err(StixError::Options(format!(
                "{bundle_id}: the advisory is TLP:{tlp} ({tlp_source}): every member may hold \
                 it, so --audience must not be given"
            )));
        }
        let mut index = HashMap::with_capacity(objects.len());
        let mut json = Vec::with_capacity(objects.len());
        let mut yields = Vec::with_capacity(objects.len());
        for (n, o) in objects.iter().enumerate() {
            if let Some(id) = o.get("id").and_then(Value::as_str) {
                index.entry(id.to_string()).or_insert(n);
            }
            json.push(serde_json::to_vec(o).unwrap_or_default());
            yields.push(indicator_yield(o));
        }
        Ok(Self {
            bundle_id,
            objects,
            json,
            yields,
            index,
            upgraded,
            opts,
            tlp,
            tlp_source,
        })
    }

    fn base_id(&self) -> Result<String, StixError> {
        if let Some(id) = &self.opts.id {
            check_advisory_id(id).map_err(|m| StixError::Options(format!("--id: {m}")))?;
            return Ok(id.clone());
        }
        // A report is a persistent STIX object: its uuid names the advisory, so a later version
        // of the same report becomes the next revision. Bundle ids are not persistent (and are
        // reused, e.g. by two OASIS examples), so without a report the id is a digest of the
        // bundle id and the sorted ids of its objects.
        let report = self
            .objects
            .iter()
            .find(|o| o.get("type").and_then(Value::as_str) == Some("report"))
            .and_then(|o| o.get("id").and_then(Value::as_str));
        let hex: String = match report {
            Some(id) => id
                .split_once("--")
                .map_or(id, |(_, u)| u)
                .chars()
                .filter(char::is_ascii_hexdigit)
                .take(12)
                .collect::<String>()
                .to_ascii_lowercase(),
            None => {
                let mut ids: Vec<&str> = self
                    .objects
                    .iter()
                    .filter_map(|o| o.get("id").and_then(Value::as_str))
                    .collect();
                ids.sort_unstable();
                let mut h = Sha256::new();
                h.update(self.bundle_id.as_bytes());
                for id in ids {
                    h.update(b"\n");
                    h.update(id.as_bytes());
                }
                hex::encode(&h.finalize()[..6])
            }
        };
        Ok(format!("stix-{hex}"))
    }

    fn run(self) -> Result<Imported, StixError> {
        let base = self.base_id()?;
        let fixed = self.fixed_fields();
        let fixed_len = wire::draft_to_proto(&fixed).encoded_len() + 512; // origin, id, revision, times, part suffix
        let limits = &self.opts.limits;
        let payload_budget = limits.max_payload_bytes.saturating_sub(fixed_len);
        let extras_budget = limits.max_extras_bytes.min(payload_budget);

        let parts = if self.fits_one(extras_budget, payload_budget) {
            let all: Vec<usize> = (0..self.objects.len()).collect();
            vec![Part {
                member_set: all.iter().copied().collect(),
                members: all.clone(),
                owned: all,
                ..Part::default()
            }]
        } else {
            self.split(extras_budget, payload_budget)?
        };
        let n_parts = parts.len();
        let mut drafts = Vec::with_capacity(n_parts);
        let mut part_summaries = Vec::with_capacity(n_parts);
        let mut values_total = 0;
        for (k, part) in parts.iter().enumerate() {
            let id = if n_parts == 1 {
                base.clone()
            } else {
                format!("{base}-p{}", k + 1)
            };
            check_advisory_id(&id).map_err(|m| StixError::Options(format!("advisory id: {m}")))?;
            let draft = self.draft(&id, part, k, n_parts, &base, &fixed);
            values_total += draft.indicators.len();
            part_summaries.push(PartSummary {
                id,
                objects: part.members.len(),
                indicators: draft.indicators.len(),
                extras_bytes: draft.extras.len(),
            });
            drafts.push(draft);
        }
        let mut summary = self.summary(&fixed);
        summary.values = values_total;
        summary.parts = part_summaries;
        if let Some(d) = drafts.first() {
            summary.title = d.title.clone();
        }
        Ok(Imported { drafts, summary })
    }

    /// Title, summary, actors, CVEs and references of the whole bundle (every part shares the
    /// TLP and audience; the rest is per part).
    fn fixed_fields(&self) -> Draft {
        let limits = &self.opts.limits;
        let report = self
            .objects
            .iter()
            .find(|o| o.get("type").and_then(Value::as_str) == Some("report"));
        let named = |ty: &str| {
            self.objects
                .iter()
                .find(|o| o.get("type").and_then(Value::as_str) == Some(ty))
                .and_then(|o| o.get("name").and_then(Value::as_str))
                .map(str::to_string)
        };
        let title = report
            .and_then(|r| r.get("name").and_then(Value::as_str))
            .map(str::to_string)
            .or_else(|| named("intrusion-set"))
            .or_else(|| named("threat-actor"))
            .or_else(|| named("campaign"))
            .filter(|t| !t.trim().is_empty())
            .unwrap_or_else(|| {
                if self.bundle_id.starts_with("bundle--") {
                    format!("STIX bundle {}", self.bundle_id)
                } else {
                    format!("STIX object {}", self.bundle_id)
                }
            });
        let title = clean_line(&title, limits.max_title_len.saturating_sub(24));
        let description = report
            .and_then(|r| r.get("description").and_then(Value::as_str))
            .unwrap_or("")
            .to_string();
        let mut references = Vec::new();
        if let Some(refs) = report
            .and_then(|r| r.get("external_references"))
            .and_then(Value::as_array)
        {
            for r in refs {
                if let Some(u) = r.get("url").and_then(Value::as_str)
                    && u.len() <= limits.max_string_len
                    && url::Url::parse(u)
                        .is_ok_and(|x| matches!(x.scheme(), "http" | "https") && x.has_host())
                    && !references.iter().any(|x: &String| x == u)
                    && references.len() < limits.max_list_len
                {
                    references.push(u.to_string());
                }
            }
        }
        Draft {
            id: None,
            tlp: self.tlp,
            audience: self.opts.audience.clone(),
            title,
            summary: description,
            severity: Severity::Unknown,
            actors: Vec::new(),
            cves: Vec::new(),
            indicators: Vec::new(),
            references,
            valid_until_ms: None,
            extras: Vec::new(),
        }
    }

    fn fits_one(&self, extras_budget: usize, payload_budget: usize) -> bool {
        let extras: usize = self.json.iter().map(|j| j.len() + 1).sum::<usize>() + 16;
        let mut seen = HashSet::new();
        let mut count = 0usize;
        let mut ind_bytes = 0usize;
        for y in self.yields.iter().flatten() {
            for i in &y.values {
                if seen.insert((i.kind, i.value.as_str())) {
                    count += 1;
                    ind_bytes += wire::indicator_to_proto(i).encoded_len() + 4;
                }
            }
        }
        extras <= extras_budget
            && count <= self.opts.limits.max_indicators
            && extras + ind_bytes + self.meta_bytes(0..self.objects.len()) <= payload_budget
    }

    /// Upper bound of the bytes actors and CVEs of these objects add.
    fn meta_bytes(&self, range: impl Iterator<Item = usize>) -> usize {
        range.map(|n| self.meta_bytes_of(n)).sum()
    }

    fn meta_bytes_of(&self, n: usize) -> usize {
        let Some(obj) = self.objects[n].as_object() else {
            return 0;
        };
        match obj.get("type").and_then(Value::as_str) {
            Some("intrusion-set" | "threat-actor") => {
                names_of(obj).iter().map(|s| s.len() + 4).sum()
            }
            Some("vulnerability") => cves_of(obj).iter().map(|s| s.len() + 4).sum(),
            _ => 0,
        }
    }

    /// Cuts the bundle into parts, in bundle order: each object goes to the current part with
    /// copies of the objects it references (unless it is a container, see `CONTAINER_REFS`);
    /// a new part starts when the next object would not fit.
    fn split(&self, extras_budget: usize, payload_budget: usize) -> Result<Vec<Part>, StixError> {
        let limits = &self.opts.limits;
        let mut parts: Vec<Part> = Vec::new();
        let mut cur = Part::default();
        let mut cur_values: HashSet<(IndicatorKind, String)> = HashSet::new();
        for n in 0..self.objects.len() {
            // What this object brings: itself and what it references (not yet in the part).
            let obj = self.objects[n].as_object();
            let refs: Vec<usize> = match obj {
                Some(o) => {
                    let r = refs_of(o);
                    if r.len() >= CONTAINER_REFS {
                        Vec::new()
                    } else {
                        r.iter()
                            .filter_map(|id| self.index.get(*id).copied())
                            .collect()
                    }
                }
                None => Vec::new(),
            };
            let cost = |part: &Part, values: &HashSet<(IndicatorKind, String)>| {
                let mut extras = 0usize;
                let mut meta = 0usize;
                let mut add = vec![n];
                add.extend(refs.iter().copied().filter(|r| *r != n));
                let mut uniq = HashSet::new();
                for m in add {
                    if !part.member_set.contains(&m) && uniq.insert(m) {
                        extras += self.json[m].len() + 1;
                        meta += self.meta_bytes_of(m);
                    }
                }
                let mut count = 0usize;
                let mut bytes = 0usize;
                if let Some(y) = &self.yields[n] {
                    for i in &y.values {
                        if !values.contains(&(i.kind, i.value.clone())) {
                            count += 1;
                            bytes += wire::indicator_to_proto(i).encoded_len() + 4;
                        }
                    }
                }
                (extras, meta, count, bytes)
            };
            let fits = |part: &Part, c: (usize, usize, usize, usize)| {
                let extras = part.extras_bytes + c.0 + 16;
                extras <= extras_budget
                    && part.indicators + c.2 <= limits.max_indicators
                    && extras + c.1 + part.indicator_bytes + c.3 <= payload_budget
            };
            let mut c = cost(&cur, &cur_values);
            if !fits(&cur, c) && !cur.owned.is_empty() {
                parts.push(std::mem::take(&mut cur));
                cur_values.clear();
                c = cost(&cur, &cur_values);
            }
            if !fits(&cur, c) {
                let id = obj
                    .and_then(|o| o.get("id"))
                    .and_then(Value::as_str)
                    .unwrap_or("an object");
                return Err(StixError::TooLarge(format!(
                    "{id}: with the objects it references it needs {} bytes of extras and {} \
                     indicators, more than one advisory may hold ({} bytes of extras, {} \
                     indicators, {} bytes of payload)",
                    c.0,
                    c.2,
                    limits.max_extras_bytes,
                    limits.max_indicators,
                    limits.max_payload_bytes
                )));
            }
            let mut add = refs.clone();
            add.push(n);
            for m in add {
                if cur.member_set.insert(m) {
                    cur.members.push(m);
                }
            }
            cur.owned.push(n);
            cur.extras_bytes += c.0;
            cur.indicators += c.2;
            cur.indicator_bytes += c.3 + c.1;
            if let Some(y) = &self.yields[n] {
                for i in &y.values {
                    cur_values.insert((i.kind, i.value.clone()));
                }
            }
        }
        if !cur.owned.is_empty() {
            parts.push(cur);
        }
        for p in &mut parts {
            p.members.sort_unstable();
        }
        Ok(parts)
    }

    fn draft(
        &self,
        id: &str,
        part: &Part,
        k: usize,
        n_parts: usize,
        base: &str,
        fixed: &Draft,
    ) -> Draft {
        let limits = &self.opts.limits;
        let mut d = fixed.clone();
        d.id = Some(id.to_string());
        // Actors and CVEs from every object the part carries.
        let mut actor_seen: HashSet<String> = HashSet::new();
        let mut cve_seen: HashSet<String> = HashSet::new();
        for &m in &part.members {
            let Some(obj) = self.objects[m].as_object() else {
                continue;
            };
            match obj.get("type").and_then(Value::as_str) {
                Some("intrusion-set" | "threat-actor") => {
                    for name in names_of(obj) {
                        let name = clean_line(&name, limits.max_string_len);
                        if d.actors.len() < limits.max_list_len
                            && actor_seen.insert(name.to_lowercase())
                        {
                            d.actors.push(name);
                        }
                    }
                }
                Some("vulnerability") => {
                    for c in cves_of(obj) {
                        if d.cves.len() < limits.max_list_len && cve_seen.insert(c.clone()) {
                            d.cves.push(c);
                        }
                    }
                }
                _ => {}
            }
        }
        // Indicators from the objects the part owns.
        let mut seen: HashSet<(IndicatorKind, String)> = HashSet::new();
        for &m in &part.owned {
            if let Some(y) = &self.yields[m] {
                for i in &y.values {
                    if seen.insert((i.kind, i.value.clone())) {
                        d.indicators.push(i.clone());
                    }
                }
            }
        }
        // Extras: the objects, as parsed, in bundle order.
        let mut extras = Vec::with_capacity(part.extras_bytes + 16);
        extras.extend_from_slice(b"{\"stix\":[");
        for (j, &m) in part.members.iter().enumerate() {
            if j > 0 {
                extras.push(b',');
            }
            extras.extend_from_slice(&self.json[m]);
        }
        extras.extend_from_slice(b"]}");
        d.extras = extras;

        if n_parts > 1 {
            d.title = format!("{} (part {} of {n_parts})", d.title, k + 1);
        }
        let note = self.import_note(part, k, n_parts, base);
        let room = limits.max_summary_len.saturating_sub(note.len() + 2);
        let clean: String = d
            .summary
            .chars()
            .map(|c| {
                if c.is_control() && !matches!(c, '\n' | '\r' | '\t') {
                    ' '
                } else {
                    c
                }
            })
            .collect();
        let mut body = truncate_chars(&clean, room);
        if !body.is_empty() {
            body.push_str("\n\n");
        }
        body.push_str(&note);
        d.summary = body;
        d
    }

    /// The line that says where an advisory came from and what was not indexed.
    fn import_note(&self, part: &Part, k: usize, n_parts: usize, base: &str) -> String {
        let mut stix = 0usize;
        let mut not_indexed = 0usize;
        for &m in &part.owned {
            if let Some(y) = &self.yields[m] {
                stix += 1;
                if y.values.is_empty() {
                    not_indexed += 1;
                }
            }
        }
        let mut s = format!(
            "Imported from STIX bundle {} ({} objects kept verbatim",
            self.bundle_id,
            part.members.len()
        );
        if n_parts > 1 {
            s.push_str(&format!(
                "; part {} of {n_parts}: {base}-p1 … {base}-p{n_parts}",
                k + 1
            ));
        }
        s.push_str(&format!("). {stix} STIX indicators"));
        if not_indexed > 0 {
            s.push_str(&format!(
                ", {not_indexed} not indexed (their patterns use comparisons Tanoa does not \
                 index; kept verbatim)"
            ));
        }
        s.push('.');
        s
    }

    fn summary(&self, fixed: &Draft) -> ImportSummary {
        let mut s = ImportSummary {
            bundle_id: self.bundle_id.clone(),
            objects: self.objects.len(),
            upgraded: self.upgraded,
            stix_indicators: 0,
            indexed: 0,
            partly_indexed: 0,
            not_indexed: 0,
            not_indexed_examples: Vec::new(),
            values: 0,
            actors: 0,
            cves: 0,
            tlp: self.tlp,
            tlp_source: self.tlp_source.clone(),
            title: fixed.title.clone(),
            parts: Vec::new(),
            reclassified: Vec::new(),
            validator_warnings: Vec::new(),
        };
        let mut actors = HashSet::new();
        let mut cves = HashSet::new();
        for (n, o) in self.objects.iter().enumerate() {
            let Some(obj) = o.as_object() else { continue };
            match obj.get("type").and_then(Value::as_str) {
                Some("intrusion-set" | "threat-actor") => {
                    actors.extend(names_of(obj).into_iter().map(|a| a.to_lowercase()));
                }
                Some("vulnerability") => cves.extend(cves_of(obj)),
                _ => {}
            }
            let oid = obj.get("id").and_then(Value::as_str).unwrap_or("");
            for detail in check::validator_findings(o) {
                s.validator_warnings.push(ObjectNote {
                    id: oid.to_string(),
                    detail,
                });
            }
            if let Some(y) = &self.yields[n] {
                for detail in &y.reclassified {
                    s.reclassified.push(ObjectNote {
                        id: oid.to_string(),
                        detail: detail.clone(),
                    });
                }
                s.stix_indicators += 1;
                match (y.values.is_empty(), y.skipped.is_empty()) {
                    (true, _) => {
                        s.not_indexed += 1;
                        if s.not_indexed_examples.len() < 20 {
                            s.not_indexed_examples.push(NotIndexed {
                                id: obj
                                    .get("id")
                                    .and_then(Value::as_str)
                                    .unwrap_or("")
                                    .to_string(),
                                reason: y
                                    .skipped
                                    .first()
                                    .cloned()
                                    .unwrap_or_else(|| "nothing to index".into()),
                            });
                        }
                    }
                    (false, true) => s.indexed += 1,
                    (false, false) => s.partly_indexed += 1,
                }
            }
        }
        s.actors = actors.len();
        s.cves = cves.len();
        s
    }
}

/// What a STIX indicator object gives (`None` for other objects).
fn indicator_yield(o: &Value) -> Option<IndicatorYield> {
    let obj = o.as_object()?;
    if obj.get("type").and_then(Value::as_str) != Some("indicator") {
        return None;
    }
    let id = obj.get("id").and_then(Value::as_str).unwrap_or("");
    let mut y = IndicatorYield::default();
    if obj.get("revoked").and_then(Value::as_bool) == Some(true) {
        y.skipped.push("revoked".into());
        return Some(y);
    }
    let pattern_type = obj
        .get("pattern_type")
        .and_then(Value::as_str)
        .unwrap_or("");
    if pattern_type != "stix" {
        y.skipped.push(format!(
            "pattern_type {pattern_type:?} is not indexed (only \"stix\")"
        ));
        return Some(y);
    }
    let Some(p) = obj.get("pattern").and_then(Value::as_str) else {
        y.skipped.push("no pattern".into());
        return Some(y);
    };
    let confidence = obj
        .get("confidence")
        .and_then(Value::as_u64)
        .filter(|c| *c <= 100)
        .and_then(|c| u8::try_from(c).ok())
        .unwrap_or(0);
    let valid_until_ms = obj
        .get("valid_until")
        .and_then(Value::as_str)
        .and_then(parse_timestamp_ms)
        .filter(|ms| *ms > 0);
    match pattern::map_pattern(p) {
        Ok(m) => {
            for (kind, value) in m.values {
                y.values.push(Indicator {
                    kind,
                    value,
                    confidence,
                    valid_until_ms,
                    note: format!("STIX {id}"),
                });
            }
            y.skipped = m.skipped;
            y.reclassified = m.reclassified;
        }
        Err(e) => y.skipped.push(e.to_string()),
    }
    Some(y)
}

/// One line of text without control characters, at most `max` bytes.
fn clean_line(s: &str, max: usize) -> String {
    let line: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    truncate_chars(line.trim(), max)
}

/// `s` cut to at most `max` bytes at a character boundary (with "…" when cut).
fn truncate_chars(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max.saturating_sub(3);
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}
