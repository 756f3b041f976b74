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
//!   order, as after a network outage that TCP rode out;
//! - [`FaultProxy::hold_existing`] black-holes only the connections open
//!   now, while new ones pass: a path that failed while another works, and
//!   [`FaultProxy::release_held`] delivers what those held, late.
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
    /// Connections numbered up to this (from 1, in the order accepted)
    /// are held; 0: none.
    held_through: watch::Sender<u64>,
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
            held_through: watch::Sender::new(0),
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

    /// Stops forwarding on the connections open now, closing nothing; new
    /// connections are forwarded.
    pub fn hold_existing(&self) {
        self.shared.held_through.send_replace(self.accepted());
    }

    /// Forwards again on the connections [`FaultProxy::hold_existing`]
    /// held, what they held first.
    pub fn release_held(&self) {
        self.shared.held_through.send_replace(0);
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
        let number = shared.accepted.fetch_add(1, Ordering::SeqCst) + 1;
        let task = tokio::spawn(serve(client, shared.clone(), number));
        let mut tasks = shared.connections.lock().unwrap();
        tasks.retain(|t| !t.is_finished());
        tasks.push(task);
    }
}

/// What a connection watches: the proxy's mode and which are held.
struct Gate {
    mode: watch::Receiver<Mode>,
    held_through: watch::Receiver<u64>,
    number: u64,
}

impl Gate {
    fn new(shared: &Shared, number: u64) -> Gate {
        Gate {
            mode: shared.mode.subscribe(),
            held_through: shared.held_through.subscribe(),
            number,
        }
    }

    /// Waits until the proxy forwards on this connection.
    async fn open(&mut self) {
        loop {
            let forward = *self.mode.borrow_and_update() == Mode::Forward;
            let held = self.number <= *self.held_through.borrow_and_update();
            if forward && !held {
                return;
            }
            tokio::select! {
                changed = self.mode.changed() => if changed.is_err() { return },
                changed = self.held_through.changed() => if changed.is_err() { return },
            }
        }
    }
}

async fn serve(client: TcpStream, shared: Arc<Shared>, number: u64) {
    // A black-holed network lets no connection through either.
    Gate::new(&shared, number).open().await;
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
    let up = pump(client_read, server_write, Gate::new(&shared, number));
    let down = pump(server_read, client_write, Gate::new(&shared, number));
    // One direction ending (a FIN) is passed on by its pump; the
    // connection is done when both are.
    tokio::join!(up, down);
}

/// Copies one direction, holding data while the proxy black-holes.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut gate: Gate,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        gate.open().await;
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        gate.open().await;
        if to.write_all(&buf[..n]).await.is_err() {
            // The other end is gone. What this end still sends is read and
            // dropped, never left unread: closing a socket with unread data
            // resets the connection, and the peer's kernel then discards
            // what it received but had not read yet, which a real network
            // would have let it read.
            while matches!(from.read(&mut buf).await, Ok(n) if n > 0) {}
            break;
        }
    }
    let _ = to.shutdown().await;
}
