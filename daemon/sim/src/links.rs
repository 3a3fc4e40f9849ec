//! Access links of issue 12: one per member, named by a [`LinkProfile`], each with an uplink and
//! a downlink queue.
//!
//! Owns: when a message of a given size leaves its sender's uplink, when it reaches the
//! receiver's downlink and when it has crossed it (serialization at each end's bandwidth, first
//! in first out per member and direction, propagation of half of each end's round trip), whether
//! either end's link is down during that time (the `cable-cut` drops), and the bytes and busy
//! time of every queue. Times are kept in microseconds so that a fast link is not rounded to a
//! millisecond per message.
//! Must never: decide loss (the engine draws it from the seed, like every other fate of a
//! message), read a clock, or apply when a scenario names no profiles (the uniform
//! `LinkModel` path of the engine is then unchanged).

use super::scenario::{LinkProfile, LinkSpec};

/// The access links of every member.
#[derive(Debug, Clone)]
pub(crate) struct AccessLinks {
    specs: Vec<LinkSpec>,
    /// Offset of each member's drop cycle, ms (drawn from the seed by the engine).
    phase_ms: Vec<u64>,
    up_free_us: Vec<u64>,
    down_free_us: Vec<u64>,
    /// Bytes serialized on each member's uplink and downlink.
    pub(crate) up_bytes: Vec<u64>,
    pub(crate) down_bytes: Vec<u64>,
    /// Time each downlink spent serializing, µs.
    pub(crate) down_busy_us: Vec<u64>,
}

impl AccessLinks {
    /// Links for `profiles` (one per member), each member's drop cycle starting at `phase_ms`.
    pub(crate) fn new(profiles: &[LinkProfile], phase_ms: Vec<u64>) -> AccessLinks {
        let n = profiles.len();
        AccessLinks {
            specs: profiles.iter().map(|p| p.spec()).collect(),
            phase_ms,
            up_free_us: vec![0; n],
            down_free_us: vec![0; n],
            up_bytes: vec![0; n],
            down_bytes: vec![0; n],
            down_busy_us: vec![0; n],
        }
    }

    /// The member's link.
    pub(crate) fn spec(&self, m: usize) -> LinkSpec {
        self.specs[m]
    }

    /// µs to serialize `bytes` on member `m`'s link (either direction).
    pub(crate) fn tx_us(&self, m: usize, bytes: u64) -> u64 {
        let bps = self.specs[m].bits_per_s.max(1);
        (u128::from(bytes) * 8 * 1_000_000).div_ceil(u128::from(bps)) as u64
    }

    /// One-way propagation from `from` to `to`, µs: half of each end's round trip.
    pub(crate) fn propagation_us(&self, from: usize, to: usize) -> u64 {
        (self.specs[from].rtt_ms + self.specs[to].rtt_ms) * 1_000 / 2
    }

    /// Queues `bytes` on `from`'s uplink at `now_us`; returns when the message reaches `to`'s
    /// downlink.
    pub(crate) fn uplink(&mut self, from: usize, to: usize, now_us: u64, bytes: u64) -> u64 {
        let tx = self.tx_us(from, bytes);
        let start = self.up_free_us[from].max(now_us);
        self.up_free_us[from] = start + tx;
        self.up_bytes[from] += bytes;
        start + tx + self.propagation_us(from, to)
    }

    /// Queues `bytes` on `to`'s downlink at `arrive_us`; returns when it has been received.
    pub(crate) fn downlink(&mut self, to: usize, arrive_us: u64, bytes: u64) -> u64 {
        let tx = self.tx_us(to, bytes);
        let start = self.down_free_us[to].max(arrive_us);
        self.down_free_us[to] = start + tx;
        self.down_bytes[to] += bytes;
        self.down_busy_us[to] += tx;
        start + tx
    }

    /// Whether member `m`'s link is down at any moment of `[from_ms, to_ms]` (absolute ms).
    pub(crate) fn down_during(&self, m: usize, from_ms: u64, to_ms: u64) -> bool {
        let s = self.specs[m];
        if s.down_every_ms == 0 || s.down_ms == 0 {
            return false;
        }
        // Drops are [k·every + phase, k·every + phase + down) for every k.
        let period = s.down_every_ms;
        let phase = self.phase_ms[m] % period;
        let shifted = from_ms.saturating_sub(phase);
        let k = shifted / period;
        // The drop of the cycle `from_ms` falls in, and the next one.
        for c in [k, k + 1] {
            let start = c * period + phase;
            let end = start + s.down_ms;
            if start <= to_ms && from_ms < end {
                return true;
            }
        }
        // A window longer than one period cannot be crossed without meeting a drop.
        to_ms.saturating_sub(from_ms) >= period
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::scenario::link_bytes;

    #[test]
    fn serialization_queues_per_member_and_direction() {
        let mut l = AccessLinks::new(
            &[
                LinkProfile::Satellite,
                LinkProfile::Fibre,
                LinkProfile::Fibre,
            ],
            vec![0; 3],
        );
        // 1 Mbit/s: 125,000 bytes take one second.
        assert_eq!(l.tx_us(0, 125_000), 1_000_000);
        // 100 Mbit/s: 1,250 bytes take 100 µs (not rounded up to a millisecond).
        assert_eq!(l.tx_us(1, 1_250), 100);
        // Satellite to fibre: 300 ms + 10 ms of propagation.
        assert_eq!(l.propagation_us(0, 1), 310_000);
        let a = l.uplink(0, 1, 0, 125_000);
        assert_eq!(a, 1_000_000 + 310_000);
        // A second message on the same uplink waits for the first.
        let b = l.uplink(0, 2, 0, 125_000);
        assert_eq!(b, 2_000_000 + 310_000);
        // The other direction of the satellite link is free.
        let c = l.downlink(0, 0, 125_000);
        assert_eq!(c, 1_000_000);
        // Fibre downlinks: each their own queue.
        assert_eq!(l.downlink(1, a, 1_250), a + 100);
        assert_eq!(l.downlink(2, b, 1_250), b + 100);
        assert_eq!(l.down_bytes, vec![125_000, 1_250, 1_250]);
        assert_eq!(l.up_bytes, vec![250_000, 0, 0]);
    }

    #[test]
    fn cable_cut_drops_ten_seconds_every_minute() {
        let l = AccessLinks::new(
            &[LinkProfile::CableCut, LinkProfile::Satellite],
            vec![5_000, 5_000],
        );
        // Down in [5 s, 15 s), [65 s, 75 s), ...
        assert!(!l.down_during(0, 0, 4_999));
        assert!(l.down_during(0, 4_000, 5_000));
        assert!(l.down_during(0, 14_999, 14_999));
        assert!(!l.down_during(0, 15_000, 64_999));
        assert!(l.down_during(0, 64_000, 66_000));
        assert!(l.down_during(0, 70_000, 70_001));
        assert!(!l.down_during(0, 75_000, 124_999));
        assert!(l.down_during(0, 15_000, 15_000 + 60_000));
        // Satellite never drops.
        assert!(!l.down_during(1, 0, 1_000_000));
    }

    #[test]
    fn framing_is_counted_per_message_and_per_segment() {
        assert_eq!(link_bytes(0), 64 + 52);
        assert_eq!(link_bytes(1_448 - 64), 1_448 + 52);
        assert_eq!(link_bytes(1_448 - 63), 1_449 + 2 * 52);
    }
}
