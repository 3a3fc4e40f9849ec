//! The peer link's HTTP/2 and gRPC tuning for thin links (issue 12): flow-control windows and
//! keepalive of peer connections (both ends), and message compression negotiated per peer.
//!
//! Owns: `LinkSettings` (taken from `[sync]`: `stream_window_bytes`, `connection_window_bytes`,
//! `adaptive_window`, `keepalive_interval_ms`, `keepalive_timeout_ms`, `compression`) and how
//! they are applied to a tonic `Endpoint` (dialling side) and `Server` (peer port); the
//! `grpc-accept-encoding` advertisement the peer port adds to every answer; `Negotiated`, what
//! the last answer of a peer advertised, which decides whether our requests to it are compressed.
//! Must never: compress a request to a peer that did not advertise the encoding in its latest
//! answer (an older member without compression must keep working), or accept a compressed
//! message that inflates past the peer message limit (tonic decompresses into a buffer bounded
//! by `max_decoding_message_size`; `api::peer::PeerGuard` counts such a frame against the peer).
//!
//! Answers (fetch replies, reconciliation frames) need no state here: tonic compresses an answer
//! only with an encoding the request listed in its own `grpc-accept-encoding`.
//!
//! Also owns `limit_unsent`: `TCP_NOTSENT_LOWAT` on every peer socket (dialled and accepted), so
//! the kernel keeps at most [`NOTSENT_LOWAT_BYTES`] not yet sent; the rest waits in HTTP/2,
//! which can still put a fresh push's frames before a backlog batch's (issue 12). How many
//! bytes are in flight at all is the sync core's flow window.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use tonic::codec::CompressionEncoding;
use tonic::transport::{Endpoint, Server};

use crate::sync::{Compression, SyncConfig};

/// Unsent bytes the kernel may hold per peer socket (`TCP_NOTSENT_LOWAT`): 16 KiB, about
/// 130 ms of a 1 Mbit/s link, enough to keep a fast link busy between two writes.
pub(crate) const NOTSENT_LOWAT_BYTES: u32 = 16 * 1024;

/// Sets `TCP_NOTSENT_LOWAT` on a peer socket (see the module doc).
#[allow(unsafe_code)]
pub(crate) fn limit_unsent(socket: &impl std::os::fd::AsRawFd, bytes: u32) -> std::io::Result<()> {
    let value = libc::c_int::try_from(bytes).map_err(std::io::Error::other)?;
    let len = libc::socklen_t::try_from(std::mem::size_of::<libc::c_int>())
        .map_err(std::io::Error::other)?;
    // SAFETY: setsockopt(2) reads `len` bytes from the pointer, which points at `value`, a
    // c_int that lives until the call returns; the descriptor is borrowed from a live socket.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_NOTSENT_LOWAT,
            (&raw const value).cast::<libc::c_void>(),
            len,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// What a peer socket has set for `TCP_NOTSENT_LOWAT` (tests).
#[cfg(test)]
#[allow(unsafe_code)]
pub(crate) fn unsent_limit(socket: &impl std::os::fd::AsRawFd) -> std::io::Result<u32> {
    let mut value: libc::c_int = 0;
    let mut len = libc::socklen_t::try_from(std::mem::size_of::<libc::c_int>())
        .map_err(std::io::Error::other)?;
    // SAFETY: getsockopt(2) writes at most `len` bytes to `value` (a live c_int) and updates
    // `len` (a live socklen_t); the descriptor is borrowed from a live socket.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_NOTSENT_LOWAT,
            (&raw mut value).cast::<libc::c_void>(),
            &raw mut len,
        )
    };
    if rc == 0 {
        // The kernel keeps it as an unsigned int (its default, "no limit", is u32::MAX).
        Ok(u32::from_ne_bytes(value.to_ne_bytes()))
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The gRPC header listing the encodings a side accepts.
pub(crate) const ACCEPT_ENCODING: &str = "grpc-accept-encoding";

/// Every encoding this build decodes, in order of preference (always accepted, whatever
/// `compression` says, so a peer configured differently can still be understood).
pub(crate) const DECODABLE: [CompressionEncoding; 2] =
    [CompressionEncoding::Zstd, CompressionEncoding::Gzip];

/// The tonic encoding of a configured compression.
pub(crate) fn encoding(c: Compression) -> Option<CompressionEncoding> {
    match c {
        Compression::None => None,
        Compression::Gzip => Some(CompressionEncoding::Gzip),
        Compression::Zstd => Some(CompressionEncoding::Zstd),
    }
}

fn name(e: CompressionEncoding) -> &'static str {
    match e {
        CompressionEncoding::Gzip => "gzip",
        CompressionEncoding::Zstd => "zstd",
        _ => "identity",
    }
}

/// HTTP/2 and compression settings of peer connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LinkSettings {
    /// Initial HTTP/2 stream window (bytes) we advertise.
    pub stream_window: u32,
    /// Initial HTTP/2 connection window (bytes) we advertise.
    pub connection_window: u32,
    /// Let hyper grow the windows from its bandwidth-delay estimate.
    pub adaptive_window: bool,
    /// HTTP/2 PING interval (`None`: no keepalive).
    pub keepalive_interval: Option<Duration>,
    /// A PING unanswered this long closes the connection.
    pub keepalive_timeout: Duration,
    /// What we send compressed, to peers that accept it.
    pub compression: Option<CompressionEncoding>,
}

impl LinkSettings {
    /// From `[sync]`.
    pub(crate) fn from_sync(s: &SyncConfig) -> Self {
        Self {
            stream_window: s.stream_window_bytes,
            connection_window: s.connection_window_bytes,
            adaptive_window: s.adaptive_window,
            keepalive_interval: (s.keepalive_interval_ms > 0)
                .then(|| Duration::from_millis(s.keepalive_interval_ms)),
            keepalive_timeout: Duration::from_millis(s.keepalive_timeout_ms),
            compression: encoding(s.compression),
        }
    }

    /// The dialling side.
    pub(crate) fn endpoint(&self, ep: Endpoint) -> Endpoint {
        let ep = ep
            .initial_stream_window_size(self.stream_window)
            .initial_connection_window_size(self.connection_window)
            .http2_adaptive_window(self.adaptive_window);
        match self.keepalive_interval {
            Some(i) => ep
                .http2_keep_alive_interval(i)
                .keep_alive_timeout(self.keepalive_timeout)
                .keep_alive_while_idle(true),
            None => ep,
        }
    }

    /// The peer port.
    pub(crate) fn server<L>(&self, b: Server<L>) -> Server<L> {
        b.initial_stream_window_size(self.stream_window)
            .initial_connection_window_size(self.connection_window)
            .http2_adaptive_window(Some(self.adaptive_window))
            .http2_keepalive_interval(self.keepalive_interval)
            .http2_keepalive_timeout(Some(self.keepalive_timeout))
    }

    /// The `grpc-accept-encoding` value the peer port advertises in every answer.
    pub(crate) fn advertised() -> http::HeaderValue {
        http::HeaderValue::from_static("zstd,gzip")
    }
}

/// Parses a `grpc-accept-encoding` value: the encodings of `DECODABLE` it lists.
pub(crate) fn parse_accept(value: Option<&str>) -> Vec<CompressionEncoding> {
    let Some(v) = value else {
        return Vec::new();
    };
    v.split(',')
        .map(str::trim)
        .filter_map(|t| DECODABLE.iter().copied().find(|e| name(*e) == t))
        .collect()
}

/// What the latest answer of one peer advertised (shared by the requests to it): 0 nothing,
/// 1 gzip, 2 zstd, 3 both.
#[derive(Debug, Clone, Default)]
pub(crate) struct Negotiated(Arc<AtomicU8>);

fn bit(e: CompressionEncoding) -> u8 {
    match e {
        CompressionEncoding::Gzip => 1,
        CompressionEncoding::Zstd => 2,
        _ => 0,
    }
}

impl Negotiated {
    /// Records the `grpc-accept-encoding` of an answer (successful or not). An answer without
    /// it (an older member, or one restarted without compression) turns compression off again.
    pub(crate) fn record(&self, headers: &tonic::metadata::MetadataMap) {
        let v = headers.get(ACCEPT_ENCODING).and_then(|v| v.to_str().ok());
        let bits = parse_accept(v).into_iter().fold(0u8, |b, e| b | bit(e));
        self.0.store(bits, Ordering::Relaxed);
    }

    /// The encoding to send requests with: `wanted` if the peer's latest answer advertised it.
    pub(crate) fn send_with(
        &self,
        wanted: Option<CompressionEncoding>,
    ) -> Option<CompressionEncoding> {
        let w = wanted?;
        (self.0.load(Ordering::Relaxed) & bit(w) != 0).then_some(w)
    }
}

#[cfg(test)]
mod tests;
