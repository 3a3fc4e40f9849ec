//! Reconciliation cost of the sync core versus plain `negentropy` on the same sets.
//!
//! Two members hold N common GREEN items; the responder also holds d more. The initiator runs one
//! session through `SyncCore` (reconcile set built from the index, protobuf messages, then the
//! fetch of what it lacks) and, on the same sets, a bare negentropy exchange with the same frame
//! limit. Prints round trips, bytes each way, milliseconds, and our overhead ratios.
//!
//! Run: `cargo bench -p tanoa-daemon --bench reconcile` (N = 100,000; `-- 10000` for another N).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use negentropy::{Id, Negentropy, NegentropyStorageVector};
use sha2::{Digest, Sha256};
use tanoa_daemon::envelope::ItemId;
use tanoa_daemon::model::Tlp;
use tanoa_daemon::sync::{
    Action, FetchResponse, ItemMeta, PeerMessage, Source, SyncConfig, SyncCore,
};

const T0: i64 = 1_700_000_000_000;

fn meta(n: u64) -> ItemMeta {
    let id = ItemId(Sha256::digest(n.to_le_bytes()).into());
    // A few items share each millisecond, as in a busy federation.
    ItemMeta::new(
        id,
        "fj-cert",
        Tlp::Green,
        Vec::new(),
        T0 + (n / 3) as i64,
        1_500,
    )
}

#[derive(Debug, Default)]
struct Cost {
    rounds: usize,
    bytes_out: usize,
    bytes_in: usize,
    ms: f64,
    fetched: usize,
}

fn ours(common: u64, d: u64, cfg: &SyncConfig) -> Cost {
    let mut a = SyncCore::new(cfg.clone(), "ws-cert", ["to-cert"], 1, 0).unwrap();
    let mut b = SyncCore::new(cfg.clone(), "to-cert", ["ws-cert"], 2, 0).unwrap();
    for n in 0..common {
        let m = meta(n);
        a.item_accepted(0, &m, Source::Loaded);
        b.item_accepted(0, &m, Source::Loaded);
    }
    for n in 0..d {
        b.item_accepted(0, &meta(10_000_000 + n), Source::Loaded);
    }
    while a.poll_action().is_some() {}
    let mut c = Cost::default();
    let start = Instant::now();
    a.sync_now(1, Some("to-cert")).unwrap();
    while let Some(x) = a.poll_action() {
        match x {
            Action::Reconcile { req, msg, .. } => {
                c.rounds += 1;
                c.bytes_out += PeerMessage::ReconcileRequest(msg.clone())
                    .encode_body()
                    .len();
                let resp = b.handle_reconcile(1, "ws-cert", &msg).unwrap();
                c.bytes_in += PeerMessage::ReconcileResponse(resp.clone())
                    .encode_body()
                    .len();
                a.on_reconcile_response(1, "to-cert", req, &resp);
            }
            Action::Fetch { req, msg, .. } => {
                c.fetched += msg.item_ids.len();
                // Pretend the envelopes arrived and were accepted.
                for id in &msg.item_ids {
                    let m = ItemMeta { id: *id, ..meta(0) };
                    a.item_accepted(1, &m, Source::Peer("to-cert"));
                }
                a.on_fetch_response(1, "to-cert", req, &FetchResponse::default());
            }
            Action::Push { .. } | Action::WakeAt(_) => {}
        }
    }
    c.ms = start.elapsed().as_secs_f64() * 1e3;
    c
}

fn plain(common: u64, d: u64, frame: u64) -> Cost {
    let mut sa = NegentropyStorageVector::new();
    let mut sb = NegentropyStorageVector::new();
    for n in 0..common {
        let m = meta(n);
        sa.insert(m.timestamp, Id::from_byte_array(m.id.0)).unwrap();
        sb.insert(m.timestamp, Id::from_byte_array(m.id.0)).unwrap();
    }
    for n in 0..d {
        let m = meta(10_000_000 + n);
        sb.insert(m.timestamp, Id::from_byte_array(m.id.0)).unwrap();
    }
    let mut c = Cost::default();
    let start = Instant::now();
    sa.seal().unwrap();
    sb.seal().unwrap();
    let mut na = Negentropy::owned(sa, frame).unwrap();
    let mut nb = Negentropy::owned(sb, frame).unwrap();
    let mut msg = na.initiate().unwrap();
    let (mut have, mut need) = (Vec::new(), Vec::new());
    loop {
        c.rounds += 1;
        c.bytes_out += msg.len();
        let reply = nb.reconcile(&msg).unwrap();
        c.bytes_in += reply.len();
        match na.reconcile_with_ids(&reply, &mut have, &mut need).unwrap() {
            Some(next) => msg = next,
            None => break,
        }
    }
    c.fetched = need.len();
    c.ms = start.elapsed().as_secs_f64() * 1e3;
    c
}

fn main() {
    let common: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(100_000);
    let cfg = SyncConfig::default();
    println!(
        "reconciliation, {common} common items + d the initiator lacks; frame limit {} bytes",
        cfg.max_frame_bytes
    );
    println!(
        "| d | impl | round trips | bytes out | bytes in | ms | fetched | bytes ratio | time ratio |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for d in [0u64, 10, 1_000] {
        // Median of 3 runs for the times; sizes are deterministic.
        let mut o: Vec<Cost> = (0..3).map(|_| ours(common, d, &cfg)).collect();
        let mut p: Vec<Cost> = (0..3)
            .map(|_| plain(common, d, cfg.max_frame_bytes as u64))
            .collect();
        o.sort_by(|x, y| x.ms.total_cmp(&y.ms));
        p.sort_by(|x, y| x.ms.total_cmp(&y.ms));
        let (o, p) = (&o[1], &p[1]);
        let bytes_ratio = (o.bytes_out + o.bytes_in) as f64 / (p.bytes_out + p.bytes_in) as f64;
        println!(
            "| {d} | plain negentropy | {} | {} | {} | {:.1} | {} | | |",
            p.rounds, p.bytes_out, p.bytes_in, p.ms, p.fetched
        );
        println!(
            "| {d} | SyncCore | {} | {} | {} | {:.1} | {} | {:.3} | {:.2} |",
            o.rounds,
            o.bytes_out,
            o.bytes_in,
            o.ms,
            o.fetched,
            bytes_ratio,
            o.ms / p.ms
        );
    }
}
