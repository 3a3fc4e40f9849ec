//! MISP events in, MISP feeds out.
//!
//! Owns: turning one MISP event (JSON, with or without the `{"Event": …}` wrapper, see
//! [`convert_event`]) into one `Draft` whose `extras` keep the whole event verbatim
//! (`{"misp": <event>}`), and turning advisories into the files of a MISP feed directory
//! ([`Feed`]: one `<uuid>.json` per advisory, `manifest.json`, `hashes.csv`). The mapping —
//! MISP types to indicator kinds, `tlp:*` tags to TLP, galaxies to actors, what is not indexed
//! and why, what an export adds — is documented in `docs/interop.md` ("MISP").
//! Must never: do I/O, read a clock (every time comes from the advisory), sign, decide TLP
//! reach, or change what the origin wrote: the attributes of a kept event are exported byte
//! for byte (uuid, type, category, value, to_ids, comment); an export only adds what a MISP
//! feed needs and the event lacks, and the advisory's TLP tag.

mod export;
mod import;
#[cfg(test)]
mod tests;

pub use export::{
    DuplicateEvent, Feed, FeedEvent, WITHDRAWN_TAG, advisory_event_uuid, export_event,
    member_org_uuid,
};
pub use import::{
    ImportOptions, ImportReport, MispImport, NotIndexed, NotIndexedReason, convert_event,
    import_event,
};

use serde_json::Value;

use crate::model::Tlp;

/// A MISP event or advisory that cannot be converted: where (`Event.Attribute[4] (uuid …)`,
/// `Event.Tag[1]`, `--audience`, `extras.misp`…) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{at}: {reason}")]
pub struct MispError {
    /// The JSON path (and uuid, when the object has one) or option concerned.
    pub at: String,
    /// What is wrong.
    pub reason: String,
}

impl MispError {
    /// An error at `at`.
    pub fn new(at: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            at: at.into(),
            reason: reason.into(),
        }
    }
}

/// The MISP tag of a TLP label (`tlp:clear`, …, `tlp:amber+strict`, `tlp:red`).
pub fn tlp_tag(t: Tlp) -> &'static str {
    match t {
        Tlp::Clear => "tlp:clear",
        Tlp::Green => "tlp:green",
        Tlp::Amber => "tlp:amber",
        Tlp::AmberStrict => "tlp:amber+strict",
        Tlp::Red => "tlp:red",
    }
}

/// The colour MISP's `tlp` taxonomy gives a label.
fn tlp_colour(t: Tlp) -> &'static str {
    match t {
        Tlp::Clear => "#ffffff",
        Tlp::Green => "#33FF00",
        Tlp::Amber | Tlp::AmberStrict => "#FFC000",
        Tlp::Red => "#FF2B2B",
    }
}

/// What a tag name says about TLP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TagTlp {
    /// Not a `tlp:` tag.
    None,
    /// A TLP 2.0 label (`tlp:white` is TLP 1.0's name for CLEAR).
    Label(Tlp),
    /// A `tlp:` tag that names no TLP 2.0 label (`tlp:ex:chr`, `tlp:unclear`).
    Unknown,
}

/// Reads a tag name (`tlp:amber+strict`, case-insensitive).
fn tag_tlp(name: &str) -> TagTlp {
    let n = name.trim();
    let Some(rest) = n
        .get(..4)
        .filter(|p| p.eq_ignore_ascii_case("tlp:"))
        .and_then(|_| n.get(4..))
    else {
        return TagTlp::None;
    };
    match rest.trim().to_ascii_lowercase().as_str() {
        "clear" | "white" => TagTlp::Label(Tlp::Clear),
        "green" => TagTlp::Label(Tlp::Green),
        "amber" => TagTlp::Label(Tlp::Amber),
        "amber+strict" => TagTlp::Label(Tlp::AmberStrict),
        "red" => TagTlp::Label(Tlp::Red),
        _ => TagTlp::Unknown,
    }
}

/// The name of one entry of a MISP `Tag` list: `{"name": …}`, `{"Tag": {"name": …}}` (the
/// `EventTag` form of MISP's API) or a bare string.
fn tag_entry_name(v: &Value) -> Option<&str> {
    match v {
        Value::String(s) => Some(s),
        Value::Object(o) => match o.get("name") {
            Some(Value::String(s)) => Some(s),
            _ => o
                .get("Tag")
                .and_then(Value::as_object)
                .and_then(|t| t.get("name"))
                .and_then(Value::as_str),
        },
        _ => None,
    }
}

/// True for the canonical hyphenated text of a UUID (36 characters, any case): the only
/// event uuids used as feed file names.
fn is_uuid(s: &str) -> bool {
    s.len() == 36 && uuid::Uuid::try_parse(s).is_ok()
}

/// True for galaxy (cluster) types whose clusters name threat actors: `threat-actor`,
/// `mitre-intrusion-set` and the other `*intrusion-set` galaxies, `microsoft-activity-group`.
fn is_actor_galaxy(galaxy_type: &str) -> bool {
    let t = galaxy_type.trim().to_ascii_lowercase();
    t.ends_with("threat-actor") || t.ends_with("intrusion-set") || t.ends_with("activity-group")
}
