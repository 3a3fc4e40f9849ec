//! Indicator kinds, value normalization (with refanging) and kind detection.
//!
//! Owns: the per-kind rules that turn what an analyst typed (`hxxps://evil[.]example/`,
//! `Example.COM.`, `AS 64496`…) into the one normalized text that is signed, indexed and
//! searched, and the fast check that a received value already is in that form.
//! Must never: look at anything but the value (no I/O, no DNS, no clock), or accept a value
//! whose normalized form differs from itself as "normalized" (`is_normalized` is a strict
//! subset of `normalize_indicator(..) == Ok(value)`, property-tested below).

use std::borrow::Cow;
use std::fmt::{self, Write as _};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// Kind of an indicator of compromise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IndicatorKind {
    /// IPv4 address.
    Ipv4,
    /// IPv6 address.
    Ipv6,
    /// IPv4 or IPv6 network.
    Cidr,
    /// DNS name.
    Domain,
    /// URL.
    Url,
    /// E-mail address.
    Email,
    /// MD5 digest.
    Md5,
    /// SHA-1 digest.
    Sha1,
    /// SHA-256 digest.
    Sha256,
    /// SHA-512 digest.
    Sha512,
    /// CVE id.
    Cve,
    /// File name.
    Filename,
    /// Autonomous system number.
    Asn,
}

impl IndicatorKind {
    /// Every kind, in the order of the protobuf enum.
    pub const ALL: [IndicatorKind; 13] = [
        IndicatorKind::Ipv4,
        IndicatorKind::Ipv6,
        IndicatorKind::Cidr,
        IndicatorKind::Domain,
        IndicatorKind::Url,
        IndicatorKind::Email,
        IndicatorKind::Md5,
        IndicatorKind::Sha1,
        IndicatorKind::Sha256,
        IndicatorKind::Sha512,
        IndicatorKind::Cve,
        IndicatorKind::Filename,
        IndicatorKind::Asn,
    ];

    /// Lower-case name as written in advisory files, e.g. `sha256`.
    pub fn as_str(self) -> &'static str {
        match self {
            IndicatorKind::Ipv4 => "ipv4",
            IndicatorKind::Ipv6 => "ipv6",
            IndicatorKind::Cidr => "cidr",
            IndicatorKind::Domain => "domain",
            IndicatorKind::Url => "url",
            IndicatorKind::Email => "email",
            IndicatorKind::Md5 => "md5",
            IndicatorKind::Sha1 => "sha1",
            IndicatorKind::Sha256 => "sha256",
            IndicatorKind::Sha512 => "sha512",
            IndicatorKind::Cve => "cve",
            IndicatorKind::Filename => "filename",
            IndicatorKind::Asn => "asn",
        }
    }

    /// Parses a kind name (case-insensitive, surrounding blanks ignored; `sha-256`, `ip`-less
    /// aliases are not accepted: the names are exactly those of [`IndicatorKind::as_str`]).
    pub fn parse(s: &str) -> Option<IndicatorKind> {
        let s = s.trim();
        Self::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(s))
    }

    /// The accepted names, comma-separated (for error messages).
    pub fn names() -> String {
        let mut out = String::new();
        for (n, k) in Self::ALL.iter().enumerate() {
            if n > 0 {
                out.push_str(", ");
            }
            out.push_str(k.as_str());
        }
        out
    }
}

impl fmt::Display for IndicatorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Longest part of a value quoted in an error message.
const QUOTE_MAX_CHARS: usize = 100;

/// Quotes a value for an error message: Rust string syntax (control characters escaped),
/// cut after `QUOTE_MAX_CHARS` characters.
pub(crate) fn quote(s: &str) -> String {
    match s.char_indices().nth(QUOTE_MAX_CHARS) {
        None => format!("{s:?}"),
        Some((cut, _)) => format!("{:?}…", &s[..cut]),
    }
}

/// Undoes the usual defanging of network values: `[.]`, `(.)` → `.`, `[:]` → `:`, `[@]` → `@`.
/// (`hxxp` is undone only for URLs, see `refang_scheme`.)
fn refang(s: &str) -> Cow<'_, str> {
    if !s.contains(['[', '(']) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find(['[', '(']) {
        out.push_str(&rest[..pos]);
        let tail = &rest[pos..];
        let replaced = [("[.]", '.'), ("(.)", '.'), ("[:]", ':'), ("[@]", '@')]
            .into_iter()
            .find(|(pat, _)| tail.starts_with(pat));
        match replaced {
            Some((pat, c)) => {
                out.push(c);
                rest = &tail[pat.len()..];
            }
            None => {
                // '[' and '(' are one byte: copy it and go on after it.
                out.push_str(&tail[..1]);
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// Rewrites a leading `hxxp://` / `hxxps://` (any case) to `http://` / `https://`.
fn refang_scheme(s: Cow<'_, str>) -> Cow<'_, str> {
    let lower4 = s.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("hxxp"));
    let rest = s.get(4..).unwrap_or("");
    if lower4
        && (rest.starts_with("://")
            || rest
                .get(..4)
                .is_some_and(|p| p.eq_ignore_ascii_case("s://")))
    {
        let mut out = String::with_capacity(s.len());
        out.push_str("http");
        out.push_str(rest);
        Cow::Owned(out)
    } else {
        s
    }
}

/// A fixed-size text buffer, so formatting an address needs no heap allocation.
struct StackText {
    buf: [u8; 64],
    len: usize,
}

impl StackText {
    fn new() -> Self {
        Self {
            buf: [0; 64],
            len: 0,
        }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl fmt::Write for StackText {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len.checked_add(s.len()).ok_or(fmt::Error)?;
        let dst = self.buf.get_mut(self.len..end).ok_or(fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// True when `v` is exactly the `Display` text of `x` (no allocation).
fn displays_as(x: &impl fmt::Display, v: &str) -> bool {
    let mut t = StackText::new();
    write!(t, "{x}").is_ok() && t.as_bytes() == v.as_bytes()
}

// ---------------------------------------------------------------------------------------------
// Domains
// ---------------------------------------------------------------------------------------------

/// Why a name is not an acceptable domain.
#[derive(Debug, Clone, PartialEq, Eq)]
enum DomainProblem {
    Empty,
    EmptyLabel,
    OneLabel,
    LabelTooLong(String),
    TooLong(usize),
    BadChar(char),
    Idna,
}

impl fmt::Display for DomainProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DomainProblem::Empty => f.write_str("empty"),
            DomainProblem::EmptyLabel => f.write_str("empty label"),
            DomainProblem::OneLabel => f.write_str("needs at least two labels, e.g. name.example"),
            DomainProblem::LabelTooLong(l) => {
                write!(f, "label {} is longer than 63 characters", quote(l))
            }
            DomainProblem::TooLong(n) => {
                write!(f, "{n} characters long, more than 253")
            }
            DomainProblem::BadChar(c) => write!(
                f,
                "invalid character {c:?}; allowed: letters, digits, '-', '_' and '.'"
            ),
            DomainProblem::Idna => f.write_str("not a valid internationalized name (IDNA)"),
        }
    }
}

/// Checks the structure of a lower-case ASCII name: LDH plus '_' labels of 1..=63,
/// total ≤ 253, at least two labels. Does not allocate.
fn check_ascii_domain(s: &str) -> Result<(), DomainProblem> {
    if s.is_empty() {
        return Err(DomainProblem::Empty);
    }
    if let Some(c) = s
        .chars()
        .find(|c| !matches!(c, 'a'..='z' | '0'..='9' | '-' | '_' | '.'))
    {
        return Err(DomainProblem::BadChar(c));
    }
    let mut labels = 0usize;
    for label in s.split('.') {
        if label.is_empty() {
            return Err(DomainProblem::EmptyLabel);
        }
        if label.len() > 63 {
            return Err(DomainProblem::LabelTooLong(label.to_string()));
        }
        labels += 1;
    }
    if s.len() > 253 {
        return Err(DomainProblem::TooLong(s.len()));
    }
    if labels < 2 {
        return Err(DomainProblem::OneLabel);
    }
    Ok(())
}

/// True when some label starts with the ACE prefix `xn--` (any case).
fn has_ace_label(s: &str) -> bool {
    s.split('.')
        .any(|l| l.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("xn--")))
}

/// Normalizes a domain (already refanged): trim, strip one trailing dot, lower-case,
/// IDNA to punycode, structure check.
fn domain_normal(s: &str) -> Result<String, DomainProblem> {
    let s = s.trim();
    let s = s.strip_suffix('.').unwrap_or(s);
    if s.is_empty() {
        return Err(DomainProblem::Empty);
    }
    if s.is_ascii() && !has_ace_label(s) {
        let lower = s.to_ascii_lowercase();
        check_ascii_domain(&lower)?;
        return Ok(lower);
    }
    let ascii = idna::domain_to_ascii_cow(s.as_bytes(), idna::AsciiDenyList::EMPTY)
        .map_err(|_| DomainProblem::Idna)?;
    check_ascii_domain(&ascii)?;
    Ok(ascii.into_owned())
}

/// Fast check that `s` is a normalized domain (no allocation). `false` may be a false
/// negative (punycode labels): callers then fall back to full normalization.
fn domain_is_normalized(s: &str) -> bool {
    !has_ace_label(s) && check_ascii_domain(s).is_ok()
}

// ---------------------------------------------------------------------------------------------
// Per-kind rules
// ---------------------------------------------------------------------------------------------

fn norm_ipv4(orig: &str) -> Result<String, String> {
    let r = refang(orig.trim());
    r.parse::<Ipv4Addr>()
        .map(|ip| ip.to_string())
        .map_err(|_| format!("{} is not an IPv4 address", quote(orig)))
}

fn strip_brackets(s: &str) -> &str {
    s.strip_prefix('[')
        .and_then(|x| x.strip_suffix(']'))
        .unwrap_or(s)
}

fn norm_ipv6(orig: &str) -> Result<String, String> {
    let r = refang(orig.trim());
    strip_brackets(&r)
        .parse::<Ipv6Addr>()
        .map(|ip| ip.to_string())
        .map_err(|_| format!("{} is not an IPv6 address", quote(orig)))
}

fn norm_cidr(orig: &str) -> Result<String, String> {
    let r = refang(orig.trim());
    let net: IpNet = r.parse().map_err(|_| {
        format!(
            "{} is not a CIDR network (expected address/prefix, e.g. 198.51.100.0/24)",
            quote(orig)
        )
    })?;
    let trunc = net.trunc();
    if trunc != net {
        return Err(format!(
            "{} has host bits set (did you mean {trunc}?)",
            quote(orig)
        ));
    }
    Ok(net.to_string())
}

fn norm_domain(orig: &str) -> Result<String, String> {
    let r = refang(orig.trim());
    domain_normal(&r).map_err(|p| format!("{} is not a domain name ({p})", quote(orig)))
}

const URL_SCHEMES: [&str; 3] = ["http", "https", "ftp"];

fn norm_url(orig: &str) -> Result<String, String> {
    let r = refang_scheme(refang(orig.trim()));
    let mut url = url::Url::parse(&r).map_err(|e| format!("{} is not a URL ({e})", quote(orig)))?;
    if !URL_SCHEMES.contains(&url.scheme()) {
        return Err(format!(
            "{} is not a URL with scheme http, https or ftp",
            quote(orig)
        ));
    }
    // The url crate already lower-cases and punycodes hosts; the domain rules may still
    // refuse the name (one label, bad characters) or strip a trailing dot.
    let new_host = match url.host() {
        None => return Err(format!("{} is not a URL (no host)", quote(orig))),
        Some(url::Host::Domain(d)) if !domain_is_normalized(d) => {
            let n = domain_normal(d)
                .map_err(|p| format!("{} is not a URL (host {}: {p})", quote(orig), quote(d)))?;
            (n != d).then_some(n)
        }
        Some(_) => None,
    };
    if let Some(n) = new_host {
        url.set_host(Some(&n))
            .map_err(|e| format!("{} is not a URL (host: {e})", quote(orig)))?;
    }
    Ok(url.into())
}

fn email_local_ok(local: &str) -> Result<(), &'static str> {
    if local.is_empty() {
        return Err("empty local part");
    }
    if local.len() > 64 {
        return Err("local part longer than 64 characters");
    }
    if local.chars().any(char::is_control) {
        return Err("control character in local part");
    }
    Ok(())
}

fn norm_email(orig: &str) -> Result<String, String> {
    let r = refang(orig.trim());
    let bad = |why: &dyn fmt::Display| format!("{} is not an e-mail address ({why})", quote(orig));
    let (local, domain) = r.rsplit_once('@').ok_or_else(|| bad(&"no '@'"))?;
    email_local_ok(local).map_err(|w| bad(&w))?;
    let domain = domain_normal(domain).map_err(|p| bad(&format_args!("domain: {p}")))?;
    let mut out = String::with_capacity(local.len() + 1 + domain.len());
    out.push_str(local);
    out.push('@');
    out.push_str(&domain);
    Ok(out)
}

fn email_is_normalized(s: &str) -> bool {
    match s.rsplit_once('@') {
        Some((local, domain)) => {
            local.trim() == local
                && !local.contains(['[', '('])
                && email_local_ok(local).is_ok()
                && domain_is_normalized(domain)
        }
        None => false,
    }
}

fn hash_len(kind: IndicatorKind) -> (usize, &'static str) {
    match kind {
        IndicatorKind::Md5 => (32, "an MD5"),
        IndicatorKind::Sha1 => (40, "a SHA-1"),
        IndicatorKind::Sha256 => (64, "a SHA-256"),
        _ => (128, "a SHA-512"),
    }
}

fn norm_hash(kind: IndicatorKind, orig: &str) -> Result<String, String> {
    let (len, name) = hash_len(kind);
    let s = orig.trim();
    if s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(format!(
            "{} is not {name} digest (expected {len} hex digits)",
            quote(orig)
        ))
    }
}

fn hash_is_normalized(kind: IndicatorKind, s: &str) -> bool {
    s.len() == hash_len(kind).0 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// `CVE-YYYY-NNNN+` with any case of the prefix.
fn cve_shape(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 13
        && b[..4].eq_ignore_ascii_case(b"CVE-")
        && b[4..8].iter().all(u8::is_ascii_digit)
        && b[8] == b'-'
        && b[9..].iter().all(u8::is_ascii_digit)
}

fn norm_cve(orig: &str) -> Result<String, String> {
    let s = orig.trim();
    if cve_shape(s) {
        Ok(s.to_ascii_uppercase())
    } else {
        Err(format!(
            "{} is not a CVE id (expected CVE-YYYY-NNNN, e.g. CVE-2017-11882)",
            quote(orig)
        ))
    }
}

fn cve_is_normalized(s: &str) -> bool {
    cve_shape(s) && s.starts_with("CVE-")
}

fn filename_problem(s: &str) -> Option<&'static str> {
    if s.is_empty() {
        Some("empty")
    } else if s.len() > 255 {
        Some("longer than 255 bytes")
    } else if s.contains(['/', '\\']) {
        Some("contains a path separator")
    } else if s.chars().any(char::is_control) {
        Some("contains a NUL or control character")
    } else {
        None
    }
}

fn norm_filename(orig: &str) -> Result<String, String> {
    match filename_problem(orig) {
        None => Ok(orig.to_string()),
        Some(why) => Err(format!("{} is not a file name ({why})", quote(orig))),
    }
}

fn asn_number(s: &str) -> Option<u32> {
    let digits = match s.get(..2) {
        Some(p) if p.eq_ignore_ascii_case("AS") => &s[2..],
        _ => s,
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn norm_asn(orig: &str) -> Result<String, String> {
    asn_number(orig.trim())
        .map(|n| format!("AS{n}"))
        .ok_or_else(|| {
            format!(
                "{} is not an AS number (expected AS followed by 0..=4294967295, e.g. AS64496)",
                quote(orig)
            )
        })
}

fn asn_is_normalized(s: &str) -> bool {
    match s.strip_prefix("AS") {
        Some(d) => asn_number(s).is_some() && (d == "0" || !d.starts_with('0')),
        None => false,
    }
}

/// Normalizes a value of a kind. Accepts defanged input (`[.]`, `(.)`, `[:]`, `[@]`, and
/// `hxxp`/`hxxps` for URLs). Returns the normalized text, or a message quoting the value,
/// e.g. `"10.0.0.300" is not an IPv4 address`.
pub fn normalize_indicator(kind: IndicatorKind, value: &str) -> Result<String, String> {
    match kind {
        IndicatorKind::Ipv4 => norm_ipv4(value),
        IndicatorKind::Ipv6 => norm_ipv6(value),
        IndicatorKind::Cidr => norm_cidr(value),
        IndicatorKind::Domain => norm_domain(value),
        IndicatorKind::Url => norm_url(value),
        IndicatorKind::Email => norm_email(value),
        IndicatorKind::Md5
        | IndicatorKind::Sha1
        | IndicatorKind::Sha256
        | IndicatorKind::Sha512 => norm_hash(kind, value),
        IndicatorKind::Cve => norm_cve(value),
        IndicatorKind::Filename => norm_filename(value),
        IndicatorKind::Asn => norm_asn(value),
    }
}

/// Fast, allocation-free check that `value` is already normalized. A `true` guarantees
/// `normalize_indicator(kind, value) == Ok(value)`; `false` means "not sure" for kinds
/// without a fast path (URLs, punycode domains) as well as "not normalized".
pub(crate) fn is_normalized(kind: IndicatorKind, value: &str) -> bool {
    match kind {
        IndicatorKind::Ipv4 => value
            .parse::<Ipv4Addr>()
            .is_ok_and(|ip| displays_as(&ip, value)),
        IndicatorKind::Ipv6 => value
            .parse::<Ipv6Addr>()
            .is_ok_and(|ip| displays_as(&ip, value)),
        IndicatorKind::Cidr => value
            .parse::<IpNet>()
            .is_ok_and(|n| n.trunc() == n && displays_as(&n, value)),
        IndicatorKind::Domain => domain_is_normalized(value),
        IndicatorKind::Url => false,
        IndicatorKind::Email => email_is_normalized(value),
        IndicatorKind::Md5
        | IndicatorKind::Sha1
        | IndicatorKind::Sha256
        | IndicatorKind::Sha512 => hash_is_normalized(kind, value),
        IndicatorKind::Cve => cve_is_normalized(value),
        IndicatorKind::Filename => filename_problem(value).is_none(),
        IndicatorKind::Asn => asn_is_normalized(value),
    }
}

/// Checks that a received value is in normalized form: `Ok` or the message to report,
/// either the normalization error or `"X" is not in normalized form (expected "Y")`.
pub(crate) fn check_normalized(kind: IndicatorKind, value: &str) -> Result<(), String> {
    if is_normalized(kind, value) {
        return Ok(());
    }
    let n = normalize_indicator(kind, value)?;
    if n == value {
        Ok(())
    } else {
        Err(format!(
            "{} is not in normalized form (expected {})",
            quote(value),
            quote(&n)
        ))
    }
}

/// Detects the kind of a search value: ipv4, ipv6, cidr, url (with an http, https, ftp or
/// hxxp scheme), email, hash by hex length (md5/sha1/sha256/sha512), CVE, ASN (`AS` + digits),
/// domain; `None` otherwise. Defanged input is recognized. File names are never detected.
pub fn detect_kind(value: &str) -> Option<IndicatorKind> {
    let t = value.trim();
    if t.is_empty() {
        return None;
    }
    let r = refang(t);
    let s: &str = &r;
    if s.parse::<Ipv4Addr>().is_ok() {
        return Some(IndicatorKind::Ipv4);
    }
    if strip_brackets(s).parse::<Ipv6Addr>().is_ok() {
        return Some(IndicatorKind::Ipv6);
    }
    if s.contains('/') && s.parse::<IpNet>().is_ok() {
        return Some(IndicatorKind::Cidr);
    }
    if let Some((scheme, _)) = s.split_once("://") {
        let known = URL_SCHEMES
            .iter()
            .chain(["hxxp", "hxxps"].iter())
            .any(|k| k.eq_ignore_ascii_case(scheme));
        return known.then_some(IndicatorKind::Url);
    }
    if s.contains('@') {
        return norm_email(s).is_ok().then_some(IndicatorKind::Email);
    }
    if s.bytes().all(|b| b.is_ascii_hexdigit()) {
        match s.len() {
            32 => return Some(IndicatorKind::Md5),
            40 => return Some(IndicatorKind::Sha1),
            64 => return Some(IndicatorKind::Sha256),
            128 => return Some(IndicatorKind::Sha512),
            _ => {}
        }
    }
    if cve_shape(s) {
        return Some(IndicatorKind::Cve);
    }
    if s.get(..2).is_some_and(|p| p.eq_ignore_ascii_case("AS")) && asn_number(s).is_some() {
        return Some(IndicatorKind::Asn);
    }
    if let Ok(d) = domain_normal(s) {
        // "10.0.0.300" is a mistyped address, not a domain.
        let tld_numeric = d
            .rsplit('.')
            .next()
            .is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()));
        if !tld_numeric {
            return Some(IndicatorKind::Domain);
        }
    }
    None
}

/// Every kind a search value can be, the detected one (`detect_kind`) first, then the others
/// in `IndicatorKind::ALL` order: each kind whose normalization accepts the value, except
/// `domain` for a single label or a value whose last label is numeric (a mistyped address; a
/// bare hash is not searched as a host name), `cidr` without a
/// prefix length, and the address kinds for a value that is not an address. `update.plist` is
/// a domain and a file name; `CVE-2017-11882` a CVE and a file name.
pub fn candidate_kinds(value: &str) -> Vec<IndicatorKind> {
    let mut out: Vec<IndicatorKind> = detect_kind(value).into_iter().collect();
    for k in IndicatorKind::ALL {
        if out.contains(&k) {
            continue;
        }
        let ok = match k {
            IndicatorKind::Ipv4 | IndicatorKind::Ipv6 => false, // detected when they are
            IndicatorKind::Cidr => value.contains('/') && normalize_indicator(k, value).is_ok(),
            IndicatorKind::Domain => normalize_indicator(k, value).is_ok_and(|d| {
                d.contains('.')
                    && !d
                        .rsplit('.')
                        .next()
                        .is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()))
            }),
            _ => normalize_indicator(k, value).is_ok(),
        };
        if ok {
            out.push(k);
        }
    }
    out
}

/// The address in an ipv4/ipv6 search value (defanged and bracketed forms accepted), for
/// "IP inside CIDR" search. `None` when the value is not an IP address.
pub fn parse_ip(value: &str) -> Option<IpAddr> {
    let r = refang(value.trim());
    strip_brackets(&r).parse().ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::IndicatorKind as K;
    use super::*;
    use proptest::prelude::*;

    /// (kind, input, expected normalized value)
    const ACCEPTS: &[(K, &str, &str)] = &[
        (K::Ipv4, "192.0.2.7", "192.0.2.7"),
        (K::Ipv4, " 198.51.100.1 ", "198.51.100.1"),
        (K::Ipv4, "203.0.113[.]9", "203.0.113.9"),
        (K::Ipv4, "203(.)0(.)113(.)10", "203.0.113.10"),
        (K::Ipv6, "2001:DB8::1", "2001:db8::1"),
        (
            K::Ipv6,
            "2001:0db8:0000:0000:0000:0000:0000:0001",
            "2001:db8::1",
        ),
        (K::Ipv6, "2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),
        (K::Ipv6, "[2001:db8::2]", "2001:db8::2"),
        (K::Ipv6, "2001[:]db8[:][:]3", "2001:db8::3"),
        (K::Ipv6, "::ffff:192.0.2.1", "::ffff:192.0.2.1"),
        (K::Cidr, "198.51.100.0/24", "198.51.100.0/24"),
        (K::Cidr, "192.0.2.128/25", "192.0.2.128/25"),
        (K::Cidr, "192.0.2.7/32", "192.0.2.7/32"),
        (K::Cidr, "2001:DB8::/32", "2001:db8::/32"),
        (K::Cidr, "2001:0db8:0001::/48", "2001:db8:1::/48"),
        (K::Cidr, "203.0.113[.]0/24", "203.0.113.0/24"),
        (K::Domain, "Example.COM", "example.com"),
        (K::Domain, "evil.example.", "evil.example"),
        (K::Domain, " c2[.]evil(.)example ", "c2.evil.example"),
        (K::Domain, "_dmarc.mail.example", "_dmarc.mail.example"),
        (K::Domain, "bücher.example", "xn--bcher-kva.example"),
        (K::Domain, "BÜCHER.example", "xn--bcher-kva.example"),
        (K::Domain, "xn--bcher-kva.example", "xn--bcher-kva.example"),
        (K::Domain, "XN--BCHER-KVA.EXAMPLE", "xn--bcher-kva.example"),
        (K::Domain, "a-b--c.example", "a-b--c.example"),
        (
            K::Url,
            "http://Evil.EXAMPLE/Path?q=1",
            "http://evil.example/Path?q=1",
        ),
        (K::Url, "hxxp://evil[.]example/a", "http://evil.example/a"),
        (K::Url, "HXXPS[:]//evil[.]example", "https://evil.example/"),
        (
            K::Url,
            "https://evil.example:443/x",
            "https://evil.example/x",
        ),
        (K::Url, "https://evil.example./x", "https://evil.example/x"),
        (
            K::Url,
            "ftp://files.example/pub/a.zip",
            "ftp://files.example/pub/a.zip",
        ),
        (
            K::Url,
            "http://198.51.100.7:8080/",
            "http://198.51.100.7:8080/",
        ),
        (K::Url, "http://[2001:DB8::1]/", "http://[2001:db8::1]/"),
        (
            K::Url,
            "https://bücher.example/",
            "https://xn--bcher-kva.example/",
        ),
        (K::Email, "Alice.B@Mail.Example", "Alice.B@mail.example"),
        (K::Email, "phish[@]evil[.]example", "phish@evil.example"),
        (K::Email, "x@bücher.example", "x@xn--bcher-kva.example"),
        (
            K::Md5,
            "D41D8CD98F00B204E9800998ECF8427E",
            "d41d8cd98f00b204e9800998ecf8427e",
        ),
        (
            K::Sha1,
            "da39a3ee5e6b4b0d3255bfef95601890afd80709",
            "da39a3ee5e6b4b0d3255bfef95601890afd80709",
        ),
        (
            K::Sha256,
            "0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF",
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ),
        (
            K::Sha512,
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ),
        (K::Cve, "cve-2017-11882", "CVE-2017-11882"),
        (K::Cve, "CVE-2021-1234567", "CVE-2021-1234567"),
        (K::Filename, "invoice.pdf.exe", "invoice.pdf.exe"),
        (K::Filename, " spaced name.docx", " spaced name.docx"),
        (K::Filename, "Résumé.lnk", "Résumé.lnk"),
        (K::Asn, "AS64496", "AS64496"),
        (K::Asn, "as64497", "AS64497"),
        (K::Asn, "64498", "AS64498"),
        (K::Asn, "AS064499", "AS64499"),
        (K::Asn, "AS4294967295", "AS4294967295"),
    ];

    /// (kind, input, fragment of the expected error message)
    const REJECTS: &[(K, &str, &str)] = &[
        (
            K::Ipv4,
            "10.0.0.300",
            "\"10.0.0.300\" is not an IPv4 address",
        ),
        (K::Ipv4, "192.0.2", "is not an IPv4 address"),
        (K::Ipv4, "192.000.2.1", "is not an IPv4 address"),
        (K::Ipv4, "2001:db8::1", "is not an IPv4 address"),
        (
            K::Ipv6,
            "2001:db8::g",
            "\"2001:db8::g\" is not an IPv6 address",
        ),
        (K::Ipv6, "192.0.2.1", "is not an IPv6 address"),
        (K::Ipv6, "fe80::1%eth0", "is not an IPv6 address"),
        (
            K::Cidr,
            "198.51.100.7/24",
            "\"198.51.100.7/24\" has host bits set (did you mean 198.51.100.0/24?)",
        ),
        (K::Cidr, "2001:db8::1/32", "did you mean 2001:db8::/32?"),
        (K::Cidr, "198.51.100.0", "is not a CIDR network"),
        (K::Cidr, "198.51.100.0/33", "is not a CIDR network"),
        (
            K::Domain,
            "localhost",
            "\"localhost\" is not a domain name (needs at least two labels",
        ),
        (K::Domain, "", "is not a domain name (empty)"),
        (K::Domain, "a..example", "(empty label)"),
        (K::Domain, "evil .example", "invalid character ' '"),
        (K::Domain, "evil*.example", "invalid character '*'"),
        (K::Domain, "http://evil.example", "is not a domain name"),
        (K::Url, "evil.example/path", "is not a URL"),
        (
            K::Url,
            "mailto:a@evil.example",
            "is not a URL with scheme http, https or ftp",
        ),
        (K::Url, "javascript:alert(1)", "is not a URL with scheme"),
        (K::Url, "http://localhost/", "needs at least two labels"),
        (K::Url, "http:///", "is not a URL"),
        (
            K::Email,
            "no-at.example",
            "is not an e-mail address (no '@')",
        ),
        (K::Email, "@evil.example", "(empty local part)"),
        (
            K::Email,
            "a@localhost",
            "(domain: needs at least two labels",
        ),
        (
            K::Md5,
            "abc",
            "\"abc\" is not an MD5 digest (expected 32 hex digits)",
        ),
        (
            K::Sha1,
            "da39a3ee5e6b4b0d3255bfef95601890afd8070g",
            "is not a SHA-1 digest",
        ),
        (
            K::Sha256,
            "0123456789abcdef",
            "is not a SHA-256 digest (expected 64 hex digits)",
        ),
        (
            K::Sha512,
            "00",
            "is not a SHA-512 digest (expected 128 hex digits)",
        ),
        (K::Cve, "CVE-21-1234", "\"CVE-21-1234\" is not a CVE id"),
        (K::Cve, "CVE-2021-123", "is not a CVE id"),
        (K::Cve, "CAN-2021-1234", "is not a CVE id"),
        (K::Filename, "", "\"\" is not a file name (empty)"),
        (K::Filename, "dir/evil.exe", "(contains a path separator)"),
        (K::Filename, "C:\\evil.exe", "(contains a path separator)"),
        (
            K::Filename,
            "nul\0.exe",
            "(contains a NUL or control character)",
        ),
        (
            K::Filename,
            "tab\t.exe",
            "(contains a NUL or control character)",
        ),
        (
            K::Asn,
            "AS4294967296",
            "\"AS4294967296\" is not an AS number",
        ),
        (K::Asn, "ASX", "is not an AS number"),
        (K::Asn, "AS", "is not an AS number"),
        (K::Asn, "AS-1", "is not an AS number"),
    ];

    #[test]
    fn accepts_and_normalizes_every_kind() {
        for (kind, input, want) in ACCEPTS {
            let got = normalize_indicator(*kind, input)
                .unwrap_or_else(|e| panic!("{kind} {input:?} rejected: {e}"));
            assert_eq!(&got, want, "{kind} {input:?}");
            // The normalized value is accepted by the received-value check.
            assert_eq!(check_normalized(*kind, &got), Ok(()), "{kind} {got:?}");
        }
        for kind in K::ALL {
            assert!(
                ACCEPTS.iter().any(|(k, _, _)| *k == kind),
                "no accept case for {kind}"
            );
        }
    }

    #[test]
    fn rejects_every_kind_with_a_message_quoting_the_value() {
        for (kind, input, want) in REJECTS {
            let err =
                normalize_indicator(*kind, input).expect_err(&format!("{kind} {input:?} accepted"));
            assert!(
                err.contains(want),
                "{kind} {input:?}: {err:?} lacks {want:?}"
            );
            assert!(
                err.starts_with('"'),
                "{err:?} does not quote the value first"
            );
        }
        for kind in K::ALL {
            assert!(
                REJECTS.iter().any(|(k, _, _)| *k == kind),
                "no reject case for {kind}"
            );
        }
    }

    #[test]
    fn exact_messages() {
        assert_eq!(
            normalize_indicator(K::Ipv4, "10.0.0.300").unwrap_err(),
            r#""10.0.0.300" is not an IPv4 address"#
        );
        assert_eq!(
            normalize_indicator(K::Cidr, "198.51.100.7/24").unwrap_err(),
            r#""198.51.100.7/24" has host bits set (did you mean 198.51.100.0/24?)"#
        );
        assert_eq!(
            normalize_indicator(K::Md5, "abc").unwrap_err(),
            r#""abc" is not an MD5 digest (expected 32 hex digits)"#
        );
        assert_eq!(
            check_normalized(K::Domain, "Example.COM").unwrap_err(),
            r#""Example.COM" is not in normalized form (expected "example.com")"#
        );
    }

    #[test]
    fn long_values_are_cut_in_messages() {
        let long = "x".repeat(10_000);
        let err = normalize_indicator(K::Ipv4, &long).unwrap_err();
        assert!(err.len() < 200, "{} bytes", err.len());
        assert!(err.contains('…'));
    }

    #[test]
    fn control_characters_are_escaped_in_messages() {
        let err = normalize_indicator(K::Filename, "a\u{1b}[31m").unwrap_err();
        assert!(!err.contains('\u{1b}'), "{err:?}");
        assert!(err.contains("\\u{1b}"), "{err:?}");
    }

    #[test]
    fn defanging_is_undone() {
        let cases = [
            (K::Ipv4, "192.0.2[.]1", "192.0.2.1"),
            (K::Domain, "evil[.]example", "evil.example"),
            (K::Domain, "evil(.)example", "evil.example"),
            (K::Url, "hxxp://evil[.]example/", "http://evil.example/"),
            (K::Url, "hxxps://evil[.]example/", "https://evil.example/"),
            (
                K::Url,
                "hXXps[:]//evil[.]example/a[b]",
                "https://evil.example/a[b]",
            ),
            (K::Email, "a[@]evil[.]example", "a@evil.example"),
            (K::Ipv6, "2001[:]db8[:][:]1", "2001:db8::1"),
        ];
        for (k, input, want) in cases {
            assert_eq!(
                normalize_indicator(k, input).as_deref(),
                Ok(want),
                "{input}"
            );
        }
        // A domain merely starting with "hxxp" is not rewritten.
        assert_eq!(
            normalize_indicator(K::Domain, "hxxpfoo.example").as_deref(),
            Ok("hxxpfoo.example")
        );
        // File names are kept as written (brackets are legal in file names).
        assert_eq!(
            normalize_indicator(K::Filename, "report[.]pdf").as_deref(),
            Ok("report[.]pdf")
        );
        // Unrelated brackets survive refanging.
        assert_eq!(refang("a[b](c)[.]"), "a[b](c).");
    }

    #[test]
    fn domain_length_limits() {
        let label63 = "a".repeat(63);
        let ok = format!("{label63}.example");
        assert_eq!(normalize_indicator(K::Domain, &ok), Ok(ok.clone()));
        let label64 = "a".repeat(64);
        let err = normalize_indicator(K::Domain, &format!("{label64}.example")).unwrap_err();
        assert!(err.contains("longer than 63 characters"), "{err}");
        // 4 × 63 + 3 dots = 255 > 253.
        let long = [label63.as_str(); 4].join(".");
        let err = normalize_indicator(K::Domain, &long).unwrap_err();
        assert!(err.contains("more than 253"), "{err}");
        // 253 exactly is fine.
        let name253 = format!("{}.{}.{}.{}", label63, label63, label63, "a".repeat(61));
        assert_eq!(name253.len(), 253);
        assert!(normalize_indicator(K::Domain, &name253).is_ok());
    }

    #[test]
    fn email_local_part_limits() {
        let ok = format!("{}@mail.example", "a".repeat(64));
        assert!(normalize_indicator(K::Email, &ok).is_ok());
        let err =
            normalize_indicator(K::Email, &format!("{}@mail.example", "a".repeat(65))).unwrap_err();
        assert!(err.contains("longer than 64"), "{err}");
    }

    #[test]
    fn filename_length_limit() {
        assert!(normalize_indicator(K::Filename, &"a".repeat(255)).is_ok());
        let err = normalize_indicator(K::Filename, &"a".repeat(256)).unwrap_err();
        assert!(err.contains("longer than 255 bytes"), "{err}");
    }

    #[test]
    fn candidate_kinds_are_every_kind_a_value_can_be() {
        assert_eq!(
            candidate_kinds("update.plist"),
            vec![K::Domain, K::Filename]
        );
        assert_eq!(candidate_kinds("CVE-2017-11882"), vec![K::Cve, K::Filename]);
        assert_eq!(candidate_kinds("198.51.100.7")[0], K::Ipv4);
        assert!(!candidate_kinds("198.51.100.7").contains(&K::Domain));
        assert_eq!(
            candidate_kinds("https://a.example/x"),
            vec![K::Url],
            "a URL is not a file name (it has '/')"
        );
        assert!(candidate_kinds("AS64496").starts_with(&[K::Asn]));
        let md5 = candidate_kinds("0749bae92ca336a02c83d126e04ec628");
        assert_eq!(md5, vec![K::Md5, K::Filename]);
    }

    #[test]
    fn detects_kinds() {
        let cases: &[(&str, Option<K>)] = &[
            ("192.0.2.1", Some(K::Ipv4)),
            ("192.0.2[.]1", Some(K::Ipv4)),
            ("2001:db8::1", Some(K::Ipv6)),
            ("[2001:db8::1]", Some(K::Ipv6)),
            ("198.51.100.0/24", Some(K::Cidr)),
            ("2001:db8::/32", Some(K::Cidr)),
            ("https://evil.example/x", Some(K::Url)),
            ("hxxp://evil[.]example/x", Some(K::Url)),
            ("gopher://evil.example/", None),
            ("phish@evil.example", Some(K::Email)),
            ("d41d8cd98f00b204e9800998ecf8427e", Some(K::Md5)),
            ("da39a3ee5e6b4b0d3255bfef95601890afd80709", Some(K::Sha1)),
            (&"ab".repeat(32), Some(K::Sha256)),
            (&"AB".repeat(64), Some(K::Sha512)),
            ("cve-2017-0199", Some(K::Cve)),
            ("AS64496", Some(K::Asn)),
            ("as64496", Some(K::Asn)),
            ("Evil.Example", Some(K::Domain)),
            ("evil[.]example", Some(K::Domain)),
            ("10.0.0.300", None),
            ("64496", None),
            ("invoice.pdf.exe", Some(K::Domain)),
            ("just words", None),
            ("", None),
            ("abc", None),
        ];
        for (v, want) in cases {
            assert_eq!(detect_kind(v), *want, "{v:?}");
        }
    }

    #[test]
    fn detected_values_normalize() {
        for v in [
            "192.0.2[.]1",
            "hxxp://evil[.]example/x",
            "CVE-2017-0199",
            "as64500",
            "Evil.Example",
        ] {
            let k = detect_kind(v).unwrap();
            assert!(normalize_indicator(k, v).is_ok(), "{v}");
        }
    }

    #[test]
    fn kind_names_round_trip() {
        for k in K::ALL {
            assert_eq!(K::parse(k.as_str()), Some(k));
            assert_eq!(K::parse(&k.as_str().to_ascii_uppercase()), Some(k));
            // serde and as_str agree.
            assert_eq!(serde_json::to_string(&k).unwrap(), format!("\"{k}\""));
        }
        assert_eq!(K::parse("ipv5"), None);
        assert!(K::names().starts_with("ipv4, ipv6, cidr"));
    }

    #[test]
    fn parse_ip_reads_addresses() {
        assert_eq!(parse_ip("192.0.2[.]1"), Some("192.0.2.1".parse().unwrap()));
        assert_eq!(
            parse_ip("[2001:db8::1]"),
            Some("2001:db8::1".parse().unwrap())
        );
        assert_eq!(parse_ip("evil.example"), None);
    }

    fn arb_value() -> impl Strategy<Value = (K, String)> {
        let hex =
            |n: usize| proptest::string::string_regex(&format!("[0-9a-fA-F]{{{n}}}")).unwrap();
        prop_oneof![
            any::<u32>().prop_map(|n| (K::Ipv4, Ipv4Addr::from(n).to_string())),
            any::<u128>().prop_map(|n| (K::Ipv6, Ipv6Addr::from(n).to_string())),
            any::<[u16; 8]>().prop_map(|w| (K::Ipv6, format!(
                "{:X}:{:x}:{:04x}:{:x}:{:x}:{:x}:{:x}:{:x}", w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]
            ))),
            (any::<u32>(), 0u8..=32).prop_map(|(n, p)| (K::Cidr, format!("{}/{p}", Ipv4Addr::from(n)))),
            (any::<u128>(), 0u8..=128).prop_map(|(n, p)| (K::Cidr, format!("{}/{p}", Ipv6Addr::from(n)))),
            "[a-zA-Z0-9_-]{1,20}(\\.[a-zA-Z0-9_-]{1,20}){1,4}\\.?".prop_map(|d| (K::Domain, d)),
            "[a-zA-Zäöüßé0-9-]{1,12}\\.(example|EXAMPLE|bücher)".prop_map(|d| (K::Domain, d)),
            "[a-z0-9]{1,10}(\\[\\.\\]|\\.)[a-z]{2,6}".prop_map(|d| (K::Domain, d)),
            "(http|HTTPS|hxxp|ftp)://[a-zA-Z0-9-]{1,10}\\.example(:[0-9]{1,5})?(/[a-zA-Z0-9._~%-]{0,8}){0,3}(\\?[a-z=&]{0,8})?"
                .prop_map(|u| (K::Url, u)),
            "[a-zA-Z0-9._+-]{1,20}@[a-zA-Z0-9-]{1,10}\\.(example|Example)".prop_map(|e| (K::Email, e)),
            hex(32).prop_map(|h| (K::Md5, h)),
            hex(40).prop_map(|h| (K::Sha1, h)),
            hex(64).prop_map(|h| (K::Sha256, h)),
            hex(128).prop_map(|h| (K::Sha512, h)),
            "(cve|CVE|Cve)-[0-9]{4}-[0-9]{4,7}".prop_map(|c| (K::Cve, c)),
            "(AS|as|)[0-9]{1,10}".prop_map(|a| (K::Asn, a)),
            "[^/\\\\\\x00-\\x1f]{1,40}".prop_map(|f| (K::Filename, f)),
        ]
    }

    proptest! {
        #[test]
        fn normalization_is_idempotent((kind, value) in arb_value()) {
            if let Ok(n) = normalize_indicator(kind, &value) {
                prop_assert_eq!(normalize_indicator(kind, &n), Ok(n.clone()), "{} {:?}", kind, value);
                prop_assert_eq!(check_normalized(kind, &n), Ok(()));
            }
        }

        #[test]
        fn fast_check_implies_normalized((kind, value) in arb_value()) {
            if is_normalized(kind, &value) {
                prop_assert_eq!(normalize_indicator(kind, &value), Ok(value.clone()));
            }
        }

        #[test]
        fn fast_check_implies_normalized_any_text(kind in proptest::sample::select(K::ALL.to_vec()), value in "\\PC{0,40}") {
            if is_normalized(kind, &value) {
                prop_assert_eq!(normalize_indicator(kind, &value), Ok(value.clone()));
            }
        }

        #[test]
        fn generated_addresses_are_accepted(n in any::<u32>(), m in any::<u128>()) {
            prop_assert!(normalize_indicator(K::Ipv4, &Ipv4Addr::from(n).to_string()).is_ok());
            prop_assert!(normalize_indicator(K::Ipv6, &Ipv6Addr::from(m).to_string()).is_ok());
        }
    }
}
