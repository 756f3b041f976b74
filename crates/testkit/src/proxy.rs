//! [`FaultProxy`]: a loopback TCP proxy a test controls, for network
//! faults below a real transport (ssh to the test sshd, or the agent over
//! TCP).
//!
//! - [`FaultProxy::drop_all`] closes every connection through it, both
//!   sides, as a network that resets them would;
//! - [`FaultProxy::blackhole`] stops forwarding in both directions without
//!   closing anything, as a network that silently drops every packet:
//!   data sent meanwhile is held (as TCP's retransmissions would deliver it
//!   later), and new connections are accepted but get no further than the
//!   proxy;
//! - [`FaultProxy::restore`] forwards again; held data goes through in
//!   order, as after a network outage that TCP rode out.
//!
//! ssh runs through it with `-p PORT` (or `-o ProxyCommand`), the test's
//! own sshd being the target.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Forward,
    Blackhole,
}

struct Shared {
    target: Mutex<SocketAddr>,
    mode: watch::Sender<Mode>,
    /// Every task serving a connection; aborted (closing its sockets) by
    /// `drop_all`.
    connections: Mutex<Vec<JoinHandle<()>>>,
    accepted: AtomicU64,
    drops: AtomicU64,
}

/// A TCP proxy on a free loopback port; see the module documentation.
/// Stops (closing everything) when dropped.
pub struct FaultProxy {
    port: u16,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

impl FaultProxy {
    /// Starts forwarding `127.0.0.1:port()` to `target`. Needs a tokio
    /// runtime (the proxy's tasks run on it).
    pub async fn start(target: SocketAddr) -> std::io::Result<FaultProxy> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let port = listener.local_addr()?.port();
        let shared = Arc::new(Shared {
            target: Mutex::new(target),
            mode: watch::Sender::new(Mode::Forward),
            connections: Mutex::new(Vec::new()),
            accepted: AtomicU64::new(0),
            drops: AtomicU64::new(0),
        });
        let accept = tokio::spawn(accept_loop(listener, shared.clone()));
        Ok(FaultProxy { port, shared, accept })
    }

    /// The loopback port to connect to instead of the target's.
    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Forwards new connections to `target` from now on (an sshd restarted
    /// on another port).
    pub fn retarget(&self, target: SocketAddr) {
        *self.shared.target.lock().unwrap() = target;
    }

    /// Closes every connection through the proxy, both ends.
    pub fn drop_all(&self) {
        let tasks = std::mem::take(&mut *self.shared.connections.lock().unwrap());
        for task in tasks {
            task.abort();
        }
        self.shared.drops.fetch_add(1, Ordering::SeqCst);
    }

    /// Stops forwarding, closing nothing.
    pub fn blackhole(&self) {
        self.shared.mode.send_replace(Mode::Blackhole);
    }

    /// Forwards again.
    pub fn restore(&self) {
        self.shared.mode.send_replace(Mode::Forward);
    }

    pub fn is_blackholed(&self) -> bool {
        *self.shared.mode.borrow() == Mode::Blackhole
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Connections still open.
    pub fn open_connections(&self) -> usize {
        let mut tasks = self.shared.connections.lock().unwrap();
        tasks.retain(|t| !t.is_finished());
        tasks.len()
    }

    /// `drop_all` calls so far.
    pub fn drops(&self) -> u64 {
        self.shared.drops.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
        for task in std::mem::take(&mut *self.shared.connections.lock().unwrap()) {
            task.abort();
        }
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        shared.accepted.fetch_add(1, Ordering::SeqCst);
        let task = tokio::spawn(serve(client, shared.clone()));
        let mut tasks = shared.connections.lock().unwrap();
        tasks.retain(|t| !t.is_finished());
        tasks.push(task);
    }
}

/// Waits until the proxy forwards.
async fn forwarding(mode: &mut watch::Receiver<Mode>) {
    let _ = mode.wait_for(|m| *m == Mode::Forward).await;
}

async fn serve(client: TcpStream, shared: Arc<Shared>) {
    let mut mode = shared.mode.subscribe();
    // A black-holed network lets no connection through either.
    forwarding(&mut mode).await;
    let target = *shared.target.lock().unwrap();
    let Ok(server) = TcpStream::connect(target).await else {
        // Nobody listens there (a stopped sshd): the client sees the
        // connection closed, as with a refused one.
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let up = pump(client_read, server_write, shared.mode.subscribe());
    let down = pump(server_read, client_write, shared.mode.subscribe());
    // One direction ending (a FIN) is passed on by its pump; the
    // connection is done when both are.
    tokio::join!(up, down);
}

/// Copies one direction, holding data while the proxy black-holes.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut mode: watch::Receiver<Mode>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        forwarding(&mut mode).await;
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        forwarding(&mut mode).await;
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}
