//! The HTTP resources of TAXII 2.1 (read only) and their errors.
//!
//! Owns: routing of `/taxii2/` and `/tanoa/…`, the order of the checks (authentication → 401,
//! method → 405, `Accept` → 406, resource → 404, authorization → 403, query → 400), the JSON
//! of every resource and error (`title`, `description`, `http_status`), the media type and
//! the `X-TAXII-Date-Added-First`/`-Last` headers.
//! Must never: panic on request data, answer with another media type than TAXII 2.1's, or
//! reveal anything of a collection the client may not read beyond its existence.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::response::Response;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use serde_json::json;

use super::Collection as _;
use super::auth::{self, AuthError, ConnMeta};
use super::cursor::Cursor;
use super::feed::Shared;
use super::index::{Page, format_ms};
use super::query::{self, Endpoint, PageQuery, QueryError};
use super::{API_ROOT, MAX_CONTENT_LENGTH, MEDIA_TYPE_STIX, MEDIA_TYPE_TAXII, Visibility};
use crate::config::{TaxiiClientConfig, TaxiiConfig};

/// Reason code of a failed login (`tanoa_taxii_login_failures_total`).
const LOGIN_FAILED: &str = "invalid_credentials";
/// Reason code of a request refused because its source failed too many logins.
const LOGIN_RATE_LIMITED: &str = "rate_limited";

/// Realm of the `WWW-Authenticate` challenges.
const REALM: &str = "tanoa-taxii";

/// What every request needs.
#[derive(Debug)]
pub(super) struct AppState {
    pub(crate) shared: Arc<Shared>,
    clients: Vec<TaxiiClientConfig>,
    max_page: usize,
    member: String,
    title: String,
    tls: bool,
    collections: Vec<(Visibility, String)>,
    logins: super::login::LoginLimiter,
    metrics: std::sync::OnceLock<Arc<crate::metrics::Metrics>>,
    auth_log: crate::tcp_accept::LogGate,
}

impl AppState {
    pub(crate) fn new(
        shared: Arc<Shared>,
        config: &TaxiiConfig,
        member: &str,
        display_name: &str,
        tls: bool,
    ) -> AppState {
        AppState {
            shared,
            clients: config.clients.clone(),
            max_page: config.max_page,
            member: member.to_string(),
            title: format!("Tanoa TAXII 2.1: {display_name}"),
            tls,
            collections: Visibility::ALL
                .iter()
                .map(|v| (*v, v.collection_id(member)))
                .collect(),
            logins: super::login::LoginLimiter::default(),
            metrics: std::sync::OnceLock::new(),
            auth_log: crate::tcp_accept::LogGate::new(crate::tcp_accept::LOG_PERIOD),
        }
    }

    /// Counts failed and rate-limited logins in `metrics` (set once).
    pub(crate) fn set_metrics(&self, metrics: Arc<crate::metrics::Metrics>) {
        let _ = self.metrics.set(metrics);
    }

    /// The node's metrics, when set.
    pub(crate) fn metrics(&self) -> Option<&Arc<crate::metrics::Metrics>> {
        self.metrics.get()
    }
}

/// The router of the TAXII endpoint over `state` (every path goes through one handler that
/// checks in a fixed order; see the module doc).
pub(super) fn router(state: Arc<AppState>) -> Router {
    Router::new().fallback(handle).with_state(state)
}

/// A TAXII error response.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    title: &'static str,
    description: String,
}

impl ApiError {
    fn new(status: StatusCode, title: &'static str, description: impl Into<String>) -> Self {
        ApiError {
            status,
            title,
            description: description.into(),
        }
    }

    fn bad_query(e: QueryError) -> Self {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "Bad request",
            format!("{}: {}", e.param, e.message),
        )
    }

    fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "taxii: request failed");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal error",
            "the server could not complete the request; see its log",
        )
    }

    fn into_response(self) -> Response {
        let body = json!({
            "title": self.title,
            "description": self.description,
            "http_status": self.status.as_u16().to_string(),
        });
        taxii_response(self.status, body.to_string(), HeaderMap::new())
    }
}

fn taxii_response(status: StatusCode, body: String, mut headers: HeaderMap) -> Response {
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(MEDIA_TYPE_TAXII),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status;
    *resp.headers_mut() = headers;
    resp
}

/// Whether the `Accept` header admits TAXII 2.1 JSON (`application/taxii+json` with no version
/// or version 2.1, `application/*`, `*/*`; absent = anything).
pub(crate) fn accepts_taxii(headers: &HeaderMap) -> bool {
    let mut any = false;
    for value in headers.get_all(header::ACCEPT) {
        any = true;
        let Ok(value) = value.to_str() else {
            continue;
        };
        for range in value.split(',') {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or("").to_ascii_lowercase();
            let mut version: Option<String> = None;
            let mut q = 1.0f32;
            for p in parts {
                if let Some((k, v)) = p.split_once('=') {
                    let v = v.trim().trim_matches('"');
                    match k.trim().to_ascii_lowercase().as_str() {
                        "version" => version = Some(v.to_string()),
                        "q" => q = v.parse().unwrap_or(1.0),
                        _ => {}
                    }
                }
            }
            if q <= 0.0 {
                continue;
            }
            match media.as_str() {
                "*/*" | "application/*" => return true,
                "application/taxii+json" if version.as_deref().is_none_or(|v| v == "2.1") => {
                    return true;
                }
                _ => {}
            }
        }
    }
    !any
}

/// The resources of this server.
#[derive(Debug, PartialEq, Eq)]
enum Route<'a> {
    Discovery,
    ApiRoot,
    Collections,
    Collection(&'a str),
    Objects(&'a str),
    Object(&'a str, &'a str),
    Versions(&'a str, &'a str),
    Manifest(&'a str),
}

fn route(path: &str) -> Option<Route<'_>> {
    let trimmed = path.strip_prefix('/')?;
    let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
    let segs: Vec<&str> = trimmed.split('/').collect();
    if segs.iter().any(|s| s.is_empty()) {
        return None;
    }
    match segs.as_slice() {
        ["taxii2"] => Some(Route::Discovery),
        [root] if *root == API_ROOT => Some(Route::ApiRoot),
        [root, "collections"] if *root == API_ROOT => Some(Route::Collections),
        [root, "collections", c] if *root == API_ROOT => Some(Route::Collection(c)),
        [root, "collections", c, "objects"] if *root == API_ROOT => Some(Route::Objects(c)),
        [root, "collections", c, "manifest"] if *root == API_ROOT => Some(Route::Manifest(c)),
        [root, "collections", c, "objects", o] if *root == API_ROOT => Some(Route::Object(c, o)),
        [root, "collections", c, "objects", o, "versions"] if *root == API_ROOT => {
            Some(Route::Versions(c, o))
        }
        _ => None,
    }
}

async fn handle(State(st): State<Arc<AppState>>, req: Request) -> Response {
    let (parts, _body) = req.into_parts();
    let conn = parts
        .extensions
        .get::<ConnectInfo<ConnMeta>>()
        .map(|c| &c.0);
    let remote = conn
        .and_then(|c| c.remote)
        .map_or_else(|| "-".to_string(), |a| a.to_string());
    // A source over its failed-login limit is refused before its credentials are checked.
    // (The listener always knows the remote address; requests without one are not limited.)
    let source = conn.and_then(|c| c.remote).map(|a| a.ip());
    let now = std::time::Instant::now();
    if let Some(ip) = source
        && let Err(wait) = st.logins.check(ip, now)
    {
        if let Some(m) = st.metrics() {
            m.taxii_login_failure(LOGIN_RATE_LIMITED);
        }
        let secs = wait
            .as_secs()
            .saturating_add(u64::from(wait.subsec_nanos() > 0))
            .max(1);
        let mut resp = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "Too Many Requests",
            "too many failed logins from this address; retry later",
        )
        .into_response();
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        return resp;
    }
    let client = match auth::authenticate(&st.clients, &parts.headers, conn) {
        Ok(c) => c,
        Err(e) => {
            if let AuthError::Invalid(why) = &e {
                if let Some(ip) = source {
                    st.logins.failed(ip, now);
                }
                if let Some(m) = st.metrics() {
                    m.taxii_login_failure(LOGIN_FAILED);
                }
                if let Some(held) = st.auth_log.admit() {
                    tracing::warn!(%remote, reason = why, path = %parts.uri.path(),
                        not_logged_since_last_line = held, "taxii: authentication failed");
                }
            }
            let mut resp = ApiError::new(StatusCode::UNAUTHORIZED, "Unauthorized", e.description())
                .into_response();
            for scheme in ["Bearer", "Basic"] {
                if let Ok(v) = HeaderValue::from_str(&format!("{scheme} realm=\"{REALM}\"")) {
                    resp.headers_mut().append(header::WWW_AUTHENTICATE, v);
                }
            }
            return resp;
        }
    };
    let resp = match respond(&st, client, &parts).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    tracing::debug!(client = %client.name, %remote, method = %parts.method,
        path = %parts.uri.path(), status = resp.status().as_u16(), "taxii request");
    resp
}

async fn respond(
    st: &Arc<AppState>,
    client: &TaxiiClientConfig,
    parts: &http::request::Parts,
) -> Result<Response, ApiError> {
    if parts.method != Method::GET && parts.method != Method::HEAD {
        let mut resp = ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "Method not allowed",
            format!(
                "{} is not supported: this TAXII server is read only (GET)",
                parts.method
            ),
        )
        .into_response();
        resp.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return Ok(resp);
    }
    if !accepts_taxii(&parts.headers) {
        return Err(ApiError::new(
            StatusCode::NOT_ACCEPTABLE,
            "Not acceptable",
            format!("the Accept header must admit {MEDIA_TYPE_TAXII}"),
        ));
    }
    let path = parts.uri.path();
    let Some(route) = route(path) else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "Not found",
            format!("{path} is not a resource of this TAXII server (discovery: /taxii2/)"),
        ));
    };
    let query = parts.uri.query();
    match route {
        Route::Discovery => Ok(ok_json(discovery(st, &parts.headers))),
        Route::ApiRoot => Ok(ok_json(json!({
            "title": st.title,
            "description": format!(
                "Advisories held by Tanoa member {} as STIX 2.1, one collection per \
                 visibility (TLP:RED is never served).", st.member),
            "versions": [MEDIA_TYPE_TAXII],
            "max_content_length": MAX_CONTENT_LENGTH,
        }))),
        Route::Collections => {
            let list: Vec<_> = st
                .collections
                .iter()
                .filter(|(v, _)| client.collections.contains(v))
                .map(|(v, id)| collection_json(*v, id))
                .collect();
            Ok(ok_json(json!({ "collections": list })))
        }
        Route::Collection(c) => {
            let (vis, id) = collection(st, client, c)?;
            Ok(ok_json(collection_json(vis, &id)))
        }
        Route::Objects(c) => page(st, client, c, None, Endpoint::Objects, query).await,
        Route::Manifest(c) => page(st, client, c, None, Endpoint::Manifest, query).await,
        Route::Object(c, o) => page(st, client, c, Some(o), Endpoint::Object, query).await,
        Route::Versions(c, o) => page(st, client, c, Some(o), Endpoint::Versions, query).await,
    }
}

fn ok_json(v: serde_json::Value) -> Response {
    taxii_response(StatusCode::OK, v.to_string(), HeaderMap::new())
}

fn discovery(st: &AppState, headers: &HeaderMap) -> serde_json::Value {
    // Absolute URL when the Host header is usable, else a relative one (both are URLs a TAXII
    // client resolves against the discovery URL).
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.len() <= 255
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-:[]_".contains(c))
        });
    let root = match host {
        Some(h) => format!(
            "{}://{h}/{API_ROOT}/",
            if st.tls { "https" } else { "http" }
        ),
        None => format!("/{API_ROOT}/"),
    };
    json!({
        "title": st.title,
        "description": format!(
            "TAXII 2.1 read endpoint of Tanoa member {}: signed advisories of the federation \
             as STIX 2.1.", st.member),
        "default": root,
        "api_roots": [root],
    })
}

fn collection_json(vis: Visibility, id: &str) -> serde_json::Value {
    json!({
        "id": id,
        "title": vis.title(),
        "description": vis.description(),
        "alias": vis.alias(),
        "can_read": true,
        "can_write": false,
        "media_types": [MEDIA_TYPE_STIX],
    })
}

/// Resolves a collection by id or alias and checks the client may read it.
fn collection(
    st: &AppState,
    client: &TaxiiClientConfig,
    c: &str,
) -> Result<(Visibility, String), ApiError> {
    let Some((vis, id)) = st
        .collections
        .iter()
        .find(|(v, id)| id.eq_ignore_ascii_case(c) || v.alias() == c)
    else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "Collection not found",
            format!("no collection {c:?} on this server"),
        ));
    };
    if !client.collections.contains(vis) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "Forbidden",
            format!(
                "client {:?} may not read collection {} ({})",
                client.name,
                id,
                vis.alias()
            ),
        ));
    }
    Ok((*vis, id.clone()))
}

/// (id, date_added ms, version, spec_version) of an object version on a page.
type Meta = (Arc<str>, i64, Arc<str>, Arc<str>);

/// What a page request produced (computed on the blocking pool).
struct PageOut {
    page: Page,
    next: Option<String>,
    /// JSON of each hit (objects and object endpoints).
    objects: Vec<Option<Arc<str>>>,
    /// (id, date_added, version, spec) of each hit (manifest and versions).
    meta: Vec<Meta>,
    unknown_object: bool,
}

async fn page(
    st: &Arc<AppState>,
    client: &TaxiiClientConfig,
    c: &str,
    object: Option<&str>,
    endpoint: Endpoint,
    raw_query: Option<&str>,
) -> Result<Response, ApiError> {
    let (vis, coll_id) = collection(st, client, c)?;
    if let Some(o) = object {
        query::check_object_id(o).map_err(|e| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "Object not found",
                format!("{}: {}", e.param, e.message),
            )
        })?;
    }
    let q = query::parse(raw_query, endpoint, &coll_id, object).map_err(ApiError::bad_query)?;
    let limit = q.limit.unwrap_or(st.max_page).min(st.max_page);
    let shared = Arc::clone(&st.shared);
    let object_id = object.map(str::to_string);
    let out = tokio::task::spawn_blocking(move || {
        compute_page(&shared, vis, endpoint, &q, limit, object_id.as_deref())
    })
    .await
    .map_err(ApiError::internal)??;
    if out.unknown_object {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "Object not found",
            format!(
                "no object {:?} in collection {}",
                object.unwrap_or_default(),
                vis.alias()
            ),
        ));
    }
    let mut headers = HeaderMap::new();
    if let (Some(first), Some(last)) = (out.page.hits.first(), out.page.hits.last()) {
        for (name, ms) in [
            ("x-taxii-date-added-first", first.key.0),
            ("x-taxii-date-added-last", last.key.0),
        ] {
            if let Ok(v) = HeaderValue::from_str(&format_ms(ms)) {
                headers.insert(name, v);
            }
        }
    }
    let mut body = String::with_capacity(
        64 + out
            .objects
            .iter()
            .flatten()
            .map(|j| j.len() + 1)
            .sum::<usize>(),
    );
    body.push_str("{\"more\":");
    body.push_str(if out.page.more { "true" } else { "false" });
    if let Some(n) = &out.next {
        body.push_str(",\"next\":");
        body.push_str(&serde_json::Value::String(n.clone()).to_string());
    }
    match endpoint {
        Endpoint::Objects | Endpoint::Object => {
            let mut first = true;
            for json in out.objects.iter().flatten() {
                body.push_str(if first { ",\"objects\":[" } else { "," });
                first = false;
                body.push_str(json);
            }
            if !first {
                body.push(']');
            }
        }
        Endpoint::Manifest => {
            if !out.meta.is_empty() {
                let records: Vec<_> = out
                    .meta
                    .iter()
                    .map(|(id, da, version, spec)| {
                        json!({
                            "id": &**id,
                            "date_added": format_ms(*da),
                            "version": &**version,
                            "media_type": format!("application/stix+json;version={spec}"),
                        })
                    })
                    .collect();
                body.push_str(",\"objects\":");
                body.push_str(&serde_json::Value::Array(records).to_string());
            }
        }
        Endpoint::Versions => {
            if !out.meta.is_empty() {
                let versions: Vec<_> = out.meta.iter().map(|m| &*m.2).collect();
                body.push_str(",\"versions\":");
                body.push_str(&json!(versions).to_string());
            }
        }
    }
    body.push('}');
    Ok(taxii_response(StatusCode::OK, body, headers))
}

fn compute_page(
    shared: &Shared,
    vis: Visibility,
    endpoint: Endpoint,
    q: &PageQuery,
    limit: usize,
    object: Option<&str>,
) -> Result<PageOut, ApiError> {
    shared.refresh().map_err(ApiError::internal)?;
    let (page, snapshot) = {
        let idx = shared
            .index
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (snapshot, after) = match &q.next {
            None => (idx.snapshot(), None),
            Some(c) => {
                if c.epoch != shared.epoch() {
                    return Err(ApiError::bad_query(QueryError {
                        param: "next".into(),
                        message: "was issued before the server restarted or its index was \
                                  rebuilt (items were dropped); start again without next (use \
                                  added_after to resume)"
                            .into(),
                    }));
                }
                if c.context != q.context || c.snapshot > idx.snapshot() {
                    return Err(ApiError::bad_query(QueryError {
                        param: "next".into(),
                        message: "was issued for another collection, endpoint or filters; send \
                                  the same filters as for the first page"
                            .into(),
                    }));
                }
                (c.snapshot, Some(&c.key))
            }
        };
        if let Some(o) = object
            && !idx.has_object(vis, o, snapshot)
        {
            return Ok(PageOut {
                page: Page::default(),
                next: None,
                objects: Vec::new(),
                meta: Vec::new(),
                unknown_object: true,
            });
        }
        let page = idx.page(vis, &q.filter, snapshot, after, limit);
        (page, snapshot)
    };
    let next = match (page.more, page.hits.last()) {
        (true, Some(last)) => Some(
            Cursor {
                epoch: shared.epoch(),
                snapshot,
                key: last.key.clone(),
                context: q.context,
            }
            .encode(),
        ),
        _ => None,
    };
    let (objects, meta) = match endpoint {
        Endpoint::Objects | Endpoint::Object => {
            let ovs: Vec<u32> = page.hits.iter().map(|h| h.ov).collect();
            let objects = shared.objects(&ovs).map_err(ApiError::internal)?;
            let missing = objects.iter().filter(|o| o.is_none()).count();
            if missing > 0 {
                return Err(ApiError::internal(format!(
                    "{missing} object versions of the page could not be produced again"
                )));
            }
            (objects, Vec::new())
        }
        Endpoint::Manifest | Endpoint::Versions => {
            let idx = shared
                .index
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let meta = page
                .hits
                .iter()
                .filter_map(|h| {
                    idx.objver(h.ov).map(|o| {
                        (
                            Arc::clone(&o.id),
                            h.key.0,
                            Arc::clone(&o.version),
                            Arc::clone(&o.spec),
                        )
                    })
                })
                .collect();
            (Vec::new(), meta)
        }
    };
    Ok(PageOut {
        page,
        next,
        objects,
        meta,
        unknown_object: false,
    })
}
