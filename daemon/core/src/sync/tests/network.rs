//! Five members on the in-test network: convergence by push, by anti-entropy alone, under loss,
//! after restart, wipe and partition; TLP confinement checked on every message; non-interference
//! checked by comparing transcripts.

use super::net::{Net, TestItem, item};
use crate::model::Tlp;
use crate::sync::{PeerMessage, PushMode, SyncConfig};

const MEMBERS: [&str; 5] = ["ws-cert", "to-cert", "fj-cert", "au-acsc", "nz-ncsc"];
const A: usize = 0;
const B: usize = 1;
const C: usize = 2;
const D: usize = 3;
const E: usize = 4;
const INTERVAL: u64 = 30_000;
const T0: i64 = 1_700_000_000_000;

fn push_only(mode: PushMode) -> SyncConfig {
    SyncConfig {
        interval_ms: 0,
        reconcile_on_connect: false,
        push_mode: mode,
        ..SyncConfig::default()
    }
}

fn green(origin: usize, n: u64) -> TestItem {
    item(MEMBERS[origin], n, Tlp::Green, &[], T0 + n as i64)
}

fn pushed_items(net: &Net) -> usize {
    net.transcripts
        .iter()
        .flatten()
        .filter_map(|r| match PeerMessage::decode(&r.bytes, 1 << 24) {
            Ok(PeerMessage::PushRequest(p)) => Some(p.envelopes.len()),
            _ => None,
        })
        .sum()
}

#[test]
fn five_members_converge_on_green_with_pushes_only() {
    for mode in [PushMode::Tree, PushMode::Random] {
        let mut net = Net::new(&MEMBERS, push_only(mode), 1);
        for m in 0..5 {
            net.publish(m, &green(m, 1));
            net.publish(m, &green(m, 2));
        }
        net.run_for(1_000);
        assert!(net.converged(), "{mode:?}");
        assert_eq!(net.delivered.get("ReconcileRequest"), None, "{mode:?}");
        assert_eq!(net.delivered.get("FetchRequest"), None, "{mode:?}");
        let pushed = pushed_items(&net);
        if mode == PushMode::Tree {
            // 10 items × 4 receivers, each received exactly once.
            assert_eq!(pushed, 40);
        } else {
            assert!(pushed >= 40);
        }
    }
}

#[test]
fn anti_entropy_alone_converges_when_every_push_is_lost() {
    let mut net = Net::new(&MEMBERS, SyncConfig::default(), 2);
    net.drop_rule = Some(Box::new(|_, _, m| matches!(m, PeerMessage::PushRequest(_))));
    for m in 0..5 {
        for n in 0..4 {
            net.publish(m, &green(m, n));
        }
    }
    net.publish(
        A,
        &item("ws-cert", 90, Tlp::Amber, &["to-cert", "fj-cert"], T0),
    );
    net.publish(D, &item("au-acsc", 91, Tlp::Red, &["nz-ncsc"], T0));
    let took = net.run_until_converged(1_000, 10 * INTERVAL);
    assert!(took.is_some(), "not converged after 10 intervals");
    assert_eq!(net.delivered.get("PushRequest"), None);
    assert!(net.delivered.get("FetchRequest").copied().unwrap_or(0) > 0);
}

/// The restricted items of the mixed scenarios and who may not hold them.
fn restricted() -> Vec<(TestItem, usize, Vec<usize>)> {
    vec![
        (
            item("ws-cert", 100, Tlp::Amber, &["to-cert", "fj-cert"], T0),
            A,
            vec![D, E],
        ),
        (
            item(
                "fj-cert",
                101,
                Tlp::AmberStrict,
                &["ws-cert", "au-acsc"],
                T0,
            ),
            C,
            vec![B, E],
        ),
        (
            item("ws-cert", 102, Tlp::Red, &["to-cert"], T0),
            A,
            vec![C, D, E],
        ),
        (
            item("nz-ncsc", 103, Tlp::Red, &["ws-cert", "au-acsc"], T0),
            E,
            vec![B, C],
        ),
    ]
}

#[test]
fn amber_and_red_never_reach_anyone_else_not_even_as_an_id() {
    let mut net = Net::new(&MEMBERS, SyncConfig::default(), 3);
    net.loss_ppm = 150_000; // 15% of messages lost
    for m in 0..5 {
        net.publish(m, &green(m, 1));
    }
    for (it, origin, _) in restricted() {
        net.publish(origin, &it);
    }
    let took = net.run_until_converged(1_000, 12 * INTERVAL);
    assert!(took.is_some(), "not converged");
    net.run_for(3 * INTERVAL);
    assert!(net.lost > 0);
    for (it, _, outsiders) in restricted() {
        for &q in &outsiders {
            assert!(!net.nodes[q].store.contains_key(&it.meta.id));
            assert!(
                net.messages_to_containing(q, &it.meta.id.0).is_empty(),
                "{}: the id of {} reached it",
                MEMBERS[q],
                it.meta.id
            );
            assert!(
                net.messages_to_containing(q, &it.env.payload).is_empty(),
                "{}: the item {} reached it",
                MEMBERS[q],
                it.meta.id
            );
        }
    }
}

#[test]
fn red_recipients_never_relay() {
    // RED from ws to {to, fj}; the direct push to fj is lost, so fj must get it from ws again.
    let mut net = Net::new(&MEMBERS, SyncConfig::default(), 4);
    let red = item("ws-cert", 7, Tlp::Red, &["to-cert", "fj-cert"], T0);
    let payload = red.env.payload.clone();
    net.drop_rule = Some(Box::new(move |from, to, m| {
        from == A
            && to == C
            && matches!(m, PeerMessage::PushRequest(p) if p.envelopes.iter().any(|e| e.payload == payload))
    }));
    net.publish(A, &red);
    for m in 0..5 {
        net.publish(m, &green(m, 1));
    }
    assert!(net.run_until_converged(1_000, 10 * INTERVAL).is_some());
    net.run_for(3 * INTERVAL);
    assert!(net.nodes[C].store.contains_key(&red.meta.id));
    for (to, rec) in net.all_messages_containing(&red.env.payload) {
        assert_eq!(
            (rec.from, to == B || to == C),
            (A, true),
            "{} sent the RED item to {}",
            MEMBERS[rec.from],
            MEMBERS[to]
        );
    }
    // fj got it by reconciliation with ws (a fetch reply), not by push.
    let to_c = net.messages_to_containing(C, &red.env.payload);
    assert!(to_c.iter().all(|r| r.kind == "FetchResponse"), "{to_c:?}");
    // Nobody but the origin's two recipients ever saw its id, and to never offered it to fj.
    for q in [D, E] {
        assert!(net.messages_to_containing(q, &red.meta.id.0).is_empty());
    }
    assert!(
        net.transcripts[C]
            .iter()
            .filter(|r| r.from == B)
            .all(|r| !r.bytes.windows(32).any(|w| w == red.meta.id.0))
    );
}

/// Runs the same federation twice; the second run adds items `nz-ncsc` and `au-acsc` may not
/// hold. The network behaves the same in both runs: 10% loss on the links of au and nz, decided
/// by (link, message bytes, repetition), so the same message on the same link has the same fate.
/// (Links among the holders of the secrets stay lossless: a message that carries secrets differs
/// between the runs, so no loss model could give it "the same" fate in both.)
fn transcript_run(with_secrets: bool) -> Net {
    let mut net = Net::new(&MEMBERS, SyncConfig::default(), 5);
    net.loss_ppm = 100_000;
    net.lossy_links = Some(Box::new(|from, to| {
        [from, to].iter().any(|m| *m == D || *m == E)
    }));
    // Every push to nz is lost: it learns everything by reconciliation.
    net.drop_rule = Some(Box::new(|_, to, m| {
        to == E && matches!(m, PeerMessage::PushRequest(_))
    }));
    net.publish(A, &green(A, 1));
    net.publish(C, &green(C, 2));
    if with_secrets {
        net.publish(
            A,
            &item("ws-cert", 50, Tlp::Amber, &["to-cert", "fj-cert"], T0),
        );
        net.publish(B, &item("to-cert", 51, Tlp::Red, &["fj-cert"], T0));
        net.publish(
            C,
            &item(
                "fj-cert",
                52,
                Tlp::AmberStrict,
                &["ws-cert", "to-cert"],
                T0 + 1,
            ),
        );
    }
    net.run_for(INTERVAL / 2);
    net.publish(B, &green(B, 3));
    if with_secrets {
        net.publish(A, &item("ws-cert", 53, Tlp::Red, &["to-cert"], T0 + 2));
        for n in 0..40 {
            net.publish(
                C,
                &item("fj-cert", 60 + n, Tlp::Amber, &["to-cert"], T0 + n as i64),
            );
        }
    }
    net.run_for(8 * INTERVAL);
    net
}

#[test]
fn runs_differing_only_in_items_q_may_not_hold_send_q_identical_bytes() {
    let plain = transcript_run(false);
    let secret = transcript_run(true);
    assert!(plain.converged() && secret.converged());
    for q in [D, E] {
        let (x, y) = (&plain.transcripts[q], &secret.transcripts[q]);
        if let Some(i) = (0..x.len().min(y.len())).find(|&i| x[i] != y[i]) {
            eprintln!(
                "{}: first difference at message {i}: {:?} vs {:?}",
                MEMBERS[q],
                (x[i].at, MEMBERS[x[i].from], x[i].kind),
                (y[i].at, MEMBERS[y[i].from], y[i].kind)
            );
        }
        assert!(
            plain.transcripts[q].len() > 10,
            "{} saw little traffic",
            MEMBERS[q]
        );
        assert_eq!(
            plain.transcripts[q], secret.transcripts[q],
            "traffic to {} differs",
            MEMBERS[q]
        );
    }
    assert!(
        plain.transcripts[E]
            .iter()
            .any(|r| r.kind == "ReconcileResponse" || r.kind == "ReconcileRequest")
    );
    // Not vacuous: traffic to those who may hold the secrets did change.
    assert_ne!(plain.transcripts[B], secret.transcripts[B]);
    assert_ne!(plain.transcripts[C], secret.transcripts[C]);
}

#[test]
fn a_stopped_member_catches_up_after_restart() {
    let mut net = Net::new(&MEMBERS, SyncConfig::default(), 6);
    net.publish(A, &green(A, 1));
    net.run_for(1_000);
    net.stop(E);
    for m in 0..4 {
        net.publish(m, &green(m, 10));
    }
    net.publish(B, &item("to-cert", 11, Tlp::Amber, &["nz-ncsc"], T0));
    net.run_for(2 * INTERVAL);
    assert!(!net.converged());
    net.restart(E, false);
    let took = net.run_until_converged(100, 2 * INTERVAL);
    // Reconciliation at reconnect: well before the first anti-entropy tick.
    assert!(took.is_some_and(|t| t < 5_000), "{took:?}");
}

#[test]
fn a_wiped_member_is_restored_including_its_own_red_items() {
    let mut net = Net::new(&MEMBERS, SyncConfig::default(), 7);
    for m in 0..5 {
        net.publish(m, &green(m, 1));
    }
    net.publish(E, &item("nz-ncsc", 2, Tlp::Red, &["ws-cert"], T0));
    net.publish(E, &item("nz-ncsc", 3, Tlp::AmberStrict, &["fj-cert"], T0));
    net.publish(A, &item("ws-cert", 4, Tlp::Red, &["nz-ncsc"], T0));
    assert!(net.run_until_converged(100, 2 * INTERVAL).is_some());
    net.stop(E);
    net.run_for(1_000);
    net.restart(E, true);
    assert!(net.nodes[E].store.is_empty());
    assert!(net.run_until_converged(100, 3 * INTERVAL).is_some());
}

#[test]
fn a_healed_partition_converges() {
    let mut net = Net::new(&MEMBERS, SyncConfig::default(), 8);
    let side = |m: usize| m < 2; // {ws, to} | {fj, au, nz}
    net.drop_rule = Some(Box::new(move |from, to, _| side(from) != side(to)));
    for m in 0..5 {
        net.publish(m, &green(m, 1));
    }
    net.publish(
        C,
        &item("fj-cert", 2, Tlp::Amber, &["ws-cert", "au-acsc"], T0),
    );
    net.run_for(3 * INTERVAL);
    assert!(!net.converged());
    net.drop_rule = None;
    let took = net.run_until_converged(1_000, 6 * INTERVAL);
    assert!(took.is_some(), "not healed");
}

#[test]
fn twenty_percent_loss_converges_within_a_few_intervals() {
    let mut net = Net::new(&MEMBERS, SyncConfig::default(), 9);
    net.loss_ppm = 200_000;
    for m in 0..5 {
        for n in 0..10 {
            net.publish(m, &green(m, n));
        }
    }
    for (it, origin, _) in restricted() {
        net.publish(origin, &it);
    }
    let took = net.run_until_converged(1_000, 10 * INTERVAL);
    assert!(took.is_some(), "not converged with 20% loss");
}
