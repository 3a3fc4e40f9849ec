//! Example configurations: the commented single-node file `tanoa init` writes
//! (`Config::example`) and the federated member files `tanoa demo` writes
//! (`Config::example_federated`). Both load as is once the files they name exist.

use super::Config;
use super::storage::default_cache_mb;

impl Config {
    /// A commented example config for a new member (what `tanoa init` writes). It loads as is
    /// once `keys/<id>.key` exists beside it.
    pub fn example(member_id: &str, name: &str) -> String {
        let cache_mb = default_cache_mb();
        let name = name.replace('\\', "\\\\").replace('"', "\\\"");
        format!(
            r#"# tanoad configuration. Relative paths are resolved against this file's directory.

[member]
# This CERT's member id in the federation (a-z, 0-9 and '-', starting with a letter).
id = "{member_id}"
# Display name.
name = "{name}"
# Private ed25519 signing key (mode 0600). Default: "keys/<id>.key".
key_file = "keys/{member_id}.key"

[storage]
# Data directory (the sled store lives in <data_dir>/store). Default: "data".
data_dir = "data"
# sled page cache in MiB. Default: {cache_mb}.
# cache_mb = {cache_mb}

[operator]
# Unix socket of the operator API, created with mode 0600. Default: "<data_dir>/tanoad.sock".
# socket = "data/tanoad.sock"
# Optional TCP listener with mutual TLS for operator certificates
# (URI SAN tanoa://operator/<name>); all three files are required when it is set.
# tcp_listen = "127.0.0.1:7443"
# tls_cert = "certs/{member_id}.crt"
# tls_key = "certs/{member_id}.key"
# client_ca = "certs/operator-ca.crt"

[log]
# "text" or "json". Default: "text".
format = "text"
# tracing filter, e.g. "info" or "tanoa_daemon=debug,info". Default: "info".
level = "info"

[limits]
# max_payload_bytes = 1048576
# max_indicators = 50000
# max_title_len = 512
# max_summary_len = 65536
# max_string_len = 2048
# max_list_len = 1000
# max_extras_bytes = 1048576

# Extra signing keys accepted for verification (ImportEnvelope and replication), e.g. of a
# member that is not a peer. Roster keys ([[members.keys]]) are trusted as well.
# [[trusted]]
# member = "to-cert"
# public_key = "<64 hex digits>"
# valid_from = "2026-01-01T00:00:00Z"   # optional
# valid_until = "2027-01-01T00:00:00Z"  # optional

# Federation: without [peer] this node runs alone.
# [peer]
# listen = "0.0.0.0:7400"
# tls_cert = "certs/{member_id}.pem"      # URI SAN tanoa://member/{member_id}
# tls_key = "certs/{member_id}.key"
# trust_anchors = ["certs/ca.pem"]        # may be left out when every member has tls_pins

# Replication settings (defaults shown).
# [sync]
# fanout = 3
# interval_ms = 30000
# jitter_ms = 3000
# request_timeout_ms = 15000
# max_frame_bytes = 131072
# Thin links (satellite, cable cut): see docs/peer-link.md.
# backlog_batch_bytes = 262144       # per fetch / backlog push: a fresh push never waits behind more
# min_link_bytes_per_s = 4000        # deadlines = request_timeout_ms + bytes at this rate
# compression = "zstd"               # "zstd", "gzip" or "none"; negotiated per peer
# stream_window_bytes = 1048576      # HTTP/2 windows: at least the bandwidth-delay product
# connection_window_bytes = 4194304
# adaptive_window = false
# keepalive_interval_ms = 20000      # HTTP/2 PING; 0 disables
# keepalive_timeout_ms = 60000       # unanswered PING: the peer is down (not merely slow)

# Prometheus metrics (GET /metrics).
# [metrics]
# listen = "127.0.0.1:9464"

# TAXII 2.1 read endpoint for local tools (SIEM, TIP), off by default. Plain HTTP only on a
# loopback address; anywhere else tls_cert and tls_key are required. TLP:RED is never served.
# [taxii]
# listen = "127.0.0.1:9470"
# tls_cert = "certs/taxii.pem"
# tls_key = "certs/taxii.key"
# client_ca = "certs/taxii-clients-ca.pem"   # optional: clients identified by certificate
# max_page = 1000
# cache_mb = 128                     # converted STIX objects kept in memory
# [[taxii.clients]]
# name = "siem"
# token_sha256 = "<hex SHA-256 of the token: printf %s TOKEN | sha256sum>"
# collections = ["clear", "green"]
# [[taxii.clients]]
# name = "tip"
# certificate_uri = "tanoa://operator/tip"
# collections = ["clear", "green", "amber"]

# MISP warning lists (github.com/MISP/misp-warninglists): indicators on a list (public
# resolvers, cloud ranges, top sites...) are flagged on publish, import, show and search and
# left out of blocklists. Off when absent.
# [warninglists]
# dir = "/srv/misp-warninglists"      # <name>/list.json, or the repository with lists/
# disabled = ["alexa"]

# The roster: every member this CERT federates with (it may list itself too). Changes apply
# without a restart on SIGHUP or `tanoa reload`.
# [[members]]
# id = "to-cert"
# name = "Tonga CERT"
# endpoints = ["198.51.100.20:7400"]
# A member with tls_pins is authenticated by them only (self-signed certificates allowed; print
# a pin with `tanoa pki pin CERT`); two pins during a certificate renewal. Without pins the
# member is authenticated by the CA (trust_anchors).
# tls_pins = ["sha256:<64 hex digits>"]
# [[members.keys]]
# public_key = "<64 hex digits>"
# valid_from = "2026-01-01T00:00:00Z"   # optional
"#
        )
    }

    /// A complete federated config (what `tanoa demo` writes for each member): the member, its
    /// peer listener, TLS files, optional metrics listener, short-or-default sync settings and
    /// the whole roster (this member included). It loads as is once the files it names exist.
    pub fn example_federated(x: &FederatedExample) -> String {
        fn q(s: &str) -> String {
            toml::Value::String(s.to_string()).to_string()
        }
        let mut out = String::new();
        out.push_str("# tanoad configuration of a federation member.\n\n[member]\n");
        out.push_str(&format!(
            "id = {}\nname = {}\n",
            q(&x.member_id),
            q(&x.name)
        ));
        out.push_str(&format!("key_file = {}\n", q(&x.key_file)));
        out.push_str(&format!("\n[storage]\ndata_dir = {}\n", q(&x.data_dir)));
        if let Some(sock) = &x.operator_socket {
            out.push_str(&format!("\n[operator]\nsocket = {}\n", q(sock)));
        }
        out.push_str(&format!(
            "\n[peer]\nlisten = {}\ntls_cert = {}\ntls_key = {}\n",
            q(&x.peer_listen),
            q(&x.tls_cert),
            q(&x.tls_key),
        ));
        if !x.trust_anchors.is_empty() {
            out.push_str(&format!(
                "trust_anchors = [{}]\n",
                x.trust_anchors
                    .iter()
                    .map(|a| q(a))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if !x.sync.is_empty() {
            out.push_str("\n[sync]\n");
            for (k, v) in &x.sync {
                out.push_str(&format!("{k} = {v}\n"));
            }
        }
        if let Some(m) = &x.metrics_listen {
            out.push_str(&format!("\n[metrics]\nlisten = {}\n", q(m)));
        }
        for m in &x.members {
            out.push_str(&format!(
                "\n[[members]]\nid = {}\nname = {}\nendpoints = [{}]\n",
                q(&m.id),
                q(&m.name),
                m.endpoints
                    .iter()
                    .map(|e| q(e))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            if !m.tls_pins.is_empty() {
                out.push_str(&format!(
                    "tls_pins = [{}]\n",
                    m.tls_pins
                        .iter()
                        .map(|p| q(p))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            for k in &m.public_keys {
                out.push_str(&format!("[[members.keys]]\npublic_key = {}\n", q(k)));
            }
        }
        out
    }
}

/// Input of `Config::example_federated`. Paths are written as given (relative paths resolve
/// against the config file's directory).
#[derive(Debug, Clone, Default)]
pub struct FederatedExample {
    /// This member's id.
    pub member_id: String,
    /// Display name.
    pub name: String,
    /// Signing key file, e.g. `keys/<id>.key`.
    pub key_file: String,
    /// Data directory, e.g. `data`.
    pub data_dir: String,
    /// Operator socket path; `None` = `<data_dir>/tanoad.sock`.
    pub operator_socket: Option<String>,
    /// Peer listener, e.g. `127.0.0.1:7401`.
    pub peer_listen: String,
    /// Member certificate (PEM).
    pub tls_cert: String,
    /// Its private key (PEM).
    pub tls_key: String,
    /// CA certificate files (none when every member is pinned).
    pub trust_anchors: Vec<String>,
    /// Prometheus listener, if any.
    pub metrics_listen: Option<String>,
    /// `[sync]` settings as (key, TOML value), e.g. `("interval_ms", "2000")`.
    pub sync: Vec<(String, String)>,
    /// The roster (this member may be included).
    pub members: Vec<ExampleMember>,
}

/// A roster entry of `FederatedExample`.
#[derive(Debug, Clone, Default)]
pub struct ExampleMember {
    /// Member id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// `host:port` endpoints.
    pub endpoints: Vec<String>,
    /// Public signing keys, hex.
    pub public_keys: Vec<String>,
    /// TLS pins (`sha256:<hex>`); empty = authenticated by the CA.
    pub tls_pins: Vec<String>,
}
