//! `[peer]`: the federation listener and this member's TLS identity.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::raw::RawPeer;
use super::{existing_file, listen_addr};

/// `[peer]`: the federation listener and this member's TLS identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerConfig {
    /// Address of the peer port.
    pub listen: SocketAddr,
    /// This member's certificate chain (PEM, absolute), URI SAN `tanoa://member/<id>`.
    pub tls_cert: PathBuf,
    /// Its private key (PEM, absolute).
    pub tls_key: PathBuf,
    /// CA certificates (PEM, absolute) that issue member certificates; may be empty only when
    /// every other `[[members]]` entry has `tls_pins` (checked by `Config::parse`).
    pub trust_anchors: Vec<PathBuf>,
}

/// `[peer]` resolved; every file it names must exist.
pub(super) fn resolve_peer(
    p: RawPeer,
    base: &Path,
    bad: &mut dyn FnMut(&str, String),
) -> Option<PeerConfig> {
    let listen = listen_addr("peer.listen", &p.listen, "0.0.0.0:7400", bad);
    let why = Some("required when [peer] is set (this member's TLS identity)");
    let mut file_key = |key: &str, v: Option<PathBuf>| existing_file(key, v, base, why, bad);
    let tls_cert = file_key("peer.tls_cert", p.tls_cert);
    let tls_key = file_key("peer.tls_key", p.tls_key);
    let mut anchors = Vec::new();
    for (n, a) in p.trust_anchors.iter().enumerate() {
        let key = format!("peer.trust_anchors[{n}]");
        anchors.extend(existing_file(&key, Some(a.clone()), base, None, bad));
    }
    match (listen, tls_cert, tls_key) {
        (Some(listen), Some(tls_cert), Some(tls_key)) if anchors.len() == p.trust_anchors.len() => {
            Some(PeerConfig {
                listen,
                tls_cert,
                tls_key,
                trust_anchors: anchors,
            })
        }
        _ => None,
    }
}
