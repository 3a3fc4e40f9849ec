//! Prometheus metrics of a node: a small registry of counters rendered by hand in the text
//! exposition format, and the HTTP endpoint serving it (`GET /metrics`).
//!
//! Owns: the process-wide counters that are not per-peer state of the sync core (TLS refusals by
//! reason, items accepted by source, malformed or oversized peer messages), the rendering of the
//! exposition text from those counters, the sync core's per-peer status and the store counts, and
//! the minimal HTTP/1.1 listener.
//! Must never: carry a label derived from an item (no item id, advisory id, origin of an item,
//! title or TLP of a particular item): the metrics of a member contain no trace of items it may
//! not hold. Labels are roster member ids and fixed reason codes only.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::store::{Counts, OriginEquivocations};
use crate::sync::{LinkState, PeerStatus};

/// Largest HTTP request head read by the metrics endpoint.
const MAX_REQUEST: usize = 8 * 1024;
/// Time a scraper has to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Counters of one node. Cheap to update from any task.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    refusals: Mutex<BTreeMap<&'static str, u64>>,
    accepted_local: AtomicU64,
    accepted_peer: AtomicU64,
    peer_messages_rejected: Mutex<BTreeMap<(String, &'static str), u64>>,
    listener_refused: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    taxii_logins: Mutex<BTreeMap<&'static str, u64>>,
    membership_changes: Mutex<BTreeMap<&'static str, u64>>,
    reloads: Mutex<BTreeMap<&'static str, u64>>,
    restart_required: Mutex<Vec<String>>,
    roster_version: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Metrics {
    /// Empty registry.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// A TLS connection was refused (`transport::refusal` code).
    pub(crate) fn refusal(&self, reason: &'static str) {
        *lock(&self.refusals).entry(reason).or_insert(0) += 1;
    }

    /// Refusals counted for `reason` so far.
    #[cfg(test)]
    pub(crate) fn refusals(&self, reason: &str) -> u64 {
        lock(&self.refusals).get(reason).copied().unwrap_or(0)
    }

    /// All refusals so far.
    pub(crate) fn refusals_total(&self) -> u64 {
        lock(&self.refusals).values().sum()
    }

    /// Items newly accepted (stored and indexed) from a local publish/import (`peer` None) or
    /// from a peer.
    pub(crate) fn accepted(&self, from_peer: bool, n: u64) {
        if from_peer {
            self.accepted_peer.fetch_add(n, Ordering::Relaxed);
        } else {
            self.accepted_local.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// A whole message from `peer` was refused before reaching the sync core (oversized,
    /// undecodable).
    pub(crate) fn peer_message_rejected(&self, peer: &str, reason: &'static str) {
        *lock(&self.peer_messages_rejected)
            .entry((peer.to_string(), reason))
            .or_insert(0) += 1;
    }

    /// A TCP connection was closed by a listener's accept loop before or during its set-up
    /// (`tcp_accept::closed` code).
    pub(crate) fn listener_refused(&self, listener: &'static str, reason: &'static str) {
        *lock(&self.listener_refused)
            .entry((listener, reason))
            .or_insert(0) += 1;
    }

    /// A TAXII request failed to authenticate (`invalid_credentials`) or was refused because
    /// its source failed too often (`rate_limited`).
    pub(crate) fn taxii_login_failure(&self, reason: &'static str) {
        *lock(&self.taxii_logins).entry(reason).or_insert(0) += 1;
    }

    /// A membership change was applied live: `change` is `member_added`, `member_removed`,
    /// `member_changed` or `connection_closed`; `n` how many.
    pub(crate) fn membership_change(&self, change: &'static str, n: u64) {
        *lock(&self.membership_changes).entry(change).or_insert(0) += n;
    }

    /// Membership changes counted so far of kind `change`.
    #[cfg(test)]
    pub(crate) fn membership_changes(&self, change: &str) -> u64 {
        lock(&self.membership_changes)
            .get(change)
            .copied()
            .unwrap_or(0)
    }

    /// The version of the membership in force.
    pub(crate) fn set_roster_version(&self, v: u64) {
        self.roster_version.store(v, Ordering::Relaxed);
    }

    /// A config reload ended: `applied` or `refused` (the file did not load; nothing changed).
    pub(crate) fn reload(&self, outcome: &'static str) {
        *lock(&self.reloads).entry(outcome).or_insert(0) += 1;
    }

    /// Config reloads counted so far with `outcome`.
    pub(crate) fn reloads(&self, outcome: &str) -> u64 {
        lock(&self.reloads).get(outcome).copied().unwrap_or(0)
    }

    /// The settings changed in the config file that need a restart (dotted keys).
    pub(crate) fn set_restart_required(&self, keys: Vec<String>) {
        *lock(&self.restart_required) = keys;
    }

    /// Settings waiting for a restart.
    pub(crate) fn restart_required(&self) -> Vec<String> {
        lock(&self.restart_required).clone()
    }

    /// Renders the exposition text from these counters, the sync core's per-peer status (empty
    /// for a single node) and the store counts.
    pub(crate) fn render(
        &self,
        peers: &[PeerStatus],
        counts: Option<&Counts>,
        equivocating: &[OriginEquivocations],
    ) -> String {
        let mut out = String::with_capacity(4096);
        let mut lines: Vec<(String, String, String, Vec<String>)> = Vec::new();
        let mut add = |name: &str, kind: &str, help: &str, samples: Vec<String>| {
            lines.push((name.into(), kind.into(), help.into(), samples));
        };

        let refusals = lock(&self.refusals).clone();
        add(
            "tanoa_peer_refusals_total",
            "counter",
            "TLS connections refused, by reason (unknown_ca, expired, not_yet_valid, \
             not_in_roster, operator_cert, peer_cert_on_operator_port, wrong_member, ...).",
            refusals
                .iter()
                .map(|(r, v)| format!("tanoa_peer_refusals_total{{reason=\"{r}\"}} {v}"))
                .collect(),
        );
        add(
            "tanoa_items_accepted_total",
            "counter",
            "Items newly stored and indexed for replication, by source (local = publish or \
             import, peer = replication).",
            vec![
                format!(
                    "tanoa_items_accepted_total{{source=\"local\"}} {}",
                    self.accepted_local.load(Ordering::Relaxed)
                ),
                format!(
                    "tanoa_items_accepted_total{{source=\"peer\"}} {}",
                    self.accepted_peer.load(Ordering::Relaxed)
                ),
            ],
        );
        let closed = lock(&self.listener_refused).clone();
        add(
            "tanoa_listener_refused_total",
            "counter",
            "TCP connections closed by a listener before or during set-up, by listener (peer, \
             operator_tcp, taxii) and reason (per_address_limit, listener_full, \
             handshake_timeout, login_rate_limited).",
            closed
                .iter()
                .map(|((l, r), v)| {
                    format!("tanoa_listener_refused_total{{listener=\"{l}\",reason=\"{r}\"}} {v}")
                })
                .collect(),
        );
        let logins = lock(&self.taxii_logins).clone();
        add(
            "tanoa_taxii_login_failures_total",
            "counter",
            "TAXII requests refused at authentication, by reason (invalid_credentials; \
             rate_limited: the source failed too many logins and its credentials were not \
             checked).",
            logins
                .iter()
                .map(|(r, v)| format!("tanoa_taxii_login_failures_total{{reason=\"{r}\"}} {v}"))
                .collect(),
        );
        let changes = lock(&self.membership_changes).clone();
        add(
            "tanoa_membership_changes_total",
            "counter",
            "Membership changes applied live (roster update or SIGHUP), by change \
             (member_added, member_removed, member_changed, connection_closed).",
            changes
                .iter()
                .map(|(c, v)| format!("tanoa_membership_changes_total{{change=\"{c}\"}} {v}"))
                .collect(),
        );
        add(
            "tanoa_roster_version",
            "gauge",
            "Version of the membership in force (0 = the local [[members]] roster).",
            vec![format!(
                "tanoa_roster_version {}",
                self.roster_version.load(Ordering::Relaxed)
            )],
        );
        let reloads = lock(&self.reloads).clone();
        add(
            "tanoa_config_reloads_total",
            "counter",
            "Config reloads (SIGHUP or Reload), by outcome (applied, refused).",
            reloads
                .iter()
                .map(|(o, v)| format!("tanoa_config_reloads_total{{outcome=\"{o}\"}} {v}"))
                .collect(),
        );
        add(
            "tanoa_config_restart_required",
            "gauge",
            "Settings changed in the config file that take effect only after a restart.",
            vec![format!(
                "tanoa_config_restart_required {}",
                lock(&self.restart_required).len()
            )],
        );
        let msgs = lock(&self.peer_messages_rejected).clone();
        add(
            "tanoa_peer_messages_rejected_total",
            "counter",
            "Whole messages from a peer refused before processing, by peer and reason \
             (oversized_message, malformed).",
            msgs.iter()
                .map(|((p, r), v)| {
                    format!(
                        "tanoa_peer_messages_rejected_total{{peer=\"{}\",reason=\"{r}\"}} {v}",
                        esc(p)
                    )
                })
                .collect(),
        );

        let per_peer = |f: &dyn Fn(&PeerStatus) -> u64, name: &str| -> Vec<String> {
            peers
                .iter()
                .map(|p| format!("{name}{{peer=\"{}\"}} {}", esc(&p.peer), f(p)))
                .collect()
        };
        add(
            "tanoa_peer_up",
            "gauge",
            "1 when the link to the peer is up (last exchange succeeded), else 0.",
            per_peer(&|p| u64::from(p.link == LinkState::Up), "tanoa_peer_up"),
        );
        add(
            "tanoa_peer_items_received_total",
            "counter",
            "New items received from the peer (accepted, not held before).",
            per_peer(
                &|p| p.stats.items_received,
                "tanoa_peer_items_received_total",
            ),
        );
        add(
            "tanoa_peer_items_sent_total",
            "counter",
            "Items sent to the peer (pushes, offers, fetch replies).",
            per_peer(&|p| p.stats.items_sent, "tanoa_peer_items_sent_total"),
        );
        add(
            "tanoa_peer_duplicates_received_total",
            "counter",
            "Items received from the peer that were already held.",
            per_peer(
                &|p| p.stats.duplicates_received,
                "tanoa_peer_duplicates_received_total",
            ),
        );
        add(
            "tanoa_peer_bytes_received_total",
            "counter",
            "Bytes received from the peer (new items, reconciliation messages).",
            per_peer(
                &|p| p.stats.bytes_received,
                "tanoa_peer_bytes_received_total",
            ),
        );
        add(
            "tanoa_peer_bytes_sent_total",
            "counter",
            "Bytes sent to the peer (envelopes, reconciliation messages, fetch ids).",
            per_peer(&|p| p.stats.bytes_sent, "tanoa_peer_bytes_sent_total"),
        );
        add(
            "tanoa_peer_pushes_sent_total",
            "counter",
            "Push requests sent to the peer.",
            per_peer(&|p| p.stats.pushes_sent, "tanoa_peer_pushes_sent_total"),
        );
        add(
            "tanoa_peer_fetches_sent_total",
            "counter",
            "Fetch requests sent to the peer.",
            per_peer(&|p| p.stats.fetches_sent, "tanoa_peer_fetches_sent_total"),
        );
        add(
            "tanoa_reconcile_sessions_total",
            "counter",
            "Reconciliation sessions with the peer, by outcome (ok and failed: started by us; \
             answered: started by the peer).",
            peers
                .iter()
                .flat_map(|p| {
                    [
                        ("ok", p.stats.sessions_ok),
                        ("failed", p.stats.sessions_failed),
                        ("answered", p.stats.sessions_answered),
                    ]
                    .into_iter()
                    .map(move |(o, v)| {
                        format!(
                            "tanoa_reconcile_sessions_total{{peer=\"{}\",outcome=\"{o}\"}} {v}",
                            esc(&p.peer)
                        )
                    })
                })
                .collect(),
        );
        add(
            "tanoa_reconcile_rounds_total",
            "counter",
            "Reconciliation round trips we initiated with the peer.",
            per_peer(&|p| p.stats.rounds, "tanoa_reconcile_rounds_total"),
        );
        add(
            "tanoa_peer_timeouts_total",
            "counter",
            "Requests to the peer that timed out.",
            per_peer(&|p| p.stats.timeouts, "tanoa_peer_timeouts_total"),
        );
        add(
            "tanoa_peer_lag_seconds",
            "gauge",
            "Seconds since the last completed reconciliation we started with the peer (absent \
             when never).",
            peers
                .iter()
                .filter_map(|p| {
                    p.lag_ms.map(|l| {
                        format!(
                            "tanoa_peer_lag_seconds{{peer=\"{}\"}} {:.3}",
                            esc(&p.peer),
                            l as f64 / 1000.0
                        )
                    })
                })
                .collect(),
        );
        add(
            "tanoa_peer_rejections_total",
            "counter",
            "What we rejected from the peer (items and messages), by peer and reason.",
            peers
                .iter()
                .flat_map(|p| {
                    p.stats.rejections.iter().map(move |(r, v)| {
                        format!(
                            "tanoa_peer_rejections_total{{peer=\"{}\",reason=\"{}\"}} {v}",
                            esc(&p.peer),
                            esc(r)
                        )
                    })
                })
                .collect(),
        );
        add(
            "tanoa_peer_refused_by_peer_total",
            "counter",
            "What the peer refused from us, by peer and its reason.",
            peers
                .iter()
                .flat_map(|p| {
                    p.stats.refused_by_peer.iter().map(move |(r, v)| {
                        format!(
                            "tanoa_peer_refused_by_peer_total{{peer=\"{}\",reason=\"{}\"}} {v}",
                            esc(&p.peer),
                            esc(r)
                        )
                    })
                })
                .collect(),
        );
        if let Some(c) = counts {
            for (name, help, v) in [
                (
                    "tanoa_store_advisories",
                    "Advisories held (latest revisions, withdrawn included).",
                    c.advisories,
                ),
                (
                    "tanoa_store_withdrawn",
                    "Advisories whose latest revision is a withdrawal.",
                    c.withdrawn,
                ),
                (
                    "tanoa_store_items",
                    "Stored envelopes (all revisions).",
                    c.items,
                ),
                (
                    "tanoa_store_indicators",
                    "Active indexed indicators.",
                    c.indicators,
                ),
                (
                    "tanoa_store_equivocations",
                    "Revisions signed more than once by their origin.",
                    c.equivocations,
                ),
            ] {
                add(name, "gauge", help, vec![format!("{name} {v}")]);
            }
        }
        // Origins are verified signers (keyring members from the configuration), never a
        // value a peer chose.
        add(
            "tanoa_equivocating_origin",
            "gauge",
            "1 for each origin that signed two different payloads for one (advisory id, \
             revision) held here, whatever their TLP.",
            equivocating
                .iter()
                .map(|o| {
                    format!(
                        "tanoa_equivocating_origin{{origin=\"{}\"}} 1",
                        esc(&o.origin)
                    )
                })
                .collect(),
        );
        add(
            "tanoa_equivocations_total",
            "counter",
            "(advisory id, revision) pairs an origin signed more than once, as held here.",
            equivocating
                .iter()
                .map(|o| {
                    format!(
                        "tanoa_equivocations_total{{origin=\"{}\"}} {}",
                        esc(&o.origin),
                        o.revisions
                    )
                })
                .collect(),
        );
        for (name, kind, help, samples) in lines {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for s in samples {
                let _ = writeln!(out, "{s}");
            }
        }
        out
    }
}

/// Escapes a label value (`\`, `"`, newline).
fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Something that can produce the exposition text on demand.
pub(crate) trait Render: Send + Sync + 'static {
    /// The current exposition text.
    fn render(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = String> + Send + '_>>;
}

/// Serves `GET /metrics` (any other path: 404) on `listener` until `cancel`; joins its
/// connection tasks before returning.
pub(crate) async fn serve_http(
    listener: TcpListener,
    source: std::sync::Arc<dyn Render>,
    cancel: CancellationToken,
) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((mut tcp, remote)) => {
                    let source = source.clone();
                    conns.spawn(async move {
                        if let Err(e) = answer(&mut tcp, source.as_ref()).await {
                            tracing::debug!(%remote, error = %e, "metrics request failed");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept on the metrics listener failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    conns.abort_all();
    while conns.join_next().await.is_some() {}
}

async fn answer(tcp: &mut tokio::net::TcpStream, source: &dyn Render) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(512);
    let head = tokio::time::timeout(REQUEST_TIMEOUT, async {
        let mut chunk = [0u8; 1024];
        loop {
            let n = tcp.read(&mut chunk).await?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
            if buf.windows(4).any(|w| w == b"\r\n\r\n") || buf.len() > MAX_REQUEST {
                break;
            }
        }
        Ok::<_, std::io::Error>(())
    })
    .await;
    if head.is_err() {
        return Ok(());
    }
    let line = buf.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let (status, ctype, body) = if method == "GET" && (path == "/metrics" || path == "/") {
        (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            source.render().await,
        )
    } else {
        (
            "404 Not Found",
            "text/plain; charset=utf-8",
            "not found: GET /metrics\n".to_string(),
        )
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: \
         close\r\n\r\n",
        body.len()
    );
    tcp.write_all(head.as_bytes()).await?;
    tcp.write_all(body.as_bytes()).await?;
    tcp.shutdown().await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::sync::PeerStats;

    fn status(peer: &str) -> PeerStatus {
        let mut stats = PeerStats::default();
        stats.rejections.insert("bad_signature".into(), 2);
        stats.items_received = 5;
        PeerStatus {
            peer: peer.into(),
            link: LinkState::Up,
            consecutive_failures: 0,
            last_attempt_ms: None,
            last_success_ms: Some(1),
            lag_ms: Some(1500),
            syncing: false,
            queued_push: 0,
            queued_fetch: 0,
            in_flight: 0,
            stats,
            flow: crate::sync::FlowStatus::default(),
        }
    }

    #[test]
    fn renders_counters_with_help_and_type() {
        let m = Metrics::new();
        m.refusal("unknown_ca");
        m.refusal("unknown_ca");
        m.accepted(true, 3);
        m.peer_message_rejected("to-cert", "malformed");
        let eq = [OriginEquivocations {
            origin: "fj-cert".into(),
            revisions: 2,
            last_detected_ms: 1,
        }];
        let text = m.render(&[status("to-cert")], Some(&Counts::default()), &eq);
        for line in [
            "# TYPE tanoa_peer_refusals_total counter",
            "tanoa_peer_refusals_total{reason=\"unknown_ca\"} 2",
            "tanoa_items_accepted_total{source=\"peer\"} 3",
            "tanoa_peer_messages_rejected_total{peer=\"to-cert\",reason=\"malformed\"} 1",
            "tanoa_peer_rejections_total{peer=\"to-cert\",reason=\"bad_signature\"} 2",
            "tanoa_peer_items_received_total{peer=\"to-cert\"} 5",
            "tanoa_peer_up{peer=\"to-cert\"} 1",
            "tanoa_peer_lag_seconds{peer=\"to-cert\"} 1.500",
            "tanoa_store_items 0",
            "tanoa_equivocating_origin{origin=\"fj-cert\"} 1",
            "tanoa_equivocations_total{origin=\"fj-cert\"} 2",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
        assert_eq!(m.refusals("unknown_ca"), 2);
        assert_eq!(m.refusals_total(), 2);
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(esc("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
