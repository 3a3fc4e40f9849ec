//! A fault-injecting TCP proxy for one directed link between two members: member X dials the
//! proxy (its roster endpoint for Y), the proxy forwards bytes to Y's real peer port.
//!
//! Owns: the proxy's listener, its forwarding tasks, the cut/heal switch (a cut link drops every
//! open connection and closes every new one at once), and byte counters.
//! Must never: read or alter the forwarded bytes (TLS runs end to end through it), or outlive
//! the tokio runtime of the test that made it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Where a proxy forwards to; shared by every proxy in front of one member, updated when that
/// member restarts on a new port (`None` while it does not run: connections are closed).
pub type Target = Arc<Mutex<Option<SocketAddr>>>;

/// One directed link `from → to` through a proxy.
#[derive(Debug)]
pub struct LinkProxy {
    addr: SocketAddr,
    cut_tx: watch::Sender<bool>,
    bytes_to_target: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl LinkProxy {
    /// Binds a proxy on `127.0.0.1:0` forwarding to `target`; spawns its accept loop.
    pub async fn start(target: Target) -> std::io::Result<LinkProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (cut_tx, cut_rx) = watch::channel(false);
        let bytes_to_target = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&bytes_to_target);
        let task = tokio::spawn(accept_loop(listener, target, cut_rx, counter));
        Ok(LinkProxy {
            addr,
            cut_tx,
            bytes_to_target,
            task,
        })
    }

    /// The address members dial.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Cuts the link: open connections are dropped, new ones closed at once.
    pub fn cut(&self) {
        let _ = self.cut_tx.send(true);
    }

    /// Heals the link: new connections are forwarded again.
    pub fn heal(&self) {
        let _ = self.cut_tx.send(false);
    }

    /// Bytes forwarded towards the target so far.
    pub fn bytes_to_target(&self) -> u64 {
        self.bytes_to_target.load(Ordering::Relaxed)
    }
}

impl Drop for LinkProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    target: Target,
    cut_rx: watch::Receiver<bool>,
    counter: Arc<AtomicU64>,
) {
    let mut conns = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = listener.accept() => {
                let Ok((inbound, _)) = accepted else { continue };
                if *cut_rx.borrow() {
                    drop(inbound);
                    continue;
                }
                let to = *target.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                let Some(to) = to else {
                    drop(inbound);
                    continue;
                };
                let mut cut = cut_rx.clone();
                let counter = Arc::clone(&counter);
                conns.spawn(async move {
                    let Ok(outbound) = TcpStream::connect(to).await else { return };
                    let _ = inbound.set_nodelay(true);
                    let _ = outbound.set_nodelay(true);
                    tokio::select! {
                        _ = cut.wait_for(|c| *c) => {}
                        _ = forward(inbound, outbound, counter) => {}
                    }
                });
            }
        }
    }
}

async fn forward(inbound: TcpStream, outbound: TcpStream, counter: Arc<AtomicU64>) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let (mut ir, mut iw) = inbound.into_split();
    let (mut or, mut ow) = outbound.into_split();
    let up = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match ir.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            counter.fetch_add(n as u64, Ordering::Relaxed);
            if ow.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = ow.shutdown().await;
    };
    let down = async move {
        let _ = tokio::io::copy(&mut or, &mut iw).await;
        let _ = iw.shutdown().await;
    };
    tokio::join!(up, down);
}
