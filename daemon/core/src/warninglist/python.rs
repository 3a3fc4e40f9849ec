//! The parsing rules of the reference implementation, pymispwarninglists 1.7.0 on Python 3.11,
//! redone in Rust so that our matcher agrees with it value for value.
//!
//! Owns: `ipaddress.ip_network(entry)` (strict: host bits must be zero; IPv4 masks may be a
//! prefix length, a netmask or a hostmask), `urllib.parse.urlparse(value).hostname`, and the
//! PCRE `/pattern/flags` notation of MISP regex lists.
//! Must never: normalize more (or less) than the reference does: a value the reference would
//! not match must not match here, even when it "obviously" should.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A network as `ipaddress.ip_network(entry)` (strict) returns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PyNet {
    /// IPv4 network address (host bits zero) and prefix length 0..=32.
    V4(u32, u8),
    /// IPv6 network address (host bits zero) and prefix length 0..=128.
    V6(u128, u8),
}

/// `str.isascii() and str.isdigit()`: a non-empty run of ASCII digits.
fn ascii_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// `_prefix_from_prefix_string`: decimal digits (leading zeros allowed) within `0..=max`.
fn prefix_from_digits(s: &str, max: u8) -> Option<u8> {
    if !ascii_digits(s) {
        return None;
    }
    let trimmed = s.trim_start_matches('0');
    if trimmed.len() > 3 {
        return None;
    }
    let n: u32 = if trimmed.is_empty() {
        0
    } else {
        trimmed.parse().ok()?
    };
    u8::try_from(n).ok().filter(|n| *n <= max)
}

/// `_prefix_from_ip_int`: the prefix length of a contiguous netmask (`1*0*`).
fn prefix_of_netmask(mask: u32) -> Option<u8> {
    let ones = mask.leading_ones();
    let expected = if ones == 0 {
        0
    } else {
        u32::MAX << (32 - ones)
    };
    (mask == expected).then(|| u8::try_from(ones).unwrap_or(32))
}

/// `IPv4Network._make_netmask`: a prefix length, else a dotted netmask, else a dotted hostmask.
fn ipv4_prefix(s: &str) -> Option<u8> {
    if let Some(p) = prefix_from_digits(s, 32) {
        return Some(p);
    }
    if ascii_digits(s) {
        // Digits out of range: Python reports an invalid netmask without trying dotted forms.
        return None;
    }
    let m = u32::from(s.parse::<Ipv4Addr>().ok()?);
    prefix_of_netmask(m).or_else(|| prefix_of_netmask(!m))
}

/// `ipaddress.ip_network(s)` with `strict=True`: `None` where Python raises `ValueError`
/// (pymispwarninglists then logs the entry as invalid and leaves it out of the CIDR filter).
pub fn ip_network(s: &str) -> Option<PyNet> {
    let mut parts = s.split('/');
    let addr = parts.next()?;
    let prefix = parts.next();
    if parts.next().is_some() {
        return None;
    }
    // IPv4Network is tried first, then IPv6Network.
    if let Ok(a) = addr.parse::<Ipv4Addr>() {
        let len = match prefix {
            None => 32,
            Some(p) => ipv4_prefix(p)?,
        };
        let bits = u32::from(a);
        let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
        return (bits & mask == bits).then_some(PyNet::V4(bits, len));
    }
    let a = parse_ipv6(addr)?;
    let len = match prefix {
        None => 128,
        Some(p) => prefix_from_digits(p, 128)?,
    };
    let bits = u128::from(a);
    let mask = if len == 0 {
        0
    } else {
        u128::MAX << (128 - len)
    };
    (bits & mask == bits).then_some(PyNet::V6(bits, len))
}

/// `IPv6Address(s)`: Python 3.11 also accepts a `%scope` suffix, which does not change the
/// address used for matching.
fn parse_ipv6(s: &str) -> Option<Ipv6Addr> {
    let (addr, scope) = match s.split_once('%') {
        Some((a, z)) => (a, Some(z)),
        None => (s, None),
    };
    if scope.is_some_and(|z| z.is_empty() || z.contains('%')) {
        return None;
    }
    addr.parse().ok()
}

/// What pymispwarninglists' CIDR search sees in a value: `IPv4Address(value)`, else
/// `IPv6Address(value)`, else nothing (then only an exact string match counts).
pub fn ip_address(s: &str) -> Option<IpAddr> {
    if let Ok(a) = s.parse::<Ipv4Addr>() {
        return Some(IpAddr::V4(a));
    }
    parse_ipv6(s).map(IpAddr::V6)
}

/// `urllib.parse.urlparse(value).hostname` (Python 3.11.7): `None` when the value has no
/// `//authority` part (a bare domain, an e-mail address, an IP), when the host is empty, and
/// where Python would raise (unbalanced brackets; pymispwarninglists would fail on that value).
pub fn url_hostname(value: &str) -> Option<String> {
    // No "//" can appear without one (the common case: domains, addresses, hashes).
    if !value.contains("//") && !value.contains(['\t', '\r', '\n']) {
        return None;
    }
    // lstrip of WHATWG C0 controls and space, then tab, CR and LF are removed everywhere.
    let trimmed = value.trim_start_matches(|c: char| c <= ' ');
    let cleaned: String = trimmed
        .chars()
        .filter(|c| !matches!(c, '\t' | '\r' | '\n'))
        .collect();
    let mut rest = cleaned.as_str();
    if let Some(i) = rest.find(':') {
        let scheme = &rest[..i];
        let first_ok = scheme
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic());
        if i > 0
            && first_ok
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        {
            rest = &rest[i + 1..];
        }
    }
    let after = rest.strip_prefix("//")?;
    let end = after.find(['/', '?', '#']).unwrap_or(after.len());
    let netloc = &after[..end];
    if netloc.contains('[') != netloc.contains(']') {
        return None;
    }
    let hostinfo = match netloc.rfind('@') {
        Some(i) => &netloc[i + 1..],
        None => netloc,
    };
    let hostname = match hostinfo.split_once('[') {
        Some((_, bracketed)) => bracketed.split(']').next().unwrap_or(""),
        None => hostinfo.split(':').next().unwrap_or(""),
    };
    if hostname.is_empty() {
        return None;
    }
    // The zone of a scoped IPv6 address keeps its case.
    Some(match hostname.split_once('%') {
        Some((h, zone)) => format!("{}%{zone}", h.to_lowercase()),
        None => hostname.to_lowercase(),
    })
}

/// A MISP regex-list entry: PCRE `/pattern/flags` (any non-alphanumeric delimiter) or a bare
/// pattern. Returns the pattern with its flags as an inline group, e.g. `(?i)^abuse@`.
///
/// Flags `i`, `m`, `s`, `x` are honoured, `u` (UTF-8) and `g` (a JavaScript habit found in the
/// MISP lists; meaningless for a yes/no match) are ignored, any other flag is an error.
pub fn pcre_to_regex(entry: &str) -> Result<String, String> {
    let mut chars = entry.chars();
    let Some(delim) = chars.next() else {
        return Err("empty pattern".into());
    };
    let closing = match delim {
        '(' => ')',
        '{' => '}',
        '[' => ']',
        '<' => '>',
        c => c,
    };
    let delimited = !delim.is_alphanumeric() && delim != '\\' && !delim.is_whitespace();
    let (pattern, flags) = match (delimited, entry.rfind(closing)) {
        (true, Some(end)) if end > 0 => (&entry[delim.len_utf8()..end], &entry[end + 1..]),
        _ => (entry, ""),
    };
    let mut inline = String::new();
    for f in flags.chars() {
        match f {
            'i' | 'm' | 's' | 'x' => {
                if !inline.contains(f) {
                    inline.push(f);
                }
            }
            'u' | 'g' => {}
            other => return Err(format!("unsupported PCRE flag {other:?}")),
        }
    }
    Ok(if inline.is_empty() {
        pattern.to_string()
    } else {
        format!("(?{inline}){pattern}")
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn networks_parse_like_python_ip_network_strict() {
        assert_eq!(ip_network("192.0.2.0/24"), Some(PyNet::V4(0xC000_0200, 24)));
        assert_eq!(ip_network("192.0.2.7"), Some(PyNet::V4(0xC000_0207, 32)));
        // Host bits set: ValueError in strict mode.
        assert_eq!(ip_network("192.0.2.7/24"), None);
        // Netmask and hostmask forms of IPv4, leading zeros in the prefix.
        assert_eq!(
            ip_network("192.0.2.0/255.255.255.0"),
            Some(PyNet::V4(0xC000_0200, 24))
        );
        assert_eq!(
            ip_network("192.0.2.0/0.0.0.255"),
            Some(PyNet::V4(0xC000_0200, 24))
        );
        assert_eq!(
            ip_network("192.0.2.0/024"),
            Some(PyNet::V4(0xC000_0200, 24))
        );
        assert_eq!(ip_network("192.0.2.0/33"), None);
        assert_eq!(ip_network("192.0.2.0/255.0.255.0"), None);
        assert_eq!(ip_network("192.0.2.0/"), None);
        assert_eq!(ip_network("192.0.2.0/24/1"), None);
        // Leading zeros in an octet are refused by Python 3.11 (and by Rust).
        assert_eq!(ip_network("192.000.2.0/24"), None);
        assert_eq!(ip_network(" 192.0.2.0/24"), None);
        // IPv6: case-insensitive, prefix lengths only.
        assert_eq!(
            ip_network("2001:DB8::/32"),
            Some(PyNet::V6(0x2001_0db8 << 96, 32))
        );
        assert_eq!(ip_network("2001:db8::/ffff::"), None);
        assert_eq!(ip_network("2001:db8::1/32"), None);
        assert_eq!(ip_network("0.0.0.0/0"), Some(PyNet::V4(0, 0)));
        assert_eq!(ip_network("dns.example"), None);
    }

    #[test]
    fn addresses_parse_like_python() {
        assert_eq!(ip_address("192.0.2.1"), "192.0.2.1".parse().ok());
        assert_eq!(ip_address("2001:db8::1"), "2001:db8::1".parse().ok());
        assert_eq!(ip_address("fe80::1%eth0"), "fe80::1".parse().ok());
        assert_eq!(
            ip_address("::ffff:192.0.2.1"),
            "::ffff:192.0.2.1".parse().ok()
        );
        assert_eq!(ip_address("192.0.2.0/24"), None);
        assert_eq!(ip_address("01.2.3.4"), None);
        assert_eq!(ip_address("www.example"), None);
    }

    #[test]
    fn hostnames_come_from_urls_only() {
        let h = |s: &str| url_hostname(s);
        assert_eq!(
            h("http://Foo.Example.com:8080/x?y#z").as_deref(),
            Some("foo.example.com")
        );
        assert_eq!(
            h("https://user:pw@www.example/").as_deref(),
            Some("www.example")
        );
        assert_eq!(h("ftp://[2001:DB8::1]:21/").as_deref(), Some("2001:db8::1"));
        assert_eq!(
            h("//cdn.example/lib.js").as_deref(),
            Some("cdn.example"),
            "no scheme, but an authority"
        );
        assert_eq!(h("  \thttp://a.example").as_deref(), Some("a.example"));
        assert_eq!(h("www.example"), None);
        assert_eq!(h("alice@mail.example"), None);
        assert_eq!(h("192.0.2.1"), None);
        assert_eq!(h("http:///path"), None);
        assert_eq!(h("http://[2001:db8::1/"), None);
        // A "scheme" with characters Python refuses is not a scheme: no authority follows.
        assert_eq!(h("1http://a.example/"), None);
    }

    #[test]
    fn pcre_entries_become_rust_regexes() {
        assert_eq!(
            pcre_to_regex(r"/^(security|noc|soc|abuse)\@.*\..*$/i").unwrap(),
            r"(?i)^(security|noc|soc|abuse)\@.*\..*$"
        );
        assert_eq!(pcre_to_regex("/a+b/g").unwrap(), "a+b");
        assert_eq!(pcre_to_regex("#x/y#ms").unwrap(), "(?ms)x/y");
        assert_eq!(pcre_to_regex("plain.*").unwrap(), "plain.*");
        assert!(pcre_to_regex("/a/e").unwrap_err().contains("'e'"));
        assert!(pcre_to_regex("").is_err());
        // Every produced pattern of the MISP style compiles with the regex crate.
        for e in [
            r"/^(security|noc|soc|abuse)\@.*\..*$/i",
            r"/((?:\+|00)1)?([0-9]{3})55501([0-9]{2})/g",
        ] {
            regex::Regex::new(&pcre_to_regex(e).unwrap()).unwrap();
        }
    }
}
