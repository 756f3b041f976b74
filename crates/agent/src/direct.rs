//! The agent's direct listeners (see the `yonder-direct` crate): the
//! protocol served on TCP connections inside TLS 1.3, each authenticated
//! before a single request is read.
//!
//! * Bootstrapped: the client asks over the stream that started the agent
//!   (`Request::DirectListen`, over ssh) for a listener; it is answered
//!   with the port, the certificate's fingerprint and one secret per
//!   connection. The listener stops accepting once every secret is spent
//!   (or after [`LISTEN_TIMEOUT`]), and it and its connections end with
//!   that stream ([`DirectListeners`] is dropped with it).
//! * Standalone (`yonder agent --listen ADDR --key FILE`, [`serve_listener`]):
//!   every connection that proves the key, for as long as the process runs.

use crate::ops::Agent;
use crate::{paths, serve_direct, AgentConfig, AgentError};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::AbortHandle;
use yonder_direct::{random_secret, Acceptor, ServerIdentity};
use yonder_proto::{Errno, Response, WireError};

/// How long a bootstrapped listener waits for its connections.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(30);

/// Most connections one `DirectListen` may ask for.
const MAX_CONNECTIONS: u32 = 64;

/// Most threads the direct connections' runtime runs.
const MAX_THREADS: usize = 8;

/// The direct listeners opened through one stream, and the connections they
/// accepted: all end when it is dropped, with the stream that asked for them.
#[derive(Default)]
pub(crate) struct DirectListeners {
    tasks: Mutex<Vec<AbortHandle>>,
    /// Where the direct connections run: a runtime of several threads, so
    /// that their TLS (and streams) are not all on the one thread of the
    /// stdio agent's. Made with the first listener.
    runtime: Mutex<Option<tokio::runtime::Runtime>>,
}

impl Drop for DirectListeners {
    fn drop(&mut self) {
        for task in self.tasks.get_mut().unwrap().drain(..) {
            task.abort();
        }
        // Dropped on the stdio agent's runtime thread, which must not block.
        if let Some(runtime) = self.runtime.get_mut().unwrap().take() {
            runtime.shutdown_background();
        }
    }
}

impl DirectListeners {
    fn runtime(&self) -> std::io::Result<tokio::runtime::Handle> {
        let mut runtime = self.runtime.lock().unwrap();
        if let Some(runtime) = &*runtime {
            return Ok(runtime.handle().clone());
        }
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get().min(MAX_THREADS));
        let made = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("yonder-direct")
            .enable_all()
            .build()?;
        let handle = made.handle().clone();
        *runtime = Some(made);
        Ok(handle)
    }

    fn keep(&self, task: AbortHandle) {
        let mut tasks = self.tasks.lock().unwrap();
        tasks.retain(|t| !t.is_finished());
        tasks.push(task);
    }

    /// Answers `Request::DirectListen`: opens a listener for `connections`
    /// connections on an ephemeral port of `bind`.
    pub(crate) async fn listen(
        self: &Arc<Self>,
        config: &AgentConfig,
        bind: Option<String>,
        connections: u32,
    ) -> Response {
        match self.open(config, bind, connections).await {
            Ok(response) => response,
            Err((errno, message)) => {
                tracing::warn!("direct listener: {message}");
                Response::Error(WireError { errno, message })
            }
        }
    }

    async fn open(
        self: &Arc<Self>,
        config: &AgentConfig,
        bind: Option<String>,
        connections: u32,
    ) -> Result<Response, (Errno, String)> {
        if connections == 0 || connections > MAX_CONNECTIONS {
            return Err((
                Errno::EINVAL,
                format!("{connections} connections asked for; 1 to {MAX_CONNECTIONS} may be"),
            ));
        }
        let host = bind.unwrap_or_else(default_bind);
        let listener = bind_listener(&host)
            .await
            .map_err(|e| (Errno::from_io(&e), format!("listening on {host}: {e}")))?;
        let local = listener
            .local_addr()
            .map_err(|e| (Errno::from_io(&e), format!("listening on {host}: {e}")))?;
        let identity = ServerIdentity::generate().map_err(|e| (Errno::EIO, e.to_string()))?;
        let fingerprint = identity.fingerprint();
        let root = paths::Root::open(&config.root).map_err(|e| (Errno::EIO, e.to_string()))?;
        let agent = Arc::new(Agent::new(root));
        let runtime = self.runtime().map_err(|e| {
            (
                Errno::from_io(&e),
                format!("starting the direct connections' runtime: {e}"),
            )
        })?;
        let secrets: Vec<Vec<u8>> = (0..connections).map(|_| random_secret().to_vec()).collect();
        let acceptor = Arc::new(Acceptor::single_use(identity, secrets.clone()));
        tracing::info!(%local, connections, "direct listener open");
        // The listener was made on the stdio runtime's reactor: it moves
        // to the direct one as a std socket.
        let listener = listener
            .into_std()
            .map_err(|e| (Errno::from_io(&e), format!("listening on {host}: {e}")))?;
        let accepting = runtime.spawn(accept_expected(
            listener,
            acceptor,
            (config.clone(), agent),
            Arc::downgrade(self),
        ));
        self.keep(accepting.abort_handle());
        Ok(Response::Direct {
            address: local.ip().to_string(),
            port: local.port(),
            fingerprint: fingerprint.to_vec(),
            secrets: secrets.into_iter().map(serde_bytes::ByteBuf::from).collect(),
        })
    }
}

/// The address the ssh connection arrived at (`SSH_CONNECTION`'s third
/// word), where the client can most likely reach this host; loopback for
/// an agent not started by ssh.
fn default_bind() -> String {
    std::env::var("SSH_CONNECTION")
        .ok()
        .and_then(|c| c.split_whitespace().nth(2).map(str::to_string))
        .unwrap_or_else(|| "127.0.0.1".to_string())
}

/// A listener on `host` (an address, or `ADDRESS:PORT`; port 0 unless given).
async fn bind_listener(host: &str) -> std::io::Result<TcpListener> {
    match host.parse::<SocketAddr>() {
        Ok(addr) => TcpListener::bind(addr).await,
        Err(_) => TcpListener::bind((host.trim_matches(['[', ']']), 0)).await,
    }
}

/// Accepts until every secret is spent or the time is up; each
/// connection authenticated on a task of its own, so that one that stalls
/// holds up no other.
async fn accept_expected(
    listener: std::net::TcpListener,
    acceptor: Arc<Acceptor>,
    (config, agent): (AgentConfig, Arc<Agent>),
    listeners: std::sync::Weak<DirectListeners>,
) {
    let listener = match TcpListener::from_std(listener) {
        Ok(listener) => listener,
        Err(err) => {
            tracing::warn!("direct listener: {err}");
            return;
        }
    };
    let all_spent = Arc::new(Notify::new());
    let deadline = tokio::time::sleep(LISTEN_TIMEOUT);
    tokio::pin!(deadline);
    let local = listener.local_addr().ok();
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    tracing::warn!(?local, "direct listener: accepting: {err}");
                    continue;
                }
            },
            _ = all_spent.notified() => {
                tracing::info!(?local, "direct listener closed: every expected connection is made");
                return;
            }
            _ = &mut deadline => {
                tracing::warn!(?local, remaining = acceptor.remaining(), "direct listener closed: connections not made within {LISTEN_TIMEOUT:?}");
                return;
            }
        };
        let (acceptor, config, all_spent) = (acceptor.clone(), config.clone(), all_spent.clone());
        let agent = agent.clone();
        let connection = tokio::spawn(async move {
            let served = authenticate(&acceptor, stream).await;
            if acceptor.remaining() == 0 {
                all_spent.notify_one();
            }
            if let Some(tls) = served {
                serve_connection(config, agent, tls).await;
            }
        });
        match listeners.upgrade() {
            Some(listeners) => listeners.keep(connection.abort_handle()),
            None => connection.abort(),
        }
    }
}

async fn authenticate(acceptor: &Acceptor, stream: TcpStream) -> Option<yonder_direct::ServerStream> {
    match acceptor.accept(stream).await {
        Ok(tls) => Some(tls),
        Err(err) => {
            tracing::warn!("refused a direct connection: {err}");
            None
        }
    }
}

async fn serve_connection(config: AgentConfig, agent: Arc<Agent>, tls: yonder_direct::ServerStream) {
    let peer = tls.get_ref().0.peer_addr().ok();
    tracing::info!(?peer, "direct connection authenticated");
    let (reader, writer) = tokio::io::split(tls);
    match serve_direct(config, agent, reader, writer).await {
        Ok(()) => tracing::debug!(?peer, "direct connection ended"),
        Err(err) => tracing::warn!(?peer, "direct connection: {err}"),
    }
}

/// `yonder agent --listen ADDR --key FILE`: serves every connection to
/// `addr` that proves `key`, until the process ends.
pub async fn serve_listener(config: AgentConfig, addr: String, key: Vec<u8>) -> Result<(), AgentError> {
    let listener = bind_listener(&addr).await.map_err(|source| AgentError::Io {
        op: "listening for direct connections",
        source,
    })?;
    let identity = ServerIdentity::generate().map_err(|e| AgentError::Io {
        op: "making the listener's certificate",
        source: std::io::Error::other(e.to_string()),
    })?;
    let acceptor = Arc::new(Acceptor::key(identity, key));
    if let Ok(local) = listener.local_addr() {
        tracing::info!(%local, "listening");
    }
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                tracing::warn!("accepting: {err}");
                continue;
            }
        };
        let (acceptor, config) = (acceptor.clone(), config.clone());
        tokio::spawn(async move {
            if let Some(tls) = authenticate(&acceptor, stream).await {
                // Each client of the standalone listener its own state:
                // several streams of one client are not told apart here.
                let agent = match paths::Root::open(&config.root) {
                    Ok(root) => Arc::new(Agent::new(root)),
                    Err(err) => return tracing::warn!("{err}"),
                };
                serve_connection(config, agent, tls).await;
            }
        });
    }
}
