//! The crash test: a process publishes in a loop while the daemon is killed with SIGKILL at a
//! random moment, twenty times over on the same data directory. After every restart, every
//! publish that had been acknowledged must be present, verify under the member's key, and no
//! advisory may have gone back to an older revision.
//!
//! The kill delays come from a seeded RNG; the seed is printed (set `TANOA_CRASH_SEED` to
//! replay it, `TANOA_CRASH_CYCLES` to change the number of cycles).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use tanoa_daemon::envelope::{ItemId, Keyring};
use tanoa_integration_tests::{Ack, PublishLoop, TestNode, verify_envelope};
use tanoa_proto::v1 as pb;
use tanoa_proto::v1::operator_client::OperatorClient;
use tonic::transport::Channel;

use crate::bins;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

/// How many Get + verify checks run at once (the daemon re-verifies on Get; we verify again
/// here, so both cores stay busy).
const CHECKS_IN_FLIGHT: usize = 4;

/// Gets one acknowledged item by item id and checks it: the payload hashes to the item id, the
/// envelope verifies under the member's key (`envelope::verify`, as a partner would), it is the
/// acknowledged advisory and revision, and the daemon reports it valid. Returns the advisory
/// id when the item is a withdrawal tombstone.
async fn check_one(
    mut c: OperatorClient<Channel>,
    a: Ack,
    keyring: Keyring,
) -> Result<Option<String>, String> {
    let got = c
        .get(pb::GetRequest {
            id: a.item_id.clone(),
        })
        .await
        .map_err(|s| format!("{a:?}: {:?} {}", s.code(), s.message()))?
        .into_inner();
    let env = got.envelope.ok_or_else(|| format!("{a:?}: no envelope"))?;
    if ItemId::of_payload(&env.payload).to_hex() != a.item_id || got.item_id != a.item_id {
        return Err(format!("{a:?}: item id does not match the stored payload"));
    }
    if !got.verification.is_some_and(|v| v.valid) {
        return Err(format!("{a:?}: the daemon reports it invalid"));
    }
    let verified = tokio::task::spawn_blocking(move || verify_envelope(&env, &keyring))
        .await
        .map_err(|e| format!("{a:?}: verify task: {e}"))?
        .map_err(|e| format!("{a:?}: does not verify: {e}"))?;
    if verified.id != a.advisory_id || verified.revision != a.revision {
        return Err(format!(
            "{a:?}: payload says {}/{} revision {}",
            verified.origin, verified.id, verified.revision
        ));
    }
    Ok(verified.withdrawn.then(|| a.advisory_id.clone()))
}

/// None of the indicators of a withdrawn advisory (as its first revision listed them) is found
/// by search any more.
async fn check_withdrawn_not_searchable(c: &mut OperatorClient<Channel>, advisory_id: &str) {
    let latest = c
        .get(pb::GetRequest {
            id: advisory_id.to_string(),
        })
        .await
        .unwrap_or_else(|s| panic!("get {advisory_id}: {s}"))
        .into_inner();
    assert!(
        latest.advisory.is_some_and(|a| a.withdrawn),
        "{advisory_id}: not withdrawn"
    );
    let first = latest.history.first().expect("history").item_id.clone();
    let first = c
        .get(pb::GetRequest { id: first })
        .await
        .unwrap()
        .into_inner();
    for ind in first.advisory.unwrap().indicators {
        let hits = c
            .search_indicator(pb::SearchIndicatorRequest {
                value: ind.value.clone(),
                kind: ind.kind,
            })
            .await
            .unwrap()
            .into_inner();
        assert!(
            hits.hits.iter().all(|h| h
                .advisory
                .as_ref()
                .is_none_or(|s| s.advisory_id != advisory_id)),
            "withdrawn {advisory_id} is still found by searching {:?}",
            ind.value
        );
    }
}

/// Checks every ack with `check_one`; returns how many are present and verified and the
/// withdrawn advisories among them (panics listing every missing or bad one otherwise).
async fn check_present(
    c: &OperatorClient<Channel>,
    acks: &[Ack],
    keyring: &Keyring,
) -> (usize, Vec<String>) {
    let mut problems = Vec::new();
    let mut ok = 0;
    let mut withdrawn = Vec::new();
    let mut tasks = tokio::task::JoinSet::new();
    let mut pending = acks.iter().cloned();
    loop {
        while tasks.len() < CHECKS_IN_FLIGHT {
            let Some(a) = pending.next() else { break };
            tasks.spawn(check_one(c.clone(), a, keyring.clone()));
        }
        let Some(joined) = tasks.join_next().await else {
            break;
        };
        match joined {
            Ok(Ok(w)) => {
                ok += 1;
                withdrawn.extend(w);
            }
            Ok(Err(p)) => problems.push(p),
            Err(e) => problems.push(format!("check task failed: {e}")),
        }
    }
    assert!(
        problems.is_empty(),
        "{} of {} acknowledged publishes are missing or bad:\n{}",
        problems.len(),
        acks.len(),
        problems.join("\n")
    );
    (ok, withdrawn)
}

/// For each advisory in `highest`: its latest revision is at least the highest acknowledged
/// one, and (when `acks` is given) every acknowledged item of it is in its stored history.
/// One Get per advisory. Returns how many acks were found in histories.
async fn check_advisories(
    c: &mut OperatorClient<Channel>,
    highest: &BTreeMap<String, u64>,
    acks: &[Ack],
) -> usize {
    let mut by_advisory: HashMap<&str, Vec<&Ack>> = HashMap::new();
    for a in acks {
        by_advisory
            .entry(a.advisory_id.as_str())
            .or_default()
            .push(a);
    }
    let mut found = 0;
    for (id, rev) in highest {
        let got = c
            .get(pb::GetRequest { id: id.clone() })
            .await
            .unwrap_or_else(|s| panic!("get {id}: {s}"))
            .into_inner();
        let latest = got.advisory.map(|a| a.revision).unwrap_or_default();
        assert!(
            latest >= *rev,
            "advisory {id}: latest revision {latest} < acknowledged revision {rev}"
        );
        let history: HashMap<&str, u64> = got
            .history
            .iter()
            .map(|h| (h.item_id.as_str(), h.revision))
            .collect();
        for a in by_advisory.get(id.as_str()).into_iter().flatten() {
            assert_eq!(
                history.get(a.item_id.as_str()),
                Some(&a.revision),
                "acknowledged {a:?} is not in the history of {id}"
            );
            found += 1;
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_publishes_survive_sigkill_at_random_moments() {
    let cycles = env_u64("TANOA_CRASH_CYCLES").unwrap_or(20);
    let seed = env_u64("TANOA_CRASH_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    println!("crash test: {cycles} cycles, seed {seed} (replay: TANOA_CRASH_SEED={seed})");
    let mut rng = StdRng::seed_from_u64(seed);
    let b = bins();
    let mut node = TestNode::start_new(&b.tanoad, "ws-cert", "").await;
    let keyring = node.keyring();
    let loop_log = node.dir().join("publish-loop.stderr.log");

    let t0 = Instant::now();
    let mut all: Vec<Ack> = Vec::new();
    let mut highest: BTreeMap<String, u64> = BTreeMap::new();
    let mut revision_owner: HashMap<(String, u64), String> = HashMap::new();
    let mut cycles_with_acks = 0u64;
    let mut withdrawals = 0usize;
    for cycle in 0..cycles {
        let delay = Duration::from_millis(rng.random_range(50..=400));
        let mut lp = PublishLoop::spawn(&b.publish_loop, node.socket_path(), "crash", &loop_log);
        lp.wait_started(Duration::from_secs(20)).await;
        tokio::time::sleep(delay).await;
        assert!(
            lp.is_running(),
            "cycle {cycle}: the publish loop stopped before the daemon was killed:\n{}",
            lp.stderr()
        );
        node.kill9();
        let (status, acks) = lp.finish(Duration::from_secs(20)).await;
        assert_eq!(
            status.code(),
            Some(3),
            "cycle {cycle}: the publish loop should stop at its first failed publish ({status}):\n{}",
            lp.stderr()
        );
        drop(lp);

        node.start().await;
        let mut c = node.client().await;
        for a in &acks {
            if let Some(prev) =
                revision_owner.insert((a.advisory_id.clone(), a.revision), a.item_id.clone())
            {
                assert_eq!(
                    prev, a.item_id,
                    "cycle {cycle}: revision {} of {} acknowledged twice with different payloads",
                    a.revision, a.advisory_id
                );
            }
            let h = highest.entry(a.advisory_id.clone()).or_default();
            *h = (*h).max(a.revision);
        }
        let (present, withdrawn) = check_present(&c, &acks, &keyring).await;
        // The last withdrawals before the kill are the interesting ones (and searches are slow
        // in a debug build): their indicators must have left the index with the tombstone.
        let mut last_withdrawn: Vec<&str> = Vec::new();
        for a in acks.iter().rev() {
            if withdrawn.contains(&a.advisory_id) && !last_withdrawn.contains(&&*a.advisory_id) {
                last_withdrawn.push(&a.advisory_id);
            }
        }
        for id in last_withdrawn.into_iter().take(3) {
            check_withdrawn_not_searchable(&mut c, id).await;
        }
        withdrawals += withdrawn.len();
        let touched: BTreeMap<String, u64> = highest
            .iter()
            .filter(|(id, _)| acks.iter().any(|a| &a.advisory_id == *id))
            .map(|(id, r)| (id.clone(), *r))
            .collect();
        check_advisories(&mut c, &touched, &[]).await;
        if !acks.is_empty() {
            cycles_with_acks += 1;
        }
        all.extend(acks.iter().cloned());
        println!(
            "cycle {cycle:2}: killed {:3} ms after START: acked {:4}, present {:4}, \
             withdrawals {:3} (total acked {}, {:.1} s)",
            delay.as_millis(),
            acks.len(),
            present,
            withdrawn.len(),
            all.len(),
            t0.elapsed().as_secs_f64()
        );
    }

    // Everything acknowledged in any cycle is still there after all the crashes: in the
    // history of its advisory (one Get per advisory), and a random sample in full.
    let mut c = node.client().await;
    let present = check_advisories(&mut c, &highest, &all).await;
    assert_eq!(present, all.len());
    let sample: Vec<Ack> = rand::seq::IndexedRandom::choose_multiple(all.as_slice(), &mut rng, 100)
        .cloned()
        .collect();
    let _ = check_present(&c, &sample, &keyring).await;
    let status = c.status(pb::StatusRequest {}).await.unwrap().into_inner();
    let distinct = revision_owner.len() as u64;
    assert!(
        status.items >= distinct,
        "store holds {} items but {distinct} distinct publishes were acknowledged",
        status.items
    );
    // One writer assigning revisions from what is durable never signs two payloads for one
    // revision that both survive.
    assert_eq!(
        status.equivocations, 0,
        "the daemon equivocated with itself: {status:?}"
    );
    println!(
        "crash test: {cycles} SIGKILLs, {} writes acknowledged ({withdrawals} of them \
         withdrawals), {present} present after the last crash (each verified after its own), \
         {cycles_with_acks} cycles with acks, {} items stored, {} advisories, {:.1} s (seed {seed})",
        all.len(),
        status.items,
        status.advisories,
        t0.elapsed().as_secs_f64()
    );
    assert!(
        !all.is_empty(),
        "no publish was acknowledged: the test proved nothing"
    );
    assert!(
        cycles_with_acks * 2 > cycles,
        "only {cycles_with_acks} of {cycles} cycles had acknowledged publishes"
    );
    drop(c);
    node.stop().await;
}

/// The same under SIGTERM: a daemon stopped while publishes are in flight exits 0, and every
/// publish it acknowledged is there after the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_stop_under_load_keeps_every_acknowledged_publish() {
    let b = bins();
    let mut node = TestNode::start_new(&b.tanoad, "ws-cert", "").await;
    let keyring = node.keyring();
    let loop_log = node.dir().join("publish-loop.stderr.log");
    let mut total = 0;
    for (cycle, delay_ms) in [120u64, 250, 60].into_iter().enumerate() {
        let mut lp = PublishLoop::spawn(&b.publish_loop, node.socket_path(), "term", &loop_log);
        lp.wait_started(Duration::from_secs(20)).await;
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        assert!(
            lp.is_running(),
            "cycle {cycle}: loop stopped early:\n{}",
            lp.stderr()
        );
        node.stop().await;
        let (status, acks) = lp.finish(Duration::from_secs(20)).await;
        assert_eq!(
            status.code(),
            Some(3),
            "cycle {cycle}: {status}\n{}",
            lp.stderr()
        );
        node.start().await;
        let c = node.client().await;
        let (present, _) = check_present(&c, &acks, &keyring).await;
        assert_eq!(present, acks.len());
        total += acks.len();
        println!(
            "SIGTERM cycle {cycle}: acked {}, present {present}",
            acks.len()
        );
    }
    assert!(total > 0, "nothing was acknowledged");
    node.stop().await;
}
