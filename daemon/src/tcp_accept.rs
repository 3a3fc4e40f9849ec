//! The accept loop shared by every TCP listener of the daemon (peer port, operator TCP port,
//! TAXII): accept, hand each connection to a per-connection task (the TLS handshake, bounded in
//! time by the caller's task with the deadline given here), stop on cancellation, join every
//! task before returning.
//!
//! Owns: the loop; its bounds on connections being set up at once (a general pool, a share of
//! it per source address, and reserved capacity for the addresses of roster members, so that
//! idle connections from elsewhere can never lock members out); the handshake deadline (short
//! under pressure); counting and rate-limited logging of the connections it closes; and the
//! back-off after a failed `accept` (e.g. out of file descriptors).
//! Must never: read from a connection itself, return while a task it spawned still runs, or log
//! one line per closed connection.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Pause after a failed `accept` before trying again.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// Stable reason codes of connections closed by the accept loop or timed out in set-up (label
/// `reason` of `tanoa_listener_refused_total`).
pub(crate) mod closed {
    /// The source address already has `per_address` connections in set-up.
    pub(crate) const PER_ADDRESS: &str = "per_address_limit";
    /// The general pool of connections in set-up is full.
    pub(crate) const FULL: &str = "listener_full";
    /// The TLS handshake did not complete within the deadline.
    pub(crate) const HANDSHAKE_TIMEOUT: &str = "handshake_timeout";
}

/// The source addresses with reserved set-up capacity (the resolved endpoints of roster
/// members), shared with whoever refreshes them.
pub(crate) type ReservedAddrs = Arc<RwLock<HashSet<IpAddr>>>;

/// Called for every connection the loop closes or that timed out: `(listener, reason)`.
pub(crate) type ClosedHook = Arc<dyn Fn(&'static str, &'static str) + Send + Sync>;

/// Bounds of one listener's accept loop.
#[derive(Clone)]
pub(crate) struct AcceptLimits {
    /// Connections in set-up at once from addresses without reservation.
    pub max_setups: usize,
    /// Connections in set-up at once from one source address (IPv4 address, or IPv6 /64) without
    /// reservation.
    pub per_address: usize,
    /// Addresses with reserved capacity (not counted in `max_setups`).
    pub reserved: Option<ReservedAddrs>,
    /// Connections in set-up at once from one reserved address.
    pub reserved_per_address: usize,
    /// Handshake deadline.
    pub deadline: Duration,
    /// Handshake deadline of connections admitted while the general pool is at least half full.
    pub pressure_deadline: Duration,
    /// Counts closures (the node's metrics); `None` = only logged.
    pub on_closed: Option<ClosedHook>,
}

impl std::fmt::Debug for AcceptLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcceptLimits")
            .field("max_setups", &self.max_setups)
            .field("per_address", &self.per_address)
            .field("reserved_per_address", &self.reserved_per_address)
            .field("deadline", &self.deadline)
            .field("pressure_deadline", &self.pressure_deadline)
            .finish_non_exhaustive()
    }
}

/// Default bound of connections in set-up at once from unreserved addresses.
pub(crate) const MAX_SETUPS: usize = 256;
/// Default bound of connections in set-up at once from one unreserved address.
pub(crate) const PER_ADDRESS: usize = 8;
/// Default bound of connections in set-up at once from one reserved (roster) address.
pub(crate) const RESERVED_PER_ADDRESS: usize = 64;
/// Default handshake deadline.
pub(crate) const DEADLINE: Duration = Duration::from_secs(10);
/// Default handshake deadline under pressure.
pub(crate) const PRESSURE_DEADLINE: Duration = Duration::from_secs(2);
/// At most one log line per listener and period about closed connections.
pub(crate) const LOG_PERIOD: Duration = Duration::from_secs(10);

impl AcceptLimits {
    /// The defaults: 256 in set-up, 8 per address, 64 per reserved address, 10 s deadline,
    /// 2 s under pressure, no reservation, no counter.
    pub(crate) fn new() -> AcceptLimits {
        AcceptLimits {
            max_setups: MAX_SETUPS,
            per_address: PER_ADDRESS,
            reserved: None,
            reserved_per_address: RESERVED_PER_ADDRESS,
            deadline: DEADLINE,
            pressure_deadline: PRESSURE_DEADLINE,
            on_closed: None,
        }
    }
}

impl Default for AcceptLimits {
    fn default() -> Self {
        Self::new()
    }
}

/// The key a source address is limited by: an IPv4 address (IPv4-mapped IPv6 included), or
/// the /64 prefix of an IPv6 address (one host usually owns a whole /64).
pub(crate) fn address_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
    }
}

/// Lets through at most one log line per period; counts the events it held back.
#[derive(Debug)]
pub(crate) struct LogGate {
    period: Duration,
    state: Mutex<(Option<Instant>, u64)>,
}

impl LogGate {
    /// A gate letting one line through per `period`.
    pub(crate) fn new(period: Duration) -> LogGate {
        LogGate {
            period,
            state: Mutex::new((None, 0)),
        }
    }

    /// Records an event; `Some(n)` when it may be logged now, `n` = events held back since the
    /// last line logged.
    pub(crate) fn admit(&self) -> Option<u64> {
        self.admit_at(Instant::now())
    }

    fn admit_at(&self, now: Instant) -> Option<u64> {
        let mut s = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match s.0 {
            Some(last) if now.saturating_duration_since(last) < self.period => {
                s.1 += 1;
                None
            }
            _ => {
                let held = s.1;
                *s = (Some(now), 0);
                Some(held)
            }
        }
    }
}

/// Connections in set-up, by pool.
#[derive(Debug, Default)]
struct Occupancy {
    general: usize,
    per_key: HashMap<IpAddr, usize>,
}

/// Releases a connection's place when its task ends (or is aborted).
struct Slot {
    occ: Arc<Mutex<Occupancy>>,
    key: IpAddr,
    general: bool,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut o = self
            .occ
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.general {
            o.general = o.general.saturating_sub(1);
        }
        if let Some(n) = o.per_key.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                o.per_key.remove(&self.key);
            }
        }
    }
}

/// Admits a connection from `ip` or says why not; the deadline to apply when admitted.
fn admit(
    occ: &Arc<Mutex<Occupancy>>,
    limits: &AcceptLimits,
    ip: IpAddr,
) -> Result<(Slot, Duration), &'static str> {
    let key = address_key(ip);
    let reserved = limits.reserved.as_ref().is_some_and(|r| {
        r.read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(&ip.to_canonical())
    });
    let mut o = occ
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mine = o.per_key.get(&key).copied().unwrap_or(0);
    if reserved {
        if mine >= limits.reserved_per_address {
            return Err(closed::PER_ADDRESS);
        }
        *o.per_key.entry(key).or_insert(0) += 1;
        let slot = Slot {
            occ: Arc::clone(occ),
            key,
            general: false,
        };
        return Ok((slot, limits.deadline));
    }
    if mine >= limits.per_address {
        return Err(closed::PER_ADDRESS);
    }
    if o.general >= limits.max_setups {
        return Err(closed::FULL);
    }
    let deadline = if o.general.saturating_mul(2) >= limits.max_setups {
        limits.pressure_deadline.min(limits.deadline)
    } else {
        limits.deadline
    };
    o.general += 1;
    *o.per_key.entry(key).or_insert(0) += 1;
    let slot = Slot {
        occ: Arc::clone(occ),
        key,
        general: true,
    };
    Ok((slot, deadline))
}

/// Accepts connections on `listener` until `cancel`, running `setup(tcp, remote, deadline)`
/// for each admitted one in its own task; `setup` must bound its handshake by `deadline`.
/// Connections over the `limits` are closed at once, counted through `limits.on_closed` and
/// logged at most once per `LOG_PERIOD`. `what` names the listener in logs and metrics. Aborts
/// and joins the tasks at the end.
pub(crate) async fn accept_each<F, Fut>(
    listener: TcpListener,
    what: &'static str,
    limits: AcceptLimits,
    cancel: CancellationToken,
    setup: F,
) where
    F: Fn(TcpStream, SocketAddr, Duration) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut tasks = JoinSet::new();
    let occ = Arc::new(Mutex::new(Occupancy::default()));
    let gate = LogGate::new(LOG_PERIOD);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((tcp, remote)) => {
                    match admit(&occ, &limits, remote.ip()) {
                        Ok((slot, deadline)) => {
                            let _ = tcp.set_nodelay(true);
                            let fut = setup(tcp, remote, deadline);
                            tasks.spawn(async move {
                                let _slot = slot;
                                fut.await;
                            });
                        }
                        Err(reason) => {
                            drop(tcp);
                            if let Some(count) = &limits.on_closed {
                                count(what, reason);
                            }
                            if let Some(held) = gate.admit() {
                                tracing::warn!(%remote, listener = what, reason,
                                    closed_since_last_line = held,
                                    "too many connections being set up; closing new ones \
                                     (counted in tanoa_listener_refused_total, logged at most \
                                     every 10 s)");
                            }
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, listener = what, "accept failed");
                    tokio::time::sleep(ACCEPT_RETRY).await;
                }
            },
        }
    }
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn runs_a_task_per_connection_and_joins_them_on_cancel() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cancel = CancellationToken::new();
        let started = Arc::new(AtomicUsize::new(0));
        let finished = Arc::new(AtomicUsize::new(0));
        let (s, f) = (Arc::clone(&started), Arc::clone(&finished));
        let c2 = cancel.clone();
        let run = tokio::spawn(accept_each(
            listener,
            "test",
            AcceptLimits {
                max_setups: 2,
                ..AcceptLimits::new()
            },
            cancel.clone(),
            move |_, _, _| {
                let (s, f, c) = (Arc::clone(&s), Arc::clone(&f), c2.clone());
                async move {
                    s.fetch_add(1, Ordering::SeqCst);
                    // Each task lives until cancellation: the loop must abort it, not wait forever.
                    c.cancelled().await;
                    std::future::pending::<()>().await;
                    f.fetch_add(1, Ordering::SeqCst);
                }
            },
        ));
        let mut conns = Vec::new();
        for _ in 0..4 {
            conns.push(TcpStream::connect(addr).await.unwrap());
        }
        for _ in 0..200 {
            if started.load(Ordering::SeqCst) >= 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Give the loop time to see the two extra connections; they are over the bound.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(
            started.load(Ordering::SeqCst),
            2,
            "at most max_setups at once"
        );
        cancel.cancel();
        tokio::time::timeout(Duration::from_secs(5), run)
            .await
            .expect("the loop returns after cancel")
            .unwrap();
        assert_eq!(finished.load(Ordering::SeqCst), 0, "tasks were aborted");
    }

    async fn connect_from(src: &str, addr: SocketAddr) -> TcpStream {
        let s = tokio::net::TcpSocket::new_v4().unwrap();
        s.bind(SocketAddr::new(src.parse().unwrap(), 0)).unwrap();
        s.connect(addr).await.unwrap()
    }

    #[tokio::test]
    async fn limits_each_address_and_keeps_room_for_reserved_addresses() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cancel = CancellationToken::new();
        let started = Arc::new(Mutex::new(Vec::<(IpAddr, Duration)>::new()));
        let closed = Arc::new(Mutex::new(Vec::<&'static str>::new()));
        let reserved: ReservedAddrs = Arc::new(RwLock::new(
            ["127.0.0.1".parse().unwrap()].into_iter().collect(),
        ));
        let c = Arc::clone(&closed);
        let limits = AcceptLimits {
            max_setups: 4,
            per_address: 2,
            reserved: Some(reserved),
            reserved_per_address: 3,
            on_closed: Some(Arc::new(move |_, reason| c.lock().unwrap().push(reason))),
            ..AcceptLimits::new()
        };
        let s = Arc::clone(&started);
        let run = tokio::spawn(accept_each(
            listener,
            "test",
            limits,
            cancel.clone(),
            move |_, remote, deadline| {
                s.lock().unwrap().push((remote.ip(), deadline));
                std::future::pending::<()>()
            },
        ));
        let mut conns = Vec::new();
        // One address opening many: only 2 are set up.
        for _ in 0..10 {
            conns.push(connect_from("127.0.0.2", addr).await);
        }
        // Other addresses fill the general pool (4).
        for src in ["127.0.0.3", "127.0.0.4", "127.0.0.5"] {
            conns.push(connect_from(src, addr).await);
        }
        // A roster address still gets in, up to its own bound.
        for _ in 0..4 {
            conns.push(connect_from("127.0.0.1", addr).await);
        }
        let want = 2 + 2 + 3;
        for _ in 0..400 {
            if started.lock().unwrap().len() >= want && closed.lock().unwrap().len() >= 10 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let got = started.lock().unwrap().clone();
        let from = |ip: &str| {
            got.iter()
                .filter(|(a, _)| *a == ip.parse::<IpAddr>().unwrap())
                .count()
        };
        assert_eq!(from("127.0.0.2"), 2, "{got:?}");
        assert_eq!(
            from("127.0.0.1"),
            3,
            "reserved address admitted beyond a full pool: {got:?}"
        );
        assert_eq!(got.len(), want, "{got:?}");
        // The pool was half full from the third admission on: shorter deadlines.
        assert!(got.iter().any(|(_, d)| *d == PRESSURE_DEADLINE), "{got:?}");
        let closed = closed.lock().unwrap().clone();
        assert_eq!(
            closed.iter().filter(|r| **r == closed::PER_ADDRESS).count(),
            8 + 1
        );
        assert_eq!(closed.iter().filter(|r| **r == closed::FULL).count(), 1);
        cancel.cancel();
        tokio::time::timeout(Duration::from_secs(5), run)
            .await
            .expect("the loop returns after cancel")
            .unwrap();
    }

    #[test]
    fn log_gate_lets_one_line_per_period_and_counts_the_rest() {
        let gate = LogGate::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(gate.admit_at(t0), Some(0));
        assert_eq!(gate.admit_at(t0 + Duration::from_secs(1)), None);
        assert_eq!(gate.admit_at(t0 + Duration::from_secs(2)), None);
        assert_eq!(gate.admit_at(t0 + Duration::from_secs(11)), Some(2));
    }

    #[test]
    fn ipv6_addresses_are_limited_per_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        assert_eq!(address_key(a), address_key(b));
        let m: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(address_key(m), "192.0.2.1".parse::<IpAddr>().unwrap());
    }
}
