//! Flow control per peer: how many envelope bytes may be in flight to (pushes) and from
//! (fetches) a peer, sized to the link's bandwidth-delay product measured from our own
//! requests, so that a fresh push never queues behind more than about one round trip of
//! backlog on the link (issue 12) while the link still never idles between batches.
//!
//! - **Round trip**: the smallest request duration (sent → answered) of the last
//!   [`RTT_WINDOW_MS`]; reconciliation rounds and single-item pushes make it close to the
//!   link's round trip.
//! - **Delivery rate**, per direction, as BBR measures it: at each answer, the envelope bytes
//!   delivered (answered) since the request was sent ÷ the time since the delivery that preceded
//!   its sending; the largest sample of the last [`RATE_WINDOW_MS`]. A sample from a request
//!   sent while less than half the window was in flight (application-limited: a trickle of
//!   fresh items, not a backlog) only counts if it raises the estimate, so quiet periods never
//!   shrink the window.
//! - **Window** = [`GAIN`] × rate × round trip, at least [`MIN_WINDOW_MS`] of the rate, between
//!   [`MIN_WINDOW`] and the configured ceiling; before the first measurement, the configured initial window. A batch is the
//!   window ÷ `max_in_flight` (so that many are in flight), at most `backlog_batch_bytes`.
//!
//! Bytes are envelope bytes as stored (before compression), in both the rate and the window,
//! so the compression ratio cancels out.
//!
//! Owns: the estimates and the window arithmetic. Must never: read a clock (time is passed
//! in), decide what is sent (the core does), or hold per-item state.

use std::collections::VecDeque;

/// Window = `GAIN` × bandwidth-delay product: one product on the link, one queued behind it,
/// so the next batch is there when the link frees (BBR's congestion-window gain).
pub(crate) const GAIN: u64 = 2;
/// The smallest window (envelope bytes): a few advisories.
pub(crate) const MIN_WINDOW: u64 = 32 * 1024;
/// The smallest batch (envelope bytes).
pub(crate) const MIN_BATCH: u64 = 16 * 1024;
/// The window never holds less than this much of the measured delivery rate (ms). On a link
/// whose round trip is short against the time a batch takes to be stored (loopback, a LAN,
/// fibre to a busy member), twice the bandwidth-delay product is a few kilobytes, and batches of
/// [`MIN_BATCH`] leave the receiver paying a request, a verification task and a commit with its
/// fdatasync per ~30 advisories (replication bench, 100,000 advisories: 4,449/s with this floor
/// at 0, 5,373/s at 100 ms). What it costs: a fresh item may wait behind up to this much
/// backlog. Thin links never reach it (`satellite` and `cable-cut`: 16 kB/s × 0.1 s is far below
/// [`MIN_WINDOW`]).
pub(crate) const MIN_WINDOW_MS: u64 = 100;
/// How long a delivery-rate sample counts (ms).
pub(crate) const RATE_WINDOW_MS: u64 = 10_000;
/// How long a round-trip sample counts (ms): long, because request durations under load include
/// the queue the window itself keeps (a shorter memory would let the window feed on its own
/// queue); reconciliation rounds, every interval, keep it fresh.
pub(crate) const RTT_WINDOW_MS: u64 = 300_000;
/// Samples kept per filter (the oldest go first beyond it).
const MAX_SAMPLES: usize = 64;

/// Direction of the envelope bytes of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dir {
    /// Pushes: envelopes we send.
    Out,
    /// Fetches: envelopes the peer sends us.
    In,
}

/// A windowed extremum: the max (or min) of the samples of the last `window_ms` before the
/// newest one (when no sample came for longer, the last extremum stays).
#[derive(Debug, Clone, Default)]
struct Windowed {
    /// (time, value), values monotonic (decreasing for a max filter, increasing for a min).
    samples: VecDeque<(u64, u64)>,
}

impl Windowed {
    fn update(&mut self, now_ms: u64, v: u64, window_ms: u64, max: bool) {
        let dominated = |old: u64| if max { old <= v } else { old >= v };
        while self.samples.back().is_some_and(|&(_, old)| dominated(old)) {
            self.samples.pop_back();
        }
        self.samples.push_back((now_ms, v));
        self.expire(now_ms, window_ms);
        while self.samples.len() > MAX_SAMPLES {
            self.samples.pop_front();
        }
    }

    fn expire(&mut self, now_ms: u64, window_ms: u64) {
        let old = |t: u64| now_ms.saturating_sub(t) > window_ms;
        if self.samples.back().is_some_and(|&(t, _)| old(t)) {
            // Nothing newer came: the extremum of the last samples stays.
            self.samples.truncate(1);
            return;
        }
        while self.samples.len() > 1
            && self
                .samples
                .front()
                .is_some_and(|&(t, _)| now_ms.saturating_sub(t) > window_ms)
        {
            self.samples.pop_front();
        }
    }

    fn get(&self) -> Option<u64> {
        self.samples.front().map(|&(_, v)| v)
    }
}

/// What the estimator remembers of a request when it is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SendMark {
    pub(crate) sent_ms: u64,
    delivered: u64,
    delivered_ms: u64,
    app_limited: bool,
}

/// Delivery-rate estimate of one direction.
#[derive(Debug, Clone, Default)]
struct Rate {
    /// Envelope bytes answered so far.
    delivered: u64,
    /// When `delivered` last grew (or the flight started).
    delivered_ms: u64,
    /// Requests of this direction in flight.
    in_flight: usize,
    /// Bytes per second.
    max: Windowed,
}

/// The flow estimate of one peer.
#[derive(Debug, Clone, Default)]
pub(crate) struct Flow {
    rtt: Windowed,
    out: Rate,
    inb: Rate,
}

/// Window settings from `SyncConfig`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// The window before any measurement.
    pub(crate) initial: u64,
    /// The largest window.
    pub(crate) ceiling: u64,
    /// The largest batch.
    pub(crate) max_batch: u64,
    /// Batches a window is split into (`max_in_flight`): requests are answered whole, so the
    /// next request of a pipeline goes out only when an answer has fully arrived; with `n`
    /// batches in flight, `(n - 1) / n` of the window must cover the bandwidth-delay product
    /// (with [`GAIN`] 2: exactly at `n` = 2, half a product to spare at 4 for the time an
    /// answer takes to be verified and stored, and for a lost segment's extra round trip).
    pub(crate) batches: u64,
}

impl Flow {
    fn rate_mut(&mut self, dir: Dir) -> &mut Rate {
        match dir {
            Dir::Out => &mut self.out,
            Dir::In => &mut self.inb,
        }
    }

    fn rate(&self, dir: Dir) -> &Rate {
        match dir {
            Dir::Out => &self.out,
            Dir::In => &self.inb,
        }
    }

    /// A request carrying envelope bytes in `dir` is sent now, with `in_flight_bytes` (itself
    /// included) of that direction in flight against `window` (below half of it, the request
    /// is application-limited).
    pub(crate) fn on_send(
        &mut self,
        now_ms: u64,
        dir: Dir,
        in_flight_bytes: u64,
        window: u64,
    ) -> SendMark {
        let r = self.rate_mut(dir);
        if r.in_flight == 0 {
            // A new flight: its rate is measured from now, not from the last answer.
            r.delivered_ms = now_ms;
        }
        r.in_flight += 1;
        SendMark {
            sent_ms: now_ms,
            delivered: r.delivered,
            delivered_ms: r.delivered_ms,
            app_limited: in_flight_bytes.saturating_mul(2) < window,
        }
    }

    /// A request without envelope bytes (a reconciliation round) was answered: a round trip.
    pub(crate) fn on_round_trip(&mut self, now_ms: u64, sent_ms: u64) {
        let rtt = now_ms.saturating_sub(sent_ms).max(1);
        self.rtt.update(now_ms, rtt, RTT_WINDOW_MS, false);
    }

    /// The request sent at `mark` was answered with `bytes` envelope bytes delivered.
    pub(crate) fn on_answer(&mut self, now_ms: u64, dir: Dir, mark: SendMark, bytes: u64) {
        self.on_round_trip(now_ms, mark.sent_ms);
        let r = self.rate_mut(dir);
        r.in_flight = r.in_flight.saturating_sub(1);
        r.delivered = r.delivered.saturating_add(bytes);
        r.delivered_ms = now_ms;
        let interval = now_ms.saturating_sub(mark.delivered_ms);
        let bytes_since = r.delivered.saturating_sub(mark.delivered);
        if interval == 0 || bytes_since == 0 {
            return;
        }
        let sample = bytes_since.saturating_mul(1000) / interval;
        r.max.expire(now_ms, RATE_WINDOW_MS);
        if !mark.app_limited || r.max.get().is_none_or(|m| sample > m) {
            r.max.update(now_ms, sample, RATE_WINDOW_MS, true);
        }
    }

    /// The request sent at `mark` failed: no sample.
    pub(crate) fn on_failure(&mut self, dir: Dir) {
        let r = self.rate_mut(dir);
        r.in_flight = r.in_flight.saturating_sub(1);
    }

    /// The smallest recent round trip (ms), if any was measured.
    pub(crate) fn min_rtt_ms(&self) -> Option<u64> {
        self.rtt.get()
    }

    /// The delivery rate of `dir` (envelope bytes/s), if measured.
    pub(crate) fn rate_bytes_per_s(&self, dir: Dir) -> Option<u64> {
        self.rate(dir).max.get()
    }

    /// Envelope bytes that may be in flight in `dir`.
    pub(crate) fn window(&self, dir: Dir, l: Limits) -> u64 {
        let ceiling = l.ceiling.max(MIN_WINDOW);
        match (self.rate_bytes_per_s(dir), self.min_rtt_ms()) {
            (Some(rate), Some(rtt)) => {
                let bdp = rate.saturating_mul(rtt) / 1000;
                let floor = rate.saturating_mul(MIN_WINDOW_MS) / 1000;
                GAIN.saturating_mul(bdp)
                    .max(floor)
                    .clamp(MIN_WINDOW, ceiling)
            }
            _ => l.initial.clamp(MIN_WINDOW, ceiling),
        }
    }

    /// Envelope bytes of one batch in `dir`: the window ÷ `batches`, at least [`MIN_BATCH`],
    /// at most `max_batch`. Before the direction is measured, half the initial window (two
    /// batches: the link's speed is unknown, and a request's deadline counts only the bytes
    /// ahead of it, so the first requests are not split into more that would share a link
    /// of unknown speed side by side).
    pub(crate) fn batch(&self, dir: Dir, l: Limits) -> u64 {
        let n = match (self.rate_bytes_per_s(dir), self.min_rtt_ms()) {
            (Some(_), Some(_)) => l.batches.max(1),
            _ => l.batches.clamp(1, 2),
        };
        (self.window(dir, l) / n).clamp(MIN_BATCH.min(l.max_batch), l.max_batch.max(1))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    const L: Limits = Limits {
        initial: 512 * 1024,
        ceiling: 4 * 1024 * 1024,
        max_batch: 256 * 1024,
        batches: 2,
    };

    /// A link of `rate` bytes/s and `rtt` ms, fed by a sender that keeps `window` bytes in
    /// flight in batches of `batch`: returns the estimator after `secs` of it.
    fn run_link(flow: &mut Flow, rate: u64, rtt: u64, secs: u64) {
        run_link_with(flow, L, rate, rtt, secs);
    }

    fn run_link_with(flow: &mut Flow, l: Limits, rate: u64, rtt: u64, secs: u64) {
        // Each request is answered once its bytes crossed the link (serialized) and the answer
        // came back: finish = max(link free, sent) + bytes/rate + rtt. A reconciliation round
        // measures the bare round trip first.
        let mut now = 1_000_000u64;
        flow.on_round_trip(now + rtt, now);
        now += rtt;
        let end = now + secs * 1000;
        let mut link_free = now;
        let mut in_flight: Vec<(u64, u64, SendMark)> = Vec::new(); // (answer at, bytes, mark)
        while now < end {
            let window = flow.window(Dir::Out, l);
            let batch = flow.batch(Dir::Out, l);
            let mut bytes_in_flight: u64 = in_flight.iter().map(|f| f.1).sum();
            while bytes_in_flight < window {
                bytes_in_flight += batch;
                let mark = flow.on_send(now, Dir::Out, bytes_in_flight, window);
                let start = link_free.max(now);
                link_free = start + batch * 1000 / rate;
                in_flight.push((link_free + rtt, batch, mark));
            }
            in_flight.sort_by_key(|f| f.0);
            let (at, bytes, mark) = in_flight.remove(0);
            now = at;
            flow.on_answer(now, Dir::Out, mark, bytes);
        }
    }

    #[test]
    fn the_window_converges_to_twice_the_bandwidth_delay_product() {
        // satellite-like: 300 kB/s of envelopes (1 Mbit/s compressed ~0.4), 600 ms.
        let mut f = Flow::default();
        assert_eq!(f.window(Dir::Out, L), L.initial, "no measurement yet");
        run_link(&mut f, 300_000, 600, 60);
        let rate = f.rate_bytes_per_s(Dir::Out).unwrap();
        assert!(
            (270_000..=310_000).contains(&rate),
            "rate {rate} B/s (link 300,000)"
        );
        assert_eq!(f.min_rtt_ms(), Some(600));
        let w = f.window(Dir::Out, L);
        assert!(
            (2 * 270 * 600..=2 * 310 * 600).contains(&w),
            "window {w} (2 × 300 kB/s × 0.6 s = 360 kB)"
        );
        assert_eq!(f.batch(Dir::Out, L), w / 2);
    }

    #[test]
    fn a_small_initial_window_grows_to_the_link() {
        // From the smallest window, a fast link (10 MB/s, 50 ms): the estimate doubles per round
        // trip until the link, not the window, limits the rate.
        let small = Limits {
            initial: MIN_WINDOW,
            ..L
        };
        let mut f = Flow::default();
        assert_eq!(f.window(Dir::Out, small), MIN_WINDOW);
        run_link_with(&mut f, small, 10_000_000, 50, 5);
        let w = f.window(Dir::Out, small);
        assert!(w >= 800_000, "window {w} after 5 s (2 × BDP = 1 MB)");
        assert!(w <= 1_050_000, "window {w} beyond 2 × BDP");
    }

    #[test]
    fn a_short_round_trip_still_gets_batches_of_a_tenth_of_a_second_of_the_rate() {
        // Loopback to a member that stores 4 MB/s of envelopes: the round trip (1 ms) makes
        // twice the bandwidth-delay product 8 kB; the window is 100 ms of the rate instead, in
        // `batches` batches, not the smallest window of 16 kB batches.
        let mut f = Flow::default();
        run_link(&mut f, 4_000_000, 1, 10);
        let rate = f.rate_bytes_per_s(Dir::Out).unwrap();
        assert!(rate >= 3_600_000, "rate {rate} B/s (link 4,000,000)");
        assert_eq!(f.min_rtt_ms(), Some(1));
        let w = f.window(Dir::Out, L);
        assert_eq!(w, rate * MIN_WINDOW_MS / 1000, "window {w}");
        assert!(
            f.batch(Dir::Out, L) >= 180_000,
            "batch {}",
            f.batch(Dir::Out, L)
        );
        // A link where the bandwidth-delay product is the larger keeps it (satellite-like).
        let mut g = Flow::default();
        run_link(&mut g, 300_000, 600, 30);
        let w = g.window(Dir::Out, L);
        assert!(w > 300_000 * MIN_WINDOW_MS / 1000 * 5, "window {w}");
    }

    #[test]
    fn quiet_periods_and_trickles_do_not_shrink_the_window() {
        let mut f = Flow::default();
        run_link(&mut f, 300_000, 600, 30);
        let before = f.window(Dir::Out, L);
        // Minutes later, single small pushes, each alone on the link (application-limited).
        let mut now = 10_000_000;
        for _ in 0..50 {
            let mark = f.on_send(now, Dir::Out, 1_000, before);
            now += 610;
            f.on_answer(now, Dir::Out, mark, 1_000);
            now += 5_000;
        }
        // The rate stays; the round trip is the trickle's own (610 ms, the 600 ms sample being
        // older than RTT_WINDOW_MS).
        let after = f.window(Dir::Out, L);
        assert!(
            after >= before && after <= before * 103 / 100,
            "{after} vs {before}"
        );
    }

    #[test]
    fn a_slower_link_shrinks_the_window_once_the_old_samples_expire() {
        let mut f = Flow::default();
        run_link(&mut f, 300_000, 600, 30);
        let fast = f.window(Dir::Out, L);
        run_link(&mut f, 30_000, 600, 60);
        let slow = f.window(Dir::Out, L);
        assert!(
            slow * 5 < fast,
            "window {slow} on a link 10× slower (was {fast})"
        );
        assert!(slow >= MIN_WINDOW);
    }

    #[test]
    fn directions_are_measured_apart_and_round_trips_are_shared() {
        let mut f = Flow::default();
        run_link(&mut f, 300_000, 600, 20);
        assert!(f.rate_bytes_per_s(Dir::In).is_none());
        assert_eq!(f.window(Dir::In, L), L.initial);
        let mark = f.on_send(0, Dir::In, 10_000, L.initial);
        f.on_answer(700, Dir::In, mark, 70_000);
        assert_eq!(f.rate_bytes_per_s(Dir::In), Some(100_000));
        assert_eq!(f.min_rtt_ms(), Some(600), "the smaller round trip stays");
        // 2 × 100 kB/s × 0.6 s.
        assert_eq!(f.window(Dir::In, L), 120_000);
        // A failed request leaves no sample and frees its place in the flight.
        let m = f.on_send(1_000, Dir::In, 10_000, L.initial);
        f.on_failure(Dir::In);
        let m2 = f.on_send(5_000, Dir::In, 10_000, 120_000);
        assert_eq!(
            m2.delivered_ms, 5_000,
            "a new flight starts at its first send"
        );
        assert_eq!(m.delivered_ms, 1_000);
    }

    #[test]
    fn the_window_is_bounded_both_ways() {
        let mut f = Flow::default();
        let mark = f.on_send(0, Dir::Out, 1, 1);
        f.on_answer(5_000, Dir::Out, mark, 10);
        assert_eq!(f.window(Dir::Out, L), MIN_WINDOW);
        assert_eq!(f.batch(Dir::Out, L), MIN_BATCH);
        let mut g = Flow::default();
        let mark = g.on_send(0, Dir::Out, 1, 1);
        g.on_answer(1_000, Dir::Out, mark, 1_000_000_000);
        assert_eq!(g.window(Dir::Out, L), L.ceiling);
        assert_eq!(g.batch(Dir::Out, L), L.max_batch);
    }
}
