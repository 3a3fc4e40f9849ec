//! Deterministic, keyed pseudo-randomness for the sync core.
//!
//! Every random choice of the core (push targets, timer jitter, backoff jitter, session ids,
//! tie-breaks between peers) is `hash(seed, purpose, inputs)` rather than the next value of one
//! shared stream. A choice about item X or peer Q therefore never depends on how much randomness
//! other items or peers consumed before: two runs that differ only in items Q may not hold make
//! the same choices about Q (non-interference), and a simulator replays a seed exactly.
//! This is load spreading, not cryptography: SplitMix64 finalisers and FNV-1a are enough.

/// Purposes, mixed into every hash so that two uses never share values.
pub(crate) mod domain {
    pub(crate) const PUSH: u64 = 0x7075_7368;
    pub(crate) const TICK: u64 = 0x7469_636b;
    pub(crate) const BACKOFF: u64 = 0x6261_636b;
    pub(crate) const SESSION: u64 = 0x7365_7373;
    pub(crate) const RANK: u64 = 0x7261_6e6b;
    pub(crate) const TREE: u64 = 0x7472_6565;
}

/// SplitMix64 finaliser.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// FNV-1a 64 of a byte string (member ids).
pub(crate) fn fnv(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// First 8 bytes of a 32-byte id as a word (ids are SHA-256 outputs: already uniform).
pub(crate) fn id_word(id: &[u8; 32]) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&id[..8]);
    u64::from_le_bytes(w)
}

/// A keyed hash family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Prf {
    seed: u64,
}

impl Prf {
    /// A family keyed by `seed`.
    pub(crate) fn new(seed: u64) -> Self {
        Self { seed }
    }

    /// The family every member shares (for choices all members must agree on).
    pub(crate) fn shared() -> Self {
        Self::new(0x7461_6e6f_615f_7631) // "tanoa_v1"
    }

    /// Hash of `(seed, domain, words…)`.
    pub(crate) fn hash(&self, domain: u64, words: &[u64]) -> u64 {
        let mut h = mix(self.seed ^ mix(domain));
        for w in words {
            h = mix(h ^ *w);
        }
        h
    }

    /// Uniform in `0..n` (`n > 0`), from `(seed, domain, words…)`.
    pub(crate) fn below(&self, n: u64, domain: u64, words: &[u64]) -> u64 {
        let x = self.hash(domain, words);
        ((u128::from(x) * u128::from(n)) >> 64) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_depends_on_seed_domain_and_words() {
        let a = Prf::new(1);
        let b = Prf::new(2);
        assert_ne!(a.hash(domain::PUSH, &[7]), b.hash(domain::PUSH, &[7]));
        assert_ne!(a.hash(domain::PUSH, &[7]), a.hash(domain::TICK, &[7]));
        assert_ne!(a.hash(domain::PUSH, &[7]), a.hash(domain::PUSH, &[8]));
        assert_eq!(a.hash(domain::PUSH, &[7, 9]), a.hash(domain::PUSH, &[7, 9]));
    }

    #[test]
    fn below_is_in_range_and_spreads() {
        let p = Prf::new(42);
        let mut seen = [0u32; 10];
        for i in 0..10_000u64 {
            let v = p.below(10, domain::RANK, &[i]);
            assert!(v < 10);
            seen[v as usize] += 1;
        }
        // Each bucket near 1,000 (loose bound: a broken mapping puts everything in one bucket).
        assert!(seen.iter().all(|&c| (800..1200).contains(&c)), "{seen:?}");
    }
}
