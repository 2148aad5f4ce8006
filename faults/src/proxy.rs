//! A TCP proxy with faults switched at run time: one sits between each service and each of its
//! dependencies, so latency and connection resets apply to one (service, dependency) pair.
//!
//! Every connection is copied both ways in chunks; before forwarding a chunk the proxy waits the
//! configured latency. `reset()` ends every open connection at once with a TCP reset (zero
//! linger), the way a crashed middlebox or a dropped NAT entry would; while `refuse` is on, new
//! connections are closed as soon as they are accepted.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A running proxy; cheap to clone, all clones steer the same proxy.
#[derive(Clone)]
pub struct FaultProxy {
    /// What this proxy stands between, e.g. `task-svc→postgres`.
    pub name: String,
    /// Where clients connect.
    pub addr: SocketAddr,
    state: Arc<State>,
}

struct State {
    upstream: SocketAddr,
    latency_ms: AtomicU64,
    refuse: AtomicBool,
    /// Bumped by `reset()`; every connection ends when it changes.
    epoch: watch::Sender<u64>,
}

impl FaultProxy {
    /// Listens on a free local port and forwards to `upstream`.
    pub async fn start(name: String, upstream: SocketAddr) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            upstream,
            latency_ms: AtomicU64::new(0),
            refuse: AtomicBool::new(false),
            epoch: watch::channel(0).0,
        });
        tokio::spawn(accept_loop(listener, state.clone()));
        Ok(Self { name, addr, state })
    }

    /// Delay every forwarded chunk by this much (0: none).
    pub fn set_latency(&self, latency: Duration) {
        self.state
            .latency_ms
            .store(latency.as_millis() as u64, Ordering::SeqCst);
    }

    /// Close new connections at once while set.
    pub fn set_refuse(&self, refuse: bool) {
        self.state.refuse.store(refuse, Ordering::SeqCst);
    }

    /// Resets every open connection now (both sides get a TCP RST).
    pub fn reset(&self) {
        self.state.epoch.send_modify(|e| *e += 1);
    }

    /// Back to a clean pipe.
    pub fn heal(&self) {
        self.set_latency(Duration::ZERO);
        self.set_refuse(false);
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<State>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        if state.refuse.load(Ordering::SeqCst) {
            let _ = client.set_zero_linger();
            drop(client);
            continue;
        }
        tokio::spawn(serve(client, state.clone()));
    }
}

async fn serve(client: TcpStream, state: Arc<State>) {
    let mut epoch = state.epoch.subscribe();
    epoch.borrow_and_update();
    let Ok(upstream) = TcpStream::connect(state.upstream).await else {
        let _ = client.set_zero_linger();
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (upstream_read, upstream_write) = upstream.into_split();
    let up = pipe(client_read, upstream_write, &state);
    let down = pipe(upstream_read, client_write, &state);
    tokio::select! {
        (up, down) = async { tokio::join!(up, down) } => {
            // Both directions ended by themselves: the halves drop and close normally.
            let _ = (up, down);
        }
        _ = epoch.changed() => {
            // Dropping the halves with zero linger sends RST on both connections; the
            // `pipe` futures own them, so they are dropped when this arm wins.
        }
    }
}

/// Copies `from` into `to` until EOF or an error, delaying each chunk by the current latency;
/// sets zero linger on `to` first so that dropping it mid-way is a reset, not a clean close.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    state: &State,
) {
    let _ = to.as_ref().set_zero_linger();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let latency = state.latency_ms.load(Ordering::SeqCst);
        if latency > 0 {
            tokio::time::sleep(Duration::from_millis(latency)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    // A clean end of this direction: pass the half-close on, without a reset.
    let _ = to.as_ref().set_linger_clean();
    let _ = to.shutdown().await;
}

/// Undoing zero linger for a clean close.
trait CleanLinger {
    fn set_linger_clean(&self) -> std::io::Result<()>;
}

impl CleanLinger for TcpStream {
    #[allow(deprecated)]
    fn set_linger_clean(&self) -> std::io::Result<()> {
        self.set_linger(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An upstream that echoes what it reads.
    async fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = socket.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        addr
    }

    async fn round_trip(stream: &mut TcpStream, bytes: &[u8]) -> std::io::Result<Vec<u8>> {
        stream.write_all(bytes).await?;
        let mut back = vec![0u8; bytes.len()];
        stream.read_exact(&mut back).await?;
        Ok(back)
    }

    #[tokio::test]
    async fn a_clean_proxy_forwards_both_ways() {
        let proxy = FaultProxy::start("test".into(), echo_server().await)
            .await
            .unwrap();
        let mut client = TcpStream::connect(proxy.addr).await.unwrap();
        assert_eq!(round_trip(&mut client, b"hello").await.unwrap(), b"hello");
    }

    #[tokio::test]
    async fn latency_delays_every_chunk() {
        let proxy = FaultProxy::start("test".into(), echo_server().await)
            .await
            .unwrap();
        proxy.set_latency(Duration::from_millis(100));
        let mut client = TcpStream::connect(proxy.addr).await.unwrap();
        let started = std::time::Instant::now();
        round_trip(&mut client, b"ping").await.unwrap();
        // Once on the way up, once on the way back.
        assert!(started.elapsed() >= Duration::from_millis(200));
    }

    #[tokio::test]
    async fn a_reset_ends_open_connections_and_new_ones_work() {
        let proxy = FaultProxy::start("test".into(), echo_server().await)
            .await
            .unwrap();
        let mut client = TcpStream::connect(proxy.addr).await.unwrap();
        round_trip(&mut client, b"before").await.unwrap();
        proxy.reset();
        let after = tokio::time::timeout(Duration::from_secs(5), async {
            // The first write may still be accepted by the kernel; the read fails or ends.
            round_trip(&mut client, b"after").await
        })
        .await
        .expect("the reset connection does not hang");
        assert!(after.is_err(), "{after:?}");
        let mut fresh = TcpStream::connect(proxy.addr).await.unwrap();
        assert_eq!(round_trip(&mut fresh, b"again").await.unwrap(), b"again");
    }

    #[tokio::test]
    async fn refusing_closes_new_connections() {
        let proxy = FaultProxy::start("test".into(), echo_server().await)
            .await
            .unwrap();
        proxy.set_refuse(true);
        let mut client = TcpStream::connect(proxy.addr).await.unwrap();
        let result = tokio::time::timeout(Duration::from_secs(5), round_trip(&mut client, b"x"))
            .await
            .expect("a refused connection does not hang");
        assert!(result.is_err());
        proxy.heal();
        let mut client = TcpStream::connect(proxy.addr).await.unwrap();
        assert_eq!(round_trip(&mut client, b"ok").await.unwrap(), b"ok");
    }
}
