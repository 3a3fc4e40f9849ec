//! Bodies of the fuzz targets (`fuzz/`), as plain functions so the ordinary test suite replays
//! every corpus and regression file through exactly the code libFuzzer runs
//! (`integration-tests/tests/it/fuzz_corpus.rs`).
//!
//! Owns: feeding untrusted bytes to the real parsing entry points (envelopes, peer messages,
//! negentropy frames, STIX bundles and patterns, MISP events, advisory drafts, warning lists).
//! Must never: panic on any input, or do I/O, read a clock or use ambient randomness (time and
//! keys are fixed, so every run is reproducible).

use std::path::Path;
use std::sync::OnceLock;

use ed25519_dalek::SigningKey;

use crate::envelope::{self, Envelope, Keyring, PublicKeyRecord, SigningIdentity};
use crate::interop::{misp, stix};
use crate::model::draft::{FileFormat, parse_advisory_str};
use crate::model::{self, IndicatorKind, Limits, Tlp, wire};
use crate::sync::{
    Action, FetchRequest, ItemMeta, PeerMessage, ReconcileRequest, ReconcileResponse, Source,
    SyncConfig, SyncCore,
};
use crate::warninglist::{WarningLists, parse_list};

/// The fixed clock of every target (2026-12-01T00:00:00Z).
const NOW_MS: u64 = 1_796_083_200_000;
/// The member the fuzzed core runs as, and the peers it knows.
const ME: &str = "cert-a";
const PEER: &str = "cert-b";
const OTHER: &str = "cert-c";
/// Largest peer message decoded (the default peer limit is of this order).
const MAX_MESSAGE: usize = 4 * 1024 * 1024;

struct Keys {
    /// Signs as `cert-b` (no validity window).
    b: SigningIdentity,
    /// Signs as `cert-c` (key valid only from 2020 to 2030).
    c: SigningIdentity,
    keyring: Keyring,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let b = SigningIdentity::new(PEER, SigningKey::from_bytes(&[0x0b; 32]));
        let c = SigningIdentity::new(OTHER, SigningKey::from_bytes(&[0x0c; 32]));
        let mut keyring = Keyring::new();
        keyring.insert(PublicKeyRecord::new(PEER, b.verifying_key(), None, None));
        keyring.insert(PublicKeyRecord::new(
            OTHER,
            c.verifying_key(),
            Some(1_577_836_800_000),
            Some(1_893_456_000_000),
        ));
        Keys { b, c, keyring }
    })
}

/// `envelope`: the first byte chooses the mode. Even: the rest is an encoded `Envelope`,
/// decoded and verified against the fixed keyring (the key id is also swapped for a known one,
/// so the signature check itself runs). Odd: the rest is a payload, signed with a fixed key and
/// verified, so the advisory decoding and validation behind the signature are reached.
pub fn envelope(data: &[u8]) {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let k = keys();
    let limits = Limits::default();
    if mode & 1 == 0 {
        if let Ok(env) = Envelope::decode(body) {
            let _ = env.item_id();
            let mut known = env.clone();
            known.key_id = k.b.key_id().to_string();
            let _ = envelope::verify(env, &k.keyring, &limits);
            let _ = envelope::verify(known, &k.keyring, &limits);
        }
    } else {
        let signer = if mode & 2 == 0 { &k.b } else { &k.c };
        let env = signer.sign_payload(body.to_vec());
        if let Ok(v) = envelope::verify(env, &k.keyring, &limits) {
            let _ = ItemMeta::of_verified(&v);
            // What verify accepted re-validates and round-trips.
            let again = wire::decode_payload(&wire::encode_payload(v.value()));
            let _ = again.map(|a| model::validate_advisory(&a, &limits));
        }
    }
}

/// A core for `cert-a` with peers `cert-b` and `cert-c`, up, holding a few items of every TLP.
fn core() -> Option<SyncCore> {
    let mut core = SyncCore::new(SyncConfig::default(), ME, [PEER, OTHER], 7, NOW_MS).ok()?;
    let tlps = [
        Tlp::Clear,
        Tlp::Green,
        Tlp::Amber,
        Tlp::AmberStrict,
        Tlp::Red,
    ];
    let metas: Vec<ItemMeta> = (0u8..20)
        .map(|i| {
            let tlp = tlps[usize::from(i) % tlps.len()];
            let audience = if tlp.needs_audience() {
                vec![PEER.to_string()]
            } else {
                Vec::new()
            };
            let origin = [ME, PEER, OTHER][usize::from(i) % 3];
            ItemMeta::new(
                envelope::ItemId([i.wrapping_mul(13); 32]),
                origin,
                tlp,
                audience,
                1_700_000_000_000 + i64::from(i) * 1000,
                500,
            )
        })
        .collect();
    core.load_items(&metas);
    core.peer_up(NOW_MS, PEER);
    core.peer_up(NOW_MS, OTHER);
    Some(core)
}

fn drain(core: &mut SyncCore) -> Vec<Action> {
    let mut out = Vec::new();
    while let Some(a) = core.poll_action() {
        out.push(a);
        if out.len() > 10_000 {
            break;
        }
    }
    out
}

/// The admission path of a pushed or fetched envelope: verify → admit → item_accepted; and,
/// without the signature, admit on the metadata the payload claims (reaches policy with
/// arbitrary origins, TLPs and audiences).
fn admit_envelope(core: &mut SyncCore, env: &Envelope) {
    let k = keys();
    let limits = Limits::default();
    if let Ok(v) = envelope::verify(env.clone(), &k.keyring, &limits) {
        let meta = ItemMeta::of_verified(&v);
        if core.admit(NOW_MS, PEER, &meta).is_ok() {
            core.item_accepted(NOW_MS, &meta, Source::Peer(PEER));
        }
    }
    if let Ok(a) = wire::decode_payload(&env.payload) {
        let meta = ItemMeta::new(
            env.item_id(),
            a.origin,
            a.tlp,
            a.audience,
            a.modified_ms,
            crate::sync::envelope_wire_len(env),
        );
        match core.admit(NOW_MS, PEER, &meta) {
            Ok(()) => {
                core.item_accepted(NOW_MS, &meta, Source::Peer(PEER));
            }
            Err(r) => core.note_rejection(PEER, r.code),
        }
    }
}

/// `peer_messages`: one tag byte (1..=6: push request/response, reconcile request/response,
/// fetch request/response) and a protobuf body, decoded as the peer service does, then handed
/// to a `SyncCore` as if `cert-b` sent it.
pub fn peer_messages(data: &[u8]) {
    let Ok(msg) = PeerMessage::decode(data, MAX_MESSAGE) else {
        return;
    };
    let _ = msg.encode();
    let Some(mut core) = core() else {
        return;
    };
    match msg {
        PeerMessage::PushRequest(r) => {
            for env in r.envelopes.iter().take(64) {
                admit_envelope(&mut core, env);
            }
        }
        PeerMessage::PushResponse(r) => {
            // A local item pushed to both peers, answered with the fuzzed response.
            let meta = ItemMeta::new(envelope::ItemId([0xee; 32]), ME, Tlp::Green, vec![], 1, 9);
            core.item_accepted(NOW_MS, &meta, Source::Local);
            for a in drain(&mut core) {
                if let Action::Push { to, req, .. } = a {
                    core.on_push_response(NOW_MS, &to, req, &r);
                }
            }
        }
        PeerMessage::ReconcileRequest(r) => {
            let _ = core.handle_reconcile(NOW_MS, PEER, &r);
            // The same frame again in the same session, and as a reply to our own session.
            let _ = core.handle_reconcile(NOW_MS + 1, PEER, &r);
            reply_to_own_session(&mut core, &r.message);
        }
        PeerMessage::ReconcileResponse(r) => reply_to_own_session(&mut core, &r.message),
        PeerMessage::FetchRequest(r) => {
            if let Ok(reply) = core.handle_fetch(NOW_MS, PEER, &r) {
                let _ = reply.into_response(|_| None);
            }
        }
        PeerMessage::FetchResponse(r) => {
            for env in r.envelopes.iter().take(64) {
                admit_envelope(&mut core, env);
            }
            // Answer whatever fetch is outstanding (none unless a session asked), then time out.
            for req in 0..8 {
                core.on_fetch_response(NOW_MS, PEER, req, &r);
            }
            let ids: Vec<_> = r.missing.iter().chain(&r.deferred).copied().collect();
            let _ = core.handle_fetch(
                NOW_MS,
                PEER,
                &FetchRequest {
                    item_ids: ids,
                    max_bytes: 0,
                },
            );
        }
    }
    drain(&mut core);
    core.handle_timeout(NOW_MS + 3_600_000);
    drain(&mut core);
    let _ = core.peer_status(NOW_MS + 3_600_000);
}

/// Starts (or takes the pending) reconciliation with `cert-b` and feeds `frame` as its reply.
fn reply_to_own_session(core: &mut SyncCore, frame: &[u8]) {
    // `peer_up` already started a session with cert-b unless the actions were drained.
    let _ = core.sync_now(NOW_MS, Some(PEER));
    for a in drain(core) {
        if let Action::Reconcile { to, req, msg } = a {
            let resp = ReconcileResponse {
                session: msg.session,
                message: frame.to_vec(),
            };
            core.on_reconcile_response(NOW_MS, &to, req, &resp);
        }
    }
    drain(core);
}

/// `negentropy_frame`: the bytes are one reconciliation frame: the core's strict frame check,
/// then the responder (`handle_reconcile`) and the initiator (a reply to our own session).
/// A frame the check accepts must not make negentropy fail on a framing error.
pub fn negentropy_frame(data: &[u8]) {
    let _ = crate::sync::check_frame(data);
    let Some(mut core) = core() else {
        return;
    };
    let req = ReconcileRequest {
        session: 1,
        message: data.to_vec(),
    };
    let _ = core.handle_reconcile(NOW_MS, PEER, &req);
    reply_to_own_session(&mut core, data);
    core.handle_timeout(NOW_MS + 3_600_000);
    drain(&mut core);
}

/// `stix_bundle`: a STIX 2.0/2.1 bundle (or object) imported as the CLI does, then every draft
/// turned into an advisory and validated as the daemon would before signing.
pub fn stix_bundle(data: &[u8]) {
    let opts = stix::ImportOptions {
        tlp: Some(Tlp::Green),
        ..stix::ImportOptions::default()
    };
    if let Ok(imported) = stix::import_bundle_report(data, &opts) {
        for (i, d) in imported.drafts.iter().enumerate() {
            check_draft(d, &format!("stix-{i}"));
        }
    }
}

/// `stix_pattern`: the bytes (as UTF-8, lossily) are a STIX pattern.
pub fn stix_pattern(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = stix::pattern::parse(&text);
    let _ = stix::pattern::object_types(&text);
    let _ = stix::pattern::map_pattern(&text);
}

/// `misp_event`: a MISP event (JSON) imported as the CLI does.
pub fn misp_event(data: &[u8]) {
    let opts = misp::ImportOptions {
        tlp: Some(Tlp::Amber),
        audience: vec![PEER.to_string()],
        id: None,
    };
    if let Ok(imported) = misp::convert_event(data, &opts) {
        check_draft(&imported.draft, "misp");
    }
}

/// `advisory_draft`: the first byte chooses JSON (even) or TOML (odd); the rest is an advisory
/// file, parsed, mapped to a draft and validated as `tanoa publish` and the daemon do.
pub fn advisory_draft(data: &[u8]) {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(body) else {
        return;
    };
    let format = if mode & 1 == 0 {
        FileFormat::Json
    } else {
        FileFormat::Toml
    };
    let Ok(file) = parse_advisory_str(text, format, "fuzz-advisory") else {
        return;
    };
    if let Ok(d) = file.to_draft() {
        check_draft(&d, "fuzz-advisory");
    }
}

/// What the CLI and the daemon do with a draft before signing: send it as protobuf and read it
/// back, assign, normalize, validate.
fn check_draft(d: &model::Draft, id: &str) {
    let Ok(d) = model::wire::draft_from_proto(model::wire::draft_to_proto(d)) else {
        return;
    };
    let id = match d.id.as_deref() {
        Some(own) if model::validate::check_advisory_id(own).is_ok() => own,
        _ => id,
    };
    if let Ok(mut a) =
        model::draft::draft_to_advisory(&d, ME, id, 1, 1_700_000_000_000, 1_700_000_000_000)
    {
        model::validate::normalize_advisory(&mut a);
        let _ = model::validate_advisory(&a, &Limits::default());
    }
}

/// `warninglist`: a `list.json`; when it parses, it is compiled and every value found in it
/// (and a few fixed ones) is checked against it for every indicator kind.
pub fn warninglist(data: &[u8]) {
    let Ok(list) = parse_list(data, "fuzz", Path::new("fuzz/list.json")) else {
        return;
    };
    let probes: Vec<String> = list
        .entries
        .iter()
        .take(16)
        .cloned()
        .chain(
            [
                "example.com",
                "www.example.com",
                "192.0.2.1",
                "2001:db8::1",
                "http://example.com/a",
                "a@example.com",
            ]
            .map(String::from),
        )
        .collect();
    let (lists, _problems) = WarningLists::new(vec![list]);
    for kind in IndicatorKind::ALL {
        for p in &probes {
            let _ = lists.check(kind, p);
        }
    }
}

/// Writes the binary seed corpora of the protobuf and negentropy targets into
/// `$TANOA_FUZZ_SEEDS/<target>/` (`fuzz/corpus` is seeded so:
/// `TANOA_FUZZ_SEEDS=$PWD/fuzz/corpus cargo test -p tanoa-core write_seeds -- --ignored`).
#[cfg(test)]
mod seeds {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::sync::{FetchResponse, ItemResult, PushRequest, PushResponse};

    fn write(dir: &Path, target: &str, name: &str, bytes: &[u8]) {
        let d = dir.join(target);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(name), bytes).unwrap();
    }

    #[test]
    #[ignore = "writes seed files; run by hand"]
    fn write_seeds() {
        let dir = std::path::PathBuf::from(std::env::var("TANOA_FUZZ_SEEDS").unwrap());
        let text = include_str!("../../../examples/amber-advisory.toml");
        let draft = parse_advisory_str(text, FileFormat::Toml, "x")
            .unwrap()
            .to_draft()
            .unwrap();
        let mut a = model::draft::draft_to_advisory(
            &draft,
            PEER,
            "fuzz-seed-1",
            1,
            1_700_000_000_000,
            1_700_000_000_000,
        )
        .unwrap();
        a.audience = vec![ME.to_string()];
        model::validate::normalize_advisory(&mut a);
        let v = keys().b.sign(a, &Limits::default()).unwrap();
        let env = v.envelope().clone();
        let mut e0 = vec![0u8];
        e0.extend(env.encode());
        write(&dir, "envelope", "signed-amber", &e0);
        let mut e1 = vec![1u8];
        e1.extend(&env.payload);
        write(&dir, "envelope", "payload-amber", &e1);

        let msgs = [
            (
                "push-request",
                PeerMessage::PushRequest(PushRequest {
                    envelopes: vec![env.clone()],
                }),
            ),
            (
                "push-response",
                PeerMessage::PushResponse(PushResponse {
                    results: vec![ItemResult {
                        item_id: env.item_id(),
                        accepted: false,
                        reason: "red_relay".into(),
                    }],
                }),
            ),
            (
                "fetch-request",
                PeerMessage::FetchRequest(FetchRequest {
                    item_ids: vec![env.item_id(), envelope::ItemId([13; 32])],
                    max_bytes: 0,
                }),
            ),
            (
                "fetch-response",
                PeerMessage::FetchResponse(FetchResponse {
                    envelopes: vec![env.clone()],
                    missing: vec![envelope::ItemId([1; 32])],
                    deferred: vec![envelope::ItemId([26; 32])],
                }),
            ),
        ];
        for (name, m) in &msgs {
            write(&dir, "peer_messages", name, &m.encode());
        }

        // Real frames: our initial message to cert-b, and cert-b's answer to it.
        let mut a_core = core().unwrap();
        let first = drain(&mut a_core)
            .into_iter()
            .find_map(|a| match a {
                Action::Reconcile { to, msg, .. } if to == PEER => Some(msg),
                _ => None,
            })
            .unwrap();
        let mut b_core =
            SyncCore::new(SyncConfig::default(), PEER, [ME, OTHER], 9, NOW_MS).unwrap();
        b_core.peer_up(NOW_MS, ME);
        let answer = b_core.handle_reconcile(NOW_MS, ME, &first).unwrap();
        write(&dir, "negentropy_frame", "initial", &first.message);
        write(&dir, "negentropy_frame", "answer", &answer.message);
        write(
            &dir,
            "peer_messages",
            "reconcile-request",
            &PeerMessage::ReconcileRequest(first).encode(),
        );
        write(
            &dir,
            "peer_messages",
            "reconcile-response",
            &PeerMessage::ReconcileResponse(answer).encode(),
        );
    }
}
