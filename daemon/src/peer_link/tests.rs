#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write as _;

use prost::Message as _;
use tonic::metadata::MetadataMap;

use super::*;
use crate::envelope::{SigningIdentity, Verified};
use crate::model::{self, Advisory, Limits};
use crate::sync::FetchResponse;

fn headers(v: Option<&str>) -> MetadataMap {
    let mut h = http::HeaderMap::new();
    if let Some(v) = v {
        h.insert(ACCEPT_ENCODING, http::HeaderValue::from_str(v).unwrap());
    }
    MetadataMap::from_headers(h)
}

#[test]
fn requests_are_compressed_only_with_what_the_latest_answer_advertised() {
    let n = Negotiated::default();
    let zstd = Some(CompressionEncoding::Zstd);
    // Nothing heard yet: identity.
    assert_eq!(n.send_with(zstd), None);
    n.record(&headers(Some("gzip, zstd")));
    assert_eq!(n.send_with(zstd), zstd);
    assert_eq!(
        n.send_with(Some(CompressionEncoding::Gzip)),
        Some(CompressionEncoding::Gzip)
    );
    assert_eq!(
        n.send_with(None),
        None,
        "compression = none never compresses"
    );
    // The peer was replaced by an older build: its answers carry no advertisement.
    n.record(&headers(None));
    assert_eq!(n.send_with(zstd), None);
    // A peer that only knows gzip (or something we do not decode).
    n.record(&headers(Some("gzip,deflate,br")));
    assert_eq!(n.send_with(zstd), None);
    assert_eq!(
        n.send_with(Some(CompressionEncoding::Gzip)),
        Some(CompressionEncoding::Gzip)
    );
    assert_eq!(parse_accept(Some("identity")), Vec::new());
}

#[test]
fn settings_come_from_sync_config() {
    let mut s = SyncConfig::default();
    let l = LinkSettings::from_sync(&s);
    assert_eq!(l.compression, Some(CompressionEncoding::Zstd));
    assert_eq!(l.stream_window, s.stream_window_bytes);
    assert!(l.keepalive_interval.is_some());
    // A keepalive timeout shorter than a cable-cut outage (10 s) would declare slow links dead.
    assert!(l.keepalive_timeout >= Duration::from_secs(20));
    s.keepalive_interval_ms = 0;
    s.compression = Compression::None;
    let l = LinkSettings::from_sync(&s);
    assert_eq!((l.keepalive_interval, l.compression), (None, None));
}

/// A deterministic generator (splitmix64) for the sample data.
struct Mix(u64);

impl Mix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// Texts of the MITRE ATT&CK APT40 bundle (names and descriptions of its objects), when the
/// shared data is present; otherwise the example advisory's summary.
fn mitre_texts() -> Vec<(String, String)> {
    let path = "/work/shared/data/mitre-attack-apt40/apt40-G0065-C0049.stix21-DERIVED.bundle.json";
    let mut out = Vec::new();
    if let Ok(text) = std::fs::read_to_string(path) {
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        for o in v["objects"].as_array().into_iter().flatten() {
            if let Some(d) = o["description"].as_str() {
                let name = o["name"]
                    .as_str()
                    .unwrap_or_else(|| o["type"].as_str().unwrap_or("object"));
                out.push((name.to_string(), d.chars().take(4000).collect()));
            }
        }
    }
    if out.is_empty() {
        let ex = include_str!("../../../examples/apt40-advisory.json");
        let v: serde_json::Value = serde_json::from_str(ex).unwrap();
        out.push((
            v["title"].as_str().unwrap().to_string(),
            v["summary"].as_str().unwrap().to_string(),
        ));
    }
    out
}

/// `n` signed advisories shaped like the examples: MITRE texts, random (incompressible)
/// hashes, addresses and domains, actors and CVEs.
fn sample(n: usize) -> Vec<Verified<Advisory>> {
    let who = SigningIdentity::new("ws-cert", crate::keys::generate().unwrap());
    let texts = mitre_texts();
    let mut r = Mix(42);
    (0..n)
        .map(|k| {
            let (title, summary) = &texts[k % texts.len()];
            let ind = |kind, value: String, c: u8| model::Indicator {
                kind,
                value,
                confidence: c,
                valid_until_ms: None,
                note: String::new(),
            };
            let mut indicators = vec![
                ind(
                    model::IndicatorKind::Sha256,
                    format!(
                        "{:016x}{:016x}{:016x}{:016x}",
                        r.next(),
                        r.next(),
                        r.next(),
                        r.next()
                    ),
                    90,
                ),
                ind(
                    model::IndicatorKind::Ipv4,
                    format!("198.51.100.{}", r.next() % 256),
                    70,
                ),
                ind(
                    model::IndicatorKind::Domain,
                    format!("c2-{:08x}.pacific-news.example", r.next() as u32),
                    60,
                ),
            ];
            for _ in 0..(r.next() % 4) {
                indicators.push(ind(
                    model::IndicatorKind::Ipv4,
                    format!("203.0.113.{}", r.next() % 256),
                    50,
                ));
            }
            let d = model::Draft {
                id: Some(format!("ws-2026-{k:06}")),
                tlp: model::Tlp::Green,
                audience: Vec::new(),
                title: format!("{title}: activity against Pacific networks"),
                summary: summary.clone(),
                severity: model::Severity::High,
                actors: vec!["APT40".into(), "Leviathan".into()],
                cves: vec!["CVE-2017-11882".into()],
                indicators,
                references: vec!["https://attack.mitre.org/groups/G0065".into()],
                valid_until_ms: None,
                extras: Vec::new(),
            };
            let ms = 1_780_000_000_000 + i64::try_from(k).unwrap() * 60_000;
            let id = format!("ws-2026-{k:06}");
            let mut adv = model::draft::draft_to_advisory(&d, "ws-cert", &id, 1, ms, ms).unwrap();
            model::normalize_advisory(&mut adv);
            who.sign(adv, &Limits::default()).unwrap()
        })
        .collect()
}

fn gzip(b: &[u8]) -> usize {
    // tonic's gzip: flate2 at its default level (6).
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    e.write_all(b).unwrap();
    e.finish().unwrap().len()
}

fn zstd(b: &[u8]) -> usize {
    // tonic's zstd: the zstd crate's default level (3).
    zstd::bulk::compress(b, 0).unwrap().len()
}

/// The fetch answer of these envelopes as it goes on the wire (uncompressed protobuf).
fn fetch_bytes(items: &[Verified<Advisory>]) -> Vec<u8> {
    FetchResponse {
        envelopes: items.iter().map(|v| v.envelope().clone()).collect(),
        missing: Vec::new(),
        deferred: Vec::new(),
    }
    .to_proto()
    .encode_to_vec()
}

/// Compression of realistic advisories: gzip vs zstd by batch size, and a zstd dictionary for
/// single-advisory messages (a fresh push). Prints the table (`cargo test -p tanoa-daemon
/// compression_of_advisories -- --nocapture`); asserts the choice the defaults make: zstd is
/// at least as good as gzip, and a catch-up batch goes on the wire at most half its size.
#[test]
fn compression_of_advisories_gzip_vs_zstd_by_batch_size() {
    let items = sample(1600);
    let (train, test) = items.split_at(1024);
    println!("| messages | raw bytes/msg | gzip | zstd | zstd + dictionary |");
    println!("|---|---|---|---|---|");
    let dict = {
        let samples: Vec<Vec<u8>> = train
            .iter()
            .map(|v| fetch_bytes(std::slice::from_ref(v)))
            .collect();
        zstd::dict::from_samples(&samples, 16 * 1024).unwrap()
    };
    let mut with_dict = zstd::bulk::Compressor::with_dictionary(0, &dict).unwrap();
    let mut ratios = Vec::new();
    for batch in [1usize, 8, 64, 256] {
        let (mut raw, mut gz, mut zs, mut zd, mut n) = (0usize, 0usize, 0usize, 0usize, 0usize);
        for chunk in test.chunks(batch).filter(|c| c.len() == batch) {
            let b = fetch_bytes(chunk);
            raw += b.len();
            gz += gzip(&b);
            zs += zstd(&b);
            zd += with_dict.compress(&b).unwrap().len();
            n += 1;
        }
        let r = |x: usize| x as f64 / raw as f64;
        println!(
            "| {batch} advisories | {} | {:.3} | {:.3} | {:.3} |",
            raw / n,
            r(gz),
            r(zs),
            r(zd)
        );
        ratios.push((batch, r(gz), r(zs), r(zd)));
    }
    println!(
        "(dictionary: 16 KiB trained on 1,024 single-advisory messages; ratios = compressed / raw)"
    );
    for &(batch, gz, zs, _) in &ratios {
        assert!(zs <= gz * 1.05, "zstd {zs} vs gzip {gz} at batch {batch}");
    }
    let (_, _, zs64, _) = ratios[2];
    assert!(
        zs64 <= 0.5,
        "a batch of 64 compresses to {zs64} of its size"
    );
    // Compression pays for itself even for a single advisory.
    assert!(ratios[0].2 < 0.9);
}

/// A peer service that records the `grpc-encoding` of each request; `advertise` makes it answer
/// like this build (listing the encodings it decodes), otherwise like an older member.
#[derive(Clone, Default)]
struct Stub {
    seen: Arc<std::sync::Mutex<Vec<Option<String>>>>,
    advertise: bool,
}

impl Stub {
    fn answer<T>(&self, req: &tonic::Request<impl Sized>, msg: T) -> tonic::Response<T> {
        let enc = req
            .metadata()
            .get("grpc-encoding")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        self.seen.lock().unwrap().push(enc);
        let mut resp = tonic::Response::new(msg);
        if self.advertise {
            resp.metadata_mut()
                .insert(ACCEPT_ENCODING, "zstd,gzip".parse().unwrap());
        }
        resp
    }
}

#[tonic::async_trait]
impl tanoa_proto::v1::peer_server::Peer for Stub {
    async fn push(
        &self,
        request: tonic::Request<tanoa_proto::v1::PushRequest>,
    ) -> Result<tonic::Response<tanoa_proto::v1::PushResponse>, tonic::Status> {
        Ok(self.answer(&request, tanoa_proto::v1::PushResponse::default()))
    }
    async fn reconcile(
        &self,
        request: tonic::Request<tanoa_proto::v1::ReconcileRequest>,
    ) -> Result<tonic::Response<tanoa_proto::v1::ReconcileResponse>, tonic::Status> {
        Ok(self.answer(&request, tanoa_proto::v1::ReconcileResponse::default()))
    }
    async fn fetch(
        &self,
        request: tonic::Request<tanoa_proto::v1::FetchRequest>,
    ) -> Result<tonic::Response<tanoa_proto::v1::FetchResponse>, tonic::Status> {
        Ok(self.answer(&request, tanoa_proto::v1::FetchResponse::default()))
    }
}

/// Serves `stub` on 127.0.0.1:0 (plain HTTP/2); `decodes` turns on compressed requests, as
/// this build does; without it the server is an older member's, which refuses them.
async fn serve(stub: Stub, decodes: bool) -> tonic::transport::Channel {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut svc = tanoa_proto::v1::peer_server::PeerServer::new(stub);
    if decodes {
        for e in DECODABLE {
            svc = svc.accept_compressed(e);
        }
    }
    tokio::spawn(
        Server::builder()
            .add_service(svc)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

async fn push_once(ch: &tonic::transport::Channel, neg: &Negotiated) -> Result<(), tonic::Status> {
    let mut c = crate::node::driver::negotiated_client(
        ch.clone(),
        1 << 20,
        neg,
        Some(CompressionEncoding::Zstd),
    );
    let r = c
        .push(tanoa_proto::v1::PushRequest {
            envelopes: vec![tanoa_proto::v1::Envelope {
                payload: vec![b'x'; 2000],
                key_id: "ed25519:ws-cert".into(),
                signature: vec![0; 64],
            }],
        })
        .await?;
    neg.record(r.metadata());
    Ok(())
}

#[tokio::test]
async fn an_older_member_gets_no_compressed_request_and_a_newer_one_does() {
    // An older member: never advertises, would refuse a compressed request.
    let old = Stub::default();
    let ch = serve(old.clone(), false).await;
    let neg = Negotiated::default();
    for _ in 0..3 {
        push_once(&ch, &neg).await.unwrap();
    }
    assert_eq!(*old.seen.lock().unwrap(), vec![None, None, None]);
    // The older member indeed refuses what it did not advertise.
    let mut forced = crate::node::driver::peer_client(ch.clone(), 1 << 20)
        .send_compressed(CompressionEncoding::Zstd);
    let st = forced
        .push(tanoa_proto::v1::PushRequest::default())
        .await
        .unwrap_err();
    assert_eq!(st.code(), tonic::Code::Unimplemented);
    // A member of this build: the first request goes plain, every later one compressed.
    let new = Stub {
        advertise: true,
        ..Stub::default()
    };
    let ch = serve(new.clone(), true).await;
    let neg = Negotiated::default();
    for _ in 0..3 {
        push_once(&ch, &neg).await.unwrap();
    }
    let zstd = Some("zstd".to_string());
    assert_eq!(*new.seen.lock().unwrap(), vec![None, zstd.clone(), zstd]);
}

#[test]
fn peer_sockets_hold_at_most_the_unsent_limit_in_the_kernel() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dialled = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (accepted, _) = listener.accept().unwrap();
    for s in [&dialled, &accepted] {
        let before = unsent_limit(s).unwrap();
        assert_ne!(
            before, NOTSENT_LOWAT_BYTES,
            "the kernel's default is not ours"
        );
        limit_unsent(s, NOTSENT_LOWAT_BYTES).unwrap();
        assert_eq!(unsent_limit(s).unwrap(), NOTSENT_LOWAT_BYTES);
    }
}
