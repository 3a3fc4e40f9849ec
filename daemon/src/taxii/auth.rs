//! Who is calling: a client certificate verified by rustls (its URI SANs), or a token in the
//! `Authorization` header (`Bearer`, `Token`, or HTTP Basic with the token as password; the
//! user name is ignored), matched by constant-time comparison of its SHA-256 against the
//! configured hashes.
//!
//! Owns: reading credentials from a request and the connection, and the comparison.
//! Must never: log or keep a token, compare tokens with an early-exit comparison, or take an
//! identity from a certificate rustls did not verify.

use std::net::SocketAddr;

use base64::Engine as _;
use http::HeaderMap;
use sha2::{Digest as _, Sha256};

use crate::config::TaxiiClientConfig;

/// Longest `Authorization` header read.
const MAX_AUTH_HEADER: usize = 4096;

/// What the connection carries: the remote address and the URI SANs of the client certificate
/// rustls verified (empty on plain HTTP or without a certificate). A request extension.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct ConnMeta {
    /// Remote address.
    pub remote: Option<SocketAddr>,
    /// URI SANs of the verified client certificate.
    pub cert_uris: Vec<String>,
}

/// Why a request is not authenticated (answered with 401).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AuthError {
    /// No credentials at all.
    Missing,
    /// Credentials that match no client; the reason is for the log and the error description.
    Invalid(&'static str),
}

impl AuthError {
    /// Description for the client.
    pub(super) fn description(&self) -> &'static str {
        match self {
            AuthError::Missing => {
                "authentication required: send Authorization: Bearer <token> (or HTTP Basic \
                 with the token as password), or a client certificate"
            }
            AuthError::Invalid(why) => why,
        }
    }
}

/// Reads the URI SANs of a DER certificate (empty if it does not parse).
pub(crate) fn cert_uris(der: &[u8]) -> Vec<String> {
    crate::transport::uri_sans(der).unwrap_or_default()
}

fn ct_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b.iter()) {
        diff |= x ^ y;
    }
    std::hint::black_box(diff) == 0
}

/// The token carried by an `Authorization` header value, if any.
fn token_of(value: &str) -> Result<String, AuthError> {
    let (scheme, rest) = value
        .trim()
        .split_once(' ')
        .ok_or(AuthError::Invalid("malformed Authorization header"))?;
    let rest = rest.trim();
    match scheme.to_ascii_lowercase().as_str() {
        "bearer" | "token" => Ok(rest.to_string()),
        "basic" => {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(rest)
                .map_err(|_| AuthError::Invalid("malformed HTTP Basic credentials"))?;
            let text = String::from_utf8(raw)
                .map_err(|_| AuthError::Invalid("malformed HTTP Basic credentials"))?;
            let (_user, password) = text
                .split_once(':')
                .ok_or(AuthError::Invalid("malformed HTTP Basic credentials"))?;
            Ok(password.to_string())
        }
        _ => Err(AuthError::Invalid(
            "unsupported Authorization scheme (use Bearer or Basic)",
        )),
    }
}

/// The client a request authenticates as: a configured `certificate_uri` among the verified
/// certificate's URI SANs, else a token whose SHA-256 is configured.
pub(crate) fn authenticate<'a>(
    clients: &'a [TaxiiClientConfig],
    headers: &HeaderMap,
    conn: Option<&ConnMeta>,
) -> Result<&'a TaxiiClientConfig, AuthError> {
    let uris = conn.map(|c| c.cert_uris.as_slice()).unwrap_or_default();
    if !uris.is_empty()
        && let Some(c) = clients.iter().find(|c| {
            c.certificate_uri
                .as_deref()
                .is_some_and(|u| uris.iter().any(|x| x == u))
        })
    {
        return Ok(c);
    }
    let mut values = headers.get_all(http::header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Err(if uris.is_empty() {
            AuthError::Missing
        } else {
            AuthError::Invalid("the client certificate is not configured for TAXII")
        });
    };
    if values.next().is_some() {
        return Err(AuthError::Invalid("more than one Authorization header"));
    }
    if value.len() > MAX_AUTH_HEADER {
        return Err(AuthError::Invalid("Authorization header too long"));
    }
    let value = value
        .to_str()
        .map_err(|_| AuthError::Invalid("malformed Authorization header"))?;
    let token = token_of(value)?;
    if token.is_empty() {
        return Err(AuthError::Invalid("empty token"));
    }
    let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
    let mut found = None;
    for c in clients {
        if let Some(h) = &c.token_sha256
            && ct_eq(h, &hash)
            && found.is_none()
        {
            found = Some(c);
        }
    }
    found.ok_or(AuthError::Invalid("unknown token"))
}
