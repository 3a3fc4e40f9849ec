//! Realistic advisories for the thin-link tests and benchmark (issue 12): the MITRE ATT&CK
//! APT40 bundle of `testdata/` imported as STIX (its objects kept verbatim, so these are the
//! large advisories), and generated advisories shaped like `examples/apt40-advisory.toml`
//! (a title, a summary of several sentences, APT40's aliases, CVEs, references, 6–14
//! indicators of documentation values with notes). Deterministic: advisory `i` is always the
//! same; digests are SHA-256 of a label (as incompressible as real ones), text varies by
//! sentence choice, so compression sees what it would see in a real feed.
//!
//! Owns: the drafts. Must never: use a value outside the documentation ranges (RFC 5737,
//! RFC 3849, `.example`) for an invented indicator.

use sha2::{Digest as _, Sha256};
use tanoa_daemon::interop::stix::{self, ImportOptions};
use tanoa_daemon::model::Tlp;
use tanoa_daemon::model::wire::draft_to_proto;
use tanoa_proto::v1 as pb;

use crate::interop::testdata;

const ACTORS: [&str; 12] = [
    "APT40",
    "Leviathan",
    "TEMP.Periscope",
    "TEMP.Jumper",
    "BRONZE MOHAWK",
    "GADOLINIUM",
    "KRYPTONITE PANDA",
    "TA423",
    "Red Ladon",
    "ITG09",
    "MUDCARP",
    "Gingham Typhoon",
];

const CVES: [&str; 6] = [
    "CVE-2017-0199",
    "CVE-2017-8759",
    "CVE-2017-11882",
    "CVE-2021-26855",
    "CVE-2021-44228",
    "CVE-2023-3519",
];

const REFERENCES: [&str; 5] = [
    "https://www.cisa.gov/news-events/cybersecurity-advisories/aa24-190a",
    "https://us-cert.cisa.gov/ncas/alerts/aa21-200a",
    "https://attack.mitre.org/groups/G0065",
    "https://attack.mitre.org/campaigns/C0049",
    "https://www.cyber.gov.au/about-us/view-all-content/alerts-and-advisories",
];

const SECTORS: [&str; 8] = [
    "government agencies",
    "ports and shipping",
    "telecommunications providers",
    "energy utilities",
    "universities",
    "ministries of foreign affairs",
    "health services",
    "regional banks",
];

const SENTENCES: [&str; 14] = [
    "The actor gains initial access by exploiting public-facing applications and then deploys web shells for persistence.",
    "Spear-phishing messages carry lure documents themed on regional forum meetings and fisheries negotiations.",
    "Stolen credentials are used to move laterally over remote desktop and to reach senior officials' mailboxes.",
    "Collected data is staged in compressed archives and exfiltrated over HTTPS to compromised small-office routers.",
    "The operators keep command and control for months and return to victims after remediation.",
    "Scanning of internet-facing VPN appliances was observed within hours of public vulnerability disclosures.",
    "Defenders should search proxy, DNS, mail and EDR logs for the indicators below and report matches.",
    "Patch the listed CVEs, enforce multi-factor authentication and review administrative accounts.",
    "Several victims were first compromised through a managed service provider's remote support tooling.",
    "The loader decrypts its payload in memory and injects it into a signed system process.",
    "Beaconing intervals are jittered between five and thirty minutes and use domain fronting.",
    "Partners in the federation confirmed similar activity against their own networks this week.",
    "No destructive activity was observed; the objective appears to be long-term intelligence collection.",
    "Indicators in this advisory are invented documentation values for demonstration only.",
];

/// A small deterministic mixer (splitmix64) so that choices vary with `i` without a RNG.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn pick<T: Copy>(items: &[T], h: u64) -> T {
    items[(h % items.len() as u64) as usize]
}

/// Generated advisory number `i` (GREEN, id `thin-<prefix>-<i>`), about 1.5–3 KB signed.
pub fn generated_draft(prefix: &str, i: u64) -> pb::AdvisoryDraft {
    let h = |k: u64| mix(i.wrapping_mul(1_000_003).wrapping_add(k));
    let sector = pick(&SECTORS, h(1));
    let sentences: Vec<&str> = (0..3 + h(2) % 4)
        .map(|k| pick(&SENTENCES, h(10 + k)))
        .collect();
    let summary = format!(
        "Samoa's national CERT warns that APT40 activity against {sector} in the Blue Pacific \
         continued in week {} (report {i}). {}",
        1 + h(3) % 52,
        sentences.join(" ")
    );
    let ind = |kind: pb::IndicatorKind, value: String, note: &str, k: u64| pb::Indicator {
        kind: kind as i32,
        value,
        confidence: u32::try_from(50 + h(100 + k) % 50).unwrap_or(50),
        valid_until_ms: 0,
        note: format!("SAMPLE: {note}"),
    };
    let nets = ["192.0.2", "198.51.100", "203.0.113"];
    let count = 6 + h(4) % 9;
    let indicators = (0..count)
        .map(|k| {
            let v = h(200 + k);
            match k % 6 {
                0 => ind(
                    pb::IndicatorKind::Ipv4,
                    format!("{}.{}", pick(&nets, v), v % 254 + 1),
                    "command-and-control server",
                    k,
                ),
                1 => ind(
                    pb::IndicatorKind::Domain,
                    format!("upd-{:x}.pacific-news.example", v % 0xffff),
                    "beaconing domain",
                    k,
                ),
                2 => ind(
                    pb::IndicatorKind::Sha256,
                    hex::encode(Sha256::digest(format!("tanoa-thin-{i}-{k}").as_bytes())),
                    "web shell (patterned digest, not a real file)",
                    k,
                ),
                3 => ind(
                    pb::IndicatorKind::Ipv6,
                    format!("2001:db8:{:x}::{:x}", v % 0xffff, (v >> 16) % 0xffff),
                    "exfiltration over IPv6",
                    k,
                ),
                4 => ind(
                    pb::IndicatorKind::Url,
                    format!("https://login.portal-{}.example/owa/auth.aspx", v % 997),
                    "credential-harvesting page",
                    k,
                ),
                _ => ind(
                    pb::IndicatorKind::Sha256,
                    hex::encode(Sha256::digest(
                        format!("tanoa-thin-loader-{i}-{k}").as_bytes(),
                    )),
                    "loader DLL (patterned digest, not a real file)",
                    k,
                ),
            }
        })
        .collect();
    let n_actors = 1 + h(5) % ACTORS.len() as u64;
    pb::AdvisoryDraft {
        id: format!("thin-{prefix}-{i:06}"),
        tlp: pb::Tlp::Green as i32,
        title: format!("APT40 activity against {sector} (report {i})"),
        summary,
        severity: pb::Severity::High as i32,
        actors: ACTORS[..usize::try_from(n_actors).unwrap_or(1)]
            .iter()
            .map(ToString::to_string)
            .collect(),
        cves: (0..1 + h(6) % 3)
            .map(|k| pick(&CVES, h(20 + k)).to_string())
            .collect(),
        indicators,
        references: (0..1 + h(7) % 3)
            .map(|k| pick(&REFERENCES, h(30 + k)).to_string())
            .collect(),
        ..Default::default()
    }
}

/// The MITRE ATT&CK APT40 bundle (G0065, C0049; STIX 2.1) imported as GREEN advisories with id
/// `apt40-mitre` (parts `-pN` when it does not fit in one).
pub fn apt40_drafts() -> Vec<pb::AdvisoryDraft> {
    let path = testdata()
        .join("mitre-attack-apt40")
        .join("apt40-G0065-C0049.stix21-DERIVED.bundle.json");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let opts = ImportOptions {
        tlp: Some(Tlp::Green),
        id: Some("apt40-mitre".into()),
        ..ImportOptions::default()
    };
    stix::import_bundle_report(&bytes, &opts)
        .unwrap_or_else(|e| panic!("{} does not import: {e}", path.display()))
        .drafts
        .iter()
        .map(draft_to_proto)
        .collect()
}

/// `n` advisories: the APT40 parts (when `with_apt40`), then generated ones up to `n`.
pub fn corpus(prefix: &str, n: usize, with_apt40: bool) -> Vec<pb::AdvisoryDraft> {
    let mut out = if with_apt40 {
        apt40_drafts()
    } else {
        Vec::new()
    };
    out.truncate(n);
    let mut i = 0u64;
    while out.len() < n {
        out.push(generated_draft(prefix, i));
        i += 1;
    }
    out
}

/// Publishes `drafts` on `node` with PublishBatch, `per_batch` at a time (advisories larger
/// than 64 KiB alone); returns every response, in order.
pub async fn publish_all(
    node: &crate::TestNode,
    drafts: &[pb::AdvisoryDraft],
    per_batch: usize,
) -> Vec<pb::PublishResponse> {
    use prost::Message as _;
    let client = node.client().await;
    let mut out = Vec::with_capacity(drafts.len());
    let mut batch: Vec<pb::AdvisoryDraft> = Vec::new();
    let flush = |batch: Vec<pb::AdvisoryDraft>| {
        let mut client = client.clone();
        async move {
            if batch.is_empty() {
                return Vec::new();
            }
            client
                .publish_batch(pb::PublishBatchRequest { drafts: batch })
                .await
                .unwrap_or_else(|s| panic!("PublishBatch: {s}"))
                .into_inner()
                .results
        }
    };
    for d in drafts {
        if d.encoded_len() > 64 * 1024 {
            out.extend(flush(std::mem::take(&mut batch)).await);
            out.extend(flush(vec![d.clone()]).await);
            continue;
        }
        batch.push(d.clone());
        if batch.len() >= per_batch {
            out.extend(flush(std::mem::take(&mut batch)).await);
        }
    }
    out.extend(flush(batch).await);
    out
}

/// Items `node` holds (Status).
pub async fn items_held(node: &crate::TestNode) -> u64 {
    node.client()
        .await
        .status(pb::StatusRequest {})
        .await
        .unwrap_or_else(|s| panic!("Status on {}: {s}", node.member()))
        .into_inner()
        .items
}

/// The sum of the encoded envelopes of `item_ids` as `node` stores them (Get each).
pub async fn envelope_bytes(node: &crate::TestNode, item_ids: &[String]) -> u64 {
    use prost::Message as _;
    let mut client = node.client().await;
    let mut total = 0u64;
    for id in item_ids {
        let got = client
            .get(pb::GetRequest { id: id.clone() })
            .await
            .unwrap_or_else(|s| panic!("Get {id} on {}: {s}", node.member()))
            .into_inner();
        total += got.envelope.map_or(0, |e| e.encoded_len() as u64);
    }
    total
}
