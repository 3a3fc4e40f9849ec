//! Advisories -> a MISP feed directory (`<uuid>.json` per event, `manifest.json`,
//! `hashes.csv`), in the format of PyMISP's feed generator (`MISPEvent.to_feed`,
//! `pymisp.tools.feed.feed_meta_generator`), which MISP reads when a feed is added.

use std::collections::BTreeMap;

use md5::{Digest as _, Md5};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::{MispError, TagTlp, is_uuid, tag_entry_name, tag_tlp, tlp_colour, tlp_tag};
use crate::model::{Advisory, IndicatorKind, Severity};

/// The tag an export puts on the event of a withdrawn advisory (`--include-withdrawn`).
pub const WITHDRAWN_TAG: &str = "tanoa:withdrawn";

/// One event of the feed.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedEvent {
    /// The event uuid (the file is `<uuid>.json`).
    pub uuid: String,
    /// The event object (without the `{"Event": …}` wrapper).
    pub event: Map<String, Value>,
    /// `origin/advisory-id` of the advisory it comes from.
    pub advisory: String,
    /// True when the event is the one kept at import (`extras.misp`).
    pub from_misp: bool,
    /// True for a withdrawn advisory.
    pub withdrawn: bool,
    /// The advisory's `modified_ms` (chooses between two advisories exporting one uuid).
    pub modified_ms: i64,
}

/// The uuid of the event a native advisory becomes: UUID v5 in the URL namespace of
/// `tanoa://advisory/<origin>/<id>` (stable across revisions).
pub fn advisory_event_uuid(origin: &str, id: &str) -> Uuid {
    Uuid::new_v5(
        &Uuid::NAMESPACE_URL,
        format!("tanoa://advisory/{origin}/{id}").as_bytes(),
    )
}

/// The uuid of the MISP organisation of a member: UUID v5 of `tanoa://member/<id>`.
pub fn member_org_uuid(member: &str) -> Uuid {
    Uuid::new_v5(
        &Uuid::NAMESPACE_URL,
        format!("tanoa://member/{member}").as_bytes(),
    )
}

fn secs(ms: i64) -> i64 {
    ms.div_euclid(1000)
}

/// `YYYY-MM-DD` (UTC) of a Unix ms time.
fn date_of(ms: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(secs(ms)) {
        Ok(t) => format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day()),
        Err(_) => "1970-01-01".to_string(),
    }
}

/// MISP `threat_level_id` of a severity: 1 high, 2 medium, 3 low, 4 undefined.
fn threat_level(s: Severity) -> &'static str {
    match s {
        Severity::Critical | Severity::High => "1",
        Severity::Medium => "2",
        Severity::Low | Severity::Info => "3",
        Severity::Unknown => "4",
    }
}

/// MISP type and category of an indicator kind.
fn misp_type(k: IndicatorKind) -> (&'static str, &'static str) {
    use IndicatorKind as K;
    match k {
        K::Ipv4 | K::Ipv6 | K::Cidr => ("ip-dst", "Network activity"),
        K::Domain => ("domain", "Network activity"),
        K::Url => ("url", "Network activity"),
        K::Email => ("email-src", "Payload delivery"),
        K::Md5 => ("md5", "Payload delivery"),
        K::Sha1 => ("sha1", "Payload delivery"),
        K::Sha256 => ("sha256", "Payload delivery"),
        K::Sha512 => ("sha512", "Payload delivery"),
        K::Cve => ("vulnerability", "External analysis"),
        K::Filename => ("filename", "Payload delivery"),
        K::Asn => ("AS", "Network activity"),
    }
}

fn tag(name: &str, colour: &str) -> Value {
    json!({ "colour": colour, "exportable": true, "name": name })
}

fn org(origin: &str) -> Value {
    json!({ "name": origin, "uuid": member_org_uuid(origin).to_string() })
}

/// Python's `str()` of a JSON value (what PyMISP hashes for a non-text value).
fn py_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(true) => "True".to_string(),
        Value::Bool(false) => "False".to_string(),
        Value::Null => "None".to_string(),
        other => other.to_string(),
    }
}

/// A timestamp member (`"1472541011"` or a number) as seconds.
fn ts_of(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::String(s) => s.trim().parse().ok(),
        Value::Number(n) => n.as_i64(),
        _ => None,
    }
}

/// A small-integer member (`"2"` or `2`) as a number, for the manifest.
fn int_of(v: Option<&Value>) -> Option<i64> {
    ts_of(v)
}

/// Converts one advisory into its feed event.
///
/// An advisory imported from MISP (`extras.misp`) is exported from the kept event: same uuid,
/// attributes and objects byte for byte. Added only where missing: the event `uuid` (when
/// absent or not a UUID: v5 of the advisory), `info`, `Orgc`, `date`, `timestamp`,
/// `analysis`, `threat_level_id`, `published`, and a uuid for attributes and objects without
/// one (v5 in the event's namespace, from their path). The event-level `tlp:*` tags are
/// replaced by the advisory's TLP tag when they do not say the same label.
///
/// Any other advisory becomes a new event (see `docs/interop.md`): uuid v5 of
/// `tanoa://advisory/<origin>/<id>`, `Orgc` the origin member, a `tlp:*` tag, one attribute
/// per indicator (`to_ids` true), CVE, actor and reference, the summary as an event report.
///
/// A withdrawn advisory: `published` false, tag `tanoa:withdrawn`, every attribute and
/// object `deleted` true with its `timestamp` raised to the withdrawal time, so a MISP that
/// pulled the event before soft-deletes what it holds.
pub fn export_event(a: &Advisory) -> Result<FeedEvent, MispError> {
    let kept = kept_event(a)?;
    let from_misp = kept.is_some();
    let mut event = match kept {
        Some(ev) => complete_kept(a, ev),
        None => native(a),
    };
    if a.withdrawn {
        mark_withdrawn(&mut event, secs(a.modified_ms));
    }
    let uuid = event
        .get("uuid")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    Ok(FeedEvent {
        uuid,
        event,
        advisory: format!("{}/{}", a.origin, a.id),
        from_misp,
        withdrawn: a.withdrawn,
        modified_ms: a.modified_ms,
    })
}

/// The event kept at import, if any.
fn kept_event(a: &Advisory) -> Result<Option<Map<String, Value>>, MispError> {
    if a.extras.is_empty() {
        return Ok(None);
    }
    let where_ = || format!("{}/{} extras", a.origin, a.id);
    let v: Value = serde_json::from_slice(&a.extras)
        .map_err(|e| MispError::new(where_(), format!("not JSON: {e}")))?;
    match v.get("misp") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(ev)) => Ok(Some(ev.clone())),
        Some(_) => Err(MispError::new(
            format!("{}.misp", where_()),
            "is not a MISP event object",
        )),
    }
}

/// Adds what a feed needs and the kept event lacks, and the advisory's TLP tag.
fn complete_kept(a: &Advisory, mut ev: Map<String, Value>) -> Map<String, Value> {
    let uuid = match ev.get("uuid").and_then(Value::as_str) {
        Some(u) if is_uuid(u) => u.to_string(),
        _ => {
            let u = advisory_event_uuid(&a.origin, &a.id).to_string();
            ev.insert("uuid".into(), Value::String(u.clone()));
            u
        }
    };
    let ns = Uuid::try_parse(&uuid).unwrap_or(Uuid::NAMESPACE_URL);
    if !ev.get("info").is_some_and(Value::is_string) {
        ev.insert("info".into(), Value::String(a.title.clone()));
    }
    match ev.get_mut("Orgc") {
        Some(Value::Object(o)) => {
            if !o.get("name").is_some_and(Value::is_string) {
                o.insert("name".into(), Value::String(a.origin.clone()));
            }
            if !o.get("uuid").is_some_and(Value::is_string) {
                let name = o.get("name").and_then(Value::as_str).unwrap_or_default();
                let u = Uuid::new_v5(
                    &Uuid::NAMESPACE_URL,
                    format!("tanoa://misp-org/{name}").as_bytes(),
                );
                o.insert("uuid".into(), Value::String(u.to_string()));
            }
        }
        _ => {
            ev.insert("Orgc".into(), org(&a.origin));
        }
    }
    if !ev.get("date").is_some_and(Value::is_string) {
        ev.insert("date".into(), Value::String(date_of(a.created_ms)));
    }
    if ts_of(ev.get("timestamp")).is_none() {
        ev.insert(
            "timestamp".into(),
            Value::String(secs(a.modified_ms).to_string()),
        );
    }
    if int_of(ev.get("analysis")).is_none() {
        ev.insert("analysis".into(), Value::String("2".into()));
    }
    if int_of(ev.get("threat_level_id")).is_none() {
        ev.insert(
            "threat_level_id".into(),
            Value::String(threat_level(a.severity).into()),
        );
    }
    if !ev.contains_key("published") {
        ev.insert("published".into(), Value::Bool(true));
    }
    set_tlp(&mut ev, a);
    // Uuids for attributes and objects without one: stable, derived from their place.
    if let Some(Value::Array(attrs)) = ev.get_mut("Attribute") {
        for (i, at) in attrs.iter_mut().enumerate() {
            ensure_uuid(at, &ns, &format!("Attribute[{i}]"));
        }
    }
    if let Some(Value::Array(objs)) = ev.get_mut("Object") {
        for (j, o) in objs.iter_mut().enumerate() {
            ensure_uuid(o, &ns, &format!("Object[{j}]"));
            if let Some(Value::Array(attrs)) = o.get_mut("Attribute") {
                for (i, at) in attrs.iter_mut().enumerate() {
                    ensure_uuid(at, &ns, &format!("Object[{j}].Attribute[{i}]"));
                }
            }
        }
    }
    ev
}

fn ensure_uuid(v: &mut Value, ns: &Uuid, path: &str) {
    if let Value::Object(o) = v
        && !o.get("uuid").is_some_and(Value::is_string)
    {
        let u = Uuid::new_v5(ns, path.as_bytes());
        o.insert("uuid".into(), Value::String(u.to_string()));
    }
}

/// Makes the event-level `tlp:*` tags say the advisory's TLP: kept when they already say
/// exactly that label, else replaced by one tag of it.
fn set_tlp(ev: &mut Map<String, Value>, a: &Advisory) {
    let tags = ev.entry("Tag").or_insert_with(|| Value::Array(Vec::new()));
    if !tags.is_array() {
        *tags = Value::Array(Vec::new());
    }
    let Value::Array(tags) = tags else {
        return;
    };
    let labels: Vec<TagTlp> = tags
        .iter()
        .map(|t| tag_entry_name(t).map_or(TagTlp::None, tag_tlp))
        .collect();
    let known: Vec<_> = labels
        .iter()
        .filter_map(|l| match l {
            TagTlp::Label(t) => Some(*t),
            _ => None,
        })
        .collect();
    if !known.is_empty() && known.iter().all(|t| *t == a.tlp) {
        return;
    }
    let mut n = 0;
    tags.retain(|_| {
        let keep = !matches!(labels.get(n), Some(TagTlp::Label(_)));
        n += 1;
        keep
    });
    tags.push(tag(tlp_tag(a.tlp), tlp_colour(a.tlp)));
}

/// A new event for an advisory that did not come from MISP.
fn native(a: &Advisory) -> Map<String, Value> {
    let uuid = advisory_event_uuid(&a.origin, &a.id);
    let ts = secs(a.modified_ms).to_string();
    let mut attrs: Vec<Value> = Vec::new();
    let attr = |name: String, typ: &str, cat: &str, value: &str, to_ids: bool, comment: &str| {
        json!({
            "uuid": Uuid::new_v5(&uuid, name.as_bytes()).to_string(),
            "type": typ,
            "category": cat,
            "value": value,
            "to_ids": to_ids,
            "comment": comment,
            "timestamp": ts,
            "disable_correlation": false,
        })
    };
    for i in &a.indicators {
        let (typ, cat) = misp_type(i.kind);
        let to_ids = i.kind != IndicatorKind::Cve;
        attrs.push(attr(
            format!("indicator/{}/{}", i.kind, i.value),
            typ,
            cat,
            &i.value,
            to_ids,
            &i.note,
        ));
    }
    for c in &a.cves {
        if a.indicators
            .iter()
            .any(|i| i.kind == IndicatorKind::Cve && &i.value == c)
        {
            continue;
        }
        attrs.push(attr(
            format!("cve/{c}"),
            "vulnerability",
            "External analysis",
            c,
            false,
            "",
        ));
    }
    for actor in &a.actors {
        attrs.push(attr(
            format!("actor/{actor}"),
            "threat-actor",
            "Attribution",
            actor,
            false,
            "",
        ));
    }
    for r in &a.references {
        attrs.push(attr(
            format!("reference/{r}"),
            "link",
            "External analysis",
            r,
            false,
            "",
        ));
    }
    let mut ev = Map::new();
    ev.insert("uuid".into(), Value::String(uuid.to_string()));
    ev.insert("info".into(), Value::String(a.title.clone()));
    ev.insert("date".into(), Value::String(date_of(a.created_ms)));
    ev.insert("timestamp".into(), Value::String(ts.clone()));
    ev.insert("publish_timestamp".into(), Value::String(ts.clone()));
    ev.insert("published".into(), Value::Bool(true));
    ev.insert("analysis".into(), Value::String("2".into()));
    ev.insert(
        "threat_level_id".into(),
        Value::String(threat_level(a.severity).into()),
    );
    ev.insert("Orgc".into(), org(&a.origin));
    ev.insert(
        "Tag".into(),
        Value::Array(vec![tag(tlp_tag(a.tlp), tlp_colour(a.tlp))]),
    );
    ev.insert("Attribute".into(), Value::Array(attrs));
    if !a.summary.trim().is_empty() {
        ev.insert(
            "EventReport".into(),
            json!([{
                "uuid": Uuid::new_v5(&uuid, b"summary").to_string(),
                "name": "Summary",
                "content": a.summary,
                "timestamp": ts,
                "deleted": false,
            }]),
        );
    }
    ev
}

/// Marks a withdrawn advisory's event (see [`export_event`]).
fn mark_withdrawn(ev: &mut Map<String, Value>, when_s: i64) {
    ev.insert("published".into(), Value::Bool(false));
    let bump = |o: &mut Map<String, Value>| {
        if ts_of(o.get("timestamp")).is_none_or(|t| t < when_s) {
            o.insert("timestamp".into(), Value::String(when_s.to_string()));
        }
    };
    bump(ev);
    if let Some(Value::Array(tags)) = ev.get_mut("Tag")
        && !tags
            .iter()
            .any(|t| tag_entry_name(t) == Some(WITHDRAWN_TAG))
    {
        tags.push(tag(WITHDRAWN_TAG, "#000000"));
    }
    let delete = |v: &mut Value| {
        if let Value::Object(o) = v {
            o.insert("deleted".into(), Value::Bool(true));
            bump(o);
        }
    };
    if let Some(Value::Array(attrs)) = ev.get_mut("Attribute") {
        attrs.iter_mut().for_each(delete);
    }
    if let Some(Value::Array(objs)) = ev.get_mut("Object") {
        for o in objs.iter_mut() {
            if let Some(Value::Array(attrs)) = o.get_mut("Attribute") {
                attrs.iter_mut().for_each(delete);
            }
            delete(o);
        }
    }
}

impl FeedEvent {
    /// The file name in the feed directory: `<uuid>.json`.
    pub fn file_name(&self) -> String {
        format!("{}.json", self.uuid)
    }

    /// The file content: `{"Event": {...}}`, pretty-printed, ending with a newline.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out =
            serde_json::to_vec_pretty(&json!({ "Event": Value::Object(self.event.clone()) }))
                .unwrap_or_default();
        out.push(b'\n');
        out
    }

    /// Every attribute: top level, then those of each object (PyMISP's order).
    pub fn attributes(&self) -> Vec<&Map<String, Value>> {
        let top = self
            .event
            .get("Attribute")
            .and_then(Value::as_array)
            .into_iter()
            .flatten();
        let inner = self
            .event
            .get("Object")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|o| o.get("Attribute").and_then(Value::as_array))
            .flatten();
        top.chain(inner).filter_map(Value::as_object).collect()
    }

    /// MD5 (hex) of every attribute value as PyMISP's `attributes_hashes('md5')` computes it:
    /// composite types (`a|b`) and `malware-sample` give one digest per `|`-separated part.
    pub fn value_md5s(&self) -> Vec<String> {
        let mut out = Vec::new();
        for at in self.attributes() {
            let typ = at.get("type").and_then(Value::as_str).unwrap_or_default();
            let value = py_str(at.get("value").unwrap_or(&Value::Null));
            if typ.contains('|') || typ == "malware-sample" {
                for part in value.split('|') {
                    out.push(hex::encode(Md5::digest(part.as_bytes())));
                }
            } else {
                out.push(hex::encode(Md5::digest(value.as_bytes())));
            }
        }
        out
    }

    /// This event's `manifest.json` entry, as PyMISP's `MISPEvent.manifest` writes it:
    /// `Orgc` {name, uuid}, exportable `Tag`s {colour, local, name, relationship_type}, `info`,
    /// `date`, and `analysis`, `threat_level_id`, `timestamp` as numbers.
    pub fn manifest_entry(&self) -> Value {
        let ev = &self.event;
        let orgc = ev.get("Orgc").and_then(Value::as_object);
        let field = |k: &str| {
            orgc.and_then(|o| o.get(k))
                .cloned()
                .unwrap_or(Value::String(String::new()))
        };
        let tags: Vec<Value> = ev
            .get("Tag")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|t| {
                let name = tag_entry_name(t)?;
                let o = match t {
                    Value::Object(o) => match o.get("Tag") {
                        Some(Value::Object(inner)) if !o.contains_key("name") => Some(inner),
                        _ => Some(o),
                    },
                    _ => None,
                };
                let get = |k: &str| o.and_then(|o| o.get(k));
                if get("exportable").is_some_and(|e| e == &Value::Bool(false) || e == 0) {
                    return None;
                }
                Some(json!({
                    "colour": get("colour").cloned().unwrap_or_else(|| json!("#ffffff")),
                    "local": get("local").cloned().unwrap_or(Value::Bool(false)),
                    "name": name,
                    "relationship_type": get("relationship_type")
                        .filter(|v| !v.is_null())
                        .cloned()
                        .unwrap_or_else(|| json!("")),
                }))
            })
            .collect();
        json!({
            "Orgc": { "name": field("name"), "uuid": field("uuid") },
            "Tag": tags,
            "info": ev.get("info").cloned().unwrap_or_else(|| json!("")),
            "date": ev.get("date").cloned().unwrap_or_else(|| json!("")),
            "analysis": int_of(ev.get("analysis")).unwrap_or(0),
            "threat_level_id": int_of(ev.get("threat_level_id")).unwrap_or(4),
            "timestamp": ts_of(ev.get("timestamp")).unwrap_or(0),
        })
    }
}

/// Two advisories whose events share one uuid (e.g. the same MISP event imported twice under
/// different ids): the feed keeps one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuplicateEvent {
    /// The event uuid.
    pub uuid: String,
    /// `origin/id` of the advisory kept (the most recently modified; ties: the smaller name).
    pub kept: String,
    /// `origin/id` of the advisory left out.
    pub dropped: String,
}

/// A MISP feed being built: events by uuid.
#[derive(Debug, Clone, Default)]
pub struct Feed {
    events: BTreeMap<String, FeedEvent>,
    /// Advisories left out because another one exports the same event uuid.
    pub duplicates: Vec<DuplicateEvent>,
}

impl Feed {
    /// An empty feed.
    pub fn new() -> Self {
        Self::default()
    }

    /// Converts and adds one advisory (see [`export_event`]); returns the event's uuid.
    pub fn add(&mut self, a: &Advisory) -> Result<String, MispError> {
        let ev = export_event(a)?;
        let uuid = ev.uuid.clone();
        match self.events.get(&uuid) {
            None => {
                self.events.insert(uuid.clone(), ev);
            }
            Some(old) => {
                let newer = (ev.modified_ms, std::cmp::Reverse(&ev.advisory))
                    > (old.modified_ms, std::cmp::Reverse(&old.advisory));
                let (kept, dropped) = if newer {
                    (ev.advisory.clone(), old.advisory.clone())
                } else {
                    (old.advisory.clone(), ev.advisory.clone())
                };
                self.duplicates.push(DuplicateEvent {
                    uuid: uuid.clone(),
                    kept,
                    dropped,
                });
                if newer {
                    self.events.insert(uuid.clone(), ev);
                }
            }
        }
        Ok(uuid)
    }

    /// The events, by uuid.
    pub fn events(&self) -> impl Iterator<Item = &FeedEvent> {
        self.events.values()
    }

    /// Number of events.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// True when the feed holds no event.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// `manifest.json`: event uuid -> [`FeedEvent::manifest_entry`].
    pub fn manifest(&self) -> Value {
        let m: Map<String, Value> = self
            .events
            .iter()
            .map(|(u, e)| (u.clone(), e.manifest_entry()))
            .collect();
        Value::Object(m)
    }

    /// `hashes.csv`: one `<md5 of a value>,<event uuid>` line per attribute value (per part for
    /// composite types), no header, as PyMISP's `feed_meta_generator` writes it.
    pub fn hashes_csv(&self) -> String {
        let mut out = String::new();
        for e in self.events.values() {
            for h in e.value_md5s() {
                out.push_str(&h);
                out.push(',');
                out.push_str(&e.uuid);
                out.push('\n');
            }
        }
        out
    }

    /// Every file of the feed directory: `(name, content)` for each event, then
    /// `manifest.json` and `hashes.csv`.
    pub fn files(&self) -> Vec<(String, Vec<u8>)> {
        let mut out: Vec<(String, Vec<u8>)> = self
            .events
            .values()
            .map(|e| (e.file_name(), e.to_json()))
            .collect();
        let mut manifest = serde_json::to_vec_pretty(&self.manifest()).unwrap_or_default();
        manifest.push(b'\n');
        out.push(("manifest.json".to_string(), manifest));
        out.push(("hashes.csv".to_string(), self.hashes_csv().into_bytes()));
        out
    }
}
