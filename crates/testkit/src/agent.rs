//! An agent served in this process: [`yonder_agent::serve`] on one end of
//! an in-memory pipe, an [`AgentClient`] on the other. The whole protocol
//! path (encoding, framing, the agent's dispatch and its blocking pool)
//! without a child process, a binary or a socket.
//!
//! `serve` sets the process's umask to 0 (the agent applies modes exactly
//! as the client asks), so a test process that starts one creates its own
//! files without a umask too.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::task::JoinHandle;
use yonder_agent::{AgentConfig, AgentError};
use yonder_remote::{AgentClient, Remote, Result};

/// The pipe's buffer each way: a 4 MiB read response fits whole.
const PIPE_BUFFER: usize = 8 << 20;

/// Starts an agent serving `root` on a task of the current runtime and
/// connects a client to it (handshake done). The agent stops when the
/// client is dropped (end of stream); its task's result says how it ended.
pub async fn connect(root: &Path) -> Result<(AgentClient, JoinHandle<Result<(), AgentError>>)> {
    let (client_end, agent_end) = tokio::io::duplex(PIPE_BUFFER);
    let (agent_reader, agent_writer) = tokio::io::split(agent_end);
    let config = AgentConfig {
        root: root.to_path_buf(),
    };
    let serve = tokio::spawn(yonder_agent::serve(config, agent_reader, agent_writer));
    let (reader, writer) = tokio::io::split(client_end);
    let describe = format!("in-process agent on {}", root.display());
    match AgentClient::handshake(reader, writer, &describe).await {
        Ok(client) => Ok((client, serve)),
        Err(err) => {
            serve.abort();
            Err(err)
        }
    }
}

/// An in-process agent serving a fresh temporary directory.
pub struct InProcessAgent {
    client: Arc<AgentClient>,
    serve: JoinHandle<Result<(), AgentError>>,
    // Dropped after the client.
    dir: tempfile::TempDir,
}

impl InProcessAgent {
    /// Serves a new temporary directory. Panics if the agent cannot start:
    /// a fixture that fails is a broken test, not a skipped one.
    pub async fn start() -> InProcessAgent {
        let dir = tempfile::Builder::new()
            .prefix("yonder-agent")
            .tempdir()
            .expect("temporary directory");
        let (client, serve) = connect(dir.path()).await.expect("in-process agent");
        InProcessAgent {
            client: Arc::new(client),
            serve,
            dir,
        }
    }

    /// The client, as the trait object the layers above program against.
    pub fn remote(&self) -> Arc<dyn Remote> {
        self.client.clone()
    }

    pub fn client(&self) -> &Arc<AgentClient> {
        &self.client
    }

    /// The served directory.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// The path on disk behind a wire path.
    pub fn disk(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Ends the agent as a crash would, the client left connected: its
    /// calls then fail as over a dead connection.
    pub fn kill(&self) {
        self.serve.abort();
    }

    /// Drops the client and waits for the agent to finish, returning how
    /// it ended (Ok after a clean end of stream).
    pub async fn stop(self) -> std::result::Result<(), AgentError> {
        let InProcessAgent { client, serve, dir } = self;
        drop(client);
        let ended = serve.await.expect("agent task");
        drop(dir);
        ended
    }

    /// Splits the fixture into the client and a guard that keeps the root
    /// (and the agent task) alive; for [`crate::contract::Subject`].
    pub fn into_parts(self) -> (Arc<AgentClient>, PathBuf, Box<dyn std::any::Any + Send + Sync>) {
        let root = self.dir.path().to_path_buf();
        (self.client, root, Box::new((self.dir, AbortOnDrop(self.serve))))
    }
}

struct AbortOnDrop(JoinHandle<Result<(), AgentError>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// An agent as a network service, in this process: serves `root` to every
/// connection accepted on a loopback TCP port (one `yonder_agent::serve`
/// each). With [`crate::proxy::FaultProxy`] in front and [`TcpConnector`]
/// behind a [`yonder_remote::Link`], the whole reconnection path runs
/// without a binary, ssh or sshd.
pub struct TcpAgent {
    addr: std::net::SocketAddr,
    accept: JoinHandle<()>,
    sessions: Arc<std::sync::Mutex<Vec<Session>>>,
}

/// The task serving one connection of a [`TcpAgent`].
type Session = JoinHandle<Result<(), AgentError>>;

impl TcpAgent {
    pub async fn start(root: &Path) -> std::io::Result<TcpAgent> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let sessions: Arc<std::sync::Mutex<Vec<Session>>> = Arc::default();
        let root = root.to_path_buf();
        let list = sessions.clone();
        let accept = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let _ = stream.set_nodelay(true);
                let (reader, writer) = stream.into_split();
                let config = AgentConfig { root: root.clone() };
                let session = tokio::spawn(yonder_agent::serve(config, reader, writer));
                let mut list = list.lock().unwrap();
                list.retain(|s| !s.is_finished());
                list.push(session);
            }
        });
        Ok(TcpAgent {
            addr,
            accept,
            sessions,
        })
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    /// Sessions still being served.
    pub fn sessions(&self) -> usize {
        let mut list = self.sessions.lock().unwrap();
        list.retain(|s| !s.is_finished());
        list.len()
    }
}

impl Drop for TcpAgent {
    fn drop(&mut self) {
        self.accept.abort();
        for session in self.sessions.lock().unwrap().drain(..) {
            session.abort();
        }
    }
}

/// Connects to an agent served over TCP (a [`TcpAgent`], usually through a
/// [`crate::proxy::FaultProxy`]), with TCP keepalive on, as a direct TCP
/// transport would.
pub struct TcpConnector {
    pub addr: std::net::SocketAddr,
}

#[async_trait::async_trait]
impl yonder_remote::Connector for TcpConnector {
    async fn connect(&self) -> Result<Arc<dyn yonder_remote::Session>> {
        let describe = self.describe();
        let failed = |reason: String| yonder_remote::RemoteError::Connect {
            source_desc: describe.clone(),
            reason,
        };
        let stream = tokio::net::TcpStream::connect(self.addr)
            .await
            .map_err(|e| failed(e.to_string()))?;
        let _ = stream.set_nodelay(true);
        let second = std::time::Duration::from_secs(1);
        yonder_remote::tcp::set_keepalive(&stream, 5 * second, second, 3)
            .map_err(|e| failed(e.to_string()))?;
        let (reader, writer) = stream.into_split();
        let client = AgentClient::handshake(reader, writer, &describe).await?;
        Ok(Arc::new(client))
    }

    fn describe(&self) -> String {
        format!("tcp://{}", self.addr)
    }
}
