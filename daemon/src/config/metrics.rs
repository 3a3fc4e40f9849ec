//! `[metrics]`: the Prometheus endpoint.

use std::net::SocketAddr;

use super::listen_addr;
use super::raw::RawMetrics;

/// `[metrics]`: the Prometheus endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsConfig {
    /// Address of the HTTP listener serving `GET /metrics`.
    pub listen: SocketAddr,
}

/// `[metrics]` resolved: its listen address.
pub(super) fn resolve_metrics(
    m: RawMetrics,
    bad: &mut dyn FnMut(&str, String),
) -> Option<MetricsConfig> {
    listen_addr("metrics.listen", &m.listen, "127.0.0.1:9464", bad)
        .map(|listen| MetricsConfig { listen })
}
