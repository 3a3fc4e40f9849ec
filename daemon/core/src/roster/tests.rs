#![allow(clippy::unwrap_used, clippy::expect_used)]

use ed25519_dalek::SigningKey;

use super::*;
use crate::envelope::key_id_of;
use crate::membership::SpkiPin;
use crate::model::{Limits, validate_advisory};

const T0: i64 = 1_700_000_000_000;

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn request(id: &str, seed: u8) -> JoinRequest {
    JoinRequest::sign(
        id,
        &id.to_uppercase(),
        vec![format!("127.0.0.{seed}:7400")],
        vec![SpkiPin([seed; 32])],
        &key(seed),
    )
}

/// Founding roster of `ids` (member i has key seed i + 1), threshold `t`, signed by all.
fn founded(ids: &[&str], t: u32) -> SignedRoster {
    let reqs: Vec<JoinRequest> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| request(id, i as u8 + 1))
        .collect();
    let doc = found("pacific", t, T0, &reqs).unwrap();
    let h = doc.hash();
    let signatures = ids
        .iter()
        .enumerate()
        .map(|(i, id)| RosterSignature::sign(id, &key(i as u8 + 1), &h))
        .collect();
    SignedRoster {
        roster: doc,
        signatures,
    }
}

fn seed_of(ids: &[&str], id: &str) -> u8 {
    ids.iter().position(|x| *x == id).unwrap() as u8 + 1
}

fn sign_by(doc: &RosterDoc, signers: &[(&str, u8)]) -> Vec<RosterSignature> {
    let h = doc.hash();
    signers
        .iter()
        .map(|(m, s)| RosterSignature::sign(m, &key(*s), &h))
        .collect()
}

const FOUNDERS: [&str; 3] = ["ws-cert", "to-cert", "fj-cert"];

#[test]
fn the_canonical_encoding_is_deterministic_and_decoding_refuses_anything_else() {
    let a = founded(&FOUNDERS, 2).roster;
    let mut b = a.clone();
    b.members.reverse();
    assert_ne!(a.members, b.members);
    assert_eq!(a.hash(), b.hash(), "member order does not change the hash");
    let bytes = a.canonical_bytes();
    assert_eq!(RosterDoc::decode_canonical(&bytes).unwrap(), a);
    let pretty = serde_json::to_vec_pretty(&a).unwrap();
    assert_eq!(
        RosterDoc::decode_canonical(&pretty).unwrap_err().message,
        "not in canonical form"
    );
    let mut c = a.clone();
    c.threshold = 3;
    assert_ne!(a.hash(), c.hash());
    let file = founded(&FOUNDERS, 2).to_json();
    assert_eq!(SignedRoster::from_json(&file).unwrap().hash(), a.hash());
}

#[test]
fn structural_faults_name_their_field() {
    let base = founded(&FOUNDERS, 2).roster;
    type Mutate = fn(&mut RosterDoc);
    let cases: Vec<(Mutate, &str)> = vec![
        (|d| d.threshold = 0, "threshold"),
        (|d| d.threshold = 4, "threshold"),
        (|d| d.federation.clear(), "federation"),
        (|d| d.previous = "abc".into(), "previous"),
        (
            |d| d.members[1].id = d.members[0].id.clone(),
            "members[1].id",
        ),
        (|d| d.members[0].keys.clear(), "members[0].keys"),
        (
            |d| d.members[0].keys[0].public_key = "zz".into(),
            "members[0].keys[0].public_key",
        ),
        (
            |d| d.members[1].keys = d.members[0].keys.clone(),
            "members[1].keys[0].public_key",
        ),
        (
            |d| d.members[2].tls_pins = vec!["12".into()],
            "members[2].tls_pins[0]",
        ),
        (
            |d| d.members[2].tls_pins = (1..=5u8).map(|b| hex::encode([b; 32])).collect(),
            "members[2].tls_pins",
        ),
        (
            |d| {
                d.members[0].tls_pins = vec![hex::encode([7u8; 32])];
                d.members[1].tls_pins = vec![hex::encode([7u8; 32])];
            },
            "members[1].tls_pins[0]",
        ),
        (
            |d| d.members[0].endpoints = vec!["nohost".into()],
            "members[0].endpoints[0]",
        ),
        (|d| d.members[0].id = "WS".into(), "members[0].id"),
    ];
    for (mutate, field) in cases {
        let mut d = base.clone();
        mutate(&mut d);
        assert_eq!(d.check().unwrap_err().field, field);
    }
    base.check().unwrap();
}

#[test]
fn a_join_request_must_be_signed_by_its_own_key() {
    let r = request("ck-cert", 9);
    r.verify().unwrap();
    let mut moved = r.clone();
    moved.endpoints = vec!["203.0.113.9:7400".into()];
    assert_eq!(moved.verify().unwrap_err().reason(), "join_bad_signature");
    let mut other_key = r.clone();
    other_key.public_key = hex::encode(key(10).verifying_key().as_bytes());
    assert_eq!(
        other_key.verify().unwrap_err().reason(),
        "join_bad_signature"
    );
    let mut garbage = r.clone();
    garbage.signature = "00".into();
    assert_eq!(garbage.verify().unwrap_err().reason(), "join_bad_signature");
    let mut bad_id = request("CK", 9);
    bad_id.verify().unwrap_err();
    bad_id.id = "ck-cert".into();
    assert_eq!(bad_id.verify().unwrap_err().reason(), "join_bad_signature");
    // A proposal cannot be built from a bad request.
    let v1 = founded(&FOUNDERS, 2).roster;
    assert!(matches!(
        propose(&v1, &Change::Add { request: moved }, T0 + 1),
        Err(ChangeError::Join(JoinError::BadSignature { .. }))
    ));
}

#[test]
fn the_founding_version_needs_threshold_signatures_of_its_founders() {
    let s = founded(&FOUNDERS, 2);
    check_founding(&s.roster, &s.signatures).unwrap();
    RosterEngine::new(s.clone()).unwrap();
    let one = sign_by(&s.roster, &[("ws-cert", 1)]);
    assert_eq!(
        check_founding(&s.roster, &one).unwrap_err().reason(),
        "roster_under_threshold"
    );
    let outsider = sign_by(&s.roster, &[("ws-cert", 1), ("xx-cert", 40)]);
    assert_eq!(
        check_founding(&s.roster, &outsider).unwrap_err().reason(),
        "roster_unknown_signer"
    );
    let unsigned = SignedRoster {
        roster: s.roster.clone(),
        signatures: one,
    };
    assert_eq!(
        RosterEngine::new(unsigned).unwrap_err().reason(),
        "roster_under_threshold"
    );
}

/// v2 of the founding roster with ck-cert added.
fn v2_add(v1: &RosterDoc) -> RosterDoc {
    propose(
        v1,
        &Change::Add {
            request: request("ck-cert", 9),
        },
        T0 + 1_000,
    )
    .unwrap()
}

#[test]
fn successor_acceptance_table() {
    let v1 = founded(&FOUNDERS, 2).roster;
    let v2 = v2_add(&v1);
    assert_eq!(v2.version, 2);
    assert_eq!(v2.previous, v1.hash().to_hex());
    // v2 removes fj-cert (for the removed-signer case), v3 adds ck-cert.
    let v2_rm = propose(
        &v1,
        &Change::Remove {
            member: "fj-cert".into(),
        },
        T0 + 1_000,
    )
    .unwrap();
    let v3_after_rm = propose(
        &v2_rm,
        &Change::Add {
            request: request("ck-cert", 9),
        },
        T0 + 2_000,
    )
    .unwrap();
    // ws-cert's key revoked as of T0 + 500 in v2_rev.
    let v2_rev = propose(
        &v1,
        &Change::Revoke {
            member: "ws-cert".into(),
            public_key: hex::encode(key(1).verifying_key().as_bytes()),
            as_of_ms: T0 + 500,
        },
        T0 + 1_000,
    )
    .unwrap();
    let v3_after_rev =
        propose(&v2_rev, &Change::SetThreshold { threshold: 2 }, T0 + 2_000).unwrap();
    let mut v2_foreign = v2.clone();
    v2_foreign.federation = "atlantic".into();
    let mut v2_bad_prev = v2.clone();
    v2_bad_prev.previous = "ab".repeat(32);
    let mut v2_dropped = v1.clone();
    v2_dropped.version = 2;
    v2_dropped.previous = v1.hash().to_hex();
    v2_dropped.members.retain(|m| m.id != "fj-cert");
    let forged = {
        let mut s = sign_by(&v2, &[("ws-cert", 1)]);
        s.extend(sign_by(&v1, &[("to-cert", 2)])); // a signature over another hash
        s
    };
    type Case<'a> = (
        &'a str,
        &'a RosterDoc,
        &'a RosterDoc,
        Vec<RosterSignature>,
        Option<&'a str>,
    );
    let cases: Vec<Case<'_>> = vec![
        (
            "2 of 3",
            &v1,
            &v2,
            sign_by(&v2, &[("ws-cert", 1), ("to-cert", 2)]),
            None,
        ),
        (
            "3 of 3",
            &v1,
            &v2,
            sign_by(&v2, &[("ws-cert", 1), ("to-cert", 2), ("fj-cert", 3)]),
            None,
        ),
        (
            "1 of 3",
            &v1,
            &v2,
            sign_by(&v2, &[("ws-cert", 1)]),
            Some("roster_under_threshold"),
        ),
        (
            "same member twice",
            &v1,
            &v2,
            sign_by(&v2, &[("ws-cert", 1), ("ws-cert", 1)]),
            Some("roster_under_threshold"),
        ),
        (
            "no signature",
            &v1,
            &v2,
            vec![],
            Some("roster_under_threshold"),
        ),
        (
            "a non-member",
            &v1,
            &v2,
            sign_by(&v2, &[("ws-cert", 1), ("xx-cert", 40)]),
            Some("roster_unknown_signer"),
        ),
        (
            "the joiner itself",
            &v1,
            &v2,
            sign_by(&v2, &[("ws-cert", 1), ("ck-cert", 9)]),
            Some("roster_unknown_signer"),
        ),
        (
            "a member with another's key",
            &v1,
            &v2,
            sign_by(&v2, &[("ws-cert", 1), ("to-cert", 40)]),
            Some("roster_unknown_signer"),
        ),
        ("forged", &v1, &v2, forged, Some("roster_bad_signature")),
        (
            "a removed member",
            &v2_rm,
            &v3_after_rm,
            sign_by(&v3_after_rm, &[("ws-cert", 1), ("fj-cert", 3)]),
            Some("roster_removed_signer"),
        ),
        (
            "the remaining members",
            &v2_rm,
            &v3_after_rm,
            sign_by(&v3_after_rm, &[("ws-cert", 1), ("to-cert", 2)]),
            None,
        ),
        (
            "a revoked key",
            &v2_rev,
            &v3_after_rev,
            sign_by(&v3_after_rev, &[("ws-cert", 1), ("to-cert", 2)]),
            Some("roster_signer_key_not_valid"),
        ),
        (
            "replayed older version",
            &v2,
            &v2,
            sign_by(&v2, &[("ws-cert", 1), ("to-cert", 2)]),
            Some("roster_old_version"),
        ),
        (
            "older than the previous",
            &v2,
            &v1,
            sign_by(&v1, &[("ws-cert", 1), ("to-cert", 2)]),
            Some("roster_old_version"),
        ),
        (
            "wrong previous",
            &v1,
            &v2_bad_prev,
            sign_by(&v2_bad_prev, &[("ws-cert", 1), ("to-cert", 2)]),
            Some("roster_wrong_previous"),
        ),
        (
            "other federation",
            &v1,
            &v2_foreign,
            sign_by(&v2_foreign, &[("ws-cert", 1), ("to-cert", 2)]),
            Some("roster_wrong_federation"),
        ),
        (
            "member vanished",
            &v1,
            &v2_dropped,
            sign_by(&v2_dropped, &[("ws-cert", 1), ("to-cert", 2)]),
            Some("roster_broken_history"),
        ),
    ];
    for (name, prev, next, sigs, want) in cases {
        let got = check_successor(prev, next, &sigs).err().map(|e| e.reason());
        assert_eq!(got, want, "case {name}");
    }
}

#[test]
fn lowering_the_threshold_below_a_majority_needs_a_majority_of_the_previous_version() {
    let five = ["ws-cert", "to-cert", "fj-cert", "vu-cert", "sb-cert"];
    let s = |ids: &[&str]| -> Vec<(&'static str, u8)> {
        ids.iter()
            .map(|id| {
                let leaked: &'static str = Box::leak(id.to_string().into_boxed_str());
                (leaked, seed_of(&five, id))
            })
            .collect()
    };
    // Founded 2-of-5 (already below a majority).
    let v1 = founded(&five, 2).roster;
    let v2 = propose(&v1, &Change::SetThreshold { threshold: 1 }, T0 + 1).unwrap();
    assert_eq!(majority(5), 3);
    assert_eq!(required_signatures(&v1, &v2), 3);
    let two = sign_by(&v2, &s(&["ws-cert", "to-cert"]));
    assert_eq!(
        check_successor(&v1, &v2, &two).unwrap_err().reason(),
        "roster_threshold_lowering"
    );
    let three = sign_by(&v2, &s(&["ws-cert", "to-cert", "fj-cert"]));
    check_successor(&v1, &v2, &three).unwrap();
    // Raising it back to a majority needs only the current threshold.
    let v3 = propose(&v2, &Change::SetThreshold { threshold: 3 }, T0 + 2).unwrap();
    assert_eq!(required_signatures(&v2, &v3), 1);
    check_successor(&v2, &v3, &sign_by(&v3, &s(&["vu-cert"]))).unwrap();
    // 3-of-5 to 2-of-5 with 3 signatures (the old threshold is already a majority).
    let w1 = founded(&five, 3).roster;
    let w2 = propose(&w1, &Change::SetThreshold { threshold: 2 }, T0 + 1).unwrap();
    assert_eq!(required_signatures(&w1, &w2), 3);
    // Adding a fourth member to 2-of-3 keeps needing 2 (a majority of 3).
    let f1 = founded(&FOUNDERS, 2).roster;
    let f2 = v2_add(&f1);
    assert_eq!(required_signatures(&f1, &f2), 2);
    // A change that does not lower it (a revocation in 2-of-4) needs the threshold only.
    let f3 = propose(
        &f2,
        &Change::Revoke {
            member: "ck-cert".into(),
            public_key: hex::encode(key(9).verifying_key().as_bytes()),
            as_of_ms: T0 + 5,
        },
        T0 + 6,
    )
    .unwrap();
    assert_eq!(required_signatures(&f2, &f3), 2);
    // Adding a fifth member to 2-of-4 lowers the fraction: a majority of the 4 (3) is needed.
    let f4 = propose(
        &f3,
        &Change::Add {
            request: request("nu-cert", 11),
        },
        T0 + 7,
    )
    .unwrap();
    assert_eq!(required_signatures(&f3, &f4), 3);
    // Removing members clamps the threshold and the lowering rule still applies.
    let r2 = propose(
        &f1,
        &Change::Remove {
            member: "fj-cert".into(),
        },
        T0 + 1,
    )
    .unwrap();
    assert_eq!(
        (r2.threshold, r2.members.len(), r2.former_members.len()),
        (2, 2, 1)
    );
}

#[test]
fn key_windows_follow_rotation_revocation_and_removal() {
    let v1 = founded(&FOUNDERS, 2).roster;
    let ws_old = key_id_of(&key(1).verifying_key());
    let ws_new = key_id_of(&key(21).verifying_key());
    let to = key_id_of(&key(2).verifying_key());
    let fj = key_id_of(&key(3).verifying_key());
    let rotate_at = T0 + 10_000;
    let revoke_at = T0 + 20_000;
    let remove_at = T0 + 30_000;
    let v2 = propose(
        &v1,
        &Change::RotateKey {
            member: "ws-cert".into(),
            public_key: hex::encode(key(21).verifying_key().as_bytes()),
            from_ms: rotate_at,
        },
        T0 + 5_000,
    )
    .unwrap();
    let v3 = propose(
        &v2,
        &Change::Revoke {
            member: "to-cert".into(),
            public_key: hex::encode(key(2).verifying_key().as_bytes()),
            as_of_ms: revoke_at,
        },
        T0 + 6_000,
    )
    .unwrap();
    let v4 = propose(
        &v3,
        &Change::Remove {
            member: "fj-cert".into(),
        },
        remove_at,
    )
    .unwrap();
    let table: Vec<(&str, &str, i64, bool)> = vec![
        ("ws-cert", &ws_old, rotate_at - 1, true),
        ("ws-cert", &ws_old, rotate_at, false),
        ("ws-cert", &ws_new, rotate_at - 1, false),
        ("ws-cert", &ws_new, rotate_at, true),
        ("to-cert", &to, revoke_at - 1, true),
        ("to-cert", &to, revoke_at, false),
        ("to-cert", &to, revoke_at + 1_000_000, false),
        ("fj-cert", &fj, remove_at - 1, true),
        ("fj-cert", &fj, remove_at, false),
        ("ws-cert", &to, T0, false),
        ("xx-cert", &fj, T0, false),
    ];
    for (origin, kid, at, want) in table {
        assert_eq!(
            v4.signer_valid_at(origin, kid, at),
            want,
            "{origin} {kid} at {at}"
        );
    }
    let m = v4.membership();
    assert_eq!(m.version, 4);
    assert_eq!(
        m.members.keys().cloned().collect::<Vec<_>>(),
        vec!["to-cert".to_string(), "ws-cert".to_string()]
    );
    assert_eq!(m.members["ws-cert"].keys.len(), 2);
    assert_eq!(m.members["to-cert"].tls_pins, vec![SpkiPin([2; 32])]);
    assert_eq!(v4.key_records().len(), 4, "the former member's key is kept");
}

/// An engine at v1 of the founders, plus helpers to build items.
struct Fed {
    v1: SignedRoster,
}

impl Fed {
    fn new() -> Fed {
        Fed {
            v1: founded(&FOUNDERS, 2),
        }
    }
    fn proposal(&self, by: &str, doc: &RosterDoc, change: Change) -> RosterItem {
        let s = seed_of(&FOUNDERS, by);
        RosterItem::Proposal(Proposal {
            change,
            roster: doc.clone(),
            proposer: RosterSignature::sign(by, &key(s), &doc.hash()),
        })
    }
    fn approval(&self, by: &str, doc: &RosterDoc) -> RosterItem {
        let s = seed_of(&FOUNDERS, by);
        RosterItem::Approval(Approval {
            federation: doc.federation.clone(),
            version: doc.version,
            roster_hash: doc.hash().to_hex(),
            signature: RosterSignature::sign(by, &key(s), &doc.hash()),
        })
    }
}

fn signer_of(item: &RosterItem) -> String {
    match item {
        RosterItem::Proposal(p) => p.proposer.member.clone(),
        RosterItem::Approval(a) => a.signature.member.clone(),
        RosterItem::Version(_) => "ws-cert".into(),
    }
}

/// Feeds items in order through check + ingest, as a node does; returns the refusals.
fn feed(e: &mut RosterEngine, items: &[RosterItem]) -> Vec<&'static str> {
    let mut refused = Vec::new();
    for it in items {
        match e.check(it, &signer_of(it)) {
            Ok(()) => {
                e.ingest(it.clone());
            }
            Err(r) => {
                e.count_refusal(r.reason());
                refused.push(r.reason());
            }
        }
    }
    refused
}

fn permutations<T: Clone>(items: &[T]) -> Vec<Vec<T>> {
    if items.len() <= 1 {
        return vec![items.to_vec()];
    }
    let mut out = Vec::new();
    for i in 0..items.len() {
        let mut rest = items.to_vec();
        let x = rest.remove(i);
        for mut p in permutations(&rest) {
            p.insert(0, x.clone());
            out.push(p);
        }
    }
    out
}

#[test]
fn a_proposal_with_threshold_approvals_comes_into_force_in_every_arrival_order() {
    let f = Fed::new();
    let v2 = v2_add(&f.v1.roster);
    let add = Change::Add {
        request: request("ck-cert", 9),
    };
    let items = vec![
        f.proposal("ws-cert", &v2, add),
        f.approval("to-cert", &v2),
        f.approval("fj-cert", &v2),
    ];
    for order in permutations(&items) {
        let mut e = RosterEngine::new(f.v1.clone()).unwrap();
        assert!(feed(&mut e, &order).is_empty());
        assert_eq!(e.current().roster.version, 2);
        assert_eq!(e.current().hash(), v2.hash());
        assert!(e.current().roster.member("ck-cert").is_some());
        assert!(e.pending().is_empty());
        check_successor(&f.v1.roster, &e.current().roster, &e.current().signatures).unwrap();
    }
    // With the proposal alone it is pending, with one signature of the two needed.
    let mut e = RosterEngine::new(f.v1.clone()).unwrap();
    feed(&mut e, &items[..1]);
    assert_eq!(e.current().roster.version, 1);
    let p = e.pending();
    assert_eq!(
        (p.len(), p[0].signed_by.clone(), p[0].required),
        (1, vec!["ws-cert".to_string()], 2)
    );
    // The second signature brings it into force and reports it assembled (to publish).
    let adv = e.ingest(items[1].clone());
    assert_eq!((adv.from, adv.to), (1, 2));
    assert_eq!(adv.assembled.len(), 1);
    assert_eq!(adv.assembled[0].hash(), v2.hash());
    // The published version is then known; replaying it changes nothing.
    let published = RosterItem::Version(adv.assembled[0].clone());
    e.check(&published, "to-cert").unwrap();
    let again = e.ingest(published.clone());
    assert!(!again.changed());
    // A node anchored at v1 that only receives the published version follows it too.
    let mut late = RosterEngine::new(f.v1.clone()).unwrap();
    assert!(feed(&mut late, &[published]).is_empty());
    assert_eq!(late.current().hash(), v2.hash());
}

#[test]
fn hostile_roster_items_are_refused_with_their_reason_and_counted() {
    let f = Fed::new();
    let v2 = v2_add(&f.v1.roster);
    let mut e = RosterEngine::new(f.v1.clone()).unwrap();
    let under = RosterItem::Version(SignedRoster {
        roster: v2.clone(),
        signatures: sign_by(&v2, &[("ws-cert", 1)]),
    });
    let outsider = RosterItem::Version(SignedRoster {
        roster: v2.clone(),
        signatures: sign_by(&v2, &[("ws-cert", 1), ("xx-cert", 40)]),
    });
    let mut forged_approval = f.approval("to-cert", &v2);
    if let RosterItem::Approval(a) = &mut forged_approval {
        a.signature = RosterSignature::sign("to-cert", &key(40), &v2.hash());
        a.signature.key_id = key_id_of(&key(2).verifying_key());
    }
    let add = Change::Add {
        request: request("ck-cert", 9),
    };
    let proposal = f.proposal("ws-cert", &v2, add.clone());
    let mut foreign = v2.clone();
    foreign.federation = "atlantic".into();
    let items = vec![
        under,
        outsider,
        proposal.clone(),
        forged_approval,
        RosterItem::Version(SignedRoster {
            roster: foreign.clone(),
            signatures: sign_by(&foreign, &[("ws-cert", 1), ("to-cert", 2)]),
        }),
    ];
    let refused = feed(&mut e, &items);
    assert_eq!(
        refused,
        vec![
            "roster_under_threshold",
            "roster_unknown_signer",
            "roster_bad_signature",
            "roster_wrong_federation"
        ]
    );
    assert_eq!(e.refusals().values().sum::<u64>(), 4);
    assert_eq!(
        e.current().roster.version,
        1,
        "nothing hostile came into force"
    );
    // A proposal carried by someone else than its signer.
    assert_eq!(
        e.check(&proposal, "to-cert").unwrap_err().reason(),
        "roster_signer_mismatch"
    );
}

#[test]
fn replayed_and_older_versions_never_roll_the_roster_back() {
    let f = Fed::new();
    let v2 = v2_add(&f.v1.roster);
    let v2s = SignedRoster {
        signatures: sign_by(&v2, &[("ws-cert", 1), ("to-cert", 2)]),
        roster: v2.clone(),
    };
    let mut e = RosterEngine::new(f.v1.clone()).unwrap();
    feed(&mut e, &[RosterItem::Version(v2s.clone())]);
    assert_eq!(e.current().roster.version, 2);
    // Replaying v1 (known history) is harmless and changes nothing.
    let replay = RosterItem::Version(f.v1.clone());
    e.check(&replay, "ws-cert").unwrap();
    assert!(!e.ingest(replay).changed());
    assert_eq!(e.current().roster.version, 2);
    // A node anchored at v2 refuses a version 1 that is not in its history.
    let anchored = RosterEngine::new(v2s.clone()).unwrap();
    let other_v1 = founded(&["ws-cert", "to-cert"], 1);
    assert_eq!(
        anchored
            .check(&RosterItem::Version(other_v1), "ws-cert")
            .unwrap_err()
            .reason(),
        "roster_old_version"
    );
    // … but recognises the real v1 (named by v2's `previous`).
    anchored
        .check(&RosterItem::Version(f.v1.clone()), "ws-cert")
        .unwrap();
    assert_eq!(anchored.current().roster.version, 2);
}

#[test]
fn a_fork_freezes_the_roster_at_the_last_agreed_version_whatever_the_order() {
    let f = Fed::new();
    let v2a = v2_add(&f.v1.roster);
    let v2b = propose(
        &f.v1.roster,
        &Change::Remove {
            member: "fj-cert".into(),
        },
        T0 + 1_000,
    )
    .unwrap();
    let v3a = propose(&v2a, &Change::SetThreshold { threshold: 3 }, T0 + 2_000).unwrap();
    let a = SignedRoster {
        signatures: sign_by(&v2a, &[("ws-cert", 1), ("to-cert", 2)]),
        roster: v2a.clone(),
    };
    let b = SignedRoster {
        signatures: sign_by(&v2b, &[("to-cert", 2), ("fj-cert", 3)]),
        roster: v2b.clone(),
    };
    let items = vec![
        RosterItem::Version(a),
        RosterItem::Version(b),
        f.proposal("ws-cert", &v3a, Change::SetThreshold { threshold: 3 }),
    ];
    for order in permutations(&items) {
        let mut e = RosterEngine::new(f.v1.clone()).unwrap();
        let mut raised = 0;
        let mut later = Vec::new();
        for it in &order {
            match e.check(it, &signer_of(it)) {
                Ok(()) => raised += usize::from(e.ingest(it.clone()).fork_raised),
                // A proposal on the other branch arriving while this branch is in force names
                // a previous we do not hold: refused now, fetched again by the next
                // reconciliation (modelled here by offering it again).
                Err(r) => {
                    assert_eq!(r.reason(), "roster_wrong_previous");
                    later.push(it.clone());
                }
            }
        }
        for it in later {
            e.check(&it, &signer_of(&it)).unwrap();
            raised += usize::from(e.ingest(it).fork_raised);
        }
        assert_eq!(raised, 1);
        assert_eq!(
            e.current().roster.version,
            1,
            "the last agreed version stays"
        );
        let fork = e.fork().unwrap();
        assert_eq!(fork.version, 2);
        let mut want = vec![v2a.hash(), v2b.hash()];
        want.sort();
        assert_eq!(fork.hashes, want);
    }
}

#[test]
fn roster_items_travel_as_valid_green_advisories_and_come_back_intact() {
    let f = Fed::new();
    let v2 = v2_add(&f.v1.roster);
    let items = vec![
        RosterItem::Version(f.v1.clone()),
        f.proposal(
            "ws-cert",
            &v2,
            Change::Add {
                request: request("ck-cert", 9),
            },
        ),
        f.approval("to-cert", &v2),
    ];
    for it in items {
        let origin = signer_of(&it);
        let a = it.to_advisory(&origin, T0);
        validate_advisory(&a, &Limits::default()).unwrap();
        assert!(is_carrier_id(&a.id), "{}", a.id);
        assert_eq!(RosterItem::from_advisory(&a).unwrap().unwrap(), it);
        // The same item under another origin: refused for proposals and approvals.
        let stolen = it.to_advisory("fj-cert", T0);
        let back = RosterItem::from_advisory(&stolen).unwrap();
        match it {
            RosterItem::Version(_) => assert!(back.is_ok()),
            _ => assert_eq!(back.unwrap_err().reason(), "roster_signer_mismatch"),
        }
        let mut amber = a.clone();
        amber.tlp = crate::model::Tlp::Amber;
        amber.audience = vec!["to-cert".into()];
        assert_eq!(
            RosterItem::from_advisory(&amber)
                .unwrap()
                .unwrap_err()
                .reason(),
            "roster_malformed"
        );
    }
    let mut plain = RosterItem::Version(f.v1.clone()).to_advisory("ws-cert", T0);
    plain.id = "ws-2026-0001".into();
    assert!(RosterItem::from_advisory(&plain).is_none());
}

fn pin_hex(byte: u8) -> String {
    hex::encode([byte; 32])
}

#[test]
fn set_pins_table() {
    let v1 = founded(&FOUNDERS, 2).roster;
    let old = pin_hex(1); // ws-cert's founding pin
    let new = pin_hex(0xab);
    let five: Vec<String> = (0xa0..0xa5)
        .map(|b| format!("sha256:{}", pin_hex(b)))
        .collect();
    // (case, member, pins, Ok(the member's pins after) | Err(text the error must contain))
    type Case = (
        &'static str,
        &'static str,
        Vec<String>,
        Result<Vec<String>, &'static str>,
    );
    let cases: Vec<Case> = vec![
        (
            "renewal: old and new",
            "ws-cert",
            vec![format!("sha256:{old}"), format!("sha256:{new}")],
            Ok(vec![old.clone(), new.clone()]),
        ),
        (
            "only the new one, mixed forms deduplicated",
            "ws-cert",
            vec![
                format!("sha256:{}", new.to_uppercase()),
                format!(" {new} "),
                new.clone(),
            ],
            Ok(vec![new.clone()]),
        ),
        (
            "sorted whatever the order given",
            "ws-cert",
            vec![new.clone(), pin_hex(0x05)],
            Ok(vec![pin_hex(0x05), new.clone()]),
        ),
        (
            "unknown member",
            "xx-cert",
            vec![new.clone()],
            Err("\"xx-cert\" is not a member"),
        ),
        (
            "malformed: too short",
            "ws-cert",
            vec![new.clone(), "sha256:12".into()],
            Err("pins[1]: \"sha256:12\" is 1 bytes"),
        ),
        (
            "malformed: not hex",
            "ws-cert",
            vec![format!("sha256:{}", "zz".repeat(32))],
            Err("pins[0]"),
        ),
        ("empty list", "ws-cert", vec![], Err("at least one pin")),
        (
            "too many",
            "ws-cert",
            five,
            Err("5 distinct pins; at most 4"),
        ),
        (
            "another member's pin",
            "ws-cert",
            vec![new.clone(), pin_hex(2)],
            Err("is a pin of to-cert"),
        ),
        (
            "unchanged",
            "ws-cert",
            vec![format!("sha256:{old}")],
            Err("no change"),
        ),
    ];
    for (case, member, pins, want) in cases {
        let change = Change::SetPins {
            member: member.into(),
            pins,
        };
        let got = propose(&v1, &change, T0 + 1_000);
        match want {
            Ok(expected) => {
                let v2 = got.unwrap_or_else(|e| panic!("{case}: {e}"));
                assert_eq!(v2.member(member).unwrap().tls_pins, expected, "{case}");
                assert_eq!((v2.version, v2.threshold), (2, v1.threshold), "{case}");
                assert_eq!(v2.previous, v1.hash().to_hex(), "{case}");
                // Nothing else changes: the other members, the keys, the member list.
                for other in FOUNDERS.iter().filter(|o| **o != member) {
                    assert_eq!(v2.member(other), v1.member(other), "{case}");
                }
                assert_eq!(
                    v2.member(member).unwrap().keys,
                    v1.member(member).unwrap().keys,
                    "{case}"
                );
                v2.check().unwrap();
                // It is the canonical form a receiving node decodes.
                assert_eq!(
                    RosterDoc::decode_canonical(&v2.canonical_bytes()).unwrap(),
                    v2
                );
            }
            Err(text) => {
                let e = got.expect_err(case).to_string();
                assert!(e.contains(text), "{case}: {e:?} does not say {text:?}");
            }
        }
    }
    // A former member's pins cannot be set.
    let v2 = propose(
        &v1,
        &Change::Remove {
            member: "fj-cert".into(),
        },
        T0 + 1_000,
    )
    .unwrap();
    let gone = Change::SetPins {
        member: "fj-cert".into(),
        pins: vec![new.clone()],
    };
    assert_eq!(
        propose(&v2, &gone, T0 + 2_000).unwrap_err(),
        ChangeError::NoSuchMember("fj-cert".into())
    );
    assert_eq!(gone.describe(), "set-pins fj-cert (1 pin(s))");
    // The wire form: kebab-case op, like the other changes.
    let json = serde_json::to_value(&gone).unwrap();
    assert_eq!(json["op"], "set-pins");
    assert_eq!(serde_json::from_value::<Change>(json).unwrap(), gone);
}

#[test]
fn a_certificate_renewal_by_set_pins_needs_the_threshold_and_reaches_the_membership() {
    let f = Fed::new();
    let v1 = &f.v1.roster;
    let old = SpkiPin([1; 32]);
    let new = SpkiPin([0xab; 32]);
    let both = Change::SetPins {
        member: "ws-cert".into(),
        pins: vec![old.to_string(), new.to_string()],
    };
    let v2 = propose(v1, &both, T0 + 1_000).unwrap();
    assert_ne!(v2.hash(), v1.hash());
    // Same rule as every change: one signature is not enough, the threshold (2) is.
    assert_eq!(
        check_successor(v1, &v2, &sign_by(&v2, &[("to-cert", 2)]))
            .unwrap_err()
            .reason(),
        "roster_under_threshold"
    );
    assert_eq!(required_signatures(v1, &v2), 2);
    let items = vec![
        f.proposal("to-cert", &v2, both.clone()),
        f.approval("fj-cert", &v2),
    ];
    for order in permutations(&items) {
        let mut e = RosterEngine::new(f.v1.clone()).unwrap();
        assert!(feed(&mut e, &order).is_empty());
        assert_eq!(e.current().hash(), v2.hash());
        let m = e.current().roster.membership();
        assert_eq!(m.members["ws-cert"].tls_pins, vec![old, new]);
        assert_eq!(m.member_by_pin(&new).unwrap().id, "ws-cert");
        assert_eq!(m.member_by_pin(&old).unwrap().id, "ws-cert");
    }
    // Then only the new pin: the old one names nobody any more.
    let only_new = Change::SetPins {
        member: "ws-cert".into(),
        pins: vec![new.to_string()],
    };
    let v3 = propose(&v2, &only_new, T0 + 2_000).unwrap();
    check_successor(&v2, &v3, &sign_by(&v3, &[("ws-cert", 1), ("fj-cert", 3)])).unwrap();
    let m = v3.membership();
    assert_eq!(m.members["ws-cert"].tls_pins, vec![new]);
    assert!(m.member_by_pin(&old).is_none());
    assert_eq!(m.members["to-cert"].tls_pins, vec![SpkiPin([2; 32])]);
}
