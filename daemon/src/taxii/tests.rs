//! Unit tests of the TAXII endpoint: every status code, filter and header through the axum
//! router (`tower::ServiceExt::oneshot`), the exact-paging property of the index, the
//! configuration rules, and one TLS listener with a client certificate.
//!
//! The objects come from a small deterministic stand-in converter (identity, report, one
//! indicator per indicator), so these tests do not depend on the STIX mapping.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use http::{Request, StatusCode};
use proptest::prelude::*;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use tower::ServiceExt as _;

use super::auth::ConnMeta;
use super::cursor::Cursor;
use super::feed::Shared;
use super::index::{Filter, Index, ItemInfo, ParsedObject, VersionSel, format_ms};
use super::routes::AppState;
use super::*;
use crate::config::{TaxiiClientConfig, TaxiiConfig};
use crate::envelope::{Envelope, ItemId, Verified};
use crate::model::{Advisory, Tlp};
use crate::store::conformance::{T0, WS, advisory, signed, withdrawn};
use crate::store::{MemoryStore, Store};

const MEMBER: &str = "ws-cert";
const SIEM: &str = "siem-token-0123456789";
const CLEAR_ONLY: &str = "clear-token-0123456789";
const AMBER_TOKEN: &str = "amber-token-0123456789";

fn uid(s: &str) -> uuid::Uuid {
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, s.as_bytes())
}

/// Stand-in converter: origin identity (fixed version), the report, one indicator per
/// indicator; every generated object versioned by the advisory's `modified_ms`.
fn fake_objects(a: &Advisory, _e: &Envelope) -> Vec<Value> {
    let modified = format_ms(a.modified_ms);
    let created = format_ms(a.created_ms);
    let mut out = vec![json!({
        "type": "identity", "spec_version": "2.1",
        "id": format!("identity--{}", uid(&format!("identity:{}", a.origin))),
        "created": "2020-01-01T00:00:00.000Z", "modified": "2020-01-01T00:00:00.000Z",
        "name": a.origin, "identity_class": "organization",
    })];
    let report_id = format!("report--{}", uid(&format!("{}/{}", a.origin, a.id)));
    let mut refs = Vec::new();
    let mut inds = Vec::new();
    for i in &a.indicators {
        let id = format!(
            "indicator--{}",
            uid(&format!("{}/{}/{}", a.origin, a.id, i.value))
        );
        refs.push(id.clone());
        inds.push(json!({
            "type": "indicator", "spec_version": "2.1", "id": id,
            "created": created, "modified": modified, "revoked": a.withdrawn,
            "pattern": format!("[x-tanoa:value = '{}']", i.value), "pattern_type": "stix",
            "valid_from": created,
        }));
    }
    out.push(json!({
        "type": "report", "spec_version": "2.1", "id": report_id,
        "created": created, "modified": modified, "published": created,
        "name": a.title, "revoked": a.withdrawn, "object_refs": refs,
    }));
    out.extend(inds);
    out
}

fn converter() -> Converter {
    Arc::new(fake_objects)
}

fn sha(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn client(name: &str, token: &str, colls: &[Visibility]) -> TaxiiClientConfig {
    TaxiiClientConfig {
        name: name.into(),
        token_sha256: Some(sha(token)),
        certificate_uri: None,
        collections: colls.to_vec(),
    }
}

fn clients() -> Vec<TaxiiClientConfig> {
    vec![
        client("siem", SIEM, &[Visibility::Clear, Visibility::Green]),
        client("clear-only", CLEAR_ONLY, &[Visibility::Clear]),
        client("amber", AMBER_TOKEN, &Visibility::ALL),
        TaxiiClientConfig {
            name: "tip".into(),
            token_sha256: None,
            certificate_uri: Some("tanoa://operator/tip".into()),
            collections: vec![Visibility::Amber],
        },
    ]
}

fn taxii_config(max_page: usize, cache_mb: u64) -> TaxiiConfig {
    TaxiiConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        tls: None,
        max_page,
        cache_mb,
        clients: clients(),
    }
}

struct Fx {
    store: Arc<MemoryStore>,
    shared: Arc<Shared>,
    router: Router,
}

fn fixture_with(max_page: usize, cache_bytes: usize) -> Fx {
    let store = Arc::new(MemoryStore::new());
    let shared = Arc::new(Shared::new(
        Arc::clone(&store) as Arc<dyn Store>,
        converter(),
        None,
        cache_bytes,
    ));
    let state = Arc::new(AppState::new(
        Arc::clone(&shared),
        &taxii_config(max_page, 64),
        MEMBER,
        "Samoa CERT",
        false,
    ));
    Fx {
        store,
        shared,
        router: router(state),
    }
}

fn fixture() -> Fx {
    fixture_with(1000, 64 << 20)
}

impl Fx {
    fn put(&self, item: &Verified<Advisory>, received_ms: i64) -> ItemId {
        self.store.put(item, "local", received_ms).unwrap();
        item.item_id()
    }

    async fn req(&self, method: &str, uri: &str, auth: Option<&str>, accept: Option<&str>) -> Resp {
        let mut b = Request::builder().method(method).uri(uri);
        if let Some(a) = auth {
            b = b.header("authorization", a);
        }
        if let Some(a) = accept {
            b = b.header("accept", a);
        }
        send(&self.router, b.body(Body::empty()).unwrap()).await
    }

    async fn get(&self, uri: &str, token: &str) -> Resp {
        self.req(
            "GET",
            uri,
            Some(&format!("Bearer {token}")),
            Some(MEDIA_TYPE_TAXII),
        )
        .await
    }

    /// Every object (id, version) of a collection, paging at `limit`, with every page checked.
    async fn all_pages(&self, coll: &str, token: &str, limit: usize, extra: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut next: Option<String> = None;
        for _ in 0..100_000 {
            let mut uri = format!("/tanoa/collections/{coll}/objects/?limit={limit}{extra}");
            if let Some(n) = &next {
                uri.push_str(&format!("&next={n}"));
            }
            let r = self.get(&uri, token).await;
            assert_eq!(r.status, StatusCode::OK, "{uri}: {}", r.body);
            let objs = r.body["objects"].as_array().cloned().unwrap_or_default();
            assert!(objs.len() <= limit);
            let more = r.body["more"].as_bool().unwrap();
            if more {
                assert_eq!(objs.len(), limit, "a page with more=true is full");
            }
            out.extend(objs);
            if !more {
                assert!(r.body.get("next").is_none());
                return out;
            }
            next = Some(r.body["next"].as_str().unwrap().to_string());
        }
        panic!("paging did not end");
    }
}

#[derive(Debug)]
struct Resp {
    status: StatusCode,
    headers: http::HeaderMap,
    body: Value,
}

async fn send(router: &Router, req: Request<Body>) -> Resp {
    let resp = router.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), 64 << 20)
        .await
        .unwrap();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&bytes)
            )
        })
    };
    assert_eq!(
        headers.get("content-type").unwrap(),
        MEDIA_TYPE_TAXII,
        "every response is TAXII 2.1 JSON"
    );
    Resp {
        status,
        headers,
        body,
    }
}

fn tlp_item(id: &str, tlp: Tlp, revision: u64) -> Verified<Advisory> {
    let mut a = advisory(WS, id, revision);
    a.tlp = tlp;
    if tlp.needs_audience() {
        a.audience = vec!["au-acsc".into()];
    }
    signed(a)
}

fn ids_of(objs: &[Value]) -> BTreeSet<String> {
    objs.iter()
        .map(|o| o["id"].as_str().unwrap().to_string())
        .collect()
}

fn expected_ids(items: &[&Verified<Advisory>]) -> BTreeSet<String> {
    let mut s = BTreeSet::new();
    for it in items {
        let env = Envelope {
            payload: Vec::new(),
            key_id: String::new(),
            signature: Vec::new(),
        };
        for o in fake_objects(it, &env) {
            s.insert(o["id"].as_str().unwrap().to_string());
        }
    }
    s
}

fn coll_id(v: Visibility) -> String {
    v.collection_id(MEMBER)
}

fn assert_error(r: &Resp, status: StatusCode) {
    assert_eq!(r.status, status, "{}", r.body);
    assert_eq!(r.body["http_status"], json!(status.as_u16().to_string()));
    assert!(r.body["title"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(
        r.body["description"]
            .as_str()
            .is_some_and(|t| !t.is_empty())
    );
}

// ---------------------------------------------------------------------------------------------
// Resources, authentication and status codes

#[tokio::test]
async fn discovery_api_root_and_collections() {
    let fx = fixture();
    let r = fx.get("/taxii2/", SIEM).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["api_roots"], json!(["/tanoa/"]));
    assert_eq!(r.body["default"], json!("/tanoa/"));
    assert!(r.body["title"].as_str().unwrap().contains("Samoa CERT"));
    let r = fx
        .req(
            "GET",
            "/taxii2/",
            Some(&format!("Bearer {SIEM}")),
            Some(MEDIA_TYPE_TAXII),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);

    let r = fx.get("/tanoa/", SIEM).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["versions"], json!([MEDIA_TYPE_TAXII]));
    assert!(r.body["max_content_length"].as_u64().unwrap() > 0);

    // Only the collections the client may read are listed.
    let r = fx.get("/tanoa/collections/", SIEM).await;
    let colls = r.body["collections"].as_array().unwrap();
    let aliases: Vec<&str> = colls.iter().map(|c| c["alias"].as_str().unwrap()).collect();
    assert_eq!(aliases, ["clear", "green"]);
    for c in colls {
        assert_eq!(c["can_read"], json!(true));
        assert_eq!(c["can_write"], json!(false));
        assert_eq!(c["media_types"], json!([MEDIA_TYPE_STIX]));
        let v = Visibility::parse(c["alias"].as_str().unwrap()).unwrap();
        assert_eq!(c["id"], json!(coll_id(v)));
    }
    let r = fx.get("/tanoa/collections/", AMBER_TOKEN).await;
    assert_eq!(r.body["collections"].as_array().unwrap().len(), 3);

    // One collection, by id or alias, with or without the trailing slash.
    let r = fx
        .get(
            &format!("/tanoa/collections/{}/", coll_id(Visibility::Green)),
            SIEM,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["alias"], json!("green"));
    let r = fx.get("/tanoa/collections/green", SIEM).await;
    assert_eq!(r.body["id"], json!(coll_id(Visibility::Green)));
}

#[test]
fn collection_ids_are_stable_uuid_v5_per_member() {
    let a = Visibility::Green.collection_id("ws-cert");
    assert_eq!(a, Visibility::Green.collection_id("ws-cert"));
    assert_ne!(a, Visibility::Green.collection_id("to-cert"));
    assert_ne!(a, Visibility::Amber.collection_id("ws-cert"));
    let u = uuid::Uuid::parse_str(&a).unwrap();
    assert_eq!(u.get_version_num(), 5);
}

#[tokio::test]
async fn discovery_uses_the_host_header_for_absolute_urls() {
    let fx = fixture();
    let req = Request::builder()
        .uri("/taxii2/")
        .header("host", "127.0.0.1:9470")
        .header("authorization", format!("Bearer {SIEM}"))
        .body(Body::empty())
        .unwrap();
    let r = send(&fx.router, req).await;
    assert_eq!(r.body["api_roots"], json!(["http://127.0.0.1:9470/tanoa/"]));
    assert_eq!(r.body["default"], r.body["api_roots"][0]);
}

#[tokio::test]
async fn unauthenticated_is_401_with_challenges() {
    let fx = fixture();
    for auth in [
        None,
        Some("Bearer wrong-token"),
        Some("Bearer "),
        Some("Digest abc"),
        Some("Basic !!!notbase64"),
        Some("garbage"),
    ] {
        for path in [
            "/taxii2/",
            "/tanoa/",
            "/tanoa/collections/clear/objects/",
            "/nowhere",
        ] {
            let r = fx.req("GET", path, auth, Some(MEDIA_TYPE_TAXII)).await;
            assert_error(&r, StatusCode::UNAUTHORIZED);
            let challenges: Vec<&str> = r
                .headers
                .get_all("www-authenticate")
                .iter()
                .map(|v| v.to_str().unwrap())
                .collect();
            assert_eq!(
                challenges,
                [
                    "Bearer realm=\"tanoa-taxii\"",
                    "Basic realm=\"tanoa-taxii\""
                ]
            );
        }
    }
    // Even a POST is 401 first (nothing about the server before authentication).
    let r = fx
        .req("POST", "/tanoa/collections/clear/objects/", None, None)
        .await;
    assert_error(&r, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn bearer_token_basic_and_certificate_authenticate() {
    use base64::Engine as _;
    let fx = fixture();
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("anyone:{SIEM}"));
    for auth in [
        format!("Bearer {SIEM}"),
        format!("bearer {SIEM}"),
        format!("Token {SIEM}"),
        format!("Basic {basic}"),
    ] {
        let r = fx
            .req("GET", "/tanoa/collections/", Some(&auth), None)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{auth}");
    }
    // The token in the user name does not authenticate.
    let wrong = base64::engine::general_purpose::STANDARD.encode(format!("{SIEM}:x"));
    let r = fx
        .req("GET", "/tanoa/", Some(&format!("Basic {wrong}")), None)
        .await;
    assert_error(&r, StatusCode::UNAUTHORIZED);

    // A verified client certificate whose URI SAN is configured.
    let mut req = Request::builder()
        .uri("/tanoa/collections/")
        .body(Body::empty())
        .unwrap();
    req.extensions_mut().insert(ConnectInfo(ConnMeta {
        remote: None,
        cert_uris: vec!["tanoa://operator/tip".into()],
    }));
    let r = send(&fx.router, req).await;
    assert_eq!(r.status, StatusCode::OK);
    let aliases: Vec<&str> = r.body["collections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["alias"].as_str().unwrap())
        .collect();
    assert_eq!(aliases, ["amber"]);
    // A certificate nobody configured, without a token: 401.
    let mut req = Request::builder()
        .uri("/tanoa/collections/")
        .body(Body::empty())
        .unwrap();
    req.extensions_mut().insert(ConnectInfo(ConnMeta {
        remote: None,
        cert_uris: vec!["tanoa://operator/stranger".into()],
    }));
    assert_error(&send(&fx.router, req).await, StatusCode::UNAUTHORIZED);
}

/// A request from `remote` with `Authorization: Bearer <token>`.
async fn from_addr(fx: &Fx, remote: &str, token: &str) -> Resp {
    let mut req = Request::builder()
        .uri("/tanoa/collections/")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    req.extensions_mut().insert(ConnectInfo(ConnMeta {
        remote: Some(remote.parse().unwrap()),
        cert_uris: Vec::new(),
    }));
    send(&fx.router, req).await
}

#[tokio::test]
async fn failed_logins_are_rate_limited_per_source_address() {
    let fx = fixture();
    let attacker = "198.51.100.9:4000";
    for _ in 0..super::login::BURST {
        assert_error(
            &from_addr(&fx, attacker, "guess").await,
            StatusCode::UNAUTHORIZED,
        );
    }
    // Over the limit: 429 with Retry-After, whatever the credential (not even checked).
    for token in ["guess", SIEM] {
        let r = from_addr(&fx, "198.51.100.9:4001", token).await;
        assert_error(&r, StatusCode::TOO_MANY_REQUESTS);
        let retry: u64 = r.headers[http::header::RETRY_AFTER]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            (1..=super::login::REFILL.as_secs()).contains(&retry),
            "{retry}"
        );
    }
    // Another address is not affected.
    assert_eq!(
        from_addr(&fx, "198.51.100.10:4000", SIEM).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn forbidden_unknown_and_methods() {
    let fx = fixture();
    let amber = coll_id(Visibility::Amber);
    for path in [
        format!("/tanoa/collections/{amber}/"),
        format!("/tanoa/collections/{amber}/objects/"),
        format!("/tanoa/collections/{amber}/manifest/"),
        "/tanoa/collections/amber/objects/indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f/"
            .to_string(),
        "/tanoa/collections/amber/objects/indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f/versions/"
            .to_string(),
    ] {
        assert_error(&fx.get(&path, SIEM).await, StatusCode::FORBIDDEN);
    }
    assert_error(
        &fx.get("/tanoa/collections/green/objects/", CLEAR_ONLY)
            .await,
        StatusCode::FORBIDDEN,
    );
    for path in [
        "/tanoa/collections/red/objects/",
        "/tanoa/collections/8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f/",
        "/tanoa/collections/clear/objects/indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f/",
        "/tanoa/collections/clear/objects/not-an-id/",
        "/tanoa/status/1234/",
        "/api1/",
        "/",
        "/taxii2/extra/",
        "/tanoa//collections/",
    ] {
        assert_error(&fx.get(path, SIEM).await, StatusCode::NOT_FOUND);
    }
    for method in ["POST", "DELETE", "PUT", "PATCH"] {
        let r = fx
            .req(
                method,
                "/tanoa/collections/clear/objects/",
                Some(&format!("Bearer {SIEM}")),
                Some(MEDIA_TYPE_TAXII),
            )
            .await;
        assert_error(&r, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(r.headers.get("allow").unwrap(), "GET, HEAD");
    }
}

#[tokio::test]
async fn accept_header_is_checked() {
    let fx = fixture();
    let auth = format!("Bearer {SIEM}");
    for ok in [
        None,
        Some("application/taxii+json;version=2.1"),
        Some("application/taxii+json; version=2.1"),
        Some("application/taxii+json"),
        Some("*/*"),
        Some("application/*"),
        Some("text/html, application/taxii+json;version=2.1;q=0.9"),
    ] {
        let r = fx.req("GET", "/tanoa/", Some(&auth), ok).await;
        assert_eq!(r.status, StatusCode::OK, "{ok:?}");
    }
    for bad in [
        "application/json",
        "application/taxii+json;version=2.0",
        "application/vnd.oasis.taxii+json; version=2.0",
        "application/taxii+json;version=2.1;q=0",
        "text/html",
    ] {
        let r = fx.req("GET", "/tanoa/", Some(&auth), Some(bad)).await;
        assert_error(&r, StatusCode::NOT_ACCEPTABLE);
    }
}

#[tokio::test]
async fn bad_queries_are_400_naming_the_parameter() {
    let fx = fixture();
    fx.put(&tlp_item("a1", Tlp::Clear, 1), T0);
    let base = "/tanoa/collections/clear/objects/";
    for (q, param) in [
        ("limit=0", "limit"),
        ("limit=-5", "limit"),
        ("limit=ten", "limit"),
        ("added_after=yesterday", "added_after"),
        ("added_after=2026-13-01T00:00:00Z", "added_after"),
        ("match[version]=latest", "match[version]"),
        ("match[type]=Indicator!", "match[type]"),
        ("match[id]=indicator", "match[id]"),
        ("match[spec_version]=two", "match[spec_version]"),
        ("next=%%%", "next"),
        ("next=AAAA", "next"),
        ("limit=1&limit=2", "limit"),
        ("match[type]=", "match[type]"),
    ] {
        let r = fx.get(&format!("{base}?{q}"), SIEM).await;
        assert_error(&r, StatusCode::BAD_REQUEST);
        let d = r.body["description"].as_str().unwrap();
        assert!(d.starts_with(&format!("{param}:")), "{q}: {d}");
    }
    let long = format!("{base}?match[type]={}", "a,".repeat(5000));
    let r = fx.get(&long, SIEM).await;
    assert_error(&r, StatusCode::BAD_REQUEST);
    // Unknown parameters and filters are ignored.
    let r = fx.get(&format!("{base}?match[foo]=bar&x=1"), SIEM).await;
    assert_eq!(r.status, StatusCode::OK);
}

// ---------------------------------------------------------------------------------------------
// Contents of the collections

#[tokio::test]
async fn tlp_decides_the_collections_and_red_is_never_served() {
    let fx = fixture();
    let clear = tlp_item("c1", Tlp::Clear, 1);
    let green = tlp_item("g1", Tlp::Green, 1);
    let amber = tlp_item("a1", Tlp::Amber, 1);
    let strict = tlp_item("s1", Tlp::AmberStrict, 1);
    let red = tlp_item("r1", Tlp::Red, 1);
    for (n, it) in [&clear, &green, &amber, &strict, &red].iter().enumerate() {
        fx.put(it, T0 + i64::try_from(n).unwrap());
    }
    let got = |coll: &'static str| {
        let fx = &fx;
        async move { ids_of(&fx.all_pages(coll, AMBER_TOKEN, 1000, "").await) }
    };
    assert_eq!(got("clear").await, expected_ids(&[&clear]));
    assert_eq!(got("green").await, expected_ids(&[&clear, &green]));
    assert_eq!(
        got("amber").await,
        expected_ids(&[&clear, &green, &amber, &strict])
    );
    let red_ids: HashSet<String> = expected_ids(&[&red])
        .into_iter()
        .filter(|i| !i.starts_with("identity--"))
        .collect();
    for coll in ["clear", "green", "amber"] {
        let all = fx
            .all_pages(coll, AMBER_TOKEN, 1000, "&match[version]=all")
            .await;
        assert!(ids_of(&all).iter().all(|i| !red_ids.contains(i)));
        let manifest = fx
            .get(&format!("/tanoa/collections/{coll}/manifest/"), AMBER_TOKEN)
            .await;
        for m in manifest.body["objects"].as_array().unwrap() {
            assert!(!red_ids.contains(m["id"].as_str().unwrap()));
        }
    }
}

/// Roster items (GREEN, id prefix `tanoa-roster.`) are in no collection, in objects or in the
/// manifest; the advisory next to them is.
#[tokio::test]
async fn roster_items_are_in_no_collection() {
    let fx = fixture();
    let carrier = tlp_item("tanoa-roster.version.0002", Tlp::Green, 1);
    let green = tlp_item("g1", Tlp::Green, 1);
    fx.put(&carrier, T0);
    fx.put(&green, T0 + 1);
    let carrier_ids: BTreeSet<String> = expected_ids(&[&carrier])
        .into_iter()
        .filter(|i| !i.starts_with("identity--"))
        .collect();
    assert!(!carrier_ids.is_empty());
    for coll in ["clear", "green", "amber"] {
        let all = fx
            .all_pages(coll, AMBER_TOKEN, 1000, "&match[version]=all")
            .await;
        let got = ids_of(&all);
        assert!(
            got.iter().all(|i| !carrier_ids.contains(i)),
            "{coll}: {got:?}"
        );
        if coll != "clear" {
            assert_eq!(got, expected_ids(&[&green]), "{coll}");
        }
        let manifest = fx
            .get(&format!("/tanoa/collections/{coll}/manifest/"), AMBER_TOKEN)
            .await;
        // An empty manifest has no `objects` (the clear collection here).
        let objects = manifest.body["objects"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert_eq!(objects.is_empty(), coll == "clear", "{coll}");
        for m in objects {
            assert!(!carrier_ids.contains(m["id"].as_str().unwrap()));
        }
    }
}

#[tokio::test]
async fn revisions_are_versions_and_withdrawal_is_the_last_version() {
    let fx = fixture();
    let r1 = tlp_item("adv", Tlp::Green, 1);
    let r2 = tlp_item("adv", Tlp::Green, 2);
    let r3 = signed(withdrawn(advisory(WS, "adv", 3)));
    fx.put(&r1, T0 + 10);
    fx.put(&r2, T0 + 20);
    fx.put(&r3, T0 + 30);
    let report = format!("report--{}", uid(&format!("{WS}/adv")));

    // Default: the last version, revoked.
    let r = fx
        .get(&format!("/tanoa/collections/green/objects/{report}/"), SIEM)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let objs = r.body["objects"].as_array().unwrap();
    assert_eq!(objs.len(), 1);
    assert_eq!(objs[0]["revoked"], json!(true));
    assert_eq!(objs[0]["modified"], json!(format_ms(T0 + 3000)));

    // Versions, oldest first, with the date_added headers.
    let r = fx
        .get(
            &format!("/tanoa/collections/green/objects/{report}/versions/"),
            SIEM,
        )
        .await;
    assert_eq!(
        r.body["versions"],
        json!([
            format_ms(T0 + 1000),
            format_ms(T0 + 2000),
            format_ms(T0 + 3000)
        ])
    );
    assert_eq!(r.body["more"], json!(false));
    assert_eq!(
        r.headers.get("x-taxii-date-added-first").unwrap(),
        &format_ms(T0 + 10)
    );
    assert_eq!(
        r.headers.get("x-taxii-date-added-last").unwrap(),
        &format_ms(T0 + 30)
    );

    // match[version]: first, all, an exact one, a combination.
    let v = |q: &str| {
        let fx = &fx;
        let report = report.clone();
        let q = q.to_string();
        async move {
            let r = fx
                .get(
                    &format!("/tanoa/collections/green/objects/{report}/?match[version]={q}"),
                    SIEM,
                )
                .await;
            assert_eq!(r.status, StatusCode::OK, "{q}: {}", r.body);
            r.body["objects"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(|o| o["modified"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(v("first").await, [format_ms(T0 + 1000)]);
    assert_eq!(v("last").await, [format_ms(T0 + 3000)]);
    assert_eq!(
        v("all").await,
        [
            format_ms(T0 + 1000),
            format_ms(T0 + 2000),
            format_ms(T0 + 3000)
        ]
    );
    assert_eq!(v(&format_ms(T0 + 2000)).await, [format_ms(T0 + 2000)]);
    assert_eq!(
        v(&format!("first,{}", format_ms(T0 + 2000))).await,
        [format_ms(T0 + 1000), format_ms(T0 + 2000)]
    );
    assert!(v("2030-01-01T00:00:00Z").await.is_empty());

    // The identity appears in every revision but is one object version, added with the first.
    let all = fx
        .all_pages(
            "green",
            SIEM,
            1000,
            "&match[version]=all&match[type]=identity",
        )
        .await;
    assert_eq!(all.len(), 1);
    let m = fx
        .get(
            "/tanoa/collections/green/manifest/?match[type]=identity",
            SIEM,
        )
        .await;
    assert_eq!(
        m.body["objects"][0]["date_added"],
        json!(format_ms(T0 + 10))
    );
    assert_eq!(
        m.body["objects"][0]["media_type"],
        json!("application/stix+json;version=2.1")
    );
    assert_eq!(
        m.body["objects"][0]["version"],
        json!("2020-01-01T00:00:00.000Z")
    );
}

#[tokio::test]
async fn filters_type_id_spec_version_and_added_after() {
    let fx = fixture();
    let a = tlp_item("f1", Tlp::Clear, 1);
    let b = tlp_item("f2", Tlp::Clear, 1);
    fx.put(&a, T0 + 100);
    fx.put(&b, T0 + 200);
    let a_ids = expected_ids(&[&a]);
    let b_only: BTreeSet<String> = expected_ids(&[&b])
        .into_iter()
        .filter(|i| !i.starts_with("identity--"))
        .collect();

    let types = |objs: &[Value]| {
        objs.iter()
            .map(|o| o["type"].as_str().unwrap().to_string())
            .collect::<BTreeSet<_>>()
    };
    let r = fx
        .all_pages("clear", SIEM, 1000, "&match[type]=report")
        .await;
    assert_eq!(r.len(), 2);
    assert_eq!(types(&r), BTreeSet::from(["report".to_string()]));
    let r = fx
        .all_pages("clear", SIEM, 1000, "&match[type]=report,identity")
        .await;
    assert_eq!(r.len(), 3);

    let two: Vec<&String> = a_ids
        .iter()
        .filter(|i| i.starts_with("indicator"))
        .take(2)
        .collect();
    let r = fx
        .all_pages(
            "clear",
            SIEM,
            1000,
            &format!("&match[id]={},{}", two[0], two[1]),
        )
        .await;
    assert_eq!(ids_of(&r), two.iter().map(|s| (*s).clone()).collect());

    assert_eq!(
        fx.all_pages("clear", SIEM, 1000, "&match[spec_version]=2.1")
            .await
            .len(),
        a_ids.len() + b_only.len()
    );
    assert!(
        fx.all_pages("clear", SIEM, 1000, "&match[spec_version]=2.0")
            .await
            .is_empty()
    );

    // added_after is exclusive: exactly a's date_added excludes a.
    let r = fx
        .all_pages(
            "clear",
            SIEM,
            1000,
            &format!("&added_after={}", format_ms(T0 + 100)),
        )
        .await;
    assert_eq!(ids_of(&r), b_only);
    let r = fx
        .all_pages(
            "clear",
            SIEM,
            1000,
            &format!("&added_after={}", format_ms(T0 + 99)),
        )
        .await;
    assert_eq!(r.len(), a_ids.len() + b_only.len());
    // Microsecond precision: 100.999 ms is still before 101 ms... and after 100 ms.
    let r = fx
        .all_pages(
            "clear",
            SIEM,
            1000,
            "&added_after=2026-01-01T00:00:00.100999Z",
        )
        .await;
    assert_eq!(ids_of(&r), b_only);
    // Manifest honours the same filters.
    let m = fx
        .get(
            &format!(
                "/tanoa/collections/clear/manifest/?added_after={}",
                format_ms(T0 + 100)
            ),
            SIEM,
        )
        .await;
    let mids: BTreeSet<String> = m.body["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(mids, b_only);
}

#[tokio::test]
async fn date_added_headers_and_empty_envelopes() {
    let fx = fixture();
    let r = fx.get("/tanoa/collections/clear/objects/", SIEM).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, json!({"more": false}));
    assert!(r.headers.get("x-taxii-date-added-first").is_none());
    fx.put(&tlp_item("h1", Tlp::Clear, 1), T0 + 5);
    fx.put(&tlp_item("h2", Tlp::Clear, 1), T0 + 7);
    let r = fx
        .get("/tanoa/collections/clear/objects/?limit=3", SIEM)
        .await;
    assert_eq!(
        r.headers.get("x-taxii-date-added-first").unwrap(),
        &format_ms(T0 + 5)
    );
    assert_eq!(
        r.headers.get("x-taxii-date-added-last").unwrap(),
        &format_ms(T0 + 5)
    );
    let r = fx.get("/tanoa/collections/clear/manifest/", SIEM).await;
    assert_eq!(
        r.headers.get("x-taxii-date-added-last").unwrap(),
        &format_ms(T0 + 7)
    );
    // limit above max_page is capped, not refused.
    let small = fixture_with(4, 64 << 20);
    small.put(&tlp_item("h1", Tlp::Clear, 1), T0 + 5);
    let r = small
        .get("/tanoa/collections/clear/objects/?limit=500", SIEM)
        .await;
    assert_eq!(r.body["objects"].as_array().unwrap().len(), 4);
    assert_eq!(r.body["more"], json!(true));
    let r = small
        .get(
            "/tanoa/collections/clear/objects/?limit=99999999999999999999999999",
            SIEM,
        )
        .await;
    assert_eq!(r.body["objects"].as_array().unwrap().len(), 4);
    let r = small.get("/tanoa/collections/clear/objects/", SIEM).await;
    assert_eq!(
        r.body["objects"].as_array().unwrap().len(),
        4,
        "default = max_page"
    );
}

// ---------------------------------------------------------------------------------------------
// Paging

#[tokio::test]
async fn thousands_sharing_one_date_added_page_exactly() {
    let fx = fixture();
    let mut items = Vec::new();
    for n in 0..60 {
        let mut a = advisory(WS, &format!("batch-{n}"), 1);
        a.tlp = Tlp::Green;
        a.indicators = (0..20)
            .map(|k| {
                crate::store::conformance::indicator(
                    crate::model::IndicatorKind::Domain,
                    &format!("h{n}-{k}.apt40.example"),
                )
            })
            .collect();
        items.push(signed(a));
    }
    for it in &items {
        fx.put(it, T0 + 42); // one batch: one received_ms
    }
    let refs: Vec<&Verified<Advisory>> = items.iter().collect();
    let want = expected_ids(&refs);
    assert_eq!(want.len(), 60 * 21 + 1);
    for limit in [1, 7, 50, 1000] {
        let got = fx.all_pages("green", SIEM, limit, "").await;
        let set = ids_of(&got);
        assert_eq!(
            got.len(),
            set.len(),
            "limit {limit}: an object was repeated"
        );
        assert_eq!(set, want, "limit {limit}");
    }
    // The manifest pages the same way.
    let mut next: Option<String> = None;
    let mut seen = Vec::new();
    loop {
        let mut uri = "/tanoa/collections/green/manifest/?limit=33".to_string();
        if let Some(n) = &next {
            uri.push_str(&format!("&next={n}"));
        }
        let r = fx.get(&uri, SIEM).await;
        for m in r.body["objects"].as_array().unwrap() {
            assert_eq!(m["date_added"], json!(format_ms(T0 + 42)));
            seen.push(m["id"].as_str().unwrap().to_string());
        }
        if r.body["more"] != json!(true) {
            break;
        }
        next = Some(r.body["next"].as_str().unwrap().to_string());
    }
    assert_eq!(seen.len(), want.len());
    assert_eq!(seen.iter().cloned().collect::<BTreeSet<_>>(), want);
}

#[tokio::test]
async fn paging_is_a_snapshot_and_new_items_come_with_added_after() {
    let fx = fixture();
    let first = tlp_item("p1", Tlp::Clear, 1);
    fx.put(&first, T0 + 100);
    let r = fx
        .get("/tanoa/collections/clear/objects/?limit=3", SIEM)
        .await;
    let mut got = ids_of(r.body["objects"].as_array().unwrap());
    let next = r.body["next"].as_str().unwrap().to_string();
    // Stored meanwhile, with a date_added before and at the page boundary.
    let early = tlp_item("p0", Tlp::Clear, 1);
    let same = tlp_item("p2", Tlp::Clear, 1);
    fx.put(&early, T0 + 50);
    fx.put(&same, T0 + 100);
    let mut next = Some(next);
    let mut last_seen = String::new();
    while let Some(n) = next.take() {
        let r = fx
            .get(
                &format!("/tanoa/collections/clear/objects/?limit=3&next={n}"),
                SIEM,
            )
            .await;
        got.extend(ids_of(r.body["objects"].as_array().unwrap()));
        last_seen = r
            .headers
            .get("x-taxii-date-added-last")
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        next = r.body["next"].as_str().map(str::to_string);
    }
    assert_eq!(got, expected_ids(&[&first]), "exactly the snapshot");
    // A client resuming with added_after = the last date_added it saw gets the rest.
    let rest = fx
        .all_pages("clear", SIEM, 2, &format!("&added_after={last_seen}"))
        .await;
    let rest_ids = ids_of(&rest);
    let want: BTreeSet<String> = expected_ids(&[&early, &same])
        .into_iter()
        .filter(|i| !i.starts_with("identity--"))
        .collect();
    assert_eq!(rest_ids, want);
}

#[tokio::test]
async fn next_is_bound_to_filters_and_to_the_index_instance() {
    let fx = fixture();
    fx.put(&tlp_item("n1", Tlp::Clear, 1), T0);
    let r = fx
        .get("/tanoa/collections/clear/objects/?limit=2", SIEM)
        .await;
    let next = r.body["next"].as_str().unwrap().to_string();
    for other in [
        format!("/tanoa/collections/clear/objects/?limit=2&next={next}&match[type]=report"),
        format!("/tanoa/collections/green/objects/?limit=2&next={next}"),
        format!("/tanoa/collections/clear/manifest/?limit=2&next={next}"),
    ] {
        let r = fx.get(&other, SIEM).await;
        assert_error(&r, StatusCode::BAD_REQUEST);
        assert!(r.body["description"].as_str().unwrap().starts_with("next:"));
    }
    // Changing the page size is fine.
    let r = fx
        .get(
            &format!("/tanoa/collections/clear/objects/?limit=5&next={next}"),
            SIEM,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    // A cursor of another index instance (a restart) is refused.
    let mut c = Cursor::decode(&next).unwrap();
    c.epoch ^= 1;
    let r = fx
        .get(
            &format!(
                "/tanoa/collections/clear/objects/?limit=2&next={}",
                c.encode()
            ),
            SIEM,
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST);
    assert!(
        r.body["description"]
            .as_str()
            .unwrap()
            .contains("restarted")
    );
}

#[test]
fn cursor_round_trips_and_rejects_garbage() {
    let c = Cursor {
        epoch: 7,
        snapshot: 99,
        key: (
            T0,
            Arc::from("indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f"),
            -5,
        ),
        context: 12345,
    };
    assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
    for bad in ["", "!", "AAAA", &"A".repeat(2000)] {
        assert!(Cursor::decode(bad).is_err(), "{bad}");
    }
}

#[tokio::test]
async fn a_small_cache_converts_again_and_serves_the_same_objects() {
    let big = fixture();
    let tiny = fixture_with(1000, 0);
    for fx in [&big, &tiny] {
        for n in 0..5 {
            fx.put(&tlp_item(&format!("k{n}"), Tlp::Clear, 1), T0 + n);
        }
    }
    let a = big.all_pages("clear", SIEM, 3, "").await;
    let b = tiny.all_pages("clear", SIEM, 3, "").await;
    assert_eq!(a, b);
    assert_eq!(tiny.shared.cache_stats(), (0, 0));
    assert!(big.shared.cache_stats().0 > 0);
}

#[tokio::test]
async fn equivocating_variant_is_left_out() {
    let fx = fixture();
    let one = tlp_item("eq", Tlp::Clear, 1);
    let mut other = advisory(WS, "eq", 1);
    other.tlp = Tlp::Clear;
    other.title = "a different payload for the same revision".into();
    let other = signed(other);
    fx.put(&one, T0);
    fx.put(&other, T0 + 1);
    let got = fx
        .all_pages("clear", SIEM, 100, "&match[type]=report")
        .await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["name"], json!(one.title));
    assert_eq!(fx.shared.index.read().unwrap().skipped_variants(), 1);
}

#[tokio::test]
async fn published_items_are_visible_at_once_through_change_events() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let core = Arc::new(crate::publish::tests::core_with(Arc::clone(&store)));
    // Built before anything is published, following the core's events.
    let shared = Arc::new(Shared::new(
        Arc::clone(&store),
        converter(),
        Some(core.subscribe()),
        1 << 20,
    ));
    let s = Arc::clone(&shared);
    tokio::task::spawn_blocking(move || s.refresh())
        .await
        .unwrap()
        .unwrap();
    let state = Arc::new(AppState::new(
        Arc::clone(&shared),
        &taxii_config(1000, 1),
        "ws-cert",
        "Samoa CERT",
        false,
    ));
    let router = router(state);
    let p = core
        .publish(
            &crate::publish::tests::draft("", "APT40 scanning", "192.0.2.7"),
            "test",
        )
        .await
        .unwrap();
    let req = Request::builder()
        .uri("/tanoa/collections/green/objects/?match[type]=report")
        .header("authorization", format!("Bearer {SIEM}"))
        .body(Body::empty())
        .unwrap();
    let r = send(&router, req).await;
    let objs = r.body["objects"].as_array().unwrap();
    assert_eq!(objs.len(), 1);
    assert_eq!(
        objs[0]["id"],
        json!(format!(
            "report--{}",
            uid(&format!("ws-cert/{}", p.advisory_id))
        ))
    );
}

// ---------------------------------------------------------------------------------------------
// The paging property, on the index itself

fn parsed(id: &str, version_ms: i64) -> ParsedObject {
    ParsedObject {
        id: Arc::from(id),
        version: Some((Arc::from(format_ms(version_ms)), version_ms * 1000)),
        spec: Arc::from("2.1"),
        json: Arc::from(format!("{{\"id\":\"{id}\"}}")),
    }
}

fn info(n: u64, received_ms: i64, tlp: Tlp) -> ItemInfo {
    let mut b = [0u8; 32];
    b[..8].copy_from_slice(&n.to_be_bytes());
    ItemInfo {
        item_id: ItemId(b),
        received_ms,
        tlp,
        origin: WS.into(),
        advisory_id: format!("adv-{n}"),
        revision: 1,
    }
}

/// Pages through the whole collection; returns the (date_added, id, version) keys in order.
fn drain(
    idx: &Index,
    vis: Visibility,
    filter: &Filter,
    limits: &[usize],
) -> Vec<(i64, String, i64)> {
    let snapshot = idx.snapshot();
    let mut after = None;
    let mut out = Vec::new();
    for n in 0.. {
        let limit = limits[n % limits.len()];
        let page = idx.page(vis, filter, snapshot, after.as_ref(), limit);
        assert!(page.hits.len() <= limit);
        if page.more {
            assert_eq!(page.hits.len(), limit);
        }
        for h in &page.hits {
            out.push((h.key.0, h.key.1.to_string(), h.key.2));
        }
        if !page.more {
            break;
        }
        after = page.hits.last().map(|h| h.key.clone());
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever the page sizes, and however many objects share one date_added, paging returns
    /// every object version of the collection exactly once, in (date_added, id, version) order.
    #[test]
    fn paging_never_loses_or_repeats(
        items in proptest::collection::vec((0i64..3, 1usize..6, 0u8..3), 1..40),
        limits in proptest::collection::vec(1usize..9, 1..4),
        all_versions in any::<bool>(),
    ) {
        let mut idx = Index::new();
        let mut expected = BTreeSet::new();
        let mut sorted: Vec<(i64, u64, usize, u8)> = items
            .iter()
            .enumerate()
            .map(|(n, (t, k, tlp))| (T0 + t, n as u64, *k, *tlp))
            .collect();
        sorted.sort();
        let mut latest: std::collections::HashMap<String, i64> = Default::default();
        for (received, n, k, tlp) in &sorted {
            let tlp = [Tlp::Clear, Tlp::Green, Tlp::Red][usize::from(*tlp)];
            // Objects shared between items (same id, two versions) and unique ones.
            let mut objs = vec![parsed("identity--0b2a4e8c-0000-5000-8000-000000000001", 1)];
            objs.push(parsed(
                "report--0b2a4e8c-0000-5000-8000-000000000002",
                1 + i64::try_from(*n % 2).unwrap(),
            ));
            for j in 0..*k {
                objs.push(parsed(&format!("indicator--{n:08}-0000-5000-8000-{j:012}"), 5));
            }
            idx.insert_item(&info(*n, *received, tlp), *received, &objs);
            if tlp != Tlp::Red {
                for o in &objs {
                    let v = o.version.as_ref().unwrap().1;
                    let e = latest.entry(o.id.to_string()).or_insert(v);
                    *e = (*e).max(v);
                    expected.insert((o.id.to_string(), v));
                }
            }
        }
        let filter = Filter {
            versions: if all_versions { VersionSel::all() } else { VersionSel::last() },
            ..Filter::default()
        };
        let got = drain(&idx, Visibility::Green, &filter, &limits);
        let got_set: BTreeSet<(String, i64)> =
            got.iter().map(|(_, id, v)| (id.clone(), *v)).collect();
        prop_assert_eq!(got.len(), got_set.len(), "repeated");
        let want: BTreeSet<(String, i64)> = if all_versions {
            expected
        } else {
            latest.into_iter().collect()
        };
        prop_assert_eq!(got_set, want);
        let keys: Vec<_> = got.to_vec();
        let mut sorted_keys = keys.clone();
        sorted_keys.sort();
        prop_assert_eq!(keys, sorted_keys);
    }

    /// Items indexed while a paging session runs (any date_added, also earlier than the
    /// cursor) never change the session's pages; a new session sees them.
    #[test]
    fn concurrent_inserts_do_not_disturb_a_session(
        before in proptest::collection::vec((0i64..3, 1usize..5), 1..15),
        during in proptest::collection::vec((0i64..4, 1usize..5), 1..15),
        limit in 1usize..7,
    ) {
        let mut idx = Index::new();
        let mut n = 0u64;
        let mut add = |idx: &mut Index, t: i64, k: usize| {
            n += 1;
            let objs: Vec<ParsedObject> = (0..k)
                .map(|j| parsed(&format!("indicator--{n:08}-0000-5000-8000-{j:012}"), 5))
                .collect();
            let dated = super::index::date_added(T0 + t, idx.max_date_added());
            idx.insert_item(&info(n, T0 + t, Tlp::Clear), dated, &objs);
        };
        let mut sorted = before.clone();
        sorted.sort();
        for (t, k) in &sorted {
            add(&mut idx, *t, *k);
        }
        let filter = Filter::default();
        let want = drain(&idx, Visibility::Clear, &filter, &[limit]);
        let snapshot = idx.snapshot();
        let mut after = None;
        let mut got = Vec::new();
        let mut pending = during.iter();
        loop {
            let page = idx.page(Visibility::Clear, &filter, snapshot, after.as_ref(), limit);
            got.extend(page.hits.iter().map(|h| (h.key.0, h.key.1.to_string(), h.key.2)));
            if let Some((t, k)) = pending.next() {
                add(&mut idx, *t, *k);
            }
            if !page.more {
                break;
            }
            after = page.hits.last().map(|h| h.key.clone());
        }
        prop_assert_eq!(&got, &want);
        // Everything added meanwhile is after the last date_added served.
        let last_served = got.last().map(|k| k.0).unwrap_or(i64::MIN);
        let fresh = Filter { added_after_us: Some(last_served * 1000), ..Filter::default() };
        let rest = drain(&idx, Visibility::Clear, &fresh, &[limit]);
        let all = drain(&idx, Visibility::Clear, &filter, &[1000]);
        prop_assert_eq!(rest.len() + got.len(), all.len());
    }
}

#[test]
fn unversioned_objects_are_immutable_and_dated_by_first_appearance() {
    let mut idx = Index::new();
    let sco = ParsedObject {
        id: Arc::from("ipv4-addr--0b2a4e8c-0000-5000-8000-000000000009"),
        version: None,
        spec: Arc::from("2.1"),
        json: Arc::from("{}"),
    };
    idx.insert_item(
        &info(1, T0 + 5, Tlp::Clear),
        T0 + 5,
        std::slice::from_ref(&sco),
    );
    idx.insert_item(
        &info(2, T0 + 9, Tlp::Clear),
        T0 + 9,
        std::slice::from_ref(&sco),
    );
    let got = drain(
        &idx,
        Visibility::Clear,
        &Filter {
            versions: VersionSel::all(),
            ..Filter::default()
        },
        &[10],
    );
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, T0 + 5);
    let ov = idx.lookup(&sco.id, None).unwrap();
    assert_eq!(&*idx.objver(ov).unwrap().version, format_ms(T0 + 5));
}

/// The index's memory per object version is small and fixed: every string (STIX id, version
/// text, spec, origin, advisory id) is held once however many revisions, items and collections
/// refer to it, each object version is one record, and a collection entry is one position.
/// The shape of the soak's data: advisories revised several times, each revision converting to
/// the four shared fixed objects plus a report and indicators whose ids stay and whose
/// `modified` changes.
#[test]
fn index_memory_per_object_version_is_bounded() {
    const ADVISORIES: u64 = 200;
    const REVISIONS: u64 = 5;
    const INDICATORS: u64 = 3;
    let mut idx = Index::new();
    let mut strings: BTreeSet<String> = BTreeSet::new();
    let fixed: Vec<ParsedObject> = [
        "identity--0b2a4e8c-0000-5000-8000-0000000000a1",
        "marking-definition--0b2a4e8c-0000-5000-8000-0000000000a2",
        "identity--0b2a4e8c-0000-5000-8000-0000000000a3",
        "extension-definition--0b2a4e8c-0000-5000-8000-0000000000a4",
    ]
    .iter()
    .map(|id| parsed(id, T0 - 1000))
    .collect();
    let mut n = 0u64;
    for a in 0..ADVISORIES {
        for r in 1..=REVISIONS {
            n += 1;
            // Each revision is a separate allocation of the same strings, as the converter
            // produces them.
            let at = T0 + i64::try_from(n).unwrap();
            let mut objs = fixed.clone();
            objs.push(parsed(
                &format!("report--{a:08}-0000-5000-8000-000000000000"),
                at,
            ));
            for j in 0..INDICATORS {
                objs.push(parsed(
                    &format!("indicator--{a:08}-0000-5000-8000-{j:012}"),
                    at,
                ));
            }
            for o in &objs {
                strings.insert(o.id.to_string());
                strings.insert(o.version.as_ref().unwrap().0.to_string());
                strings.insert(o.spec.to_string());
            }
            let mut item = info(n, at, Tlp::Green);
            item.advisory_id = format!("adv-{a}");
            item.revision = r;
            strings.insert(item.origin.clone());
            strings.insert(item.advisory_id.clone());
            let fresh = idx.insert_item(&item, at, &objs);
            assert_eq!(fresh.len(), objs.len());
        }
    }
    let t = idx.tables();
    let revisions = ADVISORIES * REVISIONS;
    let objvers = usize::try_from(4 + revisions * (1 + INDICATORS)).unwrap();
    assert_eq!(t.items, usize::try_from(revisions).unwrap());
    assert_eq!(t.objvers, objvers, "one record per (id, version)");
    // GREEN: in the green and amber collections, once each.
    assert_eq!(
        t.entries,
        2 * objvers,
        "one entry per collection that holds it"
    );
    assert_eq!(t.strings, strings.len(), "every distinct string held once");
    assert_eq!(
        t.string_bytes,
        strings.iter().map(String::len).sum::<usize>()
    );
    // Everything the tables reserve, per object version: records, positions, string table
    // and hash tables at their capacity. (The former layout held an `Arc<str>` id and version
    // per object version, a BTreeMap entry and a by-id vector per collection and a by-key
    // hash map: several hundred bytes per object version.)
    let per_objver = t.reserved_bytes / t.objvers;
    assert!(
        per_objver <= 256,
        "{per_objver} bytes reserved per object version ({t:?})"
    );
    // Paging still sees every version.
    let all = drain(
        &idx,
        Visibility::Amber,
        &Filter {
            versions: VersionSel::all(),
            ..Filter::default()
        },
        &[1000],
    );
    assert_eq!(all.len(), objvers);
}

// ---------------------------------------------------------------------------------------------
// Configuration

fn load(extra: &str) -> Result<crate::config::Config, crate::config::ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("keys")).unwrap();
    let key = crate::keys::generate().unwrap();
    crate::keys::write_key_file(&dir.path().join("keys/ws-cert.key"), "ws-cert", &key).unwrap();
    std::fs::write(dir.path().join("cert.pem"), "x").unwrap();
    let path = dir.path().join("tanoad.toml");
    std::fs::write(&path, format!("[member]\nid = \"ws-cert\"\n{extra}")).unwrap();
    crate::config::Config::load(&path)
}

fn problems(extra: &str) -> Vec<String> {
    match load(extra) {
        Ok(_) => Vec::new(),
        Err(e) => e.problems().iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn taxii_config_loads_and_is_off_by_default() {
    assert!(load("").unwrap().taxii.is_none());
    let hash = hex::encode(sha(SIEM));
    let c = load(&format!(
        "[taxii]\nlisten = \"127.0.0.1:9470\"\n[[taxii.clients]]\nname = \"siem\"\n\
         token_sha256 = \"{hash}\"\ncollections = [\"clear\", \"TLP:GREEN\"]\n"
    ))
    .unwrap();
    let t = c.taxii.unwrap();
    assert_eq!(t.max_page, 1000);
    assert!(t.tls.is_none());
    assert_eq!(t.clients[0].token_sha256, Some(sha(SIEM)));
    assert_eq!(
        t.clients[0].collections,
        [Visibility::Clear, Visibility::Green]
    );
}

#[test]
fn taxii_config_problems_name_the_key() {
    let hash = hex::encode(sha(SIEM));
    let client = format!(
        "[[taxii.clients]]\nname = \"siem\"\ntoken_sha256 = \"{hash}\"\ncollections = [\"green\"]\n"
    );
    let cases: Vec<(String, &str, &str)> = vec![
        (
            format!("[taxii]\nlisten = \"0.0.0.0:9470\"\n{client}"),
            "taxii.tls_cert",
            "loopback",
        ),
        (
            format!("[taxii]\nlisten = \"192.0.2.1:9470\"\n{client}"),
            "taxii.tls_cert",
            "plain HTTP",
        ),
        (
            "[taxii]\nlisten = \"127.0.0.1:9470\"\n".to_string(),
            "taxii.clients",
            "at least one",
        ),
        (
            format!("[taxii]\nlisten = \"127.0.0.1:9470\"\nmax_page = 0\n{client}"),
            "taxii.max_page",
            "out of range",
        ),
        (
            "[taxii]\nlisten = \"127.0.0.1:9470\"\n[[taxii.clients]]\nname = \"x\"\n\
             token_sha256 = \"s3cret\"\ncollections = [\"green\"]\n"
                .to_string(),
            "taxii.clients[0].token_sha256",
            "64 hex digits",
        ),
        (
            format!(
                "[taxii]\nlisten = \"127.0.0.1:9470\"\n[[taxii.clients]]\nname = \"x\"\n\
                 token_sha256 = \"{hash}\"\ncollections = [\"red\"]\n"
            ),
            "taxii.clients[0].collections[0]",
            "TLP:RED is never served",
        ),
        (
            format!(
                "[taxii]\nlisten = \"127.0.0.1:9470\"\n[[taxii.clients]]\nname = \"x\"\n\
                 token_sha256 = \"{hash}\"\ncollections = [\"purple\"]\n"
            ),
            "taxii.clients[0].collections[0]",
            "not a collection",
        ),
        (
            "[taxii]\nlisten = \"127.0.0.1:9470\"\n[[taxii.clients]]\nname = \"x\"\n\
             certificate_uri = \"tanoa://operator/x\"\ncollections = [\"green\"]\n"
                .to_string(),
            "taxii.clients[0].certificate_uri",
            "client_ca",
        ),
        (
            "[taxii]\nlisten = \"127.0.0.1:9470\"\n[[taxii.clients]]\nname = \"x\"\n\
             collections = [\"green\"]\n"
                .to_string(),
            "taxii.clients[0].token_sha256",
            "token_sha256 or certificate_uri",
        ),
        (
            format!("[taxii]\nlisten = \"127.0.0.1:9470\"\n{client}{client}"),
            "taxii.clients[1].name",
            "also the name",
        ),
        (
            format!("[taxii]\nlisten = \"127.0.0.1:9470\"\ntls_cert = \"cert.pem\"\n{client}"),
            "taxii.tls_key",
            "together",
        ),
        (
            format!("[taxii]\nlisten = \"127.0.0.1:9470\"\nclient_ca = \"missing.pem\"\n{client}"),
            "taxii.client_ca",
            "does not exist",
        ),
        (
            format!("[taxii]\nlisten = \"localhost\"\n{client}"),
            "taxii.listen",
            "address:port",
        ),
    ];
    for (text, key, words) in cases {
        let p = problems(&text);
        assert!(
            p.iter()
                .any(|m| m.contains(&format!(": {key}: ")) && m.contains(words)),
            "expected {key} ({words}) in {p:?}\nfor\n{text}"
        );
    }
    let p = problems("[taxii]\nlisten = \"127.0.0.1:1\"\nbogus = 1\n");
    assert!(p.iter().any(|m| m.contains("bogus")), "{p:?}");
}

// ---------------------------------------------------------------------------------------------
// The listener with TLS and a client certificate

async fn https_get(
    addr: std::net::SocketAddr,
    ca_pem: &str,
    client: Option<&tanoa_pki::IssuedCert>,
    path: &str,
    auth: Option<&str>,
) -> (u16, String) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    crate::transport::install_crypto_provider();
    let roots = crate::transport::roots_from_pem_bytes(ca_pem.as_bytes(), "ca").unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .unwrap()
    .with_root_certificates(roots);
    let cfg = match client {
        Some(c) => builder
            .with_client_auth_cert(
                crate::transport::certs_from_pem(c.cert_pem.as_bytes(), "c").unwrap(),
                crate::transport::key_from_pem(c.key_pem.as_bytes(), "k").unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    if let Some(a) = auth {
        req.push_str(&format!("Authorization: {a}\r\n"));
    }
    req.push_str("\r\n");
    tls.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let _ = tls.read_to_end(&mut buf).await;
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

#[tokio::test]
async fn tls_listener_with_client_certificates_and_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let ca = tanoa_pki::Ca::new("Test TAXII CA", 30).unwrap();
    let server = ca.issue_member("ws-cert", 30).unwrap();
    let tip = ca.issue_operator("tip", 30).unwrap();
    let stranger = ca.issue_operator("stranger", 30).unwrap();
    let other_ca = tanoa_pki::Ca::new("Other CA", 30).unwrap();
    let forged = other_ca.issue_operator("tip", 30).unwrap();
    let w = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let mut cfg = taxii_config(1000, 8);
    cfg.tls = Some(crate::config::TaxiiTlsConfig {
        cert: w("server.pem", &server.cert_pem),
        key: {
            let k = dir.path().join("server.key");
            tanoa_pki::write_private_pem(&k, &server.key_pem).unwrap();
            k
        },
        client_ca: Some(w("ca.pem", ca.cert_pem())),
    });
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    store
        .put(&tlp_item("t1", Tlp::Amber, 1), "local", T0)
        .unwrap();
    let core = Arc::new(crate::publish::tests::core_with(Arc::clone(&store)));
    let srv = TaxiiServer::with_converter(&cfg, &core, converter()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let cancel = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(srv.serve(listener, cancel.clone()));

    let amber_objects = "/tanoa/collections/amber/objects/?match[type]=report";
    // Certificate of a configured client, no token.
    let (status, text) = https_get(addr, ca.cert_pem(), Some(&tip), amber_objects, None).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("\"type\":\"report\""), "{text}");
    assert!(
        text.to_ascii_lowercase()
            .contains("content-type: application/taxii+json;version=2.1")
    );
    // Token without a certificate.
    let (status, _) = https_get(
        addr,
        ca.cert_pem(),
        None,
        amber_objects,
        Some(&format!("Bearer {AMBER_TOKEN}")),
    )
    .await;
    assert_eq!(status, 200);
    // The token's client may not read amber.
    let (status, _) = https_get(
        addr,
        ca.cert_pem(),
        None,
        amber_objects,
        Some(&format!("Bearer {SIEM}")),
    )
    .await;
    assert_eq!(status, 403);
    // A valid certificate nobody configured, and none at all.
    let (status, _) = https_get(addr, ca.cert_pem(), Some(&stranger), amber_objects, None).await;
    assert_eq!(status, 401);
    let (status, _) = https_get(addr, ca.cert_pem(), None, amber_objects, None).await;
    assert_eq!(status, 401);
    // A certificate from another CA never completes the handshake.
    let (status, _) = https_get(addr, ca.cert_pem(), Some(&forged), amber_objects, None).await;
    assert_eq!(status, 0);

    cancel.cancel();
    tokio::time::timeout(std::time::Duration::from_secs(20), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

// ---------------------------------------------------------------------------------------------
// Wiring in the node

async fn plain_get(addr: std::net::SocketAddr, path: &str, token: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Connection: close\r\n\r\n"
    );
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tcp.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

#[tokio::test]
async fn the_node_serves_taxii_on_a_caller_bound_listener_and_joins_it() {
    use crate::node::{Listeners, NetListeners, bind_unix, prepare_data_dir, run_with};
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("keys")).unwrap();
    let key = crate::keys::generate().unwrap();
    crate::keys::write_key_file(&dir.path().join("keys/ws-cert.key"), MEMBER, &key).unwrap();
    let hash = hex::encode(sha(SIEM));
    let text = format!(
        "{}\n[taxii]\nlisten = \"127.0.0.1:0\"\n[[taxii.clients]]\nname = \"siem\"\n\
         token_sha256 = \"{hash}\"\ncollections = [\"clear\", \"green\"]\n",
        crate::config::Config::example(MEMBER, "Samoa CERT")
    );
    let path = dir.path().join("tanoad.toml");
    std::fs::write(&path, text).unwrap();
    let config = crate::config::Config::load(&path).unwrap();
    prepare_data_dir(&config).unwrap();

    // A TAXII listener without [taxii] is refused.
    let mut plain = config.clone();
    plain.taxii = None;
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = run_with(
        plain,
        Some(Arc::new(MemoryStore::new())),
        Listeners::default(),
        NetListeners {
            taxii: Some(l),
            ..NetListeners::default()
        },
        std::future::pending::<()>(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("[taxii]"), "{err}");

    let socket = config.operator.socket.clone();
    let unix = bind_unix(&socket).unwrap();
    let taxii = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = taxii.local_addr().unwrap();
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(run_with(
        config,
        Some(Arc::new(MemoryStore::new())),
        Listeners {
            unix: Some(unix),
            tcp: None,
        },
        NetListeners {
            taxii: Some(taxii),
            ..NetListeners::default()
        },
        async move {
            let _ = rx.await;
        },
    ));
    let mut c = None;
    for _ in 0..2000 {
        if let Ok(client) = crate::client::connect_unix(&socket).await {
            c = Some(client);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let mut c = c.expect("the node answers on its socket");
    let p = c
        .publish(tanoa_proto::v1::PublishRequest {
            draft: Some(crate::publish::tests::draft_pb(
                "",
                "APT40 scanning",
                "192.0.2.7",
            )),
        })
        .await
        .unwrap()
        .into_inner();
    let (status, text) = plain_get(
        addr,
        "/tanoa/collections/green/objects/?match[type]=report",
        SIEM,
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert!(
        text.contains(&p.item_id),
        "the report carries the item id: {text}"
    );
    let (status, _) = plain_get(addr, "/tanoa/collections/amber/objects/", SIEM).await;
    assert_eq!(status, 403);
    let _ = stop.send(());
    tokio::time::timeout(std::time::Duration::from_secs(30), handle)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    // Joined: the listener is closed.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

/// Items the store dropped (a roster revocation) are no longer served: the index is rebuilt
/// from the store, the dropped revision's versions and the dropped advisory's objects are gone
/// (an object another held item carries stays), and `next` cursors of the old index are refused.
#[tokio::test]
async fn dropped_items_are_no_longer_served_and_old_cursors_are_refused() {
    let fx = fixture();
    let r1 = tlp_item("g1", Tlp::Green, 1);
    let r2 = tlp_item("g1", Tlp::Green, 2);
    let other = tlp_item("g2", Tlp::Green, 1);
    fx.put(&r1, T0);
    fx.put(&r2, T0 + 1);
    fx.put(&other, T0 + 2);
    let versions = |objs: &[Value]| -> BTreeSet<(String, String)> {
        objs.iter()
            .map(|o| {
                (
                    o["id"].as_str().unwrap().to_string(),
                    o["modified"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    };
    let before = fx
        .all_pages("green", AMBER_TOKEN, 1000, "&match[version]=all")
        .await;
    assert_eq!(ids_of(&before), expected_ids(&[&r1, &r2, &other]));
    let r2_version = (
        format!("report--{}", uid(&format!("{WS}/g1"))),
        format_ms(r2.modified_ms),
    );
    assert!(versions(&before).contains(&r2_version));
    let page = fx
        .get("/tanoa/collections/green/objects/?limit=2", AMBER_TOKEN)
        .await;
    let next = page.body["next"].as_str().unwrap().to_string();

    let dropped = fx
        .store
        .drop_items(&[r2.item_id(), other.item_id()])
        .unwrap();
    assert_eq!(dropped.len(), 2);

    let after = fx
        .all_pages("green", AMBER_TOKEN, 1000, "&match[version]=all")
        .await;
    assert_eq!(ids_of(&after), expected_ids(&[&r1]));
    let after_versions = versions(&after);
    assert!(!after_versions.contains(&r2_version), "{after_versions:?}");
    let env = Envelope {
        payload: Vec::new(),
        key_id: String::new(),
        signature: Vec::new(),
    };
    let want: Vec<Value> = fake_objects(&r1, &env);
    assert_eq!(after_versions, versions(&want));
    // The default (latest version) page serves r1's report again.
    let latest = fx.all_pages("green", AMBER_TOKEN, 1000, "").await;
    assert!(
        versions(&latest).contains(&(r2_version.0.clone(), format_ms(r1.modified_ms))),
        "{latest:?}"
    );
    let r = fx
        .get(
            &format!("/tanoa/collections/green/objects/?limit=2&next={next}"),
            AMBER_TOKEN,
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST);
    assert!(
        r.body["description"].as_str().unwrap().contains("rebuilt"),
        "{}",
        r.body
    );
}
