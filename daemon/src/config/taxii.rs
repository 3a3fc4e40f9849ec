//! `[taxii]`: the TAXII 2.1 read endpoint (see `crate::taxii`): listener, TLS files, page and
//! cache sizes, and the `[[taxii.clients]]` with their credentials and collections.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::raw::{RawTaxii, RawTaxiiClient};
use super::{existing_file, listen_addr};
use crate::model::Tlp;
use crate::policy::Visibility;

/// `[taxii]`: the TAXII 2.1 read endpoint (see `crate::taxii`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaxiiConfig {
    /// Address of the HTTP(S) listener.
    pub listen: SocketAddr,
    /// TLS server identity; `None` = plain HTTP (only allowed on a loopback address).
    pub tls: Option<TaxiiTlsConfig>,
    /// Largest page a client gets (`limit` is capped to it; the default page size).
    pub max_page: usize,
    /// Budget of the converted-object cache in MiB.
    pub cache_mb: u64,
    /// The clients allowed to read, with their collections.
    pub clients: Vec<TaxiiClientConfig>,
}

/// TLS files of the TAXII listener (absolute paths).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaxiiTlsConfig {
    /// Server certificate chain (PEM).
    pub cert: PathBuf,
    /// Server private key (PEM).
    pub key: PathBuf,
    /// CA certificates (PEM) issuing client certificates; `None` = no client certificates.
    pub client_ca: Option<PathBuf>,
}

/// One `[[taxii.clients]]` entry. The token itself is never stored: only its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaxiiClientConfig {
    /// Name (logs and messages).
    pub name: String,
    /// SHA-256 of the bearer token, if the client authenticates with a token.
    pub token_sha256: Option<[u8; 32]>,
    /// URI SAN of the client's certificate (e.g. `tanoa://operator/siem`), if it
    /// authenticates with mutual TLS.
    pub certificate_uri: Option<String>,
    /// Collections it may read.
    pub collections: Vec<Visibility>,
}

/// Largest `taxii.max_page`.
const MAX_TAXII_PAGE: usize = 10_000;

/// `[taxii]` resolved; `None` when any of it has a problem (the endpoint never runs half
/// configured).
pub(super) fn resolve_taxii(
    t: RawTaxii,
    base: &Path,
    bad: &mut dyn FnMut(&str, String),
) -> Option<TaxiiConfig> {
    let mut ok = true;
    let listen = listen_addr("taxii.listen", &t.listen, "127.0.0.1:9470", bad);
    let mut file = |key: &str, v: Option<PathBuf>| -> Option<PathBuf> {
        let given = v.is_some();
        let found = existing_file(key, v, base, None, bad);
        if given && found.is_none() {
            ok = false;
        }
        found
    };
    let (cert_set, key_set, ca_set) = (
        t.tls_cert.is_some(),
        t.tls_key.is_some(),
        t.client_ca.is_some(),
    );
    let cert = file("taxii.tls_cert", t.tls_cert);
    let key = file("taxii.tls_key", t.tls_key);
    let client_ca = file("taxii.client_ca", t.client_ca);
    check_tls_choice(listen, cert_set, key_set, ca_set, bad, &mut ok);
    let max_page = t.max_page.unwrap_or(1000);
    if !(1..=MAX_TAXII_PAGE).contains(&max_page) {
        bad(
            "taxii.max_page",
            format!("{max_page} is out of range (1 to {MAX_TAXII_PAGE})"),
        );
        ok = false;
    }
    let cache_mb = t.cache_mb.unwrap_or(128);
    if cache_mb > 1_048_576 {
        bad(
            "taxii.cache_mb",
            format!("{cache_mb} is out of range (0 to 1048576 MiB)"),
        );
        ok = false;
    }
    let clients = resolve_clients(t.clients, ca_set, bad, &mut ok);
    let tls = match (cert, key) {
        (Some(cert), Some(key)) => Some(TaxiiTlsConfig {
            cert,
            key,
            client_ca,
        }),
        _ => None,
    };
    match listen {
        Some(listen) if ok => Some(TaxiiConfig {
            listen,
            tls,
            max_page,
            cache_mb,
            clients,
        }),
        _ => None,
    }
}

/// Certificate and key come together; plain HTTP only on loopback; client certificates need TLS.
fn check_tls_choice(
    listen: Option<SocketAddr>,
    cert_set: bool,
    key_set: bool,
    ca_set: bool,
    bad: &mut dyn FnMut(&str, String),
    ok: &mut bool,
) {
    if cert_set != key_set {
        let missing = if cert_set {
            "taxii.tls_key"
        } else {
            "taxii.tls_cert"
        };
        bad(
            missing,
            "taxii.tls_cert and taxii.tls_key must be given together".into(),
        );
        *ok = false;
    }
    if let Some(l) = listen
        && !cert_set
        && !l.ip().is_loopback()
    {
        bad(
            "taxii.tls_cert",
            format!(
                "required because taxii.listen ({l}) is not a loopback address: plain HTTP is \
                 only allowed on 127.0.0.1 or ::1 (tokens would cross the network in clear)"
            ),
        );
        *ok = false;
    }
    if ca_set && !cert_set {
        bad(
            "taxii.client_ca",
            "client certificates need TLS: set taxii.tls_cert and taxii.tls_key".into(),
        );
        *ok = false;
    }
}

/// The `[[taxii.clients]]`: at least one, names, tokens and certificate URIs unique.
fn resolve_clients(
    raw: Vec<RawTaxiiClient>,
    ca_set: bool,
    bad: &mut dyn FnMut(&str, String),
    ok: &mut bool,
) -> Vec<TaxiiClientConfig> {
    if raw.is_empty() {
        bad(
            "taxii.clients",
            "at least one [[taxii.clients]] is required (nobody could read otherwise)".into(),
        );
        *ok = false;
    }
    let mut clients: Vec<TaxiiClientConfig> = Vec::new();
    for (n, c) in raw.into_iter().enumerate() {
        let k = |f: &str| format!("taxii.clients[{n}].{f}");
        let name = client_name(&c.name, &clients, &k, bad, ok);
        let token_sha256 = client_token(c.token_sha256.as_deref(), &clients, &k, bad, ok);
        let certificate_uri =
            client_certificate_uri(c.certificate_uri, ca_set, &clients, &k, bad, ok);
        if token_sha256.is_none() && certificate_uri.is_none() && c.token_sha256.is_none() {
            bad(
                &k("token_sha256"),
                "a client needs token_sha256 or certificate_uri (or both)".into(),
            );
            *ok = false;
        }
        let collections = client_collections(&c.collections, &k, bad, ok);
        clients.push(TaxiiClientConfig {
            name,
            token_sha256,
            certificate_uri,
            collections,
        });
    }
    clients
}

/// A client's `name`: 1 to 128 printable characters, not used by an earlier client.
fn client_name(
    raw: &str,
    clients: &[TaxiiClientConfig],
    k: &dyn Fn(&str) -> String,
    bad: &mut dyn FnMut(&str, String),
    ok: &mut bool,
) -> String {
    let name = raw.trim().to_string();
    if name.is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
        bad(&k("name"), "must be 1 to 128 printable characters".into());
        *ok = false;
    } else if let Some(first) = clients.iter().position(|x| x.name == name) {
        bad(
            &k("name"),
            format!("{name:?} is also the name of taxii.clients[{first}]"),
        );
        *ok = false;
    }
    name
}

/// A client's `token_sha256`: 64 hex digits, not given to an earlier client.
fn client_token(
    raw: Option<&str>,
    clients: &[TaxiiClientConfig],
    k: &dyn Fn(&str) -> String,
    bad: &mut dyn FnMut(&str, String),
    ok: &mut bool,
) -> Option<[u8; 32]> {
    let h = raw?.trim();
    let mut out = [0u8; 32];
    match hex::decode_to_slice(h, &mut out) {
        Ok(()) => {
            if let Some(first) = clients.iter().position(|x| x.token_sha256 == Some(out)) {
                bad(
                    &k("token_sha256"),
                    format!("the same token is given to taxii.clients[{first}]"),
                );
                *ok = false;
            }
            Some(out)
        }
        Err(_) => {
            bad(
                &k("token_sha256"),
                "must be 64 hex digits: the SHA-256 of the token (e.g. \
                 `printf %s TOKEN | sha256sum`), never the token itself"
                    .into(),
            );
            *ok = false;
            None
        }
    }
}

/// A client's `certificate_uri`: a URI, needing `taxii.client_ca`, not given to an earlier
/// client.
fn client_certificate_uri(
    raw: Option<String>,
    ca_set: bool,
    clients: &[TaxiiClientConfig],
    k: &dyn Fn(&str) -> String,
    bad: &mut dyn FnMut(&str, String),
    ok: &mut bool,
) -> Option<String> {
    let certificate_uri = raw.map(|u| u.trim().to_string()).filter(|u| !u.is_empty());
    if let Some(u) = &certificate_uri {
        if !u.contains(':') || u.len() > 512 || u.chars().any(|ch| ch.is_whitespace()) {
            bad(
                &k("certificate_uri"),
                format!("{u:?} is not a URI such as tanoa://operator/siem"),
            );
            *ok = false;
        } else if !ca_set {
            bad(
                &k("certificate_uri"),
                "needs taxii.client_ca (the CA that issues client certificates)".into(),
            );
            *ok = false;
        } else if let Some(first) = clients
            .iter()
            .position(|x| x.certificate_uri.as_deref() == Some(u.as_str()))
        {
            bad(
                &k("certificate_uri"),
                format!("{u:?} is also given to taxii.clients[{first}]"),
            );
            *ok = false;
        }
    }
    certificate_uri
}

/// A client's `collections`: at least one of `clear`, `green`, `amber`, each once (TLP:RED is
/// refused with its own reason).
fn client_collections(
    raw: &[String],
    k: &dyn Fn(&str) -> String,
    bad: &mut dyn FnMut(&str, String),
    ok: &mut bool,
) -> Vec<Visibility> {
    let mut collections = Vec::new();
    if raw.is_empty() {
        bad(
            &k("collections"),
            "list the collections it may read: \"clear\", \"green\", \"amber\"".into(),
        );
        *ok = false;
    }
    for (j, name) in raw.iter().enumerate() {
        match Visibility::parse(name) {
            Some(v) if !collections.contains(&v) => collections.push(v),
            Some(_) => {
                bad(
                    &k(&format!("collections[{j}]")),
                    format!("{name:?} is listed twice"),
                );
                *ok = false;
            }
            None => {
                let why = if Tlp::parse(name) == Some(Tlp::Red) {
                    "TLP:RED is never served over TAXII (only its named recipients may \
                     hold it, never a tool that re-shares it)"
                        .to_string()
                } else {
                    format!("{name:?} is not a collection: use \"clear\", \"green\" or \"amber\"")
                };
                bad(&k(&format!("collections[{j}]")), why);
                *ok = false;
            }
        }
    }
    collections
}
