//! Who is who: `[member]` (this node's identity and signing key file), `[[trusted]]` (extra
//! verification keys) and the `[[members]]` roster (ids, endpoints, keys with validity
//! windows), each problem under its dotted key (`members[2].keys[0].valid_until`).

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use super::raw::{RawKey, RawMember, RawRosterMember, RawTrusted};
use super::resolve_path;
use crate::envelope::PublicKeyRecord;
use crate::membership::{Member, SpkiPin};
use crate::model::validate::check_member_id;

/// `[member]`: who this node is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberConfig {
    /// Member id, e.g. `ws-cert`.
    pub id: String,
    /// Display name (defaults to the id).
    pub name: String,
    /// Private signing key file (absolute).
    pub key_file: PathBuf,
}

/// One roster endpoint, `host:port`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PeerEndpoint {
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl PeerEndpoint {
    /// Parses `host:port` (`[v6]:port` for IPv6); the error says what is wrong.
    pub fn parse(s: &str) -> Result<PeerEndpoint, String> {
        let t = s.trim();
        let (host, port) = if let Some(rest) = t.strip_prefix('[') {
            let (h, p) = rest
                .split_once("]:")
                .ok_or_else(|| format!("{s:?} is not [ipv6]:port"))?;
            h.parse::<std::net::Ipv6Addr>()
                .map_err(|e| format!("{s:?}: {h:?} is not an IPv6 address ({e})"))?;
            (h, p)
        } else {
            t.rsplit_once(':')
                .ok_or_else(|| format!("{s:?} is not host:port such as 192.0.2.10:7400"))?
        };
        if host.is_empty() {
            return Err(format!("{s:?} has no host"));
        }
        if host.contains(':') && !t.starts_with('[') {
            return Err(format!("{s:?}: write an IPv6 address as [addr]:port"));
        }
        if !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '_'))
        {
            return Err(format!("{s:?}: {host:?} is not a host name or IP address"));
        }
        let port: u16 = port
            .parse()
            .map_err(|_| format!("{s:?}: {port:?} is not a port number (1-65535)"))?;
        if port == 0 {
            return Err(format!("{s:?}: port 0 cannot be dialled"));
        }
        Ok(PeerEndpoint {
            host: host.to_string(),
            port,
        })
    }
}

impl fmt::Display for PeerEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// One `[[members]]` entry of the roster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RosterMember {
    /// Member id (the `tanoa://member/<id>` of its certificate).
    pub id: String,
    /// Display name (defaults to the id).
    pub name: String,
    /// Where to reach its peer port, in order of preference.
    pub endpoints: Vec<PeerEndpoint>,
    /// Its signing keys with their validity windows.
    pub keys: Vec<PublicKeyRecord>,
    /// `tls_pins`: SHA-256 of the SubjectPublicKeyInfo of each certificate it may present on
    /// the peer port (`sha256:<64 hex>`; two during a renewal). A member with pins is
    /// authenticated by them only (self-signed certificates allowed, the CA plays no part); one
    /// without is authenticated by the CA (`peer.trust_anchors`).
    pub tls_pins: Vec<SpkiPin>,
}

impl RosterMember {
    /// This entry as the core's membership type.
    pub(crate) fn to_member(&self) -> Member {
        Member {
            id: self.id.clone(),
            name: self.name.clone(),
            endpoints: self.endpoints.iter().map(ToString::to_string).collect(),
            keys: self.keys.clone(),
            tls_pins: self.tls_pins.clone(),
        }
    }
}

/// Parses an RFC 3339 timestamp into Unix milliseconds.
pub fn parse_rfc3339_ms(s: &str) -> Result<i64, String> {
    let t = time::OffsetDateTime::parse(s.trim(), &time::format_description::well_known::Rfc3339)
        .map_err(|e| {
        format!("{s:?} is not an RFC 3339 time such as 2026-01-31T00:00:00Z ({e})")
    })?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000)
        .map_err(|_| format!("{s:?} is out of range"))
}

/// `[member]` resolved: the id is checked, the name defaults to it and the key file
/// (default `keys/<id>.key`) must exist.
pub(super) fn resolve_member(
    raw: RawMember,
    base: &Path,
    bad: &mut dyn FnMut(&str, String),
) -> MemberConfig {
    let id = raw.id.trim().to_string();
    if let Err(e) = check_member_id(&id) {
        bad("member.id", e);
    }
    let name = raw
        .name
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| id.clone());
    let key_file = resolve_path(
        base,
        &raw.key_file
            .unwrap_or_else(|| PathBuf::from(format!("keys/{id}.key"))),
    );
    if !key_file.is_file() {
        bad(
            "member.key_file",
            format!(
                "{} does not exist (create a member with: tanoa init)",
                key_file.display()
            ),
        );
    }
    MemberConfig { id, name, key_file }
}

/// `[[trusted]]` resolved: the entries without any problem.
pub(super) fn resolve_trusted(
    raw: Vec<RawTrusted>,
    bad: &mut dyn FnMut(&str, String),
) -> Vec<PublicKeyRecord> {
    let mut trusted = Vec::new();
    for (n, t) in raw.into_iter().enumerate() {
        let k = |f: &str| format!("trusted[{n}].{f}");
        let member = t.member.trim().to_string();
        let mut ok = true;
        if let Err(e) = check_member_id(&member) {
            bad(&k("member"), e);
            ok = false;
        }
        let key = key_with_window(&t.public_key, t.valid_from, t.valid_until, &k, bad, &mut ok);
        if let (true, Some((key, from, until))) = (ok, key) {
            trusted.push(PublicKeyRecord::new(member, key, from, until));
        }
    }
    trusted
}

/// Ids and key ids already seen in the roster, with where (index, and owner for keys).
#[derive(Default)]
struct Seen {
    ids: HashMap<String, usize>,
    keys: HashMap<String, (usize, String)>,
}

/// `[[members]]` resolved: the entries without any problem (ids and keys unique).
pub(super) fn resolve_roster(
    raw: Vec<RawRosterMember>,
    bad: &mut dyn FnMut(&str, String),
) -> Vec<RosterMember> {
    let mut seen = Seen::default();
    raw.into_iter()
        .enumerate()
        .filter_map(|(n, m)| roster_member(n, m, &mut seen, bad))
        .collect()
}

/// One `[[members]]` entry (`members[n]`); `None` when it has any problem.
fn roster_member(
    n: usize,
    m: RawRosterMember,
    seen: &mut Seen,
    bad: &mut dyn FnMut(&str, String),
) -> Option<RosterMember> {
    let k = |f: &str| format!("members[{n}].{f}");
    let mid = m.id.trim().to_string();
    let mut ok = true;
    if let Err(e) = check_member_id(&mid) {
        bad(&k("id"), e);
        ok = false;
    } else if let Some(first) = seen.ids.get(&mid) {
        bad(
            &k("id"),
            format!("{mid:?} is listed twice (first as members[{first}])"),
        );
        ok = false;
    } else {
        seen.ids.insert(mid.clone(), n);
    }
    let mname = m
        .name
        .map(|x| x.trim().to_string())
        .filter(|x| !x.is_empty())
        .unwrap_or_else(|| mid.clone());
    let endpoints = roster_endpoints(&m.endpoints, &k, bad, &mut ok);
    let keys = roster_keys(n, &mid, m.keys, seen, &k, bad, &mut ok);
    let mut tls_pins = Vec::new();
    for (j, p) in m.tls_pins.iter().enumerate() {
        match SpkiPin::from_hex(p) {
            Ok(pin) if tls_pins.contains(&pin) => {
                bad(
                    &k(&format!("tls_pins[{j}]")),
                    format!("{p:?} is listed twice"),
                );
                ok = false;
            }
            Ok(pin) => tls_pins.push(pin),
            Err(e) => {
                bad(
                    &k(&format!("tls_pins[{j}]")),
                    format!("{e} (print a certificate's pin with: tanoa pki pin CERT)"),
                );
                ok = false;
            }
        }
    }
    ok.then_some(RosterMember {
        id: mid,
        name: mname,
        endpoints,
        keys,
        tls_pins,
    })
}

/// The `endpoints` of a roster entry, each parsed and listed once.
fn roster_endpoints(
    raw: &[String],
    k: &dyn Fn(&str) -> String,
    bad: &mut dyn FnMut(&str, String),
    ok: &mut bool,
) -> Vec<PeerEndpoint> {
    let mut endpoints = Vec::new();
    for (e, ep) in raw.iter().enumerate() {
        match PeerEndpoint::parse(ep) {
            Ok(p) => {
                if endpoints.contains(&p) {
                    bad(
                        &k(&format!("endpoints[{e}]")),
                        format!("{ep:?} is listed twice"),
                    );
                    *ok = false;
                } else {
                    endpoints.push(p);
                }
            }
            Err(msg) => {
                bad(&k(&format!("endpoints[{e}]")), msg);
                *ok = false;
            }
        }
    }
    endpoints
}

/// The `[[members.keys]]` of roster entry `n` (member `mid`); a key already listed for any
/// member is a problem.
fn roster_keys(
    n: usize,
    mid: &str,
    raw: Vec<RawKey>,
    seen: &mut Seen,
    k: &dyn Fn(&str) -> String,
    bad: &mut dyn FnMut(&str, String),
    ok: &mut bool,
) -> Vec<PublicKeyRecord> {
    let mut keys = Vec::new();
    for (j, key) in raw.into_iter().enumerate() {
        let kk = |f: &str| k(&format!("keys[{j}].{f}"));
        let parsed = key_with_window(
            &key.public_key,
            key.valid_from,
            key.valid_until,
            &kk,
            bad,
            ok,
        );
        if let Some((pk, from, until)) = parsed {
            let rec = PublicKeyRecord::new(mid.to_string(), pk, from, until);
            if let Some((first, owner)) = seen.keys.get(&rec.key_id) {
                bad(
                    &kk("public_key"),
                    format!(
                        "the same key ({}) is already listed for members[{first}] ({owner})",
                        rec.key_id
                    ),
                );
                *ok = false;
            } else {
                seen.keys.insert(rec.key_id.clone(), (n, mid.to_string()));
                keys.push(rec);
            }
        }
    }
    keys
}

/// A `[[trusted]]` key that the roster lists for another member is a problem.
pub(super) fn check_trusted_against_roster(
    trusted: &[PublicKeyRecord],
    members: &[RosterMember],
    bad: &mut dyn FnMut(&str, String),
) {
    for (n, t) in trusted.iter().enumerate() {
        if let Some(owner) = members
            .iter()
            .find(|m| m.keys.iter().any(|k| k.key_id == t.key_id))
            && owner.id != t.member
        {
            bad(
                &format!("trusted[{n}].public_key"),
                format!(
                    "key {} is listed for member {} in [[members]] but for {} here",
                    t.key_id, owner.id, t.member
                ),
            );
        }
    }
}

/// A configured public key (64 hex digits) with its optional validity window (RFC 3339). Every
/// problem is reported under `k(field)` and clears `ok`; the key is returned whenever it parsed
/// (so duplicates are still found when only its window is wrong).
fn key_with_window(
    public_key: &str,
    valid_from: Option<String>,
    valid_until: Option<String>,
    k: &dyn Fn(&str) -> String,
    bad: &mut dyn FnMut(&str, String),
    ok: &mut bool,
) -> Option<(ed25519_dalek::VerifyingKey, Option<i64>, Option<i64>)> {
    let key = match crate::keys::parse_public_hex(public_key) {
        Ok(key) => Some(key),
        Err(e) => {
            bad(&k("public_key"), e);
            *ok = false;
            None
        }
    };
    let mut time_key = |f: &str, v: Option<String>| -> Option<i64> {
        match parse_rfc3339_ms(&v?) {
            Ok(ms) => Some(ms),
            Err(e) => {
                bad(&k(f), e);
                *ok = false;
                None
            }
        }
    };
    let from = time_key("valid_from", valid_from);
    let until = time_key("valid_until", valid_until);
    if let (Some(f), Some(u)) = (from, until)
        && u < f
    {
        bad(&k("valid_until"), "is before valid_from".to_string());
        *ok = false;
    }
    key.map(|key| (key, from, until))
}
