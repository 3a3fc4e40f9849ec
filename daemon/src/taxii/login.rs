//! Failed-login limiting of the TAXII endpoint: a token bucket of failures per source address
//! (IPv4 address or IPv6 /64). Once a source's bucket is empty, its requests are answered 429
//! with `Retry-After` without checking their credentials, until a token has been refilled.
//!
//! Owns: the buckets (bounded in number), their refill, and the wait to announce.
//! Must never: charge a successful login, or grow without bound.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failed logins allowed in a burst from one source.
pub(crate) const BURST: u32 = 10;
/// One failed login more is allowed every this long.
pub(crate) const REFILL: Duration = Duration::from_secs(6);
/// Most sources tracked at once; beyond that, sources with a full bucket are forgotten first,
/// then every new source shares one bucket.
const MAX_SOURCES: usize = 16_384;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Tokens (failures still allowed) as of `at`.
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn refilled(self, now: Instant) -> Bucket {
        let gained = now.saturating_duration_since(self.at).as_secs_f64() / REFILL.as_secs_f64();
        Bucket {
            tokens: (self.tokens + gained).min(f64::from(BURST)),
            at: now,
        }
    }
}

/// Failure buckets by source.
#[derive(Debug, Default)]
pub(crate) struct LoginLimiter {
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

/// Key used for every new source once `MAX_SOURCES` are tracked.
const OVERFLOW: IpAddr = IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED);

impl LoginLimiter {
    /// `Err(wait)` when `ip` has no failed login left: answer 429, `Retry-After: wait`.
    pub(crate) fn check(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let key = crate::tcp_accept::address_key(ip);
        let map = self.lock();
        let b = map
            .get(&key)
            .or_else(|| map.get(&OVERFLOW).filter(|_| map.len() >= MAX_SOURCES));
        match b.map(|b| b.refilled(now)) {
            Some(b) if b.tokens < 1.0 => {
                let wait = REFILL.as_secs_f64() * (1.0 - b.tokens);
                Err(Duration::from_secs_f64(wait.max(0.0)))
            }
            _ => Ok(()),
        }
    }

    /// Charges a failed login from `ip`.
    pub(crate) fn failed(&self, ip: IpAddr, now: Instant) {
        let mut key = crate::tcp_accept::address_key(ip);
        let mut map = self.lock();
        if !map.contains_key(&key) && map.len() >= MAX_SOURCES {
            map.retain(|_, b| b.refilled(now).tokens < f64::from(BURST));
            if map.len() >= MAX_SOURCES {
                key = OVERFLOW;
            }
        }
        let fresh = Bucket {
            tokens: f64::from(BURST),
            at: now,
        };
        let b = map.entry(key).or_insert(fresh);
        let mut r = b.refilled(now);
        r.tokens = (r.tokens - 1.0).max(0.0);
        *b = r;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Bucket>> {
        self.buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_burst_of_failures_then_one_per_refill() {
        let l = LoginLimiter::default();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let other: IpAddr = "192.0.2.8".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..BURST {
            assert!(l.check(ip, t0).is_ok());
            l.failed(ip, t0);
        }
        let wait = l.check(ip, t0).unwrap_err();
        assert!(wait > Duration::from_secs(5) && wait <= REFILL, "{wait:?}");
        assert!(l.check(other, t0).is_ok(), "another source is not limited");
        assert!(
            l.check(ip, t0 + REFILL).is_ok(),
            "one more after the refill"
        );
        l.failed(ip, t0 + REFILL);
        assert!(l.check(ip, t0 + REFILL).is_err());
    }
}
