//! `[operator]`: the Unix socket of the operator API and its optional TCP + mutual TLS listener.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::raw::RawOperator;
use super::{existing_file, listen_addr, resolve_path};

/// Longest path a Unix socket can be bound to on Linux (`sun_path` minus the NUL).
pub(crate) const MAX_SOCKET_PATH: usize = 107;

/// The optional TCP + mutual TLS operator listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorTcpConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Server certificate chain (PEM, absolute path).
    pub tls_cert: PathBuf,
    /// Server private key (PEM, absolute path).
    pub tls_key: PathBuf,
    /// CA certificates that issue operator certificates (PEM, absolute path).
    pub client_ca: PathBuf,
}

/// `[operator]`: the operator API listeners.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorConfig {
    /// Unix socket path (absolute), created with mode 0600.
    pub socket: PathBuf,
    /// Optional TCP listener with mutual TLS.
    pub tcp: Option<OperatorTcpConfig>,
}

/// `[operator]` resolved; the socket defaults to `<data_dir>/tanoad.sock`.
pub(super) fn resolve_operator(
    raw: RawOperator,
    data_dir: &Path,
    base: &Path,
    bad: &mut dyn FnMut(&str, String),
) -> OperatorConfig {
    let socket = raw
        .socket
        .map(|s| resolve_path(base, &s))
        .unwrap_or_else(|| data_dir.join("tanoad.sock"));
    if socket.as_os_str().len() > MAX_SOCKET_PATH {
        bad(
            "operator.socket",
            format!(
                "{} is {} bytes long; a Unix socket path must be at most {MAX_SOCKET_PATH}",
                socket.display(),
                socket.as_os_str().len()
            ),
        );
    }
    let tcp = match raw.tcp_listen {
        None => None,
        Some(addr) => {
            let listen = listen_addr("operator.tcp_listen", &addr, "127.0.0.1:7443", bad);
            let why = Some("required when operator.tcp_listen is set (mutual TLS)");
            let mut file_key =
                |key: &str, v: Option<PathBuf>| existing_file(key, v, base, why, bad);
            let cert = file_key("operator.tls_cert", raw.tls_cert);
            let key = file_key("operator.tls_key", raw.tls_key);
            let ca = file_key("operator.client_ca", raw.client_ca);
            match (listen, cert, key, ca) {
                (Some(listen), Some(tls_cert), Some(tls_key), Some(client_ca)) => {
                    Some(OperatorTcpConfig {
                        listen,
                        tls_cert,
                        tls_key,
                        client_ca,
                    })
                }
                _ => None,
            }
        }
    };
    OperatorConfig { socket, tcp }
}
