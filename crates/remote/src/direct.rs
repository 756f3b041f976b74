//! The direct data path (see the `yonder-direct` crate): the agent's
//! protocol on a TCP connection of its own inside TLS 1.3, past what one
//! ssh channel carries.
//!
//! [`DirectConnector`] bootstraps it through another connector's session
//! (ssh's): it asks that agent for a listener (`Request::DirectListen`),
//! connects to the port it answers, pins the certificate by the
//! fingerprint that came over ssh, and proves the single-use secret. The
//! ssh session stays open beside the direct connection: the agent lives as
//! long as it does, and a lost direct connection is opened again through
//! it (or through a new one, once it is gone too). With
//! [`TransportChoice::Auto`], a direct connection that cannot be made
//! leaves the ssh session serving everything, said once.
//!
//! [`KeyConnector`] reaches a standalone listener (`yonder agent --listen
//! ADDR --key FILE`, a `tcp://HOST:PORT/PATH` source), both sides proving
//! the key file.

use crate::session::{Connector, DirectOffer, Session, Transport};
use crate::streams::Streams;
use crate::{AgentClient, RemoteError, Result};
use async_trait::async_trait;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpStream;
use yonder_direct::ClientTls;

/// How long asking for a listener and connecting to it may take before
/// the direct path counts as unreachable.
const DIRECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What carries an agent's requests (`--transport`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TransportChoice {
    /// The stream that started the agent (ssh's, or a local child's pipe).
    Ssh,
    /// A direct connection, or no connection at all.
    Direct,
    /// A direct connection where one can be made to an ssh host, else ssh.
    #[default]
    Auto,
}

impl std::str::FromStr for TransportChoice {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<TransportChoice, String> {
        match text {
            "ssh" => Ok(TransportChoice::Ssh),
            "direct" => Ok(TransportChoice::Direct),
            "auto" => Ok(TransportChoice::Auto),
            other => Err(format!("unknown transport {other:?}: ssh, direct or auto")),
        }
    }
}

impl std::fmt::Display for TransportChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TransportChoice::Ssh => "ssh",
            TransportChoice::Direct => "direct",
            TransportChoice::Auto => "auto",
        })
    }
}

/// The direct path's settings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct DirectOptions {
    pub transport: TransportChoice,
    /// Where the agent listens (`--direct-bind`); by default the address
    /// the ssh connection arrived at.
    pub bind: Option<String>,
    /// Connect here instead of where the agent says it listens
    /// (`--direct-connect HOST:PORT`): a relay or proxy in between, for
    /// tests and benchmarks. The port is the listener's when empty (`HOST:`).
    pub connect: Option<String>,
    /// The key file of a standalone listener (`tcp://` sources, `--key`).
    pub key_file: Option<PathBuf>,
    /// How many direct connections carry reads and writes
    /// (`--direct-streams`); 0: [`DEFAULT_STREAMS`].
    pub streams: u32,
}

/// Direct connections opened by default: reads and writes spread over
/// them (see `streams.rs`).
pub const DEFAULT_STREAMS: u32 = 4;

impl DirectOptions {
    fn streams(&self) -> u32 {
        match self.streams {
            0 => DEFAULT_STREAMS,
            n => n,
        }
    }
}

/// A connector whose sessions are direct connections bootstrapped through
/// `bootstrap`'s sessions.
pub struct DirectConnector {
    bootstrap: Arc<dyn Connector>,
    options: DirectOptions,
    state: Mutex<DirectState>,
}

#[derive(Default)]
struct DirectState {
    /// The session that opened the current direct connection, kept open
    /// beside it (the agent ends with it).
    opener: Option<Arc<dyn Session>>,
    /// What carries the latest connection.
    transport: Option<Transport>,
    /// Whether the user has been told that the direct path failed.
    told: bool,
}

impl DirectConnector {
    pub fn new(bootstrap: Arc<dyn Connector>, options: DirectOptions) -> DirectConnector {
        DirectConnector {
            bootstrap,
            options,
            state: Mutex::default(),
        }
    }

    /// The session to ask for a listener: the one kept from last time if
    /// it still lives, else a new one.
    async fn opener(&self) -> Result<(Arc<dyn Session>, bool)> {
        let kept = self.state.lock().unwrap().opener.take();
        match kept {
            Some(opener) if !opener.is_closed() => Ok((opener, true)),
            _ => Ok((self.bootstrap.connect().await?, false)),
        }
    }

    /// The direct connections through `opener`'s agent, as one session,
    /// and their address and number.
    async fn open_direct(
        &self,
        opener: &Arc<dyn Session>,
    ) -> std::result::Result<(Arc<dyn Session>, String, usize), String> {
        let asked = opener.direct_listen(self.options.bind.clone(), self.options.streams());
        let offer = match tokio::time::timeout(DIRECT_TIMEOUT, asked).await {
            Err(_) => return Err(format!("the agent did not answer within {DIRECT_TIMEOUT:?}")),
            Ok(Err(err)) => return Err(err.to_string()),
            Ok(Ok(None)) => return Err("the agent has no direct listener (an older yonder)".into()),
            Ok(Ok(Some(offer))) => offer,
        };
        let address = connect_address(&offer, self.options.connect.as_deref());
        let tls = Arc::new(ClientTls::pinned(offer.fingerprint));
        let mut secrets = offer.secrets.into_iter();
        let first = secrets.next().ok_or("the agent offered no connection")?;
        // The first stream alone, so that it is the one whose watch the
        // agent keeps (the first to say Hello); then the rest at once.
        let connected = async {
            let first = connect_stream(tls.clone(), address.clone(), first).await?;
            let rest: Vec<_> = secrets
                .map(|secret| tokio::spawn(connect_stream(tls.clone(), address.clone(), secret)))
                .collect();
            let mut streams = vec![first];
            for stream in rest {
                match stream.await {
                    Ok(Ok(stream)) => streams.push(stream),
                    // One stream fewer is slower, not wrong.
                    Ok(Err(err)) => tracing::warn!("{address}: a direct stream: {err}"),
                    Err(join) => std::panic::resume_unwind(join.into_panic()),
                }
            }
            Ok::<_, String>(streams)
        };
        let streams = match tokio::time::timeout(DIRECT_TIMEOUT, connected).await {
            Err(_) => return Err(format!("{address}: no connection within {DIRECT_TIMEOUT:?}")),
            Ok(result) => result?,
        };
        if let Some(origin) = opener.agent_origin() {
            for stream in &streams {
                stream.set_origin(origin);
            }
        }
        let count = streams.len();
        let session: Arc<dyn Session> = Arc::new(Streams::new(streams, Some(opener.clone())));
        Ok((session, address, count))
    }
}

#[async_trait]
impl Connector for DirectConnector {
    async fn connect(&self) -> Result<Arc<dyn Session>> {
        let (opener, kept) = self.opener().await?;
        let mut opened = self.open_direct(&opener).await;
        if opened.is_err() && kept {
            // The ssh session may have died with the direct connection,
            // unnoticed yet: try once more through a new one.
            opener.shutdown("replaced: the direct path could not be reopened through it");
            let fresh = self.bootstrap.connect().await?;
            opened = self.open_direct(&fresh).await;
            return self.settle(fresh, opened);
        }
        self.settle(opener, opened)
    }

    fn describe(&self) -> String {
        format!("{} (direct)", self.bootstrap.describe())
    }

    fn transport(&self) -> Transport {
        let state = self.state.lock().unwrap();
        state
            .transport
            .clone()
            .unwrap_or_else(|| self.bootstrap.transport())
    }

    fn release(&self) {
        let kept = self.state.lock().unwrap().opener.take();
        if let Some(opener) = kept {
            opener.shutdown("released");
        }
        self.bootstrap.release();
    }
}

impl DirectConnector {
    /// The session the link gets: the direct connection, `opener` kept
    /// beside it; or, where it could not be made and ssh may serve,
    /// `opener` itself.
    fn settle(
        &self,
        opener: Arc<dyn Session>,
        opened: std::result::Result<(Arc<dyn Session>, String, usize), String>,
    ) -> Result<Arc<dyn Session>> {
        let mut state = self.state.lock().unwrap();
        match opened {
            Ok((direct, address, streams)) => {
                end_with(&direct, &opener);
                state.transport = Some(Transport::Direct { address, streams });
                state.opener = Some(opener);
                Ok(direct)
            }
            // No agent to ask (the host's SFTP server stands in for one):
            // that transport's own notice says so.
            Err(_)
                if self.options.transport == TransportChoice::Auto
                    && matches!(self.bootstrap.transport(), Transport::Sftp { .. }) =>
            {
                state.transport = None;
                Ok(opener)
            }
            Err(reason) if self.options.transport == TransportChoice::Auto => {
                // The command that made the connection tells the user
                // (`transport_notice`); the library only logs it.
                if !state.told {
                    tracing::info!(
                        "{}: no direct connection: {reason}; staying on ssh",
                        self.bootstrap.describe()
                    );
                    state.told = true;
                }
                state.transport = Some(Transport::AgentNotDirect { reason });
                Ok(opener)
            }
            Err(reason) => {
                opener.shutdown("the direct connection could not be made");
                Err(RemoteError::Connect {
                    source_desc: self.describe(),
                    reason: format!("no direct connection: {reason}"),
                })
            }
        }
    }
}

/// Ends `direct` when `opener` ends: the agent serving it goes with its
/// ssh session.
fn end_with(direct: &Arc<dyn Session>, opener: &Arc<dyn Session>) {
    let opener_closed = opener.closed();
    let direct_closed = direct.closed();
    let direct = Arc::downgrade(direct);
    tokio::spawn(async move {
        tokio::select! {
            reason = opener_closed => {
                if let Some(direct) = direct.upgrade() {
                    direct.shutdown(&format!("the ssh session that opened it ended: {reason}"));
                }
            }
            _ = direct_closed => {}
        }
    });
}

/// Where to connect for `offer`: `--direct-connect` if given (its port
/// taken from the offer when left empty), else the listener's address.
fn connect_address(offer: &DirectOffer, given: Option<&str>) -> String {
    match given {
        Some(given) => match given.strip_suffix(':') {
            Some(host) => format!("{host}:{}", offer.port),
            None => given.to_string(),
        },
        None if offer.address.contains(':') => format!("[{}]:{}", offer.address, offer.port),
        None => format!("{}:{}", offer.address, offer.port),
    }
}

/// One direct connection: TCP, TLS pinned, the proof of `secret`, Hello.
async fn connect_stream(
    tls: Arc<ClientTls>,
    address: String,
    secret: Vec<u8>,
) -> std::result::Result<Arc<AgentClient>, String> {
    let stream = tcp_connect(&address).await?;
    let tls = tls.connect(stream, &secret).await.map_err(|e| e.to_string())?;
    let (reader, writer) = tokio::io::split(tls);
    let describe = format!("direct {address}");
    let client = AgentClient::handshake(reader, writer, &describe)
        .await
        .map_err(|e| e.to_string())?;
    Ok(Arc::new(client))
}

async fn tcp_connect(address: &str) -> std::result::Result<TcpStream, String> {
    let stream = TcpStream::connect(address)
        .await
        .map_err(|e| format!("{address}: {e}"))?;
    let _ = stream.set_nodelay(true);
    let second = Duration::from_secs(1);
    crate::tcp::set_keepalive(&stream, 5 * second, second, 3).map_err(|e| format!("{address}: {e}"))?;
    Ok(stream)
}

/// Connects to a standalone listener (`yonder agent --listen ADDR --key
/// FILE`) at `address`, both sides proving the key in `key_file`.
pub struct KeyConnector {
    pub address: String,
    pub key_file: Option<PathBuf>,
}

#[async_trait]
impl Connector for KeyConnector {
    async fn connect(&self) -> Result<Arc<dyn Session>> {
        let describe = self.describe();
        let failed = |reason: String| RemoteError::Connect {
            source_desc: describe.clone(),
            reason,
        };
        let Some(key_file) = &self.key_file else {
            return Err(failed(
                "a tcp:// source needs --key FILE (the listener's key)".into(),
            ));
        };
        let key = yonder_direct::read_key_file(key_file).map_err(|e| failed(e.to_string()))?;
        let stream = tcp_connect(&self.address).await.map_err(failed)?;
        let tls = ClientTls::by_key()
            .connect(stream, &key)
            .await
            .map_err(|e| failed(e.to_string()))?;
        let (reader, writer) = tokio::io::split(tls);
        let client = AgentClient::handshake(reader, writer, &describe).await?;
        Ok(Arc::new(client))
    }

    fn describe(&self) -> String {
        format!("tcp://{}", self.address)
    }

    fn transport(&self) -> Transport {
        Transport::Direct {
            address: self.address.clone(),
            streams: 1,
        }
    }
}
