//! The accept loop shared by every TCP listener of the daemon (peer port, operator TCP port,
//! TAXII): accept, hand each connection to a per-connection task (the TLS handshake, bounded in
//! time by the caller's task), stop on cancellation, join every task before returning.
//!
//! Owns: the loop, its bound on connections being set up at once, and the back-off after a
//! failed `accept` (e.g. out of file descriptors).
//! Must never: read from a connection itself, or return while a task it spawned still runs.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Pause after a failed `accept` before trying again.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// Accepts connections on `listener` until `cancel`, running `setup(tcp, remote)` for each in
/// its own task. At most `max_setups` tasks run at once; a connection beyond that is closed at
/// once and logged. `what` names the listener in logs. Aborts and joins the tasks at the end.
pub async fn accept_each<F, Fut>(
    listener: TcpListener,
    what: &'static str,
    max_setups: usize,
    cancel: CancellationToken,
    setup: F,
) where
    F: Fn(TcpStream, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut tasks = JoinSet::new();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((tcp, remote)) => {
                    let _ = tcp.set_nodelay(true);
                    if tasks.len() >= max_setups {
                        tracing::warn!(%remote, listener = what,
                            "too many connections being set up; connection closed");
                        continue;
                    }
                    tasks.spawn(setup(tcp, remote));
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

    use std::sync::Arc;
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
            2,
            cancel.clone(),
            move |_, _| {
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
}
