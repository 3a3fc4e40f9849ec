//! Non-interference against a real `tanoad`: two runs that differ only in items peer Q may not
//! hold produce byte-identical traffic from the daemon to Q.
//!
//! # Why the traffic is compared at the message level, with Q played by the test
//!
//! A recording TCP proxy in front of a real Q sees only TLS records. Their lengths do reveal
//! plaintext lengths, but between two runs they also differ for reasons unrelated to the secret
//! items: ECDSA signatures in the handshake vary by a byte or two, HTTP/2 coalesces frames into
//! records depending on scheduling, PINGs and WINDOW_UPDATEs depend on timing, and the number of
//! anti-entropy sessions in a window depends on the clock and each daemon's fresh OS seed. A
//! record-length comparison would be flaky, and loosening it until it is not would also blind it.
//!
//! So Q is played by the test, deterministically: it holds a valid member certificate of the
//! federation (`to-cert`), dials the daemon P (`ws-cert`) over the real peer port with mutual
//! TLS through the link proxy, and runs the daemon's own sans-IO `SyncCore` with a fixed seed
//! and a fixed clock, so its requests are a pure function of what it holds. Every response P
//! sends back (Reconcile and Fetch, as decoded protobuf messages re-encoded with prost, i.e. the
//! gRPC frame payloads) is recorded, followed by a direct probe: a Fetch of the secret ids, an
//! unknown id and a GREEN id. P's other links lead nowhere (their proxies have no target), so
//! no traffic depends on a third process.
//!
//! Run 1: P holds 40 GREEN items of fj-cert plus AMBER and RED items (from fj-cert for ws-cert,
//! and a RED item P published itself for fj-cert) that Q may not hold. Run 2: the same GREEN
//! envelopes (byte-identical: fj-cert's signing key is fixed across runs) and nothing else. The
//! transcripts must be equal. Run 3 (the control that shows the comparison can fail): one more
//! GREEN item, which Q may hold: the transcript must differ.
//!
//! Checked to fail on a real leak: in a scratch copy with `policy::in_reconcile_scope` widened
//! to `(holds(a) || holds(b))` (AMBER items of ws-cert's enter its set with to-cert), message 0
//! (the first Reconcile reply) differs; message sizes 1522, 14578, 580 with the secret items
//! against 1298, 14340, 580 without.

use std::time::Duration;

use tanoa_daemon::config::Config;
use tanoa_daemon::envelope::{Envelope, Keyring, PublicKeyRecord, SigningIdentity, Verified};
use tanoa_daemon::model::{Advisory, Limits};
use tanoa_daemon::node::driver;
use tanoa_daemon::sync::{
    Action, FetchRequest, FetchResponse, ItemMeta, PushResponse, ReconcileResponse, Source,
    SyncConfig, SyncCore,
};
use tanoa_daemon::{keys, node, transport};
use tanoa_integration_tests::federation::Federation;
use tanoa_integration_tests::sample_draft;
use tanoa_proto::v1 as pb;

use crate::bins;

const T: u64 = 1_790_000_000_000;
const P: usize = 0;
const Q: usize = 1;

fn sign(
    who: &SigningIdentity,
    id: &str,
    host: u8,
    tlp: pb::Tlp,
    aud: &[&str],
) -> Verified<Advisory> {
    let mut d = sample_draft(id, &format!("Advisory {id}"), host);
    d.tlp = tlp as i32;
    d.audience = aud.iter().map(ToString::to_string).collect();
    let now = 1_767_225_600_000 + i64::from(host);
    let d = tanoa_daemon::model::wire::draft_from_proto(d).expect("draft converts");
    let mut adv = tanoa_daemon::model::draft::draft_to_advisory(&d, who.member(), id, 1, now, now)
        .expect("draft converts");
    tanoa_daemon::model::normalize_advisory(&mut adv);
    who.sign(adv, &Limits::default()).expect("sign")
}

/// What P sends Q in one run, as encoded messages.
async fn run(
    fj_key: &ed25519_dalek::SigningKey,
    green: &[Verified<Advisory>],
    secret: &[Verified<Advisory>],
    publish_red: bool,
    probe: &[Vec<u8>],
) -> Vec<Vec<u8>> {
    let ids = ["ws-cert", "to-cert", "fj-cert"];
    let mut fed =
        Federation::create_with_keys(&bins().tanoad, &ids, &[None, None, Some(fj_key.clone())])
            .await;
    fed.start_member(P).await;
    let mut op = fed.nodes[P].client().await;
    for v in green.iter().chain(secret) {
        op.import_envelope(pb::ImportEnvelopeRequest {
            envelope: Some(v.envelope().to_proto()),
        })
        .await
        .unwrap();
    }
    if publish_red {
        let mut d = sample_draft("ws-2026-red", "Red of ws for fj", 250);
        d.tlp = pb::Tlp::Red as i32;
        d.audience = vec!["fj-cert".into()];
        op.publish(pb::PublishRequest { draft: Some(d) })
            .await
            .unwrap();
    }

    // Q: its config's TLS identity, dialling P through the Q -> P link proxy.
    let qcfg = Config::load(fed.nodes[Q].config_path()).unwrap();
    let tls = node::peer_tls(&qcfg, transport::logging_hook())
        .unwrap()
        .expect("[peer] in Q's config");
    let endpoint = tanoa_daemon::config::PeerEndpoint {
        host: "127.0.0.1".into(),
        port: fed.link(Q, P).addr().port(),
    };
    let channel = driver::peer_channel(
        &endpoint,
        tls.client_config("ws-cert").unwrap(),
        Duration::from_secs(10),
    )
    .unwrap();
    let limit = driver::peer_message_limit(&qcfg.sync, qcfg.limits.max_payload_bytes);
    let mut client = driver::peer_client(channel, limit);

    let mut keyring = Keyring::new();
    keyring.insert(PublicKeyRecord::new(
        "fj-cert".to_string(),
        fj_key.verifying_key(),
        None,
        None,
    ));
    let cfg = SyncConfig {
        interval_ms: 0,
        reconcile_on_connect: false,
        ..SyncConfig::default()
    };
    let mut q = SyncCore::new(cfg, "to-cert", ["ws-cert", "fj-cert"], 42, T).unwrap();
    // Q already holds a quarter of the GREEN items.
    for v in green.iter().take(green.len() / 4) {
        q.item_accepted(T, &ItemMeta::of_verified(v), Source::Loaded);
    }
    while q.poll_action().is_some() {}
    let mut transcript = Vec::new();
    q.sync_now(T, Some("ws-cert")).unwrap();
    let mut steps = 0;
    while let Some(action) = q.poll_action() {
        steps += 1;
        assert!(steps < 10_000, "Q's session does not end");
        match action {
            Action::Reconcile { req, msg, .. } => {
                let r = client.reconcile(msg.to_proto()).await.unwrap().into_inner();
                transcript.push(prost::Message::encode_to_vec(&r));
                q.on_reconcile_response(T, "ws-cert", req, &ReconcileResponse::from_proto(r));
            }
            Action::Fetch { req, msg, .. } => {
                let r = client.fetch(msg.to_proto()).await.unwrap().into_inner();
                transcript.push(prost::Message::encode_to_vec(&r));
                let resp = FetchResponse::from_proto(r).unwrap();
                for env in &resp.envelopes {
                    let v = tanoa_daemon::envelope::verify(
                        Envelope::from_proto(env.to_proto()),
                        &keyring,
                        &Limits::default(),
                    )
                    .unwrap();
                    q.item_accepted(T, &ItemMeta::of_verified(&v), Source::Peer("ws-cert"));
                }
                q.on_fetch_response(T, "ws-cert", req, &resp);
            }
            Action::Push { req, .. } => {
                q.on_push_response(T, "ws-cert", req, &PushResponse::default());
            }
            Action::WakeAt(_) => {}
        }
    }
    for v in green {
        assert!(q.holds(&v.item_id()), "Q did not get every GREEN item");
    }
    // The probe: ids Q may not hold must be answered like an unknown id.
    let probe = FetchRequest {
        item_ids: probe
            .iter()
            .map(|b| tanoa_daemon::envelope::ItemId(b.as_slice().try_into().unwrap()))
            .collect(),
        max_bytes: 0,
    };
    let r = client.fetch(probe.to_proto()).await.unwrap().into_inner();
    transcript.push(prost::Message::encode_to_vec(&r));
    transcript
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_differing_only_in_items_q_may_not_hold_send_q_identical_bytes() {
    let fj_key = keys::generate().unwrap();
    let fj = SigningIdentity::new("fj-cert".to_string(), fj_key.clone());
    let green: Vec<_> = (0..40u8)
        .map(|n| sign(&fj, &format!("fj-2026-g{n:02}"), n + 1, pb::Tlp::Green, &[]))
        .collect();
    let mut secret = Vec::new();
    for n in 0..6u8 {
        secret.push(sign(
            &fj,
            &format!("fj-2026-a{n}"),
            100 + n,
            pb::Tlp::Amber,
            &["ws-cert"],
        ));
        secret.push(sign(
            &fj,
            &format!("fj-2026-r{n}"),
            120 + n,
            pb::Tlp::Red,
            &["ws-cert"],
        ));
    }
    let extra = sign(&fj, "fj-2026-extra", 200, pb::Tlp::Green, &[]);
    let probe: Vec<Vec<u8>> = vec![
        secret[0].item_id().0.to_vec(),
        secret[1].item_id().0.to_vec(),
        vec![0x42; 32],
        green[39].item_id().0.to_vec(),
    ];

    let with_secrets = run(&fj_key, &green, &secret, true, &probe).await;
    let without = run(&fj_key, &green, &[], false, &probe).await;
    assert!(
        with_secrets.len() >= 3,
        "too little traffic to compare: {with_secrets:?}"
    );
    assert_same(&with_secrets, &without);
    // The probe's answer serves the GREEN id only.
    let last = pb::FetchResponse::decode_from(without.last().unwrap());
    assert_eq!(last.envelopes.len(), 1);
    assert_eq!(last.missing.len(), 3);

    // Control: an item Q may hold changes the traffic, so the comparison can fail.
    let mut more = green.clone();
    more.push(extra);
    let control = run(&fj_key, &more, &[], false, &probe).await;
    assert_ne!(control, without, "the transcript is blind to Q's items");
}

/// Fails naming the first message that differs (sizes of both transcripts), not the bytes.
fn assert_same(a: &[Vec<u8>], b: &[Vec<u8>]) {
    let sizes = |t: &[Vec<u8>]| t.iter().map(Vec::len).collect::<Vec<_>>();
    if let Some(k) = (0..a.len().max(b.len())).find(|&k| a.get(k) != b.get(k)) {
        panic!(
            "P's traffic to Q depends on items Q may not hold: message {k} differs\n\
             message sizes with the secret items:    {:?}\n\
             message sizes without the secret items: {:?}",
            sizes(a),
            sizes(b)
        );
    }
}

trait DecodeFrom {
    fn decode_from(b: &[u8]) -> Self;
}

impl DecodeFrom for pb::FetchResponse {
    fn decode_from(b: &[u8]) -> Self {
        prost::Message::decode(b).unwrap()
    }
}
