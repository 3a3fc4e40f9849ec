//! ImportEnvelope refuses damaged or wrongly signed envelopes, each with its own reason, stores
//! nothing, and keeps serving.

use tanoa_daemon::envelope::{self, SigningIdentity};
use tanoa_daemon::keys;
use tanoa_integration_tests::{TestNode, expect_err, reason_of, signed_advisory};
use tanoa_proto::v1 as pb;
use tonic::Code;

use crate::bins;

fn trusted(id: &SigningIdentity) -> String {
    format!(
        "[[trusted]]\nmember = \"{}\"\npublic_key = \"{}\"\n",
        id.member(),
        keys::public_hex(&id.verifying_key())
    )
}

#[tokio::test]
async fn damaged_and_wrongly_signed_envelopes_are_refused_with_distinct_reasons() {
    let fj = SigningIdentity::new("fj-cert", keys::generate().unwrap());
    let to = SigningIdentity::new("to-cert", keys::generate().unwrap());
    // Signs as a member we trust, but with a key nobody configured.
    let rogue = SigningIdentity::new("fj-cert", keys::generate().unwrap());
    let extra = format!("{}\n{}", trusted(&fj), trusted(&to));
    let node = TestNode::start_new(&bins().tanoad, "ws-cert", &extra).await;
    let mut c = node.client().await;

    let good = signed_advisory(&fj, "fj-2026-0001", 1, 21)
        .envelope()
        .clone();
    let status_before = c.status(pb::StatusRequest {}).await.unwrap().into_inner();
    assert_eq!(status_before.items, 0);

    let mut cases: Vec<(&str, envelope::Envelope)> = Vec::new();
    // 1. Tampered payload: one bit flipped.
    let mut tampered = good.clone();
    let mid = tampered.payload.len() / 2;
    tampered.payload[mid] ^= 0x01;
    cases.push(("tampered payload", tampered));
    // 2. Wrong key: signed by to-cert's key, but naming fj-cert's key.
    let mut wrong = signed_advisory(&to, "to-2026-0001", 1, 22)
        .envelope()
        .clone();
    wrong.key_id = fj.key_id().to_string();
    cases.push(("wrong key", wrong));
    // 3. Unknown key id: a key no roster member has.
    let unknown = signed_advisory(&rogue, "fj-2026-0002", 1, 23)
        .envelope()
        .clone();
    assert_ne!(unknown.key_id, fj.key_id());
    cases.push(("unknown key", unknown));
    // 4. Truncated envelope: the signature cut short.
    let mut cut_sig = good.clone();
    cut_sig.signature.truncate(40);
    cases.push(("truncated signature", cut_sig));
    // 5. Truncated payload, correctly signed as it is: the signature holds, decoding fails.
    let mut cut = good.payload.clone();
    cut.truncate(cut.len() / 2);
    let cut_signed = fj.sign_payload(cut);
    cases.push(("truncated payload (re-signed)", cut_signed));

    let mut reasons = Vec::new();
    for (what, env) in cases {
        let s = expect_err(
            c.import_envelope(pb::ImportEnvelopeRequest {
                envelope: Some(env.to_proto()),
            })
            .await,
            what,
        );
        let reason = reason_of(&s);
        println!("{what}: {:?} {reason}: {}", s.code(), s.message());
        assert!(!reason.is_empty(), "{what}: no tanoa-reason in {s:?}");
        assert!(
            s.message().contains(&reason),
            "{what}: message does not name the reason {reason}: {}",
            s.message()
        );
        assert!(
            matches!(s.code(), Code::InvalidArgument | Code::FailedPrecondition),
            "{what}: {s:?}"
        );
        reasons.push((what, reason));
    }
    let expect = [
        ("tampered payload", "bad_signature"),
        ("wrong key", "wrong_key"),
        ("unknown key", "unknown_key"),
        ("truncated signature", "truncated_signature"),
        ("truncated payload (re-signed)", "invalid_advisory"),
    ];
    for ((what, got), (_, want)) in reasons.iter().zip(expect) {
        assert_eq!(got, want, "{what}");
    }
    let mut distinct: Vec<&String> = reasons.iter().map(|(_, r)| r).collect();
    distinct.sort();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        reasons.len(),
        "reasons not distinct: {reasons:?}"
    );

    // 6. The payload cut without re-signing: the signature no longer covers it. It can only be
    // told apart from tampering by length, so it is a bad signature too, and still refused.
    let mut cut_unsigned = good.clone();
    cut_unsigned.payload.truncate(good.payload.len() / 2);
    let s = expect_err(
        c.import_envelope(pb::ImportEnvelopeRequest {
            envelope: Some(cut_unsigned.to_proto()),
        })
        .await,
        "truncated payload",
    );
    assert_eq!(reason_of(&s), "bad_signature", "{s:?}");

    // Nothing was stored.
    let status = c.status(pb::StatusRequest {}).await.unwrap().into_inner();
    assert_eq!(
        (status.items, status.advisories, status.indicators),
        (0, 0, 0),
        "{status:?}"
    );
    let list = c
        .list(pb::ListRequest {
            include_withdrawn: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(list.advisories.is_empty(), "{list:?}");
    let hits = c
        .search_indicator(pb::SearchIndicatorRequest {
            value: "198.51.100.7".into(),
            kind: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(hits.hits.is_empty(), "{hits:?}");
    // Each refusal is in the audit log with its reason.
    let audit = c
        .audit(pb::AuditRequest { limit: 20 })
        .await
        .unwrap()
        .into_inner();
    let rejects: Vec<&str> = audit
        .entries
        .iter()
        .filter(|e| e.action == "reject")
        .map(|e| e.detail.as_str())
        .collect();
    assert_eq!(rejects.len(), 6, "{audit:?}");
    for (_, want) in expect {
        assert!(
            rejects.iter().any(|d| d.starts_with(want)),
            "{want} missing in audit {rejects:?}"
        );
    }

    // The daemon still serves: the intact envelope is accepted and stored.
    let ok = c
        .import_envelope(pb::ImportEnvelopeRequest {
            envelope: Some(good.to_proto()),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ok.outcome, "inserted");
    assert_eq!(ok.item_id, good.item_id().to_hex());
    let got = c
        .get(pb::GetRequest {
            id: ok.item_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(got.verification.unwrap().valid);
    assert_eq!(got.source, "import");
    let status = c.status(pb::StatusRequest {}).await.unwrap().into_inner();
    assert_eq!((status.items, status.advisories), (1, 1));
}
