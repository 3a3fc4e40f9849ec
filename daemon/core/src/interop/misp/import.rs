//! One MISP event -> one `Draft` (the event kept verbatim in `extras`).

use std::collections::HashSet;
use std::net::IpAddr;

use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};

use super::{MispError, TagTlp, is_actor_galaxy, is_uuid, tag_entry_name, tag_tlp};
use crate::model::indicator::parse_ip;
use crate::model::validate::{check_advisory_id, check_member_id};
use crate::model::{Draft, Indicator, IndicatorKind, Limits, Severity, Tlp, normalize_indicator};

/// Longest title kept (bytes); `Limits::max_title_len` by default.
const MAX_TITLE: usize = 512;
/// Longest summary kept (bytes); `Limits::max_summary_len` by default.
const MAX_SUMMARY: usize = 65_536;
/// Longest note, actor or reference kept (bytes); `Limits::max_string_len` by default.
const MAX_STRING: usize = 2_048;

/// What the operator adds to an imported event (`tanoa import --tlp --audience --id`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportOptions {
    /// TLP for an event without any `tlp:*` tag; with tags, the more restrictive of the two
    /// wins (an option never lowers a marking the event carries).
    pub tlp: Option<Tlp>,
    /// Audience member ids (required for AMBER, AMBER+STRICT and RED).
    pub audience: Vec<String>,
    /// Advisory id; default `misp-<event uuid>` (or `misp-<hash>` for an event without a UUID).
    pub id: Option<String>,
}

/// Why an attribute gave no indicator (it stays in `extras` all the same).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotIndexedReason {
    /// Its MISP type has no Tanoa indicator kind (`regkey|value`, `mutex`, `yara`, …), with
    /// the detail when the type maps but this value does not (a relative `uri`).
    Unmodelled(String),
    /// `to_ids` is false: MISP says it is context, not something to detect or block.
    NotForIds,
    /// The attribute (or its object) is marked deleted.
    Deleted,
    /// The value is not valid for its kind (the validator's message, quoting the value).
    Invalid(String),
}

impl std::fmt::Display for NotIndexedReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotIndexedReason::Unmodelled(d) if d.is_empty() => {
                f.write_str("type not modelled as an indicator")
            }
            NotIndexedReason::Unmodelled(d) => write!(f, "not modelled as an indicator ({d})"),
            NotIndexedReason::NotForIds => f.write_str("to_ids is false"),
            NotIndexedReason::Deleted => f.write_str("deleted"),
            NotIndexedReason::Invalid(m) => write!(f, "invalid value: {m}"),
        }
    }
}

impl NotIndexedReason {
    /// Short code for JSON output and counts: `unmodelled`, `not_for_ids`, `deleted`, `invalid`.
    pub fn code(&self) -> &'static str {
        match self {
            NotIndexedReason::Unmodelled(_) => "unmodelled",
            NotIndexedReason::NotForIds => "not_for_ids",
            NotIndexedReason::Deleted => "deleted",
            NotIndexedReason::Invalid(_) => "invalid",
        }
    }
}

/// One attribute (or one part of a composite attribute) that gave no indicator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotIndexed {
    /// JSON path in the event, e.g. `Event.Object[0].Attribute[2]`.
    pub path: String,
    /// The attribute's uuid, when it has one.
    pub uuid: Option<String>,
    /// Its MISP type.
    pub misp_type: String,
    /// Why.
    pub reason: NotIndexedReason,
}

impl std::fmt::Display for NotIndexed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.path)?;
        if let Some(u) = &self.uuid {
            write!(f, " (uuid {u})")?;
        }
        write!(f, " {}: {}", self.misp_type, self.reason)
    }
}

/// What an import did with the event, for the operator.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// The event's `uuid` as written (`None` when absent).
    pub event_uuid: Option<String>,
    /// Attributes seen (top level and inside objects).
    pub attributes: usize,
    /// Objects seen.
    pub objects: usize,
    /// Attributes that gave at least one indicator.
    pub indexed_attributes: usize,
    /// Indicators in the draft (after removing duplicates).
    pub indicators: usize,
    /// CVE ids (from `vulnerability` attributes).
    pub cves: usize,
    /// Actor names and aliases (galaxies, galaxy tags, `threat-actor` attributes).
    pub actors: usize,
    /// Reference URLs (from `link` attributes).
    pub references: usize,
    /// `text`, `comment` attributes and event reports copied into the summary.
    pub in_summary: usize,
    /// The TLP chosen, and where it came from (tags, `--tlp`, or both).
    pub tlp: Option<Tlp>,
    /// The `tlp:*` tags found, each with where (`Event.Tag[0] tlp:white`).
    pub tlp_tags: Vec<String>,
    /// Attributes (or parts) that gave no indicator, with the reason.
    pub not_indexed: Vec<NotIndexed>,
    /// Everything else worth saying (a title cut, an unknown `tlp:` tag, …).
    pub warnings: Vec<String>,
}

impl ImportReport {
    /// How many `not_indexed` entries have this reason code (see [`NotIndexedReason::code`]).
    pub fn count(&self, code: &str) -> usize {
        self.not_indexed
            .iter()
            .filter(|n| n.reason.code() == code)
            .count()
    }
}

/// A converted event: the draft to publish and what was done.
#[derive(Debug, Clone)]
pub struct MispImport {
    /// The draft (one advisory); `extras` = `{"misp": <the event object>}`.
    pub draft: Draft,
    /// What was done.
    pub report: ImportReport,
}

/// Converts one MISP event (see [`convert_event`]) and returns only the draft.
pub fn import_event(bytes: &[u8], opts: &ImportOptions) -> Result<Draft, MispError> {
    convert_event(bytes, opts).map(|i| i.draft)
}

/// Converts one MISP event (JSON: `{"Event": {...}}`, a bare event object, or MISP's API
/// answer `{"response": [{"Event": {...}}]}` holding one event) into one draft.
///
/// Refused, naming the path (and uuid) concerned: JSON that is not one event; a structure that
/// is not MISP's (an attribute that is not an object or has no `type`, a `Tag` list entry
/// without a name — it could hide a TLP marking); no TLP (no `tlp:*` tag and no `--tlp`);
/// an audience missing for AMBER/RED or given for CLEAR/GREEN; a bad `--id`; an event larger
/// than `extras` may hold. Values the validator would refuse (a malformed address) are not
/// refused: they are kept in the event, not indexed, and listed in the report.
pub fn convert_event(bytes: &[u8], opts: &ImportOptions) -> Result<MispImport, MispError> {
    let root: Value = serde_json::from_slice(bytes)
        .map_err(|e| MispError::new("file", format!("not JSON: {e}")))?;
    let event = unwrap_event(root)?;
    let mut cx = Cx::default();
    cx.event(&event)?;
    let tlp = choose_tlp(&cx, opts)?;
    cx.report.tlp = Some(tlp);
    check_audience(tlp, &opts.audience)?;

    let event_uuid = cx.report.event_uuid.clone();
    let extras = serde_json::to_vec(&serde_json::json!({ "misp": Value::Object(event.clone()) }))
        .map_err(|e| MispError::new("Event", format!("cannot be kept as JSON: {e}")))?;
    let max_extras = Limits::default().max_extras_bytes;
    if extras.len() > max_extras {
        return Err(MispError::new(
            "Event",
            format!(
                "is {} bytes once kept verbatim; an advisory keeps at most {max_extras} bytes of \
                 source material (split the event)",
                extras.len()
            ),
        ));
    }
    let id = match &opts.id {
        Some(id) => {
            let id = id.trim().to_string();
            check_advisory_id(&id).map_err(|m| MispError::new("--id", m))?;
            id
        }
        None => match event_uuid.as_deref().filter(|u| is_uuid(u)) {
            Some(u) => format!("misp-{}", u.to_ascii_lowercase()),
            None => {
                let h = hex::encode(Sha256::digest(&extras));
                format!("misp-{}", &h[..32])
            }
        },
    };

    let title = title_of(&event, event_uuid.as_deref(), &mut cx.report.warnings);
    let summary = cx.summary(&event);
    let severity = severity_of(&event, &mut cx.report.warnings);
    let indicators: Vec<Indicator> = cx
        .indicators
        .iter()
        .map(|(kind, value, note)| Indicator {
            kind: *kind,
            value: value.clone(),
            confidence: 0,
            valid_until_ms: None,
            note: note.clone(),
        })
        .collect();
    cx.report.indicators = indicators.len();
    cx.report.cves = cx.cves.len();
    cx.report.actors = cx.actors.len();
    cx.report.references = cx.references.len();
    let draft = Draft {
        id: Some(id),
        tlp,
        audience: opts.audience.iter().map(|a| a.trim().to_string()).collect(),
        title,
        summary,
        severity,
        actors: cx.actors,
        cves: cx.cves,
        indicators,
        references: cx.references,
        valid_until_ms: None,
        extras,
    };
    Ok(MispImport {
        draft,
        report: cx.report,
    })
}

/// The event object inside the document.
fn unwrap_event(root: Value) -> Result<Map<String, Value>, MispError> {
    let Value::Object(mut o) = root else {
        return Err(MispError::new(
            "file",
            "is not a MISP event (expected a JSON object)",
        ));
    };
    if let Some(r) = o.remove("response") {
        let Value::Array(mut items) = r else {
            return Err(MispError::new("response", "is not a list of events"));
        };
        if items.len() != 1 {
            return Err(MispError::new(
                "response",
                format!(
                    "holds {} events; import one event per file (one advisory each)",
                    items.len()
                ),
            ));
        }
        return unwrap_event(items.remove(0));
    }
    if let Some(e) = o.remove("Event") {
        return match e {
            Value::Object(e) => Ok(e),
            _ => Err(MispError::new("Event", "is not a JSON object")),
        };
    }
    if ["info", "Attribute", "Object", "uuid"]
        .iter()
        .any(|k| o.contains_key(*k))
    {
        return Ok(o);
    }
    Err(MispError::new(
        "file",
        "is not a MISP event (no \"Event\", \"info\", \"Attribute\" or \"Object\" member)",
    ))
}

/// How a MISP attribute type maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// `ip-src`, `ip-dst`: an address (or a network in CIDR notation).
    Ip,
    /// `ip-src|port`, `ip-dst|port`: the address part.
    IpPort,
    /// `domain`, `hostname`: a DNS name.
    Domain,
    /// `hostname|port`: the name part.
    DomainPort,
    /// `domain|ip`: both parts.
    DomainIp,
    /// `url`, and `uri` when it is an absolute URL.
    Url,
    /// `uri`: a URL only when absolute.
    Uri,
    /// `email`, `email-src`, `email-dst`, `email-reply-to`, `whois-registrant-email`,
    /// `dns-soa-email`.
    Email,
    /// `md5`, `sha1`, `sha256`, `sha512`.
    Hash(IndicatorKind),
    /// `filename`, `email-attachment`.
    Filename,
    /// `filename|<hash>`, `malware-sample` (= `filename|md5`): the name, and the digest when
    /// Tanoa has its kind.
    FilenameHash(Option<IndicatorKind>),
    /// `AS`.
    Asn,
    /// `vulnerability` -> CVE ids.
    Cve,
    /// `threat-actor` -> actors.
    Actor,
    /// `link` -> references.
    Reference,
    /// `text`, `comment` -> summary.
    Text,
    /// Everything else.
    Other,
}

fn role_of(t: &str) -> Role {
    use IndicatorKind as K;
    match t {
        "ip-src" | "ip-dst" => Role::Ip,
        "ip-src|port" | "ip-dst|port" => Role::IpPort,
        "domain" | "hostname" => Role::Domain,
        "hostname|port" => Role::DomainPort,
        "domain|ip" => Role::DomainIp,
        "url" => Role::Url,
        "uri" => Role::Uri,
        "email"
        | "email-src"
        | "email-dst"
        | "email-reply-to"
        | "whois-registrant-email"
        | "dns-soa-email" => Role::Email,
        "md5" => Role::Hash(K::Md5),
        "sha1" => Role::Hash(K::Sha1),
        "sha256" => Role::Hash(K::Sha256),
        "sha512" => Role::Hash(K::Sha512),
        "filename" | "email-attachment" => Role::Filename,
        "filename|md5" | "malware-sample" => Role::FilenameHash(Some(K::Md5)),
        "filename|sha1" => Role::FilenameHash(Some(K::Sha1)),
        "filename|sha256" => Role::FilenameHash(Some(K::Sha256)),
        "filename|sha512" => Role::FilenameHash(Some(K::Sha512)),
        t if t.starts_with("filename|") => Role::FilenameHash(None),
        "AS" => Role::Asn,
        "vulnerability" => Role::Cve,
        "threat-actor" => Role::Actor,
        "link" => Role::Reference,
        "text" | "comment" => Role::Text,
        _ => Role::Other,
    }
}

/// The state of one conversion.
#[derive(Debug, Default)]
struct Cx {
    report: ImportReport,
    /// Most restrictive TLP label among the tags.
    tag_tlp: Option<Tlp>,
    /// (kind, normalized value, note), first occurrence kept.
    indicators: Vec<(IndicatorKind, String, String)>,
    seen: HashSet<(IndicatorKind, String)>,
    cves: Vec<String>,
    actors: Vec<String>,
    actors_seen: HashSet<String>,
    references: Vec<String>,
    /// Text for the summary (event reports, `text`/`comment` attributes).
    texts: Vec<String>,
}

/// `Event.Attribute[3]` or `Event.Attribute[3] (uuid …)`.
fn at(path: &str, uuid: Option<&str>) -> String {
    match uuid {
        Some(u) => format!("{path} (uuid {u})"),
        None => path.to_string(),
    }
}

/// A list member: absent or null = empty; anything but an array is refused.
fn list<'a>(v: Option<&'a Value>, path: &str) -> Result<&'a [Value], MispError> {
    match v {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(_) => Err(MispError::new(path, "is not a list")),
    }
}

/// A MISP boolean (`true`, `1`, `"1"`, `"true"`…); `None` when absent or null.
fn flag(o: &Map<String, Value>, key: &str, path: &str) -> Result<Option<bool>, MispError> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::Number(n)) if n.as_u64() == Some(0) => Ok(Some(false)),
        Some(Value::Number(n)) if n.as_u64() == Some(1) => Ok(Some(true)),
        Some(Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
            "1" | "true" => Ok(Some(true)),
            "0" | "false" | "" => Ok(Some(false)),
            _ => Err(MispError::new(
                path,
                format!("{key} {s:?} is not a boolean"),
            )),
        },
        Some(other) => Err(MispError::new(
            path,
            format!("{key} {other} is not a boolean"),
        )),
    }
}

/// Cuts `s` to at most `max` bytes on a character boundary, ending with `…` when cut.
fn cut(s: &str, max: usize) -> (String, bool) {
    if s.len() <= max {
        return (s.to_string(), false);
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    (format!("{}…", &s[..end]), true)
}

impl Cx {
    fn event(&mut self, ev: &Map<String, Value>) -> Result<(), MispError> {
        self.report.event_uuid = match ev.get("uuid") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(MispError::new("Event.uuid", "is not a string")),
        };
        if let Some(u) = &self.report.event_uuid
            && !is_uuid(u)
        {
            self.report.warnings.push(format!(
                "Event.uuid {u:?} is not a UUID: it is kept as written, and a MISP feed export \
                 gives the event a UUID derived from the advisory id"
            ));
        }
        self.tags(ev.get("Tag"), "Event.Tag")?;
        if ev.contains_key("EventTag") {
            self.tags(ev.get("EventTag"), "Event.EventTag")?;
        }
        self.galaxies(ev.get("Galaxy"), "Event.Galaxy");
        for (i, a) in list(ev.get("Attribute"), "Event.Attribute")?
            .iter()
            .enumerate()
        {
            self.attribute(a, &format!("Event.Attribute[{i}]"), false)?;
        }
        for (j, o) in list(ev.get("Object"), "Event.Object")?.iter().enumerate() {
            let path = format!("Event.Object[{j}]");
            let Value::Object(obj) = o else {
                return Err(MispError::new(path, "is not a JSON object"));
            };
            self.report.objects += 1;
            let deleted = flag(obj, "deleted", &path)?.unwrap_or(false);
            for (i, a) in list(obj.get("Attribute"), &format!("{path}.Attribute"))?
                .iter()
                .enumerate()
            {
                self.attribute(a, &format!("{path}.Attribute[{i}]"), deleted)?;
            }
        }
        Ok(())
    }

    /// Reads a `Tag` list: TLP labels and galaxy tags naming actors.
    fn tags(&mut self, v: Option<&Value>, path: &str) -> Result<(), MispError> {
        for (i, t) in list(v, path)?.iter().enumerate() {
            let here = format!("{path}[{i}]");
            let name = tag_entry_name(t).ok_or_else(|| {
                MispError::new(
                    &here,
                    "is not a tag (expected an object with a \"name\"); refused because it \
                     could be a TLP marking",
                )
            })?;
            match tag_tlp(name) {
                TagTlp::Label(l) => {
                    self.report.tlp_tags.push(format!("{here} {name}"));
                    self.tag_tlp = Some(self.tag_tlp.map_or(l, |c| c.max(l)));
                }
                TagTlp::Unknown => self.report.warnings.push(format!(
                    "{here}: tag {name:?} is not a TLP 2.0 label (clear, white, green, amber, \
                     amber+strict, red); ignored"
                )),
                TagTlp::None => {
                    if let Some(actor) = galaxy_tag_actor(name) {
                        self.actor(actor);
                    }
                }
            }
        }
        Ok(())
    }

    /// Reads `Galaxy[].GalaxyCluster[]`: actor clusters give their value and synonyms.
    /// Malformed galaxies are skipped with a warning (they carry no marking).
    fn galaxies(&mut self, v: Option<&Value>, path: &str) {
        let galaxies = match v {
            None | Some(Value::Null) => return,
            Some(Value::Array(a)) => a,
            Some(_) => {
                self.report
                    .warnings
                    .push(format!("{path}: is not a list; ignored"));
                return;
            }
        };
        for (g, galaxy) in galaxies.iter().enumerate() {
            let gtype = galaxy.get("type").and_then(Value::as_str).unwrap_or("");
            let Some(clusters) = galaxy.get("GalaxyCluster").and_then(Value::as_array) else {
                self.report
                    .warnings
                    .push(format!("{path}[{g}]: no GalaxyCluster list; ignored"));
                continue;
            };
            for cluster in clusters {
                let ctype = cluster.get("type").and_then(Value::as_str).unwrap_or(gtype);
                let by_tag = cluster
                    .get("tag_name")
                    .and_then(Value::as_str)
                    .is_some_and(|t| galaxy_tag_actor(t).is_some());
                if !(is_actor_galaxy(ctype) || is_actor_galaxy(gtype) || by_tag) {
                    continue;
                }
                if let Some(value) = cluster.get("value").and_then(Value::as_str) {
                    self.actor(value);
                }
                let synonyms = cluster
                    .get("meta")
                    .and_then(|m| m.get("synonyms"))
                    .and_then(Value::as_array);
                for s in synonyms.into_iter().flatten().filter_map(Value::as_str) {
                    self.actor(s);
                }
            }
        }
    }

    /// Adds an actor name (trimmed; duplicates ignoring case dropped, first spelling kept).
    fn actor(&mut self, name: &str) {
        let name = name.trim();
        if name.is_empty() {
            return;
        }
        if name.len() > MAX_STRING || name.chars().any(char::is_control) {
            self.report.warnings.push(format!(
                "actor name {:?} is longer than {MAX_STRING} bytes or holds a control \
                 character: not listed as an actor (it stays in the event)",
                cut(name, 80).0
            ));
            return;
        }
        if self.actors_seen.insert(name.to_lowercase()) {
            self.actors.push(name.to_string());
        }
    }

    fn not_indexed(&mut self, path: &str, uuid: Option<&str>, t: &str, r: NotIndexedReason) {
        self.report.not_indexed.push(NotIndexed {
            path: path.to_string(),
            uuid: uuid.map(str::to_string),
            misp_type: t.to_string(),
            reason: r,
        });
    }

    fn attribute(&mut self, a: &Value, path: &str, in_deleted: bool) -> Result<(), MispError> {
        let Value::Object(o) = a else {
            return Err(MispError::new(path, "is not a JSON object"));
        };
        self.report.attributes += 1;
        let uuid = match o.get("uuid") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.as_str()),
            Some(_) => return Err(MispError::new(path, "uuid is not a string")),
        };
        let here = at(path, uuid);
        let Some(t) = o.get("type").and_then(Value::as_str) else {
            return Err(MispError::new(here, "has no \"type\""));
        };
        let value = match o.get("value") {
            Some(Value::String(s)) => s.as_str(),
            None | Some(Value::Null) => return Err(MispError::new(here, "has no \"value\"")),
            Some(_) => {
                // Non-text values exist only for types we do not model; refuse elsewhere.
                if role_of(t) != Role::Other {
                    return Err(MispError::new(here, format!("{t} value is not a string")));
                }
                ""
            }
        };
        // Attribute tags count for TLP (most restrictive wins) and may name actors.
        self.tags(o.get("Tag"), &format!("{path}.Tag"))?;
        if o.contains_key("AttributeTag") {
            self.tags(o.get("AttributeTag"), &format!("{path}.AttributeTag"))?;
        }
        self.galaxies(o.get("Galaxy"), &format!("{path}.Galaxy"));
        if in_deleted || flag(o, "deleted", &here)?.unwrap_or(false) {
            self.not_indexed(path, uuid, t, NotIndexedReason::Deleted);
            return Ok(());
        }
        let role = role_of(t);
        match role {
            Role::Cve => {
                match normalize_indicator(IndicatorKind::Cve, value) {
                    Ok(c) => {
                        if !self.cves.contains(&c) {
                            self.cves.push(c);
                        }
                    }
                    Err(m) => self.not_indexed(path, uuid, t, NotIndexedReason::Invalid(m)),
                }
                return Ok(());
            }
            Role::Actor => {
                self.actor(value);
                return Ok(());
            }
            Role::Reference => {
                match check_reference(value) {
                    Ok(()) => {
                        let v = value.trim().to_string();
                        if !self.references.contains(&v) {
                            self.references.push(v);
                        }
                    }
                    Err(m) => self.not_indexed(path, uuid, t, NotIndexedReason::Invalid(m)),
                }
                return Ok(());
            }
            Role::Text => {
                if !value.trim().is_empty() {
                    self.texts.push(value.trim().to_string());
                    self.report.in_summary += 1;
                }
                return Ok(());
            }
            Role::Other => {
                self.not_indexed(path, uuid, t, NotIndexedReason::Unmodelled(String::new()));
                return Ok(());
            }
            _ => {}
        }
        // An indicator type: `to_ids` false means context, not detection (default: true, as
        // MISP's sane defaults for every type mapped here but AS).
        let to_ids = flag(o, "to_ids", &here)?.unwrap_or(role != Role::Asn);
        if !to_ids {
            self.not_indexed(path, uuid, t, NotIndexedReason::NotForIds);
            return Ok(());
        }
        let parts: Vec<(IndicatorKind, &str)> = match role {
            Role::Ip => vec![(ip_kind(value), value)],
            Role::IpPort => {
                let ip = value.split_once('|').map_or(value, |(ip, _)| ip);
                vec![(ip_kind(ip), ip)]
            }
            Role::Domain => vec![(IndicatorKind::Domain, value)],
            Role::DomainPort => {
                let d = value.split_once('|').map_or(value, |(d, _)| d);
                vec![(IndicatorKind::Domain, d)]
            }
            Role::DomainIp => match value.split_once('|') {
                Some((d, ip)) => vec![(IndicatorKind::Domain, d), (ip_kind(ip), ip)],
                None => vec![(IndicatorKind::Domain, value)],
            },
            Role::Url => vec![(IndicatorKind::Url, value)],
            Role::Uri => {
                if value.contains("://") {
                    vec![(IndicatorKind::Url, value)]
                } else {
                    self.not_indexed(
                        path,
                        uuid,
                        t,
                        NotIndexedReason::Unmodelled("not an absolute URL".to_string()),
                    );
                    return Ok(());
                }
            }
            Role::Email => vec![(IndicatorKind::Email, value)],
            Role::Hash(k) => vec![(k, value)],
            Role::Filename => vec![(IndicatorKind::Filename, value)],
            Role::FilenameHash(k) => match (value.split_once('|'), k) {
                (Some((name, digest)), Some(k)) => {
                    vec![(IndicatorKind::Filename, name), (k, digest)]
                }
                (Some((name, _)), None) => vec![(IndicatorKind::Filename, name)],
                (None, _) => {
                    self.not_indexed(
                        path,
                        uuid,
                        t,
                        NotIndexedReason::Invalid(format!(
                            "{value:?} has no '|' between the file name and the digest"
                        )),
                    );
                    return Ok(());
                }
            },
            Role::Asn => vec![(IndicatorKind::Asn, value)],
            Role::Cve | Role::Actor | Role::Reference | Role::Text | Role::Other => Vec::new(),
        };
        let note = {
            let c = o
                .get("comment")
                .and_then(Value::as_str)
                .unwrap_or("")
                .trim();
            cut(c, MAX_STRING).0
        };
        let mut indexed = false;
        for (kind, raw) in parts {
            match normalize_indicator(kind, raw) {
                Ok(v) if v.len() > MAX_STRING => self.not_indexed(
                    path,
                    uuid,
                    t,
                    NotIndexedReason::Invalid(format!(
                        "{kind} value is {} bytes long (at most {MAX_STRING})",
                        v.len()
                    )),
                ),
                Ok(v) => {
                    indexed = true;
                    if self.seen.insert((kind, v.clone())) {
                        self.indicators.push((kind, v, note.clone()));
                    }
                }
                Err(m) => self.not_indexed(path, uuid, t, NotIndexedReason::Invalid(m)),
            }
        }
        if indexed {
            self.report.indexed_attributes += 1;
        }
        Ok(())
    }

    /// The summary: event reports, then `text`/`comment` attributes, then where it came from.
    fn summary(&mut self, ev: &Map<String, Value>) -> String {
        let mut parts: Vec<String> = Vec::new();
        if let Some(reports) = ev.get("EventReport").and_then(Value::as_array) {
            for r in reports {
                let deleted = r
                    .get("deleted")
                    .is_some_and(|d| d == &Value::Bool(true) || d == "1");
                let content = r.get("content").and_then(Value::as_str).unwrap_or("");
                if deleted || content.trim().is_empty() {
                    continue;
                }
                self.report.in_summary += 1;
                match r.get("name").and_then(Value::as_str).map(str::trim) {
                    Some(n) if !n.is_empty() => parts.push(format!("## {n}\n\n{}", content.trim())),
                    _ => parts.push(content.trim().to_string()),
                }
            }
        }
        parts.append(&mut self.texts);
        let org = ev
            .get("Orgc")
            .and_then(|o| o.get("name"))
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty());
        let date = ev.get("date").and_then(Value::as_str).map(str::trim);
        let mut source = String::from("Imported from MISP event");
        if let Some(u) = &self.report.event_uuid {
            source.push(' ');
            source.push_str(u);
        }
        match (org, date) {
            (Some(o), Some(d)) => source.push_str(&format!(" ({o}, {d})")),
            (Some(o), None) => source.push_str(&format!(" ({o})")),
            (None, Some(d)) => source.push_str(&format!(" ({d})")),
            (None, None) => {}
        }
        source.push('.');
        parts.push(source);
        let text: String = parts
            .join("\n\n")
            .chars()
            .map(|c| {
                if c.is_control() && !matches!(c, '\n' | '\r' | '\t') {
                    ' '
                } else {
                    c
                }
            })
            .collect();
        let (text, was_cut) = cut(&text, MAX_SUMMARY);
        if was_cut {
            self.report
                .warnings
                .push(format!("summary cut to {MAX_SUMMARY} bytes"));
        }
        text
    }
}

/// The kind of an address value: a network when it has a prefix length, else IPv4 or IPv6.
fn ip_kind(v: &str) -> IndicatorKind {
    if v.contains('/') {
        IndicatorKind::Cidr
    } else {
        match parse_ip(v) {
            Some(IpAddr::V6(_)) => IndicatorKind::Ipv6,
            Some(IpAddr::V4(_)) => IndicatorKind::Ipv4,
            None if v.contains(':') => IndicatorKind::Ipv6,
            None => IndicatorKind::Ipv4,
        }
    }
}

/// The value of a galaxy tag naming an actor: `misp-galaxy:threat-actor="APT40"` -> `APT40`.
fn galaxy_tag_actor(tag: &str) -> Option<&str> {
    let rest = tag.trim().strip_prefix("misp-galaxy:")?;
    let (gtype, value) = rest.split_once('=')?;
    if !is_actor_galaxy(gtype) {
        return None;
    }
    let v = value.trim();
    let v = v.strip_prefix('"').unwrap_or(v);
    let v = v.strip_suffix('"').unwrap_or(v);
    (!v.trim().is_empty()).then_some(v)
}

/// A `link` attribute usable as a reference: an absolute http(s) URL (the validator's rule).
fn check_reference(r: &str) -> Result<(), String> {
    let r = r.trim();
    if r.len() > MAX_STRING {
        return Err(format!("is {} bytes long (at most {MAX_STRING})", r.len()));
    }
    match url::Url::parse(r) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.has_host() => Ok(()),
        Ok(_) => Err(format!("{r:?} is not an http(s) URL")),
        Err(e) => Err(format!("{r:?} is not an absolute http(s) URL ({e})")),
    }
}

/// TLP: the most restrictive of the tags and `--tlp`; refused when there is neither.
fn choose_tlp(cx: &Cx, opts: &ImportOptions) -> Result<Tlp, MispError> {
    match (cx.tag_tlp, opts.tlp) {
        (Some(t), Some(o)) => Ok(t.max(o)),
        (Some(t), None) => Ok(t),
        (None, Some(o)) => Ok(o),
        (None, None) => Err(MispError::new(
            "Event.Tag",
            "no tlp:* tag on the event or its attributes; say which TLP applies with --tlp",
        )),
    }
}

fn check_audience(tlp: Tlp, audience: &[String]) -> Result<(), MispError> {
    if tlp.needs_audience() && audience.iter().all(|a| a.trim().is_empty()) {
        return Err(MispError::new(
            "--audience",
            format!("TLP:{tlp} needs the member ids allowed to hold the advisory"),
        ));
    }
    if !tlp.needs_audience() && !audience.is_empty() {
        return Err(MispError::new(
            "--audience",
            format!("must be empty for TLP:{tlp} (every member may hold it)"),
        ));
    }
    for a in audience {
        check_member_id(a.trim()).map_err(|m| MispError::new("--audience", m))?;
    }
    Ok(())
}

/// The title: `info` (control characters replaced by spaces, cut to 512 bytes); a stand-in
/// naming the event when `info` is missing or blank.
fn title_of(ev: &Map<String, Value>, uuid: Option<&str>, warnings: &mut Vec<String>) -> String {
    let info: String = ev
        .get("info")
        .and_then(Value::as_str)
        .unwrap_or("")
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let info = info.trim();
    if info.is_empty() {
        warnings.push("Event.info is missing or blank: the title names the event instead".into());
        return match uuid {
            Some(u) => cut(&format!("MISP event {}", u.trim()), MAX_TITLE).0,
            None => "MISP event (no info, no uuid)".to_string(),
        };
    }
    let (t, was_cut) = cut(info, MAX_TITLE);
    if was_cut {
        warnings.push(format!("Event.info cut to {MAX_TITLE} bytes for the title"));
    }
    t
}

/// Severity from `threat_level_id`: 1 high, 2 medium, 3 low, 4 (undefined) or absent unknown.
fn severity_of(ev: &Map<String, Value>, warnings: &mut Vec<String>) -> Severity {
    let level = match ev.get("threat_level_id") {
        None | Some(Value::Null) => return Severity::Unknown,
        Some(Value::String(s)) => s.trim().parse::<u64>().ok(),
        Some(Value::Number(n)) => n.as_u64(),
        Some(_) => None,
    };
    match level {
        Some(1) => Severity::High,
        Some(2) => Severity::Medium,
        Some(3) => Severity::Low,
        Some(4) => Severity::Unknown,
        _ => {
            warnings.push(format!(
                "Event.threat_level_id {} is not 1-4; severity unknown",
                ev.get("threat_level_id")
                    .map(Value::to_string)
                    .unwrap_or_default()
            ));
            Severity::Unknown
        }
    }
}
