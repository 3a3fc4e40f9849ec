//! Query parameters of the TAXII requests: parsing, bounds, and the digest a cursor is bound to.
//!
//! Owns: `added_after`, `limit`, `next`, `match[type]`, `match[id]`, `match[version]`,
//! `match[spec_version]` (comma-separated lists), each error naming the parameter.
//! Must never: accept an unbounded query (length, list sizes and values are capped).

use sha2::{Digest as _, Sha256};

use super::cursor::Cursor;
use super::index::{Filter, MAX_ID_LEN, VersionSel, parse_timestamp_us};

/// Longest query string accepted.
pub(crate) const MAX_QUERY_LEN: usize = 8 * 1024;
/// Most values in one comma-separated list.
pub(crate) const MAX_LIST: usize = 100;

/// A query problem: the parameter and what is wrong (answered with 400).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct QueryError {
    /// The parameter, e.g. `added_after`.
    pub param: String,
    /// What is wrong.
    pub message: String,
}

impl QueryError {
    fn new(param: &str, message: impl Into<String>) -> QueryError {
        QueryError {
            param: param.to_string(),
            message: message.into(),
        }
    }
}

/// Which filters an endpoint accepts (others are ignored, as TAXII 2.1 allows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// Get Objects.
    Objects,
    /// Get Object Manifests.
    Manifest,
    /// Get an Object.
    Object,
    /// Get Object Versions.
    Versions,
}

impl Endpoint {
    fn tag(self) -> &'static str {
        match self {
            Endpoint::Objects => "objects",
            Endpoint::Manifest => "manifest",
            Endpoint::Object => "object",
            Endpoint::Versions => "versions",
        }
    }
}

/// A parsed query.
#[derive(Debug, Clone)]
pub(crate) struct PageQuery {
    /// The filters.
    pub filter: Filter,
    /// Requested page size (before the server cap); `None` = the server's `max_page`.
    pub limit: Option<usize>,
    /// The cursor, when continuing a paging session.
    pub next: Option<Cursor>,
    /// Digest of endpoint, collection, object id and filters (what `next` is bound to).
    pub context: u64,
}

fn split_list(param: &str, value: &str) -> Result<Vec<String>, QueryError> {
    let items: Vec<String> = value
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    if items.is_empty() {
        return Err(QueryError::new(param, "is empty"));
    }
    if items.len() > MAX_LIST {
        return Err(QueryError::new(
            param,
            format!(
                "lists {} values; at most {MAX_LIST} are accepted",
                items.len()
            ),
        ));
    }
    Ok(items)
}

fn check_type(param: &str, t: &str) -> Result<(), QueryError> {
    let ok = (1..=250).contains(&t.len())
        && t.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(QueryError::new(
            param,
            format!("{t:?} is not a STIX object type such as indicator"),
        ))
    }
}

fn check_id(param: &str, id: &str) -> Result<(), QueryError> {
    let ok = id.len() <= MAX_ID_LEN
        && id.split_once("--").is_some_and(|(t, rest)| {
            check_type(param, t).is_ok()
                && !rest.is_empty()
                && rest.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if ok {
        Ok(())
    } else {
        Err(QueryError::new(
            param,
            format!("{id:?} is not a STIX id such as indicator--<uuid>"),
        ))
    }
}

/// Checks an object id taken from the URL path.
pub(crate) fn check_object_id(id: &str) -> Result<(), QueryError> {
    check_id("object id", id)
}

fn timestamp(param: &str, s: &str) -> Result<i64, QueryError> {
    parse_timestamp_us(s).ok_or_else(|| {
        QueryError::new(
            param,
            format!("{s:?} is not a timestamp such as 2026-01-31T00:00:00.000Z"),
        )
    })
}

/// Parses the raw query string of a request to `endpoint` (`object_id` for Get an Object and
/// Get Object Versions) in collection `collection`.
pub(crate) fn parse(
    raw: Option<&str>,
    endpoint: Endpoint,
    collection: &str,
    object_id: Option<&str>,
) -> Result<PageQuery, QueryError> {
    let raw = raw.unwrap_or("");
    if raw.len() > MAX_QUERY_LEN {
        return Err(QueryError::new(
            "query",
            format!(
                "is {} bytes long; at most {MAX_QUERY_LEN} are accepted",
                raw.len()
            ),
        ));
    }
    let mut filter = Filter::default();
    if matches!(endpoint, Endpoint::Versions) {
        filter.versions = VersionSel::all();
    }
    let mut limit = None;
    let mut next = None;
    let mut seen: Vec<String> = Vec::new();
    for (k, v) in url::form_urlencoded::parse(raw.as_bytes()) {
        let k = k.into_owned();
        let known = matches!(
            k.as_str(),
            "added_after"
                | "limit"
                | "next"
                | "match[type]"
                | "match[id]"
                | "match[version]"
                | "match[spec_version]"
        );
        if !known {
            // Unsupported filters and unknown parameters are ignored (TAXII 2.1, 3.5).
            continue;
        }
        if seen.contains(&k) {
            return Err(QueryError::new(
                &k,
                "is given twice (use one comma-separated list)",
            ));
        }
        seen.push(k.clone());
        match k.as_str() {
            "added_after" => filter.added_after_us = Some(timestamp(&k, &v)?),
            "limit" => {
                let t = v.trim();
                if t.is_empty() || t.len() > 40 || !t.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(QueryError::new(
                        &k,
                        format!("{v:?} is not a positive integer"),
                    ));
                }
                // Larger than any page: capped to max_page like any other large limit.
                let n = t
                    .parse::<u128>()
                    .map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX));
                if n == 0 {
                    return Err(QueryError::new(&k, "0 is not allowed: must be at least 1"));
                }
                limit = Some(n);
            }
            "next" => next = Some(Cursor::decode(&v).map_err(|m| QueryError::new(&k, m))?),
            "match[type]" if matches!(endpoint, Endpoint::Objects | Endpoint::Manifest) => {
                let types = split_list(&k, &v)?;
                for t in &types {
                    check_type(&k, t)?;
                }
                filter.types = Some(types);
            }
            "match[id]" if matches!(endpoint, Endpoint::Objects | Endpoint::Manifest) => {
                let ids = split_list(&k, &v)?;
                for id in &ids {
                    check_id(&k, id)?;
                }
                filter.ids = Some(ids);
            }
            "match[version]" if !matches!(endpoint, Endpoint::Versions) => {
                let mut sel = VersionSel::default();
                for item in split_list(&k, &v)? {
                    match item.as_str() {
                        "all" => sel.all = true,
                        "first" => sel.first = true,
                        "last" => sel.last = true,
                        ts => sel.exact.push(timestamp(&k, ts)?),
                    }
                }
                filter.versions = sel;
            }
            "match[spec_version]" => {
                let specs = split_list(&k, &v)?;
                for s in &specs {
                    let ok = s.len() <= 8 && s.chars().all(|c| c.is_ascii_digit() || c == '.');
                    if !ok {
                        return Err(QueryError::new(
                            &k,
                            format!("{s:?} is not a STIX version such as 2.1"),
                        ));
                    }
                }
                filter.specs = Some(specs);
            }
            _ => {}
        }
    }
    if let Some(id) = object_id {
        filter.ids = Some(vec![id.to_string()]);
    }
    let context = context_digest(endpoint, collection, &filter);
    Ok(PageQuery {
        filter,
        limit,
        next,
        context,
    })
}

fn context_digest(endpoint: Endpoint, collection: &str, f: &Filter) -> u64 {
    let mut h = Sha256::new();
    let mut part = |s: &str| {
        h.update((s.len() as u64).to_be_bytes());
        h.update(s.as_bytes());
    };
    part(endpoint.tag());
    part(collection);
    part(&f.added_after_us.map(|v| v.to_string()).unwrap_or_default());
    let list = |l: &Option<Vec<String>>| match l {
        None => "-".to_string(),
        Some(v) => {
            let mut v = v.clone();
            v.sort();
            v.dedup();
            v.join(",")
        }
    };
    part(&list(&f.types));
    part(&list(&f.ids));
    part(&list(&f.specs));
    let mut exact = f.versions.exact.clone();
    exact.sort_unstable();
    exact.dedup();
    part(&format!(
        "{}{}{}{:?}",
        u8::from(f.versions.all),
        u8::from(f.versions.first),
        u8::from(f.versions.last),
        exact
    ));
    let d = h.finalize();
    let mut w = [0u8; 8];
    w.copy_from_slice(&d[..8]);
    u64::from_be_bytes(w)
}
