//! Blocklists for firewalls, DNS filters and IDS: what is selected, and the four file formats.
//!
//! Owns: the export filter (active indicators only: latest revision, not withdrawn, advisory
//! and indicator not expired, TLP at most the ceiling, minimum confidence, kinds, origins), the
//! merging of one value held by several advisories into one entry that keeps every advisory,
//! and the writers: CSV with a header, plain text (one value per line), Suricata rules with
//! stable sids, and a Zeek intel-framework file. Every writer is a pure function of its entries
//! and fails with an error naming the value it cannot write safely.
//! Must never: read a clock (the caller passes `now_ms`), reach the store, or emit text whose
//! structure a value could break (quotes, `;`, tabs and newlines are escaped, or the value is
//! refused).
//!
//! # Suricata sids
//!
//! Each rule's sid is `SID_BASE + H mod SID_SPAN` (1,000,000,000 to 1,999,999,999, far above
//! the ranges of public rule sets), where `H` is the first 8 bytes (big-endian) of
//! SHA-256(`"tanoa-sid-v1" 0 rule 0 kind 0 value`), `rule` naming the rule variant (`ip`, `dns`,
//! `tls`, `http`, `file`). A value keeps its sid from one export to the next. When two rules of
//! one export want the same sid, the one whose key sorts first keeps it and the other takes
//! the next sid (wrapping inside the range) that is neither taken nor wanted by another rule,
//! so a collision never moves a rule that did not collide.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt::Write as _;

use sha2::{Digest, Sha256};

use crate::model::{Advisory, Indicator, IndicatorKind, Tlp};

/// First sid of the range Tanoa's Suricata rules use.
pub const SID_BASE: u32 = 1_000_000_000;
/// Number of sids in the range.
pub const SID_SPAN: u32 = 1_000_000_000;

/// A value a writer cannot represent safely.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} {value:?}: {reason}")]
pub struct BlocklistError {
    /// Kind of the value.
    pub kind: IndicatorKind,
    /// The value.
    pub value: String,
    /// Why it cannot be written.
    pub reason: String,
}

/// What a blocklist export selects. `Default` is the safe default: TLP up to GREEN, any
/// confidence, every kind and origin, warning-listed values excluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportFilter {
    /// Most restrictive TLP included.
    pub max_tlp: Tlp,
    /// Minimum indicator confidence (an unstated confidence counts as 0).
    pub min_confidence: u8,
    /// Only these kinds (empty = all).
    pub kinds: Vec<IndicatorKind>,
    /// Only these origins, sorted and unique (empty = all).
    pub origins: Vec<String>,
    /// Also select indicators on a warning list (they are marked).
    pub include_warninglisted: bool,
}

impl Default for ExportFilter {
    fn default() -> Self {
        ExportFilter {
            max_tlp: crate::policy::DEFAULT_EXPORT_CEILING,
            min_confidence: 0,
            kinds: Vec::new(),
            origins: Vec::new(),
            include_warninglisted: false,
        }
    }
}

fn live(valid_until_ms: Option<i64>, now_ms: i64) -> bool {
    valid_until_ms.is_none_or(|t| t > now_ms)
}

impl ExportFilter {
    /// Whether an advisory (a latest revision) is exported from at all: not withdrawn, not
    /// expired, TLP at most the ceiling, origin selected.
    pub fn advisory_selected(&self, a: &Advisory, now_ms: i64) -> bool {
        !a.withdrawn
            && a.tlp <= self.max_tlp
            && live(a.valid_until_ms, now_ms)
            && (self.origins.is_empty() || self.origins.binary_search(&a.origin).is_ok())
    }

    /// Whether an indicator of a selected advisory is exported: kind, confidence, not expired.
    pub fn indicator_selected(&self, i: &Indicator, now_ms: i64) -> bool {
        (self.kinds.is_empty() || self.kinds.contains(&i.kind))
            && i.confidence >= self.min_confidence
            && live(i.valid_until_ms, now_ms)
    }

    /// The indicators of `a` this filter exports, with their indices (warning lists aside).
    pub fn select<'a>(
        &'a self,
        a: &'a Advisory,
        now_ms: i64,
    ) -> impl Iterator<Item = (usize, &'a Indicator)> + 'a {
        let ok = self.advisory_selected(a, now_ms);
        a.indicators
            .iter()
            .enumerate()
            .filter(move |(_, i)| ok && self.indicator_selected(i, now_ms))
    }
}

/// The earlier of two optional expiries (`None` = never).
pub fn earliest(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

/// One exported indicator of one advisory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Kind.
    pub kind: IndicatorKind,
    /// Normalized value.
    pub value: String,
    /// Origin of the advisory.
    pub origin: String,
    /// Advisory id.
    pub advisory_id: String,
    /// TLP of the advisory.
    pub tlp: Tlp,
    /// Confidence (0 = not stated).
    pub confidence: u8,
    /// Expiry: the earlier of the indicator's and the advisory's.
    pub valid_until_ms: Option<i64>,
    /// Warning lists the value is on (only when they are included).
    pub warning_lists: Vec<String>,
}

/// Where one blocklist value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// Origin member.
    pub origin: String,
    /// Advisory id.
    pub advisory_id: String,
    /// TLP of the advisory.
    pub tlp: Tlp,
    /// Confidence (0 = not stated).
    pub confidence: u8,
    /// Expiry.
    pub valid_until_ms: Option<i64>,
}

/// One value of a blocklist with every advisory holding it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Kind.
    pub kind: IndicatorKind,
    /// Value.
    pub value: String,
    /// Advisories holding it, by (origin, advisory id).
    pub sources: Vec<Source>,
    /// Warning lists it is on (sorted; empty = none, or not asked).
    pub warning_lists: Vec<String>,
}

impl Entry {
    /// Highest confidence among the sources.
    pub fn confidence(&self) -> u8 {
        self.sources.iter().map(|s| s.confidence).max().unwrap_or(0)
    }

    /// Most restrictive TLP among the sources.
    pub fn tlp(&self) -> Tlp {
        self.sources
            .iter()
            .map(|s| s.tlp)
            .max()
            .unwrap_or(Tlp::Clear)
    }

    /// Until when some source still asks to act on it (`None` = no end).
    pub fn valid_until_ms(&self) -> Option<i64> {
        if self.sources.iter().any(|s| s.valid_until_ms.is_none()) {
            return None;
        }
        self.sources.iter().filter_map(|s| s.valid_until_ms).max()
    }

    /// Origins, sorted and unique.
    pub fn origins(&self) -> Vec<&str> {
        let set: BTreeSet<&str> = self.sources.iter().map(|s| s.origin.as_str()).collect();
        set.into_iter().collect()
    }

    /// `origin/advisory-id` of every source.
    pub fn advisories(&self) -> Vec<String> {
        self.sources
            .iter()
            .map(|s| format!("{}/{}", s.origin, s.advisory_id))
            .collect()
    }
}

/// Merges rows into one entry per (kind, value), sorted by kind then value; each entry lists
/// its advisories by (origin, advisory id), without duplicates.
pub fn merge(rows: impl IntoIterator<Item = Row>) -> Vec<Entry> {
    let mut map: BTreeMap<(IndicatorKind, String), Entry> = BTreeMap::new();
    for r in rows {
        let e = map
            .entry((r.kind, r.value.clone()))
            .or_insert_with(|| Entry {
                kind: r.kind,
                value: r.value.clone(),
                sources: Vec::new(),
                warning_lists: Vec::new(),
            });
        for l in r.warning_lists {
            if !e.warning_lists.contains(&l) {
                e.warning_lists.push(l);
            }
        }
        e.sources.push(Source {
            origin: r.origin,
            advisory_id: r.advisory_id,
            tlp: r.tlp,
            confidence: r.confidence,
            valid_until_ms: r.valid_until_ms,
        });
    }
    let mut out: Vec<Entry> = map.into_values().collect();
    for e in &mut out {
        e.warning_lists.sort();
        e.sources.sort_by(|a, b| {
            (a.origin.as_str(), a.advisory_id.as_str())
                .cmp(&(b.origin.as_str(), b.advisory_id.as_str()))
        });
        e.sources
            .dedup_by(|b, a| a.origin == b.origin && a.advisory_id == b.advisory_id);
    }
    out
}

/// RFC 3339 UTC of Unix ms, to the second.
fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}

fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

fn refuse(e: &Entry, reason: &str) -> BlocklistError {
    BlocklistError {
        kind: e.kind,
        value: e.value.clone(),
        reason: reason.to_string(),
    }
}

/// First characters that make a spreadsheet read a cell as a formula (OWASP CSV injection).
const FORMULA_TRIGGERS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// Neutralises a cell a spreadsheet would read as a formula: when its first character is one
/// of `=`, `+`, `-`, `@`, TAB or CR, a single quote `'` is put in front (OWASP's
/// recommendation), so the cell is text. Any other value (IPv6 addresses such as `::1`,
/// `2001:db8::1`, every other indicator) is unchanged; a consumer that needs the exact value
/// removes one leading `'` when the character after it is one of those six.
pub fn csv_neutralise(s: &str) -> std::borrow::Cow<'_, str> {
    if s.starts_with(FORMULA_TRIGGERS) {
        std::borrow::Cow::Owned(format!("'{s}"))
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}

/// One RFC 4180 field, neutralised against formula injection (`csv_neutralise`), then quoted
/// when it holds a comma, a quote, CR or LF.
fn csv_field(s: &str) -> String {
    let s = csv_neutralise(s);
    if s.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.into_owned()
    }
}

/// The CSV header line.
pub const CSV_HEADER: &str =
    "kind,value,confidence,tlp,valid_until,origins,advisories,warning_lists";

/// CSV (RFC 4180, CRLF-free: one `\n` per record) with a header; every cell that starts with
/// `=`, `+`, `-`, `@`, TAB or CR gets a leading `'` (`csv_neutralise`); confidence is the highest of
/// the advisories (empty when none states one), TLP the most restrictive, `valid_until` the
/// latest expiry (empty = none), `origins`, `advisories` (`origin/advisory-id`) and
/// `warning_lists` separated by `;`.
pub fn to_csv(entries: &[Entry]) -> String {
    let mut out = String::with_capacity(64 * (entries.len() + 1));
    out.push_str(CSV_HEADER);
    out.push('\n');
    for e in entries {
        let conf = match e.confidence() {
            0 => String::new(),
            c => c.to_string(),
        };
        let fields = [
            e.kind.as_str().to_string(),
            e.value.clone(),
            conf,
            e.tlp().as_str().to_string(),
            e.valid_until_ms().map(rfc3339).unwrap_or_default(),
            e.origins().join(";"),
            e.advisories().join(";"),
            e.warning_lists.join(";"),
        ];
        let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        out.push_str(&line.join(","));
        out.push('\n');
    }
    out
}

/// One value per line, nothing else (warning-listed values cannot be marked in this format;
/// use CSV to see them). A value with a control character is refused.
pub fn to_text(entries: &[Entry]) -> Result<String, BlocklistError> {
    let mut out = String::with_capacity(32 * entries.len());
    for e in entries {
        if has_control(&e.value) || e.value.is_empty() {
            return Err(refuse(
                e,
                "has a control character (or is empty); a text blocklist holds one value per line",
            ));
        }
        out.push_str(&e.value);
        out.push('\n');
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Suricata
// ---------------------------------------------------------------------------------------------

/// The first sid a rule wants, before collisions: see the module documentation.
pub fn sid_home(rule: &str, kind: IndicatorKind, value: &str) -> u32 {
    let mut h = Sha256::new();
    h.update(b"tanoa-sid-v1\0");
    h.update(rule.as_bytes());
    h.update(b"\0");
    h.update(kind.as_str().as_bytes());
    h.update(b"\0");
    h.update(value.as_bytes());
    let d = h.finalize();
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    let off = u64::from_be_bytes(b) % u64::from(SID_SPAN);
    SID_BASE + u32::try_from(off).unwrap_or(0)
}

/// Assigns sids to rule keys `(rule, kind, value)`, returned in the order given: the home sid
/// when free; on a collision the key that sorts first keeps it and the others probe upwards
/// (wrapping inside the range), skipping sids taken or wanted by any key.
pub fn assign_sids(keys: &[(&str, IndicatorKind, &str)]) -> Vec<u32> {
    let homes: Vec<u32> = keys.iter().map(|(r, k, v)| sid_home(r, *k, v)).collect();
    let mut order: Vec<usize> = (0..keys.len()).collect();
    order.sort_by(|a, b| keys[*a].cmp(&keys[*b]));
    resolve_sids(&homes, &order)
}

/// Collision resolution of [`assign_sids`]: `homes[i]` is key i's wanted sid, `order` the keys
/// by precedence.
fn resolve_sids(homes: &[u32], order: &[usize]) -> Vec<u32> {
    let wanted: HashSet<u32> = homes.iter().copied().collect();
    let mut taken: HashSet<u32> = HashSet::with_capacity(homes.len());
    let mut out = vec![0u32; homes.len()];
    let mut losers = Vec::new();
    for &i in order {
        if taken.insert(homes[i]) {
            out[i] = homes[i];
        } else {
            losers.push(i);
        }
    }
    for i in losers {
        let mut s = homes[i];
        loop {
            s = if s >= SID_BASE + (SID_SPAN - 1) {
                SID_BASE
            } else {
                s + 1
            };
            if !taken.contains(&s) && !wanted.contains(&s) {
                break;
            }
        }
        taken.insert(s);
        out[i] = s;
    }
    out
}

/// Text of a quoted `content` value: printable ASCII as is, except `"`, `;`, `\` and `|`,
/// which (with every other byte) go in `|..|` hex.
fn content_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 8);
    let mut in_hex = false;
    for b in value.bytes() {
        let plain = (0x20..0x7f).contains(&b) && !matches!(b, b'"' | b';' | b'\\' | b'|');
        if plain {
            if in_hex {
                out.push('|');
                in_hex = false;
            }
            out.push(char::from(b));
        } else {
            if in_hex {
                out.push(' ');
            } else {
                out.push('|');
                in_hex = true;
            }
            let _ = write!(out, "{b:02X}");
        }
    }
    if in_hex {
        out.push('|');
    }
    out
}

/// Text of a quoted `msg`: printable ASCII, with `"`, `;` and `\` backslash-escaped; other
/// characters become `?`.
fn msg_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '"' | ';' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => out.push('?'),
        }
    }
    out
}

fn rule_msg(e: &Entry) -> String {
    let mut advisories = e.advisories();
    let more = advisories.len().saturating_sub(2);
    advisories.truncate(2);
    let mut m = format!(
        "TANOA {} {} ({}{})",
        e.kind,
        e.value,
        advisories.join(", "),
        if more > 0 {
            format!(" +{more} more")
        } else {
            String::new()
        }
    );
    if !e.warning_lists.is_empty() {
        let _ = write!(m, " [warning lists: {}]", e.warning_lists.join(", "));
    }
    msg_escape(&m)
}

/// The rule variants of an entry, as (variant, rule text without `sid`/`rev`), or why none.
fn suricata_bodies(e: &Entry) -> Result<Vec<(&'static str, String)>, &'static str> {
    let msg = rule_msg(e);
    match e.kind {
        IndicatorKind::Ipv4 | IndicatorKind::Ipv6 | IndicatorKind::Cidr => {
            let ok = e
                .value
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || matches!(b, b'.' | b':' | b'/'));
            if !ok {
                return Err("not an address or network");
            }
            Ok(vec![(
                "ip",
                format!("alert ip any any <> {} any (msg:\"{msg}\";", e.value),
            )])
        }
        IndicatorKind::Domain => {
            let c = content_escape(&format!(".{}", e.value));
            Ok(vec![
                (
                    "dns",
                    format!(
                        "alert dns any any -> any any (msg:\"{msg}\"; dns.query; dotprefix; \
                         content:\"{c}\"; nocase; endswith;"
                    ),
                ),
                (
                    "tls",
                    format!(
                        "alert tls any any -> any any (msg:\"{msg}\"; tls.sni; dotprefix; \
                         content:\"{c}\"; nocase; endswith;"
                    ),
                ),
            ])
        }
        IndicatorKind::Url => {
            let Ok(u) = url::Url::parse(&e.value) else {
                return Err("not a URL");
            };
            if !matches!(u.scheme(), "http" | "https") {
                return Err("no Suricata buffer for this URL scheme");
            }
            let Some(host) = u.host_str() else {
                return Err("URL without a host");
            };
            let port = u
                .port()
                .map_or_else(|| "any".to_string(), |p| p.to_string());
            let mut uri = u.path().to_string();
            if let Some(q) = u.query() {
                uri.push('?');
                uri.push_str(q);
            }
            Ok(vec![(
                "http",
                format!(
                    "alert http any any -> any {port} (msg:\"{msg}\"; http.host; \
                     content:\"{}\"; startswith; endswith; http.uri.raw; content:\"{}\"; \
                     startswith; endswith;",
                    content_escape(&host.to_ascii_lowercase()),
                    content_escape(&uri)
                ),
            )])
        }
        IndicatorKind::Filename => Ok(vec![(
            "file",
            format!(
                "alert http any any -> any any (msg:\"{msg}\"; file.name; content:\"{}\"; \
                 startswith; endswith;",
                content_escape(&e.value)
            ),
        )]),
        IndicatorKind::Md5
        | IndicatorKind::Sha1
        | IndicatorKind::Sha256
        | IndicatorKind::Sha512 => {
            Err("file hashes need Suricata hash-list files (filemd5/filesha1/filesha256)")
        }
        IndicatorKind::Email => Err("no Suricata keyword matches e-mail addresses reliably"),
        IndicatorKind::Cve | IndicatorKind::Asn => Err("not observable in traffic"),
    }
}

/// Suricata rules: per address or network one `ip` rule (both directions); per domain a
/// `dns.query` and a `tls.sni` rule (the domain and its subdomains); per http(s) URL one rule on
/// `http.host` and `http.uri.raw` (exact); per file name one `file.name` rule on HTTP. Kinds
/// Suricata cannot match without hash-list files, or at all, are counted in the header and
/// skipped. `header` lines are written first as comments. Every rule is checked with
/// [`validate_suricata_rule`] before it is returned.
pub fn to_suricata(entries: &[Entry], header: &[String]) -> Result<String, BlocklistError> {
    let mut rules: Vec<(&Entry, &'static str, String)> = Vec::new();
    let mut skipped: BTreeMap<(IndicatorKind, &'static str), usize> = BTreeMap::new();
    for e in entries {
        if has_control(&e.value) {
            return Err(refuse(e, "has a control character"));
        }
        match suricata_bodies(e) {
            Ok(bodies) => rules.extend(bodies.into_iter().map(|(v, b)| (e, v, b))),
            Err(why) => *skipped.entry((e.kind, why)).or_default() += 1,
        }
    }
    let keys: Vec<(&str, IndicatorKind, &str)> = rules
        .iter()
        .map(|(e, v, _)| (*v, e.kind, e.value.as_str()))
        .collect();
    let sids = assign_sids(&keys);
    let mut out = String::with_capacity(200 * (rules.len() + 8));
    for h in header {
        let _ = writeln!(out, "# {}", one_line(h));
    }
    let _ = writeln!(
        out,
        "# {} rules for {} values; sids {}-{} derived from SHA-256 of (rule, kind, value), stable \
         across exports",
        rules.len(),
        entries.len(),
        SID_BASE,
        SID_BASE + (SID_SPAN - 1)
    );
    for ((kind, why), n) in &skipped {
        let _ = writeln!(out, "# skipped {n} {kind}: {why}");
    }
    for ((e, _, body), sid) in rules.iter().zip(sids) {
        let rule = format!("{body} sid:{sid}; rev:1;)");
        validate_suricata_rule(&rule).map_err(|m| refuse(e, &format!("rule not valid: {m}")))?;
        out.push_str(&rule);
        out.push('\n');
    }
    Ok(out)
}

fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Checks the structure of one Suricata rule as this module writes them: `action proto src
/// sport dir dst dport (options)`, every option `name;` or `name:value;`, quoted values closed
/// with only `\"`, `\;` and `\\` escapes, `|hex|` groups of hex byte pairs in `content`, and
/// `msg`, `sid` (in Tanoa's range) and `rev` present.
pub fn validate_suricata_rule(rule: &str) -> Result<(), String> {
    let open = rule.find('(').ok_or_else(|| "no option list".to_string())?;
    let head: Vec<&str> = rule[..open].split_whitespace().collect();
    let [action, proto, _src, _sport, dir, _dst, _dport] = head.as_slice() else {
        return Err(format!("header has {} parts, expected 7", head.len()));
    };
    if !matches!(*action, "alert" | "drop" | "pass" | "reject") {
        return Err(format!("unknown action {action:?}"));
    }
    if !matches!(*proto, "ip" | "tcp" | "udp" | "dns" | "tls" | "http") {
        return Err(format!("unexpected protocol {proto:?}"));
    }
    if !matches!(*dir, "->" | "<>") {
        return Err(format!("bad direction {dir:?}"));
    }
    let body = rule[open + 1..]
        .strip_suffix(')')
        .ok_or_else(|| "option list not closed by ')' at the end".to_string())?;
    let b = body.as_bytes();
    let mut i = 0;
    let mut names = Vec::new();
    let mut sid = None;
    while i < b.len() {
        while i < b.len() && b[i] == b' ' {
            i += 1;
        }
        if i == b.len() {
            break;
        }
        let start = i;
        while i < b.len() && (b[i].is_ascii_alphanumeric() || matches!(b[i], b'.' | b'_')) {
            i += 1;
        }
        let name = &body[start..i];
        if name.is_empty() {
            return Err(format!("option name expected at byte {}", open + 1 + start));
        }
        if i < b.len() && b[i] == b':' {
            i += 1;
            if i < b.len() && b[i] == b'"' {
                i += 1;
                let vstart = i;
                loop {
                    match b.get(i) {
                        None => return Err(format!("{name}: unterminated string")),
                        Some(b'\\') => match b.get(i + 1) {
                            Some(b'"' | b';' | b'\\') => i += 2,
                            _ => return Err(format!("{name}: bad escape")),
                        },
                        Some(b'"') => break,
                        Some(b';') => return Err(format!("{name}: unescaped ';' in string")),
                        Some(_) => i += 1,
                    }
                }
                let value = &body[vstart..i];
                if name == "content" {
                    check_content(value)?;
                }
                i += 1;
            } else {
                let vstart = i;
                while i < b.len() && b[i] != b';' {
                    if b[i] == b'"' || b[i] == b'\\' {
                        return Err(format!("{name}: stray quote or backslash"));
                    }
                    i += 1;
                }
                if name == "sid" {
                    sid = body[vstart..i].trim().parse::<u32>().ok();
                }
            }
        }
        if b.get(i) != Some(&b';') {
            return Err(format!("{name}: option not ended by ';'"));
        }
        i += 1;
        names.push(name);
    }
    for required in ["msg", "sid", "rev"] {
        if !names.contains(&required) {
            return Err(format!("no {required}"));
        }
    }
    match sid {
        Some(s) if (SID_BASE..SID_BASE + SID_SPAN).contains(&s) => Ok(()),
        other => Err(format!("sid {other:?} outside {SID_BASE}..")),
    }
}

fn check_content(v: &str) -> Result<(), String> {
    let mut in_hex = false;
    let mut digits = 0;
    for c in v.chars() {
        if c == '|' {
            if in_hex && digits % 2 != 0 {
                return Err("content: odd number of hex digits".into());
            }
            in_hex = !in_hex;
            digits = 0;
        } else if in_hex {
            if c.is_ascii_hexdigit() {
                digits += 1;
            } else if c != ' ' {
                return Err(format!("content: {c:?} inside |hex|"));
            }
        }
    }
    if in_hex {
        return Err("content: unclosed |hex|".into());
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Zeek
// ---------------------------------------------------------------------------------------------

/// The Zeek intel header line.
pub const ZEEK_FIELDS: &str = "#fields\tindicator\tindicator_type\tmeta.source\tmeta.desc";

/// Zeek's `Intel::Type` of a kind, or `None` when Zeek has none.
pub fn zeek_type(kind: IndicatorKind) -> Option<&'static str> {
    Some(match kind {
        IndicatorKind::Ipv4 | IndicatorKind::Ipv6 => "Intel::ADDR",
        IndicatorKind::Cidr => "Intel::SUBNET",
        IndicatorKind::Domain => "Intel::DOMAIN",
        IndicatorKind::Url => "Intel::URL",
        IndicatorKind::Email => "Intel::EMAIL",
        IndicatorKind::Md5
        | IndicatorKind::Sha1
        | IndicatorKind::Sha256
        | IndicatorKind::Sha512 => "Intel::FILE_HASH",
        IndicatorKind::Filename => "Intel::FILE_NAME",
        IndicatorKind::Cve | IndicatorKind::Asn => return None,
    })
}

/// A URL as Zeek's intel framework sees HTTP URLs: host[:port] + path + query, without the
/// scheme, user info and fragment.
pub fn zeek_url(value: &str) -> Option<String> {
    let u = url::Url::parse(value).ok()?;
    let mut out = u.host_str()?.to_string();
    if let Some(p) = u.port() {
        let _ = write!(out, ":{p}");
    }
    out.push_str(u.path());
    if let Some(q) = u.query() {
        out.push('?');
        out.push_str(q);
    }
    Some(out)
}

/// One Zeek ASCII field: control characters and `\` as `\xHH` (Zeek unescapes them), and a
/// field that would read as unset (`-`) or empty (`(empty)`) with its first byte escaped.
fn zeek_field(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii_control() || c == '\\' {
            let _ = write!(out, "\\x{:02x}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    if out == "-" || out == "(empty)" {
        out.replace_range(..1, if out == "-" { "\\x2d" } else { "\\x28" });
    }
    if out.is_empty() {
        out.push_str("(empty)");
    }
    out
}

/// A Zeek intel-framework file (`Intel::read_files`): the `#fields` line, then one line per
/// value: the indicator (URLs without their scheme), its `Intel::Type`, `meta.source` (the
/// origins) and `meta.desc` (the advisories, and the warning lists when included). CVEs and
/// AS numbers have no intel type and are counted in a comment. `header` lines come first as
/// comments.
pub fn to_zeek(entries: &[Entry], header: &[String]) -> Result<String, BlocklistError> {
    let mut out = String::with_capacity(96 * (entries.len() + 4));
    for h in header {
        let _ = writeln!(out, "# {}", one_line(h));
    }
    let mut skipped: BTreeMap<IndicatorKind, usize> = BTreeMap::new();
    let mut lines = String::new();
    for e in entries {
        let Some(t) = zeek_type(e.kind) else {
            *skipped.entry(e.kind).or_default() += 1;
            continue;
        };
        let indicator = if e.kind == IndicatorKind::Url {
            zeek_url(&e.value).ok_or_else(|| refuse(e, "not a URL with a host"))?
        } else {
            e.value.clone()
        };
        if indicator.is_empty() {
            return Err(refuse(e, "empty"));
        }
        let mut desc = e.advisories().join(", ");
        if !e.warning_lists.is_empty() {
            let _ = write!(desc, " [warning lists: {}]", e.warning_lists.join(", "));
        }
        let _ = writeln!(
            lines,
            "{}\t{t}\t{}\t{}",
            zeek_field(&indicator),
            zeek_field(&e.origins().join(",")),
            zeek_field(&desc)
        );
    }
    if !skipped.is_empty() {
        let counts: Vec<String> = skipped.iter().map(|(k, n)| format!("{n} {k}")).collect();
        let _ = writeln!(out, "# skipped {}: no Zeek intel type", counts.join(", "));
    }
    out.push_str(ZEEK_FIELDS);
    out.push('\n');
    out.push_str(&lines);
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::model::Severity;

    const NOW: i64 = 1_767_225_600_000;

    fn ind(kind: IndicatorKind, value: &str, confidence: u8) -> Indicator {
        Indicator {
            kind,
            value: value.into(),
            confidence,
            valid_until_ms: None,
            note: String::new(),
        }
    }

    fn adv(origin: &str, id: &str, tlp: Tlp, indicators: Vec<Indicator>) -> Advisory {
        Advisory {
            id: id.into(),
            origin: origin.into(),
            revision: 1,
            created_ms: NOW - 1000,
            modified_ms: NOW - 1000,
            valid_until_ms: None,
            tlp,
            audience: Vec::new(),
            title: "t".into(),
            summary: String::new(),
            severity: Severity::High,
            actors: Vec::new(),
            cves: Vec::new(),
            indicators,
            references: Vec::new(),
            withdrawn: false,
            withdrawn_reason: String::new(),
            extras: Vec::new(),
        }
    }

    fn row(kind: IndicatorKind, value: &str, origin: &str, id: &str) -> Row {
        Row {
            kind,
            value: value.into(),
            origin: origin.into(),
            advisory_id: id.into(),
            tlp: Tlp::Green,
            confidence: 80,
            valid_until_ms: None,
            warning_lists: Vec::new(),
        }
    }

    fn entries(rows: Vec<Row>) -> Vec<Entry> {
        merge(rows)
    }

    #[test]
    fn the_filter_selects_active_indicators_only() {
        let f = ExportFilter::default();
        let mut a = adv(
            "ws-cert",
            "a",
            Tlp::Green,
            vec![
                ind(IndicatorKind::Ipv4, "192.0.2.1", 90),
                Indicator {
                    valid_until_ms: Some(NOW),
                    ..ind(IndicatorKind::Ipv4, "192.0.2.2", 90)
                },
                ind(IndicatorKind::Domain, "c2.example", 10),
            ],
        );
        let picked = |f: &ExportFilter, a: &Advisory| -> Vec<usize> {
            f.select(a, NOW).map(|(i, _)| i).collect()
        };
        // The indicator expiring exactly now is expired.
        assert_eq!(picked(&f, &a), [0, 2]);
        let f2 = ExportFilter {
            min_confidence: 50,
            ..ExportFilter::default()
        };
        assert_eq!(picked(&f2, &a), [0]);
        let f3 = ExportFilter {
            kinds: vec![IndicatorKind::Domain],
            ..ExportFilter::default()
        };
        assert_eq!(picked(&f3, &a), [2]);
        let f4 = ExportFilter {
            origins: vec!["fj-cert".into()],
            ..ExportFilter::default()
        };
        assert!(picked(&f4, &a).is_empty());
        a.tlp = Tlp::Amber;
        assert!(
            picked(&f, &a).is_empty(),
            "AMBER is above the default ceiling"
        );
        let amber = ExportFilter {
            max_tlp: Tlp::Amber,
            ..ExportFilter::default()
        };
        assert_eq!(picked(&amber, &a), [0, 2]);
        a.valid_until_ms = Some(NOW - 1);
        assert!(picked(&amber, &a).is_empty(), "expired advisory");
        a.valid_until_ms = Some(NOW + 1);
        a.withdrawn = true;
        assert!(picked(&amber, &a).is_empty(), "withdrawn advisory");
        assert_eq!(earliest(Some(5), None), Some(5));
        assert_eq!(earliest(Some(5), Some(3)), Some(3));
        assert_eq!(earliest(None, None), None);
    }

    #[test]
    fn values_are_merged_across_advisories_keeping_every_source() {
        let mut r2 = row(IndicatorKind::Ipv4, "192.0.2.1", "fj-cert", "fj-1");
        r2.tlp = Tlp::Amber;
        r2.confidence = 95;
        r2.valid_until_ms = Some(NOW);
        let e = entries(vec![
            row(IndicatorKind::Domain, "b.example", "ws-cert", "ws-1"),
            row(IndicatorKind::Ipv4, "192.0.2.1", "ws-cert", "ws-1"),
            r2,
            row(IndicatorKind::Ipv4, "192.0.2.1", "ws-cert", "ws-1"),
        ]);
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].kind, IndicatorKind::Ipv4, "sorted by kind, then value");
        assert_eq!(e[0].advisories(), ["fj-cert/fj-1", "ws-cert/ws-1"]);
        assert_eq!(e[0].origins(), ["fj-cert", "ws-cert"]);
        assert_eq!(e[0].confidence(), 95);
        assert_eq!(e[0].tlp(), Tlp::Amber);
        assert_eq!(e[0].valid_until_ms(), None, "one source never expires");
        assert_eq!(e[1].advisories(), ["ws-cert/ws-1"]);
    }

    #[test]
    fn csv_has_a_header_and_quotes_what_needs_it() {
        let mut w = row(IndicatorKind::Filename, "a,\"b\".exe", "ws-cert", "ws-2");
        w.warning_lists = vec!["x-list".into(), "a-list".into()];
        w.confidence = 0;
        w.valid_until_ms = Some(1_767_312_000_000);
        let csv = to_csv(&entries(vec![
            row(IndicatorKind::Ipv4, "192.0.2.1", "ws-cert", "ws-1"),
            row(IndicatorKind::Ipv4, "192.0.2.1", "fj-cert", "fj-1"),
            w,
        ]));
        assert_eq!(
            csv,
            "kind,value,confidence,tlp,valid_until,origins,advisories,warning_lists\n\
             ipv4,192.0.2.1,80,GREEN,,fj-cert;ws-cert,fj-cert/fj-1;ws-cert/ws-1,\n\
             filename,\"a,\"\"b\"\".exe\",,GREEN,2026-01-02T00:00:00Z,ws-cert,ws-cert/ws-2,a-list;x-list\n"
        );
    }

    #[test]
    fn csv_cells_that_a_spreadsheet_would_run_as_formulas_are_neutralised() {
        let rows = vec![
            row(
                IndicatorKind::Filename,
                "=HYPERLINK(\"http://x.example\")",
                "ws-cert",
                "ws-1",
            ),
            row(
                IndicatorKind::Filename,
                "+cmd|' /C calc'!A0",
                "ws-cert",
                "ws-2",
            ),
            row(IndicatorKind::Filename, "-2+3.exe", "ws-cert", "ws-3"),
            row(IndicatorKind::Filename, "@SUM(1+1).doc", "ws-cert", "ws-4"),
            row(IndicatorKind::Ipv6, "::1", "ws-cert", "ws-5"),
            row(IndicatorKind::Ipv6, "2001:db8::1", "ws-cert", "ws-6"),
        ];
        let mut w = row(IndicatorKind::Domain, "a.example", "ws-cert", "ws-7");
        w.warning_lists = vec!["=evil-list".into()];
        let mut rows = rows;
        rows.push(w);
        let csv = to_csv(&entries(rows));
        let lines: Vec<&str> = csv.lines().collect();
        assert!(lines.contains(
            &"filename,\"'=HYPERLINK(\"\"http://x.example\"\")\",80,GREEN,,ws-cert,ws-cert/ws-1,"
        ), "{csv}");
        assert!(lines.contains(&"filename,'+cmd|' /C calc'!A0,80,GREEN,,ws-cert,ws-cert/ws-2,"));
        assert!(lines.contains(&"filename,'-2+3.exe,80,GREEN,,ws-cert,ws-cert/ws-3,"));
        assert!(lines.contains(&"filename,'@SUM(1+1).doc,80,GREEN,,ws-cert,ws-cert/ws-4,"));
        // IPv6 addresses (and every value not starting with a trigger) are left as they are.
        assert!(lines.contains(&"ipv6,::1,80,GREEN,,ws-cert,ws-cert/ws-5,"));
        assert!(lines.contains(&"ipv6,2001:db8::1,80,GREEN,,ws-cert,ws-cert/ws-6,"));
        // Every cell is neutralised, not only the value.
        assert!(lines.contains(&"domain,a.example,80,GREEN,,ws-cert,ws-cert/ws-7,'=evil-list"));
        // No cell of any record starts with a trigger once its quotes are removed.
        for line in &lines[1..] {
            for cell in line.split(',') {
                let c = cell.trim_start_matches('"');
                assert!(!c.starts_with(FORMULA_TRIGGERS), "{cell:?} in {line:?}");
            }
        }
        assert_eq!(csv_neutralise("\tx"), "'\tx");
        assert_eq!(csv_neutralise("\rx"), "'\rx");
        assert_eq!(csv_neutralise("x-1"), "x-1");
    }

    #[test]
    fn text_is_one_value_per_line_and_refuses_control_characters() {
        let t = to_text(&entries(vec![
            row(IndicatorKind::Domain, "c2.example", "ws-cert", "ws-1"),
            row(IndicatorKind::Ipv4, "192.0.2.1", "ws-cert", "ws-1"),
        ]))
        .unwrap();
        assert_eq!(t, "192.0.2.1\nc2.example\n");
        let e = to_text(&entries(vec![row(
            IndicatorKind::Filename,
            "a\nb",
            "ws-cert",
            "ws-1",
        )]))
        .unwrap_err();
        assert!(e.to_string().contains("control character"), "{e}");
    }

    #[test]
    fn sids_are_stable_and_collisions_move_only_the_later_key() {
        // Fixed forever: changing the derivation would renumber every deployed rule.
        assert_eq!(
            sid_home("ip", IndicatorKind::Ipv4, "192.0.2.1"),
            SID_STABLE_EXAMPLE
        );
        let keys = [
            ("ip", IndicatorKind::Ipv4, "192.0.2.1"),
            ("dns", IndicatorKind::Domain, "c2.example"),
        ];
        let a = assign_sids(&keys);
        let b = assign_sids(&[keys[1], keys[0]]);
        assert_eq!((a[0], a[1]), (b[1], b[0]), "independent of input order");
        // Forced collisions: keys 0 and 2 want the same sid, key 1 wants the next one.
        let homes = [
            SID_BASE + 5,
            SID_BASE + 6,
            SID_BASE + 5,
            SID_BASE + SID_SPAN - 1,
        ];
        let got = resolve_sids(&[homes[0], homes[1], homes[2]], &[0, 1, 2]);
        assert_eq!(got, [SID_BASE + 5, SID_BASE + 6, SID_BASE + 7]);
        let got = resolve_sids(&[homes[3], homes[3]], &[1, 0]);
        assert_eq!(
            got,
            [SID_BASE, SID_BASE + SID_SPAN - 1],
            "wraps inside the range"
        );
    }

    const SID_STABLE_EXAMPLE: u32 = 1_750_664_038;

    fn suricata_of(rows: Vec<Row>) -> Vec<String> {
        to_suricata(&entries(rows), &["test header".into()])
            .unwrap()
            .lines()
            .map(String::from)
            .collect()
    }

    #[test]
    fn suricata_rules_escape_values_and_validate() {
        let rows = vec![
            row(IndicatorKind::Ipv4, "192.0.2.1", "ws-cert", "ws-1"),
            row(IndicatorKind::Cidr, "2001:db8::/32", "ws-cert", "ws-1"),
            row(IndicatorKind::Domain, "c2.example", "ws-cert", "ws-1"),
            row(
                IndicatorKind::Url,
                "http://c2.example:8080/a;b?q=\"x\"|y",
                "ws-cert",
                "ws-1",
            ),
            row(IndicatorKind::Filename, "in\"voice;.exe", "ws-cert", "ws-1"),
            row(IndicatorKind::Md5, &"a".repeat(32), "ws-cert", "ws-1"),
            row(IndicatorKind::Email, "x@c2.example", "ws-cert", "ws-1"),
            row(
                IndicatorKind::Url,
                "ftp://files.example/x",
                "ws-cert",
                "ws-1",
            ),
        ];
        let lines = suricata_of(rows.clone());
        let sid = |rule: &str, k: IndicatorKind, v: &str| sid_home(rule, k, v);
        assert_eq!(lines[0], "# test header");
        assert_eq!(
            lines[1],
            format!(
                "# 6 rules for 8 values; sids {SID_BASE}-1999999999 derived from SHA-256 of \
                 (rule, kind, value), stable across exports"
            )
        );
        assert_eq!(
            lines[2],
            "# skipped 1 url: no Suricata buffer for this URL scheme"
        );
        assert_eq!(
            lines[3],
            "# skipped 1 email: no Suricata keyword matches e-mail addresses reliably"
        );
        assert_eq!(
            lines[4],
            "# skipped 1 md5: file hashes need Suricata hash-list files (filemd5/filesha1/filesha256)"
        );
        let rules = &lines[5..];
        assert_eq!(
            rules[0],
            format!(
                "alert ip any any <> 192.0.2.1 any (msg:\"TANOA ipv4 192.0.2.1 (ws-cert/ws-1)\"; \
                 sid:{}; rev:1;)",
                sid("ip", IndicatorKind::Ipv4, "192.0.2.1")
            )
        );
        assert_eq!(
            rules[1],
            format!(
                "alert ip any any <> 2001:db8::/32 any (msg:\"TANOA cidr 2001:db8::/32 \
                 (ws-cert/ws-1)\"; sid:{}; rev:1;)",
                sid("ip", IndicatorKind::Cidr, "2001:db8::/32")
            )
        );
        assert_eq!(
            rules[2],
            format!(
                "alert dns any any -> any any (msg:\"TANOA domain c2.example (ws-cert/ws-1)\"; \
                 dns.query; dotprefix; content:\".c2.example\"; nocase; endswith; sid:{}; rev:1;)",
                sid("dns", IndicatorKind::Domain, "c2.example")
            )
        );
        assert!(
            rules[3].starts_with("alert tls any any -> any any ("),
            "{}",
            rules[3]
        );
        assert!(
            rules[3].contains("tls.sni; dotprefix; content:\".c2.example\"; nocase; endswith;")
        );
        assert_eq!(
            rules[4],
            format!(
                "alert http any any -> any 8080 (msg:\"TANOA url \
                 http://c2.example:8080/a\\;b?q=\\\"x\\\"|y (ws-cert/ws-1)\"; http.host; \
                 content:\"c2.example\"; startswith; endswith; http.uri.raw; \
                 content:\"/a|3B|b?q=%22x%22|7C|y\"; startswith; endswith; sid:{}; rev:1;)",
                sid(
                    "http",
                    IndicatorKind::Url,
                    "http://c2.example:8080/a;b?q=\"x\"|y"
                )
            )
        );
        assert_eq!(
            rules[5],
            format!(
                "alert http any any -> any any (msg:\"TANOA filename in\\\"voice\\;.exe \
                 (ws-cert/ws-1)\"; file.name; content:\"in|22|voice|3B|.exe\"; startswith; \
                 endswith; sid:{}; rev:1;)",
                sid("file", IndicatorKind::Filename, "in\"voice;.exe")
            )
        );
        assert_eq!(rules.len(), 6);
        for r in rules {
            validate_suricata_rule(r).unwrap();
        }
        // Same input, same output (sids included).
        assert_eq!(suricata_of(rows), lines);
    }

    #[test]
    fn warning_listed_values_are_marked_in_rules_and_intel() {
        let mut r = row(IndicatorKind::Ipv4, "192.0.2.1", "ws-cert", "ws-1");
        r.warning_lists = vec!["rfc5735".into()];
        let lines = suricata_of(vec![r.clone()]);
        assert!(
            lines[2].contains("(ws-cert/ws-1) [warning lists: rfc5735]\";"),
            "{}",
            lines[2]
        );
        let z = to_zeek(&entries(vec![r]), &[]).unwrap();
        assert!(
            z.ends_with("ws-cert/ws-1 [warning lists: rfc5735]\n"),
            "{z}"
        );
    }

    #[test]
    fn the_rule_validator_refuses_broken_rules() {
        let ok = format!("alert ip any any <> 192.0.2.1 any (msg:\"x\"; sid:{SID_BASE}; rev:1;)");
        validate_suricata_rule(&ok).unwrap();
        for bad in [
            format!("alert ip any any <> 192.0.2.1 any (msg:\"x;\"; sid:{SID_BASE}; rev:1;)"),
            format!("alert ip any any <> 192.0.2.1 any (msg:\"x\"; sid:{SID_BASE}; rev:1;"),
            format!("alert ip any <> 192.0.2.1 any (msg:\"x\"; sid:{SID_BASE}; rev:1;)"),
            format!("alert ip any any <> 192.0.2.1 any (msg:\"x\"; sid:{SID_BASE} rev:1;)"),
            "alert ip any any <> 192.0.2.1 any (msg:\"x\"; sid:5; rev:1;)".to_string(),
            format!("alert ip any any <> 192.0.2.1 any (msg:\"x\"; sid:{SID_BASE};)"),
            format!(
                "alert http any any -> any any (msg:\"x\"; content:\"a|3|\"; sid:{SID_BASE}; rev:1;)"
            ),
            format!(
                "alert http any any -> any any (msg:\"x\"; content:\"a|3B\"; sid:{SID_BASE}; rev:1;)"
            ),
            format!("alert ip any any <> 192.0.2.1 any (msg:\"a\\b\"; sid:{SID_BASE}; rev:1;)"),
        ] {
            assert!(validate_suricata_rule(&bad).is_err(), "accepted: {bad}");
        }
    }

    #[test]
    fn zeek_intel_lines_use_intel_types_and_escape_fields() {
        let rows = vec![
            row(IndicatorKind::Ipv4, "192.0.2.1", "ws-cert", "ws-1"),
            row(IndicatorKind::Ipv4, "192.0.2.1", "fj-cert", "fj-9"),
            row(IndicatorKind::Cidr, "198.51.100.0/24", "ws-cert", "ws-1"),
            row(IndicatorKind::Domain, "c2.example", "ws-cert", "ws-1"),
            row(
                IndicatorKind::Url,
                "https://u:p@c2.example/a?b=1#frag",
                "ws-cert",
                "ws-1",
            ),
            row(IndicatorKind::Email, "x@c2.example", "ws-cert", "ws-1"),
            row(IndicatorKind::Sha256, &"b".repeat(64), "ws-cert", "ws-1"),
            row(IndicatorKind::Filename, "-", "ws-cert", "ws-1"),
            row(IndicatorKind::Filename, "tab\there", "ws-cert", "ws-1"),
            row(IndicatorKind::Cve, "CVE-2021-44228", "ws-cert", "ws-1"),
        ];
        let z = to_zeek(&entries(rows), &["h".into()]).unwrap();
        let expected = format!(
            "# h\n\
             # skipped 1 cve: no Zeek intel type\n\
             #fields\tindicator\tindicator_type\tmeta.source\tmeta.desc\n\
             192.0.2.1\tIntel::ADDR\tfj-cert,ws-cert\tfj-cert/fj-9, ws-cert/ws-1\n\
             198.51.100.0/24\tIntel::SUBNET\tws-cert\tws-cert/ws-1\n\
             c2.example\tIntel::DOMAIN\tws-cert\tws-cert/ws-1\n\
             c2.example/a?b=1\tIntel::URL\tws-cert\tws-cert/ws-1\n\
             x@c2.example\tIntel::EMAIL\tws-cert\tws-cert/ws-1\n\
             {}\tIntel::FILE_HASH\tws-cert\tws-cert/ws-1\n\
             \\x2d\tIntel::FILE_NAME\tws-cert\tws-cert/ws-1\n\
             tab\\x09here\tIntel::FILE_NAME\tws-cert\tws-cert/ws-1\n",
            "b".repeat(64)
        );
        assert_eq!(z, expected);
        // Every data line has exactly four fields.
        for l in z.lines().filter(|l| !l.starts_with('#')) {
            assert_eq!(l.split('\t').count(), 4, "{l}");
        }
    }
}
