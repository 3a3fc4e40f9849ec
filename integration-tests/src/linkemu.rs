//! A link emulator for tests and benchmarks (issue 12): a userspace TCP relay that gives the
//! connections between two sides, A and B, the bandwidth, round trip, loss and drops of a thin
//! link, per direction. Every connection that crosses the link (peer connections both ways, a
//! TAXII client's) shares the link's capacity in its direction, as on a real link.
//!
//! The model (see `docs/thin-links.md`):
//! - **Bandwidth**: a serializer per direction (`next_free`): a segment of at most `MSS` bytes
//!   departs when the link is free and occupies it for `len / rate`. The relay stops reading
//!   from the sender while more than `queue` of link time is scheduled ahead (the bottleneck's
//!   buffer; the sender's kernel buffers fill behind it, as on a real link).
//! - **Round trip**: a segment arrives one way (`rtt / 2`) after its departure ended; a new
//!   connection's first bytes depart one round trip after it was accepted (the SYN, SYN-ACK
//!   exchange the loopback hop does not have).
//! - **Loss**: a relay cannot drop segments of an end-to-end TCP connection (its two hops are
//!   loopback connections), so it models what a lost segment costs TCP: with probability
//!   `loss` per segment, the segment is sent twice (both copies occupy the link; the second is
//!   counted in `retransmitted`) and arrives one extra round trip later (fast retransmit), and
//!   every later byte of that connection and direction waits behind it (head-of-line
//!   blocking). The sending rate is not reduced (this kernel's congestion control is BBR, which
//!   does not back off on random loss). Not modelled: tail-loss probes (a lost last segment
//!   would cost about two round trips), slow start (a connection has the whole link from its
//!   first byte) and reordering.
//! - **Drops** (`Drops`: down `length` every `every`, first at `first_at` after the schedule's
//!   origin) in one of two modes (`DropMode`): `Stall` (default; real outages of seconds rarely
//!   reset TCP): every segment in flight or sent while the link is down is lost and resent by
//!   the sender's retransmission timer (RTO = rtt + 200 ms, doubling), so a connection resumes
//!   at its first retry after the link is back; connections survive. `Reset`: at each drop
//!   every open connection is closed at once and new ones are refused until the link is back.
//! - Manual control (`cut` / `stall` / `heal`): `cut` resets like `Reset`; `stall` holds every
//!   byte not yet scheduled (nothing is lost) until `heal`, then it is sent at the link's pace.
//!
//! Counters per direction: bytes sent onto the link (each byte once), bytes retransmitted
//! (loss and drops), wire bytes (their sum: what the link carried), and bytes delivered to
//! the far end so far.
//!
//! Owns: its listeners (127.0.0.1, port 0), one accept thread per relay, two threads per
//! direction of each connection, and a monitor thread for scheduled resets.
//! Must never: read or alter the forwarded bytes (TLS runs end to end through it), block
//! without a bound after the link is dropped, or outlive its `EmuLink`/`Relay` handles.

use std::io::{Read as _, Write as _};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};

use crate::proxy::Target;

/// Segment size of the model (an Ethernet MSS with TCP timestamps).
pub const MSS: usize = 1448;
/// The minimum retransmission timeout Linux adds to the round trip (`TCP_RTO_MIN`).
pub const RTO_EXTRA: Duration = Duration::from_millis(200);

/// What a drop does to open connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropMode {
    /// Connections survive; their bytes wait for the sender's retransmission timer.
    Stall,
    /// Every open connection is closed; new ones are refused while the link is down.
    Reset,
}

/// A periodic outage: down for `length` every `every`, the first starting `first_at` after
/// the schedule's origin (the link's creation, or `EmuLink::align_drops`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Drops {
    /// Period.
    pub every: Duration,
    /// Length of each outage.
    pub length: Duration,
    /// Start of the first outage after the origin.
    pub first_at: Duration,
}

impl Drops {
    /// Down `length` every `every`, the first outage at the end of the first period.
    pub fn new(every: Duration, length: Duration) -> Drops {
        Drops {
            every,
            length,
            first_at: every.saturating_sub(length),
        }
    }

    /// The end of the outage that contains or follows `at` (offset from the origin), and its
    /// start: `(start, end)`.
    fn outage_at_or_after(&self, at: Duration) -> (Duration, Duration) {
        if at < self.first_at {
            return (self.first_at, self.first_at + self.length);
        }
        let since = at - self.first_at;
        let k = (since.as_nanos() / self.every.as_nanos().max(1)) as u32;
        let start = self.first_at + self.every * k;
        if at < start + self.length {
            (start, start + self.length)
        } else {
            let next = start + self.every;
            (next, next + self.length)
        }
    }
}

/// A link profile: the same figures each way.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// Name as in issue 12 (`fibre`, `satellite`, `cable-cut`).
    pub name: String,
    /// Bits per second, each way.
    pub bandwidth_bps: u64,
    /// Round trip time.
    pub rtt: Duration,
    /// Probability that a segment is lost (and retransmitted).
    pub loss: f64,
    /// Periodic outages.
    pub drops: Option<Drops>,
    /// What an outage does to connections.
    pub drop_mode: DropMode,
    /// The bottleneck's buffer, in link time.
    pub queue: Duration,
    /// Seed of the loss draws.
    pub seed: u64,
}

impl Profile {
    /// The three profile names of issue 12, thickest first.
    pub const NAMES: [&'static str; 3] = ["fibre", "satellite", "cable-cut"];

    fn new(name: &str, bandwidth_bps: u64, rtt_ms: u64, loss: f64) -> Profile {
        Profile {
            name: name.to_string(),
            bandwidth_bps,
            rtt: Duration::from_millis(rtt_ms),
            loss,
            drops: None,
            drop_mode: DropMode::Stall,
            queue: Duration::from_millis(rtt_ms.max(50)),
            seed: 12,
        }
    }

    /// `fibre`: 100 Mbit/s each way, 20 ms round trip, no loss, no drops.
    pub fn fibre() -> Profile {
        Profile::new("fibre", 100_000_000, 20, 0.0)
    }

    /// `satellite`: 1 Mbit/s each way, 600 ms round trip, 1% loss, no drops.
    pub fn satellite() -> Profile {
        Profile::new("satellite", 1_000_000, 600, 0.01)
    }

    /// `cable-cut`: 128 kbit/s each way, 700 ms round trip, 5% loss, down 10 s every 60 s.
    pub fn cable_cut() -> Profile {
        let mut p = Profile::new("cable-cut", 128_000, 700, 0.05);
        p.drops = Some(Drops::new(Duration::from_secs(60), Duration::from_secs(10)));
        p
    }

    /// The profile of that name.
    pub fn named(name: &str) -> Option<Profile> {
        match name {
            "fibre" => Some(Profile::fibre()),
            "satellite" => Some(Profile::satellite()),
            "cable-cut" => Some(Profile::cable_cut()),
            _ => None,
        }
    }

    /// All three, thickest first.
    pub fn all() -> Vec<Profile> {
        vec![Profile::fibre(), Profile::satellite(), Profile::cable_cut()]
    }

    /// The same link without loss and drops (for the bandwidth check).
    #[must_use]
    pub fn lossless(mut self) -> Profile {
        self.loss = 0.0;
        self.drops = None;
        self
    }

    /// With other drops.
    #[must_use]
    pub fn with_drops(mut self, drops: Option<Drops>, mode: DropMode) -> Profile {
        self.drops = drops;
        self.drop_mode = mode;
        self
    }

    /// Bytes per second each way.
    pub fn bytes_per_sec(&self) -> f64 {
        self.bandwidth_bps as f64 / 8.0
    }

    /// Half the round trip.
    pub fn one_way(&self) -> Duration {
        self.rtt / 2
    }

    /// The sender's retransmission timeout on this link.
    pub fn rto(&self) -> Duration {
        self.rtt + RTO_EXTRA
    }

    /// Link time of `bytes`.
    pub fn tx_time(&self, bytes: usize) -> Duration {
        Duration::from_secs_f64(bytes as f64 / self.bytes_per_sec())
    }

    /// Wall time the link needs to carry `seconds` of transmission starting `from` after the
    /// drop schedule's origin, outages excluded (without drops: `seconds`).
    pub fn up_time_needed(&self, from: Duration, seconds: f64) -> f64 {
        let Some(d) = self.drops else {
            return seconds;
        };
        let mut t = from;
        let mut left = Duration::from_secs_f64(seconds.max(0.0));
        loop {
            let (start, end) = d.outage_at_or_after(t);
            if t >= start {
                t = end;
                continue;
            }
            let up = start - t;
            if up >= left {
                return (t + left - from).as_secs_f64();
            }
            left -= up;
            t = end;
        }
    }
}

/// A direction over the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// From side A to side B.
    AtoB,
    /// From side B to side A.
    BtoA,
}

impl Dir {
    fn idx(self) -> usize {
        match self {
            Dir::AtoB => 0,
            Dir::BtoA => 1,
        }
    }
    fn reverse(self) -> Dir {
        match self {
            Dir::AtoB => Dir::BtoA,
            Dir::BtoA => Dir::AtoB,
        }
    }
}

/// Counters of one direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DirStats {
    /// Bytes sent onto the link (each byte once).
    pub forwarded: u64,
    /// Bytes sent again (loss, drops).
    pub retransmitted: u64,
    /// Bytes handed to the far end so far (each byte once; bytes still on the link or lost
    /// in a reset are not).
    pub delivered: u64,
}

impl DirStats {
    /// What the link carried: forwarded + retransmitted.
    pub fn wire(&self) -> u64 {
        self.forwarded + self.retransmitted
    }

    /// `self - earlier`.
    #[must_use]
    pub fn since(&self, earlier: &DirStats) -> DirStats {
        DirStats {
            forwarded: self.forwarded.saturating_sub(earlier.forwarded),
            retransmitted: self.retransmitted.saturating_sub(earlier.retransmitted),
            delivered: self.delivered.saturating_sub(earlier.delivered),
        }
    }
}

/// Counters of both directions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// A → B.
    pub a_to_b: DirStats,
    /// B → A.
    pub b_to_a: DirStats,
    /// Connections accepted so far.
    pub connections: u64,
    /// Connections closed by a reset (drop in `Reset` mode, `cut`).
    pub resets: u64,
}

impl LinkStats {
    /// `self - earlier`.
    #[must_use]
    pub fn since(&self, earlier: &LinkStats) -> LinkStats {
        LinkStats {
            a_to_b: self.a_to_b.since(&earlier.a_to_b),
            b_to_a: self.b_to_a.since(&earlier.b_to_a),
            connections: self.connections.saturating_sub(earlier.connections),
            resets: self.resets.saturating_sub(earlier.resets),
        }
    }

    /// Wire bytes both ways.
    pub fn wire_total(&self) -> u64 {
        self.a_to_b.wire() + self.b_to_a.wire()
    }
}

#[derive(Debug)]
struct Pipe {
    state: Mutex<PipeState>,
    forwarded: AtomicU64,
    retransmitted: AtomicU64,
    delivered: AtomicU64,
}

#[derive(Debug)]
struct PipeState {
    next_free: Instant,
    rng: StdRng,
}

/// Manual state of the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Manual {
    Up,
    Stalled,
    Cut,
}

#[derive(Debug)]
struct Inner {
    profile: Profile,
    origin: Mutex<Instant>,
    pipes: [Pipe; 2],
    manual: Mutex<Manual>,
    /// Incremented at every reset; a connection from an older epoch is closed.
    epoch: AtomicU64,
    conns: Mutex<Vec<(u64, TcpStream, TcpStream)>>,
    closed: AtomicBool,
    connections: AtomicU64,
    resets: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Inner {
    fn manual(&self) -> Manual {
        *lock(&self.manual)
    }

    /// True while a scheduled outage is on.
    fn scheduled_down(&self, at: Instant) -> bool {
        let Some(d) = self.profile.drops else {
            return false;
        };
        let origin = *lock(&self.origin);
        let off = at.saturating_duration_since(origin);
        let (start, end) = d.outage_at_or_after(off);
        off >= start && off < end
    }

    /// If `[from, to]` meets a scheduled outage: the instant it ends.
    fn outage_between(&self, from: Instant, to: Instant) -> Option<Instant> {
        let d = self.profile.drops?;
        let origin = *lock(&self.origin);
        let off = from.saturating_duration_since(origin);
        let (start, end) = d.outage_at_or_after(off);
        if origin + start <= to {
            Some(origin + end)
        } else {
            None
        }
    }

    /// Shuts every open connection (reset).
    fn reset_all(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        let conns = std::mem::take(&mut *lock(&self.conns));
        for (_, a, b) in conns {
            self.resets.fetch_add(1, Ordering::Relaxed);
            let _ = a.shutdown(Shutdown::Both);
            let _ = b.shutdown(Shutdown::Both);
        }
    }

    /// Schedules `len` bytes read at `now` in direction `dir`; returns when they arrive.
    /// `resume` is the connection's own not-before (handshake, retransmission timer).
    fn schedule(&self, dir: Dir, now: Instant, len: usize, resume: &mut Instant) -> Instant {
        let p = &self.profile;
        let pipe = &self.pipes[dir.idx()];
        let mut st = lock(&pipe.state);
        let mut ready = now.max(*resume);
        let mut arrives = ready;
        let mut left = len;
        let mut retrans = 0u64;
        while left > 0 {
            let seg = left.min(MSS);
            let tx = p.tx_time(seg);
            let mut start = ready.max(st.next_free);
            let arrive = loop {
                let end = start + tx;
                let arrive = end + p.one_way();
                if p.drop_mode == DropMode::Stall
                    && let Some(up) = self.outage_between(start, arrive)
                {
                    // Lost in the outage: the retransmission timer retries, doubling.
                    retrans += seg as u64;
                    st.next_free = st.next_free.max(end.min(up));
                    let mut rto = p.rto();
                    let mut t = start + rto;
                    while t < up {
                        rto *= 2;
                        t += rto;
                    }
                    *resume = t;
                    start = t.max(st.next_free);
                    continue;
                }
                if p.loss > 0.0 && st.rng.random::<f64>() < p.loss {
                    retrans += seg as u64;
                    st.next_free = end + tx;
                    break arrive + p.rtt;
                }
                st.next_free = end;
                break arrive;
            };
            arrives = arrives.max(arrive);
            ready = start;
            left -= seg;
        }
        pipe.forwarded.fetch_add(len as u64, Ordering::Relaxed);
        pipe.retransmitted.fetch_add(retrans, Ordering::Relaxed);
        arrives
    }

    /// How long the reader must wait before reading more in `dir` (bottleneck buffer full).
    fn backlog_wait(&self, dir: Dir) -> Option<Duration> {
        let next_free = lock(&self.pipes[dir.idx()].state).next_free;
        let limit = Instant::now() + self.profile.queue;
        (next_free > limit).then(|| next_free - limit)
    }
}

/// An emulated link between side A and side B. Dropping it closes every connection through it.
#[derive(Debug)]
pub struct EmuLink {
    inner: Arc<Inner>,
    monitor: Option<JoinHandle<()>>,
}

impl EmuLink {
    /// A link with `profile`; its drop schedule starts now.
    pub fn new(profile: Profile) -> EmuLink {
        let now = Instant::now();
        let pipe = |k: u64| Pipe {
            state: Mutex::new(PipeState {
                next_free: now,
                rng: StdRng::seed_from_u64(profile.seed.wrapping_mul(31).wrapping_add(k)),
            }),
            forwarded: AtomicU64::new(0),
            retransmitted: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
        };
        let inner = Arc::new(Inner {
            pipes: [pipe(0), pipe(1)],
            profile,
            origin: Mutex::new(now),
            manual: Mutex::new(Manual::Up),
            epoch: AtomicU64::new(0),
            conns: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
            connections: AtomicU64::new(0),
            resets: AtomicU64::new(0),
        });
        let monitor = (inner.profile.drops.is_some() && inner.profile.drop_mode == DropMode::Reset)
            .then(|| {
                let inner = Arc::clone(&inner);
                std::thread::spawn(move || reset_monitor(&inner))
            });
        EmuLink { inner, monitor }
    }

    /// The profile.
    pub fn profile(&self) -> &Profile {
        &self.inner.profile
    }

    /// Restarts the drop schedule at `origin` (the first outage starts `first_at` after it).
    pub fn align_drops(&self, origin: Instant) {
        *lock(&self.inner.origin) = origin;
    }

    /// The drop schedule's origin.
    pub fn drops_origin(&self) -> Instant {
        *lock(&self.inner.origin)
    }

    /// The scheduled outage that contains or follows `at`: `(start, end)` (None without drops).
    pub fn outage_at_or_after(&self, at: Instant) -> Option<(Instant, Instant)> {
        let d = self.inner.profile.drops?;
        let origin = *lock(&self.inner.origin);
        let (start, end) = d.outage_at_or_after(at.saturating_duration_since(origin));
        Some((origin + start, origin + end))
    }

    /// When every connection whose bytes were lost in the outage `[start, end)` sends again:
    /// the latest first retry at or after `end` of a retransmission timer (RTO doubling) armed
    /// by a segment sent from one round trip before `start` (it was still in flight) to `end`,
    /// as `schedule` models it.
    pub fn settled_after_outage(&self, start: Instant, end: Instant) -> Instant {
        let rtt = self.inner.profile.rtt;
        let mut latest = end;
        let mut sent = start.checked_sub(rtt).unwrap_or(start);
        while sent < end {
            let mut rto = self.inner.profile.rto();
            let mut t = sent + rto;
            while t < end {
                rto *= 2;
                t += rto;
            }
            latest = latest.max(t);
            sent += Duration::from_millis(50);
        }
        latest
    }

    /// Cuts the link: every open connection is closed, new ones are refused until `heal`.
    pub fn cut(&self) {
        *lock(&self.inner.manual) = Manual::Cut;
        self.inner.reset_all();
    }

    /// Stalls the link: nothing more is sent (nothing is lost) until `heal`.
    pub fn stall(&self) {
        *lock(&self.inner.manual) = Manual::Stalled;
    }

    /// Ends a `cut` or `stall`.
    pub fn heal(&self) {
        *lock(&self.inner.manual) = Manual::Up;
    }

    /// True while the link is down (cut, stalled or in a scheduled outage).
    pub fn is_down(&self) -> bool {
        self.inner.manual() != Manual::Up || self.inner.scheduled_down(Instant::now())
    }

    /// The counters so far.
    pub fn stats(&self) -> LinkStats {
        let d = |k: usize| DirStats {
            forwarded: self.inner.pipes[k].forwarded.load(Ordering::Relaxed),
            retransmitted: self.inner.pipes[k].retransmitted.load(Ordering::Relaxed),
            delivered: self.inner.pipes[k].delivered.load(Ordering::Relaxed),
        };
        LinkStats {
            a_to_b: d(0),
            b_to_a: d(1),
            connections: self.inner.connections.load(Ordering::Relaxed),
            resets: self.inner.resets.load(Ordering::Relaxed),
        }
    }

    /// A relay listening on `127.0.0.1:0`: whoever dials it is on side `dialer` (their bytes go
    /// `dialer → other side`), and it forwards to `target` (no target: connections are closed).
    pub fn relay(&self, dialer: Dir, target: Target) -> std::io::Result<Relay> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let inner = Arc::clone(&self.inner);
        let stop2 = Arc::clone(&stop);
        let thread =
            std::thread::spawn(move || accept_loop(&listener, &inner, dialer, &target, &stop2));
        Ok(Relay {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    /// A relay forwarding to a fixed address.
    pub fn relay_to(&self, dialer: Dir, to: SocketAddr) -> std::io::Result<Relay> {
        self.relay(dialer, Arc::new(Mutex::new(Some(to))))
    }
}

impl Drop for EmuLink {
    fn drop(&mut self) {
        self.inner.closed.store(true, Ordering::SeqCst);
        self.inner.reset_all();
        if let Some(m) = self.monitor.take() {
            let _ = m.join();
        }
    }
}

/// Resets every connection at the start of each scheduled outage (`DropMode::Reset`).
fn reset_monitor(inner: &Inner) {
    let mut was_down = false;
    while !inner.closed.load(Ordering::SeqCst) {
        let down = inner.scheduled_down(Instant::now());
        if down && !was_down {
            inner.reset_all();
        }
        was_down = down;
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// One listening end of the link. Dropping it stops accepting (open connections go on until
/// their link is dropped).
#[derive(Debug)]
pub struct Relay {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Relay {
    /// The address to dial.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn accept_loop(
    listener: &TcpListener,
    inner: &Arc<Inner>,
    dialer: Dir,
    target: &Target,
    stop: &AtomicBool,
) {
    while !stop.load(Ordering::SeqCst) && !inner.closed.load(Ordering::SeqCst) {
        let inbound = match listener.accept() {
            Ok((s, _)) => s,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(2));
                continue;
            }
            Err(_) => {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let refused = inner.manual() == Manual::Cut
            || (inner.profile.drop_mode == DropMode::Reset && inner.scheduled_down(Instant::now()));
        let to = *lock(target);
        let (Some(to), false) = (to, refused) else {
            drop(inbound);
            continue;
        };
        let Ok(outbound) = TcpStream::connect_timeout(&to, Duration::from_secs(2)) else {
            drop(inbound);
            continue;
        };
        if inbound.set_nonblocking(false).is_err() {
            continue;
        }
        let _ = inbound.set_nodelay(true);
        let _ = outbound.set_nodelay(true);
        start_connection(inner, dialer, inbound, outbound);
    }
}

/// Starts the two directions of one accepted connection.
fn start_connection(inner: &Arc<Inner>, dialer: Dir, inbound: TcpStream, outbound: TcpStream) {
    let clones = (inbound.try_clone(), outbound.try_clone());
    let (Ok(in2), Ok(out2)) = clones else {
        return;
    };
    let (Ok(in3), Ok(out3)) = (inbound.try_clone(), outbound.try_clone()) else {
        return;
    };
    let epoch = inner.epoch.load(Ordering::SeqCst);
    lock(&inner.conns).push((epoch, in3, out3));
    inner.connections.fetch_add(1, Ordering::Relaxed);
    // The first bytes wait for the TCP handshake's round trip.
    let not_before = Instant::now() + inner.profile.rtt;
    spawn_direction(inner, dialer, epoch, not_before, inbound, outbound);
    spawn_direction(inner, dialer.reverse(), epoch, not_before, out2, in2);
}

enum Msg {
    Data(Instant, Vec<u8>),
    End,
}

fn spawn_direction(
    inner: &Arc<Inner>,
    dir: Dir,
    epoch: u64,
    not_before: Instant,
    mut src: TcpStream,
    dst: TcpStream,
) {
    let (tx, rx) = mpsc::channel::<Msg>();
    let Ok(src_for_writer) = src.try_clone() else {
        return;
    };
    let reader_inner = Arc::clone(inner);
    std::thread::spawn(move || {
        let inner = reader_inner;
        let rate_chunk = (inner.profile.bytes_per_sec() / 1000.0) as usize;
        let mut buf = vec![0u8; rate_chunk.clamp(MSS, 64 * 1024)];
        let mut resume = not_before;
        let alive = |inner: &Inner| {
            !inner.closed.load(Ordering::SeqCst) && inner.epoch.load(Ordering::SeqCst) == epoch
        };
        loop {
            while let Some(w) = inner.backlog_wait(dir) {
                std::thread::sleep(w.min(Duration::from_millis(50)));
            }
            let n = match src.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            while inner.manual() == Manual::Stalled && alive(&inner) {
                std::thread::sleep(Duration::from_millis(2));
            }
            if !alive(&inner) {
                break;
            }
            let at = inner.schedule(dir, Instant::now(), n, &mut resume);
            if tx.send(Msg::Data(at, buf[..n].to_vec())).is_err() {
                break;
            }
        }
        let _ = tx.send(Msg::End);
    });
    let writer_inner = Arc::clone(inner);
    std::thread::spawn(move || {
        let inner = writer_inner;
        let mut dst = dst;
        while let Ok(msg) = rx.recv() {
            match msg {
                Msg::Data(at, bytes) => {
                    let now = Instant::now();
                    if at > now {
                        std::thread::sleep(at - now);
                    }
                    if inner.closed.load(Ordering::SeqCst)
                        || inner.epoch.load(Ordering::SeqCst) != epoch
                        || dst.write_all(&bytes).is_err()
                    {
                        let _ = src_for_writer.shutdown(Shutdown::Both);
                        let _ = dst.shutdown(Shutdown::Both);
                        return;
                    }
                    inner.pipes[dir.idx()]
                        .delivered
                        .fetch_add(bytes.len() as u64, Ordering::Relaxed);
                }
                Msg::End => break,
            }
        }
        let _ = dst.shutdown(Shutdown::Write);
    });
}

/// What `check_profile` measured.
#[derive(Debug, Clone)]
pub struct LinkCheck {
    /// The profile checked.
    pub profile: Profile,
    /// Median of the measured round trips (1-byte ping-pong on an open connection; includes
    /// the machine's thread wake-up latency, which a loaded machine adds on top of the link).
    pub rtt: Duration,
    /// Smallest measured round trip (the link's own, scheduling noise mostly excluded).
    pub rtt_min: Duration,
    /// Bytes of the bulk transfer.
    pub bytes: u64,
    /// From the first byte written to the last byte read.
    pub elapsed: Duration,
    /// `bytes × 8 / (elapsed − one way)`.
    pub goodput_bps: f64,
    /// Wire bytes of the transfer (forwarded + retransmitted) in its direction.
    pub wire: DirStats,
}

impl LinkCheck {
    /// Goodput as a fraction of the nominal bandwidth.
    pub fn bandwidth_fraction(&self) -> f64 {
        self.goodput_bps / self.profile.bandwidth_bps as f64
    }

    /// Median measured round trip ÷ nominal.
    pub fn rtt_ratio(&self) -> f64 {
        self.rtt.as_secs_f64() / self.profile.rtt.as_secs_f64()
    }

    /// Smallest measured round trip ÷ nominal.
    pub fn rtt_min_ratio(&self) -> f64 {
        self.rtt_min.as_secs_f64() / self.profile.rtt.as_secs_f64()
    }
}

/// Runs a plain bulk transfer of `bytes` and 9 to 40 ping-pongs (as many as fit in about a
/// second: a short round trip needs more samples for its minimum to escape a loaded machine's
/// scheduling delays, which are a larger fraction of it) through a fresh link of `profile`
/// (a sink on 127.0.0.1:0 behind it) and reports goodput and round trip. Bounded: fails after
/// four times the transfer's expected time plus 10 s.
pub fn check_profile(profile: &Profile, bytes: u64) -> std::io::Result<LinkCheck> {
    let link = EmuLink::new(profile.clone());
    let sink = TcpListener::bind("127.0.0.1:0")?;
    let relay = link.relay_to(Dir::AtoB, sink.local_addr()?)?;
    let expected = profile.tx_time(usize::try_from(bytes).unwrap_or(usize::MAX)) + profile.rtt * 4;
    let bound = expected * 4 + Duration::from_secs(10);
    let (done_tx, done_rx) = mpsc::channel::<std::io::Result<Instant>>();
    let server = std::thread::spawn(move || {
        let r = (|| -> std::io::Result<Instant> {
            let (mut s, _) = sink.accept()?;
            s.set_nodelay(true)?;
            s.set_read_timeout(Some(bound))?;
            let mut one = [0u8; 1];
            loop {
                s.read_exact(&mut one)?;
                match one[0] {
                    b'p' => s.write_all(b"p")?,
                    b'b' => break,
                    _ => return Err(std::io::Error::other("unexpected byte")),
                }
            }
            let mut len = [0u8; 8];
            s.read_exact(&mut len)?;
            let mut left = u64::from_be_bytes(len);
            let mut buf = vec![0u8; 64 * 1024];
            while left > 0 {
                let n = s.read(&mut buf)?;
                if n == 0 {
                    return Err(std::io::Error::other("sink: early end"));
                }
                left = left.saturating_sub(n as u64);
            }
            let t = Instant::now();
            s.write_all(b"d")?;
            Ok(t)
        })();
        let _ = done_tx.send(r);
    });
    let mut c = TcpStream::connect(relay.addr())?;
    c.set_nodelay(true)?;
    c.set_read_timeout(Some(bound))?;
    let mut rtts = Vec::new();
    let mut one = [0u8; 1];
    let pings = (1000 / profile.rtt.as_millis().max(1)).clamp(9, 40);
    for k in 0..=pings {
        let t = Instant::now();
        c.write_all(b"p")?;
        c.read_exact(&mut one)?;
        if k > 0 {
            // The first includes the emulated TCP handshake.
            rtts.push(t.elapsed());
        }
    }
    rtts.sort();
    let before = link.stats();
    c.write_all(b"b")?;
    c.write_all(&bytes.to_be_bytes())?;
    let t0 = Instant::now();
    let block = vec![0x5au8; 64 * 1024];
    let mut left = bytes;
    while left > 0 {
        let n = usize::try_from(left.min(block.len() as u64)).unwrap_or(block.len());
        c.write_all(&block[..n])?;
        left -= n as u64;
    }
    let t1 = done_rx
        .recv_timeout(bound)
        .map_err(|_| std::io::Error::other("bulk transfer did not finish in time"))??;
    c.read_exact(&mut one)?;
    let _ = server.join();
    let wire = link.stats().since(&before).a_to_b;
    let elapsed = t1.saturating_duration_since(t0);
    let net = elapsed
        .saturating_sub(profile.one_way())
        .as_secs_f64()
        .max(1e-9);
    Ok(LinkCheck {
        profile: profile.clone(),
        rtt: rtts[rtts.len() / 2],
        rtt_min: rtts[0],
        bytes,
        elapsed,
        goodput_bps: bytes as f64 * 8.0 / net,
        wire,
    })
}

/// A bulk size that takes about `seconds` on `profile` (at least 16 KiB).
pub fn bulk_bytes(profile: &Profile, seconds: f64) -> u64 {
    ((profile.bytes_per_sec() * seconds) as u64).max(16 * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outages_repeat_every_period() {
        let d = Drops::new(Duration::from_secs(60), Duration::from_secs(10));
        assert_eq!(
            d.outage_at_or_after(Duration::ZERO),
            (Duration::from_secs(50), Duration::from_secs(60))
        );
        assert_eq!(
            d.outage_at_or_after(Duration::from_secs(55)),
            (Duration::from_secs(50), Duration::from_secs(60))
        );
        assert_eq!(
            d.outage_at_or_after(Duration::from_secs(60)),
            (Duration::from_secs(110), Duration::from_secs(120))
        );
    }

    #[test]
    fn up_time_needed_skips_outages() {
        let p = Profile::cable_cut();
        // 50 s up, then 10 s down: 55 s of transmission from 0 ends at 65 s.
        assert!((p.up_time_needed(Duration::ZERO, 55.0) - 65.0).abs() < 1e-6);
        assert!((p.up_time_needed(Duration::ZERO, 20.0) - 20.0).abs() < 1e-6);
        // Starting inside an outage waits for its end.
        assert!((p.up_time_needed(Duration::from_secs(55), 1.0) - 6.0).abs() < 1e-6);
        assert!((Profile::satellite().up_time_needed(Duration::ZERO, 3.0) - 3.0).abs() < 1e-9);
    }
}
