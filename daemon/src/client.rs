//! Connecting to a daemon's operator API: over its Unix socket, or over TCP with mutual TLS.
//!
//! Owns: building tonic channels with our own connectors (tokio `UnixStream`, or TCP +
//! tokio-rustls with ring and TLS 1.3), and turning connection failures into messages that say
//! what to do next.
//! Must never: fall back to plaintext TCP, skip server verification, or retry forever.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tanoa_proto::v1::operator_client::OperatorClient;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::transport::{self, TransportError};

/// How long a connection attempt may take.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest message the client accepts or sends (payload limit headroom).
pub(crate) const MAX_MESSAGE_BYTES: usize = 128 * 1024 * 1024;

/// Why the operator API could not be reached; each message says what to do next.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The connection failed.
    #[error("cannot connect to {target}: {detail} — {hint}")]
    Connect {
        /// Socket path or address.
        target: String,
        /// What failed.
        detail: String,
        /// What to do next.
        hint: String,
    },
    /// The endpoint string is not usable.
    #[error("invalid endpoint {endpoint:?}: {detail} (expected host:port, e.g. 127.0.0.1:7443)")]
    Endpoint {
        /// As given.
        endpoint: String,
        /// What is wrong.
        detail: String,
    },
    /// TLS material could not be loaded.
    #[error(transparent)]
    Tls(#[from] TransportError),
}

const START_HINT: &str = "is tanoad running? start it with: tanoad --config <file>";

/// `io::Error` text without the "(os error N)" suffix.
fn io_text(e: &io::Error) -> String {
    let s = e.to_string();
    match s.rfind(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

fn find_io<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a io::Error> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<io::Error>() {
            return Some(io);
        }
        cur = err.source();
    }
    None
}

fn unix_error(path: &Path, e: &(dyn std::error::Error + 'static)) -> ClientError {
    let target = path.display().to_string();
    let Some(io) = find_io(e) else {
        return ClientError::Connect {
            target,
            detail: e.to_string(),
            hint: START_HINT.into(),
        };
    };
    let hint = match io.kind() {
        io::ErrorKind::NotFound => START_HINT.to_string(),
        io::ErrorKind::ConnectionRefused => format!(
            "the socket file exists but no tanoad answers on it (stale socket); {START_HINT}"
        ),
        io::ErrorKind::PermissionDenied => {
            "the socket is mode 0600: run this as the user that runs tanoad".to_string()
        }
        io::ErrorKind::TimedOut => "tanoad did not answer in time; check its log".to_string(),
        _ => START_HINT.to_string(),
    };
    ClientError::Connect {
        target,
        detail: io_text(io),
        hint,
    }
}

/// A channel to the operator API on a Unix socket. Connects at once, so a missing daemon is
/// reported here.
pub(crate) async fn unix_channel(path: impl AsRef<Path>) -> Result<Channel, ClientError> {
    let path: PathBuf = path.as_ref().to_path_buf();
    // The URI is required by tonic but unused: the connector ignores it.
    let endpoint = Endpoint::from_static("http://tanoad.local")
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true);
    let p = path.clone();
    let connector = tower::service_fn(move |_: Uri| {
        let p = p.clone();
        async move {
            let stream = tokio::net::UnixStream::connect(&p).await?;
            Ok::<_, io::Error>(TokioIo::new(stream))
        }
    });
    endpoint
        .connect_with_connector(connector)
        .await
        .map_err(|e| unix_error(&path, &e))
}

/// An operator client on a Unix socket, e.g. `<data_dir>/tanoad.sock`.
pub async fn connect_unix(path: impl AsRef<Path>) -> Result<OperatorClient<Channel>, ClientError> {
    Ok(OperatorClient::new(unix_channel(path).await?)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES))
}

/// Splits `host:port` or `https://host:port` into (host, port).
fn parse_endpoint(endpoint: &str) -> Result<(String, u16), ClientError> {
    let bad = |detail: &str| ClientError::Endpoint {
        endpoint: endpoint.to_string(),
        detail: detail.to_string(),
    };
    let s = endpoint.trim();
    let s = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("tls://"))
        .unwrap_or(s);
    if s.contains("://") {
        return Err(bad("only https:// is supported (mutual TLS)"));
    }
    let uri: Uri = format!("https://{}", s.trim_end_matches('/'))
        .parse()
        .map_err(|e: http::uri::InvalidUri| bad(&e.to_string()))?;
    let host = uri.host().ok_or_else(|| bad("no host"))?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = uri.port_u16().ok_or_else(|| bad("no port"))?;
    Ok((host, port))
}

/// A channel to an operator TCP listener with mutual TLS (TLS 1.3, server verified against
/// `ca_pem` and the endpoint's host name or IP address).
pub(crate) async fn tls_channel(
    endpoint: &str,
    ca_pem: &[u8],
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<Channel, ClientError> {
    transport::install_crypto_provider();
    let (host, port) = parse_endpoint(endpoint)?;
    let config = transport::operator_client_config(ca_pem, cert_pem, key_pem)?;
    let server_name = rustls::pki_types::ServerName::try_from(host.clone()).map_err(|e| {
        ClientError::Endpoint {
            endpoint: endpoint.to_string(),
            detail: format!("{host:?} is not a DNS name or IP address ({e})"),
        }
    })?;
    let connector = tokio_rustls::TlsConnector::from(config);
    let target = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    // TLS is done by our connector, so tonic sees plain http.
    let uri = format!("http://{target}");
    let ep = Endpoint::from_shared(uri).map_err(|e| ClientError::Endpoint {
        endpoint: endpoint.to_string(),
        detail: e.to_string(),
    })?;
    let ep = ep.connect_timeout(CONNECT_TIMEOUT).tcp_nodelay(true);
    let t = target.clone();
    let svc = tower::service_fn(move |_: Uri| {
        let connector = connector.clone();
        let server_name = server_name.clone();
        let t = t.clone();
        async move {
            let tcp = tokio::net::TcpStream::connect(&t).await?;
            tcp.set_nodelay(true)?;
            let tls = connector.connect(server_name, tcp).await?;
            Ok::<_, io::Error>(TokioIo::new(tls))
        }
    });
    ep.connect_with_connector(svc).await.map_err(|e| {
        let (detail, hint) = match find_io(&e) {
            Some(io) if io.kind() == io::ErrorKind::ConnectionRefused => (
                io_text(io),
                "is tanoad running with operator.tcp_listen set to this address?".to_string(),
            ),
            Some(io) => (
                io_text(io),
                "check the CA, the client certificate (URI SAN tanoa://operator/<name>) and the \
                 address"
                    .to_string(),
            ),
            None => (e.to_string(), "check the address".to_string()),
        };
        ClientError::Connect {
            target: target.clone(),
            detail,
            hint,
        }
    })
}

/// An operator client over TCP with mutual TLS; `endpoint` is `host:port` or
/// `https://host:port`.
pub async fn connect_tls(
    endpoint: &str,
    ca_pem: &[u8],
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<OperatorClient<Channel>, ClientError> {
    Ok(
        OperatorClient::new(tls_channel(endpoint, ca_pem, cert_pem, key_pem).await?)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[tokio::test]
    async fn missing_socket_says_how_to_start_tanoad() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tanoad.sock");
        let err = connect_unix(&path).await.unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "cannot connect to {}: No such file or directory — is tanoad running? start it \
                 with: tanoad --config <file>",
                path.display()
            )
        );
    }

    #[tokio::test]
    async fn stale_socket_is_explained() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tanoad.sock");
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        let err = connect_unix(&path).await.unwrap_err().to_string();
        assert!(err.contains("Connection refused"), "{err}");
        assert!(err.contains("stale socket"), "{err}");
    }

    #[test]
    fn endpoints_parse() {
        assert_eq!(
            parse_endpoint("127.0.0.1:7443").unwrap(),
            ("127.0.0.1".to_string(), 7443)
        );
        assert_eq!(
            parse_endpoint("https://ops.example:7443/").unwrap(),
            ("ops.example".to_string(), 7443)
        );
        assert_eq!(
            parse_endpoint("[2001:db8::1]:7443").unwrap(),
            ("2001:db8::1".to_string(), 7443)
        );
        assert!(parse_endpoint("http://x:1").is_err());
        assert!(
            parse_endpoint("ops.example")
                .unwrap_err()
                .to_string()
                .contains("no port")
        );
    }
}
